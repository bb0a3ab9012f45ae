"""Gluon against a real MXNet 1.9.1 (the interop virtualenv): the same model source
runs in both; each side's files load in the other and give the same numbers.

- MXNet exports a hybridized network (``-symbol.json`` + ``.params``);
  ``SymbolBlock.imports`` here gives MXNet's outputs and gradients.
- symgrad exports one; MXNet's ``SymbolBlock.imports`` gives symgrad's outputs.
- ``save_parameters`` files load both ways into the same architecture.
- From the same initial weights, a few SGD steps give the same parameters.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad import autograd, gluon, nd

pytestmark = pytest.mark.interop

# One model, written once for both libraries (``mx`` is bound to either).
MODEL = '''
class Dense(mx.gluon.HybridBlock):
    def __init__(self, units, act=False, **kwargs):
        super().__init__(**kwargs)
        self._units, self._act = units, act
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(units, 0),
                                          allow_deferred_init=True)
            self.bias = self.params.get("bias", shape=(units,), init="zeros",
                                        allow_deferred_init=True)

    def hybrid_forward(self, F, x, weight, bias):
        out = F.FullyConnected(x, weight, bias, num_hidden=self._units)
        return F.Activation(out, act_type="tanh") if self._act else out


class Conv(mx.gluon.HybridBlock):
    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self._channels = channels
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(channels, 0, 3, 3),
                                          allow_deferred_init=True)

    def hybrid_forward(self, F, x, weight):
        out = F.Convolution(x, weight, None, kernel=(3, 3), pad=(1, 1),
                            num_filter=self._channels, no_bias=True)
        return F.Pooling(F.relu(out), kernel=(2, 2), stride=(2, 2), pool_type="max")


class Norm(mx.gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(0,), init="ones",
                                         allow_deferred_init=True)
            self.beta = self.params.get("beta", shape=(0,), init="zeros",
                                        allow_deferred_init=True)
            self.running_mean = self.params.get("running_mean", shape=(0,), init="zeros",
                                                grad_req="null", allow_deferred_init=True,
                                                differentiable=False)
            self.running_var = self.params.get("running_var", shape=(0,), init="ones",
                                               grad_req="null", allow_deferred_init=True,
                                               differentiable=False)

    def hybrid_forward(self, F, x, gamma, beta, running_mean, running_var):
        return F.BatchNorm(x, gamma, beta, running_mean, running_var, fix_gamma=False)


class Net(mx.gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = Conv(4)
            self.norm = Norm()
            self.hidden = Dense(16, act=True)
            self.out = Dense(3)

    def hybrid_forward(self, F, x):
        return self.out(self.hidden(self.norm(self.conv(x))))


def make_net():
    mx.random.seed(42)
    net = Net(prefix="net_")
    net.initialize(mx.init.Xavier())
    return net


def step(net, x, lr):
    """One recorded forward+backward of sum(out**2) and a plain SGD update."""
    with mx.autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    for p in net.collect_params().values():
        if p.grad_req != "null":
            p.set_data(p.data() - lr * p.grad())
    return loss.asnumpy()
'''

MXNET_SIDE = (
    "import mxnet as mx\n"
    + MODEL
    + """
import json, sys
import numpy as np
work = sys.argv[1]
x = mx.nd.array(np.load(work + "/x.npy"))

# 1. MXNet exports a trained-for-nothing network, with outputs and gradients
net = make_net()
net.hybridize()
out = net(x)
net.export(work + "/mxnet_net", epoch=3)
x.attach_grad()
with mx.autograd.record():
    loss = (net(x) ** 2).sum()
loss.backward()
grads = {name: p.grad().asnumpy() for name, p in net.collect_params().items()
         if p.grad_req != "null"}
np.savez(work + "/mxnet_export.npz", out=out.asnumpy(), x_grad=x.grad.asnumpy(), **grads)

# 2. the same architecture's parameters, for symgrad to load; then 3 SGD steps
net = make_net()
net(x)
net.save_parameters(work + "/mxnet_init.params")
losses = [step(net, x, 0.01) for _ in range(3)]
np.savez(work + "/mxnet_trained.npz", losses=np.array(losses),
         **{name: p.data().asnumpy() for name, p in net.collect_params().items()})
"""
)

MXNET_READS_SYMGRAD = (
    "import mxnet as mx\n"
    + MODEL
    + """
import json, sys
import numpy as np
work = sys.argv[1]
x = mx.nd.array(np.load(work + "/x.npy"))
block = mx.gluon.SymbolBlock.imports(work + "/symgrad_net-symbol.json", ["data"],
                                     work + "/symgrad_net-0000.params")
np.save(work + "/mxnet_of_symgrad_export.npy", block(x).asnumpy())
net = Net(prefix="other_")
net.load_parameters(work + "/symgrad_net.params")
np.save(work + "/mxnet_of_symgrad_params.npy", net(x).asnumpy())
"""
)


def _exec_model():
    scope = {"mx": mx}
    exec(MODEL, scope)
    return scope


@pytest.fixture(scope="module")
def mxnet_results(mxnet_python, tmp_path_factory):
    work = tmp_path_factory.mktemp("gluon_interop")
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    np.save(work / "x.npy", x)
    run_mxnet(mxnet_python, MXNET_SIDE, work, str(work))
    return work, x


def test_mxnet_export_runs_here(mxnet_results):
    work, x_np = mxnet_results
    expected = np.load(work / "mxnet_export.npz")
    block = gluon.SymbolBlock.imports(
        str(work / "mxnet_net-symbol.json"), ["data"], str(work / "mxnet_net-0003.params")
    )
    x = nd.array(x_np)
    assert np.allclose(block(x).asnumpy(), expected["out"], rtol=1e-4, atol=1e-5)
    x.attach_grad()
    with autograd.record():
        loss = (block(x) ** 2).sum()
    loss.backward()
    assert np.allclose(x.grad.asnumpy(), expected["x_grad"], rtol=1e-4, atol=1e-5)
    for name, param in block.collect_params().items():
        if param.grad_req != "null":
            assert np.allclose(param.grad().asnumpy(), expected[name], rtol=1e-4, atol=1e-5), name


def test_same_weights_train_to_the_same_parameters(mxnet_results):
    work, x_np = mxnet_results
    expected = np.load(work / "mxnet_trained.npz")
    model = _exec_model()
    net = model["make_net"]()
    net.load_parameters(str(work / "mxnet_init.params"))
    net.hybridize()
    x = nd.array(x_np)
    losses = [model["step"](net, x, 0.01) for _ in range(3)]
    assert np.allclose(np.array(losses).ravel(), expected["losses"].ravel(), rtol=1e-4)
    for name, param in net.collect_params().items():
        assert np.allclose(param.data().asnumpy(), expected[name], rtol=1e-4, atol=1e-5), name


def test_symgrad_files_run_in_mxnet(mxnet_python, tmp_path):
    model = _exec_model()
    x_np = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x_np)
    net = model["make_net"]()
    net.hybridize()
    x = nd.array(x_np)
    expected = net(x).asnumpy()
    net.export(str(tmp_path / "symgrad_net"))
    net.save_parameters(str(tmp_path / "symgrad_net.params"))
    json.loads((tmp_path / "symgrad_net-symbol.json").read_text())  # well-formed
    run_mxnet(mxnet_python, MXNET_READS_SYMGRAD, tmp_path, str(tmp_path))
    assert np.allclose(
        np.load(tmp_path / "mxnet_of_symgrad_export.npy"), expected, rtol=1e-4, atol=1e-5
    )
    assert np.allclose(
        np.load(tmp_path / "mxnet_of_symgrad_params.npy"), expected, rtol=1e-4, atol=1e-5
    )


SUMMARY = """
from mxnet.gluon import nn
net = nn.HybridSequential(prefix="net_")
with net.name_scope():
    net.add(nn.Dense(4, activation="relu"), nn.BatchNorm(), nn.Dense(2))
net.initialize()
net.summary(mx.nd.ones((1, 3)))
"""


def test_summary_prints_what_mxnet_prints(mxnet_python, tmp_path, capsys):
    theirs = run_mxnet(mxnet_python, "import mxnet as mx\n" + SUMMARY, tmp_path)
    exec(SUMMARY.replace("from mxnet.gluon", "from symgrad.gluon"), {"mx": mx})
    assert capsys.readouterr().out == theirs


SHARED = """
from mxnet.gluon import nn


class Shared(nn.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.a = nn.Dense(3, in_units=3)
            self.b = nn.Dense(3, in_units=3, params=self.a.params)

    def hybrid_forward(self, F, x):
        return self.b(self.a(x))
"""

SHARED_IN_MXNET = """
import json, sys
import numpy as np
mx.random.seed(3)
net = Shared()
net.initialize(mx.init.Uniform())
net.save_parameters("mxnet_dedup.params", deduplicate=True)
x = mx.nd.array(np.load("x.npy"))
np.save("mxnet_out.npy", net(x).asnumpy())
mine = Shared()
mine.load_parameters("symgrad_dedup.params")
np.save("mxnet_of_symgrad.npy", mine(x).asnumpy())
errors = {}
for name, kwargs in (("missing", {}), ("extra", {"allow_missing": True})):
    try:
        nn.Dense(3, in_units=3, prefix="big_").load_parameters(
            "symgrad_dedup.params" if name == "extra" else "small.params", **kwargs)
    except Exception as err:
        errors[name] = type(err).__name__
with open("errors.json", "w") as f:
    json.dump(errors, f)
"""


def test_shared_parameters_files_load_both_ways(mxnet_python, tmp_path):
    """A deduplicated file holds a shared Parameter once, under its last name as
    MXNet writes it; loading accepts it under any of its names (MXNet's check), and
    a missing or unexpected name raises MXNet's exception types."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    scope: dict = {"mx": mx}
    exec(SHARED.replace("from mxnet.gluon", "from symgrad.gluon"), scope)
    mine = scope["Shared"]()
    mine.initialize(mx.init.Uniform())
    mine.save_parameters(str(tmp_path / "symgrad_dedup.params"), deduplicate=True)
    assert sorted(nd.load(str(tmp_path / "symgrad_dedup.params"))) == ["b.bias", "b.weight"]
    small = gluon.nn.Dense(3, in_units=3, prefix="small_")
    small.initialize()
    small.collect_params().save(str(tmp_path / "small.params"))
    run_mxnet(mxnet_python, "import mxnet as mx\n" + SHARED + SHARED_IN_MXNET, tmp_path)
    np.testing.assert_allclose(
        np.load(tmp_path / "mxnet_of_symgrad.npy"),
        mine(nd.array(x)).asnumpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    theirs = scope["Shared"]()
    theirs.load_parameters(str(tmp_path / "mxnet_dedup.params"))
    np.testing.assert_allclose(
        theirs(nd.array(x)).asnumpy(), np.load(tmp_path / "mxnet_out.npy"), rtol=1e-5, atol=1e-6
    )
    errors = json.loads((tmp_path / "errors.json").read_text())
    assert errors == {"missing": "AssertionError", "extra": "ValueError"}
    with pytest.raises(AssertionError, match="missing"):
        gluon.nn.Dense(3, in_units=3, prefix="big_").load_parameters(str(tmp_path / "small.params"))
    with pytest.raises(ValueError, match="not present"):
        gluon.nn.Dense(3, in_units=3, prefix="big_").load_parameters(
            str(tmp_path / "symgrad_dedup.params"), allow_missing=True
        )


BEHAVIOUR = """
import numpy as np

def outcome(fn):
    try:
        return fn()
    except Exception as err:
        return [type(err).__name__, isinstance(err, AssertionError)]

def cast_keeps_gradient():
    p = mx.gluon.Parameter("w", shape=(2,))
    p.initialize(mx.init.One())
    with mx.autograd.record():
        y = (p.data() * 3).sum()
    y.backward()
    p.cast("float64")
    return [np.dtype(p.grad().dtype).name, p.grad().asnumpy().tolist()]

def constant_from_list():
    c = mx.gluon.Constant("c", [1, 2])
    return [repr(c), np.dtype(c.dtype).name, np.dtype(c.data().dtype).name]

def summary_of_hybridized():
    net = mx.gluon.nn.HybridSequential(prefix="s_")
    with net.name_scope():
        net.add(mx.gluon.nn.Dense(2))
    net.initialize()
    net.hybridize()
    net.summary(mx.nd.ones((1, 3)))

def load_other_dtype():
    p = mx.gluon.Parameter("w", shape=(2,), dtype="float64")
    p._load_init(mx.nd.ones((2,)), None)

def loss_weight_not_a_number():
    mx.gluon.loss.L1Loss(weight="a")(mx.nd.ones((2, 1)), mx.nd.ones((2, 1)))

results = {name: outcome(fn) for name, fn in sorted(globals().items())
           if callable(fn) and name[0] != "_" and name not in ("outcome",)
           and getattr(fn, "__module__", None) in (None, "__main__", "__behaviour__")}
"""


def test_parameter_and_block_behaviour_matches_mxnet(mxnet_python, tmp_path):
    """Parameter.cast keeps the gradient's values, a Constant from a list is
    float32 (repr as MXNet's), summary refuses a hybridized block, and failed
    loads and bad loss weights raise AssertionError, as in MXNet 1.9.1."""
    script = "import json\nimport mxnet as mx\n" + BEHAVIOUR + "print(json.dumps(results))\n"
    theirs = json.loads(run_mxnet(mxnet_python, script, tmp_path).strip().splitlines()[-1])
    scope: dict = {"mx": mx, "__name__": "__behaviour__"}
    exec(BEHAVIOUR, scope)
    mine = json.loads(json.dumps(scope["results"]))
    assert set(theirs) == {
        "cast_keeps_gradient",
        "constant_from_list",
        "summary_of_hybridized",
        "load_other_dtype",
        "loss_weight_not_a_number",
    }
    assert mine["cast_keeps_gradient"] == theirs["cast_keeps_gradient"] == ["float64", [3.0, 3.0]]
    assert mine["constant_from_list"] == theirs["constant_from_list"]
    for name in ("summary_of_hybridized", "load_other_dtype", "loss_weight_not_a_number"):
        assert theirs[name][1] is True and mine[name][1] is True, (name, mine, theirs)


ARGUMENT_STRUCTURE = """
import json
from mxnet.gluon import nn


class Masked(nn.HybridBlock):
    def hybrid_forward(self, F, x, mask=None):
        return x * 2 if mask is None else x * mask


class Pair(nn.HybridBlock):
    def hybrid_forward(self, F, xs):
        return xs[0] + xs[1]


def message(block, *first_and_then):
    first, then = first_and_then
    block.hybridize()
    block(*first)
    try:
        block(*then)
    except ValueError as err:
        return str(err)
    return None


x = mx.nd.ones((2, 3))
messages = [message(Masked(), (x,), (x, x)), message(Masked(), (x, x), (x,)),
            message(Pair(), ([x, x],), ([x, x, x],))]
"""


def test_hybridized_call_with_another_argument_structure_raises(mxnet_python, tmp_path):
    """A hybridized block called with other arguments than it was traced with
    raises MXNet's ValueError (it used to run the old graph, ignoring the new
    argument)."""
    theirs = json.loads(
        run_mxnet(
            mxnet_python,
            "import mxnet as mx\n" + ARGUMENT_STRUCTURE + "print(json.dumps(messages))\n",
            tmp_path,
        )
        .strip()
        .splitlines()[-1]
    )
    scope: dict = {"mx": mx}
    exec(ARGUMENT_STRUCTURE.replace("from mxnet.gluon", "from symgrad.gluon"), scope)
    assert all(theirs) and scope["messages"] == theirs


DTYPES = """
import json
import numpy as np
from mxnet.gluon import nn

dense = nn.Dense(2, in_units=3, prefix="d_")
params = mx.gluon.ParameterDict("p_")
plain = params.get("plain", shape=(2,))
half = params.get("half", shape=(2,), dtype="float16")
constant = params.get_constant("c", [1, 2])
dense.initialize()
dense.cast("float16")
seen = {"dense": repr(dense.collect_params()), "plain": repr(plain), "half": repr(half),
        "constant": repr(constant), "cast_is_string": dense.weight.dtype == "float16",
        "data_dtype": np.dtype(dense.weight.data().dtype).name}
"""


def test_parameter_dtype_is_kept_as_given(mxnet_python, tmp_path):
    """A Parameter's dtype is what was given (a string prints as a string, a numpy
    type as its class), in repr and for comparison, as in MXNet 1.9.1."""
    theirs = json.loads(
        run_mxnet(
            mxnet_python, "import mxnet as mx\n" + DTYPES + "print(json.dumps(seen))\n", tmp_path
        )
        .strip()
        .splitlines()[-1]
    )
    scope: dict = {"mx": mx}
    exec(DTYPES.replace("from mxnet.gluon", "from symgrad.gluon"), scope)
    assert scope["seen"] == theirs
    assert theirs["cast_is_string"] is True
