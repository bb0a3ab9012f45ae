"""Vectorisable elementwise math for generated numba kernels.

numba lowers ``math.exp``, ``math.tanh``, ... to scalar libm calls, and the
llvmlite wheels carry no vector math library, so a loop that calls them is
never vectorised and runs 10-60x slower than the numpy ufunc.  This module
provides the same functions written only in arithmetic, bit casts and LLVM
intrinsics that have vector forms (``fma``, ``rint``, ``fabs``, ``copysign``,
``sqrt``).  After LLVM inlines them, the loop vectoriser turns a kernel loop
into AVX2/AVX-512 code.

Usage from generated code (the kernel may live in any module and may be
disk-cached with ``cache=True``), which imports this module as ``vm`` (see
``disk_cache``'s preamble)::

    @numba.njit(cache=True, error_model="numpy", fastmath=vm.FASTMATH)
    def kernel(x, out):
        for i in range(x.shape[0]):
            out[i] = vm.tanh(x[i]) * vm.sigmoid(x[i])

Every function takes a float32 or float64 scalar and returns the same type
(integers are treated as float64; ``pow`` promotes like numpy).  Called from
plain Python on a scalar they run the same compiled scalar code, which is
handy in tests and doctests:

>>> from symgrad_compiler.backends.numba import vmath as vm
>>> float(vm.exp(0.0)), float(vm.tanh(-0.0))
(1.0, -0.0)
>>> vm.sigmoid(np.float32(0.0)).dtype
dtype('float32')

Design rules that keep the results as accurate as numpy's:

* The implementations are compiled with the fast-math flag ``contract`` only
  (fused multiply-add), never ``reassoc``: Cody-Waite range reduction and the
  compensated sums below rely on exact IEEE evaluation order.  fast-math
  flags are attached to instructions, so a caller compiled with ``FASTMATH``
  cannot loosen them when LLVM inlines these bodies.
* Special values are handled with selects at the end of each function, not
  branches, so the vectoriser can if-convert them.
* Polynomial coefficients are computed here when the module is imported:
  Taylor coefficients from exact rationals, or (float32 exp, sigmoid, tanh)
  Chebyshev interpolants of the Taylor series or of a long-double function,
  which are near-minimax and need fewer terms.  Degrees are chosen so that
  the approximation error is below 1/4 ulp on the reduced range.
* Where the target has AVX-512, 2**k scaling uses ``llvm.ldexp`` (one
  ``vscalefps``); elsewhere integer exponent arithmetic with the same results.

Vectorised: exp, expm1, log, log1p, log2, log10, tanh, sigmoid, softplus,
sinh, cosh, sqrt, rsqrt, arcsinh, arccosh, arctanh, and for float32 also
sin, cos, tan and pow.
float64 sin, cos, tan are not vectorised yet: their Cody-Waite path is
branch-free and accurate for |x| <= 1.6e6, but the scalar libm branch that
keeps larger arguments correct is speculated by LLVM (it calls libm for
every lane), so a loop using them runs at libm speed; a branch-free float64
Payne-Hanek reduction is the missing piece (float32 has one: every float32
is reduced exactly by 2/pi in 28-bit chunks, see ``_build_narrow``).
Scalar libm fallbacks (correct, not vectorised): pow (float64), erf, cbrt,
arcsin, arccos, arctan.

float64: within 1 ulp everywhere (issue 20).  Where a plain evaluation
collects 1.2-3.4 ulp, the last steps are double-double (an unevaluated
hi + lo from error-free transforms), so the error is the final rounding plus
a few hundredths of an ulp; that costs ~1.5x the time of the plain kernels in
tanh, sigmoid and expm1 (see ``_build_accurate64``).

float32: exp, log, sigmoid and tanh are computed in float32 arithmetic
(16 lanes per AVX-512 vector), within 0.79-0.92 ulp (``_build_fast32``;
issue 20 asks for at most 1 ulp).  The others are computed in float64 and
rounded once, so results are correctly rounded except within ~2**-14 ulp
of a tie (plain float32 kernels were 1.2-1.8 ulp off).  expm1, log1p,
softplus, sin, cos, tan have their own short float64 kernels
(``_build_narrow``: relative error ~2**-38, not float64's 2**-52); the
others are the float64 kernels of ``_build`` rounded.  float64 lanes are
half as many as float32 ones, so these take ~1.3-2.5x the time float32
arithmetic took (sin, cos: 5x faster, being vectorised).  Measured
accuracy (max error in ulp against a long double reference over the dense
sweeps of ``tests/test_vmath_ulp.py``) is given in each docstring; that test
holds the float64 bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = [
    "FASTMATH",
    "accumulate",
    "prefer_512_bit_vectors",
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "tanh",
    "sigmoid",
    "softplus",
    "sinh",
    "cosh",
    "sin",
    "cos",
    "tan",
    "erf",
    "sqrt",
    "rsqrt",
    "cbrt",
    "pow",
    "arcsin",
    "arccos",
    "arctan",
    "arcsinh",
    "arccosh",
    "arctanh",
]

#: LLVM fast-math flags for generated kernels: none. A kernel must give the
#: interpreter's values, NaN, inf and signed zeros included, and each flag breaks
#: that somewhere: ``reassoc`` folds ``(1 / x) * s`` into ``s / x`` (no overflow to
#: inf where numpy overflows; 0 where numpy's ``inf * 0`` is NaN), ``contract``
#: fuses ``a * b + c`` into one FMA (``max * 2 + -inf`` is -inf, numpy NaN), ``nsz``
#: flips zeros' signs, ``arcp``/``afn`` turn ``x / y`` into ``x * (1 / y)`` and
#: ``1 / sqrt`` into an estimate, ``nnan``/``ninf`` drop NaN and inf. Sums still
#: vectorise: their additions go through :func:`accumulate`, whose one ``fadd``
#: alone may be reassociated.
FASTMATH: set[str] = set()  # numba wants a set, not frozenset

# Flags for the bodies in this module: FMA contraction only (see module doc).
_INNER_FLAGS = {"contract"}
_jit = numba.njit(fastmath=_INNER_FLAGS, error_model="numpy")


# ---------------------------------------------------------------------------
# LLVM intrinsics with vector forms
# ---------------------------------------------------------------------------


def _float_intrinsic(llvm_name: str, nargs: int) -> Any:
    """An ``@intrinsic`` calling ``llvm_name`` on ``nargs`` floats of one type."""

    def typer(typingctx: Any, *args: Any) -> Any:
        ft = args[0]
        if not isinstance(ft, types.Float) or any(a != ft for a in args):
            raise TypingError(f"{llvm_name} needs {nargs} floats of one type, got {args}")

        def codegen(context: Any, builder: Any, sig: Any, llargs: Any) -> Any:
            lt = context.get_value_type(ft)
            fnty = ir.FunctionType(lt, [lt] * nargs)
            fn = builder.module.declare_intrinsic(llvm_name, [lt], fnty)
            return builder.call(fn, llargs)

        return ft(*args), codegen

    # intrinsic() inspects the Python signature, so spell out the arity.
    if nargs == 1:

        def one(typingctx: Any, x: Any) -> Any:
            return typer(typingctx, x)

        return intrinsic(one)
    if nargs == 2:

        def two(typingctx: Any, x: Any, y: Any) -> Any:
            return typer(typingctx, x, y)

        return intrinsic(two)

    def three(typingctx: Any, x: Any, y: Any, z: Any) -> Any:
        return typer(typingctx, x, y, z)

    return intrinsic(three)


_rint = _float_intrinsic("llvm.rint", 1)  # round half to even, vroundps
_floor = _float_intrinsic("llvm.floor", 1)
_fabs = _float_intrinsic("llvm.fabs", 1)
_copysign = _float_intrinsic("llvm.copysign", 2)
_fma = _float_intrinsic("llvm.fma", 3)  # one rounding; hardware FMA on x86-64-v3
_sqrt = _float_intrinsic("llvm.sqrt", 1)


@intrinsic
def prefer_512_bit_vectors(typingctx: Any) -> Any:
    """Let LLVM vectorise the loops of the calling function with 512-bit
    vectors where the target CPU has AVX-512.

    LLVM's tuning for AVX-512 CPUs caps auto-vectorisation at 256-bit vectors
    (on some of them 512-bit code lowers the clock); for the arithmetic-heavy
    loops of generated kernels 512-bit vectors measured ~20% faster.  This
    sets the function attribute ``"prefer-vector-width"="512"`` on the
    function being compiled only, so other numba code in the process keeps
    its defaults; without AVX-512 LLVM cannot use wider vectors than the
    target has, and the attribute changes nothing.  numba's disk cache keys
    machine code by CPU name and features, so a kernel built with it never
    loads on another CPU.  Generated kernels call it first unless
    ``SYMGRAD_WIDE_VECTORS=0`` (see ``compiler/backends/numba/codegen.py``).
    """

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        # llvmlite's attribute set accepts only keyword attributes, and string
        # attributes are written out verbatim: add it with set.add.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _inline_always(typingctx: Any) -> Any:
    """Mark the function being compiled ``alwaysinline``.

    A kernel loop vectorises only if every function it calls is inlined into
    it, and LLVM's size heuristic declined some bodies here (sinh: expm1 and
    exp inlined into it made it too big), leaving the loop scalar, ~8x slower.
    Every public implementation starts with this call."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.none(), codegen


def _float_layout(ft: Any) -> tuple[ir.IntType, int, int]:
    """(integer type of the same width, explicit mantissa bits, exponent bias)."""
    if ft.bitwidth == 32:
        return ir.IntType(32), 23, 127
    return ir.IntType(64), 52, 1023


# The bit tricks are intrinsics rather than numba integer code because numba
# widens int32 arithmetic to int64, which would halve the float32 vector width.


def _power_of_two(builder: Any, k: Any, ft: Any, float_type: Any) -> Any:
    """LLVM IR for the float 2**k of an integer ``k`` (in the low bits of an
    integer the width of ``ft``): its exponent field, (k + bias) << mant."""
    it, mant, bias = _float_layout(ft)
    biased = builder.add(k, ir.Constant(it, bias))
    return builder.bitcast(builder.shl(biased, ir.Constant(it, mant)), float_type)


@intrinsic
def _pow2(typingctx: Any, k: Any) -> Any:
    """2**k for a float k holding an integer with a normal result (the
    exponent field is written directly)."""
    if not isinstance(k, types.Float):
        raise TypingError("_pow2 needs a float")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        it, _, _ = _float_layout(k)
        return _power_of_two(builder, builder.fptosi(args[0], it), k, args[0].type)

    return k(k), codegen


def _target_has_avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (its configured
    features, else the host's, as numba itself decides)."""
    features = numba.config.CPU_FEATURES
    if features is None:
        if (numba.config.CPU_NAME or "").lower() == "generic":
            return False
        try:
            features = llvm_binding.get_host_cpu_features().flatten()
        except RuntimeError:
            return False
    return "+avx512f" in features.split(",")


_AVX512 = _target_has_avx512()


def _shifter_bits(ft: Any) -> int:
    """Bit pattern of ``SHIFTER`` = 1.5 * 2**mant for float type ``ft``."""
    if ft.bitwidth == 32:
        return int(np.array(1.5 * 2.0**23, np.float32).view(np.int32))
    return int(np.array(1.5 * 2.0**52, np.float64).view(np.int64))


@intrinsic
def _pow2_shifted(typingctx: Any, kf: Any) -> Any:
    """2**k from ``kf = k + SHIFTER`` (see ``reduce_ln2``), for k with a normal
    result.  The integer k sits in the low mantissa bits of kf, so the exponent
    field of 2**k is (bits(kf) + bias) << mant: two integer ops, no float to
    integer conversion (which would be poison for a NaN lane in LLVM)."""
    if not isinstance(kf, types.Float):
        raise TypingError("_pow2_shifted needs a float")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        it, _, _ = _float_layout(kf)
        return _power_of_two(builder, builder.bitcast(args[0], it), kf, args[0].type)

    return kf(kf), codegen


@intrinsic
def _scale_shifted(typingctx: Any, p: Any, kf: Any) -> Any:
    """p * 2**k for ``kf = k + SHIFTER``, for any k from below the subnormal
    range to just past overflow: 2**k is applied as 2**(k >> 1) times
    2**(k - (k >> 1)), both normal, so the first product is exact (for p
    near 1) and the second rounds once, into the subnormal range or to inf
    as a single multiplication by 2**k would."""
    if not isinstance(p, types.Float) or p != kf:
        raise TypingError("_scale_shifted needs two floats of one type")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        it, mant, bias = _float_layout(kf)
        k = builder.sub(builder.bitcast(args[1], it), ir.Constant(it, _shifter_bits(kf)))
        if _AVX512:
            # llvm.ldexp becomes one vscalefps/pd, which rounds once with the
            # same subnormal and overflow results (elsewhere it is a libm call).
            i32 = ir.IntType(32)
            k32 = builder.trunc(k, i32) if it.width > 32 else k
            fnty = ir.FunctionType(args[0].type, [args[0].type, i32])
            fn = builder.module.declare_intrinsic("llvm.ldexp", [args[0].type, i32], fnty)
            return builder.call(fn, [args[0], k32])
        k1 = builder.ashr(k, ir.Constant(it, 1))
        k2 = builder.sub(k, k1)
        ft = args[0].type
        f1 = builder.bitcast(
            builder.shl(builder.add(k1, ir.Constant(it, bias)), ir.Constant(it, mant)), ft
        )
        f2 = builder.bitcast(
            builder.shl(builder.add(k2, ir.Constant(it, bias)), ir.Constant(it, mant)), ft
        )
        return builder.fmul(builder.fmul(args[0], f1), f2)

    return p(p, kf), codegen


@intrinsic
def _exponent(typingctx: Any, x: Any) -> Any:
    """Unbiased exponent of a positive normal float, as a float."""
    if not isinstance(x, types.Float):
        raise TypingError("_exponent needs a float")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        it, mant, bias = _float_layout(x)
        b = builder.bitcast(args[0], it)
        e = builder.sub(builder.lshr(b, ir.Constant(it, mant)), ir.Constant(it, bias))
        return builder.sitofp(e, args[0].type)

    return x(x), codegen


@intrinsic
def _mantissa(typingctx: Any, x: Any) -> Any:
    """Mantissa in [1, 2) of a positive normal float (exponent field := bias)."""
    if not isinstance(x, types.Float):
        raise TypingError("_mantissa needs a float")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        it, mant, bias = _float_layout(x)
        b = builder.bitcast(args[0], it)
        b = builder.and_(b, ir.Constant(it, (1 << mant) - 1))
        b = builder.or_(b, ir.Constant(it, bias << mant))
        return builder.bitcast(b, args[0].type)

    return x(x), codegen


# ---------------------------------------------------------------------------
# Per-dtype implementations
# ---------------------------------------------------------------------------
# Constants for Cody-Waite reductions: hi + lo (+ lo2) splits of ln 2 and
# pi/2 made with mpmath (200 bits).  With FMA, k*hi is exact inside the fma,
# so hi may use all mantissa bits.
_SPLITS: dict[type, dict[str, tuple[float, ...]]] = {
    np.float32: dict(
        ln2=(0.6931471824645996, -1.904654323148236e-09),
        pio2=(1.5707963705062866, -4.371138828673793e-08, -1.7151245100059206e-15),
        log2e=(1.4426950216293335, 1.925963033500011e-08),
        log10e=(0.4342944920063019, -1.0103050118726541e-08),
        log10_2=(0.30103000998497009, -1.4320988682150436e-08),
    ),
    np.float64: dict(
        ln2=(0.6931471805599453, 2.3190468138462996e-17),
        pio2=(1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33),
        log2e=(1.4426950408889634, 2.0355273740931033e-17),
        log10e=(0.4342944819032518, 1.098319650216765e-17),
        log10_2=(0.3010299956639812, -2.8037281277851704e-18),
    ),
}


def _taylor(kind: str, ft: type, n: int) -> tuple:
    """Coefficients c[0..n-1] (lowest order first) of a Taylor series."""
    if kind == "exp":  # sum x^j / j!
        c = [1.0 / math.factorial(j) for j in range(n)]
    elif kind == "expm1":  # (expm1(x) - x) / x^2 = sum x^j / (j+2)!
        c = [1.0 / math.factorial(j + 2) for j in range(n)]
    elif kind == "atanh":  # (log1p(f) in s=f/(2+f)): R/z = sum 2 z^j / (2j+3)
        c = [2.0 / (2 * j + 3) for j in range(n)]
    elif kind == "sin":  # (sin(r) - r) / r^3 = sum (-1)^(j+1) z^j / (2j+3)!
        c = [(-1.0) ** (j + 1) / math.factorial(2 * j + 3) for j in range(n)]
    elif kind == "cos":  # (cos(r) - 1 + z/2) / z^2 = sum (-1)^j z^j / (2j+4)!
        c = [(-1.0) ** j / math.factorial(2 * j + 4) for j in range(n)]
    elif kind == "erf":  # erf(x) / x = 2/sqrt(pi) sum (-1)^j z^j / (j! (2j+1))
        c = [
            2 / math.sqrt(math.pi) * (-1.0) ** j / (math.factorial(j) * (2 * j + 1))
            for j in range(n)
        ]
    else:
        raise ValueError(kind)
    return tuple(ft(v) for v in c)


def _chebyshev_fit(
    f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, degree: int
) -> np.ndarray:
    """Power-basis coefficients (lowest order first) of the polynomial of
    ``degree`` interpolating ``f`` at the Chebyshev points of [lo, hi].

    Near-minimax: its maximum error is within a small factor of the best
    polynomial's, so a float32 kernel needs one or two terms fewer than the
    Taylor series that is accurate at the ends of the range.  Computed in
    float64 (``f`` may work in long double) when this module is imported.
    """
    fit = np.polynomial.Chebyshev.interpolate(f, degree, domain=[lo, hi])
    power = fit.convert(kind=np.polynomial.Polynomial, domain=[-1, 1], window=[-1, 1])
    return np.asarray(power.coef, np.float64)


def _exp_tail(r: np.ndarray) -> np.ndarray:
    """(e**r - 1 - r) / r**2 = sum r**j / (j+2)!, summed to convergence (|r| < 1)."""
    r = np.asarray(r, np.longdouble)
    total, term = np.zeros_like(r), np.full_like(r, 0.5)
    for j in range(30):
        total = total + term
        term = term * r / (j + 3)
    return total


def _series(terms: Callable[[int], float], x: np.ndarray, count: int = 40) -> np.ndarray:
    """sum_j terms(j) x**j in long double (|x| small enough to converge)."""
    x = np.asarray(x, np.longdouble)
    total = np.zeros_like(x)
    for j in reversed(range(count)):
        total = total * x + np.longdouble(terms(j))
    return total


def _tanh_tail(z: np.ndarray) -> np.ndarray:
    """(tanh(x) - x) / x**3 as a function of z = x**2 > 0 (long double: the
    cancellation costs ~eps/z, harmless at the Chebyshev points used)."""
    x = np.sqrt(np.asarray(z, np.longdouble))
    return (np.tanh(x) - x) / (x * z)


def _make_polyval(coeffs: tuple) -> Callable:
    """A jitted Horner evaluation of sum(c[j] x**j) (lowest order first); the
    tuple loop is fully unrolled by LLVM.  (Estrin's scheme was tried: no
    measurable gain here and up to 1 ulp worse.)"""
    n = len(coeffs)

    @_jit
    def polyval(x):  # type: ignore[no-untyped-def]
        p = coeffs[n - 1]
        for j in range(n - 2, -1, -1):
            p = _fma(p, x, coeffs[j])
        return p

    return polyval


def _build(ft: type) -> dict[str, Callable]:
    """Compile-ready scalar implementations for float type ``ft``.

    float32 takes only exp, log and sqrt from here (``_FROM_BUILD32``); its
    other functions are the float64 ones rounded or kernels of their own
    (below), so the bodies here serve float64, and float32 constants exist
    only where those three read them.
    """
    f32 = ft is np.float32
    mant = 23 if f32 else 52  # explicit mantissa bits
    # Taylor degrees giving truncation error < 1/4 ulp on the reduced ranges
    # (float32 exp uses the shorter Chebyshev fit below instead; of the
    # others float32 builds only log's atanh series).
    n_exp, n_expm1, n_atanh, n_sin, n_cos = 14, 13, (5 if f32 else 11), 8, 8

    s = _SPLITS[ft]
    LN2_HI, LN2_LO = (ft(v) for v in s["ln2"])
    PIO2_1, PIO2_2, PIO2_3 = (ft(v) for v in s["pio2"])
    LOG2E_HI, LOG2E_LO = (ft(v) for v in s["log2e"])
    LOG10E_HI, LOG10E_LO = (ft(v) for v in s["log10e"])
    LOG10_2_HI, LOG10_2_LO = (ft(v) for v in s["log10_2"])
    LOG2E = ft(1.0 / math.log(2.0))
    SHIFTER = ft(1.5 * 2.0**mant)  # x + SHIFTER rounds x to an integer (|x| < 2**(mant-1))
    TWO_OVER_PI = ft(2.0 / math.pi)

    ZERO, QUARTER, HALF, ONE, TWO = ft(0.0), ft(0.25), ft(0.5), ft(1.0), ft(2.0)
    THREE, FOUR = ft(3.0), ft(4.0)
    INF, NAN = ft(np.inf), ft(np.nan)
    MIN_NORMAL = ft(np.finfo(ft).tiny)
    SUBNORMAL_SCALE = ft(2.0 ** (mant + 2))  # makes any subnormal normal
    SUBNORMAL_SHIFT = ft(mant + 2)
    SQRT2 = ft(math.sqrt(2.0))
    # |x| below TINY: expm1, log1p, sin, tan, tanh, sinh (x) all round to x.
    TINY = ft(2.0 ** -(mant + 2))
    # exp: above EXP_HI the result is inf, below EXP_LO it rounds to 0; both
    # bounds still give finite k, so the clamped input stays in the fast path.
    EXP_HI, EXP_LO = (ft(89.0), ft(-104.0)) if f32 else (ft(710.0), ft(-746.0))
    # expm1 is -1 to working precision below this.
    EXPM1_LO = ft(-(mant + 3) * math.log(2.0))
    # sinh/cosh switch to exp(|x|/2)^2/2 where exp(|x|) itself could overflow.
    HYP_BIG = ft(709.0)
    # Cody-Waite pi/2 reduction is exact-enough up to here (checked in tests).
    TRIG_MAX = ft(1.6e6)
    MAX_SHORT_K = ft(mant + 3)  # 2^-k is below half an ulp of 1 for larger k

    if f32:
        # a Chebyshev fit is within 0.2 ulp with fewer terms than Taylor:
        # e**r = 1 + r + r**2 q(r) with q of degree 4 on |r| <= ln2/2
        exp_tail = _chebyshev_fit(_exp_tail, -0.347, 0.347, 4)
        exp_poly = _make_polyval(tuple(ft(c) for c in (1.0, 1.0, *exp_tail)))
    else:
        exp_poly = _make_polyval(_taylor("exp", ft, n_exp))
    expm1_poly = _make_polyval(_taylor("expm1", ft, n_expm1))
    atanh_poly = _make_polyval(_taylor("atanh", ft, n_atanh))
    sin_poly = _make_polyval(_taylor("sin", ft, n_sin))
    cos_poly = _make_polyval(_taylor("cos", ft, n_cos))

    @_jit
    def reduce_ln2(x):  # type: ignore[no-untyped-def]
        """x = k ln2 + r, |r| <= ln2/2 (+ rounding), for |x| < 2**(mant-2);
        returns (k + SHIFTER, k, r), k as floats.  Adding SHIFTER (whose ulp
        is 1) rounds x log2(e) to the integer k, kept in the low mantissa
        bits, so 2**k is built without rint or a float-to-int conversion."""
        kf = _fma(x, LOG2E, SHIFTER)
        k = kf - SHIFTER
        r = _fma(-k, LN2_HI, x)
        r = _fma(-k, LN2_LO, r)
        return kf, k, r

    @_jit
    def exp_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xc = EXP_HI if x > EXP_HI else x
        xc = EXP_LO if xc < EXP_LO else xc
        kf, k, r = reduce_ln2(xc)
        # Two exact-then-once-rounded steps of 2**k keep subnormal results
        # and overflow right (see _scale_shifted).  A nan stays nan through
        # the clamps and the polynomial; 2**k is then garbage but defined
        # (bit operations only), so no select is needed for it.
        return _scale_shifted(exp_poly(r), kf)

    @_jit
    def expm1_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xc = EXP_HI if x > EXP_HI else x
        xc = EXPM1_LO if xc < EXPM1_LO else xc
        kf, k, r = reduce_ln2(xc)
        p = _fma(r * r, expm1_poly(r), r)  # expm1(r), relative error < 1 ulp
        # e^x - 1 = 2^k (1 + p) - 1, arranged so no bits cancel:
        #   k > 0:  2^k (p + (1 - 2^-k)),  1 - 2^-k exact
        #   k < 0:  (2^k - 1) + 2^k p,     2^k - 1 exact
        #   k = 0:  p  (then r == x)
        kk = MAX_SHORT_K if k > MAX_SHORT_K else k
        pos = _scale_shifted(p + (ONE - _pow2(-kk)), kf)
        two_k = _pow2_shifted(kf)  # used for k < 0 only
        neg = _fma(two_k, p, two_k - ONE)
        y = pos if k > 0 else (neg if k < 0 else p)
        y = x if _fabs(x) < TINY else y  # keeps -0.0 and subnormals exact
        return x if x != x else y

    @_jit
    def log_parts(x):  # type: ignore[no-untyped-def]
        """For finite x > 0: (e, L) with x = 2^e m, m in [sqrt(1/2), sqrt(2)),
        L = log(m) to ~1 ulp.  Garbage (but no traps) for other x."""
        sub = x < MIN_NORMAL
        xs = x * SUBNORMAL_SCALE if sub else x
        e = _exponent(xs)
        m = _mantissa(xs)  # [1, 2)
        big = m > SQRT2
        m = m * HALF if big else m
        e = e + ONE if big else e
        e = e - SUBNORMAL_SHIFT if sub else e
        # log(1+f) = 2 atanh(s), s = f/(2+f), written so the big terms are
        # exact:  f - (hf - s (hf + R)) with hf = f^2/2, R = z P(z).
        f = m - ONE
        sv = f / (TWO + f)
        z = sv * sv
        hf = HALF * f * f
        big_r = z * atanh_poly(z)
        lm = f - (hf - sv * (hf + big_r))
        return e, lm

    @_jit
    def log_special(x, y):  # type: ignore[no-untyped-def]
        """numpy's special cases for the log family."""
        y = NAN if x < ZERO else y
        y = -INF if x == ZERO else y
        return x if not (x < INF) else y  # +inf -> inf, nan -> nan

    @_jit
    def log_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        e, lm = log_parts(x)
        y = _fma(e, LN2_HI, _fma(e, LN2_LO, lm))
        return log_special(x, y)

    @_jit
    def log2_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        e, lm = log_parts(x)
        y = e + _fma(lm, LOG2E_HI, lm * LOG2E_LO)
        return log_special(x, y)

    @_jit
    def log10_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        e, lm = log_parts(x)
        t = _fma(lm, LOG10E_LO, e * LOG10_2_LO)
        y = _fma(e, LOG10_2_HI, _fma(lm, LOG10E_HI, t))
        return log_special(x, y)

    @_jit
    def log1p_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        u = ONE + x
        # c is the rounding error of 1 + x (exact), log(1+x) = log(u) + c/u.
        c = x - (u - ONE)
        y = log_(u)
        y = y + c / u if (u > ZERO and u < INF) else y
        return x if _fabs(x) < TINY else y

    @_jit
    def softplus_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
        pos = x if x > ZERO else ZERO
        return pos + log1p_(exp_(-_fabs(x)))

    @_jit
    def sinh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        ax = _fabs(x)
        e = expm1_(ax)
        small = HALF * (e + e / (e + ONE))  # (e^a - e^-a)/2 without cancellation
        w = exp_(HALF * ax)
        large = (HALF * w) * w  # e^a/2 without overflowing early
        y = large if ax > HYP_BIG else small
        return _copysign(y, x)

    @_jit
    def cosh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        ax = _fabs(x)
        e = exp_(ax)
        small = _fma(HALF, e, HALF / e)
        w = exp_(HALF * ax)
        large = (HALF * w) * w
        return large if ax > HYP_BIG else small

    @_jit
    def reduce_pio2(x):  # type: ignore[no-untyped-def]
        """x = k pi/2 + r with |r| <= pi/4; returns (k & 3, r).  With FMA
        the first step is exact, so three parts of pi/2 suffice for
        |x| <= TRIG_MAX."""
        kf = _rint(x * TWO_OVER_PI)
        r = _fma(-kf, PIO2_1, x)
        r = _fma(-kf, PIO2_2, r)
        r = _fma(-kf, PIO2_3, r)
        q = kf - FOUR * _floor(QUARTER * kf)  # k mod 4 in {0, 1, 2, 3}
        return q, r

    @_jit
    def sin_cos_r(r):  # type: ignore[no-untyped-def]
        z = r * r
        sr = _fma(r * z, sin_poly(z), r)
        cr = _fma(z * z, cos_poly(z), ONE - HALF * z)
        return sr, cr

    @_jit
    def sin_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        if _fabs(x) > TRIG_MAX:  # rare: libm's exact Payne-Hanek reduction
            return math.sin(x)
        q, r = reduce_pio2(x)
        sr, cr = sin_cos_r(r)
        y = cr if (q == ONE or q == THREE) else sr
        y = -y if q >= TWO else y
        y = x if _fabs(x) < TINY else y
        return x - x if _fabs(x) == INF else y  # inf -> nan

    @_jit
    def cos_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        if _fabs(x) > TRIG_MAX:
            return math.cos(x)
        q, r = reduce_pio2(x)
        sr, cr = sin_cos_r(r)
        y = sr if (q == ONE or q == THREE) else cr
        y = -y if (q == ONE or q == TWO) else y
        return x - x if _fabs(x) == INF else y

    @_jit
    def tan_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        if _fabs(x) > TRIG_MAX:
            return math.tan(x)
        q, r = reduce_pio2(x)
        sr, cr = sin_cos_r(r)
        y = -cr / sr if (q == ONE or q == THREE) else sr / cr
        y = x if _fabs(x) < TINY else y
        return x - x if _fabs(x) == INF else y

    @_jit
    def sqrt_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        return _sqrt(x)

    @_jit
    def rsqrt_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        return ONE / _sqrt(x)

    return dict(
        exp=exp_,
        expm1=expm1_,
        log=log_,
        log1p=log1p_,
        log2=log2_,
        log10=log10_,
        softplus=softplus_,
        sinh=sinh_,
        cosh=cosh_,
        sin=sin_,
        cos=cos_,
        tan=tan_,
        sqrt=sqrt_,
        rsqrt=rsqrt_,
    )


# tanh and sigmoid are not here: _build_fast32 and _build_accurate64 have them
_FROM_BUILD32 = ("exp", "log", "sqrt")
_IMPL32 = {name: fn for name, fn in _build(np.float32).items() if name in _FROM_BUILD32}
_IMPL64 = _build(np.float64)


# ---------------------------------------------------------------------------
# Functions built on the float64 kernels or on libm
# ---------------------------------------------------------------------------


def _add_libm_fallbacks() -> None:
    """Scalar libm calls (numba picks the float32 libm variant for float32):
    correct to libm accuracy but not vectorised."""
    for name, fn in [
        ("arcsin", math.asin),
        ("arccos", math.acos),
        ("arctan", math.atan),
        ("arcsinh", math.asinh),
        ("arccosh", math.acosh),
        ("arctanh", math.atanh),
        ("erf", math.erf),
    ]:
        for table in (_IMPL32, _IMPL64):
            table[name] = _jit(lambda x, fn=fn: fn(x))
    _IMPL32["cbrt"] = _jit(lambda x: np.cbrt(x))
    _IMPL64["cbrt"] = _make_cbrt64()


def _make_cbrt64() -> Callable:
    """numba's float64 cbrt (3 ulp) with one Newton step on y**3 - x, whose
    residual is computed nearly exactly with FMA: 0.5 ulp.  A subnormal x is
    scaled by 2**54 first (and the root by 2**-18); zeros, inf and NaN keep
    numba's result."""
    three, tiny, inf = np.float64(3.0), np.float64(np.finfo(np.float64).tiny), np.float64(np.inf)
    up, down = np.float64(2.0**54), np.float64(2.0**-18)

    @_jit
    def cbrt64(x):  # type: ignore[no-untyped-def]
        small = _fabs(x) < tiny
        xs = x * up if small else x
        y = np.cbrt(xs)
        y2 = y * y
        residual = _fma(y2, y, -xs) + _fma(y, y, -y2) * y  # y**3 - x
        better = y - residual / (three * y2)
        better = better * down if small else better
        return better if (x != 0.0 and _fabs(x) < inf) else np.cbrt(x)

    return cbrt64


_add_libm_fallbacks()


# ---------------------------------------------------------------------------
# float32: evaluated in float64, rounded once
# ---------------------------------------------------------------------------
# A float32 result computed in float32 arithmetic collects a few roundings and
# lands up to 1-3 ulp from the true value (numpy's own float32 exp: 2.3 ulp).
# Computed with the float64 kernels, whose relative error (below 2**-50) is
# 2**-26 of a float32 ulp, and rounded to float32 once, it is the correctly
# rounded result except within 2**-26 ulp of a tie between two floats (MXNet's
# float32 exp, glibc's expf, is correctly rounded; exp(1) = 2.7182817 there and
# here, 2.718282 in numpy). Subnormal and overflowing results round once too,
# since float64 covers the whole float32 range.


def _narrow(impl64: Callable) -> Callable:
    """The float32 implementation: ``impl64`` on the value widened, rounded once."""

    @_jit
    def impl32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        return np.float32(impl64(np.float64(x)))

    return impl32


def _build_narrow() -> dict[str, Callable]:
    """The float32 expm1, log1p, softplus, sin, cos and tan, each computed in
    float64 with the shortest polynomial and reduction
    that keep its relative error below ~2**-38 (2**-14 of a float32 ulp), then
    rounded once; branch-free, so loops vectorise.

    A float32 argument has 24 bits, which keeps each step exact or nearly so:
    x - k ln2 with a one-part ln2 (|k| < 2**8), 1 + x exact above 2**-29, no
    subnormal logarithm arguments (float32 subnormals are normal float64s), and
    an exact reduction by pi/2 of any float32 (see ``reduce_pio2_wide``).
    """
    f64 = np.float64
    ln2, log2e = f64(math.log(2.0)), f64(1.0 / math.log(2.0))
    shifter = f64(1.5 * 2.0**52)
    hi, lo = f64(89.0), f64(-104.0)  # exp beyond: inf / 0 in float32
    zero, half, one, two, four, quarter = (f64(v) for v in (0.0, 0.5, 1.0, 2.0, 4.0, 0.25))
    inf, nan = f64(np.inf), f64(np.nan)
    sqrt2 = f64(math.sqrt(2.0))
    # (e**r - 1)/r on |r| <= ln2/2 (+ rounding): degree 8 Chebyshev fit, 2**-40
    expm1_over_r = _make_polyval(
        tuple(_chebyshev_fit(lambda r: 1 + r * _exp_tail(r), -0.3466, 0.3466, 8))
    )
    # log(1+f) = 2s + s z T(z), s = f/(2+f), z = s**2 <= 0.0295: degree 5 fit of T
    log_t = _make_polyval(
        tuple(_chebyshev_fit(lambda z: _series(lambda j: 2 / (2 * j + 3), z), 0.0, 0.0295, 5))
    )
    sin_poly = _make_polyval(_taylor("sin", f64, 6))
    cos_poly = _make_polyval(_taylor("cos", f64, 6))
    # 2/pi in 28-bit chunks (mpmath, 400 bits): x c_j is exact for a float32 x
    two_over_pi = (
        0.6366197690367699,
        3.3308114738561656e-09,
        2.276010047810136e-18,
        2.5268260189002822e-26,
        1.6682867657019525e-34,
        1.158871328288855e-43,
        7.053959174404295e-52,
    )
    c0, c1, c2, c3, c4, c5, c6 = (f64(c) for c in two_over_pi)
    pio2 = f64(math.pi / 2)
    tiny = f64(2.0**-30)  # below: expm1, log1p, sin round to x in float32
    series_max = f64(2.0**-10)  # below: log1p by its series

    @_jit
    def exp_reduce(xc):  # type: ignore[no-untyped-def]
        """(k + SHIFTER, r) with xc = k ln2 + r, for xc in [-104, 89] (or nan);
        callers clamp only the side their arguments can reach."""
        kf = _fma(xc, log2e, shifter)
        return kf, _fma(-(kf - shifter), ln2, xc)

    @_jit
    def clamp(xd):  # type: ignore[no-untyped-def]
        xc = hi if xd > hi else xd
        return lo if xc < lo else xc

    @_jit
    def exp_wide(xd):  # type: ignore[no-untyped-def]
        kf, r = exp_reduce(xd)
        return _fma(r, expm1_over_r(r), one) * _pow2_shifted(kf)

    @_jit
    def expm1_wide(xd):  # type: ignore[no-untyped-def]
        """e**xd - 1 = 2**k (e**r - 1) + (2**k - 1): one rounding after exact
        terms, relative accuracy near 0 from e**r - 1 = r P(r)."""
        kf, r = exp_reduce(xd)
        two_k = _pow2_shifted(kf)
        return _fma(two_k, r * expm1_over_r(r), two_k - one)

    @_jit
    def log_wide(u):  # type: ignore[no-untyped-def]
        """log(u) for a normal float64 u > 0 (garbage elsewhere)."""
        e = _exponent(u)
        m = _mantissa(u)
        big = m > sqrt2
        m = m * half if big else m
        e = e + one if big else e
        f = m - one
        s = f / (two + f)
        z = s * s
        return _fma(e, ln2, _fma(s * z, log_t(z), s + s))

    @_jit
    def log_special(u, y):  # type: ignore[no-untyped-def]
        y = nan if u < zero else y
        y = -inf if u == zero else y
        return u if not (u < inf) else y

    @_jit
    def log1p_small(x):  # type: ignore[no-untyped-def]
        """log(1 + x) = x - x**2/2 + x**3/3 - x**4/4 for |x| < 2**-10."""
        return _fma(x * x, _fma(x, _fma(x, f64(-0.25), f64(1 / 3)), -half), x)

    @_jit
    def expm1_32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        y = expm1_wide(clamp(xd))
        return np.float32(xd if _fabs(xd) < tiny else y)  # keeps -0.0

    @_jit
    def log1p32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        u = one + xd  # exact for |x| >= 2**-29 (and 1 + 2**-53 relative beyond 2**53)
        y = log_special(u, log_wide(u))
        return np.float32(log1p_small(xd) if _fabs(xd) < series_max else y)

    @_jit
    def softplus32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        # max(x, 0) + log1p(e), e = e**-|x| in (0, 1]
        e = -_fabs(xd)
        e = exp_wide(lo if e < lo else e)
        l1p = log1p_small(e) if e < series_max else log_wide(one + e)
        pos = xd if xd > zero else zero
        return np.float32(xd if not (xd < inf) else pos + l1p)

    @_jit
    def frac4(p):  # type: ignore[no-untyped-def]
        """p mod 4 in [-2, 2], exact (p - 4 rint(p/4): both multiples of the
        ulp of p, and the difference is small)."""
        return _fma(-four, _rint(p * quarter), p)

    @_jit
    def reduce_pio2_wide(xd):  # type: ignore[no-untyped-def]
        """For a float32 xd: (k mod 4, r) with xd = k pi/2 + r, |r| <= pi/4.

        x 2/pi mod 4 is summed from x c_j mod 4 (each product exact, each
        remainder exact) as a double-double: the chunks above those that matter
        give multiples of 4, the ones below x 2**-196, so every float32 is
        reduced to ~2**-68 absolute without a table or a branch."""
        s, lo = _two_sum(frac4(xd * c0), frac4(xd * c1))
        s, e = _two_sum(s, frac4(xd * c2))
        lo = lo + e
        s, e = _two_sum(s, frac4(xd * c3))
        lo = lo + e
        s, e = _two_sum(s, frac4(xd * c4))
        lo = lo + e
        s, e = _two_sum(s, frac4(xd * c5))
        lo = lo + (e + frac4(xd * c6))
        k = _rint(s)
        fh, fl = _fast_two_sum(s - k, lo)
        # the remainder may still round to just past +-1/2: that is harmless
        q = k - four * _floor(quarter * k)
        return q, _fma(fh, pio2, fl * pio2)

    @_jit
    def sin_cos_wide(r):  # type: ignore[no-untyped-def]
        z = r * r
        return _fma(r * z, sin_poly(z), r), _fma(z * z, cos_poly(z), _fma(-half, z, one))

    @_jit
    def sin32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        q, r = reduce_pio2_wide(xd)
        sr, cr = sin_cos_wide(r)
        y = cr if (q == one or q == f64(3.0)) else sr
        y = -y if q >= two else y
        return np.float32(xd if _fabs(xd) < tiny else y)  # keeps -0.0; inf -> nan

    @_jit
    def cos32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        q, r = reduce_pio2_wide(xd)
        sr, cr = sin_cos_wide(r)
        y = sr if (q == one or q == f64(3.0)) else cr
        y = -y if (q == one or q == two) else y
        return np.float32(y)

    @_jit
    def tan32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        q, r = reduce_pio2_wide(xd)
        sr, cr = sin_cos_wide(r)
        y = -cr / sr if (q == one or q == f64(3.0)) else sr / cr
        return np.float32(xd if _fabs(xd) < tiny else y)

    return dict(
        expm1=expm1_32,
        log1p=log1p32,
        softplus=softplus32,
        sin=sin32,
        cos=cos32,
        tan=tan32,
    )


for _name in (
    "expm1",
    "log1p",
    "log2",
    "log10",
    "softplus",
    "sinh",
    "cosh",
    "sin",
    "cos",
    "tan",
    "rsqrt",
    "erf",
    "cbrt",
    "arcsin",
    "arccos",
    "arctan",
    "arcsinh",
    "arccosh",
    "arctanh",
):
    _IMPL32[_name] = _narrow(_IMPL64[_name])
_IMPL32.update(_build_narrow())


# ---------------------------------------------------------------------------
# float32 sigmoid and tanh in float32 arithmetic
# ---------------------------------------------------------------------------
# The float64 route above is correctly rounded but halves the lanes per vector:
# float32 sigmoid and tanh took 2-2.5x the time of float32 arithmetic, and they
# are hot in generated kernels (activations and their gradients).  These kernels
# stay in float32 (16 lanes per AVX-512 vector) and keep the error below 1 ulp
# by dividing once by a denominator held as two floats.  float32 exp and log are
# _build's float32 kernels (0.89 and 0.79 ulp).


def _build_fast32() -> dict[str, Callable]:
    """float32 sigmoid (max 0.92 ulp) and tanh (0.89 ulp), branch-free.

    With e**a = 2**k (1 + v + c) (a = |x|, k = rint(a / ln2), v = e**rh - 1
    by a degree-6 fit at the exact rh = a - k ln2_hi, c the tiny rest of the
    reduction; see ``exp_v``) and p = 2**-k:
    sigmoid(-a) = 2**-k / D and sigmoid(a) = 1 - p / D, tanh(a/2) = 1 - 2p / D,
    D = (1 + p) + v + c.  D is kept as dh + dl (both sums' rounding errors and
    c) and 1/D as one division refined by one Newton step on dh + dl, so the
    result rounds about once; 2**-k scales last, so subnormal sigmoids round
    once.  Error budget: the final rounding (0.5 ulp) plus v's own rounding,
    2**-26 absolute where |v| >= 1/4, i.e. 2**-26 / D <= 1.42 * 2**-26 relative
    (D >= 1 + v >= 0.707), at most 0.36 ulp; the fit (~2**-30), c's omitted
    square and the Newton step's residue are far smaller: under 0.9 ulp, and
    0.92 measured (every float32 in [-104, -0.5] for sigmoid, the subnormal
    results included; tanh 0.89 over every float32 in [0.25, 10], where 2p / D
    <= 1/2 halves the weight of v's error but the odd polynomial below 0.55
    has its own).

    These take ~1.2x (tanh) and ~1.4x (sigmoid) the time of the plain float32
    kernels of 3c9210f (exp, then one division), which were 2.0 and 1.4 ulp off:
    the low part of D and the Newton step are about eight more vector
    operations, ~5% each.  A reciprocal estimate instead of the division was
    slower; Estrin's scheme lost accuracy (1.03 ulp); a longer odd polynomial
    for tanh, to drop the Newton step above ~0.95, saves one operation net and
    reaches 0.94 ulp from its own roundings (1.0-1.1 with shorter ones).
    """
    f32 = np.float32
    ln2_hi, ln2_lo = (f32(v) for v in _SPLITS[np.float32]["ln2"])
    log2e = f32(1.0 / math.log(2.0))
    shifter = f32(1.5 * 2.0**23)  # kf = k + shifter (see reduce_ln2)
    shifter2 = f32(3.0 * 2.0**23)  # shifter2 - kf = -k + shifter
    p_min = f32(1.5 * 2.0**23 - 64)  # -k capped at -64: p stays normal
    zero, one = f32(0.0), f32(1.0)
    a_max = f32(104.0)  # sigmoid(-104) rounds to 0, sigmoid(104) to 1
    tanh_cap = f32(64.0)  # 2|x| capped: tanh(32) is 1
    tanh_small = f32(0.55)  # below: the odd polynomial (tanh < 0.5)
    # (e**r - 1 - r) / r**2 on |r| <= ln2/2 (+ rounding): degree 4 (3 gives 5 ulp)
    exp_tail = _make_polyval(tuple(f32(c) for c in _chebyshev_fit(_exp_tail, -0.3467, 0.3467, 4)))
    tanh_poly = _make_polyval(tuple(f32(c) for c in _chebyshev_fit(_tanh_tail, 0.0, 0.55**2, 4)))

    @_jit
    def exp_v(a):  # type: ignore[no-untyped-def]
        """(kf, v, c) with e**a = 2**k (1 + v + c) to ~2**-40 relative,
        kf = k + shifter, for 0 <= a < 2**8.

        rh = a - k ln2_hi is exact (both are multiples of 2**-25 and the
        difference is below 2**24 of them), so v = e**rh - 1 is the polynomial
        at an exact argument, rounded once (2**-26 absolute where |v| >= 1/4).
        The rest of the reduction, e**(-k ln2_lo) = 1 - k ln2_lo (|k ln2_lo| <
        3e-7, so the square is ~2**-44), gives c = -k ln2_lo (1 + v), left
        apart for the caller's low part: rounding r = rh - k ln2_lo to a float
        cost another 2**-26 where |r| nears ln2/2, and the two roundings
        together reached 1.05 ulp in sigmoid (x = -37.77732)."""
        kf = _fma(a, log2e, shifter)
        k = kf - shifter
        rh = _fma(-k, ln2_hi, a)
        kl = k * ln2_lo
        v = _fma(rh * rh, exp_tail(rh), rh)
        return kf, v, _fma(-kl, v, -kl)

    @_jit
    def inv_den(p, v, c, exact_p):  # type: ignore[no-untyped-def]
        """1 / ((1 + p) + v + c) to ~2**-40 relative (c tiny); with exact_p
        False the rounding of 1 + p is dropped (right where 1 - 2p/D rounds
        to 1)."""
        w = one + p
        den = w + v
        dl = (w - den) + v  # |w| > |v|: exact
        if exact_p:
            c = c + ((one - w) + p)  # both terms below 2**-21: error ~2**-45
        dl = dl + c
        inv = one / den
        return _fma(inv, _fma(-inv, dl, _fma(-inv, den, one)), inv)

    @_jit
    def sigmoid32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        a = _fabs(x)
        a = a_max if a > a_max else a  # nan passes
        kf, v, c = exp_v(a)
        kn = shifter2 - kf
        p = _pow2_shifted(p_min if kn < p_min else kn)
        inv = inv_den(p, v, c, True)
        pos = one - p * inv
        neg = _scale_shifted(inv, kn)  # one rounding into the subnormals
        return pos if x >= zero else neg

    @_jit
    def tanh32(x):  # type: ignore[no-untyped-def]
        _inline_always()
        ax = _fabs(x)
        z = ax * ax
        small = _fma(ax * z, tanh_poly(z), ax)
        a = ax + ax
        a = tanh_cap if a > tanh_cap else a
        kf, v, c = exp_v(a)
        p = _pow2_shifted(shifter2 - kf)
        big = one - (p + p) * inv_den(p, v, c, False)
        return _copysign(small if ax < tanh_small else big, x)

    return dict(sigmoid=sigmoid32, tanh=tanh32)


_IMPL32.update(_build_fast32())


def _make_pow32() -> Callable:
    """float32 x**y computed as exp(y log|x|) in float64 (vectorises; the
    float64 error, ~1e-14 relative for any non-overflowing float32 result,
    is far below half a float32 ulp), plus C99/numpy special cases."""
    log64, exp64 = _IMPL64["log"], _IMPL64["exp"]

    @_jit
    def pow32(x, y):  # type: ignore[no-untyped-def]
        _inline_always()
        xd = np.float64(x)
        yd = np.float64(y)
        ax = _fabs(xd)
        mag = exp64(yd * log64(ax))
        y_int = _rint(yd) == yd
        y_odd = y_int and _rint(yd * 0.5) != yd * 0.5
        neg_x = _copysign(1.0, xd) < 0.0
        r = -mag if (neg_x and y_odd) else mag
        # A negative finite x with a non-integer y has no real power.
        r = np.nan if (xd < 0.0 and xd > -np.inf and not y_int) else r
        # (+-1) ** (+-inf) == 1, as numpy.
        r = 1.0 if (ax == 1.0 and _fabs(yd) == np.inf) else r
        r = 1.0 if (xd == 1.0 or yd == 0.0) else r
        return np.float32(r)

    return pow32


_IMPL32["pow"] = _make_pow32()
_IMPL64["pow"] = _jit(lambda x, y: math.pow(x, y))


# ---------------------------------------------------------------------------
# float64: results within 1 ulp (double-double final steps)
# ---------------------------------------------------------------------------
# The kernels of _build round every intermediate step, and a few such roundings
# add up to 1.2-3.4 ulp. The float64 kernels below carry the last steps as an
# unevaluated sum hi + lo (double-double), built from error-free transforms:
# a + b = s + err exactly (two_sum), a * b = p + err exactly (two_prod, FMA),
# so that the only sizeable error is the final rounding of hi + lo (0.5 ulp)
# plus the polynomial's, far below it. float32 keeps the faster kernels of
# _build: their 2**-50 relative error is 2**-26 of a float32 ulp.


@intrinsic
def _mul(typingctx: Any, x: Any, y: Any) -> Any:
    """``x * y`` rounded, as an ``fmul`` without the ``contract`` flag: LLVM may not
    fuse it into an FMA with an addition that uses it, which would change the
    rounding that ``_two_prod`` measures."""
    if not isinstance(x, types.Float) or x != y:
        raise TypingError("_mul needs two floats of one type")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.fmul(args[0], args[1])

    return x(x, y), codegen


@_jit
def _two_sum(a, b):  # type: ignore[no-untyped-def]
    """(s, e) with s = a + b rounded and s + e = a + b exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_jit
def _fast_two_sum(a, b):  # type: ignore[no-untyped-def]
    """`_two_sum` for |a| >= |b| (or a == 0): three operations."""
    s = a + b
    return s, b - (s - a)


@_jit
def _two_prod(a, b):  # type: ignore[no-untyped-def]
    """(p, e) with p = a * b rounded and p + e = a * b exactly (FMA)."""
    p = _mul(a, b)
    return p, _fma(a, b, -p)


def _build_accurate64() -> dict[str, Callable]:
    """float64 kernels within 1 ulp (max error on the dense sweeps of
    tests/test_vmath_ulp.py in each docstring of the public functions)."""
    f64 = np.float64
    s = _SPLITS[np.float64]
    LN2_HI, LN2_LO = f64(s["ln2"][0]), f64(s["ln2"][1])
    PIO2_1, PIO2_2, PIO2_3 = (f64(v) for v in s["pio2"])
    LOG2E_HI, LOG2E_LO = f64(s["log2e"][0]), f64(s["log2e"][1])
    LOG10E_HI, LOG10E_LO = f64(s["log10e"][0]), f64(s["log10e"][1])
    # ln2 with a 42-bit head: e * head is exact for any float64 exponent e
    LN2_42 = f64(math.ldexp(round(math.ldexp(LN2_HI, 42)), -42))
    LN2_42_LO = f64((LN2_HI - LN2_42) + LN2_LO)
    LOG2E = f64(1.0 / math.log(2.0))
    SHIFTER = f64(1.5 * 2.0**52)
    TWO_OVER_PI = f64(2.0 / math.pi)
    ZERO, HALF, ONE, TWO, FOUR, QUARTER = (f64(v) for v in (0.0, 0.5, 1.0, 2.0, 4.0, 0.25))
    THREE = f64(3.0)
    INF, NAN = f64(np.inf), f64(np.nan)
    MIN_NORMAL = f64(np.finfo(np.float64).tiny)
    SUBNORMAL_SCALE, SUBNORMAL_SHIFT = f64(2.0**54), f64(54.0)
    SQRT2 = f64(math.sqrt(2.0))
    TINY = f64(2.0**-54)
    EXP_HI, EXP_LO = f64(710.0), f64(-746.0)
    EXPM1_LO = f64(-55 * math.log(2.0))
    # tanh: odd polynomial below TANH_SMALL (the double-double form of the exp
    # branch loses nothing to the cancellation in 1 - 2/(E + 1) above it)
    TANH_SMALL, TANH_EXP_CAP = f64(0.125), f64(64.0)
    LOG1P_SMALL = f64(2.0**-20)
    SINH_SMALL = f64(0.5)
    HYP_CAP = f64(711.0)  # sinh and cosh overflow below it
    TRIG_MAX = f64(1.6e6)
    ARC_TINY, ARC_BIG = f64(2.0**-28), f64(2.0**28)

    # e**r - 1 - r - r**2/2 = r**3 c(r) on |r| <= ln2/2 (+ rounding): degree 9
    # Chebyshev fit, error ~1e-17 relative to c
    exp_c = _make_polyval(
        tuple(
            _chebyshev_fit(
                lambda r: _series(lambda j: 1 / math.factorial(j + 3), r), -0.35, 0.35, 9
            )
        )
    )
    # R = z T(z), T(z) = sum 2 z**j / (2j+3) (2 atanh(s) = 2s + s R, z = s**2 <=
    # 0.1716**2): degree 8 Chebyshev fit
    atanh_t = _make_polyval(
        tuple(_chebyshev_fit(lambda z: _series(lambda j: 2 / (2 * j + 3), z), 0.0, 0.0295, 8))
    )
    sin_poly = _make_polyval(_taylor("sin", f64, 8))
    cos_poly = _make_polyval(_taylor("cos", f64, 8))
    # sinh(a) = a + a**3 S(a**2) for a <= 1/2: Taylor, 8 terms
    sinh_poly = _make_polyval(tuple(f64(1 / math.factorial(2 * j + 3)) for j in range(8)))
    # tanh(x) = x + x**3 P(x**2) for |x| < TANH_SMALL: degree 7 Chebyshev fit
    tanh_poly = _make_polyval(tuple(_chebyshev_fit(_tanh_tail, 0.0, 0.125**2, 7)))

    @_jit
    def exp_parts(x):  # type: ignore[no-untyped-def]
        """For |x| < 2**50: (k + SHIFTER, k, h, l) with e**x = 2**k (1 + h + l),
        h + l = e**r - 1 (|r| <= ln2/2) to ~2**-57 of e**r, l below an ulp of h."""
        kf = _fma(x, LOG2E, SHIFTER)
        k = kf - SHIFTER
        r1 = _fma(-k, LN2_HI, x)  # exact: k LN2_HI is exact inside the FMA
        r = _fma(-k, LN2_LO, r1)
        rl = _fma(-k, LN2_LO, r1 - r)  # r + rl = x - k ln2 (r1 - r is exact)
        # e**r - 1 = r + (r**2/2 + r**3 c(r)); both sums keep their rounding
        # errors (exact: r - h and the error of a sum are representable, and
        # |t| < |r|/5)
        zh, zl = _two_prod(r, r)
        hz = HALF * zh
        tail = (r * zh) * exp_c(r)
        t = hz + tail
        tl = (hz - t) + tail
        h = r + t
        # e**(r + rl) - 1 = (e**r - 1) + rl e**r
        l = ((r - h) + t) + (tl + _fma(HALF, zl, _fma(rl, h, rl)))
        return kf, k, h, l

    @_jit
    def expm1_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        xc = EXP_HI if x > EXP_HI else x
        xc = EXPM1_LO if xc < EXPM1_LO else xc
        kf, k, h, l = exp_parts(xc)
        # e**x - 1 = 2**k (1 + h + l) - 1, regrouped so that nothing cancels:
        #   k > 0:  2**k ((1 - 2**-k) + h + l), 1 - 2**-k exact for k <= 53
        #   k < 0:  (2**k - 1) + 2**k (h + l), 2**k - 1 exact as a double-double
        c = ONE if k > 53.0 else ONE - _pow2(-k)
        rest = ZERO if k <= 53.0 else -_pow2(-(f64(100.0) if k > 100.0 else k))
        a, al = _fast_two_sum(c, h)
        pos = _scale_shifted(a + (al + (l + rest)), kf)
        two_k = _pow2_shifted(kf)
        b, bl = _fast_two_sum(-ONE, two_k)
        n, nl = _fast_two_sum(b, two_k * h)
        neg = n + (nl + _fma(two_k, l, bl))
        y = pos if k > 0.0 else (neg if k < 0.0 else h + l)
        y = x if _fabs(x) < TINY else y  # keeps -0.0 and subnormals exact
        return x if x != x else y

    @_jit
    def log_parts(x):  # type: ignore[no-untyped-def]
        """(e, s, a, lo) with log(x) = e ln2 + a + lo, s = f/(2+f) (x = 2**e (1+f)),
        for finite x > 0."""
        sub = x < MIN_NORMAL
        xs = x * SUBNORMAL_SCALE if sub else x
        e = _exponent(xs)
        m = _mantissa(xs)  # [1, 2)
        big = m > SQRT2
        m = m * HALF if big else m
        e = e + ONE if big else e
        e = e - SUBNORMAL_SHIFT if sub else e
        # log(1+f) = f - f**2/2 + s (f**2/2 + R), s = f/(2+f), R = s**2 T(s**2)/2
        # (the identity of _build's log_parts); f - f**2/2 kept as a double-double
        f = m - ONE  # exact
        sv = f / (TWO + f)
        z = sv * sv
        f2, f2l = _two_prod(f, f)
        hf = HALF * f2
        a, al = _fast_two_sum(f, -hf)
        corr = sv * (hf + z * atanh_t(z))
        return e, sv, a, (al - HALF * f2l) + corr

    @_jit
    def log_join(e, a, lo):  # type: ignore[no-untyped-def]
        """e ln2 + a + lo as (h, l) (e ln2 with an exact head)."""
        h, hl = _fast_two_sum(e * LN2_42, a)
        return h, hl + _fma(e, LN2_42_LO, lo)

    @_jit
    def log_core(x):  # type: ignore[no-untyped-def]
        """log(x) as (h, l), for finite x > 0."""
        e, sv, a, lo = log_parts(x)
        return log_join(e, a, lo)

    @_jit
    def log_core_dd(x, xl):  # type: ignore[no-untyped-def]
        """log(x + xl) as (h, l), for finite x > 0 and |xl| <= ulp(x)."""
        e, sv, a, lo = log_parts(x)
        # xl / x = xl 2**-e / (1 + f), and 1/(1+f) = (1-s)/(1+s) = 1 - 2s + 2s**2 - ...
        # (|s| < 0.18: 2**-14 relative is plenty for a term below an ulp)
        g = _fma(sv, _fma(sv, _fma(sv, _fma(sv, -TWO, TWO), -TWO), TWO), -TWO)
        g = _fma(sv, g, ONE)
        ec = f64(1000.0) if e > 1000.0 else (f64(-1000.0) if e < -1000.0 else e)
        return log_join(e, a, _fma(xl * _pow2(-ec), g, lo))

    @_jit
    def log_special(x, y):  # type: ignore[no-untyped-def]
        """numpy's special cases for the log family."""
        y = NAN if x < ZERO else y
        y = -INF if x == ZERO else y
        return x if not (x < INF) else y  # +inf -> inf, nan -> nan

    @_jit
    def log_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        h, l = log_core(x)
        return log_special(x, h + l)

    def log_base(c_hi: float, c_lo: float) -> Callable:
        """log(x) * (c_hi + c_lo) for c = 1/ln(base), as a double-double product
        of (h + l) = log(x) and c, rounded once (log2 of a power of two exact)."""

        @_jit
        def log_times_c(x):  # type: ignore[no-untyped-def]
            _inline_always()
            h, l = log_core(x)
            p, pl = _two_prod(h, c_hi)
            pl = pl + _fma(h, c_lo, l * c_hi)
            return log_special(x, p + pl)

        return log_times_c

    log2_ = log_base(LOG2E_HI, LOG2E_LO)
    log10_ = log_base(LOG10E_HI, LOG10E_LO)

    @_jit
    def log1p_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        u, ul = _two_sum(ONE, x)  # 1 + x exactly
        h, l = log_core_dd(u, ul)
        y = log_special(u, h + l)
        # tiny x: log(u) and ul nearly cancel (both ~x), so the series instead
        small = _fma(x * x, _fma(x, f64(1.0 / 3.0), -HALF), x)
        return small if _fabs(x) < LOG1P_SMALL else y

    @_jit
    def exp_neg_abs(x):  # type: ignore[no-untyped-def]
        """(k + SHIFTER, eh, el, ph, pl): e**-|x| = eh + el = 2**k (ph + pl)."""
        xc = -_fabs(x)
        xc = EXP_LO if xc < EXP_LO else xc
        kf, k, h, l = exp_parts(xc)
        ph, pl = _fast_two_sum(ONE, h)
        pl = pl + l
        return kf, _scale_shifted(ph, kf), _scale_shifted(pl, kf), ph, pl

    @_jit
    def sigmoid_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        # with E = e**-|x|: 1/(1+E) for x >= 0, E/(1+E) for x < 0 (tiny results
        # keep their relative accuracy); one division, refined by a Newton step
        kf, eh, el, ph, pl = exp_neg_abs(x)
        dh, dl = _fast_two_sum(ONE, eh)
        dl = dl + el
        q = ONE / dh
        ql = q * (_fma(-q, dh, ONE) - q * dl)
        pos = q + ql
        m, ml = _two_prod(ph, q)
        ml = ml + _fma(ph, ql, pl * q)
        neg = _scale_shifted(m + ml, kf)
        return pos if x >= ZERO else neg

    @_jit
    def softplus_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        # log(1 + e**x) = max(x, 0) + log1p(e**-|x|)
        kf, eh, el, ph, pl = exp_neg_abs(x)
        u, ul = _fast_two_sum(ONE, eh)
        h, l = log_core_dd(u, ul + el)
        # tiny E: log(u) and ul nearly cancel, so E - E**2/2 + E**3/3 instead
        small = eh < LOG1P_SMALL
        h = eh if small else h
        l = _fma(eh * eh, _fma(eh, f64(1.0 / 3.0), -HALF), el) if small else l
        pos = x if x > ZERO else ZERO
        t, tl = _two_sum(pos, h)
        y = t + (tl + l)
        return x if not (x < INF) else y  # inf -> inf, nan -> nan

    @_jit
    def tanh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        ax = _fabs(x)
        # |x| < 0.55: odd polynomial; above, 1 - 2/(E + 1), E = e**2|x| (>= 3)
        z = ax * ax
        small = _fma(ax * z, tanh_poly(z), ax)
        a = ax + ax
        a = TANH_EXP_CAP if a > TANH_EXP_CAP else a
        kf, k, h, l = exp_parts(a)
        ph, pl = _fast_two_sum(ONE, h)
        two_k = _pow2_shifted(kf)
        dh, dl = _fast_two_sum(ph * two_k, ONE)
        dl = _fma(pl + l, two_k, dl)
        q = TWO / dh
        ql = (_fma(-q, dh, TWO) - q * dl) * (HALF * q)
        w, wl = _fast_two_sum(ONE, -q)
        big = w + (wl - ql)
        return _copysign(small if ax < TANH_SMALL else big, x)

    @_jit
    def hyperbolic(x, sign):  # type: ignore[no-untyped-def]
        """(e**a + sign e**-a) / 2 for a = |x| > 1/4 (overflowing where the
        result does)."""
        a = _fabs(x)
        a = HYP_CAP if a > HYP_CAP else a
        kf, k, h, l = exp_parts(a)
        ph, pl = _fast_two_sum(ONE, h)
        pl = pl + l
        inv = ONE / ph  # e**-a = 2**-k (inv + invl)
        invl = inv * (_fma(-inv, ph, ONE) - inv * pl)
        kk = f64(40.0) if k > 40.0 else k
        m = _pow2(-(kk + kk)) * sign  # 2**-2k: negligible beyond k = 40
        t, tl = _two_sum(ph, m * inv)
        tl = tl + _fma(m, invl, pl)
        return _scale_shifted(t + tl, kf - ONE)

    @_jit
    def sinh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        ax = _fabs(x)
        z = ax * ax
        small = _fma(ax * z, sinh_poly(z), ax)
        y = small if ax <= SINH_SMALL else hyperbolic(x, -ONE)
        return x if x != x else _copysign(y, x)

    @_jit
    def cosh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        return x if x != x else hyperbolic(x, ONE)

    @_jit
    def reduce_pio2(x):  # type: ignore[no-untyped-def]
        """x = k pi/2 + (rh + rl), |rh| <= pi/4, rl below an ulp of rh, for
        |x| <= TRIG_MAX; returns (k mod 4, rh, rl)."""
        kf = _rint(x * TWO_OVER_PI)
        r1 = _fma(-kf, PIO2_1, x)  # exact
        t, tl = _two_prod(kf, PIO2_2)
        rh, rl = _two_sum(r1, -t)
        rl = rl - _fma(kf, PIO2_3, tl)
        rh, rl = _fast_two_sum(rh, rl)
        q = kf - FOUR * _floor(QUARTER * kf)
        return q, rh, rl

    @_jit
    def sin_cos(rh, rl):  # type: ignore[no-untyped-def]
        """sin(r) = rh + sl and cos(r) = ch + cl for r = rh + rl, |r| <= pi/4."""
        z, zl = _two_prod(rh, rh)
        sl = _fma(rh * z, sin_poly(z), rl * _fma(-HALF, z, ONE))
        ch, cl = _fast_two_sum(ONE, -HALF * z)
        cl = cl + (_fma(z * z, cos_poly(z), -rh * rl) - HALF * zl)
        return sl, ch, cl

    @_jit
    def sin_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        if _fabs(x) > TRIG_MAX:  # rare: libm's exact Payne-Hanek reduction
            return math.sin(x)
        q, rh, rl = reduce_pio2(x)
        sl, ch, cl = sin_cos(rh, rl)
        y = ch + cl if (q == ONE or q == THREE) else rh + sl
        y = -y if q >= TWO else y
        y = x if _fabs(x) < TINY else y
        return x - x if _fabs(x) == INF else y  # inf -> nan

    @_jit
    def cos_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        if _fabs(x) > TRIG_MAX:
            return math.cos(x)
        q, rh, rl = reduce_pio2(x)
        sl, ch, cl = sin_cos(rh, rl)
        y = rh + sl if (q == ONE or q == THREE) else ch + cl
        y = -y if (q == ONE or q == TWO) else y
        return x - x if _fabs(x) == INF else y

    @_jit
    def tan_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        if _fabs(x) > TRIG_MAX:
            return math.tan(x)
        q, rh, rl = reduce_pio2(x)
        sl, ch, cl = sin_cos(rh, rl)
        # sin/cos or -cos/sin, divided as double-doubles: t + (n - t d)/d
        sh, sl = _fast_two_sum(rh, sl)  # normalised: the low parts are below an ulp
        ch, cl = _fast_two_sum(ch, cl)
        odd = q == ONE or q == THREE
        nh, nl = (ch, cl) if odd else (sh, sl)
        dh, dl = (sh, sl) if odd else (ch, cl)
        t = nh / dh
        rem = _fma(-t, dh, nh) + _fma(-t, dl, nl)
        y = t + rem / dh
        y = -y if odd else y
        y = x if _fabs(x) < TINY else y
        return x - x if _fabs(x) == INF else y

    @_jit
    def rsqrt_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        # y = 1/sqrt(x) (two roundings) refined by one Newton step on the
        # residual 1 - x y**2, computed nearly exactly with FMA; x is scaled by
        # 2**+-64 near the ends of the range so that y**2 stays normal
        big = x > f64(2.0**1000)
        tiny = x < f64(2.0**-1000)
        xs = x * f64(2.0**-64) if big else (x * f64(2.0**64) if tiny else x)
        y = ONE / _sqrt(xs)
        yy, yyl = _two_prod(y, y)
        r = _fma(-xs, yy, ONE) - xs * yyl
        y = _fma(HALF * y, r, y)
        y = y * f64(2.0**-32) if big else (y * f64(2.0**32) if tiny else y)
        return y if (x > ZERO and x < INF) else ONE / _sqrt(x)

    @_jit
    def sqrt_dd(h, l):  # type: ignore[no-untyped-def]
        """sqrt(h + l) as a double-double, h > 0."""
        r = _sqrt(h)
        return r, (_fma(-r, r, h) + l) / (r + r)

    @_jit
    def arcsinh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        a = _fabs(x)
        # log(a + sqrt(a**2 + 1)) with the argument as a double-double; log(2a)
        # for a > 2**28, a for a < 2**-28
        v, vl = _two_prod(a, a)
        w, wl = _two_sum(ONE, v)
        sh, sl = sqrt_dd(w, wl + vl)
        u, ul = _two_sum(a, sh)
        big = a > ARC_BIG
        h, l = log_core_dd(a if big else u, ZERO if big else ul + sl)
        h, hl = _fast_two_sum(h, LN2_HI) if big else (h, ZERO)
        y = h + (l + hl + (LN2_LO if big else ZERO))
        y = a if (a < ARC_TINY or a == INF) else y
        return x if x != x else _copysign(y, x)

    @_jit
    def arccosh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        # log(x + sqrt(x**2 - 1)): x**2 - 1 is exact as a double-double near 1
        v, vl = _two_prod(x, x)
        w, wl = _two_sum(v, -ONE)
        ok = w > ZERO
        sh, sl = sqrt_dd(w if ok else ONE, wl + vl)
        sh, sl = (sh, sl) if ok else (ZERO, ZERO)
        u, ul = _two_sum(x, sh)
        big = x > ARC_BIG
        h, l = log_core_dd(x if big else u, ZERO if big else ul + sl)
        h, hl = _fast_two_sum(h, LN2_HI) if big else (h, ZERO)
        y = h + (l + hl + (LN2_LO if big else ZERO))
        y = NAN if x < ONE else y
        return x if not (x < INF) else y  # inf -> inf, nan -> nan

    @_jit
    def arctanh_(x):  # type: ignore[no-untyped-def]
        _inline_always()
        a = _fabs(x)
        # log1p(2a / (1 - a)) / 2, the quotient as a double-double
        d, dl = _two_sum(ONE, -a)
        q = (a + a) / d
        ql = (_fma(-q, d, a + a) - q * dl) / d
        u, ul = _two_sum(ONE, q)
        h, l = log_core_dd(u, ul + ql)
        y = HALF * (h + l)
        y = a if a < ARC_TINY else y
        y = INF if a == ONE else y
        y = NAN if a > ONE else y
        return _copysign(y, x) if a == a else x

    return dict(
        expm1=expm1_,
        log=log_,
        log1p=log1p_,
        log2=log2_,
        log10=log10_,
        tanh=tanh_,
        sigmoid=sigmoid_,
        softplus=softplus_,
        sinh=sinh_,
        cosh=cosh_,
        sin=sin_,
        cos=cos_,
        tan=tan_,
        rsqrt=rsqrt_,
        arcsinh=arcsinh_,
        arccosh=arccosh_,
        arctanh=arctanh_,
    )


_IMPL64.update(_build_accurate64())
# float32 inverse hyperbolics: the (vectorisable) float64 kernels rounded once
for _name in ("arcsinh", "arccosh", "arctanh"):
    _IMPL32[_name] = _narrow(_IMPL64[_name])


# ---------------------------------------------------------------------------
# Public stubs: numba-callable through overload, scalar-callable from Python
# ---------------------------------------------------------------------------


def _call_scalar(name: str, *args: Any) -> Any:
    """Run the jitted scalar implementation for a call from Python; returns a
    numpy scalar of the dtype numba code would produce."""
    f32 = all(np.asarray(a).dtype == np.float32 for a in args)
    ft = np.float32 if f32 else np.float64
    return ft((_IMPL32 if f32 else _IMPL64)[name](*(ft(a) for a in args)))


def _register_unary(stub: Callable) -> Callable:
    """Make ``stub`` callable from numba code for float32/float64/int args."""
    impl32, impl64 = _IMPL32[stub.__name__], _IMPL64[stub.__name__]

    @overload(stub, jit_options=dict(fastmath=_INNER_FLAGS, error_model="numpy"))
    def _overload(x):  # type: ignore[no-untyped-def]  # numba compares signatures
        # Each wrapper is marked alwaysinline too (see _inline_always).
        if isinstance(x, types.Float) and x.bitwidth == 32:

            def call32(x):  # type: ignore[no-untyped-def]
                _inline_always()
                return impl32(x)

            return call32
        if isinstance(x, types.Float) and x.bitwidth == 64:

            def call64(x):  # type: ignore[no-untyped-def]
                _inline_always()
                return impl64(x)

            return call64
        if isinstance(x, (types.Integer, types.Boolean)):

            def call_int(x):  # type: ignore[no-untyped-def]
                _inline_always()
                return impl64(np.float64(x))

            return call_int
        return None

    return stub


@_register_unary
def exp(x: Any) -> Any:
    """Exponential e**x.

    Cody-Waite reduction x = k ln2 + r (FMA; k rounded with a shifter
    constant), a polynomial for e**r (float64: Taylor, degree 13; float32, in
    float32 arithmetic: 1 + r + r**2 Q(r), Q a degree-4 Chebyshev fit), and
    p * 2**k applied so that subnormal results and overflow round once, as in
    numpy (``vscalefpd`` with AVX-512, else two exact-then-rounding factors).
    exp(float32(1)) = 2.7182817, MXNet's (glibc's) value.
    Max error: float32 0.9 ulp, float64 0.83 ulp.
    """
    return _call_scalar("exp", x)


@_register_unary
def expm1(x: Any) -> Any:
    """e**x - 1, accurate near 0.

    float64: e**r - 1 = h + l (double-double, the reduction's rounding error
    kept), then 2**k ((1 - 2**-k) + h + l) for k > 0 and
    (2**k - 1) + 2**k (h + l) for k < 0, both exact regroupings, rounded once.
    float32: fma(2**k, e**r - 1, 2**k - 1) in float64.  |x| below 2**-54
    (float32: 2**-30) returns x, keeping -0.0 and subnormals.
    Max error: float32 0.5 ulp, float64 0.75 ulp.
    """
    return _call_scalar("expm1", x)


@_register_unary
def log(x: Any) -> Any:
    """Natural logarithm.

    Exponent/mantissa split by bit casts (float64 subnormals pre-scaled),
    m = 1 + f in [sqrt(1/2), sqrt(2)), log(1 + f) = f - f**2/2 + s (f**2/2 + R)
    with s = f/(2+f) and R a Chebyshev fit in s**2; float64 keeps
    f - f**2/2 and e ln2 (42-bit head, exact) as double-doubles; float32 is
    computed in float32 arithmetic.
    log(0) = -inf, log(<0) = nan.  Max error: float32 0.79 ulp, float64 0.57 ulp.
    """
    return _call_scalar("log", x)


@_register_unary
def log1p(x: Any) -> Any:
    """log(1 + x), accurate near 0.

    float64: log of u + ul, u = 1 + x rounded and ul its exact rounding
    error, ul/u from a short series in s; the series x - x**2/2 + x**3/3 below
    2**-20.  float32: log(1 + x) in float64 (exact sum) or the series below
    2**-10.  Max error: float32 0.5 ulp, float64 0.61 ulp.
    """
    return _call_scalar("log1p", x)


@_register_unary
def log2(x: Any) -> Any:
    """Base-2 logarithm: the double-double log times a two-part log2(e).

    Exact for powers of two.  Max error: float32 0.5 ulp, float64 0.61 ulp.
    """
    return _call_scalar("log2", x)


@_register_unary
def log10(x: Any) -> Any:
    """Base-10 logarithm: the double-double log times a two-part log10(e).

    Max error: float32 0.5 ulp, float64 0.6 ulp.
    """
    return _call_scalar("log10", x)


@_register_unary
def tanh(x: Any) -> Any:
    """Hyperbolic tangent.

    float64: for |x| < 1/8, x + x**3 P(x**2) (degree-7 Chebyshev fit P);
    above, 1 - 2/(E + 1) with E = e**(2|x|), every step double-double so the
    cancellation near 1/8 costs nothing (2|x| capped at 64, where tanh is 1).
    float32 (float32 arithmetic): x + x**3 P(x**2) below 0.55, above it
    1 - 2p/D with one refined division (see ``_build_fast32``).  Sign restored
    with copysign, so tanh(-0.0) = -0.0.
    Max error: float32 0.89 ulp, float64 0.66 ulp.
    """
    return _call_scalar("tanh", x)


@_register_unary
def sigmoid(x: Any) -> Any:
    """Logistic function 1 / (1 + e**-x).

    With E = exp(-|x|) (never overflows): 1/(1+E) for x >= 0 and E/(1+E)
    for x < 0, so results down to the subnormal range keep relative accuracy;
    float64 divides once and refines the quotient with a Newton step on the
    double-double 1 + E.  float32 (float32 arithmetic): 2**-k / D or 1 - p/D,
    D = 1 + e**-|x| scaled by 2**-k, one refined division (``_build_fast32``).
    Max error: float32 0.92 ulp, float64 0.56 ulp.
    """
    return _call_scalar("sigmoid", x)


@_register_unary
def softplus(x: Any) -> Any:
    """log(1 + e**x) computed stably as max(x, 0) + log1p(e**-|x|).

    Max error: float32 0.5 ulp, float64 0.66 ulp (vs numpy.logaddexp(0, x)).
    """
    return _call_scalar("softplus", x)


@_register_unary
def sinh(x: Any) -> Any:
    """Hyperbolic sine: a + a**3 S(a**2) for a = |x| <= 1/2; above,
    2**(k-1) ((p + pl) - 2**-2k / (p + pl)) with e**a = 2**k (p + pl) as a
    double-double, so the result overflows only where sinh does.
    Max error: float32 0.5 ulp, float64 0.56 ulp.
    """
    return _call_scalar("sinh", x)


@_register_unary
def cosh(x: Any) -> Any:
    """Hyperbolic cosine: 2**(k-1) ((p + pl) + 2**-2k / (p + pl)) with
    e**|x| = 2**k (p + pl).  Max error: float32 0.5 ulp, float64 0.57 ulp.
    """
    return _call_scalar("cosh", x)


@_register_unary
def sin(x: Any) -> Any:
    """Sine.

    float64: Cody-Waite reduction by pi/2 in three parts with FMA to
    r = rh + rl (double-double), Taylor polynomials for sin and cos on
    |r| <= pi/4 with rl's first-order term, quadrant select; accurate for
    |x| <= 1.6e6, larger |x| take a scalar libm branch, which stops the loop
    from vectorising (see the module docstring).  float32: every float32 is
    reduced exactly (2/pi in 28-bit chunks) and the loop vectorises.
    sin(-0.0) = -0.0, sin(+-inf) = nan.
    Max error: float32 0.5 ulp, float64 0.72 ulp.
    """
    return _call_scalar("sin", x)


@_register_unary
def cos(x: Any) -> Any:
    """Cosine; method, range and vectorisation as `sin`.  Max error: float32
    0.5 ulp, float64 0.73 ulp."""
    return _call_scalar("cos", x)


@_register_unary
def tan(x: Any) -> Any:
    """Tangent: sin(r)/cos(r) or -cos(r)/sin(r) by quadrant, reduction as
    `sin`; float64 divides the double-doubles (quotient plus the remainder's
    correction).  Max error: float32 0.5 ulp, float64 0.81 ulp."""
    return _call_scalar("tan", x)


@_register_unary
def erf(x: Any) -> Any:
    """Error function.  Scalar libm fallback (not vectorised)."""
    return _call_scalar("erf", x)


@_register_unary
def sqrt(x: Any) -> Any:
    """Square root via ``llvm.sqrt`` (correctly rounded, vectorised)."""
    return _call_scalar("sqrt", x)


@_register_unary
def rsqrt(x: Any) -> Any:
    """1 / sqrt(x), vectorised.  float64: 1/sqrt(x) refined by one Newton step
    whose residual 1 - x y**2 is computed with FMA (x scaled by 2**+-64 near
    the ends of the range).  rsqrt(+0) = inf, rsqrt(-0) = -inf, as numpy's
    1/np.sqrt.  Max error: float32 0.5 ulp, float64 0.51 ulp."""
    return _call_scalar("rsqrt", x)


@_register_unary
def cbrt(x: Any) -> Any:
    """Cube root.  Scalar libm fallback (not vectorised)."""
    return _call_scalar("cbrt", x)


@_register_unary
def arcsin(x: Any) -> Any:
    """Inverse sine.  Scalar libm fallback (not vectorised)."""
    return _call_scalar("arcsin", x)


@_register_unary
def arccos(x: Any) -> Any:
    """Inverse cosine.  Scalar libm fallback (not vectorised)."""
    return _call_scalar("arccos", x)


@_register_unary
def arctan(x: Any) -> Any:
    """Inverse tangent.  Scalar libm fallback (not vectorised)."""
    return _call_scalar("arctan", x)


@_register_unary
def arcsinh(x: Any) -> Any:
    """Inverse hyperbolic sine: log(a + sqrt(a**2 + 1)) with the argument a
    double-double (a = |x|; log(2a) above 2**28, a below 2**-28), sign
    restored.  Max error: float32 0.5 ulp, float64 0.59 ulp."""
    return _call_scalar("arcsinh", x)


@_register_unary
def arccosh(x: Any) -> Any:
    """Inverse hyperbolic cosine: log(x + sqrt(x**2 - 1)), x**2 - 1 exact as a
    double-double near 1.  Max error: float32 0.5 ulp, float64 0.56 ulp."""
    return _call_scalar("arccosh", x)


@_register_unary
def arctanh(x: Any) -> Any:
    """Inverse hyperbolic tangent: log1p(2a / (1 - a)) / 2 with the quotient a
    double-double (a = |x|), sign restored.  Max error: float32 0.5 ulp,
    float64 0.63 ulp."""
    return _call_scalar("arctanh", x)


def pow(x: Any, y: Any) -> Any:  # noqa: A001 - the numpy / C name
    """x ** y for floats, with numpy's special cases (pow(x, 0) = 1,
    pow(1, y) = 1, (-8) ** (1/3) = nan, (-2) ** 3 = -8, pow(-0., -1) = -inf...).

    float32: exp(y log|x|) evaluated in float64 with the float64 kernels of
    this module, then rounded (vectorised, correctly rounded but near ties).
    float64: scalar libm ``pow`` (correct, not vectorised; a float64 pow
    needs double-double log/exp to be accurate).
    Mixed float32/float64 arguments are promoted to float64, as numpy does.
    """
    return _call_scalar("pow", x, y)


@overload(pow, jit_options=dict(fastmath=_INNER_FLAGS, error_model="numpy"))
def _overload_pow(x, y):  # type: ignore[no-untyped-def]  # numba compares signatures
    numeric = (types.Float, types.Integer, types.Boolean)
    if not (isinstance(x, numeric) and isinstance(y, numeric)):
        return None
    pow32, pow64 = _IMPL32["pow"], _IMPL64["pow"]
    if x == types.float32 and y == types.float32:

        def call32(x, y):  # type: ignore[no-untyped-def]
            _inline_always()
            return pow32(x, y)

        return call32

    def call64(x, y):  # type: ignore[no-untyped-def]
        _inline_always()
        return pow64(np.float64(x), np.float64(y))

    return call64


# ---------------------------------------------------------------------------
# numpy's maximum and minimum (Python's max and min drop a NaN second operand)
# ---------------------------------------------------------------------------


def maximum(x: Any, y: Any) -> Any:
    """numpy's ``maximum``: ``x`` where ``x > y`` or ``x`` is NaN, else ``y``, so a
    NaN in either operand gives NaN, and of two zeros the second is returned
    (``maximum(0., -0.) = -0.``), as numpy's loop does. Python's ``max(x, nan)``
    returns ``x``. A scalar operand is first cast to the float operand's type.

    >>> float(maximum(1.0, float("nan")))
    nan
    """
    return x if (x > y or x != x) else y


def minimum(x: Any, y: Any) -> Any:
    """numpy's ``minimum``: ``x`` where ``x < y`` or ``x`` is NaN, else ``y`` (see
    :func:`maximum`).

    >>> float(minimum(float("nan"), 1.0))
    nan
    """
    return x if (x < y or x != x) else y


def _overload_extremum(stub: Callable, greater: bool) -> None:
    """Make ``stub`` (:func:`maximum` or :func:`minimum`) callable from numba code.
    Its comparisons carry this module's flags (no ``nsz``), so a caller compiled
    with :data:`FASTMATH` keeps numpy's choice between two zeros."""

    @overload(stub, jit_options=dict(fastmath=_INNER_FLAGS, error_model="numpy"))
    def _overload(x, y):  # type: ignore[no-untyped-def]  # numba compares signatures
        numeric = (types.Float, types.Integer, types.Boolean)
        if not (isinstance(x, numeric) and isinstance(y, numeric)):
            return None
        # numpy casts a scalar operand to the array's type before comparing
        float_type = x if isinstance(x, types.Float) else y if isinstance(y, types.Float) else None
        cast = (
            None
            if float_type is None
            else (np.float32 if float_type.bitwidth == 32 else np.float64)
        )
        if cast is None:
            if greater:

                def plain(x, y):  # type: ignore[no-untyped-def]
                    _inline_always()
                    return x if x > y else y
            else:

                def plain(x, y):  # type: ignore[no-untyped-def]
                    _inline_always()
                    return x if x < y else y

            return plain
        if greater:

            def impl(x, y):  # type: ignore[no-untyped-def]
                _inline_always()
                a, b = cast(x), cast(y)
                return a if (a > b or a != a) else b
        else:

            def impl(x, y):  # type: ignore[no-untyped-def]
                _inline_always()
                a, b = cast(x), cast(y)
                return a if (a < b or a != a) else b

        return impl


_overload_extremum(maximum, True)
_overload_extremum(minimum, False)


# ---------------------------------------------------------------------------
# Sums that vectorise without fast-math on the rest of the kernel
# ---------------------------------------------------------------------------


@intrinsic
def _reassociable_add(typingctx: Any, total: Any, value: Any) -> Any:
    """``total + value`` as one ``fadd reassoc``: the loop vectoriser may split a
    sum of such additions into partial sums (LLVM asks for the flag on the
    reduction's own instruction), while every other instruction of the kernel
    keeps IEEE order."""
    if not isinstance(total, types.Float) or total != value:
        raise TypingError("_reassociable_add needs two floats of one type")

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.fadd(args[0], args[1], flags=("reassoc",))

    return total(total, value), codegen


def accumulate(total: Any, value: Any) -> Any:
    """``total + value``, for the running sums of generated kernels: a float sum
    may be reassociated (split into partial sums, as numpy's pairwise sum also
    reorders it), nothing else. ``value`` is cast to the type of ``total``.

    >>> float(accumulate(1.0, 2.0))
    3.0
    """
    return total + value


@overload(accumulate, jit_options=dict(fastmath=_INNER_FLAGS, error_model="numpy"))
def _overload_accumulate(total, value):  # type: ignore[no-untyped-def]  # numba's signature
    numeric = (types.Float, types.Integer, types.Boolean)
    if not (isinstance(total, numeric) and isinstance(value, numeric)):
        return None
    if isinstance(total, types.Float):
        cast = np.float32 if total.bitwidth == 32 else np.float64

        def reassociable(total, value):  # type: ignore[no-untyped-def]
            _inline_always()
            return _reassociable_add(total, cast(value))

        return reassociable

    def plain(total, value):  # type: ignore[no-untyped-def]
        _inline_always()
        return total + value

    return plain


# ---------------------------------------------------------------------------
# numpy's sign and mod (numba's differ on the sign of a zero result)
# ---------------------------------------------------------------------------


def sign(x: Any) -> Any:
    """numpy's ``sign``: 1, -1, NaN for NaN, and +0 for either zero (numba's
    ``np.sign(-0.)`` is -0.).

    >>> float(sign(-0.0)), float(sign(-2.0))
    (0.0, -1.0)
    """
    return np.sign(x)


def mod(x: Any, y: Any) -> Any:
    """numpy's ``mod`` for floats: ``fmod`` moved to the sign of ``y``, a zero
    result carrying ``y``'s sign, NaN for ``y = 0`` or an infinite ``x``.

    >>> float(mod(-0.0, 0.3)), float(mod(-1.0, 3.0))
    (0.0, 2.0)
    """
    return np.mod(x, y)


@overload(sign, jit_options=dict(fastmath=_INNER_FLAGS, error_model="numpy"))
def _overload_sign(x):  # type: ignore[no-untyped-def]  # numba compares signatures
    if isinstance(x, types.Integer):

        def integer(x):  # type: ignore[no-untyped-def]
            _inline_always()
            return (x > 0) - (x < 0)

        return integer
    if not isinstance(x, types.Float):
        return None
    cast = np.float32 if x.bitwidth == 32 else np.float64

    def impl(x):  # type: ignore[no-untyped-def]
        _inline_always()
        one = cast(1.0)
        return one if x > 0 else (-one if x < 0 else (x if x != x else cast(0.0)))

    return impl


@overload(mod, jit_options=dict(fastmath=_INNER_FLAGS, error_model="numpy"))
def _overload_mod(x, y):  # type: ignore[no-untyped-def]  # numba compares signatures
    numeric = (types.Float, types.Integer)
    if not (isinstance(x, numeric) and isinstance(y, numeric)):
        return None
    if isinstance(x, types.Integer) and isinstance(y, types.Integer):

        def integer(x, y):  # type: ignore[no-untyped-def]
            _inline_always()
            # numpy: the divisor's sign, and 0 (not an error) for a zero divisor
            return x % y if y != 0 else x - x

        return integer
    float_type = x if isinstance(x, types.Float) else y
    cast = np.float32 if float_type.bitwidth == 32 else np.float64

    def impl(x, y):  # type: ignore[no-untyped-def]
        _inline_always()
        a, b = cast(x), cast(y)
        rest = cast(np.fmod(a, b))  # numba has no math.fmod
        if rest != 0:
            if (b < 0) != (rest < 0):
                rest = rest + b
        elif b == b and b != 0:
            rest = cast(math.copysign(0.0, b))
        return rest

    return impl
