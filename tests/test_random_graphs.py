"""Property tests over random graphs: every pass keeps values, and the compiled
program computes what the interpreter computes, which finite differences confirm.

Graphs mix unary math, broadcasting binary ops, scalar ops, reductions and shared
subexpressions over inputs whose shapes broadcast against each other.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler
from compiler.interpret import evaluate
from compiler.lower.runner import CompiledProgram
from compiler.passes import format_graph, run_pipeline
from symgrad import autograd, nd

UNARY = ["tanh", "sigmoid", "sin", "cos", "arctan", "softsign", "square", "negative", "abs",
         "relu", "erf"]
BINARY = ["broadcast_add", "broadcast_sub", "broadcast_mul", "broadcast_maximum",
          "broadcast_minimum"]
SCALAR = [("_mul_scalar", 1.7), ("_plus_scalar", 0.3), ("_rminus_scalar", 1.0),
          ("_div_scalar", 2.0), ("_power_scalar", 2.0)]

MANY = int(os.environ.get("SYMGRAD_FUZZ_EXAMPLES", "60"))
COMPILED = int(os.environ.get("SYMGRAD_FUZZ_COMPILED", "4"))


@st.composite
def programs(draw):
    """A random program: input shapes and a list of instructions over earlier values."""
    base = draw(st.lists(st.integers(2, 4), min_size=1, max_size=3))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        keep = draw(st.integers(0, len(base) - 1))
        shape = [1 if draw(st.booleans()) and i < len(base) - 1 else s
                 for i, s in enumerate(base)]
        shapes.append(tuple(shape[keep:]) if draw(st.booleans()) else tuple(shape))
    shapes[0] = tuple(base)
    steps = []
    for _ in range(draw(st.integers(2, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "scalar", "sum"]))
        count = len(shapes) + len(steps)
        a = draw(st.integers(0, count - 1))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(UNARY)), a))
        elif kind == "binary":
            steps.append(("binary", draw(st.sampled_from(BINARY)), a,
                          draw(st.integers(0, count - 1))))
        elif kind == "scalar":
            op, value = draw(st.sampled_from(SCALAR))
            steps.append(("scalar", op, a, value))
        else:
            steps.append(("sum", "sum", a, draw(st.booleans())))
    heads = draw(st.integers(1, 2))
    return shapes, steps, heads


def execute(program, arrays):
    """Run ``program`` on NDArrays (inside ``record``); returns its heads."""
    shapes, steps, heads = program
    values = list(arrays)
    for step in steps:
        kind, op = step[0], step[1]
        if kind == "unary":
            values.append(getattr(nd, op)(values[step[2]]))
        elif kind == "binary":
            values.append(getattr(nd, op)(values[step[2]], values[step[3]]))
        elif kind == "scalar":
            values.append(getattr(nd, op)(values[step[2]], scalar=step[3]))
        else:
            x = values[step[2]]
            axis = (x.ndim - 1,) if step[3] and x.ndim > 1 else None
            values.append(nd.sum(x, axis=axis, keepdims=step[3]))
    return [values[-1 - k].sum() for k in range(min(heads, len(steps)))]


def gradients(program, inputs, backend, monkeypatch):
    monkeypatch.setenv("SYMGRAD_BACKEND", backend)
    arrays = [nd.array(a, dtype="float64") for a in inputs]
    for a in arrays:
        a.attach_grad()
    with autograd.record():
        heads = execute(program, arrays)
    autograd.backward(heads)
    return [a.grad.asnumpy() for a in arrays]


def make_inputs(program, seed=0):
    rng = np.random.default_rng(seed)
    # Away from the kinks of abs/relu/max so that finite differences are smooth.
    return [rng.choice([-1, 1], size=s) * rng.uniform(0.2, 1.5, size=s) for s in program[0]]


def recorded_graph(program, inputs):
    arrays = [nd.array(a, dtype="float64") for a in inputs]
    for a in arrays:
        a.attach_grad()
    with autograd.record():
        heads = execute(program, arrays)
    entries = [h._entry for h in heads]
    nodes = compiler.topo_order(entries)
    position = {id(n): i for i, n in enumerate(nodes)}
    wrt = [position[id(a._entry.node)] for a in arrays if id(a._entry.node) in position]
    built = compiler.Program(nodes, [(position[id(e.node)], 0) for e in entries], wrt,
                             [False] * len(entries), [], lambda n: False,
                             compiler.interpret_runner)
    args = [nodes[p].value[i] if p >= 0 else None for p, i in built.input_refs]
    return built.graph, args


@settings(max_examples=MANY, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_passes_keep_values(program):
    graph, args = recorded_graph(program, make_inputs(program))
    given_values = {var: (arg,) for var, arg in zip(graph.inputs, args)}
    before = evaluate(graph.live_outputs(), given_values)
    after_graph = run_pipeline(graph)
    after = evaluate(after_graph.live_outputs(),
                     {var: (arg,) for var, arg in zip(after_graph.inputs, args)})
    for a, b in zip(before, after):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13,
                                   err_msg=f"{format_graph(graph)}\n---\n{format_graph(after_graph)}")


@settings(max_examples=COMPILED, deadline=None, suppress_health_check=list(HealthCheck))
@given(program=programs())
def test_compiled_equals_interpreted_equals_finite_differences(program, monkeypatch):
    monkeypatch.setenv("SYMGRAD_COMPILE", "sync")
    inputs = make_inputs(program)
    interpreted = gradients(program, inputs, "interpreter", monkeypatch)
    compiled = gradients(program, inputs, "compiled", monkeypatch)
    for a, b in zip(interpreted, compiled):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-12)
    # central differences of the summed heads along a random direction
    rng = np.random.default_rng(1)
    directions = [rng.standard_normal(x.shape) for x in inputs]
    eps = 1e-6

    def total(shift):
        arrays = [nd.array(x + shift * d, dtype="float64") for x, d in zip(inputs, directions)]
        return sum(float(h.asnumpy().sum()) for h in execute(program, arrays))

    numeric = (total(eps) - total(-eps)) / (2 * eps)
    analytic = sum(float((g * d).sum()) for g, d in zip(compiled, directions))
    assert abs(numeric - analytic) <= 1e-5 * max(1.0, abs(numeric))


def test_fusion_never_leaves_a_cycle_in_a_diamond():
    x = compiler.variable((4, 3), np.float64)
    handle = compiler.Expr(compiler.Entry(x, 0))
    a = compiler.call("tanh", handle)
    b = compiler.call("sum", a, axis=(1,), keepdims=True)
    c = a * compiler.call("broadcast_like", b, a)  # reads a reduction of its own group
    graph = compiler.ProgramGraph([x], [c.entry])
    fused = run_pipeline(graph)
    program = CompiledProgram(graph)
    assert len(program.fused) >= 1
    value = np.random.default_rng(0).standard_normal((4, 3))
    expected = evaluate([c.entry], {x: (value,)})[0]
    got = evaluate(fused.live_outputs(), {v: (value,) for v in fused.inputs})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-14)


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
