"""Generate ``mx.nd.<op>`` and ``mx.sym.<op>`` from the one op registry."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad_compiler import OPS, GraphError, OpDef, bind_arguments

from ._op_docs import op_docstring
from .base import MXNetError


def _make_function(
    public_name: str, opdef: OpDef, apply: Callable, is_tensor: Callable, finish: Callable
) -> Callable:
    fixed_arity = None if (opdef.variadic or callable(opdef.inputs)) else len(opdef.inputs)
    # keywords that are not attributes (inputs by name, and the call's options)
    not_attrs = frozenset(("out", "name", *(() if fixed_arity is None else opdef.inputs)))

    def function(*args: Any, **kwargs: Any) -> Any:
        # The common calls f(x) and f(x, axis=1), every input positional and every
        # keyword an attribute, need no binding (checked without all(map(...)) for
        # one input: a recorded op costs a few microseconds in all).
        if len(args) == fixed_arity and (
            is_tensor(args[0]) if fixed_arity == 1 else all(map(is_tensor, args))
        ):
            if not kwargs:
                return apply(opdef, args, {})
            if not_attrs.isdisjoint(kwargs) and not _any_numpy(kwargs.values()):
                return apply(opdef, args, kwargs)  # (kwargs: a fresh dict of this call)
        options = {k: kwargs.pop(k) for k in ("out", "name") if k in kwargs}
        refuse_numpy(public_name, opdef, args, kwargs)
        inputs, attrs = bind_arguments(opdef, args, kwargs, is_tensor)
        if opdef.variadic and "num_args" in opdef.attrs:
            expected = num_args_inputs(opdef, attrs, len(inputs))
            if len(expected) != len(inputs):
                raise MXNetError(
                    f"Check failed: num_inputs == infered_num_inputs ({len(inputs)} vs. "
                    f"{len(expected)}) : Operator {opdef.name} expects {len(expected)} "
                    f"inputs, but got {len(inputs)} instead."
                )
        return finish(apply(opdef, inputs, attrs), **options)

    function.__name__ = public_name
    function.__qualname__ = public_name
    function.__doc__ = op_docstring(opdef, public_name, "nd")
    return function


def _any_numpy(values: Any) -> bool:
    for value in values:
        if isinstance(value, np.ndarray):
            return True
    return False


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


def num_args_inputs(opdef: OpDef, attrs: dict, count: int) -> tuple[str, ...]:
    """The names of the inputs a variadic op that takes MXNet's ``num_args`` expects,
    given its call's ``attrs`` and ``count`` array inputs.

    ``num_args`` is removed from ``attrs`` (a node's attrs keep it canonical, 0: the
    number of its inputs, so two spellings of one call share their programs); when
    absent it is ``count``, as MXNet's generated functions set it. The names are
    ``arg0, arg1, ...`` (MXNet's), or the op's own for an op whose input list depends
    on its attrs (bilinear ``UpSampling`` takes ``data`` and ``weight``).

    Raises
    ------
    MXNetError
        With MXNet's text, for a ``num_args`` that is not an integer or is below 1.
    """
    value = attrs.pop("num_args", count)
    number = None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value)
    if number is None:
        raise MXNetError(
            f"Invalid Parameter format for num_args expect int but value='{value}', "
            f'in operator {opdef.name}(name="", num_args="{value}")'
        )
    if number < 1:
        raise MXNetError(
            f"value {number} for Parameter num_args should be greater equal to 1, "
            f'in operator {opdef.name}(name="", num_args="{number}")'
        )
    if callable(opdef.inputs):
        try:
            return opdef.input_names(opdef.canonical_attrs(dict(attrs, num_args=number)))
        except GraphError:
            pass  # attrs the call itself will refuse, naming them
    return tuple(f"arg{i}" for i in range(number))


class NDArrayTypeError(TypeError, AssertionError):
    """A numpy array given where an NDArray is expected. A TypeError; also an
    AssertionError, which is what MXNet 1.9.1 raises for op arguments."""


def fill_namespace(namespace: dict, apply: Callable, is_tensor: Callable, finish: Callable) -> None:
    """Add a function per registered op name (and alias) to ``namespace``,
    leaving names the namespace already defines alone."""
    for name, opdef in OPS.items():
        if name != "null" and name not in namespace:
            namespace[name] = _make_function(name, opdef, apply, is_tensor, finish)
