"""Building blocks shared by the op definition modules: type rules, op builders
for the many elementwise ops, and ``F``, the op namespace gradient rules use."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..expr import Expr, call
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_float, register, same_as_first  # noqa: F401

# same_as_first is defined in the registry, which tells by it the ops that keep
# their input's type; op modules take it from here with the other type rules.


class _OpNamespace:
    """``F.exp(x)``, ``F.sum(g, axis=1)``: apply registered ops to graph handles."""

    def __getattr__(self, op_name: str) -> Callable[..., Any]:
        def apply(*inputs: Expr, **attrs: Any) -> Any:
            return call(op_name, *inputs, **attrs)

        apply.__name__ = op_name
        return apply


F = _OpNamespace()


# ---------------------------------------------------------------------------
# type rules
# ---------------------------------------------------------------------------


def require_same_dtype(types: Sequence[TensorType]) -> np.dtype:
    """The common dtype of ``types``; MXNet refuses to mix dtypes in one op."""
    dtype = types[0].dtype
    for t in types[1:]:
        if t.dtype != dtype:
            raise GraphError(f"dtypes differ: {', '.join(str(t.dtype) for t in types)}")
    return dtype


def broadcast_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    """numpy broadcasting of all input shapes; dtypes must agree."""
    dtype = require_same_dtype(types)
    first = types[0].shape
    if len(types) == 2:  # the common call; a bias added to rows, say
        second = types[1].shape
        if first[len(first) - len(second) :] == second:
            return [TensorType(first, dtype)]
        if second[len(second) - len(first) :] == first:
            return [TensorType(second, dtype)]
    elif all(t.shape == first for t in types):
        return [TensorType(first, dtype)]
    # By hand: numpy.broadcast_shapes costs several microseconds, paid by every
    # recorded broadcasting op.
    rank = max(len(t.shape) for t in types)
    shape = [1] * rank
    for t in types:
        offset = rank - len(t.shape)
        for axis, size in enumerate(t.shape, offset):
            if size != shape[axis]:
                if shape[axis] != 1 and size != 1:
                    raise GraphError("shapes do not broadcast")
                shape[axis] = max(size, shape[axis]) if size and shape[axis] else 0
    return [TensorType(tuple(shape), dtype)]


def same_shape_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    """All inputs must have one shape (MXNet's ``elemwise_*`` ops)."""
    dtype = require_same_dtype(types)
    if any(t.shape != types[0].shape for t in types):
        raise GraphError("elemwise ops need equal shapes; use broadcast_* to broadcast")
    return [TensorType(types[0].shape, dtype)]


def normalize_axis(axis: int, ndim: int) -> int:
    """``axis`` as a non-negative index into a rank-``ndim`` shape."""
    if not -ndim <= axis < max(ndim, 1):
        raise GraphError(f"axis {axis} is out of range for rank {ndim}")
    return axis % max(ndim, 1)


# ---------------------------------------------------------------------------
# op builders
# ---------------------------------------------------------------------------

SCALAR = {"scalar": Attr(as_float)}


def unary(
    name: str,
    impl: Callable,
    scalar: str,
    grad: Callable | None,
    *,
    domain: tuple[float, float] = (-2.0, 2.0),
    method: bool = True,
    aliases: tuple[str, ...] = (),
    differentiable: bool = True,
    order: int = 3,
    doc: str = "",
) -> OpDef:
    """Register an elementwise op of one input."""
    return register(
        OpDef(
            name=name,
            infer=same_as_first,
            impl=impl,
            grad=grad,
            kind="elemwise",
            scalar=scalar,
            method=name if method else None,
            aliases=aliases,
            differentiable=differentiable,
            doc=doc or (grad.__doc__ or "" if grad else ""),
            test=TestSpec(shapes=((3, 4),), domain=domain, order=order),
        )
    )


def binary(
    name: str,
    impl: Callable,
    scalar: str,
    grad: Callable | None,
    *,
    broadcast: bool = True,
    domain: tuple[float, float] = (-2.0, 2.0),
    differentiable: bool = True,
    aliases: tuple[str, ...] = (),
    doc: str = "",
) -> OpDef:
    """Register an elementwise op of two inputs (broadcasting or equal shapes)."""
    shapes = ((3, 4), (1, 4)) if broadcast else ((3, 4), (3, 4))
    return register(
        OpDef(
            name=name,
            infer=broadcast_types if broadcast else same_shape_types,
            impl=impl,
            grad=grad,
            inputs=("lhs", "rhs"),
            kind="elemwise",
            scalar=scalar,
            differentiable=differentiable,
            aliases=aliases,
            doc=doc or (grad.__doc__ or "" if grad else ""),
            test=TestSpec(shapes=shapes, domain=domain),
        )
    )


def with_scalar(
    name: str,
    impl: Callable,
    scalar: str | Callable[[dict], str | None],
    grad: Callable | None,
    *,
    domain: tuple[float, float] = (-2.0, 2.0),
    test_scalar: float = 1.5,
    differentiable: bool = True,
    doc: str = "",
) -> OpDef:
    """Register an elementwise op of one array and a scalar attribute."""
    return register(
        OpDef(
            name=name,
            infer=same_as_first,
            impl=_integer_scalar(impl),
            grad=grad,
            attrs=SCALAR,
            kind="elemwise",
            scalar=scalar,
            differentiable=differentiable,
            doc=doc or (grad.__doc__ or "" if grad else ""),
            test=TestSpec(shapes=((3, 4),), domain=domain, attrs={"scalar": test_scalar}),
        )
    )


def _integer_scalar(impl: Callable) -> Callable:
    """``impl`` as MXNet runs it on an integer array: the scalar is cast to the
    array's dtype first (``x * 2.5`` is ``x * 2``, ``x + 300`` on uint8 wraps) and
    the result keeps that dtype (``x / 2`` truncates toward zero)."""

    def run(x: np.ndarray, scalar: Any) -> np.ndarray:
        if type(scalar) is not float and isinstance(scalar, float):
            # the canonical -0.0 is a float subclass, which numpy would take for a
            # float64 array and promote a float32 x with
            scalar = float(scalar)
        if x.dtype.kind not in "iu" or not math.isfinite(scalar):
            return impl(x, scalar)
        cast = np.array(int(scalar)).astype(x.dtype)[()]  # C's wrap-around, as MXNet
        with np.errstate(all="ignore"):
            return np.asarray(impl(x, cast)).astype(x.dtype, copy=False)

    run.__name__ = getattr(impl, "__name__", "impl")
    return run


def integer_truncating(divide: Callable) -> Callable:
    """``divide`` for two arrays, truncating toward zero in the integer dtype when
    both are integers, as MXNet's integer division does (numpy's gives floats)."""

    def run(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":
            with np.errstate(all="ignore"):
                quotient = np.floor_divide(a, b)
                inexact = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
                return (quotient + inexact).astype(np.result_type(a, b), copy=False)
        return divide(a, b)

    run.__name__ = getattr(divide, "__name__", "divide")
    return run


def as_dtype_of(result: Any, like: np.ndarray) -> np.ndarray:
    """Cast a numpy result (often bool or float64) to ``like``'s dtype, as MXNet
    keeps the input dtype for comparisons and scalar ops."""
    return np.asarray(result, dtype=like.dtype)
