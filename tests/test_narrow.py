"""Few rows times a weight, transposed or not (``backends/numba/narrow.py``):
equal to numpy's product at sizes with partial passes (fewer rows than a pass,
weight rows not a multiple of a pass, inner sizes or columns past the last
whole vector), with NaN, inf and signed zeros where numpy has them, on one
thread and on several; and a Dense layer's forward and its input's gradient at
a small batch take the routes from the whole-program entry and from the step
runner, equal to the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from dense_programs import assert_outputs_match, compiled_and_expected, count_calls, dense_program

from symgrad_compiler.backends.numba import narrow, threads

needs_avx512 = pytest.mark.skipif(not narrow.AVAILABLE, reason="the kernel is for AVX-512 CPUs")

# rows, columns (the transposed weight's rows), inner: a whole pass, one row, a
# weight row past whole passes, inner sizes below, at and past a vector's 16
# lanes, none at all
SIZES = [(8, 30, 64), (1, 7, 5), (3, 100, 33), (8, 2, 16), (5, 31, 300), (8, 10, 0)]
# rows, columns, inner (the untransposed weight's rows): whole passes of DEPTH
# weight rows and whole vectors; a partial pass and columns past the vectors;
# fewer columns than a vector; fewer weight rows than a pass; one row; no weight
# rows at all
UNTRANSPOSED_SIZES = [(8, 48, 64), (3, 45, 37), (8, 7, 19), (5, 100, 3), (1, 17, 300), (2, 20, 0)]


@needs_avx512
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("transposed", [True, False])
def test_the_products_equal_numpy_at_every_size(monkeypatch, transposed, parts):
    """On 1, 2 and 3 threads (by weight rows: blocks of whole passes and a partial
    one; the untransposed product's threads sum into arrays of their own), the
    sums are numpy's."""
    monkeypatch.setattr(threads, "serial", lambda: parts == 1)
    monkeypatch.setattr(threads, "count", lambda: parts)
    rng = np.random.default_rng(9)
    for rows, columns, inner in SIZES if transposed else UNTRANSPOSED_SIZES:
        # one process: nothing cached for one size
        x = rng.normal(size=(rows, inner)).astype(np.float32)
        if transposed:
            w = rng.normal(size=(columns, inner)).astype(np.float32)
            expected = x.astype(np.float64) @ w.T
            compute = narrow.product
        else:
            w = rng.normal(size=(inner, columns)).astype(np.float32)
            expected = x.astype(np.float64) @ w
            compute = narrow.product_untransposed
        out = np.full((rows, columns), np.nan, np.float32)
        compute(x, w, out)
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5 * max(1, inner) ** 0.5)


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
    assert not narrow.suits(8, *big, np.float32, True, True)
    assert not narrow.suits(8, 10, 10, np.float32, False, True)  # too small to split


@needs_avx512
def test_the_untransposed_product_has_numpys_nan_inf_and_signed_zeros(monkeypatch):
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "count", lambda: 2)
    rng = np.random.default_rng(14)
    x = rng.normal(size=(6, 40)).astype(np.float32)
    w = rng.normal(size=(40, 37)).astype(np.float32)
    x[1, 3], x[2, 20] = np.nan, np.inf  # 20: in the second thread's block
    w[5, 36], w[30, 2] = -np.inf, np.inf  # 36: past the whole vectors
    x[5] = -0.0  # a row of negative zeros: its products sum to +0, as numpy's
    out = np.empty((6, 37), np.float32)
    narrow.product_untransposed(x, w, out)
    with np.errstate(all="ignore"):
        expected = x @ w
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
    np.testing.assert_array_equal(np.signbit(out[5]), np.signbit(expected[5]))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=2e-5, atol=1e-4)


def test_only_few_float32_rows_by_a_big_untransposed_weight_are_taken():
    big = 9216, 4096  # columns and inner size of AlexNet's first classifier's input gradient
    assert narrow.suits(8, *big, np.float32, False, False) == narrow.AVAILABLE
    assert narrow.suits(1, *big, np.float32, False, False) == narrow.AVAILABLE
    assert not narrow.suits(9, *big, np.float32, False, False)  # more rows than a pass
    assert not narrow.suits(8, *big, np.float64, False, False)
    assert not narrow.suits(8, *big, np.float32, True, False)
    assert not narrow.suits(8, 1000, 4096, np.float32, False, False)  # 16 MB: OpenBLAS's


@pytest.fixture
def counted(monkeypatch):
    """narrow.product's calls, with the threshold low enough for a small graph."""
    monkeypatch.setattr(narrow, "MINIMUM_WORK", 1)
    return count_calls(monkeypatch, narrow)


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
    b_value = rng.normal(size=(50,)).astype(np.float32) if with_bias else None
    x_value[2, 7] = np.inf
    executable, expected = compiled_and_expected(*dense_program(x_value, w_value, b_value))
    values = [x_value, w_value] + ([b_value] if with_bias else [])
    counted.clear()
    got = executable._entry(values)  # the entry itself
    assert got is not None and counted == [(5, 50)]
    assert_outputs_match(got, expected)
    executable._entry = None
    counted.clear()
    assert_outputs_match(executable(values), expected)  # the step runner
    assert counted == [(5, 50)]


@needs_avx512
def test_a_dense_input_gradient_at_a_small_batch_takes_the_route(monkeypatch):
    """Dense(50) of a (5, 40) batch: the input's gradient, (5 x 50) by the (50 x 40)
    weight untransposed, is the row-by-row product in the entry and in the step
    runner (the threshold lowered for a small graph); the interpreter's values."""
    monkeypatch.setattr(narrow, "MINIMUM_WEIGHT", 1)
    counted = count_calls(monkeypatch, narrow, "product_untransposed")
    rng = np.random.default_rng(15)
    x_value = rng.normal(size=(5, 40)).astype(np.float32)
    w_value = rng.normal(size=(50, 40)).astype(np.float32)
    w_value[3, 7] = np.inf
    executable, expected = compiled_and_expected(*dense_program(x_value, w_value))
    counted.clear()
    got = executable._entry([x_value, w_value])
    assert got is not None and counted == [(5, 40)]
    assert_outputs_match(got, expected)
    executable._entry = None
    counted.clear()
    assert_outputs_match(executable([x_value, w_value]), expected)
    assert counted == [(5, 40)]
