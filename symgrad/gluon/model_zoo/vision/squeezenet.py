"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016) with MXNet 1.9.1's layers and
parameter names (``squeezenet0_conv0_weight``): fire modules are made with empty
prefixes, so all convolutions are numbered in the network's scope."""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ...block import HybridBlock
from ...contrib.nn import HybridConcurrent
from ...nn import Activation, AvgPool2D, Conv2D, Dropout, Flatten, HybridSequential, MaxPool2D
from ._common import load_pretrained

__all__ = ["SqueezeNet", "squeezenet1_0", "squeezenet1_1", "get_squeezenet"]


def _fire_conv(channels: int, kernel_size: int, padding: int = 0) -> HybridSequential:
    """A convolution and its ReLU."""
    out = HybridSequential(prefix="")
    out.add(Conv2D(channels, kernel_size, padding=padding), Activation("relu"))
    return out


def _fire(squeeze: int, expand1x1: int, expand3x3: int) -> HybridSequential:
    """A fire module: a 1x1 squeeze, then 1x1 and 3x3 expansions concatenated
    along the channels."""
    out = HybridSequential(prefix="")
    out.add(_fire_conv(squeeze, 1))
    paths = HybridConcurrent(axis=1, prefix="")
    paths.add(_fire_conv(expand1x1, 1), _fire_conv(expand3x3, 3, 1))
    out.add(paths)
    return out


def _pool() -> MaxPool2D:
    return MaxPool2D(pool_size=3, strides=2, ceil_mode=True)


class SqueezeNet(HybridBlock):
    """SqueezeNet: a stem convolution, fire modules between ceil-mode max
    poolings, dropout, then a 1x1 convolution to ``classes`` channels with ReLU,
    13x13 average pooling and flattening as ``output``.

    Parameters
    ----------
    version : str
        ``'1.0'`` or ``'1.1'`` (3x3 stem with 64 channels, earlier poolings).
    classes : int
        Number of classes.

    Notes
    -----
    The final 13x13 average pooling needs inputs of about 224x224. Gradients are
    those of the composed layers.
    """

    def __init__(self, version: str, classes: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert version in ["1.0", "1.1"], (
            f"Unsupported SqueezeNet version {version}: 1.0 or 1.1 expected"
        )
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            if version == "1.0":
                self.features.add(
                    Conv2D(96, kernel_size=7, strides=2),
                    Activation("relu"),
                    _pool(),
                    _fire(16, 64, 64),
                    _fire(16, 64, 64),
                    _fire(32, 128, 128),
                    _pool(),
                    _fire(32, 128, 128),
                    _fire(48, 192, 192),
                    _fire(48, 192, 192),
                    _fire(64, 256, 256),
                    _pool(),
                    _fire(64, 256, 256),
                )
            else:
                self.features.add(
                    Conv2D(64, kernel_size=3, strides=2),
                    Activation("relu"),
                    _pool(),
                    _fire(16, 64, 64),
                    _fire(16, 64, 64),
                    _pool(),
                    _fire(32, 128, 128),
                    _fire(32, 128, 128),
                    _pool(),
                    _fire(48, 192, 192),
                    _fire(48, 192, 192),
                    _fire(64, 256, 256),
                    _fire(64, 256, 256),
                )
            self.features.add(Dropout(0.5))
            self.output = HybridSequential(prefix="")
            self.output.add(
                Conv2D(classes, kernel_size=1), Activation("relu"), AvgPool2D(13), Flatten()
            )

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


def get_squeezenet(
    version: str, pretrained: bool = False, ctx: Any = None, root: str | None = None, **kwargs: Any
) -> SqueezeNet:
    """SqueezeNet ``version`` (``'1.0'`` or ``'1.1'``); ``pretrained`` loads
    ``squeezenet<version>``'s weights from ``root`` (default ``~/.mxnet/models``)."""
    net = SqueezeNet(version, **kwargs)
    if pretrained:
        load_pretrained(net, f"squeezenet{version}", ctx or cpu(), root)
    return net


def squeezenet1_0(**kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.0 (``get_squeezenet('1.0', **kwargs)``)."""
    return get_squeezenet("1.0", **kwargs)


def squeezenet1_1(**kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.1 (``get_squeezenet('1.1', **kwargs)``)."""
    return get_squeezenet("1.1", **kwargs)
