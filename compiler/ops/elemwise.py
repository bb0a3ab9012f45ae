"""Elementwise ops: unary math, binary arithmetic with broadcasting, scalar forms
and comparisons. Each op is one call with its numpy implementation, its kernel
template and its gradient rule right above it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_dtype_name, as_float, register
from .common import (
    F,
    as_dtype_of,
    binary,
    integer_truncating,
    same_as_first,
    unary,
    with_scalar,
)

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _quiet(ufunc: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """Wrap a numpy function so overflow to inf or a NaN result does not warn:
    MXNet returns such values silently, and so do we."""

    def impl(*args: np.ndarray, **attrs: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            return ufunc(*args, **attrs)

    impl.__name__ = getattr(ufunc, "__name__", "impl")
    return impl


# ---------------------------------------------------------------------------
# unary math
# ---------------------------------------------------------------------------


def negative_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """-g"""
    return -g


unary("negative", np.negative, "-{0}", negative_grad)


def exp_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g * exp(x), reusing the output"""
    return g * out


unary("exp", _quiet(np.exp), "vm.exp({0})", exp_grad)


def expm1_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g * (out + 1)"""
    return g * (out + 1)


unary("expm1", _quiet(np.expm1), "vm.expm1({0})", expm1_grad)


def log_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / x"""
    return g / x


unary("log", _quiet(np.log), "vm.log({0})", log_grad, domain=(0.2, 3.0))


def log2_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (x ln 2)"""
    return g / (x * _LN2)


unary("log2", _quiet(np.log2), "vm.log2({0})", log2_grad, domain=(0.2, 3.0))


def log10_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (x ln 10)"""
    return g / (x * _LN10)


unary("log10", _quiet(np.log10), "vm.log10({0})", log10_grad, domain=(0.2, 3.0))


def log1p_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (1 + x)"""
    return g / (x + 1)


unary("log1p", _quiet(np.log1p), "vm.log1p({0})", log1p_grad, domain=(-0.5, 2.0))


def sqrt_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (2 sqrt(x))"""
    return g * 0.5 / out


unary("sqrt", _quiet(np.sqrt), "vm.sqrt({0})", sqrt_grad, domain=(0.2, 3.0))


def rsqrt_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """-g / (2 x^1.5) = -0.5 g out^3"""
    return g * (out * out * out) * -0.5


unary("rsqrt", _quiet(lambda x: 1 / np.sqrt(x)), "vm.rsqrt({0})", rsqrt_grad, domain=(0.2, 3.0))


def cbrt_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (3 out^2)"""
    return g / (out * out * 3)


unary("cbrt", np.cbrt, "vm.cbrt({0})", cbrt_grad, domain=(0.2, 3.0))


def square_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """2 g x"""
    return g * x * 2


unary("square", np.square, "{0} * {0}", square_grad)


def reciprocal_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """-g / x^2 = -g out^2"""
    return -g * out * out


unary("reciprocal", _quiet(np.reciprocal), "1 / {0}", reciprocal_grad, domain=(0.3, 2.0))


def abs_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g sign(x)"""
    return g * F.sign(x)


unary("abs", np.abs, "abs({0})", abs_grad)


def zero_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """0: piecewise constant (MXNet's gradient of sign, round, floor, ceil)"""
    return F.zeros_like(x)


unary("sign", np.sign, "vm.sign({0})", zero_grad)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    # MXNet's round sends halves away from zero (numpy's goes to even), and keeps
    # the sign of zero (round(-0.0) and round(-0.2) are -0.0), as C's round does.
    whole = np.trunc(x)
    return np.copysign(whole + np.sign(x) * (np.abs(x - whole) >= 0.5), x)


unary(
    "round",
    _round_half_away,
    "np.copysign(np.trunc({0}) + vm.sign({0}) * (abs({0} - np.trunc({0})) >= 0.5), {0})",
    zero_grad,
)


def _rint_halves_down(x: np.ndarray) -> np.ndarray:
    # MXNet's rint takes the floor when x is as near it as the ceiling: halves go
    # down (-0.5 -> -1, 0.5 -> 0, 2.5 -> 2); numpy's go to even.
    low, high = np.floor(x), np.ceil(x)
    return np.where(x - low <= high - x, low, high).astype(x.dtype, copy=False)


unary(
    "rint",
    _rint_halves_down,
    "(np.floor({0}) if {0} - np.floor({0}) <= np.ceil({0}) - {0} else np.ceil({0}))",
    zero_grad,
)
unary("floor", np.floor, "np.floor({0})", zero_grad)
unary("ceil", np.ceil, "np.ceil({0})", zero_grad)
unary("trunc", np.trunc, "np.trunc({0})", zero_grad)
unary("fix", np.fix, "np.trunc({0})", zero_grad)


def sin_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g cos(x)"""
    return g * F.cos(x)


unary("sin", np.sin, "vm.sin({0})", sin_grad)


def cos_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """-g sin(x)"""
    return -g * F.sin(x)


unary("cos", np.cos, "vm.cos({0})", cos_grad)


def tan_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g (1 + tan^2 x)"""
    return g * (out * out + 1)


unary("tan", np.tan, "vm.tan({0})", tan_grad, domain=(-1.2, 1.2))


def arcsin_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / sqrt(1 - x^2)"""
    return g * F.rsqrt(1 - x * x)


unary("arcsin", _quiet(np.arcsin), "vm.arcsin({0})", arcsin_grad, domain=(-0.9, 0.9))


def arccos_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """-g / sqrt(1 - x^2)"""
    return -g * F.rsqrt(1 - x * x)


unary("arccos", _quiet(np.arccos), "vm.arccos({0})", arccos_grad, domain=(-0.9, 0.9))


def arctan_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (1 + x^2)"""
    return g / (x * x + 1)


unary("arctan", np.arctan, "vm.arctan({0})", arctan_grad)


def sinh_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g cosh(x)"""
    return g * F.cosh(x)


unary("sinh", _quiet(np.sinh), "vm.sinh({0})", sinh_grad)


def cosh_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g sinh(x)"""
    return g * F.sinh(x)


unary("cosh", _quiet(np.cosh), "vm.cosh({0})", cosh_grad)


def tanh_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g (1 - tanh^2 x), reusing the output"""
    return g * (1 - out * out)


unary("tanh", np.tanh, "vm.tanh({0})", tanh_grad)


def arcsinh_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / sqrt(x^2 + 1)"""
    return g * F.rsqrt(x * x + 1)


unary("arcsinh", np.arcsinh, "vm.arcsinh({0})", arcsinh_grad)


def arccosh_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / sqrt(x^2 - 1)"""
    return g * F.rsqrt(x * x - 1)


unary("arccosh", _quiet(np.arccosh), "vm.arccosh({0})", arccosh_grad, domain=(1.2, 3.0))


def arctanh_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (1 - x^2)"""
    return g / (1 - x * x)


unary("arctanh", _quiet(np.arctanh), "vm.arctanh({0})", arctanh_grad, domain=(-0.8, 0.8))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def sigmoid_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g out (1 - out)"""
    return g * out * (1 - out)


unary("sigmoid", _sigmoid, "vm.sigmoid({0})", sigmoid_grad)


def relu_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g (x > 0), NaN where x is NaN: MXNet's relu passes NaN on both ways
    (``Activation(act_type='relu')`` does not: see ops/nn.py).

    Written on the output (``out > 0`` exactly when ``x > 0``, and ``out`` is
    NaN exactly where ``x`` is): the output is kept anyway (the next layer
    reads it), so the forward stores no mask and need not keep ``x``."""
    return g * F.where(out == out, out > 0, out)


unary(
    "relu", lambda x: np.maximum(x, 0), "vm.maximum({0}, 0)", relu_grad, domain=(-2.0, 2.0), order=1
)


def _softsign(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.abs(x))


def softsign_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g / (1 + |x|)^2"""
    denominator = F.abs(x) + 1
    return g / (denominator * denominator)


unary("softsign", _softsign, "{0} / (1 + abs({0}))", softsign_grad)


def _softrelu(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


def softrelu_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g sigmoid(x)"""
    return g * F.sigmoid(x)


unary("softrelu", _softrelu, "vm.softplus({0})", softrelu_grad, method=False)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x.copy()


def erf_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g 2/sqrt(pi) exp(-x^2)"""
    return g * F.exp(-(x * x)) * _TWO_OVER_SQRT_PI


unary("erf", _erf, "vm.erf({0})", erf_grad)


def identity_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g"""
    return g


unary("_copy", np.copy, "{0}", identity_grad, method=False, aliases=("identity",))

# stop_gradient has no gradient rule: differentiation stops at it.
unary(
    "stop_gradient",
    np.copy,
    "{0}",
    None,
    aliases=("BlockGrad",),
    differentiable=False,
    method=False,
    doc="Identity that blocks gradients.",
)


def _clip(x: np.ndarray, a_min: float, a_max: float) -> np.ndarray:
    return np.clip(x, a_min, a_max)


def clip_grad(g: Expr, x: Expr, *, out: Expr, a_min: float, a_max: float) -> Expr:
    """g where a_min <= x <= a_max, else 0"""
    return g * ((x >= a_min) * (x <= a_max))


register(
    OpDef(
        name="clip",
        infer=same_as_first,
        impl=_clip,
        grad=clip_grad,
        attrs={"a_min": Attr(as_float), "a_max": Attr(as_float)},
        kind="elemwise",
        scalar="vm.minimum(vm.maximum({0}, {a_min}), {a_max})",
        method="clip",
        doc="Clip values to [a_min, a_max].",
        test=TestSpec(attrs={"a_min": -1.0, "a_max": 1.0}, order=1),
    )
)


def _constant_like(value: float) -> Callable[[np.ndarray], np.ndarray]:
    def impl(x: np.ndarray) -> np.ndarray:
        return np.full_like(x, value)

    return impl


register(
    OpDef(
        name="zeros_like",
        infer=same_as_first,
        impl=_constant_like(0),
        kind="elemwise",
        scalar="0",
        differentiable=False,
        shape_only=(0,),
        doc="Zeros of the input's shape and dtype.",
        test=TestSpec(),
    )
)
register(
    OpDef(
        name="ones_like",
        infer=same_as_first,
        impl=_constant_like(1),
        kind="elemwise",
        scalar="1",
        differentiable=False,
        shape_only=(0,),
        doc="Ones of the input's shape and dtype.",
        test=TestSpec(),
    )
)


# ---------------------------------------------------------------------------
# binary arithmetic (broadcast_* broadcast, elemwise_* need equal shapes)
# ---------------------------------------------------------------------------


def add_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g, g"""
    return g, g


def sub_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g, -g"""
    return g, -g


def mul_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g b, g a"""
    return g * b, g * a


def div_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g / b, -g a / b^2 = -g out / b"""
    return g / b, -g * out / b


def _equal_shapes(
    impl: Callable[..., np.ndarray],
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``impl`` for an ``elemwise_*`` op: numpy would broadcast, MXNet refuses, and the
    eager path must refuse as recording does (found by the random-graph tests)."""

    def checked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.shape != b.shape:
            raise GraphError(
                f"input shapes {a.shape} and {b.shape} differ "
                "(elemwise ops do not broadcast; use broadcast_*)"
            )
        return impl(a, b)

    checked.__name__ = getattr(impl, "__name__", "elemwise")
    return checked


for _suffix, _impl, _template, _rule in (
    ("add", np.add, "{0} + {1}", add_grad),
    ("sub", np.subtract, "{0} - {1}", sub_grad),
    ("mul", np.multiply, "{0} * {1}", mul_grad),
    ("div", _quiet(integer_truncating(np.divide)), "{0} / {1}", div_grad),
):
    binary(
        f"broadcast_{_suffix}",
        _impl,
        _template,
        _rule,
        aliases=("broadcast_plus",)
        if _suffix == "add"
        else ("broadcast_minus",)
        if _suffix == "sub"
        else (),
    )
    binary(
        f"elemwise_{_suffix}",
        _equal_shapes(_impl),
        _template,
        _rule,
        broadcast=False,
        aliases=("_plus", "_add")
        if _suffix == "add"
        else ("_minus", "_sub")
        if _suffix == "sub"
        else ("_mul",)
        if _suffix == "mul"
        else ("_div",),
    )


def power_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g b a^(b-1), g out ln(a)"""
    return g * b * a ** (b - 1), g * out * F.log(a)


binary(
    "broadcast_power",
    _quiet(np.power),
    "vm.pow({0}, {1})",
    power_grad,
    domain=(0.5, 2.0),
)


def maximum_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g where a >= b, g where a < b"""
    return g * (a >= b), g * (a < b)


def minimum_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g where a <= b, g where a > b"""
    return g * (a <= b), g * (a > b)


binary("broadcast_maximum", np.maximum, "vm.maximum({0}, {1})", maximum_grad)
binary("broadcast_minimum", np.minimum, "vm.minimum({0}, {1})", minimum_grad)


def _integral(x: Expr) -> bool:
    # MXNet's gradient of an integer mod is zero: the result is piecewise constant
    return np.dtype(x.dtype).kind in "iub"


def mod_grad(g: Expr, a: Expr, b: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """g, -g floor(a / b); zeros for integer arrays, as MXNet"""
    if _integral(a):
        return F.zeros_like(g), F.zeros_like(g)
    return g, -g * F.floor(a / b)


binary(
    "broadcast_mod",
    _quiet(np.mod),
    "vm.mod({0}, {1})",
    mod_grad,
    domain=(0.5, 2.0),
)

# MXNet's equal-shape forms of the four above: what Symbol's ``**`` and ``%`` and
# ``sym.maximum``/``minimum``/``pow`` of two symbols build (they refuse broadcasting)
for _name, _impl, _template, _rule, _domain in (
    ("_power", _quiet(np.power), "vm.pow({0}, {1})", power_grad, (0.5, 2.0)),
    ("_maximum", np.maximum, "vm.maximum({0}, {1})", maximum_grad, (-2.0, 2.0)),
    ("_minimum", np.minimum, "vm.minimum({0}, {1})", minimum_grad, (-2.0, 2.0)),
    ("_mod", _quiet(np.mod), "vm.mod({0}, {1})", mod_grad, (0.5, 2.0)),
):
    binary(_name, _equal_shapes(_impl), _template, _rule, broadcast=False, domain=_domain)


# comparisons: 0/1 in the input dtype, no gradient
for _name, _ufunc, _symbol in (
    ("equal", np.equal, "=="),
    ("not_equal", np.not_equal, "!="),
    ("greater", np.greater, ">"),
    ("greater_equal", np.greater_equal, ">="),
    ("lesser", np.less, "<"),
    ("lesser_equal", np.less_equal, "<="),
):
    binary(
        f"broadcast_{_name}",
        lambda a, b, _u=_ufunc: as_dtype_of(_u(a, b), a),
        f"({{0}} {_symbol} {{1}})",
        None,
        differentiable=False,
        doc=f"1 where lhs {_symbol} rhs, else 0.",
    )
    with_scalar(
        f"_{_name}_scalar",
        lambda x, scalar, _u=_ufunc: as_dtype_of(_u(x, scalar), x),
        f"({{0}} {_symbol} {{scalar}})",
        None,
        differentiable=False,
        doc=f"1 where x {_symbol} scalar, else 0.",
    )


# ---------------------------------------------------------------------------
# ops with a scalar attribute (what MXNet records for ``x + 1``, ``2 / x`` ...)
# ---------------------------------------------------------------------------


def scalar_identity_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g"""
    return g


def scalar_negate_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """-g"""
    return -g


def mul_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g s"""
    return g * scalar


def div_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g / s"""
    return g / scalar


def rdiv_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """-g s / x^2 = -g out / x"""
    return -g * out / x


def power_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g s x^(s-1)"""
    return g * (x ** (scalar - 1)) * scalar


def rpower_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g out ln(s) (ln of 0 is -inf and of a negative s NaN, as in C: math.log
    would raise while differentiating)"""
    with np.errstate(all="ignore"):
        return g * out * float(np.log(np.float64(scalar)))


def maximum_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g where x >= s"""
    return g * (x >= scalar)


def minimum_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g where x <= s"""
    return g * (x <= scalar)


def mod_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """g; zero for integer arrays, as MXNet"""
    return F.zeros_like(g) if _integral(x) else g


def rmod_scalar_grad(g: Expr, x: Expr, *, out: Expr, scalar: float) -> Expr:
    """-g floor(s / x); zero for integer arrays, as MXNet"""
    return F.zeros_like(g) if _integral(x) else -g * F.floor(scalar / x)


with_scalar("_plus_scalar", lambda x, scalar: x + scalar, "{0} + {scalar}", scalar_identity_grad)
with_scalar("_minus_scalar", lambda x, scalar: x - scalar, "{0} - {scalar}", scalar_identity_grad)
with_scalar("_rminus_scalar", lambda x, scalar: scalar - x, "{scalar} - {0}", scalar_negate_grad)
with_scalar("_mul_scalar", lambda x, scalar: x * scalar, "{0} * {scalar}", mul_scalar_grad)
with_scalar("_div_scalar", _quiet(lambda x, scalar: x / scalar), "{0} / {scalar}", div_scalar_grad)
with_scalar(
    "_rdiv_scalar",
    _quiet(lambda x, scalar: scalar / x),
    "{scalar} / {0}",
    rdiv_scalar_grad,
    domain=(0.5, 2.0),
)


def _power_scalar_template(attrs: dict) -> str:
    # numpy computes array ** 0.5, 2, 1, -1 and 0 as sqrt, square, copy, reciprocal
    # and ones (sqrt(-inf) is NaN where pow(-inf, 0.5) is inf): so must the kernel
    special = {0.5: "vm.sqrt({0})", 2.0: "{0} * {0}", 1.0: "{0}", -1.0: "1.0 / {0}", 0.0: "1.0"}
    scalar = attrs["scalar"]
    if type(scalar) is float and scalar in special:
        return special[scalar]
    return "vm.pow({0}, {scalar})"


with_scalar(
    "_power_scalar",
    _quiet(lambda x, scalar: x**scalar),
    _power_scalar_template,
    power_scalar_grad,
    domain=(0.5, 2.0),
)
with_scalar(
    "_rpower_scalar",
    _quiet(lambda x, scalar: scalar**x),
    "vm.pow({scalar}, {0})",
    rpower_scalar_grad,
)
with_scalar(
    "_maximum_scalar",
    lambda x, scalar: np.maximum(x, np.asarray(scalar, x.dtype)),
    "vm.maximum({0}, {scalar})",
    maximum_scalar_grad,
    test_scalar=0.3,
)
with_scalar(
    "_minimum_scalar",
    lambda x, scalar: np.minimum(x, np.asarray(scalar, x.dtype)),
    "vm.minimum({0}, {scalar})",
    minimum_scalar_grad,
    test_scalar=0.3,
)
with_scalar(
    "_mod_scalar",
    _quiet(lambda x, scalar: np.mod(x, scalar)),
    "vm.mod({0}, {scalar})",
    mod_scalar_grad,
    domain=(0.1, 1.4),
)
with_scalar(
    "_rmod_scalar",
    _quiet(lambda x, scalar: np.mod(scalar, x)),
    "vm.mod({scalar}, {0})",
    rmod_scalar_grad,
    domain=(1.6, 2.9),
)


# ---------------------------------------------------------------------------
# casting
# ---------------------------------------------------------------------------


def _cast_types(types: Sequence[TensorType], *, dtype: str) -> list[TensorType]:
    return [types[0]._replace(dtype=np.dtype(dtype))]


def cast_grad(g: Expr, x: Expr, *, out: Expr, dtype: str) -> Expr:
    """g cast back to the input's dtype"""
    return F.Cast(g, dtype=x.dtype.name)


register(
    OpDef(
        name="Cast",
        aliases=("cast",),
        infer=_cast_types,
        impl=lambda x, dtype: x.astype(dtype),
        grad=cast_grad,
        attrs={"dtype": Attr(as_dtype_name)},
        kind="elemwise",
        scalar="{0}",
        doc="Convert to ``dtype``.",
        test=TestSpec(attrs={"dtype": "float64"}),
    )
)
