"""The program cache: every compiled program of the process, found by key.

Gradient programs (``backward``), replay programs (``mx.compile``, executors,
hybridized blocks) all come from here, so :func:`stats` counts them all and the
limits bound them all. Least recently used programs are evicted first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import settings
from .graph import ProgramGraph

# ---------------------------------------------------------------------------

# Least recently used first. Bounded by an entry count and by an estimate of the
# bytes the programs hold (graph nodes, generated source), both configurable.
_programs: OrderedDict[tuple, Any] = OrderedDict()
_sizes: dict[tuple, int] = {}
_lock = threading.Lock()
_building: dict[tuple, threading.Lock] = {}
_stats = {"hits": 0, "misses": 0, "evictions": 0}
_limits = {
    "entries": settings.current().program_cache_entries,
    "bytes": settings.current().program_cache_bytes,
}
_NODE_BYTES = 600  # a Node, its attrs dict, entries and types: measured, roughly


def program_bytes(program: Any) -> int:
    """An estimate of the memory ``program`` keeps alive: its graph (a compiled
    program's plan and kernel source are of the same order; estimated when the
    program is stored, before they exist, as twice the graph)."""
    graph = getattr(program, "graph", None)
    count = len(graph.nodes()) if isinstance(graph, ProgramGraph) else 1
    compiled = getattr(program, "run_graph", None) is not None
    return _NODE_BYTES * count * (2 if compiled else 1)


def _is_cacheable(key: Any) -> bool:
    """False when the key holds an object marked ``cacheable = False`` (a user
    callback made per call): such a program can never be hit again, and caching it
    would keep the callback, and what it saved, alive. Paid on misses only."""
    stack = [key]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif getattr(item, "cacheable", True) is False:
            return False
    return True


def cached_program(key: tuple, build: Callable[[], Any]) -> Any:
    """The cached program for ``key``, built by ``build()`` on a miss (once, even
    when several threads miss at the same time; threads missing different keys
    build in parallel)."""
    global _most_recent
    program = _programs.get(key)
    if program is not None:
        _stats["hits"] += 1
        if program is not _most_recent:  # a training loop hits one program: no rehash
            _most_recent = program
            try:
                _programs.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still valid to run
                pass
        return program
    with _lock:
        builder = _building.setdefault(key, threading.Lock())
    with builder:
        program = _programs.get(key)
        if program is not None:  # another thread built it while we waited
            _stats["hits"] += 1
            return program
        try:
            _stats["misses"] += 1
            program = build()
            if _is_cacheable(key):
                _store(key, program)
            else:
                program.reusable = False  # made for one call: nobody may keep it
        finally:
            with _lock:
                _building.pop(key, None)
    return program


# The program of the latest hit, already last in the LRU order (unless a build
# stored another since, which _store notes by clearing this).
_most_recent: Any = None


def _store(key: tuple, program: Any) -> None:
    global _most_recent
    size = program_bytes(program)
    with _lock:
        _most_recent = None
        _programs[key] = program
        _sizes[key] = size
        _evict()


def _evict() -> None:
    """Drop least recently used programs until both limits hold (caller holds _lock).
    The newest program stays even if alone it exceeds the byte limit."""
    total = sum(_sizes.values())
    while len(_programs) > 1 and (len(_programs) > _limits["entries"] or total > _limits["bytes"]):
        old_key, _ = _programs.popitem(last=False)
        total -= _sizes.pop(old_key, 0)
        _stats["evictions"] += 1


def set_cache_limit(entries: int | None = None, bytes: int | None = None) -> dict[str, int]:
    """Bound the program cache to ``entries`` programs and about ``bytes`` bytes
    (None leaves a limit unchanged); evicts least recently used programs at once.
    Returns the previous limits. The defaults come from
    ``SYMGRAD_PROGRAM_CACHE_ENTRIES`` (1024) and ``SYMGRAD_PROGRAM_CACHE_BYTES``
    (256 MiB).

    >>> previous = set_cache_limit(entries=10)
    >>> cache_limits()["entries"]
    10
    >>> _ = set_cache_limit(**previous)
    """
    previous = dict(_limits)
    for name, value in (("entries", entries), ("bytes", bytes)):
        if value is not None:
            if int(value) < 1:
                raise ValueError(
                    f"the program cache needs room for at least one program: {name}={value}"
                )
            _limits[name] = int(value)
    with _lock:
        _evict()
    return previous


def cache_limits() -> dict[str, int]:
    """The program cache's current bounds (``entries`` and ``bytes``)."""
    return dict(_limits)


def stats() -> dict[str, int]:
    """Counts of program-cache hits, misses and evictions since start-up (or
    ``clear_cache``), and the programs and estimated bytes held now."""
    with _lock:
        return dict(_stats, programs=len(_programs), program_bytes=sum(_sizes.values()))


def clear_cache() -> None:
    """Forget every cached program and zero the counters."""
    global _generation
    with _lock:
        _programs.clear()
        _sizes.clear()
        _stats.update(hits=0, misses=0, evictions=0)
        _generation += 1


# clear_cache() calls so far. A caller that keeps a program for a structure it
# recognises without a key (autograd's step template) reuses it only while this
# is unchanged, so that clearing the cache means building again for everyone.
_generation = 0


def cache_generation() -> int:
    """How many times :func:`clear_cache` has run (see ``_generation``)."""
    return _generation


def count_hit() -> None:
    """Count a program found without the cache (kept by a caller for a structure
    it recognised) as a hit, so that :func:`stats` still tells reuse from builds."""
    _stats["hits"] += 1
