"""Structural keys built while a graph is recorded.

``backward`` needs its graph's nodes in topological order and a structural key
(see :func:`compiler.ir.signature`) on every call. Recording already meets the
nodes in a topological order, the order they are made in, so a frontend can
add each recorded op node to a :class:`Tape`. At ``backward`` the key is
then built in one loop over the tape instead of a depth-first walk of the
graph (on the benchmark machine the walk costs 5-8 us a node).

The tape answers only for the graph it holds whole: the head must be the last
node recorded, every other node recorded must lead to it, and no node may read
an op recorded elsewhere (an earlier ``record()`` block, say). Anything else
gets None, and the caller walks the graph as before.

A training loop records the same graph every step. When a key is built, the
tape also leaves a :class:`Template` of what it held; the next recording's
tape checks each op against it as the op is added (one comparison of op,
attrs and wiring), and when every op matched, :meth:`Tape.recognise` hands
back the nodes in the template's order and the caller reuses what it kept
for that structure (its program) without building or hashing a key.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .ir import Entry, Node


class Template:
    """The structure of a graph a tape held whole, for recognising the same graph
    in the next recording without building its key.

    ``ops[i]`` is ``(op, attrs, wiring)`` of the i-th op recorded, ``wiring``
    naming each input as ``(source, output index)`` where a source ``q >= 0`` is
    op ``q`` and ``q < 0`` is leaf ``-1 - q``; ``leaves[l]`` is ``(op, types,
    role)`` of the leaves in the order of their first reader; ``layout`` is the
    signature's node order in the same codes; ``head_index`` the head's output.
    ``memo`` belongs to the caller (what it reuses for this structure)."""

    __slots__ = ("ops", "leaves", "layout", "head_index", "memo")

    def __init__(self) -> None:
        self.ops: list[tuple] = []
        self.leaves: list[tuple] = []
        self.layout: list[int] = []
        self.head_index = 0
        self.memo: Any = None


class Tape:
    """The op nodes of one recording, in the order they were made.

    Recording pays one append per op (:meth:`add`); the key is built at
    ``backward``, in one loop over the ops with no walk. The tape refers to its
    nodes weakly: a recorded graph that nobody differentiates (an evaluation
    under ``record()``) is freed when its arrays are, not kept by the tape.

    Given the :class:`Template` of the previous recording, :meth:`add` also
    checks each op against it, so that :meth:`recognise` can answer at once."""

    __slots__ = ("ops", "template", "matching", "leaves")

    def __init__(self, template: Template | None = None) -> None:
        self.ops: list[weakref.ref] = []
        self.template = template
        self.matching = template is not None  # every op so far as in the template
        self.leaves: list[weakref.ref] = []  # the template's leaves, as met here

    def add(self, node: Node) -> None:
        """Note an op node just recorded."""
        ops = self.ops
        ops.append(weakref.ref(node))
        if self.matching:
            self.matching = self._matches(node, len(ops) - 1)

    def _matches(self, node: Node, at: int) -> bool:
        """Whether ``node``, the op recorded ``at``-th, is the template's op there:
        the same op and attrs, reading the same ops and leaves of this tape."""
        template = self.template
        if at >= len(template.ops):
            return False
        op, attrs, wiring = template.ops[at]
        if node.op is not op or len(node.inputs) != len(wiring) or node.attrs != attrs:
            return False
        for (child, index), (source, expected) in zip(node.inputs, wiring):
            if index != expected:
                return False
            if source >= 0:
                if self.ops[source]() is not child:
                    return False
                continue
            leaf, leaves = -1 - source, self.leaves
            if leaf < len(leaves):
                if leaves[leaf]() is not child:
                    return False
            elif leaf == len(leaves) and not child.inputs:
                leaf_op, types, _ = template.leaves[leaf]
                if child.op is not leaf_op or child.types != types:
                    return False
                for ref in leaves:  # a leaf met before, where the template has a new one
                    if ref() is child:
                        return False
                leaves.append(weakref.ref(child))
            else:
                return False
        return True

    def holds_last(self, node: Node) -> bool:
        """Whether ``node`` is the last op recorded on this tape."""
        return bool(self.ops) and self.ops[-1]() is node

    def recognise(self, head: Entry, leaf_role: Callable[[Node], Any]
                  ) -> tuple[list[Node], Template] | None:
        """The nodes (in the order :meth:`signature` gave for the template's
        graph) and the template, if this tape holds exactly the template's
        structure with ``head`` last and its leaves in the same roles; else None."""
        template = self.template
        if not self.matching or len(self.ops) != len(template.ops) \
                or head.index != template.head_index or self.ops[-1]() is not head.node:
            return None
        leaves = [ref() for ref in self.leaves]
        for leaf, (_, _, role) in zip(leaves, template.leaves):
            if leaf_role(leaf) != role:
                return None
        ops = self.ops
        # every op is alive: the head reads them all, and they their leaves
        return [ops[code]() if code >= 0 else leaves[-1 - code] for code in template.layout], \
            template

    def signature(self, head: Entry, leaf_role: Callable[[Node], Any]
                  ) -> tuple[list[Node], tuple, dict[int, int], Template] | None:
        """What :func:`compiler.ir.signature` returns for the single head ``head``
        (nodes in a topological order, a key, positions by id), and the
        :class:`Template` of the graph, if this tape holds exactly its graph;
        None otherwise.

        The nodes are the ops in recorded order, each leaf just before its first
        reader. The key differs from the walk's (it starts with ``"tape"``, and
        the order may differ) but is, as that one, equal exactly for graphs of
        the same structure, leaf types and leaf roles."""
        if not self.holds_last(head.node):
            return None
        ops = [ref() for ref in self.ops]
        if None in ops:
            return None  # part of what was recorded is gone: not this graph alone
        nodes: list[Node] = []
        position: dict[int, int] = {}
        parts: list[tuple] = ["tape"]
        read: set[int] = set()  # ops that a later op reads
        template = Template()
        code: dict[int, int] = {}  # the template's code of each node met, by id
        for at, node in enumerate(ops):
            wiring, sources = [], []
            for child, index in node.inputs:
                where = position.get(id(child))
                if where is None:
                    if child.inputs:  # an op recorded elsewhere (an earlier record block)
                        return None
                    where = position[id(child)] = len(nodes)
                    nodes.append(child)
                    leaf_type = child.types[0]
                    role = leaf_role(child)
                    parts.append((child.op, leaf_type.dtype.char,
                                  tuple([size == 1 for size in leaf_type.shape]), role))
                    code[id(child)] = -1 - len(template.leaves)
                    template.leaves.append((child.op, child.types, role))
                    template.layout.append(code[id(child)])
                elif child.inputs:
                    read.add(where)
                wiring.append((where, index))
                sources.append((code[id(child)], index))
            position[id(node)] = len(nodes)
            code[id(node)] = at
            nodes.append(node)
            template.layout.append(at)
            attrs = node.attrs
            parts.append((node.op, tuple(attrs.items()) if attrs else (), tuple(wiring)))
            template.ops.append((node.op, attrs, tuple(sources)))
        if len(read) != len(ops) - 1:
            return None  # an op recorded here that the head does not need
        template.head_index = head.index
        return nodes, (tuple(parts), ((len(nodes) - 1, head.index),)), position, template


__all__ = ["Tape", "Template"]
