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
channel, its weights packed by blocks of 16 filters, and stores into an output
of the same layout; the weight gradient sums 16 x 16 outer products of a block
of filters and one of channels over the positions (the tiles:
``blocked_tiles.py``). The conversions between layouts are not timed: in a
network the layout would be carried from layer to layer (the elementwise
loops between them writing it), which is the project this measures. Rounds
alternate the routes, warm and after 64 MB written elsewhere (cold); medians,
ms, and the probe's speed-up.

    python -m bench.blocked_1x1_ab [--rounds 9]
"""

from __future__ import annotations

import argparse
from typing import Any

import numba
import numpy as np

from bench.blocked_tiles import (
    BLOCK,
    Routes,
    outer_tile,
    pack,
    print_table,
    tile_pairs,
    tile_single,
)
from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.lowerings.conv import blas_alone

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
SLACK = 24  # positions past the last, read by a last partial tile
ONE_TAP = np.zeros(1, np.int64)  # a 1x1 convolution's only offset


@numba.njit(nogil=True, boundscheck=False)
def blocked_forward(xb, wt, outb, lo, hi):
    """``outb[n] = w @ x[n]`` for the images lo..hi in the blocked layout: xb (N,
    C / 16, P + SLACK, 16), wt = w^T packed (F / 16, C, 16), outb (N, F / 16, P
    + SLACK, 16); C and F multiples of 16."""
    blocks, padded = xb.shape[1], xb.shape[2]
    channels, filters = wt.shape[1], wt.shape[0] * BLOCK
    plane = padded * BLOCK
    positions = padded - SLACK
    pairs = filters // (2 * BLOCK)
    weights_block = channels * BLOCK
    x, w, out, tap = xb.ctypes, wt.ctypes, outb.ctypes, ONE_TAP.ctypes
    no_bias = np.zeros(2 * BLOCK, np.float32)
    zero = no_bias.ctypes
    for n in range(lo, hi):
        x_at, out_at = n * blocks * plane, n * (filters // BLOCK) * plane
        for f in range(pairs):
            for p in range(0, positions, 12):
                tile_pairs(
                    1, tap, channels, x, x_at + p * BLOCK, plane, w, 2 * f * weights_block,
                    BLOCK, zero, 0, out, out_at + 2 * f * plane + p * BLOCK, plane,
                    min(12, positions - p),
                )  # fmt: skip
        if filters % (2 * BLOCK):
            f = 2 * pairs
            for p in range(0, positions, 24):
                tile_single(
                    1, tap, channels, x, x_at + p * BLOCK, plane, w, f * weights_block,
                    BLOCK, zero, 0, out, out_at + f * plane + p * BLOCK, plane,
                    min(24, positions - p),
                )  # fmt: skip


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
                outer_tile(positions, g, g_at, x, x_at, out, at, channels, n > lo)


def blocked(a: np.ndarray) -> np.ndarray:
    """``a`` (N, C, 1, H, W) in the blocked layout (N, C / 16, H W + SLACK, 16)."""
    n, c = a.shape[:2]
    p = a[0, 0].size
    out = np.zeros((n, c // BLOCK, p + SLACK, BLOCK), a.dtype)
    out[:, :, :p] = a.reshape(n, c // BLOCK, BLOCK, p).transpose(0, 1, 3, 2)
    return out


MODES = ("forward", "data gradient", "weight gradient")


def routes(kernels: Any, rng: Any, layer: tuple, mode: str) -> Routes:
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
        matrix = pack(w.reshape(filters, channels, 1, 1), transposed=gradient)
        out = np.empty((8, matrix.shape[0] * BLOCK, 1, size, size), np.float32)
        ab = blocked(a)
        outb = np.zeros((8, matrix.shape[0]) + ab.shape[2:], np.float32)
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


def main() -> None:
    """Print the table: each layer's routes, warm and cold, medians of the rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    print_table("1x1", SHAPES, args.modes.split(","), routes, args.rounds)


if __name__ == "__main__":
    main()
