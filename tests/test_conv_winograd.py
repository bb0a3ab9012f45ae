"""Winograd F(2x2, 3x3) in the numba convolution kernels
(compiler/backends/numba/lowerings/conv.py: ``_cv_winograd_forward``, the data
gradient through it with the flipped weights, ``_cv_winograd_weight_grad``): 3x3
unit-stride convolutions with at least ``_CV_WINOGRAD_CHANNELS`` channels on each
side of a group compute what the ops' numpy implementations compute, for odd and
even sizes, pads, groups and batches that fill several products, in float32 and
float64, on one thread and split over threads; NaN and infinities land where numpy
puts them (an image or gradient whose Winograd result is not finite is computed
again by the exact path); the gradients agree with float64 finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import (
    assert_gradients_match_differences,
    assert_sizes_match_numpy,
    close,
    conv_arrays,
    lowered,
    routed_weight_grad,
)
from test_conv_nonfinite import (
    _run,
    assert_specials_land_as_numpy,
    assert_zero_signs_as_interpreter,
)

from symgrad_compiler.backends.numba.lowerings import conv as lconv

CHANNELS = 16  # the kernels' _CV_WINOGRAD_CHANNELS

# (data shape, attrs): every case takes the Winograd kernels
CASES = {
    "even_pad1": ((2, 16, 8, 8), dict(kernel=(3, 3), pad=(1, 1), num_filter=16)),
    "odd_rect_pad1": ((3, 17, 7, 9), dict(kernel=(3, 3), pad=(1, 1), num_filter=20)),
    "no_pad_groups": (
        (2, 32, 5, 6),
        dict(kernel=(3, 3), num_filter=32, num_group=2),
    ),
    "pad2_and_0": ((2, 16, 5, 4), dict(kernel=(3, 3), pad=(2, 0), num_filter=18)),
    "one_row": ((1, 16, 1, 3), dict(kernel=(3, 3), pad=(1, 1), num_filter=24)),
    # 49 tiles an image: several images side by side, the last product shorter
    "14x14_batched": ((9, 16, 14, 14), dict(kernel=(3, 3), pad=(1, 1), num_filter=16)),
    "7x7": ((5, 16, 7, 7), dict(kernel=(3, 3), pad=(1, 1), num_filter=17)),
    # outputs 16 or more wide: the transforms by vector loops over planes (odd
    # sizes, the last row and column of tiles half outside; pads 2 and 0; groups)
    "planes_odd": ((2, 16, 15, 17), dict(kernel=(3, 3), pad=(1, 1), num_filter=18)),
    "planes_pad2_0": ((3, 16, 18, 21), dict(kernel=(3, 3), pad=(2, 0), num_filter=16)),
    "planes_groups": (
        (2, 32, 16, 16),
        dict(kernel=(3, 3), pad=(1, 1), num_filter=32, num_group=2),
    ),
    # V and M of four images over the cache's budget: two images a product, the
    # last product shorter
    "cache_limited": ((5, 64, 16, 16), dict(kernel=(3, 3), pad=(1, 1), num_filter=64)),
    # 529 tiles an image: products of 8, 8 and 7 rows of tiles
    "planes_rows": ((2, 16, 46, 45), dict(kernel=(3, 3), pad=(1, 1), num_filter=16)),
}


def geometry(shape, attrs):
    """The kernel's 3-D (cg, fg, depth, kernel, dilation) of a case."""
    groups = attrs.get("num_group", 1)
    return shape[1] // groups, attrs["num_filter"] // groups, 1, (1, 3, 3), (1, 1, 1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cases_take_winograd(conv_kernels, case):
    """Each case fits Winograd, and the data gradient's flipped weights (channels
    and filters swapped) do too."""
    shape, attrs = CASES[case]
    cg, fg, depth, kernel, dilate = geometry(shape, attrs)
    assert conv_kernels._cv_winograd_fits(cg, fg, depth, kernel, dilate)
    assert conv_kernels._cv_winograd_fits(fg, cg, depth, kernel, dilate)


def test_what_winograd_leaves_to_the_other_paths(conv_kernels):
    """Few channels (W7's first layer, its data gradient's 3 filters), other
    kernels, dilation and 3-D keep the wide columns."""
    fits = conv_kernels._cv_winograd_fits
    assert not fits(3, 32, 1, (1, 3, 3), (1, 1, 1))
    assert not fits(32, CHANNELS - 1, 1, (1, 3, 3), (1, 1, 1))
    assert not fits(32, 32, 1, (1, 5, 5), (1, 1, 1))
    assert not fits(32, 32, 1, (1, 3, 3), (1, 2, 1))
    assert not fits(32, 32, 4, (3, 3, 3), (1, 1, 1))


def test_which_cases_take_the_planes_and_rows_of_tiles(conv_kernels):
    """Outputs at least 16 wide take the planes' transforms; an image of more than
    _CV_WINOGRAD_TILES tiles goes in products of rows of tiles, one image each."""
    blocks = conv_kernels._cv_winograd_blocks
    assert blocks(7, 7, 0, 9, 0)[2] is False  # 14x14: tile by tile, 6 images a product
    assert blocks(7, 7, 0, 9, 0)[:2] == (6, 7)
    assert blocks(8, 9, 0, 2, 0) == (2, 8, True)  # planes_odd: 15x17
    assert blocks(23, 23, 0, 2, 0) == (1, 8, True)  # planes_rows: 46x45
    assert blocks(28, 28, 0, 8, 0) == (1, 7, True)  # ResNet's 56x56: 4 products


def test_the_forward_keeps_its_products_in_cache(conv_kernels):
    """Every Winograd product (forward, data and weight gradient) takes as many
    images as keep its two transformed operands within _CV_WINOGRAD_CACHED values,
    where the weights' transform is no bigger: W7's 64-channel 16x16 layer two
    images (not four), its 32-channel 32x32 one a whole image; ResNet's 256- and
    512-channel layers as before."""
    blocks, cached = conv_kernels._cv_winograd_blocks, conv_kernels._cv_winograd_cached
    assert cached(64, 64) == 16 * 128
    assert blocks(8, 8, 0, 32, cached(64, 64)) == (2, 8, True)
    assert blocks(8, 8, 0, 32, 0) == (4, 8, True)  # without the cache's bound
    assert blocks(8, 8, 0, 32, cached(32, 64)) == (2, 8, True)
    assert blocks(16, 16, 0, 32, cached(32, 32)) == (1, 16, True)
    assert blocks(7, 7, 0, 9, cached(16, 16))[:2] == (6, 7)  # 14x14_batched
    assert cached(256, 256) == 0 and cached(512, 512) == 0
    assert blocks(4, 4, 0, 8, cached(512, 512)) == (8, 4, False)  # 7x7: 8 images


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_winograd_matches_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = CASES[case]
    # batch and spatial sizes varied within one process, on the same kernels
    assert_sizes_match_numpy(
        conv_kernels,
        shape,
        attrs,
        dtype,
        11,
        ((shape[0], 0), (1, 1), (shape[0] + 3, 2), (shape[0], 3)),
        "_cv_winograd_weight_grad",
    )


@pytest.mark.parametrize(
    "case", ["odd_rect_pad1", "14x14_batched", "no_pad_groups", "planes_odd", "planes_rows"]
)
def test_winograd_gradients_match_finite_differences(conv_kernels, case):
    """float64: the data and weight gradients against central differences of
    sum(conv(x, w) * r), the forward itself by Winograd."""
    shape, attrs = CASES[case]
    assert_gradients_match_differences(conv_kernels, shape, attrs, seed=12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "case", ["odd_rect_pad1", "14x14_batched", "no_pad_groups", "planes_odd", "planes_rows"]
)
def test_special_values_land_where_numpy_puts_them(conv_kernels, threading_mode, case, dtype):
    """Winograd spreads a NaN or infinity over its tile (and turns inf - inf into
    NaN); the images and gradients where it does are computed again exactly."""
    shape, attrs = CASES[case]
    assert_specials_land_as_numpy(conv_kernels, shape, attrs, dtype, seed=13)


def test_a_finite_batch_after_a_special_one(conv_kernels):
    """A batch with a NaN, then the same finite batch: nothing of the exact
    recomputation is left behind."""
    shape, attrs = CASES["14x14_batched"]
    rng = np.random.default_rng(14)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float64)
    spoiled = x.copy()
    spoiled[3, 5, 7, 7] = np.nan
    _run(conv_kernels, "Convolution", (spoiled, w), attrs, np.float64, "forward")
    close(*lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs), np.float64)
    _, out = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    g = rng.uniform(-1, 1, out.shape)
    _run(conv_kernels, "_conv_weight_grad", (g, spoiled, w), attrs, np.float64, "dw")
    close(*lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs), np.float64)


def test_signed_zeros_as_the_interpreter(conv_kernels):
    """All-zero operands of either sign: the zeros' signs are the interpreter's."""
    shape, attrs = CASES["odd_rect_pad1"]
    assert_zero_signs_as_interpreter(conv_kernels, shape, attrs, seed=15)


def test_weight_gradients_of_many_more_filters_keep_the_wide_columns(conv_kernels):
    """A weight gradient with _CV_WINOGRAD_GRAD_FILTERS times as many filters as
    channels or more (SqueezeNet's expand layers) is the wide columns' (bit for
    bit), though its forward fits Winograd; one filter fewer keeps Winograd's."""
    assert conv_kernels._CV_WINOGRAD_GRAD_FILTERS == lconv.WINOGRAD_GRAD_FILTERS == 4
    rng = np.random.default_rng(31)
    for filters, route in ((64, "_cv_wide_weight_grad"), (63, "_cv_winograd_weight_grad")):
        attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=filters)
        x, w, _ = conv_arrays(rng, (3, CHANNELS, 9, 10), attrs, np.float32)
        assert conv_kernels._cv_winograd_fits(CHANNELS, filters, 1, (1, 3, 3), (1, 1, 1))
        g = rng.uniform(-1, 1, (3, filters, 9, 10)).astype(np.float32)
        got, expected = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
        close(got, expected, np.float32)
        np.testing.assert_array_equal(got, routed_weight_grad(conv_kernels, route, g, x, w, attrs))
