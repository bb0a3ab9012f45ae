"""gluon.rnn: layer and cell parameters (MXNet's names, deferred shapes, shared
between a layer and its unfused cells), states in and out, layouts, unroll with
valid_length and merge_outputs, the modifier cells, float64 finite differences of
every layer and cell (input and every parameter), hybridized equal to imperative,
and a small language model that trains."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, gluon
from symgrad.gluon import rnn

FD_EPS = 1e-6
RNG = np.random.default_rng(0)


def _array(x: np.ndarray) -> mx.nd.NDArray:
    return mx.nd.array(x, dtype=x.dtype)


def _ready(net, x: np.ndarray, run, dtype: str = "float64"):
    """Initialise ``net`` (deferred shapes from one call), cast it and draw its
    parameters uniformly in [-0.5, 0.5]."""
    net.initialize()
    run(net, _array(x.astype(np.float32)))
    net.cast(dtype)
    for param in net.collect_params().values():
        param.set_data(mx.nd.array(RNG.uniform(-0.5, 0.5, param.shape), dtype=dtype))
    return net


def _layer_run(net, data):
    batch = data.shape[net._layout.find("N")]
    out, states = net(data, net.begin_state(batch, dtype=data.dtype))
    return [out, *states]


def _unroll_run(length: int, merge: bool = True, valid=None):
    def run(net, data):
        valid_length = None if valid is None else mx.nd.array(valid, dtype=data.dtype)
        outs, states = net.unroll(
            length, data, layout="NTC", merge_outputs=merge, valid_length=valid_length
        )
        if isinstance(outs, list):
            outs = mx.nd.stack(*outs, axis=1)
        return [outs, *states]

    return run


def _projected(net, run, x, heads) -> float:
    return sum(float((o.asnumpy() * h).sum()) for o, h in zip(run(net, _array(x)), heads))


def check_gradients(net, run, x: np.ndarray, rtol: float = 1e-6) -> None:
    """Finite differences (float64, central, one random direction per tensor)
    against the recorded gradients of the input and of every parameter."""
    heads = [RNG.normal(size=o.shape) for o in run(net, _array(x))]
    data = _array(x)
    data.attach_grad()
    with autograd.record(train_mode=False):
        outs = run(net, data)
    autograd.backward(outs, [_array(h) for h in heads])
    direction = RNG.normal(size=x.shape)
    numeric = (
        _projected(net, run, x + FD_EPS * direction, heads)
        - _projected(net, run, x - FD_EPS * direction, heads)
    ) / (2 * FD_EPS)
    assert numeric == pytest.approx(
        float((data.grad.asnumpy() * direction).sum()), rel=rtol, abs=1e-8
    ), "input gradient"
    params = net.collect_params()
    assert len(params) > 0
    for name, param in params.items():
        grad = param.grad().asnumpy().copy()
        value = param.data().asnumpy().copy()
        direction = RNG.normal(size=value.shape)
        param.set_data(_array(value + FD_EPS * direction))
        plus = _projected(net, run, x, heads)
        param.set_data(_array(value - FD_EPS * direction))
        minus = _projected(net, run, x, heads)
        param.set_data(_array(value))
        assert (plus - minus) / (2 * FD_EPS) == pytest.approx(
            float((grad * direction).sum()), rel=rtol, abs=1e-8
        ), f"gradient of {name}"


# ---------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------


def test_layer_parameter_names_and_shapes_are_mxnets():
    layer = rnn.LSTM(4, num_layers=2, bidirectional=True, input_size=3, prefix="lstm_")
    names = list(layer.collect_params().keys())
    expected = [
        f"lstm_{d}{k}_{piece}"
        for k in range(2)
        for d in "lr"
        for piece in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
    ]
    assert names == expected
    params = layer.collect_params()
    assert params["lstm_l0_i2h_weight"].shape == (16, 3)
    assert params["lstm_r1_i2h_weight"].shape == (16, 8)
    assert params["lstm_l1_h2h_weight"].shape == (16, 4)
    projected = rnn.LSTM(5, projection_size=2, input_size=3, prefix="p_")
    shapes = {k: v.shape for k, v in projected.collect_params().items()}
    assert shapes["p_l0_h2r_weight"] == (2, 5) and shapes["p_l0_h2h_weight"] == (20, 2)
    assert repr(layer) == "LSTM(3 -> 4, TNC, num_layers=2, bidirectional)"


def test_deferred_input_size_and_begin_state():
    layer = rnn.GRU(5, num_layers=2)
    layer.initialize()
    out = layer(mx.nd.ones((4, 3, 7)))
    assert out.shape == (4, 3, 5)
    assert layer.l0_i2h_weight.shape == (15, 7) and layer.l1_i2h_weight.shape == (15, 5)
    states = layer.begin_state(3)
    assert [s.shape for s in states] == [(2, 3, 5)]
    out, new_states = layer(mx.nd.ones((4, 3, 7)), states)
    assert out.shape == (4, 3, 5) and [s.shape for s in new_states] == [(2, 3, 5)]
    with pytest.raises(ValueError, match="Invalid recurrent state shape"):
        layer(mx.nd.ones((4, 3, 7)), [mx.nd.zeros((1, 3, 5))])


def test_ntc_layout_is_tnc_with_the_axes_swapped():
    x = RNG.uniform(-1, 1, (3, 5, 4))
    tnc = _ready(
        rnn.LSTM(4, num_layers=2, bidirectional=True, prefix="a_"), x.transpose(1, 0, 2), _layer_run
    )
    ntc = rnn.LSTM(4, num_layers=2, bidirectional=True, layout="NTC", prefix="a_")
    ntc.initialize()
    ntc(mx.nd.array(x))
    ntc.cast("float64")
    for name, param in ntc.collect_params().items():
        param.set_data(tnc.collect_params()[name].data())
    expected = _layer_run(tnc, _array(x.transpose(1, 0, 2)))
    got = _layer_run(ntc, _array(x))
    np.testing.assert_allclose(
        got[0].asnumpy(), expected[0].asnumpy().transpose(1, 0, 2), rtol=1e-12
    )
    for a, b in zip(got[1:], expected[1:]):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "layer_class, kwargs",
    [
        (rnn.RNN, {"activation": "tanh"}),
        (rnn.RNN, {"activation": "relu"}),
        (rnn.LSTM, {}),
        (rnn.GRU, {}),
    ],
)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_equals_its_unfused_cells(layer_class, kwargs, bidirectional):
    x = RNG.uniform(-1, 1, (4, 3, 2))
    layer = _ready(
        layer_class(3, num_layers=2, bidirectional=bidirectional, **kwargs), x, _layer_run
    )
    stack = layer._unfuse()
    names = set(stack.collect_params().keys())
    assert names == set(layer.collect_params().keys()), "the cells share the layer's names"
    states = layer.begin_state(3, dtype="float64")
    out, new_states = layer(_array(x), states)
    # the layer's (L*D, N, H) states are the cells' (N, H) states, layer by layer
    cell_states = (
        [
            s
            for state in states
            for s in state.split(axis=0, num_outputs=len(state), squeeze_axis=True)
        ]
        if states[0].shape[0] > 1
        else [s.reshape((3, 3)) for s in states]
    )
    if layer_class is rnn.LSTM:  # the cells interleave h and c
        count = states[0].shape[0]
        cell_states = [
            item for pair in zip(cell_states[:count], cell_states[count:]) for item in pair
        ]
    unrolled, _ = stack.unroll(
        4, _array(x), begin_state=cell_states, layout="TNC", merge_outputs=True
    )
    np.testing.assert_allclose(unrolled.asnumpy(), out.asnumpy(), rtol=1e-10, atol=1e-12)


def test_layer_parameters_load_into_cells_and_back(tmp_path):
    x = RNG.uniform(-1, 1, (5, 2, 3)).astype(np.float32)
    layer = _ready(rnn.GRU(4, num_layers=2, prefix="gru_"), x, _layer_run, dtype="float32")
    layer.collect_params().save(str(tmp_path / "layer.params"))
    stack = rnn.SequentialRNNCell(prefix="gru_")
    with stack.name_scope():
        stack.add(rnn.GRUCell(4, prefix="l0_", input_size=3))
        stack.add(rnn.GRUCell(4, prefix="l1_", input_size=4))
    stack.collect_params().load(str(tmp_path / "layer.params"))
    unrolled, states = stack.unroll(5, _array(x), layout="TNC", merge_outputs=True)
    expected, expected_states = layer(_array(x), layer.begin_state(2))
    np.testing.assert_allclose(unrolled.asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.stack([s.asnumpy() for s in states]), expected_states[0].asnumpy(), rtol=1e-5, atol=1e-6
    )
    stack.collect_params().save(str(tmp_path / "cells.params"))
    back = rnn.GRU(4, num_layers=2, prefix="gru_", input_size=3)
    back.collect_params().load(str(tmp_path / "cells.params"))
    np.testing.assert_allclose(back(_array(x)).asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnn.RNN(3, num_layers=2, activation="relu"),
        lambda: rnn.LSTM(3, num_layers=2, bidirectional=True),
        lambda: rnn.LSTM(3, projection_size=2),
        lambda: rnn.GRU(3, num_layers=2, layout="NTC"),
        lambda: rnn.GRU(2, bidirectional=True),
    ],
    ids=["rnn", "lstm-bi", "lstmp", "gru", "gru-bi"],
)
def test_layer_gradients_match_finite_differences(make):
    layer = make()
    x = RNG.uniform(-1, 1, (3, 2, 2))
    check_gradients(_ready(layer, x, _layer_run), _layer_run, x)


@pytest.mark.parametrize("layer_class", [rnn.LSTM, rnn.GRU, rnn.RNN])
def test_hybridized_layer_equals_imperative(layer_class):
    x = RNG.uniform(-1, 1, (5, 3, 4)).astype(np.float32)
    layer = layer_class(6, num_layers=2, bidirectional=True)
    layer.initialize()
    states = layer.begin_state(3)
    imperative, imperative_states = layer(mx.nd.array(x), states)
    plain = layer(mx.nd.array(x))
    layer.hybridize()
    hybrid, hybrid_states = layer(mx.nd.array(x), states)
    np.testing.assert_allclose(hybrid.asnumpy(), imperative.asnumpy(), rtol=1e-6)
    for a, b in zip(hybrid_states, imperative_states):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(layer(mx.nd.array(x)).asnumpy(), plain.asnumpy(), rtol=1e-6)
    # gradients through the hybridized layer too
    data = mx.nd.array(x)
    data.attach_grad()
    with autograd.record():
        (layer(data) ** 2).sum().backward()
    hybrid_grad = data.grad.asnumpy().copy()
    layer.hybridize(False)
    with autograd.record():
        (layer(data) ** 2).sum().backward()
    np.testing.assert_allclose(hybrid_grad, data.grad.asnumpy(), rtol=1e-5)


def test_layer_dropout_between_layers_in_training_only():
    layer = rnn.LSTM(8, num_layers=2, dropout=0.5)
    layer.initialize()
    x = mx.nd.random.uniform(shape=(4, 2, 3))
    predicted = layer(x).asnumpy()
    np.testing.assert_array_equal(layer(x).asnumpy(), predicted)
    with autograd.record():
        trained = layer(x)
        trained.sum().backward()
    assert not np.allclose(trained.asnumpy(), predicted)
    assert np.isfinite(layer.l0_i2h_weight.grad().asnumpy()).all()


def test_exported_layer_runs_through_symbolblock(tmp_path):
    layer = rnn.GRU(4, num_layers=2, prefix="g_")
    layer.initialize()
    layer.hybridize()
    x = mx.nd.random.uniform(shape=(5, 2, 3))
    states = layer.begin_state(2)
    out, new_states = layer(x, states)
    layer.export(str(tmp_path / "gru"))
    loaded = gluon.SymbolBlock.imports(
        str(tmp_path / "gru-symbol.json"), ["data0", "data1"], str(tmp_path / "gru-0000.params")
    )
    again, again_state = loaded(x, states[0])
    np.testing.assert_allclose(again.asnumpy(), out.asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(again_state.asnumpy(), new_states[0].asnumpy(), rtol=1e-6)


def test_language_model_trains():
    class LanguageModel(gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.embedding = gluon.nn.Embedding(10, 6)
                self.lstm = rnn.LSTM(8, num_layers=2)  # input size inferred
                self.decoder = gluon.nn.Dense(10, flatten=False)

        def hybrid_forward(self, F, tokens):
            return self.decoder(self.lstm(self.embedding(tokens)))

    mx.random.seed(1)
    net = LanguageModel()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.05})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    tokens = mx.nd.array(np.tile(np.arange(8) % 5, (3, 1)).T)  # (T, N): 0 1 2 3 4 0 ...
    targets = mx.nd.array((np.tile(np.arange(8) % 5, (3, 1)).T + 1) % 5)
    losses = []
    for _ in range(30):
        with autograd.record():
            loss = loss_fn(net(tokens), targets)
        loss.backward()
        trainer.step(3)
        losses.append(float(loss.asnumpy().mean()))
    assert losses[-1] < 0.3 * losses[0]


# ---------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------

CELLS = {
    "rnn": lambda: rnn.RNNCell(3, prefix="rnn_"),
    "rnn-relu": lambda: rnn.RNNCell(3, activation="relu", prefix="rr_"),
    "lstm": lambda: rnn.LSTMCell(3, prefix="lstm_"),
    "gru": lambda: rnn.GRUCell(3, prefix="gru_"),
    "sequential": lambda: _stack(rnn.SequentialRNNCell(prefix="seq_")),
    "hybrid-sequential": lambda: _stack(rnn.HybridSequentialRNNCell(prefix="hseq_")),
    "bidirectional": lambda: rnn.BidirectionalCell(
        rnn.LSTMCell(3, prefix="l_"), rnn.GRUCell(2, prefix="r_")
    ),
    "residual": lambda: rnn.ResidualCell(rnn.GRUCell(2, prefix="res_")),
    "zoneout": lambda: rnn.ZoneoutCell(rnn.LSTMCell(3, prefix="zo_"), 0.5, 0.5),
    "dropout-stack": lambda: _stack(rnn.SequentialRNNCell(prefix="ds_"), dropout=True),
}


def _stack(container, dropout: bool = False):
    with container.name_scope():
        container.add(rnn.LSTMCell(3))
        if dropout:
            container.add(rnn.DropoutCell(0.5))
        container.add(rnn.GRUCell(2))
    return container


@pytest.mark.parametrize("valid", [None, [3, 1]], ids=["full", "valid_length"])
@pytest.mark.parametrize("name", list(CELLS))
def test_cell_unroll_gradients_match_finite_differences(name, valid):
    x = RNG.uniform(-1, 1, (2, 3, 2))
    run = _unroll_run(3, merge=name != "gru", valid=valid)
    check_gradients(_ready(CELLS[name](), x, run), run, x)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru", "bidirectional", "sequential"])
def test_valid_length_masks_outputs_and_keeps_last_valid_states(name):
    x = RNG.uniform(-1, 1, (3, 4, 2))
    valid = [4, 2, 1]
    net = _ready(CELLS[name](), x, _unroll_run(4))
    outs = _unroll_run(4, valid=valid)(net, _array(x))
    for b, length in enumerate(valid):
        alone = _unroll_run(length)(net, _array(x[b : b + 1, :length]))
        np.testing.assert_allclose(
            outs[0].asnumpy()[b, :length], alone[0].asnumpy()[0], rtol=1e-10, atol=1e-12
        )
        assert not outs[0].asnumpy()[b, length:].any()
        for got, expected in zip(outs[1:], alone[1:]):
            np.testing.assert_allclose(got.asnumpy()[b], expected.asnumpy()[0], rtol=1e-10)


def test_unroll_merge_and_layouts():
    cell = rnn.GRUCell(3)
    cell.initialize()
    x = mx.nd.random.uniform(shape=(2, 4, 5))
    merged, states = cell.unroll(4, x, layout="NTC", merge_outputs=True)
    steps, _ = cell.unroll(4, x, layout="NTC", merge_outputs=False)
    assert merged.shape == (2, 4, 3) and len(steps) == 4 and steps[0].shape == (2, 3)
    np.testing.assert_allclose(mx.nd.stack(*steps, axis=1).asnumpy(), merged.asnumpy())
    time_major, _ = cell.unroll(4, x.swapaxes(0, 1), layout="TNC", merge_outputs=True)
    np.testing.assert_allclose(time_major.asnumpy(), merged.asnumpy().transpose(1, 0, 2), rtol=1e-6)
    listed, _ = cell.unroll(4, [x[:, t] for t in range(4)], layout="NTC")
    assert isinstance(listed, list) and len(listed) == 4
    assert [s.shape for s in states] == [(2, 3)]


def test_stepping_a_cell_by_hand_equals_unroll():
    cell = rnn.LSTMCell(4)
    cell.initialize()
    x = mx.nd.random.uniform(shape=(2, 3, 5))
    states = cell.begin_state(2)
    outputs = []
    for t in range(3):
        out, states = cell(x[:, t], states)
        outputs.append(out)
    merged, unrolled_states = cell.unroll(3, x, merge_outputs=True)
    np.testing.assert_allclose(mx.nd.stack(*outputs, axis=1).asnumpy(), merged.asnumpy(), rtol=1e-6)
    for a, b in zip(states, unrolled_states):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)


def test_hybridized_cells_equal_imperative():
    x = mx.nd.random.uniform(shape=(2, 3, 4))
    for make in (CELLS["lstm"], CELLS["gru"], CELLS["hybrid-sequential"]):
        cell = make()
        cell.initialize()
        imperative, states = cell.unroll(3, x, merge_outputs=True)
        cell.hybridize()
        hybrid, hybrid_states = cell.unroll(3, x, merge_outputs=True)
        np.testing.assert_allclose(hybrid.asnumpy(), imperative.asnumpy(), rtol=1e-6)
        for a, b in zip(hybrid_states, states):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)


def test_modifier_cells():
    x = mx.nd.random.uniform(shape=(2, 3, 3))
    base = rnn.GRUCell(3, prefix="base_")
    residual = rnn.ResidualCell(base)
    residual.initialize()
    with pytest.raises(mx.base.MXNetError, match="modifier"):
        base.begin_state(2)
    out, _ = residual.unroll(3, x, merge_outputs=True)
    base._modified = False
    plain, _ = base.unroll(3, x, merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), (plain + x).asnumpy(), rtol=1e-6)
    with pytest.raises(mx.base.MXNetError):
        rnn.ZoneoutCell(rnn.BidirectionalCell(rnn.GRUCell(2), rnn.GRUCell(2)))
    bidirectional = rnn.BidirectionalCell(rnn.GRUCell(2), rnn.GRUCell(2))
    with pytest.raises(NotImplementedError):
        bidirectional(x[:, 0], bidirectional.begin_state(2))


def test_zoneout_and_dropout_cells_in_training():
    x = mx.nd.random.uniform(shape=(4, 5, 3))
    zoneout = rnn.ZoneoutCell(rnn.LSTMCell(3), zoneout_outputs=0.5, zoneout_states=0.5)
    zoneout.initialize()
    predicted, _ = zoneout.unroll(5, x, merge_outputs=True)
    with autograd.record():
        trained, _ = zoneout.unroll(5, x, merge_outputs=True)
    trained, predicted = trained.asnumpy(), predicted.asnumpy()
    assert not np.allclose(trained, predicted)
    # a zoned-out output element keeps its previous step's value
    kept = trained[:, 1:] == trained[:, :-1]
    assert kept.any()
    dropout = rnn.DropoutCell(0.5)
    out, states = dropout.unroll(5, x, merge_outputs=True)
    np.testing.assert_array_equal(out.asnumpy(), x.asnumpy())
    assert states == []
    with autograd.record():
        dropped, _ = dropout.unroll(5, x, merge_outputs=True)
    values = dropped.asnumpy()
    assert ((values == 0) | np.isclose(values, 2 * x.asnumpy())).all() and (values == 0).any()


def test_cell_parameter_names_and_repr():
    cell = rnn.LSTMCell(4, input_size=3)
    names = list(cell.collect_params().keys())
    assert [n[len(cell.prefix) :] for n in names] == [
        "i2h_weight",
        "h2h_weight",
        "i2h_bias",
        "h2h_bias",
    ]
    assert cell.prefix.startswith("lstm")
    assert repr(cell) == "LSTMCell(3 -> 16, tanh)"
    assert [info["shape"] for info in cell.state_info(5)] == [(5, 4), (5, 4)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnn.LSTMCell(4, input_size=3),
        lambda: _stack(rnn.HybridSequentialRNNCell()),
        lambda: rnn.BidirectionalCell(rnn.GRUCell(3, input_size=3), rnn.LSTMCell(2, input_size=3)),
    ],
    ids=["lstm", "hybrid-sequential", "bidirectional"],
)
def test_unroll_inside_a_hybridized_block_equals_imperative(make):
    class Net(gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.cell = make()

        def hybrid_forward(self, F, x):
            out, states = self.cell.unroll(5, x, layout="NTC", merge_outputs=True)
            return out, states[-1]

    net = Net()
    net.initialize()
    for batch in (2, 3):  # the traced begin states follow the batch size
        x = mx.nd.random.uniform(shape=(batch, 5, 3))
        results = []
        for hybrid in (False, True):
            net.hybridize(hybrid)
            with autograd.record():
                out, state = net(x)
                (out.sum() + (state * state).sum()).backward()
            grads = {k: p.grad().asnumpy().copy() for k, p in net.collect_params().items()}
            results.append((out.asnumpy(), state.asnumpy(), grads))
        (out0, state0, grads0), (out1, state1, grads1) = results
        np.testing.assert_allclose(out1, out0, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(state1, state0, rtol=1e-5, atol=1e-7)
        for name in grads0:
            np.testing.assert_allclose(
                grads1[name], grads0[name], rtol=1e-4, atol=1e-6, err_msg=name
            )


def test_layer_with_sequence_length_runs_each_sequence_on_its_steps():
    x = RNG.uniform(-1, 1, (5, 3, 2))
    lengths = [5, 2, 3]
    layer = _ready(
        rnn.LSTM(3, bidirectional=True, use_sequence_length=True),
        x,
        lambda net, data: _layer_run_lengths(net, data, [5, 5, 5]),
    )
    out, states = _layer_run_lengths(layer, _array(x), lengths)
    for b, length in enumerate(lengths):
        alone, alone_states = layer(
            _array(x[:length, b : b + 1]),
            layer.begin_state(1, dtype="float64"),
            mx.nd.array([length], dtype="float64"),
        )
        np.testing.assert_allclose(out.asnumpy()[:length, b], alone.asnumpy()[:, 0], rtol=1e-10)
        assert not out.asnumpy()[length:, b].any()
        for got, expected in zip(states, alone_states):
            np.testing.assert_allclose(got.asnumpy()[:, b], expected.asnumpy()[:, 0], rtol=1e-10)


def _layer_run_lengths(net, data, lengths):
    states = net.begin_state(data.shape[1], dtype=data.dtype)
    return net(data, states, mx.nd.array(lengths, dtype=data.dtype))


def test_symbol_of_a_layer_infers_every_parameter_shape():
    layer = rnn.GRU(4, num_layers=2, bidirectional=True, prefix="g_")
    out = layer(mx.sym.var("data"))
    shapes, outputs, _ = out.infer_shape(data=(3, 2, 5))
    shapes = dict(zip(out.list_arguments(), shapes))
    assert shapes["g_l0_i2h_weight"] == (12, 5) and shapes["g_r0_i2h_weight"] == (12, 5)
    assert shapes["g_l1_i2h_weight"] == (12, 8) and outputs == [(3, 2, 8)]
