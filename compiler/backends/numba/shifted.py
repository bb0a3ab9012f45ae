"""Unit-stride convolutions as products over shifted rows, float32, on CPUs with
AVX-512: the forward, the data gradient as the forward of the output gradient
with the weights turned (see lowerings/conv.py's ``_cv_flipped``), and the
weight gradient.

On the padded image's wide positions (output position (i, j, k) taken as
``q = (i * Hp + j) * Wp + k``, see lowerings/conv.py) the column row of channel
c and kernel position t is the padded plane of c read from ``q + offset(t)``.
The wide route copies every such row into a column matrix before its product:
``channels x taps`` copies of the image, 25 MB an image for Inception's
32-channel 147x147 layers, which the product then read one row per page.
Here the product reads the padded plane itself: a register tile of ``MR``
filters by ``NR`` wide positions sums over kernel positions and channels,
``B``'s row for (t, c) found at ``plane[c] + offset(t)`` (:func:`_tile_kernel`),
so no column matrix is written. The positions go in blocks of ``BLOCK``, whose
rows of the padded planes and whose results stay in L2 while every tile of
filters passes over them; each block's output positions are copied out at once.

The weight gradient sums over the positions instead, ``g[f, q] *
padded[c, q + offset(t)]``: the same tile over ``MR`` filters (g's rows, laid
out on the wide positions) by ``NR`` channels, from the padded image transposed
once an image (positions by channels), where kernel position t is a shift of
``offset(t)`` rows. Channels are tiled in panels of ``NR``, so the lowering
gives it only channels that fill most of theirs.

A strided convolution whose phases lowerings/conv.py takes in blocks of rows
(a stem: 3 channels, 7x7/2 or 11x11/4 on a 224x224 image) goes by the same tile
over its stride phases (:func:`phase_products`): each channel's padded phases
laid out as one plane and a kernel position a shift into them, as a padded
plane and its shifts are at unit stride. The wide route gathered each block of
rows' columns (147 rows for a 7x7 stem) for OpenBLAS.

Every result is the same sum of products as the wide route's, the padding's
and the junk positions' included (a weight or g's zero times the data, as in
the columns' product); the order of the sum differs. Where the lowering takes
these instead of its other routes, and what it measured: conv.py's
``_CV_SHIFTED_POSITIONS``.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .planes import splat
from .sgemm import (
    AVAILABLE,
    FLOAT_POINTER,
    LANES,
    MR,
    NR,
    VECTOR,
    _transpose,
    fma,
    load_vector,
    store_tile,
    summing_loop,
)

BLOCK = 512  # wide positions a block: its planes' rows and results stay in L2
DEPTH = 256  # channels x kernel positions summed per pass over a tile (A's sliver in L1)
POSITIONS = 256  # wide positions summed per pass over a weight gradient's tile

OFFSET_POINTER = types.CPointer(types.int64)


def _tile_kernel(accumulate: bool) -> Any:
    """An intrinsic ``tile(taps, offsets, depth, a, a_tap, a_inner, a_row, b, ldb,
    c, ldc, rows)``: the first ``rows`` (at most ``MR``) rows of the ``MR`` x
    ``NR`` tile at ``c`` (row stride ``ldc``) set to (with ``accumulate``,
    increased by) ``sum over t < taps, p < depth of a[t*a_tap + p*a_inner +
    i*a_row] * b[offsets[t] + p*ldb + j]``; float32 pointers, int64 offsets,
    64-bit strides and counts. The forward reads packed weights (``a_inner`` is
    ``MR``, ``a_row`` 1), the weight gradient the output gradient's rows
    (``a_inner`` 1)."""

    @intrinsic
    def tile(typingctx, taps, offsets, depth, a, a_tap, a_inner, a_row, b, ldb, c, ldc, rows):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(
            size,
            OFFSET_POINTER,
            size,
            pointer,
            size,
            size,
            size,
            pointer,
            size,
            pointer,
            size,
            size,
        )

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            taps, offsets, depth, a_ptr, a_tap, a_inner, a_row, b_ptr, b_stride = args[:9]
            c_ptr, c_stride, rows = args[9:]
            i64, halves = ir.IntType(64), NR // LANES
            a_rows = [builder.gep(a_ptr, [builder.mul(i64(i), a_row)]) for i in range(MR)]

            def position(t: Any, outer: list[list[Any]]) -> list[list[Any]]:
                offset = builder.load(builder.gep(offsets, [t]))
                b_tap = builder.gep(b_ptr, [offset])
                a_at = builder.mul(t, a_tap)

                def channel(p: Any, sums: list[list[Any]]) -> list[list[Any]]:
                    b_row = builder.mul(p, b_stride)
                    b_vectors = [
                        load_vector(builder, b_tap, builder.add(b_row, i64(h * LANES)))
                        for h in range(halves)
                    ]
                    a_column = builder.add(a_at, builder.mul(p, a_inner))
                    updated = []
                    for i in range(MR):
                        at = builder.gep(a_rows[i], [a_column])
                        scalar = splat(builder, builder.load(at), VECTOR)
                        updated.append(
                            [fma(builder, scalar, v, s) for v, s in zip(b_vectors, sums[i])]
                        )
                    return updated

                return summing_loop(builder, depth, 1, (MR, halves), channel, initial=outer)

            results = summing_loop(builder, taps, 1, (MR, halves), position)
            store_tile(builder, results, c_ptr, c_stride, rows, accumulate)
            return context.get_dummy_value()

        return signature, codegen

    return tile


_tile_set = _tile_kernel(accumulate=False)
_tile_add = _tile_kernel(accumulate=True)

_jit = numba.njit(nogil=True, boundscheck=False)


@_jit
def _slivers(w, gi, fg, taps):
    # the weights of group gi as the tiles read them: slivers[r, t, c, i] =
    # w[gi*fg + r*MR + i, c, t] (t the kernel position in row-major order), zero
    # past the group's last filter
    cg = w.shape[1]
    flat = w.reshape((w.shape[0], cg, taps))
    slivers = np.zeros(((fg + MR - 1) // MR, taps, cg, MR), np.float32)
    for f in range(fg):
        r, i = f // MR, f % MR
        for c in range(cg):
            for t in range(taps):
                slivers[r, t, c, i] = flat[gi * fg + f, c, t]
    return slivers


@_jit
def _offsets(kernel, dilate, Hp, Wp):
    # offset(t) of every kernel position t, in row-major order
    offsets = np.empty(kernel[0] * kernel[1] * kernel[2], np.int64)
    t = 0
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            for e in range(kernel[2]):
                offsets[t] = (a * dilate[0] * Hp + b * dilate[1]) * Wp + e * dilate[2]
                t += 1
    return offsets


@_jit
def pad_into(x, n, c0, pad, Hp, Wp, xp):
    """``xp[c] = x[n, c0 + c]`` padded: each of the channels' (D, H, W) planes
    written flat inside its zero border (``Hp`` and ``Wp`` the padded sizes),
    which is never written. Indices are unsigned: numba checks a signed index
    for wrap-around, which keeps LLVM from vectorising the copies (a 3x3
    gather of W7 took 9.6 ms that way and 1.0 ms so)."""
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    for c in range(xp.shape[0]):
        dst = xp[c]
        for z in range(D):
            for y in range(H):
                src = x[n, c0 + c, z, y]
                d = ((z + pad[0]) * Hp + y + pad[1]) * Wp + pad[2]
                for k in range(W):
                    dst[numba.uint64(d + k)] = src[numba.uint64(k)]


@_jit
def wide_copy(wide, q0, width, a, n, f0, Hp, Wp, to_wide):
    """Between ``wide[f, q - q0]`` (wide positions ``q0 .. q0 + width``) and
    ``a[n, f0 + f]`` (N, F, od, oh, ow): the output positions among them only,
    into ``a`` or, with ``to_wide``, into ``wide``, whose junk positions (k >=
    ow, j >= oh) are neither read nor written. Indices unsigned, as in
    :func:`pad_into`."""
    od, oh, ow = a.shape[2], a.shape[3], a.shape[4]
    for r in range(q0 // Wp, (q0 + width - 1) // Wp + 1):
        i, j = r // Hp, r % Hp
        if i >= od or j >= oh:
            continue
        k0 = max(q0 - r * Wp, 0)
        k1 = min(q0 + width - r * Wp, ow)
        s = r * Wp - q0
        for f in range(wide.shape[0]):
            w, row = wide[f], a[n, f0 + f, i, j]
            if to_wide:
                for k in range(k0, k1):
                    w[numba.uint64(s + k)] = row[numba.uint64(k)]
            else:
                for k in range(k0, k1):
                    row[numba.uint64(k)] = w[numba.uint64(s + k)]


@_jit
def _planes_tiles(xp, offsets, slivers, L, out, n, f0, Hp, Wp, wide):
    # out[n, f0:f0 + fg] (fg = wide's rows) on the wide positions q < L: the sum
    # over kernel positions t and channels c of slivers[., t, c] times
    # xp[c, q + offsets[t]], a block of BLOCK positions at a time into wide, whose
    # output positions are then copied out. xp (C, plane + NR): a last tile reads
    # up to NR - 1 past
    taps, cg = slivers.shape[1], slivers.shape[2]
    fg = wide.shape[0]
    span = (L + NR - 1) // NR * NR  # the tiles' wide positions; L + offsets <= plane
    per_pass = max(1, DEPTH // cg)  # kernel positions a pass
    ldb = xp.shape[1]
    step = cg * MR  # a kernel position's sliver
    for q0 in range(0, span, BLOCK):
        width = min(BLOCK, span - q0)
        for t0 in range(0, taps, per_pass):
            count = min(per_pass, taps - t0)
            at = offsets[t0:].ctypes
            for r in range(slivers.shape[0]):
                filled = min(MR, fg - r * MR)
                a = slivers[r, t0].ctypes
                for p in range(0, width, NR):
                    b = xp[0, q0 + p :].ctypes
                    c = wide[r * MR :, p:].ctypes
                    if t0 == 0:
                        _tile_set(count, at, cg, a, step, MR, 1, b, ldb, c, BLOCK, filled)
                    else:
                        _tile_add(count, at, cg, a, step, MR, 1, b, ldb, c, BLOCK, filled)
        wide_copy(wide, q0, min(width, L - q0), out, n, f0, Hp, Wp, False)


@_jit
def _products(x, w, out, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L):
    C, F = x.shape[1], w.shape[0]
    cg, fg = C // groups, F // groups
    taps = kernel[0] * kernel[1] * kernel[2]
    plane = (x.shape[2] + 2 * pad[0]) * Hp * Wp
    offsets = _offsets(kernel, dilate, Hp, Wp)
    xp = np.zeros((cg, plane + NR), np.float32)  # a last tile reads up to NR - 1 past
    wide = np.empty((fg, BLOCK), np.float32)
    for gi in range(groups):
        slivers = _slivers(w, gi, fg, taps)
        for n in range(lo, hi):
            pad_into(x, n, gi * cg, pad, Hp, Wp, xp)
            _planes_tiles(xp, offsets, slivers, L, out, n, gi * fg, Hp, Wp, wide)


@_jit
def _phase_products(xq, offsets, w, out, n, f0, Hq, Wq, L):
    # out[n, f0:f0 + F] = w (F, C, kernel) times the columns of the stride phases
    # xq (C, Q + NR): the tiles of _products over the phases' wide positions, each
    # channel's phases one plane and kernel position t a shift of offsets[t]
    # into it, so no column matrix is written
    wide = np.empty((w.shape[0], BLOCK), np.float32)
    slivers = _slivers(w, 0, w.shape[0], offsets.shape[0])
    _planes_tiles(xq, offsets, slivers, L, out, n, f0, Hq, Wq, wide)


@_jit
def _transposed_pad_into(x, n, c0, cg, pad, Hp, Wp, xt):
    # xt[q, c] = x[n, c0 + c] at padded position q, for c < cg: the padded image
    # transposed, LANES channels by LANES positions at a time in registers. A
    # block of fewer channels fills its other columns (< its LANES) with copies
    # of its first channel's: columns past cg, whose sums are never read. The
    # border rows are zero and never written
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    whole = W - W % LANES
    ldt = xt.shape[1]
    for z in range(D):
        for y in range(H):
            q = ((z + pad[0]) * Hp + y + pad[1]) * Wp + pad[2]
            for cb in range(0, cg, LANES):
                rows = min(LANES, cg - cb)
                source = x[n, c0 + cb, z, y]
                for k in range(0, whole, LANES):
                    _transpose(source[k:].ctypes, D * H * W, rows, xt[q + k, cb:].ctypes, ldt)
            for k in range(whole, W):
                for c in range(cg):
                    xt[q + k, c] = x[n, c0 + c, z, y, k]


@_jit
def _wide_slivers(g, n, f0, fg, Hp, Wp, slivers):
    # slivers[r, q, i] = g[n, f0 + r*MR + i] at wide position q (i < MR): the
    # output gradient as the tiles read it, MR filters a position; the junk
    # positions and the filters past fg stay zero
    od, oh, ow = g.shape[2], g.shape[3], g.shape[4]
    for f in range(fg):
        sliver = slivers[f // MR]
        i = f % MR
        for a in range(od):
            for j in range(oh):
                s = (a * Hp + j) * Wp
                src = g[n, f0 + f, a, j]
                for k in range(ow):
                    sliver[s + k, i] = src[k]


@_jit
def _weight_products(g, x, dw3, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L):
    C, F = x.shape[1], g.shape[1]
    cg, fg = C // groups, F // groups
    taps = kernel[0] * kernel[1] * kernel[2]
    plane = (x.shape[2] + 2 * pad[0]) * Hp * Wp
    width = (cg + NR - 1) // NR * NR  # channels padded to whole panels
    offsets = _offsets(kernel, dilate, Hp, Wp)
    unshifted = np.zeros(1, np.int64)
    xt = np.zeros((plane, width), np.float32)  # rows q + offset(t) for q < L
    slivers = np.zeros(((fg + MR - 1) // MR, L, MR), np.float32)
    sums = np.zeros((taps, fg, width), np.float32)
    for gi in range(groups):
        sums[:] = 0.0
        for n in range(lo, hi):
            _transposed_pad_into(x, n, gi * cg, cg, pad, Hp, Wp, xt)
            _wide_slivers(g, n, gi * fg, fg, Hp, Wp, slivers)
            for q0 in range(0, L, POSITIONS):
                depth = min(POSITIONS, L - q0)
                for t in range(taps):
                    for r in range(slivers.shape[0]):
                        filled = min(MR, fg - r * MR)
                        a = slivers[r, q0:].ctypes
                        for cp in range(0, width, NR):
                            b = xt[q0 + offsets[t], cp:].ctypes
                            into = sums[t, r * MR :, cp:].ctypes
                            _tile_add(
                                1,
                                unshifted.ctypes,
                                depth,
                                a,
                                0,
                                MR,
                                1,
                                b,
                                width,
                                into,
                                width,
                                filled,
                            )
        target = dw3[gi]
        for f in range(fg):
            for c in range(cg):
                for t in range(taps):
                    target[f, c * taps + t] += sums[t, f, c]


def weight_products(g, x, dw3, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L):  # type: ignore[no-untyped-def]
    """``dw3[gi] += sum over images lo..hi`` of the weight gradient of
    :func:`products` (as (groups, F/groups, C/groups * taps)) for the output
    gradient ``g``: ``sum over q of g[f, q] * padded[c, q + offset(t)]`` on the
    wide positions, by register tiles of ``MR`` filters by ``NR`` channels over
    the padded image transposed. The junk positions multiply data past a row's
    end by zero, as the wide columns' product does. Returns whether it did, as
    :func:`products`. Compiled code only."""
    raise NotImplementedError("shifted.weight_products runs in compiled code")


def products(x, w, out, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L):  # type: ignore[no-untyped-def]
    """``out[lo:hi] = conv(x[lo:hi], w)`` at unit stride (no bias) for C-contiguous
    5-D float32 arrays x (N, C, D, H, W), w (F, C/groups, kd, kh, kw) and out (N,
    F, od, oh, ow), given the padded sizes ``Hp``, ``Wp`` and the wide length
    ``L`` of lowerings/conv.py's ``_cv_wide_plan`` (which must be nonzero): by
    register tiles over the padded planes' shifted rows. Returns whether it did:
    False (nothing written) for another dtype or a CPU without AVX-512. Compiled
    code only."""
    raise NotImplementedError("shifted.products runs in compiled code")


def takes(x, w, out):  # type: ignore[no-untyped-def]
    """Whether :func:`products` takes these arrays (their dtype and the CPU; a
    constant of the compiled code). Compiled code only."""
    raise NotImplementedError("shifted.takes runs in compiled code")


@overload(takes)
def _takes_typed(x, w, out):  # type: ignore[no-untyped-def]
    taken = _vector_types(x, w, out)
    return lambda x, w, out: taken


def _vector_types(*arrays: Any) -> bool:
    """Whether the tiles take arrays of these numba types: float32, on a CPU with
    AVX-512 (a typing-time decision)."""
    return AVAILABLE and all(a.dtype == types.float32 for a in arrays)


def phase_products(xq, offsets, w, out, n, f0, Hq, Wq, L):  # type: ignore[no-untyped-def]
    """``out[n, f0:f0 + F] = w @ columns`` (no bias) for a strided convolution on
    its stride phases: ``xq`` (C, Q + NR) holds image ``n``'s channels' padded
    phases with ``NR`` zeros past each (a last tile reads up to ``NR - 1`` past),
    ``offsets`` each kernel position's shift into them, ``w`` the weights (F, C,
    kd, kh, kw) of one group, ``out`` 5-D (N, F', 1, oh, ow) and ``Hq``, ``Wq``, ``L``
    the phases' sizes and wide length (lowerings/conv.py's ``_cv_phase_plan``):
    by register tiles of ``MR`` filters by ``NR`` wide positions over every
    channel and kernel position. Returns whether it did, as :func:`products`.
    Compiled code only."""
    raise NotImplementedError("shifted.phase_products runs in compiled code")


@overload(phase_products)
def _phase_products_typed(xq, offsets, w, out, n, f0, Hq, Wq, L):  # type: ignore[no-untyped-def]
    if not _vector_types(xq, w, out):
        return lambda xq, offsets, w, out, n, f0, Hq, Wq, L: False

    def vector(xq, offsets, w, out, n, f0, Hq, Wq, L):  # type: ignore[no-untyped-def]
        _phase_products(xq, offsets, w, out, n, f0, Hq, Wq, L)
        return True

    return vector


def _float32_route(function: Any, implementation: Any) -> None:
    """Give ``function(a, b, c, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L)``
    its compiled form: False for arrays other than float32 or a CPU without
    AVX-512 (decided in typing), else ``implementation`` of the same arguments
    and True."""

    @overload(function)
    def typed(a, b, c, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L):  # type: ignore[no-untyped-def]
        if not _vector_types(a, b, c):
            return lambda a, b, c, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L: False

        def vector(a, b, c, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L):  # type: ignore[no-untyped-def]
            implementation(a, b, c, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L)
            return True

        return vector


_float32_route(products, _products)
_float32_route(weight_products, _weight_products)
