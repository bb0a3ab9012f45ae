"""The distributed KVStore's settings, read from the environment once per store.

=================================  ==========================================
``SYMGRAD_KVSTORE_RANK``           this worker's rank (set by the launcher)
``SYMGRAD_KVSTORE_NUM_WORKERS``    how many workers (``DMLC_NUM_WORKER`` too)
``SYMGRAD_KVSTORE_JOB``            a name shared by the workers of one run
``SYMGRAD_KVSTORE_NUM_SERVERS``    server shards (default: the Dask workers)
``SYMGRAD_KVSTORE_TIMEOUT``        seconds any wait may take (default 120)
``DASK_SCHEDULER_ADDRESS``         the Dask scheduler (none: a private cluster)
``MXNET_KVSTORE_BIGARRAY_BOUND``   elements above which a value is split
                                   across all servers (default 1000000)
=================================  ==========================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Settings", "read"]


@dataclass(frozen=True)
class Settings:
    """What a distributed store needs to know about its run."""

    rank: int
    num_workers: int
    job: str
    num_servers: int | None
    timeout: float
    scheduler: str | None
    bigarray_bound: int


def read() -> Settings:
    """The settings in force now (see the module's table)."""
    env = os.environ
    workers = env.get("SYMGRAD_KVSTORE_NUM_WORKERS") or env.get("DMLC_NUM_WORKER") or "1"
    servers = env.get("SYMGRAD_KVSTORE_NUM_SERVERS")
    return Settings(
        rank=int(env.get("SYMGRAD_KVSTORE_RANK", "0")),
        num_workers=int(workers),
        job=env.get("SYMGRAD_KVSTORE_JOB", "symgrad"),
        num_servers=int(servers) if servers else None,
        timeout=float(env.get("SYMGRAD_KVSTORE_TIMEOUT", "120")),
        scheduler=env.get("DASK_SCHEDULER_ADDRESS") or None,
        bigarray_bound=int(env.get("MXNET_KVSTORE_BIGARRAY_BOUND", "1000000")),
    )
