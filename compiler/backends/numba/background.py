"""The one background compiler: a single worker thread that compiles programs in
the order they asked, so a process never runs more than one numba compilation
behind the user's back, however many graphs it builds.

The worker hands each program to the compiler process (:mod:`.subprocess_compile`)
and waits for it there, off the interpreter lock, so the user's script keeps its
cores and its speed while numba works; the compiled kernels are then loaded from
the disk cache. A program the compiler process cannot take compiles on the
worker thread itself.

A process does not wait for it at exit: ``atexit`` ends the compiler process,
gives a job compiling on the worker thread a short grace period (``EXIT_GRACE``
seconds), then leaves it (the thread is a daemon). What an abandoned compilation
wrote is safe to read later: generated modules and numba's cache files are
written to a temporary name and renamed into place, so a reader sees a whole
file or none. The main thread never blocks on the worker except through
:func:`wait`, so Ctrl-C is never held up.
"""

from __future__ import annotations

import atexit
import gc
import os
import queue
import sys
import threading
import time
from collections.abc import Callable

from . import subprocess_compile

EXIT_GRACE = 0.1  # seconds a process gives a compilation in progress at exit
_SLICE = 0.05  # seconds a waiting thread sleeps between looks (see Job.wait)


class Job:
    """A compilation queued on the worker; ``done`` is set when it has run (or
    was dropped because the process is exiting)."""

    __slots__ = ("work", "done")

    def __init__(self, work: Callable[[], None]):
        self.work = work
        self.done = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has run; False if ``timeout`` passed first.

        Waits in short slices: a Ctrl-C may be delivered to the worker thread
        (busy in LLVM), and only the main thread's return to Python runs the
        handler, so one long wait would hold KeyboardInterrupt until the
        compilation ends."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if self.done.wait(max(remaining, 0.0)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False


_jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
_pending: set[Job] = set()
_lock = threading.Lock()
_worker: threading.Thread | None = None
_closing = False


def _run_jobs() -> None:
    while True:
        job = _jobs.get()
        try:
            if not _closing:
                job.work()
        finally:
            with _lock:
                _pending.discard(job)
            job.done.set()


def submit(work: Callable[[], None]) -> Job:
    """Queue ``work`` (a compilation; it must catch its own errors) on the worker."""
    global _worker
    job = Job(work)
    with _lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_run_jobs, daemon=True, name="symgrad-compile")
            _worker.start()
        _pending.add(job)
    _jobs.put(job)
    return job


def wait(timeout: float | None = None) -> None:
    """Block until every job queued so far has run (or ``timeout`` seconds passed)."""
    with _lock:
        jobs = list(_pending)
    for job in jobs:
        if not job.wait(timeout):
            return


def _at_exit() -> None:
    """Drop queued jobs, end the compiler process, and give a job compiling on
    this process's thread ``EXIT_GRACE`` seconds.

    Then freeze the garbage collector's objects: once numba has compiled or loaded
    kernels, the interpreter's last collections at shutdown walk its large object
    graph for seconds (2.6 s after compiling one function under load here, 0.5 s
    frozen). Python never promised to finalize objects left at exit, and the
    operating system takes back their memory."""
    global _closing
    _closing = True
    subprocess_compile.abandon()
    wait(EXIT_GRACE)
    if "numba" in sys.modules:
        gc.freeze()


def _after_fork() -> None:
    """A forked child has no worker thread and none of the parent's jobs."""
    global _jobs, _worker, _lock
    _jobs = queue.SimpleQueue()
    _pending.clear()
    _worker = None
    _lock = threading.Lock()


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork)

__all__ = ["EXIT_GRACE", "Job", "submit", "wait"]
