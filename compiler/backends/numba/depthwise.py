"""3x3 depthwise convolutions at stride 1 and 2, float32, on CPUs with AVX-512:
the forward, the data gradient and the weight gradient of MobileNet's layers.

The convolution kernels' general depthwise route (lowerings/conv.py) pads every
plane into a scratch array, convolves its wide positions and copies the result
out: passes of scalar copies around a vector loop, which a 14x14 plane (one
16-float vector a row) spends mostly on the copies. Here a plane is read and
written in place, one column of ``LANES`` outputs at a time from top to bottom
(:mod:`.planes`): the input rows an output row shares with the next stay in
registers, so at unit stride every output row costs three masked loads, nine
FMAs and one masked store. The data gradient is at stride 1 the forward of the
output gradient with the kernel turned by 180 degrees, at stride 2 each pair of
rows and columns of dx from the taps that reach it. MobileNet 1.0's layers, B=8,
one thread, against the general route, forward/data/weight gradient: 512
channels at 14x14 0.74/0.72/1.15 -> 0.17/0.16/0.17 ms, 1024 at 7x7
0.70/0.72/1.11 -> 0.17/0.17/0.20, 256 at 28x28 0.84/0.94/1.44 -> 0.39/0.28/0.30;
at 112x112 both are bound by memory.

Every output is the sum of all nine products, the padding's included (a weight
times zero, as im2col's product has them), starting from +0: the data gradient
of weights that are not all finite is left to the general route, whose adjoint
has no such terms. The weight gradient (:func:`_weight_grad_kernel`) keeps a
vector sum per kernel position over a whole column, added into a (9, LANES)
array that the caller folds once per channel.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from .planes import (
    I64,
    TAPS,
    ZERO,
    Column,
    PairedColumn,
    down_the_rows,
    first_rows,
    lanes_between,
    masked_load,
    masked_store,
    splat,
    spread_pairs,
    window,
)
from .sgemm import AVAILABLE, FLOAT_POINTER, LANES, VECTOR, fma, vector_at


def _forward_kernel(stride: int) -> Any:
    """An intrinsic ``forward(x, rows, width, r0, c0, out, out_width, out_rows,
    count, taps)``: ``out[i*out_width + j] = sum over a, e < 3 of taps[3a + e] *
    x[(r0 + stride*i + a) * width + c0 + stride*j + e]`` (zero outside the ``rows``
    x ``width`` plane at ``x``) for ``i < out_rows`` and ``j < count`` (at most
    ``LANES``); float32 pointers, 64-bit sizes."""
    columns = Column if stride == 1 else PairedColumn

    @intrinsic
    def forward(typingctx, x, rows, width, r0, c0, out, out_width, out_rows, count, taps):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(pointer, size, size, size, size, pointer, size, size, size, pointer)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            x_ptr, rows, width, r0, c0, out_ptr, out_width, out_rows, count, taps_ptr = args
            weights = [
                splat(builder, builder.load(builder.gep(taps_ptr, [I64(t)])), VECTOR)
                for t in range(TAPS)
            ]
            column = columns(builder, x_ptr, rows, width, c0, count)
            written = lanes_between(builder, I64(0), count)

            def output_row(i: Any, kept: list[Any]) -> list[Any]:
                rows_read = window(column, builder, r0, i, stride, kept)
                sums = []
                for a in range(3):  # a sum per kernel row: short chains
                    total = ZERO
                    for e in range(3):
                        total = fma(builder, weights[3 * a + e], rows_read[3 * a + e], total)
                    sums.append(total)
                result = builder.fadd(builder.fadd(sums[0], sums[1]), sums[2])
                masked_store(builder, result, out_ptr, builder.mul(i, out_width), written)
                return rows_read[3 * stride :]

            down_the_rows(builder, out_rows, first_rows(column, builder, r0, stride), output_row)
            return context.get_dummy_value()

        return signature, codegen

    return forward


def _weight_grad_kernel(stride: int) -> Any:
    """An intrinsic ``weight_grad(g, x, rows, width, r0, c0, g_width, g_rows,
    count, sums)``: ``sums[t*LANES + j] += sum over i < g_rows of g[i*g_width + j]
    * x[(r0 + stride*i + a) * width + c0 + stride*j + e]`` for ``t = 3a + e`` and
    lanes ``j < count`` (the others add zero), ``x`` zero outside its ``rows`` x
    ``width`` plane; float32 pointers, 64-bit sizes."""
    columns = Column if stride == 1 else PairedColumn

    @intrinsic
    def weight_grad(typingctx, g, x, rows, width, r0, c0, g_width, g_rows, count, sums):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(pointer, pointer, size, size, size, size, size, size, size, pointer)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            g_ptr, x_ptr, rows, width, r0, c0, g_width, g_rows, count, sums_ptr = args
            column = columns(builder, x_ptr, rows, width, c0, count)
            present = lanes_between(builder, I64(0), count)
            kept_count = 3 * (3 - stride)

            def output_row(i: Any, carried: list[Any]) -> list[Any]:
                kept, totals = carried[:kept_count], carried[kept_count:]
                rows_read = window(column, builder, r0, i, stride, kept)
                gradient = masked_load(builder, g_ptr, builder.mul(i, g_width), present)
                totals = [fma(builder, gradient, v, s) for v, s in zip(rows_read, totals)]
                return rows_read[3 * stride :] + totals

            first = first_rows(column, builder, r0, stride)
            totals = down_the_rows(builder, g_rows, first + [ZERO] * TAPS, output_row)
            for t, total in enumerate(totals[kept_count:]):
                target = vector_at(builder, sums_ptr, I64(t * LANES))
                builder.store(builder.fadd(builder.load(target, align=4), total), target, align=4)
            return context.get_dummy_value()

        return signature, codegen

    return weight_grad


@intrinsic
def _paired_data_grad_kernel(typingctx, g, g_rows, g_width, i0, j0, dx, rows, width, r0, c0, taps):  # type: ignore[no-untyped-def]
    """The data gradient of a stride-2 forward kernel: 32 columns of the ``rows``
    x ``width`` plane at ``dx`` from ``c0 = 2*j0 - pad``, all its rows from ``r0 =
    2*i0 - pad``, each the sum of ``taps[3a + e] * g[i, j]`` over the taps (a, e)
    of the outputs (i, j) that read it (``planes.spread_pairs``; g zero outside
    its ``g_rows`` x ``g_width`` plane). Float32 pointers, 64-bit sizes."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(
        pointer, size, size, size, size, pointer, size, size, size, size, pointer
    )

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        g_ptr, g_rows, g_width, i0, j0, dx_ptr, rows, width, r0, c0, taps_ptr = args
        b = builder
        w = [splat(b, b.load(b.gep(taps_ptr, [I64(t)])), VECTOR) for t in range(TAPS)]
        column = Column(b, g_ptr, g_rows, g_width, b.sub(j0, I64(1)), I64(LANES + 1))
        # g's columns j0 + l and j0 + l - 1: the Column's kernel columns 1 and 0

        def load(i: Any) -> list[tuple]:
            before, at, _after = column.loads(i)
            return [(at,), (before,)]

        def add(total: Any, t: int, value: tuple) -> Any:
            return fma(b, w[t], value[0], total)

        spread_pairs(b, load, add, i0, dx_ptr, rows, width, r0, c0)
        return context.get_dummy_value()

    return signature, codegen


_forward_unit, _forward_paired = _forward_kernel(1), _forward_kernel(2)
_weight_grad_unit, _weight_grad_paired = _weight_grad_kernel(1), _weight_grad_kernel(2)


# Not cached on disk by numba: these functions are linked into the generated
# kernel modules that call them, which are cached under names that hash this file
# and planes.py (disk_cache._products); numba's own cache would know only this
# file's changes, and keep machine code built from an older planes.py.
_jit = numba.njit(nogil=True, boundscheck=False)


@_jit
def _fits(x, w, out, stride, dilate, pad):
    # one input channel a filter and as many filters, 3x3 taps, 2-D planes, no
    # dilation, stride 1 or 2 on both axes, and out of the size that makes; the
    # kernels step through the planes by their sizes: C-contiguous arrays only
    s = stride[1]
    return (
        x.flags.c_contiguous
        and w.flags.c_contiguous
        and out.flags.c_contiguous
        and w.shape[0] == x.shape[1] == out.shape[1]
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


def _vector_route(function: Any, fits: Any, planes: Any) -> None:
    """Give ``function(a, b, c, lo, hi, stride, dilate, pad)`` its compiled form:
    False for arrays other than float32 (decided in typing) or where ``fits(a, b,
    c, stride, dilate, pad)`` does not hold, else ``planes(a, b, c, lo, hi,
    stride[1], pad)`` and True."""

    @overload(function)
    def typed(a, b, c, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
        if not _float32(a, b, c):
            return lambda a, b, c, lo, hi, stride, dilate, pad: False

        def vector(a, b, c, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
            if not fits(a, b, c, stride, dilate, pad):
                return False
            planes(a, b, c, lo, hi, stride[1], pad)
            return True

        return vector


def forward(x, w, out, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    """``out[n, c] = conv(x[n, c], w[c])`` for images ``lo..hi``: a 3x3 depthwise
    convolution (as many filters as channels) at stride 1 or 2, no dilation, of
    C-contiguous 5-D float32 arrays (N, C, 1, H, W) and w (C, 1, 1, 3, 3), by the
    vector kernels. Returns whether it did: False (nothing written) for another
    dtype or geometry, or a CPU without AVX-512. Compiled code only."""
    raise NotImplementedError("depthwise.forward runs in compiled code")


def data_grad(g, w, dx, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    """``dx[lo:hi]`` = the data gradient of :func:`forward` (its geometry given)
    for the output gradient ``g``: at stride 1 the forward of g with the kernel
    turned by 180 degrees, at stride 2 each pair of dx's rows and columns from
    the taps that reach it. Every weight must be finite (a padding term is a
    weight times zero, which the adjoint does not have). Returns whether it did,
    as :func:`forward`. Compiled code only."""
    raise NotImplementedError("depthwise.data_grad runs in compiled code")


def weight_grad(g, x, dw, lo, hi, stride, dilate, pad):  # type: ignore[no-untyped-def]
    """``dw[c] += sum over images lo..hi of the correlation of g[n, c] with x[n, c]
    padded`` (the weight gradient of :func:`forward`, its geometry given); returns
    whether it did, as :func:`forward`. Compiled code only."""
    raise NotImplementedError("depthwise.weight_grad runs in compiled code")


@_jit
def _data_grad_fits(g, w, dx, stride, dilate, pad):
    return _fits(dx, w, g, stride, dilate, pad)


@_jit
def _weight_grad_fits(g, x, dw, stride, dilate, pad):
    return _fits(x, dw, g, stride, dilate, pad)


_vector_route(forward, _fits, _planes_forward)
_vector_route(data_grad, _data_grad_fits, _planes_data_grad)
_vector_route(weight_grad, _weight_grad_fits, _planes_weight_grad)
