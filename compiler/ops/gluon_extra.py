"""Ops that Gluon's layers need beyond the others: GroupNorm.

GroupNorm's gradient reuses the normalisation helpers of LayerNorm and
InstanceNorm on a (N, groups, rest) view made with MXNet's reshape codes (0 keeps
the batch axis, -1 takes the rest), never sizes, so a new batch size keeps the
gradient graph and the gradient differentiates again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_float, as_int, register
from .common import F
from .normalization import normalized, normalized_grad

# ---------------------------------------------------------------------------
# GroupNorm
# ---------------------------------------------------------------------------


def _group_norm_types(
    types: Sequence[TensorType], *, num_groups: int, eps: float, output_mean_var: bool
) -> list[TensorType]:
    data = types[0]
    if len(data.shape) < 2:
        raise GraphError("data must be (N, C, ...)")
    if num_groups < 1 or data.shape[1] % num_groups:
        raise GraphError(f"channels {data.shape[1]} must divide by num_groups {num_groups}")
    for name, t in zip(("gamma", "beta"), types[1:]):
        # MXNet 1.x scales and shifts per group, not per channel.
        if t.shape != (num_groups,):
            raise GraphError(f"{name} must have shape ({num_groups},), got {t.shape}")
    moments = TensorType((data.shape[0], num_groups), data.dtype)
    return [data, moments, moments]


def _group_norm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    *,
    num_groups: int,
    eps: float,
    output_mean_var: bool,
) -> tuple[np.ndarray, ...]:
    grouped = x.reshape(x.shape[0], num_groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    var = grouped.var(axis=2, keepdims=True)
    xhat = (grouped - mean) / np.sqrt(var + eps)
    out = xhat * gamma.reshape(1, -1, 1) + beta.reshape(1, -1, 1)
    return (
        out.reshape(x.shape).astype(x.dtype),
        mean[..., 0].astype(x.dtype),
        np.sqrt(var[..., 0] + eps).astype(x.dtype),
    )


def group_norm_grad(
    gs: tuple[Expr, ...],
    x: Expr,
    gamma: Expr,
    beta: Expr,
    *,
    out: Expr,
    num_groups: int,
    eps: float,
    output_mean_var: bool,
) -> tuple[Expr | None, ...]:
    """on the (N, G, rest) view: gx = rstd (gg - mean(gg) - xhat mean(gg xhat)) with
    gg = g gamma_group; ggamma = sum(g xhat), gbeta = sum(g) over all axes but 1"""
    view = {"shape": (0, num_groups, -1)}
    grouped_x = F.reshape(x, **view)
    grouped_g = F.reshape(gs[0], **view)
    xhat, rstd = normalized(grouped_x, (2,), eps)
    scaled = grouped_g * F.reshape(gamma, shape=(1, -1, 1))
    grad_x = F.reshape_like(normalized_grad(scaled, xhat, rstd, (2,)), x)
    return (
        grad_x,
        F.sum(grouped_g * xhat, axis=(1,), exclude=True),
        F.sum(grouped_g, axis=(1,), exclude=True),
    )


def _group_norm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (2, 4, 3)), rng.uniform(0.5, 1.5, (2,)), rng.uniform(-1, 1, (2,))]


register(
    OpDef(
        name="GroupNorm",
        infer=_group_norm_types,
        impl=_group_norm,
        grad=group_norm_grad,
        inputs=("data", "gamma", "beta"),
        visible_outputs=1,
        kind="norm",
        attrs={
            "num_groups": Attr(as_int, 1),
            "eps": Attr(as_float, 1e-5),
            "output_mean_var": Attr(as_bool, False),
        },
        doc="Split the channels (axis 1) into num_groups groups, normalise each "
        "group of each sample to zero mean and unit variance, then scale by "
        "gamma and shift by beta (one value per group, as MXNet 1.x); "
        "output_mean_var also returns the (N, num_groups) mean and std.\n\n"
        "Gradient: on the (N, num_groups, rest) view, gx = rstd (gg - mean(gg) "
        "- xhat mean(gg xhat)) with gg = g gamma and the means over rest; "
        "ggamma = sum(g xhat), gbeta = sum(g) over all axes but the group.",
        test=TestSpec(make_inputs=_group_norm_inputs, attrs={"num_groups": 2}),
    )
)
