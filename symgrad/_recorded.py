"""The frontend's runtime state of a recorded graph, kept beside the compiler's IR.

The compiler's :class:`~symgrad_compiler.Node` is structure only (op, attrs,
inputs, types). What recording adds lives on :class:`RecordedNode`, the node the
frontend makes for every recorded op and graph input, in fields named for what
they hold:

- ``value``: the node's computed outputs (a tuple of numpy arrays), or None
  while deferred (see :mod:`symgrad._deferred`) and once freed;
- ``freed``: True once a ``backward`` freed the graph (its values are gone);
- ``marked``: for a variable, the array marked with ``attach_grad`` whose
  gradient it collects (or :class:`~symgrad.ndarray.ndarray._Overwritten` once
  that array was written in place); None for any other node;
- ``pending``: for an op, weak references to the arrays of its outputs while
  their values are deferred (what ``backward`` settles before it frees them).

A subclass with slots rather than a table keyed by node: a node is made on every
recorded op and read on every backward, and an attribute costs no lookup.
"""

from __future__ import annotations

from typing import Any

from symgrad_compiler import Entry, Node, OpDef, TensorType
from symgrad_compiler.registry import NULL


class RecordedNode(Node):
    """A node of a recorded graph, with its runtime state (see the module)."""

    __slots__ = ("value", "freed", "marked", "pending")

    value: tuple | None
    freed: bool
    marked: Any
    pending: tuple | None

    def __init__(
        self,
        op: OpDef,
        attrs: dict,
        inputs: tuple[Entry, ...],
        types: tuple[TensorType, ...],
        name: str | None = None,
        value: tuple | None = None,
    ) -> None:
        # The base's fields are set here rather than through super().__init__:
        # a node is made per recorded op, and the call would cost a frame each.
        self.op = op
        self.attrs = attrs
        self.inputs = inputs
        self.types = types
        self._name = name
        self.value = value
        self.freed = False
        self.marked = None
        self.pending = None


def recorded_variable(data: Any, marked: Any = None) -> RecordedNode:
    """A graph input holding the numpy array ``data``; ``marked`` is the array
    whose gradient it collects, if any."""
    node = RecordedNode(NULL, {}, (), (TensorType(data.shape, data.dtype),), None, (data,))
    node.marked = marked
    return node


def program_input(node: Node) -> tuple:
    """The recorded outputs of ``node``, as a compiled program reads them.

    Raises TypeError for a node without values (its graph was freed), as reading
    them would: ``backward`` tells a graph freed by another head by it."""
    value = node.value  # a recorded graph's node (RecordedNode)
    if value is None:
        raise TypeError(f"{node.name} has no recorded value for the program to read")
    return value


def recorded_value(node: Node) -> tuple | None:
    """The values recorded on ``node``: None for one not computed or freed, and for
    a node of a Symbol built by hand (a plain compiler node)."""
    return node.value if type(node) is RecordedNode else None


def copy_node(
    node: Node,
    attrs: dict,
    inputs: tuple[Entry, ...],
    types: tuple[TensorType, ...],
    name: str | None,
) -> Node:
    """A node like ``node`` with these attrs, inputs, types and name: a recorded
    node's copy keeps its values and what its arrays are (a Symbol copied from a
    recording still evaluates with the recorded values)."""
    if type(node) is not RecordedNode:
        return Node(node.op, attrs, inputs, types, name)
    copy = RecordedNode(node.op, attrs, inputs, types, name, node.value)
    copy.marked, copy.pending = node.marked, node.pending
    return copy
