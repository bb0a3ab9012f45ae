"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018) at width
multipliers 1.0/0.75/0.5/0.25, with MXNet 1.9.1's layers and parameter names
(``mobilenet0_conv0_weight``, ``mobilenetv20_features_linearbottleneck0_conv0_weight``)."""

from __future__ import annotations

from typing import Any

from ....context import cpu
from ...block import HybridBlock
from ...nn import Activation, BatchNorm, Conv2D, Dense, Flatten, GlobalAvgPool2D, HybridSequential
from ._common import load_pretrained

__all__ = [
    "MobileNet",
    "MobileNetV2",
    "RELU6",
    "LinearBottleneck",
    "mobilenet1_0",
    "mobilenet0_75",
    "mobilenet0_5",
    "mobilenet0_25",
    "mobilenet_v2_1_0",
    "mobilenet_v2_0_75",
    "mobilenet_v2_0_5",
    "mobilenet_v2_0_25",
    "get_mobilenet",
    "get_mobilenet_v2",
]


class RELU6(HybridBlock):
    """``min(max(x, 0), 6)``.

    Notes
    -----
    Computes ``clip(x, 0, 6)``; gradient ``g`` where ``0 < x < 6``, else 0.
    """

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``clip(x, 0, 6)``."""
        return F.clip(x, 0, 6, name="relu6")


def _add_conv(
    out: HybridSequential,
    channels: int = 1,
    kernel: int = 1,
    stride: int = 1,
    pad: int = 0,
    num_group: int = 1,
    active: bool = True,
    relu6: bool = False,
) -> None:
    """Add a convolution without bias, its batch norm and (if ``active``) ReLU or
    ReLU6 to ``out``. The layers are made in the caller's name scope."""
    out.add(Conv2D(channels, kernel, stride, pad, groups=num_group, use_bias=False))
    out.add(BatchNorm(scale=True))
    if active:
        out.add(RELU6() if relu6 else Activation("relu"))


def _add_conv_dw(
    out: HybridSequential, dw_channels: int, channels: int, stride: int, relu6: bool = False
) -> None:
    """A depthwise-separable convolution: 3x3 depthwise (strided), then 1x1."""
    _add_conv(out, dw_channels, kernel=3, stride=stride, pad=1, num_group=dw_channels, relu6=relu6)
    _add_conv(out, channels, relu6=relu6)


class LinearBottleneck(HybridBlock):
    """MobileNet v2's inverted residual: 1x1 expansion by ``t`` with ReLU6, 3x3
    depthwise (strided) with ReLU6, 1x1 linear projection to ``channels``; the
    input is added when the stride is 1 and the channel count does not change.

    Parameters
    ----------
    in_channels : int
        Input channels.
    channels : int
        Output channels.
    t : int
        Expansion factor.
    stride : int
        Stride of the depthwise convolution.

    Notes
    -----
    Gradients are those of the composed layers and of the shortcut's sum.
    """

    def __init__(self, in_channels: int, channels: int, t: int, stride: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_shortcut = stride == 1 and in_channels == channels
        with self.name_scope():
            # the container gets its own prefix but, as in MXNet, its layers are made
            # in this block's scope (linearbottleneck0_conv0_...)
            self.out = HybridSequential()
            expanded = in_channels * t
            _add_conv(self.out, expanded, relu6=True)
            _add_conv(
                self.out, expanded, kernel=3, stride=stride, pad=1, num_group=expanded, relu6=True
            )
            _add_conv(self.out, channels, active=False, relu6=True)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``out(x) + x`` with the shortcut, else ``out(x)``."""
        out = self.out(x)
        if self.use_shortcut:
            out = F.elemwise_add(out, x)
        return out


class MobileNet(HybridBlock):
    """MobileNet v1: a 3x3/2 convolution, thirteen depthwise-separable
    convolutions, global average pooling and the ``output`` Dense.

    Parameters
    ----------
    multiplier : float
        Width multiplier of every layer's channels.
    classes : int
        Number of classes.

    Notes
    -----
    Gradients are those of the composed layers.
    """

    def __init__(self, multiplier: float = 1.0, classes: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        dw_channels = [
            int(c * multiplier) for c in [32, 64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024]
        ]
        channels = [
            int(c * multiplier) for c in [64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2
        ]
        strides = [1, 2] * 3 + [1] * 5 + [2, 1]
        with self.name_scope():
            self.features = HybridSequential(prefix="")
            _add_conv(self.features, channels=int(32 * multiplier), kernel=3, pad=1, stride=2)
            for dw, out, stride in zip(dw_channels, channels, strides):
                _add_conv_dw(self.features, dw_channels=dw, channels=out, stride=stride)
            self.features.add(GlobalAvgPool2D(), Flatten())
            self.output = Dense(classes)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


class MobileNetV2(HybridBlock):
    """MobileNet v2: a 3x3/2 convolution, seventeen linear bottlenecks, a 1x1
    convolution to 1280 channels (more above multiplier 1), global average
    pooling, and a 1x1 convolution to ``classes`` flattened as ``output``.

    Parameters
    ----------
    multiplier : float
        Width multiplier.
    classes : int
        Number of classes.

    Notes
    -----
    Gradients are those of the composed layers.
    """

    def __init__(self, multiplier: float = 1.0, classes: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        in_channels = [
            int(c * multiplier)
            for c in [32] + [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3
        ]
        channels = [
            int(c * multiplier)
            for c in [16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]
        ]
        expansions = [1] + [6] * 16
        strides = [1, 2] * 2 + [1, 1, 2] + [1] * 6 + [2] + [1] * 3
        with self.name_scope():
            self.features = HybridSequential(prefix="features_")
            with self.features.name_scope():
                _add_conv(
                    self.features, int(32 * multiplier), kernel=3, stride=2, pad=1, relu6=True
                )
                for cin, cout, t, stride in zip(in_channels, channels, expansions, strides):
                    self.features.add(
                        LinearBottleneck(in_channels=cin, channels=cout, t=t, stride=stride)
                    )
                last = int(1280 * multiplier) if multiplier > 1.0 else 1280
                _add_conv(self.features, last, relu6=True)
                self.features.add(GlobalAvgPool2D())
            self.output = HybridSequential(prefix="output_")
            with self.output.name_scope():
                self.output.add(Conv2D(classes, 1, use_bias=False, prefix="pred_"), Flatten())

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``output(features(x))``: class scores, (N, classes)."""
        return self.output(self.features(x))


def _suffix(multiplier: float) -> str:
    """MXNet's spelling of a multiplier in file names: 1.0, 0.75, 0.5, 0.25."""
    text = f"{multiplier:.2f}"
    return text[:-1] if text in ("1.00", "0.50") else text


def get_mobilenet(
    multiplier: float,
    pretrained: bool = False,
    ctx: Any = None,
    root: str | None = None,
    **kwargs: Any,
) -> MobileNet:
    """MobileNet v1 at width ``multiplier``; ``pretrained`` loads
    ``mobilenet<multiplier>``'s weights from ``root`` (default ``~/.mxnet/models``)."""
    net = MobileNet(multiplier, **kwargs)
    if pretrained:
        load_pretrained(net, f"mobilenet{_suffix(multiplier)}", ctx or cpu(), root)
    return net


def get_mobilenet_v2(
    multiplier: float,
    pretrained: bool = False,
    ctx: Any = None,
    root: str | None = None,
    **kwargs: Any,
) -> MobileNetV2:
    """MobileNet v2 at width ``multiplier``; ``pretrained`` loads
    ``mobilenetv2_<multiplier>``'s weights from ``root`` (default ``~/.mxnet/models``)."""
    net = MobileNetV2(multiplier, **kwargs)
    if pretrained:
        load_pretrained(net, f"mobilenetv2_{_suffix(multiplier)}", ctx or cpu(), root)
    return net


def _named(version: int, multiplier: float) -> Any:
    build = get_mobilenet if version == 1 else get_mobilenet_v2

    def make(**kwargs: Any) -> HybridBlock:
        return build(multiplier, **kwargs)

    tag = str(multiplier).replace(".", "_")
    make.__name__ = f"mobilenet{tag}" if version == 1 else f"mobilenet_v2_{tag}"
    make.__doc__ = (
        f"MobileNet v{version} at width {multiplier} "
        f"(``{build.__name__}({multiplier}, **kwargs)``): pretrained, ctx, root, "
        "classes."
    )
    return make


mobilenet1_0 = _named(1, 1.0)
mobilenet0_75 = _named(1, 0.75)
mobilenet0_5 = _named(1, 0.5)
mobilenet0_25 = _named(1, 0.25)
mobilenet_v2_1_0 = _named(2, 1.0)
mobilenet_v2_0_75 = _named(2, 0.75)
mobilenet_v2_0_5 = _named(2, 0.5)
mobilenet_v2_0_25 = _named(2, 0.25)
