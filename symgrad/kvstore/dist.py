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
and between slices asks the scheduler which workers' clients and which servers'
Dask workers are still connected, so a worker whose process died is named in
an ``MXNetError`` within about a second, and any wait ends with an error after
``SYMGRAD_KVSTORE_TIMEOUT`` seconds.

A server lost with its Dask worker's process makes every call raise an
``MXNetError`` naming it, until the workers resume from a checkpoint: each calls
``load_optimizer_states`` (``Trainer.load_states``) or :meth:`DistKVStore.resume`,
which starts a new set of servers (the survivors' values are newer than any
checkpoint, so none is kept); the keys are then given their values again by
``init``, which ``Trainer`` does at its next step from the loaded parameters.
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
from .compression import TwoBitCompression, pack
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
        # servers: how many times they were re-created, which are lost, and the
        # keys whose values went with the servers a resume replaced
        self._incarnation = 0
        self._lost: list[int] = []
        self._forgotten: set = set()
        self._servers, self._addresses = self._start_servers(settings.num_servers)
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
    def _dataset(self) -> str:
        """The name the current servers are published under on the scheduler."""
        return self._name if self._incarnation == 0 else f"{self._name}-r{self._incarnation}"

    def _start_servers(self, count: int | None) -> tuple[list, list[str]]:
        """Rank 0 starts ``count`` server actors (default: one per Dask worker) and
        publishes them; the other ranks wait for them. Returns the actors and the
        addresses of the Dask workers holding them."""
        client, settings = self._client, self._settings
        deadline = time.monotonic() + settings.timeout
        name = self._dataset()
        if self.rank == 0:
            # not on a worker that died (the scheduler may not have heard yet)
            dead = set(self._addresses[i] for i in self._lost) if self._incarnation else set()
            while True:
                workers = sorted(set(client.scheduler_info(n_workers=-1)["workers"]) - dead)
                if workers:
                    break
                self._check_alive("a Dask worker to hold the servers", deadline, [], servers=False)
                time.sleep(0.1)
            placed = [workers[i % len(workers)] for i in range(count or len(workers))]
            futures = [
                client.submit(
                    KVServer,
                    self.num_workers,
                    self._sync,
                    actor=True,
                    workers=[address],
                    pure=False,
                    key=f"{name}-server-{i}",
                )
                for i, address in enumerate(placed)
            ]
            client.set_metadata([name, "servers"], placed)
            client.publish_dataset(futures, name=name)
        else:
            while True:
                futures = client.get_dataset(name, default=None)
                if futures is not None:
                    break
                self._check_alive("the servers from rank 0", deadline, [0], servers=False)
                time.sleep(0.05)
            placed = client.get_metadata([name, "servers"])
        # an Actor handle binds to the current client when it is made
        with client.as_current():
            try:
                actors = [future.result(timeout=settings.timeout) for future in futures]
            except (TimeoutError, asyncio.TimeoutError) as err:
                raise MXNetError(
                    f"KVStore rank {self.rank} timed out after {settings.timeout:g} s "
                    f"waiting for the servers to start on {placed}"
                ) from err
        return actors, placed

    def _membership(self) -> tuple[set, set]:
        """The ids of the clients and the addresses of the workers the scheduler
        has now."""
        clients, workers = self._client.run_on_scheduler(
            lambda dask_scheduler: (list(dask_scheduler.clients), list(dask_scheduler.workers))
        )
        return set(clients), set(workers)

    def _check_alive(
        self, what: str, deadline: float, missing: list[int], servers: bool = True
    ) -> None:
        """Raise when a worker's process has gone, when a server's Dask worker has
        (``servers``), or when ``deadline`` passed."""
        ranks = self._client.get_metadata([self._name, "ranks"], default={})
        connected, workers = self._membership()
        lost = sorted(int(rank) for rank, client_id in ranks.items() if client_id not in connected)
        if lost:
            raise MXNetError(
                f"KVStore worker rank {lost[0]} was lost (its process left the "
                f"Dask cluster) while rank {self.rank} waited for {what}"
            )
        if servers:
            gone = [i for i, address in enumerate(self._addresses) if address not in workers]
            if gone:
                self._lost = gone
                raise self._lost_error(what)
        if time.monotonic() > deadline:
            raise MXNetError(
                f"KVStore rank {self.rank} timed out after "
                f"{self._settings.timeout:g} s waiting for {what}; ranks not "
                f"there yet: {missing}"
            )

    def _lost_error(self, what: str, cause: str = "left the cluster") -> MXNetError:
        server = self._lost[0]
        return MXNetError(
            f"KVStore server {server} was lost (its Dask worker "
            f"{self._addresses[server]} {cause}) while rank "
            f"{self.rank} waited for {what}. To resume, every worker loads the "
            "last checkpoint: the parameters (net.load_parameters) and the "
            "optimizer states (trainer.load_states or kv.load_optimizer_states), "
            "which start new servers"
        )

    def _check_servers(self, what: str) -> None:
        """Raise at once while a lost server waits for a resume."""
        if self._lost:
            raise self._lost_error(what)

    @property
    def lost(self) -> bool:
        """Whether a server's Dask worker has left the cluster (its values and
        optimizer states are gone): the store needs :meth:`resume`."""
        if not self._lost:
            _, workers = self._membership()
            self._lost = [i for i, address in enumerate(self._addresses) if address not in workers]
        return bool(self._lost)

    def resume(self) -> None:
        """Start a new set of servers in place of the current ones (every worker
        calls it, as after a lost server; ``load_optimizer_states`` and
        ``Trainer.load_states`` call it when a server was lost).

        The new servers hold no values: every key must be given its value again
        with ``init`` (the Trainer does this at its next step, from its
        parameters), and the optimizer states by ``load_optimizer_states``. The
        optimizer set with ``set_optimizer`` is kept; 2-bit compression residuals
        restart from zero. Bounded by ``SYMGRAD_KVSTORE_TIMEOUT``, as every wait.
        """
        old = self._dataset()
        self._inflight = []
        self._incarnation += 1
        self._generation = 0
        self._forgotten = set(self._keys)
        if self._compression is not None:
            self._compression = TwoBitCompression(self._compression.threshold)
        self._servers, self._addresses = self._start_servers(len(self._servers))
        self._lost = []
        if self.rank == 0:
            # free the old servers (a survivor's actor goes with its future)
            self._client.unpublish_dataset(old)
            if self._optimizer is not None:
                payload = pickle.dumps(self._optimizer)
                for server, actor in enumerate(self._servers):
                    self._inflight.append((server, actor.set_updater(payload)))
        self.barrier()

    def _result(self, future: Any, wait: float, server: int) -> Any:
        try:
            return future.result(timeout=wait + _GRACE)
        except (TimeoutError, asyncio.TimeoutError) as err:  # before OSError, its base
            raise MXNetError(
                f"KVStore server {server} did not answer rank {self.rank}: "
                f"{type(err).__name__}: {err}"
            ) from err
        except OSError as err:
            # Dask cannot reach the actor's worker (CommClosedError is an OSError):
            # the server's process is gone, with its values
            self._lost = [server]
            raise self._lost_error("its answer", f"cannot be reached: {err}") from err
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
        return self._keys.keys() - self._forgotten

    def _shape_dtype(self, key: Key, verb: str) -> tuple[tuple, np.dtype]:
        known = self._keys.get(key)
        if known is None:
            raise MXNetError(f"{verb}: key {key!r} has not been inited")
        if key in self._forgotten:
            raise MXNetError(
                f"{verb}: key {key!r} has not been inited since the store resumed "
                "on new servers (init it again)"
            )
        return known[0], known[1]

    def init(self, key: Any, value: Any) -> None:
        """Give each key its first value: rank 0's values are stored, then every
        worker waits at a barrier (MXNet's semantics)."""
        self._check_servers("init")
        super().init(key, value)
        self._flush()
        self.barrier()

    def _store_init(self, key: Key, value: np.ndarray) -> None:
        parts = self._parts(key, value.size)
        self._keys[key] = (value.shape, value.dtype, parts)
        self._forgotten.discard(key)
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
        self._check_servers("push")
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
        self._check_servers("pull")
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
        self._check_servers("barrier")
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

    def load_optimizer_states(self, fname: str) -> None:
        """Read states written by ``save_optimizer_states`` into the servers; when
        a server was lost, first start new servers (:meth:`resume`)."""
        if self.lost:
            self.resume()
        super().load_optimizer_states(fname)

    def _get_states(self, dump_optimizer: bool) -> bytes:
        self._check_servers("save_optimizer_states")
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
