"""The channel-blocked layout: its kernels against the NCHW ops, and the pass
``blocked_layouts`` keeping a program's values (interpreted and compiled, at
more than one size in one process)."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad import op_testing as tu
from symgrad_compiler import settings
from symgrad_compiler.backends.numba.lowerings import blocked as lowering
from symgrad_compiler.ops import blocked as ops
from symgrad_compiler.ops.conv import (
    _conv_data_grad,
    _conv_weight_grad,
    _convolution,
    _pooling,
    _pooling_grad,
)
from symgrad_compiler.passes.blocked_layout import blocked_layouts

# (batch, channels, filters, height, width, kernel, pad): 1x1 read in place (the
# batch's last tile partial), 3x3 as the zoo pads it, unpadded, 5x5, Inception's
# 1x7, an odd number of 16-filter blocks, one image
CONVOLUTIONS = [
    (2, 32, 48, 5, 7, (1, 1), (0, 0)),
    (3, 16, 32, 6, 6, (3, 3), (1, 1)),
    (2, 16, 32, 7, 5, (3, 3), (0, 0)),
    (2, 32, 16, 8, 8, (5, 5), (2, 2)),
    (2, 16, 32, 5, 9, (1, 7), (0, 3)),
    (1, 48, 80, 9, 4, (3, 3), (1, 1)),
]
GEOMETRY = dict(stride=(1, 1), dilate=(1, 1), num_group=1)


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("batch,channels,filters,height,width,kernel,pad", CONVOLUTIONS)
def test_convolution_kernels_match_the_nchw_ops(
    batch, channels, filters, height, width, kernel, pad
):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, channels, height, width)).astype(np.float32)
    w = rng.standard_normal((filters, channels) + kernel).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    attrs = dict(kernel=kernel, pad=pad, num_filter=filters)
    plain = dict(attrs, **GEOMETRY)
    want = _convolution(
        x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **plain,
        no_bias=False, workspace=0, cudnn_tune=None, cudnn_off=False, layout=None,
    )  # fmt: skip
    xb = lowering._to_blocked(None, x)
    assert np.array_equal(lowering._from_blocked(None, xb), x)
    got = lowering._blocked_conv(None, xb, w, b, no_bias=False, **attrs)
    assert _relative(ops.from_blocked(got), want) < 1e-5
    g = rng.standard_normal(want.shape).astype(np.float32)
    gb = ops.to_blocked(g)
    got = lowering._blocked_conv_weight_grad(None, gb, xb, w, **attrs)
    assert (
        _relative(got, _conv_weight_grad(g.astype(np.float64), x.astype(np.float64), w, **plain))
        < 1e-5
    )
    if all(p <= k - 1 for p, k in zip(pad, kernel)):
        got = lowering._blocked_conv_data_grad(None, gb, w, xb, **attrs)
        want = _conv_data_grad(g.astype(np.float64), w.astype(np.float64), x, **plain)
        assert _relative(ops.from_blocked(got), want) < 1e-5


def test_non_finite_values_propagate_as_in_the_nchw_convolution():
    # (3x3 goes by Winograd, which computes such an image again directly)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16, 6, 7)).astype(np.float32)
    x[0, 3, 2, 2], x[1, 0, 0, 6], x[1, 9, 5, 0] = np.nan, np.inf, -np.inf
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=32)
    want = _convolution(
        x, w, None, **attrs, **GEOMETRY, no_bias=True, workspace=0, cudnn_tune=None,
        cudnn_off=False, layout=None,
    )  # fmt: skip
    got = ops.from_blocked(
        lowering._blocked_conv(None, ops.to_blocked(x), w, no_bias=True, **attrs)
    )
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
    # the weight gradient of such an image goes row by row: no zero of a row's
    # padding meets its infinities
    g = rng.standard_normal(want.shape).astype(np.float32)
    want = _conv_weight_grad(g, x, w, **attrs, **GEOMETRY)
    got = lowering._blocked_conv_weight_grad(None, ops.to_blocked(g), ops.to_blocked(x), w, **attrs)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    assert np.allclose(got[finite], want[finite], rtol=1e-4, atol=1e-3)


POOLINGS = [
    ((2, 32, 9, 11), (3, 3), (2, 2), (0, 0), "full"),
    ((3, 16, 7, 7), (3, 3), (2, 2), (1, 1), "valid"),
    ((2, 16, 8, 6), (2, 2), (2, 2), (0, 0), "valid"),
    ((1, 16, 5, 5), (3, 3), (1, 1), (1, 1), "full"),
]


@pytest.mark.parametrize("shape,kernel,stride,pad,convention", POOLINGS)
def test_max_pooling_matches_pooling_ties_and_non_finite_values(
    shape, kernel, stride, pad, convention
):
    rng = np.random.default_rng(2)
    x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)  # ties at zero
    x[0, 0, 0, 0], x[0, 3, 1, 1], x[-1, 5, 2, 3] = np.nan, np.nan, -np.inf
    attrs = dict(
        kernel=kernel, pool_type="max", global_pool=False, cudnn_off=False,
        pooling_convention=convention, stride=stride, pad=pad, p_value=None,
        count_include_pad=None, layout=None,
    )  # fmt: skip
    want = _pooling(x, **attrs)
    got = ops.from_blocked(lowering._blocked_pooling(None, ops.to_blocked(x), **attrs))
    assert np.array_equal(got, want, equal_nan=True)
    g = rng.standard_normal(want.shape).astype(np.float32)
    g[0, 1, 0, 0] = -0.0
    want = _pooling_grad(g, x, **attrs)
    got = lowering._blocked_pooling_grad(None, ops.to_blocked(g), ops.to_blocked(x), **attrs)
    got = ops.from_blocked(got)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def _fire_step(batch: int, size: int) -> compiler.ProgramGraph:
    """A SqueezeNet fire module between two 1x1 convolutions and a max pooling,
    its loss and the gradients of all its inputs, as one graph."""
    f32 = np.float32
    shapes = [
        (batch, 32, size, size),  # x
        (16, 32, 1, 1), (16,),  # squeeze
        (32, 16, 1, 1), (32,),  # expand 1x1
        (32, 16, 3, 3), (32,),  # expand 3x3
        (16, 64, 1, 1),  # after the pooling, no bias
    ]  # fmt: skip
    variables = [compiler.variable(s, f32) for s in shapes]
    x, w1, b1, w2, b2, w3, b3, w4 = [compiler.Entry(v, 0) for v in variables]

    def op(name, *inputs, **attrs):
        return compiler.Entry(compiler.make_node(name, inputs, attrs), 0)

    def conv(data, w, b, kernel, pad):
        inputs = (data, w) if b is None else (data, w, b)
        return op(
            "Convolution", *inputs, kernel=kernel, pad=pad, num_filter=w.shape[0],
            no_bias=b is None,
        )  # fmt: skip

    squeeze = op("Activation", conv(x, w1, b1, (1, 1), (0, 0)), act_type="relu")
    left = op("Activation", conv(squeeze, w2, b2, (1, 1), (0, 0)), act_type="relu")
    right = op("Activation", conv(squeeze, w3, b3, (3, 3), (1, 1)), act_type="relu")
    joined = op("Concat", left, right, dim=1)
    pooled = op(
        "Pooling", joined, kernel=(3, 3), stride=(2, 2), pool_type="max",
        pooling_convention="full",
    )  # fmt: skip
    out = conv(pooled, w4, None, (1, 1), (0, 0))
    loss = op("sum", op("elemwise_mul", out, out))
    seed = compiler.variable((), f32)
    grads = compiler.differentiate(
        [loss], [compiler.Entry(seed, 0)], [x, w1, b1, w2, b2, w3, b3, w4]
    )
    return compiler.ProgramGraph(variables + [seed], [loss, *grads])


def _inputs(graph: compiler.ProgramGraph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    values = [rng.uniform(-1, 1, v.types[0].shape).astype(np.float32) for v in graph.inputs]
    values[-1] = np.float32(1.0).reshape(())
    return values


def _ops(graph: compiler.ProgramGraph) -> list[str]:
    return [n.op.name for n in graph.nodes() if not n.is_variable]


def test_the_pass_carries_the_layout_between_convolutions():
    graph = _fire_step(2, 9)
    with settings.override(blocked_layout=False):
        assert blocked_layouts(graph) is graph
    blocked = blocked_layouts(graph)  # on by default
    names = _ops(blocked)
    assert "Convolution" not in names and "_conv_data_grad" not in names
    assert names.count("_blocked_conv") == 4 and names.count("_blocked_pooling") == 1
    # in at the graph's input and its gradient out; nothing else converts
    assert names.count("_to_blocked") == 1 and names.count("_from_blocked") == 1
    args = _inputs(graph, 0)
    want = tu.BACKENDS["interpreter"](graph)(args)
    got = tu.BACKENDS["interpreter"](blocked)(args)
    for a, b in zip(got, want):
        assert _relative(a, b) < 1e-5


def test_compiled_blocked_programs_keep_the_values_at_every_size():
    # one compiled program, called at the size it was traced with and others
    with settings.override(blocked_layout=True, compile="sync"):
        graph = _fire_step(2, 9)
        run = tu.BACKENDS["numba"](graph)
        for batch, size in ((2, 9), (3, 9), (2, 12), (1, 5)):
            args = _inputs(_fire_step(batch, size), batch * size)
            want = tu.BACKENDS["interpreter"](_fire_step(batch, size))(args)
            for a, b in zip(run(args), want):
                assert a.shape == b.shape
                assert _relative(a, b) < 1e-5


def test_kernels_take_views_of_blocked_values():
    # a split's part of a blocked concatenation is a view (DenseNet's blocks)
    rng = np.random.default_rng(3)
    joined = ops.to_blocked(rng.standard_normal((3, 48, 5, 6)).astype(np.float32))
    part = joined[:, 1:3]  # channels 16..47, not contiguous
    g = ops.to_blocked(rng.standard_normal((3, 16, 5, 6)).astype(np.float32))
    w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    attrs = dict(kernel=(3, 3), pad=(1, 1), num_filter=16)
    plain = dict(attrs, **GEOMETRY)
    x = ops.from_blocked(np.ascontiguousarray(part))
    got = lowering._blocked_conv_weight_grad(None, g, part, w, **attrs)
    assert _relative(got, _conv_weight_grad(ops.from_blocked(g), x, w, **plain)) < 1e-5
    got = ops.from_blocked(lowering._blocked_conv(None, part, w, no_bias=True, **attrs))
    want = _convolution(
        x, w, None, **plain, no_bias=True, workspace=0, cudnn_tune=None, cudnn_off=False,
        layout=None,
    )  # fmt: skip
    assert _relative(got, want) < 1e-5
    assert np.array_equal(lowering._from_blocked(None, part), x)


def _chain(channels: int, layers: list[tuple[str, int]], size: int = 6) -> compiler.ProgramGraph:
    """Convolutions (``("conv", k)``: k x k, padding k // 2, ``channels`` filters),
    ReLUs after each, 2x2 max poolings (``("pool", 0)``) and products by a
    per-channel constant (``("affine", 0)``) in a row, their sum, and the
    gradients of the image and the weights."""
    f32 = np.float32
    x = compiler.variable((2, channels, size, size), f32)
    weights = [
        compiler.variable((channels, channels, k, k), f32) for kind, k in layers if kind == "conv"
    ]
    value, w = compiler.Entry(x, 0), iter(weights)

    def op(name, *inputs, **attrs):
        return compiler.Entry(compiler.make_node(name, inputs, attrs), 0)

    for kind, k in layers:
        if kind == "conv":
            value = op(
                "Convolution", value, compiler.Entry(next(w), 0), kernel=(k, k),
                pad=(k // 2, k // 2), num_filter=channels, no_bias=True,
            )  # fmt: skip
            value = op("Activation", value, act_type="relu")
        elif kind == "affine":
            scale = compiler.Entry(compiler.variable((1, channels, 1, 1), f32), 0)
            value = op("broadcast_mul", value, scale)
        else:
            value = op("Pooling", value, kernel=(2, 2), stride=(2, 2), pool_type="max")
    loss = op("sum", value)
    seed = compiler.variable((), f32)
    wrt = [compiler.Entry(x, 0)] + [compiler.Entry(v, 0) for v in weights]
    grads = compiler.differentiate([loss], [compiler.Entry(seed, 0)], wrt)
    return compiler.ProgramGraph([x, *weights, seed], [loss, *grads])


def _blocked_ops(graph: compiler.ProgramGraph) -> list[str]:
    with settings.override(blocked_layout=True):
        return [n for n in _ops(blocked_layouts(graph)) if n.startswith("_blocked")]


def test_the_pass_takes_the_convolutions_it_wins_on():
    # a 1x1 layer alone (MobileNet's pointwise ones, between depthwise layers)
    # would convert on both sides for less than it gains: left as it is
    assert _blocked_ops(_chain(32, [("conv", 1)])) == []
    # beside a 3x3 one, through a max pooling too, it runs blocked with it
    for layers in ([("conv", 1), ("conv", 3)], [("conv", 3), ("pool", 0), ("conv", 1)]):
        names = _blocked_ops(_chain(32, layers))
        assert names.count("_blocked_conv") == 2
        assert names.count("_blocked_conv_weight_grad") == 2
    assert "_blocked_pooling" in _blocked_ops(_chain(32, [("conv", 3), ("pool", 0), ("conv", 1)]))
    # BatchNorm's per-channel affine between them: left as it is
    assert _blocked_ops(_chain(32, [("conv", 3), ("affine", 0), ("conv", 3)])) == []
    # weights past a core's cache (ResNet's 256 -> 256 3x3 layers) stay on the NCHW routes
    assert _blocked_ops(_chain(256, [("conv", 3), ("conv", 3)])) == []
    assert _blocked_ops(_chain(128, [("conv", 3), ("conv", 3)])) != []
