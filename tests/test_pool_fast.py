"""The 2x2 stride-2 pooling kernels of the numba backend
(compiler/backends/numba/lowerings/pooling.py: ``_pl_pair_forward``,
``_pl_pair_backward``, ``_pl_pair_gather``): the same values as the ops' numpy
implementations for max, avg and sum, sizes odd and even, ties, NaN and
infinities, on one thread and split over threads; shapes the fast loops do not
fit (padding, the 'full' convention's overhang, other windows) still agree; and
the avg gradient agrees with float64 finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_conv_native import close, lowered

# data shapes, varied within one process: even, odd (a row or column no window
# covers), one window, and 3-D data with a (1, 2, 2) window
SHAPES = [(3, 2, 8, 6), (2, 3, 7, 9), (1, 1, 2, 2), (4, 2, 5, 4)]


def pooled(conv_kernels, x, **attrs):
    got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
    return got, expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool_type", ["max", "avg", "sum"])
def test_pairs_match_numpy(conv_kernels, threading_mode, pool_type, dtype):
    rng = np.random.default_rng(5)
    cases = [(s, dict(kernel=(2, 2), stride=(2, 2))) for s in SHAPES]
    cases.append(((2, 2, 3, 6, 5), dict(kernel=(1, 2, 2), stride=(1, 2, 2))))
    for (shape, geometry), include_pad in itertools.product(cases, [None, False]):
        attrs = dict(geometry, pool_type=pool_type, count_include_pad=include_pad)
        # few distinct values: many windows hold ties, whose first maximum wins
        x = rng.integers(-2, 3, shape).astype(dtype)
        x.flat[:: max(1, x.size // 5)] = rng.uniform(-1, 1, len(x.flat[:: max(1, x.size // 5)]))
        got, expected = pooled(conv_kernels, x, **attrs)
        if pool_type == "max":  # a selection: exactly the same element
            np.testing.assert_array_equal(got, expected)
        close(got, expected, dtype)  # sums: float64 here, the data's type in numpy
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs), dtype)
        if pool_type == "max":
            h = rng.uniform(-1, 1, x.shape).astype(dtype)
            np.testing.assert_array_equal(
                *lowered(conv_kernels, "_pooling_max_gather", (h, x), **attrs)
            )


def test_pairs_special_values_as_numpy(conv_kernels):
    """NaN first in a window keeps it (nothing compares larger); NaN later is never
    chosen; infinities compare as numbers."""
    x = np.array(
        [
            [np.nan, 1.0, -np.inf, 2.0, 5.0, 5.0],
            [3.0, np.nan, 0.0, np.inf, np.nan, 5.0],
            [-np.inf, -np.inf, 1.0, np.nan, 2.0, 2.0],
            [-np.inf, -np.inf, np.nan, np.nan, 2.0, 3.0],
        ]
    )[None, None]
    attrs = dict(kernel=(2, 2), stride=(2, 2), pool_type="max")
    got, expected = pooled(conv_kernels, x, **attrs)
    np.testing.assert_array_equal(got, expected)
    g = np.arange(1.0, expected.size + 1).reshape(expected.shape)
    np.testing.assert_array_equal(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs))
    h = np.arange(1.0, x.size + 1).reshape(x.shape)
    np.testing.assert_array_equal(*lowered(conv_kernels, "_pooling_max_gather", (h, x), **attrs))


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_shapes_the_pairs_do_not_fit_still_agree(conv_kernels, pool_type):
    """Padding, the 'full' convention's overhang on odd sizes, a 2x2 window at
    stride 1 and 3x3 windows go to the general loops, with the same values."""
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (2, 3, 7, 9))
    for extra in (
        dict(kernel=(2, 2), stride=(2, 2), pad=(1, 0)),
        dict(kernel=(2, 2), stride=(2, 2), pooling_convention="full"),
        dict(kernel=(2, 2), stride=(1, 1)),
        dict(kernel=(3, 3), stride=(2, 2)),
    ):
        attrs = dict(extra, pool_type=pool_type)
        got, expected = pooled(conv_kernels, x, **attrs)
        close(got, expected, np.float64)
        g = rng.uniform(-1, 1, expected.shape)
        close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs), np.float64)


def test_pair_avg_gradient_matches_finite_differences(conv_kernels):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (2, 3, 7, 8))
    attrs = dict(kernel=(2, 2), stride=(2, 2), pool_type="avg")
    r = rng.standard_normal(pooled(conv_kernels, x, **attrs)[0].shape)
    dx, _ = lowered(conv_kernels, "_pooling_grad", (r, x), **attrs)
    direction = rng.standard_normal(x.shape)
    eps = 1e-6
    numeric = (
        np.sum(pooled(conv_kernels, x + eps * direction, **attrs)[0] * r)
        - np.sum(pooled(conv_kernels, x - eps * direction, **attrs)[0] * r)
    ) / (2 * eps)
    assert abs(float(np.sum(dx * direction)) - numeric) <= 1e-7 * max(1.0, abs(numeric))
