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
    inputs = [f"in{i}" for i in range(len(body.inputs))]
    lines = [f"def {name}({', '.join(inputs + out_args)}):"]
    if WIDE_VECTORS:
        lines.append("    vm.prefer_512_bit_vectors()")
    for axis, (i, input_axis) in enumerate(shape_from):
        lines.append(f"    n{axis} = in{i}.shape[{input_axis}]")
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


def _tuple_text(parts: list[str]) -> str:
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _tail_size(tail: int, rank: int) -> str:
    """The length of the flat loop over loop axes ``tail`` to the last."""
    return " * ".join(f"n{a}" for a in range(tail, rank))


def _whole_along(shape: tuple[int, ...], loop_shape: tuple[int, ...], tail: int) -> bool:
    """Whether an array of ``shape`` (read or written in a loop of ``loop_shape``)
    spans the loop axes from ``tail`` on rather than being of length one there
    (an axis the loop has of length one counts as either)."""
    lead = len(loop_shape) - len(shape)
    return any(a >= lead and shape[a - lead] != 1 for a in range(tail, len(loop_shape)))


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
    lead = len(loop_shape) - len(shape)
    spans = {
        a >= lead and shape[a - lead] != 1
        for a in range(tail, len(loop_shape))
        if loop_shape[a] != 1
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
