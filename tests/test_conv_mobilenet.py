"""MobileNet's convolutions in the numba backend with several images in one pass
(compiler/backends/numba/lowerings/conv.py): depthwise 3x3 layers with the planes
of up to _CV_DEPTHWISE_SPAN positions of images side by side
(``_cv_depthwise_layout``), and pointwise 1x1 layers of small images packed into
one product (``_cv_packed_product``, ``_cv_packed_weight_grad``).

The cases reach a full pass of images, a shorter last pass (big planes, long
batches), one image alone, 7x7, 14x14, one-wide and 1x1 images, strides 1 and 2,
padding and channel multipliers; each runs in float32 and float64, on one thread
and split over threads, with batch and image sizes varied within one process,
against the ops' numpy implementations, and in float64 against central
differences. NaN and infinities on these routes are tested in
test_conv_nonfinite.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import (
    assert_gradients_match_differences,
    assert_sizes_match_numpy,
)


def depthwise(multiplier=1, **attrs):
    """Attrs of a depthwise 3x3 case (num_filter and num_group set per shape)."""
    return dict(kernel=(3, 3), pad=(1, 1), multiplier=multiplier, **attrs)


# (data shape, attrs); depthwise cases carry ``multiplier`` instead of num_filter
DEPTHWISE = {
    "7x7_s1_one_pass": ((8, 3, 7, 7), depthwise()),
    "14x14_s2_one_pass": ((8, 2, 14, 14), depthwise(stride=(2, 2))),
    "14x14_s1_multiplier2": ((6, 2, 14, 14), depthwise(multiplier=2)),
    "one_wide_column": ((5, 2, 9, 1), depthwise()),
    "one_wide_row_s2": ((5, 2, 1, 9), depthwise(stride=(2, 2))),
    # planes of 1638 positions: two images a pass, the batch of five ends short
    "big_plane_short_last_pass": ((5, 2, 40, 37), depthwise(multiplier=2)),
    # stride 2: four phases of 272 positions, three images a pass
    "big_plane_s2_short_last_pass": ((5, 2, 30, 31), depthwise(multiplier=2, stride=(2, 2))),
    "no_pad_s2": ((4, 3, 9, 8), dict(kernel=(3, 3), stride=(2, 2), multiplier=1)),
}

POINTWISE = {
    "7x7_packed": ((8, 6, 7, 7), dict(kernel=(1, 1), num_filter=5)),
    "1x1_images": ((5, 7, 1, 1), dict(kernel=(1, 1), num_filter=4)),
    # 64 positions: sixteen images a forward product, the batch of 20 ends short
    "8x8_short_last_product": ((20, 3, 8, 8), dict(kernel=(1, 1), num_filter=4)),
    # 60 positions: 34 images a weight gradient product, the batch of 37 ends short
    "6x10_long_batch": ((37, 2, 6, 10), dict(kernel=(1, 1), num_filter=3)),
    "14x14_one_by_one": ((3, 4, 14, 14), dict(kernel=(1, 1), num_filter=6)),
    "groups_not_packed": ((4, 4, 7, 7), dict(kernel=(1, 1), num_filter=6, num_group=2)),
}


def full_attrs(shape, attrs):
    """The Convolution attrs of a case."""
    if "multiplier" not in attrs:
        return attrs
    full = {k: v for k, v in attrs.items() if k != "multiplier"}
    full.update(num_filter=shape[1] * attrs["multiplier"], num_group=shape[1])
    return full


CASES = {"dw_" + k: v for k, v in DEPTHWISE.items()}
CASES.update({"pw_" + k: v for k, v in POINTWISE.items()})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_passes_of_several_images_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, extra = CASES[case]
    attrs = full_attrs(shape, extra)
    # the same compiled kernels for every size: a full batch, one image, a longer
    # batch of bigger images, the first again
    assert_sizes_match_numpy(
        conv_kernels,
        shape,
        attrs,
        dtype,
        31,
        ((shape[0], 0), (1, 0), (shape[0] + 3, 1), (shape[0], 0)),
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_match_finite_differences(conv_kernels, case):
    shape, extra = CASES[case]
    assert_gradients_match_differences(conv_kernels, shape, full_attrs(shape, extra), seed=7)


def test_the_layout_puts_several_images_in_a_pass(conv_kernels):
    """7x7 planes: all eight images in one pass; 40x37 ones: two; and the phases
    of image b start b planes apart, those of the next phase B planes on."""
    k = conv_kernels
    geometry = ((1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 1, 1))
    kernel, stride, dilate, pad = geometry
    small = k._cv_depthwise_layout((1, 7, 7), (1, 7, 7), kernel, stride, dilate, pad, 8, False)
    assert small[5] == 8 and small[4] == 81
    big = k._cv_depthwise_layout((1, 40, 37), (1, 40, 37), kernel, stride, dilate, pad, 5, False)
    assert big[5] == 2
    s2 = k._cv_depthwise_layout((1, 14, 14), (1, 7, 7), kernel, (1, 2, 2), dilate, pad, 8, False)
    Dq, Hq, Wq, L, PQ, B, offsets = s2
    assert (Hq, Wq, PQ, B) == (8, 8, 64, 8)
    assert offsets[1] == B * PQ  # kernel position (0, 0, 1): phase 1, no shift
