"""Lowering libraries (disk_cache.library_line): a program's module imports the
kernels of its convolutions, poolings and recurrences from a module of their own,
and its entry calls them with runtime values, so that programs of different
kernel sizes, strides or modes share one compile of each library function."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.backends.numba import disk_cache
from symgrad_compiler.backends.numba.emit import runtime_value
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.backends.numba.lowerings import LOWERINGS, module_text
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.registry import make_node, variable


def conv_program(kernel, stride, pad, size):
    """A program of a convolution, a max pooling and a sum: one entry of three steps."""
    x = variable((2, 3, size, size), np.float32, "x")
    w = variable((4, 3, kernel, kernel), np.float32, "w")
    conv = Entry(
        make_node(
            "Convolution",
            [Entry(x, 0), Entry(w, 0)],
            {
                "kernel": (kernel, kernel),
                "stride": (stride, stride),
                "pad": (pad, pad),
                "num_filter": 4,
                "no_bias": True,
            },
        ),
        0,
    )
    pooled = Entry(
        make_node("Pooling", [conv], {"kernel": (2, 2), "stride": (2, 2), "pool_type": "max"}), 0
    )
    total = Entry(make_node("sum", [pooled], {}), 0)
    return ProgramGraph([x, w], [pooled, total])


def test_a_programs_module_imports_its_libraries_instead_of_pasting_them():
    text = module_text([LOWERINGS["Convolution"], LOWERINGS["Pooling"], LOWERINGS["Convolution"]])
    lines = text.splitlines()
    assert len(lines) == 2 and all(line.startswith("globals().update(library(") for line in lines)
    module = disk_cache.load(text)
    # the names the step runner and the entry call are the library's own functions
    library = disk_cache.library(ast.literal_eval(lines[0].split("library(")[1].split(")")[0]))
    assert module.lib_conv_forward is library["lib_conv_forward"]
    assert module.lib_conv_forward.__module__ != module.__name__


@pytest.mark.parametrize(
    "value, source",
    [
        (3, "np.int64(3)"),
        (True, "np.bool_(True)"),
        ((1, 3, 3), "(np.int64(1), np.int64(3), np.int64(3))"),
        ((2,), "(np.int64(2),)"),
        (np.int32(5), "np.int64(5)"),
    ],
)
def test_runtime_values_are_written_through_numpy_scalars(value, source):
    assert runtime_value(value) == source


def test_runtime_value_refuses_what_it_cannot_write():
    with pytest.raises(TypeError, match="runtime_value"):
        runtime_value(1.5)


def test_programs_of_other_kernel_sizes_share_one_compile_of_the_library(compiled):
    rng = np.random.default_rng(0)
    forward = None
    for kernel, stride, pad, size in [(3, 1, 1, 10), (5, 2, 2, 11), (1, 1, 0, 8), (3, 1, 1, 10)]:
        graph = conv_program(kernel, stride, pad, size)
        args = [
            rng.normal(size=(2, 3, size, size)).astype(np.float32),
            rng.normal(size=(4, 3, kernel, kernel)).astype(np.float32),
        ]
        program = NumbaExecutable(PassRun(graph))
        program._compile([np.array(a) for a in args])
        assert program._ready and program._entry is not None
        got = program._entry(args)
        expected = evaluate(graph.live_outputs(), {v: (a,) for v, a in zip(graph.inputs, args)})
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-5)
        forward = disk_cache.load(program.plan.module_text).lib_conv_forward
    # every call, the step runner's and the entries' alike, took one signature
    float32_rank5 = [s for s in forward.signatures if "float32" in str(s[0])]
    assert len(float32_rank5) == 1, forward.signatures
