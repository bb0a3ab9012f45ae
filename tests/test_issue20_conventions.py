"""Issue 20, MXNet's calling conventions: ``num_args`` on variadic ops, the ops and
names Symbol arithmetic builds, the attrs Symbol JSON writes, and ``waitall`` over
deferred values. Expectations are MXNet 1.9.1's (probed with the interop
virtualenv; the ``interop`` tests compare against it directly)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad.base import MXNetError


@pytest.fixture(autouse=True)
def fresh_names():
    """Count node names from 0, as a fresh MXNet process does."""
    previous = mx.name.NameManager.current
    mx.name.NameManager.current = mx.name.NameManager()
    yield
    mx.name.NameManager.current = previous


# ---------------------------------------------------------------------------
# 1. num_args
# ---------------------------------------------------------------------------

# (public name, extra attrs, input shape): every variadic op MXNet 1.9.1 gives
# num_args that symgrad has (UpSampling and Crop are tested on their own below)
VARIADIC = [
    ("Concat", {"dim": 0}, (2, 3)),
    ("concat", {"dim": 0}, (2, 3)),
    ("stack", {"axis": 0}, (2, 3)),
    ("add_n", {}, (2, 3)),
    ("ElementWiseSum", {}, (2, 3)),
    ("khatri_rao", {}, (2, 3)),
    ("_rnn_param_concat", {"dim": 0}, (2, 3)),
    ("_sparse_concat", {"dim": 0}, (2, 3)),
    ("_sparse_add_n", {}, (2, 3)),
]


@pytest.mark.parametrize("op, attrs, shape", VARIADIC)
def test_nd_variadic_ops_take_num_args_equal_to_the_input_count(op, attrs, shape):
    a = mx.nd.array(np.arange(6.0).reshape(shape))
    b = mx.nd.array(np.arange(6.0, 12.0).reshape(shape))
    expected = getattr(mx.nd, op)(a, b, **attrs).asnumpy()
    for count in (2, "2"):
        got = getattr(mx.nd, op)(a, b, num_args=count, **attrs).asnumpy()
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("op, attrs, shape", VARIADIC)
@pytest.mark.parametrize("count", [1, 3])
def test_nd_num_args_other_than_the_input_count_raises_mxnets_error(op, attrs, shape, count):
    a = mx.nd.ones(shape)
    with pytest.raises(MXNetError, match=f"expects {count} inputs, but got 2 instead"):
        getattr(mx.nd, op)(a, a, num_args=count, **attrs)


@pytest.mark.parametrize("op, attrs, shape", VARIADIC)
def test_num_args_below_one_or_not_an_integer_is_refused(op, attrs, shape):
    a = mx.nd.ones(shape)
    with pytest.raises(MXNetError, match="value 0 for Parameter num_args should be greater"):
        getattr(mx.nd, op)(a, a, num_args=0, **attrs)
    with pytest.raises(MXNetError, match="Invalid Parameter format for num_args expect int"):
        getattr(mx.nd, op)(a, a, num_args=2.5, **attrs)
    with pytest.raises(MXNetError, match="value 0 for Parameter num_args should be greater"):
        getattr(mx.nd, op)(**attrs)  # no inputs at all: num_args would be 0


@pytest.mark.parametrize("op, attrs, shape", VARIADIC)
def test_sym_num_args_checks_and_completes_the_inputs(op, attrs, shape):
    a, b = mx.sym.var("a"), mx.sym.var("b")
    same = getattr(mx.sym, op)(a, b, num_args=2, **attrs)
    assert same.list_arguments() == ["a", "b"]
    assert json.loads(same.tojson())["nodes"][-1]["attrs"]["num_args"] == "2"
    with pytest.raises(MXNetError, match="Incorrect number of arguments, requires 1, provided 2"):
        getattr(mx.sym, op)(a, b, num_args=1, **attrs)
    # fewer symbols than num_args: the rest are variables, as MXNet makes them
    more = getattr(mx.sym, op)(a, b, num_args=3, name="j", **attrs)
    assert more.list_arguments() == ["a", "b", "j_arg2"]
    record = json.loads(more.tojson())
    assert record["nodes"][-1]["attrs"]["num_args"] == "3"
    assert record["nodes"][2]["attrs"]["num_args"] == "3"  # the variable has the call's attrs
    if not op.startswith("_"):
        mx.name.NameManager.current = mx.name.NameManager()
        made = getattr(mx.sym, op)(num_args=2, **attrs)
        assert made.list_arguments() == [f"{op.lower()}0_arg0", f"{op.lower()}0_arg1"]


def test_add_n_infers_a_made_variables_shape_from_the_others():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    summed = mx.sym.add_n(a, b, num_args=3, name="s")
    assert summed.infer_shape(a=(2, 3)) == ([(2, 3)] * 3, [(2, 3)], [])  # as MXNet 1.9.1


def test_sym_num_args_symbol_runs_with_the_made_variable():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    joined = mx.sym.Concat(a, b, num_args=3, dim=0, name="j")
    values = {k: mx.nd.full((1, 2), v) for k, v in (("a", 1.0), ("b", 2.0), ("j_arg2", 3.0))}
    out = joined.eval(**values)[0].asnumpy()
    np.testing.assert_array_equal(out, [[1, 1], [2, 2], [3, 3]])


def test_num_args_does_not_change_the_node_so_programs_are_shared():
    a = mx.nd.ones((2, 3))
    a.attach_grad()
    with mx.autograd.record():
        plain = mx.nd.concat(a, a, dim=0)
        counted = mx.nd.concat(a, a, dim=0, num_args=2)
    assert plain._entry.node.attrs == counted._entry.node.attrs


def test_upsampling_num_args_follows_sample_type():
    x = mx.nd.ones((1, 2, 4, 4))
    w = mx.nd.ones((2, 1, 4, 4))
    assert mx.nd.UpSampling(x, x, scale=2, sample_type="nearest").shape == (1, 4, 8, 8)
    with pytest.raises(MXNetError, match="expects 1 inputs, but got 2"):
        mx.nd.UpSampling(x, x, scale=2, sample_type="nearest", num_args=1)
    with pytest.raises(MXNetError, match="expects 2 inputs, but got 1"):
        mx.nd.UpSampling(x, scale=2, sample_type="nearest", num_args=2)
    # bilinear takes data and weight whatever num_args says (MXNet's num_args=1)
    for count in (1, 2):
        up = mx.nd.UpSampling(x, w, scale=2, sample_type="bilinear", num_filter=2, num_args=count)
        assert up.shape == (1, 2, 8, 8)
    data = mx.sym.var("x")
    bilinear = mx.sym.UpSampling(data, scale=2, sample_type="bilinear", num_filter=2, num_args=1)
    assert bilinear.list_arguments() == ["x", "upsampling0_weight"]
    nearest = mx.sym.UpSampling(data, scale=2, sample_type="nearest", num_args=2)
    assert nearest.list_arguments() == ["x", "upsampling1_arg1"]


def test_crop_num_args_counts_the_crop_like_input():
    x, like = mx.nd.ones((1, 2, 4, 4)), mx.nd.ones((1, 2, 2, 2))
    assert mx.nd.Crop(x, like, num_args=2).shape == (1, 2, 2, 2)
    assert mx.nd.Crop(x, h_w=(2, 2), num_args=1).shape == (1, 2, 2, 2)
    with pytest.raises(MXNetError, match="expects 1 inputs, but got 2"):
        mx.nd.Crop(x, like, num_args=1)
    assert mx.sym.Crop(mx.sym.var("x"), num_args=2).list_arguments() == ["x", "crop0_arg1"]


def test_json_num_args_is_checked_and_bilinear_upsampling_loads():
    data = mx.sym.var("x")
    up = mx.sym.UpSampling(data, scale=2, sample_type="bilinear", num_filter=2, num_args=1)
    record = json.loads(up.tojson())
    record["nodes"][-1]["attrs"]["num_args"] = "1"  # as MXNet writes it
    loaded = mx.sym.load_json(json.dumps(record))
    assert loaded.list_arguments() == ["x", "upsampling0_weight"]
    joined = json.loads(mx.sym.Concat(data, data, name="c").tojson())
    joined["nodes"][-1]["attrs"]["num_args"] = "3"
    with pytest.raises(MXNetError, match="num_args is 3"):
        mx.sym.load_json(json.dumps(joined))


def test_prefix_names_a_symbol_once():
    with mx.name.Prefix("p_"):
        fc = mx.sym.FullyConnected(mx.sym.var("x"), num_hidden=3)
        named = mx.sym.FullyConnected(mx.sym.var("x"), num_hidden=3, name="g")
    assert fc.name == "p_fullyconnected0"
    assert fc.list_arguments() == ["x", "p_fullyconnected0_weight", "p_fullyconnected0_bias"]
    assert named.name == "p_g"
    assert named.list_arguments() == ["x", "p_g_weight", "p_g_bias"]


# The same calls under MXNet 1.9.1: each gives OK and its facts, or the error's text.
_NUM_ARGS_SCRIPT = r"""
import json
import mxnet as mx

CASES = json.loads('CASES_JSON')
out = {}
for op, attrs, shape in CASES:
    a = mx.nd.ones(shape)
    for count in (1, 2, 3, 0):
        try:
            getattr(mx.nd, op)(a, a, num_args=count, **attrs).wait_to_read()
            out[f"nd {op} {count}"] = "OK"
        except mx.MXNetError as err:
            out[f"nd {op} {count}"] = str(err)
        mx.name.NameManager._current.value = mx.name.NameManager()
        try:
            s = getattr(mx.sym, op)(mx.sym.var("a"), mx.sym.var("b"), num_args=count, **attrs)
            node = json.loads(s.tojson())["nodes"][-1]
            out[f"sym {op} {count}"] = [s.list_arguments(), node["attrs"]]
        except mx.MXNetError as err:
            out[f"sym {op} {count}"] = str(err)
print(json.dumps(out))
"""


def _error_text(err: Exception) -> str:
    """The part of an error message MXNet and symgrad share."""
    text = " ".join(str(err).split())
    for marker in ("Check failed", "value 0 for", "Invalid Parameter"):
        if marker in text:
            return text[text.index(marker) :].split(" num_args: ")[0].split(", in operator")[0]
    return text


@pytest.mark.interop
def test_num_args_matches_mxnet(mxnet_python, tmp_path: Path):
    cases = [c for c in VARIADIC if not c[0].startswith("_")]
    cases_json = json.dumps([[op, attrs, list(shape)] for op, attrs, shape in cases])
    source = _NUM_ARGS_SCRIPT.replace("CASES_JSON", cases_json)
    theirs = json.loads(run_mxnet(mxnet_python, source, tmp_path))
    ours = {}
    for op, attrs, shape in cases:
        a = mx.nd.ones(shape)
        for count in (1, 2, 3, 0):
            try:
                getattr(mx.nd, op)(a, a, num_args=count, **attrs).wait_to_read()
                ours[f"nd {op} {count}"] = "OK"
            except MXNetError as err:
                ours[f"nd {op} {count}"] = str(err)
            mx.name.NameManager.current = mx.name.NameManager()
            try:
                s = getattr(mx.sym, op)(mx.sym.var("a"), mx.sym.var("b"), num_args=count, **attrs)
                node = json.loads(s.tojson())["nodes"][-1]
                ours[f"sym {op} {count}"] = [s.list_arguments(), node["attrs"]]
            except MXNetError as err:
                ours[f"sym {op} {count}"] = str(err)
    assert ours.keys() == theirs.keys()
    for key, expected in theirs.items():
        if isinstance(expected, str) and expected != "OK":
            assert isinstance(ours[key], str), key
            assert _error_text(ours[key]) == _error_text(expected), (key, ours[key], expected)
        else:
            assert ours[key] == expected, key


# ---------------------------------------------------------------------------
# 2. Symbol arithmetic: MXNet's ops and node names
# ---------------------------------------------------------------------------

# label -> (op, node name, attrs, list_outputs) as MXNet 1.9.1's tojson() writes them
# for a fresh name counter (probed with the interop virtualenv)
_A, _B = mx.sym.var("a"), mx.sym.var("b")
ARITHMETIC = {
    "a+b": (lambda a, b: a + b, "elemwise_add", "_plus0", None),
    "a-b": (lambda a, b: a - b, "elemwise_sub", "_minus0", None),
    "a*b": (lambda a, b: a * b, "elemwise_mul", "_mul0", None),
    "a/b": (lambda a, b: a / b, "elemwise_div", "_div0", None),
    "a**b": (lambda a, b: a**b, "_power", "_power0", None),
    "a%b": (lambda a, b: a % b, "_mod", "_mod0", None),
    "a==b": (lambda a, b: a == b, "_equal", "_equal0", None),
    "a!=b": (lambda a, b: a != b, "_not_equal", "_not_equal0", None),
    "a<b": (lambda a, b: a < b, "_lesser", "_lesser0", None),
    "a<=b": (lambda a, b: a <= b, "_lesser_equal", "_lesser_equal0", None),
    "a>b": (lambda a, b: a > b, "_greater", "_greater0", None),
    "a>=b": (lambda a, b: a >= b, "_greater_equal", "_greater_equal0", None),
    "a+1": (lambda a, b: a + 1, "_plus_scalar", "_plusscalar0", {"scalar": "1"}),
    "1+a": (lambda a, b: 1 + a, "_plus_scalar", "_plusscalar0", {"scalar": "1"}),
    "a-1": (lambda a, b: a - 1, "_minus_scalar", "_minusscalar0", {"scalar": "1"}),
    "1-a": (lambda a, b: 1 - a, "_rminus_scalar", "_rminusscalar0", {"scalar": "1"}),
    "2*a": (lambda a, b: 2 * a, "_mul_scalar", "_mulscalar0", {"scalar": "2"}),
    "a/2": (lambda a, b: a / 2, "_div_scalar", "_divscalar0", {"scalar": "2"}),
    "2/a": (lambda a, b: 2 / a, "_rdiv_scalar", "_rdivscalar0", {"scalar": "2"}),
    "a**2": (lambda a, b: a**2, "_power_scalar", "_powerscalar0", {"scalar": "2"}),
    "2**a": (lambda a, b: 2**a, "_rpower_scalar", "_rpower_scalar0", {"scalar": "2"}),
    "a%2": (lambda a, b: a % 2, "_mod_scalar", "_modscalar0", {"scalar": "2"}),
    "2%a": (lambda a, b: 2 % a, "_rmod_scalar", "_rmodscalar0", {"scalar": "2"}),
    "a==1": (lambda a, b: a == 1, "_equal_scalar", "_equal_scalar0", {"scalar": "1"}),
    "1<a": (lambda a, b: 1 < a, "_greater_scalar", "_greater_scalar0", {"scalar": "1"}),
    "a<=1": (lambda a, b: a <= 1, "_lesser_equal_scalar", "_lesser_equal_scalar0", {"scalar": "1"}),
    "a+1.5": (lambda a, b: a + 1.5, "_plus_scalar", "_plusscalar0", {"scalar": "1.5"}),
    "-a": (lambda a, b: -a, "_mul_scalar", "_mulscalar0", {"scalar": "-1.0"}),
    "maximum(a,b)": (lambda a, b: mx.sym.maximum(a, b), "_maximum", "_maximum0", None),
    "minimum(a,b)": (lambda a, b: mx.sym.minimum(a, b), "_minimum", "_minimum0", None),
    "maximum(1,a)": (
        lambda a, b: mx.sym.maximum(1, a),
        "_maximum_scalar",
        "_maximumscalar0",
        {"scalar": "1"},
    ),
    "pow(a,b)": (lambda a, b: mx.sym.pow(a, b), "_power", "_power0", None),
    "pow(2,a)": (
        lambda a, b: mx.sym.pow(2, a),
        "_rpower_scalar",
        "_rpowerscalar0",
        {"scalar": "2"},
    ),
    "hypot(a,2)": (
        lambda a, b: mx.sym.hypot(a, 2),
        "_hypot_scalar",
        "_hypotscalar0",
        {"scalar": "2"},
    ),
}


def _last_node(symbol) -> list:
    node = json.loads(symbol.tojson())["nodes"][-1]
    return [node["op"], node["name"], node.get("attrs"), symbol.list_outputs()]


@pytest.mark.parametrize("label", list(ARITHMETIC))
def test_symbol_operators_build_mxnets_ops_and_names(label):
    build, op, name, attrs = ARITHMETIC[label]
    assert _last_node(build(_A, _B)) == [op, name, attrs, [f"{name}_output"]]


def test_symbol_operators_of_two_symbols_refuse_broadcasting():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    for symbol in (a + b, a - b, a * b, a / b, a**b, a % b, a == b, mx.sym.maximum(a, b)):
        with pytest.raises(MXNetError, match="equal shapes"):
            symbol.infer_shape(a=(2, 3), b=(1, 3))
        # one shape: inferred from either side, as MXNet does
        assert symbol.infer_shape(a=(2, 3))[0] == [(2, 3), (2, 3)]
    assert mx.sym.broadcast_add(a, b).infer_shape(a=(2, 3), b=(1, 3))[1] == [(2, 3)]


def test_symbol_operators_compute_the_same_values():
    rng = np.random.default_rng(0)
    values = {"a": rng.uniform(0.5, 2, (2, 3)), "b": rng.uniform(0.5, 2, (2, 3))}
    a, b = values["a"], values["b"]
    expected = {
        "a+b": a + b,
        "a-b": a - b,
        "a*b": a * b,
        "a/b": a / b,
        "a**b": a**b,
        "a%b": np.mod(a, b),
        "a<b": (a < b) * 1.0,
        "1-a": 1 - a,
        "2/a": 2 / a,
        "2**a": 2**a,
        "-a": -a,
        "maximum(a,b)": np.maximum(a, b),
        "pow(2,a)": 2**a,
    }
    arrays = {k: mx.nd.array(v, dtype="float64") for k, v in values.items()}
    for label, reference in expected.items():
        symbol = ARITHMETIC[label][0](_A, _B)
        names = symbol.list_arguments()
        got = symbol.eval(**{k: arrays[k] for k in names})[0].asnumpy()
        np.testing.assert_allclose(got, reference, rtol=1e-12, err_msg=label)


def test_symbol_scalar_refuses_a_bool_as_mxnet():
    with pytest.raises(MXNetError, match="expect double but value='True'"):
        mx.sym.var("a") + True


def test_hybridized_layers_and_losses_still_trace_with_elemwise_operators():
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(4, activation="relu"), mx.gluon.nn.BatchNorm(), mx.gluon.nn.Dense(3))
    net.initialize()
    x = mx.nd.array(np.random.default_rng(1).normal(size=(5, 6)))
    label = mx.nd.array([0, 1, 2, 1, 0])
    weight = mx.nd.array(np.arange(1.0, 6.0).reshape(5, 1))
    eager = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-5)
    for loss in (
        mx.gluon.loss.SoftmaxCrossEntropyLoss(),
        mx.gluon.loss.L2Loss(),
        mx.gluon.loss.L1Loss(),
        mx.gluon.loss.HuberLoss(),
        mx.gluon.loss.SigmoidBinaryCrossEntropyLoss(),
    ):
        target = label if isinstance(loss, mx.gluon.loss.SoftmaxCrossEntropyLoss) else net(x)
        plain = loss(net(x), target * 0.5, weight).asnumpy()
        loss.hybridize()
        np.testing.assert_allclose(loss(net(x), target * 0.5, weight).asnumpy(), plain, rtol=1e-5)


_ARITHMETIC_SCRIPT = r"""
import json
import mxnet as mx

LABELS = json.loads('LABELS_JSON')
a, b = mx.sym.var("a"), mx.sym.var("b")
builders = {
    "a+b": lambda: a + b, "a-b": lambda: a - b, "a*b": lambda: a * b, "a/b": lambda: a / b,
    "a**b": lambda: a ** b, "a%b": lambda: a % b, "a==b": lambda: a == b,
    "a!=b": lambda: a != b, "a<b": lambda: a < b, "a<=b": lambda: a <= b,
    "a>b": lambda: a > b, "a>=b": lambda: a >= b, "a+1": lambda: a + 1,
    "1+a": lambda: 1 + a, "a-1": lambda: a - 1, "1-a": lambda: 1 - a, "2*a": lambda: 2 * a,
    "a/2": lambda: a / 2, "2/a": lambda: 2 / a, "a**2": lambda: a ** 2, "2**a": lambda: 2 ** a,
    "a%2": lambda: a % 2, "2%a": lambda: 2 % a, "a==1": lambda: a == 1, "1<a": lambda: 1 < a,
    "a<=1": lambda: a <= 1, "a+1.5": lambda: a + 1.5, "-a": lambda: -a,
    "maximum(a,b)": lambda: mx.sym.maximum(a, b), "minimum(a,b)": lambda: mx.sym.minimum(a, b),
    "maximum(1,a)": lambda: mx.sym.maximum(1, a), "pow(a,b)": lambda: mx.sym.pow(a, b),
    "pow(2,a)": lambda: mx.sym.pow(2, a), "hypot(a,2)": lambda: mx.sym.hypot(a, 2),
}
out = {}
for label in LABELS:
    mx.name.NameManager._current.value = mx.name.NameManager()
    s = builders[label]()
    node = json.loads(s.tojson())["nodes"][-1]
    out[label] = [node["op"], node["name"], node.get("attrs"), s.list_outputs()]
print(json.dumps(out))
"""


@pytest.mark.interop
def test_symbol_operators_match_mxnet(mxnet_python, tmp_path: Path):
    source = _ARITHMETIC_SCRIPT.replace("LABELS_JSON", json.dumps(list(ARITHMETIC)))
    theirs = json.loads(run_mxnet(mxnet_python, source, tmp_path))
    for label, expected in theirs.items():
        mx.name.NameManager.current = mx.name.NameManager()
        assert _last_node(ARITHMETIC[label][0](_A, _B)) == expected, label


# ---------------------------------------------------------------------------
# 3. Symbol JSON: the attrs a call gave, not the defaults
# ---------------------------------------------------------------------------

# label -> (builder, the attrs MXNet 1.9.1 writes for the op node)
WRITTEN = {
    "conv": (
        lambda x: mx.sym.Convolution(x, kernel=(3, 3), num_filter=4, name="c"),
        {"kernel": "(3, 3)", "num_filter": "4"},
    ),
    "conv_stride": (
        lambda x: mx.sym.Convolution(
            x, kernel=(3, 3), num_filter=4, no_bias=True, stride=(1, 1), name="c"
        ),
        {"kernel": "(3, 3)", "no_bias": "True", "num_filter": "4", "stride": "(1, 1)"},
    ),
    "fc": (lambda x: mx.sym.FullyConnected(x, num_hidden=3, name="f"), {"num_hidden": "3"}),
    "act": (lambda x: mx.sym.Activation(x, act_type="relu", name="a"), {"act_type": "relu"}),
    "sum": (lambda x: mx.sym.sum(x, name="s"), None),
    "sum_axis": (
        lambda x: mx.sym.sum(x, axis=1, keepdims=True, name="s"),
        {"axis": "1", "keepdims": "True"},
    ),
    "sum_list": (lambda x: mx.sym.sum(x, axis=[0, 1], name="s"), {"axis": "[0, 1]"}),
    "clip": (lambda x: mx.sym.clip(x, 0, 1.0, name="c"), {"a_max": "1.0", "a_min": "0"}),
    "reshape": (lambda x: mx.sym.reshape(x, shape=[2, -1], name="r"), {"shape": "[2, -1]"}),
    "scalar": (lambda x: x * np.float32(0.1), {"scalar": "0.1"}),
    "zeros": (
        lambda x: mx.sym.zeros(shape=(2,), dtype="float64", name="z"),
        {"dtype": "float64", "shape": "(2,)"},
    ),
    "pool": (
        lambda x: mx.sym.Pooling(x, kernel=(2, 2), pool_type="max", name="p"),
        {"kernel": "(2, 2)", "pool_type": "max"},
    ),
    "bn": (lambda x: mx.sym.BatchNorm(x, name="bn"), None),
    "dropout": (lambda x: mx.sym.Dropout(x, p=0.3, name="d"), {"p": "0.3"}),
    "concat": (lambda x: mx.sym.Concat(x, x, name="cc"), {"num_args": "2"}),
    "softmax_output": (lambda x: mx.sym.SoftmaxOutput(x, name="so"), None),
    "leaky": (lambda x: mx.sym.LeakyReLU(x, name="lr"), None),
    "split": (lambda x: mx.sym.split(x, num_outputs=2, name="sp"), {"num_outputs": "2"}),
    "embedding": (
        lambda x: mx.sym.Embedding(x, input_dim=5, output_dim=3, name="e"),
        {"input_dim": "5", "output_dim": "3"},
    ),
    "layer_norm": (lambda x: mx.sym.LayerNorm(x, name="ln"), None),
}


@pytest.mark.parametrize("label", list(WRITTEN))
def test_json_writes_only_the_given_attrs_and_reading_fills_the_defaults(label):
    build, expected = WRITTEN[label]
    symbol = build(mx.sym.var("x"))
    record = json.loads(symbol.tojson())
    assert record["nodes"][-1].get("attrs") == expected
    loaded = mx.sym.load_json(symbol.tojson())
    node, original = loaded.entries[0].node, symbol.entries[0].node
    if label != "scalar":  # (the float32 0.1 given is read back as the double 0.1)
        assert node.attrs == original.attrs  # defaults filled again
    assert loaded.tojson() == symbol.tojson()


def test_json_of_a_recorded_graph_writes_what_differs_from_the_defaults():
    x = mx.nd.ones((2, 3))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.sum(mx.nd.softmax(x, axis=0), axis=1)
    nodes = json.loads(mx.autograd.get_symbol(y).tojson())["nodes"]
    attrs = {n["op"]: n.get("attrs") for n in nodes}
    assert attrs["softmax"] == {"axis": "0"}
    assert attrs["sum"] == {"axis": "(1,)"}


_LOAD_SCRIPT = r"""
import json
import mxnet as mx

out = {}
for label, path in json.load(open("files.json")).items():
    symbol = mx.sym.load(path)
    _, shapes, _ = symbol.infer_shape(x=(2, 4, 8, 8) if label in IMAGES else (2, 5))
    out[label] = [shapes, json.loads(symbol.tojson())["nodes"][-1].get("attrs")]
print(json.dumps(out))
"""


@pytest.mark.interop
def test_json_with_given_attrs_loads_in_mxnet(mxnet_python, tmp_path: Path):
    images = ["conv", "conv_stride", "pool", "bn", "dropout", "concat", "split", "act"]  # NCHW
    files, ours = {}, {}
    for label, (build, _) in WRITTEN.items():
        if label in ("embedding", "zeros"):
            continue
        symbol = build(mx.sym.var("x"))
        path = tmp_path / f"{label}-symbol.json"
        symbol.save(str(path))
        files[label] = str(path)
        shape = (2, 4, 8, 8) if label in images else (2, 5)
        ours[label] = [[list(s) for s in symbol.infer_shape(x=shape)[1]]]
    (tmp_path / "files.json").write_text(json.dumps(files))
    source = _LOAD_SCRIPT.replace("IMAGES", json.dumps(images))
    theirs = json.loads(run_mxnet(mxnet_python, source, tmp_path))
    for label, (shapes, attrs) in theirs.items():
        assert [shapes] == ours[label], label
        assert attrs == WRITTEN[label][1], label


# ---------------------------------------------------------------------------
# 4. waitall over deferred values
# ---------------------------------------------------------------------------


def _recorded_with_a_failure():
    x = mx.nd.array([[1.0, 2.0], [2.0, 1.0]])
    x.attach_grad()
    with mx.autograd.record():
        y = x * 2
        bad = mx.nd.take(y, mx.nd.array([7]), mode="raise")  # fails when computed
        after = bad + 1
        loss = (y * y).sum()
    return x, y, bad, after, loss


def test_waitall_computes_every_pending_value():
    x = mx.nd.array([1.0, 2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.exp(x)
        z = y * 3
    assert y._value is None and z._value is None  # deferred while recording
    mx.nd.waitall()
    assert y._value is not None and z._value is not None
    np.testing.assert_allclose(z.asnumpy(), 3 * np.exp([1.0, 2.0]), rtol=1e-6)


def test_waitall_raises_a_deferred_failure_and_the_arrays_stay_usable():
    x, y, bad, after, loss = _recorded_with_a_failure()
    with pytest.raises(MXNetError, match="index out of range"):
        mx.nd.waitall()
    assert y._value is not None  # computed despite the failure
    np.testing.assert_array_equal(y.asnumpy(), [[2, 4], [4, 2]])
    for failed in (bad, after):  # raise again whenever read
        for read in (failed.asnumpy, failed.wait_to_read, failed.asnumpy):
            with pytest.raises(MXNetError, match="index out of range"):
                read()
    mx.nd.waitall()  # reported once
    loss.backward()  # the rest of the recording still differentiates
    np.testing.assert_allclose(x.grad.asnumpy(), 8 * x.asnumpy())


def test_wait_to_read_raises_the_deferred_failure_and_waitall_does_not_again():
    _, y, bad, after, _ = _recorded_with_a_failure()
    with pytest.raises(MXNetError, match="index out of range"):
        bad.wait_to_read()
    mx.nd.waitall()  # the error was raised once already, as MXNet 1.9.1's waitall
    assert y._value is not None
    with pytest.raises(MXNetError, match="index out of range"):
        after.asnumpy()  # reading still raises


def test_waitall_still_reports_an_eager_failure_once():
    bad = mx.nd.random.normal(0, -1, shape=(2,))
    with pytest.raises(MXNetError):
        mx.nd.waitall()
    mx.nd.waitall()
    assert bad.shape == (2,)


_ATTRIBUTES_SCRIPT = r"""
import json
import mxnet as mx

x = mx.sym.var("x")
h = mx.sym.Convolution(x, kernel=(3, 3), num_filter=4, name="c")
h = mx.sym.Activation(h, act_type="relu", name="r")
h = mx.sym.Concat(h, h, dim=1, name="cc")
h = mx.sym.Pooling(h, kernel=[2, 2], pool_type="avg", global_pool=True, name="p")
h = h + mx.sym.var("z") * 2
listed = [h.attr_dict(), h.list_attr(), h.get_internals().list_outputs(), h.list_arguments()]
print(json.dumps([listed, json.loads(h.tojson())["nodes"]]))
"""


@pytest.mark.interop
def test_attributes_names_and_json_of_a_small_net_match_mxnet(mxnet_python, tmp_path: Path):
    theirs = json.loads(run_mxnet(mxnet_python, _ATTRIBUTES_SCRIPT, tmp_path))
    x = mx.sym.var("x")
    h = mx.sym.Convolution(x, kernel=(3, 3), num_filter=4, name="c")
    h = mx.sym.Activation(h, act_type="relu", name="r")
    h = mx.sym.Concat(h, h, dim=1, name="cc")
    h = mx.sym.Pooling(h, kernel=[2, 2], pool_type="avg", global_pool=True, name="p")
    h = h + mx.sym.var("z") * 2
    listed = [h.attr_dict(), h.list_attr(), h.get_internals().list_outputs(), h.list_arguments()]
    assert json.loads(json.dumps(listed)) == theirs[0]
    assert json.loads(h.tojson())["nodes"] == theirs[1]  # the same file, node for node
