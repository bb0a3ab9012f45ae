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
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from .ir import Entry, Node


class Tape:
    """The op nodes of one recording, in the order they were made.

    Recording pays one append per op (:meth:`add`); the key is built at
    ``backward``, in one loop over the ops with no walk. The tape refers to its
    nodes weakly: a recorded graph that nobody differentiates (an evaluation
    under ``record()``) is freed when its arrays are, not kept by the tape."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[weakref.ref] = []

    def add(self, node: Node) -> None:
        """Note an op node just recorded."""
        self.ops.append(weakref.ref(node))

    def holds_last(self, node: Node) -> bool:
        """Whether ``node`` is the last op recorded on this tape."""
        return bool(self.ops) and self.ops[-1]() is node

    def signature(self, head: Entry, leaf_role: Callable[[Node], Any]
                  ) -> tuple[list[Node], tuple, dict[int, int]] | None:
        """What :func:`compiler.ir.signature` returns for the single head ``head``
        (nodes in a topological order, a key, positions by id), if this tape holds
        exactly its graph; None otherwise.

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
        for node in ops:
            wiring = []
            for child, index in node.inputs:
                at = position.get(id(child))
                if at is None:
                    if child.inputs:  # an op recorded elsewhere (an earlier record block)
                        return None
                    at = position[id(child)] = len(nodes)
                    nodes.append(child)
                    leaf_type = child.types[0]
                    parts.append((child.op, leaf_type.dtype.char,
                                  tuple([size == 1 for size in leaf_type.shape]),
                                  leaf_role(child)))
                elif child.inputs:
                    read.add(at)
                wiring.append((at, index))
            position[id(node)] = len(nodes)
            nodes.append(node)
            attrs = node.attrs
            parts.append((node.op, tuple(attrs.items()) if attrs else (), tuple(wiring)))
        if len(read) != len(ops) - 1:
            return None  # an op recorded here that the head does not need
        return nodes, (tuple(parts), ((len(nodes) - 1, head.index),)), position


__all__ = ["Tape"]
