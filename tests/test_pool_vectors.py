"""The vector kernels of 3x3 max pooling at stride 2 (compiler/backends/numba/
max_pool.py): float32 on AVX-512 CPUs, padded or not, 'valid' and 'full'. The
ops take them (checked bit for bit against the kernels called directly) and
agree with the ops' numpy implementations at widths on both sides of a vector's
16 windows and batches varied within one process, serial and threaded: the
forward exactly (ties go to the first maximum in kernel order, signed zeros
included, a NaN first in a window stays and later ones never win, a window of
-infinities keeps its padding's maximum), the gradient to float32 rounding (the
sums of up to four windows' gradients, NaN and infinities where numpy puts
them); other dtypes and geometries are declined."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_conv_native import close, lowered

from symgrad_compiler.backends.numba import max_pool

pytestmark = pytest.mark.skipif(not max_pool.AVAILABLE, reason="the kernels need AVX-512")

GEOMETRY = dict(kernel=(3, 3), stride=(2, 2), pool_type="max")
# (spatial sizes, attrs): rows of one window to several vectors of them
CASES = {
    "valid": ((9, 10), dict(GEOMETRY)),
    "pad1": ((14, 33), dict(GEOMETRY, pad=(1, 1))),
    "full": ((9, 8), dict(GEOMETRY, pooling_convention="full")),
    "pad_full_wide": ((6, 70), dict(GEOMETRY, pad=(1, 0), pooling_convention="full")),
    "one_window": ((3, 3), dict(GEOMETRY)),
    "pad2_one_row": ((1, 40), dict(GEOMETRY, pad=(2, 2))),
}


@numba.njit
def _forward(x, out, pad):
    return max_pool.forward(x, out, 0, x.shape[0], (1, 3, 3), (1, 2, 2), pad)


@numba.njit
def _backward(g, x, dx, pad):
    return max_pool.backward(g, x, dx, 0, x.shape[0], (1, 3, 3), (1, 2, 2), pad)


def _data(rng, shape):
    """Few distinct values (ties in most windows), signed zeros, infinities."""
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 1.0, 2.0, np.inf, -np.inf]), size=shape)
    x.reshape(-1)[::5] = rng.uniform(-1, 1, x.reshape(-1)[::5].size)
    return x.astype(np.float32)


def _same(got, expected):
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def _gradient_close(got, expected):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(
        got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]
    )
    close(got[finite], expected[finite], np.float32)


@pytest.mark.parametrize("case", sorted(CASES))
def test_vector_kernels_match_numpy(conv_kernels, threading_mode, case):
    sizes, attrs = CASES[case]
    rng = np.random.default_rng(9)
    for batch, extra in ((2, 0), (1, 17), (3, 31), (2, 0)):
        x = _data(rng, (batch, 3, sizes[0], sizes[1] + extra))
        got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
        _same(got, expected)
        g = rng.uniform(-1, 1, expected.shape).astype(np.float32)
        g.reshape(-1)[::13] = np.inf
        with np.errstate(invalid="ignore"):
            _gradient_close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs))
        x.reshape(-1)[:: x.size // 3] = np.nan  # first in some windows, later in others
        with np.errstate(invalid="ignore"):
            got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
            _same(got[~np.isnan(got)], expected[~np.isnan(got)])
            _gradient_close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_ops_take_the_vector_kernels(conv_kernels, case):
    sizes, attrs = CASES[case]
    rng = np.random.default_rng(10)
    x = _data(rng, (2, 3) + sizes)
    pad = (0,) + attrs.get("pad", (0, 0))
    out, _ = lowered(conv_kernels, "Pooling", (x,), **attrs)
    rows = x.reshape((6, 1) + sizes)
    direct = np.empty((6, 1) + out.shape[2:], np.float32)
    assert _forward(rows, direct, pad)
    _same(out.reshape(direct.shape), direct)
    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    dx, _ = lowered(conv_kernels, "_pooling_grad", (g, x), **attrs)
    direct = np.empty(rows.shape, np.float32)
    assert _backward(g.reshape((6, 1) + g.shape[2:]), rows, direct, pad)
    np.testing.assert_array_equal(dx.reshape(direct.shape), direct)


def test_other_dtypes_and_geometries_are_declined():
    x = np.zeros((2, 1, 9, 9), np.float32)
    out = np.empty((2, 1, 4, 4), np.float32)
    assert _forward(x, out, (0, 0, 0))
    assert not _forward(x.astype(np.float64), out.astype(np.float64), (0, 0, 0))
    assert not _forward(np.zeros((2, 2, 9, 9), np.float32), out, (0, 0, 0))  # 3-D windows
    g = np.zeros((2, 1, 4, 4), np.float32)
    assert not _backward(g, x, np.empty((2, 1, 9, 8), np.float32), (0, 0, 0))
    assert _backward(g, x, np.empty_like(x), (0, 0, 0))
    wide = np.zeros((2, 1, 9, 18), np.float32)
    assert not _forward(wide[:, :, :, ::2], out, (0, 0, 0))  # not contiguous
    assert not _backward(g, x, wide[:, :, :, :9], (0, 0, 0))
