"""More MXNet 1.9.1 ops the first registry lacked: eye and linspace, slice
assignment, LRN, khatri_rao, im2col and col2im, the 0-index choose/fill pair,
ravel/unravel_index, _square_sum, the finiteness and sum-of-squares checks of
the mixed-precision optimizers, amp_cast/amp_multicast, cast_storage (dense
only), and legacy names (``*_v1``, ``_crop_assign``, ``_CrossDeviceCopy``) as
aliases of the ops they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

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
    as_shape,
    one_of,
    register,
)
from .common import F, same_as_first
from .reduce import reduce_types, reduced_axes, restore_reduced
from .shape import SLICE_ATTRS, slice_tuple
from .tail_elemwise import add_aliases

# ---------------------------------------------------------------------------
# eye, linspace
# ---------------------------------------------------------------------------


def _eye_types(
    types: Sequence[TensorType], *, N: int, M: int, k: int, dtype: str
) -> list[TensorType]:  # noqa: N803 (MXNet's attribute names)
    return [TensorType((N, M or N), np.dtype(dtype))]


register(
    OpDef(
        name="_eye",
        # mx.nd.eye and mx.sym.eye: MXNet's Python wrappers of _eye, with the op's
        # attributes as their arguments in the same order
        aliases=("eye",),
        infer=_eye_types,
        impl=lambda *, N, M, k, dtype: np.eye(N, M or N, k, dtype=dtype),  # noqa: N803
        inputs=(),
        attrs={
            "N": Attr(as_int),
            "M": Attr(as_int, 0),
            "k": Attr(as_int, 0),
            "dtype": Attr(as_dtype_name, "float32"),
        },
        differentiable=False,
        kind="creation",
        doc="An N x M (M = 0: N) matrix with ones on the k-th diagonal: mx.nd.eye.",
        test=TestSpec(shapes=(), attrs={"N": 3, "M": 4, "k": 1}),
    )
)


def _linspace_types(
    types: Sequence[TensorType], *, start: float, stop: float, num: int, endpoint: bool, dtype: str
) -> list[TensorType]:
    return [TensorType((num,), np.dtype(dtype))]


def _linspace(*, start: float, stop: float, num: int, endpoint: bool, dtype: str) -> np.ndarray:
    return np.linspace(start, stop, num, endpoint=endpoint).astype(dtype)


register(
    OpDef(
        name="_linspace",
        aliases=("linspace",),  # mx.nd.linspace and mx.sym.linspace, as eye
        infer=_linspace_types,
        impl=_linspace,
        inputs=(),
        attrs={
            "start": Attr(as_float),
            "stop": Attr(as_float),
            "num": Attr(as_int),
            "endpoint": Attr(as_bool, True),
            "dtype": Attr(as_dtype_name, "float32"),
        },
        differentiable=False,
        kind="creation",
        doc="``num`` evenly spaced values from start to stop (included if endpoint): "
        "mx.nd.linspace.",
        test=TestSpec(shapes=(), attrs={"start": 1.0, "stop": 2.0, "num": 5}),
    )
)


# ---------------------------------------------------------------------------
# slice assignment
# ---------------------------------------------------------------------------


def _slice_assign_types(
    types: Sequence[TensorType],
    *,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> list[TensorType]:
    region = tuple(
        len(range(*sl.indices(n)))
        for sl, n in zip(slice_tuple(types[0].shape, begin, end, step), types[0].shape)
    )
    region = region + types[0].shape[len(region) :]
    if types[1].shape != region:
        raise GraphError(f"rhs of shape {types[1].shape} does not fill the slice {region}")
    return [types[0]]


def _slice_assign(
    lhs: np.ndarray,
    rhs: np.ndarray,
    *,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> np.ndarray:
    out = lhs.copy()
    out[slice_tuple(lhs.shape, begin, end, step)] = rhs
    return out


def slice_assign_grad(
    g: Expr,
    lhs: Expr,
    rhs: Expr,
    *,
    out: Expr,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> tuple[Expr | None, ...]:
    """lhs: g with zeros in the slice; rhs: the slice of g"""
    return (
        F._slice_assign_scalar(g, scalar=0.0, begin=begin, end=end, step=step),
        F.slice(g, begin=begin, end=end, step=step),
    )


register(
    OpDef(
        name="_slice_assign",
        aliases=("_crop_assign",),
        infer=_slice_assign_types,
        impl=_slice_assign,
        grad=slice_assign_grad,
        inputs=("lhs", "rhs"),
        attrs=SLICE_ATTRS,
        kind="shape",
        doc="lhs with its slice replaced by rhs.\n\nGradient\n--------\n"
        + (slice_assign_grad.__doc__ or ""),
        test=TestSpec(shapes=((4, 5), (2, 5)), attrs={"begin": (1,), "end": (3,)}),
    )
)


def _slice_assign_scalar(
    data: np.ndarray,
    *,
    scalar: float,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> np.ndarray:
    out = data.copy()
    out[slice_tuple(data.shape, begin, end, step)] = scalar
    return out


def slice_assign_scalar_grad(
    g: Expr,
    data: Expr,
    *,
    out: Expr,
    scalar: float,
    begin: tuple[int | None, ...],
    end: tuple[int | None, ...],
    step: tuple[int | None, ...],
) -> Expr:
    """g with zeros in the slice"""
    return F._slice_assign_scalar(g, scalar=0.0, begin=begin, end=end, step=step)


register(
    OpDef(
        name="_slice_assign_scalar",
        aliases=("_crop_assign_scalar",),
        infer=same_as_first,
        impl=_slice_assign_scalar,
        grad=slice_assign_scalar_grad,
        attrs={"scalar": Attr(as_float, 0.0), **SLICE_ATTRS},
        kind="shape",
        doc="data with its slice set to ``scalar``.\n\nGradient\n--------\n"
        + (slice_assign_scalar_grad.__doc__ or ""),
        test=TestSpec(
            shapes=((4, 5),), attrs={"scalar": 2.0, "begin": (1, 0), "end": (3, 5), "step": (1, 2)}
        ),
    )
)


# ---------------------------------------------------------------------------
# _square_sum
# ---------------------------------------------------------------------------


def _square_sum(
    x: np.ndarray, *, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> np.ndarray:
    axes = reduced_axes(x.ndim, axis, exclude)
    shape = reduce_types(
        [TensorType(x.shape, x.dtype)], axis=axis, keepdims=keepdims, exclude=exclude
    )[0].shape
    return np.square(x).sum(axis=axes, keepdims=keepdims).astype(x.dtype).reshape(shape)


def square_sum_grad(
    g: Expr, x: Expr, *, out: Expr, axis: tuple[int, ...] | None, keepdims: bool, exclude: bool
) -> Expr:
    """2 x g, g broadcast back over the summed axes"""
    return F.broadcast_like(restore_reduced(g, x.ndim, axis, keepdims, exclude), x) * x * 2


register(
    OpDef(
        name="_square_sum",
        infer=reduce_types,
        impl=_square_sum,
        grad=square_sum_grad,
        attrs={
            "axis": Attr(as_axes, None),
            "keepdims": Attr(as_bool, False),
            "exclude": Attr(as_bool, False),
        },
        kind="reduce",
        doc="The sum of squares over ``axis``.\n\nGradient\n--------\n"
        + (square_sum_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4),), attrs={"axis": (1,)}),
    )
)


# ---------------------------------------------------------------------------
# ravel_multi_index, unravel_index
# ---------------------------------------------------------------------------


def _ravel_types(types: Sequence[TensorType], *, shape: tuple[int, ...]) -> list[TensorType]:
    if len(types[0].shape) != 2 or types[0].shape[0] != len(shape):
        raise GraphError(f"expects indices ({len(shape)}, N), got {types[0].shape}")
    return [TensorType(types[0].shape[1:], types[0].dtype)]


def _ravel(data: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
    return (data.astype(np.int64) * strides[:, None]).sum(axis=0).astype(data.dtype)


def _unravel_types(types: Sequence[TensorType], *, shape: tuple[int, ...]) -> list[TensorType]:
    return [TensorType((len(shape),) + types[0].shape, types[0].dtype)]


def _unravel(data: np.ndarray, *, shape: tuple[int, ...]) -> np.ndarray:
    flat = data.astype(np.int64)
    return np.stack(np.unravel_index(flat % int(np.prod(shape)), shape)).astype(data.dtype)


for _name, _infer, _impl, _shape, _what in (
    ("ravel_multi_index", _ravel_types, _ravel, (2, 3), "the flat index of each column"),
    ("unravel_index", _unravel_types, _unravel, (3,), "the multi-index of each flat index"),
):
    register(
        OpDef(
            name=_name,
            aliases=(f"_{_name}",),
            infer=_infer,
            impl=_impl,
            attrs={"shape": Attr(as_shape)},
            differentiable=False,
            kind="gather",
            doc=f"For an array of ``shape``: {_what}. No gradient.",
            test=TestSpec(
                make_inputs=lambda rng, _s=_shape: [rng.integers(0, 3, _s).astype(np.float64)],
                attrs={"shape": (3, 4)},
            ),
        )
    )


# ---------------------------------------------------------------------------
# choose_element_0index, fill_element_0index
# ---------------------------------------------------------------------------


def _rows_types(types: Sequence[TensorType]) -> tuple[int, ...]:
    data, index = types[0].shape, types[-1].shape
    if len(data) != 2 or index != data[:1]:
        raise GraphError(f"expects lhs (N, M) and rhs (N,), got {data}, {index}")
    return data


def _column(index: np.ndarray, width: int) -> np.ndarray:
    return np.clip(index.astype(np.int64), 0, width - 1)


def choose_grad(g: Expr, lhs: Expr, rhs: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g at the chosen positions of zeros; none for the indices"""
    return F._pick_grad(g, F.stop_gradient(rhs), lhs, axis=1, mode="clip"), None


register(
    OpDef(
        name="choose_element_0index",
        infer=lambda types: [TensorType(_rows_types(types)[:1], types[0].dtype)],
        impl=lambda lhs, rhs: lhs[np.arange(lhs.shape[0]), _column(rhs, lhs.shape[1])],
        grad=choose_grad,
        inputs=("lhs", "rhs"),
        kind="gather",
        doc="lhs[i, rhs[i]] for each row i.\n\nGradient\n--------\n" + (choose_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (3, 4)), np.array([0, 3, 1.0])],
            wrt=(0,),
        ),
    )
)


def _fill(lhs: np.ndarray, mhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    out = lhs.copy()
    out[np.arange(lhs.shape[0]), _column(rhs, lhs.shape[1])] = mhs
    return out


def fill_grad(g: Expr, lhs: Expr, mhs: Expr, rhs: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """lhs: g with zeros at the filled positions; mhs: g at them; none for rhs"""
    index = F.stop_gradient(rhs)
    taken = F.pick(g, index, axis=1, mode="clip")
    return g - F._pick_grad(taken, index, lhs, axis=1, mode="clip"), taken, None


def _fill_types(types: Sequence[TensorType]) -> list[TensorType]:
    _rows_types(types)
    if types[1].shape != types[0].shape[:1]:
        raise GraphError(f"mhs must have shape {types[0].shape[:1]}, got {types[1].shape}")
    return [types[0]]


register(
    OpDef(
        name="fill_element_0index",
        infer=_fill_types,
        impl=_fill,
        grad=fill_grad,
        inputs=("lhs", "mhs", "rhs"),
        kind="gather",
        doc="lhs with lhs[i, rhs[i]] set to mhs[i] for each row i.\n\nGradient\n--------\n"
        + (fill_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 4)),
                rng.uniform(-2, 2, (3,)),
                np.array([0, 3, 1.0]),
            ],
            wrt=(0, 1),
        ),
    )
)


# ---------------------------------------------------------------------------
# im2col, col2im
# ---------------------------------------------------------------------------

PATCH_ATTRS = {
    "kernel": Attr(as_shape),
    "stride": Attr(as_shape, ()),
    "dilate": Attr(as_shape, ()),
    "pad": Attr(as_shape, ()),
}


def _geometry(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
) -> list[tuple[int, int, int, int, int]]:
    """Per spatial axis: (kernel, stride, dilation, pad, output length)."""
    axes = []
    for axis, (n, k) in enumerate(zip(size, kernel)):
        s = stride[axis] if stride else 1
        d = dilate[axis] if dilate else 1
        p = pad[axis] if pad else 0
        out = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            raise GraphError(f"kernel {kernel} does not fit in {size} with pad {pad}")
        axes.append((k, s, d, p, out))
    return axes


def _check_2d(kernel: Sequence[int]) -> None:
    if len(kernel) != 2:
        raise GraphError(f"only 2-D kernels are implemented, got {kernel}")


def _im2col_types(
    types: Sequence[TensorType],
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
) -> list[TensorType]:
    _check_2d(kernel)
    n, c, *size = types[0].shape
    axes = _geometry(size, kernel, stride, dilate, pad)
    length = int(np.prod([a[4] for a in axes]))
    return [TensorType((n, c * int(np.prod(kernel)), length), types[0].dtype)]


def _windows(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
) -> Iterator[tuple[int, int, slice, slice]]:
    """Per kernel offset (ki, kj): the slices of the padded image it reads."""
    (kh, sh, dh, _, oh), (kw, sw, dw, _, ow) = _geometry(size, kernel, stride, dilate, pad)
    for ki in range(kh):
        for kj in range(kw):
            rows = slice(ki * dh, ki * dh + sh * (oh - 1) + 1, sh)
            columns = slice(kj * dw, kj * dw + sw * (ow - 1) + 1, sw)
            yield ki, kj, rows, columns


def _padding(kernel: Sequence[int], pad: Sequence[int]) -> tuple[tuple[int, int], ...]:
    return ((0, 0), (0, 0)) + tuple((p, p) for p in (pad or (0,) * len(kernel)))


def _im2col(
    data: np.ndarray,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
) -> np.ndarray:
    n, c, *size = data.shape
    padded = np.pad(data, _padding(kernel, pad))
    (*_, oh), (*_, ow) = _geometry(size, kernel, stride, dilate, pad)
    columns_out = np.empty((n, c, kernel[0], kernel[1], oh, ow), dtype=data.dtype)
    for ki, kj, rows, columns in _windows(size, kernel, stride, dilate, pad):
        columns_out[:, :, ki, kj] = padded[:, :, rows, columns]
    return columns_out.reshape(n, c * kernel[0] * kernel[1], oh * ow)


def im2col_grad(
    g: Expr,
    data: Expr,
    *,
    out: Expr,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
) -> Expr:
    """col2im(g): each patch entry summed back onto its pixel"""
    return F.col2im(
        g, output_size=tuple(data.shape[2:]), kernel=kernel, stride=stride, dilate=dilate, pad=pad
    )


register(
    OpDef(
        name="im2col",
        infer=_im2col_types,
        impl=_im2col,
        grad=im2col_grad,
        attrs=PATCH_ATTRS,
        kind="gather",
        doc="The sliding patches of NCHW data as columns: (N, C kh kw, patches).\n\n"
        "Gradient\n--------\n" + (im2col_grad.__doc__ or ""),
        test=TestSpec(
            shapes=((2, 2, 5, 6),), attrs={"kernel": (2, 3), "stride": (2, 1), "pad": (1, 1)}
        ),
    )
)


def _col2im_types(
    types: Sequence[TensorType],
    *,
    output_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
) -> list[TensorType]:
    _check_2d(kernel)
    n, rows, length = types[0].shape
    axes = _geometry(output_size, kernel, stride, dilate, pad)
    patch = int(np.prod(kernel))
    if rows % patch or length != int(np.prod([a[4] for a in axes])):
        raise GraphError(f"columns {types[0].shape} do not fit {output_size} and {kernel}")
    return [TensorType((n, rows // patch) + tuple(output_size), types[0].dtype)]


def _col2im(
    data: np.ndarray,
    *,
    output_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
) -> np.ndarray:
    n, rows, _ = data.shape
    c = rows // (kernel[0] * kernel[1])
    (*_, oh), (*_, ow) = _geometry(output_size, kernel, stride, dilate, pad)
    patches = data.reshape(n, c, kernel[0], kernel[1], oh, ow)
    padding = _padding(kernel, pad)
    padded = np.zeros(
        (n, c) + tuple(s + a + b for s, (a, b) in zip(output_size, padding[2:])), dtype=data.dtype
    )
    for ki, kj, rows_slice, columns in _windows(output_size, kernel, stride, dilate, pad):
        padded[:, :, rows_slice, columns] += patches[:, :, ki, kj]
    (top, _), (left, _) = padding[2:]
    return padded[:, :, top : top + output_size[0], left : left + output_size[1]].copy()


def col2im_grad(
    g: Expr,
    data: Expr,
    *,
    out: Expr,
    output_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
) -> Expr:
    """im2col(g)"""
    return F.im2col(g, kernel=kernel, stride=stride, dilate=dilate, pad=pad)


register(
    OpDef(
        name="col2im",
        infer=_col2im_types,
        impl=_col2im,
        grad=col2im_grad,
        attrs={"output_size": Attr(as_shape), **PATCH_ATTRS},
        kind="gather",
        doc="Columns of patches summed back into an NCHW image of output_size: the "
        "adjoint of im2col.\n\nGradient\n--------\n" + (col2im_grad.__doc__ or ""),
        test=TestSpec(
            shapes=((2, 12, 18),),
            attrs={"output_size": (5, 6), "kernel": (2, 3), "stride": (2, 1), "pad": (1, 1)},
        ),
    )
)


# ---------------------------------------------------------------------------
# LRN
# ---------------------------------------------------------------------------


def _window_sum(x: np.ndarray, *, nsize: int) -> np.ndarray:
    half = nsize // 2
    padded = np.pad(x, ((0, 0), (half, half)) + ((0, 0),) * (x.ndim - 2))
    return cast(np.ndarray, sum(padded[:, i : i + x.shape[1]] for i in range(nsize)))


def window_sum_grad(g: Expr, x: Expr, *, out: Expr, nsize: int) -> Expr:
    """the window sum of g (the window is symmetric)"""
    return F._lrn_window_sum(g, nsize=nsize)


register(
    OpDef(
        name="_lrn_window_sum",
        infer=same_as_first,
        impl=_window_sum,
        grad=window_sum_grad,
        attrs={"nsize": Attr(as_int)},
        kind="pool",
        doc="Per channel, the sum over the nsize channels centred on it (zeros beyond "
        "the ends): LRN's normaliser.\n\nGradient\n--------\n" + (window_sum_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 5, 3),), attrs={"nsize": 3}),
    )
)

LRN_ATTRS = {
    "alpha": Attr(as_float, 1e-4),
    "beta": Attr(as_float, 0.75),
    "knorm": Attr(as_float, 2.0),
    "nsize": Attr(as_int),
}


def _lrn(x: np.ndarray, *, alpha: float, beta: float, knorm: float, nsize: int) -> np.ndarray:
    scale = knorm + _window_sum(np.square(x), nsize=nsize) * (alpha / nsize)
    return (x * scale ** (-beta)).astype(x.dtype)


def lrn_grad(
    g: Expr, x: Expr, *, out: Expr, alpha: float, beta: float, knorm: float, nsize: int
) -> Expr:
    """with d = knorm + alpha/n S(x^2): g d^-beta - 2 x alpha beta / n S(g x d^(-beta-1))"""
    d = F._lrn_window_sum(x * x, nsize=nsize) * (alpha / nsize) + knorm
    inner = F._lrn_window_sum(g * x * d ** (-beta - 1.0), nsize=nsize)
    return g * d ** (-beta) - x * inner * (2.0 * alpha * beta / nsize)


register(
    OpDef(
        name="LRN",
        infer=same_as_first,
        impl=_lrn,
        grad=lrn_grad,
        attrs=LRN_ATTRS,
        kind="norm",
        doc="Local response normalisation across channels: x / (knorm + alpha/nsize "
        "sum of x^2 over nsize channels)^beta.\n\nGradient\n--------\n" + (lrn_grad.__doc__ or ""),
        test=TestSpec(
            shapes=((2, 5, 3, 2),), attrs={"alpha": 0.5, "beta": 0.75, "knorm": 1.5, "nsize": 3}
        ),
    )
)


# ---------------------------------------------------------------------------
# khatri_rao
# ---------------------------------------------------------------------------


def _khatri_rao_types(types: Sequence[TensorType], num_args: int = 0) -> list[TensorType]:
    if not types or any(len(t.shape) != 2 for t in types):
        raise GraphError("khatri_rao takes matrices")
    columns = types[0].shape[1]
    if any(t.shape[1] != columns for t in types):
        raise GraphError("khatri_rao's matrices need one column count")
    rows = int(np.prod([t.shape[0] for t in types]))
    return [TensorType((rows, columns), types[0].dtype)]


def _khatri_rao(*matrices: np.ndarray, num_args: int = 0) -> np.ndarray:
    out = matrices[0]
    for m in matrices[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, m.shape[1])
    return out.copy()


def khatri_rao_grad(
    g: Expr, *matrices: Expr, out: Expr, num_args: int = 0
) -> Expr | tuple[Expr | None, ...]:
    """per input i: g (as n_1 x ... x n_k x C) times the other inputs, summed over
    their rows"""
    return tuple(F._khatri_rao_grad(g, *matrices, index=i) for i in range(len(matrices)))


register(
    OpDef(
        name="khatri_rao",
        infer=_khatri_rao_types,
        impl=_khatri_rao,
        grad=khatri_rao_grad,
        attrs={"num_args": Attr(as_int, 0)},  # MXNet's input count (checked by the frontend)
        variadic=True,
        kind="blas",
        doc="The column-wise Kronecker product of matrices with one column count.\n\n"
        "Gradient\n--------\n" + (khatri_rao_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 3), (4, 3), (2, 3))),
    )
)


def _khatri_rao_grad(g: np.ndarray, *matrices: np.ndarray, index: int) -> np.ndarray:
    rows = [m.shape[0] for m in matrices]
    total = g.reshape(*rows, g.shape[1]).astype(np.float64)
    for j, m in enumerate(matrices):
        if j != index:
            shape = [1] * len(rows) + [m.shape[1]]
            shape[j] = m.shape[0]
            total = total * m.reshape(shape)
    others = tuple(j for j in range(len(rows)) if j != index)
    return total.sum(axis=others).astype(g.dtype)


def khatri_rao_grad_grad(
    h: Expr, g: Expr, *matrices: Expr, out: Expr, index: int
) -> tuple[Expr | None, ...]:
    """multilinear: g gets khatri_rao with input ``index`` replaced by h; input j != index
    gets _khatri_rao_grad(g, the inputs with ``index`` replaced by h, j)"""
    replaced = [h if k == index else m for k, m in enumerate(matrices)]
    others = tuple(
        None if j == index else F._khatri_rao_grad(g, *replaced, index=j)
        for j in range(len(matrices))
    )
    return (F.khatri_rao(*replaced), *others)


register(
    OpDef(
        name="_khatri_rao_grad",
        infer=lambda types, *, index: [types[1 + index]],
        impl=_khatri_rao_grad,
        grad=khatri_rao_grad_grad,
        variadic=True,
        attrs={"index": Attr(as_int)},
        kind="blas",
        doc="khatri_rao's gradient for input ``index``.\n\nGradient\n--------\n"
        + str(khatri_rao_grad_grad.__doc__),
        test=TestSpec(shapes=((8, 3), (2, 3), (4, 3)), attrs={"index": 1}),
    )
)


# ---------------------------------------------------------------------------
# finiteness and sums of squares (mixed-precision optimizers), casts
# ---------------------------------------------------------------------------


def _flag_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType((1,), np.dtype(np.float32))]


register(
    OpDef(
        name="all_finite",
        infer=_flag_types,
        impl=lambda x, *, init_output: np.array([np.isfinite(x).all()], dtype=np.float32),
        attrs={"init_output": Attr(as_bool, True)},
        differentiable=False,
        kind="reduce",
        doc="[1.0] if every element is finite, else [0.0] (float32). No gradient.",
        test=TestSpec(),
    )
)
register(
    OpDef(
        name="multi_all_finite",
        infer=_flag_types,
        impl=lambda *xs, num_arrays, init_output: np.array(
            [all(np.isfinite(x).all() for x in xs)], dtype=np.float32
        ),
        attrs={"num_arrays": Attr(as_int, 1), "init_output": Attr(as_bool, True)},
        variadic=True,
        differentiable=False,
        kind="reduce",
        doc="[1.0] if every element of every input is finite, else [0.0] (float32). No gradient.",
        test=TestSpec(shapes=((3, 4), (2,)), attrs={"num_arrays": 2}),
    )
)
register(
    OpDef(
        name="multi_sum_sq",
        infer=lambda types, *, num_arrays: [TensorType((len(types),), np.dtype(np.float32))],
        impl=lambda *xs, num_arrays: np.array(
            [np.square(x.astype(np.float64)).sum() for x in xs], dtype=np.float32
        ),
        attrs={"num_arrays": Attr(as_int, 1)},
        variadic=True,
        differentiable=False,
        kind="reduce",
        doc="The sum of squares of each input, as one float32 vector. No gradient.",
        test=TestSpec(shapes=((3, 4), (2,)), attrs={"num_arrays": 2}),
    )
)


def _multicast_dtype(types: Sequence[TensorType], cast_narrow: bool) -> np.dtype:
    sizes = sorted({t.dtype for t in types}, key=lambda d: d.itemsize)
    return sizes[0] if cast_narrow else sizes[-1]


def _amp_multicast_types(
    types: Sequence[TensorType], *, num_outputs: int, cast_narrow: bool
) -> list[TensorType]:
    dtype = _multicast_dtype(types, cast_narrow)
    return [TensorType(t.shape, dtype) for t in types]


def _amp_multicast(
    *xs: np.ndarray, num_outputs: int, cast_narrow: bool
) -> np.ndarray | tuple[np.ndarray, ...]:
    dtype = _multicast_dtype([TensorType(x.shape, x.dtype) for x in xs], cast_narrow)
    return tuple(x.astype(dtype) for x in xs)


def amp_multicast_grad(
    gs: tuple[Expr, ...], *xs: Expr, out: Expr, num_outputs: int, cast_narrow: bool
) -> Expr | tuple[Expr | None, ...]:
    """each g cast back to its input's dtype"""
    gs = gs if isinstance(gs, tuple) else (gs,)
    return tuple(F.Cast(g, dtype=x.dtype.name) for g, x in zip(gs, xs))


# outputs counted before shapes are known (mx.sym): one per input
_amp_multicast_op = register(
    OpDef(
        name="amp_multicast",
        infer=_amp_multicast_types,
        impl=_amp_multicast,
        grad=amp_multicast_grad,
        attrs={"num_outputs": Attr(as_int, 1), "cast_narrow": Attr(as_bool, False)},
        variadic=True,
        kind="shape",
        doc="Every input cast to the widest (cast_narrow: the narrowest) of their "
        "dtypes.\n\nGradient\n--------\n" + (amp_multicast_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4), (2,)), attrs={"num_outputs": 2}),
    )
)
_amp_multicast_op.num_outputs = lambda attrs, inputs: inputs


def cast_storage_grad(g: Expr, x: Expr, *, out: Expr, stype: str) -> Expr:
    """g"""
    return g


register(
    OpDef(
        name="cast_storage",
        infer=same_as_first,
        impl=lambda x, *, stype: x.copy(),
        grad=cast_storage_grad,
        attrs={"stype": Attr(one_of("default", "row_sparse", "csr"), "default")},
        kind="shape",
        doc="A storage-type conversion; symgrad stores every array densely, so the "
        "values pass unchanged.\n\nGradient\n--------\ng, unchanged (the identity's)",
        test=TestSpec(attrs={"stype": "default"}),
    )
)


def identity_like_rhs_grad(g: Expr, lhs: Expr, rhs: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g for lhs, none for rhs"""
    return g, None


register(
    OpDef(
        name="_identity_with_attr_like_rhs",
        infer=lambda types: [types[0]],
        impl=lambda lhs, rhs: lhs.copy(),
        grad=identity_like_rhs_grad,
        inputs=("lhs", "rhs"),
        shape_only=(1,),
        kind="shape",
        doc="lhs unchanged (MXNet uses rhs only for its attributes).\n\nGradient\n--------\n"
        + (identity_like_rhs_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4), (3, 4)), wrt=(0,)),
    )
)


for _name, _aliases in {
    "Cast": ("amp_cast",),
    "_copy": ("_CrossDeviceCopy",),
    "BatchNorm": ("BatchNorm_v1",),
    "Convolution": ("Convolution_v1",),
    "Pooling": ("Pooling_v1",),
}.items():
    add_aliases(_name, _aliases)


# ---------------------------------------------------------------------------
# _split_v2, _histogram
# ---------------------------------------------------------------------------

SPLIT_V2_ATTRS = {
    "indices": Attr(as_shape, ()),
    "axis": Attr(as_int, 0),
    "squeeze_axis": Attr(as_bool, False),
    "sections": Attr(as_int, 0),
}


def _split_bounds(length: int, indices: Sequence[int], sections: int) -> list[tuple[int, int]]:
    """The (begin, end) of each piece along the split axis: ``sections`` equal
    pieces, or pieces starting at ``indices`` (MXNet passes a leading 0)."""
    if sections > 0:
        if length % sections:
            raise GraphError(f"axis of length {length} does not split into {sections}")
        step = length // sections
        return [(i * step, (i + 1) * step) for i in range(sections)]
    starts = list(indices) or [0]
    ends = starts[1:] + [length]
    if any(b > e for b, e in zip(starts, ends)) or ends[-1] > length:
        raise GraphError(f"indices {indices} do not split an axis of length {length}")
    return list(zip(starts, ends))


def _split_v2_types(
    types: Sequence[TensorType],
    *,
    indices: tuple[int, ...],
    axis: int,
    squeeze_axis: bool,
    sections: int,
) -> list[TensorType]:
    shape = types[0].shape
    ax = axis % len(shape)
    pieces: list[TensorType] = []
    for begin, end in _split_bounds(shape[ax], indices, sections):
        if squeeze_axis and end - begin != 1:
            raise GraphError("squeeze_axis needs pieces of length 1")
        size = () if squeeze_axis else (end - begin,)
        pieces.append(TensorType(shape[:ax] + size + shape[ax + 1 :], types[0].dtype))
    return pieces


def _split_v2(
    x: np.ndarray, *, indices: tuple[int, ...], axis: int, squeeze_axis: bool, sections: int
) -> tuple[np.ndarray, ...]:
    ax = axis % x.ndim
    pieces: list[np.ndarray] = []
    for begin, end in _split_bounds(x.shape[ax], indices, sections):
        piece = np.take(x, np.arange(begin, end), axis=ax)
        pieces.append(np.squeeze(piece, axis=ax) if squeeze_axis else piece)
    return tuple(pieces)


def split_v2_grad(
    g: Expr | tuple[Expr, ...],
    x: Expr,
    *,
    out: Expr | tuple[Expr, ...],
    indices: tuple[int, ...],
    axis: int,
    squeeze_axis: bool,
    sections: int,
) -> Expr:
    """the pieces' gradients joined again along axis"""
    gs = g if isinstance(g, tuple) else (g,)
    ax = axis % x.ndim
    if squeeze_axis:
        gs = tuple(F.expand_dims(piece, axis=ax) for piece in gs)
    return F.Concat(*gs, dim=ax) if len(gs) > 1 else gs[0]


# outputs counted before shapes are known (mx.sym): one per piece
_split_v2_op = register(
    OpDef(
        name="_split_v2",
        infer=_split_v2_types,
        impl=_split_v2,
        grad=split_v2_grad,
        attrs=SPLIT_V2_ATTRS,
        kind="shape",
        doc="Split along ``axis`` into ``sections`` equal pieces or at ``indices`` "
        "(mx.nd.split_v2).\n\nGradient\n--------\n" + str(split_v2_grad.__doc__),
        test=TestSpec(shapes=((3, 5),), attrs={"indices": (0, 1, 3), "axis": 1}),
    )
)


def _split_v2_count(attrs: dict, inputs: int) -> int:
    return int(attrs["sections"]) or max(len(attrs["indices"]), 1)


_split_v2_op.num_outputs = _split_v2_count  # read by mx.sym


def as_shape_float(value: Any) -> tuple[float, ...]:
    """A pair of floats (histogram's range), from Python or MXNet's "(0, 3)"."""
    if isinstance(value, str):
        value = [float(v) for v in value.strip("()[] ").split(",") if v.strip()]
    return tuple(float(v) for v in value)


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "None") else as_int(value)


def _optional_range(value: Any) -> tuple[float, ...] | None:
    return None if value in (None, "None") else as_shape_float(value)


def _histogram_types(
    types: Sequence[TensorType],
    *,
    bin_cnt: int | None,
    range: tuple[float, ...] | None,  # noqa: A002 (MXNet's name)
) -> list[TensorType]:
    count = bin_cnt if len(types) == 1 else types[1].shape[0] - 1
    if count is None or count < 1:
        raise GraphError("histogram needs bin_cnt or a bins array of two or more edges")
    edges = TensorType((count + 1,), types[0].dtype)
    return [TensorType((count,), np.dtype(np.int64)), edges]


def _histogram(
    data: np.ndarray,
    *bins: np.ndarray,
    bin_cnt: int | None,
    range: tuple[float, ...] | None,  # noqa: A002
) -> tuple[np.ndarray, np.ndarray]:
    values = data.astype(np.float64).ravel()
    edges_given: Any = bins[0].astype(np.float64) if bins else bin_cnt
    span = None if range is None else (range[0], range[1])
    counts, edges = np.histogram(values, bins=edges_given, range=span)
    return counts.astype(np.int64), edges.astype(data.dtype)


# outputs counted before shapes are known (mx.sym): the counts and the edges
_histogram_op = register(
    OpDef(
        name="_histogram",
        infer=_histogram_types,
        impl=_histogram,
        inputs=("data", "bins"),
        variadic=True,
        attrs={
            "bin_cnt": Attr(_optional_int, None),
            "range": Attr(_optional_range, None),
        },
        differentiable=False,
        kind="reduce",
        doc="Counts of data in bin_cnt equal bins over range (default: data's min to "
        "max) or between the given bin edges, and the edges (mx.nd.histogram). No "
        "gradient.",
        test=TestSpec(shapes=((3, 4),), attrs={"bin_cnt": 3, "range": (-2.0, 2.0)}),
    )
)
_histogram_op.num_outputs = 2  # read by mx.sym


# ---------------------------------------------------------------------------
# _onehot_encode (legacy)
# ---------------------------------------------------------------------------


def _onehot_encode(indices: np.ndarray, like: np.ndarray) -> np.ndarray:
    out = np.zeros(like.shape, dtype=like.dtype)
    columns = indices.astype(np.int64)
    rows = np.flatnonzero((columns >= 0) & (columns < like.shape[1]))  # others: zero rows
    out[rows, columns[rows]] = 1
    return out


def _onehot_encode_types(types: Sequence[TensorType]) -> list[TensorType]:
    indices, like = types
    if len(like.shape) != 2 or indices.shape != like.shape[:1]:
        raise GraphError(f"expects indices (N,) and rhs (N, K), got {indices.shape}, {like.shape}")
    return [like]


register(
    OpDef(
        name="_onehot_encode",
        infer=_onehot_encode_types,
        impl=_onehot_encode,
        inputs=("lhs", "rhs"),
        shape_only=(1,),
        differentiable=False,
        kind="gather",
        doc="Rows of rhs's shape with a 1 at column lhs[i] (none if out of range). No gradient.",
        test=TestSpec(
            make_inputs=lambda rng: [np.array([1.0, 0.0, 5.0]), np.zeros((3, 4))],
        ),
    )
)

# SparseEmbedding's rows are Embedding's (symgrad stores the gradient densely)
add_aliases("Embedding", ("_contrib_SparseEmbedding",))
