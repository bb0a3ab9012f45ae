"""The whole-program entry (compiler/backends/numba/entry.py): a program of several steps
runs as one compiled call, gives what the step runner gives, writes into the
destinations it may write, runs loops big enough for threads in pieces from
object mode (staying one call), calls from object mode the numpy code of the
pure ops it has no numba form for, and hands back to the
step runner what it must not run (rows the row kernels decline, inputs of
another layout)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad_compiler
from symgrad import autograd, nd
from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.executable import NumbaExecutable as CompiledProgram
from symgrad_compiler.backends.numba.lowerings import rows
from symgrad_compiler.backends.numba.lowerings.table import run_library
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.passes.fuse import LONE_TRANSCENDENTAL_LIMIT
from symgrad_compiler.registry import make_node, variable


def op(name, *inputs, **attrs):
    return Entry(
        make_node(name, [e if isinstance(e, Entry) else Entry(e, 0) for e in inputs], attrs), 0
    )


def mlp_graph(batch, features, classes, dtype):
    """The W2 step's shape of program, forward values and a product as outputs."""
    X = variable((batch, features), dtype, "X")
    W = variable((features, classes), dtype, "W")
    b = variable((classes,), dtype, "b")
    y = variable((batch,), dtype, "y")
    z = op("broadcast_add", op("dot", X, W), b)
    logp = op("log_softmax", z, axis=1)
    loss = op("mean", op("negative", op("pick", logp, y, axis=1)))
    back = op("dot", X, op("softmax", z, axis=-1), transpose_a=True)
    return ProgramGraph([X, W, b, y], [loss, back, op("sum", logp, axis=1), None])


def mlp_inputs(batch, features, classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(batch, features)).astype(dtype),
        rng.normal(size=(features, classes)).astype(dtype),
        rng.normal(size=classes).astype(dtype),
        rng.integers(0, classes, batch).astype(dtype),
    ]


def compiled(graph, args):
    program = CompiledProgram(PassRun(graph))
    program._compile([np.array(a) for a in args])
    assert program._ready
    return program


def reference(graph, args):
    return evaluate(graph.live_outputs(), {var: (a,) for var, a in zip(graph.inputs, args)})


def counting(program):
    """Wrap the program's entry so that tests see whether it ran."""
    calls = {"ran": 0, "declined": 0}
    entry = program._entry

    def run(args, out=None):
        result = entry(args, out)
        calls["ran" if result is not None else "declined"] += 1
        return result

    program._entry = run
    return calls


def assert_outputs(got, graph, args, dtype):
    expected = reference(graph, args)
    live = [g for g, o in zip(got, graph.outputs) if o is not None]
    assert [g is None for g, o in zip(got, graph.outputs) if o is None] == [
        True
    ] * graph.outputs.count(None)
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    for g, e in zip(live, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_program_of_several_steps_runs_as_one_call(dtype):
    graph = mlp_graph(16, 12, 5, dtype)
    args = mlp_inputs(16, 12, 5, dtype)
    program = compiled(graph, args)
    assert program.plan.entry is not None and "def program_entry" in program.plan.module_text
    assert "# the whole program as one call" in program.explain()
    calls = counting(program)
    assert_outputs(program(args), graph, args, dtype)
    # another batch size: the same entry
    other = mlp_inputs(9, 12, 5, dtype, seed=1)
    assert_outputs(program(other), graph, other, dtype)
    assert calls == {"ran": 2, "declined": 0}


def test_products_go_straight_into_their_destinations():
    graph = mlp_graph(16, 12, 5, np.float64)
    args = mlp_inputs(16, 12, 5, np.float64)
    program = compiled(graph, args)
    target = np.full((12, 5), np.nan)
    got = program(args, [None, target, None, None])
    assert got[1] is target
    assert_outputs(got, graph, args, np.float64)
    # a destination that does not fit is left alone
    wrong = np.full((5, 12), np.nan)
    got = program(args, [None, wrong, None, None])
    assert got[1] is not wrong and np.isnan(wrong).all()
    assert_outputs(got, graph, args, np.float64)


def test_a_destination_that_overlaps_an_input_is_not_written():
    graph = mlp_graph(16, 12, 5, np.float64)
    args = mlp_inputs(16, 12, 5, np.float64)
    program = compiled(graph, args)
    expected = reference(graph, [a.copy() for a in args])
    aliased = args[1]  # the destination of dot(X.T, ...) is W itself
    before = aliased.copy()
    got = program(args, [None, aliased, None, None])
    np.testing.assert_array_equal(aliased, before)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)


def test_loops_big_enough_for_threads_run_in_pieces_inside_the_entry(monkeypatch):
    # a (rows, 8) loop reaches the threshold (of cheap ops only: CHEAP_LOOP_FACTOR
    # times the threading threshold, memory-bound loops gaining little from threads);
    # the entry runs it in the step runner's pieces, from object mode, and stays
    # one call
    from symgrad_compiler.backends.numba.entry import CHEAP_LOOP_FACTOR

    # (its products run on OpenBLAS's threads, which would raise the threshold:
    # see the next test)
    monkeypatch.setattr(threads, "SPINNING_BLAS_FACTOR", 1)
    rows = threads.MINIMUM * CHEAP_LOOP_FACTOR // 8 + 1
    graph = mlp_graph(rows, 3, 8, np.float32)
    args = mlp_inputs(rows, 3, 8, np.float32)
    program = compiled(graph, mlp_inputs(4, 3, 8, np.float32))
    calls = counting(program)
    pieces = []
    run = threads.run
    monkeypatch.setattr(threads, "serial", lambda: False)  # a busy machine runs one piece
    monkeypatch.setattr(threads, "run", lambda k, c: (pieces.append(len(c)), run(k, c)))
    for _ in range(2):
        assert_outputs(program(args), graph, args, np.float32)
    small = mlp_inputs(4, 3, 8, np.float32)
    assert_outputs(program(small), graph, small, np.float32)
    assert calls == {"ran": 3, "declined": 0}
    if threads.count() > 1:
        assert pieces and min(pieces) > 1  # the big loops were cut, only there


def test_a_program_with_products_on_openblas_threads_splits_only_bigger_loops(monkeypatch):
    # OpenBLAS's idle worker spins on the other core after each product, so such a
    # program keeps a loop of the usual threshold on one thread (in the entry and
    # in the step runner) and splits from SPINNING_BLAS_FACTOR times as many
    # elements; a program without products splits at the usual threshold
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "SPINNING_BLAS_FACTOR", 4)
    monkeypatch.setattr(threads, "_THREADS", 2)
    rows = threads.MINIMUM // 2  # tanh over (rows, 2): the usual threshold

    def graphs(batch):
        x = variable((batch, 2), np.float32, "x")
        w = variable((2, 2), np.float32, "w")
        hidden = op("tanh", op("dot", x, w))
        with_product = ProgramGraph([x, w], [hidden, op("sum", op("exp", hidden))])
        h = op("tanh", op("broadcast_mul", x, x))
        without = ProgramGraph([x, w], [h, op("sum", op("exp", h))])
        return with_product, without

    pieces: list[int] = []
    run = threads.run
    monkeypatch.setattr(threads, "run", lambda k, c: (pieces.append(len(c)), run(k, c)))
    rng = np.random.default_rng(0)
    for factor, expect_split in ((1, False), (4, True)):
        args = [rng.normal(size=(rows * factor, 2)).astype(np.float32), np.eye(2, dtype=np.float32)]
        for graph, spins in zip(graphs(rows * factor), (True, False)):
            program = compiled(graph, [a[:4] if a.shape[0] > 2 else a for a in args])
            assert program.plan.blas_spins == spins
            assert program.plan.split_limit == threads.MINIMUM * (4 if spins else 1)
            pieces.clear()
            got = program(args)
            expected = reference(graph, args)
            for g, e in zip(got, expected):
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)  # float32 sums
            assert bool(pieces) == (expect_split or not spins), (factor, spins, pieces)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_pooling_big_enough_for_threads_runs_in_pieces_inside_the_entry(monkeypatch, dtype):
    batch = 64
    x = variable((batch, 8, 16, 16), dtype, "x")
    pooled = op("Pooling", x, kernel=(2, 2), stride=(2, 2), pool_type="max")
    graph = ProgramGraph([x], [op("relu", pooled)])
    rng = np.random.default_rng(4)
    args = [rng.normal(size=(batch, 8, 16, 16)).astype(dtype)]
    args[0][0, 0, :2, :2] = [[np.nan, 1.0], [-np.inf, -0.0]]  # the window's NaN wins
    program = compiled(graph, [a[:2] for a in args])
    calls = counting(program)
    pieces = []
    run = threads.run
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "run", lambda k, c: (pieces.append(len(c)), run(k, c)))
    got = program(args)
    expected = reference(graph, args)
    np.testing.assert_array_equal(got[0], expected[0])
    assert calls == {"ran": 1, "declined": 0}
    if threads.count() > 1:
        assert pieces and min(pieces) > 1


@pytest.mark.slow  # compiles the convolution kernels into two programs: minutes
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_convolution_big_enough_for_threads_runs_inside_the_entry(dtype):
    # the step runner's threaded paths (pieces of the batch, Winograd), from
    # object mode: forward, data and weight gradients, the entry staying one call
    x = variable((16, 16, 12, 12), dtype, "x")
    w = variable((16, 16, 3, 3), dtype, "w")
    g = variable((16, 16, 12, 12), dtype, "g")
    conv = dict(kernel=(3, 3), pad=(1, 1), num_filter=16)
    out = op("Convolution", x, w, no_bias=True, **conv)
    data_grad = op("_conv_data_grad", g, w, x, **conv)
    weight_grad = op("_conv_weight_grad", g, x, w, **conv)
    graph = ProgramGraph([x, w, g], [op("relu", out), data_grad, weight_grad])
    rng = np.random.default_rng(6)
    shapes = [(16, 16, 12, 12), (16, 16, 3, 3), (16, 16, 12, 12)]
    args = [rng.normal(size=shape).astype(dtype) for shape in shapes]
    args[0][3, 2, 4, 5] = np.nan  # one image's outputs are NaN where numpy's are
    program = compiled(graph, [a[:1] if i != 1 else a for i, a in enumerate(args)])
    calls = counting(program)
    got = program(args)
    expected = reference(graph, args)
    tolerance = 1e-11 if dtype == np.float64 else 1e-4
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
        assert np.array_equal(np.isnan(a), np.isnan(b))
    assert calls == {"ran": 1, "declined": 0}


def test_on_one_thread_every_loop_runs_in_the_entry(monkeypatch):
    # the entry compares loop sizes with multiples of the threading threshold,
    # which on one thread is "never": the multiples must not overflow int64
    # (they wrapped to 0, and every loop of more than one row gave up)
    monkeypatch.setattr(threads, "_THREADS", 1)
    graph = mlp_graph(16, 12, 5, np.float64)
    args = mlp_inputs(16, 12, 5, np.float64)
    program = compiled(graph, args)
    calls = counting(program)
    assert_outputs(program(args), graph, args, np.float64)
    assert calls == {"ran": 1, "declined": 0}


def test_rows_the_row_kernels_decline_go_to_the_step_runner():
    classes = rows.MAX_ROW + 1
    graph = mlp_graph(2, 3, classes, np.float64)
    args = mlp_inputs(2, 3, classes, np.float64)
    program = compiled(graph, mlp_inputs(2, 3, 4, np.float64))
    calls = counting(program)
    assert_outputs(program(args), graph, args, np.float64)
    assert calls["declined"] == 1


def test_inputs_of_another_layout_go_to_the_step_runner():
    graph = mlp_graph(6, 4, 3, np.float64)
    args = mlp_inputs(6, 4, 3, np.float64)
    program = compiled(graph, args)
    calls = counting(program)
    strided = [np.asfortranarray(args[0]), *args[1:]]
    assert_outputs(program(strided), graph, strided, np.float64)
    frozen = [a.copy() for a in args]
    frozen[2].flags.writeable = False
    assert_outputs(program(frozen), graph, frozen, np.float64)
    assert calls == {"ran": 0, "declined": 2}


def test_programs_with_a_step_it_cannot_run_have_no_entry():
    # an op that is not pure (a matrix inverse raises on a singular matrix) and
    # has no numba form: the program runs step by step
    x = variable((3, 3), np.float64, "x")
    graph = ProgramGraph([x], [op("_linalg_inverse", op("exp", x)), op("sum", x)])
    args = [np.random.default_rng(2).normal(size=(3, 3))]
    program = compiled(graph, args)
    assert program.plan.entry is None
    assert_outputs(program(args), graph, args, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_without_a_numba_form_run_their_numpy_code_inside_the_entry(dtype):
    # a lone sigmoid over a big array (the fusion pass leaves it to numpy) and a
    # sum over the batch and the image (a convolution's bias gradient), each from
    # object mode: the program stays one call, for every batch size
    x = variable((4, 5, 60, 60), dtype, "x")
    g = variable((4, 3, 7, 7), dtype, "g")
    w = variable((5, 2), dtype, "w")
    assert 5 * 60 * 60 < LONE_TRANSCENDENTAL_LIMIT <= 4 * 5 * 60 * 60  # lone and big
    product = op("dot", op("exp", w), w, transpose_a=True)
    outputs = [op("sigmoid", x), op("sum", g, axis=(0, 2, 3)), product]
    # and pure ops of other kinds: a transpose, a slice, a sort, and a softmax
    # over an axis its lowering's entry form declines (its run gets the kernel)
    outputs += [
        op("transpose", g, axes=(1, 0, 3, 2)),
        op("slice", g, begin=(None, 1), end=(None, 3)),
        op("sort", op("exp", w), axis=0),
        op("softmax", g, axis=1),
    ]
    graph = ProgramGraph([x, g, w], outputs)
    rng = np.random.default_rng(8)

    def arguments(batch):
        args = [
            rng.normal(size=(batch, 5, 60, 60)).astype(dtype) * 4,
            rng.normal(size=(batch, 3, 7, 7)).astype(dtype),
            rng.normal(size=(5, 2)).astype(dtype),
        ]
        args[0][0, 2, 3, :3] = [np.nan, np.inf, -np.inf]
        args[1][batch - 1, 1, 4, 5] = np.nan
        return args

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no whole-program lowering" warning
        program = compiled(graph, arguments(4))
    text = program.plan.module_text
    assert program.plan.entry is not None
    for name in ("sigmoid", "sum", "transpose", "slice", "sort", "softmax"):
        assert f"run_library('{name}'" in text
    calls = counting(program)
    for batch in (4, 1, 6):
        args = arguments(batch)
        got = program(args)
        assert_outputs(got, graph, args, dtype)
        for a, b in zip(got, reference(graph, args)):
            assert np.array_equal(np.isnan(a), np.isnan(b))
            assert not any(np.shares_memory(a, arg) for arg in args)
    assert calls == {"ran": 3, "declined": 0}


def test_library_results_never_share_an_input_s_memory():
    # run_library (the entry's object-mode calls) copies a result that is a view
    # of an argument: no step of the entry returns its input
    x = np.arange(12.0).reshape(3, 4)
    result = run_library("reshape_like", None, (x, np.empty((4, 3))), {}, "float64")
    assert result.shape == (4, 3) and not np.shares_memory(result, x)
    np.testing.assert_array_equal(result, x.reshape(4, 3))
    # an op of one output whose numpy code returns a tuple of it
    attrs = {"num_outputs": 1, "axis": 1, "squeeze_axis": False}
    result = run_library("SliceChannel", None, (x,), attrs, "float64")
    assert result.shape == x.shape and not np.shares_memory(result, x)
    np.testing.assert_array_equal(result, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_steps_through_the_entry_match_the_interpreter(monkeypatch, dtype):
    rng = np.random.default_rng(3)
    data = {
        "X": rng.random((32, 20)),
        "W1": rng.normal(size=(20, 16)) / 4,
        "b1": rng.normal(size=16) / 10,
        "W2": rng.normal(size=(16, 4)) / 4,
        "b2": rng.normal(size=4) / 10,
        "y": rng.integers(0, 4, 32),
    }

    def step(backend):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
        X, y = nd.array(data["X"], dtype=dtype), nd.array(data["y"], dtype=dtype)
        params = [nd.array(data[k], dtype=dtype) for k in ("W1", "b1", "W2", "b2")]
        for p in params:
            p.attach_grad()
        W1, b1, W2, b2 = params
        for _ in range(3):  # the first call compiles, the others run the entry
            with autograd.record():
                h = nd.tanh(nd.dot(X, W1) + b1)
                logp = nd.log_softmax(nd.dot(h, W2) + b2, axis=1)
                loss = -nd.pick(logp, y, axis=1).mean()
            loss.backward()
        return [loss.asnumpy()] + [p.grad.asnumpy() for p in params]

    tolerance = 1e-12 if dtype == "float64" else 1e-5
    for got, expected in zip(step("compiled"), step("interpreter")):
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def test_expand_dims_runs_in_the_entry_and_never_aliases_an_input():
    """Gluon's losses keep a (batch, 1) axis: expand_dims inside the entry, as a
    view while intermediate and a copy when it is an output."""
    x = variable((6, 4), np.float64, "x")
    y = variable((6,), np.float64, "y")
    picked = op("pick", op("log_softmax", x, axis=-1), y, axis=-1, keepdims=True)
    grad = op("_pick_grad", op("expand_dims", op("sum", picked, axis=(-1,)), axis=1), y, x, axis=-1)
    graph = ProgramGraph([x, y], [op("expand_dims", x, axis=1), grad])
    rng = np.random.default_rng(3)
    args = [rng.normal(size=(6, 4)), rng.integers(0, 4, 6).astype(np.float64)]
    program = compiled(graph, args)
    assert program.plan.entry is not None
    calls = counting(program)
    got = program(args)
    assert calls == {"ran": 1, "declined": 0}
    expected = evaluate(graph.live_outputs(), {x: (args[0],), y: (args[1],)})
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    assert got[0].shape == (6, 1, 4) and not np.shares_memory(got[0], args[0])
