"""Running a kernel on several threads: pieces of the outermost loop, shared out.

Kernels are compiled with ``nogil=True``, so plain Python threads run them in
parallel. This avoids numba's parallel threading layers: OpenMP's spinning
workers starve OpenBLAS between GEMMs and clash with PyTorch's own OpenMP in the
same process, and the workqueue layer cannot be entered from several threads.
Loops smaller than ``SYMGRAD_PARALLEL_MIN`` elements (default 2**16) stay on the
calling thread, where a hand-off would cost more than it saves.
``SYMGRAD_NUM_THREADS`` caps the threads (default: the machine's cores).

A large loop is cut into a few pieces per thread, and the calling thread and
the pool's workers take pieces from one shared counter until none is left. A
sleeping worker takes 50-200 us to wake (much longer on a loaded or virtual
machine); with one fixed piece per thread the whole call waited for the late
worker, while here the calling thread simply takes more pieces, and it waits
only for pieces that are running, never for a worker that has not started.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def count() -> int:
    """How many threads a large loop is split over."""
    configured = os.environ.get("SYMGRAD_NUM_THREADS")
    return max(1, int(configured) if configured else (os.cpu_count() or 1))


# Read once: split() runs on every kernel call, and small programs cost microseconds.
_THREADS = count()
MINIMUM = int(os.environ.get("SYMGRAD_PARALLEL_MIN", 1 << 16))
# No piece smaller than this many elements: each piece costs a kernel dispatch (a
# few microseconds) and, for reductions, a partial result.
PIECE_MINIMUM = 1 << 15


def split(rows: int, elements: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` slices of ``range(rows)`` to share out (one slice if small).

    Guided sizes: each piece is 1/(2 threads) of what is left, down to
    ``PIECE_MINIMUM`` elements, so the first pieces are big (few dispatches)
    and the last small (the threads finish within a small piece of each other).
    """
    if elements < MINIMUM or _THREADS == 1 or rows == 1:
        return [(0, rows)]
    smallest = max(1, -(-PIECE_MINIMUM * rows // elements))  # rows in PIECE_MINIMUM elements
    pieces, lo = [], 0
    while lo < rows:
        hi = lo + max(smallest, (rows - lo) // (2 * _THREADS))
        hi = rows if rows - hi < smallest else hi  # no sliver at the end
        pieces.append((lo, hi))
        lo = hi
    return pieces


class _Batch:
    """Calls shared by several threads: each takes the next one until none is left."""

    def __init__(self, kernel: Callable, calls: Sequence[tuple]):
        self.kernel, self.calls = kernel, calls
        self.next = itertools.count()  # next() is atomic: threads never take one call twice
        self.remaining = len(calls)
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.error: BaseException | None = None

    def work(self) -> None:
        """Run calls until none is left (on the calling thread or a worker)."""
        total = len(self.calls)
        while True:
            index = next(self.next)
            if index >= total:
                return
            try:
                if self.error is None:
                    self.kernel(*self.calls[index])
            except BaseException as err:  # noqa: BLE001 - re-raised by run()
                self.error = err
            with self.lock:
                self.remaining -= 1
                if self.remaining == 0:
                    self.finished.set()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(1, _THREADS - 1),
                                           thread_name_prefix="symgrad-kernel")
    return _pool


def run(kernel: Callable, calls: Sequence[tuple]) -> None:
    """Run ``kernel(*args)`` for every ``args`` in ``calls``, on this thread and
    the pool's, and return when all have finished (re-raising the first error)."""
    if len(calls) == 1:
        kernel(*calls[0])
        return
    batch = _Batch(kernel, calls)
    pool = _get_pool()
    for _ in range(min(_THREADS, len(calls)) - 1):
        pool.submit(batch.work)
    batch.work()
    batch.finished.wait()
    if batch.error is not None:
        raise batch.error
