"""Inception v3 (Szegedy et al. 2015) with MXNet 1.9.1's layers and parameter
names (``inception30_A1_conv0_weight``): each mixed block is a concatenation of
branches under its own prefix (``A1_`` ... ``E2_``), and every branch is made
with empty prefixes so its convolutions are numbered in the block's scope."""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ...block import HybridBlock
from ...contrib.nn import HybridConcurrent
from ...nn import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    HybridSequential,
    MaxPool2D,
)
from ._common import load_pretrained

__all__ = ["Inception3", "inception_v3"]

# A convolution's settings: (channels, kernel_size, strides, padding); None keeps
# Conv2D's default.
_ConvSpec = tuple[int, Any, Any, Any]


def _basic_conv(
    channels: int, kernel_size: Any, strides: Any = None, padding: Any = None
) -> HybridSequential:
    """A convolution without bias, batch norm (epsilon 0.001) and ReLU."""
    settings = {"kernel_size": kernel_size}
    if strides is not None:
        settings["strides"] = strides
    if padding is not None:
        settings["padding"] = padding
    out = HybridSequential(prefix="")
    out.add(
        Conv2D(channels, use_bias=False, **settings), BatchNorm(epsilon=0.001), Activation("relu")
    )
    return out


def _branch(pool: str | None, *convs: _ConvSpec) -> HybridSequential:
    """An optional pooling (``'avg'``: 3x3/1 padded; ``'max'``: 3x3/2) followed by
    the basic convolutions ``convs``."""
    out = HybridSequential(prefix="")
    if pool == "avg":
        out.add(AvgPool2D(pool_size=3, strides=1, padding=1))
    elif pool == "max":
        out.add(MaxPool2D(pool_size=3, strides=2))
    for spec in convs:
        out.add(_basic_conv(*spec))
    return out


def _mixed(prefix: str, *branches: Any) -> HybridConcurrent:
    """Branches (each a function making one) concatenated along the channels,
    made in the scope ``prefix``."""
    out = HybridConcurrent(axis=1, prefix=prefix)
    with out.name_scope():
        for make in branches:
            out.add(make())
    return out


def _block_a(pool_features: int, prefix: str) -> HybridConcurrent:
    return _mixed(
        prefix,
        lambda: _branch(None, (64, 1, None, None)),
        lambda: _branch(None, (48, 1, None, None), (64, 5, None, 2)),
        lambda: _branch(None, (64, 1, None, None), (96, 3, None, 1), (96, 3, None, 1)),
        lambda: _branch("avg", (pool_features, 1, None, None)),
    )


def _block_b(prefix: str) -> HybridConcurrent:
    return _mixed(
        prefix,
        lambda: _branch(None, (384, 3, 2, None)),
        lambda: _branch(None, (64, 1, None, None), (96, 3, None, 1), (96, 3, 2, None)),
        lambda: _branch("max"),
    )


def _block_c(channels_7x7: int, prefix: str) -> HybridConcurrent:
    c = channels_7x7
    return _mixed(
        prefix,
        lambda: _branch(None, (192, 1, None, None)),
        lambda: _branch(
            None, (c, 1, None, None), (c, (1, 7), None, (0, 3)), (192, (7, 1), None, (3, 0))
        ),
        lambda: _branch(
            None,
            (c, 1, None, None),
            (c, (7, 1), None, (3, 0)),
            (c, (1, 7), None, (0, 3)),
            (c, (7, 1), None, (3, 0)),
            (192, (1, 7), None, (0, 3)),
        ),
        lambda: _branch("avg", (192, 1, None, None)),
    )


def _block_d(prefix: str) -> HybridConcurrent:
    return _mixed(
        prefix,
        lambda: _branch(None, (192, 1, None, None), (320, 3, 2, None)),
        lambda: _branch(
            None,
            (192, 1, None, None),
            (192, (1, 7), None, (0, 3)),
            (192, (7, 1), None, (3, 0)),
            (192, 3, 2, None),
        ),
        lambda: _branch("max"),
    )


def _split_3x3(first: _ConvSpec) -> HybridSequential:
    """``first``, then its output through 1x3 and 3x1 convolutions side by side."""
    out = HybridSequential(prefix="")
    out.add(_branch(None, first))
    pair = HybridConcurrent(axis=1, prefix="")
    pair.add(_branch(None, (384, (1, 3), None, (0, 1))), _branch(None, (384, (3, 1), None, (1, 0))))
    out.add(pair)
    return out


def _split_3x3_deep() -> HybridSequential:
    """1x1 and 3x3 convolutions, then 1x3 and 3x1 side by side."""
    out = HybridSequential(prefix="")
    out.add(_branch(None, (448, 1, None, None), (384, 3, None, 1)))
    pair = HybridConcurrent(axis=1, prefix="")
    pair.add(_branch(None, (384, (1, 3), None, (0, 1))), _branch(None, (384, (3, 1), None, (1, 0))))
    out.add(pair)
    return out


def _block_e(prefix: str) -> HybridConcurrent:
    return _mixed(
        prefix,
        lambda: _branch(None, (320, 1, None, None)),
        lambda: _split_3x3((384, 1, None, None)),
        _split_3x3_deep,
        lambda: _branch("avg", (192, 1, None, None)),
    )


class Inception3(HybridBlock):
    """Inception v3: a stem of basic convolutions and max poolings, mixed blocks
    A1-A3, B, C1-C4, D, E1-E2, 8x8 average pooling, dropout and the ``output``
    Dense.

    Parameters
    ----------
    classes : int
        Number of classes.

    Notes
    -----
    The final 8x8 average pooling needs inputs of about 299x299. Gradients are
    those of the composed layers.
    """

    def __init__(self, classes: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            self.features.add(
                _basic_conv(32, 3, 2),
                _basic_conv(32, 3),
                _basic_conv(64, 3, padding=1),
                MaxPool2D(pool_size=3, strides=2),
                _basic_conv(80, 1),
                _basic_conv(192, 3),
                MaxPool2D(pool_size=3, strides=2),
                _block_a(32, "A1_"),
                _block_a(64, "A2_"),
                _block_a(64, "A3_"),
                _block_b("B_"),
                _block_c(128, "C1_"),
                _block_c(160, "C2_"),
                _block_c(160, "C3_"),
                _block_c(192, "C4_"),
                _block_d("D_"),
                _block_e("E1_"),
                _block_e("E2_"),
                AvgPool2D(pool_size=8),
                Dropout(0.5),
            )
            self.output = Dense(classes)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


def inception_v3(
    pretrained: bool = False, ctx: Any = None, root: str | None = None, **kwargs: Any
) -> Inception3:
    """Inception v3; ``pretrained`` loads ``inceptionv3``'s weights from ``root``
    (default ``~/.mxnet/models``) to ``ctx``. ``kwargs``: classes, prefix, params."""
    net = Inception3(**kwargs)
    if pretrained:
        load_pretrained(net, "inceptionv3", ctx or cpu(), root)
    return net
