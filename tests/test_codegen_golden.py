"""Golden snapshots of generated kernel source for canonical graphs: a change in
what the generator writes shows up here as a readable diff."""

import numpy as np

from symgrad_compiler import Entry, Expr, ProgramGraph, call, variable
from symgrad_compiler.backends.numba.codegen import generate
from symgrad_compiler.passes import run_pipeline

BIAS_AND_TOTAL = """\
def kernel0(in0, in1, out0, out1):
    vm.prefer_512_bit_vectors()
    n0 = in0.shape[0]
    n1 = in0.shape[1]
    out0[...] = 0
    acc1 = np.float32(0)
    for i0 in range(n0):
        for i1 in range(n1):
            a0 = in0[i0, i1]
            a1 = in1[i1]
            v0 = np.float32(a0 + a1)
            v1 = np.float32(vm.tanh(v0))
            v2 = np.float32(v1 * np.float32(2.0))
            out0[i1] = vm.accumulate(out0[i1], v2)
            acc1 = vm.accumulate(acc1, v1)
    out1[0] = acc1
"""


def kernel_source(graph: ProgramGraph) -> str:
    fused = [n for n in run_pipeline(graph).nodes() if n.op.name == "_fused"]
    assert len(fused) == 1
    return generate(fused[0].attrs["body"], "kernel0").source


def test_broadcast_bias_gradient_and_whole_sum():
    """tanh(x + b): the bias gradient accumulates per column, the total in a register."""
    x, b = variable((8, 5), np.float32), variable((5,), np.float32)
    xs, bs = Expr(Entry(x, 0)), Expr(Entry(b, 0))
    y = call("tanh", xs + bs)
    graph = ProgramGraph([x, b], [call("_unbroadcast", y * 2.0, bs).entry, call("sum", y).entry])
    assert kernel_source(graph) == BIAS_AND_TOTAL


def test_float64_literals_stay_float64():
    x = variable((4,), np.float64)
    y = call("sigmoid", Expr(Entry(x, 0)) * 0.5) + 1.0
    source = kernel_source(ProgramGraph([x], [y.entry]))
    assert "np.float64(0.5)" in source and "np.float64(1.0)" in source
    assert "float32" not in source


def test_wide_vectors_can_be_turned_off(monkeypatch):
    """SYMGRAD_WIDE_VECTORS=0 leaves the 512-bit hint out of the kernel text (and
    so out of its cache identity)."""
    from symgrad_compiler.backends.numba import codegen

    x = variable((4,), np.float32)
    graph = ProgramGraph([x], [(call("tanh", Expr(Entry(x, 0))) * 2.0).entry])
    assert "vm.prefer_512_bit_vectors()" in kernel_source(graph)
    monkeypatch.setattr(codegen, "WIDE_VECTORS", False)
    assert "prefer_512_bit_vectors" not in kernel_source(graph)
