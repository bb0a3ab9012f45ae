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
    ("sgd_wd_clip", "sgd", {"learning_rate": 0.1, "wd": 0.01, "clip_gradient": 0.5,
                            "rescale_grad": 0.5}, "float32"),
    ("sgd_mom", "sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3}, "float32"),
    ("sgd_mom_names", "sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 0.1,
                              "param_idx2name": NAMES}, "float32"),
    ("sgd_mp", "sgd", {"learning_rate": 0.1, "wd": 0.01, "multi_precision": True},
     "float16"),
    ("sgd_mom_mp", "sgd", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3,
                           "multi_precision": True}, "float16"),
    ("sgd_fp16", "sgd", {"learning_rate": 0.1, "momentum": 0.9}, "float16"),
    ("nag", "nag", {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-3,
                    "clip_gradient": 1.0}, "float32"),
    ("nag_plain", "nag", {"learning_rate": 0.05}, "float32"),
    ("adam", "adam", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    ("adam_clip", "adam", {"learning_rate": 0.01, "clip_gradient": 0.3, "rescale_grad": 2.0,
                           "beta1": 0.8, "beta2": 0.99}, "float32"),
    ("adam_mp", "adam", {"learning_rate": 0.01, "multi_precision": True}, "float16"),
    ("adamw", "adamw", {"learning_rate": 0.01, "wd": 0.05}, "float32"),
    ("adagrad", "adagrad", {"learning_rate": 0.1, "wd": 1e-3, "clip_gradient": 1.0},
     "float32"),
    ("adadelta", "adadelta", {"wd": 1e-3, "rho": 0.8}, "float32"),
    ("adamax", "adamax", {"wd": 1e-3, "clip_gradient": 1.5}, "float32"),
    ("nadam", "nadam", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    ("rmsprop", "rmsprop", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    ("rmsprop_clip", "rmsprop", {"learning_rate": 0.01, "clip_gradient": 0.5,
                                 "clip_weights": 0.8}, "float32"),
    ("rmsprop_centered", "rmsprop", {"learning_rate": 0.01, "centered": True, "wd": 1e-3},
     "float32"),
    ("ftrl", "ftrl", {"learning_rate": 0.1, "lamda1": 0.05, "wd": 1e-3}, "float32"),
    ("signum", "signum", {"learning_rate": 0.01, "wd": 1e-3, "wd_lh": 0.01}, "float32"),
    ("signsgd", "signum", {"learning_rate": 0.01, "momentum": 0.0, "wd": 1e-3}, "float32"),
    ("lamb", "lamb", {"learning_rate": 0.01, "wd": 1e-3}, "float32"),
    ("lamb_bounds", "lamb", {"learning_rate": 0.01, "lower_bound": 0.5, "upper_bound": 2.0,
                             "bias_correction": False, "clip_gradient": 1.0}, "float32"),
    ("dcasgd", "dcasgd", {"learning_rate": 0.05, "wd": 1e-3, "lamda": 0.1}, "float32"),
    ("sgd_factor", "sgd", {"learning_rate": 0.1, "momentum": 0.5,
                           "lr_scheduler": ("FactorScheduler", {"step": 3, "factor": 0.7})},
     "float32"),
]


MXNET_UPDATES = r'''
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
'''


def _data(steps: int = STEPS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(15)
    data = {f"w{i}": rng.uniform(-1, 1, shape).astype(np.float32)
            for i, shape in enumerate(SHAPES)}
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
            np.testing.assert_allclose(ours[key].astype(np.float64),
                                       theirs[key].astype(np.float64), *tolerance,
                                       err_msg=f"{key}: step {s + 1}, parameter {i}")
