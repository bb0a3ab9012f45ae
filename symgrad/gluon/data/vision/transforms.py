"""Image transforms on HWC (or NHWC) NDArrays, as MXNet 1.x's
``gluon.data.vision.transforms``: Blocks to chain with ``Compose``.

They compute in numpy (none of them has a gradient or needs one), so they are
plain Blocks, not HybridBlocks: ``hybridize`` on them changes nothing.

>>> import symgrad as mx
>>> image = mx.nd.array(np.full((4, 6, 3), 255), dtype='uint8')
>>> out = Compose([Resize(2), ToTensor(), Normalize(0.5, 0.5)])(image)
>>> out.shape, float(out.asnumpy().max())
((3, 2, 2), 1.0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .... import ndarray as nd
from ....ndarray import NDArray
from ...block import Block
from ...nn import Sequential

__all__ = [
    "Compose",
    "Cast",
    "ToTensor",
    "Normalize",
    "Resize",
    "CenterCrop",
    "CropResize",
    "RandomResizedCrop",
    "RandomFlipLeftRight",
    "RandomFlipTopBottom",
    "RandomApply",
    "RandomBrightness",
    "RandomContrast",
    "RandomSaturation",
    "RandomHue",
    "RandomLighting",
    "RandomColorJitter",
]


def _values(x: Any) -> np.ndarray:
    return x.asnumpy() if isinstance(x, NDArray) else np.asarray(x)


def _ndarray(values: np.ndarray) -> NDArray:
    return nd.array(values, dtype=values.dtype)


class _Function(Block):
    """A plain function in a ``Compose``."""

    def __init__(self, fn: Callable):
        super().__init__()
        self._fn = fn

    def forward(self, *args: Any) -> Any:
        """``fn(*args)``."""
        return self._fn(*args)


class Compose(Sequential):
    """Apply ``transforms`` one after the other (a ``gluon.nn.Sequential``;
    plain functions are accepted too)."""

    def __init__(self, transforms: Sequence[Any]):
        super().__init__()
        with self.name_scope():
            for transform in transforms:
                self.add(transform if isinstance(transform, Block) else _Function(transform))


class Cast(Block):
    """Cast the input to ``dtype``."""

    def __init__(self, dtype: Any = "float32"):
        super().__init__()
        self._dtype = dtype

    def forward(self, x: NDArray, *args: Any) -> Any:
        """``x`` as ``dtype``."""
        return _ndarray(_values(x).astype(self._dtype))


class ToTensor(Block):
    """HWC (or NHWC) values in [0, 255] to CHW (NCHW) float32 in [0, 1]."""

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """``transpose(x) / 255`` as float32."""
        values = _values(x)
        if values.ndim not in (3, 4):
            raise ValueError(f"ToTensor expects an HWC or NHWC image, not shape {values.shape}")
        axes = (2, 0, 1) if values.ndim == 3 else (0, 3, 1, 2)
        out = np.transpose(values, axes).astype(np.float32) / np.float32(255)
        return _ndarray(np.ascontiguousarray(out))


class Normalize(Block):
    """``(x - mean[c]) / std[c]`` for each channel c of a CHW (or NCHW) tensor;
    ``mean`` and ``std`` are numbers or one value per channel."""

    def __init__(self, mean: Any = 0.0, std: Any = 1.0):
        super().__init__()
        self._mean = mean
        self._std = std

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The normalised tensor (float32)."""
        values = _values(x)
        channel_axis = values.ndim - 3
        shape = [1] * values.ndim
        shape[channel_axis] = -1
        mean = np.asarray(self._mean, dtype=np.float32).reshape(shape)
        std = np.asarray(self._std, dtype=np.float32).reshape(shape)
        return _ndarray(((values - mean) / std).astype(np.float32))


def _bilinear_axis(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows (or columns) and weight of the second one, as OpenCV's bilinear
    resize computes them in float32: pixel centres aligned, clamped at the edges."""
    scale = np.float64(in_size) / out_size
    position = ((np.arange(out_size) + 0.5) * scale - 0.5).astype(np.float32)
    low = np.floor(position).astype(np.int64)
    weight = position - low.astype(np.float32)
    before = low < 0
    low[before], weight[before] = 0, 0
    after = low >= in_size - 1
    low[after], weight[after] = in_size - 1, 0
    high = np.minimum(low + 1, in_size - 1)
    return low, high, weight


def _fixed_weights(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's 11-bit fixed-point weights (rounded half to even) for uint8 images."""
    return (np.rint((1 - weight) * 2048).astype(np.int64), np.rint(weight * 2048).astype(np.int64))


def _resize_uint8(values: np.ndarray, rows: tuple, cols: tuple, h_axis: int) -> np.ndarray:
    """Bilinear resize in OpenCV's integer arithmetic (its vectorised uint8 path):
    a horizontal pass to 11-bit fixed point, a vertical one rounding back."""
    work = values.astype(np.int64)
    shape = [1] * values.ndim
    shape[h_axis + 1] = -1
    left, right = _fixed_weights(cols[2])
    horizontal = np.take(work, cols[0], axis=h_axis + 1) * left.reshape(shape) + np.take(
        work, cols[1], axis=h_axis + 1
    ) * right.reshape(shape)
    shape = [1] * values.ndim
    shape[h_axis] = -1
    top, bottom = _fixed_weights(rows[2])
    upper = (top.reshape(shape) * (np.take(horizontal, rows[0], axis=h_axis) >> 4)) >> 16
    lower = (bottom.reshape(shape) * (np.take(horizontal, rows[1], axis=h_axis) >> 4)) >> 16
    return np.clip((upper + lower + 2) >> 2, 0, 255).astype(np.uint8)


def imresize(values: np.ndarray, width: int, height: int, interp: int = 1) -> np.ndarray:
    """Resize an HWC (or NHWC) image to ``height`` x ``width``, as OpenCV's
    ``resize`` (which MXNet calls): nearest neighbour for ``interp=0``, bilinear
    otherwise (uint8 in OpenCV's fixed point, floats in float32)."""
    h_axis = values.ndim - 3
    in_h, in_w = values.shape[h_axis], values.shape[h_axis + 1]
    if interp == 0:
        rows = np.minimum(np.floor(np.arange(height) * (in_h / height)).astype(np.int64), in_h - 1)
        cols = np.minimum(np.floor(np.arange(width) * (in_w / width)).astype(np.int64), in_w - 1)
        return np.take(np.take(values, rows, axis=h_axis), cols, axis=h_axis + 1)
    rows = _bilinear_axis(height, in_h)
    cols = _bilinear_axis(width, in_w)
    if values.dtype == np.uint8:
        return _resize_uint8(values, rows, cols, h_axis)
    work = values.astype(np.float32)
    shape = [1] * values.ndim
    shape[h_axis + 1] = -1
    work = np.take(work, cols[0], axis=h_axis + 1) * (1 - cols[2]).reshape(shape) + np.take(
        work, cols[1], axis=h_axis + 1
    ) * cols[2].reshape(shape)
    shape = [1] * values.ndim
    shape[h_axis] = -1
    work = np.take(work, rows[0], axis=h_axis) * (1 - rows[2]).reshape(shape) + np.take(
        work, rows[1], axis=h_axis
    ) * rows[2].reshape(shape)
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        work = np.clip(np.rint(work), info.min, info.max)
    return work.astype(values.dtype)


class Resize(Block):
    """Resize an HWC (or NHWC) image to ``size``: ``(width, height)``, or an int
    for a square, or with ``keep_ratio`` the shorter side set to ``size`` and the
    other scaled to keep the aspect ratio. ``interpolation`` 0 is nearest, 1
    (default) bilinear."""

    def __init__(self, size: int | Sequence[int], keep_ratio: bool = False, interpolation: int = 1):
        super().__init__()
        self._size = size
        self._keep = keep_ratio
        self._interpolation = interpolation

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The resized image."""
        values = _values(x)
        h, w = values.shape[-3], values.shape[-2]
        if isinstance(self._size, (int, np.integer)):
            if not self._keep:
                width = height = int(self._size)
            elif h > w:
                width, height = int(self._size), int(h * self._size / w)
            else:
                width, height = int(w * self._size / h), int(self._size)
        else:
            width, height = self._size
        return _ndarray(imresize(values, width, height, self._interpolation))


def _scale_down(src_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """Shrink the crop ``size`` (w, h) to fit in ``src_size``, keeping its ratio."""
    w, h = size
    src_w, src_h = src_size
    if src_h < h:
        w, h = float(w * src_h) / h, src_h
    if src_w < w:
        w, h = src_w, float(h * src_w) / w
    return int(w), int(h)


def _fixed_crop(
    values: np.ndarray, x0: int, y0: int, w: int, h: int, size: tuple[int, int] | None, interp: int
) -> np.ndarray:
    out = values[y0 : y0 + h, x0 : x0 + w]
    if size is not None and (w, h) != tuple(size):
        out = imresize(out, size[0], size[1], interp)
    return np.ascontiguousarray(out)


def _center_crop(values: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    h, w = values.shape[0], values.shape[1]
    new_w, new_h = _scale_down((w, h), size)
    x0 = int((w - new_w) / 2)
    y0 = int((h - new_h) / 2)
    return _fixed_crop(values, x0, y0, new_w, new_h, size, interp)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    return int(size[0]), int(size[1])


class CenterCrop(Block):
    """Crop the centre of an HWC image to ``size`` (``(width, height)`` or an int);
    an image smaller than that is cropped at the largest size of the same ratio
    and resized up."""

    def __init__(self, size: int | Sequence[int], interpolation: int = 1):
        super().__init__()
        self._size = _pair(size)
        self._interpolation = interpolation

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The cropped image."""
        return _ndarray(_center_crop(_values(x), self._size, self._interpolation))


class RandomResizedCrop(Block):
    """Crop a random area of an HWC image (a ``scale`` fraction of its area, with
    aspect ratio in ``ratio``, log-uniform) and resize it to ``size``; after ten
    tries that do not fit, crop the centre instead. Random numbers come from
    Python's ``random``, as MXNet's."""

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: int = 1,
    ):
        super().__init__()
        self._size = _pair(size)
        self._scale = scale
        self._ratio = ratio
        self._interpolation = interpolation

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """A random crop of ``x`` resized to ``size``."""
        values = _values(x)
        h, w = values.shape[0], values.shape[1]
        area = h * w
        log_ratio = (math.log(self._ratio[0]), math.log(self._ratio[1]))
        for _ in range(10):
            target_area = random.uniform(self._scale[0], self._scale[1]) * area
            aspect = math.exp(random.uniform(*log_ratio))
            new_w = int(round(math.sqrt(target_area * aspect)))
            new_h = int(round(math.sqrt(target_area / aspect)))
            if new_w <= w and new_h <= h:
                x0 = random.randint(0, w - new_w)
                y0 = random.randint(0, h - new_h)
                return _ndarray(
                    _fixed_crop(values, x0, y0, new_w, new_h, self._size, self._interpolation)
                )
        return _ndarray(_center_crop(values, self._size, self._interpolation))


class _RandomFlip(Block):
    _axis_from_end: int

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """``x`` flipped with probability 1/2."""
        values = _values(x)
        if random.random() < 0.5:
            values = np.flip(values, axis=values.ndim - self._axis_from_end)
        return _ndarray(np.ascontiguousarray(values))


class RandomFlipLeftRight(_RandomFlip):
    """Flip an HWC image left to right with probability 1/2."""

    _axis_from_end = 2


class RandomFlipTopBottom(_RandomFlip):
    """Flip an HWC image top to bottom with probability 1/2."""

    _axis_from_end = 3


class CropResize(Block):
    """Crop the ``width`` x ``height`` box at column ``x``, row ``y`` of an HWC (or
    NHWC) image, then resize it to ``size`` (``(width, height)`` or an int) if
    given."""

    def __init__(
        self,
        x: int,
        y: int,
        width: int,
        height: int,
        size: int | Sequence[int] | None = None,
        interpolation: int | None = None,
    ):
        super().__init__()
        self._box = (x, y, width, height)
        self._size = None if size is None else _pair(size)
        self._interpolation = 1 if interpolation is None else interpolation

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The crop, resized when ``size`` is set."""
        values = _values(x)
        left, top, width, height = self._box
        h_axis = values.ndim - 3
        index = [slice(None)] * values.ndim
        index[h_axis] = slice(top, top + height)
        index[h_axis + 1] = slice(left, left + width)
        out = np.ascontiguousarray(values[tuple(index)])
        if self._size is not None:
            out = imresize(out, self._size[0], self._size[1], self._interpolation)
        return _ndarray(out)


class RandomApply(Sequential):
    """Apply ``transforms`` (a Block or list of them) with probability ``p``."""

    def __init__(self, transforms: Any, p: float = 0.5):
        super().__init__()
        self.p = p
        with self.name_scope():
            for transform in transforms if isinstance(transforms, (list, tuple)) else [transforms]:
                self.add(transform if isinstance(transform, Block) else _Function(transform))

    def forward(self, x: Any, *args: Any) -> Any:
        """The transformed input, or the input itself."""
        if self.p < random.random():
            return x
        return super().forward(x, *args)


def _same_kind(values: np.ndarray, out: np.ndarray) -> NDArray:
    """``out`` in the input's dtype (integers rounded and clipped to their range)."""
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return _ndarray(out.astype(values.dtype))


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class RandomBrightness(Block):
    """``x * alpha`` with ``alpha`` uniform in ``[1 - brightness, 1 + brightness]``."""

    def __init__(self, brightness: float):
        super().__init__()
        self._range = (max(0.0, 1 - brightness), 1 + brightness)

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The image scaled by a random factor."""
        values = _values(x)
        alpha = np.float32(random.uniform(*self._range))
        return _same_kind(values, values.astype(np.float32) * alpha)


class RandomContrast(Block):
    """``alpha x + (1 - alpha) mean_gray`` with ``alpha`` uniform in
    ``[1 - contrast, 1 + contrast]``, ``mean_gray`` the image's mean luma
    (0.299 R + 0.587 G + 0.114 B)."""

    def __init__(self, contrast: float):
        super().__init__()
        self._range = (max(0.0, 1 - contrast), 1 + contrast)

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The image with randomly scaled contrast."""
        values = _values(x)
        work = values.astype(np.float32)
        alpha = np.float32(random.uniform(*self._range))
        gray = (work @ _LUMA).mean()
        return _same_kind(values, work * alpha + gray * (1 - alpha))


class RandomSaturation(Block):
    """``alpha x + (1 - alpha) gray`` per pixel with ``alpha`` uniform in
    ``[1 - saturation, 1 + saturation]``. As in MXNet 1.9.1's kernel, ``gray`` is
    ``0.114 * B`` (its luma sum keeps only the last channel's term)."""

    def __init__(self, saturation: float):
        super().__init__()
        self._range = (max(0.0, 1 - saturation), 1 + saturation)

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The image with randomly scaled saturation."""
        values = _values(x)
        work = values.astype(np.float32)
        alpha = np.float32(random.uniform(*self._range))
        gray = work[..., 2:3] * _LUMA[2]
        return _same_kind(values, work * alpha + gray * (1 - alpha))


# ImageNet's RGB eigenvalues and eigenvectors (columns), for AlexNet-style PCA noise
_EIGVAL = np.array([55.46, 4.794, 1.148], dtype=np.float32)
_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
    dtype=np.float32,
)


class RandomLighting(Block):
    """Add ``eigvec @ (a * eigval)`` to every pixel, ``a`` three normal samples
    of standard deviation ``alpha`` (AlexNet's PCA lighting noise)."""

    def __init__(self, alpha: float):
        super().__init__()
        self._alpha = alpha

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The image with random lighting noise."""
        values = _values(x)
        noise = np.array([random.gauss(0, self._alpha) for _ in range(3)], dtype=np.float32)
        return _same_kind(values, values.astype(np.float32) + _EIGVEC @ (noise * _EIGVAL))


def _rgb_to_hls(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (in turns, [0, 1)), lightness and saturation of RGB values in [0, 1]."""
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    lightness = (high + low) / 2
    spread = high - low
    grey = spread == 0
    safe = np.where(grey, 1, spread)
    saturation = np.where(
        lightness <= 0.5,
        spread / np.where(grey, 1, high + low),
        spread / np.where(grey, 1, 2 - high - low),
    )
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # the sector of the largest channel, then the position within it
    hue = np.where(
        high == r, (g - b) / safe, np.where(high == g, 2 + (b - r) / safe, 4 + (r - g) / safe)
    )
    hue = np.where(grey, 0, (hue / 6) % 1.0)
    return hue, lightness, np.where(grey, 0, saturation)


def _hls_to_rgb(hue: np.ndarray, lightness: np.ndarray, saturation: np.ndarray) -> np.ndarray:
    """RGB values in [0, 1] of hue (turns), lightness and saturation."""
    high = np.where(
        lightness <= 0.5,
        lightness * (1 + saturation),
        lightness + saturation - lightness * saturation,
    )
    low = 2 * lightness - high

    def channel(h: np.ndarray) -> np.ndarray:
        h = h % 1.0
        return np.where(
            h < 1 / 6,
            low + (high - low) * h * 6,
            np.where(h < 0.5, high, np.where(h < 2 / 3, low + (high - low) * (2 / 3 - h) * 6, low)),
        )

    rgb = np.stack([channel(hue + 1 / 3), channel(hue), channel(hue - 1 / 3)], axis=-1)
    return np.where((saturation == 0)[..., None], lightness[..., None], rgb)


class RandomHue(Block):
    """Rotate the hue of an RGB image by ``alpha`` turns (its HLS lightness and
    saturation kept), ``alpha`` uniform in ``[-hue, hue]``."""

    def __init__(self, hue: float):
        super().__init__()
        self._hue = hue

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The image with its hue rotated by a random angle."""
        values = _values(x)
        alpha = random.uniform(-self._hue, self._hue)
        hue, lightness, saturation = _rgb_to_hls(values.astype(np.float64) / 255)
        rgb = _hls_to_rgb(hue + alpha, lightness, saturation) * 255
        return _same_kind(values, rgb.astype(np.float32))


class RandomColorJitter(Block):
    """Random brightness, contrast, saturation and hue changes (those with a
    nonzero strength), applied in a random order."""

    def __init__(
        self, brightness: float = 0, contrast: float = 0, saturation: float = 0, hue: float = 0
    ):
        super().__init__()
        self._jitters = [
            cls(strength)
            for cls, strength in (
                (RandomBrightness, brightness),
                (RandomContrast, contrast),
                (RandomSaturation, saturation),
                (RandomHue, hue),
            )
            if strength
        ]

    def forward(self, x: NDArray, *args: Any) -> NDArray:
        """The image after each jitter, in a random order."""
        order = list(self._jitters)
        random.shuffle(order)
        for jitter in order:
            x = jitter(x)
        return x
