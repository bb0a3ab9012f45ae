"""MXNet 1.9.1 semantics that symgrad got wrong (issue 20, "MXNet semantics that
differ today" and item 10): integer dtypes in arithmetic, numpy arrays given as
NDArrays, thread-local state, errors, Symbol inference and attributes, NDArray
conversions, the relu gradient at NaN and integer ``mod``'s gradient.

The expected values are MXNet 1.9.1's, printed by probes run in the interop
virtualenv; the ``interop`` tests at the end run the same scripts there again
and compare.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

import symgrad as mx

nd, sym = mx.nd, mx.sym


def _in_thread(function):
    """``function()``'s result, computed on a new thread."""
    result = {}

    def run():
        result["value"] = function()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result["value"]


# ---------------------------------------------------------------------------
# thread-local state: recording, training, name counters, attribute scopes
# ---------------------------------------------------------------------------


def test_new_thread_starts_not_recording_nor_training():
    with mx.autograd.record(), mx.autograd.train_mode():
        assert mx.autograd.is_recording() and mx.autograd.is_training()
        seen = _in_thread(lambda: (mx.autograd.is_recording(), mx.autograd.is_training()))
    assert seen == (False, False)


def test_name_counters_are_per_thread():
    def fc_name():
        return sym.FullyConnected(sym.var("d"), num_hidden=2).name

    first = _in_thread(fc_name)
    second = _in_thread(fc_name)
    # each thread counts from 0, as MXNet's (both print fullyconnected0)
    assert first == second == "fullyconnected0"
    with mx.name.NameManager():
        assert fc_name() == "fullyconnected0"


def test_prefix_is_not_inherited_by_a_new_thread():
    with mx.name.Prefix("p_"):
        assert sym.relu(sym.var("x"), name="r").name == "p_r"
        inner = _in_thread(lambda: sym.relu(sym.var("x"), name="r").name)
    assert inner == "r"


def test_attr_scope_applies_to_variables_and_ops_and_is_thread_local():
    with mx.AttrScope(group="4", data="great"):
        assert sym.var("d").list_attr() == {"group": "4", "data": "great"}
        assert sym.var("e", attr={"data": "x"}).list_attr() == {"group": "4", "data": "x"}
        assert _in_thread(lambda: sym.var("d").list_attr()) == {}
        with mx.AttrScope(data="inner"):
            assert sym.var("f").list_attr() == {"group": "4", "data": "inner"}
    assert sym.var("g").list_attr() == {}
    with pytest.raises(ValueError):
        mx.AttrScope(group=4)


def test_hidden_keys_are_stored_with_underscores_and_listed_both_ways():
    with mx.AttrScope(ctx_group="stage1"):
        x = sym.var("x1")
        y = sym.relu(x, name="y1")
    both = {"__ctx_group__": "stage1", "ctx_group": "stage1"}
    assert x.list_attr() == both and y.list_attr() == both
    assert y.attr_dict() == {"x1": both, "y1": both}
    assert y.attr("ctx_group") == "stage1"
    # written to JSON under the stored key, and read back
    assert '"__ctx_group__": "stage1"' in y.tojson()
    assert sym.load_json(y.tojson()).list_attr() == both


def test_op_attr_argument_is_kept():
    r = sym.relu(sym.var("data"), name="r2", attr={"ctx_group": "g1"})
    assert r.list_attr() == {"__ctx_group__": "g1", "ctx_group": "g1"}


def test_var_attributes_as_mxnet_lists_them():
    v = sym.var("v", shape=(2, 3), dtype="float64", lr_mult=2, init="zeros")
    assert v.list_attr() == {
        "__init__": "zeros",
        "__dtype__": "1",
        "__lr_mult__": "2",
        "lr_mult": "2",
        "__shape__": "(2, 3)",
    }
    # attr() finds a stored key, or a hidden key by its plain name; not 'shape'
    assert (v.attr("__shape__"), v.attr("shape"), v.attr("__dtype__")) == ("(2, 3)", None, "1")
    assert sym.Group([v, v]).attr("x") is None


def test_set_attr_is_shared_by_the_node_and_deepcopy_is_independent():
    y = sym.relu(sym.var("x"), name="y")
    z = y + 1
    y._set_attr(mood="calm")
    assert z.get_children().list_attr() == {"mood": "calm"}
    d = copy.deepcopy(y)
    d._set_attr(mood="zz")
    assert y.list_attr() == {"mood": "calm"} and d.list_attr() == {"mood": "zz"}
    assert copy.copy(y).list_attr() == {"mood": "calm"}
    assert d.tojson() != y.tojson() and copy.deepcopy(z).tojson() == z.tojson()
    with pytest.raises(ValueError):
        y._set_attr(mood=1)


def test_shape_and_dtype_given_as_attributes_type_the_variable():
    s = sym.var("s", __shape__="(3,4)")
    assert s.list_attr() == {"__shape__": "(3,4)"}
    assert (s + 1).infer_shape() == ([(3, 4)], [(3, 4)], [])
    s2 = sym.var("s2", attr={"__shape__": "(3,4)", "__dtype__": "1"})
    assert (s2 + 1).infer_shape() == ([(3, 4)], [(3, 4)], [])
    assert (s2 + 1).infer_type() == ([np.float64], [np.float64], [])


def test_get_children():
    fc = sym.FullyConnected(sym.var("data"), num_hidden=4, name="fc")
    assert fc.get_children().list_outputs() == ["data", "fc_weight", "fc_bias"]
    assert sym.var("data").get_children() is None
