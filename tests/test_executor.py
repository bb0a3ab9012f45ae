"""Running symbols: eval, bind/simple_bind Executors, Symbol.gradient and compile,
checked against recording the same computation with autograd."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import executor
from symgrad.base import MXNetError, MXNetShapeError

RNG = np.random.default_rng(1)


def model(m, data, w1, b1, w2, b2):
    """The same MLP for mx.sym and mx.nd (m is the namespace)."""
    h = m.FullyConnected(data, w1, b1, num_hidden=4)
    h = m.Activation(h, act_type="tanh")
    h = m.FullyConnected(h, w2, b2, num_hidden=3)
    return m.sum(m.log_softmax(h) * m.sigmoid(h))


def values():
    return {
        "data": RNG.normal(size=(5, 6)),
        "w1": RNG.normal(size=(4, 6)),
        "b1": RNG.normal(size=(4,)),
        "w2": RNG.normal(size=(3, 4)),
        "b2": RNG.normal(size=(3,)),
    }


def symbol():
    names = ["data", "w1", "b1", "w2", "b2"]
    return model(mx.sym, *(mx.sym.var(n) for n in names))


def recorded(inputs):
    arrays = {k: mx.nd.array(v, dtype=np.float64) for k, v in inputs.items()}
    for array in arrays.values():
        array.attach_grad()
    with mx.autograd.record():
        out = model(mx.nd, *arrays.values())
    out.backward()
    return out.asnumpy(), {k: a.grad.asnumpy() for k, a in arrays.items()}


def test_eval_bind_and_compile_agree_with_autograd():
    inputs = values()
    expected, expected_grads = recorded(inputs)
    sym = symbol()
    np.testing.assert_allclose(sym.eval(**inputs)[0].asnumpy(), expected, rtol=1e-12)

    args = {k: mx.nd.array(v, dtype=np.float64) for k, v in inputs.items()}
    grads = {k: mx.nd.zeros(v.shape, dtype=np.float64) for k, v in inputs.items()}
    exe = sym.bind(mx.cpu(), args, args_grad=grads)
    out = exe.forward(is_train=True)
    exe.backward()
    np.testing.assert_allclose(out[0].asnumpy(), expected, rtol=1e-12)
    for name, grad in expected_grads.items():
        np.testing.assert_allclose(exe.grad_dict[name].asnumpy(), grad, rtol=1e-10)
        assert exe.grad_dict[name] is grads[name]  # written into the bound arrays
    assert exe.grad_arrays[0] is grads["data"] and exe.arg_arrays[1] is args["w1"]

    f = mx.compile(sym, wrt=["w1", "b2"])
    value, got = f(**inputs)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert set(got) == {"w1", "b2"} and isinstance(got["w1"], np.ndarray)
    np.testing.assert_allclose(got["w1"], expected_grads["w1"], rtol=1e-10)
    value_nd, got_nd = f(**{k: mx.nd.array(v, dtype=np.float64) for k, v in inputs.items()})
    assert isinstance(value_nd, mx.nd.NDArray) and isinstance(got_nd["b2"], mx.nd.NDArray)
    np.testing.assert_allclose(got_nd["b2"].asnumpy(), expected_grads["b2"], rtol=1e-10)


def test_gradient_symbol_matches_autograd():
    inputs = values()
    _, expected_grads = recorded(inputs)
    shapes = {k: v.shape for k, v in inputs.items()}
    grad = symbol().gradient(["w2", "data"], **shapes)
    assert len(grad) == 2
    got = grad.eval(**inputs)
    np.testing.assert_allclose(got[0].asnumpy(), expected_grads["w2"], rtol=1e-10)
    np.testing.assert_allclose(got[1].asnumpy(), expected_grads["data"], rtol=1e-10)
    with pytest.raises(MXNetShapeError, match="cannot infer"):
        symbol().gradient(["w2"])


def test_simple_bind_infers_parameters_and_honours_grad_req():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=3, name="fc")
    exe = net.simple_bind(mx.cpu(), grad_req={"fc_weight": "add", "fc_bias": "write"}, data=(2, 4))
    assert exe.arg_dict["fc_weight"].shape == (3, 4)
    assert set(exe.grad_dict) == {"fc_weight", "fc_bias"} and exe.grad_arrays[0] is None
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    exe.arg_dict["fc_weight"][:] = mx.nd.array(RNG.normal(size=(3, 4)))
    for _ in range(2):
        exe.forward(is_train=True, data=x)
        exe.backward(mx.nd.ones((2, 3)))
    np.testing.assert_allclose(
        exe.grad_dict["fc_weight"].asnumpy(), 2 * np.ones((3, 2)) @ x, rtol=1e-5
    )  # added twice
    np.testing.assert_allclose(exe.grad_dict["fc_bias"].asnumpy(), [2, 2, 2])  # written
    assert exe.output_dict["fc_output"] is exe.outputs[0]


def test_batchnorm_aux_states_update_in_training_only():
    net = mx.sym.BatchNorm(mx.sym.var("data"), fix_gamma=False, momentum=0.5, name="bn")
    exe = net.simple_bind(mx.cpu(), data=(6, 2))
    x = RNG.normal(2.0, 3.0, size=(6, 2)).astype(np.float32)
    exe.arg_dict["bn_gamma"][:] = 1
    exe.aux_dict["bn_moving_var"][:] = 1
    exe.forward(is_train=False, data=x)
    np.testing.assert_allclose(exe.aux_dict["bn_moving_mean"].asnumpy(), [0, 0])
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), x / np.sqrt(1 + 1e-3), rtol=1e-5)
    exe.forward(is_train=True)
    np.testing.assert_allclose(exe.aux_dict["bn_moving_mean"].asnumpy(), 0.5 * x.mean(0), rtol=1e-5)
    out = exe.outputs[0].asnumpy()
    np.testing.assert_allclose(out.mean(0), [0, 0], atol=1e-5)
    exe.backward()
    assert exe.grad_dict["bn_gamma"].shape == (2,)


def test_dropout_follows_is_train_and_backward_reuses_the_mask():
    x = mx.sym.var("x")
    exe = mx.sym.Dropout(x, p=0.5).simple_bind(mx.cpu(), x=(200,))
    exe.arg_dict["x"][:] = 1
    assert (exe.forward(is_train=False)[0].asnumpy() == 1).all()
    out = exe.forward(is_train=True)[0].asnumpy()
    assert set(np.unique(out)) <= {0.0, 2.0} and 0 < (out == 0).sum() < 200
    exe.backward()
    np.testing.assert_array_equal(exe.grad_dict["x"].asnumpy(), out)


def test_missing_inputs_are_named():
    sym = mx.sym.var("a") * mx.sym.var("b")
    with pytest.raises(MXNetError, match="no value given for input 'b'"):
        sym.eval(a=mx.nd.ones((2,)))
    with pytest.raises(MXNetError, match=r"no array given for \['b'\]"):
        sym.bind(mx.cpu(), {"a": mx.nd.ones((2,))})
    with pytest.raises(MXNetError, match="no input named"):
        sym.eval(a=mx.nd.ones((2,)), b=mx.nd.ones((2,)), c=mx.nd.ones((2,)))
    broadcast = mx.sym.broadcast_mul(mx.sym.var("a"), mx.sym.var("b"))
    with pytest.raises(MXNetShapeError, match=r"cannot infer the shapes of \['b'\]"):
        broadcast.simple_bind(mx.cpu(), a=(2,))
    # a * b of two symbols is elemwise_mul (MXNet 1.9.1): b takes a's shape
    assert sym.simple_bind(mx.cpu(), a=(2,)).arg_dict["b"].shape == (2,)
    exe = sym.simple_bind(mx.cpu(), a=(2,), b=(2,))
    with pytest.raises(MXNetError, match="call forward first"):
        exe.backward()
    with pytest.raises(MXNetError, match="no argument named 'c'"):
        exe.forward(c=np.ones(2))


def test_all_execution_goes_through_run_program(monkeypatch):
    calls = []
    original = executor._run_program

    def spy(graph, args, out=None):
        calls.append(graph)
        return original(graph, args, out)

    monkeypatch.setattr(executor, "_run_program", spy)
    sym = mx.sym.exp(mx.sym.var("x"))
    sym.eval(x=np.ones(2))
    exe = sym.simple_bind(mx.cpu(), x=(2,))
    exe.forward(is_train=True)
    exe.backward()
    mx.compile(sym)(x=np.ones(2))
    assert len(calls) == 4


def test_compile_reuses_its_graph_per_signature_and_takes_head_grads():
    f = mx.compile(mx.sym.var("x") * mx.sym.var("y"), wrt=["x"])
    f(x=np.ones(3), y=np.full(3, 2.0))
    f(x=np.zeros(3), y=np.ones(3))
    assert len(f._graphs) == 1
    _, grads = f(x=np.ones(3), y=np.full(3, 2.0), head_grads=np.array([1.0, 0.0, 3.0]))
    np.testing.assert_allclose(grads["x"], [2.0, 0.0, 6.0])
    f(x=np.ones(4), y=np.ones(4))
    assert len(f._graphs) == 3
    with pytest.raises(MXNetError, match="no argument named"):
        mx.compile(mx.sym.var("x"), wrt=["z"])
