"""MXNet's ``reset_arrays``: set every given array to zero, in place.

MXNet's Trainer calls it to clear gradient buffers in one op; it returns no
output (``mx.nd.reset_arrays(a, b, num_arrays=2)`` gives ``[]``). Like the
optimizer's state updates it writes into the arrays given, here directly: there
is no new value to return.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, as_int, register


def _reset_types(types: Sequence[TensorType], *, num_arrays: int) -> list[TensorType]:
    if num_arrays != len(types):
        raise GraphError(f"num_arrays is {num_arrays} but {len(types)} arrays were given")
    if any(t.dtype.kind != "f" for t in types):  # as MXNet refuses them
        raise GraphError("reset_arrays takes floating-point arrays only")
    return []


def _reset_arrays(*arrays: np.ndarray, num_arrays: int) -> tuple[()]:
    _reset_types([TensorType(a.shape, a.dtype) for a in arrays], num_arrays=num_arrays)
    for array in arrays:
        array[...] = 0
    return ()


register(
    OpDef(
        name="reset_arrays",
        infer=_reset_types,
        impl=_reset_arrays,
        inputs=("data",),
        variadic=True,
        attrs={"num_arrays": Attr(as_int)},
        differentiable=False,
        kind="opaque",
        doc="Set each of the ``num_arrays`` (floating-point) arrays given to zero, in place; "
        "no output. "
        "No gradient.",
    )
)
