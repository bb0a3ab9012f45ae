"""Structural keys for chains, made while recording instead of at backward.

A *chain* is a graph in which every op has exactly one input entry, back to
one leaf: ``exp(tanh(x * 1.01 + 0.1))``. Its topological order is the chain
itself, so its structural key is determined by the leaf's type (dtype and
length-one axes), then each op, attrs and input output index in turn. Each
recorded node of a chain gets a small integer, its *chain id*, made from its
input's chain id and its own op, attrs and input index at the moment it is
made, so that ``backward`` of a chain needs no walk to build
:func:`compiler.ir.signature`'s key (the walk costs microseconds per node,
every backward).

Ids are interned in a table: one id stands for one structure only, ever (ids
come from a counter, and a key maps to the first id made for it). The table
is cleared when it grows past a bound (recordings whose attrs change every step
would otherwise grow it without end); a structure recorded again afterwards gets
a new id, which only costs a program cache miss. Graphs that are not chains
(an op with two inputs anywhere) keep the full walk.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from .ir import Entry, Node

_ids: dict[tuple, int] = {}
_counter = itertools.count(1)
_MAX_IDS = 1 << 15


def _intern(key: tuple) -> int:
    ident = _ids.get(key)
    if ident is None:
        if len(_ids) >= _MAX_IDS:
            _ids.clear()
        # setdefault: two threads interning the same key agree on one id
        ident = _ids.setdefault(key, next(_counter))
    return ident


def extend_chain(node: Node) -> None:
    """Give the just-made ``node`` its chain id if its one input is a leaf or a
    node with a chain id (otherwise it keeps None: not a chain)."""
    if len(node.inputs) != 1:
        return
    parent, index = node.inputs[0]
    base = parent.chain
    if base is None:
        if parent.inputs:
            return
        leaf_type = parent.types[0]
        base = parent.chain = _intern((parent.op, leaf_type.dtype.char,
                                       tuple([size == 1 for size in leaf_type.shape])))
    node.chain = _intern((base, node.op, tuple(node.attrs.items()), index))


def chain_signature(head: Entry, leaf_role: Callable[[Node], Any]
                    ) -> tuple[list[Node], tuple, dict[int, int]] | None:
    """What :func:`compiler.ir.signature` returns for the single head ``head``
    (the nodes in topological order, a key, each node's position by id), if its
    graph is a chain; None otherwise. The key is not the walk's key (it cannot
    equal one: its first part is not a tuple of per-node parts), but, as that
    one, equal exactly for graphs of the same structure and leaf role, and its
    second part is the head's ``(position, output index)``."""
    ident = head.node.chain
    if ident is None:
        return None
    nodes = []
    node = head.node
    while node.inputs:
        nodes.append(node)
        node = node.inputs[0].node
    nodes.append(node)
    nodes.reverse()
    position = {id(node): i for i, node in enumerate(nodes)}
    key = (("chain", ident, leaf_role(nodes[0])), ((len(nodes) - 1, head.index),))
    return nodes, key, position


__all__ = ["chain_signature", "extend_chain"]
