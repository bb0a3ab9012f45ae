"""Unit-stride convolutions by products over shifted rows (compiler/backends/
numba/shifted.py): float32 on AVX-512 CPUs, images of at least
_CV_SHIFTED_POSITIONS wide positions, and smaller ones for a weight gradient of
few channel pairs (which shapes take them is checked too; a kernel of one row,
1 x k, is taken turned into a column, see test_conv_rows.py). The ops take them (checked bit for bit
against the kernel called directly, the data gradient as the forward of g with
the turned weights, and the weight gradient where the channels fill most of a
panel) and compute what numpy computes for 2-D and 3-D kernels, 1x7 and 5x5
ones, groups, dilation, more channels than a pass sums and filters that leave
a partial tile, sizes varied within one process, serial and threaded; a stem's
forward in blocks of rows takes the same tiles over its stride phases
(``phase_products``); float64 is declined and keeps the wide columns. NaN,
infinities and signed zeros: test_conv_nonfinite.py's "shifted" routes."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_conv_native import assert_sizes_match_numpy, conv_arrays, geometry, lowered
from test_conv_rows import turn, turned_triple

from symgrad_compiler.backends.numba import shifted
from symgrad_compiler.backends.numba.lowerings import conv as lconv

pytestmark = pytest.mark.skipif(not shifted.AVAILABLE, reason="the kernels need AVX-512")


@numba.njit
def _wide(x, out, pad):
    """The padded sizes Hp, Wp and the wide length L of a unit-stride
    convolution of x (N, C, D, H, W) into out."""
    Hp, Wp = x.shape[3] + 2 * pad[1], x.shape[4] + 2 * pad[2]
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    return Hp, Wp, ((od - 1) * Hp + oh - 1) * Wp + ow


@numba.njit
def _products(x, w, out, groups, kernel, dilate, pad):
    Hp, Wp, L = _wide(x, out, pad)
    return shifted.products(x, w, out, 0, x.shape[0], groups, kernel, dilate, pad, Hp, Wp, L)


def _as_taken(conv_kernels, arrays, kernel, dilate, pad):
    """The 5-D arrays and (kernel, dilate, pad) the kernels multiply for a
    convolution of ``arrays``' first one by their second, and whether they are
    turned: a kernel of one row goes with the images' last two axes exchanged
    (``_cv_along_rows``)."""
    five = [lconv._as5(a) for a in arrays]
    if not conv_kernels._cv_along_rows(five[0], five[1], kernel, (1, 1, 1), pad):
        return five, (kernel, dilate, pad), False
    return [turn(a) for a in five], tuple(turned_triple(t) for t in (kernel, dilate, pad)), True


def _turned(w, groups):
    """The data gradient's weights as a forward's: filter f and channel c of each
    group exchanged, the kernel turned by 180 degrees."""
    fg = w.shape[0] // groups
    parts = [np.swapaxes(w[g * fg : (g + 1) * fg], 0, 1) for g in range(groups)]
    turned = np.concatenate(parts)
    return np.ascontiguousarray(turned[:, :, ::-1, ::-1, ::-1])


# (data shape, attrs): every image has at least _CV_SHIFTED_POSITIONS wide positions
CASES = {
    "3x3_few_channels": ((2, 3, 24, 23), dict(kernel=(3, 3), pad=(1, 1), num_filter=4)),
    "3x3_instead_of_winograd": ((2, 16, 23, 22), dict(kernel=(3, 3), pad=(1, 1), num_filter=16)),
    "5x5_valid": ((2, 2, 28, 27), dict(kernel=(5, 5), num_filter=3)),
    "1x7_groups": (
        (2, 4, 20, 30),
        dict(kernel=(1, 7), pad=(0, 3), num_filter=2, num_group=2),
    ),
    "7x1_dilated": ((2, 3, 30, 22), dict(kernel=(3, 1), pad=(2, 0), dilate=(2, 1), num_filter=5)),
    "deep_partial_tile": ((2, 300, 24, 24), dict(kernel=(3, 3), pad=(1, 1), num_filter=13)),
    "3d": ((2, 2, 5, 12, 12), dict(kernel=(3, 3, 3), pad=(1, 1, 1), num_filter=3)),
    # channels that fill most of a panel of 32: the weight gradient too
    "weights_28_channels": ((2, 28, 24, 23), dict(kernel=(3, 3), pad=(1, 1), num_filter=8)),
    "weights_1x7_56_channels": (
        (2, 56, 20, 30),
        dict(kernel=(1, 7), pad=(0, 3), num_filter=13),
    ),
    "weights_groups_dilated": (
        (2, 64, 24, 24),
        dict(kernel=(3, 3), pad=(2, 2), dilate=(2, 2), num_filter=10, num_group=2),
    ),
    "weights_3d": ((2, 32, 4, 12, 13), dict(kernel=(2, 3, 3), pad=(0, 1, 1), num_filter=5)),
}
# cases whose forward keeps the wide columns or Winograd, but whose weight
# gradient shifted.py takes: smaller images of few channel pairs (W7's 16x16
# layers), and a 3x3 kernel of four times as many filters as channels, which
# Winograd's weight gradient does not take (SqueezeNet's expand layers)
WEIGHTS_ONLY = {
    "small_3x3_64_filters": ((2, 32, 12, 12), dict(kernel=(3, 3), pad=(1, 1), num_filter=64)),
    "small_3x3_partial_tile": ((2, 64, 11, 12), dict(kernel=(3, 3), pad=(1, 1), num_filter=13)),
    # (one image: two would be split over the threads, their sums added after)
    "many_filters_3x3": ((1, 64, 24, 23), dict(kernel=(3, 3), pad=(1, 1), num_filter=256)),
}
# the cases whose weight gradients shifted.py takes (_cv_shifted_weights)
WEIGHTS = sorted(case for case in CASES if case.startswith("weights")) + sorted(WEIGHTS_ONLY)


@pytest.mark.parametrize("case", sorted(CASES))
def test_shifted_products_match_numpy(conv_kernels, threading_mode, case):
    shape, attrs = CASES[case]
    sizes = ((shape[0], 0), (1, 3), (shape[0] + 1, 1))
    assert_sizes_match_numpy(conv_kernels, shape, attrs, np.float32, 11, sizes)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_ops_take_the_shifted_products(conv_kernels, case):
    shape, attrs = CASES[case]
    groups = attrs.get("num_group", 1)
    rng = np.random.default_rng(7)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float32)
    (kernel, _stride, dilate, pad), sizes = geometry(x.shape, attrs)
    out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    (x5, w5), taken, turned = _as_taken(conv_kernels, (x, w), kernel, dilate, pad)
    out5 = lconv._as5(out)
    direct = np.empty(np.swapaxes(out5, 3, 4).shape if turned else out5.shape, np.float32)
    assert _products(x5, w5, direct, groups, *taken)
    np.testing.assert_array_equal(out5, np.swapaxes(direct, 3, 4) if turned else direct)

    taps = np.prod(kernel)
    columns_first = w.shape[0] // groups >= w.shape[1] and taps >= 7 and kernel[1:] != (3, 3)
    if columns_first:  # the data gradient keeps col2im (_cv_columns_first)
        return
    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    dx, _ = lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs)
    turned_pad = tuple((k - 1) * d - p for k, d, p in zip(kernel, dilate, pad))
    direct = np.empty(lconv._as5(x).shape, np.float32)
    turned = _turned(lconv._as5(w), groups)
    assert _products(lconv._as5(g), turned, direct, groups, kernel, dilate, turned_pad)
    np.testing.assert_array_equal(lconv._as5(dx), direct)


@numba.njit
def _weight_products(g, x, dw3, groups, kernel, dilate, pad):
    Hp, Wp, L = _wide(x, g, pad)
    return shifted.weight_products(g, x, dw3, 0, x.shape[0], groups, kernel, dilate, pad, Hp, Wp, L)


@pytest.mark.parametrize("case", WEIGHTS)
def test_the_op_takes_the_shifted_weight_gradient(conv_kernels, case):
    shape, attrs = {**CASES, **WEIGHTS_ONLY}[case]
    groups = attrs.get("num_group", 1)
    rng = np.random.default_rng(8)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float32)
    (kernel, _stride, dilate, pad), sizes = geometry(x.shape, attrs)
    g = rng.uniform(-1, 1, (x.shape[0], w.shape[0], *sizes)).astype(np.float32)
    dw, _ = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
    (x5, w5, g5), taken, turned = _as_taken(conv_kernels, (x, w, g), kernel, dilate, pad)
    direct = np.zeros(w5.shape, np.float32)
    dw3 = direct.reshape((groups, w.shape[0] // groups, -1))
    assert _weight_products(g5, x5, dw3, groups, *taken)
    np.testing.assert_array_equal(lconv._as5(dw), np.swapaxes(direct, 3, 4) if turned else direct)


@numba.njit
def _phase_products(xq, offsets, w, out, n, Hq, Wq, L):
    return shifted.phase_products(xq, offsets, w, out, n, 0, Hq, Wq, L)


def test_a_stem_takes_the_tiles_over_its_phases(conv_kernels):
    # a 7x7/2 stem's forward by blocks of rows (_cv_strided_forward): its tiles
    # over the stride phases, bit for bit, a full and a partial tile of filters
    attrs = dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=13)
    rng = np.random.default_rng(9)
    x, w, _ = conv_arrays(rng, (2, 3, 100, 98), attrs, np.float32)
    (kernel, stride, dilate, pad), sizes = geometry(x.shape, attrs)
    out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    x5, osz = lconv._as5(x), (1, *sizes)
    Dq, Hq, Wq, L, offsets, Q = conv_kernels._cv_strided_setup(
        x5.shape[2:], osz, kernel, stride, dilate, pad
    )
    assert L > 2 * conv_kernels._CV_ROW_BLOCK  # the branch of blocks of rows
    direct = np.empty(lconv._as5(out).shape, np.float32)
    for n in range(x.shape[0]):
        xq = np.zeros((3, Q + shifted.NR), np.float32)
        conv_kernels._cv_phase_fill(x5, n, 0, pad, stride, Dq, Hq, Wq, xq)
        assert _phase_products(xq, offsets, lconv._as5(w), direct, n, Hq, Wq, L)
    np.testing.assert_array_equal(lconv._as5(out), direct)


def test_float64_is_declined():
    x = np.ones((1, 2, 1, 24, 24))
    w = np.ones((3, 2, 1, 3, 3))
    out = np.zeros((1, 3, 1, 24, 24))
    assert not _products(x, w, out, 1, (1, 3, 3), (1, 1, 1), (0, 1, 1))
    assert _products(
        *(a.astype(np.float32) for a in (x, w, out)), 1, (1, 3, 3), (1, 1, 1), (0, 1, 1)
    )
    xq, offsets = np.zeros((2, 100)), np.zeros(9, np.int64)
    out64 = np.zeros((1, 3, 1, 4, 4))
    assert not _phase_products(xq, offsets, np.ones((3, 2, 1, 3, 3)), out64, 0, 5, 5, 20)


def test_more_channel_pairs_than_the_threshold_go_by_winograd(conv_kernels):
    # a 3x3 forward of 48 -> 64 channels (3072 pairs) takes the shifted products
    # where our own tiles take Winograd's products, else Winograd (SHIFTED_WINOGRAD)
    shape, attrs = (2, 48, 24, 23), dict(kernel=(3, 3), pad=(1, 1), num_filter=64)
    rng = np.random.default_rng(9)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float32)
    (kernel, _stride, dilate, pad), _sizes = geometry(x.shape, attrs)
    out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    x5, w5 = lconv._as5(x), lconv._as5(w)
    route = np.empty(lconv._as5(out).shape, np.float32)
    if 48 * 64 <= lconv.SHIFTED_WINOGRAD:
        assert _products(x5, w5, route, 1, kernel, dilate, pad)
    else:
        conv_kernels._cv_winograd_forward(x5, w5, route, 0, shape[0], 1, pad, False)
    np.testing.assert_array_equal(lconv._as5(out), route)


@pytest.mark.parametrize("case", sorted(WEIGHTS_ONLY))
def test_weights_only_cases_match_numpy(conv_kernels, threading_mode, case):
    shape, attrs = WEIGHTS_ONLY[case]
    sizes = ((shape[0], 0), (1, 3), (shape[0] + 1, 1))
    assert_sizes_match_numpy(conv_kernels, shape, attrs, np.float32, 12, sizes)


@pytest.mark.parametrize(
    "shape, attrs, taken",
    [
        # W7's 64 -> 64 16x16 layer: 4096 pairs, the most a small image takes
        ((2, 64, 16, 16), dict(kernel=(3, 3), pad=(1, 1), num_filter=64), True),
        # Inception's 1x7 192 -> 192 17x17 layer (turned: 7x1), and its 5x5 48 -> 64
        # 35x35 one (48 channels, 3/4 of two panels), keep the wide columns on our
        # own tiles and take the shifted products where OpenBLAS's AVX-512 kernels
        # would take the columns' (SHIFTED_WEIGHTS_POSITIONS, SHIFTED_WEIGHTS_FILL)
        ((2, 192, 17, 17), dict(kernel=(7, 1), pad=(3, 0), num_filter=192), not lconv.OWN_TILES),
        ((2, 48, 35, 35), dict(kernel=(5, 5), pad=(2, 2), num_filter=64), not lconv.OWN_TILES),
        # more pairs than that on a big image: Winograd's, as before
        ((2, 96, 32, 32), dict(kernel=(3, 3), pad=(1, 1), num_filter=96), False),
        # ... unless Winograd's does not take it for its many filters (SqueezeNet's
        # 64 -> 256 27x27 expand layer: four times as many filters as channels);
        # one filter fewer is Winograd's
        ((2, 64, 27, 27), dict(kernel=(3, 3), pad=(1, 1), num_filter=256), True),
        ((2, 64, 27, 27), dict(kernel=(3, 3), pad=(1, 1), num_filter=255), False),
    ],
)
def test_which_weight_gradients_take_the_shifted_products(conv_kernels, shape, attrs, taken):
    rng = np.random.default_rng(10)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float32)
    (kernel, _stride, dilate, pad), sizes = geometry(x.shape, attrs)
    g = rng.uniform(-1, 1, (x.shape[0], w.shape[0], *sizes)).astype(np.float32)
    g5, x5 = lconv._as5(g), lconv._as5(x)
    dw3 = np.zeros((1, w.shape[0], w[0].size), np.float32)
    L = _wide(x5, g5, pad)[2]
    cg, fg = x.shape[1], w.shape[0]
    assert conv_kernels._cv_shifted_weights(g5, x5, dw3, L, cg, fg, kernel, dilate) == taken
