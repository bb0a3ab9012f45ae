"""One compiled call per program: a numba function that runs every step.

A program is a list of steps (fused kernels, matrix products, row kernels,
fills). Run from Python, each step costs 5-20 us of bookkeeping on the
benchmark machine (slots, shape checks, allocation, a numba dispatch), which on
a small training step (W2 at B=128: seventeen steps) adds up to more than the
arithmetic. Where every step has a numba form, this module writes one more
function into the program's generated module, ``program_entry``, that calls the
kernels, numpy's BLAS (``blas.py``) and the row kernels itself: one dispatch.

The entry runs each step as the step runner would. A fused loop or a pooling
big enough for threads runs in the step runner's pieces, shared out over the
backend's threads from a small function in numba's object mode
(``threads.run_split``, ``threads.run_rows``): a few microseconds, and the
program stays one call. So does a pure op with no numba form, whose numpy code
runs from object mode (``_numpy_step``). The entry gives up (returns ``False``
first, and empty arrays) where a step cannot run in it for these sizes (a row
longer than ``lowerings.rows.MAX_ROW``, sizes that disagree, a convolution big
enough for threads); the caller then remembers the input shapes and takes the
step runner for them, which computes everything again from the inputs. Giving
up never leaves a wrong result behind: the entry writes only into destinations
that do not overlap an input.

Destinations (``.grad`` buffers with grad_req 'write', or for replay the last
call's results that its caller dropped) are passed in; a step writes straight
into its destination where the step runner would: a matrix product, an
elementwise kernel output. Missing destinations are passed as empty
arrays of the right type so that the entry keeps one signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ...ir import Node
from . import threads
from .emit import Runner, Writer, empty_of, shape_tuple
from .lowerings import warn_step_by_step
from .lowerings.products import links_tiles


@dataclass
class EntrySource:
    """Source of a program's entry and what its caller passes and gets back."""

    source: str
    constants: list[Any]  # the plan's fill arrays, passed after the inputs
    destinations: list[tuple[int, np.dtype, int]]  # (output position, dtype, ndim)
    outputs: list[tuple[int, int]]  # (output position, slot), in the order returned


def _numpy_step(w: Writer, step) -> bool:
    """Emit ``step`` as a call of its op's numpy implementation (or its lowering's
    run) from object mode (:meth:`Writer.library_call`), for a pure op (one whose
    value may be computed later than its call: no randomness, state or callback)
    with one array output and no numba form here: a lone transcendental op on a
    big array, which the fusion pass leaves to numpy's vectorised math (a sigmoid
    after d2l's LeNet convolutions), a sum over axes the row kernels do not take
    (a convolution's bias gradient, over the batch and the image), a transpose, a
    slice, a sort. The program stays one call, and the user is not warned that it
    runs step by step; d2l's LeNet step at B=64 took as long either way
    (3.57/3.44/3.94 ms step by step against 3.59/3.45/3.68, alternating
    processes): its convolutions are the time. False for other ops, and where the
    attributes have no literal."""
    node = step.node
    if not node.op.deferrable or node.num_outputs != 1 or not node.types[0].shape:
        return False
    # a lowering's run takes its kernel (in the program's module with the step's
    # other kernels) for the cases its entry form does not
    lowering = step.lowering
    kernel = lowering.kernel_name if lowering is not None else None
    call = w.library_call(step, kernel or "None")
    if call is None:
        return False
    w.emit(f"s{step.outputs[0]} = {call}")
    return True


# How many times the threading threshold a loop of cheap elementwise ops may be
# and still run inside the entry on one thread.
CHEAP_LOOP_FACTOR = 16


def _has_transcendental(node: Node) -> bool:
    """Whether a ``_fused`` node's body computes a transcendental function."""
    return any(n.op.is_transcendental(n.attrs) for n in node.attrs["body"].nodes())


def _fused(w: Writer, step) -> None:
    source = step.source
    dims = []
    for axis, (i, input_axis) in enumerate(source.shape_from):
        w.emit(f"n{step.outputs[0]}_{axis} = s{step.inputs[i]}.shape[{input_axis}]")
        dims.append(f"n{step.outputs[0]}_{axis}")
    for spec, slot in zip(source.outputs, step.outputs):
        shape = shape_tuple(["1" if a is None else dims[a] for a in spec.axes])
        if spec.reduce:  # partial sums are added up: never into the caller's buffer
            w.emit(f"s{slot} = np.empty({shape}, np.{spec.dtype.name})")
        else:
            w.result(slot, shape, spec.dtype)
    arguments = [f"s{i}" for i in step.inputs] + [f"s{o}" for o in step.outputs]
    call = f"{source.name}({', '.join(arguments)})"
    if len(dims) > 0:
        # A loop big enough for threads runs in the step runner's pieces
        # (threads.run_split), called from object mode: the program stays one
        # call. A loop of cheap ops only (an optimizer's update, a bias and a mask)
        # is bound by memory and gains less from a second thread, so it is split
        # only from CHEAP_LOOP_FACTOR times as many elements.
        factor = 1 if _has_transcendental(step.node) else CHEAP_LOOP_FACTOR
        bound = "limit" if factor == 1 else f"limit * {factor}"
        partial = shape_tuple([str(p) for p in step.partial])
        split = w.object_mode(
            f"split_{source.name}",
            ["ins", "outs", "loop"],
            threads.run_split,
            f"run_split({source.name}, ins, outs, {partial}, loop)",
        )
        ins = shape_tuple([f"s{i}" for i in step.inputs])
        outs = shape_tuple([f"s{o}" for o in step.outputs])
        w.emit(f"if {dims[0]} > 1 and {' * '.join(dims)} >= {bound}:")
        w.emit(f"    {split}({ins}, {outs}, {shape_tuple(dims)})")
        w.emit("else:")
        w.emit(f"    {call}")
    else:
        w.emit(call)
    for j, kept in step.means:
        count = " * ".join([d for a, d in enumerate(dims) if a not in kept]) or "1"
        w.emit(f"s{step.outputs[j]} /= np.{source.outputs[j].dtype.name}({count})")


def generate_entry(plan) -> EntrySource | None:
    """The entry's source for ``plan`` (a :class:`.plan.Plan`), or None when some
    step has no form in it, not even its numpy code from object mode
    (:func:`_numpy_step`): then the program runs step by step, and
    :func:`.lowerings.warn_step_by_step` names the op."""
    w = Writer()
    w.links_tiles = links_tiles(plan.steps)
    outputs = [(k, slot) for k, slot in enumerate(plan.output_slots) if slot is not None]
    destinations = []
    for k, slot in outputs:
        if slot >= plan.num_inputs and slot not in w.destination:
            w.destination[slot] = f"d{k}"
            slot_type = plan.slot_types[slot]
            destinations.append((k, slot_type.dtype, len(slot_type.shape)))
    # A destination that overlaps an input is not used: a step writing into it
    # would change what a later step reads (and what a rerun would read).
    for k, dtype, ndim in destinations:
        clashes = " or ".join(f"overlaps(d{k}, s{i})" for i in range(plan.num_inputs))
        if clashes:
            w.emit(f"if {clashes}:")
            w.emit(f"    d{k} = {empty_of(dtype, ndim)}")
    types = [plan.slot_types[slot] for _, slot in outputs]
    empties = "".join(f"{empty_of(t.dtype, len(t.shape))}, " for t in types)
    w.bail = "return declined()"
    constants: list[Any] = []
    for step in plan.steps:
        if step.kind == "constant" or step.fill is not None:
            # a fill a library op reads (it may hand out a view) is a fresh copy
            copy = step.kind != "constant" or step.is_output
            name = f"c{len(constants)}"
            constants.append(step.value if step.kind == "constant" else step.fill)
            w.emit(f"s{step.outputs[0]} = {name}{'.copy()' if copy else ''}")
        elif step.kind == "fused":
            _fused(w, step)
        else:
            lowering = step.lowering
            if lowering is None or lowering.entry is None or not lowering.entry(w, step):
                if not _numpy_step(w, step):
                    warn_step_by_step(step.node.op.name)
                    return None
    returned = "".join(
        f"s{slot}.copy(), " if slot < plan.num_inputs else f"s{slot}, " for _, slot in outputs
    )
    params = (
        [f"s{i}" for i in range(plan.num_inputs)]
        + [f"c{i}" for i in range(len(constants))]
        + [f"d{k}" for k, _, _ in destinations]
        + ["limit"]
    )
    lines = [
        *(_object_mode_preamble(w) if w.helpers else []),
        *[f"{helper}\n\n" for helper in w.helpers.values()],
        "@_jit",
        f"def program_entry({', '.join(params)}):",
        *w.lines,
        f"    return (True, {returned})",
        "",
        "",
        # one small function for every way out when the entry gives up
        "@_jit",
        "def declined():",
        f"    return (False, {empties})",
    ]
    return EntrySource("\n".join(lines) + "\n" + _HELPERS, constants, destinations, outputs)


def _object_mode_preamble(w: Writer) -> list[str]:
    """The lines an entry with object-mode functions needs: the imports of what
    they call, and their decorator (the module's, without ``nogil``)."""
    from .disk_cache import enabled

    return [
        *sorted(w.imports.values()),
        f'_object_jit = numba.njit(cache={enabled()}, error_model="numpy")',
        "",
    ]


_HELPERS = """

@_jit
def overlaps(a, b):
    # whether the byte ranges of two contiguous arrays intersect
    if a.size == 0 or b.size == 0:
        return False
    a0, b0 = a.ctypes.data, b.ctypes.data
    return a0 < b0 + b.size * b.itemsize and b0 < a0 + a.size * a.itemsize
"""


def _all_plain(args) -> bool:
    """Whether every array is writeable and C-contiguous: anything else is another
    numba type, which would compile the entry again, on the caller's thread."""
    for a in args:
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
    return True


def _shapes(args) -> tuple:
    return tuple([a.shape for a in args])


def entry_runner(function, source: EntrySource, num_outputs: int, limit: int) -> Runner:
    """``run(args, out=None)`` calling the compiled entry ``function``: returns the
    program's outputs, or None when the step runner must run instead (an input
    that is not a writeable C-contiguous array, or input shapes for which the
    entry gave up; those are remembered).

    ``limit`` is the loop size from which the step runner would use threads."""
    constants = source.constants
    specs = [
        (k, dtype, ndim, np.empty((0,) * ndim, dtype)) for k, dtype, ndim in source.destinations
    ]
    empty_out = [spec[3] for spec in specs]
    positions = [k for k, _ in source.outputs]
    in_order = positions == list(range(num_outputs))
    declined: set[tuple] = set()  # input shapes the entry gave up on

    def runnable(args) -> bool:
        return _all_plain(args) and not (declined and _shapes(args) in declined)

    def call(args, targets) -> list | None:
        """The entry's results in its own order, or None where it gave up (then
        these input shapes are remembered)."""
        result = function(*args, *constants, *targets, limit)
        if not result[0]:
            declined.add(_shapes(args))
            return None
        return list(result[1:])

    def run(args, out=None):
        if not runnable(args):
            return None
        if out is None:
            targets = empty_out
        else:
            targets = []
            for k, dtype, ndim, empty in specs:
                t = out[k]
                fits = (
                    t is not None
                    and t.dtype == dtype
                    and t.ndim == ndim
                    and t.flags.c_contiguous
                    and t.flags.writeable
                )
                targets.append(t if fits else empty)
        results = call(args, targets)
        if results is None or in_order:
            return results
        values: list = [None] * num_outputs
        for k, value in zip(positions, results):
            values[k] = value
        return values

    def specialised(args) -> Any:
        """``fast(args, outs=None)`` for calls whose inputs have exactly the classes,
        shapes and dtypes of ``args`` (the caller checks that), or None where the
        entry gave up on these shapes or returns no array for some output.
        ``outs`` are the previous call's results, which the caller no longer
        holds, to write into; ``fast`` returns None where ``run`` would."""
        # (inputs the entry does not take mean it never ran these shapes: whether
        # it gives up on them is not known yet)
        if not (in_order and runnable(args)):
            return None
        picks = [k for k, _, _, _ in specs]

        def fast(args, outs=None):
            if not runnable(args):
                return None
            # the previous results came from this entry: contiguous, writeable, typed
            return call(args, empty_out if outs is None else [outs[k] for k in picks])

        return fast

    runner = cast(Runner, run)
    runner.specialised = specialised
    return runner
