"""The distributed KVStore on a Dask LocalCluster: scripts run by
``python -m symgrad.launch -n 2`` (two worker processes, two server processes).

dist_sync training of a small MLP for 20 steps equals one process trained on the
concatenated batches; dist_async converges; the store's methods across workers
follow MXNet's semantics (rank 0's init, sums over workers, 2-bit compression
per worker, the optimizer on the servers, states files); a lost worker is named
in an MXNetError within the timeout and a silent one ends in a timeout error;
the launcher prefixes output with ranks and returns the first failure's status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import symgrad as mx
from symgrad import gluon

ROOT = Path(__file__).resolve().parent.parent


def _launch(
    tmp_path: Path,
    source: str,
    *args: str,
    workers: int = 2,
    timeout: float = 240,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "symgrad.launch", "-n", str(workers), str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(ROOT), "SYMGRAD_KVSTORE_TIMEOUT": "60", **(env or {})},
    )


def _check(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


# -- training -----------------------------------------------------------------------------
MLP = r"""
import json, os, sys
import numpy as np
import symgrad as mx
from symgrad import autograd, gluon

B, STEPS = 8, 20


def build(seed):
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(16, activation="tanh", in_units=5), gluon.nn.Dense(3, in_units=16))
    net.initialize()
    rng = np.random.default_rng(seed)
    for param in net.collect_params().values():
        param.set_data(mx.nd.array(rng.normal(0, 0.5, param.shape)))
    return net


def batches(steps):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps, 2 * B, 5)).astype(np.float32)
    y = (np.argmax(x[:, :, :3], axis=2)).astype(np.float32)
    return x, y


def train(kvstore, rank, workers, steps=STEPS, update_on_kvstore=None, seed=0,
          optimizer="sgd", params=None):
    net = build(seed)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), optimizer,
                            params or {"learning_rate": 0.1, "momentum": 0.9},
                            kvstore=kvstore, update_on_kvstore=update_on_kvstore)
    x, y = batches(steps)
    per = 2 * B // workers
    losses = []
    for step in range(steps):
        data = mx.nd.array(x[step, rank * per:(rank + 1) * per])
        label = mx.nd.array(y[step, rank * per:(rank + 1) * per])
        with autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(2 * B)
        losses.append(float(loss.mean().asscalar()))
    full = loss_fn(net(mx.nd.array(x.reshape(-1, 5))), mx.nd.array(y.reshape(-1)))
    return ([p.data().asnumpy() for p in net.collect_params().values()], losses,
            float(full.mean().asscalar()), trainer)


if __name__ == "__main__":
    out = sys.argv[1]
    kv = mx.kv.create("dist_sync")
    rank, workers = kv.rank, kv.num_workers
    # every rank starts from the same weights, as MXNet needs: the store's init
    # (rank 0's values) happens at the first step, after the first backward
    sync, _, _, trainer = train(kv, rank, workers)
    assert trainer._update_on_kvstore is True
    pushpull, _, _, trainer = train(mx.kv.create("dist_device_sync"), rank, workers,
                                    update_on_kvstore=False)
    assert trainer._update_on_kvstore is False
    adam, _, _, _ = train(mx.kv.create("dist_sync"), rank, workers, optimizer="adam",
                          params={"learning_rate": 0.01})
    np.savez(os.path.join(out, f"rank{rank}.npz"),
             *[a for group in (sync, pushpull, adam) for a in group])
"""


def _single_process_reference() -> list[np.ndarray]:
    namespace: dict = {"__name__": "reference"}
    exec(MLP, namespace)
    train = namespace["train"]
    sync, _, _, _ = train(None, 0, 1)
    adam, _, _, _ = train(None, 0, 1, optimizer="adam", params={"learning_rate": 0.01})
    return sync + sync + adam


@pytest.mark.slow
def test_dist_sync_training_equals_one_process_on_the_concatenated_batches(tmp_path):
    _check(_launch(tmp_path, MLP, str(tmp_path)))
    expected = _single_process_reference()
    for rank in (0, 1):
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            got = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        assert len(got) == len(expected) == 12
        for i, (a, b) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(
                a, b, rtol=1e-4, atol=1e-5, err_msg=f"rank {rank}, array {i}"
            )
        # the reference moved: the check is not of the initial weights
        with np.load(tmp_path / "rank0.npz") as saved:
            assert not np.allclose(
                saved["arr_0"],
                np.random.default_rng(0).normal(0, 0.5, saved["arr_0"].shape),
                atol=1e-3,
            )


ASYNC = (
    MLP.replace('if __name__ == "__main__":', "if False:")
    + r"""
out = sys.argv[1]
kv = mx.kv.create("dist_async")
_, losses, final, trainer = train(kv, kv.rank, kv.num_workers, steps=60,
                                  params={"learning_rate": 0.05})
assert trainer._update_on_kvstore is True
x, y = batches(60)
start = gluon.loss.SoftmaxCrossEntropyLoss()(build(0)(mx.nd.array(x.reshape(-1, 5))),
                                             mx.nd.array(y.reshape(-1)))
start = float(start.mean().asscalar())
kv.barrier()
with open(os.path.join(out, f"rank{kv.rank}.json"), "w") as f:
    json.dump({"start": start, "final": final, "losses": losses}, f)
"""
)


@pytest.mark.slow
def test_dist_async_converges(tmp_path):
    _check(_launch(tmp_path, ASYNC, str(tmp_path)))
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert np.isfinite(result["final"])
        assert result["final"] < 0.5 * result["start"], result


# -- the store's methods across two workers ---------------------------------------------------
METHODS = r"""
import json, os, sys
import numpy as np
import symgrad as mx

out, S = sys.argv[1], (2, 3)
kv = mx.kv.create("dist_sync")
r = kv.rank
res = {"type": kv.type, "rank": r, "num_workers": kv.num_workers, "servers": kv.num_servers}
o = mx.nd.zeros(S)
kv.init(3, mx.nd.ones(S) * (r + 1))                 # rank 0's value is the one kept
kv.pull(3, out=o); res["init"] = o.asnumpy().tolist()
kv.push(3, [mx.nd.ones(S) * (r + 1), mx.nd.ones(S)])  # summed here, then over workers
kv.pull(3, out=o); res["push"] = o.asnumpy().tolist()
grads = [mx.nd.ones(S) * r, mx.nd.ones(S) * 2]
kv.pushpull(3, grads); res["pushpull"] = [g.asnumpy().tolist() for g in grads]
kv.init("big", mx.nd.array(np.arange(24.0).reshape(4, 6)))   # split across the servers
kv.push("big", mx.nd.ones((4, 6)) * (r + 1))
big = mx.nd.zeros((4, 6)); kv.pull("big", out=big); res["big"] = big.asnumpy().tolist()
outs = [mx.nd.zeros(S), mx.nd.zeros(S)]
kv.broadcast("b", mx.nd.ones(S) * (r + 7), out=outs); res["broadcast"] = outs[1].asnumpy().tolist()
errors = []
for call in (lambda: kv.pull("nokey", out=o), lambda: kv.push(3, mx.nd.ones((3, 2))),
             lambda: kv.push(3, mx.nd.ones(S, dtype="float64")),
             lambda: kv.init(3, mx.nd.ones(S))):
    try:
        call()
    except mx.MXNetError as err:
        errors.append(str(err))
res["errors"] = errors
kv.barrier()

c = mx.kv.create("dist_sync")
c.set_gradient_compression({"type": "2bit", "threshold": 0.5})
c.init("c", mx.nd.zeros((6,)))
g = np.array([0.3, 0.6, -0.7, -0.2, 1.5, 0.0], np.float32) * (r + 1)
steps = []
for s in range(3):
    c.push("c", mx.nd.array(g))
    v = mx.nd.zeros((6,)); c.pull("c", out=v); steps.append(v.asnumpy().tolist())
res["compressed"] = steps
res["compressed_bytes"] = c.stats["bytes_pushed"]

u = mx.kv.create("dist_sync")
u.set_optimizer(mx.optimizer.create("sgd", learning_rate=0.1, momentum=0.9))
u.init(0, mx.nd.ones((4,)))
w = mx.nd.zeros((4,))
for s in range(3):
    u.push(0, mx.nd.array(np.arange(4.0, dtype=np.float32) * (r + 1) + s))
u.pull(0, out=w); res["optimizer"] = w.asnumpy().tolist()
u.save_optimizer_states(os.path.join(out, f"states{r}"))
updater = mx.optimizer.get_updater(mx.optimizer.create("sgd"))
updater.set_states(open(os.path.join(out, f"states{r}"), "rb").read())
res["momentum"] = updater.states[0].asnumpy().tolist()
with open(os.path.join(out, f"rank{r}.json"), "w") as f:
    json.dump(res, f)
"""


def _two_bit(grads, threshold=0.5):
    threshold = np.float32(threshold)
    residual, sent = np.zeros_like(grads[0]), []
    for grad in grads:
        residual = residual + grad
        q = np.where(
            residual >= threshold, threshold, np.where(residual <= -threshold, -threshold, 0.0)
        )
        residual = residual - q
        sent.append(q)
    return sent


@pytest.mark.slow
def test_store_methods_across_two_workers(tmp_path):
    done = _launch(tmp_path, METHODS, str(tmp_path), env={"MXNET_KVSTORE_BIGARRAY_BOUND": "10"})
    _check(done)
    g = np.array([0.3, 0.6, -0.7, -0.2, 1.5, 0.0], np.float32)
    compressed = np.add(_two_bit([g] * 3), _two_bit([2 * g] * 3))
    weight, mom = np.ones(4), np.zeros(4)
    for s in range(3):
        mom = 0.9 * mom - 0.1 * (np.arange(4.0) * 3 + 2 * s)
        weight = weight + mom
    for rank in (0, 1):
        res = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert (res["type"], res["rank"], res["num_workers"], res["servers"]) == (
            "dist_sync",
            rank,
            2,
            2,
        )
        np.testing.assert_array_equal(res["init"], np.ones((2, 3)))
        np.testing.assert_array_equal(res["push"], np.full((2, 3), 5.0))
        for grad in res["pushpull"]:
            np.testing.assert_array_equal(grad, np.full((2, 3), 5.0))  # 0+2 + 1+2
        np.testing.assert_array_equal(res["big"], np.full((4, 6), 3.0))
        np.testing.assert_array_equal(res["broadcast"], np.full((2, 3), 7.0))
        errors = res["errors"]
        assert "key 'nokey' has not been inited" in errors[0]
        assert "push of key 3: value of shape (3, 2)" in errors[1]
        assert "push of key 3: value of dtype float64" in errors[2]
        assert "duplicate init of key 3" in errors[3]
        np.testing.assert_allclose(res["compressed"], compressed)
        assert res["compressed_bytes"] == 3 * 2  # 6 values in 2 bytes of 2-bit codes
        np.testing.assert_allclose(res["optimizer"], weight, rtol=1e-6)
        np.testing.assert_allclose(res["momentum"], mom, rtol=1e-6)
    assert "[0] " in done.stdout or done.stdout == ""


# -- faults -------------------------------------------------------------------------------------
FAULTS = r"""
import json, os, sys, time
import symgrad as mx

out = sys.argv[1]
kv = mx.kv.create("dist_sync")
kv.init(0, mx.nd.zeros((3,)))
o = mx.nd.zeros((3,))
result = {}
if kv.rank == 1:
    time.sleep(float(os.environ["SYMGRAD_KVSTORE_TIMEOUT"]) + 2)  # alive, silent
    kv.barrier()
    print("rank 1 leaves without a word", flush=True)
    os._exit(7)
kv.push(0, mx.nd.ones((3,)))
start = time.monotonic()
try:
    kv.pull(0, out=o)
except mx.MXNetError as err:
    result["timeout"] = [str(err), time.monotonic() - start]
kv.barrier()
start = time.monotonic()
try:
    kv.pull(0, out=o)
except mx.MXNetError as err:
    result["lost"] = [str(err), time.monotonic() - start]
with open(os.path.join(out, "rank0.json"), "w") as f:
    json.dump(result, f)
"""


@pytest.mark.slow
def test_a_silent_worker_times_out_and_a_lost_one_is_named(tmp_path):
    timeout = 4.0
    started = time.monotonic()
    done = _launch(tmp_path, FAULTS, str(tmp_path), env={"SYMGRAD_KVSTORE_TIMEOUT": str(timeout)})
    assert time.monotonic() - started < 120
    assert done.returncode == 7, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[1] rank 1 leaves without a word" in done.stdout
    assert "[launch] worker 1 exited with status 7" in done.stdout
    result = json.loads((tmp_path / "rank0.json").read_text())
    message, waited = result["timeout"]
    assert "timed out after 4 s waiting for keys 0 (push 1)" in message and "[1]" in message
    assert timeout - 0.5 < waited < timeout + 10
    message, waited = result["lost"]
    assert "KVStore worker rank 1 was lost" in message
    assert waited < timeout + 5


# -- the launcher --------------------------------------------------------------------------------
def test_launcher_prefixes_ranks_and_returns_the_first_failure(tmp_path):
    source = (
        "import os, sys, time\n"
        "rank = int(os.environ['SYMGRAD_KVSTORE_RANK'])\n"
        "print('hello from', rank, 'of', os.environ['SYMGRAD_KVSTORE_NUM_WORKERS'])\n"
        "time.sleep(0.5 * rank)\n"
        "sys.exit(3 + rank if rank else 0)\n"
    )
    # a scheduler address is given, so no cluster is started (the script makes no store)
    done = _launch(
        tmp_path, source, workers=3, timeout=60, env={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"}
    )
    assert done.returncode == 4, done.stdout + done.stderr
    for rank in range(3):
        assert f"[{rank}] hello from {rank} of 3" in done.stdout


@pytest.mark.slow
def test_example_runs_with_one_and_two_workers(tmp_path):
    example = (ROOT / "examples" / "train_distributed.py").read_text()
    for workers in (1, 2):
        done = _launch(tmp_path, example, "--epochs", "2", "--samples", "2048", workers=workers)
        _check(done)
        assert "[0] throughput:" in done.stdout
        accuracy = float(done.stdout.split("test accuracy: ")[1].split()[0])
        assert accuracy > 0.9, done.stdout


def test_trainer_refuses_async_without_update_on_kvstore():
    class FakeAsync(mx.kv.KVStore):
        pass

    w = gluon.Parameter("w", shape=(2,))
    w.initialize()
    trainer = gluon.Trainer([w], "sgd", kvstore=FakeAsync("dist_async"), update_on_kvstore=False)
    with mx.autograd.record():
        loss = (w.data() * 2).sum()
    loss.backward()
    with pytest.raises(ValueError, match="update_on_kvstore=True when training in async"):
        trainer.step(1)


SHARE = r"""
import sys
import symgrad as mx
kv = mx.kv.create("dist_sync")
kv.init("x", mx.nd.zeros((3,)))
kv.push("x", mx.nd.ones((3,)) * (kv.rank + 1))
out = mx.nd.zeros((3,))
kv.pull("x", out=out)
print("rank", kv.rank, "of", kv.num_workers, "sum", out.asnumpy().tolist())
"""


@pytest.mark.slow
def test_launchers_on_two_machines_share_one_scheduler(tmp_path):
    """Each "machine" runs its own launcher for one of the two ranks, against a
    scheduler and server workers started apart (here: in this process)."""
    from distributed import LocalCluster

    script = tmp_path / "share.py"
    script.write_text(SHARE)
    # threads in this process, but reached over TCP like machines apart
    with LocalCluster(
        n_workers=2,
        processes=False,
        threads_per_worker=1,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        launchers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "symgrad.launch",
                    "-n",
                    "1",
                    "--scheduler",
                    cluster.scheduler_address,
                    "--job",
                    "two-machines",
                    "--world-size",
                    "2",
                    "--first-rank",
                    str(rank),
                    str(script),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=str(tmp_path),
                env={**os.environ, "PYTHONPATH": str(ROOT), "SYMGRAD_KVSTORE_TIMEOUT": "60"},
            )
            for rank in (0, 1)
        ]
        outputs = [launcher.communicate(timeout=180)[0] for launcher in launchers]
    for rank, (launcher, output) in enumerate(zip(launchers, outputs)):
        assert launcher.returncode == 0, output
        assert f"[{rank}] rank {rank} of 2 sum [3.0, 3.0, 3.0]" in output
