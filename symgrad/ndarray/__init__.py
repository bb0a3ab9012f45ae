"""``mx.nd``: eager arrays and one function per registered op.

>>> import symgrad as mx
>>> mx.nd.tanh(mx.nd.zeros((2,)))
<BLANKLINE>
[0. 0.]
<NDArray 2 @cpu(0)>
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._deferred import wait_all
from .._namespace import fill_namespace
from ..base import MXNetError
from ..context import check_context
from . import contrib, linalg, random  # noqa: F401  (mx.nd.contrib, .linalg, .random)
from .ndarray import NDArray, invoke, is_ndarray, raise_pending_failures
from .serialization import load, load_frombuffer, save


def _finish(result: Any, out: Any = None, name: str | None = None) -> Any:
    if out is None:
        return result
    if isinstance(out, (list, tuple)):
        # several outputs (multi_sgd_update's new weights): each into its array
        for target, value in zip(out, result if isinstance(result, list) else [result]):
            target[:] = value
        return out
    out[:] = result
    return out


def array(source_array: Any, ctx: Any = None, dtype: Any = None) -> NDArray:
    """An NDArray of ``source_array`` (nested lists, numpy arrays, scalars or
    NDArrays), float32 unless ``dtype`` is given or the source is an NDArray."""
    check_context(ctx)
    if isinstance(source_array, NDArray):
        data = source_array._data
        return NDArray(np.array(data, dtype=dtype or data.dtype))
    return NDArray(np.array(source_array, dtype=dtype or np.float32))


def from_numpy(ndarray: np.ndarray, zero_copy: bool = True) -> NDArray:
    """An NDArray of a numpy array. With ``zero_copy`` (MXNet's default) it shares
    the array's memory, which must be C-contiguous, and, as MXNet does, the numpy
    array becomes read-only (write through the NDArray)."""
    if not zero_copy:
        return NDArray(np.array(ndarray))
    if not ndarray.flags.c_contiguous:
        raise ValueError("Only c-contiguous arrays are supported for zero-copy")
    shared = ndarray.view()  # keeps its write flag when the original loses it
    ndarray.flags.writeable = False
    result = NDArray(shared)
    result._shared = True  # its buffer is the caller's array
    return result


class _Capsule:
    """A bare DLPack capsule dressed as the array API object numpy imports."""

    def __init__(self, capsule: Any):
        self._capsule = capsule

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


def from_dlpack(dlpack: Any) -> NDArray:
    """An NDArray sharing the memory of a DLPack capsule (from
    ``to_dlpack_for_read``/``_write``, or another library) or of any object with
    ``__dlpack__``. A capsule can be consumed once."""
    source = dlpack if hasattr(dlpack, "__dlpack__") else _Capsule(dlpack)
    return NDArray(np.from_dlpack(source))


def to_dlpack_for_read(data: NDArray) -> Any:
    """A DLPack capsule sharing ``data``'s memory, for another library to read
    (``data.to_dlpack_for_read()``)."""
    return data.to_dlpack_for_read()


def to_dlpack_for_write(data: NDArray) -> Any:
    """A DLPack capsule sharing ``data``'s memory, for another library to write
    into (``data.to_dlpack_for_write()``)."""
    return data.to_dlpack_for_write()


def _extra(kwargs: dict) -> dict:
    """Keywords a creation function passes on to its op, which refuses unknown
    ones (``dtyp=``) as MXNet does; dense storage is the only one there is."""
    if kwargs.get("stype", "default") not in (None, "default"):
        raise MXNetError(f"stype={kwargs['stype']!r}: sparse storage is not supported")
    return {k: v for k, v in kwargs.items() if k != "stype"}


def empty(shape: Any, ctx: Any = None, dtype: Any = "float32") -> NDArray:
    """An uninitialised array (zeros here)."""
    return zeros(shape, ctx, dtype)


def zeros(
    shape: Any, ctx: Any = None, dtype: Any = "float32", out: NDArray | None = None, **kwargs: Any
) -> NDArray:
    """Zeros of ``shape`` (written into ``out`` if given, as MXNet does)."""
    check_context(ctx)
    return _finish(
        invoke("_zeros", (), dict(_extra(kwargs), shape=shape, dtype=dtype or "float32")), out
    )


def ones(
    shape: Any, ctx: Any = None, dtype: Any = "float32", out: NDArray | None = None, **kwargs: Any
) -> NDArray:
    """Ones of ``shape`` (written into ``out`` if given, as MXNet does)."""
    check_context(ctx)
    return _finish(
        invoke("_ones", (), dict(_extra(kwargs), shape=shape, dtype=dtype or "float32")), out
    )


def full(
    shape: Any, val: float, ctx: Any = None, dtype: Any = "float32", out: NDArray | None = None
) -> NDArray:
    """An array of ``shape`` filled with ``val``."""
    check_context(ctx)
    return _finish(
        invoke("_full", (), {"shape": shape, "dtype": dtype or "float32", "value": val}), out
    )


def arange(
    start: float,
    stop: float | None = None,
    step: float = 1.0,
    repeat: int = 1,
    ctx: Any = None,
    dtype: Any = "float32",
    **kwargs: Any,
) -> NDArray:
    """Evenly spaced values in [start, stop)."""
    check_context(ctx)
    return invoke(
        "_arange",
        (),
        dict(
            _extra(kwargs),
            start=start,
            stop=stop,
            step=step,
            repeat=repeat,
            dtype=dtype or "float32",
        ),
    )


def _array_or_scalar(tensor_op: str, scalar_op: str, reflected_op: str):
    def function(lhs: Any, rhs: Any) -> Any:
        if isinstance(lhs, NDArray) and isinstance(rhs, NDArray):
            return invoke(tensor_op, (lhs, rhs), {})
        if isinstance(lhs, NDArray) and isinstance(rhs, numbers.Number):
            return invoke(scalar_op, (lhs,), {"scalar": rhs})
        if isinstance(rhs, NDArray) and isinstance(lhs, numbers.Number):
            return invoke(reflected_op, (rhs,), {"scalar": lhs})
        raise TypeError(
            f"{tensor_op}: expected NDArrays or numbers, got "
            f"{type(lhs).__name__} and {type(rhs).__name__}"
        )

    function.__name__ = tensor_op.replace("broadcast_", "")
    function.__doc__ = (
        f"Elementwise ``{function.__name__}`` of arrays (broadcasting) or of an array and a scalar."
    )
    return function


maximum = _array_or_scalar("broadcast_maximum", "_maximum_scalar", "_maximum_scalar")
minimum = _array_or_scalar("broadcast_minimum", "_minimum_scalar", "_minimum_scalar")
power = _array_or_scalar("broadcast_power", "_power_scalar", "_rpower_scalar")
add = _array_or_scalar("broadcast_add", "_plus_scalar", "_plus_scalar")
multiply = _array_or_scalar("broadcast_mul", "_mul_scalar", "_mul_scalar")
subtract = _array_or_scalar("broadcast_sub", "_minus_scalar", "_rminus_scalar")
divide = _array_or_scalar("broadcast_div", "_div_scalar", "_rdiv_scalar")


def waitall() -> None:
    """Wait for all pending computation: compute every value a recording deferred,
    then raise MXNetError for a computation that failed, as MXNet's ``waitall``
    rethrows an asynchronous op's error (once for an eager op whose result was not
    read yet; an array whose deferred computation failed raises again when read).
    Every other array stays usable."""
    try:
        wait_all()
    finally:
        raise_pending_failures()


def concatenate(arrays: list, axis: int = 0, always_copy: bool = True) -> NDArray:
    """Join a list of arrays along ``axis``."""
    return invoke("Concat", tuple(arrays), {"dim": axis})


from ..operator import custom as Custom  # noqa: E402,F401,N812  (mx.nd.Custom)
from .tail import *  # noqa: E402, F403  (equal, greater ..., moveaxis, histogram, split_v2)

fill_namespace(globals(), invoke, is_ndarray, _finish)

__all__ = [
    "NDArray",
    "array",
    "zeros",
    "ones",
    "full",
    "arange",
    "empty",
    "maximum",
    "minimum",
    "power",
    "waitall",
    "random",
    "linalg",
    "MXNetError",
    "save",
    "load",
    "load_frombuffer",
    "from_numpy",
    "from_dlpack",
    "to_dlpack_for_read",
    "to_dlpack_for_write",
]
