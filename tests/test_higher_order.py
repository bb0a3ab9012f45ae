"""Higher-order derivatives.

1. Every differentiable unary elementwise op: first, second and third
   derivatives from chains of ``autograd.grad(create_graph=True)`` against
   analytic formulas written here (not taken from the implementations).
2. The ops MXNet 1.9.1 cannot differentiate twice (broadcast and scalar
   arithmetic, sum, Activation, FullyConnected, softmax, log_softmax): second and
   third derivatives checked by finite differences of the recorded lower-order
   gradient (``symgrad.op_testing.check_higher_order``).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import autograd
from symgrad import op_testing as tu

LN2, LN10 = math.log(2.0), math.log(10.0)
SQRT_PI = math.sqrt(math.pi)
SCALAR = 1.5  # the scalar of the _*_scalar ops below
# MXNet's degree factors, computed in float32 (compiler/ops/tail_elemwise.py)
_DEGREES = float(np.float32(180.0) / np.float32(np.pi))
_RADIANS = float(np.float32(np.pi) / np.float32(180.0))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def zero(x):
    return np.zeros_like(x)


def one(x):
    return np.ones_like(x)


def constant(value):
    return lambda x: np.full_like(x, value)


PIECEWISE_CONSTANT = (zero, zero, zero)
LINEAR = (one, zero, zero)


def _tan(x):
    t = np.tan(x)
    return (1 + t * t, 2 * t * (1 + t * t), 2 * (1 + t * t) * (1 + 3 * t * t))


def _tanh(x):
    t = np.tanh(x)
    return (1 - t * t, -2 * t * (1 - t * t), (1 - t * t) * (6 * t * t - 2))


def _sigmoid(x):
    s = sigmoid(x)
    return (s * (1 - s), s * (1 - s) * (1 - 2 * s), s * (1 - s) * (1 - 6 * s + 6 * s * s))


def _softrelu(x):  # log(1 + e^x)
    s = sigmoid(x)
    return (s, s * (1 - s), s * (1 - s) * (1 - 2 * s))


def _log_sigmoid(x):
    s = sigmoid(x)
    return (1 - s, -s * (1 - s), -s * (1 - s) * (1 - 2 * s))


def _softsign(x):  # x / (1 + |x|)
    d = 1 + np.abs(x)
    return (1 / d**2, -2 * np.sign(x) / d**3, 6 / d**4)


def _mish(x):  # x tanh(softplus(x)); T' = D s with D = 1 - T^2, s = sigmoid(x)
    s, t = sigmoid(x), np.tanh(np.logaddexp(0, x))
    d = 1 - t * t
    p = s * d * (1 - s - 2 * t * s)
    dp = s * d * (1 - s - 2 * t * s) ** 2 + s * d * (
        -s * (1 - s) - 2 * d * s * s - 2 * t * s * (1 - s)
    )
    return (t + x * s * d, 2 * s * d + x * p, 2 * s * (1 - s) * d - 4 * t * d * s * s + p + x * dp)


def _relu(x):
    return ((x > 0).astype(x.dtype), zero(x), zero(x))


# (op name, attrs, domain, (f', f'', f''')), f^(k) as numpy functions of the input
UNARY = [
    ("negative", {}, (-2, 2), (constant(-1), zero, zero)),
    (
        "_contrib_quadratic",
        {"a": 1.5, "b": -0.5, "c": 2.0},
        (-2, 2),
        (lambda x: 3 * x - 0.5, constant(3), zero),
    ),
    # by design not their forward's derivatives: the identity's, scaled
    ("_contrib_gradientmultiplier", {"scalar": -2.5}, (-2, 2), (constant(-2.5), zero, zero)),
    ("_contrib_round_ste", {}, (-2, 2), (constant(1), zero, zero)),
    ("_contrib_sign_ste", {}, (-2, 2), (constant(1), zero, zero)),
    ("exp", {}, (-2, 2), (np.exp, np.exp, np.exp)),
    ("expm1", {}, (-2, 2), (np.exp, np.exp, np.exp)),
    ("log", {}, (0.2, 3), (lambda x: 1 / x, lambda x: -1 / x**2, lambda x: 2 / x**3)),
    (
        "log2",
        {},
        (0.2, 3),
        (lambda x: 1 / (x * LN2), lambda x: -1 / (x**2 * LN2), lambda x: 2 / (x**3 * LN2)),
    ),
    (
        "log10",
        {},
        (0.2, 3),
        (lambda x: 1 / (x * LN10), lambda x: -1 / (x**2 * LN10), lambda x: 2 / (x**3 * LN10)),
    ),
    (
        "log1p",
        {},
        (-0.5, 2),
        (lambda x: 1 / (1 + x), lambda x: -1 / (1 + x) ** 2, lambda x: 2 / (1 + x) ** 3),
    ),
    (
        "sqrt",
        {},
        (0.2, 3),
        (lambda x: 0.5 * x**-0.5, lambda x: -0.25 * x**-1.5, lambda x: 0.375 * x**-2.5),
    ),
    (
        "rsqrt",
        {},
        (0.2, 3),
        (lambda x: -0.5 * x**-1.5, lambda x: 0.75 * x**-2.5, lambda x: -1.875 * x**-3.5),
    ),
    (
        "cbrt",
        {},
        (0.2, 3),
        (
            lambda x: x ** (-2 / 3) / 3,
            lambda x: -2 / 9 * x ** (-5 / 3),
            lambda x: 10 / 27 * x ** (-8 / 3),
        ),
    ),
    ("square", {}, (-2, 2), (lambda x: 2 * x, constant(2), zero)),
    ("reciprocal", {}, (0.3, 2), (lambda x: -1 / x**2, lambda x: 2 / x**3, lambda x: -6 / x**4)),
    ("abs", {}, (-2, 2), (np.sign, zero, zero)),
    ("sign", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("round", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("rint", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("floor", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("ceil", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("trunc", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("fix", {}, (-2, 2), PIECEWISE_CONSTANT),
    ("sin", {}, (-2, 2), (np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x))),
    ("cos", {}, (-2, 2), (lambda x: -np.sin(x), lambda x: -np.cos(x), np.sin)),
    ("tan", {}, (-1.2, 1.2), (lambda x: _tan(x)[0], lambda x: _tan(x)[1], lambda x: _tan(x)[2])),
    (
        "arcsin",
        {},
        (-0.9, 0.9),
        (
            lambda x: (1 - x * x) ** -0.5,
            lambda x: x * (1 - x * x) ** -1.5,
            lambda x: (1 + 2 * x * x) * (1 - x * x) ** -2.5,
        ),
    ),
    (
        "arccos",
        {},
        (-0.9, 0.9),
        (
            lambda x: -((1 - x * x) ** -0.5),
            lambda x: -x * (1 - x * x) ** -1.5,
            lambda x: -(1 + 2 * x * x) * (1 - x * x) ** -2.5,
        ),
    ),
    (
        "arctan",
        {},
        (-2, 2),
        (
            lambda x: 1 / (1 + x * x),
            lambda x: -2 * x / (1 + x * x) ** 2,
            lambda x: (6 * x * x - 2) / (1 + x * x) ** 3,
        ),
    ),
    ("sinh", {}, (-2, 2), (np.cosh, np.sinh, np.cosh)),
    ("cosh", {}, (-2, 2), (np.sinh, np.cosh, np.sinh)),
    ("tanh", {}, (-2, 2), (lambda x: _tanh(x)[0], lambda x: _tanh(x)[1], lambda x: _tanh(x)[2])),
    (
        "arcsinh",
        {},
        (-2, 2),
        (
            lambda x: (1 + x * x) ** -0.5,
            lambda x: -x * (1 + x * x) ** -1.5,
            lambda x: (2 * x * x - 1) * (1 + x * x) ** -2.5,
        ),
    ),
    (
        "arccosh",
        {},
        (1.2, 3),
        (
            lambda x: (x * x - 1) ** -0.5,
            lambda x: -x * (x * x - 1) ** -1.5,
            lambda x: (2 * x * x + 1) * (x * x - 1) ** -2.5,
        ),
    ),
    (
        "arctanh",
        {},
        (-0.8, 0.8),
        (
            lambda x: 1 / (1 - x * x),
            lambda x: 2 * x / (1 - x * x) ** 2,
            lambda x: (2 + 6 * x * x) / (1 - x * x) ** 3,
        ),
    ),
    (
        "sigmoid",
        {},
        (-2, 2),
        (lambda x: _sigmoid(x)[0], lambda x: _sigmoid(x)[1], lambda x: _sigmoid(x)[2]),
    ),
    ("relu", {}, (-2, 2), (lambda x: _relu(x)[0], zero, zero)),
    (
        "softsign",
        {},
        (-2, 2),
        (lambda x: _softsign(x)[0], lambda x: _softsign(x)[1], lambda x: _softsign(x)[2]),
    ),
    (
        "softrelu",
        {},
        (-2, 2),
        (lambda x: _softrelu(x)[0], lambda x: _softrelu(x)[1], lambda x: _softrelu(x)[2]),
    ),
    (
        "erf",
        {},
        (-2, 2),
        (
            lambda x: 2 / SQRT_PI * np.exp(-x * x),
            lambda x: -4 * x / SQRT_PI * np.exp(-x * x),
            lambda x: (8 * x * x - 4) / SQRT_PI * np.exp(-x * x),
        ),
    ),
    (
        "log_sigmoid",
        {},
        (-3, 3),
        (lambda x: _log_sigmoid(x)[0], lambda x: _log_sigmoid(x)[1], lambda x: _log_sigmoid(x)[2]),
    ),
    ("mish", {}, (-3, 3), (lambda x: _mish(x)[0], lambda x: _mish(x)[1], lambda x: _mish(x)[2])),
    (
        "hard_sigmoid",
        {"alpha": 0.2, "beta": 0.5},
        (-4, 4),
        (lambda x: 0.2 * (np.abs(0.2 * x) < 0.5), zero, zero),
    ),
    ("_copy", {}, (-2, 2), LINEAR),
    ("Cast", {"dtype": "float64"}, (-2, 2), LINEAR),
    (
        "clip",
        {"a_min": -1.0, "a_max": 1.0},
        (-2, 2),
        (lambda x: (np.abs(x) < 1).astype(x.dtype), zero, zero),
    ),
    ("_plus_scalar", {"scalar": SCALAR}, (-2, 2), LINEAR),
    ("_minus_scalar", {"scalar": SCALAR}, (-2, 2), LINEAR),
    ("_rminus_scalar", {"scalar": SCALAR}, (-2, 2), (constant(-1), zero, zero)),
    ("_mul_scalar", {"scalar": SCALAR}, (-2, 2), (constant(SCALAR), zero, zero)),
    ("_div_scalar", {"scalar": SCALAR}, (-2, 2), (constant(1 / SCALAR), zero, zero)),
    (
        "_rdiv_scalar",
        {"scalar": SCALAR},
        (0.5, 2),
        (lambda x: -SCALAR / x**2, lambda x: 2 * SCALAR / x**3, lambda x: -6 * SCALAR / x**4),
    ),
    (
        "_power_scalar",
        {"scalar": SCALAR},
        (0.5, 2),
        (
            lambda x: SCALAR * x ** (SCALAR - 1),
            lambda x: SCALAR * (SCALAR - 1) * x ** (SCALAR - 2),
            lambda x: SCALAR * (SCALAR - 1) * (SCALAR - 2) * x ** (SCALAR - 3),
        ),
    ),
    (
        "_rpower_scalar",
        {"scalar": SCALAR},
        (-2, 2),
        (
            lambda x: math.log(SCALAR) * SCALAR**x,
            lambda x: math.log(SCALAR) ** 2 * SCALAR**x,
            lambda x: math.log(SCALAR) ** 3 * SCALAR**x,
        ),
    ),
    # the tail ops of issue 20 (compiler/ops/tail_elemwise.py)
    ("degrees", {}, (-2, 2), (constant(_DEGREES), zero, zero)),
    ("radians", {}, (-2, 2), (constant(_RADIANS), zero, zero)),
    (
        "rcbrt",
        {},
        (0.2, 3.0),
        (
            lambda x: -(x ** (-4 / 3)) / 3,
            lambda x: 4 / 9 * x ** (-7 / 3),
            lambda x: -28 / 27 * x ** (-10 / 3),
        ),
    ),
    (
        "smooth_l1",
        {"scalar": 1.3},
        (-2, 2),
        (
            lambda x: np.where(np.abs(x) < 1 / 1.69, 1.69 * x, np.sign(x)),
            lambda x: np.where(np.abs(x) < 1 / 1.69, 1.69, 0.0),
            zero,
        ),
    ),
    (
        "_hypot_scalar",
        {"scalar": SCALAR},
        (-2, 2),
        (
            lambda x: x / np.hypot(x, SCALAR),
            lambda x: SCALAR**2 / np.hypot(x, SCALAR) ** 3,
            lambda x: -3 * SCALAR**2 * x / np.hypot(x, SCALAR) ** 5,
        ),
    ),
    (
        "_maximum_scalar",
        {"scalar": 0.3},
        (-2, 2),
        (lambda x: (x > 0.3).astype(x.dtype), zero, zero),
    ),
    (
        "_minimum_scalar",
        {"scalar": 0.3},
        (-2, 2),
        (lambda x: (x < 0.3).astype(x.dtype), zero, zero),
    ),
    ("_mod_scalar", {"scalar": SCALAR}, (0.1, 1.4), LINEAR),  # x mod 1.5 = x there
    ("_rmod_scalar", {"scalar": SCALAR}, (1.6, 2.9), PIECEWISE_CONSTANT),  # 1.5 mod x = 1.5
]
ACTIVATIONS = {
    "relu": _relu,
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "softrelu": _softrelu,
    "softsign": _softsign,
}
for _act, _derivatives in ACTIVATIONS.items():
    UNARY.append(
        (
            "Activation",
            {"act_type": _act},
            (-2, 2),
            tuple(lambda x, _d=_derivatives, _k=k: _d(x)[_k] for k in range(3)),
        )
    )

# Single-input elementwise ops that are not pointwise functions of one number.
NOT_POINTWISE = {"broadcast_to": "changes the shape: its gradient sums (tested below)"}


def _unary_elementwise_ops() -> list[str]:
    names = []
    for op in tu.registered_ops():
        if (
            op.kind == "elemwise"
            and op.differentiable
            and not op.variadic
            and not callable(op.inputs)
            and len(op.inputs) == 1
        ):
            names.append(op.name)
    return names


def test_every_unary_elementwise_op_has_analytic_derivatives():
    covered = {name for name, *_ in UNARY} | set(NOT_POINTWISE)
    missing = sorted(set(_unary_elementwise_ops()) - covered)
    assert not missing, f"add analytic first to third derivatives for {missing} to UNARY"


def _derivatives_by_autograd(op_name: str, attrs: dict, x: np.ndarray, order: int):
    """f', f'', ... of an elementwise op at x, each from the previous one's
    recorded history by autograd.grad(create_graph=True)."""
    array = mx.nd.array(x, dtype="float64")
    array.attach_grad()
    function = getattr(mx.nd, op_name)
    results = []
    with autograd.record():
        current = function(array, **attrs)
    for k in range(order):
        if current._entry is None:  # a constant derivative: every later one is zero
            results.extend(np.zeros_like(x) for _ in range(order - k))
            break
        (current,) = autograd.grad(current, [array], create_graph=k < order - 1)
        results.append(current.asnumpy())
    return results


@pytest.mark.parametrize(
    "name, attrs, domain, formulas",
    UNARY,
    ids=[f"{n}-{a['act_type']}" if n == "Activation" else n for n, a, *_ in UNARY],
)
def test_unary_derivatives_match_formulas(name, attrs, domain, formulas):
    if name not in compiler.OPS:
        pytest.skip(f"{name} is not registered")
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.uniform(*domain, (3, 4))
    derivatives = _derivatives_by_autograd(name, attrs, x, 3)
    for k, (got, formula) in enumerate(zip(derivatives, formulas), start=1):
        assert got.dtype == np.float64
        tu.assert_almost_equal(
            got,
            formula(x),
            rtol=1e-10,
            atol=1e-12,
            names=(f"{name} derivative {k} by autograd", "the formula"),
        )


def test_derivative_chain_keeps_dtype_and_shape():
    x = np.linspace(0.1, 0.9, 6).reshape(2, 3)
    for derivative in _derivatives_by_autograd("tanh", {}, x, 3):
        assert derivative.shape == (2, 3) and derivative.dtype == np.float64


# ---------------------------------------------------------------------------
# ops MXNet 1.9.1 cannot differentiate twice, by finite differences
# ---------------------------------------------------------------------------

RNG = np.random.default_rng(20)
A, B = RNG.uniform(0.5, 2.0, (3, 4)), RNG.uniform(0.5, 2.0, (1, 4))
X = RNG.uniform(-1.5, 1.5, (3, 4))

BINARY = {
    "broadcast_add": lambda a, b: mx.nd.broadcast_add(a, b),
    "broadcast_sub": lambda a, b: mx.nd.broadcast_sub(a, b),
    "broadcast_mul": lambda a, b: mx.nd.broadcast_mul(a, b),
    "broadcast_div": lambda a, b: mx.nd.broadcast_div(a, b),
    "broadcast_power": lambda a, b: mx.nd.broadcast_power(a, b),
    "broadcast_maximum": lambda a, b: mx.nd.broadcast_maximum(a, b),
    "broadcast_minimum": lambda a, b: mx.nd.broadcast_minimum(a, b),
    "a + b": lambda a, b: a + b,
    "a - b": lambda a, b: a - b,
    "a * b": lambda a, b: a * b,
    "a / b": lambda a, b: a / b,
    "a ** b": lambda a, b: a**b,
    "b - a (reflected shapes)": lambda a, b: b - a,
}


@pytest.mark.parametrize("name", list(BINARY))
def test_broadcast_arithmetic_higher_order(name):
    op = BINARY[name]
    # Bare (the op's own second derivatives, mixed ones included) and under a
    # nonlinearity (the gradient of the op's gradient, _unbroadcast included).
    tu.check_higher_order(op, [A, B], order=3, what=name)
    tu.check_higher_order(lambda a, b: mx.nd.tanh(op(a, b)), [A, B], order=3, what=f"tanh({name})")


SCALAR_EXPRESSIONS = {
    "x + 2": lambda x: x + 2,
    "2 + x": lambda x: 2 + x,
    "x - 2": lambda x: x - 2,
    "2 - x": lambda x: 2 - x,
    "x * 3": lambda x: x * 3,
    "3 * x": lambda x: 3 * x,
    "x / 3": lambda x: x / 3,
    "2 / x": lambda x: 2 / x,
    "x ** 3": lambda x: x**3,
    "2 ** x": lambda x: 2**x,
    "-x": lambda x: -x,
    "maximum(x, 1)": lambda x: mx.nd.maximum(x, 1.0),
    "minimum(x, 1)": lambda x: mx.nd.minimum(x, 1.0),
}


@pytest.mark.parametrize("name", list(SCALAR_EXPRESSIONS))
def test_scalar_arithmetic_higher_order(name):
    expression = SCALAR_EXPRESSIONS[name]
    tu.check_higher_order(lambda x: mx.nd.sin(expression(x)) * x, [A], order=3, what=name)


def test_scalar_operators_record_mxnet_op_names():
    x = mx.nd.array(A, dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = 2**x
    assert y._entry.node.op.name == "_rpower_scalar"


SUMS = {
    "sum(x^3, axis=1)": lambda x: mx.nd.sum(x * x * x, axis=1),
    "sum(x, axis=0, keepdims)^2": lambda x: mx.nd.square(mx.nd.sum(x, axis=0, keepdims=True)),
    "sum(x)^2 (whole array)": lambda x: mx.nd.square(mx.nd.sum(x)),
    "x * sum(x, exclude)": lambda x: x * mx.nd.sum(x, axis=1, exclude=True, keepdims=True),
    "x.sum(axis=(0, 1)) * x": lambda x: mx.nd.broadcast_mul(x.sum(axis=(0, 1)), x),
}


@pytest.mark.parametrize("name", list(SUMS))
def test_sum_higher_order(name):
    tu.check_higher_order(SUMS[name], [X], order=3, what=name)


@pytest.mark.parametrize("act_type", ["relu", "sigmoid", "tanh", "softrelu", "softsign"])
def test_activation_higher_order(act_type):
    def activation(x, w):
        return mx.nd.Activation(x * w, act_type=act_type)

    tu.check_higher_order(activation, [X, A], order=3, what=f"Activation({act_type})")


W, BIAS = RNG.uniform(-1, 1, (5, 4)), RNG.uniform(-1, 1, (5,))
FULLY_CONNECTED = {
    "bias": (lambda x, w, b: mx.nd.FullyConnected(x, w, b, num_hidden=5), [X, W, BIAS]),
    "tanh, bias": (
        lambda x, w, b: mx.nd.tanh(mx.nd.FullyConnected(x, w, b, num_hidden=5)),
        [X, W, BIAS],
    ),
    "no_bias": (
        lambda x, w: mx.nd.sigmoid(mx.nd.FullyConnected(x, w, num_hidden=5, no_bias=True)),
        [X, W],
    ),
    "flatten": (
        lambda x, w, b: mx.nd.tanh(mx.nd.FullyConnected(x, w, b, num_hidden=5)),
        [X.reshape(3, 2, 2), W, BIAS],
    ),
    "flatten=False": (
        lambda x, w, b: mx.nd.tanh(mx.nd.FullyConnected(x, w, b, num_hidden=5, flatten=False)),
        [RNG.uniform(-1, 1, (2, 3, 4)), W, BIAS],
    ),
}


@pytest.mark.parametrize("name", list(FULLY_CONNECTED))
def test_fully_connected_higher_order(name):
    function, inputs = FULLY_CONNECTED[name]
    tu.check_higher_order(function, inputs, order=3, what=f"FullyConnected({name})")


SOFTMAXES = {
    "softmax": lambda x: mx.nd.softmax(x),
    "softmax(axis=0)": lambda x: mx.nd.softmax(x, axis=0),
    "softmax(temperature=2)": lambda x: mx.nd.softmax(x, temperature=2.0),
    "log_softmax": lambda x: mx.nd.log_softmax(x),
    "log_softmax(axis=0)": lambda x: mx.nd.log_softmax(x, axis=0),
    "log_softmax(temperature=2)": lambda x: mx.nd.log_softmax(x, temperature=2.0),
    "x.softmax() * x": lambda x: x.softmax() * x,
}


@pytest.mark.parametrize("name", list(SOFTMAXES))
def test_softmax_higher_order(name):
    tu.check_higher_order(SOFTMAXES[name], [X], order=3, what=name)


def test_broadcast_to_higher_order():
    tu.check_higher_order(
        lambda b: mx.nd.tanh(mx.nd.broadcast_to(b, shape=(3, 4))) * 2,
        [B],
        order=3,
        what="broadcast_to",
    )


def test_second_derivative_of_a_small_network():
    # A two-layer MLP's Hessian-vector products, through every op above at once.
    def network(x, w1, b1, w2):
        hidden = mx.nd.Activation(
            mx.nd.FullyConnected(x, w1, b1, num_hidden=5), act_type="softrelu"
        )
        scores = mx.nd.FullyConnected(hidden, w2, num_hidden=3, no_bias=True)
        return mx.nd.sum(mx.nd.log_softmax(scores) * 0.5 + 1)

    w2 = RNG.uniform(-1, 1, (3, 5))
    tu.check_higher_order(network, [X, W, BIAS, w2], order=2, what="MLP")
