"""MXNet's ``_scatter_set_nd``: ``lhs`` with the elements ``indices`` name set to
``rhs`` (the op behind MXNet's ``x[index_arrays] = values``).

MXNet 1.9.1 only runs it in place (``out=lhs``); here it returns the new array,
which ``out=lhs`` writes back as MXNet's does. Indices are an (M, ...) array whose
row i indexes axis i, as scatter_nd's; a position outside lhs (a negative index
too) is skipped, where MXNet writes outside its array (undefined behaviour).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import OPS, Attr, OpDef, TestSpec, as_shape, register
from .common import F


def _scatter_set_types(types: Sequence[TensorType], *, shape: tuple[int, ...]) -> list[TensorType]:
    lhs, rhs, indices = (t.shape for t in types)
    if lhs != tuple(shape):
        raise GraphError(f"lhs has shape {lhs}, not the shape attribute {shape}")
    # rhs and indices must fit as scatter_nd's data and indices do
    (out,) = OPS["scatter_nd"].infer_types([types[1], types[2]], {"shape": tuple(shape)})
    if types[0].dtype != types[1].dtype:
        raise GraphError(f"lhs and rhs dtypes differ: {types[0].dtype}, {types[1].dtype}")
    return [TensorType(out.shape, types[0].dtype)]


def _in_range(indices: np.ndarray, shape: tuple[int, ...]) -> tuple[tuple, np.ndarray]:
    """The index tuple of the positions ``indices`` names that lie inside
    ``shape``, and which ones those are: the others (a negative index too) are
    skipped, where gather_nd would wrap or clip them."""
    index = indices.astype(np.int64).reshape(indices.shape[0], -1)
    bounds = np.array(shape[: index.shape[0]]).reshape(-1, 1)
    valid = np.asarray(((index >= 0) & (index < bounds)).all(axis=0))
    return tuple(index[:, valid]), valid


def _scatter_set_nd(
    lhs: np.ndarray, rhs: np.ndarray, indices: np.ndarray, *, shape: tuple[int, ...]
) -> np.ndarray:
    out = lhs.copy()
    where, valid = _in_range(indices, out.shape)
    count = valid.shape[0]
    out[where] = rhs.reshape((count,) + rhs.shape[indices.ndim - 1 :])[valid]
    return out


def scatter_set_nd_grad(
    g: Expr, lhs: Expr, rhs: Expr, indices: Expr, *, out: Expr, shape: tuple[int, ...]
) -> tuple[Expr | None, ...]:
    """lhs: g with the set elements zeroed (g with zeros set there); rhs: g read at
    the indices in range (_gather_nd_in_range), zero for the skipped ones; none for
    the indices. (An index named twice: the value set last wins, and MXNet calls
    the result undefined; both get g.)"""
    for_lhs = F._scatter_set_nd(g, F.zeros_like(rhs), indices, shape=shape)
    return for_lhs, F._gather_nd_in_range(g, indices), None


def _inputs(rng: np.random.Generator) -> list[np.ndarray]:
    # distinct positions of a (3, 4) array, and one outside it
    return [
        rng.uniform(-2, 2, (3, 4)),
        rng.uniform(-2, 2, (4,)),
        np.array([[0, 2, 1, 5], [1, 3, 3, 0]], dtype=np.float64),  # 5: skipped
    ]


register(
    OpDef(
        name="_scatter_set_nd",
        infer=_scatter_set_types,
        impl=_scatter_set_nd,
        grad=scatter_set_nd_grad,
        inputs=("lhs", "rhs", "indices"),
        attrs={"shape": Attr(as_shape)},
        kind="gather",
        doc="lhs with lhs[indices] set to rhs (indices as scatter_nd reads them).\n\n"
        "Gradient\n--------\n" + (scatter_set_nd_grad.__doc__ or ""),
        test=TestSpec(make_inputs=_inputs, attrs={"shape": (3, 4)}, wrt=(0, 1)),
    )
)


def _gather_nd_in_range(data: np.ndarray, indices: np.ndarray) -> np.ndarray:
    where, valid = _in_range(indices, data.shape)
    out = np.zeros((valid.shape[0],) + data.shape[indices.shape[0] :], dtype=data.dtype)
    out[valid] = data[where]
    return out.reshape(indices.shape[1:] + data.shape[indices.shape[0] :])


def gather_nd_in_range_grad(
    g: Expr, data: Expr, indices: Expr, *, out: Expr
) -> tuple[Expr | None, ...]:
    """data: g set at the indices in range into zeros (_scatter_set_nd); none for
    the indices"""
    return F._scatter_set_nd(F.zeros_like(data), g, indices, shape=data.shape), None


register(
    OpDef(
        name="_gather_nd_in_range",
        infer=lambda types: [OPS["gather_nd"].infer_types(types, {})[0]],
        impl=_gather_nd_in_range,
        grad=gather_nd_in_range_grad,
        inputs=("data", "indices"),
        kind="gather",
        doc="gather_nd, with 0 for a position outside the data (a negative index "
        "too): the adjoint of _scatter_set_nd's rhs.\n\nGradient\n--------\n"
        + (gather_nd_in_range_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 4)),
                np.array([[0, 2, 1, -1], [1, 3, 3, 0]], dtype=np.float64),
            ],
            wrt=(0,),
        ),
    )
)
