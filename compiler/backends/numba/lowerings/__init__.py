"""The numba backend's lowering table: how each op that fusion leaves alone runs.

Elementwise ops and reductions become fused kernels (:mod:`..codegen`) from the
facts on their :class:`~symgrad_compiler.registry.OpDef`. Every other op runs
its registered numpy implementation, unless a :class:`Lowering` is registered
for it here, which holds in one place everything the backend knows about the
op: the numba source of its kernels, the call that runs them (declining to
numpy where the arrays do not suit), how it computes straight into a caller's
buffer, and how it is written into the whole-program entry. The generic files
(the plan, the executable, the entry) find lowerings only through
:func:`lowering_for`; they name no op.

An op with no entry form keeps its program off the one-call path: the program
runs step by step, and :func:`warn_step_by_step` says so once per op.
"""

from __future__ import annotations

# the lowerings themselves register their ops on import
from . import blocked, conv, gather, pooling, products, rnn, rows, shapes  # noqa: F401
from .table import (
    FLOATS,
    LOWERINGS,
    Lowering,
    lowering_for,
    module_text,
    register_lowering,
    warn_step_by_step,
)

__all__ = [
    "FLOATS",
    "LOWERINGS",
    "Lowering",
    "lowering_for",
    "module_text",
    "register_lowering",
    "warn_step_by_step",
]
