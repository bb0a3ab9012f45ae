"""Replay tiering (issue 17): a replayed program (``mx.compile``, an executor, a
hybridized block's forward outside ``record()``) answers its first calls on the
interpreter while numba compiles its kernels in the compiler process
(compiler/backends/numba/subprocess_compile.py), then switches to them, with the
same numbers; a warm disk cache loads in this process without a compiler process;
where no compiler process can run, the background thread compiles as before.

The end-to-end cases run in fresh processes with an empty kernel cache, so that a
compilation really is in progress while the first calls are answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from fresh_process import report_of

import symgrad as mx
import symgrad_compiler
from symgrad_compiler.backends.numba import background, disk_cache, subprocess_compile

ROOT = Path(__file__).resolve().parent.parent

# Three replayed programs, each called three times, then compiled: the results of
# every call, the compilation state after the first calls, and the counters.
SCRIPT = textwrap.dedent(r"""
    import json, sys, time
    import numpy as np
    import symgrad as mx
    import symgrad_compiler
    from symgrad_compiler import session, wait_for_compilation
    from symgrad_compiler.backends.numba import background, subprocess_compile

    rng = np.random.default_rng(5)
    report = {"calls": {}, "pending_after_first_calls": {}}
    # (this script imports the background compiler itself, to read its state)
    COMPILE_MODULES = tuple(f"symgrad_compiler.backends.numba.{name}" for name in
                            ("plan", "entry", "lowerings", "codegen"))

    def replay_programs():
        return [p.run_graph for p in session.current().programs._programs.values()
                if hasattr(p, "run_graph")]

    def first_calls(name, call):
        results = []
        for _ in range(3):
            start = time.perf_counter()
            results.append(call())
            report["calls"].setdefault(name, []).append(time.perf_counter() - start)
            report.setdefault("loaded_after_first_call", sorted(
                m for m in sys.modules if m == "numba" or m.startswith(COMPILE_MODULES)))
        report["pending_after_first_calls"][name] = bool(background._pending)
        return results

    # mx.compile: a W2-shaped MLP step in float64
    X, y = mx.sym.var("X"), mx.sym.var("y")
    W1, b1, W2 = mx.sym.var("W1"), mx.sym.var("b1"), mx.sym.var("W2")
    h = mx.sym.tanh(mx.sym.broadcast_add(mx.sym.dot(X, W1), b1))
    loss = -mx.sym.mean(mx.sym.pick(mx.sym.log_softmax(mx.sym.dot(h, W2), axis=1), y, axis=1))
    inputs = {"X": rng.random((16, 12)), "y": rng.integers(0, 4, 16).astype(np.float64),
              "W1": rng.standard_normal((12, 8)) / 4, "b1": 0.1 * rng.standard_normal(8),
              "W2": rng.standard_normal((8, 4)) / 3}
    f = mx.compile(loss, wrt=["W1", "b1", "W2"])
    flat = lambda r: [np.asarray(r[0]).tolist()] + [r[1][k].tolist() for k in ("W1", "b1", "W2")]
    compiled = [flat(r) for r in first_calls("compile", lambda: f(**inputs))]

    # an executor: forward in training mode and backward
    a, w = mx.sym.var("a"), mx.sym.var("w")
    out = mx.sym.sum(mx.sym.sigmoid(a * w) * mx.sym.exp(-a))
    args = {"a": mx.nd.array(rng.standard_normal(10), dtype="float64"),
            "w": mx.nd.array(rng.standard_normal(10), dtype="float64")}
    grads = {"a": mx.nd.zeros(10, dtype="float64"), "w": mx.nd.zeros(10, dtype="float64")}
    exe = out.bind(mx.cpu(), args=args, args_grad=grads)
    def step():
        value = exe.forward(is_train=True)[0].asnumpy().tolist()
        exe.backward()
        return [value, grads["a"].asnumpy().tolist(), grads["w"].asnumpy().tolist()]
    executed = first_calls("executor", step)

    # a hybridized block's forward outside record()
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(6, activation="tanh", in_units=5), mx.gluon.nn.Dense(3, in_units=6))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = mx.nd.array(rng.standard_normal((4, 5)).astype(np.float32))
    hybrid = [r.asnumpy().tolist() for r in first_calls("hybrid", lambda: net(x))]

    report["ready_after_first_calls"] = [p._ready for p in replay_programs()]
    wait_for_compilation()
    report["ready_after_wait"] = [p._ready for p in replay_programs()]
    report["results"] = {
        "compile": compiled + [flat(f(**inputs))],
        "executor": executed + [step()],
        "hybrid": hybrid + [net(x).asnumpy().tolist()],
    }
    report["inputs"] = {k: v.tolist() for k, v in inputs.items()}
    report["stats"] = symgrad_compiler.stats()
    report["subprocess"] = subprocess_compile.stats()
    print("REPORT " + json.dumps(report), flush=True)
""")


@pytest.fixture(scope="module")
def cold_and_warm(tmp_path_factory) -> tuple[dict, dict]:
    """The script with an empty kernel cache, then again with the cache it left."""
    cache = tmp_path_factory.mktemp("tiering")
    return report_of(SCRIPT, cache, timeout=1200), report_of(SCRIPT, cache, timeout=1200)


def _w2_reference(inputs: dict) -> list:
    """Value and gradients (W1, b1, W2) of the script's MLP loss, in float64 numpy."""
    X, W1, b1, W2 = (np.array(inputs[k]) for k in ("X", "W1", "b1", "W2"))
    labels = np.array(inputs["y"]).astype(int)
    h = np.tanh(X @ W1 + b1)
    z = h @ W2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    rows = np.arange(len(labels))
    value = -np.log(p[rows, labels]).mean()
    dz = p.copy()
    dz[rows, labels] -= 1
    dz /= len(labels)
    dh = dz @ W2.T * (1 - h * h)
    return [value, X.T @ dh, dh.sum(0), h.T @ dz]


@pytest.mark.slow
def test_replay_answers_its_first_calls_while_it_compiles_elsewhere(cold_and_warm):
    cold, _ = cold_and_warm
    # every program's first three calls were answered while compilation was still
    # in progress: nothing waited for it
    assert all(cold["pending_after_first_calls"].values()), cold["pending_after_first_calls"]
    assert len(cold["ready_after_first_calls"]) >= 3
    assert not any(cold["ready_after_first_calls"])
    assert all(cold["ready_after_wait"])
    # numba compiled in the compiler process; this process only loaded the kernels
    assert cold["subprocess"]["programs"] >= 3
    assert cold["subprocess"]["kernels_compiled"] >= 3
    assert cold["stats"]["kernels_compiled"] == 0
    assert cold["stats"]["kernels_loaded"] >= 3
    # the first call needed neither numba nor the plan and its generators: they
    # load when the program first compiles
    assert cold["loaded_after_first_call"] == [], cold["loaded_after_first_call"]


@pytest.mark.slow
def test_replay_results_are_the_same_before_and_after_the_switch(cold_and_warm):
    cold, warm = cold_and_warm
    for report in (cold, warm):
        for name, results in report["results"].items():
            first, last = results[0], results[-1]  # the interpreter's, the kernels'
            for got, want in zip(last, first):
                rtol = 1e-5 if name == "hybrid" else 1e-12  # the block is float32
                np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=name)
        reference = _w2_reference(report["inputs"])
        for got, want in zip(report["results"]["compile"][-1], reference):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_a_warm_cache_loads_here_without_a_compiler_process(cold_and_warm):
    _, warm = cold_and_warm
    assert warm["subprocess"]["programs"] == 0 and warm["subprocess"]["start_seconds"] == 0
    assert warm["stats"]["kernels_compiled"] == 0
    assert warm["stats"]["kernels_loaded"] >= 3
    assert all(warm["ready_after_wait"])


def _tanh_program(other=mx.sym.cos):
    """A small program; each test takes another ``other`` op, so that no test finds
    its kernels compiled already (by this process, for an earlier test)."""
    x, w = mx.sym.var("x"), mx.sym.var("w")
    return mx.compile(mx.sym.sum(mx.sym.tanh(x * w) * 1.5 + other(w)), wrt=["x", "w"])


def _compiled_backend(monkeypatch, tmp_path: Path) -> None:
    settings = symgrad_compiler.settings.current()
    monkeypatch.setattr(settings, "backend", "compiled")
    monkeypatch.setattr(settings, "compile", "background")
    monkeypatch.setattr(settings, "disk_cache", True)
    monkeypatch.setattr(settings, "cache_dir", tmp_path / "kernels")
    symgrad_compiler.clear_cache()


def test_without_a_compiler_process_the_background_thread_compiles(monkeypatch, tmp_path):
    _compiled_backend(monkeypatch, tmp_path)
    monkeypatch.setattr(subprocess_compile, "_compiler", None)
    monkeypatch.setattr(subprocess_compile, "_cannot_start", False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    before = subprocess_compile.stats()
    compiled_before = disk_cache.stats()["kernels_compiled"]
    rng = np.random.default_rng(2)
    inputs = {"x": rng.standard_normal(50), "w": rng.standard_normal(50)}
    f = _tanh_program()
    first = f(**inputs)
    f(**inputs)  # starts the compilation
    symgrad_compiler.wait_for_compilation()
    (graph,) = f._graphs.values()
    assert graph.runner._ready and subprocess_compile._cannot_start
    assert subprocess_compile.stats()["programs"] == before["programs"]
    assert disk_cache.stats()["kernels_compiled"] > compiled_before  # here, on the thread
    last = f(**inputs)
    np.testing.assert_allclose(last[0], first[0], rtol=1e-12)
    for name in "xw":
        np.testing.assert_allclose(last[1][name], first[1][name], rtol=1e-12)
    symgrad_compiler.clear_cache()


def test_a_graph_that_cannot_be_pickled_is_not_sent(monkeypatch, tmp_path):
    _compiled_backend(monkeypatch, tmp_path)

    class Unpicklable:
        module_text = "def answer():\n    return 42\n"
        graph = staticmethod(lambda: None)  # a lambda: pickle refuses it

    assert subprocess_compile.compile_elsewhere(Unpicklable(), []) is (
        subprocess_compile.Outcome.UNAVAILABLE
    )


def test_no_disk_cache_means_no_compiler_process(monkeypatch, tmp_path):
    _compiled_backend(monkeypatch, tmp_path)
    monkeypatch.setattr(symgrad_compiler.settings.current(), "disk_cache", False)

    class Plan:
        module_text = "def answer():\n    return 42\n"
        graph = None

    assert subprocess_compile.compile_elsewhere(Plan(), []) is (
        subprocess_compile.Outcome.UNAVAILABLE
    )


def test_a_killed_compiler_process_leaves_the_program_on_the_interpreter(monkeypatch, tmp_path):
    _compiled_backend(monkeypatch, tmp_path)
    monkeypatch.setattr(subprocess_compile, "_compiler", None)
    monkeypatch.setattr(subprocess_compile, "_cannot_start", False)
    rng = np.random.default_rng(4)
    inputs = {"x": rng.standard_normal(30), "w": rng.standard_normal(30)}
    f = _tanh_program(mx.sym.arctan)
    first = f(**inputs)
    f(**inputs)  # starts the compilation in a new compiler process
    (graph,) = f._graphs.values()
    job = graph.runner._compiling
    assert job is not None
    while subprocess_compile._compiler is None and not job.done.is_set():
        job.wait(0.05)
    compiler = subprocess_compile._compiler
    assert compiler is not None and not job.done.is_set(), "the compilation ended too soon"
    compiler.process.kill()
    with pytest.warns(RuntimeWarning, match="compiler process died"):
        job.wait()
        symgrad_compiler.wait_for_compilation()
    compiler.process.wait()
    assert graph.runner._failed and not graph.runner._ready
    last = f(**inputs)  # the interpreter, with the same numbers
    np.testing.assert_allclose(last[0], first[0], rtol=1e-15)
    symgrad_compiler.clear_cache()


SAVE_SCRIPT = textwrap.dedent(r"""
    import os, signal, sys
    from pathlib import Path
    from symgrad_compiler.backends.numba.subprocess_compile import _ExitGuard, _WholeSaves

    class Cache:
        def save_overload(self, sig, data):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of a save
            Path(sys.argv[1], "index").write_text("index")
            Path(sys.argv[1], "data").write_text("data")

    _WholeSaves(Cache(), _ExitGuard()).save_overload(None, None)
    print("survived the save", flush=True)
""")


def test_sigterm_waits_for_a_cache_write_to_end(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SAVE_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == -signal.SIGTERM
    assert (tmp_path / "index").read_text() == "index"
    assert (tmp_path / "data").read_text() == "data"  # both files of the entry written
    assert "survived" not in done.stdout  # then the signal ended the process


def test_the_compiler_process_pickles_ops_by_name():
    x = mx.sym.var("x")
    graph = mx.sym.tanh(x * 2.0).entries[0].node
    payload = subprocess_compile._dumps(graph)
    import pickle

    copy = pickle.loads(payload)
    assert copy.op is graph.op  # the registry's own OpDef, not a copy
    assert copy.inputs[0].node.op is graph.inputs[0].node.op
    assert copy.attrs == graph.attrs and copy.types == graph.types


def test_background_module_state_is_reset_in_a_forked_child():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no compiler process, no pending jobs of the parent's
        ok = subprocess_compile._compiler is None and not background._pending
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


FIRST_CALL_SCRIPT = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    import symgrad as mx

    x, w = mx.sym.var("x"), mx.sym.var("w")
    f = mx.compile(mx.sym.sum(mx.sym.tanh(x * w) * mx.sym.exp(-w)), wrt=["x", "w"])
    rng = np.random.default_rng(3)
    inputs = {"x": rng.standard_normal(20), "w": rng.standard_normal(20)}
    value, grads = f(**inputs)
    prefix = "symgrad_compiler.backends.numba."
    loaded = sorted(m for m in sys.modules if m == "numba" or m.startswith(prefix))
    print("REPORT " + json.dumps({
        "loaded": loaded, "inputs": {k: v.tolist() for k, v in inputs.items()},
        "value": float(np.asarray(value).reshape(())),
        "grads": {k: v.tolist() for k, v in grads.items()},
    }), flush=True)
""")


def test_a_first_call_loads_no_compiler_machinery(tmp_path):
    """A program's first call runs on the interpreter: it imports numba's backend only
    as far as the executable needs (not numba, the plan, the entry generator, the
    lowerings or the background compiler, which compiling imports). With no
    bytecode cache these imports were a fifth of a W2 replay's first call."""
    report = report_of(FIRST_CALL_SCRIPT, tmp_path)
    prefix = "symgrad_compiler.backends.numba."
    assert "symgrad_compiler.backends.numba.executable" in report["loaded"]
    for name in ("plan", "entry", "lowerings", "background", "subprocess_compile", "codegen"):
        assert prefix + name not in report["loaded"], report["loaded"]
    assert "numba" not in report["loaded"]
    x, w = (np.array(report["inputs"][k]) for k in "xw")
    t, e = np.tanh(x * w), np.exp(-w)
    np.testing.assert_allclose(report["value"], np.sum(t * e), rtol=1e-13)
    np.testing.assert_allclose(report["grads"]["x"], (1 - t * t) * w * e, rtol=1e-13)
    np.testing.assert_allclose(report["grads"]["w"], (1 - t * t) * x * e - t * e, rtol=1e-13)


def test_the_replay_benchmark_times_one_forward_backward_as_its_first_call():
    """W5 times setup plus the first step: the replay column's setup compiles the
    symbol but runs nothing, so its first call is one forward+backward, as W5
    defines it (it used to be three: two warm-up calls in setup)."""
    sys.path.insert(0, str(ROOT))
    from bench.libs import symgrad_replay
    from bench.reference import REFERENCE
    from bench.workloads import ROW_BY_KEY, make_inputs

    inputs = make_inputs(ROW_BY_KEY["W2-128"])
    symgrad_compiler.clear_cache()
    step = symgrad_replay.w2(inputs)
    assert symgrad_compiler.stats()["misses"] == 0  # no program was asked for
    value, grads = step()
    assert symgrad_compiler.stats()["misses"] == 1
    want_value, want_grads = REFERENCE["W2"](inputs)
    np.testing.assert_allclose(np.asarray(value).reshape(()), want_value, rtol=1e-5)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)
    symgrad_compiler.clear_cache()
