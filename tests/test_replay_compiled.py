"""Symbol replay on the compiled backend: ``symgrad.compile`` and Executors run
fused numba programs and agree with the numpy interpreter and with recording the
same computation with autograd; random and stateful ops stay library steps."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
import symgrad_compiler as compiler
from symgrad import autograd, executor, nd
from symgrad_compiler import session, wait_for_compilation
from symgrad_compiler.backends.numba.executable import NumbaExecutable as CompiledProgram

RNG = np.random.default_rng(7)


def use(monkeypatch, backend: str) -> None:
    """Replay graphs built from now on run on ``backend`` (compiling synchronously)."""
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")


def w1_symbol():
    x, w, b = (mx.sym.var(name) for name in "xwb")
    return mx.sym.sum(mx.sym.tanh(x * w + b) * mx.sym.sigmoid(x) + 0.5 * mx.sym.exp(-x * x))


def w1_inputs(n: int, dtype=np.float64) -> dict[str, np.ndarray]:
    return {name: RNG.normal(size=n).astype(dtype) for name in "xwb"}


def w1_recorded(inputs):
    arrays = {k: nd.array(v, dtype=v.dtype) for k, v in inputs.items()}
    for array in arrays.values():
        array.attach_grad()
    with autograd.record():
        x, w, b = arrays["x"], arrays["w"], arrays["b"]
        f = (nd.tanh(x * w + b) * nd.sigmoid(x) + 0.5 * nd.exp(-x * x)).sum()
    f.backward()
    return f.asnumpy(), {k: a.grad.asnumpy() for k, a in arrays.items()}


def program_of(function) -> CompiledProgram:
    """The compiled program behind a ``symgrad.compile`` function (one signature)."""
    (graph,) = function._graphs.values()
    assert isinstance(graph.runner, CompiledProgram)
    return graph.runner


def fused_ops(program: CompiledProgram) -> list[str]:
    """Op names computed inside the program's fused kernels."""
    return [node.op.name for step in program.fused for node in step.node.attrs["body"].nodes()]


def library_ops(program: CompiledProgram) -> list[str]:
    return [step.node.op.name for step in program.steps if step not in program.fused]


# ---------------------------------------------------------------------------
# compile: values and gradients in one program
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compile_runs_w1_forward_and_backward_in_one_kernel(monkeypatch, dtype):
    inputs = w1_inputs(1000, dtype)
    use(monkeypatch, "interpreter")
    value_i, grads_i = mx.compile(w1_symbol(), wrt=["x", "w", "b"])(**inputs)
    use(monkeypatch, "compiled")
    function = mx.compile(w1_symbol(), wrt=["x", "w", "b"])
    value_c, grads_c = function(**inputs)
    value_r, grads_r = w1_recorded(inputs)

    program = program_of(function)
    assert len(program.steps) == 1 and len(program.fused) == 1  # one kernel, nothing else
    assert {"tanh", "sigmoid", "exp", "sum"} <= set(fused_ops(program))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value_c, value_i, rtol=rtol)
    np.testing.assert_allclose(value_c, value_r, rtol=rtol)
    for name in "xwb":
        assert grads_c[name].dtype == dtype
        np.testing.assert_allclose(grads_c[name], grads_i[name], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(grads_c[name], grads_r[name], rtol=rtol, atol=rtol)


def test_explain_shows_w1_value_and_gradients_fused_together(compiled):
    x, w, b = (mx.sym.var(name, shape=(16,)) for name in "xwb")
    f = mx.sym.sum(mx.sym.tanh(x * w + b) * mx.sym.sigmoid(x) + 0.5 * mx.sym.exp(-x * x))
    text = compiler.explain(f)
    assert text.count("= _fused(") == 1 and "def kernel0" in text and "def kernel1" not in text


def test_mlp_values_and_gradients_match_interpreter_and_autograd(monkeypatch):
    def model(m, data, w1, b1, w2, b2):
        h = m.Activation(m.FullyConnected(data, w1, b1, num_hidden=8), act_type="tanh")
        return m.mean(m.log_softmax(m.FullyConnected(h, w2, b2, num_hidden=3)) * 2.0)

    inputs = {
        "data": RNG.normal(size=(5, 6)),
        "w1": RNG.normal(size=(8, 6)),
        "b1": RNG.normal(size=8),
        "w2": RNG.normal(size=(3, 8)),
        "b2": RNG.normal(size=3),
    }
    sym = model(mx.sym, *(mx.sym.var(n) for n in inputs))
    wrt = ["w1", "b1", "w2", "b2"]
    results = {}
    for backend in ("interpreter", "compiled"):
        use(monkeypatch, backend)
        results[backend] = mx.compile(sym, wrt=wrt)(**inputs)
    arrays = {k: nd.array(v, dtype=np.float64) for k, v in inputs.items()}
    for name in wrt:
        arrays[name].attach_grad()
    with autograd.record():
        loss = model(nd, *arrays.values())
    loss.backward()
    for backend, (value, grads) in results.items():
        np.testing.assert_allclose(value, loss.asnumpy(), rtol=1e-12, err_msg=backend)
        for name in wrt:
            np.testing.assert_allclose(
                grads[name],
                arrays[name].grad.asnumpy(),
                rtol=1e-10,
                atol=1e-12,
                err_msg=f"{backend} {name}",
            )


def test_second_order_replay_matches_interpreter_and_create_graph(monkeypatch):
    x = mx.sym.var("x")
    first = mx.sym.sum(mx.sym.tanh(x) * mx.sym.exp(-x * x)).gradient(["x"], x=(50,))
    values = RNG.normal(size=50)
    results = {}
    for backend in ("interpreter", "compiled"):
        use(monkeypatch, backend)
        results[backend] = mx.compile(mx.sym.sum(first), wrt=["x"])(x=values)
    array = nd.array(values, dtype=np.float64)
    array.attach_grad()
    with autograd.record():
        f = (nd.tanh(array) * nd.exp(-array * array)).sum()
        (g,) = autograd.grad([f], [array], create_graph=True)
        s = g.sum()
    s.backward()
    for backend, (value, grads) in results.items():
        np.testing.assert_allclose(value, s.asnumpy(), rtol=1e-12, err_msg=backend)
        np.testing.assert_allclose(grads["x"], array.grad.asnumpy(), rtol=1e-10, err_msg=backend)


def test_new_batch_size_compiles_no_new_kernel(compiled):
    x, w, b = mx.sym.var("x"), mx.sym.var("w"), mx.sym.var("b")
    loss = mx.sym.sum(mx.sym.tanh(mx.sym.broadcast_add(mx.sym.dot(x, w), b)) ** 2)
    function = mx.compile(loss, wrt=["w", "b"])
    function(x=RNG.normal(size=(4, 3)), w=RNG.normal(size=(3, 5)), b=RNG.normal(size=5))
    before = compiler.stats()
    xs, ws, bs = RNG.normal(size=(11, 3)), RNG.normal(size=(3, 5)), RNG.normal(size=5)
    value, grads = function(x=xs, w=ws, b=bs)
    after = compiler.stats()
    assert after["kernels_compiled"] == before["kernels_compiled"]
    assert after["kernels_loaded"] == before["kernels_loaded"]
    assert len(function._graphs) == 2
    assert len({id(graph.runner) for graph in function._graphs.values()}) == 1
    t = np.tanh(xs @ ws + bs)
    np.testing.assert_allclose(value, (t * t).sum(), rtol=1e-12)
    np.testing.assert_allclose(grads["b"], (2 * t * (1 - t * t)).sum(0), rtol=1e-10)


def test_background_compilation_gives_the_same_results(monkeypatch):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "background")
    inputs = w1_inputs(300)
    function = mx.compile(w1_symbol(), wrt=["x", "w", "b"])
    first = function(**inputs)  # the interpreter
    function(**inputs)  # the interpreter, while numba compiles (from the second call)
    wait_for_compilation()
    assert program_of(function)._ready
    second = function(**inputs)
    np.testing.assert_allclose(second[0], first[0], rtol=1e-12)
    for name in "xwb":
        np.testing.assert_allclose(second[1][name], first[1][name], rtol=1e-12)


# ---------------------------------------------------------------------------
# Executor: forward and backward programs, BatchNorm state, Dropout masks
# ---------------------------------------------------------------------------


def cnn_symbol():
    data = mx.sym.var("data")
    # no bias: BatchNorm cancels it, its gradient is zero up to rounding
    h = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, no_bias=True, name="conv")
    h = mx.sym.BatchNorm(h, fix_gamma=False, momentum=0.8, name="bn")
    h = mx.sym.Pooling(mx.sym.relu(h), kernel=(2, 2), stride=(2, 2), pool_type="max")
    h = mx.sym.FullyConnected(h, num_hidden=3, name="fc")
    return mx.sym.mean(mx.sym.log_softmax(h) * mx.sym.var("weight"))


def bound_executor(sym, shapes, values):
    exe = sym.simple_bind(mx.cpu(), **shapes)
    for name, value in values.items():
        target = exe.arg_dict.get(name, exe.aux_dict.get(name))
        target[:] = value
    return exe


@pytest.mark.slow  # compiles a CNN training program: 30-40 s with an empty kernel cache
def test_executor_cnn_training_matches_interpreter_and_updates_state_once(monkeypatch):
    sym = cnn_symbol()
    shapes = {"data": (6, 2, 8, 8), "weight": (6, 3)}
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    values = {name: RNG.normal(size=shape) for name, shape in zip(sym.list_arguments(), arg_shapes)}
    values.update(
        {
            name: RNG.uniform(0.5, 1.5, size=shape)
            for name, shape in zip(sym.list_auxiliary_states(), aux_shapes)
        }
    )
    runs = {}
    for backend in ("interpreter", "compiled"):
        use(monkeypatch, backend)
        exe = bound_executor(sym, shapes, values)
        for _ in range(2):  # moving statistics change once per training forward
            exe.forward(is_train=True)
            exe.backward()
        runs[backend] = exe
    interpreted, compiled_exe = runs["interpreter"], runs["compiled"]
    # float32 arrays (simple_bind's default): kernels may round differently
    np.testing.assert_allclose(
        compiled_exe.outputs[0].asnumpy(), interpreted.outputs[0].asnumpy(), rtol=1e-5
    )
    for name in sym.list_arguments():
        expected = interpreted.grad_dict[name].asnumpy()
        np.testing.assert_allclose(
            compiled_exe.grad_dict[name].asnumpy(),
            expected,
            rtol=1e-4,
            atol=1e-5 * np.abs(expected).max(),
            err_msg=name,
        )
    for name in sym.list_auxiliary_states():
        moved = compiled_exe.aux_dict[name].asnumpy()
        np.testing.assert_allclose(moved, interpreted.aux_dict[name].asnumpy(), rtol=1e-5)
        assert not np.allclose(moved, values[name])
    plan = compiled_exe._plans[True]
    forward, backward = plan.forward.runner, plan.backward.runner
    assert isinstance(forward, CompiledProgram) and isinstance(backward, CompiledProgram)
    assert "BatchNorm" in library_ops(forward) and "BatchNorm" not in fused_ops(forward)
    # the normalisation arithmetic and relu's mask in the backward are fused loops
    assert {"_greater_scalar", "broadcast_sub", "rsqrt"} <= set(fused_ops(backward))


def test_batchnorm_moving_mean_is_updated_in_place_by_the_compiled_program(compiled):
    sym = mx.sym.BatchNorm(mx.sym.var("data"), fix_gamma=False, momentum=0.5, name="bn")
    exe = sym.simple_bind(mx.cpu(), data=(8, 3))
    x = RNG.normal(2.0, 1.0, size=(8, 3)).astype(np.float32)
    moving_mean = exe.aux_dict["bn_moving_mean"]
    exe.arg_dict["bn_gamma"][:] = 1
    exe.forward(is_train=True, data=x)
    np.testing.assert_allclose(moving_mean.asnumpy(), 0.5 * x.mean(0), rtol=1e-5)
    exe.forward(is_train=True, data=x)
    np.testing.assert_allclose(moving_mean.asnumpy(), 0.75 * x.mean(0), rtol=1e-5)
    assert exe.aux_dict["bn_moving_mean"] is moving_mean


def test_dropout_mask_is_drawn_once_and_reused_by_backward(compiled):
    x = mx.sym.var("x")
    sym = mx.sym.Dropout(mx.sym.tanh(x) * 3.0, p=0.5)
    exe = sym.simple_bind(mx.cpu(), x=(400,))
    values = RNG.uniform(0.5, 1.0, size=400)
    exe.arg_dict["x"][:] = values
    masks = []
    for _ in range(2):
        out = exe.forward(is_train=True)[0].asnumpy()
        exe.backward()
        kept = out != 0
        assert 0 < kept.sum() < 400
        # the gradient uses the forward's mask: 2 * 3 * (1 - tanh^2) where kept, 0 elsewhere
        expected = np.where(kept, 6.0 * (1 - np.tanh(values) ** 2), 0.0)
        np.testing.assert_allclose(exe.grad_dict["x"].asnumpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(out[kept], 6.0 * np.tanh(values[kept]), rtol=1e-6)
        masks.append(kept)
    assert (masks[0] != masks[1]).any()  # a new draw per training forward
    plan = exe._plans[True]
    assert "Dropout" in library_ops(plan.forward.runner)
    assert "Dropout" not in fused_ops(plan.forward.runner)
    np.testing.assert_allclose(
        exe.forward(is_train=False)[0].asnumpy(), 3.0 * np.tanh(values), rtol=1e-6
    )


def test_executor_grad_req_write_and_add_on_compiled_programs(compiled):
    x, w, b = mx.sym.var("x"), mx.sym.var("w"), mx.sym.var("b")
    sym = mx.sym.sum(mx.sym.tanh(mx.sym.broadcast_add(x * w, b)))
    values = {
        "x": RNG.normal(size=(4, 3)),
        "w": RNG.normal(size=(4, 3)),
        "b": RNG.normal(size=(1, 3)),
    }
    args = {k: nd.array(v, dtype=np.float64) for k, v in values.items()}
    grads = {k: nd.ones(v.shape, dtype=np.float64) for k, v in values.items()}
    exe = sym.bind(
        mx.cpu(), args, args_grad=grads, grad_req={"w": "add", "b": "write", "x": "null"}
    )
    for _ in range(2):
        exe.forward(is_train=True)
        exe.backward()
    d = 1 - np.tanh(values["x"] * values["w"] + values["b"]) ** 2
    np.testing.assert_allclose(grads["w"].asnumpy(), 1 + 2 * d * values["x"], rtol=1e-12)
    np.testing.assert_allclose(grads["b"].asnumpy(), d.sum(0, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(grads["x"].asnumpy(), np.ones((4, 3)))
    assert exe.grad_dict["b"] is grads["b"]


def test_compile_never_writes_into_results_it_returned(compiled):
    # Results under executor._RECYCLE_BYTES are never recycled (allocating them is
    # cheaper): these are large enough to be, small enough to stay on one thread.
    function = mx.compile(w1_symbol(), wrt=["x", "w", "b"])
    n = 2 * executor._RECYCLE_BYTES // 8
    first_inputs, second_inputs = w1_inputs(n), w1_inputs(n)
    _, kept = function(**first_inputs)
    kept_copy = {k: v.copy() for k, v in kept.items()}
    for _ in range(3):  # also once the program runs as one compiled call
        _, grads = function(**second_inputs)  # must not write into the arrays held
        for name in "xwb":
            np.testing.assert_array_equal(kept[name], kept_copy[name])
            assert not np.shares_memory(grads[name], kept[name])


def test_compile_with_reuse_outputs_writes_into_the_last_results(compiled):
    """``reuse_outputs=True`` declares that the caller keeps no result across
    calls: each call writes into the previous call's arrays (no refcounting)."""
    function = mx.compile(w1_symbol(), wrt=["x", "w", "b"], reuse_outputs=True)
    n = 2 * executor._RECYCLE_BYTES // 8
    first_inputs, second_inputs = w1_inputs(n), w1_inputs(n)
    _, first = function(**first_inputs)
    address = first["x"].ctypes.data
    for _ in range(3):
        _, again = function(**second_inputs)
        assert again["x"].ctypes.data == address  # the same buffer, written in place
    _, expected = w1_recorded(second_inputs)
    np.testing.assert_allclose(again["x"], expected["x"], rtol=1e-12)


def test_replay_signatures_live_in_the_program_cache_under_its_limits():
    """Issue 20 item 8: a replayed function called with 4,000 different shapes
    keeps nothing per shape itself. What it needs per input signature is an entry
    of the program cache, which counts it (``signatures``, apart from programs) and
    bounds it with its limits; memory stops growing, and an evicted shape still
    runs."""
    x = mx.sym.var("x")
    with session.fresh():
        compiler.set_cache_limit(entries=40)
        f = mx.compile(mx.sym.sum(mx.sym.tanh(x) * x), wrt=["x"])

        def call(n: int) -> None:
            data = np.linspace(-1, 1, n)
            value, grads = f(x=data)
            if n % 100 != 1:
                return
            t = np.tanh(data)
            np.testing.assert_allclose(value, (t * data).sum(), rtol=1e-12)
            np.testing.assert_allclose(grads["x"], t + data * (1 - t * t), rtol=1e-12)

        for n in range(1, 1001):
            call(n)
        wait_for_compilation()  # numba's import and kernels are not replay's memory
        call(1001)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for n in range(1002, 4001):
            call(n)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        stats = compiler.stats()
        # the entries limit holds programs and signatures together (the program
        # for a length-one axis, used by the first shape only, was evicted)
        assert stats["programs"] + stats["signatures"] == 40
        assert stats["signatures"] == len(f._graphs) == 39
        assert stats["evictions"] == 4000 + 1 - 39
        # (what grows is the IR's bounded memo of unit axes, ~300 bytes a shape up to
        # 4,096 shapes; the replay of issue 20 held ~94 KiB a shape, 280 MiB here)
        assert grown < 2 << 20, f"3,000 new shapes grew memory by {grown} bytes"
        call(1)  # the first shape, evicted long ago


def test_results_kept_for_reuse_count_against_the_cache_byte_limit(compiled):
    """With ``reuse_outputs`` a signature's entry keeps its last results to write
    into again; the cache counts their bytes, and its byte limit drops the least
    recently used signatures with their results."""
    n = 2 * executor._RECYCLE_BYTES // 8  # each gradient 128 KiB: kept for reuse
    limit = 8 << 20
    with session.fresh():
        compiler.set_cache_limit(bytes=limit)
        f = mx.compile(w1_symbol(), wrt=["x", "w", "b"], reuse_outputs=True)
        for size in range(n, n + 40):
            f(**w1_inputs(size))
        stats = compiler.stats()
        held = f._graphs.values()
        kept = sum(r.nbytes for call in held for results in call.spare for r in results)
        # three gradients of at least 128 KiB per signature: 40 would be 15 MiB
        assert kept >= 3 * n * 8 * stats["signatures"]
        assert kept <= stats["program_bytes"] <= limit
        assert stats["signatures"] < 40 and stats["evictions"] >= 40 - stats["signatures"]


def _hot_tanh(monkeypatch):
    """A replayed function whose calls take the one-signature fast path, and its
    input."""
    use(monkeypatch, "compiled")
    f = mx.compile(mx.sym.sum(mx.sym.tanh(mx.sym.var("x"))), wrt=["x"])
    x = np.linspace(-1, 1, 4)
    for _ in range(3):
        f(x=x)
    assert f._hot is not None
    return f, x


def test_a_backend_chosen_after_a_replay_runs_the_next_calls(monkeypatch):
    f, x = _hot_tanh(monkeypatch)
    expected_value, expected_grads = f(x=x)
    (call,) = f._graphs.values()
    assert isinstance(call.runner, CompiledProgram)
    compiler.set_backend("interpreter")
    try:
        value, grads = f(x=x)
        # a signature and program of the interpreter's, beside the compiled one's
        runners = [c.runner for c in f._graphs.values()]
        assert len(runners) == 2
        assert sum(not isinstance(r, CompiledProgram) for r in runners) == 1
    finally:
        compiler.set_backend(None)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grads["x"], expected_grads["x"], rtol=1e-12)


def test_a_cleared_cache_is_not_bypassed_by_the_last_signature(monkeypatch):
    f, x = _hot_tanh(monkeypatch)
    compiler.clear_cache()
    f(x=x)
    # the call looked its signature up again: the cleared cache holds it anew
    assert compiler.stats()["misses"] == 1
    assert len(f._graphs) == 1
