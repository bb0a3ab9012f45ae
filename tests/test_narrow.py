"""Few rows times a transposed weight (``backends/numba/narrow.py``): equal to
numpy's product at sizes with partial passes (fewer rows than a pass, weight
rows not a multiple of a pass, inner sizes past the last whole vector), with
NaN, inf and signed zeros where numpy has them; and a Dense layer's forward at a
small batch takes the route from the whole-program entry and from the step
runner, equal to the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad_compiler import settings
from symgrad_compiler.backends.numba import narrow, threads
from symgrad_compiler.registry import variable

needs_avx512 = pytest.mark.skipif(not narrow.AVAILABLE, reason="the kernel is for AVX-512 CPUs")

# rows, weight rows, inner: a whole pass, one row, a weight row past whole
# passes, inner sizes below, at and past a vector's 16 lanes, none at all
SIZES = [(8, 30, 64), (1, 7, 5), (3, 100, 33), (8, 2, 16), (5, 31, 300), (8, 10, 0)]


@needs_avx512
def test_the_passes_equal_numpy_at_every_size():
    rng = np.random.default_rng(9)
    for rows, weight_rows, inner in SIZES:  # one process: nothing cached for one size
        x = rng.normal(size=(rows, inner)).astype(np.float32)
        w = rng.normal(size=(weight_rows, inner)).astype(np.float32)
        out = np.full((rows, weight_rows), np.nan, np.float32)
        narrow.product(x, w, out)
        np.testing.assert_allclose(out, x @ w.T, rtol=2e-5, atol=2e-5 * max(1, inner) ** 0.5)


@needs_avx512
def test_nan_inf_and_signed_zeros_as_numpy():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(6, 40)).astype(np.float32)
    w = rng.normal(size=(20, 40)).astype(np.float32)
    x[1, 3], x[2, 20], w[5, 39] = np.nan, np.inf, -np.inf  # 39: past the whole vectors
    x[5] = -0.0  # a row of negative zeros: its products sum to +0, as numpy's
    out = np.empty((6, 20), np.float32)
    narrow.product(x, w, out)
    with np.errstate(all="ignore"):
        expected = x @ w.T
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    np.testing.assert_array_equal(np.signbit(out[5]), np.signbit(expected[5]))
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-4)


@needs_avx512
def test_the_threads_compute_what_one_pass_does(monkeypatch):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(8, 200)).astype(np.float32)
    w = rng.normal(size=(301, 200)).astype(np.float32)
    monkeypatch.setattr(threads, "serial", lambda: True)
    alone = np.empty((8, 301), np.float32)
    narrow.product(x, w, alone)
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "count", lambda: 2)
    shared = np.empty((8, 301), np.float32)
    narrow.product(x, w, shared)
    np.testing.assert_array_equal(shared, alone)  # the same sums, whoever computes them


def test_only_few_float32_rows_by_a_transposed_weight_are_taken():
    big = 4096, 9216  # weight rows and inner size of AlexNet's first classifier layer
    assert narrow.suits(8, *big, np.float32, False, True) == narrow.AVAILABLE
    assert not narrow.suits(9, *big, np.float32, False, True)  # more rows than a pass
    assert not narrow.suits(8, *big, np.float64, False, True)
    assert not narrow.suits(8, *big, np.float32, False, False)
    assert not narrow.suits(8, *big, np.float32, True, True)
    assert not narrow.suits(8, 10, 10, np.float32, False, True)  # too small to split


@pytest.fixture
def counted(monkeypatch):
    """narrow.product's calls, with the threshold low enough for a small graph."""
    monkeypatch.setattr(narrow, "MINIMUM_WORK", 1)
    calls = []
    product = narrow.product
    monkeypatch.setattr(narrow, "product", lambda *a: calls.append(a[2].shape) or product(*a))
    return calls


@needs_avx512
@pytest.mark.parametrize("with_bias", [False, True])
def test_a_dense_forward_at_a_small_batch_takes_the_route(counted, with_bias):
    """Dense(50) of a (5, 40) batch, as Gluon records it (FullyConnected, which
    simplify makes a product and a bias add), with its gradients: the forward
    product is ours in the entry and in the step runner; the interpreter's
    values."""
    rng = np.random.default_rng(12)
    x_value = rng.normal(size=(5, 40)).astype(np.float32)
    w_value = rng.normal(size=(50, 40)).astype(np.float32)
    b_value = rng.normal(size=(50,)).astype(np.float32)
    x_value[2, 7] = np.inf
    x, w = variable(x_value.shape, np.float32, name="x"), variable(w_value.shape, np.float32)
    b = variable(b_value.shape, np.float32, name="b")
    xe, we, be = compiler.Entry(x, 0), compiler.Entry(w, 0), compiler.Entry(b, 0)
    y = compiler.call(
        "FullyConnected",
        compiler.Expr(xe),
        compiler.Expr(we),
        *([compiler.Expr(be)] if with_bias else []),
        num_hidden=50,
        no_bias=not with_bias,
    )
    loss = compiler.call("sum", compiler.call("tanh", y) * y)
    one = compiler.make_node("ones_like", [loss.entry], {})
    wrt = [xe, we, be] if with_bias else [xe, we]
    grads = compiler.differentiate([loss.entry], [compiler.Entry(one, 0)], wrt)
    inputs = [x, w, b] if with_bias else [x, w]
    graph = compiler.ProgramGraph(inputs, [loss.entry, *grads, y.entry])
    values = [x_value, w_value, b_value] if with_bias else [x_value, w_value]
    with np.errstate(all="ignore"):
        expected = compiler.compile_graph(graph, "interpreter")(values)
    with settings.override(compile="sync"):
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(2):
            executable(values)
    assert executable._entry is not None
    counted.clear()
    got = executable._entry(values)  # the entry itself
    assert got is not None and counted == [(5, 50)]
    executable._entry = None
    counted.clear()
    by_steps = executable(values)  # the step runner
    assert counted == [(5, 50)]
    with np.errstate(all="ignore"):
        for results in (got, by_steps):
            for g, e in zip(results, expected):
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, equal_nan=True)
