"""Convolutions whose kernel is one row (1 x k, as InceptionV3's 1x7 and 1x3
layers) at unit stride, padded along the row only: the forward and the weight
gradient go with the images' last two axes exchanged, the kernel a column
(``_cv_along_rows`` in compiler/backends/numba/lowerings/conv.py), where the
wide positions carry no junk columns. Checked: which convolutions go turned; the
ops' results are the turned computation's bit for bit (the weight gradient of
images small enough to go packed is not turned); and they match numpy for
float32 and float64 at sizes varied within one process, on one thread and split
over threads, with bias, groups and dilation along the row, on 2-D and 3-D
images, by the wide columns and by shifted.py's products. NaN, infinities and
signed zeros: test_conv_nonfinite.py's "rows" route."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import assert_sizes_match_numpy, conv_arrays, geometry, lowered

from symgrad_compiler.backends.numba.lowerings import conv as lconv

# (data shape, attrs): each goes turned
CASES = {
    "1x7_small_image": ((2, 4, 7, 9), dict(kernel=(1, 7), pad=(0, 3), num_filter=5)),
    "1x5_dilated_groups": (
        (2, 6, 9, 13),
        dict(kernel=(1, 5), pad=(0, 4), dilate=(1, 2), num_filter=4, num_group=2),
    ),
    "1x3_valid": ((3, 3, 6, 10), dict(kernel=(1, 3), num_filter=2)),
    # turned, 30 rows of 20 wide positions: shifted.py's products (float32)
    "1x3_big_image": ((2, 32, 20, 30), dict(kernel=(1, 3), pad=(0, 1), num_filter=8)),
    "1x1x7_3d": ((2, 3, 2, 6, 9), dict(kernel=(1, 1, 7), pad=(0, 0, 3), num_filter=3)),
}


def _along_rows(conv_kernels, x_shape, attrs):
    x = np.zeros(x_shape, np.float32)
    groups = attrs.get("num_group", 1)
    w = np.zeros((attrs["num_filter"], x_shape[1] // groups) + attrs["kernel"], np.float32)
    (kernel, stride, _dilate, pad), _ = geometry(x_shape, attrs)
    return conv_kernels._cv_along_rows(lconv._as5(x), lconv._as5(w), kernel, stride, pad)


@pytest.mark.parametrize(
    "x_shape, attrs, turned",
    [(shape, attrs, True) for shape, attrs in CASES.values()]
    + [
        # a column, or a row padded across the rows too, stays as it is
        ((2, 3, 9, 6), dict(kernel=(7, 1), pad=(3, 0), num_filter=2), False),
        ((2, 3, 9, 9), dict(kernel=(1, 3), pad=(1, 1), num_filter=2), False),
        # strided (the phases route), 1x1, depthwise, and a 1-D image (one row)
        ((2, 3, 9, 9), dict(kernel=(1, 3), stride=(1, 2), num_filter=2), False),
        ((2, 3, 9, 9), dict(kernel=(1, 1), num_filter=2), False),
        ((2, 3, 9, 9), dict(kernel=(1, 3), pad=(0, 1), num_filter=3, num_group=3), False),
        ((2, 3, 12), dict(kernel=(5,), pad=(2,), num_filter=2), False),
    ],
)
def test_which_convolutions_go_turned(conv_kernels, x_shape, attrs, turned):
    assert _along_rows(conv_kernels, x_shape, attrs) == turned


def turn(a):
    """``a`` as 5-D with its last two axes exchanged, C-contiguous."""
    return np.ascontiguousarray(np.swapaxes(lconv._as5(a), 3, 4))


def turned_triple(t):
    """A 3-D geometry's triple for the turned images: its last two exchanged."""
    return (t[0], t[2], t[1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_ops_compute_the_turned_convolution(conv_kernels, case):
    # bit for bit: the kernels' own routes over the turned images and weights
    shape, attrs = CASES[case]
    groups = attrs.get("num_group", 1)
    rng = np.random.default_rng(3)
    x, w, b = conv_arrays(rng, shape, attrs, np.float32)
    (kernel, stride, dilate, pad), sizes = geometry(x.shape, attrs)
    turned = (turned_triple(kernel), stride, turned_triple(dilate), turned_triple(pad))
    out, _ = lowered(conv_kernels, "Convolution", (x, w, b), no_bias=False, **attrs)
    direct = np.empty(turn(out).shape, np.float32)
    conv_kernels._cv_forward(turn(x), turn(w), b, direct, 0, len(x), groups, *turned)
    np.testing.assert_array_equal(lconv._as5(out), np.swapaxes(direct, 3, 4))

    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    dw, _ = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
    positions = int(np.prod(sizes))
    if positions <= conv_kernels._CV_PACK_POSITIONS:  # small images: not turned
        direct = np.empty(lconv._as5(w).shape, np.float32)
        geometry5 = (kernel, stride, dilate, pad)
        conv_kernels._cv_weight_grad(
            lconv._as5(g), lconv._as5(x), direct, 0, len(x), groups, *geometry5
        )
        np.testing.assert_array_equal(lconv._as5(dw), direct)
        return
    direct = np.empty(turn(w).shape, np.float32)
    conv_kernels._cv_weight_grad(turn(g), turn(x), direct, 0, len(x), groups, *turned)
    np.testing.assert_array_equal(lconv._as5(dw), np.swapaxes(direct, 3, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_turned_convolutions_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = CASES[case]
    sizes = ((shape[0], 0), (1, 2), (shape[0] + 1, 1))
    assert_sizes_match_numpy(conv_kernels, shape, attrs, dtype, 13, sizes)
