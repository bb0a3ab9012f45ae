"""Lowering of a ``_fused`` node: Python source for one numba loop.

The loop runs over the group's output shape; an input of smaller rank or with
axes of length one is read with index 0 on those axes (the ones-pattern is part
of the graph key, so this never depends on sizes). Each member's scalar template
is inlined in topological order; reductions accumulate, in a register over the
innermost loops they sum (the whole loop, for a single value), added into the
output after them. Kernels specialise on rank, dtype and layout
only: sizes are read from the arrays.

Trailing loop axes along which every array is either whole or of length one
(a BatchNorm's (N, C, H, W) data beside its (1, C, 1, 1) statistics) run as one
flat loop over views of the whole arrays (:func:`_collapsed_from`): a 7x7 or
14x14 image is one vectorised loop of 49 or 196 elements, not rows of 7 or 14
(mostly scalar remainder), and a sum over them is reduced across its vector
lanes once per plane, not once per row.

A loop whose operands span its last axis alone beside whole ones (a value on
the channel-blocked layout (N, C / 16, H, W, 16) and its (1, C / 16, 1, 1, 16)
per-channel operands and sums, BatchNorm's steps on that layout) runs its
trailing axes as one *periodic* flat loop instead (:func:`_periodic_from`):
the per-lane operands read from tiles of their lanes repeated, the sums that
keep the lanes into partial sums a chunk long, so every array of the loop is
read at one index and it vectorises.

Each kernel starts with ``vm.prefer_512_bit_vectors()`` (512-bit vectors where
the CPU has AVX-512; see that function) unless ``SYMGRAD_WIDE_VECTORS=0``. The
setting is part of the kernel's text, so kernels cached on disk with one setting
are never loaded under the other.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ... import settings
from ...ir import Entry, Node
from ...ops.fused import FusedBody
from ...ops.reduce import reduced_axes, unbroadcast_axes

# Read once: part of every kernel's text (and so of its cache identity).
WIDE_VECTORS = settings.current().wide_vectors

_NUMBER = re.compile(r"(?<![\w.{])(\d+\.\d*|\d*\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.}])")


@dataclass(frozen=True)
class OutputSpec:
    """How the launcher allocates one kernel output: for each output axis, the loop
    axis whose length it has (None for length one); ``reduce`` if it accumulates;
    ``mean`` if the launcher divides the sum by the number of summed elements (it
    does, not the kernel, since a kernel may run on a slice of the loop)."""

    axes: tuple[int | None, ...]
    reduce: bool
    dtype: np.dtype
    mean: bool = False


@dataclass
class KernelSource:
    """Generated source of one fused loop and what its launcher needs."""

    name: str
    source: str
    rank: int
    shape_from: tuple[tuple[int, int], ...]  # per loop axis: (input number, input axis)
    outputs: tuple[OutputSpec, ...]


def _literal(value: float, dtype: np.dtype) -> str:
    number = float(value)
    # repr gives `nan`/`inf` for non-finite values: not names in generated code
    text = (
        repr(number)
        if math.isfinite(number)
        else "np.nan"
        if number != number
        else "np.inf"
        if number > 0
        else "-np.inf"
    )
    return f"np.{dtype.name}({text})"


def _typed_template(template: str, dtype: np.dtype) -> str:
    # Bare numbers in templates become literals of the loop's dtype, so float32
    # kernels stay in float32 (and vectorise twice as wide).
    return _NUMBER.sub(lambda m: _literal(float(m.group(0)), dtype), template)


def _index(shape: tuple[int, ...], rank: int) -> str:
    lead = rank - len(shape)
    parts = ["0" if size == 1 else f"i{lead + axis}" for axis, size in enumerate(shape)]
    return ", ".join(parts) if parts else "()"


def _reduction_axes(node: Node, rank: int) -> tuple[int | None, ...]:
    """Per output axis of a member reduction, the loop axis it follows (None: 1)."""
    data, out_shape = node.inputs[0], node.types[0].shape
    if node.op.name == "_unbroadcast":
        summed = set(unbroadcast_axes(data.shape, out_shape))
        lead = rank - len(out_shape)
        return tuple(
            None if (lead + a) in summed or size == 1 else lead + a
            for a, size in enumerate(out_shape)
        )
    attrs = node.attrs
    summed = set(reduced_axes(rank, attrs["axis"], attrs["exclude"]))
    if attrs["keepdims"]:
        return tuple(None if a in summed else a for a in range(rank))
    kept = tuple(a for a in range(rank) if a not in summed)
    return kept or (None,)


def generate(body: FusedBody, name: str) -> KernelSource:
    """Source of a numba kernel ``name(in0, ..., out0, ...)`` computing ``body``.

    Loop bounds come from the arrays, so a caller may pass views that cover a
    slice of the outermost axis (that is how a loop is split over threads)."""
    members = body.nodes()
    loop_shape = next(n.types[0].shape for n in members if n.op.kind == "elemwise")
    rank = len(loop_shape)
    value: dict[tuple[int, int], str] = {}
    loads, statements = [], []
    for i, var in enumerate(body.inputs):
        value[(id(var), 0)] = f"a{i}"
    used_inputs: set[int] = set()

    def operand(entry: Entry) -> str:
        if entry.node.is_variable:
            used_inputs.add(body.inputs.index(entry.node))
        return value[(id(entry.node), entry.index)]

    reductions: list[tuple[Node, str]] = []
    for k, node in enumerate(members):
        dtype = node.types[0].dtype
        if node.op.kind != "elemwise":
            reductions.append((node, operand(node.inputs[0])))
            value[(id(node), 0)] = f"<reduction {k}>"
            continue
        template = node.op.scalar(node.attrs) if callable(node.op.scalar) else node.op.scalar
        assert template is not None, f"{node.op.name} is elementwise without a scalar"
        args = [
            operand(e) if i not in node.op.shape_only else "None" for i, e in enumerate(node.inputs)
        ]
        attrs = {
            key: _literal(v, dtype)
            for key, v in node.attrs.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        expression = _typed_template(template, dtype).format(*args, **attrs)
        statements.append(f"v{k} = np.{dtype.name}({expression})")
        value[(id(node), 0)] = f"v{k}"

    periodic = _periodic_from(body, loop_shape)
    if periodic is not None:
        return _periodic_kernel(
            body, name, loop_shape, periodic, used_inputs, statements, value, reductions
        )
    tail = _collapsed_from(body, loop_shape)
    flat: list[str] = []  # flat views of the arrays whole along the collapsed axes

    def at(array: str, shape: tuple[int, ...], view: str) -> str:
        """``array``'s element at the loop's indices (its flat view's, if it has one)."""
        if tail is None or not _whole_along(shape, loop_shape, tail):
            return f"{array}[{_index(shape, rank)}]"
        lead = rank - len(shape)
        dims = [f"{array}.shape[{a - lead}]" for a in range(max(lead, 0), tail)]
        name = f"f{array}"
        sizes = dims + [_tail_size(tail, rank)]
        flat.append(f"{name} = {array}{view}.reshape({_tuple_text(sizes)})")
        kept = shape[: tail - lead] if tail > lead else ()
        return f"{name}[{_index(kept + (2,), tail + 1)}]"

    for i in sorted(used_inputs):
        var = body.inputs[i]
        # ravel(): a view of a C-contiguous input, a copy of any other (read only)
        loads.append(f"a{i} = {at(f'in{i}', var.types[0].shape, '.ravel()')}")

    out_args, specs, stores, before, after = [], [], [], [], []
    # per loop axis: registers set to zero before that loop, added to outputs after it
    resets: dict[int, list[str]] = {}
    flushes: dict[int, list[str]] = {}
    for j, out in enumerate(body.outputs):
        node = out.node
        dtype = out.dtype
        out_args.append(f"out{j}")
        if node.op.kind == "elemwise":
            specs.append(OutputSpec(tuple(range(rank)), False, dtype))
            # an output is C-contiguous (the launcher allocates it): reshape is a view
            stores.append(f"{at(f'out{j}', loop_shape, '')} = {value[(id(node), 0)]}")
            continue
        axes = _reduction_axes(node, rank)
        specs.append(OutputSpec(axes, True, dtype, mean=node.op.name == "mean"))
        source_value = dict((id(n), v) for n, v in reductions)[id(node)]
        if all(a is None for a in axes):  # a whole-loop sum: accumulate in a register
            before.append(f"acc{j} = np.{dtype.name}(0)")
            stores.append(f"acc{j} = vm.accumulate(acc{j}, {source_value})")
            after.append(f"out{j}[{', '.join('0' for _ in axes)}] = acc{j}")
        else:
            before.append(f"out{j}[...] = 0")
            kept_shape = tuple(1 if a is None else loop_shape[a] for a in axes)
            if (
                tail is not None
                and len(axes) == rank
                and _whole_along(kept_shape, loop_shape, tail)
            ):
                slot = at(f"out{j}", kept_shape, "")
                inner = tail + 1
            else:
                index = ", ".join("0" if a is None else f"i{a}" for a in axes)
                slot = f"out{j}[{index}]"
                inner = max(a for a in axes if a is not None) + 1
            if inner == (rank if tail is None else tail + 1):
                # the innermost loop axis is kept: add into the output
                stores.append(f"{slot} = vm.accumulate({slot}, {source_value})")
                continue
            # The loops from `inner` on are all summed: a register takes their sum
            # (it vectorises; an output element read and written per element is a
            # dependency through memory, several times slower), added to the output
            # once per iteration of the loop outside them.
            resets.setdefault(inner, []).append(f"acc{j} = np.{dtype.name}(0)")
            stores.append(f"acc{j} = vm.accumulate(acc{j}, {source_value})")
            flushes.setdefault(inner, []).append(f"{slot} = vm.accumulate({slot}, acc{j})")

    shape_from = _shape_sources(body, loop_shape)
    lines = _kernel_head(name, len(body.inputs), out_args, shape_from)
    lines += [f"    {line}" for line in flat + before]
    loops = rank if tail is None else tail + 1
    indent = "    "
    for axis in range(loops):
        lines += [indent + line for line in resets.get(axis, [])]
        size = f"n{axis}" if axis != tail else _tail_size(tail, rank)
        lines.append(f"{indent}for i{axis} in range({size}):")
        indent += "    "
    for line in loads + statements + stores:
        lines.append(indent + line)
    for axis in reversed(range(loops)):
        indent = indent[:-4]  # back at the level of loop `axis`
        lines += [indent + line for line in flushes.get(axis, [])]
    lines += [f"    {line}" for line in after]
    return KernelSource(name, "\n".join(lines) + "\n", rank, shape_from, tuple(specs))


def _kernel_head(
    name: str, inputs: int, out_args: list[str], shape_from: tuple[tuple[int, int], ...]
) -> list[str]:
    """A kernel's first lines: its signature, the vector-width hint and the loop
    sizes ``n0, n1, ...`` read from the inputs."""
    lines = [f"def {name}({', '.join([f'in{i}' for i in range(inputs)] + out_args)}):"]
    if WIDE_VECTORS:
        lines.append("    vm.prefer_512_bit_vectors()")
    for axis, (i, input_axis) in enumerate(shape_from):
        lines.append(f"    n{axis} = in{i}.shape[{input_axis}]")
    return lines


def _tuple_text(parts: list[str]) -> str:
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _tail_size(tail: int, rank: int) -> str:
    """The length of the flat loop over loop axes ``tail`` to the last."""
    return " * ".join(f"n{a}" for a in range(tail, rank))


def _whole_along(shape: tuple[int, ...], loop_shape: tuple[int, ...], tail: int) -> bool:
    """Whether an array of ``shape`` (read or written in a loop of ``loop_shape``)
    spans the loop axes from ``tail`` on rather than being of length one there
    (an axis the loop has of length one counts as either)."""
    return any(_spans(shape, loop_shape, a) for a in range(tail, len(loop_shape)))


def _collapsed_from(body: FusedBody, loop_shape: tuple[int, ...]) -> int | None:
    """The first loop axis of the trailing ones that the kernel runs as one flat
    loop, or None. Every array the loop reads or writes must either span all of
    them or have length one along all of them (axes of loop length one aside),
    and the kernel keeps the outermost axis (threads split the loop along it):
    so the loop must have at least three axes."""
    rank = len(loop_shape)
    shapes = [var.types[0].shape for var in body.inputs]
    dropping = []  # the loop axes kept by sums whose outputs drop the summed axes
    for out in body.outputs:
        node = out.node
        if node.op.kind == "elemwise":
            shapes.append(loop_shape)
            continue
        axes = _reduction_axes(node, rank)
        if len(axes) == rank:
            shapes.append(tuple(1 if a is None else loop_shape[a] for a in axes))
        else:
            dropping.append({a for a in axes if a is not None})
    for tail in range(1, rank - 1):
        if sum(loop_shape[a] != 1 for a in range(tail, rank)) < 2:
            return None  # one real axis or none left to collapse: nothing gained
        if all(_uniform_along(shape, loop_shape, tail) for shape in shapes) and all(
            max(kept, default=-1) < tail for kept in dropping
        ):
            return tail
    return None


def _uniform_along(shape: tuple[int, ...], loop_shape: tuple[int, ...], tail: int) -> bool:
    """Whether ``shape`` spans every loop axis from ``tail`` on or none of them
    (axes of loop length one aside)."""
    spans = {
        _spans(shape, loop_shape, a) for a in range(tail, len(loop_shape)) if loop_shape[a] != 1
    }
    return len(spans) <= 1


def _shape_sources(body: FusedBody, loop_shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """For each loop axis, an input and axis whose length it is (an input whose
    axis is not of length one; broadcasting guarantees they agree)."""
    rank = len(loop_shape)
    sources = []
    for axis in range(rank):
        found = None
        for i, var in enumerate(body.inputs):
            shape = var.types[0].shape
            input_axis = axis - (rank - len(shape))
            if input_axis >= 0 and (shape[input_axis] != 1 or loop_shape[axis] == 1):
                found = (i, input_axis)
                break
        if found is None:
            raise ValueError(f"no input gives the length of loop axis {axis}")
        sources.append(found)
    return tuple(sources)


# The flat loop of a periodic kernel runs in chunks of about this many elements:
# a per-lane operand is a tile of that length (the lanes repeated), so the loop
# reads every array at one index and vectorises; a sum keeping the lanes adds
# into a chunk of partial sums, folded into its lanes once the loops are done.
PERIODIC_CHUNK = 256
# ... for periods of at most this many elements (as traced; the kernel is right
# for any): a longer last axis (an (N, T, D) activation beside its (D,) bias) is
# a vector loop of its own, as it was
PERIODIC_LONGEST = 64


def _spans(shape: tuple[int, ...], loop_shape: tuple[int, ...], axis: int) -> bool:
    # whether an array of ``shape`` (broadcast to ``loop_shape``) runs along ``axis``
    lead = len(loop_shape) - len(shape)
    return axis >= lead and shape[axis - lead] != 1


def _periodic_role(shape: tuple[int, ...], loop_shape: tuple[int, ...], tail: int) -> str | None:
    """How an array of ``shape`` meets the loop axes from ``tail`` on: "whole" (it
    spans every one of them that is not of length one), "lane" (the last alone),
    "none" (none of them), or None (some other way)."""
    rank = len(loop_shape)
    real = [a for a in range(tail, rank) if loop_shape[a] != 1]
    spanned = [a for a in real if _spans(shape, loop_shape, a)]
    if not spanned:
        return "none"
    if spanned == real:
        return "whole"
    if spanned == [rank - 1]:
        return "lane"
    return None


def _periodic_from(body: FusedBody, loop_shape: tuple[int, ...]) -> int | None:
    """The first loop axis of a *periodic* kernel's flat loop, or None.

    A channel-blocked value (N, C / 16, H, W, 16) beside its per-channel operands
    (1, C / 16, 1, 1, 16) and sums (BatchNorm's, on the blocked layout) can be
    collapsed by neither the trailing flat loop (the operands span the last axis
    alone) nor the lanes loop of 16 (its runtime bound and the sums kept per lane
    leave it scalar, 2-5x slower than the NCHW loop). A periodic kernel runs the
    axes from the returned one on as one flat loop in which every array is whole,
    of one lane period (the last axis), or constant. It needs a last axis of at
    most ``PERIODIC_LONGEST`` as traced, a whole array, an array of one period
    or a sum keeping the lanes, a kept outermost axis, and sums that keep none
    of the flat axes, the last alone, or all (with outputs of the loop's rank)."""
    rank = len(loop_shape)
    if rank < 3 or not 1 < loop_shape[-1] <= PERIODIC_LONGEST:
        return None
    shapes = [var.types[0].shape for var in body.inputs]
    kept_sets = []
    for out in body.outputs:
        node = out.node
        if node.op.kind == "elemwise":
            shapes.append(loop_shape)
        else:
            axes = _reduction_axes(node, rank)
            kept_sets.append(({a for a in axes if a is not None}, len(axes) == rank))
    for tail in range(1, rank - 1):
        if sum(loop_shape[a] != 1 for a in range(tail, rank - 1)) == 0:
            return None  # no axis before the lanes: nothing to collapse
        roles = [_periodic_role(shape, loop_shape, tail) for shape in shapes]
        real = {a for a in range(tail, rank) if loop_shape[a] != 1}
        kinds = [kept & real for kept, _ in kept_sets]
        if None in roles or "whole" not in roles:
            continue
        if "lane" not in roles and {rank - 1} not in kinds:
            continue  # nothing periodic: the trailing flat loop's case
        # (a sum keeping every flat axis is written through a flat view: its
        # output keeps the loop's rank)
        if all(
            kind in (set(), {rank - 1}) or (kind == real and whole_rank)
            for kind, (_, whole_rank) in zip(kinds, kept_sets)
        ):
            return tail
    return None


def _periodic_kernel(
    body: FusedBody,
    name: str,
    loop_shape: tuple[int, ...],
    tail: int,
    used_inputs: set[int],
    statements: list[str],
    value: dict[tuple[int, int], str],
    reductions: list[tuple[Node, str]],
) -> KernelSource:
    """The kernel of :func:`generate` as a periodic loop (see :func:`_periodic_from`):
    loops over the axes before ``tail``, then over ``span`` flat elements in
    chunks of whole lane periods. A per-lane operand is read from its tiles (its
    lanes repeated a chunk long, one row per index of its outer axes, made once
    a call), a sum keeping the lanes adds into its chunk-long partial sums (one
    row per index of the output's outer axes), folded into its lanes after the
    loops: the flat loop's arrays are all read and written at one index."""
    rank = len(loop_shape)
    last = rank - 1

    def outer(shape: tuple[int, ...]) -> list[tuple[str, str]]:
        """(size, index) per outer loop axis an array of ``shape`` has."""
        lead = rank - len(shape)
        return [
            ("1", "0") if shape[a - lead] == 1 else (f"n{a}", f"i{a}")
            for a in range(max(lead, 0), tail)
        ]

    def row(axes: list[tuple[str, str]]) -> str:
        """The row of a table with one row per index of ``axes`` (row-major)."""
        text = "0"
        for size, index in axes:
            text = index if text == "0" else f"({text}) * {size} + {index}"
        return text

    def rows(axes: list[tuple[str, str]]) -> str:
        return " * ".join(size for size, _ in axes) or "1"

    prologue = [
        f"period = n{last}",
        f"span = {_tail_size(tail, rank)}",
        # (no lanes: no elements, and no tiles to fill)
        f"chunk = max(period, 1) * max(1, {PERIODIC_CHUNK} // max(period, 1))",
        "fill = chunk if span else 0",
    ]
    per_outer: list[str] = []  # at the start of every innermost outer iteration
    views: list[str] = []  # a chunk's part of the whole arrays: indices from 0 vectorise
    loads: list[str] = []
    for i in sorted(used_inputs):
        shape = body.inputs[i].types[0].shape
        role = _periodic_role(shape, loop_shape, tail)
        if role == "none":
            loads.append(f"a{i} = in{i}[{_index(shape, rank)}]")
            continue
        outer_axes = outer(shape)
        if role == "whole":
            dims = [f"in{i}.shape[{k}]" for k in range(len(shape) - (rank - tail))]
            prologue.append(f"fin{i} = in{i}.ravel().reshape({_tuple_text(dims + ['span'])})")
            at = ", ".join([index for _, index in outer_axes] + ["j0 : j0 + width"])
            views.append(f"c{i} = fin{i}[{at}]")
            loads.append(f"a{i} = c{i}[j]")
            continue
        prologue += [
            f"fin{i} = in{i}.ravel().reshape(({rows(outer_axes)}, period))",
            f"tile{i} = np.empty(({rows(outer_axes)}, chunk), in{i}.dtype)",
            f"for r in range({rows(outer_axes)}):",
            "    for t in range(0, fill, period):",
            "        for j in range(period):",
            f"            tile{i}[r, t + j] = fin{i}[r, j]",
        ]
        per_outer.append(f"tl{i} = tile{i}[{row(outer_axes)}]")
        loads.append(f"a{i} = tl{i}[j]")

    out_args, specs, stores, before, flushes, after = [], [], [], [], [], []
    sources = dict((id(n), v) for n, v in reductions)
    flat = {a for a in range(tail, rank) if loop_shape[a] != 1}
    for j, out in enumerate(body.outputs):
        node, dtype = out.node, out.dtype
        out_args.append(f"out{j}")
        if node.op.kind == "elemwise":
            specs.append(OutputSpec(tuple(range(rank)), False, dtype))
            dims = [f"out{j}.shape[{a}]" for a in range(tail)]
            prologue.append(f"fout{j} = out{j}.reshape({_tuple_text(dims + ['span'])})")
            at = ", ".join([f"i{a}" for a in range(tail)] + ["j0 : j0 + width"])
            views.append(f"w{j} = fout{j}[{at}]")
            stores.append(f"w{j}[j] = {value[(id(node), 0)]}")
            continue
        axes = _reduction_axes(node, rank)
        specs.append(OutputSpec(axes, True, dtype, mean=node.op.name == "mean"))
        before.append(f"out{j}[...] = 0")
        kept = {a for a in axes if a is not None} & flat
        summed = sources[id(node)]
        # (a kept flat axis of length one is index 0: only outer axes have loops)
        if not kept:  # every flat axis summed: a register per outer iteration
            slot = ", ".join("0" if a is None or a >= tail else f"i{a}" for a in axes)
            per_outer.append(f"acc{j} = np.{dtype.name}(0)")
            stores.append(f"acc{j} = vm.accumulate(acc{j}, {summed})")
            flushes.append(f"out{j}[{slot}] = vm.accumulate(out{j}[{slot}], acc{j})")
        elif kept == {last}:
            # the lanes kept: partial sums a chunk long per index of the kept
            # outer axes, folded into the lanes once all loops are done
            kept_outer = [a for a in axes if a is not None and a < tail]
            table = [(f"n{a}", f"i{a}") for a in kept_outer]
            prologue.append(f"part{j} = np.zeros(({rows(table)}, chunk), np.{dtype.name})")
            per_outer.append(f"pt{j} = part{j}[{row(table)}]")
            stores.append(f"pt{j}[j] = vm.accumulate(pt{j}[j], {summed})")
            slot = ", ".join(
                "j" if a == last else "0" if a is None or a >= tail else f"i{a}" for a in axes
            )
            fold = [f"for i{a} in range(n{a}):" for a in kept_outer]
            fold = [("    " * k) + line for k, line in enumerate(fold)]
            inner = "    " * len(kept_outer)
            fold += [
                f"{inner}for t in range(0, fill, period):",
                f"{inner}    for j in range(period):",
                f"{inner}        out{j}[{slot}] = vm.accumulate(",
                f"{inner}            out{j}[{slot}], part{j}[{row(table)}, t + j]",
                f"{inner}        )",
            ]
            after += fold
        else:  # every flat axis kept: a sum over outer axes alone
            kept_axes = outer(tuple(1 if a is None else loop_shape[a] for a in axes))
            dims = [size for size, _ in kept_axes]
            prologue.append(f"fout{j} = out{j}.reshape({_tuple_text(dims + ['span'])})")
            at = ", ".join([index for _, index in kept_axes] + ["j0 : j0 + width"])
            views.append(f"w{j} = fout{j}[{at}]")
            stores.append(f"w{j}[j] = vm.accumulate(w{j}[j], {summed})")

    shape_from = _shape_sources(body, loop_shape)
    lines = _kernel_head(name, len(body.inputs), out_args, shape_from)
    lines += [f"    {line}" for line in prologue + before]
    indent = "    "
    for axis in range(tail):
        lines.append(f"{indent}for i{axis} in range(n{axis}):")
        indent += "    "
    lines += [indent + line for line in per_outer]
    lines.append(f"{indent}for j0 in range(0, span, chunk):")
    lines.append(f"{indent}    width = min(chunk, span - j0)")
    lines += [f"{indent}    {line}" for line in views]
    lines.append(f"{indent}    for j in range(width):")
    body_indent = indent + "        "
    lines += [body_indent + line for line in loads + statements + stores]
    lines += [indent + line for line in flushes]
    lines += [f"    {line}" for line in after]
    return KernelSource(name, "\n".join(lines) + "\n", rank, shape_from, tuple(specs))
