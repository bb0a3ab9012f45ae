"""1x1 convolutions by the current route against a channel-blocked probe.

B=8, forward and data gradient, in one process: what a layout pass for issue
17 would buy, measured before anyone builds it.

The current route multiplies ``w (F, C) @ x[n] (C, P)`` per image on numpy's
OpenBLAS (the data gradient ``w^T @ g[n]``), images split over the backend's
two threads (``lib_conv_forward``, ``lib_conv_data_grad``).
The probe keeps the images as ``(C / 16, P, 16)``: 16 channels innermost, so a
register tile of 12 positions reads 12 x 16 consecutive floats per block of
channels (one stream per block of 16 channels, where the plain layout is one
per channel and a GEMM first copies the image into packed panels). Each tile
sums 12 positions x 32 filters (or 24 x 16) in 24 vector registers over every
channel, from sgemm.py's vector helpers, and stores into an output of the same
layout. The conversions between layouts are not timed: in a network the layout
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


def blocked(a: np.ndarray) -> np.ndarray:
    """``a`` (N, C, 1, H, W) in the blocked layout (N, C / 16, H W + SLACK, 16)."""
    n, c = a.shape[:2]
    p = a[0, 0].size
    out = np.zeros((n, c // BLOCK, p + SLACK, BLOCK), a.dtype)
    out[:, :, :p] = a.reshape(n, c // BLOCK, BLOCK, p).transpose(0, 1, 3, 2)
    return out


def routes(
    kernels: Any, a: np.ndarray, w: np.ndarray, gradient: bool
) -> tuple[dict, Callable[[], None]]:
    """Each route's call computing the layer ``w`` over ``a`` (two threads, four
    images each), and a check that they agree: the forward of ``a`` the data, or
    with ``gradient`` the data gradient of ``a`` the output's gradient (the same
    tile, with ``w`` itself where the forward takes ``w^T``)."""
    filters, channels = w.shape[:2]
    matrix = w.reshape(filters, channels)
    if not gradient:
        matrix = np.ascontiguousarray(matrix.T)
    out = np.empty((a.shape[0], matrix.shape[1]) + a.shape[2:], np.float32)
    ab = blocked(a)
    outb = np.zeros((a.shape[0], matrix.shape[1] // BLOCK) + ab.shape[2:], np.float32)
    halves = [(0, 4), (4, 8)]
    one, no_bias = (1, 1, 1), np.zeros(0, np.float32)
    plain = [(a, w, no_bias, out, lo, hi, 1, one, one, one, (0, 0, 0)) for lo, hi in halves]
    probe = [(ab, matrix, outb, lo, hi) for lo, hi in halves]
    kernel = kernels.lib_conv_data_grad if gradient else kernels.lib_conv_forward

    def current() -> None:
        with blas_alone():
            threads.run(kernel, plain)

    def check() -> None:
        positions = a[0, 0].size
        got = outb[:, :, :positions].transpose(0, 1, 3, 2).reshape(out.shape)
        np.testing.assert_allclose(got, out, rtol=1e-4, atol=1e-4 * np.abs(out).max())

    return {"current": current, "blocked": lambda: threads.run(blocked_forward, probe)}, check


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
    for gradient in (False, True):
        for channels, filters, size in SHAPES:
            a = rng.standard_normal(
                (8, filters if gradient else channels, 1, size, size), dtype=np.float32
            )
            w = rng.standard_normal((filters, channels, 1, 1, 1), dtype=np.float32)
            calls, check = routes(kernels, a, w, gradient)
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
            what = "data gradient" if gradient else "forward"
            label = f"{channels} -> {filters} {size}x{size}, {what}"
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
