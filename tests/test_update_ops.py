"""The optimizer update ops (compiler/ops/optimizer.py): formulas against float64
numpy references, in-place state writes and ``out=`` as MXNet's calls make them,
recordings in progress kept right, and compiled programs equal to interpreted
ones. Real MXNet's numbers are checked in tests/test_interop_optimizer.py."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import op_testing as tu

UPDATE_OPS = sorted({op.name for op in tu.registered_ops() if op.kind == "update"})


def _arrays(*values):
    return [mx.nd.array(v, dtype=np.asarray(v).dtype) for v in values]


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def test_every_update_op_is_registered_without_gradient():
    assert len(UPDATE_OPS) == 21  # 15, and issue 20's (compiler/ops/tail_optimizer.py)
    for name in UPDATE_OPS:
        opdef = compiler.get_op(name)
        assert not opdef.differentiable and opdef.grad is None, name
        assert not opdef.deferrable or not opdef.mutates, name
    assert compiler.get_op("adamw_update") is compiler.get_op("_contrib_adamw_update")


def test_sgd_mom_update_writes_momentum_and_weight(rng):
    w, g, m = (rng.normal(size=(3, 4)) for _ in range(3))
    weight, grad, mom = _arrays(w, g, m)
    result = mx.nd.sgd_mom_update(
        weight, grad, mom, lr=0.1, momentum=0.9, wd=0.01, rescale_grad=0.5, clip_gradient=0.3
    )
    expected_mom = 0.9 * m - 0.1 * 0.01 * w - 0.1 * np.clip(0.5 * g, -0.3, 0.3)
    np.testing.assert_allclose(mom.asnumpy(), expected_mom, rtol=1e-12)
    np.testing.assert_allclose(result.asnumpy(), w + expected_mom, rtol=1e-12)
    np.testing.assert_array_equal(weight.asnumpy(), w)  # no out=: the weight is kept
    out = mx.nd.sgd_mom_update(weight, grad, mom, lr=0.1, momentum=0.9, out=weight)
    assert out is weight
    assert not np.allclose(weight.asnumpy(), w)


def test_sgd_update_out_and_clip_off_or_zero(rng):
    w, g = rng.normal(size=(2, 5)), rng.normal(size=(2, 5)) * 3
    weight, grad = _arrays(w, g)
    mx.nd.sgd_update(weight, grad, lr=0.2, wd=0.1, out=weight)
    np.testing.assert_allclose(weight.asnumpy(), (1 - 0.02) * w - 0.2 * g, rtol=1e-12)
    # clip_gradient=0 clips everything to 0 (MXNet tests clip >= 0); -1 is off
    weight, grad = _arrays(w, g)
    mx.nd.sgd_update(weight, grad, lr=0.2, clip_gradient=0.0, out=weight)
    np.testing.assert_allclose(weight.asnumpy(), w, rtol=1e-12)


def test_adam_update_reference(rng):
    w, g, mean = (rng.normal(size=(4,)) for _ in range(3))
    var = rng.uniform(0.1, 1, (4,))
    weight, grad, m, v = _arrays(w, g, mean, var)
    mx.nd.adam_update(
        weight, grad, m, v, lr=0.01, wd=0.1, beta1=0.8, beta2=0.9, epsilon=1e-6, out=weight
    )
    gg = g + 0.1 * w
    mean, var = 0.8 * mean + 0.2 * gg, 0.9 * var + 0.1 * gg * gg
    np.testing.assert_allclose(m.asnumpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(v.asnumpy(), var, rtol=1e-12)
    np.testing.assert_allclose(
        weight.asnumpy(), w - 0.01 * mean / (np.sqrt(var) + 1e-6), rtol=1e-12
    )


def test_adamw_update_skips_on_non_finite_scale(rng):
    w, g, mean = (rng.normal(size=(4,)) for _ in range(3))
    var = rng.uniform(0.1, 1, (4,))
    weight, grad, m, v = _arrays(w, g, mean, var)
    mx.nd.adamw_update(
        weight, grad, m, v, mx.nd.array([np.nan], dtype="float64"), lr=0.1, eta=1.0, out=weight
    )
    for array, value in ((weight, w), (m, mean), (v, var)):
        np.testing.assert_array_equal(array.asnumpy(), value)
    mx.nd.adamw_update(
        weight, grad, m, v, mx.nd.array([2.0], dtype="float64"), lr=0.1, eta=0.5, wd=0.2, out=weight
    )
    gg = 2 * g
    mean, var = 0.9 * mean + 0.1 * gg, 0.999 * var + 0.001 * gg * gg
    expected = w - 0.5 * (0.1 * mean / (np.sqrt(var) + 1e-8) + 0.2 * w)
    np.testing.assert_allclose(weight.asnumpy(), expected, rtol=1e-12)


def test_ftrl_update_reference(rng):
    w, g = rng.normal(size=(6,)), rng.normal(size=(6,))
    z, n = rng.normal(size=(6,)), rng.uniform(0.1, 1, (6,))
    weight, grad, zz, nn = _arrays(w, g, z, n)
    mx.nd.ftrl_update(weight, grad, zz, nn, lr=0.1, lamda1=0.3, beta=1.0, wd=0.01, out=weight)
    z = z + g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / 0.1
    n = n + g * g
    expected = np.where(
        np.abs(z) > 0.3, (np.sign(z) * 0.3 - z) / ((1 + np.sqrt(n)) / 0.1 + 0.01), 0.0
    )
    np.testing.assert_allclose(weight.asnumpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(zz.asnumpy(), z, rtol=1e-12)


def test_lamb_phases_reference(rng):
    w, g, mean = (rng.normal(size=(5,)) for _ in range(3))
    var = rng.uniform(0.1, 1, (5,))
    weight, grad, m, v = _arrays(w, g, mean, var)
    direction = mx.nd.lamb_update_phase1(weight, grad, m, v, t=2, wd=0.1)
    mean, var = 0.9 * mean + 0.1 * g, 0.999 * var + 0.001 * g * g
    expected = (mean / (1 - 0.9**2)) / (np.sqrt(var / (1 - 0.999**2)) + 1e-6) + 0.1 * w
    np.testing.assert_allclose(direction.asnumpy(), expected, rtol=1e-12)
    mx.nd.lamb_update_phase2(
        weight, direction, weight.norm(), direction.norm(), lr=0.1, upper_bound=0.5, out=weight
    )
    ratio = min(np.linalg.norm(w), 0.5) / np.linalg.norm(expected)
    np.testing.assert_allclose(weight.asnumpy(), w - 0.1 * ratio * expected, rtol=1e-12)


def test_mp_sgd_mom_update_keeps_float32_master(rng):
    w32 = rng.normal(size=(8,)).astype(np.float32)
    weight = mx.nd.array(w32, dtype="float16")
    grad = mx.nd.array(rng.normal(size=(8,)), dtype="float16")
    mom, master = mx.nd.zeros((8,)), mx.nd.array(w32)
    for _ in range(3):
        mx.nd.mp_sgd_mom_update(weight, grad, mom, master, lr=0.01, momentum=0.9, out=weight)
    assert weight.dtype == np.float16 and master.dtype == np.float32
    np.testing.assert_array_equal(weight.asnumpy(), master.asnumpy().astype(np.float16))
    g = grad.asnumpy().astype(np.float32)
    m, expected = np.zeros(8, np.float32), w32.copy()
    for _ in range(3):
        m = 0.9 * m - 0.01 * g
        expected = expected + m
    np.testing.assert_allclose(master.asnumpy(), expected, rtol=1e-5)


def test_mp_ops_refuse_a_narrow_master_copy():
    weight = mx.nd.zeros((3,), dtype="float32")
    with pytest.raises(mx.base.MXNetError, match="master"):
        mx.nd.mp_sgd_update(weight, weight, mx.nd.zeros((3,), dtype="float16"), lr=0.1)


def test_state_write_keeps_a_recorded_graph_right(rng):
    # a graph recorded from the momentum reads its old values after the update
    m = rng.normal(size=(4,))
    x, mom = mx.nd.array(rng.normal(size=(4,))), mx.nd.array(m)
    x.attach_grad()
    weight, grad = mx.nd.ones((4,)), mx.nd.ones((4,))
    with mx.autograd.record():
        loss = (x * mom).sum()
        # an update while recording: its in-place writes are allowed
        mx.nd.sgd_mom_update(weight, grad, mom, lr=0.1, momentum=0.9, out=weight)
    assert not np.allclose(mom.asnumpy(), m)
    loss.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), m.astype(np.float32), rtol=1e-6)


def test_update_of_a_marked_weight_while_recording(rng):
    w = mx.nd.array(rng.normal(size=(3,)))
    w.attach_grad()
    with mx.autograd.record():
        loss = (w * w).sum()
    loss.backward()
    before = w.asnumpy()
    with mx.autograd.record():
        mx.nd.sgd_update(w, w.grad, lr=0.5, out=w)
        loss = (w * 3).sum()
    loss.backward()
    np.testing.assert_allclose(w.asnumpy(), before - 0.5 * 2 * before, rtol=1e-6)
    np.testing.assert_allclose(w.grad.asnumpy(), np.full(3, 3.0))


def test_symbol_update_op_is_pure():
    weight, grad, mom = (mx.sym.var(n) for n in ("w", "g", "m"))
    out = mx.sym.sgd_mom_update(weight, grad, mom, lr=0.1, momentum=0.9)
    assert out.list_arguments() == ["w", "g", "m"]
    executor = out.bind(
        mx.cpu(), args={"w": mx.nd.ones((2,)), "g": mx.nd.ones((2,)), "m": mx.nd.zeros((2,))}
    )
    np.testing.assert_allclose(executor.forward()[0].asnumpy(), [0.9, 0.9], rtol=1e-6)


@pytest.mark.parametrize("name", UPDATE_OPS)
def test_compiled_equals_interpreted(name, compiled):
    tu.check_op_backends(name, ["interpreter", "compiled"])
