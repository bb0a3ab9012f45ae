"""W8's loss gradient (softmax cross-entropy over a 10000-word vocabulary): the
one-hot that pick's gradient writes is not summed again. ``sum_of_pick_grad``
turns the row sums of ``_pick_grad(g, ...)`` into ``g + 0``; shown on the graph
before and after, on the values (NaN, inf and signed zero among g and the
indices, both modes, any picked axis), on graphs it must leave alone, and on the
differentiated loss of a language model's head compiled at several sizes through
one program."""

from __future__ import annotations

import numpy as np
import pytest
from test_simplify_rules import _check, _graph, _op, _ops, _untouched

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.autodiff import differentiate
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.passes import simplify
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
