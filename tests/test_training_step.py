"""The fused training step (symgrad.training_step): a Trainer's updates computed
by the backward program, committed by ``step``, to the bit the results of
running the updates one by one; and never committed when they would differ."""

import numpy as np
import pytest

import symgrad as mx
from symgrad import _state, autograd, gluon, nd
from symgrad import training_step as ts

STEPS = 5


def _net(hybridize, seed=0):
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(16, activation="relu"), gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize()
    return net


def _data(batch=8, seed=1):
    rng = np.random.default_rng(seed)
    return nd.array(rng.random((batch, 10))), nd.array(rng.integers(0, 4, batch))


def _train(
    fuse, monkeypatch, optimizer="sgd", params=None, hybridize=True, between=None, batches=None
):
    """Parameters after STEPS steps, and how many steps were committed ahead."""
    net = _net(hybridize)
    trainer = gluon.Trainer(
        net.collect_params(),
        optimizer,
        params or {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4},
    )
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    commits = []
    real_commit = ts.Foreseen.commit

    def counting_commit(self, trainer, calls):
        done = real_commit(self, trainer, calls)
        commits.append(done)
        return done

    with monkeypatch.context() as patch:
        patch.setattr(ts.Foreseen, "commit", counting_commit)
        if not fuse:
            patch.setattr(ts, "_fusable_optimizer", lambda optimizer: False)
        for step in range(STEPS):
            X, y = _data(batches[step] if batches else 8, seed=step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            if between is not None:
                between(net, step)
            trainer.step(X.shape[0])
    return [p.data().asnumpy() for p in net.collect_params().values()], commits


def _assert_same(fused, separate):
    for a, b in zip(fused, separate):
        np.testing.assert_array_equal(a, b)


OPTIMIZERS = [
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}),
    ("sgd", {"learning_rate": 0.1}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.5, "clip_gradient": 0.05}),
    ("adam", {"learning_rate": 0.01, "wd": 1e-3}),
    ("adam", {"learning_rate": 0.01, "clip_gradient": 0.5}),
]


@pytest.mark.parametrize("optimizer, params", OPTIMIZERS)
@pytest.mark.parametrize("hybridize", [True, False])
def test_fused_steps_equal_separate_updates_interpreted(optimizer, params, hybridize, monkeypatch):
    fused, commits = _train(True, monkeypatch, optimizer, params, hybridize)
    separate, _ = _train(False, monkeypatch, optimizer, params, hybridize)
    _assert_same(fused, separate)
    # the first step learns, every later one is computed ahead and committed
    assert commits == [True] * (STEPS - 1)


@pytest.mark.parametrize("optimizer, params", OPTIMIZERS[::2])
def test_fused_steps_equal_separate_updates_compiled(optimizer, params, compiled, monkeypatch):
    fused, commits = _train(True, monkeypatch, optimizer, params)
    separate, _ = _train(False, monkeypatch, optimizer, params)
    _assert_same(fused, separate)
    assert commits == [True] * (STEPS - 1)


def test_a_scheduled_learning_rate_is_an_input_not_a_new_program(monkeypatch):
    schedule = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.1)
    params = {"learning_rate": 0.1, "momentum": 0.9, "lr_scheduler": schedule}
    fused, commits = _train(True, monkeypatch, "sgd", params)
    schedule = mx.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.1)
    params = {"learning_rate": 0.1, "momentum": 0.9, "lr_scheduler": schedule}
    separate, _ = _train(False, monkeypatch, "sgd", params)
    _assert_same(fused, separate)
    assert commits == [True] * (STEPS - 1)


def test_gradients_clipped_between_backward_and_step_are_the_ones_used(monkeypatch):
    def clip(net, step):
        grads = [p.grad() for p in net.collect_params().values()]
        gluon.utils.clip_global_norm(grads, 0.01)

    fused, commits = _train(True, monkeypatch, between=clip)
    separate, _ = _train(False, monkeypatch, between=clip)
    _assert_same(fused, separate)
    assert not any(commits)  # computed ahead from unclipped gradients: never used


def test_a_weight_set_between_backward_and_step_is_the_one_updated(monkeypatch):
    def reset(net, step):
        if step == 3:
            bias = list(net.collect_params().values())[1]
            bias.set_data(nd.ones(bias.shape))

    fused, commits = _train(True, monkeypatch, between=reset)
    separate, _ = _train(False, monkeypatch, between=reset)
    _assert_same(fused, separate)
    assert commits.count(False) == 1


def test_reading_gradients_between_backward_and_step_changes_nothing(monkeypatch):
    seen = []

    def read(net, step):
        seen.append([p.grad().asnumpy().copy() for p in net.collect_params().values()])

    fused, commits = _train(True, monkeypatch, between=read)
    separate, _ = _train(False, monkeypatch)
    _assert_same(fused, separate)
    assert commits == [True] * (STEPS - 1)
    assert all(np.abs(g).sum() > 0 for g in seen[-1])


def test_a_changing_batch_size_rescales_the_gradient_through_an_input(monkeypatch):
    sizes = [8, 8, 6, 6, 8]
    fused, commits = _train(True, monkeypatch, batches=sizes)
    separate, _ = _train(False, monkeypatch, batches=sizes)
    _assert_same(fused, separate)
    # a new batch size is a new graph (its first step learns again)
    assert commits.count(True) >= 2


def test_a_backward_without_a_step_leaves_the_weights_alone(monkeypatch):
    net = _net(True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    X, y = _data()
    for _ in range(3):
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(8)
    before = [p.data().asnumpy().copy() for p in net.collect_params().values()]
    with autograd.record():
        L = loss(net(X), y)
    L.backward()
    assert _state.staged_step.get() is not None  # computed ahead ...
    after = [p.data().asnumpy() for p in net.collect_params().values()]
    _assert_same(after, before)  # ... but not applied until step
    with autograd.record():
        L = loss(net(X), y)
    L.backward()
    trainer.step(8)  # commits the latest backward's step, not the stale one
    expected = [
        w - 0.1 / 8 * p.grad().asnumpy() for w, p in zip(before, net.collect_params().values())
    ]
    for a, b in zip([p.data().asnumpy() for p in net.collect_params().values()], expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_gradient_accumulation_is_not_fused_and_stays_right(monkeypatch):
    def make():
        net = _net(True)
        for p in net.collect_params().values():
            p.grad_req = "add"
        return net

    results = []
    for fuse in (True, False):
        net = make()
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        with monkeypatch.context() as patch:
            if not fuse:
                patch.setattr(ts, "_fusable_optimizer", lambda optimizer: False)
            for step in range(4):
                X, y = _data(seed=step)
                with autograd.record():
                    L = loss(net(X), y)
                L.backward()
                trainer.step(8)
                assert _state.staged_step.get() is None
        results.append([p.data().asnumpy() for p in net.collect_params().values()])
    _assert_same(*results)


def test_an_optimizer_without_update_rules_runs_as_before(monkeypatch):
    params = {"learning_rate": 0.1, "momentum": 0.9}
    fused, commits = _train(True, monkeypatch, "nag", params)
    separate, _ = _train(False, monkeypatch, "nag", params)
    _assert_same(fused, separate)
    assert commits == []
