"""MXNet's pickled optimizer states, read and written.

An Updater's states (and, in a Trainer's states file, the optimizer itself) are a
Python pickle in which arrays are ``mxnet.ndarray.ndarray.NDArray`` objects whose
state is ``{'handle': bytearray}``, the array in MXNet's raw NDArray format, and
optimizers and schedulers are MXNet's classes by module path. This module writes
symgrad's arrays, optimizers and schedulers under those paths, and maps them back
when reading, so that files pass between symgrad and real MXNet 1.x both ways.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import numpy as np

from .. import lr_scheduler
from ..base import MXNetError
from ..ndarray import NDArray

# MXNet's raw NDArray record (NDArray::Save): magic, storage type, shape (ndim then
# int64 sizes), context (device type, id), type flag, then the C-order data.
_MAGIC_V2 = 0xF993FAC9
_MAGIC_V3 = 0xF993FACA  # the same layout, written when numpy shape semantics are on
_DTYPE_FLAGS = {
    0: np.float32,
    1: np.float64,
    2: np.float16,
    3: np.uint8,
    4: np.int32,
    5: np.int8,
    6: np.int64,
    7: np.bool_,
}
_FLAG_OF_DTYPE = {np.dtype(dtype): flag for flag, dtype in _DTYPE_FLAGS.items()}
_CPU = (1, 0)

_NDARRAY_PATH = ("mxnet.ndarray.ndarray", "NDArray")


def array_to_raw(array: np.ndarray) -> bytes:
    """One dense array in MXNet's raw NDArray format (what MXNet pickles)."""
    array = np.ascontiguousarray(array)
    flag = _FLAG_OF_DTYPE.get(array.dtype)
    if flag is None:
        raise MXNetError(f"MXNet has no dtype {array.dtype}")
    head = struct.pack("<IiI", _MAGIC_V2, 0, array.ndim)
    head += struct.pack(f"<{array.ndim}q", *array.shape)
    head += struct.pack("<iii", *_CPU, flag)
    return head + array.tobytes()


def raw_to_array(raw: bytes) -> np.ndarray:
    """The array held in MXNet's raw NDArray format."""
    magic, stype, ndim = struct.unpack_from("<IiI", raw, 0)
    if magic not in (_MAGIC_V2, _MAGIC_V3):
        raise MXNetError(f"not an MXNet NDArray record (magic {magic:#x})")
    if stype != 0:
        raise MXNetError("sparse arrays in optimizer states are not supported")
    offset = 12
    shape = struct.unpack_from(f"<{ndim}q", raw, offset)
    offset += 8 * ndim
    _device, _device_id, flag = struct.unpack_from("<iii", raw, offset)
    offset += 12
    dtype = np.dtype(_DTYPE_FLAGS[flag])
    count = int(np.prod(shape, dtype=np.int64))
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return data.reshape(shape).copy()


class _PickledNDArray:
    """Stands for MXNet's NDArray class in a pickle: made from ``(None,)``, given
    ``{'handle': raw bytes}`` as its state."""

    def __init__(self, handle: Any = None):
        self.array: NDArray | None = None

    def __setstate__(self, state: dict) -> None:
        self.array = NDArray(raw_to_array(bytes(state["handle"])))


def _mxnet_paths() -> dict[type, tuple[str, str]]:
    """symgrad's picklable classes and the MXNet paths they are written under."""
    from .optimizer import Optimizer

    paths: dict[type, tuple[str, str]] = {_PickledNDArray: _NDARRAY_PATH}
    for klass in set(Optimizer.opt_registry.values()):
        if klass.__module__.startswith("symgrad."):
            paths[klass] = ("mxnet.optimizer.optimizer", klass.__name__)
    for name in lr_scheduler.__all__:
        paths[getattr(lr_scheduler, name)] = ("mxnet.lr_scheduler", name)
    return paths


class _MXNetPickler(pickle._Pickler):  # the Python pickler: save_global can be replaced
    """Writes symgrad's arrays, optimizers and schedulers as MXNet's."""

    def __init__(self, file: io.BytesIO):
        super().__init__(file, protocol=4)
        self._paths = _mxnet_paths()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, NDArray):
            return (_PickledNDArray, (None,), {"handle": bytearray(array_to_raw(obj._data))})
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        path = self._paths.get(obj) if isinstance(obj, type) else None
        if path is None:
            super().save_global(obj, name)
            return
        # protocol 4's global: module and name pushed, then STACK_GLOBAL
        self.save(path[0])
        self.save(path[1])
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


class _MXNetUnpickler(pickle.Unpickler):
    """Reads MXNet's arrays, optimizers and schedulers as symgrad's."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _NDARRAY_PATH:
            return _PickledNDArray
        if module.startswith("mxnet.optimizer"):
            from .optimizer import Optimizer

            klass = Optimizer.opt_registry.get(name.lower())
            if klass is None:
                raise MXNetError(f"optimizer {name} of a states file is not available")
            return klass
        if module == "mxnet.lr_scheduler" and name in lr_scheduler.__all__:
            return getattr(lr_scheduler, name)
        return super().find_class(module, name)


def _with_arrays(value: Any, seen: dict[int, Any]) -> Any:
    """``value`` with every stand-in replaced by its NDArray (containers rebuilt,
    objects' attributes replaced in place)."""
    if isinstance(value, _PickledNDArray):
        return value.array
    key = id(value)
    if key in seen:
        return seen[key]
    if isinstance(value, dict):
        seen[key] = value
        for k in list(value):
            value[k] = _with_arrays(value[k], seen)
        return value
    if isinstance(value, (tuple, list)):
        rebuilt = type(value)(_with_arrays(v, seen) for v in value)
        seen[key] = rebuilt
        return rebuilt
    if hasattr(value, "__dict__") and type(value).__module__.startswith("symgrad."):
        seen[key] = value
        _with_arrays(value.__dict__, seen)
    return value


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as MXNet would pickle the same states and objects."""
    buffer = io.BytesIO()
    _MXNetPickler(buffer).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """Unpickle states written by MXNet (or by :func:`dumps`)."""
    return _with_arrays(_MXNetUnpickler(io.BytesIO(data)).load(), {})
