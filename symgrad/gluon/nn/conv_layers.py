"""Convolution, transposed convolution, pooling and reflection-padding layers, as
MXNet 1.9.1's ``mxnet.gluon.nn`` has them, over channel-first data (NCW, NCHW,
NCDHW), each calling a registered op through ``F``."""

from __future__ import annotations

from typing import Any

from ..block import HybridBlock
from .activations import optional_activation

__all__ = [
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPool3D",
    "AvgPool1D",
    "AvgPool2D",
    "AvgPool3D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPool3D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalAvgPool3D",
    "ReflectionPad2D",
]

_LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


def _tuple(value: Any, rank: int, name: str) -> tuple[int, ...]:
    """An int repeated ``rank`` times, or a sequence of ``rank`` ints."""
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise AssertionError(f"{name} must be a number or a list of {rank} ints")
    return value


def _check_layout(layout: str, rank: int) -> None:
    if layout != _LAYOUTS[rank]:
        raise ValueError(
            f"layout {layout!r} is not supported: symgrad's {rank}-D "
            f"convolutions and pooling take channel-first data "
            f"({_LAYOUTS[rank]!r})"
        )


# ---------------------------------------------------------------------------
# convolutions
# ---------------------------------------------------------------------------


class _Conv(HybridBlock):
    """Shared body of the convolution layers: parameters, the op call and repr.

    ``op_name`` is ``'Convolution'`` (weight (channels, in_channels/groups,
    *kernel)) or ``'Deconvolution'`` (weight (in_channels, channels/groups,
    *kernel), with ``adj`` as the output padding).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: tuple[int, ...],
        strides: tuple[int, ...],
        padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
        layout: str,
        in_channels: int = 0,
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        op_name: str = "Convolution",
        adj: tuple[int, ...] | None = None,
        prefix: str | None = None,
        params: Any = None,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        _check_layout(layout, len(kernel_size))
        with self.name_scope():
            self._channels = channels
            self._in_channels = in_channels
            self._op_name = op_name
            self._kwargs = {
                "kernel": kernel_size,
                "stride": strides,
                "dilate": dilation,
                "pad": padding,
                "num_filter": channels,
                "num_group": groups,
                "no_bias": not use_bias,
                "layout": layout,
            }
            if adj is not None:
                self._kwargs["adj"] = adj
            if op_name == "Convolution":
                weight_shape = (channels, in_channels // groups) + tuple(kernel_size)
            else:
                weight_shape = (in_channels, channels // groups) + tuple(kernel_size)
            self.weight = self.params.get(
                "weight", shape=weight_shape, init=weight_initializer, allow_deferred_init=True
            )
            if use_bias:
                self.bias = self.params.get(
                    "bias", shape=(channels,), init=bias_initializer, allow_deferred_init=True
                )
            else:
                self.bias = None
            self.act = optional_activation(activation)

    def _alias(self) -> str:
        return "conv"

    def hybrid_forward(self, F: Any, x: Any, weight: Any, bias: Any = None) -> Any:
        """``activation(Convolution(x, weight, bias))`` (or Deconvolution)."""
        op = getattr(F, self._op_name)
        if bias is None:
            out = op(x, weight, name="fwd", **self._kwargs)
        else:
            out = op(x, weight, bias, name="fwd", **self._kwargs)
        if self.act is not None:
            out = self.act(out)
        return out

    def __repr__(self) -> str:
        kwargs = self._kwargs
        rank = len(kwargs["kernel"])
        text = (
            f"{type(self).__name__}({{mapping}}, kernel_size={kwargs['kernel']}, "
            f"stride={kwargs['stride']}"
        )
        if kwargs["pad"] != (0,) * rank:
            text += f", padding={kwargs['pad']}"
        if kwargs["dilate"] != (1,) * rank:
            text += f", dilation={kwargs['dilate']}"
        if kwargs["num_group"] != 1:
            text += f", groups={kwargs['num_group']}"
        if self.bias is None:
            text += ", bias=False"
        if self.act is not None:
            text += f", {self.act}"
        # MXNet maps the weight's axis 1 to its axis 0, for transposed
        # convolutions too (whose weight is (in, out/groups, ...)).
        shape = self.weight.shape
        return text.format(mapping=f"{shape[1] if shape[1] else None} -> {shape[0]}") + ")"


class Conv1D(_Conv):
    """1-D convolution over (N, C, W) data.

    Parameters
    ----------
    channels : int
        Number of output channels.
    kernel_size, strides, padding, dilation : int or tuple of 1 int
        Window size, step, zero padding on both sides and kernel dilation.
    groups : int
        Number of channel groups (each sees in_channels/groups inputs).
    layout : str
        ``'NCW'`` only.
    activation : str, optional
        An ``Activation`` applied to the result.
    use_bias : bool
        Whether to add a bias per channel.
    weight_initializer, bias_initializer : Initializer or str
        Initializers of ``weight`` and ``bias``.
    in_channels : int
        Number of input channels; 0 infers it from the first input.

    Notes
    -----
    Computes ``Convolution``; ``gx`` is the transposed convolution of ``g`` with the
    weight, ``gw`` the correlation of ``g`` with ``x``, ``gb = sum(g)`` per channel.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        layout: str = "NCW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            channels,
            _tuple(kernel_size, 1, "kernel_size"),
            _tuple(strides, 1, "strides"),
            _tuple(padding, 1, "padding"),
            _tuple(dilation, 1, "dilation"),
            groups,
            layout,
            in_channels,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            **kwargs,
        )


class Conv2D(_Conv):
    """2-D convolution over (N, C, H, W) data.

    Parameters are those of :class:`Conv1D` with 2-tuples and layout ``'NCHW'``.

    Notes
    -----
    Computes ``Convolution``; gradients as :class:`Conv1D`.

    Examples
    --------
    >>> import symgrad as mx
    >>> conv = Conv2D(4, 3, padding=1)
    >>> conv.initialize()
    >>> conv(mx.nd.ones((1, 2, 5, 5))).shape
    (1, 4, 5, 5)
    >>> conv
    Conv2D(2 -> 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """

    def __init__(
        self,
        channels: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: Any = (0, 0),
        dilation: Any = (1, 1),
        groups: int = 1,
        layout: str = "NCHW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            channels,
            _tuple(kernel_size, 2, "kernel_size"),
            _tuple(strides, 2, "strides"),
            _tuple(padding, 2, "padding"),
            _tuple(dilation, 2, "dilation"),
            groups,
            layout,
            in_channels,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            **kwargs,
        )


class Conv3D(_Conv):
    """3-D convolution over (N, C, D, H, W) data.

    Parameters are those of :class:`Conv1D` with 3-tuples and layout ``'NCDHW'``.

    Notes
    -----
    Computes ``Convolution``; gradients as :class:`Conv1D`.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: Any,
        strides: Any = (1, 1, 1),
        padding: Any = (0, 0, 0),
        dilation: Any = (1, 1, 1),
        groups: int = 1,
        layout: str = "NCDHW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            channels,
            _tuple(kernel_size, 3, "kernel_size"),
            _tuple(strides, 3, "strides"),
            _tuple(padding, 3, "padding"),
            _tuple(dilation, 3, "dilation"),
            groups,
            layout,
            in_channels,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            **kwargs,
        )


class _ConvTranspose(_Conv):
    """Shared constructor of the transposed convolutions (``Deconvolution``)."""

    def __init__(
        self,
        rank: int,
        channels: int,
        kernel_size: Any,
        strides: Any,
        padding: Any,
        output_padding: Any,
        dilation: Any,
        groups: int,
        layout: str,
        activation: str | None,
        use_bias: bool,
        weight_initializer: Any,
        bias_initializer: Any,
        in_channels: int,
        **kwargs: Any,
    ) -> None:
        output_padding = _tuple(output_padding, rank, "output_padding")
        super().__init__(
            channels,
            _tuple(kernel_size, rank, "kernel_size"),
            _tuple(strides, rank, "strides"),
            _tuple(padding, rank, "padding"),
            _tuple(dilation, rank, "dilation"),
            groups,
            layout,
            in_channels,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            op_name="Deconvolution",
            adj=output_padding,
            **kwargs,
        )
        self.outpad = output_padding


class Conv1DTranspose(_ConvTranspose):
    """1-D transposed convolution (the gradient of a convolution, used forwards)
    over (N, C, W) data.

    Parameters are those of :class:`Conv1D`, plus ``output_padding``: extra size
    added to one side of the output.

    Notes
    -----
    Computes ``Deconvolution``; ``gx`` is the convolution of ``g`` with the
    weight, ``gw`` the correlation of ``x`` with ``g``, ``gb = sum(g)`` per channel.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: Any,
        strides: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        layout: str = "NCW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            1,
            channels,
            kernel_size,
            strides,
            padding,
            output_padding,
            dilation,
            groups,
            layout,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            in_channels,
            **kwargs,
        )


class Conv2DTranspose(_ConvTranspose):
    """2-D transposed convolution over (N, C, H, W) data.

    Parameters are those of :class:`Conv1DTranspose` with 2-tuples.

    Notes
    -----
    Computes ``Deconvolution``; gradients as :class:`Conv1DTranspose`.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: Any,
        strides: Any = (1, 1),
        padding: Any = (0, 0),
        output_padding: Any = (0, 0),
        dilation: Any = (1, 1),
        groups: int = 1,
        layout: str = "NCHW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            2,
            channels,
            kernel_size,
            strides,
            padding,
            output_padding,
            dilation,
            groups,
            layout,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            in_channels,
            **kwargs,
        )


class Conv3DTranspose(_ConvTranspose):
    """3-D transposed convolution over (N, C, D, H, W) data.

    Parameters are those of :class:`Conv1DTranspose` with 3-tuples.

    Notes
    -----
    Computes ``Deconvolution``; gradients as :class:`Conv1DTranspose`.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: Any,
        strides: Any = (1, 1, 1),
        padding: Any = (0, 0, 0),
        output_padding: Any = (0, 0, 0),
        dilation: Any = (1, 1, 1),
        groups: int = 1,
        layout: str = "NCDHW",
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            3,
            channels,
            kernel_size,
            strides,
            padding,
            output_padding,
            dilation,
            groups,
            layout,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            in_channels,
            **kwargs,
        )


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------


class _Pooling(HybridBlock):
    """Shared body of the pooling layers: ``Pooling`` with MXNet's attributes.

    ``strides`` defaults to ``pool_size``; ``ceil_mode`` selects the 'full'
    (ceil) output-size convention instead of 'valid' (floor).
    """

    def __init__(
        self,
        pool_size: tuple[int, ...],
        strides: Any,
        padding: Any,
        ceil_mode: bool,
        global_pool: bool,
        pool_type: str,
        layout: str,
        count_include_pad: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        rank = len(pool_size)
        _check_layout(layout, rank)
        if strides is None:
            strides = pool_size
        self._kwargs = {
            "kernel": tuple(pool_size),
            "stride": _tuple(strides, rank, "strides"),
            "pad": _tuple(padding, rank, "padding"),
            "global_pool": global_pool,
            "pool_type": pool_type,
            "layout": layout,
            "pooling_convention": "full" if ceil_mode else "valid",
        }
        if count_include_pad is not None:
            self._kwargs["count_include_pad"] = count_include_pad

    def _alias(self) -> str:
        return "pool"

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``Pooling(x)`` with this layer's window."""
        return F.Pooling(x, name="fwd", **self._kwargs)

    def __repr__(self) -> str:
        kwargs = self._kwargs
        return (
            f"{type(self).__name__}(size={kwargs['kernel']}, stride={kwargs['stride']}, "
            f"padding={kwargs['pad']}, "
            f"ceil_mode={kwargs['pooling_convention'] == 'full'}, "
            f"global_pool={kwargs['global_pool']}, pool_type={kwargs['pool_type']}, "
            f"layout={kwargs['layout']})"
        )


_POOL_NOTES = """
    Notes
    -----
    Computes ``Pooling``; max pooling sends ``g`` to each window's (first) maximum,
    average pooling spreads ``g / count`` over the window.
"""


def _with_pool_notes(cls: type) -> type:
    """Append the pooling gradient notes to a layer's docstring (a class body
    that starts with a string expression such as ``"..." + _POOL_NOTES`` has no
    docstring at all: only a plain literal is one)."""
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + _POOL_NOTES
    return cls


@_with_pool_notes
class MaxPool1D(_Pooling):
    """Max pooling over (N, C, W) data.

    Parameters
    ----------
    pool_size, strides, padding : int or tuple of 1 int
        Window size, step (``pool_size`` when None) and padding on both sides.
    layout : str
        ``'NCW'`` only.
    ceil_mode : bool
        Round the output size up ('full' convention) instead of down.
    """

    def __init__(
        self,
        pool_size: Any = 2,
        strides: Any = None,
        padding: Any = 0,
        layout: str = "NCW",
        ceil_mode: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _tuple(pool_size, 1, "pool_size"),
            strides,
            padding,
            ceil_mode,
            False,
            "max",
            layout,
            **kwargs,
        )


@_with_pool_notes
class MaxPool2D(_Pooling):
    """Max pooling over (N, C, H, W) data; parameters as :class:`MaxPool1D` with
    2-tuples and layout ``'NCHW'``."""

    def __init__(
        self,
        pool_size: Any = (2, 2),
        strides: Any = None,
        padding: Any = 0,
        layout: str = "NCHW",
        ceil_mode: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _tuple(pool_size, 2, "pool_size"),
            strides,
            padding,
            ceil_mode,
            False,
            "max",
            layout,
            **kwargs,
        )


@_with_pool_notes
class MaxPool3D(_Pooling):
    """Max pooling over (N, C, D, H, W) data; parameters as :class:`MaxPool1D` with
    3-tuples and layout ``'NCDHW'``."""

    def __init__(
        self,
        pool_size: Any = (2, 2, 2),
        strides: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        layout: str = "NCDHW",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _tuple(pool_size, 3, "pool_size"),
            strides,
            padding,
            ceil_mode,
            False,
            "max",
            layout,
            **kwargs,
        )


@_with_pool_notes
class AvgPool1D(_Pooling):
    """Average pooling over (N, C, W) data; parameters as :class:`MaxPool1D`, plus
    ``count_include_pad``: whether padded zeros count in each window's average.
    """

    def __init__(
        self,
        pool_size: Any = 2,
        strides: Any = None,
        padding: Any = 0,
        layout: str = "NCW",
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _tuple(pool_size, 1, "pool_size"),
            strides,
            padding,
            ceil_mode,
            False,
            "avg",
            layout,
            count_include_pad,
            **kwargs,
        )


@_with_pool_notes
class AvgPool2D(_Pooling):
    """Average pooling over (N, C, H, W) data; parameters as :class:`AvgPool1D`
    with 2-tuples and layout ``'NCHW'``."""

    def __init__(
        self,
        pool_size: Any = (2, 2),
        strides: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        layout: str = "NCHW",
        count_include_pad: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _tuple(pool_size, 2, "pool_size"),
            strides,
            padding,
            ceil_mode,
            False,
            "avg",
            layout,
            count_include_pad,
            **kwargs,
        )


@_with_pool_notes
class AvgPool3D(_Pooling):
    """Average pooling over (N, C, D, H, W) data; parameters as :class:`AvgPool1D`
    with 3-tuples and layout ``'NCDHW'``."""

    def __init__(
        self,
        pool_size: Any = (2, 2, 2),
        strides: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        layout: str = "NCDHW",
        count_include_pad: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            _tuple(pool_size, 3, "pool_size"),
            strides,
            padding,
            ceil_mode,
            False,
            "avg",
            layout,
            count_include_pad,
            **kwargs,
        )


class _GlobalPooling(_Pooling):
    """A pooling window covering all of each channel's spatial axes."""

    def __init__(self, rank: int, pool_type: str, layout: str, **kwargs: Any) -> None:
        super().__init__((1,) * rank, None, 0, True, True, pool_type, layout, **kwargs)


@_with_pool_notes
class GlobalMaxPool1D(_GlobalPooling):
    """The maximum of each channel over W: (N, C, W) -> (N, C, 1)."""

    def __init__(self, layout: str = "NCW", **kwargs: Any) -> None:
        super().__init__(1, "max", layout, **kwargs)


@_with_pool_notes
class GlobalMaxPool2D(_GlobalPooling):
    """The maximum of each channel over (H, W): -> (N, C, 1, 1)."""

    def __init__(self, layout: str = "NCHW", **kwargs: Any) -> None:
        super().__init__(2, "max", layout, **kwargs)


@_with_pool_notes
class GlobalMaxPool3D(_GlobalPooling):
    """The maximum of each channel over (D, H, W): -> (N, C, 1, 1, 1)."""

    def __init__(self, layout: str = "NCDHW", **kwargs: Any) -> None:
        super().__init__(3, "max", layout, **kwargs)


@_with_pool_notes
class GlobalAvgPool1D(_GlobalPooling):
    """The mean of each channel over W: (N, C, W) -> (N, C, 1)."""

    def __init__(self, layout: str = "NCW", **kwargs: Any) -> None:
        super().__init__(1, "avg", layout, **kwargs)


@_with_pool_notes
class GlobalAvgPool2D(_GlobalPooling):
    """The mean of each channel over (H, W): -> (N, C, 1, 1)."""

    def __init__(self, layout: str = "NCHW", **kwargs: Any) -> None:
        super().__init__(2, "avg", layout, **kwargs)


@_with_pool_notes
class GlobalAvgPool3D(_GlobalPooling):
    """The mean of each channel over (D, H, W): -> (N, C, 1, 1, 1)."""

    def __init__(self, layout: str = "NCDHW", **kwargs: Any) -> None:
        super().__init__(3, "avg", layout, **kwargs)


# ---------------------------------------------------------------------------
# padding
# ---------------------------------------------------------------------------


class ReflectionPad2D(HybridBlock):
    """Pads the two spatial axes of (N, C, H, W) data with their reflection
    (the edge not repeated).

    Parameters
    ----------
    padding : int or tuple of 8 int
        Padding on every side of H and W, or MXNet's ``pad_width`` (before and
        after, for each of the four axes; the first four must be 0).

    Notes
    -----
    Computes ``pad(mode='reflect')``; its gradient folds ``g`` back onto the
    elements each padded value copies.
    """

    def __init__(self, padding: Any = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = (0, 0, 0, 0, padding, padding, padding, padding)
        if len(padding) != 8:
            raise AssertionError("padding must be an int or a tuple of 8 ints")
        self._padding = tuple(padding)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``pad(x, mode='reflect', pad_width=padding)``."""
        return F.pad(x, mode="reflect", pad_width=self._padding)
