"""``mx.mod.Module`` and ``mx.model`` checkpoints: each step against a numpy
reference, gradients against float64 finite differences, and the loops'
bookkeeping (padding, metrics, logging, checkpoints, optimizer states) as MXNet
1.9.1 defines it. Real MXNet's numbers are in ``test_interop_module.py``.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import symgrad as mx
from symgrad.base import MXNetShapeError


def _mlp(hidden: int = 5, classes: int = 3):
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=hidden, name="fc1")
    net = mx.sym.Activation(net, act_type="tanh", name="act1")
    net = mx.sym.FullyConnected(net, num_hidden=classes, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def _data(n: int = 20, features: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32) + (X[:, 1] > 0.5)
    return X, y.astype(np.float32)


def _params(features: int = 4, hidden: int = 5, classes: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    return {
        "fc1_weight": rng.normal(0, 0.5, (hidden, features)).astype(np.float32),
        "fc1_bias": rng.normal(0, 0.1, (hidden,)).astype(np.float32),
        "fc2_weight": rng.normal(0, 0.5, (classes, hidden)).astype(np.float32),
        "fc2_bias": rng.normal(0, 0.1, (classes,)).astype(np.float32),
    }


def _nd(params: dict) -> dict:
    return {k: mx.nd.array(v) for k, v in params.items()}


def _forward_numpy(p: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.tanh(X @ p["fc1_weight"].T + p["fc1_bias"])
    z = hidden @ p["fc2_weight"].T + p["fc2_bias"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return hidden, e / e.sum(axis=1, keepdims=True)


def _bound(batch: int = 8, **kwargs):
    mod = mx.mod.Module(_mlp(), **kwargs)
    mod.bind(data_shapes=[("data", (batch, 4))], label_shapes=[("softmax_label", (batch,))])
    mod.set_params(_nd(_params()), {})
    return mod


# ---------------------------------------------------------------------------
# one step
# ---------------------------------------------------------------------------


def test_forward_backward_update_equal_a_numpy_sgd_step():
    """fit's step: softmax forward, (p - onehot) backward, and SGD with
    rescale_grad = 1/batch and weight decay on ``_weight`` parameters only."""
    X, y = _data(8)
    p = _params()
    mod = _bound()
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.5, "wd": 0.1})
    mod.forward(mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(y)]), is_train=True)
    hidden, prob = _forward_numpy(p, X)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), prob, rtol=1e-5, atol=1e-6)
    mod.backward()
    mod.update()
    dz = prob - np.eye(3, dtype=np.float32)[y.astype(int)]
    dh = (dz @ p["fc2_weight"]) * (1 - hidden**2)
    grads = {
        "fc2_weight": dz.T @ hidden,
        "fc2_bias": dz.sum(0),
        "fc1_weight": dh.T @ X,
        "fc1_bias": dh.sum(0),
    }
    args, _ = mod.get_params()
    for name, grad in grads.items():
        wd = 0.1 if name.endswith("_weight") else 0.0
        expected = p[name] - 0.5 * (grad / 8 + wd * p[name])
        np.testing.assert_allclose(
            args[name].asnumpy(), expected, rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_input_gradients_equal_float64_finite_differences():
    data = mx.sym.var("data")
    net = mx.sym.tanh(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="out")
    mod = mx.mod.Module(net, label_names=None)
    mod.bind(data_shapes=[mx.io.DataDesc("data", (2, 4), np.float64)], inputs_need_grad=True)
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(3, 4)), rng.normal(size=(3,))
    mod.set_params(
        {
            "fc_weight": mx.nd.array(weight, dtype=np.float64),
            "fc_bias": mx.nd.array(bias, dtype=np.float64),
        },
        {},
    )
    x = rng.normal(size=(2, 4))
    head = rng.normal(size=(2, 3))
    mod.forward(mx.io.DataBatch([mx.nd.array(x, dtype=np.float64)]), is_train=True)
    mod.backward([mx.nd.array(head, dtype=np.float64)])
    grad = mod.get_input_grads()[0].asnumpy()
    assert grad.dtype == np.float64

    def objective(value):
        return float((np.tanh(value @ weight.T + bias) * head).sum())

    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numeric[index] = (objective(x + step) - objective(x - step)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    # the parameters' gradients too
    fc_grad = mod._exec.grad_dict["fc_weight"].asnumpy()
    expected = ((1 - np.tanh(x @ weight.T + bias) ** 2) * head).T @ x
    np.testing.assert_allclose(fc_grad, expected, rtol=1e-10)


def test_fixed_params_keep_their_values_and_get_no_gradient():
    X, y = _data(8)
    mod = _bound(fixed_param_names=["fc1_weight", "fc1_bias"])
    mod.init_optimizer(optimizer_params={"learning_rate": 1.0})
    mod.forward_backward(mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(y)]))
    mod.update()
    args, _ = mod.get_params()
    p = _params()
    np.testing.assert_array_equal(args["fc1_weight"].asnumpy(), p["fc1_weight"])
    np.testing.assert_array_equal(args["fc1_bias"].asnumpy(), p["fc1_bias"])
    assert not np.allclose(args["fc2_weight"].asnumpy(), p["fc2_weight"])
    assert "fc1_weight" not in mod._exec.grad_dict


def test_wd_mult_and_lr_mult_from_symbol_attributes():
    """``__lr_mult__`` on a variable reaches the optimizer through ``sym``."""
    data = mx.sym.var("data")
    weight = mx.sym.var("fc_weight", lr_mult=0.0)
    net = mx.sym.SoftmaxOutput(
        mx.sym.FullyConnected(data, weight, num_hidden=2, name="fc"), name="softmax"
    )
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (4, 3))], label_shapes=[("softmax_label", (4,))])
    mod.init_params(mx.init.Constant(0.5))
    mod.init_optimizer(optimizer_params={"learning_rate": 1.0})
    mod.forward_backward(mx.io.DataBatch([mx.nd.ones((4, 3))], [mx.nd.zeros((4,))]))
    mod.update()
    args, _ = mod.get_params()
    np.testing.assert_array_equal(args["fc_weight"].asnumpy(), np.full((2, 3), 0.5))
    # Constant fills weights only (biases start at 0, as MXNet's initializers do);
    # the bias moved by -lr * mean(p - onehot) = -(0.5 - 1, 0.5 - 0)
    np.testing.assert_allclose(args["fc_bias"].asnumpy(), [0.5, -0.5], rtol=1e-6)


# ---------------------------------------------------------------------------
# predict, score, iter_predict
# ---------------------------------------------------------------------------


def test_predict_drops_padding_and_merges_batches():
    X, y = _data(20)
    mod = _bound()
    it = mx.io.NDArrayIter(X, y, batch_size=8)  # 8, 8, 4 + 4 padding
    _, prob = _forward_numpy(_params(), X)
    out = mod.predict(it)
    assert out.shape == (20, 3)
    np.testing.assert_allclose(out.asnumpy(), prob, rtol=1e-5, atol=1e-6)
    per_batch = mod.predict(it, merge_batches=False)
    assert [len(b) for b in per_batch] == [1, 1, 1]
    assert [b[0].shape[0] for b in per_batch] == [8, 8, 4]
    assert mod.predict(it, num_batch=2).shape == (16, 3)
    assert isinstance(mod.predict(it, always_output_list=True), list)
    seen = [(nbatch, outs[0].shape[0], batch.pad) for outs, nbatch, batch in mod.iter_predict(it)]
    assert seen == [(0, 8, 0), (1, 8, 0), (2, 4, 4)]


def test_predict_on_an_array_of_another_batch_size_rebinds():
    X, _ = _data(5)
    mod = _bound()
    with pytest.warns(UserWarning, match="label_shapes"):  # as MXNet's reshape warns
        out = mod.predict(X)
    np.testing.assert_allclose(out.asnumpy(), _forward_numpy(_params(), X)[1], rtol=1e-5, atol=1e-6)
    assert mod.data_shapes[0].shape == (5, 4)
    assert mod.output_shapes == [("softmax_output", (5, 3))]


def test_score_counts_the_padded_samples_as_mxnet_does():
    X, y = _data(20)
    mod = _bound()
    it = mx.io.NDArrayIter(X, y, batch_size=8)
    _, prob = _forward_numpy(_params(), X)
    # the last batch is rows 16..19 then rows 0..3 again (NDArrayIter's padding)
    rows = np.r_[np.arange(20), np.arange(4)]
    expected = float((prob[rows].argmax(1) == y[rows]).mean())
    assert mod.score(it, "acc") == [("accuracy", pytest.approx(expected))]
    ((name, value),) = mod.score(it, mx.metric.Accuracy(), num_batch=1)
    assert value == pytest.approx(float((prob[:8].argmax(1) == y[:8]).mean()))


# ---------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------


def test_fit_learns_logs_and_calls_back(caplog):
    X, y = _data(64, seed=4)
    it = mx.io.NDArrayIter(X, y, batch_size=16)
    mod = mx.mod.Module(_mlp())
    batches, epochs = [], []
    with caplog.at_level(logging.INFO):
        mod.fit(
            it,
            eval_data=it,
            eval_metric="acc",
            optimizer="sgd",
            optimizer_params={"learning_rate": 0.5, "momentum": 0.9},
            initializer=mx.init.Xavier(),
            num_epoch=6,
            batch_end_callback=lambda p: batches.append((p.epoch, p.nbatch)),
            epoch_end_callback=lambda e, s, a, x: epochs.append((e, sorted(a), x)),
        )
    assert batches[:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert epochs[0] == (0, ["fc1_bias", "fc1_weight", "fc2_bias", "fc2_weight"], {})
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("Epoch[0] Train-accuracy=")
    assert messages[1].startswith("Epoch[0] Time cost=")
    assert messages[2].startswith("Epoch[0] Validation-accuracy=")
    final = float(messages[-1].rpartition("=")[2])
    assert final >= 0.9 and final == pytest.approx(mod.score(it, "acc")[0][1], abs=1e-6)


def test_fit_keeps_batchnorm_statistics_as_aux_params():
    data = mx.sym.var("data")
    net = mx.sym.BatchNorm(mx.sym.FullyConnected(data, num_hidden=4, name="fc"), name="bn")
    net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(net, num_hidden=2, name="out"), name="softmax")
    X, y = _data(32)
    X = X * 3 + 1
    mod = mx.mod.Module(net)
    mod.fit(
        mx.io.NDArrayIter(X, np.minimum(y, 1), batch_size=16),
        num_epoch=2,
        initializer=mx.init.Xavier(),
        optimizer_params={"learning_rate": 0.1},
    )
    args, aux = mod.get_params()
    assert sorted(aux) == ["bn_moving_mean", "bn_moving_var"]
    assert np.abs(aux["bn_moving_mean"].asnumpy()).sum() > 0  # trained statistics
    # inference normalises with them
    w, b = args["fc_weight"].asnumpy(), args["fc_bias"].asnumpy()
    h = X[:16] @ w.T + b
    mean, var = aux["bn_moving_mean"].asnumpy(), aux["bn_moving_var"].asnumpy()
    normed = (h - mean) / np.sqrt(var + 1e-3) * args["bn_gamma"].asnumpy() + args[
        "bn_beta"
    ].asnumpy()
    z = normed @ args["out_weight"].asnumpy().T + args["out_bias"].asnumpy()
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(
        mod.predict(mx.io.NDArrayIter(X[:16], batch_size=16)).asnumpy(),
        e / e.sum(1, keepdims=True),
        rtol=1e-4,
        atol=1e-5,
    )


def test_compiled_backend_trains_to_the_interpreters_numbers(compiled):
    X, y = _data(32)
    results = []
    for backend in ("compiled", "interpreter"):
        os.environ["SYMGRAD_BACKEND"] = backend
        mod = mx.mod.Module(_mlp())
        mod.fit(
            mx.io.NDArrayIter(X, y, batch_size=8),
            arg_params=_nd(_params()),
            optimizer_params={"learning_rate": 0.3, "momentum": 0.5},
            num_epoch=2,
        )
        results.append({k: v.asnumpy() for k, v in mod.get_params()[0].items()})
    for name in results[0]:
        np.testing.assert_allclose(results[0][name], results[1][name], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# checkpoints and optimizer states
# ---------------------------------------------------------------------------


def test_model_checkpoint_files_use_arg_and_aux_keys(tmp_path):
    data = mx.sym.var("data")
    net = mx.sym.BatchNorm(mx.sym.FullyConnected(data, num_hidden=2, name="fc"), name="bn")
    args = {
        "fc_weight": mx.nd.ones((2, 3)),
        "fc_bias": mx.nd.zeros((2,)),
        "bn_gamma": mx.nd.ones((2,)),
        "bn_beta": mx.nd.zeros((2,)),
    }
    aux = {"bn_moving_mean": mx.nd.array([1.0, 2.0]), "bn_moving_var": mx.nd.ones((2,))}
    prefix = str(tmp_path / "net")
    mx.model.save_checkpoint(prefix, 12, net, args, aux)
    assert sorted(os.listdir(tmp_path)) == ["net-0012.params", "net-symbol.json"]
    raw = mx.nd.load(prefix + "-0012.params")
    assert sorted(raw) == sorted([f"arg:{k}" for k in args] + [f"aux:{k}" for k in aux])
    symbol, args2, aux2 = mx.model.load_checkpoint(prefix, 12)
    assert symbol.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    assert aux2["bn_moving_mean"].asnumpy().tolist() == [1.0, 2.0]
    assert sorted(args2) == sorted(args)
    mx.model.save_checkpoint(prefix, 13, None, {}, {})  # no symbol: params only
    assert mx.model.load_params(prefix, 13) == ({}, {})


def test_resuming_from_a_checkpoint_continues_the_same_training(tmp_path):
    """Module.save_checkpoint with optimizer states, then Module.load: the
    momentum carries over, so 2 + 2 epochs equal 4 uninterrupted ones."""
    X, y = _data(24)
    opt = {"learning_rate": 0.2, "momentum": 0.9}

    def fit(mod, begin, end, **kwargs):
        mod.fit(
            mx.io.NDArrayIter(X, y, batch_size=8),
            optimizer_params=opt,
            begin_epoch=begin,
            num_epoch=end,
            **kwargs,
        )

    straight = mx.mod.Module(_mlp())
    fit(straight, 0, 4, arg_params=_nd(_params()))
    first = mx.mod.Module(_mlp())
    fit(first, 0, 2, arg_params=_nd(_params()))
    prefix = str(tmp_path / "mlp")
    first.save_checkpoint(prefix, 2, save_optimizer_states=True)
    assert os.path.exists(prefix + "-0002.states")
    resumed = mx.mod.Module.load(prefix, 2, load_optimizer_states=True)
    with pytest.warns(UserWarning, match="already initialized"):
        fit(resumed, 2, 4)
    for name, value in straight.get_params()[0].items():
        np.testing.assert_allclose(
            resumed.get_params()[0][name].asnumpy(),
            value.asnumpy(),
            rtol=1e-6,
            atol=1e-7,
            err_msg=name,
        )
    # without the states, momentum restarts and the result differs
    fresh = mx.mod.Module.load(prefix, 2)
    with pytest.warns(UserWarning, match="already initialized"):
        fit(fresh, 2, 4)
    assert not np.allclose(
        fresh.get_params()[0]["fc2_weight"].asnumpy(),
        straight.get_params()[0]["fc2_weight"].asnumpy(),
    )


def test_save_and_load_params(tmp_path):
    mod = _bound()
    mod.save_params(str(tmp_path / "p.params"))
    other = mx.mod.Module(_mlp())
    other.bind(data_shapes=[("data", (8, 4))], label_shapes=[("softmax_label", (8,))])
    other.init_params()
    other.load_params(str(tmp_path / "p.params"))
    for name, value in _params().items():
        np.testing.assert_array_equal(other.get_params()[0][name].asnumpy(), value)


# ---------------------------------------------------------------------------
# the API's checks
# ---------------------------------------------------------------------------


def test_names_and_shapes():
    mod = _bound()
    assert mod.data_names == ["data"] and mod.label_names == ["softmax_label"]
    assert mod.output_names == ["softmax_output"]
    assert mod.data_shapes[0].shape == (8, 4) and mod.label_shapes[0].name == "softmax_label"
    assert mod.output_shapes == [("softmax_output", (8, 3))]
    assert mod.symbol.list_outputs() == ["softmax_output"]


def test_errors_and_warnings_as_mxnet():
    with pytest.raises(ValueError, match="not found in symbol.list_arguments"):
        mx.mod.Module(_mlp(), data_names=["x"])
    with pytest.warns(UserWarning, match="label_names"):
        mx.mod.Module(_mlp(), label_names=["lbl"])
    mod = mx.mod.Module(_mlp())
    with pytest.raises(ValueError, match="don't match names"):
        mod.bind(data_shapes=[("other", (8, 4))])
    mod.bind(data_shapes=[("data", (8, 4))], label_shapes=[("softmax_label", (8,))])
    with pytest.raises(RuntimeError, match="fc2_bias is not presented"):
        mod.init_params(arg_params={k: v for k, v in _nd(_params()).items() if k != "fc2_bias"})
    mod.init_params(mx.init.Zero(), arg_params={"fc2_bias": mx.nd.ones((3,))}, allow_missing=True)
    args, _ = mod.get_params()
    assert args["fc2_bias"].asnumpy().tolist() == [1, 1, 1]
    assert args["fc1_weight"].asnumpy().sum() == 0
    with pytest.warns(UserWarning, match="already initialized"):
        mod.init_params()
    mod.set_params({"fc1_bias": mx.nd.full((5,), 2.0)}, {}, allow_missing=True)
    assert mod.get_params()[0]["fc1_bias"].asnumpy().tolist() == [2.0] * 5
    with pytest.raises(ValueError, match="not in the arguments"):
        mod.set_params({"nope": mx.nd.ones((1,))}, {}, allow_missing=True)
    mod.init_optimizer()
    with pytest.warns(UserWarning, match="rescale_grad"):
        mod.init_optimizer(optimizer=mx.optimizer.SGD(learning_rate=0.1), force_init=True)


# ---------------------------------------------------------------------------
# zero dims in creation attrs (exported recurrent cells' begin states)
# ---------------------------------------------------------------------------


def _cell_graph():
    """One RNN and one LSTM-like step with (0, 4) begin states, as MXNet exports."""
    data = mx.sym.var("data")
    h0 = mx.sym.zeros(shape=(0, 4), name="begin_h")
    c0 = mx.sym.zeros(shape=(0, 4), name="begin_c")
    i2h = mx.sym.FullyConnected(data, num_hidden=4, name="i2h")
    h2h = mx.sym.FullyConnected(h0, num_hidden=4, name="h2h")
    h1 = mx.sym.tanh(mx.sym.elemwise_add(i2h, h2h))
    c1 = mx.sym.elemwise_add(mx.sym.elemwise_mul(mx.sym.sigmoid(h1), c0), h1)
    return mx.sym.Group([h1, c1])


def test_zero_dims_of_begin_states_are_inferred_from_the_graph():
    graph = mx.sym.load_json(_cell_graph().tojson())  # through JSON, as a file is read
    arg_shapes, out_shapes, _ = graph.infer_shape(data=(3, 6))
    assert out_shapes == [(3, 4), (3, 4)]
    assert dict(zip(graph.list_arguments(), arg_shapes)) == {
        "data": (3, 6),
        "i2h_weight": (4, 6),
        "i2h_bias": (4,),
        "h2h_weight": (4, 4),
        "h2h_bias": (4,),
    }
    rng = np.random.default_rng(0)
    values = {
        "data": rng.normal(size=(3, 6)),
        "i2h_weight": rng.normal(size=(4, 6)),
        "i2h_bias": rng.normal(size=(4,)),
        "h2h_weight": rng.normal(size=(4, 4)),
        "h2h_bias": rng.normal(size=(4,)),
    }
    # float32: the begin states' dtype attr, which the other inputs must match
    h, c = graph.eval(**{k: mx.nd.array(v) for k, v in values.items()})
    h_ref = np.tanh(
        values["data"] @ values["i2h_weight"].T + values["i2h_bias"] + values["h2h_bias"]
    )  # h0 is zeros: h2h gives its bias
    np.testing.assert_allclose(h.asnumpy(), h_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.asnumpy(), h_ref, rtol=1e-5, atol=1e-6)  # c0 is zeros


def test_a_real_shape_conflict_still_names_the_node():
    a = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="a")
    b = mx.sym.FullyConnected(mx.sym.zeros(shape=(0, 3)), num_hidden=5, name="b")
    with pytest.raises(MXNetShapeError, match="cannot apply to input shapes"):
        mx.sym.elemwise_add(a, b, name="sum").infer_shape(data=(2, 6))


# ---------------------------------------------------------------------------
# FeedForward (deprecated in MXNet, still in 1.9.1)
# ---------------------------------------------------------------------------


def test_feedforward_on_numpy_arrays_learns_and_round_trips(tmp_path, caplog):
    X, y = _data(64, seed=5)
    np.random.seed(0)  # training on numpy arrays shuffles them
    mx.random.seed(0)
    with pytest.warns(DeprecationWarning, match="mxnet.mod.Module"):
        model = mx.model.FeedForward(
            _mlp(),
            num_epoch=10,
            numpy_batch_size=16,
            arg_params=_nd(_params()),
            learning_rate=0.5,
            momentum=0.9,
        )
    with caplog.at_level(logging.INFO):
        model.fit(X, y, eval_data=(X, y))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Start training with [cpu(0)]"
    assert "Epoch[0] Resetting Data Iterator" in messages
    assert any(m.startswith("Epoch[9] Validation-accuracy=") for m in messages)
    assert model.score(mx.io.NDArrayIter(X, y, batch_size=16)) >= 0.9
    # numpy data without labels is scored against zeros, as in MXNet
    assert model.score(X) == pytest.approx(float((model.predict(X).argmax(1) == 0).mean()))
    out, data, label = model.predict(X, return_data=True)
    assert out.shape == (64, 3) and isinstance(out, np.ndarray)
    np.testing.assert_array_equal(data, X)  # no shuffling when predicting
    np.testing.assert_array_equal(label, np.zeros(64))  # no labels given: zeros
    np.testing.assert_allclose(
        out,
        _forward_numpy({k: v.asnumpy() for k, v in model.arg_params.items()}, X)[1],
        rtol=1e-5,
        atol=1e-6,
    )
    assert sorted(model.arg_params) == ["fc1_bias", "fc1_weight", "fc2_bias", "fc2_weight"]
    model.save(str(tmp_path / "ff"))  # epoch defaults to num_epoch
    with pytest.warns(DeprecationWarning):
        loaded = mx.model.FeedForward.load(str(tmp_path / "ff"), 10)
    assert loaded.begin_epoch == 10
    np.testing.assert_array_equal(loaded.predict(X), out)


def test_feedforward_checks_its_inputs():
    X, y = _data(8)
    with pytest.warns(DeprecationWarning):
        model = mx.model.FeedForward(_mlp(), num_epoch=1)
    with pytest.raises(ValueError, match="y must be specified"):
        model.fit(X)
    with pytest.raises(ValueError, match="not equal"):
        model.fit(X, y[:4])
    with pytest.raises(TypeError, match="DataIter, NDArray or numpy"):
        model.fit([[1.0]], y)
    with pytest.warns(DeprecationWarning):
        extra = mx.model.FeedForward(_mlp(), num_epoch=1, arg_params={"nope": mx.nd.ones((1,))})
    with pytest.raises(ValueError, match="nope"):
        extra.fit(X, y)


def test_bind_for_inference_only_and_rebind():
    mod = mx.mod.Module(_mlp())
    with pytest.warns(UserWarning, match="label_shapes don't match"):  # as MXNet warns
        mod.bind(data_shapes=[("data", (8, 4))], for_training=False)
    mod.set_params(_nd(_params()), {})
    with pytest.raises(AssertionError):
        mod.backward()
    X, _ = _data(8)
    mod.forward(mx.io.DataBatch([mx.nd.array(X)]))
    np.testing.assert_allclose(
        mod.get_outputs()[0].asnumpy(), _forward_numpy(_params(), X)[1], rtol=1e-5, atol=1e-6
    )
    mod.bind(data_shapes=[("data", (8, 4))])  # bound already: a warning, nothing else
    # force_rebind for training keeps the parameters
    mod.bind(
        data_shapes=[("data", (8, 4))], label_shapes=[("softmax_label", (8,))], force_rebind=True
    )
    assert mod.for_training
    np.testing.assert_array_equal(
        mod.get_params()[0]["fc1_weight"].asnumpy(), _params()["fc1_weight"]
    )
    # a step, then another rebind: the trained values carry over
    mod.init_optimizer(optimizer_params={"learning_rate": 1.0})
    mod.forward_backward(mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(_data(8)[1])]))
    mod.update()
    trained = mod._exec.arg_dict["fc2_weight"].asnumpy().copy()
    assert not np.allclose(trained, _params()["fc2_weight"])
    mod.bind(
        data_shapes=[("data", (4, 4))], label_shapes=[("softmax_label", (4,))], force_rebind=True
    )
    np.testing.assert_array_equal(mod._exec.arg_dict["fc2_weight"].asnumpy(), trained)
    assert mod.output_shapes == [("softmax_output", (4, 3))]


def test_state_inputs_and_speedometer(caplog):
    """``state_names`` inputs are set by ``set_states`` and get no gradient; the
    Speedometer callback reads the metric as in MXNet."""
    data, state = mx.sym.var("data"), mx.sym.var("state")
    net = mx.sym.elemwise_add(mx.sym.FullyConnected(data, num_hidden=2, name="fc"), state)
    net = mx.sym.SoftmaxOutput(net, name="softmax")
    mod = mx.mod.Module(net, state_names=["state"])
    X, y = _data(8)
    it = mx.io.NDArrayIter(X, np.minimum(y, 1), batch_size=4)
    mod.bind(it.provide_data, it.provide_label)
    mod.init_params(mx.init.Zero())
    mod.set_states(value=3.0)
    assert mod.get_states()[0].asnumpy().tolist() == [[3.0, 3.0]] * 4
    mod.set_states(states=[mx.nd.array([[0.0, 50.0]] * 4)])
    mod.forward(next(iter(it)), is_train=False)
    # the state dominates the zero-initialised layer: class 1 everywhere
    assert mod.get_outputs()[0].asnumpy().argmax(1).tolist() == [1, 1, 1, 1]
    assert "state" not in mod._exec.grad_dict and "state" not in mod.get_params()[0]
    with caplog.at_level(logging.INFO), pytest.warns(UserWarning, match="already initialized"):
        mod.fit(it, num_epoch=2, batch_end_callback=mx.callback.Speedometer(4, 1))
    assert any("samples/sec\taccuracy=" in r.getMessage() for r in caplog.records)


def test_frozen_batchnorm_keeps_its_statistics():
    """No gradient through a BatchNorm (its data, gamma and beta all fixed): its
    moving statistics stay, as MXNet updates them in the skipped backward."""
    data = mx.sym.var("data")
    body = mx.sym.BatchNorm(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="bn")
    net = mx.sym.SoftmaxOutput(
        mx.sym.FullyConnected(body, num_hidden=2, name="out"), name="softmax"
    )
    X, y = _data(8)
    batch = mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(np.minimum(y, 1))])
    means = {}
    for key, fixed in (
        ("frozen", ["fc_weight", "fc_bias", "bn_gamma", "bn_beta"]),
        ("gamma learns", ["fc_weight", "fc_bias"]),
    ):
        mod = mx.mod.Module(net, fixed_param_names=fixed)
        mod.bind([("data", (8, 4))], [("softmax_label", (8,))])
        mod.init_params(mx.init.Xavier())
        mod.forward_backward(batch)
        means[key] = mod._exec.aux_dict["bn_moving_mean"].asnumpy()
        # inference never moves them
        mod.forward(batch, is_train=False)
        np.testing.assert_array_equal(mod._exec.aux_dict["bn_moving_mean"].asnumpy(), means[key])
    np.testing.assert_array_equal(means["frozen"], np.zeros(3))
    assert np.abs(means["gamma learns"]).sum() > 0


def test_a_checkpoint_with_extra_names_loads_and_trains(tmp_path):
    prefix = str(tmp_path / "extra")
    params = _nd(_params())
    params["unused_weight"] = mx.nd.ones((2, 2))
    mx.model.save_checkpoint(prefix, 1, _mlp(), params, {})
    mod = mx.mod.Module.load(prefix, 1)
    X, y = _data(8)
    mod.bind([("data", (8, 4))], [("softmax_label", (8,))])
    mod.init_optimizer(optimizer_params={"learning_rate": 0.1})
    mod.forward_backward(mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(y)]))
    mod.update()
    args, _ = mod.get_params()
    assert args["unused_weight"].asnumpy().tolist() == [[1, 1], [1, 1]]
    assert not np.allclose(args["fc2_weight"].asnumpy(), _params()["fc2_weight"])


@pytest.mark.parametrize("join", ["concat", "stack"])
def test_zero_dims_are_inferred_through_concat_and_stack(join):
    data = mx.sym.var("data")
    features = mx.sym.FullyConnected(data, num_hidden=5, name="fc")
    if join == "concat":
        state = mx.sym.zeros(shape=(0, 3))
        joined = mx.sym.Concat(features, mx.sym.tanh(state), dim=1)
        expected = (2, 8)
    else:
        state = mx.sym.zeros(shape=(0, 5))
        joined = mx.sym.stack(features, state, axis=1)
        expected = (2, 2, 5)
    _, out_shapes, _ = joined.infer_shape(data=(2, 7))
    assert out_shapes == [expected]
    # Concat's own axis is not filled from the other inputs: (0, 0) stays unknown there
    if join == "concat":
        unfillable = mx.sym.Concat(features, mx.sym.zeros(shape=(0, 0)), dim=1)
        assert unfillable.infer_shape(data=(2, 7))[1] == [(2, 5)]


# ---------------------------------------------------------------------------
# BucketingModule
# ---------------------------------------------------------------------------


def _bucket_sym_gen(length):
    data = mx.sym.var("data")
    embed = mx.sym.Embedding(data, input_dim=6, output_dim=3, name="embed")
    net = mx.sym.FullyConnected(mx.sym.sum(embed, axis=1), num_hidden=2, name="fc")
    return mx.sym.SoftmaxOutput(net, name="softmax"), ("data",), ("softmax_label",)


def _bucket_batch(tokens, labels):
    return mx.io.DataBatch(
        [mx.nd.array(tokens)],
        [mx.nd.array(labels)],
        bucket_key=tokens.shape[1],
        provide_data=[("data", tokens.shape)],
        provide_label=[("softmax_label", labels.shape)],
    )


def test_buckets_share_parameters_and_optimizer_states():
    """A step in one bucket moves the weights every bucket uses; momentum built in
    one bucket carries into the next, so alternating buckets equals one module
    fed the same gradients."""
    rng = np.random.default_rng(2)
    start = {
        "embed_weight": rng.normal(size=(6, 3)).astype(np.float32),
        "fc_weight": rng.normal(size=(2, 3)).astype(np.float32),
        "fc_bias": np.zeros(2, np.float32),
    }
    mod = mx.mod.BucketingModule(_bucket_sym_gen, default_bucket_key=4)
    mod.bind([("data", (2, 4))], [("softmax_label", (2,))])
    mod.init_params(arg_params=_nd(start))
    mod.init_optimizer(optimizer_params={"learning_rate": 0.5, "momentum": 0.9})
    batches = [
        _bucket_batch(
            rng.integers(0, 6, (2, n)).astype(np.float32), np.array([0.0, 1.0], np.float32)
        )
        for n in (4, 2, 4, 2)
    ]
    # the reference: fixed-length modules, one per batch, fed the current weights
    weights = {k: v.copy() for k, v in start.items()}
    velocity = {k: np.zeros_like(v) for k, v in start.items()}
    for batch in batches:
        mod.forward_backward(batch)
        mod.update()
        symbol, _, _ = _bucket_sym_gen(batch.bucket_key)
        exe = symbol.simple_bind(mx.cpu(), data=batch.data[0].shape, softmax_label=(2,))
        exe.copy_params_from(_nd(weights))
        exe.forward(is_train=True, data=batch.data[0], softmax_label=batch.label[0])
        exe.backward()
        for name in weights:  # MXNet's SGD momentum, rescale_grad = 1 / batch
            velocity[name] = 0.9 * velocity[name] - 0.5 * exe.grad_dict[name].asnumpy() / 2
            weights[name] = weights[name] + velocity[name]
    assert sorted(mod._buckets) == [2, 4]
    assert (
        mod._buckets[2]._exec.arg_dict["fc_weight"] is mod._buckets[4]._exec.arg_dict["fc_weight"]
    )
    args, _ = mod.get_params()
    for name, value in weights.items():
        np.testing.assert_allclose(args[name].asnumpy(), value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert mod.output_shapes == [("softmax_output", (2, 2))]
    assert mod.data_shapes[0].shape == (2, 2)  # the current bucket's


def test_bucketing_module_fits_and_predicts():
    rng = np.random.default_rng(3)
    batches = []
    for n in (5, 3, 5, 3):
        labels = np.array([0, 1, 1, 0], np.float32)  # class 1 uses tokens 3-5
        tokens = rng.integers(0, 3, (4, n)) + 3 * labels[:, None]
        batches.append(_bucket_batch(tokens.astype(np.float32), labels))

    class Iter(mx.io.DataIter):
        def __init__(self):
            super().__init__(4)
            self.cursor = 0
            self.provide_data = [mx.io.DataDesc("data", (4, 5))]
            self.provide_label = [mx.io.DataDesc("softmax_label", (4,))]

        def reset(self):
            self.cursor = 0

        def next(self):
            if self.cursor == len(batches):
                raise StopIteration
            self.cursor += 1
            return batches[self.cursor - 1]

    mod = mx.mod.BucketingModule(_bucket_sym_gen, default_bucket_key=5)
    mod.fit(
        Iter(),
        num_epoch=30,
        initializer=mx.init.Xavier(),
        optimizer_params={"learning_rate": 0.5, "momentum": 0.9},
    )
    assert mod.score(Iter(), "acc")[0][1] == 1.0
    assert mod.predict(Iter()).shape == (16, 2)
    with pytest.raises(ValueError, match="data name"):
        mx.mod.BucketingModule(lambda key: (_mlp(), ("x",), ()), default_bucket_key=1)
