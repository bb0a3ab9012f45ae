"""BatchNorm in training recorded deferred (``_batch_norm_train``): nothing runs
while recording, the training step is one program, and the values are MXNet's
(outputs, moving statistics updated with momentum, gradients), on every backend.

The op itself: float64 gradients of all its differentiable outputs to second order,
and its compiled expansion (``expand_composites``) equal to its numpy
implementation, NaN, infinities and signed zeros included."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import autograd, nd
from symgrad.op_testing import check_graph_gradient
from symgrad_compiler import Entry, make_node, variable
from symgrad_compiler.passes import run_pipeline

BACKENDS = ["interpreter", "numba"]


@pytest.fixture
def sync_compile(monkeypatch):
    """Compile on the first call, so that the numba backend's own code runs."""
    monkeypatch.setattr(compiler.settings.current(), "compile", "sync")


def _op_graph(shapes, dtype, **attrs):
    variables = [variable(shape, dtype, name=f"in{k}") for k, shape in enumerate(shapes)]
    node = make_node("_batch_norm_train", [Entry(v, 0) for v in variables], attrs)
    return variables, node


def _op_values(rng, shape, axis, dtype):
    channels = shape[axis]
    return [
        rng.uniform(-2, 2, shape).astype(dtype),
        rng.uniform(0.5, 1.5, channels).astype(dtype),
        rng.uniform(-1, 1, channels).astype(dtype),
        rng.uniform(-1, 1, channels).astype(dtype),
        rng.uniform(0.5, 2, channels).astype(dtype),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fix_gamma", [False, True])
def test_gradients_of_output_mean_and_inverse_std_to_second_order(backend, fix_gamma, sync_compile):
    """The mean and 1/sqrt(var + eps) outputs are differentiable too (a gradient of
    the gradient reads them): float64 finite differences, orders 1 and 2."""
    rng = np.random.default_rng(0)
    values = _op_values(rng, (4, 3, 2), 1, np.float64)
    attrs = {"fix_gamma": fix_gamma, "output_mean_var": True, "eps": 1e-3}
    variables, node = _op_graph([v.shape for v in values], np.float64, **attrs)
    outputs = [Entry(node, k) for k in range(3)]
    check_graph_gradient(
        outputs, variables, values, wrt=(0, 1, 2), order=2, backend=backend, rng=rng
    )


def _specials(rng, dtype):
    values = _op_values(rng, (5, 4, 3, 3), 1, dtype)
    x = values[0]
    x[1, 0, 2, 2] = np.nan
    x[0, 1, 0, 0] = np.inf
    x[:, 2] = -0.0
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [1, -1])
def test_compiled_expansion_equals_numpy(dtype, axis, sync_compile):
    """Every output, the new moving statistics included; a NaN or an infinity
    spoils its own channel only (an infinity first in its channel too), a channel
    of -0.0 normalises to beta."""
    rng = np.random.default_rng(1)
    values = _specials(rng, dtype) if axis == 1 else _op_values(rng, (4, 3, 5), -1, dtype)
    attrs = {"fix_gamma": False, "momentum": 0.8, "eps": 1e-5, "axis": axis}
    variables, node = _op_graph([v.shape for v in values], dtype, **attrs)
    graph = compiler.ProgramGraph(variables, [Entry(node, k) for k in range(5)])
    with np.errstate(invalid="ignore"):
        want, got = (compiler.compile_graph(graph, chosen)(values) for chosen in BACKENDS)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for k, (a, b) in enumerate(zip(got, want)):  # (equal infinities count as equal)
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance, err_msg=f"output {k}")
    if axis == 1:  # the specials stayed in their channels
        out = compiler.get_op("_batch_norm_train").impl(*values, **node.attrs)[0]
        assert np.isnan(out[:, :2]).all() and np.isfinite(out[:, 3]).all()
        np.testing.assert_array_equal(out[:, 2], np.broadcast_to(values[2][2], out[:, 2].shape))


@pytest.mark.parametrize("dtype,offset", [(np.float32, 1e6), (np.float64, 1e9)])
def test_compiled_statistics_of_data_far_from_zero(dtype, offset, sync_compile):
    """Channels centred far from zero and at 100, spreads of 4 and 0.01: the
    compiled statistics stay as close to float64's as numpy's two passes. float32
    data takes float64 sums of x and x^2 in one pass (its squares are exact in
    float64); float64 data sums its centred squares in a second pass, as sums of x
    and x^2 would lose its variance entirely."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (64, 3, 8, 8)) * np.array([4, 0.01, 1])[:, None, None]
    x = (x + np.array([offset, 100, -3])[:, None, None]).astype(dtype)
    values = [x] + _op_values(rng, x.shape, 1, dtype)[1:]
    variables, node = _op_graph([v.shape for v in values], dtype, eps=1e-5, fix_gamma=False)
    graph = compiler.ProgramGraph(variables, [Entry(node, k) for k in range(3)])
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    for chosen in BACKENDS:
        _, got_mean, got_inverse_std = compiler.compile_graph(graph, chosen)(values)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-7, err_msg=chosen)
        np.testing.assert_allclose(
            got_inverse_std, 1 / np.sqrt(var + 1e-5), rtol=1e-4, err_msg=chosen
        )


def _statistics_passes(dtype) -> list[int]:
    """For each pass over the full-size data that ends in means (a fused kernel, or a
    lone ``mean`` step), how many means it takes."""
    shapes = [(4, 3, 5, 6), (3,), (3,), (3,), (3,)]
    variables, node = _op_graph(shapes, dtype, eps=1e-5, fix_gamma=False)
    graph = compiler.ProgramGraph(variables, [Entry(node, k) for k in range(5)])
    passes = []
    for step in run_pipeline(graph).nodes():
        members = step.attrs["body"].nodes() if step.op.name == "_fused" else [step]
        means = [n for n in members if n.op.name == "mean" and n.inputs[0].shape == shapes[0]]
        if means:
            passes.append(len(means))
    return passes


def test_float32_statistics_read_the_data_once():
    """float32: the mean and the mean square are two sums of one loop over x;
    float64: the mean, then a second pass over the centred data."""
    assert _statistics_passes(np.float32) == [2]
    assert _statistics_passes(np.float64) == [1, 1]


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_one_pass_variance_of_a_constant_channel_is_not_negative(eps, sync_compile):
    """A channel of one repeated value, 45 elements (its mean is rounded): mean(x^2)
    - mean^2 may come out a few float64 units below zero, which is taken as 0, so
    1/sqrt(var + eps) stays 1/sqrt(eps) as the numpy implementation has it."""
    rng = np.random.default_rng(5)
    values = _op_values(rng, (5, 3, 3, 3), 1, np.float32)
    values[0][:, 1] = np.float32(3.3)
    variables, node = _op_graph([v.shape for v in values], np.float32, eps=eps, fix_gamma=False)
    graph = compiler.ProgramGraph(variables, [Entry(node, k) for k in range(5)])
    want = compiler.get_op("_batch_norm_train").impl(*values, **node.attrs)
    for chosen in BACKENDS:
        got = compiler.compile_graph(graph, chosen)(values)
        assert np.isfinite(got[0]).all() and np.isfinite(got[2]).all()
        np.testing.assert_allclose(got[2][1], 1 / np.sqrt(np.float32(eps)), rtol=1e-6)
        assert got[4][1] >= 0
        for k, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{chosen} {k}")


# ---------------------------------------------------------------- the frontend


def _net(hybridize):
    net = mx.gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(
            mx.gluon.nn.Conv2D(4, 3, padding=1, use_bias=False),
            mx.gluon.nn.BatchNorm(),
            mx.gluon.nn.Activation("relu"),
            mx.gluon.nn.MaxPool2D(2),
            mx.gluon.nn.Dense(3),
        )
    net.initialize(mx.init.Xavier())
    net(nd.ones((2, 2, 6, 6)))
    if hybridize:
        net.hybridize()
    return net


@pytest.mark.parametrize("hybridize", [False, True])
def test_recording_runs_nothing_and_the_step_is_one_program(monkeypatch, hybridize):
    """No program runs while recording (BatchNorm once ran at once, and the
    convolution before it through a program of its own); backward runs one."""
    runs = []
    real = compiler.Program.run
    monkeypatch.setattr(compiler.Program, "run", lambda *a, **k: runs.append(1) or real(*a, **k))
    net = _net(hybridize)
    x = nd.array(np.random.default_rng(2).standard_normal((3, 2, 6, 6)))
    bn = net[1]
    for _ in range(3):
        runs.clear()
        with autograd.record():
            loss = net(x).sum()
        assert runs == [] and bn.running_mean.data()._value is None
        loss.backward()
        assert runs == [1] and bn.running_mean.data()._value is not None


def _reference_step(x, gamma, beta, moving_mean, moving_var, head, eps, momentum):
    """Training BatchNorm over axis 1 in float64: output, new moving statistics,
    and the gradients of sum(head * output) for x, gamma, beta."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
    out = xhat * gamma.reshape(shape) + beta.reshape(shape)
    g = head * gamma.reshape(shape)
    gx = (
        g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True)
    ) * rstd.reshape(shape)
    new_mean = momentum * moving_mean + (1 - momentum) * mean
    new_var = momentum * moving_var + (1 - momentum) * var
    return out, new_mean, new_var, (gx, (head * xhat).sum(axis=axes), head.sum(axis=axes))


@pytest.mark.parametrize("backend", BACKENDS)
def test_steps_keep_mxnet_numbers(monkeypatch, backend, sync_compile):
    """Three training steps of nd.BatchNorm (float32, momentum 0.8): outputs, the
    moving statistics each step, and gradients equal a float64 reference."""
    monkeypatch.setattr(compiler.settings.current(), "backend", backend)
    rng = np.random.default_rng(3)
    gamma, beta = nd.array(rng.uniform(0.5, 1.5, 3)), nd.array(rng.uniform(-1, 1, 3))
    moving_mean, moving_var = nd.array(rng.uniform(-1, 1, 3)), nd.array(rng.uniform(0.5, 2, 3))
    for param in (gamma, beta):
        param.attach_grad()
    for _ in range(3):
        x = nd.array(rng.normal(0.5, 2, (4, 3, 5, 2)))
        x.attach_grad()
        head = rng.standard_normal(x.shape).astype(np.float32)
        want = _reference_step(
            *[a.asnumpy().astype(np.float64) for a in (x, gamma, beta, moving_mean, moving_var)],
            head.astype(np.float64),
            eps=1e-5,
            momentum=0.8,
        )
        with autograd.record():
            out = nd.BatchNorm(
                x, gamma, beta, moving_mean, moving_var, eps=1e-5, momentum=0.8, fix_gamma=False
            )
        out.backward(nd.array(head))
        np.testing.assert_allclose(out.asnumpy(), want[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(moving_mean.asnumpy(), want[1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(moving_var.asnumpy(), want[2], rtol=1e-5, atol=1e-6)
        for got, expected in zip((x.grad, gamma.grad, beta.grad), want[3]):
            np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-3, atol=1e-4)


def test_moving_statistics_read_while_recording_and_after_backward():
    """Read before backward, the moving statistics are already updated (MXNet
    updates them in the forward pass); an output read while recording computes
    them too, and they stay readable once backward freed the graph."""
    rng = np.random.default_rng(4)
    x = nd.array(rng.standard_normal((6, 2, 3)))
    x.attach_grad()
    gamma, beta = nd.ones(2), nd.zeros(2)
    stats = [nd.zeros(2), nd.ones(2)]
    x64 = x.asnumpy().astype(np.float64)
    want_mean = 0.1 * x64.mean(axis=(0, 2))
    want_var = 0.9 + 0.1 * x64.var(axis=(0, 2))
    with autograd.record():
        out = nd.BatchNorm(x, gamma, beta, *stats, fix_gamma=False)
        out.asnumpy()  # computes the node; the statistics' arrays stay unread
        loss = (out * out).sum()
    loss.backward()
    np.testing.assert_allclose(stats[0].asnumpy(), want_mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats[1].asnumpy(), want_var, rtol=1e-5)
    stats = [nd.zeros(2), nd.ones(2)]
    with autograd.record():
        nd.BatchNorm(x, gamma, beta, *stats, fix_gamma=False)
        np.testing.assert_allclose(stats[0].asnumpy(), want_mean, rtol=1e-5, atol=1e-7)


def test_one_batchnorm_twice_in_a_recording_updates_twice():
    """The second call reads the first call's new statistics (still pending)."""
    rng = np.random.default_rng(5)
    a, b = (nd.array(rng.standard_normal((4, 3))) for _ in range(2))
    bn = mx.gluon.nn.BatchNorm(momentum=0.5, in_channels=3)
    bn.initialize()
    a.attach_grad()
    with autograd.record():
        loss = (bn(a) * bn(b)).sum()
    loss.backward()
    want = 0.25 * 0 + 0.25 * a.asnumpy().mean(axis=0) + 0.5 * b.asnumpy().mean(axis=0)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_global_statistics_and_prediction_run_at_once():
    """use_global_stats and predict mode keep BatchNorm as before: computed when
    called, the moving statistics untouched."""
    x = nd.array(np.random.default_rng(6).standard_normal((4, 3)))
    x.attach_grad()
    mean, var = nd.zeros(3), nd.ones(3)
    for scope, extra in (
        (autograd.record(), {"use_global_stats": True}),
        (autograd.record(False), {}),
    ):
        with scope:
            out = nd.BatchNorm(x, nd.ones(3), nd.zeros(3), mean, var, **extra)
        assert out._value is not None and mean._value is not None
        np.testing.assert_array_equal(mean.asnumpy(), np.zeros(3))


def test_moving_statistics_handed_out_or_marked_are_updated_in_place():
    """A moving statistic whose buffer numpy holds (``np.asarray``) sees its update
    written into that buffer, and one marked for a gradient keeps its marking:
    BatchNorm runs at once for them, as before."""
    x = nd.array(np.random.default_rng(8).standard_normal((5, 3)))
    x.attach_grad()
    held_mean, marked_var = nd.zeros(3), nd.ones(3)
    held = np.asarray(held_mean)
    marked_var.attach_grad()
    with autograd.record():
        out = nd.BatchNorm(x, nd.ones(3), nd.zeros(3), held_mean, nd.ones(3), fix_gamma=False)
        assert out._value is not None
        np.testing.assert_allclose(held, 0.1 * x.asnumpy().mean(axis=0), rtol=1e-5)
        out = nd.BatchNorm(x, nd.ones(3), nd.zeros(3), nd.zeros(3), marked_var, fix_gamma=False)
        assert out._value is not None and marked_var._entry.node.marked is marked_var
