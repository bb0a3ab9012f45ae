"""Sequence ops for recurrent code: SequenceMask, SequenceLast, SequenceReverse.

Data is time-major (T, N, ...) with ``axis=0`` or batch-major (N, T, ...) with
``axis=1``; ``sequence_length`` (N,) is an input only with
``use_sequence_length=True``. Each op is linear in its data, so its gradient is
itself (mask, reverse) or its scatter twin ``_sequence_last_grad``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_float, one_of, register
from .common import F

SEQUENCE_ATTRS = {
    "use_sequence_length": Attr(as_bool, False),
    "axis": Attr(lambda v: int(one_of("0", "1")(str(v))), 0),
}


def _sequence_inputs(attrs: dict) -> tuple[str, ...]:
    return ("data", "sequence_length") if attrs.get("use_sequence_length") else ("data",)


def _check_sequence(types: Sequence[TensorType], use_sequence_length: bool, axis: int) -> None:
    data = types[0].shape
    if len(data) < 2:
        raise GraphError("data must be (T, N, ...) or (N, T, ...)")
    if use_sequence_length and types[-1].shape != (data[1 - axis],):
        raise GraphError(
            f"sequence_length must have shape ({data[1 - axis]},), got {types[-1].shape}"
        )


def _time_major(x: np.ndarray, axis: int) -> np.ndarray:
    return x if axis == 0 else np.swapaxes(x, 0, 1)


def _lengths(x_time_major: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    steps, batch = x_time_major.shape[:2]
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    return np.clip(lengths.astype(np.int64), 0, steps)


def _steps_by_batch(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """Reshape a (T, N) table so it broadcasts against time-major data."""
    return shape + (1,) * (ndim - 2)


# ---------------------------------------------------------------------------
# SequenceMask
# ---------------------------------------------------------------------------


def _mask_types(
    types: Sequence[TensorType], *, use_sequence_length: bool, value: float, axis: Any
) -> list[TensorType]:
    _check_sequence(types, use_sequence_length, axis)
    return [types[0]]


def _sequence_mask(
    x: np.ndarray,
    lengths: np.ndarray | None = None,
    *,
    use_sequence_length: bool,
    value: float,
    axis: Any,
) -> np.ndarray:
    data = _time_major(x, axis)
    keep = np.arange(data.shape[0])[:, None] < _lengths(data, lengths)[None, :]
    keep = keep.reshape(_steps_by_batch(keep.shape, data.ndim))
    return np.ascontiguousarray(_time_major(np.where(keep, data, value).astype(x.dtype), axis))


def sequence_mask_grad(
    g: Expr,
    x: Expr,
    lengths: Expr | None = None,
    *,
    out: Expr,
    use_sequence_length: bool,
    value: float,
    axis: Any,
) -> Expr | tuple[Expr | None, ...]:
    """g inside each sequence, 0 in the masked steps"""
    if not use_sequence_length:
        return g
    return F.SequenceMask(g, lengths, use_sequence_length=True, value=0.0, axis=axis), None


def _sequence_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (4, 3, 2)), np.array([2, 4, 1.0])]


register(
    OpDef(
        name="SequenceMask",
        infer=_mask_types,
        impl=_sequence_mask,
        grad=sequence_mask_grad,
        inputs=_sequence_inputs,
        attrs={**SEQUENCE_ATTRS, "value": Attr(as_float, 0.0)},
        kind="gather",
        doc="Set the steps past each sequence's length to ``value``.",
        test=TestSpec(
            make_inputs=_sequence_test_inputs,
            wrt=(0,),
            attrs={"use_sequence_length": True, "value": -1.0},
        ),
    )
)


# ---------------------------------------------------------------------------
# SequenceLast
# ---------------------------------------------------------------------------


def _last_types(
    types: Sequence[TensorType], *, use_sequence_length: bool, axis: Any
) -> list[TensorType]:
    _check_sequence(types, use_sequence_length, axis)
    shape = types[0].shape
    return [TensorType(tuple(s for i, s in enumerate(shape) if i != axis), types[0].dtype)]


def _last_positions(data: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(_lengths(data, lengths) - 1, 0), np.arange(data.shape[1])


def _sequence_last(
    x: np.ndarray, lengths: np.ndarray | None = None, *, use_sequence_length: bool, axis: Any
) -> np.ndarray:
    data = _time_major(x, axis)
    return data[_last_positions(data, lengths)]


def sequence_last_grad(
    g: Expr,
    x: Expr,
    lengths: Expr | None = None,
    *,
    out: Expr,
    use_sequence_length: bool,
    axis: Any,
) -> Expr | tuple[Expr | None, ...]:
    """g placed at each sequence's last step of zeros shaped like the data"""
    attrs = {"use_sequence_length": use_sequence_length, "axis": axis}
    if not use_sequence_length:
        return F._sequence_last_grad(g, x, **attrs)
    return F._sequence_last_grad(g, x, lengths, **attrs), None


register(
    OpDef(
        name="SequenceLast",
        infer=_last_types,
        impl=_sequence_last,
        grad=sequence_last_grad,
        inputs=_sequence_inputs,
        attrs=SEQUENCE_ATTRS,
        kind="gather",
        doc="Each sequence's last valid step.",
        test=TestSpec(
            make_inputs=_sequence_test_inputs, wrt=(0,), attrs={"use_sequence_length": True}
        ),
    )
)


def _last_grad_inputs(attrs: dict) -> tuple[str, ...]:
    return (
        ("data", "like", "sequence_length")
        if attrs.get("use_sequence_length")
        else ("data", "like")
    )


def _last_grad_types(
    types: Sequence[TensorType], *, use_sequence_length: bool, axis: Any
) -> list[TensorType]:
    return [TensorType(types[1].shape, types[0].dtype)]


def _sequence_last_grad(
    g: np.ndarray,
    like: np.ndarray,
    lengths: np.ndarray | None = None,
    *,
    use_sequence_length: bool,
    axis: Any,
) -> np.ndarray:
    out = np.zeros(_time_major(like, axis).shape, dtype=g.dtype)
    out[_last_positions(out, lengths)] = g
    return np.ascontiguousarray(_time_major(out, axis))


def sequence_last_grad_grad(
    h: Expr,
    g: Expr,
    like: Expr,
    lengths: Expr | None = None,
    *,
    out: Expr,
    use_sequence_length: bool,
    axis: Any,
) -> tuple[Expr | None, ...]:
    """h read at each sequence's last step"""
    attrs = {"use_sequence_length": use_sequence_length, "axis": axis}
    if not use_sequence_length:
        return F.SequenceLast(h, **attrs), None
    return F.SequenceLast(h, lengths, **attrs), None, None


register(
    OpDef(
        name="_sequence_last_grad",
        infer=_last_grad_types,
        impl=_sequence_last_grad,
        shape_only=(1,),
        grad=sequence_last_grad_grad,
        inputs=_last_grad_inputs,
        attrs=SEQUENCE_ATTRS,
        kind="gather",
        doc="Zeros shaped like ``like`` with ``data`` at each sequence's last step: "
        "the gradient of SequenceLast.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 2)),
                np.zeros((4, 3, 2)),
                np.array([2, 4, 1.0]),
            ],
            wrt=(0,),
            attrs={"use_sequence_length": True},
        ),
    )
)


# ---------------------------------------------------------------------------
# SequenceReverse
# ---------------------------------------------------------------------------


def _sequence_reverse(
    x: np.ndarray, lengths: np.ndarray | None = None, *, use_sequence_length: bool, axis: Any
) -> np.ndarray:
    data = _time_major(x, axis)
    steps = np.arange(data.shape[0])[:, None]
    length = _lengths(data, lengths)[None, :]
    source = np.where(steps < length, length - 1 - steps, steps)
    out = data[source, np.arange(data.shape[1])[None, :]]
    return np.ascontiguousarray(_time_major(out, axis))


def sequence_reverse_grad(
    g: Expr,
    x: Expr,
    lengths: Expr | None = None,
    *,
    out: Expr,
    use_sequence_length: bool,
    axis: Any,
) -> Expr | tuple[Expr | None, ...]:
    """g reversed back (the reversal is its own inverse)"""
    if not use_sequence_length:
        return F.SequenceReverse(g, use_sequence_length=False, axis=axis)
    return F.SequenceReverse(g, lengths, use_sequence_length=True, axis=axis), None


def _reverse_types(
    types: Sequence[TensorType], *, use_sequence_length: bool, axis: Any
) -> list[TensorType]:
    _check_sequence(types, use_sequence_length, axis)
    return [types[0]]


register(
    OpDef(
        name="SequenceReverse",
        infer=_reverse_types,
        impl=_sequence_reverse,
        grad=sequence_reverse_grad,
        inputs=_sequence_inputs,
        attrs=SEQUENCE_ATTRS,
        kind="gather",
        doc="Reverse the valid steps of each sequence; steps past its length stay.",
        test=TestSpec(
            make_inputs=_sequence_test_inputs, wrt=(0,), attrs={"use_sequence_length": True}
        ),
    )
)
