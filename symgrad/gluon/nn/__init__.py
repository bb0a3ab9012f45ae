"""``gluon.nn``: MXNet 1.x's neural-network layers, each a thin HybridBlock over
registered ops."""

from ..block import *  # noqa: F401,F403  (Block, HybridBlock, SymbolBlock, as MXNet's nn)
from .activations import *  # noqa: F401,F403
from .basic_layers import *  # noqa: F401,F403
from .conv_layers import *  # noqa: F401,F403
