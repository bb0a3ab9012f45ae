"""A program's plan: the passes' output as a list of steps over numbered slots.

Each ``_fused`` node becomes a :class:`FusedStep` (one generated kernel); an
op with a registered lowering (:mod:`.lowerings`) a :class:`LibraryStep` that
uses it (a row kernel, a matrix product into its destination); a fill read only
by kernels a :class:`ConstantStep` made once; any other op a LibraryStep
running its numpy implementation. The plan also holds the source of the
program's generated module: the kernels, the lowerings' kernels, and the
whole-program entry (:mod:`.entry`) when every step has a form there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...graph import ProgramGraph, dead_after
from ...ir import Node
from . import threads
from .codegen import KernelSource, generate
from .entry import EntrySource, generate_entry
from .lowerings import Lowering, lowering_for, module_text

# The most steps a whole-program entry holds. numba links every kernel the entry
# calls into its module and optimises them again, so its compile time grows
# faster than the program: a graph of 130 small kernels (every unary op, summed)
# spent over ten minutes in the entry's LLVM passes. A program that big runs for
# long enough that the step runner's 5-20 us a step matter little.
MAX_ENTRY_STEPS = 64


def not_compiled(*args: Any) -> None:
    raise RuntimeError("a kernel ran before its program's module was loaded")


class FusedStep:
    """One generated kernel: allocates its outputs (or writes into given
    destinations) and, for large loops, splits the outermost loop over threads.

    Runs on every call of a program, so everything that does not depend on the
    arrays is worked out once here (a small program costs microseconds)."""

    kind = "fused"
    fill = None

    def __init__(self, node: Node, source: KernelSource, inputs: list[int], outputs: list[int]):
        self.node, self.source = node, source
        self.inputs, self.outputs = inputs, outputs
        self.kernel: Callable[..., Any] = not_compiled
        self.reduces = [spec.reduce for spec in source.outputs]
        # Reductions that sum over the outermost loop axis take one partial result per
        # piece of a split loop; one that keeps that axis (a sum per row) writes its
        # piece's rows, as an elementwise output does.
        self.partial = [spec.reduce and 0 not in spec.axes for spec in source.outputs]
        self.dtypes = [spec.dtype for spec in source.outputs]
        self.shape_from = source.shape_from
        # outputs that are means: (index, loop axes they keep); the launcher divides
        self.means = [
            (j, {a for a in spec.axes if a is not None})
            for j, spec in enumerate(source.outputs)
            if spec.mean
        ]
        self._shapes: tuple[Sequence[int], list] = ((), [])  # (loop sizes, output shapes) last seen
        self.limit = threads.MINIMUM  # from this loop size on, split (the plan's split_limit)

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
        if math.prod(loop) < self.limit:
            self.kernel(*args, *outs)
        else:
            threads.run_split(self.kernel, args, outs, self.partial, loop)
        self.finish(outs, loop)
        for slot, value in zip(self.outputs, outs):
            slots[slot] = value

    def finish(self, outs: list[np.ndarray], loop: Sequence[int]) -> None:
        """Turn the kernel's sums into the means it outputs (in place): each is
        divided by the size of the loop axes it reduced."""
        for j, kept in self.means:
            outs[j] /= math.prod(n for a, n in enumerate(loop) if a not in kept)


class LibraryStep:
    """An op that is not fused: its lowering (:mod:`.lowerings`) where one is
    registered and takes these arrays, else its numpy implementation."""

    kind = "library"

    def __init__(self, node: Node, inputs: list[int], outputs: list[int]):
        self.node, self.inputs, self.outputs = node, inputs, outputs
        self.lowering: Lowering | None = lowering_for(node)
        self.single = node.num_outputs == 1
        self.kernel: Any = None  # the lowering's kernel, bound when the module loads
        # a fill's value, when this step makes one (the entry copies it per call)
        self.fill = node.op.impl(**node.attrs) if ConstantStep.applies(node) else None

    def __call__(self, slots: list, destinations: dict | None = None) -> None:
        args = [slots[i] for i in self.inputs]
        lowering, attrs = self.lowering, self.node.attrs
        if lowering is not None:
            if lowering.into is not None and destinations:
                target = destinations.get(self.outputs[0])
                if target is not None and lowering.into(*args, target, **attrs):
                    slots[self.outputs[0]] = target
                    return
            if lowering.run is not None and (self.kernel is not None or not lowering.kernel_name):
                result = lowering.run(self.kernel, *args, **attrs)
                if result is not None:
                    # a tuple for an op with several outputs (the RNN op's)
                    for slot, value in zip(self.outputs, (result,) if self.single else result):
                        slots[slot] = value
                    return
        result = self.node.op.impl(*args, **attrs)
        if not isinstance(result, tuple):
            result = (result,)
        for slot, value in zip(self.outputs, result):
            slots[slot] = value


class ConstantStep:
    """A fill (a constant op with no inputs: ``_ones``, ``_full``, ``arange``...;
    see ``OpDef.constant``) read only by kernels, made once when the plan is built:
    kernels never write into their inputs, so every call can read the same
    array. A fill that is itself a program output is copied (the caller owns it)."""

    kind = "constant"
    fill = None

    def __init__(self, node: Node, outputs: list[int], is_output: bool):
        self.node, self.outputs = node, outputs
        self.inputs: list[int] = []
        self.value = node.op.impl(**node.attrs)
        self.is_output = is_output

    @staticmethod
    def applies(node: Node) -> bool:
        """Whether ``node`` is a fill (see the class docstring)."""
        return node.op.constant and not node.inputs and node.num_outputs == 1

    def __call__(self, slots: list, destinations: dict | None = None) -> None:
        slots[self.outputs[0]] = self.value.copy() if self.is_output else self.value


class Plan:
    """A program after the passes: its steps, their slots and the kernels' module."""

    def __init__(self, graph: ProgramGraph):
        self.graph = graph
        slot: dict[tuple[int, int], int] = {}
        self.slot_types = []
        for i, var in enumerate(self.graph.inputs):
            slot[(id(var), 0)] = i
            self.slot_types.append(var.types[0])
        count = len(self.graph.inputs)
        self.steps: list[Any] = []
        self.fused: list[FusedStep] = []
        self.lowered: list[LibraryStep] = []  # steps whose lowering has kernels
        returned = {id(o.node) for o in self.graph.outputs if o is not None}
        # A fill read only by kernels can be shared by every call; a library op
        # might hand out a view of it (a reshape), which the caller could write.
        read_by_library = {
            id(e.node)
            for node in self.graph.nodes()
            if not node.is_variable and node.op.kind != "fused"
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
            step: Any
            if node.op.kind == "fused":
                source = generate(node.attrs["body"], f"kernel{len(self.fused)}")
                step = FusedStep(node, source, inputs, outputs)
                self.fused.append(step)
            elif ConstantStep.applies(node) and id(node) not in read_by_library:
                step = ConstantStep(node, outputs, id(node) in returned)
            else:
                step = LibraryStep(node, inputs, outputs)
                if step.lowering is not None and step.lowering.kernel_name is not None:
                    self.lowered.append(step)
            self.steps.append(step)
        self.num_slots = count
        self.num_inputs = len(self.graph.inputs)
        self.output_slots = [
            None if o is None else slot[(id(o.node), o.index)] for o in self.graph.outputs
        ]
        # For each step, the slots it may drop once it has run: a big program
        # (DenseNet's forward and backward: hundreds of concatenations and
        # temporaries) holds what is still needed, not every value it ever made.
        kept = {*range(self.num_inputs), *(s for s in self.output_slots if s is not None)}
        self.dead_after = dead_after([(step.outputs, step.inputs) for step in self.steps], kept)
        # A program that shares convolutions' or poolings' images out over the
        # backend's threads keeps OpenBLAS on one thread while it runs: after a
        # product on OpenBLAS's two threads (a classifier's, in ResNet-18 or
        # MobileNet), its idle worker spins about 0.1 s (its thread timeout), on
        # the core the pool's worker then needs for the next convolution's half of
        # the images. ResNet-18's 512-channel data gradient took 18.5 ms there
        # against 10.2 with OpenBLAS on one thread; the step, 583-605 -> 460-495 ms;
        # MobileNet's, 360-370 -> 265-271 ms. Such a program's products are small beside
        # its convolutions, and the biggest ones take the pool's threads anyway
        # (products.split_product).
        self.blas_alone = any(
            step.kind == "library" and step.lowering is not None and step.lowering.threaded
            for step in self.steps
        )
        # A program whose products run on OpenBLAS's own threads (none of the above)
        # splits its loops only from a bigger size: see threads.SPINNING_BLAS_FACTOR
        self.blas_spins = not self.blas_alone and any(
            step.kind == "library" and step.node.op.kind == "blas" for step in self.steps
        )
        self.split_limit = threads.split_limit(self.blas_spins)
        for step in self.fused:
            step.limit = self.split_limit
        # User callbacks (autograd Functions) are the ops that take a "callback" attr.
        self.has_callbacks = any(
            step.kind == "library" and "callback" in step.node.op.attrs for step in self.steps
        )
        self.lowered_text = module_text(
            [step.lowering for step in self.lowered if step.lowering is not None]
        )
        # More than one step: worth one compiled call for the whole program; up to
        # MAX_ENTRY_STEPS, beyond which compiling the entry costs more than the
        # Python it saves (see there).
        self.entry: EntrySource | None = None
        if 1 < len(self.steps) <= MAX_ENTRY_STEPS and not self.has_callbacks:
            self.entry = generate_entry(self)
        self.module_text = "\n\n".join(
            ["@_jit\n" + step.source.source for step in self.fused]
            + ([self.lowered_text] if self.lowered else [])
            + ([self.entry.source] if self.entry else [])
        )
