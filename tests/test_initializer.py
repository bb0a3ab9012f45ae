"""``mx.init``: values and statistics of each initializer against numpy formulas,
dispatch by name as MXNet 1.x dispatches, create/register/alias/dumps, and
reproducibility under ``mx.random.seed``."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import symgrad as mx
from symgrad import initializer as init_module

init = mx.init


def _filled(initializer, name: str, shape, dtype="float32", start: float = 7.0) -> np.ndarray:
    """Run ``initializer`` on an array of ``shape`` (filled with ``start`` first) under
    ``InitDesc(name)`` and return the values written."""
    arr = mx.nd.full(shape, start, dtype=dtype)
    initializer(init.InitDesc(name), arr)
    return arr.asnumpy()


@pytest.fixture
def registry_guard():
    """Undo registrations a test makes."""
    saved = dict(init_module._REGISTRY)
    yield
    init_module._REGISTRY.clear()
    init_module._REGISTRY.update(saved)


class _Sevens(init.Initializer):
    """Writes 7 into weights, to show which method dispatch chose."""

    def _init_weight(self, _, arr):
        arr[:] = 7.0


# -- namespaces ---------------------------------------------------------------------
def test_init_and_initializer_are_one_module():
    assert mx.init is mx.initializer
    for name in [
        "InitDesc",
        "Initializer",
        "register",
        "alias",
        "create",
        "Zero",
        "One",
        "Constant",
        "Uniform",
        "Normal",
        "Orthogonal",
        "Xavier",
        "MSRAPrelu",
        "Bilinear",
        "LSTMBias",
        "Mixed",
        "Load",
    ]:
        assert hasattr(mx.init, name), name


# -- InitDesc -----------------------------------------------------------------------
def test_init_desc_is_a_string_with_attrs_and_global_init():
    desc = init.InitDesc("fc1_weight", {"__init__": "zeros"})
    assert isinstance(desc, str) and desc == "fc1_weight" and desc.endswith("weight")
    assert desc.attrs == {"__init__": "zeros"} and desc.global_init is None
    plain = init.InitDesc("x")
    assert plain.attrs == {} and plain.global_init is None
    one = init.One()
    assert init.InitDesc("x", global_init=one).global_init is one


def test_call_records_the_first_initializer_as_global_init():
    desc = init.InitDesc("fc_bias")
    first, second = init.Uniform(), init.Normal()
    first(desc, mx.nd.zeros((2,)))
    second(desc, mx.nd.zeros((2,)))
    assert desc.global_init is first


# -- dispatch by name ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected",
    [
        ("fc_weight", 7.0),
        ("fc_bias", 0.0),
        ("bn_gamma", 1.0),
        ("bn_beta", 0.0),
        ("q_min", 0.0),
        ("q_max", 1.0),
    ],
)
def test_dispatch_by_suffix(name, expected):
    np.testing.assert_array_equal(
        _filled(_Sevens(), name, (3, 2), start=-5.0), np.full((3, 2), expected)
    )


@pytest.mark.parametrize("name", ["bn_moving_mean", "bn_moving_var", "data", "x"])
def test_unknown_suffix_raises_mxnets_error(name):
    with pytest.raises(ValueError, match=f"Unknown initialization pattern for {name}"):
        _filled(_Sevens(), name, (3,))


def test_init_attribute_overrides_the_suffix():
    """An ``__init__`` attr (a name, dumps() JSON, or an instance) picks that
    initializer's weight rule, whatever the name ends with."""
    for spec in ["ones", init.One().dumps(), init.One()]:
        arr = mx.nd.zeros((2, 2))
        init.Uniform()(init.InitDesc("fc_bias", {"__init__": spec}), arr)
        np.testing.assert_array_equal(arr.asnumpy(), np.ones((2, 2)))
    arr = mx.nd.zeros((2,))
    init.Uniform()(init.InitDesc("bn_moving_var", {"__init__": "ones"}), arr)
    np.testing.assert_array_equal(arr.asnumpy(), np.ones(2))
    # Gluon passes init=None for a parameter without its own: dispatch by suffix then.
    arr = mx.nd.full((2,), 3.0)
    init.One()(init.InitDesc("fc_bias", {"__init__": None}), arr)
    np.testing.assert_array_equal(arr.asnumpy(), np.zeros(2))


def test_init_attribute_from_sym_var_round_trips():
    var = mx.sym.var("w", init=init.Xavier(magnitude=2))
    chosen = init.create(
        var.attr("__init__") if hasattr(var, "attr") else var.list_attr()["__init__"]
    )
    assert isinstance(chosen, init.Xavier) and chosen.magnitude == 2.0


@pytest.mark.parametrize(
    "name, expected",
    [
        ("fc_weight", 7.0),
        ("fc_bias", 0.0),
        ("bn_gamma", 1.0),
        ("bn_beta", 0.0),
        ("bn_moving_mean", 0.0),
        ("bn_moving_var", 1.0),
        ("bn_moving_inv_var", 0.0),
        ("bn_moving_avg", 0.0),
        ("q_min", 0.0),
        ("q_max", 1.0),
        ("stn_loc_weight", 0.0),
    ],
)
def test_legacy_string_names_warn_and_dispatch(name, expected):
    arr = mx.nd.full((6,), -3.0)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        _Sevens()(name, arr)
    np.testing.assert_array_equal(arr.asnumpy(), np.full(6, expected))


def test_legacy_special_names():
    arr = mx.nd.full((6,), -3.0)
    with pytest.warns(DeprecationWarning):
        _Sevens()("stn_loc_bias", arr)
    np.testing.assert_array_equal(arr.asnumpy(), [1, 0, 0, 0, 1, 0])
    arr = mx.nd.zeros((1, 1, 3, 3))
    with pytest.warns(DeprecationWarning):
        _Sevens()("upsampling0_weight", arr)
    np.testing.assert_allclose(arr.asnumpy(), _bilinear_reference((1, 1, 3, 3)))
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="name must be"):
        _Sevens()(3, mx.nd.zeros((2,)))
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="arr must be"):
        _Sevens()("w_weight", np.zeros(2))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="Unknown"):
        _Sevens()("data", mx.nd.zeros((2,)))


def test_base_initializer_needs_init_weight():
    with pytest.raises(NotImplementedError):
        init.Initializer()(init.InitDesc("fc_weight"), mx.nd.zeros((2,)))
    # but biases and norms have defaults
    np.testing.assert_array_equal(_filled(init.Initializer(), "bn_gamma", (2,)), [1, 1])


def test_quantized_weight_draws_int8_in_range():
    arr = mx.nd.zeros((2000,), dtype="int8")
    _Sevens()(init.InitDesc("conv_weight_quantize"), arr)
    values = arr.asnumpy()
    assert values.dtype == np.int8 and values.min() >= -127 and values.max() <= 126
    assert len(np.unique(values)) > 200
    np.testing.assert_array_equal(_filled(_Sevens(), "conv_bias_quantize", (3,)), 0)


# -- create, register, alias, dumps -------------------------------------------------
@pytest.mark.parametrize(
    "name, klass",
    [
        ("zero", init.Zero),
        ("zeros", init.Zero),
        ("ones", init.One),
        ("one", init.One),
        ("Xavier", init.Xavier),
        ("xavier", init.Xavier),
        ("uniform", init.Uniform),
        ("normal", init.Normal),
        ("orthogonal", init.Orthogonal),
        ("msraprelu", init.MSRAPrelu),
        ("bilinear", init.Bilinear),
        ("lstmbias", init.LSTMBias),
        ("MSRAPrelu", init.MSRAPrelu),
    ],
)
def test_create_by_name(name, klass):
    assert type(init.create(name)) is klass


def test_create_forms():
    assert init.create("constant", 2.5).value == 2.5
    assert init.create("uniform", scale=0.5).scale == 0.5
    assert init.create({"initializer": "uniform", "scale": 0.25}).scale == 0.25
    assert init.create(initializer="normal", sigma=0.5).sigma == 0.5
    assert init.create('["xavier", {"magnitude": 2}]').magnitude == 2.0
    assert init.create('{"initializer": "normal", "sigma": 0.2}').sigma == 0.2
    instance = init.Normal()
    assert init.create(instance) is instance
    with pytest.raises(AssertionError, match="already an instance"):
        init.create(instance, 3)
    with pytest.raises(AssertionError, match="nope is not registered"):
        init.create("nope")
    with pytest.raises(AssertionError, match="mixed is not registered"):
        init.create("mixed")


@pytest.mark.parametrize(
    "initializer, text",
    [
        (init.Zero(), '["zero", {}]'),
        (init.One(), '["one", {}]'),
        (init.Constant(2.5), '["constant", {"value": 2.5}]'),
        (init.Constant(np.array([1.0, 2.0])), '["constant", {"value": [1.0, 2.0]}]'),
        (init.Constant(mx.nd.array([1, 2])), '["constant", {"value": [1.0, 2.0]}]'),
        (init.Uniform(), '["uniform", {"scale": 0.07}]'),
        (init.Normal(), '["normal", {"sigma": 0.01}]'),
        (
            init.Xavier(),
            '["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]',
        ),
        (init.MSRAPrelu(), '["msraprelu", {"factor_type": "avg", "slope": 0.25}]'),
        (init.Orthogonal(), '["orthogonal", {"scale": 1.414, "rand_type": "uniform"}]'),
        (init.Bilinear(), '["bilinear", {}]'),
        (init.LSTMBias(), '["lstmbias", {"forget_bias": 1.0}]'),
        (init.Initializer(a=1), '["initializer", {"a": 1}]'),
    ],
)
def test_dumps_is_mxnets_json(initializer, text):
    assert initializer.dumps() == text


@pytest.mark.parametrize(
    "initializer",
    [
        init.Zero(),
        init.One(),
        init.Constant(-1.5),
        init.Uniform(0.3),
        init.Normal(0.2),
        init.Xavier("gaussian", "in", 2),
        init.MSRAPrelu("out", 0.1),
        init.Orthogonal(0.5, "normal"),
        init.Bilinear(),
        init.LSTMBias(2.0),
    ],
)
def test_dumps_round_trips_through_create(initializer):
    again = init.create(initializer.dumps())
    assert type(again) is type(initializer) and again == initializer
    assert again.__dict__ == initializer.__dict__


def test_equality_is_by_class_and_arguments():
    assert init.Xavier() == init.Xavier() and init.Uniform(0.07) == init.Uniform(scale=0.07)
    assert init.Xavier() != init.Xavier(magnitude=2) and init.Xavier() != init.Uniform()
    assert init.Zero() != "zero"
    with pytest.raises(TypeError):
        hash(init.Zero())


def test_register_and_alias(registry_guard):
    @init.alias("fives", "FIVE_ALIAS")
    @init.register
    class Fives(init.Initializer):
        def __init__(self, offset=0.0):
            super().__init__(offset=offset)
            self.offset = offset

        def _init_weight(self, _, arr):
            arr[:] = 5.0 + self.offset

    for name in ["fives", "Fives", "five_alias"]:
        assert type(init.create(name)) is Fives
    made = init.create(Fives(1.5).dumps())
    np.testing.assert_array_equal(_filled(made, "w_weight", (2,)), [6.5, 6.5])
    np.testing.assert_array_equal(_filled(made, "w_bias", (2,)), [0.0, 0.0])

    with pytest.warns(UserWarning, match="overriding existing initializer"):

        @init.register
        class fives(init.Initializer):  # noqa: N801  (same registered name on purpose)
            pass

    assert init.create("fives").__class__ is fives
    with pytest.raises(TypeError):
        init.register(dict)


# -- constant initializers ----------------------------------------------------------
def test_zero_one_constant():
    np.testing.assert_array_equal(_filled(init.Zero(), "w_weight", (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(_filled(init.One(), "w_weight", (2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(_filled(init.Constant(-2.5), "w_weight", (4,)), [-2.5] * 4)
    row = mx.nd.array([[1, 2, 3]])
    np.testing.assert_array_equal(
        _filled(init.Constant(row), "w_weight", (2, 3)), [[1, 2, 3], [1, 2, 3]]
    )
    np.testing.assert_array_equal(
        _filled(init.Constant(np.arange(3.0)), "w_weight", (3,)), [0, 1, 2]
    )
    # the suffix still decides: a Constant initializer leaves biases at 0
    np.testing.assert_array_equal(_filled(init.Constant(4.0), "w_bias", (3,)), [0, 0, 0])


def test_writes_in_place_and_keeps_dtype():
    arr = mx.nd.zeros((3, 4), dtype="float64")
    before = arr
    init.Uniform(0.5)(init.InitDesc("w_weight"), arr)
    assert arr is before and arr.dtype == np.float64 and np.abs(arr.asnumpy()).max() > 0
    arr16 = mx.nd.zeros((100,), dtype="float16")
    init.Normal(1.0)(init.InitDesc("w_weight"), arr16)
    assert arr16.dtype == np.float16 and arr16.asnumpy().std() > 0.5


def test_random_initializer_rejects_integer_arrays():
    with pytest.raises(mx.MXNetError, match="int32"):
        init.Uniform()(init.InitDesc("w_weight"), mx.nd.zeros((2,), dtype="int32"))


# -- random initializers: draws equal seeded draws of the right distribution ------------
def _seeded(seed: int, draw) -> np.ndarray:
    mx.random.seed(seed)
    return draw().asnumpy()


def test_uniform_is_seeded_uniform_draws_of_its_scale():
    got = _seeded(11, lambda: _init_array(init.Uniform(0.3), (200, 300)))
    want = _seeded(11, lambda: mx.nd.random.uniform(-0.3, 0.3, shape=(200, 300)))
    np.testing.assert_array_equal(got, want)
    assert -0.3 <= got.min() < -0.299 and 0.299 < got.max() < 0.3
    assert abs(got.mean()) < 0.003 and abs(got.var() - 0.3**2 / 3) < 0.0015


def test_normal_is_seeded_normal_draws_of_its_sigma():
    got = _seeded(12, lambda: _init_array(init.Normal(0.5), (200, 300)))
    want = _seeded(12, lambda: mx.nd.random.normal(0, 0.5, shape=(200, 300)))
    np.testing.assert_array_equal(got, want)
    assert abs(got.mean()) < 0.01 and abs(got.std() - 0.5) < 0.01


def _init_array(initializer, shape, name="w_weight", dtype="float32"):
    arr = mx.nd.zeros(shape, dtype=dtype)
    initializer(init.InitDesc(name), arr)
    return arr


def _xavier_scale(shape, factor_type, magnitude):
    receptive = np.prod(shape[2:]) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    factor = {"avg": (fan_in + fan_out) / 2, "in": fan_in, "out": fan_out}[factor_type]
    return np.sqrt(magnitude / factor)


@pytest.mark.parametrize("shape", [(120, 80), (64, 32, 3, 3), (16, 8, 2, 3, 4)])
@pytest.mark.parametrize("factor_type", ["avg", "in", "out"])
@pytest.mark.parametrize("rnd_type", ["uniform", "gaussian"])
def test_xavier_scale_for_every_rnd_and_factor_type(shape, factor_type, rnd_type):
    scale = _xavier_scale(shape, factor_type, 2.5)
    got = _seeded(3, lambda: _init_array(init.Xavier(rnd_type, factor_type, 2.5), shape))
    draw = mx.nd.random.uniform if rnd_type == "uniform" else mx.nd.random.normal
    low = -scale if rnd_type == "uniform" else 0.0
    want = _seeded(3, lambda: draw(low, scale, shape=shape))
    np.testing.assert_array_equal(got, want)
    if rnd_type == "uniform":
        assert np.abs(got).max() <= scale and np.abs(got).max() > 0.99 * scale
        assert abs(got.std() - scale / np.sqrt(3)) < 0.03 * scale
    else:
        assert abs(got.std() - scale) < 0.03 * scale


def test_xavier_conv_fans_by_hand():
    # (out=4, in=3, 2x2 kernel): fan_in = 12, fan_out = 16, avg 14 -> sqrt(3/14)
    assert np.isclose(_xavier_scale((4, 3, 2, 2), "avg", 3), np.sqrt(3 / 14))
    got = _seeded(0, lambda: _init_array(init.Xavier(), (4, 3, 2, 2)))
    want = _seeded(
        0, lambda: mx.nd.random.uniform(-np.sqrt(3 / 14), np.sqrt(3 / 14), shape=(4, 3, 2, 2))
    )
    np.testing.assert_array_equal(got, want)


def test_xavier_errors():
    with pytest.raises(ValueError, match="cannot be applied to vector fc_weight"):
        _init_array(init.Xavier(), (5,), name="fc_weight")
    with pytest.raises(ValueError, match="Incorrect factor type"):
        _init_array(init.Xavier(factor_type="fan"), (3, 3))
    with pytest.raises(ValueError, match="Unknown random type"):
        _init_array(init.Xavier(rnd_type="cauchy"), (3, 3))
    # Xavier's suffix rules still apply: a 1-d bias is zeros, not an error
    np.testing.assert_array_equal(_init_array(init.Xavier(), (5,), name="fc_bias").asnumpy(), 0)


@pytest.mark.parametrize("slope", [0.25, 0.0, 1.0])
def test_msra_prelu_is_gaussian_xavier_with_prelu_magnitude(slope):
    initializer = init.MSRAPrelu("in", slope)
    assert initializer.rnd_type == "gaussian"
    assert initializer.magnitude == pytest.approx(2 / (1 + slope**2))
    shape = (96, 48, 3, 3)
    got = _seeded(4, lambda: _init_array(initializer, shape))
    scale = np.sqrt(2 / (1 + slope**2) / (48 * 9))
    want = _seeded(4, lambda: mx.nd.random.normal(0, scale, shape=shape))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert abs(got.std() - scale) < 0.02 * scale


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (4, 2, 3), (6, 2, 2, 2)])
@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
def test_orthogonal_is_scaled_orthogonal(shape, rand_type):
    got = _init_array(init.Orthogonal(scale=1.5, rand_type=rand_type), shape).asnumpy()
    matrix = got.reshape(shape[0], -1).astype(np.float64)
    rows, columns = matrix.shape
    gram = matrix @ matrix.T if rows <= columns else matrix.T @ matrix
    np.testing.assert_allclose(gram, 1.5**2 * np.eye(min(rows, columns)), atol=1e-5)


def test_orthogonal_factor_comes_from_the_svd_of_seeded_draws():
    got = _seeded(8, lambda: _init_array(init.Orthogonal(), (3, 2, 3)))
    draws = _seeded(8, lambda: mx.nd.random.uniform(-1, 1, shape=(3, 6)))
    left, _, right = np.linalg.svd(draws, full_matrices=False)
    np.testing.assert_allclose(got, 1.414 * right.reshape(3, 2, 3), rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown random type"):
        _init_array(init.Orthogonal(rand_type="cauchy"), (2, 2))


@pytest.mark.parametrize(
    "initializer",
    [
        init.Uniform(),
        init.Normal(),
        init.Xavier(),
        init.Xavier("gaussian", "out", 2),
        init.MSRAPrelu(),
        init.Orthogonal(),
        init.Orthogonal(rand_type="normal"),
    ],
)
def test_seed_makes_initialisation_reproducible(initializer):
    shape = (6, 4, 3, 3)
    first = _seeded(2024, lambda: _init_array(initializer, shape))
    second = _seeded(2024, lambda: _init_array(initializer, shape))
    np.testing.assert_array_equal(first, second)
    other = _seeded(2025, lambda: _init_array(initializer, shape))
    assert not np.array_equal(first, other)
    # without reseeding, the next draw differs
    assert not np.array_equal(second, _init_array(initializer, shape).asnumpy())


# -- exact kernels ------------------------------------------------------------------
def _bilinear_reference(shape):
    """MXNet's bilinear kernel, element by element."""
    weight = np.zeros(int(np.prod(shape)))
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(weight.size):
        x = i % shape[3]
        y = (i // shape[3]) % shape[2]
        weight[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return weight.reshape(shape)


@pytest.mark.parametrize(
    "shape", [(1, 1, 3, 3), (3, 2, 4, 5), (2, 1, 4, 4), (1, 1, 2, 6), (2, 1, 3, 4, 5)]
)
def test_bilinear_kernel_exactly(shape):
    got = _init_array(init.Bilinear(), shape).asnumpy()
    np.testing.assert_array_equal(got, _bilinear_reference(shape).astype(np.float32))


def test_bilinear_known_values_and_errors():
    got = _init_array(init.Bilinear(), (1, 1, 4, 4)).asnumpy()[0, 0]
    # upsampling by 2: f = 2, c = 0.75, taps 1/4, 3/4, 3/4, 1/4 along each axis
    taps = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(got, np.outer(taps, taps))
    with pytest.raises(IndexError, match="4-d"):
        _init_array(init.Bilinear(), (4, 3))
    np.testing.assert_array_equal(_init_array(init.Bilinear(), (4,), "up_bias").asnumpy(), 0)


@pytest.mark.parametrize("size, forget_bias", [(8, 2.0), (12, 1.0), (20, -0.5)])
def test_lstm_bias(size, forget_bias):
    want = np.zeros(size)
    want[size // 4 : size // 2] = forget_bias
    np.testing.assert_array_equal(
        _filled(init.LSTMBias(forget_bias), "l0_i2h_weight", (size,)), want
    )
    # on a name ending in 'bias' the default bias rule applies, as in MXNet
    np.testing.assert_array_equal(
        _filled(init.LSTMBias(forget_bias), "l0_i2h_bias", (size,)), np.zeros(size)
    )
    arr = mx.nd.zeros((size,))
    init.Uniform()(init.InitDesc("l0_i2h_bias", {"__init__": init.LSTMBias(forget_bias)}), arr)
    np.testing.assert_array_equal(arr.asnumpy(), want)


# -- initializers of several parameters ---------------------------------------------
def test_mixed_uses_the_first_matching_pattern():
    mixed = init.Mixed(
        [".*bias", "conv.*", ".*"], [init.Constant(3.0), init.One(), init.Constant(5.0)]
    )
    np.testing.assert_array_equal(_filled(mixed, "fc_bias", (2,)), [0, 0])  # bias rule
    np.testing.assert_array_equal(_filled(mixed, "conv0_weight", (2,)), [1, 1])
    np.testing.assert_array_equal(_filled(mixed, "fc_weight", (2,)), [5, 5])
    arr = mx.nd.zeros((2,))
    with pytest.warns(DeprecationWarning):
        mixed("dense_weight", arr)  # a plain name goes the legacy way, as in MXNet
    np.testing.assert_array_equal(arr.asnumpy(), [5, 5])
    # re.match anchors at the start: 'bias' alone does not match 'fc_bias'
    strict = init.Mixed(["bias"], [init.One()])
    with pytest.raises(ValueError, match="fc_bias did not match any pattern"):
        _filled(strict, "fc_bias", (2,))
    with pytest.raises(AssertionError):
        init.Mixed(["a", "b"], [init.One()])


def test_load_from_dict_and_file(tmp_path):
    saved = {
        "arg:fc_weight": mx.nd.array([[1, 2], [3, 4]]),
        "aux:bn_moving_var": mx.nd.ones(3),
        "plain": mx.nd.array([9.0]),
    }
    loader = init.Load(saved, default_init=init.Constant(0.5), verbose=True)
    assert sorted(loader.param) == ["bn_moving_var", "fc_weight", "plain"]
    arr = mx.nd.zeros((2, 2))
    loader("fc_weight", arr)
    np.testing.assert_array_equal(arr.asnumpy(), [[1, 2], [3, 4]])
    arr = mx.nd.zeros((2,))
    with pytest.warns(DeprecationWarning):
        loader("other_weight", arr)
    np.testing.assert_array_equal(arr.asnumpy(), [0.5, 0.5])
    with pytest.raises(AssertionError, match="Shape mismatch"):
        loader("fc_weight", mx.nd.zeros((3,)))
    with pytest.raises(AssertionError, match="no default Initializer"):
        init.Load(saved)("missing", mx.nd.zeros((1,)))

    path = str(tmp_path / "model.params")
    mx.nd.save(path, saved)
    from_file = init.Load(path)
    arr = mx.nd.zeros((3,))
    from_file("bn_moving_var", arr)
    np.testing.assert_array_equal(arr.asnumpy(), np.ones(3))


# -- verbosity ----------------------------------------------------------------------
def test_set_verbosity_logs_each_array(caplog):
    initializer = init.One().set_verbosity(True)
    assert isinstance(initializer, init.One)
    with caplog.at_level(logging.INFO):
        initializer(init.InitDesc("fc_weight"), mx.nd.zeros((4,)))
        initializer(init.InitDesc("fc_bias"), mx.nd.zeros((4,)))
        initializer(init.InitDesc("fc_gamma", {"__init__": "zeros"}), mx.nd.zeros((4,)))
    assert [r.getMessage() for r in caplog.records] == [
        "Initialized fc_weight as weight: 1.0",
        "Initialized fc_bias as bias: 0.0",
        "Initialized fc_gamma as zeros: 0.0",
    ]
    caplog.clear()
    custom = init.One().set_verbosity(True, print_func=lambda arr: f"sum={arr.asnumpy().sum()}")
    with caplog.at_level(logging.INFO):
        custom(init.InitDesc("fc_max"), mx.nd.zeros((3,)))
        init.One()(init.InitDesc("fc_max"), mx.nd.zeros((3,)))  # not verbose: no record
    assert [r.getMessage() for r in caplog.records] == ["Initialized fc_max as max: sum=3.0"]


def test_default_statistic_is_root_mean_square():
    arr = mx.nd.array([3.0, 4.0, 0.0, 0.0])
    assert float(init_module._mean_norm(arr)) == pytest.approx(2.5)


# -- as Gluon calls an initializer --------------------------------------------------
def test_gluon_style_call_with_default_init():
    """Gluon's Parameter calls ``create(default_init)(InitDesc(name, {'__init__':
    init}), data)`` with ``init`` the parameter's own initializer or the one given
    to ``initialize``."""
    weight, bias = mx.nd.zeros((3, 4)), mx.nd.full((3,), 9.0)
    mx.random.seed(1)
    init.create(init.Uniform())(init.InitDesc("dense0_weight", {"__init__": init.Xavier()}), weight)
    init.create(init.Uniform())(init.InitDesc("dense0_bias", {"__init__": "zeros"}), bias)
    scale = np.sqrt(3 / 3.5)
    want = _seeded(1, lambda: mx.nd.random.uniform(-scale, scale, shape=(3, 4)))
    np.testing.assert_array_equal(weight.asnumpy(), want)
    np.testing.assert_array_equal(bias.asnumpy(), np.zeros(3))
    assert json.loads(init.Xavier().dumps())[0] == "xavier"


# -- through Gluon --------------------------------------------------------------------
def _params(net) -> dict[str, np.ndarray]:
    return {name: param.data().asnumpy() for name, param in net.collect_params().items()}


def _one(params: dict[str, np.ndarray], suffix: str) -> np.ndarray:
    (found,) = [value for name, value in params.items() if name.endswith(suffix)]
    return found


def _mlp(seed: int, initializer, batch_norm: bool = False):
    from symgrad.gluon import nn

    mx.random.seed(seed)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(64, in_units=32))
        if batch_norm:
            net.add(nn.BatchNorm())
        net.add(nn.Dense(10))  # in_units deferred to the first forward
    net.initialize(initializer)
    net(mx.nd.ones((2, 32)))
    return net


def test_gluon_initialize_xavier_bounds_and_own_initializers():
    params = _params(_mlp(0, init.Xavier(), batch_norm=True))
    first, second = _one(params, "dense0_weight"), _one(params, "dense1_weight")
    assert first.shape == (64, 32) and second.shape == (10, 64)
    for weight, (rows, columns) in [(first, (64, 32)), (second, (10, 64))]:
        bound = np.sqrt(3 / ((rows + columns) / 2))
        assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound
    # parameters with their own initializer keep it under Xavier
    np.testing.assert_array_equal(_one(params, "dense0_bias"), np.zeros(64))
    np.testing.assert_array_equal(_one(params, "gamma"), np.ones(64))
    np.testing.assert_array_equal(_one(params, "beta"), np.zeros(64))
    np.testing.assert_array_equal(_one(params, "running_mean"), np.zeros(64))
    np.testing.assert_array_equal(_one(params, "running_var"), np.ones(64))


def test_gluon_initialize_is_reproducible_under_seed():
    for initializer in [
        init.Xavier(),
        "xavier",
        init.Normal(0.5),
        init.Uniform(),
        init.MSRAPrelu(),
        init.Orthogonal(),
    ]:
        # each new net gets a new prefix, so compare the parameters in order
        first, second = _params(_mlp(5, initializer)), _params(_mlp(5, initializer))
        other = _params(_mlp(6, initializer))
        assert len(first) == len(second) == 4
        for (name, value), again in zip(first.items(), second.values()):
            np.testing.assert_array_equal(value, again, err_msg=name)
        assert not np.array_equal(_one(first, "dense0_weight"), _one(other, "dense0_weight"))


def test_gluon_parameter_init_and_force_reinit():
    from symgrad import gluon

    # a parameter's own initializer wins over a default_init (what Block.initialize
    # passes), but an init given to Parameter.initialize itself wins over both, as in MXNet
    param = gluon.Parameter("scale_weight", shape=(3, 4), init=init.Constant(2.0))
    param.initialize(default_init=init.Xavier())
    np.testing.assert_array_equal(param.data().asnumpy(), np.full((3, 4), 2.0))
    param.initialize(init.Zero(), force_reinit=True)
    np.testing.assert_array_equal(param.data().asnumpy(), np.zeros((3, 4)))
    named = gluon.Parameter("any_name", shape=(2,), init="ones")
    named.initialize()
    np.testing.assert_array_equal(named.data().asnumpy(), np.ones(2))
    plain = gluon.Parameter("fc_weight", shape=(30, 20))
    mx.random.seed(9)
    plain.initialize(init.Normal(0.5))
    first = plain.data().asnumpy().copy()
    assert abs(first.std() - 0.5) < 0.05
    mx.random.seed(9)
    plain.initialize(init.Normal(0.5), force_reinit=True)
    np.testing.assert_array_equal(plain.data().asnumpy(), first)
    plain.initialize(init.Normal(0.5), force_reinit=True)
    assert not np.array_equal(plain.data().asnumpy(), first)
