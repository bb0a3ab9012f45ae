"""``KVStore``: MXNet 1.x's key-value store for one process (``local``, ``device``).

Keys are ints or strings (one kind per call, as MXNet asserts); a key's value is
an NDArray set once by ``init``. ``push`` sums the values given for a key (the
several devices of MXNet's ``local``/``device`` aggregation), then either hands
the sum to the updater, ``updater(key, merged, stored)``, or, with none set,
makes the sum the stored value. ``pull`` copies the stored value into every
output given. The distributed stores (:mod:`.dist`) subclass this one and
replace only the storage hooks (``_store_init``, ``_push_values``,
``_pull_values`` and the key table).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import optimizer as opt
from ..base import MXNetError
from ..ndarray import NDArray
from .compression import TwoBitCompression, from_params

__all__ = ["KVStore"]

Key = int | str


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_key_types(keys: list) -> None:
    if not keys:
        return
    is_str = isinstance(keys[0], str)
    for key in keys:
        if isinstance(key, str) != is_str or not isinstance(key, (int, str, np.integer)):
            raise AssertionError("inconsistent types of keys detected.")


def _grouped(key: Any, value: Any) -> list[tuple[Key, list[NDArray]]]:
    """``(key, [values])`` pairs from MXNet's argument forms: one key with one
    value or a list of values, or a list of keys with one entry (a value or a
    list) each; a key named twice gets the values of both entries."""
    if isinstance(key, (list, tuple)):
        values = _as_list(value)
        if len(values) != len(key):
            raise MXNetError(f"{len(key)} keys but {len(values)} values")
        pairs = [(k, _as_list(v)) for k, v in zip(key, values)]
    else:
        pairs = [(key, _as_list(value))]
    _check_key_types([k for k, _ in pairs])
    merged: dict[Key, list] = {}
    for k, vals in pairs:
        k = int(k) if isinstance(k, np.integer) else k
        for val in vals:
            if not isinstance(val, NDArray):
                raise TypeError(f"value of key {k!r} must be an NDArray, got {type(val)}")
        merged.setdefault(k, []).extend(vals)
    return list(merged.items())


class KVStore:
    """A key-value store of NDArrays, MXNet 1.x's ``KVStore``.

    Made by :func:`symgrad.kvstore.create`. In a ``local`` or ``device`` store
    everything lives in this process: ``rank`` is 0 and ``num_workers`` 1.

    Examples
    --------
    >>> import symgrad as mx
    >>> kv = mx.kv.create('local')
    >>> kv.init(3, mx.nd.ones((2, 3)))
    >>> kv.push(3, [mx.nd.ones((2, 3)) * 2, mx.nd.ones((2, 3)) * 3])
    >>> out = mx.nd.zeros((2, 3))
    >>> kv.pull(3, out=out)
    >>> out.asnumpy()[0].tolist()
    [5.0, 5.0, 5.0]
    """

    def __init__(self, name: str = "local"):
        self._type = name
        self._store: dict[Key, NDArray] = {}
        self._updater: Callable | None = None
        self._compression: TwoBitCompression | None = None

    # -- who we are -------------------------------------------------------------
    @property
    def type(self) -> str:
        """The store's type string (``'local'``, ``'dist_sync'``, ...)."""
        return self._type

    @property
    def rank(self) -> int:
        """This worker's rank, 0 to ``num_workers - 1``."""
        return 0

    @property
    def num_workers(self) -> int:
        """How many workers share the store."""
        return 1

    OPTIMIZER = "optimizer"

    @staticmethod
    def is_capable(capability: str) -> bool:
        """Whether the store can do ``capability`` (``'optimizer'``: apply an
        optimizer to its values)."""
        if capability.lower() != KVStore.OPTIMIZER:
            raise MXNetError(f"Unknown capability: {capability}")
        return True

    # -- the API ------------------------------------------------------------------
    def init(self, key: Any, value: Any) -> None:
        """Give each key its first value (once: a second init of a key raises)."""
        for k, values in _grouped(key, value):
            if k in self._known_keys():
                raise MXNetError(
                    f"duplicate init of key {k}. Please double check if you "
                    "called kv.init or kv.broadcast with this key multiple times"
                )
            self._store_init(k, values[0].asnumpy())

    def push(self, key: Any, value: Any, priority: int = 0) -> None:
        """Push values: those of one key are summed (compressed first when gradient
        compression is set), then applied by the updater or stored.

        ``priority`` is accepted (MXNet orders its engine's work by it; here every
        call completes in order)."""
        merged = []
        for k, values in _grouped(key, value):
            shape, dtype = self._shape_dtype(k, "push")
            arrays = []
            for val in values:
                if val.shape != shape:
                    raise MXNetError(
                        f"push of key {k!r}: value of shape {val.shape} does not "
                        f"match the shape {shape} it was initialised with"
                    )
                if np.dtype(val.dtype) != dtype:
                    raise MXNetError(
                        f"push of key {k!r}: value of dtype "
                        f"{np.dtype(val.dtype).name} does not match the dtype "
                        f"{dtype.name} it was initialised with"
                    )
                # no copy here: _merge makes the one copy a push needs
                arrays.append(val.handle)
            merged.append((k, self._merge(k, arrays)))
        self._push_values(merged)

    def pull(
        self, key: Any, out: Any = None, priority: int = 0, ignore_sparse: bool = True
    ) -> None:
        """Copy each key's value into its output array(s)."""
        if out is None:
            raise AssertionError("out must be given to pull")
        groups = _grouped(key, out)
        for k, outs in groups:
            shape, _ = self._shape_dtype(k, "pull")
            for target in outs:
                if target.shape != shape:
                    raise MXNetError(
                        f"pull of key {k!r}: output of shape {target.shape} does "
                        f"not match the value's shape {shape}"
                    )
        for (_, outs), value in zip(groups, self._pull_values([k for k, _ in groups])):
            for target in outs:
                target[:] = value

    def pushpull(self, key: Any, value: Any, out: Any = None, priority: int = 0) -> None:
        """``push`` then ``pull`` (into ``value`` itself when ``out`` is None)."""
        self.push(key, value, priority)
        self.pull(key, value if out is None else out, priority)

    def broadcast(self, key: Any, value: Any, out: Any, priority: int = 0) -> None:
        """``init`` the keys with ``value``, then ``pull`` them into ``out``."""
        self.init(key, value)
        self.pull(key, out, priority)

    def row_sparse_pull(
        self, key: Any, out: Any = None, priority: int = 0, row_ids: Any = None
    ) -> None:
        """Pull only the rows ``row_ids`` of each value; the other rows of ``out``
        are zero. symgrad's arrays are all dense, so ``out`` is the dense form of
        MXNet's row-sparse result."""
        if out is None or row_ids is None:
            raise AssertionError("row_sparse_pull needs out and row_ids")
        targets = [(k, target) for k, outs in _grouped(key, out) for target in outs]
        ids = _as_list(row_ids)
        if len(ids) == 1:
            ids = ids * len(targets)
        if len(ids) != len(targets):
            raise MXNetError(f"{len(targets)} outputs but {len(ids)} row_ids")
        for (k, target), rows in zip(targets, ids):
            self._shape_dtype(k, "row_sparse_pull")
            value = self._store_pull(k)
            rows = rows.asnumpy() if isinstance(rows, NDArray) else np.asarray(rows)
            rows = np.unique(rows.astype(np.int64).reshape(-1))
            dense = np.zeros_like(value)
            dense[rows] = value[rows]
            target[:] = dense

    def set_gradient_compression(self, compression_params: dict) -> None:
        """Compress pushed gradients: ``{'type': '2bit', 'threshold': t}`` (MXNet's
        2-bit quantisation with error feedback); ``device`` and ``dist`` stores
        only, as MXNet."""
        if "device" not in self._type and "dist" not in self._type:
            raise Exception("Gradient compression is not supported for this type of kvstore")
        self._compression = from_params(compression_params)

    def set_optimizer(self, optimizer: opt.Optimizer) -> None:
        """Apply ``optimizer`` to every push (``update_on_kvstore``): the stored
        values become the weights and pushes their gradients."""
        self._set_updater(opt.get_updater(optimizer))

    def _set_updater(self, updater: Callable) -> None:
        """Call ``updater(key, merged_push, stored)`` on every push."""
        self._updater = updater

    def barrier(self) -> None:
        """Wait until every worker reaches this call (one worker: at once)."""

    @property
    def lost(self) -> bool:
        """Whether the store lost values it held (a distributed store's server
        whose process died) and needs :meth:`resume`; never, in one process."""
        return False

    def resume(self) -> None:
        """Start afresh after ``lost``: a distributed store starts new servers,
        whose keys are then given their values again by ``init``. Nothing to do
        in one process."""

    def save_optimizer_states(self, fname: str, dump_optimizer: bool = False) -> None:
        """Write the updater's states (with the optimizer if asked) as MXNet pickles
        them."""
        if self._updater is None:
            raise AssertionError("Cannot save states for distributed training")
        with open(fname, "wb") as file:
            file.write(self._get_states(dump_optimizer))

    def load_optimizer_states(self, fname: str) -> None:
        """Read states written by ``save_optimizer_states`` (here or by MXNet)."""
        if self._updater is None:
            raise AssertionError("Cannot load states for distributed training")
        with open(fname, "rb") as file:
            self._set_states(file.read())

    # -- aggregation -------------------------------------------------------------
    def _merge(self, key: Key, arrays: list[np.ndarray]) -> np.ndarray:
        """The sum of one key's pushed values; with compression each source is
        quantised with its own residual first (MXNet's device reduction)."""
        if self._compression is not None:
            arrays = [self._compression.quantize(key, i, a) for i, a in enumerate(arrays)]
        merged = arrays[0].copy()
        for array in arrays[1:]:
            merged += array
        return merged

    # -- storage hooks (one process) -------------------------------------------------
    def _known_keys(self) -> Any:
        return self._store

    def _shape_dtype(self, key: Key, verb: str) -> tuple[tuple, np.dtype]:
        stored = self._store.get(key)
        if stored is None:
            raise MXNetError(f"{verb}: key {key!r} has not been inited")
        return stored.shape, np.dtype(stored.dtype)

    def _store_init(self, key: Key, value: np.ndarray) -> None:
        self._store[key] = NDArray(value.copy())

    def _store_push(self, key: Key, merged: np.ndarray) -> None:
        stored = self._store[key]
        if self._updater is not None:
            self._updater(key, NDArray(merged), stored)
        else:
            stored[:] = merged

    def _push_values(self, merged: list[tuple[Key, np.ndarray]]) -> None:
        """Apply the merged pushes of several keys (a distributed store sends
        them in one message per server)."""
        for k, value in merged:
            self._store_push(k, value)

    def _store_pull(self, key: Key) -> np.ndarray:
        return self._store[key].asnumpy()

    def _pull_values(self, keys: list[Key]) -> list[np.ndarray]:
        """The values of several keys (a distributed store asks for all at once)."""
        return [self._store_pull(k) for k in keys]

    def _get_states(self, dump_optimizer: bool) -> bytes:
        updater = self._updater
        if isinstance(updater, opt.Updater):
            return updater.get_states(dump_optimizer)
        return pickle.dumps(getattr(updater, "states", {}))

    def _set_states(self, states: bytes) -> None:
        self._updater.set_states(states)
