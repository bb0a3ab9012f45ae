"""The vector kernels of 3x3 depthwise convolutions (compiler/backends/numba/
depthwise.py): float32 on AVX-512 CPUs, unit stride, any padding. The ops take
them (checked bit for bit against the kernels called directly) and compute what
numpy computes at widths on both sides of a vector's 16 lanes, pads 0-3 and
batches varied within one process, serial and threaded; other dtypes and
geometries are declined and keep the general route."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_conv_native import assert_sizes_match_numpy, lowered

from symgrad_compiler.backends.numba import depthwise

pytestmark = pytest.mark.skipif(not depthwise.AVAILABLE, reason="the kernels need AVX-512")


@numba.njit
def _forward(x, w, out, stride, pad):
    return depthwise.forward(x, w, out, 0, x.shape[0], stride, (1, 1, 1), pad)


@numba.njit
def _data_grad(g, w, dx, stride, pad):
    return depthwise.data_grad(g, w, dx, 0, dx.shape[0], stride, (1, 1, 1), pad)


@numba.njit
def _weight_grad(g, x, dw, stride, pad):
    return depthwise.weight_grad(g, x, dw, 0, x.shape[0], stride, (1, 1, 1), pad)


def _five(a):
    return a.reshape(a.shape[:2] + (1,) + a.shape[2:])


# (data shape, stride, pad): widths of one vector and less, exactly one, one and a
# bit, several with a partial last one; heights down to one row; at stride 2 the
# paired columns (31 or 32 of the data a vector of outputs) and odd sizes
CASES = {
    "14x14": ((3, 4, 14, 14), 1, (1, 1)),
    "one_lane": ((2, 3, 3, 1), 1, (1, 1)),
    "sixteen_wide": ((2, 2, 5, 16), 1, (1, 1)),
    "seventeen_no_pad": ((2, 3, 6, 19), 1, (0, 0)),
    "wide_pad2": ((2, 2, 4, 33), 1, (2, 2)),
    "one_row_pad3": ((3, 2, 1, 20), 1, (3, 1)),
    "tall_narrow": ((2, 2, 37, 5), 1, (1, 2)),
    "s2_14x14": ((3, 4, 14, 14), 2, (1, 1)),
    "s2_wide_odd": ((2, 3, 9, 67), 2, (1, 1)),
    "s2_no_pad": ((2, 2, 8, 33), 2, (0, 0)),
    "s2_pad3": ((2, 2, 7, 6), 2, (3, 2)),
    "s2_one_column": ((2, 2, 5, 1), 2, (1, 1)),
}


def _attrs(shape, stride, pad):
    channels = shape[1]
    return dict(
        kernel=(3, 3), stride=(stride,) * 2, pad=pad, num_filter=channels, num_group=channels
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_vector_kernels_match_numpy(conv_kernels, threading_mode, case):
    shape, stride, pad = CASES[case]
    assert_sizes_match_numpy(
        conv_kernels,
        shape,
        _attrs(shape, stride, pad),
        np.float32,
        5,
        ((shape[0], 0), (1, 1), (shape[0] + 2, 15), (shape[0], 0)),
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_ops_take_the_vector_kernels(conv_kernels, case):
    shape, stride, pad = CASES[case]
    attrs = _attrs(shape, stride, pad)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = rng.uniform(-1, 1, (shape[1], 1, 3, 3)).astype(np.float32)
    geometry = ((1, stride, stride), (0,) + pad)
    out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    direct = np.empty(_five(out).shape, np.float32)
    assert _forward(_five(x), _five(w), direct, *geometry)
    np.testing.assert_array_equal(out, direct[:, :, 0])

    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    dx, _ = lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs)
    direct = np.empty(_five(x).shape, np.float32)
    assert _data_grad(_five(g), _five(w), direct, *geometry)
    np.testing.assert_array_equal(dx, direct[:, :, 0])

    dw, _ = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
    direct = np.zeros(_five(w).shape, np.float32)
    assert _weight_grad(_five(g), _five(x), direct, *geometry)
    np.testing.assert_array_equal(dw, direct[:, :, 0])


def test_other_dtypes_and_geometries_are_declined():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (2, 3, 1, 8, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 1, 1, 3, 3)).astype(np.float32)
    out = np.empty((2, 3, 1, 8, 8), np.float32)
    unit, pad = (1, 1, 1), (0, 1, 1)
    assert _forward(x, w, out, unit, pad)
    as64 = [a.astype(np.float64) for a in (x, w, out)]
    assert not _forward(*as64, unit, pad)
    assert not _forward(x, w, out, unit, (0, 0, 0))  # an output of the wrong size
    assert not _forward(x, w, out[:, :, :, :4, :4], (1, 3, 3), pad)  # stride 3
    assert not _forward(x, w[:, :, :, :2], out[:, :, :, :, :7], unit, pad)  # 3x2 taps
    two = np.concatenate([w, w])  # two filters a channel
    assert not _forward(x, two, np.empty((2, 6, 1, 8, 8), np.float32), unit, pad)
    assert not _weight_grad(out, x, np.zeros((3, 1, 1, 5, 5), np.float32), unit, pad)
    assert _weight_grad(out, x, np.zeros_like(w), unit, pad)
    assert not _data_grad(out, w, x, (1, 2, 1), pad)  # strides that differ
    wide = np.zeros((2, 3, 1, 8, 16), np.float32)
    assert not _forward(wide[:, :, :, :, ::2], w, out, unit, pad)  # not contiguous
    assert not _forward(x, w, wide[:, :, :, :, :8], unit, pad)
