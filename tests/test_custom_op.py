"""mx.operator: CustomOp/CustomOpProp through mx.nd.Custom (inside autograd.record)
and mx.sym.Custom (bind, simple_bind, mx.compile), against numpy and float64
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import op_testing as tu


class _Scale(mx.operator.CustomOp):
    """y = x * w + scale * x^2 (w a second argument), gradients by hand."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def forward(self, is_train, req, in_data, out_data, aux):
        x, w = in_data
        self.assign(out_data[0], req[0], x * w + self.scale * x * x)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        x, w = in_data
        g = out_grad[0]
        self.assign(in_grad[0], req[0], g * (w + 2 * self.scale * x))
        self.assign(in_grad[1], req[1], g * x)


@mx.operator.register("test_scale")
class _ScaleProp(mx.operator.CustomOpProp):
    def __init__(self, scale: str = "1.0") -> None:
        super().__init__(need_top_grad=True)
        self.scale = float(scale)

    def list_arguments(self):
        return ["data", "weight"]

    def infer_shape(self, in_shape):
        return [in_shape[0], in_shape[0]], [in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _Scale(self.scale)


class _SumRows(mx.operator.CustomOp):
    """Two outputs: the row sums and the input doubled."""

    def forward(self, is_train, req, in_data, out_data, aux):
        self.assign(out_data[0], req[0], in_data[0].sum(axis=1))
        self.assign(out_data[1], req[1], in_data[0] * 2)

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        rows = out_grad[0].reshape((-1, 1)).broadcast_like(in_data[0])
        self.assign(in_grad[0], req[0], rows + out_grad[1] * 2)


@mx.operator.register("test_sum_rows")
class _SumRowsProp(mx.operator.CustomOpProp):
    def list_outputs(self):
        return ["sums", "doubled"]

    def infer_shape(self, in_shape):
        return in_shape, [[in_shape[0][0]], in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return _SumRows()


def _numpy_scale(x, w, scale):
    return x * w + scale * x * x


def test_registry_lists_operators():
    # as MXNet: the backend ops, Custom among them, not the custom op types
    names = mx.operator.get_all_registered_operators()
    assert {"Custom", "FullyConnected", "_contrib_box_nms"} <= set(names)
    assert "test_scale" not in names
    args = mx.operator.get_operator_arguments("FullyConnected")
    assert args.names == ["data", "weight", "bias", "num_hidden", "no_bias", "flatten"]
    assert args.narg == 6 and args.types[:3] == ["NDArray-or-Symbol"] * 3
    assert args.types[3] == "int, required"
    with pytest.raises(mx.MXNetError, match="not a CustomOpProp"):
        mx.operator.register("bad")(int)
    prop = _ScaleProp()
    assert prop.infer_storage_type(["default"] * 2) == (["default"] * 2, ["default"], [])


def test_imperative_forward_matches_numpy():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    y = mx.nd.Custom(mx.nd.array(x), mx.nd.array(w), op_type="test_scale", scale=0.5)
    np.testing.assert_allclose(y.asnumpy(), _numpy_scale(x, w, 0.5), rtol=1e-5, atol=1e-6)


def test_imperative_gradient_finite_differences():
    rng = np.random.default_rng(1)
    values = [rng.normal(size=(2, 3)), rng.normal(size=(2, 3))]
    tu.check_numeric_gradient(
        lambda x, w: mx.nd.Custom(x, w, op_type="test_scale", scale=1.5), values
    )


def test_imperative_gradient_composes_with_other_ops():
    x = mx.nd.array([[1.0, 2.0]])
    w = mx.nd.array([[3.0, -1.0]])
    x.attach_grad()
    w.attach_grad()
    with mx.autograd.record():
        y = mx.nd.Custom(mx.nd.tanh(x), w, op_type="test_scale", scale=2.0)
        loss = (y * y).sum()
    loss.backward()
    t = np.tanh(x.asnumpy())
    y_np = _numpy_scale(t, w.asnumpy(), 2.0)
    np.testing.assert_allclose(w.grad.asnumpy(), 2 * y_np * t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        x.grad.asnumpy(), 2 * y_np * (w.asnumpy() + 4 * t) * (1 - t * t), rtol=1e-5, atol=1e-6
    )


def test_two_outputs_and_their_gradients():
    rng = np.random.default_rng(2)
    tu.check_numeric_gradient(
        lambda x: mx.nd.Custom(x, op_type="test_sum_rows"), [rng.normal(size=(3, 4))]
    )
    sums, doubled = mx.nd.Custom(mx.nd.ones((2, 3)), op_type="test_sum_rows")
    np.testing.assert_array_equal(sums.asnumpy(), [3, 3])
    np.testing.assert_array_equal(doubled.asnumpy(), np.full((2, 3), 2))


def _symbol():
    data = mx.sym.var("data")
    return mx.sym.Custom(data, op_type="test_scale", scale=0.5, name="sc")


def test_symbol_lists_and_infers_arguments():
    y = _symbol()
    assert y.list_arguments() == ["data", "sc_weight"]
    arg_shapes, out_shapes, _ = y.infer_shape(data=(2, 3))
    assert arg_shapes == [(2, 3), (2, 3)] and out_shapes == [(2, 3)]
    assert '"op_type": "test_scale"' in y.tojson()


def test_symbol_bind_forward_backward():
    rng = np.random.default_rng(3)
    x, w, g = (rng.normal(size=(2, 3)) for _ in range(3))
    y = _symbol()
    args = {"data": mx.nd.array(x), "sc_weight": mx.nd.array(w)}
    grads = {"data": mx.nd.zeros((2, 3)), "sc_weight": mx.nd.zeros((2, 3))}
    exe = y.bind(mx.cpu(), args, args_grad=grads)
    out = exe.forward(is_train=True)[0]
    np.testing.assert_allclose(out.asnumpy(), _numpy_scale(x, w, 0.5), rtol=1e-5, atol=1e-6)
    exe.backward(mx.nd.array(g))
    np.testing.assert_allclose(grads["data"].asnumpy(), g * (w + x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads["sc_weight"].asnumpy(), g * x, rtol=1e-5, atol=1e-6)


def test_symbol_simple_bind_and_compile():
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    y = mx.sym.sum(mx.sym.tanh(_symbol()))
    exe = y.simple_bind(mx.cpu(), data=(4, 2))
    exe.arg_dict["data"][:] = x
    exe.arg_dict["sc_weight"][:] = w
    exe.forward(is_train=True)
    exe.backward()
    inner = _numpy_scale(x, w, 0.5)
    expected = (1 - np.tanh(inner) ** 2) * (w + x)
    np.testing.assert_allclose(exe.grad_dict["data"].asnumpy(), expected, rtol=1e-4, atol=1e-6)
    value, grads = mx.compile(y, wrt=["data", "sc_weight"])(
        data=x.astype(np.float32), sc_weight=w.astype(np.float32)
    )
    np.testing.assert_allclose(np.asarray(value).ravel()[0], np.tanh(inner).sum(), rtol=1e-4)
    np.testing.assert_allclose(grads["data"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        grads["sc_weight"], (1 - np.tanh(inner) ** 2) * x, rtol=1e-4, atol=1e-6
    )


def test_assign_honours_req():
    op = mx.operator.CustomOp()
    dst = mx.nd.ones((2,))
    op.assign(dst, "add", mx.nd.array([1, 2]))
    np.testing.assert_array_equal(dst.asnumpy(), [2, 3])
    op.assign(dst, "null", mx.nd.array([9, 9]))
    np.testing.assert_array_equal(dst.asnumpy(), [2, 3])
    op.assign(dst, "write", mx.nd.array([5, 6]))
    np.testing.assert_array_equal(dst.asnumpy(), [5, 6])


def test_unknown_op_type_raises():
    with pytest.raises(mx.MXNetError, match="no operator registered"):
        mx.nd.Custom(mx.nd.ones((2,)), op_type="no_such_op")


def test_json_keeps_the_prop_arguments_and_loads_back():
    y = _symbol()
    text = y.tojson()
    assert '"scale": "0.5"' in text and "num_args" not in text
    loaded = mx.sym.load_json(text)
    assert loaded.list_arguments() == ["data", "sc_weight"]
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    got = loaded.eval(data=mx.nd.array(x), sc_weight=mx.nd.array(w))[0]
    np.testing.assert_allclose(got.asnumpy(), _numpy_scale(x, w, 0.5), rtol=1e-5, atol=1e-6)


class _SoftmaxLoss(mx.operator.CustomOp):
    """MXNet's classic custom softmax: backward ignores out_grad (need_top_grad
    False) and gives softmax - onehot(label); it also counts its forward calls in
    an auxiliary state."""

    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0]
        e = mx.nd.exp(x - x.max(axis=1, keepdims=True))
        self.assign(out_data[0], req[0], e / e.sum(axis=1, keepdims=True))
        aux[0][:] = aux[0] + 1

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        label = in_data[1].asnumpy().astype(int)
        grad = out_data[0].asnumpy().copy()
        grad[np.arange(len(label)), label] -= 1
        self.assign(in_grad[0], req[0], mx.nd.array(grad))
        self.assign(in_grad[1], req[1], mx.nd.zeros(in_data[1].shape))


@mx.operator.register("test_softmax_loss")
class _SoftmaxLossProp(mx.operator.CustomOpProp):
    def __init__(self):
        super().__init__(need_top_grad=False)

    def list_arguments(self):
        return ["data", "label"]

    def list_auxiliary_states(self):
        return ["calls"]

    def infer_shape(self, in_shape):
        return [in_shape[0], [in_shape[0][0]]], [in_shape[0]], [[1]]

    def create_operator(self, ctx, shapes, dtypes):
        return _SoftmaxLoss()


def test_loss_layer_without_top_grad_and_an_aux_state():
    prop = _SoftmaxLossProp()
    assert not prop.need_top_grad()
    rng = np.random.default_rng(6)
    x_np = rng.normal(size=(4, 3))
    label = mx.nd.array([0, 2, 1, 2])
    calls = mx.nd.zeros((1,))
    x = mx.nd.array(x_np)
    x.attach_grad()
    with mx.autograd.record():
        p = mx.nd.Custom(x, label, calls, op_type="test_softmax_loss")
    p.backward()
    e = np.exp(x_np - x_np.max(axis=1, keepdims=True))
    softmax = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p.asnumpy(), softmax, rtol=1e-5)
    expected = softmax.copy()
    expected[np.arange(4), [0, 2, 1, 2]] -= 1
    np.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=1e-5, atol=1e-6)
    assert calls.asscalar() == 1
    sym = mx.sym.Custom(
        mx.sym.var("data"), mx.sym.var("label"), op_type="test_softmax_loss", name="loss"
    )
    assert sym.list_inputs() == ["data", "label", "loss_calls"]


def test_compiled_backend_runs_custom_symbols(compiled):
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    f = mx.compile(mx.sym.sum(_symbol() * 3), wrt=["data", "sc_weight"])
    for _ in range(3):  # interpreted, then compiled
        _, grads = f(data=x, sc_weight=w)
        np.testing.assert_allclose(grads["data"], 3 * (w + x), rtol=1e-10)
        np.testing.assert_allclose(grads["sc_weight"], 3 * x, rtol=1e-10)
