"""Ops whose math is a user callback or a traced subgraph: Custom (MXNet's
CustomOp) and the control-flow loops _foreach, _while_loop and _cond."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ...expr import Expr
from ...ir import GraphError, TensorType
from ...registry import (
    INERT_ATTRS,
    Attr,
    OpDef,
    as_bool,
    register,
)

# ---------------------------------------------------------------------------
# Custom: MXNet's CustomOp, a user callback with its own backward
# ---------------------------------------------------------------------------
# The callback protocol is the one of ``_CustomFunction`` (compiler/ops/custom.py):
# an object in the ``callback`` attr that computes on numpy arrays. A CustomOp's
# backward also reads the forward's inputs and outputs, so the backward node takes
# them as inputs (and is ordered after the forward by that), and the output types
# follow from the input types through the callback (``infer``), as MXNet's
# CustomOpProp.infer_shape does.


def _identity(value: Any) -> Any:
    return value


def _custom_op_types(
    types: Sequence[TensorType], *, op_type: str, callback: Any, is_train: bool, **_kwargs: Any
) -> list[TensorType]:
    return list(callback.infer(types))


def _custom_op(
    *arrays: np.ndarray, op_type: str, callback: Any, is_train: bool, **_kwargs: Any
) -> np.ndarray | tuple[np.ndarray, ...]:
    return tuple(callback.forward(arrays, is_train))


def custom_op_grad(
    g: Expr, *inputs: Expr, out: Expr, op_type: str, callback: Any, is_train: bool, **_kwargs: Any
) -> Expr:
    """the user's CustomOp.backward(out_grad, in_data, out_data)"""
    grads = g if isinstance(g, tuple) else (g,)
    outs = out if isinstance(out, tuple) else (out,)
    results = grads[0]._apply("_backward_Custom", (*grads, *inputs, *outs), {"callback": callback})
    results = results if isinstance(results, tuple) else (results,)
    arguments = callback.num_arguments
    return tuple(results[:arguments]) + (None,) * (len(inputs) - arguments)


# Makes the callback of a Custom node from its op_type and keyword arguments when
# none is given (a node read from MXNet JSON): set by the frontend that owns the
# operator registry (symgrad.operator), so this layer imports nothing above it.
CUSTOM_CALLBACK_FACTORY: list = []


def _custom_inputs(attrs: dict) -> tuple[str, ...]:
    callback = attrs.get("callback")
    return ("data",) if callback is None else tuple(callback.arguments + callback.aux_names)


CUSTOM = register(
    OpDef(
        name="Custom",
        infer=_custom_op_types,
        impl=_custom_op,
        grad=custom_op_grad,
        inputs=_custom_inputs,
        attrs={
            "op_type": Attr(str),
            "callback": Attr(_identity, None),
            "is_train": Attr(as_bool, False),
        },
        uses_train_mode=True,
        kind="opaque",
        doc="A user-defined operator registered with mx.operator.register(op_type); "
        "other attributes go to its prop.\n\nGradient\n--------\nthe operator's own "
        "backward",
    )
)
_declared_attrs = CUSTOM.canonical_attrs


def _custom_canonical_attrs(given: dict) -> dict:
    """Custom keeps any keyword besides its declared attrs, as a string, as MXNet
    does: they are the prop's constructor arguments and go to JSON with the node.
    (Set on the Custom OpDef itself: the frontend's recording fast path takes
    OpDef instances by exact type, so no subclass.)"""
    extra = {
        key: str(value)
        for key, value in given.items()
        if key not in CUSTOM.attrs and key not in INERT_ATTRS
    }
    out = _declared_attrs({k: v for k, v in given.items() if k in CUSTOM.attrs})
    if out["callback"] is None:
        if not CUSTOM_CALLBACK_FACTORY:
            raise GraphError("Custom: no operator registry (import symgrad)")
        out["callback"] = CUSTOM_CALLBACK_FACTORY[0](out["op_type"], extra)
    return {**out, **extra}


CUSTOM.canonical_attrs = _custom_canonical_attrs  # type: ignore[method-assign]


def _custom_back_types(types: Sequence[TensorType], *, callback: Any) -> list[TensorType]:
    count = len(callback.output_types)
    return [TensorType(t.shape, t.dtype) for t in types[count : count + callback.num_arguments]]


def _custom_back(*arrays: np.ndarray, callback: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    count = len(callback.output_types)
    grads, rest = arrays[:count], arrays[count:]
    inputs, outputs = rest[: len(rest) - count], rest[len(rest) - count :]
    return tuple(callback.backward(grads, inputs, outputs))


register(
    OpDef(
        name="_backward_Custom",
        infer=_custom_back_types,
        impl=_custom_back,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        differentiable=False,
        kind="opaque",
        doc="The backward of a Custom op: gradients of its arguments (inputs are "
        "the output gradients, the inputs and the outputs).",
    )
)


# ---------------------------------------------------------------------------
# _foreach and _while_loop: loops whose body is a subgraph (a foreach over data
# whose length is not known when traced; every symbolic while_loop)
# ---------------------------------------------------------------------------
# The ``callback`` (made by mx.sym.contrib) holds the traced graphs and provides
# ``num_outputs``, ``infer(types)``, ``forward(arrays)`` and ``backward(grads,
# arrays)`` on numpy arrays, as Custom's does. Inputs: the loop's own inputs
# (data and states, or loop variables), then the body's free variables; outputs:
# the stacked step outputs, then the final states.


def _foreach_types(types: Sequence[TensorType], *, callback: Any) -> list[TensorType]:
    return list(callback.infer(types))


def _foreach(*arrays: np.ndarray, callback: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    return tuple(callback.forward(arrays))


def _loop_grad(backward_op: str) -> Callable[..., Expr | tuple[Expr | None, ...]]:
    def grad(
        g: Expr | tuple[Expr, ...], *inputs: Expr, out: Expr | tuple[Expr, ...], callback: Any
    ) -> Expr | tuple[Expr | None, ...]:
        grads = g if isinstance(g, tuple) else (g,)
        results = grads[0]._apply(backward_op, (*grads, *inputs), {"callback": callback})
        return results if isinstance(results, tuple) else (results,)

    grad.__doc__ = "the body's vector-Jacobian products, in reverse over the steps taken"
    return grad


foreach_grad = _loop_grad("_backward_foreach")
while_loop_grad = _loop_grad("_backward_while_loop")


register(
    OpDef(
        name="_foreach",
        infer=_foreach_types,
        impl=_foreach,
        grad=foreach_grad,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        kind="opaque",
        doc="contrib.foreach over a traced body (data length known at run time)."
        "\n\nGradient\n--------\nthe body's gradient, step by step in reverse",
    )
)


def _foreach_back_types(types: Sequence[TensorType], *, callback: Any) -> list[TensorType]:
    return list(types[callback.num_outputs :])


def _foreach_back(*arrays: np.ndarray, callback: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    count = callback.num_outputs
    return tuple(callback.backward(arrays[:count], arrays[count:]))


register(
    OpDef(
        name="_backward_foreach",
        infer=_foreach_back_types,
        impl=_foreach_back,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        differentiable=False,
        kind="opaque",
        doc="The backward of _foreach: the gradients of its inputs (inputs are "
        "its output gradients, then its inputs).",
    )
)
register(
    OpDef(
        name="_while_loop",
        infer=_foreach_types,
        impl=_foreach,
        grad=while_loop_grad,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        kind="opaque",
        doc="contrib.while_loop over traced cond and func graphs: func runs while "
        "cond holds, at most max_iterations times; outputs padded with zeros."
        "\n\nGradient\n--------\nfunc's gradient, step by step in reverse",
    )
)
register(
    OpDef(
        name="_cond",
        infer=_foreach_types,
        impl=_foreach,
        grad=_loop_grad("_backward_cond"),
        attrs={"callback": Attr(_identity)},
        variadic=True,
        kind="opaque",
        doc="contrib.cond over traced branches: the predicate (input 0) picks "
        "which branch runs.\n\nGradient\n--------\nthe chosen branch's "
        "gradient; none for the predicate",
    )
)
register(
    OpDef(
        name="_backward_cond",
        infer=_foreach_back_types,
        impl=_foreach_back,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        differentiable=False,
        kind="opaque",
        doc="The backward of _cond: the gradients of its inputs (inputs are its "
        "output gradients, then its inputs).",
    )
)
register(
    OpDef(
        name="_backward_while_loop",
        infer=_foreach_back_types,
        impl=_foreach_back,
        attrs={"callback": Attr(_identity)},
        variadic=True,
        differentiable=False,
        kind="opaque",
        doc="The backward of _while_loop: the gradients of its inputs (inputs are "
        "its output gradients, then its inputs).",
    )
)
