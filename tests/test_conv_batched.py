"""The unit-stride convolution kernels take the images of a small layer side by side
in one product (``_CV_WIDE_BATCH`` wide positions: ResNet's 7x7 and 14x14 layers,
63 and 224 positions per image; the weight gradient's product per image was as big
as the weights): the forward, the data gradient (the forward of the flipped weights)
and the weight gradient compute what the ops' numpy implementations compute for
batches that fill, overfill and underfill that product, on one thread and split
over threads."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import close, conv_arrays, lowered

# (data shape but for the batch, attrs): positions per image well below the batch size
SMALL_LAYERS = {
    "7x7_pad1": ((5, 7, 7), dict(kernel=(3, 3), pad=(1, 1), num_filter=6)),
    "groups_dilate": (
        (4, 6, 5),
        dict(kernel=(3, 2), pad=(1, 0), dilate=(1, 2), num_filter=4, num_group=2),
    ),
    "1d": ((3, 9), dict(kernel=(3,), pad=(1,), num_filter=5)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(SMALL_LAYERS))
def test_batched_products_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = SMALL_LAYERS[case]
    rng = np.random.default_rng(11)
    # batches of one product, of several with a shorter last one, and sizes varied
    # within one process (the same kernels)
    for batch, grow in ((1, 0), (3, 0), (37, 0), (80, 1), (9, 2), (37, 0)):
        spatial = tuple(s + grow for s in shape[1:])
        x, w, b = conv_arrays(rng, (batch, shape[0]) + spatial, attrs, dtype)
        got, out = lowered(conv_kernels, "Convolution", (x, w, b), no_bias=False, **attrs)
        close(got, out, dtype)
        g = rng.uniform(-1, 1, out.shape).astype(dtype)
        close(*lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs), dtype)
        close(*lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs), dtype)


def test_special_values_stay_in_their_images(conv_kernels):
    """An infinity in one image's gradient gives what numpy gives (inf or NaN in the
    weights it touches), and a batch after it, sharing the product's buffers, is
    computed afresh. (A NaN in the data is not checked: the wide columns carry junk
    positions, multiplied by zero, and a NaN read there reaches the weights where
    numpy's does not; the per-image products did the same.)"""
    shape, attrs = SMALL_LAYERS["7x7_pad1"]
    rng = np.random.default_rng(5)
    x, w, _ = conv_arrays(rng, (40,) + shape, attrs, np.float32)
    _, out = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    g = rng.uniform(-1, 1, out.shape).astype(np.float32)
    g[2, 1, 3, 3] = np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        got, expected = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    close(np.nan_to_num(got), np.nan_to_num(expected), np.float32)
    clean, clean_expected = lowered(conv_kernels, "_conv_weight_grad", (g[8:], x[8:], w), **attrs)
    close(clean, clean_expected, np.float32)
