"""The op registry's contents. Importing this package registers every op."""

from . import (  # noqa: F401  (registration)  # noqa: F401
    activations,
    conv,
    ctc,
    custom,
    elemwise,
    fused,
    gluon_extra,
    indexing,
    linalg,
    losses,
    nn,
    normalization,
    optimizer,
    random,
    reduce,
    sequence,
    shape,
)
from .common import F  # noqa: F401
