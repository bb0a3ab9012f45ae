"""The RNN op and its gradient in one program (W8's training step) compute the
recurrence once: the pass ``keep_rnn_tapes`` replaces the pair by
``_rnn_forward_taped`` (the RNN's outputs and a tape of what the backward reads)
and ``_rnn_grad_taped`` (the reverse walk alone, reading the tape). Checked: the
graph before and after the pass, pairs it must leave alone, compiled (entry and
step by step) equal to the interpreted original graph for each mode at several
sizes through one program, and a float64 finite-difference gradient through the
taped program."""

from __future__ import annotations

import numpy as np
import pytest
from test_program_entry import counting

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.autodiff import differentiate
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.ops.rnn import rnn_param_size
from symgrad_compiler.ops.rnn_tape import tape_size
from symgrad_compiler.passes import keep_rnn_tapes, simplify
from symgrad_compiler.registry import get_op, make_node, variable

# (attrs, input size): every block of the tape appears in one of them
CASES = {
    "lstm": ({"mode": "lstm", "state_size": 4, "num_layers": 2}, 3),
    "lstm_bi_proj_clip": (
        {
            "mode": "lstm",
            "state_size": 4,
            "num_layers": 2,
            "bidirectional": True,
            "projection_size": 3,
            "lstm_state_clip_min": -0.4,
            "lstm_state_clip_max": 0.5,
        },
        3,
    ),
    "gru_bi": ({"mode": "gru", "state_size": 3, "num_layers": 2, "bidirectional": True}, 2),
    "tanh_lengths": (
        {"mode": "rnn_tanh", "state_size": 3, "num_layers": 3, "use_sequence_length": True},
        2,
    ),
    "relu": ({"mode": "rnn_relu", "state_size": 3, "num_layers": 1}, 4),
}


def op(name, *inputs, **attrs):
    return make_node(name, [e if isinstance(e, Entry) else Entry(e, 0) for e in inputs], attrs)


def rnn_training_graph(attrs: dict, features: int, dtype, steps=5, batch=3):
    """Inputs x, parameters, states (and lengths), the output seeds; outputs the
    RNN's outputs and the gradients of data, parameters, states: a training step's
    forward and backward of the op."""
    attrs = get_op("RNN").canonical_attrs(attrs)
    mode, hidden = attrs["mode"], attrs["state_size"]
    directions = 2 if attrs["bidirectional"] else 1
    width = attrs["projection_size"] or hidden
    rows = attrs["num_layers"] * directions
    size = rnn_param_size(
        mode,
        attrs["num_layers"],
        features,
        hidden,
        attrs["bidirectional"],
        attrs["projection_size"],
    )
    inputs = [
        variable((steps, batch, features), dtype, "x"),
        variable((size,), dtype, "params"),
        variable((rows, batch, width), dtype, "h0"),
    ]
    if mode == "lstm":
        inputs.append(variable((rows, batch, hidden), dtype, "c0"))
    if attrs["use_sequence_length"]:
        inputs.append(variable((batch,), dtype, "lengths"))
    forward = op("RNN", *inputs, **attrs)
    outputs = [Entry(forward, k) for k in range(forward.num_outputs)]
    seeds = [variable(o.shape, dtype, f"g{k}") for k, o in enumerate(outputs)]
    wrt = inputs[: 4 if mode == "lstm" else 3]
    grads = differentiate(outputs, [Entry(s, 0) for s in seeds], [Entry(v, 0) for v in wrt])
    return ProgramGraph(inputs + seeds, outputs + grads), attrs


def ops_of(graph: ProgramGraph) -> list[str]:
    return sorted(n.op.name for n in graph.nodes() if not n.is_variable)


def arguments(graph: ProgramGraph, attrs: dict, steps: int, batch: int, seed: int):
    """Values for the graph's inputs at ``steps`` x ``batch``."""
    rng = np.random.default_rng(seed)
    args = []
    for var in graph.inputs:
        shape = list(var.types[0].shape)
        name = var._name
        if name in ("x", "g0"):
            shape[:2] = [steps, batch]
        elif name == "lengths":
            shape = [batch]
        elif name != "params":
            shape[1] = batch
        if name == "lengths":
            value = rng.integers(1, steps + 1, batch).astype(var.types[0].dtype)
        else:
            scale = 0.6 if name == "params" else 1.0
            value = rng.uniform(-scale, scale, shape).astype(var.types[0].dtype)
        args.append(value)
    return args


# ---------------------------------------------------------------- the pass


def test_the_pass_replaces_the_pair_by_the_taped_ops():
    graph, _ = rnn_training_graph(*CASES["lstm"], np.float64)
    before = simplify(graph)
    assert ops_of(before) == ["RNN", "_rnn_grad"]
    after = keep_rnn_tapes(before)
    assert ops_of(after) == ["_rnn_forward_taped", "_rnn_grad_taped"]
    forward = next(n for n in after.nodes() if n.op.name == "_rnn_forward_taped")
    grad = next(n for n in after.nodes() if n.op.name == "_rnn_grad_taped")
    # the gradient reads the forward's last output, the tape, and no other of its outputs
    read = [e for e in grad.inputs if e.node is forward]
    assert [e.index for e in read] == [3]
    assert read[0].shape == (tape_size(forward.attrs, 5, 3),)
    # the program's outputs: the forward's three, then the four gradients
    assert [o.node for o in after.outputs[:3]] == [forward] * 3
    assert [o.node for o in after.outputs[3:]] == [grad] * 4


def test_the_pass_leaves_a_forward_with_dropout_masks_and_a_lone_gradient():
    attrs = {"mode": "lstm", "state_size": 4, "num_layers": 2, "p": 0.5, "is_train": True}
    graph, _ = rnn_training_graph(attrs, 3, np.float64)
    assert ops_of(keep_rnn_tapes(simplify(graph))) == ["RNN", "_rnn_grad"]
    # a gradient whose forward outputs are inputs (another program computed them)
    lone, attrs = rnn_training_graph(*CASES["gru_bi"], np.float64)
    grad = next(n for n in lone.nodes() if n.op.name == "_rnn_grad")
    stand_ins = [variable(e.shape, np.float64, f"v{k}") for k, e in enumerate(grad.inputs)]
    alone = ProgramGraph(stand_ins, [Entry(op("_rnn_grad", *stand_ins, **attrs), 0)])
    assert ops_of(keep_rnn_tapes(alone)) == ["_rnn_grad"]


# ---------------------------------------------------------------- compiled as interpreted


def program_of(graph: ProgramGraph, args) -> NumbaExecutable:
    program = NumbaExecutable(PassRun(graph))
    program._compile([np.array(a) for a in args])
    assert program._ready and program.plan.entry is not None, "no whole-program entry"
    names = [s.node.op.name for s in program.plan.steps]
    assert "_rnn_forward_taped" in names and "_rnn_grad_taped" in names
    assert "RNN" not in names and "_rnn_grad" not in names
    return program


def expected_of(graph: ProgramGraph, args):
    with np.errstate(all="ignore"):
        return evaluate(graph.live_outputs(), {v: (a,) for v, a in zip(graph.inputs, args)})


# Each case compiles a whole taped training program (40-60 s with an empty kernel
# cache): the default suite keeps two that cover LSTM, GRU, both directions and both
# dtypes; CI (and SYMGRAD_SLOW=1) runs every case.
DEFAULT_CASES = {("lstm", np.float32), ("gru_bi", np.float64)}


@pytest.mark.parametrize(
    "case, dtype",
    [
        pytest.param(
            case,
            dtype,
            id=f"{dtype.__name__}-{case}",
            marks=() if (case, dtype) in DEFAULT_CASES else pytest.mark.slow,
        )
        for dtype in (np.float32, np.float64)
        for case in sorted(CASES)
    ],
)
def test_taped_program_equals_the_interpreted_graph_at_every_size(case, dtype):
    graph, attrs = rnn_training_graph(*CASES[case], dtype)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    program = None
    for seed, (steps, batch) in enumerate([(5, 3), (1, 1), (7, 2), (5, 3)]):
        args = arguments(graph, attrs, steps, batch, seed)
        program = program or program_of(graph, args)
        calls = counting(program)
        got = program(args)
        assert calls == {"ran": 1, "declined": 0}
        expected = expected_of(graph, args)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype
            np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)
        # the step runner's forms: inputs the entry does not take (read-only)
        frozen = [a.copy() for a in args]
        for a in frozen:
            a.flags.writeable = False
        calls = counting(program)
        stepwise = program(frozen)
        assert calls == {"ran": 0, "declined": 1}
        for g, e in zip(stepwise, expected):
            np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    "case", [pytest.param("lstm_bi_proj_clip", marks=pytest.mark.slow), "gru_bi"]
)  # (each compiles its kernels: 30-40 s with an empty kernel cache; CI runs both)
def test_taped_ops_numpy_halves_equal_the_kernels(case):
    """Either half may run in numpy while the other runs compiled: the tapes agree."""
    graph, attrs = rnn_training_graph(*CASES[case], np.float64)
    args = arguments(graph, attrs, 4, 2, 7)
    program = program_of(graph, args)
    steps = {s.node.op.name: s for s in program.plan.steps}
    count = len(get_op("_rnn_forward_taped").input_names(attrs))
    forward = steps["_rnn_forward_taped"]
    compiled = forward.lowering.run(forward.kernel, *args[:count], **attrs)
    interpreted = get_op("_rnn_forward_taped").impl(*args[:count], **attrs)
    for c, i in zip(compiled, interpreted):
        np.testing.assert_allclose(c, i, rtol=1e-12, atol=1e-12)
    seeds = args[count:]
    grad = steps["_rnn_grad_taped"]
    from_numpy_tape = grad.lowering.run(
        grad.kernel, *args[:count], interpreted[-1], *seeds, **attrs
    )
    numpy_grad = get_op("_rnn_grad_taped").impl(*args[:count], compiled[-1], *seeds, **attrs)
    for c, i in zip(from_numpy_tape, numpy_grad):
        np.testing.assert_allclose(c, i, rtol=1e-12, atol=1e-12)


def test_taped_gradient_matches_finite_differences_in_float64():
    graph, attrs = rnn_training_graph(*CASES["lstm_bi_proj_clip"], np.float64)
    args = arguments(graph, attrs, 4, 2, 3)
    program = program_of(graph, args)
    seeds = args[4:]
    got = program(args)
    grads = got[3:]

    def objective(values):
        outs = program(values + seeds)[:3]
        return sum(float(np.sum(o * s)) for o, s in zip(outs, seeds))

    rng = np.random.default_rng(5)
    eps = 1e-6
    for k in range(4):  # x, parameters, h0, c0
        for _ in range(6):
            index = tuple(int(rng.integers(0, n)) for n in args[k].shape)
            plus, minus = [a.copy() for a in args[:4]], [a.copy() for a in args[:4]]
            plus[k][index] += eps
            minus[k][index] -= eps
            numeric = (objective(plus) - objective(minus)) / (2 * eps)
            np.testing.assert_allclose(grads[k][index], numeric, rtol=1e-5, atol=1e-7)
