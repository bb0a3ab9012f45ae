"""The one graph IR, shared by recording, differentiation, passes and codegen.

A :class:`Node` is an op applied to input *entries*; an entry is ``(node, index)``
naming one output of a node. A variable is a node whose op is ``null``. Shapes and
dtypes are inferred when a node is made, so a bad shape fails at the op call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Container, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # the registry imports this module
    from .registry import OpDef


class GraphError(ValueError):
    """An op was applied to inputs it cannot take (shapes, dtypes, attributes)."""


class TensorType(NamedTuple):
    """Static type of one op output: its shape and numpy dtype."""

    shape: tuple[int, ...]
    dtype: np.dtype


class Entry(NamedTuple):
    """One output of a node: ``(node, output index)``."""

    node: Node
    # a field named `index` shadows tuple.index (typeshed's method), as intended
    index: int  # type: ignore[assignment]

    @property
    def type(self) -> TensorType:
        """The inferred :class:`TensorType` of this output."""
        return self.node.types[self.index]

    @property
    def shape(self) -> tuple[int, ...]:
        """Inferred shape of this output."""
        return self.node.types[self.index].shape

    @property
    def dtype(self) -> np.dtype:
        """Inferred dtype of this output."""
        return self.node.types[self.index].dtype


_name_counters: dict[str, Iterator[int]] = {}


def _fresh_name(prefix: str) -> str:
    counter = _name_counters.get(prefix)
    if counter is None:
        counter = _name_counters.setdefault(prefix, itertools.count())
    return f"{prefix}{next(counter)}"


class Node:
    """One op application: op, canonical attrs, input entries, inferred output types.

    It carries no runtime state: a frontend keeps values and the like on a
    subclass of its own, and hands a program the values it reads (``Program.run``).
    """

    __slots__ = ("op", "attrs", "inputs", "types", "_name", "__weakref__")

    def __init__(
        self,
        op: OpDef,
        attrs: dict,
        inputs: tuple[Entry, ...],
        types: tuple[TensorType, ...],
        name: str | None = None,
    ) -> None:
        self.op = op
        self.attrs = attrs
        self.inputs = inputs
        self.types = types
        self._name = name

    @property
    def name(self) -> str:
        """The node's name; ops get ``<op><n>`` lazily, as MXNet's name manager does."""
        if self._name is None:
            self._name = _fresh_name("var" if self.is_variable else self.op.name.lower())
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def is_variable(self) -> bool:
        """True for a ``null`` node (a graph input)."""
        return self.op.name == "null"

    @property
    def num_outputs(self) -> int:
        """How many outputs the node has."""
        return len(self.types)

    def __repr__(self) -> str:
        return f"<Node {self.name}: {self.op.name}>"


def topo_order(heads: Sequence[Entry], known: Container[Node] = ()) -> list[Node]:
    """Nodes reachable from ``heads``, inputs before users, in a deterministic order.

    The order is a depth-first post-order that visits inputs left to right, so two
    recordings of the same code list their nodes in the same order. A node in
    ``known`` is listed, but what only its inputs reach is not.
    """
    order: list[Node] = []
    seen: set[int] = set()
    for head in heads:
        if id(head.node) in seen:
            continue
        stack = [(head.node, iter(() if head.node in known else head.node.inputs))]
        seen.add(id(head.node))
        while stack:
            node, pending = stack[-1]
            for entry in pending:
                child = entry.node
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, iter(() if child in known else child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


# Output types -> which of their axes have length one, memoised by the types
# tuple itself (a node's ``types``): every op node pays for this on every keyed
# backward, and a training loop meets a handful of types.
_UNIT_AXES: dict[tuple, tuple] = {}
_UNIT_AXES_LIMIT = 4096  # forget them all past this many (bounded memory)


def unit_axes(types: tuple[TensorType, ...]) -> tuple:
    """Which axes of each output type have length one: the only size fact that a
    program's kernels (broadcasting, indexing) and its gradient graph (which axes
    a broadcast's gradient sums) depend on. One tuple of flags per output.

    >>> unit_axes((TensorType((5, 1), np.dtype("float32")),))
    ((False, True),)
    """
    flags = _UNIT_AXES.get(types)
    if flags is None:
        if len(_UNIT_AXES) >= _UNIT_AXES_LIMIT:
            _UNIT_AXES.clear()
        flags = _UNIT_AXES[types] = tuple([tuple([size == 1 for size in t.shape]) for t in types])
    return flags


def structural_key(
    nodes: Sequence[Node], heads: Sequence[Entry], leaf_role: Callable[[Node], Any]
) -> tuple[tuple, dict[int, int]]:
    """A hashable key that identifies a graph up to array sizes, and the position
    of each node (by id) in ``nodes``.

    It records, in topological order, each node's op, canonical attrs (a dict
    built in the op's declared attribute order, so its items are canonical) and
    wiring (inputs as positions in ``nodes``), which axes of its outputs have
    length one (:func:`unit_axes`; None for an op whose output has its first
    input's type, which the key already holds), and for leaves their dtype and
    ``leaf_role(node)`` (for example whether and how it needs a gradient). Sizes
    are not in the key, so a new batch size reuses compiled kernels; the
    length-one axes of every entry, intermediate ones included, are, since
    broadcasting and the gradients that undo it depend on them (``reshape(x,
    (-1, 2))`` has a length-one axis for 2 elements, not for 10, while ``x``
    has none in either case). It is paid on every backward, so it is one pass.
    """
    position: dict[int, int] = {}
    parts: list[tuple] = []
    for i, node in enumerate(nodes):
        position[id(node)] = i
        parts.append(_key_part(node, position, leaf_role))
    key = (tuple(parts), tuple([(position[id(h.node)], h.index) for h in heads]))
    return key, position


def _key_part(node: Node, position: dict[int, int], leaf_role: Callable[[Node], Any]) -> tuple:
    """One node's share of the structural key (its inputs already have positions)."""
    if node.inputs:
        return (
            node.op,
            tuple(node.attrs.items()),
            tuple([(position[id(e.node)], e.index) for e in node.inputs]),
            None
            if node.op.keeps_type
            else node.types  # all sizes: its gradient graph is built from them
            if node.op.sized_grad
            else _UNIT_AXES.get(node.types) or unit_axes(node.types),
        )
    leaf_type = node.types[0]
    return (
        node.op,
        leaf_type.dtype.char,
        tuple([size == 1 for size in leaf_type.shape]),
        leaf_role(node),
    )


def signature(
    heads: Sequence[Entry], leaf_role: Callable[[Node], Any]
) -> tuple[list[Node], tuple, dict[int, int]]:
    """``topo_order(heads)`` and ``structural_key`` of it in one walk (what a
    backward pays on every call): returns the nodes, the key and each node's
    position by id. Equal to computing the two separately."""
    order: list[Node] = []
    position: dict[int, int] = {}
    parts: list[tuple] = []
    for head in heads:
        if id(head.node) in position:
            continue
        stack = [(head.node, iter(head.node.inputs))]
        position[id(head.node)] = -1  # on the stack: seen, not yet placed
        while stack:
            node, pending = stack[-1]
            for entry in pending:
                child = entry.node
                if id(child) not in position:
                    position[id(child)] = -1
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                position[id(node)] = len(order)
                order.append(node)
                parts.append(_key_part(node, position, leaf_role))
    key = (tuple(parts), tuple([(position[id(h.node)], h.index) for h in heads]))
    return order, key, position
