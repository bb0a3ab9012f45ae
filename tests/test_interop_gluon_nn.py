"""gluon.nn against the real MXNet 1.9.1: the same small networks, written once
as source that runs under both (``nn`` being MXNet's or symgrad's), with the same
weights, give the same parameter names, outputs, input gradients, parameter
gradients and running statistics (float32, 1e-5 relative).

symgrad runs first: it resolves the deferred shapes, draws the weights and writes
them to an .npz by parameter name; one MXNet process then loads them into its own
copy of each network, runs forward and backward in training mode and a forward
in prediction mode, and writes everything back for comparison.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad.gluon import nn
from symgrad.gluon.contrib import nn as contrib_nn

pytestmark = pytest.mark.interop

# Each network is a function body: ``nn`` is gluon.nn, it returns the net. The
# top block has an explicit prefix, so names do not depend on global counters.
NETS = {
    "mlp": (
        """
net = nn.HybridSequential(prefix='mlp_')
with net.name_scope():
    net.add(nn.Dense(8, activation='relu'), nn.Dense(6, activation='tanh', use_bias=False),
            nn.Dense(5, flatten=False), nn.Dense(3, activation='sigmoid'))
""",
        "float",
        (4, 3, 5),
    ),
    "cnn": (
        """
net = nn.HybridSequential(prefix='cnn_')
with net.name_scope():
    net.add(nn.Conv2D(4, 3, padding=1, use_bias=False), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(), nn.Conv2D(6, (2, 3), strides=(1, 2), dilation=(2, 1), groups=2),
            nn.AvgPool2D(pool_size=2, strides=1, padding=1, ceil_mode=True,
                         count_include_pad=False),
            nn.GlobalAvgPool2D(), nn.Flatten(), nn.Dense(2))
""",
        "float",
        (2, 3, 8, 8),
    ),
    "norms": (
        """
net = nn.HybridSequential(prefix='norms_')
with net.name_scope():
    net.add(nn.Conv1D(4, 3, padding=1, use_bias=False), nn.LayerNorm(), nn.LeakyReLU(0.1),
            nn.InstanceNorm(scale=True), nn.PReLU(in_channels=4), nn.GroupNorm(num_groups=2),
            nn.ELU(0.5), nn.BatchNorm(axis=2, momentum=0.7, epsilon=1e-3),
            nn.Swish(1.3), nn.GELU(), nn.Conv1D(2, 2, strides=2, use_bias=False))
""",
        "float",
        (3, 2, 6),
    ),
    "embedding": (
        """
net = nn.HybridSequential(prefix='emb_')
with net.name_scope():
    net.add(nn.Embedding(10, 4), nn.Flatten(), nn.Dense(3, activation='softrelu'))
""",
        "index",
        (5, 3),
    ),
    "transposed": (
        """
net = nn.HybridSequential(prefix='tr_')
with net.name_scope():
    net.add(nn.Conv2DTranspose(4, (3, 2), strides=(2, 1), padding=(1, 0),
                               output_padding=(1, 0), dilation=(1, 2), groups=2,
                               in_channels=4),
            nn.ReflectionPad2D(1), nn.MaxPool2D(pool_size=3, strides=2, padding=1,
                                                ceil_mode=True),
            nn.Conv2D(3, 1, activation='softsign'), nn.GlobalMaxPool2D())
""",
        "float",
        (2, 4, 3, 4),
    ),
    "volumes": (
        """
net = nn.HybridSequential(prefix='vol_')
with net.name_scope():
    net.add(nn.Conv3D(3, 2, padding=(1, 0, 1), use_bias=False), nn.BatchNorm(scale=False),
            nn.Conv3DTranspose(2, 2, strides=2, use_bias=False), nn.MaxPool3D(),
            nn.AvgPool3D(pool_size=(1, 2, 2), padding=(0, 1, 0)), nn.GlobalAvgPool3D())
""",
        "float",
        (2, 2, 3, 3, 3),
    ),
    "concurrent-pools": (
        """
net = cnn.HybridConcurrent(axis=1, prefix='ccp_')
with net.name_scope():
    signal = nn.HybridSequential()
    signal.add(nn.MaxPool1D(3, 2, 1, ceil_mode=True),
               nn.AvgPool1D(3, 2, padding=1, ceil_mode=True, count_include_pad=False),
               nn.GlobalAvgPool1D())
    learned = nn.HybridSequential()
    learned.add(nn.Conv1D(3, 2, dilation=2), nn.GlobalMaxPool1D())
    net.add(signal, learned, nn.GlobalMaxPool1D())
""",
        "float",
        (2, 3, 9),
    ),
}

MXNET_SCRIPT = r"""
import json, sys
import numpy as np
import mxnet as mx
from mxnet.gluon import nn
from mxnet.gluon.contrib import nn as cnn

nets = json.load(open('nets.json'))
results = {}
for key, source in nets.items():
    space = {'nn': nn, 'cnn': cnn}
    exec(source, space)
    net = space['net']
    inputs = np.load(key + '-inputs.npz')
    weights = np.load(key + '-weights.npz')
    net.initialize()
    x = mx.nd.array(inputs['x'])
    with mx.autograd.predict_mode():
        net(x)  # resolves the deferred shapes
    params = net.collect_params()
    results[key + ':names'] = sorted(params.keys())
    for name, param in params.items():
        param.set_data(mx.nd.array(weights[name]))
    if inputs['kind'] == 'float':
        x.attach_grad()
    with mx.autograd.record():
        out = net(x)
    out.backward(mx.nd.array(inputs['head']))
    arrays = {'out': out.asnumpy(), 'predict': None}
    if inputs['kind'] == 'float':
        arrays['grad:x'] = x.grad.asnumpy()
    for name, param in params.items():
        if param.grad_req != 'null':
            arrays['grad:' + name] = param.grad().asnumpy()
        else:
            arrays['value:' + name] = param.data().asnumpy()
    with mx.autograd.predict_mode():
        arrays['predict'] = net(mx.nd.array(inputs['x'])).asnumpy()
    np.savez(key + '-mxnet.npz', **arrays)
json.dump(results, open('names.json', 'w'))
"""


def _build(source: str):
    space = {"nn": nn, "cnn": contrib_nn}
    exec(source, space)
    return space["net"]


def _inputs(kind: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    if kind == "index":
        return rng.integers(0, 10, size=shape).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32)


def _weights(net, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fixed weights by name: positive variances, gammas near 1, the rest normal."""
    weights = {}
    for name, param in net.collect_params().items():
        shape = param.shape
        if name.endswith("gamma") and param.grad_req == "null":
            # a BatchNorm without scale: MXNet's op writes ones into gamma
            value = np.ones(shape)
        elif name.endswith(("running_var", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("alpha"):
            value = rng.uniform(0.1, 0.4, shape)
        else:
            value = rng.normal(scale=0.5, size=shape)
        weights[name] = value.astype(np.float32)
    return weights


def _run_symgrad(net, x: np.ndarray, head: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    data = mx.nd.array(x)
    if kind == "float":
        data.attach_grad()
    with mx.autograd.record():
        out = net(data)
    out.backward(mx.nd.array(head))
    arrays = {"out": out.asnumpy()}
    if kind == "float":
        arrays["grad:x"] = data.grad.asnumpy()
    for name, param in net.collect_params().items():
        if param.grad_req != "null":
            arrays["grad:" + name] = param.grad().asnumpy()
        else:
            arrays["value:" + name] = param.data().asnumpy()
    with mx.autograd.predict_mode():
        arrays["predict"] = net(mx.nd.array(x)).asnumpy()
    return arrays


@pytest.fixture(scope="module")
def compared(mxnet_python, tmp_path_factory):
    """For each net and for imperative and hybridized symgrad runs: (ours,
    MXNet's) arrays, and both lists of parameter names."""
    workdir = tmp_path_factory.mktemp("gluon_nn_interop")
    rng = np.random.default_rng(7)
    prepared = {}
    for key, (source, kind, shape) in NETS.items():
        net = _build(source)
        net.initialize()
        x = _inputs(kind, shape, rng)
        with mx.autograd.predict_mode():
            out_shape = net(mx.nd.array(x)).shape
        head = rng.normal(size=out_shape).astype(np.float32)
        weights = _weights(net, rng)
        np.savez(workdir / f"{key}-inputs.npz", x=x, head=head, kind=kind)
        np.savez(workdir / f"{key}-weights.npz", **weights)
        prepared[key] = (x, head, weights)
    (workdir / "nets.json").write_text(json.dumps({k: v[0] for k, v in NETS.items()}))
    run_mxnet(mxnet_python, MXNET_SCRIPT, workdir)
    names = json.loads((workdir / "names.json").read_text())
    results = {}
    for key, (source, kind, _) in NETS.items():
        x, head, weights = prepared[key]
        theirs = dict(np.load(workdir / f"{key}-mxnet.npz"))
        for hybridize in (False, True):
            net = _build(source)
            net.initialize()
            with mx.autograd.predict_mode():
                net(mx.nd.array(x))
            for name, param in net.collect_params().items():
                param.set_data(mx.nd.array(weights[name]))
            if hybridize:
                net.hybridize()
            ours = _run_symgrad(net, x, head, kind)
            results[key, hybridize] = (
                ours,
                theirs,
                sorted(net.collect_params().keys()),
                names[key + ":names"],
            )
    return results


CASES = [(key, hybridize) for key in NETS for hybridize in (False, True)]


@pytest.mark.parametrize(
    "key, hybridize", CASES, ids=[f"{k}-{'hybrid' if h else 'imperative'}" for k, h in CASES]
)
def test_same_names_outputs_and_gradients_as_mxnet(compared, key, hybridize):
    ours, theirs, our_names, their_names = compared[key, hybridize]
    assert our_names == their_names
    assert sorted(ours) == sorted(theirs)
    for name in sorted(theirs):
        scale = float(np.abs(theirs[name]).max()) or 1.0
        np.testing.assert_allclose(
            ours[name], theirs[name], rtol=1e-5, atol=1e-6 * scale, err_msg=f"{key}: {name}"
        )


SELU_SCRIPT = r"""
import numpy as np
import mxnet as mx
from mxnet.gluon import nn
x = mx.nd.array(np.load('x.npy'))
x.attach_grad()
layer = nn.SELU()
with mx.autograd.record():
    y = layer(x)
y.backward()
np.savez('selu.npz', out=y.asnumpy(), grad=x.grad.asnumpy())
"""


def test_selu_matches_mxnet_forward_and_its_gradient_above_zero(mxnet_python, tmp_path):
    """SELU's values agree with MXNet everywhere and its gradient above zero. Below
    zero MXNet 1.9.1 returns lambda (y + alpha) instead of the derivative
    lambda alpha e^x = y + lambda alpha (its backward forgets that y carries lambda);
    symgrad returns the derivative. Both facts are asserted, so a change on
    either side shows here."""
    x = np.linspace(-3, 2, 11).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run_mxnet(mxnet_python, SELU_SCRIPT, tmp_path)
    theirs = np.load(tmp_path / "selu.npz")
    data = mx.nd.array(x)
    data.attach_grad()
    with mx.autograd.record():
        out = nn.SELU()(data)
    out.backward()
    np.testing.assert_allclose(out.asnumpy(), theirs["out"], rtol=1e-5, atol=1e-6)
    ours, their_grad = data.grad.asnumpy(), theirs["grad"]
    above = x > 0
    np.testing.assert_allclose(ours[above], their_grad[above], rtol=1e-6)
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    below = ~above
    np.testing.assert_allclose(ours[below], lam * alpha * np.exp(x[below]), rtol=1e-5)
    y = theirs["out"][below]
    np.testing.assert_allclose(their_grad[below], lam * (y + alpha), rtol=1e-5)


IMPORT_SCRIPT = r"""
import numpy as np
import mxnet as mx
net = mx.gluon.SymbolBlock.imports('layers-symbol.json', ['data'], 'layers-0000.params')
np.save('theirs.npy', net(mx.nd.array(np.load('x.npy'))).asnumpy())
"""


def test_exported_layers_run_in_mxnet_to_the_same_outputs(mxnet_python, tmp_path):
    """A hybridized net of these layers, exported, loads in MXNet's
    SymbolBlock.imports and predicts the same outputs."""
    net = nn.HybridSequential(prefix="layers_")
    with net.name_scope():
        net.add(
            nn.Conv2D(4, 3, padding=1),
            nn.BatchNorm(),
            nn.Activation("relu"),
            nn.MaxPool2D(),
            nn.Conv2DTranspose(3, 2, strides=2),
            nn.InstanceNorm(),
            nn.AvgPool2D(ceil_mode=True),
            nn.GroupNorm(3),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Dense(5, activation="tanh"),
            nn.LayerNorm(),
            nn.GELU(),
            nn.Swish(),
            nn.Dense(2),
        )
    mx.random.seed(3)
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ours = net(mx.nd.array(x)).asnumpy()
    net.export(str(tmp_path / "layers"))
    run_mxnet(mxnet_python, IMPORT_SCRIPT, tmp_path)
    np.testing.assert_allclose(ours, np.load(tmp_path / "theirs.npy"), rtol=1e-5, atol=1e-6)
