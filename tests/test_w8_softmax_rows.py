"""The long-row softmax kernel (float32 rows longer than ``rows.MAX_ROW``: W8's
(1120, 10000) logits) finds each row's largest value with 16 running maxima; its
outputs are numpy's, special values included: a NaN or +inf anywhere in a row
makes the whole row NaN, a row of -inf is NaN, and zeros of both signs at the
largest value give numpy's signs. Row lengths that are and are not multiples of
16, with and without a temperature, through one compiled module."""

from __future__ import annotations

import numpy as np
import pytest
from test_row_kernels import row_step

from symgrad_compiler.backends.numba import disk_cache as cache
from symgrad_compiler.backends.numba.lowerings import rows


@pytest.fixture(scope="module")
def module():
    return cache.load(rows._SOURCE.strip())


def logits(length: int, seed: int) -> np.ndarray:
    """Normal rows, then rows holding NaN, +inf, only -inf, only NaN, +0 and -0 at
    the largest value (others far below, so a row's sum of exponentials is 2 or
    exactly 1) and a largest value in the last, partial group of 16."""
    x = np.random.default_rng(seed).normal(0, 3, (12, length)).astype(np.float32)
    x[1, length // 2] = np.nan
    x[2, 17] = np.inf
    x[3] = -np.inf
    x[4] = np.nan
    x[5] = -200.0
    x[5, 5], x[5, 18] = 0.0, -0.0  # two zeros: the sum is 2
    x[6] = -200.0
    x[6, 7] = -0.0  # one zero: the sum is exactly 1, log of it 0
    x[7] = -200.0
    x[7, 3] = 0.0
    x[8, -1] = 50.0  # the largest in the tail after the last full group of 16
    x[9, 0] = 50.0
    x[10, 1] = -np.inf
    return x


@pytest.mark.parametrize("length", [rows.MAX_ROW + 1, 5003, 10000])
@pytest.mark.parametrize("temperature", [None, 0.7, -2.0])
@pytest.mark.parametrize("op", ["log_softmax", "softmax"])
def test_long_rows_as_numpy(module, length, temperature, op):
    x = logits(length, seed=length)
    step, node = row_step(module, op, [x], axis=-1, temperature=temperature)
    with np.errstate(all="ignore"):
        expected = node.op.impl(x, **node.attrs)
    got = step(x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.isnan(got[[1, 4]]).all()  # (rows 2 and 3 too, for a positive temperature)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6, equal_nan=True)
    # rows 5 to 7: sums of exactly 2 or 1, so zeros and their signs are exact (a
    # sum in float64 may differ from numpy's float32 one by an ulp elsewhere)
    special, numpy_special = got[5:8], expected[5:8]
    exact = (numpy_special == 0) | np.isinf(numpy_special)
    assert exact.any() or (temperature or 1.0) < 0  # (-200 / -2 is the largest)
    assert np.array_equal(special[exact], numpy_special[exact])
    assert np.array_equal(np.signbit(special[exact]), np.signbit(numpy_special[exact]))


@pytest.mark.parametrize("op", ["log_softmax", "softmax"])
def test_the_whole_program_entry_shares_big_blocks_out(monkeypatch, op):
    """A program whose softmax block is big enough for the threads stays one compiled
    call and cuts its rows as the step runner does (from object mode), with numpy's
    values, special rows included."""
    import symgrad_compiler as compiler
    from symgrad_compiler import settings
    from symgrad_compiler.backends.numba import threads
    from symgrad_compiler.registry import variable

    monkeypatch.setattr(threads, "serial", lambda: False)
    calls = []
    by_rows = rows._by_rows
    monkeypatch.setattr(rows, "_by_rows", lambda *a: calls.append(a[1].shape) or by_rows(*a))
    x = np.concatenate([logits(5003, seed=k) for k in range(4)])  # 48 rows, 240 K elements
    node = variable(x.shape, x.dtype, name="x")
    # (and a second step: a program of one step has no entry)
    out = compiler.call(op, compiler.Expr(compiler.Entry(node, 0)), axis=-1) * 2.0
    graph = compiler.ProgramGraph([node], [out.entry])
    with settings.override(compile="sync"):
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(2):
            executable([x])
    if threads.split_limit() > x.size:
        pytest.skip("one kernel thread: nothing to share out")
    calls.clear()
    got = executable._entry([x])[0]  # the entry itself, not the step runner
    assert calls == [x.shape]
    with np.errstate(all="ignore"):
        expected = compiler.compile_graph(graph, "interpreter")([x])[0]
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6, equal_nan=True)
    # the pieces compute each row as the kernel does on the whole block: the same
    # bits, NaNs and signed zeros included
    step, _ = row_step(cache.load(rows._SOURCE.strip()), op, [x], axis=-1, temperature=None)
    monkeypatch.setattr(threads, "serial", lambda: True)
    whole = step(x) * np.float32(2.0)
    assert np.array_equal(got.view(np.int32), whole.view(np.int32))
