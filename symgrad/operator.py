"""``mx.operator``: operators written in Python (MXNet's CustomOp).

Subclass :class:`CustomOpProp` (the operator's arguments, outputs and shapes) and
:class:`CustomOp` (its forward and backward on NDArrays), register the prop under
a name, and call it as ``mx.nd.Custom(x, op_type=name)`` or
``mx.sym.Custom(x, op_type=name)``. Gradients go through the operator's own
``backward``, inside ``autograd.record()`` and in bound or compiled symbols.

>>> import symgrad as mx
>>> class Square(mx.operator.CustomOp):
...     def forward(self, is_train, req, in_data, out_data, aux):
...         self.assign(out_data[0], req[0], in_data[0] * in_data[0])
...     def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
...         self.assign(in_grad[0], req[0], 2 * in_data[0] * out_grad[0])
>>> @mx.operator.register("doc_square")
... class SquareProp(mx.operator.CustomOpProp):
...     def create_operator(self, ctx, shapes, dtypes):
...         return Square()
>>> x = mx.nd.array([1, 2]); x.attach_grad()
>>> with mx.autograd.record():
...     y = mx.nd.Custom(x, op_type="doc_square")
>>> y.backward(); x.grad.asnumpy()
array([2., 4.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from symgrad_compiler import OPS, TensorType
from symgrad_compiler.ops.contrib import CUSTOM_CALLBACK_FACTORY
from symgrad_compiler.registry import REQUIRED

from . import _state
from .base import MXNetError
from .context import cpu
from .ndarray.ndarray import NDArray, invoke

_REGISTRY: dict[str, type] = {}


class CustomOp:
    """The computation of a custom operator; override ``forward`` and ``backward``.

    Both receive NDArrays and write their results into the given output arrays
    with :meth:`assign`, honouring ``req`` (``'write'``, ``'add'``, ``'null'``).
    """

    def forward(
        self,
        is_train: bool,
        req: list[str],
        in_data: list[NDArray],
        out_data: list[NDArray],
        aux: list[NDArray],
    ) -> None:
        """Compute ``out_data`` from ``in_data``; override it."""
        raise NotImplementedError

    def backward(
        self,
        req: list[str],
        out_grad: list[NDArray],
        in_data: list[NDArray],
        out_data: list[NDArray],
        in_grad: list[NDArray],
        aux: list[NDArray],
    ) -> None:
        """Compute ``in_grad`` from ``out_grad``; override it."""
        raise NotImplementedError

    def assign(self, dst: NDArray, req: str, src: Any) -> None:
        """Write ``src`` into ``dst`` as ``req`` says: ``'write'``/``'inplace'``
        replace, ``'add'`` adds, ``'null'`` does nothing."""
        if req == "null":
            return
        if req in ("write", "inplace"):
            dst[:] = src
        elif req == "add":
            dst[:] = dst + src
        else:
            raise MXNetError(f"unknown req {req!r}")


class CustomOpProp:
    """The description of a custom operator: its arguments, outputs, auxiliary
    states, shape and type rules, and the :class:`CustomOp` that computes it.

    ``need_top_grad`` says whether ``backward`` reads the outputs' gradients (a
    loss layer's does not). The constructor receives the keyword arguments of the
    call as strings, as in MXNet.
    """

    def __init__(self, need_top_grad: bool = True) -> None:
        self.need_top_grad_ = need_top_grad

    def infer_shape(self, in_shape: list) -> tuple[list, list, list]:
        """(input shapes, output shapes, aux shapes): by default every output and
        aux state has the first input's shape."""
        first = in_shape[0]
        return (
            in_shape,
            [first] * len(self.list_outputs()),
            [first] * len(self.list_auxiliary_states()),
        )

    def infer_type(self, in_type: list) -> tuple[list, list, list]:
        """(input types, output types, aux types): the first input's type for all."""
        first = in_type[0]
        return (
            [first] * len(in_type),
            [first] * len(self.list_outputs()),
            [first] * len(self.list_auxiliary_states()),
        )

    def list_arguments(self) -> list[str]:
        """The input names (default ``['data']``)."""
        return ["data"]

    def list_outputs(self) -> list[str]:
        """The output names (default ``['output']``)."""
        return ["output"]

    def list_auxiliary_states(self) -> list[str]:
        """The auxiliary state names (default none)."""
        return []

    def declare_backward_dependency(self, out_grad: list, in_data: list, out_data: list) -> list:
        """What backward reads (kept for MXNet's API; all of it is always kept)."""
        deps = list(in_data) + list(out_data)
        return (list(out_grad) if self.need_top_grad_ else []) + deps

    def need_top_grad(self) -> bool:
        """Whether backward reads the outputs' gradients."""
        return self.need_top_grad_

    def infer_storage_type(self, in_stype: list) -> tuple[list, list, list]:
        """Storage types: dense (``'default'``) for everything."""
        return (
            ["default"] * len(in_stype),
            ["default"] * len(self.list_outputs()),
            ["default"] * len(self.list_auxiliary_states()),
        )

    def infer_storage_type_backward(
        self, ograd_stype: list, in_stype: list, out_stype: list, igrad_stype: list, aux_stype: list
    ) -> tuple[list, ...]:
        """Storage types of the backward: dense for everything."""
        return tuple(
            ["default"] * len(group)
            for group in (ograd_stype, in_stype, out_stype, igrad_stype, aux_stype)
        )

    def create_operator(self, ctx: Any, in_shapes: list, in_dtypes: list) -> CustomOp:
        """The :class:`CustomOp` for these input shapes and dtypes; override it."""
        raise NotImplementedError


def register(reg_name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`CustomOpProp` subclass as ``reg_name``,
    the ``op_type`` of ``mx.nd.Custom``/``mx.sym.Custom``."""

    def do_register(prop_class: type) -> type:
        if not (isinstance(prop_class, type) and issubclass(prop_class, CustomOpProp)):
            raise MXNetError(
                f"register({reg_name!r}): {prop_class!r} is not a CustomOpProp subclass"
            )
        _REGISTRY[reg_name] = prop_class
        return prop_class

    return do_register


def get_all_registered_operators() -> list[str]:
    """The names of every registered backend op (as in MXNet: the ops of
    ``mx.nd``/``mx.sym``, ``Custom`` among them; not the custom op types)."""
    return sorted(name for name in OPS if name != "null")


class OperatorArguments(NamedTuple):
    """An op's arguments: how many, their names (inputs first), their types."""

    narg: int
    names: list[str]
    types: list[str]


_TYPE_NAMES = {
    "as_int": "int",
    "as_optional_int": "int or None",
    "as_float": "float",
    "as_bool": "boolean",
    "as_shape": "Shape(tuple)",
    "as_axes": "Shape or None",
}


def _describe(parse: Callable) -> str:
    return _TYPE_NAMES.get(getattr(parse, "__name__", ""), "string")


def get_operator_arguments(op_name: str) -> OperatorArguments:
    """The inputs and attributes of the registered op ``op_name``."""
    if op_name not in OPS:
        raise MXNetError(f"get_operator_arguments: no op named {op_name!r}")
    opdef = OPS[op_name]
    defaults = {k: spec.default for k, spec in opdef.attrs.items() if spec.default is not REQUIRED}
    try:  # the inputs with the attributes' defaults (FullyConnected's bias: no_bias=False)
        inputs = [] if opdef.variadic else list(opdef.input_names(defaults))
    except (KeyError, TypeError, AttributeError):
        inputs = []
    names = inputs + [k for k in opdef.attrs if k not in ("is_train", "callback", "_draw")]
    types = ["NDArray-or-Symbol"] * len(inputs)
    for key in names[len(inputs) :]:
        spec = opdef.attrs[key]
        kind = _describe(spec.parse)
        types.append(
            f"{kind}, required"
            if spec.default is REQUIRED
            else f"{kind}, optional, default={spec.default!r}"
        )
    return OperatorArguments(len(names), names, types)


class _paused:
    """Recording off while user code runs on NDArrays (its ops are not part of
    the graph: the Custom node stands for them)."""

    def __enter__(self) -> None:
        self._saved = _state.recording.get()
        _state.recording.set(False)

    def __exit__(self, *exc: Any) -> None:
        _state.recording.set(self._saved)


def _shape_list(shapes: Sequence[Any]) -> list:
    return [list(s) if s is not None else [] for s in shapes]


class CustomCallback:
    """Adapts a registered prop to the compiler's callback protocol (numpy in and
    out; see ``compiler/ops/contrib.py``, section Custom).

    One callback stands for one ``Custom`` node: a symbol's node keeps its
    callback, so programs that hold it are cached with the symbol; an imperative
    call makes a fresh one (``cacheable = False`` keeps those out of the cache).
    """

    def __init__(self, op_type: str, kwargs: dict[str, Any], cacheable: bool) -> None:
        if op_type not in _REGISTRY:
            raise MXNetError(
                f"Custom: no operator registered as {op_type!r}; registered: {sorted(_REGISTRY)}"
            )
        self.op_type = op_type
        self.kwargs = {key: str(value) for key, value in kwargs.items()}
        self.prop = _REGISTRY[op_type](**self.kwargs)
        self.arguments = list(self.prop.list_arguments())
        self.outputs = list(self.prop.list_outputs())
        self.aux_names = list(self.prop.list_auxiliary_states())
        self.num_arguments = len(self.arguments)
        self.cacheable = cacheable
        self.output_types: tuple[TensorType, ...] = ()
        self._operators: dict[tuple, CustomOp] = {}

    def __repr__(self) -> str:
        return f"Custom({self.op_type})"

    def infer(self, types: Sequence[TensorType]) -> tuple[TensorType, ...]:
        """Output types from the input types, by the prop's infer_shape and
        infer_type."""
        expected = self.num_arguments + len(self.aux_names)
        if len(types) != expected:
            raise MXNetError(
                f"Custom {self.op_type}: expects {expected} input(s) "
                f"{self.arguments + self.aux_names}, got {len(types)}"
            )
        shapes = _shape_list([t.shape for t in types[: self.num_arguments]])
        _, out_shapes, _ = self.prop.infer_shape(shapes)
        dtypes = [np.dtype(t.dtype).type for t in types[: self.num_arguments]]
        _, out_dtypes, _ = self.prop.infer_type(dtypes)
        self.output_types = tuple(
            TensorType(tuple(int(s) for s in shape), np.dtype(dtype))
            for shape, dtype in zip(out_shapes, out_dtypes)
        )
        return self.output_types

    def argument_shapes(self, shapes: Sequence[Any]) -> list:
        """The prop's argument shapes given what is known (None where unknown)."""
        try:
            in_shapes, _, _ = self.prop.infer_shape(_shape_list(shapes))
        except (IndexError, TypeError, ValueError):
            return list(shapes)
        return [tuple(s) if s else None for s in in_shapes]

    def _operator(self, arrays: Sequence[np.ndarray]) -> CustomOp:
        key = tuple((a.shape, a.dtype.str) for a in arrays)
        op = self._operators.get(key)
        if op is None:
            shapes = [list(a.shape) for a in arrays[: self.num_arguments]]
            dtypes = [a.dtype.type for a in arrays[: self.num_arguments]]
            op = self._operators[key] = self.prop.create_operator(cpu(), shapes, dtypes)
        return op

    def forward(self, arrays: Sequence[np.ndarray], is_train: bool) -> tuple[np.ndarray, ...]:
        """Run the operator's forward on fresh output arrays."""
        types = self.infer([TensorType(a.shape, a.dtype) for a in arrays])
        in_data = [NDArray(a) for a in arrays[: self.num_arguments]]
        aux = [NDArray(a) for a in arrays[self.num_arguments :]]
        out_data = [NDArray(np.zeros(t.shape, t.dtype)) for t in types]
        with _paused():
            self._operator(arrays).forward(
                bool(is_train), ["write"] * len(out_data), in_data, out_data, aux
            )
        return tuple(o._data for o in out_data)

    def backward(
        self,
        grads: Sequence[np.ndarray],
        inputs: Sequence[np.ndarray],
        outputs: Sequence[np.ndarray],
    ) -> tuple[np.ndarray, ...]:
        """Run the operator's backward; the arguments' gradients."""
        arguments = inputs[: self.num_arguments]
        in_grad = [NDArray(np.zeros(a.shape, a.dtype)) for a in arguments]
        with _paused():
            self._operator(inputs).backward(
                ["write"] * len(in_grad),
                [NDArray(g) for g in grads],
                [NDArray(a) for a in arguments],
                [NDArray(o) for o in outputs],
                in_grad,
                [NDArray(a) for a in inputs[self.num_arguments :]],
            )
        return tuple(g._data.astype(a.dtype, copy=False) for g, a in zip(in_grad, arguments))


def custom(
    *args: NDArray, op_type: str, name: str | None = None, out: Any = None, **kwargs: Any
) -> Any:
    """``mx.nd.Custom``: apply the operator registered as ``op_type`` to the
    arrays; other keywords go to its prop's constructor (as strings). Inputs may
    also be passed by argument name."""
    callback = CustomCallback(
        op_type, {k: v for k, v in kwargs.items() if not isinstance(v, NDArray)}, cacheable=False
    )
    named = {k: v for k, v in kwargs.items() if isinstance(v, NDArray)}
    names = callback.arguments + callback.aux_names
    inputs = list(args)
    for input_name in names[len(inputs) :]:
        if input_name not in named:
            raise MXNetError(f"Custom {op_type}: missing input {input_name!r}")
        inputs.append(named[input_name])
    result = invoke("Custom", inputs, dict(callback.kwargs, op_type=op_type, callback=callback))
    if out is not None:
        out[:] = result
        return out
    return result


def _callback_for_node(op_type: str, kwargs: dict[str, str]) -> CustomCallback:
    # a Custom node made without a callback: one read from JSON
    return CustomCallback(op_type, kwargs, cacheable=True)


CUSTOM_CALLBACK_FACTORY[:] = [_callback_for_node]

__all__ = [
    "CustomOp",
    "CustomOpProp",
    "register",
    "get_all_registered_operators",
    "get_operator_arguments",
    "OperatorArguments",
]
