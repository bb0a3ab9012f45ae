"""Samplers: the order in which a DataLoader reads a dataset's samples."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "FilterSampler",
    "BatchSampler",
    "IntervalSampler",
    "SplitSampler",
]


class Sampler:
    """The base of samplers: an iterable of sample indices with a length."""

    def __iter__(self) -> Iterator:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class SequentialSampler(Sampler):
    """The indices ``start, ..., start + length - 1`` in order.

    >>> list(SequentialSampler(3, start=2))
    [2, 3, 4]
    """

    def __init__(self, length: int, start: int = 0):
        self._length = length
        self._start = start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._start, self._start + self._length))

    def __len__(self) -> int:
        return self._length


class RandomSampler(Sampler):
    """The indices ``0 ... length-1`` in a new random order (numpy's global
    generator) on every iteration."""

    def __init__(self, length: int):
        self._length = length

    def __iter__(self) -> Iterator[int]:
        indices = np.arange(self._length)
        np.random.shuffle(indices)
        return iter(indices)

    def __len__(self) -> int:
        return self._length


class FilterSampler(Sampler):
    """The indices of the samples of ``dataset`` for which ``fn(sample)`` is true."""

    def __init__(self, fn: Callable[[Any], bool], dataset: Any):
        self._fn = fn
        self._indices = [i for i, sample in enumerate(dataset) if fn(sample)]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


class IntervalSampler(Sampler):
    """Every ``interval``-th index, starting again one further on (with
    ``rollover``) until all are visited: ``IntervalSampler(6, 3)`` gives
    0, 3, 1, 4, 2, 5.

    >>> list(IntervalSampler(6, 3))
    [0, 3, 1, 4, 2, 5]
    """

    def __init__(self, length: int, interval: int, rollover: bool = True):
        if interval >= length:
            raise AssertionError(f"Interval {interval} must be smaller than length {length}")
        self._length = length
        self._interval = interval
        self._rollover = rollover

    def __iter__(self) -> Iterator[int]:
        for start in range(self._interval if self._rollover else 1):
            yield from range(start, self._length, self._interval)

    def __len__(self) -> int:
        return len(list(iter(self)))


class SplitSampler(Sampler):
    """Part ``part_index`` of ``num_parts`` equal contiguous parts of the indices
    ``0 ... length-1`` (the remainder is dropped, so every worker of a
    distributed run gets as many samples), in order or shuffled on every
    iteration (numpy's global generator).

    >>> list(SplitSampler(10, num_parts=3, part_index=1))
    [3, 4, 5]
    """

    def __init__(self, length: int, num_parts: int = 1, part_index: int = 0, shuffle: bool = False):
        if not 0 <= part_index < num_parts:
            raise ValueError(f"part_index {part_index} must be in [0, {num_parts})")
        self._part_len = length // num_parts
        self._start = self._part_len * part_index
        self._shuffle = shuffle

    def __iter__(self) -> Iterator[int]:
        indices = np.arange(self._start, self._start + self._part_len)
        if self._shuffle:
            np.random.shuffle(indices)
        return iter(indices.tolist())

    def __len__(self) -> int:
        return self._part_len


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``.

    ``last_batch`` says what happens to an incomplete last batch: ``'keep'``
    yields it, ``'discard'`` drops it, ``'rollover'`` carries its indices to the
    front of the next epoch.

    >>> list(BatchSampler(SequentialSampler(5), 2, 'keep'))
    [[0, 1], [2, 3], [4]]
    >>> sampler = BatchSampler(SequentialSampler(5), 2, 'rollover')
    >>> list(sampler), list(sampler)
    ([[0, 1], [2, 3]], [[4, 0], [1, 2], [3, 4]])
    """

    def __init__(self, sampler: Any, batch_size: int, last_batch: str = "keep"):
        self._sampler = sampler
        self._batch_size = batch_size
        self._last_batch = last_batch
        self._prev: list = []

    def __iter__(self) -> Iterator[list]:
        batch, self._prev = self._prev, []
        for index in self._sampler:
            batch.append(index)
            if len(batch) == self._batch_size:
                yield batch
                batch = []
        if batch:
            if self._last_batch == "keep":
                yield batch
            elif self._last_batch == "rollover":
                self._prev = batch
            elif self._last_batch != "discard":
                # checked only here, where it matters, as MXNet checks it
                raise ValueError(
                    "last_batch must be one of 'keep', 'discard', or "
                    f"'rollover', but got {self._last_batch}"
                )

    def __len__(self) -> int:
        if self._last_batch == "keep":
            return (len(self._sampler) + self._batch_size - 1) // self._batch_size
        if self._last_batch == "discard":
            return len(self._sampler) // self._batch_size
        if self._last_batch == "rollover":
            return (len(self._prev) + len(self._sampler)) // self._batch_size
        raise ValueError(
            "last_batch must be one of 'keep', 'discard', or 'rollover', but "
            f"got {self._last_batch}"
        )
