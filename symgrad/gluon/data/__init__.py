"""``gluon.data``: datasets, samplers and the DataLoader, as MXNet 1.x's."""

from . import vision
from .dataloader import DataLoader, default_batchify_fn, default_mp_batchify_fn
from .dataset import ArrayDataset, Dataset, RecordFileDataset, SimpleDataset
from .sampler import (
    BatchSampler,
    FilterSampler,
    IntervalSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

__all__ = [
    "vision",
    "DataLoader",
    "default_batchify_fn",
    "default_mp_batchify_fn",
    "ArrayDataset",
    "Dataset",
    "RecordFileDataset",
    "SimpleDataset",
    "BatchSampler",
    "FilterSampler",
    "IntervalSampler",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
]
