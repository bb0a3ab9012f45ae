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

from . import (
    ops,  # noqa: F401  (fills the registry)
    session,
    settings,
)
from .autodiff import differentiate
from .backends import (
    Backend,
    Executable,
    backend,
    get_backend,
    register_backend,
    set_backend,
    unregister_backend,
)
from .backends.numba import wait_for_compilation
from .cache import (
    cache_generation,
    cache_limits,
    cached_program,
    clear_cache,
    count_hit,
    set_cache_limit,
)
from .driver import PassRun, compile_graph
from .expr import Expr, OperatorMixin, bind_arguments, call, install_fluent_methods
from .graph import ProgramGraph
from .inspect import explain, stats
from .interpret import evaluate
from .ir import Entry, GraphError, Node, TensorType, structural_key, topo_order
from .program import Program
from .registry import OPS, OpDef, get_op, make_node, variable

install_fluent_methods(OperatorMixin)

__all__ = [
    "OPS",
    "Backend",
    "Entry",
    "Executable",
    "Expr",
    "GraphError",
    "Node",
    "OpDef",
    "OperatorMixin",
    "PassRun",
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
    "compile_graph",
    "count_hit",
    "differentiate",
    "evaluate",
    "explain",
    "get_backend",
    "get_op",
    "make_node",
    "register_backend",
    "set_backend",
    "session",
    "set_cache_limit",
    "settings",
    "stats",
    "structural_key",
    "topo_order",
    "unregister_backend",
    "variable",
    "wait_for_compilation",
]
