"""The "short script" rows: the wall time of a whole fresh process running a d2l-style
softmax regression, where compiling must cost the user nothing.

Run as a script (``python bench/libs/short_script.py``) it is that process: it
imports ``symgrad`` or ``mxnet`` as ``mx`` (``BENCH_MX``; ``torch`` runs the PyTorch
port), trains W (784, 10) and b (10,) from scratch with ``nd``, ``autograd`` and
manual SGD for 10 epochs of 60 batches of 256 synthetic images (seeded), printing the
loss per epoch as d2l's chapter 3 does, and last a ``SHORT-RESULT`` line with the
epochs' mean losses for the check. Imported, it gives the harness :func:`run`,
which times such a process under a column's interpreter and environment, with the
compile caches in a given directory, and checks its losses against a float64 numpy
run of the same training (:func:`reference_losses`).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np

EPOCHS, BATCHES, BATCH, FEATURES, CLASSES = 10, 60, 256, 784, 10
LR = 0.1
MARK = "SHORT-RESULT "
# The columns with a short script, and the library each runs.
LIBRARY_OF_COLUMN = {
    "symgrad": "symgrad",
    "symgrad-interp": "symgrad",
    "mxnet": "mxnet",
    "torch": "torch",
}
TIMEOUT = 900  # seconds


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images U[0, 1), labels of a random linear teacher (so the loss falls), and
    W's initial value N(0, 0.01); from ``default_rng(1234)``."""
    rng = np.random.default_rng(1234)
    X = rng.random((BATCHES * BATCH, FEATURES)).astype(np.float32)
    teacher = rng.standard_normal((FEATURES, CLASSES))
    y = np.argmax((X - 0.5) @ teacher, axis=1).astype(np.float32)
    W0 = rng.normal(0.0, 0.01, (FEATURES, CLASSES)).astype(np.float32)
    return X, y, W0


def train_mx(mx) -> list[float]:
    """The d2l softmax regression from scratch in ``mx.nd`` and ``mx.autograd``."""
    nd, autograd = mx.nd, mx.autograd
    X, y, W0 = data()
    features, labels = nd.array(X), nd.array(y)
    W, b = nd.array(W0), nd.zeros(CLASSES)
    W.attach_grad()
    b.attach_grad()

    def softmax(Z):
        Z_exp = Z.exp()
        return Z_exp / Z_exp.sum(axis=1, keepdims=True)

    def net(X):
        return softmax(nd.dot(X.reshape((-1, FEATURES)), W) + b)

    def cross_entropy(y_hat, y):
        return -nd.pick(y_hat, y).log()

    def sgd(params, lr, batch_size):
        for param in params:
            param[:] = param - lr * param.grad / batch_size

    losses = []
    for epoch in range(EPOCHS):
        train_l_sum, train_acc_sum = 0.0, 0.0
        for i in range(BATCHES):
            Xb, yb = features[i * BATCH : (i + 1) * BATCH], labels[i * BATCH : (i + 1) * BATCH]
            with autograd.record():
                y_hat = net(Xb)
                l = cross_entropy(y_hat, yb)  # noqa: E741 (d2l's name)
            l.backward()
            sgd([W, b], LR, BATCH)
            train_l_sum += l.sum().asscalar()
            train_acc_sum += (y_hat.argmax(axis=1) == yb).sum().asscalar()
        n = BATCHES * BATCH
        print(f"epoch {epoch + 1}, loss {train_l_sum / n:.4f}, train acc {train_acc_sum / n:.3f}")
        losses.append(train_l_sum / n)
    return losses


def train_torch() -> list[float]:
    """The same script ported to PyTorch (tensors with ``requires_grad``)."""
    import torch

    torch.set_num_threads(2)
    X, y, W0 = data()
    features, labels = torch.from_numpy(X), torch.from_numpy(y).long()
    W = torch.from_numpy(W0).requires_grad_()
    b = torch.zeros(CLASSES, requires_grad=True)
    losses = []
    for epoch in range(EPOCHS):
        train_l_sum, train_acc_sum = 0.0, 0.0
        for i in range(BATCHES):
            Xb, yb = features[i * BATCH : (i + 1) * BATCH], labels[i * BATCH : (i + 1) * BATCH]
            Z_exp = (Xb @ W + b).exp()
            y_hat = Z_exp / Z_exp.sum(dim=1, keepdim=True)
            l = -y_hat.gather(1, yb[:, None]).squeeze(1).log()  # noqa: E741
            l.sum().backward()
            with torch.no_grad():
                for param in (W, b):
                    param -= LR * param.grad / BATCH
                    param.grad.zero_()
            train_l_sum += l.sum().item()
            train_acc_sum += (y_hat.argmax(dim=1) == yb).sum().item()
        n = BATCHES * BATCH
        print(f"epoch {epoch + 1}, loss {train_l_sum / n:.4f}, train acc {train_acc_sum / n:.3f}")
        losses.append(train_l_sum / n)
    return losses


@functools.lru_cache(maxsize=1)
def reference_losses() -> np.ndarray:
    """The epochs' mean losses of the same training in float64 numpy."""
    X, y, W0 = (a.astype(np.float64) for a in data())
    labels = y.astype(np.int64)
    W, b = W0.copy(), np.zeros(CLASSES)
    losses = []
    for _ in range(EPOCHS):
        total = 0.0
        for i in range(BATCHES):
            Xb, yb = X[i * BATCH : (i + 1) * BATCH], labels[i * BATCH : (i + 1) * BATCH]
            Z_exp = np.exp(Xb @ W + b)
            y_hat = Z_exp / Z_exp.sum(axis=1, keepdims=True)
            total += -np.log(y_hat[np.arange(BATCH), yb]).sum()
            dZ = y_hat
            dZ[np.arange(BATCH), yb] -= 1.0  # d(sum of losses)/dZ
            W -= LR * (Xb.T @ dZ) / BATCH
            b -= LR * dZ.sum(axis=0) / BATCH
        losses.append(total / (BATCHES * BATCH))
    return np.array(losses)


def run(column, cache_dir: str, env: dict, python: str) -> dict:
    """Time one fresh process of the script for ``column`` (its interpreter ``python``,
    its environment ``env`` with the caches in ``cache_dir``); returns a result dict as
    a cell's: "ok" with ``times`` = [wall seconds], or "WRONG" / "error" / "n/a"."""
    library = LIBRARY_OF_COLUMN.get(column.key)
    if library is None:
        return {"status": "n/a", "reason": "no short script", "absent": True}
    if not os.path.exists(python):
        return {"status": "n/a", "reason": f"no interpreter {column.python}"}
    env = dict(env, BENCH_MX=library)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [python, __file__], env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timeout after {TIMEOUT} s"}
    wall = time.perf_counter() - t0
    lines = [s for s in done.stdout.splitlines() if s.startswith(MARK)]
    if done.returncode != 0 or not lines:
        if "No module named" in done.stderr:
            return {"status": "n/a", "reason": "import failed"}
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"status": "error", "reason": f"crashed ({done.returncode}): {tail[:100]}"}
    losses = np.array(json.loads(lines[-1][len(MARK) :]))
    ref = reference_losses()
    err = float(np.max(np.abs(losses - ref) / np.abs(ref))) if losses.shape == ref.shape else 1.0
    if not err <= 2e-3:  # harness.RTOL
        return {"status": "WRONG", "reason": f"epoch losses off by {err:.1e}", "err": err}
    return {"status": "ok", "times": [wall], "err": err}


def main() -> None:
    """The script: train, then print the epochs' losses for the harness."""
    library = os.environ.get("BENCH_MX", "symgrad")
    if library == "torch":
        losses = train_torch()
    else:
        losses = train_mx(importlib.import_module(library))
    print(MARK + json.dumps([float(v) for v in losses]), flush=True)


if __name__ == "__main__":
    sys.exit(main())
