"""3x3 convolutions (stride 1, padding 1) by the current routes against a
channel-blocked probe.

B=8, forward, data gradient and weight gradient, in one process: whether the
layout that bench/blocked_1x1_ab.py measured for 1x1 convolutions can carry
through the 3x3 layers between them too, which a layout pass for issue 17
needs (a conversion around every 3x3 layer would cost more than the 1x1
layers gain).

The current routes are the step runner's (``lowerings.conv``: Winograd rows,
the wide loops, images or filters over the backend's two threads). The probe
keeps each image as ``(C / 16, (H + 2) (W + 2) + SLACK, 16)``: 16 channels
innermost and the zero border of the padding stored, so that a tap (ky, kx)
is one offset, ``ky (W + 2) + kx`` positions, for every output position. An
output row is then computed over the padded width too (the two extra
positions a row land on the next layer's border, and are zeroed after), and
a register tile of 12 positions by 32 filters (or 24 by 16) sums over the
nine taps and every channel in 24 vector registers (blocked_1x1_ab.py's tile
with a loop over the taps around its loop over the channels). It stores into
the same padded layout, which is what the next 3x3 layer reads. The data
gradient is the same tile on the padded gradient with the flipped, transposed
weights; the weight gradient sums 16 x 16 outer products over the positions,
one tap's offset into the image at a time (the gradient's zero border keeps
the padding's columns out of the sums). Conversions between layouts are not
timed (a network would carry the layout from layer to layer). Rounds
alternate the routes, warm and after 64 MB written elsewhere (cold); medians,
ms, and the probe's speed-up.

    python -m bench.blocked_3x3_ab [--rounds 9]

Not a route of the library: the tile lives here, with this measurement.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # the bench's two threads
    os.environ.setdefault(_name, "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import types  # noqa: E402
from numba.extending import intrinsic  # noqa: E402

from bench.blocked_1x1_ab import BLOCK, _outer_tile, seconds  # noqa: E402
from symgrad_compiler.backends.numba import disk_cache, memory, threads  # noqa: E402
from symgrad_compiler.backends.numba.lowerings import LOWERINGS, conv  # noqa: E402
from symgrad_compiler.backends.numba.planes import splat  # noqa: E402
from symgrad_compiler.backends.numba.sgemm import (  # noqa: E402
    FLOAT_POINTER,
    VECTOR,
    fma,
    load_vector,
    summing_loop,
    vector_at,
)

TAPS = 9
SLACK = 32  # positions past the padded plane, read by a last partial tile
INT_POINTER = types.CPointer(types.int64)

# (channels, filters, height = width), all 3x3 stride 1 padding 1: ResNet-18's
# four stages, SqueezeNet's expand layers, VGG-11's second layer, InceptionV3's
# 64 -> 96 35x35
SHAPES = [
    (64, 64, 56),
    (128, 128, 28),
    (256, 256, 14),
    (512, 512, 7),
    (16, 64, 54),
    (32, 128, 54),
    (64, 256, 27),
    (64, 128, 112),
    (64, 96, 35),
]


def _taps_tile_kernel(rows: int, halves: int) -> Any:
    """An intrinsic ``tile(taps, offsets, depth, x, ix, plane, w, iw, out, io,
    filled)``: ``out`` at ``io`` (blocked: filter block h at ``h * plane``,
    position i at ``16 i``) set to the sum over ``taps`` taps t and ``depth``
    channels q of x's ``rows`` positions at ``ix + offsets[t]`` (blocked:
    channel q at ``(q // 16) * plane + q % 16``) times the weights of ``halves``
    blocks of 16 filters from ``iw`` (packed: block h's row t depth + q at ``(h
    taps depth + t depth + q) 16``), in ``rows x halves`` vector registers;
    only the first ``filled`` positions are stored. float32 pointers (offsets:
    int64), 64-bit offsets and counts."""

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
            # a block of 16 filters' weights, contiguous: a column block of a (9 C,
            # F) matrix, read row by row, strode F floats, a power of two that
            # mapped every row to the same few cache sets (512 -> 512 7x7 at a
            # quarter of the 64-channel layers' rate)
            block_of_weights = builder.mul(builder.mul(taps, depth), i64(BLOCK))

            def tap(t: Any, outer: list[list[Any]]) -> list[list[Any]]:
                shifted = builder.gep(x, [builder.load(builder.gep(offsets, [t]))])
                first_row = builder.mul(t, depth)

                def step(q: Any, sums: list[list[Any]]) -> list[list[Any]]:
                    block = builder.mul(builder.ashr(q, i64(4)), plane)
                    at = builder.add(block, builder.and_(q, i64(BLOCK - 1)))
                    row = builder.mul(builder.add(first_row, q), i64(BLOCK))
                    weights = [row]
                    for _ in range(halves - 1):
                        weights.append(builder.add(weights[-1], block_of_weights))
                    weights = [load_vector(builder, w, at_row) for at_row in weights]
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


# 24 sums of 16 lanes in registers, as blocked_1x1_ab.py's tiles
_tile_pairs = _taps_tile_kernel(12, 2)
_tile_single = _taps_tile_kernel(24, 1)


@numba.njit(nogil=True, boundscheck=False)
def blocked_conv(xb, wt, outb, offsets, width, lo, hi):
    """The 3x3 stride-1 convolution of the images lo..hi in the padded blocked
    layout: xb (N, C / 16, (H + 2) width + SLACK, 16) with ``width`` = W + 2 and
    a zero border, wt (F / 16, 9 C, 16) (:func:`packed`), outb (N, F / 16, same
    plane, 16), written inside its border (the border left as it is, zero);
    ``offsets`` the taps' offsets in floats. C and F multiples of 16."""
    blocks, padded = xb.shape[1], xb.shape[2]
    channels, filters = wt.shape[1] // TAPS, wt.shape[0] * BLOCK
    weights_block = wt.shape[1] * BLOCK
    plane = padded * BLOCK
    height = (padded - SLACK) // width - 2
    positions = height * width  # every output row over the padded width
    shift = (width + 1) * BLOCK  # an output position's place in the padded plane
    pairs = filters // (2 * BLOCK)
    x, w, out, taps = xb.ctypes, wt.ctypes, outb.ctypes, offsets.ctypes
    for n in range(lo, hi):
        x_at, out_at = n * blocks * plane, n * (filters // BLOCK) * plane + shift
        for f in range(pairs):
            for p in range(0, positions, 12):
                _tile_pairs(
                    TAPS, taps, channels, x, x_at + p * BLOCK, plane, w, 2 * f * weights_block,
                    out, out_at + 2 * f * plane + p * BLOCK, min(12, positions - p),
                )  # fmt: skip
        if filters % (2 * BLOCK):
            f = 2 * pairs
            for p in range(0, positions, 24):
                _tile_single(
                    TAPS, taps, channels, x, x_at + p * BLOCK, plane, w, f * weights_block,
                    out, out_at + f * plane + p * BLOCK, min(24, positions - p),
                )  # fmt: skip
        # each row's two positions past the image fell on the border: zero again
        for b in range(filters // BLOCK):
            for y in range(1, height + 1):
                outb[n, b, y * width + width - 1] = 0
                outb[n, b, (y + 1) * width] = 0


@numba.njit(nogil=True, boundscheck=False)
def blocked_weight_grad(gb, xb, dw, offsets, width, lo, hi):
    """``dw (9, F, C)`` = the sum over the images lo..hi of each tap's outer
    products of the gradient and the image shifted by that tap, both in the
    padded blocked layout (the gradient's border zero); F and C multiples of 16."""
    filters, channels = dw.shape[1], dw.shape[2]
    padded = gb.shape[2]
    plane = padded * BLOCK
    height = (padded - SLACK) // width - 2
    positions = height * width
    shift = (width + 1) * BLOCK
    g, x, out = gb.ctypes, xb.ctypes, dw.ctypes
    for f in range(filters // BLOCK):
        for c in range(channels // BLOCK):
            for n in range(lo, hi):
                g_at = (n * (filters // BLOCK) + f) * plane + shift
                x_at = (n * (channels // BLOCK) + c) * plane
                for t in range(TAPS):
                    at = (t * filters + f * BLOCK) * channels + c * BLOCK
                    _outer_tile(
                        positions, g, g_at, x, x_at + offsets[t], out, at, channels, n > lo
                    )  # fmt: skip


def padded_blocked(a: np.ndarray) -> np.ndarray:
    """``a`` (N, C, H, W) in the padded blocked layout (N, C / 16, (H + 2) (W +
    2) + SLACK, 16), zero outside the image."""
    n, c, h, w = a.shape
    out = np.zeros((n, c // BLOCK, (h + 2) * (w + 2) + SLACK, BLOCK), a.dtype)
    grid = out[:, :, : (h + 2) * (w + 2)].reshape(n, c // BLOCK, h + 2, w + 2, BLOCK)
    grid[:, :, 1 : h + 1, 1 : w + 1] = a.reshape(n, c // BLOCK, BLOCK, h, w).transpose(
        0, 1, 3, 4, 2
    )
    return out


def unblocked(b: np.ndarray, h: int, w: int) -> np.ndarray:
    """The image part of a padded blocked ``b`` as (N, C, H, W)."""
    n, blocks = b.shape[:2]
    grid = b[:, :, : (h + 2) * (w + 2)].reshape(n, blocks, h + 2, w + 2, BLOCK)
    inner = grid[:, :, 1 : h + 1, 1 : w + 1]
    return inner.transpose(0, 1, 4, 2, 3).reshape(n, blocks * BLOCK, h, w)


def packed(matrix: np.ndarray) -> np.ndarray:
    """A (9 C, F) weight matrix as F / 16 contiguous blocks (F / 16, 9 C, 16)."""
    rows, filters = matrix.shape
    return np.ascontiguousarray(matrix.reshape(rows, filters // BLOCK, BLOCK).transpose(1, 0, 2))


def tap_offsets(width: int) -> np.ndarray:
    """Tap t = (ky, kx)'s offset in floats in a padded plane of row ``width``."""
    return np.array([(ky * width + kx) * BLOCK for ky in range(3) for kx in range(3)], np.int64)


MODES = ("forward", "data gradient", "weight gradient")
GEOMETRY = dict(kernel=(3, 3), stride=(1, 1), dilate=(1, 1), pad=(1, 1), num_group=1)


def routes(
    kernels: Any, rng: Any, layer: tuple, mode: str
) -> tuple[dict[str, Callable[[], None]], Callable[[], None]]:
    """Each route's call computing ``mode`` of the 3x3 ``layer`` (channels,
    filters, size) at B=8 on random operands, and a check that they agree. The
    probe runs two threads, four images each (the weight gradient: a partial
    sum a thread, added after, as the current route does)."""
    channels, filters, size = layer
    x = rng.standard_normal((8, channels, size, size), dtype=np.float32)
    g = rng.standard_normal((8, filters, size, size), dtype=np.float32)
    w = rng.standard_normal((filters, channels, 3, 3), dtype=np.float32)
    width = size + 2
    offsets = tap_offsets(width)
    halves = [(0, 4), (4, 8)]
    if mode == "weight gradient":
        gb, xb = padded_blocked(g), padded_blocked(x)
        parts = np.zeros((2, TAPS, filters, channels), np.float32)
        probe_calls = [
            (gb, xb, parts[k], offsets, width, lo, hi) for k, (lo, hi) in enumerate(halves)
        ]
        result: dict[str, Any] = {}

        def current() -> None:
            result["w"] = conv._conv_weight_grad(kernels.lib_conv_weight_grad, g, x, w, **GEOMETRY)

        def probe() -> None:
            threads.run(blocked_weight_grad, probe_calls)
            np.add(parts[0], parts[1], out=parts[0])

        def check() -> None:
            # (the check runs once, right after one call of each: parts[0] holds the sum)
            want = result["w"].transpose(2, 3, 0, 1).reshape(TAPS, filters, channels)
            np.testing.assert_allclose(
                parts[0], want, rtol=1e-4, atol=1e-4 * np.abs(want).max()
            )  # fmt: skip

        return {"current": current, "blocked": probe}, check

    gradient = mode == "data gradient"
    a = g if gradient else x
    if gradient:  # dx = conv(g, w flipped, filters and channels swapped)
        taps_first = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)  # (3, 3, F, C)
    else:
        taps_first = w.transpose(2, 3, 1, 0)  # (3, 3, C, F)
    wt = packed(taps_first.reshape(TAPS * a.shape[1], -1))
    ab = padded_blocked(a)
    outb = np.zeros((8, wt.shape[0]) + ab.shape[2:], np.float32)
    probe_calls = [(ab, wt, outb, offsets, width, lo, hi) for lo, hi in halves]
    result = {}

    def current() -> None:
        if gradient:
            result["out"] = conv._conv_data_grad(kernels.lib_conv_data_grad, g, w, x, **GEOMETRY)
        else:
            result["out"] = conv._convolution(kernels.lib_conv_forward, x, w, **GEOMETRY)

    def check() -> None:
        want = result["out"]
        np.testing.assert_allclose(
            unblocked(outb, size, size), want, rtol=1e-4, atol=1e-4 * np.abs(want).max()
        )
        border = outb.copy()
        unblocked_view = border[:, :, : width * width].reshape(8, -1, width, width, BLOCK)
        unblocked_view[:, :, 1 : size + 1, 1 : size + 1] = 0
        assert not border.any(), "the probe wrote into the border"

    return {"current": current, "blocked": lambda: threads.run(blocked_conv, probe_calls)}, check


def main() -> None:
    """Print the table: each layer's routes, warm and cold, medians of the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    memory.keep_freed_memory()
    kernels = disk_cache.load(LOWERINGS["Convolution"].kernels.strip())
    rng = np.random.default_rng(0)
    flush = np.empty(64 << 20, np.uint8)
    print("| 3x3 layer, B=8 | current, warm | blocked, warm | current, cold | blocked, cold |")
    print("|---|---|---|---|---|")
    for mode in args.modes.split(","):
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
