"""How many threads numpy's OpenBLAS runs a product on: all it was given while
the cores are free, fewer while other processes compete for them.

OpenBLAS splits a product over its threads, and a thread that finishes its
share spins until the others are done. When another process holds a core, one
share waits for the scheduler and every other thread spins meanwhile: on the
2-core benchmark machine with one other busy process, W6's forward+backward (two
(128, 784)-sized products) took 12.9 ms on two threads and 1.9 ms on one (1.1 ms
on two with the machine free). PyTorch's step took 11 ms in the same conditions.

So before a program runs, :func:`adapt` measures the cores other processes
keep busy (:class:`OtherBusyCores`: the machine's CPU time less this process's,
over windows of :data:`WINDOW_SECONDS`, looked at most every
:data:`SAMPLE_SECONDS`) and gives OpenBLAS the cores they leave:
``max(1, cores - others)``, never more than it had at start (the user's
``OPENBLAS_NUM_THREADS``). When that is one core, the backend's own pool
(``threads.run``) runs its pieces on the calling thread too: a piece handed to a
worker the scheduler does not run holds up the whole loop. A new measure takes
effect only once two windows in a row agree. (A snapshot of the runnable tasks,
``/proc/loadavg``'s count less this process's running threads, raced with this
process's own threads falling asleep: half the samples of a W2 B=1024 step on a
free machine saw another process, and put its products on one thread.)
``SYMGRAD_ADAPT_THREADS=0`` keeps OpenBLAS's own count and the pool's threads.
:func:`alone` holds OpenBLAS at one thread while convolutions split their images
over the backend's threads themselves.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ... import settings

SAMPLE_SECONDS = 0.05  # a look reads /proc/stat and this process's stat
WINDOW_SECONDS = 0.2  # CPU time is counted in ticks (10 ms): windows of 20 per core


def numpy_library() -> ctypes.CDLL | None:
    """numpy's C extension as a ctypes library, through which the dynamic loader
    answers with the BLAS numpy linked (not some other copy); None where it
    cannot be opened. Already loaded: the same handle."""
    try:
        from numpy._core import _multiarray_umath as extension  # type: ignore[attr-defined]
    except ImportError:  # numpy 1.x (numpy's stubs do not list the C extension)
        from numpy.core import _multiarray_umath as extension
    try:
        return ctypes.CDLL(extension.__file__)
    except OSError:
        return None


def openblas_controls() -> tuple[Any, Any] | None:
    """numpy's OpenBLAS ``set_num_threads`` and ``get_num_threads``, or None."""
    library = numpy_library()
    if library is None:
        return None
    for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
        setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
        getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
        if setter is not None and getter is not None:
            setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
            return setter, getter
    return None


def _machine_busy_ticks() -> int:
    """The CPU time all processes have used since boot, in clock ticks."""
    with open("/proc/stat", "rb") as file:
        fields = [int(v) for v in file.readline().split()[1:9]]
    # less idle, iowait and steal: time the hypervisor gave another machine is no
    # core a process here keeps busy, and counting it took a core from us on a
    # noisy host
    return sum(fields) - fields[3] - fields[4] - fields[7]


def _own_ticks() -> int:
    """The CPU time this process has used, in clock ticks (utime + stime)."""
    with open("/proc/self/stat", "rb") as file:
        after_name = file.read().rpartition(b")")[2].split()  # the name may hold spaces
    return int(after_name[11]) + int(after_name[12])


class OtherBusyCores:
    """``count()``: the cores other processes kept busy over the last window of at
    least ``window`` seconds (the machine's CPU time less this process's, rounded
    to whole cores), or None while a window is not complete or where /proc does
    not say. This process's own threads never count, however they come and go."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._last: tuple[float, int, int] | None = None
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __call__(self) -> int | None:
        try:
            now, machine, own = time.monotonic(), _machine_busy_ticks(), _own_ticks()
        except (OSError, IndexError, ValueError):
            return None
        last, self._last = self._last, (now, machine, own)
        if last is None:
            return None
        then, machine_then, own_then = last
        if now - then < self.window:
            self._last = last  # the window goes on
            return None
        busy = ((machine - machine_then) - (own - own_then)) / self._ticks / (now - then)
        return max(0, int(busy + 0.5))


class BlasThreads:
    """OpenBLAS's thread count for products, chosen as the module docstring says,
    and :attr:`free`: the cores other processes leave this one (the backend's
    own thread pool runs on the calling thread alone when that is one).

    ``controls`` are OpenBLAS's setter and getter (None: nothing to control);
    ``count_tasks`` (others' busy cores, default :class:`OtherBusyCores`) and
    ``cores`` are the machine's, replaceable in tests."""

    def __init__(
        self,
        controls: tuple[Any, Any] | None,
        count_tasks: Callable[[], int | None] | None = None,
        cores: int | None = None,
    ):
        self._set: Any = None
        get: Any = None
        if controls is not None:
            self._set, get = controls
        self.most = get() if get is not None else 1  # what OpenBLAS was given
        self.current = self.most
        self._count_tasks = OtherBusyCores() if count_tasks is None else count_tasks
        self._cores = cores or len(os.sched_getaffinity(0))
        self.free = self._cores
        self._next_sample = 0.0
        self._proposed = self._cores  # the last sample's free cores, awaiting a second
        self._alone = 0  # convolutions running (see alone)
        self._lock = threading.Lock()

    def free_cores(self, others: int) -> int:
        """The cores free for this process while ``others`` tasks of other
        processes are runnable."""
        return max(1, self._cores - others)

    def wanted(self, others: int) -> int:
        """Threads to run products on while ``others`` tasks of other processes
        are runnable."""
        return min(self.most, self.free_cores(others))

    def adapt(self) -> None:
        """Sample the machine if due; once two samples in a row agree, take their
        free cores and move OpenBLAS to them (see the module docstring)."""
        if self._cores == 1:
            return
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + SAMPLE_SECONDS
        others = self._count_tasks()
        if others is None:
            return
        free = self.free_cores(others)
        proposed, self._proposed = self._proposed, free
        if free != proposed or free == self.free:
            return
        self.free = free
        wanted = min(self.most, free)
        if self._set is not None and wanted != self.current:
            with self._lock:
                self.current = wanted
                if not self._alone:
                    self._set(wanted)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """OpenBLAS on one thread for the block (process-wide: the first block in
        sets it, the last one out puts back the adapted count)."""
        if self._set is None:
            yield
            return
        with self._lock:
            if self._alone == 0:
                self._set(1)
            self._alone += 1
        try:
            yield
        finally:
            with self._lock:
                self._alone -= 1
                if self._alone == 0:
                    self._set(self.current)


_THREADS: BlasThreads | None = None


def blas_threads() -> BlasThreads:
    """The process's :class:`BlasThreads` (made at first use)."""
    global _THREADS
    if _THREADS is None:
        _THREADS = BlasThreads(openblas_controls())
    return _THREADS


def adapt() -> None:
    """Before a program runs: OpenBLAS's thread count for the machine now
    (``SYMGRAD_ADAPT_THREADS=0``: left as it is)."""
    if settings.current().adapt_threads:
        blas_threads().adapt()
