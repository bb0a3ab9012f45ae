"""symgrad: MXNet 1.x reborn on numpy and numba.

``import symgrad as mx`` runs scripts written for ``mx.nd``, ``mx.autograd``,
``mx.sym``, Gluon and the training stack. The core namespaces load with the
package; the others (``mx.gluon``, ``mx.optimizer``, ``mx.kv``...) load on first
use, so that ``import symgrad`` stays quick and a process that never trains keeps
none of their objects alive.
"""

from importlib import import_module  # noqa: I001  (import order: lower layers first)
from typing import Any

from . import base, context
from . import ndarray
from . import ndarray as nd
from . import autograd, random
from . import symbol
from . import symbol as sym
from . import visualization
from . import visualization as viz
from . import name
from . import attribute
from . import profiler as profiler
from .attribute import AttrScope
from .executor import compile
from .base import MXNetError
from .context import Context, cpu, current_context, gpu

__version__ = "0.1.0"

# Namespaces loaded on first use: attribute -> module.
_LAZY = {
    "gluon": "gluon",
    "init": "initializer",
    "initializer": "initializer",
    "optimizer": "optimizer",
    "lr_scheduler": "lr_scheduler",
    "metric": "metric",
    "io": "io",
    "recordio": "recordio",
    "callback": "callback",
    "kv": "kvstore",
    "kvstore": "kvstore",
    "model": "model",
    "mod": "module",
    "module": "module",
    "operator": "operator",
    "contrib": "contrib",
    "test_utils": "test_utils",
    "util": "util",
    "runtime": "runtime",
    "image": "image",
}


def __getattr__(name_: str) -> Any:
    """``mx.gluon`` and the other namespaces of ``_LAZY``, imported when first read."""
    module = _LAZY.get(name_)
    if module is None:
        raise AttributeError(f"module 'symgrad' has no attribute {name_!r}")
    value = import_module(f".{module}", __name__)
    globals()[name_] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "nd",
    "ndarray",
    "autograd",
    "sym",
    "symbol",
    "random",
    "base",
    "context",
    "Context",
    "cpu",
    "gpu",
    "current_context",
    "MXNetError",
    "viz",
    "visualization",
    "compile",
    "name",
    "attribute",
    "AttrScope",
    *_LAZY,
]
