"""contrib's interleaved attention matmuls (GluonNLP's BERT and Transformer)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...expr import Expr
from ...ir import GraphError, TensorType
from ...registry import (
    Attr,
    OpDef,
    TestSpec,
    as_int,
    register,
)
from ..common import F

# ---------------------------------------------------------------------------
# interleaved attention matmuls (GluonNLP's BERT and Transformer)
# ---------------------------------------------------------------------------
# The projections arrive interleaved per head: (length, batch, heads * parts * d)
# with parts q, k, v (self-attention) or k, v (encoder-decoder). Each op is a
# reshape, a transpose and a batched matmul; its gradient rule rebuilds that
# composition from registered ops and differentiates it, so the numpy
# implementation and the gradient are checked against each other by the
# generated finite-difference tests.


def _split_heads_numpy(x: np.ndarray, heads: int, parts: int, part: int) -> np.ndarray:
    length, batch, width = x.shape
    depth = width // (heads * parts)
    picked = x.reshape(length, batch, heads, parts, depth)[:, :, :, part]
    return picked.transpose(1, 2, 0, 3).reshape(batch * heads, length, depth)


def _split_heads(x: Expr, heads: int, parts: int, part: int) -> Expr:
    """The numpy split above, on graph handles."""
    length, batch, width = x.shape
    depth = width // (heads * parts)
    five = F.Reshape(x, shape=(length, batch, heads, parts, depth))
    picked = F.Reshape(
        F.slice_axis(five, axis=3, begin=part, end=part + 1), shape=(length, batch, heads, depth)
    )
    return F.Reshape(F.transpose(picked, axes=(1, 2, 0, 3)), shape=(batch * heads, length, depth))


def _merge_heads_numpy(x: np.ndarray, heads: int, length: int, batch: int) -> np.ndarray:
    depth = x.shape[-1]
    return (
        x.reshape(batch, heads, length, depth)
        .transpose(2, 0, 1, 3)
        .reshape(length, batch, heads * depth)
    )


def _merge_heads(x: Expr, heads: int, length: int, batch: int) -> Expr:
    depth = x.shape[-1]
    four = F.Reshape(x, shape=(batch, heads, length, depth))
    return F.Reshape(F.transpose(four, axes=(2, 0, 1, 3)), shape=(length, batch, heads * depth))


def _composite_grad(build: Callable[..., Expr]) -> Callable[..., Expr | tuple[Expr | None, ...]]:
    """A gradient rule: differentiate ``build(*inputs, **attrs)``, the op's
    forward made of registered ops, seeded with g."""

    def grad(g: Expr, *inputs: Expr, out: Expr, **attrs: Any) -> Expr | tuple[Expr | None, ...]:
        from ...autodiff import differentiate  # autodiff imports the op namespace

        result = build(*inputs, **attrs)
        entries = differentiate([result.entry], [g.entry], [x.entry for x in inputs])
        return tuple(None if e is None else Expr(e) for e in entries)

    grad.__doc__ = f"the gradient of {build.__doc__}"
    return grad


def _check_width(shape: tuple[int, ...], heads: int, parts: int) -> int:
    if len(shape) != 3 or shape[2] % (heads * parts):
        raise GraphError(f"expected (length, batch, heads * {parts} * d), got {shape}")
    return shape[2] // (heads * parts)


def _selfatt_qk_types(types: Sequence[TensorType], *, heads: int) -> list[TensorType]:
    length, batch, _ = types[0].shape
    _check_width(types[0].shape, heads, 3)
    return [TensorType((batch * heads, length, length), types[0].dtype)]


def _selfatt_qk(qkv: np.ndarray, *, heads: int) -> np.ndarray:
    q = _split_heads_numpy(qkv, heads, 3, 0)
    k = _split_heads_numpy(qkv, heads, 3, 1)
    scale = 1.0 / math.sqrt(q.shape[-1])
    return (np.matmul(q, k.transpose(0, 2, 1)) * scale).astype(qkv.dtype, copy=False)


def _selfatt_qk_graph(qkv: Expr, *, heads: int) -> Expr:
    """q k^T / sqrt(d) per head"""
    q, k = _split_heads(qkv, heads, 3, 0), _split_heads(qkv, heads, 3, 1)
    return F.batch_dot(q, k, transpose_b=True) * (1.0 / math.sqrt(q.shape[-1]))


_HEADS = {"heads": Attr(as_int)}
_QKV_INPUTS = lambda rng: [rng.uniform(-1, 1, (3, 2, 12))]  # noqa: E731

register(
    OpDef(
        name="_contrib_interleaved_matmul_selfatt_qk",
        infer=_selfatt_qk_types,
        impl=_selfatt_qk,
        grad=_composite_grad(_selfatt_qk_graph),
        inputs=("queries_keys_values",),
        attrs=_HEADS,
        kind="opaque",
        doc="Self-attention scores q k^T / sqrt(d) per head from interleaved "
        "projections (length, batch, heads*3*d) -> (batch*heads, length, length)."
        "\n\nGradient\n--------\nthe composition's (reshape, transpose, "
        "batch_dot) gradient",
        test=TestSpec(make_inputs=_QKV_INPUTS, attrs={"heads": 2}),
    )
)


def _selfatt_valatt_types(types: Sequence[TensorType], *, heads: int) -> list[TensorType]:
    length, batch, _ = types[0].shape
    depth = _check_width(types[0].shape, heads, 3)
    if types[1].shape != (batch * heads, length, length):
        raise GraphError(f"attention must be {(batch * heads, length, length)}")
    return [TensorType((length, batch, heads * depth), types[0].dtype)]


def _selfatt_valatt(qkv: np.ndarray, attention: np.ndarray, *, heads: int) -> np.ndarray:
    v = _split_heads_numpy(qkv, heads, 3, 2)
    return _merge_heads_numpy(np.matmul(attention, v), heads, qkv.shape[0], qkv.shape[1])


def _selfatt_valatt_graph(qkv: Expr, attention: Expr, *, heads: int) -> Expr:
    """attention v per head, heads merged"""
    v = _split_heads(qkv, heads, 3, 2)
    return _merge_heads(F.batch_dot(attention, v), heads, qkv.shape[0], qkv.shape[1])


register(
    OpDef(
        name="_contrib_interleaved_matmul_selfatt_valatt",
        infer=_selfatt_valatt_types,
        impl=_selfatt_valatt,
        grad=_composite_grad(_selfatt_valatt_graph),
        inputs=("queries_keys_values", "attention"),
        attrs=_HEADS,
        kind="opaque",
        doc="Self-attention output: attention times each head's values, heads "
        "merged to (length, batch, heads*d).\n\nGradient\n--------\nthe "
        "composition's gradient",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-1, 1, (3, 2, 12)), rng.uniform(-1, 1, (4, 3, 3))],
            attrs={"heads": 2},
        ),
    )
)


def _encdec_qk_types(types: Sequence[TensorType], *, heads: int) -> list[TensorType]:
    qlen, batch, width = types[0].shape
    kvlen = types[1].shape[0]
    _check_width(types[1].shape, heads, 2)
    if width * 2 != types[1].shape[2] or types[1].shape[1] != batch:
        raise GraphError(
            "queries (q, batch, heads*d) and keys_values (k, batch, heads*2*d) do not match"
        )
    return [TensorType((batch * heads, qlen, kvlen), types[0].dtype)]


def _encdec_qk(queries: np.ndarray, keys_values: np.ndarray, *, heads: int) -> np.ndarray:
    q = _split_heads_numpy(queries, heads, 1, 0)
    k = _split_heads_numpy(keys_values, heads, 2, 0)
    scale = 1.0 / math.sqrt(q.shape[-1])
    return (np.matmul(q, k.transpose(0, 2, 1)) * scale).astype(queries.dtype, copy=False)


def _encdec_qk_graph(queries: Expr, keys_values: Expr, *, heads: int) -> Expr:
    """q k^T / sqrt(d) per head, keys from interleaved keys_values"""
    q, k = _split_heads(queries, heads, 1, 0), _split_heads(keys_values, heads, 2, 0)
    return F.batch_dot(q, k, transpose_b=True) * (1.0 / math.sqrt(q.shape[-1]))


register(
    OpDef(
        name="_contrib_interleaved_matmul_encdec_qk",
        infer=_encdec_qk_types,
        impl=_encdec_qk,
        grad=_composite_grad(_encdec_qk_graph),
        inputs=("queries", "keys_values"),
        attrs=_HEADS,
        kind="opaque",
        doc="Encoder-decoder attention scores q k^T / sqrt(d) per head -> "
        "(batch*heads, q_length, kv_length).\n\nGradient\n--------\nthe "
        "composition's gradient",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-1, 1, (4, 2, 6)), rng.uniform(-1, 1, (3, 2, 12))],
            attrs={"heads": 2},
        ),
    )
)


def _encdec_valatt_types(types: Sequence[TensorType], *, heads: int) -> list[TensorType]:
    kvlen, batch, _ = types[0].shape
    depth = _check_width(types[0].shape, heads, 2)
    rows, qlen, cols = types[1].shape
    if rows != batch * heads or cols != kvlen:
        raise GraphError(f"attention must be ({batch * heads}, q_length, {kvlen})")
    return [TensorType((qlen, batch, heads * depth), types[0].dtype)]


def _encdec_valatt(keys_values: np.ndarray, attention: np.ndarray, *, heads: int) -> np.ndarray:
    v = _split_heads_numpy(keys_values, heads, 2, 1)
    return _merge_heads_numpy(
        np.matmul(attention, v), heads, attention.shape[1], keys_values.shape[1]
    )


def _encdec_valatt_graph(keys_values: Expr, attention: Expr, *, heads: int) -> Expr:
    """attention v per head, values from interleaved keys_values, heads merged"""
    v = _split_heads(keys_values, heads, 2, 1)
    return _merge_heads(F.batch_dot(attention, v), heads, attention.shape[1], keys_values.shape[1])


register(
    OpDef(
        name="_contrib_interleaved_matmul_encdec_valatt",
        infer=_encdec_valatt_types,
        impl=_encdec_valatt,
        grad=_composite_grad(_encdec_valatt_graph),
        inputs=("keys_values", "attention"),
        attrs=_HEADS,
        kind="opaque",
        doc="Encoder-decoder attention output: attention times each head's "
        "values, heads merged to (q_length, batch, heads*d).\n\nGradient\n"
        "--------\nthe composition's gradient",
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-1, 1, (3, 2, 12)), rng.uniform(-1, 1, (4, 4, 3))],
            attrs={"heads": 2},
        ),
    )
)
