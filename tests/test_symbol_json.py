"""MXNet JSON: layout, attribute spellings, round trips and loading errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import symgrad as mx
from symgrad.symbol_json import SymbolJSONError

RNG = np.random.default_rng(0)


def mlp():
    data = mx.sym.var("data")
    h = mx.sym.FullyConnected(data, num_hidden=4, name="fc1")
    h = mx.sym.Dropout(mx.sym.Activation(h, act_type="relu"), p=0.3, name="drop")
    parts = mx.sym.split(h, num_outputs=2, axis=1, name="parts")
    return mx.sym.softmax(mx.sym.concat(parts[1], parts[0], dim=1) * 2, name="prob")


def test_layout_matches_mxnet():
    graph = json.loads(mlp().tojson())
    assert set(graph) == {"nodes", "arg_nodes", "node_row_ptr", "heads", "attrs"}
    assert graph["attrs"] == {"mxnet_version": ["int", 10901]}
    names = [n["name"] for n in graph["nodes"]]
    assert names[:4] == ["data", "fc1_weight", "fc1_bias", "fc1"]
    assert graph["arg_nodes"] == [0, 1, 2]
    ops = {n["name"]: n for n in graph["nodes"]}
    assert ops["fc1"]["attrs"]["num_hidden"] == "4"
    assert ops["fc1"]["inputs"] == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert "is_train" not in ops["drop"]["attrs"]
    concat = next(n for n in graph["nodes"] if n["op"] == "Concat")
    assert concat["attrs"]["num_args"] == "2"
    assert concat["inputs"][0][:2] == [names.index("parts"), 1]
    # Dropout has a hidden mask output and SliceChannel two: node_row_ptr counts them
    counts = np.diff(graph["node_row_ptr"]).tolist()
    assert counts[names.index("drop")] == 2 and counts[names.index("parts")] == 2
    assert graph["heads"] == [[len(names) - 1, 0, 0]]
    scalar = next(n for n in graph["nodes"] if n["op"] == "_mul_scalar")
    assert scalar["attrs"] == {"scalar": "2"}


def test_variable_attributes_are_written_as_mxnet_does():
    w = mx.sym.var("w", shape=(2, 3), dtype="float64", init='["zero", {}]', lr_mult=2.0)
    node = json.loads(w.tojson())["nodes"][0]
    assert node["attrs"] == {
        "__shape__": "(2, 3)",
        "__dtype__": "1",
        "__init__": '["zero", {}]',
        "__lr_mult__": "2.0",
    }
    again = mx.sym.load_json(w.tojson())
    assert again.list_attr() == w.list_attr()
    assert again.infer_shape() == ([(2, 3)], [(2, 3)], [])
    assert again.infer_type() == ([np.float64], [np.float64], [])


def test_round_trip_gives_equal_json_and_values(tmp_path):
    net = mlp()
    path = tmp_path / "net.json"
    net.save(str(path))
    loaded = mx.sym.load(str(path))
    assert loaded.tojson() == net.tojson()
    inputs = {
        "data": RNG.normal(size=(3, 5)).astype(np.float32),
        "fc1_weight": RNG.normal(size=(4, 5)).astype(np.float32),
        "fc1_bias": RNG.normal(size=(4,)).astype(np.float32),
    }
    np.testing.assert_allclose(
        loaded.eval(**inputs)[0].asnumpy(), net.eval(**inputs)[0].asnumpy(), rtol=1e-6
    )


def test_recorded_graph_round_trip():
    x = mx.nd.array(RNG.uniform(0.5, 1.5, (2, 3)))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.sum(mx.nd.log(x) * x**2 / 3 + (1 - x), axis=1)
    sym = mx.autograd.get_symbol(y)
    loaded = mx.sym.load_json(sym.tojson())
    (name,) = loaded.list_arguments()
    np.testing.assert_allclose(loaded.eval(**{name: x})[0].asnumpy(), y.asnumpy(), rtol=1e-6)


def test_loads_mxnet_written_json_with_legacy_names_and_versions():
    text = json.dumps(
        {
            "nodes": [
                {"op": "null", "name": "a", "inputs": []},
                {"op": "null", "name": "b", "attrs": {"__shape__": "(2,)"}, "inputs": []},
                {"op": "_Plus", "name": "p", "inputs": [[0, 0, 0], [1, 0, 0]]},
                {"op": "_MulScalar", "name": "m", "param": {"scalar": "3"}, "inputs": [[2, 0, 0]]},
                {
                    "op": "Dropout",
                    "name": "d",
                    "attrs": {"p": "0.5", "cudnn_off": "False"},
                    "inputs": [[3, 0, 0]],
                },
            ],
            "arg_nodes": [0, 1],
            "node_row_ptr": [0, 1, 2, 3, 4, 6],
            "heads": [[4, 0, 0]],
            "attrs": {"mxnet_version": ["int", 10901]},
        }
    )
    sym = mx.sym.load_json(text)
    assert sym.list_arguments() == ["a", "b"]
    assert sym.infer_shape() == ([(2,), (2,)], [(2,)], [])  # a inferred from elemwise b
    value = sym.eval(a=mx.nd.array([1, 2]), b=mx.nd.array([3, 4]))[0].asnumpy()
    np.testing.assert_allclose(value, [12, 18])


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a symbol graph"),
        ('{"nodes": [], "heads": []}', "no heads"),
        ('{"nodes": [{"op": "null", "inputs": []}], "heads": [[0, 0, 0]]}', "needs 'name'"),
        (
            '{"nodes": [{"op": "Frobnicate", "name": "f", "inputs": []}], "heads": [[0, 0, 0]]}',
            "unknown op 'Frobnicate'",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "tanh", "name": "t", "inputs": [[5, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "node 5, which does not exist",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "tanh", "name": "t", "inputs": [[0, 1, 0]]}], "heads": [[1, 0, 0]]}',
            "has 1 output",
        ),
        (
            '{"nodes": [{"op": "tanh", "name": "a", "inputs": [[1, 0, 0]]},'
            '{"op": "exp", "name": "b", "inputs": [[0, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "cycle: .*a -> b -> a|cycle: .*b -> a -> b",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []}], "heads": [[3, 0, 0]]}',
            "node 3 does not exist",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "tanh", "name": "t", "inputs": [["0", 0]]}], "heads": [[1, 0, 0]]}',
            r"\[node, index, version\]",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "Activation", "name": "t", "attrs": {"act_type": "wobbly"}, '
            '"inputs": [[0, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "'t'.*act_type",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "Activation", "name": "t", "attrs": {"act_type": "relu", "bogus": "1"}, '
            '"inputs": [[0, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "unknown attribute",  # (an op without parameters keeps it, as MXNet)
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "Concat", "name": "c", "attrs": {"num_args": "3"}, '
            '"inputs": [[0, 0, 0], [0, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "num_args is 3",
        ),
    ],
)
def test_loading_errors_are_clear(text, message):
    with pytest.raises(SymbolJSONError, match=message):
        mx.sym.load_json(text)


def test_out_of_order_nodes_load():
    text = json.dumps(
        {
            "nodes": [
                {"op": "exp", "name": "e", "inputs": [[1, 0, 0]]},
                {"op": "null", "name": "x", "inputs": []},
            ],
            "heads": [[0, 0, 0]],
        }
    )
    value = mx.sym.load_json(text).eval(x=mx.nd.array([0.0]))[0].asnumpy()
    assert value.tolist() == [1.0]
