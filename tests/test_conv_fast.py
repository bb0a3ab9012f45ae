"""The unit-stride ("wide") convolution kernels of the numba backend
(compiler/backends/numba/lowerings/conv.py: ``_cv_wide_forward``, the data gradient
as a convolution with the flipped weights, ``_cv_wide_weight_grad``): they compute
what the ops' numpy implementations compute for kernels, pads, dilations, groups,
ranks and sizes varied within one process, on one thread and split over threads;
the gradient kernels agree with float64 finite differences of the forward kernel;
and a compiled program of W7's layer shapes agrees with the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from test_conv_native import (
    assert_gradients_match_differences,
    assert_sizes_match_numpy,
    close,
    compile_program,
    geometry,
    lowered,
    op,
    reference,
)

from symgrad_compiler import ProgramGraph
from symgrad_compiler.autodiff import differentiate
from symgrad_compiler.ir import Entry
from symgrad_compiler.registry import variable

# (data shape, attrs, whether the data gradient is wide too): unit stride throughout
WIDE_CASES = {
    "w7_3x3_pad1": ((3, 5, 8, 8), dict(kernel=(3, 3), pad=(1, 1), num_filter=4), True),
    "no_pad": ((2, 3, 6, 5), dict(kernel=(3, 3), num_filter=2), True),
    "rect_dilate_groups": (
        (2, 4, 7, 9),
        dict(kernel=(3, 2), pad=(1, 0), dilate=(1, 2), num_filter=6, num_group=2),
        True,
    ),
    "pad_beyond_kernel": ((2, 3, 5, 6), dict(kernel=(3, 3), pad=(3, 2), num_filter=3), False),
    "one_by_one_padded": ((2, 3, 4, 5), dict(kernel=(1, 1), pad=(1, 0), num_filter=2), False),
    "1d": ((3, 4, 11), dict(kernel=(3,), pad=(2,), dilate=(2,), num_filter=5), True),
    "3d": (
        (2, 2, 4, 5, 3),
        dict(kernel=(2, 3, 2), pad=(1, 1, 0), dilate=(2, 1, 1), num_filter=3),
        True,
    ),
    "wide_image": ((2, 2, 3, 17), dict(kernel=(3, 5), pad=(1, 2), num_filter=3), True),
}


@pytest.mark.parametrize("case", sorted(WIDE_CASES))
def test_the_cases_take_the_wide_path(conv_kernels, case):
    """Each case's forward (and data gradient where marked) runs the wide kernels,
    and the wide plan declines an output size it was not made for."""
    shape, attrs, data_grad_wide = WIDE_CASES[case]
    (kernel, _stride, dilate, pad), out = geometry(shape, attrs)
    sizes = (1,) * (5 - len(shape)) + shape[2:]
    osz = (1,) * (3 - len(out)) + tuple(out)
    assert conv_kernels._cv_wide_plan(sizes, pad, kernel, dilate, osz)[3] > 0
    bigger = osz[:2] + (osz[2] + 1,)
    assert conv_kernels._cv_wide_plan(sizes, pad, kernel, dilate, bigger)[3] == 0
    tpad = [(k - 1) * d - p for k, d, p in zip(kernel, dilate, pad)]
    assert (min(tpad) >= 0) == data_grad_wide


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(WIDE_CASES))
def test_wide_convolution_and_gradients_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs, _ = WIDE_CASES[case]
    # batch and spatial sizes varied within one process, on the same kernels
    assert_sizes_match_numpy(
        conv_kernels,
        shape,
        attrs,
        dtype,
        7,
        ((shape[0], 0), (1, 1), (shape[0] + 3, 2), (shape[0], 0)),
        "_cv_wide_weight_grad",
    )


DECONV_CASES = {
    "3x3_pad1": ((2, 4, 5, 6), dict(kernel=(3, 3), pad=(1, 1), num_filter=3)),
    "groups_dilate": (
        (3, 4, 6, 5),
        dict(kernel=(2, 3), pad=(0, 1), dilate=(2, 1), num_filter=4, num_group=2),
    ),
    "1d": ((2, 3, 7), dict(kernel=(3,), num_filter=2)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_unit_stride_deconvolution_matches_numpy(conv_kernels, threading_mode, case, dtype):
    """Deconvolution's forward is the data-gradient kernel (with a bias), its data
    gradient the forward kernel: both wide at unit stride."""
    shape, attrs = DECONV_CASES[case]
    rng = np.random.default_rng(8)
    groups = attrs.get("num_group", 1)
    for batch in (shape[0], 1, shape[0] + 2):
        x = rng.uniform(-1, 1, (batch,) + shape[1:]).astype(dtype)
        w = rng.uniform(-1, 1, (shape[1], attrs["num_filter"] // groups) + attrs["kernel"])
        w, b = w.astype(dtype), rng.uniform(-1, 1, attrs["num_filter"]).astype(dtype)
        got, expected = lowered(conv_kernels, "Deconvolution", (x, w, b), no_bias=False, **attrs)
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_deconv_data_grad", (g, w, x), **attrs), dtype)
        close(*lowered(conv_kernels, "_deconv_weight_grad", (g, x, w), **attrs), dtype)


@pytest.mark.parametrize("case", sorted(WIDE_CASES))
def test_wide_gradients_match_finite_differences(conv_kernels, case):
    """float64: the data and weight gradient kernels against central differences
    of sum(conv(x, w) * r) computed by the forward kernel."""
    shape, attrs, _ = WIDE_CASES[case]
    assert_gradients_match_differences(conv_kernels, shape, attrs, seed=9)


def w7_block_graph(batch, side, dtype):
    """Two 3x3 pad-1 convolutions (no bias) -> relu -> 2x2 max pooling -> sum
    against r, and the gradients for the data and both weights: W7's layer kinds."""
    x = Entry(variable((batch, 3, side, side), dtype, "x"), 0)
    w1 = Entry(variable((4, 3, 3, 3), dtype, "w1"), 0)
    w2 = Entry(variable((5, 4, 3, 3), dtype, "w2"), 0)
    conv = dict(kernel=(3, 3), pad=(1, 1), no_bias=True)
    h = op("Activation", op("Convolution", x, w1, num_filter=4, **conv), act_type="relu")
    h = op("Convolution", h, w2, num_filter=5, **conv)
    h = op("Pooling", h, kernel=(2, 2), stride=(2, 2), pool_type="max")
    r = Entry(variable(h.shape, dtype, "r"), 0)
    total = op("sum", op("elemwise_mul", h, r))
    grads = differentiate([total], [op("ones_like", total)], [x, w1, w2])
    inputs = [x, w1, w2, r]
    return ProgramGraph([e.node for e in inputs], [total, *grads]), [e.shape for e in inputs]


def block_arrays(shapes, batch, dtype, seed):
    rng = np.random.default_rng(seed)
    out = []
    for k, s in enumerate(shapes):
        shape = (batch, *s[1:]) if k in (0, 3) else s
        out.append(rng.uniform(-1, 1, shape).astype(dtype))
    return out


@pytest.mark.slow  # compiles W7's whole block: about a minute with an empty kernel cache
def test_compiled_w7_block_matches_the_interpreter():
    """The whole-program entry calls the wide kernels (float64, batch sizes varied
    within one process) and agrees with the interpreter; gradients also agree with
    finite differences of the interpreted loss."""
    graph, shapes = w7_block_graph(2, 6, np.float64)
    program = compile_program(graph, block_arrays(shapes, 2, np.float64, 0))
    source = program.plan.entry.source
    assert "lib_conv_forward(" in source and "lib_conv_data_grad(" in source
    for batch in (2, 1, 3):
        args = block_arrays(shapes, batch, np.float64, batch)
        assert program._entry(args) is not None  # ran as one compiled call
        got = program(args)
        for a, b in zip(got, reference(graph, args)):
            close(a, b, np.float64)
    loss = ProgramGraph(graph.inputs, graph.outputs[:1])
    rng = np.random.default_rng(4)
    for k in range(3):
        direction = rng.standard_normal(args[k].shape)
        plus = [a.copy() for a in args]
        minus = [a.copy() for a in args]
        plus[k] += 1e-6 * direction
        minus[k] -= 1e-6 * direction
        numeric = float(np.sum(reference(loss, plus)[0] - reference(loss, minus)[0])) / 2e-6
        analytic = float(np.sum(got[1 + k] * direction))
        assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (k, analytic, numeric)
