"""Pooling by output rows in the numba backend
(compiler/backends/numba/lowerings/pooling.py: ``_pl_max_rows``, ``_pl_sum_rows``,
every pooling but 2x2 at stride 2 whose rows have 16 windows or more): the
windows of an output row as one vector, each input row laid out in stride phases
(-inf padding for max, zero for sums). For max pooling the forward, the gradient
and the gather agree with the ops' numpy implementations for kernels, strides,
pads, both conventions, ranks 1-3 and rows of 1 to 70 windows (across the
32-window vector), sizes varied within one process, on one thread and split over
threads; ties go to the first maximum, a NaN first in a window stays, a window of
-infinities keeps its padding's maximum (no gradient); the gradient agrees with
float64 finite differences. Average and sum pooling and their gradients agree
with numpy for the same geometries, counting the padding or not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_conv_native import close, lowered

# (spatial sizes, geometry): 3x3 at stride 2 (ResNet, SqueezeNet, AlexNet,
# Inception), overlapping and gapped windows, pads, ranks 1 and 3
GEOMETRIES = {
    "3x3_s2_pad1": ((9, 10), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))),
    "3x3_s2_full": ((9, 8), dict(kernel=(3, 3), stride=(2, 2), pooling_convention="full")),
    "3x3_s1_pad1": ((6, 7), dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1))),
    "2x3_s3_gaps": ((8, 11), dict(kernel=(2, 3), stride=(3, 3), pad=(0, 1))),
    "5x4_s2_pad2": ((7, 9), dict(kernel=(5, 4), stride=(2, 2), pad=(2, 2))),
    "2x2_s1": ((5, 6), dict(kernel=(2, 2), stride=(1, 1))),
    "1d_k3_s2": ((13,), dict(kernel=(3,), stride=(2,), pad=(1,))),
    "3d": ((4, 5, 6), dict(kernel=(2, 3, 3), stride=(1, 2, 2), pad=(1, 1, 1))),
    "global": ((5, 7), dict(kernel=(1, 1), global_pool=True)),
}

# widths added to a geometry's last axis: rows of a few windows to beyond 64
WIDTHS = (0, 1, 47, 61, 130)


def _data(rng, shape, dtype):
    """Few distinct values (ties in most windows) and some unique ones."""
    x = rng.integers(-3, 4, shape).astype(dtype)
    picks = x.reshape(-1)[:: max(1, x.size // 7)]
    x.reshape(-1)[:: max(1, x.size // 7)] = rng.uniform(-1, 1, picks.size)
    return x


def _check(conv_kernels, x, attrs, dtype, rng):
    got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
    np.testing.assert_array_equal(got, expected)  # a selection: the same element
    g = rng.uniform(-1, 1, expected.shape).astype(dtype)
    close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs), dtype)
    h = rng.uniform(-1, 1, x.shape).astype(dtype)
    np.testing.assert_array_equal(*lowered(conv_kernels, "_pooling_max_gather", (h, x), **attrs))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(GEOMETRIES))
def test_max_rows_match_numpy(conv_kernels, threading_mode, case, dtype):
    sizes, geometry = GEOMETRIES[case]
    rng = np.random.default_rng(9)
    attrs = dict(geometry, pool_type="max")
    for batch, extra in itertools.product((1, 3), WIDTHS):
        shape = (batch, 2) + sizes[:-1] + (sizes[-1] + extra,)
        _check(conv_kernels, _data(rng, shape, dtype), attrs, dtype, rng)


def test_max_rows_special_values_as_numpy(conv_kernels, threading_mode):
    """NaN and infinities at random places, at the windows' first positions, and
    whole windows of -inf (the padding's -inf, first in kernel order, wins: no
    gradient for them)."""
    rng = np.random.default_rng(4)
    for case in sorted(GEOMETRIES):
        sizes, geometry = GEOMETRIES[case]
        attrs = dict(geometry, pool_type="max")
        for extra in (0, 40):
            shape = (2, 3) + sizes[:-1] + (sizes[-1] + extra,)
            x = _data(rng, shape, np.float64)
            flat = x.reshape(-1)
            spots = rng.choice(flat.size, size=max(3, flat.size // 6), replace=False)
            flat[spots] = rng.choice([np.nan, np.inf, -np.inf], size=spots.size)
            flat[:: max(1, flat.size // 9)] = np.nan  # some at the first position
            x[1, 2] = -np.inf  # a whole plane of -inf
            with np.errstate(invalid="ignore"):
                _check(conv_kernels, x, attrs, np.float64, rng)


def test_separable_planes_keep_the_scans_first_maximum(conv_kernels, threading_mode):
    """The planes without NaN go by rows then columns (``_pl_max_planes``): signed
    zeros tied with each other (the first in kernel order is the one kept, and
    its position takes the gradient), infinities, and one plane holding a NaN
    among them (that image's planes go by output rows) agree with numpy."""
    rng = np.random.default_rng(5)
    for case in ("3x3_s2_pad1", "3x3_s2_full", "5x4_s2_pad2", "3x3_s1_pad1", "1d_k3_s2"):
        sizes, geometry = GEOMETRIES[case]
        attrs = dict(geometry, pool_type="max")
        shape = (3, 2) + sizes[:-1] + (sizes[-1] + 40,)
        x = rng.choice([-0.0, 0.0, -1.0, np.inf, -np.inf], size=shape)
        _check(conv_kernels, x, attrs, np.float64, rng)
        got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
        x.reshape(-1)[x.size // 2] = np.nan  # in the middle image's planes
        with np.errstate(invalid="ignore"):
            _check(conv_kernels, x, attrs, np.float64, rng)


def _weighted_pool(conv_kernels, x, r, attrs):
    """sum(Pooling(x) * r), by the lowered kernel."""
    return float(np.sum(lowered(conv_kernels, "Pooling", (x,), **attrs)[0] * r))


def test_max_rows_gradient_matches_finite_differences(conv_kernels):
    """Distinct values (each window's maximum is one element, away from a tie)."""
    rng = np.random.default_rng(8)
    for case in ("3x3_s2_pad1", "3x3_s2_full", "3d", "1d_k3_s2"):
        sizes, geometry = GEOMETRIES[case]
        attrs = dict(geometry, pool_type="max")
        shape = (2, 2) + sizes
        x = rng.permutation(int(np.prod(shape))).reshape(shape) / 7.0
        out, _ = lowered(conv_kernels, "Pooling", (x,), **attrs)
        r = rng.standard_normal(out.shape)
        grad, _ = lowered(conv_kernels, "_pooling_grad", (r, x), **attrs)
        direction = rng.standard_normal(shape)
        eps = 1e-6

        plus = _weighted_pool(conv_kernels, x + eps * direction, r, attrs)
        minus = _weighted_pool(conv_kernels, x - eps * direction, r, attrs)
        numeric = (plus - minus) / (2 * eps)
        assert abs(float(np.sum(grad * direction)) - numeric) <= 1e-6 * max(1.0, abs(numeric))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool_type", ["avg", "sum"])
@pytest.mark.parametrize("case", sorted(GEOMETRIES))
def test_sum_rows_match_numpy(conv_kernels, threading_mode, case, pool_type, dtype):
    """Average and sum pooling by output rows (``_pl_sum_rows``, rows of 16 windows
    or more; shorter ones keep the scalar loops), counting the padding or not."""
    sizes, geometry = GEOMETRIES[case]
    rng = np.random.default_rng(12)
    for include_pad, batch, extra in itertools.product((None, False), (1, 3), WIDTHS):
        attrs = dict(geometry, pool_type=pool_type, count_include_pad=include_pad)
        shape = (batch, 2) + sizes[:-1] + (sizes[-1] + extra,)
        x = rng.uniform(-1, 1, shape).astype(dtype)
        got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs), dtype)
    x = rng.uniform(-1, 1, (2, 2) + sizes[:-1] + (sizes[-1] + 40,))
    x.reshape(-1)[::7] = np.nan
    x.reshape(-1)[3::11] = np.inf
    attrs = dict(geometry, pool_type=pool_type)
    with np.errstate(invalid="ignore"):
        got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
