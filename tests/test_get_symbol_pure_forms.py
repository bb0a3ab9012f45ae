"""``autograd.get_symbol`` shows the ops the user called, not the pure forms the
recording keeps (``_deferred.PURE_FORMS``): BatchNorm in training is recorded as
``_batch_norm_train`` so that a step defers it, but its symbol is MXNet's
BatchNorm, with the moving statistics as auxiliary states, and real MXNet 1.9.1
loads the exported JSON."""

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad import autograd, gluon, nd


def recorded_conv_batchnorm(momentum=0.8, eps=1e-4):
    """A conv, BatchNorm (training) and relu recorded; returns (net, x, y)."""
    net = gluon.nn.HybridSequential()
    net.add(
        gluon.nn.Conv2D(4, 3, use_bias=False),
        gluon.nn.BatchNorm(momentum=momentum, epsilon=eps),
        gluon.nn.Activation("relu"),
    )
    net.initialize(mx.init.Xavier())
    x = nd.array(np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32))
    with autograd.record():
        y = net(x)
    return net, x, y


def ops_of(symbol):
    return [node["op"] for node in json.loads(symbol.tojson())["nodes"]]


def test_a_recorded_batchnorm_is_mxnets_batchnorm_in_the_symbol():
    _, _, y = recorded_conv_batchnorm()
    assert y._entry.node.op.name == "Activation"
    assert y._entry.node.inputs[0].node.op.name == "_batch_norm_train"  # what is recorded
    symbol = autograd.get_symbol(y)
    assert ops_of(symbol) == ["null", "null", "Convolution", "null", "null", "null", "null",
                              "BatchNorm", "Activation"]  # fmt: skip
    batch_norm = next(n for n in json.loads(symbol.tojson())["nodes"] if n["op"] == "BatchNorm")
    assert float(batch_norm["attrs"]["momentum"]) == pytest.approx(0.8)
    assert float(batch_norm["attrs"]["eps"]) == pytest.approx(1e-4)
    assert len(symbol.list_auxiliary_states()) == 2
    assert symbol.infer_shape()[1] == [(2, 4, 6, 6)]


def test_the_recording_still_trains_after_get_symbol():
    net, x, y = recorded_conv_batchnorm()
    autograd.get_symbol(y)
    y.backward()
    # the moving mean starts at zeros; the step moved it by (1 - momentum) * the batch mean
    batch_mean = net[0](x).asnumpy().mean(axis=(0, 2, 3))
    np.testing.assert_allclose(net[1].running_mean.data().asnumpy(), 0.2 * batch_mean, rtol=1e-5)
    assert np.all(np.isfinite(net[0].weight.grad().asnumpy()))


@pytest.mark.interop
def test_mxnet_loads_the_symbol_of_a_recorded_batchnorm(mxnet_python, tmp_path):
    _, _, y = recorded_conv_batchnorm()
    symbol = autograd.get_symbol(y)
    (tmp_path / "recorded-symbol.json").write_text(symbol.tojson())
    data = symbol.list_arguments()[0]
    out = run_mxnet(
        mxnet_python,
        "import mxnet as mx, json\n"
        "s = mx.sym.load('recorded-symbol.json')\n"
        f"print(json.dumps([s.list_auxiliary_states(), s.infer_shape({data}=(2, 3, 8, 8))[1],"
        " [n['op'] for n in json.loads(s.tojson())['nodes']]]))\n",
        tmp_path,
    )
    aux, shapes, ops = json.loads(out.strip().splitlines()[-1])
    assert len(aux) == 2 and shapes == [[2, 4, 6, 6]] and "BatchNorm" in ops
