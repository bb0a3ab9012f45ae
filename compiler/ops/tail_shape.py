"""Shape, indexing and reduction ops MXNet 1.9.1 has that the first registry
lacked: add_n, broadcast_axis, slice_like, Crop, depth_to_space and
space_to_depth, diag, cumsum, shape_array and size_array, moments, nanprod,
softmin, SoftmaxActivation, argmax_channel and batch_take.

Gradients that place a smaller array into zeros (slice_like, Crop) share the
pair ``_place`` / ``_take_place``, each the other's gradient, with offsets taken
from attrs or from the shapes at run time: no size is an attribute of a
gradient graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import (
    Attr,
    OpDef,
    TestSpec,
    as_axes,
    as_bool,
    as_dtype_name,
    as_int,
    as_optional_int,
    as_shape,
    one_of,
    register,
)
from .common import F, broadcast_types, normalize_axis, same_as_first
from .nn import SOFTMAX_ATTRS
from .reduce import reduce_types, reduced_axes, restore_reduced

# ---------------------------------------------------------------------------
# add_n
# ---------------------------------------------------------------------------


def add_n_grad(g: Expr, *inputs: Expr, out: Expr, num_args: int) -> Expr | tuple[Expr | None, ...]:
    """g for every input"""
    return tuple(g for _ in inputs)


def _check_count(types: Sequence[TensorType], num_args: int) -> None:
    """MXNet's num_args, when given (not 0), must count the inputs."""
    if num_args and num_args != len(types):
        raise GraphError(f"num_args is {num_args} but {len(types)} inputs were given")


def _add_n_types(types: Sequence[TensorType], *, num_args: int) -> list[TensorType]:
    if not types:
        raise GraphError("add_n needs at least one input")
    _check_count(types, num_args)
    if any(t.shape != types[0].shape for t in types):
        raise GraphError("add_n adds arrays of one shape")
    return broadcast_types(types)


def _add_n(*arrays: np.ndarray, num_args: int) -> np.ndarray:
    total = arrays[0].copy()
    for array in arrays[1:]:
        total += array
    return total


register(
    OpDef(
        name="add_n",
        aliases=("ElementWiseSum",),
        infer=_add_n_types,
        impl=_add_n,
        grad=add_n_grad,
        attrs={"num_args": Attr(as_int, 0)},
        variadic=True,
        kind="reduce",
        doc="The sum of any number of arrays of one shape.\n\nGradient\n--------\n"
        "g for every input",
        test=TestSpec(shapes=((3, 4), (3, 4), (3, 4))),
    )
)


# ---------------------------------------------------------------------------
# broadcast_axis
# ---------------------------------------------------------------------------


def _broadcast_axis_types(
    types: Sequence[TensorType], *, axis: tuple[int, ...], size: tuple[int, ...]
) -> list[TensorType]:
    shape = list(types[0].shape)
    if len(axis) != len(size):
        raise GraphError(f"axis {axis} and size {size} differ in length")
    for a, n in zip(axis, size):
        a = normalize_axis(a, len(shape))
        if shape[a] != 1:
            raise GraphError(f"axis {a} has length {shape[a]}, not 1")
        shape[a] = n
    return [TensorType(tuple(shape), types[0].dtype)]


def _broadcast_axis(x: np.ndarray, *, axis: tuple[int, ...], size: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(
        x, _broadcast_axis_types([TensorType(x.shape, x.dtype)], axis=axis, size=size)[0].shape
    ).copy()


def broadcast_axis_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...], size: tuple[int, ...]
) -> Expr:
    """g summed over the broadcast axes (kept)"""
    return F.sum(g, axis=tuple(normalize_axis(a, x.ndim) for a in axis), keepdims=True)


register(
    OpDef(
        name="broadcast_axis",
        aliases=("broadcast_axes",),
        infer=_broadcast_axis_types,
        impl=_broadcast_axis,
        grad=broadcast_axis_grad,
        attrs={"axis": Attr(as_shape, ()), "size": Attr(as_shape, ())},
        kind="shape",
        method="broadcast_axes",
        doc="Repeat length-one axes ``axis`` to lengths ``size``.\n\nGradient\n--------\n"
        + (broadcast_axis_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 1, 1),), attrs={"axis": (1, 2), "size": (2, 4)}),
    )
)


# ---------------------------------------------------------------------------
# placing a block into zeros, and taking it out again
# ---------------------------------------------------------------------------


def _block(
    big: tuple[int, ...], small: tuple[int, ...], offset: Sequence[int], center: bool
) -> tuple[slice, ...]:
    """The index of ``small``'s block inside ``big``: axes before the offset's
    start at 0; the last len(offset) axes at the offset, or centred."""
    lead = len(big) - len(offset)
    index = [slice(0, n) for n in small[:lead]]
    for axis, start in enumerate(offset, lead):
        if center:
            start = (big[axis] - small[axis]) // 2
        if start < 0 or start + small[axis] > big[axis]:
            raise GraphError(f"a block of shape {small} at {offset} does not fit in {big}")
        index.append(slice(start, start + small[axis]))
    return tuple(index)


PLACE_ATTRS = {"offset": Attr(as_shape, ()), "center": Attr(as_bool, False)}


def _place_types(
    types: Sequence[TensorType], *, offset: tuple[int, ...], center: bool
) -> list[TensorType]:
    small, big = types[0].shape, types[1].shape
    if len(small) != len(big):
        raise GraphError(f"ranks differ: {small} and {big}")
    _block(big, small, offset, center)
    return [TensorType(big, types[0].dtype)]


def _place(
    data: np.ndarray, like: np.ndarray, *, offset: tuple[int, ...], center: bool
) -> np.ndarray:
    out = np.zeros(like.shape, dtype=data.dtype)
    out[_block(like.shape, data.shape, offset, center)] = data
    return out


def place_grad(
    g: Expr, data: Expr, like: Expr, *, out: Expr, offset: tuple[int, ...], center: bool
) -> tuple[Expr | None, ...]:
    """the block of g where data was placed"""
    return F._take_place(g, data, offset=offset, center=center), None


register(
    OpDef(
        name="_place",
        infer=_place_types,
        impl=_place,
        grad=place_grad,
        inputs=("data", "like"),
        attrs=PLACE_ATTRS,
        shape_only=(1,),
        kind="shape",
        doc="Zeros shaped like ``like`` with ``data`` at ``offset`` (last axes; or "
        "centred): the gradient of slice_like and Crop.\n\nGradient\n--------\n"
        + (place_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 2, 3), (2, 4, 5)), attrs={"offset": (1, 2)}, wrt=(0,)),
    )
)


def _take_place_types(
    types: Sequence[TensorType], *, offset: tuple[int, ...], center: bool
) -> list[TensorType]:
    big, small = types[0].shape, types[1].shape
    if len(small) != len(big):
        raise GraphError(f"ranks differ: {big} and {small}")
    _block(big, small, offset, center)
    return [TensorType(small, types[0].dtype)]


def _take_place(
    data: np.ndarray, like: np.ndarray, *, offset: tuple[int, ...], center: bool
) -> np.ndarray:
    return data[_block(data.shape, like.shape, offset, center)].copy()


def take_place_grad(
    g: Expr, data: Expr, like: Expr, *, out: Expr, offset: tuple[int, ...], center: bool
) -> tuple[Expr | None, ...]:
    """g placed back into zeros shaped like data"""
    return F._place(g, data, offset=offset, center=center), None


register(
    OpDef(
        name="_take_place",
        infer=_take_place_types,
        impl=_take_place,
        grad=take_place_grad,
        inputs=("data", "like"),
        attrs=PLACE_ATTRS,
        shape_only=(1,),
        kind="shape",
        doc="The block of ``data`` shaped like ``like`` at ``offset`` (last axes; or "
        "centred).\n\nGradient\n--------\n" + (take_place_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 4, 5), (2, 2, 3)), attrs={"center": True}, wrt=(0,)),
    )
)


# ---------------------------------------------------------------------------
# slice_like, Crop
# ---------------------------------------------------------------------------


def _slice_like_shape(
    data: tuple[int, ...], like: tuple[int, ...], axes: Sequence[int] | None
) -> tuple[int, ...]:
    if not axes:
        if len(like) > len(data):
            raise GraphError(f"shape_like {like} has more axes than data {data}")
        return tuple(like) + tuple(data[len(like) :])
    shape = list(data)
    for a in axes:
        a = normalize_axis(a, len(data))
        if a >= len(like):
            raise GraphError(f"axis {a} is out of range for shape_like {like}")
        shape[a] = like[a]
    return tuple(shape)


def _slice_like_types(types: Sequence[TensorType], *, axes: tuple[int, ...]) -> list[TensorType]:
    shape = _slice_like_shape(types[0].shape, types[1].shape, axes)
    if any(s > d for s, d in zip(shape, types[0].shape)):
        raise GraphError(f"cannot slice {types[0].shape} to {shape}")
    return [TensorType(shape, types[0].dtype)]


def _slice_like(data: np.ndarray, like: np.ndarray, *, axes: tuple[int, ...]) -> np.ndarray:
    shape = _slice_like_shape(data.shape, like.shape, axes)
    return data[tuple(slice(0, n) for n in shape)].copy()


def slice_like_grad(
    g: Expr, data: Expr, like: Expr, *, out: Expr, axes: tuple[int, ...]
) -> tuple[Expr | None, ...]:
    """g placed at the origin of zeros shaped like data; none for shape_like"""
    return F._place(g, data), None


register(
    OpDef(
        name="slice_like",
        infer=_slice_like_types,
        impl=_slice_like,
        grad=slice_like_grad,
        inputs=("data", "shape_like"),
        attrs={"axes": Attr(as_shape, ())},
        shape_only=(1,),
        kind="shape",
        method="slice_like",
        doc="The first elements of data along ``axes`` (all if empty), as many as "
        "shape_like has.\n\nGradient\n--------\n" + (slice_like_grad.__doc__ or ""),
        test=TestSpec(shapes=((4, 5), (2, 3)), attrs={"axes": (1,)}, wrt=(0,)),
    )
)


CROP_ATTRS = {
    "num_args": Attr(as_int, 0),
    "offset": Attr(as_shape, (0, 0)),
    "h_w": Attr(as_shape, (0, 0)),
    "center_crop": Attr(as_bool, False),
}


def _crop_shape(
    data: tuple[int, ...], like: tuple[int, ...] | None, h_w: tuple[int, ...]
) -> tuple[int, ...]:
    if len(data) != 4:
        raise GraphError(f"Crop takes NCHW data, got shape {data}")
    height, width = (like[2], like[3]) if like is not None else h_w
    return data[:2] + (height, width)


def _crop_types(
    types: Sequence[TensorType],
    *,
    num_args: int,
    offset: tuple[int, ...],
    h_w: tuple[int, ...],
    center_crop: bool,
) -> list[TensorType]:
    _check_count(types, num_args)
    if len(types) not in (1, 2):
        raise GraphError("Crop takes data and, optionally, crop_like")
    like = types[1].shape if len(types) == 2 else None
    shape = _crop_shape(types[0].shape, like, h_w)
    _block(types[0].shape, shape, offset, center_crop)
    return [TensorType(shape, types[0].dtype)]


def _crop(
    data: np.ndarray,
    *like: np.ndarray,
    num_args: int,
    offset: tuple[int, ...],
    h_w: tuple[int, ...],
    center_crop: bool,
) -> np.ndarray:
    shape = _crop_shape(data.shape, like[0].shape if like else None, h_w)
    return data[_block(data.shape, shape, offset, center_crop)].copy()


def crop_grad(
    g: Expr,
    data: Expr,
    *like: Expr,
    out: Expr,
    num_args: int,
    offset: tuple[int, ...],
    h_w: tuple[int, ...],
    center_crop: bool,
) -> tuple[Expr | None, ...]:
    """g placed where the crop was taken, zeros elsewhere; none for crop_like"""
    return (F._place(g, data, offset=offset, center=center_crop), *(None for _ in like))


register(
    OpDef(
        name="Crop",
        infer=_crop_types,
        impl=_crop,
        grad=crop_grad,
        inputs=("data", "crop_like"),
        variadic=True,
        attrs=CROP_ATTRS,
        shape_only=(1,),
        kind="shape",
        doc="Crop NCHW data to (h, w) = h_w, or to crop_like's height and width, at "
        "offset (y, x) or centred.\n\nGradient\n--------\n" + (crop_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 1, 5, 6),), attrs={"offset": (1, 2), "h_w": (3, 3)}),
    )
)


# ---------------------------------------------------------------------------
# depth_to_space, space_to_depth
# ---------------------------------------------------------------------------


def _depth_to_space_types(types: Sequence[TensorType], *, block_size: int) -> list[TensorType]:
    n, c, h, w = _nchw(types[0].shape)
    if c % (block_size * block_size):
        raise GraphError(f"channels {c} are not a multiple of block_size^2")
    shape = (n, c // block_size**2, h * block_size, w * block_size)
    return [TensorType(shape, types[0].dtype)]


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) != 4:
        raise GraphError(f"expects NCHW data, got shape {shape}")
    return shape


def _depth_to_space(x: np.ndarray, *, block_size: int) -> np.ndarray:
    n, c, h, w = x.shape
    b = block_size
    blocks = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return blocks.reshape(n, c // (b * b), h * b, w * b).copy()


def _space_to_depth_types(types: Sequence[TensorType], *, block_size: int) -> list[TensorType]:
    n, c, h, w = _nchw(types[0].shape)
    if h % block_size or w % block_size:
        raise GraphError(f"height {h} and width {w} are not multiples of {block_size}")
    shape = (n, c * block_size**2, h // block_size, w // block_size)
    return [TensorType(shape, types[0].dtype)]


def _space_to_depth(x: np.ndarray, *, block_size: int) -> np.ndarray:
    n, c, h, w = x.shape
    b = block_size
    blocks = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return blocks.reshape(n, c * b * b, h // b, w // b).copy()


def depth_to_space_grad(g: Expr, x: Expr, *, out: Expr, block_size: int) -> Expr:
    """space_to_depth(g): the inverse permutation"""
    return F.space_to_depth(g, block_size=block_size)


def space_to_depth_grad(g: Expr, x: Expr, *, out: Expr, block_size: int) -> Expr:
    """depth_to_space(g): the inverse permutation"""
    return F.depth_to_space(g, block_size=block_size)


for _name, _infer, _impl, _rule, _shape in (
    ("depth_to_space", _depth_to_space_types, _depth_to_space, depth_to_space_grad, (2, 8, 2, 3)),
    ("space_to_depth", _space_to_depth_types, _space_to_depth, space_to_depth_grad, (2, 2, 4, 6)),
):
    register(
        OpDef(
            name=_name,
            infer=_infer,
            impl=_impl,
            grad=_rule,
            attrs={"block_size": Attr(as_int)},
            kind="shape",
            method=_name,
            doc=f"{_name} of NCHW data in blocks of block_size x block_size (MXNet's "
            f"DCR order).\n\nGradient\n--------\n{_rule.__doc__}",
            test=TestSpec(shapes=(_shape,), attrs={"block_size": 2}),
        )
    )


# ---------------------------------------------------------------------------
# diag
# ---------------------------------------------------------------------------

DIAG_ATTRS = {"k": Attr(as_int, 0), "axis1": Attr(as_int, 0), "axis2": Attr(as_int, 1)}


def _diag_types(types: Sequence[TensorType], *, k: int, axis1: int, axis2: int) -> list[TensorType]:
    shape = types[0].shape
    if len(shape) == 1:
        n = shape[0] + abs(k)
        return [TensorType((n, n), types[0].dtype)]
    a1, a2 = normalize_axis(axis1, len(shape)), normalize_axis(axis2, len(shape))
    if a1 == a2:
        raise GraphError("axis1 and axis2 must differ")
    length = max(0, min(shape[a1], shape[a2] - k) if k >= 0 else min(shape[a1] + k, shape[a2]))
    rest = tuple(s for i, s in enumerate(shape) if i not in (a1, a2))
    return [TensorType(rest + (length,), types[0].dtype)]


def _diag(x: np.ndarray, *, k: int, axis1: int, axis2: int) -> np.ndarray:
    if x.ndim == 1:
        return np.diag(x, k)
    return np.diagonal(x, k, axis1, axis2).copy()


def diag_grad(g: Expr, x: Expr, *, out: Expr, k: int, axis1: int, axis2: int) -> Expr:
    """1-D input: the k-th diagonal of g; else g placed on the diagonal of zeros"""
    if x.ndim == 1:
        return F.diag(g, k=k)
    return F._diag_grad(g, x, k=k, axis1=axis1, axis2=axis2)


register(
    OpDef(
        name="diag",
        infer=_diag_types,
        impl=_diag,
        grad=diag_grad,
        attrs=DIAG_ATTRS,
        kind="gather",
        method="diag",
        doc="A 1-D array as a square matrix with it on the k-th diagonal, or the k-th "
        "diagonal of axes axis1, axis2 (as the last axis).\n\nGradient\n--------\n"
        + (diag_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 3, 4),), attrs={"k": 1, "axis1": 1, "axis2": 2}),
    )
)


def _diag_grad(g: np.ndarray, like: np.ndarray, *, k: int, axis1: int, axis2: int) -> np.ndarray:
    out = np.zeros(like.shape, dtype=g.dtype)
    a1, a2 = axis1 % like.ndim, axis2 % like.ndim
    rows = np.arange(g.shape[-1]) + max(-k, 0)
    cols = np.arange(g.shape[-1]) + max(k, 0)
    moved = np.moveaxis(out, (a1, a2), (-2, -1))  # a view: writes land in out
    moved[..., rows, cols] = g
    return out


def diag_grad_grad(
    h: Expr, g: Expr, like: Expr, *, out: Expr, k: int, axis1: int, axis2: int
) -> tuple[Expr | None, ...]:
    """the k-th diagonal of h"""
    return F.diag(h, k=k, axis1=axis1, axis2=axis2), None


register(
    OpDef(
        name="_diag_grad",
        infer=lambda types, **_attrs: [TensorType(types[1].shape, types[0].dtype)],
        impl=_diag_grad,
        grad=diag_grad_grad,
        inputs=("data", "like"),
        attrs=DIAG_ATTRS,
        shape_only=(1,),
        kind="gather",
        doc="Zeros shaped like ``like`` with ``data`` on the k-th diagonal of axes "
        "axis1, axis2: the gradient of diag.\n\nGradient\n--------\n"
        + (diag_grad_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 3), (2, 3, 4)), attrs={"k": 1, "axis1": 1, "axis2": 2}, wrt=(0,)),
    )
)


# ---------------------------------------------------------------------------
# cumsum
# ---------------------------------------------------------------------------


def _cumsum_types(types: Sequence[TensorType], *, axis: int | None, dtype: Any) -> list[TensorType]:
    shape = types[0].shape
    out_dtype = np.dtype(dtype) if dtype else types[0].dtype
    if axis is None:
        return [TensorType((int(np.prod(shape)),), out_dtype)]
    normalize_axis(axis, len(shape))
    return [TensorType(shape, out_dtype)]


def _cumsum(a: np.ndarray, *, axis: int | None, dtype: Any) -> np.ndarray:
    return np.cumsum(a, axis=axis, dtype=dtype or a.dtype)


def cumsum_grad(g: Expr, a: Expr, *, out: Expr, axis: int | None, dtype: Any) -> Expr:
    """the reversed cumulative sum of g (over the flattened array if axis is None)"""
    along = 0 if axis is None else normalize_axis(axis, a.ndim)
    back = F.reverse(F.cumsum(F.reverse(g, axis=along), axis=along), axis=along)
    back = F.reshape_like(back, a) if axis is None else back
    return F.Cast(back, dtype=a.dtype.name) if dtype else back


register(
    OpDef(
        name="cumsum",
        infer=_cumsum_types,
        impl=_cumsum,
        grad=cumsum_grad,
        attrs={
            "axis": Attr(as_optional_int, None),
            "dtype": Attr(lambda v: None if v in (None, "None") else as_dtype_name(v), None),
        },
        kind="gather",
        doc="Cumulative sum along ``axis`` (of the flattened array if None).\n\n"
        "Gradient\n--------\n" + (cumsum_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4),), attrs={"axis": 1}),
    )
)


# ---------------------------------------------------------------------------
# shape_array, size_array
# ---------------------------------------------------------------------------

for _name, _shape_of, _what in (
    ("shape_array", lambda shape: (len(shape),), "The input's shape"),
    ("size_array", lambda shape: (1,), "The input's element count"),
):
    register(
        OpDef(
            name=_name,
            infer=lambda types, _s=_shape_of: [TensorType(_s(types[0].shape), np.dtype(np.int64))],
            impl=(
                (lambda x: np.array(x.shape, dtype=np.int64))
                if _name == "shape_array"
                else (lambda x: np.array([x.size], dtype=np.int64))
            ),
            differentiable=False,
            shape_only=(0,),
            kind="shape",
            doc=f"{_what}, as an int64 array. No gradient.",
            test=TestSpec(shapes=((3, 4),)),
        )
    )


# ---------------------------------------------------------------------------
# moments, nanprod
# ---------------------------------------------------------------------------


def _moments_types(
    types: Sequence[TensorType], *, axes: tuple[int, ...] | None, keepdims: bool
) -> list[TensorType]:
    (reduced,) = reduce_types(types, axis=axes, keepdims=keepdims, exclude=False)
    return [reduced, reduced]


def _moments(
    x: np.ndarray, *, axes: tuple[int, ...] | None, keepdims: bool
) -> tuple[np.ndarray, ...]:
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=keepdims)
    mean = mean if keepdims else np.squeeze(mean, axis=axes if axes is not None else None)
    if mean.ndim == 0:
        mean, var = mean.reshape(1), var.reshape(1)
    return mean.astype(x.dtype), var.astype(x.dtype)


def moments_grad(
    g: tuple[Expr, ...],
    x: Expr,
    *,
    out: tuple[Expr, ...],
    axes: tuple[int, ...] | None,
    keepdims: bool,
) -> Expr:
    """(g_mean + 2 g_var (x - mean)) / n, with n the count averaged over"""
    g_mean, g_var = (restore_reduced(h, x.ndim, axes, keepdims, False) for h in g)
    mean = restore_reduced(out[0], x.ndim, axes, keepdims, False)
    spread = F.broadcast_like(g_mean, x) + F.broadcast_like(g_var, x) * 2 * F.broadcast_sub(x, mean)
    return spread / F._reduced_size(x, axis=axes)


# outputs counted before shapes are known (mx.sym): the mean and the variance
_moments_op = register(
    OpDef(
        name="moments",
        infer=_moments_types,
        impl=_moments,
        grad=moments_grad,
        attrs={"axes": Attr(as_axes, None), "keepdims": Attr(as_bool, False)},
        kind="reduce",
        doc="Mean and (population) variance over ``axes``: two outputs.\n\nGradient\n"
        "--------\n" + (moments_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4, 2),), attrs={"axes": (0, 2)}),
    )
)
_moments_op.num_outputs = 2


def _nanprod(
    x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> np.ndarray:
    axes = reduced_axes(x.ndim, axis, exclude)
    out = np.nanprod(x, axis=axes, keepdims=keepdims)
    return np.asarray(out, dtype=x.dtype).reshape(
        reduce_types([TensorType(x.shape, x.dtype)], axis=axis, keepdims=keepdims, exclude=exclude)[
            0
        ].shape
    )


def nanprod_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """g nanprod(x) / x where x is not NaN, 0 where it is"""
    scaled = F.broadcast_like(restore_reduced(g * out, x.ndim, axis, keepdims, exclude), x)
    present = F.broadcast_equal(x, x)
    safe = F.where(present, x, F.ones_like(x))
    return F.where(present, scaled / safe, F.zeros_like(x))


register(
    OpDef(
        name="nanprod",
        infer=reduce_types,
        impl=_nanprod,
        grad=nanprod_grad,
        attrs={
            "axis": Attr(as_axes, None),
            "keepdims": Attr(as_bool, False),
            "exclude": Attr(as_bool, False),
        },
        kind="reduce",
        method="nanprod",
        doc="The product over ``axis``, NaN counted as 1.\n\nGradient\n--------\n"
        + (nanprod_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4),), domain=(0.5, 2.0), attrs={"axis": (1,)}),
    )
)


# ---------------------------------------------------------------------------
# softmin, SoftmaxActivation
# ---------------------------------------------------------------------------


def _softmax_along(x: np.ndarray, axes: int | tuple[int, ...]) -> np.ndarray:
    shifted = x - x.max(axis=axes, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axes, keepdims=True)


def _softmin(x: np.ndarray, *, axis: int, temperature: Any) -> np.ndarray:
    z = -x / temperature if temperature else -x
    return _softmax_along(z, axis).astype(x.dtype)


def softmin_grad(g: Expr, x: Expr, *, out: Expr, axis: int, temperature: Any) -> Expr:
    """-out (g - sum(g out)) / T"""
    grad = out * (F.sum(g * out, axis=(axis,), keepdims=True) - g)
    return grad / temperature if temperature else grad


register(
    OpDef(
        name="softmin",
        infer=same_as_first,
        impl=_softmin,
        grad=softmin_grad,
        attrs=SOFTMAX_ATTRS,
        kind="softmax",
        method="softmin",
        doc="softmax(-x / T) along ``axis``.\n\nGradient\n--------\n"
        + (softmin_grad.__doc__ or ""),
        test=TestSpec(),
    )
)


def _activation_axes(ndim: int, mode: str) -> tuple[int, ...]:
    return (1,) if mode == "channel" else tuple(range(1, ndim))


def _softmax_activation(x: np.ndarray, *, mode: str) -> np.ndarray:
    return _softmax_along(x, _activation_axes(x.ndim, mode)).astype(x.dtype)


def softmax_activation_grad(g: Expr, x: Expr, *, out: Expr, mode: str) -> Expr:
    """out (g - sum(g out)), summed over the softmax's axes"""
    axes = _activation_axes(x.ndim, mode)
    return out * (g - F.sum(g * out, axis=axes, keepdims=True))


register(
    OpDef(
        name="SoftmaxActivation",
        infer=same_as_first,
        impl=_softmax_activation,
        grad=softmax_activation_grad,
        attrs={"mode": Attr(one_of("instance", "channel"), "instance")},
        kind="softmax",
        doc="Softmax over all axes but the first ('instance') or over axis 1 "
        "('channel').\n\nGradient\n--------\n" + (softmax_activation_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 3, 4),), attrs={"mode": "channel"}),
    )
)


# ---------------------------------------------------------------------------
# argmax_channel, batch_take
# ---------------------------------------------------------------------------


def _argmax_channel_types(types: Sequence[TensorType]) -> list[TensorType]:
    shape = types[0].shape
    if len(shape) < 2:
        raise GraphError("argmax_channel needs at least two axes")
    return [TensorType(shape[:1] + shape[2:], types[0].dtype)]


register(
    OpDef(
        name="argmax_channel",
        infer=_argmax_channel_types,
        impl=lambda x: np.argmax(x, axis=1).astype(x.dtype),
        differentiable=False,
        kind="reduce",
        doc="The index of the largest element along axis 1, in the input's dtype. No gradient.",
        test=TestSpec(shapes=((3, 4),)),
    )
)


def _batch_take_types(types: Sequence[TensorType]) -> list[TensorType]:
    data, index = types
    if len(data.shape) != 2 or index.shape != data.shape[:1]:
        raise GraphError(f"expects data (N, M) and indices (N,), got {data.shape}, {index.shape}")
    return [TensorType(index.shape, data.dtype)]


def _batch_take(a: np.ndarray, indices: np.ndarray) -> np.ndarray:
    columns = np.clip(indices.astype(np.int64), 0, a.shape[1] - 1)
    return a[np.arange(a.shape[0]), columns]


def batch_take_grad(g: Expr, a: Expr, indices: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g at the taken positions of zeros; none for the indices"""
    return F._pick_grad(g, F.stop_gradient(indices), a, axis=1, mode="clip"), None


register(
    OpDef(
        name="batch_take",
        infer=_batch_take_types,
        impl=_batch_take,
        grad=batch_take_grad,
        inputs=("a", "indices"),
        kind="gather",
        doc="a[i, indices[i]] for each row i (indices clipped).\n\nGradient\n--------\n"
        + (batch_take_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (3, 4)), np.array([0, 5, -1.0])],
            wrt=(0,),
        ),
    )
)
