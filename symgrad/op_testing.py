"""symgrad's own op-testing machinery: gradient checks by finite differences
in the manner of HIPS autograd's ``test_util``, per-op checks driven by the
``TestSpec`` beside each registered op, and backend comparisons. (MXNet's public
``mx.test_utils`` API, which users' test suites call, is :mod:`symgrad.test_utils`.)

Every gradient check here works in float64 by *random projections*: draw a
random head gradient ``u`` for the outputs and a random direction ``v`` for an
input, and compare the central difference of ``<u, f(x)>`` along ``v`` with
``<grad, v>``, where ``grad`` is the symbolic gradient of ``<u, f(x)>``. One
scalar per input, whatever the shapes, so a check costs two evaluations per
input and order ``k`` is the same check applied to the recorded gradient of
order ``k - 1``.

There are two ways in:

- the frontend: ``fn`` is a Python function of NDArrays (``mx.nd`` calls);
  gradients come from ``autograd.backward`` and, for higher orders, from
  ``autograd.grad(create_graph=True)``
  (:func:`check_numeric_gradient`, :func:`check_higher_order`);
- the compiler: a graph built by hand with ``compiler.make_node``, differentiated
  by ``compiler.differentiate`` and run by a *backend*
  (:func:`check_graph_gradient`).

:func:`check_op` runs every check for one registered op from the
:class:`compiler.registry.TestSpec` declared beside it.

Backends
--------
Graphs are run by the backends named in :data:`BACKENDS`; the numpy
interpreter is the reference every other backend is compared with
(:func:`check_backends_agree`). :func:`gradient_backends` reads the
``SYMGRAD_BACKEND`` environment variable (a comma-separated list). A new
backend only has to be registered here, as ``BACKENDS["compiled"] = runner``
with the runner interface of ``compiler.interpret_runner``, to be checked
against the interpreter by every generated per-op test.

>>> import symgrad as mx
>>> from symgrad.op_testing import check_numeric_gradient
>>> check_numeric_gradient(lambda x: mx.nd.tanh(x) * x, [np.linspace(-1, 1, 4)])
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import symgrad_compiler as compiler
import symgrad_compiler.backends
from symgrad_compiler import (
    OPS,
    Entry,
    Node,
    OpDef,
    TensorType,
    differentiate,
    get_op,
    registry,
    topo_order,
)
from symgrad_compiler.ops import random as _random
from symgrad_compiler.registry import variable

from . import autograd
from . import ndarray as nd
from .ndarray.ndarray import NDArray

__all__ = [
    "BACKENDS",
    "almost_equal",
    "assert_almost_equal",
    "check_backends_agree",
    "check_graph_gradient",
    "check_higher_order",
    "check_numeric_gradient",
    "check_op",
    "check_op_backends",
    "check_op_blocks_gradient",
    "check_op_gradient",
    "check_op_types",
    "default_rtol",
    "gradient_backends",
    "op_inputs",
    "recorded_gradient",
    "registered_ops",
    "same",
]

EPS = 1e-6
"""Step of the central differences (float64)."""

RTOL = 1e-6
ATOL = 1e-6

_DEFAULT_TOLERANCES = {
    np.dtype(np.float16): (1e-2, 1e-3),
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-7, 1e-9),
}


# ---------------------------------------------------------------------------
# comparing arrays
# ---------------------------------------------------------------------------


def _as_numpy(value: Any) -> np.ndarray:
    return value.asnumpy() if isinstance(value, NDArray) else np.asarray(value)


def default_rtol(dtype: Any) -> tuple[float, float]:
    """The ``(rtol, atol)`` used to compare arrays of ``dtype`` by default.

    >>> default_rtol(np.float32)
    (0.0001, 1e-05)
    """
    return _DEFAULT_TOLERANCES.get(np.dtype(dtype), (1e-7, 1e-9))


def almost_equal(
    a: Any, b: Any, rtol: float | None = None, atol: float | None = None, equal_nan: bool = False
) -> bool:
    """Whether ``|a - b| <= atol + rtol * |b|`` everywhere (shapes must be equal).

    >>> almost_equal([1.0, 2.0], [1.0, 2.0 + 1e-9])
    True
    """
    a, b = _as_numpy(a), _as_numpy(b)
    if a.shape != b.shape:
        return False
    default_r, default_a = default_rtol(np.result_type(a, b))
    return bool(
        np.allclose(
            a,
            b,
            rtol=default_r if rtol is None else rtol,
            atol=default_a if atol is None else atol,
            equal_nan=equal_nan,
        )
    )


def assert_almost_equal(
    a: Any,
    b: Any,
    rtol: float | None = None,
    atol: float | None = None,
    names: tuple[str, str] = ("a", "b"),
    equal_nan: bool = False,
) -> None:
    """Assert that ``a`` and ``b`` (NDArrays, numpy arrays or lists) have equal
    shapes and ``|a - b| <= atol + rtol * |b|`` elementwise.

    The default tolerances depend on the dtype (:func:`default_rtol`). On failure
    the message names the worst element, both values and how far off it is.

    Parameters
    ----------
    a, b : array_like or NDArray
        The values to compare; ``b`` is the reference.
    rtol, atol : float, optional
        Relative and absolute tolerance.
    names : tuple of str
        What to call ``a`` and ``b`` in the message.
    equal_nan : bool
        Whether NaNs in the same places count as equal.

    Raises
    ------
    AssertionError
        If the shapes differ or some element is out of tolerance.

    Examples
    --------
    >>> import symgrad as mx
    >>> assert_almost_equal(mx.nd.array([1, 2]) * 2, np.array([2.0, 4.0]))
    >>> assert_almost_equal([1.0, 2.0], [1.0, 2.1], names=("grad", "expected"))
    Traceback (most recent call last):
    ...
    AssertionError: grad and expected differ at (1,): 2.0 vs 2.1 (error 0.1 > tolerance 2.11e-07)
    """
    a, b = _as_numpy(a), _as_numpy(b)
    if a.shape != b.shape:
        raise AssertionError(f"{names[0]} has shape {a.shape}, {names[1]} has shape {b.shape}")
    default_r, default_a = default_rtol(np.result_type(a, b))
    rtol = default_r if rtol is None else rtol
    atol = default_a if atol is None else atol
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(a.astype(np.float64) - b)
        tolerance = atol + rtol * np.abs(b.astype(np.float64))
        bad = ~(error <= tolerance)
    if equal_nan:
        bad &= ~(np.isnan(a) & np.isnan(b))
    if not bad.any():
        return
    excess = np.where(bad, np.nan_to_num(error - tolerance, nan=np.inf), -np.inf)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), a.shape))
    count = int(bad.sum())
    others = f"; {count} of {a.size} elements out of tolerance" if count > 1 else ""
    raise AssertionError(
        f"{names[0]} and {names[1]} differ at {where}: {a[where].item()!r} vs "
        f"{b[where].item()!r} "
        f"(error {error[where]:.3g} > tolerance {tolerance[where]:.3g}){others}"
    )


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` have equal shapes and exactly equal values.

    >>> same(np.ones(2), [1.0, 1.0])
    True
    """
    return bool(np.array_equal(_as_numpy(a), _as_numpy(b)))


def _assert_directional(
    numeric: float, symbolic: float, rtol: float, atol: float, what: str
) -> None:
    if not abs(numeric - symbolic) <= atol + rtol * abs(numeric):
        raise AssertionError(
            f"{what}: the symbolic gradient gives {symbolic:.10g} along a random "
            f"direction, finite differences give {numeric:.10g} "
            f"(error {abs(numeric - symbolic):.3g}, rtol {rtol:g}, atol {atol:g})"
        )


def _check_projections(
    projected: Callable[[list[np.ndarray]], float],
    values: list[np.ndarray],
    wrt: Sequence[int],
    grads: Sequence[np.ndarray | None],
    rng: np.random.Generator,
    eps: float,
    rtol: float,
    atol: float,
    what: str,
) -> None:
    """For each input in ``wrt``: central difference of ``projected`` along a random
    direction against the gradient's inner product with that direction."""
    for i, grad in zip(wrt, grads):
        direction = rng.standard_normal(values[i].shape)
        plus, minus = list(values), list(values)
        plus[i] = values[i] + eps * direction
        minus[i] = values[i] - eps * direction
        numeric = (projected(plus) - projected(minus)) / (2 * eps)
        symbolic = 0.0 if grad is None else float(np.vdot(grad, direction))
        _assert_directional(numeric, symbolic, rtol, atol, f"{what}, input {i}")


def _projection(head_grads: Sequence[np.ndarray], outputs: Sequence[Any]) -> float:
    return float(sum(np.vdot(u, _as_numpy(o)) for u, o in zip(head_grads, outputs)))


def _float64(value: Any) -> np.ndarray:
    array = _as_numpy(value)
    return array.astype(np.float64) if array.dtype.kind == "f" else array.copy()


def _floating_inputs(values: Sequence[np.ndarray]) -> tuple[int, ...]:
    return tuple(i for i, v in enumerate(values) if v.dtype.kind == "f")


# ---------------------------------------------------------------------------
# backends: who runs a graph
# ---------------------------------------------------------------------------


def _type_checked_interpreter(graph: compiler.ProgramGraph) -> Callable:
    """The reference interpreter as a runner (see ``compiler.interpret_runner``),
    checking every op's outputs against its shape/dtype rule as it goes, so that
    gradient graphs are type-checked too."""
    live = graph.live_outputs()

    def run(args: Sequence[Any], out: Sequence[Any] | None = None) -> list[Any]:
        given = {var: (arg,) for var, arg in zip(graph.inputs, args)}
        values = iter(compiler.evaluate(live, given, _type_checked_apply))
        return [None if o is None else next(values) for o in graph.outputs]

    return run


def _type_checked_apply(node: Node, args: Sequence[Any]) -> Any:
    result = node.op.impl(*args, **node.attrs)
    produced = result if isinstance(result, tuple) else (result,)
    actual = tuple(TensorType(np.shape(o), np.asarray(o).dtype) for o in produced)
    if actual != tuple(node.types):
        raise AssertionError(
            f"op {node.op.name!r} with attrs {node.attrs} on input types "
            f"{[TensorType(np.shape(a), a.dtype) for a in args]}: its shape/"
            f"dtype rule says {list(node.types)}, its implementation "
            f"returned {list(actual)}"
        )
    return result


def _compiled_runner(graph: compiler.ProgramGraph, backend: str = "numba") -> Callable:
    """A registered backend as a runner whose results are always the compiled
    program's, never those of the interpreter it may answer with meanwhile.

    The first call runs the program once on copies of the arguments and waits
    for its compilation; the random generator's state is put back afterwards, so
    random ops then draw what the interpreter draws with the same seed.
    """
    program = compiler.compile_graph(graph, backend)
    warmed = []

    def run(args: Sequence[Any], out: Sequence[Any] | None = None) -> list[Any]:
        if not warmed:
            state = _random.generator().bit_generator.state
            program([np.array(arg) for arg in args])
            program.wait()
            _random.generator().bit_generator.state = state
            warmed.append(True)
        return program(args, out)

    return run


REFERENCE_BACKEND = "interpreter"


class _Backends(Mapping):
    """``name -> runner`` for every backend registered with the compiler
    (:func:`symgrad_compiler.register_backend`), where ``runner(ProgramGraph)``
    returns ``run(args) -> list of arrays``; the reference interpreter checks
    every op's results against its shape/dtype rule as well."""

    def __getitem__(self, name: str) -> Callable[[compiler.ProgramGraph], Callable]:
        if name == REFERENCE_BACKEND:
            return _type_checked_interpreter
        if name not in compiler.backends.backend_names():
            raise KeyError(name)
        return functools.partial(_compiled_runner, backend=name)

    def __iter__(self) -> Iterator[str]:
        return iter(compiler.backends.backend_names())

    def __len__(self) -> int:
        return len(compiler.backends.backend_names())


BACKENDS = _Backends()
"""Backends that run graphs, as runners: the compiler's registry of backends.
A backend registered there is compared with the interpreter by every generated
per-op test when ``SYMGRAD_BACKEND`` names it (``SYMGRAD_BACKEND=compiled``; off
in the default test run, where each op's kernels would cost a numba compile)."""


def gradient_backends() -> tuple[str, ...]:
    """The backends the checks run graphs on: the reference interpreter, then those
    named in ``SYMGRAD_BACKEND`` (comma-separated; default ``interpreter``).

    Raises
    ------
    ValueError
        If ``SYMGRAD_BACKEND`` names a backend that is not in :data:`BACKENDS`.

    Examples
    --------
    >>> gradient_backends()
    ('interpreter',)
    """
    names = [REFERENCE_BACKEND]
    for name in os.environ.get("SYMGRAD_BACKEND", REFERENCE_BACKEND).split(","):
        name = name.strip()
        if name and name not in names:
            if name not in BACKENDS:
                raise ValueError(
                    f"SYMGRAD_BACKEND names {name!r}; available backends are {sorted(BACKENDS)}"
                )
            names.append(name)
    return tuple(names)


def _run(
    backend: str,
    outputs: Sequence[Entry],
    variables: Sequence[Node],
    values: Sequence[np.ndarray],
    seed: int | None,
) -> list[np.ndarray]:
    if seed is not None:
        _random.seed(seed)
    run = BACKENDS[backend](compiler.ProgramGraph(list(variables), list(outputs)))
    # Copies: some ops (BatchNorm's moving statistics) update inputs in place.
    return run([np.array(value) for value in values])


def check_backends_agree(
    outputs: Sequence[Entry],
    variables: Sequence[Node],
    values: Sequence[np.ndarray],
    backends: Sequence[str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int | None = None,
) -> None:
    """Assert that every backend computes the reference interpreter's values for
    ``outputs`` of a graph whose ``variables`` hold ``values``.

    Parameters
    ----------
    outputs : sequence of Entry
        The graph outputs to compare.
    variables, values : sequences
        The graph's variable nodes and their values.
    backends : sequence of str, optional
        Backends to compare (default :func:`gradient_backends`).
    rtol, atol : float, optional
        Tolerances (default by dtype).
    seed : int, optional
        Reseed the random generator before each run, so random ops agree.

    Examples
    --------
    >>> from symgrad_compiler import variable, make_node, Entry
    >>> x = variable((3,), np.float64)
    >>> y = Entry(make_node("exp", [Entry(x, 0)]), 0)
    >>> check_backends_agree([y], [x], [np.zeros(3)])
    """
    backends = gradient_backends() if backends is None else tuple(backends)
    reference = _run(REFERENCE_BACKEND, outputs, variables, values, seed)
    for backend in backends:
        if backend == REFERENCE_BACKEND:
            continue
        results = _run(backend, outputs, variables, values, seed)
        for k, (got, expected) in enumerate(zip(results, reference)):
            assert_almost_equal(
                got,
                expected,
                rtol,
                atol,
                equal_nan=True,
                names=(f"{backend} output {k}", f"{REFERENCE_BACKEND} output {k}"),
            )


# ---------------------------------------------------------------------------
# gradient checks on graphs (the compiler, no frontend)
# ---------------------------------------------------------------------------


def check_graph_gradient(
    outputs: Sequence[Entry],
    variables: Sequence[Node],
    values: Sequence[Any],
    wrt: Sequence[int] | None = None,
    *,
    order: int = 1,
    backend: str = REFERENCE_BACKEND,
    eps: float = EPS,
    rtol: float = RTOL,
    atol: float = ATOL,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    what: str = "graph",
) -> None:
    """Check ``compiler.differentiate`` on a hand-built graph by finite differences.

    The outputs are projected on random head gradients; the projection's central
    difference along a random direction of each input in ``wrt`` must match the
    symbolic gradient's inner product with that direction. Each gradient must also
    have its variable's shape and dtype. With ``order > 1`` the gradient graph is
    differentiated again and checked the same way, up to ``order``.

    Parameters
    ----------
    outputs : sequence of Entry
        Outputs of a graph built with ``compiler.make_node``.
    variables : sequence of Node
        The graph's variables (``compiler.variable``), every one the outputs use.
    values : sequence of array_like
        A value per variable; use float64 for meaningful tolerances.
    wrt : sequence of int, optional
        Positions in ``variables`` to differentiate (default: the floating ones).
    order : int
        Highest order of derivative to check.
    backend : str
        Name in :data:`BACKENDS` that runs the graphs.
    eps, rtol, atol : float
        Finite-difference step and tolerances: ``|numeric - symbolic| <= atol +
        rtol * |numeric|``.
    seed : int, optional
        Reseed the random generator before every evaluation (random ops).
    rng : numpy.random.Generator, optional
        Source of the random projections (default: seeded, reproducible).
    what : str
        Name for the failure message.

    Raises
    ------
    AssertionError
        If a gradient is wrong or has the wrong type.

    Examples
    --------
    >>> from symgrad_compiler import variable, make_node, Entry
    >>> a, b = variable((2, 3), np.float64), variable((1, 3), np.float64)
    >>> y = make_node("broadcast_mul", [Entry(a, 0), Entry(b, 0)])
    >>> z = make_node("sin", [Entry(y, 0)])
    >>> rng = np.random.default_rng(0)
    >>> check_graph_gradient([Entry(z, 0)], [a, b], [rng.normal(size=(2, 3)),
    ...                      rng.normal(size=(1, 3))], order=2)
    """
    rng = np.random.default_rng(0) if rng is None else rng
    values = [_float64(v) for v in values]
    wrt = _floating_inputs(values) if wrt is None else tuple(wrt)
    for level in range(1, order + 1):
        gradients = _check_graph_gradient_once(
            outputs,
            list(variables),
            values,
            wrt,
            backend,
            eps,
            rtol,
            atol,
            seed,
            rng,
            f"{what}: order {level} gradient",
        )
        if gradients is None:
            return  # no head depends on the inputs: every higher order is zero too
        # Differentiate the gradient graph next; its head gradients become constants.
        outputs, variables, values = gradients


def _check_graph_gradient_once(
    outputs, variables, values, wrt, backend, eps, rtol, atol, seed, rng, what
):
    """One order of :func:`check_graph_gradient`; returns the gradient graph
    (outputs, variables, values) to check the next order on, or None."""
    forward = _run(backend, outputs, variables, values, seed)
    for k, (value, out) in enumerate(zip(forward, outputs)):
        if value.shape != out.shape or value.dtype != out.dtype:
            raise AssertionError(
                f"{what}: output {k} is {value.shape} {value.dtype}, its "
                f"inferred type is {out.shape} {out.dtype}"
            )
    head_vars = [
        variable(out.shape, out.dtype, name=f"head_grad{k}") for k, out in enumerate(outputs)
    ]
    head_values = [rng.standard_normal(out.shape).astype(out.dtype) for out in outputs]
    grads = differentiate(
        outputs, [Entry(h, 0) for h in head_vars], [Entry(variables[i], 0) for i in wrt]
    )
    for i, grad in zip(wrt, grads):
        var_type = variables[i].types[0]
        if grad is not None and grad.type != var_type:
            raise AssertionError(
                f"{what}: the gradient of input {i} has type {grad.type}, the input has {var_type}"
            )
    live = [g for g in grads if g is not None]
    all_vars, all_values = variables + head_vars, values + head_values
    computed = iter(_run(backend, live, all_vars, all_values, seed))
    grad_values = [None if g is None else next(computed) for g in grads]

    def projected(point: list[np.ndarray]) -> float:
        return _projection(head_values, _run(backend, outputs, variables, point, seed))

    _check_projections(projected, values, wrt, grad_values, rng, eps, rtol, atol, what)
    return (live, all_vars, all_values) if live else None


# ---------------------------------------------------------------------------
# gradient checks through the frontend (mx.nd + autograd)
# ---------------------------------------------------------------------------


def _as_list(result: Any) -> list:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _has_history(array: Any) -> bool:
    return isinstance(array, NDArray) and array._entry is not None and not array._entry.node.freed


def _reached(outputs: Sequence[Any], arrays: Sequence[NDArray]) -> set[int]:
    """Positions in ``arrays`` whose variable node the recorded ``outputs`` depend on."""
    nodes = {id(node) for node in topo_order([o._entry for o in outputs if _has_history(o)])}
    return {k for k, a in enumerate(arrays) if id(a._entry.node) in nodes}


def _call_recorded(
    fn: Callable, values: Sequence[np.ndarray], wrt: Sequence[int], seed: int | None
) -> tuple[list[NDArray], list[NDArray]]:
    """``fn`` on fresh NDArrays of ``values``, recording, with the ``wrt`` inputs
    marked for gradients. Returns (inputs, outputs)."""
    arrays = [nd.array(v, dtype=v.dtype) for v in values]
    for i in wrt:
        arrays[i].attach_grad()
    if seed is not None:
        _random.seed(seed)
    with autograd.record():
        outputs = _as_list(fn(*arrays))
    return arrays, outputs


def _backward_gradients(
    fn: Callable,
    values: Sequence[np.ndarray],
    wrt: Sequence[int],
    head_grads: Sequence[np.ndarray],
    seed: int | None,
) -> list[np.ndarray]:
    arrays, outputs = _call_recorded(fn, values, wrt, seed)
    marked = [arrays[i] for i in wrt]
    # A head with no marked variable behind it has zero gradient (backward would raise).
    heads = [(o, u) for o, u in zip(outputs, head_grads) if _reached([o], marked)]
    if heads:
        autograd.backward([o for o, _ in heads], [nd.array(u, dtype=u.dtype) for _, u in heads])
    return [arrays[i].grad.asnumpy() for i in wrt]


def check_numeric_gradient(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    wrt: Sequence[int] | None = None,
    *,
    eps: float = EPS,
    rtol: float = RTOL,
    atol: float = ATOL,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    what: str | None = None,
) -> None:
    """Check the gradients ``autograd.backward`` computes for ``fn`` against
    central finite differences, in float64, by random projections.

    ``fn`` takes one NDArray per input and returns an NDArray or a list of them.
    Its outputs are projected on random head gradients ``u``; for each input ``i``
    in ``wrt`` and a random direction ``v``, ``(<u, fn(x + eps v)> - <u, fn(x -
    eps v)>) / (2 eps)`` must equal ``<x_i.grad, v>`` after ``backward(outputs,
    u)``.

    Parameters
    ----------
    fn : callable
        Function of NDArrays (``mx.nd`` calls) to check.
    inputs : sequence of array_like
        The point to check at; floating inputs are converted to float64.
    wrt : sequence of int, optional
        Inputs to differentiate (default: all floating inputs); the others are
        passed as constants (index arrays, for instance).
    eps, rtol, atol : float
        Finite-difference step; the check passes when ``|numeric - symbolic| <=
        atol + rtol * |numeric|``.
    seed : int, optional
        Reseed the random generator before every call of ``fn``, so that random
        ops (Dropout) draw the same mask each time.
    rng : numpy.random.Generator, optional
        Source of the projections (default: seeded, so failures reproduce).
    what : str, optional
        Name for the failure message.

    Raises
    ------
    AssertionError
        If a projected gradient is out of tolerance.

    See Also
    --------
    check_higher_order : the same check on the recorded gradient of ``fn``.

    Examples
    --------
    >>> import symgrad as mx
    >>> x, w = np.array([[0.5, -1.0, 2.0]]), np.array([[0.1, 0.2, 0.3], [1.0, 0.0, -1.0]])
    >>> check_numeric_gradient(lambda x, w: mx.nd.dot(x, w, transpose_b=True).sigmoid(), [x, w])

    A wrong gradient fails:

    >>> f = mx.autograd.Function
    >>> class BadSquare(f):
    ...     def forward(self, x):
    ...         self.save_for_backward(x)
    ...         return x * x
    ...     def backward(self, dy):
    ...         (x,) = self.saved_tensors
    ...         return dy * x  # should be 2 x dy
    >>> check_numeric_gradient(lambda x: BadSquare()(x), [np.ones(3)], what="BadSquare")
    Traceback (most recent call last):
    ...
    AssertionError: BadSquare, input 0: the symbolic gradient gives ... finite differences give ...
    """
    rng = np.random.default_rng(0) if rng is None else rng
    values = [_float64(x) for x in inputs]
    wrt = _floating_inputs(values) if wrt is None else tuple(wrt)
    what = what or getattr(fn, "__name__", "fn")
    _, outputs = _call_recorded(fn, values, wrt, seed)
    head_grads = [rng.standard_normal(o.shape).astype(o._data.dtype) for o in outputs]
    grads = _backward_gradients(fn, values, wrt, head_grads, seed)

    def projected(point: list[np.ndarray]) -> float:
        return _projection(head_grads, _call_recorded(fn, point, wrt, seed)[1])

    _check_projections(projected, values, wrt, grads, rng, eps, rtol, atol, what)


def recorded_gradient(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    wrt: Sequence[int],
    rng: np.random.Generator,
    seed: int | None = None,
) -> Callable[..., list]:
    """A function of the same NDArrays as ``fn`` that returns the gradients of
    ``<u, fn(...)>`` with respect to the ``wrt`` inputs, with history
    (``autograd.grad(create_graph=True)``), for a random ``u`` fixed now.

    Gradients that do not depend on the inputs come back without history, and an
    input the outputs do not depend on gets zeros.
    """
    values = [_float64(x) for x in inputs]
    _, outputs = _call_recorded(fn, values, wrt, seed)
    head_grads = [rng.standard_normal(o.shape).astype(o._data.dtype) for o in outputs]

    def gradient(*arrays: NDArray) -> list[NDArray]:
        outs = _as_list(fn(*arrays))
        marked = [arrays[i] for i in wrt]
        heads = [(o, u) for o, u in zip(outs, head_grads) if _reached([o], marked)]
        reached = _reached([o for o, _ in heads], marked)
        grads = iter(
            autograd.grad(
                [o for o, _ in heads],
                [marked[k] for k in sorted(reached)],
                [nd.array(u, dtype=u.dtype) for _, u in heads],
                create_graph=True,
            )
            if reached
            else []
        )
        return [
            next(grads) if k in reached else nd.zeros(x.shape, dtype=x._data.dtype)
            for k, x in enumerate(marked)
        ]

    gradient.__name__ = f"grad({getattr(fn, '__name__', 'fn')})"
    return gradient


def check_higher_order(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    order: int = 2,
    wrt: Sequence[int] | None = None,
    *,
    eps: float = EPS,
    rtol: float = RTOL,
    atol: float = ATOL,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    what: str | None = None,
) -> None:
    """Check derivatives of orders 2 to ``order`` of ``fn``: the derivative of
    order ``k`` is checked by finite differences of the recorded derivative of
    order ``k - 1`` (``autograd.grad(..., create_graph=True)``), projected on
    random head gradients, as :func:`check_numeric_gradient` checks the first.

    Parameters
    ----------
    fn : callable
        Function of NDArrays returning an NDArray or a list of them.
    inputs : sequence of array_like
        The point to check at (floating inputs become float64).
    order : int
        Highest order to check (2 or more).
    wrt, eps, rtol, atol, seed, rng, what
        As in :func:`check_numeric_gradient`.

    Raises
    ------
    AssertionError
        If a derivative is out of tolerance.

    Examples
    --------
    >>> import symgrad as mx
    >>> check_higher_order(lambda x: mx.nd.sum(mx.nd.exp(x) * x), [np.array([0.1, 0.7])],
    ...                    order=3)
    """
    if order < 2:
        raise ValueError(f"check_higher_order checks orders 2 and up, not {order}")
    rng = np.random.default_rng(0) if rng is None else rng
    values = [_float64(x) for x in inputs]
    wrt = _floating_inputs(values) if wrt is None else tuple(wrt)
    what = what or getattr(fn, "__name__", "fn")
    gradient = fn
    for k in range(2, order + 1):
        gradient = recorded_gradient(gradient, values, wrt, rng, seed)
        check_numeric_gradient(
            gradient,
            values,
            wrt,
            eps=eps,
            rtol=rtol,
            atol=atol,
            seed=seed,
            rng=rng,
            what=f"{what}: order {k} derivative",
        )


# ---------------------------------------------------------------------------
# per-op checks from the registry's TestSpec
# ---------------------------------------------------------------------------


def _spec(opdef: OpDef, spec: registry.TestSpec | None = None) -> registry.TestSpec:
    if spec is not None:
        return spec
    if opdef.test is None:
        raise ValueError(f"op {opdef.name!r} declares no TestSpec")
    return opdef.test


def op_inputs(
    op_name: str, dtype: Any = np.float64, spec: registry.TestSpec | None = None
) -> list[np.ndarray]:
    """The test inputs an op's :class:`~compiler.registry.TestSpec` declares, with
    floating inputs in ``dtype``; reproducible (seeded by the op's name). ``spec``
    replaces the op's own TestSpec (to test another configuration).

    >>> [x.shape for x in op_inputs("FullyConnected")]
    [(3, 2, 2), (5, 4), (5,)]
    """
    opdef = get_op(op_name)
    spec = _spec(opdef, spec)
    rng = np.random.default_rng(zlib.crc32(opdef.name.encode()))
    if spec.make_inputs is not None:
        values = [np.asarray(v) for v in spec.make_inputs(rng)]
    else:
        values = [rng.uniform(*spec.domain, shape) for shape in spec.shapes]
    return [v.astype(dtype) if v.dtype.kind == "f" else v for v in values]


def _op_graph(
    opdef: OpDef, values: Sequence[np.ndarray], attrs: dict
) -> tuple[list[Node], Node, list[Entry]]:
    variables = [variable(v.shape, v.dtype, name=f"input{i}") for i, v in enumerate(values)]
    node = compiler.make_node(opdef, [Entry(v, 0) for v in variables], attrs)
    canonical = node.attrs
    visible = (
        node.num_outputs
        if canonical.get("output_mean_var")
        else (opdef.visible(canonical) or node.num_outputs)
    )
    return variables, node, [Entry(node, k) for k in range(visible)]


def _op_seed(opdef: OpDef) -> int | None:
    # Random ops draw from the global generator: reseed before every evaluation so
    # that each finite difference (and each backend) sees the same draws.
    return 0 if opdef.kind == "random" or "_draw" in opdef.attrs else None


def _op_wrt(spec: registry.TestSpec, values: Sequence[np.ndarray]) -> tuple[int, ...]:
    return tuple(spec.wrt) if spec.wrt is not None else _floating_inputs(values)


def check_op_types(
    op_name: str,
    dtypes: Sequence[Any] = (np.float32, np.float64),
    spec: registry.TestSpec | None = None,
) -> None:
    """Assert that an op's shape/dtype rule gives the types its numpy implementation
    returns, on its TestSpec inputs (or ``spec``'s) in each of ``dtypes``.

    >>> check_op_types("sum")
    """
    opdef = get_op(op_name)
    spec = _spec(opdef, spec)
    attrs = opdef.canonical_attrs(spec.attrs)
    for dtype in dtypes:
        values = op_inputs(op_name, dtype, spec)
        inferred = opdef.infer_types([TensorType(v.shape, v.dtype) for v in values], attrs)
        if _op_seed(opdef) is not None:
            _random.seed(0)
        result = opdef.impl(*[v.copy() for v in values], **attrs)
        produced = result if isinstance(result, tuple) else (result,)
        for k, out in enumerate(produced):
            if not isinstance(out, np.ndarray):
                raise AssertionError(
                    f"{opdef.name}: output {k} is a {type(out).__name__}, not a numpy array"
                )
        actual = tuple(TensorType(o.shape, o.dtype) for o in produced)
        if actual != tuple(inferred):
            raise AssertionError(
                f"{opdef.name} on {np.dtype(dtype).name} inputs: its shape/"
                f"dtype rule says {list(inferred)}, its implementation "
                f"returned {list(actual)}"
            )


def _frontend_function(opdef: OpDef, attrs: dict) -> Callable[..., Any]:
    function = getattr(nd, opdef.name)

    def apply(*arrays: NDArray) -> Any:
        return function(*arrays, **attrs)

    apply.__name__ = f"nd.{opdef.name}"
    return apply


def check_op_gradient(
    op_name: str,
    via: str = "compiler",
    order: int | None = None,
    backend: str = REFERENCE_BACKEND,
    spec: registry.TestSpec | None = None,
) -> None:
    """Check one op's gradients in float64 on its TestSpec inputs.

    Parameters
    ----------
    op_name : str
        A registered op (or alias).
    via : {'compiler', 'frontend'}
        ``'compiler'`` builds the one-op graph by hand and differentiates it with
        ``compiler.differentiate`` (run by ``backend``); ``'frontend'`` calls
        ``mx.nd.<op>`` under ``autograd.record()`` and uses ``autograd.backward``
        (order 1) and ``autograd.grad(create_graph=True)`` (higher orders).
    order : int, optional
        Highest order to check (default: the TestSpec's ``order``).
    backend : str
        Backend for ``via='compiler'``.
    spec : TestSpec, optional
        Another configuration (shapes, attrs, inputs) than the op's own TestSpec.

    Examples
    --------
    >>> check_op_gradient("softmax", via="frontend")
    """
    opdef = get_op(op_name)
    spec = _spec(opdef, spec)
    order = spec.order if order is None else order
    values = op_inputs(op_name, spec=spec)
    wrt = _op_wrt(spec, values)
    rng = np.random.default_rng(zlib.crc32(opdef.name.encode()) + 1)
    options = {"rtol": spec.rtol, "atol": spec.rtol, "seed": _op_seed(opdef), "rng": rng}
    if via == "compiler":
        variables, _, outputs = _op_graph(opdef, values, spec.attrs)
        check_graph_gradient(
            outputs,
            variables,
            values,
            wrt,
            order=order,
            backend=backend,
            what=opdef.name,
            **options,
        )
    elif via == "frontend":
        fn = _frontend_function(opdef, spec.attrs)
        check_numeric_gradient(fn, values, wrt, what=f"nd.{opdef.name}", **options)
        if order > 1:
            check_higher_order(fn, values, order, wrt, what=f"nd.{opdef.name}", **options)
    else:
        raise ValueError(f"via must be 'compiler' or 'frontend', not {via!r}")


def check_op_blocks_gradient(op_name: str, spec: registry.TestSpec | None = None) -> None:
    """Assert that a non-differentiable op stops gradients: ``differentiate``
    finds no path through it, and ``backward`` through ``mx.nd.<op>`` writes zeros
    into the inputs' gradient buffers (MXNet's behaviour for comparisons).

    >>> check_op_blocks_gradient("broadcast_greater")
    """
    opdef = get_op(op_name)
    spec = _spec(opdef, spec)
    values = op_inputs(op_name, spec=spec)
    variables, _, outputs = _op_graph(opdef, values, spec.attrs)
    seeds = [Entry(variable(out.shape, out.dtype), 0) for out in outputs]
    grads = differentiate(outputs, seeds, [Entry(v, 0) for v in variables])
    if any(g is not None for g in grads):
        raise AssertionError(
            f"{opdef.name} is not differentiable, yet differentiate returned a gradient through it"
        )
    wrt = _floating_inputs(values)
    if not wrt:
        return  # creation ops: no input a gradient could reach
    arrays, results = _call_recorded(
        _frontend_function(opdef, spec.attrs), values, wrt, _op_seed(opdef)
    )
    for i in wrt:
        arrays[i].grad[:] = 1.0
    autograd.backward(results)
    for i in wrt:
        assert_almost_equal(
            arrays[i].grad,
            np.zeros(values[i].shape),
            0.0,
            0.0,
            names=(f"{opdef.name}: gradient of input {i}", "zeros"),
        )


def check_op(
    op_name: str, backends: Sequence[str] | None = None, spec: registry.TestSpec | None = None
) -> None:
    """Run every check for one registered op from its TestSpec.

    The shape/dtype rule against the implementation (float32 and float64);
    for a differentiable op, the float64 gradient check up to the spec's order
    through the compiler on each backend and through ``mx.nd`` + autograd; for a
    non-differentiable one, that it blocks gradients; and that every backend
    computes the interpreter's values.

    Parameters
    ----------
    op_name : str
        A registered op (or alias) with a TestSpec.
    backends : sequence of str, optional
        Default :func:`gradient_backends`.
    spec : TestSpec, optional
        Another configuration than the op's own TestSpec.

    Examples
    --------
    >>> check_op("tanh")
    >>> from symgrad_compiler.registry import TestSpec
    >>> check_op("dot", spec=TestSpec(shapes=((4, 3), (2, 4)),
    ...                               attrs={"transpose_a": True, "transpose_b": True}))
    """
    opdef = get_op(op_name)
    backends = gradient_backends() if backends is None else tuple(backends)
    check_op_types(op_name, spec=spec)
    check_op_backends(op_name, backends, spec)
    if not opdef.differentiable:
        check_op_blocks_gradient(op_name, spec)
        return
    for backend in backends:
        check_op_gradient(op_name, "compiler", backend=backend, spec=spec)
    check_op_gradient(op_name, "frontend", spec=spec)


def check_op_backends(
    op_name: str, backends: Sequence[str] | None = None, spec: registry.TestSpec | None = None
) -> None:
    """Assert that every backend computes the interpreter's values for one op's
    graph and, for a differentiable op, for its gradient graph (head gradients of
    ones), on the TestSpec's inputs.

    >>> check_op_backends("broadcast_mul", ["interpreter"])
    """
    opdef = get_op(op_name)
    spec = _spec(opdef, spec)
    values = op_inputs(op_name, spec=spec)
    variables, _, outputs = _op_graph(opdef, values, spec.attrs)
    seeds = [variable(out.shape, out.dtype) for out in outputs]
    seed_values = [np.ones(out.shape, out.dtype) for out in outputs]
    grads = differentiate(
        outputs,
        [Entry(s, 0) for s in seeds],
        [Entry(variables[i], 0) for i in _op_wrt(spec, values)],
    )
    check_backends_agree(
        outputs + [g for g in grads if g is not None],
        variables + seeds,
        values + seed_values,
        backends,
        seed=_op_seed(opdef),
    )


def registered_ops() -> list[OpDef]:
    """Every registered op once (aliases folded), sorted by name, without ``null``."""
    unique = {id(op): op for op in OPS.values() if op.name != "null"}
    return sorted(unique.values(), key=lambda op: op.name)
