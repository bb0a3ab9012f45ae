"""Convolution, Deconvolution and Pooling lowered natively in the numba backend
(compiler/backends/numba/lowerings/conv.py and pooling.py): the kernels compute what
the ops' numpy implementations compute for every geometry option, on one thread
and split over threads, for batch sizes varied within one process; programs
using them run as one compiled call; their gradients through the compiled path
agree with float64 finite differences."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.autodiff import differentiate
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.backends.numba.lowerings import conv as lconv
from symgrad_compiler.backends.numba.plan import LibraryStep
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.registry import make_node, variable


def node_of(op, arrays, **attrs):
    return make_node(op, [Entry(variable(a.shape, a.dtype), 0) for a in arrays], attrs)


def lowered(conv_kernels, op, arrays, **attrs):
    """The lowering's result for ``arrays`` (run as the plan's step runner runs it)
    and the op's numpy result."""
    node = node_of(op, arrays, **attrs)
    step = LibraryStep(node, list(range(len(arrays))), [len(arrays)])
    assert step.lowering is not None, op
    step.kernel = getattr(conv_kernels, step.lowering.kernel_name)
    result = step.lowering.run(step.kernel, *arrays, **node.attrs)
    assert result is not None, f"{op} declined"
    return result, node.op.impl(*arrays, **node.attrs)


def close(got, expected, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-12
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * scale)


# (data shape, weight's kernel, attrs): every geometry option, ranks 1-3
CONV_CASES = {
    "2d_plain": ((3, 4, 6, 5), dict(kernel=(3, 3), num_filter=6)),
    "2d_stride_pad_dilate_groups": (
        (2, 4, 7, 8),
        dict(kernel=(3, 2), stride=(2, 1), pad=(1, 0), dilate=(1, 2), num_filter=6, num_group=2),
    ),
    "1d": ((3, 4, 11), dict(kernel=(3,), stride=(2,), pad=(2,), dilate=(2,), num_filter=5)),
    "3d": (
        (2, 2, 5, 6, 4),
        dict(kernel=(2, 3, 2), stride=(1, 2, 1), pad=(1, 1, 0), dilate=(2, 1, 1), num_filter=3),
    ),
    "depthwise": (
        (3, 6, 9, 9),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=6, num_group=6),
    ),
    "depthwise_multiplier": (
        (2, 3, 7, 6),
        dict(kernel=(3, 3), pad=(1, 1), num_filter=6, num_group=3),
    ),
    "pointwise": ((3, 8, 5, 4), dict(kernel=(1, 1), num_filter=6)),
    "pointwise_groups": ((3, 8, 5, 4), dict(kernel=(1, 1), num_filter=6, num_group=2)),
    "pointwise_strided": ((3, 8, 7, 6), dict(kernel=(1, 1), stride=(2, 2), num_filter=4)),
    "single_channel": ((4, 1, 9, 9), dict(kernel=(3, 3), num_filter=8)),
    # more than 9 taps, at least as many filters as channels: the data gradient
    # by col2im at unit stride (conv.py's _cv_columns_first)
    "5x5_more_filters": ((2, 3, 9, 8), dict(kernel=(5, 5), pad=(2, 2), num_filter=6)),
    "1x7_as_many_filters": ((2, 4, 7, 9), dict(kernel=(1, 7), pad=(0, 3), num_filter=4)),
}


def conv_arrays(rng, shape, attrs, dtype, batch=None):
    shape = ((batch or shape[0]),) + shape[1:]
    groups = attrs.get("num_group", 1)
    x = rng.uniform(-1, 1, shape).astype(dtype)
    w = rng.uniform(-1, 1, (attrs["num_filter"], shape[1] // groups) + attrs["kernel"]).astype(
        dtype
    )
    b = rng.uniform(-1, 1, attrs["num_filter"]).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolution_and_gradients_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = CONV_CASES[case]
    rng = np.random.default_rng(0)
    for batch in (shape[0], 1, shape[0] + 2):  # sizes varied within one process
        x, w, b = conv_arrays(rng, shape, attrs, dtype, batch)
        for inputs, no_bias in (((x, w, b), False), ((x, w), True)):
            got, expected = lowered(conv_kernels, "Convolution", inputs, no_bias=no_bias, **attrs)
            close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs), dtype)
        close(*lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs), dtype)


DECONV_CASES = {
    "2d": (
        (2, 6, 3, 4),
        dict(kernel=(3, 2), stride=(2, 1), pad=(1, 0), adj=(1, 0), num_filter=4, num_group=2),
    ),
    "1d_dilate": ((3, 4, 5), dict(kernel=(3,), stride=(2,), dilate=(2,), num_filter=3)),
    "target_shape": (
        (2, 3, 4, 4),
        dict(kernel=(4, 4), stride=(2, 2), target_shape=(8, 8), num_filter=2),
    ),
    "3d": ((2, 2, 3, 2, 3), dict(kernel=(2, 2, 3), stride=(2, 1, 1), pad=(0, 1, 1), num_filter=3)),
    "depthwise": (
        (2, 4, 5, 5),
        dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=4, num_group=4),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_deconvolution_and_gradients_match_numpy(conv_kernels, threading_mode, case, dtype):
    shape, attrs = DECONV_CASES[case]
    rng = np.random.default_rng(1)
    groups = attrs.get("num_group", 1)
    for batch in (shape[0], 1, shape[0] + 1):
        x = rng.uniform(-1, 1, (batch,) + shape[1:]).astype(dtype)
        w = rng.uniform(-1, 1, (shape[1], attrs["num_filter"] // groups) + attrs["kernel"])
        w, b = w.astype(dtype), rng.uniform(-1, 1, attrs["num_filter"]).astype(dtype)
        got, expected = lowered(conv_kernels, "Deconvolution", (x, w, b), no_bias=False, **attrs)
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_deconv_data_grad", (g, w, x), **attrs), dtype)
        close(*lowered(conv_kernels, "_deconv_weight_grad", (g, x, w), **attrs), dtype)


POOL_SHAPES = {
    "2d": ((2, 3, 7, 6), dict(kernel=(3, 2), stride=(2, 2), pad=(1, 0))),
    "1d": ((3, 2, 9), dict(kernel=(3,), stride=(2,), pad=(1,))),
    "3d": ((2, 2, 5, 4, 6), dict(kernel=(2, 3, 2), stride=(2, 1, 2), pad=(1, 1, 0))),
    "2d_tiles": ((4, 3, 8, 8), dict(kernel=(2, 2), stride=(2, 2))),
}


@pytest.mark.parametrize("case", sorted(POOL_SHAPES))
@pytest.mark.parametrize("pool_type", ["max", "avg", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_and_gradients_match_numpy(conv_kernels, threading_mode, case, pool_type, dtype):
    shape, geometry = POOL_SHAPES[case]
    rng = np.random.default_rng(2)
    options = itertools.product(["valid", "full"], [None, True, False], [False, True])
    for (convention, include_pad, global_pool), batch in itertools.product(options, (1, shape[0])):
        attrs = dict(
            geometry,
            pool_type=pool_type,
            pooling_convention=convention,
            count_include_pad=include_pad,
            global_pool=global_pool,
        )
        # distinct values: the maximum of a window is one element
        size = batch * int(np.prod(shape[1:]))
        x = (rng.permutation(size).reshape((batch,) + shape[1:]) / size - 0.5).astype(dtype)
        got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs), dtype)
        if pool_type == "max":
            h = rng.uniform(-1, 1, x.shape).astype(dtype)
            close(*lowered(conv_kernels, "_pooling_max_gather", (h, x), **attrs), dtype)


def test_max_pooling_special_values_as_numpy(conv_kernels):
    x = np.array([[[[np.nan, 1.0, -np.inf, 2.0], [3.0, np.nan, 0.0, np.inf], [-np.inf] * 4]]])
    attrs = dict(kernel=(2, 2), stride=(1, 1), pad=(1, 1), pool_type="max")
    got, expected = lowered(conv_kernels, "Pooling", (x,), **attrs)
    np.testing.assert_array_equal(got, expected)
    g = np.arange(expected.size, dtype=float).reshape(expected.shape)
    np.testing.assert_array_equal(*lowered(conv_kernels, "_pooling_grad", (g, x), **attrs))


# -- whole programs through the compiled backend ------------------------------------


def op(name, *inputs, **attrs):
    return Entry(make_node(name, list(inputs), attrs), 0)


def cnn_graph(batch, dtype, pool_type="max", deconv=False):
    """conv (bias) -> relu -> pooling -> (deconv) -> sum against r, and the gradients
    of that sum for every input but r: a training step's shape of program."""
    x = Entry(variable((batch, 3, 9, 8), dtype, "x"), 0)
    w = Entry(variable((4, 3, 3, 3), dtype, "w"), 0)
    b = Entry(variable((4,), dtype, "b"), 0)
    inputs = [x, w, b]
    h = op("Convolution", x, w, b, kernel=(3, 3), pad=(1, 1), stride=(1, 2), num_filter=4)
    h = op("Activation", h, act_type="relu")
    h = op("Pooling", h, kernel=(2, 2), stride=(2, 2), pool_type=pool_type, pad=(1, 0))
    if deconv:
        v = Entry(variable((4, 2, 2, 2), dtype, "v"), 0)
        inputs.append(v)
        h = op("Deconvolution", h, v, kernel=(2, 2), stride=(2, 2), num_filter=2, no_bias=True)
    r = Entry(variable(h.shape, dtype, "r"), 0)
    total = op("sum", op("elemwise_mul", h, r))
    seed = op("ones_like", total)
    grads = differentiate([total], [seed], inputs)
    variables = [e.node for e in [*inputs, r]]
    return ProgramGraph(variables, [total, *grads]), [e.shape for e in [*inputs, r]]


def arrays_for(shapes, batch, dtype, seed=0):
    """Inputs for :func:`cnn_graph`: the data (first) and r (last) get ``batch``."""
    rng = np.random.default_rng(seed)
    last = len(shapes) - 1
    return [
        rng.uniform(-1, 1, (batch, *s[1:]) if k in (0, last) else s).astype(dtype)
        for k, s in enumerate(shapes)
    ]


def compile_program(graph, args):
    program = NumbaExecutable(PassRun(graph))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no step-by-step warning, no fallback
        program._compile([np.array(a) for a in args])
    assert program._ready and program._entry is not None
    return program


def reference(graph, args):
    return evaluate(graph.live_outputs(), {v: (a,) for v, a in zip(graph.inputs, args)})


# Each program's entry is compiled with every kernel it calls (minutes with an empty
# cache on a loaded machine): four programs, the gradient checks reuse the float64 ones.
PROGRAMS = [
    ("max", False, np.float32),
    ("max", True, np.float64),
    ("avg", True, np.float64),
    ("sum", False, np.float64),
]


@pytest.mark.slow
@pytest.mark.parametrize("pool_type,deconv,dtype", PROGRAMS)
def test_cnn_program_runs_as_one_call_and_matches_the_interpreter(pool_type, deconv, dtype):
    graph, shapes = cnn_graph(2, dtype, pool_type, deconv)
    program = compile_program(graph, arrays_for(shapes, 2, dtype))
    source = program.plan.entry.source
    assert "lib_conv_forward(" in source and "lib_pool_forward(" in source
    assert "lib_conv_weight_grad(" in source and "lib_pool_backward(" in source
    calls = {"ran": 0, "declined": 0}
    entry = program._entry

    def counted(args, out=None):
        result = entry(args, out)
        calls["ran" if result is not None else "declined"] += 1
        return result

    program._entry = counted
    for batch in (2, 1, 3):  # a new batch size re-plans nothing, recompiles nothing
        args = arrays_for(shapes, batch, dtype, seed=batch)
        for got, expected in zip(program(args), reference(graph, args)):
            close(got, expected, dtype)
    assert calls == {"ran": 3, "declined": 0}


@pytest.mark.slow
def test_big_batches_run_threaded_inside_the_entry(monkeypatch):
    """A convolution big enough for threads stays in the one-call entry (its
    threaded paths are reached through object mode) and computes the same values."""
    monkeypatch.setattr(lconv, "_ONE_THREAD", False)  # as on a machine of several cores
    graph, shapes = cnn_graph(2, np.float32)
    program = compile_program(graph, arrays_for(shapes, 2, np.float32))
    args = arrays_for(shapes, 512, np.float32, seed=5)
    expected = reference(graph, args)
    got = program._entry(args)
    assert got is not None  # not handed back to the step runner
    for value, want in zip(got, expected):
        close(value, want, np.float32)
    for value, want in zip(program(args), expected):
        close(value, want, np.float32)


def test_a_new_spatial_size_is_not_run_with_the_old_geometry():
    """The entry holds the geometry of the shapes it was built for; other spatial
    sizes are handed back to the step runner, which works the geometry out again."""
    x = Entry(variable((2, 3, 9, 9), np.float64, "x"), 0)
    y = op("Pooling", x, global_pool=True, pool_type="avg", kernel=(1, 1))
    z = op("Pooling", op("negative", y), global_pool=True, pool_type="max", kernel=(1, 1))
    graph = ProgramGraph([x.node], [z])
    program = compile_program(graph, [np.ones((2, 3, 9, 9))])
    other = np.random.default_rng(0).uniform(size=(2, 3, 5, 7))
    assert program._entry([other]) is None
    np.testing.assert_allclose(program([other])[0], -other.mean(axis=(2, 3), keepdims=True))


def finite_difference(f, arrays, k, direction, eps=1e-6):
    plus = [a.copy() for a in arrays]
    minus = [a.copy() for a in arrays]
    plus[k] += eps * direction
    minus[k] -= eps * direction
    return (f(plus) - f(minus)) / (2 * eps)


@pytest.mark.slow
@pytest.mark.parametrize("pool_type,deconv", [(p, d) for p, d, t in PROGRAMS if t == np.float64])
def test_compiled_gradients_match_finite_differences(pool_type, deconv):
    graph, shapes = cnn_graph(3, np.float64, pool_type, deconv)
    args = arrays_for(shapes, 3, np.float64, seed=11)
    program = compile_program(graph, args)
    outputs = program(args)

    def value(arrays):
        return float(np.sum(reference(ProgramGraph(graph.inputs, graph.outputs[:1]), arrays)[0]))

    rng = np.random.default_rng(3)
    for k in range(len(args) - 1):  # every input but r
        direction = rng.standard_normal(args[k].shape)
        numeric = finite_difference(value, args, k, direction)
        analytic = float(np.sum(outputs[1 + k] * direction))
        assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric)), (k, analytic, numeric)


def test_blas_threads_are_restored():
    """Convolutions run OpenBLAS on one thread and put its count back after."""
    from symgrad_compiler.backends.numba.blas_threads import openblas_controls

    controls = openblas_controls()
    assert controls is not None  # numpy's wheels bundle OpenBLAS
    setter, getter = controls
    before = getter()
    with lconv.blas_alone():
        assert getter() == 1
        with lconv.blas_alone():
            assert getter() == 1
        assert getter() == 1
    assert getter() == before


def geometry(x_shape, attrs):
    """The kernels' 3-D (kernel, stride, dilate, pad) of a convolution of data of
    ``x_shape`` with ``attrs`` (defaults filled in), and its output's sizes."""
    rank = len(x_shape) - 2
    full = dict(stride=(1,) * rank, dilate=(1,) * rank, pad=(0,) * rank)
    full.update({k: v for k, v in attrs.items() if k in ("kernel", "stride", "dilate", "pad")})
    geo = lconv.geometry3(rank, full["kernel"], full["stride"], full["dilate"], full["pad"])
    return geo, lconv.out_sizes(x_shape[2:], geo)


def routed_weight_grad(conv_kernels, route, g, x, w, attrs):
    """The weight gradient by the kernel ``route`` itself (``_cv_winograd_weight_grad``,
    ``_cv_wide_weight_grad`` or ``_cv_strided_weight_grad``), over the whole batch
    on one thread: images of at most _CV_PACK_POSITIONS positions go packed by the
    op, and their route is checked here. None where the route declines the
    geometry."""
    (kernel, stride, dilate, pad), _ = geometry(x.shape, attrs)
    groups = attrs.get("num_group", 1)
    g5, x5 = lconv._as5(g), lconv._as5(x)
    dw = np.zeros(w.shape, g.dtype)
    dw3 = dw.reshape((groups, w.shape[0] // groups, -1))
    route_geometry = {
        "_cv_winograd_weight_grad": (pad,),
        "_cv_wide_weight_grad": (kernel, dilate, pad),
        "_cv_strided_weight_grad": (kernel, stride, dilate, pad),
    }[route]
    taken = getattr(conv_kernels, route)(g5, x5, dw3, 0, x.shape[0], groups, *route_geometry)
    return None if taken is False else dw


def assert_sizes_match_numpy(conv_kernels, shape, attrs, dtype, seed, sizes, route=None):
    """The forward, data-gradient and weight-gradient kernels against numpy on
    ``shape`` changed by each ``(batch, grow)`` of ``sizes`` in turn (that batch,
    each spatial size plus ``grow``): the same compiled kernels serve every size
    within one process. ``route``: the weight-gradient kernel the cases are about,
    checked by :func:`routed_weight_grad` too, where it takes the size (at least
    the first)."""
    rng = np.random.default_rng(seed)
    routed = 0
    for batch, grow in sizes:
        spatial = tuple(s + grow for s in shape[2:])
        x, w, b = conv_arrays(rng, shape[:2] + spatial, attrs, dtype, batch)
        got, expected = lowered(conv_kernels, "Convolution", (x, w, b), no_bias=False, **attrs)
        close(got, expected, dtype)
        g = rng.uniform(-1, 1, expected.shape).astype(dtype)
        close(*lowered(conv_kernels, "_conv_data_grad", (g, w, x), **attrs), dtype)
        got, expected = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
        close(got, expected, dtype)
        by_route = route and routed_weight_grad(conv_kernels, route, g, x, w, attrs)
        if by_route is not None:
            close(by_route, expected, dtype)
            routed += 1
    assert route is None or routed, f"{route} declined every size"


def assert_gradients_match_differences(conv_kernels, shape, attrs, seed):
    """float64: the lowered data and weight gradient kernels against central
    differences of sum(conv(x, w) * r), each along one random direction, with the
    forward computed by the lowered kernel too."""
    rng = np.random.default_rng(seed)
    x, w, _b = conv_arrays(rng, shape, attrs, np.float64)

    def value(x, w):
        out, _ = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)
        return float(np.sum(out * r))

    r = rng.standard_normal(
        lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)[0].shape
    )
    dx, _ = lowered(conv_kernels, "_conv_data_grad", (r, w, x), **attrs)
    dw, _ = lowered(conv_kernels, "_conv_weight_grad", (r, x, w), **attrs)
    eps = 1e-6
    for grad, k in ((dx, 0), (dw, 1)):
        direction = rng.standard_normal(grad.shape)
        plus = [x.copy(), w.copy()]
        minus = [x.copy(), w.copy()]
        plus[k] += eps * direction
        minus[k] -= eps * direction
        numeric = (value(*plus) - value(*minus)) / (2 * eps)
        analytic = float(np.sum(grad * direction))
        assert abs(analytic - numeric) <= 1e-7 * max(1.0, abs(numeric)), (k, analytic, numeric)


def test_which_unit_stride_data_gradients_go_by_columns(conv_kernels):
    """col2im for kernels of 7 taps or more but 3x3 with at least as many filters
    as channels; the flipped forward (and Winograd) for 3x3 kernels, small
    kernels or fewer filters."""
    first = conv_kernels._cv_columns_first
    assert first(64, 192, (1, 5, 5)) and first(128, 128, (1, 1, 7)) and first(8, 8, (1, 7, 1))
    assert not first(192, 64, (1, 5, 5))  # fewer filters than channels
    assert not first(64, 128, (1, 3, 3))  # Winograd's
    assert not first(4, 4, (1, 2, 2))  # a small kernel


def test_small_images_weight_gradients_go_by_packed_columns(conv_kernels):
    """A weight gradient over outputs of at most _CV_PACK_POSITIONS positions (one
    group, a kernel wider than 1x1) is one product of im2col's columns of several
    images side by side: the kernel's result is the packed route's bit for bit,
    for ResNet's 7x7 3x3 layer (Winograd's before) and a strided one; a 9x9 output
    keeps Winograd's."""
    rng = np.random.default_rng(21)
    cases = [
        ((5, 16, 7, 7), dict(kernel=(3, 3), pad=(1, 1), num_filter=24), True),
        ((4, 8, 13, 15), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1), num_filter=8), True),
        ((4, 16, 9, 9), dict(kernel=(3, 3), pad=(1, 1), num_filter=16), False),
    ]
    for shape, attrs, packed in cases:
        x, w, _ = conv_arrays(rng, shape, attrs, np.float32)
        out = lowered(conv_kernels, "Convolution", (x, w), no_bias=True, **attrs)[1]
        g = rng.uniform(-1, 1, out.shape).astype(np.float32)
        got, expected = lowered(conv_kernels, "_conv_weight_grad", (g, x, w), **attrs)
        close(got, expected, np.float32)
        (kernel, stride, dilate, pad), _ = geometry(x.shape, attrs)
        direct = np.zeros((w.shape[0], w[0].size), np.float32)
        conv_kernels._cv_packed_columns_weight_grad(
            lconv._as5(g), lconv._as5(x), direct, 0, shape[0], kernel, stride, dilate, pad
        )
        assert np.array_equal(got.reshape(direct.shape), direct) == packed, (shape, attrs)


@pytest.mark.parametrize(
    "shape, groups",
    [
        ((70, 33, 1, 3, 3), 2),
        ((384, 384, 1, 3, 1), 1),
        ((6, 4, 2, 3, 2), 2),
        ((40, 1, 1, 1, 5), 40),
    ],
)
def test_flipped_weights_are_the_transposed_turned_kernels(conv_kernels, shape, groups):
    # the data gradient's weights as a forward's (_cv_flipped, in blocks of
    # _CV_FLIP_BLOCK filters and channels): filter and channel exchanged within
    # each group, every tap turned by 180 degrees
    w = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    fg = shape[0] // groups
    parts = [np.swapaxes(w[g * fg : (g + 1) * fg], 0, 1) for g in range(groups)]
    expected = np.concatenate(parts)[:, :, ::-1, ::-1, ::-1]
    np.testing.assert_array_equal(conv_kernels._cv_flipped(w, groups), expected)
