"""W8, the LSTM language-model training step of workloads.md, in each library, and its
float64 reference.

Tokens X, Y (35, 32) in [0, 10000), layout TNC; Embedding(10000, 200), a two-layer
``gluon.rnn.LSTM(200)``, ``Dense(10000, flatten=False)``; ``SoftmaxCrossEntropyLoss``
over every token (the output reshaped to (35 * 32, 10000), as Gluon's word language
model does); no dropout; ``trainer.step(32)`` with the SGD of every training row. The
library comes from ``BENCH_MX`` (``symgrad``, ``mxnet`` or ``torch``, as in
``gluon_w7``); PyTorch's port is ``nn.Embedding`` + ``nn.LSTM`` + ``nn.Linear`` with
the summed token losses divided by 32 (what ``trainer.step(32)`` does to Gluon's).
Both LSTMs keep four gates in the order input, forget, cell, output, with two biases.
"""

from __future__ import annotations

import numpy as np

from bench.libs import gluon_w7
from bench.libs.gluon_w7 import library, xavier

DEFAULT_SIZES = {"T": 35, "N": 32, "vocab": 10000, "hidden": 200, "layers": 2}
LAYER_PARAMS = ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
PARAM_NAMES = (
    ["embedding"]
    + [f"l{k}_{p}" for k in range(DEFAULT_SIZES["layers"]) for p in LAYER_PARAMS]
    + ["dense_w", "dense_b"]
)


def make_inputs(rng: np.random.Generator, sizes: dict) -> dict:
    """Tokens X and next tokens Y, then Xavier (magnitude 3) weights and zero biases in
    Gluon's parameter order; every library loads these."""
    T, N, V, H = sizes["T"], sizes["N"], sizes["vocab"], sizes["hidden"]
    X = rng.integers(0, V, (T, N))
    Y = rng.integers(0, V, (T, N))
    out = {"embedding": xavier(rng, (V, H))}  # embedding size = hidden size (200)
    for k in range(sizes["layers"]):
        out[f"l{k}_i2h_weight"] = xavier(rng, (4 * H, H))
        out[f"l{k}_h2h_weight"] = xavier(rng, (4 * H, H))
        out[f"l{k}_i2h_bias"] = out[f"l{k}_h2h_bias"] = np.zeros(4 * H)
    out["dense_w"], out["dense_b"] = xavier(rng, (V, H)), np.zeros(V)
    arrays = {k: v.astype(np.float32) for k, v in out.items()}
    return {"X": X.astype(np.int64), "y": Y.astype(np.int64), **arrays}


def __getattr__(name: str):
    """``VERSION`` and ``settle``, lazily (see ``gluon_w7``)."""
    return gluon_w7.__getattr__(name)


# ---------------------------------------------------------------- Gluon (symgrad, MXNet)


def _gluon_w8(inp: dict):
    mx = gluon_w7._framework()
    gluon = mx.gluon
    V, H = inp["embedding"].shape
    N = inp["X"].shape[1]

    class LanguageModel(gluon.HybridBlock):
        """Embedding -> LSTM -> Dense over every time step."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.embedding = gluon.nn.Embedding(V, H)
                self.rnn = gluon.rnn.LSTM(H, num_layers=2, layout="TNC", input_size=H)
                self.decoder = gluon.nn.Dense(V, flatten=False, in_units=H)

        def hybrid_forward(self, F, x):
            return self.decoder(self.rnn(self.embedding(x)))

    X, Y = mx.nd.array(inp["X"]), mx.nd.array(inp["y"])
    net = LanguageModel()
    params = gluon_w7.load_trainable(mx, net, X, inp, PARAM_NAMES)
    softmax_ce = gluon.loss.SoftmaxCrossEntropyLoss()

    def loss(out, target):
        return softmax_ce(out.reshape((-1, V)), target.reshape((-1,)))

    return gluon_w7.gluon_train_step(mx, net, params, loss, X, Y, N)


# ---------------------------------------------------------------- PyTorch


def _torch_w8(inp: dict):
    import torch
    from torch import nn

    torch.set_num_threads(2)
    V, H = inp["embedding"].shape
    T, N = inp["X"].shape

    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, H)
            self.rnn = nn.LSTM(H, H, num_layers=2)
            self.decoder = nn.Linear(H, V)

        def forward(self, x):
            return self.decoder(self.rnn(self.embedding(x))[0])

    net = LanguageModel()
    # PyTorch's order: weight_ih, weight_hh, bias_ih, bias_hh per layer, as Gluon's
    params = list(net.parameters())
    with torch.no_grad():
        for p, name in zip(params, PARAM_NAMES):
            p.copy_(torch.from_numpy(np.array(inp[name])))
    X, Y = torch.from_numpy(inp["X"]), torch.from_numpy(inp["y"]).reshape(-1)

    def forward():
        out = net(X).reshape(-1, V)
        return nn.functional.cross_entropy(out, Y, reduction="sum") / N

    step = gluon_w7.torch_train_step(net, params, forward)

    def mean_loss_step():  # the value the check compares: the mean token loss
        loss, updated = step()
        return loss / T, updated

    return mean_loss_step


def w8(inp: dict):
    """W8 setup: returns ``step`` for the library of ``BENCH_MX``; sizes from the inputs."""
    return (_torch_w8 if library() == "torch" else _gluon_w8)(inp)


# ---------------------------------------------------------------- float64 reference


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def losses_and_grads(inp: dict):
    """Token losses of the W8 model in float64 and the gradients of their sum, with
    backpropagation through time written out."""
    p = {n: np.asarray(inp[n], np.float64) for n in PARAM_NAMES}
    X, Y = inp["X"], inp["y"]
    T, N = X.shape
    H = p["embedding"].shape[1]
    layer_in, tapes = p["embedding"][X], []  # (T, N, H)
    for k in range(2):
        Wi, Wh = p[f"l{k}_i2h_weight"], p[f"l{k}_h2h_weight"]
        bias = p[f"l{k}_i2h_bias"] + p[f"l{k}_h2h_bias"]
        h, c = np.zeros((N, H)), np.zeros((N, H))
        outs, steps = np.empty((T, N, H)), []
        pre_in = layer_in @ Wi.T + bias
        for t in range(T):
            gates = pre_in[t] + h @ Wh.T
            i, f = _sigmoid(gates[:, :H]), _sigmoid(gates[:, H : 2 * H])
            g, o = np.tanh(gates[:, 2 * H : 3 * H]), _sigmoid(gates[:, 3 * H :])
            c_prev, c = c, f * c + i * g
            steps.append((i, f, g, o, c_prev, c, h))  # h: the state before this step
            h = o * np.tanh(c)
            outs[t] = h
        tapes.append((layer_in, steps))
        layer_in = outs
    flat = layer_in.reshape(T * N, H)
    losses, dz = gluon_w7.softmax_cross_entropy(flat @ p["dense_w"].T + p["dense_b"], Y.ravel())
    grads = {"dense_w": dz.T @ flat, "dense_b": dz.sum(axis=0)}
    d_out = (dz @ p["dense_w"]).reshape(T, N, H)
    for k in reversed(range(2)):
        layer_in, steps = tapes[k]
        Wh = p[f"l{k}_h2h_weight"]
        d_gates = np.empty((T, N, 4 * H))
        dh, dc = np.zeros((N, H)), np.zeros((N, H))
        for t in reversed(range(T)):
            i, f, g, o, c_prev, c, _ = steps[t]
            dh = dh + d_out[t]
            tc = np.tanh(c)
            dc = dc + dh * o * (1.0 - tc * tc)
            d_gates[t] = np.concatenate(
                [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g)]
                + [dh * tc * o * (1 - o)],
                axis=1,
            )
            dh, dc = d_gates[t] @ Wh, dc * f
        flat_gates = d_gates.reshape(T * N, 4 * H)
        h_prev = np.stack([s[6] for s in steps])  # the state each step started from
        grads[f"l{k}_i2h_weight"] = flat_gates.T @ layer_in.reshape(T * N, -1)
        grads[f"l{k}_h2h_weight"] = flat_gates.T @ h_prev.reshape(T * N, H)
        grads[f"l{k}_i2h_bias"] = grads[f"l{k}_h2h_bias"] = flat_gates.sum(axis=0)
        d_out = (flat_gates @ p[f"l{k}_i2h_weight"]).reshape(T, N, -1)
    d_embedding = np.zeros_like(p["embedding"])
    np.add.at(d_embedding, X.ravel(), d_out.reshape(T * N, H))
    grads["embedding"] = d_embedding
    return losses, [grads[n] for n in PARAM_NAMES]


def reference(inp: dict, moms=None):
    """The W8 training step in float64: the mean token loss before the update and each
    parameter's change (``trainer.step(N)``: the summed gradient over N)."""
    return gluon_w7.sgd_step(inp, PARAM_NAMES, losses_and_grads, inp["X"].shape[1], moms)
