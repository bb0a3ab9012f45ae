"""Generate ``mx.nd.<op>`` and ``mx.sym.<op>`` from the one op registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad_compiler import OPS, OpDef, bind_arguments

from ._op_docs import op_docstring


def _make_function(
    public_name: str, opdef: OpDef, apply: Callable, is_tensor: Callable, finish: Callable
) -> Callable:
    fixed_arity = None if (opdef.variadic or callable(opdef.inputs)) else len(opdef.inputs)

    def function(*args: Any, **kwargs: Any) -> Any:
        # The common call f(x) needs no binding (checked without all(map(...))
        # for one input: a recorded op costs a few microseconds in all).
        if (
            not kwargs
            and len(args) == fixed_arity
            and (is_tensor(args[0]) if fixed_arity == 1 else all(map(is_tensor, args)))
        ):
            return apply(opdef, args, {})
        options = {k: kwargs.pop(k) for k in ("out", "name") if k in kwargs}
        refuse_numpy(public_name, opdef, args, kwargs)
        inputs, attrs = bind_arguments(opdef, args, kwargs, is_tensor)
        return finish(apply(opdef, inputs, attrs), **options)

    function.__name__ = public_name
    function.__qualname__ = public_name
    function.__doc__ = op_docstring(opdef, public_name, "nd")
    return function


def refuse_numpy(
    public_name: str, opdef: OpDef, args: Sequence[Any], kwargs: dict, expected: str = "an NDArray"
) -> None:
    """Raise MXNet's error for a numpy array given where an array input is expected
    (MXNet asserts ``Argument data must have NDArray type``), naming the op and the
    argument, instead of binding it as an attribute."""
    if not any(isinstance(v, np.ndarray) for v in args) and not any(
        isinstance(v, np.ndarray) for v in kwargs.values()
    ):
        return  # the usual case, kept cheap: fluent methods call this while recording
    try:
        names = list(opdef.input_names({})) if not opdef.variadic else []
    except Exception:  # input lists that depend on attrs: name by position
        names = []
    given = [(names[i] if i < len(names) else f"#{i}", v) for i, v in enumerate(args)]
    for argument, value in given + list(kwargs.items()):
        if isinstance(value, np.ndarray):
            raise NDArrayTypeError(
                f"{public_name}: argument {argument!r} must be {expected}, got a "
                f"numpy.ndarray of shape {value.shape}"
                + (" (wrap it with mx.nd.array)" if "NDArray" in expected else "")
            )


class NDArrayTypeError(TypeError, AssertionError):
    """A numpy array given where an NDArray is expected. A TypeError; also an
    AssertionError, which is what MXNet 1.9.1 raises for op arguments."""


def fill_namespace(namespace: dict, apply: Callable, is_tensor: Callable, finish: Callable) -> None:
    """Add a function per registered op name (and alias) to ``namespace``,
    leaving names the namespace already defines alone."""
    for name, opdef in OPS.items():
        if name != "null" and name not in namespace:
            namespace[name] = _make_function(name, opdef, apply, is_tensor, finish)
