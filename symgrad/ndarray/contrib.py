"""``mx.nd.contrib``: MXNet's contrib ops (registered as ``_contrib_<name>``) and
imperative control flow (``foreach``, ``while_loop``, ``cond``).

Control flow runs as Python loops over recorded ops, so ``autograd`` differentiates
whatever path was taken.

>>> import symgrad as mx
>>> out, state = mx.nd.contrib.foreach(lambda x, s: (x + s, x + s),
...                                    mx.nd.array([1, 2, 3]), mx.nd.array([0]))
>>> out.asnumpy().ravel(), state.asnumpy()
(array([1., 3., 6.], dtype=float32), array([6.], dtype=float32))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from symgrad_compiler import OPS

from .._namespace import NDArrayTypeError, _make_function
from .ndarray import NDArray, invoke, is_ndarray

PREFIX = "_contrib_"


def _finish(result: Any, out: NDArray | None = None, name: str | None = None) -> Any:
    if out is None:
        return result
    out[:] = result
    return out


for _name, _opdef in OPS.items():
    if _name.startswith(PREFIX):
        globals()[_name[len(PREFIX) :]] = _make_function(
            _name[len(PREFIX) :], _opdef, invoke, is_ndarray, _finish
        )
del _name, _opdef

_boolean_mask_op = globals()["boolean_mask"]


def boolean_mask(data: NDArray, index: NDArray, axis: int = 0, **kwargs: Any) -> NDArray:
    """The rows of ``data`` where ``index`` is nonzero (MXNet's ``boolean_mask``;
    an index of another dtype is read by its values).

    Gradient: the output's gradient rows back at the kept rows, zeros elsewhere.
    """
    for argument, value in (("data", data), ("index", index)):
        if not isinstance(value, NDArray):
            raise NDArrayTypeError(
                f"boolean_mask: argument {argument!r} must be an NDArray, got "
                f"{type(value).__name__}"
            )
    if index.dtype != data.dtype:
        index = invoke("Cast", (index,), {"dtype": np.dtype(data.dtype).name})
    return _boolean_mask_op(data, index, axis=axis, **kwargs)


def isinf(data: NDArray) -> NDArray:
    """1 where ``data`` is +inf or -inf, else 0 (data's dtype)."""
    return invoke("_equal_scalar", (invoke("abs", (data,), {}),), {"scalar": np.inf})


def isfinite(data: NDArray) -> NDArray:
    """1 where ``data`` is neither inf nor NaN, else 0 (data's dtype)."""
    finite = invoke("_not_equal_scalar", (invoke("abs", (data,), {}),), {"scalar": np.inf})
    return finite * invoke("broadcast_equal", (data, data), {})


def isnan(data: NDArray) -> NDArray:
    """1 where ``data`` is NaN, else 0 (data's dtype)."""
    return invoke("broadcast_not_equal", (data, data), {})


def rand_zipfian(
    true_classes: NDArray, num_sampled: int, range_max: int, ctx: Any = None
) -> tuple[NDArray, NDArray, NDArray]:
    """Draw ``num_sampled`` classes in [0, range_max) from the approximately
    Zipfian (log-uniform) distribution P(c) = log((c + 2) / (c + 1)) / log(range_max
    + 1), as for sampled softmax.

    Returns the sampled classes (int64), the expected count of each true class
    and of each sampled class in ``num_sampled`` draws (float64).
    """
    log_range = float(np.log(range_max + 1))
    draws = invoke(
        "_random_uniform",
        (),
        {"low": 0.0, "high": log_range, "shape": (num_sampled,), "dtype": "float64"},
    )
    # floor(exp(u) - 1) mod range_max, in float64 (exact for these integers)
    classes = invoke(
        "_mod_scalar",
        (invoke("floor", (invoke("expm1", (draws,), {}),), {}),),
        {"scalar": float(range_max)},
    )

    def expected(counts_of: NDArray) -> NDArray:
        ratio = (counts_of + 2.0) / (counts_of + 1.0)
        return invoke("log", (ratio,), {}) * (num_sampled / log_range)

    true = invoke("Cast", (true_classes,), {"dtype": "float64"})
    return (invoke("Cast", (classes,), {"dtype": "int64"}), expected(true), expected(classes))


# ---------------------------------------------------------------------------
# control flow
# ---------------------------------------------------------------------------


def _as_list(value: Any) -> tuple[list, bool]:
    """``value`` as a list, and whether it was one (a single array is not)."""
    if isinstance(value, (list, tuple)):
        return list(value), True
    return ([] if value is None else [value]), False


def _stack(steps: list[list[NDArray]]) -> list[NDArray]:
    return [invoke("stack", tuple(parts), {"axis": 0}) for parts in zip(*steps)]


def foreach(body: Callable, data: Any, init_states: Any) -> tuple[Any, Any]:
    """Run ``body(data[i], states) -> (outputs, new_states)`` for each i along
    axis 0 of ``data``; the outputs of all steps are stacked on a new axis 0.

    ``data`` and ``init_states`` are an NDArray or a list of them; the results
    have the structure ``body`` returns and ``init_states`` has.
    """
    arrays, data_is_list = _as_list(data)
    states, states_are_list = _as_list(init_states)
    steps: list[list[NDArray]] = []
    outputs_are_list = False
    for i in range(arrays[0].shape[0]):
        items = [a[i] for a in arrays]
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


def _truth(value: Any) -> bool:
    if isinstance(value, NDArray):
        if value.size != 1:
            raise ValueError(f"a loop condition must be a scalar, got shape {value.shape}")
        return bool(value.asnumpy().ravel()[0])
    return bool(value)


def while_loop(
    cond: Callable, func: Callable, loop_vars: Any, max_iterations: int | None = None
) -> tuple[Any, Any]:
    """Run ``func(*loop_vars) -> (step_output, new_loop_vars)`` while
    ``cond(*loop_vars)`` is true, at most ``max_iterations`` times.

    Returns ``(outputs, loop_vars)``: each output stacked over the steps taken and
    padded to ``max_iterations`` rows, with zeros (MXNet leaves those rows
    uninitialised).
    """
    if max_iterations is None:
        raise ValueError("max_iterations should be specified")
    variables, vars_are_list = _as_list(loop_vars)
    steps: list[list[NDArray]] = []
    outputs_are_list = False
    while len(steps) < max_iterations and _truth(cond(*variables)):
        result = func(*variables)
        if not isinstance(result, (list, tuple)) or len(result) != 2:
            raise ValueError("func must return (step_output, new_loop_vars)")
        outs, outputs_are_list = _as_list(result[0])
        new_vars, _ = _as_list(result[1])
        if len(new_vars) != len(variables):
            raise ValueError(
                f"func returned {len(new_vars)} loop variables, expected {len(variables)}"
            )
        steps.append(outs)
        variables = new_vars
    outputs = _stack(steps) if steps and steps[0] else []
    padded = []
    for out in outputs:
        missing = max_iterations - out.shape[0]
        if missing:
            zeros = invoke(
                "_zeros",
                (),
                {"shape": (missing,) + out.shape[1:], "dtype": np.dtype(out.dtype).name},
            )
            out = invoke("Concat", (out, zeros), {"dim": 0})
        padded.append(out)
    result_outputs = padded if outputs_are_list or not padded else padded[0]
    return result_outputs, variables if vars_are_list else variables[0]


def cond(pred: Any, then_func: Callable, else_func: Callable) -> Any:
    """``then_func()`` if the scalar ``pred`` is nonzero, else ``else_func()``."""
    return then_func() if _truth(pred) else else_func()


__all__ = sorted(
    {
        "foreach",
        "while_loop",
        "cond",
        "isinf",
        "isfinite",
        "isnan",
        "rand_zipfian",
        *(name[len(PREFIX) :] for name in OPS if name.startswith(PREFIX)),
    }
)
