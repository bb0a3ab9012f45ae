"""Convolution, Deconvolution and Pooling over NCW / NCHW / NCDHW data.

Convolutions gather the input windows into a column matrix (im2col), one copy per
kernel offset, and multiply it with the weights in one BLAS call per group; the
transposed direction (col2im) adds the columns back, again one vectorised slice
per kernel offset. No loop runs over pixels.

Every gradient is an internal op that reads the sizes it needs from its inputs at
run time (``like`` inputs), and each of those has a gradient rule of its own in
terms of the others, so a convolution differentiates to any order:

- ``Convolution(x, w)`` has gradients ``_conv_data_grad(g, w, x)`` and
  ``_conv_weight_grad(g, x, w)``; the data gradient is the adjoint of the
  convolution in ``x``, the weight gradient its adjoint in ``w``.
- ``Deconvolution`` is the data gradient of a convolution used forwards; its
  gradients are ``_deconv_data_grad`` (a convolution) and ``_deconv_weight_grad``.
- ``Pooling`` differentiates to ``_pooling_grad``, whose gradient is ``Pooling``
  itself (avg, sum) or ``_pooling_max_gather`` (max).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_int, as_shape, one_of, register
from .common import F, require_same_dtype

# ---------------------------------------------------------------------------
# attributes and geometry
# ---------------------------------------------------------------------------


def _layout(value: Any) -> str | None:
    """Parse ``layout``: only channel-first layouts (or None) are supported."""
    if value is None or str(value) in ("None", ""):
        return None
    return one_of("NCW", "NCHW", "NCDHW")(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None or str(value) in ("None", "") else str(value)


def _optional_bool(value: Any) -> bool | None:
    return None if value is None or str(value) in ("None", "") else as_bool(value)


CONV_GEOMETRY = {
    "kernel": Attr(as_shape),
    "stride": Attr(as_shape, ()),
    "dilate": Attr(as_shape, ()),
    "pad": Attr(as_shape, ()),
    "num_filter": Attr(as_int),
    "num_group": Attr(as_int, 1),
}
BACKEND_HINTS = {
    "workspace": Attr(as_int, 1024),
    "cudnn_tune": Attr(_optional_str, None),
    "cudnn_off": Attr(as_bool, False),
    "layout": Attr(_layout, None),
}


def _expand(values: Sequence[int], rank: int, default: int, name: str) -> tuple[int, ...]:
    if not values:
        return (default,) * rank
    if len(values) != rank:
        raise GraphError(f"{name} {values} must have {rank} entries (one per spatial axis)")
    return tuple(values)


def _spatial(
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
    rank: int,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride, dilate and pad as full tuples for ``rank`` spatial axes."""
    if len(kernel) != rank:
        raise GraphError(f"kernel {kernel} needs {rank} entries for data of rank {rank + 2}")
    return (
        tuple(kernel),
        _expand(stride, rank, 1, "stride"),
        _expand(dilate, rank, 1, "dilate"),
        _expand(pad, rank, 0, "pad"),
    )


def spatial_geometry(
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
    rank: int,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride, dilate and pad as full tuples for ``rank`` spatial axes (an
    empty stride or dilate means 1 on every axis, an empty pad 0)."""
    return _spatial(kernel, stride, dilate, pad, rank)


def conv_out_size(size: int, kernel: int, stride: int, dilate: int, pad: int) -> int:
    """Output length of a convolution along one axis."""
    return (size + 2 * pad - dilate * (kernel - 1) - 1) // stride + 1


def _window_slices(
    offset: Sequence[int], stride: Sequence[int], dilate: Sequence[int], out_sizes: Sequence[int]
) -> tuple[slice, ...]:
    """Index of the input elements that kernel position ``offset`` meets, for every
    output position: ``x[n, c, o*stride + offset*dilate]``."""
    return (slice(None), slice(None)) + tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s)
        for k, s, d, o in zip(offset, stride, dilate, out_sizes)
    )


def _pad_spatial(
    x: np.ndarray, pad: Sequence[int], value: float = 0.0, extra: Sequence[int] | None = None
) -> np.ndarray:
    extra = extra or (0,) * len(pad)
    if not any(pad) and not any(extra):
        return x
    widths = [(0, 0), (0, 0)] + [(p, p + e) for p, e in zip(pad, extra)]
    return np.pad(x, widths, constant_values=value)


def im2col(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
    out_sizes: Sequence[int],
) -> np.ndarray:
    """Columns of ``x`` (N, C, *spatial) as an array (C, *kernel, N, *out_sizes)."""
    xp = _pad_spatial(x, pad)
    n, c = x.shape[:2]
    cols = np.empty((c,) + tuple(kernel) + (n,) + tuple(out_sizes), dtype=x.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = xp[_window_slices(offset, stride, dilate, out_sizes)]
        cols[(slice(None),) + offset] = window.swapaxes(0, 1)
    return cols


def col2im(
    cols: np.ndarray,
    in_shape: tuple[int, ...],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
) -> np.ndarray:
    """Add columns (C, *kernel, N, *out_sizes) back into an array of ``in_shape``:
    the adjoint of :func:`im2col`."""
    out_sizes = cols.shape[len(kernel) + 2 :]
    padded = in_shape[:2] + tuple(s + 2 * p for s, p in zip(in_shape[2:], pad))
    xp = np.zeros(padded, dtype=cols.dtype)
    for offset in itertools.product(*(range(k) for k in kernel)):
        xp[_window_slices(offset, stride, dilate, out_sizes)] += cols[
            (slice(None),) + offset
        ].swapaxes(0, 1)
    crop = (slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(pad, in_shape[2:]))
    return xp[crop]


def conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """Convolution of ``x`` (N, C, ...) with ``w`` (F, C/groups, *kernel), no bias."""
    n, f = x.shape[0], w.shape[0]
    out_sizes = tuple(conv_out_size(*a) for a in zip(x.shape[2:], kernel, stride, dilate, pad))
    cols = im2col(x, kernel, stride, dilate, pad, out_sizes).reshape(
        groups, -1, n * int(np.prod(out_sizes))
    )
    out = np.matmul(w.reshape(groups, f // groups, -1), cols)
    return np.ascontiguousarray(out.reshape((f, n) + out_sizes).swapaxes(0, 1))


def conv_data_grad(
    g: np.ndarray,
    w: np.ndarray,
    in_shape: Sequence[int],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """Gradient of :func:`conv_forward` with respect to its input, of ``in_shape``."""
    n, f = g.shape[:2]
    out_sizes = g.shape[2:]
    flat_g = g.swapaxes(0, 1).reshape(groups, f // groups, -1)
    cols = np.matmul(w.reshape(groups, f // groups, -1).transpose(0, 2, 1), flat_g)
    cols = cols.reshape((in_shape[1],) + tuple(kernel) + (n,) + tuple(out_sizes))
    return col2im(cols, tuple(in_shape), kernel, stride, dilate, pad)


def conv_weight_grad(
    g: np.ndarray,
    x: np.ndarray,
    w_shape: Sequence[int],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """Gradient of :func:`conv_forward` with respect to its weight, of ``w_shape``."""
    n, f = g.shape[:2]
    out_sizes = g.shape[2:]
    cols = im2col(x, kernel, stride, dilate, pad, out_sizes).reshape(
        groups, -1, n * int(np.prod(out_sizes))
    )
    flat_g = g.swapaxes(0, 1).reshape(groups, f // groups, -1)
    # one np.dot per group: BLAS takes the transposed columns as a flag, where a
    # batched matmul over the transposed view ran 3x slower
    out = np.empty((groups, f // groups, cols.shape[1]), dtype=g.dtype)
    for k in range(groups):
        np.dot(flat_g[k], cols[k].T, out=out[k])
    return out.reshape(w_shape)


def _channel_sum(g: Expr) -> Expr:
    """Sum of ``g`` over every axis but the channel axis 1 (the bias gradient)."""
    return F.sum(g, axis=(1,), exclude=True)


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


def _bias_inputs(attrs: dict) -> tuple[str, ...]:
    return ("data", "weight") if attrs.get("no_bias") else ("data", "weight", "bias")


def _conv_types(
    types: Sequence[TensorType],
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
    no_bias: bool,
    workspace: int,
    cudnn_tune: str | None,
    cudnn_off: bool,
    layout: str | None,
) -> list[TensorType]:
    dtype = require_same_dtype(types)
    data, weight = types[0].shape, types[1].shape
    rank = len(data) - 2
    if rank not in (1, 2, 3):
        raise GraphError("data must be (N, C, W), (N, C, H, W) or (N, C, D, H, W)")
    kernel, stride, dilate, pad = _spatial(kernel, stride, dilate, pad, rank)
    if data[1] % num_group or num_filter % num_group:
        raise GraphError(
            f"channels {data[1]} and num_filter {num_filter} must divide by num_group {num_group}"
        )
    expected = (num_filter, data[1] // num_group) + kernel
    if weight != expected:
        raise GraphError(f"weight must have shape {expected}, got {weight}")
    if not no_bias and types[2].shape != (num_filter,):
        raise GraphError(f"bias must have shape ({num_filter},), got {types[2].shape}")
    out = tuple(conv_out_size(*a) for a in zip(data[2:], kernel, stride, dilate, pad))
    if min(out) < 1:
        raise GraphError(
            f"the kernel {kernel} (dilated {dilate}) does not fit the padded input {data[2:]}"
        )
    return [TensorType((data[0], num_filter) + out, dtype)]


def _geometry(
    x_ndim: int,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    return _spatial(kernel, stride, dilate, pad, x_ndim - 2)


def _convolution(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
    no_bias: bool,
    workspace: int,
    cudnn_tune: str | None,
    cudnn_off: bool,
    layout: str | None,
) -> np.ndarray:
    out = conv_forward(x, w, *_geometry(x.ndim, kernel, stride, dilate, pad), num_group)
    if b is not None:
        out += b.reshape((1, -1) + (1,) * (x.ndim - 2))
    return out


def convolution_grad(
    g: Expr,
    x: Expr,
    w: Expr,
    b: Expr | None = None,
    *,
    out: Expr,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
    no_bias: bool,
    **_hints: Any,
) -> Expr | tuple[Expr | None, ...]:
    """gx = conv^T_w(g), gw = conv^T_x(g), gb = sum of g over all axes but 1"""
    geometry = dict(
        kernel=kernel,
        stride=stride,
        dilate=dilate,
        pad=pad,
        num_filter=num_filter,
        num_group=num_group,
    )
    grad_x = F._conv_data_grad(g, w, x, **geometry)
    grad_w = F._conv_weight_grad(g, x, w, **geometry)
    return (grad_x, grad_w) if no_bias else (grad_x, grad_w, _channel_sum(g))


def _conv_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (2, 4, 5, 6)),
        rng.uniform(-1, 1, (6, 2, 3, 2)),
        rng.uniform(-1, 1, (6,)),
    ]


register(
    OpDef(
        name="Convolution",
        infer=_conv_types,
        impl=_convolution,
        grad=convolution_grad,
        inputs=_bias_inputs,
        kind="blas",
        attrs={**CONV_GEOMETRY, "no_bias": Attr(as_bool, False), **BACKEND_HINTS},
        doc="1-, 2- or 3-D convolution (cross-correlation) of NC... data with a "
        "weight (num_filter, C/num_group, *kernel), plus a bias.",
        test=TestSpec(
            make_inputs=_conv_test_inputs,
            attrs={
                "kernel": (3, 2),
                "stride": (2, 1),
                "pad": (1, 0),
                "dilate": (1, 2),
                "num_filter": 6,
                "num_group": 2,
            },
        ),
    )
)


def _like_third(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType(types[2].shape, types[0].dtype)]


def _conv_data_grad(
    g: np.ndarray,
    w: np.ndarray,
    like: np.ndarray,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> np.ndarray:
    geometry = _geometry(like.ndim, kernel, stride, dilate, pad)
    return conv_data_grad(g, w, like.shape, *geometry, num_group)


def conv_data_grad_grad(
    h: Expr,
    g: Expr,
    w: Expr,
    like: Expr,
    *,
    out: Expr,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> tuple[Expr | None, ...]:
    """linear in (g, w): dg = conv_w(h), dw = conv^T_h(g)"""
    geometry = dict(
        kernel=kernel,
        stride=stride,
        dilate=dilate,
        pad=pad,
        num_filter=num_filter,
        num_group=num_group,
    )
    return (
        F.Convolution(h, w, no_bias=True, **geometry),
        F._conv_weight_grad(g, h, w, **geometry),
        None,
    )


def _conv_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (2, 6, 3, 4)),
        rng.uniform(-1, 1, (6, 2, 3, 2)),
        np.zeros((2, 4, 5, 6)),
    ]


GRAD_TEST_ATTRS = {
    "kernel": (3, 2),
    "stride": (2, 1),
    "pad": (1, 0),
    "dilate": (1, 2),
    "num_filter": 6,
    "num_group": 2,
}

register(
    OpDef(
        name="_conv_data_grad",
        infer=_like_third,
        impl=_conv_data_grad,
        shape_only=(2,),
        grad=conv_data_grad_grad,
        inputs=("data", "weight", "like"),
        attrs=CONV_GEOMETRY,
        kind="blas",
        doc="Gradient of Convolution with respect to its data, shaped like "
        "``like`` (read at run time).",
        test=TestSpec(make_inputs=_conv_grad_test_inputs, attrs=GRAD_TEST_ATTRS, wrt=(0, 1)),
    )
)


def _conv_weight_grad(
    g: np.ndarray,
    x: np.ndarray,
    like: np.ndarray,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> np.ndarray:
    geometry = _geometry(x.ndim, kernel, stride, dilate, pad)
    return conv_weight_grad(g, x, like.shape, *geometry, num_group)


def conv_weight_grad_grad(
    h: Expr,
    g: Expr,
    x: Expr,
    like: Expr,
    *,
    out: Expr,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> tuple[Expr | None, ...]:
    """linear in (g, x): dg = conv_h(x), dx = conv^T_h(g)"""
    geometry = dict(
        kernel=kernel,
        stride=stride,
        dilate=dilate,
        pad=pad,
        num_filter=num_filter,
        num_group=num_group,
    )
    return (
        F.Convolution(x, h, no_bias=True, **geometry),
        F._conv_data_grad(g, h, x, **geometry),
        None,
    )


def _conv_weight_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (2, 6, 3, 4)),
        rng.uniform(-1, 1, (2, 4, 5, 6)),
        np.zeros((6, 2, 3, 2)),
    ]


register(
    OpDef(
        name="_conv_weight_grad",
        infer=_like_third,
        impl=_conv_weight_grad,
        shape_only=(2,),
        grad=conv_weight_grad_grad,
        inputs=("data", "input", "like"),
        attrs=CONV_GEOMETRY,
        kind="blas",
        doc="Gradient of Convolution with respect to its weight, shaped like "
        "``like`` (read at run time).",
        test=TestSpec(make_inputs=_conv_weight_grad_test_inputs, attrs=GRAD_TEST_ATTRS, wrt=(0, 1)),
    )
)


# ---------------------------------------------------------------------------
# Deconvolution: a convolution's data gradient used as a layer
# ---------------------------------------------------------------------------

DECONV_GEOMETRY = {**CONV_GEOMETRY, "adj": Attr(as_shape, ()), "target_shape": Attr(as_shape, ())}


def deconv_geometry(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
    adj: Sequence[int],
    target_shape: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride, dilate, pad, adj and output sizes of a deconvolution; a
    ``target_shape`` overrides pad and adj as MXNet does."""
    rank = len(in_sizes)
    kernel, stride, dilate, pad = _spatial(kernel, stride, dilate, pad, rank)
    adj = _expand(adj, rank, 0, "adj")
    if target_shape and any(target_shape):
        target = _expand(target_shape, rank, 0, "target_shape")
        pad, adj = [], []
        for size, k, s, d, t in zip(in_sizes, kernel, stride, dilate, target):
            total = s * (size - 1) + d * (k - 1) + 1 - t
            if total < 0:
                raise GraphError(f"target_shape {target_shape} is too big")
            pad.append((total + 1) // 2)
            adj.append(total % 2)
        pad, adj = tuple(pad), tuple(adj)
    out = tuple(
        s * (size - 1) + d * (k - 1) + 1 - 2 * p + a
        for size, k, s, d, p, a in zip(in_sizes, kernel, stride, dilate, pad, adj)
    )
    return kernel, stride, dilate, pad, out


def _deconv_types(
    types: Sequence[TensorType],
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...],
    num_filter: int,
    num_group: int,
    no_bias: bool,
    workspace: int,
    cudnn_tune: str | None,
    cudnn_off: bool,
    layout: str | None,
) -> list[TensorType]:
    dtype = require_same_dtype(types)
    data, weight = types[0].shape, types[1].shape
    if len(data) not in (3, 4, 5):
        raise GraphError("data must be (N, C, W), (N, C, H, W) or (N, C, D, H, W)")
    kernel, stride, dilate, pad, out = deconv_geometry(
        data[2:], kernel, stride, dilate, pad, adj, target_shape
    )
    if data[1] % num_group or num_filter % num_group:
        raise GraphError(
            f"channels {data[1]} and num_filter {num_filter} must divide by num_group {num_group}"
        )
    expected = (data[1], num_filter // num_group) + kernel
    if weight != expected:
        raise GraphError(f"weight must have shape {expected}, got {weight}")
    if not no_bias and types[2].shape != (num_filter,):
        raise GraphError(f"bias must have shape ({num_filter},), got {types[2].shape}")
    if min(out) < 1:
        raise GraphError(f"output size {out} is empty")
    return [TensorType((data[0], num_filter) + out, dtype)]


def _deconvolution(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...],
    num_filter: int,
    num_group: int,
    no_bias: bool,
    workspace: int,
    cudnn_tune: str | None,
    cudnn_off: bool,
    layout: str | None,
) -> np.ndarray:
    kernel, stride, dilate, pad, out_sizes = deconv_geometry(
        x.shape[2:], kernel, stride, dilate, pad, adj, target_shape
    )
    out = conv_data_grad(
        x, w, (x.shape[0], num_filter) + out_sizes, kernel, stride, dilate, pad, num_group
    )
    out = np.ascontiguousarray(out)
    if b is not None:
        out += b.reshape((1, -1) + (1,) * (x.ndim - 2))
    return out


def _deconv_attrs(
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> dict[str, Any]:
    return dict(
        kernel=kernel,
        stride=stride,
        dilate=dilate,
        pad=pad,
        adj=adj,
        target_shape=target_shape,
        num_filter=num_filter,
        num_group=num_group,
    )


def deconvolution_grad(
    g: Expr,
    x: Expr,
    w: Expr,
    b: Expr | None = None,
    *,
    out: Expr,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...],
    num_filter: int,
    num_group: int,
    no_bias: bool,
    **_hints: Any,
) -> Expr | tuple[Expr | None, ...]:
    """gx = conv_w(g), gw = conv^T_g(x) (deconv's adjoints), gb = sum of g but axis 1"""
    attrs = _deconv_attrs(kernel, stride, dilate, pad, adj, target_shape, num_filter, num_group)
    grad_x = F._deconv_data_grad(g, w, x, **attrs)
    grad_w = F._deconv_weight_grad(g, x, w, **attrs)
    return (grad_x, grad_w) if no_bias else (grad_x, grad_w, _channel_sum(g))


DECONV_TEST_ATTRS = {
    "kernel": (3, 2),
    "stride": (2, 1),
    "pad": (1, 0),
    "adj": (1, 0),
    "num_filter": 4,
    "num_group": 2,
}


def _deconv_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (2, 6, 3, 4)),
        rng.uniform(-1, 1, (6, 2, 3, 2)),
        rng.uniform(-1, 1, (4,)),
    ]


register(
    OpDef(
        name="Deconvolution",
        infer=_deconv_types,
        impl=_deconvolution,
        grad=deconvolution_grad,
        inputs=_bias_inputs,
        kind="blas",
        attrs={**DECONV_GEOMETRY, "no_bias": Attr(as_bool, True), **BACKEND_HINTS},
        doc="Transposed convolution: the gradient of Convolution with respect to "
        "its data, used forwards. Weight (C, num_filter/num_group, *kernel).",
        test=TestSpec(
            make_inputs=_deconv_test_inputs, attrs={**DECONV_TEST_ATTRS, "no_bias": False}
        ),
    )
)


def _deconv_data_grad(
    g: np.ndarray,
    w: np.ndarray,
    like: np.ndarray,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> np.ndarray:
    kernel, stride, dilate, pad, _ = deconv_geometry(
        like.shape[2:], kernel, stride, dilate, pad, adj, target_shape
    )
    return conv_forward(g, w, kernel, stride, dilate, pad, num_group)


def deconv_data_grad_grad(
    h: Expr, g: Expr, w: Expr, like: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """linear in (g, w): dg = deconv_w(h), dw = deconv weight gradient of (h, g)"""
    return (
        F.Deconvolution(h, w, no_bias=True, **attrs),
        F._deconv_weight_grad(g, h, w, **attrs),
        None,
    )


def _deconv_data_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (2, 4, 6, 5)),
        rng.uniform(-1, 1, (6, 2, 3, 2)),
        np.zeros((2, 6, 3, 4)),
    ]


register(
    OpDef(
        name="_deconv_data_grad",
        infer=_like_third,
        impl=_deconv_data_grad,
        shape_only=(2,),
        grad=deconv_data_grad_grad,
        inputs=("data", "weight", "like"),
        attrs=DECONV_GEOMETRY,
        kind="blas",
        doc="Gradient of Deconvolution with respect to its data (a convolution), "
        "shaped like ``like``.",
        test=TestSpec(
            make_inputs=_deconv_data_grad_test_inputs, attrs=DECONV_TEST_ATTRS, wrt=(0, 1)
        ),
    )
)


def _deconv_weight_grad(
    g: np.ndarray,
    x: np.ndarray,
    like: np.ndarray,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    adj: tuple[int, ...],
    target_shape: tuple[int, ...],
    num_filter: int,
    num_group: int,
) -> np.ndarray:
    kernel, stride, dilate, pad, _ = deconv_geometry(
        x.shape[2:], kernel, stride, dilate, pad, adj, target_shape
    )
    # deconv(x, w) = conv^T_w(x): its weight gradient is the convolution weight
    # gradient with the roles of the image (g) and the output gradient (x) swapped.
    return conv_weight_grad(x, g, like.shape, kernel, stride, dilate, pad, num_group)


def deconv_weight_grad_grad(
    h: Expr, g: Expr, x: Expr, like: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """linear in (g, x): dg = deconv_h(x), dx = conv_h(g)"""
    return (
        F.Deconvolution(x, h, no_bias=True, **attrs),
        F._deconv_data_grad(g, h, x, **attrs),
        None,
    )


def _deconv_weight_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (2, 4, 6, 5)),
        rng.uniform(-1, 1, (2, 6, 3, 4)),
        np.zeros((6, 2, 3, 2)),
    ]


register(
    OpDef(
        name="_deconv_weight_grad",
        infer=_like_third,
        impl=_deconv_weight_grad,
        shape_only=(2,),
        grad=deconv_weight_grad_grad,
        inputs=("data", "input", "like"),
        attrs=DECONV_GEOMETRY,
        kind="blas",
        doc="Gradient of Deconvolution with respect to its weight, shaped like ``like``.",
        test=TestSpec(
            make_inputs=_deconv_weight_grad_test_inputs, attrs=DECONV_TEST_ATTRS, wrt=(0, 1)
        ),
    )
)


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------

POOL_ATTRS = {
    "kernel": Attr(as_shape, ()),
    "pool_type": Attr(one_of("max", "avg", "sum"), "max"),
    "global_pool": Attr(as_bool, False),
    "cudnn_off": Attr(as_bool, False),
    "pooling_convention": Attr(one_of("valid", "full"), "valid"),
    "stride": Attr(as_shape, ()),
    "pad": Attr(as_shape, ()),
    "p_value": Attr(_optional_str, None),
    "count_include_pad": Attr(_optional_bool, None),
    "layout": Attr(_layout, None),
}


def pool_geometry(
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    pad: Sequence[int],
    global_pool: bool,
    pooling_convention: str,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride, pad, output sizes and the extra right padding that the 'full'
    convention's last window needs, for spatial sizes ``in_sizes``."""
    rank = len(in_sizes)
    if global_pool:
        kernel, stride, pad = tuple(in_sizes), (1,) * rank, (0,) * rank
    else:
        if len(kernel) != rank:
            raise GraphError(f"kernel {kernel} needs {rank} entries for data of rank {rank + 2}")
        stride, pad = _expand(stride, rank, 1, "stride"), _expand(pad, rank, 0, "pad")
    rounding = math.ceil if pooling_convention == "full" else math.floor
    out = tuple(
        int(rounding((i + 2 * p - k) / s)) + 1 for i, k, s, p in zip(in_sizes, kernel, stride, pad)
    )
    extra = tuple(
        max(0, (o - 1) * s + k - (i + 2 * p))
        for i, k, s, p, o in zip(in_sizes, kernel, stride, pad, out)
    )
    return tuple(kernel), stride, pad, out, extra


def _pool_types(
    types: Sequence[TensorType],
    *,
    kernel: tuple[int, ...],
    pool_type: str,
    global_pool: bool,
    pooling_convention: str,
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    **_hints: Any,
) -> list[TensorType]:
    data = types[0].shape
    if len(data) not in (3, 4, 5):
        raise GraphError("data must be (N, C, W), (N, C, H, W) or (N, C, D, H, W)")
    kernel, stride, pad, out, _ = pool_geometry(
        data[2:], kernel, stride, pad, global_pool, pooling_convention
    )
    if min(out) < 1 or any(k > i + 2 * p for k, i, p in zip(kernel, data[2:], pad)):
        raise GraphError(f"kernel {kernel} does not fit the padded input {data[2:]}")
    return [TensorType(data[:2] + out, types[0].dtype)]


class _Windows:
    """The pooling windows of one input: geometry, padding, and per-window counts."""

    def __init__(
        self,
        shape: tuple[int, ...],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        pad: tuple[int, ...],
        global_pool: bool,
        pooling_convention: str,
        count_include_pad: bool | None = None,
    ) -> None:
        self.shape = shape
        (self.kernel, self.stride, self.pad, self.out, self.extra) = pool_geometry(
            shape[2:], kernel, stride, pad, global_pool, pooling_convention
        )
        self.dilate = (1,) * len(self.kernel)
        self.include_pad = count_include_pad is None or count_include_pad

    def offsets(self) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
        """Every kernel position with the index of the elements it meets."""
        for offset in itertools.product(*(range(k) for k in self.kernel)):
            yield offset, _window_slices(offset, self.stride, self.dilate, self.out)

    def padded(self, x: np.ndarray, value: float = 0.0) -> np.ndarray:
        """``x`` padded on both sides (and the 'full' convention's extra)."""
        return _pad_spatial(x, self.pad, value, self.extra)

    def crop(self, xp: np.ndarray) -> np.ndarray:
        """The unpadded part of a padded array."""
        return xp[
            (slice(None), slice(None))
            + tuple(slice(p, p + s) for p, s in zip(self.pad, self.shape[2:]))
        ]

    def counts(self, dtype: np.dtype) -> np.ndarray:
        """How many elements each window averages over (MXNet counts the padding,
        but never the 'full' convention's overhang, unless count_include_pad=False)."""
        region = np.ones(
            (1, 1) + tuple(s + 2 * p for s, p in zip(self.shape[2:], self.pad)), dtype=dtype
        )
        if not self.include_pad:
            region = _pad_spatial(np.ones((1, 1) + self.shape[2:], dtype), self.pad)
        mask = _pad_spatial(region, (0,) * len(self.pad), 0.0, self.extra)
        total = np.zeros((1, 1) + self.out, dtype=dtype)
        for _, index in self.offsets():
            total += mask[index]
        return np.maximum(total, 1)

    def argmax(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window maximum of ``x`` and the (first) kernel position that holds it."""
        xp = self.padded(x, -np.inf)
        best: np.ndarray | None = None
        arg: np.ndarray | None = None
        for position, (_, index) in enumerate(self.offsets()):
            value = xp[index]
            if best is None or arg is None:  # (set together)
                best, arg = value.copy(), np.zeros(value.shape, dtype=np.int64)
            else:
                better = np.greater(value, best)
                np.copyto(best, value, where=better)
                np.copyto(arg, position, where=better)
        assert best is not None and arg is not None  # a window has a position
        return best, arg


def _windows(
    x: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    pad: tuple[int, ...],
    global_pool: bool,
    pooling_convention: str,
    count_include_pad: bool | None = None,
    **_hints: Any,
) -> _Windows:
    return _Windows(
        x.shape, kernel, stride, pad, global_pool, pooling_convention, count_include_pad
    )


def _pooling(x: np.ndarray, *, pool_type: str, **attrs: Any) -> np.ndarray:
    windows = _windows(x, **attrs)
    if pool_type == "max":
        return np.ascontiguousarray(windows.argmax(x)[0])
    xp = windows.padded(x)
    total = np.zeros(x.shape[:2] + windows.out, dtype=x.dtype)
    for _, index in windows.offsets():
        total += xp[index]
    return total / windows.counts(x.dtype) if pool_type == "avg" else total


def pooling_grad(g: Expr, x: Expr, *, out: Expr, **attrs: Any) -> Expr:
    """g spread back over each window (max: to the window's first maximum)"""
    return F._pooling_grad(g, x, **attrs)


def _pool_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6) / 20.0]


register(
    OpDef(
        name="Pooling",
        infer=_pool_types,
        impl=_pooling,
        grad=pooling_grad,
        attrs=POOL_ATTRS,
        kind="pool",
        doc="Max, average or sum pooling over 1-3 spatial axes, optionally global; "
        "'valid' (floor) or 'full' (ceil) output sizes.",
        test=TestSpec(
            make_inputs=_pool_test_inputs,
            order=1,
            attrs={
                "kernel": (3, 2),
                "stride": (2, 2),
                "pad": (1, 0),
                "pool_type": "max",
                "pooling_convention": "full",
            },
        ),
    )
)


def _like_second(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType(types[1].shape, types[0].dtype)]


def _pooling_grad(g: np.ndarray, x: np.ndarray, *, pool_type: str, **attrs: Any) -> np.ndarray:
    windows = _windows(x, **attrs)
    grad = np.zeros(
        x.shape[:2]
        + tuple(s + 2 * p + e for s, p, e in zip(x.shape[2:], windows.pad, windows.extra)),
        dtype=g.dtype,
    )
    if pool_type == "max":
        arg = windows.argmax(x)[1]
        for position, (_, index) in enumerate(windows.offsets()):
            grad[index] += np.where(arg == position, g, 0)
    else:
        share = g / windows.counts(g.dtype) if pool_type == "avg" else g
        for _, index in windows.offsets():
            grad[index] += share
    return np.ascontiguousarray(windows.crop(grad))


def pooling_grad_grad(
    h: Expr, g: Expr, x: Expr, *, out: Expr, pool_type: str, **attrs: Any
) -> tuple[Expr | None, ...]:
    """linear in g: avg/sum pool h again; max gathers h at the same maxima"""
    if pool_type == "max":
        return F._pooling_max_gather(h, x, pool_type=pool_type, **attrs), None
    return F.Pooling(h, pool_type=pool_type, **attrs), None


def _pool_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-1, 1, (2, 3, 3, 3)), rng.permutation(180).reshape(2, 3, 5, 6) / 20.0]


POOL_GRAD_TEST_ATTRS = {
    "kernel": (3, 2),
    "stride": (2, 2),
    "pad": (1, 0),
    "pool_type": "avg",
    "pooling_convention": "full",
}
register(
    OpDef(
        name="_pooling_grad",
        infer=_like_second,
        impl=_pooling_grad,
        grad=pooling_grad_grad,
        inputs=("data", "like"),
        attrs=POOL_ATTRS,
        kind="pool",
        doc="Gradient of Pooling: ``data`` spread over the windows of ``like``.",
        test=TestSpec(make_inputs=_pool_grad_test_inputs, attrs=POOL_GRAD_TEST_ATTRS, wrt=(0,)),
    )
)


def _pooling_max_gather(
    h: np.ndarray, x: np.ndarray, *, pool_type: str, **attrs: Any
) -> np.ndarray:
    windows = _windows(x, **attrs)
    arg = windows.argmax(x)[1]
    hp = windows.padded(h)
    out = np.zeros(arg.shape, dtype=h.dtype)
    for position, (_, index) in enumerate(windows.offsets()):
        out += np.where(arg == position, hp[index], 0)
    return out


def _pool_gather_types(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
    return [TensorType(_pool_types(types[1:], **attrs)[0].shape, types[0].dtype)]


def pooling_max_gather_grad(
    g: Expr, h: Expr, x: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """g put back at the maxima it was gathered from"""
    return F._pooling_grad(g, x, **attrs), None


register(
    OpDef(
        name="_pooling_max_gather",
        infer=_pool_gather_types,
        impl=_pooling_max_gather,
        grad=pooling_max_gather_grad,
        inputs=("data", "like"),
        attrs=POOL_ATTRS,
        kind="pool",
        doc="``data`` read at the position of each window maximum of ``like``: "
        "the gradient of max pooling's gradient.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-1, 1, (2, 3, 5, 6)),
                rng.permutation(180).reshape(2, 3, 5, 6) / 20.0,
            ],
            attrs={**POOL_GRAD_TEST_ATTRS, "pool_type": "max"},
            wrt=(0,),
        ),
    )
)
