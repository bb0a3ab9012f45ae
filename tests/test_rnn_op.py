"""The fused RNN op: values against a plain numpy reference written here (every
mode, bidirectional, 2 layers, projection, sequence lengths), gradients against
float64 finite differences (first order in every mode, second and third through
an LSTM), dropout between layers, Symbol shape inference, and the compiled
backend against the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd
from symgrad import op_testing as tu
from symgrad_compiler.ops.rnn import rnn_param_shapes, rnn_param_size

MODES = ["rnn_relu", "rnn_tanh", "lstm", "gru"]


# ---------------------------------------------------------------------------
# an independent reference: one loop per layer, direction and step
# ---------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _unpack(params, mode, layers, features, hidden, bidirectional, projection):
    pieces, offset = {}, 0
    for name, shape in rnn_param_shapes(mode, layers, features, hidden, bidirectional, projection):
        size = int(np.prod(shape))
        pieces[name] = params[offset : offset + size].reshape(shape)
        offset += size
    assert offset == params.size
    return pieces


def reference_rnn(
    data,
    params,
    h0,
    c0=None,
    *,
    mode,
    layers,
    hidden,
    bidirectional=False,
    projection=None,
    lengths=None,
):
    """(out, h_n, c_n) computed step by step from the formulas in MXNet's docs."""
    steps, batch, features = data.shape
    directions = 2 if bidirectional else 1
    w = _unpack(params, mode, layers, features, hidden, bidirectional, projection)
    lengths = np.full(batch, steps) if lengths is None else np.asarray(lengths, int)
    x = data
    hs, cs = [], []
    for layer in range(layers):
        outs = []
        for d, tag in enumerate("lr"[:directions]):
            k = layer * directions + d
            p = {
                n[len(f"{tag}{layer}_") :]: v
                for n, v in w.items()
                if n.startswith(f"{tag}{layer}_")
            }
            out = np.zeros((steps, batch, (projection or hidden)), data.dtype)
            h_last = np.array(h0[k])
            c_last = None if c0 is None else np.array(c0[k])
            for b in range(batch):
                h = h0[k, b]
                c = None if c0 is None else c0[k, b]
                order = range(lengths[b]) if d == 0 else range(lengths[b] - 1, -1, -1)
                for t in order:
                    xt = x[t, b]
                    gi = p["i2h_weight"] @ xt + p["i2h_bias"]
                    gh = p["h2h_weight"] @ h + p["h2h_bias"]
                    if mode == "lstm":
                        i, f, g, o = np.split(gi + gh, 4)
                        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                        h = _sigmoid(o) * np.tanh(c)
                        if projection:
                            h = p["h2r_weight"] @ h
                    elif mode == "gru":
                        ir, iz, inn = np.split(gi, 3)
                        hr, hz, hn = np.split(gh, 3)
                        r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
                        n = np.tanh(inn + r * hn)
                        h = (1 - z) * n + z * h
                    elif mode == "rnn_tanh":
                        h = np.tanh(gi + gh)
                    else:
                        h = np.maximum(gi + gh, 0)
                    out[t, b] = h
                h_last[b] = h
                if c_last is not None:
                    c_last[b] = c
            outs.append(out)
            hs.append(h_last)
            cs.append(c_last)
        x = np.concatenate(outs, axis=2)
    return x, np.stack(hs), (np.stack(cs) if mode == "lstm" else None)


def _inputs(
    rng,
    mode,
    layers,
    features,
    hidden,
    bidirectional=False,
    projection=None,
    steps=4,
    batch=3,
    dtype=np.float64,
):
    directions = 2 if bidirectional else 1
    size = rnn_param_size(mode, layers, features, hidden, bidirectional, projection)
    values = [
        rng.uniform(-1, 1, (steps, batch, features)),
        rng.uniform(-0.5, 0.5, (size,)),
        rng.uniform(-1, 1, (layers * directions, batch, projection or hidden)),
    ]
    if mode == "lstm":
        values.append(rng.uniform(-1, 1, (layers * directions, batch, hidden)))
    return [v.astype(dtype) for v in values]


def _nd(value: np.ndarray) -> mx.nd.NDArray:
    return mx.nd.array(value, dtype=value.dtype)


def _attrs(mode, layers, hidden, bidirectional=False, projection=None, **extra):
    return dict(
        state_size=hidden,
        num_layers=layers,
        mode=mode,
        bidirectional=bidirectional,
        projection_size=projection,
        **extra,
    )


# ---------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_values_match_the_reference(mode, bidirectional):
    rng = np.random.default_rng(0)
    values = _inputs(rng, mode, 2, 3, 4, bidirectional, dtype=np.float32)
    outs = mx.nd.RNN(
        *[_nd(v) for v in values], state_outputs=True, **_attrs(mode, 2, 4, bidirectional)
    )
    expected = reference_rnn(*values, mode=mode, layers=2, hidden=4, bidirectional=bidirectional)
    assert len(outs) == (3 if mode == "lstm" else 2)
    for ours, theirs in zip(outs, expected):
        np.testing.assert_allclose(ours.asnumpy(), theirs, rtol=1e-5, atol=1e-6)


def test_only_the_output_without_state_outputs():
    values = _inputs(np.random.default_rng(1), "gru", 1, 3, 4)
    out = mx.nd.RNN(*[_nd(v) for v in values], **_attrs("gru", 1, 4))
    assert isinstance(out, mx.nd.NDArray) and out.shape == (4, 3, 4)


def test_lstm_projection_matches_the_reference():
    rng = np.random.default_rng(2)
    values = _inputs(rng, "lstm", 2, 3, 5, True, projection=2)
    outs = mx.nd.RNN(
        *[_nd(v) for v in values], state_outputs=True, **_attrs("lstm", 2, 5, True, projection=2)
    )
    assert [o.shape for o in outs] == [(4, 3, 4), (4, 3, 2), (4, 3, 5)]
    expected = reference_rnn(
        *values, mode="lstm", layers=2, hidden=5, bidirectional=True, projection=2
    )
    for ours, theirs in zip(outs, expected):
        np.testing.assert_allclose(ours.asnumpy(), theirs, rtol=1e-10)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_sequence_length_runs_each_sequence_on_its_valid_steps(mode):
    rng = np.random.default_rng(3)
    values = _inputs(rng, mode, 2, 3, 4, True, steps=5)
    lengths = np.array([5, 2, 3])
    outs = mx.nd.RNN(
        *[_nd(v) for v in values],
        _nd(lengths.astype(np.float64)),
        use_sequence_length=True,
        state_outputs=True,
        **_attrs(mode, 2, 4, True),
    )
    expected = reference_rnn(
        *values, mode=mode, layers=2, hidden=4, bidirectional=True, lengths=lengths
    )
    for ours, theirs in zip(outs, expected):
        np.testing.assert_allclose(ours.asnumpy(), theirs, rtol=1e-10, atol=1e-12)
    assert not outs[0].asnumpy()[2:, 1].any(), "steps past the length output zeros"


def test_state_clip_bounds_the_cell_state():
    values = _inputs(np.random.default_rng(4), "lstm", 1, 3, 4)
    values[1] = values[1] * 8  # large weights: the cell state grows past the bounds
    outs = mx.nd.RNN(
        *[_nd(v) for v in values],
        state_outputs=True,
        lstm_state_clip_min=-0.5,
        lstm_state_clip_max=0.5,
        **_attrs("lstm", 1, 4),
    )
    cell = outs[2].asnumpy()
    assert cell.max() <= 0.5 and cell.min() >= -0.5 and np.abs(cell).max() == 0.5


def test_state_clip_nan_sends_nan_cell_states_to_the_bound():
    values = _inputs(np.random.default_rng(4), "lstm", 1, 3, 4, steps=2)
    values[0][0, 1] = np.nan  # one sequence's first step
    clip = dict(lstm_state_clip_min=-0.5, lstm_state_clip_max=0.5, **_attrs("lstm", 1, 4))
    kept = mx.nd.RNN(*[_nd(v) for v in values], state_outputs=True, **clip)[2].asnumpy()
    assert np.isnan(kept[0, 1]).all() and np.isfinite(kept[0, [0, 2]]).all()
    stopped = mx.nd.RNN(
        *[_nd(v) for v in values], state_outputs=True, lstm_state_clip_nan=True, **clip
    )[2].asnumpy()
    np.testing.assert_array_equal(stopped[0, 1], -0.5)
    np.testing.assert_array_equal(stopped[0, [0, 2]], kept[0, [0, 2]])


def test_gradient_through_the_state_clip():
    values = _inputs(np.random.default_rng(14), "lstm", 1, 2, 3, steps=3, batch=2)
    values[1] = values[1] * 4
    attrs = dict(lstm_state_clip_min=-0.4, lstm_state_clip_max=0.4, **_attrs("lstm", 1, 3))
    cell = mx.nd.RNN(*[_nd(v) for v in values], state_outputs=True, **attrs)[2].asnumpy()
    assert (np.abs(cell) == 0.4).any(), "some states are clipped"
    tu.check_numeric_gradient(_rnn_function(attrs), values)


def test_parameter_size_is_checked():
    values = _inputs(np.random.default_rng(5), "gru", 1, 3, 4)
    with pytest.raises(mx.base.MXNetError, match="parameters must be"):
        mx.nd.RNN(_nd(values[0]), _nd(values[1][:-1]), _nd(values[2]), **_attrs("gru", 1, 4))


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------


def _rnn_function(attrs, state_outputs=True):
    def fn(*arrays):
        return mx.nd.RNN(*arrays, state_outputs=state_outputs, **attrs)

    fn.__name__ = f"RNN[{attrs['mode']}]"
    return fn


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_first_order_gradients_match_finite_differences(mode, bidirectional):
    values = _inputs(np.random.default_rng(6), mode, 2, 2, 3, bidirectional, steps=3, batch=2)
    tu.check_numeric_gradient(_rnn_function(_attrs(mode, 2, 3, bidirectional)), values)


def test_gradients_with_projection_and_sequence_lengths():
    rng = np.random.default_rng(7)
    values = _inputs(rng, "lstm", 2, 2, 3, True, projection=2, steps=4, batch=3)
    attrs = _attrs("lstm", 2, 3, True, projection=2, use_sequence_length=True)
    tu.check_numeric_gradient(
        _rnn_function(attrs), values + [np.array([4.0, 1.0, 3.0])], wrt=(0, 1, 2, 3)
    )


def test_second_order_through_lstm_matches_finite_differences():
    # autograd.grad(create_graph=True), then a backward of the recorded gradient
    values = _inputs(np.random.default_rng(8), "lstm", 2, 2, 3, True, steps=3, batch=2)
    tu.check_higher_order(_rnn_function(_attrs("lstm", 2, 3, True)), values, order=2)


def test_third_order_through_gru():
    values = _inputs(np.random.default_rng(9), "gru", 1, 2, 2, steps=2, batch=1)
    tu.check_higher_order(_rnn_function(_attrs("gru", 1, 2)), values, order=3)


def test_second_order_by_hand_equals_the_difference_of_first_gradients():
    # d/dx <grad_x L, v> by backward through the recorded gradient, against central
    # differences of the first gradient computed without recording
    rng = np.random.default_rng(10)
    values = _inputs(rng, "lstm", 1, 2, 3, steps=3, batch=2)
    attrs = _attrs("lstm", 1, 3)
    v = rng.standard_normal(values[0].shape)
    u = rng.standard_normal((3, 2, 3))

    def first_gradient(data):
        x = mx.nd.array(data, dtype="float64")
        x.attach_grad()
        with autograd.record():
            out = mx.nd.RNN(x, *[mx.nd.array(a, dtype="float64") for a in values[1:]], **attrs)
        out.backward(mx.nd.array(u, dtype="float64"))
        return x.grad.asnumpy()

    x = mx.nd.array(values[0], dtype="float64")
    x.attach_grad()
    with autograd.record():
        out = mx.nd.RNN(x, *[mx.nd.array(a, dtype="float64") for a in values[1:]], **attrs)
        (gx,) = autograd.grad([out], [x], [mx.nd.array(u, dtype="float64")], create_graph=True)
        projected = (gx * mx.nd.array(v, dtype="float64")).sum()
    projected.backward()
    np.testing.assert_allclose(gx.asnumpy(), first_gradient(values[0]), rtol=1e-10)
    direction = rng.standard_normal(values[0].shape)
    eps = 1e-5
    numeric = (
        (first_gradient(values[0] + eps * direction) - first_gradient(values[0] - eps * direction))
        * v
    ).sum() / (2 * eps)
    np.testing.assert_allclose((x.grad.asnumpy() * direction).sum(), numeric, rtol=1e-6)


# ---------------------------------------------------------------------------
# dropout between layers
# ---------------------------------------------------------------------------


def test_dropout_between_layers_only_in_training():
    values = [_nd(v) for v in _inputs(np.random.default_rng(11), "gru", 2, 3, 4)]
    attrs = _attrs("gru", 2, 4, p=0.5)
    plain = mx.nd.RNN(*values, **_attrs("gru", 2, 4)).asnumpy()
    np.testing.assert_array_equal(mx.nd.RNN(*values, **attrs).asnumpy(), plain)
    with autograd.record(train_mode=True):
        dropped = mx.nd.RNN(*values, **attrs).asnumpy()
    assert not np.allclose(dropped, plain)
    # one layer: nothing between layers to drop
    one = _attrs("gru", 1, 4, p=0.5)
    first = [
        values[0],
        _nd(values[1].asnumpy()[: rnn_param_size("gru", 1, 3, 4)]),
        _nd(values[2].asnumpy()[:1]),
    ]
    with autograd.record(train_mode=True):
        trained = mx.nd.RNN(*first, **one).asnumpy()
    np.testing.assert_array_equal(trained, mx.nd.RNN(*first, **one).asnumpy())


def test_dropout_gradient_uses_the_forward_masks():
    values = _inputs(np.random.default_rng(12), "lstm", 2, 2, 3, steps=3, batch=2)

    def fn(*arrays):
        with autograd.train_mode():
            return mx.nd.RNN(*arrays, state_outputs=True, **_attrs("lstm", 2, 3, p=0.4))

    tu.check_numeric_gradient(fn, values, seed=0)


# ---------------------------------------------------------------------------
# Symbol, parameter packing, compiled backend
# ---------------------------------------------------------------------------


def test_symbol_infers_parameter_and_state_shapes():
    data = mx.sym.var("data")
    out = mx.sym.RNN(
        data,
        mx.sym.var("params"),
        mx.sym.var("h"),
        mx.sym.var("c"),
        state_outputs=True,
        **_attrs("lstm", 2, 4, True),
    )
    assert len(out.list_outputs()) == 3
    args, outs, _ = out.infer_shape(data=(5, 3, 2))
    assert args == [(5, 3, 2), (rnn_param_size("lstm", 2, 2, 4, True),), (4, 3, 4), (4, 3, 4)]
    assert outs == [(5, 3, 8), (4, 3, 4), (4, 3, 4)]
    one = mx.sym.RNN(data, mx.sym.var("params"), mx.sym.var("h"), **_attrs("gru", 1, 4))
    assert len(one.list_outputs()) == 1


def test_param_concat_joins_and_splits_gradients():
    a, b = mx.nd.array([1.0, 2.0]), mx.nd.array([3.0, 4.0, 5.0])
    a.attach_grad()
    b.attach_grad()
    with autograd.record():
        joined = mx.nd._rnn_param_concat(a, b, dim=0)
        (joined * mx.nd.arange(5)).sum().backward()
    np.testing.assert_array_equal(joined.asnumpy(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(a.grad.asnumpy(), [0, 1])
    np.testing.assert_array_equal(b.grad.asnumpy(), [2, 3, 4])


@pytest.mark.slow
def test_compiled_backend_gives_the_interpreters_gradients(compiled):
    values = _inputs(np.random.default_rng(13), "gru", 1, 2, 3, steps=2, batch=2)
    tu.check_numeric_gradient(_rnn_function(_attrs("gru", 1, 3)), values)
