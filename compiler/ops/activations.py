"""Activation functions beyond ``Activation``: LeakyReLU (leaky, elu, selu, gelu,
prelu), hard_sigmoid, log_sigmoid, mish and erfinv.

Derivatives are written in terms of the input with guarded exponentials
(``exp(min(x, 0))``), so no branch that is masked out can overflow into a NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_float, one_of, register
from .common import F, same_as_first, unary
from .elemwise import _erf, _quiet

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_PI_HALF = math.sqrt(math.pi) / 2.0


def _positive(x: Expr) -> Expr:
    """1 where x > 0, else 0, in x's dtype."""
    return F._greater_scalar(x, scalar=0.0)


def _exp_negative_part(x: Expr) -> Expr:
    """exp(min(x, 0)): exp(x) where it is used (x <= 0), never overflowing."""
    return F.exp(F._minimum_scalar(x, scalar=0.0))


# ---------------------------------------------------------------------------
# LeakyReLU
# ---------------------------------------------------------------------------

LEAKY_ATTRS = {
    "act_type": Attr(one_of("leaky", "elu", "selu", "gelu", "prelu"), "leaky"),
    "slope": Attr(as_float, 0.25),
    "lower_bound": Attr(as_float, 0.125),
    "upper_bound": Attr(as_float, 0.334),
}


def _leaky_inputs(attrs: dict) -> tuple[str, ...]:
    return ("data", "gamma") if attrs.get("act_type") == "prelu" else ("data",)


def _leaky_types(types: Sequence[TensorType], *, act_type: str, **_attrs: Any) -> list[TensorType]:
    data = types[0]
    if act_type == "prelu":
        if len(data.shape) < 2:
            raise GraphError("prelu needs data with a channel axis 1")
        if types[1].shape not in ((1,), (data.shape[1],)):
            raise GraphError(
                f"gamma must have shape (1,) or ({data.shape[1]},), got {types[1].shape}"
            )
        if types[1].dtype != data.dtype:
            raise GraphError("gamma and data dtypes differ")
    return [data]


def _channel_gamma(gamma: np.ndarray, ndim: int) -> np.ndarray:
    return gamma.reshape((1, -1) + (1,) * (ndim - 2))


def _leaky_relu(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    *,
    act_type: str,
    slope: float,
    lower_bound: float,
    upper_bound: float,
) -> np.ndarray:
    with np.errstate(over="ignore"):
        negative_exp = np.expm1(np.minimum(x, 0))
    if act_type == "leaky":
        out = np.where(x > 0, x, x * slope)
    elif act_type == "prelu":
        assert gamma is not None  # prelu's inputs include gamma
        out = np.where(x > 0, x, x * _channel_gamma(gamma, x.ndim))
    elif act_type == "elu":
        out = np.where(x > 0, x, slope * negative_exp)
    elif act_type == "selu":
        out = SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * negative_exp)
    else:
        out = 0.5 * x * (1 + _erf(x * _SQRT_HALF))
    return out.astype(x.dtype, copy=False)


def leaky_relu_grad(
    g: Expr,
    x: Expr,
    gamma: Expr | None = None,
    *,
    out: Expr,
    act_type: str,
    slope: float,
    lower_bound: float,
    upper_bound: float,
) -> Expr | tuple[Expr | None, ...]:
    """leaky: g (x > 0 ? 1 : slope); prelu also ggamma = sum(g min(x, 0)) per channel;
    elu: g (x > 0 ? 1 : slope e^x); selu: g lambda (x > 0 ? 1 : alpha e^x);
    gelu: g (Phi(x) + x phi(x))"""
    positive = _positive(x)
    if act_type == "leaky":
        return g * (positive + (1 - positive) * slope)
    if act_type == "prelu":
        channel_gamma = F.reshape(gamma, shape=(1, -1) + (1,) * (x.ndim - 2))
        grad_x = g * (positive + (1 - positive) * channel_gamma)
        grad_gamma = F.sum(g * F._minimum_scalar(x, scalar=0.0), axis=(1,), exclude=True)
        return grad_x, grad_gamma
    if act_type == "elu":
        return g * (positive + (1 - positive) * _exp_negative_part(x) * slope)
    if act_type == "selu":
        return g * (positive + (1 - positive) * _exp_negative_part(x) * SELU_ALPHA) * SELU_LAMBDA
    cdf = (F.erf(x * _SQRT_HALF) + 1) * 0.5
    density = F.exp(x * x * -0.5) * _INV_SQRT_2PI
    return g * (cdf + x * density)


def _leaky_template(attrs: dict) -> str | None:
    act_type = attrs["act_type"]
    if act_type == "leaky":
        return "({0} if {0} > 0 else {0} * {slope})"
    if act_type == "elu":
        return "({0} if {0} > 0 else {slope} * vm.expm1(min({0}, 0.0)))"
    if act_type == "selu":
        return (
            f"{SELU_LAMBDA!r} * ({{0}} if {{0}} > 0 else "
            f"{SELU_ALPHA!r} * vm.expm1(min({{0}}, 0.0)))"
        )
    if act_type == "gelu":
        return f"0.5 * {{0}} * (1 + vm.erf({{0}} * {_SQRT_HALF!r}))"
    return None  # prelu broadcasts gamma along axis 1: not a plain elementwise op


def _prelu_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (2, 3, 4)), rng.uniform(0.1, 0.5, (3,))]


register(
    OpDef(
        name="LeakyReLU",
        infer=_leaky_types,
        impl=_leaky_relu,
        grad=leaky_relu_grad,
        inputs=_leaky_inputs,
        attrs=LEAKY_ATTRS,
        kind="opaque",
        doc="Leaky rectifiers: leaky (slope x below 0), prelu (learned per-channel "
        "slope gamma), elu, selu, and gelu (exact, with erf).",
        test=TestSpec(make_inputs=_prelu_test_inputs, attrs={"act_type": "prelu"}, order=1),
    )
)


# ---------------------------------------------------------------------------
# elementwise activations
# ---------------------------------------------------------------------------


def hard_sigmoid_grad(g: Expr, x: Expr, *, out: Expr, alpha: float, beta: float) -> Expr:
    """g alpha where 0 < alpha x + beta < 1, else 0"""
    inside = F._greater_scalar(out, scalar=0.0) * F._lesser_scalar(out, scalar=1.0)
    return g * inside * alpha


def _hard_sigmoid(x: np.ndarray, *, alpha: float, beta: float) -> np.ndarray:
    return np.clip(x * alpha + beta, 0, 1).astype(x.dtype, copy=False)


register(
    OpDef(
        name="hard_sigmoid",
        infer=same_as_first,
        impl=_hard_sigmoid,
        grad=hard_sigmoid_grad,
        kind="elemwise",
        scalar="min(max({0} * {alpha} + {beta}, 0.0), 1.0)",
        attrs={"alpha": Attr(as_float, 0.2), "beta": Attr(as_float, 0.5)},
        method="hard_sigmoid",
        doc="clip(alpha x + beta, 0, 1).",
        test=TestSpec(domain=(-4.0, 4.0), order=1),
    )
)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0, -x).astype(x.dtype, copy=False)


def log_sigmoid_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g sigmoid(-x) = g (1 - sigmoid(x))"""
    return g * F.sigmoid(-x)


unary("log_sigmoid", _log_sigmoid, "-vm.softplus(-{0})", log_sigmoid_grad, domain=(-3.0, 3.0))


def _mish(x: np.ndarray) -> np.ndarray:
    return (x * np.tanh(np.logaddexp(0, x))).astype(x.dtype, copy=False)


def mish_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g (tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)) with sp = softplus(x)"""
    t = F.tanh(F.softrelu(x))
    return g * (t + x * F.sigmoid(x) * (1 - t * t))


unary("mish", _mish, "{0} * vm.tanh(vm.softplus({0}))", mish_grad, domain=(-3.0, 3.0))


_ERFINV_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_ERFINV_TAIL = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function: Giles' single-precision polynomials in
    w = -log(1 - y^2) as a first guess, refined by two Newton steps on erf
    (erf' = 2/sqrt(pi) exp(-x^2)); +-1 give +-inf and |y| > 1 NaN, as MXNet."""
    y = np.asarray(y)
    finite = np.abs(y) < 1
    safe = np.where(finite, y, 0.0).astype(np.float64)
    w = -np.log((1.0 - safe) * (1.0 + safe))
    central, tail = np.polyval(_ERFINV_CENTRAL, w - 2.5), np.polyval(_ERFINV_TAIL, np.sqrt(w) - 3.0)
    x = np.where(w < 5.0, central, tail) * safe
    erf = np.vectorize(math.erf, otypes=[np.float64])
    for _ in range(2):
        x = x - (erf(x) - safe) * _SQRT_PI_HALF * np.exp(x * x)
    out = np.where(finite, x, np.where(np.abs(y) == 1, np.copysign(np.inf, y), np.nan))
    return out.astype(y.dtype)


def erfinv_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """g sqrt(pi)/2 exp(erfinv(x)^2)"""
    return g * F.exp(out * out) * _SQRT_PI_HALF


register(
    OpDef(
        name="erfinv",
        infer=same_as_first,
        impl=_quiet(_erfinv),
        grad=erfinv_grad,
        kind="opaque",
        method="erfinv",
        doc="Inverse error function (no fused-kernel template yet: vmath has no erfinv).",
        test=TestSpec(domain=(-0.9, 0.9)),
    )
)
