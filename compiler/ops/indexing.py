"""Embedding and indexing ops: Embedding, gather_nd, scatter_nd, where, tile, repeat,
pad, reverse/flip, sort and argsort.

Each gradient that has to move values back reads the sizes from a ``like`` input
at run time (``_take_grad``, ``_gather_nd_grad``, ``_tile_grad``, ``_repeat_grad``,
``_pad_grad``, ``_scatter_along_axis``), and each of those has the forward op (or
its gather twin) as its own gradient, so they differentiate to any order.
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
    as_float,
    as_int,
    as_optional_int,
    as_shape,
    one_of,
    register,
)
from .common import F, normalize_axis, require_same_dtype


def _like_last(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType(types[-1].shape, types[0].dtype)]


# ---------------------------------------------------------------------------
# gathering and scattering along one axis (gradients of sort and topk)
# ---------------------------------------------------------------------------


def _along_axis_index(
    index: np.ndarray, shape: tuple[int, ...], axis: int
) -> tuple[np.ndarray, ...]:
    """Open-mesh index tuple addressing ``index`` positions along ``axis``."""
    grids = list(np.ogrid[tuple(slice(n) for n in index.shape)])
    grids[axis] = np.clip(index.astype(np.int64), 0, shape[axis] - 1)
    return tuple(grids)


def _gather_along_axis_types(types: Sequence[TensorType], *, axis: int) -> list[TensorType]:
    data, index = types[0].shape, types[1].shape
    ax = normalize_axis(axis, len(data))
    if len(index) != len(data) or any(
        a != b for i, (a, b) in enumerate(zip(data, index)) if i != ax
    ):
        raise GraphError(f"index {index} must match data {data} off axis {ax}")
    return [TensorType(index, types[0].dtype)]


def _gather_along_axis(data: np.ndarray, index: np.ndarray, *, axis: int) -> np.ndarray:
    return data[_along_axis_index(index, data.shape, axis % data.ndim)]


def gather_along_axis_grad(
    g: Expr, data: Expr, index: Expr, *, out: Expr, axis: int
) -> tuple[Expr | None, ...]:
    """g added back at the gathered positions"""
    return F._scatter_along_axis(g, index, data, axis=axis), None


register(
    OpDef(
        name="_gather_along_axis",
        infer=_gather_along_axis_types,
        impl=_gather_along_axis,
        grad=gather_along_axis_grad,
        inputs=("data", "index"),
        attrs={"axis": Attr(as_int, -1)},
        kind="gather",
        doc="numpy's take_along_axis: ``data`` at ``index`` along ``axis``.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 4)),
                np.array([[1, 1], [0, 3], [2, 0.0]]),
            ],
            wrt=(0,),
        ),
    )
)


def _scatter_along_axis(
    data: np.ndarray, index: np.ndarray, like: np.ndarray, *, axis: int
) -> np.ndarray:
    out = np.zeros(like.shape, dtype=data.dtype)
    np.add.at(out, _along_axis_index(index, like.shape, axis % like.ndim), data)
    return out


def scatter_along_axis_grad(
    g: Expr, data: Expr, index: Expr, like: Expr, *, out: Expr, axis: int
) -> tuple[Expr | None, ...]:
    """g gathered at the same positions"""
    return F._gather_along_axis(g, index, axis=axis), None, None


register(
    OpDef(
        name="_scatter_along_axis",
        infer=_like_last,
        impl=_scatter_along_axis,
        shape_only=(2,),
        grad=scatter_along_axis_grad,
        inputs=("data", "index", "like"),
        attrs={"axis": Attr(as_int, -1)},
        kind="gather",
        doc="Zeros shaped like ``like`` with ``data`` added at ``index`` along "
        "``axis``: the adjoint of _gather_along_axis.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 2)),
                np.array([[1, 1], [0, 3], [2, 0.0]]),
                np.zeros((3, 4)),
            ],
            wrt=(0,),
        ),
    )
)


# ---------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------


def _embedding_types(
    types: Sequence[TensorType], *, input_dim: int, output_dim: int, dtype: str, sparse_grad: bool
) -> list[TensorType]:
    weight = types[1]
    if weight.shape != (input_dim, output_dim):
        raise GraphError(f"weight must be ({input_dim}, {output_dim}), got {weight.shape}")
    return [TensorType(types[0].shape + (output_dim,), weight.dtype)]


def _embedding(
    data: np.ndarray,
    weight: np.ndarray,
    *,
    input_dim: int,
    output_dim: int,
    dtype: str,
    sparse_grad: bool,
) -> np.ndarray:
    return weight[np.clip(data.astype(np.int64), 0, input_dim - 1)]


def embedding_grad(
    g: Expr,
    data: Expr,
    weight: Expr,
    *,
    out: Expr,
    input_dim: int,
    output_dim: int,
    dtype: str,
    sparse_grad: bool,
) -> tuple[Expr | None, ...]:
    """rows of g added into zeros shaped like weight at each index (repeats add up)"""
    return None, F._take_grad(g, data, weight, axis=0, mode="clip")


register(
    OpDef(
        name="Embedding",
        infer=_embedding_types,
        impl=_embedding,
        grad=embedding_grad,
        inputs=("data", "weight"),
        kind="gather",
        attrs={
            "input_dim": Attr(as_int),
            "output_dim": Attr(as_int),
            "dtype": Attr(as_dtype_name, "float32"),
            "sparse_grad": Attr(as_bool, False),
        },
        doc="Rows of ``weight`` (input_dim, output_dim) at the indices in ``data``.",
        test=TestSpec(
            make_inputs=lambda rng: [np.array([[0, 3], [3, 1.0]]), rng.uniform(-1, 1, (5, 3))],
            attrs={"input_dim": 5, "output_dim": 3},
            wrt=(1,),
        ),
    )
)


# ---------------------------------------------------------------------------
# gather_nd and scatter_nd
# ---------------------------------------------------------------------------


def _nd_index(indices: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    count = indices.shape[0]
    index = indices.astype(np.int64)
    return tuple(np.clip(index[i], -shape[i], shape[i] - 1) for i in range(count))


def _gather_nd_types(types: Sequence[TensorType]) -> list[TensorType]:
    data, indices = types[0].shape, types[1].shape
    if not indices or indices[0] > len(data):
        raise GraphError(f"indices {indices} must be (M, ...) with M <= {len(data)}")
    return [TensorType(indices[1:] + data[indices[0] :] or (1,), types[0].dtype)]


def _gather_nd(data: np.ndarray, indices: np.ndarray) -> np.ndarray:
    out = data[_nd_index(indices, data.shape)]
    return out.reshape(1) if out.ndim == 0 else out


def gather_nd_grad(g: Expr, data: Expr, indices: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g added back at the gathered positions (repeats add up)"""
    return F._gather_nd_grad(g, indices, data), None


def _gather_nd_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (3, 4, 2)), np.array([[0, 2, 2], [1, 3, 1.0]])]


register(
    OpDef(
        name="gather_nd",
        infer=_gather_nd_types,
        impl=_gather_nd,
        grad=gather_nd_grad,
        inputs=("data", "indices"),
        kind="gather",
        doc="Elements or slices of ``data`` at the index columns of ``indices`` "
        "(M, ...): out[y] = data[indices[0, y], ..., indices[M-1, y]].",
        test=TestSpec(make_inputs=_gather_nd_inputs, wrt=(0,)),
    )
)


def _gather_nd_grad(g: np.ndarray, indices: np.ndarray, like: np.ndarray) -> np.ndarray:
    out = np.zeros(like.shape, dtype=g.dtype)
    index = _nd_index(indices, like.shape)
    np.add.at(out, index, g.reshape(index[0].shape + like.shape[indices.shape[0] :]))
    return out


def gather_nd_grad_grad(
    h: Expr, g: Expr, indices: Expr, like: Expr, *, out: Expr
) -> tuple[Expr | None, ...]:
    """h gathered at the same positions"""
    return F.reshape_like(F.gather_nd(h, indices), g), None, None


register(
    OpDef(
        name="_gather_nd_grad",
        aliases=("_backward_gather_nd",),
        infer=_like_last,
        impl=_gather_nd_grad,
        grad=gather_nd_grad_grad,
        shape_only=(2,),
        inputs=("data", "indices", "like"),
        kind="gather",
        doc="Zeros shaped like ``like`` with ``data`` added at ``indices``: the "
        "gradient of gather_nd.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 2)),
                np.array([[0, 2, 0], [1, 3, 1.0]]),
                np.zeros((3, 4, 2)),
            ],
            wrt=(0,),
        ),
    )
)


def _scatter_nd_types(types: Sequence[TensorType], *, shape: tuple[int, ...]) -> list[TensorType]:
    data, indices = types[0].shape, types[1].shape
    if not indices or indices[0] > len(shape) or data != indices[1:] + shape[indices[0] :]:
        raise GraphError(
            f"data {data} must be indices.shape[1:] + shape[M:] for indices "
            f"{indices} and shape {shape}"
        )
    return [TensorType(tuple(shape), types[0].dtype)]


def _scatter_nd(data: np.ndarray, indices: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=data.dtype)
    out[_nd_index(indices, shape)] = data
    return out


def scatter_nd_grad(
    g: Expr, data: Expr, indices: Expr, *, out: Expr, shape: tuple[int, ...]
) -> tuple[Expr | None, ...]:
    """g gathered at the scattered positions"""
    return F.reshape_like(F.gather_nd(g, indices), data), None


register(
    OpDef(
        name="scatter_nd",
        infer=_scatter_nd_types,
        impl=_scatter_nd,
        grad=scatter_nd_grad,
        inputs=("data", "indices"),
        attrs={"shape": Attr(as_shape)},
        kind="gather",
        doc="Zeros of ``shape`` with ``data`` written at ``indices`` (the inverse "
        "of gather_nd; with repeated indices one write wins).",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 2)),
                np.array([[0, 2, 1], [1, 3, 1.0]]),
            ],
            attrs={"shape": (3, 4, 2)},
            wrt=(0,),
        ),
    )
)


# ---------------------------------------------------------------------------
# where
# ---------------------------------------------------------------------------


def _where_types(types: Sequence[TensorType]) -> list[TensorType]:
    condition, x, y = types
    dtype = require_same_dtype([x, y])
    if not condition.shape == x.shape == y.shape:
        raise GraphError("condition, x and y must have one shape")
    return [TensorType(x.shape, dtype)]


def where_grad(g: Expr, condition: Expr, x: Expr, y: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g where condition is nonzero (for x), g elsewhere (for y)"""
    zeros = F.zeros_like(g)
    return None, F.where(condition, g, zeros), F.where(condition, zeros, g)


def _where_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.integers(0, 2, (3, 4)).astype(np.float64),
        rng.uniform(-2, 2, (3, 4)),
        rng.uniform(-2, 2, (3, 4)),
    ]


register(
    OpDef(
        name="where",
        infer=_where_types,
        impl=lambda condition, x, y: np.where(condition != 0, x, y),
        grad=where_grad,
        inputs=("condition", "x", "y"),
        kind="elemwise",
        scalar="({1} if {0} != 0 else {2})",
        doc="x where condition is nonzero, else y.",
        test=TestSpec(make_inputs=_where_inputs, wrt=(1, 2)),
    )
)


# ---------------------------------------------------------------------------
# tile and repeat
# ---------------------------------------------------------------------------


def _tile_shapes(
    shape: Sequence[int], reps: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = max(len(shape), len(reps))
    shape = (1,) * (rank - len(shape)) + tuple(shape)
    reps = (1,) * (rank - len(reps)) + tuple(reps)
    return shape, reps


def _tile_types(types: Sequence[TensorType], *, reps: tuple[int, ...]) -> list[TensorType]:
    shape, reps = _tile_shapes(types[0].shape, reps)
    return [TensorType(tuple(s * r for s, r in zip(shape, reps)), types[0].dtype)]


def tile_grad(g: Expr, x: Expr, *, out: Expr, reps: tuple[int, ...]) -> Expr:
    """the sum of g's tiles"""
    return F._tile_grad(g, x, reps=reps)


register(
    OpDef(
        name="tile",
        infer=_tile_types,
        impl=lambda x, reps: np.tile(x, reps),
        grad=tile_grad,
        attrs={"reps": Attr(as_shape)},
        kind="shape",
        method="tile",
        doc="Repeat the whole array ``reps`` times along each axis.",
        test=TestSpec(shapes=((2, 3),), attrs={"reps": (2, 1, 2)}),
    )
)


def _tile_grad(g: np.ndarray, like: np.ndarray, *, reps: tuple[int, ...]) -> np.ndarray:
    shape, reps = _tile_shapes(like.shape, reps)
    split = tuple(n for pair in zip(reps, shape) for n in pair)
    total = g.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2)))
    return total.reshape(like.shape)


def tile_grad_grad(
    h: Expr, g: Expr, like: Expr, *, out: Expr, reps: tuple[int, ...]
) -> tuple[Expr | None, ...]:
    """h tiled again"""
    return F.tile(h, reps=reps), None


register(
    OpDef(
        name="_tile_grad",
        infer=_like_last,
        impl=_tile_grad,
        grad=tile_grad_grad,
        shape_only=(1,),
        inputs=("data", "like"),
        attrs={"reps": Attr(as_shape)},
        kind="reduce",
        doc="Sum of the tiles of ``data`` shaped like ``like``: the gradient of tile.",
        test=TestSpec(shapes=((2, 2, 6), (2, 3)), attrs={"reps": (2, 1, 2)}, wrt=(0,)),
    )
)


def _repeat_types(
    types: Sequence[TensorType], *, repeats: int, axis: int | None
) -> list[TensorType]:
    shape = types[0].shape
    if axis is None:
        return [TensorType((int(np.prod(shape)) * repeats,), types[0].dtype)]
    ax = normalize_axis(axis, len(shape))
    return [
        TensorType(
            tuple(s * repeats if i == ax else s for i, s in enumerate(shape)), types[0].dtype
        )
    ]


def repeat_grad(g: Expr, x: Expr, *, out: Expr, repeats: int, axis: int | None) -> Expr:
    """the sum of each element's repeats"""
    return F._repeat_grad(g, x, repeats=repeats, axis=axis)


REPEAT_ATTRS = {"repeats": Attr(as_int), "axis": Attr(as_optional_int, None)}
register(
    OpDef(
        name="repeat",
        infer=_repeat_types,
        impl=lambda x, repeats, axis: np.repeat(x, repeats, axis=axis),
        grad=repeat_grad,
        attrs=REPEAT_ATTRS,
        kind="shape",
        method="repeat",
        doc="Repeat each element ``repeats`` times along ``axis`` (of the flattened "
        "array if None).",
        test=TestSpec(shapes=((2, 3),), attrs={"repeats": 2, "axis": 1}),
    )
)


def _repeat_grad(g: np.ndarray, like: np.ndarray, *, repeats: int, axis: int | None) -> np.ndarray:
    if axis is None:
        return g.reshape(-1, repeats).sum(axis=1).reshape(like.shape)
    ax = axis % like.ndim
    split = like.shape[:ax] + (like.shape[ax], repeats) + like.shape[ax + 1 :]
    return g.reshape(split).sum(axis=ax + 1)


def repeat_grad_grad(
    h: Expr, g: Expr, like: Expr, *, out: Expr, repeats: int, axis: int | None
) -> tuple[Expr | None, ...]:
    """h repeated again"""
    return F.repeat(h, repeats=repeats, axis=axis), None


register(
    OpDef(
        name="_repeat_grad",
        infer=_like_last,
        impl=_repeat_grad,
        shape_only=(1,),
        grad=repeat_grad_grad,
        inputs=("data", "like"),
        attrs=REPEAT_ATTRS,
        kind="reduce",
        doc="Sum of each element's repeats: the gradient of repeat.",
        test=TestSpec(shapes=((2, 6), (2, 3)), attrs={"repeats": 2, "axis": 1}, wrt=(0,)),
    )
)


# ---------------------------------------------------------------------------
# pad
# ---------------------------------------------------------------------------

PAD_ATTRS = {
    "mode": Attr(one_of("constant", "edge", "reflect"), "constant"),
    "pad_width": Attr(as_shape),
    "constant_value": Attr(as_float, 0.0),
}


def _pad_pairs(ndim: int, pad_width: Sequence[int]) -> list[tuple[int, int]]:
    if len(pad_width) != 2 * ndim:
        raise GraphError(f"pad_width {pad_width} needs two entries per axis ({2 * ndim})")
    return [(pad_width[2 * i], pad_width[2 * i + 1]) for i in range(ndim)]


def _pad_types(
    types: Sequence[TensorType], *, mode: str, pad_width: tuple[int, ...], constant_value: float
) -> list[TensorType]:
    shape = types[0].shape
    pairs = _pad_pairs(len(shape), pad_width)
    if mode == "reflect" and any(max(p) >= s for p, s in zip(pairs, shape) if max(p)):
        raise GraphError(f"reflect padding {pad_width} must be shorter than each axis")
    return [TensorType(tuple(s + a + b for s, (a, b) in zip(shape, pairs)), types[0].dtype)]


def _pad(
    x: np.ndarray, *, mode: str, pad_width: tuple[int, ...], constant_value: float
) -> np.ndarray:
    pairs = _pad_pairs(x.ndim, pad_width)
    if mode == "constant":
        return np.pad(x, pairs, mode="constant", constant_values=constant_value)
    # numpy's stubs take mode as a Literal; ours is checked by the attr's one_of
    return np.pad(x, pairs, mode=mode)  # type: ignore[call-overload]


def pad_grad(
    g: Expr, x: Expr, *, out: Expr, mode: str, pad_width: tuple[int, ...], constant_value: float
) -> Expr:
    """constant: the unpadded part of g; edge/reflect: g folded back onto its sources"""
    pairs = _pad_pairs(x.ndim, pad_width)
    if mode == "constant":
        return F.slice(
            g, begin=tuple(a for a, _ in pairs), end=tuple(-b if b else None for _, b in pairs)
        )
    return F._pad_grad(g, x, mode=mode, pad_width=pad_width, constant_value=0.0)


register(
    OpDef(
        name="Pad",
        aliases=("pad",),
        infer=_pad_types,
        impl=_pad,
        grad=pad_grad,
        attrs=PAD_ATTRS,
        kind="shape",
        method="pad",
        doc="Pad every axis by (before, after) from ``pad_width`` with a constant, "
        "the edge value, or a reflection.",
        test=TestSpec(
            shapes=((2, 3, 4),), attrs={"mode": "reflect", "pad_width": (0, 0, 1, 2, 2, 1)}
        ),
    )
)


def _pad_grad(
    g: np.ndarray, like: np.ndarray, *, mode: str, pad_width: tuple[int, ...], constant_value: float
) -> np.ndarray:
    pairs = _pad_pairs(like.ndim, pad_width)
    for axis, ((before, after), size) in enumerate(zip(pairs, like.shape)):
        if not before and not after:
            continue
        # numpy's stubs take mode as a Literal; ours is checked by the attr's one_of
        source = np.pad(np.arange(size), (before, after), mode=mode)  # type: ignore[call-overload]
        folded = np.zeros((size,) + g.shape[:axis] + g.shape[axis + 1 :], dtype=g.dtype)
        np.add.at(folded, source, np.moveaxis(g, axis, 0))
        g = np.moveaxis(folded, 0, axis)
    return np.ascontiguousarray(g)


def pad_grad_grad(
    h: Expr,
    g: Expr,
    like: Expr,
    *,
    out: Expr,
    mode: str,
    pad_width: tuple[int, ...],
    constant_value: float,
) -> tuple[Expr | None, ...]:
    """h padded again"""
    return F.Pad(h, mode=mode, pad_width=pad_width), None


register(
    OpDef(
        name="_pad_grad",
        infer=_like_last,
        impl=_pad_grad,
        grad=pad_grad_grad,
        shape_only=(1,),
        inputs=("data", "like"),
        attrs=PAD_ATTRS,
        kind="gather",
        doc="Each padded element added back onto the element it copies: the "
        "gradient of edge and reflect padding.",
        test=TestSpec(
            shapes=((2, 6, 7), (2, 3, 4)),
            wrt=(0,),
            attrs={"mode": "edge", "pad_width": (0, 0, 1, 2, 2, 1)},
        ),
    )
)


# ---------------------------------------------------------------------------
# reverse, sort, argsort
# ---------------------------------------------------------------------------


def reverse_grad(g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None) -> Expr:
    """g reversed back"""
    return F.reverse(g, axis=axis)


register(
    OpDef(
        name="reverse",
        aliases=("flip",),
        infer=lambda types, axis: [types[0]],
        impl=lambda x, axis: np.flip(x, axis=axis).copy(),
        grad=reverse_grad,
        attrs={"axis": Attr(as_axes)},
        kind="shape",
        method="flip",
        doc="Reverse the order of elements along the given axes.",
        test=TestSpec(shapes=((3, 4),), attrs={"axis": (1,)}),
    )
)


def _sort_types(
    types: Sequence[TensorType], *, axis: int | None, is_ascend: bool, **_dtype: Any
) -> list[TensorType]:
    if axis is None:
        return [TensorType((int(np.prod(types[0].shape)),), types[0].dtype)]
    normalize_axis(axis, len(types[0].shape))
    return [types[0]]


def _order(x: np.ndarray, axis: int | None, is_ascend: bool) -> tuple[np.ndarray, int, np.ndarray]:
    data = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis % x.ndim
    return data, ax, np.argsort(data if is_ascend else -data, axis=ax, kind="stable")


def _sort(x: np.ndarray, *, axis: int | None, is_ascend: bool) -> np.ndarray:
    data, ax, order = _order(x, axis, is_ascend)
    return np.take_along_axis(data, order, axis=ax)


def sort_grad(g: Expr, x: Expr, *, out: Expr, axis: int | None, is_ascend: bool) -> Expr:
    """g sent back to the positions the sorted values came from"""
    order = F.argsort(F.stop_gradient(x), axis=axis, is_ascend=is_ascend, dtype=x.dtype.name)
    if axis is None:
        flat = F.reshape(x, shape=(-1,))
        return F.reshape_like(F._scatter_along_axis(g, order, flat, axis=0), x)
    return F._scatter_along_axis(g, order, x, axis=axis)


SORT_ATTRS = {"axis": Attr(as_optional_int, -1), "is_ascend": Attr(as_bool, True)}
register(
    OpDef(
        name="sort",
        infer=_sort_types,
        impl=_sort,
        grad=sort_grad,
        attrs=SORT_ATTRS,
        kind="gather",
        method="sort",
        doc="Sorted copy along ``axis`` (flattened if None); ties keep their order.",
        test=TestSpec(
            make_inputs=lambda rng: [rng.permutation(12).reshape(3, 4) / 4.0],
            attrs={"is_ascend": False},
        ),
    )
)


def _argsort_types(
    types: Sequence[TensorType], *, axis: int | None, is_ascend: bool, dtype: str
) -> list[TensorType]:
    return [_sort_types(types, axis=axis, is_ascend=is_ascend)[0]._replace(dtype=np.dtype(dtype))]


register(
    OpDef(
        name="argsort",
        infer=_argsort_types,
        impl=lambda x, axis, is_ascend, dtype: _order(x, axis, is_ascend)[2].astype(dtype),
        attrs={**SORT_ATTRS, "dtype": Attr(as_dtype_name, "float32")},
        differentiable=False,
        kind="gather",
        method="argsort",
        doc="Positions that sort the array along ``axis`` (no gradient).",
        test=TestSpec(shapes=((3, 4),), attrs={"is_ascend": False}),
    )
)
