"""The ``_image_*`` ops (compiler/ops/image.py) against MXNet 1.9.1's
``mx.nd.image``: values and gradients for the same inputs and head gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad import autograd

pytestmark = pytest.mark.interop

# (MXNet's mx.nd.image function, input shape, attrs, differentiable)
CASES = {
    "to_tensor hwc": ("to_tensor", (4, 5, 3), {}, False),
    "to_tensor nhwc": ("to_tensor", (2, 4, 5, 1), {}, False),
    "normalize chw": (
        "normalize",
        (3, 4, 5),
        {"mean": (0.1, 0.2, 0.3), "std": (1.0, 2.0, 3.0)},
        True,
    ),
    "normalize nchw": (
        "normalize",
        (2, 3, 2, 4),
        {"mean": (0.5, 0.25, 0.0), "std": (0.2, 2.0, 4.0)},
        True,
    ),
    "normalize one value": ("normalize", (3, 2, 4), {"mean": 0.5, "std": 2.0}, True),
    "normalize gray": ("normalize", (1, 2, 3), {"mean": 0.25, "std": 0.5}, True),
    # even widths and heights: MXNet 1.9.1's flips swap pairs and leave an odd
    # image's middle column (row) of the output unwritten
    "flip_left_right": ("flip_left_right", (3, 6, 3), {}, True),
    "flip_left_right gray": ("flip_left_right", (4, 2, 1), {}, True),
    "flip_top_bottom": ("flip_top_bottom", (4, 5, 3), {}, True),
    "crop hwc": ("crop", (5, 6, 3), {"x": 1, "y": 2, "width": 3, "height": 2}, True),
    "crop nhwc": ("crop", (2, 5, 6, 3), {"x": 0, "y": 1, "width": 6, "height": 3}, True),
    "adjust_lighting": ("adjust_lighting", (4, 5, 3), {"alpha": (0.1, -0.2, 0.3)}, True),
    "adjust_lighting large": ("adjust_lighting", (2, 3, 3), {"alpha": (1.0, 0.5, -1.0)}, True),
}

SCRIPT = """
import json
import numpy as np
import mxnet as mx

cases = json.load(open("cases.json"))
arrays = np.load("inputs.npz")
results = {}
for name, (function, _shape, attrs, differentiable) in cases.items():
    x = mx.nd.array(arrays[name + " x"])
    x.attach_grad()
    with mx.autograd.record():
        y = getattr(mx.nd.image, function)(x, **attrs)
    results[name + " y"] = y.asnumpy()
    if differentiable:
        y.backward(mx.nd.array(arrays[name + " g"]))
        results[name + " grad"] = x.grad.asnumpy()
np.savez("mxnet.npz", **results)
"""


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    arrays = {}
    for name, (_function, shape, _attrs, _) in CASES.items():
        arrays[name + " x"] = rng.uniform(0, 255, shape).astype(np.float32)
    return arrays


def _symgrad(name, x, g):
    function, _, attrs, differentiable = CASES[name]
    array = mx.nd.array(x)
    array.attach_grad()
    with autograd.record():
        y = getattr(mx.nd, f"_image_{function}")(array, **attrs)
    results = {name + " y": y.asnumpy()}
    if differentiable:
        y.backward(mx.nd.array(g))
        results[name + " grad"] = array.grad.asnumpy()
    return results


@pytest.fixture(scope="module")
def compared(mxnet_python, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("image")
    arrays = _inputs()
    rng = np.random.default_rng(12)
    ours = {}
    for name in CASES:
        # the head gradient has the output's shape: symgrad's shape rule gives it
        function, _, attrs, _ = CASES[name]
        out = getattr(mx.nd, f"_image_{function}")(mx.nd.array(arrays[name + " x"]), **attrs)
        arrays[name + " g"] = rng.uniform(-1, 1, out.shape).astype(np.float32)
        ours.update(_symgrad(name, arrays[name + " x"], arrays[name + " g"]))
    np.savez(workdir / "inputs.npz", **arrays)
    (workdir / "cases.json").write_text(json.dumps(CASES))
    run_mxnet(mxnet_python, SCRIPT, workdir)
    return ours, dict(np.load(workdir / "mxnet.npz")), arrays


# MXNet 1.9.1 gives the flips the identity's gradient, g itself, where the
# derivative of a flip is g flipped back (finite differences agree: the generated
# per-op tests check it). symgrad keeps the derivative.
FLIP_AXIS = {"flip_left_right": 1, "flip_top_bottom": 0}


@pytest.mark.parametrize("name", list(CASES))
def test_image_op_equals_mxnet(compared, name):
    ours, theirs, arrays = compared
    keys = [key for key in (name + " y", name + " grad") if key in theirs]
    assert keys == [key for key in (name + " y", name + " grad") if key in ours]
    axis = FLIP_AXIS.get(CASES[name][0])
    if axis is not None:
        g = arrays[name + " g"]
        np.testing.assert_array_equal(theirs.pop(name + " grad"), g)  # MXNet's
        np.testing.assert_array_equal(ours[name + " grad"], np.flip(g, axis))
        keys.remove(name + " grad")
    for key in keys:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-6, atol=2e-5, err_msg=key)


def test_to_tensor_of_uint8_equals_mxnet_scale(mxnet_python, tmp_path):
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    np.save(tmp_path / "image.npy", image)
    script = (
        "import numpy as np, mxnet as mx\n"
        "x = mx.nd.array(np.load('image.npy'), dtype='uint8')\n"
        "np.save('out.npy', mx.nd.image.to_tensor(x).asnumpy())\n"
    )
    run_mxnet(mxnet_python, script, tmp_path)
    ours = mx.nd._image_to_tensor(mx.nd.array(image, dtype="uint8")).asnumpy()
    np.testing.assert_array_equal(ours, np.load(tmp_path / "out.npy"))


@pytest.mark.parametrize(
    "function, shape, attrs",
    [
        ("flip_left_right", (2, 4, 5, 3), {}),  # MXNet 1.9.1 flips single images only
        ("flip_top_bottom", (4, 5, 2), {}),  # 1 or 3 channels
        ("adjust_lighting", (2, 2, 3, 3), {"alpha": (1.0, 0.5, -1.0)}),  # single images
        ("crop", (5, 6, 3), {"x": 4, "y": 0, "width": 3, "height": 2}),  # past the edge
        ("normalize", (3, 2, 3), {}),  # the defaults are four values, for 1 or 3 channels
        ("normalize", (4, 2, 3), {"mean": 0.5, "std": 2.0}),  # 1 or 3 channels
    ],
)
def test_shapes_mxnet_refuses_are_refused(function, shape, attrs):
    with pytest.raises(mx.base.MXNetError):
        getattr(mx.nd, f"_image_{function}")(mx.nd.ones(shape), **attrs)
