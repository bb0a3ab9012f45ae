"""``gluon.data.vision``: image transforms and the standard image datasets."""

from . import transforms
from .datasets import CIFAR10, CIFAR100, MNIST, FashionMNIST

__all__ = ["transforms", "MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"]
