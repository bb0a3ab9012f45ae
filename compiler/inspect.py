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
    and their gradients with respect to ``wrt`` (default: every variable): a
    header naming each program output (``output 0: gradient w.r.t. x``, ...,
    ``output k: value of loss_output``; the program returns the gradients first,
    in ``wrt``'s order, then the values, in the heads' order), then the graph
    after each pass's work, the fused groups and their generated source."""
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
    return _output_header(target, heads, wrt) + executable.explain()


def _head_names(target: Any, heads: list[Entry]) -> list[str]:
    # A frontend Symbol names its outputs as MXNet does (``fc1_output``); bare
    # entries are named by their node (and output index when it has several).
    list_outputs = getattr(target, "list_outputs", None)
    if callable(list_outputs):
        names = list(list_outputs())
        if len(names) == len(heads):
            return names
    return [h.node.name if len(h.node.types) == 1 else f"{h.node.name}[{h.index}]" for h in heads]


def _output_header(target: Any, heads: list[Entry], wrt: Sequence[Node]) -> str:
    """One line per program output, in the order the program returns them."""
    labels = [f"gradient w.r.t. {node.name}" for node in wrt]
    labels += [f"value of {name}" for name in _head_names(target, heads)]
    lines = [f"# output {i}: {label}" for i, label in enumerate(labels)]
    return "\n".join(lines) + "\n\n"
