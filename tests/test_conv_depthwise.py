"""Depthwise convolutions on the wide positions of their stride phases in the numba
backend (compiler/backends/numba/lowerings/conv.py: ``_cv_depthwise_wide`` for the
forward and the unit-stride data gradient, ``_cv_depthwise_scatter`` for the other
data gradients, ``_cv_depthwise_wide_weight_grad``): the padded channel laid out
in stride phases, one flat vector loop per kernel position. They compute what the
ops' numpy implementations compute for ranks 1-3, strides 1-3, pads (beyond the
kernel too), dilations, channel multipliers 1-3 and sizes varied within one
process, on one thread and split over threads; the gradients agree with float64
finite differences. Float32 3x3 cases at stride 1 or 2 with one filter a channel
go to depthwise.py's vector kernels instead (test_conv_depthwise_vectors.py);
``test_the_cases_take_the_wide_path`` calls the wide kernels themselves."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import assert_sizes_match_numpy, close, conv_arrays, lowered

# (data shape, attrs): num_group = channels throughout, stride 1
CASES = {
    "3x3_pad1": ((2, 4, 9, 8), dict(kernel=(3, 3), pad=(1, 1))),
    "3x3_multiplier2": ((2, 3, 7, 6), dict(kernel=(3, 3), pad=(1, 1), multiplier=2)),
    "5x3_dilate_pad": ((3, 2, 11, 9), dict(kernel=(5, 3), pad=(4, 1), dilate=(2, 1))),
    "no_pad_multiplier3": ((2, 2, 6, 7), dict(kernel=(3, 2), multiplier=3)),
    "pad_beyond_kernel": ((2, 3, 5, 6), dict(kernel=(3, 3), pad=(3, 2))),
    "1d": ((3, 3, 17), dict(kernel=(5,), pad=(2,))),
    "3d": ((2, 2, 4, 5, 6), dict(kernel=(3, 3, 3), pad=(1, 1, 1))),
    "big_plane": ((2, 2, 40, 37), dict(kernel=(3, 3), pad=(1, 1))),
    "s2_pad1": ((2, 4, 9, 10), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1))),
    "s2_multiplier2_odd": ((3, 2, 11, 7), dict(kernel=(3, 3), stride=(2, 2), multiplier=2)),
    "s3_dilate": ((2, 3, 13, 12), dict(kernel=(3, 2), stride=(3, 2), dilate=(2, 3), pad=(2, 1))),
    "s2_rect_stride": ((2, 2, 8, 9), dict(kernel=(5, 3), stride=(1, 2), pad=(2, 1))),
    "1d_s2": ((3, 2, 15), dict(kernel=(3,), stride=(2,), pad=(1,))),
    "3d_s2": ((2, 2, 5, 6, 7), dict(kernel=(3, 3, 3), stride=(2, 2, 2), pad=(1, 1, 1))),
}


def depthwise_attrs(channels, attrs):
    """The Convolution attrs of a depthwise case (``multiplier`` filters a channel)."""
    full = {k: v for k, v in attrs.items() if k != "multiplier"}
    full["num_filter"] = channels * attrs.get("multiplier", 1)
    full["num_group"] = channels
    return full


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_depthwise_wide_matches_numpy(conv_kernels, threading_mode, case, dtype):
    shape, extra = CASES[case]
    attrs = depthwise_attrs(shape[1], extra)
    assert_sizes_match_numpy(
        conv_kernels,
        shape,
        attrs,
        dtype,
        13,
        ((shape[0], 0), (1, 2), (shape[0] + 3, 1), (shape[0], 0)),
    )


def test_the_cases_take_the_wide_path(conv_kernels):
    """The wide kernels accept every case (the data gradient's scatter at any
    stride, and the turned taps at stride 1 where the pad fits the kernel)."""
    for case in sorted(CASES):
        shape, extra = CASES[case]
        attrs = depthwise_attrs(shape[1], extra)
        x, w, _ = conv_arrays(np.random.default_rng(0), shape, attrs, np.float64)
        rank = x.ndim - 2
        geometry = [
            (1,) * (3 - rank) + attrs.get(name, (default,) * rank)
            for name, default in (("kernel", 0), ("stride", 1), ("dilate", 1), ("pad", 0))
        ]
        kernel, stride, dilate, pad = geometry
        out_sizes = [
            (s + 2 * p - d * (k - 1) - 1) // t + 1
            for s, k, t, d, p in zip(_five(x).shape[2:], kernel, stride, dilate, pad)
        ]
        out = np.empty((x.shape[0], attrs["num_filter"], *out_sizes))
        args = (0, x.shape[0], kernel, stride, dilate, pad)
        assert conv_kernels._cv_depthwise_wide(_five(x), _five(w), out, *args, False), case
        dx = np.empty(_five(x).shape)
        assert conv_kernels._cv_depthwise_scatter(out, _five(w), dx, *args), case
        dw = np.zeros(_five(w).shape)
        assert conv_kernels._cv_depthwise_wide_weight_grad(out, _five(x), dw, *args), case


def _five(a):
    return a.reshape(a.shape[:2] + (1,) * (5 - a.ndim) + a.shape[2:])


@pytest.mark.parametrize(
    "case", ["3x3_multiplier2", "5x3_dilate_pad", "1d", "3d", "s2_pad1", "s3_dilate", "3d_s2"]
)
def test_depthwise_gradients_match_finite_differences(conv_kernels, case):
    shape, extra = CASES[case]
    attrs = depthwise_attrs(shape[1], extra)
    rng = np.random.default_rng(21)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float64)
    out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    r = rng.standard_normal(out.shape)
    gx, _ = lowered(conv_kernels, "_conv_data_grad", (r, w, x), **attrs)
    gw, _ = lowered(conv_kernels, "_conv_weight_grad", (r, x, w), **attrs)
    eps = 1e-6
    for k, analytic in ((0, gx), (1, gw)):
        direction = rng.standard_normal((x, w)[k].shape)
        plus, minus = [x, w], [x, w]
        plus[k] = plus[k] + eps * direction
        minus[k] = minus[k] - eps * direction
        numeric = (_value(conv_kernels, plus, r, attrs) - _value(conv_kernels, minus, r, attrs)) / (
            2 * eps
        )
        assert abs(float(np.sum(analytic * direction)) - numeric) <= 1e-7 * max(1.0, abs(numeric))


def _value(conv_kernels, arrays, r, attrs):
    """sum(conv(x, w) * r) by the lowered forward."""
    out, _ = lowered(conv_kernels, "Convolution", tuple(arrays), no_bias=True, **attrs)
    return float(np.sum(out * r))


# Deconvolution runs the same kernels with the roles turned: its forward is the
# data gradient (the scatter at stride > 1), its data gradient the forward
DECONV_CASES = {
    "s2_adj": ((2, 3, 5, 6), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 0))),
    "s1_pad1": ((2, 4, 6, 5), dict(kernel=(3, 3), pad=(1, 1))),
    "s2_target_shape": ((2, 2, 4, 4), dict(kernel=(4, 4), stride=(2, 2), target_shape=(9, 8))),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_depthwise_deconvolution_matches_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = DECONV_CASES[case]
    channels = shape[1]
    attrs = dict(attrs, num_filter=channels, num_group=channels)
    rng = np.random.default_rng(17)
    for batch in (shape[0], 1, shape[0] + 2):
        x = rng.uniform(-1, 1, (batch,) + shape[1:]).astype(dtype)
        w = rng.uniform(-1, 1, (channels, 1) + attrs["kernel"]).astype(dtype)
        b = rng.uniform(-1, 1, channels).astype(dtype)
        got, expected = lowered(conv_kernels, "Deconvolution", (x, w, b), no_bias=False, **attrs)
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_deconv_data_grad", (g, w, x), **attrs), dtype)
        close(*lowered(conv_kernels, "_deconv_weight_grad", (g, x, w), **attrs), dtype)
