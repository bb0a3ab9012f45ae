"""Bugs the examples found, each kept fixed by a test.

lstm_lm.py: a backward of a recurrent layer over a shorter sequence reused the
gradient program of a longer one (the structural key held only which axes have
length one, while the RNN op's gradient unrolls one step per time step), and
failed in the program's split of the sequence or, worse, could compute garbage.
(RNN's gradient is now one ``_rnn_grad`` op for any length; the tests keep the
lengths changing, and the second-order key, whose graph unrolls, holding them.)
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad import autograd, nd
from symgrad.gluon import rnn


def lstm_gradients(layer: rnn.LSTM, steps: int) -> dict[str, np.ndarray]:
    """The gradients of sum(outputs) of ``layer`` over ``steps`` time steps."""
    data = nd.array(np.linspace(-1.0, 1.0, steps * 2 * 3).reshape(steps, 2, 3))
    with autograd.record():
        outputs, _ = layer(data, layer.begin_state(batch_size=2))
        loss = outputs.sum()
    loss.backward()
    return {name: p.grad().asnumpy().copy() for name, p in layer.collect_params().items()}


def make_layer(hybridize: bool) -> rnn.LSTM:
    layer = rnn.LSTM(4, input_size=3)
    layer.initialize()
    if hybridize:
        layer.hybridize()
    return layer


@pytest.mark.parametrize("hybridize", [False, True])
def test_lstm_backward_after_a_longer_sequence(hybridize):
    layer = make_layer(hybridize)
    compiler.clear_cache()
    expected = lstm_gradients(layer, 3)  # a fresh program for 3 steps
    compiler.clear_cache()
    for _ in range(3):  # programs (and a step template) for 5 steps first
        lstm_gradients(layer, 5)
    got = lstm_gradients(layer, 3)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)


def test_lstm_backward_after_a_longer_sequence_compiled(compiled):
    layer = make_layer(hybridize=True)
    compiler.clear_cache()
    expected = lstm_gradients(layer, 2)
    compiler.clear_cache()
    for _ in range(3):
        lstm_gradients(layer, 4)
    got = lstm_gradients(layer, 2)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)


def test_rnn_second_order_key_holds_the_sequence_length():
    # RNN's gradient is one _rnn_grad node, which serves any sequence length; its
    # own gradient unrolls the recurrence (sized_grad): a graph holding _rnn_grad
    # over 5 and over 3 steps must have different keys (a batch size alone would not)
    layer = make_layer(hybridize=False)
    keys = []
    for steps, batch in ((5, 2), (3, 2)):
        data = nd.ones((steps, batch, 3))
        data.attach_grad()
        with autograd.record():
            outputs, _ = layer(data, layer.begin_state(batch_size=batch))
            (d_data,) = autograd.grad(outputs.sum(), [data], create_graph=True)
        entries = autograd.get_symbol(d_data)._entries
        nodes = compiler.ir.topo_order(entries)
        assert any(node.op.name == "_rnn_grad" for node in nodes)
        key, _ = compiler.ir.structural_key(nodes, entries, lambda node: None)
        keys.append(key)
    assert keys[0] != keys[1]
