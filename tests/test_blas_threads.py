"""OpenBLAS's thread count follows the free cores (compiler/backends/numba/
blas_threads.py): fewer threads while other processes compete for the cores,
all of them again once they are free, one while convolutions run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import symgrad_compiler
from symgrad_compiler.backends.numba import blas_threads as bt


class FakeOpenBLAS:
    """OpenBLAS's setter and getter, recording the counts set."""

    def __init__(self, threads: int):
        self.threads = threads
        self.calls: list[int] = []

    def set(self, n: int) -> None:
        self.calls.append(n)
        self.threads = n

    def get(self) -> int:
        return self.threads


def _controlled(monkeypatch, tasks: list[int], cores: int = 2, threads: int = 2):
    monkeypatch.setattr(bt, "SAMPLE_SECONDS", 0.0)  # sample at every call
    blas = FakeOpenBLAS(threads)
    samples = iter(tasks)
    control = bt.BlasThreads((blas.set, blas.get), lambda: next(samples), cores=cores)
    return control, blas


def test_the_threads_wanted_are_the_cores_the_other_tasks_leave():
    blas = FakeOpenBLAS(4)
    control = bt.BlasThreads((blas.set, blas.get), lambda: None, cores=4)
    # runnable tasks of other processes -> threads
    assert [control.wanted(t) for t in (0, 1, 2, 3, 5)] == [4, 3, 2, 1, 1]


def test_never_more_threads_than_openblas_was_given():
    blas = FakeOpenBLAS(2)
    control = bt.BlasThreads((blas.set, blas.get), lambda: None, cores=8)
    assert control.wanted(0) == 2


def test_a_count_changes_once_two_samples_agree_and_comes_back(monkeypatch):
    # free, one busy process (a snapshot alone is not trusted), busy again: one
    # thread; the other process ends: two threads again
    control, blas = _controlled(monkeypatch, [0, 1, 0, 1, 1, 0, 0, 0])
    seen = []
    for _ in range(8):
        control.adapt()
        seen.append(control.current)
    assert seen == [2, 2, 2, 2, 1, 1, 2, 2]
    assert blas.calls == [1, 2]


def test_convolutions_hold_one_thread_and_give_back_the_adapted_count(monkeypatch):
    control, blas = _controlled(monkeypatch, [1, 1])
    with control.alone():
        assert blas.threads == 1
        with control.alone():  # nested (two threads' convolutions)
            pass
        assert blas.threads == 1
        control.adapt()
        control.adapt()  # adapted to one thread meanwhile: OpenBLAS stays at one
        assert control.current == 1 and blas.calls == [1]
    assert blas.threads == 1
    control.current = 2
    with control.alone():
        pass
    assert blas.threads == 2


def test_without_openblas_controls_nothing_is_done():
    control = bt.BlasThreads(None, lambda: 99, cores=2)
    control.adapt()
    with control.alone():
        pass
    assert control.current == control.most == 1


def test_the_setting_turns_adapting_off(monkeypatch):
    calls = []
    monkeypatch.setattr(bt.BlasThreads, "adapt", lambda self: calls.append(1))
    with symgrad_compiler.settings.override(adapt_threads=False):
        bt.adapt()
    assert calls == []
    bt.adapt()
    assert calls == [1]


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc on this system")
def test_this_process_s_own_threads_are_not_counted_as_others():
    import threading

    stop = threading.Event()
    block = np.ones((300, 300))

    def spin():  # numpy's product releases the GIL: the threads run at once
        while not stop.is_set():
            np.dot(block, block)

    count = bt.OtherBusyCores(window=0.3)
    assert count() is None  # a window begins
    spinners = [threading.Thread(target=spin) for _ in range(3)]
    for spinner in spinners:
        spinner.start()
    try:
        # three busy threads of ours keep the cores busy, and come and go from
        # the scheduler's run queue: none of it is another process's (a snapshot
        # of runnable tasks counted them as others half the time)
        time.sleep(0.4)
        others = count()
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join()
    assert others is not None and others < 2  # 3 or more if ours counted


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc on this system")
def test_another_process_s_busy_core_is_counted():
    count = bt.OtherBusyCores(window=0.5)
    count()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.7)
        others = count()
    finally:
        busy.kill()
        busy.wait()
    assert others is not None and others >= 1


def test_products_give_the_same_numbers_on_any_thread_count():
    control = bt.blas_threads()
    if control.most == 1:
        pytest.skip("OpenBLAS runs on one thread here")
    rng = np.random.default_rng(0)
    a, b = rng.random((200, 300)), rng.random((300, 100))
    expected = a @ b
    with control.alone():
        np.testing.assert_allclose(a @ b, expected, rtol=1e-13)
    np.testing.assert_allclose(a @ b, expected, rtol=1e-13)


def test_the_pool_runs_on_the_calling_thread_while_one_core_is_free(monkeypatch):
    import threading

    from symgrad_compiler.backends.numba import threads

    control, _ = _controlled(monkeypatch, [3, 3])
    monkeypatch.setattr(bt, "_THREADS", control)
    ran_on = []

    def kernel(k):
        ran_on.append(threading.get_ident())

    threads.run(kernel, [(k,) for k in range(8)])
    assert control.free == 2
    control.adapt()
    control.adapt()  # three tasks of other processes on two cores, twice
    assert control.free == 1 and control.current == 1
    ran_on.clear()
    threads.run(kernel, [(k,) for k in range(8)])
    assert ran_on == [threading.get_ident()] * 8


def test_a_replayed_product_follows_the_free_cores_on_its_hot_path(monkeypatch):
    """``mx.compile``'s hot path (the entry specialised to the inputs) adapts
    OpenBLAS's threads before each call of a program with a product, as the
    general path does; a program without one pays nothing for it."""
    import symgrad as mx
    from symgrad_compiler.backends.numba import executable

    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    calls: list[int] = []
    monkeypatch.setattr(executable, "adapt_blas_threads", lambda: calls.append(1))
    X, W = mx.sym.var("X"), mx.sym.var("W")
    product = mx.compile(mx.sym.sum(mx.sym.tanh(mx.sym.dot(X, W))), wrt=["W"])
    elementwise = mx.compile(mx.sym.sum(mx.sym.tanh(X) * X), wrt=["X"])
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((8, 5)), rng.standard_normal((5, 3))
    for _ in range(3):  # compiled, then on the hot path
        product(X=x, W=w)
        elementwise(X=x)
    assert product._hot is not None and elementwise._hot is not None
    before = len(calls)
    value, grads = product(X=x, W=w)
    assert len(calls) == before + 1
    assert np.allclose(grads["W"], x.T @ (1 - np.tanh(x @ w) ** 2))
    elementwise(X=x)
    assert len(calls) == before + 1


def test_a_program_answered_on_numpy_before_it_compiles_follows_the_free_cores(monkeypatch):
    """While a program's kernels compile in the background its calls run on numpy,
    whose products use OpenBLAS too: those calls adapt its threads as compiled ones
    do (two threads on a core another process held made a (256, 784) x (784, 10)
    product take 8 ms instead of 75 us, and the short script 4x its time)."""
    import symgrad as mx
    from symgrad_compiler.backends.numba import executable

    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "background")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile_after", 10**9)
    calls: list[int] = []
    monkeypatch.setattr(executable, "adapt_blas_threads", lambda: calls.append(1))
    X, W = mx.sym.var("X"), mx.sym.var("W")
    product = mx.compile(mx.sym.sum(mx.sym.dot(X, W)), wrt=["W"])
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((4, 2))
    for _ in range(3):
        value, grads = product(X=x, W=w)
        assert np.allclose(grads["W"], x.T @ np.ones((6, 2)))
    assert len(calls) == 3


def test_a_program_with_convolutions_keeps_openblas_on_one_thread(monkeypatch):
    """A program whose convolutions share their images out over the backend's
    threads runs with OpenBLAS on one thread, its products included (Plan.blas_alone:
    otherwise OpenBLAS's idle worker spins on the core the pool's worker needs,
    ResNet-18's step 583-605 -> 460-495 ms); a program of products only keeps
    OpenBLAS's threads. The convolutional program's value is numpy's."""
    import symgrad as mx

    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    blas = FakeOpenBLAS(2)
    control = bt.BlasThreads((blas.set, blas.get), lambda: 0, cores=2)
    monkeypatch.setattr(bt, "_THREADS", control)
    X, W, K = mx.sym.var("X"), mx.sym.var("W"), mx.sym.var("K")
    features = mx.sym.Convolution(X, K, kernel=(3, 3), num_filter=4, no_bias=True, pad=(1, 1))
    scores = mx.sym.dot(mx.sym.flatten(mx.sym.relu(features)), W)
    convolutional = mx.compile(mx.sym.sum(mx.sym.tanh(scores)), wrt=["K", "W"])
    dense = mx.compile(mx.sym.sum(mx.sym.tanh(mx.sym.dot(mx.sym.flatten(X), W))), wrt=["W"])
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 5, 5))
    k, w = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal((100, 6))
    for _ in range(3):  # compiled by the second call
        convolutional(X=x, K=k, W=w)
        dense(X=x, W=w[:50])
    blas.calls.clear()
    value, grads = convolutional(X=x, K=k, W=w)
    assert blas.calls and blas.calls[0] == 1 and blas.calls[-1] == 2
    blas.calls.clear()
    dense(X=x, W=w[:50])
    assert 1 not in blas.calls
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    features = np.einsum("ncijab,fcab->nfij", windows, k)
    expected = np.tanh(np.maximum(features, 0).reshape(3, -1) @ w).sum()
    assert np.allclose(value, expected, rtol=1e-10)
