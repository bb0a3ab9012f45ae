"""3x3 max pooling at stride 2 (ResNet's, SqueezeNet's, AlexNet's, DenseNet's and
Inception's), float32, on CPUs with AVX-512: the forward and the gradient.

The pooling kernels' general route for it (lowerings/pooling.py) folds each
input row's windows into a buffer, then the rows, and spreads the gradient
window by window in scalar code. Here a plane is read in place, a column of
``LANES`` windows at a time down its rows (:mod:`.planes`, the padding -inf):
each window's nine values are compared in kernel order, so the first largest
wins, NaN included, as the scan of the ops' reference does (no plane needs
another route). The gradient finds the windows' maxima the same way, keeping
the tap of each (an int32 a window), then writes every element of dx once, the
sum of the gradients of the windows whose maximum it is (``planes.spread_pairs``).
SqueezeNet's layers, B=8, one thread, forward/gradient against the general
route: 96 channels at 109x109 4.8/13.1 -> 3.7/9.6 ms (bound by memory), 256 at
54x54 5.2/10.0 -> 1.9/4.7, 512 at 27x27 5.2/9.9 -> 0.28/2.1.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .planes import (
    I32,
    I64,
    INDICES,
    ZERO,
    Column,
    PairedColumn,
    down_the_rows,
    first_rows,
    lanes_between,
    masked_store,
    splat,
    spread_pairs,
    window,
)
from .sgemm import AVAILABLE, FLOAT_POINTER, LANES, VECTOR

_INT_POINTER = types.CPointer(types.int32)
_LOWEST = ir.Constant(VECTOR, [float("-inf")] * LANES)
_NO_TAP = ir.Constant(INDICES, [-1] * LANES)


def _first_largest(builder: Any, values: list[Any]) -> tuple[Any, Any]:
    """The largest of ``values`` lane by lane, the first in their order where
    several are (a NaN first stays; a later one never wins), and its index."""
    best, where = values[0], ir.Constant(INDICES, [0] * LANES)
    for t, value in enumerate(values[1:], 1):
        better = builder.fcmp_ordered(">", value, best)
        best = builder.select(better, value, best)
        where = builder.select(better, ir.Constant(INDICES, [t] * LANES), where)
    return best, where


def _windows_kernel(taps: bool) -> Any:
    """An intrinsic ``windows(x, rows, width, r0, c0, out, out_width, out_rows,
    count)``: for ``i < out_rows`` and ``j < count`` (at most ``LANES``), the
    first largest of the 3x3 window of the ``rows`` x ``width`` plane at ``x``
    whose corner is row ``r0 + 2i``, column ``c0 + 2j`` (-inf outside the plane)
    into ``out[i*out_width + j]``: its value (float32 ``out``), or with ``taps``
    its position in the window, row-major (int32 ``out``). 64-bit sizes."""

    @intrinsic
    def windows(typingctx, x, rows, width, r0, c0, out, out_width, out_rows, count):  # type: ignore[no-untyped-def]
        size = types.int64
        target = _INT_POINTER if taps else FLOAT_POINTER
        signature = types.void(FLOAT_POINTER, size, size, size, size, target, size, size, size)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            x_ptr, rows, width, r0, c0, out_ptr, out_width, out_rows, count = args
            column = PairedColumn(builder, x_ptr, rows, width, c0, count, _LOWEST)
            written = lanes_between(builder, I64(0), count)

            def output_row(i: Any, kept: list[Any]) -> list[Any]:
                values = window(column, builder, r0, i, 2, kept)
                best, where = _first_largest(builder, values)
                offset = builder.mul(i, out_width)
                masked_store(builder, where if taps else best, out_ptr, offset, written)
                return values[6:]

            down_the_rows(builder, out_rows, first_rows(column, builder, r0, 2), output_row)
            return context.get_dummy_value()

        return signature, codegen

    return windows


_largest = _windows_kernel(taps=False)
_largest_taps = _windows_kernel(taps=True)


@intrinsic
def _spread_kernel(typingctx, g, taps, g_rows, g_width, i0, j0, dx, rows, width, r0, c0):  # type: ignore[no-untyped-def]
    """The gradient of max pooling 3x3 at stride 2: 32 columns of the ``rows`` x
    ``width`` plane at ``dx`` from ``c0 = 2*j0 - pad``, all its rows from ``r0 =
    2*i0 - pad``, each the sum of ``g[i, j]`` over the windows (i, j) whose
    maximum it is (``taps[i, j]``, from ``_largest_taps``; both of ``g_rows`` x
    ``g_width``, nothing outside). Float32 ``g`` and ``dx``, int32 ``taps``."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(
        pointer, _INT_POINTER, size, size, size, size, pointer, size, size, size, size
    )

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        g_ptr, taps_ptr, g_rows, g_width, i0, j0, dx_ptr, rows, width, r0, c0 = args
        b = builder
        # the windows j0 + l and j0 + l - 1: a Column's kernel columns 1 and 0
        start, count = b.sub(j0, I64(1)), I64(LANES + 1)
        gradients = Column(b, g_ptr, g_rows, g_width, start, count, ZERO)
        positions = Column(b, taps_ptr, g_rows, g_width, start, count, _NO_TAP)

        def load(i: Any) -> list[tuple]:
            before, at, _ = gradients.loads(i)
            where_before, where_at, _ = positions.loads(i)
            return [(at, where_at), (before, where_before)]

        def add(total: Any, t: int, value: tuple) -> Any:
            gradient, where = value
            chosen = b.icmp_signed("==", where, splat(b, I32(t), INDICES))
            return b.fadd(total, b.select(chosen, gradient, ZERO))

        spread_pairs(b, load, add, i0, dx_ptr, rows, width, r0, c0)
        return context.get_dummy_value()

    return signature, codegen


# Not cached on disk by numba itself, as depthwise.py's (see there)
_jit = numba.njit(nogil=True, boundscheck=False)


@_jit
def _fits(x, pooled, kernel, stride, pad):
    # a 3x3 window at stride 2 over planes (rows of depth one), padded or not, of
    # C-contiguous arrays (the kernels step through the planes by their sizes)
    return (
        x.flags.c_contiguous
        and pooled.flags.c_contiguous
        and kernel[0] == 1
        and kernel[1] == 3
        and kernel[2] == 3
        and stride[0] == 1
        and stride[1] == 2
        and stride[2] == 2
        and pad[0] == 0
        and pad[1] >= 0
        and pad[2] >= 0
        and x.shape[1] == 1
        and pooled.shape[1] == 1
        and pooled.shape[0] == x.shape[0]
    )


@_jit
def _planes_forward(x, out, lo, hi, pad):
    H, W = x.shape[2], x.shape[3]
    OH, OW = out.shape[2], out.shape[3]
    for r in range(lo, hi):
        plane = x[r, 0].ctypes
        for j0 in range(0, OW, LANES):
            target = out[r, 0, 0, j0:].ctypes
            count = min(LANES, OW - j0)
            _largest(plane, H, W, -pad[1], 2 * j0 - pad[2], target, OW, OH, count)


@_jit
def _planes_backward(g, x, dx, lo, hi, pad):
    H, W = x.shape[2], x.shape[3]
    OH, OW = g.shape[2], g.shape[3]
    taps = np.empty((OH, OW), np.int32)
    i0, first = pad[1] // 2, pad[2] // 2  # dx's first row and column pairs
    for r in range(lo, hi):
        plane = x[r, 0].ctypes
        for j0 in range(0, OW, LANES):
            target = taps[0, j0:].ctypes
            count = min(LANES, OW - j0)
            _largest_taps(plane, H, W, -pad[1], 2 * j0 - pad[2], target, OW, OH, count)
        gradients, spread = g[r, 0].ctypes, dx[r, 0].ctypes
        for j in range(first, first + W, LANES):
            if 2 * j - pad[2] >= W:
                break
            r0, c0 = 2 * i0 - pad[1], 2 * j - pad[2]
            _spread_kernel(gradients, taps.ctypes, OH, OW, i0, j, spread, H, W, r0, c0)


def _float32(*arrays: Any) -> bool:
    return AVAILABLE and all(a.dtype == types.float32 for a in arrays)


def forward(x, out, lo, hi, kernel, stride, pad):  # type: ignore[no-untyped-def]
    """``out[r]`` = the 3x3 max pooling at stride 2 of ``x[r]`` for rows
    ``lo..hi`` of C-contiguous float32 arrays (R, 1, H, W) (padding -inf; out of
    any size the windows fit: 'valid' or 'full'), by the vector kernels. Returns
    whether it did: False (nothing written) for another dtype or geometry, or a
    CPU without AVX-512. Compiled code only."""
    raise NotImplementedError("max_pool.forward runs in compiled code")


@overload(forward)
def _forward_for_dtype(x, out, lo, hi, kernel, stride, pad):  # type: ignore[no-untyped-def]
    if not _float32(x, out):
        return lambda x, out, lo, hi, kernel, stride, pad: False

    def vector(x, out, lo, hi, kernel, stride, pad):  # type: ignore[no-untyped-def]
        if not _fits(x, out, kernel, stride, pad):
            return False
        _planes_forward(x, out, lo, hi, pad)
        return True

    return vector


def backward(g, x, dx, lo, hi, kernel, stride, pad):  # type: ignore[no-untyped-def]
    """``dx[r]`` = the gradient of :func:`forward` for rows ``lo..hi``: ``g[r]``
    sent to each window's first maximum (nowhere where it is the padding's).
    Returns whether it did, as :func:`forward`. Compiled code only."""
    raise NotImplementedError("max_pool.backward runs in compiled code")


@overload(backward)
def _backward_for_dtype(g, x, dx, lo, hi, kernel, stride, pad):  # type: ignore[no-untyped-def]
    if not _float32(g, x, dx):
        return lambda g, x, dx, lo, hi, kernel, stride, pad: False

    def vector(g, x, dx, lo, hi, kernel, stride, pad):  # type: ignore[no-untyped-def]
        if not _fits(x, g, kernel, stride, pad) or dx.shape != x.shape or not dx.flags.c_contiguous:
            return False
        _planes_backward(g, x, dx, lo, hi, pad)
        return True

    return vector
