"""contrib ops that sample or pool feature maps: BilinearResize2D,
AdaptiveAvgPooling2D, ROIAlign, RROIAlign, PSROIPooling and the deformable
convolutions.

Linear ops whose adjoint is not another public op register a
``_backward_contrib_*`` twin that applies the adjoint; the twin's own gradient is
the forward op again, so both differentiate to any order."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from ...expr import Expr
from ...ir import GraphError, TensorType
from ...registry import (
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_float,
    as_int,
    as_shape,
    one_of,
    register,
)
from ..common import F
from ..conv import BACKEND_HINTS, CONV_GEOMETRY, _spatial, conv_out_size

# ---------------------------------------------------------------------------
# BilinearResize2D: out = Wh @ x @ Ww^T on the last two axes
# ---------------------------------------------------------------------------

_RESIZE_MODES = (
    "size",
    "like",
    "odd_scale",
    "to_even_down",
    "to_even_up",
    "to_odd_down",
    "to_odd_up",
)
_RESIZE_ATTRS = {
    "height": Attr(as_int, 1),
    "width": Attr(as_int, 1),
    "scale_height": Attr(lambda v: None if v in (None, "None") else as_float(v), None),
    "scale_width": Attr(lambda v: None if v in (None, "None") else as_float(v), None),
    "mode": Attr(one_of(*_RESIZE_MODES), "size"),
    "align_corners": Attr(as_bool, True),
}


def _resized(size: int, target: int, scale: float | None, mode: str) -> int:
    if mode == "size":
        return int(size * scale) if scale is not None else target
    if mode == "odd_scale":
        scale = 1.0 if scale is None else scale
        return int((size - 1) * scale) + 1 if size % 2 else int(size * scale)
    if mode == "to_even_down":
        return size - size % 2
    if mode == "to_even_up":
        return size + size % 2
    if mode == "to_odd_down":
        return size if size % 2 else size - 1
    return size if size % 2 else size + 1  # to_odd_up


def _resize_inputs(attrs: dict) -> tuple[str, ...]:
    return ("data", "like") if attrs.get("mode") == "like" else ("data",)


def _resize_types(
    types: Sequence[TensorType],
    *,
    height: int,
    width: int,
    scale_height: Any,
    scale_width: Any,
    mode: str,
    align_corners: bool,
) -> list[TensorType]:
    data = types[0].shape
    if len(data) != 4:
        raise GraphError("data must be NCHW")
    if mode == "like":
        out_h, out_w = types[1].shape[2], types[1].shape[3]
    else:
        out_h = _resized(data[2], height, scale_height, mode)
        out_w = _resized(data[3], width, scale_width, mode)
    if out_h < 1 or out_w < 1:
        raise GraphError(f"output size ({out_h}, {out_w}) must be positive")
    return [TensorType(data[:2] + (out_h, out_w), types[0].dtype)]


def _interpolation(size: int, out: int, align_corners: bool) -> np.ndarray:
    """The (out, size) matrix of linear interpolation weights along one axis."""
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * (size / out) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = src - low
    weights = np.zeros((out, size))
    np.add.at(weights, (np.arange(out), low), 1.0 - frac)
    np.add.at(weights, (np.arange(out), high), frac)
    return weights


def _resize_matrices(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], align_corners: bool, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    rows = _interpolation(in_shape[2], out_shape[2], align_corners).astype(dtype)
    cols = _interpolation(in_shape[3], out_shape[3], align_corners).astype(dtype)
    return rows, cols


def _bilinear_resize(data: np.ndarray, *like: np.ndarray, **attrs: Any) -> np.ndarray:
    (out_type,) = _resize_types(
        [TensorType(data.shape, data.dtype)] + [TensorType(x.shape, x.dtype) for x in like], **attrs
    )
    rows, cols = _resize_matrices(data.shape, out_type.shape, attrs["align_corners"], data.dtype)
    return np.einsum("oh,nchw,pw->ncop", rows, data, cols).astype(data.dtype, copy=False)


def bilinear_resize_grad(
    g: Expr, data: Expr, *like: Expr, out: Expr, **attrs: Any
) -> Expr | tuple[Expr | None, ...]:
    """the adjoint: Wh^T g Ww"""
    back = F._backward_contrib_BilinearResize2D(g, data, align_corners=attrs["align_corners"])
    return (back,) + (None,) * len(like)


register(
    OpDef(
        name="_contrib_BilinearResize2D",
        infer=_resize_types,
        impl=_bilinear_resize,
        grad=bilinear_resize_grad,
        inputs=_resize_inputs,
        attrs=_RESIZE_ATTRS,
        kind="opaque",
        doc="Bilinear resize of NCHW data's last two axes (MXNet's sampling, "
        "align_corners or half-pixel).\n\nGradient\n--------\nWh^T g Ww, the "
        "interpolation matrices transposed",
        test=TestSpec(
            shapes=((2, 2, 3, 4),), attrs={"height": 5, "width": 3, "align_corners": False}
        ),
    )
)


def _resize_back_types(types: Sequence[TensorType], *, align_corners: bool) -> list[TensorType]:
    return [TensorType(types[1].shape, types[0].dtype)]


def _resize_back(g: np.ndarray, like: np.ndarray, *, align_corners: bool) -> np.ndarray:
    rows, cols = _resize_matrices(like.shape, g.shape, align_corners, g.dtype)
    return np.einsum("oh,ncop,pw->nchw", rows, g, cols).astype(g.dtype, copy=False)


def resize_back_grad(
    gg: Expr, g: Expr, like: Expr, *, out: Expr, align_corners: bool
) -> tuple[Expr | None, ...]:
    """the forward resize of gg to g's size"""
    return F._contrib_BilinearResize2D(gg, g, mode="like", align_corners=align_corners), None


register(
    OpDef(
        name="_backward_contrib_BilinearResize2D",
        infer=_resize_back_types,
        impl=_resize_back,
        grad=resize_back_grad,
        inputs=("grad", "data"),
        shape_only=(1,),
        attrs={"align_corners": Attr(as_bool, True)},
        kind="opaque",
        doc="The adjoint of BilinearResize2D: grad (N, C, h, w) back to data's size.",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (1, 2, 5, 3)), np.zeros((1, 2, 3, 4))],
            wrt=(0,),
        ),
    )
)

# ---------------------------------------------------------------------------
# AdaptiveAvgPooling2D: out = Ph @ x @ Pw^T, P averaging over each bin
# ---------------------------------------------------------------------------


def _output_size(value: Any) -> tuple[int, int]:
    size = as_shape(value)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def _adaptive_types(
    types: Sequence[TensorType], *, output_size: tuple[int, int]
) -> list[TensorType]:
    data = types[0].shape
    if len(data) != 4:
        raise GraphError("data must be NCHW")
    return [TensorType(data[:2] + output_size, types[0].dtype)]


def _averaging(size: int, out: int) -> np.ndarray:
    """The (out, size) matrix averaging each adaptive bin [floor(i size / out),
    ceil((i + 1) size / out))."""
    weights = np.zeros((out, size))
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def _adaptive_pool(data: np.ndarray, *, output_size: tuple[int, int]) -> np.ndarray:
    # in float64: a bin's mean of float32 values then rounds as MXNet's sum / count
    rows = _averaging(data.shape[2], output_size[0])
    cols = _averaging(data.shape[3], output_size[1])
    return np.einsum("oh,nchw,pw->ncop", rows, data, cols).astype(data.dtype, copy=False)


def adaptive_pool_grad(g: Expr, data: Expr, *, out: Expr, output_size: tuple[int, int]) -> Expr:
    """Ph^T g Pw: each output's gradient shared evenly over its bin"""
    return F._backward_contrib_AdaptiveAvgPooling2D(g, data)


register(
    OpDef(
        name="_contrib_AdaptiveAvgPooling2D",
        infer=_adaptive_types,
        impl=_adaptive_pool,
        grad=adaptive_pool_grad,
        attrs={"output_size": Attr(_output_size, (1, 1))},
        kind="opaque",
        doc="Average pooling of NCHW data to ``output_size`` bins (PyTorch's "
        "adaptive bins).\n\nGradient\n--------\neach output's gradient "
        "divided evenly over its bin",
        test=TestSpec(shapes=((2, 2, 5, 7),), attrs={"output_size": (2, 3)}),
    )
)


def _adaptive_back(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    rows = _averaging(like.shape[2], g.shape[2])
    cols = _averaging(like.shape[3], g.shape[3])
    return np.einsum("oh,ncop,pw->nchw", rows, g, cols).astype(g.dtype, copy=False)


def adaptive_back_grad(gg: Expr, g: Expr, like: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """adaptive pooling of gg to g's size"""
    return F._contrib_AdaptiveAvgPooling2D(gg, output_size=g.shape[2:]), None


def _like_second_types(types: Sequence[TensorType]) -> list[TensorType]:
    return [TensorType(types[1].shape, types[0].dtype)]


register(
    OpDef(
        name="_backward_contrib_AdaptiveAvgPooling2D",
        infer=_like_second_types,
        impl=lambda g, like: _adaptive_back(g, like),
        grad=adaptive_back_grad,
        inputs=("grad", "data"),
        shape_only=(1,),
        kind="opaque",
        doc="The adjoint of AdaptiveAvgPooling2D.",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (1, 2, 2, 3)), np.zeros((1, 2, 5, 7))],
            wrt=(0,),
        ),
    )
)

# ---------------------------------------------------------------------------
# ROIAlign: each output cell averages bilinear samples, a linear map of data
# ---------------------------------------------------------------------------

_ROI_ATTRS = {
    "pooled_size": Attr(as_shape),
    "spatial_scale": Attr(as_float),
    "sample_ratio": Attr(as_int, -1),
    "position_sensitive": Attr(as_bool, False),
    "aligned": Attr(as_bool, False),
}


def _roi_types(
    types: Sequence[TensorType],
    *,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
    sample_ratio: int,
    position_sensitive: bool,
    aligned: bool,
) -> list[TensorType]:
    data, rois = types[0].shape, types[1].shape
    if len(data) != 4 or len(rois) != 2 or rois[1] != 5:
        raise GraphError("data must be NCHW and rois (R, 5)")
    if position_sensitive:
        raise GraphError("position_sensitive=True is not supported")
    return [TensorType((rois[0], data[1]) + tuple(pooled_size), types[0].dtype)]


def _bilinear_taps(y: float, x: float, height: int, width: int) -> list[tuple[int, float]]:
    """(flat index, weight) of the four pixels around (y, x), as ROIAlign samples."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return [
        (y_low * width + x_low, hy * hx),
        (y_low * width + x_high, hy * lx),
        (y_high * width + x_low, ly * hx),
        (y_high * width + x_high, ly * lx),
    ]


def _roi_weights(
    rois: np.ndarray,
    height: int,
    width: int,
    *,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
    sample_ratio: int,
    aligned: bool,
    **_: Any,
) -> np.ndarray:
    """(R, ph*pw, H*W) weights: output cell k of roi r is weights[r, k] . image."""
    pooled_h, pooled_w = pooled_size
    weights = np.zeros((rois.shape[0], pooled_h * pooled_w, height * width))
    offset = 0.5 if aligned else 0.0
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        start_w, start_h = roi[1] * spatial_scale - offset, roi[2] * spatial_scale - offset
        roi_w = roi[3] * spatial_scale - offset - start_w
        roi_h = roi[4] * spatial_scale - offset - start_h
        if not aligned:  # MXNet's legacy boxes are at least one pixel
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sample_ratio if sample_ratio > 0 else int(math.ceil(roi_h / pooled_h))
        grid_w = sample_ratio if sample_ratio > 0 else int(math.ceil(roi_w / pooled_w))
        count = max(grid_h * grid_w, 1)
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                cell = weights[r, ph * pooled_w + pw]
                for iy in range(grid_h):
                    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        for flat, weight in _bilinear_taps(y, x, height, width):
                            cell[flat] += weight / count
    return weights


def _roi_align(data: np.ndarray, rois: np.ndarray, **attrs: Any) -> np.ndarray:
    n, c, h, w = data.shape
    weights = _roi_weights(rois, h, w, **attrs).astype(data.dtype)
    images = data.reshape(n, c, h * w)[np.clip(rois[:, 0].astype(np.int64), 0, n - 1)]
    out = np.einsum("rkp,rcp->rck", weights, images)
    return out.reshape((rois.shape[0], c) + tuple(attrs["pooled_size"])).astype(data.dtype)


def roi_align_grad(
    g: Expr, data: Expr, rois: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """each cell's gradient spread back over the pixels it sampled; none for rois"""
    return F._backward_contrib_ROIAlign(g, rois, data, **attrs), None


register(
    OpDef(
        name="_contrib_ROIAlign",
        infer=_roi_types,
        impl=_roi_align,
        grad=roi_align_grad,
        inputs=("data", "rois"),
        attrs=_ROI_ATTRS,
        kind="opaque",
        doc="Region-of-interest pooling by averaged bilinear samples (rois rows: "
        "batch index, x1, y1, x2, y2).\n\nGradient\n--------\nW^T g for data (W "
        "the sampling weights); none for rois",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (2, 2, 5, 6)),
                np.array([[0, 0.5, 0.5, 3.7, 4.1], [1, 1.2, 0.3, 5.0, 2.5]]),
            ],
            attrs={"pooled_size": (2, 3), "spatial_scale": 1.0, "sample_ratio": 2},
            wrt=(0,),
        ),
    )
)


def _roi_back_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType(types[2].shape, types[0].dtype)]


def _roi_back(g: np.ndarray, rois: np.ndarray, like: np.ndarray, **attrs: Any) -> np.ndarray:
    n, c, h, w = like.shape
    weights = _roi_weights(rois, h, w, **attrs).astype(g.dtype)
    cells = g.reshape(g.shape[0], c, -1)
    out = np.zeros((n, c, h * w), dtype=g.dtype)
    np.add.at(
        out,
        np.clip(rois[:, 0].astype(np.int64), 0, n - 1),
        np.einsum("rkp,rck->rcp", weights, cells),
    )
    return out.reshape(like.shape)


def roi_back_grad(
    gg: Expr, g: Expr, rois: Expr, like: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """ROIAlign of gg"""
    return F._contrib_ROIAlign(gg, rois, **attrs), None, None


register(
    OpDef(
        name="_backward_contrib_ROIAlign",
        infer=_roi_back_types,
        impl=_roi_back,
        grad=roi_back_grad,
        inputs=("grad", "rois", "data"),
        shape_only=(2,),
        attrs=_ROI_ATTRS,
        kind="opaque",
        doc="The adjoint of ROIAlign: cell gradients back onto data's pixels.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (2, 2, 2, 3)),
                np.array([[0, 0.5, 0.5, 3.7, 4.1], [1, 1.2, 0.3, 5.0, 2.5]]),
                np.zeros((2, 2, 5, 6)),
            ],
            attrs={"pooled_size": (2, 3), "spatial_scale": 1.0},
            wrt=(0,),
        ),
    )
)

# ---------------------------------------------------------------------------
# DeformableConvolution: each kernel tap samples the input (bilinearly) at its
# place moved by a learned offset
# ---------------------------------------------------------------------------

_DCN_ATTRS = {
    **CONV_GEOMETRY,
    "num_deformable_group": Attr(as_int, 1),
    "no_bias": Attr(as_bool, False),
    "layout": BACKEND_HINTS["layout"],
}
# (im2col_step only batches MXNet's own work)
_MODULATED_ATTRS = {**_DCN_ATTRS, "im2col_step": Attr(as_int, 64)}


def _dcn_inputs(attrs: dict) -> tuple[str, ...]:
    base = ("data", "offset", "weight")
    return base if attrs.get("no_bias") else base + ("bias",)


def _modulated_inputs(attrs: dict) -> tuple[str, ...]:
    base = ("data", "offset", "mask", "weight")
    return base if attrs.get("no_bias") else base + ("bias",)


# one of a sampling place's four neighbours: flat index, validity, bilinear weight
Corner = tuple[np.ndarray, np.ndarray, np.ndarray]


def _dcn_geometry(
    data_shape: tuple[int, ...],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilate: Sequence[int],
    pad: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    kernel, stride, dilate, pad = _spatial(kernel, stride, dilate, pad, 2)
    out = tuple(
        conv_out_size(data_shape[2 + a], kernel[a], stride[a], dilate[a], pad[a]) for a in range(2)
    )
    return kernel, stride, dilate, pad, out


def _check_dcn(
    data: tuple[int, ...],
    offset: tuple[int, ...],
    mask: tuple[int, ...] | None,
    weight: tuple[int, ...],
    bias: tuple[int, ...] | None,
    *,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    num_group: int,
    num_deformable_group: int,
    no_bias: bool,
    **_attrs: Any,
) -> tuple[int, ...]:
    if len(data) != 4:
        raise GraphError("deformable convolutions take NCHW data only")
    kernel, _, _, _, out = _dcn_geometry(data, kernel, stride, dilate, pad)
    taps = kernel[0] * kernel[1] * num_deformable_group
    if offset != (data[0], 2 * taps) + out:
        raise GraphError(f"offset must be {(data[0], 2 * taps) + out}")
    if mask is not None and mask != (data[0], taps) + out:
        raise GraphError(f"mask must be {(data[0], taps) + out}")
    if (
        weight != (num_filter, data[1] // num_group) + kernel
        or data[1] % num_group
        or data[1] % num_deformable_group
    ):
        raise GraphError(f"weight must be {(num_filter, data[1] // num_group) + kernel}")
    if not no_bias and bias != (num_filter,):
        raise GraphError(f"bias must be ({num_filter},)")
    return (data[0], num_filter) + out


def _dcn_types(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
    shapes: list[Any] = [t.shape for t in types] + [None]  # (no bias: None)
    return [
        TensorType(
            _check_dcn(shapes[0], shapes[1], None, shapes[2], shapes[3], **attrs), types[0].dtype
        )
    ]


def _modulated_types(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
    shapes: list[Any] = [t.shape for t in types] + [None]  # (no bias: None)
    return [TensorType(_check_dcn(*shapes[:5], **attrs), types[0].dtype)]


def _dcn_samples(
    data_shape: tuple[int, ...],
    offset: np.ndarray,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilate: tuple[int, ...],
    pad: tuple[int, ...],
    out: tuple[int, ...],
    groups: int,
    clamp: bool,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, list[Corner]]:
    """Sampling places of every tap (N, groups, K, Ho, Wo) as MXNet's deformable
    im2col: the fractions (ly, lx), and for the four neighbours their flat indices,
    validity and bilinear weights.

    ``clamp`` (DeformableConvolution): a place outside [0, H) x [0, W) reads zero,
    one in the last row or column reads it. Otherwise (the modulated version):
    places within a pixel of the image read it zero-padded."""
    height, width = data_shape[2], data_shape[3]
    rows = np.arange(out[0]) * stride[0] - pad[0]
    cols = np.arange(out[1]) * stride[1] - pad[1]
    tap_y = (np.arange(kernel[0]) * dilate[0]).repeat(kernel[1])
    tap_x = np.tile(np.arange(kernel[1]) * dilate[1], kernel[0])
    moves = offset.reshape(offset.shape[0], groups, -1, 2, *out).astype(np.float64)
    y = rows[None, None, None, :, None] + tap_y[None, None, :, None, None] + moves[:, :, :, 0]
    x = cols[None, None, None, None, :] + tap_x[None, None, :, None, None] + moves[:, :, :, 1]
    if clamp:
        inside = (y >= 0) & (x >= 0) & (y < height) & (x < width)
    else:
        inside = (y > -1) & (x > -1) & (y < height) & (x < width)

    def axis(place: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low = np.floor(place)
        if not clamp:
            return low, low + 1, place - low
        low = np.clip(low, 0, size - 1)
        last = low >= size - 1
        return low, np.where(last, low, low + 1), np.where(last, 0.0, place - low)

    y0, y1, ly = axis(y, height)
    x0, x1, lx = axis(x, width)
    corners = []
    for cy, cx, weight in (
        (y0, x0, (1 - ly) * (1 - lx)),
        (y0, x1, (1 - ly) * lx),
        (y1, x0, ly * (1 - lx)),
        (y1, x1, ly * lx),
    ):
        valid = inside & (cy >= 0) & (cx >= 0) & (cy <= height - 1) & (cx <= width - 1)
        index = (np.clip(cy, 0, height - 1) * width + np.clip(cx, 0, width - 1)).astype(np.int64)
        corners.append((index, valid, weight))
    return (ly, lx), inside, corners


def _gather_corners(data: np.ndarray, corners: list[Corner], groups: int) -> list[np.ndarray]:
    """Each neighbour's value (zero where not valid): 4 x (N, G, C/G, K, Ho, Wo)."""
    n, channels = data.shape[:2]
    flat = data.reshape(n, groups, channels // groups, -1).astype(np.float64)
    values = []
    for index, valid, _ in corners:
        picked = np.take_along_axis(flat, index.reshape(n, groups, 1, -1), axis=3)
        values.append(
            picked.reshape(n, groups, channels // groups, *index.shape[2:]) * valid[:, :, None]
        )
    return values


def _deformable(
    data: np.ndarray,
    offset: np.ndarray,
    mask: np.ndarray | None,
    weight: np.ndarray,
    bias: np.ndarray | None,
    attrs: dict,
    clamp: bool,
) -> tuple[np.ndarray, tuple]:
    """Forward of both deformable convolutions; also the sampled columns
    (N, G, C/G, K, Ho, Wo) before the mask and the sampling, for the backward."""
    groups, num_group, num_filter = (
        attrs["num_deformable_group"],
        attrs["num_group"],
        attrs["num_filter"],
    )
    kernel, stride, dilate, pad, out = _dcn_geometry(
        data.shape, attrs["kernel"], attrs["stride"], attrs["dilate"], attrs["pad"]
    )
    fractions, inside, corners = _dcn_samples(
        data.shape, offset, kernel, stride, dilate, pad, out, groups, clamp
    )
    values = _gather_corners(data, corners, groups)
    columns = cast(np.ndarray, sum(v * w[:, :, None] for v, (_, _, w) in zip(values, corners)))
    masked = (
        columns
        if mask is None
        else columns * mask.reshape(mask.shape[0], groups, 1, -1, *out).astype(np.float64)
    )
    n, channels = data.shape[:2]
    filters = weight.reshape(num_group, num_filter // num_group, channels // num_group, -1).astype(
        np.float64
    )
    result = np.einsum(
        "gfck,ngckhw->ngfhw", filters, masked.reshape(n, num_group, channels // num_group, -1, *out)
    )
    result = result.reshape(n, num_filter, *out)
    if bias is not None:
        result = result + bias.reshape(1, -1, 1, 1)
    sampling = (fractions, inside, corners, values, columns, filters, out)
    return result.astype(data.dtype), sampling


def _deformable_backward(
    g: np.ndarray,
    data: np.ndarray,
    offset: np.ndarray,
    mask: np.ndarray | None,
    weight: np.ndarray,
    attrs: dict,
    clamp: bool,
) -> tuple[np.ndarray, ...]:
    """Gradients of data, offset, (mask,) weight."""
    _, ((ly, lx), inside, corners, values, columns, filters, out) = _deformable(
        data, offset, mask, weight, None, attrs, clamp
    )
    groups, num_group, num_filter = (
        attrs["num_deformable_group"],
        attrs["num_group"],
        attrs["num_filter"],
    )
    n, channels, height, width = data.shape
    grad = g.reshape(n, num_group, num_filter // num_group, *out).astype(np.float64)
    scale = 1.0 if mask is None else mask.reshape(n, groups, 1, -1, *out).astype(np.float64)
    masked = (columns * scale).reshape(n, num_group, channels // num_group, -1, *out)
    grad_weight = np.einsum("ngfhw,ngckhw->gfck", grad, masked).reshape(weight.shape)
    grad_columns = np.einsum("gfck,ngfhw->ngckhw", filters, grad).reshape(columns.shape)
    grad_sampled = grad_columns * scale  # what reaches the bilinear samples
    grad_data = np.zeros((n, groups, channels // groups, height * width))
    per_group = channels // groups
    for index, valid, weight_corner in corners:
        share = grad_sampled * (weight_corner * valid)[:, :, None]
        targets = np.broadcast_to(index[:, :, None], share.shape)
        for b in range(n):
            for d in range(groups):
                np.add.at(
                    grad_data[b, d],
                    (np.arange(per_group)[:, None], targets[b, d].reshape(per_group, -1)),
                    share[b, d].reshape(per_group, -1),
                )
    v00, v01, v10, v11 = values
    ly, lx = ly[:, :, None], lx[:, :, None]
    slope_y = (1 - lx) * (v10 - v00) + lx * (v11 - v01)
    slope_x = (1 - ly) * (v01 - v00) + ly * (v11 - v10)
    live = inside[:, :, None]
    grad_offset = np.stack(
        [(grad_sampled * slope_y * live).sum(axis=2), (grad_sampled * slope_x * live).sum(axis=2)],
        axis=3,
    )
    grads = [grad_data.reshape(data.shape), grad_offset.reshape(offset.shape)]
    if mask is not None:
        grads.append((grad_columns * columns).sum(axis=2).reshape(mask.shape))
    grads.append(grad_weight)
    return tuple(x.astype(g.dtype) for x in grads)


def _dcn_forward(
    data: np.ndarray, offset: np.ndarray, weight: np.ndarray, *bias: np.ndarray, **attrs: Any
) -> np.ndarray:
    return _deformable(data, offset, None, weight, bias[0] if bias else None, attrs, True)[0]


def _modulated_forward(
    data: np.ndarray,
    offset: np.ndarray,
    mask: np.ndarray,
    weight: np.ndarray,
    *bias: np.ndarray,
    **attrs: Any,
) -> np.ndarray:
    return _deformable(data, offset, mask, weight, bias[0] if bias else None, attrs, False)[0]


def _deformable_grad(backward_op: str, num_inputs: int) -> Callable[..., tuple[Expr | None, ...]]:
    def grad(g: Expr, *inputs: Expr, out: Expr, **attrs: Any) -> tuple[Expr | None, ...]:
        grads = getattr(F, backward_op)(g, *inputs[:num_inputs], **attrs)
        bias_grad = (F.sum(g, axis=(0, 2, 3)),) if len(inputs) > num_inputs else ()
        return (*grads, *bias_grad)

    grad.__doc__ = (
        "data and offset (and mask) through the bilinear sampling, weight "
        "against the sampled columns, in one backward op; bias: g summed"
    )
    return grad


def _dcn_test_inputs(rng: np.random.Generator, modulated: bool) -> list[np.ndarray]:
    arrays = [rng.uniform(-2, 2, (2, 4, 5, 6)), rng.uniform(-1.3, 1.3, (2, 36, 3, 3))]
    if modulated:
        arrays.append(rng.uniform(0, 1, (2, 18, 3, 3)))
    return arrays + [rng.uniform(-1, 1, (4, 2, 3, 3)), rng.uniform(-1, 1, (4,))]


_DCN_TEST_ATTRS = {
    "kernel": (3, 3),
    "stride": (2, 2),
    "pad": (1, 1),
    "num_filter": 4,
    "num_group": 2,
    "num_deformable_group": 2,
}
_DCN_DOC = (
    "\n\nGradient\n--------\ndata: the sampling's bilinear weights times the "
    "columns' gradient; offset: the interpolation's slope; weight: g against the "
    "sampled columns; bias: g summed"
)

register(
    OpDef(
        name="_contrib_DeformableConvolution",
        infer=_dcn_types,
        impl=_dcn_forward,
        grad=_deformable_grad("_backward_contrib_DeformableConvolution", 3),
        inputs=_dcn_inputs,
        attrs=_DCN_ATTRS,
        kind="opaque",
        doc="Deformable convolution (NCHW): each kernel tap reads the input at its "
        "place plus a learned offset, bilinearly (MXNet's sampling: zero outside "
        "the image, the last row and column clamped)." + _DCN_DOC,
        test=TestSpec(
            make_inputs=lambda rng: _dcn_test_inputs(rng, False), attrs=_DCN_TEST_ATTRS, order=1
        ),
    )
)
register(
    OpDef(
        name="_contrib_ModulatedDeformableConvolution",
        infer=_modulated_types,
        impl=_modulated_forward,
        grad=_deformable_grad("_backward_contrib_ModulatedDeformableConvolution", 4),
        inputs=_modulated_inputs,
        attrs=_MODULATED_ATTRS,
        kind="opaque",
        doc="Modulated deformable convolution (DCNv2): each tap's sample, taken "
        "zero-padded within a pixel of the image, is scaled by its mask."
        + _DCN_DOC
        + "; mask: the columns' gradient times the samples",
        test=TestSpec(
            make_inputs=lambda rng: _dcn_test_inputs(rng, True), attrs=_DCN_TEST_ATTRS, order=1
        ),
    )
)


def _dcn_back_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType(t.shape, types[0].dtype) for t in types[1:]]


register(
    OpDef(
        name="_backward_contrib_DeformableConvolution",
        infer=_dcn_back_types,
        impl=lambda g, data, offset, weight, **attrs: _deformable_backward(
            g, data, offset, None, weight, attrs, True
        ),
        inputs=("grad", "data", "offset", "weight"),
        attrs=_DCN_ATTRS,
        differentiable=False,
        kind="opaque",
        doc="The gradients of DeformableConvolution's data, offset and weight.",
        test=TestSpec(
            make_inputs=lambda rng: (
                [rng.uniform(-1, 1, (2, 4, 3, 3))]
                + _dcn_test_inputs(rng, False)[:2]
                + [rng.uniform(-1, 1, (4, 2, 3, 3))]
            ),
            attrs=_DCN_TEST_ATTRS,
        ),
    )
)
register(
    OpDef(
        name="_backward_contrib_ModulatedDeformableConvolution",
        infer=_dcn_back_types,
        impl=lambda g, data, offset, mask, weight, **attrs: _deformable_backward(
            g, data, offset, mask, weight, attrs, False
        ),
        inputs=("grad", "data", "offset", "mask", "weight"),
        attrs=_MODULATED_ATTRS,
        differentiable=False,
        kind="opaque",
        doc="The gradients of ModulatedDeformableConvolution's data, offset, mask and weight.",
        test=TestSpec(
            make_inputs=lambda rng: (
                [rng.uniform(-1, 1, (2, 4, 3, 3))]
                + _dcn_test_inputs(rng, True)[:3]
                + [rng.uniform(-1, 1, (4, 2, 3, 3))]
            ),
            attrs=_DCN_TEST_ATTRS,
        ),
    )
)

# ---------------------------------------------------------------------------
# RROIAlign: ROIAlign over rotated boxes (text detection); no gradient in MXNet
# ---------------------------------------------------------------------------


def _rroi_types(
    types: Sequence[TensorType],
    *,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
    sampling_ratio: int,
) -> list[TensorType]:
    data, rois = types[0].shape, types[1].shape
    if len(data) != 4 or len(rois) != 2 or rois[1] != 6:
        raise GraphError("data must be NCHW and rois (R, 6): batch, cx, cy, w, h, degrees")
    return [TensorType((rois[0], data[1]) + tuple(pooled_size), types[0].dtype)]


def _rroi_align(
    data: np.ndarray,
    rois: np.ndarray,
    *,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
    sampling_ratio: int,
) -> np.ndarray:
    n, channels, height, width = data.shape
    pooled_h, pooled_w = pooled_size
    out = np.zeros((rois.shape[0], channels, pooled_h * pooled_w))
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        cx, cy = roi[1] * spatial_scale, roi[2] * spatial_scale
        roi_w, roi_h = max(roi[3] * spatial_scale, 1.0), max(roi[4] * spatial_scale, 1.0)
        cos, sin = math.cos(math.radians(roi[5])), math.sin(math.radians(roi[5]))
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_h / pooled_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_w / pooled_w))
        count = max(grid_h * grid_w, 1)
        weights = np.zeros((pooled_h * pooled_w, height * width))
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                for iy in range(grid_h):
                    yy = -roi_h / 2 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        xx = -roi_w / 2 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        x, y = xx * cos + yy * sin + cx, yy * cos - xx * sin + cy
                        for flat, weight in _bilinear_taps(y, x, height, width):
                            weights[ph * pooled_w + pw, flat] += weight / count
        image = data[min(max(int(roi[0]), 0), n - 1)].reshape(channels, -1)
        out[r] = image.astype(np.float64) @ weights.T
    return out.reshape((rois.shape[0], channels, pooled_h, pooled_w)).astype(data.dtype)


register(
    OpDef(
        name="_contrib_RROIAlign",
        infer=_rroi_types,
        impl=_rroi_align,
        inputs=("data", "rois"),
        differentiable=False,
        kind="opaque",
        attrs={
            "pooled_size": Attr(as_shape),
            "spatial_scale": Attr(as_float),
            "sampling_ratio": Attr(as_int, -1),
        },
        doc="ROIAlign over rotated boxes (rows: batch index, centre x, centre y, "
        "width, height, angle in degrees); MXNet defines no gradient.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (2, 2, 6, 8)),
                np.array([[0, 3, 2.5, 4, 2, 0], [1, 4, 3, 4, 2, 90], [0, 3.5, 3, 5, 3, 30]]),
            ],
            attrs={"pooled_size": (2, 2), "spatial_scale": 1.0, "sampling_ratio": 2},
        ),
    )
)

# ---------------------------------------------------------------------------
# PSROIPooling: position-sensitive average pooling (R-FCN)
# ---------------------------------------------------------------------------

_PSROI_ATTRS = {
    "spatial_scale": Attr(as_float),
    "output_dim": Attr(as_int),
    "pooled_size": Attr(as_int),
    "group_size": Attr(as_int, 0),
}


def _psroi_types(
    types: Sequence[TensorType],
    *,
    spatial_scale: float,
    output_dim: int,
    pooled_size: int,
    group_size: int,
) -> list[TensorType]:
    data, rois = types[0].shape, types[1].shape
    group = group_size or pooled_size
    if len(data) != 4 or len(rois) != 2 or rois[1] != 5 or data[1] != output_dim * group * group:
        raise GraphError(f"expected data (N, {output_dim * group * group}, H, W) and rois (R, 5)")
    return [TensorType((rois[0], output_dim, pooled_size, pooled_size), types[0].dtype)]


def _c_round(value: float) -> float:
    return math.floor(value + 0.5) if value >= 0 else math.ceil(value - 0.5)


def _psroi_bins(
    rois: np.ndarray,
    height: int,
    width: int,
    *,
    spatial_scale: float,
    output_dim: int,
    pooled_size: int,
    group_size: int,
) -> Iterator[tuple[int, int, int, int, int, int, int, int, int]]:
    """For each roi, output channel and bin: (input channel, h0, h1, w0, w1), the
    rectangle its average is taken over (empty when h1 <= h0 or w1 <= w0)."""
    group = group_size or pooled_size
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        start_w, start_h = _c_round(roi[1]) * spatial_scale, _c_round(roi[2]) * spatial_scale
        end_w = (_c_round(roi[3]) + 1.0) * spatial_scale
        end_h = (_c_round(roi[4]) + 1.0) * spatial_scale
        bin_h = max(end_h - start_h, 0.1) / pooled_size
        bin_w = max(end_w - start_w, 0.1) / pooled_size
        for ph in range(pooled_size):
            h0 = min(max(math.floor(ph * bin_h + start_h), 0), height)
            h1 = min(max(math.ceil((ph + 1) * bin_h + start_h), 0), height)
            gh = min(max(ph * group // pooled_size, 0), group - 1)
            for pw in range(pooled_size):
                w0 = min(max(math.floor(pw * bin_w + start_w), 0), width)
                w1 = min(max(math.ceil((pw + 1) * bin_w + start_w), 0), width)
                gw = min(max(pw * group // pooled_size, 0), group - 1)
                for top in range(output_dim):
                    yield r, top, ph, pw, (top * group + gh) * group + gw, h0, h1, w0, w1


def _psroi_pool(data: np.ndarray, rois: np.ndarray, **attrs: Any) -> np.ndarray:
    out = np.zeros(
        _psroi_types(
            [TensorType(data.shape, data.dtype), TensorType(rois.shape, rois.dtype)], **attrs
        )[0].shape
    )
    batch = np.clip(rois[:, 0].astype(np.int64), 0, data.shape[0] - 1)
    for r, top, ph, pw, c, h0, h1, w0, w1 in _psroi_bins(rois, *data.shape[2:], **attrs):
        if h1 > h0 and w1 > w0:
            out[r, top, ph, pw] = data[batch[r], c, h0:h1, w0:w1].astype(np.float64).mean()
    return out.astype(data.dtype)


def psroi_pool_grad(
    g: Expr, data: Expr, rois: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """each bin's gradient spread evenly over its rectangle; none for rois"""
    return F._backward_contrib_PSROIPooling(g, rois, data, **attrs), None


def _psroi_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-2, 2, (2, 8, 6, 7)),
        np.array([[0, 0.4, 1.0, 4.6, 5.2], [1, 2.0, 0.0, 6.0, 3.0], [0, 5.0, 4.0, 5.0, 4.0]]),
    ]


register(
    OpDef(
        name="_contrib_PSROIPooling",
        infer=_psroi_types,
        impl=_psroi_pool,
        grad=psroi_pool_grad,
        inputs=("data", "rois"),
        attrs=_PSROI_ATTRS,
        kind="opaque",
        doc="Position-sensitive ROI average pooling: bin (i, j) of output channel "
        "k averages input channel (k * group + i') * group + j'.\n\nGradient"
        "\n--------\neach bin's gradient over its rectangle, divided by its "
        "area; none for rois",
        test=TestSpec(
            make_inputs=_psroi_inputs,
            wrt=(0,),
            attrs={"spatial_scale": 0.5, "output_dim": 2, "pooled_size": 2},
        ),
    )
)


def _psroi_back_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return [TensorType(types[2].shape, types[0].dtype)]


def _psroi_back(g: np.ndarray, rois: np.ndarray, like: np.ndarray, **attrs: Any) -> np.ndarray:
    out = np.zeros(like.shape, dtype=np.float64)
    batch = np.clip(rois[:, 0].astype(np.int64), 0, like.shape[0] - 1)
    for r, top, ph, pw, c, h0, h1, w0, w1 in _psroi_bins(rois, *like.shape[2:], **attrs):
        if h1 > h0 and w1 > w0:
            out[batch[r], c, h0:h1, w0:w1] += g[r, top, ph, pw] / ((h1 - h0) * (w1 - w0))
    return out.astype(g.dtype)


def psroi_back_grad(
    gg: Expr, g: Expr, rois: Expr, like: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """PSROIPooling of gg"""
    return F._contrib_PSROIPooling(gg, rois, **attrs), None, None


register(
    OpDef(
        name="_backward_contrib_PSROIPooling",
        infer=_psroi_back_types,
        impl=_psroi_back,
        grad=psroi_back_grad,
        inputs=("grad", "rois", "data"),
        shape_only=(2,),
        attrs=_PSROI_ATTRS,
        kind="opaque",
        doc="The adjoint of PSROIPooling.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 2, 2, 2)),
                _psroi_inputs(rng)[1],
                np.zeros((2, 8, 6, 7)),
            ],
            wrt=(0,),
            attrs={"spatial_scale": 0.5, "output_dim": 2, "pooled_size": 2},
        ),
    )
)
