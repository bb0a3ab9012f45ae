"""mx.nd.linalg and mx.sym.linalg: values against numpy references (batched, with
MXNet's attrs), gradients by finite differences in float64 for the configurations
the generated per-op tests do not cover, second derivatives, symbols, and the
compiled backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

import symgrad as mx
from symgrad import op_testing as tu

RNG = np.random.default_rng(30)


def _nd(x):
    return mx.nd.array(x, dtype="float64")


def _t(x):
    return np.swapaxes(x, -1, -2)


def _spd(*shape):
    m = RNG.uniform(-1, 1, shape)
    return m @ _t(m) + shape[-1] * np.eye(shape[-1])


def _lower(*shape):
    m = np.tril(RNG.uniform(-0.5, 0.5, shape), -1)
    return m + np.eye(shape[-1]) * RNG.uniform(1, 2, (*shape[:-2], 1, shape[-1]))


# ---------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_gemm_and_gemm2_values(transpose_a, transpose_b):
    a = RNG.uniform(-1, 1, (2, 4, 3) if transpose_a else (2, 3, 4))
    b = RNG.uniform(-1, 1, (2, 5, 4) if transpose_b else (2, 4, 5))
    c = RNG.uniform(-1, 1, (2, 3, 5))
    product = (_t(a) if transpose_a else a) @ (_t(b) if transpose_b else b)
    got = mx.nd.linalg.gemm(
        _nd(a),
        _nd(b),
        _nd(c),
        transpose_a=transpose_a,
        transpose_b=transpose_b,
        alpha=0.5,
        beta=-2.0,
    )
    np.testing.assert_allclose(got.asnumpy(), 0.5 * product - 2.0 * c, rtol=1e-12)
    got = mx.nd.linalg.gemm2(
        _nd(a), _nd(b), transpose_a=transpose_a, transpose_b=transpose_b, alpha=3.0
    )
    np.testing.assert_allclose(got.asnumpy(), 3.0 * product, rtol=1e-12)


def test_gemm2_rows_on_another_axis():
    a, b = RNG.uniform(-1, 1, (3, 2, 4)), RNG.uniform(-1, 1, (4, 2, 5))
    got = mx.nd.linalg.gemm2(_nd(a), _nd(b), axis=-3).asnumpy()
    expected = np.stack([a[:, j, :] @ b[:, j, :] for j in range(2)], axis=1)
    assert got.shape == (3, 2, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_factorisations():
    a = _spd(2, 4, 4)
    lower = mx.nd.linalg.potrf(_nd(a)).asnumpy()
    np.testing.assert_allclose(lower, np.linalg.cholesky(a), rtol=1e-12)
    np.testing.assert_allclose(
        mx.nd.linalg.potri(_nd(lower)).asnumpy(), np.linalg.inv(a), rtol=1e-10
    )
    u, values = (x.asnumpy() for x in mx.nd.linalg.syevd(_nd(a)))
    np.testing.assert_allclose(values, np.linalg.eigvalsh(a), rtol=1e-12)
    np.testing.assert_allclose(_t(u) @ (values[..., None] * u), a, rtol=1e-10, atol=1e-12)
    largest = np.take_along_axis(u, np.abs(u).argmax(-1)[..., None], -1)
    assert (largest > 0).all()  # MXNet's sign convention
    wide = RNG.uniform(-1, 1, (2, 3, 5))
    q, l_factor = (x.asnumpy() for x in mx.nd.linalg.gelqf(_nd(wide)))
    np.testing.assert_allclose(l_factor @ q, wide, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(q @ _t(q), np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-12)
    np.testing.assert_array_equal(np.triu(l_factor, 1), 0)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("rightside", [False, True])
@pytest.mark.parametrize("transpose", [False, True])
def test_triangular_product_and_solve(lower, rightside, transpose):
    a = _lower(2, 3, 3)
    a = a if lower else _t(a)
    junk = a + (
        np.triu(RNG.uniform(5, 6, (3, 3)), 1) if lower else np.tril(RNG.uniform(5, 6, (3, 3)), -1)
    )  # the other triangle is ignored
    b = RNG.uniform(-1, 1, (2, 4, 3) if rightside else (2, 3, 4))
    op_a = _t(a) if transpose else a
    attrs = {"lower": lower, "rightside": rightside, "transpose": transpose, "alpha": 1.5}
    product = 1.5 * (b @ op_a if rightside else op_a @ b)
    np.testing.assert_allclose(
        mx.nd.linalg.trmm(_nd(junk), _nd(b), **attrs).asnumpy(), product, rtol=1e-12
    )
    solved = mx.nd.linalg.trsm(_nd(junk), _nd(product), **attrs).asnumpy()
    np.testing.assert_allclose(solved, 1.5 * 1.5 * b, rtol=1e-10)


def test_syrk_and_per_matrix_reductions():
    a = RNG.uniform(-1, 1, (2, 3, 4))
    np.testing.assert_allclose(
        mx.nd.linalg.syrk(_nd(a), alpha=2.0).asnumpy(), 2.0 * a @ _t(a), rtol=1e-12
    )
    np.testing.assert_allclose(
        mx.nd.linalg.syrk(_nd(a), transpose=True).asnumpy(), _t(a) @ a, rtol=1e-12
    )
    square = RNG.uniform(-1, 1, (2, 3, 3)) + np.eye(3)
    np.testing.assert_allclose(
        mx.nd.linalg.det(_nd(square)).asnumpy(), np.linalg.det(square), rtol=1e-12
    )
    sign, logabs = mx.nd.linalg.slogdet(_nd(square))
    np.testing.assert_allclose(
        sign.asnumpy() * np.exp(logabs.asnumpy()), np.linalg.det(square), rtol=1e-12
    )
    np.testing.assert_allclose(
        mx.nd.linalg.inverse(_nd(square)).asnumpy(), np.linalg.inv(square), rtol=1e-10
    )
    spd = _spd(2, 3, 3)
    np.testing.assert_allclose(
        mx.nd.linalg.sumlogdiag(_nd(spd)).asnumpy(),
        np.log(np.diagonal(spd, 0, -2, -1)).sum(-1),
        rtol=1e-12,
    )
    # one matrix: MXNet's one-element result, not a scalar
    assert mx.nd.linalg.det(_nd(square[0])).shape == (1,)
    assert mx.nd.linalg.sumlogdiag(_nd(spd[0])).shape == (1,)


def test_diagonal_and_triangle_packing_is_mxnets():
    # MXNet 1.9.1's orders: a lower triangle row by row, an upper one column by column
    a = _nd(np.arange(16.0).reshape(4, 4))
    assert mx.nd.linalg.extracttrian(a).asnumpy().tolist() == [0, 4, 5, 8, 9, 10, 12, 13, 14, 15]
    assert mx.nd.linalg.extracttrian(a, lower=False).asnumpy().tolist() == [
        0,
        1,
        5,
        2,
        6,
        10,
        3,
        7,
        11,
        15,
    ]
    assert mx.nd.linalg.extracttrian(a, offset=-1).asnumpy().tolist() == [4, 8, 9, 12, 13, 14]
    assert mx.nd.linalg.extracttrian(a, offset=1).asnumpy().tolist() == [1, 2, 6, 3, 7, 11]
    assert mx.nd.linalg.maketrian(_nd([1, 2, 3]), offset=1).asnumpy().tolist() == [
        [0, 1, 2],
        [0, 0, 3],
        [0, 0, 0],
    ]
    assert mx.nd.linalg.maketrian(_nd([1, 2, 3]), lower=False).asnumpy().tolist() == [
        [1, 2],
        [0, 3],
    ]
    assert mx.nd.linalg.extractdiag(a, offset=1).asnumpy().tolist() == [1, 6, 11]
    assert mx.nd.linalg.makediag(_nd([1, 2]), offset=-1).asnumpy().tolist() == [
        [0, 0, 0],
        [1, 0, 0],
        [0, 2, 0],
    ]
    batch = RNG.uniform(-1, 1, (2, 3, 5, 5))
    for offset, lower in [(0, True), (0, False), (-2, True), (3, True)]:
        packed = mx.nd.linalg.extracttrian(_nd(batch), offset=offset, lower=lower)
        rebuilt = mx.nd.linalg.maketrian(packed, offset=offset, lower=lower).asnumpy()
        mask = (
            np.tril(np.ones((5, 5)), offset)
            if offset < 0 or (offset == 0 and lower)
            else np.triu(np.ones((5, 5)), offset)
        )
        np.testing.assert_array_equal(rebuilt, batch * mask)


def test_mxnet_op_spellings_and_bad_shapes():
    for name in (
        "_linalg_gemm",
        "linalg_gemm",
        "_linalg_gemm2",
        "linalg_potrf",
        "_linalg_syevd",
        "linalg_slogdet",
        "linalg_maketrian",
    ):
        assert callable(getattr(mx.nd, name)) and callable(getattr(mx.sym, name)), name
    with pytest.raises(mx.MXNetError, match="inner dimensions"):
        mx.nd.linalg.gemm2(_nd(np.ones((2, 3))), _nd(np.ones((2, 3))))
    with pytest.raises(mx.MXNetError, match="square"):
        mx.nd.linalg.potrf(_nd(np.ones((2, 3))))
    with pytest.raises(mx.MXNetError, match="transpose_c"):
        mx.nd.linalg.gemm2(_nd(np.ones((2, 2))), _nd(np.ones((2, 2))), transpose_c=True)


# ---------------------------------------------------------------------------
# gradients: configurations beyond the TestSpec beside each op
# ---------------------------------------------------------------------------


def _check(function, inputs, order=1):
    tu.check_numeric_gradient(function, inputs)
    if order > 1:
        tu.check_higher_order(function, inputs, order=order)


@pytest.mark.parametrize(
    "transpose_a,transpose_b", [(False, False), (False, True), (True, False), (True, True)]
)
def test_gemm_gradients(transpose_a, transpose_b):
    a = RNG.uniform(-1, 1, (2, 4, 3) if transpose_a else (2, 3, 4))
    b = RNG.uniform(-1, 1, (2, 5, 4) if transpose_b else (2, 4, 5))
    c = RNG.uniform(-1, 1, (2, 3, 5))
    _check(
        lambda x, y, z: mx.nd.linalg.gemm(
            x, y, z, transpose_a=transpose_a, transpose_b=transpose_b, alpha=0.7, beta=1.3
        ),
        [a, b, c],
        order=2,
    )


def test_gemm2_gradient_with_rows_on_another_axis():
    _check(
        lambda x, y: mx.nd.linalg.gemm2(x, y, axis=-3, transpose_b=True),
        [RNG.uniform(-1, 1, (3, 2, 4)), RNG.uniform(-1, 1, (5, 2, 4))],
    )


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("rightside", [False, True])
@pytest.mark.parametrize("transpose", [False, True])
def test_triangular_gradients(lower, rightside, transpose):
    a = _lower(2, 3, 3)
    a = a if lower else _t(a)
    b = RNG.uniform(-1, 1, (2, 4, 3) if rightside else (2, 3, 4))
    attrs = {"lower": lower, "rightside": rightside, "transpose": transpose, "alpha": 0.9}
    _check(lambda x, y: mx.nd.linalg.trmm(x, y, **attrs), [a, b])
    _check(lambda x, y: mx.nd.linalg.trsm(x, y, **attrs), [a, b])


def test_factorisation_gradients_and_second_derivatives():
    spd = _spd(2, 3, 3)
    _check(mx.nd.linalg.potrf, [spd], order=2)
    _check(mx.nd.linalg.potri, [_lower(3, 3)], order=2)
    _check(mx.nd.linalg.gelqf, [RNG.uniform(-1, 1, (3, 4))], order=2)
    _check(mx.nd.linalg.syevd, [spd])
    _check(mx.nd.linalg.inverse, [spd], order=2)


def test_per_matrix_gradients_of_one_matrix():
    square = RNG.uniform(-1, 1, (3, 3)) + 2 * np.eye(3)
    for function in (mx.nd.linalg.det, mx.nd.linalg.slogdet, mx.nd.linalg.sumlogdiag):
        _check(function, [square], order=2)
    _check(
        lambda x: mx.nd.linalg.syrk(x, transpose=True, alpha=0.3),
        [RNG.uniform(-1, 1, (3, 2))],
        order=2,
    )


def test_composite_gaussian_log_likelihood_gradient():
    # the classic use: log N(y; 0, K) = -1/2 y^T K^-1 y - sum log diag(L), K = L L^T
    def log_likelihood(k, y):
        lower = mx.nd.linalg.potrf(k)
        whitened = mx.nd.linalg.trsm(lower, y)
        return -0.5 * mx.nd.sum(whitened * whitened) - mx.nd.linalg.sumlogdiag(lower)

    _check(log_likelihood, [_spd(4, 4), RNG.uniform(-1, 1, (4, 1))], order=2)


# ---------------------------------------------------------------------------
# symbols and the compiled backend
# ---------------------------------------------------------------------------


def test_symbol_linalg_builds_mxnet_nodes_and_evaluates():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    out = mx.sym.linalg.gemm2(a, b, transpose_b=True, alpha=2.0)
    nodes = json.loads(out.tojson())["nodes"]
    assert nodes[-1]["op"] == "_linalg_gemm2"
    assert nodes[-1]["attrs"]["transpose_b"] in ("True", "1", "true")
    x, y = RNG.uniform(-1, 1, (2, 3)), RNG.uniform(-1, 1, (4, 3))
    value = mx.sym.load_json(out.tojson()).eval(a=_nd(x), b=_nd(y))[0].asnumpy()
    np.testing.assert_allclose(value, 2.0 * x @ y.T, rtol=1e-12)
    q, l_factor = mx.sym.linalg.gelqf(a).eval(a=_nd(x))
    np.testing.assert_allclose(l_factor.asnumpy() @ q.asnumpy(), x, atol=1e-12)


def test_linalg_gradients_on_the_compiled_backend(compiled):
    spd = _spd(2, 3, 3)
    y = RNG.uniform(-1, 1, (2, 3, 2))

    def loss(k, v):
        lower = mx.nd.linalg.potrf(k)
        return mx.nd.sum(mx.nd.linalg.trsm(lower, v) ** 2) + mx.nd.sum(
            mx.nd.linalg.det(mx.nd.linalg.gemm2(k, k))
        )

    tu.check_numeric_gradient(loss, [spd, y])
