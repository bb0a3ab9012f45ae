"""``mx.sym.contrib``: MXNet's contrib ops for symbols, symbolic control flow,
and ``mx.sym.Custom``.

Control flow is traced into the graph, so the compiler differentiates it like
any other ops:

* ``foreach`` is unrolled over the length of axis 0 of its data, which must be
  known when it is called (a variable declared with ``shape=``);
* ``while_loop`` is unrolled ``max_iterations`` times: each step computes the
  condition and the body, and a running product of the conditions keeps the loop
  variables once the loop has ended and zeroes the outputs of the steps not
  taken, so the outputs have ``max_iterations`` rows as in MXNet;
* ``cond`` computes both branches and blends them by the predicate.

Steps not taken are still computed: a body that makes inf or NaN there would
spread them into the blend (``x * 0``), which MXNet's graph executor avoids.

>>> import symgrad as mx
>>> x = mx.sym.var("x", shape=(3, 2))
>>> out, state = mx.sym.contrib.foreach(lambda d, s: (d * 2, s + d), x, mx.sym.var("s"))
>>> out.eval(x=mx.nd.ones((3, 2)))[0].shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compiler import OPS, get_op
from compiler.ir import _fresh_name

from . import symbol_types
from .base import MXNetError
from .name import scoped_name
from .operator import CustomCallback
from .symbol import Symbol, _make_symbol, _symbol_function, var

PREFIX = "_contrib_"

for _name, _opdef in OPS.items():
    if _name.startswith(PREFIX):
        globals()[_name[len(PREFIX):]] = _symbol_function(_name[len(PREFIX):], _opdef)
del _name, _opdef


def _apply(op: str, *inputs: Symbol, **attrs: Any) -> Symbol:
    return _make_symbol(get_op(op), [s._single_entry() for s in inputs], attrs)


def _as_list(value: Any) -> tuple[list, bool]:
    if isinstance(value, (list, tuple)):
        return list(value), True
    return ([] if value is None else [value]), False


def _stack(steps: list[list[Symbol]]) -> list[Symbol]:
    return [_apply("stack", *parts, axis=0) for parts in zip(*steps)]


def _length(symbol: Symbol) -> int:
    shape = symbol._single_entry().type.shape
    if shape is None:
        raise MXNetError("contrib.foreach on symbols unrolls the loop over axis 0 of its "
                         "data, whose length must be known: declare the data with "
                         "mx.sym.var(name, shape=...)")
    return shape[0]


def foreach(body: Callable, data: Any, init_states: Any, name: str = "foreach"
            ) -> tuple[Any, Any]:
    """Symbolic ``foreach``: ``body(data[i], states) -> (outputs, states)`` for
    each i along axis 0, unrolled; the outputs stacked on axis 0."""
    arrays, data_is_list = _as_list(data)
    states, states_are_list = _as_list(init_states)
    steps: list[list[Symbol]] = []
    outputs_are_list = False
    for i in range(_length(arrays[0])):
        items = [_apply("squeeze", _apply("slice_axis", a, axis=0, begin=i, end=i + 1),
                        axis=(0,)) for a in arrays]
        out, new_states = body(items if data_is_list else items[0],
                               states if states_are_list else states[0])
        outs, outputs_are_list = _as_list(out)
        steps.append(outs)
        states, _ = _as_list(new_states)
    stacked = _stack(steps) if steps else []
    return (stacked if outputs_are_list else (stacked[0] if stacked else []),
            states if states_are_list else states[0])


def _blend(mask: Symbol, new: Symbol, old: Symbol) -> Symbol:
    """new where mask (a (1,)-shaped 0/1) is 1, old where it is 0."""
    return _apply("broadcast_add", _apply("broadcast_mul", new, mask),
                  _apply("broadcast_mul", old, _apply("_rminus_scalar", mask, scalar=1.0)))


def while_loop(cond: Callable, func: Callable, loop_vars: Any,
               max_iterations: int | None = None, name: str = "while_loop"
               ) -> tuple[Any, Any]:
    """Symbolic ``while_loop``, unrolled ``max_iterations`` times (see the module
    docstring); outputs have ``max_iterations`` rows, zeros after the last step."""
    if max_iterations is None:
        raise ValueError("max_iterations should be specified")
    variables, vars_are_list = _as_list(loop_vars)
    steps: list[list[Symbol]] = []
    outputs_are_list = False
    active: Symbol | None = None
    for _ in range(int(max_iterations)):
        truth = _apply("_not_equal_scalar", cond(*variables), scalar=0.0)
        active = truth if active is None else _apply("broadcast_mul", active, truth)
        result = func(*variables)
        if not isinstance(result, (list, tuple)) or len(result) != 2:
            raise ValueError("func must return (step_output, new_loop_vars)")
        outs, outputs_are_list = _as_list(result[0])
        new_vars, _ = _as_list(result[1])
        if len(new_vars) != len(variables):
            raise ValueError(f"func returned {len(new_vars)} loop variables, expected "
                             f"{len(variables)}")
        steps.append([_apply("broadcast_mul", out, active) for out in outs])
        variables = [_blend(active, new, old) for new, old in zip(new_vars, variables)]
    outputs = _stack(steps) if steps and steps[0] else []
    result_outputs = outputs if outputs_are_list or not outputs else outputs[0]
    return result_outputs, variables if vars_are_list else variables[0]


def cond(pred: Symbol, then_func: Callable, else_func: Callable, name: str = "cond") -> Any:
    """Symbolic ``cond``: both branches computed, blended by the scalar ``pred``."""
    truth = _apply("_not_equal_scalar", pred, scalar=0.0)
    then_out, is_list = _as_list(then_func())
    else_out, _ = _as_list(else_func())
    if len(then_out) != len(else_out):
        raise ValueError("then_func and else_func must return as many outputs")
    blended = [_blend(truth, a, b) for a, b in zip(then_out, else_out)]
    return blended if is_list else blended[0]


def isinf(data: Symbol) -> Symbol:
    """1 where ``data`` is +inf or -inf, else 0."""
    return _apply("_equal_scalar", _apply("abs", data), scalar=float("inf"))


def isfinite(data: Symbol) -> Symbol:
    """1 where ``data`` is neither inf nor NaN, else 0."""
    finite = _apply("_not_equal_scalar", _apply("abs", data), scalar=float("inf"))
    return _apply("broadcast_mul", finite, _apply("broadcast_equal", data, data))


def isnan(data: Symbol) -> Symbol:
    """1 where ``data`` is NaN, else 0."""
    return _apply("broadcast_not_equal", data, data)


# ---------------------------------------------------------------------------
# mx.sym.Custom
# ---------------------------------------------------------------------------

def Custom(*args: Symbol, op_type: str, name: str | None = None, attr: dict | None = None,
           **kwargs: Any) -> Symbol:  # noqa: N802  (MXNet's name)
    """``mx.sym.Custom``: the operator registered as ``op_type``; inputs not
    given become variables ``<name>_<argument>``, and other keywords go to the
    prop's constructor. Gradients go through the operator's own backward."""
    callback = CustomCallback(op_type, {k: v for k, v in kwargs.items()
                                        if not isinstance(v, Symbol)}, cacheable=True)
    named = {k: v for k, v in kwargs.items() if isinstance(v, Symbol)}
    name = scoped_name(name, "custom") or _fresh_name("custom")
    inputs = list(args)
    for input_name in (callback.arguments + callback.aux_names)[len(inputs):]:
        inputs.append(named.get(input_name) or var(f"{name}_{input_name}"))
    return _make_symbol(get_op("Custom"), [s._single_entry() for s in inputs],
                        {"op_type": op_type, "callback": callback}, name)


def _custom_outputs(attrs: dict, num_inputs: int) -> int:
    return len(attrs["callback"].outputs)


def _custom_parameter_shapes(shapes: list, *, callback: CustomCallback, **_: Any) -> list:
    known = callback.argument_shapes(shapes[:callback.num_arguments])
    return known + list(shapes[callback.num_arguments:])


# How many outputs a Custom node has before shapes are known, and the argument
# shapes its prop infers (a weight's from the data's), for symbol_types.
get_op("Custom").num_outputs = _custom_outputs  # type: ignore[attr-defined]
symbol_types._PARAMETER_SHAPES["Custom"] = _custom_parameter_shapes
