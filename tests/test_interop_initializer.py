"""``mx.init`` against the real MXNet 1.9.1: the exactly computable initializers
(Zero, One, Constant, Bilinear, LSTMBias, dispatch by name, dumps, create) give
equal values, and the random ones (Uniform, Normal, Xavier, MSRAPrelu, Orthogonal)
equal bounds and statistics.

One piece of source runs with ``mx`` bound to MXNet (in the interop virtualenv)
and to symgrad (here); each writes its arrays to an ``.npz`` and its facts to a
JSON file, and the tests compare the two.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad

pytestmark = pytest.mark.interop

# Run with ``mx`` and ``out_dir`` bound; writes ``arrays.npz`` and ``facts.json``.
SOURCE = r"""
import json, warnings
import numpy as np
from pathlib import Path

I = mx.init
arrays, facts = {}, {}


def filled(initializer, name, shape, start=-3.0, dtype="float32"):
    arr = mx.nd.full(shape, start, dtype=dtype)
    initializer(I.InitDesc(name), arr)
    return arr.asnumpy()


def error_of(call):
    try:
        call()
    except Exception as err:
        return type(err).__name__
    return None


class Sevens(I.Initializer):
    def _init_weight(self, _, arr):
        arr[:] = 7.0


# -- exact values -----------------------------------------------------------------
for shape in [(1, 1, 3, 3), (3, 2, 4, 5), (2, 1, 4, 4), (1, 1, 2, 6), (2, 1, 3, 4, 5)]:
    arrays["bilinear_%s" % "x".join(map(str, shape))] = filled(I.Bilinear(), "up_weight", shape)
arrays["zero"] = filled(I.Zero(), "w_weight", (2, 3))
arrays["one"] = filled(I.One(), "w_weight", (2, 3))
arrays["constant_scalar"] = filled(I.Constant(-2.5), "w_weight", (2, 3))
arrays["constant_row"] = filled(I.Constant(mx.nd.array([[1, 2, 3]])), "w_weight", (2, 3))
arrays["constant_numpy"] = filled(I.Constant(np.arange(3.0)), "w_weight", (2, 3))
arrays["constant_bias"] = filled(I.Constant(4.0), "w_bias", (3,))
for size, forget in [(8, 2.0), (12, 1.0), (20, -0.5)]:
    arrays["lstm_weight_%d" % size] = filled(I.LSTMBias(forget), "l0_i2h_weight", (size,))
    arrays["lstm_bias_%d" % size] = filled(I.LSTMBias(forget), "l0_i2h_bias", (size,))
    arr = mx.nd.zeros((size,))
    I.Uniform()(I.InitDesc("l0_h2h_bias", {"__init__": I.LSTMBias(forget).dumps()}), arr)
    arrays["lstm_attr_%d" % size] = arr.asnumpy()

names = ["fc_weight", "fc_bias", "bn_gamma", "bn_beta", "bn_moving_mean", "bn_moving_var",
         "bn_moving_inv_var", "bn_moving_avg", "q_min", "q_max", "stn_loc_weight",
         "stn_loc_bias", "upsampling_weight", "data"]
for name in names:
    shape = (6, 1, 2, 2) if name.startswith("upsampling") else (6,)
    arr = mx.nd.full(shape, -3.0)
    facts["dispatch_" + name] = error_of(lambda: Sevens()(I.InitDesc(name), arr))
    arrays["dispatch_" + name] = arr.asnumpy()
    arr = mx.nd.full(shape, -3.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        facts["legacy_" + name] = error_of(lambda: Sevens()(name, arr))
    facts["legacy_warning_" + name] = sorted({w.category.__name__ for w in caught})
    arrays["legacy_" + name] = arr.asnumpy()
for spec in ["ones", '["one", {}]', '["constant", {"value": 0.5}]']:
    arr = mx.nd.zeros((3,))
    I.Uniform()(I.InitDesc("bn_moving_var", {"__init__": spec}), arr)
    arrays["attr_" + spec] = arr.asnumpy()

mixed = I.Mixed([".*bias", "conv.*", ".*"], [I.Constant(3.0), I.One(), I.Constant(5.0)])
for name in ["fc_bias", "conv0_weight", "fc_weight"]:
    arrays["mixed_" + name] = filled(mixed, name, (2,))
facts["mixed_no_match"] = error_of(lambda: filled(I.Mixed(["bias"], [I.One()]), "fc_bias",
                                                  (2,)))

# -- names, JSON, errors ------------------------------------------------------------
facts["dumps"] = [init.dumps() for init in [
    I.Zero(), I.One(), I.Constant(2.5), I.Constant(np.array([1.0, 2.0])), I.Uniform(),
    I.Uniform(0.3), I.Normal(), I.Xavier(), I.Xavier("gaussian", "in", 2), I.MSRAPrelu(),
    I.MSRAPrelu("out", 0.1), I.Orthogonal(), I.Orthogonal(0.5, "normal"), I.Bilinear(),
    I.LSTMBias(), I.LSTMBias(2.0)]]
facts["create"] = {name: type(I.create(name)).__name__ for name in [
    "zero", "zeros", "one", "ones", "Xavier", "uniform", "normal", "orthogonal",
    "msraprelu", "MSRAPrelu", "bilinear", "lstmbias"]}
facts["create_json_magnitude"] = I.create('["xavier", {"magnitude": 2}]').magnitude
facts["create_dict_scale"] = I.create({"initializer": "uniform", "scale": 0.25}).scale
facts["msra_magnitude"] = I.MSRAPrelu(slope=0.1).magnitude
facts["equal"] = [I.Xavier() == I.Xavier(), I.Xavier() == I.Xavier(magnitude=2),
                  I.Xavier() == I.Uniform(), I.Zero() == "zero"]
facts["errors"] = {
    "create_unknown": error_of(lambda: I.create("nope")),
    "create_instance_args": error_of(lambda: I.create(I.Zero(), 3)),
    "xavier_vector": error_of(lambda: filled(I.Xavier(), "fc_weight", (5,))),
    "xavier_factor": error_of(lambda: filled(I.Xavier(factor_type="fan"), "w_weight", (3, 3))),
    "xavier_rnd": error_of(lambda: filled(I.Xavier(rnd_type="cauchy"), "w_weight", (3, 3))),
    "base_weight": error_of(lambda: filled(I.Initializer(), "w_weight", (2,))),
    "bilinear_2d": error_of(lambda: filled(I.Bilinear(), "w_weight", (4, 3))),
}

# -- random initializers: statistics -------------------------------------------------
mx.random.seed(7)
uniform = filled(I.Uniform(0.3), "w_weight", (300, 400))
normal = filled(I.Normal(0.5), "w_weight", (300, 400))
facts["uniform"] = [float(uniform.min()), float(uniform.max()), float(uniform.mean()),
                    float(uniform.std())]
facts["normal"] = [float(normal.mean()), float(normal.std())]
for rnd_type in ["uniform", "gaussian"]:
    for factor_type in ["avg", "in", "out"]:
        for shape in [(120, 80), (64, 32, 3, 3)]:
            values = filled(I.Xavier(rnd_type, factor_type, 2.5), "w_weight", shape)
            key = "xavier_%s_%s_%d" % (rnd_type, factor_type, len(shape))
            facts[key] = [float(np.abs(values).max()), float(values.mean()),
                          float(values.std())]
for slope in [0.25, 1.0]:
    values = filled(I.MSRAPrelu("in", slope), "w_weight", (96, 48, 3, 3))
    facts["msra_%s" % slope] = [float(values.mean()), float(values.std())]
for rand_type in ["uniform", "normal"]:
    for shape in [(3, 5), (5, 3), (4, 2, 3)]:
        values = filled(I.Orthogonal(1.5, rand_type), "w_weight", shape)
        matrix = values.reshape(shape[0], -1).astype(np.float64)
        gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
        arrays["orthogonal_%s_%s" % (rand_type, "x".join(map(str, shape)))] = gram

# -- through Gluon: the layers' own initializers, Xavier on the weights ---------------
nn = mx.gluon.nn

net = nn.HybridSequential()
net.add(nn.Dense(64, in_units=32), nn.BatchNorm(), nn.Dense(10))
net.initialize(mx.init.Xavier())
net(mx.nd.ones((2, 32)))
gluon_params = []
for name, param in net.collect_params().items():
    values = param.data().asnumpy()
    local = name.split("_", 1)[1]  # without the net's prefix, which counts nets made
    gluon_params.append([local, list(values.shape), float(np.abs(values).max()),
                         float(values.std())])
    if not local.endswith("weight"):
        arrays["gluon_" + local] = values
facts["gluon"] = gluon_params

# -- reproducibility under mx.random.seed ---------------------------------------------
repeat = []
for init in [I.Uniform(), I.Normal(), I.Xavier(), I.MSRAPrelu(), I.Orthogonal()]:
    mx.random.seed(42)
    first = filled(init, "w_weight", (8, 4, 3, 3))
    mx.random.seed(42)
    second = filled(init, "w_weight", (8, 4, 3, 3))
    third = filled(init, "w_weight", (8, 4, 3, 3))
    repeat.append([bool(np.array_equal(first, second)), bool(np.array_equal(first, third))])
facts["repeat"] = repeat

np.savez(str(Path(out_dir) / "arrays.npz"), **arrays)
Path(out_dir, "facts.json").write_text(json.dumps(facts))
"""


def _collect(out_dir: Path) -> tuple[dict, dict]:
    with np.load(out_dir / "arrays.npz") as data:
        arrays = {key: data[key] for key in data.files}
    return arrays, json.loads((out_dir / "facts.json").read_text())


@pytest.fixture(scope="module")
def results(mxnet_python, tmp_path_factory):
    """(mxnet's, symgrad's) (arrays, facts) from running SOURCE under each."""
    mxnet_dir = tmp_path_factory.mktemp("mxnet_init")
    run_mxnet(mxnet_python, "import mxnet as mx\nout_dir = '.'\n" + SOURCE, mxnet_dir)
    ours_dir = tmp_path_factory.mktemp("symgrad_init")
    exec(SOURCE, {"mx": symgrad, "out_dir": str(ours_dir), "__name__": "interop_source"})
    return _collect(mxnet_dir), _collect(ours_dir)


def test_exact_initializers_equal_mxnets(results):
    (mx_arrays, _), (our_arrays, _) = results
    exact = [key for key in mx_arrays if not key.startswith("orthogonal_")]
    assert sorted(mx_arrays) == sorted(our_arrays) and len(exact) > 40
    for key in exact:
        assert our_arrays[key].dtype == mx_arrays[key].dtype, key
        np.testing.assert_array_equal(our_arrays[key], mx_arrays[key], err_msg=key)


def test_dispatch_errors_and_warnings_equal_mxnets(results):
    (_, mx_facts), (_, our_facts) = results
    keys = [key for key in mx_facts if key.startswith(("dispatch_", "legacy_", "mixed_"))]
    assert len(keys) > 40
    for key in keys:
        assert our_facts[key] == mx_facts[key], key


def test_names_json_and_errors_equal_mxnets(results):
    (_, mx_facts), (_, our_facts) = results
    for key in [
        "dumps",
        "create",
        "create_json_magnitude",
        "create_dict_scale",
        "msra_magnitude",
        "equal",
        "errors",
    ]:
        assert our_facts[key] == mx_facts[key], key


def test_gluon_initialisation_equals_mxnets(results):
    (_, mx_facts), (_, our_facts) = results
    ours, theirs = our_facts["gluon"], mx_facts["gluon"]
    assert [row[:2] for row in ours] == [row[:2] for row in theirs]
    assert len(ours) == 8
    for (name, _, our_max, our_std), (_, _, mx_max, mx_std) in zip(ours, theirs):
        if name.endswith("weight"):
            assert our_max == pytest.approx(mx_max, rel=0.05), name
            assert our_std == pytest.approx(mx_std, rel=0.1), name


def test_random_bounds_and_statistics_equal_mxnets(results):
    (_, mx_facts), (_, our_facts) = results
    low, high, mean, std = our_facts["uniform"]
    mx_low, mx_high, mx_mean, mx_std = mx_facts["uniform"]
    assert -0.3 <= low < -0.299 and -0.3 <= mx_low < -0.299
    assert 0.299 < high < 0.3 and 0.299 < mx_high < 0.3
    assert abs(mean) < 0.003 and abs(mx_mean) < 0.003
    assert std == pytest.approx(mx_std, rel=0.01) == pytest.approx(0.3 / np.sqrt(3), rel=0.01)
    assert our_facts["normal"][1] == pytest.approx(mx_facts["normal"][1], rel=0.01)
    assert abs(our_facts["normal"][0]) < 0.01 and abs(mx_facts["normal"][0]) < 0.01

    xavier = [key for key in mx_facts if key.startswith("xavier_")]
    assert len(xavier) == 12
    for key in xavier:
        ours, theirs = our_facts[key], mx_facts[key]
        if "_uniform_" in key:
            # the bound is the scale: both maxima within 0.5% below the same value
            assert ours[0] == pytest.approx(theirs[0], rel=0.005), key
        assert ours[2] == pytest.approx(theirs[2], rel=0.03), key
        assert abs(ours[1]) < 0.05 * ours[2] and abs(theirs[1]) < 0.05 * theirs[2], key
    for key in ["msra_0.25", "msra_1.0"]:
        assert our_facts[key][1] == pytest.approx(mx_facts[key][1], rel=0.02), key


def test_orthogonal_matrices_are_orthogonal_in_both(results):
    (mx_arrays, _), (our_arrays, _) = results
    keys = [key for key in mx_arrays if key.startswith("orthogonal_")]
    assert len(keys) == 6
    for key in keys:
        identity = 1.5**2 * np.eye(len(mx_arrays[key]))
        np.testing.assert_allclose(mx_arrays[key], identity, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(our_arrays[key], identity, atol=1e-5, err_msg=key)


def test_seed_repeats_initialisation_in_both(results):
    (_, mx_facts), (_, our_facts) = results
    assert mx_facts["repeat"] == our_facts["repeat"] == [[True, False]] * 5
