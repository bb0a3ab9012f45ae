"""When compiling a program pays: the numba backend's tiering rule.

A program's first calls run on the interpreter. Compiling it has two costs in
the user's process, whatever the compiler process does on another core: a fixed
one, paid once, for bringing numba's machinery up here (its lowering registries,
SciPy's BLAS, the plan's generator: about a second of this process's time and
interpreter lock, measured on the short script), and a small one per program
(its plan, loading its kernels). A script that interprets for less than the
fixed cost in all would only lose by compiling: the d2l softmax regression
spends 0.17 s of its 0.7 s in its one program.

So a program starts compiling once it has been called ``compile_after`` times
(a graph run once never compiles) *and* the session's programs have spent
``compile_after_seconds`` on the interpreter in all (the rule of renting skis
until their price is spent: never more than twice the better choice's cost, with
no knowledge of how long the script will run). Once one program has started,
the fixed cost is paid and the count alone decides for the others. Programs held
back only by the time are kept here with the types of their latest call's
arguments (weakly: :class:`HeldArguments`), so that they start when the time is
reached, or when the user asks for compiled code (:func:`start_held`, which
``wait_for_compilation`` calls).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ... import session, settings


class Compilable(Protocol):
    """What tiering starts: a program that can begin compiling for given arguments."""

    def start_compiling(self, args: Sequence[np.ndarray]) -> None: ...


class HeldArguments:
    """What a held program's latest call was given, without keeping it alive: a
    weak reference to each array with its shape, dtype and order. Compiling needs
    only the types; an array the caller has dropped since is replaced by zeros of
    the same type (zeros are valid indices for pick and take)."""

    __slots__ = ("arrays",)

    def __init__(self, args: Sequence[np.ndarray]) -> None:
        self.arrays = [_weakly(a) for a in args]

    def revived(self) -> list[np.ndarray]:
        """The arrays still alive, and zeros of the same type for the others."""
        return [_revive(held) for held in self.arrays]


def _weakly(array: Any) -> tuple:
    if isinstance(array, np.ndarray):
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        return (weakref.ref(array), array.shape, array.dtype, order)
    return (None, array, None, None)  # a scalar: kept as it is


def _revive(held: tuple) -> Any:
    ref, shape, dtype, order = held
    if ref is None:
        return shape
    array = ref()
    return np.zeros(shape, dtype, order=order) if array is None else array


class Tiering:
    """A session's tiering state: the seconds its programs spent on the interpreter,
    whether compiling has begun, and the programs held back by the time."""

    def __init__(self) -> None:
        self.interpreted_seconds = 0.0
        self.paid = False  # a program has started compiling: the fixed cost is spent
        # program -> its latest call's arguments (weakly; see HeldArguments)
        self.held: weakref.WeakKeyDictionary[Any, HeldArguments] = weakref.WeakKeyDictionary()
        # programs may be called from several threads: the counts and the held
        # programs change under this lock, compilations start outside it
        self.lock = threading.Lock()

    def pays(self) -> bool:
        """Whether a repeated program may start compiling now (under the lock)."""
        if not self.paid and self.interpreted_seconds >= settings.current().compile_after_seconds:
            self.paid = True
        return self.paid


def state() -> Tiering:
    """The current session's tiering state."""
    return session.current().backend_state("numba.tiering", Tiering)


def called(program: Compilable, calls: int, seconds: float, args: Sequence[np.ndarray]) -> None:
    """Count a call ``program`` answered on the interpreter in ``seconds`` (its
    ``calls``-th), and start its compilation, or hold it, as the rule says."""
    tiering = state()
    with tiering.lock:
        tiering.interpreted_seconds += seconds
        if calls < settings.current().compile_after:
            return
        if not tiering.pays():
            tiering.held[program] = HeldArguments(args)
            return
        tiering.held.pop(program, None)
        others = _take_held(tiering)  # the time was reached on this call: all start
    program.start_compiling(args)
    for held, arguments in others:
        held.start_compiling(arguments.revived())


def start_held(program: Compilable | None = None) -> None:
    """Start the compilation of ``program`` if the time holds it back, or of every
    program it holds back (the user asked for compiled code: waiting for it must
    not wait for nothing)."""
    tiering = state()
    with tiering.lock:
        if program is None:
            starting = _take_held(tiering)
        else:
            arguments = tiering.held.pop(program, None)
            starting = [] if arguments is None else [(program, arguments)]
        if starting:
            tiering.paid = True
    for held, arguments in starting:
        held.start_compiling(arguments.revived())


def _take_held(tiering: Tiering) -> list[tuple[Compilable, HeldArguments]]:
    """Every held program with its arguments, no longer held (under the lock)."""
    taken = list(tiering.held.items())
    tiering.held.clear()
    return taken


__all__ = ["Compilable", "HeldArguments", "Tiering", "called", "start_held", "state"]
