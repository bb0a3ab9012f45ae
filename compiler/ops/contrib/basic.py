"""Small contrib ops: quadratic, div_sqrt_dim, the straight-through and
gradient-scaling ops, allclose, index_array, arange_like, index_copy, boolean_mask,
SyncBatchNorm and BatchNormWithReLU."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...expr import Expr
from ...ir import GraphError, TensorType
from ...registry import (
    Attr,
    OpDef,
    TestSpec,
    as_axes,
    as_bool,
    as_float,
    as_int,
    as_optional_int,
    get_op,
    register,
    same_as_first,
)
from ..common import F, normalize_axis
from ..nn import _batchnorm, _batchnorm_types, batchnorm_grad

# ---------------------------------------------------------------------------
# quadratic and div_sqrt_dim
# ---------------------------------------------------------------------------

_QUADRATIC_ATTRS = {"a": Attr(as_float, 0.0), "b": Attr(as_float, 0.0), "c": Attr(as_float, 0.0)}


def _quadratic(x: np.ndarray, *, a: float, b: float, c: float) -> np.ndarray:
    with np.errstate(all="ignore"):  # inf and NaN results are silent, as in MXNet
        return (a * x * x + b * x + c).astype(x.dtype, copy=False)


def quadratic_grad(g: Expr, x: Expr, *, out: Expr, a: float, b: float, c: float) -> Expr:
    """g * (2 a x + b)"""
    return g * (x * (2.0 * a) + b)


register(
    OpDef(
        name="_contrib_quadratic",
        infer=same_as_first,
        impl=_quadratic,
        grad=quadratic_grad,
        attrs=_QUADRATIC_ATTRS,
        kind="elemwise",
        scalar="{a} * {0} * {0} + {b} * {0} + {c}",
        doc="a x^2 + b x + c, elementwise.\n\nGradient\n--------\ng (2 a x + b)",
        test=TestSpec(attrs={"a": 1.5, "b": -0.5, "c": 2.0}),
    )
)


def _div_sqrt_dim(x: np.ndarray) -> np.ndarray:
    return (x / np.sqrt(x.shape[-1])).astype(x.dtype, copy=False)


def div_sqrt_dim_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / sqrt(d), d the length of the last axis"""
    return g * (1.0 / math.sqrt(x.shape[-1]))


register(
    OpDef(
        name="_contrib_div_sqrt_dim",
        infer=same_as_first,
        impl=_div_sqrt_dim,
        grad=div_sqrt_dim_grad,
        doc="data / sqrt(data.shape[-1]) (attention's scaling).\n\nGradient\n--------\ng / sqrt(d)",
        test=TestSpec(shapes=((2, 3, 4),)),
    )
)


# ---------------------------------------------------------------------------
# straight-through and gradient-scaling ops: their gradients are by design not
# their forward's derivative, so no finite-difference TestSpec (exempted in
# tests/test_ops_generated.py, tested in tests/test_contrib.py)
# ---------------------------------------------------------------------------


def gradient_multiplier_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g * scalar (the forward is the identity)"""
    return g * scalar


register(
    OpDef(
        name="_contrib_gradientmultiplier",
        infer=same_as_first,
        impl=lambda x, *, scalar: x.copy(),
        grad=gradient_multiplier_grad,
        attrs={"scalar": Attr(as_float)},
        kind="elemwise",
        scalar="{0}",
        doc="The identity, whose gradient is scaled by ``scalar`` (a gradient "
        "reversal layer with -1).\n\nGradient\n--------\ng * scalar",
    )
)


def straight_through_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g, as if the op were the identity (straight-through estimator)"""
    return g


def _round_half_away(x: np.ndarray) -> np.ndarray:
    # copysign keeps the sign of zero, as C's round and MXNet (round(-0.0) is -0.0)
    return np.copysign(np.floor(np.abs(x) + 0.5), x).astype(x.dtype, copy=False)


register(
    OpDef(
        name="_contrib_round_ste",
        infer=same_as_first,
        impl=_round_half_away,
        grad=straight_through_grad,
        kind="elemwise",
        scalar="np.copysign(np.floor(abs({0}) + 0.5), {0})",
        doc="Round half away from zero, with the identity's gradient.\n\nGradient\n--------\ng",
    )
)
register(
    OpDef(
        name="_contrib_sign_ste",
        infer=same_as_first,
        impl=lambda x: np.sign(x),
        grad=straight_through_grad,
        kind="elemwise",
        scalar="vm.sign({0})",
        doc="sign(x), with the identity's gradient.\n\nGradient\n--------\ng",
    )
)


# ---------------------------------------------------------------------------
# allclose, index_array, arange_like (no gradient)
# ---------------------------------------------------------------------------


def _allclose_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    if types[0].shape != types[1].shape:
        raise GraphError("a and b must have one shape")
    return [TensorType((), np.dtype(np.uint8))]


def _allclose(
    a: np.ndarray, b: np.ndarray, *, rtol: float, atol: float, equal_nan: bool
) -> np.ndarray:
    return np.array(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan), dtype=np.uint8)


register(
    OpDef(
        name="_contrib_allclose",
        infer=_allclose_types,
        impl=_allclose,
        inputs=("a", "b"),
        differentiable=False,
        attrs={
            "rtol": Attr(as_float, 1e-5),
            "atol": Attr(as_float, 1e-8),
            "equal_nan": Attr(as_bool, True),
        },
        doc="1 (uint8, shape ()) if |a - b| <= atol + rtol |b| everywhere, else 0.",
        test=TestSpec(shapes=((3, 4), (3, 4))),
    )
)


def _index_axes(ndim: int, axes: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(range(ndim)) if axes is None else tuple(normalize_axis(a, ndim) for a in axes)


def _index_array_types(
    types: Sequence[TensorType], *, axes: tuple[int, ...] | None
) -> list[TensorType]:
    shape = types[0].shape
    return [TensorType(shape + (len(_index_axes(len(shape), axes)),), np.dtype(np.int64))]


def _index_array(data: np.ndarray, *, axes: tuple[int, ...] | None) -> np.ndarray:
    grids = np.indices(data.shape, dtype=np.int64)
    picked = [grids[a] for a in _index_axes(data.ndim, axes)]
    return np.stack(picked, axis=-1) if picked else np.zeros(data.shape + (0,), dtype=np.int64)


register(
    OpDef(
        name="_contrib_index_array",
        infer=_index_array_types,
        impl=_index_array,
        attrs={"axes": Attr(as_axes, None)},
        differentiable=False,
        doc="Each element's index (int64): shape data.shape + (len(axes),).",
        test=TestSpec(shapes=((2, 3),), attrs={"axes": (-1, 0)}),
    )
)


def _arange_like_types(
    types: Sequence[TensorType], *, start: float, step: float, repeat: int, axis: int | None
) -> list[TensorType]:
    shape = types[0].shape
    if axis is not None:
        shape = (shape[normalize_axis(axis, len(shape))],)
    return [TensorType(shape, types[0].dtype)]


def _arange_like(
    data: np.ndarray, *, start: float, step: float, repeat: int, axis: int | None
) -> np.ndarray:
    shape = data.shape if axis is None else (data.shape[axis % data.ndim],)
    count = int(np.prod(shape))
    values = start + step * (np.arange(count) // max(repeat, 1))
    return values.astype(data.dtype).reshape(shape)


register(
    OpDef(
        name="_contrib_arange_like",
        infer=_arange_like_types,
        impl=_arange_like,
        differentiable=False,
        shape_only=(0,),
        attrs={
            "start": Attr(as_float, 0.0),
            "step": Attr(as_float, 1.0),
            "repeat": Attr(as_int, 1),
            "axis": Attr(as_optional_int, None),
        },
        doc="start, start + step, ... shaped like data (or like its ``axis``), "
        "each value repeated ``repeat`` times.",
        test=TestSpec(shapes=((2, 3),), attrs={"start": 1.0, "step": 0.5, "repeat": 2}),
    )
)


# ---------------------------------------------------------------------------
# index_copy
# ---------------------------------------------------------------------------


def _index_copy_types(types: Sequence[TensorType]) -> list[TensorType]:
    old, index, new = types
    if len(index.shape) != 1 or new.shape != index.shape + old.shape[1:]:
        raise GraphError(f"new_tensor must be {index.shape + old.shape[1:]}")
    if old.dtype != new.dtype:
        raise GraphError("old_tensor and new_tensor must have one dtype")
    return [old]


def _index_copy(old: np.ndarray, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    out = old.copy()
    out[index.astype(np.int64)] = new
    return out


def index_copy_grad(
    g: Expr, old: Expr, index: Expr, new: Expr, *, out: Expr
) -> tuple[Expr | None, ...]:
    """old: g with the copied rows zeroed; new: the rows of g at index"""
    return (F._contrib_index_copy(g, index, F.zeros_like(new)), None, F.take(g, index, axis=0))


def _index_copy_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (5, 3)), np.array([3.0, 0.0]), rng.uniform(-2, 2, (2, 3))]


register(
    OpDef(
        name="_contrib_index_copy",
        infer=_index_copy_types,
        impl=_index_copy,
        grad=index_copy_grad,
        inputs=("old_tensor", "index_vector", "new_tensor"),
        kind="gather",
        doc="old_tensor with its rows at index_vector replaced by new_tensor's.\n\n"
        "Gradient\n--------\nold: g with those rows zeroed; new: g's rows there",
        test=TestSpec(make_inputs=_index_copy_inputs, wrt=(0, 2)),
    )
)


# ---------------------------------------------------------------------------
# boolean_mask: its output length depends on the mask's values
# ---------------------------------------------------------------------------


def _boolean_mask_types(types: Sequence[TensorType], *, axis: int) -> list[TensorType]:
    raise GraphError(
        "the output length of boolean_mask depends on the mask's values: "
        "it runs imperatively (mx.nd), not inside a symbol"
    )


def _boolean_mask(data: np.ndarray, index: np.ndarray, *, axis: int) -> np.ndarray:
    if axis != 0:
        raise GraphError(f"axis={axis}: only axis 0 is supported (as in MXNet)")
    if index.ndim != 1 or index.shape[0] != data.shape[0]:
        raise GraphError(f"index of shape {index.shape} must be 1-D of length {data.shape[0]}")
    return data[index != 0]


def boolean_mask_grad(
    g: Expr, data: Expr, index: Expr, *, out: Expr, axis: int
) -> tuple[Expr | None, ...]:
    """g's rows back at the rows the mask kept, zeros elsewhere"""
    return F._backward_contrib_boolean_mask(g, data, index, axis=axis), None


register(
    OpDef(
        name="_contrib_boolean_mask",
        infer=_boolean_mask_types,
        impl=_boolean_mask,
        grad=boolean_mask_grad,
        inputs=("data", "index"),
        attrs={"axis": Attr(as_int, 0)},
        kind="opaque",
        doc="The rows of data whose index entry is nonzero.\n\nGradient\n--------\n"
        "g scattered back to the kept rows",
    )
)


def _boolean_unmask_types(types: Sequence[TensorType], *, axis: int) -> list[TensorType]:
    return [TensorType(types[1].shape, types[0].dtype)]


def _boolean_unmask(g: np.ndarray, like: np.ndarray, index: np.ndarray, *, axis: int) -> np.ndarray:
    out = np.zeros(like.shape, dtype=g.dtype)
    out[index != 0] = g
    return out


register(
    OpDef(
        name="_backward_contrib_boolean_mask",
        infer=_boolean_unmask_types,
        impl=_boolean_unmask,
        shape_only=(1,),
        differentiable=False,
        inputs=("grad", "data", "index"),
        attrs={"axis": Attr(as_int, 0)},
        kind="opaque",
        doc="Zeros shaped like data with grad's rows at the mask's nonzero rows "
        "(not differentiable: its gradient, boolean_mask, has a value-dependent "
        "shape that no recorded graph can hold).",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (2, 3)),
                np.zeros((4, 3)),
                np.array([0, 1, 0, 1.0]),
            ],
            wrt=(0,),
        ),
    )
)

# ---------------------------------------------------------------------------
# SyncBatchNorm: on one device, BatchNorm over axis 1 (ndev and key name the
# devices that would share statistics)
# ---------------------------------------------------------------------------


def _sync_types(
    types: Sequence[TensorType], *, ndev: int, key: str, **attrs: Any
) -> list[TensorType]:
    return _batchnorm_types(types, axis=1, **attrs)


def _sync_batchnorm(
    *arrays: np.ndarray, ndev: int, key: str, **attrs: Any
) -> np.ndarray | tuple[np.ndarray, ...]:
    return _batchnorm(*arrays, axis=1, **attrs)


def sync_batchnorm_grad(
    gs: tuple[Expr, ...], *inputs: Expr, out: tuple[Expr, ...], ndev: int, key: str, **attrs: Any
) -> Expr | tuple[Expr | None, ...]:
    """BatchNorm's gradient over axis 1"""
    return batchnorm_grad(gs, *inputs, out=out, axis=1, **attrs)


_BN = get_op("BatchNorm")
SYNC_BATCHNORM = register(
    OpDef(
        name="_contrib_SyncBatchNorm",
        infer=_sync_types,
        impl=_sync_batchnorm,
        grad=sync_batchnorm_grad,
        inputs=_BN.inputs,
        aux=_BN.aux,
        uses_train_mode=True,
        visible_outputs=1,
        kind="opaque",
        attrs={
            **{k: v for k, v in _BN.attrs.items() if k != "axis"},
            "ndev": Attr(as_int, 1),
            "key": Attr(str, ""),
        },
        doc="Batch normalisation over axis 1 with statistics shared across ``ndev`` "
        "devices; on one CPU it is BatchNorm.\n\nGradient\n--------\nBatchNorm's",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (4, 3, 2)),
                rng.uniform(0.5, 1.5, (3,)),
                rng.uniform(-1, 1, (3,)),
                np.zeros(3),
                np.ones(3),
            ],
            wrt=(0, 1, 2),
            attrs={"fix_gamma": False, "is_train": True, "key": "k"},
        ),
    )
)


# BatchNormWithReLU: relu(BatchNorm(x)), MXNet's fused CPU kernel


def _bn_relu(*arrays: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
    out, mean, inverse_std = _batchnorm(*arrays, **attrs)
    return np.maximum(out, 0).astype(out.dtype, copy=False), mean, inverse_std


def bn_relu_grad(
    gs: tuple[Expr, ...], *inputs: Expr, out: tuple[Expr, ...], **attrs: Any
) -> Expr | tuple[Expr | None, ...]:
    """BatchNorm's gradient of g where the output is positive"""
    passed = gs[0] * F._greater_scalar(out[0], scalar=0.0)
    return batchnorm_grad((passed, *gs[1:]), *inputs, out=out, **attrs)


BN_RELU = register(
    OpDef(
        name="_contrib_BatchNormWithReLU",
        infer=_batchnorm_types,
        impl=_bn_relu,
        grad=bn_relu_grad,
        inputs=_BN.inputs,
        aux=_BN.aux,
        uses_train_mode=True,
        visible_outputs=1,
        kind="opaque",
        attrs=dict(_BN.attrs),
        doc="relu(BatchNorm(data)) in one op.\n\nGradient\n--------\nBatchNorm's gradient "
        "of g where the output is positive",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (4, 3, 2)),
                rng.uniform(0.5, 1.5, (3,)),
                rng.uniform(-1, 1, (3,)),
                np.zeros(3),
                np.ones(3),
            ],
            wrt=(0, 1, 2),
            attrs={"fix_gamma": False, "is_train": True},
            order=1,
        ),
    )
)


# Output counts before shapes are known (read by the Symbol frontend for nodes
# whose input shapes are pending), for the ops above with several outputs.
for _opdef, _count in ((SYNC_BATCHNORM, 3), (BN_RELU, 3)):
    _opdef.num_outputs = _count
del _opdef, _count
