"""Register tiles on a channel-blocked layout, and the table their probes print.

The probes (``blocked_1x1_ab.py``, ``blocked_3x3_ab.py``) measure what a
layout pass for issue 17 would buy: images kept as ``(C / 16, positions, 16)``,
16 channels innermost, so that a tile reads one position's 16 channels as one
vector and a block of channels as one stream. This module holds what they
share: the library's tiles (``compiler/backends/numba/blocked.py``, which
grew from these probes: ``tile_pairs``/``tile_single`` summing positions by
filters, ``outer_tile`` summing outer products for a weight gradient,
``pack`` for the weights), and the rounds that time the routes against each
other.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # the bench's two threads
    os.environ.setdefault(_name, "2")

import numpy as np  # noqa: E402

from symgrad_compiler.backends.numba import disk_cache, memory  # noqa: E402
from symgrad_compiler.backends.numba.blocked import (  # noqa: E402, F401  (the probes' tiles)
    BLOCK,
    outer_tile,
    pack,
    tile_pairs,
    tile_single,
)
from symgrad_compiler.backends.numba.lowerings import LOWERINGS  # noqa: E402

Routes = tuple[dict[str, Callable[[], None]], Callable[[], None]]


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
