"""``mx.sym.linalg``: MXNet's linear-algebra ops on Symbols (``mx.sym.linalg.potrf``
makes a ``_linalg_potrf`` node), generated from the op registry.

>>> import symgrad as mx
>>> mx.sym.linalg.gemm2(mx.sym.var("a"), mx.sym.var("b")).list_arguments()
['a', 'b']
"""

from __future__ import annotations

from symgrad_compiler import OPS

from .symbol import _symbol_function

PREFIX = "_linalg_"

for _name, _opdef in OPS.items():
    if _name.startswith(PREFIX):
        globals()[_name[len(PREFIX) :]] = _symbol_function(_name[len(PREFIX) :], _opdef)
del _name, _opdef

__all__ = sorted(name[len(PREFIX) :] for name in OPS if name.startswith(PREFIX))
