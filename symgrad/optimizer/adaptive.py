"""Optimizers with per-element step sizes: Adam, AdamW, AdaGrad, AdaDelta, Adamax,
Nadam, RMSProp, FTRL and LAMB.

Where MXNet has an update op, the optimizer calls it through ``mx.nd`` with
``out=weight``; the others write their states and weight with ``[:]``, as MXNet's
Python optimizers do.
"""

from __future__ import annotations

import math
from typing import Any

from .. import ndarray as nd
from ..ndarray import NDArray
from .optimizer import Optimizer, register, zeros_like_weight

__all__ = [
    "Adam",
    "AdamW",
    "AdaGrad",
    "AdaDelta",
    "Adamax",
    "Nadam",
    "RMSProp",
    "Ftrl",
    "FTRL",
    "LAMB",
]


def _two_zero_states(weight: NDArray) -> tuple[NDArray, NDArray]:
    return (zeros_like_weight(weight), zeros_like_weight(weight))


@register
class Adam(Optimizer):
    """Adam: with t the parameter's update count and
    ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``, ``g = clip(rescale_grad *
    grad + wd * weight)``, ``mean = beta1 mean + (1 - beta1) g``,
    ``var = beta2 var + (1 - beta2) g^2``, ``weight -= lr_t mean / (sqrt(var) +
    epsilon)`` (``adam_update``)."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        lazy_update: bool = True,
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = lazy_update

    def create_state(self, index: int, weight: NDArray) -> tuple[NDArray, NDArray]:
        """``(mean, var)``, zeros."""
        return _two_zero_states(weight)

    def _corrected_lr(self, index: int) -> float:
        t = self._index_update_count[index]
        return self._get_lr(index) * math.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One Adam step (see the class)."""
        self._update_count(index)
        lr, wd = self._corrected_lr(index), self._get_wd(index)
        mean, var = state
        nd.adam_update(
            weight,
            grad,
            mean,
            var,
            out=weight,
            lazy_update=self.lazy_update,
            lr=lr,
            wd=wd,
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            **self._grad_kwargs(),
        )


@register
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), through MXNet's
    contrib ``adamw_update``: with ``lr_t`` as Adam's (or ``lr`` without
    ``correct_bias``), ``weight -= lr_t (mean / (sqrt(var) + epsilon) + wd weight)``.
    MXNet 1.9.1 has the op but no optimizer class; this one follows MXNet 2's.

    Parameters
    ----------
    correct_bias : bool
        Scale the step by Adam's bias correction.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        correct_bias: bool = True,
        **kwargs: Any,
    ):
        super().__init__(
            learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon, **kwargs
        )
        self.correct_bias = correct_bias

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One AdamW step (see the class)."""
        self._update_count(index)
        lr = self._corrected_lr(index) if self.correct_bias else self._get_lr(index)
        mean, var = state
        kwargs = {"clip_gradient": self.clip_gradient} if self.clip_gradient else {}
        scale = nd.full((1,), self.rescale_grad, dtype=weight.dtype)
        nd.adamw_update(
            weight,
            grad,
            mean,
            var,
            scale,
            out=weight,
            lr=1.0,
            eta=lr,
            wd=self._get_wd(index),
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            **kwargs,
        )


@register
class AdaGrad(Optimizer):
    """AdaGrad: ``g = clip(rescale_grad * grad)``, ``history += g^2``,
    ``weight -= lr (g / sqrt(history + eps) + wd weight)``.

    Parameters
    ----------
    eps : float
        Added inside the square root for stability.
    """

    def __init__(self, eps: float = 1e-7, **kwargs: Any):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index: int, weight: NDArray) -> NDArray:
        """The sum of squared gradients, zeros."""
        return zeros_like_weight(weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One AdaGrad step (see the class)."""
        lr, wd = self._count_update(index)
        grad = self._prepared_grad(grad)
        state[:] = state + nd.square(grad)
        div = grad / nd.sqrt(state + self.float_stable_eps)
        weight[:] = weight + (div + weight * wd) * -lr


@register
class AdaDelta(Optimizer):
    """AdaDelta (no learning rate): ``g = clip(rescale_grad * grad)``,
    ``acc_g = rho acc_g + (1 - rho) g^2``, ``delta = sqrt(acc_delta + epsilon) /
    sqrt(acc_g + epsilon) g``, ``acc_delta = rho acc_delta + (1 - rho) delta^2``,
    ``weight -= delta + wd weight``."""

    def __init__(self, rho: float = 0.90, epsilon: float = 1e-5, **kwargs: Any):
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def create_state(self, index: int, weight: NDArray) -> tuple[NDArray, NDArray]:
        """``(acc_g, acc_delta)``, zeros."""
        return _two_zero_states(weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One AdaDelta step (see the class)."""
        wd = self._get_wd(index)
        self._update_count(index)
        grad = self._prepared_grad(grad)
        acc_g, acc_delta = state
        acc_g[:] = acc_g * self.rho + (1.0 - self.rho) * grad * grad
        delta = nd.sqrt(acc_delta + self.epsilon) / nd.sqrt(acc_g + self.epsilon) * grad
        acc_delta[:] = acc_delta * self.rho + (1.0 - self.rho) * delta * delta
        weight[:] = weight - (delta + wd * weight)


@register
class Adamax(Optimizer):
    """Adamax (Adam with the infinity norm): ``g = clip(rescale_grad * grad + wd
    weight)``, ``m = beta1 m + (1 - beta1) g``, ``u = max(beta2 u, |g|)``,
    ``weight -= lr / (1 - beta1^t) * m / u``."""

    def __init__(
        self, learning_rate: float = 0.002, beta1: float = 0.9, beta2: float = 0.999, **kwargs: Any
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2

    def create_state(self, index: int, weight: NDArray) -> tuple[NDArray, NDArray]:
        """``(m, u)``, zeros."""
        return _two_zero_states(weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One Adamax step (see the class)."""
        lr, wd = self._count_update(index)
        lr /= 1.0 - self.beta1 ** self._index_update_count[index]
        grad = self._prepared_grad(grad, weight, wd)
        m, u = state
        m[:] = m * self.beta1 + (1.0 - self.beta1) * grad
        u[:] = nd.maximum(self.beta2 * u, nd.abs(grad))
        weight[:] = weight - lr * m / u


@register
class Nadam(Optimizer):
    """Nesterov Adam (Dozat): Adam whose momentum follows the schedule
    ``mu_t = beta1 (1 - 0.96^(t schedule_decay) / 2)``, with
    ``m_bar = (1 - mu_t) g / (1 - prod mu) + mu_{t+1} m / (1 - prod mu mu_{t+1})``
    and ``weight -= lr m_bar / (sqrt(v / (1 - beta2^t)) + epsilon)``. As in MXNet,
    the running product of the schedule is one for all parameters."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        schedule_decay: float = 0.004,
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.schedule_decay = schedule_decay
        self.m_schedule = 1.0

    def create_state(self, index: int, weight: NDArray) -> tuple[NDArray, NDArray]:
        """``(m, v)``, zeros."""
        return _two_zero_states(weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One Nadam step (see the class)."""
        lr, wd = self._count_update(index)
        t = self._index_update_count[index]
        grad = self._prepared_grad(grad, weight, wd)
        momentum_t = self.beta1 * (1.0 - 0.5 * pow(0.96, t * self.schedule_decay))
        momentum_next = self.beta1 * (1.0 - 0.5 * pow(0.96, (t + 1) * self.schedule_decay))
        self.m_schedule = self.m_schedule * momentum_t
        m_schedule_next = self.m_schedule * momentum_next
        m, v = state
        m[:] = m * self.beta1 + (1.0 - self.beta1) * grad
        v[:] = v * self.beta2 + (1.0 - self.beta2) * grad * grad
        grad_prime = grad / (1.0 - self.m_schedule)
        m_prime = m / (1.0 - m_schedule_next)
        v_prime = v / (1.0 - pow(self.beta2, t))
        m_bar = (1.0 - momentum_t) * grad_prime + momentum_next * m_prime
        weight[:] = weight - lr * m_bar / (nd.sqrt(v_prime) + self.epsilon)


@register
class RMSProp(Optimizer):
    """RMSProp (Tieleman and Hinton; ``rmsprop_update``) or, with ``centered``,
    Graves' centred version (``rmspropalex_update``), both with
    ``g = clip(rescale_grad * grad + wd * weight)`` and weights clipped to
    ``clip_weights`` when set.

    Parameters
    ----------
    gamma1 : float
        Decay of the squared-gradient average (and of the gradient average).
    gamma2 : float
        Momentum of the centred version.
    epsilon : float
        Added inside the square root.
    centered : bool
        Use the centred version.
    clip_weights : float, optional
        Clip weights to [-clip_weights, clip_weights] after each step.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        gamma1: float = 0.9,
        gamma2: float = 0.9,
        epsilon: float = 1e-8,
        centered: bool = False,
        clip_weights: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.centered = centered
        self.epsilon = epsilon
        self.clip_weights = clip_weights

    def create_state(self, index: int, weight: NDArray) -> tuple:
        """``(n,)``, or ``(n, g, delta)`` when centred; zeros."""
        count = 3 if self.centered else 1
        return tuple(zeros_like_weight(weight) for _ in range(count))

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One RMSProp step (see the class)."""
        lr, wd = self._count_update(index)
        kwargs = dict(self._grad_kwargs(), gamma1=self.gamma1, epsilon=self.epsilon)
        if self.clip_weights:
            kwargs["clip_weights"] = self.clip_weights
        if self.centered:
            n, g, delta = state
            nd.rmspropalex_update(
                weight, grad, n, g, delta, out=weight, lr=lr, wd=wd, gamma2=self.gamma2, **kwargs
            )
        else:
            nd.rmsprop_update(weight, grad, state[0], out=weight, lr=lr, wd=wd, **kwargs)


@register
class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al.; ``ftrl_update``): with
    ``g = clip(rescale_grad * grad)``, ``z += g - (sqrt(n + g^2) - sqrt(n)) weight /
    lr``, ``n += g^2``, ``weight = (sign(z) lamda1 - z) / ((beta + sqrt(n)) / lr +
    wd)`` where ``|z| > lamda1``, else 0.

    Parameters
    ----------
    lamda1 : float
        L1 regularisation strength.
    beta : float
        Per-coordinate learning-rate offset.
    """

    def __init__(
        self, lamda1: float = 0.01, learning_rate: float = 0.1, beta: float = 1, **kwargs: Any
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1 = lamda1
        self.beta = beta

    def create_state(self, index: int, weight: NDArray) -> tuple[NDArray, NDArray]:
        """``(z, n)``, zeros."""
        return _two_zero_states(weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One FTRL step (see the class)."""
        lr, wd = self._count_update(index)
        z, n = state
        nd.ftrl_update(
            weight,
            grad,
            z,
            n,
            out=weight,
            lr=lr,
            wd=wd,
            lamda1=self.lamda1,
            beta=self.beta,
            **self._grad_kwargs(),
        )


FTRL = Ftrl


@register
class LAMB(Optimizer):
    """LAMB (You et al.): Adam's direction ``d = mean_hat / (sqrt(var_hat) +
    epsilon) + wd weight`` (``lamb_update_phase1``), then ``weight -= lr (r1 / r2)
    d`` with ``r1 = ||weight||`` clamped to [lower_bound, upper_bound] and
    ``r2 = ||d||`` (``lamb_update_phase2``)."""

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-6,
        lower_bound: float | None = None,
        upper_bound: float | None = None,
        bias_correction: bool = True,
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = bias_correction
        self.aggregate_num = 45  # MXNet's multi-tensor group size; kept for its pickle

    def create_state(self, index: int, weight: NDArray) -> tuple[NDArray, NDArray]:
        """``(mean, var)``, zeros."""
        return _two_zero_states(weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One LAMB step (see the class)."""
        lr, wd = self._count_update(index)
        t = self._index_update_count[index]
        mean, var = state
        direction = nd.lamb_update_phase1(
            weight,
            grad,
            mean,
            var,
            t=t,
            wd=wd,
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
            bias_correction=self.bias_correction,
            **self._grad_kwargs(),
        )
        bounds = {}
        if self.lower_bound:
            bounds["lower_bound"] = self.lower_bound
        if self.upper_bound:
            bounds["upper_bound"] = self.upper_bound
        nd.lamb_update_phase2(
            weight, direction, weight.norm(), direction.norm(), lr=lr, out=weight, **bounds
        )
