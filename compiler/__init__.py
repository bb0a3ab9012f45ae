"""symgrad's framework-free graph compiler.

It knows graphs of registered ops and numpy arrays, nothing of NDArray or
recording: a graph can be built by hand, differentiated, and run.

>>> import numpy as np
>>> from symgrad_compiler import variable, make_node, Entry, differentiate, evaluate
>>> x = variable((3,), np.float64)
>>> y = make_node("tanh", [Entry(x, 0)])
>>> ones = make_node("ones_like", [Entry(y, 0)])
>>> (dx,) = differentiate([Entry(y, 0)], [Entry(ones, 0)], [Entry(x, 0)])
>>> evaluate([dx], {x: (np.zeros(3),)})[0]
array([1., 1., 1.])
"""

from . import ops  # noqa: F401  (fills the registry)
from .autodiff import differentiate
from .expr import Expr, OperatorMixin, bind_arguments, call, install_fluent_methods
from .inspect import explain, stats
from .interpret import evaluate
from .ir import Entry, GraphError, Node, TensorType, structural_key, topo_order
from .program import (
    Program,
    ProgramGraph,
    backend,
    cache_generation,
    cache_limits,
    cached_program,
    clear_cache,
    count_hit,
    interpret_runner,
    runner,
    set_backend,
    set_cache_limit,
)
from .registry import OPS, OpDef, get_op, make_node, variable

install_fluent_methods(OperatorMixin)

__all__ = [
    "OPS",
    "Entry",
    "Expr",
    "GraphError",
    "Node",
    "OpDef",
    "OperatorMixin",
    "Program",
    "ProgramGraph",
    "TensorType",
    "backend",
    "bind_arguments",
    "cache_generation",
    "cache_limits",
    "cached_program",
    "call",
    "clear_cache",
    "count_hit",
    "differentiate",
    "evaluate",
    "explain",
    "get_op",
    "interpret_runner",
    "make_node",
    "runner",
    "set_backend",
    "set_cache_limit",
    "stats",
    "structural_key",
    "topo_order",
    "variable",
]
