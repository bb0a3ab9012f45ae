"""``mx.kv``: MXNet 1.x's KVStore, in one process or on a Dask cluster.

``create('local')`` and ``create('device')`` keep the values in this process;
``create('dist_sync')``, ``'dist_device_sync'`` and ``'dist_async'`` keep them on
parameter-server actors of a Dask cluster shared by the worker processes that
``python -m symgrad.launch`` starts (see docs/distributed.md).

>>> import symgrad as mx
>>> kv = mx.kv.create('device')
>>> kv.type, kv.rank, kv.num_workers
('device', 0, 1)
"""

from __future__ import annotations

from .kvstore import KVStore

__all__ = ["KVStore", "create"]

_TYPES = (
    "local",
    "device",
    "local_update_cpu",
    "local_allreduce_cpu",
    "local_allreduce_device",
    "nccl",
    "dist_sync",
    "dist_device_sync",
    "dist_async",
    "dist_sync_device",
    "dist_async_device",
    "dist",
)


def create(name: str = "local") -> KVStore:
    """A new KVStore of type ``name``.

    ``local`` (and MXNet's other single-machine names) and ``device`` live in
    this process; names with ``dist`` are distributed: ``dist_sync`` and
    ``dist_device_sync`` apply a step when every worker has pushed it,
    ``dist_async`` applies each push when it arrives.
    """
    if not isinstance(name, str):
        raise TypeError("name must be a string")
    if name not in _TYPES:
        raise ValueError(f"Unknown KVStore type {name}")
    if "dist" in name:
        from .dist import DistKVStore

        return DistKVStore(name)
    return KVStore(name)
