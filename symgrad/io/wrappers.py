"""Iterators over other iterators: ``ResizeIter`` and ``PrefetchingIter``."""

from __future__ import annotations

import threading
from typing import Any

from .base import DataBatch, DataDesc, DataIter


class _CurrentBatchIter(DataIter):
    """An iterator whose ``iter_next`` sets ``current_batch``: the getters read
    it."""

    current_batch: Any

    def getdata(self) -> Any:
        """The current batch's data."""
        return self.current_batch.data

    def getlabel(self) -> Any:
        """The current batch's labels."""
        return self.current_batch.label

    def getindex(self) -> Any:
        """The current batch's index."""
        return self.current_batch.index

    def getpad(self) -> Any:
        """The current batch's pad."""
        return self.current_batch.pad


class ResizeIter(_CurrentBatchIter):
    """Make ``data_iter`` yield exactly ``size`` batches per epoch, restarting it
    when it runs out early (and stopping it early when it has more).
    ``reset_internal=False`` leaves the inner iterator where it is on ``reset``.
    """

    def __init__(self, data_iter: DataIter, size: int, reset_internal: bool = True):
        super().__init__()
        self.data_iter = data_iter
        self.size = size
        self.reset_internal = reset_internal
        self.cur = 0
        self.current_batch: DataBatch | None = None
        self.provide_data = data_iter.provide_data
        self.provide_label = data_iter.provide_label
        self.batch_size = data_iter.batch_size
        if hasattr(data_iter, "default_bucket_key"):
            self.default_bucket_key = data_iter.default_bucket_key

    def reset(self) -> None:
        """Start a new epoch of ``size`` batches."""
        self.cur = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self) -> bool:
        """Take the inner iterator's next batch, restarting it at its end."""
        if self.cur == self.size:
            return False
        try:
            self.current_batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            self.current_batch = self.data_iter.next()
        self.cur += 1
        return True


def _prefetch(
    it: DataIter,
    slots: list,
    i: int,
    ready: threading.Event,
    taken: threading.Event,
    stop: threading.Event,
) -> None:
    """Read ``it``'s next batch into ``slots[i]`` whenever the last one was taken."""
    while True:
        taken.wait()
        if stop.is_set():
            return
        try:
            slots[i] = it.next()
        except StopIteration:
            slots[i] = None
        taken.clear()
        ready.set()


class PrefetchingIter(_CurrentBatchIter):
    """Read the next batch of each iterator in ``iters`` in a background thread
    while the current one is used; the batches of all iterators are joined
    (data after data, labels after labels). ``rename_data``/``rename_label``
    (one dict per iterator) rename their inputs in ``provide_data``/
    ``provide_label``."""

    def __init__(
        self,
        iters: DataIter | list[DataIter],
        rename_data: list | None = None,
        rename_label: list | None = None,
    ):
        super().__init__()
        self.iters = iters if isinstance(iters, list) else [iters]
        self.n_iter = len(self.iters)
        if self.n_iter == 0:
            raise AssertionError("Empty iterator list")
        self.rename_data = rename_data
        self.rename_label = rename_label
        self.batch_size = self.provide_data[0][1][0]
        self.current_batch: DataBatch | None = None
        self._next: list[DataBatch | None] = [None] * self.n_iter
        self._ready = [threading.Event() for _ in range(self.n_iter)]
        self._taken = [threading.Event() for _ in range(self.n_iter)]
        # the threads hold the iterators and events, not this object, so that it can
        # be collected (and its threads told to stop) when it is dropped
        self._stop = threading.Event()
        for event in self._taken:
            event.set()
        self._threads = [
            threading.Thread(
                target=_prefetch,
                daemon=True,
                args=(self.iters[i], self._next, i, self._ready[i], self._taken[i], self._stop),
            )
            for i in range(self.n_iter)
        ]
        for thread in self._threads:
            thread.start()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            for event in self._taken:
                event.set()

    @staticmethod
    def _renamed(descs: list, renames: list | None) -> list:
        if renames is None:
            return sum(descs, [])
        out = []
        for rename, items in zip(renames, descs):
            for x in items:
                x = x if isinstance(x, DataDesc) else DataDesc(*x)
                out.append(DataDesc(rename.get(x.name, x.name), x.shape, x.dtype, x.layout))
        return out

    @property
    def provide_data(self) -> list:
        """The joined (and renamed) data descriptions of all iterators."""
        return self._renamed([i.provide_data for i in self.iters], self.rename_data)

    @property
    def provide_label(self) -> list:
        """The joined (and renamed) label descriptions of all iterators."""
        return self._renamed([i.provide_label for i in self.iters], self.rename_label)

    def reset(self) -> None:
        """Wait for the pending reads, reset every iterator and prefetch again."""
        for event in self._ready:
            event.wait()
        for it in self.iters:
            it.reset()
        for event in self._ready:
            event.clear()
        for event in self._taken:
            event.set()

    def iter_next(self) -> bool:
        """Take the prefetched batches; False when the iterators are exhausted."""
        for event in self._ready:
            event.wait()
        if self._next[0] is None:
            if any(batch is not None for batch in self._next):
                raise AssertionError("Number of entry mismatches between iterators")
            return False
        first = self._next[0]
        for batch in self._next:
            if batch.pad != first.pad:
                raise AssertionError("Number of entry mismatches between iterators")
        self.current_batch = DataBatch(
            sum([list(b.data) for b in self._next], []),
            sum([list(b.label or []) for b in self._next], []),
            first.pad,
            first.index,
            provide_data=self.provide_data,
            provide_label=self.provide_label,
        )
        for event in self._ready:
            event.clear()
        for event in self._taken:
            event.set()
        return True

    def next(self) -> DataBatch:
        """The next joined batch."""
        if self.iter_next():
            return self.current_batch
        raise StopIteration
