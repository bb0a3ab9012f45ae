"""LLVM vector code for kernels over image planes with 3x3 windows (depthwise
convolutions, max pooling), float32 on CPUs with AVX-512: the pieces their
intrinsics are built from.

Such a kernel reads a plane in place, one column of ``LANES`` outputs at a time
from top to bottom. A window's input rows are loaded as three vectors each, one
per kernel column (:class:`Column`; at stride 2 the even and odd columns of two
vectors taken apart, :class:`PairedColumn`), with masked loads that put a fill
value (the padding's) where a row or a column falls outside the plane; the rows
two output rows share stay in registers (:func:`window`). A stride-2 kernel's
adjoint writes pairs of rows and columns of its input's gradient from the taps
that reach them (:func:`spread_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir

from .sgemm import LANES, VECTOR, llvm_function

I32 = ir.IntType(32)
I64 = ir.IntType(64)
INDICES = ir.VectorType(I32, LANES)
MASK = ir.VectorType(ir.IntType(1), LANES)
ZERO = ir.Constant(VECTOR, [0.0] * LANES)
NONE = ir.Constant(MASK, [0] * LANES)
TAPS = 9  # a 3x3 window's positions, in row-major (kernel) order


def splat(builder: Any, value: Any, vector_type: Any) -> Any:
    """``value`` in every lane of a ``vector_type``."""
    single = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, I32(0))
    everywhere = ir.Constant(INDICES, [0] * LANES)
    return builder.shuffle_vector(single, ir.Constant(vector_type, ir.Undefined), everywhere)


def indices(values: Any) -> Any:
    """A constant vector of ``LANES`` 32-bit integers (a shuffle's order)."""
    return ir.Constant(INDICES, list(values))


def lanes_between(builder: Any, lo: Any, hi: Any) -> Any:
    """The mask of lanes ``l`` with ``lo <= l < hi`` (64-bit bounds, each within
    a 32-bit range)."""
    lanes = indices(range(LANES))
    low = splat(builder, builder.trunc(lo, I32), INDICES)
    high = splat(builder, builder.trunc(hi, I32), INDICES)
    return builder.and_(
        builder.icmp_signed(">=", lanes, low), builder.icmp_signed("<", lanes, high)
    )


def inside(builder: Any, value: Any, size: Any) -> Any:
    """Whether ``0 <= value < size`` (64-bit integers)."""
    below = builder.icmp_signed("<", value, size)
    return builder.and_(builder.icmp_signed(">=", value, I64(0)), below)


def masked_load(builder: Any, base: Any, offset: Any, mask: Any, fill: Any = ZERO) -> Any:
    """The ``LANES`` values at ``base + offset`` (floats, or whatever ``fill``'s
    vector type holds) in the lanes of ``mask``, ``fill``'s elsewhere; lanes
    outside the mask are never read (they may lie outside the array)."""
    kind = fill.type
    element = "f32" if kind == VECTOR else "i32"
    name = f"llvm.masked.load.v{LANES}{element}.p0v{LANES}{element}"
    load = llvm_function(builder, name, kind, [kind.as_pointer(), I32, MASK, kind])
    pointer = builder.bitcast(builder.gep(base, [offset]), kind.as_pointer())
    return builder.call(load, [pointer, I32(4), mask, fill])


def masked_store(builder: Any, value: Any, base: Any, offset: Any, mask: Any) -> None:
    """``value``'s lanes in ``mask`` written at ``base + offset``."""
    kind = value.type
    element = "f32" if kind == VECTOR else "i32"
    name = f"llvm.masked.store.v{LANES}{element}.p0v{LANES}{element}"
    store = llvm_function(builder, name, ir.VoidType(), [kind, kind.as_pointer(), I32, MASK])
    pointer = builder.bitcast(builder.gep(base, [offset]), kind.as_pointer())
    builder.call(store, [value, pointer, I32(4), mask])


class Column:
    """The input rows of one column of outputs at unit stride: row ``r`` as three
    vectors, lane ``l`` of vector ``e`` the plane's column ``c0 + l + e`` (kernel
    column ``e`` of output ``l``), ``fill`` outside the plane and in lanes past
    the column's ``count`` outputs."""

    def __init__(
        self, builder: Any, plane: Any, rows: Any, width: Any, c0: Any, count: Any, fill: Any = ZERO
    ):
        self.builder, self.plane, self.rows, self.width = builder, plane, rows, width
        self.fill = fill
        self.columns: list[Any] = []
        self.masks: list[Any] = []
        for column, end in self._loaded(c0, count):
            self._add(column, end)

    def _loaded(self, c0: Any, count: Any) -> list[tuple[Any, Any]]:
        # the vectors a row is read as: their first column and the lane they end
        # before (the count's end; the row's end is _add's)
        return [(self.builder.add(c0, I64(e)), count) for e in range(3)]

    def _add(self, column: Any, end: Any) -> None:
        # the loads from ``column``: its lanes inside the row and before ``end``
        b = self.builder
        limit = b.sub(self.width, column)
        limit = b.select(b.icmp_signed("<", limit, end), limit, end)
        self.columns.append(column)
        self.masks.append(lanes_between(b, b.neg(column), limit))

    def loads(self, r: Any) -> list[Any]:
        """Row ``r``'s vectors as loaded (``fill`` throughout outside the plane)."""
        b = self.builder
        real = inside(b, r, self.rows)
        start = b.mul(b.select(real, r, I64(0)), self.width)
        return [
            masked_load(b, self.plane, b.add(start, column), b.select(real, mask, NONE), self.fill)
            for column, mask in zip(self.columns, self.masks)
        ]

    def row(self, r: Any) -> list[Any]:
        """Row ``r`` as the three kernel columns' vectors."""
        return self.loads(r)


class PairedColumn(Column):
    """:class:`Column` at stride 2: lane ``l`` of vector ``e`` is the plane's
    column ``c0 + 2l + e``. The row's ``2 * count + 1`` columns from ``c0`` are
    read as three vectors and their even and odd lanes taken apart."""

    def _loaded(self, c0: Any, count: Any) -> list[tuple[Any, Any]]:
        b = self.builder
        needed = b.add(b.add(count, count), I64(1))
        return [(b.add(c0, I64(q * LANES)), b.sub(needed, I64(q * LANES))) for q in range(3)]

    def row(self, r: Any) -> list[Any]:
        b = self.builder
        first, second, third = self.loads(r)
        even = b.shuffle_vector(first, second, indices(range(0, 2 * LANES, 2)))
        odd = b.shuffle_vector(first, second, indices(range(1, 2 * LANES, 2)))
        after = b.shuffle_vector(even, third, indices(range(1, LANES + 1)))
        return [even, odd, after]


def down_the_rows(builder: Any, count: Any, carried: list[Any], body: Callable) -> list[Any]:
    """Emit ``for i in range(count)`` carrying the values ``carried`` (their
    values before the loop), ``body(i, values)`` returning their next values;
    return their values after the loop."""
    before = builder.block
    loop = builder.append_basic_block("rows")
    done = builder.append_basic_block("rows.done")
    builder.cbranch(builder.icmp_signed(">", count, I64(0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(I64)
    i.add_incoming(I64(0), before)
    values = [builder.phi(v.type) for v in carried]
    for phi, value in zip(values, carried):
        phi.add_incoming(value, before)
    following = body(i, values)
    after = builder.add(i, I64(1))
    end = builder.block
    i.add_incoming(after, end)
    for phi, value in zip(values, following):
        phi.add_incoming(value, end)
    builder.cbranch(builder.icmp_signed("<", after, count), loop, done)
    builder.position_at_end(done)
    results = []
    for initial, value in zip(carried, following):
        result = builder.phi(value.type)
        result.add_incoming(initial, before)
        result.add_incoming(value, end)
        results.append(result)
    return results


def first_rows(column: Column, builder: Any, r0: Any, stride: int) -> list[Any]:
    """The first output row's rows ``r0 .. r0 + 2 - stride``, as :func:`window`
    takes ``kept`` (the rows a previous output row would have shared)."""
    return [v for a in range(3 - stride) for v in column.row(builder.add(r0, I64(a)))]


def window(
    column: Column, builder: Any, r0: Any, i: Any, stride: int, kept: list[Any]
) -> list[Any]:
    """The three input rows of output row ``i`` (rows ``r0 + stride*i + a``) as
    nine vectors in kernel order, from the ``kept`` ones the previous output row
    shares (its ``window[3 * stride:]``) and ``stride`` rows loaded."""
    top = builder.add(r0, builder.mul(i, I64(stride)))
    new = [v for a in range(3 - stride, 3) for v in column.row(builder.add(top, I64(a)))]
    return kept + new


def spread_pairs(
    builder: Any,
    load: Callable[[Any], list[Any]],
    add: Callable[[Any, int, Any], Any],
    i0: Any,
    target: Any,
    rows: Any,
    width: Any,
    r0: Any,
    c0: Any,
) -> None:
    """Emit the adjoint of a stride-2 3x3 window over the ``rows`` x ``width``
    plane at ``target``: 32 of its columns from ``c0``, two rows a step from
    ``r0`` down to its last, each the sum of the taps that reach it.

    ``load(i)`` gives two values of the windows' row ``i`` (each a tuple of
    vectors): for the windows ``j0 + l`` and ``j0 + l - 1``, ``c0 = 2*j0 - pad``
    (a row outside gives values that add nothing); ``add(total, t, value)`` adds
    what tap ``t`` of such a value brings. Column ``c0 + 2l`` takes kernel
    columns 0 (window ``j0 + l``) and 2 (``j0 + l - 1``), column ``c0 + 2l + 1``
    kernel column 1; likewise the
    rows: ``r0 + 2k`` takes window rows ``i0 + k`` (kernel row 0) and ``i0 + k -
    1`` (row 2), ``r0 + 2k + 1`` window row ``i0 + k`` (row 1), with ``r0 = 2*i0
    - pad``. Every sum starts from +0."""
    b = builder
    stores = []
    for half in range(2):
        column = b.add(c0, I64(half * LANES))
        stores.append((column, lanes_between(b, b.neg(column), b.sub(width, column))))
    low = indices(v for lane in range(LANES // 2) for v in (lane, LANES + lane))
    high = indices(v for lane in range(LANES // 2, LANES) for v in (lane, LANES + lane))

    def store_row(r: Any, even: Any, odd: Any) -> None:
        real = inside(b, r, rows)
        start = b.mul(b.select(real, r, I64(0)), width)
        for (column, mask), order in zip(stores, (low, high)):
            value = b.shuffle_vector(even, odd, order)
            masked_store(b, value, target, b.add(start, column), b.select(real, mask, NONE))

    def total(pairs: list[tuple[int, Any]]) -> Any:
        result = ZERO
        for t, value in pairs:
            result = add(result, t, value)
        return result

    def flat(values: list[tuple]) -> list[Any]:
        return [v for value in values for v in value]

    def row_pair(k: Any, carried: list[Any]) -> list[Any]:
        half = len(carried) // 2
        above = [tuple(carried[:half]), tuple(carried[half:])]
        here = load(b.add(i0, k))
        top = b.add(r0, b.add(k, k))
        # in the windows' row-major order, as a scalar loop over them adds
        even = total([(8, above[1]), (6, above[0]), (2, here[1]), (0, here[0])])
        store_row(top, even, total([(7, above[0]), (1, here[0])]))
        odd = total([(5, here[1]), (3, here[0])])
        store_row(b.add(top, I64(1)), odd, total([(4, here[0])]))
        return flat(here)

    steps = b.sdiv(b.add(b.sub(rows, r0), I64(1)), I64(2))  # row pairs to the last row
    down_the_rows(b, steps, flat(load(b.sub(i0, I64(1)))), row_pair)
