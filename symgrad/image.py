"""MXNet's ``mx.image``: decode, resize, crop and normalise HWC images held in
NDArrays (``uint8`` from the decoder, RGB unless ``to_rgb=0``).

Decoding needs an image library: Pillow (``pip install pillow``) or OpenCV
(``pip install opencv-python-headless``); without either, decoding raises an
ImportError that says so. Resizing is done here, in numpy, in OpenCV's manner
(MXNet resizes with OpenCV): pixel centres aligned, edges replicated,
``interp`` (OpenCV's codes) 0 nearest, 1 bilinear, 2 bicubic (a = -0.75),
3 area, 4 Lanczos (8 taps), 9 area to shrink / bicubic to enlarge / else
bilinear, 10 one of 0-4 at random.
``uint8`` results are rounded and may differ from OpenCV's fixed-point
arithmetic by one level.

>>> import symgrad as mx
>>> img = mx.nd.array(np.arange(24).reshape(2, 4, 3), dtype="uint8")
>>> imresize(img, 2, 1, interp=3).asnumpy()[0, :, 0].tolist()
[8, 14]
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from . import ndarray as nd
from .base import MXNetError
from .ndarray.ndarray import NDArray

__all__ = [
    "center_crop",
    "color_normalize",
    "fixed_crop",
    "imdecode",
    "imread",
    "imresize",
    "resize_short",
    "scale_down",
]

_NO_LIBRARY = (
    "mx.image needs an image library to decode images: install Pillow "
    "(pip install pillow) or OpenCV (pip install opencv-python-headless)"
)


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------


def _decode_rgb(data: bytes) -> np.ndarray:
    """``data`` (an encoded image) as an HxWx3 uint8 RGB array."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        Image = None
    if Image is not None:
        try:
            with Image.open(io.BytesIO(data)) as picture:
                return np.asarray(picture.convert("RGB"))
        except (UnidentifiedImageError, OSError) as error:
            raise MXNetError(f"Decoding failed. Invalid image file ({error})") from None
    try:
        import cv2
    except ImportError:
        raise ImportError(_NO_LIBRARY) from None
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise MXNetError("Decoding failed. Invalid image file.")
    return decoded[:, :, ::-1]


def _gray(rgb: np.ndarray) -> np.ndarray:
    # BT.601 luma with 14-bit weights, rounded (OpenCV's colour conversion)
    weights = np.array([4899, 9617, 1868], np.int64)
    return ((rgb.astype(np.int64) @ weights + (1 << 13)) >> 14).astype(np.uint8)[:, :, None]


def imdecode(buf: Any, flag: int = 1, to_rgb: int = 1, out: NDArray | None = None) -> NDArray:
    """Decode an image (``bytes``, ``bytearray`` or a uint8 numpy array of the
    file's bytes) into an HxWxC uint8 NDArray: C = 3 (RGB, or BGR with
    ``to_rgb=0``) when ``flag`` is 1, C = 1 (grey) when it is 0."""
    if isinstance(buf, np.ndarray):
        buf = buf.tobytes()
    elif isinstance(buf, str):
        buf = buf.encode("latin-1")
    rgb = _decode_rgb(bytes(buf))
    if flag == 0:
        pixels = _gray(rgb)
    else:
        pixels = rgb if to_rgb else rgb[:, :, ::-1]
    return _result(np.ascontiguousarray(pixels), out)


def imread(filename: str, flag: int = 1, to_rgb: int = 1, out: NDArray | None = None) -> NDArray:
    """Read and decode an image file (see :func:`imdecode`)."""
    with open(filename, "rb") as handle:
        return imdecode(handle.read(), flag, to_rgb, out)


def _result(pixels: np.ndarray, out: NDArray | None) -> NDArray:
    if out is None:
        return nd.array(pixels, dtype=pixels.dtype)
    out[:] = pixels
    return out


# ---------------------------------------------------------------------------
# resizing: one weight matrix per axis, (new size x old size)
# ---------------------------------------------------------------------------


def _nearest(new: int, old: int) -> np.ndarray:
    source = np.minimum(np.floor(np.arange(new) * (old / new)).astype(int), old - 1)
    weights = np.zeros((new, old))
    weights[np.arange(new), source] = 1.0
    return weights


def _area(new: int, old: int) -> np.ndarray:
    """Each new pixel the mean of the old pixels it covers (by overlap length);
    used when both axes shrink."""
    scale = old / new
    starts, ends = np.arange(new) * scale, (np.arange(new) + 1) * scale
    left, right = np.arange(old), np.arange(old) + 1.0
    overlap = np.minimum(ends[:, None], right[None, :]) - np.maximum(starts[:, None], left[None])
    return np.clip(overlap, 0.0, None) / scale


def _area_two_taps(new: int, old: int) -> np.ndarray:
    """Area resampling when an axis grows: the new pixel's span straddles at most
    one old boundary, and each side weighs its share of the span. (OpenCV uses
    this form for both axes unless both shrink.)"""
    scale = old / new
    start = np.floor(np.arange(new) * scale).astype(int)
    frac = (np.arange(new) + 1) - (start + 1) / scale
    frac = np.where(frac <= 0, 0.0, frac - np.floor(frac))
    weights = np.zeros((new, old))
    np.add.at(weights, (np.arange(new), np.minimum(start, old - 1)), 1 - frac)
    np.add.at(weights, (np.arange(new), np.minimum(start + 1, old - 1)), frac)
    return weights


def _kernel_weights(new: int, old: int, taps: int, kernel: Callable) -> np.ndarray:
    """A ``taps``-tap filter sampled at the aligned centres, edges replicated."""
    centre = (np.arange(new) + 0.5) * (old / new) - 0.5
    first = np.floor(centre).astype(int) - (taps // 2 - 1)
    weights = np.zeros((new, old))
    rows = np.arange(new)
    for k in range(taps):
        index = first + k
        tap = kernel(centre - index)
        np.add.at(weights, (rows, np.clip(index, 0, old - 1)), tap)
    return weights / weights.sum(axis=1, keepdims=True)


def _linear(new: int, old: int) -> np.ndarray:
    # OpenCV clamps the sample point into the image (no extrapolation at the edges)
    centre = np.clip((np.arange(new) + 0.5) * (old / new) - 0.5, 0, old - 1)
    low = np.minimum(np.floor(centre).astype(int), old - 1)
    high = np.minimum(low + 1, old - 1)
    frac = centre - low
    weights = np.zeros((new, old))
    np.add.at(weights, (np.arange(new), low), 1 - frac)
    np.add.at(weights, (np.arange(new), high), frac)
    return weights


def _cubic(distance: np.ndarray) -> np.ndarray:
    a, x = -0.75, np.abs(distance)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _lanczos4(distance: np.ndarray) -> np.ndarray:
    x = np.asarray(distance, dtype=np.float64)
    return np.where(np.abs(x) < 4, np.sinc(x) * np.sinc(x / 4), 0.0)


_WEIGHTS: dict[int, Callable[[int, int], np.ndarray]] = {
    0: _nearest,
    1: _linear,
    2: lambda new, old: _kernel_weights(new, old, 4, _cubic),
    3: _area,
    4: lambda new, old: _kernel_weights(new, old, 8, _lanczos4),
}


def _resize(pixels: np.ndarray, w: int, h: int, interp: int) -> np.ndarray:
    old_h, old_w = pixels.shape[:2]
    if interp == 9:
        interp = 3 if (w < old_w and h < old_h) else 2 if (w > old_w and h > old_h) else 1
    elif interp == 10:
        interp = int(np.random.randint(0, 5))
    if interp not in _WEIGHTS:
        raise MXNetError(f"imresize: unknown interp {interp}; use 0-4, 9 or 10")
    make = _WEIGHTS[interp]
    if interp == 3 and not (w <= old_w and h <= old_h):
        make = _area_two_taps
    wy, wx = make(h, old_h), make(w, old_w)
    resized = np.einsum("ij,jk...,lk->il...", wy, pixels.astype(np.float64), wx)
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        return np.clip(np.rint(resized), info.min, info.max).astype(pixels.dtype)
    return resized.astype(pixels.dtype)


def _pixels(src: Any) -> np.ndarray:
    return src.asnumpy() if isinstance(src, NDArray) else np.asarray(src)


def imresize(src: Any, w: int, h: int, interp: int = 1, out: NDArray | None = None) -> NDArray:
    """``src`` (HxWxC or HxW) resized to ``h`` x ``w`` with interpolation ``interp``."""
    if w <= 0 or h <= 0:
        raise MXNetError(f"imresize: the new size must be positive, got w={w}, h={h}")
    return _result(_resize(_pixels(src), int(w), int(h), int(interp)), out)


def scale_down(src_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """``size`` (w, h) shrunk, keeping its aspect ratio, to fit in ``src_size`` (w, h).

    >>> scale_down((53, 37), (80, 10))
    (53, 6)
    """
    w, h = size
    src_w, src_h = src_size
    if src_h < h:
        w, h = float(w * src_h) / h, src_h
    if src_w < w:
        w, h = src_w, float(h * src_w) / w
    return int(w), int(h)


def resize_short(src: Any, size: int, interp: int = 2) -> NDArray:
    """``src`` resized so that its shorter edge is ``size`` (the longer one scaled
    in proportion, rounded down)."""
    h, w = _pixels(src).shape[:2]
    if h > w:
        new_h, new_w = size * h // w, size
    else:
        new_h, new_w = size, size * w // h
    return imresize(src, new_w, new_h, interp=interp)


def fixed_crop(
    src: Any, x0: int, y0: int, w: int, h: int, size: tuple[int, int] | None = None, interp: int = 2
) -> NDArray:
    """The ``w`` x ``h`` region at (``x0``, ``y0``), resized to ``size`` (w, h) if given."""
    pixels = _pixels(src)[y0 : y0 + h, x0 : x0 + w]
    if size is not None and (w, h) != tuple(size):
        return imresize(pixels, size[0], size[1], interp=interp)
    return nd.array(pixels, dtype=pixels.dtype)


def center_crop(
    src: Any, size: tuple[int, int], interp: int = 2
) -> tuple[NDArray, tuple[int, int, int, int]]:
    """The centred region of ``size`` (w, h); when the image is smaller, the
    largest centred region of that aspect ratio, resized to ``size``.

    Returns
    -------
    tuple
        The crop, and its ``(x0, y0, w, h)`` in ``src``.
    """
    h, w = _pixels(src).shape[:2]
    new_w, new_h = scale_down((w, h), size)
    x0, y0 = int((w - new_w) / 2), int((h - new_h) / 2)
    return fixed_crop(src, x0, y0, new_w, new_h, size, interp), (x0, y0, new_w, new_h)


def color_normalize(src: Any, mean: Any, std: Any = None) -> NDArray:
    """``(src - mean) / std`` (``std`` omitted: ``src - mean``)."""
    if mean is not None:
        src = src - mean
    if std is not None:
        src = src / std
    return src
