"""``mx.profiler``: MXNet's calls (set_config, set_state, dump, dumps, pause,
resume, domains, tasks, counters, markers, scope) record every op a script runs,
each step of a compiled program on its own, without changing any result."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, gluon, nd
from symgrad_compiler import profiling


@pytest.fixture
def profile(tmp_path):
    """The profiler configured to write into ``tmp_path``; stopped and emptied after."""
    path = tmp_path / "profile.json"
    mx.profiler.set_config(profile_all=True, filename=str(path), aggregate_stats=True)
    yield path
    mx.profiler.set_state("stop")
    mx.profiler.dumps(reset=True)
    mx.profiler.set_config(profile_all=False, filename="profile.json", aggregate_stats=False)


def _small_convnet(seed=0):
    """A hybridized Conv2D, MaxPool2D, Dense network, its weights drawn from ``seed``."""
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, activation="relu"), gluon.nn.MaxPool2D(), gluon.nn.Dense(5))
    net.initialize(mx.init.Xavier())
    net(nd.zeros((1, 2, 9, 9)))  # the deferred weights, drawn now
    net.hybridize()
    return net


def _steps(net, count):
    """``count`` training steps (SGD) on fixed data; the last loss and gradients."""
    rng = np.random.default_rng(3)
    X = nd.array(rng.uniform(-1, 1, (3, 2, 9, 9)))
    y = nd.array([0, 4, 2])
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    for _ in range(count):
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(3)
    return L.asnumpy(), [p.grad().asnumpy() for p in net.collect_params().values()]


def _events(path):
    return json.loads(path.read_text())["traceEvents"]


def test_a_training_step_shows_each_kernel_and_the_users_own_spans(compiled, profile):
    net = _small_convnet()
    _steps(net, 3)  # compiled (and the step's update fused) before the profile
    mx.profiler.set_state("run")
    domain = mx.profiler.Domain("training")
    task = domain.new_task("steps")
    counter = domain.new_counter("batches", 0)
    task.start()
    for _ in range(2):
        _steps(net, 1)
        counter += 1
    task.stop()
    domain.new_marker("done").mark()
    doubled = nd.ones((4,)) * 2  # computed at once: an imperative op
    mx.profiler.set_state("stop")
    mx.profiler.dump()
    events = _events(profile)
    spans = {(e["cat"], e["name"]) for e in events if e["ph"] == "X"}
    for op in ("Convolution", "_conv_weight_grad", "Pooling", "_pooling_grad", "dot", "_ones"):
        assert ("operator", op) in spans, op
    assert any(cat == "operator" and name.startswith("_fused(") for cat, name in spans)
    assert ("training", "steps") in spans
    assert [e["args"]["batches"] for e in events if e["ph"] == "C"] == [0, 1, 2]
    assert [e["name"] for e in events if e["ph"] == "i"] == ["done"]
    for e in events:
        assert e["pid"] and e["tid"] and e["ts"] >= 0 and e.get("dur", 0) >= 0
    np.testing.assert_array_equal(doubled.asnumpy(), [2.0] * 4)
    table = mx.profiler.dumps()
    convolution = next(line for line in table.splitlines() if line.startswith("Convolution "))
    assert convolution.split()[1] == "2"  # one forward per step, two steps


def test_profiled_steps_give_the_unprofiled_numbers(compiled, profile):
    plain, profiled = _small_convnet(7), _small_convnet(7)
    expected = _steps(plain, 4)
    _steps(profiled, 2)
    mx.profiler.set_state("run")
    got = _steps(profiled, 2)
    mx.profiler.set_state("stop")
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-7)
    for g, e in zip(got[1], expected[1]):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_the_interpreter_reports_each_node(interpreted, profile):
    x = nd.array([1.0, -2.0, 3.0])
    x.attach_grad()
    mx.profiler.set_state("run")
    with autograd.record():
        y = (nd.relu(x) * x).sum()
    y.backward()
    mx.profiler.set_state("stop")
    mx.profiler.dump()
    names = {e["name"] for e in _events(profile) if e["ph"] == "X"}
    assert {"relu", "sum"} <= names


def test_nothing_is_recorded_while_stopped_or_paused(compiled, profile):
    net = _small_convnet()
    _steps(net, 2)
    assert profiling.listener is None  # stopped: programs run as one call
    mx.profiler.set_state("run")
    assert profiling.listener is not None
    mx.profiler.pause()
    assert profiling.listener is None
    _steps(net, 1)
    nd.ones((2,)) + 1
    mx.profiler.resume()
    mx.profiler.set_state("stop")
    _steps(net, 1)
    assert profiling.listener is None
    mx.profiler.dump()
    assert _events(profile) == []


def test_dumps_sorts_and_writes_json(profile):
    mx.profiler.set_state("run")
    for _ in range(3):
        nd.ones((2,)) * 3
    nd.zeros((5,))
    mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(format="json"))
    assert stats["Unit"] == {"Time": "ms"}
    assert stats["Time"]["operator"]["_ones"]["Count"] == 3
    assert stats["Time"]["operator"]["_zeros"]["Count"] == 1
    rows = [
        line.split()[0]
        for line in mx.profiler.dumps(sort_by="count", ascending=True).splitlines()
        if line.startswith("_")
    ]
    assert rows.index("_zeros") < rows.index("_ones")
    mx.profiler.dumps(reset=True)
    assert json.loads(mx.profiler.dumps(format="json"))["Time"] == {}
    with pytest.raises(ValueError, match="sort_by"):
        mx.profiler.dumps(sort_by="median")
    with pytest.raises(ValueError, match="format"):
        mx.profiler.dumps(format="csv")


def test_scope_prefixes_the_names(profile):
    mx.profiler.set_state("run")
    with mx.profiler.scope("layer1:"):
        nd.ones((2,))
        with mx.profiler.scope("inner:", append_mode=True):
            nd.zeros((2,))
    mx.profiler.set_state("stop")
    names = set(json.loads(mx.profiler.dumps(format="json"))["Time"]["operator"])
    assert names == {"layer1:_ones", "layer1:inner:_zeros"}


def test_mxnets_errors_and_deprecated_names(profile):
    with pytest.raises(mx.MXNetError, match="'profile_everything'"):
        mx.profiler.set_config(profile_everything=True)
    with pytest.raises(KeyError, match="'go'"):
        mx.profiler.set_state("go")
    with pytest.raises(mx.MXNetError, match="before it was started"):
        mx.profiler.Event("never").stop()
    with pytest.raises(ValueError, match="scope"):
        mx.profiler.Marker(mx.profiler.Domain("d"), "m").mark(scope="cluster")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mx.profiler.profiler_set_config(mode="all", filename=str(profile))
        mx.profiler.profiler_set_state("run")
        nd.ones((1,))
        mx.profiler.profiler_set_state("stop")
        mx.profiler.dump_profile()
    assert sum(issubclass(w.category, DeprecationWarning) for w in caught) == 4
    assert {e["name"] for e in _events(profile)} == {"_ones"}
