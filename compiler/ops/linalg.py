"""MXNet's ``linalg`` ops: matrix products, factorisations and triangular helpers.

Every op works on the last two axes and batches over the leading ones (``gemm`` and
``gemm2`` take the row axis as ``axis``). Gradients are built from these same ops
(triangular solves, products, triangle and diagonal packing), so they differentiate
again; ``syevd``'s needs the eigenvalue gaps and has a dedicated backward op.

Inputs MXNet documents as symmetric (``potrf``, ``syevd``) are symmetrised first:
on a symmetric input the values are MXNet's, and the function differentiated is then
the one whose gradient MXNet returns (the symmetric one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_float, as_int, get_op, register
from .common import F

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------
# shared helpers: type checks, transposes, triangles
# ---------------------------------------------------------------------------


def _matrix_type(t: TensorType, name: str = "A") -> TensorType:
    if len(t.shape) < 2:
        raise GraphError(f"{name} must have at least 2 dimensions, got shape {t.shape}")
    if t.dtype not in _FLOATS:
        raise GraphError(f"{name} must be float32 or float64, got {t.dtype}")
    return t


def _square_type(t: TensorType, name: str = "A") -> TensorType:
    _matrix_type(t, name)
    if t.shape[-1] != t.shape[-2]:
        raise GraphError(f"{name} must hold square matrices, got shape {t.shape}")
    return t


def _batch(shape: tuple[int, ...]) -> tuple[int, ...]:
    # MXNet gives a one-element result, not a scalar, for a single matrix
    return shape[:-2] or (1,)


def _swap(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


def _t(x: Expr) -> Expr:
    """The transpose of the last two axes of a graph handle."""
    return F.SwapAxis(x, dim1=-1, dim2=-2)


def _triangle_mask(n: int, offset: int, lower: bool) -> np.ndarray:
    if offset < 0 or (offset == 0 and lower):
        return np.tril(np.ones((n, n), dtype=bool), offset)
    return np.triu(np.ones((n, n), dtype=bool), offset)


def _keep_triangle(x: Expr, lower: bool) -> Expr:
    """The lower (or upper) triangle of a graph handle, the rest zero."""
    return F._linalg_maketrian(F._linalg_extracttrian(x, lower=lower), lower=lower)


def _copy_lower_to_upper(x: Expr) -> Expr:
    """A symmetric matrix from the lower triangle of ``x`` (diagonal kept once)."""
    strict = F._linalg_maketrian(F._linalg_extracttrian(x, offset=-1), offset=-1)
    return _keep_triangle(x, True) + _t(strict)


def _per_matrix(g: Expr, like: Expr) -> Expr:
    """A per-matrix value (shape batch, or (1,) for one matrix) shaped to broadcast
    against the matrices of ``like``."""
    if like.ndim == 2:
        return F.Reshape(g, shape=(1, 1))
    return F.expand_dims(F.expand_dims(g, axis=-1), axis=-1)


def _spd(rng: np.random.Generator, *batch_and_n: int) -> np.ndarray:
    """Symmetric positive definite test matrices: M M^T + n I."""
    *batch, n = batch_and_n
    m = rng.uniform(-1.0, 1.0, (*batch, n, n))
    return m @ _swap(m) + n * np.eye(n)


def _lower_triangular(rng: np.random.Generator, *batch_and_n: int) -> np.ndarray:
    """Well conditioned lower-triangular test matrices (diagonal in [1, 2])."""
    *batch, n = batch_and_n
    m = np.tril(rng.uniform(-0.5, 0.5, (*batch, n, n)), -1)
    return m + np.eye(n) * rng.uniform(1.0, 2.0, (*batch, 1, n))


# ---------------------------------------------------------------------------
# gemm, gemm2: alpha op(A) op(B) (+ beta C), rows on ``axis``
# ---------------------------------------------------------------------------


def _rows_last(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    axis = axis % len(shape)
    rest = [s for i, s in enumerate(shape[:-1]) if i != axis]
    return (*rest, shape[axis], shape[-1])


def _rows_back(shape: tuple[int, ...], axis: int, ndim: int) -> tuple[int, ...]:
    axis = axis % ndim
    dims = list(shape[:-2])
    dims.insert(axis, shape[-2])
    return (*dims, shape[-1])


def _product_shape(
    a: TensorType, b: TensorType, transpose_a: bool, transpose_b: bool, axis: int
) -> tuple[int, ...]:
    _matrix_type(a, "A")
    _matrix_type(b, "B")
    if a.dtype != b.dtype:
        raise GraphError(f"A and B dtypes differ: {a.dtype}, {b.dtype}")
    if len(a.shape) != len(b.shape) or not -len(a.shape) <= axis < len(a.shape) - 1:
        raise GraphError("A and B need the same rank, and axis must name a row axis")
    sa, sb = _rows_last(a.shape, axis), _rows_last(b.shape, axis)
    if sa[:-2] != sb[:-2]:
        raise GraphError(f"batch shapes differ: {sa[:-2]} and {sb[:-2]}")
    m, inner = (sa[-1], sa[-2]) if transpose_a else (sa[-2], sa[-1])
    inner_b, n = (sb[-1], sb[-2]) if transpose_b else (sb[-2], sb[-1])
    if inner != inner_b:
        raise GraphError(f"inner dimensions differ: {inner} and {inner_b}")
    return _rows_back((*sa[:-2], m, n), axis, len(a.shape))


def _product(
    a: np.ndarray, b: np.ndarray, transpose_a: bool, transpose_b: bool, alpha: float, axis: int
) -> np.ndarray:
    a, b = np.moveaxis(a, axis, -2), np.moveaxis(b, axis, -2)
    a = _swap(a) if transpose_a else a
    b = _swap(b) if transpose_b else b
    return np.moveaxis(np.matmul(a, b) * a.dtype.type(alpha), -2, axis)


def _gemm2_types(
    types: Sequence[TensorType], *, transpose_a: bool, transpose_b: bool, alpha: float, axis: int
) -> list[TensorType]:
    shape = _product_shape(types[0], types[1], transpose_a, transpose_b, axis)
    return [TensorType(shape, types[0].dtype)]


def _gemm2(
    a: np.ndarray, b: np.ndarray, *, transpose_a: bool, transpose_b: bool, alpha: float, axis: int
) -> np.ndarray:
    return np.ascontiguousarray(_product(a, b, transpose_a, transpose_b, alpha, axis))


def _product_grads(
    g: Expr, a: Expr, b: Expr, transpose_a: bool, transpose_b: bool, alpha: float, axis: int
) -> tuple[Expr, Expr]:
    gemm2 = F._linalg_gemm2
    if transpose_a:
        grad_a = gemm2(b, g, transpose_a=transpose_b, transpose_b=True, alpha=alpha, axis=axis)
    else:
        grad_a = gemm2(g, b, transpose_b=not transpose_b, alpha=alpha, axis=axis)
    if transpose_b:
        grad_b = gemm2(g, a, transpose_a=True, transpose_b=transpose_a, alpha=alpha, axis=axis)
    else:
        grad_b = gemm2(a, g, transpose_a=not transpose_a, alpha=alpha, axis=axis)
    return grad_a, grad_b


def gemm2_grad(
    g: Expr,
    a: Expr,
    b: Expr,
    *,
    out: Expr,
    transpose_a: bool,
    transpose_b: bool,
    alpha: float,
    axis: int,
) -> tuple[Expr, Expr]:
    """dA = alpha g op(B)^T (transposed back if transpose_a); dB = alpha op(A)^T g
    (likewise): each a gemm2."""
    return _product_grads(g, a, b, transpose_a, transpose_b, alpha, axis)


_PRODUCT_ATTRS = {
    "transpose_a": Attr(as_bool, False),
    "transpose_b": Attr(as_bool, False),
    "alpha": Attr(as_float, 1.0),
    "axis": Attr(as_int, -2),
}

register(
    OpDef(
        name="_linalg_gemm2",
        aliases=("linalg_gemm2",),
        infer=_gemm2_types,
        impl=_gemm2,
        grad=gemm2_grad,
        inputs=("A", "B"),
        attrs=_PRODUCT_ATTRS,
        doc="alpha * op(A) op(B) over the last two axes (rows on ``axis``), "
        "op transposing when transpose_a/transpose_b.",
        test=TestSpec(shapes=((2, 4, 3), (2, 4, 5)), attrs={"transpose_a": True, "alpha": 1.5}),
    )
)


def _gemm_types(
    types: Sequence[TensorType],
    *,
    transpose_a: bool,
    transpose_b: bool,
    alpha: float,
    beta: float,
    axis: int,
) -> list[TensorType]:
    shape = _product_shape(types[0], types[1], transpose_a, transpose_b, axis)
    if types[2].shape != shape or types[2].dtype != types[0].dtype:
        raise GraphError(
            f"C must be {shape} {types[0].dtype}, got {types[2].shape} {types[2].dtype}"
        )
    return [TensorType(shape, types[0].dtype)]


def _gemm(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    transpose_a: bool,
    transpose_b: bool,
    alpha: float,
    beta: float,
    axis: int,
) -> np.ndarray:
    product = _product(a, b, transpose_a, transpose_b, alpha, axis)
    return np.ascontiguousarray(product + c * c.dtype.type(beta))


def gemm_grad(
    g: Expr,
    a: Expr,
    b: Expr,
    c: Expr,
    *,
    out: Expr,
    transpose_a: bool,
    transpose_b: bool,
    alpha: float,
    beta: float,
    axis: int,
) -> tuple[Expr | None, ...]:
    """dA, dB as for gemm2; dC = beta g."""
    return (*_product_grads(g, a, b, transpose_a, transpose_b, alpha, axis), g * beta)


register(
    OpDef(
        name="_linalg_gemm",
        aliases=("linalg_gemm",),
        infer=_gemm_types,
        impl=_gemm,
        grad=gemm_grad,
        inputs=("A", "B", "C"),
        attrs={**_PRODUCT_ATTRS, "beta": Attr(as_float, 1.0)},
        doc="alpha * op(A) op(B) + beta * C over the last two axes (rows on ``axis``).",
        test=TestSpec(
            shapes=((3, 2, 4), (5, 2, 3), (4, 2, 5)),
            attrs={"transpose_a": True, "transpose_b": True, "alpha": 0.7, "beta": -1.3, "axis": 0},
        ),
    )
)


# ---------------------------------------------------------------------------
# triangular products and solves: trmm, trsm
# ---------------------------------------------------------------------------


def _triangular_types(
    types: Sequence[TensorType], *, transpose: bool, rightside: bool, lower: bool, alpha: float
) -> list[TensorType]:
    a, b = _square_type(types[0]), _matrix_type(types[1], "B")
    if a.dtype != b.dtype or a.shape[:-2] != b.shape[:-2]:
        raise GraphError("A and B need the same dtype and batch shape")
    if b.shape[-1 if rightside else -2] != a.shape[-1]:
        raise GraphError(f"B {b.shape} does not match the triangular A {a.shape}")
    return [b]


def _triangle_of(a: np.ndarray, lower: bool, transpose: bool) -> np.ndarray:
    mask = _triangle_mask(a.shape[-1], 0, lower)
    a = np.where(mask, a, a.dtype.type(0))
    return _swap(a) if transpose else a


def _trmm(
    a: np.ndarray, b: np.ndarray, *, transpose: bool, rightside: bool, lower: bool, alpha: float
) -> np.ndarray:
    tri = _triangle_of(a, lower, transpose)
    out = np.matmul(b, tri) if rightside else np.matmul(tri, b)
    return np.ascontiguousarray(out * a.dtype.type(alpha))


def trmm_grad(
    g: Expr,
    a: Expr,
    b: Expr,
    *,
    out: Expr,
    transpose: bool,
    rightside: bool,
    lower: bool,
    alpha: float,
) -> tuple[Expr | None, ...]:
    """dB = alpha op(A)^T g (g op(A)^T on the right side), a trmm; dA = alpha g B^T
    (B^T g on the right side; transposed if transpose) on A's triangle."""
    grad_b = F._linalg_trmm(
        a, g, transpose=not transpose, rightside=rightside, lower=lower, alpha=alpha
    )
    if rightside:
        grad_a = (
            F._linalg_gemm2(g, b, transpose_a=True, alpha=alpha)
            if transpose
            else F._linalg_gemm2(b, g, transpose_a=True, alpha=alpha)
        )
    else:
        grad_a = (
            F._linalg_gemm2(b, g, transpose_b=True, alpha=alpha)
            if transpose
            else F._linalg_gemm2(g, b, transpose_b=True, alpha=alpha)
        )
    return _keep_triangle(grad_a, lower), grad_b


_TRIANGULAR_ATTRS = {
    "transpose": Attr(as_bool, False),
    "rightside": Attr(as_bool, False),
    "lower": Attr(as_bool, True),
    "alpha": Attr(as_float, 1.0),
}


def _triangular_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [_lower_triangular(rng, 2, 3), rng.uniform(-1, 1, (2, 4, 3))]


register(
    OpDef(
        name="_linalg_trmm",
        aliases=("linalg_trmm",),
        infer=_triangular_types,
        impl=_trmm,
        grad=trmm_grad,
        inputs=("A", "B"),
        attrs=_TRIANGULAR_ATTRS,
        doc="alpha * op(A) B (B op(A) with rightside) for the triangle of A (lower or upper) only.",
        test=TestSpec(
            make_inputs=_triangular_inputs,
            attrs={"rightside": True, "transpose": True, "alpha": 1.3},
        ),
    )
)


def _trsm(
    a: np.ndarray, b: np.ndarray, *, transpose: bool, rightside: bool, lower: bool, alpha: float
) -> np.ndarray:
    tri = _triangle_of(a, lower, transpose)
    if rightside:  # X op(A) = alpha B  <=>  op(A)^T X^T = alpha B^T
        out = _swap(np.linalg.solve(_swap(tri), _swap(b)))
    else:
        out = np.linalg.solve(tri, b)
    return np.ascontiguousarray(out * a.dtype.type(alpha))


def trsm_grad(
    g: Expr,
    a: Expr,
    b: Expr,
    *,
    out: Expr,
    transpose: bool,
    rightside: bool,
    lower: bool,
    alpha: float,
) -> tuple[Expr | None, ...]:
    """dB = alpha op(A)^-T g (g op(A)^-T on the right side), a trsm; with
    Y = op(A)^-T g: d op(A) = -Y out^T (-out^T Y on the right side), on A's
    triangle."""
    solve = F._linalg_trsm
    y = solve(a, g, transpose=not transpose, rightside=rightside, lower=lower)
    gemm2 = F._linalg_gemm2
    if rightside:
        grad_a = (
            gemm2(y, out, transpose_a=True, alpha=-1.0)
            if transpose
            else gemm2(out, y, transpose_a=True, alpha=-1.0)
        )
    else:
        grad_a = (
            gemm2(out, y, transpose_b=True, alpha=-1.0)
            if transpose
            else gemm2(y, out, transpose_b=True, alpha=-1.0)
        )
    return _keep_triangle(grad_a, lower), y * alpha


register(
    OpDef(
        name="_linalg_trsm",
        aliases=("linalg_trsm",),
        infer=_triangular_types,
        impl=_trsm,
        grad=trsm_grad,
        inputs=("A", "B"),
        attrs=_TRIANGULAR_ATTRS,
        doc="alpha * op(A)^-1 B (B op(A)^-1 with rightside): a solve with the "
        "triangle of A (lower or upper).",
        test=TestSpec(
            make_inputs=lambda rng: [_lower_triangular(rng, 2, 4), rng.uniform(-1, 1, (2, 4, 3))],
            attrs={"transpose": True, "alpha": 0.8},
        ),
    )
)


# ---------------------------------------------------------------------------
# syrk: alpha A A^T (alpha A^T A with transpose)
# ---------------------------------------------------------------------------


def _syrk_types(types: Sequence[TensorType], *, transpose: bool, alpha: float) -> list[TensorType]:
    a = _matrix_type(types[0])
    n = a.shape[-1] if transpose else a.shape[-2]
    return [TensorType((*a.shape[:-2], n, n), a.dtype)]


def _syrk(a: np.ndarray, *, transpose: bool, alpha: float) -> np.ndarray:
    out = np.matmul(_swap(a), a) if transpose else np.matmul(a, _swap(a))
    return out * a.dtype.type(alpha)


def syrk_grad(g: Expr, a: Expr, *, out: Expr, transpose: bool, alpha: float) -> Expr:
    """alpha (g + g^T) A (alpha A (g + g^T) with transpose)"""
    both = g + _t(g)
    return (
        F._linalg_gemm2(a, both, alpha=alpha)
        if transpose
        else F._linalg_gemm2(both, a, alpha=alpha)
    )


register(
    OpDef(
        name="_linalg_syrk",
        aliases=("linalg_syrk",),
        infer=_syrk_types,
        impl=_syrk,
        grad=syrk_grad,
        attrs={"transpose": Attr(as_bool, False), "alpha": Attr(as_float, 1.0)},
        inputs=("A",),
        doc="alpha A A^T (alpha A^T A with transpose).",
        test=TestSpec(shapes=((2, 3, 4),), attrs={"alpha": 0.6}),
    )
)


# ---------------------------------------------------------------------------
# potrf, potri: Cholesky factor and inverse from it
# ---------------------------------------------------------------------------


def _square_same(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [_square_type(types[0])]


def _symmetric(a: np.ndarray) -> np.ndarray:
    return (a + _swap(a)) * a.dtype.type(0.5)


def _potrf(a: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(_symmetric(a))


def potrf_grad(g: Expr, a: Expr, *, out: Expr) -> Expr:
    """dA = 0.5 L^-T S L^-1 with S the symmetric matrix made from the lower
    triangle of L^T g (MXNet's symmetric gradient)."""
    lower_part = _copy_lower_to_upper(F._linalg_gemm2(out, g, transpose_a=True))
    left = F._linalg_trsm(out, lower_part, transpose=True, alpha=0.5)
    return F._linalg_trsm(out, left, rightside=True)


register(
    OpDef(
        name="_linalg_potrf",
        aliases=("linalg_potrf",),
        infer=_square_same,
        impl=_potrf,
        grad=potrf_grad,
        inputs=("A",),
        doc="The lower Cholesky factor L of a symmetric positive definite A (A = L L^T).",
        test=TestSpec(make_inputs=lambda rng: [_spd(rng, 2, 3)]),
    )
)


def _potri(a: np.ndarray) -> np.ndarray:
    lower = _triangle_of(a, True, False)
    inverse = np.linalg.inv(lower)
    return np.ascontiguousarray(np.matmul(_swap(inverse), inverse))


def potri_grad(g: Expr, a: Expr, *, out: Expr) -> Expr:
    """dL = -tril(out (g + g^T) L^-T), out = (L L^T)^-1"""
    both = F._linalg_gemm2(out, g + _t(g))
    return _keep_triangle(F._linalg_trsm(a, both, rightside=True, transpose=True, alpha=-1.0), True)


register(
    OpDef(
        name="_linalg_potri",
        aliases=("linalg_potri",),
        infer=_square_same,
        impl=_potri,
        grad=potri_grad,
        inputs=("A",),
        doc="(L L^T)^-1 from the lower-triangular L (the inverse of A from its Cholesky factor).",
        test=TestSpec(make_inputs=lambda rng: [_lower_triangular(rng, 2, 3)]),
    )
)


# ---------------------------------------------------------------------------
# gelqf: A = L Q
# ---------------------------------------------------------------------------


def _gelqf_types(types: Sequence[TensorType]) -> list[TensorType]:
    a = _matrix_type(types[0])
    m, n = a.shape[-2:]
    if m > n:
        raise GraphError(f"gelqf needs rows <= columns, got {a.shape}")
    return [a, TensorType((*a.shape[:-2], m, m), a.dtype)]


def _gelqf(a: np.ndarray) -> tuple[np.ndarray, ...]:
    q, r = np.linalg.qr(_swap(a))
    return np.ascontiguousarray(_swap(q)), np.ascontiguousarray(_swap(r))


def gelqf_grad(gs: tuple[Expr, ...], a: Expr, *, out: tuple[Expr, ...]) -> Expr:
    """dA = L^-T (gQ + copyLTU(M) Q) with M = L^T gL - gQ Q^T"""
    grad_q, grad_l = gs
    q, lower = out
    m = F._linalg_gemm2(lower, grad_l, transpose_a=True) - F._linalg_gemm2(
        grad_q, q, transpose_b=True
    )
    inner = grad_q + F._linalg_gemm2(_copy_lower_to_upper(m), q)
    return F._linalg_trsm(lower, inner, transpose=True)


register(
    OpDef(
        name="_linalg_gelqf",
        aliases=("linalg_gelqf",),
        infer=_gelqf_types,
        impl=_gelqf,
        grad=gelqf_grad,
        inputs=("A",),
        doc="The LQ factorisation A = L Q of a matrix with rows <= columns: "
        "outputs Q (orthonormal rows) and the lower-triangular L.",
        test=TestSpec(shapes=((2, 3, 4),), domain=(-1.0, 1.0)),
    )
)


# ---------------------------------------------------------------------------
# syevd: A = U^T diag(lambda) U
# ---------------------------------------------------------------------------


def _syevd_types(types: Sequence[TensorType]) -> list[TensorType]:
    a = _square_type(types[0])
    return [a, TensorType(a.shape[:-1], a.dtype)]


def _syevd(a: np.ndarray) -> tuple[np.ndarray, ...]:
    values, vectors = np.linalg.eigh(_symmetric(a))
    rows = _swap(vectors)
    # MXNet's sign: the entry of largest magnitude in each eigenvector is positive
    largest = np.take_along_axis(rows, np.abs(rows).argmax(-1)[..., None], -1)
    rows = rows * np.where(largest < 0, -1, 1).astype(a.dtype)
    return np.ascontiguousarray(rows), values.astype(a.dtype)


def syevd_grad(gs: tuple[Expr, ...], a: Expr, *, out: tuple[Expr, ...]) -> Expr:
    """dA = sym(U^T (diag(gl) + F o (U gU^T)) U), F_ij = 1 / (l_j - l_i) off the
    diagonal: a dedicated backward op (the gaps are not a registered op)."""
    return F._backward_linalg_syevd(gs[0], gs[1], out[0], out[1])


register(
    OpDef(
        name="_linalg_syevd",
        infer=_syevd_types,
        impl=_syevd,
        grad=syevd_grad,
        inputs=("A",),
        doc="The eigendecomposition A = U^T diag(L) U of a symmetric A: rows of U "
        "are the eigenvectors, L ascending.",
        test=TestSpec(make_inputs=lambda rng: [_spd(rng, 2, 3)], order=1),
    )
)


def _syevd_backward_types(types: Sequence[TensorType]) -> list[TensorType]:
    return [types[2]]


def _syevd_backward(
    grad_u: np.ndarray, grad_l: np.ndarray, u: np.ndarray, values: np.ndarray
) -> np.ndarray:
    gaps = values[..., None, :] - values[..., :, None]  # l_j - l_i at (i, j)
    n = values.shape[-1]
    eye = np.eye(n, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(eye, 0.0, 1.0 / np.where(eye, 1.0, gaps))
    inner = weights * np.matmul(u, _swap(grad_u))
    inner = inner + grad_l[..., None] * np.eye(n)
    full = np.matmul(_swap(u), np.matmul(inner, u))
    return _symmetric(full).astype(u.dtype)


register(
    OpDef(
        name="_backward_linalg_syevd",
        infer=_syevd_backward_types,
        impl=_syevd_backward,
        inputs=("grad_U", "grad_L", "U", "L"),
        differentiable=False,
        doc="The gradient of syevd with respect to A, given the output gradients and outputs.",
        test=TestSpec(shapes=((2, 3, 3), (2, 3), (2, 3, 3), (2, 3))),
    )
)


# ---------------------------------------------------------------------------
# diagonals and triangles
# ---------------------------------------------------------------------------


def _diag_length(n: int, offset: int) -> int:
    if abs(offset) >= n:
        raise GraphError(f"offset {offset} is outside a {n}x{n} matrix")
    return n - abs(offset)


def _extractdiag_types(types: Sequence[TensorType], *, offset: int) -> list[TensorType]:
    a = _square_type(types[0])
    return [TensorType((*a.shape[:-2], _diag_length(a.shape[-1], offset)), a.dtype)]


def _extractdiag(a: np.ndarray, *, offset: int) -> np.ndarray:
    return np.ascontiguousarray(np.diagonal(a, offset, -2, -1))


def extractdiag_grad(g: Expr, a: Expr, *, out: Expr, offset: int) -> Expr:
    """makediag(g, offset)"""
    return F._linalg_makediag(g, offset=offset)


_OFFSET = {"offset": Attr(as_int, 0)}

register(
    OpDef(
        name="_linalg_extractdiag",
        aliases=("linalg_extractdiag",),
        infer=_extractdiag_types,
        impl=_extractdiag,
        grad=extractdiag_grad,
        inputs=("A",),
        attrs=_OFFSET,
        doc="The diagonal ``offset`` (above the main one if positive) of square matrices.",
        test=TestSpec(shapes=((2, 4, 4),), attrs={"offset": 1}),
    )
)


def _makediag_types(types: Sequence[TensorType], *, offset: int) -> list[TensorType]:
    a = types[0]
    if a.dtype not in _FLOATS:
        raise GraphError(f"A must be float32 or float64, got {a.dtype}")
    n = a.shape[-1] + abs(offset)
    return [TensorType((*a.shape[:-1], n, n), a.dtype)]


def _makediag(a: np.ndarray, *, offset: int) -> np.ndarray:
    n = a.shape[-1] + abs(offset)
    out = np.zeros((*a.shape[:-1], n, n), dtype=a.dtype)
    rows = np.arange(a.shape[-1]) + max(-offset, 0)
    out[..., rows, rows + offset] = a
    return out


def makediag_grad(g: Expr, a: Expr, *, out: Expr, offset: int) -> Expr:
    """extractdiag(g, offset)"""
    return F._linalg_extractdiag(g, offset=offset)


register(
    OpDef(
        name="_linalg_makediag",
        aliases=("linalg_makediag",),
        infer=_makediag_types,
        impl=_makediag,
        grad=makediag_grad,
        inputs=("A",),
        attrs=_OFFSET,
        doc="Square matrices with the vectors of A on diagonal ``offset``, zero elsewhere.",
        test=TestSpec(shapes=((2, 3),), attrs={"offset": -1}),
    )
)


def _triangle_positions(n: int, offset: int, lower: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a triangle in MXNet's packing order: a lower triangle row
    by row, an upper one column by column."""
    mask = _triangle_mask(n, offset, lower)
    if offset < 0 or (offset == 0 and lower):
        rows, columns = np.nonzero(mask)
        return rows, columns
    columns, rows = np.nonzero(mask.T)
    return rows, columns


def _extracttrian_types(
    types: Sequence[TensorType], *, offset: int, lower: bool
) -> list[TensorType]:
    a = _square_type(types[0])
    m = _diag_length(a.shape[-1], offset)
    return [TensorType((*a.shape[:-2], m * (m + 1) // 2), a.dtype)]


def _extracttrian(a: np.ndarray, *, offset: int, lower: bool) -> np.ndarray:
    rows, columns = _triangle_positions(a.shape[-1], offset, lower)
    return np.ascontiguousarray(a[..., rows, columns])


def extracttrian_grad(g: Expr, a: Expr, *, out: Expr, offset: int, lower: bool) -> Expr:
    """maketrian(g, offset, lower)"""
    return F._linalg_maketrian(g, offset=offset, lower=lower)


_TRIANGLE_ATTRS = {"offset": Attr(as_int, 0), "lower": Attr(as_bool, True)}

register(
    OpDef(
        name="_linalg_extracttrian",
        aliases=("linalg_extracttrian",),
        infer=_extracttrian_types,
        impl=_extracttrian,
        grad=extracttrian_grad,
        inputs=("A",),
        attrs=_TRIANGLE_ATTRS,
        doc="The triangle of square matrices (lower or upper; beyond diagonal "
        "``offset``) packed in a vector: a lower one row by row, an upper one "
        "column by column.",
        test=TestSpec(shapes=((2, 4, 4),), attrs={"offset": 1}),
    )
)


def _maketrian_size(length: int, offset: int) -> int:
    m = int(round((np.sqrt(8 * length + 1) - 1) / 2))
    if m * (m + 1) // 2 != length:
        raise GraphError(f"a triangle has m (m + 1) / 2 entries, not {length}")
    return m + abs(offset)


def _maketrian_types(types: Sequence[TensorType], *, offset: int, lower: bool) -> list[TensorType]:
    a = types[0]
    if a.dtype not in _FLOATS:
        raise GraphError(f"A must be float32 or float64, got {a.dtype}")
    n = _maketrian_size(a.shape[-1], offset)
    return [TensorType((*a.shape[:-1], n, n), a.dtype)]


def _maketrian(a: np.ndarray, *, offset: int, lower: bool) -> np.ndarray:
    n = _maketrian_size(a.shape[-1], offset)
    out = np.zeros((*a.shape[:-1], n, n), dtype=a.dtype)
    rows, columns = _triangle_positions(n, offset, lower)
    out[..., rows, columns] = a
    return out


def maketrian_grad(g: Expr, a: Expr, *, out: Expr, offset: int, lower: bool) -> Expr:
    """extracttrian(g, offset, lower)"""
    return F._linalg_extracttrian(g, offset=offset, lower=lower)


register(
    OpDef(
        name="_linalg_maketrian",
        aliases=("linalg_maketrian",),
        infer=_maketrian_types,
        impl=_maketrian,
        grad=maketrian_grad,
        inputs=("A",),
        attrs=_TRIANGLE_ATTRS,
        doc="Square triangular matrices from packed triangles (the inverse of "
        "extracttrian), zero elsewhere.",
        test=TestSpec(shapes=((2, 6),), attrs={"lower": False}),
    )
)


def _per_matrix_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    a = _square_type(types[0])
    return [TensorType(_batch(a.shape), a.dtype)]


def _sumlogdiag(a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.log(np.diagonal(a, 0, -2, -1)).sum(-1)
    return np.asarray(total, dtype=a.dtype).reshape(_batch(a.shape))


def sumlogdiag_grad(g: Expr, a: Expr, *, out: Expr) -> Expr:
    """makediag(g / diag(A))"""
    # one matrix: g has shape (1,) and broadcasts against the diagonal as it is
    per_matrix = g if a.ndim == 2 else F.expand_dims(g, axis=-1)
    per_row = F.broadcast_div(per_matrix, F._linalg_extractdiag(a))
    return F._linalg_makediag(per_row)


register(
    OpDef(
        name="_linalg_sumlogdiag",
        aliases=("linalg_sumlogdiag",),
        infer=_per_matrix_types,
        impl=_sumlogdiag,
        grad=sumlogdiag_grad,
        inputs=("A",),
        doc="The sum of the logarithms of the diagonal of square matrices.",
        test=TestSpec(make_inputs=lambda rng: [_spd(rng, 2, 3)]),
    )
)


# ---------------------------------------------------------------------------
# inverse, det, slogdet
# ---------------------------------------------------------------------------


def _inverse(a: np.ndarray) -> np.ndarray:
    return np.linalg.inv(a)


def inverse_grad(g: Expr, a: Expr, *, out: Expr) -> Expr:
    """-out^T g out^T"""
    return F._linalg_gemm2(
        F._linalg_gemm2(out, g, transpose_a=True), out, transpose_b=True, alpha=-1.0
    )


register(
    OpDef(
        name="_linalg_inverse",
        aliases=("linalg_inverse",),
        infer=_square_same,
        impl=_inverse,
        grad=inverse_grad,
        inputs=("A",),
        doc="The inverse of square matrices.",
        test=TestSpec(
            make_inputs=lambda rng: [_spd(rng, 2, 3) + rng.uniform(-0.5, 0.5, (2, 3, 3))]
        ),
    )
)


def _det(a: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.det(a), dtype=a.dtype).reshape(_batch(a.shape))


def det_grad(g: Expr, a: Expr, *, out: Expr) -> Expr:
    """g det(A) A^-T"""
    return F.broadcast_mul(_per_matrix(g * out, a), _t(F._linalg_inverse(a)))


register(
    OpDef(
        name="_linalg_det",
        aliases=("linalg_det",),
        infer=_per_matrix_types,
        impl=_det,
        grad=det_grad,
        inputs=("A",),
        doc="The determinant of square matrices.",
        test=TestSpec(
            make_inputs=lambda rng: [_spd(rng, 2, 3) + rng.uniform(-0.5, 0.5, (2, 3, 3))]
        ),
    )
)


def _slogdet_types(types: Sequence[TensorType]) -> list[TensorType]:
    a = _square_type(types[0])
    per = TensorType(_batch(a.shape), a.dtype)
    return [per, per]


def _slogdet(a: np.ndarray) -> tuple[np.ndarray, ...]:
    sign, logabs = np.linalg.slogdet(a)
    shape = _batch(a.shape)
    return (
        np.asarray(sign, dtype=a.dtype).reshape(shape),
        np.asarray(logabs, dtype=a.dtype).reshape(shape),
    )


def slogdet_grad(gs: tuple[Expr, ...], a: Expr, *, out: Expr) -> Expr:
    """g_logabsdet A^-T (the sign is piecewise constant)"""
    return F.broadcast_mul(_per_matrix(gs[1], a), _t(F._linalg_inverse(a)))


register(
    OpDef(
        name="_linalg_slogdet",
        aliases=("linalg_slogdet",),
        infer=_slogdet_types,
        impl=_slogdet,
        grad=slogdet_grad,
        inputs=("A",),
        doc="The sign and the logarithm of the absolute value of the determinant.",
        test=TestSpec(make_inputs=lambda rng: [rng.uniform(-1, 1, (2, 3, 3)) + 2 * np.eye(3)]),
    )
)


# Output counts known before shapes (a Symbol over variables of unknown shape)
for _name in ("_linalg_gelqf", "_linalg_syevd", "_linalg_slogdet"):
    get_op(_name).num_outputs = 2
del _name
