"""Algebraic simplification: a table of small rules, one identity each.

Every rule keeps values exactly as the interpreter computes them, NaN and inf
included (so no ``x * 0 -> 0``), and decides only from op, attrs, ranks and which
axes have length one, never from sizes that a new batch could change.
"""

from __future__ import annotations

from ..ir import Entry, Node
from ..ops.reduce import reduced_axes
from ..registry import NEGATIVE_ZERO
from .rewrite import node as make


def _input(n: Node, i: int = 0) -> Entry:
    return n.inputs[i]


def _op(entry: Entry) -> str:
    return entry.node.op.name


def _same_shape(a: Entry, b: Entry) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def _scalar_is(n: Node, name: str, value: float) -> bool:
    return n.op.name == name and n.attrs["scalar"] == value


def identity_scalar_ops(n: Node) -> Entry | None:
    """x * 1, x / 1, x + (-0), x - 0, x ** 1  ->  x; x + 0 -> x for integers only
    (for floats -0 + 0 is +0)"""
    integer = n.types[0].dtype.kind in "iub"
    if (
        _scalar_is(n, "_mul_scalar", 1.0)
        or _scalar_is(n, "_div_scalar", 1.0)
        or (n.op.name == "_plus_scalar" and n.attrs["scalar"] is NEGATIVE_ZERO)
        or (integer and _scalar_is(n, "_plus_scalar", 0.0))
        or _scalar_is(n, "_minus_scalar", 0.0)
        or _scalar_is(n, "_power_scalar", 1.0)
    ):
        return _input(n)
    return None


def double_negation(n: Node) -> Entry | None:
    """-(-x)  ->  x"""
    if n.op.name == "negative" and _op(_input(n)) == "negative":
        return _input(_input(n).node)
    return None


def negate_scaled(n: Node) -> Entry | None:
    """-(x * s)  ->  x * (-s)"""
    if n.op.name == "negative" and _op(_input(n)) == "_mul_scalar":
        inner = _input(n).node
        return make("_mul_scalar", _input(inner), scalar=-inner.attrs["scalar"])
    return None


def square_power(n: Node) -> Entry | None:
    """x ** 2  ->  square(x), which is exact"""
    if _scalar_is(n, "_power_scalar", 2.0):
        return make("square", _input(n))
    return None


def no_op_shape_change(n: Node) -> Entry | None:
    """broadcast_like / _unbroadcast / reshape_like to the shape x already has  ->  x"""
    if n.op.name in ("broadcast_like", "_unbroadcast", "reshape_like") and _same_shape(
        _input(n), Entry(n, 0)
    ):
        return _input(n)
    return None


def no_op_reshape(n: Node) -> Entry | None:
    """Reshape that keeps the shape, when that holds for every size: codes that copy
    axes, or a shape of ones  ->  x"""
    if n.op.name != "Reshape" or n.attrs["reverse"]:
        return None
    spec, x = n.attrs["shape"], _input(n)
    size_free = all(code in (0, -2) for code in spec) or (spec == (-1,) and len(x.shape) == 1)
    ones = all(s == 1 for s in x.shape) and all(s == 1 for s in n.types[0].shape)
    if x.shape == n.types[0].shape and (size_free or ones or _one_axis_inferred(spec, x.shape)):
        return x
    return None


def _one_axis_inferred(spec: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``spec`` gives ``shape`` back for every size of its one axis not of
    length one (axes of length one are part of a program's key): -1 there, 1 or 0
    on the others (BatchNorm's (C,) statistics laid along axis 1 of (1, C, 1, 1))."""
    longer = [axis for axis, size in enumerate(shape) if size != 1]
    return (
        len(spec) == len(shape)
        and len(longer) == 1
        and spec[longer[0]] == -1
        and all(code in (0, 1) for axis, code in enumerate(spec) if axis != longer[0])
    )


def reshape_of_reshape(n: Node) -> Entry | None:
    """Reshape(Reshape(x, a), b)  ->  Reshape(x, b) when b's codes are sizes and -1
    (none copies an axis of the middle shape): both keep the elements' order"""
    if n.op.name != "Reshape" or n.attrs["reverse"] or _op(_input(n)) != "Reshape":
        return None
    spec = n.attrs["shape"]
    if any(code == 0 or code < -1 for code in spec):
        return None
    return make("Reshape", _input(_input(n).node), shape=spec, reverse=False)


def no_op_flatten(n: Node) -> Entry | None:
    """Flatten(x) of a matrix  ->  x, for every size"""
    if n.op.name == "Flatten" and len(_input(n).shape) == 2:
        return _input(n)
    return None


def no_op_cast(n: Node) -> Entry | None:
    """Cast to the dtype x already has  ->  x"""
    if n.op.name == "Cast" and _input(n).dtype == n.types[0].dtype:
        return _input(n)
    return None


def times_ones(n: Node) -> Entry | None:
    """x * ones_like(y)  ->  x (or x broadcast to the result's shape)"""
    if n.op.name not in ("broadcast_mul", "elemwise_mul"):
        return None
    for keep, ones in ((0, 1), (1, 0)):
        if _op(_input(n, ones)) == "ones_like" and _input(n, keep).dtype == n.types[0].dtype:
            x, like = _input(n, keep), _input(_input(n, ones).node)
            if x.shape == n.types[0].shape:
                return x
            if like.shape == n.types[0].shape:
                return make("broadcast_like", x, like)
            return None  # both broadcast: the product's shape is neither's
    return None


def plus_zeros(n: Node) -> Entry | None:
    """x + zeros_like(y)  ->  x, where shapes agree, for integers (for floats
    -0 + 0 is +0)"""
    if n.op.name not in ("broadcast_add", "elemwise_add") or n.types[0].dtype.kind not in "iub":
        return None
    for keep, zeros in ((0, 1), (1, 0)):
        if _op(_input(n, zeros)) == "zeros_like" and _same_shape(_input(n, keep), Entry(n, 0)):
            return _input(n, keep)
    return None


def fill_of_fill(n: Node) -> Entry | None:
    """ones_like(zeros_like(x)) and the like  ->  ones_like(x): a fill needs only a
    shape, so the inner fill (and what it reads) can become dead"""
    if n.op.name in ("ones_like", "zeros_like") and _input(n).node.op.name in (
        "ones_like",
        "zeros_like",
    ):
        return make(n.op.name, _input(_input(n).node))
    return None


def fill_of_unit_shape(n: Node) -> Entry | None:
    """ones_like(x) / zeros_like(x) for x of shape (1, ..., 1)  ->  a constant, so
    that x need not be computed (a shape of ones is the same for every batch)"""
    if n.op.name in ("ones_like", "zeros_like") and all(s == 1 for s in _input(n).shape):
        op = "_ones" if n.op.name == "ones_like" else "_zeros"
        return make(op, shape=_input(n).shape, dtype=_input(n).dtype.name)
    return None


def negate_fill(n: Node) -> Entry | None:
    """-ones and -full(c)  ->  full(-c): a constant stays a constant"""
    if n.op.name == "negative" and _op(_input(n)) in ("_ones", "_full"):
        inner = _input(n).node
        value = inner.attrs["value"] if inner.op.name == "_full" else 1.0
        return make("_full", shape=inner.attrs["shape"], dtype=inner.attrs["dtype"], value=-value)
    return None


def broadcast_fill(n: Node) -> Entry | None:
    """broadcast_like(ones, y)  ->  ones_like(y) (and zeros alike)"""
    if (
        n.op.name == "broadcast_like"
        and _op(_input(n)) in ("_ones", "_zeros")
        and _input(n).dtype == _input(n, 1).dtype
    ):
        op = "ones_like" if _op(_input(n)) == "_ones" else "zeros_like"
        return make(op, _input(n, 1))
    return None


def identity_after_differentiation(n: Node) -> Entry | None:
    """stop_gradient(x), _copy(x)  ->  x: programs are already differentiated, and
    they never hand an intermediate to the user to write into"""
    if n.op.name in ("stop_gradient", "_copy"):
        return _input(n)
    return None


def fully_connected_as_dot(n: Node) -> Entry | None:
    """FullyConnected(x, W, b) of a matrix x  ->  dot(x, W^T) + b: a matrix product
    and a broadcast add, which backends run in their one-call programs (Gluon's
    Dense is this op); with ``flatten``, an x of more axes is Flatten(x) first
    (a classifier after global pooling)"""
    if n.op.name != "FullyConnected":
        return None
    x = _input(n)
    if len(x.shape) != 2:
        if not n.attrs["flatten"] or len(x.shape) < 2:
            return None
        x = make("Flatten", x)
    product = make("dot", x, _input(n, 1), transpose_b=True)
    if n.attrs["no_bias"]:
        return product
    return make("broadcast_add", product, _input(n, 2))


def sum_of_pick_grad(n: Node) -> Entry | None:
    """sum(_pick_grad(g, index, like), over the picked axis)  ->  g + 0: each row of
    the one-hot holds g once and zeros (numpy's sum starts from +0, so a -0 g sums
    to +0, as g + 0 is; NaN and inf stay); the one-hot then need not be read (a
    softmax cross-entropy's gradient, W8: a (1120, 10000) pass)"""
    if n.op.name != "sum" or _op(_input(n)) != "_pick_grad":
        return None
    pick_grad = _input(n).node
    g, like = _input(pick_grad), _input(pick_grad, 2)
    rank = len(like.shape)
    if not rank or not _same_shape(g, Entry(n, 0)):
        return None
    summed = reduced_axes(rank, n.attrs["axis"], n.attrs["exclude"])
    if summed != (pick_grad.attrs["axis"] % rank,):
        return None
    return make("_plus_scalar", g, scalar=0.0)


RULES = [
    identity_after_differentiation,
    fully_connected_as_dot,
    fill_of_unit_shape,
    negate_fill,
    broadcast_fill,
    identity_scalar_ops,
    double_negation,
    negate_scaled,
    square_power,
    no_op_shape_change,
    no_op_reshape,
    reshape_of_reshape,
    no_op_flatten,
    no_op_cast,
    times_ones,
    plus_zeros,
    fill_of_fill,
    sum_of_pick_grad,
]
