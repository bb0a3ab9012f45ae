"""Linear algebra and neural-network ops: dot, batch_dot, FullyConnected,
Activation, softmax, log_softmax, Dropout, BatchNorm."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
    as_shape,
    one_of,
    register,
)
from .common import F, normalize_axis, require_same_dtype, same_as_first
from .random import generator

# ---------------------------------------------------------------------------
# dot and batch_dot (BLAS)
# ---------------------------------------------------------------------------

DOT_ATTRS = {"transpose_a": Attr(as_bool, False), "transpose_b": Attr(as_bool, False)}


def _dot_types(
    types: Sequence[TensorType], *, transpose_a: bool, transpose_b: bool
) -> list[TensorType]:
    dtype = require_same_dtype(types)
    a, b = (t.shape for t in types)
    if transpose_a:
        a = tuple(reversed(a))
    if transpose_b:
        b = tuple(reversed(b))
    if a[-1] != b[0]:
        raise GraphError(f"inner sizes differ: {a[-1]} and {b[0]}")
    return [TensorType(a[:-1] + b[1:] or (1,), dtype)]


def _dot(a: np.ndarray, b: np.ndarray, *, transpose_a: bool, transpose_b: bool) -> np.ndarray:
    if transpose_a:
        a = a.T
    if transpose_b:
        b = b.T
    if a.ndim > 2 and b.ndim == 2:  # one matrix product (numpy's N-d dot loops, ~8x slower)
        return np.dot(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[1:])
    out = np.dot(a, b) if b.ndim <= 2 else np.tensordot(a, b, axes=1)
    return out.reshape(1) if out.ndim == 0 else out


def _outer(u: Expr, v: Expr) -> Expr:
    return F.reshape(u, shape=(-1, 1)) * F.reshape(v, shape=(1, -1))


def dot_grad(
    g: Expr, a: Expr, b: Expr, *, out: Expr, transpose_a: bool, transpose_b: bool
) -> tuple[Expr | None, ...]:
    """ga = g b^T, gb = a^T g (with the transposes and vector cases folded in)"""
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    if max(a.ndim, b.ndim) > 2:
        if transpose_a or transpose_b:
            # N-d transposes reverse every axis: the gradient of dot(a^T, b^T) is
            # that of the plain dot of the transposed operands, transposed back
            ga, gb = dot_grad(
                g,
                F.transpose(a) if transpose_a else a,
                F.transpose(b) if transpose_b else b,
                out=out,
                transpose_a=False,
                transpose_b=False,
            )
            return (F.transpose(ga) if transpose_a else ga, F.transpose(gb) if transpose_b else gb)
        # N-d: the same contraction as 2-D dots of a flattened to (m, k), b to
        # (k, n) and g to (m, n), so that the gradient differentiates again. The
        # reshapes use MXNet's codes (0 copies an axis, -1 takes the rest), not
        # sizes: a new batch size must not change the gradient graph.
        flat_a = F.reshape(a, shape=(-1, 0), reverse=True)
        flat_b = F.reshape(b, shape=(0, -1))
        leading = F.reshape(g, shape=(-1,) + (0,) * (b.ndim - 1), reverse=True)
        flat_g = F.reshape(leading, shape=(0, -1))
        return (
            F.reshape_like(F.dot(flat_g, flat_b, transpose_b=True), a),
            F.reshape_like(F.dot(flat_a, flat_g, transpose_a=True), b),
        )
    if a.ndim == 1:
        return (
            F.dot(g, b) if transpose_b else F.dot(b, g),
            _outer(g, a) if transpose_b else _outer(a, g),
        )
    if b.ndim == 1:
        return (
            _outer(b, g) if transpose_a else _outer(g, b),
            F.dot(a, g, transpose_a=not transpose_a),
        )
    if not transpose_a and not transpose_b:
        return F.dot(g, b, transpose_b=True), F.dot(a, g, transpose_a=True)
    if transpose_a and not transpose_b:
        return F.dot(b, g, transpose_b=True), F.dot(a, g)
    if not transpose_a and transpose_b:
        return F.dot(g, b), F.dot(g, a, transpose_a=True)
    return (
        F.dot(b, g, transpose_a=True, transpose_b=True),
        F.dot(g, a, transpose_a=True, transpose_b=True),
    )


register(
    OpDef(
        name="dot",
        infer=_dot_types,
        impl=_dot,
        grad=dot_grad,
        inputs=("lhs", "rhs"),
        attrs=DOT_ATTRS,
        kind="blas",
        method="dot",
        doc="Matrix product; contracts the last axis of lhs with the first of rhs.",
        test=TestSpec(shapes=((3, 4), (4, 2))),
    )
)


def _batch_dot_types(
    types: Sequence[TensorType], *, transpose_a: bool, transpose_b: bool
) -> list[TensorType]:
    dtype = require_same_dtype(types)
    a, b = (t.shape for t in types)
    if len(a) != 3 or len(b) != 3 or a[0] != b[0]:
        raise GraphError("batch_dot needs (B, m, k) and (B, k, n)")
    m, k = (a[2], a[1]) if transpose_a else (a[1], a[2])
    k2, n = (b[2], b[1]) if transpose_b else (b[1], b[2])
    if k != k2:
        raise GraphError(f"inner sizes differ: {k} and {k2}")
    return [TensorType((a[0], m, n), dtype)]


def _batch_dot(a: np.ndarray, b: np.ndarray, *, transpose_a: bool, transpose_b: bool) -> np.ndarray:
    return np.matmul(a.swapaxes(1, 2) if transpose_a else a, b.swapaxes(1, 2) if transpose_b else b)


def batch_dot_grad(
    g: Expr, a: Expr, b: Expr, *, out: Expr, transpose_a: bool, transpose_b: bool
) -> tuple[Expr | None, ...]:
    """per batch: ga = g b^T, gb = a^T g"""
    bd = F.batch_dot
    if not transpose_a and not transpose_b:
        return bd(g, b, transpose_b=True), bd(a, g, transpose_a=True)
    if transpose_a and not transpose_b:
        return bd(b, g, transpose_b=True), bd(a, g)
    if not transpose_a and transpose_b:
        return bd(g, b), bd(g, a, transpose_a=True)
    return (
        bd(b, g, transpose_a=True, transpose_b=True),
        bd(g, a, transpose_a=True, transpose_b=True),
    )


register(
    OpDef(
        name="batch_dot",
        infer=_batch_dot_types,
        impl=_batch_dot,
        grad=batch_dot_grad,
        inputs=("lhs", "rhs"),
        attrs=DOT_ATTRS,
        kind="blas",
        doc="Batched matrix product of (B, m, k) and (B, k, n).",
        test=TestSpec(shapes=((2, 3, 4), (2, 4, 2))),
    )
)


def _fc_inputs(attrs: dict) -> tuple[str, ...]:
    return ("data", "weight") if attrs.get("no_bias") else ("data", "weight", "bias")


def _fc_types(
    types: Sequence[TensorType], *, num_hidden: int, no_bias: bool, flatten: bool
) -> list[TensorType]:
    dtype = require_same_dtype(types)
    data, weight = types[0].shape, types[1].shape
    features = int(np.prod(data[1:])) if flatten else data[-1]
    if weight != (num_hidden, features):
        raise GraphError(f"weight must be ({num_hidden}, {features}), got {weight}")
    if not no_bias and types[2].shape != (num_hidden,):
        raise GraphError(f"bias must be ({num_hidden},), got {types[2].shape}")
    out = (data[0], num_hidden) if flatten else data[:-1] + (num_hidden,)
    return [TensorType(out, dtype)]


def _fully_connected(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    num_hidden: int,
    no_bias: bool,
    flatten: bool,
) -> np.ndarray:
    if flatten:
        x = x.reshape(x.shape[0], -1)
    out = np.dot(x, weight.T) if x.ndim == 2 else np.tensordot(x, weight, axes=([-1], [1]))
    if bias is not None:
        out += bias
    return out


def fully_connected_grad(
    g: Expr,
    x: Expr,
    weight: Expr,
    bias: Expr | None = None,
    *,
    out: Expr,
    num_hidden: int,
    no_bias: bool,
    flatten: bool,
) -> tuple[Expr | None, ...]:
    """gx = g W, gW = g^T x, gb = sum of g over all but the last axis"""
    flat_x = F.Flatten(x) if flatten else F.reshape(x, shape=(-1, 0), reverse=True)
    flat_g = g if flatten else F.reshape(g, shape=(-1, 0), reverse=True)
    grad_x = F.reshape_like(F.dot(flat_g, weight), x)
    grad_w = F.dot(flat_g, flat_x, transpose_a=True)
    if no_bias:
        return grad_x, grad_w
    return grad_x, grad_w, F.sum(flat_g, axis=(0,))


register(
    OpDef(
        name="FullyConnected",
        infer=_fc_types,
        impl=_fully_connected,
        grad=fully_connected_grad,
        inputs=_fc_inputs,
        kind="blas",
        attrs={
            "num_hidden": Attr(as_int),
            "no_bias": Attr(as_bool, False),
            "flatten": Attr(as_bool, True),
        },
        doc="data @ weight.T + bias, with weight of shape (num_hidden, in).",
        test=TestSpec(shapes=((3, 2, 2), (5, 4), (5,)), attrs={"num_hidden": 5}),
    )
)


# ---------------------------------------------------------------------------
# activations and softmax
# ---------------------------------------------------------------------------

_ACTIVATIONS = {  # act_type -> the elementwise op that defines it
    "relu": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softrelu": "softrelu",
    "softsign": "softsign",
    "log_sigmoid": "log_sigmoid",
    "mish": "mish",
}


def _activation(x: np.ndarray, *, act_type: str) -> np.ndarray:
    from ..registry import get_op

    if act_type == "relu":  # MXNet's Activation relu maps NaN to 0 (nd.relu keeps it)
        return np.where(x > 0, x, np.zeros((), x.dtype))
    return get_op(_ACTIVATIONS[act_type]).impl(x)


def _made_by_a_loop(x: Expr) -> bool:
    """Whether ``x`` is made by an op that fuses into elementwise loops, or by a
    composite that expands into such ops (``_batch_norm_train``)."""
    node = x.entry.node
    if node.is_variable:
        return False
    op = node.op
    return (op.kind == "elemwise" and op.scalar is not None) or op.expand is not None


def activation_grad(g: Expr, x: Expr, *, out: Expr, act_type: str) -> Expr:
    """the gradient of the elementwise op named by act_type; relu: g (x > 0), 0 at NaN"""
    from ..registry import get_op

    if act_type == "relu":
        # out > 0 exactly when x > 0 (NaN gives 0 both ways). An input made by a
        # fused loop (a BatchNorm's normalise, a residual add) is not stored, but
        # the backward's loops compute it again from what they read anyway (the
        # BatchNorm's data: fuse.copies_into_readers), so they need not read the
        # activation too. Any other input is an array of its own (a convolution's
        # output): the mask reads the output, which the next layer keeps anyway,
        # and the input may be freed after the forward.
        return g * ((x if _made_by_a_loop(x) else out) > 0)
    rule = get_op(_ACTIVATIONS[act_type]).grad
    assert rule is not None  # every activation has one
    return rule(g, x, out=out)


def _activation_template(attrs: dict) -> str:
    from ..registry import get_op

    if attrs["act_type"] == "relu":
        return "({0} if {0} > 0 else 0.0)"
    template = get_op(_ACTIVATIONS[attrs["act_type"]]).scalar
    assert isinstance(template, str)  # the activations' own templates are plain
    return template


register(
    OpDef(
        name="Activation",
        infer=same_as_first,
        impl=_activation,
        grad=activation_grad,
        kind="elemwise",
        scalar=_activation_template,
        attrs={"act_type": Attr(one_of(*_ACTIVATIONS))},
        doc="Elementwise activation: relu, sigmoid, tanh, softrelu, softsign, log_sigmoid or mish.",
        test=TestSpec(attrs={"act_type": "tanh"}),
    )
)

SOFTMAX_ATTRS = {
    "axis": Attr(as_int, -1),
    "temperature": Attr(lambda v: None if v is None or v == "None" else as_float(v), None),
}


def _softmax(x: np.ndarray, *, axis: int, temperature: Any) -> np.ndarray:
    z = x / temperature if temperature else x
    shifted = z - z.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, *, axis: int, temperature: Any) -> np.ndarray:
    z = x / temperature if temperature else x
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_grad(g: Expr, x: Expr, *, out: Expr, axis: int, temperature: Any) -> Expr:
    """out * (g - sum(g * out)) / T"""
    grad = out * (g - F.sum(g * out, axis=(axis,), keepdims=True))
    return grad / temperature if temperature else grad


def log_softmax_grad(g: Expr, x: Expr, *, out: Expr, axis: int, temperature: Any) -> Expr:
    """(g - exp(out) * sum(g)) / T"""
    grad = g - F.exp(out) * F.sum(g, axis=(axis,), keepdims=True)
    return grad / temperature if temperature else grad


register(
    OpDef(
        name="softmax",
        infer=same_as_first,
        impl=_softmax,
        grad=softmax_grad,
        attrs=SOFTMAX_ATTRS,
        kind="softmax",
        method="softmax",
        doc="exp(x / T) normalised along ``axis``.",
        test=TestSpec(),
    )
)
register(
    OpDef(
        name="log_softmax",
        infer=same_as_first,
        impl=_log_softmax,
        grad=log_softmax_grad,
        attrs=SOFTMAX_ATTRS,
        kind="softmax",
        method="log_softmax",
        doc="log of softmax, computed stably.",
        test=TestSpec(),
    )
)


# ---------------------------------------------------------------------------
# Dropout: the mask is an output, so the backward is a plain product
# ---------------------------------------------------------------------------


def _dropout_types(
    types: Sequence[TensorType], *, p: float, mode: str, axes: tuple[int, ...], is_train: bool
) -> list[TensorType]:
    return [types[0], types[0]]


def _dropout(
    x: np.ndarray, *, p: float, mode: str, axes: tuple[int, ...], is_train: bool
) -> tuple[np.ndarray, ...]:
    if not (is_train or mode == "always") or p == 0:
        return x.copy(), np.ones_like(x)
    mask_shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    keep = generator().random(mask_shape) >= p
    mask = (keep / (1.0 - p)).astype(x.dtype)
    return x * mask, np.broadcast_to(mask, x.shape).copy()


def dropout_grad(
    gs: tuple[Expr, ...],
    x: Expr,
    *,
    out: tuple[Expr, ...],
    p: float,
    mode: str,
    axes: tuple[int, ...],
    is_train: bool,
) -> Expr:
    """g * mask: the mask drawn in the forward pass (output 1)"""
    return gs[0] * F.stop_gradient(out[1])


register(
    OpDef(
        name="Dropout",
        infer=_dropout_types,
        impl=_dropout,
        grad=dropout_grad,
        attrs={
            "p": Attr(as_float, 0.5),
            "mode": Attr(one_of("training", "always"), "training"),
            "axes": Attr(as_shape, ()),
            "is_train": Attr(as_bool, False),
        },
        uses_train_mode=True,
        visible_outputs=1,
        kind="random",
        doc="Zero each element with probability p and scale the rest by 1/(1-p) "
        "in training (or always with mode='always'); identity otherwise.",
        test=TestSpec(attrs={"p": 0.3, "is_train": True}),
    )
)


# ---------------------------------------------------------------------------
# BatchNorm
# ---------------------------------------------------------------------------


def _channel_shape(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(-1 if i == axis else 1 for i in range(ndim))


def _batchnorm_types(
    types: Sequence[TensorType],
    *,
    eps: float,
    momentum: float,
    fix_gamma: bool,
    use_global_stats: bool,
    output_mean_var: bool,
    axis: int,
    is_train: bool,
) -> list[TensorType]:
    data = types[0]
    ax = normalize_axis(axis, len(data.shape))
    channels = (data.shape[ax],)
    for name, t in zip(("gamma", "beta", "moving_mean", "moving_var"), types[1:]):
        if t.shape != channels:
            raise GraphError(f"{name} must have shape {channels}, got {t.shape}")
    stat = TensorType(channels, data.dtype)
    return [data, stat, stat]


def _batchnorm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    moving_mean: np.ndarray,
    moving_var: np.ndarray,
    *,
    eps: float,
    momentum: float,
    fix_gamma: bool,
    use_global_stats: bool,
    output_mean_var: bool,
    axis: int,
    is_train: bool,
) -> tuple[np.ndarray, ...]:
    ax = axis % x.ndim
    if not np.issubdtype(x.dtype, np.floating):  # integers: computed in float64
        outputs = _batchnorm(
            x.astype(np.float64), gamma, beta, moving_mean, moving_var, eps=eps,
            momentum=momentum, fix_gamma=fix_gamma, use_global_stats=use_global_stats,
            output_mean_var=output_mean_var, axis=axis, is_train=is_train,
        )  # fmt: skip
        return tuple([o.astype(x.dtype) for o in outputs])
    # (before, channels, after): the sums run over contiguous rows, pairwise, then
    # over rows in float64 (numpy's mean over axes (0, 2, 3) of NCHW is several
    # times slower, and the training step runs this for every BatchNorm)
    channels = x.shape[ax]
    x3 = x.reshape(math.prod(x.shape[:ax]), channels, math.prod(x.shape[ax + 1 :]))
    count = max(1, x3.shape[0] * x3.shape[2])
    if is_train and not use_global_stats:
        mean = np.add.reduce(np.add.reduce(x3, axis=2), axis=0, dtype=np.float64) / count
        centred = x3 - mean.astype(x.dtype)[:, None]
        out = np.square(centred)
        var = np.add.reduce(np.add.reduce(out, axis=2), axis=0, dtype=np.float64) / count
        # MXNet updates the running statistics during a training forward pass.
        moving_mean *= momentum
        moving_mean += (1 - momentum) * mean
        moving_var *= momentum
        moving_var += (1 - momentum) * var
    else:
        mean, var = moving_mean.astype(np.float64), moving_var.astype(np.float64)
        centred = x3 - mean.astype(x.dtype)[:, None]
        out = np.empty_like(centred)
    # As MXNet, output_mean_var gives the mean and the inverse standard deviation.
    inverse_std = 1.0 / np.sqrt(var + eps)
    scale = inverse_std if fix_gamma else inverse_std * gamma
    np.multiply(centred, scale.astype(x.dtype)[:, None], out=out)
    out += beta.astype(x.dtype)[:, None]
    return out.reshape(x.shape), mean.astype(x.dtype), inverse_std.astype(x.dtype)


def batchnorm_grad(
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
    use_global_stats: bool,
    output_mean_var: bool,
    axis: int,
    is_train: bool,
) -> tuple[Expr | None, ...]:
    """train: gx = gamma rstd (g - mean(g) - xhat mean(g xhat)); predict: g gamma rstd.
    Rebuilt from x with registered ops so that it differentiates again."""
    g = gs[0]
    shape = _channel_shape(x.ndim, axis % x.ndim)
    over_batch = {"axis": (axis,), "exclude": True, "keepdims": True}
    if is_train and not use_global_stats:
        centred = x - F.mean(x, **over_batch)
        rstd = F.rsqrt(F.mean(centred * centred, **over_batch) + eps)
        xhat = centred * rstd
        grad_x = (g - F.mean(g, **over_batch) - xhat * F.mean(g * xhat, **over_batch)) * rstd
    else:
        rstd = F.rsqrt(F.reshape(F.stop_gradient(moving_var), shape=shape) + eps)
        xhat = (x - F.reshape(F.stop_gradient(moving_mean), shape=shape)) * rstd
        grad_x = g * rstd
    if fix_gamma:
        grad_gamma = F.zeros_like(gamma)
    else:
        grad_x = grad_x * F.reshape(gamma, shape=shape)
        grad_gamma = F.sum(g * xhat, axis=(axis,), exclude=True)
    return grad_x, grad_gamma, F.sum(g, axis=(axis,), exclude=True), None, None


def _batchnorm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(-2, 2, (4, 3, 2)),
        rng.uniform(0.5, 1.5, (3,)),
        rng.uniform(-1, 1, (3,)),
        np.zeros(3),
        np.ones(3),
    ]


register(
    OpDef(
        name="BatchNorm",
        infer=_batchnorm_types,
        impl=_batchnorm,
        grad=batchnorm_grad,
        inputs=("data", "gamma", "beta", "moving_mean", "moving_var"),
        aux=("moving_mean", "moving_var"),
        uses_train_mode=True,
        visible_outputs=1,
        kind="norm",
        attrs={
            "eps": Attr(as_float, 1e-3),
            "momentum": Attr(as_float, 0.9),
            "fix_gamma": Attr(as_bool, True),
            "use_global_stats": Attr(as_bool, False),
            "output_mean_var": Attr(as_bool, False),
            "axis": Attr(as_int, 1),
            "is_train": Attr(as_bool, False),
        },
        doc="Batch normalisation over all axes but ``axis``; batch statistics "
        "(biased variance) in training, moving statistics otherwise; "
        "output_mean_var also returns the mean and 1/sqrt(var + eps).",
        test=TestSpec(
            make_inputs=_batchnorm_inputs,
            wrt=(0, 1, 2),
            attrs={"fix_gamma": False, "is_train": True},
        ),
    )
)
