"""The compiler's architecture, checked: no import cycles, one visible pipeline,
a backend seam a new backend plugs into, and op knowledge only in lowerings."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad_compiler import Entry, ProgramGraph, make_node, variable
from symgrad_compiler.backends.interpreter import Interpreted
from symgrad_compiler.driver import PassRun
from symgrad_compiler.passes import PIPELINE

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ROOT / "compiler"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(COMPILER).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["symgrad_compiler", *parts])


def _import_graph() -> nx.DiGraph:
    """Module -> modules it imports at module level (inside functions an import
    is deferred on purpose and cannot form a cycle at import time), within the
    compiler. ``from . import x`` names the submodule x when there is one."""
    modules = {_module_name(p): p for p in COMPILER.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        for statement in tree.body:
            targets: list[str] = []
            if isinstance(statement, ast.Import):
                targets = [alias.name for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom):
                if statement.level:
                    base = package.split(".")
                    base = base[: len(base) - statement.level + 1]
                    origin = ".".join(base + ([statement.module] if statement.module else []))
                else:
                    origin = statement.module or ""
                # ``from package import submodule`` depends on the submodule only
                # (a parent package is always imported first, never a cycle)
                submodules = [f"{origin}.{alias.name}" for alias in statement.names]
                named = [m for m in submodules if m in modules]
                targets = named if len(named) == len(submodules) else [origin, *named]
            for target in targets:
                if target in modules and target != name:
                    graph.add_edge(name, target)
    return graph


def test_the_compiler_has_no_import_cycle():
    graph = _import_graph()
    assert graph.number_of_nodes() > 30
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles inside compiler/: {cycles}"


def test_passes_know_no_cache_and_no_backend():
    graph = _import_graph()
    passes = [m for m in graph if m.startswith("symgrad_compiler.passes")]
    reached = set().union(*(nx.descendants(graph, m) for m in passes))
    forbidden = {m for m in reached if m.startswith("symgrad_compiler.backends")}
    forbidden |= {"symgrad_compiler.cache", "symgrad_compiler.program"} & reached
    assert not forbidden, f"passes import {sorted(forbidden)}"


def _graph() -> tuple[ProgramGraph, Entry]:
    x = variable((4, 3), np.float64, name="x")
    ones = make_node("_ones", [], {"shape": (1, 1), "dtype": "float64"})
    two = make_node("_plus_scalar", [Entry(ones, 0)], {"scalar": 1.0})  # folds to 2
    scaled = make_node("broadcast_mul", [Entry(x, 0), Entry(two, 0)], {})
    y = make_node("tanh", [Entry(scaled, 0)])
    total = make_node("sum", [Entry(y, 0)], {"axis": (1,)})
    return ProgramGraph([x], [Entry(total, 0)]), Entry(total, 0)


def test_pipeline_is_every_pass_that_runs(capsys):
    graph, _ = _graph()
    passes = PassRun(graph)
    with compiler.settings.override(print_passes=True):
        passes.final()
    printed = re.findall(r"^--- after (\w+)$", capsys.readouterr().out, re.MULTILINE)
    assert printed == [name for name, _ in PIPELINE] == passes.ran
    assert "fold_constants" in printed and "reroute_shape_inputs" in printed


def test_each_pass_runs_once_however_often_asked():
    graph, _ = _graph()
    passes = PassRun(graph)
    simplified = passes.after("simplify")
    assert passes.ran == ["expand_composites", "fold_constants", "simplify"]
    assert passes.after("simplify") is simplified
    passes.final()
    passes.final()
    assert passes.ran == [name for name, _ in PIPELINE]
    with pytest.raises(ValueError, match="no pass named 'cse'"):
        passes.after("cse")


def test_compiled_program_lists_its_passes_when_asked(capsys):
    graph, _ = _graph()
    with compiler.settings.override(print_passes=True, compile="sync"):
        executable = compiler.compile_graph(graph, "numba")
        executable([np.ones((4, 3))])
    printed = re.findall(r"^--- after (\w+)$", capsys.readouterr().out, re.MULTILINE)
    assert printed == [name for name, _ in PIPELINE]


class _Recorder:
    """A toy backend: the interpreter over the fully passed graph, counting calls."""

    name = "toy"
    compiled = 0

    def compile(self, passes: PassRun) -> Interpreted:
        _Recorder.compiled += 1
        return Interpreted(passes.final())


@pytest.fixture
def toy_backend():
    compiler.register_backend("toy", _Recorder)
    try:
        yield "toy"
    finally:
        compiler.unregister_backend("toy")


def test_a_toy_backend_plugs_into_the_seam(toy_backend):
    graph, _ = _graph()
    before = _Recorder.compiled
    run = compiler.compile_graph(graph, toy_backend)
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    np.testing.assert_allclose(run([x])[0], np.tanh(2 * x).sum(axis=1))
    assert _Recorder.compiled == before + 1
    assert isinstance(run, compiler.Executable)
    compiler.set_backend(toy_backend)
    try:
        assert compiler.backend() == "toy"
    finally:
        compiler.set_backend(None)


def test_the_op_tests_run_through_a_toy_backend(toy_backend, monkeypatch):
    """The generated per-op checks take their backends from the compiler's
    registry: a registered backend is compared with the interpreter op by op."""
    from symgrad import op_testing

    monkeypatch.setenv("SYMGRAD_BACKEND", toy_backend)
    assert op_testing.gradient_backends() == ("interpreter", "toy")
    before = _Recorder.compiled
    checked = 0
    for opdef in op_testing.registered_ops():
        if opdef.kind != "elemwise" or opdef.test is None:
            continue
        op_testing.check_op_backends(opdef.name)
        checked += 1
    assert checked > 40 and _Recorder.compiled >= before + checked


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend must be one of"):
        compiler.set_backend("cuda")


_GENERIC = ["executable.py", "entry.py", "plan.py"]


@pytest.mark.parametrize("name", _GENERIC)
def test_no_op_name_in_the_numba_backends_generic_files(name):
    from symgrad_compiler.registry import OPS

    source = (COMPILER / "backends" / "numba" / name).read_text()
    literals = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert not literals & set(OPS), f"{name} names ops {sorted(literals & set(OPS))}"


def test_an_op_without_an_entry_form_warns_once_naming_it():
    from symgrad_compiler.backends.numba.lowerings import table as lowerings

    lowerings._warned.discard("_test_no_entry")
    with pytest.warns(RuntimeWarning, match="'_test_no_entry'"):
        lowerings.warn_step_by_step("_test_no_entry")
    with contextlib.redirect_stderr(io.StringIO()):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lowerings.warn_step_by_step("_test_no_entry")  # once only


def test_a_replayed_reshape_is_one_compiled_call():
    """Reshape has an entry form: a program using it stays on the one-call path."""
    x = variable((4, 6), np.float64, name="x")
    r = make_node("Reshape", [Entry(x, 0)], {"shape": (0, 2, -1)})
    y = make_node("exp", [Entry(r, 0)])
    s = make_node("sum", [Entry(y, 0)], {"axis": (2,)})
    run = compiler.compile_graph(ProgramGraph([x], [Entry(s, 0)]), "numba")
    arg = np.linspace(0, 1, 24).reshape(4, 6)
    with compiler.settings.override(compile="sync"):
        got = run([arg])[0]
    assert run.plan.entry is not None
    np.testing.assert_allclose(got, np.exp(arg.reshape(4, 2, 3)).sum(axis=2))
    np.testing.assert_allclose(run([np.ones((5, 6))])[0], np.exp(np.ones((5, 2, 3))).sum(axis=2))


def test_settings_override_restores():
    before = compiler.settings.current().compile_after
    with compiler.settings.override(compile_after=9) as now:
        assert now.compile_after == 9
    assert compiler.settings.current().compile_after == before
    with pytest.raises(TypeError, match="unknown settings"):
        with compiler.settings.override(compile_afer=1):
            pass


def test_replay_programs_come_from_the_program_cache():
    """mx.compile takes its programs from the compiler's cache: stats() counts
    them, a second function replaying the same symbol hits, and clear_cache
    forgets them."""
    import symgrad as mx

    compiler.clear_cache()
    x = mx.sym.var("x")
    symbol = mx.sym.sum(mx.sym.tanh(x) * x)
    first = mx.compile(symbol, wrt=["x"])
    first(x=np.linspace(-1, 1, 5))
    assert compiler.stats()["programs"] == 1 and compiler.stats()["misses"] == 1
    second = mx.compile(symbol, wrt=["x"])
    value, grads = second(x=np.linspace(-1, 1, 7))  # another size: the same program
    assert compiler.stats()["programs"] == 1 and compiler.stats()["hits"] >= 1
    t = np.linspace(-1, 1, 7)
    np.testing.assert_allclose(grads["x"], np.tanh(t) + t * (1 - np.tanh(t) ** 2))
    compiler.clear_cache()
    assert compiler.stats()["programs"] == 0
