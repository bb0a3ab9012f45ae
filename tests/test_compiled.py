"""The compiled backend computes what the interpreter computes.

Each test records the same computation twice, once per backend, and compares
values and gradients: float64 to 1e-12 relative, float32 to a few ulp of the
values involved. Ops are exercised many to a graph, so that one fused kernel
covers dozens of ops and the suite compiles few kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
import symgrad_compiler as compiler
from symgrad import autograd, nd
from symgrad_compiler import OPS

# float32: compiled transcendentals are correctly rounded, numpy's (the
# interpreter's) up to a few ulp off, and sums add in another order
TOLERANCE = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-5)}


def run_both(monkeypatch, build, arrays, dtype, head_grad=False):
    """Gradients (and the value) of ``build(*variables)`` with each backend."""
    results = {}
    for backend in ("interpreter", "compiled"):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
        variables = [nd.array(a, dtype=dtype) for a in arrays]
        for v in variables:
            v.attach_grad()
        with autograd.record():
            out = build(*variables)
        seed = (
            nd.array(np.linspace(0.5, 1.5, out.size).reshape(out.shape), dtype=dtype)
            if head_grad
            else None
        )
        out.backward(seed)
        results[backend] = [out.asnumpy()] + [v.grad.asnumpy() for v in variables]
    return results["interpreter"], results["compiled"]


def assert_same(interpreted, compiled, dtype, names=None):
    for i, (a, b) in enumerate(zip(interpreted, compiled)):
        label = names[i] if names else f"output {i}"
        np.testing.assert_allclose(b, a, **TOLERANCE[dtype], err_msg=label)


def _unary_ops():
    ops = {op.name: op for op in OPS.values()}
    return [
        op
        for op in ops.values()
        if op.kind == "elemwise"
        and op.test
        and op.differentiable
        and not op.variadic
        and len(op.input_names({})) == 1
        and op.test.make_inputs is None
        and not op.attrs
        and not op.name.startswith("_")
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_unary_op_in_one_fused_graph(monkeypatch, dtype):
    ops = _unary_ops()
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(*op.test.domain, size=(3, 4)) for op in ops]
    weights = [rng.uniform(0.5, 1.5, size=(3, 4)) for _ in ops]

    def build(*xs):
        total = None
        for op, x, w in zip(ops, xs, weights):
            term = (getattr(nd, op.name)(x) * nd.array(w, dtype=dtype)).sum()
            total = term if total is None else total + term
        return total

    interpreted, compiled = run_both(monkeypatch, build, arrays, dtype)
    assert_same(interpreted, compiled, dtype, ["value"] + [op.name for op in ops])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_and_scalar_ops_with_broadcasting(monkeypatch, dtype):
    rng = np.random.default_rng(1)
    a, b, c = rng.uniform(0.5, 2, (3, 4)), rng.uniform(0.5, 2, (1, 4)), rng.uniform(0.5, 2, (4,))

    def build(x, y, z):
        terms = [
            x + y,
            x - z,
            x * y,
            x / z,
            x**y,
            nd.maximum(x, y),
            nd.minimum(x, z),
            nd.elemwise_add(x, x * 2),
            2 - x,
            3 / x,
            x**2,
            2**x,
            x + 1,
            x / 3,
            nd.maximum(x, 1.0),
            nd.minimum(y, 1.0),
            nd.clip(x, 0.7, 1.6),
            (x > y) * x,
            nd.relu(x - 1),
            nd.Activation(x, act_type="softrelu"),
        ]
        total = terms[0].sum()
        for term in terms[1:]:
            total = total + term.sum()
        return total

    interpreted, compiled = run_both(monkeypatch, build, [a, b, c], dtype)
    assert_same(interpreted, compiled, dtype, ["value", "x", "y", "z"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reductions_and_library_ops(monkeypatch, dtype):
    rng = np.random.default_rng(2)
    data, weight, bias = (
        rng.uniform(-1, 1, (5, 6)),
        rng.uniform(-1, 1, (3, 6)),
        rng.uniform(-1, 1, (3,)),
    )
    labels = nd.array([0, 2, 1, 1, 0], dtype=dtype)

    def build(x, w, b):
        hidden = nd.tanh(nd.FullyConnected(x, w, b, num_hidden=3))
        logp = nd.log_softmax(hidden * 2, axis=1)
        loss = -nd.pick(logp, labels, axis=1).mean()
        extra = nd.softmax(x, axis=0).max(axis=1).sum() + x.mean(axis=0).prod()
        return loss + extra + nd.dot(x, w, transpose_b=True).sum(axis=1, keepdims=True).sum()

    interpreted, compiled = run_both(
        monkeypatch, build, [data, weight, bias], dtype, head_grad=True
    )
    assert_same(interpreted, compiled, dtype, ["value", "x", "w", "b"])


def test_several_heads_and_grad_req_add(monkeypatch):
    rng = np.random.default_rng(3)
    results = {}
    for backend in ("interpreter", "compiled"):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        x = nd.array(rng.uniform(-1, 1, (4, 3)), dtype="float64")
        x.attach_grad(grad_req="add")
        for _ in range(2):
            with autograd.record():
                a = nd.sin(x) * x
                b = nd.exp(x).sum(axis=0)
            autograd.backward([a, b], [nd.ones_like(a) * 0.5, None])
        results[backend] = x.grad.asnumpy()
        rng = np.random.default_rng(3)
    np.testing.assert_allclose(results["compiled"], results["interpreter"], rtol=1e-12)


def test_create_graph_gradients_compile(monkeypatch):
    results = {}
    for backend in ("interpreter", "compiled"):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        x = nd.array(np.linspace(-1, 1, 7), dtype="float64")
        x.attach_grad()
        with autograd.record():
            y = (nd.tanh(x) * nd.exp(-x * x)).sum()
            (g,) = autograd.grad(y, [x], create_graph=True)
            total = g.sum()
        total.backward()
        results[backend] = x.grad.asnumpy()
    np.testing.assert_allclose(results["compiled"], results["interpreter"], rtol=1e-12)
    t, e = np.tanh(np.linspace(-1, 1, 7)), np.exp(-(np.linspace(-1, 1, 7) ** 2))
    x = np.linspace(-1, 1, 7)
    u = 1 - t * t
    expected = e * (-2 * x * (u - 2 * x * t) - 2 * t * u - 2 * t - 2 * x * u)
    np.testing.assert_allclose(results["compiled"], expected, rtol=1e-10)


def test_second_backward_and_new_batch_size_compile_nothing(compiled):
    def step(n):
        x = nd.array(np.linspace(-1, 1, n))
        x.attach_grad()
        with autograd.record():
            y = (nd.tanh(x) * nd.sigmoid(x) + 0.5 * nd.exp(-x * x)).sum()
        y.backward()
        return x.grad.asnumpy()

    step(1000)
    before = compiler.stats()
    step(1000)
    after_repeat = compiler.stats()
    assert after_repeat["misses"] == before["misses"]
    assert after_repeat["kernels_compiled"] == before["kernels_compiled"]
    assert after_repeat["hits"] == before["hits"] + 1
    step(2500)
    after_resize = compiler.stats()
    assert after_resize["misses"] == before["misses"]
    assert after_resize["kernels_compiled"] == before["kernels_compiled"]


def test_explain_shows_fused_groups_and_source():
    x = mx.sym.var("x", shape=(4,))
    y = mx.sym.sum(mx.sym.tanh(x) * x)
    text = compiler.explain(y)
    assert "_fused" in text and "def kernel0" in text and "vm.tanh" in text


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalisation_means_fuse_and_agree(monkeypatch, dtype):
    rng = np.random.default_rng(4)
    data, gamma, beta = (
        rng.uniform(-1, 1, (6, 3, 4)),
        rng.uniform(0.5, 1.5, 3),
        rng.uniform(-0.5, 0.5, 3),
    )

    def build(x, g, b):
        stats = [nd.zeros((3,), dtype=dtype), nd.ones((3,), dtype=dtype)]
        with autograd.train_mode():
            y = nd.BatchNorm(x, g, b, *stats, fix_gamma=False)
        centred = nd.tanh(x) - nd.tanh(x).mean(axis=(0, 2), keepdims=True)
        return (y * y).sum() + (centred * centred).mean() + nd.mean(x * x, axis=1).sum()

    interpreted, compiled = run_both(monkeypatch, build, [data, gamma, beta], dtype)
    assert_same(interpreted, compiled, dtype, ["value", "x", "gamma", "beta"])
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    x = mx.sym.var("x", shape=(6, 3, 4))
    text = compiler.explain(mx.sym.mean(mx.sym.tanh(x) * x, axis=(0, 2)))
    assert "mean" in text.split("# kernel0")[0].split("_fused")[1]
