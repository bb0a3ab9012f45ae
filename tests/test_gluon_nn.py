"""gluon.nn's basic and activation layers, and gluon.contrib.nn's containers.

Each layer is checked against a numpy reference (forward), against float64
finite differences (gradients of the input and of every learned parameter, by
random directional projections), imperatively and hybridized (the hybridized
values and gradients equal the imperative ones). Also: MXNet's parameter names,
prefixes and reprs, deferred shape inference, and second-order gradients through
Dense, BatchNorm and LayerNorm. The convolution and pooling layers are in
test_gluon_conv.py, which reuses the checks defined here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, nd
from symgrad.gluon import nn
from symgrad.gluon.contrib import nn as contrib_nn

RNG = np.random.default_rng(20240601)
FD_EPS = 1e-6
FD_RTOL = 1e-6


# ---------------------------------------------------------------------------
# the checks (also used by test_gluon_conv.py)
# ---------------------------------------------------------------------------


def local_params(layer) -> dict:
    """The layer's own Parameters by local name ('weight', 'gamma'...)."""
    return {name[len(layer.prefix) :]: p for name, p in layer.collect_params().items()}


def setup_layer(layer, values: dict[str, np.ndarray] | None = None):
    """Initialise ``layer`` in float64 and give its parameters ``values``."""
    layer.initialize()
    layer.cast("float64")
    params = local_params(layer)
    for name, value in (values or {}).items():
        params[name].set_data(nd.array(value, dtype="float64"))
    return layer


def _as_array(x: np.ndarray):
    return nd.array(x, dtype=x.dtype)


def forward(layer, x: np.ndarray, train: bool = False) -> np.ndarray:
    """The layer's output on ``x`` (no recording) in train or predict mode."""
    scope = autograd.train_mode() if train else autograd.predict_mode()
    with scope:
        return layer(_as_array(x)).asnumpy()


def analytic(layer, x: np.ndarray, head: np.ndarray, train: bool, input_grad: bool = True):
    """Output, input gradient and parameter gradients of sum(layer(x) * head)."""
    data = _as_array(x)
    if input_grad:
        data.attach_grad()
    with autograd.record(train_mode=train):
        out = layer(data)
    out.backward(nd.array(head, dtype=head.dtype))
    grads = {
        name: p.grad().asnumpy().copy()
        for name, p in local_params(layer).items()
        if p.grad_req != "null"
    }
    return out.asnumpy(), (data.grad.asnumpy().copy() if input_grad else None), grads


def _projected(layer, x, head, train) -> float:
    return float((forward(layer, x, train) * head).sum())


def check_gradients(
    layer, x: np.ndarray, train: bool = False, input_grad: bool = True, rtol: float = FD_RTOL
) -> None:
    """Finite differences (float64, central, along a random direction per tensor)
    against the recorded gradients of the input and of every learned parameter."""
    head = RNG.normal(size=forward(layer, x, train).shape)
    _, grad_x, grads = analytic(layer, x, head, train, input_grad)
    checked = []
    if input_grad:
        direction = RNG.normal(size=x.shape)
        numeric = (
            _projected(layer, x + FD_EPS * direction, head, train)
            - _projected(layer, x - FD_EPS * direction, head, train)
        ) / (2 * FD_EPS)
        assert numeric == pytest.approx(float((grad_x * direction).sum()), rel=rtol, abs=1e-8), (
            "input gradient"
        )
        checked.append("input")
    params = local_params(layer)
    for name, grad in grads.items():
        value = params[name].data().asnumpy().copy()
        direction = RNG.normal(size=value.shape)
        params[name].set_data(value + FD_EPS * direction)
        plus = _projected(layer, x, head, train)
        params[name].set_data(value - FD_EPS * direction)
        minus = _projected(layer, x, head, train)
        params[name].set_data(value)
        numeric = (plus - minus) / (2 * FD_EPS)
        assert numeric == pytest.approx(float((grad * direction).sum()), rel=rtol, abs=1e-8), (
            f"gradient of {name}"
        )
        checked.append(name)
    assert checked, "nothing was differentiated"


def check_layer(
    layer,
    x: np.ndarray,
    reference: Callable[..., np.ndarray],
    values: dict[str, np.ndarray] | None = None,
    train: bool = False,
    input_grad: bool = True,
    rtol: float = 1e-9,
) -> None:
    """Forward against ``reference(x, **values)``, gradients against finite
    differences, then the same layer hybridized: equal values and gradients."""
    setup_layer(layer, values)
    expected = reference(x, **(values or {}))
    np.testing.assert_allclose(forward(layer, x, train), expected, rtol=rtol, atol=1e-12)
    check_gradients(layer, x, train, input_grad)
    head = RNG.normal(size=expected.shape)
    imperative = analytic(layer, x, head, train, input_grad)
    layer.hybridize()
    np.testing.assert_allclose(forward(layer, x, train), expected, rtol=rtol, atol=1e-12)
    hybrid = analytic(layer, x, head, train, input_grad)
    np.testing.assert_allclose(hybrid[0], imperative[0], rtol=1e-12, atol=1e-13)
    if input_grad:
        np.testing.assert_allclose(hybrid[1], imperative[1], rtol=1e-10, atol=1e-12)
    assert hybrid[2].keys() == imperative[2].keys()
    for name in imperative[2]:
        np.testing.assert_allclose(
            hybrid[2][name], imperative[2][name], rtol=1e-10, atol=1e-12, err_msg=name
        )


def check_second_order(layer, x: np.ndarray, train: bool = False) -> None:
    """z = sum(dL/dx ** 2) with L = sum(layer(x) * head), the first gradient taken
    with create_graph=True; z.backward() against finite differences of z in x and
    in each learned parameter (z evaluated through first-order autograd)."""
    head = nd.array(RNG.normal(size=forward(layer, x, train).shape), dtype="float64")

    def z_value(point: np.ndarray) -> float:
        data = _as_array(point)
        data.attach_grad()
        with autograd.record(train_mode=train):
            out = layer(data)
        out.backward(head)
        return float((data.grad.asnumpy() ** 2).sum())

    data = _as_array(x)
    data.attach_grad()
    with autograd.record(train_mode=train):
        out = layer(data)
        (grad_x,) = autograd.grad(out, [data], head_grads=head, create_graph=True)
        z = (grad_x * grad_x).sum()
    z.backward()
    symbolic_x = data.grad.asnumpy().copy()
    symbolic = {
        name: p.grad().asnumpy().copy()
        for name, p in local_params(layer).items()
        if p.grad_req != "null"
    }
    direction = RNG.normal(size=x.shape)
    numeric = (z_value(x + FD_EPS * direction) - z_value(x - FD_EPS * direction)) / (2 * FD_EPS)
    assert numeric == pytest.approx(float((symbolic_x * direction).sum()), rel=1e-5, abs=1e-7)
    params = local_params(layer)
    for name, grad in symbolic.items():
        value = params[name].data().asnumpy().copy()
        direction = RNG.normal(size=value.shape)
        params[name].set_data(value + FD_EPS * direction)
        plus = z_value(x)
        params[name].set_data(value - FD_EPS * direction)
        minus = z_value(x)
        params[name].set_data(value)
        assert (plus - minus) / (2 * FD_EPS) == pytest.approx(
            float((grad * direction).sum()), rel=1e-5, abs=1e-7
        ), name


def data(*shape: int) -> np.ndarray:
    """Float64 normal data."""
    return RNG.normal(size=shape)


# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softrelu": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + abs(x)),
}
_erf = np.vectorize(math.erf)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _normalize(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def _channel(v, ndim, axis=1):
    return v.reshape([-1 if i == axis % ndim else 1 for i in range(ndim)])


# ---------------------------------------------------------------------------
# names, prefixes, reprs (as real MXNet 1.9.1 prints them)
# ---------------------------------------------------------------------------

REPRS = [
    (lambda: nn.Dense(10), "Dense(None -> 10, linear)"),
    (
        lambda: nn.Dense(10, activation="relu", in_units=5, use_bias=False),
        "Dense(5 -> 10, Activation(relu))",
    ),
    (lambda: nn.Dropout(0.3, axes=(1,)), "Dropout(p = 0.3, axes=(1,))"),
    (
        lambda: nn.BatchNorm(),
        "BatchNorm(axis=1, eps=1e-05, momentum=0.9, fix_gamma=False, "
        "use_global_stats=False, in_channels=None)",
    ),
    (
        lambda: nn.BatchNorm(scale=False, in_channels=3),
        "BatchNorm(axis=1, eps=1e-05, momentum=0.9, fix_gamma=True, use_global_stats=False, "
        "in_channels=3)",
    ),
    (
        lambda: nn.LayerNorm(),
        "LayerNorm(eps=1e-05, axis=-1, center=True, scale=True, in_channels=0)",
    ),
    (
        lambda: nn.InstanceNorm(in_channels=3),
        "InstanceNorm(eps=1e-05, axis=1, center=True, scale=False, in_channels=3)",
    ),
    (
        lambda: nn.GroupNorm(num_groups=2),
        "GroupNorm(eps=1e-05, num_groups=2, center=True, scale=True)",
    ),
    (lambda: nn.Embedding(10, 5), "Embedding(10 -> 5, float32)"),
    (lambda: nn.Flatten(), "Flatten"),
    (lambda: nn.Lambda("tanh"), "Lambda(tanh)"),
    (lambda: nn.HybridLambda(lambda F, x: x), "HybridLambda(<lambda>)"),
    (lambda: nn.Activation("relu"), "Activation(relu)"),
    (lambda: nn.LeakyReLU(0.1), "LeakyReLU(0.1)"),
    (lambda: nn.SELU(), "SELU(\n\n)"),
]


@pytest.mark.parametrize(
    "make, text", REPRS, ids=[text.split("(")[0] + str(i) for i, (_, text) in enumerate(REPRS)]
)
def test_repr_as_mxnet_prints_it(make, text):
    assert repr(make()) == text


def test_parameter_names_prefixes_and_grad_reqs():
    dense = nn.Dense(4, prefix="fc_")
    assert sorted(dense.params.keys()) == ["fc_bias", "fc_weight"]
    assert dense.weight.shape == (4, 0) and dense.bias.shape == (4,)
    bn = nn.BatchNorm(prefix="bn_", scale=False, center=True)
    params = bn.params
    assert sorted(params.keys()) == ["bn_beta", "bn_gamma", "bn_running_mean", "bn_running_var"]
    assert [
        params[f"bn_{n}"].grad_req for n in ("gamma", "beta", "running_mean", "running_var")
    ] == ["null", "write", "null", "null"]
    assert nn.Activation("tanh").prefix.startswith("tanh")
    assert nn.MaxPool2D().prefix.startswith("pool")
    assert nn.PReLU(in_channels=3).alpha.shape == (3,)
    assert nn.InstanceNorm().gamma.grad_req == "null"  # scale=False by default
    assert nn.GroupNorm(num_groups=3).gamma.shape == (3,)
    emb = nn.Embedding(7, 2, sparse_grad=True)
    assert emb.weight.shape == (7, 2) and emb.weight.grad_req == "write"
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(nn.Dense(3, activation="tanh"), nn.BatchNorm())
    assert sorted(net.collect_params().keys()) == [
        "net_batchnorm0_beta",
        "net_batchnorm0_gamma",
        "net_batchnorm0_running_mean",
        "net_batchnorm0_running_var",
        "net_dense0_bias",
        "net_dense0_weight",
    ]
    assert net[0].act.prefix == "net_dense0_tanh_"


def test_sequential_repr_nests_children():
    net = nn.HybridSequential()
    net.add(nn.Dense(3, activation="tanh"))
    inner = nn.HybridSequential()
    inner.add(nn.Flatten())
    net.add(inner)
    assert repr(net) == (
        "HybridSequential(\n  (0): Dense(None -> 3, Activation(tanh))\n"
        "  (1): HybridSequential(\n    (0): Flatten\n  )\n)"
    )


# ---------------------------------------------------------------------------
# Dense
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softrelu", "softsign"])
def test_dense(activation):
    x = data(3, 2, 2)
    weight, bias = data(5, 4), data(5)
    act = ACTIVATIONS.get(activation, lambda v: v)
    check_layer(
        nn.Dense(5, activation=activation, in_units=4),
        x,
        lambda x, weight, bias: act(x.reshape(3, -1) @ weight.T + bias),
        {"weight": weight, "bias": bias},
    )


def test_dense_without_flatten_or_bias():
    x = data(2, 3, 4)
    check_layer(
        nn.Dense(5, flatten=False, use_bias=False),
        x,
        lambda x, weight: x @ weight.T,
        {"weight": data(5, 4)},
    )


def test_dense_dtype_and_initializers():
    dense = nn.Dense(
        3,
        in_units=2,
        dtype="float64",
        weight_initializer="ones",
        bias_initializer=mx.init.Constant(0.5),
    )
    dense.initialize()
    out = dense(nd.array([[1.0, 2.0]], dtype="float64"))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.asnumpy(), [[3.5, 3.5, 3.5]])


# ---------------------------------------------------------------------------
# deferred shape inference
# ---------------------------------------------------------------------------

DEFERRED = [
    (lambda: nn.Dense(4), (2, 3, 5), {"weight": (4, 15), "bias": (4,)}),
    (lambda: nn.Dense(4, flatten=False), (2, 3, 5), {"weight": (4, 5)}),
    (lambda: nn.BatchNorm(), (2, 3, 4), {"gamma": (3,), "running_var": (3,)}),
    (lambda: nn.BatchNorm(axis=-1), (2, 3, 4), {"beta": (4,), "running_mean": (4,)}),
    (lambda: nn.LayerNorm(), (2, 3, 4), {"gamma": (4,), "beta": (4,)}),
    (lambda: nn.LayerNorm(axis=1), (2, 3, 4), {"gamma": (3,)}),
    (lambda: nn.InstanceNorm(), (2, 3, 4), {"beta": (3,)}),
]


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("make, shape, expected", DEFERRED)
def test_deferred_shapes_filled_at_first_call(make, shape, expected, hybridize):
    layer = make()
    params = local_params(layer)
    assert 0 in params[next(iter(expected))].shape  # the first one listed is deferred
    layer.initialize()
    if hybridize:
        layer.hybridize()
    layer(nd.array(data(*shape)))
    for name, want in expected.items():
        assert params[name].shape == want
        assert params[name].data().shape == want


def test_deferred_shapes_through_a_sequential():
    net = nn.HybridSequential()
    net.add(nn.Dense(6, activation="relu"), nn.BatchNorm(), nn.Dense(2))
    net.initialize()
    net.hybridize()
    out = net(nd.array(data(4, 3)))
    assert out.shape == (4, 2)
    assert [p.shape for p in net.collect_params().values()] == [
        (6, 3),
        (6,),
        (6,),
        (6,),
        (6,),
        (6,),
        (2, 6),
        (2,),
    ]


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("hybridize", [False, True])
def test_dropout_train_and_predict(hybridize):
    layer = nn.Dropout(0.4)
    layer.initialize()
    if hybridize:
        layer.hybridize()
    x = np.abs(data(50, 40)) + 0.5
    np.testing.assert_array_equal(forward(layer, x), x)  # predict: identity
    out, grad_x, _ = analytic(layer, x, np.ones_like(x), train=True)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.6, rtol=1e-12)
    assert 0.5 < kept.mean() < 0.7
    # the gradient is the mask drawn in the forward pass
    np.testing.assert_allclose(grad_x, kept / 0.6, rtol=1e-12)


def test_dropout_axes_share_the_mask_and_rate_zero_is_identity():
    layer = nn.Dropout(0.5, axes=(1,))
    layer.initialize()
    out = forward(layer, np.ones((30, 7)), train=True)
    assert all(len(set(row)) == 1 for row in out)  # one draw per row
    assert set(np.unique(out)) <= {0.0, 2.0}
    zero = nn.Dropout(0.0)
    x = data(3, 4)
    np.testing.assert_array_equal(forward(zero, x, train=True), x)


# ---------------------------------------------------------------------------
# normalisation layers
# ---------------------------------------------------------------------------


def _batchnorm_reference(axis, eps, train, scale=True):
    def reference(x, gamma, beta, running_mean, running_var):
        axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        if train:
            xhat = _normalize(x, axes, eps)
        else:
            xhat = (x - _channel(running_mean, x.ndim, axis)) / np.sqrt(
                _channel(running_var, x.ndim, axis) + eps
            )
        scaled = xhat * _channel(gamma, x.ndim, axis) if scale else xhat
        return scaled + _channel(beta, x.ndim, axis)

    return reference


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("axis", [1, -1])
def test_batchnorm(train, axis):
    x = data(4, 3, 5)
    channels = x.shape[axis]
    values = {
        "gamma": RNG.uniform(0.5, 1.5, channels),
        "beta": data(channels),
        "running_mean": data(channels),
        "running_var": RNG.uniform(0.5, 2, channels),
    }
    check_layer(
        nn.BatchNorm(axis=axis, epsilon=1e-3),
        x,
        _batchnorm_reference(axis, 1e-3, train),
        values,
        train=train,
    )


def test_batchnorm_without_scale_fixes_gamma_and_use_global_stats():
    x = data(4, 3, 2)
    values = {
        "gamma": np.full(3, 3.0),
        "beta": data(3),
        "running_mean": data(3),
        "running_var": RNG.uniform(0.5, 2, 3),
    }
    layer = nn.BatchNorm(scale=False)
    check_layer(layer, x, _batchnorm_reference(1, 1e-5, True, scale=False), values, train=True)
    assert "gamma" not in analytic(layer, x, np.ones_like(x), train=True)[2]
    check_layer(
        nn.BatchNorm(use_global_stats=True),
        x,
        _batchnorm_reference(1, 1e-5, False),
        values,
        train=True,
    )


def test_batchnorm_running_statistics_update_in_training():
    x = data(6, 3, 4)
    layer = setup_layer(nn.BatchNorm(momentum=0.8))
    analytic(layer, x, np.ones_like(x), train=True)
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2))
    np.testing.assert_allclose(layer.running_mean.data().asnumpy(), 0.2 * mean, rtol=1e-10)
    np.testing.assert_allclose(layer.running_var.data().asnumpy(), 0.8 + 0.2 * var, rtol=1e-10)
    before = layer.running_mean.data().asnumpy().copy()
    forward(layer, x, train=False)  # prediction leaves them alone
    np.testing.assert_array_equal(layer.running_mean.data().asnumpy(), before)


def test_batchnorm_running_statistics_update_when_hybridized():
    x = data(6, 3, 4)
    layer = setup_layer(nn.BatchNorm())
    layer.hybridize()
    analytic(layer, x, np.ones_like(x), train=True)
    np.testing.assert_allclose(
        layer.running_mean.data().asnumpy(), 0.1 * x.mean(axis=(0, 2)), rtol=1e-10
    )


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("center, scale", [(True, True), (False, False)])
def test_layernorm(axis, center, scale):
    x = data(3, 4, 5)
    channels = x.shape[axis]
    gamma, beta = RNG.uniform(0.5, 1.5, channels), data(channels)
    values = {"gamma": gamma, "beta": beta}

    def reference(x, gamma, beta):
        return _normalize(x, (axis % 3,), 1e-4) * _channel(gamma, 3, axis) + _channel(beta, 3, axis)

    layer = nn.LayerNorm(axis=axis, epsilon=1e-4, center=center, scale=scale)
    check_layer(layer, x, reference, values)
    assert set(analytic(layer, x, np.ones_like(x), False)[2]) == {
        name for name, on in (("gamma", scale), ("beta", center)) if on
    }


@pytest.mark.parametrize("axis", [1, 2])
def test_instancenorm(axis):
    x = data(2, 3, 4, 5)
    channels = x.shape[axis]
    values = {"gamma": RNG.uniform(0.5, 1.5, channels), "beta": data(channels)}

    def reference(x, gamma, beta):
        moved = np.swapaxes(x, 1, axis)
        out = _normalize(moved, (2, 3), 1e-5) * _channel(gamma, 4) + _channel(beta, 4)
        return np.swapaxes(out, 1, axis)

    check_layer(nn.InstanceNorm(axis=axis, scale=True), x, reference, values)


@pytest.mark.parametrize("shape", [(2, 6, 5), (3, 4)])
def test_groupnorm(shape):
    x = data(*shape)
    values = {"gamma": RNG.uniform(0.5, 1.5, 2), "beta": data(2)}

    def reference(x, gamma, beta):
        grouped = x.reshape(x.shape[0], 2, -1)
        out = _normalize(grouped, (2,), 1e-5) * gamma.reshape(1, 2, 1) + beta.reshape(1, 2, 1)
        return out.reshape(x.shape)

    check_layer(nn.GroupNorm(num_groups=2), x, reference, values)


# ---------------------------------------------------------------------------
# Embedding, Flatten, Lambda, HybridLambda, Identity
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sparse_grad", [False, True])
def test_embedding(sparse_grad):
    indices = np.array([[0, 3, 3], [5, 1, 0]], dtype=np.float64)
    weight = data(6, 4)
    layer = nn.Embedding(6, 4, sparse_grad=sparse_grad)
    check_layer(
        layer,
        indices,
        lambda x, weight: weight[x.astype(int)],
        {"weight": weight},
        input_grad=False,
    )
    head = data(2, 3, 4)
    grad = analytic(layer, indices, head, train=False, input_grad=False)[2]["weight"]
    expected = np.zeros_like(weight)
    np.add.at(expected, indices.astype(int).ravel(), head.reshape(-1, 4))
    np.testing.assert_allclose(grad, expected, rtol=1e-12)  # dense, repeated rows added


def test_flatten_identity_and_lambdas():
    x = data(2, 3, 4)
    check_layer(nn.Flatten(), x, lambda x: x.reshape(2, 12))
    check_layer(contrib_nn.Identity(), x, lambda x: x)
    check_layer(nn.HybridLambda("tanh"), x, np.tanh)
    check_layer(nn.HybridLambda(lambda F, x: F.sigmoid(x) * 2), x, lambda x: 2 * _sigmoid(x))
    assert contrib_nn.Identity is nn.Identity
    lam = nn.Lambda("exp")
    np.testing.assert_allclose(lam(nd.array(x, dtype="float64")).asnumpy(), np.exp(x))
    two = nn.Lambda(lambda a, b: a * b)
    np.testing.assert_allclose(
        two(nd.array(x), nd.array(x)).asnumpy(), (x.astype(np.float32) ** 2), rtol=1e-6
    )
    with pytest.raises(AssertionError):
        nn.Lambda("no_such_function")
    with pytest.raises(AssertionError):
        nn.HybridLambda("no_such_function")


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------

ACTIVATION_LAYERS = [
    ("relu", lambda: nn.Activation("relu"), ACTIVATIONS["relu"]),
    ("sigmoid", lambda: nn.Activation("sigmoid"), _sigmoid),
    ("tanh", lambda: nn.Activation("tanh"), np.tanh),
    ("softrelu", lambda: nn.Activation("softrelu"), ACTIVATIONS["softrelu"]),
    ("softsign", lambda: nn.Activation("softsign"), ACTIVATIONS["softsign"]),
    ("leaky", lambda: nn.LeakyReLU(0.15), lambda x: np.where(x > 0, x, 0.15 * x)),
    ("elu", lambda: nn.ELU(0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    (
        "selu",
        lambda: nn.SELU(),
        lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    ),
    ("swish", lambda: nn.Swish(1.5), lambda x: x * _sigmoid(1.5 * x)),
    ("gelu", lambda: nn.GELU(), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
]


@pytest.mark.parametrize(
    "name, make, reference", ACTIVATION_LAYERS, ids=[a[0] for a in ACTIVATION_LAYERS]
)
def test_activation_layers(name, make, reference):
    # away from the kinks at 0, where finite differences straddle two slopes
    x = data(3, 4)
    x = np.where(abs(x) < 0.05, 0.3, x)
    check_layer(make(), x, reference)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_prelu(in_channels):
    x = data(2, 3, 4)
    x = np.where(abs(x) < 0.05, -0.3, x)
    alpha = RNG.uniform(0.1, 0.4, in_channels)
    check_layer(
        nn.PReLU(in_channels=in_channels),
        x,
        lambda x, alpha: np.where(x > 0, x, x * _channel(alpha, 3)),
        {"alpha": alpha},
    )


def test_prelu_default_alpha_is_a_quarter():
    layer = nn.PReLU()
    layer.initialize()
    np.testing.assert_allclose(layer.alpha.data().asnumpy(), [0.25])
    np.testing.assert_allclose(layer(nd.array([[-4.0, 2.0]])).asnumpy(), [[-1.0, 2.0]])


def test_leaky_relu_rejects_a_negative_slope():
    with pytest.raises(AssertionError):
        nn.LeakyReLU(-0.1)


# ---------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------


def test_sequential_and_hybrid_sequential_chain_their_children():
    x = data(4, 3)
    w1, b1, w2, b2 = data(5, 3), data(5), data(2, 5), data(2)
    expected = np.tanh(x @ w1.T + b1) @ w2.T + b2
    for container in (nn.Sequential, nn.HybridSequential):
        net = container()
        with net.name_scope():
            net.add(nn.Dense(5, activation="tanh"), nn.Dense(2))
        net.initialize()
        net.cast("float64")
        for layer, (w, b) in zip(net, ((w1, b1), (w2, b2))):
            layer.weight.set_data(w)
            layer.bias.set_data(b)
        np.testing.assert_allclose(forward(net, x), expected, rtol=1e-10)
        assert len(net) == 2 and isinstance(net[1], nn.Dense)
        head = net[:1]
        assert type(head) is container and len(head) == 1
        np.testing.assert_allclose(forward(head, x), np.tanh(x @ w1.T + b1), rtol=1e-10)
    check_gradients(net, x)
    net.hybridize()
    np.testing.assert_allclose(forward(net, x), expected, rtol=1e-10)


def test_hybrid_sequential_refuses_plain_blocks_and_sequential_warns_on_hybridize():
    with pytest.raises(ValueError):
        nn.HybridSequential().add(nn.Lambda("tanh"))
    net = nn.Sequential()
    net.add(nn.Dense(2))
    with pytest.warns(UserWarning, match="HybridSequential"):
        net.hybridize()


@pytest.mark.parametrize("container", ["HybridConcurrent", "Concurrent"])
def test_concurrent_concatenates_its_children(container):
    x = data(3, 4)
    w1, b1, w2, b2 = data(2, 4), data(2), data(5, 4), data(5)
    net = getattr(contrib_nn, container)(axis=1)
    with net.name_scope():
        net.add(nn.Dense(2, in_units=4), nn.Dense(5, in_units=4), contrib_nn.Identity())
    assert repr(net).startswith(f"{container}(\n  (0): Dense(4 -> 2, linear)")

    def reference(x):
        return np.concatenate([x @ w1.T + b1, x @ w2.T + b2, x], axis=1)

    setup_layer(net)
    for layer, (w, b) in zip(list(net._children.values()), ((w1, b1), (w2, b2))):
        layer.weight.set_data(w)
        layer.bias.set_data(b)
    np.testing.assert_allclose(forward(net, x), reference(x), rtol=1e-10)
    check_gradients(net, x)
    if container == "HybridConcurrent":
        net.hybridize()
        np.testing.assert_allclose(forward(net, x), reference(x), rtol=1e-10)
        check_gradients(net, x)


# ---------------------------------------------------------------------------
# second order
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("hybridize", [False, True])
def test_second_order_through_dense(hybridize):
    layer = setup_layer(nn.Dense(3, activation="tanh"), {"weight": data(3, 4), "bias": data(3)})
    if hybridize:
        layer.hybridize()
    check_second_order(layer, data(2, 4))


@pytest.mark.parametrize("hybridize", [False, True])
def test_second_order_through_batchnorm(hybridize):
    layer = setup_layer(nn.BatchNorm(), {"gamma": RNG.uniform(0.5, 1.5, 3), "beta": data(3)})
    if hybridize:
        layer.hybridize()
    check_second_order(layer, data(4, 3, 2), train=True)


@pytest.mark.parametrize("hybridize", [False, True])
def test_second_order_through_layernorm(hybridize):
    layer = setup_layer(nn.LayerNorm(), {"gamma": RNG.uniform(0.5, 1.5, 5), "beta": data(5)})
    if hybridize:
        layer.hybridize()
    check_second_order(layer, data(3, 5))


# ---------------------------------------------------------------------------
# symbols
# ---------------------------------------------------------------------------


def test_layers_called_on_a_symbol_list_mxnet_arguments():
    net = nn.HybridSequential(prefix="cnn_")
    with net.name_scope():
        net.add(
            nn.BatchNorm(),
            nn.Dense(2, activation="tanh"),
            nn.LayerNorm(),
            nn.GroupNorm(2),
            nn.PReLU(),
        )
    out = net(mx.sym.var("data"))
    assert isinstance(out, mx.sym.Symbol)
    assert out.list_arguments() == [
        "data",
        "cnn_batchnorm0_gamma",
        "cnn_batchnorm0_beta",
        "cnn_dense0_weight",
        "cnn_dense0_bias",
        "cnn_layernorm0_gamma",
        "cnn_layernorm0_beta",
        "cnn_groupnorm0_gamma",
        "cnn_groupnorm0_beta",
        "cnn_prelu0_alpha",
    ]
    assert out.list_auxiliary_states() == [
        "cnn_batchnorm0_running_mean",
        "cnn_batchnorm0_running_var",
    ]
    args, outs, aux = out.infer_shape(data=(3, 5))
    assert args[3:] == [(2, 5), (2,), (2,), (2,), (2,), (2,), (1,)] and outs == [(3, 2)]
    assert aux == [(5,), (5,)]


def test_symbolic_shapes_of_groupnorm_and_prelu_parameters():
    """As MXNet infers them: GroupNorm's gamma/beta (num_groups,), prelu's gamma
    (channels,)."""
    group = mx.sym.GroupNorm(mx.sym.var("data"), num_groups=2, name="gn")
    assert group.list_arguments() == ["data", "gn_gamma", "gn_beta"]
    assert group.infer_shape(data=(2, 4, 3))[0] == [(2, 4, 3), (2,), (2,)]
    prelu = mx.sym.LeakyReLU(mx.sym.var("data"), act_type="prelu", name="p")
    assert prelu.infer_shape(data=(2, 4, 3))[0] == [(2, 4, 3), (4,)]


# ---------------------------------------------------------------------------
# sharing, casting, errors
# ---------------------------------------------------------------------------


def test_layers_share_parameters_through_params():
    first = nn.Dense(3, in_units=2, prefix="shared_")
    second = nn.Dense(3, in_units=2, params=first.params)
    assert second.weight is first.weight and second.bias is first.bias
    first.initialize()
    x = nd.array(data(4, 2))
    np.testing.assert_array_equal(first(x).asnumpy(), second(x).asnumpy())


def test_batchnorm_keeps_float32_when_cast_to_float16():
    layer = nn.BatchNorm(in_channels=2)
    layer.initialize()
    layer.cast("float16")
    assert layer.gamma.data().dtype == np.float32
    dense = nn.Dense(2, in_units=2)
    dense.initialize()
    dense.cast("float16")
    assert dense.weight.data().dtype == np.float16


def test_a_wrong_input_size_is_an_error_naming_the_shapes():
    layer = nn.Dense(3, in_units=4)
    layer.initialize()
    with pytest.raises(Exception, match=r"\(3, 4\)|\(3, 5\)"):
        layer(nd.ones((2, 5)))


def test_sequential_mixes_plain_and_hybrid_blocks():
    net = nn.Sequential()
    with net.name_scope():
        net.add(
            nn.Dense(3, in_units=2, weight_initializer="ones"),
            nn.Lambda("negative"),
            nn.Activation("relu"),
        )
    net.initialize()
    x = nd.array([[1.0, -3.0], [2.0, 1.0]])
    expected = np.maximum(-(x.asnumpy() @ np.ones((2, 3))), 0)
    np.testing.assert_allclose(net(x).asnumpy(), expected)
    net[2].hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), expected)
