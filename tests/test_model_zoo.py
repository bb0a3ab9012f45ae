"""gluon.model_zoo.vision: every family builds and runs (imperative and
hybridized agree), blocks have the gradients finite differences give, names are
MXNet's, and pretrained weights come from local files only.

Parameter names and shapes, outputs and gradients against real MXNet 1.9.1 are
in ``test_interop_model_zoo.py``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
from symgrad.gluon.model_zoo import model_store, vision
from symgrad.gluon.model_zoo.vision.mobilenet import RELU6, LinearBottleneck
from symgrad.gluon.model_zoo.vision.resnet import (
    BasicBlockV1,
    BasicBlockV2,
    BottleneckV1,
    BottleneckV2,
)

# the names MXNet 1.9.1's get_model lists
MXNET_NAMES = [
    "alexnet",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "inceptionv3",
    "mobilenet0.25",
    "mobilenet0.5",
    "mobilenet0.75",
    "mobilenet1.0",
    "mobilenetv2_0.25",
    "mobilenetv2_0.5",
    "mobilenetv2_0.75",
    "mobilenetv2_1.0",
    "resnet101_v1",
    "resnet101_v2",
    "resnet152_v1",
    "resnet152_v2",
    "resnet18_v1",
    "resnet18_v2",
    "resnet34_v1",
    "resnet34_v2",
    "resnet50_v1",
    "resnet50_v2",
    "squeezenet1.0",
    "squeezenet1.1",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

# (name, input size, kwargs): the smallest input each network accepts
SMALL = [
    ("alexnet", 63, {"classes": 7}),
    ("vgg11_bn", 32, {"classes": 7}),
    ("resnet18_v1", 32, {"classes": 7}),
    ("resnet34_v2", 32, {"classes": 7, "thumbnail": True}),
    ("mobilenet0.5", 32, {"classes": 7}),
    ("mobilenetv2_0.75", 32, {"classes": 7}),
    ("squeezenet1.1", 224, {"classes": 7}),
]
LARGE = [
    ("squeezenet1.0", 224, {"classes": 7}),
    ("densenet121", 224, {"classes": 7}),
    ("inceptionv3", 299, {"classes": 7}),
]


def _input(size: int, seed: int = 0) -> mx.nd.NDArray:
    return mx.nd.array(np.random.RandomState(seed).uniform(-1, 1, (1, 3, size, size)))


def _builds_and_runs(name: str, size: int, kwargs: dict) -> None:
    net = vision.get_model(name, **kwargs)
    net.initialize(mx.init.Xavier(factor_type="in", magnitude=2))
    x = _input(size)
    y = net(x).asnumpy()
    assert y.shape == (1, kwargs["classes"])
    assert np.isfinite(y).all() and np.abs(y).max() > 0
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), y, rtol=1e-5, atol=1e-6 * np.abs(y).max())


def test_get_model_knows_mxnets_names():
    assert sorted(vision._models) == sorted(MXNET_NAMES)
    assert isinstance(vision.get_model("ResNet18_V1"), vision.ResNetV1)
    with pytest.raises(
        ValueError,
        match=r"Model resnet19_v1 is not supported. Available "
        r"options are\n\talexnet\n\tdensenet121",
    ):
        vision.get_model("resnet19_v1")


@pytest.mark.parametrize("name,size,kwargs", SMALL, ids=[case[0] for case in SMALL])
def test_family_builds_and_runs(name, size, kwargs):
    _builds_and_runs(name, size, kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name,size,kwargs", LARGE, ids=[case[0] for case in LARGE])
def test_family_builds_and_runs_large_inputs(name, size, kwargs):
    _builds_and_runs(name, size, kwargs)


def test_every_constructor_builds_with_unique_names():
    for name in MXNET_NAMES:
        net = vision.get_model(name, classes=5)
        params = net.collect_params()
        assert len(set(params.keys())) == len(params)
        assert all(key.startswith(net.prefix) for key in params.keys())
        structural = net._collect_params_with_prefix()
        assert len(structural) == len(params)


def test_parameter_shapes_are_inferred_from_the_input():
    net = vision.resnet18_v1(classes=7)
    assert net.features[0].weight.shape == (64, 0, 7, 7)
    net.initialize()
    net(_input(32))
    assert net.features[0].weight.shape == (64, 3, 7, 7)
    assert net.features[1].gamma.shape == (64,)
    assert net.output.weight.shape == (7, 512)


# ---------------------------------------------------------------------------
# blocks: values and float64 finite differences
# ---------------------------------------------------------------------------


def _directional_check(block, shape: tuple[int, ...], seed: int = 0) -> None:
    """The input gradient of ``sum(head * block(x))`` along a random direction
    equals the central difference, in float64 and prediction mode."""
    rng = np.random.RandomState(seed)
    block.initialize(mx.init.Xavier(factor_type="in", magnitude=2))
    x = rng.uniform(-1, 1, shape)
    block(mx.nd.array(x, dtype="float32"))
    block.cast("float64")
    for param in block.collect_params().values():
        if param.name.endswith(("running_var", "gamma")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape), dtype="float64"))
        elif param.name.endswith(("running_mean", "beta")):
            param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape), dtype="float64"))
    out_shape = block(mx.nd.array(x, dtype="float64")).shape
    head = rng.normal(size=out_shape)

    def value(point: np.ndarray) -> float:
        return float((block(mx.nd.array(point, dtype="float64")).asnumpy() * head).sum())

    data = mx.nd.array(x, dtype="float64")
    data.attach_grad()
    with mx.autograd.record(train_mode=False):
        y = block(data)
    y.backward(mx.nd.array(head, dtype="float64"), train_mode=False)
    direction = rng.normal(size=shape)
    eps = 1e-6
    numeric = (value(x + eps * direction) - value(x - eps * direction)) / (2 * eps)
    analytic = float((data.grad.asnumpy() * direction).sum())
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    "block_type,channels,stride,downsample",
    [
        (BasicBlockV1, 4, 1, False),
        (BasicBlockV1, 6, 2, True),
        (BottleneckV1, 8, 2, True),
        (BasicBlockV2, 6, 2, True),
        (BottleneckV2, 8, 1, True),
        (BottleneckV2, 4, 1, False),
    ],
)
def test_residual_blocks_gradients(block_type, channels, stride, downsample):
    in_channels = 4
    block = block_type(channels, stride, downsample, in_channels=in_channels, prefix="b_")
    _directional_check(block, (2, in_channels, 5, 5))


def test_linear_bottleneck_adds_its_input_only_at_stride_1_and_same_channels():
    with_shortcut = LinearBottleneck(4, 4, t=2, stride=1, prefix="lb_")
    without = LinearBottleneck(4, 4, t=2, stride=2, prefix="lb2_")
    assert with_shortcut.use_shortcut and not without.use_shortcut
    x = _input(6)[:, :3].tile((1, 2, 1, 1))[:, :4]
    with_shortcut.initialize(mx.init.Xavier())
    np.testing.assert_allclose(
        with_shortcut(x).asnumpy(), (with_shortcut.out(x) + x).asnumpy(), rtol=1e-6
    )
    _directional_check(LinearBottleneck(4, 4, t=3, stride=1, prefix="lb3_"), (1, 4, 5, 5))


def test_relu6_clips_to_0_6():
    x = np.array([-2.0, 0.0, 0.5, 5.9, 6.0, 9.0], dtype=np.float32)
    np.testing.assert_array_equal(RELU6()(mx.nd.array(x)).asnumpy(), np.clip(x, 0, 6))


def test_mobilenet_names_in_scopes():
    net = vision.mobilenet_v2_0_25()
    names = list(net.collect_params().keys())
    assert names[0] == f"{net.prefix}features_conv0_weight"
    assert f"{net.prefix}features_linearbottleneck0_conv0_weight" in names
    assert names[-1] == f"{net.prefix}output_pred_weight"


def test_densenet_layers_concatenate_their_input():
    net = vision.densenet121(classes=3)
    layer = net.features[4][0]
    layer.initialize()
    x = mx.nd.array(np.random.RandomState(1).uniform(size=(1, 5, 4, 4)))
    y = layer(x)
    assert y.shape == (1, 5 + 32, 4, 4)
    np.testing.assert_array_equal(y.asnumpy()[:, :5], x.asnumpy())


def test_invalid_arguments_are_refused():
    with pytest.raises(AssertionError, match="Invalid number of layers: 20"):
        vision.get_resnet(1, 20)
    with pytest.raises(AssertionError, match="Invalid resnet version: 3"):
        vision.get_resnet(3, 18)
    with pytest.raises(AssertionError, match="Unsupported SqueezeNet version 1.2"):
        vision.SqueezeNet("1.2")


def test_fine_tuning_replaces_the_output_and_freezes_the_features():
    """MXNet's fine-tuning recipe: a new ``output`` made in the network's scope,
    the features frozen with ``grad_req='null'``; a Trainer then changes only the
    output layer's weights, and the loss goes down."""
    net = vision.mobilenet0_25(classes=10)
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (4, 3, 32, 32)))
    net(x)
    with net.name_scope():
        net.output = mx.gluon.nn.Dense(3)
    net.output.initialize(mx.init.Xavier())
    assert net.output.weight.name == f"{net.prefix}dense1_weight"
    net.features.collect_params().setattr("grad_req", "null")
    frozen = {
        key: p.data().asnumpy().copy()
        for key, p in net.features.collect_params().items()
        if not key.endswith(("running_mean", "running_var"))
    }
    net(x)  # the new layer's shapes come from the features
    head_before = net.output.weight.data().asnumpy().copy()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    labels = mx.nd.array([0, 1, 2, 1])
    losses = []
    for _ in range(5):
        with mx.autograd.record():
            loss = loss_fn(net(x), labels)
        loss.backward()
        trainer.step(4)
        losses.append(float(loss.mean().asscalar()))
    assert losses[-1] < losses[0]
    for key, value in frozen.items():
        np.testing.assert_array_equal(net.features.collect_params()[key].data().asnumpy(), value)
    assert np.abs(net.output.weight.data().asnumpy() - head_before).max() > 0


# ---------------------------------------------------------------------------
# pretrained weights: local files only
# ---------------------------------------------------------------------------


def test_model_file_names_are_mxnets():
    assert model_store.short_hash("mobilenetv2_0.25") == "ae8f9392"
    assert sorted(model_store._MODEL_SHA1) == sorted(MXNET_NAMES)
    with pytest.raises(ValueError, match="Pretrained model for foo is not available"):
        model_store.short_hash("foo")


def test_pretrained_missing_file_names_it_and_downloads_nothing(tmp_path):
    expected = os.path.join(str(tmp_path), "squeezenet1.1-33ba0f93.params")
    with pytest.raises(FileNotFoundError, match="downloads nothing") as raised:
        vision.get_model("squeezenet1.1", pretrained=True, root=str(tmp_path))
    assert expected in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_default_root_is_mxnet_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MXNET_HOME", raising=False)
    assert model_store.default_root() == os.path.join("~", ".mxnet", "models")
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    assert model_store.default_root() == os.path.join(str(tmp_path), "models")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "models" / "alexnet-44335d1f")):
        vision.alexnet(pretrained=True)


@pytest.mark.parametrize(
    "name,builder",
    [
        ("resnet18_v2", vision.resnet18_v2),
        ("mobilenet0.25", vision.mobilenet0_25),
        ("mobilenetv2_0.5", vision.mobilenet_v2_0_5),
    ],
)
def test_pretrained_loads_the_local_file(tmp_path, name, builder):
    source = builder()
    source.initialize(mx.init.Xavier())
    source(_input(32))
    path = tmp_path / f"{name}-{model_store.short_hash(name)}.params"
    source.save_parameters(str(path))
    with pytest.warns(UserWarning, match="not the file MXNet publishes"):
        net = vision.get_model(name, pretrained=True, root=str(tmp_path))
    ours, theirs = net._collect_params_with_prefix(), source._collect_params_with_prefix()
    assert sorted(ours) == sorted(theirs)
    for key, param in ours.items():
        np.testing.assert_array_equal(param.data().asnumpy(), theirs[key].data().asnumpy())
    x = _input(32, seed=3)
    np.testing.assert_allclose(net(x).asnumpy(), source(x).asnumpy(), rtol=1e-6)


def test_purge_removes_parameter_files(tmp_path):
    (tmp_path / "a.params").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("x")
    model_store.purge(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


# ---------------------------------------------------------------------------
# the compiled backend
# ---------------------------------------------------------------------------


def _source_and_copies(monkeypatch, builder, x):
    """A network from ``builder`` initialised on ``x``, and a function giving, for
    each backend in turn, a copy of it with its weights, the program compiled
    synchronously there."""
    source = builder(classes=7, prefix="source_")
    source.initialize(mx.init.Xavier(factor_type="in", magnitude=2))
    source(mx.nd.array(x))
    weights = source._collect_params_with_prefix()

    def copy_on(backend):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
        net = builder(classes=7, prefix="net_")
        for key, param in net._collect_params_with_prefix().items():
            param._load_init(weights[key].data(), None)
        return net

    return source, copy_on


@pytest.mark.slow
def test_compiled_backend_gives_the_interpreters_numbers(monkeypatch):
    """A hybridized ResNet-18 in prediction mode: output, input gradient and
    weight gradients from the numba backend equal the interpreter's."""
    rng = np.random.RandomState(5)
    x = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    head = rng.normal(size=(2, 7)).astype(np.float32)
    _, copy_on = _source_and_copies(monkeypatch, vision.resnet18_v1, x)
    results = {}
    for backend in ("interpreter", "compiled"):
        net = copy_on(backend)
        net.hybridize()
        data = mx.nd.array(x)
        data.attach_grad()
        with mx.autograd.record(train_mode=False):
            y = net(data)
        y.backward(mx.nd.array(head), train_mode=False)
        results[backend] = [y.asnumpy(), data.grad.asnumpy()] + [
            p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != "null"
        ]
    for ours, reference in zip(results["compiled"], results["interpreter"]):
        scale = float(np.abs(reference).max()) or 1.0
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.slow
def test_a_training_step_of_the_layouts_network_compiles(monkeypatch):
    """SqueezeNet 1.0, the network whose convolutions the blocked layout takes by
    default: its hybridized training step (forward, backward, an SGD update fused
    into the backward from the second step on) compiles with no fall back to the
    interpreter (a kernel that did not take a blocked view once left DenseNet's
    step there, slow and unsaid in a benchmark), gives the interpreter's losses
    and moves the weights."""
    rng = np.random.RandomState(11)
    x = rng.uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)
    labels = np.array([1.0, 5.0], np.float32)
    source, copy_on = _source_and_copies(monkeypatch, vision.squeezenet1_0, x)
    results = {}
    for backend in ("interpreter", "compiled"):
        net = copy_on(backend)
        net.hybridize(static_alloc=True, static_shape=True)
        loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
        trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.01})
        losses = []
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*cannot compile")
            warnings.filterwarnings("error", message=".*compiler process died")
            for _ in range(3):
                with mx.autograd.record():
                    L = loss(net(mx.nd.array(x)), mx.nd.array(labels))
                L.backward()
                trainer.step(2)
                losses.append(L.asnumpy())
        weights = [p.data().asnumpy() for p in net.collect_params().values()]
        results[backend] = (losses, weights)
    # The compiled convolutions sum in other orders, Winograd's transforms among
    # them: float32 rounding moved the third step's losses by up to 2e-4. The
    # weights' changes are not compared: at this random start (predictions near
    # uniform, tiny gradients of many cancelling terms, ReLUs at their kinks) they
    # differed by 14-38% of their size after three steps, and by 27-71% with the
    # layout off (the zoo benchmark's check allows 25% on gradients for the same
    # reason: bench/libs/zoo.py's GRAD_RTOL).
    (our_losses, our_weights), (losses, _) = results["compiled"], results["interpreter"]
    np.testing.assert_allclose(our_losses[0], losses[0], rtol=1e-5)
    for ours, reference in zip(our_losses[1:], losses[1:]):
        np.testing.assert_allclose(ours, reference, rtol=2e-3)
    initial = [p.data().asnumpy() for p in source.collect_params().values()]
    assert all(np.isfinite(w).all() for w in our_weights)
    assert any(not np.array_equal(w, start) for w, start in zip(our_weights, initial))
