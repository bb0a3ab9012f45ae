"""1x1 convolutions by the current route against a channel-blocked probe.

B=8, forward, data gradient and weight gradient, in one process: what a
layout pass for issue 17 would buy, measured before anyone builds it.

The current route multiplies ``w (F, C) @ x[n] (C, P)`` per image on numpy's
OpenBLAS (the data gradient ``w^T @ g[n]``), images split over the backend's
two threads (``lib_conv_forward``, ``lib_conv_data_grad``).
The probe keeps the images as ``(C / 16, P, 16)``: 16 channels innermost, so a
register tile of 12 positions reads 12 x 16 consecutive floats per block of
channels (one stream per block of 16 channels, where the plain layout is one
per channel and a GEMM first copies the image into packed panels). Each tile
sums 12 positions x 32 filters (or 24 x 16) in 24 vector registers over every
channel, from sgemm.py's vector helpers, and stores into an output of the same
layout; the weight gradient sums 16 x 16 outer products of a block of filters
and one of channels over the positions. The conversions between layouts are
not timed: in a network the layout
would be carried from layer to layer (the elementwise loops between them
writing it), which is the project this measures. Rounds alternate the routes,
warm and after 64 MB written elsewhere (cold); medians, ms, and the probe's
speed-up.

    python -m bench.blocked_1x1_ab [--rounds 9]

Not a route of the library: the tile lives here, with this measurement.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # the bench's two threads
    os.environ.setdefault(_name, "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from symgrad_compiler.backends.numba import disk_cache, memory, threads  # noqa: E402
from symgrad_compiler.backends.numba.lowerings import LOWERINGS  # noqa: E402
from symgrad_compiler.backends.numba.lowerings.conv import blas_alone  # noqa: E402
from symgrad_compiler.backends.numba.planes import splat  # noqa: E402
from symgrad_compiler.backends.numba.sgemm import (  # noqa: E402
    FLOAT_POINTER,
    LANES,
    VECTOR,
    fma,
    load_vector,
    summing_loop,
    vector_at,
)

BLOCK = 16  # channels (and filters) innermost

# (channels, filters, height = width): MobileNet 1.0's pointwise layers, then
# SqueezeNet's squeeze layers
SHAPES = [
    (32, 64, 112),
    (128, 128, 56),
    (256, 256, 28),
    (512, 512, 14),
    (1024, 1024, 7),
    (96, 16, 54),
    (128, 32, 54),
    (384, 64, 27),
]


def _tile_kernel(rows: int, halves: int) -> Any:
    """An intrinsic ``tile(depth, x, ix, plane, w, iw, ldw, out, io, filled)``:
    ``out`` at ``io`` (blocked: filter block h at ``h * plane``, position i at
    ``16 i``) set to the sum over ``depth`` channels of x's ``rows`` positions
    at ``ix`` (blocked: channel q at ``(q // 16) * plane + q % 16``) times
    ``w[q, iw : iw + 16 halves]`` (row stride ``ldw``), in ``rows x halves``
    vector registers; only the first ``filled`` positions are stored. float32
    pointers, 64-bit offsets and counts."""

    @intrinsic
    def tile(typingctx, depth, x, ix, plane, w, iw, ldw, out, io, filled):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(
            size, pointer, size, size, pointer, size, size, pointer, size, size
        )  # fmt: skip

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            depth, x, ix, plane, w, iw, ldw, out, io, filled = args
            i64 = ir.IntType(64)
            x, w, out = builder.gep(x, [ix]), builder.gep(w, [iw]), builder.gep(out, [io])

            def step(q: Any, sums: list[list[Any]]) -> list[list[Any]]:
                block = builder.mul(builder.ashr(q, i64(4)), plane)
                at = builder.add(block, builder.and_(q, i64(BLOCK - 1)))
                row = builder.mul(q, ldw)
                weights = [
                    load_vector(builder, w, builder.add(row, i64(h * LANES))) for h in range(halves)
                ]
                updated = []
                for i in range(rows):
                    value = builder.load(builder.gep(x, [builder.add(at, i64(BLOCK * i))]))
                    spread = splat(builder, value, VECTOR)
                    updated.append([fma(builder, spread, v, s) for v, s in zip(weights, sums[i])])
                return updated

            sums = summing_loop(builder, depth, 1, (rows, halves), step)
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
_tile_pairs = _tile_kernel(12, 2)
_tile_single = _tile_kernel(24, 1)
SLACK = 24  # positions past the last, read by a last partial tile


@numba.njit(nogil=True, boundscheck=False)
def blocked_forward(xb, wt, outb, lo, hi):
    """``outb[n] = w @ x[n]`` for the images lo..hi in the blocked layout: xb (N,
    C / 16, P + SLACK, 16), wt = w^T (C, F), outb (N, F / 16, P + SLACK, 16); C
    and F multiples of 16."""
    blocks, padded = xb.shape[1], xb.shape[2]
    channels, filters = wt.shape
    plane = padded * BLOCK
    positions = padded - SLACK
    pairs = filters // (2 * BLOCK)
    x, w, out = xb.ctypes, wt.ctypes, outb.ctypes
    for n in range(lo, hi):
        x_at, out_at = n * blocks * plane, n * (filters // BLOCK) * plane
        for f in range(pairs):
            for p in range(0, positions, 12):
                _tile_pairs(
                    channels, x, x_at + p * BLOCK, plane, w, 2 * f * BLOCK, filters,
                    out, out_at + 2 * f * plane + p * BLOCK, min(12, positions - p),
                )  # fmt: skip
        if filters % (2 * BLOCK):
            f = 2 * pairs
            for p in range(0, positions, 24):
                _tile_single(
                    channels, x, x_at + p * BLOCK, plane, w, f * BLOCK, filters,
                    out, out_at + f * plane + p * BLOCK, min(24, positions - p),
                )  # fmt: skip


@intrinsic
def _outer_tile(typingctx, depth, g, ig, x, ix, out, io, ldo, add):  # type: ignore[no-untyped-def]
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


@numba.njit(nogil=True, boundscheck=False)
def blocked_weight_grad(gb, xb, dw, lo, hi):
    """``dw (F, C) = sum over the images lo..hi of g[n] @ x[n]^T`` in the blocked
    layout: gb (N, F / 16, P + SLACK, 16), xb (N, C / 16, P + SLACK, 16); F and
    C multiples of 16."""
    filters, channels = dw.shape
    padded = gb.shape[2]
    plane = padded * BLOCK
    positions = padded - SLACK
    g, x, out = gb.ctypes, xb.ctypes, dw.ctypes
    for f in range(filters // BLOCK):
        for c in range(channels // BLOCK):
            for n in range(lo, hi):
                g_at = (n * (filters // BLOCK) + f) * plane
                x_at = (n * (channels // BLOCK) + c) * plane
                at = f * BLOCK * channels + c * BLOCK
                _outer_tile(positions, g, g_at, x, x_at, out, at, channels, n > lo)


def blocked(a: np.ndarray) -> np.ndarray:
    """``a`` (N, C, 1, H, W) in the blocked layout (N, C / 16, H W + SLACK, 16)."""
    n, c = a.shape[:2]
    p = a[0, 0].size
    out = np.zeros((n, c // BLOCK, p + SLACK, BLOCK), a.dtype)
    out[:, :, :p] = a.reshape(n, c // BLOCK, BLOCK, p).transpose(0, 1, 3, 2)
    return out


MODES = ("forward", "data gradient", "weight gradient")


def routes(
    kernels: Any, rng: Any, layer: tuple, mode: str
) -> tuple[dict[str, Callable[[], None]], Callable[[], None]]:
    """Each route's call computing ``mode`` of the 1x1 ``layer`` (channels,
    filters, size) at B=8 on random operands (two threads, four images each),
    and a check that they agree. The data gradient is the forward's tile with
    ``w`` itself where the forward takes ``w^T``; the weight gradient is each
    thread's sum over its images (a partial per thread, for both routes)."""
    channels, filters, size = layer
    x = rng.standard_normal((8, channels, 1, size, size), dtype=np.float32)
    g = rng.standard_normal((8, filters, 1, size, size), dtype=np.float32)
    w = rng.standard_normal((filters, channels, 1, 1, 1), dtype=np.float32)
    halves = [(0, 4), (4, 8)]
    one, no_bias, no_pad = (1, 1, 1), np.zeros(0, np.float32), (0, 0, 0)
    if mode == "weight gradient":
        parts = np.zeros((2, filters, channels, 1, 1, 1), np.float32)
        parts_b = np.zeros((2, filters, channels), np.float32)
        gb, xb = blocked(g), blocked(x)
        plain = [
            (g, x, parts[k], lo, hi, 1, one, one, one, no_pad) for k, (lo, hi) in enumerate(halves)
        ]
        probe = [(gb, xb, parts_b[k], lo, hi) for k, (lo, hi) in enumerate(halves)]
        kernel, probe_kernel = kernels.lib_conv_weight_grad, blocked_weight_grad

        def check() -> None:
            want = parts.sum(axis=0).reshape(filters, channels)
            scale = np.abs(want).max()
            np.testing.assert_allclose(parts_b.sum(axis=0), want, rtol=1e-4, atol=1e-4 * scale)

    else:
        gradient = mode == "data gradient"
        a = g if gradient else x
        matrix = w.reshape(filters, channels)
        if not gradient:
            matrix = np.ascontiguousarray(matrix.T)
        out = np.empty((8, matrix.shape[1], 1, size, size), np.float32)
        ab = blocked(a)
        outb = np.zeros((8, matrix.shape[1] // BLOCK) + ab.shape[2:], np.float32)
        plain = [(a, w, no_bias, out, lo, hi, 1, one, one, one, no_pad) for lo, hi in halves]
        probe = [(ab, matrix, outb, lo, hi) for lo, hi in halves]
        kernel = kernels.lib_conv_data_grad if gradient else kernels.lib_conv_forward
        probe_kernel = blocked_forward

        def check() -> None:
            got = outb[:, :, : size * size].transpose(0, 1, 3, 2).reshape(out.shape)
            np.testing.assert_allclose(got, out, rtol=1e-4, atol=1e-4 * np.abs(out).max())

    def current() -> None:
        with blas_alone():
            threads.run(kernel, plain)

    return {"current": current, "blocked": lambda: threads.run(probe_kernel, probe)}, check


def seconds(call: Callable[[], None], flush: np.ndarray | None) -> float:
    """The wall time of ``call()``, after writing ``flush`` (if given) first."""
    if flush is not None:
        flush[:] = 1  # evict the operands: the layer as a training step meets it
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    """Print the table: each layer's routes, warm and cold, medians of the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    memory.keep_freed_memory()
    kernels = disk_cache.load(LOWERINGS["Convolution"].kernels.strip())
    rng = np.random.default_rng(0)
    flush = np.empty(64 << 20, np.uint8)
    print("| 1x1 layer, B=8 | current, warm | blocked, warm | current, cold | blocked, cold |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        for layer in SHAPES:
            calls, check = routes(kernels, rng, layer, mode)
            for call in calls.values():  # compile, and fault the pages in
                call()
            check()
            times: dict[tuple[str, bool], list[float]] = {}
            for _ in range(args.rounds):
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


if __name__ == "__main__":
    main()
