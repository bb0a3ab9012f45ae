"""ResNet v1 (He et al. 2015) and v2 (pre-activation, He et al. 2016), with MXNet
1.9.1's blocks, prefixes and parameter names (``resnetv10_stage1_conv0_weight``).

Every residual block is made with an empty prefix, so its layers are numbered in
its stage's scope (``stage2_conv0`` ... across the stage's blocks), as MXNet's are.
"""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ...block import HybridBlock
from ...nn import (
    Activation,
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    HybridSequential,
    MaxPool2D,
)
from ._common import load_pretrained

__all__ = [
    "ResNetV1",
    "ResNetV2",
    "BasicBlockV1",
    "BasicBlockV2",
    "BottleneckV1",
    "BottleneckV2",
    "resnet18_v1",
    "resnet34_v1",
    "resnet50_v1",
    "resnet101_v1",
    "resnet152_v1",
    "resnet18_v2",
    "resnet34_v2",
    "resnet50_v2",
    "resnet101_v2",
    "resnet152_v2",
    "get_resnet",
]


def _conv3x3(channels: int, stride: int, in_channels: int) -> Conv2D:
    """A 3x3 convolution without bias, padded to keep the size at stride 1."""
    return Conv2D(
        channels, kernel_size=3, strides=stride, padding=1, use_bias=False, in_channels=in_channels
    )


def _projection(channels: int, stride: int, in_channels: int) -> Conv2D:
    """The 1x1 strided convolution that brings a shortcut to the body's shape."""
    return Conv2D(channels, kernel_size=1, strides=stride, use_bias=False, in_channels=in_channels)


# ---------------------------------------------------------------------------
# v1 blocks: convolution, batch norm, ReLU; the ReLU after the sum
# ---------------------------------------------------------------------------


class _BlockV1(HybridBlock):
    """``relu(body(x) + shortcut(x))``; the shortcut is ``downsample`` or ``x``."""

    def _make_downsample(
        self, channels: int, stride: int, downsample: bool, in_channels: int
    ) -> None:
        if downsample:
            self.downsample = HybridSequential(prefix="")
            self.downsample.add(_projection(channels, stride, in_channels))
            self.downsample.add(BatchNorm())
        else:
            self.downsample = None

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``relu(body(x) + shortcut(x))``."""
        residual = x if self.downsample is None else self.downsample(x)
        return F.Activation(self.body(x) + residual, act_type="relu")


class BasicBlockV1(_BlockV1):
    """ResNet v1's basic block (18 and 34 layers): two 3x3 convolutions.

    Parameters
    ----------
    channels : int
        Output channels.
    stride : int
        Stride of the first convolution (and of the projection).
    downsample : bool
        Whether the shortcut is a projection (1x1 convolution and batch norm).
    in_channels : int
        Input channels (0: inferred at the first call).

    Notes
    -----
    Gradients flow through the body's layers and the identity (or projection)
    shortcut, summed.
    """

    def __init__(
        self,
        channels: int,
        stride: int,
        downsample: bool = False,
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.body = HybridSequential(prefix="")
        self.body.add(
            _conv3x3(channels, stride, in_channels),
            BatchNorm(),
            Activation("relu"),
            _conv3x3(channels, 1, channels),
            BatchNorm(),
        )
        self._make_downsample(channels, stride, downsample, in_channels)


class BottleneckV1(_BlockV1):
    """ResNet v1's bottleneck block (50 layers and more): 1x1 (strided), 3x3 and
    1x1 convolutions, the middle one at a quarter of ``channels``.

    Parameters are those of ``BasicBlockV1``. As in MXNet, the two 1x1
    convolutions of the body have biases and infer their input channels.
    """

    def __init__(
        self,
        channels: int,
        stride: int,
        downsample: bool = False,
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.body = HybridSequential(prefix="")
        self.body.add(
            Conv2D(channels // 4, kernel_size=1, strides=stride),
            BatchNorm(),
            Activation("relu"),
            _conv3x3(channels // 4, 1, channels // 4),
            BatchNorm(),
            Activation("relu"),
            Conv2D(channels, kernel_size=1, strides=1),
            BatchNorm(),
        )
        self._make_downsample(channels, stride, downsample, in_channels)


# ---------------------------------------------------------------------------
# v2 blocks: batch norm and ReLU before each convolution; nothing after the sum
# ---------------------------------------------------------------------------


class _BlockV2(HybridBlock):
    """``convs(relu(bn1(x))) + shortcut``, the shortcut being ``x`` or the
    projection of ``relu(bn1(x))``."""

    _convs: tuple[str, ...] = ()

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """The pre-activation residual: see the class docstring."""
        residual = x
        x = F.Activation(self.bn1(x), act_type="relu")
        if self.downsample is not None:
            residual = self.downsample(x)
        for i, conv in enumerate(self._convs):
            if i:
                x = F.Activation(getattr(self, f"bn{i + 1}")(x), act_type="relu")
            x = getattr(self, conv)(x)
        return x + residual


class BasicBlockV2(_BlockV2):
    """ResNet v2's basic block: (batch norm, ReLU, 3x3 convolution) twice, plus
    the shortcut.

    Parameters
    ----------
    channels : int
        Output channels.
    stride : int
        Stride of the first convolution (and of the projection).
    downsample : bool
        Whether the shortcut is a 1x1 projection of the pre-activated input.
    in_channels : int
        Input channels (0: inferred at the first call).

    Notes
    -----
    Gradients flow through the convolutions and the shortcut, summed.
    """

    _convs = ("conv1", "conv2")

    def __init__(
        self,
        channels: int,
        stride: int,
        downsample: bool = False,
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bn1 = BatchNorm()
        self.conv1 = _conv3x3(channels, stride, in_channels)
        self.bn2 = BatchNorm()
        self.conv2 = _conv3x3(channels, 1, channels)
        self.downsample = _projection(channels, stride, in_channels) if downsample else None


class BottleneckV2(_BlockV2):
    """ResNet v2's bottleneck block: pre-activated 1x1, 3x3 (strided) and 1x1
    convolutions without biases, the middle one at a quarter of ``channels``.

    Parameters are those of ``BasicBlockV2``.
    """

    _convs = ("conv1", "conv2", "conv3")

    def __init__(
        self,
        channels: int,
        stride: int,
        downsample: bool = False,
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bn1 = BatchNorm()
        self.conv1 = Conv2D(channels // 4, kernel_size=1, strides=1, use_bias=False)
        self.bn2 = BatchNorm()
        self.conv2 = _conv3x3(channels // 4, stride, channels // 4)
        self.bn3 = BatchNorm()
        self.conv3 = Conv2D(channels, kernel_size=1, strides=1, use_bias=False)
        self.downsample = _projection(channels, stride, in_channels) if downsample else None


# ---------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------


class _ResNet(HybridBlock):
    """The stages shared by both versions: ``features`` then the ``output`` Dense."""

    def _make_stage(
        self, block: type, count: int, channels: int, stride: int, index: int, in_channels: int
    ) -> HybridSequential:
        """Stage ``index``: ``count`` blocks, the first one strided and projecting
        when the channel count changes."""
        stage = HybridSequential(prefix=f"stage{index}_")
        with stage.name_scope():
            stage.add(
                block(channels, stride, channels != in_channels, in_channels=in_channels, prefix="")
            )
            for _ in range(count - 1):
                stage.add(block(channels, 1, False, in_channels=channels, prefix=""))
        return stage

    def _add_stem(self, channels: int, thumbnail: bool) -> None:
        """A 3x3 convolution for small (CIFAR-sized) images, else the 7x7/2
        convolution, batch norm, ReLU and 3x3/2 max pooling."""
        if thumbnail:
            self.features.add(_conv3x3(channels, 1, 0))
        else:
            self.features.add(
                Conv2D(channels, 7, 2, 3, use_bias=False),
                BatchNorm(),
                Activation("relu"),
                MaxPool2D(3, 2, 1),
            )

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


class ResNetV1(_ResNet):
    """ResNet v1 (post-activation residual blocks).

    Parameters
    ----------
    block : type
        ``BasicBlockV1`` or ``BottleneckV1``.
    layers : list of int
        Blocks per stage.
    channels : list of int
        Channels of the stem and of each stage (one more than ``layers``).
    classes : int
        Number of classes of the output layer.
    thumbnail : bool
        Use a single 3x3 convolution as the stem (for 32x32 images).

    Notes
    -----
    Gradients are those of the composed layers.
    """

    def __init__(
        self,
        block: type,
        layers: list[int],
        channels: list[int],
        classes: int = 1000,
        thumbnail: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        assert len(layers) == len(channels) - 1
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            self._add_stem(channels[0], thumbnail)
            for i, count in enumerate(layers):
                self.features.add(
                    self._make_stage(
                        block, count, channels[i + 1], 1 if i == 0 else 2, i + 1, channels[i]
                    )
                )
            self.features.add(GlobalAvgPool2D())
            self.output = Dense(classes, in_units=channels[-1])


class ResNetV2(_ResNet):
    """ResNet v2 (pre-activation residual blocks): the input is first normalised
    by a batch norm without scale or shift, and the features end with batch
    norm, ReLU, global average pooling and flattening.

    Parameters are those of ``ResNetV1`` (with ``BasicBlockV2``/``BottleneckV2``).
    """

    def __init__(
        self,
        block: type,
        layers: list[int],
        channels: list[int],
        classes: int = 1000,
        thumbnail: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        assert len(layers) == len(channels) - 1
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            self.features.add(BatchNorm(scale=False, center=False))
            self._add_stem(channels[0], thumbnail)
            in_channels = channels[0]
            for i, count in enumerate(layers):
                self.features.add(
                    self._make_stage(
                        block, count, channels[i + 1], 1 if i == 0 else 2, i + 1, in_channels
                    )
                )
                in_channels = channels[i + 1]
            self.features.add(BatchNorm(), Activation("relu"), GlobalAvgPool2D(), Flatten())
            self.output = Dense(classes, in_units=in_channels)


# depth: (block kind, blocks per stage, channels of the stem and the stages)
resnet_spec = {
    18: ("basic_block", [2, 2, 2, 2], [64, 64, 128, 256, 512]),
    34: ("basic_block", [3, 4, 6, 3], [64, 64, 128, 256, 512]),
    50: ("bottle_neck", [3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
    101: ("bottle_neck", [3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
    152: ("bottle_neck", [3, 8, 36, 3], [64, 256, 512, 1024, 2048]),
}
resnet_net_versions = [ResNetV1, ResNetV2]
resnet_block_versions = [
    {"basic_block": BasicBlockV1, "bottle_neck": BottleneckV1},
    {"basic_block": BasicBlockV2, "bottle_neck": BottleneckV2},
]


def get_resnet(
    version: int,
    num_layers: int,
    pretrained: bool = False,
    ctx: Any = None,
    root: str | None = None,
    **kwargs: Any,
) -> HybridBlock:
    """ResNet ``version`` (1 or 2) of depth ``num_layers`` (18, 34, 50, 101, 152).

    Parameters
    ----------
    version : int
        1 (post-activation) or 2 (pre-activation).
    num_layers : int
        The depth.
    pretrained : bool
        Load ``resnet<depth>_v<version>``'s weights from ``root``.
    ctx : Context
        Where the loaded weights go.
    root : str
        The folder of pretrained weights (default ``~/.mxnet/models``).
    **kwargs
        ``classes``, ``thumbnail``, ``prefix``, ``params``.
    """
    assert num_layers in resnet_spec, (
        f"Invalid number of layers: {num_layers}. Options are {list(resnet_spec.keys())}"
    )
    assert 1 <= version <= 2, f"Invalid resnet version: {version}. Options are 1 and 2."
    kind, layers, channels = resnet_spec[num_layers]
    net = resnet_net_versions[version - 1](
        resnet_block_versions[version - 1][kind], layers, channels, **kwargs
    )
    if pretrained:
        load_pretrained(net, f"resnet{num_layers}_v{version}", ctx or cpu(), root)
    return net


def _named(version: int, depth: int) -> Any:
    def make(**kwargs: Any) -> HybridBlock:
        return get_resnet(version, depth, **kwargs)

    make.__name__ = f"resnet{depth}_v{version}"
    make.__doc__ = (
        f"ResNet-{depth} v{version} (``get_resnet({version}, {depth}, "
        "**kwargs)``): pretrained, ctx, root, classes, thumbnail."
    )
    return make


resnet18_v1 = _named(1, 18)
resnet34_v1 = _named(1, 34)
resnet50_v1 = _named(1, 50)
resnet101_v1 = _named(1, 101)
resnet152_v1 = _named(1, 152)
resnet18_v2 = _named(2, 18)
resnet34_v2 = _named(2, 34)
resnet50_v2 = _named(2, 50)
resnet101_v2 = _named(2, 101)
resnet152_v2 = _named(2, 152)
