"""``mx.nd`` functions MXNet 1.9.1 defines in Python over registered ops: the
comparisons and logical ops of an array with an array or a number, modulo,
true_divide, moveaxis, histogram and split_v2. Each picks the op MXNet's own
wrapper calls; none defines math of its own.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from typing import Any

from .ndarray import NDArray, invoke


def _dispatch(tensor_op: str, scalar_op: str, reflected_op: str, numbers_op: Callable) -> Callable:
    """``f(lhs, rhs)``: ``tensor_op`` for two arrays (broadcasting), ``scalar_op``
    for an array and a number, ``reflected_op`` for a number and an array."""

    def function(lhs: Any, rhs: Any) -> Any:
        if isinstance(lhs, NDArray) and isinstance(rhs, NDArray):
            return invoke(tensor_op, (lhs, rhs), {})
        if isinstance(lhs, NDArray) and isinstance(rhs, numbers.Number):
            return invoke(scalar_op, (lhs,), {"scalar": float(rhs)})
        if isinstance(rhs, NDArray) and isinstance(lhs, numbers.Number):
            return invoke(reflected_op, (rhs,), {"scalar": float(lhs)})
        if isinstance(lhs, numbers.Number) and isinstance(rhs, numbers.Number):
            return numbers_op(lhs, rhs)
        raise TypeError(
            f"{tensor_op}: expected NDArrays or numbers, got "
            f"{type(lhs).__name__} and {type(rhs).__name__}"
        )

    function.__name__ = function.__qualname__ = tensor_op.replace("broadcast_", "")
    function.__doc__ = (
        f"``{tensor_op}`` of two arrays (broadcasting), ``{scalar_op}`` of an array and "
        f"a number, ``{reflected_op}`` of a number and an array."
    )
    return function


equal = _dispatch("broadcast_equal", "_equal_scalar", "_equal_scalar", operator.eq)
not_equal = _dispatch("broadcast_not_equal", "_not_equal_scalar", "_not_equal_scalar", operator.ne)
greater = _dispatch("broadcast_greater", "_greater_scalar", "_lesser_scalar", operator.gt)
greater_equal = _dispatch(
    "broadcast_greater_equal", "_greater_equal_scalar", "_lesser_equal_scalar", operator.ge
)
lesser = _dispatch("broadcast_lesser", "_lesser_scalar", "_greater_scalar", operator.lt)
lesser_equal = _dispatch(
    "broadcast_lesser_equal", "_lesser_equal_scalar", "_greater_equal_scalar", operator.le
)
logical_and = _dispatch(
    "broadcast_logical_and", "_logical_and_scalar", "_logical_and_scalar", lambda a, b: a and b
)
logical_or = _dispatch(
    "broadcast_logical_or", "_logical_or_scalar", "_logical_or_scalar", lambda a, b: a or b
)
logical_xor = _dispatch(
    "broadcast_logical_xor",
    "_logical_xor_scalar",
    "_logical_xor_scalar",
    lambda a, b: bool(a) != bool(b),
)
modulo = _dispatch("broadcast_mod", "_mod_scalar", "_rmod_scalar", operator.mod)
true_divide = _dispatch("broadcast_div", "_div_scalar", "_rdiv_scalar", operator.truediv)


def moveaxis(tensor: NDArray, source: int, destination: int) -> NDArray:
    """``tensor`` with axis ``source`` moved to position ``destination`` (a
    transpose)."""
    ndim = tensor.ndim
    source, destination = source % ndim, destination % ndim
    axes = [a for a in range(ndim) if a != source]
    axes.insert(destination, source)
    return invoke("transpose", (tensor,), {"axes": tuple(axes)})


def histogram(a: NDArray, bins: Any = 10, range: Any = None) -> list:  # noqa: A002
    """The counts of ``a`` in ``bins`` equal bins over ``range`` (default: a's
    min to max), or between the edges of an NDArray ``bins``; and the edges."""
    if isinstance(bins, NDArray):
        return invoke("_histogram", (a, bins), {})
    return invoke("_histogram", (a,), {"bin_cnt": bins, "range": range})


def split_v2(
    ary: NDArray, indices_or_sections: Any, axis: int = 0, squeeze_axis: bool = False
) -> Any:
    """``ary`` split along ``axis``: into that many equal pieces (an int), or at
    the given indices (a tuple)."""
    if isinstance(indices_or_sections, int):
        attrs = {"sections": indices_or_sections}
    else:
        attrs = {"indices": (0, *indices_or_sections)}
    return invoke("_split_v2", (ary,), dict(attrs, axis=axis, squeeze_axis=squeeze_axis))


__all__ = [
    "equal",
    "greater",
    "greater_equal",
    "histogram",
    "lesser",
    "lesser_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "modulo",
    "moveaxis",
    "not_equal",
    "split_v2",
    "true_divide",
]
