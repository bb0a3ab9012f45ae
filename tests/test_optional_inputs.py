"""A positional None for an optional input that the attrs leave out, as MXNet's
generated functions accept (``Convolution(x, w, None, no_bias=True)``)."""

import numpy as np

import symgrad as mx


def test_positional_none_bias_in_nd_and_sym():
    x = mx.nd.array(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3))
    w = mx.nd.ones((2, 1, 3, 3))
    out = mx.nd.Convolution(x, w, None, kernel=(3, 3), num_filter=2, no_bias=True)
    assert out.asnumpy().ravel().tolist() == [36.0, 36.0]
    s = mx.sym.Convolution(
        mx.sym.var("x"), mx.sym.var("w"), None, kernel=(3, 3), num_filter=2, no_bias=True
    )
    assert s.list_arguments() == ["x", "w"]
    fc = mx.nd.FullyConnected(
        mx.nd.ones((1, 2)), mx.nd.ones((3, 2)), None, num_hidden=3, no_bias=True
    )
    assert fc.asnumpy().tolist() == [[2.0, 2.0, 2.0]]
