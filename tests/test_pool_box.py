"""Average and sum pooling at unit stride padded by half the window, in the numba
backend (compiler/backends/numba/lowerings/pooling.py: ``_pl_box_rows``,
Inception v3's 3x3 average poolings): the planes padded side by side, flat sums
along the rows and then down the columns. Forward and gradient agree with the
ops' numpy implementations for 3x3, 5x5, 1x3 and 3x1 windows, counting the
padding or not, planes of one position to big ones, sizes and batches varied
within one process (one compiled kernel), on one thread and split over threads;
the sums are float64's along the rows then down the columns, bit for bit; NaN,
infinities and signed zeros land where numpy puts them; the gradient agrees with
float64 finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_conv_native import close, lowered

WINDOWS = {
    "3x3": dict(kernel=(3, 3), pad=(1, 1)),
    "5x5": dict(kernel=(5, 5), pad=(2, 2)),
    "1x3": dict(kernel=(1, 3), pad=(0, 1)),
    "3x1": dict(kernel=(3, 1), pad=(1, 0)),
}

# (batch, channels, height, width): one position, thin (two rows, one row, one
# column: no middle for a window of three), Inception-like, a big plane
SHAPES = [
    (2, 3, 6, 7), (1, 1, 1, 1), (3, 2, 2, 9), (2, 3, 1, 5), (2, 3, 5, 1), (2, 5, 17, 17),
    (1, 2, 70, 65), (4, 3, 8, 8),
]  # fmt: skip


def _attrs(window, pool_type, include_pad):
    return dict(WINDOWS[window], stride=(1, 1), pool_type=pool_type, count_include_pad=include_pad)


def test_the_box_kernel_takes_these_windows(conv_kernels):
    x = np.zeros((3, 1, 6, 7))
    for window in WINDOWS:
        attrs = WINDOWS[window]
        kernel = (1,) + attrs["kernel"]
        pad = (0,) + attrs["pad"]
        assert conv_kernels._pl_box_fits(x, x, kernel, (1, 1, 1), pad), window
    # stride 2, or padding that changes the size, take the other loops
    assert not conv_kernels._pl_box_fits(x, x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    assert not conv_kernels._pl_box_fits(x, x, (1, 3, 3), (1, 1, 1), (0, 0, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool_type", ["avg", "sum"])
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_box_matches_numpy(conv_kernels, threading_mode, window, pool_type, dtype):
    rng = np.random.default_rng(31)
    for include_pad, shape in itertools.product((None, False), SHAPES):
        attrs = _attrs(window, pool_type, include_pad)
        x = rng.uniform(-1, 1, shape).astype(dtype)
        got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
        assert got.shape == expected.shape == x.shape
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs), dtype)


def _box_sums(values, kh, kw):
    """Each window's sum as the box kernel forms it, in float64: +0, then along
    the row (left to right), then down the column (top to bottom), the padding
    zeros added where they fall."""
    ph, pw = kh // 2, kw // 2
    H, W = values.shape[-2:]
    padded = np.pad(values, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    rows = np.zeros(padded.shape[:-1] + (W,))
    for e in range(kw):
        rows += padded[..., e : e + W]
    sums = np.zeros(values.shape)
    for a in range(kh):
        sums += rows[..., a : a + H, :]
    return sums


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_box_sums_in_float64_rows_then_columns(conv_kernels, window, dtype):
    """Bit for bit: the window sums in float64 along the rows, then down the
    columns, then over the count (the gradient: of each window's share), rounded
    to the data's type once; NaN and infinities included."""
    rng = np.random.default_rng(34)
    kh, kw = WINDOWS[window]["kernel"]
    for include_pad, shape in itertools.product((None, False), SHAPES):
        attrs = _attrs(window, "avg", include_pad)
        x = rng.uniform(-1, 1, shape).astype(dtype)
        x.reshape(-1)[::11] = np.nan
        x.reshape(-1)[3::13] = np.inf
        counts = _box_sums(np.ones((1, 1) + shape[2:]), kh, kw) if include_pad is False else kh * kw
        with np.errstate(invalid="ignore"):
            got, _ = lowered(conv_kernels, "Pooling", (x,), **attrs)
            expected = (_box_sums(x.astype(np.float64), kh, kw) / counts).astype(dtype)
            np.testing.assert_array_equal(got, expected)
            dx, _ = lowered(conv_kernels, "_pooling_grad", (x, x), **attrs)
            share = x.astype(np.float64) / counts
            np.testing.assert_array_equal(dx, _box_sums(share, kh, kw).astype(dtype))


@pytest.mark.parametrize("pool_type", ["avg", "sum"])
def test_box_special_values_as_numpy(conv_kernels, pool_type):
    """NaN and infinities spread over the windows that hold them (inf and -inf in
    one window make NaN), in the forward and through the gradient; windows of
    negative zeros sum to +0, as numpy's sums from zero do."""
    rng = np.random.default_rng(32)
    x = rng.uniform(-1, 1, (2, 3, 9, 8))
    x.reshape(-1)[::13] = np.nan
    x.reshape(-1)[5::17] = np.inf
    x.reshape(-1)[9::19] = -np.inf
    x[1, 2] = -0.0
    g = rng.uniform(-1, 1, x.shape)
    g.reshape(-1)[::23] = np.nan
    g.reshape(-1)[4::29] = -np.inf
    g[0, 1] = -0.0
    for window in WINDOWS:
        attrs = _attrs(window, pool_type, None)
        with np.errstate(invalid="ignore"):
            got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
            dx, dx_expected = lowered(conv_kernels, "_pooling_grad", (g, x), **attrs)
        for a, b in ((got, expected), (dx, dx_expected)):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            finite = np.isfinite(b)
            np.testing.assert_array_equal(a[~finite & ~np.isnan(b)], b[~finite & ~np.isnan(b)])
            np.testing.assert_allclose(a[finite], b[finite], rtol=1e-12, atol=1e-12)
            zeros = b == 0
            np.testing.assert_array_equal(np.signbit(a[zeros]), np.signbit(b[zeros]))


@pytest.mark.parametrize("window", ["3x3", "5x5"])
def test_box_gradient_matches_finite_differences(conv_kernels, window):
    rng = np.random.default_rng(33)
    x = rng.uniform(-1, 1, (2, 3, 7, 6))
    for include_pad in (None, False):
        attrs = _attrs(window, "avg", include_pad)
        r = rng.standard_normal(x.shape)
        dx, _ = lowered(conv_kernels, "_pooling_grad", (r, x), **attrs)
        direction = rng.standard_normal(x.shape)
        eps = 1e-6

        plus = _weighted(conv_kernels, x + eps * direction, r, attrs)
        minus = _weighted(conv_kernels, x - eps * direction, r, attrs)
        numeric = (plus - minus) / (2 * eps)
        assert abs(float(np.sum(dx * direction)) - numeric) <= 1e-7 * max(1.0, abs(numeric))


def _weighted(conv_kernels, x, r, attrs):
    """sum(pool(x) * r) by the lowered forward."""
    return float(np.sum(lowered(conv_kernels, "Pooling", (x,), **attrs)[0] * r))
