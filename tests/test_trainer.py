"""``gluon.Trainer``: steps against the optimizer's formula, MXNet's errors for
stale gradients, the accepted kinds of ``params``, learning rates, and states files.
Real MXNet's parameters and files are compared in tests/test_interop_optimizer.py."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import gluon


def _parameter(name, values, **kwargs):
    param = gluon.Parameter(name, shape=np.shape(values), **kwargs)
    param.initialize()
    param.set_data(mx.nd.array(values))
    return param


def _backward(*params, scale=1.0):
    """loss = scale * sum(p^2) over the parameters: gradients 2 scale p."""
    with mx.autograd.record():
        loss = sum(((p.data() * p.data()).sum() for p in params), mx.nd.zeros((1,))) * scale
    loss.backward()


def test_step_is_sgd_with_batch_rescaling():
    w = _parameter("w", [1.0, -2.0])
    trainer = gluon.Trainer([w], "sgd", {"learning_rate": 0.1, "momentum": 0.5})
    expected, mom = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(3):
        _backward(w)
        trainer.step(4)
        mom = 0.5 * mom - 0.1 * (2 * expected / 4)
        expected = expected + mom
    np.testing.assert_allclose(w.data().asnumpy(), expected, rtol=1e-6)
    assert trainer.optimizer.rescale_grad == 0.25


def test_allreduce_then_update_equals_step():
    a, b = _parameter("a", [0.5, 1.5]), _parameter("b", [0.5, 1.5])
    ta = gluon.Trainer([a], "adam", {"learning_rate": 0.1})
    tb = gluon.Trainer([b], "adam", {"learning_rate": 0.1})
    for _ in range(2):
        _backward(a)
        _backward(b)
        ta.step(2)
        tb.allreduce_grads()
        tb.update(2)
    np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())


def test_stale_gradient_raises_mxnets_error():
    used, unused = _parameter("used", [1.0]), _parameter("unused", [1.0])
    trainer = gluon.Trainer([used, unused], "sgd", {"learning_rate": 0.1})
    _backward(used)
    with pytest.raises(UserWarning, match="Gradient of Parameter `unused` on context cpu"):
        trainer.step(1)
    # as in MXNet, the failed step had already taken the fresh gradient of `used`
    trainer.step(1, ignore_stale_grad=True)
    np.testing.assert_allclose(used.data().asnumpy(), [1.0])
    # ignore_stale_grad: the stale one is skipped, the fresh one updated
    _backward(used)
    trainer.step(1, ignore_stale_grad=True)
    np.testing.assert_allclose(used.data().asnumpy(), [0.8], rtol=1e-6)
    np.testing.assert_allclose(unused.data().asnumpy(), [1.0])
    # a second step without a backward: stale again
    with pytest.raises(UserWarning, match="has not been updated by backward"):
        trainer.step(1)


def test_step_before_any_backward_raises():
    w = _parameter("w", [1.0])
    trainer = gluon.Trainer([w], "sgd")
    with pytest.raises(UserWarning, match="Gradient of Parameter `w`"):
        trainer.step(1)


def test_null_grad_req_parameters_are_left_alone():
    w, frozen = _parameter("w", [1.0]), _parameter("frozen", [3.0], grad_req="null")
    trainer = gluon.Trainer({"w": w, "frozen": frozen}, "sgd", {"learning_rate": 0.5})
    _backward(w)
    trainer.step(1)
    np.testing.assert_allclose(w.data().asnumpy(), [0.0])
    np.testing.assert_allclose(frozen.data().asnumpy(), [3.0])


def test_params_kinds_and_sorted_indices():
    net = gluon.nn.Dense(2, in_units=3, prefix="fc_")
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), "sgd")
    assert [p.name for p in trainer._params] == ["fc_bias", "fc_weight"]
    assert trainer.optimizer.param_dict[1] is net.weight
    listed = gluon.Trainer([net.weight, net.bias], "sgd")
    assert [p.name for p in listed._params] == ["fc_weight", "fc_bias"]
    with pytest.raises(ValueError, match="list or dict of Parameters"):
        gluon.Trainer(net.weight, "sgd")
    with pytest.raises(ValueError, match="list of"):
        gluon.Trainer([net.weight.data()], "sgd")


def test_optimizer_instance_and_learning_rate():
    w = _parameter("w", [1.0])
    opt = mx.optimizer.SGD(learning_rate=0.3)
    trainer = gluon.Trainer([w], opt)
    assert trainer.optimizer is opt and trainer.learning_rate == 0.3
    trainer.set_learning_rate(0.05)
    assert opt.lr == 0.05
    with pytest.raises(AssertionError, match="optimizer_params must be None"):
        gluon.Trainer([w], opt, {"learning_rate": 0.1})
    scheduled = gluon.Trainer(
        [w],
        "sgd",
        {"lr_scheduler": mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)},
    )
    with pytest.raises(UserWarning, match="LRScheduler"):
        scheduled.set_learning_rate(0.1)


def test_lr_mult_from_the_parameter():
    slow = _parameter("slow", [1.0], lr_mult=0.5)
    trainer = gluon.Trainer([slow], "sgd", {"learning_rate": 0.2})
    _backward(slow)
    trainer.step(1)
    np.testing.assert_allclose(slow.data().asnumpy(), [1.0 - 0.1 * 2], rtol=1e-6)


def test_states_file_round_trip(tmp_path):
    def train(trainer, param, steps):
        for _ in range(steps):
            _backward(param, scale=0.5)
            trainer.step(1)

    a = _parameter("w", [1.0, 2.0])
    trainer = gluon.Trainer([a], "adam", {"learning_rate": 0.1})
    train(trainer, a, 3)
    path = str(tmp_path / "trainer.states")
    trainer.save_states(path)
    b = _parameter("w", a.data().asnumpy())
    other = gluon.Trainer([b], "sgd", {"learning_rate": 9.0})
    other.load_states(path)
    assert isinstance(other.optimizer, mx.optimizer.Adam)
    assert other.learning_rate == 0.1 and other.optimizer.param_dict == {0: b}
    train(trainer, a, 2)
    train(other, b, 2)
    np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())


def test_hybridized_net_trains_as_the_imperative_one():
    rng = np.random.default_rng(0)
    x = mx.nd.array(rng.normal(size=(32, 3)))
    y = mx.nd.array(rng.normal(size=(32, 1)))
    results = []
    for hybridize in (False, True):
        net = gluon.nn.HybridSequential(prefix="mlp_")
        with net.name_scope():
            net.add(gluon.nn.Dense(4, in_units=3, activation="tanh"), gluon.nn.Dense(1, in_units=4))
        net.initialize()
        for i, param in enumerate(net.collect_params().values()):
            param.set_data(np.random.default_rng(i).normal(0, 0.5, param.shape))
        if hybridize:
            net.hybridize()
        trainer = gluon.Trainer(
            net.collect_params(), "sgd", {"learning_rate": 0.2, "momentum": 0.5}
        )
        losses = []
        for _ in range(10):
            with mx.autograd.record():
                loss = mx.nd.square(net(x) - y).mean()
            loss.backward()
            trainer.step(1)
            losses.append(float(loss.asscalar()))
        assert losses[-1] < losses[0]
        results.append([p.data().asnumpy() for p in net.collect_params().values()])
    for imperative, hybridized in zip(*results):
        np.testing.assert_allclose(hybridized, imperative, rtol=1e-5, atol=1e-6)
