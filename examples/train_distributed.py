"""Data-parallel training of the W6 MLP through a distributed KVStore.

The network is bench's W6: ``Dense(256, relu) -> Dense(10)`` on 784 inputs,
softmax cross-entropy, SGD with momentum. The data are synthetic, in [0, 1): each
row is half its class's fixed random prototype and half uniform noise, so every
worker can make the same data from a seed.
Each worker trains on its own part of the training set (``SplitSampler``);
gradients meet in the KVStore, so every worker holds the same weights.

Run it with the launcher (it starts a local Dask cluster for the servers)::

    python -m symgrad.launch -n 2 examples/train_distributed.py
    python -m symgrad.launch -n 1 examples/train_distributed.py --kvstore dist_async

Rank 0 prints the throughput (samples per second over all workers, after the
first epoch), the median time a step spends computing (forward and backward) and
in ``trainer.step`` (KVStore traffic and the update; medians, as the machine may
be shared), the load average, and the test accuracy.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import symgrad as mx
from symgrad import autograd, gluon
from symgrad.gluon.data.sampler import SplitSampler


def make_data(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` samples: a row is half its class's fixed random prototype and half
    uniform noise, in [0, 1) (the prototypes are the same for every seed)."""
    prototypes = np.random.default_rng(1234).random((10, 784), dtype=np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, count)
    x = 0.5 * prototypes[y] + 0.5 * rng.random((count, 784), dtype=np.float32)
    return x.astype(np.float32), y.astype(np.float32)


def build_net() -> gluon.nn.HybridSequential:
    """bench's W6 network."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(256, activation="relu"), gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier())
    return net


def accuracy(net: gluon.Block, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of rows whose arg-max output is the label."""
    predicted = net(mx.nd.array(x)).asnumpy().argmax(axis=1)
    return float((predicted == y).mean())


def transfer_only(kvstore: str, steps: int) -> None:
    """Time the KVStore's part of a step for W6's parameters, with no compute:
    push every gradient, the servers apply SGD, pull every weight back."""
    kv = mx.kv.create(kvstore)
    shapes = [(256, 784), (256,), (10, 256), (10,)]
    weights = [mx.nd.zeros(shape) for shape in shapes]
    grads = [mx.nd.ones(shape) * 1e-3 for shape in shapes]
    keys = list(range(len(shapes)))
    kv.set_optimizer(mx.optimizer.create("sgd", learning_rate=0.01, momentum=0.9))
    kv.init(keys, weights)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        kv.push(keys, grads)
        kv.pull(keys, out=weights)
        times.append(time.perf_counter() - start)
    kv.barrier()
    if kv.rank == 0:
        size = sum(int(np.prod(shape)) * 4 for shape in shapes)
        times = np.array(times[len(times) // 5 :]) * 1e3  # after a warm-up fifth
        print(
            f"transfer: {size} bytes each way per worker per step; push+pull "
            f"median {np.median(times):.2f} ms, p90 {np.percentile(times, 90):.2f} ms "
            f"({kv.num_workers} workers, {getattr(kv, 'num_servers', 0)} servers)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kvstore", default="dist_sync")
    parser.add_argument("--batch-size", type=int, default=128, help="per worker")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hybridize", action="store_true")
    parser.add_argument(
        "--transfer-only",
        type=int,
        default=0,
        metavar="STEPS",
        help="time STEPS steps of the store's traffic alone (push the W6 "
        "gradients, pull the weights) and exit",
    )
    args = parser.parse_args()
    if args.transfer_only:
        transfer_only(args.kvstore, args.transfer_only)
        return

    # 'none': one process and no store, the baseline of the throughput model
    kv = mx.kv.create(args.kvstore) if args.kvstore != "none" else mx.kv.create("local")
    mx.random.seed(0)
    net = build_net()
    if args.hybridize:
        net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(
        net.collect_params(),
        "sgd",
        {"learning_rate": args.lr, "momentum": 0.9, "wd": 1e-4},
        kvstore=kv if args.kvstore != "none" else None,
    )
    x, y = make_data(args.samples, seed=0)
    x_test, y_test = make_data(2048, seed=1)
    loader = gluon.data.DataLoader(
        gluon.data.ArrayDataset(x, y),
        batch_size=args.batch_size,
        last_batch="discard",
        sampler=SplitSampler(len(x), kv.num_workers, kv.rank, shuffle=True),
    )
    # the global batch: each step sums the gradients of every worker's batch
    global_batch = args.batch_size * kv.num_workers
    timed_samples, timed_seconds, compute, step_time = 0, 0.0, [], []
    load = os.getloadavg()[0]
    for epoch in range(args.epochs):
        start, total_loss, batches = time.perf_counter(), 0.0, 0
        for data, label in loader:
            t0 = time.perf_counter()
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            mx.nd.waitall()
            t1 = time.perf_counter()
            trainer.step(global_batch)
            mx.nd.waitall()
            t2 = time.perf_counter()
            total_loss += float(loss.mean().asscalar())
            batches += 1
            if epoch > 0:  # the first epoch pays compilation and connection start-up
                compute.append(t1 - t0)
                step_time.append(t2 - t1)
        elapsed = time.perf_counter() - start
        if epoch > 0:
            timed_samples += batches * global_batch
            timed_seconds += elapsed
        if kv.rank == 0:
            print(
                f"epoch {epoch}: loss {total_loss / max(batches, 1):.4f} "
                f"({batches} steps, {elapsed:.2f} s)",
                flush=True,
            )
    kv.barrier()
    if kv.rank == 0:
        if compute:
            print(
                f"throughput: {timed_samples / timed_seconds:.0f} samples/s "
                f"({kv.num_workers} workers, {global_batch} samples per step)"
            )
            print(
                f"per step (median): compute {1e3 * np.median(compute):.2f} ms, "
                f"trainer.step {1e3 * np.median(step_time):.2f} ms; load average "
                f"{load:.1f} -> {os.getloadavg()[0]:.1f}"
            )
        print(f"test accuracy: {accuracy(net, x_test, y_test):.4f}")


if __name__ == "__main__":
    main()
