"""A large fused loop is cut into pieces only when the pieces can run on several
threads: while other processes hold all cores but one (``threads.serial()``), the
step calls its kernel once on the whole loop (W7's BatchNorm kernels paid ~10%
for slicing, dispatching and summing partials of pieces run one after another)."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler import Entry, Expr, ProgramGraph, call, compile_graph, settings, variable
from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.blas_threads import blas_threads

SHAPE = (32, 8, 16, 32)  # 131072 elements: split over threads when they are free


def _channel_sums_graph() -> ProgramGraph:
    """BatchNorm's gradient shape: an elementwise product and its sums per channel."""
    g, x = variable(SHAPE, np.float32), variable(SHAPE, np.float32)
    product = Expr(Entry(g, 0)) * Expr(Entry(x, 0))
    over = {"axis": (1,), "exclude": True, "keepdims": True}
    return ProgramGraph([g, x], [call("sum", product, **over).entry, product.entry])


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    g, x = (rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2))
    g[0, 0, 0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    return [g, x]


@pytest.mark.parametrize("free", [1, 2])
def test_serial_machine_runs_one_call_and_same_values(monkeypatch, free):
    """One kernel call on the whole loop while one core is free, pieces otherwise;
    the same values (NaN, infinities, signed zero included) either way."""
    monkeypatch.setattr(threads, "_THREADS", 2)
    monkeypatch.setattr(blas_threads(), "free", free)
    monkeypatch.setattr(settings.current(), "adapt_threads", False)  # keep `free` as set
    graph = _channel_sums_graph()
    values = _inputs()
    with np.errstate(all="ignore"):
        want = compile_graph(graph, "interpreter")([v.copy() for v in values])
    program = compile_graph(graph, "numba")
    program([v.copy() for v in values])  # compiles; the next call runs the kernels
    calls: list[tuple] = []
    for step in program.fused:
        inner = step.kernel

        def counted(*args, inner=inner):
            calls.append(args)
            return inner(*args)

        monkeypatch.setattr(step, "kernel", counted)
    got = program([v.copy() for v in values])
    expected_calls = 1 if free == 1 else len(threads.split(SHAPE[0], int(np.prod(SHAPE))))
    assert len(calls) == expected_calls > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=5e-3)


def test_serial_follows_the_free_cores(monkeypatch):
    """``serial()`` reads the cores other processes leave this one."""
    monkeypatch.setattr(blas_threads(), "free", 1)
    assert threads.serial()
    monkeypatch.setattr(blas_threads(), "free", 2)
    assert not threads.serial()
