"""NaN, infinities and signed zeros through the numba convolution kernels
(compiler/backends/numba/lowerings/conv.py): the forward, the data gradient and the
weight gradient put NaN and infinities exactly where the ops' numpy implementations
(the interpreter, and MXNet's im2col) and a plain numpy sum over the taps put them,
for a special value in the data, the weights or the head gradient, on every route
(unit stride "wide", images side by side, shifted rows, kernels of one row
turned, strided, depthwise, pointwise, packed pointwise, the packed columns of
small images' weight gradient), sizes varied within one process, on one thread
and split over threads.

The wide kernels carry junk positions (data read past a row's end, multiplied by
g's zeros) and the data gradient multiplies the weights by g's zero border; the
depthwise loops skip the padding, whose terms are w * 0 and g * 0. A finite factor
makes those terms vanish, a NaN or an infinity does not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_conv_native import close, conv_arrays, lowered

# (data shape, attrs): each reaches one route of the kernels
ROUTES = {
    "wide_batched_7x7": ((6, 3, 7, 7), dict(kernel=(3, 3), pad=(1, 1), num_filter=4)),
    "wide_per_image": ((2, 3, 18, 17), dict(kernel=(3, 3), pad=(1, 1), num_filter=4)),
    "wide_dilate_groups": (
        (3, 4, 9, 8),
        dict(kernel=(3, 2), pad=(2, 1), dilate=(2, 2), num_filter=6, num_group=2),
    ),
    "wide_1d": ((3, 2, 12), dict(kernel=(5,), pad=(2,), num_filter=3)),
    "wide_3d": ((2, 2, 4, 5, 5), dict(kernel=(3, 3, 3), pad=(1, 1, 1), num_filter=3)),
    "strided": ((2, 3, 9, 10), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4)),
    "stem_7x7_s2": ((2, 3, 15, 15), dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=4)),
    # outputs of more than 64 positions: the weight gradient on the phases too
    "stem_7x7_s2_90_positions": (
        (2, 3, 19, 17),
        dict(kernel=(7, 7), stride=(2, 2), pad=(3, 3), num_filter=4),
    ),
    # the weight gradient of outputs of at most 64 positions (and one group): im2col's
    # columns of several images side by side in one product, whatever the route of
    # the forward (the 7x7 and stride-2 cases above take it too)
    "packed_columns_7x7": ((6, 8, 7, 7), dict(kernel=(3, 3), pad=(1, 1), num_filter=5)),
    "packed_columns_s2_dilate": (
        (3, 4, 13, 12),
        dict(kernel=(3, 3), stride=(2, 2), dilate=(2, 1), pad=(1, 1), num_filter=6),
    ),
    "depthwise": ((2, 4, 9, 8), dict(kernel=(3, 3), pad=(1, 1), num_filter=4, num_group=4)),
    "depthwise_s2_multiplier": (
        (2, 3, 9, 9),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=6, num_group=3),
    ),
    # depthwise.py's vector kernels (float32): columns of 16 lanes and a partial
    # one, padding beyond a row
    "depthwise_vectors": (
        (2, 3, 6, 21),
        dict(kernel=(3, 3), pad=(2, 1), num_filter=3, num_group=3),
    ),
    "depthwise_vectors_s2": (
        (2, 2, 7, 35),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=2, num_group=2),
    ),
    # several images a depthwise pass: all of them, and passes of three ending short
    "depthwise_7x7_one_pass": (
        (6, 3, 7, 7),
        dict(kernel=(3, 3), pad=(1, 1), num_filter=3, num_group=3),
    ),
    "depthwise_s2_short_last_pass": (
        (5, 2, 30, 31),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4, num_group=2),
    ),
    # a data gradient by col2im at unit stride (more than 9 taps, filters >= channels)
    "columns_first_5x5": ((2, 3, 9, 8), dict(kernel=(5, 5), pad=(2, 2), num_filter=6)),
    # images of _CV_SHIFTED_POSITIONS wide positions or more (float32: shifted.py)
    "shifted_3x3": ((2, 3, 24, 23), dict(kernel=(3, 3), pad=(1, 1), num_filter=4)),
    "shifted_weights_3x3": ((2, 28, 24, 23), dict(kernel=(3, 3), pad=(1, 1), num_filter=4)),
    "shifted_1x7_groups": (
        (2, 4, 20, 30),
        dict(kernel=(1, 7), pad=(0, 3), num_filter=2, num_group=2),
    ),
    # a kernel of one row, turned into a column (the weight gradient too: 66
    # positions, more than go packed)
    "rows_1x5_turned": ((2, 3, 6, 11), dict(kernel=(1, 5), pad=(0, 2), num_filter=4)),
    # a small image's weight gradient of few channel pairs (shifted.py's too)
    "shifted_weights_small_image": (
        (2, 32, 10, 9),
        dict(kernel=(3, 3), pad=(1, 1), num_filter=16),
    ),
    "pointwise": ((2, 4, 5, 6), dict(kernel=(1, 1), num_filter=3)),
    # small images packed side by side into one product
    "pointwise_7x7_packed": ((6, 4, 7, 7), dict(kernel=(1, 1), num_filter=3)),
    "pointwise_1x1_images": ((5, 6, 1, 1), dict(kernel=(1, 1), num_filter=4)),
    "pointwise_s2": ((2, 4, 7, 6), dict(kernel=(1, 1), stride=(2, 2), num_filter=3)),
}

SPECIALS = (np.nan, np.inf, -np.inf)


def _taps(kernel):
    return itertools.product(*(range(k) for k in kernel))


def _window(offset, stride, dilate, out_sizes):
    """Index of the (padded) input elements tap ``offset`` meets."""
    return (slice(None), slice(None)) + tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s)
        for k, s, d, o in zip(offset, stride, dilate, out_sizes)
    )


def _full(attrs, rank):
    kernel = attrs["kernel"]
    stride = attrs.get("stride", (1,) * rank)
    dilate = attrs.get("dilate", (1,) * rank)
    pad = attrs.get("pad", (0,) * rank)
    return kernel, stride, dilate, pad, attrs.get("num_group", 1)


def reference(op, arrays, attrs):
    """A plain numpy sum over the taps, tap by tap: the forward and the weight
    gradient over the zero-padded data (as im2col), the data gradient over the
    output positions only (the adjoint, as col2im)."""
    rank = arrays[-1].ndim - 2
    kernel, stride, dilate, pad, groups = _full(attrs, rank)
    widths = [(0, 0), (0, 0)] + [(p, p) for p in pad]
    if op == "Convolution":
        x, w = arrays
        xp = np.pad(x, widths)
        out_sizes = [
            (s + 2 * p - d * (k - 1) - 1) // t + 1
            for s, k, t, d, p in zip(x.shape[2:], kernel, stride, dilate, pad)
        ]
        out = np.zeros((x.shape[0], w.shape[0], *out_sizes), x.dtype)
        for tap in _taps(kernel):
            window = xp[_window(tap, stride, dilate, out_sizes)]
            for f, c in _group_slices(w.shape[0], x.shape[1], groups):
                out[:, f] += np.einsum("fc,nc...->nf...", w[(f, slice(None)) + tap], window[:, c])
        return out
    if op == "_conv_data_grad":
        g, w, like = arrays
        xp = np.zeros(np.pad(like, widths).shape, g.dtype)
        for tap in _taps(kernel):
            index = _window(tap, stride, dilate, g.shape[2:])
            for f, c in _group_slices(w.shape[0], like.shape[1], groups):
                xp[index][:, c] += np.einsum("fc,nf...->nc...", w[(f, slice(None)) + tap], g[:, f])
        crop = tuple(slice(p, p + s) for p, s in zip(pad, like.shape[2:]))
        return xp[(slice(None), slice(None)) + crop]
    g, x, like = arrays
    xp = np.pad(x, widths)
    dw = np.zeros(like.shape, g.dtype)
    for tap in _taps(kernel):
        window = xp[_window(tap, stride, dilate, g.shape[2:])]
        for f, c in _group_slices(like.shape[0], x.shape[1], groups):
            flat_g = g[:, f].reshape(g.shape[0], f.stop - f.start, -1)
            flat_x = window[:, c].reshape(x.shape[0], c.stop - c.start, -1)
            dw[(f, slice(None)) + tap] = np.einsum("nfp,ncp->fc", flat_g, flat_x)
    return dw


def _group_slices(filters, channels, groups):
    """(filter slice, channel slice) of every group."""
    fg, cg = filters // groups, channels // groups
    return [(slice(k * fg, (k + 1) * fg), slice(k * cg, (k + 1) * cg)) for k in range(groups)]


def same_specials(got, expected, what):
    """NaN at the same places, infinities of the same sign at the same places."""
    for test in (np.isnan, np.isposinf, np.isneginf):
        mismatch = test(got) != test(expected)
        assert not mismatch.any(), f"{what}: {test.__name__} differs at {np.argwhere(mismatch)[:5]}"


def agree(got, interpreted, planned, dtype, what):
    """The kernel's result against the interpreter's and the plain reference."""
    same_specials(got, interpreted, what + " (interpreter)")
    same_specials(got, planned, what + " (reference)")
    finite = np.isfinite(interpreted)
    close(got[finite], interpreted[finite], dtype)
    close(got[finite], planned[finite], dtype)


def _spots(shape, rng):
    """Where to put a special value: the first and last element (corners, next to
    the padding), the end of a row (read again as junk by the wide columns), and
    somewhere inside."""
    last = tuple(s - 1 for s in shape)
    row_end = tuple(rng.integers(0, s) for s in shape[:-1]) + (shape[-1] - 1,)
    inside = tuple(rng.integers(0, s) for s in shape)
    return [(0,) * len(shape), last, row_end, inside]


def _run(conv_kernels, op, arrays, attrs, dtype, what):
    with np.errstate(invalid="ignore", over="ignore"):
        kwargs = dict(no_bias=True) if op == "Convolution" else {}
        got, interpreted = lowered(conv_kernels, op, arrays, **kwargs, **attrs)
        planned = reference(op, arrays, attrs)
    agree(got, interpreted, planned, dtype, what)


def _put_specials(conv_kernels, arrays, attrs, dtype, rng, label):
    """Each of NaN, inf and -inf at each of _spots in the data, the weights and
    the output gradient in turn: the forward, data and weight gradient kernels
    agree with the interpreter and the planned reference (_run)."""
    x, w, g = arrays
    for where, value in itertools.product("xwg", SPECIALS):
        target = {"x": x, "w": w, "g": g}[where]
        for spot in _spots(target.shape, rng):
            xs, ws, gs = x.copy(), w.copy(), g.copy()
            {"x": xs, "w": ws, "g": gs}[where][spot] = value
            what = f"{label}: {value} in {where} at {spot}"
            if where != "g":
                _run(conv_kernels, "Convolution", (xs, ws), attrs, dtype, what + ", forward")
            _run(conv_kernels, "_conv_data_grad", (gs, ws, xs), attrs, dtype, what + ", dx")
            _run(conv_kernels, "_conv_weight_grad", (gs, xs, ws), attrs, dtype, what + ", dw")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_special_values_land_where_numpy_puts_them(conv_kernels, threading_mode, route, dtype):
    shape, attrs = ROUTES[route]
    rng = np.random.default_rng(17)
    # sizes varied within one process: the kernels compiled once serve them all
    for batch, grow in ((shape[0], 0), (1, 1), (shape[0] + 3, 2)):
        spatial = tuple(s + grow for s in shape[2:])
        x, w, _ = conv_arrays(rng, shape[:2] + spatial, attrs, dtype, batch)
        with np.errstate(invalid="ignore"):
            out = reference("Convolution", (x, w), attrs).astype(dtype)
        g = rng.uniform(-1, 1, out.shape).astype(dtype)
        _put_specials(conv_kernels, (x, w, g), attrs, dtype, rng, f"{route} {batch}x{spatial}")


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_finite_results_still_match_after_a_special(conv_kernels, route):
    """A batch with a NaN, then the same finite batch: the recomputation of the
    first leaves nothing behind, and the finite one takes the fast path again
    (values equal to the interpreter's)."""
    shape, attrs = ROUTES[route]
    rng = np.random.default_rng(3)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float64)
    _, out = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    g = rng.uniform(-1, 1, out.shape)
    spoiled = x.copy()
    spoiled[(0,) * (x.ndim - 1) + (-1,)] = np.nan
    _run(conv_kernels, "_conv_weight_grad", (g, spoiled, w), attrs, np.float64, route)
    close(*lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs), np.float64)
    spoiled_w = w.copy()
    spoiled_w[(0,) * w.ndim] = np.inf
    _run(conv_kernels, "_conv_data_grad", (g, spoiled_w, x), attrs, np.float64, route)
    close(*lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs), np.float64)


def assert_zero_signs_as_interpreter(conv_kernels, shape, attrs, seed):
    """All-zero operands of either sign, float64: the kernels' zeros carry the
    sign the interpreter's do (both sum from +0, as BLAS does)."""
    rng = np.random.default_rng(seed)
    x, w, _ = conv_arrays(rng, shape, attrs, np.float64)
    _, out = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
    g = rng.uniform(-1, 1, out.shape)
    for signs in itertools.product((1.0, -1.0), repeat=3):
        zx, zw, zg = (s * np.zeros_like(a) for s, a in zip(signs, (x, w, g)))
        cases = [
            ("Convolution", (zx, w)),
            ("Convolution", (x, zw)),
            ("_conv_data_grad", (zg, w, x)),
            ("_conv_data_grad", (g, zw, x)),
            ("_conv_weight_grad", (zg, x, w)),
            ("_conv_weight_grad", (g, zx, w)),
        ]
        for op, arrays in cases:
            kwargs = dict(no_bias=True) if op == "Convolution" else {}
            got, interpreted = lowered(conv_kernels, op, arrays, **kwargs, **attrs)
            assert np.array_equal(np.signbit(got), np.signbit(interpreted)), (op, signs)


def assert_specials_land_as_numpy(conv_kernels, shape, attrs, dtype, seed):
    """NaN and infinities put in the data, the weights or the output gradient (at
    the corners, a row's end and inside; the whole batch, then one image): the
    forward, data and weight gradient kernels put them where numpy does."""
    rng = np.random.default_rng(seed)
    for batch in (shape[0], 1):
        x, w, _ = conv_arrays(rng, shape, attrs, dtype, batch)
        with np.errstate(invalid="ignore"):
            out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
        g = rng.uniform(-1, 1, out.shape).astype(dtype)
        _put_specials(conv_kernels, (x, w, g), attrs, dtype, rng, f"batch {batch}")


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_signed_zeros_as_the_interpreter(conv_kernels, route):
    """All-zero operands of either sign: the kernels' zeros carry the sign the
    interpreter's do (both sum from +0, as BLAS does)."""
    shape, attrs = ROUTES[route]
    assert_zero_signs_as_interpreter(conv_kernels, shape, attrs, seed=5)
