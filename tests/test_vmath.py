"""Accuracy tests for compiler/backends/numba/vmath.py.

Every function is run inside a numba loop compiled with ``vm.FASTMATH`` (as
generated kernels are) and compared in ulp against a reference:

* float32: the float64 reference rounded to float32 (numpy's float64 ufunc,
  or a long-double formula for functions numpy lacks);
* float64: numpy's float64 ufunc, or a long-double / scipy reference.

Inputs: (a) a dense log-spaced sweep of both signs over the whole float
range, subnormals included; (b) random values in each function's typical
range; (c) special values, whose results must match the reference exactly
when it is nan, inf or a (signed) zero.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pytest

from symgrad_compiler.backends.numba import vmath as vm

LD = np.longdouble


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of representable floats between ``a`` and ``b`` (same dtype).

    +0.0 and -0.0 are 0 apart; two NaNs are 0 apart; NaN vs a number is inf.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
    itype = np.int32 if a.dtype == np.float32 else np.int64

    def ordered(v: np.ndarray) -> np.ndarray:
        i = v.view(itype).astype(np.int64)
        # Negative floats have the sign bit set; map them below zero so that
        # the integer order is the float order.
        sign_bit = np.int64(np.iinfo(itype).min)
        # long double holds every int64 exactly, so the difference is exact.
        return np.where(i < 0, sign_bit - i, i).astype(LD)

    d = np.abs(ordered(a) - ordered(b)).astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    d = np.where(nan_a & nan_b, 0.0, d)
    return np.where(nan_a ^ nan_b, np.inf, d)


def test_ulp_distance() -> None:
    one = np.array([1.0], np.float32)
    assert ulp_distance(one, np.nextafter(one, np.float32(2))) == 1
    assert ulp_distance(np.array([-0.0]), np.array([0.0])) == 0
    tiny = np.array([5e-324])
    assert ulp_distance(-tiny, tiny) == 2
    assert ulp_distance(np.array([np.nan]), np.array([1.0])) == np.inf
    assert ulp_distance(np.array([np.inf]), np.array([np.finfo(np.float64).max])) == 1


# ---------------------------------------------------------------------------
# References and domains
# ---------------------------------------------------------------------------


def _ld_sigmoid(x: np.ndarray) -> np.ndarray:
    x = x.astype(LD)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _erf_reference(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf as scipy_erf

        return scipy_erf(x.astype(np.float64))
    except ImportError:  # pragma: no cover
        return np.vectorize(math.erf)(x.astype(np.float64))


# name -> (reference on float64 / long double input, typical random range)
REFERENCES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[float, float]]] = {
    "exp": (np.exp, (-100, 100)),
    "expm1": (np.expm1, (-5, 5)),
    "log": (np.log, (0, 100)),
    "log1p": (np.log1p, (-1, 10)),
    "log2": (np.log2, (0, 100)),
    "log10": (np.log10, (0, 100)),
    "tanh": (np.tanh, (-10, 10)),
    "sigmoid": (_ld_sigmoid, (-30, 30)),
    "softplus": (lambda x: np.logaddexp(LD(0), x.astype(LD)), (-30, 30)),
    "sinh": (np.sinh, (-20, 20)),
    "cosh": (np.cosh, (-20, 20)),
    "sin": (np.sin, (-100, 100)),
    "cos": (np.cos, (-100, 100)),
    "tan": (np.tan, (-100, 100)),
    "erf": (_erf_reference, (-5, 5)),
    "sqrt": (np.sqrt, (0, 100)),
    "rsqrt": (lambda x: 1 / np.sqrt(x.astype(LD)), (0, 100)),
    "cbrt": (np.cbrt, (-100, 100)),
    "arcsin": (np.arcsin, (-1, 1)),
    "arccos": (np.arccos, (-1, 1)),
    "arctan": (np.arctan, (-100, 100)),
    "arcsinh": (np.arcsinh, (-100, 100)),
    "arccosh": (np.arccosh, (1, 100)),
    "arctanh": (np.arctanh, (-1, 1)),
}
NAMES = sorted(REFERENCES)
DTYPES = [np.float32, np.float64]
MAX_ULP = 4


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The reference result in x's dtype (float32: computed in float64 or
    long double, then rounded once)."""
    with np.errstate(all="ignore"):
        ref = REFERENCES[name][0](x.astype(np.float64))
        return np.asarray(ref).astype(x.dtype)


# ---------------------------------------------------------------------------
# Kernels: one loop per (function, dtype), compiled lazily and only once
# ---------------------------------------------------------------------------


@functools.cache
def _unary_kernel(name: str) -> Callable:
    fn = getattr(vm, name)

    @numba.njit(error_model="numpy", fastmath=vm.FASTMATH)
    def kernel(x, out):  # type: ignore[no-untyped-def]
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return kernel


def run(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _unary_kernel(name)(x, out)
    return out


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def log_sweep(dtype: type, n: int = 20_000) -> np.ndarray:
    """Both signs, log-spaced from the smallest subnormal to the largest float."""
    fi = np.finfo(dtype)
    lo, hi = float(fi.smallest_subnormal), float(fi.max)
    mags = np.exp(np.linspace(math.log(lo), math.log(hi), n)).astype(dtype)
    mags = mags[np.isfinite(mags) & (mags > 0)]
    return np.concatenate([mags, -mags])


def random_sample(name: str, dtype: type, n: int = 100_000) -> np.ndarray:
    lo, hi = REFERENCES[name][1]
    return np.random.default_rng(1234).uniform(lo, hi, n).astype(dtype)


def special_values(dtype: type) -> np.ndarray:
    fi = np.finfo(dtype)
    base = [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        1.0,
        -1.0,
        0.5,
        2.0,
        float(fi.smallest_subnormal),
        float(fi.smallest_normal),
        float(fi.max),
        float(fi.eps),
        1e-30,
        1e-5,
        0.3465,
        0.3466,
        0.6931,
        1.5707963267948966,
        3.141592653589793,
        10.0,
        20.0,
        22.0,
        30.0,
        # exp / expm1 / sinh / cosh overflow and underflow thresholds
        88.72,
        88.73,
        89.5,
        103.97,
        104.0,
        87.0,
        709.78,
        709.79,
        710.0,
        710.5,
        708.4,
        745.13,
        745.14,
        746.0,
        1e5,
        1e6,
        1e7,
        1e20,
    ]
    v = np.array(base, dtype=np.float64)
    v = np.concatenate([v, -v])
    with np.errstate(over="ignore"):
        v = v.astype(dtype)
    # Neighbours of the finite specials, to probe thresholds on both sides.
    finite = v[np.isfinite(v)]
    with np.errstate(over="ignore"):
        up = np.nextafter(finite, dtype(np.inf))
        down = np.nextafter(finite, dtype(-np.inf))
    return np.concatenate([v, up, down])


def assert_within_ulp(name: str, x: np.ndarray, got: np.ndarray, ref: np.ndarray) -> None:
    d = ulp_distance(got, ref)
    worst = int(np.argmax(d))
    assert d[worst] <= MAX_ULP, (
        f"{name}[{x.dtype}]: {d[worst]} ulp at x={x[worst]!r}: got {got[worst]!r}, "
        f"want {ref[worst]!r}"
    )


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_log_sweep(name: str, dtype: type) -> None:
    x = log_sweep(dtype)
    assert_within_ulp(name, x, run(name, x), reference(name, x))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_random(name: str, dtype: type) -> None:
    x = random_sample(name, dtype)
    assert_within_ulp(name, x, run(name, x), reference(name, x))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_special_values(name: str, dtype: type) -> None:
    x = special_values(dtype)
    got, ref = run(name, x), reference(name, x)
    assert_within_ulp(name, x, got, ref)
    # nan, +-inf and signed zeros exactly as the reference.
    exact = np.isnan(ref) | np.isinf(ref) | (ref == 0)
    np.testing.assert_array_equal(np.isnan(got[exact]), np.isnan(ref[exact]))
    np.testing.assert_array_equal(got[exact & ~np.isnan(ref)], ref[exact & ~np.isnan(ref)])
    np.testing.assert_array_equal(np.signbit(got[ref == 0]), np.signbit(ref[ref == 0]))


@functools.cache
def _pow_kernel() -> Callable:
    @numba.njit(error_model="numpy", fastmath=vm.FASTMATH)
    def kernel(x, y, out):  # type: ignore[no-untyped-def]
        for i in range(x.shape[0]):
            out[i] = vm.pow(x[i], y[i])

    return kernel


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_pow(dtype: type) -> None:
    specials = np.array(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.0,
            -2.0,
            0.5,
            -0.5,
            3.0,
            -3.0,
            1e-3,
            1e3,
            np.inf,
            -np.inf,
            np.nan,
            1.5,
            -1.5,
            1e30,
            -1e30,
        ],
        dtype,
    )
    xs, ys = (a.ravel() for a in np.meshgrid(specials, specials))
    rng = np.random.default_rng(7)
    xr = rng.uniform(0, 50, 100_000).astype(dtype)
    yr = rng.uniform(-20, 20, 100_000).astype(dtype)
    # Negative bases with integer exponents (sign from parity).
    xn = -rng.uniform(0, 10, 10_000).astype(dtype)
    yn = rng.integers(-30, 30, 10_000).astype(dtype)
    x, y = np.concatenate([xs, xr, xn]), np.concatenate([ys, yr, yn])
    got = np.empty_like(x)
    _pow_kernel()(x, y, got)
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(np.float64), y.astype(np.float64)).astype(dtype)
    assert_within_ulp("pow", x, got, ref)
    np.testing.assert_array_equal(np.signbit(got[ref == 0]), np.signbit(ref[ref == 0]))


def test_cache_true_kernel_in_file(tmp_path: Any) -> None:
    """A cache=True kernel in a real file using vm.* compiles, then loads
    from numba's disk cache in a second process."""
    import os
    import subprocess
    import sys
    import textwrap

    (tmp_path / "kern.py").write_text(
        textwrap.dedent("""
        import numba, numpy as np
        from symgrad_compiler.backends.numba import vmath as vm

        @numba.njit(cache=True, error_model="numpy", fastmath=vm.FASTMATH)
        def k(x, w, b, out):
            for i in range(x.shape[0]):
                t = vm.tanh(x[i] * w[i] + b[i])
                out[i] = t * vm.sigmoid(x[i]) + np.float32(0.5) * vm.exp(-x[i] * x[i])
    """)
    )
    script = textwrap.dedent("""
        import numpy as np, kern
        x = np.linspace(-3, 3, 101, dtype=np.float32)
        w, b, out = np.full_like(x, 0.7), np.full_like(x, 0.1), np.empty_like(x)
        kern.k(x, w, b, out)
        ref = np.tanh(x * w + b) / (1 + np.exp(-x)) + np.float32(0.5) * np.exp(-x * x)
        assert np.allclose(out, ref, rtol=1e-6, atol=1e-7)
        print(sum(kern.k.stats.cache_hits.values()))
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ,
        NUMBA_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join([root, str(tmp_path)]),
    )
    hits = [
        subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert hits == ["0", "1"]


def test_without_avx512(tmp_path: Any) -> None:
    """The exp scaling has two code paths (vscalef via llvm.ldexp with AVX-512,
    integer exponent steps without): on an AVX-512 machine, check the other
    one by compiling for an AVX2-only CPU in a subprocess."""
    import os
    import subprocess
    import sys

    from symgrad_compiler.backends.numba.vmath import _AVX512

    if not _AVX512:  # the other path needs an AVX-512 CPU to run on
        pytest.skip("this CPU has no AVX-512: the other tests cover its only path")
    haswell = (
        "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,"
        "+movbe,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave"
    )
    cpu = dict(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=haswell)
    script = (
        "import numpy as np, test_vmath as t\n"
        "from symgrad_compiler.backends.numba.vmath import _AVX512\n"
        "assert not _AVX512\n"
        "for name in ('exp', 'sigmoid', 'cosh'):\n"
        "    for dt in t.DTYPES:\n"
        "        for x in (t.log_sweep(dt), t.special_values(dt)):\n"
        "            got, ref = t.run(name, x), t.reference(name, x)\n"
        "            t.assert_within_ulp(name, x, got, ref)\n"
        "            z = ref == 0\n"
        "            assert (np.signbit(got[z]) == np.signbit(ref[z])).all()\n"
        "            assert (np.isnan(got) == np.isnan(ref)).all()\n"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, **cpu, PYTHONPATH=os.pathsep.join([os.path.dirname(here), here]))
    subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, check=True)


def test_generated_modules_import_math() -> None:
    """A kernel template may use ``math.*``: the generated module's preamble imports
    it (as it does ``np`` and ``vm``), so the kernel compiles instead of sending
    its program to the interpreter."""
    from symgrad_compiler.backends.numba import disk_cache

    assert "\nimport math\n" in disk_cache.module_source("")
    module = disk_cache.load(
        "@_jit\n"
        "def kernel_using_math(x, out):\n"
        "    for i in range(x.shape[0]):\n"
        "        out[i] = math.copysign(math.floor(abs(x[i])), x[i]) + vm.exp(np.float64(0))\n"
    )
    x = np.array([-2.5, -0.0, 0.7, 3.2])
    out = np.empty_like(x)
    module.kernel_using_math(x, out)
    np.testing.assert_array_equal(out, np.copysign(np.floor(np.abs(x)), x) + 1.0)
    assert module.kernel_using_math.signatures  # compiled by numba, not run as Python


def test_sums_vectorise_without_fast_math() -> None:
    """Generated kernels carry no fast-math flags (``vm.FASTMATH`` is empty), and a
    running sum through ``vm.accumulate`` still becomes vector code: its one
    ``fadd reassoc`` is the only reassociable instruction."""
    assert vm.FASTMATH == set()

    @numba.njit(error_model="numpy", fastmath=vm.FASTMATH)
    def total(x):  # type: ignore[no-untyped-def]
        acc = np.float32(0)
        for i in range(x.shape[0]):
            acc = vm.accumulate(acc, x[i] * x[i])
        return acc

    x = np.linspace(-1, 1, 1001, dtype=np.float32)
    assert abs(float(total(x)) - float(np.sum(x.astype(np.float64) ** 2))) < 1e-3
    llvm = total.inspect_llvm(total.signatures[0])
    assert "fadd reassoc <" in llvm  # a vector reduction
    assert "fmul fast" not in llvm and "fmul reassoc" not in llvm
