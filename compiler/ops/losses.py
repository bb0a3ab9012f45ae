"""Classification heads and losses: SoftmaxOutput, softmax_cross_entropy, one_hot,
argmax/argmin and topk.

Gradients that need a one-hot of the labels build it with ``_pick_grad`` (ones
placed at the label positions of zeros shaped like the data at run time), and
counts such as the batch size come from ``_reduced_size``, so no size is ever
an attribute of a gradient graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import (
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_dtype_name,
    as_float,
    as_int,
    as_optional_int,
    one_of,
    register,
)
from .common import F, normalize_axis


def _log_softmax_rows(z: np.ndarray, axis: int) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _one_hot_like(label: Expr, data: Expr, axis: int) -> Expr:
    """Ones at the label positions along ``axis`` of zeros shaped like ``data``."""
    ones = F.ones_like(F.Cast(F.stop_gradient(label), dtype=data.dtype.name))
    return F._pick_grad(ones, F.stop_gradient(label), data, axis=axis, mode="clip")


# ---------------------------------------------------------------------------
# SoftmaxOutput
# ---------------------------------------------------------------------------

SOFTMAX_OUTPUT_ATTRS = {
    "grad_scale": Attr(as_float, 1.0),
    "ignore_label": Attr(as_float, -1.0),
    "multi_output": Attr(as_bool, False),
    "use_ignore": Attr(as_bool, False),
    "preserve_shape": Attr(as_bool, False),
    "normalization": Attr(one_of("null", "batch", "valid"), "null"),
    "out_grad": Attr(as_bool, False),
    "smooth_alpha": Attr(as_float, 0.0),
}


def _class_layout(ndim: int, multi_output: bool, preserve_shape: bool) -> tuple[int, bool]:
    """(class axis, whether data is viewed as (N, -1) first)."""
    if multi_output:
        return 1, False
    if preserve_shape:
        return ndim - 1, False
    return 1, ndim > 2


def _softmax_output_types(
    types: Sequence[TensorType], *, multi_output: bool, preserve_shape: bool, **_attrs: Any
) -> list[TensorType]:
    data, label = types[0].shape, types[1].shape
    if len(data) < 2:
        raise GraphError("data must have a batch axis and a class axis")
    axis, _ = _class_layout(len(data), multi_output, preserve_shape)
    if multi_output:
        expected = (data[0],) + data[2:]
    elif preserve_shape:
        expected = data[:-1]
    else:
        expected = (data[0],)
    if int(np.prod(label)) != int(np.prod(expected)):
        raise GraphError(f"label must have shape {expected}, got {label}")
    return [types[0]]


def _softmax_output(
    data: np.ndarray, label: np.ndarray, *, multi_output: bool, preserve_shape: bool, **_attrs: Any
) -> np.ndarray:
    axis, flatten = _class_layout(data.ndim, multi_output, preserve_shape)
    z = data.reshape(data.shape[0], -1) if flatten else data
    shifted = z - z.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=axis, keepdims=True)).reshape(data.shape)


def softmax_output_grad(
    g: Expr,
    data: Expr,
    label: Expr,
    *,
    out: Expr,
    grad_scale: float,
    ignore_label: float,
    multi_output: bool,
    use_ignore: bool,
    preserve_shape: bool,
    normalization: str,
    out_grad: bool,
    smooth_alpha: float,
) -> tuple[Expr | None, ...]:
    """(softmax(data) - target) * grad_scale / norm, zero where label == ignore_label
    (use_ignore); the head gradient is ignored unless out_grad. The softmax is
    recomputed from data so that the rule differentiates again as a softmax."""
    axis, flatten = _class_layout(data.ndim, multi_output, preserve_shape)
    z = F.reshape(data, shape=(0, -1)) if flatten else data
    index = (
        F.reshape(label, shape=(-1,))
        if not multi_output and not preserve_shape
        else F.reshape_like(label, F.sum(z, axis=(axis,)))
    )
    target = _one_hot_like(index, z, axis)
    if smooth_alpha:
        others = F._reduced_size(z, axis=(axis,)) - 1
        target = target * (1 - smooth_alpha) + (1 - target) * smooth_alpha / others
    grad = F.softmax(z, axis=axis) - target
    valid = None
    if use_ignore:
        valid = F.Cast(
            F._not_equal_scalar(F.stop_gradient(index), scalar=ignore_label), dtype=data.dtype.name
        )
        grad = grad * F.expand_dims(valid, axis=axis)
    if normalization == "batch":
        grad = grad / F._reduced_size(data, axis=(0,))
    elif normalization == "valid":
        count = (
            F.sum(valid) if valid is not None else F._reduced_size(z, axis=(axis,), exclude=True)
        )
        grad = grad / F._maximum_scalar(count, scalar=1.0)
    if grad_scale != 1.0:
        grad = grad * grad_scale
    grad = F.reshape_like(grad, data) if flatten else grad
    if out_grad:
        grad = grad * g
    return grad, None


def _softmax_output_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (4, 5)), np.array([0, 4, 2, 1.0])]


register(
    OpDef(
        name="SoftmaxOutput",
        aliases=("Softmax",),
        infer=_softmax_output_types,
        impl=_softmax_output,
        grad=softmax_output_grad,
        inputs=("data", "label"),
        attrs=SOFTMAX_OUTPUT_ATTRS,
        kind="softmax",
        doc="Softmax forward whose backward is the cross-entropy gradient "
        "(softmax - one_hot(label)) scaled as MXNet's SoftmaxOutput does.",
        test=TestSpec(make_inputs=_softmax_output_inputs, wrt=(), order=1),
    )
)


# ---------------------------------------------------------------------------
# softmax_cross_entropy
# ---------------------------------------------------------------------------


def _cross_entropy_types(types: Sequence[TensorType]) -> list[TensorType]:
    data, label = types[0].shape, types[1].shape
    if len(data) != 2 or label != (data[0],):
        raise GraphError(f"need data (N, K) and label (N,), got {data} and {label}")
    return [TensorType((1,), types[0].dtype)]


def _softmax_cross_entropy(data: np.ndarray, label: np.ndarray) -> np.ndarray:
    log_p = _log_softmax_rows(data, 1)
    index = np.clip(label.astype(np.int64), 0, data.shape[1] - 1)
    picked = np.take_along_axis(log_p, index[:, None], axis=1)
    return np.array([-picked.sum()], dtype=data.dtype)


def softmax_cross_entropy_grad(
    g: Expr, data: Expr, label: Expr, *, out: Expr
) -> tuple[Expr | None, ...]:
    """g (softmax(data) - one_hot(label))"""
    return g * (F.softmax(data, axis=1) - _one_hot_like(label, data, 1)), None


def expand_softmax_cross_entropy(data: Expr, label: Expr) -> tuple[Expr]:
    """The op from registered ops, as its numpy implementation computes it:
    -sum(pick(log_softmax(data, axis=1), label)) as a (1,) array. Inside a
    program, the row lowerings of log_softmax and pick then run it in the
    whole-program entry (the op itself has none)."""
    picked = F.pick(F.log_softmax(data, axis=1), label, axis=1)
    return (F.reshape(-F.sum(picked), shape=(1,)),)


register(
    OpDef(
        name="softmax_cross_entropy",
        infer=_cross_entropy_types,
        impl=_softmax_cross_entropy,
        grad=softmax_cross_entropy_grad,
        expand=expand_softmax_cross_entropy,
        inputs=("data", "label"),
        kind="softmax",
        doc="Sum over the batch of -log softmax(data)[label], computed stably.",
        test=TestSpec(make_inputs=_softmax_output_inputs, wrt=(0,)),
    )
)


# ---------------------------------------------------------------------------
# one_hot, argmax, argmin (no gradient)
# ---------------------------------------------------------------------------


def _one_hot_types(
    types: Sequence[TensorType], *, depth: int, on_value: float, off_value: float, dtype: str
) -> list[TensorType]:
    return [TensorType(types[0].shape + (depth,), np.dtype(dtype))]


def _one_hot(
    indices: np.ndarray, *, depth: int, on_value: float, off_value: float, dtype: str
) -> np.ndarray:
    index = indices.astype(np.int64)
    out = np.where(index[..., None] == np.arange(depth), on_value, off_value)
    return out.astype(dtype)


register(
    OpDef(
        name="one_hot",
        infer=_one_hot_types,
        impl=_one_hot,
        inputs=("indices",),
        attrs={
            "depth": Attr(as_int),
            "on_value": Attr(as_float, 1.0),
            "off_value": Attr(as_float, 0.0),
            "dtype": Attr(as_dtype_name, "float32"),
        },
        differentiable=False,
        kind="gather",
        method="one_hot",
        doc="A new last axis of length ``depth`` holding on_value at each index "
        "(indices outside [0, depth) give a row of off_value).",
        test=TestSpec(
            make_inputs=lambda rng: [np.array([[0, 3], [5, -1.0]])],
            attrs={"depth": 4, "on_value": 2.0, "dtype": "float64"},
        ),
    )
)


def _arg_types(
    types: Sequence[TensorType], *, axis: int | None, keepdims: bool
) -> list[TensorType]:
    shape = types[0].shape
    if axis is None:
        return [TensorType((1,) * len(shape) if keepdims else (1,), types[0].dtype)]
    ax = normalize_axis(axis, len(shape))
    out = (
        tuple(1 if i == ax else s for i, s in enumerate(shape))
        if keepdims
        else tuple(s for i, s in enumerate(shape) if i != ax)
    )
    return [TensorType(out or (1,), types[0].dtype)]


def _arg_reduction(numpy_arg: Callable[..., Any]) -> Callable[..., np.ndarray]:
    def impl(x: np.ndarray, *, axis: int | None, keepdims: bool) -> np.ndarray:
        if axis is None:
            index = np.array(numpy_arg(x), dtype=x.dtype)
            return index.reshape((1,) * x.ndim if keepdims else (1,))
        out = numpy_arg(x, axis=axis, keepdims=keepdims).astype(x.dtype)
        return out.reshape(1) if out.ndim == 0 else out

    return impl


for _name, _numpy in (("argmax", np.argmax), ("argmin", np.argmin)):
    register(
        OpDef(
            name=_name,
            infer=_arg_types,
            impl=_arg_reduction(_numpy),
            attrs={"axis": Attr(as_optional_int, None), "keepdims": Attr(as_bool, False)},
            differentiable=False,
            kind="reduce",
            method=_name,
            doc=f"Index of the first {_name[3:]}imum along ``axis`` (of the "
            f"flattened array if None), in the input's dtype.",
            test=TestSpec(shapes=((3, 4),), attrs={"axis": 1}),
        )
    )


# ---------------------------------------------------------------------------
# topk
# ---------------------------------------------------------------------------

TOPK_ATTRS = {
    "axis": Attr(as_optional_int, -1),
    "k": Attr(as_int, 1),
    "ret_typ": Attr(one_of("value", "indices", "mask", "both"), "indices"),
    "is_ascend": Attr(as_bool, False),
    "dtype": Attr(as_dtype_name, "float32"),
}


def _topk_types(
    types: Sequence[TensorType],
    *,
    axis: int | None,
    k: int,
    ret_typ: str,
    is_ascend: bool,
    dtype: str,
) -> list[TensorType]:
    shape = types[0].shape
    if axis is None:
        shape, axis = (int(np.prod(shape)),), 0
    ax = normalize_axis(axis, len(shape))
    if not 1 <= k <= shape[ax]:
        raise GraphError(f"k={k} must be in [1, {shape[ax]}]")
    if ret_typ == "mask":
        return [types[0]]
    out = tuple(k if i == ax else s for i, s in enumerate(shape))
    values, indices = TensorType(out, types[0].dtype), TensorType(out, np.dtype(dtype))
    return {"value": [values], "indices": [indices], "both": [values, indices]}[ret_typ]


def topk_order(x: np.ndarray, axis: int, is_ascend: bool) -> np.ndarray:
    """Positions along ``axis`` sorted by value (ties keep their order)."""
    return np.argsort(x if is_ascend else -x, axis=axis, kind="stable")


def _topk(
    x: np.ndarray, *, axis: int | None, k: int, ret_typ: str, is_ascend: bool, dtype: str
) -> np.ndarray | tuple[np.ndarray, ...]:
    data = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis % x.ndim
    index = np.take(topk_order(data, ax, is_ascend), np.arange(k), axis=ax)
    if ret_typ == "mask":
        mask = np.zeros(data.shape, dtype=x.dtype)
        np.put_along_axis(mask, index, 1, axis=ax)
        return mask.reshape(x.shape)
    values = np.take_along_axis(data, index, axis=ax)
    results: dict[str, np.ndarray | tuple[np.ndarray, ...]] = {
        "value": values,
        "indices": index.astype(dtype),
        "both": (values, index.astype(dtype)),
    }
    return results[ret_typ]


def topk_grad(
    g: Expr | tuple[Expr, ...],
    x: Expr,
    *,
    out: Expr | tuple[Expr, ...],
    axis: int | None,
    k: int,
    ret_typ: str,
    is_ascend: bool,
    dtype: str,
) -> Expr | None:
    """values: g scattered back to the positions they came from; indices: none"""
    if ret_typ in ("indices", "mask"):
        return None
    if ret_typ == "both":
        assert isinstance(g, tuple) and isinstance(out, tuple)  # two outputs
        g, index = g[0], F.stop_gradient(out[1])
    else:
        index = F.topk(
            F.stop_gradient(x), axis=axis, k=k, ret_typ="indices", is_ascend=is_ascend, dtype=dtype
        )
    if axis is None:
        flat = F.reshape(x, shape=(-1,))
        return F.reshape_like(F._scatter_along_axis(g, index, flat, axis=0), x)
    return F._scatter_along_axis(g, index, x, axis=axis)


register(
    OpDef(
        name="topk",
        infer=_topk_types,
        impl=_topk,
        grad=topk_grad,
        attrs=TOPK_ATTRS,
        kind="gather",
        method="topk",
        doc="The k largest (smallest with is_ascend) entries along ``axis``: their "
        "values, indices, both, or a 0/1 mask. Values have a gradient.",
        test=TestSpec(
            make_inputs=lambda rng: [rng.permutation(12).reshape(3, 4) / 4.0],
            attrs={"k": 2, "ret_typ": "value"},
        ),
    )
)
