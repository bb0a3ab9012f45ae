"""Constant folding (``symgrad_compiler.passes.fold_constants``): an elementwise op
over fills becomes the fill it computes, shown on the smallest graphs before and
after, with the values the interpreter computes kept exactly (NaN, inf and the
sign of zero included), and the graphs it must leave alone."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler import Entry, Node, ProgramGraph, evaluate
from symgrad_compiler.passes import fold_constants
from symgrad_compiler.passes.fold import RULES, fill_value
from symgrad_compiler.registry import make_node, variable


def _op(name: str, *inputs: Node, **attrs) -> Node:
    return make_node(name, [Entry(node, 0) for node in inputs], attrs)


def _ops(graph: ProgramGraph) -> list[str]:
    return [node.op.name for node in graph.nodes() if not node.is_variable]


def _values(graph: ProgramGraph, arrays: list[np.ndarray]) -> list[np.ndarray]:
    given = {var: (value,) for var, value in zip(graph.inputs, arrays)}
    with np.errstate(all="ignore"):  # NaN and inf inputs are meant
        return [np.asarray(v) for v in evaluate(graph.live_outputs(), given)]


def _assert_same(before: np.ndarray, after: np.ndarray) -> None:
    """Equal dtype, shape, elements, NaN places and sign of zero."""
    assert before.dtype == after.dtype and before.shape == after.shape
    assert np.array_equal(before, after, equal_nan=True), (before, after)
    signed = ~np.isnan(before) if before.dtype.kind == "f" else np.ones(before.shape, bool)
    assert np.array_equal(np.signbit(before[signed]), np.signbit(after[signed]))


def _fold(out: Node, inputs: list[Node] | None = None, arrays=None) -> ProgramGraph:
    """Fold the graph computing ``out``; assert every value is kept."""
    graph = ProgramGraph(inputs or [], [Entry(out, 0)])
    folded = fold_constants(graph)
    for before, after in zip(_values(graph, arrays or []), _values(folded, arrays or [])):
        _assert_same(before, after)
    return folded


def _fold_structure(out: Node) -> ProgramGraph:
    return fold_constants(ProgramGraph([], [Entry(out, 0)]))


def _full(value: float, shape=(3,), dtype="float32") -> Node:
    return _op("_full", shape=shape, dtype=dtype, value=value)


def test_the_pass_is_its_one_rule():
    assert [rule.__name__ for rule in RULES] == ["fold_elementwise_of_fills"]


def test_fill_value_of_each_fill():
    assert fill_value(_op("_ones", shape=(2,), dtype="float32")) == 1.0
    assert fill_value(_op("_zeros", shape=(2,), dtype="int32")).dtype == np.int32
    assert fill_value(_full(2.5)) == 2.5
    assert fill_value(_op("ones_like", variable((2,)))) is None  # reads an input: not a fill


def test_an_op_of_two_fills_becomes_one_fill():
    folded = _fold(_op("elemwise_add", _op("_ones", shape=(3,), dtype="float32"), _full(2.0)))
    assert _ops(folded) == ["_full"]
    assert folded.nodes()[0].attrs["value"] == 3.0


def test_a_chain_over_fills_folds_to_a_fixed_point():
    # exp(-(ones) * 3): each fold makes a fill the next op folds
    chain = _op("_mul_scalar", _op("exp", _op("negative", _op("_ones", shape=(2, 2)))), scalar=3.0)
    folded = _fold(chain)
    assert _ops(folded) == ["_full"]
    assert folded.nodes()[0].attrs["value"] == float(np.float32(np.exp(np.float32(-1))) * 3)


def test_broadcasting_fills_fold_to_the_result_shape():
    a = _op("_ones", shape=(3, 1), dtype="float64")
    b = _full(2.0, shape=(1, 4), dtype="float64")
    folded = _fold(_op("broadcast_mul", a, b))
    assert _ops(folded) == ["_full"] and folded.nodes()[0].attrs["shape"] == (3, 4)


@pytest.mark.parametrize(
    "op,fills,attrs",
    [
        ("negative", [0.0], {}),  # -0.0: the sign of zero is kept
        ("_mul_scalar", [-0.0], {"scalar": 3.0}),
        ("elemwise_mul", [np.inf, 0.0], {}),  # inf * 0 = NaN
        ("elemwise_add", [np.inf, -np.inf], {}),
        ("log", [0.0], {}),  # -inf
        ("sqrt", [-1.0], {}),  # NaN
        ("_rdiv_scalar", [-0.0], {"scalar": 1.0}),  # -inf
        ("elemwise_add", [np.nan, 1.0], {}),
    ],
)
def test_special_values_fold_as_the_interpreter_computes_them(op, fills, attrs):
    folded = _fold(_op(op, *[_full(value) for value in fills], **attrs))
    assert _ops(folded) == ["_full"]


def test_an_integer_fill_folds_in_its_dtype():
    a = _op("_ones", shape=(2,), dtype="int32")
    folded = _fold(_op("elemwise_add", a, _full(5.0, shape=(2,), dtype="int32")))
    assert _ops(folded) == ["_full"] and folded.nodes()[0].attrs["dtype"] == "int32"


def test_a_cast_of_a_fill_folds():
    folded = _fold(_op("Cast", _full(1.0 / 3.0, dtype="float64"), dtype="float16"))
    assert _ops(folded) == ["_full"] and folded.nodes()[0].attrs["dtype"] == "float16"


def test_an_op_reading_a_variable_is_left():
    x = variable((3,))
    arrays = [np.array([np.nan, -0.0, np.inf], np.float32)]
    folded = _fold(_op("elemwise_add", x, _full(0.0)), [x], arrays)
    assert _ops(folded) == ["_full", "elemwise_add"]


def test_a_reduction_of_a_fill_is_left():
    # sum is not elementwise: its value depends on the size, not just the fill
    folded = _fold(_op("sum", _op("_ones", shape=(3, 4))))
    assert _ops(folded) == ["_ones", "sum"]


def test_a_random_op_is_not_a_fill():
    folded = _fold_structure(_op("negative", _op("_random_uniform", shape=(4,))))
    assert _ops(folded) == ["_random_uniform", "negative"]


def test_a_fill_like_a_variable_is_left():
    # ones_like(x) has a shape that x decides: a fill only once x is a constant
    x = variable((3,))
    folded = _fold(_op("negative", _op("ones_like", x)), [x], [np.zeros(3, np.float32)])
    assert _ops(folded) == ["ones_like", "negative"]


def test_an_integer_the_float_attr_cannot_hold_is_left():
    # _full keeps its value as a float: 2**53 + 1 would come back as 2**53
    big = _full(2.0**53, shape=(2,), dtype="int64")
    folded = _fold(_op("elemwise_add", big, _op("_ones", shape=(2,), dtype="int64")))
    assert _ops(folded) == ["_full", "_ones", "elemwise_add"]


def test_an_unsigned_fill_wraps_as_numpy_does():
    folded = _fold(_op("negative", _op("_ones", shape=(2,), dtype="uint8")))
    assert _ops(folded) == ["_full"] and folded.nodes()[0].attrs["value"] == 255.0
