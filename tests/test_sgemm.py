"""Our own float32 product (``backends/numba/sgemm.py``): the register-tile
GEMM equals numpy's product for A as it is or transposed and every size that leaves
partial tiles (in passes and in one pass over every inner position, which untransposed
products up to ``ONE_PASS_INNER`` deep take, and with B packed in cache-sized
blocks, which products of many rows take), with NaN, inf and signed zeros where
numpy has them; the threads' blocks cover the result once; and a weight gradient over few inner
positions takes this route from the whole-program entry and from the step
runner, equal to the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from dense_programs import assert_outputs_match, compiled_and_expected, count_calls, dense_program

from symgrad_compiler.backends.numba import sgemm, threads
from symgrad_compiler.backends.numba.lowerings import products

needs_avx512 = pytest.mark.skipif(not sgemm.AVAILABLE, reason="the kernel is for AVX-512 CPUs")

# rows, columns, inner: whole and partial tiles (MR=12, NR=32), one inner
# position, a partial last block of KC=256, no inner positions at all
SIZES = [
    (24, 64, 8),
    (13, 33, 1),
    (1, 1, 5),
    (37, 70, 257),
    (100, 45, 600),
    (30, 64, 1000),
    (12, 32, 0),
    (5, 200, 3),
]


def _operands(rng, rows, columns, inner, transpose_a):
    a = rng.normal(size=(inner, rows) if transpose_a else (rows, inner)).astype(np.float32)
    b = rng.normal(size=(inner, columns)).astype(np.float32)
    return a, b


def _expected(a, b, transpose_a):
    with np.errstate(all="ignore"):
        return (a.T if transpose_a else a) @ b


@needs_avx512
@pytest.mark.parametrize("transpose_a", [False, True])
def test_the_tiles_equal_numpy_at_every_size(transpose_a):
    rng = np.random.default_rng(5)
    for rows, columns, inner in SIZES:  # one process: nothing cached for one size
        a, b = _operands(rng, rows, columns, inner, transpose_a)
        expected = _expected(a, b, transpose_a)
        # the routes' passes, and one pass over every inner position (pass_depth)
        for block in (sgemm.KC, sgemm.FEW_ROWS_BLOCK, max(inner, 1)):
            out = np.full((rows, columns), np.nan, np.float32)
            sgemm.gemm_block(a, transpose_a, b, out, 0, rows, 0, columns, block)
            tolerance = 2e-5 * max(1, inner) ** 0.5
            np.testing.assert_allclose(out, expected, rtol=2e-5, atol=tolerance)


@needs_avx512
@pytest.mark.parametrize("transpose_a", [False, True])
def test_nan_inf_and_signed_zeros_as_numpy(transpose_a):
    rng = np.random.default_rng(6)
    a, b = _operands(rng, 30, 70, 9, transpose_a)
    op_a = a.T if transpose_a else a  # a view: writes reach a
    op_a[3, 5], op_a[10, 1], op_a[20, 2] = np.nan, np.inf, -np.inf
    b[4, 7] = np.inf
    op_a[25:] = -0.0  # rows of negative zeros: their products sum to +0, as numpy's
    out = np.empty((30, 70), np.float32)
    sgemm.gemm_block(a, transpose_a, b, out, 0, 30, 0, 70, sgemm.FEW_ROWS_BLOCK)
    expected = _expected(a, b, transpose_a)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected))
    np.testing.assert_array_equal(np.signbit(out[25:]), np.signbit(expected[25:]))
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=1e-4)


# (inner, columns, k0, depth, n0, width) of op(B): depths and widths on both sides
# of the 16 x 16 blocks a transposed B is transposed in, passes of panel_depth's,
# partial panels
PACKS = [
    (784, 256, 0, 256, 0, 256),
    (784, 256, 768, 16, 128, 128),
    (784, 256, 524, 260, 128, 128),
    (300, 70, 37, 200, 3, 67),
    (40, 50, 5, 35, 20, 30),
    (17, 33, 0, 17, 0, 33),
    (16, 16, 0, 16, 0, 16),
    (3, 5, 1, 2, 0, 5),
]


@needs_avx512
@pytest.mark.parametrize("transpose_b", [False, True])
def test_packing_b_copies_every_float_bit_for_bit(transpose_b):
    # a transposed B: whole 16 x 16 blocks transposed in registers, the rest
    # copied one by one; an untransposed one: rows of NR copied; NaN, inf and -0
    rng = np.random.default_rng(8)
    for inner, columns, k0, depth, n0, width in PACKS:
        op_b = rng.normal(size=(inner, columns)).astype(np.float32)
        op_b.flat[::7], op_b.flat[3::11], op_b.flat[5::13] = np.nan, -np.inf, -0.0
        panels = np.full((-(-width // sgemm.NR), depth, sgemm.NR), 7.0, np.float32)
        if transpose_b:
            sgemm._pack_b_panels(np.ascontiguousarray(op_b.T), k0, depth, n0, width, panels)
        else:
            sgemm._pack_b_rows(op_b, k0, depth, n0, width, panels)
        expected = np.zeros((depth, panels.shape[0] * sgemm.NR), np.float32)
        expected[:, :width] = op_b[k0 : k0 + depth, n0 : n0 + width]
        expected = expected.reshape(depth, -1, sgemm.NR).transpose(1, 0, 2)
        np.testing.assert_array_equal(panels.view(np.int32), expected.view(np.int32))


@needs_avx512
def test_packing_a_sliver_of_a_copies_every_float_bit_for_bit():
    # a whole tile of an untransposed A is transposed 16 inner positions at a
    # time, and a whole tile of a transposed A copied a row of 16 at a time
    # where a has 16 columns from i0 (not at 116 of 128), both with stores that
    # spill into the sliver's spare row; the rest, partial tiles, one by one
    rng = np.random.default_rng(9)
    for rows, inner, i0, k0, depth in [
        (128, 784, 0, 0, 256),
        (128, 784, 116, 768, 16),
        (40, 300, 12, 37, 200),
        (30, 50, 24, 5, 35),
        (12, 7, 0, 0, 7),
    ]:
        a = rng.normal(size=(rows, inner)).astype(np.float32)
        a.flat[::7], a.flat[3::11], a.flat[5::13] = np.nan, -np.inf, -0.0
        filled = min(sgemm.MR, rows - i0)
        expected = np.zeros((depth, sgemm.MR), np.float32)
        expected[:, :filled] = a[i0 : i0 + filled, k0 : k0 + depth].T
        for transpose_a, operand in [(False, a), (True, np.ascontiguousarray(a.T))]:
            sliver = np.full((depth + 1, sgemm.MR), 7.0, np.float32)
            sgemm._pack_a(operand, transpose_a, i0, filled, k0, depth, sliver)
            np.testing.assert_array_equal(sliver[:depth].view(np.int32), expected.view(np.int32))


def test_the_blocks_cover_the_result_once():
    for rows, columns, parts in [
        (4096, 9216, 2),
        (1000, 64, 2),
        (20, 300, 2),
        (20, 40, 2),
        (4096, 9216, 1),
    ]:
        seen = np.zeros((rows, columns), int)
        for m0, m1, n0, n1 in sgemm.blocks(rows, columns, parts):
            seen[m0:m1, n0:n1] += 1
        assert (seen == 1).all()
    assert len(sgemm.blocks(4096, 9216, 2)) == 2  # one per thread, whole tiles of rows
    assert sgemm.blocks(4096, 9216, 2)[0][1] % sgemm.MR == 0


@needs_avx512
def test_threaded_product_equals_one_block(monkeypatch):
    monkeypatch.setattr(threads, "serial", lambda: False)
    rng = np.random.default_rng(7)
    a, b = _operands(rng, 500, 300, 16, True)
    out, whole = np.empty((500, 300), np.float32), np.empty((500, 300), np.float32)
    sgemm.product(a, b, True, out, sgemm.KC)
    sgemm.gemm_block(a, True, b, whole, 0, 500, 0, 300, sgemm.KC)
    np.testing.assert_array_equal(out, whole)  # the same tiles, whoever computes them


@needs_avx512
@pytest.mark.parametrize("serial", [False, True])
def test_a_product_takes_two_blocks_a_thread_or_one_alone(monkeypatch, serial):
    """Split over the threads, a product big enough is cut into two blocks a thread
    (the first thread done takes the next); on one thread it stays one block (a
    packed B's blocks would each pack A again). Either way the same numbers."""
    monkeypatch.setattr(threads, "serial", lambda: serial)
    monkeypatch.setattr(threads, "count", lambda: 2)
    blocks = []
    made = sgemm.blocks

    def recording(*args, **kwargs):
        blocks.append(made(*args, **kwargs))
        return blocks[-1]

    monkeypatch.setattr(sgemm, "blocks", recording)
    rng = np.random.default_rng(8)
    for transpose_b in (False, True):
        a = rng.standard_normal((200, 96)).astype(np.float32)
        b = rng.standard_normal((300, 96) if transpose_b else (96, 300)).astype(np.float32)
        out = np.empty((200, 300), np.float32)
        sgemm.product(a, b, False, out, sgemm.KC, transpose_b)
        np.testing.assert_allclose(out, a @ (b.T if transpose_b else b), rtol=1e-4, atol=1e-4)
        assert len(blocks[-1]) == (1 if serial else 4)


def test_the_routes_taken_are_dense_gradients_at_small_batches():
    weight = 4096, 9216  # AlexNet's first classifier weight: (out, in)
    taken = sgemm.KC if sgemm.AVAILABLE else 0
    few_rows = sgemm.FEW_ROWS_BLOCK if sgemm.AVAILABLE else 0
    # the weight gradient dz^T @ x at batch 8: rows, columns, inner
    assert sgemm.depth_block(*weight, 8, np.float32, True, False) == taken
    assert sgemm.depth_block(*weight, 8, np.float64, True, False) == 0
    assert sgemm.depth_block(*weight, sgemm.MOST_INNER + 1, np.float32, True, False) == 0
    assert sgemm.depth_block(*weight, 8, np.float32, True, True) == 0
    # the input gradient dz @ w at batch 8
    assert sgemm.depth_block(8, weight[1], weight[0], np.float32, False, False) == few_rows
    assert sgemm.depth_block(sgemm.MR + 1, 9216, 4096, np.float32, False, False) == 0
    assert sgemm.depth_block(8, 9216, 4096, np.float32, False, True) == 0  # narrow's
    assert sgemm.depth_block(64, 64, 8, np.float32, True, False) == 0  # too small to split


def test_untransposed_products_up_to_the_bound_take_one_pass():
    bound, rows = sgemm.ONE_PASS_INNER, sgemm.PACKED_ROWS - 1
    assert sgemm.pass_depth(128, 784, False, False) == 784  # W6's first layer
    assert sgemm.pass_depth(rows, bound, False, False) == bound
    assert sgemm.pass_depth(rows, bound + 1, False, False) == sgemm.KC
    assert sgemm.pass_depth(rows, 784, True, False) == sgemm.KC  # A read in place
    assert sgemm.pass_depth(rows, 784, False, True) == sgemm.KC  # B packed KC deep
    assert sgemm.pass_depth(rows, 0, False, False) == sgemm.KC  # nothing to sum


def test_products_of_many_rows_pack_b():
    rows = sgemm.PACKED_ROWS
    for transpose_a, transpose_b in [(False, False), (True, False), (False, True)]:
        assert sgemm.pass_depth(1024, 784, transpose_a, transpose_b) == sgemm.PACKED  # W2's
        assert sgemm.pass_depth(rows, 5000, transpose_a, transpose_b) == sgemm.PACKED


def test_packed_passes_split_the_inner_positions_evenly():
    most = sgemm.KC_MOST
    assert sgemm.panel_depth(784) == 262  # three of 262, not 3 x 256 + 16
    assert sgemm.panel_depth(most) == most
    assert sgemm.panel_depth(most + 1) == (most + 2) // 2
    assert sgemm.panel_depth(1024) == 256
    assert sgemm.panel_depth(1) == 1
    for inner in range(1, 3 * most):
        depth = sgemm.panel_depth(inner)
        assert depth <= most and -(-inner // depth) == -(-inner // most)


# sizes for the packed route besides SIZES: several blocks of MC rows, of NC
# columns and of passes, with partial tiles, panels and blocks in each
PACKED_SIZES = SIZES + [(200, 300, 700), (96, 256, 784), (97, 257, 321)]


@needs_avx512
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_the_packed_blocks_equal_numpy_at_every_size(transpose_a, transpose_b):
    rng = np.random.default_rng(11)
    for rows, columns, inner in PACKED_SIZES:  # one process: nothing cached for one size
        a, b = _operands(rng, rows, columns, inner, transpose_a)
        a.flat[::17] = -0.0
        operand = np.ascontiguousarray(b.T) if transpose_b else b
        expected = _expected(a, b, transpose_a)
        out = np.full((rows, columns), np.nan, np.float32)
        sgemm.gemm_panels(a, transpose_a, operand, transpose_b, out, 0, rows, 0, columns)
        tolerance = 2e-5 * max(1, inner) ** 0.5
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=tolerance)
        # a block of it alone, as a thread takes one, writes that block only
        if rows > sgemm.MR and columns > sgemm.NR:
            part = np.full((rows, columns), np.nan, np.float32)
            m0, n0 = sgemm.MR, sgemm.NR
            sgemm.gemm_panels(a, transpose_a, operand, transpose_b, part, m0, rows, n0, columns)
            np.testing.assert_array_equal(part[m0:, n0:], out[m0:, n0:])
            assert np.isnan(part[:m0]).all() and np.isnan(part[:, :n0]).all()


@needs_avx512
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_packed_blocks_add_into_the_result(transpose_a, transpose_b):
    """With ``accumulate`` each tile is added to what the result holds: in one pass
    over the inner positions, bit for bit the product then added; in several, the
    passes' sums added in turn (a weight gradient summed over images)."""
    rng = np.random.default_rng(16)
    for rows, columns, inner in PACKED_SIZES:  # one process: nothing cached for one size
        a, b = _operands(rng, rows, columns, inner, transpose_a)
        operand = np.ascontiguousarray(b.T) if transpose_b else b
        start = rng.normal(size=(rows, columns)).astype(np.float32)
        start[0, 0] = -0.0  # an empty product leaves it as it is: -0.0, not +0.0
        out = start.copy()
        sgemm.gemm_panels(a, transpose_a, operand, transpose_b, out, 0, rows, 0, columns, True)
        product = np.empty((rows, columns), np.float32)
        sgemm.gemm_panels(a, transpose_a, operand, transpose_b, product, 0, rows, 0, columns)
        if inner == 0:
            np.testing.assert_array_equal(out, start)
            assert np.signbit(out[0, 0])
        elif sgemm.panel_depth(inner) == inner:
            np.testing.assert_array_equal(out, start + product)
        expected = start + _expected(a, b, transpose_a)
        tolerance = 2e-5 * max(1, inner) ** 0.5
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=tolerance)


@needs_avx512
def test_special_values_through_the_packed_blocks_as_numpy():
    rng = np.random.default_rng(12)
    a, b = _operands(rng, 130, 70, 400, False)
    a[3, 5], a[100, 1], a[120, 390] = np.nan, np.inf, -np.inf
    b[4, 7] = np.inf
    a[125:] = -0.0  # rows of negative zeros: their products sum to +0, as numpy's
    out = np.empty((130, 70), np.float32)
    sgemm.gemm_panels(a, False, b, False, out, 0, 130, 0, 70)
    expected = _expected(a, b, False)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected))
    np.testing.assert_array_equal(np.signbit(out[125:]), np.signbit(expected[125:]))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(out[finite], expected[finite], rtol=2e-5, atol=1e-3)


@needs_avx512
@pytest.mark.parametrize("transpose_a", [False, True])
def test_a_packed_product_on_the_threads_equals_numpy(transpose_a):
    # one block a thread, each packing all of B, with a bias added by each
    rng = np.random.default_rng(13)
    for rows, columns, inner in [(1030, 100, 300), (600, 64, 784), (30, 33, 7)]:
        a, b = _operands(rng, rows, columns, inner, transpose_a)
        bias = rng.normal(size=columns).astype(np.float32)
        out = np.full((rows, columns), np.nan, np.float32)
        sgemm.product(a, b, transpose_a, out, sgemm.PACKED, bias=bias)
        expected = _expected(a, b, transpose_a) + bias
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5 * inner**0.5)


@needs_avx512
def test_a_general_product_takes_its_pass_depth(monkeypatch):
    # where our tiles take every big product (sgemm.general), the step runner's
    # product passes pass_depth's block, and equals numpy's
    monkeypatch.setattr(sgemm, "general", lambda *shape: True)
    blocks = []
    original = sgemm.product

    def recorded(a, b, transpose_a, out, block, *rest):
        blocks.append(block)
        original(a, b, transpose_a, out, block, *rest)

    monkeypatch.setattr(sgemm, "product", recorded)
    rng = np.random.default_rng(7)
    a, b = _operands(rng, 40, 96, 700, False)
    out = np.empty((40, 96), np.float32)
    products.split_product(a, b, False, False, out)
    assert blocks == [700]
    np.testing.assert_allclose(out, _expected(a, b, False), rtol=2e-5, atol=1e-3)


@pytest.fixture
def counted(monkeypatch):
    """sgemm.product's calls, with the thresholds low enough for a small graph."""
    monkeypatch.setattr(sgemm, "MINIMUM_WORK", 1)
    return count_calls(monkeypatch, sgemm, shape_of=3)


@needs_avx512
def test_a_dense_layers_gradients_take_the_route(counted):
    """dW = dz^T @ x and dx = dz @ w of a Dense layer at a batch of 6: through
    the entry and through the step runner, equal to the interpreter."""
    rng = np.random.default_rng(8)
    x_value = rng.normal(size=(6, 40)).astype(np.float32)
    w_value = rng.normal(size=(70, 40)).astype(np.float32)
    x_value[1, 3] = np.inf
    graph, values = dense_program(x_value, w_value, op="dot")
    executable, expected = compiled_and_expected(graph, values)
    counted.clear()
    got = executable._entry(values)  # the entry itself
    # where our tiles beat OpenBLAS (blas_kernels.py) they take the forward x @ w^T too
    forward = [(6, 70)] if sgemm.OWN_TILES else []
    assert got is not None and sorted(counted) == sorted([(6, 40), (70, 40)] + forward)
    assert_outputs_match(got, expected)
    counted.clear()
    dz = rng.normal(size=(6, 70)).astype(np.float32)
    target = np.empty((70, 40), np.float32)
    assert products.gemm_into(dz, x_value, target, transpose_a=True, transpose_b=False)
    assert counted == [(70, 40)]  # the step runner's routes
    assert products.gemm_into(dz, w_value, x_value.copy(), transpose_a=False, transpose_b=False)
    assert counted == [(70, 40), (6, 40)]
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(target, dz.T @ x_value, rtol=1e-5, atol=1e-5)
