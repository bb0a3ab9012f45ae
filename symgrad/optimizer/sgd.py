"""Optimizers of the SGD family: SGD, NAG, Signum, DCASGD and SGLD.

Where MXNet has an update op, the optimizer calls it through ``mx.nd`` with
``out=weight`` (its states are updated in place by the op).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ndarray as nd
from ..ndarray import NDArray
from .optimizer import Optimizer, register, zeros_like_weight

__all__ = ["SGD", "NAG", "Signum", "DCASGD", "SGLD"]


class _MomentumMultiPrecision(Optimizer):
    """SGD and NAG keep multi-precision states as ``(momentum, weight32)``, the
    order MXNet's mp update ops take them in."""

    momentum: float

    def create_state(self, index: int, weight: NDArray) -> NDArray | None:
        """A zero momentum of the weight's shape, or None without momentum."""
        return zeros_like_weight(weight) if self.momentum != 0.0 else None

    def create_state_multi_precision(self, index: int, weight: NDArray) -> Any:
        """``(momentum or None, float32 master copy)`` for float16 weights under
        ``multi_precision``; ``create_state`` otherwise."""
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            return (self.create_state(index, master), master)
        return super().create_state_multi_precision(index, weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One step on ``weight`` (see the class)."""
        self._update_impl(index, weight, grad, state, multi_precision=False)

    def update_multi_precision(
        self, index: int, weight: NDArray, grad: NDArray, state: Any
    ) -> None:
        """``update``, on the float32 master copy for float16 weights under
        ``multi_precision``."""
        use_mp = self.multi_precision and weight.dtype == np.float16
        self._update_impl(index, weight, grad, state, multi_precision=use_mp)

    def _update_impl(self, index, weight, grad, state, multi_precision):
        raise NotImplementedError()

    def _step_kwargs(self) -> dict:
        kwargs = self._grad_kwargs()
        if self.momentum > 0:
            kwargs["momentum"] = self.momentum
        return kwargs


@register
class SGD(_MomentumMultiPrecision):
    """Stochastic gradient descent with momentum and weight decay.

    ``state = momentum * state - lr * (clip(rescale_grad * grad) + wd * weight)``,
    ``weight += state``; without momentum
    ``weight -= lr * (clip(rescale_grad * grad) + wd * weight)``. With
    ``multi_precision`` float16 weights are updated through a float32 master copy
    (``mp_sgd_update``, ``mp_sgd_mom_update``).

    Parameters
    ----------
    momentum : float
        The momentum coefficient.
    lazy_update : bool
        Accepted (dense gradients only: every row is updated).
    """

    def __init__(self, momentum: float = 0.0, lazy_update: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = lazy_update
        # MXNet groups this many updates into one multi-tensor call; kept for its
        # pickled form (the updates here are one op per parameter)
        self.aggregate_num = 4

    def _update_impl(self, index, weight, grad, state, multi_precision):
        lr, wd = self._count_update(index)
        kwargs = dict(self._step_kwargs(), lazy_update=self.lazy_update)
        if not multi_precision:
            if state is not None:
                nd.sgd_mom_update(weight, grad, state, out=weight, lr=lr, wd=wd, **kwargs)
            else:
                nd.sgd_update(weight, grad, out=weight, lr=lr, wd=wd, **kwargs)
        elif state[0] is not None:
            nd.mp_sgd_mom_update(
                weight, grad, state[0], state[1], out=weight, lr=lr, wd=wd, **kwargs
            )
        else:
            nd.mp_sgd_update(weight, grad, state[1], out=weight, lr=lr, wd=wd, **kwargs)


@register
class NAG(_MomentumMultiPrecision):
    """Nesterov accelerated gradient: ``step = lr (clip(rescale_grad * grad) + wd *
    weight)``, ``state = momentum * state - step``, ``weight += momentum * state -
    step`` (``nag_mom_update``); plain SGD without momentum. As in MXNet, the state
    is then recomputed from the updated weight (its kernel's in-place reading).

    Parameters
    ----------
    momentum : float
        The momentum coefficient.
    """

    def __init__(self, momentum: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.momentum = momentum

    def _update_impl(self, index, weight, grad, state, multi_precision):
        lr, wd = self._count_update(index)
        kwargs = self._step_kwargs()
        target, mom = weight, state
        if multi_precision:
            mom, target = state
            if mom is not None:
                nd.mp_nag_mom_update(weight, grad, mom, target, out=weight, lr=lr, wd=wd, **kwargs)
                return
            grad = grad.astype(np.float32)
        if mom is not None:
            previous = mom.copy()
            nd.nag_mom_update(target, grad, mom, out=target, lr=lr, wd=wd, **kwargs)
            # MXNet's kernel, called with out=weight as its optimizer calls it, reads
            # the weight it has just written when it updates the momentum: the
            # momentum is recomputed so, to give MXNet's numbers.
            mom[:] = self.momentum * previous - lr * (self._prepared_grad(grad) + wd * target)
        else:
            nd.sgd_update(target, grad, out=target, lr=lr, wd=wd, **kwargs)
        if multi_precision:
            nd.Cast(target, dtype=weight.dtype, out=weight)


@register
class Signum(Optimizer):
    """signSGD with momentum: ``state = momentum * state - (1 - momentum) *
    (clip(rescale_grad * grad) + wd * weight)``, ``weight = (1 - lr * wd_lh) * weight
    + lr * sign(state)`` (``signum_update``); without momentum
    ``weight = (1 - lr * wd) * weight - lr * sign(clip(rescale_grad * grad))``.

    Parameters
    ----------
    momentum : float
        The momentum coefficient.
    wd_lh : float
        Decoupled weight decay (Loshchilov and Hutter).
    """

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.9, wd_lh: float = 0.0, **kwargs: Any
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    def create_state(self, index: int, weight: NDArray) -> NDArray | None:
        """A zero momentum, or None without momentum."""
        return zeros_like_weight(weight) if self.momentum != 0.0 else None

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One Signum step (see the class)."""
        lr, wd = self._count_update(index)
        kwargs = self._grad_kwargs()
        if self.momentum > 0:
            kwargs["momentum"] = self.momentum
        if self.wd_lh:
            kwargs["wd_lh"] = self.wd_lh
        if state is not None:
            nd.signum_update(weight, grad, state, out=weight, lr=lr, wd=wd, **kwargs)
        else:
            kwargs.pop("momentum", None)
            nd.signsgd_update(weight, grad, out=weight, lr=lr, wd=wd, **kwargs)


@register
class DCASGD(Optimizer):
    """Delay-compensated asynchronous SGD: with ``g = clip(rescale_grad * grad)``,
    ``step = -lr (g + wd * weight + lamda * g^2 * (weight - previous_weight))``,
    ``state = momentum * state + step`` (or ``step`` without momentum),
    ``previous_weight = weight``, ``weight += state``.

    Parameters
    ----------
    momentum : float
        The momentum coefficient.
    lamda : float
        The variance-control coefficient.
    """

    def __init__(self, momentum: float = 0.0, lamda: float = 0.04, **kwargs: Any):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.weight_previous: dict = {}
        self.lamda = lamda

    def create_state(self, index: int, weight: NDArray) -> tuple:
        """``(momentum or None, a copy of the weight)``."""
        mom = zeros_like_weight(weight) if self.momentum != 0.0 else None
        return (mom, weight.copy())

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One DCASGD step (see the class)."""
        lr, wd = self._count_update(index)
        grad = self._prepared_grad(grad)
        mom, previous_weight = state
        step = -lr * (grad + wd * weight + self.lamda * grad * grad * (weight - previous_weight))
        if mom is not None:
            mom[:] = self.momentum * mom + step
        else:
            mom = step
        previous_weight[:] = weight
        weight[:] = weight + mom


@register
class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics:
    ``weight += -lr / 2 * (clip(rescale_grad * grad) + wd * weight) + N(0, sqrt(lr))``."""

    def create_state(self, index: int, weight: NDArray) -> None:
        """No state."""
        return None

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """One Langevin step (see the class)."""
        lr, wd = self._count_update(index)
        grad = self._prepared_grad(grad)
        noise = nd.random.normal(0, math.sqrt(lr), shape=weight.shape, dtype=weight.dtype)
        weight[:] = weight - lr / 2 * (grad + wd * weight) + noise
