"""Few rows times an untransposed weight, ``x @ w`` with ``x`` of at most 8 rows (a
Dense layer's input gradient at a small batch), by each route that has taken it,
in one process: narrow.py's row-by-row product (``narrow.product_untransposed``,
the route from 16 MB of weight on), sgemm.py's few-rows passes
(``sgemm.product`` in passes of ``FEW_ROWS_BLOCK``, the route before it) and
numpy's OpenBLAS. Rounds alternate the routes so that all see the same machine;
the table gives each route's median over rounds (ms) and its ratio to OpenBLAS.

    python -m bench.few_rows_ab [--rounds 15]

The shapes are the classifiers' input gradients of AlexNet and VGG-11 at B=8
and a few around the threshold.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from symgrad_compiler.backends.numba import narrow, sgemm

# (rows, inner, columns): x (rows, inner) times w (inner, columns)
SHAPES = [
    (8, 4096, 25088),  # VGG-11's first classifier layer
    (8, 4096, 9216),  # AlexNet's first classifier layer
    (8, 4096, 4096),  # their second
    (8, 4096, 1000),  # 16 MB: the smallest weight taken
    (8, 2048, 2048),
    (4, 4096, 4096),
]


def routes(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> dict[str, Callable[[], None]]:
    """Each route's call computing ``out[...] = x @ w``."""
    return {
        "narrow.py rows": lambda: narrow.product_untransposed(x, w, out),
        "sgemm.py few rows": lambda: sgemm.product(x, w, False, out, sgemm.FEW_ROWS_BLOCK),
        "OpenBLAS": lambda: np.dot(x, w, out=out),
    }


def seconds(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    names = list(routes(*[np.zeros((1, 1), np.float32)] * 3))
    print("| x @ w (rows x inner) (inner x columns) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for rows, inner, columns in SHAPES:
        x = rng.standard_normal((rows, inner), dtype=np.float32)
        w = rng.standard_normal((inner, columns), dtype=np.float32)
        out = np.empty((rows, columns), np.float32)
        calls = routes(x, w, out)
        for call in calls.values():  # compile, and fault the pages in
            call()
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                times[name].append(seconds(call))
        medians = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
        blas = medians["OpenBLAS"]
        cells = [f"{medians[name]:.2f} ({blas / medians[name]:.2f}x)" for name in names]
        print(f"| ({rows} x {inner}) ({inner} x {columns}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
