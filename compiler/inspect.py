"""What the compiler did: counters, and a readable compiled program."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import cache as _cache
from . import program as _program
from .ir import Entry, Node, topo_order


def stats() -> dict[str, Any]:
    """Program-cache hits and misses, kernels compiled or loaded from the disk
    cache, and seconds spent compiling, since start-up (or ``clear_cache``).

    >>> sorted(stats())[:3]
    ['cache_warnings', 'compile_seconds', 'evictions']
    """
    result: dict[str, Any] = dict(_cache.stats())
    # numba is imported only when kernels are needed
    from .backends.numba import disk_cache

    result.update(disk_cache.stats())
    return result


def _entries(target: Any) -> list[Entry]:
    # A frontend Symbol (or anything holding entries) can be explained directly.
    entries = getattr(target, "_entries", target)
    if isinstance(entries, Entry):
        return [entries]
    return list(entries)


def explain(target: Any, wrt: Sequence[Node] | None = None) -> str:
    """The compiled program for the values of ``target`` (entries, or a Symbol)
    and their gradients with respect to ``wrt`` (default: every variable): the
    graph after each pass's work, the fused groups and their generated source."""
    heads = _entries(target)
    nodes = topo_order(heads)
    unknown = [n.name for n in nodes if n.is_variable and any(t.shape is None for t in n.types)]
    if unknown:
        raise ValueError(
            f"explain: the shapes of {unknown} are not known; compile a graph "
            f"with shapes (a recorded graph, or a Symbol after "
            f"`Symbol.gradient(wrt, **shapes)` / variables made with shape=...)"
        )
    wrt = list(wrt) if wrt is not None else [n for n in nodes if n.is_variable]
    position = {id(n): i for i, n in enumerate(nodes)}
    program = _program.Program(
        nodes,
        [(position[id(h.node)], h.index) for h in heads],
        [position[id(n)] for n in wrt],
        [False] * len(heads),
        [(position[id(h.node)], h.index) for h in heads],
        lambda node: False,
        "numba",
    )
    executable = program.run_graph
    assert executable is not None  # compiled=True, the default, compiles the graph
    return executable.explain()
