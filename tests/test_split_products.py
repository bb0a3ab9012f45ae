"""Big matrix products on the backend's threads (``lowerings/products.py``:
``split_product``): blocks of the result's rows, each one single-threaded BLAS
call, equal numpy's product for every transpose, float32 and float64, NaN and inf
where numpy has them; the whole-program entry cuts its products so (here from any
size) and stays equal to the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from dense_programs import assert_outputs_match, compiled_and_expected, dense_program

from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.lowerings import products


@pytest.fixture
def cut(monkeypatch):
    """Every product cut into row blocks for two threads, however small."""
    monkeypatch.setattr(products, "SPLIT_WORK", 0)
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "count", lambda: 2)
    seen = []
    split = products.product_pieces
    monkeypatch.setattr(
        products, "product_pieces", lambda rows, work: seen.append(rows) or split(rows, work)
    )
    return seen


def test_the_rows_are_cut_per_thread(monkeypatch):
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "count", lambda: 2)
    big = products.SPLIT_WORK
    assert products.product_pieces(1120, big) == [(0, 560), (560, 1120)]  # W8's logits
    assert products.product_pieces(1121, big) == [(0, 561), (561, 1121)]
    assert products.product_pieces(1120, big - 1) == [(0, 1120)]  # small: one BLAS call
    assert products.product_pieces(20, big) == [(0, 20)]  # too few rows
    monkeypatch.setattr(threads, "serial", lambda: True)  # other processes hold the cores
    assert products.product_pieces(1120, big) == [(0, 1120)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_split_products_equal_numpy(cut, dtype, transpose_a, transpose_b):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(37, 70)).astype(dtype)  # op(a): 37 x 70 (or 70 x 37)
    b = rng.normal(size=(70, 45) if not transpose_a else (37, 45)).astype(dtype)
    b = np.ascontiguousarray(b.T) if transpose_b else b
    a[3, 5], a[10, 1], a[20, 2] = np.nan, np.inf, -0.0
    op_a = a.T if transpose_a else a
    op_b = b.T if transpose_b else b
    out = np.empty((op_a.shape[0], op_b.shape[1]), dtype)
    products.split_product(a, b, transpose_a, transpose_b, out)
    # a transposed a is cut along the inner axis (its rows are strided)
    assert cut == [op_a.shape[1] if transpose_a else op_a.shape[0]]
    with np.errstate(all="ignore"):
        expected = op_a @ op_b
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance, equal_nan=True)


@pytest.mark.parametrize("with_bias", [False, True])
def test_the_whole_program_entry_cuts_its_products(cut, with_bias):
    """Dense over every step (W8's decoder) and its gradients: one
    compiled call, every product cut (each thread adding the bias to its
    block), the interpreter's values."""
    rng = np.random.default_rng(4)
    x_value = rng.normal(size=(5, 8, 6)).astype(np.float32)
    w_value = rng.normal(size=(7, 6)).astype(np.float32)
    b_value = rng.normal(size=(7,)).astype(np.float32)
    b_value[2] = np.inf
    bias = b_value if with_bias else None
    graph, values = dense_program(x_value, w_value, bias, flatten=False)
    executable, expected = compiled_and_expected(graph, values)
    cut.clear()
    got = executable._entry(values)  # the entry itself, not the step runner
    assert got is not None and len(cut) >= 3  # the forward and both gradients
    assert_outputs_match(executable(values), expected)
    with np.errstate(all="ignore"):
        direct = products._fully_connected(
            None,
            x_value,
            w_value,
            b_value if with_bias else None,
            num_hidden=7,
            no_bias=not with_bias,
            flatten=False,
        )  # the step runner's route
    np.testing.assert_allclose(direct, expected[-1], rtol=1e-5, atol=1e-5)
