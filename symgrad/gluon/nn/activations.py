"""Activation layers: Activation, LeakyReLU, PReLU, ELU, SELU, Swish and GELU, as
MXNet 1.9.1's ``mxnet.gluon.nn`` has them, each calling registered ops through
``F``."""

from __future__ import annotations

from typing import Any

from ..block import HybridBlock

__all__ = ["Activation", "LeakyReLU", "PReLU", "ELU", "SELU", "Swish", "GELU"]


class Activation(HybridBlock):
    """An elementwise activation by name.

    Parameters
    ----------
    activation : str
        One of ``'relu'``, ``'sigmoid'``, ``'tanh'``, ``'softrelu'``,
        ``'softsign'`` (and ``'log_sigmoid'``, ``'mish'``).

    Notes
    -----
    Computes ``Activation``; its gradient is the named function's derivative times
    ``g``. The block is named after the activation (``relu0_``), as in MXNet.
    """

    def __init__(self, activation: str, **kwargs: Any) -> None:
        # set before Block.__init__, which names the block by _alias()
        self._act_type = activation
        super().__init__(**kwargs)

    def _alias(self) -> str:
        return self._act_type

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``Activation(x, act_type=activation)``."""
        return F.Activation(x, act_type=self._act_type, name="fwd")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._act_type})"


def optional_activation(activation: str | None) -> Activation | None:
    """The ``Activation`` a layer applies after its op (prefixed ``<name>_``, as
    MXNet's Dense and Conv layers make it inside their name scope), or None for a
    linear layer."""
    return None if activation is None else Activation(activation, prefix=activation + "_")


class LeakyReLU(HybridBlock):
    """``x`` where ``x > 0``, else ``alpha x``.

    Parameters
    ----------
    alpha : float
        The slope below zero (>= 0).

    Notes
    -----
    Computes ``LeakyReLU(act_type='leaky')``; gradient ``g (x > 0 ? 1 : alpha)``.
    """

    def __init__(self, alpha: float, **kwargs: Any) -> None:
        if alpha < 0:
            raise AssertionError("Slope coefficient for LeakyReLU must be no less than 0.")
        super().__init__(**kwargs)
        self._alpha = alpha

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``LeakyReLU(x, act_type='leaky', slope=alpha)``."""
        return F.LeakyReLU(x, act_type="leaky", slope=self._alpha, name="fwd")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._alpha})"


class PReLU(HybridBlock):
    """Leaky rectifier with a learned slope ``alpha`` per channel (axis 1).

    Parameters
    ----------
    alpha_initializer : Initializer, optional
        Initializer of ``alpha`` (``Constant(0.25)`` by default).
    in_channels : int
        Number of slopes: 1 (shared by all channels) or the channel count.

    Notes
    -----
    Computes ``LeakyReLU(act_type='prelu')``; ``gx = g (x > 0 ? 1 : alpha)``,
    ``galpha = sum(g min(x, 0))`` per channel.
    """

    def __init__(self, alpha_initializer: Any = None, in_channels: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if alpha_initializer is None:
            from ... import initializer

            alpha_initializer = initializer.Constant(0.25)
        with self.name_scope():
            self.alpha = self.params.get("alpha", shape=(in_channels,), init=alpha_initializer)

    def hybrid_forward(self, F: Any, x: Any, alpha: Any) -> Any:
        """``LeakyReLU(x, alpha, act_type='prelu')``."""
        return F.LeakyReLU(x, alpha, act_type="prelu", name="fwd")


class ELU(HybridBlock):
    """Exponential linear unit: ``x`` where ``x > 0``, else ``alpha (e^x - 1)``.

    Parameters
    ----------
    alpha : float
        Scale of the negative part.

    Notes
    -----
    Computes ``LeakyReLU(act_type='elu')``; gradient ``g (x > 0 ? 1 : alpha e^x)``.
    """

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._alpha = alpha

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``LeakyReLU(x, act_type='elu', slope=alpha)``."""
        return F.LeakyReLU(x, act_type="elu", slope=self._alpha)


class SELU(HybridBlock):
    """Scaled exponential linear unit: ``lambda (x > 0 ? x : alpha (e^x - 1))`` with
    the fixed constants of Klambauer et al.

    Notes
    -----
    Computes ``LeakyReLU(act_type='selu')``; gradient
    ``g lambda (x > 0 ? 1 : alpha e^x)``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``LeakyReLU(x, act_type='selu')``."""
        return F.LeakyReLU(x, act_type="selu", name="fwd")


class Swish(HybridBlock):
    """``x sigmoid(beta x)``.

    Parameters
    ----------
    beta : float
        Scale inside the sigmoid.

    Notes
    -----
    Computes ``x * sigmoid(beta x)``; gradient
    ``g (s + beta x s (1 - s))`` with ``s = sigmoid(beta x)``.
    """

    def __init__(self, beta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._beta = beta

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``x * sigmoid(beta * x)``."""
        return x * F.sigmoid(self._beta * x, name="fwd")


class GELU(HybridBlock):
    """Gaussian error linear unit, exact: ``x Phi(x) = x (1 + erf(x / sqrt 2)) / 2``.

    Notes
    -----
    Computes ``LeakyReLU(act_type='gelu')``; gradient ``g (Phi(x) + x phi(x))``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``LeakyReLU(x, act_type='gelu')``."""
        return F.LeakyReLU(x, act_type="gelu", name="fwd")
