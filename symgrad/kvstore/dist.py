"""The distributed stores, ``dist_sync``, ``dist_device_sync`` and ``dist_async``,
on Dask distributed.

Every worker process is a Dask client. Rank 0 starts one :class:`.server.KVServer`
actor per Dask worker and publishes their futures under the run's name; the
other ranks wait for them. A key lives on one server, chosen from the key as
MXNet does (``key * 9973 % servers``), unless its value has more elements than
``MXNET_KVSTORE_BIGARRAY_BOUND``: then it is cut into one contiguous slice per
server. Pushes go straight to the servers' actors (numpy arrays travel as
out-of-band buffers, pickle protocol 5 style, not copied into the message);
a pull names how many of this worker's pushes it must see applied.

No wait is unbounded: a pull or barrier waits in slices of at most a second,
and between slices asks the scheduler which workers' clients are still
connected, so a worker whose process died is named in an ``MXNetError``
within about a second, and any wait ends with an error after
``SYMGRAD_KVSTORE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import time
import zlib
from typing import Any

import numpy as np

from .. import optimizer as opt
from ..base import MXNetError
from ..ndarray import NDArray
from . import config
from .compression import pack
from .kvstore import Key, KVStore
from .server import KVServer

__all__ = ["DistKVStore"]

# distinct names for the stores one process makes, equal across ranks (every
# rank makes its stores in the same order)
_made = itertools.count()
_GRACE = 30.0  # seconds an answer may take on top of the wait it was asked for


class DistKVStore(KVStore):
    """A KVStore whose values live on Dask actors shared by ``num_workers``
    worker processes (see the module's description)."""

    def __init__(self, name: str, settings: config.Settings | None = None):
        super().__init__(name)
        from distributed import Client, LocalCluster

        self._settings = settings = settings or config.read()
        if not 0 <= settings.rank < settings.num_workers:
            raise MXNetError(
                f"rank {settings.rank} is not below the number of workers {settings.num_workers}"
            )
        self._sync = "async" not in name
        self._name = f"symgrad-kvstore-{settings.job}-{next(_made)}"
        self._cluster = None
        address = settings.scheduler
        if address is None:
            if settings.num_workers != 1:
                raise MXNetError(
                    f"{name} with {settings.num_workers} workers needs a Dask "
                    "scheduler: set DASK_SCHEDULER_ADDRESS, or start the "
                    "workers with python -m symgrad.launch"
                )
            # one worker and no cluster: a private one, in this process
            self._cluster = LocalCluster(
                n_workers=settings.num_servers or 1,
                threads_per_worker=1,
                processes=False,
                dashboard_address=None,
            )
            address = self._cluster.scheduler_address
        # direct_to_workers: actor calls go to the servers, not through the scheduler
        self._client = Client(
            address, set_as_default=False, timeout=settings.timeout, direct_to_workers=True
        )
        self._keys: dict[Key, tuple[tuple, np.dtype, list]] = {}
        self._pushes: dict[Key, int] = {}
        self._inflight: list = []
        self._generation = 0
        self._optimizer: opt.Optimizer | None = None
        self.stats = {"bytes_pushed": 0, "bytes_pulled": 0, "calls": 0}
        self._client.set_metadata([self._name, "ranks", str(self.rank)], self._client.id)
        self._servers = self._start_servers()
        self.barrier()

    # -- who we are -------------------------------------------------------------
    @property
    def rank(self) -> int:
        """This worker's rank (``SYMGRAD_KVSTORE_RANK``, set by the launcher)."""
        return self._settings.rank

    @property
    def num_workers(self) -> int:
        """How many workers share the store (``SYMGRAD_KVSTORE_NUM_WORKERS``)."""
        return self._settings.num_workers

    @property
    def num_servers(self) -> int:
        """How many server shards hold the values."""
        return len(self._servers)

    # -- servers --------------------------------------------------------------------
    def _start_servers(self) -> list:
        client, settings = self._client, self._settings
        deadline = time.monotonic() + settings.timeout
        if self.rank == 0:
            client.wait_for_workers(1, timeout=settings.timeout)
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
            count = settings.num_servers or len(workers)
            futures = [
                client.submit(
                    KVServer,
                    self.num_workers,
                    self._sync,
                    actor=True,
                    workers=[workers[i % len(workers)]],
                    pure=False,
                    key=f"{self._name}-server-{i}",
                )
                for i in range(count)
            ]
            client.publish_dataset(futures, name=self._name)
        else:
            while True:
                futures = client.get_dataset(self._name, default=None)
                if futures is not None:
                    break
                self._check_alive("the servers from rank 0", deadline, [0])
                time.sleep(0.05)
        # an Actor handle binds to the current client when it is made
        with client.as_current():
            return [future.result(timeout=settings.timeout) for future in futures]

    def _check_alive(self, what: str, deadline: float, missing: list[int]) -> None:
        """Raise when a worker's process has gone, or when ``deadline`` passed."""
        ranks = self._client.get_metadata([self._name, "ranks"], default={})
        connected = set(
            self._client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients))
        )
        lost = sorted(int(rank) for rank, client_id in ranks.items() if client_id not in connected)
        if lost:
            raise MXNetError(
                f"KVStore worker rank {lost[0]} was lost (its process left the "
                f"Dask cluster) while rank {self.rank} waited for {what}"
            )
        if time.monotonic() > deadline:
            raise MXNetError(
                f"KVStore rank {self.rank} timed out after "
                f"{self._settings.timeout:g} s waiting for {what}; ranks not "
                f"there yet: {missing}"
            )

    def _result(self, future: Any, wait: float, server: int) -> Any:
        try:
            return future.result(timeout=wait + _GRACE)
        except (OSError, TimeoutError, asyncio.TimeoutError) as err:
            # CommClosedError is an OSError: the server's process is gone
            raise MXNetError(
                f"KVStore server {server} did not answer rank {self.rank}: "
                f"{type(err).__name__}: {err}"
            ) from err
        except (RuntimeError, ValueError, KeyError) as err:
            raise MXNetError(f"KVStore server {server}: {err}") from err

    def _wait(self, call: Any, server: int, what: str) -> Any:
        """Call ``call(wait)`` on a server until it answers ready; between tries,
        check the other workers are alive."""
        deadline = time.monotonic() + self._settings.timeout
        while True:
            wait = min(1.0, max(0.05, deadline - time.monotonic()))
            self.stats["calls"] += 1
            ready, *rest = self._result(call(wait), wait, server)
            if ready:
                return rest
            self._check_alive(what, deadline, rest[-1])

    def _flush(self) -> None:
        """Collect the answers of the pushes sent so far (raising their errors)."""
        inflight, self._inflight = self._inflight, []
        for server, future in inflight:
            self._result(future, self._settings.timeout, server)

    # -- keys and their placement ---------------------------------------------------------
    def _parts(self, key: Key, size: int) -> list[tuple[int, int, int]]:
        """``(server, start, stop)`` slices of the flattened value of ``key``."""
        count = len(self._servers)
        if size <= self._settings.bigarray_bound or count == 1:
            number = key if isinstance(key, int) else zlib.crc32(key.encode())
            return [((number * 9973) % count, 0, size)]
        bounds = np.linspace(0, size, count + 1).astype(np.int64)
        return [(i, int(bounds[i]), int(bounds[i + 1])) for i in range(count)]

    def _known_keys(self) -> Any:
        return self._keys

    def _shape_dtype(self, key: Key, verb: str) -> tuple[tuple, np.dtype]:
        known = self._keys.get(key)
        if known is None:
            raise MXNetError(f"{verb}: key {key!r} has not been inited")
        return known[0], known[1]

    def init(self, key: Any, value: Any) -> None:
        """Give each key its first value: rank 0's values are stored, then every
        worker waits at a barrier (MXNet's semantics)."""
        super().init(key, value)
        self._flush()
        self.barrier()

    def _store_init(self, key: Key, value: np.ndarray) -> None:
        parts = self._parts(key, value.size)
        self._keys[key] = (value.shape, value.dtype, parts)
        self._pushes[key] = 0
        if self.rank == 0:
            flat = value.reshape(-1)
            for server, start, stop in parts:
                self._inflight.append((server, self._servers[server].init(key, flat[start:stop])))

    def _merge(self, key: Key, arrays: list[np.ndarray]) -> np.ndarray:
        # sum this worker's values first, then compress the sum with one residual
        # per key (MXNet's dist stores compress after the local reduction)
        merged = arrays[0].copy()
        for array in arrays[1:]:
            merged += array
        if self._compression is not None:
            merged = self._compression.quantize(key, 0, merged)
        return merged

    def _push_values(self, merged: list[tuple[Key, np.ndarray]]) -> None:
        # one message per server with every slice it holds
        items: dict[int, list] = {}
        for key, value in merged:
            self._pushes[key] += 1
            flat = value.reshape(-1)
            for server, start, stop in self._keys[key][2]:
                piece = flat[start:stop]
                if self._compression is not None:
                    # the quantised values travel as 2-bit codes, as MXNet's do
                    piece = pack(piece, self._compression.threshold)
                    self.stats["bytes_pushed"] += piece[2].nbytes
                else:
                    self.stats["bytes_pushed"] += piece.nbytes
                items.setdefault(server, []).append((key, piece))
        for server, batch in items.items():
            self.stats["calls"] += 1
            self._inflight.append((server, self._servers[server].push(self.rank, batch)))

    def _pull_values(self, keys: list[Key]) -> list[np.ndarray]:
        # one request per server for all its slices, every request sent before any
        # answer is awaited (and before the pushes' acknowledgements are collected)
        wants: dict[int, list] = {}
        for key in keys:
            for server, _, _ in self._keys[key][2]:
                wants.setdefault(server, []).append((key, self._pushes[key]))
        requests = {
            server: self._servers[server].pull(self.rank, want, 1.0)
            for server, want in wants.items()
        }
        self.stats["calls"] += len(requests)
        self._flush()
        slices: dict[tuple[int, Key], np.ndarray] = {}
        for server, future in requests.items():
            ready, values, _missing = self._result(future, 1.0, server)
            if not ready:
                actor, want = self._servers[server], wants[server]
                values, _missing = self._wait(
                    lambda wait, actor=actor, want=want: actor.pull(self.rank, want, wait),
                    server,
                    "keys " + ", ".join(f"{k!r} (push {n})" for k, n in want),
                )
            for (key, _), value in zip(wants[server], values):
                slices[(server, key)] = value
                self.stats["bytes_pulled"] += value.nbytes
        result = []
        for key in keys:
            shape, dtype, parts = self._keys[key]
            pieces = [slices[(server, key)] for server, _, _ in parts]
            flat = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            result.append(flat.reshape(shape).astype(dtype, copy=False))
        return result

    def _store_pull(self, key: Key) -> np.ndarray:
        return self._pull_values([key])[0]

    # -- barrier, optimizer ------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait until every worker has called ``barrier`` as often as this one (or
        raise naming a worker that was lost, or on timeout)."""
        self._flush()
        self._generation += 1
        generation, server = self._generation, self._servers[0]
        self._wait(
            lambda wait: server.barrier(self.rank, generation, wait), 0, f"barrier {generation}"
        )

    def set_optimizer(self, optimizer: opt.Optimizer) -> None:
        """Send ``optimizer`` to the servers, which then apply it to every step's
        pushes (rank 0 sends it; every worker waits at a barrier)."""
        self._optimizer = optimizer
        if self.rank == 0:
            payload = pickle.dumps(optimizer)
            for server, actor in enumerate(self._servers):
                self._inflight.append((server, actor.set_updater(payload)))
        self._updater = optimizer  # marks "updates run on the servers"
        self.barrier()

    def _set_updater(self, updater: Any) -> None:
        raise MXNetError("a distributed KVStore applies updates on its servers: use set_optimizer")

    def _get_states(self, dump_optimizer: bool) -> bytes:
        self._flush()
        shards = [
            self._result(actor.get_states(), self._settings.timeout, i)
            for i, actor in enumerate(self._servers)
        ]
        updater = opt.get_updater(self._optimizer)
        for key, (shape, _dtype, parts) in self._keys.items():
            pieces = [shards[server].get(key) for server, _, _ in parts]
            if any(piece is not None for piece in pieces):
                updater.states[key] = _join(pieces, shape)
        return updater.get_states(dump_optimizer)

    def _set_states(self, states: bytes) -> None:
        self._flush()
        updater = opt.get_updater(self._optimizer)
        updater.set_states(states)
        payload = None
        if updater.optimizer is not self._optimizer:
            self._optimizer = self._updater = updater.optimizer
            payload = pickle.dumps(updater.optimizer)
        shards: list[dict] = [{} for _ in self._servers]
        for key, state in updater.states.items():
            if key not in self._keys:
                continue
            for server, start, stop in self._keys[key][2]:
                shards[server][key] = _cut(state, start, stop)
        if self.rank == 0:
            for i, actor in enumerate(self._servers):
                self._inflight.append((i, actor.set_states(shards[i], payload)))
        self.barrier()

    def traffic(self) -> list[dict]:
        """Each server's counts of array bytes received and sent."""
        return [
            self._result(actor.traffic(), self._settings.timeout, i)
            for i, actor in enumerate(self._servers)
        ]

    def close(self) -> None:
        """Leave the cluster (rank 0's servers stay while others still use them)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _join(pieces: list, shape: tuple) -> Any:
    """One state from the states of a value's slices (numpy, nested tuples)."""
    first = pieces[0]
    if isinstance(first, np.ndarray):
        flat = first if len(pieces) == 1 else np.concatenate([p.reshape(-1) for p in pieces])
        return NDArray(flat.reshape(shape))
    if isinstance(first, (list, tuple)):
        return type(first)(_join(list(group), shape) for group in zip(*pieces))
    return first


def _cut(state: Any, start: int, stop: int) -> Any:
    """The slice ``start:stop`` of a state's flattened arrays, as numpy."""
    if isinstance(state, NDArray):
        return state.asnumpy().reshape(-1)[start:stop]
    if isinstance(state, (list, tuple)):
        return type(state)(_cut(s, start, stop) for s in state)
    return state
