"""A value computed while recording is not computed again by backward's program
(symgrad/autograd.py: products, convolutions and poolings whose outputs were read
are program inputs), and a Trainer's fused step survives a step whose program
differs (a loss read before backward)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_training_step_adversarial import _both, _data, _loop

import symgrad as mx
from symgrad import autograd, nd
from symgrad_compiler.passes import format_graph


def _programs(monkeypatch):
    """The programs backward fetches, in order."""
    fetched = []
    real = autograd._fetch_program

    def spy(*args, **kwargs):
        program, positions = real(*args, **kwargs)
        fetched.append(program)
        return program, positions

    monkeypatch.setattr(autograd, "_fetch_program", spy)
    return fetched


def _dot_step(read: bool, x_value, w_value):
    x = nd.array(x_value, dtype="float64")
    w = nd.array(w_value, dtype="float64")
    w.attach_grad()
    with autograd.record():
        y = nd.dot(x, w)
        if read:
            y.asnumpy()  # computes y (and keeps it) while recording
        loss = (nd.tanh(y) * y).sum()
    loss.backward()
    return w.grad.asnumpy()


@pytest.mark.parametrize("shape", [(3, 4, 5), (7, 2, 6)])
def test_a_product_read_while_recording_is_read_by_the_program(monkeypatch, shape):
    rng = np.random.default_rng(sum(shape))
    n, k, m = shape
    x_value, w_value = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    fetched = _programs(monkeypatch)
    recomputed = _dot_step(False, x_value, w_value)
    read = _dot_step(True, x_value, w_value)
    assert len(fetched) == 2  # read or not: two programs
    forward_dots = [format_graph(p.graph).count("= dot(%in") for p in fetched]
    # computed: the forward product and the gradient's; read: the gradient's only
    assert forward_dots[0] > forward_dots[1]
    np.testing.assert_allclose(read, recomputed, rtol=1e-12)
    y = x_value @ w_value
    expected = x_value.T @ (np.tanh(y) + y * (1 - np.tanh(y) ** 2))
    np.testing.assert_allclose(read, expected, rtol=1e-12)


def test_a_convolution_read_while_recording_gives_the_same_gradients():
    rng = np.random.default_rng(3)
    data = rng.standard_normal((2, 3, 6, 6))
    weight_value = rng.standard_normal((4, 3, 3, 3))

    def grads(read):
        x = nd.array(data, dtype="float64")
        weight = nd.array(weight_value, dtype="float64")
        for array in (x, weight):
            array.attach_grad()
        with autograd.record():
            y = nd.Convolution(x, weight, kernel=(3, 3), num_filter=4, no_bias=True, pad=(1, 1))
            pooled = nd.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max")
            if read:
                pooled.asnumpy()  # the convolution and the pooling computed
            loss = (nd.sigmoid(pooled) * pooled).sum()
        loss.backward()
        return x.grad.asnumpy(), weight.grad.asnumpy()

    for a, b in zip(grads(True), grads(False)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_the_costly_ops_before_a_value_read_are_computed_once(compiled, tmp_path):
    """A value read after a convolution and a pooling (a Dropout in training mode
    reads its input so) keeps their outputs too: backward's program reads them, and
    each runs once per step. Only the value read was kept, and a network with
    Dropout computed its whole forward twice per step (SqueezeNet 1.0, B=8: 300 ms
    a step, 214 ms with its outputs kept)."""
    rng = np.random.default_rng(5)
    data = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    weight_value = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)

    def step(read):
        x, weight = nd.array(data), nd.array(weight_value)
        weight.attach_grad()
        with autograd.record():
            y = nd.Convolution(x, weight, kernel=(3, 3), num_filter=4, no_bias=True, pad=(1, 1))
            pooled = nd.Pooling(y, kernel=(2, 2), stride=(2, 2), pool_type="max")
            scaled = nd.relu(pooled) * 2
            if read:
                scaled.asnumpy()  # computes the convolution and the pooling on the way
            loss = (nd.tanh(scaled) * scaled).sum()
        loss.backward()
        return weight.grad.asnumpy()

    for _ in range(2):
        step(True)  # compiled, both programs
    mx.profiler.set_config(profile_all=True, filename=str(tmp_path / "profile.json"))
    mx.profiler.set_state("run")
    try:
        got = step(True)
    finally:
        mx.profiler.set_state("stop")
        counts = json.loads(mx.profiler.dumps(format="json", reset=True))["Time"]["operator"]
        mx.profiler.set_config(profile_all=False, filename="profile.json")
    assert counts["Convolution"]["Count"] == 1
    assert counts["Pooling"]["Count"] == 1
    np.testing.assert_allclose(got, step(False), rtol=1e-5, atol=1e-5)


def test_a_fused_step_survives_a_loss_read_before_backward(monkeypatch):
    def loop(net, trainer, loss):
        seen = []
        for step in range(8):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            if step == 4:
                seen.append(L.asnumpy())  # the program of this step differs
            L.backward()
            trainer.step(8)
        return seen

    commits = _both(monkeypatch, loop)
    # learnt once; every later step computed ahead and committed, the one that
    # read its loss too (it had lost the plan, and the step after it as well)
    assert commits == [True] * 7


def test_an_imperative_first_step_that_computed_values_still_fuses(monkeypatch):
    # an imperative network's first call infers its shapes by computing: its
    # first backward reads values the later ones compute
    commits = _both(monkeypatch, _loop(steps=6), hybridize=False)
    assert commits == [True] * 5
    assert mx.nd.waitall() is None


def _conv_bn_net(seed):
    mx.random.seed(seed)
    net = mx.gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(
            mx.gluon.nn.Conv2D(4, 3, padding=1, use_bias=False),
            mx.gluon.nn.BatchNorm(),
            mx.gluon.nn.Activation("relu"),
            mx.gluon.nn.MaxPool2D(2),
            mx.gluon.nn.Conv2D(6, 3, padding=1, use_bias=False),
            mx.gluon.nn.BatchNorm(),
            mx.gluon.nn.Dense(3),
        )
    net.initialize(mx.init.Xavier())
    return net


@pytest.mark.parametrize("backend", ["interpreter", "compiled"])
def test_values_a_batchnorm_needs_are_computed_alike_on_every_backend(monkeypatch, backend):
    """A BatchNorm in training is deferred with its input convolution (it once
    computed that input while recording, through a cached program); the results,
    running statistics and gradients equal the interpreter's."""
    import symgrad_compiler
    from symgrad import _deferred

    ran = []
    real = _deferred._compute_compiled
    monkeypatch.setattr(
        _deferred, "_compute_compiled", lambda entry: ran.append(real(entry)) or ran[-1]
    )
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    results = {}
    for chosen in ("interpreter", backend):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", chosen)
        ran.clear()
        for batch, side in ((2, 6), (3, 8), (2, 6)):
            rng = np.random.default_rng(batch * side)
            x = nd.array(rng.standard_normal((batch, 3, side, side)), dtype="float64")
            net = _conv_bn_net(batch)
            net.cast("float64")
            params = list(net.collect_params().values())
            net(x)  # shapes
            with autograd.record():
                loss = net(x).sum()
            loss.backward()
            stats = [p.data().asnumpy() for p in params if "running" in p.name]
            grads = [p.grad().asnumpy() for p in params if p.grad_req != "null"]
            results.setdefault((batch, side), []).append((loss.asnumpy(), stats, grads))
        # BatchNorm in training is recorded deferred (``_batch_norm_train``): no
        # convolution before it computes while recording, on either backend
        assert not any(ran)
    for runs in results.values():
        first = runs[0]
        for other in runs[1:]:
            np.testing.assert_allclose(other[0], first[0], rtol=1e-10)
            for a, b in zip(other[1] + other[2], first[1] + first[2]):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
