"""Elementwise ops MXNet 1.9.1 has that the first registry lacked: gamma and
gammaln (with the polygamma helper their gradients need), degrees, radians,
rcbrt, smooth_l1, hypot, the logical ops, the equal-shape comparisons, and
MXNet's legacy CamelCase spellings (``_Plus``, ``_MulScalar`` ...) of ops
registered elsewhere, as aliases on those ops' OpDefs.

MXNet treats any nonzero value, NaN included, as true in its logical ops; they
return 0/1 in the input dtype and have no gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..expr import Expr
from ..registry import OPS, Attr, OpDef, TestSpec, as_float, as_int, register
from .common import F, as_dtype_of, binary, same_as_first, unary, with_scalar

# MXNet's factors are 180 / pi and pi / 180 computed in float32, whatever the
# dtype: so are ours, to give its numbers bit for bit (its float64 results differ
# from numpy.degrees by about 5e-8 relative)
_DEGREES_PER_RADIAN = float(np.float32(180.0) / np.float32(math.pi))
_RADIANS_PER_DEGREE = float(np.float32(math.pi) / np.float32(180.0))


def _quiet(function: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """``function`` with numpy's overflow and invalid-value warnings silenced:
    MXNet returns inf and NaN without a warning."""

    def impl(*args: np.ndarray, **attrs: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return function(*args, **attrs)

    impl.__name__ = getattr(function, "__name__", "impl")
    return impl


# ---------------------------------------------------------------------------
# gamma, gammaln and polygamma
# ---------------------------------------------------------------------------


def _gamma_scalar(v: float) -> float:
    # C's tgamma on the values where Python's math.gamma raises: +-0 give +-inf,
    # a pole or -inf gives NaN, overflow gives an infinity of the result's sign.
    if v != v or v == math.inf:
        return v
    if v == -math.inf or (v < 0 and v == math.floor(v)):
        return math.nan
    if v == 0:
        return math.copysign(math.inf, v)
    try:
        return math.gamma(v)
    except OverflowError:
        return math.copysign(math.inf, v)


def _lgamma_scalar(v: float) -> float:
    # C's lgamma: log|gamma|, +inf at the poles and at -inf
    if v != v:
        return v
    if math.isinf(v) or (v <= 0 and v == math.floor(v)):
        return math.inf
    try:
        return math.lgamma(v)
    except OverflowError:
        return math.inf


def _elementwise(scalar_function: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    def impl(x: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return x.copy()
        return np.vectorize(scalar_function, otypes=[np.float64])(x).astype(x.dtype)

    impl.__name__ = scalar_function.__name__.strip("_")
    return impl


# Bernoulli numbers B_2, B_4, ... B_14 for the asymptotic series of polygamma
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)
_ASYMPTOTIC_FROM = 10.0  # the series is accurate to float64 rounding from here on
_MAX_SHIFTS = 100_000  # polygamma(n >= 1) of x below -1e5 is NaN (no reflection)


def _polygamma(x: np.ndarray, *, n: int) -> np.ndarray:
    """The n-th derivative of digamma, in float64: the recurrence
    psi_n(x) = psi_n(x + 1) - (-1)^n n! / x^(n+1) moves x up to 10, where the
    asymptotic series takes over; digamma reflects negative x
    (psi(x) = psi(1 - x) - pi / tan(pi x)). Poles give NaN."""
    if n < 0:
        raise ValueError(f"polygamma order must be >= 0, got {n}")
    z = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        pole = (z <= 0) & (z == np.floor(z))
        reflected = (n == 0) & (z < 0) & ~pole
        shift_term = np.where(reflected, -np.pi / np.tan(np.pi * z), 0.0)
        z = np.where(reflected, 1.0 - z, z)
        z = np.where(pole | (z < -_MAX_SHIFTS) | np.isneginf(z), np.nan, z)
        total = shift_term
        sign = -1.0 if n % 2 == 0 else 1.0  # -(-1)^n
        factorial_n = math.factorial(n)
        low = z < _ASYMPTOTIC_FROM
        while low.any():
            total = total + np.where(low, sign * factorial_n / z ** (n + 1), 0.0)
            z = np.where(low, z + 1.0, z)
            low = z < _ASYMPTOTIC_FROM
        if n == 0:
            series = np.log(z) - 0.5 / z
            power = z * z
            for k, b in enumerate(_BERNOULLI, start=1):
                series = series - b / (2 * k * power)
                power = power * z * z
        else:
            series = math.factorial(n - 1) / z**n + factorial_n / (2 * z ** (n + 1))
            for k, b in enumerate(_BERNOULLI, start=1):
                coefficient = b * math.factorial(2 * k + n - 1) / math.factorial(2 * k)
                series = series + coefficient / z ** (2 * k + n)
            series = series * (1.0 if n % 2 == 1 else -1.0)  # (-1)^(n+1)
            series = np.where(np.isposinf(z), 0.0, series)
        return (total + series).astype(np.asarray(x).dtype)


def polygamma_grad(g: Expr, x: Expr, *, out: Expr, n: int) -> Expr:
    """g psi_(n+1)(x)"""
    return g * F._polygamma(x, n=n + 1)


register(
    OpDef(
        name="_polygamma",
        infer=same_as_first,
        impl=_polygamma,
        grad=polygamma_grad,
        attrs={"n": Attr(as_int, 0)},
        kind="opaque",
        doc="The n-th derivative of the digamma function (n = 0: digamma): the "
        "gradients of gamma and gammaln.\n\nGradient\n--------\ng psi_(n+1)(x)",
        test=TestSpec(domain=(0.3, 3.0), attrs={"n": 1}),
    )
)


def gamma_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g gamma(x) psi(x)"""
    return g * out * F._polygamma(x, n=0)


def gammaln_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g psi(x)"""
    return g * F._polygamma(x, n=0)


# No kernel template: generated kernel modules see only np and vm, and vmath has
# no gamma yet; so these run as numpy steps, as erfinv does.
for _name, _scalar_function, _rule, _what in (
    ("gamma", _gamma_scalar, gamma_grad, "The gamma function (C's tgamma)"),
    ("gammaln", _lgamma_scalar, gammaln_grad, "log |gamma(x)| (C's lgamma)"),
):
    register(
        OpDef(
            name=_name,
            infer=same_as_first,
            impl=_quiet(_elementwise(_scalar_function)),
            grad=_rule,
            kind="opaque",
            method=_name,
            doc=f"{_what}.\n\nGradient\n--------\n{_rule.__doc__}",
            test=TestSpec(domain=(0.3, 3.0)),
        )
    )


# ---------------------------------------------------------------------------
# angles, rcbrt
# ---------------------------------------------------------------------------


def degrees_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g 180 / pi"""
    return g * _DEGREES_PER_RADIAN


unary(
    "degrees",
    lambda x: x * x.dtype.type(_DEGREES_PER_RADIAN),
    f"{{0}} * {_DEGREES_PER_RADIAN!r}",
    degrees_grad,
)


def radians_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g pi / 180"""
    return g * _RADIANS_PER_DEGREE


unary(
    "radians",
    lambda x: x * x.dtype.type(_RADIANS_PER_DEGREE),
    f"{{0}} * {_RADIANS_PER_DEGREE!r}",
    radians_grad,
)


def rcbrt_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """-g / (3 x^(4/3)) = -g out^4 / 3"""
    out_squared = out * out
    return g * (out_squared * out_squared) * (-1.0 / 3.0)


unary(
    "rcbrt",
    _quiet(lambda x: 1 / np.cbrt(x)),
    "1.0 / vm.cbrt({0})",
    rcbrt_grad,
    domain=(0.2, 3.0),
)


# ---------------------------------------------------------------------------
# smooth_l1
# ---------------------------------------------------------------------------


def _smooth_l1(x: np.ndarray, *, scalar: float) -> np.ndarray:
    sigma2 = x.dtype.type(scalar * scalar)
    with np.errstate(all="ignore"):
        inside = np.abs(x) < 1 / sigma2
        # MXNet's order, 0.5 x x sigma^2: with sigma 0 a huge x gives NaN, as there
        return np.where(inside, 0.5 * x * x * sigma2, np.abs(x) - 0.5 / sigma2).astype(x.dtype)


def smooth_l1_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g sigma^2 x where |x| < 1/sigma^2, else g sign(x)"""
    sigma2 = scalar * scalar
    with np.errstate(all="ignore"):
        threshold = float(np.float64(1.0) / np.float64(sigma2))  # sigma 0: inf, no raise
    inside = F.abs(x) < threshold
    return g * (inside * x * sigma2 + (1 - inside) * F.sign(x))


register(
    OpDef(
        name="smooth_l1",
        infer=same_as_first,
        impl=_smooth_l1,
        grad=smooth_l1_grad,
        attrs={"scalar": Attr(as_float, 1.0)},
        kind="elemwise",
        scalar="(0.5 * {0} * {0} * ({scalar} * {scalar}) if abs({0}) < 1.0 / ({scalar} * "
        "{scalar}) else abs({0}) - 0.5 / ({scalar} * {scalar}))",
        method="smooth_l1",
        doc="Smooth L1 (Huber-like) loss with sigma = ``scalar``: 0.5 (sigma x)^2 where "
        "|x| < 1/sigma^2, else |x| - 0.5/sigma^2.\n\nGradient\n--------\n"
        + (smooth_l1_grad.__doc__ or ""),
        test=TestSpec(attrs={"scalar": 1.3}, order=1),
    )
)


# ---------------------------------------------------------------------------
# hypot
# ---------------------------------------------------------------------------


def hypot_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g a / out, g b / out"""
    return g * a / out, g * b / out


binary("broadcast_hypot", np.hypot, "np.hypot({0}, {1})", hypot_grad, domain=(0.3, 2.0))
binary(
    "_hypot",
    np.hypot,
    "np.hypot({0}, {1})",
    hypot_grad,
    broadcast=False,
    domain=(0.3, 2.0),
    aliases=("_Hypot",),
)


def hypot_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g x / out"""
    return g * x / out


with_scalar(
    "_hypot_scalar",
    lambda x, scalar: np.hypot(x, x.dtype.type(scalar)),
    "np.hypot({0}, {scalar})",
    hypot_scalar_grad,
)


# ---------------------------------------------------------------------------
# logical ops and equal-shape comparisons (0/1 in the input dtype, no gradient)
# ---------------------------------------------------------------------------

unary(
    "logical_not",
    lambda x: as_dtype_of(x == 0, x),
    "({0} == 0)",
    None,
    differentiable=False,
    method=False,
    doc="1 where x is 0, else 0 (NaN counts as true).",
)

_LOGICAL: tuple[tuple[str, np.ufunc, str], ...] = (
    ("and", np.logical_and, "(({0} != 0) & ({1} != 0))"),
    ("or", np.logical_or, "(({0} != 0) | ({1} != 0))"),
    ("xor", np.logical_xor, "(({0} != 0) != ({1} != 0))"),
)
for _word, _ufunc, _template in _LOGICAL:
    binary(
        f"broadcast_logical_{_word}",
        lambda a, b, _u=_ufunc: as_dtype_of(_u(a, b), a),
        _template,
        None,
        differentiable=False,
        doc=f"Logical {_word} of lhs and rhs (nonzero is true), as 0/1.",
    )
    binary(
        f"_logical_{_word}",
        lambda a, b, _u=_ufunc: as_dtype_of(_u(a, b), a),
        _template,
        None,
        broadcast=False,
        differentiable=False,
        aliases=(f"_Logical_{_word.capitalize()}",),
        doc=f"Logical {_word} of two arrays of one shape (nonzero is true), as 0/1.",
    )
    with_scalar(
        f"_logical_{_word}_scalar",
        lambda x, scalar, _u=_ufunc: as_dtype_of(_u(x, x.dtype.type(scalar)), x),
        _template.replace("{1}", "{scalar}"),
        None,
        differentiable=False,
        doc=f"Logical {_word} of x and a scalar (nonzero is true), as 0/1.",
    )

_COMPARISONS: tuple[tuple[str, np.ufunc, str, str], ...] = (
    ("equal", np.equal, "==", "_Equal"),
    ("not_equal", np.not_equal, "!=", "_Not_Equal"),
    ("greater", np.greater, ">", "_Greater"),
    ("greater_equal", np.greater_equal, ">=", "_Greater_Equal"),
    ("lesser", np.less, "<", "_Lesser"),
    ("lesser_equal", np.less_equal, "<=", "_Lesser_Equal"),
)
for _word, _ufunc, _symbol, _legacy in _COMPARISONS:
    binary(
        f"_{_word}",
        lambda a, b, _u=_ufunc: as_dtype_of(_u(a, b), a),
        f"({{0}} {_symbol} {{1}})",
        None,
        broadcast=False,
        differentiable=False,
        aliases=(_legacy,),
        doc=f"1 where lhs {_symbol} rhs (arrays of one shape), else 0.",
    )


# ---------------------------------------------------------------------------
# MXNet's legacy spellings of ops registered elsewhere
# ---------------------------------------------------------------------------

LEGACY_ALIASES = {
    "elemwise_add": ("_Plus", "_grad_add"),
    "elemwise_sub": ("_Minus",),
    "elemwise_mul": ("_Mul",),
    "broadcast_power": ("_Power",),
    "broadcast_maximum": ("_Maximum",),
    "broadcast_minimum": ("_Minimum",),
    "broadcast_mod": ("_Mod",),
    "_rminus_scalar": ("_RMinusScalar",),
    "_mul_scalar": ("_MulScalar",),
    "_div_scalar": ("_DivScalar",),
    "_rdiv_scalar": ("_RDivScalar",),
    "_power_scalar": ("_PowerScalar",),
    "_rpower_scalar": ("_RPowerScalar",),
    "_maximum_scalar": ("_MaximumScalar",),
    "_minimum_scalar": ("_MinimumScalar",),
    "_mod_scalar": ("_ModScalar",),
    "_rmod_scalar": ("_RModScalar",),
    "_hypot_scalar": ("_HypotScalar",),
    "_equal_scalar": ("_EqualScalar",),
    "_not_equal_scalar": ("_NotEqualScalar",),
    "_greater_scalar": ("_GreaterScalar",),
    "_greater_equal_scalar": ("_GreaterEqualScalar",),
    "_lesser_scalar": ("_LesserScalar",),
    "_lesser_equal_scalar": ("_LesserEqualScalar",),
    "_logical_and_scalar": ("_LogicalAndScalar",),
    "_logical_or_scalar": ("_LogicalOrScalar",),
    "_logical_xor_scalar": ("_LogicalXorScalar",),
    "_copy": ("_copyto",),
    # MXNet's sparse-aware forms, which on dense arrays are the plain ops
    "_plus_scalar": ("_PlusScalar", "_scatter_plus_scalar"),
    "_minus_scalar": ("_MinusScalar", "_scatter_minus_scalar"),
    "elemwise_div": ("_Div", "_scatter_elemwise_div"),
}


def add_aliases(name: str, aliases: tuple[str, ...]) -> None:
    """Register ``aliases`` as more names of the op registered as ``name``,
    recording them on its OpDef (where JSON import and the namespaces look)."""
    opdef = OPS[name]
    for alias in aliases:
        if alias in OPS:
            raise ValueError(f"op {alias!r} registered twice")
        OPS[alias] = opdef
    opdef.aliases = (*opdef.aliases, *aliases)


for _name, _aliases in LEGACY_ALIASES.items():
    add_aliases(_name, _aliases)
