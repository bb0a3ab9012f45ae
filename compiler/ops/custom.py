"""Ops whose math is a user callback (``autograd.Function``).

The callback object provides ``forward(*arrays) -> tuple`` and
``backward(*output_grads) -> tuple`` on numpy arrays, and ``output_types``.
Its gradient is another callback op, so it composes with every other op but
cannot be differentiated twice (as in MXNet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, register


def _identity(value: Any) -> Any:
    return value


def _custom_types(types: Sequence[TensorType], *, callback: Any) -> list[TensorType]:
    return list(callback.output_types)


def _custom(*arrays: np.ndarray, callback: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    return tuple(callback.forward(*arrays))


def custom_grad(g: Expr, *inputs: Expr, out: Expr, callback: Any) -> Expr | tuple[Expr | None, ...]:
    """the callback's own backward"""
    grads = g if isinstance(g, tuple) else (g,)
    results = grads[0]._apply("_CustomFunctionBackward", (*grads, *inputs), {"callback": callback})
    return results if isinstance(results, tuple) else (results,)


register(
    OpDef(
        name="_CustomFunction",
        infer=_custom_types,
        impl=_custom,
        grad=custom_grad,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        kind="opaque",
        doc="Forward of a user-defined autograd Function.",
    )
)


def _custom_backward_types(types: Sequence[TensorType], *, callback: Any) -> list[TensorType]:
    inputs = types[len(callback.output_types) :]
    return [TensorType(t.shape, t.dtype) for t in inputs]


def _custom_backward(*arrays: np.ndarray, callback: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    grads = tuple(callback.backward(*arrays[: len(callback.output_types)]))
    inputs = arrays[len(callback.output_types) :]
    if len(grads) != len(inputs):
        raise GraphError(
            f"Function.backward returned {len(grads)} gradient(s) for {len(inputs)} input(s)"
        )
    for i, (grad, x) in enumerate(zip(grads, inputs)):
        if grad.shape != x.shape:
            raise GraphError(
                f"Function.backward: gradient {i} has shape {grad.shape}, "
                f"its input has shape {x.shape}"
            )
    return tuple(grad.astype(x.dtype, copy=False) for grad, x in zip(grads, inputs))


register(
    OpDef(
        name="_CustomFunctionBackward",
        infer=_custom_backward_types,
        impl=_custom_backward,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        differentiable=False,
        kind="opaque",
        doc="Backward of a user-defined autograd Function (not differentiable).",
    )
)
