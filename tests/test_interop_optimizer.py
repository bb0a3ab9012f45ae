"""symgrad's optimizers, update ops, schedules and states files against real MXNet
1.9.1 (the interop virtualenv): the same initial weights and gradients, 20
updates, the same numbers; states files written by either read by the other."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx

pytestmark = pytest.mark.interop

STEPS = 20
SHAPES = [(3, 4), (4,)]
NAMES = {0: "fc_weight", 1: "fc_bias"}  # idx2name: MXNet's default wd_mult 0 for biases

# (case name, optimizer, its arguments, dtype); every case runs 20 updates of two
# parameters with the same gradients in both libraries
CASES = [
    ("sgd", "sgd", {"learning_rate": 0.1}, "float32"),
    (
        "sgd_wd_clip",
        "sgd",
        {"learning_rate": 0.1, "wd": 0.01, "clip_gradient": 0.5, "rescale_grad": 0.5},
        "float32",
    ),
    ("sgd_mom", "sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3}, "float32"),
    (
        "sgd_mom_names",
        "sgd",
        {"learning_rate": 0.05, "momentum": 0.9, "wd": 0.1, "param_idx2name": NAMES},
        "float32",
    ),
    ("sgd_mp", "sgd", {"learning_rate": 0.1, "wd": 0.01, "multi_precision": True}, "float16"),
    (
        "sgd_mom_mp",
        "sgd",
        {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3, "multi_precision": True},
        "float16",
    ),
    ("sgd_fp16", "sgd", {"learning_rate": 0.1, "momentum": 0.9}, "float16"),
    (
        "nag",
        "nag",
        {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3, "clip_gradient": 1.0},
        "float32",
    ),
    ("nag_plain", "nag", {"learning_rate": 0.05}, "float32"),
    (
        "nag_mp",
        "nag",
        {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3, "multi_precision": True},
        "float16",
    ),
    ("adam", "adam", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    (
        "adam_clip",
        "adam",
        {
            "learning_rate": 0.01,
            "clip_gradient": 0.3,
            "rescale_grad": 2.0,
            "beta1": 0.8,
            "beta2": 0.99,
        },
        "float32",
    ),
    ("adam_mp", "adam", {"learning_rate": 0.01, "multi_precision": True}, "float16"),
    ("adamw", "adamw", {"learning_rate": 0.01, "wd": 0.05}, "float32"),
    ("adagrad", "adagrad", {"learning_rate": 0.1, "wd": 1e-3, "clip_gradient": 1.0}, "float32"),
    ("adadelta", "adadelta", {"wd": 1e-3, "rho": 0.8}, "float32"),
    ("adamax", "adamax", {"wd": 1e-3, "clip_gradient": 1.5}, "float32"),
    ("nadam", "nadam", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    ("rmsprop", "rmsprop", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    (
        "rmsprop_clip",
        "rmsprop",
        {"learning_rate": 0.01, "clip_gradient": 0.5, "clip_weights": 0.8},
        "float32",
    ),
    (
        "rmsprop_centered",
        "rmsprop",
        {"learning_rate": 0.01, "centered": True, "wd": 1e-3},
        "float32",
    ),
    ("ftrl", "ftrl", {"learning_rate": 0.1, "lamda1": 0.05, "wd": 1e-3}, "float32"),
    ("signum", "signum", {"learning_rate": 0.01, "wd": 1e-3, "wd_lh": 0.01}, "float32"),
    ("signsgd", "signum", {"learning_rate": 0.01, "momentum": 0.0, "wd": 1e-3}, "float32"),
    ("lamb", "lamb", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    (
        "lamb_bounds",
        "lamb",
        {
            "learning_rate": 0.01,
            "lower_bound": 0.5,
            "upper_bound": 2.0,
            "bias_correction": False,
            "clip_gradient": 1.0,
        },
        "float32",
    ),
    ("dcasgd", "dcasgd", {"learning_rate": 0.05, "wd": 1e-3, "lamda": 0.1}, "float32"),
    (
        "sgd_factor",
        "sgd",
        {
            "learning_rate": 0.1,
            "momentum": 0.5,
            "lr_scheduler": ("FactorScheduler", {"step": 3, "factor": 0.7}),
        },
        "float32",
    ),
]


MXNET_UPDATES = r"""
import json, math, sys
import numpy as np
import mxnet as mx

cases = json.load(open("cases.json"))
data = np.load("data.npz")
steps, count = int(data["steps"]), int(data["count"])
results = {}


def adamw_updater(kwargs):
    # MXNet 1.9.1 has the op (contrib) but no AdamW optimizer: the same loop by hand
    states, t = {}, {}
    lr, wd = kwargs["learning_rate"], kwargs.get("wd", 0.0)

    def update(i, grad, weight):
        if i not in states:
            states[i] = (mx.nd.zeros(weight.shape), mx.nd.zeros(weight.shape))
            t[i] = 0
        t[i] += 1
        step = lr * math.sqrt(1 - 0.999 ** t[i]) / (1 - 0.9 ** t[i])
        mx.nd.contrib.adamw_update(weight, grad, states[i][0], states[i][1],
                                   mx.nd.array([1.0]), out=weight, lr=1.0, eta=step, wd=wd,
                                   epsilon=1e-6)
    return update


for name, opt, kwargs, dtype in cases:
    kwargs = dict(kwargs)
    if "param_idx2name" in kwargs:
        kwargs["param_idx2name"] = {int(k): v for k, v in kwargs["param_idx2name"].items()}
    if "lr_scheduler" in kwargs:
        kind, args = kwargs["lr_scheduler"]
        kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, kind)(**args)
    if opt == "adamw":
        updater = adamw_updater(kwargs)
    else:
        updater = mx.optimizer.get_updater(mx.optimizer.create(opt, **kwargs))
    weights = [mx.nd.array(data["w%d" % i], dtype=dtype) for i in range(count)]
    for s in range(steps):
        for i in range(count):
            updater(i, mx.nd.array(data["g%d_%d" % (s, i)], dtype=dtype), weights[i])
        for i in range(count):
            results["%s_%d_%d" % (name, s, i)] = weights[i].asnumpy()
np.savez("mxnet_out.npz", **results)
"""


def _data(steps: int = STEPS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(15)
    data = {f"w{i}": rng.uniform(-1, 1, shape).astype(np.float32) for i, shape in enumerate(SHAPES)}
    for s in range(steps):
        for i, shape in enumerate(SHAPES):
            data[f"g{s}_{i}"] = rng.normal(0, 1, shape).astype(np.float32)
    return data


def _symgrad_updates(cases, data, steps: int = STEPS) -> dict[str, np.ndarray]:
    results = {}
    for name, opt, kwargs, dtype in cases:
        kwargs = dict(kwargs)
        if "lr_scheduler" in kwargs:
            kind, args = kwargs["lr_scheduler"]
            kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, kind)(**args)
        updater = mx.optimizer.get_updater(mx.optimizer.create(opt, **kwargs))
        weights = [mx.nd.array(data[f"w{i}"], dtype=dtype) for i in range(len(SHAPES))]
        for s in range(steps):
            for i in range(len(SHAPES)):
                updater(i, mx.nd.array(data[f"g{s}_{i}"], dtype=dtype), weights[i])
            for i in range(len(SHAPES)):
                results[f"{name}_{s}_{i}"] = weights[i].asnumpy()
    return results


@pytest.fixture(scope="module")
def mxnet_updates(mxnet_python, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("optimizers")
    data = _data()
    np.savez(workdir / "data.npz", steps=STEPS, count=len(SHAPES), **data)
    (workdir / "cases.json").write_text(json.dumps(CASES))
    run_mxnet(mxnet_python, MXNET_UPDATES, workdir)
    with np.load(workdir / "mxnet_out.npz") as out:
        theirs = dict(out)
    return data, theirs


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_optimizer_matches_mxnet_over_20_steps(case, mxnet_updates):
    data, theirs = mxnet_updates
    ours = _symgrad_updates([case], data)
    name, _, _, dtype = case
    tolerance = {"float16": (2e-3, 2e-3), "float32": (2e-5, 2e-6)}[dtype]
    for s in range(STEPS):
        for i in range(len(SHAPES)):
            key = f"{name}_{s}_{i}"
            assert ours[key].dtype == theirs[key].dtype, key
            np.testing.assert_allclose(
                ours[key].astype(np.float64),
                theirs[key].astype(np.float64),
                *tolerance,
                err_msg=f"{key}: step {s + 1}, parameter {i}",
            )


# ---------------------------------------------------------------------------
# the update ops called directly (new weight and the states they update)
# ---------------------------------------------------------------------------

# (op, number of weight-shaped inputs, which of them are > 0, attrs, dtype)
OP_CASES = [
    (
        "sgd_update",
        2,
        (),
        {"lr": 0.1, "wd": 0.01, "clip_gradient": 0.5, "rescale_grad": 0.7},
        "float32",
    ),
    ("sgd_mom_update", 3, (), {"lr": 0.1, "momentum": 0.9, "wd": 0.01}, "float32"),
    (
        "nag_mom_update",
        3,
        (),
        {"lr": 0.1, "momentum": 0.9, "wd": 0.01, "clip_gradient": 0.6},
        "float32",
    ),
    (
        "adam_update",
        4,
        (3,),
        {"lr": 0.01, "wd": 0.1, "clip_gradient": 0.4, "rescale_grad": 1.5},
        "float32",
    ),
    (
        "rmsprop_update",
        3,
        (2,),
        {"lr": 0.01, "wd": 0.01, "clip_weights": 0.5, "gamma1": 0.8},
        "float32",
    ),
    ("rmspropalex_update", 5, (2,), {"lr": 0.01, "wd": 0.01, "gamma2": 0.7}, "float32"),
    ("ftrl_update", 4, (3,), {"lr": 0.1, "lamda1": 0.2, "wd": 0.01, "beta": 0.5}, "float32"),
    ("signsgd_update", 2, (), {"lr": 0.1, "wd": 0.01}, "float32"),
    ("signum_update", 3, (), {"lr": 0.1, "momentum": 0.9, "wd": 0.01, "wd_lh": 0.05}, "float32"),
    ("lamb_update_phase1", 4, (3,), {"t": 3, "wd": 0.01, "clip_gradient": 0.5}, "float32"),
    ("mp_sgd_update", 3, (), {"lr": 0.1, "wd": 0.01, "rescale_grad": 0.5}, "float16"),
    ("mp_sgd_mom_update", 4, (), {"lr": 0.1, "momentum": 0.9, "wd": 0.01}, "float16"),
    (
        "mp_nag_mom_update",
        4,
        (),
        {"lr": 0.1, "momentum": 0.9, "wd": 0.01, "clip_gradient": 0.8},
        "float16",
    ),
]

MXNET_OPS = r"""
import json
import numpy as np
import mxnet as mx

cases = json.load(open("op_cases.json"))
data = np.load("op_data.npz")
results = {}
for name, count, positive, attrs, dtype in cases:
    arrays = [mx.nd.array(data["%s_%d" % (name, i)], dtype=data["%s_%d" % (name, i)].dtype)
              for i in range(count)]
    out = getattr(mx.nd, name)(*arrays, **attrs)
    results[name + "_out"] = out.asnumpy()
    for i in range(count):
        results["%s_%d" % (name, i)] = arrays[i].asnumpy()
g = mx.nd.array(data["adamw_1"])
for scale in (0.5, float("inf")):
    arrays = [mx.nd.array(data["adamw_%d" % i]) for i in range(4)]
    # with out=weight, as optimizers call it (a skipped update leaves out unwritten)
    mx.nd.contrib.adamw_update(*arrays, mx.nd.array([scale]), out=arrays[0], lr=0.01,
                               eta=0.5, wd=0.1, clip_gradient=0.3)
    results["adamw_%s_out" % scale] = arrays[0].asnumpy()
    results["adamw_%s_mean" % scale] = arrays[2].asnumpy()
for r1, r2, bounds in ((1.5, 0.7, {}), (1.5, 0.7, {"lower_bound": 2.0}),
                       (1.5, 0.7, {"upper_bound": 1.0}), (0.0, 0.7, {})):
    out = mx.nd.lamb_update_phase2(mx.nd.array(data["adamw_0"]), g, mx.nd.array([r1]),
                                   mx.nd.array([r2]), lr=0.1, **bounds)
    results["lamb2_%s_%s_%s" % (r1, r2, sorted(bounds.items()))] = out.asnumpy()
np.savez("op_out.npz", **results)
"""


def _op_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(16)
    data = {}
    for name, count, positive, _, dtype in OP_CASES:
        for i in range(count):
            values = rng.uniform(0.1, 1, (5, 6)) if i in positive else rng.normal(0, 1, (5, 6))
            # the mp ops: float16 weight and grad, float32 master copy and momentum
            wide = dtype == "float16" and i >= 2
            data[f"{name}_{i}"] = values.astype(np.float32 if wide else dtype)
    for i in range(4):
        data[f"adamw_{i}"] = (
            rng.uniform(0.1, 1, (5, 6)).astype(np.float32)
            if i == 3
            else rng.normal(0, 1, (5, 6)).astype(np.float32)
        )
    return data


@pytest.fixture(scope="module")
def mxnet_ops(mxnet_python, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("update_ops")
    data = _op_data()
    np.savez(workdir / "op_data.npz", **data)
    (workdir / "op_cases.json").write_text(json.dumps(OP_CASES))
    run_mxnet(mxnet_python, MXNET_OPS, workdir)
    with np.load(workdir / "op_out.npz") as out:
        return data, dict(out)


def _close(ours, theirs, what, dtype="float32", steps=1):
    # float32 rounding differs by an ulp here and there; over several steps the
    # differences grow a little
    tolerance = (1e-3, 1e-3) if dtype == "float16" else (1e-6 * steps, 1e-7 * steps)
    assert np.asarray(ours).dtype == theirs.dtype, what
    np.testing.assert_allclose(
        np.asarray(ours, np.float64), theirs.astype(np.float64), *tolerance, err_msg=what
    )


@pytest.mark.parametrize("case", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_update_op_matches_mxnet(case, mxnet_ops):
    data, theirs = mxnet_ops
    name, count, _, attrs, dtype = case
    arrays = [
        mx.nd.array(data[f"{name}_{i}"], dtype=data[f"{name}_{i}"].dtype) for i in range(count)
    ]
    out = getattr(mx.nd, name)(*arrays, **attrs)
    _close(out.asnumpy(), theirs[f"{name}_out"], f"{name}: result", dtype)
    for i in range(count):  # the states MXNet updates in place, and the inputs it keeps
        _close(arrays[i].asnumpy(), theirs[f"{name}_{i}"], f"{name}: input {i}", dtype)


@pytest.mark.parametrize("scale", [0.5, float("inf")])
def test_adamw_update_matches_mxnet_contrib(scale, mxnet_ops):
    data, theirs = mxnet_ops
    arrays = [mx.nd.array(data[f"adamw_{i}"]) for i in range(4)]
    mx.nd.adamw_update(
        *arrays, mx.nd.array([scale]), out=arrays[0], lr=0.01, eta=0.5, wd=0.1, clip_gradient=0.3
    )
    _close(arrays[0].asnumpy(), theirs[f"adamw_{scale}_out"], "adamw_update: result")
    _close(arrays[2].asnumpy(), theirs[f"adamw_{scale}_mean"], "adamw_update: mean")


@pytest.mark.parametrize(
    "r1, r2, bounds",
    [
        (1.5, 0.7, {}),
        (1.5, 0.7, {"lower_bound": 2.0}),
        (1.5, 0.7, {"upper_bound": 1.0}),
        (0.0, 0.7, {}),
    ],
)
def test_lamb_phase2_matches_mxnet(r1, r2, bounds, mxnet_ops):
    data, theirs = mxnet_ops
    out = mx.nd.lamb_update_phase2(
        mx.nd.array(data["adamw_0"]),
        mx.nd.array(data["adamw_1"]),
        mx.nd.array([r1]),
        mx.nd.array([r2]),
        lr=0.1,
        **bounds,
    )
    _close(out.asnumpy(), theirs[f"lamb2_{r1}_{r2}_{sorted(bounds.items())}"], "phase 2")


# ---------------------------------------------------------------------------
# learning-rate schedules
# ---------------------------------------------------------------------------

SCHEDULES = [
    ("FactorScheduler", {"step": 3, "factor": 0.5, "base_lr": 1.0}),
    ("FactorScheduler", {"step": 2, "factor": 0.1, "stop_factor_lr": 1e-3, "base_lr": 1.0}),
    (
        "FactorScheduler",
        {"step": 4, "factor": 0.9, "base_lr": 0.5, "warmup_steps": 5, "warmup_begin_lr": 0.1},
    ),
    ("MultiFactorScheduler", {"step": [3, 7, 12], "factor": 0.5, "base_lr": 0.2}),
    (
        "MultiFactorScheduler",
        {
            "step": [5, 9],
            "factor": 0.3,
            "base_lr": 0.2,
            "warmup_steps": 4,
            "warmup_mode": "constant",
            "warmup_begin_lr": 0.05,
        },
    ),
    ("PolyScheduler", {"max_update": 15, "base_lr": 0.3, "pwr": 2}),
    (
        "PolyScheduler",
        {"max_update": 15, "base_lr": 0.3, "pwr": 1.5, "final_lr": 0.01, "warmup_steps": 4},
    ),
    ("CosineScheduler", {"max_update": 15, "base_lr": 0.3}),
    (
        "CosineScheduler",
        {
            "max_update": 15,
            "base_lr": 0.3,
            "final_lr": 0.02,
            "warmup_steps": 5,
            "warmup_begin_lr": 0.01,
        },
    ),
]

MXNET_SCHEDULES = r"""
import json
import mxnet as mx
out = []
for kind, kwargs in json.load(open("schedules.json")):
    schedule = getattr(mx.lr_scheduler, kind)(**kwargs)
    out.append([schedule(n) for n in range(0, 25)])
print(json.dumps(out))
"""


def test_schedules_match_mxnet(mxnet_python, tmp_path):
    (tmp_path / "schedules.json").write_text(json.dumps(SCHEDULES))
    theirs = json.loads(run_mxnet(mxnet_python, MXNET_SCHEDULES, tmp_path).strip().splitlines()[-1])
    for (kind, kwargs), expected in zip(SCHEDULES, theirs):
        schedule = getattr(mx.lr_scheduler, kind)(**kwargs)
        ours = [schedule(n) for n in range(0, 25)]
        np.testing.assert_allclose(ours, expected, rtol=1e-12, err_msg=f"{kind} {kwargs}")


# ---------------------------------------------------------------------------
# Updater states: MXNet reads ours, we read theirs
# ---------------------------------------------------------------------------

MXNET_STATES = r"""
import sys
import numpy as np
import mxnet as mx

data = np.load("data.npz")
ours = open("symgrad.states", "rb").read()
opt = mx.optimizer.create(sys.argv[1], learning_rate=0.05, momentum=0.9, wd=0.01)
updater = mx.optimizer.get_updater(opt)
updater.set_states(ours)
weights = [mx.nd.array(data["w%d" % i]) for i in range(2)]
for s in (3, 4):
    for i in range(2):
        updater(i, mx.nd.array(data["g%d_%d" % (s, i)]), weights[i])
np.savez("after.npz", *[w.asnumpy() for w in weights])
updater2 = mx.optimizer.get_updater(mx.optimizer.create(sys.argv[1], learning_rate=0.05,
                                                        momentum=0.9, wd=0.01))
weights = [mx.nd.array(data["w%d" % i]) for i in range(2)]
for s in range(3):
    for i in range(2):
        updater2(i, mx.nd.array(data["g%d_%d" % (s, i)]), weights[i])
open("mxnet.states", "wb").write(updater2.get_states(dump_optimizer=True))
"""


@pytest.mark.parametrize("name", ["sgd", "nag"])
def test_updater_states_round_trip_with_mxnet(name, mxnet_python, tmp_path):
    data = _data(steps=5)
    np.savez(tmp_path / "data.npz", **data)

    def fresh():
        return mx.optimizer.get_updater(
            mx.optimizer.create(name, learning_rate=0.05, momentum=0.9, wd=0.01)
        )

    def run(updater, weights, steps):
        for s in steps:
            for i in range(2):
                updater(i, mx.nd.array(data[f"g{s}_{i}"]), weights[i])

    updater = fresh()
    weights = [mx.nd.array(data[f"w{i}"]) for i in range(2)]
    run(updater, weights, range(3))
    (tmp_path / "symgrad.states").write_bytes(updater.get_states())
    run_mxnet(mxnet_python, MXNET_STATES, tmp_path, name)
    # MXNet continued from our momentum: the same as continuing here
    expected = [mx.nd.array(data[f"w{i}"]) for i in range(2)]
    run(updater, expected, (3, 4))
    with np.load(tmp_path / "after.npz") as after:
        for i in range(2):
            _close(expected[i].asnumpy(), after[f"arr_{i}"], f"parameter {i} in MXNet")
    # and we continue from MXNet's states, with the optimizer it pickled
    theirs = fresh()
    theirs.set_states((tmp_path / "mxnet.states").read_bytes())
    assert type(theirs.optimizer) is type(updater.optimizer)
    assert theirs.optimizer.num_update == 3 and theirs.optimizer.momentum == 0.9
    assert sorted(theirs.states) == [0, 1]
    for i in range(2):
        _close(
            theirs.states[i].asnumpy(),
            updater.states[i].asnumpy() * 0 + _momentum_after(name, data, i, 3),
            f"momentum {i}",
        )


def _momentum_after(name, data, index, steps):
    updater = mx.optimizer.get_updater(
        mx.optimizer.create(name, learning_rate=0.05, momentum=0.9, wd=0.01)
    )
    weight = mx.nd.array(data[f"w{index}"])
    for s in range(steps):
        updater(index, mx.nd.array(data[f"g{s}_{index}"]), weight)
    return updater.states[index].asnumpy()


# ---------------------------------------------------------------------------
# gluon.Trainer on a tiny network, and its states file both ways
# ---------------------------------------------------------------------------

TRAINER_NET = r"""
import json
import sys
import numpy as np
import mxnet as mx
from mxnet import autograd, gluon


def make_net(values):
    net = gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(gluon.nn.Dense(5, in_units=3, activation="relu", prefix="hidden_"))
        net.add(gluon.nn.Dense(2, in_units=5, prefix="out_"))
    net.initialize()
    for name, param in net.collect_params().items():
        param.set_data(mx.nd.array(values[name]))
    return net


def train(net, trainer, data, steps):
    for s in steps:
        x, y = mx.nd.array(data["x%d" % s]), mx.nd.array(data["y%d" % s])
        with autograd.record():
            loss = mx.nd.square(net(x) - y).sum()
        loss.backward()
        trainer.step(x.shape[0])
"""


def _trainer_data() -> tuple[dict, dict]:
    rng = np.random.default_rng(17)
    values = {
        "net_hidden_weight": rng.normal(0, 0.5, (5, 3)),
        "net_hidden_bias": rng.normal(0, 0.1, (5,)),
        "net_out_weight": rng.normal(0, 0.5, (2, 5)),
        "net_out_bias": rng.normal(0, 0.1, (2,)),
    }
    data = {}
    for s in range(6):
        data[f"x{s}"] = rng.normal(0, 1, (8, 3))
        data[f"y{s}"] = rng.normal(0, 1, (8, 2))
    return (
        {k: v.astype(np.float32) for k, v in values.items()},
        {k: v.astype(np.float32) for k, v in data.items()},
    )


def _our_net(values, hybridize=False):
    net = mx.gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(mx.gluon.nn.Dense(5, in_units=3, activation="relu", prefix="hidden_"))
        net.add(mx.gluon.nn.Dense(2, in_units=5, prefix="out_"))
    net.initialize()
    for name, param in net.collect_params().items():
        param.set_data(mx.nd.array(values[name]))
    if hybridize:
        net.hybridize()
    return net


def _our_train(net, trainer, data, steps):
    for s in steps:
        x, y = mx.nd.array(data[f"x{s}"]), mx.nd.array(data[f"y{s}"])
        with mx.autograd.record():
            loss = mx.nd.square(net(x) - y).sum()
        loss.backward()
        trainer.step(x.shape[0])


def _params(net):
    return {name: p.data().asnumpy() for name, p in net.collect_params().items()}


TRAINER_STEPS = (
    TRAINER_NET
    + r"""
values, data = np.load("values.npz"), np.load("data.npz")
net = make_net(values)
trainer = gluon.Trainer(net.collect_params(), "sgd",
                        {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3})
train(net, trainer, data, range(4))
np.savez("trained.npz", **{n: p.data().asnumpy() for n, p in net.collect_params().items()})
"""
)


@pytest.mark.parametrize("hybridize", [False, True])
def test_trainer_sgd_matches_mxnet(hybridize, mxnet_python, tmp_path):
    values, data = _trainer_data()
    np.savez(tmp_path / "values.npz", **values)
    np.savez(tmp_path / "data.npz", **data)
    run_mxnet(mxnet_python, TRAINER_STEPS, tmp_path)
    net = _our_net(values, hybridize)
    trainer = mx.gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3}
    )
    _our_train(net, trainer, data, range(4))
    ours = _params(net)
    with np.load(tmp_path / "trained.npz") as theirs:
        assert sorted(theirs.files) == sorted(ours)
        for name in ours:
            assert not np.allclose(ours[name], values[name])  # it did train
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)


TRAINER_STATES = (
    TRAINER_NET
    + r"""
values, data = np.load("values.npz"), np.load("data.npz")
net = make_net(values)
options = json.loads(sys.argv[2])
# a learning rate the loaded optimizer replaces
trainer = gluon.Trainer(net.collect_params(), sys.argv[1], {"learning_rate": 0.5})
# ours: trained 3 steps here; MXNet continues from our file for steps 3 and 4
trainer.load_states("symgrad.states")
assert trainer.learning_rate == options["learning_rate"], trainer.learning_rate
assert trainer._optimizer.num_update == 3, trainer._optimizer.num_update
train(net, trainer, data, (3, 4))
np.savez("continued.npz", **{n: p.data().asnumpy() for n, p in net.collect_params().items()})
# theirs: 3 steps from the start, then the file
net = make_net(np.load("start.npz"))
trainer = gluon.Trainer(net.collect_params(), sys.argv[1], options)
train(net, trainer, data, range(3))
trainer.save_states("mxnet.states")
np.savez("mxnet_params.npz", **{n: p.data().asnumpy() for n, p in net.collect_params().items()})
train(net, trainer, data, (3, 4))
np.savez("mxnet_continued.npz",
         **{n: p.data().asnumpy() for n, p in net.collect_params().items()})
"""
)


@pytest.mark.parametrize(
    "optimizer, options",
    [
        ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3}),
        ("adam", {"learning_rate": 0.01, "beta1": 0.8, "wd": 1e-3}),
    ],
)
def test_trainer_states_round_trip_with_mxnet(optimizer, options, mxnet_python, tmp_path):
    values, data = _trainer_data()
    np.savez(tmp_path / "start.npz", **values)
    net = _our_net(values)
    trainer = mx.gluon.Trainer(net.collect_params(), optimizer, options)
    _our_train(net, trainer, data, range(3))
    trainer.save_states(str(tmp_path / "symgrad.states"))
    np.savez(tmp_path / "values.npz", **_params(net))
    np.savez(tmp_path / "data.npz", **data)
    run_mxnet(mxnet_python, TRAINER_STATES, tmp_path, optimizer, json.dumps(options))
    # MXNet, continuing from our states (and our optimizer's settings), agrees with us
    _our_train(net, trainer, data, (3, 4))
    with np.load(tmp_path / "continued.npz") as theirs:
        for name, value in _params(net).items():
            np.testing.assert_allclose(
                value, theirs[name], rtol=1e-5, atol=1e-6, err_msg=f"MXNet after our states: {name}"
            )
    # and we continue from MXNet's file: its optimizer replaces the one we made
    with np.load(tmp_path / "mxnet_params.npz") as mxnet_params:
        net = _our_net(dict(mxnet_params))
    trainer = mx.gluon.Trainer(net.collect_params(), optimizer, {"learning_rate": 0.5})
    trainer.load_states(str(tmp_path / "mxnet.states"))
    assert trainer.learning_rate == options["learning_rate"]
    assert trainer.optimizer.num_update == 3
    _our_train(net, trainer, data, (3, 4))
    with np.load(tmp_path / "mxnet_continued.npz") as theirs:
        for name, value in _params(net).items():
            np.testing.assert_allclose(
                value,
                theirs[name],
                rtol=1e-5,
                atol=1e-6,
                err_msg=f"ours after MXNet's states: {name}",
            )


# every optimizer pickled with its states: MXNet continues from ours as we do
STATE_CASES = [
    (name, opt, kwargs, dtype)
    for name, opt, kwargs, dtype in CASES
    if opt != "adamw" and "lr_scheduler" not in kwargs
] + [
    (
        "sgd_factor_state",
        "sgd",
        {
            "learning_rate": 0.1,
            "momentum": 0.5,
            "lr_scheduler": ("FactorScheduler", {"step": 3, "factor": 0.7}),
        },
        "float32",
    )
]

MXNET_CONTINUE = r"""
import json
import numpy as np
import mxnet as mx

cases = json.load(open("cases.json"))
data = np.load("data.npz")
results = {}
for name, opt, kwargs, dtype in cases:
    # an updater made with another learning rate: the pickled optimizer replaces it
    updater = mx.optimizer.get_updater(mx.optimizer.create(opt, learning_rate=9.0))
    updater.set_states(open(name + ".states", "rb").read())
    weights = [mx.nd.array(data["%s_w%d" % (name, i)], dtype=dtype) for i in range(2)]
    for s in (3, 4, 5):
        for i in range(2):
            updater(i, mx.nd.array(data["g%d_%d" % (s, i)], dtype=dtype), weights[i])
    for i in range(2):
        results["%s_%d" % (name, i)] = weights[i].asnumpy()
    # and MXNet's own file after 3 updates, with its weights then
    if "lr_scheduler" in kwargs:
        kind, args = kwargs["lr_scheduler"]
        kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, kind)(**args)
    if "param_idx2name" in kwargs:
        kwargs["param_idx2name"] = {int(k): v for k, v in kwargs["param_idx2name"].items()}
    updater = mx.optimizer.get_updater(mx.optimizer.create(opt, **kwargs))
    weights = [mx.nd.array(data["w%d" % i], dtype=dtype) for i in range(2)]
    for s in range(3):
        for i in range(2):
            updater(i, mx.nd.array(data["g%d_%d" % (s, i)], dtype=dtype), weights[i])
    open(name + ".mxnet_states", "wb").write(updater.get_states(dump_optimizer=True))
    for i in range(2):
        results["%s_mxnet_w%d" % (name, i)] = weights[i].asnumpy()
np.savez("continued.npz", **results)
"""


@pytest.fixture(scope="module")
def mxnet_continued(mxnet_python, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("continue")
    data = _data(steps=6)
    ours = {}
    for name, opt, kwargs, dtype in STATE_CASES:
        kwargs = dict(kwargs)
        if "lr_scheduler" in kwargs:
            kind, args = kwargs["lr_scheduler"]
            kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, kind)(**args)
        updater = mx.optimizer.get_updater(mx.optimizer.create(opt, **kwargs))
        weights = [mx.nd.array(data[f"w{i}"], dtype=dtype) for i in range(2)]
        for s in range(6):
            if s == 3:  # the file MXNet continues from, and the weights then
                (workdir / f"{name}.states").write_bytes(updater.get_states(True))
                for i in range(2):
                    data[f"{name}_w{i}"] = weights[i].asnumpy()
            for i in range(2):
                updater(i, mx.nd.array(data[f"g{s}_{i}"], dtype=dtype), weights[i])
        ours[name] = [w.asnumpy() for w in weights]
    np.savez(workdir / "data.npz", **data)
    (workdir / "cases.json").write_text(json.dumps(STATE_CASES))
    run_mxnet(mxnet_python, MXNET_CONTINUE, workdir)
    with np.load(workdir / "continued.npz") as out:
        return ours, dict(out), workdir, data


@pytest.mark.parametrize("case", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_mxnet_continues_from_our_pickled_optimizer(case, mxnet_continued):
    ours, theirs, _, _ = mxnet_continued
    name, _, _, dtype = case
    for i in range(2):
        _close(ours[name][i], theirs[f"{name}_{i}"], f"{name}: parameter {i}", dtype, steps=3)


@pytest.mark.parametrize("case", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_we_continue_from_mxnets_pickled_optimizer(case, mxnet_continued):
    ours, theirs, workdir, data = mxnet_continued
    name, opt, _, dtype = case
    updater = mx.optimizer.get_updater(mx.optimizer.create(opt, learning_rate=9.0))
    updater.set_states((workdir / f"{name}.mxnet_states").read_bytes())
    assert updater.optimizer.num_update == 3
    weights = [mx.nd.array(theirs[f"{name}_mxnet_w{i}"], dtype=dtype) for i in range(2)]
    for s in (3, 4, 5):
        for i in range(2):
            updater(i, mx.nd.array(data[f"g{s}_{i}"], dtype=dtype), weights[i])
    for i in range(2):
        _close(weights[i].asnumpy(), ours[name][i], f"{name}: parameter {i}", dtype, steps=6)


TRAINER_ERRORS = """
import json

def error_of(fn):
    try:
        fn()
    except Exception as err:
        return type(err).__name__
    return None

def trainer_of_uninitialized():
    net = mx.gluon.nn.Dense(2, in_units=3)
    mx.gluon.Trainer(net.collect_params(), "sgd")

def step_with_deferred():
    net = mx.gluon.nn.Dense(2)
    net.initialize()
    mx.gluon.Trainer(net.collect_params(), "sgd").step(1)

errors = {"uninitialized": error_of(trainer_of_uninitialized),
          "deferred": error_of(step_with_deferred)}
"""


def test_trainer_over_uninitialized_parameters_raises_as_mxnet(mxnet_python, tmp_path):
    """A Trainer over Parameters never initialized is refused when made
    (RuntimeError), and a step while a shape is still deferred raises
    DeferredInitializationError (not a stale-gradient warning), as in MXNet."""
    theirs = json.loads(
        run_mxnet(
            mxnet_python,
            "import mxnet as mx\n" + TRAINER_ERRORS + "print(json.dumps(errors))\n",
            tmp_path,
        )
        .strip()
        .splitlines()[-1]
    )
    scope: dict = {"mx": mx}
    exec(TRAINER_ERRORS, scope)
    assert (
        scope["errors"]
        == theirs
        == {"uninitialized": "RuntimeError", "deferred": "DeferredInitializationError"}
    )
