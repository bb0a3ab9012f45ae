"""A program holds the values still needed, not every value it made: the step runner,
the kernels' warm-up run and the interpreter drop each intermediate after its last
use (a DenseNet training step held 16.9 GB of them before). Peak memory is read with
tracemalloc, which numpy reports its buffers to."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from symgrad_compiler import PassRun, ProgramGraph
from symgrad_compiler.backends.numba.executable import NumbaExecutable
from symgrad_compiler.interpret import evaluate
from symgrad_compiler.ir import Entry
from symgrad_compiler.registry import make_node, variable

SIZE = 1 << 20  # float64 elements: 8 MiB a value
LINKS = 12


def op(name, *inputs, **attrs):
    return Entry(make_node(name, list(inputs), attrs), 0)


def chain_graph(size: int) -> ProgramGraph:
    """``LINKS`` sorts in a row (library steps: nothing fuses them), and the sum of the
    last two as well as the first as outputs."""
    x = variable((size,), np.float64, "x")
    values = [op("sort", Entry(x, 0))]
    for _ in range(LINKS - 1):
        values.append(op("sort", op("negative", values[-1])))
    return ProgramGraph([x], [values[0], op("elemwise_add", values[-1], values[-2])])


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def expected(graph, args):
    return evaluate(graph.live_outputs(), {graph.inputs[0]: (args[0],)})


def test_the_interpreter_drops_values_after_their_last_use():
    graph = chain_graph(SIZE)
    x = np.random.default_rng(0).standard_normal(SIZE)
    peak = peak_bytes(lambda: expected(graph, [x]))
    # holding every value would take 2 * LINKS values; the live ones are a handful
    assert peak < 7 * SIZE * 8, peak / (SIZE * 8)


def test_dead_slots_are_the_ones_no_later_step_reads():
    graph = chain_graph(16)
    plan = NumbaExecutable(PassRun(graph)).plan
    kept = set(plan.output_slots) | set(range(plan.num_inputs))
    read_later: set[int] = set()
    for step, dead in reversed(list(zip(plan.steps, plan.dead_after))):
        assert not set(dead) & (kept | read_later)
        read_later |= set(step.inputs)
    every = {s for step in plan.steps for s in (*step.inputs, *step.outputs)}
    assert {s for dead in plan.dead_after for s in dead} == every - kept


@pytest.mark.filterwarnings("ignore:symgrad. the numba backend has no whole-program")
@pytest.mark.parametrize("size", [SIZE, 1000, SIZE // 2 + 3])
def test_the_step_runner_drops_values_and_gives_the_interpreters_results(size, compiled):
    graph = chain_graph(size)
    x = np.random.default_rng(size).standard_normal(size)
    program = NumbaExecutable(PassRun(graph))
    program._compile([x])  # (the warm-up run: it drops values too)
    program._entry = None  # the step runner, not the one-call entry
    got = program([x])
    for g, e in zip(got, expected(graph, [x])):
        np.testing.assert_array_equal(g, e)
    if size == SIZE:
        # five values live at the peak; a sixth was a split kernel's arrays, held
        # by the pool's worker through its last job until its next (now and then)
        for _ in range(5):
            peak = peak_bytes(lambda: program([x]))
            assert peak < 6 * SIZE * 8, peak / (SIZE * 8)
