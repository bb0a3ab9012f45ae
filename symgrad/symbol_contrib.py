"""``mx.sym.contrib``: MXNet's contrib ops for symbols, symbolic control flow,
and ``mx.sym.Custom``.

Control flow is traced into the graph, so the compiler differentiates it like
any other ops:

* ``foreach`` is unrolled over the length of axis 0 of its data when that is
  known at the call (a variable declared with ``shape=``); otherwise the body
  is traced once into a subgraph, the callback of a ``_foreach`` node, which runs
  it step by step (forward, and backward in reverse) once shapes are known;
* ``while_loop`` traces ``cond`` and ``func`` once into a ``_while_loop`` node,
  which runs func while cond holds, at most ``max_iterations`` times, and its
  gradient over the steps taken in reverse; the outputs have ``max_iterations``
  rows as in MXNet (zeros after the last step);
* ``cond`` traces both branches into a ``_cond`` node that runs only the one
  the predicate picks, forward and backward.

>>> import symgrad as mx
>>> x = mx.sym.var("x", shape=(3, 2))
>>> out, state = mx.sym.contrib.foreach(lambda d, s: (d * 2, s + d), x, mx.sym.var("s"))
>>> out.eval(x=mx.nd.ones((3, 2)))[0].shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from symgrad_compiler import OPS, Entry, TensorType, get_op, topo_order
from symgrad_compiler.ir import _fresh_name

from . import symbol_types
from .base import MXNetError
from .name import scoped_name
from .operator import CustomCallback
from .symbol import Symbol, _make_symbol, _symbol_function, var

PREFIX = "_contrib_"

for _name, _opdef in OPS.items():
    if _name.startswith(PREFIX):
        globals()[_name[len(PREFIX) :]] = _symbol_function(_name[len(PREFIX) :], _opdef)
del _name, _opdef


def _apply(op: str, *inputs: Symbol, **attrs: Any) -> Symbol:
    return _make_symbol(get_op(op), [s._single_entry() for s in inputs], attrs)


def _as_list(value: Any) -> tuple[list, bool]:
    if isinstance(value, (list, tuple)):
        return list(value), True
    return ([] if value is None else [value]), False


def _stack(steps: list[list[Symbol]]) -> list[Symbol]:
    return [_apply("stack", *parts, axis=0) for parts in zip(*steps)]


def _length(symbol: Symbol) -> int | None:
    shape = symbol._single_entry().type.shape
    return None if shape is None else shape[0]


def foreach(body: Callable, data: Any, init_states: Any, name: str = "foreach") -> tuple[Any, Any]:
    """Symbolic ``foreach``: ``body(data[i], states) -> (outputs, states)`` for
    each i along axis 0; the outputs stacked on axis 0.

    With the data's length known the loop is unrolled; otherwise (a variable
    without a shape, as a HybridBlock traces) the body becomes a subgraph that
    runs once per step when the length is known (see :class:`LoopBody`).
    """
    arrays, data_is_list = _as_list(data)
    states, states_are_list = _as_list(init_states)
    if _length(arrays[0]) is None:
        return _foreach_subgraph(body, arrays, data_is_list, states, states_are_list, name)
    steps: list[list[Symbol]] = []
    outputs_are_list = False
    for i in range(_length(arrays[0])):
        items = [
            _apply("squeeze", _apply("slice_axis", a, axis=0, begin=i, end=i + 1), axis=(0,))
            for a in arrays
        ]
        out, new_states = body(
            items if data_is_list else items[0], states if states_are_list else states[0]
        )
        outs, outputs_are_list = _as_list(out)
        steps.append(outs)
        states, _ = _as_list(new_states)
    stacked = _stack(steps) if steps else []
    return (
        stacked if outputs_are_list else (stacked[0] if stacked else []),
        states if states_are_list else states[0],
    )


class LoopBody:
    """The callback of a ``_foreach`` node (see ``compiler/ops/contrib.py``): the
    traced body as a Symbol over placeholder variables, run step by step by a
    compiled replay (``mx.compile``), forward and, for gradients, backward.

    Inputs of the node: ``num_data`` data arrays, ``num_states`` states, then the
    body's free variables (its other inputs: parameters, outer arrays).
    """

    def __init__(
        self,
        body: Symbol,
        data_names: list[str],
        state_names: list[str],
        free_names: list[str],
        num_step_outputs: int,
    ) -> None:
        self.body = body
        self.data_names, self.state_names, self.free_names = data_names, state_names, free_names
        self.num_step_outputs = num_step_outputs
        self.num_outputs = num_step_outputs + len(state_names)
        used = set(body.list_inputs())
        self._names = [n for n in data_names + state_names + free_names if n in used]
        self._forward: Any = None
        self._backward: Any = None

    def __repr__(self) -> str:
        return f"LoopBody({self.num_outputs} outputs)"

    def _feeds(self, arrays: Any, step: int) -> dict[str, Any]:
        count = len(self.data_names)
        states_end = count + len(self.state_names)
        given = dict(zip(self.data_names, (a[step] for a in arrays[:count])))
        given.update(zip(self.state_names, arrays[count:states_end]))
        given.update(zip(self.free_names, arrays[states_end:]))
        return {k: v for k, v in given.items() if k in self._names}

    def infer(self, types: Any) -> list:
        """The node's output types from its input types."""
        count = len(self.data_names)
        names = self.data_names + self.state_names + self.free_names
        shapes = {
            n: (t.shape[1:] if i < count else t.shape) for i, (n, t) in enumerate(zip(names, types))
        }
        dtypes = {n: t.dtype for n, t in zip(names, types)}
        typed = symbol_types.materialize(self.body.entries, shapes, dtypes)
        length = types[0].shape[0]
        out = []
        for k, entry in enumerate(typed.entries(self.body.entries)):
            shape = entry.shape if k >= self.num_step_outputs else (length,) + entry.shape
            out.append(TensorType(shape, entry.dtype))
        return out

    def _run(self, arrays: Any, keep: bool):
        from .executor import CompiledSymbol  # the executor imports this module's parent

        if self._forward is None:
            self._forward = CompiledSymbol(self.body, wrt=[])
        count, states_end = len(self.data_names), len(self.data_names) + len(self.state_names)
        states = list(arrays[count:states_end])
        steps, history = [], []
        for step in range(arrays[0].shape[0]):
            history.append(states)
            current = list(arrays[:count]) + states + list(arrays[states_end:])
            value, _ = self._forward(**self._feeds(current, step))
            values = [np.asarray(v) for v in (value if isinstance(value, list) else [value])]
            steps.append(values[: self.num_step_outputs])
            states = values[self.num_step_outputs :]
        return steps, states, (history if keep else None)

    def forward(self, arrays: Any) -> tuple:
        """Run the loop: the stacked step outputs, then the final states."""
        steps, states, _ = self._run(arrays, keep=False)
        if not steps:
            raise MXNetError("contrib.foreach over data of length 0")
        stacked = [np.stack(parts) for parts in zip(*steps)]
        return tuple(stacked + [np.asarray(s) for s in states])

    def backward(self, grads: Any, arrays: Any) -> tuple:
        """The gradients of every input, by the body's gradient in reverse."""
        from .executor import CompiledSymbol

        wrt = [n for n in self.data_names + self.state_names + self.free_names if n in self._names]
        if self._backward is None:
            self._backward = CompiledSymbol(self.body, wrt=wrt)
        _, _, history = self._run(arrays, keep=True)
        count, states_end = len(self.data_names), len(self.data_names) + len(self.state_names)
        data_grads = [np.zeros_like(a) for a in arrays[:count]]
        free_grads = [np.zeros_like(a) for a in arrays[states_end:]]
        state_grads = [np.asarray(g) for g in grads[self.num_step_outputs :]]
        for step in reversed(range(len(history))):
            current = list(arrays[:count]) + history[step] + list(arrays[states_end:])
            heads = [np.asarray(g[step]) for g in grads[: self.num_step_outputs]] + state_grads
            _, got = self._backward(heads, **self._feeds(current, step))
            for k, name in enumerate(self.data_names):
                if name in got:
                    data_grads[k][step] += np.asarray(got[name])
            state_grads = [
                np.asarray(got[n]) if n in got else np.zeros_like(s)
                for n, s in zip(self.state_names, history[step])
            ]
            for k, name in enumerate(self.free_names):
                if name in got:
                    free_grads[k] += np.asarray(got[name])
        return tuple(data_grads + state_grads + free_grads)


def _foreach_subgraph(
    body: Callable, arrays: list, data_is_list: bool, states: list, states_are_list: bool, name: str
) -> tuple[Any, Any]:
    """``foreach`` as one ``_foreach`` node over the traced body."""
    prefix = _fresh_name(name)
    data_vars = [var(f"{prefix}_data{k}") for k in range(len(arrays))]
    state_vars = [var(f"{prefix}_state{k}") for k in range(len(states))]
    out, new_states = body(
        data_vars if data_is_list else data_vars[0],
        state_vars if states_are_list else state_vars[0],
    )
    outs, outputs_are_list = _as_list(out)
    new_state_list, _ = _as_list(new_states)
    if len(new_state_list) != len(states):
        raise ValueError(f"body returned {len(new_state_list)} states, expected {len(states)}")
    graph = Symbol([s._single_entry() for s in outs + new_state_list])
    own = {v._single_entry().node for v in data_vars + state_vars}
    free = [node for node in topo_order(graph.entries) if node.is_variable and node not in own]
    callback = LoopBody(
        graph,
        [v.name for v in data_vars],
        [v.name for v in state_vars],
        [node.name for node in free],
        len(outs),
    )
    inputs = [s._single_entry() for s in arrays + states] + [Entry(node, 0) for node in free]
    node = _make_symbol(get_op("_foreach"), inputs, {"callback": callback}, prefix)
    results = [node[k] for k in range(len(node))]
    stacked, final = results[: len(outs)], results[len(outs) :]
    return (stacked if outputs_are_list else stacked[0], final if states_are_list else final[0])


class WhileBody:
    """The callback of a ``_while_loop`` node (see ``compiler/ops/contrib.py``):
    the traced ``cond`` and ``func`` as Symbols over placeholder loop variables,
    run step by step by compiled replays, forward and, for gradients, backward.

    Inputs of the node: the loop variables, then the free variables of cond and
    func. Outputs: each step output stacked over ``max_iterations`` rows (zeros
    after the last step taken), then the final loop variables.
    """

    def __init__(
        self,
        condition: Symbol,
        body: Symbol,
        var_names: list[str],
        free_names: list[str],
        num_step_outputs: int,
        max_iterations: int,
    ) -> None:
        self.condition, self.body = condition, body
        self.var_names, self.free_names = var_names, free_names
        self.num_step_outputs = num_step_outputs
        self.num_outputs = num_step_outputs + len(var_names)
        self.max_iterations = max_iterations
        self._cond_inputs = set(condition.list_inputs())
        self._body_inputs = set(body.list_inputs())
        self._programs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"WhileBody({self.num_outputs} outputs, at most {self.max_iterations} steps)"

    def _program(self, which: str) -> Any:
        from .executor import CompiledSymbol  # the executor imports this module's parent

        program = self._programs.get(which)
        if program is None:
            if which == "cond":
                program = CompiledSymbol(self.condition, wrt=[])
            elif which == "body":
                program = CompiledSymbol(self.body, wrt=[])
            else:
                wrt = [n for n in self.var_names + self.free_names if n in self._body_inputs]
                program = CompiledSymbol(self.body, wrt=wrt)
            self._programs[which] = program
        return program

    def _feeds(self, variables: Any, free: Any, used: set[str]) -> dict[str, Any]:
        given = dict(zip(self.var_names, variables))
        given.update(zip(self.free_names, free))
        return {k: v for k, v in given.items() if k in used}

    def infer(self, types: Any) -> list:
        """The node's output types from its input types."""
        names = self.var_names + self.free_names
        typed = symbol_types.materialize(
            self.body.entries,
            {n: t.shape for n, t in zip(names, types)},
            {n: t.dtype for n, t in zip(names, types)},
        )
        out = []
        for k, entry in enumerate(typed.entries(self.body.entries)):
            shape = (
                entry.shape if k >= self.num_step_outputs else (self.max_iterations,) + entry.shape
            )
            out.append(TensorType(shape, entry.dtype))
        return out

    def _run(self, arrays: Any) -> tuple[list, list, list]:
        count = len(self.var_names)
        variables, free = list(arrays[:count]), list(arrays[count:])
        steps, history = [], []
        while len(steps) < self.max_iterations:
            truth, _ = self._program("cond")(**self._feeds(variables, free, self._cond_inputs))
            if not np.asarray(truth).ravel()[0]:
                break
            history.append(variables)
            value, _ = self._program("body")(**self._feeds(variables, free, self._body_inputs))
            values = [np.asarray(v) for v in (value if isinstance(value, list) else [value])]
            steps.append(values[: self.num_step_outputs])
            variables = values[self.num_step_outputs :]
        return steps, variables, history

    def forward(self, arrays: Any) -> tuple:
        """Run the loop: the padded step outputs, then the final loop variables."""
        steps, variables, _ = self._run(arrays)
        types = self.infer([TensorType(a.shape, a.dtype) for a in arrays])
        outputs = []
        for k, out_type in enumerate(types[: self.num_step_outputs]):
            stacked = np.zeros(out_type.shape, out_type.dtype)
            for step, values in enumerate(steps):
                stacked[step] = values[k]
            outputs.append(stacked)
        return tuple(outputs + [np.asarray(v) for v in variables])

    def backward(self, grads: Any, arrays: Any) -> tuple:
        """The gradients of every input, by func's gradient over the steps taken,
        in reverse."""
        count = len(self.var_names)
        free = list(arrays[count:])
        _, _, history = self._run(arrays)
        var_grads = [np.asarray(g) for g in grads[self.num_step_outputs :]]
        free_grads = [np.zeros_like(a) for a in free]
        for step in reversed(range(len(history))):
            heads = [np.asarray(g[step]) for g in grads[: self.num_step_outputs]] + var_grads
            _, got = self._program("gradient")(
                heads, **self._feeds(history[step], free, self._body_inputs)
            )
            var_grads = [
                np.asarray(got[n]) if n in got else np.zeros_like(v)
                for n, v in zip(self.var_names, history[step])
            ]
            for k, name in enumerate(self.free_names):
                if name in got:
                    free_grads[k] += np.asarray(got[name])
        return tuple(var_grads + free_grads)


def while_loop(
    cond: Callable,
    func: Callable,
    loop_vars: Any,
    max_iterations: int | None = None,
    name: str = "while_loop",
) -> tuple[Any, Any]:
    """Symbolic ``while_loop``: ``cond`` and ``func`` traced once into one
    ``_while_loop`` node that runs func while cond holds, at most
    ``max_iterations`` times (see :class:`WhileBody`); outputs have
    ``max_iterations`` rows, zeros after the last step taken."""
    if max_iterations is None:
        raise ValueError("max_iterations should be specified")
    variables, vars_are_list = _as_list(loop_vars)
    prefix = _fresh_name(name)
    placeholders = [var(f"{prefix}_var{k}") for k in range(len(variables))]
    condition = cond(*placeholders)
    result = func(*placeholders)
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise ValueError("func must return (step_output, new_loop_vars)")
    outs, outputs_are_list = _as_list(result[0])
    new_vars, _ = _as_list(result[1])
    if len(new_vars) != len(variables):
        raise ValueError(f"func returned {len(new_vars)} loop variables, expected {len(variables)}")
    body = Symbol([s._single_entry() for s in outs + new_vars])
    own = {p._single_entry().node for p in placeholders}
    free: list = []
    for node in topo_order(condition.entries + body.entries):
        if node.is_variable and node not in own and node not in free:
            free.append(node)
    callback = WhileBody(
        condition,
        body,
        [p.name for p in placeholders],
        [node.name for node in free],
        len(outs),
        int(max_iterations),
    )
    inputs = [s._single_entry() for s in variables] + [Entry(node, 0) for node in free]
    node = _make_symbol(get_op("_while_loop"), inputs, {"callback": callback}, prefix)
    results = [node[k] for k in range(len(node))]
    stacked, final = results[: len(outs)], results[len(outs) :]
    result_outputs = stacked if outputs_are_list or not stacked else stacked[0]
    return result_outputs, final if vars_are_list else final[0]


class CondBody:
    """The callback of a ``_cond`` node (see ``compiler/ops/contrib.py``): the
    traced branches as Symbols; the predicate (the node's input 0) picks the one
    that runs, forward and backward. The other inputs are the branches' free
    variables."""

    def __init__(self, then_graph: Symbol, else_graph: Symbol, free_names: list[str]) -> None:
        self.branches = (else_graph, then_graph)
        self.free_names = free_names
        self.num_outputs = len(then_graph)
        self._inputs = [set(graph.list_inputs()) for graph in self.branches]
        self._programs: dict[tuple[int, bool], Any] = {}

    def __repr__(self) -> str:
        return f"CondBody({self.num_outputs} outputs)"

    def _program(self, branch: int, gradient: bool) -> Any:
        from .executor import CompiledSymbol  # the executor imports this module's parent

        program = self._programs.get((branch, gradient))
        if program is None:
            wrt = [n for n in self.free_names if n in self._inputs[branch]] if gradient else []
            program = self._programs[branch, gradient] = CompiledSymbol(
                self.branches[branch], wrt=wrt
            )
        return program

    def _feeds(self, branch: int, arrays: Any) -> dict[str, Any]:
        return {n: a for n, a in zip(self.free_names, arrays[1:]) if n in self._inputs[branch]}

    def infer(self, types: Any) -> list:
        """The node's output types (the then branch's; the else branch must agree)."""
        names = self.free_names
        shapes = {n: t.shape for n, t in zip(names, types[1:])}
        dtypes = {n: t.dtype for n, t in zip(names, types[1:])}
        found = []
        for graph in self.branches:
            typed = symbol_types.materialize(graph.entries, shapes, dtypes)
            found.append([e.type for e in typed.entries(graph.entries)])
        if found[0] != found[1]:
            raise MXNetError(
                f"cond: the branches give different types: then {found[1]}, else {found[0]}"
            )
        return found[1]

    def _branch(self, arrays: Any) -> int:
        return int(bool(np.asarray(arrays[0]).ravel()[0]))

    def forward(self, arrays: Any) -> tuple:
        """Run the branch the predicate picks."""
        branch = self._branch(arrays)
        value, _ = self._program(branch, False)(**self._feeds(branch, arrays))
        return tuple(np.asarray(v) for v in (value if isinstance(value, list) else [value]))

    def backward(self, grads: Any, arrays: Any) -> tuple:
        """The gradients of the inputs through the branch taken (zero for the
        predicate and for variables only the other branch reads)."""
        branch = self._branch(arrays)
        _, got = self._program(branch, True)(
            [np.asarray(g) for g in grads], **self._feeds(branch, arrays)
        )
        free = [
            np.asarray(got[n]) if n in got else np.zeros_like(a)
            for n, a in zip(self.free_names, arrays[1:])
        ]
        return (np.zeros_like(arrays[0]), *free)


def cond(pred: Symbol, then_func: Callable, else_func: Callable, name: str = "cond") -> Any:
    """Symbolic ``cond``: both branches traced into one ``_cond`` node that runs
    ``then_func``'s graph if the scalar ``pred`` is nonzero, else ``else_func``'s
    (see :class:`CondBody`)."""
    then_out, is_list = _as_list(then_func())
    else_out, _ = _as_list(else_func())
    if len(then_out) != len(else_out):
        raise ValueError("then_func and else_func must return as many outputs")
    then_graph = Symbol([s._single_entry() for s in then_out])
    else_graph = Symbol([s._single_entry() for s in else_out])
    free: list = []
    for node in topo_order(then_graph.entries + else_graph.entries):
        if node.is_variable and node not in free:
            free.append(node)
    callback = CondBody(then_graph, else_graph, [node.name for node in free])
    inputs = [pred._single_entry()] + [Entry(node, 0) for node in free]
    node = _make_symbol(get_op("_cond"), inputs, {"callback": callback}, _fresh_name(name))
    results = [node[k] for k in range(len(node))]
    return results if is_list else results[0]


def rand_zipfian(
    true_classes: Symbol, num_sampled: int, range_max: int
) -> tuple[Symbol, Symbol, Symbol]:
    """Symbolic ``rand_zipfian`` (see ``mx.nd.contrib.rand_zipfian``): sampled
    classes, expected counts of the true classes and of the sampled ones."""
    log_range = float(np.log(range_max + 1))
    draws = _make_symbol(
        get_op("_random_uniform"),
        [],
        {"low": 0.0, "high": log_range, "shape": (num_sampled,), "dtype": "float64"},
    )
    classes = _apply(
        "_mod_scalar", _apply("floor", _apply("expm1", draws)), scalar=float(range_max)
    )

    def expected(counts_of: Symbol) -> Symbol:
        ratio = _apply(
            "broadcast_div",
            _apply("_plus_scalar", counts_of, scalar=2.0),
            _apply("_plus_scalar", counts_of, scalar=1.0),
        )
        return _apply("_mul_scalar", _apply("log", ratio), scalar=num_sampled / log_range)

    true = _apply("Cast", true_classes, dtype="float64")
    return _apply("Cast", classes, dtype="int64"), expected(true), expected(classes)


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


def Custom(
    *args: Symbol, op_type: str, name: str | None = None, attr: dict | None = None, **kwargs: Any
) -> Symbol:  # noqa: N802  (MXNet's name)
    """``mx.sym.Custom``: the operator registered as ``op_type``; inputs not
    given become variables ``<name>_<argument>``, and other keywords go to the
    prop's constructor. Gradients go through the operator's own backward."""
    callback = CustomCallback(
        op_type, {k: v for k, v in kwargs.items() if not isinstance(v, Symbol)}, cacheable=True
    )
    named = {k: v for k, v in kwargs.items() if isinstance(v, Symbol)}
    name = scoped_name(name, "custom") or _fresh_name("custom")
    inputs = list(args)
    for input_name in (callback.arguments + callback.aux_names)[len(inputs) :]:
        inputs.append(named.get(input_name) or var(f"{name}_{input_name}"))
    return _make_symbol(
        get_op("Custom"),
        [s._single_entry() for s in inputs],
        dict(callback.kwargs, op_type=op_type, callback=callback),
        name,
    )


def _custom_outputs(attrs: dict, num_inputs: int) -> int:
    return len(attrs["callback"].outputs)


def _custom_parameter_shapes(shapes: list, *, callback: CustomCallback, **_: Any) -> list:
    known = callback.argument_shapes(shapes[: callback.num_arguments])
    return known + list(shapes[callback.num_arguments :])


# How many outputs a Custom node has before shapes are known, and the argument
# shapes its prop infers (a weight's from the data's), for symbol_types.
get_op("Custom").num_outputs = _custom_outputs  # type: ignore[attr-defined]
for _loop in ("_foreach", "_while_loop", "_cond"):
    get_op(_loop).num_outputs = (  # type: ignore[attr-defined]
        lambda attrs, num_inputs: attrs["callback"].num_outputs
    )
symbol_types._PARAMETER_SHAPES["Custom"] = _custom_parameter_shapes
symbol_types._PARAMETER_SHAPES["_contrib_SyncBatchNorm"] = (  # BatchNorm's, over axis 1
    lambda shapes, **attrs: symbol_types._PARAMETER_SHAPES["BatchNorm"](shapes, axis=1)
)
symbol_types._PARAMETER_SHAPES["_contrib_BatchNormWithReLU"] = symbol_types._PARAMETER_SHAPES[
    "BatchNorm"
]

__all__ = sorted(
    {
        "foreach",
        "while_loop",
        "cond",
        "isinf",
        "isfinite",
        "isnan",
        "Custom",
        "rand_zipfian",
        *(name[len(PREFIX) :] for name in OPS if name.startswith(PREFIX)),
    }
)
