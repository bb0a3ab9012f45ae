"""The op registry's contents. Importing this package registers every op."""

from . import (  # noqa: F401  (registration)  # noqa: F401
    activations,
    aliases_legacy,
    blocked,  # the channel-blocked convolutions of the pass blocked_layouts
    contrib,
    conv,
    ctc,
    custom,
    elemwise,
    fused,
    gluon_extra,
    image,
    indexing,
    linalg,
    losses,
    nn,
    normalization,
    optimizer,
    random,
    reduce,
    reset_arrays,
    rnn,
    rnn_grad,  # RNN's backward op (it imports rnn's pieces)
    rnn_tape,  # the RNN op and its backward sharing the forward's tape
    scatter_set_nd,
    sequence,
    shape,
    tail_elemwise,
    tail_losses,
    tail_misc,
    tail_optimizer,
    tail_shape,
    tail_spatial,
)
from .common import F  # noqa: F401
