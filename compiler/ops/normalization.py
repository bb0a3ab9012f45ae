"""Normalisation layers: LayerNorm, InstanceNorm and L2Normalization, and
``_batch_norm_train``, BatchNorm's training forward as a pure op.

Their gradients recompute the normalised input from the data with registered ops
(mean, rsqrt, sums over ranks, never sizes), so they differentiate again; the
elementwise parts fuse with their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import (
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_float,
    as_int,
    get_op,
    one_of,
    register,
)
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


# ---------------------------------------------------------------------------
# _batch_norm_train: BatchNorm in training, its running statistics as outputs
# ---------------------------------------------------------------------------
# MXNet's BatchNorm updates its moving statistics in place when it runs, so it
# runs as soon as it is recorded, and its input convolution with it. This op is
# the same computation without the side effect: the new moving statistics are
# outputs 3 and 4, which the frontend gives to the moving-statistics arrays as
# deferred values. Recorded in its place, it waits for the program that
# differentiates the step, where ``expand_composites`` turns it into registered
# ops: its statistics become fused reductions beside the convolution's consumers.


def _batch_norm_train_types(
    types: Sequence[TensorType],
    *,
    eps: float,
    momentum: float,
    fix_gamma: bool,
    output_mean_var: bool,
    axis: int,
) -> list[TensorType]:
    data = types[0]
    if len(data.shape) < 1:
        raise GraphError("data must have at least one axis")
    channels = (data.shape[normalize_axis(axis, len(data.shape))],)
    for name, t in zip(("gamma", "beta", "moving_mean", "moving_var"), types[1:]):
        if t.shape != channels:
            raise GraphError(f"{name} must have shape {channels}, got {t.shape}")
    stat = TensorType(channels, data.dtype)
    return [data, stat, stat, types[3], types[4]]


def _batch_norm_train(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    moving_mean: np.ndarray,
    moving_var: np.ndarray,
    *,
    eps: float,
    momentum: float,
    fix_gamma: bool,
    output_mean_var: bool,
    axis: int,
) -> tuple[np.ndarray, ...]:
    # BatchNorm's own numpy implementation, updating copies of the statistics
    new_mean, new_var = moving_mean.copy(), moving_var.copy()
    out, mean, inverse_std = get_op("BatchNorm").impl(
        x, gamma, beta, new_mean, new_var, eps=eps, momentum=momentum, fix_gamma=fix_gamma,
        use_global_stats=False, output_mean_var=output_mean_var, axis=axis, is_train=True,
    )  # fmt: skip
    return out, mean, inverse_std, new_mean, new_var


def _filled_in(g: Expr) -> bool:
    """Whether ``g`` is the zeros the gradient walk gives an output nobody reads."""
    return g.entry.node.op.name == "zeros_like"


def batch_norm_train_grad(
    gs: tuple[Expr, ...],
    x: Expr,
    gamma: Expr,
    beta: Expr,
    moving_mean: Expr,
    moving_var: Expr,
    *,
    out: tuple[Expr, ...],
    eps: float,
    momentum: float,
    fix_gamma: bool,
    output_mean_var: bool,
    axis: int,
) -> tuple[Expr | None, ...]:
    """gx = gamma r (g - mean(g) - xhat mean(g xhat)), xhat = (x - mean) r with the
    forward's mean and r = 1/sqrt(var + eps) (outputs 1 and 2), plus gm / N and
    -gr r xhat r / N where those outputs get gradients gm, gr (a gradient of the
    gradient); ggamma = sum(g xhat) (0 with fix_gamma), gbeta = sum(g); the new
    moving statistics pass no gradient back, as MXNet's auxiliary states"""
    g = gs[0]
    ax = axis % x.ndim
    shape = _along(x.ndim, ax)
    others = tuple(i for i in range(x.ndim) if i != ax)
    rstd, mean = F.reshape(out[2], shape=shape), F.reshape(out[1], shape=shape)
    # The pass of the means recomputes xhat from x as well, spelt (-mean) + x (the
    # same bits as x - mean): spelt as the forward's x - mean it would be the
    # forward's centred value, and the forward loop would write xhat out in full
    # for this pass to read back (one more array written per BatchNorm; x is
    # stored anyway).
    xhat = (F.negative(mean) + x) * rstd
    scaled = g if fix_gamma else g * F.reshape(gamma, shape=shape)
    over = {"axis": others, "keepdims": True}
    mean_scaled, mean_product = F.mean(scaled, **over), F.mean(scaled * xhat, **over)
    # The last pass computes xhat and the scaled g again, as ops of their own (x +
    # (-mean) is x - mean to the bit; the products commute): as the same ops they
    # would be shared with the pass of the means, which would write both out in
    # full for this one to read back.
    xhat_again = rstd * (x + F.negative(mean))
    scaled_again = g if fix_gamma else F.reshape(gamma, shape=shape) * g
    grad_x = (scaled_again - mean_scaled - xhat_again * mean_product) * rstd
    size = F._reduced_size(x, axis=(ax,), exclude=True)
    if not _filled_in(gs[1]):
        grad_x = grad_x + F.broadcast_like(F.reshape(gs[1], shape=shape), x) / size
    if not _filled_in(gs[2]):
        grad_x = grad_x - F.reshape(gs[2], shape=shape) * rstd * rstd * xhat / size
    grad_gamma = F.zeros_like(gamma) if fix_gamma else F.sum(g * xhat, axis=(ax,), exclude=True)
    return grad_x, grad_gamma, F.sum(g, axis=(ax,), exclude=True), None, None


def expand_batch_norm_train(
    x: Expr,
    gamma: Expr,
    beta: Expr,
    moving_mean: Expr,
    moving_var: Expr,
    *,
    eps: float,
    momentum: float,
    fix_gamma: bool,
    output_mean_var: bool,
    axis: int,
) -> tuple[Expr, ...]:
    """The op from registered ops, as its numpy implementation computes it: the
    statistics summed in float64 (float32 sums of many rows drift), the data
    centred and scaled in its own dtype."""
    ax = axis % x.ndim
    shape = _along(x.ndim, ax)
    over = {"axis": (ax,), "exclude": True, "keepdims": True}
    dtype = x.dtype.name
    wide = F.Cast(x, dtype="float64")
    mean = F.mean(wide, **over)
    narrow_mean = F.Cast(mean, dtype=dtype)
    centred = x - narrow_mean
    variance = _batch_variance(x, wide, mean, narrow_mean, over)
    inverse_std = F.rsqrt(variance + eps)
    scale = inverse_std
    if not fix_gamma:
        scale = scale * F.Cast(F.reshape(gamma, shape=shape), dtype="float64")
    normalized = centred * F.Cast(scale, dtype=dtype) + F.Cast(
        F.reshape(beta, shape=shape), dtype=dtype
    )
    # The (C,) statistics are reshapes of the narrowed (1, C, 1, 1) ones: the
    # gradient lays them back along the channel axis, which simplification turns
    # into the narrowed values themselves (no reshapes and casts in the backward).
    return (
        normalized,
        F.reshape(narrow_mean, shape=(-1,)),
        F.reshape(F.Cast(inverse_std, dtype=dtype), shape=(-1,)),
        _moved(moving_mean, F.reshape(mean, shape=(-1,)), momentum),
        _moved(moving_var, F.reshape(variance, shape=(-1,)), momentum),
    )


def _batch_variance(x: Expr, wide: Expr, mean: Expr, narrow_mean: Expr, over: dict) -> Expr:
    """The batch variance in float64. Floats narrower than float64 (float32, float16)
    square exactly in float64, so its variance is mean(x^2) - mean^2, from sums the
    mean's pass takes too (one read of x, not two; the float64 difference keeps
    float32's precision while |mean| / std < 3e4), at least 0. float64 data takes a
    second pass over x centred the other way round (the same squares), an op of its
    own: the one centred array both passes would share is written out in full by
    the first for the second to read back."""
    if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize < 8:
        return F.relu(F.mean(wide * wide, **over) - mean * mean)
    centred = F.Cast(narrow_mean - x, dtype="float64")
    return F.mean(centred * centred, **over)


def _moved(moving: Expr, batch: Expr, momentum: float) -> Expr:
    """momentum moving + (1 - momentum) batch, the batch's float64 added in float64
    (as numpy's in-place update computes it), in the moving statistic's dtype."""
    kept = F.Cast(moving * momentum, dtype="float64")
    return F.Cast(kept + batch * (1 - momentum), dtype=moving.dtype.name)


def _batch_norm_train_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-2, 2, (4, 3, 2)),
        rng.uniform(0.5, 1.5, (3,)),
        rng.uniform(-1, 1, (3,)),
        rng.uniform(-1, 1, (3,)),
        rng.uniform(0.5, 2, (3,)),
    ]


register(
    OpDef(
        name="_batch_norm_train",
        infer=_batch_norm_train_types,
        impl=_batch_norm_train,
        grad=batch_norm_train_grad,
        expand=expand_batch_norm_train,
        inputs=("data", "gamma", "beta", "moving_mean", "moving_var"),
        visible_outputs=lambda attrs: 3 if attrs["output_mean_var"] else 1,
        kind="norm",
        attrs={
            "eps": Attr(as_float, 1e-3),
            "momentum": Attr(as_float, 0.9),
            "fix_gamma": Attr(as_bool, True),
            "output_mean_var": Attr(as_bool, False),
            "axis": Attr(as_int, 1),
        },
        doc="BatchNorm in training with batch statistics, without its side effect: "
        "outputs the normalised data, the batch mean, 1/sqrt(var + eps), then the "
        "new moving mean and variance (what BatchNorm writes into its inputs).",
        test=TestSpec(
            make_inputs=_batch_norm_train_inputs, wrt=(0, 1, 2), attrs={"fix_gamma": False}
        ),
    )
)
