"""Datasets: indexable collections of samples, and their lazy views."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ... import recordio
from ...ndarray import NDArray
from .sampler import FilterSampler, Sampler, SequentialSampler

__all__ = ["Dataset", "SimpleDataset", "ArrayDataset", "RecordFileDataset"]


class Dataset:
    """The base of datasets: ``__getitem__`` and ``__len__``, with views that
    transform, filter, shard, take or resample the samples lazily."""

    def __getitem__(self, idx: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def filter(self, fn: Callable[[Any], bool]) -> Dataset:
        """The samples for which ``fn(sample)`` is true.

        >>> SimpleDataset([1, 2, 3, 4]).filter(lambda x: x % 2 == 0)[1]
        4
        """
        return _SampledDataset(self, FilterSampler(fn, self))

    def shard(self, num_shards: int, index: int) -> Dataset:
        """Part ``index`` of ``num_shards`` contiguous parts; the first
        ``len % num_shards`` parts have one sample more.

        >>> [len(SimpleDataset(range(10)).shard(3, i)) for i in range(3)]
        [4, 3, 3]
        """
        if not 0 <= index < num_shards:
            raise AssertionError(f"Shard index of out bound: {index} out of {num_shards}")
        if num_shards <= 0:
            raise AssertionError("Number of shards must be greater than 0")
        length = len(self)
        size, rest = divmod(length, num_shards)
        start = size * index + min(index, rest)
        end = start + size + (index < rest)
        return _SampledDataset(self, SequentialSampler(end - start, start))

    def take(self, count: int | None) -> Dataset:
        """The first ``count`` samples (all of them when ``count`` is None or too
        large)."""
        if count is None or count > len(self):
            count = len(self)
        return _SampledDataset(self, SequentialSampler(count))

    def sample(self, sampler: Sampler) -> Dataset:
        """The samples at the indices ``sampler`` yields."""
        return _SampledDataset(self, sampler)

    def transform(self, fn: Callable, lazy: bool = True) -> Dataset:
        """Samples passed through ``fn`` (a tuple sample is spread as arguments);
        ``lazy=False`` transforms them all now.

        >>> SimpleDataset([1, 2]).transform(lambda x: x * 10)[1]
        20
        """
        transformed = _LazyTransformDataset(self, fn)
        if lazy:
            return transformed
        return SimpleDataset([sample for sample in transformed])

    def transform_first(self, fn: Callable, lazy: bool = True) -> Dataset:
        """Samples with ``fn`` applied to their first element only (the data of a
        ``(data, label)`` pair)."""
        return self.transform(_TransformFirst(fn), lazy)


class SimpleDataset(Dataset):
    """A dataset over any list-like ``data``."""

    def __init__(self, data: Any):
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> Any:
        return self._data[idx]


class _LazyTransformDataset(Dataset):
    def __init__(self, data: Dataset, fn: Callable):
        self._data = data
        self._fn = fn

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, idx: int) -> Any:
        item = self._data[idx]
        if isinstance(item, tuple):
            return self._fn(*item)
        return self._fn(item)


class _TransformFirst:
    """``fn`` on the first element of a sample (a class, so it pickles)."""

    def __init__(self, fn: Callable):
        self._fn = fn

    def __call__(self, x: Any, *args: Any) -> Any:
        if args:
            return (self._fn(x), *args)
        return self._fn(x)


class _SampledDataset(Dataset):
    def __init__(self, dataset: Dataset, sampler: Sampler):
        self._dataset = dataset
        self._sampler = sampler
        self._indices = list(iter(sampler))

    def __len__(self) -> int:
        return len(self._sampler)

    def __getitem__(self, idx: int) -> Any:
        return self._dataset[self._indices[idx]]


class ArrayDataset(Dataset):
    """Several equally long arrays or lists indexed together: sample ``i`` is
    ``(a[i], b[i], ...)`` (just ``a[i]`` for one array). One-dimensional
    NDArrays are read as numpy arrays, so their samples are numpy scalars.

    >>> ArrayDataset([1, 2], ['a', 'b'])[1]
    (2, 'b')
    """

    def __init__(self, *args: Any):
        if not args:
            raise AssertionError("Needs at least 1 arrays")
        self._length = len(args[0])
        self._data = []
        for i, data in enumerate(args):
            if len(data) != self._length:
                # MXNet's message numbers the arrays from 1 after the first, kept as is
                raise AssertionError(
                    f"All arrays must have the same length; array[0] has "
                    f"length {self._length} while array[{i + 1}] has "
                    f"{len(data)}."
                )
            if isinstance(data, NDArray) and data.ndim == 1:
                data = data.asnumpy()
            self._data.append(data)

    def __getitem__(self, idx: int) -> Any:
        if len(self._data) == 1:
            return self._data[0][idx]
        return tuple(data[idx] for data in self._data)

    def __len__(self) -> int:
        return self._length


class RecordFileDataset(Dataset):
    """The records of a RecordIO file (``filename``, with its ``.idx`` index
    beside it), as bytes."""

    def __init__(self, filename: str):
        self.idx_file = os.path.splitext(filename)[0] + ".idx"
        self.filename = filename
        self._record = recordio.MXIndexedRecordIO(self.idx_file, self.filename, "r")

    def __getitem__(self, idx: int) -> bytes:
        return self._record.read_idx(self._record.keys[idx])

    def __len__(self) -> int:
        return len(self._record.keys)
