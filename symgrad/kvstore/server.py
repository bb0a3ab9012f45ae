"""``KVServer``: one parameter-server shard, run as a Dask actor.

A distributed store has one shard per Dask worker. A shard holds, for each key
it owns (or its slice of a key split across shards), the stored value, the
optimizer state and the pushes of the step being gathered. Its methods are
coroutines, so they run on the Dask worker's event loop and a pull can wait for
a step without blocking the pushes that complete it.

Sync mode: the n-th push of a key by each worker belongs to step n; when all
``num_workers`` pushes of the next step are in, their sum is applied once (the
optimizer's update, or the sum becomes the value) and the step counts as
applied for every worker. Async mode: each push is applied when it arrives.
A worker's pull names how many of its own pushes it must see applied, so
messages that overtake each other on the way cannot change a result.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import numpy as np

__all__ = ["KVServer"]


class KVServer:
    """The state of one server shard (a Dask actor: ``client.submit(KVServer,
    ..., actor=True)``).

    Parameters
    ----------
    num_workers : int
        How many workers push each step.
    sync : bool
        Gather a step from every worker before applying it (``dist_sync``), or
        apply each push at once (``dist_async``).
    """

    def __init__(self, num_workers: int, sync: bool):
        self.num_workers = num_workers
        self.sync = sync
        self.values: dict[Any, np.ndarray] = {}
        self.pending: dict[Any, dict[int, list]] = {}  # key -> step -> [sum, ranks]
        self.pushed: dict[tuple[Any, int], int] = {}  # (key, rank) -> pushes received
        self.applied: dict[tuple[Any, int], int] = {}  # (key, rank) -> pushes applied
        self.steps: dict[Any, int] = {}  # key -> steps applied (sync)
        self.updater: Any = None
        self.arrived: dict[int, set] = {}  # barrier generation -> ranks
        self.bytes_in = 0
        self.bytes_out = 0
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()

    async def _wait(self, ready: Any, wait: float) -> bool:
        condition = self._condition()
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(ready), wait)
            except asyncio.TimeoutError:
                return False
        return True

    # -- keys ---------------------------------------------------------------------
    async def init(self, key: Any, value: np.ndarray) -> None:
        """Store the first value of ``key`` (or of this shard's slice of it)."""
        self.values[key] = np.array(value, copy=True)
        self.pending[key] = {}
        self.steps[key] = 0
        self.bytes_in += value.nbytes
        await self._notify()

    async def set_updater(self, optimizer_pickle: bytes) -> None:
        """Apply pushes with this (pickled) optimizer from now on."""
        from .. import optimizer as opt

        self.updater = opt.get_updater(pickle.loads(optimizer_pickle))

    async def push(self, rank: int, items: list) -> None:
        """Take one push from ``rank`` of each ``(key, value)`` in ``items``."""
        for key, value in items:
            self._take(key, rank, value)
        await self._notify()

    def _take(self, key: Any, rank: int, value: Any) -> None:
        if isinstance(value, tuple):  # a 2-bit compressed push
            from .compression import unpack

            self.bytes_in += value[2].nbytes
            value = unpack(value)
        else:
            self.bytes_in += value.nbytes
        step = self.pushed.get((key, rank), 0) + 1
        self.pushed[(key, rank)] = step
        if not self.sync:
            if self.updater is None:
                raise RuntimeError(
                    f"push of key {key!r}: Updater needs to be set for async "
                    "mode (set_optimizer, or update_on_kvstore=True)"
                )
            self._apply(key, value)
            self.applied[(key, rank)] = step
            return
        gathering = self.pending[key].setdefault(step, [None, set()])
        if gathering[0] is None:
            gathering[0] = np.array(value, copy=True)
        else:
            gathering[0] += value
        gathering[1].add(rank)
        # apply every complete step in order (a fast worker may be a step ahead)
        while True:
            next_step = self.steps[key] + 1
            gathering = self.pending[key].get(next_step)
            if gathering is None or len(gathering[1]) < self.num_workers:
                break
            del self.pending[key][next_step]
            self._apply(key, gathering[0])
            self.steps[key] = next_step
            for r in range(self.num_workers):
                self.applied[(key, r)] = next_step

    def _apply(self, key: Any, merged: np.ndarray) -> None:
        if self.updater is None:
            self.values[key][...] = merged
            return
        from ..ndarray import NDArray

        weight = NDArray(self.values[key])
        self.updater(key, NDArray(merged), weight)
        # the update writes the buffer in place, or gives the NDArray a new one
        self.values[key] = weight._data

    async def pull(self, rank: int, wants: list, wait: float) -> tuple:
        """For ``wants``, a list of ``(key, need)``: ``(True, [values], [])`` once
        ``need`` pushes of ``rank`` are applied for every key, or ``(False, None,
        ranks still to push)`` after ``wait`` seconds."""

        def ready() -> bool:
            return all(
                key in self.values and self.applied.get((key, rank), 0) >= need
                for key, need in wants
            )

        if not ready() and not await self._wait(ready, wait):
            missing: set = set()
            for key, need in wants:
                if self.applied.get((key, rank), 0) < need:
                    step = self.steps.get(key, 0) + 1
                    have = self.pending.get(key, {}).get(step, [None, set()])[1]
                    missing |= set(range(self.num_workers)) - have
            return False, None, sorted(missing)
        # copies: Dask may still be sending the frames when a later push updates
        values = [self.values[key].copy() for key, _ in wants]
        self.bytes_out += sum(value.nbytes for value in values)
        return True, values, []

    # -- barrier --------------------------------------------------------------------
    async def barrier(self, rank: int, generation: int, wait: float) -> tuple[bool, list]:
        """Mark ``rank`` at barrier ``generation``; ``(True, [])`` when every
        worker has come, else ``(False, missing ranks)`` after ``wait`` s."""
        arrived = self.arrived.setdefault(generation, set())
        arrived.add(rank)
        self.arrived.pop(generation - 2, None)
        await self._notify()

        def ready() -> bool:
            return len(arrived) >= self.num_workers

        if ready() or await self._wait(ready, wait):
            return True, []
        return False, sorted(set(range(self.num_workers)) - arrived)

    # -- optimizer states -------------------------------------------------------------
    async def get_states(self) -> dict:
        """The optimizer states of this shard's keys, as numpy (or nested tuples)."""
        if self.updater is None:
            return {}
        return {key: _to_numpy(state) for key, state in self.updater.states.items()}

    async def set_states(self, states: dict, optimizer_pickle: bytes | None) -> None:
        """Replace this shard's optimizer states (and optimizer, when given)."""
        from .. import optimizer as opt

        if optimizer_pickle is not None:
            self.updater = opt.get_updater(pickle.loads(optimizer_pickle))
        if self.updater is None:
            raise RuntimeError("set_optimizer must come before load_optimizer_states")
        self.updater.states = {key: _to_ndarray(state) for key, state in states.items()}
        self.updater.states_synced = dict.fromkeys(self.updater.states, False)

    async def traffic(self) -> dict:
        """Bytes of array data received and sent by this shard."""
        return {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out}


def _to_numpy(state: Any) -> Any:
    from ..ndarray import NDArray

    if isinstance(state, NDArray):
        return state.asnumpy()
    if isinstance(state, (list, tuple)):
        return type(state)(_to_numpy(s) for s in state)
    return state


def _to_ndarray(state: Any) -> Any:
    from ..ndarray import NDArray

    if isinstance(state, np.ndarray):
        return NDArray(state.copy())
    if isinstance(state, (list, tuple)):
        return type(state)(_to_ndarray(s) for s in state)
    return state
