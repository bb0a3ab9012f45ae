"""Tiering by cost (issue 17): a program compiles once it has been called twice *and*
the session's programs have spent ``compile_after_seconds`` on the interpreter, so
that a short script never pays numba's start-up in its own process; asking for
compiled code (``wait_for_compilation``, a program's ``wait``) starts what only
the time held back (compiler/backends/numba/tiering.py)."""

from __future__ import annotations

import textwrap
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest
from fresh_process import report_of

import symgrad as mx
import symgrad_compiler
from symgrad_compiler import session, settings
from symgrad_compiler.backends.numba import tiering


class FakeProgram:
    """A Compilable that records when tiering starts it."""

    def __init__(self) -> None:
        self.started_with: list = []

    def start_compiling(self, args) -> None:
        self.started_with.append(args)


@pytest.fixture
def rule():
    with session.fresh(), settings.override(compile_after=2, compile_after_seconds=1.0):
        yield tiering.state()


def test_a_program_called_once_never_compiles(rule):
    program = FakeProgram()
    tiering.called(program, calls=1, seconds=5.0, args=["a"])
    assert program.started_with == [] and not rule.held


def test_a_repeated_program_waits_for_the_sessions_interpreted_time(rule):
    first, second = FakeProgram(), FakeProgram()
    tiering.called(first, 1, 0.3, ["f1"])
    tiering.called(first, 2, 0.3, ["f2"])
    tiering.called(second, 1, 0.1, ["s1"])
    tiering.called(second, 2, 0.1, ["s2"])
    assert first.started_with == [] == second.started_with
    assert set(rule.held) == {first, second}
    assert rule.interpreted_seconds == pytest.approx(0.8)
    # the time is reached on first's third call: it starts, and the held one too
    tiering.called(first, 3, 0.25, ["f3"])
    assert first.started_with == [["f3"]] and second.started_with == [["s2"]]
    assert not rule.held and rule.paid


def test_once_compiling_began_the_count_alone_decides(rule):
    tiering.called(FakeProgram(), 2, 1.5, ["x"])
    later = FakeProgram()
    tiering.called(later, 1, 0.0, ["l1"])
    tiering.called(later, 2, 0.0, ["l2"])
    assert later.started_with == [["l2"]]


def test_asking_for_compiled_code_starts_what_the_time_held_back(rule):
    first, second = FakeProgram(), FakeProgram()
    tiering.called(first, 2, 0.01, ["f"])
    tiering.called(second, 2, 0.01, ["s"])
    tiering.start_held(first)  # a program's own wait()
    assert first.started_with == [["f"]] and second.started_with == []
    tiering.start_held()  # wait_for_compilation()
    assert second.started_with == [["s"]] and not rule.held


def test_a_held_program_is_not_kept_alive(rule):
    program = FakeProgram()
    tiering.called(program, 2, 0.01, ["f"])
    del program
    assert not rule.held


def test_a_held_program_keeps_the_types_of_its_arguments_not_the_arrays(rule):
    program = FakeProgram()
    kept = np.arange(6.0).reshape(2, 3)
    dropped = np.asfortranarray(np.ones((4, 5), np.float32))
    reference = weakref.ref(dropped)
    tiering.called(program, 2, 0.01, [kept, dropped])
    del dropped
    assert reference() is None  # the caller's array is not kept alive
    tiering.start_held()
    ((again, zeros),) = program.started_with
    assert again is kept  # still alive: compiled on itself
    assert zeros.shape == (4, 5) and zeros.dtype == np.float32 and zeros.flags.f_contiguous
    assert not zeros.any()


def test_programs_held_and_started_from_several_threads(rule):
    programs = [FakeProgram() for _ in range(200)]
    errors = []

    def hold_and_start(mine):
        try:
            for program in mine:
                tiering.called(program, 2, 0.0, [])
                tiering.start_held()
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    workers = [threading.Thread(target=hold_and_start, args=(programs[k::4],)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    assert all(len(p.started_with) == 1 for p in programs)  # each started once


def _background(monkeypatch, tmp_path: Path, seconds: float) -> None:
    current = settings.current()
    monkeypatch.setattr(current, "backend", "compiled")
    monkeypatch.setattr(current, "compile", "background")
    monkeypatch.setattr(current, "compile_after_seconds", seconds)
    monkeypatch.setattr(current, "cache_dir", tmp_path / "kernels")


def test_a_compiled_program_is_held_then_compiled_on_request(monkeypatch, tmp_path):
    _background(monkeypatch, tmp_path, seconds=1e9)
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal(20), "w": rng.standard_normal(20)}
    x, w = mx.sym.var("x"), mx.sym.var("w")
    with session.fresh():
        f = mx.compile(mx.sym.sum(mx.sym.sin(x * w) * 2.5), wrt=["x", "w"])
        first = [f(**inputs) for _ in range(4)]
        (graph,) = f._graphs.values()
        program = graph.runner
        assert program._compiling is None and not program._ready
        assert program in tiering.state().held
        symgrad_compiler.wait_for_compilation()
        assert program._ready
        last = f(**inputs)
    np.testing.assert_allclose(last[0], first[0][0], rtol=1e-12)
    for name in "xw":
        np.testing.assert_allclose(last[1][name], first[0][1][name], rtol=1e-12)


# The d2l softmax regression, short: it interprets for far less than a second, so
# with the default settings nothing compiles and numba's machinery never loads.
SHORT_SCRIPT = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    import symgrad as mx
    from symgrad import nd, autograd

    rng = np.random.default_rng(0)
    X = nd.array(rng.random((64 * 20, 784)).astype(np.float32))
    y = nd.array(rng.integers(0, 10, 64 * 20).astype(np.float32))
    W, b = nd.array(rng.normal(0, 0.01, (784, 10)).astype(np.float32)), nd.zeros(10)
    W.attach_grad(); b.attach_grad()
    for i in range(20):
        Xb, yb = X[i * 64:(i + 1) * 64], y[i * 64:(i + 1) * 64]
        with autograd.record():
            Z = nd.exp(nd.dot(Xb, W) + b)
            l = -nd.pick(Z / Z.sum(axis=1, keepdims=True), yb).log()
        l.backward()
        for p in (W, b):
            p[:] = p - 0.1 * p.grad / 64
    float(l.sum().asscalar())
    loaded = sorted(m for m in sys.modules if m.startswith(
        ("symgrad_compiler.backends.numba.background", "symgrad_compiler.backends.numba.plan",
         "numba.np.arraymath")))
    print("REPORT " + json.dumps(loaded))
""")


def test_a_short_script_never_loads_the_compiler(tmp_path):
    # SYMGRAD_COMPILE_AFTER_SECONDS as a user has it: the default
    loaded = report_of(SHORT_SCRIPT, tmp_path, SYMGRAD_COMPILE_AFTER_SECONDS=None)
    assert loaded == []
    assert not (tmp_path / "kernels").exists() or not any((tmp_path / "kernels").iterdir())
