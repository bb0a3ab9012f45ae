"""A Gluon multilayer perceptron on scikit-learn's handwritten digits.

The 1,797 8x8 digit images of ``sklearn.datasets.load_digits`` stand in for
MNIST (nothing is downloaded). The network is two hidden Dense layers, trained
with softmax cross-entropy, a Trainer (Adam) and the Accuracy metric, as an
MXNet 1.x user writes it; the training and validation curves are saved as
``mnist_mlp_curves.png``.

Run: python examples/mnist_mlp.py [--quick] [--out DIR]
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt
import numpy as np
from _example_cli import parse_args
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import symgrad as mx
from symgrad import autograd, gluon
from symgrad.gluon import nn


def load_data(batch_size: int):
    """Train and validation DataLoaders of the digits, pixels scaled to [0, 1]."""
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.float32)
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=0.2, random_state=0, stratify=labels
    )
    train = gluon.data.DataLoader(
        gluon.data.ArrayDataset(x_train, y_train), batch_size=batch_size, shuffle=True
    )
    val = gluon.data.DataLoader(gluon.data.ArrayDataset(x_val, y_val), batch_size=batch_size)
    return train, val


def build_net() -> nn.HybridSequential:
    """64 -> 128 -> 64 -> 10, relu between."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(128, activation="relu"))
        net.add(nn.Dense(64, activation="relu"))
        net.add(nn.Dense(10))
    return net


def evaluate(net, data) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` over ``data``."""
    metric = mx.metric.Accuracy()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    total, count = 0.0, 0
    for x, y in data:
        out = net(x)
        total += float(loss_fn(out, y).sum().asscalar())
        count += x.shape[0]
        metric.update([y], [out])
    return total / count, metric.get()[1]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mx.random.seed(0)
    np.random.seed(0)
    epochs = 3 if args.quick else 15
    train_data, val_data = load_data(batch_size=64)

    net = build_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.003})

    history: dict[str, list[float]] = {
        "train_loss": [],
        "train_acc": [],
        "val_loss": [],
        "val_acc": [],
    }
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc="mlp", unit="epoch")
    for _ in bar:
        metric = mx.metric.Accuracy()
        total, seen, tic = 0.0, 0, time.perf_counter()
        for x, y in train_data:
            with autograd.record():
                out = net(x)
                loss = loss_fn(out, y)
            loss.backward()
            trainer.step(x.shape[0])
            total += float(loss.sum().asscalar())
            seen += x.shape[0]
            metric.update([y], [out])
        val_loss, val_acc = evaluate(net, val_data)
        history["train_loss"].append(total / seen)
        history["train_acc"].append(metric.get()[1])
        history["val_loss"].append(val_loss)
        history["val_acc"].append(val_acc)
        bar.set_postfix(
            loss=f"{total / seen:.3f}",
            val_acc=f"{val_acc:.3f}",
            samples_per_s=f"{seen / (time.perf_counter() - tic):.0f}",
        )
    elapsed = time.perf_counter() - start

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs_axis = np.arange(1, epochs + 1)
    left.plot(epochs_axis, history["train_loss"], label="train")
    left.plot(epochs_axis, history["val_loss"], label="validation")
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    right.plot(epochs_axis, history["train_acc"], label="train")
    right.plot(epochs_axis, history["val_acc"], label="validation")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path = args.out / "mnist_mlp_curves.png"
    figure.savefig(path, dpi=100)
    print(f"trained {epochs} epochs in {elapsed:.1f} s; curves: {path}")
    print(f"final accuracy {history['val_acc'][-1]:.4f}")


if __name__ == "__main__":
    main()
