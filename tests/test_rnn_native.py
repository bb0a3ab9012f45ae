"""The RNN op's backward as one op (``_rnn_grad``) and its compiled time loops.

- ``_rnn_grad``'s numpy implementation equals the vector-Jacobian product of the
  recurrence unrolled into registered ops (the previous gradient) in float64, for
  every mode and option, dropout masks included; gradients through autograd match
  finite differences;
- the numba kernels (RNN forward, ``_rnn_grad``) equal the numpy implementations,
  float64 and float32;
- compiled programs equal the interpreter while the sequence length and batch size
  change in one process (the gradient no longer keys on sizes: a program must never
  be reused where it is wrong), and a program holding an LSTM's forward and
  backward runs as one compiled call (the whole-program entry).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import autograd
from symgrad import op_testing as tu
from symgrad_compiler import settings
from symgrad_compiler.ops.rnn import draws_masks, rnn_param_size, unrolled_vjp
from symgrad_compiler.registry import get_op, variable

# ---------------------------------------------------------------------------
# configurations: every mode, and each option on the modes it applies to
# ---------------------------------------------------------------------------

MODES = ["rnn_relu", "rnn_tanh", "lstm", "gru"]
CONFIGS = [
    *({"mode": m, "bidirectional": b} for m, b in itertools.product(MODES, [False, True])),
    *({"mode": m, "bidirectional": True, "lengths": True} for m in MODES),
    {"mode": "lstm", "bidirectional": True, "projection_size": 2},
    {"mode": "lstm", "bidirectional": False, "projection_size": 2, "lengths": True},
    {"mode": "lstm", "clip": (-0.2, 0.3)},
    {"mode": "lstm", "clip": (-0.2, 0.3), "clip_nan": True, "bidirectional": True},
    {"mode": "gru", "layers": 3},
]


def _name(config: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in config.items())


def _attrs(config: dict, p: float = 0.0, is_train: bool = False) -> dict:
    clip = config.get("clip")
    return {
        "state_size": 3,
        "num_layers": config.get("layers", 2),
        "mode": config["mode"],
        "bidirectional": config.get("bidirectional", False),
        "p": p,
        "state_outputs": True,
        "projection_size": config.get("projection_size"),
        "lstm_state_clip_min": clip[0] if clip else None,
        "lstm_state_clip_max": clip[1] if clip else None,
        "lstm_state_clip_nan": config.get("clip_nan", False),
        "use_sequence_length": bool(config.get("lengths")),
        "is_train": is_train,
    }


def _inputs(config: dict, rng, steps=4, batch=3, features=5, dtype=np.float64) -> list:
    attrs = _attrs(config)
    mode, layers = attrs["mode"], attrs["num_layers"]
    directions = 2 if attrs["bidirectional"] else 1
    width = attrs["projection_size"] or 3
    size = rnn_param_size(
        mode, layers, features, 3, attrs["bidirectional"], attrs["projection_size"]
    )
    values = [
        rng.uniform(-1, 1, (steps, batch, features)),
        rng.uniform(-0.7, 0.7, (size,)),
        rng.uniform(-1, 1, (layers * directions, batch, width)),
    ]
    if mode == "lstm":
        values.append(rng.uniform(-1, 1, (layers * directions, batch, 3)))
    values = [v.astype(dtype) for v in values]
    if config.get("lengths"):
        values.append(rng.integers(1, steps + 1, batch).astype(dtype))
    return values


def _forward_and_seeds(values, attrs, rng):
    outs = get_op("RNN").impl(*values, **attrs)
    visible = 3 if attrs["mode"] == "lstm" else 2
    seeds = [rng.uniform(-1, 1, o.shape).astype(o.dtype) for o in outs[:visible]]
    return list(outs), seeds


# ---------------------------------------------------------------------------
# _rnn_grad's numpy implementation against the unrolled recurrence
# ---------------------------------------------------------------------------


def _unrolled_gradients(values, outs, seeds, attrs):
    """The previous gradient: the unrolled recurrence's reverse walk, interpreted."""
    nodes = [variable(v.shape, v.dtype, name=f"x{i}") for i, v in enumerate(values)]
    rnn = compiler.make_node("RNN", [compiler.Entry(n, 0) for n in nodes], attrs)
    seed_nodes = [variable(s.shape, s.dtype, name=f"g{i}") for i, s in enumerate(seeds)]
    forward = tuple(compiler.Expr(compiler.Entry(rnn, k)) for k in range(rnn.num_outputs))
    grads = unrolled_vjp(
        tuple(compiler.Expr(compiler.Entry(n, 0)) for n in seed_nodes),
        *(compiler.Expr(compiler.Entry(n, 0)) for n in nodes),
        out=forward,
        **attrs,
    )
    wanted = [g.entry for g in grads if g is not None]
    given = {n: (v,) for n, v in zip(nodes + seed_nodes, values + seeds)}
    given[rnn] = tuple(outs)  # the masks this forward drew
    return compiler.evaluate(wanted, given)


@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_backward_op_equals_the_unrolled_gradient(config):
    rng = np.random.default_rng(1)
    attrs = _attrs(config)
    values = _inputs(config, rng)
    outs, seeds = _forward_and_seeds(values, attrs, rng)
    got = get_op("_rnn_grad").impl(*values, *outs, *seeds, **attrs)
    expected = _unrolled_gradients(values, outs, seeds, attrs)
    assert len(got) == len(expected) == (4 if attrs["mode"] == "lstm" else 3)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == np.float64
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_backward_op_reads_the_forward_dropout_masks(mode):
    rng = np.random.default_rng(2)
    config = {"mode": mode, "bidirectional": True}
    attrs = _attrs(config, p=0.5, is_train=True)
    assert draws_masks(attrs)
    values = _inputs(config, rng)
    outs, seeds = _forward_and_seeds(values, attrs, rng)
    masks = outs[-1]
    assert set(np.unique(masks)) == {0.0, 2.0}
    got = get_op("_rnn_grad").impl(*values, *outs, *seeds, **attrs)
    for g, e in zip(got, _unrolled_gradients(values, outs, seeds, attrs)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("config", [CONFIGS[i] for i in (3, 9, 10, 12, 13)], ids=_name)
def test_gradients_match_finite_differences(config):
    rng = np.random.default_rng(3)
    attrs = _attrs(config)
    values = _inputs(config, rng)
    lengths = values.pop() if config.get("lengths") else None

    def fn(*arrays):
        extra = [mx.nd.array(lengths, dtype="float64")] if lengths is not None else []
        return mx.nd.RNN(*arrays, *extra, **attrs)

    fn.__name__ = f"RNN[{_name(config)}]"
    tu.check_numeric_gradient(fn, values)


def test_the_gradient_is_one_backward_op_for_any_length():
    """RNN's gradient rule is a single _rnn_grad node, whatever T: no op per step."""
    counts = []
    for steps in (2, 9):
        x = variable((steps, 2, 3), np.float64)
        params = variable((rnn_param_size("lstm", 1, 3, 4),), np.float64)
        h, c = variable((1, 2, 4), np.float64), variable((1, 2, 4), np.float64)
        attrs = _attrs({"mode": "lstm", "layers": 1}) | {"state_size": 4}
        rnn = compiler.make_node("RNN", [compiler.Entry(n, 0) for n in (x, params, h, c)], attrs)
        seed = compiler.make_node("ones_like", [compiler.Entry(rnn, 0)], {})
        grads = compiler.differentiate(
            [compiler.Entry(rnn, 0)], [compiler.Entry(seed, 0)], [compiler.Entry(x, 0)]
        )
        nodes = compiler.topo_order([g for g in grads if g is not None])
        counts.append(sorted(n.op.name for n in nodes if not n.is_variable))
    assert counts[0] == counts[1] == ["RNN", "_rnn_grad", "ones_like", "zeros_like", "zeros_like"]
    assert not get_op("RNN").sized_grad and get_op("_rnn_grad").sized_grad


# ---------------------------------------------------------------------------
# the numba kernels against the numpy implementations
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernels():
    """The compiled RNN forward and backward kernels (one module for both)."""
    from symgrad_compiler.backends.numba import disk_cache
    from symgrad_compiler.backends.numba.lowerings import LOWERINGS, module_text

    module = disk_cache.load(module_text([LOWERINGS["RNN"]]))
    assert LOWERINGS["RNN"].kernels == LOWERINGS["_rnn_grad"].kernels
    return module.lib_rnn_forward, module.lib_rnn_backward


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_equal_the_numpy_implementations(kernels, dtype):
    from symgrad_compiler.backends.numba.lowerings import rnn as lowering

    forward, backward = kernels
    rtol, atol = (1e-12, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    rng = np.random.default_rng(4)
    for config, p in [(c, 0.0) for c in CONFIGS] + [({"mode": "gru", "bidirectional": True}, 0.4)]:
        attrs = _attrs(config, p=p, is_train=p > 0)
        # sizes vary between calls of the same kernels
        for steps, batch in [(4, 3), (1, 2), (6, 1)]:
            values = _inputs(config, rng, steps, batch, dtype=dtype)
            outs, seeds = _forward_and_seeds(values, attrs, rng)
            if p == 0:  # a forward drawing masks stays numpy's (the frontend's generator)
                got = lowering._forward(forward, *values, **attrs)
                assert len(got) == len(outs)
                for g, e in zip(got, outs):
                    assert g.dtype == dtype
                    np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=_name(config))
            expected = get_op("_rnn_grad").impl(*values, *outs, *seeds, **attrs)
            got = lowering._backward(backward, *values, *outs, *seeds, **attrs)
            for g, e in zip(got, expected):
                assert g.dtype == dtype and g.shape == e.shape
                np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=_name(config))


# ---------------------------------------------------------------------------
# compiled programs: sizes changing in one process, the whole-program entry
# ---------------------------------------------------------------------------


def _lm_step(x, params, h, c, weight, attrs):
    """An LSTM's output through a projection, squared and summed: value and grads."""
    arrays = [mx.nd.array(a, dtype=a.dtype.name) for a in (x, params, h, c)]
    for a in arrays:
        a.attach_grad()
    w = mx.nd.array(weight, dtype=weight.dtype.name)
    with autograd.record():
        out, hy, cy = mx.nd.RNN(*arrays, **attrs)
        loss = (mx.nd.dot(out.reshape((-1, out.shape[2])), w) ** 2).sum() + (hy * cy).sum()
    loss.backward()
    return [loss.asnumpy()] + [a.grad.asnumpy() for a in arrays]


@pytest.mark.slow
def test_compiled_gradients_follow_changing_sizes(compiled):
    """The same recorded code at lengths 5, 2, 1, 7 and batches 3, 1: compiled runs
    equal the interpreter's each time (one program per structure, re-planned per
    size, never a wrong reuse)."""
    attrs = _attrs({"mode": "lstm", "bidirectional": True}) | {"state_size": 4}
    size = rnn_param_size("lstm", 2, 3, 4, True)
    rng = np.random.default_rng(5)
    weight = rng.uniform(-1, 1, (8, 2))
    for steps, batch in [(5, 3), (5, 3), (2, 3), (1, 3), (7, 1), (5, 3), (1, 1)]:
        inputs = [
            rng.uniform(-1, 1, (steps, batch, 3)),
            rng.uniform(-0.5, 0.5, (size,)),
            rng.uniform(-1, 1, (4, batch, 4)),
            rng.uniform(-1, 1, (4, batch, 4)),
        ]
        got = _lm_step(*inputs, weight, attrs)
        with settings.override(backend="interpreter"):
            expected = _lm_step(*inputs, weight, attrs)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def _program(config: dict, steps: int, batch: int, dtype=np.float64):
    """A program graph: an RNN's forward, a loss on its outputs and the gradients
    of every input (an RNN and a _rnn_grad node, elementwise kernels between)."""
    rng = np.random.default_rng(6)
    attrs = _attrs(config)
    values = _inputs(config, rng, steps, batch, dtype=dtype)
    nodes = [variable(v.shape, v.dtype, name=f"x{i}") for i, v in enumerate(values)]
    entries = [compiler.Entry(n, 0) for n in nodes]
    rnn = compiler.make_node("RNN", entries, attrs)
    out = compiler.Expr(compiler.Entry(rnn, 0))
    hy = compiler.Expr(compiler.Entry(rnn, 1))
    loss = compiler.call("sum", compiler.call("tanh", out) * out) + compiler.call("sum", hy * hy)
    wrt = entries[: 4 if attrs["mode"] == "lstm" else 3]
    one = compiler.make_node("ones_like", [loss.entry], {})
    grads = compiler.differentiate([loss.entry], [compiler.Entry(one, 0)], wrt)
    return compiler.ProgramGraph(nodes, [loss.entry, *grads]), values


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [{"mode": "lstm"}, {"mode": "gru", "bidirectional": True, "lengths": True}],
    ids=_name,
)
def test_a_program_with_an_rnn_runs_as_one_compiled_call(config):
    graph, values = _program(config, 6, 3)
    interpreted = compiler.compile_graph(graph, "interpreter")
    with settings.override(compile="sync"), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "runs step by step" warning for RNN ops
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(3):
            got = executable(values)
    ops = {step.node.op.name for step in executable.plan.steps}
    # the forward and its gradient in one program share the forward's tape
    # (passes/rnn_tape.py): the recurrence runs forward once
    assert {"_rnn_forward_taped", "_rnn_grad_taped"} <= ops
    assert not {"RNN", "_rnn_grad"} & ops
    assert executable.plan.entry is not None
    assert executable._entry is not None and executable._entry(values) is not None
    for g, e in zip(got, interpreted(values)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
    # another length and batch through the same program
    _, other = _program(config, 2, 5)
    for g, e in zip(executable(other), interpreted(other)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_zero_states_broadcast_from_a_column_compile():
    """Gluon's recurrent layers make their zero states as a (1, N, 1) column broadcast
    to (L, N, H): no input gives a kernel the lengths L and H, so fusion leaves the
    op alone (its kernel had failed to generate, sending every hybridized recurrent
    model's program to the interpreter)."""
    from symgrad_compiler.passes.fuse import fuse

    column = variable((1, 3, 1), np.float64, name="column")
    zeros = compiler.make_node("broadcast_to", [compiler.Entry(column, 0)], {"shape": (2, 0, 4)})
    doubled = compiler.call("tanh", compiler.Expr(compiler.Entry(zeros, 0))) * 2.0
    graph = compiler.ProgramGraph([column], [compiler.Entry(zeros, 0), doubled.entry])
    # the group of the broadcast and what follows it has no sized input: plain ops
    ops = [n.op.name for n in fuse(graph).nodes() if not n.is_variable]
    assert ops == ["broadcast_to", "tanh", "_mul_scalar"]
    value = np.arange(3.0).reshape(1, 3, 1)
    with settings.override(compile="sync"), warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*cannot compile")
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(3):
            got = executable([value])
    np.testing.assert_array_equal(got[0], np.broadcast_to(value, (2, 3, 4)))
    np.testing.assert_allclose(got[1], 2 * np.tanh(np.broadcast_to(value, (2, 3, 4))))


def test_rnn_without_dropout_masks_is_recorded_deferred():
    # RNN is a random op, but a call that draws no masks is pure: recorded without
    # running, so the program that differentiates it computes its forward too
    # (compiled); a call that draws masks runs at once, as before
    from symgrad import autograd, nd
    from symgrad.gluon import rnn as grnn

    for dropout, deferred in ((0.0, True), (0.5, False)):
        layer = grnn.LSTM(4, num_layers=2, dropout=dropout, input_size=3)
        layer.initialize()
        data = nd.array(np.linspace(-1, 1, 5 * 2 * 3).reshape(5, 2, 3))
        with autograd.record():
            out = layer(data)
        assert (out._value is None) == deferred
        out.backward()
        grads = [p.grad().asnumpy() for p in layer.collect_params().values()]
        assert all(np.isfinite(g).all() for g in grads)
