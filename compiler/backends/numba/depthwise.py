"""3x3 depthwise convolutions at unit stride, float32, on CPUs with AVX-512: the
forward, the data gradient (the forward of the output gradient with the kernel
turned by 180 degrees) and the weight gradient of MobileNet's stride-1 layers.

The convolution kernels' general depthwise route (lowerings/conv.py) pads every
plane into a scratch array, convolves its wide positions and copies the result
out: three passes of scalar copies around a vector loop, which a 14x14 plane
(one 16-float vector a row) spends mostly on the copies. Here a plane is read
and written in place, one column of ``LANES`` outputs at a time from top to
bottom (:func:`_forward_kernel`): the three input rows an output row reads stay
in registers as three shifted vectors each, so every output row costs three
masked loads, nine FMAs and one masked store, the masks putting the padding's
zeros where a row or column falls outside the plane. MobileNet 1.0's layers,
B=8, one thread, against the general route: 512 channels at 14x14 0.74 ->
0.13 ms, 1024 at 7x7 0.70 -> 0.15, 256 at 28x28 0.91 -> 0.33; at 56x56 and
112x112 both are bound by memory (1.3 against 1.1 ms).

Every output is the sum of all nine products, the padding's included (a weight
times zero, as im2col's product has them), starting from +0. The weight gradient
(:func:`_weight_grad_kernel`) keeps a vector sum per kernel position over a
whole column, added into a (9, LANES) array that the caller folds once per
channel.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .sgemm import AVAILABLE, FLOAT_POINTER, LANES, VECTOR, fma, llvm_function

TAPS = 9  # a 3x3 kernel's positions, in row-major order

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_INDICES = ir.VectorType(_I32, LANES)
_MASK = ir.VectorType(ir.IntType(1), LANES)
_ZERO = ir.Constant(VECTOR, [0.0] * LANES)
_NONE = ir.Constant(_MASK, [0] * LANES)


def _splat(builder: Any, value: Any, vector_type: Any) -> Any:
    """``value`` in every lane of a ``vector_type``."""
    single = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, _I32(0))
    everywhere = ir.Constant(_INDICES, [0] * LANES)
    return builder.shuffle_vector(single, ir.Constant(vector_type, ir.Undefined), everywhere)


def _lanes_between(builder: Any, lo: Any, hi: Any) -> Any:
    """The mask of lanes ``l`` with ``lo <= l < hi`` (64-bit bounds, each within
    a 32-bit range)."""
    lanes = ir.Constant(_INDICES, list(range(LANES)))
    low = _splat(builder, builder.trunc(lo, _I32), _INDICES)
    high = _splat(builder, builder.trunc(hi, _I32), _INDICES)
    return builder.and_(
        builder.icmp_signed(">=", lanes, low), builder.icmp_signed("<", lanes, high)
    )


def _pointer(builder: Any, base: Any, offset: Any) -> Any:
    return builder.bitcast(builder.gep(base, [offset]), VECTOR.as_pointer())


def _masked_load(builder: Any, base: Any, offset: Any, mask: Any) -> Any:
    """The floats at ``base + offset`` in the lanes of ``mask``, zero elsewhere;
    lanes outside the mask are never read (they may lie outside the array)."""
    name = f"llvm.masked.load.v{LANES}f32.p0v{LANES}f32"
    load = llvm_function(builder, name, VECTOR, [VECTOR.as_pointer(), _I32, _MASK, VECTOR])
    return builder.call(load, [_pointer(builder, base, offset), _I32(4), mask, _ZERO])


def _masked_store(builder: Any, value: Any, base: Any, offset: Any, mask: Any) -> None:
    """``value``'s lanes in ``mask`` written at ``base + offset``."""
    name = f"llvm.masked.store.v{LANES}f32.p0v{LANES}f32"
    store = llvm_function(builder, name, ir.VoidType(), [VECTOR, VECTOR.as_pointer(), _I32, _MASK])
    builder.call(store, [value, _pointer(builder, base, offset), _I32(4), mask])


class _Column:
    """The input rows of one column of outputs at unit stride: row ``r`` as three
    vectors, lane ``l`` of vector ``e`` the plane's column ``c0 + l + e`` (kernel
    column ``e`` of output ``l``), zero outside the plane and in lanes past the
    column's ``count`` outputs."""

    def __init__(self, builder: Any, plane: Any, rows: Any, width: Any, c0: Any, count: Any):
        self.builder, self.plane, self.rows, self.width = builder, plane, rows, width
        self.columns, self.masks = [], []
        for e in range(3):
            column = builder.add(c0, _I64(e))
            end = builder.sub(width, column)
            end = builder.select(builder.icmp_signed("<", end, count), end, count)
            self.columns.append(column)
            self.masks.append(_lanes_between(builder, builder.neg(column), end))

    def _loads(self, r: Any) -> list[Any]:
        b = self.builder
        inside = b.and_(b.icmp_signed(">=", r, _I64(0)), b.icmp_signed("<", r, self.rows))
        start = b.mul(b.select(inside, r, _I64(0)), self.width)
        return [
            _masked_load(b, self.plane, b.add(start, column), b.select(inside, mask, _NONE))
            for column, mask in zip(self.columns, self.masks)
        ]

    def row(self, r: Any) -> list[Any]:
        return self._loads(r)


class _PairedColumn(_Column):
    """:class:`_Column` at stride 2: lane ``l`` of vector ``e`` is the plane's
    column ``c0 + 2l + e``. The row's ``2 * count + 1`` columns from ``c0`` are
    read as three vectors and their even and odd lanes taken apart."""

    def __init__(self, builder: Any, plane: Any, rows: Any, width: Any, c0: Any, count: Any):
        self.builder, self.plane, self.rows, self.width = builder, plane, rows, width
        self.columns, self.masks = [], []
        needed = builder.add(builder.add(count, count), _I64(1))
        for q in range(3):
            column = builder.add(c0, _I64(q * LANES))
            end = builder.sub(width, column)
            last = builder.sub(needed, _I64(q * LANES))
            end = builder.select(builder.icmp_signed("<", end, last), end, last)
            self.columns.append(column)
            self.masks.append(_lanes_between(builder, builder.neg(column), end))

    def row(self, r: Any) -> list[Any]:
        b = self.builder
        first, second, third = self._loads(r)
        even = b.shuffle_vector(first, second, _indices(range(0, 2 * LANES, 2)))
        odd = b.shuffle_vector(first, second, _indices(range(1, 2 * LANES, 2)))
        after = b.shuffle_vector(even, third, _indices(range(1, LANES + 1)))
        return [even, odd, after]


def _indices(values: Any) -> Any:
    return ir.Constant(_INDICES, list(values))


def _down_the_rows(builder: Any, count: Any, carried: list[Any], body: Any) -> list[Any]:
    """Emit ``for i in range(count)`` carrying the values ``carried`` (their
    values before the loop), ``body(i, values)`` returning their next values;
    return their values after the loop."""
    before = builder.block
    loop = builder.append_basic_block("rows")
    done = builder.append_basic_block("rows.done")
    builder.cbranch(builder.icmp_signed(">", count, _I64(0)), loop, done)
    builder.position_at_end(loop)
    i = builder.phi(_I64)
    i.add_incoming(_I64(0), before)
    values = [builder.phi(v.type) for v in carried]
    for phi, value in zip(values, carried):
        phi.add_incoming(value, before)
    following = body(i, values)
    after = builder.add(i, _I64(1))
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


def _first_rows(column: _Column, builder: Any, r0: Any, stride: int) -> list[Any]:
    """The vectors of the rows the first output row shares with the next: rows
    ``r0 + stride .. r0 + 2`` (the window's last ``3 - stride`` rows come first in
    the loop; see :func:`_window`)."""
    return [v for a in range(3 - stride) for v in column.row(builder.add(r0, _I64(a)))]


def _window(column: _Column, builder: Any, r0: Any, i: Any, stride: int, kept: list[Any]):
    """The three input rows of output row ``i`` (rows ``r0 + stride*i + a``), as
    nine vectors, from the ``kept`` ones of the previous output row and
    ``stride`` new rows."""
    top = builder.add(r0, builder.mul(i, _I64(stride)))
    new = [v for a in range(3 - stride, 3) for v in column.row(builder.add(top, _I64(a)))]
    return kept + new


def _forward_kernel(stride: int) -> Any:
    """An intrinsic ``forward(x, rows, width, r0, c0, out, out_width, out_rows,
    count, taps)``: ``out[i*out_width + j] = sum over a, e < 3 of taps[3a + e] *
    x[(r0 + stride*i + a) * width + c0 + stride*j + e]`` (zero outside the ``rows``
    x ``width`` plane at ``x``) for ``i < out_rows`` and ``j < count`` (at most
    ``LANES``); float32 pointers, 64-bit sizes."""
    Column = _Column if stride == 1 else _PairedColumn

    @intrinsic
    def forward(typingctx, x, rows, width, r0, c0, out, out_width, out_rows, count, taps):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(pointer, size, size, size, size, pointer, size, size, size, pointer)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            x_ptr, rows, width, r0, c0, out_ptr, out_width, out_rows, count, taps_ptr = args
            weights = [
                _splat(builder, builder.load(builder.gep(taps_ptr, [_I64(t)])), VECTOR)
                for t in range(TAPS)
            ]
            column = Column(builder, x_ptr, rows, width, c0, count)
            written = _lanes_between(builder, _I64(0), count)

            def output_row(i: Any, kept: list[Any]) -> list[Any]:
                window = _window(column, builder, r0, i, stride, kept)
                sums = []
                for a in range(3):  # a sum per kernel row: short chains
                    total = _ZERO
                    for e in range(3):
                        total = fma(builder, weights[3 * a + e], window[3 * a + e], total)
                    sums.append(total)
                result = builder.fadd(builder.fadd(sums[0], sums[1]), sums[2])
                _masked_store(builder, result, out_ptr, builder.mul(i, out_width), written)
                return window[3 * stride :]

            _down_the_rows(builder, out_rows, _first_rows(column, builder, r0, stride), output_row)
            return context.get_dummy_value()

        return signature, codegen

    return forward


def _weight_grad_kernel(stride: int) -> Any:
    """An intrinsic ``weight_grad(g, x, rows, width, r0, c0, g_width, g_rows,
    count, sums)``: ``sums[t*LANES + j] += sum over i < g_rows of g[i*g_width + j]
    * x[(r0 + stride*i + a) * width + c0 + stride*j + e]`` for ``t = 3a + e`` and
    lanes ``j < count`` (the others add zero), ``x`` zero outside its ``rows`` x
    ``width`` plane; float32 pointers, 64-bit sizes."""
    Column = _Column if stride == 1 else _PairedColumn

    @intrinsic
    def weight_grad(typingctx, g, x, rows, width, r0, c0, g_width, g_rows, count, sums):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(pointer, pointer, size, size, size, size, size, size, size, pointer)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            g_ptr, x_ptr, rows, width, r0, c0, g_width, g_rows, count, sums_ptr = args
            column = Column(builder, x_ptr, rows, width, c0, count)
            present = _lanes_between(builder, _I64(0), count)
            kept_count = 3 * (3 - stride)

            def output_row(i: Any, carried: list[Any]) -> list[Any]:
                kept, totals = carried[:kept_count], carried[kept_count:]
                window = _window(column, builder, r0, i, stride, kept)
                gradient = _masked_load(builder, g_ptr, builder.mul(i, g_width), present)
                totals = [fma(builder, gradient, v, s) for v, s in zip(window, totals)]
                return window[3 * stride :] + totals

            first = _first_rows(column, builder, r0, stride)
            totals = _down_the_rows(builder, g_rows, first + [_ZERO] * TAPS, output_row)
            for t, total in enumerate(totals[kept_count:]):
                target = _pointer(builder, sums_ptr, _I64(t * LANES))
                builder.store(builder.fadd(builder.load(target, align=4), total), target, align=4)
            return context.get_dummy_value()

        return signature, codegen

    return weight_grad


@intrinsic
def _paired_data_grad_kernel(typingctx, g, g_rows, g_width, i0, j0, dx, rows, width, r0, c0, taps):  # type: ignore[no-untyped-def]
    """The data gradient of a stride-2 :func:`_forward_kernel`, 32 columns of dx
    from ``c0 = 2*j0 - pad`` (of the ``rows`` x ``width`` plane at ``dx``) down its
    rows from ``r0 = 2*i0 - pad``: ``dx[r, c] = sum of taps[3a + e] * g[i, j]`` over
    the ``r = 2i + a + r0 - 2*i0``, ``c = 2j + e + c0 - 2*j0`` (g zero outside its
    ``g_rows`` x ``g_width`` plane). Column ``c0 + 2l`` takes kernel columns 0
    (from g's column ``j0 + l``) and 2 (``j0 + l - 1``), column ``c0 + 2l + 1``
    kernel column 1; likewise the rows, two a step: ``r0 + 2k`` from g's rows
    ``i0 + k`` and ``i0 + k - 1``, ``r0 + 2k + 1`` from row ``i0 + k``. Float32
    pointers, 64-bit sizes."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(
        pointer, size, size, size, size, pointer, size, size, size, size, pointer
    )

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        g_ptr, g_rows, g_width, i0, j0, dx_ptr, rows, width, r0, c0, taps_ptr = args
        b = builder
        w = [_splat(b, b.load(b.gep(taps_ptr, [_I64(t)])), VECTOR) for t in range(TAPS)]
        # g's columns j0 + l and j0 + l - 1
        masks = []
        for shift in (0, -1):
            column = b.add(j0, _I64(shift))
            masks.append((column, _lanes_between(b, b.neg(column), b.sub(g_width, column))))

        def g_row(i: Any) -> list[Any]:
            inside = b.and_(b.icmp_signed(">=", i, _I64(0)), b.icmp_signed("<", i, g_rows))
            start = b.mul(b.select(inside, i, _I64(0)), g_width)
            return [
                _masked_load(b, g_ptr, b.add(start, column), b.select(inside, mask, _NONE))
                for column, mask in masks
            ]

        # dx's 32 columns, as two stores of interleaved even and odd ones
        stores = []
        for half in range(2):
            column = b.add(c0, _I64(half * LANES))
            stores.append((column, _lanes_between(b, b.neg(column), b.sub(width, column))))
        low = _indices(v for l in range(LANES // 2) for v in (l, LANES + l))
        high = _indices(v for l in range(LANES // 2, LANES) for v in (l, LANES + l))

        def store_row(r: Any, even: Any, odd: Any) -> None:
            inside = b.and_(b.icmp_signed(">=", r, _I64(0)), b.icmp_signed("<", r, rows))
            start = b.mul(b.select(inside, r, _I64(0)), width)
            for (column, mask), order in zip(stores, (low, high)):
                value = b.shuffle_vector(even, odd, order)
                _masked_store(b, value, dx_ptr, b.add(start, column), b.select(inside, mask, _NONE))

        def combine(pairs: list[tuple[int, Any]]) -> Any:
            total = _ZERO
            for t, vector in pairs:
                total = fma(b, w[t], vector, total)
            return total

        steps = b.sdiv(b.add(b.sub(rows, r0), _I64(1)), _I64(2))  # row pairs to cover dx

        def row_pair(k: Any, above: list[Any]) -> list[Any]:
            here = g_row(b.add(i0, k))
            top = b.add(r0, b.add(k, k))
            even = combine([(0, here[0]), (2, here[1]), (6, above[0]), (8, above[1])])
            odd = combine([(1, here[0]), (7, above[0])])
            store_row(top, even, odd)
            store_row(
                b.add(top, _I64(1)), combine([(3, here[0]), (5, here[1])]), combine([(4, here[0])])
            )
            return here

        _down_the_rows(b, steps, g_row(b.sub(i0, _I64(1))), row_pair)
        return context.get_dummy_value()

    return signature, codegen


_forward_unit, _forward_paired = _forward_kernel(1), _forward_kernel(2)
_weight_grad_unit, _weight_grad_paired = _weight_grad_kernel(1), _weight_grad_kernel(2)


_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def _fits(x, w, out, stride, dilate, pad):
    # one input channel a filter and as many filters, 3x3 taps, 2-D planes, no
    # dilation, stride 1 or 2 on both axes, and out of the size that makes
    s = stride[1]
    return (
        w.shape[0] == x.shape[1] == out.shape[1]
        and w.shape[1] == 1
        and w.shape[2] == 1
        and w.shape[3] == 3
        and w.shape[4] == 3
        and x.shape[2] == 1
        and out.shape[2] == 1
        and stride[0] == 1
        and (s == 1 or s == 2)
        and stride[2] == s
        and dilate[0] == 1
        and dilate[1] == 1
        and dilate[2] == 1
        and pad[0] == 0
        and pad[1] >= 0
        and pad[2] >= 0
        and out.shape[3] == (x.shape[3] + 2 * pad[1] - 3) // s + 1 >= 1
        and out.shape[4] == (x.shape[4] + 2 * pad[2] - 3) // s + 1 >= 1
    )


@_jit
def _fill_taps(w, c, turned, taps):
    # taps[:] = filter c's kernel in row-major order, or turned by 180 degrees
    kernel = w[c, 0, 0]
    for t in range(TAPS):
        u = TAPS - 1 - t if turned else t
        taps[t] = kernel[u // 3, u % 3]


@_jit
def _planes_forward(x, w, out, lo, hi, stride, pad):
    H, W = x.shape[3], x.shape[4]
    OH, OW = out.shape[3], out.shape[4]
    taps = np.empty(TAPS, np.float32)
    for c in range(x.shape[1]):
        _fill_taps(w, c, False, taps)
        for n in range(lo, hi):
            plane = x[n, c, 0].ctypes
            for j0 in range(0, OW, LANES):
                target = out[n, c, 0, 0, j0:].ctypes
                count = min(LANES, OW - j0)
                if stride == 1:
                    c0 = j0 - pad[2]
                    _forward_unit(plane, H, W, -pad[1], c0, target, OW, OH, count, taps.ctypes)
                else:
                    c0 = 2 * j0 - pad[2]
                    _forward_paired(plane, H, W, -pad[1], c0, target, OW, OH, count, taps.ctypes)


@_jit
def _planes_data_grad(g, w, dx, lo, hi, stride, pad):
    H, W = dx.shape[3], dx.shape[4]
    OH, OW = g.shape[3], g.shape[4]
    taps = np.empty(TAPS, np.float32)
    for c in range(dx.shape[1]):
        _fill_taps(w, c, stride == 1, taps)
        for n in range(lo, hi):
            plane = g[n, c, 0].ctypes
            if stride == 1:  # the forward of g with the turned taps
                for j0 in range(0, W, LANES):
                    target = dx[n, c, 0, 0, j0:].ctypes
                    count = min(LANES, W - j0)
                    c0 = j0 - (2 - pad[2])
                    _forward_unit(plane, OH, OW, pad[1] - 2, c0, target, W, H, count, taps.ctypes)
                continue
            # row and column pairs from the first of dx (or the one before)
            i0, j0 = pad[1] // 2, pad[2] // 2
            for j in range(j0, j0 + (W + 1) // 2 + 1, LANES):
                if 2 * j - pad[2] >= W:
                    break
                _paired_data_grad_kernel(
                    plane, OH, OW, i0, j, dx[n, c, 0].ctypes, H, W,
                    2 * i0 - pad[1], 2 * j - pad[2], taps.ctypes,
                )  # fmt: skip


@_jit
def _planes_weight_grad(g, x, dw, lo, hi, stride, pad):
    H, W = x.shape[3], x.shape[4]
    OH, OW = g.shape[3], g.shape[4]
    sums = np.empty((TAPS, LANES), np.float32)
    for c in range(x.shape[1]):
        sums[:] = 0
        for n in range(lo, hi):
            plane = x[n, c, 0].ctypes
            for j0 in range(0, OW, LANES):
                column = g[n, c, 0, 0, j0:].ctypes
                count = min(LANES, OW - j0)
                if stride == 1:
                    c0 = j0 - pad[2]
                    _weight_grad_unit(column, plane, H, W, -pad[1], c0, OW, OH, count, sums.ctypes)
                else:
                    c0 = 2 * j0 - pad[2]
                    _weight_grad_paired(
                        column, plane, H, W, -pad[1], c0, OW, OH, count, sums.ctypes
                    )
        for t in range(TAPS):
            dw[c, 0, 0, t // 3, t % 3] += sums[t].sum()


def _float32(*arrays: Any) -> bool:
    return AVAILABLE and all(a.dtype == types.float32 for a in arrays)


def forward(x, w, out, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    """``out[n, c] = conv(x[n, c], w[c])`` for images ``lo..hi``: a 3x3 depthwise
    convolution (as many filters as channels) at stride 1 or 2, no dilation, of
    C-contiguous 5-D float32 arrays (N, C, 1, H, W) and w (C, 1, 1, 3, 3), by the
    vector kernels. Returns whether it did: False (nothing written) for another
    dtype or geometry, or a CPU without AVX-512. Compiled code only."""
    raise NotImplementedError("depthwise.forward runs in compiled code")


@overload(forward)
def _forward_for_dtype(x, w, out, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    if not _float32(x, w, out):
        return lambda x, w, out, lo, hi, stride, dilate, pad: False

    def vector(x, w, out, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
        if not _fits(x, w, out, stride, dilate, pad):
            return False
        _planes_forward(x, w, out, lo, hi, stride[1], pad)
        return True

    return vector


def data_grad(g, w, dx, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    """``dx[lo:hi]`` = the data gradient of :func:`forward` (its geometry given)
    for the output gradient ``g``: at stride 1 the forward of g with the kernel
    turned by 180 degrees, at stride 2 each pair of dx's rows and columns from
    the taps that reach it. Every weight must be finite (a padding term is a
    weight times zero, which the adjoint does not have). Returns whether it did,
    as :func:`forward`. Compiled code only."""
    raise NotImplementedError("depthwise.data_grad runs in compiled code")


@overload(data_grad)
def _data_grad_for_dtype(g, w, dx, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    if not _float32(g, w, dx):
        return lambda g, w, dx, lo, hi, stride, dilate, pad: False

    def vector(g, w, dx, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
        if not _fits(dx, w, g, stride, dilate, pad):
            return False
        _planes_data_grad(g, w, dx, lo, hi, stride[1], pad)
        return True

    return vector


def weight_grad(g, x, dw, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    """``dw[c] += sum over images lo..hi of the correlation of g[n, c] with x[n, c]
    padded`` (the weight gradient of :func:`forward`, its geometry given); returns
    whether it did, as :func:`forward`. Compiled code only."""
    raise NotImplementedError("depthwise.weight_grad runs in compiled code")


@overload(weight_grad)
def _weight_grad_for_dtype(g, x, dw, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    if not _float32(g, x, dw):
        return lambda g, x, dw, lo, hi, stride, dilate, pad: False

    def vector(g, x, dw, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
        if not _fits(x, dw, g, stride, dilate, pad):
            return False
        _planes_weight_grad(g, x, dw, lo, hi, stride[1], pad)
        return True

    return vector
