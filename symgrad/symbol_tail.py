"""``mx.sym`` functions MXNet 1.9.1 defines in Python over registered ops:
arange, full, hypot, histogram and split_v2. Each makes the node MXNet's own
wrapper makes; none defines math of its own.
"""

from __future__ import annotations

import numbers
from typing import Any

from symgrad_compiler.registry import get_op

from .symbol import Symbol, _make_symbol


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1.0,
    repeat: int = 1,
    infer_range: bool = False,
    name: str | None = None,
    dtype: Any = None,
) -> Symbol:
    """Evenly spaced values in [start, stop), each repeated ``repeat`` times."""
    if infer_range:
        raise NotImplementedError("arange(infer_range=True) is not supported")
    attrs = {"start": start, "stop": stop, "step": step, "repeat": repeat}
    return _make_symbol(get_op("_arange"), [], dict(attrs, dtype=dtype or "float32"), name)


def full(shape: Any, val: float, dtype: Any = None, name: str | None = None) -> Symbol:
    """A constant symbol of ``shape`` filled with ``val``."""
    attrs = {"shape": shape, "value": val, "dtype": dtype or "float32"}
    return _make_symbol(get_op("_full"), [], attrs, name)


def hypot(left: Any, right: Any, name: str | None = None) -> Symbol:
    """sqrt(left^2 + right^2) of two symbols of one shape, or of a symbol and a
    number."""
    if isinstance(left, Symbol) and isinstance(right, Symbol):
        entries = [left._single_entry(), right._single_entry()]
        return _make_symbol(get_op("_hypot"), entries, {}, name)
    if isinstance(left, numbers.Number):
        left, right = right, left
    if not isinstance(left, Symbol) or not isinstance(right, numbers.Number):
        raise TypeError("hypot takes two Symbols or a Symbol and a number")
    return _make_symbol(get_op("_hypot_scalar"), [left._single_entry()], {"scalar": right}, name)


def histogram(a: Symbol, bins: Any = 10, range: Any = None, name: str | None = None) -> Symbol:  # noqa: A002
    """The counts of ``a`` in ``bins`` equal bins over ``range``, or between the
    edges of a Symbol ``bins``; and the edges (two outputs)."""
    if isinstance(bins, Symbol):
        entries = [a._single_entry(), bins._single_entry()]
        return _make_symbol(get_op("_histogram"), entries, {}, name)
    attrs = {"bin_cnt": bins, "range": range}
    return _make_symbol(get_op("_histogram"), [a._single_entry()], attrs, name)


def split_v2(
    ary: Symbol,
    indices_or_sections: Any,
    axis: int = 0,
    squeeze_axis: bool = False,
    name: str | None = None,
) -> Symbol:
    """``ary`` split along ``axis`` into equal pieces (an int) or at indices."""
    if isinstance(indices_or_sections, int):
        attrs = {"sections": indices_or_sections}
    else:
        attrs = {"indices": (0, *indices_or_sections)}
    attrs.update(axis=axis, squeeze_axis=squeeze_axis)
    return _make_symbol(get_op("_split_v2"), [ary._single_entry()], attrs, name)


__all__ = ["arange", "full", "histogram", "hypot", "split_v2"]
