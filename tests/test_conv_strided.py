"""The strided convolution kernels on stride phases of the numba backend
(compiler/backends/numba/lowerings/conv.py: ``_cv_strided_forward``,
``_cv_strided_data_grad``, ``_cv_strided_weight_grad``): each channel padded into
its stride phases, the columns contiguous copies over the phases' wide positions.
They compute what the ops' numpy implementations compute for kernels wider than
twice the stride and for small images taken several to a product, with pads,
dilations, groups, ranks and odd sizes varied within one process, on one thread
and split over threads; the gradients agree with float64 finite differences; and
the cases im2col keeps (3x3/2 on large images, 1x1) are declined."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_conv_native import (
    assert_gradients_match_differences,
    assert_sizes_match_numpy,
    conv_arrays,
    geometry,
    lowered,
)
from test_conv_nonfinite import SPECIALS, _run, _spots

from symgrad_compiler.backends.numba.lowerings import conv as lconv

# (data shape, attrs): strided throughout, every case on the phases
STRIDED_CASES = {
    "stem_7x7_s2": ((2, 3, 19, 17), dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=5)),
    "alexnet_11x11_s4": (
        (2, 3, 27, 30),
        dict(kernel=(11, 11), stride=(4, 4), pad=(2, 2), num_filter=4),
    ),
    "small_3x3_s2": ((5, 6, 9, 11), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4)),
    # more weights than _CV_FEW_WEIGHTS: the weight gradient's product g @ cols^T
    "many_weights": ((2, 128, 7, 7), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=72)),
    # more than 2 * _CV_ROW_BLOCK wide positions: the forward by blocks of rows
    "stem_row_blocks": (
        (1, 3, 100, 98),
        dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=4),
    ),
    # our tiles over the phases (shifted.phase_products): a full and a partial
    # tile of filters, and AlexNet's 11x11/4 on an image big enough for blocks of rows
    "stem_row_blocks_two_tiles": (
        (2, 3, 100, 98),
        dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=13),
    ),
    "alexnet_row_blocks": (
        (1, 3, 203, 199),
        dict(kernel=(11, 11), stride=(4, 4), pad=(2, 2), num_filter=14),
    ),
    "small_no_pad_odd": ((3, 4, 8, 7), dict(kernel=(3, 2), stride=(3, 2), num_filter=3)),
    "groups_dilate": (
        (3, 4, 10, 9),
        dict(kernel=(3, 3), stride=(2, 2), dilate=(2, 1), pad=(2, 1), num_filter=6, num_group=2),
    ),
    "pad_beyond_kernel": (
        (2, 3, 6, 7),
        dict(kernel=(2, 3), stride=(2, 3), pad=(3, 2), num_filter=2),
    ),
    "1d_wide_kernel": ((3, 2, 23), dict(kernel=(7,), stride=(3,), pad=(1,), num_filter=3)),
    "3d": ((2, 2, 5, 6, 5), dict(kernel=(3, 3, 2), stride=(2, 1, 2), pad=(1, 1, 0), num_filter=3)),
}


def _phase_length(conv_kernels, shape, attrs):
    (kernel, stride, dilate, pad), out = geometry(shape, attrs)
    sizes = (1,) * (5 - len(shape)) + shape[2:]
    osz = (1,) * (3 - len(out)) + tuple(out)
    return conv_kernels._cv_strided_setup(sizes, osz, kernel, stride, dilate, pad)[3]


@pytest.mark.parametrize("case", sorted(STRIDED_CASES))
def test_the_cases_take_the_phases(conv_kernels, case):
    shape, attrs = STRIDED_CASES[case]
    assert _phase_length(conv_kernels, shape, attrs) > 0


@pytest.mark.parametrize(
    "shape, attrs",
    [
        ((2, 64, 56, 56), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=8)),
        ((2, 8, 14, 14), dict(kernel=(1, 1), stride=(2, 2), num_filter=8)),
    ],
)
def test_im2col_keeps_large_3x3_and_1x1(conv_kernels, shape, attrs):
    """ResNet's 56x56 3x3/2 and any strided 1x1 stay on im2col (measured faster)."""
    assert _phase_length(conv_kernels, shape, attrs) == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(STRIDED_CASES))
def test_strided_convolution_and_gradients_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = STRIDED_CASES[case]
    # batch and spatial sizes varied within one process, on the same kernels
    assert_sizes_match_numpy(
        conv_kernels,
        shape,
        attrs,
        dtype,
        11,
        ((shape[0], 0), (1, 1), (shape[0] + 4, 2), (shape[0], 0)),
        "_cv_strided_weight_grad",
    )


@pytest.mark.parametrize("case", sorted(STRIDED_CASES))
def test_strided_gradients_match_finite_differences(conv_kernels, case):
    """float64: the data and weight gradient kernels against central differences
    of sum(conv(x, w) * r) computed by the forward kernel."""
    shape, attrs = STRIDED_CASES[case]
    assert_gradients_match_differences(conv_kernels, shape, attrs, seed=12)


def test_data_gradient_pieces_follow_the_small_gradient(monkeypatch):
    """A strided data gradient's products grow with g's positions (8x8 here), not
    the data's (17x17): its batch goes in pieces of one product's images, as the
    forward's does, not the guided pieces of one image (measured 4.9 -> 4.7 ms for
    Inception's 17x17 3x3/2 layer, B=8)."""
    monkeypatch.setattr(lconv.threads, "count", lambda: 2)
    monkeypatch.setattr(lconv, "PARALLEL_WORK", 0)
    seen = []
    monkeypatch.setattr(lconv.threads, "run", lambda kernel, calls: seen.extend(calls))
    g = np.zeros((8, 320, 8, 8), np.float32)  # the layer's shapes: the guided split
    w = np.zeros((320, 192, 3, 3), np.float32)  # cuts its work in 7 pieces
    geo = lconv.geometry3(2, (3, 3), (2, 2), (1, 1), (0, 0))
    lconv._transposed(None, g, w, None, (8, 192, 17, 17), 1, geo)
    assert [(call[4], call[5]) for call in seen] == [(0, 4), (4, 8)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_in_row_blocks_land_where_numpy_puts_them(conv_kernels, dtype):
    """The blocks of rows of a big image's forward and weight gradient: NaN and
    infinities in the data or the weights where numpy's sum over the taps puts
    them, a block's junk columns dropped whole."""
    shape, attrs = STRIDED_CASES["stem_row_blocks"]
    rng = np.random.default_rng(19)
    x, w, _ = conv_arrays(rng, shape, attrs, dtype)
    g = rng.uniform(
        -1, 1, lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)[1].shape
    )
    g = g.astype(dtype)
    for where, value in itertools.product("xw", SPECIALS):
        for spot in _spots((x if where == "x" else w).shape, rng):
            xs, ws = x.copy(), w.copy()
            (xs if where == "x" else ws)[spot] = value
            what = f"{value} in {where} at {spot}"
            _run(conv_kernels, "Convolution", (xs, ws), attrs, dtype, what)
            _run(conv_kernels, "_conv_weight_grad", (g, xs, ws), attrs, dtype, what + ", dw")
