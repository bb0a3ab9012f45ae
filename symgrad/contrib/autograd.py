"""``mx.contrib.autograd``: MXNet's first autograd API, kept for old scripts.

``train_section()`` records in training mode (``autograd.record()`` in the current
API), ``test_section()`` records in predict mode, and ``grad_and_loss`` wraps a
function to return its arguments' gradients with its value.

>>> import symgrad as mx
>>> from symgrad.contrib import autograd as ag
>>> ag.grad(lambda x: (x * x).sum())(mx.nd.array([1, 2]))[0].asnumpy()
array([2., 4.], dtype=float32)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .. import autograd as _autograd
from ..ndarray import NDArray, zeros_like


def set_is_training(is_train: bool) -> bool:
    """Turn recording and training mode on or off together; the previous state."""
    previous = _autograd.set_recording(is_train)
    _autograd.set_training(is_train)
    return previous


class TrainingStateScope:
    """A ``with`` scope that sets recording and training to ``enter_state`` and
    restores both on exit."""

    def __init__(self, enter_state: bool) -> None:
        self._enter_state = enter_state
        self._saved: tuple[bool, bool] | None = None

    def __enter__(self) -> TrainingStateScope:
        self._saved = (_autograd.is_recording(), _autograd.is_training())
        _autograd.set_recording(self._enter_state)
        _autograd.set_training(self._enter_state)
        return self

    def __exit__(self, *exc: Any) -> None:
        recording, training = self._saved
        _autograd.set_recording(recording)
        _autograd.set_training(training)


def train_section() -> TrainingStateScope:
    """Record the computation in training mode: ``with train_section(): ...``."""
    return TrainingStateScope(True)


def test_section() -> TrainingStateScope:
    """Stop recording, in predict mode, inside a train_section."""
    return TrainingStateScope(False)


def mark_variables(variables: Any, gradients: Any, grad_reqs: Any = "write") -> None:
    """Make ``variables`` leaves whose gradients go into ``gradients``."""
    _autograd.mark_variables(variables, gradients, grad_reqs)


def backward(outputs: Any, out_grads: Any = None, retain_graph: bool = False) -> None:
    """Gradients of ``outputs`` (times ``out_grads``) into the marked variables."""
    _autograd.backward(outputs, out_grads, retain_graph=retain_graph)


def compute_gradient(outputs: Any) -> None:
    """``backward(outputs)``: kept as MXNet had it."""
    backward(outputs)


def grad_and_loss(func: Callable, argnum: Any = None) -> Callable:
    """Wrap ``func`` to return ``(gradients, value)``: the gradients of its value
    with respect to the arguments (all of them, or those at ``argnum``)."""

    @functools.wraps(func)
    def wrapped(*args: NDArray) -> tuple[list[NDArray], Any]:
        positions = (
            range(len(args))
            if argnum is None
            else ([argnum] if isinstance(argnum, int) else list(argnum))
        )
        variables = [args[i] for i in positions]
        for x in variables:
            if not isinstance(x, NDArray):
                raise TypeError("type of autograd input should be NDArray")
        grads = [zeros_like(x) for x in variables]
        mark_variables(variables, grads)
        with train_section():
            outputs = func(*args)
        compute_gradient([outputs] if isinstance(outputs, NDArray) else outputs)
        return grads, outputs

    return wrapped


def grad(func: Callable, argnum: Any = None) -> Callable:
    """Wrap ``func`` to return only the gradients of ``grad_and_loss``."""
    wrapper = grad_and_loss(func, argnum)

    @functools.wraps(func)
    def wrapped(*args: NDArray) -> list[NDArray]:
        return wrapper(*args)[0]

    return wrapped


__all__ = [
    "set_is_training",
    "train_section",
    "test_section",
    "mark_variables",
    "backward",
    "compute_gradient",
    "grad_and_loss",
    "grad",
    "TrainingStateScope",
]
