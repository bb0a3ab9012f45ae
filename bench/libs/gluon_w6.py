"""W6 written once as an MXNet 1.x Gluon script; runs on symgrad or on real MXNet 1.9.1.

The module imports ``symgrad`` or ``mxnet`` as ``mx`` (``BENCH_MX``, set by the
column) and runs the same code on either: that the script is unchanged is the
point of symgrad. ``BENCH_HYBRIDIZE=1`` hybridizes the network with
``static_alloc=True, static_shape=True``; the loss block stays imperative, as in
the usual Gluon training loop. MXNet's column runs under the interop
virtualenv's interpreter (``libs.Column.python``).
"""

import importlib
import os

from bench.workloads import W6_SGD

IMPL = os.environ.get("BENCH_MX", "symgrad")
HYBRIDIZE = os.environ.get("BENCH_HYBRIDIZE") == "1"

mx = importlib.import_module(IMPL)
gluon, autograd, nd = mx.gluon, mx.autograd, mx.nd

VERSION = mx.__version__

if IMPL == "symgrad":
    # symgrad compiles in the background: steady state is measured after it is done
    from symgrad_compiler import wait_for_compilation as settle  # noqa: F401


def _network(inp):
    """The W6 net with the shared weights loaded; returns (net, params, X, y, batch)."""
    X, y = nd.array(inp["X"]), nd.array(inp["y"])  # MXNet labels are float arrays
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(256, activation="relu"), gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier(magnitude=3))
    net(X)  # deferred shapes: the first call makes the weights
    params = list(net.collect_params().values())  # dense0 weight, bias, dense1 ...
    for p, name in zip(params, ("W1", "b1", "W2", "b2")):
        p.set_data(nd.array(inp[name]))
    if HYBRIDIZE:
        net.hybridize(static_alloc=True, static_shape=True)
    return net, params, X, y, X.shape[0]


def w6(inp):
    """W6 forward+backward: ``L = loss(net(X), y)``, ``L.backward()``; returns the
    per-sample losses and the gradients (of sum(L))."""
    net, params, X, y, _ = _network(inp)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        nd.waitall()
        return L, [p.grad() for p in params]

    return step


def w6_step(inp):
    """W6 training step: forward+backward, then ``trainer.step(batch_size)`` with SGD
    (momentum 0.9, wd 1e-4); returns the losses and the updated parameters."""
    net, params, X, y, batch = _network(inp)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", dict(W6_SGD))

    def step():
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(batch)
        nd.waitall()
        return L, [p.data() for p in params]

    return step
