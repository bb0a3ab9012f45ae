"""Normalisation layers: LayerNorm, InstanceNorm and L2Normalization.

Their gradients recompute the normalised input from the data with registered ops
(mean, rsqrt, sums over ranks, never sizes), so they differentiate again; the
elementwise parts fuse with their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_float, as_int, one_of, register
from .common import F, normalize_axis


def _along(ndim: int, axis: int) -> tuple[int, ...]:
    """Reshape code that lays a (C,) vector along ``axis`` of a rank-``ndim`` array."""
    return tuple(-1 if i == axis else 1 for i in range(ndim))


def normalized(x: Expr, axes: tuple[int, ...], eps: float) -> tuple[Expr, Expr]:
    """(x - mean) / sqrt(var + eps) over ``axes`` as a graph, with its rstd."""
    over = {"axis": axes, "keepdims": True}
    centred = x - F.mean(x, **over)
    rstd = F.rsqrt(F.mean(centred * centred, **over) + eps)
    return centred * rstd, rstd


def normalized_grad(g: Expr, xhat: Expr, rstd: Expr, axes: tuple[int, ...]) -> Expr:
    """rstd (g - mean(g) - xhat mean(g xhat)): the gradient through normalisation."""
    over = {"axis": axes, "keepdims": True}
    return (g - F.mean(g, **over) - xhat * F.mean(g * xhat, **over)) * rstd


def _numpy_normalized(
    x: np.ndarray, axes: tuple[int, ...], eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps), mean, var


def _check_affine(types: Sequence[TensorType], channels: int) -> None:
    for name, t in zip(("gamma", "beta"), types[1:]):
        if t.shape != (channels,):
            raise GraphError(f"{name} must have shape ({channels},), got {t.shape}")


# ---------------------------------------------------------------------------
# LayerNorm
# ---------------------------------------------------------------------------


def _layer_norm_types(
    types: Sequence[TensorType], *, axis: int, eps: float, output_mean_var: bool
) -> list[TensorType]:
    data = types[0]
    ax = normalize_axis(axis, len(data.shape))
    _check_affine(types, data.shape[ax])
    moments = TensorType(tuple(1 if i == ax else s for i, s in enumerate(data.shape)), data.dtype)
    return [data, moments, moments]


def _layer_norm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    *,
    axis: int,
    eps: float,
    output_mean_var: bool,
) -> tuple[np.ndarray, ...]:
    ax = axis % x.ndim
    xhat, mean, var = _numpy_normalized(x, (ax,), eps)
    shape = _along(x.ndim, ax)
    out = xhat * gamma.reshape(shape) + beta.reshape(shape)
    return out.astype(x.dtype), mean.astype(x.dtype), np.sqrt(var + eps).astype(x.dtype)


def layer_norm_grad(
    gs: tuple[Expr, ...],
    x: Expr,
    gamma: Expr,
    beta: Expr,
    *,
    out: Expr,
    axis: int,
    eps: float,
    output_mean_var: bool,
) -> tuple[Expr | None, ...]:
    """gx = rstd (gg - mean(gg) - xhat mean(gg xhat)) with gg = g gamma;
    ggamma = sum(g xhat), gbeta = sum(g) over all axes but ``axis``"""
    g = gs[0]
    ax = axis % x.ndim
    xhat, rstd = normalized(x, (ax,), eps)
    scaled = g * F.reshape(gamma, shape=_along(x.ndim, ax))
    return (
        normalized_grad(scaled, xhat, rstd, (ax,)),
        F.sum(g * xhat, axis=(ax,), exclude=True),
        F.sum(g, axis=(ax,), exclude=True),
    )


def _affine_inputs(
    shape: tuple[int, ...], channel_axis: int
) -> Callable[[np.random.Generator], list[np.ndarray]]:
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        channels = shape[channel_axis]
        return [
            rng.uniform(-2, 2, shape),
            rng.uniform(0.5, 1.5, (channels,)),
            rng.uniform(-1, 1, (channels,)),
        ]

    return make


register(
    OpDef(
        name="LayerNorm",
        infer=_layer_norm_types,
        impl=_layer_norm,
        grad=layer_norm_grad,
        inputs=("data", "gamma", "beta"),
        visible_outputs=1,
        kind="norm",
        attrs={
            "axis": Attr(as_int, -1),
            "eps": Attr(as_float, 1e-5),
            "output_mean_var": Attr(as_bool, False),
        },
        doc="Normalise along ``axis`` to zero mean and unit variance, then scale by "
        "gamma and shift by beta; output_mean_var also returns mean and std.",
        test=TestSpec(make_inputs=_affine_inputs((3, 4), 1)),
    )
)


# ---------------------------------------------------------------------------
# InstanceNorm
# ---------------------------------------------------------------------------


def _instance_norm_types(types: Sequence[TensorType], *, eps: float) -> list[TensorType]:
    data = types[0]
    if len(data.shape) < 3:
        raise GraphError("data must be (N, C, spatial...)")
    _check_affine(types, data.shape[1])
    return [data]


def _instance_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, eps: float) -> np.ndarray:
    xhat = _numpy_normalized(x, tuple(range(2, x.ndim)), eps)[0]
    shape = _along(x.ndim, 1)
    return (xhat * gamma.reshape(shape) + beta.reshape(shape)).astype(x.dtype)


def instance_norm_grad(
    g: Expr, x: Expr, gamma: Expr, beta: Expr, *, out: Expr, eps: float
) -> tuple[Expr | None, ...]:
    """per (sample, channel) over the spatial axes: gx = rstd (gg - mean(gg) -
    xhat mean(gg xhat)) with gg = g gamma; ggamma = sum(g xhat), gbeta = sum(g)"""
    axes = tuple(range(2, x.ndim))
    xhat, rstd = normalized(x, axes, eps)
    scaled = g * F.reshape(gamma, shape=_along(x.ndim, 1))
    return (
        normalized_grad(scaled, xhat, rstd, axes),
        F.sum(g * xhat, axis=(1,), exclude=True),
        F.sum(g, axis=(1,), exclude=True),
    )


register(
    OpDef(
        name="InstanceNorm",
        infer=_instance_norm_types,
        impl=_instance_norm,
        grad=instance_norm_grad,
        inputs=("data", "gamma", "beta"),
        kind="norm",
        attrs={"eps": Attr(as_float, 1e-3)},
        doc="Normalise each channel of each sample over its spatial axes, then "
        "scale by gamma and shift by beta (per channel).",
        test=TestSpec(make_inputs=_affine_inputs((2, 3, 4), 1)),
    )
)


# ---------------------------------------------------------------------------
# L2Normalization
# ---------------------------------------------------------------------------


def _l2_axes(ndim: int, mode: str) -> tuple[int, ...]:
    if mode == "instance":
        return tuple(range(1, ndim))
    if mode == "channel":
        return (1,)
    return tuple(range(2, ndim))


def _l2_types(types: Sequence[TensorType], *, eps: float, mode: str) -> list[TensorType]:
    if len(types[0].shape) < (3 if mode == "spatial" else 2):
        raise GraphError(f"mode {mode!r} needs more axes than {types[0].shape}")
    return [types[0]]


def _l2_normalization(x: np.ndarray, *, eps: float, mode: str) -> np.ndarray:
    norm = np.sqrt((x * x).sum(axis=_l2_axes(x.ndim, mode), keepdims=True) + eps)
    return (x / norm).astype(x.dtype)


def l2_normalization_grad(g: Expr, x: Expr, *, out: Expr, eps: float, mode: str) -> Expr:
    """(g - y sum(g y)) / n with n = sqrt(sum(x^2) + eps), y = x / n"""
    over = {"axis": _l2_axes(x.ndim, mode), "keepdims": True}
    rnorm = F.rsqrt(F.sum(x * x, **over) + eps)
    y = x * rnorm
    return (g - y * F.sum(g * y, **over)) * rnorm


register(
    OpDef(
        name="L2Normalization",
        infer=_l2_types,
        impl=_l2_normalization,
        grad=l2_normalization_grad,
        kind="norm",
        attrs={
            "eps": Attr(as_float, 1e-10),
            "mode": Attr(one_of("instance", "channel", "spatial"), "instance"),
        },
        doc="x / sqrt(sum(x^2) + eps), summed per sample (instance), across "
        "channels (channel) or over each channel's spatial axes (spatial).",
        test=TestSpec(shapes=((2, 3, 4),), attrs={"mode": "channel"}),
    )
)
