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
    if op != "_rnn_param_concat":
        mx.name.NameManager.current = mx.name.NameManager()
        made = getattr(mx.sym, op)(num_args=2, **attrs)
        assert made.list_arguments() == [f"{op.lower()}0_arg0", f"{op.lower()}0_arg1"]


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
    cases = [c for c in VARIADIC if c[0] != "_rnn_param_concat"]
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
