"""Regression tests for issue 20's silent wrong answers, items 3, 4, 5 and 9.

Item 1 (program reuse across sizes) is in tests/test_size_reuse_property.py and
item 2 (NaN, inf and signed zero in kernels) in tests/test_special_values.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, nd
from symgrad.base import MXNetError

# ---------------------------------------------------------------------------
# item 3: shape ops give new arrays, never views of their input
# ---------------------------------------------------------------------------

SHAPE_OPS = {
    "T": lambda x: x.T,
    "transpose": lambda x: nd.transpose(x),
    "transpose_axes": lambda x: nd.transpose(x, axes=(1, 0)),
    "reshape_method": lambda x: x.reshape((6,)),
    "reshape": lambda x: nd.reshape(x, shape=(3, 2)),
    "Flatten": lambda x: nd.Flatten(x),
    "flatten_method": lambda x: x.flatten(),
    "expand_dims": lambda x: nd.expand_dims(x, axis=0),
    "squeeze": lambda x: nd.squeeze(nd.expand_dims(x, axis=0)),
    "SwapAxis": lambda x: nd.SwapAxis(x, dim1=0, dim2=1),
    "swapaxes": lambda x: nd.swapaxes(x, dim1=0, dim2=1),
    "split": lambda x: nd.split(x, num_outputs=2, axis=0)[1],
    "split_squeeze": lambda x: nd.split(x, num_outputs=2, axis=0, squeeze_axis=True)[0],
    "split_one": lambda x: nd.split(x, num_outputs=1, axis=0),
    "slice": lambda x: x[0:1],
    "slice_axis": lambda x: nd.slice_axis(x, axis=1, begin=0, end=2),
    "identity": lambda x: nd.identity(x),
    "copy": lambda x: x.copy(),
    "astype_same": lambda x: x.astype("float32"),
    "broadcast_to": lambda x: nd.broadcast_to(x, shape=(2, 3)),
    "reshape_like": lambda x: nd.reshape_like(x, nd.zeros((3, 2))),
}

# the methods whose results share memory with their input in MXNet 1.9.1 too
SHARED_IN_MXNET = {"reshape_method", "slice"}


def _existing(names):
    return [
        n
        for n in names
        if n
        in (
            "T",
            "reshape_method",
            "flatten_method",
            "slice",
            "copy",
            "astype_same",
            "split_one",
            "split_squeeze",
            "transpose_axes",
        )
        or hasattr(nd, n)
    ]


@pytest.mark.parametrize("recording", [False, True], ids=["eager", "recorded"])
@pytest.mark.parametrize("name", _existing(SHAPE_OPS))
def test_writing_into_a_shape_op_result_leaves_the_input(name, recording):
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = nd.array(source)
    if recording:
        x.attach_grad()
        with autograd.record():
            y = SHAPE_OPS[name](x)
    else:
        y = SHAPE_OPS[name](x)
        if name in SHARED_IN_MXNET:
            # MXNet 1.9.1's reshape method and contiguous slices are views (checked
            # against MXNet in test_ndarray_views.py): writes go through, as there
            y[:] = 100
            assert (x.asnumpy() == 100).any()
            return
    before = y.asnumpy()
    y[:] = 100
    np.testing.assert_array_equal(x.asnumpy(), source)
    # and the other way: writing the input leaves the result
    x[:] = -1
    np.testing.assert_array_equal(y.asnumpy(), np.full(before.shape, 100, np.float32))


def test_parameter_with_gradient_is_not_rewritten_through_a_view():
    w = nd.array(np.ones((2, 3), dtype=np.float32))
    w.attach_grad()
    with autograd.record():
        loss = (w * w).sum()
    t = w.T
    t[:] = 5
    loss.backward()
    np.testing.assert_array_equal(w.asnumpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(w.grad.asnumpy(), np.full((2, 3), 2.0))


# ---------------------------------------------------------------------------
# item 4: second derivatives of ops whose first derivative is piecewise constant
# ---------------------------------------------------------------------------

PIECEWISE = {
    "relu": nd.relu,
    "abs": nd.abs,
    "sign": nd.sign,
    "floor": nd.floor,
    "greater": lambda x: x > 0,
    "equal": lambda x: x == 2,
    "broadcast_lesser_equal": lambda x: nd.broadcast_lesser_equal(x, nd.zeros_like(x)),
}


@pytest.mark.parametrize("inside", [True, False], ids=["grad_in_record", "grad_after"])
@pytest.mark.parametrize("name", sorted(PIECEWISE))
def test_second_derivative_is_zero_and_recorded(name, inside):
    x = nd.array([-1.0, 2.0, 3.0])
    x.attach_grad()
    x.grad[:] = 7  # backward must write the zeros, not leave this
    with autograd.record():
        y = PIECEWISE[name](x)
        if inside:
            (d1,) = autograd.grad(y, [x], create_graph=True)
    if not inside:
        (d1,) = autograd.grad(y, [x], create_graph=True)
    assert d1._entry is not None, "a create_graph gradient must have history"
    d1.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), np.zeros(3, np.float32))


def test_first_derivative_values_are_unchanged():
    x = nd.array([-1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        (d1,) = autograd.grad(nd.relu(x), [x], create_graph=True)
        (d2,) = autograd.grad(x > 0, [x], create_graph=True)
    np.testing.assert_array_equal(d1.asnumpy(), [0.0, 1.0])
    np.testing.assert_array_equal(d2.asnumpy(), [0.0, 0.0])


# ---------------------------------------------------------------------------
# item 5: split with one output
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
@pytest.mark.parametrize("squeeze", [False, True])
def test_split_one_output_backward(backend, squeeze, request):
    request.getfixturevalue(backend)
    x = nd.array(np.arange(1, 4, dtype=np.float32).reshape(1, 3))
    x.attach_grad()
    with autograd.record():
        part = nd.split(x, num_outputs=1, axis=0, squeeze_axis=squeeze)
        loss = (part * part).sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), 2 * x.asnumpy())


def test_split_one_output_symbol_gradient():
    data = mx.sym.var("data")
    f = mx.compile(mx.sym.sum(mx.sym.split(data, num_outputs=1, axis=1) * 3), wrt=["data"])
    _, grads = f(data=np.ones((2, 2)))
    np.testing.assert_array_equal(np.asarray(grads["data"]), np.full((2, 2), 3.0))


# ---------------------------------------------------------------------------
# item 9: unknown keywords, wrong attr types, hostile attrs
# ---------------------------------------------------------------------------

X = np.ones((2, 3), dtype=np.float32)

MISSPELLED = [
    ("sum", lambda F, x: F.sum(x, dim=0), "dim"),
    ("sum", lambda F, x: F.sum(x, axis=0, keepdim=True), "keepdim"),
    ("Concat", lambda F, x: F.concat(x, x, axis=0), "axis"),
    ("Dropout", lambda F, x: F.Dropout(x, prob=0.9), "prob"),
    (
        "Pooling",
        lambda F, x: F.Pooling(F.reshape(x, shape=(1, 1, 2, 3)), kernel=(1, 1), pool_typ="avg"),
        "pool_typ",
    ),
    ("softmax", lambda F, x: F.softmax(x, axes=1), "axes"),
]


@pytest.mark.parametrize(
    "op, call, argument", MISSPELLED, ids=[f"{m[0]}-{m[2]}" for m in MISSPELLED]
)
@pytest.mark.parametrize("frontend", ["nd", "sym"])
def test_unknown_keyword_raises_naming_it(op, call, argument, frontend):
    if frontend == "nd":
        namespace, x = nd, nd.array(X)
    else:
        namespace, x = mx.sym, mx.sym.var("x")
    with pytest.raises(MXNetError) as info:
        result = call(namespace, x)
        if frontend == "sym":
            result.eval(x=nd.array(X))
    message = str(info.value)
    assert argument in message and op.lower() in message.lower()
    assert "valid" in message


def test_unknown_keyword_lists_the_valid_ones():
    with pytest.raises(MXNetError, match=r"\['axis', 'exclude', 'keepdims'\]"):
        nd.sum(nd.array(X), dim=0)


def test_creation_functions_refuse_unknown_keywords():
    with pytest.raises(MXNetError, match="dtyp"):
        nd.ones((2,), dtyp="int32")
    with pytest.raises(MXNetError, match="dtyp"):
        nd.zeros((2,), dtyp="int32")
    assert nd.ones((2,), dtype="int32").dtype == np.int32


def test_known_keywords_still_work():
    x = nd.array(X)
    assert nd.sum(x, axis=0, keepdims=True).shape == (1, 3)
    assert nd.concat(x, x, dim=0).shape == (4, 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: nd.reshape(nd.array(X), shape=(3, 2.5)),
        lambda: nd.zeros((2, 1.5)),
        lambda: nd.sum(nd.array(X), axis=0.5),
        lambda: mx.sym.reshape(mx.sym.var("x"), shape=(3, 2.5)),
    ],
)
def test_fractional_integer_attrs_are_refused(call):
    with pytest.raises(MXNetError):
        call()


def test_integral_values_are_accepted():
    assert nd.reshape(nd.array(X), shape=(3, 2)).shape == (3, 2)
    assert nd.reshape(nd.array(X), shape="(3, 2)").shape == (3, 2)


@pytest.mark.parametrize(
    "call",
    [
        lambda: nd.reshape(nd.array(X), shape=(1,) * 101),
        lambda: nd.zeros((10**5, 10**5, 10**5)),
        lambda: nd.softmax(nd.zeros((2, 0))),
        lambda: nd.max(nd.zeros((2, 0)), axis=1),
        lambda: nd.min(nd.zeros((0, 3)), axis=0),
    ],
)
def test_hostile_attrs_raise_mxnet_error(call):
    with pytest.raises(MXNetError):
        call()


def test_mxnet_attrs_that_only_tune_gpu_libraries_are_accepted():
    x = nd.array(X)
    np.testing.assert_array_equal(nd.Dropout(x, p=0.5, cudnn_off=True).asnumpy(), X)
    y = nd.Convolution(
        nd.ones((1, 1, 3, 3)),
        nd.ones((1, 1, 2, 2)),
        kernel=(2, 2),
        num_filter=1,
        no_bias=True,
        workspace=512,
        cudnn_tune="off",
    )
    np.testing.assert_array_equal(y.asnumpy(), np.full((1, 1, 2, 2), 4.0))


@pytest.mark.parametrize(
    "build",
    [
        lambda x: mx.sym.transpose(x),
        lambda x: mx.sym.reshape(x, shape=(3, 2)),
        lambda x: mx.sym.expand_dims(x, axis=0),
        lambda x: mx.sym.Flatten(x),
    ],
)
def test_symbol_eval_gives_new_arrays(build):
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = nd.array(source)
    (out,) = build(mx.sym.var("x")).eval(x=x)
    out[:] = 7
    np.testing.assert_array_equal(x.asnumpy(), source)


# ---------------------------------------------------------------------------
# item 10: smaller differences from MXNet 1.9.1
# ---------------------------------------------------------------------------


def test_ones_and_zeros_write_into_out():
    out = mx.nd.array([5.0, 5.0])
    assert mx.nd.ones((2,), out=out) is out and out.asnumpy().tolist() == [1.0, 1.0]
    assert mx.nd.zeros((2,), out=out) is out and out.asnumpy().tolist() == [0.0, 0.0]


def test_take_with_a_negative_axis_has_a_gradient():
    a0 = np.random.default_rng(0).normal(size=(3, 4))
    a = mx.nd.array(a0, dtype="float64")
    a.attach_grad()
    with mx.autograd.record():
        loss = (mx.nd.take(a, mx.nd.array([0, 2, 2]), axis=-1) ** 2).sum()
    loss.backward()
    expected = np.zeros_like(a0)
    for i in (0, 2, 2):
        expected[:, i] += 2 * a0[:, i]
    np.testing.assert_allclose(a.grad.asnumpy(), expected, rtol=1e-12)


def test_children_of_a_split_list_its_input_once():
    parts = mx.sym.split(mx.sym.var("data"), num_outputs=3)
    assert parts.get_children().list_outputs() == ["data"]
    a, b = mx.sym.var("a"), mx.sym.var("b")
    assert mx.sym.Group([a * b, a + b]).get_children().list_outputs() == ["a", "b", "a", "b"]


@pytest.mark.parametrize("transpose_a, transpose_b", [(True, False), (False, True), (True, True)])
def test_dot_of_n_d_operands_with_transposes_has_a_gradient(transpose_a, transpose_b):
    """MXNet reverses every axis of a transposed N-d operand; the gradient, checked
    by float64 finite differences, differentiates again (second order too)."""
    rng = np.random.default_rng(1)
    shape_a = (4, 3, 2) if transpose_a else (2, 3, 4)
    shape_b = (5, 4) if transpose_b else (4, 5)
    a0, b0 = rng.normal(size=shape_a), rng.normal(size=shape_b)

    def f(a_val, b_val):
        at = a_val.transpose() if transpose_a else a_val
        bt = b_val.transpose() if transpose_b else b_val
        return (np.tensordot(at, bt, axes=1) ** 2).sum()

    a, b = mx.nd.array(a0, dtype="float64"), mx.nd.array(b0, dtype="float64")
    a.attach_grad()
    b.attach_grad()
    with mx.autograd.record():
        y = (mx.nd.dot(a, b, transpose_a=transpose_a, transpose_b=transpose_b) ** 2).sum()
    y.backward()
    eps = 1e-6
    for value, other, grad, first in ((a0, b0, a.grad, True), (b0, a0, b.grad, False)):
        numeric = np.zeros_like(value)
        for i in range(value.size):
            step = np.zeros_like(value)
            step.flat[i] = eps
            plus = f(value + step, other) if first else f(other, value + step)
            minus = f(value - step, other) if first else f(other, value - step)
            numeric.flat[i] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad.asnumpy(), numeric, rtol=1e-6, atol=1e-8)
    with mx.autograd.record():
        y = (mx.nd.dot(a, b, transpose_a=transpose_a, transpose_b=transpose_b) ** 2).sum()
        (ga,) = mx.autograd.grad(y, [a], create_graph=True)
        z = (ga * ga).sum()
    z.backward()  # second order runs through the same rule
    assert np.isfinite(b.grad.asnumpy()).all() and np.abs(b.grad.asnumpy()).sum() > 0


def test_arange_casts_start_and_step_to_its_dtype_first():
    """MXNet sizes arange in double precision, then computes start + i * step in the
    dtype: with int32, 1.3 and 1.3 become 1 and 1."""
    values = mx.nd.arange(1.3, 456.6, 1.3, dtype="int32").asnumpy()
    assert values.shape == (351,) and values.tolist() == list(range(1, 352))
    assert mx.nd.arange(5).asnumpy().tolist() == [0, 1, 2, 3, 4]
    assert mx.nd.arange(10, 0, -1.5).shape == (7,)
