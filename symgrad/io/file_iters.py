"""Iterators over data files: ``CSVIter`` and ``MNISTIter``, with the batching of
MXNet's C++ iterators."""

from __future__ import annotations

import gzip
import struct
from typing import Any

import numpy as np

from ..ndarray import NDArray, array
from .base import DataBatch, DataDesc, DataIter


class _RowBatcher(DataIter):
    """Batches of rows of in-memory ``data`` and ``label`` arrays with MXNet's
    C++ batch loader's rules: with ``round_batch`` the rows are read as an
    endless cycle (a batch crossing the end wraps to the start, ``pad`` counts
    the wrapped rows, and the next epoch goes on after them); without it, every
    epoch starts at row 0 and the last, short batch keeps the previous batch's
    rows after its own (``pad`` counts them). ``drop_last`` drops a short batch
    instead (MNISTIter)."""

    def __init__(
        self,
        data: np.ndarray,
        label: np.ndarray,
        batch_size: int,
        round_batch: bool,
        drop_last: bool,
        data_name: str = "data",
        label_name: str = "softmax_label",
    ):
        super().__init__(batch_size)
        self._data = data
        self._label = label
        self._round = round_batch
        self._drop_last = drop_last
        self._start = 0  # where the next epoch begins (after wrapped rows)
        self._position = 0
        self._done = False
        # the batch buffers, whose stale rows a short batch keeps (zeros at first)
        self._buffers = (
            np.zeros((batch_size, *data.shape[1:]), data.dtype),
            np.zeros((batch_size, *label.shape[1:]), label.dtype),
            np.zeros(batch_size, np.uint64),
        )
        self.provide_data = [DataDesc(data_name, (batch_size, *data.shape[1:]))]
        self.provide_label = [DataDesc(label_name, (batch_size, *label.shape[1:]))]
        self._batch: DataBatch | None = None

    def reset(self) -> None:
        """Start the next epoch."""
        self._position = self._start if self._round else 0
        self._start = 0
        self._done = False

    def iter_next(self) -> bool:
        """Cut the next batch; False at the end of the epoch."""
        count = len(self._data)
        if self._done or self._position >= count:
            return False
        rows = np.arange(self._position, self._position + self.batch_size)
        overflow = int(max(0, rows[-1] + 1 - count))
        if overflow and self._drop_last:
            return False
        data, label, index = (buffer.copy() for buffer in self._buffers)
        if overflow and self._round:
            rows = rows % count
            self._start = overflow
            self._done = True
        elif overflow:
            rows = rows[: self.batch_size - overflow]
        data[: len(rows)] = self._data[rows]
        label[: len(rows)] = self._label[rows]
        index[: len(rows)] = rows
        self._buffers = (data, label, index)
        self._position += self.batch_size
        self._batch = DataBatch([array(data)], [array(label)], pad=overflow, index=index)
        return True

    def next(self) -> DataBatch:
        """The next batch."""
        if self.iter_next():
            return self._batch
        raise StopIteration

    def getdata(self) -> list[NDArray]:
        """The current batch's data."""
        return self._batch.data

    def getlabel(self) -> list[NDArray]:
        """The current batch's labels."""
        return self._batch.label

    def getindex(self) -> Any:
        """The rows of the current batch."""
        return self._batch.index

    def getpad(self) -> int:
        """Rows of the current batch that are wrapped or stale."""
        return self._batch.pad


def _label_shape(shape: tuple) -> tuple:
    # a one-value label is a vector of batch_size, as MXNet's
    return () if tuple(shape) == (1,) else tuple(shape)


class CSVIter(_RowBatcher):
    """Batches of the rows of a CSV file ``data_csv`` (each row reshaped to
    ``data_shape``), with labels from ``label_csv`` (zeros when absent), as
    float32. See ``_RowBatcher`` for ``round_batch``.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'd.csv')
    >>> _ = open(path, 'w').write('1,2\\n3,4\\n5,6\\n')
    >>> [b.pad for b in CSVIter(data_csv=path, data_shape=(2,), batch_size=2)]
    [0, 1]
    """

    def __init__(
        self,
        data_csv: str,
        data_shape: tuple,
        label_csv: str | None = None,
        label_shape: tuple = (1,),
        batch_size: int = 1,
        round_batch: bool = True,
        dtype: Any = None,
        **kwargs: Any,
    ):
        data = np.loadtxt(data_csv, delimiter=",", dtype=np.float32, ndmin=2)
        data = data.reshape(len(data), *data_shape)
        shape = _label_shape(label_shape)
        if label_csv is None:
            label = np.zeros((len(data), *shape), dtype=np.float32)
        else:
            label = np.loadtxt(label_csv, delimiter=",", dtype=np.float32, ndmin=2)
            label = label.reshape(len(label), *shape)
        if dtype is not None:
            data = data.astype(dtype)
        super().__init__(data, label, batch_size, round_batch, drop_last=False)


def _read_idx_file(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class MNISTIter(_RowBatcher):
    """Batches of MNIST from its idx-ubyte files ``image`` and ``label``: images
    scaled by 1/256 as MXNet's, (1, 28, 28) each or flat (784,) with ``flat``;
    an incomplete last batch is dropped. ``num_parts``/``part_index`` read one
    contiguous part. ``shuffle`` permutes once with numpy's ``RandomState(seed)``
    (MXNet's own generator gives another order)."""

    def __init__(
        self,
        image: str = "./train-images-idx3-ubyte",
        label: str = "./train-labels-idx1-ubyte",
        batch_size: int = 128,
        shuffle: bool = True,
        flat: bool = False,
        seed: int = 0,
        silent: bool = False,
        num_parts: int = 1,
        part_index: int = 0,
        **kwargs: Any,
    ):
        images = _read_idx_file(image).astype(np.float32) / np.float32(256)
        labels = _read_idx_file(label).astype(np.float32)
        count = len(labels)
        start, end = count * part_index // num_parts, count * (part_index + 1) // num_parts
        images, labels = images[start:end], labels[start:end]
        if shuffle:
            order = np.random.RandomState(seed).permutation(len(labels))
            images, labels = images[order], labels[order]
        images = images.reshape(len(images), -1) if flat else images[:, None]
        super().__init__(images, labels, batch_size, round_batch=False, drop_last=True)
