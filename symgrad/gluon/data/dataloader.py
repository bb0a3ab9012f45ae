"""``DataLoader``: batches of a dataset, read in the main process, in worker
processes or in a thread pool."""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ... import ndarray as nd
from ...ndarray import NDArray
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader", "default_batchify_fn", "default_mp_batchify_fn"]


def default_batchify_fn(data: list) -> Any:
    """Stack a list of samples into a batch: NDArrays with ``stack``, tuples
    element by element (giving a list), anything else through ``numpy.asarray``
    into an NDArray of numpy's dtype (so integer labels become int64).

    >>> batch = default_batchify_fn([(np.ones(2), 1), (np.zeros(2), 0)])
    >>> batch[0].shape, batch[1].dtype
    ((2, 2), <class 'numpy.int64'>)
    """
    first = data[0]
    if isinstance(first, NDArray):
        return nd.stack(*data)
    if isinstance(first, tuple):
        return [default_batchify_fn(list(items)) for items in zip(*data)]
    values = np.asarray(data)
    return nd.array(values, dtype=values.dtype)


def default_mp_batchify_fn(data: list) -> Any:
    """``default_batchify_fn`` as used with worker processes (the same batches)."""
    return default_batchify_fn(data)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, NDArray):
        return _Sent(value.asnumpy())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    return value


def _to_ndarray(value: Any) -> Any:
    if isinstance(value, _Sent):
        return nd.array(value.array, dtype=value.array.dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_ndarray(v) for v in value)
    return value


class _Sent:
    """An NDArray's values crossing a process boundary as numpy (NDArrays
    themselves may hold graph state that should not be pickled)."""

    def __init__(self, array: np.ndarray):
        self.array = array


# The dataset and batchify function of a worker process, set once when it starts
# (inherited through fork, never pickled).
_worker_dataset: Any = None
_worker_batchify: Any = None


def _worker_init(dataset: Any, batchify_fn: Callable) -> None:
    global _worker_dataset, _worker_batchify
    _worker_dataset = dataset
    _worker_batchify = batchify_fn


def _worker_batch(indices: list) -> Any:
    """A batch made in a worker process, its NDArrays sent back as numpy."""
    return _to_numpy(_worker_batchify([_worker_dataset[i] for i in indices]))


class DataLoader:
    """Iterate over ``dataset`` in mini-batches.

    Parameters
    ----------
    dataset : Dataset
        Anything with ``__getitem__`` and ``__len__``.
    batch_size : int
        Samples per batch (unless ``batch_sampler`` is given).
    shuffle : bool
        Read the samples in a new random order every epoch.
    sampler : Sampler
        The order of the samples (not with ``shuffle``).
    last_batch : {'keep', 'discard', 'rollover'}
        What happens to an incomplete last batch (see ``BatchSampler``).
    batch_sampler : Sampler
        Yields lists of indices, one per batch (instead of the four above).
    batchify_fn : callable
        Makes a batch from a list of samples (default: ``default_batchify_fn``).
    num_workers : int
        Worker processes reading batches (0: read in the calling thread).
    pin_memory, pin_device_id : accepted for MXNet compatibility (CPU only).
    prefetch : int
        Batches read ahead by the workers (default ``2 * num_workers``).
    thread_pool : bool
        Use a pool of threads instead of processes.
    timeout : int
        Seconds to wait for a worker's batch before raising.
    auto_reload : bool
        Accepted for MXNet compatibility (workers are started once, here).

    >>> from symgrad.gluon.data import ArrayDataset
    >>> loader = DataLoader(ArrayDataset(np.arange(5.0), np.arange(5)), batch_size=2)
    >>> [data.shape for data, label in loader]
    [(2,), (2,), (1,)]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = None,
        shuffle: bool = False,
        sampler: Any = None,
        last_batch: str | None = None,
        batch_sampler: Any = None,
        batchify_fn: Callable | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        pin_device_id: int = 0,
        prefetch: int | None = None,
        thread_pool: bool = False,
        timeout: int = 120,
        auto_reload: bool = False,
    ):
        self._dataset = dataset
        self._pin_memory = pin_memory
        self._pin_device_id = pin_device_id
        self._thread_pool = thread_pool
        self._timeout = timeout
        if batch_sampler is None:
            if batch_size is None:
                raise ValueError("batch_size must be specified unless batch_sampler is specified")
            if sampler is None:
                sampler = (
                    RandomSampler(len(dataset)) if shuffle else SequentialSampler(len(dataset))
                )
            elif shuffle:
                raise ValueError("shuffle must not be specified if sampler is specified")
            batch_sampler = BatchSampler(sampler, batch_size, last_batch if last_batch else "keep")
        elif batch_size is not None or shuffle or sampler is not None or last_batch is not None:
            raise ValueError(
                "batch_size, shuffle, sampler and last_batch must not be "
                "specified if batch_sampler is specified."
            )
        self._batch_sampler = batch_sampler
        self._num_workers = max(0, int(num_workers))
        self._prefetch = max(0, int(prefetch) if prefetch is not None else 2 * self._num_workers)
        self._batchify_fn = (
            batchify_fn
            if batchify_fn is not None
            else (default_mp_batchify_fn if self._num_workers > 0 else default_batchify_fn)
        )
        self._worker_pool: Any = None
        if self._num_workers > 0:
            if thread_pool:
                self._worker_pool = multiprocessing.pool.ThreadPool(self._num_workers)
            else:
                # fork: the workers inherit the dataset instead of unpickling it
                context = multiprocessing.get_context("fork")
                self._worker_pool = context.Pool(
                    self._num_workers,
                    initializer=_worker_init,
                    initargs=(dataset, self._batchify_fn),
                )

    def __iter__(self) -> Iterator:
        if self._num_workers == 0:
            for batch in self._batch_sampler:
                yield self._batchify_fn([self._dataset[i] for i in batch])
            return
        yield from self._from_workers()

    def _from_workers(self) -> Iterator:
        pending: deque = deque()
        batches = iter(self._batch_sampler)
        depth = max(1, self._prefetch)

        def submit() -> bool:
            indices = next(batches, None)
            if indices is None:
                return False
            if self._thread_pool:
                pending.append(self._worker_pool.apply_async(self._thread_batch, (indices,)))
            else:
                pending.append(self._worker_pool.apply_async(_worker_batch, (indices,)))
            return True

        for _ in range(depth):
            if not submit():
                break
        while pending:
            result = pending.popleft()
            try:
                batch = result.get(self._timeout)
            except multiprocessing.TimeoutError:
                raise RuntimeError(
                    f"Worker timed out after {self._timeout} seconds. This "
                    "might be caused by slow transformations or a worker that "
                    "died; consider a larger timeout."
                ) from None
            submit()
            yield batch if self._thread_pool else _to_ndarray(batch)

    def _thread_batch(self, indices: list) -> Any:
        return self._batchify_fn([self._dataset[i] for i in indices])

    def __len__(self) -> int:
        return len(self._batch_sampler)

    def __del__(self) -> None:
        pool = getattr(self, "_worker_pool", None)
        if pool is not None:
            pool.terminate()
            self._worker_pool = None
