"""A float32 matrix product of our own for CPUs with AVX-512, split over the
backend's threads: for the products numpy's OpenBLAS does worst, those of a
Dense layer's gradients at a small batch (:func:`depth_block`).

A fully connected layer's weight gradient at batch 8 (``dz^T @ x``: AlexNet's
(4096 x 8) times (8 x 9216)) is a rank-8 update of a 151 MB array. Its cost is
writing that array once, about 20 ms on one core of the benchmark machine;
OpenBLAS took 53 ms for it (and 42-54 ms at 16 and 32 inner positions). The
register tile below writes each tile of the result once after its few
multiply-adds: 19.6 ms at 8 inner positions, 16.7 at 16, 32 at 32. From 64
inner positions on OpenBLAS is as fast or faster (its packing keeps strided
rows out of the same cache sets), so those products stay with it.

The input gradient at batch 8 (``dz @ w``: (8 x 4096) times (4096 x 9216)) reads
the weight once. OpenBLAS took 29-33 ms for it, and so did a tile's pass down
all 4096 of the weight's rows (each row's piece in a page of its own); in passes
of 16 inner positions, each streaming 16 whole rows, it takes 13.8 ms.

The product ``C = op(A) @ op(B)`` is computed in tiles of ``MR`` rows by ``NR``
columns, each one register-resident sum over a block of ``KC`` inner positions
(:func:`_tile_kernel`, written as LLVM vector code: numba's own loops do not
keep 24 accumulators in registers; in the tile's loop every instruction is a
load, a broadcast or an FMA, 180-200 GFLOP/s a core from cache). A tile reads
``op(A)`` as ``MR`` consecutive floats per inner position, which a transposed A
already is; an untransposed A is copied into such a sliver first. It reads B
(never transposed: no route here needs that) as rows of ``NR`` consecutive
floats. A tile writes only its rows that exist; a tile past the last whole
panel is computed into a scratch tile and its valid part copied out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import threads
from .blas_kernels import OWN_TILES
from .vmath import _target_has_avx512

MR, NR = 12, 32  # a tile's rows and columns: 24 accumulators of 16 floats
KC = 256  # inner positions per pass over a tile: its B panel is 32 KB (L1)
NC = 256  # columns of B packed at a time (gemm_panels): 256 KB with KC, in L2
KC_MOST = 320  # gemm_panels' deepest pass: a B panel of 320 x NR floats is 40 KB (L1)
MC = 96  # rows of A packed at a time (gemm_panels): 8 slivers, about 100 KB (L2)
LANES = 16  # float32 lanes of a 512-bit vector

# The products taken (:func:`depth_block`): weight gradients over at most this
# many inner positions, and products with enough work that the threads'
# hand-off is small beside it.
MOST_INNER = 32
MINIMUM_WORK = 1 << 23
FEW_ROWS_BLOCK = 16  # see depth_block

AVAILABLE = _target_has_avx512()


FLOAT_POINTER = types.CPointer(types.float32)
VECTOR = ir.VectorType(ir.FloatType(), LANES)


def llvm_function(builder: Any, name: str, returns: Any, params: list) -> Any:
    """The module's declaration of the LLVM function ``name`` (an intrinsic),
    declared on first use."""
    found = builder.module.globals.get(name)
    return found or ir.Function(builder.module, ir.FunctionType(returns, params), name)


def vector_at(builder: Any, base: Any, offset: Any) -> Any:
    """A pointer to the ``LANES`` floats at ``base + offset`` (any alignment:
    loads and stores through it must say ``align=4``, see :func:`load_vector`)."""
    return builder.bitcast(builder.gep(base, [offset]), VECTOR.as_pointer())


def load_vector(builder: Any, base: Any, offset: Any) -> Any:
    """The ``LANES`` floats at ``base + offset``; aligned to a float only (a
    vector load without ``align`` is assumed aligned to its size, and faults)."""
    return builder.load(vector_at(builder, base, offset), align=4)


def fma(builder: Any, x: Any, y: Any, z: Any) -> Any:
    """``x * y + z`` on vectors, rounded once."""
    function = llvm_function(builder, f"llvm.fma.v{LANES}f32", VECTOR, [VECTOR] * 3)
    return builder.call(function, [x, y, z])


def summing_loop(
    builder: Any,
    count: Any,
    step: int,
    shape: tuple[int, int],
    body: Callable,
    initial: list[list[Any]] | None = None,
) -> list[list[Any]]:
    """Emit ``for p in range(0, count, step)`` carrying a ``shape`` grid of vector
    sums, ``initial`` (zero by default) at the start, that ``body(p, sums)``
    returns updated; return the grid after the loop (``initial`` where ``count
    <= 0``). Loops nest: an outer loop's body passes its sums as ``initial``."""
    i64 = ir.IntType(64)
    zero = ir.Constant(VECTOR, [0.0] * LANES)
    if initial is None:
        initial = [[zero] * shape[1] for _ in range(shape[0])]
    before = builder.block
    loop = builder.append_basic_block("sums.loop")
    done = builder.append_basic_block("sums.done")
    builder.cbranch(builder.icmp_signed(">", count, i64(0)), loop, done)

    builder.position_at_end(loop)
    p = builder.phi(i64)
    p.add_incoming(i64(0), before)
    sums = [[builder.phi(VECTOR) for _ in range(shape[1])] for _ in range(shape[0])]
    updated = body(p, sums)
    following = builder.add(p, i64(step))
    end_of_loop = builder.block
    p.add_incoming(following, end_of_loop)
    builder.cbranch(builder.icmp_signed("<", following, count), loop, done)

    builder.position_at_end(done)
    results = [[builder.phi(VECTOR) for _ in range(shape[1])] for _ in range(shape[0])]
    for line, new, result, start in zip(sums, updated, results, initial):
        for s, n, r, s0 in zip(line, new, result, start):
            s.add_incoming(s0, before)
            s.add_incoming(n, end_of_loop)
            r.add_incoming(s0, before)
            r.add_incoming(n, end_of_loop)
    return results


def store_tile(
    builder: Any, sums: list[list[Any]], c_ptr: Any, c_stride: Any, rows: Any, accumulate: bool
) -> None:
    """Emit the stores of a tile's ``MR`` rows of vector sums to ``c_ptr`` (row
    stride ``c_stride``): row i only if ``i < rows``, added to what is there with
    ``accumulate``."""
    i64 = ir.IntType(64)
    for i, line in enumerate(sums):
        with builder.if_then(builder.icmp_signed("<", i64(i), rows), likely=True):
            for h, value in enumerate(line):
                offset = builder.add(builder.mul(i64(i), c_stride), i64(h * LANES))
                target = vector_at(builder, c_ptr, offset)
                if accumulate:
                    value = builder.fadd(builder.load(target, align=4), value)
                builder.store(value, target, align=4)


def _tile_code(
    builder: Any, count: Any, a: Any, lda: Any, b: Any, ldb: Any, c: Any, ldc: Any, rows: Any,
    accumulate: bool,
) -> None:  # fmt: skip
    """Emit the tile of :func:`_tile_kernel` at the pointers ``a``, ``b`` and ``c``."""
    i64, halves = ir.IntType(64), NR // LANES
    broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

    def step(p: Any, sums: list[list[Any]]) -> list[list[Any]]:
        b_row = builder.mul(p, ldb)
        b_vectors = [
            load_vector(builder, b, builder.add(b_row, i64(h * LANES))) for h in range(halves)
        ]
        a_column = builder.mul(p, lda)
        updated = []
        for i in range(MR):
            scalar = builder.load(builder.gep(a, [builder.add(a_column, i64(i))]))
            splat = builder.insert_element(
                ir.Constant(VECTOR, ir.Undefined), scalar, ir.IntType(32)(0)
            )
            splat = builder.shuffle_vector(splat, ir.Constant(VECTOR, ir.Undefined), broadcast)
            updated.append([fma(builder, splat, v, s) for v, s in zip(b_vectors, sums[i])])
        return updated

    results = summing_loop(builder, count, 1, (MR, halves), step)
    store_tile(builder, results, c, ldc, rows, accumulate)


def _tile_kernel(accumulate: bool) -> Any:
    """An intrinsic ``tile(k, a, ia, lda, b, ib, ldb, c, ic, ldc, rows)``: the
    first ``rows`` (at most ``MR``) rows of the ``MR`` x ``NR`` tile at ``c + ic``
    (row stride ``ldc``) set to (or, with ``accumulate``, increased by) those of
    ``sum over p < k of a[ia + p*lda : ia + p*lda + MR] outer b[ib + p*ldb : ib +
    p*ldb + NR]``; float32 pointers, 64-bit offsets, strides and counts, ``k >=
    0``. The offsets spare a caller a view per tile for its pointers (see
    :func:`gemm_block`)."""

    @intrinsic
    def tile(typingctx, k, a, ia, lda, b, ib, ldb, c, ic, ldc, rows):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(
            size, pointer, size, size, pointer, size, size, pointer, size, size, size
        )

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            count, a, ia, lda, b, ib, ldb, c, ic, ldc, rows = args
            at = [builder.gep(base, [offset]) for base, offset in ((a, ia), (b, ib), (c, ic))]
            _tile_code(builder, count, at[0], lda, at[1], ldb, at[2], ldc, rows, accumulate)
            return context.get_dummy_value()

        return signature, codegen

    return tile


_tile_set = _tile_kernel(accumulate=False)
_tile_add = _tile_kernel(accumulate=True)

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def _tile_into(depth, a, ia, lda, b, ib, ldb, c, i0, j0, filled, columns, add, scratch):
    """The tile of ``c`` at row ``i0``, column ``j0`` (its first ``filled`` rows and
    ``columns`` columns) set to the sum over ``depth`` inner positions of the
    sliver at ``a + ia`` outer the panel at ``b + ib``, or increased by it
    (``add``: past the first block of inner positions, or a product added into
    ``c``); a partial tile is computed into ``scratch`` (MR x NR) and its part
    copied out."""
    if columns == NR:
        ldc, ic = c.shape[1], i0 * c.shape[1] + j0
        if add:
            _tile_add(depth, a, ia, lda, b, ib, ldb, c.ctypes, ic, ldc, filled)
        else:
            _tile_set(depth, a, ia, lda, b, ib, ldb, c.ctypes, ic, ldc, filled)
        return
    _tile_set(depth, a, ia, lda, b, ib, ldb, scratch.ctypes, 0, NR, MR)
    for i in range(filled):
        for j in range(columns):
            if add:
                c[i0 + i, j0 + j] += scratch[i, j]
            else:
                c[i0 + i, j0 + j] = scratch[i, j]


@_jit
def _pack_b_edge(b, k0, depth, n0, filled, panel):
    """``panel[k, j] = b[k0 + k, n0 + j]``, zero from ``filled`` on: a last,
    partial panel of an untransposed B."""
    for k in range(depth):
        for j in range(NR):
            panel[k, j] = b[k0 + k, n0 + j] if j < filled else 0.0


@_jit
def _pack_a(a, transpose_a, i0, filled, k0, depth, sliver):
    """``sliver[k, i] = op(A)[i0 + i, k0 + k]``, zero from ``filled`` on; ``sliver``
    has a row more than ``depth`` (see below). Whole tiles of an untransposed A
    are transposed ``LANES`` inner positions at a time in registers
    (:func:`_transpose_kernel`, whose stores of ``LANES`` floats into rows of
    ``MR`` leave a few floats in the row past the last: W6's forward, 128 x 784,
    22 -> 6 us)."""
    first = 0
    if not transpose_a and filled == MR:
        first = depth - depth % LANES
        for k in range(0, first, LANES):
            _transpose(a[i0:, k0 + k :].ctypes, a.shape[1], MR, sliver[k:].ctypes, MR)
    elif transpose_a and filled == MR and i0 + LANES <= a.shape[1]:
        # each row of the sliver one vector copy, whose last LANES - MR floats
        # the next row's copy overwrites: packed a float at a time, W2's weight
        # gradient (1024 x 784)^T by (1024 x 256) took 2870-2990 us on one
        # thread, 2320-2480 this way (its forward, untransposed, 2310-2630)
        first = depth
        source, target = a.ctypes, sliver.ctypes
        for k in range(depth):
            _copy_lanes(source, (k0 + k) * a.shape[1] + i0, target, k * MR)
    for k in range(first, depth):
        for i in range(MR):
            if i >= filled:
                sliver[k, i] = 0.0
            elif transpose_a:
                sliver[k, i] = a[k0 + k, i0 + i]
            else:
                sliver[k, i] = a[i0 + i, k0 + k]


@_jit
def gemm_block(a, transpose_a, b, c, m0, m1, n0, n1, block):
    """``c[m0:m1, n0:n1] = (op(a) @ b)[m0:m1, n0:n1]``, op a transpose where
    asked, for C-contiguous float32 matrices of agreeing shapes, in passes over
    ``block`` inner positions."""
    inner = a.shape[0] if transpose_a else a.shape[1]
    if inner == 0:
        c[m0:m1, n0:n1] = 0.0
        return
    width = n1 - n0
    count = (width + NR - 1) // NR
    edge = np.empty((min(block, inner), NR), np.float32)  # a last, partial panel
    sliver = np.empty((min(block, inner) + 1, MR), np.float32)  # see _pack_a
    scratch = np.empty((MR, NR), np.float32)
    # A product in one pass (a weight gradient at a small batch: a few
    # multiply-adds a tile) calls its whole tiles here. Through _tile_into, the
    # three tiles' code inlined together there made AlexNet's depth-8 classifier
    # weight gradient 1.2-1.3x slower; deeper products' passes stay there (called
    # here, the few-rows input gradient's narrow blocks became erratic: 3-15 ms
    # against 3.5 for a quarter of AlexNet's). Every tile is at offsets from its
    # arrays' pointers: no view per tile
    one_pass = block >= inner
    ap, bp, cp, ldc = a.ctypes, b.ctypes, c.ctypes, c.shape[1]
    for k0 in range(0, inner, block):
        depth = min(block, inner - k0)
        if width % NR:
            last = (count - 1) * NR
            _pack_b_edge(b, k0, depth, n0 + last, width - last, edge)
        for i0 in range(m0, m1, MR):
            filled = min(MR, m1 - i0)
            if transpose_a and filled == MR:  # op(A)'s rows are a's columns: read in place
                a_base, a_at, lda = ap, k0 * a.shape[1] + i0, a.shape[1]
            else:
                _pack_a(a, transpose_a, i0, filled, k0, depth, sliver)
                a_base, a_at, lda = sliver.ctypes, 0, MR
            for p in range(count):
                j0 = n0 + p * NR
                columns = min(NR, n1 - j0)
                if columns < NR:
                    b_base, b_at, ldb = edge.ctypes, 0, NR
                else:
                    b_base, b_at, ldb = bp, k0 * b.shape[1] + j0, b.shape[1]
                if one_pass and columns == NR:
                    c_at = i0 * ldc + j0
                    _tile_set(depth, a_base, a_at, lda, b_base, b_at, ldb, cp, c_at, ldc, filled)
                    continue
                _tile_into(
                    depth, a_base, a_at, lda, b_base, b_at, ldb, c, i0, j0, filled, columns,
                    k0 > 0, scratch,
                )  # fmt: skip


def _transpose_kernel() -> Any:
    """An intrinsic ``transpose(source, lds, rows, target, ldt)``: ``target[c*ldt +
    r] = source[r*lds + c]`` for ``r < rows`` and ``c < LANES`` (``rows <= LANES``),
    float32 pointers, 64-bit strides and count. Each ``c`` is one store of
    ``LANES`` floats, in ascending ``c``: where ``ldt < LANES``, a store's last
    ``LANES - ldt`` floats are overwritten by the next one's first, and the last
    store's are left past the block (the caller leaves room for them). Source
    rows from ``rows`` on are not read.

    The ``LANES`` rows are loaded as vectors and transposed in registers in four
    stages, stage ``s`` exchanging bit ``s`` of the row index with bit ``s`` of
    the column index between rows ``r`` and ``r | 1 << s``: 64 two-vector
    shuffles for 256 floats, where a loop of scalar copies moves one float a
    load and a store."""

    @intrinsic
    def transpose(typingctx, source, lds, rows, target, ldt):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(pointer, size, size, pointer, size)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            source_ptr, source_stride, count, target_ptr, target_stride = args
            i64, i32 = ir.IntType(64), ir.IntType(32)
            rows = []
            for r in range(LANES):  # a row past ``count`` reads row 0 again
                inside = builder.icmp_signed("<", i64(r), count)
                offset = builder.select(inside, builder.mul(i64(r), source_stride), i64(0))
                rows.append(load_vector(builder, source_ptr, offset))
            for stage in range(LANES.bit_length() - 1):
                bit = 1 << stage
                low_mask = [c if not c & bit else LANES + (c ^ bit) for c in range(LANES)]
                high_mask = [c ^ bit if not c & bit else LANES + c for c in range(LANES)]
                exchanged = list(rows)
                for r in range(LANES):
                    if r & bit:
                        continue
                    low, high = rows[r], rows[r | bit]
                    exchanged[r] = builder.shuffle_vector(
                        low, high, ir.Constant(ir.VectorType(i32, LANES), low_mask)
                    )
                    exchanged[r | bit] = builder.shuffle_vector(
                        low, high, ir.Constant(ir.VectorType(i32, LANES), high_mask)
                    )
                rows = exchanged
            for c in range(LANES):
                offset = builder.mul(i64(c), target_stride)
                builder.store(rows[c], vector_at(builder, target_ptr, offset), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return transpose


_transpose = _transpose_kernel()


@intrinsic
def _copy_lanes(typingctx, source, at, target, to):  # type: ignore[no-untyped-def]
    """``target[to : to + LANES] = source[at : at + LANES]``: float32 pointers,
    64-bit offsets, one vector load and store."""
    signature = types.void(FLOAT_POINTER, types.int64, FLOAT_POINTER, types.int64)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        source_ptr, source_at, target_ptr, target_at = args
        value = load_vector(builder, source_ptr, source_at)
        builder.store(value, vector_at(builder, target_ptr, target_at), align=4)
        return context.get_dummy_value()

    return signature, codegen


@_jit
def _pack_b_panels(b, k0, depth, n0, width, panels):
    """``panels[p, k, j] = b[n0 + p * NR + j, k0 + k]`` (B transposed: op(B)'s
    columns are b's rows) for the ``width`` columns from ``n0``, zero past them:
    B's block as the tiles read it, ``NR`` consecutive floats per inner position.
    Whole blocks of ``LANES`` x ``LANES`` are transposed in registers
    (:func:`_transpose_kernel`; W6's 784 x 256 block 58 -> 12 us), the rest
    copied a float at a time."""
    whole = depth - depth % LANES
    ldb = b.shape[1]
    for p in range((width + NR - 1) // NR):
        filled = min(NR, width - p * NR)
        for j0 in range(0, NR, LANES):
            if j0 + LANES <= filled:
                row = b[n0 + p * NR + j0 :]
                for k in range(0, whole, LANES):
                    source = row[:, k0 + k :].ctypes
                    _transpose(source, ldb, LANES, panels[p, k:, j0:].ctypes, NR)
                first = whole
            else:
                first = 0
            for k in range(first, depth):
                for j in range(j0, j0 + LANES):
                    panels[p, k, j] = b[n0 + p * NR + j, k0 + k] if j < filled else 0.0


@_jit
def _pack_b_rows(b, k0, depth, n0, width, panels):
    """``panels[p, k, j] = b[k0 + k, n0 + p * NR + j]`` (B untransposed) for the
    ``width`` columns from ``n0``, zero past them: each panel's row a copy of
    ``NR`` consecutive floats."""
    # explicit loops, panel by panel: slices a row made it 2.7x slower
    for p in range((width + NR - 1) // NR):
        j0 = n0 + p * NR
        filled = min(NR, width - p * NR)
        for k in range(depth):
            for j in range(NR):
                panels[p, k, j] = b[k0 + k, j0 + j] if j < filled else 0.0


def panel_depth(inner: int) -> int:
    """The inner positions of each of :func:`gemm_panels`' passes: ``inner`` in
    as few passes of at most :data:`KC_MOST` as it takes, equal but for the last
    (784 in three of 262, not three of 256 and one of 16, which stores the whole
    result once more for a sixteenth of the work)."""
    passes = -(-inner // KC_MOST)
    return -(-inner // passes)


_panel_depth = _jit(panel_depth)  # for gemm_panels


@_jit
def gemm_panels(a, transpose_a, b, transpose_b, c, m0, m1, n0, n1, accumulate=False):
    """``c[m0:m1, n0:n1] = (op(a) @ op(b))[m0:m1, n0:n1]`` (with ``accumulate``,
    ``+=``: each tile added to ``c`` as it is stored, as a convolution's weight
    gradient sums its images' products), op a transpose where asked, for
    C-contiguous float32 matrices of agreeing shapes, in blocks as
    a cache-blocked GEMM takes them: B packed ``NC`` columns by
    :func:`panel_depth` inner positions at a time (in L2), A packed ``MC`` rows
    at a time into slivers (those of a block, about 100 KB, stay in L2), and
    each panel of B (``NR`` columns, 33 KB: L1) multiplied by every sliver of
    the block before the next panel. Each tile thus streams its A sliver (48
    bytes an inner position) from L2 and reads B from L1, where the tiles of a
    row passing over B in L2 read 128 bytes an inner position from it, and
    two threads so slowed each other: halves of W2's (1024 x 784) by (784 x 256)
    on two threads ran 1.65x as fast as the whole on one, 1.9x this way."""
    inner = a.shape[0] if transpose_a else a.shape[1]
    if inner == 0:
        if not accumulate:
            c[m0:m1, n0:n1] = 0.0
        return
    kc = _panel_depth(inner)
    panels = np.empty((NC // NR, kc, NR), np.float32)
    slivers = np.empty((MC // MR, kc + 1, MR), np.float32)  # see _pack_a
    scratch = np.empty((MR, NR), np.float32)
    # whole tiles at offsets from the buffers' pointers, not a view per tile
    sp, pp, cp, ldc = slivers.ctypes, panels.ctypes, c.ctypes, c.shape[1]
    for nb in range(n0, n1, NC):
        width = min(NC, n1 - nb)
        count = (width + NR - 1) // NR
        for k0 in range(0, inner, kc):
            depth = min(kc, inner - k0)
            add = accumulate or k0 > 0
            if transpose_b:
                _pack_b_panels(b, k0, depth, nb, width, panels)
            else:
                _pack_b_rows(b, k0, depth, nb, width, panels)
            for ib in range(m0, m1, MC):
                ie = min(m1, ib + MC)
                tiles = (ie - ib + MR - 1) // MR
                for t in range(tiles):
                    i0 = ib + t * MR
                    _pack_a(a, transpose_a, i0, min(MR, ie - i0), k0, depth, slivers[t])
                for p in range(count):
                    j0 = nb + p * NR
                    columns = min(NR, n1 - j0)
                    b_at = p * kc * NR
                    for t in range(tiles):
                        i0 = ib + t * MR
                        filled = min(MR, ie - i0)
                        a_at, c_at = t * (kc + 1) * MR, i0 * ldc + j0
                        if columns < NR:
                            _tile_into(
                                depth, sp, a_at, MR, pp, b_at, NR, c, i0, j0, filled, columns,
                                add, scratch,
                            )  # fmt: skip
                        elif add:
                            _tile_add(depth, sp, a_at, MR, pp, b_at, NR, cp, c_at, ldc, filled)
                        else:
                            _tile_set(depth, sp, a_at, MR, pp, b_at, NR, cp, c_at, ldc, filled)


@_jit
def gemm_any(a, transpose_a, b, transpose_b, c, m0, m1, n0, n1):
    """``c[m0:m1, n0:n1] = (op(a) @ op(b))[m0:m1, n0:n1]`` for C-contiguous
    float32 matrices, any layout: B read in place where it is not transposed
    (:func:`gemm_block`: packing it cost more than it saved where A has few row
    tiles, W7's Winograd products 10 -> 24 us), else packed (:func:`gemm_panels`)."""
    if transpose_b:
        gemm_panels(a, transpose_a, b, transpose_b, c, m0, m1, n0, n1)
    else:
        gemm_block(a, transpose_a, b, c, m0, m1, n0, n1, KC)


def depth_block(
    rows: int, columns: int, inner: int, dtype: Any, transpose_a: bool, transpose_b: bool
) -> int:
    """The inner positions per pass with which :func:`product` takes a product
    of this size, dtype and layout, or 0 where OpenBLAS keeps it. Ours: float32
    on AVX-512, big enough to split over the threads, and either
    - a transposed A times B over at most :data:`MOST_INNER` inner positions (a
      weight gradient at a small batch: each tile written once), or
    - at most ``MR`` rows of A times B (a Dense layer's input gradient at a small
      batch), in passes of :data:`FEW_ROWS_BLOCK` inner positions: a pass then
      streams that many whole rows of B, which the prefetcher follows, where
      a tile's pass down all of B's rows read each in a separate page (a B
      of 16 MB or more goes to narrow.py's row-by-row product first: the
      entry's :func:`..lowerings.products.split_product` asks it before)."""
    if not (AVAILABLE and dtype == np.float32 and rows * columns * inner >= MINIMUM_WORK):
        return 0
    if transpose_a and not transpose_b and 0 < inner <= MOST_INNER:
        return KC
    if not transpose_a and not transpose_b and 0 < rows <= MR:
        return FEW_ROWS_BLOCK
    return 0


def pass_depth(rows: int, inner: int, transpose_a: bool, transpose_b: bool) -> int:
    """The ``block`` with which :func:`product` takes a general product
    (:func:`general`) of ``rows`` result rows: :data:`PACKED` from
    :data:`PACKED_ROWS` rows on, else all of its inner positions, one pass, for
    an untransposed A and B over at most :data:`ONE_PASS_INNER` positions, else
    :data:`KC`.

    In one pass each tile is summed in registers over the whole depth and stored
    once, where passes of ``KC`` load and store every tile of the result again per
    pass (and the last, short pass of 784 = 3 x 256 + 16 costs nearly what a whole
    one does). W2's (1024 x 784) by (784 x 256), one thread on the benchmark
    machine: 2644 us in passes of 256, 2204 us in one (OpenBLAS's AVX-512 kernels
    2548); W2 B=1024's step on our tiles (``OPENBLAS_CORETYPE=Haswell``) 4379 /
    4534 -> 4238 / 4397 us, fresh processes alternating. A transposed A is read in
    place, ``MR`` floats a row apart: deeper passes there were slower (784 x 1024
    by 1024 x 256: 2935 us in passes of 256, 3185 in one).

    But two threads each passing their tiles over B in L2 slowed each other;
    packed (:func:`gemm_panels`) each tile reads B from L1. On two threads, same
    process: W2's forward product 1558-1619 us in one pass, 1409-1458 packed;
    its weight gradient ((1024 x 784)^T by (1024 x 256)) 1843-1866 in passes,
    1583-1622 packed (1321-1385 once a transposed A was packed a vector a row,
    see :func:`_pack_a`). Where each thread has few rows, its packing of all of B
    costs more than it saves: W6's (128 x 784) by (784 x 256), 348-372 us in one
    pass, 435-452 packed."""
    if rows >= PACKED_ROWS:
        return PACKED
    if not transpose_a and not transpose_b and 0 < inner <= ONE_PASS_INNER:
        return inner
    return KC


# :func:`product`'s block asking for B packed (gemm_panels), and the fewest
# result rows with which a general product takes it (see pass_depth)
PACKED = 0
PACKED_ROWS = 512
# the deepest product taken in one pass: its B panel (ONE_PASS_INNER x NR floats,
# 128 KB) is read from L2 by every tile of a row of tiles
ONE_PASS_INNER = 1024


def general(rows: int, columns: int, inner: int, dtype: Any) -> bool:
    """Whether :func:`product` takes a float32 product of any other layout (in
    passes of ``KC``): where OpenBLAS runs kernels without AVX-512
    (:data:`.blas_kernels.OWN_TILES`), from :data:`MINIMUM_WORK` on."""
    return (
        AVAILABLE and OWN_TILES and dtype == np.float32 and rows * columns * inner >= MINIMUM_WORK
    )


def taken_when(out: str, inner: str, transpose_a: bool, transpose_b: bool) -> str | None:
    """:func:`depth_block`'s test on sizes, as source for the whole-program entry
    (``out`` and ``inner``: expressions of the result and the inner size) for a
    float32 product of this layout; None where no size of it is taken."""
    work = f"{out}.shape[0] * {out}.shape[1] * {inner}"
    if AVAILABLE and OWN_TILES:  # general(): any layout
        return f"({work} >= {MINIMUM_WORK})"
    if not AVAILABLE or transpose_b:
        return None
    few = f"{inner} <= {MOST_INNER}" if transpose_a else f"{out}.shape[0] <= {MR}"
    return f"({few} and {work} >= {MINIMUM_WORK})"


def blocks(
    rows: int, columns: int, parts: int, columns_first: bool = False
) -> list[tuple[int, int, int, int]]:
    """``(m0, m1, n0, n1)`` blocks of a (rows, columns) result, one per thread:
    whole tiles of rows, so that each thread writes one contiguous part of the
    result, or whole panels of columns where there are too few rows (or, with
    ``columns_first``, wherever there are enough columns)."""
    by_rows = parts > 1 and rows >= 2 * MR * parts
    by_columns = parts > 1 and columns >= 2 * NR * parts
    if by_rows and not (columns_first and by_columns):
        step = -(-rows // parts // MR) * MR
        return [(lo, min(rows, lo + step), 0, columns) for lo in range(0, rows, step)]
    if by_columns:
        step = -(-columns // parts // NR) * NR
        return [(0, rows, lo, min(columns, lo + step)) for lo in range(0, columns, step)]
    return [(0, rows, 0, columns)]


@_jit
def _block_into(posted, a, transpose_a, b, transpose_b, c, m0, m1, n0, n1, block):
    # a block of product(): B packed (gemm_panels, block PACKED) or read in place in
    # passes of block inner positions (gemm_block); first posted[0] += 1 where
    # posted has an element (the first block of threads.run(..., posts=True)):
    # the GIL is let go here, so a worker woken now takes it at once
    if posted.shape[0]:
        posted[0] += 1
    if transpose_b or block == PACKED:
        gemm_panels(a, transpose_a, b, transpose_b, c, m0, m1, n0, n1)
    else:
        gemm_block(a, transpose_a, b, c, m0, m1, n0, n1, block)


_NOT_POSTING = np.zeros(0, np.int64)


def _block(a, transpose_a, b, transpose_b, c, m0, m1, n0, n1, block, bias, posted=None):
    posted = _NOT_POSTING if posted is None else posted
    _block_into(posted, a, transpose_a, b, transpose_b, c, m0, m1, n0, n1, block)
    if bias is not None:  # while this thread's block is the one it just wrote
        np.add(c[m0:m1, n0:n1], bias[n0:n1], out=c[m0:m1, n0:n1])


def product(
    a: np.ndarray,
    b: np.ndarray,
    transpose_a: bool,
    out: np.ndarray,
    block: int,
    transpose_b: bool = False,
    bias: np.ndarray | None = None,
) -> None:
    """``out[...] = op(a) @ op(b)`` (plus ``bias``, a row added to every row) for
    float32 matrices (``out`` C-contiguous, of the product's shape, overlapping
    neither), in blocks of rows (or columns) on the backend's threads: with
    ``block`` :data:`PACKED` or a transposed B, each thread packing B for its own block
    (:func:`gemm_panels`), else in passes over ``block`` inner positions of B in
    place (:func:`gemm_block`). The first block wakes the workers from compiled
    code (:func:`threads.run`'s ``posts``)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    parts = 1 if threads.serial() else threads.count()
    rows, columns = out.shape
    # two blocks a thread where the product has them: the first thread done takes
    # the next, so a worker that starts late or runs slower (the operand made on
    # the calling thread's core is in that core's cache) holds the call up by
    # half its share, not all of it (W6's (256 x 128) by (128 x 784) weight
    # gradient: 180 -> 161 us, same process, interleaved). Not where each block
    # packs all of an untransposed B: one block a thread packs it once
    shared_b = block == PACKED and not transpose_b
    count = 2 * parts if parts > 1 and not shared_b else parts
    pieces = blocks(rows, columns, count, columns_first=transpose_b)
    if len(pieces) < parts:
        pieces = blocks(rows, columns, parts, columns_first=transpose_b)
    calls = [(a, transpose_a, b, transpose_b, out, *p, block, bias) for p in pieces]
    threads.run(_block, calls, posts=True)
