"""Structural keys for chains, without the general graph walk.

A *chain* is a graph in which every op has exactly one input entry, back to
one leaf: ``exp(tanh(x * 1.01 + 0.1))``. Its topological order is the chain
itself, so it is found by following first inputs, and its structural key is
the list of each op, its attrs, the output index it reads and its outputs'
length-one axes, then the leaf's dtype, length-one axes and role.
``backward`` pays for the key on every call;
for a chain this costs a fraction of :func:`compiler.ir.signature`'s
depth-first walk, which stays the way for every other graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .ir import _UNIT_AXES, Entry, Node, unit_axes


def chain_signature(
    head: Entry, leaf_role: Callable[[Node], Any]
) -> tuple[list[Node], tuple, dict[int, int]] | None:
    """What :func:`compiler.ir.signature` returns for the single head ``head``
    (the nodes in topological order, a key, each node's position by id) if its
    graph is a chain; None otherwise (found at the first op with several inputs).

    The key differs from the walk's (its first part starts with ``"chain"``, not
    a node's part, so the two never collide) but is, as that one, equal exactly
    for graphs of the same structure, leaf types and leaf role; its second part
    is the head's ``(position, output index)``, as there.
    """
    # The key is one flat tuple, four items per op (op, attrs, input index, the
    # length-one axes of its outputs, since a reshape or slice may make one; None
    # for the ops that keep their input's type, most of them, and cost a hash) then
    # the leaf's four: it is hashed and compared on every backward, and a flat
    # tuple does both twice as fast as a tuple of per-node tuples.
    nodes: list[Node] = []
    parts: list = ["chain"]
    add_node, add_part = nodes.append, parts.extend
    known = _UNIT_AXES.get  # unit_axes' memo, read inline: this loop is the hot path
    node = head.node
    inputs = node.inputs
    while inputs:
        if len(inputs) != 1:
            return None
        ((parent, index),) = inputs
        attrs = node.attrs
        add_node(node)
        add_part(
            (
                node.op,
                tuple(attrs.items()) if attrs else (),
                index,
                None
                if node.op.keeps_type
                else node.types  # all sizes: its gradient graph is built from them
                if node.op.sized_grad
                else known(node.types) or unit_axes(node.types),
            )
        )
        node = parent
        inputs = node.inputs
    leaf_type = node.types[0]
    add_part(
        (
            node.op,
            leaf_type.dtype.char,
            tuple([size == 1 for size in leaf_type.shape]),
            leaf_role(node),
        )
    )
    add_node(node)
    nodes.reverse()
    position = {id(node): i for i, node in enumerate(nodes)}
    return nodes, (tuple(parts), ((len(nodes) - 1, head.index),)), position


class ChainTemplate:
    """The structure of the last chain differentiated, for recognising the same
    chain at the next ``backward`` without building and hashing its key (a
    training loop over a chain, like W3, records the same fifty ops each step).

    ``ops``, ``attrs`` and ``indices`` list the chain from the head down (each
    op, its attrs, the output index it reads); ``leaf`` is the leaf's ``(op,
    types, role)``, ``key`` the key :func:`chain_signature` gave (the head's
    output index is in it); ``memo`` belongs to the caller (what it reuses for
    this structure)."""

    __slots__ = ("ops", "attrs", "indices", "leaf", "key", "memo")

    def __init__(self, nodes: list[Node], key: tuple, leaf_role: Callable[[Node], Any]) -> None:
        """The template of the chain ``nodes`` (as :func:`chain_signature` lists
        them, leaf first) whose key is ``key``."""
        ops = nodes[:0:-1]
        self.ops = [node.op for node in ops]
        self.attrs = [node.attrs for node in ops]
        self.indices = [node.inputs[0].index for node in ops]
        leaf = nodes[0]
        self.leaf = (leaf.op, leaf.types, leaf_role(leaf))
        self.key = key
        self.memo: Any = None

    @property
    def head_index(self) -> int:
        """The output index of the chain's head (it is in the key)."""
        return self.key[1][0][1]

    def recognise(self, head: Entry, leaf_role: Callable[[Node], Any]) -> list[Node] | None:
        """The nodes of ``head``'s graph, leaf first, if it is this chain (the
        same ops, attrs and indices, a leaf of the same op, types and role);
        None otherwise. Costs a walk down the chain with no key built."""
        if head.index != self.head_index:
            return None
        ops, attrs, indices = self.ops, self.attrs, self.indices
        count = len(ops)
        nodes: list[Node] = []
        node = head.node
        inputs = node.inputs
        at = 0
        while inputs:
            if at == count or len(inputs) != 1 or node.op is not ops[at]:
                return None
            expected = attrs[at]
            if node.attrs is not expected and node.attrs != expected:
                return None
            ((parent, index),) = inputs
            if index != indices[at]:
                return None
            nodes.append(node)
            node = parent
            inputs = node.inputs
            at += 1
        leaf_op, types, role = self.leaf
        if at != count or node.op is not leaf_op or node.types != types or leaf_role(node) != role:
            return None
        nodes.append(node)
        nodes.reverse()
        return nodes


__all__ = ["ChainTemplate", "chain_signature"]
