"""Running a kernel on several threads: each takes a slice of the outermost loop.

Kernels are compiled with ``nogil=True``, so plain Python threads run them in
parallel. This avoids numba's parallel threading layers: OpenMP's spinning
workers starve OpenBLAS between GEMMs and clash with PyTorch's own OpenMP in the
same process, and the workqueue layer cannot be entered from several threads.
Loops smaller than ``SYMGRAD_PARALLEL_MIN`` elements (default 2**16) stay on the
calling thread, where a hand-off would cost more than it saves.
``SYMGRAD_NUM_THREADS`` caps the threads (default: the machine's cores).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None


def count() -> int:
    """How many threads a large loop is split over."""
    configured = os.environ.get("SYMGRAD_NUM_THREADS")
    return max(1, int(configured) if configured else (os.cpu_count() or 1))


# Read once: split() runs on every kernel call, and small programs cost microseconds.
_THREADS = count()
MINIMUM = int(os.environ.get("SYMGRAD_PARALLEL_MIN", 1 << 16))


def split(rows: int, elements: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` slices of ``range(rows)``, one per thread (one slice if small)."""
    if elements < MINIMUM or _THREADS == 1 or rows == 1:
        return [(0, rows)]
    parts = min(_THREADS, rows)
    bounds = [rows * k // parts for k in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def run(kernel: Callable, calls: Sequence[tuple]) -> None:
    """Run ``kernel(*args)`` for every ``args`` in ``calls``, the first on this
    thread and the rest on the pool, and wait for all of them."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, _THREADS - 1),
                                   thread_name_prefix="symgrad-kernel")
    futures = [_pool.submit(kernel, *args) for args in calls[1:]]
    kernel(*calls[0])
    for future in futures:
        future.result()
