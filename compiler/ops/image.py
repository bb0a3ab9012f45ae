"""MXNet's image ops (``mx.nd.image.*``, registered as ``_image_*``) that are
cheap tensor operations: to_tensor, normalize, flip_left_right,
flip_top_bottom, crop and adjust_lighting.

Images are HWC (or NHWC where MXNet 1.9.1 accepts a batch), tensors CHW (NCHW),
as in MXNet. The random variants (``_image_random_*``) and resize, which MXNet
does through OpenCV, are not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_float, as_int, register
from .common import F


def as_floats(value: Any) -> tuple[float, ...]:
    """Parse a float or a tuple of floats (MXNet's ``tuple of <float>``)."""
    if isinstance(value, str):
        value = value.strip().strip("()[]")
        return tuple(as_float(v) for v in value.split(",") if v.strip())
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (as_float(value),)
    return tuple(as_float(v) for v in value)


def _image_ndim(shape: tuple[int, ...], op: str, batched: bool) -> None:
    allowed = (3, 4) if batched else (3,)
    if len(shape) not in allowed:
        kinds = "(H, W, C) or (N, H, W, C)" if batched else "(H, W, C)"
        raise GraphError(f"{op}: expects an image of shape {kinds}, got {shape}")


def _checked(data: np.ndarray, infer: Any, **attrs: Any) -> np.ndarray:
    """``data`` after its op's shape rule accepted it: eager calls run the numpy
    implementation without the rule, and MXNet refuses these shapes at the call."""
    infer([TensorType(data.shape, data.dtype)], **attrs)
    return data


# ---------------------------------------------------------------------------
# to_tensor
# ---------------------------------------------------------------------------


def _to_tensor_axes(ndim: int) -> tuple[int, ...]:
    return (2, 0, 1) if ndim == 3 else (0, 3, 1, 2)


def _to_tensor_types(types: Sequence[TensorType]) -> list[TensorType]:
    shape = types[0].shape
    _image_ndim(shape, "to_tensor", batched=True)
    return [TensorType(tuple(shape[a] for a in _to_tensor_axes(len(shape))), np.dtype("float32"))]


def _to_tensor(data: np.ndarray) -> np.ndarray:
    _checked(data, _to_tensor_types)
    moved = np.transpose(data, _to_tensor_axes(data.ndim)).astype(np.float32)
    return np.ascontiguousarray(moved / np.float32(255))


register(
    OpDef(
        name="_image_to_tensor",
        infer=_to_tensor_types,
        impl=_to_tensor,
        # MXNet 1.9.1's backward of to_tensor fails (it gives the gradient the
        # output's shape); an image is data, not a parameter: none here
        differentiable=False,
        kind="gather",
        doc="An HWC (NHWC) image of values in [0, 255] as a CHW (NCHW) float32 tensor "
        "in [0, 1]. No gradient.",
        test=TestSpec(shapes=((4, 5, 3),), domain=(0.0, 255.0)),
    )
)


# ---------------------------------------------------------------------------
# normalize
# ---------------------------------------------------------------------------


def _per_channel(values: tuple[float, ...], channels: int, name: str) -> np.ndarray:
    if len(values) == 1:
        return np.full(channels, values[0])
    if len(values) != channels:  # so MXNet's defaults, four values, are always refused
        raise GraphError(
            f"normalize: {name} must have 1 or {channels} values (one per channel), "
            f"got {len(values)}"
        )
    return np.array(values)


def _normalize_types(
    types: Sequence[TensorType], *, mean: tuple[float, ...], std: tuple[float, ...]
) -> list[TensorType]:
    shape = types[0].shape
    if len(shape) not in (3, 4):
        raise GraphError(f"normalize: expects (C, H, W) or (N, C, H, W), got {shape}")
    channels = shape[-3]
    if channels not in (1, 3):
        raise GraphError(f"normalize: a tensor has 1 or 3 channels (axis -3), got {shape}")
    _per_channel(mean, channels, "mean")  # (raises unless 1 or one per channel)
    _per_channel(std, channels, "std")
    return [types[0]]


def _normalize(data: np.ndarray, *, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    channels = _checked(data, _normalize_types, mean=mean, std=std).shape[-3]
    shift = _per_channel(mean, channels, "mean").reshape(-1, 1, 1)
    scale = _per_channel(std, channels, "std").reshape(-1, 1, 1)
    # MXNet computes in the data's type with float32 mean and std
    dtype = data.dtype
    return ((data - shift.astype(dtype)) / scale.astype(dtype)).astype(dtype)


def normalize_grad(g: Expr, data: Expr, *, out: Expr, mean: tuple, std: tuple) -> Expr:
    """g / std[c]: normalize of g with mean 0"""
    return F._image_normalize(g, mean=(0.0,), std=std)


register(
    OpDef(
        name="_image_normalize",
        infer=_normalize_types,
        impl=_normalize,
        grad=normalize_grad,
        attrs={
            "mean": Attr(as_floats, (0.0, 0.0, 0.0, 0.0)),
            "std": Attr(as_floats, (1.0, 1.0, 1.0, 1.0)),
        },
        kind="norm",
        doc="(x - mean[c]) / std[c] for each channel c of a CHW (NCHW) tensor of 1 or 3 "
        "channels; one "
        "value of mean or std serves every channel (else one per channel).\n\nGradient\n--------\n"
        + (normalize_grad.__doc__ or ""),
        test=TestSpec(shapes=((3, 4, 5),), attrs={"mean": (0.1, 0.2, 0.3), "std": (1.0, 2.0, 3.0)}),
    )
)


# ---------------------------------------------------------------------------
# flip_left_right, flip_top_bottom
# ---------------------------------------------------------------------------


def _flip_types(types: Sequence[TensorType], name: str) -> list[TensorType]:
    shape = types[0].shape
    _image_ndim(shape, name, batched=False)
    if shape[2] not in (1, 3):
        raise GraphError(f"{name}: an image has 1 or 3 channels (last axis), got {shape}")
    return [types[0]]


def flip_left_right_grad(g: Expr, data: Expr, *, out: Expr) -> Expr:
    """g flipped back"""
    return F._image_flip_left_right(g)


def flip_top_bottom_grad(g: Expr, data: Expr, *, out: Expr) -> Expr:
    """g flipped back"""
    return F._image_flip_top_bottom(g)


for _name, _axis, _rule, _what in (
    ("_image_flip_left_right", 1, flip_left_right_grad, "columns (left and right)"),
    ("_image_flip_top_bottom", 0, flip_top_bottom_grad, "rows (top and bottom)"),
):
    register(
        OpDef(
            name=_name,
            infer=lambda types, _n=_name: _flip_types(types, _n),
            impl=lambda data, _a=_axis, _n=_name: np.flip(
                _checked(data, lambda types: _flip_types(types, _n)), axis=_a
            ).copy(),
            grad=_rule,
            kind="gather",
            doc=f"An HWC image (1 or 3 channels) with its {_what} in reverse order."
            "\n\nGradient\n--------\n" + (_rule.__doc__ or ""),
            test=TestSpec(shapes=((4, 5, 3),)),
        )
    )


# ---------------------------------------------------------------------------
# crop
# ---------------------------------------------------------------------------

CROP_ATTRS = {"x": Attr(as_int), "y": Attr(as_int), "width": Attr(as_int), "height": Attr(as_int)}


def _crop_types(
    types: Sequence[TensorType], *, x: int, y: int, width: int, height: int
) -> list[TensorType]:
    shape = types[0].shape
    _image_ndim(shape, "crop", batched=True)
    rows, columns = shape[-3], shape[-2]
    if x < 0 or y < 0 or width < 1 or height < 1 or x + width > columns or y + height > rows:
        raise GraphError(
            f"crop: the box x={x}, y={y}, width={width}, height={height} is not inside "
            f"an image of {rows} rows and {columns} columns"
        )
    return [TensorType(shape[:-3] + (height, width, shape[-1]), types[0].dtype)]


def _crop_box(ndim: int, x: int, y: int, width: int, height: int) -> tuple[tuple, tuple]:
    """(begin, end) of the box for slice/_slice_assign: all of any batch axis and
    of the channels."""
    lead = (None,) * (ndim - 3)
    return lead + (y, x, None), lead + (y + height, x + width, None)


def _crop(data: np.ndarray, *, x: int, y: int, width: int, height: int) -> np.ndarray:
    _checked(data, _crop_types, x=x, y=y, width=width, height=height)
    return data[..., y : y + height, x : x + width, :].copy()


def crop_grad(g: Expr, data: Expr, *, out: Expr, x: int, y: int, width: int, height: int) -> Expr:
    """g in the box, zeros elsewhere"""
    begin, end = _crop_box(data.ndim, x, y, width, height)
    return F._slice_assign(F.zeros_like(data), g, begin=begin, end=end)


register(
    OpDef(
        name="_image_crop",
        infer=_crop_types,
        impl=_crop,
        grad=crop_grad,
        attrs=CROP_ATTRS,
        kind="gather",
        doc="The box of ``height`` rows from row y and ``width`` columns from column x "
        "of an HWC (NHWC) image.\n\nGradient\n--------\n" + (crop_grad.__doc__ or ""),
        test=TestSpec(shapes=((5, 6, 3),), attrs={"x": 1, "y": 2, "width": 3, "height": 2}),
    )
)


# ---------------------------------------------------------------------------
# adjust_lighting
# ---------------------------------------------------------------------------

# The principal components of ImageNet's RGB pixel values (AlexNet, Krizhevsky et
# al. 2012), as MXNet applies them: eigenvalues, and eigenvectors as columns.
LIGHTING_EIGVAL = np.array([55.46, 4.794, 1.148])
LIGHTING_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
)


def _lighting_types(types: Sequence[TensorType], *, alpha: tuple[float, ...]) -> list[TensorType]:
    shape = types[0].shape
    _image_ndim(shape, "adjust_lighting", batched=False)
    if shape[-1] != 3 or len(alpha) != 3:
        raise GraphError(f"adjust_lighting: needs 3 channels and 3 alphas, got {shape}, {alpha}")
    return [types[0]]


def _adjust_lighting(data: np.ndarray, *, alpha: tuple[float, ...]) -> np.ndarray:
    _checked(data, _lighting_types, alpha=alpha)
    shift = LIGHTING_EIGVEC @ (np.array(alpha) * LIGHTING_EIGVAL)
    return (data + shift.astype(np.float32)).astype(data.dtype)


def adjust_lighting_grad(g: Expr, data: Expr, *, out: Expr, alpha: tuple) -> Expr:
    """g: the shift depends on alpha only"""
    return g


register(
    OpDef(
        name="_image_adjust_lighting",
        infer=_lighting_types,
        impl=_adjust_lighting,
        grad=adjust_lighting_grad,
        attrs={"alpha": Attr(as_floats)},
        kind="norm",
        doc="An RGB image (HWC) shifted along ImageNet's principal colour "
        "components: eigvec (alpha eigval) added to every pixel.\n\nGradient\n--------\n"
        + (adjust_lighting_grad.__doc__ or ""),
        test=TestSpec(shapes=((4, 5, 3),), attrs={"alpha": (0.1, 0.2, 0.3)}),
    )
)
