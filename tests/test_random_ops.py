"""mx.nd.random, mx.sym.random and the random ops: distributions' moments on large
samples, seeding, shapes and dtypes, parameter arrays, multinomial's log-probabilities
and their gradient, densities against scipy.stats and real MXNet 1.9.1's numbers,
and gradients of the densities by finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

import symgrad as mx
from symgrad import op_testing as tu

N = 200_000


def _moments_match(draws: np.ndarray, mean: float, variance: float) -> None:
    # the sample mean within 5 standard errors, the variance within 4%
    draws = np.asarray(draws, dtype=np.float64)
    assert abs(draws.mean() - mean) < 5 * np.sqrt(variance / draws.size), (draws.mean(), mean)
    assert abs(draws.var() - variance) < 0.04 * variance, (draws.var(), variance)


# function, parameters, mean, variance
MOMENTS = [
    ("uniform", {"low": -1.0, "high": 3.0}, 1.0, 16 / 12),
    ("normal", {"loc": 1.5, "scale": 2.0}, 1.5, 4.0),
    ("gamma", {"alpha": 2.5, "beta": 1.5}, 3.75, 2.5 * 1.5**2),
    ("exponential", {"scale": 2.0}, 2.0, 4.0),
    ("poisson", {"lam": 3.5}, 3.5, 3.5),
    ("negative_binomial", {"k": 4, "p": 0.3}, 4 * 0.7 / 0.3, 4 * 0.7 / 0.09),
    ("generalized_negative_binomial", {"mu": 2.0, "alpha": 0.5}, 2.0, 2.0 + 0.5 * 4.0),
]


@pytest.mark.parametrize("name,params,mean,variance", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_scalar_draws_have_the_distributions_moments(name, params, mean, variance):
    mx.random.seed(11)
    draws = getattr(mx.nd.random, name)(**params, shape=(N,), dtype="float64")
    assert draws.shape == (N,) and draws.dtype == np.float64
    _moments_match(draws.asnumpy(), mean, variance)


@pytest.mark.parametrize("name,params,mean,variance", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_array_parameters_draw_per_element(name, params, mean, variance):
    # the same parameters twice in an array: (2,) + shape, each row the distribution
    mx.random.seed(12)
    arrays = {key: mx.nd.array([value, value]) for key, value in params.items()}
    draws = getattr(mx.nd.random, name)(**arrays, shape=(N // 2,))
    assert draws.shape == (2, N // 2) and draws.dtype == np.float32
    for row in draws.asnumpy():
        _moments_match(row, mean, variance)


def test_parameter_arrays_keep_their_own_values():
    mx.random.seed(1)
    draws = mx.nd.random.normal(
        mx.nd.array([[-10.0], [10.0]]), mx.nd.array([[0.1], [0.1]]), shape=(500,)
    ).asnumpy()
    assert draws.shape == (2, 1, 500)
    np.testing.assert_allclose(draws.mean(axis=-1).ravel(), [-10.0, 10.0], atol=0.02)


def test_sample_ops_take_mxnet_spellings_and_input_order():
    mx.random.seed(2)
    low, high = mx.nd.array([0.0, 5.0]), mx.nd.array([1.0, 6.0])
    for op in (mx.nd.sample_uniform, mx.nd._sample_uniform):
        draws = op(low, high, shape=(3, 4)).asnumpy()
        assert draws.shape == (2, 3, 4)
        assert (draws[0] >= 0).all() and (draws[0] < 1).all() and (draws[1] >= 5).all()
    assert mx.nd.sample_poisson(mx.nd.array([2.0])).shape == (1,)


def test_mixed_numbers_and_arrays_are_refused():
    with pytest.raises(ValueError, match="all be numbers or all"):
        mx.nd.random.normal(mx.nd.array([1.0]), 2.0)


def test_op_spellings_of_symbol_files_are_registered():
    for name in (
        "_random_uniform",
        "random_uniform",
        "uniform",
        "_random_normal",
        "random_normal",
        "normal",
        "_random_randint",
        "random_randint",
        "_random_gamma",
        "random_exponential",
        "_sample_normal",
        "sample_normal",
        "_sample_multinomial",
        "sample_multinomial",
        "_shuffle",
        "shuffle",
        "_random_pdf_normal",
        "random_pdf_dirichlet",
        "_random_uniform_like",
    ):
        assert callable(getattr(mx.nd, name)) and callable(getattr(mx.sym, name)), name


def test_seed_repeats_every_draw():
    def draws():
        return [
            mx.nd.random.uniform(shape=(5,)).asnumpy(),
            mx.nd.random.normal(mx.nd.array([0.0, 1.0]), mx.nd.array([1.0, 2.0])).asnumpy(),
            mx.nd.random.poisson(2.0, shape=(4,)).asnumpy(),
            mx.nd.random.randint(0, 100, shape=(6,)).asnumpy(),
            mx.nd.random.multinomial(mx.nd.array([0.1, 0.2, 0.7]), shape=(5,)).asnumpy(),
            mx.nd.random.shuffle(mx.nd.arange(10)).asnumpy(),
            mx.nd.random.randn(2, 3).asnumpy(),
        ]

    mx.random.seed(42)
    first = draws()
    mx.nd.random.seed(42)
    again = draws()
    other = draws()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, other))


def test_default_shapes_and_dtypes_are_mxnets():
    assert mx.nd.random.uniform().shape == (1,)
    assert mx.nd.random.normal(shape=3).shape == (3,)
    assert mx.nd.random.uniform(shape=2).dtype == np.float32
    assert mx.nd.random.uniform(shape=2, dtype="float64").dtype == np.float64
    assert mx.nd.random.normal(shape=2, dtype="float16").dtype == np.float16
    assert mx.nd.random.poisson(2.0, shape=2).dtype == np.float32
    assert mx.nd.random.randint(0, 5, shape=(2,)).dtype == np.int32
    assert mx.nd.random.randint(0, 5).shape == (1,)
    assert mx.nd.random.randint(1, 5, shape=(2, 2), dtype="int64").dtype == np.int64
    assert mx.nd.random.randn(2, 3, loc=1, scale=2, dtype="float64").dtype == np.float64
    # float64 parameters, dtype unset: float32 draws, as MXNet
    assert (
        mx.nd.random.normal(
            mx.nd.array([0.0], dtype="float64"), mx.nd.array([1.0], dtype="float64"), shape=3
        ).dtype
        == np.float32
    )
    out = mx.nd.zeros((4,))
    assert mx.nd.random.uniform(2.0, 3.0, shape=(4,), out=out) is out
    assert (out.asnumpy() >= 2).all()


def test_randint_covers_its_half_open_range():
    mx.random.seed(3)
    draws = mx.nd.random.randint(-2, 3, shape=(N,)).asnumpy()
    assert set(np.unique(draws)) == {-2, -1, 0, 1, 2}
    _moments_match(draws, 0.0, (5**2 - 1) / 12)


def test_multinomial_frequencies_shapes_and_dtypes():
    mx.random.seed(4)
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    draws = mx.nd.random.multinomial(mx.nd.array(probs), shape=(N // 2,))
    assert draws.shape == (2, N // 2) and draws.dtype == np.int32
    for row, p in zip(draws.asnumpy(), probs):
        frequencies = np.bincount(row, minlength=3) / row.size
        np.testing.assert_allclose(frequencies, p, atol=0.006)
    assert mx.nd.random.multinomial(mx.nd.array([0.2, 0.8])).shape == (1,)
    assert mx.nd.random.multinomial(mx.nd.array([0.2, 0.8]), shape=3).shape == (3,)
    assert mx.nd.random.multinomial(mx.nd.array([[0.2, 0.8]]), shape=(2, 3)).shape == (1, 2, 3)
    assert mx.nd.random.multinomial(mx.nd.array([[0.2, 0.8]]), dtype="float32").dtype == np.float32


def test_multinomial_log_probabilities_and_their_gradient():
    # MXNet 1.9.1 gives, for four draws of the last category from each row:
    # log-probabilities log(0.5), log(0.8) and data.grad [[0, 0, 8], [0, 0, 5]]
    probs = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    data = mx.nd.array(probs)
    data.attach_grad()
    mx.random.seed(5)
    with mx.autograd.record():
        draws, log_prob = mx.nd.random.multinomial(data, shape=(4,), get_prob=True)
    log_prob.backward()
    draws = draws.asnumpy()
    assert log_prob.shape == (2, 4) and log_prob.dtype == np.float32
    np.testing.assert_allclose(
        log_prob.asnumpy(), np.log(np.take_along_axis(probs, draws, 1)), rtol=1e-6
    )
    counts = np.stack([np.bincount(row, minlength=3) for row in draws])
    np.testing.assert_allclose(data.grad.asnumpy(), counts / probs, rtol=1e-6)


def test_multinomial_gradient_by_finite_differences():
    probs = np.array([[0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])

    def log_prob(p):
        return mx.nd.random.multinomial(p, shape=(5,), get_prob=True, dtype="float64")[1]

    tu.check_numeric_gradient(log_prob, [probs], seed=9)


def test_shuffle_permutes_rows():
    mx.random.seed(6)
    data = np.arange(40.0).reshape(10, 4)
    shuffled = mx.nd.random.shuffle(mx.nd.array(data)).asnumpy()
    assert not np.array_equal(shuffled, data)
    np.testing.assert_array_equal(np.sort(shuffled[:, 0]), data[:, 0])
    np.testing.assert_array_equal(shuffled - shuffled[:, :1], data - data[:, :1])


def test_draws_give_parameters_no_gradient():
    # MXNet: sampling ops write zeros into their parameters' gradients
    mu = mx.nd.array([1.0, 2.0])
    mu.attach_grad()
    with mx.autograd.record():
        draws = mx.nd.random.normal(mu, mx.nd.array([1.0, 1.0]), shape=3)
    draws.backward()
    np.testing.assert_array_equal(mu.grad.asnumpy(), [0.0, 0.0])


# ---------------------------------------------------------------------------
# densities
# ---------------------------------------------------------------------------


def _pdf(name, sample, *params, is_log=False):
    arrays = [mx.nd.array(a, dtype="float64") for a in (sample, *params)]
    return getattr(mx.nd, f"random_pdf_{name}")(*arrays, is_log=is_log).asnumpy()


def test_densities_equal_scipy_stats():
    rng = np.random.default_rng(7)
    x = rng.uniform(0.1, 3.0, (2, 5))
    counts = rng.integers(0, 8, (2, 5)).astype(np.float64)
    a, b = np.array([1.5, 2.5]), np.array([0.5, 2.0])
    col = (slice(None), None)
    cases = [
        ("uniform", x, (-a, b + 3), np.broadcast_to(1 / (b + 3 + a)[col], x.shape)),
        ("normal", x, (a, b), stats.norm.pdf(x, a[col], b[col])),
        ("gamma", x, (a, b), stats.gamma.pdf(x, a[col], scale=1 / b[col])),
        ("exponential", x, (b,), stats.expon.pdf(x, scale=1 / b[col])),
        ("poisson", counts, (a,), stats.poisson.pmf(counts, a[col])),
        ("negative_binomial", counts, (a, b / 3), stats.nbinom.pmf(counts, a[col], (b / 3)[col])),
        (
            "generalized_negative_binomial",
            counts,
            (a, b),
            stats.nbinom.pmf(counts, 1 / b[col], 1 / (1 + a[col] * b[col])),
        ),
    ]
    for name, sample, params, expected in cases:
        np.testing.assert_allclose(_pdf(name, sample, *params), expected, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(
            _pdf(name, sample, *params, is_log=True), np.log(expected), rtol=1e-10, err_msg=name
        )
    simplex = rng.dirichlet([2.0, 3.0, 4.0], (2, 5))
    alpha = np.array([[1.5, 2.0, 3.0], [0.7, 1.2, 2.2]])
    expected = np.array(
        [[stats.dirichlet.pdf(s, al) for s in rows] for rows, al in zip(simplex, alpha)]
    )
    np.testing.assert_allclose(_pdf("dirichlet", simplex, alpha), expected, rtol=1e-10)


# Values and gradients (of the sum of the outputs) that MXNet 1.9.1 computed:
# name, sample, parameters, is_log, output, gradients of sample and parameters
MXNET_DENSITIES = [
    (
        "normal",
        [[0.5, 1.5], [2.0, 0.3]],
        ([0.1, 0.2], [1.0, 2.0]),
        False,
        [[0.36827014, 0.14972746], [0.13304262, 0.19922195]],
        [
            [[-0.14730805, -0.20961845], [-0.05986918, -0.00498055]],
            [0.3569265, 0.06484973],
            [-0.16560855, -0.112001],
        ],
    ),
    (
        "poisson",
        [[1, 3], [2, 0]],
        ([1.5, 2.5],),
        True,
        [[-1.09453489, -2.07536414], [-1.36056572, -2.5]],
        [[[0, 0], [0, 0]], [0.66666667, -1.2]],
    ),
    (
        "dirichlet",
        [[0.2, 0.3, 0.5]],
        ([[1.5, 2.0, 3.0]],),
        False,
        [5.4477953],
        [[[13.61948826, 18.15931768, 21.79118121]], [[0.80073572, 0.90517448, 0.96415026]]],
    ),
    ("uniform", [[0.2, 0.7]], ([0.0], [0.5]), False, [[2.0, 2.0]], [[[0.0, 0.0]], [8.0], [-8.0]]),
    (
        "gamma",
        [[1.5, 0.5]],
        ([2.0], [3.0]),
        False,
        [[0.14997145326627112, 1.0040857206679343]],
        [
            [[-0.34993339095463266, -1.0040857206679343]],
            [0.1447731033525869],
            [0.042371409056096404],
        ],
    ),
    (
        "gamma",
        [[1.5, 0.5]],
        ([2.0], [3.0]),
        True,
        [[-1.8973103145556163, 0.004077396776274167]],
        [[[-2.3333333333333335, -1.0]], [1.0639738346875043], [-0.6666666666666667]],
    ),
    (
        "negative_binomial",
        [[2.0, 0.0]],
        ([3.0], [0.4]),
        False,
        [[0.13824000000000003, 0.06400000000000002]],
        [[[0.0, 0.0]], [-0.10467063761422915], [1.056]],
    ),
    (
        "generalized_negative_binomial",
        [[2.0, 0.0]],
        ([3.0], [0.4]),
        False,
        [[0.18131698370664678, 0.1392974922444715]],
        [[[0.0, 0.0]], [-0.09078931218788805], [0.12195014254534235]],
    ),
    (
        "exponential",
        [[2.0, 0.5]],
        ([1.5],),
        False,
        [[0.07468060255179591, 0.708549829111522]],
        [[[-0.11202090382769386, -1.0628247436672829]], [0.01851750144952574]],
    ),
]


@pytest.mark.parametrize(
    "case", MXNET_DENSITIES, ids=[f"{c[0]}-log{c[3]}" for c in MXNET_DENSITIES]
)
def test_densities_and_gradients_equal_mxnets(case):
    name, sample, params, is_log, expected, expected_grads = case
    arrays = [mx.nd.array(a, dtype="float64") for a in (sample, *params)]
    for a in arrays:
        a.attach_grad()
    with mx.autograd.record():
        out = getattr(mx.nd, f"random_pdf_{name}")(*arrays, is_log=is_log)
    out.backward()
    # MXNet's numbers as printed (8 digits for some); its digamma is good to ~5e-7
    np.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-6)
    for a, grad in zip(arrays, expected_grads):
        np.testing.assert_allclose(a.grad.asnumpy(), grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    "name,make",
    [
        (
            "normal",
            lambda r: [r.normal(0, 1, (2, 3, 2)), r.uniform(-1, 1, (2,)), r.uniform(0.5, 2, (2,))],
        ),
        (
            "gamma",
            lambda r: [r.uniform(0.5, 3, (2, 4)), r.uniform(1.5, 3, (2,)), r.uniform(0.5, 2, (2,))],
        ),
        ("dirichlet", lambda r: [r.dirichlet([2.0, 2.0, 2.0], (2, 2)), r.uniform(0.5, 3, (2, 3))]),
        ("exponential", lambda r: [r.uniform(0.2, 2, (3,)), r.uniform(0.5, 2, (3,))]),
    ],
)
@pytest.mark.parametrize("is_log", [False, True])
def test_density_gradients_by_finite_differences(name, make, is_log):
    values = make(np.random.default_rng(8))

    def density(*arrays):
        return getattr(mx.nd, f"random_pdf_{name}")(*arrays, is_log=is_log)

    tu.check_numeric_gradient(density, values)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial", "generalized_negative_binomial"])
def test_count_density_gradients_by_finite_differences(name):
    rng = np.random.default_rng(9)
    counts = rng.integers(0, 6, (2, 3)).astype(np.float64)
    params = [rng.uniform(0.5, 3, (2,))] + (
        [rng.uniform(0.2, 0.8, (2,))] if name != "poisson" else []
    )

    def density(*arrays):
        return getattr(mx.nd, f"random_pdf_{name}")(*arrays)

    # the counts themselves have no gradient (MXNet's zeros): parameters only
    tu.check_numeric_gradient(density, [counts, *params], wrt=tuple(range(1, len(params) + 1)))


# ---------------------------------------------------------------------------
# mx.sym.random
# ---------------------------------------------------------------------------


def test_symbol_draws_are_never_merged_and_reseed():
    a = mx.sym.random.uniform(shape=(4,))
    b = mx.sym.random.uniform(shape=(4,))
    mx.random.seed(10)
    first = (a - b).eval()[0].asnumpy()
    assert np.abs(first).sum() > 0
    mx.random.seed(10)
    np.testing.assert_array_equal((a - b).eval()[0].asnumpy(), first)
    # the generated spellings and a loaded file too (no _draw of their own)
    c, d = mx.sym.uniform(shape=(4,)), mx.sym.random_uniform(shape=(4,))
    assert np.abs((c - d).eval()[0].asnumpy()).sum() > 0
    loaded = mx.sym.load_json((a - b).tojson())
    assert np.abs(loaded.eval()[0].asnumpy()).sum() > 0


def test_symbol_functions_choose_the_op_by_parameter_kind():
    mu, sigma = mx.sym.var("mu"), mx.sym.var("sigma")
    nodes = json.loads(mx.sym.random.normal(mu, sigma, shape=(3,)).tojson())["nodes"]
    assert nodes[-1]["op"] == "_sample_normal" and nodes[-1]["attrs"]["shape"] == "(3,)"
    assert "_draw" not in nodes[-1]["attrs"]
    nodes = json.loads(mx.sym.random.exponential(scale=2.0, shape=(2,)).tojson())["nodes"]
    assert nodes[-1]["op"] == "_random_exponential" and float(nodes[-1]["attrs"]["lam"]) == 0.5
    out = (
        mx.sym.random.normal(mu, sigma, shape=(2,))
        .eval(mu=mx.nd.array([0.0, 100.0]), sigma=mx.nd.array([1e-3, 1e-3]))[0]
        .asnumpy()
    )
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.mean(-1), [0.0, 100.0], atol=0.01)
    probs = mx.sym.var("p")
    outputs = mx.sym.random.multinomial(probs, shape=(3,), get_prob=True)
    assert len(outputs.list_outputs()) == 2
    assert mx.sym.random.shuffle(probs).eval(p=mx.nd.array([[1.0], [1.0]]))[0].shape == (2, 1)
    assert mx.sym.random.randint(0, 4, shape=(5,)).eval()[0].dtype == np.int32


def test_mxnet_spelled_symbol_file_loads_and_draws():
    # a graph as MXNet writes it: the "uniform" and "random_normal" spellings
    text = json.dumps(
        {
            "nodes": [
                {
                    "op": "uniform",
                    "name": "u",
                    "attrs": {"low": "-1", "high": "1", "shape": "(50,)", "dtype": "None"},
                    "inputs": [],
                },
                {"op": "random_normal", "name": "n", "attrs": {"shape": "(50,)"}, "inputs": []},
                {"op": "elemwise_add", "name": "s", "inputs": [[0, 0, 0], [1, 0, 0]]},
            ],
            "arg_nodes": [],
            "node_row_ptr": [0, 1, 2, 3],
            "heads": [[2, 0, 0]],
            "attrs": {"mxnet_version": ["int", 10901]},
        }
    )
    value = mx.sym.load_json(text).eval()[0]
    assert value.shape == (50,) and value.dtype == np.float32
    assert np.isfinite(value.asnumpy()).all() and value.asnumpy().std() > 0.3


def test_random_ops_run_on_the_compiled_backend(compiled):
    mu = mx.sym.var("mu")
    graph = mx.sym.random.normal(mu, mx.sym.ones((3,)), shape=(2,)) * 2
    values = [graph.eval(mu=mx.nd.array([0.0, 1.0, 2.0]))[0].asnumpy() for _ in range(3)]
    assert values[0].shape == (3, 2)
    assert not np.array_equal(values[0], values[1])


def test_like_functions_draw_the_shape_and_dtype_of_data():
    data = mx.nd.zeros((N // 4, 2), dtype="float64")
    mx.random.seed(13)
    draws = mx.nd.random.exponential_like(data, lam=4.0)
    assert draws.shape == data.shape and draws.dtype == np.float64
    _moments_match(draws.asnumpy(), 0.25, 0.0625)
    low_high = mx.nd.random.uniform_like(data, low=2.0, high=3.0).asnumpy()
    assert (low_high >= 2).all() and (low_high < 3).all()
    value = mx.sym.random.normal_like(mx.sym.var("d"), loc=5.0, scale=1e-3).eval(d=data)[0]
    np.testing.assert_allclose(value.asnumpy(), 5.0, atol=0.01)
    assert mx.nd.random.poisson_like(data, lam=2.0).dtype == np.float64
