"""Convolutions on the channel-blocked layout: the internal ops of the pass
``blocked_layouts`` (``passes/blocked_layout.py``).

A blocked array holds NCHW data (C a multiple of 16) as (N, C / 16, H, W, 16):
the 16 channels of a block innermost, so that a position's channels are one
vector (the layout oneDNN runs MXNet's convolutions in). The pass rewrites a
program's eligible convolutions into these ops and carries the layout through
the elementwise ops, sums and concatenations between them, converting at the
edges with ``_to_blocked`` and ``_from_blocked``; no recording holds them.

Every op here computes what its NCHW counterpart computes (its numpy form
converts, calls the counterpart and converts back), so each has a gradient
rule and differentiates to any order like the counterpart:

- ``_to_blocked(x)`` and ``_from_blocked(y)`` are each other's inverse and
  each other's gradient.
- ``_blocked_conv(x, w[, b])`` is ``Convolution`` at stride 1, without
  dilation or groups, on a blocked ``x`` and to a blocked output (``w`` and
  ``b`` as Convolution's); its gradients are ``_blocked_conv_data_grad`` and
  ``_blocked_conv_weight_grad``, related among themselves as
  ``_conv_data_grad`` and ``_conv_weight_grad`` are.
- ``_blocked_pooling(x)`` is ``Pooling`` (its attrs) on blocked data, with
  gradient ``_blocked_pooling_grad``, whose own gradient is Pooling's rule
  through the conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_int, as_shape, register
from .common import F, require_same_dtype
from .conv import (
    POOL_ATTRS,
    _bias_inputs,
    _conv_data_grad,
    _conv_weight_grad,
    _convolution,
    _like_second,
    _like_third,
    _pooling,
    _pooling_grad,
    pooling_grad_grad,
)
from .conv import _pool_types as _plain_pool_types

BLOCK = 16


def blocked_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The blocked shape of NCHW ``shape``; GraphError unless it has one."""
    if len(shape) != 4 or shape[1] % BLOCK:
        raise GraphError(
            f"a blocked layout needs (N, C, H, W) data with C a multiple of {BLOCK}, "
            f"got shape {tuple(shape)}"
        )
    n, c, h, w = shape
    return (n, c // BLOCK, h, w, BLOCK)


def plain_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The NCHW shape of blocked ``shape``; GraphError unless it is blocked."""
    if len(shape) != 5 or shape[4] != BLOCK:
        raise GraphError(f"a blocked array is (N, C / 16, H, W, 16), got shape {tuple(shape)}")
    n, b, h, w, _ = shape
    return (n, b * BLOCK, h, w)


def to_blocked(x: np.ndarray) -> np.ndarray:
    """NCHW ``x`` as (N, C / 16, H, W, 16)."""
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // BLOCK, BLOCK, h, w).transpose(0, 1, 3, 4, 2))


def from_blocked(y: np.ndarray) -> np.ndarray:
    """Blocked ``y`` as NCHW."""
    n, b, h, w, _ = y.shape
    return np.ascontiguousarray(y.transpose(0, 1, 4, 2, 3).reshape(n, b * BLOCK, h, w))


# -- the conversions -------------------------------------------------------------------


def _to_blocked_types(types: Sequence[TensorType]) -> list[TensorType]:
    return [TensorType(blocked_shape(types[0].shape), types[0].dtype)]


def _from_blocked_types(types: Sequence[TensorType]) -> list[TensorType]:
    return [TensorType(plain_shape(types[0].shape), types[0].dtype)]


def _layout_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-1, 1, (2, 32, 3, 2))]


register(
    OpDef(
        name="_to_blocked",
        infer=_to_blocked_types,
        impl=to_blocked,
        grad=lambda g, x, *, out: F._from_blocked(g),
        kind="shape",
        doc="NCHW data (C a multiple of 16) in the channel-blocked layout (N, C / 16, H, W, 16).",
        test=TestSpec(make_inputs=_layout_test_inputs),
    )
)
register(
    OpDef(
        name="_from_blocked",
        infer=_from_blocked_types,
        impl=from_blocked,
        grad=lambda g, y, *, out: F._to_blocked(g),
        kind="shape",
        doc="Channel-blocked data (N, C / 16, H, W, 16) as NCHW.",
        test=TestSpec(make_inputs=lambda rng: [to_blocked(_layout_test_inputs(rng)[0])]),
    )
)


# -- the convolution and its gradients ------------------------------------------------

GEOMETRY = {
    "kernel": Attr(as_shape),
    "pad": Attr(as_shape, (0, 0)),
    "num_filter": Attr(as_int),
}


def _plain_attrs(kernel: tuple[int, ...], pad: tuple[int, ...], num_filter: int) -> dict:
    """The NCHW counterpart's attrs for a blocked convolution's geometry."""
    return dict(
        kernel=tuple(kernel),
        stride=(1, 1),
        dilate=(1, 1),
        pad=tuple(pad),
        num_filter=num_filter,
        num_group=1,
    )


def _out_sizes(sizes: Sequence[int], kernel: Sequence[int], pad: Sequence[int]) -> tuple:
    out = tuple(s + 2 * p - k + 1 for s, k, p in zip(sizes, kernel, pad))
    if len(kernel) != 2 or len(pad) != 2 or min(out) < 1:
        raise GraphError(
            f"a blocked convolution takes a 2-D kernel and padding leaving an output: "
            f"kernel {tuple(kernel)}, pad {tuple(pad)}, image {tuple(sizes)}"
        )
    return out


def _conv_types(
    types: Sequence[TensorType],
    *,
    kernel: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    no_bias: bool,
) -> list[TensorType]:
    dtype = require_same_dtype(types)
    n, c, h, w = plain_shape(types[0].shape)
    expected = (num_filter, c) + tuple(kernel)
    if types[1].shape != expected:
        raise GraphError(f"weight shape {types[1].shape} should be {expected}")
    if not no_bias and types[2].shape != (num_filter,):
        raise GraphError(f"bias shape {types[2].shape} should be ({num_filter},)")
    out = (n, num_filter) + _out_sizes((h, w), kernel, pad)
    return [TensorType(blocked_shape(out), dtype)]


def _blocked_conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    kernel: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    no_bias: bool,
) -> np.ndarray:
    plain = _convolution(
        from_blocked(x),
        w,
        b,
        **_plain_attrs(kernel, pad, num_filter),
        no_bias=no_bias,
        workspace=1024,
        cudnn_tune=None,
        cudnn_off=False,
        layout=None,
    )
    return to_blocked(plain)


def _blocked_conv_grad(
    g: Expr,
    x: Expr,
    w: Expr,
    b: Expr | None = None,
    *,
    out: Expr,
    kernel: tuple[int, ...],
    pad: tuple[int, ...],
    num_filter: int,
    no_bias: bool,
) -> tuple[Expr | None, ...]:
    """gx = conv^T_w(g), gw = conv^T_x(g), gb = sum of g over all but the channels"""
    geometry = dict(kernel=kernel, pad=pad, num_filter=num_filter)
    grad_x = F._blocked_conv_data_grad(g, w, x, **geometry)
    grad_w = F._blocked_conv_weight_grad(g, x, w, **geometry)
    if no_bias:
        return grad_x, grad_w
    sums = F.sum(g, axis=(1, 4), exclude=True)  # (F / 16, 16): the filters in order
    return grad_x, grad_w, F.reshape(sums, shape=(num_filter,))


def _conv_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        to_blocked(rng.uniform(-1, 1, (2, 16, 4, 5))),
        rng.uniform(-1, 1, (32, 16, 3, 2)),
        rng.uniform(-1, 1, (32,)),
    ]


TEST_GEOMETRY = {"kernel": (3, 2), "pad": (1, 1), "num_filter": 32}

register(
    OpDef(
        name="_blocked_conv",
        infer=_conv_types,
        impl=_blocked_conv,
        grad=_blocked_conv_grad,
        inputs=_bias_inputs,
        kind="blas",
        attrs={**GEOMETRY, "no_bias": Attr(as_bool, False)},
        doc="Convolution (stride 1, one group) of channel-blocked data to a "
        "channel-blocked output, with Convolution's weight and bias.",
        test=TestSpec(make_inputs=_conv_test_inputs, attrs=TEST_GEOMETRY),
    )
)


def _blocked_conv_data_grad(
    g: np.ndarray, w: np.ndarray, like: np.ndarray, **geometry: Any
) -> np.ndarray:
    shaped = np.empty(plain_shape(like.shape), like.dtype)  # (only its shape is read)
    return to_blocked(_conv_data_grad(from_blocked(g), w, shaped, **_plain_attrs(**geometry)))


def _blocked_data_grad_grad(
    h: Expr, g: Expr, w: Expr, like: Expr, *, out: Expr, **geometry: Any
) -> tuple[Expr | None, ...]:
    """linear in (g, w): dg = conv_w(h), dw = conv^T_h(g)"""
    return (
        F._blocked_conv(h, w, no_bias=True, **geometry),
        F._blocked_conv_weight_grad(g, h, w, **geometry),
        None,
    )


def _grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        to_blocked(rng.uniform(-1, 1, (2, 32, 4, 6))),
        rng.uniform(-1, 1, (32, 16, 3, 2)),
        np.zeros((2, 1, 4, 5, 16)),
    ]


register(
    OpDef(
        name="_blocked_conv_data_grad",
        infer=_like_third,
        impl=_blocked_conv_data_grad,
        shape_only=(2,),
        grad=_blocked_data_grad_grad,
        inputs=("data", "weight", "like"),
        attrs=GEOMETRY,
        kind="blas",
        doc="Gradient of _blocked_conv with respect to its data, shaped like "
        "``like`` (read at run time).",
        test=TestSpec(make_inputs=_grad_test_inputs, attrs=TEST_GEOMETRY, wrt=(0, 1)),
    )
)


def _blocked_conv_weight_grad(
    g: np.ndarray, x: np.ndarray, like: np.ndarray, **geometry: Any
) -> np.ndarray:
    return _conv_weight_grad(from_blocked(g), from_blocked(x), like, **_plain_attrs(**geometry))


def _blocked_weight_grad_grad(
    h: Expr, g: Expr, x: Expr, like: Expr, *, out: Expr, **geometry: Any
) -> tuple[Expr | None, ...]:
    """linear in (g, x): dg = conv_h(x), dx = conv^T_h(g)"""
    return (
        F._blocked_conv(x, h, no_bias=True, **geometry),
        F._blocked_conv_data_grad(g, h, x, **geometry),
        None,
    )


def _weight_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        to_blocked(rng.uniform(-1, 1, (2, 32, 4, 6))),
        to_blocked(rng.uniform(-1, 1, (2, 16, 4, 5))),
        np.zeros((32, 16, 3, 2)),
    ]


register(
    OpDef(
        name="_blocked_conv_weight_grad",
        infer=_like_third,
        impl=_blocked_conv_weight_grad,
        shape_only=(2,),
        grad=_blocked_weight_grad_grad,
        inputs=("data", "input", "like"),
        attrs=GEOMETRY,
        kind="blas",
        doc="Gradient of _blocked_conv with respect to its weight, shaped like "
        "``like`` (read at run time).",
        test=TestSpec(make_inputs=_weight_grad_test_inputs, attrs=TEST_GEOMETRY, wrt=(0, 1)),
    )
)


# -- max pooling ----------------------------------------------------------------------


def _pool_types(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
    plain = [TensorType(plain_shape(types[0].shape), types[0].dtype)]
    (out,) = _plain_pool_types(plain, **attrs)
    return [TensorType(blocked_shape(out.shape), out.dtype)]


def _blocked_pooling(x: np.ndarray, **attrs: Any) -> np.ndarray:
    return to_blocked(_pooling(from_blocked(x), **attrs))


def _blocked_pooling_grad(g: np.ndarray, x: np.ndarray, **attrs: Any) -> np.ndarray:
    return to_blocked(_pooling_grad(from_blocked(g), from_blocked(x), **attrs))


def _blocked_pooling_grad_grad(
    h: Expr, g: Expr, x: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """linear in g: Pooling's rule, through the conversions"""
    plain = pooling_grad_grad(
        F._from_blocked(h), F._from_blocked(g), F._from_blocked(x), out=out, **attrs
    )
    return (F._to_blocked(plain[0]),) + tuple(plain[1:])


def _pool_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    values = rng.permutation(2 * 16 * 5 * 6).reshape(2, 16, 5, 6) / 40.0
    return [to_blocked(values)]


POOL_TEST = {"kernel": (3, 3), "stride": (2, 2), "pooling_convention": "full", "pad": (1, 0)}

register(
    OpDef(
        name="_blocked_pooling",
        infer=_pool_types,
        impl=_blocked_pooling,
        grad=lambda g, x, *, out, **attrs: F._blocked_pooling_grad(g, x, **attrs),
        attrs=POOL_ATTRS,
        kind="pool",
        doc="Pooling of channel-blocked data to channel-blocked windows.",
        test=TestSpec(make_inputs=_pool_test_inputs, attrs=POOL_TEST),
    )
)


def _pool_grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    (x,) = _pool_test_inputs(rng)
    return [to_blocked(rng.uniform(-1, 1, (2, 16, 3, 3))), x]


register(
    OpDef(
        name="_blocked_pooling_grad",
        infer=_like_second,
        impl=_blocked_pooling_grad,
        grad=_blocked_pooling_grad_grad,
        inputs=("data", "like"),
        attrs=POOL_ATTRS,
        kind="pool",
        doc="Gradient of _blocked_pooling with respect to its data.",
        test=TestSpec(make_inputs=_pool_grad_test_inputs, attrs=POOL_TEST, wrt=(0,)),
    )
)
