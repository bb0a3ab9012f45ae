"""``mx.kv``: the local and device stores against MXNet 1.9.1's documented
semantics (and, in the interop tests, against the real MXNet's numbers), 2-bit
compression against its formula, and the distributed store in one process on a
private Dask cluster (several server shards, a value split across them)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad import gluon
from symgrad.kvstore.compression import TwoBitCompression

SHAPE = (2, 3)


def _pulled(kv, key, shape=SHAPE):
    out = mx.nd.zeros(shape)
    kv.pull(key, out=out)
    return out.asnumpy()


# -- the documented local semantics ----------------------------------------------------
def test_create_type_rank_and_unknown_name():
    kv = mx.kv.create("local")
    assert (kv.type, kv.rank, kv.num_workers) == ("local", 0, 1)
    assert mx.kv.create("device").type == "device"
    assert mx.kvstore.create is mx.kv.create
    with pytest.raises(ValueError, match="Unknown KVStore type"):
        mx.kv.create("dist_magic")


def test_push_overwrites_and_sums_the_values_of_a_key():
    kv = mx.kv.create("local")
    kv.init(3, mx.nd.ones(SHAPE))
    np.testing.assert_array_equal(_pulled(kv, 3), np.ones(SHAPE))
    kv.push(3, mx.nd.ones(SHAPE) * 8)
    np.testing.assert_array_equal(_pulled(kv, 3), np.full(SHAPE, 8.0))
    kv.push(3, [mx.nd.ones(SHAPE) * i for i in range(4)])
    np.testing.assert_array_equal(_pulled(kv, 3), np.full(SHAPE, 6.0))
    # one pull into several outputs
    outs = [mx.nd.zeros(SHAPE) for _ in range(3)]
    kv.pull(3, out=outs)
    for out in outs:
        np.testing.assert_array_equal(out.asnumpy(), np.full(SHAPE, 6.0))


def test_lists_of_keys_and_string_keys():
    kv = mx.kv.create("local")
    keys = ["w", "b", "c"]
    kv.init(keys, [mx.nd.ones(SHAPE)] * 3)
    kv.push(keys, [[mx.nd.ones(SHAPE)] * 2, mx.nd.ones(SHAPE) * 3, mx.nd.zeros(SHAPE)])
    outs = [mx.nd.zeros(SHAPE) for _ in keys]
    kv.pull(keys, out=outs)
    assert [o.asnumpy()[0, 0] for o in outs] == [2.0, 3.0, 0.0]
    with pytest.raises(AssertionError, match="inconsistent types of keys"):
        kv.init(["x", 5], [mx.nd.ones(2), mx.nd.ones(2)])


def test_updater_receives_key_merged_push_and_stored_value():
    kv = mx.kv.create("local")
    seen = []

    def update(key, pushed, stored):
        seen.append(key)
        stored += pushed * 2

    kv._set_updater(update)
    kv.init(3, mx.nd.ones(SHAPE))
    kv.push(3, [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE)])
    np.testing.assert_array_equal(_pulled(kv, 3), np.full(SHAPE, 5.0))
    assert seen == [3]


def test_pushpull_in_place_and_broadcast():
    kv = mx.kv.create("local")
    kv.init("g", mx.nd.zeros(SHAPE))
    grads = [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE) * 2]
    kv.pushpull("g", grads)
    for grad in grads:
        np.testing.assert_array_equal(grad.asnumpy(), np.full(SHAPE, 3.0))
    outs = [mx.nd.zeros(SHAPE), mx.nd.zeros(SHAPE)]
    kv.broadcast("p", mx.nd.ones(SHAPE) * 7, out=outs)
    for out in outs:
        np.testing.assert_array_equal(out.asnumpy(), np.full(SHAPE, 7.0))


def test_errors_name_the_key():
    kv = mx.kv.create("local")
    kv.init(3, mx.nd.ones(SHAPE))
    with pytest.raises(mx.MXNetError, match="duplicate init of key 3"):
        kv.init(3, mx.nd.ones(SHAPE))
    with pytest.raises(mx.MXNetError, match="key 9 has not been inited"):
        kv.pull(9, out=mx.nd.zeros(SHAPE))
    with pytest.raises(mx.MXNetError, match="key 'w' has not been inited"):
        kv.push("w", mx.nd.zeros(SHAPE))
    with pytest.raises(mx.MXNetError, match=r"push of key 3: value of shape \(3, 3\)"):
        kv.push(3, mx.nd.ones((3, 3)))
    with pytest.raises(mx.MXNetError, match=r"pull of key 3: output of shape \(6,\)"):
        kv.pull(3, out=mx.nd.zeros((6,)))
    with pytest.raises(Exception, match="not supported for this type of kvstore"):
        kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})


def test_row_sparse_pull_gives_the_rows_asked_for():
    kv = mx.kv.create("local")
    value = np.arange(12, dtype=np.float32).reshape(4, 3)
    kv.init("emb", mx.nd.array(value))
    out = mx.nd.ones((4, 3)) * -1
    kv.row_sparse_pull("emb", out=out, row_ids=mx.nd.array([2, 0, 2]))
    expected = np.zeros((4, 3), np.float32)
    expected[[0, 2]] = value[[0, 2]]
    np.testing.assert_array_equal(out.asnumpy(), expected)


def test_set_optimizer_is_the_optimizers_update_and_states_round_trip(tmp_path):
    kv = mx.kv.create("local")
    kv.set_optimizer(mx.optimizer.create("sgd", learning_rate=0.1, momentum=0.9))
    kv.init(0, mx.nd.ones(SHAPE))
    weight, mom = np.ones(SHAPE), np.zeros(SHAPE)
    for step in range(3):
        grad = np.full(SHAPE, step + 1.0)
        kv.push(0, [mx.nd.array(grad / 2), mx.nd.array(grad / 2)])
        mom = 0.9 * mom - 0.1 * grad
        weight = weight + mom
    np.testing.assert_allclose(_pulled(kv, 0), weight, rtol=1e-6)
    kv.save_optimizer_states(str(tmp_path / "states"))
    other = mx.kv.create("local")
    other.set_optimizer(mx.optimizer.create("sgd", learning_rate=0.1, momentum=0.9))
    other.init(0, mx.nd.array(weight))
    other.load_optimizer_states(str(tmp_path / "states"))
    kv.push(0, mx.nd.ones(SHAPE))
    other.push(0, mx.nd.ones(SHAPE))
    np.testing.assert_allclose(_pulled(other, 0), _pulled(kv, 0), rtol=1e-6)
    with pytest.raises(AssertionError, match="Cannot save states"):
        mx.kv.create("local").save_optimizer_states(str(tmp_path / "none"))


# -- 2-bit compression ---------------------------------------------------------------------
def _two_bit_reference(grads, threshold):
    """The formula: residual += g; send +t where residual >= t, -t where <= -t."""
    residual, sent_all = np.zeros_like(grads[0]), []
    for grad in grads:
        residual = residual + grad
        sent = np.where(
            residual >= threshold, threshold, np.where(residual <= -threshold, -threshold, 0.0)
        )
        residual = residual - sent
        sent_all.append(sent)
    return sent_all, residual


def test_two_bit_quantisation_with_error_feedback():
    rng = np.random.default_rng(0)
    grads = [rng.normal(0, 0.4, 50).astype(np.float32) for _ in range(6)]
    quantizer = TwoBitCompression(0.5)
    expected, residual = _two_bit_reference(grads, np.float32(0.5))
    for grad, want in zip(grads, expected):
        np.testing.assert_allclose(quantizer.quantize("k", 0, grad), want, atol=0)
    np.testing.assert_allclose(quantizer.residual("k"), residual, atol=1e-6)
    # nothing is lost: what was sent plus what is kept is what was pushed
    np.testing.assert_allclose(sum(expected) + residual, sum(grads), atol=1e-5)


def test_device_store_compresses_each_source_with_its_own_residual():
    kv = mx.kv.create("device")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.5})
    kv.init("w", mx.nd.zeros((6,)))
    g = np.array([0.3, 0.6, -0.7, -0.2, 1.5, 0.0], np.float32)
    first, _ = _two_bit_reference([g] * 3, np.float32(0.5))
    second, _ = _two_bit_reference([2 * g] * 3, np.float32(0.5))
    for step in range(3):
        kv.push("w", [mx.nd.array(g), mx.nd.array(2 * g)])
        np.testing.assert_allclose(_pulled(kv, "w", (6,)), first[step] + second[step])
    with pytest.raises(mx.MXNetError, match="Unknown type for gradient compression"):
        kv.set_gradient_compression({"type": "3bit"})


# -- Trainer with a store ------------------------------------------------------------------
def _trained(kvstore, update_on_kvstore):
    rng = np.random.default_rng(1)
    w = gluon.Parameter("w", shape=(4,))
    w.initialize()
    w.set_data(mx.nd.array(rng.normal(size=4)))
    trainer = gluon.Trainer(
        [w],
        "sgd",
        {"learning_rate": 0.1, "momentum": 0.9},
        kvstore=kvstore,
        update_on_kvstore=update_on_kvstore,
    )
    for _ in range(4):
        with mx.autograd.record():
            loss = (w.data() * w.data() * w.data()).sum()
        loss.backward()
        trainer.step(2)
    return trainer, w.data().asnumpy()


def test_trainer_through_a_local_store_equals_no_store():
    _, plain = _trained("device", None)
    on_store, weights = _trained(mx.kv.create("local"), True)
    assert on_store._update_on_kvstore is True
    np.testing.assert_allclose(weights, plain, rtol=1e-6)
    pushpull, weights = _trained(mx.kv.create("local"), False)
    assert pushpull._update_on_kvstore is False
    np.testing.assert_allclose(weights, plain, rtol=1e-6)
    with pytest.raises(AssertionError, match="update_on_kvstore"):
        on_store.update(2)


def test_trainer_states_go_through_the_store(tmp_path):
    trainer, _ = _trained(mx.kv.create("local"), True)
    trainer.save_states(str(tmp_path / "states"))
    states = mx.optimizer.get_updater(mx.optimizer.create("sgd"))
    states.set_states((tmp_path / "states").read_bytes())
    assert isinstance(states.optimizer, mx.optimizer.SGD)  # dumped with the states
    assert set(states.states) == {0}  # the momentum of w
    fresh, _ = _trained(mx.kv.create("local"), True)
    fresh.load_states(str(tmp_path / "states"))
    np.testing.assert_array_equal(
        fresh._kvstore._updater.states[0].asnumpy(), states.states[0].asnumpy()
    )
    assert fresh.optimizer is fresh._kvstore._updater.optimizer


# -- the distributed store, one worker, a private cluster ----------------------------------
@pytest.fixture
def dist_env(monkeypatch):
    """Two server shards and a small split bound, so that big keys are cut."""
    for name in (
        "DASK_SCHEDULER_ADDRESS",
        "SYMGRAD_KVSTORE_RANK",
        "SYMGRAD_KVSTORE_NUM_WORKERS",
        "DMLC_NUM_WORKER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYMGRAD_KVSTORE_NUM_SERVERS", "2")
    monkeypatch.setenv("MXNET_KVSTORE_BIGARRAY_BOUND", "10")
    monkeypatch.setenv("SYMGRAD_KVSTORE_TIMEOUT", "30")


def test_dist_store_in_one_process_matches_local(dist_env, tmp_path):
    kv = mx.kv.create("dist_sync")
    try:
        assert (kv.type, kv.rank, kv.num_workers, kv.num_servers) == ("dist_sync", 0, 1, 2)
        big = np.arange(24, dtype=np.float32).reshape(4, 6)  # above the bound: split
        kv.init(0, mx.nd.ones(SHAPE))
        kv.init("big", mx.nd.array(big))
        kv.push(0, [mx.nd.ones(SHAPE), mx.nd.ones(SHAPE) * 2])
        np.testing.assert_array_equal(_pulled(kv, 0), np.full(SHAPE, 3.0))
        np.testing.assert_array_equal(_pulled(kv, "big", (4, 6)), big)
        with pytest.raises(mx.MXNetError, match="key 7 has not been inited"):
            kv.pull(7, out=mx.nd.zeros(SHAPE))
        with pytest.raises(mx.MXNetError, match=r"push of key 'big': value of shape \(6, 4\)"):
            kv.push("big", mx.nd.zeros((6, 4)))
        with pytest.raises(mx.MXNetError, match="duplicate init of key 0"):
            kv.init(0, mx.nd.ones(SHAPE))
        kv.set_optimizer(mx.optimizer.create("adam", learning_rate=0.01))
        local = mx.kv.create("local")
        local.set_optimizer(mx.optimizer.create("adam", learning_rate=0.01))
        local.init("big", mx.nd.array(big))
        rng = np.random.default_rng(2)
        for _ in range(3):
            grad = mx.nd.array(rng.normal(size=(4, 6)))
            kv.push("big", grad)
            local.push("big", grad)
        np.testing.assert_allclose(
            _pulled(kv, "big", (4, 6)), _pulled(local, "big", (4, 6)), rtol=1e-6
        )
        # the states gathered from both shards are the local store's
        kv.save_optimizer_states(str(tmp_path / "dist"))
        local.save_optimizer_states(str(tmp_path / "local"))
        dist_states = mx.optimizer.get_updater(mx.optimizer.create("adam"))
        dist_states.set_states((tmp_path / "dist").read_bytes())
        local_states = mx.optimizer.get_updater(mx.optimizer.create("adam"))
        local_states.set_states((tmp_path / "local").read_bytes())
        for a, b in zip(dist_states.states["big"], local_states.states["big"]):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
        # and loading them back continues the same trajectory
        kv.load_optimizer_states(str(tmp_path / "local"))
        grad = mx.nd.ones((4, 6))
        kv.push("big", grad)
        local.push("big", grad)
        np.testing.assert_allclose(
            _pulled(kv, "big", (4, 6)), _pulled(local, "big", (4, 6)), rtol=1e-6
        )
        traffic = kv.traffic()
        assert len(traffic) == 2 and all(t["bytes_in"] > 0 for t in traffic)
    finally:
        kv.close()


def test_dist_with_several_workers_needs_a_scheduler(dist_env, monkeypatch):
    monkeypatch.setenv("SYMGRAD_KVSTORE_NUM_WORKERS", "2")
    with pytest.raises(mx.MXNetError, match="needs a Dask scheduler"):
        mx.kv.create("dist_sync")


# -- against real MXNet 1.9.1 ---------------------------------------------------------------
SCRIPT = """
import json, sys
import numpy as np
{imports}
out = {{}}
g = mx.nd.array([0.3, 0.6, -0.7, -0.2, 1.5, 0.0])

kv = mx.kv.create('local')
kv.init([3, 5], [mx.nd.ones((2, 3)), mx.nd.zeros((2, 3))])
kv.push([3, 5], [[mx.nd.ones((2, 3)) * i for i in range(4)], mx.nd.ones((2, 3)) * 2])
a, b = mx.nd.zeros((2, 3)), mx.nd.zeros((2, 3))
kv.pull([3, 5], out=[a, b])
out['aggregate'] = [a.asnumpy().tolist(), b.asnumpy().tolist()]

def update(key, pushed, stored):
    stored += pushed * 2
kv2 = mx.kv.create('local')
kv2._set_updater(update)
kv2.init('w', mx.nd.ones((2, 3)))
kv2.push('w', [mx.nd.ones((2, 3)), mx.nd.ones((2, 3)) * 3])
kv2.pull('w', out=a)
out['updater'] = a.asnumpy().tolist()

kv3 = mx.kv.create('local')
kv3.set_optimizer(mx.optimizer.create('adam', learning_rate=0.05, wd=0.01))
kv3.init(0, mx.nd.array([1.0, -2.0, 0.5]))
w = mx.nd.zeros(3)
for i in range(5):
    kv3.pushpull(0, [mx.nd.array([0.1 * i, -0.3, 0.2]), mx.nd.array([0.05, 0.1, -0.4])], out=w)
out['optimizer'] = w.asnumpy().tolist()

kv4 = mx.kv.create('device')
kv4.set_gradient_compression({{'type': '2bit', 'threshold': 0.5}})
kv4.init('w', mx.nd.zeros((6,)))
steps = []
for s in range(4):
    kv4.push('w', [g, g * 2, g * -1.3])
    o = mx.nd.zeros((6,))
    kv4.pull('w', out=o)
    steps.append(o.asnumpy().tolist())
out['compressed'] = steps
print(json.dumps(out))
"""


@pytest.mark.interop
def test_local_store_numbers_equal_mxnet(mxnet_python, tmp_path):
    theirs = json.loads(
        run_mxnet(mxnet_python, SCRIPT.format(imports="import mxnet as mx"), tmp_path)
        .strip()
        .splitlines()[-1]
    )
    namespace: dict = {}
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(SCRIPT.format(imports="import symgrad as mx"), namespace)
    ours = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert set(ours) == set(theirs)
    for name in theirs:
        np.testing.assert_allclose(
            np.array(ours[name]), np.array(theirs[name]), rtol=1e-5, atol=1e-7, err_msg=name
        )
