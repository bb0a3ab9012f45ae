"""Simplification rules, each shown on a small graph before and after, and each
keeping the values the interpreter computes."""

from __future__ import annotations

import numpy as np

from symgrad_compiler import Entry, ProgramGraph, evaluate
from symgrad_compiler.passes import simplify
from symgrad_compiler.registry import make_node, variable


def _ops(graph: ProgramGraph) -> list[str]:
    return [node.op.name for node in graph.nodes() if not node.is_variable]


def _values(graph: ProgramGraph, arrays: list[np.ndarray]) -> list[np.ndarray]:
    given = {var: (value,) for var, value in zip(graph.inputs, arrays)}
    return evaluate(graph.live_outputs(), given)


def _check(graph: ProgramGraph, arrays: list[np.ndarray], expected_ops: list[str]) -> None:
    simplified = simplify(graph)
    assert _ops(simplified) == expected_ops, (_ops(graph), _ops(simplified))
    for before, after in zip(_values(graph, arrays), _values(simplified, arrays)):
        assert np.array_equal(before, after)


def test_fully_connected_of_a_matrix_becomes_a_product_and_an_add():
    x, w, b = variable((4, 3)), variable((2, 3)), variable((2,))
    fc = make_node("FullyConnected", [Entry(x, 0), Entry(w, 0), Entry(b, 0)], {"num_hidden": 2})
    graph = ProgramGraph([x, w, b], [Entry(fc, 0)])
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=v.types[0].shape).astype(np.float32) for v in (x, w, b)]
    simplified = simplify(graph)
    assert _ops(simplified) == ["dot", "broadcast_add"]
    (dot,) = [node for node in simplified.nodes() if node.op.name == "dot"]
    assert dot.attrs["transpose_b"] and not dot.attrs["transpose_a"]
    assert np.allclose(_values(graph, arrays)[0], _values(simplified, arrays)[0], rtol=1e-6)


def test_fully_connected_without_bias_and_of_higher_rank():
    x, w = variable((4, 3)), variable((2, 3))
    fc = make_node("FullyConnected", [Entry(x, 0), Entry(w, 0)], {"num_hidden": 2, "no_bias": True})
    assert _ops(simplify(ProgramGraph([x, w], [Entry(fc, 0)]))) == ["dot"]
    x3 = variable((4, 3, 2))
    w6 = variable((2, 6))
    fc3 = make_node(
        "FullyConnected", [Entry(x3, 0), Entry(w6, 0)], {"num_hidden": 2, "no_bias": True}
    )
    # a 3-D input flattens first: left as it is
    assert _ops(simplify(ProgramGraph([x3, w6], [Entry(fc3, 0)]))) == ["FullyConnected"]


def test_flatten_of_a_matrix_is_the_matrix():
    x = variable((4, 3))
    flat = make_node("Flatten", [Entry(x, 0)])
    out = make_node("tanh", [Entry(flat, 0)])
    arrays = [np.arange(12, dtype=np.float32).reshape(4, 3) / 10]
    _check(ProgramGraph([x], [Entry(out, 0)]), arrays, ["tanh"])
    x3 = variable((4, 3, 2))
    flat3 = make_node("Flatten", [Entry(x3, 0)])
    assert _ops(simplify(ProgramGraph([x3], [Entry(flat3, 0)]))) == ["Flatten"]
