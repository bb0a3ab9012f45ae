"""Benchmark rows and their inputs (see shared/bench/workloads.md).

Every process builds its inputs the same way from
``numpy.random.default_rng(1234)``, so each subprocess sees identical data.
"""

from dataclasses import dataclass, field

import numpy as np

from .harness import RTOL
from .libs import gluon_w7, gluon_w8, zoo


@dataclass(frozen=True)
class Row:
    """One steady-state row of the table: a workload and its size."""

    key: str  # command-line id, e.g. "W1-1e6"
    label: str  # shown in the table
    workload: str  # "W1".."W4": name of the setup function family
    params: dict = field(default_factory=dict)
    # A training row changes its state at every call: its check after timing starts
    # from the state the timing left (cell.py).
    trains: bool = False
    # Warm-up calls and samples when not the protocol's (the model zoo: seconds a call).
    warmup: int = 0
    samples: int = 0
    # The column its ratios are against when not PyTorch eager (the zoo: MXNet's).
    baseline: str = ""
    # The gradients' tolerance (the value's stays harness.RTOL): see zoo.GRAD_RTOL.
    grad_rtol: float = RTOL


ROWS = [
    Row("W1-1e4", "W1 n=1e4", "W1", {"n": 10**4}),
    Row("W1-1e6", "W1 n=1e6", "W1", {"n": 10**6}),
    Row("W1-1e7", "W1 n=1e7", "W1", {"n": 10**7}),
    Row("W2-128", "W2 B=128", "W2", {"B": 128}),
    Row("W2-1024", "W2 B=1024", "W2", {"B": 1024}),
    Row("W3", "W3 (50 ops on 16)", "W3"),
    Row("W4", "W4 n=1e5", "W4"),
    Row("CNN", "CNN step B=32", "CNN"),
    # W6 (issues 14 and 15): the Gluon MLP, forward+backward, then with trainer.step.
    Row("W6-128", "W6 fwd+bwd B=128", "W6", {"B": 128}),
    Row("W6-1024", "W6 fwd+bwd B=1024", "W6", {"B": 1024}),
    Row("W6-128-step", "W6 step B=128", "W6_step", {"B": 128}, trains=True),
    Row("W6-1024-step", "W6 step B=1024", "W6_step", {"B": 1024}, trains=True),
    # W7 and W8 (issues 16 and 17): the Gluon CNN and LSTM language-model training steps.
    Row("W7", "W7 CNN step B=32", "W7", trains=True, grad_rtol=gluon_w7.GRAD_RTOL),
    Row("W8", "W8 LSTM LM step 35x32", "W8", trains=True),
    # The model zoo (issue 17): forward+backward in training mode, batch 8, against
    # MXNet 1.9.1; one warm-up and three samples, a call taking seconds.
    *(
        Row(
            f"zoo-{m}",
            f"zoo {m} B=8 (× vs MXNet)",
            "ZOO",
            {"model": m},
            warmup=1,
            samples=3,
            baseline="mxnet",
            grad_rtol=zoo.GRAD_RTOL,
        )
        for m in zoo.MODELS
    ),
]

# W5 cold start measures the first call of these rows in fresh processes (W6: of a
# Gluon network, imperative and hybridized, as issue 17 asks for a hybridized block).
COLD_ROWS = ["W1-1e6", "W2-128", "W6-128"]

ROW_BY_KEY = {r.key: r for r in ROWS}

# Names (in order) of the gradients every step returns, per workload.
GRAD_NAMES = {
    "W1": ["x", "w", "b"],
    "W2": ["W1", "b1", "W2", "b2"],
    "W3": ["x"],
    "W4": ["x"],  # h = d(sum(df/dx))/dx
    "CNN": ["conv_w", "gamma", "beta", "fc_w", "fc_b"],
    "W6": ["W1", "b1", "W2", "b2"],  # gradients of sum(L) (Gluon's L.backward())
    "W6_step": ["W1", "b1", "W2", "b2"],  # the parameters after the update
    "W7": gluon_w7.param_names(),  # the parameters after the update
    "W8": gluon_w8.PARAM_NAMES,  # the parameters after the update
}

# W6 (workloads.md, Gluon-era): Dense(256, relu) -> Dense(10) -> SoftmaxCrossEntropyLoss;
# the optimizer of the step rows (gluon.Trainer / torch.optim.SGD).
W6_HIDDEN, W6_CLASSES, W6_FEATURES = 256, 10, 784
W6_SGD = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4}


# CNN step (issue 5): Convolution 3x3 (no padding, no bias: BatchNorm cancels it, its
# gradient is zero) -> BatchNorm (training, batch
# statistics, eps below) -> relu -> max Pooling 2x2 stride 2 -> FullyConnected ->
# softmax cross-entropy averaged over the batch. Weights in MXNet's layouts.
CNN_BATCH, CNN_FILTERS, CNN_CLASSES, CNN_SIDE = 32, 8, 10, 28
CNN_EPS = 1e-5


def make_inputs(row):
    """Return the row's inputs as a dict of numpy arrays (float32; labels int64)."""
    rng = np.random.default_rng(1234)
    f32 = np.float32
    if row.workload == "W1":
        n = row.params["n"]
        x = rng.standard_normal(n)
        w = 0.5 * rng.standard_normal(n)
        b = 0.1 * rng.standard_normal(n)
        return {"x": x.astype(f32), "w": w.astype(f32), "b": b.astype(f32)}
    if row.workload == "W2":
        B = row.params["B"]
        X = rng.random((B, 784))
        y = rng.integers(0, 10, B)
        W1 = rng.standard_normal((784, 256)) / 28
        b1 = 0.01 * rng.standard_normal(256)
        W2 = rng.standard_normal((256, 10)) / 16
        b2 = 0.01 * rng.standard_normal(10)
        return {
            "X": X.astype(f32),
            "y": y.astype(np.int64),
            "W1": W1.astype(f32),
            "b1": b1.astype(f32),
            "W2": W2.astype(f32),
            "b2": b2.astype(f32),
        }
    if row.workload == "W3":
        return {"x": rng.uniform(-1, 1, 16).astype(f32)}
    if row.workload == "W4":
        return {"x": rng.standard_normal(100000).astype(f32)}
    if row.workload == "CNN":
        B, C, K, S = CNN_BATCH, CNN_FILTERS, CNN_CLASSES, CNN_SIDE
        flat = C * ((S - 2) // 2) ** 2
        X = rng.random((B, 1, S, S))
        y = rng.integers(0, K, B)
        conv_w = rng.standard_normal((C, 1, 3, 3)) / 3
        gamma = 1 + 0.1 * rng.standard_normal(C)
        beta = 0.1 * rng.standard_normal(C)
        fc_w = rng.standard_normal((K, flat)) / np.sqrt(flat)
        fc_b = 0.01 * rng.standard_normal(K)
        arrays = {
            "X": X,
            "conv_w": conv_w,
            "gamma": gamma,
            "beta": beta,
            "moving_mean": np.zeros(C),
            "moving_var": np.ones(C),
            "fc_w": fc_w,
            "fc_b": fc_b,
        }
        out = {k: v.astype(f32) for k, v in arrays.items()}
        out["y"] = y.astype(np.int64)
        return out
    if row.workload in ("W6", "W6_step"):
        return _w6_inputs(rng, row.params["B"])
    if row.workload == "W7":
        return gluon_w7.make_inputs(rng, {**gluon_w7.DEFAULT_SIZES, **row.params})
    if row.workload == "W8":
        return gluon_w8.make_inputs(rng, {**gluon_w8.DEFAULT_SIZES, **row.params})
    if row.workload == "ZOO":
        return zoo.make_inputs(rng, row.params["model"], row.params.get("batch", zoo.BATCH))
    raise ValueError(f"unknown workload {row.workload}")


def xavier_uniform(rng, shape, magnitude=3.0):
    """MXNet's default ``mx.init.Xavier()`` for a 2-D (out, in) weight.

    Uniform in [-s, s] with s = sqrt(magnitude / ((fan_in + fan_out) / 2)).
    """
    fan_out, fan_in = shape
    scale = np.sqrt(magnitude / ((fan_in + fan_out) / 2.0))
    return rng.uniform(-scale, scale, shape)


def _w6_inputs(rng, batch):
    """X ~ U[0, 1), labels, then Xavier weights in Dense's (out, in) layout, zero biases
    (Dense's default bias init), all from the one generator: every library loads these."""
    X = rng.random((batch, W6_FEATURES))
    y = rng.integers(0, W6_CLASSES, batch)
    W1 = xavier_uniform(rng, (W6_HIDDEN, W6_FEATURES))
    W2 = xavier_uniform(rng, (W6_CLASSES, W6_HIDDEN))
    f32 = np.float32
    return {
        "X": X.astype(f32),
        "y": y.astype(np.int64),
        "W1": W1.astype(f32),
        "b1": np.zeros(W6_HIDDEN, f32),
        "W2": W2.astype(f32),
        "b2": np.zeros(W6_CLASSES, f32),
    }
