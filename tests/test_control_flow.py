"""contrib.foreach / while_loop / cond: imperatively (Python loops, recorded op by
op) and in symbols (traced, unrolled), against numpy and float64 finite
differences, and inside hybridized HybridBlocks."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import op_testing as tu
from symgrad.gluon import nn


def _rnn_numpy(x, h0, w):
    h, outs = h0, []
    for step in x:
        h = np.tanh(step * w + h)
        outs.append(h * 2)
    return np.stack(outs), h


def test_foreach_imperative_values():
    rng = np.random.default_rng(0)
    x, h0, w = rng.normal(size=(4, 3)), rng.normal(size=(3,)), rng.normal(size=(3,))
    wa = mx.nd.array(w)
    out, h = mx.nd.contrib.foreach(
        lambda d, s: (mx.nd.tanh(d * wa + s) * 2, mx.nd.tanh(d * wa + s)),
        mx.nd.array(x),
        mx.nd.array(h0),
    )
    ref_out, ref_h = _rnn_numpy(x, h0, w)
    np.testing.assert_allclose(out.asnumpy(), ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.asnumpy(), ref_h, rtol=1e-5, atol=1e-6)


def test_foreach_imperative_gradient():
    rng = np.random.default_rng(1)

    def run(x, h0, w):
        out, h = mx.nd.contrib.foreach(
            lambda d, s: ([mx.nd.tanh(d * w + s[0]) * 2], [mx.nd.tanh(d * w + s[0])]), x, [h0]
        )
        return out[0] * h[0]

    tu.check_numeric_gradient(
        run, [rng.normal(size=(3, 2)), rng.normal(size=(2,)), rng.normal(size=(2,))]
    )


def test_foreach_lists_keep_their_structure():
    data = [mx.nd.ones((2, 3)), mx.nd.zeros((2, 1))]
    out, states = mx.nd.contrib.foreach(
        lambda d, s: ([d[0] + s[0], d[1]], [s[0] + 1]), data, [mx.nd.zeros((3,))]
    )
    assert isinstance(out, list) and [o.shape for o in out] == [(2, 3), (2, 1)]
    np.testing.assert_array_equal(out[0].asnumpy(), [[1, 1, 1], [2, 2, 2]])
    np.testing.assert_array_equal(states[0].asnumpy(), [2, 2, 2])


def test_while_loop_imperative_pads_to_max_iterations():
    # MXNet 1.9.1 gives outputs [[2], [2], [4], ...] and loop vars [3], [4]; its rows
    # after the last step are uninitialised memory, zeros here
    out, (i, s) = mx.nd.contrib.while_loop(
        lambda i, s: i < 3,
        lambda i, s: ([s * 2], [i + 1, s + i]),
        [mx.nd.array([0]), mx.nd.array([1])],
        max_iterations=5,
    )
    np.testing.assert_array_equal(out[0].asnumpy(), [[2], [2], [4], [0], [0]])
    assert i.asscalar() == 3 and s.asscalar() == 4


def test_while_loop_imperative_gradient():
    rng = np.random.default_rng(2)

    def run(x):
        out, (_, y) = mx.nd.contrib.while_loop(
            lambda i, y: i < 3,
            lambda i, y: ([y * y], [i + 1, mx.nd.sin(y) + y]),
            [mx.nd.array([0.0], dtype=x.dtype), x],
            max_iterations=4,
        )
        return out[0].sum() + y

    tu.check_numeric_gradient(run, [rng.normal(size=(1,))])


def test_cond_imperative_takes_one_branch():
    x = mx.nd.array([2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.contrib.cond(x > 1, lambda: x * x * 3, lambda: x + 100)
    y.backward()
    assert y.asscalar() == 12 and x.grad.asscalar() == 12
    assert mx.nd.contrib.cond(mx.nd.array([0]), lambda: x, lambda: x - 5).asscalar() == -3


# ---------------------------------------------------------------------------
# symbols
# ---------------------------------------------------------------------------


def test_symbol_foreach_values_and_gradients():
    rng = np.random.default_rng(3)
    x, h0, w = rng.normal(size=(4, 3)), rng.normal(size=(3,)), rng.normal(size=(3,))
    xs, hs, ws = mx.sym.var("x", shape=(4, 3)), mx.sym.var("h0"), mx.sym.var("w")
    out, h = mx.sym.contrib.foreach(
        lambda d, s: (mx.sym.tanh(d * ws + s) * 2, mx.sym.tanh(d * ws + s)), xs, hs
    )
    ref_out, ref_h = _rnn_numpy(x, h0, w)
    values = out.eval(x=mx.nd.array(x), h0=mx.nd.array(h0), w=mx.nd.array(w))
    np.testing.assert_allclose(values[0].asnumpy(), ref_out, rtol=1e-5, atol=1e-6)
    loss = mx.sym.sum(out) + mx.sym.sum(h * h)
    f = mx.compile(loss, wrt=["x", "h0", "w"])
    value, grads = f(x=x, h0=h0, w=w)
    np.testing.assert_allclose(value, (ref_out.sum() + (ref_h**2).sum()), rtol=1e-10)

    def numpy_loss(x, h0, w):
        o, hh = _rnn_numpy(x, h0, w)
        return o.sum() + (hh**2).sum()

    for name, point in (("x", x), ("h0", h0), ("w", w)):
        direction = rng.normal(size=point.shape)
        eps = 1e-6
        args = {"x": x, "h0": h0, "w": w}
        plus = numpy_loss(**dict(args, **{name: point + eps * direction}))
        minus = numpy_loss(**dict(args, **{name: point - eps * direction}))
        np.testing.assert_allclose(
            (grads[name] * direction).sum(), (plus - minus) / (2 * eps), rtol=1e-6
        )


def _rnn_symbol(x, h0, w):
    return mx.sym.contrib.foreach(
        lambda d, s: (mx.sym.tanh(d * w + s) * 2, mx.sym.tanh(d * w + s)), x, h0
    )


def test_symbol_foreach_of_unknown_length_is_one_subgraph_node():
    x, h0, w = mx.sym.var("x"), mx.sym.var("h0"), mx.sym.var("w")
    out, h = _rnn_symbol(x, h0, w)
    assert [n.op.name for n in out._nodes() if not n.is_variable] == ["_foreach"]
    assert out.list_arguments() == ["x", "h0", "w"]
    assert out.infer_shape(x=(5, 3), h0=(3,), w=(3,))[1] == [(5, 3)]
    rng = np.random.default_rng(5)
    x_v, h_v, w_v = rng.normal(size=(5, 3)), rng.normal(size=(3,)), rng.normal(size=(3,))
    loss = mx.sym.sum(out * out) + mx.sym.sum(mx.sym.sin(h))
    value, grads = mx.compile(loss, wrt=["x", "h0", "w"])(x=x_v, h0=h_v, w=w_v)
    unrolled_out, unrolled_h = _rnn_symbol(mx.sym.var("x", shape=(5, 3)), h0, w)
    unrolled = mx.sym.sum(unrolled_out * unrolled_out) + mx.sym.sum(mx.sym.sin(unrolled_h))
    ref_value, ref_grads = mx.compile(unrolled, wrt=["x", "h0", "w"])(x=x_v, h0=h_v, w=w_v)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for name in ("x", "h0", "w"):
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12)


def test_symbol_foreach_subgraph_against_finite_differences():
    x, h0, w = mx.sym.var("x"), mx.sym.var("h0"), mx.sym.var("w")
    out, h = _rnn_symbol(x, h0, w)
    loss = mx.sym.sum(out * mx.sym.var("c")) + mx.sym.sum(h)
    rng = np.random.default_rng(6)
    args = {
        "x": rng.normal(size=(3, 2)),
        "h0": rng.normal(size=(2,)),
        "w": rng.normal(size=(2,)),
        "c": rng.normal(size=(3, 2)),
    }
    _, grads = mx.compile(loss, wrt=["x", "h0", "w"])(**args)
    f = mx.compile(loss, wrt=[])
    for name in ("x", "h0", "w"):
        direction = rng.normal(size=args[name].shape)
        eps = 1e-6
        plus = f(**dict(args, **{name: args[name] + eps * direction}))[0]
        minus = f(**dict(args, **{name: args[name] - eps * direction}))[0]
        np.testing.assert_allclose(
            (grads[name] * direction).sum(), ((plus - minus) / (2 * eps)).item(), rtol=1e-6
        )


def _loop(F, i, s, limit):
    return F.contrib.while_loop(
        lambda i, s: i < limit, lambda i, s: ([s * 2], [i + 1, s + i]), [i, s], max_iterations=5
    )


@pytest.mark.parametrize("limit", [0, 3, 5, 9])
def test_symbol_while_loop_matches_imperative(limit):
    i, s = mx.sym.var("i"), mx.sym.var("s")
    out, (i_end, s_end) = _loop(mx.sym, i, s, limit)
    got = mx.sym.Group([out[0], i_end, s_end]).eval(i=mx.nd.array([0]), s=mx.nd.array([1]))
    ref_out, (ref_i, ref_s) = _loop(mx.nd, mx.nd.array([0]), mx.nd.array([1]), limit)
    if ref_out:
        np.testing.assert_array_equal(got[0].asnumpy(), ref_out[0].asnumpy())
    else:
        np.testing.assert_array_equal(got[0].asnumpy(), np.zeros((5, 1)))
    assert got[1].asscalar() == ref_i.asscalar() and got[2].asscalar() == ref_s.asscalar()


def test_symbol_while_loop_gradient():
    x = mx.sym.var("x")
    out, (_, y) = mx.sym.contrib.while_loop(
        lambda i, y: i < 3,
        lambda i, y: ([y * y], [i + 1, mx.sym.sin(y) + y]),
        [mx.sym.zeros_like(x), x],
        max_iterations=4,
    )
    loss = mx.sym.sum(out[0]) + mx.sym.sum(y)
    f = mx.compile(loss, wrt=["x"])

    def numpy_loss(v):
        total = 0.0
        for _ in range(3):
            total += v * v
            v = np.sin(v) + v
        return total + v

    point = np.array([0.3])
    value, grads = f(x=point)
    np.testing.assert_allclose(value, numpy_loss(point), rtol=1e-12)
    eps = 1e-6
    numeric = (numpy_loss(point + eps) - numpy_loss(point - eps)) / (2 * eps)
    np.testing.assert_allclose(grads["x"], numeric, rtol=1e-6)


def test_symbol_cond_both_ways_with_gradient():
    p, x = mx.sym.var("p"), mx.sym.var("x")
    y = mx.sym.contrib.cond(p, lambda: x * x * 3, lambda: x + 100)
    f = mx.compile(mx.sym.sum(y), wrt=["x"])
    value, grads = f(p=np.array([1.0]), x=np.array([2.0, -1.0]))
    np.testing.assert_allclose(value, 15.0)
    np.testing.assert_allclose(grads["x"], [12.0, -6.0])
    value, grads = f(p=np.array([0.0]), x=np.array([2.0, -1.0]))
    np.testing.assert_allclose(value, 201.0)
    np.testing.assert_allclose(grads["x"], [1.0, 1.0])


# ---------------------------------------------------------------------------
# hybridized blocks
# ---------------------------------------------------------------------------


class _Gate(nn.HybridBlock):
    """Dense, then a while loop that doubles while the sum is below a bound, then
    a cond on the sign of the first element."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = nn.Dense(3, in_units=2)

    def hybrid_forward(self, F, x):
        h = self.dense(x)
        _, (_, h) = F.contrib.while_loop(
            lambda i, v: F.sum(F.abs(v)) < 20,
            lambda i, v: ([v], [i + 1, v * 2]),
            [F.zeros((1,)), h],
            max_iterations=6,
        )
        first = F.slice_axis(F.reshape(h, shape=(-1,)), axis=0, begin=0, end=1)
        return F.contrib.cond(first > 0, lambda: F.tanh(h), lambda: h * 0.5)


@pytest.mark.parametrize("shift", [5.0, -5.0])
def test_hybridized_block_matches_imperative(shift):
    net = _Gate()
    net.initialize(mx.init.Xavier())
    net.dense.bias.set_data(mx.nd.array([shift, 1.0, -1.0]))
    x = mx.nd.array([[0.3, -0.2]])
    with mx.autograd.record():
        eager = net(x)
    eager.backward()
    eager_grad = net.dense.weight.grad().asnumpy().copy()
    net.hybridize()
    with mx.autograd.record():
        hybrid = net(x)
    hybrid.backward()
    np.testing.assert_allclose(hybrid.asnumpy(), eager.asnumpy(), rtol=1e-5)
    np.testing.assert_allclose(net.dense.weight.grad().asnumpy(), eager_grad, rtol=1e-5)
    again = net(x)  # the compiled replay, not recording
    np.testing.assert_allclose(again.asnumpy(), eager.asnumpy(), rtol=1e-5)


class _Recurrent(nn.HybridBlock):
    """h_t = tanh(W x_t + h_{t-1}) over axis 0 of x, by contrib.foreach; the
    weight is a free variable of the loop body."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(3, 2))

    def hybrid_forward(self, F, x, h0, weight):
        def step(x_t, states):
            h = F.tanh(F.dot(x_t, weight, transpose_b=True) + states[0])
            return h, [h]

        out, states = F.contrib.foreach(step, x, [h0])
        return out.sum() + (states[0] * states[0]).sum()


def test_hybridized_foreach_block_matches_imperative():
    net = _Recurrent()
    net.initialize(mx.init.Uniform(0.5))
    rng = np.random.default_rng(7)
    x, h0 = mx.nd.array(rng.normal(size=(4, 5, 2))), mx.nd.array(rng.normal(size=(5, 3)))
    with mx.autograd.record():
        eager = net(x, h0)
    eager.backward()
    eager_grad = net.weight.grad().asnumpy().copy()
    net.hybridize()
    with mx.autograd.record():
        hybrid = net(x, h0)
    hybrid.backward()
    np.testing.assert_allclose(hybrid.asnumpy(), eager.asnumpy(), rtol=1e-5)
    np.testing.assert_allclose(net.weight.grad().asnumpy(), eager_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net(x, h0).asnumpy(), eager.asnumpy(), rtol=1e-5)
    longer = mx.nd.array(rng.normal(size=(6, 5, 2)))  # another length: the same symbol
    with mx.autograd.pause():
        net.hybridize(False)
        reference = net(longer, h0)
        net.hybridize()
    np.testing.assert_allclose(net(longer, h0).asnumpy(), reference.asnumpy(), rtol=1e-5)


def test_compiled_backend_runs_unrolled_loops(compiled):
    x = mx.sym.var("x", shape=(3, 2))
    out, h = mx.sym.contrib.foreach(lambda d, s: (d * s, s + d), x, mx.sym.var("s"))
    f = mx.compile(mx.sym.sum(out) + mx.sym.sum(h), wrt=["x", "s"])
    xv = np.arange(6.0).reshape(3, 2)
    sv = np.array([1.0, -1.0])
    _, grads = f(x=xv, s=sv)
    # out_t = x_t * s_t with s_t = s + x_0 + ... + x_{t-1}; d/ds sum = sum_t x_t + 1
    np.testing.assert_allclose(grads["s"], xv.sum(axis=0) + 1)
    # the subgraph form (unknown length) on the compiled backend too
    out, h = mx.sym.contrib.foreach(lambda d, s: (d * s, s + d), mx.sym.var("x"), mx.sym.var("s"))
    _, grads = mx.compile(mx.sym.sum(out) + mx.sym.sum(h), wrt=["x", "s"])(x=xv, s=sv)
    np.testing.assert_allclose(grads["s"], xv.sum(axis=0) + 1)


def test_symbol_cond_runs_only_the_branch_taken():
    x = mx.sym.var("x")
    y = mx.sym.contrib.cond(mx.sym.var("p"), lambda: 1 / mx.sym.sqrt(x), lambda: x * 2)
    assert [n.op.name for n in y._nodes() if not n.is_variable] == ["_cond"]
    got = y.eval(p=mx.nd.array([0]), x=mx.nd.array([-4.0, 0.0]))[0]
    np.testing.assert_array_equal(got.asnumpy(), [-8.0, 0.0])
    # the branch not taken would give NaN and inf, and their gradients NaN
    _, grads = mx.compile(mx.sym.sum(y), wrt=["x"])(p=np.array([0.0]), x=np.array([-4.0, 0.0]))
    np.testing.assert_array_equal(grads["x"], [2.0, 2.0])


def test_symbol_while_loop_is_one_node_whatever_max_iterations():
    i, s, w = mx.sym.var("i"), mx.sym.var("s"), mx.sym.var("w")
    out, (_, s_end) = mx.sym.contrib.while_loop(
        lambda i, s: i < 150,
        lambda i, s: (s * w, [i + 1, s * 0.99 + w]),
        [i, s],
        max_iterations=1000,
    )
    assert [n.op.name for n in out._nodes() if not n.is_variable] == ["_while_loop"]
    loss = mx.sym.sum(out) + mx.sym.sum(s_end)
    f = mx.compile(loss, wrt=["s", "w"])
    value, grads = f(i=np.array([0.0]), s=np.array([1.0]), w=np.array([0.01]))

    def numpy_loss(s, w):
        total = 0.0
        for _ in range(150):
            total += s * w
            s = s * 0.99 + w
        return total + s

    np.testing.assert_allclose(value, numpy_loss(1.0, 0.01), rtol=1e-12)
    eps = 1e-6
    np.testing.assert_allclose(
        grads["s"], (numpy_loss(1 + eps, 0.01) - numpy_loss(1 - eps, 0.01)) / (2 * eps), rtol=1e-7
    )
    np.testing.assert_allclose(
        grads["w"],
        (numpy_loss(1.0, 0.01 + eps) - numpy_loss(1.0, 0.01 - eps)) / (2 * eps),
        rtol=1e-6,
    )
    assert out.infer_shape(i=(1,), s=(1,), w=(1,))[1] == [(1000, 1)]
