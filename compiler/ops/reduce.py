"""Reductions, and the broadcast/unbroadcast pair that gradients of broadcasting
ops are made of."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_axes, as_bool, as_shape, one_of, register
from .common import F, normalize_axis

REDUCE_ATTRS = {
    "axis": Attr(as_axes, None),
    "keepdims": Attr(as_bool, False),
    "exclude": Attr(as_bool, False),
}


def reduced_axes(ndim: int, axis: Sequence[int] | None, exclude: bool) -> tuple[int, ...]:
    """The axes a reduction sums over, as sorted non-negative ints. No axis (None
    or ``()``) reduces every axis, with or without ``exclude``, as in MXNet."""
    if not axis:
        return tuple(range(ndim))
    chosen = tuple(sorted({normalize_axis(a, ndim) for a in axis}))
    if exclude:
        chosen = tuple(a for a in range(ndim) if a not in chosen)
    return chosen


def reduce_types(
    types: Sequence[TensorType], *, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> list[TensorType]:
    """Shape rule of every reduction; a whole-array result has shape (1,) as in MXNet."""
    shape = types[0].shape
    axes = reduced_axes(len(shape), axis, exclude)
    if keepdims:
        out = tuple(1 if i in axes else s for i, s in enumerate(shape))
    else:
        out = tuple(s for i, s in enumerate(shape) if i not in axes) or (1,)
    return [TensorType(out, types[0].dtype)]


def _reduction(numpy_reduce: Callable[..., Any]) -> Callable[..., np.ndarray]:
    def impl(
        x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
    ) -> np.ndarray:
        axes = reduced_axes(x.ndim, axis, exclude)
        result = numpy_reduce(x, axis=axes, keepdims=keepdims)
        result = np.asarray(result, dtype=x.dtype)
        return result.reshape(1) if result.ndim == 0 else result

    return impl


def _sum(x: np.ndarray, axis: tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    # np.add.reduce is np.sum without its Python-level dispatch (microseconds
    # that count for the small reductions of a training step).
    # (numpy's stubs overload reduce on keepdims Literal[True]/[False], not on a bool)
    return np.add.reduce(x, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]


def _mean(x: np.ndarray, axis: tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    count = math.prod(x.shape[a] for a in axis) if axis is not None else x.size
    # (the ignore: numpy's keepdims overloads, as in _sum)
    return (
        np.add.reduce(x, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]
        / max(count, 1)
        if count
        else np.mean(x, axis=axis, keepdims=keepdims)
    )


def restore_reduced(
    g: Expr, ndim: int, axis: Sequence[int] | None, keepdims: bool, exclude: bool
) -> Expr:
    """Give a reduction's output gradient back the reduced axes (as length one), so
    that it broadcasts against the input. Uses only the rank, never sizes."""
    if keepdims:
        return g
    axes = reduced_axes(ndim, axis, exclude)
    if len(axes) == ndim:
        return F.reshape(g, shape=(1,) * ndim)
    for a in axes:
        g = F.expand_dims(g, axis=a)
    return g


def sum_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """broadcast g back over the summed axes"""
    return F.broadcast_like(restore_reduced(g, x.ndim, axis, keepdims, exclude), x)


def mean_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """broadcast g back over the averaged axes, divided by their size"""
    spread = F.broadcast_like(restore_reduced(g, x.ndim, axis, keepdims, exclude), x)
    return spread / F._reduced_size(x, axis=axis, exclude=exclude)


def extremum_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """g where x equals the extremum (every tied element gets it), else 0"""
    g = restore_reduced(g, x.ndim, axis, keepdims, exclude)
    out = restore_reduced(out, x.ndim, axis, keepdims, exclude)
    return F.broadcast_like(g, x) * F.broadcast_equal(x, out)


def prod_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """g prod(x) / x"""
    scaled = restore_reduced(g * out, x.ndim, axis, keepdims, exclude)
    return F.broadcast_like(scaled, x) / x


def nansum_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """g broadcast back where x is not NaN, 0 where it is"""
    return sum_grad(
        g, x, out=out, axis=axis, keepdims=keepdims, exclude=exclude
    ) * F.broadcast_equal(x, x)


for _name, _numpy, _rule in (
    ("sum", _sum, sum_grad),
    ("mean", _mean, mean_grad),
    ("max", np.max, extremum_grad),
    ("min", np.min, extremum_grad),
    ("prod", np.prod, prod_grad),
    ("nansum", np.nansum, nansum_grad),
):
    register(
        OpDef(
            name=_name,
            infer=reduce_types,
            impl=_reduction(_numpy),
            grad=_rule,
            attrs=REDUCE_ATTRS,
            kind="reduce",
            method=_name,
            aliases=(f"{_name}_axis",) if _name != "nansum" else (),
            doc=f"{_name} over ``axis`` (all axes if None); ``exclude`` reduces the other axes.",
            test=TestSpec(
                shapes=((3, 4),),
                attrs={"axis": (1,)},
                domain=(0.5, 2.0) if _name == "prod" else (-2.0, 2.0),
            ),
        )
    )


def _norm_types(
    types: Sequence[TensorType],
    *,
    ord: Any,
    axis: tuple[int, ...] | None,
    out_dtype: Any,
    keepdims: bool,
) -> list[TensorType]:
    out = reduce_types(types, axis=axis, keepdims=keepdims, exclude=False)[0]
    return [out._replace(dtype=np.dtype(out_dtype or types[0].dtype))]


def _norm(
    x: np.ndarray, *, ord: Any, axis: tuple[int, ...] | None, out_dtype: Any, keepdims: bool
) -> np.ndarray:
    axes = reduced_axes(x.ndim, axis, False)
    if ord == 1:
        result = np.abs(x).sum(axis=axes, keepdims=keepdims)
    else:
        result = np.sqrt((x * x).sum(axis=axes, keepdims=keepdims))
    result = np.asarray(result, dtype=out_dtype or x.dtype)
    return result.reshape(1) if result.ndim == 0 else result


def norm_grad(
    g: Expr,
    x: Expr,
    *,
    out: Expr,
    ord: Any,
    axis: tuple[int, ...] | None,
    out_dtype: Any,
    keepdims: bool,
) -> Expr:
    """ord 1: g sign(x); ord 2: g x / norm"""
    g = restore_reduced(g, x.ndim, axis, keepdims, False)
    if ord == 1:
        return F.broadcast_like(g, x) * F.sign(x)
    return x * (g / restore_reduced(out, x.ndim, axis, keepdims, False))


register(
    OpDef(
        name="norm",
        infer=_norm_types,
        impl=_norm,
        grad=norm_grad,
        attrs={
            "ord": Attr(lambda v: int(one_of("1", "2")(str(v))), 2),
            "axis": Attr(as_axes, None),
            "out_dtype": Attr(
                lambda v: None if v is None or str(v) == "None" else np.dtype(v).name, None
            ),
            "keepdims": Attr(as_bool, False),
        },
        kind="reduce",
        method="norm",
        doc="L1 (ord=1) or L2 (ord=2) norm over ``axis`` (all axes if None).",
        test=TestSpec(shapes=((3, 4),), attrs={"axis": (1,)}),
    )
)


def _reduced_size_types(
    types: Sequence[TensorType], *, axis: tuple[int, ...] | None, exclude: bool
) -> list[TensorType]:
    return [TensorType((1,), types[0].dtype)]


def _reduced_size(x: np.ndarray, *, axis: tuple[int, ...] | None, exclude: bool) -> np.ndarray:
    if axis is None and not exclude:
        size = x.size  # the gradient of a full mean: the common case, kept cheap
    else:
        size = math.prod([x.shape[a] for a in reduced_axes(x.ndim, axis, exclude)])
    return np.array([size], dtype=x.dtype)


register(
    OpDef(
        name="_reduced_size",
        infer=_reduced_size_types,
        impl=_reduced_size,
        attrs={"axis": Attr(as_axes, None), "exclude": Attr(as_bool, False)},
        differentiable=False,
        shape_only=(0,),
        kind="shape",
        doc="How many elements a reduction over ``axis`` combines, as a (1,) "
        "array, so that gradients of ``mean`` do not bake sizes into attrs.",
        test=TestSpec(attrs={"axis": (1,)}),
    )
)


# ---------------------------------------------------------------------------
# broadcasting and its reverse
# ---------------------------------------------------------------------------


def unbroadcast_axes(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    """Axes of ``shape`` to sum so that it becomes ``target`` (which broadcasts to it)."""
    lead = len(shape) - len(target)
    return tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(target) if size == 1 and shape[lead + i] != 1
    )


def _unbroadcast_types(types: Sequence[TensorType]) -> list[TensorType]:
    g, like = types
    if np.broadcast_shapes(g.shape, like.shape) != tuple(g.shape):
        raise GraphError(f"{like.shape} does not broadcast to {g.shape}")
    return [TensorType(like.shape, g.dtype)]


def _unbroadcast(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    if g.shape == like.shape:
        return g
    return g.sum(axis=unbroadcast_axes(g.shape, like.shape)).reshape(like.shape)


def unbroadcast_grad(g: Expr, x: Expr, like: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """broadcast g back to x's shape"""
    return F.broadcast_like(g, x), None


register(
    OpDef(
        name="_unbroadcast",
        infer=_unbroadcast_types,
        impl=_unbroadcast,
        grad=unbroadcast_grad,
        inputs=("data", "like"),
        kind="reduce",
        shape_only=(1,),
        doc="Sum ``data`` down to the shape of ``like``: the gradient of "
        "broadcasting. ``like`` gives only its shape.",
        test=TestSpec(shapes=((3, 4), (1, 4)), wrt=(0,)),
    )
)


def _broadcast_like_types(types: Sequence[TensorType]) -> list[TensorType]:
    x, like = types
    if np.broadcast_shapes(x.shape, like.shape) != tuple(like.shape):
        raise GraphError(f"{x.shape} does not broadcast to {like.shape}")
    return [TensorType(like.shape, x.dtype)]


def broadcast_like_grad(g: Expr, x: Expr, like: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """sum g back to x's shape"""
    return F._unbroadcast(g, x), None


register(
    OpDef(
        name="broadcast_like",
        infer=_broadcast_like_types,
        impl=lambda x, like: np.array(np.broadcast_to(x, like.shape)),
        grad=broadcast_like_grad,
        inputs=("lhs", "rhs"),
        kind="elemwise",
        shape_only=(1,),
        scalar="{0}",
        method="broadcast_like",
        doc="Broadcast ``lhs`` to the shape of ``rhs``.",
        test=TestSpec(shapes=((1, 4), (3, 4)), wrt=(0,)),
    )
)


def _target_shape(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...]:
    # MXNet's broadcast_to: 0 in the target keeps the input's size.
    lead = len(target) - len(shape)
    return tuple(shape[i - lead] if t == 0 and i >= lead else t for i, t in enumerate(target))


def _broadcast_to_types(types: Sequence[TensorType], *, shape: tuple[int, ...]) -> list[TensorType]:
    target = _target_shape(types[0].shape, shape)
    if np.broadcast_shapes(types[0].shape, target) != target:
        raise GraphError(f"{types[0].shape} does not broadcast to {target}")
    return [TensorType(target, types[0].dtype)]


def broadcast_to_grad(g: Expr, x: Expr, *, out: Expr, shape: tuple[int, ...]) -> Expr:
    """sum g back to x's shape"""
    return F._unbroadcast(g, x)


register(
    OpDef(
        name="broadcast_to",
        infer=_broadcast_to_types,
        impl=lambda x, shape: np.array(np.broadcast_to(x, _target_shape(x.shape, shape))),
        grad=broadcast_to_grad,
        attrs={"shape": Attr(as_shape)},
        kind="elemwise",
        scalar="{0}",
        method="broadcast_to",
        doc="Broadcast to ``shape`` (0 keeps the input's size).",
        test=TestSpec(shapes=((1, 4),), attrs={"shape": (3, 4)}),
    )
)
