"""Optimizer update ops: MXNet's ``sgd_update``, ``adam_update`` and the rest.

Each op is pure: it returns the new weight first, then the new value of every
state MXNet updates in place (momentum, moments, master weights), as declared by
``mutates``; the eager frontend writes those back into the state arrays, and
``out=weight`` writes the weight, as MXNet's calls do. The gradient is first
rescaled by ``rescale_grad`` and clipped to ``[-clip_gradient, clip_gradient]``
when ``clip_gradient >= 0`` (``-1``, the default, is off). Arithmetic is in the
weight's dtype, as MXNet's kernels compute.

Update ops have no gradient (``differentiable=False``): they are the end of a
training step, never part of what is differentiated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..ir import GraphError, TensorType
from ..registry import REQUIRED, Attr, OpDef, TestSpec, as_bool, as_float, as_int, register
from .common import require_same_dtype

# ---------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------

GRAD_ATTRS = {"rescale_grad": Attr(as_float, 1.0), "clip_gradient": Attr(as_float, -1.0)}


def _state_types(*state_inputs: int) -> Callable[..., list[TensorType]]:
    """The type rule of an update op whose inputs all have the weight's shape:
    the weight's type, then one per updated state input."""

    def infer(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
        weight = types[0]
        for t in types[1:]:
            if t.shape != weight.shape:
                raise GraphError(
                    f"every input must have the weight's shape {weight.shape}, got {t.shape}"
                )
        require_same_dtype(types)
        return [weight] + [types[i] for i in state_inputs]

    return infer


def _rescaled(
    grad: np.ndarray, rescale_grad: float, clip_gradient: float, out: np.ndarray | None = None
) -> np.ndarray:
    """rescale_grad * grad, clipped to [-clip_gradient, clip_gradient] when clip >= 0,
    into ``out`` if given. Without ``out`` it may return ``grad`` itself: callers
    never write into the result."""
    if out is not None:
        scaled = np.multiply(grad, grad.dtype.type(rescale_grad), out=out)
    else:
        scaled = grad if rescale_grad == 1.0 else grad * grad.dtype.type(rescale_grad)
    if clip_gradient >= 0:
        bound = grad.dtype.type(clip_gradient)
        scaled = np.clip(scaled, -bound, bound, out=None if scaled is grad else scaled)
    return scaled


def _f(like: np.ndarray, value: float) -> np.floating:
    """A scalar attribute in the arrays' dtype (float32 arithmetic stays float32)."""
    return like.dtype.type(value)


def _same_shape_inputs(
    count: int, positive: tuple[int, ...] = ()
) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """Test inputs: ``count`` arrays of one shape; those in ``positive`` are > 0
    (second-moment states)."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        return [
            rng.uniform(0.1, 1.0, (3, 4)) if i in positive else rng.uniform(-1, 1, (3, 4))
            for i in range(count)
        ]

    return make


def update_op(
    name: str,
    impl: Callable[..., Any],
    inputs: tuple[str, ...],
    attrs: dict,
    mutates: tuple[int, ...],
    test_attrs: dict,
    doc: str,
    positive: tuple[int, ...] = (),
    aliases: tuple[str, ...] = (),
    infer: Callable[..., list[TensorType]] | None = None,
) -> OpDef:
    """Register an update op: non-differentiable, states written back in place."""
    return register(
        OpDef(
            name=name,
            infer=infer or _state_types(*mutates),
            impl=impl,
            inputs=inputs,
            attrs=attrs,
            kind="update",
            mutates=mutates,
            differentiable=False,
            visible_outputs=1,
            aliases=aliases,
            doc=doc,
            test=TestSpec(make_inputs=_same_shape_inputs(len(inputs), positive), attrs=test_attrs),
        )
    )


# ---------------------------------------------------------------------------
# SGD, momentum SGD, Nesterov momentum
# ---------------------------------------------------------------------------

# SGD runs on every parameter of every training step: its implementations make as
# few temporaries as they can (fresh multi-MB arrays cost page faults), in the
# order of operations of MXNet's kernels.


def _sgd(
    weight: np.ndarray,
    grad: np.ndarray,
    *,
    lr: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    lazy_update: bool,
) -> np.ndarray:
    new = np.multiply(weight, _f(weight, 1 - lr * wd))
    step = _rescaled(grad, rescale_grad, clip_gradient, out=np.empty_like(new))
    step *= _f(weight, lr)
    new -= step
    return new


SGD_ATTRS = {
    "lr": Attr(as_float),
    "wd": Attr(as_float, 0.0),
    **GRAD_ATTRS,
    "lazy_update": Attr(as_bool, True),
}
MOMENTUM_ATTRS = {**SGD_ATTRS, "momentum": Attr(as_float, 0.0)}

update_op(
    "sgd_update",
    _sgd,
    ("weight", "grad"),
    SGD_ATTRS,
    (),
    {"lr": 0.1, "wd": 0.01, "clip_gradient": 0.5},
    "weight = (1 - lr wd) weight - lr clip(rescale_grad grad)",
)


def _sgd_mom(
    weight: np.ndarray,
    grad: np.ndarray,
    mom: np.ndarray,
    *,
    lr: float,
    momentum: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    lazy_update: bool,
) -> tuple[np.ndarray, ...]:
    new_mom = np.multiply(mom, _f(mom, momentum))
    scratch = np.multiply(weight, _f(mom, lr * wd))
    new_mom -= scratch
    _rescaled(grad, rescale_grad, clip_gradient, out=scratch)
    scratch *= _f(mom, lr)
    new_mom -= scratch
    np.add(weight, new_mom, out=scratch)
    return scratch, new_mom


update_op(
    "sgd_mom_update",
    _sgd_mom,
    ("weight", "grad", "mom"),
    MOMENTUM_ATTRS,
    (2,),
    {"lr": 0.1, "momentum": 0.9, "wd": 0.01},
    "mom = momentum mom - lr wd weight - lr clip(rescale_grad grad); weight = weight + mom",
)


def _nag_mom(
    weight: np.ndarray,
    grad: np.ndarray,
    mom: np.ndarray,
    *,
    lr: float,
    momentum: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
) -> tuple[np.ndarray, ...]:
    step = _f(weight, lr) * (_rescaled(grad, rescale_grad, clip_gradient) + _f(weight, wd) * weight)
    mom = _f(mom, momentum) * mom - step
    weight = weight + _f(weight, momentum) * mom - step
    return weight.astype(grad.dtype), mom.astype(grad.dtype)


update_op(
    "nag_mom_update",
    _nag_mom,
    ("weight", "grad", "mom"),
    {k: v for k, v in MOMENTUM_ATTRS.items() if k != "lazy_update"},
    (2,),
    {"lr": 0.1, "momentum": 0.9, "wd": 0.01},
    "step = lr (clip(rescale_grad grad) + wd weight); mom = momentum mom - step; "
    "weight = weight + momentum mom - step",
)


# multi-precision: float16 weight, float32 master copy (and momentum) updated in
# float32, the weight written as the master copy cast to float16


def _mp_types(*float32_inputs: int) -> Callable[..., list[TensorType]]:
    def infer(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
        weight = types[0]
        if types[1].dtype != weight.dtype:
            raise GraphError("grad must have the weight's dtype")
        # MXNet's master copy is float32; any float as wide as the weight works
        # (the generated tests run every input in float64 too).
        for i in float32_inputs:
            master = types[i].dtype
            if master != types[float32_inputs[0]].dtype or master.itemsize < weight.dtype.itemsize:
                raise GraphError(f"input {i} must be a float32 master copy, got {master}")
        for t in types[1:]:
            if t.shape != weight.shape:
                raise GraphError(f"every input must have the weight's shape {weight.shape}")
        return [weight] + [types[i] for i in float32_inputs]

    return infer


def _mp_inputs(count: int) -> Callable[[np.random.Generator], list[np.ndarray]]:
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        values = [rng.uniform(-1, 1, (3, 4)).astype(np.float16) for _ in range(2)]
        return values + [rng.uniform(-1, 1, (3, 4)).astype(np.float32) for _ in range(count - 2)]

    return make


def _mp_sgd(
    weight: np.ndarray,
    grad: np.ndarray,
    weight32: np.ndarray,
    *,
    lr: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    lazy_update: bool,
) -> tuple[np.ndarray, ...]:
    new32 = _sgd(
        weight32,
        grad.astype(weight32.dtype),
        lr=lr,
        wd=wd,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
        lazy_update=lazy_update,
    )
    return new32.astype(weight.dtype), new32


def _mp_sgd_mom(
    weight: np.ndarray,
    grad: np.ndarray,
    mom: np.ndarray,
    weight32: np.ndarray,
    *,
    lr: float,
    momentum: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    lazy_update: bool,
) -> tuple[np.ndarray, ...]:
    new32, mom = _sgd_mom(
        weight32,
        grad.astype(weight32.dtype),
        mom,
        lr=lr,
        momentum=momentum,
        wd=wd,
        rescale_grad=rescale_grad,
        clip_gradient=clip_gradient,
        lazy_update=lazy_update,
    )
    return new32.astype(weight.dtype), mom, new32


register(
    OpDef(
        name="mp_sgd_update",
        infer=_mp_types(2),
        impl=_mp_sgd,
        inputs=("weight", "grad", "weight32"),
        attrs=SGD_ATTRS,
        kind="update",
        mutates=(2,),
        differentiable=False,
        visible_outputs=1,
        doc="sgd_update on the float32 master copy weight32 (grad cast to float32); "
        "weight = weight32 cast to weight's dtype",
        test=TestSpec(make_inputs=_mp_inputs(3), attrs={"lr": 0.1, "wd": 0.01}),
    )
)
register(
    OpDef(
        name="mp_sgd_mom_update",
        infer=_mp_types(2, 3),
        impl=_mp_sgd_mom,
        inputs=("weight", "grad", "mom", "weight32"),
        attrs=MOMENTUM_ATTRS,
        kind="update",
        mutates=(2, 3),
        differentiable=False,
        visible_outputs=1,
        doc="sgd_mom_update on the float32 master copy weight32 and float32 mom; "
        "weight = weight32 cast to weight's dtype",
        test=TestSpec(make_inputs=_mp_inputs(4), attrs={"lr": 0.1, "momentum": 0.9, "wd": 0.01}),
    )
)


# ---------------------------------------------------------------------------
# Adam, AdamW
# ---------------------------------------------------------------------------


def _adam(
    weight: np.ndarray,
    grad: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    lazy_update: bool,
) -> tuple[np.ndarray, ...]:
    # Adam's weight decay joins the gradient before clipping, as MXNet's kernel does.
    g = grad * _f(grad, rescale_grad) + _f(grad, wd) * weight
    if clip_gradient >= 0:
        g = np.clip(g, -clip_gradient, clip_gradient).astype(grad.dtype)
    mean = _f(mean, beta1) * mean + _f(mean, 1 - beta1) * g
    var = _f(var, beta2) * var + _f(var, 1 - beta2) * g * g
    weight = weight - _f(weight, lr) * mean / (np.sqrt(var) + _f(var, epsilon))
    return weight.astype(grad.dtype), mean.astype(grad.dtype), var.astype(grad.dtype)


ADAM_MOMENTS = {
    "beta1": Attr(as_float, 0.9),
    "beta2": Attr(as_float, 0.999),
    "epsilon": Attr(as_float, 1e-8),
}
update_op(
    "adam_update",
    _adam,
    ("weight", "grad", "mean", "var"),
    {
        "lr": Attr(as_float),
        **ADAM_MOMENTS,
        "wd": Attr(as_float, 0.0),
        **GRAD_ATTRS,
        "lazy_update": Attr(as_bool, True),
    },
    (2, 3),
    {"lr": 0.01, "wd": 0.01, "clip_gradient": 0.8},
    "g = clip(rescale_grad grad + wd weight); mean = beta1 mean + (1 - beta1) g; "
    "var = beta2 var + (1 - beta2) g^2; weight -= lr mean / (sqrt(var) + epsilon)",
    positive=(3,),
)


def _adamw_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    if types[4].shape not in ((), (1,)):
        raise GraphError(f"rescale_grad must hold one value, got shape {types[4].shape}")
    return _state_types(2, 3)(types[:4])


def _adamw(
    weight: np.ndarray,
    grad: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    rescale_grad: np.ndarray,
    *,
    lr: float,
    eta: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    wd: float,
    clip_gradient: float,
) -> tuple[np.ndarray, ...]:
    scale = float(np.asarray(rescale_grad).reshape(-1)[0])
    if not np.isfinite(scale):
        # MXNet skips the whole update when the scale is inf or NaN (loss scaling
        # found an overflow).
        return weight.copy(), mean.copy(), var.copy()
    g = _rescaled(grad, scale, clip_gradient)
    mean = _f(mean, beta1) * mean + _f(mean, 1 - beta1) * g
    var = _f(var, beta2) * var + _f(var, 1 - beta2) * g * g
    step = _f(weight, lr) * mean / (np.sqrt(var) + _f(var, epsilon)) + _f(weight, wd) * weight
    weight = weight - _f(weight, eta) * step
    return weight.astype(grad.dtype), mean.astype(grad.dtype), var.astype(grad.dtype)


def _adamw_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(0.1, 1, (3, 4)),
        np.array([0.5]),
    ]


register(
    OpDef(
        name="_adamw_update",
        infer=_adamw_types,
        impl=_adamw,
        inputs=("weight", "grad", "mean", "var", "rescale_grad"),
        attrs={
            "lr": Attr(as_float),
            "eta": Attr(as_float),
            **ADAM_MOMENTS,
            "wd": Attr(as_float, 0.0),
            "clip_gradient": Attr(as_float, -1.0),
        },
        kind="update",
        mutates=(2, 3),
        differentiable=False,
        visible_outputs=1,
        aliases=("adamw_update", "_contrib_adamw_update"),
        doc="AdamW (decoupled weight decay; MXNet's contrib adamw_update): "
        "g = clip(rescale_grad grad), rescale_grad an array, the update skipped "
        "when it is not finite; mean, var as Adam; "
        "weight -= eta (lr mean / (sqrt(var) + epsilon) + wd weight)",
        test=TestSpec(make_inputs=_adamw_inputs, attrs={"lr": 0.01, "eta": 0.5, "wd": 0.1}),
    )
)


# ---------------------------------------------------------------------------
# RMSProp (Tieleman and Hinton) and centred RMSProp (Graves)
# ---------------------------------------------------------------------------


def _clip_weights(weight: np.ndarray, clip_weights: float) -> np.ndarray:
    if clip_weights >= 0:
        return np.clip(weight, -clip_weights, clip_weights)
    return weight


def _rmsprop(
    weight: np.ndarray,
    grad: np.ndarray,
    n: np.ndarray,
    *,
    lr: float,
    gamma1: float,
    epsilon: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    clip_weights: float,
) -> tuple[np.ndarray, ...]:
    g = grad * _f(grad, rescale_grad) + _f(grad, wd) * weight
    if clip_gradient >= 0:
        g = np.clip(g, -clip_gradient, clip_gradient)
    n = _f(n, 1 - gamma1) * g * g + _f(n, gamma1) * n
    weight = _clip_weights(weight - _f(weight, lr) * g / np.sqrt(n + _f(n, epsilon)), clip_weights)
    return weight.astype(grad.dtype), n.astype(grad.dtype)


RMS_ATTRS = {
    "lr": Attr(as_float),
    "gamma1": Attr(as_float, 0.95),
    "epsilon": Attr(as_float, 1e-8),
    "wd": Attr(as_float, 0.0),
    **GRAD_ATTRS,
    "clip_weights": Attr(as_float, -1.0),
}
update_op(
    "rmsprop_update",
    _rmsprop,
    ("weight", "grad", "n"),
    RMS_ATTRS,
    (2,),
    {"lr": 0.01, "wd": 0.01, "clip_weights": 0.9},
    "g = clip(rescale_grad grad + wd weight); n = (1 - gamma1) g^2 + gamma1 n; "
    "weight = clip_weights(weight - lr g / sqrt(n + epsilon))",
    positive=(2,),
)


def _rmspropalex(
    weight: np.ndarray,
    grad: np.ndarray,
    n: np.ndarray,
    g_avg: np.ndarray,
    delta: np.ndarray,
    *,
    lr: float,
    gamma1: float,
    gamma2: float,
    epsilon: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    clip_weights: float,
) -> tuple[np.ndarray, ...]:
    g = grad * _f(grad, rescale_grad) + _f(grad, wd) * weight
    if clip_gradient >= 0:
        g = np.clip(g, -clip_gradient, clip_gradient)
    n = _f(n, 1 - gamma1) * g * g + _f(n, gamma1) * n
    g_avg = _f(n, 1 - gamma1) * g + _f(n, gamma1) * g_avg
    delta = _f(n, gamma2) * delta - _f(n, lr) * g / np.sqrt(n - g_avg * g_avg + _f(n, epsilon))
    weight = _clip_weights(weight + delta, clip_weights)
    dtype = grad.dtype
    return weight.astype(dtype), n.astype(dtype), g_avg.astype(dtype), delta.astype(dtype)


def _rmspropalex_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    weight, grad, g_avg, delta = (rng.uniform(-1, 1, (3, 4)) for _ in range(4))
    n = g_avg * g_avg + rng.uniform(0.1, 1, (3, 4))  # n >= g_avg^2, as the states keep it
    return [weight, grad, n, g_avg, delta]


register(
    OpDef(
        name="rmspropalex_update",
        infer=_state_types(2, 3, 4),
        impl=_rmspropalex,
        inputs=("weight", "grad", "n", "g", "delta"),
        attrs={**RMS_ATTRS, "gamma2": Attr(as_float, 0.9)},
        kind="update",
        mutates=(2, 3, 4),
        differentiable=False,
        visible_outputs=1,
        doc="centred RMSProp: g = clip(rescale_grad grad + wd weight); "
        "n = (1 - gamma1) g^2 + gamma1 n; gavg = (1 - gamma1) g + gamma1 gavg; "
        "delta = gamma2 delta - lr g / sqrt(n - gavg^2 + epsilon); "
        "weight = clip_weights(weight + delta)",
        test=TestSpec(make_inputs=_rmspropalex_inputs, attrs={"lr": 0.01, "wd": 0.01}),
    )
)


# ---------------------------------------------------------------------------
# FTRL
# ---------------------------------------------------------------------------


def _ftrl(
    weight: np.ndarray,
    grad: np.ndarray,
    z: np.ndarray,
    n: np.ndarray,
    *,
    lr: float,
    lamda1: float,
    beta: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
) -> tuple[np.ndarray, ...]:
    g = _rescaled(grad, rescale_grad, clip_gradient)
    lr_ = _f(weight, lr)
    z = z + g - (np.sqrt(n + g * g) - np.sqrt(n)) * weight / lr_
    n = n + g * g
    weight = (np.sign(z) * _f(z, lamda1) - z) / ((_f(n, beta) + np.sqrt(n)) / lr_ + _f(n, wd))
    weight = weight * (np.abs(z) > lamda1)
    dtype = grad.dtype
    return weight.astype(dtype), z.astype(dtype), n.astype(dtype)


update_op(
    "ftrl_update",
    _ftrl,
    ("weight", "grad", "z", "n"),
    {
        "lr": Attr(as_float),
        "lamda1": Attr(as_float, 0.01),
        "beta": Attr(as_float, 1.0),
        "wd": Attr(as_float, 0.0),
        **GRAD_ATTRS,
    },
    (2, 3),
    {"lr": 0.1, "lamda1": 0.2, "wd": 0.01},
    "g = clip(rescale_grad grad); z += g - (sqrt(n + g^2) - sqrt(n)) weight / lr; "
    "n += g^2; weight = (sign(z) lamda1 - z) / ((beta + sqrt(n)) / lr + wd) "
    "where |z| > lamda1, else 0",
    positive=(3,),
)


# ---------------------------------------------------------------------------
# signSGD and Signum
# ---------------------------------------------------------------------------


def _signsgd(
    weight: np.ndarray,
    grad: np.ndarray,
    *,
    lr: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
) -> np.ndarray:
    g = _rescaled(grad, rescale_grad, clip_gradient)
    return (_f(weight, 1 - lr * wd) * weight - _f(weight, lr) * np.sign(g)).astype(grad.dtype)


update_op(
    "signsgd_update",
    _signsgd,
    ("weight", "grad"),
    {"lr": Attr(as_float), "wd": Attr(as_float, 0.0), **GRAD_ATTRS},
    (),
    {"lr": 0.1, "wd": 0.01},
    "weight = (1 - lr wd) weight - lr sign(clip(rescale_grad grad))",
)


def _signum(
    weight: np.ndarray,
    grad: np.ndarray,
    mom: np.ndarray,
    *,
    lr: float,
    momentum: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
    wd_lh: float,
) -> tuple[np.ndarray, ...]:
    g = _rescaled(grad, rescale_grad, clip_gradient) + _f(grad, wd) * weight
    mom = _f(mom, momentum) * mom - _f(mom, 1 - momentum) * g
    weight = _f(weight, 1 - lr * wd_lh) * weight + _f(weight, lr) * np.sign(mom)
    return weight.astype(grad.dtype), mom.astype(grad.dtype)


update_op(
    "signum_update",
    _signum,
    ("weight", "grad", "mom"),
    {
        "lr": Attr(as_float),
        "momentum": Attr(as_float, 0.0),
        "wd": Attr(as_float, 0.0),
        **GRAD_ATTRS,
        "wd_lh": Attr(as_float, 0.0),
    },
    (2,),
    {"lr": 0.1, "momentum": 0.9, "wd": 0.01, "wd_lh": 0.05},
    "mom = momentum mom - (1 - momentum) (clip(rescale_grad grad) + wd weight); "
    "weight = (1 - lr wd_lh) weight + lr sign(mom)",
)


# ---------------------------------------------------------------------------
# LAMB (two phases: the direction, then the trust-ratio step)
# ---------------------------------------------------------------------------


def _lamb_phase1_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    return _state_types(2, 3)(types)


def _lamb1(
    weight: np.ndarray,
    grad: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    *,
    beta1: float,
    beta2: float,
    epsilon: float,
    t: int,
    bias_correction: bool,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
) -> tuple[np.ndarray, ...]:
    g = _rescaled(grad, rescale_grad, clip_gradient)
    mean = _f(mean, beta1) * mean + _f(mean, 1 - beta1) * g
    var = _f(var, beta2) * var + _f(var, 1 - beta2) * g * g
    mean_hat, var_hat = mean, var
    if bias_correction:
        # the corrections in the arrays' precision, as MXNet's kernel computes them
        one = _f(mean, 1.0)
        mean_hat = mean / (one - _f(mean, beta1) ** t)
        var_hat = var / (one - _f(var, beta2) ** t)
    direction = mean_hat / (np.sqrt(var_hat) + _f(var, epsilon)) + _f(weight, wd) * weight
    dtype = grad.dtype
    return direction.astype(dtype), mean.astype(dtype), var.astype(dtype)


update_op(
    "lamb_update_phase1",
    _lamb1,
    ("weight", "grad", "mean", "var"),
    {
        "beta1": Attr(as_float, 0.9),
        "beta2": Attr(as_float, 0.999),
        "epsilon": Attr(as_float, 1e-6),
        "t": Attr(as_int, REQUIRED),
        "bias_correction": Attr(as_bool, True),
        "wd": Attr(as_float, REQUIRED),
        **GRAD_ATTRS,
    },
    (2, 3),
    {"t": 3, "wd": 0.01},
    "g = clip(rescale_grad grad); mean, var as Adam; with bias_correction "
    "mean /= 1 - beta1^t, var /= 1 - beta2^t; returns "
    "mean / (sqrt(var) + epsilon) + wd weight (the new weight is phase 2's)",
    positive=(3,),
    infer=_lamb_phase1_types,
)


def _lamb2_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    weight, direction, r1, r2 = types
    if direction.shape != weight.shape:
        raise GraphError("g must have the weight's shape")
    for t in (r1, r2):
        if t.shape not in ((), (1,)):
            raise GraphError(f"r1 and r2 must hold one value, got shape {t.shape}")
    return [weight]


def _lamb2(
    weight: np.ndarray,
    direction: np.ndarray,
    r1: np.ndarray,
    r2: np.ndarray,
    *,
    lr: float,
    lower_bound: float,
    upper_bound: float,
) -> np.ndarray:
    norm1 = float(np.asarray(r1).reshape(-1)[0])
    norm2 = float(np.asarray(r2).reshape(-1)[0])
    if lower_bound >= 0:
        norm1 = max(norm1, lower_bound)
    if upper_bound >= 0:
        norm1 = min(norm1, upper_bound)
    ratio = 1.0 if norm1 == 0 or norm2 == 0 else norm1 / norm2
    return (weight - _f(weight, lr * ratio) * direction).astype(weight.dtype)


def _lamb2_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(-1, 1, (3, 4)),
        np.array([1.5]),
        np.array([0.7]),
    ]


register(
    OpDef(
        name="lamb_update_phase2",
        infer=_lamb2_types,
        impl=_lamb2,
        inputs=("weight", "g", "r1", "r2"),
        attrs={
            "lr": Attr(as_float),
            "lower_bound": Attr(as_float, -1.0),
            "upper_bound": Attr(as_float, -1.0),
        },
        kind="update",
        differentiable=False,
        doc="r1 = clamp(r1, lower_bound, upper_bound) (a bound < 0 is off); "
        "weight -= lr (r1 / r2) g, the ratio 1 when r1 or r2 is 0",
        test=TestSpec(make_inputs=_lamb2_inputs, attrs={"lr": 0.1}),
    )
)


# ---------------------------------------------------------------------------
# multi-precision NAG
# ---------------------------------------------------------------------------


def _mp_nag_mom(
    weight: np.ndarray,
    grad: np.ndarray,
    mom: np.ndarray,
    weight32: np.ndarray,
    *,
    lr: float,
    momentum: float,
    wd: float,
    rescale_grad: float,
    clip_gradient: float,
) -> tuple[np.ndarray, ...]:
    g = _rescaled(grad.astype(weight32.dtype), rescale_grad, clip_gradient)
    step = _f(weight32, lr) * (g + _f(weight32, wd) * weight32)
    new32 = weight32 + _f(weight32, momentum) * (_f(mom, momentum) * mom - step) - step
    # MXNet's kernel updates the master copy in place first and reads it back for
    # the momentum: the momentum's weight decay uses the new master copy.
    mom = _f(mom, momentum) * mom - _f(mom, lr) * (g + _f(mom, wd) * new32)
    return new32.astype(weight.dtype), mom.astype(weight32.dtype), new32.astype(weight32.dtype)


register(
    OpDef(
        name="mp_nag_mom_update",
        infer=_mp_types(2, 3),
        impl=_mp_nag_mom,
        inputs=("weight", "grad", "mom", "weight32"),
        attrs={k: v for k, v in MOMENTUM_ATTRS.items() if k != "lazy_update"},
        kind="update",
        mutates=(2, 3),
        differentiable=False,
        visible_outputs=1,
        doc="nag_mom_update on the float32 master copy weight32: step = lr (clip("
        "rescale_grad grad) + wd weight32); weight32 += momentum (momentum mom - "
        "step) - step; mom = momentum mom - lr (clip(rescale_grad grad) + wd "
        "weight32_new) (MXNet's in-place reading); weight = weight32 cast",
        test=TestSpec(make_inputs=_mp_inputs(4), attrs={"lr": 0.1, "momentum": 0.9, "wd": 0.01}),
    )
)
