"""The small MXNet namespaces: ``mx.util``, ``mx.runtime``, ``mx.base``,
``mx.context`` and ``mx.image``, against real MXNet 1.9.1 (interop virtualenv)
where MXNet can say what it does."""

from __future__ import annotations

import io
import json
import sys
import threading

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx

pytestmark = pytest.mark.interop

UTIL = """
import json
u = mx.util
out = {"start": [u.is_np_shape(), u.is_np_array()]}
out["set"] = [u.set_np_shape(True), u.is_np_shape(), u.set_np_shape(False), u.is_np_shape()]
with u.np_shape():
    out["scope"] = [u.is_np_shape()]
    with u.np_shape(False):
        out["scope"].append(u.is_np_shape())
    out["scope"].append(u.is_np_shape())
out["scope"].append(u.is_np_shape())

@u.use_np_shape
def inside(a, b=2):
    return [u.is_np_shape(), a + b]

@u.use_np_shape
class Holder:
    def __init__(self):
        self.at_init = u.is_np_shape()
    def method(self):
        return u.is_np_shape()
    @staticmethod
    def static():
        return u.is_np_shape()
    @classmethod
    def klass(cls):
        return u.is_np_shape()
    @property
    def prop(self):
        return u.is_np_shape()

h = Holder()
out["decorated"] = [inside(1), inside.__name__, h.at_init, h.method(), Holder.static(),
                    Holder.klass(), h.prop, u.is_np_shape()]
out["base"] = [str(mx.base.mx_real_t), mx.base.data_dir(),
               issubclass(mx.base.MXNetError, Exception)]
out["gpus"] = mx.context.num_gpus()
f = mx.runtime.Features()
out["features"] = list(f.keys())
out["repr"] = [repr(f["CUDA"]), type(f["CUDA"]).__name__]
out["is_enabled"] = [f.is_enabled("cuda"), f.is_enabled("CUDNN"), f.is_enabled("LAPACK")]
try:
    f.is_enabled("NOPE")
except Exception as error:
    out["unknown"] = [type(error).__name__, str(error)]
json.dump(out, open("out.json", "w"))
"""


def _both(mxnet_python, tmp_path, script: str) -> tuple[dict, dict]:
    (tmp_path / "theirs").mkdir()
    (tmp_path / "ours").mkdir()
    run_mxnet(mxnet_python, "import mxnet as mx\n" + script, tmp_path / "theirs")
    exec(script.replace('"out.json"', repr(str(tmp_path / "ours" / "out.json"))), {"mx": mx})
    return (
        json.loads((tmp_path / "theirs" / "out.json").read_text()),
        json.loads((tmp_path / "ours" / "out.json").read_text()),
    )


def test_util_runtime_base_context_as_mxnet(mxnet_python, tmp_path, monkeypatch):
    monkeypatch.delenv("MXNET_HOME", raising=False)
    theirs, ours = _both(mxnet_python, tmp_path, UTIL)
    assert ours == theirs


def test_np_shape_is_per_thread():
    seen = []
    mx.util.set_np_shape(True)
    try:
        worker = threading.Thread(target=lambda: seen.append(mx.util.is_np_shape()))
        worker.start()
        worker.join()
        assert seen == [False] and mx.util.is_np_shape()
    finally:
        mx.util.set_np_shape(False)


def test_features_say_what_symgrad_has():
    features = mx.runtime.Features()
    assert not any(features.is_enabled(n) for n in ("CUDA", "CUDNN", "NCCL", "MKLDNN", "TVM_OP"))
    assert features.is_enabled("INT64_TENSOR_SIZE") and features.is_enabled("LAPACK")
    assert [f.name for f in mx.runtime.feature_list()] == list(features)
    assert str(features).startswith("[✖ CUDA, ✖ CUDNN")


def test_data_dir_follows_mxnet_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    assert mx.base.data_dir() == str(tmp_path)


def test_context_scopes_and_gpu_memory():
    assert mx.current_context() == mx.cpu(0)
    with mx.cpu(3):
        with mx.cpu(4):
            assert mx.current_context() == mx.cpu(4)
        assert mx.current_context() == mx.cpu(3)
    assert mx.current_context() == mx.cpu(0)
    with pytest.raises(mx.MXNetError, match="no GPU"):
        mx.context.gpu_memory_info(0)


# ---------------------------------------------------------------------------
# mx.image
# ---------------------------------------------------------------------------

IMAGE = """
import json
import numpy as np
data = open("picture.png", "rb").read()
img = mx.image.imdecode(data)
out = {"decoded": img.asnumpy().tolist(), "dtype": str(np.dtype(img.dtype)),
       "type": type(img).__name__}
out["bgr"] = mx.image.imdecode(data, to_rgb=0).asnumpy().tolist()
out["gray"] = mx.image.imdecode(data, flag=0).asnumpy().tolist()
out["from_numpy"] = mx.image.imdecode(np.frombuffer(data, np.uint8)).shape
out["imread"] = mx.image.imread("picture.png").asnumpy().tolist()
for interp in range(5):
    for w, h in [(20, 15), (90, 70), (53, 20), (26, 37), (40, 50)]:
        resized = mx.image.imresize(img, w, h, interp=interp)
        out["resize_%d_%d_%d" % (interp, w, h)] = resized.asnumpy().tolist()
out["short"] = [mx.image.resize_short(img, 20).shape,
                mx.image.resize_short(mx.nd.zeros((53, 37, 3), dtype="uint8"), 20).shape]
out["short_values"] = mx.image.resize_short(img, 20, interp=1).asnumpy().tolist()
crop, box = mx.image.center_crop(img, (20, 10))
out["center"] = [crop.asnumpy().tolist(), list(box)]
crop, box = mx.image.center_crop(img, (80, 10), interp=0)
out["center_up"] = [crop.asnumpy().tolist(), list(box)]
out["scale_down"] = list(mx.image.scale_down((53, 37), (80, 10)))
out["fixed"] = mx.image.fixed_crop(img, 2, 3, 10, 5).asnumpy().tolist()
norm = mx.image.color_normalize(img.astype("float32"), mx.nd.array([1, 2, 3]),
                                mx.nd.array([2, 2, 4]))
out["normalize"] = norm.asnumpy().tolist()
try:
    mx.image.imdecode(b"not an image")
except Exception as error:
    out["invalid"] = type(error).__name__
json.dump(out, open("out.json", "w"))
"""


@pytest.fixture
def picture(tmp_path):
    """A random 37x53 RGB PNG written with Pillow into both working directories."""
    pil = pytest.importorskip("PIL.Image")
    pixels = (np.random.default_rng(7).random((37, 53, 3)) * 255).astype(np.uint8)
    for side in ("theirs", "ours"):
        (tmp_path / side).mkdir(exist_ok=True)
        pil.fromarray(pixels).save(tmp_path / side / "picture.png")
    return pixels


def test_image_functions_as_mxnet(mxnet_python, tmp_path, picture, monkeypatch):
    run_mxnet(mxnet_python, "import mxnet as mx\n" + IMAGE, tmp_path / "theirs")
    monkeypatch.chdir(tmp_path / "ours")
    exec(IMAGE, {"mx": mx})
    theirs = json.loads((tmp_path / "theirs" / "out.json").read_text())
    ours = json.loads((tmp_path / "ours" / "out.json").read_text())
    assert ours.keys() == theirs.keys()
    assert np.array_equal(ours["decoded"], picture)
    for key in theirs:
        if key.startswith("resize_") or key in ("gray", "short_values", "center", "center_up"):
            # OpenCV computes uint8 results in fixed point: one level apart at most
            mine, real = ours[key], theirs[key]
            if key.startswith("center"):
                assert mine[1] == real[1], key
                mine, real = mine[0], real[0]
            mine, real = np.array(mine), np.array(real)
            assert mine.shape == real.shape, key
            assert np.abs(mine - real).max() <= 1, key
        elif key == "invalid":
            assert ours[key] == theirs[key] == "MXNetError"
        else:
            assert ours[key] == theirs[key], key


def test_resize_weights_keep_constant_images_and_average_areas():
    flat = mx.nd.array(np.full((9, 7, 3), 77), dtype="uint8")
    for interp in range(5):
        for w, h in [(3, 2), (20, 30), (7, 9), (4, 15)]:
            resized = mx.image.imresize(flat, w, h, interp=interp).asnumpy()
            assert resized.shape == (h, w, 3) and (resized == 77).all()
    ramp = mx.nd.array(np.arange(8.0).reshape(1, 8, 1) * 10)
    # area shrink by 2 averages pairs: (0 + 10) / 2, (20 + 30) / 2, ...
    assert mx.image.imresize(ramp, 4, 1, interp=3).asnumpy().ravel().tolist() == [5, 25, 45, 65]


def test_imdecode_without_an_image_library_names_the_fix(monkeypatch):
    png = io.BytesIO()
    pytest.importorskip("PIL.Image").new("RGB", (2, 2)).save(png, format="PNG")
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        mx.image.imdecode(png.getvalue())
