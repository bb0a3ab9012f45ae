"""Running a kernel on several threads: pieces of the outermost loop, shared out.

Kernels are compiled with ``nogil=True``, so plain Python threads run them in
parallel. This avoids numba's parallel threading layers: OpenMP's spinning
workers starve OpenBLAS between GEMMs and clash with PyTorch's own OpenMP in the
same process, and the workqueue layer cannot be entered from several threads.
Loops smaller than ``SYMGRAD_PARALLEL_MIN`` elements (default 2**18) stay on the
calling thread, where a hand-off would cost more than it saves.
``SYMGRAD_NUM_THREADS`` caps the threads (default: the machine's cores).

A large loop is cut into a few pieces per thread, and the calling thread and
the pool's workers take pieces from one shared counter until none is left. A
sleeping worker takes 50-200 us to wake (much longer on a loaded or virtual
machine); with one fixed piece per thread the whole call waited for the late
worker, while here the calling thread simply takes more pieces, and it waits
only for pieces that are running, never for a worker that has not started.
An idle worker spins a few milliseconds before it sleeps (spin.py): on a
virtual machine a sleeping worker's wake-up alone cost 50-300 us. The calling
thread likewise spins on the batch's ``done`` flag before it blocks on the
batch's lock: blocked, it woke ~30 us after a worker finished the last piece
(W6's two products split over two threads: 182 -> 159 us each, the step 549 ->
500 us, interleaved runs on the quiet machine).
"""

from __future__ import annotations

import _thread
import itertools
import math
import os
import queue
import threading
from collections.abc import Callable, Sequence

import numpy as np

from ... import session, settings
from .blas_threads import blas_threads

# Read once: os.cpu_count() takes 5 us here (it reads the affinity mask), and
# count() is asked on every threaded product, two a W6 step
_CORES = max(1, os.cpu_count() or 1)


def count() -> int:
    """How many threads a large loop is split over."""
    configured = settings.current().num_threads
    return configured if configured else _CORES


# Read once: split() runs on every kernel call, and small programs cost microseconds.
_THREADS = count()
MINIMUM = settings.current().parallel_min
# No piece smaller than this many elements (unless a loop has fewer than this per
# thread): each piece costs slicing its arrays and a kernel dispatch, 10-20 us of
# Python on the benchmark machine. At 10**6 elements, 6 pieces measured faster
# than 2 (a late worker), 11 (overhead) or 3 (the threads finish unevenly).
PIECE_MINIMUM = 1 << 17


# A program whose matrix products run on OpenBLAS's own threads splits its loops
# only from this many times MINIMUM elements. After every such product OpenBLAS's
# idle worker spins on its core for about 0.1 s (its thread timeout), longer than a
# training step, so the pool's worker shares that core with it. A tanh loop right
# after a (1024 x 784 x 256) product on OpenBLAS's two threads (W2 at B=1024's
# first layer), medians of 40-300 on the benchmark machine, one thread against
# split: 2**18 elements 170-182 against 224-232 us, 2**20 652-737 / 720-807, 2**21
# 1262-1326 / 1327-1406, 2**22 2625 / 3006, 2**23 7970 / 6872 (without the product
# before it, split won from 2**20 on: 447 against 610 us).
SPINNING_BLAS_FACTOR = 32


def split_limit(spinning_blas: bool = False) -> int:
    """The loop size (elements) from which :func:`split` cuts a loop of more than
    one row into pieces: ``MINIMUM`` (``SPINNING_BLAS_FACTOR`` times that in a
    program whose products run on OpenBLAS's own threads, ``spinning_blas``), or
    never when there is one thread. Code that runs loops without splitting them
    (the whole-program entry) hands the bigger ones back to the split path."""
    # "never": a bound the entry may still multiply (``limit * 16``) in int64
    if _THREADS < 2:
        return 1 << 56
    return MINIMUM * SPINNING_BLAS_FACTOR if spinning_blas else MINIMUM


def split(rows: int, elements: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` slices of ``range(rows)`` to share out (one slice if small).

    Guided sizes: each piece is 1/(2 threads) of what is left, down to
    ``PIECE_MINIMUM`` elements, so the first pieces are big (few dispatches)
    and the last small (the threads finish within a small piece of each other).
    A loop of at least ``MINIMUM`` elements gets at least one piece per thread.
    """
    if elements < MINIMUM or _THREADS == 1 or rows == 1:
        return [(0, rows)]
    # rows in PIECE_MINIMUM elements, but at least one piece per thread
    smallest = max(1, min(-(-PIECE_MINIMUM * rows // elements), rows // _THREADS))
    pieces, lo = [], 0
    while lo < rows:
        hi = lo + max(smallest, (rows - lo) // (2 * _THREADS))
        hi = rows if rows - hi < smallest else hi  # no sliver at the end
        pieces.append((lo, hi))
        lo = hi
    return pieces


class _Batch:
    """Calls shared by several threads: each takes the next one until none is left.

    Only C-level primitives are used on the way (``itertools.count``, a raw
    lock), so a worker holds the GIL for microseconds per piece and never
    keeps the calling thread waiting for Python bookkeeping."""

    def __init__(self, kernel: Callable, calls: Sequence[tuple]):
        self.kernel, self.calls = kernel, calls
        self.taken = itertools.count()  # next() is atomic: no call is taken twice
        self.finished_count = itertools.count(1)
        self.finished = _thread.allocate_lock()
        self.finished.acquire()  # released by whoever finishes the last call
        # set to 1 after that by a worker that finished last, from its compiled
        # spin: the calling thread spins on it (see run and ThreadPool._serve)
        self.done = np.zeros(1, np.int64)
        self.error: BaseException | None = None

    def work(self, posted: np.ndarray | None = None) -> bool:
        """Run calls until none is left (on the calling thread or a worker);
        with ``posted``, the first through ``kernel(*call, posted=posted)``
        (see :func:`run`'s ``posts``). True where this thread finished the last
        call (and released :attr:`finished`): a worker then owes the batch its
        ``done`` flag."""
        total = len(self.calls)
        while True:
            index = next(self.taken)
            if index >= total:
                return False
            try:
                if self.error is None and posted is not None:
                    self.kernel(*self.calls[index], posted=posted)
                elif self.error is None:
                    self.kernel(*self.calls[index])
            except BaseException as err:  # noqa: BLE001 - re-raised by run()
                self.error = err
            posted = None
            if next(self.finished_count) == total:
                self.finished.release()
                return True


def _spin_counter() -> np.ndarray | None:
    """A fresh counter for the workers to spin on, or None where they must not
    spin (``SYMGRAD_SPIN=0``, or no ``sched_yield``)."""
    from . import spin  # (imports numba: only once a loop is split over threads)

    return np.zeros(1, np.int64) if settings.current().spin and spin.available() else None


class ThreadPool:
    """Persistent workers blocked on one queue (lighter than a ThreadPoolExecutor,
    whose futures and conditions cost tens of microseconds of Python per call),
    started on first need; the session keeps one (see :func:`pool`)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self.workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        # bumped whenever work is posted: idle workers spin on it for a while
        # before they block on the queue (None: they block at once)
        self.posted: np.ndarray | None = _spin_counter()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[_Batch | None], posted: np.ndarray | None) -> None:
        # the queue is an argument, not self.queue: after close() a new queue
        # serves new workers, and the old ones still find their stop signals
        from . import spin

        owed = None  # the done flag of a batch whose last call this worker finished
        while True:
            if posted is not None:
                # read before looking at the queue: work posted after the look
                # bumps the counter past this value (see spin.py)
                seen = int(posted[0])
                if jobs.empty():
                    # The flag is set from the compiled spin, the GIL let go: set
                    # from Python, the calling thread spinning on it left its spin
                    # while this thread still held the GIL for the lines above,
                    # slept on the GIL, and woke ~25 us later (a virtual CPU gone
                    # idle): two pieces of 106 us each, 176-184 -> 156-160 us a call.
                    spin.spin_until_changed(posted, seen, flag=owed)
                    owed = None
            if owed is not None:
                owed[0] = 1
                owed = None
            batch = jobs.get()
            if batch is None:  # closed
                return
            if batch.work():
                owed = batch.done
            # its calls hold the arrays of the kernel just run: held until the next
            # job, they kept a value alive past its last use (a program's peak grew
            # by one or two of its biggest arrays, now and then)
            del batch

    def post(self, batch: _Batch | None, copies: int, signal: bool = True) -> None:
        """Queue ``batch`` for ``copies`` workers and signal the spinning ones
        (unless ``signal`` is false: the caller bumps :attr:`posted` itself)."""
        for _ in range(copies):
            self.queue.put(batch)
        if signal and self.posted is not None:
            self.posted[0] += 1

    def start(self) -> None:
        """Start workers until there are ``_THREADS - 1`` (the caller is the last)."""
        if self.posted is not None:
            # the first call of the compiled spin in a process loads it from
            # numba's cache (or compiles it); a worker whose first wait began
            # with that load answered none of the posts meanwhile (measured: a
            # post 10 ms in went unanswered for 300 ms). Loaded here, before any
            # worker waits.
            from . import spin

            spin.spin_until_changed(np.ones(1, np.int64), 0)
        with self._lock:
            while len(self.workers) < _THREADS - 1:
                worker = threading.Thread(
                    target=self._serve,
                    args=(self.queue, self.posted),
                    daemon=True,
                    name=f"symgrad-kernel-{len(self.workers)}",
                )
                worker.start()
                self.workers.append(worker)

    def close(self) -> None:
        """Let every worker finish its batch and exit (a later :meth:`start`
        begins again with new workers)."""
        with self._lock:
            self.post(None, len(self.workers))
            self.queue, self.workers = queue.SimpleQueue(), []
            self.posted = _spin_counter()

    def after_fork(self) -> None:
        """A forked child has none of the parent's threads: start afresh."""
        self.queue = queue.SimpleQueue()
        self.workers = []
        self._lock = threading.Lock()
        self.posted = _spin_counter()


def pool() -> ThreadPool:
    """The current session's thread pool."""
    return session.current().backend_state("numba.threads", ThreadPool)


def _after_fork() -> None:
    existing = session.current().existing_state("numba.threads")
    if existing is not None:
        existing.after_fork()


os.register_at_fork(after_in_child=_after_fork)


def serial() -> bool:
    """Whether :func:`run` would run every piece on the calling thread now: other
    processes hold all cores but this one (see blas_threads.py). A caller that
    would cut a loop into pieces calls the kernel once on the whole loop instead:
    the pieces' slicing, dispatches and partial sums cost without any gain."""
    return blas_threads().free == 1


def run(kernel: Callable, calls: Sequence[tuple], posts: bool = False) -> None:
    """Run ``kernel(*args)`` for every ``args`` in ``calls``, on this thread and
    the workers, and return when all have finished (re-raising the first error).

    ``posts``: ``kernel`` also takes a keyword ``posted``, an int64 counter of
    one element that it bumps from compiled code, where the GIL is let go, before
    its work. This thread then runs its first call so, and that bump is what
    wakes the spinning workers: a worker woken by a bump from Python found the
    GIL still held by this thread's dispatch, slept on it, and started 28 us
    after this thread on the benchmark machine (W6's (128 x 784) by (784 x 256)
    product, split in two: 166 us, of which this thread's half took 137)."""
    if len(calls) == 1 or serial():
        for args in calls:
            kernel(*args)
        return
    workers = pool()
    if len(workers.workers) < _THREADS - 1:
        workers.start()
    batch = _Batch(kernel, calls)
    posts = posts and workers.posted is not None
    workers.post(batch, min(_THREADS, len(calls)) - 1, signal=not posts)
    finished_last = batch.work(workers.posted if posts else None)
    if not finished_last and workers.posted is not None:
        # spin a while before blocking: a thread blocked on the lock took ~30 us
        # to wake once the worker released it (a virtual CPU gone idle)
        from . import spin

        spin.spin_until_changed(batch.done, 0)
    batch.finished.acquire()  # blocks (GIL released) until the last call is done
    # set here too: a worker that finished last released the lock before its flag
    batch.done[0] = 1
    # a worker still holds the batch until it next takes the GIL (see _serve):
    # its calls hold the kernel's arrays, which the caller may be done with
    batch.calls = ()
    if batch.error is not None:
        raise batch.error


def run_split(
    kernel: Callable,
    args: Sequence[np.ndarray],
    outs: Sequence[np.ndarray],
    partial: Sequence[bool],
    loop: Sequence[int],
) -> None:
    """Run a fused ``kernel(*args, *outs)`` over its loop of sizes ``loop`` in
    pieces of the outermost axis, shared out by :func:`run`: arrays along that
    axis are cut to each piece's rows, broadcast ones passed whole; an output
    flagged ``partial`` (a sum over the outermost axis) gets one partial result
    per piece, added up after. The step runner calls this for a big loop, and
    so does the whole-program entry, from object mode, so that a program stays
    one call however big its loops."""
    pieces = split(loop[0] if loop else 1, math.prod(loop))
    if len(pieces) == 1 or serial():
        kernel(*args, *outs)
        return
    partials = {
        j: np.empty((len(pieces), *o.shape), o.dtype) for j, o in enumerate(outs) if partial[j]
    }
    rank = len(loop)
    along = [a.ndim == rank and a.shape[0] != 1 for a in args]
    calls = []
    for k, (lo, hi) in enumerate(pieces):
        part_args = [a[lo:hi] if cut else a for a, cut in zip(args, along)]
        part_outs = [partials[j][k] if j in partials else o[lo:hi] for j, o in enumerate(outs)]
        calls.append((*part_args, *part_outs))
    run(kernel, calls)
    for j, sums in partials.items():
        np.sum(sums, axis=0, out=outs[j])


def run_rows(kernel: Callable, head: tuple, rows: int, tail: tuple, work: int) -> None:
    """Run a row kernel ``kernel(*head, lo, hi, *tail)`` over rows ``[0, rows)``,
    in pieces shared out by :func:`run` when ``work`` (elements times taps) is big
    enough: the kernels of poolings take their row range so. Called by the step
    runner's lowerings and, from object mode, by the whole-program entry."""
    pieces = split(rows, work)
    if len(pieces) == 1:
        kernel(*head, 0, rows, *tail)
    else:
        run(kernel, [(*head, lo, hi, *tail) for lo, hi in pieces])
