"""Reliability: threads, memory, hostile and wrong inputs, anomaly detection.

An autodiff library is trusted when it never returns a silently wrong gradient,
never leaks, and fails with a message that says what to fix. Each test here
proves one such promise; ``docs/reliability.md`` lists them by hazard.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import subprocess
import sys
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
import symgrad_compiler as compiler
from symgrad import _deferred, autograd, nd
from symgrad.anomaly import AnomalyError, site
from symgrad.base import MXNetError

ROOT = Path(__file__).resolve().parents[1]
HERE = os.path.basename(__file__)


def _train(w0, x, steps, lr=0.05, after_first_backward=None):
    """A small training loop (record, backward, in-place update); returns w."""
    w = nd.array(w0, dtype=w0.dtype)
    w.attach_grad()
    data = nd.array(x, dtype=x.dtype)
    for step in range(steps):
        with autograd.record():
            loss = (nd.tanh(data * w + 0.5) * nd.sigmoid(data) + 0.5 * nd.exp(-w * w)).sum()
        loss.backward()
        if step == 0 and after_first_backward is not None:
            after_first_backward()
        w[:] = w - lr * w.grad
    return w.asnumpy()


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------


def test_threads_record_and_backward_their_own_graphs_sharing_one_compiled_program(compiled):
    threads, steps = 8, 200
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal((6, 5)) for _ in range(threads)]
    inputs = [rng.standard_normal((6, 5)) for _ in range(threads)]
    from symgrad_compiler.backends.numba import disk_cache as cache

    cache.reset_stats()
    barrier = threading.Barrier(threads)
    first: dict = {}
    results: list = [None] * threads
    errors: list = []

    def check_first_compilation():
        # every thread needed the (uncompiled) program at once: built and compiled once
        if barrier.wait() == 0:
            first.update(compiler.stats())
            (built,) = compiler.session.current().programs.programs()
            # the fused kernels and the whole-program entry, each compiled once
            plan = built.run_graph.plan
            first["kernels"] = len(plan.fused) + (plan.entry is not None)
        barrier.wait()

    def work(k):
        try:
            barrier.wait()
            results[k] = _train(
                starts[k], inputs[k], steps, after_first_backward=check_first_compilation
            )
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert first["misses"] == 1 and first["hits"] == threads - 1
    assert first["kernels_compiled"] + first["kernels_loaded"] == first["kernels"] >= 1
    # Later, another thread's in-place update may settle a thread's pending loss before
    # its backward, which asks for a variant program without that value: every
    # variant is still built once.
    stats = compiler.stats()
    assert stats["misses"] == stats["programs"] <= 2
    assert stats["hits"] + stats["misses"] == threads * steps
    for k in range(threads):
        np.testing.assert_allclose(
            results[k], _train(starts[k], inputs[k], steps), rtol=1e-13, atol=1e-13
        )


def test_threads_missing_different_programs_build_them_once_each(interpreted):
    threads = 8
    barrier = threading.Barrier(threads)
    errors: list = []

    def work(k):
        try:
            barrier.wait()
            x = nd.array(np.arange(3.0) + k, dtype="float64")
            x.attach_grad()
            for _ in range(20):
                with autograd.record():
                    y = nd.tanh(x) if k % 2 else nd.sin(x)  # two structures
                y.backward()
            expected = 1 - np.tanh(np.arange(3.0) + k) ** 2 if k % 2 else np.cos(np.arange(3.0) + k)
            np.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=1e-6)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert compiler.stats()["misses"] == 2


def test_recording_in_one_thread_does_not_record_in_another():
    seen = []
    with autograd.record():
        t = threading.Thread(target=lambda: seen.append(autograd.is_recording()))
        t.start()
        t.join()
    assert seen == [False]


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * resource.getpagesize()


@pytest.mark.slow
def test_training_loop_holds_steady_memory(interpreted):
    w = nd.array(np.full((64, 32), 0.1))
    w.attach_grad()
    x = nd.array(np.random.default_rng(0).standard_normal((64, 32)))

    def steps(count):
        for _ in range(count):
            with autograd.record():
                loss = (nd.tanh(x * w) * x).sum()
            loss.backward()
            w[:] = w - 0.001 * w.grad

    steps(2000)  # warm-up: allocator pools, caches, the one program
    gc.collect()
    before = _rss_bytes()
    steps(18000)
    gc.collect()
    grown = _rss_bytes() - before
    assert grown < 4 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over 18,000 iterations"
    assert compiler.stats()["programs"] == 1
    assert len(_deferred._pending) < 2048  # pruned as it grows


def test_graph_is_freed_after_backward_without_retain_graph():
    x = nd.array(np.ones(1000))
    x.attach_grad()
    with autograd.record():
        h = nd.tanh(x)
        h.asnumpy()  # read: its value now sits on the node
        loss = (h * 2).sum()
    node = weakref.ref(h._entry.node)
    value = weakref.ref(h._entry.node.value[0])
    loss.backward()
    assert node().value is None and node().freed
    del h
    gc.collect()
    assert value() is None  # the graph no longer keeps forward values
    with pytest.raises(MXNetError, match="freed by an earlier backward"):
        loss.backward()
    del loss
    gc.collect()
    assert node() is None  # nothing global keeps recorded nodes


def test_retain_graph_keeps_values_until_the_heads_are_dropped():
    x = nd.array(np.ones(10))
    x.attach_grad()
    with autograd.record():
        h = nd.exp(x)
        h.asnumpy()
        loss = h.sum()
    value = weakref.ref(h._entry.node.value[0])
    del h
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), np.e * np.ones(10), rtol=1e-6)
    gc.collect()
    assert value() is None


def test_unread_intermediate_values_are_never_kept():
    # Deferred values the gradient does not need are never materialised at all.
    x = nd.array(np.ones(10))
    x.attach_grad()
    with autograd.record():
        loss = (nd.exp(x) + 1).sum()
    nodes = compiler.topo_order([loss._entry])
    assert all(n.value is None for n in nodes if n.inputs)
    loss.backward()
    assert all(n.value is None for n in nodes if n.inputs)


def test_values_of_a_recording_without_variables_are_not_kept():
    x = nd.array(np.ones(10))
    with autograd.record():
        y = nd.exp(x)  # no input has history: nothing is recorded
    assert y._entry is None


def test_custom_functions_do_not_accumulate_programs_or_saved_arrays(interpreted):
    class Scale(autograd.Function):
        def forward(self, x):
            self.save_for_backward(nd.array(np.ones(10_000)))
            return x * 3

        def backward(self, dy):
            return dy * 3

    x = nd.array([1.0, 2.0])
    x.attach_grad()
    functions = []
    for _ in range(50):
        f = Scale()
        functions.append(weakref.ref(f))
        with autograd.record():
            y = f(x).sum()
        y.backward()
        del f, y
    gc.collect()
    np.testing.assert_allclose(x.grad.asnumpy(), [3, 3])
    assert compiler.stats()["programs"] == 0  # a per-call callback is never cached
    assert all(ref() is None for ref in functions)


def _record_distinct(k):
    x = nd.array(np.ones(3))
    x.attach_grad()
    with autograd.record():
        y = x
        for _ in range(k + 1):  # k+1 chained ops: a distinct structure per k
            y = nd.tanh(y)
    y.backward()


def test_program_cache_evicts_least_recently_used(interpreted):
    previous = compiler.set_cache_limit(entries=2)
    try:
        _record_distinct(0)
        _record_distinct(1)
        _record_distinct(0)  # a hit: now the most recently used
        _record_distinct(2)  # evicts structure 1, not 0
        stats = compiler.stats()
        assert stats["programs"] == 2 and stats["evictions"] == 1
        hits = stats["hits"]
        _record_distinct(0)
        assert compiler.stats()["hits"] == hits + 1
        _record_distinct(1)
        assert compiler.stats()["misses"] == 4
    finally:
        compiler.set_cache_limit(**previous)


def test_program_cache_byte_bound(interpreted):
    previous = compiler.set_cache_limit(bytes=1)
    try:
        for k in range(5):
            _record_distinct(k)
        stats = compiler.stats()
        assert stats["programs"] == 1 and stats["evictions"] == 4  # the newest stays
        assert stats["program_bytes"] > 1
    finally:
        compiler.set_cache_limit(**previous)
    with pytest.raises(ValueError, match="at least one"):
        compiler.set_cache_limit(entries=0)
    assert compiler.cache_limits() == previous


def test_program_cache_limits_from_the_environment():
    env = dict(
        os.environ,
        SYMGRAD_PROGRAM_CACHE_ENTRIES="7",
        SYMGRAD_PROGRAM_CACHE_BYTES="12345",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", "import symgrad_compiler as c; print(c.cache_limits())"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.stdout.strip() == "{'entries': 7, 'bytes': 12345}", done.stderr


# ---------------------------------------------------------------------------
# hostile and wrong inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_nan_and_inf_propagate_as_numpy_would(backend, request):
    request.getfixturevalue(backend)
    values = np.array([np.nan, np.inf, -np.inf, 2.0, 0.0])
    x = nd.array(values, dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = (x * x + nd.tanh(x)).sum()
    y.backward()
    with np.errstate(all="ignore"):
        expected = 2 * values + (1 - np.tanh(values) ** 2)
    np.testing.assert_array_equal(x.grad.asnumpy(), expected)
    assert np.isnan(y.asscalar())
    np.testing.assert_array_equal(x.asnumpy(), values)


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_a_signed_zero_scalar_is_not_taken_for_the_other(backend, request):
    # -0.0 == 0.0 in Python, but x / -0.0 is -inf: a program made for one scalar
    # (found by key, or by the step template) must not run for the other
    request.getfixturevalue(backend)
    x = nd.array([1.0, 2.0], dtype="float64")
    x.attach_grad()
    for scalar, sign in [(0.0, 1), (-0.0, -1), (0.0, 1), (-0.0, -1), (-0.0, -1)]:
        with autograd.record():
            y = (x / scalar + x).sum()
        y.backward()
        np.testing.assert_array_equal(x.grad.asnumpy(), [sign * np.inf] * 2)
        assert y.asscalar() == sign * np.inf


def test_a_nan_scalar_finds_its_program_again(compiled, monkeypatch):
    # float("nan") != float("nan"): keyed by a fresh NaN each step, the program
    # was built (and compiled) anew on every backward; and its kernel failed to
    # compile (`nan` written into the generated source), so it ran on the
    # interpreter with a warning
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    x = nd.array([1.0, 2.0], dtype="float64")
    x.attach_grad()
    compiler.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            with autograd.record():
                y = (x * 2.0 + x * float("nan") + x * float("inf")).sum()
            y.backward()
            assert np.isnan(x.grad.asnumpy()).all() and np.isnan(y.asscalar())
    assert compiler.stats()["misses"] == 1


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_gradients_of_integer_or_boolean_arrays_are_a_clear_error(dtype):
    x = nd.array(np.array([1, 0, 1]), dtype=dtype)
    with pytest.raises(MXNetError, match=f"floating-point array, not {dtype}"):
        x.attach_grad()
    assert x.grad is None and x._entry is None
    np.testing.assert_array_equal(x.asnumpy(), np.array([1, 0, 1]).astype(dtype))
    x.attach_grad(grad_req="null")  # marking without a gradient stays allowed


def test_integer_constants_mixed_into_a_float_op_are_refused():
    w = nd.array([1.0, 2.0])
    w.attach_grad()
    ints = nd.array([1, 2], dtype="int32")
    with autograd.record():
        with pytest.raises(MXNetError, match="dtypes differ: float32, int32"):
            w * ints
        y = (w * ints.astype("float32")).sum()  # what the message asks for
    y.backward()
    np.testing.assert_array_equal(w.grad.asnumpy(), [1, 2])


def test_mixed_float_dtypes_in_one_op_are_refused_and_nothing_is_recorded():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    other = nd.array([1.0, 2.0], dtype="float64")
    for record in (True, False):
        with autograd.record() if record else autograd.pause():
            with pytest.raises(MXNetError, match="dtypes differ: float32, float64"):
                x * other
    assert x._entry.node.is_variable
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_zero_size_arrays(backend, request):
    request.getfixturevalue(backend)
    x = nd.zeros((0, 3))
    x.attach_grad()
    with autograd.record():
        y = (nd.tanh(x) * 2).sum()
    y.backward()
    assert x.grad.shape == (0, 3)
    assert y.asnumpy().tolist() == [0.0]


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_zero_dimensional_arrays(backend, request):
    request.getfixturevalue(backend)
    x = nd.array(np.float64(0.5), dtype="float64")
    x.attach_grad()
    with _maybe_warns():  # a 0-d loop is left to the interpreter (with a warning)
        with autograd.record():
            y = nd.tanh(x) * x
        y.backward()
    assert x.grad.shape == ()
    np.testing.assert_allclose(x.grad.asnumpy(), (1 - np.tanh(0.5) ** 2) * 0.5 + np.tanh(0.5))


@contextlib.contextmanager
def _maybe_warns():
    """Allows (does not require) the compiler's fall-back warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_non_contiguous_and_negative_stride_inputs(backend, request):
    request.getfixturevalue(backend)
    base = np.arange(48, dtype=np.float64).reshape(6, 8) / 10
    views = [base[:, ::2][::-1], base.T, base[::-2, 1::3]]
    for view in views:
        w = nd.array(np.ones(view.shape), dtype="float64")
        w.attach_grad()
        constant = nd.array(view, dtype="float64").T.T  # eager transposes: strided views
        with autograd.record():
            y = (nd.tanh(w * constant) * nd.array(view, dtype="float64")).sum()
        y.backward()
        expected = (1 - np.tanh(view) ** 2) * view * view
        np.testing.assert_allclose(w.grad.asnumpy(), expected, rtol=1e-12)
        np.testing.assert_array_equal(view, base[:, ::2][::-1] if view is views[0] else view)


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_huge_rank(backend, request):
    request.getfixturevalue(backend)
    shape = (1,) * 30 + (2, 3)
    values = np.linspace(-1, 1, 6).reshape(shape)
    x = nd.array(values, dtype="float64")
    x.attach_grad()
    with _maybe_warns():  # 32 nested loops exceed Python's block limit: interpreter
        with autograd.record():
            y = (nd.tanh(x) * x).sum()
        y.backward()
    expected = (1 - np.tanh(values) ** 2) * values + np.tanh(values)
    np.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=1e-12)


def test_attach_grad_on_an_array_in_a_recorded_graph_makes_it_a_new_leaf():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 2
        y.attach_grad()  # as in MXNet: y's history is cut, gradients stop at y
        z = (y * 3).sum()
    z.backward()
    np.testing.assert_array_equal(y.grad.asnumpy(), [3, 3])
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])
    np.testing.assert_array_equal(y.asnumpy(), [2, 4])


def test_attach_grad_again_after_recording_still_gives_the_right_gradient():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = (x * x).sum()
    x.attach_grad()  # a new buffer; the recorded graph writes into it
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [2, 4])


@pytest.mark.parametrize("write", ["setitem", "iadd", "copyto"])
def test_writing_a_variable_after_recording_is_an_error_at_backward(write):
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = (x * x).sum()
    if write == "setitem":
        x[:] = 10
    elif write == "iadd":
        x += 1
    else:
        nd.array([5.0, 5.0]).copyto(x)
    with pytest.raises(MXNetError, match="modified in place afterwards"):
        y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])  # nothing written
    assert y.asscalar() == 5.0  # the forward value was computed before the write
    with autograd.record():  # recording again after the write is fine
        y = (x * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), 2 * x.asnumpy())


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_writing_a_constant_after_recording_keeps_the_gradient_right(backend, request):
    request.getfixturevalue(backend)
    w = nd.array([1.0, 1.0, 1.0], dtype="float64")
    w.attach_grad()
    c = nd.array([1.0, 2.0, 3.0], dtype="float64")
    with autograd.record():
        y = (nd.tanh(w * c) * c).sum()  # c is read twice: two leaves share its buffer
    c[:] = 100  # the graph keeps a copy of the old values
    y.backward()
    old = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(w.grad.asnumpy(), (1 - np.tanh(old) ** 2) * old * old, rtol=1e-12)
    np.testing.assert_array_equal(c.asnumpy(), [100, 100, 100])


def test_updating_parameters_in_place_between_iterations_is_fine():
    np.testing.assert_allclose(
        _train(np.ones((2, 2)), np.ones((2, 2)), 3), _train(np.ones((2, 2)), np.ones((2, 2)), 3)
    )


@pytest.mark.parametrize("scope", ["pause", "record", "predict_mode"])
def test_backward_inside_pause_or_record_computes_the_same_gradients(scope):
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = (x * x * x).sum()
    with getattr(autograd, scope)():
        state = (autograd.is_recording(), autograd.is_training())
        y.backward()
        assert (autograd.is_recording(), autograd.is_training()) == state
    np.testing.assert_array_equal(x.grad.asnumpy(), [3, 12])


class _TwoGradients(autograd.Function):
    def forward(self, x):
        return x * 2

    def backward(self, dy):
        return dy * 2, dy


class _WrongShape(autograd.Function):
    def forward(self, x):
        return x * 2

    def backward(self, dy):
        return nd.ones((5,))


class _NotAnArray(autograd.Function):
    def forward(self, x):
        return x * 2

    def backward(self, dy):
        return 3


@pytest.mark.parametrize(
    "function, message",
    [
        (_TwoGradients, r"returned 2 gradient\(s\) for 1 input\(s\)"),
        (_WrongShape, r"gradient 0 has shape \(5,\), its input has shape \(2,\)"),
        (_NotAnArray, "must return NDArrays"),
    ],
)
def test_function_backward_with_wrong_gradients_is_a_clear_error(function, message):
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    x.grad[:] = 7
    with autograd.record():
        y = function()(x).sum()
    with pytest.raises(MXNetError, match=message):
        y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [7, 7])  # nothing written


@pytest.mark.parametrize("op", ["mul", "Dropout"])
def test_second_head_after_its_shared_graph_was_freed_is_a_clear_error(op):
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    c = nd.array([3.0, 4.0])
    with autograd.record():
        h = x * c if op == "mul" else nd.Dropout(x, p=0.0)
        a, b = h.sum(), (h * 2).sum()
    a.backward()
    kept = x.grad.asnumpy()
    with pytest.raises(MXNetError, match="freed by an earlier backward of another head"):
        b.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), kept)
    with autograd.record():  # the message's remedy
        h = x * c if op == "mul" else nd.Dropout(x, p=0.0)
        a, b = h.sum(), (h * 2).sum()
    autograd.backward([a, b])
    np.testing.assert_array_equal(x.grad.asnumpy(), 3 * (c.asnumpy() if op == "mul" else 1))


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"nodes": [{"op": "tanh", "name": "a", "inputs": [[0, 0, 0]]}], "heads": [[0, 0, 0]]}',
            "cycle",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "tanh", "name": "t", "inputs": [[-1, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "node -1",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "tanh", "name": "t", "inputs": [[0, 0, 0]]}], "heads": [[1, 2, 0]]}',
            "has 1 output",
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "tanh", "name": "t", "inputs": [[0, 0, 0]]}], "heads": [[1, 0, 0]], '
            '"arg_nodes": [7]}',
            None,
        ),
        (
            '{"nodes": [{"op": "null", "name": "x", "inputs": []},'
            '{"op": "broadcast_add", "name": "t", "inputs": [[0, 0, 0]]}], "heads": [[1, 0, 0]]}',
            "expects 2 input",
        ),
    ],
)
def test_more_bad_json_is_refused_clearly(text, message):
    if message is None:  # bookkeeping lists MXNet recomputes are ignored, as MXNet does
        loaded = mx.sym.load_json(text)
        assert loaded.list_arguments() == ["x"]
        np.testing.assert_allclose(
            loaded.eval(x=nd.array([0.5]))[0].asnumpy(), np.tanh([0.5]), rtol=1e-6
        )
        return
    with pytest.raises(mx.base.MXNetError, match=message):
        mx.sym.load_json(text)


def test_truncated_json_file_is_refused_clearly(tmp_path):
    x = mx.sym.var("x")
    text = mx.sym.tanh(x * 2).tojson()
    path = tmp_path / "model.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(mx.base.MXNetError, match="not valid JSON"):
        mx.sym.load(str(path))


# ---------------------------------------------------------------------------
# anomaly detection
# ---------------------------------------------------------------------------


def _line_of(text: str) -> int:
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if text in line and "_line_of" not in line:
            return number
    raise AssertionError(text)


def test_anomaly_names_the_op_and_line_whose_forward_made_inf():
    x = nd.array([0.0, 1.0])
    x.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            y = nd.exp(x)
            z = (nd.log(x) * y).sum()  # log(0) = -inf: the first bad value
        with pytest.raises(AnomalyError) as caught:
            z.backward()
    error = caught.value
    assert error.op == "log" and error.phase == "forward"
    assert f"{HERE}:{_line_of('log(0) = -inf')}" in str(error)
    assert "produced -inf" in str(error)
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])
    assert not autograd.is_anomaly_enabled()


def test_anomaly_names_the_op_whose_gradient_made_inf():
    x = nd.array([0.0, 4.0])
    x.attach_grad()
    previous = autograd.set_detect_anomaly(True)
    try:
        with autograd.record():
            y = nd.sqrt(x)  # finite forward, infinite gradient at 0
            z = (y * 2).sum()
        with pytest.raises(AnomalyError, match="gradient of op 'sqrt'") as caught:
            z.backward()
    finally:
        autograd.set_detect_anomaly(previous)
    assert caught.value.phase == "gradient"
    assert caught.value.site.startswith(__file__ + f":{_line_of('finite forward, infinite')}")


def test_anomaly_names_the_first_reader_of_a_nan_input():
    x = nd.array([np.nan, 1.0])
    x.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            z = nd.tanh(x).sum()
        with pytest.raises(AnomalyError, match=r"input of shape \(2,\) holds nan.*'tanh'"):
            z.backward()


def test_anomaly_in_a_custom_function_backward():
    class Bad(autograd.Function):
        def forward(self, x):
            return x * 1

        def backward(self, dy):
            return dy / nd.zeros(dy.shape)

    x = nd.array([1.0])
    x.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            z = Bad()(x).sum()
        with pytest.raises(AnomalyError, match="_CustomFunction"):
            z.backward()


def test_anomaly_mode_gives_the_same_gradients_when_all_is_finite():
    def run():
        x = nd.array([0.5, 1.5])
        x.attach_grad()
        with autograd.record():
            z = (nd.tanh(x) * nd.exp(x)).sum()
        z.backward()
        return x.grad.asnumpy()

    plain = run()
    with autograd.detect_anomaly():
        np.testing.assert_array_equal(run(), plain)
        x = nd.array([1.0])
        x.attach_grad()
        with autograd.record():
            z = (x * 2).sum()
        grads = autograd.grad(z, [x])
        np.testing.assert_array_equal(grads[0].asnumpy(), [2])


def test_call_sites_are_captured_only_in_anomaly_mode():
    x = nd.array([1.0])
    x.attach_grad()
    with autograd.record():
        y = nd.tanh(x)
    assert site(y._entry.node) is None
    with autograd.detect_anomaly(), autograd.record():
        y = nd.tanh(x)
    assert site(y._entry.node).endswith("y = nd.tanh(x)")
