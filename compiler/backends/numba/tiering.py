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
back only by the time are kept here with the arguments of their latest call, so
that they start when the time is reached, or when the user asks for compiled
code (:func:`start_held`, which :func:`wait_for_compilation` calls).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ... import session, settings


class Compilable(Protocol):
    """What tiering starts: a program that can begin compiling for given arguments."""

    def start_compiling(self, args: Sequence[np.ndarray]) -> None: ...


class Tiering:
    """A session's tiering state: the seconds its programs spent on the interpreter,
    whether compiling has begun, and the programs held back by the time."""

    def __init__(self) -> None:
        self.interpreted_seconds = 0.0
        self.paid = False  # a program has started compiling: the fixed cost is spent
        # program -> the arguments of its latest call (references; copied on start)
        self.held: weakref.WeakKeyDictionary[Any, Sequence[np.ndarray]] = (
            weakref.WeakKeyDictionary()
        )

    def pays(self) -> bool:
        """Whether a repeated program may start compiling now."""
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
    tiering.interpreted_seconds += seconds
    if calls < settings.current().compile_after:
        return
    if not tiering.pays():
        tiering.held[program] = args
        return
    tiering.held.pop(program, None)
    program.start_compiling(args)
    start_held()  # the time was reached on this call: the others start too


def start_held(program: Compilable | None = None) -> None:
    """Start the compilation of ``program`` if the time holds it back, or of every
    program it holds back (the user asked for compiled code: waiting for it must
    not wait for nothing)."""
    tiering = state()
    if program is not None:
        args = tiering.held.pop(program, None)
        if args is not None:
            tiering.paid = True
            program.start_compiling(args)
        return
    while tiering.held:
        held, args = tiering.held.popitem()
        tiering.paid = True
        held.start_compiling(args)


__all__ = ["Compilable", "Tiering", "called", "start_held", "state"]
