"""Gradient programs: what ``backward`` runs, built once per graph structure.

A :class:`GradientProgram` is made from a structural copy of a recorded graph (no
values), so one program serves every recording with the same structural key: it
reads the forward values it needs by position in the graph's topological order.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Sequence

from .autodiff import differentiate
from .expr import Expr
from .interpret import evaluate
from .ir import Entry, Node, topo_order
from .ops.common import F
from .registry import variable


def clone_graph(nodes: Sequence[Node]) -> list[Node]:
    """Structural copies of ``nodes`` (in topological order), without values or tags."""
    copies: dict[Node, Node] = {}
    for node in nodes:
        inputs = tuple(Entry(copies[e.node], e.index) for e in node.inputs)
        copies[node] = Node(node.op, node.attrs, inputs, node.types, node._name)
    return [copies[node] for node in nodes]


class GradientProgram:
    """Gradients of the heads of a graph with respect to some of its nodes.

    ``nodes`` is the graph in topological order; ``heads`` and ``wrt`` are
    positions in it; ``given_head_grads[i]`` says whether head ``i`` comes with a
    gradient (otherwise it is ones).
    """

    def __init__(self, nodes: Sequence[Node], heads: Sequence[tuple[int, int]],
                 wrt: Sequence[int], given_head_grads: Sequence[bool]):
        self.nodes = clone_graph(nodes)
        head_entries = [Entry(self.nodes[pos], index) for pos, index in heads]
        self.head_grad_vars: list[Node | None] = []
        seeds = []
        for entry, given in zip(head_entries, given_head_grads):
            if given:
                var = variable(entry.shape, entry.dtype, name=f"head_grad{len(seeds)}")
                self.head_grad_vars.append(var)
                seeds.append(Entry(var, 0))
            else:
                self.head_grad_vars.append(None)
                seeds.append(F.ones_like(Expr(entry)).entry)
        self.outputs = differentiate(head_entries, seeds,
                                     [Entry(self.nodes[pos], 0) for pos in wrt])
        live = [out for out in self.outputs if out is not None]
        needed = {id(n) for n in topo_order(live)}
        self.reads = [i for i, node in enumerate(self.nodes) if id(node) in needed]

    def run(self, nodes: Sequence[Node], head_grads: Sequence[Any]) -> list[Any]:
        """Gradients for a graph with this program's structure, given its
        recorded values (``nodes[i].value``) and the heads' gradients."""
        given = {self.nodes[i]: nodes[i].value for i in self.reads}
        for var, grad in zip(self.head_grad_vars, head_grads):
            if var is not None:
                given[var] = (grad,)
        live = [out for out in self.outputs if out is not None]
        values = iter(evaluate(live, given))
        return [None if out is None else next(values) for out in self.outputs]


# ---------------------------------------------------------------------------
# the program cache
# ---------------------------------------------------------------------------

_programs: dict[tuple, GradientProgram] = {}
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}


def gradient_program(key: tuple, build: Callable[[], GradientProgram]) -> GradientProgram:
    """The cached program for ``key``, built by ``build()`` on a miss."""
    program = _programs.get(key)
    if program is not None:
        _stats["hits"] += 1
        return program
    with _lock:
        program = _programs.get(key)
        if program is None:
            _stats["misses"] += 1
            program = build()
            _programs[key] = program
    return program


def stats() -> dict[str, int]:
    """Counts of program-cache hits and misses since start-up (or ``clear_cache``)."""
    return dict(_stats, programs=len(_programs))


def clear_cache() -> None:
    """Forget every cached program and zero the counters."""
    with _lock:
        _programs.clear()
        _stats.update(hits=0, misses=0)


def backend() -> str:
    """Which backend runs gradient programs: ``SYMGRAD_BACKEND`` (``interpreter``
    until the numba compiler is enabled)."""
    return os.environ.get("SYMGRAD_BACKEND", "interpreter")

