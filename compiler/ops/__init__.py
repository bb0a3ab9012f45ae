"""The op registry's contents. Importing this package registers every op."""

from . import (  # noqa: F401  (registration)  # noqa: F401
    activations,
    contrib,
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
    rnn,
    sequence,
    shape,
    tail_elemwise,
    tail_losses,
    tail_misc,
    tail_shape,
    tail_spatial,
)
from .common import F  # noqa: F401
