"""A/B timing of two versions of compiler/backends/numba/vmath.py.

Each version is loaded from its own file as a separate module, so both run in
one process: a numba loop like ``tests/test_vmath_ulp.py``'s ``_kernel``
(``parallel=False``, no fast-math flags) calls ``vm.<name>`` on every element,
and the versions' runs alternate; the table gives medians (ms) and their ratio.

    git show d91064f^:compiler/backends/numba/vmath.py > /tmp/vmath_old.py
    # before the backends/ move (e.g. 3c9210f) the file was compiler/lower/vmath.py
    python bench/vmath_ab.py /tmp/vmath_old.py compiler/backends/numba/vmath.py \
        --dtype float32 --sizes 1000000 10000000 [--names exp log ...] [--wide]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from types import ModuleType

import numba
import numpy as np

NAMES = ["exp", "log", "tanh", "sigmoid", "expm1", "log1p", "softplus", "sin", "cos"]
# input ranges where the functions are used (log and log1p: their domains)
RANGES = {"log": (0.0, 100.0), "log1p": (-0.9, 10.0), "expm1": (-5.0, 5.0)}


def load(path: str, tag: str) -> ModuleType:
    """vmath.py at ``path`` as a module of its own named ``vmath_<tag>``."""
    spec = importlib.util.spec_from_file_location(f"vmath_{tag}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel(vm: ModuleType, name: str, wide: bool) -> Callable:
    fn = getattr(vm, name)
    if wide:  # as generated kernels are (codegen.py): 512-bit vectors where the CPU has them
        prefer = vm.prefer_512_bit_vectors

        @numba.njit(error_model="numpy", fastmath=vm.FASTMATH)
        def run_wide(x, out):  # type: ignore[no-untyped-def]
            prefer()
            for i in range(x.shape[0]):
                out[i] = fn(x[i])

        return run_wide

    @numba.njit(error_model="numpy", fastmath=vm.FASTMATH)
    def run(x, out):  # type: ignore[no-untyped-def]
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7])
    parser.add_argument("--names", nargs="+", default=NAMES)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--wide", action="store_true", help="kernels prefer 512-bit vectors")
    args = parser.parse_args()
    modules = [load(args.a, "a"), load(args.b, "b")]
    dtype = np.dtype(args.dtype)
    wide = ", 512-bit" if args.wide else ""
    print(f"{'function':10} {'n':>9} {'A ms':>8} {'B ms':>8} {'B/A':>6}  (dtype {dtype}{wide})")
    for name in args.names:
        kernels = [kernel(vm, name, args.wide) for vm in modules]
        for n in args.sizes:
            lo, hi = RANGES.get(name, (-10.0, 10.0))
            x = np.random.default_rng(0).uniform(lo, hi, n).astype(dtype)
            outs = [np.empty_like(x), np.empty_like(x)]
            for k, out in zip(kernels, outs):
                k(x, out)
            times: list[list[float]] = [[], []]
            for _ in range(args.repeats):
                for j in (0, 1):
                    t0 = time.perf_counter()
                    kernels[j](x, outs[j])
                    times[j].append(time.perf_counter() - t0)
            a, b = (float(np.median(t)) * 1e3 for t in times)
            print(f"{name:10} {n:9d} {a:8.2f} {b:8.2f} {b / a:6.2f}", flush=True)


if __name__ == "__main__":
    main()
