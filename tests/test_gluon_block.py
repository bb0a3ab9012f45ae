"""Gluon's core: Parameters, names, deferred shapes, hybridize as compiled replay,
saving and loading, SymbolBlock. Layers here are written in the test (the
library's own are tested in test_gluon_nn.py), so that only the core is under test."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, gluon, nd


class Dense(gluon.HybridBlock):
    """A fully connected layer with an optional tanh, its input size inferred."""

    def __init__(self, units, in_units=0, act=False, **kwargs):
        super().__init__(**kwargs)
        self._units, self._act = units, act
        with self.name_scope():
            self.weight = self.params.get(
                "weight", shape=(units, in_units), allow_deferred_init=True
            )
            self.bias = self.params.get(
                "bias", shape=(units,), init="zeros", allow_deferred_init=True
            )

    def hybrid_forward(self, F, x, weight, bias):
        out = F.FullyConnected(x, weight, bias, num_hidden=self._units)
        return F.tanh(out) if self._act else out


class Norm(gluon.HybridBlock):
    """BatchNorm with its running statistics as auxiliary Parameters."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(0,), init="ones", allow_deferred_init=True)
            self.beta = self.params.get("beta", shape=(0,), init="zeros", allow_deferred_init=True)
            self.running_mean = self.params.get(
                "running_mean",
                shape=(0,),
                init="zeros",
                grad_req="null",
                allow_deferred_init=True,
                differentiable=False,
            )
            self.running_var = self.params.get(
                "running_var",
                shape=(0,),
                init="ones",
                grad_req="null",
                allow_deferred_init=True,
                differentiable=False,
            )

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return F.BatchNorm(x, gamma, beta, running_mean, running_var, fix_gamma=False)


class MLP(gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.hidden = Dense(8, act=True)
            self.norm = Norm()
            self.out = Dense(3)

    def hybrid_forward(self, F, x):
        return self.out(self.norm(self.hidden(x)))


def _data(shape, seed=0):
    return nd.array(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _net(seed=1, deferred=False):
    """The MLP, initialised from ``seed`` (by a first call unless ``deferred``)."""
    mx.random.seed(seed)
    net = MLP(prefix="mlp_")
    net.initialize(mx.init.Xavier())
    if not deferred:
        with autograd.predict_mode():
            net(_data((1, 5)))
    return net


def _grads(net):
    return {
        name: p.grad().asnumpy().copy()
        for name, p in net.collect_params().items()
        if p.grad_req != "null"
    }


# ---------------------------------------------------------------------------
# names and parameters
# ---------------------------------------------------------------------------


def test_prefixes_follow_mxnet():
    net = MLP(prefix="model_")
    names = list(net.collect_params().keys())
    assert names[:2] == ["model_dense0_weight", "model_dense0_bias"]
    assert "model_norm0_running_mean" in names and names[-1] == "model_dense1_bias"
    first, second = Dense(2), Dense(2)
    assert second.prefix == f"dense{int(first.prefix[5:-1]) + 1}_"
    assert first.name == first.prefix[:-1]


def test_collect_params_selects_by_regex_from_the_start():
    net = MLP(prefix="model_")
    assert list(net.collect_params(".*weight").keys()) == [
        "model_dense0_weight",
        "model_dense1_weight",
    ]
    assert list(net.collect_params("weight").keys()) == []


def test_deferred_shapes_are_filled_by_the_first_forward():
    net = _net(deferred=True)
    weight = net.hidden.weight
    assert weight.shape == (8, 0)
    with pytest.raises(gluon.DeferredInitializationError):
        weight.data()
    out = net(_data((4, 5)))
    assert out.shape == (4, 3)
    assert weight.shape == (8, 5) and net.norm.gamma.shape == (8,)
    assert weight.data().shape == (8, 5)


def test_uninitialized_parameter_says_so():
    net = MLP()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        net(_data((2, 5)))


def test_initialize_twice_warns_and_force_reinit_reinitializes():
    p = gluon.Parameter("w", shape=(3,))
    p.initialize(mx.init.Constant(1.0))
    with pytest.warns(UserWarning, match="already initialized"):
        p.initialize(mx.init.Constant(2.0))
    assert p.data().asnumpy().tolist() == [1, 1, 1]
    p.initialize(mx.init.Constant(2.0), force_reinit=True)
    assert p.data().asnumpy().tolist() == [2, 2, 2]


def test_parameter_own_init_wins_over_the_global_one():
    net = Dense(2, in_units=3)
    net.initialize(mx.init.One())
    assert net.bias.data().asnumpy().tolist() == [0, 0]
    assert net.weight.data().asnumpy().sum() == 6


def test_grad_req_null_and_add():
    net = Dense(2, in_units=3)
    net.initialize()
    net.weight.grad_req = "add"
    net.bias.grad_req = "null"
    x = _data((4, 3))
    for _ in range(2):
        with autograd.record():
            y = net(x)
        y.backward()
    once = x.asnumpy().sum(axis=0)
    assert np.allclose(net.weight.grad().asnumpy(), 2 * np.stack([once, once]), rtol=1e-5)
    with pytest.raises(RuntimeError, match="grad_req='null'"):
        net.bias.grad()
    net.weight.zero_grad()
    assert not net.weight.grad().asnumpy().any()


def test_setattr_sets_every_parameter():
    net = _net()
    net.collect_params(".*dense0.*").setattr("grad_req", "null")
    assert net.hidden.weight.grad_req == "null" and net.out.weight.grad_req == "write"


def test_constant_has_no_gradient():
    c = gluon.Constant("c", [1.0, 2.0])
    c.initialize()
    assert c.grad_req == "null" and c.data().asnumpy().tolist() == [1.0, 2.0]


def test_sharing_parameters():
    first = Dense(4, in_units=3, prefix="shared_")
    second = Dense(4, in_units=3, prefix="shared_", params=first.collect_params())
    first.initialize()
    assert second.weight is first.weight


def test_hybrid_block_children_must_be_hybrid():
    class Plain(gluon.Block):
        def forward(self, x):
            return x

    net = MLP()
    with pytest.raises(ValueError, match="must also be HybridBlock"):
        net.other = Plain()


# ---------------------------------------------------------------------------
# hybridize
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [4, 1, 7])
def test_hybridized_forward_and_gradients_equal_imperative(batch):
    x = _data((batch, 5), seed=batch)
    imperative, hybrid = _net(), _net()
    hybrid.hybridize()
    for net in (imperative, hybrid):
        with autograd.record():
            loss = (net(x) ** 2).sum()
        loss.backward()
    assert np.allclose(imperative(x).asnumpy(), hybrid(x).asnumpy(), rtol=1e-5, atol=1e-6)
    for name, grad in _grads(imperative).items():
        assert np.allclose(grad, _grads(hybrid)[name], rtol=1e-4, atol=1e-6), name
    # the running statistics were updated alike, once per recorded call
    for name in ("mlp_norm0_running_mean", "mlp_norm0_running_var"):
        a = imperative.collect_params()[name].data().asnumpy()
        b = hybrid.collect_params()[name].data().asnumpy()
        assert np.allclose(a, b, rtol=1e-5), name
        assert not np.allclose(a, 0 if "mean" in name else 1)


def test_hybridized_block_keeps_its_graph_across_batch_sizes():
    net = _net()
    net.hybridize()
    net(_data((4, 5)))
    graph = net._cached_graph
    with autograd.predict_mode():
        for batch in (4, 2, 9):
            out = net(_data((batch, 5), seed=batch))
            assert out.shape == (batch, 3)
    assert net._cached_graph is graph


def test_hybridized_block_on_the_compiled_backend(compiled):
    x = _data((6, 5))
    imperative, hybrid = _net(), _net()
    hybrid.hybridize(static_alloc=True, static_shape=True)
    for _ in range(3):
        for net in (imperative, hybrid):
            with autograd.record():
                loss = (net(x) ** 2).sum()
            loss.backward()
    for name, grad in _grads(imperative).items():
        assert np.allclose(grad, _grads(hybrid)[name], rtol=1e-4, atol=1e-5), name
    with autograd.predict_mode():
        assert np.allclose(imperative(x).asnumpy(), hybrid(x).asnumpy(), rtol=1e-4, atol=1e-5)


def test_second_order_gradients_through_a_hybridized_block():
    x = _data((3, 4))
    x.attach_grad()
    results = []
    for active in (False, True):
        mx.random.seed(3)
        net = Dense(2, act=True, prefix="second_")
        net.initialize(mx.init.Xavier())
        net.hybridize(active)
        with autograd.record():
            y = net(x).sum()
            (dx,) = autograd.grad(y, [x], create_graph=True)
            z = (dx * dx).sum()
        z.backward()
        results.append((dx.asnumpy(), x.grad.asnumpy().copy()))
    assert np.allclose(results[0][0], results[1][0], rtol=1e-5)
    assert np.allclose(results[0][1], results[1][1], rtol=1e-5)
    assert np.abs(results[0][1]).sum() > 0


def test_second_order_matches_finite_differences():
    """d/dx sum((dy/dx)^2) of y = sum(tanh(W x + b)), in float64."""
    rng = np.random.default_rng(5)
    w, b = rng.normal(size=(2, 3)), rng.normal(size=2)
    x0 = rng.normal(size=(1, 3))

    def first_grad(xv):
        t = np.tanh(xv @ w.T + b)
        return (1 - t * t) @ w

    def objective(xv):
        return (first_grad(xv) ** 2).sum()

    net = Dense(2, in_units=3, act=True, prefix="fd_")
    net.collect_params().initialize()
    net.cast("float64")
    net.weight.set_data(w)
    net.bias.set_data(b)
    net.hybridize()
    x = nd.array(x0, dtype="float64")
    x.attach_grad()
    with autograd.record():
        (dx,) = autograd.grad(net(x).sum(), [x], create_graph=True)
        z = (dx * dx).sum()
    z.backward()
    eps = 1e-6
    numeric = np.zeros_like(x0)
    for i in range(x0.size):
        step = np.zeros_like(x0)
        step.flat[i] = eps
        numeric.flat[i] = (objective(x0 + step) - objective(x0 - step)) / (2 * eps)
    assert np.allclose(dx.asnumpy(), first_grad(x0), rtol=1e-10)
    assert np.allclose(x.grad.asnumpy(), numeric, rtol=1e-6, atol=1e-8)


def test_branching_on_values_in_a_hybridized_block_raises():
    class Branchy(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return x * 2 if x.sum() > 0 else x

    net = Branchy()
    assert net(nd.array([1.0])).asnumpy().tolist() == [2.0]
    net.hybridize()
    with pytest.raises(NotImplementedError, match="Symbol"):
        net(nd.array([1.0]))


def test_several_inputs_and_outputs():
    class Pair(gluon.HybridBlock):
        def hybrid_forward(self, F, a, b):
            return a + b, [a * b, a - b]

    net = Pair()
    a, b = nd.array([1.0, 2.0]), nd.array([3.0, 5.0])
    expected = net(a, b)
    net.hybridize()
    got = net(a, b)
    assert got[0].asnumpy().tolist() == expected[0].asnumpy().tolist() == [4.0, 7.0]
    assert [g.asnumpy().tolist() for g in got[1]] == [[3.0, 10.0], [-2.0, -3.0]]
    inputs, _ = net._cached_graph
    assert [i.name for i in inputs] == ["data0", "data1"]


def test_hooks_run_around_forward():
    net = Dense(2, in_units=3)
    net.initialize()
    seen = []
    handle = net.register_forward_pre_hook(lambda block, args: seen.append("pre"))
    net.register_forward_hook(lambda block, args, out: seen.append(out.shape))
    net(_data((1, 3)))
    handle.detach()
    net(_data((1, 3)))
    assert seen == ["pre", (1, 2), (1, 2)]


def test_apply_and_repr():
    net = MLP(prefix="m_")
    visited = []
    net.apply(lambda block: visited.append(block.name))
    assert visited == ["m_dense0", "m_norm0", "m_dense1", "m_"[:-1]]
    assert "(hidden): Dense(" in repr(net)


# ---------------------------------------------------------------------------
# saving and loading
# ---------------------------------------------------------------------------


def test_save_and_load_parameters(tmp_path):
    net = _net()
    x = _data((2, 5))
    expected = net(x).asnumpy()
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    assert sorted(nd.load(path)) == sorted(net._collect_params_with_prefix())
    assert "hidden.weight" in nd.load(path)
    other = MLP()
    other.load_parameters(path)
    assert np.allclose(other(x).asnumpy(), expected)


def test_load_parameters_names_missing_and_extra_keys(tmp_path):
    net = _net()
    net(_data((2, 5)))
    path = str(tmp_path / "net.params")
    net.save_parameters(path)
    smaller = gluon.HybridBlock()
    smaller.hidden = Dense(8, in_units=5)
    with pytest.raises(mx.MXNetError, match="not present in this Block.*ignore_extra"):
        smaller.load_parameters(path)
    bigger = MLP()
    bigger.extra = Dense(2, in_units=3)
    with pytest.raises(mx.MXNetError, match="'extra.weight' is missing.*allow_missing"):
        bigger.load_parameters(path)
    bigger.load_parameters(path, allow_missing=True)
    assert np.allclose(bigger.hidden.weight.data().asnumpy(), net.hidden.weight.data().asnumpy())


def test_load_checks_shapes(tmp_path):
    net = Dense(2, in_units=3)
    net.initialize()
    path = str(tmp_path / "d.params")
    net.save_parameters(path)
    wrong = Dense(2, in_units=4)
    with pytest.raises(mx.MXNetError, match="shape incompatible"):
        wrong.load_parameters(path)


def test_export_and_symbol_block_imports(tmp_path):
    net = _net()
    net.hybridize()
    x = _data((3, 5))
    with autograd.predict_mode():
        expected = net(x).asnumpy()
    sym_file, params_file = net.export(str(tmp_path / "mlp"), epoch=7)
    assert params_file.endswith("mlp-0007.params")
    saved = nd.load(params_file)
    assert "arg:mlp_dense0_weight" in saved and "aux:mlp_norm0_running_var" in saved
    block = gluon.SymbolBlock.imports(sym_file, ["data"], params_file)
    assert np.allclose(block(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    # fine-tuning: the imported block records and differentiates like any other
    with autograd.record():
        loss = (block(x) ** 2).sum()
    loss.backward()
    grad = block.collect_params()["mlp_dense0_weight"].grad().asnumpy()
    assert np.abs(grad).sum() > 0
    assert block.collect_params()["mlp_norm0_running_mean"].grad_req == "null"


def test_export_needs_a_forward_first(tmp_path):
    net = _net(deferred=True)
    net.hybridize()
    with pytest.raises(RuntimeError, match="hybridize"):
        net.export(str(tmp_path / "x"))


def test_symbol_block_composes_with_symbols():
    data = mx.sym.var("data")
    out = mx.sym.FullyConnected(data, num_hidden=2, name="fc")
    block = gluon.SymbolBlock(out, data)
    assert sorted(block.collect_params().keys()) == ["fc_bias", "fc_weight"]
    composed = block(mx.sym.var("x") * 2)
    assert composed.list_arguments()[0] == "x"


def test_backward_marks_gradients_fresh():
    net = Dense(2, in_units=3)
    net.initialize()
    weight = net.weight.data()
    assert not weight._fresh_grad
    with autograd.record():
        y = net(_data((1, 3)))
    y.backward()
    assert weight._fresh_grad
    weight._fresh_grad = False
    assert not weight._fresh_grad


def test_hybridized_call_walks_no_graph_and_collects_no_parameters(monkeypatch):
    """The per-call work of a hybridized block is cached: from the second call on
    neither ``collect_params`` nor a graph walk runs (inside and outside record)."""
    from symgrad.gluon import block as block_module

    net = _net()
    net.hybridize()
    x = _data((4, 5))
    with autograd.record():
        expected = net(x).asnumpy()
    net(x)
    calls = {"collect": 0, "walk": 0}
    collect, walk = gluon.Block.collect_params, block_module.topo_order

    def counting_collect(self, select=None):
        calls["collect"] += 1
        return collect(self, select)

    def counting_walk(heads):
        calls["walk"] += 1
        return walk(heads)

    monkeypatch.setattr(gluon.Block, "collect_params", counting_collect)
    monkeypatch.setattr(block_module, "topo_order", counting_walk)
    for _ in range(3):
        with autograd.record():
            out = net(x)
        out.backward()
        net(x)
    assert calls == {"collect": 0, "walk": 0}
    np.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-6)


def test_hybridized_call_sees_a_child_added_after_the_first_call():
    net = gluon.nn.HybridSequential(prefix="seq_")
    with net.name_scope():
        net.add(gluon.nn.Dense(4, in_units=5))
    net.initialize(mx.init.One())
    net.hybridize()
    assert net(_data((2, 5))).shape == (2, 4)
    with net.name_scope():
        net.add(gluon.nn.Dense(3, in_units=4))
    net[1].initialize(mx.init.One())
    with autograd.record():
        out = net(_data((2, 5)))
    out.backward()
    assert out.shape == (2, 3)
    assert net[1].weight.grad().asnumpy().any()


def test_parameter_dict_load_dict_takes_arrays_by_name():
    """ParameterDict.load_dict (MXNet 1.9.1): 'arg:'/'aux:' keys, restore_prefix,
    and the same missing-name check as ``load``."""
    params = gluon.ParameterDict("net_")
    weight = params.get("weight", shape=(2, 2))
    params.initialize(mx.init.Zero())
    params.load_dict({"arg:weight": nd.ones((2, 2))}, restore_prefix="net_")
    np.testing.assert_array_equal(weight.data().asnumpy(), np.ones((2, 2)))
    with pytest.raises(AssertionError, match="'net_weight' is missing in file 'w.params'"):
        params.load_dict({"other": nd.ones((2, 2))}, filename="w.params", ignore_extra=True)


def test_a_parameter_has_one_symbol_variable():
    p = gluon.Parameter("w", shape=(2, 0))
    assert p.var() is p.var()
    cell_out = mx.sym.elemwise_add(p.var(), p.var())
    assert cell_out.list_arguments() == ["w"]
    p.cast("float64")
    assert p.var().attr("__dtype__") == "1"
