"""Looking at symbols: debug_str/print, networkx export and import.

plot_network is tested in test_visualization.py.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad.base import MXNetError

RNG = np.random.default_rng(2)


def net():
    data = mx.sym.var("data", shape=(3, 4))
    parts = mx.sym.split(data, num_outputs=2, axis=1, name="parts")
    both = mx.sym.concat(parts[1], parts[0] * parts[0], dim=0, name="both")
    return mx.sym.FullyConnected(mx.sym.tanh(both, name="t"), num_hidden=5, name="fc")


def test_debug_str_lists_one_node_a_line():
    sym = net()
    text = sym.debug_str()
    lines = text.splitlines()
    assert lines[0] == "Symbol outputs: fc_output"
    assert "  both = Concat(parts[1], _mul" in text  # a * b is elemwise_mul, named _mul<n>
    assert "dim=0" in text and "num_args" not in text
    fc = next(line for line in lines if line.startswith("  fc ="))
    assert "FullyConnected(t, fc_weight, fc_bias; num_hidden=5" in fc
    assert fc.endswith("-> (6, 5) float32")  # fc_weight's shape follows from the data
    assert (mx.sym.var("q") + 1).debug_str().splitlines()[-1].endswith("-> ?")
    assert next(line for line in lines if line.startswith("  t =")).endswith("(6, 2) float32")
    assert str(sym) == text
    assert repr(sym) == "<Symbol fc>"


def test_networkx_export_layout():
    graph = net().to_networkx()
    assert isinstance(graph, nx.DiGraph) and nx.is_directed_acyclic_graph(graph)
    by_name = {d["name"]: k for k, d in graph.nodes(data=True)}
    parts, both = by_name["parts"], by_name["both"]
    assert graph.nodes[parts]["op"] == "SliceChannel"
    assert graph.nodes[parts]["attrs"]["num_outputs"] == "2"
    assert graph.nodes[parts]["shape"] == (3, 2) and graph.nodes[parts]["dtype"] == "float32"
    assert graph.nodes[by_name["fc_weight"]]["shape"] == (5, 2)
    assert (mx.sym.var("q") + 1).to_networkx().nodes[1]["shape"] is None
    assert graph.edges[parts, both]["index"] == 1
    square = by_name[next(n for n in by_name if n.startswith("_mul"))]
    assert graph.edges[parts, square]["connections"] == [(0, 0), (0, 1)]
    assert graph.graph["heads"] == [(by_name["fc"], 0)]


def test_networkx_round_trip_keeps_graph_and_values():
    sym = net()
    again = mx.sym.Symbol.from_networkx(sym.to_networkx())
    assert again.tojson() == sym.tojson()
    assert nx.utils.graphs_equal(again.to_networkx(), sym.to_networkx())
    inputs = {
        "data": RNG.normal(size=(3, 4)),
        "fc_weight": RNG.normal(size=(5, 2)),
        "fc_bias": RNG.normal(size=(5,)),
    }
    np.testing.assert_allclose(again.eval(**inputs)[0].asnumpy(), sym.eval(**inputs)[0].asnumpy())


def test_graph_built_in_networkx():
    graph = nx.DiGraph()
    graph.add_node("x", op="null", shape=(2,), dtype="float64")
    graph.add_node("y", op="null")
    graph.add_node("sub", op="broadcast_sub")
    graph.add_node("out", op="_mul_scalar", attrs={"scalar": "3"})
    graph.add_edge("y", "sub", position=1)
    graph.add_edge("x", "sub", position=0)
    graph.add_edge("sub", "out")
    sym = mx.sym.Symbol.from_networkx(graph)
    assert sym.list_arguments() == ["x", "y"]
    value = sym.eval(x=np.array([5.0, 1.0]), y=np.array([1.0, 1.0]))[0].asnumpy()
    assert value.tolist() == [12.0, 0.0]
    graph.add_edge("out", "x")
    with pytest.raises(MXNetError, match="cycle"):
        mx.sym.Symbol.from_networkx(graph)
    bad = nx.DiGraph()
    bad.add_node("z", op="Frobnicate")
    with pytest.raises(MXNetError, match="unknown op 'Frobnicate'"):
        mx.sym.Symbol.from_networkx(bad)


def test_explain_names_inputs_without_shapes():
    x = mx.sym.var("x")
    with pytest.raises(ValueError, match=r"shapes of \['x'\] are not known"):
        compiler.explain(mx.sym.exp(x))
