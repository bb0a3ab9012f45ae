"""A compiled program: the passes' output turned into a list of steps.

Each ``_fused`` node becomes one call of a generated numba kernel; every other op
runs its registered numpy implementation (BLAS calls for dot and
FullyConnected, numpy for the rest). All kernels of a program live in one
generated module. Until the kernels are ready, which happens in a background
thread unless ``SYMGRAD_COMPILE=sync``, calls run on the interpreter, so the first
backward of a new graph never waits for numba.
"""

from __future__ import annotations

import math
import operator
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..ir import Node
from ..passes import format_graph, run_pipeline, simplify
from ..program import ProgramGraph, interpret_runner
from . import background, cache, library, threads
from .codegen import KernelSource, generate
from .entry import EntrySource, entry_runner, generate_entry


class _FusedStep:
    """One generated kernel: allocates its outputs (or writes into given
    destinations) and, for large loops, splits the outermost loop over threads.

    Runs on every call of a program, so everything that does not depend on the
    arrays is worked out once here (a small program costs microseconds)."""

    def __init__(self, node: Node, source: KernelSource, inputs: list[int], outputs: list[int]):
        self.node, self.source = node, source
        self.inputs, self.outputs = inputs, outputs
        self.kernel: Callable | None = None
        self.reduces = [spec.reduce for spec in source.outputs]
        self.dtypes = [spec.dtype for spec in source.outputs]
        self.shape_from = source.shape_from
        # outputs that are means: (index, loop axes they keep); the launcher divides
        self.means = [
            (j, {a for a in spec.axes if a is not None})
            for j, spec in enumerate(source.outputs)
            if spec.mean
        ]
        self._shapes: tuple[tuple, list] = ((), [])  # (loop sizes, output shapes) last seen

    @staticmethod
    def _along_rows(array: np.ndarray, loop: Sequence[int]) -> bool:
        return array.ndim == len(loop) and array.shape[0] != 1

    def loop_shape(self, args: Sequence[np.ndarray]) -> tuple[int, ...]:
        return tuple([args[i].shape[axis] for i, axis in self.shape_from])

    def allocate(
        self,
        loop: Sequence[int],
        destinations: dict | None = None,
    ) -> list[np.ndarray]:
        seen, shapes = self._shapes
        if loop != seen:  # a new batch size: new output shapes, the same kernel
            shapes = [
                tuple(1 if a is None else loop[a] for a in spec.axes)
                for spec in self.source.outputs
            ]
            self._shapes = (loop, shapes)
        if not destinations:
            return [np.empty(shape, dtype) for shape, dtype in zip(shapes, self.dtypes)]
        outs = []
        for slot, shape, dtype, reduces in zip(self.outputs, shapes, self.dtypes, self.reduces):
            target = destinations.get(slot)
            if (
                target is not None
                and target.shape == shape
                and target.dtype == dtype
                and target.flags.c_contiguous
                and not reduces
            ):
                outs.append(target)
            else:
                outs.append(np.empty(shape, dtype))
        return outs

    def __call__(self, slots: list, destinations: dict | None = None) -> None:
        args = [slots[i] for i in self.inputs]
        loop = tuple([args[i].shape[axis] for i, axis in self.shape_from])
        outs = self.allocate(loop, destinations)
        elements = math.prod(loop)
        if elements < threads.MINIMUM:
            self.kernel(*args, *outs)
        else:
            self._run_split(args, outs, loop, elements)
        for j, kept in self.means:
            outs[j] /= math.prod(n for a, n in enumerate(loop) if a not in kept)
        for slot, value in zip(self.outputs, outs):
            slots[slot] = value

    def _run_split(self, args: list, outs: list, loop: tuple, elements: int) -> None:
        pieces = threads.split(loop[0] if loop else 1, elements)
        if len(pieces) == 1:
            self.kernel(*args, *outs)
            return
        # Reductions get one partial result per piece, rows of one array summed
        # by a single numpy call afterwards.
        partials = {
            j: np.empty((len(pieces), *o.shape), o.dtype)
            for j, (o, r) in enumerate(zip(outs, self.reduces))
            if r
        }
        along = [self._along_rows(a, loop) for a in args]
        calls = []
        for k, (lo, hi) in enumerate(pieces):
            # Arrays that run along the outermost loop axis are cut to the slice;
            # broadcast ones are passed whole.
            part_args = [a[lo:hi] if cut else a for a, cut in zip(args, along)]
            part_outs = [
                partials[j][k] if r else o[lo:hi]
                for j, (o, r) in enumerate(zip(outs, self.reduces))
            ]
            calls.append((*part_args, *part_outs))
        threads.run(self.kernel, calls)
        for j, partial in partials.items():
            np.sum(partial, axis=0, out=outs[j])


class _LibraryStep:
    """An op that is not fused: its numpy implementation, or a row kernel (see
    :mod:`.library`) where the op has one."""

    def __init__(
        self, node: Node, inputs: list[int], outputs: list[int], row: library.RowStep | None = None
    ):
        self.node, self.inputs, self.outputs, self.row = node, inputs, outputs, row
        self.gemm = node.op.name == "dot" and all(len(e.shape) == 2 for e in node.inputs)

    def __call__(self, slots: list, destinations: dict | None = None) -> None:
        args = [slots[i] for i in self.inputs]
        if self.gemm and destinations:
            # A matrix product that is a gradient with grad_req 'write' goes
            # straight into the gradient's buffer: no copy of a weight-sized array.
            target = destinations.get(self.outputs[0])
            if target is not None and library.gemm_into(*args, target, **self.node.attrs):
                slots[self.outputs[0]] = target
                return
        if self.row is not None:
            result = self.row(*args)
        else:
            result = self.node.op.impl(*args, **self.node.attrs)
        if not isinstance(result, tuple):
            result = (result,)
        for slot, value in zip(self.outputs, result):
            slots[slot] = value


class _ConstantStep:
    """A fill (``_ones``, ``_zeros``, ``_full``) read only by kernels, made once
    when the plan is built: kernels never write into their inputs, so every call
    can read the same array. A fill that is itself a program output is copied
    (the caller owns it)."""

    FILLS = ("_ones", "_zeros", "_full")

    def __init__(self, node: Node, outputs: list[int], is_output: bool):
        self.node, self.inputs, self.outputs = node, [], outputs
        self.value = node.op.impl(**node.attrs)
        self.is_output = is_output

    def __call__(self, slots: list, destinations: dict | None = None) -> None:
        slots[self.outputs[0]] = self.value.copy() if self.is_output else self.value


class _Plan:
    """A program after the passes: its steps, their slots and the kernels' module."""

    def __init__(self, graph: ProgramGraph):
        self.graph = run_pipeline(graph)
        slot: dict[tuple[int, int], int] = {}
        self.slot_types = []
        for i, var in enumerate(self.graph.inputs):
            slot[(id(var), 0)] = i
            self.slot_types.append(var.types[0])
        count = len(self.graph.inputs)
        self.steps: list[Any] = []
        self.fused: list[_FusedStep] = []
        self.rows: list[library.RowStep] = []
        returned = {id(o.node) for o in self.graph.outputs if o is not None}
        # A fill read only by kernels can be shared by every call; a library op
        # might hand out a view of it (a reshape), which the caller could write.
        read_by_library = {
            id(e.node)
            for node in self.graph.nodes()
            if not node.is_variable and node.op.name != "_fused"
            for e in node.inputs
        }
        for node in self.graph.nodes():
            if node.is_variable:
                continue
            inputs = [slot[(id(e.node), e.index)] for e in node.inputs]
            outputs = list(range(count, count + node.num_outputs))
            for k, s in enumerate(outputs):
                slot[(id(node), k)] = s
            count += node.num_outputs
            self.slot_types.extend(node.types)
            if node.op.name == "_fused":
                source = generate(node.attrs["body"], f"kernel{len(self.fused)}")
                step = _FusedStep(node, source, inputs, outputs)
                self.fused.append(step)
            elif node.op.name in _ConstantStep.FILLS and id(node) not in read_by_library:
                step = _ConstantStep(node, outputs, id(node) in returned)
            else:
                row = library.row_step(node)
                if row is not None:
                    self.rows.append(row)
                step = _LibraryStep(node, inputs, outputs, row)
            self.steps.append(step)
        self.num_slots = count
        self.num_inputs = len(self.graph.inputs)
        # User callbacks (autograd Functions) are the ops that take a "callback" attr.
        self.has_callbacks = any(
            isinstance(step, _LibraryStep) and "callback" in step.node.op.attrs
            for step in self.steps
        )
        self.output_slots = [
            None if o is None else slot[(id(o.node), o.index)] for o in self.graph.outputs
        ]
        # More than one step: worth one compiled call for the whole program.
        self.entry: EntrySource | None = None
        if len(self.steps) > 1 and not self.has_callbacks:
            self.entry = generate_entry(self)
        self.module_text = "\n\n".join(
            ["@_jit\n" + step.source.source for step in self.fused]
            + ([library.module_text()] if self.rows else [])
            + ([self.entry.source] if self.entry else [])
        )


class CompiledProgram:
    """Runs a program graph as fused kernels and library calls.

    The passes and code generation run when the program is first compiled (in the
    background by default), so that a first call answered by the interpreter pays
    for neither.
    """

    def __init__(self, graph: ProgramGraph):
        self.source_graph = graph
        # Until kernels are ready, calls run on the interpreter over the simplified
        # graph: common subexpressions merged, identities gone, fewer numpy passes.
        self.fallback = interpret_runner(simplify(graph))
        self._plan: _Plan | None = None
        self._ready = False
        self._failed = False
        self._compiling: background.Job | None = None
        self._calls = 0  # calls answered before compiling started (see compile_after)
        self._lock = threading.Lock()
        self._direct: Callable | None = None  # set once the kernels are ready
        self._entry: Callable | None = None  # likewise

    @property
    def plan(self) -> _Plan:
        """The program after the passes (made on first use)."""
        if self._plan is None:
            self._plan = _Plan(self.source_graph)
        return self._plan

    @property
    def graph(self) -> ProgramGraph:
        """The program graph after the passes."""
        return self.plan.graph

    @property
    def steps(self) -> list:
        """Kernel and library steps, in order."""
        return self.plan.steps

    @property
    def fused(self) -> list[_FusedStep]:
        """The kernel steps."""
        return self.plan.fused

    @property
    def direct(self) -> Callable | None:
        """Once the kernels are ready and if the program is one small kernel: a
        cheaper way to run it, ``direct(args, out=None)``, which returns None
        when the general path (``self(args, out)``) must run instead."""
        return self._direct

    # -- compilation ------------------------------------------------------------
    def _bind_kernels(self) -> None:
        if not self.plan.module_text:
            return
        module = cache.load(self.plan.module_text)
        for step in self.fused:
            step.kernel = getattr(module, step.source.name)
        for row in self.plan.rows:
            row.kernel = getattr(module, row.kernel_name)

    def _compile(self, args: Sequence[np.ndarray]) -> None:
        """Load or compile every kernel for the types of ``args``, by running the
        program once on them. A kernel the generator or numba cannot handle (a
        loop nest deeper than Python allows, say) leaves the program on the
        interpreter for good, with one warning: slower, never wrong or fatal."""
        try:
            self._compile_kernels(args)
        except Exception as err:  # noqa: BLE001  (any failure has the same remedy)
            self._failed = True
            warnings.warn(
                f"symgrad: cannot compile a program ({type(err).__name__}: "
                f"{err}); running it on the interpreter",
                RuntimeWarning,
                stacklevel=2,
            )

    def _compile_kernels(self, args: Sequence[np.ndarray]) -> None:
        self._bind_kernels()
        slots: list = [None] * self.plan.num_slots
        slots[: len(args)] = args
        for step in self.steps:
            if isinstance(step, _FusedStep):
                kernel_args = [slots[i] for i in step.inputs]
                loop = step.loop_shape(kernel_args)
                outs = step.allocate(loop)
                cache.first_call(step.kernel, [*kernel_args, *outs])
                for slot, value in zip(step.outputs, outs):
                    slots[slot] = value
            else:
                step(slots)
        self._direct = _direct_runner(self.plan)
        # The kernels are ready: calls run step by step while the whole-program
        # entry compiles (with an empty cache a W2-sized entry takes seconds), then
        # through the entry.
        self._ready = True
        self._entry = self._compile_entry(args)

    def _compile_entry(self, args: Sequence[np.ndarray]) -> Callable | None:
        """Compile the whole-program entry (see :mod:`.entry`) if the plan has one.
        A failure is a generator bug, not the user's: one warning, and the program
        runs step by step."""
        source = self.plan.entry
        if source is None or not all(isinstance(a, np.ndarray) for a in args):
            return None
        limit = threads.split_limit()
        try:
            function = cache.load(self.plan.module_text).program_entry
            run = entry_runner(function, source, len(self.plan.output_slots), limit)
            arrays = [np.ascontiguousarray(a) for a in args]
            targets = [np.empty((0,) * ndim, dtype) for _, dtype, ndim in source.destinations]
            cache.first_call(function, [*arrays, *source.constants, *targets, limit])
        except Exception as err:  # noqa: BLE001
            warnings.warn(
                f"symgrad: cannot compile a program's entry ({type(err).__name__}: "
                f"{err}); running it step by step",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        return run

    def _start(self, args: Sequence[np.ndarray]) -> None:
        copies = [np.array(a) for a in args]  # the caller may overwrite its arrays
        self._compiling = background.submit(lambda: self._compile(copies))

    def wait(self) -> None:
        """Block until the kernels are ready."""
        job = self._compiling
        if job is not None:
            job.wait()

    # -- running ------------------------------------------------------------------
    def __call__(self, args: Sequence[np.ndarray], out: Sequence[Any] | None = None) -> list:
        if not self._ready:
            if compile_mode() == "sync":
                with self._lock:
                    if not self._ready and not self._failed:
                        self._compile([np.array(a) for a in args])
                if not self._ready:
                    return self.fallback(args, out)
            else:
                # Answer this call on the interpreter first, then let numba work in the
                # background: a first backward never waits for, or competes with, it.
                # A program compiles once it has been called often enough that the
                # investment may pay (a graph run once never compiles).
                result = self.fallback(args, out)
                self._calls += 1
                if self._calls >= compile_after():
                    with self._lock:
                        if self._compiling is None and not self._ready and not self._failed:
                            self._start(args)
                return result
        direct = self._direct
        if direct is not None:
            results = direct(args, out)
            if results is not None:
                return results
        entry = self._entry
        if entry is not None:
            results = entry(args, out)
            if results is not None:
                return results
        plan = self._plan
        slots: list = [None] * plan.num_slots
        slots[: len(args)] = args
        destinations = None
        # A program with user callbacks could fail half-way, after writing some
        # destinations; it computes into fresh arrays instead.
        if out is not None and not plan.has_callbacks:
            destinations = {
                slot: target
                for slot, target in zip(plan.output_slots, out)
                if slot is not None and target is not None
            }
        for step in plan.steps:
            step(slots, destinations)
        # An output that simplification reduced to an input must not alias it.
        return [
            None if s is None else slots[s].copy() if s < plan.num_inputs else slots[s]
            for s in plan.output_slots
        ]

    def specialised(self, args: Sequence[np.ndarray]) -> Callable | None:
        """``fast(args, outs=None)`` for calls with inputs of exactly the classes,
        shapes and dtypes of ``args``: the whole-program entry without this call's
        checks and bookkeeping (see ``entry_runner``); None where the program does
        not run as one call. ``fast`` returns None when the step runner must run."""
        entry = self._entry
        return None if entry is None or self._direct is not None else entry.specialised(args)

    def explain(self) -> str:
        """The program after the passes and the source of its kernels."""
        parts = [format_graph(self.graph)]
        for step in self.fused:
            parts.append(
                f"# {step.source.name}: loop rank {step.source.rank}\n{step.source.source}"
            )
        if self.plan.rows:
            names = ", ".join(sorted({row.node.op.name for row in self.plan.rows}))
            parts.append(f"# row kernels (for {names})\n{library.module_text()}")
        if self.plan.entry:
            parts.append(
                "# the whole program as one call (when it fits; see "
                f"compiler/lower/entry.py)\n{self.plan.entry.source}"
            )
        return "\n\n".join(parts)


def _direct_runner(plan: _Plan) -> Callable | None:
    """For a program that is one small kernel and nothing else (what a small graph
    usually becomes), a runner that calls the kernel straight from the arguments:
    no slots, no destinations, output shapes worked out once per input shapes.
    Returns None for any other program. The runner itself returns None (the
    caller then takes the general path) for loops big enough to split over
    threads: it only ever runs what ``_FusedStep.__call__`` would run on the
    calling thread. A W3-sized call (tens of microseconds) saves several; the
    C-level ``map`` calls below are there because comprehensions cost more."""
    if len(plan.steps) != 1 or not isinstance(plan.steps[0], _FusedStep):
        return None
    step = plan.steps[0]
    if step.means or step.kernel is None:
        return None
    kernel, inputs, dtypes = step.kernel, step.inputs, step.dtypes
    axes = [spec.axes for spec in step.source.outputs]
    loop_from = [(inputs[i], axis) for i, axis in step.shape_from]
    in_order = inputs == list(range(plan.num_inputs))
    # each program output: None, a kernel output (index) or an input (copied:
    # simplification may reduce an output to an input, which must not alias it)
    picks = [
        None
        if slot is None
        else (False, slot)
        if slot < plan.num_inputs
        else (True, step.outputs.index(slot))
        for slot in plan.output_slots
    ]
    all_outs = plan.output_slots == step.outputs
    shape_of = operator.attrgetter("shape")
    # (input shapes, output shapes) last seen: one tuple, replaced whole, so that
    # concurrent calls never see the shapes of one and the outputs of another
    known: list = [((), None)]
    reduces = step.reduces

    def into(out: Sequence[Any], shapes: list) -> list[np.ndarray]:
        # Destinations the caller gave, where they fit (as _FusedStep.allocate
        # decides); fresh arrays elsewhere.
        outs: list = [None] * len(shapes)
        for pick, target in zip(picks, out):
            if target is None or pick is None or not pick[0]:
                continue
            j = pick[1]
            if (
                target.shape == shapes[j]
                and target.dtype == dtypes[j]
                and target.flags.c_contiguous
                and not reduces[j]
            ):
                outs[j] = target
        return [
            np.empty(shape, dtype) if o is None else o
            for o, shape, dtype in zip(outs, shapes, dtypes)
        ]

    def run(args: Sequence[np.ndarray], out: Sequence[Any] | None = None) -> list | None:
        shapes_in = tuple(map(shape_of, args))
        seen, shapes = known[0]
        if shapes_in != seen or shapes is None:
            loop = tuple([args[i].shape[axis] for i, axis in loop_from])
            if math.prod(loop) >= threads.MINIMUM:
                return None  # split over threads: the general path
            shapes = [tuple([1 if a is None else loop[a] for a in spec]) for spec in axes]
            known[0] = (shapes_in, shapes)
        outs = list(map(np.empty, shapes, dtypes)) if out is None else into(out, shapes)
        if in_order:
            kernel(*args, *outs)
        else:
            kernel(*[args[i] for i in inputs], *outs)
        if all_outs:
            return outs
        return [
            None if pick is None else outs[pick[1]] if pick[0] else args[pick[1]].copy()
            for pick in picks
        ]

    def specialised(args: Sequence[np.ndarray]) -> Callable | None:
        """``fast(args, outs=None)`` for calls whose inputs have exactly the shapes
        of ``args`` (the caller checks that): ``run`` with the output shapes
        worked out once, for a caller that replays one shape over and over;
        ``outs`` are arrays of the previous call's outputs' shapes and dtypes to
        write into instead of new ones. None where ``run`` does more than
        allocate and call (threads, outputs in another order)."""
        if not (all_outs and in_order):
            return None
        loop = tuple([args[i].shape[axis] for i, axis in loop_from])
        if math.prod(loop) >= threads.MINIMUM:
            return None
        outputs = [
            (tuple([1 if a is None else loop[a] for a in spec]), dtype)
            for spec, dtype in zip(axes, dtypes)
        ]
        empty = np.empty

        def fast(args: Sequence[np.ndarray], outs: list | None = None) -> list:
            if outs is None:
                outs = [empty(shape, dtype) for shape, dtype in outputs]
            kernel(*args, *outs)
            return outs

        return fast

    run.specialised = specialised
    return run


def wait_for_compilation(timeout: float | None = None) -> None:
    """Block until every background compilation started so far has finished."""
    background.wait(timeout)


def compile_mode() -> str:
    """``background`` (default: first calls run on the interpreter while numba
    compiles) or ``sync`` (compile before the first call returns), from
    ``SYMGRAD_COMPILE``."""
    return os.environ.get("SYMGRAD_COMPILE", "background")


def compile_after() -> int:
    """How many calls a program answers on the interpreter before it is compiled
    in the background (``SYMGRAD_COMPILE_AFTER``, default 2): a graph built and
    run once, as operator tests and one-off evaluations do, never pays for numba."""
    return int(os.environ.get("SYMGRAD_COMPILE_AFTER", "2"))


def compiled_runner(graph: ProgramGraph) -> CompiledProgram:
    """Build a :class:`CompiledProgram` (the runner ``compiler.runner()`` returns
    for the compiled backend)."""
    return CompiledProgram(graph)


__all__ = ["CompiledProgram", "compiled_runner", "compile_mode", "wait_for_compilation"]
