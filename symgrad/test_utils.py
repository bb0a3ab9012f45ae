"""MXNet's ``mx.test_utils``: the helpers users' own test suites call, with
MXNet 1.9.1's signatures, defaults, tolerances and failure messages.

- comparing arrays: :func:`assert_almost_equal` (tolerances by dtype, the
  worst elements listed), :func:`almost_equal`, :func:`same`;
- checking symbols: :func:`check_symbolic_forward`,
  :func:`check_symbolic_backward`, :func:`check_numeric_gradient` (central
  differences in the given dtype against the executor's backward),
  :func:`numeric_grad`, :func:`simple_forward`, :func:`check_consistency`;
- random inputs: :func:`rand_ndarray`, :func:`rand_shape_2d`,
  :func:`rand_shape_3d`, :func:`rand_shape_nd`, :func:`random_arrays` (drawn
  from numpy's global generator as MXNet draws them, so a seeded test sees
  MXNet's numbers);
- the rest: :func:`np_reduce`, :func:`default_context`,
  :func:`set_default_context`, :func:`default_dtype`,
  :func:`assert_exception`, :func:`environment`.

symgrad's own op-testing machinery (per-op TestSpecs, backends, random
projections in float64) is :mod:`symgrad.op_testing`.

>>> import symgrad as mx
>>> x, y = mx.sym.var("x"), mx.sym.var("y")
>>> outputs = check_symbolic_forward(x * y, [np.array([1.0, 2.0]), np.array([3.0, 4.0])], [[3, 8]])
>>> outputs[0].asnumpy()
array([3., 8.], dtype=float32)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.testing import build_err_msg

from . import context as _context
from . import ndarray as nd
from .base import MXNetError
from .context import Context, cpu
from .ndarray.ndarray import NDArray

__all__ = [
    "DummyIter",
    "almost_equal",
    "assert_almost_equal_ignore_nan",
    "assert_almost_equal_with_err",
    "assign_each",
    "assign_each2",
    "check_speed",
    "chi_square_check",
    "collapse_sum_like",
    "compare_ndarray_tuple",
    "create_2d_tensor",
    "create_vector",
    "discard_stderr",
    "gen_buckets_probs_with_ppf",
    "get_etol",
    "has_tvm_ops",
    "is_op_runnable",
    "list_gpus",
    "mean_check",
    "same_array",
    "var_check",
    "verify_generator",
    "assert_almost_equal",
    "assert_exception",
    "check_consistency",
    "check_numeric_gradient",
    "check_symbolic_backward",
    "check_symbolic_forward",
    "default_atols",
    "default_context",
    "default_dtype",
    "default_numeric_eps",
    "default_rtols",
    "effective_dtype",
    "environment",
    "get_atol",
    "get_rtol",
    "get_tolerance",
    "np_reduce",
    "numeric_grad",
    "rand_ndarray",
    "rand_shape_2d",
    "rand_shape_3d",
    "rand_shape_nd",
    "random_arrays",
    "same",
    "set_default_context",
    "simple_forward",
]

_FLOAT64 = np.dtype(np.float64)
_LEGACY_REPR = "1.25" if int(np.__version__.split(".")[0]) >= 2 else False
_EXACT_TYPES = ("bool", "int8", "uint8", "int32", "uint32", "int64", "uint64")


# ---------------------------------------------------------------------------
# contexts and defaults
# ---------------------------------------------------------------------------


def default_context() -> Context:
    """The context tests run on: the current context (``cpu(0)`` unless set).

    >>> default_context()
    cpu(0)
    """
    return _context.current_context()


def set_default_context(ctx: Context) -> None:
    """Make ``ctx`` the default context of tests, and ``mx.current_context()``."""
    _context.set_default_context(ctx)


def default_dtype() -> type:
    """The default dtype of test data: ``np.float32``."""
    return np.float32


def default_rtols() -> dict[np.dtype, float]:
    """Relative tolerances by dtype (exact for booleans and integers).

    >>> default_rtols()[np.dtype(np.float32)]
    0.0001
    """
    exact = {np.dtype(t): 0 for t in _EXACT_TYPES}
    return {
        np.dtype(np.float16): 1e-2,
        np.dtype(np.float32): 1e-4,
        np.dtype(np.float64): 1e-5,
        **exact,
    }


def default_atols() -> dict[np.dtype, float]:
    """Absolute tolerances by dtype (exact for booleans and integers).

    >>> default_atols()[np.dtype(np.float64)]
    1e-20
    """
    exact = {np.dtype(t): 0 for t in _EXACT_TYPES}
    return {
        np.dtype(np.float16): 1e-1,
        np.dtype(np.float32): 1e-3,
        np.dtype(np.float64): 1e-20,
        **exact,
    }


def default_numeric_eps() -> dict[np.dtype, float]:
    """The finite-difference step of :func:`check_numeric_gradient` by dtype:
    ``2**-6`` (float16), ``2**-9`` (float32), ``2**-14`` (float64); powers of two,
    so that ``x + eps/2`` is exact."""
    return {
        np.dtype(np.float16): 2.0**-6,
        np.dtype(np.float32): 2.0**-9,
        np.dtype(np.float64): 2.0**-14,
    }


def effective_dtype(dat: Any) -> np.dtype:
    """The dtype whose tolerances apply to ``dat`` (on a CPU: its own dtype)."""
    return np.dtype(getattr(dat, "dtype", dat))


def get_tolerance(dat: Any, tol: Any, default_tol: Mapping[np.dtype, float]) -> float:
    """The tolerance for comparing ``dat``: ``tol`` itself, ``tol[dtype]`` if it is
    a dict, or ``default_tol[dtype]`` if it is None."""
    dtype = effective_dtype(dat)
    fallback = default_tol.get(dtype, default_tol.get(np.dtype(np.float64), 0))
    if tol is None:
        return fallback
    if isinstance(tol, Mapping):
        return tol.get(dtype, fallback)
    return tol


def get_rtol(rtol: float | None = None, dtype: Any = _FLOAT64) -> float:
    """``rtol``, or the default relative tolerance of ``dtype`` if it is None."""
    return default_rtols()[np.dtype(dtype)] if rtol is None else rtol


def get_atol(atol: float | None = None, dtype: Any = _FLOAT64) -> float:
    """``atol``, or the default absolute tolerance of ``dtype`` if it is None."""
    return default_atols()[np.dtype(dtype)] if atol is None else atol


# ---------------------------------------------------------------------------
# comparing arrays
# ---------------------------------------------------------------------------


def _numpy(value: Any) -> np.ndarray:
    return value.asnumpy() if isinstance(value, NDArray) else np.asarray(value)


def _report(arrays: Sequence[Any], message: str) -> str:
    # MXNet shows the arrays summarised (threshold 4) without scientific notation;
    # it sets numpy's print options globally to do so, here they are set for the call.
    # numpy 1.x reprs (MXNet's numpy) have no ", shape=..." suffix nor np.float64(...)
    with np.printoptions(threshold=4, suppress=True, legacy=_LEGACY_REPR):
        return build_err_msg(arrays, message)


def _shape_message(a: np.ndarray, b: np.ndarray) -> str:
    return _report([a, b], f"a.shape = {a.shape} and b.shape = {b.shape} are not equal")


def almost_equal(
    a: Any,
    b: Any,
    rtol: float | None = None,
    atol: float | None = None,
    equal_nan: bool = False,
    use_broadcast: bool = True,
) -> bool:
    """Whether ``|a - b| <= atol + rtol * |b|`` everywhere (broadcasting unless
    ``use_broadcast=False``). The default tolerances are float64's whatever
    the dtype (``1e-5``, ``1e-20``), as MXNet's.

    >>> almost_equal(np.array([1.0, 2.0]), np.array([1.0, 2.00001]))
    True
    >>> almost_equal(np.float32([3]), np.float32([3.0001]))
    False
    """
    a, b = _numpy(a), _numpy(b)
    rtol = get_tolerance(np.result_type(a, b), rtol, {np.dtype(np.float64): get_rtol()})
    atol = get_tolerance(np.result_type(a, b), atol, {np.dtype(np.float64): get_atol()})
    if not use_broadcast and a.shape != b.shape:
        raise AssertionError(_shape_message(a, b))
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def _pair_tolerance(a: np.ndarray, b: np.ndarray, tol: Any, defaults: Mapping) -> float:
    # the less precise of the two dtypes decides
    return max(get_tolerance(a, tol, defaults), get_tolerance(b, tol, defaults))


def assert_almost_equal(
    a: Any,
    b: Any,
    rtol: float | Mapping | None = None,
    atol: float | Mapping | None = None,
    names: tuple[str, str] = ("a", "b"),
    equal_nan: bool = False,
    use_broadcast: bool = True,
    mismatches: tuple[int, int] = (10, 10),
) -> None:
    """Assert ``|a - b| <= atol + rtol * |b|`` elementwise (``b`` is the reference).

    The default tolerances are those of the less precise of the two dtypes
    (:func:`default_rtols`, :func:`default_atols`); ``rtol``/``atol`` may be
    numbers or dicts by dtype. Boolean arrays must be equal. On failure, the
    ``mismatches[0]`` worst elements are printed, ranked by *error*
    ``|a - b| / (atol + rtol * |b|)`` (out of tolerance above 1), and the
    AssertionError names the worst one and what fraction is out of tolerance
    (counted up to ``mismatches[1] + 1`` elements: "at least" beyond that).

    Parameters
    ----------
    a, b : np.ndarray or NDArray
        The values and the reference (lists and scalars are accepted too).
    rtol, atol : float or dict of dtype to float, optional
        Relative and absolute tolerance.
    names : tuple of str
        What to call ``a`` and ``b`` in the message.
    equal_nan : bool
        Whether NaNs in the same places count as equal.
    use_broadcast : bool
        Compare arrays of broadcastable shapes (else the shapes must be equal).
    mismatches : tuple of int
        How many mismatches to print, and to count.

    Examples
    --------
    >>> try:
    ...     assert_almost_equal(np.array([1.0, 2.0]), np.array([1.0, 2.2]), rtol=0.01, atol=0.1)
    ... except AssertionError as error:
    ...     print(error)
    <BLANKLINE>
    *** Maximum errors for vector of size 2:  rtol=0.01, atol=0.1
    <BLANKLINE>
      1: Error 1.639344  Location of error: (1,), a=2.00000000, b=2.20000000
    <BLANKLINE>
    Items are not equal:
    Error 1.639344 exceeds tolerance rtol=1.000000e-02, atol=1.000000e-01 (mismatch 50.000000%).
    Location of maximum error: (1,), a=2.00000000, b=2.20000000
     ACTUAL: array([1., 2.])
     DESIRED: array([1. , 2.2])
    """
    shown_a = a.asnumpy() if isinstance(a, NDArray) else a
    shown_b = b.asnumpy() if isinstance(b, NDArray) else b
    a, b = np.asarray(shown_a), np.asarray(shown_b)
    if a.dtype == np.bool_ and b.dtype == np.bool_:
        _assert_equal_booleans(a, b)
        return
    rtol = _pair_tolerance(a, b, rtol, default_rtols())
    atol = _pair_tolerance(a, b, atol, default_atols())
    if not use_broadcast and a.shape != b.shape:
        raise AssertionError(_shape_message(a, b))
    with np.errstate(all="ignore"):
        bad = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not bad.any():
        return
    a, b = np.broadcast_arrays(a, b)
    bad = np.broadcast_to(bad, a.shape)
    if a.dtype.kind in "ub" or b.dtype.kind in "ub":  # unsigned differences would wrap
        a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(all="ignore"):
        # in the arrays' own dtypes, as MXNet: the tolerance takes b's (float32 stays float32)
        error = np.abs(a - b) / (atol + rtol * np.abs(b) + 1e-20)
    # worst first; NaN errors (NaN or opposite infinities) rank worst, ties in index order
    rank = np.where(np.isnan(error), np.inf, error)[bad]
    flat_bad = np.flatnonzero(bad)[np.argsort(-rank, kind="stable")]
    worst = flat_bad[0]
    if a.ndim == 0:
        message = f"Error {float(error[()]):f} exceeds tolerance rtol={rtol:e}, atol={atol:e}.\n"
    else:
        _print_worst(a, b, error, flat_bad[: mismatches[0]], rtol, atol, names)
        counted = len(flat_bad)
        share = (
            f"mismatch {100.0 * counted / a.size:f}%"
            if counted <= mismatches[1]
            else f"mismatch at least {100.0 * (mismatches[1] + 1) / a.size:f}%"
        )
        message = (
            f"Error {float(error.flat[worst]):f} exceeds tolerance rtol={rtol:e}, "
            f"atol={atol:e} ({share}).\n"
            f"Location of maximum error: {_where(a, worst, names, b)}"
        )
    raise AssertionError(_report([shown_a, shown_b], message))


def _assert_equal_booleans(a: np.ndarray, b: np.ndarray) -> None:
    """Booleans must be equal; the message is numpy 1.x's ``assert_array_equal``
    one, which MXNet's users see."""
    if a.shape != b.shape:
        np.testing.assert_array_equal(a, b)
        return
    differ = int(np.count_nonzero(a != b))
    if differ:
        share = f"Mismatched elements: {differ} / {a.size} ({100.0 * differ / a.size:.3g}%)"
        with np.printoptions(legacy=_LEGACY_REPR):
            message = build_err_msg([a, b], "\n" + share, "Arrays are not equal", names=("x", "y"))
        raise AssertionError(message)


def _where(a: np.ndarray, flat: int, names: tuple[str, str], b: np.ndarray) -> str:
    index = tuple(int(i) for i in np.unravel_index(flat, a.shape))
    return f"{index}, {names[0]}={float(a.flat[flat]):.8f}, {names[1]}={float(b.flat[flat]):.8f}"


def _print_worst(a, b, error, flats, rtol, atol, names) -> None:
    # MXNet prints the worst elements to stdout, beside the exception's message
    lines = [f"\n*** Maximum errors for vector of size {a.size}:  rtol={rtol}, atol={atol}\n"]
    for rank, flat in enumerate(flats, 1):
        lines.append(
            f"{rank:3d}: Error {float(error.flat[flat]):f}  "
            f"Location of error: {_where(a, flat, names, b)}"
        )
    print("\n".join(lines))


def same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` have the same shape and equal elements (NaN is not
    equal to NaN). NDArrays are compared by value.

    >>> same(np.array([1, 2]), np.array([1, 2])), same(np.array([1.0]), np.array([[1.0]]))
    (True, False)
    """
    return bool(np.array_equal(_numpy(a), _numpy(b)))


def assert_exception(f: Callable, exception_type: type, *args: Any, **kwargs: Any) -> None:
    """Assert that ``f(*args, **kwargs)`` raises ``exception_type`` (another
    exception propagates).

    >>> assert_exception(lambda v: 1 / v, ZeroDivisionError, 0)
    """
    try:
        f(*args, **kwargs)
    except exception_type:
        return
    raise AssertionError()


def np_reduce(
    dat: np.ndarray, axis: Any, keepdims: bool, numpy_reduce_func: Callable
) -> np.ndarray:
    """Reduce ``dat`` with ``numpy_reduce_func`` (``np.sum``, ``np.max``...) over
    ``axis`` (None, an int or a sequence of ints), one axis at a time, so that
    any reducer taking ``axis`` and ``keepdims`` works.

    >>> np_reduce(np.arange(24.0).reshape(2, 3, 4), (0, 2), True, np.sum).shape
    (1, 3, 1)
    """
    if axis is None:
        axes = list(range(dat.ndim))
    elif isinstance(axis, int):
        axes = [axis]
    else:
        axes = list(axis)
    axes = sorted({a % dat.ndim if dat.ndim else a for a in axes}, reverse=True)
    result = dat
    for a in axes:
        result = numpy_reduce_func(result, axis=a, keepdims=True)
    if not keepdims:
        result = np.squeeze(result, axis=tuple(axes)) if axes else result
    return result


@contextlib.contextmanager
def environment(*args: Any) -> Iterator[None]:
    """Set environment variables for the body of a ``with`` block, then restore
    them (also when the body raises).

    Takes ``name, value`` or one dict ``{name: value}``; a value of None unsets
    the variable. (symgrad reads most of its settings once, at import.)

    >>> with environment("SYMGRAD_DOCTEST_VAR", "1"):
    ...     os.environ["SYMGRAD_DOCTEST_VAR"]
    '1'
    >>> "SYMGRAD_DOCTEST_VAR" in os.environ
    False
    """
    if len(args) == 2:
        settings = {args[0]: args[1]}
    elif len(args) == 1 and isinstance(args[0], Mapping):
        settings = dict(args[0])
    else:
        raise ValueError("environment() takes (name, value) or a dict of name -> value")
    saved = {name: os.environ.get(name) for name in settings}
    try:
        _set_environment(settings)
        yield
    finally:
        _set_environment(saved)


def _set_environment(settings: Mapping[str, str | None]) -> None:
    for name, value in settings.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)


# ---------------------------------------------------------------------------
# random data (numpy's global generator, as MXNet draws)
# ---------------------------------------------------------------------------


def _rand_shape(dims: Sequence[int], allow_zero_size: bool) -> tuple[int, ...]:
    low = 0 if allow_zero_size else 1
    return tuple(int(np.random.randint(low, d + 1)) for d in dims)


def rand_shape_2d(dim0: int = 10, dim1: int = 10, allow_zero_size: bool = False) -> tuple:
    """A random 2-d shape, each size in ``[1, dim]`` (``[0, dim]`` with
    ``allow_zero_size``)."""
    return _rand_shape([dim0, dim1], allow_zero_size)


def rand_shape_3d(
    dim0: int = 10, dim1: int = 10, dim2: int = 10, allow_zero_size: bool = False
) -> tuple:
    """A random 3-d shape, each size in ``[1, dim]`` (``[0, dim]`` with
    ``allow_zero_size``)."""
    return _rand_shape([dim0, dim1, dim2], allow_zero_size)


def rand_shape_nd(num_dim: int, dim: int = 10, allow_zero_size: bool = False) -> tuple:
    """A random ``num_dim``-d shape, each size in ``[1, dim]`` (``[0, dim]``
    with ``allow_zero_size``).

    >>> np.random.seed(0); rand_shape_nd(3, 5, allow_zero_size=True)
    (4, 5, 0)
    """
    low = 0 if allow_zero_size else 1
    return tuple(int(d) for d in np.random.randint(low, dim + 1, size=num_dim))


def rand_ndarray(
    shape: Any,
    stype: str = "default",
    density: float | None = None,
    dtype: Any = None,
    modifier_func: Callable | None = None,
    shuffle_csr_indices: bool = False,
    distribution: str | None = None,
    ctx: Context | None = None,
) -> NDArray:
    """A dense NDArray of standard normal draws (``np.random.normal``), cast to
    ``dtype`` (float32 by default).

    As in MXNet, ``density``, ``modifier_func``, ``distribution`` and
    ``shuffle_csr_indices`` only concern sparse storage; ``row_sparse`` and
    ``csr`` storage are not supported by symgrad and raise MXNetError.
    """
    if stype != "default":
        raise MXNetError(
            f"rand_ndarray(stype={stype!r}): symgrad has dense storage only; "
            "row_sparse and csr arrays are not supported"
        )
    _context.check_context(ctx)
    dtype = default_dtype() if dtype is None else dtype
    # drawn in float64, stored as float32, then cast: MXNet's numbers for every dtype
    return nd.array(np.random.normal(size=shape), dtype=np.float32).astype(dtype)


def random_arrays(*shapes: Any) -> np.ndarray | list[np.ndarray]:
    """float32 numpy arrays of standard normal draws, one per shape (the array
    itself for one shape).

    >>> [a.shape for a in random_arrays((2, 3), (4,))]
    [(2, 3), (4,)]
    """
    arrays = [np.array(np.random.normal(size=s)).astype(default_dtype()) for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


# ---------------------------------------------------------------------------
# checking symbols
# ---------------------------------------------------------------------------


def _as_dtype(value: Any, dtype: Any) -> np.ndarray:
    value = _numpy(value)
    return value if isinstance(dtype, str) and dtype == "asnumpy" else value.astype(dtype)


def _parse_location(sym: Any, location: Any, ctx: Any, dtype: Any = np.float32) -> dict:
    """``location`` (a list in ``list_arguments`` order, or a dict by name) as a
    dict of NDArrays of ``dtype`` ("asnumpy": each array's own dtype)."""
    names = sym.list_arguments()
    if isinstance(location, Mapping):
        if set(location) != set(names):
            raise ValueError(
                "Symbol arguments and keys of the given location do not match."
                f"symbol args:{set(names)}, location.keys():{set(location)}"
            )
        pairs = [(n, location[n]) for n in names]
    else:
        if len(location) != len(names):
            raise ValueError(
                f"location has {len(location)} arrays; the symbol has {len(names)} "
                f"arguments {names}"
            )
        pairs = list(zip(names, location))
    return {n: nd.array(_as_dtype(v, dtype), dtype=_as_dtype(v, dtype).dtype) for n, v in pairs}


def _parse_aux_states(sym: Any, aux_states: Any, ctx: Any, dtype: Any = np.float32) -> dict:
    """``aux_states`` (list in ``list_auxiliary_states`` order, or dict) as NDArrays."""
    names = sym.list_auxiliary_states()
    if aux_states is None:
        return {}
    if isinstance(aux_states, Mapping):
        if set(aux_states) != set(names):
            raise ValueError(
                "Symbol aux_states names and given aux_states do not match."
                f"symbol aux_names:{set(names)}, aux_states.keys:{set(aux_states)}"
            )
        pairs = [(n, aux_states[n]) for n in names]
    else:
        pairs = list(zip(names, aux_states))
    return {n: nd.array(_as_dtype(v, dtype), dtype=_as_dtype(v, dtype).dtype) for n, v in pairs}


def _grad_reqs(sym: Any, grad_req: Any) -> dict[str, str]:
    names = sym.list_arguments()
    if isinstance(grad_req, str):
        return {n: grad_req for n in names}
    if isinstance(grad_req, Mapping):
        return {n: grad_req.get(n, "null") for n in names}
    return dict(zip(names, grad_req))


def _by_output(sym: Any, values: Any) -> list:
    if isinstance(values, Mapping):
        return [values[name] for name in sym.list_outputs()]
    return list(values)


def _bind(sym: Any, args: dict, aux: dict, grads: dict | None = None, reqs: Any = "null"):
    return sym.bind(default_context(), args, args_grad=grads, grad_req=reqs, aux_states=aux)


def simple_forward(
    sym: Any, ctx: Context | None = None, is_train: bool = False, **inputs: Any
) -> Any:
    """The outputs of ``sym`` on the numpy arrays ``inputs`` (by argument name),
    as numpy arrays: the array itself for one output, else a list.

    >>> import symgrad as mx
    >>> x = mx.sym.var("x")
    >>> simple_forward(x * x, x=np.array([1.0, 2.0]))
    array([1., 4.], dtype=float32)
    """
    _context.check_context(ctx)
    args = {n: nd.array(v) for n, v in inputs.items()}
    executor = sym.bind(ctx or default_context(), args)
    outputs = [o.asnumpy() for o in executor.forward(is_train=is_train)]
    return outputs[0] if len(outputs) == 1 else outputs


def check_symbolic_forward(
    sym: Any,
    location: Any,
    expected: Any,
    rtol: float | None = None,
    atol: float | None = None,
    aux_states: Any = None,
    ctx: Context | None = None,
    equal_nan: bool = False,
    dtype: Any = np.float32,
) -> list[NDArray]:
    """Compare the outputs of ``sym`` at ``location`` with ``expected``.

    ``location`` holds every argument (list in ``list_arguments`` order or dict
    by name), ``expected`` every output (list, or dict by ``list_outputs``
    name); arrays are cast to ``dtype`` ("asnumpy": kept as given). Each output
    is compared with :func:`assert_almost_equal` (``expected`` as ``a``),
    named ``EXPECTED_<output>``/``FORWARD_<output>``.

    Returns
    -------
    list of NDArray
        The executor's outputs.
    """
    _context.check_context(ctx)
    args = _parse_location(sym, location, ctx, dtype)
    aux = _parse_aux_states(sym, aux_states, ctx, dtype)
    executor = _bind(sym, args, aux)
    outputs = executor.forward(is_train=False)
    for name, want, got in zip(sym.list_outputs(), _by_output(sym, expected), outputs):
        assert_almost_equal(
            want,
            got.asnumpy(),
            rtol,
            atol,
            (f"EXPECTED_{name}", f"FORWARD_{name}"),
            equal_nan=equal_nan,
        )
    return outputs


def check_symbolic_backward(
    sym: Any,
    location: Any,
    out_grads: Any,
    expected: Any,
    rtol: float | None = None,
    atol: float | None = None,
    aux_states: Any = None,
    grad_req: Any = "write",
    ctx: Context | None = None,
    grad_stypes: Any = None,
    equal_nan: bool = False,
    dtype: Any = np.float32,
) -> dict[str, NDArray]:
    """Compare the gradients of ``sym`` at ``location`` (head gradients
    ``out_grads``) with ``expected``.

    ``expected`` is a list in ``list_arguments`` order or a dict by name (only
    those names are checked); ``grad_req`` is a string, a list or a dict
    (``'write'``, ``'add'``, ``'null'``; absent from a dict means ``'null'``).
    Gradient arrays start from random values, so ``'add'`` is checked as
    ``expected + start`` and ``'null'`` arguments are not compared. Names in
    messages: ``EXPECTED_<arg>``/``BACKWARD_<arg>``.

    Returns
    -------
    dict of str to NDArray
        The gradient arrays of the names in ``expected``.
    """
    _context.check_context(ctx)
    if grad_stypes and any(s != "default" for s in dict(grad_stypes).values()):
        raise MXNetError("check_symbolic_backward: symgrad has dense gradients only")
    args = _parse_location(sym, location, ctx, dtype)
    aux = _parse_aux_states(sym, aux_states, ctx, dtype)
    names = sym.list_arguments()
    if not isinstance(expected, Mapping):
        expected = dict(zip(names, expected))
    reqs = _grad_reqs(sym, grad_req)
    starts = {n: np.random.normal(size=args[n].shape).astype(args[n].dtype) for n in names}
    grads = {n: nd.array(starts[n], dtype=starts[n].dtype) for n in names}
    executor = _bind(sym, args, aux, grads, reqs)
    executor.forward(is_train=True)
    if out_grads is not None:
        heads = _by_output(sym, out_grads) if isinstance(out_grads, Mapping) else out_grads
        if not isinstance(heads, (list, tuple)):
            heads = [heads]
        out_grads = [nd.array(_as_dtype(g, dtype), dtype=_as_dtype(g, dtype).dtype) for g in heads]
    executor.backward(out_grads)
    for name, want in expected.items():
        if reqs[name] == "null":
            continue
        want = _numpy(want)
        if reqs[name] == "add":
            want = want + starts[name]
        assert_almost_equal(
            want,
            grads[name].asnumpy(),
            rtol,
            atol,
            (f"EXPECTED_{name}", f"BACKWARD_{name}"),
            equal_nan=equal_nan,
        )
    return {name: grads[name] for name in expected}


def _projected_sum(outputs: Sequence[NDArray], projections: Sequence[np.ndarray | None]) -> float:
    # accumulate in float64: the step is small and the outputs' rounding must not swamp it
    return float(
        sum(
            np.sum(o.asnumpy().astype(np.float64) * p)
            for o, p in zip(outputs, projections)
            if p is not None
        )
    )


def _central_differences(
    executor: Any,
    names: Sequence[str],
    aux_start: Mapping[str, np.ndarray],
    eps: float,
    is_train: bool,
    projections: Sequence[np.ndarray | None],
    out_dtype: Any = None,
) -> dict[str, np.ndarray]:
    """d<projections, outputs>/d(each element of each named argument), by
    central differences of step ``eps`` in the arguments' own dtype."""

    def value() -> float:
        # auxiliary states (BatchNorm's moving statistics) restart every evaluation
        for n, start in aux_start.items():
            executor.aux_dict[n][:] = start
        return _projected_sum(executor.forward(is_train=is_train), projections)

    result = {}
    for name in names:
        data = executor.arg_dict[name]
        start = data.asnumpy().copy()
        grad = np.zeros(start.shape, np.float64)
        for i in range(start.size):
            moved = start.copy()
            moved.flat[i] = start.flat[i] + eps / 2
            data[:] = moved
            upper = value()
            moved.flat[i] = start.flat[i] - eps / 2
            data[:] = moved
            grad.flat[i] = (upper - value()) / eps
        data[:] = start
        result[name] = grad.astype(out_dtype or start.dtype)
    value()
    return result


def numeric_grad(
    executor: Any,
    location: Any,
    aux_states: Any = None,
    eps: float = 1e-4,
    use_forward_train: bool = True,
    dtype: Any = np.float32,
) -> dict[str, np.ndarray]:
    """The gradient of the sum of the executor's first output with respect to
    each argument in ``location`` (a dict by name, or a list in ``arg_dict``
    order), by central differences ``(f(x + eps/2) - f(x - eps/2)) / eps`` per
    element, computed in ``dtype``.

    >>> import symgrad as mx
    >>> x = mx.sym.var("x")
    >>> exe = (x * x).simple_bind(mx.cpu(), x=(2,))
    >>> numeric_grad(exe, {"x": np.array([1.0, 2.0])}, eps=1e-2, dtype=np.float64)["x"].round(4)
    array([2., 4.])
    """
    if not isinstance(location, Mapping):
        location = dict(zip(executor.arg_dict, location))
    for name, value in location.items():
        executor.arg_dict[name][:] = _numpy(value).astype(dtype)
    if isinstance(aux_states, Mapping):
        aux = {n: _numpy(v).astype(dtype) for n, v in aux_states.items()}
    else:
        aux = dict(zip(executor.aux_dict, [_numpy(v).astype(dtype) for v in aux_states or []]))
    for name, value in aux.items():
        executor.aux_dict[name][:] = value
    outputs = executor.forward(is_train=use_forward_train)
    projections = [np.ones(outputs[0].shape)] + [None] * (len(outputs) - 1)
    return _central_differences(
        executor, list(location), aux, eps, use_forward_train, projections, dtype
    )


def check_numeric_gradient(
    sym: Any,
    location: Any,
    aux_states: Any = None,
    numeric_eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    grad_nodes: Any = None,
    use_forward_train: bool = True,
    ctx: Context | None = None,
    grad_stype_dict: Any = None,
    dtype: Any = np.float32,
) -> None:
    """Check the gradient of ``sym`` against central differences, in ``dtype``.

    A random projection ``p`` (uniform in [0, 1), one array per output) makes
    the outputs one scalar ``f = sum(p * outputs)``; the executor's backward
    with head gradients ``p`` must match ``df/dx`` by central differences of
    step ``numeric_eps`` (:func:`default_numeric_eps` of ``dtype`` by default)
    for each argument in ``grad_nodes`` (all arguments by default; a list of
    names, or a dict of name to grad_req). The comparison is
    :func:`assert_almost_equal` with names ``NUMERICAL_<arg>``,
    ``BACKWARD_<arg>`` and the dtype's default tolerances unless given.

    Parameters
    ----------
    sym : Symbol
        The symbol to check.
    location : list or dict
        Values of all the arguments (``list_arguments`` order, or by name).
    aux_states : list or dict, optional
        Values of the auxiliary states.
    numeric_eps : float, optional
        Finite-difference step.
    rtol, atol : float, optional
        Tolerances.
    grad_nodes : list or dict, optional
        Arguments to check.
    use_forward_train : bool
        Run the forward in training mode.
    ctx : Context, optional
        Must be a CPU context.
    grad_stype_dict : dict, optional
        Only ``'default'`` (dense) gradients are supported.
    dtype : numpy dtype
        The dtype the symbol is run in.
    """
    _context.check_context(ctx)
    if grad_stype_dict and any(s != "default" for s in dict(grad_stype_dict).values()):
        raise MXNetError("check_numeric_gradient: symgrad has dense gradients only")
    numeric_eps = default_numeric_eps()[np.dtype(dtype)] if numeric_eps is None else numeric_eps
    args = _parse_location(sym, location, ctx, dtype)
    aux = _parse_aux_states(sym, aux_states, ctx, dtype)
    names = sym.list_arguments()
    if grad_nodes is None:
        reqs = {n: "write" for n in names}
    elif isinstance(grad_nodes, Mapping):
        reqs = dict(grad_nodes)
    else:
        reqs = {n: "write" for n in grad_nodes}
    for name in reqs:
        if name not in args:
            raise KeyError(name)
    checked = [n for n in names if reqs.get(n, "null") != "null"]
    starts = {n: np.random.normal(size=args[n].shape).astype(args[n].dtype) for n in checked}
    grads = {n: nd.array(starts[n], dtype=starts[n].dtype) for n in checked}
    executor = _bind(sym, args, aux, grads, {n: reqs.get(n, "null") for n in names})
    aux_start = {n: a.asnumpy().copy() for n, a in aux.items()}
    outputs = executor.forward(is_train=use_forward_train)
    projections = [np.random.uniform(size=o.shape) for o in outputs]
    executor.backward([nd.array(p, dtype=o.dtype) for p, o in zip(projections, outputs)])
    symbolic = {n: grads[n].asnumpy() - (starts[n] if reqs[n] == "add" else 0) for n in checked}
    numeric = _central_differences(
        executor, checked, aux_start, numeric_eps, use_forward_train, projections
    )
    for name in checked:
        assert_almost_equal(
            numeric[name],
            symbolic[name],
            rtol,
            atol,
            (f"NUMERICAL_{name}", f"BACKWARD_{name}"),
        )


def _all_types(sym: Any, entry: Mapping) -> dict | None:
    """The entry's ``type_dict`` completed by type inference (weights take the
    data's dtype, as MXNet infers them)."""
    given = entry.get("type_dict")
    if not given:
        return None
    arg_types, _, aux_types = sym.infer_type(**given)
    names = sym.list_arguments() + sym.list_auxiliary_states()
    return {n: t for n, t in zip(names, list(arg_types) + list(aux_types)) if t is not None}


def check_consistency(
    sym: Any,
    ctx_list: Sequence[Mapping],
    scale: float = 1.0,
    grad_req: Any = "write",
    arg_params: Mapping | None = None,
    aux_params: Mapping | None = None,
    rtol: Any = None,
    atol: Any = None,
    raise_on_err: bool = True,
    ground_truth: Mapping | None = None,
    equal_nan: bool = False,
    use_uniform: bool = False,
    rand_type: Any = np.float64,
) -> dict[str, np.ndarray]:
    """Check that ``sym`` gives the same outputs and gradients in every
    configuration of ``ctx_list`` (symgrad: CPU contexts, differing in dtypes).

    Each entry of ``ctx_list`` holds ``'ctx'``, the input shapes by argument
    name and optionally ``'type_dict'``. The inputs are drawn once (normal of
    standard deviation ``scale``, or uniform in ``[-scale, scale]`` with
    ``use_uniform``; cast to ``rand_type``), overridden by ``arg_params`` and
    ``aux_params``; every configuration runs forward (training) and backward
    with the same random head gradients, and is compared with the most precise
    one (or with ``ground_truth``) at the tolerances of its own dtype.

    Returns
    -------
    dict of str to np.ndarray
        The reference: outputs by ``list_outputs`` name and gradients by
        argument name.
    """
    syms = list(sym) if isinstance(sym, (list, tuple)) else [sym] * len(ctx_list)
    for entry in ctx_list:
        _context.check_context(entry.get("ctx"))
    executors = []
    for s, entry in zip(syms, ctx_list):
        shapes = {k: v for k, v in entry.items() if k not in ("ctx", "type_dict")}
        executors.append(
            s.simple_bind(cpu(), grad_req=grad_req, type_dict=_all_types(s, entry), **shapes)
        )
    first = executors[0]
    draw = (
        (lambda shape: np.random.uniform(-scale, scale, size=shape))
        if use_uniform
        else (lambda shape: np.random.normal(scale=scale, size=shape))
    )
    args = {n: np.asarray(draw(a.shape)).astype(rand_type) for n, a in first.arg_dict.items()}
    aux = {n: np.asarray(draw(a.shape)).astype(rand_type) for n, a in first.aux_dict.items()}
    args.update({n: _numpy(v) for n, v in (arg_params or {}).items()})
    aux.update({n: _numpy(v) for n, v in (aux_params or {}).items()})
    results = []
    heads = None
    for s, executor in zip(syms, executors):
        executor.copy_params_from(args, aux)
        outputs = executor.forward(is_train=True)
        if heads is None:
            heads = [np.random.normal(scale=scale, size=o.shape) for o in outputs]
        if any(r != "null" for r in _grad_reqs(s, grad_req).values()):
            executor.backward([nd.array(h, dtype=o.dtype) for h, o in zip(heads, outputs)])
        found = dict(zip(s.list_outputs(), (o.asnumpy() for o in outputs)))
        found.update({n: g.asnumpy() for n, g in executor.grad_dict.items()})
        results.append(found)
    precision = [max(np.dtype(v.dtype).itemsize for v in r.values()) for r in results]
    reference = ground_truth or results[int(np.argmax(precision))]
    reference = {k: _numpy(v) for k, v in reference.items()}
    for found in results:
        for name, want in reference.items():
            if name not in found:
                continue
            try:
                got = found[name]
                assert_almost_equal(
                    got,
                    want.astype(got.dtype),
                    get_tolerance(got, rtol, default_rtols()),
                    get_tolerance(got, atol, default_atols()),
                    (name, "reference"),
                    equal_nan=equal_nan,
                )
            except AssertionError as error:
                if raise_on_err:
                    raise
                print(error)
    return reference


# ---------------------------------------------------------------------------
# smaller helpers of MXNet's test suites
# ---------------------------------------------------------------------------


def get_etol(etol: float | None = None) -> float:
    """``etol``, or the default allowed share of mismatches: 0."""
    return 0 if etol is None else etol


def assert_almost_equal_with_err(
    a: Any,
    b: Any,
    rtol: float | None = None,
    atol: float | None = None,
    etol: float | None = None,
    names: tuple[str, str] = ("a", "b"),
    equal_nan: bool = False,
    mismatches: tuple[int, int] = (10, 10),
) -> None:
    """:func:`assert_almost_equal`, passing while at most a share ``etol`` of the
    elements is out of tolerance."""
    etol = get_etol(etol)
    if etol > 0:
        x, y = _numpy(a), _numpy(b)
        rtol_ = _pair_tolerance(x, y, rtol, default_rtols())
        atol_ = _pair_tolerance(x, y, atol, default_atols())
        with np.errstate(all="ignore"):
            bad = ~np.isclose(x, y, rtol=rtol_, atol=atol_, equal_nan=equal_nan)
        if bad.size == 0 or bad.mean() <= etol:
            return
    assert_almost_equal(a, b, rtol, atol, names, equal_nan, mismatches=mismatches)


def assert_almost_equal_ignore_nan(
    a: Any,
    b: Any,
    rtol: float | None = None,
    atol: float | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> None:
    """:func:`assert_almost_equal` where a NaN in either array counts as equal
    (both elements are compared as 0); the inputs are not changed.

    >>> assert_almost_equal_ignore_nan(np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, np.nan]))
    """
    x, y = np.array(_numpy(a), copy=True), np.array(_numpy(b), copy=True)
    either = np.isnan(x) | np.isnan(y)
    x[either], y[either] = 0, 0
    assert_almost_equal(x, y, rtol, atol, names)


def same_array(array1: NDArray, array2: NDArray) -> bool:
    """Whether the two NDArrays share memory (writing one changes the other)."""

    def buffer(array: Any) -> np.ndarray:
        return array._data if isinstance(array, NDArray) else np.asarray(array)

    return bool(np.shares_memory(buffer(array1), buffer(array2)))


def assign_each(the_input: np.ndarray, function: Callable) -> np.ndarray:
    """``function`` applied to each element (the result's dtype is the function's).

    >>> assign_each(np.array([1, 2]), lambda v: v / 2)
    array([0.5, 1. ])
    """
    return np.vectorize(function)(the_input)


def assign_each2(input1: np.ndarray, input2: np.ndarray, function: Callable) -> np.ndarray:
    """``function`` applied to each pair of elements."""
    return np.vectorize(function)(input1, input2)


def collapse_sum_like(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``a`` summed over the axes that ``shape`` broadcasts along, to ``shape``.

    >>> collapse_sum_like(np.ones((2, 3, 4)), (3, 1)).ravel().tolist()
    [8.0, 8.0, 8.0]
    """
    shape = tuple(shape)
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(shape) if size == 1 and a.shape[lead + i] != 1
    )
    return np.sum(a, axis=axes).reshape(shape) if axes else a.reshape(shape)


def create_vector(size: int, dtype: Any = np.int64) -> NDArray:
    """``0, 1, ..., size - 1`` as an NDArray."""
    return nd.array(np.arange(size, dtype=dtype), dtype=dtype)


def create_2d_tensor(rows: int, columns: int, dtype: Any = np.int64) -> NDArray:
    """A ``rows`` x ``columns`` NDArray whose row ``i`` holds ``i``."""
    values = np.repeat(np.arange(rows, dtype=dtype)[:, None], columns, axis=1)
    return nd.array(values, dtype=dtype)


def compare_ndarray_tuple(
    t1: Any, t2: Any, rtol: float | None = None, atol: float | None = None
) -> None:
    """Compare two (nested) tuples of arrays element by element; None is skipped."""
    if t1 is None or t2 is None:
        return
    if isinstance(t1, tuple):
        for s1, s2 in zip(t1, t2):
            compare_ndarray_tuple(s1, s2, rtol, atol)
    else:
        assert_almost_equal(t1, t2, rtol=rtol, atol=atol)


def list_gpus() -> range:
    """The GPUs symgrad can use: none."""
    return range(0)


def is_op_runnable() -> bool:
    """Whether ops run in this configuration: always, on the CPU."""
    return True


def has_tvm_ops() -> bool:
    """Whether TVM-generated operators are present: never in symgrad."""
    return False


@contextlib.contextmanager
def discard_stderr() -> Iterator[None]:
    """Discard what is written to the process's standard error (file descriptor
    2, so native libraries' messages too) inside the block."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class DummyIter:
    """A data iterator that returns the first batch of ``real_iter`` forever
    (for timing a model without the cost of its data)."""

    def __init__(self, real_iter: Any):
        self.real_iter = real_iter
        self.provide_data = getattr(real_iter, "provide_data", None)
        self.provide_label = getattr(real_iter, "provide_label", None)
        self.batch_size = getattr(real_iter, "batch_size", None)
        self.the_batch = next(iter(real_iter))

    def __iter__(self) -> DummyIter:
        return self

    def reset(self) -> None:
        """Nothing to reset."""

    def next(self) -> Any:
        """The first batch again."""
        return self.the_batch

    __next__ = next


def check_speed(
    sym: Any,
    location: Mapping | None = None,
    ctx: Context | None = None,
    N: int = 20,
    grad_req: Any = None,
    typ: str = "whole",
    **kwargs: Any,
) -> float:
    """The mean time in seconds of one run of ``sym`` over ``N`` runs (after one
    warm-up): ``typ='whole'`` a training forward and backward, ``'forward'`` a
    prediction forward. Inputs come from ``location`` (a dict of arrays) or are
    drawn (normal) for the shapes given as keyword arguments."""
    import time

    _context.check_context(ctx)
    if location is None:
        executor = sym.simple_bind(cpu(), grad_req=grad_req or "write", **kwargs)
        location = {n: np.random.normal(size=a.shape) for n, a in executor.arg_dict.items()}
    args = {n: nd.array(_numpy(v)) for n, v in location.items()}
    reqs = grad_req or "write"
    grads = {n: nd.zeros(a.shape, dtype=a.dtype) for n, a in args.items()}
    executor = sym.bind(cpu(), args, args_grad=grads, grad_req=reqs)

    def once() -> None:
        if typ == "whole":
            outputs = executor.forward(is_train=True)
            executor.backward([o.copy() for o in outputs])
        elif typ == "forward":
            executor.forward(is_train=False)
        else:
            raise ValueError(f"check_speed: typ must be 'whole' or 'forward', not {typ!r}")
        for output in executor.outputs:
            output.wait_to_read()

    once()
    start = time.perf_counter()
    for _ in range(N):
        once()
    return (time.perf_counter() - start) / N


# ---------------------------------------------------------------------------
# testing random generators (chi-square), as MXNet's random-op tests do
# ---------------------------------------------------------------------------


def gen_buckets_probs_with_ppf(ppf: Callable, nbuckets: int) -> tuple[list, list]:
    """``nbuckets`` equally likely buckets ``(low, high)`` of a continuous
    distribution given by its quantile function ``ppf``, and their probabilities.

    >>> gen_buckets_probs_with_ppf(lambda q: q, 2)
    ([(0.0, 0.5), (0.5, 1.0)], [0.5, 0.5])
    """
    edges = [ppf(i / nbuckets) for i in range(nbuckets + 1)]
    return [(edges[i], edges[i + 1]) for i in range(nbuckets)], [1.0 / nbuckets] * nbuckets


def _bucket_counts(samples: np.ndarray, buckets: Sequence) -> np.ndarray:
    if isinstance(buckets[0], (tuple, list)):  # continuous: [low, high) intervals
        return np.array([np.sum((samples >= lo) & (samples < hi)) for lo, hi in buckets])
    return np.array([np.sum(samples == value) for value in buckets])  # discrete values


def chi_square_check(
    generator: Callable, buckets: Sequence, probs: Sequence[float], nsamples: int = 1000000
) -> tuple[float, np.ndarray, np.ndarray]:
    """Pearson's chi-square test of ``generator(n)`` (n samples) against the
    bucket probabilities.

    Returns
    -------
    tuple
        The p-value, the observed counts and the expected counts.
    """
    from scipy import stats

    samples = np.asarray(_numpy(generator(nsamples))).ravel()
    observed = _bucket_counts(samples, buckets)
    expected = np.asarray(probs, dtype=np.float64) * nsamples
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, len(buckets) - 1))
    return p_value, observed, expected


def verify_generator(
    generator: Callable,
    buckets: Sequence,
    probs: Sequence[float],
    nsamples: int = 1000000,
    nrepeat: int = 5,
    success_rate: float = 0.2,
    alpha: float = 0.05,
) -> list[float]:
    """Run :func:`chi_square_check` ``nrepeat`` times; fail (AssertionError) if
    fewer than a share ``success_rate`` of the runs have a p-value above
    ``alpha``. Returns the p-values."""
    p_values = [chi_square_check(generator, buckets, probs, nsamples)[0] for _ in range(nrepeat)]
    passed = sum(p > alpha for p in p_values)
    if passed < success_rate * nrepeat:
        raise AssertionError(
            f"the generator fails the chi-square test: {passed} of {nrepeat} runs have "
            f"p > {alpha} (p-values {p_values})"
        )
    return p_values


def mean_check(generator: Callable, mu: float, sigma: float, nsamples: int = 1000000) -> bool:
    """Whether the mean of ``generator(nsamples)`` is within three standard
    errors (``3 sigma / sqrt(n)``) of ``mu``."""
    samples = np.asarray(_numpy(generator(nsamples)), dtype=np.float64)
    return bool(abs(samples.mean() - mu) < 3 * sigma / np.sqrt(nsamples))


def var_check(generator: Callable, sigma: float, nsamples: int = 1000000) -> bool:
    """Whether the variance of ``generator(nsamples)`` is within three standard
    errors of ``sigma**2`` (normal-theory standard error ``sigma**2 sqrt(2/(n-1))``)."""
    samples = np.asarray(_numpy(generator(nsamples)), dtype=np.float64)
    return bool(abs(samples.var(ddof=1) - sigma**2) < 3 * sigma**2 * np.sqrt(2 / (nsamples - 1)))
