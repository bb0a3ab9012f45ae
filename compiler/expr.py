"""Operators and op calls shared by every array-like type.

NDArray (eager), Symbol (graph building) and :class:`Expr` (the handles gradient
rules work on) all get ``+``, ``*``, ``x.sum()``... from :class:`OperatorMixin`,
so the mapping from Python syntax to registered ops (and to the op names MXNet
records for it) lives in one place. A subclass only says how to apply an op.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .ir import Entry
from .registry import OPS, OpDef, get_op, make_node


def bind_arguments(
    opdef: OpDef, args: Sequence[Any], kwargs: dict, is_tensor: Callable[[Any], bool]
) -> tuple[list[Any], dict]:
    """Split a call ``op(*args, **kwargs)`` into tensor inputs and attributes.

    Positional arguments fill the input slots while they are tensors (all of them
    for variadic ops), then the attributes in declared order, as MXNet's
    generated functions do. Keywords name inputs or attributes.
    """
    if (
        not opdef.variadic
        and not callable(opdef.inputs)
        and len(args) == len(opdef.inputs)
        and all(is_tensor(a) for a in args)
        and not any(k in opdef.inputs for k in kwargs)
    ):
        # the common call: every input positional, attributes (if any) by keyword
        return list(args), dict(kwargs)
    args = list(args)
    inputs: list[Any]
    if opdef.variadic:
        inputs = [a for a in args if is_tensor(a)]
        attrs = dict(kwargs)
        attrs.update(zip(opdef.attrs, (a for a in args if not is_tensor(a))))
        return inputs, attrs
    attrs = {k: v for k, v in kwargs.items()}
    names = opdef.input_names(_attrs_for_inputs(opdef, attrs))
    inputs = []
    position = 0
    for input_name in names:
        if input_name in attrs:
            inputs.append(attrs.pop(input_name))
        elif position < len(args) and is_tensor(args[position]):
            inputs.append(args[position])
            position += 1
        elif position < len(args) and args[position] is None:
            position += 1  # an optional input passed as None
        else:
            break
    while position < len(args) and args[position] is None:
        # an optional input the attrs leave out, passed as None
        # (``Convolution(x, w, None, no_bias=True)``, as MXNet's functions allow)
        position += 1
    for attr_name, value in zip((a for a in opdef.attrs if a not in attrs), args[position:]):
        attrs[attr_name] = value
    if len(args) - position > len(opdef.attrs):
        raise TypeError(f"{opdef.name}: too many positional arguments")
    names = opdef.input_names(_attrs_for_inputs(opdef, attrs))
    if len(inputs) != len(names):
        raise TypeError(f"{opdef.name}: expects inputs {names}, got {len(inputs)} tensor(s)")
    return inputs, attrs


def _attrs_for_inputs(opdef: OpDef, attrs: dict) -> dict:
    # Input lists that depend on attrs (no_bias) need canonical values of those attrs.
    if not callable(opdef.inputs):
        return attrs
    return {
        k: (spec.parse(attrs[k]) if k in attrs else spec.default) for k, spec in opdef.attrs.items()
    }


_PLAIN_SCALARS = frozenset({int, float})


def _binary_operator(
    tensor_op: str, scalar_op: str | None, reflected: bool = False
) -> Callable[[Any, Any], Any]:
    def operator(self: Any, other: Any) -> Any:
        if type(other) in _PLAIN_SCALARS and scalar_op is not None:
            # `x * 2.0`, the common case, first: never a tensor, and no ABC check
            return self._apply(scalar_op, (self,), {"scalar": other})
        other_tensor = self._coerce(other)
        if other_tensor is not None:
            pair = (other_tensor, self) if reflected else (self, other_tensor)
            return self._apply(tensor_op, pair, {})
        if isinstance(other, numbers.Number) and scalar_op is not None:
            return self._apply(scalar_op, (self,), {"scalar": other})
        return NotImplemented

    operator.__name__ = tensor_op
    operator.__doc__ = f"Elementwise ``{tensor_op}`` (``{scalar_op}`` with a scalar)."
    return operator


def _unary_operator(op_name: str) -> Callable[[Any], Any]:
    def operator(self: Any) -> Any:
        return self._apply(op_name, (self,), {})

    operator.__doc__ = f"Elementwise ``{op_name}``."
    return operator


def _fluent_method(opdef: OpDef) -> Callable[..., Any]:
    one_input = not opdef.variadic and not callable(opdef.inputs) and len(opdef.inputs) == 1

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if one_input and not args and not kwargs:
            return self._apply(opdef, (self,), {})  # x.sum(): nothing to bind
        return self._call(opdef, (self, *args), kwargs)

    method.__name__ = opdef.method or opdef.name  # (only ops with a method get one)
    method.__doc__ = f"Same as ``{opdef.name}(self, ...)``.\n\n{opdef.doc}"
    return method


class OperatorMixin:
    """Python operators and fluent methods for anything that can apply ops.

    Subclasses implement ``_apply(op_name, inputs, attrs)`` and
    ``_coerce(other)`` (return a tensor of the subclass for ``other``, or None).
    """

    __slots__ = ()
    __array_priority__ = 1000.0  # numpy must defer to our reflected operators

    def _apply(self, op: str | OpDef, inputs: Sequence[Any], attrs: dict) -> Any:
        raise NotImplementedError

    def _coerce(self, other: Any) -> Any:
        return other if isinstance(other, type(self)) else None

    def _call(self, opdef: OpDef, args: Sequence[Any], kwargs: dict) -> Any:
        inputs, attrs = bind_arguments(opdef, args, kwargs, self._is_tensor)
        return self._apply(opdef, inputs, attrs)

    def _is_tensor(self, value: Any) -> bool:
        return isinstance(value, type(self))

    __add__ = _binary_operator("broadcast_add", "_plus_scalar")
    __radd__ = _binary_operator("broadcast_add", "_plus_scalar", reflected=True)
    __sub__ = _binary_operator("broadcast_sub", "_minus_scalar")
    __rsub__ = _binary_operator("broadcast_sub", "_rminus_scalar", reflected=True)
    __mul__ = _binary_operator("broadcast_mul", "_mul_scalar")
    __rmul__ = _binary_operator("broadcast_mul", "_mul_scalar", reflected=True)
    __truediv__ = _binary_operator("broadcast_div", "_div_scalar")
    __rtruediv__ = _binary_operator("broadcast_div", "_rdiv_scalar", reflected=True)
    __mod__ = _binary_operator("broadcast_mod", "_mod_scalar")
    __rmod__ = _binary_operator("broadcast_mod", "_rmod_scalar", reflected=True)
    __pow__ = _binary_operator("broadcast_power", "_power_scalar")
    __rpow__ = _binary_operator("broadcast_power", "_rpower_scalar", reflected=True)
    # == and != build arrays, as numpy's do
    __eq__ = _binary_operator("broadcast_equal", "_equal_scalar")
    __ne__ = _binary_operator("broadcast_not_equal", "_not_equal_scalar")
    __lt__ = _binary_operator("broadcast_lesser", "_lesser_scalar")
    __le__ = _binary_operator("broadcast_lesser_equal", "_lesser_equal_scalar")
    __gt__ = _binary_operator("broadcast_greater", "_greater_scalar")
    __ge__ = _binary_operator("broadcast_greater_equal", "_greater_equal_scalar")
    __neg__ = _unary_operator("negative")
    __abs__ = _unary_operator("abs")
    __hash__ = object.__hash__

    def __pos__(self) -> Any:
        return self


def install_fluent_methods(cls: type = OperatorMixin) -> None:
    """Give ``cls`` a method for every registered op that declares one
    (``x.exp()``, ``x.sum(axis=1)``), unless the class defines it itself."""
    for opdef in set(OPS.values()):
        if opdef.method and opdef.method not in cls.__dict__:
            setattr(cls, opdef.method, _fluent_method(opdef))


class Expr(OperatorMixin):
    """A graph handle for gradient rules and hand-built graphs: one entry."""

    __slots__ = ("entry",)

    def __init__(self, entry: Entry) -> None:
        self.entry = entry

    if TYPE_CHECKING:
        # fluent methods (``g.sum(axis=1)``) are installed from the registry at
        # import time (install_fluent_methods), so the checker cannot list them
        def __getattr__(self, name: str) -> Any: ...

    def _apply(self, op: str | OpDef, inputs: Sequence[Any], attrs: dict) -> Any:
        node = make_node(op, [x.entry for x in inputs], attrs)
        outputs = [Expr(Entry(node, i)) for i in range(node.num_outputs)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    @property
    def shape(self) -> tuple[int, ...]:
        """Inferred shape."""
        return self.entry.shape

    @property
    def dtype(self) -> np.dtype:
        """Inferred dtype."""
        return self.entry.dtype

    @property
    def ndim(self) -> int:
        """Rank."""
        return len(self.entry.shape)

    def __repr__(self) -> str:
        return f"Expr({self.entry.node.name}[{self.entry.index}]: {self.shape} {self.dtype})"


def call(op: str, *inputs: Expr, **attrs: Any) -> Any:
    """Apply a registered op to graph handles: ``call('sum', g, axis=(1,))``."""
    return inputs[0]._apply(get_op(op), inputs, attrs)
