"""Special values through every elementwise op: compiled equals interpreted.

Generated from the registry (issue 20): every op of kind ``elemwise`` with a
scalar template, in float32 and float64, is applied to NaN, +-inf, +-0, the
smallest normal and subnormal numbers, the largest finite numbers and a few
ordinary values (every pair of them for two-input ops), and so is its gradient.
Ops with a float ``scalar`` attribute (``x + s``, ``x ** s`` ...) are also run
with the special values as the scalar. The fused kernels must give what the
numpy interpreter gives: NaN in the same places, the same infinities, the same
sign of zero, and the other values within rounding. An op added to the registry
is covered with no edit here, with or without a TestSpec.

All cases of one dtype share one program (one numba compilation), with each
case's value and gradients as separate outputs. A program that numba fails to
compile (and that would silently run on the interpreter) fails the test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad import op_testing as tu
from symgrad_compiler import (
    Entry,
    ProgramGraph,
    compile_graph,
    differentiate,
    make_node,
    registry,
    variable,
)
from symgrad_compiler.registry import as_float


def _special(dtype: type) -> np.ndarray:
    info = np.finfo(dtype)
    return np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            info.tiny,
            -info.tiny,
            info.smallest_subnormal,
            info.max,
            -info.max,
            1.0,
            -1.0,
            0.5,
            2.0,
            -3.0,
        ],
        dtype=dtype,
    )


# the values a float ``scalar`` attribute is also given (numpy special-cases some
# exponents, and -0.0 and NaN must reach the kernel as themselves)
SPECIAL_SCALARS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-310, 1e308)


def _test_attrs(opdef: compiler.OpDef) -> dict | None:
    """The attrs an op is run with: its TestSpec's, else its defaults; None if it
    needs attrs no one gave."""
    if opdef.test is not None:
        return dict(opdef.test.attrs)
    if any(spec.default is registry.REQUIRED for spec in opdef.attrs.values()):
        return None
    return {}


def elementwise_ops() -> list[compiler.OpDef]:
    """Every registered elementwise op with a scalar template that takes its
    inputs with one shape and can be called (aliases folded)."""
    found = []
    for opdef in tu.registered_ops():
        if opdef.kind != "elemwise" or opdef.scalar is None or opdef.variadic:
            continue
        if opdef.shape_only or _test_attrs(opdef) is None:
            continue
        found.append(opdef)
    return found


OPS = elementwise_ops()


def cases(special_scalars: bool = False) -> list[tuple[str, compiler.OpDef, dict]]:
    """(label, op, attrs): each op with its test attrs; or, with
    ``special_scalars``, each op with a float ``scalar`` attribute once per
    special scalar."""
    found = []
    for opdef in OPS:
        attrs = _test_attrs(opdef)
        if not special_scalars:
            found.append((opdef.name, opdef, attrs))
        elif opdef.attrs.get("scalar") is not None and opdef.attrs["scalar"].parse is as_float:
            for scalar in SPECIAL_SCALARS:
                found.append(
                    (f"{opdef.name}(scalar={scalar!r})", opdef, {**attrs, "scalar": scalar})
                )
    return found


def _inputs(opdef: compiler.OpDef, attrs: dict, dtype: type) -> list[np.ndarray]:
    """The special values, or every pair of them for two inputs (three: the
    first is a condition)."""
    count = len(opdef.input_names(opdef.canonical_attrs(attrs)))
    values = _special(dtype)
    if count == 1:
        return [values]
    first = np.repeat(values, len(values))
    second = np.tile(values, len(values))
    if count == 2:
        return [first, second]
    condition = np.tile(np.array([0.0, 1.0, np.nan], dtype=dtype), len(first))[: len(first)]
    return [condition, first, second][:count]


def _graph(
    dtype: type, special_scalars: bool = False
) -> tuple[ProgramGraph, list[np.ndarray], list[tuple[str, list]]]:
    """One program with, per case, its value and the gradient of each floating
    input (head gradient ones); per output, its name and the case's inputs."""
    variables, values, outputs, described = [], [], [], []
    for label, opdef, attrs in cases(special_scalars):
        arrays = _inputs(opdef, attrs, dtype)
        nodes = [variable(a.shape, a.dtype, name=f"{label}_in{i}") for i, a in enumerate(arrays)]
        try:
            node = make_node(opdef, [Entry(n, 0) for n in nodes], attrs)
        except compiler.GraphError:
            continue  # an op that refuses this dtype
        variables += nodes
        values += arrays
        out = Entry(node, 0)
        outputs.append(out)
        described.append((label, arrays))
        if not opdef.differentiable or opdef.grad is None:
            continue
        seed = variable(out.shape, out.dtype, name=f"{label}_seed")
        variables.append(seed)
        values.append(np.ones(out.shape, out.dtype))
        chosen = opdef.test.wrt if opdef.test is not None else None
        wrt = [i for i in range(len(arrays)) if chosen is None or i in chosen]
        grads = differentiate([out], [Entry(seed, 0)], [Entry(nodes[i], 0) for i in wrt])
        for i, g in zip(wrt, grads):
            if g is not None:
                outputs.append(g)
                described.append((f"d {label} / d input {i}", arrays))
    return ProgramGraph(variables, outputs), values, described


def _mismatches(got: np.ndarray, want: np.ndarray, dtype: type) -> np.ndarray:
    """Positions where ``got`` is not ``want``: NaN against not NaN, a different
    infinity or sign of zero, or finite values apart by more than rounding can
    explain (gradients like 1 - tanh(x)^2 lose digits to cancellation)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    nan_differs = np.isnan(got) != np.isnan(want)
    both = ~np.isnan(got) & ~np.isnan(want)
    exact = both & (np.isinf(want) | (want == 0) | np.isinf(got) | (got == 0))
    sign_differs = exact & ((got != want) | (np.signbit(got) != np.signbit(want)))
    close = np.isclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=0.0)
    far = both & ~exact & ~close
    return nan_differs | sign_differs | far


def test_every_elementwise_op_is_covered():
    names = {opdef.name for opdef in OPS}
    # guards the generation against silently testing nothing
    assert {
        "broadcast_maximum",
        "broadcast_minimum",
        "clip",
        "_maximum_scalar",
        "_minimum_scalar",
        "sqrt",
        "arccos",
        "relu",
        "exp",
        "tanh",
        "broadcast_hypot",
        "smooth_l1",
        "_contrib_round_ste",
    } <= names
    assert len(OPS) > 80
    assert len(cases(special_scalars=True)) > 200


def _run_compiled(graph: ProgramGraph, values: list[np.ndarray]) -> list:
    """The numba backend's results, failing if any part of the program fell back
    to the interpreter (a kernel numba cannot compile would otherwise pass)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = compile_graph(graph, "numba")([v.copy() for v in values])
    fallbacks = [str(w.message) for w in caught if "cannot compile" in str(w.message)]
    assert not fallbacks, "\n".join(fallbacks)
    return got


def _check(dtype: type, special_scalars: bool) -> None:
    graph, values, described = _graph(dtype, special_scalars)
    with np.errstate(all="ignore"):
        want = compile_graph(graph, "interpreter")([v.copy() for v in values])
    got = _run_compiled(graph, values)
    failures = []
    for (name, inputs), g, w in zip(described, got, want):
        bad = _mismatches(g, w, dtype)
        if bad.any():
            where = np.flatnonzero(bad)[:4]
            at = ", ".join(
                f"inputs {tuple(float(a[i]) for a in inputs)}: compiled "
                f"{np.asarray(g)[i]!r} interpreted {np.asarray(w)[i]!r}"
                for i in where
            )
            failures.append((name, f"{name} ({int(bad.sum())} positions): {at}"))
    # no exceptions: the kernels carry no fast-math flag that could change a NaN,
    # an infinity or a zero's sign (see vmath.FASTMATH)
    assert not failures, "\n".join(text for _, text in failures)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_compiled_equals_interpreted_on_special_values(dtype, compiled):
    _check(dtype, special_scalars=False)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_compiled_equals_interpreted_with_special_scalars(dtype, compiled):
    # x + s, x ** s, max(x, s) ... with s NaN, +-inf, +-0, subnormal, huge: about
    # 300 cases, a few minutes of numba compilation
    _check(dtype, special_scalars=True)


@pytest.mark.parametrize("op", ["broadcast_maximum", "broadcast_minimum"])
def test_nan_second_operand_propagates(op, compiled):
    from symgrad import autograd, nd

    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = getattr(nd, op)(x, nd.array([np.nan] * 3)) * x
    y.backward()
    assert np.isnan(y.asnumpy()).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda nd, x: nd.maximum(x, np.nan),
        lambda nd, x: nd.minimum(x, np.nan),
        lambda nd, x: nd.clip(x * np.nan, -1.0, 1.0),
    ],
    ids=["maximum_scalar", "minimum_scalar", "clip"],
)
def test_nan_propagates_through_scalar_forms(call, compiled):
    from symgrad import autograd, nd

    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = call(nd, x) * x
    y.backward()
    assert np.isnan(y.asnumpy()).all()


@pytest.mark.parametrize(
    "op, values, want",
    [
        ("sqrt", [0.0, np.inf, 4.0], [np.inf, 0.0, 0.25]),
        ("arccos", [1.0, -1.0, 0.0], [-np.inf, -np.inf, -1.0]),
    ],
)
def test_float32_gradients_at_domain_edges(op, values, want, compiled):
    from symgrad import autograd, nd

    x = nd.array(values, dtype="float32")
    x.attach_grad()
    with autograd.record():
        y = getattr(nd, op)(x)
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), np.array(want, dtype=np.float32))


def test_vmath_mod_and_sign_on_integers_as_numpy():
    import numba

    from symgrad_compiler.backends.numba import vmath as vm

    @numba.njit
    def mod_plus_sign(a, b):
        out = np.empty_like(a)
        for i in range(a.size):
            out[i] = vm.mod(a[i], b[i]) + vm.sign(a[i])
        return out

    a = np.array([-7, 7, 5, 0, -3], dtype=np.int32)
    b = np.array([3, -3, 0, 2, -2], dtype=np.int32)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(mod_plus_sign(a, b), np.mod(a, b) + np.sign(a))
