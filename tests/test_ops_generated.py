"""Per-op tests generated from the op registry (STYLE.md, example 11).

Every registered op (aliases folded) gets: a TestSpec or an exemption with a
reason; its shape/dtype rule checked against its numpy implementation in float32
and float64; for differentiable ops a float64 finite-difference gradient check of
every differentiable input, through the compiler directly (up to the spec's
order, on every backend) and through ``mx.nd`` + ``autograd``; for the others,
that they block gradients. The checks themselves live in ``symgrad.test_utils``.
"""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import symgrad as mx
from compiler.ops import random as op_random
from symgrad import test_utils as tu

# Ops that need no TestSpec, with the reason. Anything else without one fails
# test_every_op_is_tested, so a new op cannot ship untested.
EXEMPT = {
    "_CustomFunction": "its math is a user callback: tested through autograd.Function "
                       "in tests/test_autograd_api.py",
    "_CustomFunctionBackward": "the backward half of _CustomFunction (same tests)",
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
        f"compiler/ops/, or add it to EXEMPT in {__file__} with a reason")


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
    wrong_rule("_unbroadcast",
               lambda g, x, like, *, out: (compiler.ops.F.broadcast_like(g, x) * 1.001, None))
    tu.check_op_gradient("broadcast_mul", via=via, order=1)
    with pytest.raises(AssertionError, match="order 2"):
        tu.check_op_gradient("broadcast_mul", via=via, order=2)


def test_checker_catches_a_wrong_shape_rule(monkeypatch):
    monkeypatch.setattr(compiler.get_op("exp"), "infer",
                        lambda types: [types[0]._replace(dtype=np.dtype(np.float32))])
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
