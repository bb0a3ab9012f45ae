"""``mx.optimizer``: the registry, learning rates and multipliers, update counts,
multi-precision states, optimizers against float64 references, and the Updater's
serialised states (MXNet's pickle layout). Real MXNet's numbers are checked in
tests/test_interop_optimizer.py."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import symgrad as mx
from symgrad.optimizer import pickling

NAMES = [
    "sgd",
    "nag",
    "adam",
    "adamw",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
    "rmsprop",
    "ftrl",
    "signum",
    "lamb",
    "dcasgd",
    "sgld",
]


def _run(optimizer, weight, grads):
    updater = mx.optimizer.get_updater(optimizer)
    w = mx.nd.array(weight, dtype=weight.dtype)
    for g in grads:
        updater(0, mx.nd.array(g, dtype=g.dtype), w)
    return w.asnumpy(), updater


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    return rng.normal(size=(3, 4)), [rng.normal(size=(3, 4)) for _ in range(5)]


def test_create_finds_every_optimizer_by_name():
    for name in NAMES:
        assert type(mx.optimizer.create(name.upper())).__name__.lower() == name
    assert mx.optimizer.FTRL is mx.optimizer.Ftrl
    with pytest.raises(ValueError, match="Cannot find optimizer nope"):
        mx.optimizer.create("nope")


def test_register_a_subclass_and_warn_on_override():
    class Halve(mx.optimizer.Optimizer):
        def update(self, index, weight, grad, state):
            weight[:] = weight * 0.5

    mx.optimizer.register(Halve)
    try:
        w, _ = _run(mx.optimizer.create("halve"), np.ones(2), [np.ones(2)] * 2)
        np.testing.assert_allclose(w, [0.25, 0.25])
        with pytest.warns(UserWarning, match="overriding existing optimizer"):
            mx.optimizer.register(Halve)
    finally:
        del mx.optimizer.Optimizer.opt_registry["halve"]


def test_defaults_are_mxnets():
    assert mx.optimizer.SGD().lr == 0.01
    assert mx.optimizer.Adam().lr == 0.001 and mx.optimizer.Adamax().lr == 0.002
    assert mx.optimizer.Ftrl().lr == 0.1
    assert mx.optimizer.AdaGrad().float_stable_eps == 1e-7
    sgd = mx.optimizer.SGD()
    assert sgd.rescale_grad == 1.0 and sgd.wd == 0.0 and sgd.clip_gradient is None
    assert sgd.aggregate_num == 4 and not sgd.multi_precision


def test_learning_rate_and_scheduler():
    opt = mx.optimizer.SGD(learning_rate=0.3)
    assert opt.learning_rate == 0.3
    opt.set_learning_rate(0.2)
    assert opt.learning_rate == 0.2
    schedule = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = mx.optimizer.SGD(lr_scheduler=schedule, learning_rate=0.8)
    assert schedule.base_lr == 0.8  # the optimizer's rate replaces the scheduler's
    with pytest.raises(UserWarning, match="LRScheduler of the optimizer"):
        opt.set_learning_rate(0.1)
    _run(opt, np.ones(2), [np.ones(2)] * 3)
    assert opt.num_update == 3
    assert opt.learning_rate == pytest.approx(0.8 * 0.5**2)


def test_update_counts_and_begin_num_update():
    opt = mx.optimizer.SGD(begin_num_update=10)
    updater = mx.optimizer.get_updater(opt)
    weights = [mx.nd.ones((2,)), mx.nd.ones((3,))]
    updater([0, 1], [mx.nd.ones((2,)), mx.nd.ones((3,))], weights)
    updater(0, mx.nd.ones((2,)), weights[0])
    assert opt._index_update_count == {0: 12, 1: 11}
    assert opt.num_update == 12


def test_multipliers_by_parameter_name_and_index():
    opt = mx.optimizer.SGD(
        learning_rate=1.0, wd=0.1, param_idx2name={0: "fc_weight", 1: "fc_bias", 2: "bn_gamma"}
    )
    # MXNet: no weight decay for what is neither a weight nor a gamma
    assert opt.wd_mult == {"fc_bias": 0.0}
    opt.set_lr_mult({"fc_weight": 0.5, 2: 3.0})
    assert opt._get_lr(0) == 0.5 and opt._get_lr(1) == 1.0 and opt._get_lr(2) == 3.0
    assert opt._get_wd(0) == 0.1 and opt._get_wd(1) == 0.0

    class Param:  # param_dict entries take precedence (a Trainer's Parameters)
        lr_mult, wd_mult = 0.25, 2.0

    opt.param_dict = {0: Param()}
    assert opt._get_lr(0) == 0.25 and opt._get_wd(0) == pytest.approx(0.2)


def test_sgd_momentum_against_reference(problem):
    weight, grads = problem
    ours, _ = _run(
        mx.optimizer.SGD(
            learning_rate=0.1, momentum=0.9, wd=0.01, rescale_grad=0.5, clip_gradient=0.4
        ),
        weight,
        grads,
    )
    w, mom = weight.copy(), np.zeros_like(weight)
    for g in grads:
        mom = 0.9 * mom - 0.1 * (np.clip(0.5 * g, -0.4, 0.4) + 0.01 * w)
        w = w + mom
    np.testing.assert_allclose(ours, w, rtol=1e-12)


def test_adam_against_reference(problem):
    weight, grads = problem
    ours, _ = _run(mx.optimizer.Adam(learning_rate=0.01, wd=0.01), weight, grads)
    w, m, v = weight.copy(), np.zeros_like(weight), np.zeros_like(weight)
    for t, g in enumerate(grads, 1):
        g = g + 0.01 * w
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        lr = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        w = w - lr * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(ours, w, rtol=1e-10)


def test_adagrad_and_adadelta_against_reference(problem):
    weight, grads = problem
    ours, _ = _run(mx.optimizer.AdaGrad(learning_rate=0.1, wd=0.01), weight, grads)
    w, history = weight.copy(), np.zeros_like(weight)
    for g in grads:
        history += g * g
        w = w - 0.1 * (g / np.sqrt(history + 1e-7) + 0.01 * w)
    np.testing.assert_allclose(ours, w, rtol=1e-10)
    ours, _ = _run(mx.optimizer.AdaDelta(rho=0.9, epsilon=1e-5), weight, grads)
    w, acc_g, acc_d = weight.copy(), np.zeros_like(weight), np.zeros_like(weight)
    for g in grads:
        acc_g = 0.9 * acc_g + 0.1 * g * g
        delta = np.sqrt(acc_d + 1e-5) / np.sqrt(acc_g + 1e-5) * g
        acc_d = 0.9 * acc_d + 0.1 * delta * delta
        w = w - delta
    np.testing.assert_allclose(ours, w, rtol=1e-10)


def test_sgld_adds_noise_of_variance_lr():
    mx.random.seed(0)
    weight = np.zeros(20000)
    ours, _ = _run(mx.optimizer.SGLD(learning_rate=0.04), weight, [np.ones(20000)])
    # -lr/2 * grad, plus N(0, sqrt(lr))
    assert abs(ours.mean() + 0.02) < 0.005
    assert abs(ours.std() - 0.2) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_moves_a_float32_weight(name, problem):
    weight, grads = problem
    ours, _ = _run(
        mx.optimizer.create(name, learning_rate=0.01),
        weight.astype(np.float32),
        [g.astype(np.float32) for g in grads],
    )
    assert ours.dtype == np.float32 and np.all(np.isfinite(ours))
    assert not np.allclose(ours, weight.astype(np.float32))


def test_multi_precision_states_and_update():
    weight = mx.nd.array(np.linspace(-1, 1, 6), dtype="float16")
    sgd = mx.optimizer.SGD(momentum=0.9, multi_precision=True)
    mom, master = sgd.create_state_multi_precision(0, weight)
    assert mom.dtype == np.float32 and master.dtype == np.float32
    adam = mx.optimizer.Adam(multi_precision=True)
    master, (mean, var) = adam.create_state_multi_precision(0, weight)
    assert master.dtype == np.float32 and mean.dtype == np.float32
    grad = mx.nd.ones((6,), dtype="float16")
    adam.update_multi_precision(0, weight, grad, (master, (mean, var)))
    np.testing.assert_array_equal(weight.asnumpy(), master.asnumpy().astype(np.float16))
    with pytest.warns(UserWarning, match="float16"):
        mx.optimizer.Adam().create_state_multi_precision(0, weight)


def test_raw_ndarray_format_round_trip():
    for dtype in (np.float32, np.float64, np.float16, np.int32, np.uint8):
        array = np.arange(12).reshape(3, 4).astype(dtype)
        raw = pickling.array_to_raw(array)
        assert raw[:4] == bytes.fromhex("c9fa93f9")  # MXNet's NDArray V2 magic
        back = pickling.raw_to_array(raw)
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)


def test_updater_states_round_trip(problem):
    weight, grads = problem
    opt = mx.optimizer.Adam(learning_rate=0.01)
    _, updater = _run(opt, weight, grads[:3])
    blob = updater.get_states(dump_optimizer=True)
    assert b"mxnet.ndarray.ndarray" in blob and b"mxnet.optimizer.optimizer" in blob
    with pytest.raises(ModuleNotFoundError):  # MXNet's paths, not ours
        pickle.loads(blob)
    other = mx.optimizer.get_updater(mx.optimizer.SGD())
    other.set_states(blob)
    assert type(other.optimizer) is mx.optimizer.Adam
    assert other.optimizer.num_update == 3 and other.optimizer.param_dict == {}
    for a, b in zip(other.states[0], updater.states[0]):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    # states alone, without the optimizer
    only = mx.optimizer.get_updater(mx.optimizer.Adam())
    only.set_states(updater.get_states())
    assert type(only.optimizer) is mx.optimizer.Adam and only.optimizer.num_update == 0
    assert only.states_synced == {0: False}


def test_scheduler_pickles_under_mxnets_path():
    opt = mx.optimizer.SGD(lr_scheduler=mx.lr_scheduler.CosineScheduler(10, base_lr=0.5))
    updater = mx.optimizer.get_updater(opt)
    blob = updater.get_states(dump_optimizer=True)
    assert b"mxnet.lr_scheduler" in blob
    updater.set_states(blob)
    assert isinstance(updater.optimizer.lr_scheduler, mx.lr_scheduler.CosineScheduler)
    assert updater.optimizer.learning_rate == pytest.approx(0.5)


def test_set_lr_scale_is_refused_as_in_mxnet():
    """MXNet 1.x keeps ``set_lr_scale`` only to raise DeprecationWarning."""
    with pytest.raises(DeprecationWarning):
        mx.optimizer.SGD().set_lr_scale({0: 0.5})
