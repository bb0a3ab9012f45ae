"""Adversarial tests of the fused training step (symgrad.training_step) and of
the hybridized call recording (``_CallPlan.record``).

Each test is a training script a careful MXNet user could write, run twice: with
the fusion and with ``training_step._fusable_optimizer`` returning False (every
update run one by one). The contract: the parameters (and optimizer states,
learning rates, outputs) come out bit-identical, and a step computed ahead is
never committed when anything could make it differ.
"""

import json
import logging
import os
import threading

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, gluon, nd
from symgrad import training_step as ts
from symgrad.gluon import nn

SGD = ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4})


def _mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(16, in_units=10, activation="relu"), nn.Dense(4, in_units=16))
    return net


def _net(make=_mlp, hybridize=True, dtype=None):
    mx.random.seed(0)
    net = make()
    net.initialize(mx.init.Xavier())
    if dtype is not None:
        net.cast(dtype)
    if hybridize:
        net.hybridize()
    return net


def _data(step, dtype="float32", batch=8):
    rng = np.random.default_rng(step)
    return (
        nd.array(rng.random((batch, 10)), dtype=dtype),
        nd.array(rng.integers(0, 4, batch), dtype=dtype),
    )


def _train(fuse, monkeypatch, loop, make=_mlp, optimizer=SGD, hybridize=True, dtype=None):
    """Run ``loop(net, trainer, loss)``; return every parameter's values (running
    statistics too), which steps were committed ahead, and what ``loop`` returned."""
    net = _net(make, hybridize, dtype)
    name, params = optimizer
    params = params() if callable(params) else dict(params)
    trainer = gluon.Trainer(net.collect_params(), name, params)
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
        seen = loop(net, trainer, loss)
    return [p.data().asnumpy() for p in net.collect_params().values()], commits, seen


def _both(monkeypatch, loop, **kw):
    """The fused run's commits, after checking it equals the separate run."""
    fused, commits, seen_fused = _train(True, monkeypatch, loop, **kw)
    separate, _, seen_separate = _train(False, monkeypatch, loop, **kw)
    assert len(fused) == len(separate)
    for a, b in zip(fused, separate):
        np.testing.assert_array_equal(a, b)
    assert len(seen_fused or ()) == len(seen_separate or ())
    for a, b in zip(seen_fused or (), seen_separate or ()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return commits


def _loop(steps=5, between=None, batch=8, ignore_stale_grad=False, dtype="float32"):
    """record, backward, ``between(net, trainer, step)`` (what it returns is
    kept), trainer.step."""

    def loop(net, trainer, loss):
        seen = []
        for step in range(steps):
            X, y = _data(step, dtype, batch)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            if between is not None:
                value = between(net, trainer, step)
                if value is not None:
                    seen.append(value)
            trainer.step(batch, ignore_stale_grad=ignore_stale_grad)
        return seen

    return loop


# -- things changed between backward and step -----------------------------------------


def test_zero_grad_between_backward_and_step_updates_from_zeros(monkeypatch):
    # zero_grad writes the gradient buffers directly: the step computed ahead
    # read the gradients backward computed, so it must not be committed
    commits = _both(monkeypatch, _loop(between=lambda n, t, s: n.collect_params().zero_grad()))
    assert not any(commits)


def test_zero_grad_only_before_the_forward_still_fuses(monkeypatch):
    def loop(net, trainer, loss):
        for step in range(5):
            net.collect_params().zero_grad()
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            trainer.step(8)

    assert _both(monkeypatch, loop) == [True] * 4


@pytest.mark.parametrize(
    "change",
    [
        lambda n, t, s: t.set_learning_rate(0.1 / (s + 1)),
        lambda n, t, s: setattr(list(n.collect_params().values())[0], "lr_mult", 1.0 + s),
        lambda n, t, s: setattr(list(n.collect_params().values())[0], "wd_mult", 2.0 + s),
        lambda n, t, s: setattr(t.optimizer, "momentum", 0.9 - 0.1 * s),
        lambda n, t, s: setattr(t.optimizer, "clip_gradient", 0.01 * (s + 1)),
    ],
    ids=["set_learning_rate", "lr_mult", "wd_mult", "momentum", "clip_gradient"],
)
def test_optimizer_settings_changed_between_backward_and_step(change, monkeypatch):
    commits = _both(monkeypatch, _loop(between=change))
    assert not any(commits)


def test_grad_req_switched_to_add_mid_training(monkeypatch):
    def between(net, trainer, step):
        if step == 2:
            for p in net.collect_params().values():
                p.grad_req = "add"

    commits = _both(monkeypatch, _loop(steps=6, between=between))
    assert commits[0] is True and not any(commits[2:])


def test_load_states_between_backward_and_step(monkeypatch, tmp_path):
    path = str(tmp_path / "trainer.states")

    def between(net, trainer, step):
        if step == 1:
            trainer.save_states(path)
        if step == 3:
            trainer.load_states(path)

    commits = _both(monkeypatch, _loop(between=between))
    assert commits == [True, True, False, True]


def test_load_states_of_another_optimizer_is_never_run_inside_backward(monkeypatch, tmp_path):
    # the file's NAG replaces the SGD in the same updater: the step learnt for
    # SGD must not be foreseen with NAG's update op, which has no rule and would
    # run inside backward (updating every weight twice; here backward raised)
    path = str(tmp_path / "nag.states")

    def loop(net, trainer, loss):
        nag = gluon.Trainer(net.collect_params(), "nag", {"learning_rate": 0.1, "momentum": 0.9})
        for step in range(6):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            if step == 0:
                nag.step(8)
                nag.save_states(path)
                continue
            if step == 3:
                trainer.load_states(path)
            trainer.step(8)

    _both(monkeypatch, loop)


def test_a_learning_rate_read_before_step_is_the_current_one(monkeypatch):
    # FactorScheduler keeps state: foreseeing the next step must not move it on
    def make():
        schedule = mx.lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.1)
        return {"learning_rate": 0.1, "momentum": 0.9, "lr_scheduler": schedule}

    commits = _both(
        monkeypatch,
        _loop(steps=7, between=lambda n, t, s: t.learning_rate),
        optimizer=("sgd", make),
    )
    assert commits == [True] * 6


def test_a_schedule_logs_each_change_once(monkeypatch, caplog):
    def make():
        schedule = mx.lr_scheduler.MultiFactorScheduler(step=[2, 4], factor=0.5, base_lr=0.1)
        return {"learning_rate": 0.1, "lr_scheduler": schedule}

    logs = []
    for fuse in (True, False):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            _train(fuse, monkeypatch, _loop(steps=6), optimizer=("sgd", make))
        logs.append([r.getMessage() for r in caplog.records if "learning rate" in r.getMessage()])
    assert logs[0] == logs[1] and len(logs[0]) == 2


def test_a_schedule_that_raises_raises_at_step_not_at_backward(monkeypatch):
    class Ending(mx.lr_scheduler.LRScheduler):
        def __call__(self, num_update):
            if num_update > 3:
                raise ValueError("schedule over")
            return self.base_lr

    def loop(net, trainer, loss):
        events = []
        for step in range(6):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            events.append("backward")
            try:
                trainer.step(8)
            except ValueError:
                events.append("step raised")
                break
        assert events[-2:] == ["backward", "step raised"]

    make = lambda: {"learning_rate": 0.1, "lr_scheduler": Ending(base_lr=0.1)}  # noqa: E731
    _both(monkeypatch, loop, optimizer=("sgd", make))


# -- networks whose graph binds other arrays, or changes --------------------------------


class _TwoOrders(gluon.Block):
    """Two blocks of one shape, called in the order the step says: every step has
    the same graph structure, with the two weights bound the other way round."""

    def __init__(self, hybridize_parts):
        super().__init__()
        with self.name_scope():
            self.a = nn.Dense(10, in_units=10, activation="tanh")
            self.b = nn.Dense(10, in_units=10, activation="tanh")
            self.out = nn.Dense(4, in_units=10)
        if hybridize_parts:
            for block in (self.a, self.b, self.out):
                block.hybridize()

    def forward(self, x, flip):
        return self.out(self.a(self.b(x)) if flip else self.b(self.a(x)))


@pytest.mark.parametrize("hybridize_parts", [False, True])
def test_blocks_of_one_shape_swapped_never_take_each_others_update(hybridize_parts, monkeypatch):
    def loop(net, trainer, loss):
        for step in range(6):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X, step % 2), y)
            L.backward()
            trainer.step(8)

    commits = _both(monkeypatch, loop, make=lambda: _TwoOrders(hybridize_parts), hybridize=False)
    assert not any(commits)


def test_a_graph_that_changes_every_other_step(monkeypatch):
    def loop(net, trainer, loss):
        for step in range(8):
            X, y = _data(step)
            with autograd.record():
                out = net(X)
                L = loss(out if step % 2 else out * 2, y)
            L.backward()
            trainer.step(8)

    _both(monkeypatch, loop)


def test_backwards_without_a_step_in_between(monkeypatch):
    def loop(net, trainer, loss):
        for step in range(8):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            if step % 3 != 2:
                trainer.step(8)

    assert all(_both(monkeypatch, loop))


class _WithUnused(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.used = nn.Dense(4, in_units=10)
            self.unused = nn.Dense(4, in_units=10)

    def hybrid_forward(self, F, x):
        return self.used(x)


def test_ignore_stale_grad_with_an_unused_parameter(monkeypatch):
    commits = _both(monkeypatch, _loop(ignore_stale_grad=True), make=_WithUnused)
    assert commits == [True] * 4


def _shared_dense():
    shared = nn.Dense(10, in_units=10, activation="tanh")
    net = nn.HybridSequential()
    net.add(shared, shared, nn.Dense(4, in_units=10))
    return net


def test_a_parameter_used_twice_in_the_graph(monkeypatch):
    assert _both(monkeypatch, _loop(), make=_shared_dense) == [True] * 4


def test_two_trainers_over_parts_of_one_network(monkeypatch):
    def loop(net, trainer, loss):
        params = list(net.collect_params().values())
        first = gluon.Trainer(params[:2], "sgd", {"learning_rate": 0.1, "momentum": 0.9})
        second = gluon.Trainer(params[2:], "adam", {"learning_rate": 0.01})
        for step in range(6):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            first.step(8)
            second.step(8)

    # the first Trainer's step is fused every time (the second's cannot replace it)
    assert _both(monkeypatch, loop) == [True] * 5


def test_two_trainers_stepping_in_alternating_order(monkeypatch):
    def loop(net, trainer, loss):
        params = list(net.collect_params().values())
        first = gluon.Trainer(params[:2], "sgd", {"learning_rate": 0.1, "momentum": 0.9})
        second = gluon.Trainer(params[2:], "adam", {"learning_rate": 0.01})
        for step in range(6):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            for t in (first, second) if step % 2 else (second, first):
                t.step(8)

    _both(monkeypatch, loop)


@pytest.mark.parametrize(
    "kvstore, update_on_kvstore", [("local", False), ("local", True), ("device", None)]
)
def test_kvstores(kvstore, update_on_kvstore, monkeypatch):
    def loop(net, trainer, loss):
        store = mx.kv.create(kvstore) if kvstore == "local" else kvstore
        trainer = gluon.Trainer(
            net.collect_params(),
            "sgd",
            {"learning_rate": 0.1, "momentum": 0.9},
            kvstore=store,
            update_on_kvstore=update_on_kvstore,
        )
        for step in range(5):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            if update_on_kvstore is False:
                trainer.allreduce_grads()
                trainer.update(8)
            else:
                trainer.step(8)

    _both(monkeypatch, loop)


# -- optimizers, dtypes, schedules --------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer",
    [
        ("adam", {"learning_rate": 0.01, "multi_precision": True}),
        ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "multi_precision": True}),
        ("sgd", {"learning_rate": 0.1, "multi_precision": True}),
    ],
    ids=["adam", "sgd_mom", "sgd"],
)
def test_float16_with_multi_precision(optimizer, monkeypatch):
    # Adam's multi-precision update casts its float32 copy into the weight right
    # after updating it: capturing that update to run later cast the old copy
    commits = _both(monkeypatch, _loop(dtype="float16"), optimizer=optimizer, dtype="float16")
    assert commits == []


@pytest.mark.parametrize(
    "optimizer", [SGD, ("adam", {"learning_rate": 0.01, "wd": 1e-3})], ids=["sgd", "adam"]
)
def test_float64_parameters(optimizer, monkeypatch):
    commits = _both(monkeypatch, _loop(dtype="float64"), optimizer=optimizer, dtype="float64")
    assert commits == [True] * 4


@pytest.mark.parametrize(
    "schedule",
    [
        lambda: mx.lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.01),
        lambda: mx.lr_scheduler.PolyScheduler(max_update=9, base_lr=0.01, warmup_steps=2),
        lambda: mx.lr_scheduler.CosineScheduler(max_update=8, base_lr=0.01, warmup_steps=2),
    ],
    ids=["factor", "poly_warmup", "cosine_warmup"],
)
def test_adam_with_a_schedule_and_begin_num_update(schedule, monkeypatch):
    make = lambda: {"learning_rate": 0.01, "begin_num_update": 3, "lr_scheduler": schedule()}  # noqa: E731
    commits = _both(
        monkeypatch,
        _loop(steps=6, between=lambda n, t, s: t.learning_rate),
        optimizer=("adam", make),
    )
    assert commits == [True] * 5


# -- other uses of autograd around the step -------------------------------------------


def test_retain_graph_and_a_second_backward(monkeypatch):
    def loop(net, trainer, loss):
        for step in range(5):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
                L2 = L * 2
            L2.backward(retain_graph=True)
            L.backward()
            trainer.step(8)

    _both(monkeypatch, loop)


def test_autograd_grad_between_backward_and_step(monkeypatch):
    def loop(net, trainer, loss):
        seen = []
        for step in range(5):
            X, y = _data(step)
            X.attach_grad()
            with autograd.record():
                L = loss(net(X), y)
            L.backward(retain_graph=True)
            seen.append(autograd.grad(L, [X])[0].asnumpy())
            trainer.step(8)
        return seen

    assert _both(monkeypatch, loop) == [True] * 4


def test_a_gradient_penalty_through_a_hybridized_block(monkeypatch):
    # create_graph: the gradient of the input is recorded, and differentiated again
    def loop(net, trainer, loss):
        seen = []
        for step in range(5):
            X, y = _data(step)
            X.attach_grad()
            with autograd.record():
                L = loss(net(X), y).sum()
                (gx,) = autograd.grad(L, [X], create_graph=True)
                total = L + (gx * gx).sum()
            total.backward()
            seen.append(X.grad.asnumpy())
            trainer.step(8)
        return seen

    _both(monkeypatch, loop)


def test_anomaly_mode(monkeypatch):
    def loop(net, trainer, loss):
        with autograd.detect_anomaly():
            _loop()(net, trainer, loss)

    assert _both(monkeypatch, loop) == [True] * 4


def test_two_threads_training_two_networks(monkeypatch):
    # (the networks are made first: the initializers share one random stream)
    nets = [_net() for _ in range(2)]
    trainers = [gluon.Trainer(net.collect_params(), *SGD) for net in nets]
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    barrier = threading.Barrier(2)
    errors = []

    def work(k):
        try:
            barrier.wait()
            _loop(steps=6)(nets[k], trainers[k], loss)
        except BaseException as err:  # noqa: BLE001  (reported by the main thread)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    separate = _train(False, monkeypatch, _loop(steps=6))[0]
    for net in nets:
        for p, b in zip(net.collect_params().values(), separate):
            np.testing.assert_array_equal(p.data().asnumpy(), b)


# -- hybridized blocks: non-deferrable ops, constants, several outputs ------------------


def _batchnorm():
    net = nn.HybridSequential()
    net.add(
        nn.Dense(16, in_units=10),
        nn.BatchNorm(in_channels=16),
        nn.Activation("relu"),
        nn.Dense(4, in_units=16),
    )
    return net


def _dropout():
    net = nn.HybridSequential()
    net.add(nn.Dense(16, in_units=10, activation="relu"), nn.Dropout(0.3), nn.Dense(4, in_units=16))
    return net


class _Nested(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.body = _batchnorm()
            self.head = nn.Dense(4, in_units=4)

    def hybrid_forward(self, F, x):
        return self.head(self.body(x)) + self.body(x)  # the inner block called twice


@pytest.mark.parametrize("make", [_batchnorm, _dropout, _Nested], ids=["bn", "dropout", "nested"])
def test_hybridized_blocks_with_non_deferrable_ops(make, monkeypatch):
    # running statistics are among the compared parameters; Dropout's masks come
    # from the seeded stream, the same in both runs
    assert _both(monkeypatch, _loop(), make=make) == [True] * 4


class _OutputTwice(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.dense = nn.Dense(3, in_units=4)

    def hybrid_forward(self, F, x):
        y = F.relu(self.dense(x))
        return y, y


class _Outputs(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.dense = nn.Dense(3, in_units=4)

    def hybrid_forward(self, F, x):
        h = self.dense(x)
        constant = F.sum(F.ones((2, 3)) * 2 + 1)  # a subgraph of constants only
        return F.tanh(h), F.broadcast_mul(F.sigmoid(h), constant), h * 2


def _outputs_and_grads(make, hybridize, use):
    net = _net(make, hybridize)
    x = nd.array(np.random.default_rng(0).random((2, 4)))
    seen = []
    for _ in range(3):
        with autograd.record():
            outputs = net(x)
            head = use(outputs)
        head.backward()
        # the outputs read after backward freed the graph
        seen += [o.asnumpy() for o in outputs]
        seen += [p.grad().asnumpy() for p in net.collect_params().values()]
    return seen


@pytest.mark.parametrize(
    "make, use",
    [
        (_OutputTwice, lambda o: (o[0] * 3).sum()),
        (_OutputTwice, lambda o: (o[1] * 3).sum()),
        (_Outputs, lambda o: (o[0] * o[1]).sum()),
        (_Outputs, lambda o: o[2].sum()),
    ],
    ids=["twice_first", "twice_second", "several", "several_one_used"],
)
def test_hybridized_outputs_equal_the_blocks_own_forward(make, use):
    hybrid = _outputs_and_grads(make, True, use)
    imperative = _outputs_and_grads(make, False, use)
    assert len(hybrid) == len(imperative)
    for a, b in zip(hybrid, imperative):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_block_returning_one_output_twice_gives_one_array():
    net = _net(_OutputTwice)
    with autograd.record():
        a, b = net(nd.ones((2, 4)))
    assert a is b  # as the block's own forward returns it


def test_a_block_called_twice_in_one_recording():
    def use(net, x):
        return (net(x) * net(x * 2)).sum()

    grads = []
    for hybridize in (True, False):
        net = _net(hybridize=hybridize)
        x = nd.array(np.random.default_rng(0).random((3, 10)))
        for _ in range(2):
            with autograd.record():
                head = use(net, x)
            head.backward()
        grads.append([p.grad().asnumpy() for p in net.collect_params().values()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class _Blocked(gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.a = nn.Dense(4, in_units=10)
            self.b = nn.Dense(4, in_units=10)

    def hybrid_forward(self, F, x):
        return self.a(x) + F.BlockGrad(self.b(x))


def test_a_parameter_whose_gradient_is_structurally_zero(monkeypatch):
    # b's gradient is zeros (no path): the fused update rebuilds it as zeros
    assert _both(monkeypatch, _loop(), make=_Blocked) == [True] * 4


def test_batchnorm_in_both_modes_and_two_batch_sizes_in_one_recording():
    def make():
        net = nn.HybridSequential()
        net.add(nn.Dense(6, in_units=10), nn.BatchNorm(in_channels=6), nn.Dense(3, in_units=6))
        return net

    seen = []
    for hybridize in (True, False):
        net = _net(make, hybridize)
        values = []
        for it in range(3):
            small = nd.array(np.random.default_rng(it).random((3, 10)))
            large = nd.array(np.random.default_rng(it + 10).random((5, 10)))
            with autograd.record(train_mode=it % 2 == 0):
                head = net(small).sum() + (net(large) ** 2).sum()
            head.backward()
            params = list(net.collect_params().values())
            values += [p.grad().asnumpy() for p in params if p.grad_req != "null"]
            values += [p.data().asnumpy() for p in params]
        seen.append(values)
    for a, b in zip(*seen):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_an_output_outside_the_loss_read_after_step(monkeypatch):
    # its value is that of the weights it was recorded with, not the updated ones
    def loop(net, trainer, loss):
        seen = []
        for step in range(5):
            X, y = _data(step)
            with autograd.record():
                aside = net(X * 2)
                L = loss(net(X), y)
            L.backward()
            trainer.step(8)
            seen.append(aside.asnumpy())
        return seen

    _both(monkeypatch, loop)  # (not fused: the recording holds more than the graph)


# -- the compiled backend -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    ["sgd", "adam_wd", "swapped", "zero_grad", "batchnorm"],
)
def test_compiled(case, compiled, monkeypatch):
    if case == "sgd":
        commits = _both(monkeypatch, _loop(), optimizer=("sgd", {"learning_rate": 0.1}))
        assert commits == [True] * 4
    elif case == "adam_wd":
        optimizer = ("adam", {"learning_rate": 0.01, "wd": 1e-3})
        assert _both(monkeypatch, _loop(), optimizer=optimizer) == [True] * 4
    elif case == "swapped":
        test_blocks_of_one_shape_swapped_never_take_each_others_update(True, monkeypatch)
    elif case == "zero_grad":
        test_zero_grad_between_backward_and_step_updates_from_zeros(monkeypatch)
    else:
        assert _both(monkeypatch, _loop(), make=_batchnorm) == [True] * 4


# -- real MXNet 1.9.1 ---------------------------------------------------------------------

_MXNET_SCRIPT = """
import json, os
import numpy as np
import {module} as mx
from {module} import autograd, gluon, nd

work = "."  # run in the test's directory
start = np.load(os.path.join(work, "start.npz"))

class Twice(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.dense = gluon.nn.Dense(4, in_units=10)
    def hybrid_forward(self, F, x):
        y = F.relu(self.dense(x))
        return y, y

net = Twice(prefix="net_")
net.initialize()
net.dense.weight.set_data(nd.array(start["w"]))
net.dense.bias.set_data(nd.array(start["b"]))
net.hybridize()
schedule = mx.lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.1)
trainer = gluon.Trainer(net.collect_params(), "sgd",
                        {{"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3,
                          "lr_scheduler": schedule}})
rates, seconds = [], []
for step in range(6):
    x = nd.array(start["x%d" % step])
    with autograd.record():
        a, b = net(x)
        loss = (a * a).sum()
    loss.backward()
    rates.append(trainer.learning_rate)
    seconds.append(b.asnumpy().tolist())
    if step == 3:
        net.collect_params().zero_grad()
    trainer.step(4)
np.savez(os.path.join(work, "{name}.npz"), w=net.dense.weight.data().asnumpy(),
         b=net.dense.bias.data().asnumpy(), seconds=np.array(seconds))
json.dump(rates, open(os.path.join(work, "{name}.json"), "w"))
"""


@pytest.mark.interop
def test_equals_mxnet_on_a_script_with_every_fixed_case(mxnet_python, tmp_path):
    from mxnet_interop import run_mxnet

    rng = np.random.default_rng(3)
    start = {"w": rng.normal(size=(4, 10)) * 0.3, "b": rng.normal(size=4) * 0.1}
    start.update({f"x{k}": rng.random((4, 10)) for k in range(6)})
    np.savez(tmp_path / "start.npz", **{k: v.astype(np.float32) for k, v in start.items()})
    run_mxnet(mxnet_python, _MXNET_SCRIPT.format(module="mxnet", name="mxnet"), tmp_path)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        exec(_MXNET_SCRIPT.format(module="symgrad", name="symgrad"), {"__name__": "script"})
    finally:
        os.chdir(cwd)
    theirs, ours = np.load(tmp_path / "mxnet.npz"), np.load(tmp_path / "symgrad.npz")
    for key in ("w", "b", "seconds"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
    rates = [json.load(open(tmp_path / f"{who}.json")) for who in ("mxnet", "symgrad")]
    assert rates[0] == rates[1]
