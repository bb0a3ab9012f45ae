"""A small Gluon convolutional network on scikit-learn's 8x8 handwritten digits.

Conv2D -> BatchNorm -> relu -> MaxPool2D, twice, then Dense layers; trained with
softmax cross-entropy and SGD with momentum through a Trainer. The confusion
matrix of the validation set is saved as ``cnn_confusion.png``.

Run: python examples/cnn.py [--quick] [--out DIR]
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt
import numpy as np
from _example_cli import parse_args
from sklearn.datasets import load_digits
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import symgrad as mx
from symgrad import autograd, gluon
from symgrad.gluon import nn


def load_data(batch_size: int):
    """Train and validation DataLoaders of 1x8x8 images scaled to [0, 1]."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
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
    """(1, 8, 8) -> 16 maps of 4x4 -> 32 maps of 2x2 -> 64 -> 10 class scores."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(
            nn.Conv2D(16, kernel_size=3, padding=1),
            nn.BatchNorm(),
            nn.Activation("relu"),
            nn.MaxPool2D(pool_size=2),
            nn.Conv2D(32, kernel_size=3, padding=1),
            nn.BatchNorm(),
            nn.Activation("relu"),
            nn.MaxPool2D(pool_size=2),
            nn.Flatten(),
            nn.Dense(64, activation="relu"),
            nn.Dense(10),
        )
    return net


def predict(net, data) -> tuple[np.ndarray, np.ndarray]:
    """True labels and predicted classes over ``data`` (BatchNorm in predict mode)."""
    truth, guesses = [], []
    for x, y in data:
        truth.append(y.asnumpy())
        guesses.append(net(x).argmax(axis=1).asnumpy())
    return np.concatenate(truth).astype(int), np.concatenate(guesses).astype(int)


def plot_confusion(matrix: np.ndarray, accuracy: float, path) -> None:
    """The confusion matrix as an annotated heat map."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            axis.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour, fontsize=8)
    axis.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted digit",
        ylabel="true digit",
        title=f"validation confusion matrix (accuracy {accuracy:.3f})",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mx.random.seed(0)
    np.random.seed(0)
    epochs = 2 if args.quick else 8
    train_data, val_data = load_data(batch_size=64)

    net = build_net()
    net.initialize(mx.init.Xavier(magnitude=2.24))
    net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}
    )

    start = time.perf_counter()
    batches = len(train_data)
    bar = tqdm(total=epochs * batches, desc="cnn", unit="batch")
    for epoch in range(epochs):
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
            bar.update(1)
            bar.set_postfix(
                epoch=epoch + 1,
                loss=f"{total / seen:.3f}",
                acc=f"{metric.get()[1]:.3f}",
                samples_per_s=f"{seen / (time.perf_counter() - tic):.0f}",
            )
    bar.close()
    elapsed = time.perf_counter() - start

    truth, guesses = predict(net, val_data)
    accuracy = float((truth == guesses).mean())
    path = args.out / "cnn_confusion.png"
    plot_confusion(confusion_matrix(truth, guesses, labels=range(10)), accuracy, path)
    print(f"trained {epochs} epochs in {elapsed:.1f} s; confusion matrix: {path}")
    print(f"final accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
