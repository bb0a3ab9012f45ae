"""Splitting kernel loops over threads (compiler/backends/numba/threads.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
from symgrad_compiler.backends.numba import spin, threads
from symgrad_compiler.backends.numba.blas_threads import blas_threads


@pytest.mark.parametrize(
    "rows, elements",
    [
        (10**6, 10**6),
        (1000, 10**6),
        (3, 3 * 10**6),
        (100_000, 100_000),
        (10**7, 10**7),
        (65536, 65536),
        (300, 300_000),
    ],
)
def test_split_covers_the_loop_once(monkeypatch, rows, elements):
    monkeypatch.setattr(threads, "_THREADS", 2)
    monkeypatch.setattr(threads, "MINIMUM", 1 << 16)  # the loops above are all split
    pieces = threads.split(rows, elements)
    assert pieces[0][0] == 0 and pieces[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    sizes = [hi - lo for lo, hi in pieces]
    assert min(sizes) >= 1
    # Guided: never growing, and none below the minimum where rows allow.
    assert all(a >= b for a, b in zip(sizes, sizes[1:-1]))
    row_elements = elements // rows
    assert all(
        s * row_elements >= min(threads.PIECE_MINIMUM, elements // 2) or s == 1 for s in sizes
    )
    assert len(pieces) >= 2


def test_split_small_loops_stay_whole(monkeypatch):
    monkeypatch.setattr(threads, "_THREADS", 2)
    assert threads.split(1000, 1000) == [(0, 1000)]
    assert threads.split(1, 10**7) == [(0, 1)]


def test_run_calls_each_piece_once_on_several_threads():
    seen, names = [], set()
    lock = threading.Lock()

    def kernel(k):
        with lock:
            seen.append(k)
            names.add(threading.current_thread().name)

    threads.run(kernel, [(k,) for k in range(50)])
    assert sorted(seen) == list(range(50))


@pytest.mark.skipif(threads.count() < 2, reason="needs a worker thread")
def test_run_waits_for_a_worker_that_finishes_last(monkeypatch):
    """The calling thread spins on the batch's ``done`` flag, then takes its lock:
    a piece still running on a worker when the caller's pieces are done (longer
    than the spin, too) is waited for, and the flag is set once all are."""
    monkeypatch.setattr(threads, "serial", lambda: False)
    batches, finished = [], []
    made = threads._Batch

    def recording(kernel, calls):
        batches.append(made(kernel, calls))
        return batches[-1]

    monkeypatch.setattr(threads, "_Batch", recording)

    def kernel(k, pause):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(pause)  # the worker's piece ends after the caller's
        finished.append(k)

    for pause in (0.001, 0.02):  # within the caller's ~3 ms of spinning, and past it
        finished.clear()
        threads.run(kernel, [(0, pause), (1, pause)])
        assert sorted(finished) == [0, 1] and batches[-1].done[0] == 1


@pytest.mark.skipif(threads.count() < 2 or not spin.available(), reason="needs a spinning worker")
def test_a_kernel_that_posts_is_what_signals_the_workers(monkeypatch):
    """With ``posts``, the calling thread's first call (of the calls a worker
    woken by the queue did not take first) gets the pool's counter and bumps it
    itself (post() does not); the other calls get no counter; every call runs
    once."""
    monkeypatch.setattr(threads, "serial", lambda: False)
    workers = threads.pool()
    workers.start()
    seen, counters, lock = [], [], threading.Lock()

    def kernel(k, posted=None):
        if posted is not None:
            counters.append(int(posted[0]))
            posted[0] += 1
        with lock:
            seen.append((k, posted is not None, threading.current_thread().name))

    for _ in range(20):
        seen.clear()
        before = int(workers.posted[0])
        threads.run(kernel, [(k,) for k in range(6)], posts=True)
        assert sorted(k for k, _, _ in seen) == list(range(6))
        posting = [name for _, posted, name in seen if posted]
        assert posting == [threading.current_thread().name]
        assert counters[-1] == before and int(workers.posted[0]) == before + 1


def test_run_reraises_a_kernel_error():
    def kernel(k):
        if k == 3:
            raise ValueError("piece 3")

    with pytest.raises(ValueError, match="piece 3"):
        threads.run(kernel, [(k,) for k in range(8)])


def test_split_kernel_matches_interpreter(monkeypatch):
    """A loop big enough to be split: elementwise outputs, a column reduction
    (bias gradient) and a whole sum, against the numpy interpreter."""
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    monkeypatch.setattr(threads, "_THREADS", 2)
    # two free cores whatever the machine's load (a loaded machine runs loops whole)
    monkeypatch.setattr(symgrad_compiler.settings.current(), "adapt_threads", False)
    monkeypatch.setattr(blas_threads(), "free", 2)
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal((3000, 40)), "b": rng.standard_normal(40)}
    x, b = mx.sym.var("x"), mx.sym.var("b")
    f = mx.sym.sum(mx.sym.tanh(mx.sym.broadcast_add(x, b)) * mx.sym.sigmoid(x))
    runs = []
    run = threads.run
    monkeypatch.setattr(
        threads, "run", lambda kernel, calls: (runs.append(len(calls)), run(kernel, calls))
    )
    results = {}
    for backend in ("interpreter", "compiled"):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        function = mx.compile(f, wrt=["x", "b"])
        value, grads = function(**inputs)
        results[backend] = [np.asarray(value), grads["x"], grads["b"]]
    assert runs and runs[0] >= 2  # the compiled kernel did run split
    for got, want in zip(results["compiled"], results["interpreter"]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_spin_returns_when_the_counter_changes_and_gives_up_after_its_polls():
    counter = np.zeros(1, np.int64)
    assert not spin.spin_until_changed(counter, 0, polls=100)  # nothing posted
    assert spin.spin_until_changed(counter, 5, polls=100)  # already differs
    changed = []
    waiter = threading.Thread(
        target=lambda: changed.append(spin.spin_until_changed(counter, 0, polls=10**9))
    )
    waiter.start()
    counter[0] += 1  # seen by the compiled loop: the polls are not hoisted
    waiter.join(timeout=30)
    assert not waiter.is_alive() and changed == [True]


def test_spin_with_a_flag_sets_it_first():
    """The flag is set however the spin ends: at once (the counter already
    differs) or after its polls."""
    for counter, seen in ((np.zeros(1, np.int64), 5), (np.zeros(1, np.int64), 0)):
        flag = np.zeros(1, np.int64)
        changed = spin.spin_until_changed(counter, seen, polls=100, flag=flag)
        assert flag[0] == 1 and changed == (seen != 0)


def _write_one(k, out):
    out[k] = k + 1


@pytest.mark.skipif(not spin.available(), reason="needs a spinning worker")
def test_a_worker_that_finishes_a_batch_sets_its_done_flag_after_the_lock():
    """A worker that ran a batch's last call releases the batch's lock, then sets
    its done flag from its compiled spin, where the caller spinning on the flag
    finds the GIL free."""
    with symgrad_compiler.settings.override(spin=True):
        pool = threads.ThreadPool()
    pool.start()
    try:
        for _ in range(20):
            out = np.zeros(4)
            batch = threads._Batch(_write_one, [(k, out) for k in range(4)])
            pool.post(batch, 1)  # the caller takes no call: the worker runs them all
            assert spin.spin_until_changed(batch.done, 0, polls=10**9)
            assert batch.finished.acquire(blocking=False)  # released before the flag
            assert list(out) == [1, 2, 3, 4]
    finally:
        workers = list(pool.workers)
        pool.close()
        for worker in workers:
            worker.join(timeout=30)


@pytest.mark.parametrize("spinning", [True, False])
def test_workers_take_work_posted_while_they_spin_or_sleep(spinning):
    """Batches posted back to back, and after the workers stopped spinning, all
    run to the end; a closed pool's workers exit."""
    with symgrad_compiler.settings.override(spin=spinning):
        pool = threads.ThreadPool()
    assert (pool.posted is not None) == (spinning and spin.available())
    pool.start()

    def kernel(k, out):
        out[k] = k

    for round_ in range(40):
        out = np.zeros(8)
        batch = threads._Batch(kernel, [(k, out) for k in range(8)])
        pool.post(batch, len(pool.workers))
        batch.work()
        batch.finished.acquire()
        assert list(out) == list(range(8))
        if round_ == 20:
            time.sleep(0.05)  # past the workers' spinning: they sleep on the queue
    workers = list(pool.workers)
    pool.close()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()
