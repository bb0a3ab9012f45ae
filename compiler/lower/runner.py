"""A compiled program: the passes' output turned into a list of steps.

Each ``_fused`` node becomes one call of a generated numba kernel; every other op
runs its registered numpy implementation (BLAS calls for dot and
FullyConnected, numpy for the rest). All kernels of a program live in one
generated module. Until the kernels are ready, which happens in a background
thread unless ``SYMGRAD_COMPILE=sync``, calls run on the interpreter, so the first
backward of a new graph never waits for numba.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from ..ir import Node
from ..program import ProgramGraph, interpret_runner
from ..passes import format_graph, run_pipeline
from . import cache
from .codegen import KernelSource, generate


class _FusedStep:
    def __init__(self, node: Node, source: KernelSource, inputs: list[int], outputs: list[int]):
        self.node, self.source = node, source
        self.inputs, self.outputs = inputs, outputs
        self.kernel: Callable | None = None
        # Per output: its axes and dtype, read once here because allocation runs on
        # every call (small programs cost microseconds, so the launcher must too).
        self.output_plan = [(spec.axes, spec.dtype) for spec in source.outputs]
        self._shapes: tuple[tuple, list] = ((), [])  # (loop sizes, output shapes) last seen

    def allocate(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        loop = tuple([args[i].shape[axis] for i, axis in self.source.shape_from])
        seen, shapes = self._shapes
        if loop != seen:  # a new batch size: new output shapes, the same kernel
            shapes = [(tuple(1 if a is None else loop[a] for a in axes), dtype)
                      for axes, dtype in self.output_plan]
            self._shapes = (loop, shapes)
        return [np.empty(shape, dtype) for shape, dtype in shapes]

    def __call__(self, slots: list) -> None:
        args = [slots[i] for i in self.inputs]
        outs = self.allocate(args)
        self.kernel(*args, *outs)
        for slot, value in zip(self.outputs, outs):
            slots[slot] = value


class _LibraryStep:
    def __init__(self, node: Node, inputs: list[int], outputs: list[int]):
        self.node, self.inputs, self.outputs = node, inputs, outputs

    def __call__(self, slots: list) -> None:
        result = self.node.op.impl(*[slots[i] for i in self.inputs], **self.node.attrs)
        if not isinstance(result, tuple):
            result = (result,)
        for slot, value in zip(self.outputs, result):
            slots[slot] = value


class CompiledProgram:
    """Runs a program graph as fused kernels and library calls."""

    def __init__(self, graph: ProgramGraph):
        self.source_graph = graph
        self.graph = run_pipeline(graph)
        self.fallback = interpret_runner(graph)
        slot: dict[tuple[int, int], int] = {}
        for i, var in enumerate(self.graph.inputs):
            slot[(id(var), 0)] = i
        count = len(self.graph.inputs)
        self.steps: list[Any] = []
        fused: list[_FusedStep] = []
        for node in self.graph.nodes():
            if node.is_variable:
                continue
            inputs = [slot[(id(e.node), e.index)] for e in node.inputs]
            outputs = list(range(count, count + node.num_outputs))
            for k, s in enumerate(outputs):
                slot[(id(node), k)] = s
            count += node.num_outputs
            if node.op.name == "_fused":
                step = _FusedStep(node, generate(node.attrs["body"], f"kernel{len(fused)}"),
                                  inputs, outputs)
                fused.append(step)
            else:
                step = _LibraryStep(node, inputs, outputs)
            self.steps.append(step)
        self.num_slots = count
        self.output_slots = [None if o is None else slot[(id(o.node), o.index)]
                             for o in self.graph.outputs]
        self.fused = fused
        self.module_text = "\n\n".join("@_jit\n" + step.source.source for step in fused)
        self._ready = not fused
        self._failed = False
        self._compiling: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- compilation ------------------------------------------------------------
    def _bind_kernels(self) -> None:
        module = cache.load(self.module_text)
        for step in self.fused:
            step.kernel = getattr(module, step.source.name)

    def _compile(self, args: Sequence[np.ndarray]) -> None:
        """Load or compile every kernel for the types of ``args``, by running the
        program once on them. A kernel the generator or numba cannot handle (a
        loop nest deeper than Python allows, say) leaves the program on the
        interpreter for good, with one warning: slower, never wrong or fatal."""
        try:
            self._compile_kernels(args)
        except Exception as err:  # noqa: BLE001  (any failure has the same remedy)
            self._failed = True
            warnings.warn(f"symgrad: cannot compile a program ({type(err).__name__}: "
                          f"{err}); running it on the interpreter", RuntimeWarning,
                          stacklevel=2)

    def _compile_kernels(self, args: Sequence[np.ndarray]) -> None:
        self._bind_kernels()
        slots: list = [None] * self.num_slots
        slots[:len(args)] = args
        for step in self.steps:
            if isinstance(step, _FusedStep):
                kernel_args = [slots[i] for i in step.inputs]
                outs = step.allocate(kernel_args)
                cache.first_call(step.kernel, [*kernel_args, *outs])
                for slot, value in zip(step.outputs, outs):
                    slots[slot] = value
            else:
                step(slots)
        self._ready = True

    def _start(self, args: Sequence[np.ndarray]) -> None:
        copies = [np.array(a) for a in args]  # the caller may overwrite its arrays
        if compile_mode() == "sync":
            self._compile(copies)
            return
        self._compiling = threading.Thread(target=self._compile, args=(copies,), daemon=True,
                                           name="symgrad-compile")
        _background.append(self._compiling)
        self._compiling.start()

    def wait(self) -> None:
        """Block until the kernels are ready."""
        thread = self._compiling
        if thread is not None:
            thread.join()

    # -- running ------------------------------------------------------------------
    def __call__(self, args: Sequence[np.ndarray], out: Sequence[Any] | None = None) -> list:
        if not self._ready:
            with self._lock:
                if self._compiling is None and not self._ready and not self._failed:
                    self._start(args)
            if not self._ready:
                return self.fallback(args, out)
        slots: list = [None] * self.num_slots
        slots[:len(args)] = args
        for step in self.steps:
            step(slots)
        return [None if s is None else slots[s] for s in self.output_slots]

    def explain(self) -> str:
        """The program after the passes and the source of its kernels."""
        parts = [format_graph(self.graph)]
        for step in self.fused:
            parts.append(f"# {step.source.name}: loop rank {step.source.rank}\n"
                         f"{step.source.source}")
        return "\n\n".join(parts)


_background: list[threading.Thread] = []


def wait_for_compilation(timeout: float | None = None) -> None:
    """Block until every background compilation started so far has finished."""
    for thread in list(_background):
        thread.join(timeout)
    _background[:] = [t for t in _background if t.is_alive()]


# A process must not exit while numba is writing a kernel to the disk cache.
atexit.register(wait_for_compilation)


def compile_mode() -> str:
    """``background`` (default: first calls run on the interpreter while numba
    compiles) or ``sync`` (compile before the first call returns), from
    ``SYMGRAD_COMPILE``."""
    return os.environ.get("SYMGRAD_COMPILE", "background")


def compiled_runner(graph: ProgramGraph) -> CompiledProgram:
    """Build a :class:`CompiledProgram` (the runner ``compiler.runner()`` returns
    for the compiled backend)."""
    return CompiledProgram(graph)


__all__ = ["CompiledProgram", "compiled_runner", "compile_mode", "wait_for_compilation"]
