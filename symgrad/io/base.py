"""The data iterator protocol of ``mx.io``: ``DataDesc``, ``DataBatch``, ``DataIter``."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ..ndarray import NDArray


class DataDesc(namedtuple("DataDesc", ["name", "shape"])):
    """A named input's description: ``name``, ``shape``, and the attributes
    ``dtype`` (float32 by default) and ``layout`` (``'NCHW'``).

    >>> DataDesc('data', (2, 3))
    DataDesc[data,(2, 3),<class 'numpy.float32'>,NCHW]
    """

    def __new__(
        cls, name: str, shape: tuple, dtype: Any = np.float32, layout: str = "NCHW"
    ) -> DataDesc:
        desc = super().__new__(cls, name, shape)
        desc.dtype = dtype
        desc.layout = layout
        return desc

    def __repr__(self) -> str:
        return f"DataDesc[{self.name},{self.shape},{self.dtype},{self.layout}]"

    @staticmethod
    def get_batch_axis(layout: str | None) -> int:
        """The position of ``'N'`` in ``layout`` (0 when there is no layout)."""
        if layout is None:
            return 0
        return layout.find("N")

    @staticmethod
    def get_list(shapes: list, types: list | None) -> list[DataDesc]:
        """``DataDesc``s from ``(name, shape)`` pairs and optional ``(name, dtype)``
        pairs."""
        if types is not None:
            type_of = dict(types)
            return [DataDesc(name, shape, type_of[name]) for name, shape in shapes]
        return [DataDesc(name, shape) for name, shape in shapes]


class DataBatch:
    """One batch: lists of ``data`` and ``label`` arrays, ``pad`` (how many
    trailing samples are filler), ``index``, ``bucket_key`` and the
    descriptions of its inputs."""

    def __init__(
        self,
        data: list | None,
        label: list | None = None,
        pad: int | None = None,
        index: Any = None,
        bucket_key: Any = None,
        provide_data: list | None = None,
        provide_label: list | None = None,
    ):
        if data is not None and not isinstance(data, (list, tuple)):
            raise AssertionError("Data must be list of NDArrays")
        if label is not None and not isinstance(label, (list, tuple)):
            raise AssertionError("Label must be list of NDArrays")
        self.data = data
        self.label = label
        self.pad = pad
        self.index = index
        self.bucket_key = bucket_key
        self.provide_data = provide_data
        self.provide_label = provide_label

    def __str__(self) -> str:
        data_shapes = [d.shape for d in self.data]
        label_shapes = [x.shape for x in self.label] if self.label else None
        return f"{self.__class__.__name__}: data shapes: {data_shapes} label shapes: {label_shapes}"


class DataIter:
    """The base of data iterators. Subclasses implement ``reset`` and either
    ``next`` or ``iter_next`` with ``getdata``/``getlabel``/``getpad``/
    ``getindex``; iterating yields ``DataBatch``es until ``StopIteration``."""

    def __init__(self, batch_size: int = 0):
        self.batch_size = batch_size

    def __iter__(self) -> DataIter:
        return self

    def reset(self) -> None:
        """Go back to the first batch."""

    def next(self) -> DataBatch:
        """The next batch; raises ``StopIteration`` at the end."""
        if self.iter_next():
            return DataBatch(
                data=self.getdata(), label=self.getlabel(), pad=self.getpad(), index=self.getindex()
            )
        raise StopIteration

    def __next__(self) -> DataBatch:
        return self.next()

    def iter_next(self) -> bool:
        """Move to the next batch; False at the end."""

    def getdata(self) -> list[NDArray] | None:
        """The current batch's data arrays."""

    def getlabel(self) -> list[NDArray] | None:
        """The current batch's label arrays."""

    def getindex(self) -> Any:
        """The current batch's sample indices (None when unknown)."""
        return None

    def getpad(self) -> int | None:
        """How many samples at the end of the current batch are filler."""
