"""Special values through every elementwise op: compiled equals interpreted.

Generated from the registry (issue 20, item 2): every op of kind ``elemwise``
with a scalar template, in float32 and float64, is applied to NaN, +-inf, +-0,
the smallest normal and subnormal numbers, the largest finite numbers and a few
ordinary values (every pair of them for two-input ops), and so is its gradient.
The fused kernels must give what the numpy interpreter gives: NaN in the same
places, the same infinities, the same sign of zero, and the other values within
rounding. An op added to the registry is covered with no edit here.

All ops of one dtype share one program (one numba compilation), with each op's
value and gradients as separate outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad_compiler import Entry, differentiate, make_node, variable
from symgrad_compiler.lower.runner import compiled_runner
from symgrad_compiler.program import ProgramGraph, interpret_runner
from symgrad import op_testing as tu


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


def elementwise_ops() -> list[compiler.OpDef]:
    """Every registered elementwise op with a scalar template that takes its
    inputs with one shape (aliases folded)."""
    found = []
    for opdef in tu.registered_ops():
        if opdef.kind != "elemwise" or opdef.scalar is None or opdef.variadic:
            continue
        if opdef.test is None or opdef.shape_only:
            continue
        found.append(opdef)
    return found


OPS = elementwise_ops()


def _inputs(opdef: compiler.OpDef, dtype: type) -> tuple[list[np.ndarray], dict]:
    """The op's attrs (from its TestSpec) and its inputs: the special values, or
    every pair of them for two inputs (three: the first is a condition)."""
    attrs = opdef.canonical_attrs(dict(opdef.test.attrs))
    count = len(opdef.input_names(attrs))
    values = _special(dtype)
    if count == 1:
        return [values], attrs
    first = np.repeat(values, len(values))
    second = np.tile(values, len(values))
    if count == 2:
        return [first, second], attrs
    condition = np.tile(np.array([0.0, 1.0, np.nan], dtype=dtype), len(first))[: len(first)]
    return [condition, first, second][:count], attrs


def _graph(dtype: type) -> tuple[ProgramGraph, list[np.ndarray], list[str]]:
    """One program with, per op, its value and the gradient of each floating
    input (head gradient ones), and the names of those outputs."""
    variables, values, outputs, names = [], [], [], []
    for opdef in OPS:
        arrays, attrs = _inputs(opdef, dtype)
        nodes = [
            variable(a.shape, a.dtype, name=f"{opdef.name}_in{i}") for i, a in enumerate(arrays)
        ]
        try:
            node = make_node(opdef, [Entry(n, 0) for n in nodes], attrs)
        except compiler.GraphError:
            continue  # an op that refuses this dtype
        variables += nodes
        values += arrays
        out = Entry(node, 0)
        outputs.append(out)
        names.append(f"{opdef.name}")
        if not opdef.differentiable:
            continue
        seed = variable(out.shape, out.dtype, name=f"{opdef.name}_seed")
        variables.append(seed)
        values.append(np.ones(out.shape, out.dtype))
        wrt = [i for i, a in enumerate(arrays) if opdef.test.wrt is None or i in opdef.test.wrt]
        grads = differentiate([out], [Entry(seed, 0)], [Entry(nodes[i], 0) for i in wrt])
        for i, g in zip(wrt, grads):
            if g is not None:
                outputs.append(g)
                names.append(f"d {opdef.name} / d input {i}")
    return ProgramGraph(variables, outputs), values, names


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
    } <= names
    assert len(OPS) > 60


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_compiled_equals_interpreted_on_special_values(dtype, compiled):
    graph, values, names = _graph(dtype)
    want = interpret_runner(graph)([v.copy() for v in values])
    got = compiled_runner(graph)([v.copy() for v in values])
    failures = []
    for name, g, w in zip(names, got, want):
        bad = _mismatches(g, w, dtype)
        if bad.any():
            where = np.flatnonzero(bad)[:4]
            failures.append(
                f"{name}: at {where.tolist()} compiled {np.asarray(g)[where]} "
                f"interpreted {np.asarray(w)[where]}"
            )
    assert not failures, "\n".join(failures)


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

    from symgrad_compiler.lower import vmath as vm

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
