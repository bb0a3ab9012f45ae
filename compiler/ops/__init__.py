"""The op registry's contents. Importing this package registers every op."""

from . import custom, elemwise, fused, nn, random, reduce, shape  # noqa: F401  (registration)
from . import activations, conv, indexing, losses, normalization, sequence  # noqa: F401
from .common import F  # noqa: F401
