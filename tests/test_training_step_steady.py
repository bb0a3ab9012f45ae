"""The fused training step's steady state (symgrad.training_step): a step that
repeats the step before is foreseen without running the optimizer, and its
results become the arrays' buffers without a copy. Each script runs fused and
unfused (``_both``): the parameters must come out bit-identical."""

import numpy as np
from test_training_step_adversarial import _both, _data, _loop, _train

from symgrad import autograd
from symgrad import training_step as ts

STEPS = 8


def _counting_collect(monkeypatch):
    counts = []
    real = ts.Capture.collect

    def collect(self, updater, indices, grads, weights):
        counts.append(self.dry)
        return real(self, updater, indices, grads, weights)

    monkeypatch.setattr(ts.Capture, "collect", collect)
    return counts


def test_a_repeating_sgd_step_runs_the_optimizer_only_until_it_is_steady(monkeypatch):
    counts = _counting_collect(monkeypatch)
    _, commits, _ = _train(True, monkeypatch, _loop(steps=STEPS))
    assert commits == [True] * (STEPS - 1)
    # step 0 learns; the backward of step 1 foresees by running the updater (dry)
    # and step 1 runs it to compare; from step 2 on the calls are known to repeat
    # (the same arrays, rates and hyperparameters): the updater runs no more
    assert counts == [False, True, False]


def _optimizer_counters(trainer):
    optimizer = trainer._optimizer
    return optimizer.num_update, dict(optimizer._index_update_count)


def test_steady_steps_count_the_updates_as_the_optimizer_does(monkeypatch):
    def between(net, trainer, step):
        return np.array(_optimizer_counters(trainer)[0])

    commits = _both(monkeypatch, _loop(steps=STEPS, between=between))
    assert commits == [True] * (STEPS - 1)

    def last(net, trainer, loss):
        _loop(steps=STEPS)(net, trainer, loss)
        return [np.array(sorted(_optimizer_counters(trainer)[1].items()))]

    assert _both(monkeypatch, last) == [True] * (STEPS - 1)


def _changed_at(step_changed, change):
    def between(net, trainer, step):
        if step == step_changed:
            change(net, trainer)

    return _loop(steps=STEPS, between=between)


def test_a_parameter_lr_mult_changed_in_a_steady_run_is_used(monkeypatch):
    def change(net, trainer):
        list(net.collect_params().values())[0].lr_mult = 0.25

    commits = _both(monkeypatch, _changed_at(5, change))
    assert commits[4] is False  # computed ahead with the old multiplier
    assert commits[5:] == [True] * (STEPS - 6)


def test_optimizer_hyperparameters_changed_in_a_steady_run_are_used(monkeypatch):
    for name, value in (("momentum", 0.5), ("wd", 0.01), ("clip_gradient", 1e-3)):

        def change(net, trainer, name=name, value=value):
            setattr(trainer._optimizer, name, value)

        commits = _both(monkeypatch, _changed_at(5, change))
        assert commits[4] is False, name
        assert commits[5:] == [True] * (STEPS - 6), name


def test_a_state_replaced_in_a_steady_run_is_the_one_updated(monkeypatch):
    def change(net, trainer):
        updater = trainer._updaters[0]
        for index, state in list(updater.states.items()):
            updater.states[index] = state.copy()

    commits = _both(monkeypatch, _changed_at(5, change))
    assert commits[4] is False


def test_a_learning_rate_changed_between_steps_is_not_foreseen_wrongly(monkeypatch):
    def loop(net, trainer, loss):
        for step in range(STEPS):
            X, y = _data(step)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            trainer.step(8)
            if step == 4:
                trainer.set_learning_rate(0.05)

    commits = _both(monkeypatch, loop)
    # the backward after the change foresaw the old rate: that step runs unfused
    # and is learnt anew; the steps after are fused again
    assert commits[4] is False
    assert commits[5:] == [True] * (STEPS - 6)
    assert commits[:4] == [True] * 4


def test_a_changed_rate_between_backward_and_step_is_not_committed(monkeypatch):
    def between(net, trainer, step):
        if step == 5:
            trainer.set_learning_rate(0.02)

    commits = _both(monkeypatch, _loop(steps=STEPS, between=between))
    assert commits[4] is False  # the step of iteration 5 (step 0 learns)


def test_steady_steps_swap_buffers_instead_of_copying(compiled, monkeypatch):
    buffers = []

    def between(net, trainer, step):
        weight = next(iter(net.collect_params().values())).data()
        buffers.append(weight._data)

    _train(True, monkeypatch, _loop(steps=STEPS, between=between))
    # after the first fused steps, two buffers alternate (each step's new weights
    # are computed into the one the weight does not hold)
    late = {id(b) for b in buffers[2:]}
    assert len(late) == 2
    assert all(buffers[k] is not buffers[k + 1] for k in range(2, STEPS - 1))


def test_an_array_handed_out_through_numpy_keeps_its_buffer(compiled, monkeypatch):
    # np.asarray(weight) shares its memory: the weight must keep that buffer, and
    # the numpy array must see every update, as with unfused steps
    seen = {}

    def between(net, trainer, step):
        weight = next(iter(net.collect_params().values())).data()
        if step == 0:
            seen["view"] = np.asarray(weight)
        seen["last"] = weight

    def loop(net, trainer, loss):
        _loop(steps=STEPS, between=between)(net, trainer, loss)
        return [seen["view"].copy()]

    commits = _both(monkeypatch, loop)
    assert commits == [True] * (STEPS - 1)
    np.testing.assert_array_equal(seen["view"], seen["last"].asnumpy())
    assert seen["last"]._data is seen["view"]


def test_a_buffer_that_is_a_view_is_copied_into_not_swapped():
    # an array whose buffer is a view of a bigger one: swapping it out would hand
    # the bigger array's memory to the step's next program
    from symgrad import nd

    whole = np.zeros(6, np.float32)
    array = nd.NDArray(whole[:3])
    fresh = np.arange(3, dtype=np.float32)
    kept = array._write_swapping(fresh)
    assert kept is fresh and array._data.base is whole
    np.testing.assert_array_equal(whole, [0, 1, 2, 0, 0, 0])


def test_a_rate_and_multipliers_changed_to_the_same_products_run_the_updater(monkeypatch):
    # the steady step compares SGD's rate, decay and the multipliers apart (not
    # their products): changed together so that every product is the same, the
    # updater runs once to see the calls (equal to those foreseen: committed)
    counts = _counting_collect(monkeypatch)

    def change(net, trainer):
        trainer.set_learning_rate(trainer.learning_rate * 2)
        for param in net.collect_params().values():
            param.lr_mult = 0.5

    commits = _both(monkeypatch, _changed_at(5, change))
    assert commits == [True] * (STEPS - 1)
    counts.clear()
    _train(True, monkeypatch, _changed_at(5, change))
    # learn, foresee once, compare once; after the change the updater runs
    # again (not dry), then the steps are steady again
    assert counts == [False, True, False, False]


def test_a_parameter_replaced_with_set_data_in_a_steady_run_is_updated(monkeypatch):
    def change(net, trainer):
        param = list(net.collect_params().values())[0]
        param.set_data(param.data() * 0.5)

    commits = _both(monkeypatch, _changed_at(5, change))
    assert commits[4] is False  # the weights were written after the step was computed
    assert commits[5:] == [True] * (STEPS - 6)


def test_a_new_batch_size_in_a_steady_run_is_fused_anew(monkeypatch):
    def loop(net, trainer, loss):
        for step in range(STEPS):
            batch = 8 if step < 5 else 6
            X, y = _data(step, "float32", batch)
            with autograd.record():
                L = loss(net(X), y)
            L.backward()
            trainer.step(batch)

    commits = _both(monkeypatch, loop)
    assert commits[:4] == [True] * 4
    assert commits[-1] is True  # steady again at the new shapes
