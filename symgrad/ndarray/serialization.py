"""MXNet 1.x's binary NDArray file format: ``nd.save``, ``nd.load``, ``nd.load_frombuffer``.

The files are those of MXNet's ``mx.nd.save`` (and of Gluon's ``save_parameters``
and ``export``, which write through it). Every number is little-endian::

    file    := uint64 0x112 (list magic), uint64 0 (reserved),
               uint64 count, array * count,
               uint64 name_count, name * name_count      (0 names: a list)
    name    := uint64 length, utf-8 bytes
    array   := uint32 magic, then by magic:
      V2 0xF993FAC9 (MXNet 1.x's default shape semantics) and
      V3 0xF993FACA (its numpy shape semantics, ``npx.set_np()``):
               int32 storage type (0 dense, 1 row_sparse, 2 csr),
               [sparse only: storage shape], shape, context, int32 type flag,
               [sparse only: aux types and shapes], raw data in C order
      V1 0xF993FAC8 (before sparse storage): shape, context, type flag, data
      anything else (the oldest files, no magic): the magic *is* ndim, then
               uint32 dims, context, type flag, data
    shape   := int32 ndim, int64 dims (V1: uint32 ndim, int64 dims)
    context := int32 device type (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared), int32 id

How MXNet 1.9.1 writes the corner cases, learnt from its files:

- An empty array (a 0 among its dims) is an ordinary V2 array with no data bytes.
- Its default (legacy) shape semantics has no 0-d arrays: ndim 0 means "shape
  unknown", and its reader stops after the shape. It still writes a 0-d array with
  V2 as ndim 0 followed by context and data, a file that it then cannot read
  back. Under numpy shape semantics it writes the same bytes with V3, which it reads
  (only with numpy semantics on). So ``save`` writes V3 for every array of a file
  that holds a 0-d array, which MXNet loads under ``mx.util.np_shape(True)``, and V2
  otherwise; ``load`` reads ndim 0 after V2 or V3 as a 0-d array with its data.
- Arrays saved on a GPU load onto the CPU, as in MXNet builds without CUDA.

Sparse arrays (row_sparse, csr) and type flags other than those of float16/32/64,
uint8, int8/32/64 and bool are refused with an ``MXNetError``, as is any file that
is truncated or not in this format; the message names the file and the fault.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from ..base import MXNetError
from .ndarray import NDArray

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA

# MXNet's (mshadow's) type flags.
_DTYPE_OF_FLAG: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}
_FLAG_OF_DTYPE: dict[np.dtype, int] = {dtype: flag for flag, dtype in _DTYPE_OF_FLAG.items()}
# Flags MXNet knows that have no numpy dtype here, named in the error.
_UNSUPPORTED_FLAGS = {8: "int16", 9: "uint16", 10: "uint32", 11: "uint64", 12: "bfloat16"}
_STORAGE_TYPES = {0: "default", 1: "row_sparse", 2: "csr"}
_DEVICE_TYPES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
_CPU_CONTEXT = (1, 0)
_MAX_NDIM = 32  # MXNet's arrays have at most 32 axes

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")


# -- writing -------------------------------------------------------------------------------


def _arrays_and_names(data: Any) -> tuple[list[NDArray], list[str]]:
    """Check ``data`` as MXNet's ``save`` does and split it into arrays and names."""
    if isinstance(data, NDArray):
        return [data], []
    if isinstance(data, dict):
        if any(not isinstance(key, str) for key in data) or any(
            not isinstance(value, NDArray) for value in data.values()
        ):
            raise TypeError("save only accept dict str->NDArray or list of NDArray")
        return list(data.values()), list(data.keys())
    if isinstance(data, list):
        if any(not isinstance(value, NDArray) for value in data):
            raise TypeError("save only accept dict str->NDArray or list of NDArray")
        return list(data), []
    raise ValueError(
        "data needs to either be a NDArray, dict of str, NDArray pairs or a list of NDarrays."
    )


def _array_chunks(array: NDArray, magic: int) -> list[bytes | np.ndarray]:
    if array.stype != "default":
        raise MXNetError(
            f"cannot save an array of storage type {array.stype}: symgrad writes dense arrays only"
        )
    values = array._data
    flag = _FLAG_OF_DTYPE.get(values.dtype.newbyteorder("<"))
    if flag is None:
        raise MXNetError(
            f"cannot save an array of dtype {values.dtype}: MXNet's NDArray "
            f"files hold float16/32/64, uint8, int8/32/64 and bool"
        )
    header = struct.pack(
        f"<Iii{values.ndim}qiii", magic, 0, values.ndim, *values.shape, *_CPU_CONTEXT, flag
    )
    # The data as raw bytes through the buffer protocol: no copy for a C-contiguous
    # little-endian array, which is what arrays almost always are.
    data = np.ascontiguousarray(values, dtype=_DTYPE_OF_FLAG[flag]).reshape(-1).view(np.uint8)
    return [header, data]


def _file_chunks(data: Any) -> list[bytes | np.ndarray]:
    """The pieces of the file holding ``data``, in order."""
    arrays, names = _arrays_and_names(data)
    # A 0-d array exists only under MXNet's numpy shape semantics (see the module
    # docstring); MXNet refuses to mix V2 and V3 arrays under either semantics.
    magic = V3_MAGIC if any(array.ndim == 0 for array in arrays) else V2_MAGIC
    chunks: list[bytes | np.ndarray] = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for array in arrays:
        chunks += _array_chunks(array, magic)
    chunks.append(_U64.pack(len(names)))
    for name in names:
        encoded = name.encode("utf-8")
        chunks += [_U64.pack(len(encoded)), encoded]
    return chunks


def dumps(data: Any) -> bytes:
    """The bytes of an MXNet 1.x NDArray file holding ``data``.

    ``data`` is an NDArray, a list of NDArrays or a dict from str to NDArray, as
    for :func:`save` (MXNet 1.x has no such function; this one serves tests and
    in-memory copies, and :func:`load_frombuffer` reads what it returns).

    >>> import symgrad as mx
    >>> blob = dumps({"w": mx.nd.ones((2,))})
    >>> load_frombuffer(blob)["w"].asnumpy()
    array([1., 1.], dtype=float32)
    """
    return b"".join(_file_chunks(data))


def save(fname: str | os.PathLike, data: Any) -> None:
    """Write ``data`` to the file ``fname`` in MXNet 1.x's binary NDArray format.

    Parameters
    ----------
    fname : str or os.PathLike
        The file to write (replaced if it exists).
    data : NDArray, list of NDArray or dict of str to NDArray
        A single array is saved as a list of one. Real MXNet 1.9.1's ``mx.nd.load``
        reads the file; a file holding a 0-d array is written in MXNet's numpy shape
        semantics, which it reads under ``mx.util.np_shape(True)``.

    Raises
    ------
    TypeError
        A list with something other than NDArrays, or a dict with other keys or values.
    ValueError
        ``data`` is none of the three forms.
    MXNetError
        An array of a dtype the format has no flag for, or the file cannot be written.
    """
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname required to be a string")
    chunks = _file_chunks(data)  # refuses bad data before the file is touched
    try:
        with open(fname, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
    except OSError as err:
        raise MXNetError(f"cannot save NDArray file '{os.fspath(fname)}': {err}") from err


# -- reading -------------------------------------------------------------------------------


class _Reader:
    """A cursor over the bytes of one NDArray file that names the file, the part
    being read and what is wrong in every error it raises."""

    def __init__(self, blob: bytes | bytearray | memoryview, source: str):
        self.blob = memoryview(blob).cast("B")
        self.source = source
        self.offset = 0
        self.part = "the file header"

    def fail(self, problem: str) -> MXNetError:
        return MXNetError(f"cannot load {self.source}: {problem} ({self.part})")

    def take(self, count: int, what: str) -> memoryview:
        left = len(self.blob) - self.offset
        if count > left:
            raise self.fail(
                f"truncated: {what} needs {count} bytes at offset {self.offset}, only {left} left"
            )
        start = self.offset
        self.offset += count
        return self.blob[start : self.offset]

    def unpack(self, layout: struct.Struct, what: str) -> int:
        return layout.unpack(self.take(layout.size, what))[0]

    def left(self) -> int:
        return len(self.blob) - self.offset


def _read_shape(reader: _Reader, ndim: int, dim_format: str) -> tuple[int, ...]:
    if ndim > _MAX_NDIM:
        # a larger count is damage, not data
        raise reader.fail(f"bad shape: {ndim} dimensions")
    size = struct.calcsize(f"<{dim_format}")
    dims = struct.unpack(f"<{ndim}{dim_format}", reader.take(ndim * size, "the shape"))
    if any(dim < 0 for dim in dims):
        raise reader.fail(f"unknown shape {dims} (negative dimensions)")
    return dims


def _read_dense(reader: _Reader, shape: tuple[int, ...]) -> np.ndarray:
    """Context, type flag and data of an array of ``shape``."""
    device_type = reader.unpack(_I32, "the context")
    reader.unpack(_I32, "the context")
    if device_type not in _DEVICE_TYPES:
        raise reader.fail(f"bad context: unknown device type {device_type}")
    flag = reader.unpack(_I32, "the type flag")
    dtype = _DTYPE_OF_FLAG.get(flag)
    if dtype is None:
        known = (
            f" ({_UNSUPPORTED_FLAGS[flag]}, not supported)" if flag in _UNSUPPORTED_FLAGS else ""
        )
        raise reader.fail(f"unknown dtype flag {flag}{known}")
    count = int(np.prod(shape, dtype=object))
    raw = reader.take(count * dtype.itemsize, f"the data ({count} {dtype.name})")
    # A copy: the arrays own writable buffers and do not keep the file's bytes alive.
    return (
        np.frombuffer(raw, dtype=dtype, count=count)
        .reshape(shape)
        .astype(dtype.newbyteorder("="), copy=True)
    )


def _read_array(reader: _Reader) -> np.ndarray:
    magic = reader.unpack(_U32, "the array's magic number")
    if magic in (V2_MAGIC, V3_MAGIC):
        storage = reader.unpack(_I32, "the storage type")
        if storage != 0:
            name = _STORAGE_TYPES.get(storage, f"unknown storage type {storage}")
            raise reader.fail(f"sparse storage not supported: {name}")
        ndim = reader.unpack(_I32, "the shape")
        if ndim < 0:
            raise reader.fail("an array of unknown shape (ndim -1) has no data to load")
        # ndim 0 is a 0-d array: MXNet writes its context and data after it (see above).
        return _read_dense(reader, _read_shape(reader, ndim, "q"))
    if magic == V1_MAGIC:
        shape = _read_shape(reader, reader.unpack(_U32, "the shape"), "q")
    elif magic <= _MAX_NDIM:
        # The oldest files have no magic: the word just read is ndim, and dims are uint32.
        shape = _read_shape(reader, magic, "I")
    else:
        raise reader.fail(f"bad array magic 0x{magic:08X}, not an NDArray of any version")
    if not shape:
        # Before V2, ndim 0 marks an array that was never given a shape: nothing follows.
        return np.zeros((0,), dtype=np.float32)
    return _read_dense(reader, shape)


def _read_file(reader: _Reader) -> list[NDArray] | dict[str, NDArray]:
    if reader.left() == 0:
        raise reader.fail("empty file, not an NDArray file")
    head = bytes(reader.blob[:8])
    if head != _U64.pack(LIST_MAGIC)[: len(head)]:
        raise reader.fail("bad magic, not an NDArray file (MXNet's files start with 0x112)")
    reader.unpack(_U64, "the list magic")
    reader.unpack(_U64, "the reserved word")
    count = reader.unpack(_U64, "the array count")
    if count > reader.left() // 4:
        raise reader.fail(
            f"truncated, or a bad array count: {count} arrays cannot fit "
            f"in the {reader.left()} bytes left"
        )
    arrays = []
    for index in range(count):
        reader.part = f"array {index} of {count}"
        arrays.append(NDArray(_read_array(reader)))
    reader.part = "the names"
    name_count = reader.unpack(_U64, "the name count")
    if name_count == 0:
        return arrays
    if name_count != count:
        raise reader.fail(f"{name_count} names for {count} arrays")
    names = []
    for index in range(name_count):
        reader.part = f"name {index} of {name_count}"
        length = reader.unpack(_U64, "the name's length")
        try:
            names.append(str(reader.take(length, "the name"), "utf-8"))
        except UnicodeDecodeError as err:
            raise reader.fail(f"a name that is not utf-8: {err}") from err
    return dict(zip(names, arrays))


def load(fname: str | os.PathLike) -> list[NDArray] | dict[str, NDArray]:
    """The arrays of an MXNet NDArray file, as MXNet's ``mx.nd.load`` returns them.

    Reads every version MXNet 1.x writes or reads (V2, V3, V1 and the oldest,
    magic-less arrays), including Gluon's ``save_parameters`` and ``export`` files
    (whose keys are the parameters' names, and ``arg:``/``aux:`` names for export).

    Parameters
    ----------
    fname : str or os.PathLike
        The file to read.

    Returns
    -------
    list of NDArray or dict of str to NDArray
        A dict when the file has names (a dict was saved), else a list. Arrays
        saved on any device are loaded on ``cpu(0)``.

    Raises
    ------
    MXNetError
        The file cannot be read, is empty, truncated or not an NDArray file, or holds
        sparse arrays or a dtype without a numpy equivalent; the message names the
        file, the array and the fault.
    """
    if not isinstance(fname, (str, os.PathLike)):
        raise TypeError("fname required to be a string")
    try:
        with open(fname, "rb") as file:
            blob = file.read()
    except OSError as err:
        raise MXNetError(f"cannot load NDArray file '{os.fspath(fname)}': {err}") from err
    return _read_file(_Reader(blob, f"NDArray file '{os.fspath(fname)}'"))


def load_frombuffer(buf: bytes | bytearray | memoryview) -> list[NDArray] | dict[str, NDArray]:
    """The arrays of an MXNet NDArray file held in memory (``buf``), as :func:`load`.

    Raises
    ------
    TypeError
        ``buf`` is not bytes-like.
    MXNetError
        As for :func:`load`.
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError("buf required to be a string or bytes")
    return _read_file(_Reader(buf, "NDArray buffer"))


__all__ = ["save", "load", "load_frombuffer", "dumps"]
