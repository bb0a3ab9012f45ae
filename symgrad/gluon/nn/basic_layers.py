"""Basic Gluon layers: containers, Dense, Dropout, the normalisation layers,
Embedding, Flatten, Lambda, HybridLambda and Identity.

Every layer is a thin HybridBlock over registered ops called through ``F``
(``symgrad.ndarray`` imperatively, ``symgrad.symbol`` when traced): no layer
computes anything itself. Constructor arguments, defaults, parameter names,
prefixes and ``repr`` follow MXNet 1.9.1's ``mxnet.gluon.nn``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ... import ndarray
from ..block import Block, HybridBlock
from .activations import optional_activation

__all__ = [
    "Sequential",
    "HybridSequential",
    "Dense",
    "Dropout",
    "BatchNorm",
    "LayerNorm",
    "InstanceNorm",
    "GroupNorm",
    "Embedding",
    "Flatten",
    "Lambda",
    "HybridLambda",
    "Identity",
]


def _chain(blocks: Any, x: Any, args: tuple) -> Any:
    """Call ``blocks`` in order, each on the previous one's output; a block that
    returns several outputs passes the rest on as extra arguments (MXNet's rule)."""
    for block in blocks:
        x = block(x, *args)
        args = ()
        if isinstance(x, (tuple, list)):
            args = tuple(x[1:])
            x = x[0]
    if args:
        return (x, *args)
    return x


# ---------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------


class _Stack:
    """What Sequential and HybridSequential share: children kept in the order
    added, indexed and sliced like a list (a slice is a new stack of the same
    class sharing the layers)."""

    _children: Any
    _prefix: str

    def add(self, *blocks: Block) -> None:
        """Append ``blocks`` to the stack, in order."""
        for block in blocks:
            self.register_child(block)  # type: ignore[attr-defined]

    def __getitem__(self, key: int | slice) -> Any:
        layers = list(self._children.values())[key]
        if isinstance(layers, list):
            net = type(self)(prefix=self._prefix)  # type: ignore[call-arg]
            with net.name_scope():  # type: ignore[attr-defined]
                net.add(*layers)
            return net
        return layers

    def __len__(self) -> int:
        return len(self._children)


class Sequential(_Stack, Block):
    """Stacks Blocks: each is called on the output of the one before.

    Parameters
    ----------
    prefix : str, optional
        Prefix of the names of this block's parameters and children.
    params : ParameterDict, optional
        Parameters to share.

    Examples
    --------
    >>> net = Sequential()
    >>> with net.name_scope():
    ...     net.add(Dense(10, activation='relu'), Dense(2))
    >>> net
    Sequential(
      (0): Dense(None -> 10, Activation(relu))
      (1): Dense(None -> 2, linear)
    )
    """

    def forward(self, x: Any, *args: Any) -> Any:
        """The output of the last block (see :func:`_chain` for several outputs)."""
        return _chain(self._children.values(), x, args)

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """Hybridize the children; warns, as MXNet does, when every child is a
        HybridBlock (a HybridSequential would hybridize the whole stack)."""
        children = list(self._children.values())
        if children and all(isinstance(c, HybridBlock) for c in children):
            warnings.warn(
                f"All children of this Sequential layer '{self.prefix}' are "
                "HybridBlocks. Consider using HybridSequential for the best "
                "performance.",
                stacklevel=2,
            )
        super().hybridize(active, **kwargs)


class HybridSequential(_Stack, HybridBlock):
    """Stacks HybridBlocks; hybridizing it traces the whole stack as one graph.

    Parameters
    ----------
    prefix : str, optional
        Prefix of the names of this block's parameters and children.
    params : ParameterDict, optional
        Parameters to share.
    """

    def hybrid_forward(self, F: Any, x: Any, *args: Any) -> Any:
        """The output of the last block (see :func:`_chain` for several outputs)."""
        return _chain(self._children.values(), x, args)


# ---------------------------------------------------------------------------
# Dense, Dropout
# ---------------------------------------------------------------------------


class Dense(HybridBlock):
    """A fully connected layer: ``activation(dot(x, weight.T) + bias)``.

    Parameters
    ----------
    units : int
        Output size.
    activation : str, optional
        An ``Activation`` applied to the result (none by default: linear).
    use_bias : bool
        Whether to add ``bias``.
    flatten : bool
        Collapse every input axis after the first into one (True), or apply the
        layer to the last axis only (False).
    dtype : str or numpy dtype
        The parameters' type.
    weight_initializer, bias_initializer : Initializer or str
        Initializers of ``weight`` (units, in_units) and ``bias`` (units,).
    in_units : int
        Input size; 0 infers it from the first input.

    Notes
    -----
    Computes ``FullyConnected``; its gradients are ``gx = g W``, ``gW = g^T x``,
    ``gb = sum(g)`` over the batch.

    Examples
    --------
    >>> import symgrad as mx
    >>> layer = Dense(3, weight_initializer='ones')
    >>> layer
    Dense(None -> 3, linear)
    >>> layer.initialize()
    >>> layer(mx.nd.array([[1.0, 2.0]]))
    <BLANKLINE>
    [[3. 3. 3.]]
    <NDArray 1x3 @cpu(0)>
    >>> layer
    Dense(2 -> 3, linear)
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        flatten: bool = True,
        dtype: Any = "float32",
        weight_initializer: Any = None,
        bias_initializer: Any = "zeros",
        in_units: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self._units = units
            self._in_units = in_units
            self._flatten = flatten
            self.weight = self.params.get(
                "weight",
                shape=(units, in_units),
                init=weight_initializer,
                dtype=dtype,
                allow_deferred_init=True,
            )
            if use_bias:
                self.bias = self.params.get(
                    "bias",
                    shape=(units,),
                    init=bias_initializer,
                    dtype=dtype,
                    allow_deferred_init=True,
                )
            else:
                self.bias = None
            self.act = optional_activation(activation)

    def hybrid_forward(self, F: Any, x: Any, weight: Any, bias: Any = None) -> Any:
        """``activation(FullyConnected(x, weight, bias))``."""
        out = F.FullyConnected(
            x,
            weight,
            bias,
            no_bias=bias is None,
            num_hidden=self._units,
            flatten=self._flatten,
            name="fwd",
        )
        if self.act is not None:
            out = self.act(out)
        return out

    def __repr__(self) -> str:
        shape = self.weight.shape
        mapping = f"{shape[1] if shape[1] else None} -> {shape[0]}"
        return f"{type(self).__name__}({mapping}, {self.act if self.act else 'linear'})"


class Dropout(HybridBlock):
    """Zeroes elements with probability ``rate`` in training and scales the rest by
    ``1 / (1 - rate)``; the identity in prediction.

    Parameters
    ----------
    rate : float
        Fraction of the input to drop.
    axes : tuple of int
        Axes along which one mask value is shared (variational dropout).

    Notes
    -----
    Computes ``Dropout``; its gradient is ``g * mask`` with the mask drawn forward.
    """

    def __init__(self, rate: float, axes: tuple[int, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rate = rate
        self._axes = axes

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``Dropout(x)``, or ``identity(x)`` when ``rate`` is 0."""
        if self._rate > 0:
            return F.Dropout(x, p=self._rate, axes=self._axes, name="fwd")
        return F.identity(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p = {self._rate}, axes={self._axes})"


# ---------------------------------------------------------------------------
# normalisation layers
# ---------------------------------------------------------------------------


def _add_gamma_beta(
    block: HybridBlock,
    size: int,
    center: bool,
    scale: bool,
    gamma_initializer: Any,
    beta_initializer: Any,
    fixed_when_off: bool = False,
) -> None:
    """Give a normalisation layer its ``gamma`` (learned if ``scale``) and ``beta``
    (learned if ``center``) of shape (size,), 0 inferred at the first call;
    ``fixed_when_off`` makes a switched-off one non-differentiable (BatchNorm's
    rule in MXNet) rather than only ``grad_req='null'``."""
    block.gamma = block.params.get(
        "gamma",
        grad_req="write" if scale else "null",
        shape=(size,),
        init=gamma_initializer,
        allow_deferred_init=True,
        differentiable=scale or not fixed_when_off,
    )
    block.beta = block.params.get(
        "beta",
        grad_req="write" if center else "null",
        shape=(size,),
        init=beta_initializer,
        allow_deferred_init=True,
        differentiable=center or not fixed_when_off,
    )


def _settings_repr(block: Any, tail: str = "") -> str:
    content = ", ".join(f"{key}={value!r}" for key, value in block._kwargs.items())
    return f"{type(block).__name__}({content}{tail}"


class BatchNorm(HybridBlock):
    """Batch normalisation: normalise each channel (``axis``) over the batch with
    the batch's statistics in training, the running statistics in prediction, then
    scale by ``gamma`` and shift by ``beta``.

    Parameters
    ----------
    axis : int
        The channel axis.
    momentum : float
        Weight of the old value in the running statistics' update.
    epsilon : float
        Added to the variance before the square root.
    center, scale : bool
        Learn ``beta`` / ``gamma``; when False they stay at their initial values
        (zeros / ones) with ``grad_req='null'``.
    use_global_stats : bool
        Use the running statistics in training too.
    beta_initializer, gamma_initializer, running_mean_initializer,
    running_variance_initializer : Initializer or str
        Initializers of the four (channels,) parameters.
    in_channels : int
        Number of channels; 0 infers it from the first input.

    Notes
    -----
    ``running_mean`` and ``running_var`` are parameters with ``grad_req='null'``
    (MXNet's auxiliary states). Computes ``BatchNorm``; in training its data gradient
    is ``gamma rstd (g - mean(g) - xhat mean(g xhat))``, ``ggamma = sum(g xhat)``,
    ``gbeta = sum(g)``.
    """

    def __init__(
        self,
        axis: int = 1,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        use_global_stats: bool = False,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        running_mean_initializer: Any = "zeros",
        running_variance_initializer: Any = "ones",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._kwargs = {
            "axis": axis,
            "eps": epsilon,
            "momentum": momentum,
            "fix_gamma": not scale,
            "use_global_stats": use_global_stats,
        }
        if in_channels != 0:
            self.in_channels = in_channels
        _add_gamma_beta(
            self,
            in_channels,
            center,
            scale,
            gamma_initializer,
            beta_initializer,
            fixed_when_off=True,
        )
        self.running_mean = self.params.get(
            "running_mean",
            grad_req="null",
            shape=(in_channels,),
            init=running_mean_initializer,
            allow_deferred_init=True,
            differentiable=False,
        )
        self.running_var = self.params.get(
            "running_var",
            grad_req="null",
            shape=(in_channels,),
            init=running_variance_initializer,
            allow_deferred_init=True,
            differentiable=False,
        )

    def cast(self, dtype: Any) -> None:
        """Cast the parameters; float16 stays float32, as MXNet keeps it."""
        if np.dtype(dtype).name == "float16":
            dtype = "float32"
        super().cast(dtype)

    def hybrid_forward(
        self, F: Any, x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any
    ) -> Any:
        """``BatchNorm(x, gamma, beta, running_mean, running_var)``."""
        return F.BatchNorm(x, gamma, beta, running_mean, running_var, name="fwd", **self._kwargs)

    def __repr__(self) -> str:
        channels = self.gamma.shape[0]
        return _settings_repr(self, f", in_channels={channels if channels else None})")


class LayerNorm(HybridBlock):
    """Layer normalisation: normalise along ``axis`` to zero mean and unit
    variance per sample, then scale by ``gamma`` and shift by ``beta``.

    Parameters
    ----------
    axis : int
        The axis normalised over (the last by default).
    epsilon : float
        Added to the variance before the square root.
    center, scale : bool
        Learn ``beta`` / ``gamma`` (else they keep their initial values).
    beta_initializer, gamma_initializer : Initializer or str
        Their initializers.
    in_channels : int
        Size of ``axis``; 0 infers it from the first input.

    Notes
    -----
    Computes ``LayerNorm``; ``gx = rstd (gg - mean(gg) - xhat mean(gg xhat))`` with
    ``gg = g gamma``, ``ggamma = sum(g xhat)``, ``gbeta = sum(g)``.
    """

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        in_channels: int = 0,
        prefix: str | None = None,
        params: Any = None,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        self._kwargs = {"eps": epsilon, "axis": axis, "center": center, "scale": scale}
        self._axis = axis
        self._epsilon = epsilon
        self._center = center
        self._scale = scale
        _add_gamma_beta(self, in_channels, center, scale, gamma_initializer, beta_initializer)

    def hybrid_forward(self, F: Any, data: Any, gamma: Any, beta: Any) -> Any:
        """``LayerNorm(data, gamma, beta)``."""
        return F.LayerNorm(data, gamma, beta, axis=self._axis, eps=self._epsilon)

    def __repr__(self) -> str:
        return _settings_repr(self, f", in_channels={self.gamma.shape[0]})")


class InstanceNorm(HybridBlock):
    """Instance normalisation: normalise each channel of each sample over its
    spatial axes, then scale by ``gamma`` and shift by ``beta`` per channel.

    Parameters
    ----------
    axis : int
        The channel axis (1 by default).
    epsilon : float
        Added to the variance before the square root.
    center, scale : bool
        Learn ``beta`` / ``gamma`` (``scale`` is False by default, as MXNet).
    beta_initializer, gamma_initializer : Initializer or str
        Their initializers.
    in_channels : int
        Number of channels; 0 infers it from the first input.

    Notes
    -----
    Computes ``InstanceNorm`` (with ``SwapAxis`` around it for another channel
    axis); ``gx = rstd (gg - mean(gg) - xhat mean(gg xhat))`` per (sample, channel).
    """

    def __init__(
        self,
        axis: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = False,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        in_channels: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._kwargs = {"eps": epsilon, "axis": axis, "center": center, "scale": scale}
        self._axis = axis
        self._epsilon = epsilon
        _add_gamma_beta(self, in_channels, center, scale, gamma_initializer, beta_initializer)

    def hybrid_forward(self, F: Any, x: Any, gamma: Any, beta: Any) -> Any:
        """``InstanceNorm(x, gamma, beta)`` with the channel axis moved to 1."""
        if self._axis == 1:
            return F.InstanceNorm(x, gamma, beta, name="fwd", eps=self._epsilon)
        moved = F.swapaxes(x, dim1=1, dim2=self._axis)
        out = F.InstanceNorm(moved, gamma, beta, name="fwd", eps=self._epsilon)
        return F.swapaxes(out, dim1=1, dim2=self._axis)

    def __repr__(self) -> str:
        return _settings_repr(self, f", in_channels={self.gamma.shape[0]})")


class GroupNorm(HybridBlock):
    """Group normalisation: split the channels (axis 1) into ``num_groups``
    groups, normalise each group of each sample, then scale and shift per group.

    Parameters
    ----------
    num_groups : int
        Number of channel groups; ``gamma`` and ``beta`` have one value per group
        (MXNet 1.x).
    epsilon : float
        Added to the variance before the square root.
    center, scale : bool
        Learn ``beta`` / ``gamma`` (else they keep their initial values).
    beta_initializer, gamma_initializer : Initializer or str
        Their initializers.

    Notes
    -----
    Computes ``GroupNorm``; on the (N, groups, rest) view its gradient is
    ``rstd (gg - mean(gg) - xhat mean(gg xhat))`` with ``gg = g gamma``.
    """

    def __init__(
        self,
        num_groups: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        prefix: str | None = None,
        params: Any = None,
    ) -> None:
        super().__init__(prefix=prefix, params=params)
        self._kwargs = {"eps": epsilon, "num_groups": num_groups, "center": center, "scale": scale}
        self._num_groups = num_groups
        self._epsilon = epsilon
        _add_gamma_beta(self, num_groups, center, scale, gamma_initializer, beta_initializer)

    def hybrid_forward(self, F: Any, data: Any, gamma: Any, beta: Any) -> Any:
        """``GroupNorm(data, gamma, beta)``."""
        return F.GroupNorm(data, gamma, beta, num_groups=self._num_groups, eps=self._epsilon)

    def __repr__(self) -> str:
        return _settings_repr(self, ")")


# ---------------------------------------------------------------------------
# Embedding, Flatten, Lambda, HybridLambda, Identity
# ---------------------------------------------------------------------------


class Embedding(HybridBlock):
    """Maps integer indices to rows of a (input_dim, output_dim) ``weight``.

    Parameters
    ----------
    input_dim : int
        Size of the vocabulary (indices lie in ``[0, input_dim)``).
    output_dim : int
        Size of each row.
    dtype : str or numpy dtype
        The weight's type.
    weight_initializer : Initializer or str, optional
        The weight's initializer.
    sparse_grad : bool
        Accepted for MXNet's scripts; the gradient is dense here.

    Notes
    -----
    Computes ``Embedding``; ``gweight`` adds each row of ``g`` into the row its
    index names; the indices get no gradient.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dtype: Any = "float32",
        weight_initializer: Any = None,
        sparse_grad: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._kwargs = {
            "input_dim": input_dim,
            "output_dim": output_dim,
            "dtype": dtype,
            "sparse_grad": sparse_grad,
        }
        self.weight = self.params.get(
            "weight",
            shape=(input_dim, output_dim),
            init=weight_initializer,
            dtype=dtype,
            allow_deferred_init=True,
        )

    def hybrid_forward(self, F: Any, x: Any, weight: Any) -> Any:
        """``Embedding(x, weight)``."""
        return F.Embedding(x, weight, name="fwd", **self._kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._kwargs['input_dim']} -> "
            f"{self._kwargs['output_dim']}, {self._kwargs['dtype']})"
        )


class Flatten(HybridBlock):
    """Collapses every axis after the first: (N, ...) -> (N, prod(...)).

    Notes
    -----
    Computes ``Flatten``; its gradient reshapes ``g`` back to the input's shape.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``Flatten(x)``."""
        return F.Flatten(x)

    def __repr__(self) -> str:
        return type(self).__name__


class Lambda(Block):
    """Wraps a function of NDArrays (or the name of an ``mx.nd`` function) as a
    Block.

    Parameters
    ----------
    function : str or callable
        The name of a function in ``mx.nd`` (``'tanh'``), or a callable taking and
        returning NDArrays.
    prefix : str, optional
        Prefix of the block's name.
    """

    def __init__(self, function: str | Callable[..., Any], prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        if isinstance(function, str):
            if not hasattr(ndarray, function):
                raise AssertionError(f"Function name {function} is not found in ndarray.")
            self._func = getattr(ndarray, function)
            self._func_name = function
        elif callable(function):
            self._func = function
            self._func_name = function.__name__
        else:
            raise ValueError(
                f"Unrecognized function in lambda: {function} of type {type(function)}"
            )

    def forward(self, *args: Any) -> Any:
        """The function applied to the inputs."""
        return self._func(*args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._func_name})"


class HybridLambda(HybridBlock):
    """Wraps a function ``f(F, x, *args)`` (or the name of an op in ``F``) as a
    HybridBlock, so it hybridizes with its neighbours.

    Parameters
    ----------
    function : str or callable
        The name of an op present in both ``mx.nd`` and ``mx.sym``, or a callable
        ``f(F, x, *args)``.
    prefix : str, optional
        Prefix of the block's name.
    """

    def __init__(self, function: str | Callable[..., Any], prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)
        if isinstance(function, str):
            from ... import symbol

            if not (hasattr(ndarray, function) and hasattr(symbol, function)):
                raise AssertionError(f"Function name {function} is not found in symbol/ndarray.")
            name = function
            self._func = lambda F, *args: getattr(F, name)(*args)
            self._func_name = function
        elif callable(function):
            self._func = function
            self._func_name = function.__name__
        else:
            raise ValueError(
                f"Unrecognized function in lambda: {function} of type {type(function)}"
            )

    def hybrid_forward(self, F: Any, x: Any, *args: Any) -> Any:
        """The function applied to ``F`` and the inputs."""
        return self._func(F, x, *args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._func_name})"


class Identity(HybridBlock):
    """Returns its input unchanged (MXNet 1.9.1 has it in ``gluon.contrib.nn``;
    ``contrib.nn.Identity`` is this class).

    Parameters
    ----------
    prefix : str, optional
        Prefix of the block's name.
    params : ParameterDict, optional
        Parameters to share (it has none).
    """

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``x``."""
        return x
