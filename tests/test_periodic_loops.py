"""Fused loops run as periodic flat loops (codegen._periodic_from): a value on the
channel-blocked layout (N, C / 16, H, W, 16) beside its per-channel operands
(1, C / 16, 1, 1, 16) and sums, as BatchNorm's steps are on that layout. Which
loops take that form, and the compiled kernels against the interpreter for
periods of 16 and others, images of one position, lower-rank operands, sums
keeping the lanes, every flat axis or none, arrays handed as views, and sizes
varied within one process; NaN, inf and -0.0 among the data."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler import Entry, Expr, ProgramGraph, call, compile_graph, settings, variable
from symgrad_compiler.backends.numba.codegen import _periodic_from, generate
from symgrad_compiler.passes import run_pipeline


def _fused_bodies(graph: ProgramGraph) -> list:
    return [n.attrs["body"] for n in run_pipeline(graph).nodes() if n.op.name == "_fused"]


def _graph(shapes, build, dtype=np.float32) -> ProgramGraph:
    variables = [variable(s, dtype) for s in shapes]
    outs = build(*(Expr(Entry(v, 0)) for v in variables))
    return ProgramGraph(variables, [o.entry for o in outs])


def _normalise(x, mean, scale, shift):
    """BatchNorm's normalise and relu on the layout, with its per-channel sums
    (keeping the lanes), a sum over the batch alone (keeping every flat axis)
    and the total."""
    y = call("relu", (x - mean) * scale + shift)
    return [
        y,
        call("sum", y * x, axis=(0, 2, 3), keepdims=True),
        call("mean", y, axis=(0, 2, 3)),
        call("sum", y, axis=(0,), keepdims=True),
        call("sum", y),
    ]


def _statistics(x):
    """BatchNorm's statistics of a float64 copy: sums keeping the lanes alone."""
    d = call("Cast", x, dtype="float64")
    return [call("mean", d, axis=(0, 2, 3), keepdims=True), call("sum", d * d, axis=(0, 2, 3))]


def _dropping_sums(x, mean):
    """Sums over outer axes that drop them, beside a per-lane operand: over the
    blocks, (N, H, W, L); over the batch and the blocks, (H, W, L)."""
    y = x * mean
    return [y, call("sum", y, axis=(1,)), call("sum", y, axis=(0, 1))]


def _lanes_of_a_row(x, lanes):
    """A lower-rank operand of the lanes alone (a (16,) row)."""
    return [x * lanes + lanes]


CASES = {
    # name: (shapes from (N, B, H, W, L), build, the first flat axis)
    "normalise": (lambda n, b, h, w, l: [(n, b, h, w, l)] + [(1, b, 1, 1, l)] * 3, _normalise, 2),
    "statistics": (lambda n, b, h, w, l: [(n, b, h, w, l)], _statistics, 2),
    "dropping_sums": (
        lambda n, b, h, w, l: [(n, b, h, w, l), (1, b, 1, 1, l)], _dropping_sums, None,
    ),
    # the row spans the lanes alone from the blocks on: those are flat too
    "lanes_of_a_row": (lambda n, b, h, w, l: [(n, b, h, w, l), (l,)], _lanes_of_a_row, 1),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][2] is not None))
def test_blocked_loops_run_periodic(case):
    shapes, build, tail = CASES[case]
    for body in _fused_bodies(_graph(shapes(4, 3, 5, 6, 16), build)):
        assert _periodic_from(body, (4, 3, 5, 6, 16)) == tail
        source = generate(body, "kernel0").source
        assert "for j0 in range(0, span, chunk):" in source
        assert f"for i{tail} in" not in source and "for i4 in" not in source


def test_loops_of_other_shapes_are_not_periodic():
    # every operand whole or constant: the trailing flat loop's case
    (body,) = _fused_bodies(_graph([(4, 3, 5, 6, 16), (1, 3, 1, 1, 1)], lambda x, c: [x * c]))
    assert _periodic_from(body, (4, 3, 5, 6, 16)) is None
    # an operand spanning W and the lanes but not H: neither whole nor a lane period
    (body,) = _fused_bodies(_graph([(4, 3, 5, 6, 16), (6, 16)], lambda x, r: [x * r]))
    assert _periodic_from(body, (4, 3, 5, 6, 16)) is None
    # a sum keeping H: H stays a loop of its own, the flat loop runs over W and the lanes
    graph = _graph(
        [(4, 3, 5, 6, 16), (1, 3, 1, 1, 16)], lambda x, c: [call("sum", x * c, axis=(0, 3, 4))]
    )
    (body,) = _fused_bodies(graph)
    assert _periodic_from(body, (4, 3, 5, 6, 16)) == 3
    # sums keeping every flat axis but dropping outer ones: their outputs are of
    # another rank than the loop (the values: test_compiled_equals_interpreted)
    shapes, build, _ = CASES["dropping_sums"]
    for body in _fused_bodies(_graph(shapes(4, 3, 5, 6, 16), build)):
        assert _periodic_from(body, (4, 3, 5, 6, 16)) is None


def _values(shape, rng, special, dtype=np.float32):
    x = rng.normal(0.2, 1.5, shape).astype(dtype)
    if special and x.size >= 4:
        x.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return x


def _views(array: np.ndarray) -> np.ndarray:
    """The same values as a transposed view of a C array (ravel copies it)."""
    if array.ndim < 2:
        return array
    return np.ascontiguousarray(np.swapaxes(array, -1, -2)).swapaxes(-1, -2)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("special", [False, True])
def test_compiled_equals_interpreted(case, special):
    shapes, build, _ = CASES[case]
    rng = np.random.default_rng(3)
    # periods of 16 and 5; an image of one position (H = W = 1 is no flat loop:
    # another kernel); 7x7 (a chunk longer than the plane); big enough for threads
    # one block of lanes (its axis of length one: the flat loop takes it in)
    sizes = [
        (2, 3, 5, 6, 16), (3, 2, 1, 7, 16), (2, 4, 7, 7, 16), (2, 3, 4, 3, 5), (2, 1, 5, 6, 16),
        (4, 4, 28, 28, 16),
    ]  # fmt: skip
    for size in sizes:
        graph = _graph(shapes(*size), build)
        base = [_values(s, rng, special) for s in shapes(*size)]
        want = compile_graph(graph, "interpreter")([b.copy() for b in base])
        with settings.override(compile="sync"):
            executable = compile_graph(graph, "numba")
            for args in (base, [_views(b) for b in base]):
                got = executable(args)
                assert executable._ready
                for g, w in zip(got, want):
                    g, w = np.asarray(g), np.asarray(w)
                    assert g.shape == w.shape and g.dtype == w.dtype
                    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
                    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)
                    exact = w == 0
                    np.testing.assert_array_equal(np.signbit(g[exact]), np.signbit(w[exact]))
