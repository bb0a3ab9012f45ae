"""W8's loss gradient (softmax cross-entropy over a 10000-word vocabulary): the
one-hot that pick's gradient writes is neither summed again nor written.
``sum_of_pick_grad`` turns the row sums of ``_pick_grad(g, ...)`` into ``g + 0``;
the pass ``one_hots_in_loops`` turns a ``_pick_grad`` read by an elementwise op
into ``_one_hot_at`` of ``_pick_positions``, which fuses into the reading loop.
Shown on the graphs before and after, on the values (NaN, inf and signed zero
among g and the indices, both modes, any picked axis), on graphs they must leave
alone, on the differentiated loss of a language model's head compiled at several
sizes through one program, and by a float64 finite-difference gradient of the
compiled program."""

from __future__ import annotations

import numpy as np
import pytest
from test_simplify_rules import _check, _graph, _op, _ops, _untouched

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.autodiff import differentiate
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.passes import one_hots_in_loops, simplify
from symgrad_compiler.registry import variable


def _indices(count: int, size: int, seed: int) -> np.ndarray:
    """Column numbers in and out of range, NaN and inf among them (clip and wrap
    both take every float)."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-size, 2 * size, count).astype(np.float32)
    values[:4] = [np.nan, np.inf, -np.inf, -0.0][: min(4, count)]
    return values


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize("mode", ["clip", "wrap"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sums_of_pick_grad_become_g_plus_zero(mode, dtype):
    g, index, like = variable((6, 1), dtype, "g"), variable((6,), dtype), variable((6, 5), dtype)
    one_hot = _op("_pick_grad", g, index, like, axis=-1, mode=mode)
    graph = _graph([g, index, like], _op("sum", one_hot, axis=(1,), keepdims=True))
    out = _check(graph, ["_plus_scalar"])
    (plus,) = [n for n in out.nodes() if not n.is_variable]
    assert plus.inputs[0].node is g and plus.attrs["scalar"] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signed_zero_and_specials_of_g_and_index(dtype):
    """-0 g sums to +0 (numpy's sum starts from +0), NaN and inf stay; any index."""
    g, index, like = variable((5,), dtype, "g"), variable((5,), dtype), variable((5, 3), dtype)
    one_hot = _op("_pick_grad", g, index, like, axis=1, mode="clip")
    graph = _graph([g, index, like], _op("sum", one_hot, axis=(1,)))
    simplified = simplify(graph)
    assert _ops(simplified) == ["_plus_scalar"]
    arrays = [
        np.array([-0.0, 0.0, np.nan, -np.inf, 2.5], dtype),
        _indices(5, 3, 0).astype(dtype),
        np.zeros((5, 3), dtype),
    ]
    with np.errstate(all="ignore"):
        (before,) = evaluate(graph.live_outputs(), dict(zip(graph.inputs, [(a,) for a in arrays])))
        (after,) = evaluate(
            simplified.live_outputs(), dict(zip(graph.inputs, [(a,) for a in arrays]))
        )
    assert not np.signbit(before[0]) and not np.signbit(after[0])
    assert np.array_equal(before, after, equal_nan=True)
    assert np.array_equal(
        np.signbit(before[~np.isnan(before)]), np.signbit(after[~np.isnan(after)])
    )


def test_sums_over_another_axis_of_a_three_axis_one_hot():
    """Picked along axis 1 of (2, 4, 3): the sum over axis 1 is g + 0; over axis 2
    or over both it is not the rule's."""
    g, index, like = variable((2, 1, 3)), variable((2, 3)), variable((2, 4, 3))
    one_hot = _op("_pick_grad", g, index, like, axis=1, mode="wrap")
    _check(
        _graph([g, index, like], _op("sum", one_hot, axis=(1,), keepdims=True)), ["_plus_scalar"]
    )
    _untouched(_graph([g, index, like], _op("sum", one_hot, axis=(2,), keepdims=True)))
    _untouched(_graph([g, index, like], _op("sum", one_hot, axis=(1, 2), keepdims=True)))
    # sum over every axis but 0 and 2, written with exclude: the picked axis again
    _check(
        _graph([g, index, like], _op("sum", one_hot, axis=(0, 2), keepdims=True, exclude=True)),
        ["_plus_scalar"],
    )


def test_left_alone_where_g_has_another_shape_or_the_op_differs():
    # g of shape (6,) and the sum kept as (6, 1): shapes differ, no rule
    g, index, like = variable((6,)), variable((6,)), variable((6, 5))
    one_hot = _op("_pick_grad", g, index, like, axis=-1, mode="clip")
    _untouched(_graph([g, index, like], _op("sum", one_hot, axis=(1,), keepdims=True)))
    # a mean is not a sum
    g1 = variable((6, 1))
    one_hot1 = _op("_pick_grad", g1, index, like, axis=-1, mode="clip")
    _untouched(_graph([g1, index, like], _op("mean", one_hot1, axis=(1,), keepdims=True)))
    # a sum of something else
    _untouched(_graph([like], _op("sum", _op("tanh", like), axis=(1,), keepdims=True)))


# ---------------------------------------------------------------- the loss gradient


def loss_gradient_graph(rows: int, vocab: int, dtype) -> ProgramGraph:
    """Inputs logits z, labels y, the seed; outputs the mean token loss of
    ``-pick(log_softmax(z), y)`` and its gradient in z (W8's head, as Gluon's
    SoftmaxCrossEntropyLoss records it)."""
    z, y = variable((rows, vocab), dtype, "z"), variable((rows,), dtype, "y")
    seed = variable((rows,), dtype, "seed")
    picked = _op("pick", _op("log_softmax", z, axis=-1), y, axis=-1, keepdims=True)
    loss = Entry(_op("mean", _op("negative", picked), axis=(1,)), 0)
    grads = differentiate([loss], [Entry(seed, 0)], [Entry(z, 0)])
    return ProgramGraph([z, y, seed], [loss, *grads])


def test_the_loss_gradient_sums_no_one_hot():
    graph = loss_gradient_graph(7, 11, np.float32)
    before = [n.op.name for n in graph.nodes()]
    assert "_pick_grad" in before and before.count("sum") == 1
    after = _ops(simplify(graph))
    assert "sum" not in after and "_pick_grad" in after


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_loss_gradient_equals_interpreted_at_every_size(dtype):
    """One program (a dtype's) through sizes; logits with NaN, inf and -0, labels
    out of range; seeds of -0 and NaN: compiled equal to interpreted, signed zero
    included."""
    graph = loss_gradient_graph(7, 11, dtype)
    program = None
    for seed, (rows, vocab) in enumerate([(7, 11), (1, 5000), (3, 1), (40, 300), (7, 11)]):
        rng = np.random.default_rng(seed)
        z = rng.normal(scale=30.0, size=(rows, vocab)).astype(dtype)  # exps underflow to 0
        z.reshape(-1)[1 : 1 + min(3, z.size - 1)] = [np.nan, np.inf, -0.0][: min(3, z.size - 1)]
        y = _indices(rows, vocab, seed).astype(dtype)
        g = np.full(rows, 1.0 / rows, dtype)
        g[0] = -0.0
        if rows > 2:
            g[2] = np.nan
        args = [z, y, g]
        program = program or NumbaExecutable(PassRun(graph))
        with np.errstate(all="ignore"):
            got = program(args)
            got = program(args)  # compiled (the first call may interpret)
            program.wait()
            got = program(args)
            expected = evaluate(graph.live_outputs(), {v: (a,) for v, a in zip(graph.inputs, args)})
        rtol = 2e-5 if dtype == np.float32 else 1e-12
        for c, e in zip(got, expected):
            assert c.shape == e.shape and c.dtype == e.dtype
            np.testing.assert_allclose(c, e, rtol=rtol, atol=rtol, equal_nan=True)
            exact = (e == 0) | ~np.isfinite(e)
            assert np.array_equal(
                np.signbit(c[exact & ~np.isnan(e)]), np.signbit(e[exact & ~np.isnan(e)])
            )


def test_the_compiled_loss_gradient_writes_no_one_hot():
    graph = loss_gradient_graph(7, 11, np.float32)
    rng = np.random.default_rng(0)
    args = [rng.normal(size=(7, 11)).astype(np.float32), _indices(7, 11, 0), np.ones(7, np.float32)]
    program = NumbaExecutable(PassRun(graph))
    program._compile(args)
    assert program.plan.entry is not None
    names = [s.node.op.name for s in program.plan.steps]
    assert "_pick_grad" not in names and "sum" not in names and "_pick_positions" in names
    fused = [n.op.name for s in program.fused for n in s.node.attrs["body"].nodes()]
    assert "_one_hot_at" in fused and "exp" in fused


# ---------------------------------------------------------------- the pass


def _pick_grad_read_by_an_add(g_shape, like_shape, axis, mode, dtype=np.float32):
    g, index = variable(g_shape, dtype, "g"), variable(tuple(np.delete(like_shape, axis)), dtype)
    like = variable(like_shape, dtype, "like")
    one_hot = _op("_pick_grad", g, index, like, axis=axis, mode=mode)
    return _graph([g, index, like], _op("elemwise_add", one_hot, _op("negative", like)))


@pytest.mark.parametrize(
    "g_shape, like_shape, axis, mode",
    [((6, 1), (6, 5), -1, "clip"), ((6,), (6, 5), 1, "wrap"), ((2, 1, 3), (2, 4, 3), 1, "wrap")],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pick_grad_read_by_an_elementwise_op_becomes_a_select(
    g_shape, like_shape, axis, mode, dtype
):
    graph = _pick_grad_read_by_an_add(g_shape, like_shape, axis, mode, dtype)
    assert _ops(graph) == ["_pick_grad", "negative", "elemwise_add"]
    after = one_hots_in_loops(graph)
    expected = ["_pick_positions", "_one_hot_at", "negative", "elemwise_add"]
    if len(g_shape) != len(like_shape):
        expected.insert(1, "reshape_like")
    assert sorted(_ops(after)) == sorted(expected)
    rng = np.random.default_rng(1)
    g = rng.normal(size=g_shape).astype(dtype)
    g.reshape(-1)[:4] = [-0.0, np.nan, -np.inf, 0.0]
    index = _indices(int(np.prod(np.delete(like_shape, axis))), like_shape[axis], 2).astype(dtype)
    index = index.reshape(np.delete(like_shape, axis))
    like = rng.normal(size=like_shape).astype(dtype)
    like.reshape(-1)[:3] = [-0.0, np.inf, np.nan]
    arrays = [g, index, like]
    with np.errstate(all="ignore"):
        (before,) = evaluate(graph.live_outputs(), dict(zip(graph.inputs, [(a,) for a in arrays])))
        (now,) = evaluate(after.live_outputs(), dict(zip(after.inputs, [(a,) for a in arrays])))
        program = NumbaExecutable(PassRun(graph))
        program._compile(arrays)
        (compiled,) = program(arrays)
    for got in (now, compiled):
        assert got.dtype == before.dtype and got.shape == before.shape
        assert np.array_equal(got, before, equal_nan=True)
        kept = ~np.isnan(before)
        assert np.array_equal(np.signbit(got[kept]), np.signbit(before[kept]))


def test_pass_leaves_a_pick_grad_no_elementwise_op_reads():
    g, index, like = variable((6, 1)), variable((6,)), variable((6, 5))
    one_hot = _op("_pick_grad", g, index, like, axis=-1, mode="clip")
    graph = _graph([g, index, like], _op("dot", one_hot, like, transpose_b=True))
    assert one_hots_in_loops(graph) is graph


def test_compiled_loss_gradient_matches_finite_differences_float64():
    graph = loss_gradient_graph(3, 6, np.float64)
    rng = np.random.default_rng(3)
    z, y, seed = rng.normal(size=(3, 6)), np.array([0.0, 5.0, 9.0]), np.ones(3)
    program = NumbaExecutable(PassRun(graph))
    program._compile([z, y, seed])
    loss, grad = program([z, y, seed])

    def total(values):
        (out,) = evaluate([graph.outputs[0]], {graph.inputs[0]: (values,), graph.inputs[1]: (y,)})
        return float(np.sum(out))

    numeric = np.zeros_like(z)
    for k in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[k] = 1e-6
        numeric[k] = (total(z + step) - total(z - step)) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
