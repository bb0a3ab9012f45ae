"""Micro-benchmark of compiler/backends/numba/vmath.py against numpy and numba's math.*.

For each function and dtype (float32, float64), 10**6 elements, one thread:
median wall time of a numba loop calling ``vm.<name>``, of the numpy ufunc
writing into a preallocated output, and of a numba loop calling the
``math``/``np`` scalar function numba provides.  Results are checked against
numpy (max ulp) before timing.

    PYTHONPATH=. python bench/bench_vmath.py [names...]
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from symgrad_compiler.backends.numba import vmath as vm

N = 10**6
REPEATS = 15


def _logaddexp0(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.logaddexp(x.dtype.type(0), x, out=out)


def _sigmoid_np(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _rsqrt_np(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.sqrt(x, out=out)
    return np.reciprocal(out, out=out)


def _erf_np(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    from scipy.special import erf as scipy_erf  # no numpy ufunc; scipy's

    return scipy_erf(x, out=out)


def _math_sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _math_softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# name -> (numpy callable(x, out), numba scalar baseline, input range)
CASES: dict[str, tuple[Callable, Callable, tuple[float, float]]] = {
    "exp": (lambda x, o: np.exp(x, out=o), math.exp, (-80, 80)),
    "expm1": (lambda x, o: np.expm1(x, out=o), math.expm1, (-5, 5)),
    "log": (lambda x, o: np.log(x, out=o), math.log, (0, 100)),
    "log1p": (lambda x, o: np.log1p(x, out=o), math.log1p, (-0.9, 100)),
    "log2": (lambda x, o: np.log2(x, out=o), math.log2, (0, 100)),
    "log10": (lambda x, o: np.log10(x, out=o), math.log10, (0, 100)),
    "tanh": (lambda x, o: np.tanh(x, out=o), math.tanh, (-10, 10)),
    "sigmoid": (_sigmoid_np, _math_sigmoid, (-20, 20)),
    "softplus": (_logaddexp0, _math_softplus, (-20, 20)),
    "sinh": (lambda x, o: np.sinh(x, out=o), math.sinh, (-20, 20)),
    "cosh": (lambda x, o: np.cosh(x, out=o), math.cosh, (-20, 20)),
    "sin": (lambda x, o: np.sin(x, out=o), math.sin, (-100, 100)),
    "cos": (lambda x, o: np.cos(x, out=o), math.cos, (-100, 100)),
    "tan": (lambda x, o: np.tan(x, out=o), math.tan, (-100, 100)),
    "erf": (_erf_np, math.erf, (-4, 4)),
    "sqrt": (lambda x, o: np.sqrt(x, out=o), math.sqrt, (0, 100)),
    "rsqrt": (_rsqrt_np, lambda x: 1.0 / math.sqrt(x), (0.01, 100)),
    "cbrt": (lambda x, o: np.cbrt(x, out=o), np.cbrt, (-100, 100)),
    "arctan": (lambda x, o: np.arctan(x, out=o), math.atan, (-10, 10)),
}


def _loop(fn: Callable) -> Callable:
    """A numba loop applying scalar ``fn``, compiled like generated kernels."""

    @numba.njit(error_model="numpy", fastmath=vm.FASTMATH)
    def kernel(x, out):  # type: ignore[no-untyped-def]
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return kernel


def _median_ms(fn: Callable[[], object]) -> float:
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def _max_ulp(a: np.ndarray, b: np.ndarray) -> float:
    itype = np.int32 if a.dtype == np.float32 else np.int64
    ia, ib = a.view(itype).astype(np.int64), b.view(itype).astype(np.int64)
    ia = np.where(ia < 0, np.iinfo(itype).min - ia, ia)
    ib = np.where(ib < 0, np.iinfo(itype).min - ib, ib)
    return float(np.max(np.abs(ia - ib)))


def main(names: list[str]) -> None:
    print(f"{N:.0e} elements, one thread, median of {REPEATS} runs (ms)")
    print(
        f"{'function':10} {'dtype':8} {'vmath':>8} {'numpy':>8} {'numba math':>11} "
        f"{'vs numpy':>9} {'vec?':>5} {'ulp':>4}"
    )
    rng = np.random.default_rng(0)
    for name in names:
        np_fn, math_fn, (lo, hi) = CASES[name]
        if not isinstance(math_fn, (type(math.exp), np.ufunc)):
            math_fn = numba.njit(math_fn)  # plain Python helper: jit it first
        ours, theirs = _loop(getattr(vm, name)), _loop(math_fn)
        for dtype in (np.float32, np.float64):
            x = rng.uniform(lo, hi, N).astype(dtype)
            out, ref = np.empty_like(x), np.empty_like(x)
            ours(x, out)
            np_fn(x, ref)
            ulp = _max_ulp(out, ref)
            assert ulp <= 4 or name in ("sigmoid", "softplus"), (name, dtype, ulp)
            sig = ours.signatures[-1]
            vectorised = "<4 x" in ours.inspect_llvm(sig) or "<8 x" in ours.inspect_llvm(sig)
            t_ours = _median_ms(lambda ours=ours, x=x, out=out: ours(x, out))
            t_np = _median_ms(lambda np_fn=np_fn, x=x, ref=ref: np_fn(x, ref))
            t_math = _median_ms(lambda theirs=theirs, x=x, ref=ref: theirs(x, ref))
            print(
                f"{name:10} {np.dtype(dtype).name:8} {t_ours:8.3f} {t_np:8.3f} "
                f"{t_math:11.3f} {t_np / t_ours:8.2f}x {('yes' if vectorised else 'no'):>5} "
                f"{ulp:4.0f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
