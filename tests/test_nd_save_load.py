"""``nd.save`` / ``nd.load`` / ``nd.load_frombuffer``: round trips, the byte layout of
MXNet 1.x's NDArray files (written out by hand here from the format's description),
the older array versions, and a clear ``MXNetError`` for every damaged file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import symgrad as mx
from symgrad.base import MXNetError
from symgrad.ndarray import serialization

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8"]
SHAPES = [(), (1,), (5,), (0,), (2, 0, 3), (2, 3), (2, 3, 4), (1, 1, 1, 2, 1)]
FLAGS = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "uint8": 3,
    "int32": 4,
    "int8": 5,
    "int64": 6,
    "bool": 7,
}


def _values(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    # the extremes of the type too, so a wrong width or sign cannot pass
    flat = rng.integers(info.min, info.max, size=int(np.prod(shape)), dtype=dtype, endpoint=True)
    if flat.size >= 2:
        flat[0], flat[1] = info.min, info.max
    return flat.reshape(shape)


def _assert_same(loaded: mx.nd.NDArray, expected: np.ndarray) -> None:
    assert isinstance(loaded, mx.nd.NDArray)
    assert loaded.shape == expected.shape
    assert loaded.dtype == expected.dtype.type
    np.testing.assert_array_equal(loaded.asnumpy(), expected)


def _header(count: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, count)


def _v2_array(
    values: np.ndarray,
    magic: int = 0xF993FAC9,
    stype: int = 0,
    context: tuple[int, int] = (1, 0),
    flag: int | None = None,
) -> bytes:
    flag = FLAGS[values.dtype.name] if flag is None else flag
    return (
        struct.pack(
            f"<Iii{values.ndim}qiii", magic, stype, values.ndim, *values.shape, *context, flag
        )
        + values.tobytes()
    )


def _names(names: list[str]) -> bytes:
    out = struct.pack("<Q", len(names))
    for name in names:
        out += struct.pack("<Q", len(name.encode())) + name.encode()
    return out


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES + ["bool"])
def test_round_trip_every_dtype_and_shape(tmp_path: Path, dtype: str) -> None:
    if dtype == "bool":
        arrays = [np.random.default_rng(1).random(s) > 0.5 for s in SHAPES]
    else:
        arrays = [_values(shape, dtype, seed) for seed, shape in enumerate(SHAPES)]
    fname = tmp_path / "arrays.nd"
    mx.nd.save(str(fname), [mx.nd.NDArray(a) for a in arrays])
    loaded = mx.nd.load(str(fname))
    assert isinstance(loaded, list) and len(loaded) == len(arrays)
    for got, want in zip(loaded, arrays):
        _assert_same(got, want)


def test_special_float_values_survive(tmp_path: Path) -> None:
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38], dtype=np.float32)
    mx.nd.save(tmp_path / "f.nd", mx.nd.NDArray(values))
    got = mx.nd.load(tmp_path / "f.nd")[0].asnumpy()
    assert got.tobytes() == values.tobytes()


def test_dict_keeps_names_and_order(tmp_path: Path) -> None:
    data = {
        "zeta": mx.nd.ones((2,)),
        "arg:fc_weight": mx.nd.array([[1, 2]]),
        "aux:bn_moving_mean": mx.nd.zeros((3,), dtype="float64"),
        "ünïcode": mx.nd.ones(1),
    }
    mx.nd.save(str(tmp_path / "d.params"), data)
    loaded = mx.nd.load(str(tmp_path / "d.params"))
    assert isinstance(loaded, dict)
    assert list(loaded) == list(data)
    for key in data:
        _assert_same(loaded[key], data[key].asnumpy())


def test_single_array_and_empty_containers(tmp_path: Path) -> None:
    mx.nd.save(str(tmp_path / "one"), mx.nd.array([1.5, 2.5]))
    (only,) = mx.nd.load(str(tmp_path / "one"))
    _assert_same(only, np.array([1.5, 2.5], dtype=np.float32))
    for empty in ([], {}):
        mx.nd.save(str(tmp_path / "empty"), empty)
        # MXNet loads a file without arrays as an empty list, even if a dict was saved
        assert mx.nd.load(str(tmp_path / "empty")) == []


def test_load_frombuffer_equals_load(tmp_path: Path) -> None:
    data = {"a": mx.nd.array([[1, 2], [3, 4]]), "b": mx.nd.array([7], dtype="int8")}
    mx.nd.save(str(tmp_path / "x.nd"), data)
    blob = (tmp_path / "x.nd").read_bytes()
    assert serialization.dumps(data) == blob
    for buffer in (blob, bytearray(blob), memoryview(blob)):
        loaded = mx.nd.load_frombuffer(buffer)
        assert list(loaded) == ["a", "b"]
        for key in data:
            _assert_same(loaded[key], data[key].asnumpy())
    with pytest.raises(TypeError):
        mx.nd.load_frombuffer(12)


def test_loaded_arrays_are_writable_and_independent(tmp_path: Path) -> None:
    blob = serialization.dumps([mx.nd.array([1, 2, 3])])
    first, second = mx.nd.load_frombuffer(blob)[0], mx.nd.load_frombuffer(blob)[0]
    first[:] = 9
    np.testing.assert_array_equal(first.asnumpy(), [9, 9, 9])
    np.testing.assert_array_equal(second.asnumpy(), [1, 2, 3])


def test_views_big_endian_and_recorded_arrays_save_their_values(tmp_path: Path) -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    transposed = mx.nd.NDArray(base.T)  # not C-contiguous
    big_endian = mx.nd.NDArray(np.arange(4, dtype=">i4"))
    x = mx.nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.tanh(x) * 2  # recorded: its value may be deferred
    mx.nd.save(str(tmp_path / "v.nd"), [transposed, big_endian, y])
    got = mx.nd.load(str(tmp_path / "v.nd"))
    _assert_same(got[0], base.T.copy())
    _assert_same(got[1], np.arange(4, dtype=np.int32))
    np.testing.assert_allclose(got[2].asnumpy(), np.tanh([1.0, 2.0, 3.0]) * 2, rtol=1e-6)


def test_pathlike_names(tmp_path: Path) -> None:
    mx.nd.save(tmp_path / "p.nd", [mx.nd.ones((1,))])
    assert mx.nd.load(tmp_path / "p.nd")[0].shape == (1,)


# -- the byte layout ---------------------------------------------------------------------


def test_bytes_of_a_dict_file_match_the_format() -> None:
    weight = np.array([[1, 2, 3]], dtype=np.float32)
    count = np.array([5], dtype=np.int64)
    expected = _header(2) + _v2_array(weight) + _v2_array(count) + _names(["w", "count"])
    blob = serialization.dumps({"w": mx.nd.NDArray(weight), "count": mx.nd.NDArray(count)})
    assert blob == expected
    # a list: the same arrays, no names
    assert serialization.dumps([mx.nd.NDArray(weight)]) == (
        _header(1) + _v2_array(weight) + _names([])
    )


def test_a_file_with_a_0d_array_is_written_in_numpy_shape_semantics() -> None:
    scalar, vector = np.array(2.5, dtype=np.float32), np.array([1, 2], dtype=np.int32)
    blob = serialization.dumps([mx.nd.NDArray(vector), mx.nd.NDArray(scalar)])
    # every array V3, since MXNet refuses to mix V2 and V3 arrays in one load
    assert blob == (
        _header(2)
        + _v2_array(vector, magic=0xF993FACA)
        + _v2_array(scalar, magic=0xF993FACA)
        + _names([])
    )
    # an empty array (a 0 among its dims) stays V2: no data bytes
    empty = np.zeros((0, 3), dtype=np.float32)
    assert serialization.dumps([mx.nd.NDArray(empty)]) == (
        _header(1) + _v2_array(empty) + _names([])
    )


def test_reads_0d_arrays_written_with_v2() -> None:
    # MXNet 1.9.1 in its default semantics writes a 0-d array this way
    scalar = np.array(3.0, dtype=np.float32)
    (got,) = mx.nd.load_frombuffer(_header(1) + _v2_array(scalar) + _names([]))
    _assert_same(got, scalar)


def test_reads_v1_and_magicless_arrays() -> None:
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    ints = np.arange(4, dtype=np.int64).reshape(4, 1)
    v1 = struct.pack("<II2qiii", 0xF993FAC8, 2, 2, 3, 1, 0, 0) + floats.tobytes()
    oldest = struct.pack("<I2Iiii", 2, 4, 1, 1, 0, 6) + ints.tobytes()
    never_shaped = struct.pack("<I", 0)  # ndim 0 before V2: no context or data follows
    blob = _header(3) + v1 + oldest + never_shaped + _names(["a", "b", "c"])
    loaded = mx.nd.load_frombuffer(blob)
    _assert_same(loaded["a"], floats)
    _assert_same(loaded["b"], ints)
    assert loaded["c"].shape == (0,)


def test_arrays_saved_on_a_gpu_load_on_the_cpu() -> None:
    values = np.array([1.0, -1.0], dtype=np.float64)
    (got,) = mx.nd.load_frombuffer(_header(1) + _v2_array(values, context=(2, 1)) + _names([]))
    _assert_same(got, values)
    assert got.context == mx.cpu(0)


# -- what save refuses -------------------------------------------------------------------


def test_save_refuses_what_mxnet_refuses(tmp_path: Path) -> None:
    fname = str(tmp_path / "x.nd")
    with pytest.raises(TypeError, match="dict str->NDArray"):
        mx.nd.save(fname, {"a": np.ones(2)})
    with pytest.raises(TypeError, match="dict str->NDArray"):
        mx.nd.save(fname, {1: mx.nd.ones(2)})
    with pytest.raises(TypeError, match="list of NDArray"):
        mx.nd.save(fname, [mx.nd.ones(2), 3])
    with pytest.raises(ValueError, match="data needs to either be"):
        mx.nd.save(fname, (mx.nd.ones(2),))
    with pytest.raises(TypeError, match="fname"):
        mx.nd.save(3, [mx.nd.ones(2)])


@pytest.mark.parametrize("dtype", ["int16", "uint32", "complex64"])
def test_save_refuses_dtypes_without_a_flag(tmp_path: Path, dtype: str) -> None:
    with pytest.raises(MXNetError, match=f"dtype {dtype}"):
        mx.nd.save(str(tmp_path / "x.nd"), [mx.nd.NDArray(np.zeros(2, dtype=dtype))])


def test_save_to_a_missing_folder_names_the_file(tmp_path: Path) -> None:
    fname = str(tmp_path / "no" / "such" / "x.nd")
    with pytest.raises(MXNetError, match="x.nd"):
        mx.nd.save(fname, [mx.nd.ones(1)])


# -- damaged and foreign files -----------------------------------------------------------


def _load_error(tmp_path: Path, blob: bytes, name: str = "bad.nd") -> str:
    fname = tmp_path / name
    fname.write_bytes(blob)
    with pytest.raises(MXNetError) as caught:
        mx.nd.load(str(fname))
    message = str(caught.value)
    assert name in message
    return message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(MXNetError, match="nowhere.nd"):
        mx.nd.load(str(tmp_path / "nowhere.nd"))
    assert "empty file" in _load_error(tmp_path, b"")


def test_foreign_files_have_a_bad_magic(tmp_path: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones(3))
    assert "bad magic" in _load_error(tmp_path, npy.read_bytes(), "a.npy")
    assert "bad magic" in _load_error(tmp_path, b"hello, this is text\n", "t.txt")
    assert "bad magic" in _load_error(tmp_path, b"ab", "short.txt")


def test_every_truncation_is_named(tmp_path: Path) -> None:
    data = {"w": mx.nd.array([[1, 2, 3]]), "b": mx.nd.array([1, 2], dtype="int64")}
    blob = serialization.dumps(data)
    first_array_end = len(_header(2)) + len(_v2_array(np.zeros((1, 3), np.float32)))
    for length in range(1, len(blob)):
        message = _load_error(tmp_path, blob[:length])
        assert "truncated" in message, (length, message)
        if len(_header(2)) + 8 <= length < first_array_end:
            assert "array 0 of 2" in message
    assert "array 1 of 2" in _load_error(tmp_path, blob[: first_array_end + 10])
    assert "truncated: the data (2 int64)" in _load_error(tmp_path, blob[: first_array_end + 40])


def test_unknown_dtype_flags(tmp_path: Path) -> None:
    values = np.ones(2, dtype=np.float32)
    unknown = _header(1) + _v2_array(values, flag=42) + _names([])
    assert "unknown dtype flag 42" in _load_error(tmp_path, unknown)
    bfloat16 = _header(1) + _v2_array(values.view(np.int16)[:2], flag=12) + _names([])
    assert "unknown dtype flag 12 (bfloat16" in _load_error(tmp_path, bfloat16)


@pytest.mark.parametrize("stype,name", [(1, "row_sparse"), (2, "csr")])
def test_sparse_storage_is_refused(tmp_path: Path, stype: int, name: str) -> None:
    blob = _header(1) + _v2_array(np.ones(2, np.float32), stype=stype) + _names([])
    message = _load_error(tmp_path, blob)
    assert f"sparse storage not supported: {name}" in message and "array 0 of 1" in message


def test_other_damage(tmp_path: Path) -> None:
    values = np.ones(2, dtype=np.float32)
    bad_context = _header(1) + _v2_array(values, context=(77, 0)) + _names([])
    assert "unknown device type 77" in _load_error(tmp_path, bad_context)
    wrong_names = _header(2) + _v2_array(values) * 2 + _names(["only"])
    assert "1 names for 2 arrays" in _load_error(tmp_path, wrong_names)
    huge_count = _header(2**40) + _v2_array(values)
    assert "bad array count: 1099511627776 arrays" in _load_error(tmp_path, huge_count)
    not_utf8 = _header(1) + _v2_array(values) + struct.pack("<QQ", 1, 2) + b"\xff\xfe"
    assert "not utf-8" in _load_error(tmp_path, not_utf8)
    unknown_shape = _header(1) + struct.pack("<Iii", 0xF993FACA, 0, -1) + _names([])
    assert "unknown shape" in _load_error(tmp_path, unknown_shape)
    negative_dim = _header(1) + struct.pack("<Iiiq", 0xF993FAC9, 0, 1, -1) + _names([])
    assert "negative dimensions" in _load_error(tmp_path, negative_dim)
    many_axes = _header(1) + struct.pack("<Iii", 0xF993FAC9, 0, 1000) + _names([])
    assert "1000 dimensions" in _load_error(tmp_path, many_axes)
    bad_array_magic = _header(1) + struct.pack("<Iii", 0xDEADBEEF, 0, 1) + _names([])
    assert "bad array magic 0xDEADBEEF" in _load_error(tmp_path, bad_array_magic)


def test_flipped_bytes_never_escape_as_other_errors() -> None:
    # any single damaged byte either still loads or raises MXNetError, never a raw
    # struct, numpy or unicode error
    data = {"w": mx.nd.array([[1, 2, 3]]), "n": mx.nd.array([4], dtype="uint8")}
    blob = bytearray(serialization.dumps(data))
    rng = np.random.default_rng(0)
    for position in range(len(blob)):
        damaged = bytearray(blob)
        damaged[position] ^= int(rng.integers(1, 256))
        try:
            mx.nd.load_frombuffer(damaged)
        except MXNetError as err:
            assert "NDArray buffer" in str(err)
