"""Ops that move data without arithmetic: reshape, transpose, concat, split,
slicing and gathering, each with a gradient that moves it back."""

from __future__ import annotations

import math
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
    as_int,
    as_optional_int,
    as_optional_ints,
    as_shape,
    one_of,
    register,
)
from .common import F, normalize_axis, require_same_dtype


def _like_input_grad(g: Expr, x: Expr, *, out: Expr, **_attrs: Any) -> Expr:
    """g reshaped to x's shape"""
    return F.reshape_like(g, x)


# ---------------------------------------------------------------------------
# reshape family
# ---------------------------------------------------------------------------


def mxnet_reshape(
    shape: tuple[int, ...], spec: tuple[int, ...], reverse: bool = False
) -> tuple[int, ...]:
    """The output shape of MXNet's ``reshape``, with its special codes:
    0 copies an input axis, -1 infers one axis, -2 copies all remaining axes,
    -3 merges two axes, -4 splits one axis into the next two numbers."""
    if reverse:
        return tuple(reversed(mxnet_reshape(tuple(reversed(shape)), tuple(reversed(spec)))))
    out: list[int] = []
    infer_at = None
    i = j = 0
    while j < len(spec):
        code = spec[j]
        if code == 0:
            out.append(shape[i])
            i += 1
        elif code == -1:
            if infer_at is not None:
                raise GraphError("reshape: more than one -1")
            infer_at = len(out)
            out.append(1)
            i += 1
        elif code == -2:
            out.extend(shape[i:])
            i = len(shape)
        elif code == -3:
            out.append(shape[i] * shape[i + 1])
            i += 2
        elif code == -4:
            first, second = spec[j + 1], spec[j + 2]
            if first == -1:
                first = shape[i] // second
            if second == -1:
                second = shape[i] // first
            out.extend((first, second))
            i += 1
            j += 2
        elif code > 0:
            out.append(code)
            i += 1
        else:
            raise GraphError(f"reshape: unknown code {code}")
        j += 1
    # (math.prod, not np.prod: a reshape's shape is worked out on every call,
    # and np.prod of a tuple took 2-3 us of the 9 a Reshape step cost)
    total = math.prod(shape)
    if infer_at is not None:
        known = math.prod([s for k, s in enumerate(out) if k != infer_at])
        if known == 0 or total % known:
            raise GraphError(f"cannot infer -1 reshaping {shape} to {spec}")
        out[infer_at] = total // known
    if math.prod(out) != total:
        raise GraphError(f"cannot reshape {shape} ({total} elements) to {tuple(out)}")
    return tuple(out)


def _reshape_types(
    types: Sequence[TensorType], *, shape: tuple[int, ...], reverse: bool
) -> list[TensorType]:
    return [TensorType(mxnet_reshape(types[0].shape, shape, reverse), types[0].dtype)]


register(
    OpDef(
        name="Reshape",
        aliases=("reshape",),
        infer=_reshape_types,
        impl=lambda x, shape, reverse: x.reshape(mxnet_reshape(x.shape, shape, reverse)),
        grad=_like_input_grad,
        attrs={"shape": Attr(as_shape), "reverse": Attr(as_bool, False)},
        kind="shape",
        doc="Reshape, with MXNet's codes 0, -1, -2, -3, -4.",
        test=TestSpec(shapes=((3, 4),), attrs={"shape": (2, -1)}),
    )
)


def _reshape_like_types(types: Sequence[TensorType]) -> list[TensorType]:
    x, like = types
    if int(np.prod(x.shape)) != int(np.prod(like.shape)):
        raise GraphError(f"cannot reshape {x.shape} to {like.shape}")
    return [TensorType(like.shape, x.dtype)]


def reshape_like_grad(g: Expr, x: Expr, like: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g reshaped to x's shape"""
    return F.reshape_like(g, x), None


register(
    OpDef(
        name="reshape_like",
        infer=_reshape_like_types,
        impl=lambda x, like: x.reshape(like.shape),
        grad=reshape_like_grad,
        shape_only=(1,),
        inputs=("lhs", "rhs"),
        kind="shape",
        method="reshape_like",
        doc="Reshape ``lhs`` to the shape of ``rhs``.",
        test=TestSpec(shapes=((3, 4), (4, 3)), wrt=(0,)),
    )
)


def _flatten_types(types: Sequence[TensorType]) -> list[TensorType]:
    shape = types[0].shape
    return [TensorType((shape[0], int(np.prod(shape[1:]))) if shape else (1, 1), types[0].dtype)]


register(
    OpDef(
        name="Flatten",
        aliases=("flatten",),
        infer=_flatten_types,
        impl=lambda x: x.reshape(x.shape[0], -1),
        grad=_like_input_grad,
        kind="shape",
        method="flatten",
        doc="Collapse all axes but the first.",
        test=TestSpec(shapes=((2, 3, 2),)),
    )
)


def _expand_dims_types(types: Sequence[TensorType], *, axis: int) -> list[TensorType]:
    shape = list(types[0].shape)
    shape.insert(normalize_axis(axis, len(shape) + 1), 1)
    return [TensorType(tuple(shape), types[0].dtype)]


register(
    OpDef(
        name="expand_dims",
        infer=_expand_dims_types,
        impl=lambda x, axis: np.expand_dims(x, axis),
        grad=_like_input_grad,
        attrs={"axis": Attr(as_int)},
        kind="shape",
        method="expand_dims",
        doc="Insert an axis of length one.",
        test=TestSpec(attrs={"axis": 1}),
    )
)


def _squeeze_axes(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(i for i, s in enumerate(shape) if s == 1)
    axes = tuple(normalize_axis(a, len(shape)) for a in axis)
    if any(shape[a] != 1 for a in axes):
        raise GraphError(f"can only squeeze axes of length one, not {axes} of {shape}")
    return axes


def _squeeze_types(
    types: Sequence[TensorType], *, axis: tuple[int, ...] | None
) -> list[TensorType]:
    shape = types[0].shape
    axes = _squeeze_axes(shape, axis)
    return [
        TensorType(tuple(s for i, s in enumerate(shape) if i not in axes) or (1,), types[0].dtype)
    ]


def _squeeze(x: np.ndarray, *, axis: tuple[int, ...] | None) -> np.ndarray:
    out = np.squeeze(x, axis=_squeeze_axes(x.shape, axis))
    return out.reshape(1) if out.ndim == 0 else out


register(
    OpDef(
        name="squeeze",
        infer=_squeeze_types,
        impl=_squeeze,
        grad=_like_input_grad,
        attrs={"axis": Attr(as_axes, None)},
        kind="shape",
        method="squeeze",
        doc="Remove axes of length one.",
        test=TestSpec(shapes=((3, 1, 4),), attrs={"axis": (1,)}),
    )
)


def _transpose_types(types: Sequence[TensorType], *, axes: tuple[int, ...]) -> list[TensorType]:
    shape = types[0].shape
    order = axes or tuple(reversed(range(len(shape))))
    if sorted(normalize_axis(a, len(shape)) for a in order) != list(range(len(shape))):
        raise GraphError(f"axes {axes} are not a permutation of rank {len(shape)}")
    return [TensorType(tuple(shape[a] for a in order), types[0].dtype)]


def transpose_grad(g: Expr, x: Expr, *, out: Expr, axes: tuple[int, ...]) -> Expr:
    """g transposed back by the inverse permutation"""
    if not axes:
        return F.transpose(g)
    inverse = tuple(int(i) for i in np.argsort([normalize_axis(a, x.ndim) for a in axes]))
    return F.transpose(g, axes=inverse)


register(
    OpDef(
        name="transpose",
        infer=_transpose_types,
        impl=lambda x, axes: np.transpose(x, axes or None),
        grad=transpose_grad,
        attrs={"axes": Attr(as_shape, ())},
        kind="shape",
        method="transpose",
        doc="Permute axes (reverse them by default).",
        test=TestSpec(shapes=((2, 3, 4),), attrs={"axes": (1, 2, 0)}),
    )
)


def swapaxes_grad(g: Expr, x: Expr, *, out: Expr, dim1: int, dim2: int) -> Expr:
    """g with the axes swapped back"""
    return F.SwapAxis(g, dim1=dim1, dim2=dim2)


def _swapaxes_types(types: Sequence[TensorType], *, dim1: int, dim2: int) -> list[TensorType]:
    shape = list(types[0].shape)
    a, b = normalize_axis(dim1, len(shape)), normalize_axis(dim2, len(shape))
    shape[a], shape[b] = shape[b], shape[a]
    return [TensorType(tuple(shape), types[0].dtype)]


register(
    OpDef(
        name="SwapAxis",
        aliases=("swapaxes",),
        infer=_swapaxes_types,
        impl=lambda x, dim1, dim2: np.swapaxes(x, dim1, dim2),
        grad=swapaxes_grad,
        attrs={"dim1": Attr(as_int, 0), "dim2": Attr(as_int, 0)},
        kind="shape",
        method="swapaxes",
        doc="Swap two axes.",
        test=TestSpec(shapes=((2, 3),), attrs={"dim1": 0, "dim2": 1}),
    )
)


# ---------------------------------------------------------------------------
# joining and splitting
# ---------------------------------------------------------------------------


# MXNet's count of a variadic op's inputs: the frontend checks it against the call
# and stores 0 ("as many as the node has"), so it never changes a value
NUM_ARGS = Attr(as_int, 0)


def _concat_types(types: Sequence[TensorType], *, dim: int, num_args: int = 0) -> list[TensorType]:
    dtype = require_same_dtype(types)
    rank = len(types[0].shape)
    axis = normalize_axis(dim, rank)
    for t in types[1:]:
        if len(t.shape) != rank or any(
            a != b for k, (a, b) in enumerate(zip(t.shape, types[0].shape)) if k != axis
        ):
            raise GraphError(f"shapes differ off axis {axis}")
    shape = list(types[0].shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [TensorType(tuple(shape), dtype)]


def _concat(*arrays: np.ndarray, dim: int, num_args: int = 0) -> np.ndarray:
    return np.concatenate(arrays, axis=dim)


def concat_grad(
    g: Expr, *inputs: Expr, out: Expr, dim: int, num_args: int = 0
) -> Expr | tuple[Expr | None, ...]:
    """the pieces of g that line up with each input"""
    pieces = F._split_like(g, *inputs, axis=dim)
    return pieces if len(inputs) > 1 else (pieces,)


register(
    OpDef(
        name="Concat",
        aliases=("concat",),
        infer=_concat_types,
        impl=_concat,
        grad=concat_grad,
        attrs={"dim": Attr(as_int, 1), "num_args": NUM_ARGS},
        variadic=True,
        kind="shape",
        doc="Join arrays along axis ``dim``.",
        test=TestSpec(shapes=((3, 2), (3, 4)), attrs={"dim": 1}),
    )
)


def _split_like_types(types: Sequence[TensorType], *, axis: int) -> list[TensorType]:
    return [TensorType(t.shape, types[0].dtype) for t in types[1:]]


def _split_like(
    g: np.ndarray, *likes: np.ndarray, axis: int
) -> np.ndarray | tuple[np.ndarray, ...]:
    bounds = np.cumsum([like.shape[axis] for like in likes])[:-1]
    return tuple(np.split(g, bounds, axis=axis))


def split_like_grad(
    gs: tuple[Expr, ...], g: Expr, *likes: Expr, out: Expr, axis: int
) -> Expr | tuple[Expr | None, ...]:
    """the pieces' gradients joined again"""
    return (F.Concat(*gs, dim=axis),) + (None,) * len(likes)


register(
    OpDef(
        name="_split_like",
        infer=_split_like_types,
        impl=_split_like,
        grad=split_like_grad,
        variadic=True,
        kind="shape",
        attrs={"axis": Attr(as_int, 1)},
        doc="Cut ``data`` along ``axis`` into pieces as long as each further "
        "input: the gradient of concat, with sizes taken at run time.",
        test=TestSpec(shapes=((3, 6), (3, 2), (3, 4)), attrs={"axis": 1}, wrt=(0,)),
    )
)


def _stack_types(types: Sequence[TensorType], *, axis: int, num_args: int = 0) -> list[TensorType]:
    dtype = require_same_dtype(types)
    if any(t.shape != types[0].shape for t in types):
        raise GraphError("stack needs equal shapes")
    shape = list(types[0].shape)
    shape.insert(normalize_axis(axis, len(shape) + 1), len(types))
    return [TensorType(tuple(shape), dtype)]


def _stack(*arrays: np.ndarray, axis: int, num_args: int = 0) -> np.ndarray:
    return np.stack(arrays, axis=axis)


def stack_grad(
    g: Expr, *inputs: Expr, out: Expr, axis: int, num_args: int = 0
) -> Expr | tuple[Expr | None, ...]:
    """g split back into its slices"""
    pieces = F.SliceChannel(g, num_outputs=len(inputs), axis=axis, squeeze_axis=True)
    return pieces if len(inputs) > 1 else (pieces,)


register(
    OpDef(
        name="stack",
        infer=_stack_types,
        impl=_stack,
        grad=stack_grad,
        attrs={"axis": Attr(as_int, 0), "num_args": NUM_ARGS},
        variadic=True,
        kind="shape",
        doc="Join equal-shaped arrays along a new axis.",
        test=TestSpec(shapes=((3, 4), (3, 4)), attrs={"axis": 1}),
    )
)


def _split_types(
    types: Sequence[TensorType], *, num_outputs: int, axis: int, squeeze_axis: bool
) -> list[TensorType]:
    shape = list(types[0].shape)
    a = normalize_axis(axis, len(shape))
    if num_outputs < 1 or shape[a] % num_outputs:
        raise GraphError(
            f"axis {a} of length {shape[a]} does not split into {num_outputs} equal parts"
        )
    if squeeze_axis and shape[a] != num_outputs:
        raise GraphError("squeeze_axis needs parts of length one")
    shape[a] //= num_outputs
    if squeeze_axis:
        del shape[a]
    return [TensorType(tuple(shape), types[0].dtype)] * num_outputs


def _split(
    x: np.ndarray, *, num_outputs: int, axis: int, squeeze_axis: bool
) -> np.ndarray | tuple[np.ndarray, ...]:
    parts = np.split(x, num_outputs, axis=axis)
    if squeeze_axis:
        parts = [np.squeeze(p, axis=axis) for p in parts]
    return tuple(parts)


def split_grad(
    gs: tuple[Expr, ...], x: Expr, *, out: Expr, num_outputs: int, axis: int, squeeze_axis: bool
) -> Expr:
    """the parts' gradients joined again (unused parts arrive as zeros)"""
    if num_outputs == 1:  # one part: its gradient comes alone, not as a tuple
        return F.expand_dims(gs, axis=axis) if squeeze_axis else F._copy(gs)
    if squeeze_axis:
        return F.stack(*gs, axis=axis)
    return F.Concat(*gs, dim=axis)


register(
    OpDef(
        name="SliceChannel",
        aliases=("split",),
        infer=_split_types,
        impl=_split,
        grad=split_grad,
        kind="shape",
        attrs={
            "num_outputs": Attr(as_int),
            "axis": Attr(as_int, 1),
            "squeeze_axis": Attr(as_bool, False),
        },
        method="split",
        doc="Split into ``num_outputs`` equal parts along ``axis``.",
        test=TestSpec(shapes=((3, 4),), attrs={"num_outputs": 2, "axis": 1}),
    )
)


# ---------------------------------------------------------------------------
# slicing
# ---------------------------------------------------------------------------


def slice_tuple(
    shape: tuple[int, ...],
    begin: Sequence[int | None],
    end: Sequence[int | None],
    step: Sequence[int | None],
) -> tuple[slice, ...]:
    """Python slices for MXNet's begin/end/step (None means the default)."""
    step = step or (None,) * len(begin)
    if not len(begin) == len(end) == len(step) or len(begin) > len(shape):
        raise GraphError(f"begin {begin}, end {end}, step {step} do not fit shape {shape}")
    return tuple(slice(b, e, s) for b, e, s in zip(begin, end, step))


def _slice_types(
    types: Sequence[TensorType],
    *,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> list[TensorType]:
    shape = types[0].shape
    index = slice_tuple(shape, begin, end, step)
    sizes = [len(range(*sl.indices(n))) for sl, n in zip(index, shape)]
    return [TensorType(tuple(sizes) + tuple(shape[len(index) :]), types[0].dtype)]


SLICE_ATTRS = {
    "begin": Attr(as_optional_ints),
    "end": Attr(as_optional_ints),
    "step": Attr(as_optional_ints, ()),
}


def slice_grad(
    g: Expr,
    x: Expr,
    *,
    out: Expr,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> Expr:
    """g placed in the sliced region of zeros"""
    return F._slice_grad(g, x, begin=begin, end=end, step=step)


register(
    OpDef(
        name="slice",
        aliases=("crop",),
        infer=_slice_types,
        impl=lambda x, begin, end, step: x[slice_tuple(x.shape, begin, end, step)].copy(),
        grad=slice_grad,
        attrs=SLICE_ATTRS,
        kind="shape",
        method="slice",
        doc="Slice with per-axis begin/end/step (None for the default).",
        test=TestSpec(
            shapes=((4, 5),), attrs={"begin": (1, None), "end": (3, None), "step": (1, 2)}
        ),
    )
)


def _slice_grad_types(
    types: Sequence[TensorType],
    *,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> list[TensorType]:
    region = _slice_types(types[1:], begin=begin, end=end, step=step)[0].shape
    if types[0].shape != region:
        raise GraphError(f"data of shape {types[0].shape} does not fill the slice {region}")
    return [TensorType(types[1].shape, types[0].dtype)]


def _slice_grad(
    g: np.ndarray,
    like: np.ndarray,
    *,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> np.ndarray:
    out = np.zeros(like.shape, dtype=g.dtype)
    out[slice_tuple(like.shape, begin, end, step)] = g
    return out


def slice_grad_grad(
    g: Expr,
    g_in: Expr,
    like: Expr,
    *,
    out: Expr,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> tuple[Expr | None, ...]:
    """the sliced region of g"""
    return F.slice(g, begin=begin, end=end, step=step), None


register(
    OpDef(
        name="_slice_grad",
        infer=_slice_grad_types,
        impl=_slice_grad,
        grad=slice_grad_grad,
        inputs=("data", "like"),
        attrs=SLICE_ATTRS,
        shape_only=(1,),
        kind="shape",
        doc="Zeros shaped like ``like`` with ``data`` in the slice: the gradient of slice.",
        test=TestSpec(shapes=((2, 5), (4, 5)), attrs={"begin": (1,), "end": (3,)}, wrt=(0,)),
    )
)


def _axis_slice(
    ndim: int, axis: int, begin: int | None, end: int | None
) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    axis = normalize_axis(axis, ndim)
    return (None,) * axis + (begin,), (None,) * axis + (end,)


def _slice_axis_types(
    types: Sequence[TensorType], *, axis: int, begin: int, end: int | None
) -> list[TensorType]:
    b, e = _axis_slice(len(types[0].shape), axis, begin, end)
    return _slice_types(types, begin=b, end=e, step=())


def _slice_axis(x: np.ndarray, *, axis: int, begin: int, end: int | None) -> np.ndarray:
    b, e = _axis_slice(x.ndim, axis, begin, end)
    return x[slice_tuple(x.shape, b, e, ())].copy()


def slice_axis_grad(g: Expr, x: Expr, *, out: Expr, axis: int, begin: int, end: int | None) -> Expr:
    """g placed in the sliced region of zeros"""
    b, e = _axis_slice(x.ndim, axis, begin, end)
    return F._slice_grad(g, x, begin=b, end=e)


register(
    OpDef(
        name="slice_axis",
        infer=_slice_axis_types,
        impl=_slice_axis,
        grad=slice_axis_grad,
        kind="shape",
        method="slice_axis",
        attrs={"axis": Attr(as_int), "begin": Attr(as_int), "end": Attr(as_optional_int)},
        doc="Slice ``[begin, end)`` along one axis.",
        test=TestSpec(shapes=((3, 5),), attrs={"axis": 1, "begin": 1, "end": -1}),
    )
)


# ---------------------------------------------------------------------------
# gathering by index arrays
# ---------------------------------------------------------------------------


def _indices(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    index = np.asarray(index).astype(np.int64)
    if mode == "wrap":
        return np.mod(index, size)
    if mode == "raise" and ((index < 0) | (index >= size)).any():
        raise IndexError(f"index out of range for axis of length {size}")
    return np.clip(index, 0, size - 1)


def _take_types(types: Sequence[TensorType], *, axis: int, mode: str) -> list[TensorType]:
    a, idx = types
    ax = normalize_axis(axis, len(a.shape))
    return [TensorType(a.shape[:ax] + idx.shape + a.shape[ax + 1 :], a.dtype)]


def _take(a: np.ndarray, indices: np.ndarray, *, axis: int, mode: str) -> np.ndarray:
    return np.take(a, _indices(indices, a.shape[axis], mode), axis=axis)


def take_grad(
    g: Expr, a: Expr, indices: Expr, *, out: Expr, axis: int, mode: str
) -> tuple[Expr | None, ...]:
    """g scattered back, repeated indices adding up"""
    return F._take_grad(g, indices, a, axis=axis, mode=mode), None


TAKE_ATTRS = {"axis": Attr(as_int, 0), "mode": Attr(one_of("clip", "wrap", "raise"), "clip")}
register(
    OpDef(
        name="take",
        infer=_take_types,
        impl=_take,
        grad=take_grad,
        inputs=("a", "indices"),
        attrs=TAKE_ATTRS,
        kind="gather",
        method="take",
        doc="Gather slices along ``axis`` at ``indices``.",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (4, 3)), np.array([[0, 3], [3, 1.0]])],
            wrt=(0,),
        ),
    )
)


def _take_grad_types(types: Sequence[TensorType], *, axis: int, mode: str) -> list[TensorType]:
    return [TensorType(types[2].shape, types[0].dtype)]


def _take_grad(
    g: np.ndarray, indices: np.ndarray, like: np.ndarray, *, axis: int, mode: str
) -> np.ndarray:
    axis %= like.ndim  # a negative axis counts from the end, as take's does
    out = np.zeros(like.shape, dtype=g.dtype)
    idx = _indices(indices, like.shape[axis], mode)
    moved = np.moveaxis(out, axis, 0)
    g_moved = np.moveaxis(
        g.reshape(like.shape[:axis] + idx.shape + like.shape[axis + 1 :]),
        list(range(axis, axis + idx.ndim)),
        list(range(idx.ndim)),
    )
    np.add.at(moved, idx, g_moved)
    return out


def take_grad_grad(
    g: Expr, g_in: Expr, indices: Expr, like: Expr, *, out: Expr, axis: int, mode: str
) -> tuple[Expr | None, ...]:
    """g gathered at the same indices"""
    return F.take(g, indices, axis=axis, mode=mode), None, None


register(
    OpDef(
        name="_take_grad",
        infer=_take_grad_types,
        impl=_take_grad,
        grad=take_grad_grad,
        inputs=("data", "indices", "like"),
        attrs=TAKE_ATTRS,
        shape_only=(2,),
        kind="gather",
        doc="Scatter-add ``data`` into zeros shaped like ``like``.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (2, 2, 3)),
                np.array([[0, 3], [3, 1.0]]),
                np.zeros((4, 3)),
            ],
            wrt=(0,),
        ),
    )
)


def _pick_types(
    types: Sequence[TensorType], *, axis: int, keepdims: bool, mode: str
) -> list[TensorType]:
    data = types[0]
    ax = normalize_axis(axis, len(data.shape))
    shape = (
        tuple(1 if i == ax else s for i, s in enumerate(data.shape))
        if keepdims
        else tuple(s for i, s in enumerate(data.shape) if i != ax)
    )
    return [TensorType(shape or (1,), data.dtype)]


def _pick_index(
    data: np.ndarray, index: np.ndarray, axis: int, mode: str
) -> tuple[int, np.ndarray]:
    ax = axis % data.ndim
    idx = _indices(index, data.shape[ax], mode)
    return ax, np.expand_dims(idx.reshape(data.shape[:ax] + data.shape[ax + 1 :]), ax)


def _rows(
    data: np.ndarray, index: np.ndarray, axis: int, mode: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """For the common case (2-D data, picking along the last axis), the row and
    column indices of the picked elements: fancy indexing beats take_along_axis."""
    if data.ndim == 2 and axis % 2 == 1:
        return np.arange(data.shape[0]), _indices(index, data.shape[1], mode).reshape(-1)
    return None


def _pick(
    data: np.ndarray, index: np.ndarray, *, axis: int, keepdims: bool, mode: str
) -> np.ndarray:
    rows = _rows(data, index, axis, mode)
    if rows is not None:
        out = data[rows]
        return out[:, None] if keepdims else out
    ax, idx = _pick_index(data, index, axis, mode)
    out = np.take_along_axis(data, idx, axis=ax)
    if not keepdims:
        out = np.squeeze(out, axis=ax)
    return out.reshape(1) if out.ndim == 0 else out


def pick_grad(
    g: Expr, data: Expr, index: Expr, *, out: Expr, axis: int, keepdims: bool, mode: str
) -> tuple[Expr | None, ...]:
    """g placed at the picked positions of zeros"""
    return F._pick_grad(g, index, data, axis=axis, mode=mode), None


PICK_ATTRS = {
    "axis": Attr(as_int, -1),
    "keepdims": Attr(as_bool, False),
    "mode": Attr(one_of("clip", "wrap"), "clip"),
}
register(
    OpDef(
        name="pick",
        infer=_pick_types,
        impl=_pick,
        grad=pick_grad,
        inputs=("data", "index"),
        attrs=PICK_ATTRS,
        kind="gather",
        method="pick",
        doc="Pick one element along ``axis`` per position of ``index``.",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (3, 4)), np.array([0, 3, 1.0])], wrt=(0,)
        ),
    )
)


def _pick_grad_types(types: Sequence[TensorType], *, axis: int, mode: str) -> list[TensorType]:
    return [TensorType(types[2].shape, types[0].dtype)]


def _pick_grad(
    g: np.ndarray, index: np.ndarray, like: np.ndarray, *, axis: int, mode: str
) -> np.ndarray:
    out = np.zeros(like.shape, dtype=g.dtype)
    rows = _rows(like, index, axis, mode)
    if rows is not None:
        out[rows] = g.reshape(-1)
        return out
    ax, idx = _pick_index(like, index, axis, mode)
    np.put_along_axis(out, idx, g.reshape(idx.shape), axis=ax)
    return out


def pick_grad_grad(
    g: Expr, g_in: Expr, index: Expr, like: Expr, *, out: Expr, axis: int, mode: str
) -> tuple[Expr | None, ...]:
    """g picked at the same positions"""
    return F.reshape_like(F.pick(g, index, axis=axis, mode=mode), g_in), None, None


register(
    OpDef(
        name="_pick_grad",
        infer=_pick_grad_types,
        impl=_pick_grad,
        grad=pick_grad_grad,
        inputs=("data", "index", "like"),
        shape_only=(2,),
        attrs={"axis": Attr(as_int, -1), "mode": Attr(one_of("clip", "wrap"), "clip")},
        kind="gather",
        doc="Zeros shaped like ``like`` with ``data`` at the picked "
        "positions: the gradient of pick.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3,)),
                np.array([0, 3, 1.0]),
                np.zeros((3, 4)),
            ],
            wrt=(0,),
        ),
    )
)


# pick's gradient inside a fused loop: the one-hot is never written where an
# elementwise op reads it (the pass ``one_hots_in_loops``). ``_pick_positions``
# gives each picked position's column and each column's number, both float64
# (exact below 2**53), and ``_one_hot_at`` selects g where they are equal.


def _kept_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + (1,) + shape[axis + 1 :]


def _pick_positions_types(types: Sequence[TensorType], *, axis: int, mode: str) -> list[TensorType]:
    shape = types[1].shape
    ax = axis % len(shape)
    ones = tuple(n if a == ax else 1 for a, n in enumerate(shape))
    double = np.dtype(np.float64)
    return [TensorType(_kept_shape(shape, ax), double), TensorType(ones, double)]


def _pick_positions(
    index: np.ndarray, like: np.ndarray, *, axis: int, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    ax = axis % like.ndim
    size = like.shape[ax]
    columns = _indices(index, size, mode).astype(np.float64).reshape(_kept_shape(like.shape, ax))
    ones = tuple(size if a == ax else 1 for a in range(like.ndim))
    return columns, np.arange(size, dtype=np.float64).reshape(ones)


register(
    OpDef(
        name="_pick_positions",
        infer=_pick_positions_types,
        impl=_pick_positions,
        inputs=("index", "like"),
        shape_only=(1,),
        attrs={"axis": Attr(as_int, -1), "mode": Attr(one_of("clip", "wrap"), "clip")},
        differentiable=False,
        num_outputs=2,
        doc="The column each ``index`` picks along ``axis`` of ``like`` (clipped or "
        "wrapped, shaped like ``like`` with that axis of length one) and the column "
        "numbers (shaped ones but along ``axis``), both float64.",
        test=TestSpec(
            make_inputs=lambda rng: [np.array([0, 7, -1.0, 2.9]), np.zeros((4, 3))],
            attrs={"mode": "wrap"},
        ),
    )
)


def _one_hot_at_types(types: Sequence[TensorType]) -> list[TensorType]:
    shape = tuple(np.broadcast_shapes(*(t.shape for t in types)))
    return [TensorType(shape, types[0].dtype)]


def _one_hot_at(g: np.ndarray, columns: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.where(columns == positions, g, np.zeros((), g.dtype))


register(
    OpDef(
        name="_one_hot_at",
        infer=_one_hot_at_types,
        impl=_one_hot_at,
        inputs=("data", "columns", "positions"),
        differentiable=False,
        kind="elemwise",
        scalar="({0} if {1} == {2} else 0.0)",
        doc="g where ``columns`` equals ``positions`` (broadcast), else +0: "
        "``_pick_grad`` as an elementwise op, from ``_pick_positions``.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 1)),
                np.array([[0.0], [3.0], [1.0]]),
                np.arange(4.0).reshape(1, 4),
            ],
        ),
    )
)
