"""``mx.nd.linalg``: MXNet's linear-algebra ops on NDArrays (``mx.nd.linalg.gemm2``
runs the registered ``_linalg_gemm2``), generated from the op registry.

>>> import symgrad as mx
>>> mx.nd.linalg.det(mx.nd.array([[2.0, 1.0], [1.0, 3.0]]))
<BLANKLINE>
[5.]
<NDArray 1 @cpu(0)>
"""

from __future__ import annotations

from typing import Any

from symgrad_compiler import OPS

from .._namespace import fill_namespace
from .ndarray import NDArray, invoke, is_ndarray

PREFIX = "_linalg_"


def _finish(result: Any, out: NDArray | None = None, name: str | None = None) -> Any:
    if out is None:
        return result
    out[:] = result
    return out


def _public_functions() -> dict[str, Any]:
    every: dict[str, Any] = {}
    fill_namespace(every, invoke, is_ndarray, _finish)
    return {name[len(PREFIX) :]: every[name] for name in OPS if name.startswith(PREFIX)}


globals().update(_public_functions())

__all__ = sorted(name[len(PREFIX) :] for name in OPS if name.startswith(PREFIX))
