"""Convolutions on the channel-blocked layout, float32: the kernels of the
``_blocked_*`` ops that the pass ``blocked_layouts`` puts in a program.

A blocked array is (N, C / 16, H, W, 16): each position's 16 channels of a
block are one 512-bit vector, and a block of channels is one stream. A
convolution then reads its image in order, packs nothing, and multiplies in
register tiles (:func:`taps_tile`): 12 positions by 32 filters, or 24 by 16,
in 24 vector registers, summed over every tap of the kernel and every
channel; the weights are packed by blocks of 16 filters first (:func:`pack`:
read from the (taps C, F) matrix itself, rows F floats apart, a power of two
in most networks, they fell on a few cache sets and ran a 512-channel layer
at a quarter of the rate). Measured against the NCHW routes in
``bench/blocked_1x1_ab.py`` and ``bench/blocked_3x3_ab.py`` (docs/benchmarks.md,
twenty-eighth session): 1x1 layers 1.0-2.6x, 3x3 layers 0.82-1.76x (forward,
data gradient and weight gradient together).

Stride 1, no dilation, one group, any kernel and padding (the data gradient:
a padding of at most the kernel's size less one). A padded image is first
copied into a zero-bordered scratch of the padded size, and the outputs are
computed over the padded width, two (or kernel less one) positions a row past
the image that are dropped when the tile is stored (:func:`_store_rows`); a
1x1 kernel without padding reads the image in place. The data gradient is the
forward with the weights flipped and transposed; the weight gradient sums
16 x 16 outer products of a block of filters and one of channels over the
gradient's plane (:func:`outer_tile`), one tap's offset into the image at a
time. 3x3 kernels go by Winograd's F(2x2, 3x3) instead (:func:`winograd_images`:
2.25x fewer products, its transforms vector intrinsics), and max pooling by
vector window maxima (:func:`max_windows`).

The drivers take a range of images ``lo..hi``: the lowering shares the batch
out over the backend's threads (``lowerings/blocked.py``).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .planes import splat
from .sgemm import FLOAT_POINTER, VECTOR, fma, load_vector, summing_loop, vector_at

BLOCK = 16  # channels innermost, a vector of float32
SLACK = 32  # positions past a scratch plane that a last partial tile reads
INT_POINTER = types.CPointer(types.int64)

_jit = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")


def taps_tile(rows: int, halves: int) -> Any:
    """An intrinsic ``tile(taps, offsets, depth, x, ix, plane, w, iw, ldw, bias,
    ib, out, io, half, filled)``: ``out`` at ``io`` (position i at ``16 i``,
    filter block h at ``h * half``) set to ``bias`` at ``ib`` (16 values a
    block of filters) plus the sum over ``taps`` taps t and ``depth`` channels
    q of x's ``rows`` positions at ``ix + offsets[t]`` (blocked: channel q at
    ``(q // 16) * plane + q % 16``) times the weights of ``halves`` blocks of
    16 filters from ``iw`` (:func:`pack`: block h's row t depth + q at ``(h taps
    depth + t depth + q) ldw``), in ``rows x halves`` vector registers; only
    the first ``filled`` positions are stored. float32 pointers (offsets:
    int64), offsets and counts in values, 64-bit."""

    @intrinsic
    def tile(  # type: ignore[no-untyped-def]
        typingctx, taps, offsets, depth, x, ix, plane, w, iw, ldw, bias, ib, out, io, half, filled
    ):
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(
            size, INT_POINTER, size, pointer, size, size, pointer, size, size,
            pointer, size, pointer, size, size, size,
        )  # fmt: skip

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            taps, offsets, depth, x, ix, plane, w, iw, ldw, bias, ib, out, io, half, filled = args
            i64 = ir.IntType(64)
            x, w, out = builder.gep(x, [ix]), builder.gep(w, [iw]), builder.gep(out, [io])
            bias = builder.gep(bias, [ib])
            block_of_weights = builder.mul(builder.mul(taps, depth), ldw)
            start = [load_vector(builder, bias, i64(h * BLOCK)) for h in range(halves)]

            def tap(t: Any, outer: list[list[Any]]) -> list[list[Any]]:
                shifted = builder.gep(x, [builder.load(builder.gep(offsets, [t]))])
                first_row = builder.mul(t, depth)

                def step(q: Any, sums: list[list[Any]]) -> list[list[Any]]:
                    block = builder.mul(builder.ashr(q, i64(4)), plane)
                    at = builder.add(block, builder.and_(q, i64(BLOCK - 1)))
                    rows_at = [builder.mul(builder.add(first_row, q), ldw)]
                    for _ in range(halves - 1):
                        rows_at.append(builder.add(rows_at[-1], block_of_weights))
                    weights = [load_vector(builder, w, row) for row in rows_at]
                    updated = []
                    for i in range(rows):
                        where = builder.gep(shifted, [builder.add(at, i64(BLOCK * i))])
                        spread = splat(builder, builder.load(where), VECTOR)
                        line = zip(weights, sums[i])
                        updated.append([fma(builder, spread, v, s) for v, s in line])
                    return updated

                return summing_loop(builder, depth, 1, (rows, halves), step, initial=outer)

            initial = [list(start) for _ in range(rows)]
            sums = summing_loop(builder, taps, 1, (rows, halves), tap, initial=initial)
            for i, line in enumerate(sums):
                with builder.if_then(builder.icmp_signed("<", i64(i), filled), likely=True):
                    for h, value in enumerate(line):
                        offset = builder.add(builder.mul(i64(h), half), i64(BLOCK * i))
                        builder.store(value, vector_at(builder, out, offset), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return tile


# 24 sums of 16 lanes in registers: 12 positions by 32 filters, or 24 by 16 (the
# filters' last block where their count is an odd multiple of 16)
PAIR_ROWS, SINGLE_ROWS = 12, 24
tile_pairs = taps_tile(PAIR_ROWS, 2)
tile_single = taps_tile(SINGLE_ROWS, 1)


@intrinsic
def outer_tile(typingctx, depth, g, ig, x, ix, out, io, ldo, add):  # type: ignore[no-untyped-def]
    """The 16 x 16 block of ``out`` at ``io`` (row stride ``ldo``) set to, or with
    ``add`` increased by, the sum over ``depth`` positions of the outer product
    of g's 16 filters and x's 16 channels at each (blocked: position p at
    ``16 p`` from ``ig`` and ``ix``): one broadcast a filter, 16 sums in vector
    registers. float32 pointers, 64-bit offsets and counts."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(size, pointer, size, pointer, size, pointer, size, size, size)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        depth, g, ig, x, ix, out, io, ldo, add = args
        i64 = ir.IntType(64)
        g, x, out = builder.gep(g, [ig]), builder.gep(x, [ix]), builder.gep(out, [io])

        def step(p: Any, sums: list[list[Any]]) -> list[list[Any]]:
            at = builder.mul(p, i64(BLOCK))
            channels = load_vector(builder, x, at)
            updated = []
            for f in range(BLOCK):
                value = builder.load(builder.gep(g, [builder.add(at, i64(f))]))
                spread = splat(builder, value, VECTOR)
                updated.append([fma(builder, spread, channels, sums[f][0])])
            return updated

        sums = summing_loop(builder, depth, 1, (BLOCK, 1), step)
        adding = builder.icmp_signed("!=", add, i64(0))
        for f, line in enumerate(sums):
            target = vector_at(builder, out, builder.mul(i64(f), ldo))
            before = builder.load(target, align=4)
            value = builder.select(adding, builder.fadd(before, line[0]), line[0])
            builder.store(value, target, align=4)
        return context.get_dummy_value()

    return signature, codegen


# -- layouts ---------------------------------------------------------------------


@_jit
def to_blocked(x, out, lo, hi):
    """``out[n, b, y, x, i] = x[n, 16 b + i, y, x]`` for the images lo..hi: x
    (N, C, H, W), out (N, C / 16, H, W, 16)."""
    blocks, positions = out.shape[1], out.shape[2] * out.shape[3]
    for n in range(lo, hi):
        for b in range(blocks):
            source = x[n, b * BLOCK : (b + 1) * BLOCK].reshape((BLOCK, positions))
            target = out[n, b].reshape((positions, BLOCK))
            for p in range(positions):
                for i in range(BLOCK):
                    target[p, i] = source[i, p]


@_jit
def from_blocked(y, out, lo, hi):
    """``out[n, 16 b + i, y, x] = y[n, b, y, x, i]`` for the images lo..hi."""
    blocks, positions = y.shape[1], y.shape[2] * y.shape[3]
    for n in range(lo, hi):
        for b in range(blocks):
            source = y[n, b].reshape((positions, BLOCK))
            target = out[n, b * BLOCK : (b + 1) * BLOCK].reshape((BLOCK, positions))
            for i in range(BLOCK):
                for p in range(positions):
                    target[i, p] = source[p, i]


def pack(w: np.ndarray, transposed: bool) -> np.ndarray:
    """A convolution's weights (F, C, kh, kw) as the tiles read them: (out / 16,
    taps in, 16), row t in + q the weights of input channel q at tap t for 16
    outputs. ``transposed``: for the data gradient, outputs and inputs swapped
    and the taps flipped (the convolution's adjoint)."""
    filters, channels, kh, kw = w.shape
    if transposed:
        taps_first = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)  # (kh, kw, F, C)
        outputs = channels
    else:
        taps_first = w.transpose(2, 3, 1, 0)  # (kh, kw, C, F)
        outputs = filters
    matrix = taps_first.reshape(-1, outputs // BLOCK, BLOCK)
    return np.ascontiguousarray(matrix.transpose(1, 0, 2), dtype=np.float32)


# -- forward and data gradient -------------------------------------------------------


@_jit
def _store_rows(buffer, rows, halves, out, n, f, p, width, out_width, positions):
    """Copy a tile's ``rows`` positions from ``p`` (computed over rows of
    ``width``) to ``out[n, f + h]``, dropping those past ``out_width`` in a row."""
    y = p // width
    x = p - y * width
    for i in range(rows):
        if p + i >= positions:
            return
        if x < out_width:
            for h in range(halves):
                out[n, f + h, y, x] = buffer[h, i]
        x += 1
        if x == width:
            x = 0
            y += 1


@_jit
def _flat(a):
    return a.reshape(a.size)


@_jit
def _tap_offsets(kh, kw, row):
    """Each tap's offset (kernel order, in values) in a plane of rows of ``row``
    positions, 16 values a position."""
    offsets = np.empty(kh * kw, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            offsets[ky * kw + kx] = (ky * row + kx) * BLOCK
    return offsets


@_jit
def _finite(values):
    for value in values:
        if not np.isfinite(value):
            return False
    return True


@_jit
def conv_images(xb, weights, bias, out, kh, kw, ph, pw, lo, hi):
    """``out[n]`` = the convolution of ``xb[n]`` (blocked, stride 1) with the
    packed ``weights`` (:func:`pack`), plus ``bias`` (one value an output; zeros
    for none), for the images lo..hi. ``ph``, ``pw``: the padding, zeros."""
    images, blocks, height, width = xb.shape[0], xb.shape[1], xb.shape[2], xb.shape[3]
    taps = kh * kw
    channels = blocks * BLOCK
    filters = weights.shape[0] * BLOCK
    weights_block = weights.shape[1] * BLOCK
    out_w = out.shape[3]
    w, b, target = _flat(weights).ctypes, bias.ctypes, _flat(out).ctypes
    direct = kh == 1 and kw == 1 and ph == 0 and pw == 0
    wide = width + 2 * pw
    # outputs computed a tile at a time over the rows of the padded width
    positions = out.shape[2] * wide
    offsets = _tap_offsets(kh, kw, wide)
    # the padded image, or (read in place) the batch's last positions: zeros
    # around what is copied in
    if direct:
        scratch_positions = SINGLE_ROWS
    else:
        scratch_positions = (height + 2 * ph) * wide + SLACK
    scratch = np.zeros((blocks, scratch_positions, BLOCK), np.float32)
    buffer = np.empty((2, SINGLE_ROWS, BLOCK), np.float32)
    tap = offsets.ctypes
    for n in range(lo, hi):
        if direct:
            source, plane = _flat(xb).ctypes, height * width * BLOCK
            at = n * blocks * plane
        else:
            for c in range(blocks):
                for y in range(height):
                    row = (y + ph) * wide + pw
                    scratch[c, row : row + width] = xb[n, c, y]
            source, plane, at = _flat(scratch).ctypes, scratch_positions * BLOCK, 0
        for f in range(0, filters, 2 * BLOCK):
            pair = f + 2 * BLOCK <= filters
            rows = PAIR_ROWS if pair else SINGLE_ROWS
            weights_at = (f // BLOCK) * weights_block
            for p in range(0, positions, rows):
                count = min(rows, positions - p)
                tile_source, tile_plane, tile_at = source, plane, at + p * BLOCK
                if direct and count < rows and n == images - 1:
                    # the batch's last positions, read from a copy (a tile reads
                    # its rows whole, and would read past the array)
                    for c in range(blocks):
                        scratch[c, :count] = xb[n, c].reshape((positions, BLOCK))[p:]
                    tile_source, tile_plane = _flat(scratch).ctypes, scratch_positions * BLOCK
                    tile_at = 0
                if direct:  # no position to drop: stored in place
                    into, into_at = (
                        target,
                        ((n * (filters // BLOCK) + f // BLOCK) * positions + p) * BLOCK,
                    )
                    half = positions * BLOCK
                else:
                    into, into_at, half = _flat(buffer).ctypes, 0, SINGLE_ROWS * BLOCK
                if pair:
                    tile_pairs(
                        taps, tap, channels, tile_source, tile_at, tile_plane, w, weights_at,
                        BLOCK, b, f, into, into_at, half, count,
                    )  # fmt: skip
                else:
                    tile_single(
                        taps, tap, channels, tile_source, tile_at, tile_plane, w, weights_at,
                        BLOCK, b, f, into, into_at, half, count,
                    )  # fmt: skip
                if not direct:
                    halves = 2 if pair else 1
                    _store_rows(
                        buffer, count, halves, out, n, f // BLOCK, p, wide, out_w, positions
                    )


# -- weight gradient -------------------------------------------------------------------


@_jit
def _weight_grad_planes(gb, scratch, dw, kh, kw, wide, lo, hi):
    """:func:`weight_grad_images` a plane at a time: the gradient laid out over
    the padded rows of ``wide`` positions, zero past each row's outputs, so
    that each tap's sum is one outer-product loop over the plane (row by row,
    ResNet's 7x7 images made loops of 7 positions, each storing its 16 x 16
    sums). Only for finite images: a zero there times an infinity past a row
    would be NaN in a sum that has none."""
    filter_blocks, out_h, out_w = gb.shape[1], gb.shape[2], gb.shape[3]
    blocks, padded = scratch.shape[1], scratch.shape[2]
    channels, filters = blocks * BLOCK, filter_blocks * BLOCK
    depth = out_h * wide
    spread = np.zeros((hi - lo, filter_blocks, depth, BLOCK), np.float32)
    for k in range(hi - lo):
        for f in range(filter_blocks):
            for y in range(out_h):
                spread[k, f, y * wide : y * wide + out_w] = gb[lo + k, f, y]
    x, g, out = _flat(scratch).ctypes, _flat(spread).ctypes, _flat(dw).ctypes
    for f in range(filter_blocks):
        for c in range(blocks):
            for k in range(hi - lo):
                x_at = (k * blocks + c) * padded * BLOCK
                g_at = (k * filter_blocks + f) * depth * BLOCK
                add = 0 if k == 0 else 1
                for ky in range(kh):
                    for kx in range(kw):
                        at = ((ky * kw + kx) * filters + f * BLOCK) * channels + c * BLOCK
                        image_at = x_at + (ky * wide + kx) * BLOCK
                        outer_tile(depth, g, g_at, x, image_at, out, at, channels, add)


@_jit
def weight_grad_images(gb, xb, dw, kh, kw, ph, pw, lo, hi):
    """``dw`` (taps, F, C) = the sum over the images lo..hi of each tap's outer
    products of the gradient ``gb`` (blocked, F) and the image ``xb`` (blocked,
    C) shifted by that tap, over the gradient's positions (a plane at a time,
    :func:`_weight_grad_planes`, where the images are finite; else row by row:
    the padding's columns are never terms of the sums)."""
    blocks, height, width = xb.shape[1], xb.shape[2], xb.shape[3]
    filter_blocks, out_h, out_w = gb.shape[1], gb.shape[2], gb.shape[3]
    channels = blocks * BLOCK
    filters = filter_blocks * BLOCK
    if hi <= lo or out_h * out_w == 0:
        _flat(dw)[:] = 0
        return
    wide = width + 2 * pw
    padded = (height + 2 * ph) * wide + SLACK
    scratch = np.zeros((hi - lo, blocks, padded, BLOCK), np.float32)
    for k in range(hi - lo):
        for c in range(blocks):
            for y in range(height):
                row = (y + ph) * wide + pw
                scratch[k, c, row : row + width] = xb[lo + k, c, y]
    if _finite(_flat(xb[lo:hi])):
        _weight_grad_planes(gb, scratch, dw, kh, kw, wide, lo, hi)
        return
    x, g, out = _flat(scratch).ctypes, _flat(gb).ctypes, _flat(dw).ctypes
    for f in range(filter_blocks):
        for c in range(blocks):
            for k in range(hi - lo):
                x_at = (k * blocks + c) * padded * BLOCK
                g_at = ((lo + k) * filter_blocks + f) * out_h * out_w * BLOCK
                for y in range(out_h):
                    add = 0 if k == 0 and y == 0 else 1
                    row_at = g_at + y * out_w * BLOCK
                    for ky in range(kh):
                        for kx in range(kw):
                            at = ((ky * kw + kx) * filters + f * BLOCK) * channels + c * BLOCK
                            image_at = x_at + ((y + ky) * wide + kx) * BLOCK
                            outer_tile(out_w, g, row_at, x, image_at, out, at, channels, add)


# -- max pooling ----------------------------------------------------------------------


def _window_loop(builder: Any, count: Any, body: Any) -> None:
    """Emit ``for j in range(count): body(j)``."""
    with cgutils.for_range(builder, count) as loop:
        body(loop.index)


def _offset(builder: Any, offsets: Any, t: Any) -> Any:
    return builder.load(builder.gep(offsets, [t]))


@intrinsic
def max_windows(typingctx, taps, offsets, x, ix, step, count, out, io):  # type: ignore[no-untyped-def]
    """``count`` windows' maxima, 16 channels a vector: window j's positions at
    ``x + ix + j step + offsets[t]`` for its ``taps`` positions in kernel
    order, the first taken as it is (a NaN there stays) and each later one
    where larger; stored 16 values apart from ``out + io``. float32 pointers
    (offsets: int64), offsets in values, 64-bit."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(size, INT_POINTER, pointer, size, size, size, pointer, size)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        taps, offsets, x, ix, step, count, out, io = args
        i64 = ir.IntType(64)
        later = builder.gep(offsets, [i64(1)])

        def window(j: Any) -> None:
            base = builder.add(ix, builder.mul(j, step))
            first = load_vector(builder, x, builder.add(base, _offset(builder, offsets, i64(0))))

            def tap(t: Any, best: list[list[Any]]) -> list[list[Any]]:
                value = load_vector(builder, x, builder.add(base, _offset(builder, later, t)))
                larger = builder.fcmp_ordered(">", value, best[0][0])
                return [[builder.select(larger, value, best[0][0])]]

            rest = builder.sub(taps, i64(1))
            (best,) = summing_loop(builder, rest, 1, (1, 1), tap, initial=[[first]])
            target = builder.add(io, builder.mul(j, i64(BLOCK)))
            builder.store(best[0], vector_at(builder, out, target), align=4)

        _window_loop(builder, count, window)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def max_windows_grad(typingctx, taps, offsets, x, ix, step, count, g, ig, dx):  # type: ignore[no-untyped-def]
    """For ``count`` windows as :func:`max_windows` reads them: each window's
    gradient (16 values apart from ``g + ig``) added to ``dx`` at the position
    of its maximum (per channel, the first largest in kernel order), and zero
    added at its other positions, as Pooling's gradient does; ``dx`` laid out
    as ``x``. float32 pointers (offsets: int64), offsets in values, 64-bit."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(size, INT_POINTER, pointer, size, size, size, pointer, size, pointer)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        taps, offsets, x, ix, step, count, g, ig, dx = args
        i64 = ir.IntType(64)
        later = builder.gep(offsets, [i64(1)])
        zero = ir.Constant(VECTOR, [0.0] * BLOCK)

        def window(j: Any) -> None:
            base = builder.add(ix, builder.mul(j, step))
            first = load_vector(builder, x, builder.add(base, _offset(builder, offsets, i64(0))))

            def tap(t: Any, carried: list[list[Any]]) -> list[list[Any]]:
                best, where = carried[0]
                value = load_vector(builder, x, builder.add(base, _offset(builder, later, t)))
                larger = builder.fcmp_ordered(">", value, best)
                position = splat(
                    builder, builder.sitofp(builder.add(t, i64(1)), ir.FloatType()), VECTOR
                )
                return [
                    [builder.select(larger, value, best), builder.select(larger, position, where)]
                ]

            rest = builder.sub(taps, i64(1))
            ((_, where),) = summing_loop(builder, rest, 1, (1, 2), tap, initial=[[first, zero]])
            share = load_vector(builder, g, builder.add(ig, builder.mul(j, i64(BLOCK))))

            def add(t: Any) -> None:
                position = splat(builder, builder.sitofp(t, ir.FloatType()), VECTOR)
                chosen = builder.fcmp_ordered("==", where, position)
                target = vector_at(builder, dx, builder.add(base, _offset(builder, offsets, t)))
                before = builder.load(target, align=4)
                builder.store(
                    builder.fadd(before, builder.select(chosen, share, zero)), target, align=4
                )

            _window_loop(builder, taps, add)

        _window_loop(builder, count, window)
        return context.get_dummy_value()

    return signature, codegen


@_jit
def _inside(out_size, size, kernel, stride, pad):
    """The range of windows lying wholly inside the data along one axis."""
    first = -(-pad // stride)
    last = (size + pad - kernel) // stride + 1
    return min(first, out_size), max(min(last, out_size), min(first, out_size))


@_jit
def _window_max(xb, n, b, oy, ox, kh, kw, sh, sw, ph, pw, best, where):
    """One window's maxima and their positions (a window touching the padding,
    which is -inf): the first position as it is, each later one where larger."""
    height, width = xb.shape[2], xb.shape[3]
    best[:] = -np.inf
    where[:] = 0
    for ky in range(kh):
        y = oy * sh - ph + ky
        for kx in range(kw):
            x = ox * sw - pw + kx
            if y < 0 or y >= height or x < 0 or x >= width:
                continue
            position = ky * kw + kx
            for i in range(BLOCK):
                value = xb[n, b, y, x, i]
                if position == 0 or value > best[i]:
                    best[i] = value
                    where[i] = position


@_jit
def max_pool_images(xb, out, kh, kw, sh, sw, ph, pw, lo, hi):
    """``out[n]`` = the windows' maxima of ``xb[n]`` for the images lo..hi, a
    position's 16 channels a vector (:func:`max_windows` for the windows inside
    the data, :func:`_window_max` for those touching the padding, -inf as
    Pooling pads, the 'full' convention's last windows too)."""
    blocks, height, width = xb.shape[1], xb.shape[2], xb.shape[3]
    out_h, out_w = out.shape[2], out.shape[3]
    offsets = _tap_offsets(kh, kw, width)
    best, where = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.int64)
    x, target, taps = _flat(xb).ctypes, _flat(out).ctypes, offsets.ctypes
    rows_in, rows_out = _inside(out_h, height, kh, sh, ph)
    cols_in, cols_out = _inside(out_w, width, kw, sw, pw)
    for n in range(lo, hi):
        for b in range(blocks):
            plane = (n * blocks + b) * height * width * BLOCK
            out_plane = (n * blocks + b) * out_h * out_w * BLOCK
            for oy in range(out_h):
                inside = rows_in <= oy < rows_out
                if inside and cols_out > cols_in:
                    start = ((oy * sh - ph) * width + cols_in * sw - pw) * BLOCK
                    max_windows(
                        kh * kw, taps, x, plane + start, sw * BLOCK, cols_out - cols_in,
                        target, out_plane + (oy * out_w + cols_in) * BLOCK,
                    )  # fmt: skip
                for ox in range(out_w):
                    if inside and cols_in <= ox < cols_out:
                        continue
                    _window_max(xb, n, b, oy, ox, kh, kw, sh, sw, ph, pw, best, where)
                    out[n, b, oy, ox] = best


@_jit
def max_pool_grad_images(gb, xb, dx, kh, kw, sh, sw, ph, pw, lo, hi):
    """``dx[n]`` = each window's gradient ``gb`` added at its maximum's position
    (:func:`max_windows_grad`, :func:`_window_max` for the windows touching the
    padding; nowhere where padding holds it), for the images lo..hi."""
    blocks, height, width = xb.shape[1], xb.shape[2], xb.shape[3]
    out_h, out_w = gb.shape[2], gb.shape[3]
    offsets = _tap_offsets(kh, kw, width)
    best, where = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.int64)
    x, g, into, taps = _flat(xb).ctypes, _flat(gb).ctypes, _flat(dx).ctypes, offsets.ctypes
    rows_in, rows_out = _inside(out_h, height, kh, sh, ph)
    cols_in, cols_out = _inside(out_w, width, kw, sw, pw)
    for n in range(lo, hi):
        dx[n] = 0
        for b in range(blocks):
            plane = (n * blocks + b) * height * width * BLOCK
            g_plane = (n * blocks + b) * out_h * out_w * BLOCK
            for oy in range(out_h):
                inside = rows_in <= oy < rows_out
                if inside and cols_out > cols_in:
                    start = ((oy * sh - ph) * width + cols_in * sw - pw) * BLOCK
                    max_windows_grad(
                        kh * kw, taps, x, plane + start, sw * BLOCK, cols_out - cols_in,
                        g, g_plane + (oy * out_w + cols_in) * BLOCK, into,
                    )  # fmt: skip
                for ox in range(out_w):
                    if inside and cols_in <= ox < cols_out:
                        continue
                    _window_max(xb, n, b, oy, ox, kh, kw, sh, sw, ph, pw, best, where)
                    for ky in range(kh):
                        y = oy * sh - ph + ky
                        for kx in range(kw):
                            x_ = ox * sw - pw + kx
                            if y < 0 or y >= height or x_ < 0 or x_ >= width:
                                continue
                            position = ky * kw + kx
                            for i in range(BLOCK):
                                if where[i] == position:
                                    dx[n, b, y, x_, i] += gb[n, b, oy, ox, i]
                                else:
                                    dx[n, b, y, x_, i] += 0.0


# -- 3x3 convolutions by Winograd's F(2x2, 3x3) -------------------------------------
#
# A 3x3 convolution at stride 1 multiplies 16 transformed values a 2x2 block of
# outputs, channel and filter, where the direct tile multiplies 36. Each 4x4
# block of the padded image is transformed, 16 channels a vector
# (:func:`winograd_in`: B^T d B, adds only); for each of the 16 transformed
# positions the products are a 1x1 convolution over the blocks, by the tile
# above; each 4x4 block of products becomes its 2x2 outputs (:func:`winograd_out`:
# A^T m A) plus the bias. The weights are transformed once a call (G w G^T, in
# numpy: :func:`winograd_weights`).

_B_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_A_T = ((1, 1, 1, 0), (0, 1, -1, -1))


def _combine(builder: Any, row: tuple[int, ...], values: list[Any]) -> Any:
    """sum of row[k] * values[k] for coefficients 0, 1 and -1."""
    total = None
    for coefficient, value in zip(row, values):
        if coefficient == 0:
            continue
        if total is None:
            total = value if coefficient == 1 else builder.fneg(value)
        elif coefficient == 1:
            total = builder.fadd(total, value)
        else:
            total = builder.fsub(total, value)
    return total


@intrinsic
def winograd_in(typingctx, x, ix, row, v, iv, point):  # type: ignore[no-untyped-def]
    """The 4x4 block of x at ``ix`` (rows ``row`` values apart, 16 channels a
    vector) transformed (B^T d B) into ``v`` at ``iv``, its 16 positions
    ``point`` values apart. float32 pointers, offsets in values, 64-bit."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(pointer, size, size, pointer, size, size)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        x, ix, row, v, iv, point = args
        i64 = ir.IntType(64)
        d = [
            [
                load_vector(
                    builder, x, builder.add(ix, builder.add(builder.mul(i64(r), row), i64(16 * c)))
                )
                for c in range(4)
            ]
            for r in range(4)
        ]
        rows = [[_combine(builder, b, [d[k][c] for k in range(4)]) for c in range(4)] for b in _B_T]
        for r in range(4):
            for c, b in enumerate(_B_T):
                value = _combine(builder, b, rows[r])
                at = builder.add(iv, builder.mul(i64(4 * r + c), point))
                builder.store(value, vector_at(builder, v, at), align=4)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def winograd_out(typingctx, m, im, point, bias, ib, out, io, row, rows, cols):  # type: ignore[no-untyped-def]
    """The 4x4 block of products at ``m + im`` (positions ``point`` values
    apart) transformed (A^T m A) into a 2x2 block of outputs plus ``bias`` at
    ``ib``, stored at ``out + io`` (rows ``row`` values apart, 16 values a
    position), only its first ``rows`` rows and ``cols`` columns. float32
    pointers, offsets in values, 64-bit."""
    size, pointer = types.int64, FLOAT_POINTER
    signature = types.void(pointer, size, size, pointer, size, pointer, size, size, size, size)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        m, im, point, bias, ib, out, io, row, rows, cols = args
        i64 = ir.IntType(64)
        values = [
            [
                load_vector(builder, m, builder.add(im, builder.mul(i64(4 * r + c), point)))
                for c in range(4)
            ]
            for r in range(4)
        ]
        offset = load_vector(builder, bias, ib)
        rows_t = [
            [_combine(builder, a, [values[k][c] for k in range(4)]) for c in range(4)] for a in _A_T
        ]
        for i in range(2):
            for j, a in enumerate(_A_T):
                value = builder.fadd(_combine(builder, a, rows_t[i]), offset)
                inside = builder.and_(
                    builder.icmp_signed("<", i64(i), rows), builder.icmp_signed("<", i64(j), cols)
                )
                with builder.if_then(inside, likely=True):
                    at = builder.add(io, builder.add(builder.mul(i64(i), row), i64(16 * j)))
                    builder.store(value, vector_at(builder, out, at), align=4)
        return context.get_dummy_value()

    return signature, codegen


def winograd_weights(w: np.ndarray, transposed: bool) -> np.ndarray:
    """A 3x3 convolution's weights (F, C, 3, 3) transformed (G w G^T) for each
    of the 16 positions, as the tile reads them: (out / 16, in, 16 positions,
    16 outputs), a position's rows 256 values apart. ``transposed``: for the
    data gradient (flipped, outputs and inputs swapped), as :func:`pack`."""
    if transposed:
        w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    outputs, inputs = w.shape[0], w.shape[1]
    packed = np.empty((outputs // BLOCK, inputs, 16, BLOCK), np.float32)
    _transform_weights(np.ascontiguousarray(w, dtype=np.float32), packed)
    return packed


@_jit
def _transform_weights(w, packed):
    """``packed[f // 16, c, a 4 + b, f % 16]`` = (G w[f, c] G^T)[a, b]: each row
    of the kernel to 4 values (its first, half the sum, half the alternating
    sum, its last), then each column so; 16 filters at a time, stored in one
    stream (the 16 positions 1 MB apart, a 512 x 512 layer's took 10.6 ms)."""
    half = np.float32(0.5)
    rows = np.empty((4, 3), np.float32)
    for block in range(packed.shape[0]):
        for c in range(w.shape[1]):
            for lane in range(BLOCK):
                k = w[block * BLOCK + lane, c]
                for j in range(3):
                    top, middle, bottom = k[0, j], k[1, j], k[2, j]
                    rows[0, j] = top
                    rows[1, j] = (top + middle + bottom) * half
                    rows[2, j] = (top - middle + bottom) * half
                    rows[3, j] = bottom
                for a in range(4):
                    left, middle, right = rows[a, 0], rows[a, 1], rows[a, 2]
                    packed[block, c, 4 * a, lane] = left
                    packed[block, c, 4 * a + 1, lane] = (left + middle + right) * half
                    packed[block, c, 4 * a + 2, lane] = (left - middle + right) * half
                    packed[block, c, 4 * a + 3, lane] = right


# Images transformed and multiplied together (up to this many blocks of 2x2
# outputs): the weights are read once a group. ResNet's 512-channel 7x7 layer
# (16 blocks an image, 16 MB of transformed weights) read them once an image
# and took 32 ms at B=8 on two threads.
GROUP_BLOCKS = 192


@_jit
def winograd_images(xb, weights, bias, out, pad, redo, lo, hi):
    """``out[n]`` = the 3x3 convolution (stride 1, padding ``pad``) of ``xb[n]``
    with the transformed ``weights`` (:func:`winograd_weights`) plus ``bias``,
    for the images lo..hi, a few images at a time where they are small
    (:data:`GROUP_BLOCKS`). ``redo[n]`` is set for an image whose result is not
    finite, for the caller to compute again by the direct tile: the
    transforms subtract, and would turn an infinity into NaN where the
    convolution's sums keep it."""
    blocks, height, width = xb.shape[1], xb.shape[2], xb.shape[3]
    out_blocks, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    channels = blocks * BLOCK
    filters = out_blocks * BLOCK
    tiles_h, tiles_w = (out_h + 1) // 2, (out_w + 1) // 2
    tiles = tiles_h * tiles_w
    group = max(1, min(hi - lo, GROUP_BLOCKS // max(tiles, 1)))
    spaced = group * tiles + SINGLE_ROWS  # a plane of blocks, and what a tile reads past it
    wide = max(width + 2 * pad, 2 * tiles_w + 2)
    tall = max(height + 2 * pad, 2 * tiles_h + 2)
    scratch = np.zeros((blocks, tall * wide, BLOCK), np.float32)
    v = np.zeros((16, blocks, spaced, BLOCK), np.float32)
    m = np.empty((16, out_blocks, spaced, BLOCK), np.float32)
    no_bias = np.zeros(filters, np.float32)
    one_tap = np.zeros(1, np.int64)
    x, vp, mp, w = _flat(scratch).ctypes, _flat(v).ctypes, _flat(m).ctypes, _flat(weights).ctypes
    target, b, zero, tap = _flat(out).ctypes, bias.ctypes, no_bias.ctypes, one_tap.ctypes
    v_point, m_point = blocks * spaced * BLOCK, out_blocks * spaced * BLOCK
    weights_row = 16 * BLOCK  # a channel's 16 positions of 16 filters
    weights_block = weights.shape[1] * weights_row
    for first in range(lo, hi, group):
        last = min(hi, first + group)
        count = (last - first) * tiles
        for n in range(first, last):
            for c in range(blocks):
                for y in range(height):
                    row = (y + pad) * wide + pad
                    scratch[c, row : row + width] = xb[n, c, y]
            for c in range(blocks):
                for ty in range(tiles_h):
                    for tx in range(tiles_w):
                        at = (c * tall * wide + 2 * ty * wide + 2 * tx) * BLOCK
                        block = (n - first) * tiles + ty * tiles_w + tx
                        winograd_in(x, at, wide * BLOCK, vp, (c * spaced + block) * BLOCK, v_point)
        for point in range(16):
            v_at, m_at = point * v_point, point * m_point
            for f in range(0, filters, 2 * BLOCK):
                weights_at = (f // BLOCK) * weights_block + point * BLOCK
                into = m_at + (f // BLOCK) * spaced * BLOCK
                if f + 2 * BLOCK <= filters:
                    for p in range(0, count, PAIR_ROWS):
                        tile_pairs(
                            1, tap, channels, vp, v_at + p * BLOCK, spaced * BLOCK, w,
                            weights_at, weights_row, zero, f, mp, into + p * BLOCK,
                            spaced * BLOCK, min(PAIR_ROWS, count - p),
                        )  # fmt: skip
                else:
                    for p in range(0, count, SINGLE_ROWS):
                        tile_single(
                            1, tap, channels, vp, v_at + p * BLOCK, spaced * BLOCK, w,
                            weights_at, weights_row, zero, f, mp, into + p * BLOCK,
                            spaced * BLOCK, min(SINGLE_ROWS, count - p),
                        )  # fmt: skip
        for n in range(first, last):
            for f in range(out_blocks):
                plane = ((n * out_blocks) + f) * out_h * out_w * BLOCK
                for ty in range(tiles_h):
                    for tx in range(tiles_w):
                        block = (n - first) * tiles + ty * tiles_w + tx
                        corner = plane + (2 * ty * out_w + 2 * tx) * BLOCK
                        rows, cols = min(2, out_h - 2 * ty), min(2, out_w - 2 * tx)
                        winograd_out(
                            mp, (f * spaced + block) * BLOCK, m_point, b, f * BLOCK, target,
                            corner, out_w * BLOCK, rows, cols,
                        )  # fmt: skip
            redo[n] = not _finite(_flat(out[n]))
