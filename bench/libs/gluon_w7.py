"""W7, the CNN training step of workloads.md, in each library, and its float64 reference.

The network: [Conv2D(32, 3x3, padding 1, no bias), BatchNorm, relu] x 2, MaxPool2D(2),
[Conv2D(64, ...), BatchNorm, relu] x 2, MaxPool2D(2), GlobalAvgPool2D, Dense(10), then
``SoftmaxCrossEntropyLoss`` and SGD (learning rate 0.01, momentum 0.9, weight decay
1e-4). One step = ``with autograd.record(): L = loss(net(X), y)``, ``L.backward()``,
``trainer.step(B)``; BatchNorm trains (batch statistics, running statistics updated).

The library comes from the column's environment: ``BENCH_MX`` = ``symgrad`` or
``mxnet`` runs the Gluon script unchanged on either (``BENCH_HYBRIDIZE=1``
hybridizes with ``static_alloc=True, static_shape=True``); ``torch`` runs the
PyTorch port (``nn.Sequential`` + ``torch.optim.SGD``, ``BENCH_TORCH_COMPILE=1``
compiles the network + loss). Nothing is imported until a setup runs, so the
harness and the reference can import this module in any process.
"""

from __future__ import annotations

import importlib
import os

import numpy as np


def library() -> str:
    """``BENCH_MX``, read when needed: a cell run alone sets its column's environment
    after importing the harness, which imports this module."""
    return os.environ.get("BENCH_MX", "symgrad")


def option(name: str) -> bool:
    """Whether ``BENCH_<name>`` (HYBRIDIZE, TORCH_COMPILE) is "1"."""
    return os.environ.get(f"BENCH_{name}") == "1"


EPS = 1e-5  # BatchNorm's epsilon (Gluon's and PyTorch's default)
# The changes' tolerance (the loss keeps 2e-3). Each BatchNorm -> relu layer has about
# ten relu inputs within 1e-5 of zero and each max pooling a few windows whose two
# largest values are within 1e-5, where float32 may choose the other side than float64
# (BatchNorm's float32 statistics are that far off); one such unit moves single
# elements of the conv weights' changes by up to 2%. MXNet 1.9.1 and torch.compile were
# 7.9e-3 off on the first step, PyTorch eager and symgrad 6e-4. (W6's relu ties are
# bounded exactly, reference.SLACK; bounding these would need the slack carried back
# through the layers.)
GRAD_RTOL = 2e-2
DEFAULT_SIZES = {"B": 32, "side": 32, "widths": (32, 64), "classes": 10}


def param_names(n_convs: int = 4) -> list[str]:
    """The trainable parameters in Gluon's order: each conv's weight, its BatchNorm's
    gamma and beta, then the Dense weight and bias."""
    names = []
    for k in range(n_convs):
        names += [f"conv{k}_w", f"bn{k}_gamma", f"bn{k}_beta"]
    return names + ["dense_w", "dense_b"]


def _channels(widths) -> list[int]:
    """Output channels of the four convolutions: two of each width."""
    return [widths[0], widths[0], widths[1], widths[1]]


def xavier(rng: np.random.Generator, shape: tuple, magnitude: float = 3.0) -> np.ndarray:
    """MXNet's default ``mx.init.Xavier()`` (uniform, fan average) for a weight of any rank:
    fans are the first two axes times the product of the rest (a kernel's window)."""
    window = int(np.prod(shape[2:]))
    fan_out, fan_in = shape[0] * window, shape[1] * window
    scale = np.sqrt(magnitude / ((fan_in + fan_out) / 2.0))
    return rng.uniform(-scale, scale, shape)


def make_inputs(rng: np.random.Generator, sizes: dict) -> dict:
    """X ~ N(0, 1), labels, then Xavier (magnitude 3) conv and Dense weights, BatchNorm's
    gamma one and beta zero, zero Dense bias; every library loads these."""
    B, side, classes = sizes["B"], sizes["side"], sizes["classes"]
    X = rng.standard_normal((B, 3, side, side))
    y = rng.integers(0, classes, B)
    out, cin = {}, 3
    for k, cout in enumerate(_channels(sizes["widths"])):
        out[f"conv{k}_w"] = xavier(rng, (cout, cin, 3, 3))
        out[f"bn{k}_gamma"], out[f"bn{k}_beta"] = np.ones(cout), np.zeros(cout)
        cin = cout
    out["dense_w"] = xavier(rng, (classes, cin))
    out["dense_b"] = np.zeros(classes)
    arrays = {k: v.astype(np.float32) for k, v in out.items()}
    return {"X": X.astype(np.float32), "y": y.astype(np.int64), **arrays}


# ---------------------------------------------------------------- Gluon (symgrad, MXNet)


def __getattr__(name: str):
    """``VERSION`` and, on symgrad, ``settle`` (wait for background compilation) are
    looked up lazily: importing this module imports no framework."""
    if name == "VERSION":
        return _framework().__version__
    if name == "settle" and library() == "symgrad":
        return symgrad_settle
    raise AttributeError(name)


def _framework():
    """The library ``BENCH_MX`` names, imported on first use."""
    return importlib.import_module(library())


def symgrad_settle() -> None:
    """Wait for symgrad's background compilation (steady state means compiled code)."""
    try:  # public from the compiler's restructuring on
        from symgrad_compiler import wait_for_compilation
    except ImportError:  # before it
        from symgrad_compiler.lower.runner import wait_for_compilation
    wait_for_compilation()


def _sizes(inp: dict) -> tuple[tuple[int, int], int]:
    """The conv widths and the class count, read from the weights (tests shrink them)."""
    return (inp["conv0_w"].shape[0], inp["conv2_w"].shape[0]), inp["dense_w"].shape[0]


def _sgd() -> dict:
    """The optimizer of every training row (workloads.md: SGD, lr 0.01, momentum 0.9,
    wd 1e-4); imported late, as the rows module imports this one."""
    from bench.workloads import W6_SGD

    return dict(W6_SGD)


def _gluon_net(mx, widths, classes):
    """The W7 HybridSequential (parameters not yet initialised)."""
    nn = mx.gluon.nn
    net = nn.HybridSequential()
    with net.name_scope():
        for k, cout in enumerate(_channels(widths)):
            net.add(nn.Conv2D(cout, 3, padding=1, use_bias=False), nn.BatchNorm())
            net.add(nn.Activation("relu"))
            if k % 2 == 1:
                net.add(nn.MaxPool2D(2))
        net.add(nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net


def load_trainable(mx, net, X, inp: dict, names: list[str]) -> list:
    """Initialise ``net``, run it once for its deferred shapes, load ``inp[name]`` into
    its trainable parameters in order; returns those parameters."""
    net.initialize(mx.init.Xavier(magnitude=3))
    net(X)
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    if len(params) != len(names):
        raise RuntimeError(f"{len(params)} trainable parameters, expected {len(names)}")
    for p, name in zip(params, names):
        p.set_data(mx.nd.array(inp[name]))
    return params


def gluon_train_step(mx, net, params, loss, X, y, batch: int):
    """step() = record the loss, backward, ``trainer.step(batch)``, wait; returns the
    losses and the parameters after the update."""
    autograd, nd = mx.autograd, mx.nd
    if option("HYBRIDIZE"):
        net.hybridize(static_alloc=True, static_shape=True)
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", _sgd())

    def step():
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(batch)
        nd.waitall()
        return L, [p.data() for p in params]

    return step


def _gluon_w7(inp: dict):
    mx = _framework()
    X, y = mx.nd.array(inp["X"]), mx.nd.array(inp["y"])  # MXNet labels are float arrays
    net = _gluon_net(mx, *_sizes(inp))
    params = load_trainable(mx, net, X, inp, param_names())
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    return gluon_train_step(mx, net, params, loss, X, y, X.shape[0])


# ---------------------------------------------------------------- PyTorch


def _torch_w7(inp: dict):
    import torch
    from torch import nn

    torch.set_num_threads(2)
    (widths, classes), layers, cin = _sizes(inp), [], 3
    for k, cout in enumerate(_channels(widths)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, EPS)]
        layers.append(nn.ReLU())
        if k % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    net = nn.Sequential(*layers)
    params = list(net.parameters())  # conv weight, bn weight, bn bias, ..., linear
    with torch.no_grad():
        for p, name in zip(params, param_names()):
            p.copy_(torch.from_numpy(np.array(inp[name])))
    X, y = torch.from_numpy(inp["X"]), torch.from_numpy(inp["y"])
    return torch_train_step(net, params, lambda: nn.functional.cross_entropy(net(X), y))


def torch_train_step(net, params, forward):
    """step() = ``torch.optim.SGD`` step on ``forward()``'s loss (compiled when
    ``BENCH_TORCH_COMPILE=1``; the compiling call runs in setup and updates nothing)."""
    import torch

    if option("TORCH_COMPILE"):
        forward = torch.compile(forward)
        forward().backward()
        net.zero_grad(set_to_none=True)
    sgd = _sgd()
    opt = torch.optim.SGD(
        params, lr=sgd["learning_rate"], momentum=sgd["momentum"], weight_decay=sgd["wd"]
    )

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward()
        loss.backward()
        opt.step()
        return loss.detach(), [p.detach() for p in params]

    return step


def w7(inp: dict):
    """W7 setup: returns ``step`` (see the module docstring) for the library of
    ``BENCH_MX``; the sizes are read from the inputs."""
    return (_torch_w7 if library() == "torch" else _gluon_w7)(inp)


# ---------------------------------------------------------------- float64 reference


def _conv3x3(x, w):
    """Convolution, 3x3, padding 1, stride 1; returns the output and the padded windows."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # b c h w i j
    return np.einsum("bchwij,fcij->bfhw", cols, w, optimize=True), cols


def _conv3x3_backward(dout, cols, w):
    """Gradients of the 3x3 convolution w.r.t. its weight and input."""
    dw = np.einsum("bfhw,bchwij->fcij", dout, cols, optimize=True)
    B, _, H, W = dout.shape
    dxp = np.zeros((B, w.shape[1], H + 2, W + 2))
    for i in range(3):
        for j in range(3):
            dxp[:, :, i : i + H, j : j + W] += np.einsum("bfhw,fc->bchw", dout, w[:, :, i, j])
    return dw, dxp[:, :, 1:-1, 1:-1]


def _batchnorm(x, gamma, beta):
    """Training-mode BatchNorm over (batch, height, width); returns output and xhat,
    inv_std for the backward."""
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + EPS)
    xhat = (x - mean) * inv_std
    return gamma[:, None, None] * xhat + beta[:, None, None], xhat, inv_std


def _batchnorm_backward(dout, xhat, inv_std, gamma):
    """d/dx, d/dgamma, d/dbeta of training-mode BatchNorm."""
    axes = (0, 2, 3)
    count = dout.size // dout.shape[1]
    dxhat = dout * gamma[:, None, None]
    dx = (inv_std / count) * (
        count * dxhat
        - dxhat.sum(axis=axes, keepdims=True)
        - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True)
    )
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


def softmax_cross_entropy(z, y):
    """Per-sample losses of softmax cross-entropy and d(sum of them)/dz."""
    zmax = z.max(axis=1, keepdims=True)
    logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
    rows = np.arange(z.shape[0])
    dz = np.exp(logp)
    dz[rows, y] -= 1.0
    return -logp[rows, y], dz


def losses_and_grads(inp: dict, names: list[str]):
    """The W7 forward in float64 and the gradients of the summed losses, by hand."""
    p = {n: np.asarray(inp[n], np.float64) for n in names}
    h, y, tape = np.asarray(inp["X"], np.float64), inp["y"], []
    for k in range(4):
        conv, cols = _conv3x3(h, p[f"conv{k}_w"])
        bn, xhat, inv_std = _batchnorm(conv, p[f"bn{k}_gamma"], p[f"bn{k}_beta"])
        h = np.maximum(bn, 0.0)
        tape.append((cols, bn, xhat, inv_std, None))
        if k % 2 == 1:  # 2x2 max pooling
            B, C, H, W = h.shape
            windows = h.reshape(B, C, H // 2, 2, W // 2, 2)
            h = windows.max(axis=(3, 5))
            tape[-1] = tape[-1][:4] + ((windows, h),)
    pooled = h.mean(axis=(2, 3))
    losses, dz = softmax_cross_entropy(pooled @ p["dense_w"].T + p["dense_b"], y)
    grads = {"dense_w": dz.T @ pooled, "dense_b": dz.sum(axis=0)}
    dh = np.broadcast_to((dz @ p["dense_w"])[:, :, None, None], h.shape) / (h[0, 0].size)
    for k in reversed(range(4)):
        cols, bn, xhat, inv_std, pool = tape[k]
        if pool is not None:  # the gradient goes to the window's maximum (relu zeros: masked)
            windows, out = pool
            winner = windows == out[:, :, :, None, :, None]
            dh = (winner * dh[:, :, :, None, :, None]).reshape(bn.shape)
        dconv, grads[f"bn{k}_gamma"], grads[f"bn{k}_beta"] = _batchnorm_backward(
            dh * (bn > 0), xhat, inv_std, p[f"bn{k}_gamma"]
        )
        grads[f"conv{k}_w"], dh = _conv3x3_backward(dconv, cols, p[f"conv{k}_w"])
    return losses, [grads[n] for n in names]


def sgd_step(inp: dict, names: list[str], grads_of, batch: int, moms=None):
    """One SGD step as MXNet's ``sgd_mom_update`` (= torch.optim.SGD at a constant rate):
    g = grad / B + wd w; mom = momentum mom - lr g; w += mom, where ``grads_of(inp)``
    gives the losses and the gradients of their sum and B is ``batch`` (what
    ``trainer.step`` is given). ``moms``: the momenta to start from (zero by default).
    Returns the mean loss and each parameter's change."""
    sgd = _sgd()
    lr, momentum, wd = sgd["learning_rate"], sgd["momentum"], sgd["wd"]
    losses, grads = grads_of(inp)
    changes = []
    for i, (n, g) in enumerate(zip(names, grads)):
        w = np.asarray(inp[n], np.float64)
        mom = np.zeros_like(w) if moms is None else np.asarray(moms[i], np.float64)
        changes.append(momentum * mom - lr * (g / batch + wd * w))
    return float(np.mean(losses)), changes


def reference(inp: dict, moms=None):
    """The W7 training step in float64: the mean loss before the update and each
    parameter's change (cell.py compares them)."""
    names = param_names()
    return sgd_step(inp, names, lambda d: losses_and_grads(d, names), len(inp["y"]), moms)
