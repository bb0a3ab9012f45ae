"""``mx.lr_scheduler``: learning rates as functions of the number of updates.

A scheduler is called with the optimizer's update count and returns the learning
rate for that update. Every scheduler can start with a warm-up of
``warmup_steps`` updates, rising linearly from ``warmup_begin_lr`` to
``base_lr`` (``warmup_mode='linear'``) or holding ``warmup_begin_lr``
(``'constant'``), as MXNet 1.x's schedulers do.

>>> import symgrad as mx
>>> schedule = mx.lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
>>> [schedule(n) for n in range(1, 7)]
[1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
"""

from __future__ import annotations

import logging
import math

__all__ = [
    "LRScheduler",
    "FactorScheduler",
    "MultiFactorScheduler",
    "PolyScheduler",
    "CosineScheduler",
]


class LRScheduler:
    """Base class of learning-rate schedules.

    Parameters
    ----------
    base_lr : float
        The learning rate after warm-up (an optimizer replaces it with its own
        ``learning_rate`` when given the scheduler).
    warmup_steps : int
        Number of updates the warm-up lasts.
    warmup_begin_lr : float
        The learning rate at update 0 of the warm-up.
    warmup_mode : {'linear', 'constant'}
        Linear rise to ``base_lr``, or ``warmup_begin_lr`` throughout.
    """

    def __init__(
        self,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ):
        self.base_lr = base_lr
        if not isinstance(warmup_steps, int):
            raise AssertionError("warmup_steps must be an int")
        self.warmup_steps = warmup_steps
        self.warmup_final_lr = base_lr
        self.warmup_begin_lr = warmup_begin_lr
        if self.warmup_begin_lr > self.warmup_final_lr:
            raise ValueError("Base lr has to be higher than warmup_begin_lr")
        if self.warmup_steps < 0:
            raise ValueError("Warmup steps has to be positive or 0")
        if warmup_mode not in ("linear", "constant"):
            raise ValueError("Supports only linear and constant modes of warmup")
        self.warmup_mode = warmup_mode

    def get_warmup_lr(self, num_update: int) -> float:
        """The warm-up learning rate at update ``num_update`` (< warmup_steps):
        begin + (final - begin) num_update / warmup_steps, or begin (constant)."""
        if num_update >= self.warmup_steps:
            raise AssertionError("num_update is past the warm-up")
        if self.warmup_mode == "linear":
            increase = (
                (self.warmup_final_lr - self.warmup_begin_lr)
                * float(num_update)
                / float(self.warmup_steps)
            )
            return self.warmup_begin_lr + increase
        return self.warmup_begin_lr

    def __call__(self, num_update: int) -> float:
        """The learning rate for update ``num_update``."""
        raise NotImplementedError("must override this")


class FactorScheduler(LRScheduler):
    """Multiply the learning rate by ``factor`` every ``step`` updates, never
    below ``stop_factor_lr``: lr = base_lr * factor^floor((num_update - 1) / step).

    Parameters
    ----------
    step : int
        Updates between two reductions (at least 1).
    factor : float
        The multiplier (at most 1).
    stop_factor_lr : float
        The learning rate stops falling here.
    """

    def __init__(
        self,
        step: int,
        factor: float = 1,
        stop_factor_lr: float = 1e-8,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if step < 1:
            raise ValueError("Schedule step must be greater or equal than 1 round")
        if factor > 1.0:
            raise ValueError("Factor must be no more than 1 to make lr reduce")
        self.step = step
        self.factor = factor
        self.stop_factor_lr = stop_factor_lr
        self.count = 0

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        # Stateful, as MXNet's: the rate falls once per step boundary passed.
        while num_update > self.count + self.step:
            self.count += self.step
            self.base_lr *= self.factor
            if self.base_lr < self.stop_factor_lr:
                self.base_lr = self.stop_factor_lr
                logging.info(
                    "Update[%d]: now learning rate arrived at %0.5e, will not change in the future",
                    num_update,
                    self.base_lr,
                )
            else:
                logging.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)
        return self.base_lr


class MultiFactorScheduler(LRScheduler):
    """Multiply the learning rate by ``factor`` once each listed step is passed:
    lr = base_lr * factor^(number of steps s with num_update > s).

    Parameters
    ----------
    step : list of int
        Increasing update counts, each at least 1.
    factor : float
        The multiplier (at most 1).
    """

    def __init__(
        self,
        step: list[int],
        factor: float = 1,
        base_lr: float = 0.01,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        if not isinstance(step, list) or len(step) < 1:
            raise AssertionError("step must be a non-empty list")
        for i, boundary in enumerate(step):
            if i != 0 and step[i] <= step[i - 1]:
                raise ValueError("Schedule step must be an increasing integer list")
            if boundary < 1:
                raise ValueError("Schedule step must be greater or equal than 1 round")
        if factor > 1.0:
            raise ValueError("Factor must be no more than 1 to make lr reduce")
        self.step = step
        self.cur_step_ind = 0
        self.factor = factor
        self.count = 0

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        while self.cur_step_ind <= len(self.step) - 1:
            if num_update > self.step[self.cur_step_ind]:
                self.count = self.step[self.cur_step_ind]
                self.cur_step_ind += 1
                self.base_lr *= self.factor
                logging.info("Update[%d]: Change learning rate to %0.5e", num_update, self.base_lr)
            else:
                return self.base_lr
        return self.base_lr


def _check_max_update(max_update: object) -> None:
    """MXNet's checks of a decay's ``max_update``: an int, at least 1."""
    if not isinstance(max_update, int):
        raise AssertionError("max_update must be an int")
    if max_update < 1:
        raise ValueError("maximum number of updates must be strictly positive")


class PolyScheduler(LRScheduler):
    """Polynomial decay to ``final_lr`` at ``max_update``: after warm-up,
    lr = final_lr + (base_lr - final_lr) (1 - (n - warmup_steps) / (max_update -
    warmup_steps))^pwr, held at its last value past ``max_update``.

    Parameters
    ----------
    max_update : int
        The update count at which the decay ends (at least 1).
    pwr : float
        The power of the decay.
    final_lr : float
        The learning rate at ``max_update``.
    """

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        pwr: float = 2,
        final_lr: float = 0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check_max_update(max_update)
        self.power = pwr
        self.base_lr_orig = self.base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            remaining = 1 - float(num_update - self.warmup_steps) / float(self.max_steps)
            self.base_lr = self.final_lr + (self.base_lr_orig - self.final_lr) * pow(
                remaining, self.power
            )
        return self.base_lr


class CosineScheduler(LRScheduler):
    """Cosine decay to ``final_lr`` at ``max_update``: after warm-up,
    lr = final_lr + (base_lr - final_lr) (1 + cos(pi (n - warmup_steps) /
    (max_update - warmup_steps))) / 2, held at its last value past ``max_update``.

    Parameters
    ----------
    max_update : int
        The update count at which the decay ends (at least 1).
    final_lr : float
        The learning rate at ``max_update``.
    """

    def __init__(
        self,
        max_update: int,
        base_lr: float = 0.01,
        final_lr: float = 0,
        warmup_steps: int = 0,
        warmup_begin_lr: float = 0,
        warmup_mode: str = "linear",
    ):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        _check_max_update(max_update)
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        if self.warmup_steps > self.max_update:
            raise ValueError("warmup_steps must be at most max_update")
        self.max_steps = self.max_update - self.warmup_steps

    def __call__(self, num_update: int) -> float:
        if num_update < self.warmup_steps:
            return self.get_warmup_lr(num_update)
        if num_update <= self.max_update:
            angle = math.pi * (num_update - self.warmup_steps) / self.max_steps
            self.base_lr = (
                self.final_lr + (self.base_lr_orig - self.final_lr) * (1 + math.cos(angle)) / 2
            )
        return self.base_lr
