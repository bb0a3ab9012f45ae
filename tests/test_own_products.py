"""float32 products on our own tiles where OpenBLAS runs kernels without AVX-512
(``backends/numba/blas_kernels.py``): the compiled products (``blas.py``'s tiled
route, which convolutions and recurrences call) and the threaded ones
(``sgemm.product`` with a transposed B and a bias) equal numpy's product for
every layout and sizes that leave partial tiles, with NaN, inf and signed zeros
where numpy has them; ``SYMGRAD_OWN_PRODUCTS=0`` keeps OpenBLAS; and what
OpenBLAS runs is read, not guessed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad_compiler.backends.numba import blas, blas_kernels, sgemm, threads
from symgrad_compiler.backends.numba.lowerings import products
from symgrad_compiler.registry import variable

needs_avx512 = pytest.mark.skipif(not sgemm.AVAILABLE, reason="the tiles are for AVX-512 CPUs")

# rows, columns, inner: partial tiles (MR=12, NR=32), partial packed blocks (NC=256,
# KC=256), the narrow route (rows a multiple of 8, a small result over blas's
# NARROW_INNER positions or fewer columns than a tile), a small result over few
# positions (the tiles), inner positions past whole vectors, and products below
# TILED_WORK that stay with OpenBLAS
SIZES = [
    (37, 70, 257),
    (100, 300, 600),
    (32, 32, 1030),
    (16, 24, 700),
    (64, 40, 300),
    (8, 600, 77),
    (13, 33, 1),
    (130, 20, 5),
    (24, 64, 8),
]
LAYOUTS = [(False, False), (False, True), (True, False), (True, True)]


def _operands(rng, rows, columns, inner, transpose_a, transpose_b):
    a = rng.normal(size=(inner, rows) if transpose_a else (rows, inner)).astype(np.float32)
    b = rng.normal(size=(columns, inner) if transpose_b else (inner, columns)).astype(np.float32)
    return a, b


def _expected(a, b, transpose_a, transpose_b):
    with np.errstate(all="ignore"):
        return (a.T if transpose_a else a) @ (b.T if transpose_b else b)


@needs_avx512
@pytest.mark.parametrize("transpose_a, transpose_b", LAYOUTS)
def test_compiled_products_equal_numpy_at_every_size(transpose_a, transpose_b):
    rng = np.random.default_rng(11)
    for rows, columns, inner in SIZES:  # one process: nothing cached for one size
        a, b = _operands(rng, rows, columns, inner, transpose_a, transpose_b)
        out = np.full((rows, columns), np.nan, np.float32)
        blas._tiled_matmul_into(a, b, transpose_a, transpose_b, out)
        tolerance = 2e-5 * max(1, inner) ** 0.5
        expected = _expected(a, b, transpose_a, transpose_b)
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=tolerance)


@needs_avx512
@pytest.mark.parametrize("transpose_a, transpose_b", LAYOUTS)
def test_special_values_land_where_numpys_do(transpose_a, transpose_b):
    rng = np.random.default_rng(12)
    # narrow's (a small result over many positions), the tiles' (also a small one
    # over few positions, blas.NARROW_INNER)
    for rows, columns, inner in [(48, 40, 800), (37, 300, 260), (48, 40, 300)]:
        a, b = _operands(rng, rows, columns, inner, transpose_a, transpose_b)
        op_a = a.T if transpose_a else a  # views: writes reach a and b
        op_b = b.T if transpose_b else b
        op_a[3, 5], op_a[10, 1], op_a[20, 2] = np.nan, np.inf, -np.inf
        op_b[4, 7] = np.inf
        op_a[30:] = -0.0  # rows of negative zeros: their sums are +0, as numpy's
        out = np.empty((rows, columns), np.float32)
        blas._tiled_matmul_into(a, b, transpose_a, transpose_b, out)
        expected = _expected(a, b, transpose_a, transpose_b)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected))
        np.testing.assert_array_equal(np.isneginf(out), np.isneginf(expected))
        np.testing.assert_array_equal(np.signbit(out[30:]), np.signbit(expected[30:]))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(out[finite], expected[finite], rtol=2e-5, atol=1e-3)


def test_float64_products_stay_exact_to_numpy():
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(70, 300)), rng.normal(size=(90, 300))
    out = np.empty((70, 90))
    blas.matmul_into(a, b, False, True, out)
    np.testing.assert_allclose(out, a @ b.T, rtol=1e-12, atol=1e-12)


@needs_avx512
@pytest.mark.parametrize("transpose_a", [False, True])
def test_threaded_packed_blocks_equal_one_block_with_the_bias(monkeypatch, transpose_a):
    monkeypatch.setattr(threads, "serial", lambda: False)
    rng = np.random.default_rng(14)
    a, b = _operands(rng, 90, 700, 300, transpose_a, True)
    bias = rng.normal(size=700).astype(np.float32)
    out, whole = np.empty((90, 700), np.float32), np.empty((90, 700), np.float32)
    sgemm.product(a, b, transpose_a, out, sgemm.KC, transpose_b=True, bias=bias)
    sgemm.gemm_panels(a, transpose_a, b, True, whole, 0, 90, 0, 700)
    np.testing.assert_array_equal(out, whole + bias)  # the same tiles, whoever computes
    assert len(sgemm.blocks(90, 700, 2, columns_first=True)) == 2  # columns, one each
    assert sgemm.blocks(90, 700, 2, columns_first=True)[0][3] % sgemm.NR == 0


def test_the_route_follows_what_openblas_runs():
    core = blas_kernels.openblas_core()
    assert core is None or isinstance(core, str) and core
    wins = sgemm.AVAILABLE and core is not None and core.lower() not in blas_kernels.AVX512_CORES
    assert blas_kernels.OWN_TILES == (wins and blas_kernels.settings.current().own_products)
    assert (blas.matmul_into is blas._tiled_matmul_into) == blas_kernels.OWN_TILES
    assert sgemm.general(256, 256, 256, np.float32) == blas_kernels.OWN_TILES
    assert not sgemm.general(256, 256, 256, np.float64)


def test_the_setting_keeps_openblas():
    code = (
        "from symgrad_compiler.backends.numba import blas, blas_kernels\n"
        "print(blas_kernels.OWN_TILES, blas.matmul_into is blas._blas_matmul_into)"
    )
    env = dict(os.environ, SYMGRAD_OWN_PRODUCTS="0")
    shown = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == ["False", "True"]


def test_an_entry_calls_numpys_blas_for_products_it_knows_are_small():
    """A product whose traced shapes make fewer than ``blas.SMALL_WORK``
    multiply-adds does not link the tiles into its program (seconds of compiling
    on an empty cache); a bigger one below the threads' size takes the tiled
    route; both equal the interpreter."""
    from dense_programs import compiled_and_expected, dense_program

    rng = np.random.default_rng(15)
    for rows, inner, columns, route in [
        (16, 30, 20, "small_matmul_into"),
        (160, 240, 150, "matmul_into"),  # 5.8M multiply-adds: over SMALL_WORK
    ]:
        x = rng.normal(size=(rows, inner)).astype(np.float32)
        w = rng.normal(size=(columns, inner)).astype(np.float32)
        graph, values = dense_program(x, w, op="dot")
        executable, expected = compiled_and_expected(graph, values)
        source = executable.plan.entry.source
        forward = f"blas.{route}(s0, s1, False, True"
        assert forward in source, source
        for got, want in zip(executable._entry(values), expected):  # sums of 240 terms
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_an_entry_that_links_the_tiles_gives_its_small_products_them_too():
    """Once one product of an entry is big enough to link the tiles, its small
    products (a classifier's (64 x 128) by (128 x 10), and that layer's gradients)
    take them as well, at no cost in compiling, and still equal the interpreter."""
    from dense_programs import compiled_and_expected

    rng = np.random.default_rng(16)
    arrays = [rng.normal(size=s).astype(np.float32) for s in [(64, 300), (128, 300), (10, 128)]]
    inputs = [variable(a.shape, a.dtype, name=f"in{i}") for i, a in enumerate(arrays)]
    entries = [compiler.Entry(v, 0) for v in inputs]
    x, w1, w2 = (compiler.Expr(e) for e in entries)
    hidden = compiler.call("tanh", compiler.call("dot", x, w1, transpose_b=True))  # 2.5M
    y = compiler.call("dot", hidden, w2, transpose_b=True)  # 82K multiply-adds
    loss = compiler.call("sum", y * y)
    one = compiler.make_node("ones_like", [loss.entry], {})
    grads = compiler.differentiate([loss.entry], [compiler.Entry(one, 0)], entries)
    graph = compiler.ProgramGraph(inputs, [loss.entry, *grads])

    executable, expected = compiled_and_expected(graph, arrays)
    assert products.links_tiles(executable.plan.steps)
    source = executable.plan.entry.source
    assert "small_matmul_into" not in source, source
    assert source.count("blas.matmul_into(") >= 4, source  # forward, gradients of both
    for got, want in zip(executable._entry(arrays), expected):  # sums that cancel
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * np.abs(want).max())
