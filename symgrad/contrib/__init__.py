"""``mx.contrib``: MXNet's experimental namespaces that scripts still import.

``mx.contrib.autograd`` is MXNet's first autograd API; ``mx.contrib.nd`` and
``mx.contrib.sym`` are the contrib op namespaces (``mx.nd.contrib``,
``mx.sym.contrib``).
"""

from .. import ndarray as _ndarray
from .. import symbol as _symbol
from . import autograd

nd = ndarray = _ndarray.contrib
sym = symbol = _symbol.contrib

__all__ = ["autograd", "nd", "ndarray", "sym", "symbol"]
