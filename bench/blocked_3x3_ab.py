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
nine taps and every channel in 24 vector registers (``blocked_tiles.py``: a
loop over the taps around the 1x1 probe's loop over the channels, the weights
packed by blocks of 16 filters). It stores into
the same padded layout, which is what the next 3x3 layer reads. The data
gradient is the same tile on the padded gradient with the flipped, transposed
weights; the weight gradient sums 16 x 16 outer products over the positions,
one tap's offset into the image at a time (the gradient's zero border keeps
the padding's columns out of the sums). Conversions between layouts are not
timed (a network would carry the layout from layer to layer). Rounds
alternate the routes, warm and after 64 MB written elsewhere (cold); medians,
ms, and the probe's speed-up.

    python -m bench.blocked_3x3_ab [--rounds 9]
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
from symgrad_compiler.backends.numba.lowerings import conv

TAPS = 9
SLACK = 32  # positions past the padded plane, read by a last partial tile

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


@numba.njit(nogil=True, boundscheck=False)
def blocked_conv(xb, wt, outb, offsets, width, lo, hi):
    """The 3x3 stride-1 convolution of the images lo..hi in the padded blocked
    layout: xb (N, C / 16, (H + 2) width + SLACK, 16) with ``width`` = W + 2 and
    a zero border, wt (F / 16, 9 C, 16) (the library's ``pack``), outb (N, F / 16, same
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
    no_bias = np.zeros(2 * BLOCK, np.float32)
    zero = no_bias.ctypes
    for n in range(lo, hi):
        x_at, out_at = n * blocks * plane, n * (filters // BLOCK) * plane + shift
        for f in range(pairs):
            for p in range(0, positions, 12):
                tile_pairs(
                    TAPS, taps, channels, x, x_at + p * BLOCK, plane, w, 2 * f * weights_block,
                    BLOCK, zero, 0, out, out_at + 2 * f * plane + p * BLOCK, plane,
                    min(12, positions - p),
                )  # fmt: skip
        if filters % (2 * BLOCK):
            f = 2 * pairs
            for p in range(0, positions, 24):
                tile_single(
                    TAPS, taps, channels, x, x_at + p * BLOCK, plane, w, f * weights_block,
                    BLOCK, zero, 0, out, out_at + f * plane + p * BLOCK, plane,
                    min(24, positions - p),
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
                    outer_tile(
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


def tap_offsets(width: int) -> np.ndarray:
    """Tap t = (ky, kx)'s offset in floats in a padded plane of row ``width``."""
    return np.array([(ky * width + kx) * BLOCK for ky in range(3) for kx in range(3)], np.int64)


MODES = ("forward", "data gradient", "weight gradient")
GEOMETRY = dict(kernel=(3, 3), stride=(1, 1), dilate=(1, 1), pad=(1, 1), num_group=1)


def routes(kernels: Any, rng: Any, layer: tuple, mode: str) -> Routes:
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
    wt = pack(w, transposed=gradient)  # the data gradient: w flipped and transposed
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
    print_table("3x3", SHAPES, args.modes.split(","), routes, args.rounds)


if __name__ == "__main__":
    main()
