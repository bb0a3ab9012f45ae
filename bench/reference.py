"""float64 references, written by hand from the formulas in workloads.md.

Each function takes the (float32) inputs, computes in float64 and returns
``(value, [gradients...])`` in the order of ``workloads.GRAD_NAMES``.
"""

import numpy as np

from .libs import gluon_w7, gluon_w8, zoo


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def w1(inp):
    """W1 closed form: f = sum(tanh(xw+b) sigmoid(x) + 0.5 exp(-x^2))."""
    x, w, b = _f64(inp["x"]), _f64(inp["w"]), _f64(inp["b"])
    t = np.tanh(x * w + b)
    s = 1.0 / (1.0 + np.exp(-x))
    e = np.exp(-x * x)
    f = np.sum(t * s + 0.5 * e)
    db = (1.0 - t * t) * s
    dx = db * w + t * s * (1.0 - s) - x * e
    return f, [dx, db * x, db]


def w2(inp):
    """W2 MLP step: forward, then backprop written out by hand."""
    X, y = _f64(inp["X"]), inp["y"]
    W1, b1, W2, b2 = (_f64(inp[k]) for k in ("W1", "b1", "W2", "b2"))
    B = X.shape[0]
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    zmax = z.max(axis=1, keepdims=True)
    ez = np.exp(z - zmax)
    logp = z - zmax - np.log(ez.sum(axis=1, keepdims=True))
    rows = np.arange(B)
    loss = -np.mean(logp[rows, y])
    dz = np.exp(logp)  # softmax
    dz[rows, y] -= 1.0
    dz /= B
    dW2 = h.T @ dz
    db2 = dz.sum(axis=0)
    dpre = (dz @ W2.T) * (1.0 - h * h)
    return loss, [X.T @ dpre, dpre.sum(axis=0), dW2, db2]


def w3(inp):
    """W3: 50-op elementwise cycle; backprop through a stored tape."""
    v = _f64(inp["x"])
    tape = []
    for i in range(50):
        k = i % 5
        tape.append(v)
        if k == 0:
            v = np.sin(v)
        elif k == 1:
            v = v * 1.01
        elif k == 2:
            v = v + 0.1
        elif k == 3:
            v = np.tanh(v)
        else:
            v = np.exp(v)
    f = v.sum()
    g = np.ones_like(v)
    out = v
    for i in reversed(range(50)):
        k, a = i % 5, tape[i]
        if k == 0:
            g = g * np.cos(a)
        elif k == 1:
            g = g * 1.01
        elif k == 3:
            g = g * (1.0 - np.tanh(a) ** 2)
        elif k == 4:
            g = g * out
        out = a
    return f, [g]


def w4(inp):
    """W4 closed form: value sum(g) with g = df/dx, gradient h = d(sum g)/dx."""
    x = _f64(inp["x"])
    t = np.tanh(x)
    e = np.exp(-x * x)
    u = 1.0 - t * t
    A = u - 2.0 * x * t
    g = e * A
    h = e * (-2.0 * x * A - 2.0 * t * u - 2.0 * t - 2.0 * x * u)
    return g.sum(), [h]


def cnn(inp):
    """CNN step: conv (im2col by sliding windows), BatchNorm with batch statistics,
    relu, 2x2 max pooling, fully connected, mean softmax cross-entropy; backprop
    by hand."""
    from .workloads import CNN_EPS

    X, y = _f64(inp["X"]), inp["y"]
    w, gamma, beta = (_f64(inp[k]) for k in ("conv_w", "gamma", "beta"))
    fw, fb = _f64(inp["fc_w"]), _f64(inp["fc_b"])
    B = X.shape[0]
    cols = np.lib.stride_tricks.sliding_window_view(X, (3, 3), axis=(2, 3))  # b c h w i j
    conv = np.einsum("bchwij,fcij->bfhw", cols, w)
    axes = (0, 2, 3)
    count = conv.size // conv.shape[1]
    mean = conv.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(conv.var(axis=axes, keepdims=True) + CNN_EPS)
    xhat = (conv - mean) * inv_std
    bn = gamma[:, None, None] * xhat + beta[:, None, None]
    r = np.maximum(bn, 0.0)
    _, C, H, W = r.shape
    windows = r.reshape(B, C, H // 2, 2, W // 2, 2)
    pooled = windows.max(axis=(3, 5))
    p = pooled.reshape(B, -1)
    z = p @ fw.T + fb
    zmax = z.max(axis=1, keepdims=True)
    logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
    rows = np.arange(B)
    loss = -np.mean(logp[rows, y])
    dz = np.exp(logp)
    dz[rows, y] -= 1.0
    dz /= B
    dfw, dfb = dz.T @ p, dz.sum(axis=0)
    dpooled = (dz @ fw).reshape(pooled.shape)
    winner = windows == pooled[:, :, :, None, :, None]  # random data: no ties
    dr = (winner * dpooled[:, :, :, None, :, None]).reshape(r.shape)
    dbn = dr * (bn > 0)
    dgamma, dbeta = (dbn * xhat).sum(axis=axes), dbn.sum(axis=axes)
    dxhat = dbn * gamma[:, None, None]
    dconv = (
        inv_std
        / count
        * (
            count * dxhat
            - dxhat.sum(axis=axes, keepdims=True)
            - xhat * (dxhat * xhat).sum(axis=axes, keepdims=True)
        )
    )
    dw = np.einsum("bchwij,bfhw->fcij", cols, dconv)
    return loss, [dw, dgamma, dbeta, dfw, dfb]


def _w6_losses_and_grads(X, y, W1, b1, W2, b2):
    """Per-sample softmax cross-entropy of relu(X W1^T + b1) W2^T + b2 and the
    gradients of their sum (what Gluon's ``L.backward()`` on the loss vector gives)."""
    pre = X @ W1.T + b1
    h = np.maximum(pre, 0.0)
    z = h @ W2.T + b2
    zmax = z.max(axis=1, keepdims=True)
    logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
    rows = np.arange(X.shape[0])
    losses = -logp[rows, y]
    dz = np.exp(logp)  # d sum(L) / dz = softmax - onehot
    dz[rows, y] -= 1.0
    dpre = (dz @ W2) * (pre > 0)
    return losses, [dpre.T @ X, dpre.sum(axis=0), dz.T @ h, dz.sum(axis=0)]


def w6(inp):
    """W6 forward+backward: the per-sample losses and the gradients of their sum."""
    X, y = _f64(inp["X"]), inp["y"]
    return _w6_losses_and_grads(X, y, *(_f64(inp[k]) for k in ("W1", "b1", "W2", "b2")))


def w6_step(inp, steps=1, moms=None):
    """W6 training: ``steps`` SGD steps with momentum and weight decay as MXNet's
    ``sgd_mom_update`` (the same as torch.optim.SGD for a constant learning rate):
    g = grad / B + wd w;  mom = momentum mom - lr g;  w += mom.

    ``moms``: the momenta to start from (zero by default; MXNet's momentum is the
    previous step's change of the weights). Returns the mean loss of the last step
    (before its update) and how far each parameter moved from its value in ``inp``
    (cell.py compares the changes).
    """
    from .workloads import W6_SGD

    lr, momentum, wd = W6_SGD["learning_rate"], W6_SGD["momentum"], W6_SGD["wd"]
    X, y = _f64(inp["X"]), inp["y"]
    initial = [_f64(inp[k]) for k in ("W1", "b1", "W2", "b2")]
    params = [p.copy() for p in initial]
    moms = [
        np.zeros_like(p) if moms is None else _f64(m).copy() for p, m in zip(params, moms or params)
    ]
    for _ in range(steps):
        losses, grads = _w6_losses_and_grads(X, y, *params)
        for p, m, g in zip(params, moms, grads):
            m *= momentum
            m -= lr * (g / X.shape[0] + wd * p)
            p += m
    return losses.mean(), [p - p0 for p, p0 in zip(params, initial)]


# float32's unit roundoff: a float32 sum of n products lies within n u times the sum of
# the terms' magnitudes of its exact value, in any order of summation (Higham, 3.1).
F32_UNIT = 2.0**-24


def w6_slack(inp):
    """How far a correct float32 W6 gradient may lie from the float64 one at a relu tie.

    A relu input whose float64 value is within float32's rounding bound of zero can
    land on either side in float32, and its unit then adds or drops one sample's share
    of the gradients (at B=128 about 2e-3 of b1's gradient: the check after timing
    misfired on it). The slack of each gradient element is the sum of the shares of
    the tied units it depends on; away from ties it is zero, so any other error still
    counts in full.
    """
    X, y = _f64(inp["X"]), inp["y"]
    W1, b1, W2, b2 = (_f64(inp[k]) for k in ("W1", "b1", "W2", "b2"))
    pre = X @ W1.T + b1
    bound = (X.shape[1] + 1) * F32_UNIT * (np.abs(X) @ np.abs(W1).T + np.abs(b1))
    tied = np.abs(pre) <= bound
    z = np.maximum(pre, 0.0) @ W2.T + b2
    dz = np.exp(z - z.max(axis=1, keepdims=True))
    dz /= dz.sum(axis=1, keepdims=True)
    dz[np.arange(X.shape[0]), y] -= 1.0
    share = np.abs(dz @ W2) * tied  # a tied unit's gradient, present or not
    # (a tied unit's output is within its bound of zero: its share of dW2 is small)
    return [share.T @ np.abs(X), share.sum(axis=0), np.abs(dz).T @ (bound * tied), 0.0 * b2]


def w6_step_slack(inp):
    """W6 step: the gradients' slack (``w6_slack``) as a change of the parameters,
    lr / B times it (the momentum and weight decay terms are exact inputs)."""
    from .workloads import W6_SGD

    scale = W6_SGD["learning_rate"] / inp["X"].shape[0]
    return [scale * s for s in w6_slack(inp)]


REFERENCE = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "CNN": cnn, "W6": w6, "W6_step": w6_step}
# Optional: per workload, slack(inputs) -> the elementwise distance from the reference a
# correct float32 result may have (harness.check). W7's relus feed BatchNorm'd sums over
# thousands of elements and W8 has none: a tie moves those gradients by far less than
# the tolerance.
SLACK = {"W6": w6_slack, "W6_step": w6_step_slack}
# W7, W8 and the model zoo keep their references beside their scripts.
REFERENCE.update(W7=gluon_w7.reference, W8=gluon_w8.reference, ZOO=zoo.reference)
