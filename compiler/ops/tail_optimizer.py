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
from ..registry import Attr, OpDef, TestSpec, as_float, as_int, register
from .optimizer import _mp_sgd, _mp_sgd_mom, _rescaled, _sgd, _sgd_mom, update_op


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
