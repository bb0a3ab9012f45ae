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
from threading import get_ident
from typing import Any, cast

from .ir import _UNIT_AXES, Entry, Node, unit_axes


class Template:
    """The structure of a graph a tape held whole, for recognising the same graph
    in the next recording without building its key.

    ``ops[i]`` is ``(op, attrs, wiring, types)`` of the i-th op recorded:
    ``wiring`` names each input as ``(source, output index)``, where a source
    ``q >= 0`` is op ``q`` and ``q < 0`` is leaf ``-1 - q``, and ``types`` are
    its output types (:meth:`Tape.expect` hands them to the recording, which
    then skips the op's type rule). ``leaves[l]`` is ``(op, types, role)`` of
    the leaves in the order of their first reader. ``layout`` is the
    signature's node order in the same codes, and ``key`` the structural key
    :meth:`Tape.signature` gave (for a caller that must look its program up
    after all). ``memo`` belongs to the caller (what it reuses for this
    structure)."""

    __slots__ = ("ops", "leaves", "layout", "key", "memo")

    def __init__(self) -> None:
        self.ops: list[tuple] = []
        self.leaves: list[tuple] = []
        self.layout: list[int] = []
        self.key: tuple = ((), ((0, 0),))
        self.memo: Any = None

    @property
    def head_index(self) -> int:
        """The output index of the graph's head (it is in the key)."""
        return self.key[1][0][1]


class Tape:
    """The op nodes of one recording, in the order they were made.

    Recording pays one append per op (:meth:`add`); the key is built at
    ``backward``, in one loop over the ops with no walk. The tape refers to its
    nodes weakly: a recorded graph that nobody differentiates (an evaluation
    under ``record()``) is freed when its arrays are, not kept by the tape.

    Given the :class:`Template` of the last graph differentiated from a tape
    (on this thread), :meth:`add` also checks each op against it
    (:meth:`expect`), so that :meth:`recognise` can answer at once. Only ops
    recorded on the thread that made the tape are matched: a tape shared with
    another thread (by copying the context) could interleave two graphs' ops."""

    __slots__ = ("ops", "template", "matching", "met_leaves", "met_ids", "owner")

    def __init__(self, template: Template | None = None) -> None:
        self.ops: list[weakref.ref[Node]] = []
        self.template = template
        self.matching = template is not None  # every op so far as in the template
        self.met_leaves: list[weakref.ref[Node]] = []  # the template's leaves, as met here
        # their ids, to tell a leaf met before at once (an id reused by a new leaf
        # after one met died only stops the matching: the key is then built)
        self.met_ids: set[int] = set()
        self.owner = get_ident()

    def add(self, node: Node, checked: bool = False) -> None:
        """Note an op node just recorded (``checked``: :meth:`expect` has already
        compared it with the template)."""
        if self.matching and not checked:
            # an op run at once (random, data-dependent shapes) has types of its own
            if self.expect(node.op, node.attrs, node.inputs) != node.types:
                self.matching = False
        self.ops.append(weakref.ref(node))

    def expect(self, op: Any, attrs: dict, inputs: tuple[Entry, ...]) -> tuple | None:
        """The output types of the op about to be recorded, if it is the
        template's next op (the same op and attrs, reading the same ops and
        leaves of this tape): its node in the last graph had them, and the types
        of leaves and ops it depends on are the same. Otherwise None, and the
        tape stops matching."""
        template, at = self.template, len(self.ops)
        if not self.matching or template is None:  # (matching implies a template)
            return None
        if get_ident() != self.owner:
            self.matching = False
            return None
        if at < len(template.ops):
            expected_op, expected_attrs, wiring, types = template.ops[at]
            if (
                op is expected_op
                and len(inputs) == len(wiring)
                and (attrs is expected_attrs or attrs == expected_attrs)
                and self._wired_alike(inputs, wiring, template)
            ):
                return types
        self.matching = False
        return None

    def _wired_alike(self, inputs: tuple[Entry, ...], wiring: tuple, template: Template) -> bool:
        """Whether ``inputs`` read what ``wiring`` names (see :class:`Template`),
        meeting the template's new leaves along the way."""
        for (child, index), (source, expected) in zip(inputs, wiring):
            if index != expected:
                return False
            if source >= 0:
                if self.ops[source]() is not child:
                    return False
                continue
            leaf, leaves = -1 - source, self.met_leaves
            if leaf < len(leaves):
                if leaves[leaf]() is not child:
                    return False
            elif leaf == len(leaves) and not child.inputs:
                leaf_op, types, _ = template.leaves[leaf]
                if child.op is not leaf_op or child.types != types:
                    return False
                if id(child) in self.met_ids:  # met before, where the template has a new one
                    return False
                leaves.append(weakref.ref(child))
                self.met_ids.add(id(child))
            else:
                return False
        return True

    def holds_last(self, node: Node) -> bool:
        """Whether ``node`` is the last op recorded on this tape."""
        return bool(self.ops) and self.ops[-1]() is node

    def recognise(
        self, head: Entry, leaf_role: Callable[[Node], Any]
    ) -> tuple[list[Node], Template] | None:
        """The nodes (in the order :meth:`signature` gave for the template's
        graph) and the template, if this tape holds exactly the template's
        structure with ``head`` last and its leaves in the same roles; else None."""
        template = self.template
        if (
            template is None  # (matching implies a template)
            or not self.matching
            or len(self.ops) != len(template.ops)
            or head.index != template.head_index
            or self.ops[-1]() is not head.node
        ):
            return None
        # every leaf met is alive: the head reads the ops, and they their leaves
        leaves = cast(list[Node], [ref() for ref in self.met_leaves])
        for leaf, (_, _, role) in zip(leaves, template.leaves):
            if leaf_role(leaf) != role:
                return None
        ops = self.ops
        # every op is alive: the head reads them all
        nodes = cast(
            list[Node],
            [ops[code]() if code >= 0 else leaves[-1 - code] for code in template.layout],
        )
        return nodes, template

    def signature(
        self, head: Entry, leaf_role: Callable[[Node], Any]
    ) -> tuple[list[Node], tuple, dict[int, int], Template] | None:
        """What :func:`compiler.ir.signature` returns for the single head ``head``
        (nodes in a topological order, a key, positions by id), and the
        :class:`Template` of the graph, if this tape holds exactly its graph;
        None otherwise.

        The nodes are the ops in recorded order, each leaf just before its first
        reader. The key differs from the walk's (it starts with ``"tape"``, and
        the order may differ) but is, as that one, equal exactly for graphs of
        the same structure, leaf types, length-one axes and leaf roles."""
        if not self.holds_last(head.node):
            return None
        live = [ref() for ref in self.ops]
        if None in live:
            return None  # part of what was recorded is gone: not this graph alone
        ops = cast(list[Node], live)
        nodes: list[Node] = []
        position: dict[int, int] = {}
        parts: list[str | tuple] = ["tape"]
        read: set[int] = set()  # ops that a later op reads
        template = Template()
        code: dict[int, int] = {}  # the template's code of each node met, by id
        for at, node in enumerate(ops):
            wiring: list[tuple[int, int]] = []
            sources: list[tuple[int, int]] = []
            for child, index in node.inputs:
                where = position.get(id(child))
                if where is None:
                    if child.inputs:  # an op recorded elsewhere (an earlier record block)
                        return None
                    where = position[id(child)] = len(nodes)
                    nodes.append(child)
                    leaf_type = child.types[0]
                    role = leaf_role(child)
                    parts.append(
                        (
                            child.op,
                            leaf_type.dtype.char,
                            tuple([size == 1 for size in leaf_type.shape]),
                            role,
                        )
                    )
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
            parts.append(
                (
                    node.op,
                    tuple(attrs.items()) if attrs else (),
                    tuple(wiring),
                    None
                    if node.op.keeps_type
                    else node.types  # all sizes: its gradient graph is built from them
                    if node.op.sized_grad
                    else _UNIT_AXES.get(node.types) or unit_axes(node.types),
                )
            )
            template.ops.append((node.op, attrs, tuple(sources), node.types))
        if len(read) != len(ops) - 1:
            return None  # an op recorded here that the head does not need
        template.key = (tuple(parts), ((len(nodes) - 1, head.index),))
        return nodes, template.key, position, template


__all__ = ["Tape", "Template"]
