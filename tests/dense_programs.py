"""A Dense layer's program for the product tests: ``FullyConnected`` (or a
``dot`` with the weight transposed), a loss of ``sum(tanh(y) * y)`` and its
gradients, compiled for the numba backend, with the interpreter's values."""

from __future__ import annotations

import numpy as np

import symgrad_compiler as compiler
from symgrad_compiler import settings
from symgrad_compiler.registry import variable


def dense_program(x_value, w_value, b_value=None, *, op="FullyConnected", **attrs):
    """``(graph, values)``: loss, gradients w.r.t. every input, and ``y``, of
    ``y = x @ w^T (+ b)`` as ``op`` writes it (``FullyConnected`` with ``attrs``,
    or ``dot`` without a bias)."""
    arrays = [x_value, w_value] + ([] if b_value is None else [b_value])
    inputs = [variable(a.shape, a.dtype, name=f"in{i}") for i, a in enumerate(arrays)]
    entries = [compiler.Entry(v, 0) for v in inputs]
    operands = [compiler.Expr(e) for e in entries]
    if op == "dot":
        y = compiler.call("dot", *operands, transpose_b=True)
    else:
        hidden = w_value.shape[0]
        y = compiler.call(op, *operands, num_hidden=hidden, no_bias=b_value is None, **attrs)
    loss = compiler.call("sum", compiler.call("tanh", y) * y)
    one = compiler.make_node("ones_like", [loss.entry], {})
    grads = compiler.differentiate([loss.entry], [compiler.Entry(one, 0)], entries)
    return compiler.ProgramGraph(inputs, [loss.entry, *grads, y.entry]), arrays


def compiled_and_expected(graph, values):
    """The graph compiled for numba (synchronously, called twice so that its
    whole-program entry exists) and the interpreter's outputs on ``values``."""
    with np.errstate(all="ignore"):
        expected = compiler.compile_graph(graph, "interpreter")(values)
    with settings.override(compile="sync"):
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(2):
            executable(values)
    assert executable._entry is not None
    return executable, expected


def assert_outputs_match(got, expected):
    """Every output within float32 rounding of the interpreter's, NaN where it."""
    with np.errstate(all="ignore"):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, equal_nan=True)


def count_calls(monkeypatch, module, name="product", shape_of=-1):
    """The list that ``module.name``'s calls append the shape of their argument
    ``shape_of`` to (the output array), the function still running."""
    calls = []
    function = getattr(module, name)
    monkeypatch.setattr(
        module, name, lambda *args: calls.append(args[shape_of].shape) or function(*args)
    )
    return calls
