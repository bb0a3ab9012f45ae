"""Programs of any depth go to the compiler process (compiler/backends/numba/
subprocess_compile.py). Pickled node by node, a chain of a few hundred ops exceeded
Python's recursion limit, and such programs (a DenseNet step) compiled on the
user's process instead, holding its interpreter lock while numba worked."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.backends.numba import subprocess_compile
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry, topo_order
from symgrad_compiler.ops.fused import FusedBody
from symgrad_compiler.registry import make_node, variable


def op(name, *inputs, **attrs):
    return Entry(make_node(name, list(inputs), attrs), 0)


def chain(depth: int) -> ProgramGraph:
    """sin, cos, sin, ... ``depth`` deep, with a shared value, a split, an unused
    input and a structurally zero output."""
    x = variable((6,), np.float64, "x")
    unused = variable((2,), np.float32, "unused")
    v = Entry(x, 0)
    for k in range(depth):
        v = op("sin" if k % 2 else "cos", v)
    halves = make_node("split", [v], {"num_outputs": 2, "axis": 0})
    both = op("elemwise_mul", Entry(halves, 0), Entry(halves, 1))
    return ProgramGraph([x, unused], [both, None, op("elemwise_add", v, v)])


def describe(graph: ProgramGraph | FusedBody) -> list:
    """The graph's structure: each node's op, attrs (a fused body described too),
    types and inputs by position."""
    live = [o for o in graph.outputs if o is not None]
    order = list(graph.inputs) + [n for n in topo_order(live) if n not in graph.inputs]
    position = {id(n): k for k, n in enumerate(order)}

    def attrs_of(node):
        return {k: describe(v) if isinstance(v, FusedBody) else v for k, v in node.attrs.items()}

    nodes = [
        (n.op.name, attrs_of(n), n.types, [(position[id(e.node)], e.index) for e in n.inputs])
        for n in order
    ]
    outputs = [None if o is None else (position[id(o.node)], o.index) for o in graph.outputs]
    return [nodes, outputs]


@pytest.mark.filterwarnings("ignore:symgrad. the numba backend has no whole-program")
def test_a_deep_graph_and_its_fused_form_pickle_whole():
    graph = chain(5000)
    again = pickle.loads(subprocess_compile._dumps(graph))
    assert describe(again) == describe(graph)
    fused = NumbaExecutable(PassRun(chain(2000))).plan.graph  # a fused body 2000 deep
    assert any(n.op.name == "_fused" for n in fused.nodes())
    assert describe(pickle.loads(subprocess_compile._dumps(fused))) == describe(fused)


def products(depth: int) -> ProgramGraph:
    """``depth`` matrix products in a row, then a sine: a program of ``depth`` + 1
    steps (products do not fuse) with one kernel to compile."""
    x = variable((3, 6), np.float64, "x")
    w = variable((6, 6), np.float64, "w")
    v = Entry(x, 0)
    for _ in range(depth):
        v = op("dot", v, Entry(w, 0))
    return ProgramGraph([x, w], [op("sin", v)])


def test_a_deep_program_compiles_in_the_compiler_process():
    graph = products(600)
    program = NumbaExecutable(PassRun(graph))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 6)), np.linalg.qr(rng.standard_normal((6, 6)))[0]
    outcome = subprocess_compile.compile_elsewhere(program.plan, [x, w])
    assert outcome is subprocess_compile.Outcome.DONE
    program._compile([x, w])  # loads what the compiler process wrote
    expected = evaluate(graph.live_outputs(), {graph.inputs[0]: (x,), graph.inputs[1]: (w,)})
    np.testing.assert_allclose(program([x, w])[0], expected[0], rtol=1e-9, atol=1e-12)


def test_a_compiler_process_that_grew_too_big_is_replaced(monkeypatch):
    # it keeps what numba made for every program it compiled: past RECYCLE_BYTES
    # it ends after its job, and the next program starts a fresh one
    monkeypatch.setattr(subprocess_compile, "RECYCLE_BYTES", 0)
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 6)), rng.standard_normal((6, 6)) / 3
    for depth in (2, 3):
        program = NumbaExecutable(PassRun(products(depth)))
        before = subprocess_compile.stats()["recycled"]
        outcome = subprocess_compile.compile_elsewhere(program.plan, [x, w])
        assert outcome is subprocess_compile.Outcome.DONE
        assert subprocess_compile.stats()["recycled"] == before + 1
        assert subprocess_compile._compiler is None
        program._compile([x, w])  # loads what the ended process wrote
        expected = np.sin(x @ np.linalg.matrix_power(w, depth))
        np.testing.assert_allclose(program([x, w])[0], expected, rtol=1e-9, atol=1e-12)
