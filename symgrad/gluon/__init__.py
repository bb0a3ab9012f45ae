"""``mx.gluon``: MXNet 1.x's layer API (Blocks, Parameters, layers, losses, data,
Trainer) on symgrad's recording and compiled replay."""

from . import parameter, block  # noqa: I001  (parameters before the blocks that hold them)
from .parameter import *  # noqa: F401,F403
from .block import *  # noqa: F401,F403
from . import nn, loss, data, utils, trainer
from .trainer import *  # noqa: F401,F403
