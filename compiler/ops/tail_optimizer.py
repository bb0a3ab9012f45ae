"""MXNet's ftml_update and its aggregated SGD updates: multi_sgd_update,
multi_sgd_mom_update, their multi-precision forms multi_mp_sgd_update and
multi_mp_sgd_mom_update, and the ``preloaded_`` forms of all four, which take the
learning rates and weight decays as the last two input arrays instead of
attributes.

Inputs come in groups per weight: (weight, grad), plus mom, plus weight32 (the
float32 master copy) as the op's name says. Each weight's update is the single
op's (``sgd_update``, ``sgd_mom_update``, ``mp_sgd_update``, ``mp_sgd_mom_update``
in compiler/ops/optimizer.py). The outputs are the new weights; the states
(momenta, master copies) are updated in place in their input arrays, as MXNet
does: how many there are depends on ``num_weights``, so they cannot be declared as
extra outputs (``OpDef.mutates`` is fixed per op), and the ops are ``opaque`` so
that they run at once, never deferred.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..ir import GraphError, TensorType
from ..registry import OPS, Attr, OpDef, TestSpec, as_bool, as_float, as_int, as_shape, register
from .optimizer import (
    ADAM_MOMENTS,
    _adamw,
    _lamb1,
    _lamb2,
    _mp_sgd,
    _mp_sgd_mom,
    _rescaled,
    _sgd,
    _sgd_mom,
    update_op,
)


def _as_floats(value: Any) -> tuple[float, ...]:
    """A tuple of floats, from Python or MXNet's string spelling "(0.1, 0.2)"."""
    if isinstance(value, str):
        value = [v for v in value.strip("()[] ").split(",") if v.strip()]
    if isinstance(value, (int, float)):
        value = (value,)
    return tuple(float(v) for v in value)


# per op: (the single update, the group size, the states' positions in a group,
# whether the group's master copy is float32 and the weight narrower)
_VARIANTS: dict[str, tuple[Callable[..., Any], int, tuple[int, ...]]] = {
    "sgd": (_sgd, 2, ()),
    "sgd_mom": (_sgd_mom, 3, (2,)),
    "mp_sgd": (_mp_sgd, 3, (2,)),
    "mp_sgd_mom": (_mp_sgd_mom, 4, (2, 3)),
}


def _groups(count: int, size: int, num_weights: int, preloaded: bool) -> int:
    expected = num_weights * size + (2 if preloaded else 0)
    if count != expected:
        raise GraphError(
            f"expects {num_weights} groups of {size} inputs"
            f"{' and the lrs and wds arrays' if preloaded else ''}: {expected}, got {count}"
        )
    return num_weights


def _make(variant: str, preloaded: bool) -> None:
    update, size, states = _VARIANTS[variant]
    momentum = variant.endswith("mom")
    name = f"{'preloaded_' if preloaded else ''}multi_{variant}_update"

    def infer(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
        n = _groups(len(types), size, attrs["num_weights"], preloaded)
        weights = [types[i * size] for i in range(n)]
        for i, weight in enumerate(weights):
            for t in types[i * size + 1 : (i + 1) * size]:
                if t.shape != weight.shape:
                    raise GraphError(f"group {i}: every input must have shape {weight.shape}")
        if not preloaded and (len(attrs["lrs"]) != n or len(attrs["wds"]) != n):
            raise GraphError(f"lrs and wds must have {n} values each")
        return weights

    def impl(*arrays: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
        n = attrs["num_weights"]
        if preloaded:
            lrs, wds = arrays[-2].astype(np.float64), arrays[-1].astype(np.float64)
        else:
            lrs, wds = np.array(attrs["lrs"]), np.array(attrs["wds"])
        options = {"rescale_grad": attrs["rescale_grad"], "clip_gradient": attrs["clip_gradient"]}
        if momentum:
            options["momentum"] = attrs["momentum"]
        weights = []
        for i in range(n):
            group = arrays[i * size : (i + 1) * size]
            result = update(
                *group, lr=float(lrs[i]), wd=float(wds[i]), lazy_update=False, **options
            )
            result = result if isinstance(result, tuple) else (result,)
            for position, new in zip(states, result[1:]):
                group[position][...] = new  # MXNet updates the states in place
            weights.append(result[0])
        return tuple(weights)

    attrs = {
        "rescale_grad": Attr(as_float, 1.0),
        "clip_gradient": Attr(as_float, -1.0),
        "num_weights": Attr(as_int, 1),
    }
    if not preloaded:
        attrs = {"lrs": Attr(_as_floats), "wds": Attr(_as_floats), **attrs}
    if momentum:
        attrs["momentum"] = Attr(as_float, 0.0)

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        arrays = []
        for _ in range(2):
            group = [rng.uniform(-1, 1, (3, 4)) for _ in range(size)]
            arrays += group
        if preloaded:
            arrays += [np.array([0.1, 0.05]), np.array([0.01, 0.0])]
        return arrays

    test_attrs: dict[str, Any] = {"num_weights": 2, "rescale_grad": 0.5}
    if not preloaded:
        test_attrs.update(lrs=(0.1, 0.05), wds=(0.01, 0.0))
    if momentum:
        test_attrs["momentum"] = 0.9
    opdef = register(
        OpDef(
            name=name,
            infer=infer,
            impl=impl,
            inputs=("data",),
            variadic=True,
            attrs=attrs,
            kind="opaque",
            differentiable=False,
            doc=f"{variant}_update of num_weights weights at once: the outputs are the new "
            "weights; momenta and master copies are updated in place"
            + (
                "; the learning rates and weight decays are the last two inputs"
                if preloaded
                else ""
            ),
            test=TestSpec(make_inputs=make_inputs, attrs=test_attrs),
        )
    )
    opdef.num_outputs = _weight_count  # read by mx.sym: one output per weight


def _weight_count(attrs: dict, inputs: int) -> int:
    return int(attrs["num_weights"])


for _variant in _VARIANTS:
    for _preloaded in (False, True):
        _make(_variant, _preloaded)


# ---------------------------------------------------------------------------
# FTML
# ---------------------------------------------------------------------------


def _ftml(
    weight: np.ndarray,
    grad: np.ndarray,
    d: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    t: int,
    wd: float,
    rescale_grad: float,
    clip_grad: float,
) -> tuple[np.ndarray, ...]:
    # in the weight's dtype, as MXNet's kernel computes, powers included (beta2^t
    # of float32 0.999 differs from 0.999^t by 1e-5 relative, and 1 - beta2^t
    # keeps all of it), with the float attributes rounded to float32 first
    f = weight.dtype.type
    b1, b2 = float(np.float32(beta1)), float(np.float32(beta2))
    g = _rescaled(grad, rescale_grad, clip_grad) + f(wd) * weight
    new_v = f(b2) * v + (f(1) - f(b2)) * g * g
    bias1, bias2 = f(1) - f(b1) ** t, f(1) - f(b2) ** t
    new_d = bias1 / f(lr) * (np.sqrt(new_v / bias2) + f(epsilon))
    sigma = new_d - f(b1) * d
    new_z = f(b1) * z + (f(1) - f(b1)) * g - sigma * weight
    return (-new_z / new_d).astype(weight.dtype), new_d, new_v, new_z


update_op(
    "ftml_update",
    _ftml,
    ("weight", "grad", "d", "v", "z"),
    {
        "lr": Attr(as_float),
        "beta1": Attr(as_float, 0.6),
        "beta2": Attr(as_float, 0.999),
        "epsilon": Attr(as_float, 1e-8),
        "t": Attr(as_int),
        "wd": Attr(as_float, 0.0),
        "rescale_grad": Attr(as_float, 1.0),
        "clip_grad": Attr(as_float, -1.0),
    },
    (2, 3, 4),
    {"lr": 0.1, "t": 3, "wd": 0.01},
    "FTML (follow the moving leader): g = clip(rescale_grad grad) + wd weight; "
    "v = beta2 v + (1 - beta2) g^2; d' = (1 - beta1^t) / lr (sqrt(v / (1 - beta2^t)) + "
    "epsilon); z = beta1 z + (1 - beta1) g - (d' - beta1 d) weight; weight = -z / d'; "
    "d = d'",
    positive=(2, 3),
)


# ---------------------------------------------------------------------------
# mixed-precision AdamW and LAMB, aggregated AdamW
# ---------------------------------------------------------------------------


def _mp_types(count: int, float32_inputs: tuple[int, ...]) -> Callable[..., list[TensorType]]:
    """weight, grad in one dtype; the float32 states; every input of one shape
    but those after ``count`` (a rescale array)."""

    def infer(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
        weight = types[0]
        for t in types[1:count]:
            if t.shape != weight.shape:
                raise GraphError(f"every input must have the weight's shape {weight.shape}")
        return [weight] + [types[i] for i in float32_inputs]

    return infer


def _mp_adamw(
    weight: np.ndarray,
    grad: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    weight32: np.ndarray,
    rescale_grad: np.ndarray,
    **attrs: Any,
) -> tuple[np.ndarray, ...]:
    new32, mean, var = _adamw(
        weight32, grad.astype(weight32.dtype), mean, var, rescale_grad, **attrs
    )
    return new32.astype(weight.dtype), mean, var, new32


ADAMW_ATTRS = {
    "lr": Attr(as_float),
    "eta": Attr(as_float),
    **ADAM_MOMENTS,
    "wd": Attr(as_float, 0.0),
    "clip_gradient": Attr(as_float, -1.0),
}


def _mp_adamw_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(-1, 1, (3, 4)),
        rng.uniform(0.1, 1, (3, 4)),
        rng.uniform(-1, 1, (3, 4)),
        np.array([0.5]),
    ]


register(
    OpDef(
        name="_mp_adamw_update",
        aliases=("_contrib_mp_adamw_update",),
        infer=_mp_types(5, (2, 3, 4)),
        impl=_mp_adamw,
        inputs=("weight", "grad", "mean", "var", "weight32", "rescale_grad"),
        attrs=ADAMW_ATTRS,
        kind="update",
        mutates=(2, 3, 4),
        differentiable=False,
        visible_outputs=1,
        doc="_adamw_update on the float32 master copy weight32 (grad cast to float32); "
        "weight = weight32 cast to weight's dtype",
        test=TestSpec(make_inputs=_mp_adamw_inputs, attrs={"lr": 0.01, "eta": 0.5, "wd": 0.1}),
    )
)


def _multi_adamw(mp: bool) -> None:
    size = 5 if mp else 4
    name = f"_multi_{'mp_' if mp else ''}adamw_update"
    update: Callable[..., tuple[np.ndarray, ...]] = _mp_adamw if mp else _adamw

    def infer(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
        n = attrs["num_weights"]
        if len(types) != n * size + 1:
            raise GraphError(f"expects {n} groups of {size} inputs and rescale_grad")
        for key in ("lrs", "wds", "etas"):
            if len(attrs[key]) != n:
                raise GraphError(f"{key} must have {n} values")
        return [types[i * size] for i in range(n)]

    def impl(*arrays: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
        rescale = arrays[-1]
        weights = []
        for i in range(attrs["num_weights"]):
            group = arrays[i * size : (i + 1) * size]
            options = {
                "lr": attrs["lrs"][i],
                "eta": attrs["etas"][i],
                "wd": attrs["wds"][i],
                "beta1": attrs["beta1"],
                "beta2": attrs["beta2"],
                "epsilon": attrs["epsilon"],
                "clip_gradient": attrs["clip_gradient"],
            }
            result = update(*group, rescale, **options)
            for position, new in zip(range(2, size), result[1:]):
                group[position][...] = new  # states in place, as MXNet
            weights.append(result[0])
        return tuple(weights)

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        arrays = []
        for _ in range(2):
            group = [rng.uniform(-1, 1, (3, 4)) for _ in range(size)]
            group[3] = np.abs(group[3]) + 0.1  # var > 0
            arrays += group
        return [*arrays, np.array([0.5])]

    opdef = register(
        OpDef(
            name=name,
            aliases=(f"_contrib{name}",),
            infer=infer,
            impl=impl,
            inputs=("data",),
            variadic=True,
            attrs={
                "lrs": Attr(_as_floats),
                "wds": Attr(_as_floats),
                "etas": Attr(_as_floats),
                **{k: v for k, v in ADAMW_ATTRS.items() if k not in ("lr", "eta", "wd")},
                "num_weights": Attr(as_int, 1),
            },
            kind="opaque",
            differentiable=False,
            doc=f"{name[7:]} of num_weights weights at once, rescale_grad the last input: "
            "the outputs are the new weights; moments and master copies are updated in "
            "place",
            test=TestSpec(
                make_inputs=make_inputs,
                attrs={
                    "lrs": (0.1, 0.05),
                    "wds": (0.01, 0.0),
                    "etas": (1.0, 0.5),
                    "num_weights": 2,
                },
            ),
        )
    )
    opdef.num_outputs = _weight_count


_multi_adamw(mp=False)
_multi_adamw(mp=True)


def _mp_lamb1_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return _mp_adamw_inputs(rng)[:5]


def _mp_lamb1(
    weight: np.ndarray,
    grad: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    weight32: np.ndarray,
    **attrs: Any,
) -> tuple[np.ndarray, ...]:
    direction, mean, var = _lamb1(weight32, grad.astype(weight32.dtype), mean, var, **attrs)
    return direction, mean, var


register(
    OpDef(
        name="mp_lamb_update_phase1",
        infer=lambda types, **_attrs: [types[4], types[2], types[3]],
        impl=_mp_lamb1,
        inputs=("weight", "grad", "mean", "var", "weight32"),
        attrs=dict(OPS["lamb_update_phase1"].attrs),
        kind="update",
        mutates=(2, 3),
        differentiable=False,
        visible_outputs=1,
        doc="lamb_update_phase1 on the float32 master copy weight32 (grad cast to "
        "float32): the float32 direction; mean and var updated",
        test=TestSpec(make_inputs=_mp_lamb1_inputs, attrs={"t": 3, "wd": 0.01}),
    )
)


def _mp_lamb2(
    weight: np.ndarray,
    direction: np.ndarray,
    r1: np.ndarray,
    r2: np.ndarray,
    weight32: np.ndarray,
    **attrs: Any,
) -> np.ndarray:
    # MXNet 1.9.1 leaves weight32 as it is (measured: the interop test checks it)
    return _lamb2(weight32, direction, r1, r2, **attrs).astype(weight.dtype)


register(
    OpDef(
        name="mp_lamb_update_phase2",
        infer=lambda types, **_attrs: [types[0]],
        impl=_mp_lamb2,
        inputs=("weight", "g", "r1", "r2", "weight32"),
        attrs=dict(OPS["lamb_update_phase2"].attrs),
        kind="update",
        differentiable=False,
        doc="lamb_update_phase2 computed from the float32 master copy weight32, cast to "
        "weight's dtype (weight32 itself is left unchanged, as by MXNet 1.9.1)",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-1, 1, (3, 4)),
                rng.uniform(-1, 1, (3, 4)),
                np.array([1.5]),
                np.array([0.7]),
                rng.uniform(-1, 1, (3, 4)),
            ],
            attrs={"lr": 0.1},
        ),
    )
)


# ---------------------------------------------------------------------------
# LARS coefficients, aggregated LAMB, group AdaGrad
# ---------------------------------------------------------------------------


def _multi_lars(
    lrs: np.ndarray,
    weights_sum_sq: np.ndarray,
    grads_sum_sq: np.ndarray,
    wds: np.ndarray,
    *,
    eta: float,
    eps: float,
    rescale_grad: float,
) -> np.ndarray:
    f = lrs.dtype.type
    w_norm = np.sqrt(weights_sum_sq)
    g_norm = np.sqrt(grads_sum_sq) * f(rescale_grad)
    with np.errstate(all="ignore"):
        scaled = lrs * f(eta) * w_norm / (g_norm + wds * w_norm + f(eps))
    return np.where((w_norm > 0) & (g_norm > 0), scaled, lrs).astype(lrs.dtype)


def _same_vectors(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    if any(t.shape != types[0].shape or len(t.shape) != 1 for t in types):
        raise GraphError("lrs, weights_sum_sq, grads_sum_sq and wds must be vectors of one length")
    return [types[0]]


register(
    OpDef(
        name="multi_lars",
        infer=_same_vectors,
        impl=_multi_lars,
        inputs=("lrs", "weights_sum_sq", "grads_sum_sq", "wds"),
        attrs={"eta": Attr(as_float), "eps": Attr(as_float), "rescale_grad": Attr(as_float, 1.0)},
        kind="update",
        differentiable=False,
        doc="LARS learning rates: lr eta |w| / (|g| + wd |w| + eps) per weight (|g| "
        "rescaled), lr itself where a norm is 0; from the sums of squares",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(0.1, 1, (3,)) for _ in range(4)],
            attrs={"eta": 0.5, "eps": 1e-3},
        ),
    )
)


def _multi_lamb(mp: bool) -> None:
    size = 5 if mp else 4
    name = f"_multi_{'mp_' if mp else ''}lamb_update"

    def infer(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
        n = attrs["num_tensors"]
        if len(types) != n * size:
            raise GraphError(f"expects {n} groups of {size} inputs")
        for key in ("learning_rates", "wds", "step_count"):
            if len(attrs[key]) != n:
                raise GraphError(f"{key} must have {n} values")
        return [types[i * size] for i in range(n)]

    def impl(*arrays: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
        weights = []
        for i in range(attrs["num_tensors"]):
            group = arrays[i * size : (i + 1) * size]
            master = group[4] if mp else group[0]
            direction, mean, var = _lamb1(
                master,
                group[1].astype(master.dtype),
                group[2],
                group[3],
                beta1=attrs["beta1"],
                beta2=attrs["beta2"],
                epsilon=attrs["epsilon"],
                t=attrs["step_count"][i],
                bias_correction=attrs["bias_correction"],
                wd=attrs["wds"][i],
                rescale_grad=attrs["rescale_grad"],
                clip_gradient=attrs["clip_gradient"],
            )
            # the norms in the master copy's precision, as MXNet's sums of squares;
            # the weight's own (float16 for _multi_mp_) as MXNet's, not the master's
            weight = group[0].astype(master.dtype)
            r1 = np.sqrt(np.square(weight).sum(dtype=master.dtype)).reshape(1)
            r2 = np.sqrt(np.square(direction).sum(dtype=direction.dtype)).reshape(1)
            new = _lamb2(
                master,
                direction,
                r1,
                r2,
                lr=attrs["learning_rates"][i],
                lower_bound=attrs["lower_bound"],
                upper_bound=attrs["upper_bound"],
            )
            group[2][...], group[3][...] = mean, var  # states in place, as MXNet
            if mp:
                group[4][...] = new
            weights.append(new.astype(group[0].dtype))
        return tuple(weights)

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        arrays = []
        for _ in range(2):
            group = [rng.uniform(-1, 1, (3, 4)) for _ in range(size)]
            group[3] = np.abs(group[3]) + 0.1  # var > 0
            arrays += group
        return arrays

    opdef = register(
        OpDef(
            name=name,
            infer=infer,
            impl=impl,
            inputs=("data",),
            variadic=True,
            attrs={
                "learning_rates": Attr(_as_floats),
                "beta1": Attr(as_float, 0.9),
                "beta2": Attr(as_float, 0.999),
                "epsilon": Attr(as_float, 1e-6),
                "wds": Attr(_as_floats),
                "rescale_grad": Attr(as_float, 1.0),
                "lower_bound": Attr(as_float, -1.0),
                "upper_bound": Attr(as_float, -1.0),
                "clip_gradient": Attr(as_float, -1.0),
                "bias_correction": Attr(as_bool, True),
                "step_count": Attr(as_shape),
                "num_tensors": Attr(as_int, 1),
            },
            kind="opaque",
            differentiable=False,
            doc=f"{name[7:]}: LAMB's two phases for num_tensors weights at once (the "
            "norms of each weight and direction taken here); the outputs are the new "
            "weights, moments and master copies updated in place",
            test=TestSpec(
                make_inputs=make_inputs,
                attrs={
                    "learning_rates": (0.1, 0.05),
                    "wds": (0.01, 0.0),
                    "step_count": (3, 4),
                    "num_tensors": 2,
                },
            ),
        )
    )
    opdef.num_outputs = _tensor_count


def _tensor_count(attrs: dict, inputs: int) -> int:
    return int(attrs["num_tensors"])


_multi_lamb(mp=False)
_multi_lamb(mp=True)


def _group_adagrad(
    weight: np.ndarray,
    grad: np.ndarray,
    history: np.ndarray,
    *,
    lr: float,
    rescale_grad: float,
    clip_gradient: float,
    epsilon: float,
) -> tuple[np.ndarray, ...]:
    f = weight.dtype.type
    g = _rescaled(grad, rescale_grad, clip_gradient)
    axes = tuple(range(1, g.ndim))
    history = history + np.square(g).mean(axis=axes).reshape(history.shape)
    shape = (-1,) + (1,) * (g.ndim - 1)
    new = weight - f(lr) * g / np.sqrt(history.reshape(shape) + f(epsilon))
    return new.astype(weight.dtype), history.astype(history.dtype)


def _group_adagrad_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    weight, grad, history = types
    if grad.shape != weight.shape or int(np.prod(history.shape)) != weight.shape[0]:
        raise GraphError(f"expects grad {weight.shape} and one history value per row")
    return [weight, history]


register(
    OpDef(
        name="_contrib_group_adagrad_update",
        infer=_group_adagrad_types,
        impl=_group_adagrad,
        inputs=("weight", "grad", "history"),
        attrs={
            "lr": Attr(as_float),
            "rescale_grad": Attr(as_float, 1.0),
            "clip_gradient": Attr(as_float, -1.0),
            "epsilon": Attr(as_float, 1e-5),
        },
        kind="update",
        mutates=(2,),
        differentiable=False,
        visible_outputs=1,
        doc="AdaGrad with one history value per row: g = clip(rescale_grad grad); "
        "history += mean(g^2 over the row); weight -= lr g / sqrt(history + epsilon)",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-1, 1, (3, 4)),
                rng.uniform(-1, 1, (3, 4)),
                rng.uniform(0.1, 1, (3, 1)),
            ],
            attrs={"lr": 0.1},
        ),
    )
)
