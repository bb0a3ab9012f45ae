"""Deferred shape and dtype inference for symbols.

Why deferral, and how
---------------------
The IR infers an op node's types when the node is made (``make_node``), so a
shape error surfaces at the op call. MXNet's symbols, though, are usually built
from variables whose shapes are not known yet (``mx.sym.var('data')``) and get
them only at ``infer_shape``/``bind`` time; MXNet JSON files carry no shapes at
all. symgrad keeps the one IR for both:

* A node whose inputs all have known types is made by ``make_node`` as usual,
  fully typed (a variable declared with ``shape=`` is typed).
* Otherwise the node is *pending*: a plain :class:`compiler.Node` with canonical
  attrs and wired inputs, whose output types are :data:`UNKNOWN` (shape and dtype
  None). Its attrs are checked at once; its shapes cannot be.
* ``infer_shape``, ``bind``, ``eval``, ``gradient`` and ``compile`` call
  :func:`materialize`, which walks the graph once in topological order and
  re-makes every node through ``make_node`` with the now known variable types
  (so exactly the registry's rules run, as for recorded graphs). The result is a
  new, fully typed graph; the symbol's own graph is never mutated.

Re-making instead of filling types in place keeps nodes immutable after
creation, so graphs shared between symbols (``get_internals``, composition) and
cached programs can never see a type change under them.

Two facts the registry does not hold yet are kept here, in small tables: how
many outputs an op has before its input shapes are known (needed to list a
pending node's outputs) and, for ops with parameters, how parameter shapes
follow from the data shape (MXNet infers ``fc1_weight`` from ``data``).
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgrad_compiler import Entry, GraphError, Node, OpDef, TensorType, make_node, topo_order
from symgrad_compiler.ops.common import same_shape_types
from symgrad_compiler.ops.rnn import rnn_input_shapes

from ._recorded import copy_node
from .base import MXNetShapeError

UNKNOWN = TensorType(None, None)  # type: ignore[arg-type]
"""The type of an output whose shape is not known yet."""


def is_known(entry: Entry) -> bool:
    """Whether ``entry`` has an inferred shape (its node is typed)."""
    return entry.node.types[entry.index].shape is not None


# ---------------------------------------------------------------------------
# output counts of ops before shapes are known
# ---------------------------------------------------------------------------

_OUTPUT_COUNTS: dict[str, Callable[[dict, int], int]] = {
    "SliceChannel": lambda attrs, n: attrs["num_outputs"],
    "Dropout": lambda attrs, n: 2,  # output and mask
    "BatchNorm": lambda attrs, n: 3,  # output, batch mean, batch variance
    "_split_like": lambda attrs, n: n - 1,
    "_CustomFunction": lambda attrs, n: len(attrs["callback"].output_types),
    "_CustomFunctionBackward": lambda attrs, n: n - len(attrs["callback"].output_types),
}


def output_count(opdef: OpDef, attrs: dict, num_inputs: int) -> int:
    """How many outputs ``opdef`` has with these canonical attrs, without shapes.

    Uses ``opdef.num_outputs`` when the registry declares it, else a table of the
    multi-output ops (a test checks the table against every op's type rule).
    """
    declared = getattr(opdef, "num_outputs", None)
    if declared is not None:
        return declared(attrs, num_inputs) if callable(declared) else int(declared)
    rule = _OUTPUT_COUNTS.get(opdef.name)
    return 1 if rule is None else rule(attrs, num_inputs)


def pending_node(
    opdef: OpDef, inputs: Sequence[Entry], attrs: dict, name: str | None = None
) -> Node:
    """A node whose input shapes are not all known: attrs are parsed and the
    input count checked now, types are :data:`UNKNOWN` until :func:`materialize`."""
    attrs = opdef.canonical_attrs(attrs)
    if not opdef.variadic:
        expected = opdef.input_names(attrs)
        if len(inputs) != len(expected):
            raise GraphError(
                f"{opdef.name}: expects {len(expected)} input(s) {expected}, got {len(inputs)}"
            )
    count = output_count(opdef, attrs, len(inputs))
    return Node(opdef, attrs, tuple(inputs), (UNKNOWN,) * count, name)


def apply_op(opdef: OpDef, inputs: Sequence[Entry], attrs: dict, name: str | None = None) -> Node:
    """Make a typed node if every input is known, a pending one otherwise."""
    if all(is_known(entry) for entry in inputs):
        return make_node(opdef, inputs, attrs, name)
    return pending_node(opdef, inputs, attrs, name)


# ---------------------------------------------------------------------------
# parameter shapes from data shapes (what MXNet's shape functions also fill in)
# ---------------------------------------------------------------------------


def _fully_connected_params(shapes, *, num_hidden, no_bias, flatten, **_):
    data = shapes[0]
    if data is None:
        return shapes
    features = int(np.prod(data[1:])) if flatten else data[-1]
    learned = [data, (num_hidden, features)]
    return learned if no_bias else learned + [(num_hidden,)]


def _batchnorm_params(shapes, *, axis, **_):
    data = shapes[0]
    if data is None:
        return shapes
    channels = (data[axis % len(data)],)
    return [data] + [channels] * 4


def _convolution_params(shapes, *, kernel, num_filter, num_group, no_bias, **_):
    data = shapes[0]
    if data is None:
        return shapes
    learned = [data, (num_filter, data[1] // num_group) + tuple(kernel)]
    return learned if no_bias else learned + [(num_filter,)]


def _deconvolution_params(shapes, *, kernel, num_filter, num_group, no_bias, **_):
    data = shapes[0]
    if data is None:
        return shapes
    learned = [data, (data[1], num_filter // num_group) + tuple(kernel)]
    return learned if no_bias else learned + [(num_filter,)]


def _embedding_params(shapes, *, input_dim, output_dim, **_):
    return [shapes[0], (input_dim, output_dim)]


def _layernorm_params(shapes, *, axis, **_):
    data = shapes[0]
    return shapes if data is None else [data] + [(data[axis % len(data)],)] * 2


def _instancenorm_params(shapes, **_):
    data = shapes[0]
    return shapes if data is None else [data] + [(data[1],)] * 2


def _groupnorm_params(shapes, *, num_groups, **_):
    return shapes if shapes[0] is None else [shapes[0]] + [(num_groups,)] * 2


def _leaky_relu_params(shapes, *, act_type, **_):
    data = shapes[0]
    if data is None or act_type != "prelu":
        return shapes
    return [data, (data[1],)]  # prelu: one slope per channel, as MXNet infers it


def _softmax_output_params(shapes, *, multi_output, preserve_shape, **_):
    data = shapes[0]
    if data is None:
        return shapes
    if preserve_shape:
        label = data[:-1]
    elif multi_output:
        label = (data[0],) + tuple(data[2:])
    else:
        label = (data[0],)
    return [data, label]


def _kl_sparse_reg_params(shapes, **_):
    data = shapes[0]
    return shapes if data is None else [data, (data[1],)]  # one average per feature


def _same_shape(shapes, **_):
    known = next((s for s in shapes if s is not None), None)
    return [known] * len(shapes)


_PARAMETER_SHAPES: dict[str, Callable[..., list]] = {
    "FullyConnected": _fully_connected_params,
    "BatchNorm": _batchnorm_params,
    "Convolution": _convolution_params,
    "Deconvolution": _deconvolution_params,
    "Embedding": _embedding_params,
    "LayerNorm": _layernorm_params,
    "InstanceNorm": _instancenorm_params,
    "GroupNorm": _groupnorm_params,
    "LeakyReLU": _leaky_relu_params,
    "SoftmaxOutput": _softmax_output_params,
    "IdentityAttachKLSparseReg": _kl_sparse_reg_params,
    "RNN": rnn_input_shapes,
    "add_n": _same_shape,
}


def _parameter_shape_rule(opdef: OpDef) -> Callable[..., list] | None:
    """The rule giving an op's inputs their shapes from the others' (None if none):
    a declared one, or one shape for all for ops whose inputs must have one shape
    (``elemwise_add``, ``_power``, the comparisons...), as MXNet infers them."""
    rule = _PARAMETER_SHAPES.get(opdef.name)
    if rule is None and opdef.infer is same_shape_types:
        return _same_shape
    return rule


# ---------------------------------------------------------------------------
# materialize: re-make a graph with known variable types
# ---------------------------------------------------------------------------


@dataclass
class Materialized:
    """A typed copy of a symbol's graph.

    ``nodes`` maps each original node to its typed copy, or to None where its
    shapes could not be inferred (only in partial inference).
    """

    nodes: dict[Node, Node | None] = field(default_factory=dict)

    def entry(self, entry: Entry) -> Entry | None:
        """The typed entry for an original entry (None if unknown)."""
        node = self.nodes.get(entry.node)
        return None if node is None else Entry(node, entry.index)

    def entries(self, entries: Sequence[Entry]) -> list[Entry]:
        """Typed entries, all of which must be known."""
        return [Entry(self.nodes[e.node], e.index) for e in entries]

    def type_of(self, node: Node) -> TensorType | None:
        """The typed copy's first output type, or None."""
        copy = self.nodes.get(node)
        return None if copy is None else copy.types[0]


def declared_shape(node: Node) -> tuple[int, ...] | None:
    """A variable's own shape, None if unknown (MXNet's 0 marks an unknown size)."""
    shape = node.types[0].shape
    if shape is None or any(size == 0 for size in shape):
        return None
    return shape


def _needs_rebuild(
    nodes: Sequence[Node], shapes: Mapping, dtypes: Mapping, is_train: bool | None
) -> bool:
    for node in nodes:
        if node.is_variable:
            own = node.types[0]
            if own.shape is None or (node.name in shapes and tuple(shapes[node.name]) != own.shape):
                return True
            if node.name in dtypes and np.dtype(dtypes[node.name]) != own.dtype:
                return True
        elif node.types and node.types[0].shape is None:
            return True
        elif (
            is_train is not None
            and node.op.uses_train_mode
            and node.attrs.get("is_train") != is_train
        ):
            return True
    return False


def materialize(
    heads: Sequence[Entry],
    shapes: Mapping[str, Any] | None = None,
    dtypes: Mapping[str, Any] | None = None,
    is_train: bool | None = None,
    partial: bool = False,
) -> Materialized:
    """A typed copy of the graph of ``heads``.

    Parameters
    ----------
    heads : list of Entry
        The outputs whose graph is copied.
    shapes, dtypes : dict, optional
        Types of variables by name; they override the declared ones.
    is_train : bool, optional
        If given, the ``is_train`` attr of Dropout/BatchNorm nodes is set to it.
    partial : bool
        Leave nodes whose shapes cannot be inferred as None instead of raising.

    Raises
    ------
    MXNetShapeError
        When an op rejects the inferred shapes (the error names the node), or when
        some argument's shape cannot be inferred and ``partial`` is false.
    """
    shapes = dict(shapes or {})
    dtypes = dict(dtypes or {})
    nodes = topo_order(heads)
    if not _needs_rebuild(nodes, shapes, dtypes, is_train):
        return Materialized({node: node for node in nodes})
    var_shape: dict[Node, tuple | None] = {}
    var_dtype: dict[Node, np.dtype | None] = {}
    for node in nodes:
        if node.is_variable:
            given = shapes.get(node.name)
            var_shape[node] = (
                tuple(int(s) for s in given) if given is not None else declared_shape(node)
            )
            given_dtype = dtypes.get(node.name)
            var_dtype[node] = (
                np.dtype(given_dtype) if given_dtype is not None else node.types[0].dtype
            )
    _propagate_dtypes(nodes, var_dtype)
    fills: dict[Node, tuple] = {}  # creation nodes' zero dims learned from their consumers
    unknown_dims = sum(_zero_dims(node) for node in nodes)
    # each round learns a variable's shape or a zero dim, or is the last
    for _ in range(len(nodes) + unknown_dims + 1):
        try:
            result, learned = _walk(nodes, var_shape, var_dtype, is_train, fills)
        except _ShapeConflict as conflict:
            if not _fill_zero_dims(conflict, var_shape, var_dtype, is_train, fills):
                raise conflict.error from None
            continue
        if not learned:
            break
    if not partial:
        unknown = [node.name for node in nodes if node.is_variable and result.nodes[node] is None]
        if unknown:
            raise MXNetShapeError(
                f"cannot infer the shapes of {unknown}: give them by name, as in "
                f"infer_shape({unknown[0]}=(...)) or simple_bind(ctx, {unknown[0]}=(...)), "
                "or declare them with mx.sym.var(name, shape=...)"
            )
    return result


def _propagate_dtypes(nodes: Sequence[Node], var_dtype: dict[Node, np.dtype | None]) -> None:
    """A variable of unknown dtype takes the dtype of a sibling input (MXNet infers
    ``fc1_weight``'s dtype from ``data``'s); float32 when nothing says."""
    for node in nodes:
        if node.is_variable or node.op.name in ("Cast",):
            continue
        siblings = [var_dtype.get(e.node) for e in node.inputs if e.node.is_variable]
        known = next((d for d in siblings if d is not None), None)
        if known is None:
            continue
        for entry in node.inputs:
            if entry.node.is_variable and var_dtype.get(entry.node) is None:
                var_dtype[entry.node] = known
    for node, dtype in var_dtype.items():
        if dtype is None:
            var_dtype[node] = np.dtype(np.float32)


class _ShapeConflict(Exception):
    """An op rejected its inputs' shapes: the node, its typed inputs and the error."""

    def __init__(self, node: Node, inputs: list[Entry], error: MXNetShapeError):
        super().__init__(str(error))
        self.node, self.inputs, self.error = node, inputs, error


def _walk(
    nodes, var_shape, var_dtype, is_train, fills: Mapping[Node, tuple] | None = None
) -> tuple[Materialized, bool]:
    fills = fills or {}
    result = Materialized()
    learned = False
    for node in nodes:
        if node.is_variable:
            shape = var_shape[node]
            result.nodes[node] = (
                None
                if shape is None
                else copy_node(
                    node, dict(node.attrs), (), (TensorType(shape, var_dtype[node]),), node.name
                )
            )
            continue
        inputs = [result.entry(e) for e in node.inputs]
        if any(entry is None for entry in inputs):
            learned |= _learn_parameter_shapes(node, inputs, var_shape)
            result.nodes[node] = None
            continue
        attrs = dict(node.attrs)
        if is_train is not None and node.op.uses_train_mode:
            attrs["is_train"] = is_train
        if node in fills:
            attrs["shape"] = fills[node]
        try:
            result.nodes[node] = make_node(node.op, inputs, attrs, node.name)
        except GraphError as err:
            raise _ShapeConflict(
                node, inputs, MXNetShapeError(f"in node {node.name!r}: {err}")
            ) from None
    return result, learned


# ---------------------------------------------------------------------------
# zero dims: sizes MXNet leaves to inference (the begin states of exported cells)
# ---------------------------------------------------------------------------


def _zero_dims(node: Node) -> int:
    """How many dims of a creation node's ``shape`` attr are 0 (unknown, as MXNet
    1.x reads them: ``_zeros(shape=(0, 128))`` takes its batch size from the graph)."""
    if node.inputs or node.is_variable or node.op.kind != "creation":
        return 0
    return sum(1 for size in node.attrs.get("shape", ()) if size == 0)


def _free_axis(node: Node) -> int | None:
    """The axis on which the inputs of an op that joins equal shapes may differ
    (Concat's ``dim``; None for elementwise ops and stack, which need equal
    shapes); -1 for ops whose inputs need not agree at all."""
    if node.op.kind == "elemwise" or node.op.name == "stack":
        return None
    if node.op.name == "Concat":
        return node.attrs["dim"]
    return -1


def _wanted_shape(conflict: _ShapeConflict) -> list[int | None] | None:
    """Per axis, the size the inputs of an op that needs equal shapes agree on
    (from the inputs whose size there is not 0, None where that is unknown or
    the op lets it differ); None for other ops."""
    free = _free_axis(conflict.node)
    shapes = [entry.shape for entry in conflict.inputs]
    if free == -1 or len({len(shape) for shape in shapes}) != 1:
        return None
    free = None if free is None else free % len(shapes[0])
    return [
        None
        if axis == free
        else max((shape[axis] for shape in shapes if shape[axis] != 0), default=None)
        for axis in range(len(shapes[0]))
    ]


def _wanted_by_rule(conflict: _ShapeConflict) -> list | None:
    """Per input, the shape the op's parameter-shape rule gives it from the other
    inputs (an RNN's begin states from its data), or None."""
    rule = _parameter_shape_rule(conflict.node.op)
    if rule is None:
        return None
    shapes = rule([entry.shape for entry in conflict.inputs], **conflict.node.attrs)
    return [None if shape is None else list(shape) for shape in shapes]


def _fill_zero_dims(
    conflict: _ShapeConflict, var_shape, var_dtype, is_train, fills: dict[Node, tuple]
) -> bool:
    """Learn zero dims of the creation nodes upstream of a rejected op that needs
    equal input shapes (elementwise ops, Concat off its axis, stack) from its
    other inputs, as MXNet's backward shape inference does; whether any was
    learned.

    Which dim of an input comes from which zero dim of a creation node is found by
    probing: the input's ancestors are inferred again with that dim set to a size
    no other axis has, and the input's axes showing that size take the size the
    op's other inputs give. This follows the size through any op (FullyConnected
    keeps the batch axis, elementwise ops keep every axis) without a backward
    rule per op.
    """
    shared = _wanted_shape(conflict)
    wanted_shapes = (
        [shared] * len(conflict.inputs) if shared is not None else _wanted_by_rule(conflict)
    )
    if wanted_shapes is None:
        return False
    learned = False
    for original, typed, wanted in zip(conflict.node.inputs, conflict.inputs, wanted_shapes):
        if wanted is None or len(wanted) != len(typed.shape):
            continue
        missing = [
            axis for axis, size in enumerate(typed.shape) if size == 0 and wanted[axis]
        ]  # None or 0: not known either
        if not missing:
            continue
        ancestors = topo_order([original])
        for source in ancestors:
            shape = fills.get(source, source.attrs.get("shape", ())) if _zero_dims(source) else ()
            for dim, size in enumerate(shape):
                if size != 0:
                    continue
                probe = 1_000_003 + 2 * dim  # larger than any real axis
                trial = dict(fills)
                trial[source] = tuple(probe if i == dim else s for i, s in enumerate(shape))
                try:
                    # a copy: a probe must not teach parameter shapes
                    probed, _ = _walk(ancestors, dict(var_shape), var_dtype, is_train, trial)
                except _ShapeConflict:
                    continue
                entry = probed.entry(original)
                if entry is None:
                    continue
                sizes = {wanted[axis] for axis in missing if entry.shape[axis] == probe}
                if len(sizes) == 1:
                    shape = tuple(sizes.pop() if i == dim else s for i, s in enumerate(shape))
                    fills[source] = shape
                    learned = True
    return learned


def _learn_parameter_shapes(
    node: Node, inputs: Sequence[Entry | None], var_shape: dict[Node, tuple | None]
) -> bool:
    rule = _parameter_shape_rule(node.op)
    if rule is None:
        return False
    known = [None if e is None else e.shape for e in inputs]
    learned = False
    for entry, shape in zip(node.inputs, rule(known, **node.attrs)):
        if shape is not None and entry.node.is_variable and var_shape.get(entry.node) is None:
            var_shape[entry.node] = tuple(shape)
            learned = True
        elif shape is not None and not entry.node.is_variable:
            learned |= _learn_packed(entry, tuple(shape), var_shape)
    return learned


def _partial_shape(entry: Entry, var_shape: dict[Node, tuple | None]) -> tuple | None:
    """A variable's shape (learned, or declared with 0 for unknown sizes), or the
    size of a flattening Reshape of one; None otherwise."""
    node = entry.node
    if node.is_variable:
        declared = node.attrs.get("__shape__")  # kept as written when it holds a 0
        return (
            var_shape.get(node)
            or node.types[0].shape
            or (tuple(ast.literal_eval(declared)) if declared else None)
        )
    if node.op.name == "Reshape" and tuple(node.attrs["shape"]) == (-1,):
        inner = _partial_shape(node.inputs[0], var_shape)
        return None if inner is None else (int(np.prod(inner)),)
    return None


def _learn_packed(entry: Entry, shape: tuple, var_shape: dict[Node, tuple | None]) -> bool:
    """Learn the variables packed into an RNN's parameter vector of ``shape``
    (``_rnn_param_concat`` of flattened weights, as MXNet's RNN layers write it):
    the weights of unknown input size share the size left over, as MXNet infers."""
    node = entry.node
    if node.op.name != "_rnn_param_concat" or len(shape) != 1:
        return False
    pieces = []  # (variable, declared shape) of the flattened weights of unknown size
    known = 0
    for part in node.inputs:
        size = _partial_shape(part, var_shape)
        if size is not None and size[0] != 0:
            known += size[0]
            continue
        inner = part.node.inputs[0] if part.node.op.name == "Reshape" else part
        declared = _partial_shape(inner, var_shape) if inner.node.is_variable else None
        if declared is None or declared.count(0) != 1:
            return False
        pieces.append((inner.node, declared))
    factor = sum(int(np.prod([s for s in declared if s])) for _, declared in pieces)
    if not pieces or factor == 0 or (shape[0] - known) % factor:
        return False
    missing = (shape[0] - known) // factor
    for variable, declared in pieces:
        var_shape[variable] = tuple(missing if s == 0 else s for s in declared)
    return True


def warn_unknown(names: Sequence[str]) -> None:
    """MXNet's warning when ``infer_shape`` cannot decide some argument shapes."""
    warnings.warn(
        f"Cannot decide shape for the following arguments: {list(names)}. "
        "Consider providing them as input.",
        stacklevel=3,
    )


__all__ = [
    "UNKNOWN",
    "Materialized",
    "apply_op",
    "declared_shape",
    "is_known",
    "materialize",
    "output_count",
    "pending_node",
    "warn_unknown",
]
