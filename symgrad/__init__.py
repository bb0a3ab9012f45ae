"""symgrad: MXNet 1.x's imperative autograd on numpy and numba.

``import symgrad as mx`` runs scripts written for ``mx.nd``, ``mx.autograd`` and
``mx.sym``.
"""

from . import base, context  # noqa: I001  (import order: lower layers first)
from . import ndarray
from . import ndarray as nd
from . import autograd, random
from . import test_utils
from . import symbol
from . import symbol as sym
from . import visualization
from . import visualization as viz
from . import initializer
from . import initializer as init
from . import lr_scheduler, optimizer, metric, io, recordio, callback
from . import gluon
from . import kvstore
from . import kvstore as kv
from . import name
from . import operator
from . import contrib
from . import model, module
from . import module as mod
from .executor import compile
from .base import MXNetError
from .context import Context, cpu, current_context, gpu

__version__ = "0.1.0"

__all__ = ["nd", "ndarray", "autograd", "sym", "symbol", "random", "base", "context",
           "Context", "cpu", "gpu", "current_context", "MXNetError", "viz", "visualization",
           "compile", "test_utils", "init", "initializer", "lr_scheduler", "optimizer",
           "metric", "io", "recordio", "callback", "gluon", "name", "model", "module", "mod",
           "kv", "kvstore"]
