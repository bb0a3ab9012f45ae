"""Fine-tuning: a network trained on some classes, exported, loaded back, given
a new output layer and trained on new classes with the rest frozen.

1. A small CNN learns the digits 0-4 of scikit-learn's ``load_digits``.
2. It is exported (``HybridBlock.export``: ``-symbol.json`` and ``.params``) and
   loaded back with ``gluon.SymbolBlock.imports``, as a user loads a model
   trained elsewhere (MXNet's model zoo, or a colleague's files).
3. The Dense layers are cut off (``get_internals``), the convolutional feature
   extractor is frozen with ``collect_params().setattr('grad_req', 'null')``,
   and a new Dense output layer learns the digits 5-9 from 150 images.

The new layer's validation accuracy per epoch is saved as ``finetune.png``, next
to the whole network trained from scratch on the same 150 images.

Run: python examples/finetune.py [--quick] [--out DIR]
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


def loaders(images, labels, batch_size: int = 32):
    """Train and validation DataLoaders of the given images (labels 0-based)."""
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=0.3, random_state=0, stratify=labels
    )
    train = gluon.data.DataLoader(
        gluon.data.ArrayDataset(x_train, y_train), batch_size=batch_size, shuffle=True
    )
    val = gluon.data.DataLoader(gluon.data.ArrayDataset(x_val, y_val), batch_size=batch_size)
    return train, val


def build_base() -> nn.HybridSequential:
    """Convolutional features, then a 5-way output layer."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(
            nn.Conv2D(16, kernel_size=3, padding=1, activation="relu"),
            nn.MaxPool2D(pool_size=2),
            nn.Conv2D(32, kernel_size=3, padding=1, activation="relu"),
            nn.MaxPool2D(pool_size=2),
            nn.Flatten(),  # the 128 features the new head reads
            nn.Dense(64, activation="relu"),
            nn.Dense(5),
        )
    return net


def accuracy(net, data) -> float:
    """Share of ``data`` that ``net`` classifies right."""
    metric = mx.metric.Accuracy()
    for x, y in data:
        metric.update([y], [net(x)])
    return metric.get()[1]


def train(net, params, train_data, val_data, epochs: int, learning_rate: float, desc: str):
    """Adam on ``params`` only; returns the validation accuracy after each epoch."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(params, "adam", {"learning_rate": learning_rate})
    curve = []
    bar = tqdm(range(epochs), desc=desc, unit="epoch")
    for _ in bar:
        total, seen, tic = 0.0, 0, time.perf_counter()
        for x, y in train_data:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(x.shape[0])
            total += float(loss.sum().asscalar())
            seen += x.shape[0]
        curve.append(accuracy(net, val_data))
        bar.set_postfix(
            loss=f"{total / seen:.3f}",
            val_acc=f"{curve[-1]:.3f}",
            samples_per_s=f"{seen / (time.perf_counter() - tic):.0f}",
        )
    return curve


def with_new_head(features: gluon.Block) -> nn.HybridSequential:
    """Frozen ``features`` followed by a fresh 5-way Dense layer."""
    features.collect_params().setattr("grad_req", "null")
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(features)
        net.add(nn.Dense(5, in_units=128))
    net[1].initialize(mx.init.Xavier())
    net.hybridize()
    return net


def load_features(trained: nn.HybridSequential, prefix) -> gluon.SymbolBlock:
    """Export ``trained``, load the files back with ``SymbolBlock.imports``, and
    keep its graph up to the 128 convolutional features (the flattened maps)."""
    symbol_file, params_file = trained.export(str(prefix))
    loaded = gluon.SymbolBlock.imports(symbol_file, ["data"], params_file)
    internals = mx.sym.load(symbol_file).get_internals()
    features = internals[f"{trained.prefix}flatten0_flatten0_output"]
    return gluon.SymbolBlock(features, mx.sym.var("data"), params=loaded.collect_params())


def trainable(net: gluon.Block) -> dict:
    """The Parameters of ``net`` that are not frozen."""
    return {k: p for k, p in net.collect_params().items() if p.grad_req != "null"}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    mx.random.seed(0)
    np.random.seed(0)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target
    old, new = labels < 5, labels >= 5
    base_epochs, head_epochs = (2, 4) if args.quick else (8, 25)
    start = time.perf_counter()

    # 1. the base model, on the digits 0-4
    base_train, base_val = loaders(images[old], labels[old].astype(np.float32))
    base = build_base()
    base.initialize(mx.init.Xavier())
    base.hybridize()
    base_curve = train(
        base, base.collect_params(), base_train, base_val, base_epochs, 0.003, "base 0-4"
    )

    # 2. exported and loaded back, as files written elsewhere would be; 3. cut
    # under the output layer, frozen, and given a new head. The new task has only
    # 150 training images (30 per digit).
    new_images, new_labels = images[new], (labels[new] - 5).astype(np.float32)
    few = np.concatenate([np.flatnonzero(new_labels == k)[:30] for k in range(5)])
    rest = np.setdiff1d(np.arange(len(new_labels)), few)
    head_train = gluon.data.DataLoader(
        gluon.data.ArrayDataset(new_images[few], new_labels[few]), batch_size=32, shuffle=True
    )
    head_val = gluon.data.DataLoader(
        gluon.data.ArrayDataset(new_images[rest], new_labels[rest]), batch_size=64
    )
    features = load_features(base, args.out / "finetune-base")
    first = next(iter(features.collect_params().values()))
    before = first.data().copy()
    tuned = with_new_head(features)
    tuned_curve = train(
        tuned, trainable(tuned), head_train, head_val, head_epochs, 0.05, "head 5-9"
    )
    unchanged = bool((before == first.data()).asnumpy().all())

    # the whole network trained from scratch on the same 150 images, for comparison
    scratch = build_base()
    scratch.initialize(mx.init.Xavier())
    scratch.hybridize()
    scratch_curve = train(
        scratch, scratch.collect_params(), head_train, head_val, head_epochs, 0.003, "scratch"
    )
    elapsed = time.perf_counter() - start

    figure, axis = plt.subplots(figsize=(6, 3.5))
    epochs_axis = np.arange(1, head_epochs + 1)
    axis.plot(epochs_axis, tuned_curve, "o-", label="features learned on 0-4")
    axis.plot(epochs_axis, scratch_curve, "o-", label="whole network from scratch")
    axis.set(
        xlabel="epoch of the new head",
        ylabel="validation accuracy (digits 5-9)",
        title="fine-tuning a new output layer",
        ylim=(0, 1),
    )
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path = args.out / "finetune.png"
    figure.savefig(path, dpi=100)
    print(f"base model on 0-4: validation accuracy {base_curve[-1]:.4f}")
    print(f"frozen feature weights unchanged by fine-tuning: {unchanged}")
    print(f"whole network from scratch on them: validation accuracy {scratch_curve[-1]:.4f}")
    print(f"done in {elapsed:.1f} s; figure: {path}")
    print(f"final accuracy {tuned_curve[-1]:.4f}")


if __name__ == "__main__":
    main()
