"""symgrad, written exactly as an MXNet 1.x user would write it.

The same module serves the "compiled" column (default backend) and the
"interpreter" column (the harness sets SYMGRAD_BACKEND=interpreter). Each
step re-records the graph (that is part of the imperative path's cost),
runs ``backward`` and waits with ``nd.waitall()``; the harness converts the
returned NDArrays with ``asnumpy()`` outside the timed loop.
"""

import symgrad as mx
from symgrad import autograd, nd
from symgrad_compiler import wait_for_compilation as settle  # noqa: F401 (harness hook)

VERSION = getattr(mx, "__version__", "?")


def _vars(inp, names):
    arrays = [nd.array(inp[k]) for k in names]
    for a in arrays:
        a.attach_grad()
    return arrays


def w1(inp):
    """W1: fused elementwise."""
    x, w, b = _vars(inp, "xwb")

    def step():
        with autograd.record():
            f = (nd.tanh(x * w + b) * nd.sigmoid(x) + 0.5 * nd.exp(-x * x)).sum()
        f.backward()
        nd.waitall()
        return f, [x.grad, w.grad, b.grad]

    return step


def w2(inp):
    """W2: MLP training step with nd.dot, broadcasting +, log_softmax and pick."""
    X = nd.array(inp["X"])
    y = nd.array(inp["y"])  # MXNet labels are float arrays
    W1, b1, W2, b2 = params = _vars(inp, ["W1", "b1", "W2", "b2"])

    def step():
        with autograd.record():
            h = nd.tanh(nd.dot(X, W1) + b1)
            z = nd.dot(h, W2) + b2
            logp = nd.log_softmax(z, axis=1)
            loss = -nd.pick(logp, y, axis=1).mean()
        loss.backward()
        nd.waitall()
        return loss, [p.grad for p in params]

    return step


def w3(inp):
    """W3: the 50-op cycle."""
    (x,) = _vars(inp, "x")
    ops = (nd.sin, lambda v: v * 1.01, lambda v: v + 0.1, nd.tanh, nd.exp)

    def step():
        with autograd.record():
            v = x
            for i in range(50):
                v = ops[i % 5](v)
            f = v.sum()
        f.backward()
        nd.waitall()
        return f, [x.grad]

    return step


def w4(inp):
    """W4: second order via ``autograd.grad(create_graph=True)`` inside record."""
    (x,) = _vars(inp, "x")

    def step():
        with autograd.record():
            f = (nd.tanh(x) * nd.exp(-x * x)).sum()
            (g,) = autograd.grad([f], [x], create_graph=True)
            s = g.sum()
        s.backward()
        nd.waitall()
        return s, [x.grad]

    return step


def cnn(inp):
    """CNN step: Convolution, BatchNorm (training), relu, max Pooling,
    FullyConnected, softmax cross-entropy averaged over the batch."""
    from bench.workloads import CNN_EPS

    X = nd.array(inp["X"])
    y = nd.array(inp["y"])
    names = ["conv_w", "gamma", "beta", "fc_w", "fc_b"]
    conv_w, gamma, beta, fc_w, fc_b = params = _vars(inp, names)
    moving_mean, moving_var = nd.array(inp["moving_mean"]), nd.array(inp["moving_var"])
    batch = X.shape[0]

    def step():
        with autograd.record():
            h = nd.Convolution(X, conv_w, kernel=(3, 3), num_filter=conv_w.shape[0], no_bias=True)
            h = nd.BatchNorm(h, gamma, beta, moving_mean, moving_var, fix_gamma=False, eps=CNN_EPS)
            h = nd.Pooling(nd.relu(h), kernel=(2, 2), stride=(2, 2), pool_type="max")
            z = nd.FullyConnected(h, fc_w, fc_b, num_hidden=fc_w.shape[0])
            loss = nd.softmax_cross_entropy(z, y) / batch
        loss.backward()
        nd.waitall()
        return loss, [p.grad for p in params]

    return step
