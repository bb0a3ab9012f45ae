"""Register tiles on a channel-blocked layout, and the table their probes print.

The probes (``blocked_1x1_ab.py``, ``blocked_3x3_ab.py``) measure what a
layout pass for issue 17 would buy: images kept as ``(C / 16, positions, 16)``,
16 channels innermost, so that a tile reads one position's 16 channels as one
vector and a block of channels as one stream. This module holds what they
share: the tile summing positions by filters (:func:`taps_tile`), the tile
summing outer products for a weight gradient (:func:`outer_tile`), the
weights' packing, and the rounds that time the routes against each other.

Not routes of the library: they live here, with the measurements.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # the bench's two threads
    os.environ.setdefault(_name, "2")

import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from symgrad_compiler.backends.numba import disk_cache, memory  # noqa: E402
from symgrad_compiler.backends.numba.lowerings import LOWERINGS  # noqa: E402
from symgrad_compiler.backends.numba.planes import splat  # noqa: E402
from symgrad_compiler.backends.numba.sgemm import (  # noqa: E402
    FLOAT_POINTER,
    VECTOR,
    fma,
    load_vector,
    summing_loop,
    vector_at,
)

BLOCK = 16  # channels (and filters) innermost
INT_POINTER = types.CPointer(types.int64)
Routes = tuple[dict[str, Callable[[], None]], Callable[[], None]]


def taps_tile(rows: int, halves: int) -> Any:
    """An intrinsic ``tile(taps, offsets, depth, x, ix, plane, w, iw, out, io,
    filled)``: ``out`` at ``io`` (blocked: filter block h at ``h * plane``,
    position i at ``16 i``) set to the sum over ``taps`` taps t and ``depth``
    channels q of x's ``rows`` positions at ``ix + offsets[t]`` (blocked:
    channel q at ``(q // 16) * plane + q % 16``) times the weights of ``halves``
    blocks of 16 filters from ``iw`` (:func:`packed`: block h's row t depth + q
    at ``(h taps depth + t depth + q) 16``), in ``rows x halves`` vector
    registers; only the first ``filled`` positions are stored. A 1x1
    convolution is one tap at offset 0. float32 pointers (offsets: int64),
    64-bit offsets and counts."""

    @intrinsic
    def tile(typingctx, taps, offsets, depth, x, ix, plane, w, iw, out, io, filled):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(
            size, INT_POINTER, size, pointer, size, size, pointer, size, pointer, size, size
        )  # fmt: skip

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            taps, offsets, depth, x, ix, plane, w, iw, out, io, filled = args
            i64 = ir.IntType(64)
            x, w, out = builder.gep(x, [ix]), builder.gep(w, [iw]), builder.gep(out, [io])
            block_of_weights = builder.mul(builder.mul(taps, depth), i64(BLOCK))

            def tap(t: Any, outer: list[list[Any]]) -> list[list[Any]]:
                shifted = builder.gep(x, [builder.load(builder.gep(offsets, [t]))])
                first_row = builder.mul(t, depth)

                def step(q: Any, sums: list[list[Any]]) -> list[list[Any]]:
                    block = builder.mul(builder.ashr(q, i64(4)), plane)
                    at = builder.add(block, builder.and_(q, i64(BLOCK - 1)))
                    rows_at = [builder.mul(builder.add(first_row, q), i64(BLOCK))]
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

            sums = summing_loop(builder, taps, 1, (rows, halves), tap)
            for i, line in enumerate(sums):
                with builder.if_then(builder.icmp_signed("<", i64(i), filled), likely=True):
                    for h, value in enumerate(line):
                        offset = builder.add(builder.mul(i64(h), plane), i64(BLOCK * i))
                        builder.store(value, vector_at(builder, out, offset), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return tile


# 24 sums of 16 lanes in registers: 12 positions by 32 filters, or 24 by 16 (the
# filters' last block where their count is an odd multiple of 16)
tile_pairs = taps_tile(12, 2)
tile_single = taps_tile(24, 1)


def packed(matrix: np.ndarray) -> np.ndarray:
    """A (rows, F) weight matrix as F / 16 contiguous blocks (F / 16, rows, 16).

    The tiles read a block of 16 or 32 filters row by row; from the matrix
    itself those rows are F floats apart, a power of two in most networks,
    which maps them all to a few cache sets: the 3x3 tile ran ResNet's 512 ->
    512 7x7 layer at a quarter of its 64-channel layers' rate so (20.7 ms,
    packed 12.4)."""
    rows, filters = matrix.shape
    return np.ascontiguousarray(matrix.reshape(rows, filters // BLOCK, BLOCK).transpose(1, 0, 2))


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


def seconds(call: Callable[[], None], flush: np.ndarray | None) -> float:
    """The wall time of ``call()``, after writing ``flush`` (if given) first."""
    if flush is not None:
        flush[:] = 1  # evict the operands: the layer as a training step meets it
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def print_table(
    kind: str,
    shapes: list[tuple[int, int, int]],
    modes: list[str],
    routes: Callable[[Any, Any, tuple, str], Routes],
    rounds: int,
) -> None:
    """For each mode and layer (channels, filters, size), time ``routes(kernels,
    rng, layer, mode)``'s "current" and "blocked" calls (checked to agree
    first), rounds alternating, warm and after 64 MB written elsewhere (cold),
    and print the medians, ms, and the probe's speed-up as a Markdown table."""
    memory.keep_freed_memory()
    kernels = disk_cache.load(LOWERINGS["Convolution"].kernels.strip())
    rng = np.random.default_rng(0)
    flush = np.empty(64 << 20, np.uint8)
    print(f"| {kind} layer, B=8 | current, warm | blocked, warm | current, cold | blocked, cold |")
    print("|---|---|---|---|---|")
    for mode in modes:
        for layer in shapes:
            calls, check = routes(kernels, rng, layer, mode)
            for call in calls.values():  # compile, and fault the pages in
                call()
            check()
            times: dict[tuple[str, bool], list[float]] = {}
            for _ in range(rounds):
                for cold in (False, True):
                    for name, call in calls.items():
                        times.setdefault((name, cold), []).append(
                            seconds(call, flush if cold else None)
                        )
            ms = {key: float(np.median(t)) * 1e3 for key, t in times.items()}
            cells = []
            for cold in (False, True):
                base, new = ms["current", cold], ms["blocked", cold]
                cells += [f"{base:.2f}", f"{new:.2f} ({base / new:.2f}x)"]
            channels, filters, size = layer
            label = f"{channels} -> {filters} {size}x{size}, {mode}"
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
