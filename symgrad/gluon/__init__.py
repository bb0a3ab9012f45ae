"""``mx.gluon``: MXNet 1.x's layer API (Blocks, Parameters, layers, losses, data,
Trainer) on symgrad's recording and compiled replay."""

# Parameters before the Blocks that hold them, Blocks before the layers.
from . import parameter as parameter  # noqa: I001
from . import block as block
from .parameter import Constant, DeferredInitializationError, Parameter, ParameterDict
from .block import Block, HybridBlock, SymbolBlock
from . import nn as nn, loss as loss, data as data, utils as utils, trainer as trainer
from . import contrib as contrib
from . import rnn as rnn
from . import model_zoo as model_zoo
from .trainer import *  # noqa: F401,F403

__all__ = [
    "Block",
    "HybridBlock",
    "SymbolBlock",
    "Parameter",
    "ParameterDict",
    "Constant",
    "DeferredInitializationError",
    "nn",
    "loss",
    "data",
    "utils",
    "trainer",
    "contrib",
]
