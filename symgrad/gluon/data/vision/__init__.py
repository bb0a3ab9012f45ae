"""``gluon.data.vision``: image transforms, the standard image datasets, and
images in folders or RecordIO files."""

from . import transforms
from .datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST, ImageFolderDataset, ImageRecordDataset

__all__ = [
    "transforms",
    "MNIST",
    "FashionMNIST",
    "CIFAR10",
    "CIFAR100",
    "ImageFolderDataset",
    "ImageRecordDataset",
]
