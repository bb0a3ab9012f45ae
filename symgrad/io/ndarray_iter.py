"""``NDArrayIter``: batches over in-memory arrays, with MXNet's last-batch modes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from ..ndarray import NDArray, array
from .base import DataBatch, DataDesc, DataIter


def _to_ndarray(value: Any) -> NDArray:
    if isinstance(value, NDArray):
        return value
    try:
        values = np.asarray(value)
    except Exception as err:  # noqa: BLE001  (any failure means: not array-like)
        raise TypeError(
            f"Invalid type '{type(value)}' for data, should be NDArray, "
            f"numpy.ndarray or h5py.Dataset"
        ) from err
    # MXNet's array() makes float32 of anything but an NDArray
    return array(values)


def init_data(data: Any, allow_empty: bool, default_name: str) -> list[tuple[str, NDArray]]:
    """Normalise iterator inputs to a list of ``(name, NDArray)`` sorted by name:
    one array is named ``default_name``, a list ``_<i>_<default_name>``."""
    if data is None:
        data = []
    if isinstance(data, (np.ndarray, NDArray)):
        data = [data]
    if isinstance(data, list):
        if not allow_empty and not data:
            raise AssertionError("data must not be empty")
        if len(data) == 1:
            data = OrderedDict([(default_name, data[0])])
        else:
            data = OrderedDict((f"_{i}_{default_name}", d) for i, d in enumerate(data))
    if not isinstance(data, dict):
        raise TypeError(
            "Input must be NDArray, numpy.ndarray, h5py.Dataset a list of them "
            "or dict with them as values"
        )
    return sorted((name, _to_ndarray(value)) for name, value in data.items())


class NDArrayIter(DataIter):
    """Iterate over ``data`` and ``label`` (arrays, lists or dicts of arrays) in
    batches of ``batch_size`` along the first axis.

    ``last_batch_handle`` says what happens to a last, incomplete batch:
    ``'pad'`` fills it with samples from the start (``pad`` counts them),
    ``'discard'`` drops it, ``'roll_over'`` keeps it and starts the next epoch
    with it (that first batch's ``pad`` is the number of carried samples).
    ``shuffle`` permutes the samples with numpy's global generator at every
    ``reset`` (and once at construction), as MXNet does.

    >>> import numpy as np
    >>> it = NDArrayIter(np.arange(10).reshape(5, 2), batch_size=2)
    >>> [batch.pad for batch in it]
    [0, 0, 1]
    """

    def __init__(
        self,
        data: Any,
        label: Any = None,
        batch_size: int = 1,
        shuffle: bool = False,
        last_batch_handle: str = "pad",
        data_name: str = "data",
        label_name: str = "softmax_label",
        layout: str = "NCHW",
    ):
        super().__init__(batch_size)
        # other values are accepted, as MXNet accepts them: they act as 'discard'
        self.data = init_data(data, allow_empty=False, default_name=data_name)
        self.label = init_data(label, allow_empty=True, default_name=label_name)
        self.idx = np.arange(self.data[0][1].shape[0])
        self.shuffle = shuffle
        self.last_batch_handle = last_batch_handle
        self.batch_size = batch_size
        self.layout = layout
        self.num_data = self.idx.shape[0]
        self.cursor = -batch_size
        # the incomplete batch a 'roll_over' epoch ended with, for the next one
        self._cache_data: list | None = None
        self._cache_label: list | None = None
        self.reset()
        self.data_list = [x[1] for x in self.data] + [x[1] for x in self.label]
        self.num_source = len(self.data_list)

    @property
    def provide_data(self) -> list[DataDesc]:
        """Name, batch shape and dtype of each data input."""
        return [
            DataDesc(k, (self.batch_size, *v.shape[1:]), v.dtype, self.layout) for k, v in self.data
        ]

    @property
    def provide_label(self) -> list[DataDesc]:
        """Name, batch shape and dtype of each label input."""
        return [
            DataDesc(k, (self.batch_size, *v.shape[1:]), v.dtype, self.layout)
            for k, v in self.label
        ]

    def hard_reset(self) -> None:
        """Start again from the first sample, dropping any rolled-over batch."""
        if self.shuffle:
            self._shuffle_data()
        self.cursor = -self.batch_size
        self._cache_data = None
        self._cache_label = None

    def reset(self) -> None:
        """Start the next epoch (after a 'roll_over' epoch, with the carried
        samples first)."""
        if self.shuffle:
            self._shuffle_data()
        ended_incomplete = self.num_data - self.batch_size < self.cursor < self.num_data
        if self.last_batch_handle == "roll_over" and ended_incomplete:
            # a negative cursor: -cursor samples of the first batch come from the cache
            self.cursor = self.cursor - self.num_data - self.batch_size
        else:
            self.cursor = -self.batch_size

    def iter_next(self) -> bool:
        """Advance the cursor by one batch; False past the end."""
        self.cursor += self.batch_size
        return self.cursor < self.num_data

    def next(self) -> DataBatch:
        """The next complete (or padded) batch."""
        if not self.iter_next():
            raise StopIteration
        data = self.getdata()
        label = self.getlabel()
        if data[0].shape[0] != self.batch_size:
            # an incomplete last batch ends the epoch; 'roll_over' starts the next with it
            self._cache_data = data
            self._cache_label = label
            raise StopIteration
        return DataBatch(data=data, label=label, pad=self.getpad(), index=None)

    def _slice(self, source: list, start: int, end: int) -> list[NDArray]:
        return [value[start:end] for _, value in source]

    @staticmethod
    def _join(first: list, second: list) -> list[NDArray]:
        return [
            NDArray(np.concatenate([a.asnumpy(), b.asnumpy()], axis=0))
            for a, b in zip(first, second)
        ]

    def _batchify(self, source: list, cache_name: str) -> list[NDArray]:
        if not self.cursor < self.num_data:
            raise AssertionError("DataIter needs reset.")
        if not source:
            return []
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            cached = getattr(self, cache_name)
            setattr(self, cache_name, None)
            return self._join(cached, self._slice(source, 0, self.cursor + self.batch_size))
        end = self.cursor + self.batch_size
        if self.last_batch_handle == "pad" and end > self.num_data:
            # fill from the start, going round the data as often as needed
            rows = np.arange(self.cursor, end) % self.num_data
            return [NDArray(value.asnumpy()[rows]) for _, value in source]
        return self._slice(source, self.cursor, min(end, self.num_data))

    def getdata(self) -> list[NDArray]:
        """The current batch's data arrays."""
        return self._batchify(self.data, "_cache_data")

    def getlabel(self) -> list[NDArray]:
        """The current batch's label arrays."""
        return self._batchify(self.label, "_cache_label")

    def getpad(self) -> int:
        """Filler samples in the current batch ('pad'), or carried samples in the
        first batch of a 'roll_over' epoch."""
        if self.last_batch_handle == "pad" and self.cursor + self.batch_size > self.num_data:
            return self.cursor + self.batch_size - self.num_data
        if self.last_batch_handle == "roll_over" and -self.batch_size < self.cursor < 0:
            return -self.cursor
        return 0

    def _shuffle_data(self) -> None:
        # the permutation is applied to the already permuted data, as MXNet does
        np.random.shuffle(self.idx)
        self.data = [(k, NDArray(v.asnumpy()[self.idx])) for k, v in self.data]
        self.label = [(k, NDArray(v.asnumpy()[self.idx])) for k, v in self.label]
