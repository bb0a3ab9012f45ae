"""Fused reductions that sum the innermost loops (BatchNorm's per-channel sums over
batch and space, W7's backward) keep their running sum in a register and add it to
the output once per outer iteration; they compute what the interpreter computes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from symgrad_compiler import Entry, Expr, ProgramGraph, call, compile_graph, variable
from symgrad_compiler.backends.numba.codegen import generate
from symgrad_compiler.passes import run_pipeline

CHANNEL_SUMS = """\
def kernel0(in0, in1, out0, out1, out2):
    vm.prefer_512_bit_vectors()
    n0 = in0.shape[0]
    n1 = in0.shape[1]
    n2 = in0.shape[2]
    n3 = in0.shape[3]
    fin0 = in0.ravel().reshape((in0.shape[0], in0.shape[1], n2 * n3))
    fin1 = in1.ravel().reshape((in1.shape[0], in1.shape[1], n2 * n3))
    fout0 = out0.reshape((out0.shape[0], out0.shape[1], n2 * n3))
    out1[...] = 0
    out2[...] = 0
    for i0 in range(n0):
        for i1 in range(n1):
            acc1 = np.float32(0)
            acc2 = np.float32(0)
            for i2 in range(n2 * n3):
                a0 = fin0[i0, i1, i2]
                a1 = fin1[i0, i1, i2]
                v0 = np.float32(a0 * a1)
                v2 = np.float32(v0 * a0)
                fout0[i0, i1, i2] = v0
                acc1 = vm.accumulate(acc1, v0)
                acc2 = vm.accumulate(acc2, v2)
            out1[0, i1, 0, 0] = vm.accumulate(out1[0, i1, 0, 0], acc1)
            out2[i1] = vm.accumulate(out2[i1], acc2)
"""


def _channel_graph(shape: tuple[int, ...], dtype: type) -> ProgramGraph:
    """Sums per channel as BatchNorm's gradient takes them: of g * xhat (dims kept)
    and of g * xhat * g (dims dropped), and the product itself."""
    g, xhat = variable(shape, dtype), variable(shape, dtype)
    gs, xs = Expr(Entry(g, 0)), Expr(Entry(xhat, 0))
    product = gs * xs
    over_batch = {"axis": (1,), "exclude": True}
    return ProgramGraph(
        [g, xhat],
        [
            call("sum", product, keepdims=True, **over_batch).entry,
            call("sum", product * gs, keepdims=False, **over_batch).entry,
            product.entry,
        ],
    )


def _kernel_source(graph: ProgramGraph) -> str:
    fused = [n for n in run_pipeline(graph).nodes() if n.op.name == "_fused"]
    assert len(fused) == 1
    return generate(fused[0].attrs["body"], "kernel0").source


def test_channel_sums_accumulate_in_registers():
    """The sums over (batch, height, width) run in registers over height and width
    (one flat loop over both), added into the channel's output after them."""
    assert _kernel_source(_channel_graph((4, 3, 5, 6), np.float32)) == CHANNEL_SUMS


def _mixed_graph(shape: tuple[int, ...], dtype: type) -> ProgramGraph:
    """Reductions keeping each pattern of axes: outer only (registers), the
    innermost (into the output per element), none (a whole-loop register),
    and a mean."""
    x, y = variable(shape, dtype), variable(shape, dtype)
    xs, ys = Expr(Entry(x, 0)), Expr(Entry(y, 0))
    z = call("relu", xs) * ys + xs
    return ProgramGraph(
        [x, y],
        [
            call("sum", z, axis=(1,), exclude=True, keepdims=True).entry,
            call("sum", z, axis=(0,), exclude=True, keepdims=False).entry,
            call("sum", z * ys, axis=(0, 2), exclude=False, keepdims=False).entry,
            call("mean", z, axis=(2, 3), exclude=False, keepdims=True).entry,
            call("sum", z).entry,
            z.entry,
        ],
    )


def _inputs(shape: tuple[int, ...], dtype: type, rng: np.random.Generator) -> list[np.ndarray]:
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    # special values in a few channels: NaN, both infinities, signed zeros
    flat[:: max(1, flat.size // 5)] = np.nan
    x[0, 0, 0, 0] = np.inf
    x[-1, -1, -1, -1] = -np.inf
    y[0, -1, 0, :] = -0.0
    return [x, y]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_registers_give_the_interpreters_sums(dtype):
    """Compiled equals interpreted, NaN and infinities in the same places, for sizes
    varied within one process (one program serves them all; the big ones are split
    over the backend's threads, each piece with its own partial sums)."""
    rng = np.random.default_rng(7)
    for shape in [(4, 3, 5, 6), (2, 5, 1, 7), (3, 2, 4, 1), (32, 8, 16, 32), (1, 1, 1, 1)]:
        graph = _mixed_graph(shape, dtype)
        values = _inputs(shape, dtype, rng)
        with np.errstate(all="ignore"):
            want = compile_graph(graph, "interpreter")([v.copy() for v in values])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = compile_graph(graph, "numba")([v.copy() for v in values])
        fallbacks = [str(w.message) for w in caught if "cannot compile" in str(w.message)]
        assert not fallbacks, "\n".join(fallbacks)
        tolerance = 1e-4 if dtype == np.float32 else 1e-10
        for g, w in zip(got, want):
            g, w = np.asarray(g), np.asarray(w)
            assert g.shape == w.shape, shape
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance * 50)
