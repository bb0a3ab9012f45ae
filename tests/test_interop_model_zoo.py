"""gluon.model_zoo.vision against the real MXNet 1.9.1.

1. Every name ``get_model`` accepts builds here with MXNet's parameter names
   (below the network's own prefix) and shapes, before any input is seen.
2. For at least one size of each family, MXNet builds the network with a fixed
   seed (random weights, batch-norm statistics and affine parameters, so that
   prediction-mode batch norm is not the identity), saves it with
   ``save_parameters`` and ``export``s it, and records its prediction-mode output
   and the gradients (for a random head gradient) with respect to the input and
   every trainable weight. Here the same network loaded through
   ``get_model(...).load_parameters`` and through ``SymbolBlock.imports`` must
   give the same numbers to 1e-4 relative in float32 (float64 for two of the
   largest inputs, see ``SLOW``), and the same fully inferred parameter shapes.
3. The other way: what is saved and exported here loads into MXNet's
   ``get_model`` and ``SymbolBlock.imports`` and gives the same output there.

Batch 1 at the smallest resolution each network accepts; DenseNet-121 (224) and
Inception v3 (299) are the slow ones. One MXNet process serves the fast set.

The gradients are those of the prediction-mode function: recorded with
``record(train_mode=False)`` and run with ``backward(train_mode=False)`` (MXNet's
default ``train_mode=True`` backward differentiates batch norm as if in training,
from statistics its prediction-mode forward never computed). MXNet runs with
oneDNN off: with it, the input gradient through max pooling in prediction mode is
wrong in MXNet 1.9.1 (it disagrees with finite differences of MXNet's own forward
and changes from run to run); MXNet's own kernels agree with finite differences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad.gluon.model_zoo import vision

pytestmark = pytest.mark.interop

ALL_NAMES = sorted(vision._models)

# (get_model name, input size, constructor kwargs, dtype): one or more per family.
# float32 throughout, except two of the large inputs: there, float32 rounding
# (MXNet's sums and ours differ in the last bits) turns a few near ties into
# different choices (squeezenet 1.0 at seed 1 has a max-pooling window whose two
# largest values differ by 5e-7 relative), each moving the gradient of a whole
# receptive field; in float64 no decision is that close.
FAST = [
    ("alexnet", 63, {"classes": 10}, "float32"),
    ("vgg11_bn", 32, {"classes": 10}, "float32"),
    ("resnet18_v1", 32, {}, "float32"),
    ("resnet50_v1", 32, {"classes": 10}, "float32"),
    ("resnet18_v2", 32, {"thumbnail": True, "classes": 10}, "float32"),
    ("mobilenet0.25", 32, {}, "float32"),
    ("mobilenetv2_0.25", 32, {"classes": 10}, "float32"),
    ("squeezenet1.1", 224, {"classes": 10}, "float32"),
]
SLOW = [
    ("densenet121", 224, {"classes": 10}, "float32"),
    ("squeezenet1.0", 224, {"classes": 10}, "float64"),
    ("inceptionv3", 299, {"classes": 10}, "float64"),
]
# training mode (batch statistics, running statistics updated; batch 2): the
# families without dropout, whose random masks could not be the same. 64x64, so
# that the last batch norms see 2x2 maps: over just two values (1x1 maps), the
# normalised output is +-(a - b) / sqrt((a - b)^2 + 4 eps), which float32
# cancellation in a - b moves by percents. MobileNet v2 at width 0.25 (4 to 80
# channels, tiny maps) loses about 5e-4 relative in float32 through the
# mean-subtractions of its 52 training-mode batch-norm gradients, so it runs in
# float64.
TRAIN = [
    ("resnet18_v1", 64, {"classes": 10}, "float32"),
    ("resnet18_v2", 32, {"thumbnail": True, "classes": 10}, "float32"),
    ("mobilenetv2_0.25", 64, {"classes": 10}, "float64"),
]

_NAMES_SCRIPT = """
import json, sys
from mxnet.gluon.model_zoo import vision
found = {}
for name in json.load(open(sys.argv[1])):
    net = vision.get_model(name)
    found[name] = {"prefix": net.prefix, "repr": repr(net),
                   "params": [[k[len(net.prefix):], list(p.shape)]
                              for k, p in net.collect_params().items()]}
json.dump(found, open(sys.argv[2], "w"))
"""

_REFERENCE_SCRIPT = """
import json, os, sys
# MXNet's oneDNN max pooling keeps no argmax in prediction mode, and its backward
# there returns a wrong (and run-to-run different) input gradient; MXNet's own
# kernels agree with finite differences (and with symgrad)
os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"
import numpy as np
import mxnet as mx
from mxnet.gluon.model_zoo import vision

for case in json.load(open(sys.argv[1])):
    folder, size, seed, dtype = case["dir"], case["size"], case["seed"], case["dtype"]
    train = case["train"]
    mx.random.seed(seed)
    rng = np.random.RandomState(seed)
    net = vision.get_model(case["name"], **case["kwargs"])
    net.initialize(mx.init.Xavier(factor_type="in", magnitude=2))
    x = mx.nd.array(rng.uniform(-1, 1, (2 if train else 1, 3, size, size)).astype("float32"))
    net(x)
    for name, p in net.collect_params().items():
        if name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif name.endswith("running_mean"):
            p.set_data(mx.nd.array(rng.normal(0, 0.1, p.shape)))
        elif name.endswith("gamma") and p.grad_req != "null":
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif name.endswith("beta") and p.grad_req != "null":
            p.set_data(mx.nd.array(rng.normal(0, 0.1, p.shape)))
    net.cast(dtype)
    x = x.astype(dtype)
    net.save_parameters(os.path.join(folder, "net.params"))
    net.hybridize()
    net(x)
    net.export(os.path.join(folder, "net"))
    x.attach_grad()
    with mx.autograd.record(train_mode=train):
        y = net(x)
    head = rng.normal(size=y.shape).astype(dtype)
    y.backward(mx.nd.array(head, dtype=dtype), train_mode=train)
    params = net._collect_params_with_prefix()
    arrays = {"x": x.asnumpy(), "head": head, "y": y.asnumpy(), "dx": x.grad.asnumpy()}
    arrays.update({"grad:" + key: p.grad().asnumpy() for key, p in params.items()
                   if p.grad_req != "null"})
    arrays.update({"stat:" + key: p.data().asnumpy() for key, p in params.items()
                   if key.endswith(("running_mean", "running_var"))})
    np.savez(os.path.join(folder, "reference.npz"), **arrays)
    json.dump({"full_names": {key: p.name for key, p in params.items()},
               "shapes": {p.name: list(p.shape) for p in params.values()}},
              open(os.path.join(folder, "reference.json"), "w"))
"""


def _generate(
    python: Path, folder: Path, cases: list[tuple[str, int, dict, str]], train: bool = False
) -> dict[str, Path]:
    """Run MXNet once over ``cases`` (in training mode if ``train``); each case's
    files go to its own folder."""
    config = []
    for seed, (name, size, kwargs, dtype) in enumerate(cases):
        sub = folder / name
        sub.mkdir()
        config.append(
            {
                "name": name,
                "size": size,
                "kwargs": kwargs,
                "dtype": dtype,
                "seed": seed + 1,
                "dir": str(sub),
                "train": train,
            }
        )
    (folder / "cases.json").write_text(json.dumps(config))
    run_mxnet(python, _REFERENCE_SCRIPT, folder, str(folder / "cases.json"), timeout=900)
    return {case[0]: folder / case[0] for case in cases}


@pytest.fixture(scope="module")
def fast_references(mxnet_python, tmp_path_factory):
    """MXNet's files and numbers for the fast set, made by one MXNet process."""
    return _generate(mxnet_python, tmp_path_factory.mktemp("zoo_fast"), FAST)


@pytest.fixture(scope="module")
def train_references(mxnet_python, tmp_path_factory):
    """MXNet's numbers in training mode for ``TRAIN``, made by one MXNet process."""
    return _generate(mxnet_python, tmp_path_factory.mktemp("zoo_train"), TRAIN, train=True)


def _close(ours: np.ndarray, reference: np.ndarray, what: str, floor: float = 0.0) -> None:
    """Equal to 1e-4 relative, elementwise or to the array's largest magnitude (or
    to ``floor`` if that is larger)."""
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != {reference.shape}"
    assert ours.dtype == reference.dtype, f"{what}: dtype {ours.dtype} != {reference.dtype}"
    scale = max(float(np.abs(reference).max()), floor) or 1.0
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


def _run(net, x: np.ndarray, head: np.ndarray, train: bool):
    """Output and input gradient of ``net`` for the head gradient, in training or
    prediction mode."""
    data = mx.nd.array(x, dtype=x.dtype)
    data.attach_grad()
    with mx.autograd.record(train_mode=train):
        y = net(data)
    y.backward(mx.nd.array(head, dtype=head.dtype), train_mode=train)
    return y.asnumpy(), data.grad.asnumpy()


def _float64_gradients(name, kwargs, folder, x, head, train) -> dict:
    """The input gradient (key ``"dx"``) and the parameters' gradients (keys
    ``"grad:<name>"``) of the same network in float64: what float32's are compared
    to when judging rounding (see ``_rounding``); empty for float64 references."""
    if x.dtype != np.float32:
        return {}
    net = vision.get_model(name, **kwargs)
    net.load_parameters(str(folder / "net.params"))
    net.cast("float64")
    _, dx = _run(net, x.astype(np.float64), head.astype(np.float64), train)
    params = net._collect_params_with_prefix()
    grads = {f"grad:{key}": p.grad().asnumpy() for key, p in params.items() if p.grad_req != "null"}
    return {"dx": dx, **grads}


def _rounding(ours: np.ndarray, expected: np.ndarray, exact: np.ndarray | None) -> float:
    """The floor of ``_close`` that float32 rounding alone explains: 3x the larger
    distance of ours and MXNet's from the float64 ``exact``, over the relative
    tolerance. A gradient can be a sum of much larger terms of both signs:
    SqueezeNet 1.1's input gradient, with MXNet's weights, is 1.0e-9 (1.2e-3 of its
    largest value) from float64 in MXNet's single-threaded reference and in ours on
    one OpenBLAS thread, 4e-13 in ours on two, so the two float32 answers differ by
    more than 1e-4 of the scale while both are right to float32's rounding."""
    if exact is None:
        return 0.0
    return (
        3.0 * max(float(np.abs(ours - exact).max()), float(np.abs(expected - exact).max())) / 1e-4
    )


def _check(name: str, kwargs: dict, folder: Path, train: bool = False) -> None:
    """Both ways of loading MXNet's files give MXNet's output and gradients (and,
    in training mode, its updated running statistics)."""
    reference = np.load(folder / "reference.npz")
    meta = json.loads((folder / "reference.json").read_text())
    x, head = reference["x"], reference["head"]

    net = vision.get_model(name, **kwargs)
    net.cast(str(x.dtype))
    net.load_parameters(str(folder / "net.params"))
    y, dx = _run(net, x, head, train)
    _close(y, reference["y"], f"{name}: output (load_parameters)")
    exact = _float64_gradients(name, kwargs, folder, x, head, train)
    rounding = _rounding(dx, reference["dx"], exact.get("dx"))
    _close(dx, reference["dx"], f"{name}: input gradient (load_parameters)", rounding)
    params = net._collect_params_with_prefix()
    assert sorted(params) == sorted(meta["full_names"])
    trainable = [key for key in reference.files if key.startswith("grad:")]
    assert trainable
    # In training mode a batch norm's shift followed (through linear layers) by
    # another training-mode batch norm has an exactly zero gradient, computed as
    # rounding noise on both sides: such gradients are compared at the scale of
    # all the weight gradients, not at their own.
    floor = 1e-2 * max(float(np.abs(reference[key]).max()) for key in trainable) if train else 0.0
    for key in trainable:
        param = params[key[len("grad:") :]]
        ours = param.grad().asnumpy()
        bound = max(floor, _rounding(ours, reference[key], exact.get(key)))
        _close(ours, reference[key], f"{name}: gradient of {param.name}", bound)
    for key, param in params.items():
        assert list(param.shape) == meta["shapes"][meta["full_names"][key]], key
    statistics = [key for key in reference.files if key.startswith("stat:")]
    for key in statistics:
        _close(params[key[len("stat:") :]].data().asnumpy(), reference[key], f"{name}: {key}")

    block = mx.gluon.SymbolBlock.imports(
        str(folder / "net-symbol.json"), ["data"], str(folder / "net-0000.params")
    )
    y, dx = _run(block, x, head, train)
    _close(y, reference["y"], f"{name}: output (SymbolBlock.imports)")
    _close(dx, reference["dx"], f"{name}: input gradient (SymbolBlock.imports)", rounding)
    imported = block.collect_params()
    for key in trainable:
        full = meta["full_names"][key[len("grad:") :]]
        ours = imported[full].grad().asnumpy()
        bound = max(floor, _rounding(ours, reference[key], exact.get(key)))
        _close(ours, reference[key], f"{name}: gradient of {full} (SymbolBlock.imports)", bound)
    for key in statistics:
        full = meta["full_names"][key[len("stat:") :]]
        _close(
            imported[full].data().asnumpy(), reference[key], f"{name}: {full} (SymbolBlock.imports)"
        )


def test_every_name_has_mxnets_parameter_names_and_shapes(mxnet_python, tmp_path):
    """All 34 constructors, before any input: names below the prefix, shapes with
    MXNet's unknown (0) sizes, the prefix up to its counter, and the printed
    block structure."""
    (tmp_path / "names.json").write_text(json.dumps(ALL_NAMES))
    run_mxnet(
        mxnet_python,
        _NAMES_SCRIPT,
        tmp_path,
        str(tmp_path / "names.json"),
        str(tmp_path / "found.json"),
    )
    found = json.loads((tmp_path / "found.json").read_text())
    assert sorted(found) == ALL_NAMES
    for name in ALL_NAMES:
        net = vision.get_model(name)
        ours = [[k[len(net.prefix) :], list(p.shape)] for k, p in net.collect_params().items()]
        assert ours == found[name]["params"], name
        assert re.sub(r"\d+_$", "", net.prefix) == re.sub(r"\d+_$", "", found[name]["prefix"])
        assert repr(net) == found[name]["repr"], name


@pytest.mark.parametrize("name,size,kwargs,dtype", FAST, ids=[case[0] for case in FAST])
def test_mxnet_weights_give_mxnets_numbers(fast_references, name, size, kwargs, dtype):
    _check(name, kwargs, fast_references[name])


@pytest.mark.slow
@pytest.mark.parametrize("name,size,kwargs,dtype", SLOW, ids=[case[0] for case in SLOW])
def test_mxnet_weights_give_mxnets_numbers_large_inputs(
    mxnet_python, tmp_path, name, size, kwargs, dtype
):
    folders = _generate(mxnet_python, tmp_path, [(name, size, kwargs, dtype)])
    _check(name, kwargs, folders[name])


_LOAD_OURS_SCRIPT = """
import json, os, sys
os.environ["MXNET_MKLDNN_ENABLED"] = "0"
os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"
import numpy as np
import mxnet as mx
from mxnet.gluon.model_zoo import vision

for case in json.load(open(sys.argv[1])):
    folder = case["dir"]
    x = mx.nd.array(np.load(os.path.join(folder, "x.npy")))
    net = vision.get_model(case["name"], **case["kwargs"])
    net.load_parameters(os.path.join(folder, "net.params"))
    block = mx.gluon.SymbolBlock.imports(os.path.join(folder, "net-symbol.json"), ["data"],
                                         os.path.join(folder, "net-0000.params"))
    np.save(os.path.join(folder, "mxnet_y.npy"), net(x).asnumpy())
    np.save(os.path.join(folder, "mxnet_imported_y.npy"), block(x).asnumpy())
"""


def test_mxnet_loads_what_symgrad_saves_and_exports(mxnet_python, tmp_path):
    """The other way: weights saved here (``save_parameters``) load into MXNet's
    own ``get_model``, and the exported symbol and parameters into MXNet's
    ``SymbolBlock.imports``; both give this network's prediction-mode output."""
    cases = [
        ("resnet18_v2", 32, {"thumbnail": True, "classes": 10}),
        ("mobilenetv2_0.25", 32, {"classes": 10}),
        ("squeezenet1.1", 224, {"classes": 10}),
    ]
    config, ours = [], {}
    rng = np.random.RandomState(11)
    for name, size, kwargs in cases:
        folder = tmp_path / name
        folder.mkdir()
        net = vision.get_model(name, **kwargs)
        net.initialize(mx.init.Xavier(factor_type="in", magnitude=2))
        x = rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
        net(mx.nd.array(x))
        for param in net.collect_params().values():
            if param.name.endswith("running_var"):
                param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
            elif param.name.endswith("running_mean"):
                param.set_data(mx.nd.array(rng.normal(0, 0.1, param.shape)))
        net.save_parameters(str(folder / "net.params"))
        net.hybridize()
        ours[name] = net(mx.nd.array(x)).asnumpy()
        net.export(str(folder / "net"))
        np.save(folder / "x.npy", x)
        config.append({"name": name, "kwargs": kwargs, "dir": str(folder)})
    (tmp_path / "cases.json").write_text(json.dumps(config))
    run_mxnet(mxnet_python, _LOAD_OURS_SCRIPT, tmp_path, str(tmp_path / "cases.json"))
    for name, _, _ in cases:
        _close(np.load(tmp_path / name / "mxnet_y.npy"), ours[name], f"{name}: MXNet get_model")
        _close(
            np.load(tmp_path / name / "mxnet_imported_y.npy"),
            ours[name],
            f"{name}: MXNet SymbolBlock.imports",
        )


@pytest.mark.parametrize("name,size,kwargs,dtype", TRAIN, ids=[case[0] for case in TRAIN])
def test_training_mode_gives_mxnets_numbers_and_statistics(
    train_references, name, size, kwargs, dtype
):
    _check(name, kwargs, train_references[name], train=True)
