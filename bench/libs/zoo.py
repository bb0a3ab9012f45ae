"""The "model zoo" rows: forward+backward in training mode of networks from
``gluon.model_zoo.vision``, on symgrad or MXNet 1.9.1, and their float64 reference.

One iteration = ``with autograd.record(): L = loss(net(X), y)``, ``L.backward()``,
``nd.waitall()`` with ``SoftmaxCrossEntropyLoss``, X (8, 3, 224, 224) ~ N(0, 1)
(299 x 299 for Inception v3), the network hybridized (``BENCH_HYBRIDIZE=1``:
``static_alloc=True, static_shape=True``). The library comes from ``BENCH_MX``
(``symgrad`` or ``mxnet``), the script is the same.

Every library loads the same weights, drawn with numpy in the networks' parameter
order (``initial_weights``). Dropout layers are set to rate 0: each library draws
its masks differently, so with them no two results could be compared (they cost
little beside the convolutions). The check compares the losses and the gradients of
a few parameters spread along the network, the first convolution's included (its
gradient has crossed every layer), with MXNet 1.9.1's forward+backward of the same
network in float64, computed once in the interop virtualenv and kept in
``bench/results/zoo-reference/`` (keyed by this file's text).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.libs import gluon_w7
from bench.libs.gluon_w7 import xavier

MODELS = (
    "resnet18_v1",
    "mobilenet1.0",
    "mobilenetv2_1.0",
    "squeezenet1.0",
    "alexnet",
    "vgg11_bn",
    "densenet121",
    "inceptionv3",
)
BATCH = 8
CLASSES = 1000
CHECKED = 8  # parameters whose gradients are compared
# The gradients' tolerance. These gradients are ill-conditioned: in float64, moving the
# images by 1e-7 (relative) moved mobilenet1.0's by 0.5-2% (relu and max-pool units
# near their kinks switch); MXNet 1.9.1's own float32 gradients are off its float64
# ones by up to 2.8e-2 (mobilenet1.0), 4.0e-2 (densenet121), 7.0e-2 (mobilenetv2_1.0),
# 0.10 (inceptionv3).
# The losses keep the protocol's 2e-3 (MXNet: 1e-6 off).
GRAD_RTOL = 0.25
CHECKED_MAX_SIZE = 2**20  # (VGG's and AlexNet's big Dense weights are left out)
REPO_ROOT = Path(__file__).resolve().parents[2]
MXNET_PYTHON = REPO_ROOT / "build" / "mxnet-venv" / "bin" / "python"
REFERENCE_DIR = REPO_ROOT / "bench" / "results" / "zoo-reference"


def side(model: str) -> int:
    """The input's height and width: 299 for Inception v3, 224 for the others."""
    return 299 if model.startswith("inception") else 224


def make_inputs(rng: np.random.Generator, model: str, batch: int = BATCH, size=None) -> dict:
    """Images X ~ N(0, 1) and labels; ``model`` rides along as a 0-d string array.
    ``size`` overrides the image side (tests)."""
    n = size or side(model)
    X = rng.standard_normal((batch, 3, n, n)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch).astype(np.int64)
    return {"X": X, "y": y, "model": np.array(model)}


def initial_weights(names: list[str], shapes: list[tuple]) -> list[np.ndarray]:
    """The shared initial value of every parameter, in order: Xavier (magnitude 3) for
    weights of rank >= 2, one for BatchNorm's gamma and running variance, zero for
    biases, beta and running means; one generator, ``default_rng(1234)``."""
    rng = np.random.default_rng(1234)
    out = []
    for name, shape in zip(names, shapes):
        if name.endswith(("gamma", "running_var")):
            value = np.ones(shape)
        elif name.endswith("weight") and len(shape) >= 2:
            value = xavier(rng, shape)
        else:
            value = np.zeros(shape)
        out.append(value.astype(np.float32))
    return out


def checked_indices(shapes: list[tuple], usable: list[bool]) -> list[int]:
    """Which parameters' gradients the check compares: ``CHECKED`` usable ones evenly
    spread over the network, from the first to the last, skipping the very large."""
    small = [
        i
        for i, (shape, ok) in enumerate(zip(shapes, usable))
        if ok and np.prod(shape) <= CHECKED_MAX_SIZE
    ]
    picks = np.linspace(0, len(small) - 1, min(CHECKED, len(small))).round().astype(int)
    return [small[i] for i in sorted(set(picks))]


def build(mx, model: str, X):
    """``get_model(model)`` with the shared weights loaded and Dropout at rate 0;
    returns the network and its parameters in order."""
    net = mx.gluon.model_zoo.vision.get_model(model, classes=CLASSES)
    _no_dropout(mx, net)
    net.initialize(mx.init.Xavier(magnitude=3))
    net(X)  # deferred shapes
    params = list(net.collect_params().values())
    names, shapes = [p.name for p in params], [tuple(p.shape) for p in params]
    for p, value in zip(params, initial_weights(names, shapes)):
        p.set_data(mx.nd.array(value, dtype=p.dtype))
    return net, params


def _no_dropout(mx, block) -> None:
    """Set every Dropout's rate to 0 (its hybrid_forward is then the identity): random
    masks differ between libraries. ``_rate`` is private in both; a benchmark's hack."""
    if isinstance(block, mx.gluon.nn.Dropout):
        block._rate = 0.0
    for child in block._children.values():
        _no_dropout(mx, child)


def __getattr__(name: str):
    """``VERSION`` and ``settle``, lazily (see ``gluon_w7``)."""
    return gluon_w7.__getattr__(name)


def zoo(inp: dict):
    """Setup of a zoo row: returns ``step`` = forward+backward in training mode; it
    returns the per-sample losses and the checked parameters' gradients."""
    mx = gluon_w7._framework()
    X, y = mx.nd.array(inp["X"]), mx.nd.array(inp["y"])
    net, params = build(mx, str(inp["model"]), X)
    shapes = [tuple(p.shape) for p in params]
    picks = inp.get("picks")  # the reference's choice (see _mxnet_float64)
    if picks is None:
        picks = checked_indices(shapes, [p.grad_req != "null" for p in params])
    expected = inp.get("param_shapes")
    if expected is not None and [list(s) for s in shapes] != json.loads(str(expected)):
        raise RuntimeError("the network's parameters differ from the reference's")
    if gluon_w7.option("HYBRIDIZE"):
        net.hybridize(static_alloc=True, static_shape=True)
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    checked = [params[i] for i in picks]

    def step():
        with mx.autograd.record():
            L = loss(net(X), y)
        L.backward()
        mx.nd.waitall()
        return L, [p.grad() for p in checked]

    return step


# ---------------------------------------------------------------- float64 reference


def _reference_file(model: str, batch: int, n: int) -> Path:
    """Where the reference of ``model`` at this size is kept: keyed by the source of the
    functions that decide it, so a change to them computes it again."""
    deciding = (initial_weights, checked_indices, build, _no_dropout, _mxnet_float64)
    text = "".join(inspect.getsource(f) for f in deciding)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return REFERENCE_DIR / f"{model}-b{batch}-s{n}-{digest}.npz"


def reference(inp: dict):
    """The losses and the checked gradients from MXNet 1.9.1 in float64 (computed in
    the interop virtualenv once per model, size and version of this file). Also sets
    ``inp["param_shapes"]`` so the setup can verify it built the same network."""
    model, (batch, _, n, _) = str(inp["model"]), inp["X"].shape
    path = _reference_file(model, batch, n)
    if not path.exists():
        if not MXNET_PYTHON.exists():
            raise RuntimeError(f"no {MXNET_PYTHON}: the zoo's float64 reference is MXNet's")
        path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ, BENCH_MX="mxnet", MXNET_MKLDNN_ENABLED="0", PYTHONPATH=str(REPO_ROOT)
        )
        inputs = path.with_suffix(".inputs.npz")
        np.savez(inputs, X=inp["X"], y=inp["y"])
        cmd = [str(MXNET_PYTHON), "-m", "bench.libs.zoo", model, str(inputs), str(path)]
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        inputs.unlink()
        if done.returncode != 0:
            raise RuntimeError("MXNet's float64 reference failed: " + done.stderr[-500:])
    with np.load(path) as saved:
        inp["param_shapes"], inp["picks"] = saved["param_shapes"], saved["picks"].tolist()
        grads = [saved[f"grad{i}"] for i in range(int(saved["count"]))]
        return saved["losses"], grads


def _mxnet_float64(model: str, inputs: str, out: str) -> None:
    """Run in the interop virtualenv: the forward+backward of ``model`` in float64."""
    import mxnet as mx

    with np.load(inputs) as arrays:
        X, y = arrays["X"], arrays["y"]
    net, params = build(mx, model, mx.nd.array(X))
    net.cast("float64")
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    X64, y64 = mx.nd.array(X, dtype="float64"), mx.nd.array(y, dtype="float64")
    with mx.autograd.record():
        L = loss(net(X64), y64)
    L.backward()
    # A convolution's bias before a training-mode BatchNorm has a gradient of exactly
    # zero (the normalisation removes it), which float32 leaves at rounding noise: no
    # relative error can be measured there, so such parameters are not checked.
    sizes = [p.grad().abs().max().asscalar() if p.grad_req != "null" else 0.0 for p in params]
    usable = [size > 1e-8 * max(sizes) for size in sizes]
    shapes = [tuple(p.shape) for p in params]
    picks = checked_indices(shapes, usable)
    grads = {f"grad{k}": params[i].grad().asnumpy() for k, i in enumerate(picks)}
    np.savez(
        out,
        losses=L.asnumpy(),
        count=len(picks),
        picks=np.array(picks),
        param_shapes=json.dumps([list(s) for s in shapes]),
        **grads,
    )


if __name__ == "__main__":
    _mxnet_float64(*sys.argv[1:4])
