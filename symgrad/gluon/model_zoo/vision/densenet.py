"""DenseNet 121/161/169/201 (Huang et al. 2016) with MXNet 1.9.1's layers and
parameter names (``densenet0_stage1_conv0_weight``): each dense layer is an
identity concatenated with its new features along the channels."""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ...block import HybridBlock
from ...contrib.nn import HybridConcurrent, Identity
from ...nn import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    HybridSequential,
    MaxPool2D,
)
from ._common import load_pretrained

__all__ = ["DenseNet", "densenet121", "densenet161", "densenet169", "densenet201", "get_densenet"]


def _dense_layer(growth_rate: int, bn_size: int, dropout: float) -> HybridConcurrent:
    """``concat(x, new_features(x))``: batch norm, ReLU, 1x1 convolution to
    ``bn_size * growth_rate`` channels, batch norm, ReLU, 3x3 convolution to
    ``growth_rate`` channels (then dropout if asked)."""
    new_features = HybridSequential(prefix="")
    new_features.add(
        BatchNorm(),
        Activation("relu"),
        Conv2D(bn_size * growth_rate, kernel_size=1, use_bias=False),
        BatchNorm(),
        Activation("relu"),
        Conv2D(growth_rate, kernel_size=3, padding=1, use_bias=False),
    )
    if dropout:
        new_features.add(Dropout(dropout))
    out = HybridConcurrent(axis=1, prefix="")
    out.add(Identity(), new_features)
    return out


def _dense_block(
    count: int, bn_size: int, growth_rate: int, dropout: float, index: int
) -> HybridSequential:
    """Stage ``index``: ``count`` dense layers, each adding ``growth_rate`` channels."""
    out = HybridSequential(prefix=f"stage{index}_")
    with out.name_scope():
        for _ in range(count):
            out.add(_dense_layer(growth_rate, bn_size, dropout))
    return out


def _transition(channels: int) -> HybridSequential:
    """Between stages: batch norm, ReLU, 1x1 convolution to ``channels``, 2x2
    average pooling."""
    out = HybridSequential(prefix="")
    out.add(
        BatchNorm(),
        Activation("relu"),
        Conv2D(channels, kernel_size=1, use_bias=False),
        AvgPool2D(pool_size=2, strides=2),
    )
    return out


class DenseNet(HybridBlock):
    """DenseNet-BC: a 7x7/2 convolution stem with 3x3/2 max pooling, dense
    stages joined by halving transitions, batch norm, ReLU, 7x7 average pooling
    and the ``output`` Dense.

    Parameters
    ----------
    num_init_features : int
        Channels of the stem.
    growth_rate : int
        Channels each dense layer adds.
    block_config : list of int
        Dense layers per stage.
    bn_size : int
        Width factor of the 1x1 bottleneck (times ``growth_rate``).
    dropout : float
        Dropout rate after each dense layer (0: none).
    classes : int
        Number of classes.

    Notes
    -----
    The final 7x7 average pooling needs inputs of about 224x224. Gradients are
    those of the composed layers.
    """

    def __init__(
        self,
        num_init_features: int,
        growth_rate: int,
        block_config: list[int],
        bn_size: int = 4,
        dropout: float = 0,
        classes: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            self.features.add(
                Conv2D(num_init_features, kernel_size=7, strides=2, padding=3, use_bias=False),
                BatchNorm(),
                Activation("relu"),
                MaxPool2D(pool_size=3, strides=2, padding=1),
            )
            channels = num_init_features
            for i, count in enumerate(block_config):
                self.features.add(_dense_block(count, bn_size, growth_rate, dropout, i + 1))
                channels += count * growth_rate
                if i != len(block_config) - 1:
                    channels //= 2
                    self.features.add(_transition(channels))
            self.features.add(BatchNorm(), Activation("relu"), AvgPool2D(pool_size=7), Flatten())
            self.output = Dense(classes)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


# depth: (stem channels, growth rate, dense layers per stage)
densenet_spec = {
    121: (64, 32, [6, 12, 24, 16]),
    161: (96, 48, [6, 12, 36, 24]),
    169: (64, 32, [6, 12, 32, 32]),
    201: (64, 32, [6, 12, 48, 32]),
}


def get_densenet(
    num_layers: int,
    pretrained: bool = False,
    ctx: Any = None,
    root: str | None = None,
    **kwargs: Any,
) -> DenseNet:
    """DenseNet of depth ``num_layers`` (121, 161, 169, 201); ``pretrained`` loads
    ``densenet<depth>``'s weights from ``root`` (default ``~/.mxnet/models``).
    ``kwargs``: bn_size, dropout, classes, prefix, params."""
    init_features, growth_rate, block_config = densenet_spec[num_layers]
    net = DenseNet(init_features, growth_rate, block_config, **kwargs)
    if pretrained:
        load_pretrained(net, f"densenet{num_layers}", ctx or cpu(), root)
    return net


def _named(depth: int) -> Any:
    def make(**kwargs: Any) -> DenseNet:
        return get_densenet(depth, **kwargs)

    make.__name__ = f"densenet{depth}"
    make.__doc__ = (
        f"DenseNet-{depth} (``get_densenet({depth}, **kwargs)``): pretrained, ctx, root, classes."
    )
    return make


densenet121 = _named(121)
densenet161 = _named(161)
densenet169 = _named(169)
densenet201 = _named(201)
