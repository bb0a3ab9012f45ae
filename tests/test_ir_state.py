"""IR nodes carry no runtime state (issue 13): the compiler's Node is structure
only, the compiler reads no recorded value off a node (a program is handed its
inputs), and the frontend keeps values, freed flags and gradient roles on a node
type of its own. Deferred values are computed by the interpreter's walk."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import symgrad as mx
import symgrad._deferred as deferred
from symgrad import autograd, nd
from symgrad._recorded import RecordedNode
from symgrad_compiler import Entry, GraphError, Node, Program, evaluate, make_node, variable

COMPILER = Path(__file__).resolve().parent.parent / "compiler"
# what a frontend used to keep on the compiler's node
RUNTIME_FIELDS = {"value", "freed", "tag"}
# Reads of an attribute named like a runtime field in compiler/ that are not off a
# node (file, the expression read from): a plan step's constant, a ctypes pointer.
NOT_NODES = {
    ("backends/numba/plan.py", "self"),
    ("backends/numba/entry.py", "step"),
    ("backends/numba/blas.py", "ctypes.cast(getattr(library, name), ctypes.c_void_p)"),
    ("backends/numba/blas.py", "ctypes.cast(controls[1], ctypes.c_void_p)"),
}


def test_the_compilers_node_has_no_runtime_slots():
    assert set(Node.__slots__) == {"op", "attrs", "inputs", "types", "_name", "__weakref__"}
    assert list(inspect.signature(Node).parameters) == ["op", "attrs", "inputs", "types", "name"]
    node = variable((2,), np.float32, name="x")
    for field in RUNTIME_FIELDS:
        assert not hasattr(node, field)
    assert "value" not in inspect.signature(variable).parameters


def _runtime_reads(path: Path) -> list[tuple[str, int, str]]:
    """Attribute reads of a runtime field in one compiler file, as (file, line,
    the expression read from), less the known reads that are not off nodes."""
    relative = path.relative_to(COMPILER).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in RUNTIME_FIELDS:
            receiver = ast.unparse(node.value)
            if (relative, receiver) not in NOT_NODES:
                found.append((relative, node.lineno, f"{receiver}.{node.attr}"))
    return found


def test_the_compiler_reads_no_runtime_state_off_nodes():
    reads = [read for path in sorted(COMPILER.rglob("*.py")) for read in _runtime_reads(path)]
    assert reads == []


def test_a_program_runs_on_values_it_is_handed():
    # a graph of plain compiler nodes: the frontend supplies the values it reads
    x = variable((3,), np.float64, name="x")
    y = make_node("tanh", [Entry(x, 0)])
    z = make_node("elemwise_mul", [Entry(y, 0), Entry(x, 0)])
    nodes = [x, y, z]
    program = Program(nodes, [(2, 0)], [0], [False], [(1, 0)], lambda node: False, "interpreter")
    values = {x: (np.array([-1.0, 0.5, 2.0]),)}
    dx, y_value = program.run(nodes, values.__getitem__, [None])
    v = values[x][0]
    np.testing.assert_allclose(dx, np.tanh(v) + v * (1 - np.tanh(v) ** 2))
    np.testing.assert_allclose(y_value, np.tanh(v))


def test_recording_keeps_its_state_on_its_own_nodes():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = nd.tanh(x)
        loss = (y * 2).sum()
    leaf, op = x._entry.node, y._entry.node
    assert type(leaf) is RecordedNode and type(op) is RecordedNode
    assert leaf.marked is x and leaf.pending is None  # the array whose gradient it takes
    assert op.marked is None and op.pending[0]() is y  # its deferred array
    assert op.value is None and not op.freed
    loss.backward()
    assert op.freed and op.value is None
    assert not leaf.freed and leaf.value[0] is x._data  # a variable keeps its value


def test_evaluate_stops_at_given_nodes():
    x = variable((2,), np.float64, name="x")  # no value: only y's value is given
    y = make_node("exp", [Entry(x, 0)])
    z = make_node("negative", [Entry(y, 0)])
    (value,) = evaluate([Entry(z, 0)], {y: (np.array([1.0, 2.0]),)})
    np.testing.assert_allclose(value, [-1.0, -2.0])
    with pytest.raises(GraphError, match="no value given for variable 'x'"):
        evaluate([Entry(z, 0)], {})


def test_a_deferred_read_is_the_interpreters_walk(monkeypatch):
    walks = []

    def spy(outputs, given, apply):
        walks.append([entry.node.op.name for entry in outputs])
        return evaluate(outputs, given, apply)

    monkeypatch.setattr(deferred, "evaluate", spy)
    x = nd.array([0.5, 1.0])
    x.attach_grad()
    with autograd.record():
        y = nd.exp(x)
        z = nd.sin(y)
    np.testing.assert_allclose(y.asnumpy(), np.exp([0.5, 1.0]), rtol=1e-6)
    np.testing.assert_allclose(z.asnumpy(), np.sin(np.exp([0.5, 1.0])), rtol=1e-6)
    assert walks == [["exp"], ["sin"]]  # the second read starts from y's kept value
    assert x._entry.node.value is not None and y._entry.node.value is not None


def test_a_deferred_read_after_its_graph_was_freed_is_an_mxnet_error():
    x = nd.array(np.ones(3))
    x.attach_grad()
    with autograd.record():
        y = nd.tanh(x)
        side = y * 2  # outside the heads' graph: grad does not settle it
        loss = y.sum()
    autograd.grad(loss, [x])
    for _ in range(2):
        with pytest.raises(mx.MXNetError, match="never computed and its graph has been freed"):
            side.asnumpy()
