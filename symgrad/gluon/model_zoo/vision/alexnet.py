"""AlexNet (Krizhevsky et al. 2012, the one-tower variant) with MXNet 1.9.1's
layers and parameter names (``alexnet0_conv0_weight``)."""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ...block import HybridBlock
from ...nn import Conv2D, Dense, Dropout, Flatten, HybridSequential, MaxPool2D
from ._common import load_pretrained

__all__ = ["AlexNet", "alexnet"]


class AlexNet(HybridBlock):
    """AlexNet: five ReLU convolutions with three 3x3/2 max poolings, two
    4096-unit ReLU Dense layers with dropout, and the ``output`` Dense.

    Parameters
    ----------
    classes : int
        Number of classes.

    Notes
    -----
    Needs inputs of at least 63x63 (three unpadded poolings). Gradients are those
    of the composed layers.
    """

    def __init__(self, classes: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            self.features.add(
                Conv2D(64, kernel_size=11, strides=4, padding=2, activation="relu"),
                MaxPool2D(pool_size=3, strides=2),
                Conv2D(192, kernel_size=5, padding=2, activation="relu"),
                MaxPool2D(pool_size=3, strides=2),
                Conv2D(384, kernel_size=3, padding=1, activation="relu"),
                Conv2D(256, kernel_size=3, padding=1, activation="relu"),
                Conv2D(256, kernel_size=3, padding=1, activation="relu"),
                MaxPool2D(pool_size=3, strides=2),
                Flatten(),
                Dense(4096, activation="relu"),
                Dropout(0.5),
                Dense(4096, activation="relu"),
                Dropout(0.5),
            )
            self.output = Dense(classes)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


def alexnet(
    pretrained: bool = False, ctx: Any = None, root: str | None = None, **kwargs: Any
) -> AlexNet:
    """AlexNet; ``pretrained`` loads ``alexnet``'s weights from ``root``
    (default ``~/.mxnet/models``) to ``ctx``. ``kwargs``: classes, prefix, params."""
    net = AlexNet(**kwargs)
    if pretrained:
        load_pretrained(net, "alexnet", ctx or cpu(), root)
    return net
