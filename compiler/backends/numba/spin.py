"""Waiting for work without letting the core go idle: the thread pool's workers
spin a short while after each batch before they block.

On the benchmark machine (a virtual machine of 2 cores) a worker blocked on a
futex took 50-300 us to start after it was signalled: waking an idle virtual
CPU goes through the hypervisor. A split loop or product of a few hundred
microseconds then ran at the speed of one thread, or slower (W6's optimizer
update over 200k weights: 180 us on one thread, 260 us split). BLAS libraries
and OpenMP runtimes keep their workers spinning between parallel regions for
the same reason (OpenBLAS about 0.1 s, Intel's OpenMP 0.2 s).

:func:`spin_until_changed` polls a counter the pool bumps when it posts work,
yielding the core between polls (``sched_yield``: another runnable thread, ours
or another process's, gets the core at once), for a bounded number of polls
(:data:`SPIN_POLLS`, about 3 ms when nothing else runs). It runs compiled and
without the GIL, so it never holds up the thread that posts the work. The call
to ``sched_yield`` is opaque to the optimiser, which is what makes every poll
read the counter afresh.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
from numba import types

# ~150 ns a poll on an otherwise idle core: about 3 ms of spinning, which covers
# the gaps between the parallel steps of a training step (W6: ~0.9 ms a step)
SPIN_POLLS = 20_000

_sched_yield = types.ExternalFunction("sched_yield", types.int32())


@numba.njit(cache=True, nogil=True)
def _spin(counter: np.ndarray, seen: int, polls: int) -> bool:  # pragma: no cover - compiled
    for _ in range(polls):
        if counter[0] != seen:
            return True
        _sched_yield()
    return counter[0] != seen


@numba.njit(cache=True, nogil=True)
def _signal_then_spin(
    flag: np.ndarray, counter: np.ndarray, seen: int, polls: int
) -> bool:  # pragma: no cover - compiled
    flag[0] = 1
    return _spin(counter, seen, polls)


def available() -> bool:
    """Whether this platform has ``sched_yield`` (POSIX systems do)."""
    return sys.platform != "win32"


def spin_until_changed(
    counter: np.ndarray, seen: int, polls: int = SPIN_POLLS, flag: np.ndarray | None = None
) -> bool:
    """Poll ``counter[0]`` (an int64 array of one element) until it differs from
    ``seen`` or ``polls`` polls have passed, without the GIL; True if it changed.
    With ``flag`` (likewise an int64 array), first set ``flag[0] = 1``, once the
    GIL is let go: a thread spinning on that flag then takes the GIL at once."""
    if flag is None:
        return bool(_spin(counter, seen, polls))
    return bool(_signal_then_spin(flag, counter, seen, polls))
