"""Per-op tests generated from the op registry (STYLE.md, example 11).

Every registered op (aliases folded) gets: a TestSpec or an exemption with a
reason; its shape/dtype rule checked against its numpy implementation in float32
and float64; for differentiable ops a float64 finite-difference gradient check of
every differentiable input, through the compiler directly (up to the spec's
order, on every backend) and through ``mx.nd`` + ``autograd``; for the others,
that they block gradients. The checks themselves live in ``symgrad.op_testing``.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import op_testing as tu
from symgrad_compiler import registry
from symgrad_compiler.ops import random as op_random

# Ops that need no TestSpec, with the reason. Anything else without one fails
# test_every_op_is_tested, so a new op cannot ship untested.
EXEMPT = {
    "_CustomFunction": "its math is a user callback: tested through autograd.Function "
    "in tests/test_autograd_api.py",
    "_CustomFunctionBackward": "the backward half of _CustomFunction (same tests)",
    "Custom": "its math is a user CustomOp: tested through mx.operator in tests/test_custom_op.py",
    "_backward_Custom": "the backward half of Custom (same tests)",
    "_contrib_boolean_mask": "its output length depends on the mask's values, which no "
    "shape rule sees: tested imperatively with finite differences "
    "in tests/test_contrib.py",
    "_foreach": "its body is a traced subgraph: tested through contrib.foreach on "
    "symbols of unknown length in tests/test_control_flow.py",
    "_backward_foreach": "the backward half of _foreach (same tests)",
    "_while_loop": "its cond and func are traced subgraphs: tested through symbolic "
    "contrib.while_loop in tests/test_control_flow.py",
    "_backward_while_loop": "the backward half of _while_loop (same tests)",
    "_cond": "its branches are traced subgraphs: tested through symbolic contrib.cond in "
    "tests/test_control_flow.py",
    "_backward_cond": "the backward half of _cond (same tests)",
    "_contrib_gradientmultiplier": "its gradient is by design not its forward's derivative "
    "(g * scalar): tested in tests/test_contrib.py",
    "_contrib_round_ste": "straight-through: the gradient is g, not round's derivative "
    "(tested in tests/test_contrib.py)",
    "_contrib_sign_ste": "straight-through: the gradient is g, not sign's derivative "
    "(tested in tests/test_contrib.py)",
    "reset_arrays": "no output to check or differentiate (it zeroes its inputs in place): "
    "tested against MXNet 1.9.1 in tests/test_mxnet_op_names.py",
    "_fused": "holds a subgraph made by the fusion pass: the pass tests check that fused "
    "graphs compute the values of the graphs they replace",
}

ALL_OPS = [op.name for op in tu.registered_ops()]
TESTED = [name for name in ALL_OPS if compiler.get_op(name).test is not None]
DIFFERENTIABLE = [name for name in TESTED if compiler.get_op(name).differentiable]
BLOCKING = [name for name in TESTED if not compiler.get_op(name).differentiable]


def test_registry_is_not_empty():
    # Guards the parametrisations below against silently testing nothing.
    assert len(TESTED) > 100 and len(DIFFERENTIABLE) > 80 and len(BLOCKING) > 10


def test_exemptions_are_current():
    stale = sorted(set(EXEMPT) - set(ALL_OPS))
    assert not stale, f"exempted ops that are not registered: {stale}"
    specified = sorted(name for name in EXEMPT if compiler.get_op(name).test is not None)
    assert not specified, f"exempted ops that now have a TestSpec: {specified}"


@pytest.mark.parametrize("name", ALL_OPS)
def test_every_op_is_tested(name):
    opdef = compiler.get_op(name)
    assert opdef.test is not None or name in EXEMPT, (
        f"op {name!r} has no TestSpec: declare test=TestSpec(...) beside it in "
        f"compiler/ops/, or add it to EXEMPT in {__file__} with a reason"
    )


@pytest.mark.parametrize("name", TESTED)
def test_shape_rule_matches_implementation(name):
    tu.check_op_types(name, dtypes=(np.float32, np.float64))


@pytest.mark.parametrize("backend", tu.gradient_backends())
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradient_through_compiler(name, backend):
    tu.check_op_gradient(name, via="compiler", backend=backend)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradient_through_frontend(name):
    tu.check_op_gradient(name, via="frontend")


@pytest.mark.parametrize("name", BLOCKING)
def test_non_differentiable_op_blocks_gradient(name):
    tu.check_op_blocks_gradient(name)


@pytest.mark.parametrize("name", TESTED)
def test_backends_agree(name):
    # With only the interpreter this is a self-check; a backend registered in
    # tu.BACKENDS and named in SYMGRAD_BACKEND is compared with it here.
    tu.check_op_backends(name)


# Every op's values and gradient compiled by numba against the interpreter, whatever
# SYMGRAD_BACKEND says: a program per op (about 7 minutes for all of them with a
# cold kernel cache), so slow: CI runs it, and SYMGRAD_SLOW=1 locally.
@pytest.mark.slow
@pytest.mark.parametrize("name", TESTED)
def test_numba_agrees_with_the_interpreter(name):
    tu.check_op_backends(name, backends=("interpreter", "numba"))


# ---------------------------------------------------------------------------
# the checker itself must catch wrong gradients
# ---------------------------------------------------------------------------


@pytest.fixture
def wrong_rule(monkeypatch):
    """Replace an op's gradient rule for one test; cached programs built with the
    wrong rule are dropped afterwards."""
    compiler.clear_cache()

    def replace(op_name, rule):
        monkeypatch.setattr(compiler.get_op(op_name), "grad", rule)

    yield replace
    monkeypatch.undo()
    compiler.clear_cache()


@pytest.mark.parametrize("via", ["compiler", "frontend"])
def test_checker_catches_a_wrong_first_derivative(wrong_rule, via):
    wrong_rule("sigmoid", lambda g, x, *, out: g * out * (1 - out) * 1.00001)
    with pytest.raises(AssertionError, match="input 0"):
        tu.check_op_gradient("sigmoid", via=via)


@pytest.mark.parametrize("via", ["compiler", "frontend"])
def test_checker_catches_a_wrong_second_derivative(wrong_rule, via):
    # _unbroadcast's own gradient is only used when differentiating twice.
    wrong_rule(
        "_unbroadcast",
        lambda g, x, like, *, out: (compiler.ops.F.broadcast_like(g, x) * 1.001, None),
    )
    tu.check_op_gradient("broadcast_mul", via=via, order=1)
    with pytest.raises(AssertionError, match="order 2"):
        tu.check_op_gradient("broadcast_mul", via=via, order=2)


def test_checker_catches_a_wrong_shape_rule(monkeypatch):
    monkeypatch.setattr(
        compiler.get_op("exp"),
        "infer",
        lambda types: [types[0]._replace(dtype=np.dtype(np.float32))],
    )
    with pytest.raises(AssertionError, match="float64"):
        tu.check_op_types("exp")


# ---------------------------------------------------------------------------
# random ops: the mask is fixed by reseeding before each evaluation
# ---------------------------------------------------------------------------


def _dropout(x):
    return mx.nd.Dropout(x, p=0.5, is_train=True)


def test_dropout_reseeded_draws_the_same_mask():
    x = mx.nd.ones((50, 40), dtype="float64")
    op_random.seed(3)
    first = _dropout(x).asnumpy()
    op_random.seed(3)
    again = _dropout(x).asnumpy()
    other = _dropout(x).asnumpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert set(np.unique(first)) == {0.0, 2.0}


def test_dropout_gradient_is_the_mask_with_a_fixed_seed():
    x = np.random.default_rng(1).uniform(-2, 2, (6, 5))
    tu.check_numeric_gradient(_dropout, [x], seed=7)
    tu.check_higher_order(_dropout, [x], order=2, seed=7)


def test_dropout_without_reseeding_fails_the_check():
    # The finite differences see a new mask each time: the check must notice.
    x = np.random.default_rng(1).uniform(-2, 2, (6, 5))
    with pytest.raises(AssertionError):
        tu.check_numeric_gradient(_dropout, [x])


def test_dropout_in_predict_mode_is_the_identity_gradient():
    x = np.random.default_rng(2).uniform(-2, 2, (4, 3))
    tu.check_numeric_gradient(lambda a: mx.nd.Dropout(a, p=0.5, is_train=False), [x])


# ---------------------------------------------------------------------------
# more configurations than the one TestSpec beside each op: broadcasting
# patterns, axes, transposes, optional inputs, modes
# ---------------------------------------------------------------------------


def _spec(shapes=((3, 4),), domain=(-2.0, 2.0), wrt=None, order=2, make_inputs=None, **attrs):
    return registry.TestSpec(
        shapes=shapes, domain=domain, attrs=attrs, wrt=wrt, order=order, make_inputs=make_inputs
    )


def _indices(*arrays):
    # Float index arrays as MXNet passes them; the first input is random data.
    def make(rng, _shape=arrays[0], _rest=arrays[1:]):
        return [rng.uniform(-2, 2, _shape), *(np.array(a, dtype=np.float64) for a in _rest)]

    return make


BROADCAST_PATTERNS = [
    ((3, 1), (1, 4)),
    ((4,), (3, 4)),
    ((2, 3, 4), (3, 1)),
    ((1,), (3, 4)),
    ((3, 4), (3, 4)),
]
VARIANTS = [
    *(
        (f"broadcast_{op}", _spec(shapes=shapes, domain=(0.5, 2.0)))
        for op in ("add", "sub", "mul", "div", "power", "maximum", "minimum")
        for shapes in BROADCAST_PATTERNS
    ),
    *(
        (op, _spec(shapes=((2, 3, 4),), **attrs))
        for op in ("sum", "mean", "max", "min", "nansum")
        for attrs in (
            {"axis": None},
            {"axis": (0, 2), "keepdims": True},
            {"axis": (1,), "exclude": True},
            {"axis": (-1,)},
            {"axis": 0},
        )
    ),
    ("prod", _spec(shapes=((2, 3, 4),), domain=(0.5, 2.0), axis=None)),
    ("prod", _spec(shapes=((2, 3, 4),), domain=(0.5, 2.0), axis=(0, 2), keepdims=True)),
    ("dot", _spec(shapes=((4, 3), (4, 2)), transpose_a=True)),
    ("dot", _spec(shapes=((3, 4), (2, 4)), transpose_b=True)),
    ("dot", _spec(shapes=((4, 3), (2, 4)), transpose_a=True, transpose_b=True)),
    ("dot", _spec(shapes=((4,), (4,)))),
    ("dot", _spec(shapes=((3, 4), (4,)))),
    ("dot", _spec(shapes=((4,), (4, 2)))),
    ("dot", _spec(shapes=((4, 3), (4,)), transpose_a=True)),
    ("dot", _spec(shapes=((4,), (2, 4)), transpose_b=True)),
    ("dot", _spec(shapes=((2, 3, 4), (4, 5)))),
    ("dot", _spec(shapes=((2, 3, 4), (4, 2, 3)))),
    ("dot", _spec(shapes=((4,), (4, 3, 2)))),
    ("dot", _spec(shapes=((2, 1, 3), (3,)))),
    ("batch_dot", _spec(shapes=((2, 4, 3), (2, 4, 5)), transpose_a=True)),
    ("batch_dot", _spec(shapes=((2, 3, 4), (2, 5, 4)), transpose_b=True)),
    ("batch_dot", _spec(shapes=((2, 4, 3), (2, 5, 4)), transpose_a=True, transpose_b=True)),
    ("FullyConnected", _spec(shapes=((3, 4), (5, 4)), num_hidden=5, no_bias=True)),
    ("FullyConnected", _spec(shapes=((2, 3, 4), (5, 4), (5,)), num_hidden=5, flatten=False)),
    ("softmax", _spec(shapes=((3, 4, 2),), axis=1)),
    ("softmax", _spec(axis=0, temperature=2.0)),
    ("log_softmax", _spec(shapes=((3, 4, 2),), axis=1)),
    ("log_softmax", _spec(axis=0, temperature=2.0)),
    *(
        ("Activation", _spec(act_type=act, order=1 if act == "relu" else 2))
        for act in ("relu", "sigmoid", "softrelu", "softsign")
    ),
    ("Dropout", _spec(shapes=((4, 5),), p=0.4, axes=(0,), is_train=True)),
    ("Dropout", _spec(p=0.5, mode="always")),
    ("Dropout", _spec(p=0.5, is_train=False)),
    ("clip", _spec(a_min=0.0, a_max=0.5, order=1)),
    ("_power_scalar", _spec(domain=(0.5, 2.0), scalar=2.0)),
    ("_power_scalar", _spec(domain=(0.5, 2.0), scalar=-0.5)),
    ("_rpower_scalar", _spec(scalar=0.5)),
    ("Reshape", _spec(shapes=((2, 3, 4),), shape=(0, -1))),
    ("Reshape", _spec(shapes=((2, 3, 4),), shape=(-3, 0))),
    ("Reshape", _spec(shapes=((2, 3, 4),), shape=(0, -2))),
    ("Reshape", _spec(shapes=((2, 3, 4),), shape=(-4, 1, 2, -2))),
    ("Reshape", _spec(shapes=((2, 3, 4),), shape=(-1, 4), reverse=True)),
    ("transpose", _spec(shapes=((2, 3, 4),))),
    ("expand_dims", _spec(axis=-1)),
    ("expand_dims", _spec(axis=0)),
    ("squeeze", _spec(shapes=((1, 3, 1, 4),))),
    ("SwapAxis", _spec(shapes=((2, 3, 4),), dim1=0, dim2=2)),
    ("Concat", _spec(shapes=((1, 4), (3, 4), (2, 4)), dim=0)),
    ("stack", _spec(shapes=((3, 4), (3, 4), (3, 4)), axis=-1)),
    ("stack", _spec(shapes=((3, 4),), axis=0)),
    ("SliceChannel", _spec(shapes=((3, 4),), num_outputs=3, axis=0, squeeze_axis=True)),
    ("SliceChannel", _spec(shapes=((2, 6),), num_outputs=3, axis=-1)),
    ("slice", _spec(shapes=((4, 5),), begin=(-3, None), end=(None, -1))),
    ("slice", _spec(shapes=((4, 5),), begin=(None,), end=(None,), step=(-1,))),
    ("slice", _spec(shapes=((4, 5, 2),), begin=(3, 1), end=(0, 4), step=(-2, 2))),
    ("slice_axis", _spec(shapes=((3, 5),), axis=0, begin=-2, end=None)),
    ("take", _spec(make_inputs=_indices((4, 3), [[0, 3], [3, 3]]), wrt=(0,))),
    ("take", _spec(make_inputs=_indices((4, 3), [2, 0, 2, 1]), wrt=(0,), axis=1)),
    ("take", _spec(make_inputs=_indices((4, 3), [5, -1, 2]), wrt=(0,), mode="wrap")),
    ("take", _spec(make_inputs=_indices((4, 3), [5, -1, 2]), wrt=(0,), mode="clip")),
    ("pick", _spec(make_inputs=_indices((3, 4), [0, 2, 1, 1]), wrt=(0,), axis=0)),
    ("pick", _spec(make_inputs=_indices((3, 4), [0, 3, 1]), wrt=(0,), keepdims=True)),
    ("pick", _spec(make_inputs=_indices((3, 4), [5, -1, 1]), wrt=(0,), mode="wrap")),
    ("broadcast_to", _spec(shapes=((3, 1),), shape=(0, 4))),
    ("broadcast_to", _spec(shapes=((4,),), shape=(2, 3, 4))),
    ("broadcast_like", _spec(shapes=((4,), (3, 4)), wrt=(0,))),
    (
        "BatchNorm",
        _spec(
            make_inputs=_indices(
                (4, 3, 2), [1.0, 0.5, 2.0], [0.1, 0.2, 0.3], [0.0, 0.5, -0.5], [1.0, 2.0, 0.5]
            ),
            wrt=(0, 2),
            is_train=True,
        ),
    ),
    (
        "BatchNorm",
        _spec(
            make_inputs=_indices(
                (4, 3, 2), [1.0, 0.5, 2.0], [0.1, 0.2, 0.3], [0.0, 0.5, -0.5], [1.0, 2.0, 0.5]
            ),
            wrt=(0, 1, 2),
            fix_gamma=False,
            is_train=False,
        ),
    ),
    (
        "BatchNorm",
        _spec(
            make_inputs=_indices(
                (4, 3, 2), [1.0, 0.5, 2.0], [0.1, 0.2, 0.3], [0.0, 0.5, -0.5], [1.0, 2.0, 0.5]
            ),
            wrt=(0, 1, 2),
            fix_gamma=False,
            use_global_stats=True,
            is_train=True,
        ),
    ),
    (
        "BatchNorm",
        _spec(
            make_inputs=_indices((4, 2), [1.0, 0.5], [0.1, 0.2], [0.0, 0.5], [1.0, 2.0]),
            wrt=(0, 1, 2),
            fix_gamma=False,
            axis=-1,
            is_train=True,
        ),
    ),
]


def _variant_id(case):
    name, spec = case
    return (
        f"{name}-{spec.shapes}-{spec.attrs}" if spec.make_inputs is None else f"{name}-{spec.attrs}"
    )


@pytest.mark.parametrize("name, spec", VARIANTS, ids=[_variant_id(c) for c in VARIANTS])
def test_op_variant(name, spec):
    if name not in compiler.OPS:
        pytest.skip(f"{name} is not registered")
    tu.check_op(name, spec=spec)


# ---------------------------------------------------------------------------
# gradient graphs depend on ranks and ones-patterns, never on sizes
# ---------------------------------------------------------------------------


def _gradient_key(opdef, shapes, attrs, order):
    """Structural key of the op's gradient graph (differentiated ``order`` times)
    for inputs of these shapes, or None if the op does not apply to them."""
    variables = [compiler.variable(shape, np.float64) for shape in shapes]
    try:
        node = compiler.make_node(opdef, [compiler.Entry(v, 0) for v in variables], attrs)
        op_random.seed(0)
        opdef.impl(*(np.ones(shape) for shape in shapes), **node.attrs)
    except (compiler.GraphError, ValueError, IndexError):
        return None
    visible = opdef.visible(node.attrs) or node.num_outputs
    outputs = [compiler.Entry(node, k) for k in range(visible)]
    for _ in range(order):
        seeds = [compiler.Entry(compiler.variable(o.shape, o.dtype), 0) for o in outputs]
        grads = compiler.differentiate(outputs, seeds, [compiler.Entry(v, 0) for v in variables])
        outputs = [g for g in grads if g is not None]
        if not outputs:
            break
    nodes = compiler.topo_order(outputs)
    return compiler.structural_key(nodes, outputs, lambda node: None)[0]


def _scaled(shape):
    return tuple(size if size == 1 else 2 * size for size in shape)


SIZE_CASES = [
    (name, compiler.get_op(name).test)
    for name in DIFFERENTIABLE
    if compiler.get_op(name).test.make_inputs is None
] + [
    (name, spec)
    for name, spec in VARIANTS
    if spec.make_inputs is None and compiler.get_op(name).differentiable
]


@pytest.mark.parametrize("name, spec", SIZE_CASES, ids=[_variant_id(c) for c in SIZE_CASES])
def test_gradient_rules_do_not_bake_sizes(name, spec):
    # The program cache keys graphs on ranks and ones-patterns only, so a gradient
    # rule must build the same graph for inputs of other sizes.
    opdef = compiler.get_op(name)
    order = min(spec.order, 2)
    key = _gradient_key(opdef, spec.shapes, spec.attrs, order)
    other = _gradient_key(opdef, [_scaled(s) for s in spec.shapes], spec.attrs, order)
    if other is None:
        pytest.skip("the op's attrs tie it to the test shapes")
    assert key == other, f"{name}'s gradient graph changes with the input sizes"


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_float32_gradient_graph_keeps_its_types(name):
    # Every node of the gradient graph, run in float32, returns what its shape/dtype
    # rule promised (a rule that upcasts to float64 fails here).
    opdef = compiler.get_op(name)
    values = tu.op_inputs(name, np.float32)
    variables = [compiler.variable(v.shape, v.dtype) for v in values]
    node = compiler.make_node(opdef, [compiler.Entry(v, 0) for v in variables], opdef.test.attrs)
    visible = opdef.visible(node.attrs) or node.num_outputs
    outputs = [compiler.Entry(node, k) for k in range(visible)]
    seeds = [compiler.variable(o.shape, o.dtype) for o in outputs]
    wrt = opdef.test.wrt if opdef.test.wrt is not None else range(len(values))
    grads = compiler.differentiate(
        outputs,
        [compiler.Entry(s, 0) for s in seeds],
        [compiler.Entry(variables[i], 0) for i in wrt],
    )
    graph = compiler.ProgramGraph(variables + seeds, grads)
    op_random.seed(0)
    results = tu.BACKENDS["interpreter"](graph)(
        [v.copy() for v in values] + [np.ones(o.shape, o.dtype) for o in outputs]
    )
    for i, grad in zip(wrt, results):
        assert grad is None or (grad.dtype == np.float32 and grad.shape == values[i].shape)
