"""mx.viz.print_summary prints MXNet 1.9.1's layer table, character for character.

The networks are built by the same source under symgrad and under a real MXNet
1.9.1 (the interop virtualenv); each prints its table for the same shapes, and the
texts must be equal: names, shapes without the batch axis, MXNet's parameter
counts (quirks included), the previous-layer column and the total.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

import symgrad as mx

pytestmark = pytest.mark.interop

# One source for both libraries: it defines NETS, name -> (symbol, shapes or None).
NETWORKS = """
def mlp(mx):
    data = mx.sym.var("data")
    h = mx.sym.FullyConnected(data, num_hidden=64, name="fc1")
    h = mx.sym.Activation(h, act_type="relu", name="relu1")
    h = mx.sym.FullyConnected(h, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(h, name="softmax")

def cnn(mx):
    data = mx.sym.var("data")
    c = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, name="conv1")
    c = mx.sym.BatchNorm(c, name="bn1")
    c = mx.sym.Activation(c, act_type="relu", name="relu1")
    c = mx.sym.Pooling(c, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    c = mx.sym.Convolution(c, kernel=(3, 3), num_filter=16, num_group=2, no_bias=True,
                           name="conv2")
    c = mx.sym.Flatten(c, name="flat")
    c = mx.sym.FullyConnected(c, num_hidden=10, name="fc")
    return mx.sym.SoftmaxOutput(c, name="softmax")

def two_inputs(mx):
    a, b = mx.sym.var("a"), mx.sym.var("b")
    x = mx.sym.FullyConnected(a, num_hidden=5, name="fa")
    y = mx.sym.FullyConnected(b, num_hidden=5, no_bias=True, name="fb")
    e = mx.sym.Embedding(mx.sym.var("tokens"), input_dim=7, output_dim=5, name="emb")
    xy = mx.sym.elemwise_add(x, y, name="xy")
    return mx.sym.elemwise_add(xy, mx.sym.sum(e, axis=1, name="pooled"), name="total")

def nets(mx):
    return {
        "mlp": (mlp(mx), {"data": (32, 100)}),
        "mlp, no shapes": (mlp(mx), None),
        "cnn": (cnn(mx), {"data": (4, 3, 16, 16)}),
        "cnn, narrow": (cnn(mx), {"data": (4, 3, 16, 16)}),
        "two inputs": (two_inputs(mx), {"a": (2, 3), "b": (2, 4), "tokens": (2, 6)}),
    }

def summaries(mx, print_summary):
    import contextlib, io
    texts = {}
    for name, (net, shape) in nets(mx).items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if name.endswith("narrow"):
                print_summary(net, shape=shape, line_length=70, positions=[0.3, 0.6, 0.8, 1.0])
            else:
                print_summary(net, shape=shape)
        texts[name] = out.getvalue()
    return texts
"""


def symgrad_summaries() -> dict[str, str]:
    namespace: dict = {}
    exec(NETWORKS, namespace)
    return namespace["summaries"](mx, mx.viz.print_summary)


@pytest.fixture(scope="module")
def mxnet_summaries(mxnet_python, tmp_path_factory) -> dict[str, str]:
    from mxnet_interop import run_mxnet

    workdir = tmp_path_factory.mktemp("summary")
    source = (
        NETWORKS
        + "\nimport json, mxnet\n"
        + "texts = summaries(mxnet, mxnet.viz.print_summary)\n"
        + "open('summaries.json', 'w').write(json.dumps(texts))\n"
    )
    run_mxnet(mxnet_python, source, workdir)
    return json.loads((workdir / "summaries.json").read_text())


@pytest.mark.parametrize("name", ["mlp", "mlp, no shapes", "cnn", "cnn, narrow", "two inputs"])
def test_the_table_is_mxnets(name, mxnet_summaries):
    ours = symgrad_summaries()[name]
    assert ours.splitlines() == mxnet_summaries[name].splitlines()


def test_the_mlp_counts_are_the_layers_weights_and_biases(mxnet_summaries):
    # (100 + 1) * 64 + (64 + 1) * 10 parameters: the sizes of the arrays MXNet makes
    text = mxnet_summaries["mlp"]
    assert "Total params: 7114" in text
    net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=64, name="fc1")
    arg_shapes, _, _ = net.infer_shape(data=(32, 100))
    assert sum(int(mx.nd.zeros(s).size) for s in arg_shapes[1:]) == 6464
    assert "6464" in text.splitlines()[5]


def test_shapes_that_do_not_fit_are_refused_before_printing():
    net = mx.sym.elemwise_add(mx.sym.var("data"), mx.sym.var("other"), name="plus")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(mx.base.MXNetError):
        mx.viz.print_summary(net, shape={"data": (2, 3), "other": (5, 7)})
    assert out.getvalue() == ""
