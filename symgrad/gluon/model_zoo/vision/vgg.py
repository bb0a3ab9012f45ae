"""VGG 11/13/16/19 (Simonyan & Zisserman 2014), with and without batch norm, with
MXNet 1.9.1's layers, initializers and parameter names (``vgg0_conv0_weight``)."""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ....initializer import Xavier
from ...block import HybridBlock
from ...nn import Activation, BatchNorm, Conv2D, Dense, Dropout, HybridSequential, MaxPool2D
from ._common import load_pretrained

__all__ = [
    "VGG",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "get_vgg",
]


class VGG(HybridBlock):
    """VGG: blocks of 3x3 convolutions (each followed by batch norm if asked, and
    ReLU) separated by 2x2 max pooling, then two 4096-unit ReLU Dense layers with
    dropout, then the ``output`` Dense.

    Parameters
    ----------
    layers : list of int
        Convolutions per block.
    filters : list of int
        Channels of each block.
    classes : int
        Number of classes.
    batch_norm : bool
        Batch norm after each convolution.

    Notes
    -----
    Convolution weights start from Xavier (gaussian, fan-out, magnitude 2), Dense
    weights from a normal, biases from zeros, as in MXNet. Gradients are those of
    the composed layers.
    """

    def __init__(
        self,
        layers: list[int],
        filters: list[int],
        classes: int = 1000,
        batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        assert len(layers) == len(filters)
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            for count, channels in zip(layers, filters):
                for _ in range(count):
                    self.features.add(
                        Conv2D(
                            channels,
                            kernel_size=3,
                            padding=1,
                            weight_initializer=Xavier(
                                rnd_type="gaussian", factor_type="out", magnitude=2
                            ),
                            bias_initializer="zeros",
                        )
                    )
                    if batch_norm:
                        self.features.add(BatchNorm())
                    self.features.add(Activation("relu"))
                self.features.add(MaxPool2D(strides=2))
            for _ in range(2):
                self.features.add(
                    Dense(
                        4096,
                        activation="relu",
                        weight_initializer="normal",
                        bias_initializer="zeros",
                    )
                )
                self.features.add(Dropout(rate=0.5))
            self.output = Dense(classes, weight_initializer="normal", bias_initializer="zeros")

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


# depth: (convolutions per block, channels per block)
vgg_spec = {
    11: ([1, 1, 2, 2, 2], [64, 128, 256, 512, 512]),
    13: ([2, 2, 2, 2, 2], [64, 128, 256, 512, 512]),
    16: ([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]),
    19: ([2, 2, 4, 4, 4], [64, 128, 256, 512, 512]),
}


def get_vgg(
    num_layers: int,
    pretrained: bool = False,
    ctx: Any = None,
    root: str | None = None,
    **kwargs: Any,
) -> VGG:
    """VGG of depth ``num_layers`` (11, 13, 16 or 19).

    Parameters
    ----------
    num_layers : int
        The depth.
    pretrained : bool
        Load ``vgg<depth>`` (``vgg<depth>_bn`` with ``batch_norm=True``) from ``root``.
    ctx : Context
        Where the loaded weights go.
    root : str
        The folder of pretrained weights (default ``~/.mxnet/models``).
    **kwargs
        ``classes``, ``batch_norm``, ``prefix``, ``params``.
    """
    layers, filters = vgg_spec[num_layers]
    net = VGG(layers, filters, **kwargs)
    if pretrained:
        suffix = "_bn" if kwargs.get("batch_norm") else ""
        load_pretrained(net, f"vgg{num_layers}{suffix}", ctx or cpu(), root)
    return net


def _named(depth: int, batch_norm: bool) -> Any:
    def make(**kwargs: Any) -> VGG:
        if batch_norm:
            kwargs["batch_norm"] = True
        return get_vgg(depth, **kwargs)

    suffix = "_bn" if batch_norm else ""
    make.__name__ = f"vgg{depth}{suffix}"
    make.__doc__ = (
        f"VGG-{depth}{' with batch norm' if batch_norm else ''} "
        f"(``get_vgg({depth}, **kwargs)``): pretrained, ctx, root, classes."
    )
    return make


vgg11 = _named(11, False)
vgg13 = _named(13, False)
vgg16 = _named(16, False)
vgg19 = _named(19, False)
vgg11_bn = _named(11, True)
vgg13_bn = _named(13, True)
vgg16_bn = _named(16, True)
vgg19_bn = _named(19, True)
