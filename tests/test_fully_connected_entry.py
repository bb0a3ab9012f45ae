"""A Dense layer after global pooling (FullyConnected of a 4-D input, flatten=True)
runs inside the one-call program entry: simplify makes it Flatten + dot + add, and
its gradient's reshape_like has an entry lowering (it had sent whole CNN training
programs step by step, with a warning)."""

import warnings

import numpy as np
import pytest

from symgrad import autograd, nd


def _grads(x_value, w_value, b_value):
    x, w, b = nd.array(x_value), nd.array(w_value), nd.array(b_value)
    for a in (x, w, b):
        a.attach_grad()
    with autograd.record():
        y = nd.FullyConnected(x, w, b, num_hidden=w.shape[0])
        loss = (nd.tanh(y) * y).sum()
    loss.backward()
    return [a.grad.asnumpy() for a in (x, w, b)]


@pytest.mark.parametrize("shape", [(4, 6, 1, 1), (3, 2, 3, 1), (5, 6)])
def test_fully_connected_of_pooled_features_runs_as_one_call(shape, compiled):
    rng = np.random.default_rng(0)
    features = int(np.prod(shape[1:]))
    values = [
        rng.normal(size=shape).astype(np.float32),
        rng.normal(size=(3, features)).astype(np.float32),
        rng.normal(size=3).astype(np.float32),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "runs step by step" warning
        got = [_grads(*values) for _ in range(3)][-1]
    import symgrad_compiler as compiler

    with compiler.settings.override(backend="interpreter"):
        expected = _grads(*values)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-6)
