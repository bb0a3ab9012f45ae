"""A training BatchNorm followed by a relu, differentiated and fused: how many
arrays the size of the activation each loop writes (the passes' output, nothing
compiled), and the compiled program against the interpreter on several sizes in
one process, NaN, inf and -0.0 among the data."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler import Entry, ProgramGraph, compile_graph, evaluate, settings
from symgrad_compiler.autodiff import differentiate
from symgrad_compiler.passes import run_pipeline
from symgrad_compiler.registry import make_node, variable


def _bn_relu_step(shape: tuple[int, ...], dtype=np.float32) -> ProgramGraph:
    """relu(BatchNorm(x)) and the gradients of x, gamma and beta, as a hybridized
    training step records them; the activation is an output (the next layer
    reads it)."""
    channels = (shape[1],)
    x = variable(shape, dtype, name="x")
    params = [variable(channels, dtype, name=n) for n in ("gamma", "beta", "mm", "mv")]
    bn = make_node(
        "_batch_norm_train",
        [Entry(x, 0)] + [Entry(p, 0) for p in params],
        {"fix_gamma": False, "eps": 1e-5},
    )
    act = make_node("Activation", [Entry(bn, 0)], {"act_type": "relu"})
    # the next layer, opaque to fusion (a convolution in a network): the
    # activation's gradient depends on the activation through it
    turned = make_node("transpose", [Entry(act, 0)])
    head = make_node("elemwise_mul", [Entry(turned, 0), Entry(turned, 0)])
    seed = variable(head.types[0].shape, dtype, name="seed")
    wrt = [Entry(x, 0)] + [Entry(p, 0) for p in params[:2]]
    grads = differentiate([Entry(head, 0)], [Entry(seed, 0)], wrt)
    return ProgramGraph([x, *params, seed], [Entry(act, 0), *grads])


def _full_size_outputs(graph: ProgramGraph, shape: tuple[int, ...]) -> list[int]:
    """Per fused loop, how many arrays of ``shape`` it writes."""
    return [sum(t.shape == shape for t in node.types) for node in _fused_loops(graph)]


def _full_size_inputs(graph: ProgramGraph, shape: tuple[int, ...]) -> list[int]:
    """Per fused loop, how many arrays of ``shape`` it reads."""
    return [sum(e.shape == shape for e in node.inputs) for node in _fused_loops(graph)]


def _fused_loops(graph: ProgramGraph) -> list:
    return [node for node in graph.nodes() if node.op.name == "_fused"]


def test_the_forward_loop_writes_only_the_activation():
    # xhat, which the backward sums against, is recomputed there from x (stored
    # anyway); the forward loop used to write it out beside the activation
    shape = (4, 3, 5, 6)
    fused = run_pipeline(_bn_relu_step(shape))
    counts = _full_size_outputs(fused, shape)
    # forward normalise (the activation) and the last loop (dx): the statistics
    # pass and the backward's sums write none (the last loop recomputes the
    # masked, scaled gradient from the incoming one: fuse.copies_into_readers)
    assert [c for c in counts if c] == [1, 1], counts


def test_the_backward_loops_read_the_data_and_the_gradient_only():
    # the relu's mask and the normalised data are recomputed from x in both
    # backward loops (x is read there anyway): neither reads the activation
    shape = (4, 3, 5, 6)
    fused = run_pipeline(_bn_relu_step(shape))
    reads = _full_size_inputs(fused, shape)
    writes = _full_size_outputs(fused, shape)
    loops = [(r, w) for r, w in zip(reads, writes) if r]
    # statistics, forward normalise, the backward's sums, the loop writing dx
    assert loops == [(1, 0), (1, 1), (2, 0), (2, 1)], loops


def test_a_relu_after_an_opaque_op_masks_on_its_output():
    # the input of the relu is an array of its own (a convolution's output): the
    # mask reads the output, which the next layer keeps anyway, so the input
    # may be freed after the forward
    x = variable((3, 4), np.float32, name="x")
    turned = make_node("transpose", [Entry(x, 0)])
    act = make_node("Activation", [Entry(turned, 0)], {"act_type": "relu"})
    seed = variable((4, 3), np.float32, name="seed")
    (grad,) = differentiate([Entry(act, 0)], [Entry(seed, 0)], [Entry(x, 0)])
    masks = [n for n in ProgramGraph([x, seed], [grad]).nodes() if n.op.name == "_greater_scalar"]
    assert [m.inputs[0].node for m in masks] == [act]


def _data(shape, rng, special):
    x = rng.normal(0.3, 2.0, shape).astype(np.float32)
    if special:
        x.flat[:3] = [np.nan, np.inf, -0.0]  # NaN and inf fill their channel
        x[-1, -1, -1, -1] = -np.inf
    channels = shape[1]
    params = [
        rng.uniform(0.5, 1.5, channels),
        rng.uniform(-1, 1, channels),
        rng.uniform(-1, 1, channels),
        rng.uniform(0.5, 2, channels),
    ]
    seed = rng.normal(size=shape[::-1]).astype(np.float32)
    seed.flat[1] = -0.0
    return [x, *(p.astype(np.float32) for p in params), seed]


@pytest.mark.parametrize("special", [False, True])
def test_compiled_equals_interpreted_over_sizes(special):
    rng = np.random.default_rng(7)
    for shape in [(2, 3, 4, 5), (8, 16, 7, 7), (3, 5, 14, 14), (1, 2, 1, 1)]:
        graph = _bn_relu_step(shape)
        args = _data(shape, rng, special)
        expected = evaluate(graph.outputs, dict(zip(graph.inputs, [(a,) for a in args])))
        with settings.override(compile="sync"):
            executable = compile_graph(graph, "numba")
            got = executable(args)
        assert executable._ready  # the kernels ran, not the interpreter
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-5, equal_nan=True)
            assert np.array_equal(np.isnan(g), np.isnan(e))
