"""d2l-style Gluon scripts, written for MXNet 1.x, run unchanged with ``mx`` bound to
symgrad, and reach the accuracy the real MXNet 1.9.1 reaches on the same data from
the same initial weights (interop virtualenv).

The scripts are one piece of source each, run in both libraries: an MLP (softmax
regression's big sibling) and a small CNN, each with ``nn.HybridSequential``,
``initialize(init.Xavier())``, ``hybridize()``, ``SoftmaxCrossEntropyLoss``,
``autograd.record()``, ``backward()``, ``gluon.Trainer``, ``gluon.data.DataLoader``,
``mx.metric.Accuracy``, ``save_parameters``/``load_parameters`` and ``export``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import symgrad

# The data: two-dimensional blobs lifted into images, easy to learn in a few epochs.
CLASSES, SIDE = 4, 8


def _make_data(path, n=256, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centers = rng.normal(size=(CLASSES, SIDE * SIDE)) * 1.5
    images = centers[labels] + rng.normal(size=(n, SIDE * SIDE))
    np.savez(
        path, X=images.reshape(n, 1, SIDE, SIDE).astype(np.float32), y=labels.astype(np.float32)
    )


SCRIPT = r"""
import json, os, sys
import numpy as np

work, kind, init_file = sys.argv[1], sys.argv[2], sys.argv[3]
gluon, nd, autograd, init = mx.gluon, mx.nd, mx.autograd, mx.init
nn = gluon.nn

data = np.load(os.path.join(work, "data.npz"))
train = gluon.data.ArrayDataset(nd.array(data["X"][:192]), nd.array(data["y"][:192]))
test = gluon.data.ArrayDataset(nd.array(data["X"][192:]), nd.array(data["y"][192:]))
train_iter = gluon.data.DataLoader(train, batch_size=32, shuffle=False)
test_iter = gluon.data.DataLoader(test, batch_size=32, shuffle=False)

net = nn.HybridSequential()
with net.name_scope():
    if kind == "mlp":
        net.add(nn.Flatten(), nn.Dense(64, activation="relu"), nn.Dense(4))
    else:
        net.add(nn.Conv2D(channels=6, kernel_size=3, padding=1, activation="relu"),
                nn.BatchNorm(),
                nn.MaxPool2D(pool_size=2, strides=2),
                nn.Conv2D(channels=8, kernel_size=3, activation="relu"),
                nn.Flatten(),
                nn.Dense(32, activation="relu"),
                nn.Dense(4))
net.initialize(init.Xavier())
net(nd.array(data["X"][:2]))  # finish deferred initialisation
if init_file == "save":
    net.save_parameters(os.path.join(work, kind + "-init.params"))
else:
    net.load_parameters(init_file)
net.hybridize()

loss = gluon.loss.SoftmaxCrossEntropyLoss()
trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05, "momentum": 0.5})


def evaluate(data_iter):
    metric = mx.metric.Accuracy()
    for X, y in data_iter:
        metric.update([y], [net(X)])
    return metric.get()[1]


history = []
for epoch in range(4):
    train_metric = mx.metric.Accuracy()
    total = 0.0
    for X, y in train_iter:
        with autograd.record():
            y_hat = net(X)
            l = loss(y_hat, y)
        l.backward()
        trainer.step(X.shape[0])
        total += l.sum().asscalar()
        train_metric.update([y], [y_hat])
    history.append([float(total) / 192, float(train_metric.get()[1]),
                    float(evaluate(test_iter))])
net.save_parameters(os.path.join(work, kind + "-trained.params"))
net.export(os.path.join(work, kind))
json.dump(history, open(os.path.join(work, kind + "-history.json"), "w"))
"""


def _run_here(work, kind, init_file):
    import sys

    argv = sys.argv
    sys.argv = ["script", str(work), kind, init_file]
    try:
        exec(SCRIPT, {"mx": symgrad, "__name__": "__main__"})
    finally:
        sys.argv = argv
    return json.loads((work / f"{kind}-history.json").read_text())


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_script_runs_unchanged_and_learns(tmp_path, kind):
    _make_data(tmp_path / "data.npz")
    history = _run_here(tmp_path, kind, "save")
    losses = [h[0] for h in history]
    assert losses[-1] < losses[0] * 0.5
    assert history[-1][2] >= 0.9  # test accuracy
    # the files it wrote load back into a fresh copy
    block = symgrad.gluon.SymbolBlock.imports(
        str(tmp_path / f"{kind}-symbol.json"), ["data"], str(tmp_path / f"{kind}-0000.params")
    )
    X = symgrad.nd.array(np.load(tmp_path / "data.npz")["X"][:5])
    assert block(X).shape == (5, 4)


@pytest.mark.interop
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_script_matches_mxnet(mxnet_python, tmp_path, kind):
    from mxnet_interop import run_mxnet

    _make_data(tmp_path / "data.npz")
    mxnet_dir = tmp_path / "mxnet"
    mxnet_dir.mkdir()
    (mxnet_dir / "data.npz").write_bytes((tmp_path / "data.npz").read_bytes())
    run_mxnet(
        mxnet_python, "import mxnet as mx\n" + SCRIPT, mxnet_dir, str(mxnet_dir), kind, "save"
    )
    theirs = json.loads((mxnet_dir / f"{kind}-history.json").read_text())
    ours = _run_here(tmp_path, kind, str(mxnet_dir / f"{kind}-init.params"))
    # the same weights and data: the same losses and accuracies, epoch by epoch (the
    # losses fall to float32 rounding noise, hence the absolute tolerance)
    assert np.allclose(np.array(ours)[:, 0], np.array(theirs)[:, 0], rtol=2e-3, atol=1e-4)
    assert np.allclose(np.array(ours)[:, 1:], np.array(theirs)[:, 1:], atol=0.02)
