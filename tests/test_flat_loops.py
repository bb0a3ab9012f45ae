"""Fused loops whose trailing axes run as one flat loop (codegen._collapsed_from):
which loops collapse, and the compiled kernels against the interpreter for
arrays of every layout a kernel may be handed (C-contiguous, transposed views,
broadcast views with zero strides), arrays of length one along the collapsed
axes, lower-rank inputs, sums keeping or dropping those axes, and sizes varied
within one process; NaN, inf and -0.0 among the data."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler import Entry, Expr, ProgramGraph, call, compile_graph, settings, variable
from symgrad_compiler.backends.numba.codegen import _collapsed_from, generate
from symgrad_compiler.passes import run_pipeline


def _fused_bodies(graph: ProgramGraph) -> list:
    return [n.attrs["body"] for n in run_pipeline(graph).nodes() if n.op.name == "_fused"]


def _graph(shapes, build) -> ProgramGraph:
    """``build(*exprs)`` over variables of ``shapes``; returns a ProgramGraph of
    the entries it gives."""
    variables = [variable(s, np.float32) for s in shapes]
    outs = build(*(Expr(Entry(v, 0)) for v in variables))
    return ProgramGraph(variables, [o.entry for o in outs])


def _channel_affine(x, scale, shift):
    """BatchNorm's normalise and a relu, its per-channel sums and its total."""
    y = call("relu", x * scale + shift)
    return [
        y,
        call("sum", y * x, axis=(1,), exclude=True, keepdims=True),
        call("sum", y, axis=(1,), exclude=True, keepdims=False),
        call("sum", y),
    ]


def _over_batch(x, plane):
    """A (H, W) plane broadcast over batch and channels; a sum over the batch
    that keeps (1, C, H, W)."""
    z = x * plane + x
    return [z, call("sum", z, axis=(0,), keepdims=True)]


def _spatial_sums(x):
    """Sums over H and W that keep the batch and channel axes."""
    return [call("mean", x * x, axis=(2, 3), keepdims=True), call("sum", x, axis=(2, 3))]


CASES = {
    # name: (shapes from (N, C, H, W), build, the first collapsed axis)
    "channel_affine": (lambda n, c, h, w: [(n, c, h, w), (1, c, 1, 1), (1, c, 1, 1)],
                       _channel_affine, 2),
    "plane_over_batch": (lambda n, c, h, w: [(n, c, h, w), (h, w)], _over_batch, 2),
    "spatial_sums": (lambda n, c, h, w: [(n, c, h, w)], _spatial_sums, 2),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_which_axes_collapse(case):
    shapes, build, tail = CASES[case]
    (body,) = _fused_bodies(_graph(shapes(4, 3, 5, 6), build))
    assert _collapsed_from(body, (4, 3, 5, 6)) == tail
    source = generate(body, "kernel0").source
    assert f"for i{tail} in range(" + " * ".join(f"n{a}" for a in range(tail, 4)) in source


def test_a_loop_whose_arrays_differ_along_the_trailing_axes_keeps_them():
    # a (1, 1, 1, W) row broadcast over H: along H and W it neither spans both nor
    # is of length one along both
    (body,) = _fused_bodies(_graph([(4, 3, 5, 6), (1, 1, 1, 6)], lambda x, r: [x * r]))
    assert _collapsed_from(body, (4, 3, 5, 6)) is None
    # a sum dropping the batch axis writes (C, H, W): kept (C, H, W) axes of
    # an output of another rank are left as they are
    (body,) = _fused_bodies(
        _graph([(4, 3, 5, 6)], lambda x: [x * x, call("sum", x * x, axis=(0,))])
    )
    assert _collapsed_from(body, (4, 3, 5, 6)) is None
    # a 2-D loop has nothing to collapse behind the axis threads split
    (body,) = _fused_bodies(_graph([(4, 6), (4, 6)], lambda x, y: [x * y]))
    assert _collapsed_from(body, (4, 6)) is None


def _layouts(array: np.ndarray) -> list[np.ndarray]:
    """The same values as a C array, a transposed view of a C array and (when it
    has a leading axis of length one) a zero-stride broadcast of it."""
    turned = np.ascontiguousarray(np.swapaxes(array, -1, -2)).swapaxes(-1, -2)
    views = [array, turned]
    if array.ndim >= 1 and array.shape[0] == 1:
        wide = np.broadcast_to(array, (3, *array.shape[1:]))
        views.append(wide[:1])  # zero-stride view of the one row
    return views


def _values(shape, rng, special):
    x = rng.normal(0.2, 1.5, shape).astype(np.float32)
    if special and x.size >= 4:
        x.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return x


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("special", [False, True])
def test_compiled_equals_interpreted(case, special):
    shapes, build, _ = CASES[case]
    rng = np.random.default_rng(11)
    # one spatial size of length one; images of 7x7 and 14x14 (the remainders of
    # a vector); big enough for the loop to be split over threads
    for size in [(2, 3, 5, 6), (3, 2, 1, 7), (8, 16, 7, 7), (2, 5, 14, 14), (4, 32, 32, 32)]:
        graph = _graph(shapes(*size), build)
        base = [_values(s, rng, special) for s in shapes(*size)]
        want = compile_graph(graph, "interpreter")([b.copy() for b in base])
        with settings.override(compile="sync"):
            executable = compile_graph(graph, "numba")
            for layout in range(2):
                args = [_layouts(b)[min(layout, len(_layouts(b)) - 1)] for b in base]
                got = executable(args)
                assert executable._ready
                for g, w in zip(got, want):
                    g, w = np.asarray(g), np.asarray(w)
                    assert g.shape == w.shape
                    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
                    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)
                    exact = w == 0
                    np.testing.assert_array_equal(np.signbit(g[exact]), np.signbit(w[exact]))


def test_kernels_take_zero_stride_and_transposed_inputs_directly():
    """A kernel called on non-contiguous inputs (ravel copies them) writes the
    same values as on C arrays."""
    shapes, build, _ = CASES["channel_affine"]
    graph = _graph(shapes(2, 3, 4, 5), build)
    (node,) = [n for n in run_pipeline(graph).nodes() if n.op.name == "_fused"]
    rng = np.random.default_rng(5)
    base = [_values(s, rng, True) for s in shapes(2, 3, 4, 5)]
    with settings.override(compile="sync"):
        executable = compile_graph(graph, "numba")
        executable(base)
    (step,) = executable.plan.fused
    outs_c = step.allocate(step.loop_shape(base))
    step.kernel(*base, *outs_c)
    for layout in (1, 2):
        args = [_layouts(b)[min(layout, len(_layouts(b)) - 1)] for b in base]
        assert any(not a.flags.c_contiguous for a in args)
        outs = step.allocate(step.loop_shape(args))
        step.kernel(*args, *outs)
        for o, c in zip(outs, outs_c):
            np.testing.assert_array_equal(o, c)
