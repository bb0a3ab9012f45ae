"""``mx.optimizer``: MXNet 1.x's optimizers, updaters and their serialisation.

>>> import symgrad as mx
>>> opt = mx.optimizer.create("sgd", learning_rate=0.1)
>>> weight, grad = mx.nd.array([1.0, 2.0]), mx.nd.array([0.5, -0.5])
>>> updater = mx.optimizer.get_updater(opt)
>>> updater(0, grad, weight)
>>> weight.asnumpy().tolist()
[0.949999988079071, 2.049999952316284]
"""

from .optimizer import Optimizer, create, register  # noqa: I001  (the base first)
from .sgd import DCASGD, NAG, SGD, SGLD, Signum
from .adaptive import FTRL, LAMB, AdaDelta, AdaGrad, Adam, Adamax, AdamW, Ftrl, Nadam, RMSProp
from .updater import Updater, get_updater

__all__ = [
    "Optimizer",
    "create",
    "register",
    "SGD",
    "NAG",
    "Signum",
    "DCASGD",
    "SGLD",
    "Adam",
    "AdamW",
    "AdaGrad",
    "AdaDelta",
    "Adamax",
    "Nadam",
    "RMSProp",
    "Ftrl",
    "FTRL",
    "LAMB",
    "Updater",
    "get_updater",
]
