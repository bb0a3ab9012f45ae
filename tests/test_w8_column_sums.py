"""Sums and means over the leading axes (a bias's gradient: W8's 1120 rows of 10000
logits' gradients) have their columns shared out over the kernel threads, each
thread totalling a range of columns (compiler/backends/numba/lowerings/rows.py:
``column_pieces``), from the step runner and from the whole-program entry. Each
column is summed down its rows in the same order whatever the pieces, so the
results are the whole-block kernel's bit for bit; they are numpy's, special values
included. Sizes change within one process: the kernel compiled once takes every
shape and range."""

from __future__ import annotations

import numpy as np
import pytest
from test_row_kernels import row_step

import symgrad as mx
import symgrad_compiler as compiler
from symgrad.op_testing import check_numeric_gradient
from symgrad_compiler import settings
from symgrad_compiler.backends.numba import disk_cache as cache
from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.lowerings import rows
from symgrad_compiler.registry import variable


@pytest.fixture(scope="module")
def module():
    return cache.load(rows._SOURCE.strip())


@pytest.fixture
def threaded(monkeypatch):
    """Pieces run on the threads even while another process holds a core."""
    monkeypatch.setattr(threads, "serial", lambda: False)
    if threads.split_limit() > 1 << 20:
        pytest.skip("one kernel thread: nothing to share out")


def gradients(shape: tuple, dtype, seed: int) -> np.ndarray:
    """Normal values, then columns holding NaN, +inf, +inf and -inf, only -0.0, and
    a last column (in the last, partial line of 16) of large values."""
    x = np.random.default_rng(seed).normal(0, 1, shape).astype(dtype)
    flat = x.reshape(-1, x.shape[-1])
    flat[-1, 1] = np.nan
    flat[0, 5] = np.inf
    flat[1, 7], flat[2, 7] = np.inf, -np.inf
    flat[:, 9] = -0.0
    flat[:, -1] = 1e30
    return x


def numpy_totals(x: np.ndarray, leading: int, mean: bool) -> np.ndarray:
    """The reference: numpy's sum over the ``leading`` axes, in float64 then cast."""
    with np.errstate(invalid="ignore"):
        total = x.astype(np.float64).sum(axis=tuple(range(leading)))
    return (total / np.prod(x.shape[:leading]) if mean else total).astype(x.dtype)


def test_column_pieces_cover_the_columns_in_whole_lines(threaded):
    for rows_count, columns in [(1120, 10000), (64, 5003), (3, 40000), (2, 17)]:
        pieces = rows.column_pieces(rows_count, columns)
        assert pieces[0][0] == 0 and pieces[-1][1] == columns
        assert all(hi == lo for (_, hi), (lo, _) in zip(pieces, pieces[1:]))
        assert all(lo % 16 == 0 and lo < hi for lo, hi in pieces)
        assert len(pieces) > 1 or rows_count * columns < threads.MINIMUM
    assert len(rows.column_pieces(1120, 10000)) >= threads.count()


# several shapes and both types through the one compiled module, in one process
SHAPES = [(300, 1000), (64, 5003), (3, 40000), (4, 5, 6000), (9, 33)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_column_totals_are_numpys_and_the_whole_blocks(module, threaded, dtype, op):
    for k, shape in enumerate(SHAPES):
        x = gradients(shape, dtype, seed=k)
        leading = len(shape) - 1
        axis = tuple(range(leading))
        step, node = row_step(module, op, [x], axis=axis, keepdims=False, exclude=False)
        got = step(x)
        expected = numpy_totals(x, leading, op == "mean")
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps, atol=1e-6)
        # special columns: NaN, +inf, NaN (inf - inf), +0.0 (numpy's sum of -0.0)
        flat = got.reshape(-1)
        assert np.isnan(flat[1]) and flat[5] == np.inf and np.isnan(flat[7])
        assert flat[9] == 0 and not np.signbit(flat[9])
        # the pieces total each column as the kernel on the whole block does
        block = x.reshape(-1, shape[-1])
        whole = np.empty(shape[-1], dtype)
        scale = 1.0 / block.shape[0] if op == "mean" else 1.0
        step.kernel(block, scale, True, 0, shape[-1], whole)
        assert np.array_equal(flat.view(np.uint8), whole.view(np.uint8))


def test_keepdims_keeps_the_leading_axes(module, threaded):
    x = gradients((70, 5003), np.float32, seed=9)
    step, _ = row_step(module, "sum", [x], axis=(0,), keepdims=True, exclude=False)
    got = step(x)
    assert got.shape == (1, 5003)
    np.testing.assert_allclose(got[0], numpy_totals(x, 1, False), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_whole_program_entry_shares_the_columns_out(monkeypatch, threaded, dtype):
    """A program whose column sum is big enough for the threads stays one compiled
    call and cuts the columns as the step runner does (from object mode)."""
    calls = []
    by_columns = rows._by_columns
    monkeypatch.setattr(rows, "_by_columns", lambda *a: calls.append(a[1].shape) or by_columns(*a))
    with settings.override(compile="sync"):
        for shape in [(300, 1000), (64, 5003)]:  # a second size: the same entry
            x = gradients(shape, dtype, seed=3)
            node = variable(x.shape, x.dtype, name="x")
            total = compiler.call("sum", compiler.Expr(compiler.Entry(node, 0)), axis=(0,))
            graph = compiler.ProgramGraph([node], [(total * 2.0).entry])
            executable = compiler.compile_graph(graph, "numba")
            for _ in range(2):
                executable([x])
            calls.clear()
            got = executable._entry([x])[0]  # the entry itself, not the step runner
            assert calls == [shape]
            expected = numpy_totals(x, 1, False) * dtype(2.0)
            np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps)
            assert np.isnan(got[1]) and got[5] == np.inf and not np.signbit(got[9])


def test_small_blocks_keep_one_call(monkeypatch, threaded):
    """Below the threads' limit the entry calls the kernel on every column itself."""
    calls = []
    monkeypatch.setattr(rows, "_by_columns", lambda *a: calls.append(a))
    x = gradients((9, 33), np.float32, seed=4)
    node = variable(x.shape, x.dtype, name="x")
    total = compiler.call("sum", compiler.Expr(compiler.Entry(node, 0)), axis=(0,))
    graph = compiler.ProgramGraph([node], [(total * 2.0).entry])
    with settings.override(compile="sync"):
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(2):
            executable([x])
        calls.clear()
        got = executable._entry([x])[0]
    assert calls == []
    np.testing.assert_allclose(got, numpy_totals(x, 1, False) * 2, rtol=1e-6)


def test_a_bias_gradient_by_finite_differences(compiled, threaded, monkeypatch):
    """float64 by central differences: W8's bias, added to rows of 3-d data through
    ``FullyConnected(flatten=False)`` and the rows reshaped (so the sum over 300 x
    400 rows, big enough for the threads, is not fused into another loop)."""
    pieces = []
    by_columns = rows._by_columns
    monkeypatch.setattr(
        rows,
        "_by_columns",
        lambda *a: pieces.append(len(rows.column_pieces(*a[1].shape))) or by_columns(*a),
    )
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(3, 100, 5)), rng.normal(size=(400, 5)), rng.normal(size=400)

    def dense_rows(x, w, b):
        out = mx.nd.FullyConnected(x, w, b, num_hidden=400, flatten=False)
        return out.reshape((-1, 400)) ** 2

    check_numeric_gradient(dense_rows, [x, w, b])
    assert pieces and min(pieces) > 1  # the compiled backward cut its columns
