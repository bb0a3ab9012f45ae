"""mx.sym: variables, ops, composition, listings, attributes and type inference."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad.base import MXNetError, MXNetShapeError
from symgrad.symbol_types import output_count
from symgrad_compiler import OPS, GraphError


def mlp():
    data = mx.sym.var("data")
    h = mx.sym.FullyConnected(data, num_hidden=4, name="fc1")
    h = mx.sym.Activation(h, act_type="relu", name="relu1")
    return mx.sym.softmax(mx.sym.Dropout(h, p=0.3, name="drop"), name="prob")


def test_var_keeps_shape_dtype_init_and_multipliers():
    w = mx.sym.var("w", shape=(2, 3), dtype="float16", init="zeros", lr_mult=2.0, wd_mult=0)
    assert w.list_attr() == {
        "__shape__": "(2, 3)",
        "__dtype__": "2",
        "__init__": "zeros",
        "__lr_mult__": "2.0",
        "__wd_mult__": "0",
        "lr_mult": "2.0",  # MXNet lists its hidden keys under both spellings
        "wd_mult": "0",
    }
    assert w.attr("__shape__") == "(2, 3)" and w.attr("__lr_mult__") == "2.0"
    assert w.infer_type() == ([np.float16], [np.float16], [])
    assert mx.sym.Variable("v").name == "v"


def test_every_registered_op_is_a_sym_function():
    for name in OPS:
        if name != "null":
            assert callable(getattr(mx.sym, name)), name


def test_operators_record_mxnet_scalar_ops():
    x = mx.sym.var("x")
    ops = {
        (x * 2): "_mul_scalar",
        (x + 1): "_plus_scalar",
        (1 - x): "_rminus_scalar",
        (x / 3): "_div_scalar",
        (x**2): "_power_scalar",
        (2**x): "_rpower_scalar",
        (3 / x): "_rdiv_scalar",
        (x - 1): "_minus_scalar",
        (x * x): "elemwise_mul",  # MXNet 1.9.1: two symbols, one shape
    }
    for sym, op in ops.items():
        assert sym.entries[0].node.op.name == op
    assert (x * 2).entries[0].node.attrs["scalar"] == 2.0


def test_implicit_parameter_variables_and_listings():
    net = mlp()
    assert net.list_arguments() == ["data", "fc1_weight", "fc1_bias"]
    assert net.list_outputs() == ["prob_output"]
    assert net.list_auxiliary_states() == []
    bn = mx.sym.BatchNorm(mx.sym.var("data"), name="bn")
    assert bn.list_arguments() == ["data", "bn_gamma", "bn_beta"]
    assert bn.list_auxiliary_states() == ["bn_moving_mean", "bn_moving_var"]
    assert bn.list_inputs() == ["data", "bn_gamma", "bn_beta", "bn_moving_mean", "bn_moving_var"]
    assert bn.list_outputs() == ["bn_output"]
    nobias = mx.sym.FullyConnected(mx.sym.var("d"), num_hidden=2, no_bias=True, name="f")
    assert nobias.list_arguments() == ["d", "f_weight"]


def test_multi_output_ops_index_group_and_children():
    data = mx.sym.var("data")
    parts = mx.sym.split(data, num_outputs=3, axis=1, name="parts")
    assert len(parts) == 3
    assert parts.list_outputs() == ["parts_output0", "parts_output1", "parts_output2"]
    assert parts["parts_output1"].list_outputs() == ["parts_output1"]
    assert parts[-1].list_outputs() == ["parts_output2"]
    assert [s.list_outputs()[0] for s in parts] == parts.list_outputs()
    group = mx.sym.Group([parts[0], data * 2])
    assert len(group) == 2 and group.name is None
    assert (parts[0] + parts[2]).get_children().list_outputs() == ["parts_output0", "parts_output2"]
    assert data.get_children() is None
    with pytest.raises(MXNetError, match="no output named"):
        parts["nope"]
    with pytest.raises(MXNetError, match="grouped symbol"):
        mx.sym.exp(parts)


def test_get_internals_lists_every_visible_output():
    internals = mlp().get_internals()
    assert internals.list_outputs() == [
        "data",
        "fc1_weight",
        "fc1_bias",
        "fc1_output",
        "relu1_output",
        "drop_output",
        "prob_output",
    ]
    fc = internals["fc1_output"]
    assert fc.infer_shape(data=(2, 5))[1] == [(2, 4)]


def test_composition_substitutes_variables():
    net = mx.sym.tanh(mx.sym.var("data") * 2, name="t")
    x = mx.sym.var("x")
    composed = net(data=mx.sym.exp(x))
    assert composed.list_arguments() == ["x"]
    value = composed.eval(x=mx.nd.array([0.0, 1.0]))[0].asnumpy()
    np.testing.assert_allclose(value, np.tanh(np.exp([0.0, 1.0]) * 2), rtol=1e-6)
    assert net(mx.sym.var("y")).list_arguments() == ["y"]
    assert net(data=x, name="renamed").name == "renamed"
    assert net.list_arguments() == ["data"]  # the original is unchanged
    with pytest.raises(MXNetError, match="no argument named"):
        net(nope=x)


def test_infer_shape_layout_and_parameter_shapes():
    arg, out, aux = mlp().infer_shape(data=(5, 3))
    assert (arg, out, aux) == ([(5, 3), (4, 3), (4,)], [(5, 4)], [])
    assert mlp().infer_shape((5, 3)) == (arg, out, aux)
    bn = mx.sym.BatchNorm(mx.sym.var("data"), name="bn")
    assert bn.infer_shape(data=(2, 3, 4)) == ([(2, 3, 4), (3,), (3,)], [(2, 3, 4)], [(3,), (3,)])


def test_infer_shape_partial_and_undecidable():
    a, b = mx.sym.var("a"), mx.sym.var("b")
    added = mx.sym.broadcast_add(a, b)
    assert added.infer_shape_partial(a=(2,)) == ([(2,), ()], [()], [])
    with pytest.warns(UserWarning, match="b"):
        assert added.infer_shape(a=(2,)) == (None, None, None)
    assert added.infer_shape(a=(2, 1), b=(3,)) == ([(2, 1), (3,)], [(2, 3)], [])
    # a + b of two symbols is elemwise_add (one shape), as in MXNet 1.9.1: b follows a
    assert (a + b).infer_shape_partial(a=(2,)) == ([(2,), (2,)], [(2,)], [])


def test_infer_shape_errors_name_the_node():
    net = mx.sym.FullyConnected(
        mx.sym.var("data"), mx.sym.var("w"), num_hidden=4, no_bias=True, name="fc"
    )
    with pytest.raises(MXNetShapeError, match="'fc'.*weight must be"):
        net.infer_shape(data=(2, 3), w=(5, 3))
    with pytest.raises(MXNetError, match="no input named"):
        net.infer_shape(dta=(2, 3))
    with pytest.raises(MXNetShapeError, match="broadcast"):
        mx.sym.var("p", shape=(2,)) + mx.sym.var("q", shape=(3,))


def test_infer_type_follows_sibling_inputs():
    arg, out, aux = mlp().infer_type(data="float64", shapes={"data": (2, 3)})
    assert arg == [np.float64] * 3 and out == [np.float64]


def test_attr_of_ops_and_names():
    fc = mx.sym.FullyConnected(mx.sym.var("d"), num_hidden=4, name="fc1")
    assert fc.attr("num_hidden") == "4" and fc.name == "fc1"
    assert fc.attr("nothing") is None
    assert "is_train" not in mx.sym.Dropout(mx.sym.var("d")).list_attr()
    assert mx.sym.var("d").attr_dict() == {}


def test_pickle_and_copy_round_trip():
    import copy
    import pickle

    net = mlp()
    again = pickle.loads(pickle.dumps(net))
    assert again.tojson() == net.tojson()
    assert copy.deepcopy(net).list_outputs() == net.list_outputs()


def test_output_count_table_agrees_with_type_rules():
    """Every op with a TestSpec: the count known before shapes equals the count
    its type rule gives (catches a new multi-output op missing from the table)."""
    from symgrad_compiler import TensorType

    for name, opdef in OPS.items():
        spec = opdef.test
        if spec is None or spec.make_inputs is not None or name != opdef.name:
            continue
        try:
            attrs = opdef.canonical_attrs(spec.attrs)
            types = [TensorType(tuple(s), np.dtype(np.float64)) for s in spec.shapes]
            inferred = opdef.infer_types(types, attrs)
        except (GraphError, TypeError, ValueError):
            continue
        assert output_count(opdef, attrs, len(types)) == len(inferred), name


def test_get_symbol_of_a_create_graph_gradient():
    x = mx.nd.array([0.5, 1.0])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.tanh(x) * x
        (dx,) = mx.autograd.grad(y, [x], create_graph=True)
    sym = mx.autograd.get_symbol(dx)
    value = sym.eval()[0].asnumpy()
    np.testing.assert_allclose(value, dx.asnumpy(), rtol=1e-6)
    assert mx.sym.load_json(sym.tojson()).list_outputs() == sym.list_outputs()


def test_parameter_shapes_of_layers_follow_the_data():
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, name="conv")
    assert conv.infer_shape(data=(2, 3, 10, 10)) == (
        [(2, 3, 10, 10), (8, 3, 3, 3), (8,)],
        [(2, 8, 8, 8)],
        [],
    )
    out = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(data, num_hidden=3, name="fc"), name="softmax")
    assert out.list_arguments()[-1] == "softmax_label"
    assert out.infer_shape(data=(4, 5))[0][-1] == (4,)
    emb = mx.sym.Embedding(mx.sym.var("i"), input_dim=10, output_dim=4, name="emb")
    assert emb.infer_shape(i=(5,))[0] == [(5,), (10, 4)]
