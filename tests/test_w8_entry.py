"""W8's training step (Embedding, a two-layer LSTM, Dense over every time step,
softmax cross-entropy over a 10000-word vocabulary) as one compiled call: the
entry forms of the ops that had sent it step by step (``_rnn_param_concat`` and
``Concat``, ``_split_like``, ``slice_axis``, ``broadcast_to``, a reversed
``Reshape``, a sum over the leading axes), Dense of a 3-D input as one product
(a GEMM on the rows of ``FullyConnected(flatten=False)``'s input, its bias added in
place), and the
row kernels on float32 rows longer than ``MAX_ROW``. Each is compiled equal to
interpreted, NaN and inf included, at several sizes through one cached program."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_program_entry import counting

import symgrad as mx
import symgrad_compiler
from symgrad import autograd, gluon, nd
from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.backends.numba.lowerings import products, rows
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.registry import make_node, variable


def op(name, *inputs, index=0, **attrs):
    node = make_node(name, [e if isinstance(e, Entry) else Entry(e, 0) for e in inputs], attrs)
    return Entry(node, index)


def outputs_of(entry: Entry) -> list[Entry]:
    return [Entry(entry.node, k) for k in range(entry.node.num_outputs)]


def program_of(graph: ProgramGraph, args: list[np.ndarray]) -> NumbaExecutable:
    program = NumbaExecutable(PassRun(graph))
    program._compile([np.array(a) for a in args])
    assert program._ready and program.plan.entry is not None, "no whole-program entry"
    return program


def with_specials(shape, dtype, seed) -> np.ndarray:
    """Normal values with NaN, inf, -inf, -0.0 among the first elements."""
    flat = np.random.default_rng(seed).normal(size=int(np.prod(shape))).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0], dtype)[: flat.size]
    flat[1 : 1 + specials.size] = specials[: max(0, flat.size - 1)]
    return flat.reshape(shape)


def assert_as_interpreted(program, graph, args, rtol, expect_entry=True):
    calls = counting(program)
    with np.errstate(all="ignore"):
        got = program(args)
        expected = evaluate(graph.live_outputs(), {v: (a,) for v, a in zip(graph.inputs, args)})
    assert calls == ({"ran": 1, "declined": 0} if expect_entry else {"ran": 0, "declined": 1})
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol, equal_nan=True)
    for i, g in enumerate(got):  # outputs never alias an input or one another
        assert not any(np.shares_memory(g, a) for a in args)
        assert not any(np.shares_memory(g, h) for h in got[i + 1 :])
    return got


# ---------------------------------------------------------------- shape ops


def shape_graph(dtype):
    x = variable((4, 3, 5), dtype, "x")
    y = variable((4, 2, 5), dtype, "y")
    joined = op("Concat", x, y, dim=1)  # (B, 5, 5)
    flat_x, flat_y = op("Reshape", x, shape=(-1,)), op("Reshape", y, shape=(-1,))
    packed = op("_rnn_param_concat", flat_x, flat_y, dim=0)
    pieces = outputs_of(op("_split_like", op("tanh", joined), x, y, axis=1))
    inner = op("slice_axis", joined, axis=1, begin=1, end=-1)
    last = op("slice_axis", joined, axis=-1, begin=3, end=None)
    first_step = op("slice_axis", x, axis=1, begin=0, end=1)  # (B, 1, 5)
    spread = op("broadcast_to", first_step, shape=(2, 0, 3, 0))  # (2, B, 3, 5)
    rows_of = op("Reshape", joined, shape=(-1, 0), reverse=True)  # (B * 5, 5)
    flat_pieces = outputs_of(op("_split_like", packed, flat_x, flat_y, axis=0))
    outputs = [
        joined,
        op("exp", packed),
        *pieces,
        op("sigmoid", inner),
        last,
        spread,
        op("negative", rows_of),
        *flat_pieces,
    ]
    return ProgramGraph([x, y], outputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_ops_run_in_the_entry_at_every_batch_size(dtype):
    graph = shape_graph(dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    program = None
    for seed, batch in enumerate([4, 1, 7, 4]):  # one program, re-planned per batch
        args = [
            with_specials((batch, 3, 5), dtype, seed),
            with_specials((batch, 2, 5), dtype, seed + 10),
        ]
        program = program or program_of(graph, args)
        got = assert_as_interpreted(program, graph, args, rtol)
        assert got[0].shape == (batch, 5, 5) and got[6].shape == (2, batch, 3, 5)


def test_shape_ops_the_entry_cannot_size_go_to_the_step_runner():
    """Inputs that disagree off the joined axis: the entry gives up and numpy
    raises its own error."""
    graph = shape_graph(np.float64)
    args = [with_specials((4, 3, 5), np.float64, 0), with_specials((4, 2, 5), np.float64, 1)]
    program = program_of(graph, args)
    calls = counting(program)
    with pytest.raises(ValueError):
        program([args[0], with_specials((3, 2, 5), np.float64, 1)])
    assert calls == {"ran": 0, "declined": 1}


# ---------------------------------------------------------------- Dense over time


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_over_time_is_one_product_with_its_bias_added_in_place(dtype):
    x = variable((5, 4, 3), dtype, "x")
    w, b = variable((6, 3), dtype, "w"), variable((6,), dtype, "b")
    dense = op("FullyConnected", x, w, b, num_hidden=6, flatten=False)
    bare = op("FullyConnected", x, w, num_hidden=6, flatten=False, no_bias=True)
    graph = ProgramGraph([x, w, b], [dense, op("tanh", dense), bare])
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    program = None
    for seed, (steps, batch) in enumerate([(5, 4), (1, 1), (7, 3)]):
        args = [
            with_specials((steps, batch, 3), dtype, seed),
            with_specials((6, 3), dtype, seed + 1),
            with_specials((6,), dtype, seed + 2),
        ]
        program = program or program_of(graph, args)
        assert [s.node.op.name for s in program.plan.steps].count("FullyConnected") == 2
        got = assert_as_interpreted(program, graph, args, rtol)
        assert got[0].shape == (steps, batch, 6)
    # the step runner's form
    step = next(s for s in program.plan.steps if s.kind == "library")
    with np.errstate(all="ignore"):
        ran = step.lowering.run(step.kernel, *args, **step.node.attrs)
    np.testing.assert_allclose(ran, got[0], rtol=rtol, equal_nan=True)


@pytest.mark.parametrize("transpose_b", [True, False])
def test_a_product_of_an_nd_array_runs_in_the_entry(transpose_b):
    x = variable((5, 4, 3), np.float64, "x")
    w = variable((6, 3) if transpose_b else (3, 6), np.float64, "w")
    product = op("dot", x, w, transpose_b=transpose_b)
    graph = ProgramGraph([x, w], [product, op("tanh", product)])
    program = None
    for seed, (steps, batch) in enumerate([(5, 4), (2, 1), (7, 3)]):
        args = [
            with_specials((steps, batch, 3), np.float64, seed),
            np.random.default_rng(seed).normal(size=w.types[0].shape),
        ]
        program = program or program_of(graph, args)
        assert_as_interpreted(program, graph, args, 1e-13)


def test_gemm_into_takes_an_nd_array_and_declines_a_wrong_target():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4, 5)), rng.normal(size=(6, 5))
    target = np.empty((3, 4, 6))
    assert products.gemm_into(a, b, target, transpose_a=False, transpose_b=True)
    np.testing.assert_allclose(target, np.tensordot(a, b, axes=([2], [1])), rtol=1e-13)
    wrong = np.empty((3, 5, 6))
    assert not products.gemm_into(a, b, wrong, transpose_a=False, transpose_b=True)
    assert not products.gemm_into(
        a, b, target.transpose(1, 0, 2), transpose_a=False, transpose_b=True
    )


# ---------------------------------------------------------------- rows and columns


def test_float32_rows_longer_than_max_row_run_in_the_row_kernels():
    length = 2 * rows.MAX_ROW + 3
    x = variable((3, length), np.float32, "x")
    graph = ProgramGraph(
        [x],
        [
            op("log_softmax", x, axis=-1),
            op("softmax", x, axis=1, temperature=2.0),
            op("sum", x, axis=(-1,)),
            op("mean", x, axis=(1,), keepdims=True),
        ],
    )
    program = None
    for count in (3, 9):  # 9 rows: shared out over the threads by the step runner
        args = [np.random.default_rng(count).normal(size=(count, length)).astype(np.float32) * 4]
        args[0][1, 7] = np.inf  # a row with inf and one with NaN
        args[0][2, 9] = np.nan
        program = program or program_of(graph, args)
        got = assert_as_interpreted(program, graph, args, 2e-5)
        assert np.isfinite(got[0][0]).all() and np.isnan(got[0][2]).all()
        # the step runner's forms of the same kernels
        steps = [s for s in program.plan.steps if s.kind == "library"]
        assert len(steps) == len(got)
        for step, expected in zip(steps, got):
            with np.errstate(all="ignore"):
                ran = step.lowering.run(step.kernel, args[0], **step.node.attrs)
            np.testing.assert_allclose(ran, expected, rtol=2e-5, atol=2e-5, equal_nan=True)
    # float64 rows that long still go to numpy
    assert not rows.row_fits(np.dtype(np.float64), length)
    assert rows.row_fits(np.dtype(np.float32), length)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_over_leading_axes_run_in_the_entry(dtype):
    x = variable((6, 4, 3), dtype, "x")
    m = variable((6, 5), dtype, "m")
    graph = ProgramGraph(
        [x, m],
        [
            op("sum", m, axis=(0,)),  # a bias's gradient
            op("sum", x, axis=(0, 1), keepdims=True),
            op("mean", x, axis=(0,)),
            op("sum", x, axis=(2,), exclude=True),  # axes 0 and 1
            op("sum", op("exp", x), axis=(1, 0)),
        ],
    )
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    program = None
    for seed, batch in enumerate([6, 1, 9]):
        args = [with_specials((batch, 4, 3), dtype, seed), with_specials((batch, 5), dtype, seed)]
        program = program or program_of(graph, args)
        assert_as_interpreted(program, graph, args, rtol)
    # the step runner's form of the same kernel
    (step,) = [s for s in program.plan.steps if s.kind == "library" and s.inputs == [1]]
    column = step.lowering.run(step.kernel, args[1], **step.node.attrs)
    np.testing.assert_allclose(column, args[1].sum(axis=0), rtol=rtol, equal_nan=True)


# ---------------------------------------------------------------- the W8 model


def language_model(vocab, hidden):
    class LanguageModel(gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.embedding = gluon.nn.Embedding(vocab, hidden)
                self.rnn = gluon.rnn.LSTM(hidden, num_layers=2, layout="TNC", input_size=hidden)
                self.decoder = gluon.nn.Dense(vocab, flatten=False, in_units=hidden)

        def hybrid_forward(self, F, x):
            return self.decoder(self.rnn(self.embedding(x)))

    return LanguageModel()


def train(backend, monkeypatch, tokens, targets, vocab, hidden, steps=3):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    symgrad_compiler.clear_cache()
    mx.random.seed(0)
    net = language_model(vocab, hidden)
    net.initialize(mx.init.Xavier(magnitude=3))
    net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9})
    losses = []
    for X, Y in zip(tokens, targets):
        for _ in range(steps):
            with autograd.record():
                out = net(nd.array(X))
                L = loss_fn(out.reshape((-1, vocab)), nd.array(Y).reshape((-1,)))
            L.backward()
            trainer.step(X.shape[1])
            losses.append(L.asnumpy())
    return losses, [p.data().asnumpy() for p in net.collect_params().values()]


@pytest.mark.slow  # compiles the whole W8 step: 2-3 minutes with an empty kernel cache
def test_the_w8_step_runs_as_one_call_and_trains_as_interpreted(monkeypatch):
    rng = np.random.default_rng(0)
    vocab, hidden = 5000, 6  # rows longer than MAX_ROW
    sizes = [(5, 3), (4, 2)]  # (T, N): the second re-plans the cached program
    tokens = [rng.integers(0, vocab, size) for size in sizes]
    targets = [rng.integers(0, vocab, size) for size in sizes]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "runs step by step" warning
        got = train("compiled", monkeypatch, tokens, targets, vocab, hidden)
    expected = train("interpreter", monkeypatch, tokens, targets, vocab, hidden)
    for g, e in zip(got[0] + got[1], expected[0] + expected[1]):
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=2e-6)


def test_dense_over_time_gradients_match_finite_differences(compiled):
    """float64: the compiled gradient of a token loss through Dense(flatten=False)
    (the N-d product) and the long-row log_softmax, by central differences along
    one random direction per input."""
    rng = np.random.default_rng(1)
    T, N, C, V = 3, 2, 4, 4500
    values = [rng.normal(size=(T, N, C)), rng.normal(size=(V, C)) / 2, rng.normal(size=V)]
    picks = nd.array(rng.integers(0, V, T * N), dtype="float64")

    def loss_of(x, w, b):
        z = nd.FullyConnected(x, w, b, num_hidden=V, flatten=False)
        logp = nd.log_softmax(nd.reshape(z, shape=(-1, V)), axis=-1)
        return -nd.pick(logp, picks, axis=-1).sum()

    arrays = [nd.array(v, dtype="float64") for v in values]
    for a in arrays:
        a.attach_grad()
    for _ in range(3):  # the last runs the compiled program
        with autograd.record():
            loss = loss_of(*arrays)
        loss.backward()
    grads = [a.grad.asnumpy() for a in arrays]
    eps = 1e-6
    for k, value in enumerate(values):
        direction = rng.normal(size=value.shape)
        shifted = [
            [
                nd.array(v + s * eps * direction if i == k else v, dtype="float64")
                for i, v in enumerate(values)
            ]
            for s in (1, -1)
        ]
        numeric = (
            float(loss_of(*shifted[0]).asscalar()) - float(loss_of(*shifted[1]).asscalar())
        ) / (2 * eps)
        np.testing.assert_allclose(float((grads[k] * direction).sum()), numeric, rtol=1e-6)
