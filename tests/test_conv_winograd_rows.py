"""Winograd F(2, 7) for 7x1 and 1x7 convolutions (compiler/backends/numba/
winograd_rows.py, taken by lowerings/conv.py's forward, data and weight gradient
kernels, a 1x7 kernel turned): its transforms are exact, the cases take it, and the
kernels compute what the ops' numpy implementations compute for odd and even
sizes, pads 0, 1, 3 and 6, batches that fill several products, in float32 and
float64, on one thread and split over threads; NaN and infinities land where numpy
puts them and zeros keep the interpreter's signs; the gradients agree with float64
finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import (
    assert_gradients_match_differences,
    assert_sizes_match_numpy,
    conv_arrays,
    lowered,
)
from test_conv_nonfinite import assert_specials_land_as_numpy, assert_zero_signs_as_interpreter

from symgrad_compiler.backends.numba import winograd_rows

CHANNELS = winograd_rows.LEAST_CHANNELS

# (data shape, attrs): every case takes F(2, 7) (1x7 ones turned)
CASES = {
    "7x1_pad3": ((2, 16, 17, 17), dict(kernel=(7, 1), pad=(3, 0), num_filter=20)),
    "1x7_pad3": ((3, 17, 17, 17), dict(kernel=(1, 7), pad=(0, 3), num_filter=16)),
    "7x1_odd_rows_pad0": ((2, 18, 12, 5), dict(kernel=(7, 1), num_filter=16)),
    "7x1_pad6": ((1, 16, 3, 9), dict(kernel=(7, 1), pad=(6, 0), num_filter=19)),
    # two rows (one row has nothing to turn: _cv_along_rows leaves it to the columns)
    "1x7_pad1_two_rows": ((2, 16, 2, 11), dict(kernel=(1, 7), pad=(0, 1), num_filter=16)),
    # 153 tiles an image: 3 images a product, the blocks evened out (5: 3 and 2)
    "7x1_batched": ((5, 16, 17, 17), dict(kernel=(7, 1), pad=(3, 0), num_filter=16)),
}


def _turned(kernel, pad):
    """A case's 3-D kernel and pad as the kernels see them (a 1x7 turned)."""
    if kernel[0] == 1:
        return (1, kernel[1], kernel[0]), (0, pad[1], pad[0])
    return (1,) + kernel, (0,) + pad


def test_the_transforms_give_the_correlation_exactly():
    """A^T ((G w) * (B^T d)) is the two outputs of the 7 taps over 8 inputs, for
    integer data and taps exactly (up to G's division, below 1e-13); A^T and B^T
    hold dyadic numbers only."""
    at, g, bt = winograd_rows.transforms()
    rng = np.random.default_rng(1)
    for _ in range(50):
        d = rng.integers(-9, 10, 8).astype(float)
        w = rng.integers(-9, 10, 7).astype(float)
        got = at @ ((g @ w) * (bt @ d))
        np.testing.assert_allclose(got, [w @ d[:7], w @ d[1:]], rtol=0, atol=1e-12)
    for matrix in (at, bt):
        assert np.array_equal(matrix * 4, np.round(matrix * 4))
    assert np.abs(bt).max() == 5.25


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cases_take_winograd_rows(case):
    shape, attrs = CASES[case]
    kernel, pad = _turned(attrs["kernel"], attrs.get("pad", (0, 0)))
    assert winograd_rows.takes(
        shape[1], attrs["num_filter"], 1, kernel, (1, 1, 1), (1, 1, 1), pad, 1
    )


def test_what_winograd_rows_leaves_to_the_other_routes():
    """Few channels on either side, other kernels, strides, dilation, groups, 3-D
    and a pad past 6 keep the other routes."""
    takes = winograd_rows.takes
    one = (1, 1, 1)
    assert takes(16, 16, 1, (1, 7, 1), one, one, (0, 3, 0), 1)
    assert not takes(CHANNELS - 1, 16, 1, (1, 7, 1), one, one, (0, 3, 0), 1)
    assert not takes(16, CHANNELS - 1, 1, (1, 7, 1), one, one, (0, 3, 0), 1)
    assert not takes(16, 16, 1, (1, 5, 1), one, one, (0, 2, 0), 1)
    assert not takes(16, 16, 1, (1, 7, 7), one, one, (0, 3, 3), 1)
    assert not takes(16, 16, 1, (1, 7, 1), (1, 2, 1), one, (0, 3, 0), 1)
    assert not takes(16, 16, 1, (1, 7, 1), one, (1, 2, 1), (0, 3, 0), 1)
    assert not takes(32, 32, 1, (1, 7, 1), one, one, (0, 3, 0), 2)
    assert not takes(16, 16, 4, (1, 7, 1), one, one, (0, 3, 0), 1)
    assert not takes(16, 16, 1, (1, 7, 1), one, one, (0, 7, 0), 1)
    assert not takes(16, 16, 1, (1, 7, 1), one, one, (0, 3, 1), 1)


def test_products_take_whole_images_in_even_blocks():
    images = winograd_rows._images_a_product
    assert images(153, 4) == 2  # InceptionV3's 17x17: 3 fit, so 2 and 2
    assert images(153, 5) == 3
    assert images(153, 1) == 1
    assert images(2000, 8) == 1  # an image past TILES goes alone
    assert images(8, 100) == 50  # 64 fit: two blocks of 50


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_winograd_rows_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = CASES[case]
    # batch and spatial sizes varied within one process, on the same kernels
    assert_sizes_match_numpy(
        conv_kernels, shape, attrs, dtype, 21, ((shape[0], 0), (1, 1), (shape[0] + 3, 2))
    )


def test_the_kernels_compute_by_winograd_rows(conv_kernels):
    """The forward, data and weight gradient of a 7x1 case are F(2, 7)'s, bit for
    bit (over the whole batch on this thread), and differ from the exact sums."""
    shape, attrs = CASES["7x1_batched"]
    rng = np.random.default_rng(22)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float32)
    out, exact = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    x5, w5 = x[:, :, None], w[:, :, None]
    mine = np.empty(out.shape[:2] + (1,) + out.shape[2:], np.float32)
    winograd_rows.forward(x5, w5, mine, 0, shape[0], 3, False)
    np.testing.assert_array_equal(out, mine[:, :, 0])
    assert not np.array_equal(out, exact.astype(np.float32))
    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    dx, _ = lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs)
    mine = np.empty(x5.shape, np.float32)
    winograd_rows.forward(g[:, :, None], w5, mine, 0, shape[0], 3, True)
    np.testing.assert_array_equal(dx, mine[:, :, 0])
    dw, _ = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
    mine = np.empty(w5.shape, np.float32)
    winograd_rows.weight_grad(g[:, :, None], x5, mine, 0, shape[0], 3)
    np.testing.assert_array_equal(dw, mine[:, :, 0])


@pytest.mark.parametrize("case", ["7x1_pad3", "1x7_pad3", "7x1_odd_rows_pad0", "7x1_pad6"])
def test_winograd_rows_gradients_match_finite_differences(conv_kernels, case):
    """float64: the data and weight gradients against central differences of
    sum(conv(x, w) * r), the forward itself by F(2, 7)."""
    shape, attrs = CASES[case]
    assert_gradients_match_differences(conv_kernels, shape, attrs, seed=23)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["7x1_pad3", "1x7_pad3", "7x1_odd_rows_pad0"])
def test_special_values_land_where_numpy_puts_them(conv_kernels, threading_mode, case, dtype):
    """F(2, 7) spreads a NaN or infinity over its tile (and turns inf - inf into
    NaN); the images and gradients where it does are computed again exactly, and
    weights that are not all finite leave the data gradient to the exact routes."""
    shape, attrs = CASES[case]
    assert_specials_land_as_numpy(conv_kernels, shape, attrs, dtype, seed=24)


@pytest.mark.parametrize("case", ["7x1_pad3", "1x7_pad3"])
def test_signed_zeros_as_the_interpreter(conv_kernels, case):
    """All-zero operands of either sign: the zeros' signs are the interpreter's."""
    shape, attrs = CASES[case]
    assert_zero_signs_as_interpreter(conv_kernels, shape, attrs, seed=25)
