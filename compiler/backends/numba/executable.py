"""The numba backend's executable: a program's plan, compiled and run.

A program answers its first calls on the interpreter (over the simplified
graph); once it has been called often enough that compiling pays, the rest of
the pipeline runs and numba compiles its kernels in the background (unless
``SYMGRAD_COMPILE=sync``): in the compiler process (:mod:`.subprocess_compile`),
from whose disk cache they then load here, so a first backward never waits for
numba, nor gives it the interpreter lock. Replay programs
(``mx.compile``, executors, hybridized blocks) tier the same way. Then calls
run, from the cheapest that applies: one small kernel called directly,
the whole-program entry (one compiled call), or the plan's steps one by one.
"""

from __future__ import annotations

import math
import operator
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ... import profiling, settings
from ...driver import PassRun
from ...graph import ProgramGraph
from ...passes import format_graph
from ..interpreter import Interpreted
from . import disk_cache, threads, tiering
from .blas_threads import adapt as adapt_blas_threads
from .blas_threads import blas_threads
from .emit import Runner

# The plan, its generator and lowerings, and the background compiler are imported
# when a program first compiles, not when it is made: a program's first calls run
# on the interpreter and need none of them (a fifth of a W2 replay's first call,
# where Python finds no bytecode cache).
if TYPE_CHECKING:
    from . import background
    from .plan import FusedStep, Plan


class NumbaExecutable:
    """Runs a program graph as fused kernels, lowered ops and library calls.

    Fusion and code generation run when the program is first compiled (in the
    background by default), so that a first call answered by the interpreter pays
    for neither.
    """

    def __init__(self, passes: PassRun):
        self.passes = passes
        # Until kernels are ready, calls run on the interpreter over the simplified
        # graph: common subexpressions merged, identities gone, fewer numpy passes.
        self.fallback = Interpreted(passes.after("simplify"))
        self._plan: Plan | None = None
        self._ready = False
        self._failed = False
        self._compiling: background.Job | None = None
        self._calls = 0  # calls answered on the interpreter (see tiering.py)
        self._lock = threading.Lock()
        self._direct: Runner | None = None  # set once the kernels are ready
        self._entry: Runner | None = None  # likewise

    @property
    def plan(self) -> Plan:
        """The program after the passes (made on first use)."""
        if self._plan is None:
            from .plan import Plan

            self._plan = Plan(self.passes.final())
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
    def fused(self) -> list[FusedStep]:
        """The kernel steps."""
        return self.plan.fused

    @property
    def direct(self) -> Runner | None:
        """Once the kernels are ready and if the program is one small kernel: a
        cheaper way to run it, ``direct(args, out=None)``, which returns None
        when the general path (``self(args, out)``) must run instead."""
        return self._direct

    # -- compilation ------------------------------------------------------------
    def _compile(self, args: Sequence[np.ndarray]) -> None:
        """Load or compile every kernel for the types of ``args``, by running the
        program once on them. A kernel the generator or numba cannot handle (a
        loop nest deeper than Python allows, say) leaves the program on the
        interpreter for good, with one warning: slower, never wrong or fatal."""
        # (the background compiler's exit hook also freezes the collector's objects
        # once numba is loaded, which a synchronous compile loads too)
        from . import background  # noqa: F401

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
        warm_kernels(self.plan, args)
        self._direct = _direct_runner(self.plan)
        # The kernels are ready: calls run step by step while the whole-program
        # entry compiles (with an empty cache a W2-sized entry takes seconds), then
        # through the entry.
        self._ready = True
        self._entry = self._compile_entry(args)

    def _compile_entry(self, args: Sequence[np.ndarray]) -> Runner | None:
        """Compile the whole-program entry (see :mod:`.entry`) if the plan has one.
        A failure is a generator bug, not the user's: one warning, and the program
        runs step by step."""
        try:
            return compile_entry(self.plan, args)
        except Exception as err:  # noqa: BLE001
            warnings.warn(
                f"symgrad: cannot compile a program's entry ({type(err).__name__}: "
                f"{err}); running it step by step",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    def start_compiling(self, args: Sequence[np.ndarray]) -> None:
        """Queue this program's compilation for the types of ``args`` on the
        background compiler (once; tiering decides when)."""
        from . import background

        with self._lock:
            if self._compiling is not None or self._ready or self._failed:
                return
            copies = [np.array(a) for a in args]  # the caller may overwrite its arrays
            self._compiling = background.submit(lambda: self._compile_in_background(copies))

    def _compile_in_background(self, args: Sequence[np.ndarray]) -> None:
        """The background worker's job: numba compiles the program's module in the
        compiler process (:mod:`.subprocess_compile`), which leaves this process's
        threads and interpreter lock to the user's script; then the kernels load
        here from the disk cache it wrote (milliseconds). Where no compiler process
        can run the program, it compiles on this thread as before."""
        from . import subprocess_compile

        try:
            # A warm disk cache: everything loads here, no compiler process needed.
            with disk_cache.cached_only():
                warm_kernels(self.plan, args)
                compile_entry(self.plan, args)
        except disk_cache.NotCached:
            pass
        except Exception:  # noqa: BLE001  (_compile below meets it again and reports it)
            self._compile(args)
            return
        else:
            self._compile(args)  # binds what just loaded
            return
        outcome = subprocess_compile.compile_elsewhere(self.plan, args)
        if outcome is subprocess_compile.Outcome.ABANDONED:
            return  # the process is exiting
        if outcome is subprocess_compile.Outcome.DIED:
            # What killed the compiler process (LLVM crashing on this module, say)
            # would kill this one: the program stays on the interpreter.
            self._failed = True
            warnings.warn(
                "symgrad: the compiler process died compiling a program; running it "
                "on the interpreter",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self._compile(args)

    def wait(self) -> None:
        """Block until the kernels are ready (starting their compilation if only
        the tiering time held it back)."""
        tiering.start_held(self)
        job = self._compiling
        if job is not None:
            job.wait()

    # -- running ------------------------------------------------------------------
    def __call__(self, args: Sequence[np.ndarray], out: Sequence[Any] | None = None) -> list:
        # OpenBLAS on the free cores for the numpy answers too: two threads on a core
        # another process holds made a (256, 784) x (784, 10) product 8 ms, not 75 us
        adapt_blas_threads()
        if not self._ready:
            if settings.current().compile == "sync":
                with self._lock:
                    if not self._ready and not self._failed:
                        self._compile([np.array(a) for a in args])
                if not self._ready:
                    return self.fallback(args, out)
            else:
                # Answer this call on the interpreter first, then let numba work in the
                # background: a first backward never waits for, or competes with, it.
                # A program compiles once it has been called often enough, and the
                # session has interpreted long enough, that the investment may pay
                # (see tiering.py).
                began = time.perf_counter()
                result = self.fallback(args, out)
                self._calls += 1
                if self._compiling is None and not self._failed:
                    tiering.called(self, self._calls, time.perf_counter() - began, args)
                return result
        if self.plan.blas_alone:  # see Plan.blas_alone
            with blas_threads().alone():
                return self._run(args, out)
        return self._run(args, out)

    def _run(self, args: Sequence[np.ndarray], out: Sequence[Any] | None) -> list:
        """A call once the kernels are ready: the one small kernel, the
        whole-program entry, or step by step (always so while profiling)."""
        profiled = profiling.listener is not None  # then step by step, each timed
        direct = self._direct
        if direct is not None and not profiled:
            results = direct(args, out)
            if results is not None:
                return results
        entry = self._entry
        if entry is not None and not profiled:
            results = entry(args, out)
            if results is not None:
                return results
        plan = self.plan
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
        for step, dead in zip(plan.steps, plan.dead_after):
            if profiled:
                start = time.perf_counter()
                step(slots, destinations)
                profiling.report(step.node, start)
            else:
                step(slots, destinations)
            for s in dead:
                slots[s] = None
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
        if entry is None or self._direct is not None:
            return None
        fast = entry.specialised(args)
        if fast is None or not self._multithreaded():
            return fast
        alone = self.plan.blas_alone

        def adapted(args: Sequence[np.ndarray], outs: Any = None) -> Any:
            # a replayed product beside a busy process: OpenBLAS on the free cores
            adapt_blas_threads()
            if alone:  # see Plan.blas_alone
                with blas_threads().alone():
                    return fast(args, outs)
            return fast(args, outs)

        return adapted

    def _multithreaded(self) -> bool:
        """Whether the program runs products, convolutions or poolings, whose
        thread counts follow the free cores (see :mod:`.blas_threads`)."""
        return any(
            step.kind == "library" and step.node.op.kind in ("blas", "pool")
            for step in self.plan.steps
        )

    def explain(self) -> str:
        """The program after the passes and the source of its kernels."""
        parts = [format_graph(self.graph)]
        for step in self.fused:
            parts.append(
                f"# {step.source.name}: loop rank {step.source.rank}\n{step.source.source}"
            )
        if self.plan.lowered:
            names = ", ".join(sorted({step.node.op.name for step in self.plan.lowered}))
            parts.append(
                f"# row kernels (for {names}), from libraries in {disk_cache.directory()}\n"
                f"{self.plan.lowered_text}"
            )
        if self.plan.entry:
            parts.append(
                "# the whole program as one call (when it fits; see "
                f"compiler/backends/numba/entry.py)\n{self.plan.entry.source}"
            )
        return "\n\n".join(parts)


def _bind_kernels(plan: Plan) -> None:
    """Point the plan's kernel steps at the functions of its generated module."""
    if not plan.module_text:
        return
    module = disk_cache.load(plan.module_text)
    for step in plan.fused:
        step.kernel = getattr(module, step.source.name)
    for lowered in plan.lowered:
        assert lowered.lowering is not None and lowered.lowering.kernel_name is not None
        lowered.kernel = getattr(module, lowered.lowering.kernel_name)


def warm_kernels(plan: Plan, args: Sequence[np.ndarray]) -> None:
    """Load or compile every kernel of ``plan`` for the types of ``args``, by
    running the plan once on them (each fused kernel's first call counted by
    :func:`.disk_cache.first_call`), computing what a call computes: a step's
    input is what the program gives it, so every step meets the values, and takes
    the paths (a convolution's non-finite fallbacks), of a real call. Raises what
    the generator or numba raises."""
    _bind_kernels(plan)
    slots: list = [None] * plan.num_slots
    slots[: len(args)] = args
    for step, dead in zip(plan.steps, plan.dead_after):
        if step.kind == "fused":
            kernel_args = [slots[i] for i in step.inputs]
            loop = step.loop_shape(kernel_args)
            outs = step.allocate(loop)
            disk_cache.first_call(step.kernel, [*kernel_args, *outs])
            # the means' division too: sums in their place had a BatchNorm
            # normalise by N times the variance, and InceptionV3's warm-up overflowed
            step.finish(outs, loop)
            for slot, value in zip(step.outputs, outs):
                slots[slot] = value
        else:
            step(slots)
        for s in dead:
            slots[s] = None


def compile_entry(plan: Plan, args: Sequence[np.ndarray]) -> Runner | None:
    """Load or compile ``plan``'s whole-program entry for the types of ``args``
    and return its runner; None where the plan has no entry or ``args`` are not
    all arrays. Raises what numba raises."""
    from .entry import entry_runner

    source = plan.entry
    if source is None or not all(isinstance(a, np.ndarray) for a in args):
        return None
    limit = plan.split_limit
    function = disk_cache.load(plan.module_text).program_entry
    run = entry_runner(function, source, len(plan.output_slots), limit)
    # (np.ascontiguousarray makes a 0-d array 1-d: an update step's scalars are 0-d)
    arrays = [np.ascontiguousarray(a) if a.ndim else a for a in args]
    targets = [np.empty((0,) * ndim, dtype) for _, dtype, ndim in source.destinations]
    disk_cache.first_call(function, [*arrays, *source.constants, *targets, limit])
    return run


def _direct_runner(plan: Plan) -> Runner | None:
    """For a program that is one small kernel and nothing else (what a small graph
    usually becomes), a runner that calls the kernel straight from the arguments:
    no slots, no destinations, output shapes worked out once per input shapes.
    Returns None for any other program. The runner itself returns None (the
    caller then takes the general path) for loops big enough to split over
    threads: it only ever runs what ``FusedStep.__call__`` would run on the
    calling thread. A W3-sized call (tens of microseconds) saves several; the
    C-level ``map`` calls below are there because comprehensions cost more."""
    from .plan import not_compiled

    if len(plan.steps) != 1 or plan.steps[0].kind != "fused":
        return None
    step = plan.steps[0]
    if step.means or step.kernel is not_compiled:
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
        # Destinations the caller gave, where they fit (as FusedStep.allocate
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

    runner = cast(Runner, run)
    runner.specialised = specialised
    return runner


def wait_for_compilation(timeout: float | None = None) -> None:
    """Block until every program called often enough to compile runs compiled:
    start the compilations only the tiering time held back (see
    :mod:`.tiering`), then wait for every one started so far."""
    from . import background

    tiering.start_held()
    background.wait(timeout)
