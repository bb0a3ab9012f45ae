"""Optimizer update ops written as elementwise registered ops, so that a training
step's updates fuse into the kernels that compute the gradients.

An :class:`UpdateRule` rebuilds one update op (``sgd_mom_update``, ...) from
``broadcast_mul``, ``elemwise_sub``, ``clip`` and the like, in the order of
operations of the op's numpy implementation, so the fused result equals the
op's own to the bit (float arithmetic in the weight's dtype, each scalar
rounded to that dtype the way the implementation rounds it).

The scalars that change from step to step (the learning rate above all: a
schedule, or Adam's bias correction, changes it every step) are not attrs of the
rebuilt graph but inputs of it, one 0-d array each: a program built once serves
every step. Only what shapes the graph (whether the gradient is clipped, and at
what bound) is baked in, and is part of the program's key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..expr import Expr
from .common import F


@dataclass(frozen=True)
class UpdateRule:
    """How one update op is rebuilt from elementwise ops.

    ``scalar_names`` names the per-call scalars; ``scalars(attrs)`` gives their
    values, in the order ``build`` takes them, computed from the op's attrs as
    its implementation computes them (in Python floats; the caller rounds each
    to the weight's dtype).
    ``structure(attrs)`` is what is baked into the graph (hashable).
    ``build(weight, grad, states, scalars, structure)`` returns the new weight
    and the new value of each state, as the op's outputs are ordered.
    """

    op: str
    scalar_names: tuple[str, ...]
    scalars: Callable[[dict], tuple[float, ...]]
    structure: Callable[[dict], tuple]
    build: Callable[[Expr, Expr, Sequence[Expr], Sequence[Expr], tuple], list[Expr]]


UPDATE_RULES: dict[str, UpdateRule] = {}


def _rule(rule: UpdateRule) -> UpdateRule:
    UPDATE_RULES[rule.op] = rule
    return rule


def rule_for(op: str) -> UpdateRule | None:
    """The rule rebuilding update op ``op``, if it has one."""
    return UPDATE_RULES.get(op)


def scalar_inputs(rule: UpdateRule, attrs: dict, dtype: Any) -> list[np.ndarray]:
    """The rule's per-call scalars as 0-d arrays of ``dtype`` (the program's
    inputs for them)."""
    kind = np.dtype(dtype).type
    return [np.array(kind(value)) for value in rule.scalars(attrs)]


def _clip_structure(attrs: dict) -> tuple:
    clip = float(attrs["clip_gradient"])
    return (clip if clip >= 0 else None,)


def _rescaled(grad: Expr, rescale: Expr, clip: float | None) -> Expr:
    """rescale_grad * grad, clipped to [-clip, clip] when a bound is given
    (the implementations' ``_rescaled``: the multiply always happens)."""
    scaled = F.broadcast_mul(grad, rescale)
    if clip is not None:
        scaled = F.clip(scaled, a_min=-clip, a_max=clip)
    return scaled


# sgd_update: new = weight * (1 - lr wd) - lr clip(rescale_grad grad)


def _sgd_build(
    weight: Expr, grad: Expr, states: Sequence[Expr], s: Sequence[Expr], structure: tuple
) -> list[Expr]:
    keep, rescale, lr = s
    new = F.broadcast_mul(weight, keep)
    step = F.broadcast_mul(_rescaled(grad, rescale, structure[0]), lr)
    return [F.elemwise_sub(new, step)]


_rule(
    UpdateRule(
        "sgd_update",
        ("1 - lr wd", "rescale_grad", "lr"),
        lambda a: (1 - a["lr"] * a["wd"], a["rescale_grad"], a["lr"]),
        _clip_structure,
        _sgd_build,
    )
)


# sgd_mom_update: mom = momentum mom - lr wd weight - lr clip(rescale_grad grad);
# weight = weight + mom


def _sgd_mom_build(
    weight: Expr, grad: Expr, states: Sequence[Expr], s: Sequence[Expr], structure: tuple
) -> list[Expr]:
    momentum, lr_wd, rescale, lr = s
    (mom,) = states
    new_mom = F.elemwise_sub(F.broadcast_mul(mom, momentum), F.broadcast_mul(weight, lr_wd))
    step = F.broadcast_mul(_rescaled(grad, rescale, structure[0]), lr)
    new_mom = F.elemwise_sub(new_mom, step)
    return [F.elemwise_add(weight, new_mom), new_mom]


_rule(
    UpdateRule(
        "sgd_mom_update",
        ("momentum", "lr wd", "rescale_grad", "lr"),
        lambda a: (a["momentum"], a["lr"] * a["wd"], a["rescale_grad"], a["lr"]),
        _clip_structure,
        _sgd_mom_build,
    )
)


# adam_update: g = clip(rescale_grad grad + wd weight); mean = b1 mean + (1 - b1) g;
# var = b2 var + (1 - b2) g^2; weight = weight - lr mean / (sqrt(var) + eps)


def _adam_build(
    weight: Expr, grad: Expr, states: Sequence[Expr], s: Sequence[Expr], structure: tuple
) -> list[Expr]:
    rescale, wd, b1, one_minus_b1, b2, one_minus_b2, lr, eps = s
    mean, var = states
    g = F.elemwise_add(F.broadcast_mul(grad, rescale), F.broadcast_mul(weight, wd))
    if structure[0] is not None:
        g = F.clip(g, a_min=-structure[0], a_max=structure[0])
    new_mean = F.elemwise_add(F.broadcast_mul(mean, b1), F.broadcast_mul(g, one_minus_b1))
    new_var = F.elemwise_add(
        F.broadcast_mul(var, b2), F.elemwise_mul(F.broadcast_mul(g, one_minus_b2), g)
    )
    step = F.elemwise_div(F.broadcast_mul(new_mean, lr), F.broadcast_add(F.sqrt(new_var), eps))
    return [F.elemwise_sub(weight, step), new_mean, new_var]


_rule(
    UpdateRule(
        "adam_update",
        ("rescale_grad", "wd", "beta1", "1 - beta1", "beta2", "1 - beta2", "lr", "epsilon"),
        lambda a: (
            a["rescale_grad"],
            a["wd"],
            a["beta1"],
            1 - a["beta1"],
            a["beta2"],
            1 - a["beta2"],
            a["lr"],
            a["epsilon"],
        ),
        _clip_structure,
        _adam_build,
    )
)


__all__ = ["UPDATE_RULES", "UpdateRule", "rule_for", "scalar_inputs"]
