"""NDArray files both ways against the real MXNet 1.9.1 (the interop virtualenv):
MXNet writes and symgrad reads, symgrad writes and MXNet reads, byte for byte the same
files for the same arrays, and the ``.params`` files of Gluon's ``save_parameters`` and
``export`` for a small Dense network."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad.base import MXNetError
from symgrad.ndarray import serialization

pytestmark = pytest.mark.interop

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]

# One MXNet run writes every file the reading tests need, with the values it saved
# (as MXNet gives them back through asnumpy) in .npz files beside them.
_MXNET_WRITES = r"""
import json
import struct
import numpy as np
import mxnet as mx

DTYPES = json.loads('DTYPES_JSON')
SHAPES = [(1,), (5,), (2, 3), (2, 3, 4), (0,), (2, 0, 3)]

def values(shape, dtype, seed):
    rng = np.random.RandomState(seed)
    if dtype == "bool":
        return rng.rand(*shape) > 0.5
    if np.dtype(dtype).kind == "f":
        return rng.randn(*shape).astype(dtype)
    info = np.iinfo(dtype)
    flat = rng.randint(info.min, int(info.max) + 1, size=int(np.prod(shape)), dtype=dtype)
    if flat.size >= 2:
        flat[0], flat[1] = info.min, info.max
    return flat.reshape(shape)

listed, reference = [], {}
for d, dtype in enumerate(DTYPES):
    for s, shape in enumerate(SHAPES):
        array = mx.nd.array(values(shape, dtype, 10 * d + s), dtype=dtype)
        reference["%03d" % len(listed)] = array.asnumpy()
        listed.append(array)
mx.nd.save("list.nd", listed)
np.savez("list.npz", **reference)

named = {"arg:dense0_weight": mx.nd.array(values((4, 3), "float32", 1)),
         "aux:bn_moving_var": mx.nd.array(values((4,), "float64", 2), dtype="float64"),
         "counts": mx.nd.array(values((2, 2), "int64", 3), dtype="int64")}
mx.nd.save("dict.nd", named)
np.savez("dict.npz", **{k: v.asnumpy() for k, v in named.items()})
json.dump(list(named), open("dict_order.json", "w"))

with mx.util.np_shape(True):
    scalars = [mx.nd.array(np.array(2.5, dtype="float32")),
               mx.nd.array(np.array(-7, dtype="int64"), dtype="int64"),
               mx.nd.zeros((0, 2)), mx.nd.array([[1.0, 2.0]])]
    mx.nd.save("np_shape.nd", scalars)
    np.savez("np_shape.npz", *[x.asnumpy() for x in scalars])

mx.nd.save("csr.nd", [mx.nd.array([[1, 0], [0, 2]]).tostype("csr")])
mx.nd.save("row_sparse.nd", [mx.nd.array([[1, 0], [0, 0]]).tostype("row_sparse")])
""".replace("DTYPES_JSON", json.dumps(DTYPES))


@pytest.fixture(scope="module")
def mxnet_files(mxnet_python, tmp_path_factory) -> Path:
    """A folder of NDArray files written by the real MXNet, with their values."""
    folder = tmp_path_factory.mktemp("mxnet_files")
    run_mxnet(mxnet_python, _MXNET_WRITES, folder)
    return folder


def _assert_same(loaded: mx.nd.NDArray, expected: np.ndarray) -> None:
    assert loaded.shape == expected.shape
    assert loaded.dtype == expected.dtype.type
    np.testing.assert_array_equal(loaded.asnumpy(), expected)


# -- MXNet writes, symgrad reads ---------------------------------------------------------


def test_reads_mxnet_lists_of_every_dtype_and_shape(mxnet_files: Path) -> None:
    loaded = mx.nd.load(str(mxnet_files / "list.nd"))
    reference = np.load(mxnet_files / "list.npz")
    assert isinstance(loaded, list) and len(loaded) == len(reference.files) == 48
    for index, got in enumerate(loaded):
        _assert_same(got, reference[f"{index:03d}"])
    assert {got.dtype for got in loaded} == {np.dtype(d).type for d in DTYPES}


def test_reads_mxnet_dicts_in_order(mxnet_files: Path) -> None:
    loaded = mx.nd.load(str(mxnet_files / "dict.nd"))
    reference = np.load(mxnet_files / "dict.npz")
    order = json.loads((mxnet_files / "dict_order.json").read_text())
    assert isinstance(loaded, dict) and list(loaded) == order
    for key in order:
        _assert_same(loaded[key], reference[key])


def test_reads_mxnet_numpy_shape_files_with_0d_and_empty_arrays(mxnet_files: Path) -> None:
    loaded = mx.nd.load(str(mxnet_files / "np_shape.nd"))
    reference = np.load(mxnet_files / "np_shape.npz")
    assert [x.shape for x in loaded] == [(), (), (0, 2), (1, 2)]
    for index, got in enumerate(loaded):
        _assert_same(got, reference[f"arr_{index}"])


def test_load_frombuffer_of_mxnet_bytes(mxnet_files: Path) -> None:
    from_file = mx.nd.load(str(mxnet_files / "dict.nd"))
    from_buffer = mx.nd.load_frombuffer((mxnet_files / "dict.nd").read_bytes())
    assert list(from_buffer) == list(from_file)
    for key in from_file:
        _assert_same(from_buffer[key], from_file[key].asnumpy())


@pytest.mark.parametrize("name", ["csr", "row_sparse"])
def test_mxnet_sparse_files_are_refused_by_name(mxnet_files: Path, name: str) -> None:
    with pytest.raises(MXNetError, match=f"{name}.nd'.*sparse storage not supported: {name}"):
        mx.nd.load(str(mxnet_files / f"{name}.nd"))


def test_symgrad_writes_the_same_bytes_as_mxnet(mxnet_files: Path) -> None:
    for stem in ("list", "dict", "np_shape"):
        reference = np.load(mxnet_files / f"{stem}.npz")
        if stem == "dict":
            order = json.loads((mxnet_files / "dict_order.json").read_text())
            data = {key: mx.nd.NDArray(reference[key]) for key in order}
        else:
            keys = sorted(reference.files, key=lambda k: int(k.split("_")[-1]))
            data = [mx.nd.NDArray(reference[key]) for key in keys]
        assert serialization.dumps(data) == (mxnet_files / f"{stem}.nd").read_bytes(), stem


# -- symgrad writes, MXNet reads ---------------------------------------------------------

_MXNET_READS = r"""
import json, sys
import numpy as np
import mxnet as mx

report = {}
listed = mx.nd.load("ours_list.nd")
np.savez("back_list.npz", *[x.asnumpy() for x in listed])
report["list_types"] = [type(x).__name__ for x in listed]
named = mx.nd.load("ours_dict.params")
report["dict_keys"] = list(named)
np.savez("back_dict.npz", **{k: v.asnumpy() for k, v in named.items()})
buffered = mx.nd.load_frombuffer(open("ours_dict.params", "rb").read())
report["buffer_equal"] = all((buffered[k].asnumpy() == named[k].asnumpy()).all() for k in named)
try:
    mx.nd.load("ours_scalar.nd")
    report["scalar_without_np_shape"] = "loaded"
except mx.base.MXNetError as err:
    report["scalar_without_np_shape"] = str(err)
with mx.util.np_shape(True):
    scalars = mx.nd.load("ours_scalar.nd")
    np.savez("back_scalar.npz", *[x.asnumpy() for x in scalars])
json.dump(report, open("report.json", "w"))
"""


def test_mxnet_reads_what_symgrad_writes(mxnet_python, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    arrays = []
    for dtype in DTYPES:
        for shape in [(3,), (2, 4), (1, 2, 3), (0,), (3, 0)]:
            if dtype == "bool":
                arrays.append(rng.random(shape) > 0.5)
            elif dtype.startswith("float"):
                arrays.append(rng.standard_normal(shape).astype(dtype))
            else:
                info = np.iinfo(dtype)
                arrays.append(
                    rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
                )
    named = {
        "0.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "aux:running_mean": np.arange(4, dtype=np.float64),
        "ünï:code": np.array([[7, 8]], dtype=np.int8),
    }
    scalars = [
        np.array(1.25, dtype=np.float32),
        np.array(3, dtype=np.int32),
        np.zeros((0, 2), dtype=np.float16),
        np.ones((2, 1), dtype=np.uint8),
    ]
    mx.nd.save(str(tmp_path / "ours_list.nd"), [mx.nd.NDArray(a) for a in arrays])
    mx.nd.save(
        str(tmp_path / "ours_dict.params"),
        {key: mx.nd.NDArray(value) for key, value in named.items()},
    )
    mx.nd.save(str(tmp_path / "ours_scalar.nd"), [mx.nd.NDArray(a) for a in scalars])

    run_mxnet(mxnet_python, _MXNET_READS, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    back = np.load(tmp_path / "back_list.npz")
    assert report["list_types"] == ["NDArray"] * len(arrays)
    for index, want in enumerate(arrays):
        got = back[f"arr_{index}"]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert report["dict_keys"] == list(named)
    back = np.load(tmp_path / "back_dict.npz")
    for key, want in named.items():
        assert back[key].dtype == want.dtype
        np.testing.assert_array_equal(back[key], want)
    assert report["buffer_equal"] is True
    # a file with 0-d arrays is in MXNet's numpy shape semantics, and MXNet says so
    assert "np shape semantics" in report["scalar_without_np_shape"]
    back = np.load(tmp_path / "back_scalar.npz")
    for index, want in enumerate(scalars):
        got = back[f"arr_{index}"]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


# -- Gluon's .params files ---------------------------------------------------------------

_MXNET_GLUON = r"""
import json
import struct
import numpy as np
import mxnet as mx
from mxnet import gluon

mx.random.seed(3)
net = gluon.nn.HybridSequential()
with net.name_scope():
    net.add(gluon.nn.Dense(5, activation="relu", in_units=3))
    net.add(gluon.nn.Dense(2, in_units=5))
net.initialize(mx.init.Xavier())
net.hybridize()
x = mx.nd.array(np.linspace(-1, 1, 12).reshape(4, 3))
out = net(x)
net.save_parameters("net.params")
net.export("net", epoch=3)
params = net._collect_params_with_prefix()
np.savez("net_values.npz", out=out.asnumpy(), x=x.asnumpy(),
         **{name: p.data().asnumpy() for name, p in params.items()})
json.dump({"structural": list(params),
           "full": {name: p.name for name, p in params.items()}},
          open("names.json", "w"))

# the files symgrad wrote from other weights: MXNet loads them into the same network
if __import__("os").path.exists("ours.params"):
    net.load_parameters("ours.params")
    imported = gluon.SymbolBlock.imports("net-symbol.json", ["data"], "ours-0000.params")
    np.savez("ours_out.npz", loaded=net(x).asnumpy(), imported=imported(x).asnumpy())
"""


def _dense_net(params: dict, x: np.ndarray) -> np.ndarray:
    hidden = np.maximum(x @ params["0.weight"].T + params["0.bias"], 0)
    return hidden @ params["1.weight"].T + params["1.bias"]


def test_gluon_params_files_both_ways(mxnet_python, tmp_path: Path) -> None:
    run_mxnet(mxnet_python, _MXNET_GLUON, tmp_path)
    values = np.load(tmp_path / "net_values.npz")
    names = json.loads((tmp_path / "names.json").read_text())
    assert names["structural"] == ["0.weight", "0.bias", "1.weight", "1.bias"]

    # save_parameters: structural names, values equal to MXNet's, and they compute its output
    saved = mx.nd.load(str(tmp_path / "net.params"))
    assert sorted(saved) == sorted(names["structural"])
    for key in names["structural"]:
        _assert_same(saved[key], values[key])
    weights = {key: array.asnumpy() for key, array in saved.items()}
    np.testing.assert_allclose(
        _dense_net(weights, values["x"]), values["out"], rtol=1e-5, atol=1e-6
    )

    # export: the same arrays under 'arg:' + each parameter's full name (no aux here)
    exported = mx.nd.load(str(tmp_path / "net-0003.params"))
    assert sorted(exported) == sorted("arg:" + full for full in names["full"].values())
    for key, full in names["full"].items():
        _assert_same(exported["arg:" + full], values[key])

    # symgrad writes new weights in both forms; MXNet loads them and computes with them
    rng = np.random.default_rng(11)
    ours = {
        key: rng.standard_normal(values[key].shape).astype(np.float32)
        for key in names["structural"]
    }
    mx.nd.save(str(tmp_path / "ours.params"), {k: mx.nd.NDArray(v) for k, v in ours.items()})
    mx.nd.save(
        str(tmp_path / "ours-0000.params"),
        {"arg:" + names["full"][k]: mx.nd.NDArray(v) for k, v in ours.items()},
    )
    run_mxnet(mxnet_python, _MXNET_GLUON, tmp_path)
    outputs = np.load(tmp_path / "ours_out.npz")
    expected = _dense_net(ours, values["x"])
    np.testing.assert_allclose(outputs["loaded"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs["imported"], expected, rtol=1e-5, atol=1e-5)


_MXNET_LOADS_SYMGRAD_GLUON = r"""
import numpy as np
import mxnet as mx
from mxnet import gluon

net = gluon.nn.HybridSequential()
with net.name_scope():
    net.add(gluon.nn.Dense(5, activation="relu", in_units=3))
    net.add(gluon.nn.Dense(2, in_units=5))
net.load_parameters("symgrad.params")
x = mx.nd.array(np.load("x.npy"))
imported = gluon.SymbolBlock.imports("symgrad-symbol.json", ["data"], "symgrad-0001.params")
np.savez("mxnet_out.npz", loaded=net(x).asnumpy(), imported=imported(x).asnumpy())
"""


def _symgrad_dense_net():
    from symgrad import gluon

    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(5, activation="relu", in_units=3))
        net.add(gluon.nn.Dense(2, in_units=5))
    return net


def test_symgrad_gluon_reads_and_writes_mxnet_params(mxnet_python, tmp_path: Path) -> None:
    from symgrad import gluon

    run_mxnet(mxnet_python, _MXNET_GLUON, tmp_path)
    values = np.load(tmp_path / "net_values.npz")
    x = mx.nd.array(values["x"])

    # MXNet's save_parameters and export files, read by symgrad's Gluon
    net = _symgrad_dense_net()
    net.load_parameters(str(tmp_path / "net.params"))
    np.testing.assert_allclose(net(x).asnumpy(), values["out"], rtol=1e-5, atol=1e-6)
    imported = gluon.SymbolBlock.imports(
        str(tmp_path / "net-symbol.json"), ["data"], str(tmp_path / "net-0003.params")
    )
    np.testing.assert_allclose(imported(x).asnumpy(), values["out"], rtol=1e-5, atol=1e-6)

    # symgrad's own weights, written by its Gluon, read by MXNet's
    ours = _symgrad_dense_net()
    ours.initialize(mx.init.Uniform(0.7))
    ours.hybridize()
    expected = ours(x).asnumpy()
    ours.save_parameters(str(tmp_path / "symgrad.params"))
    ours.export(str(tmp_path / "symgrad"), epoch=1)
    np.save(tmp_path / "x.npy", values["x"])
    run_mxnet(mxnet_python, _MXNET_LOADS_SYMGRAD_GLUON, tmp_path)
    outputs = np.load(tmp_path / "mxnet_out.npz")
    np.testing.assert_allclose(outputs["loaded"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["imported"], expected, rtol=1e-5, atol=1e-6)


def test_old_versions_and_gpu_arrays_read_as_mxnet_reads_them(mxnet_python, tmp_path: Path) -> None:
    # Files of older MXNet versions, laid out by hand: a V1 array (int64 dims), an
    # array of the oldest, magic-less kind (uint32 dims) and a V2 array saved on gpu(1).
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    ints = np.arange(-4, 4, dtype=np.int32).reshape(4, 2)
    doubles = np.array([1.5, -2.5], dtype=np.float64)
    blob = (
        struct.pack("<QQQ", 0x112, 0, 3)
        + struct.pack("<II2qiii", 0xF993FAC8, 2, 2, 3, 1, 0, 0)
        + floats.tobytes()
        + struct.pack("<I2Iiii", 2, 4, 2, 1, 0, 4)
        + ints.tobytes()
        + struct.pack("<Iii1qiii", 0xF993FAC9, 0, 1, 2, 2, 1, 1)
        + doubles.tobytes()
        + struct.pack("<Q", 3)
        + b"".join(struct.pack("<Q", 2) + n for n in (b"v1", b"v0", b"gp"))
    )
    (tmp_path / "old.nd").write_bytes(blob)
    contexts = run_mxnet(
        mxnet_python,
        "import mxnet as mx, numpy as np\n"
        "loaded = mx.nd.load('old.nd')\n"
        "np.savez('old.npz', **{k: v.asnumpy() for k, v in loaded.items()})\n"
        "print(sorted({str(v.context) for v in loaded.values()}))\n",
        tmp_path,
    )
    assert contexts.strip() == "['cpu(0)']"  # MXNet without CUDA loads gpu arrays on the CPU
    theirs = np.load(tmp_path / "old.npz")
    ours = mx.nd.load(str(tmp_path / "old.nd"))
    assert list(ours) == ["v1", "v0", "gp"] and sorted(theirs.files) == sorted(ours)
    for key, want in zip(ours, (floats, ints, doubles)):
        np.testing.assert_array_equal(theirs[key], want)
        _assert_same(ours[key], theirs[key])
