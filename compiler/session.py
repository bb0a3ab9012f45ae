"""The compiler's session: every piece of state its compilations accumulate, in one object.

A :class:`Session` holds the program cache (programs, limits, counters) and, for
each backend that has any, the state that backend keeps between programs (the
numba backend: its loaded kernel modules with their counters, and its thread
pool). ``compiler.stats()``, ``cached_program`` and ``clear_cache`` act on the
current session. Tests run a block in a new, empty one, as
:func:`~symgrad_compiler.settings.override` does for settings::

    with session.fresh():
        ...  # no programs, no kernel modules loaded, every counter at zero

What is *not* here is fixed at import (the op registry, the lowering tables,
settings read once) or process-wide by nature (the one background compiler).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from . import settings
from .graph import ProgramGraph

State = TypeVar("State")

_NODE_BYTES = 600  # a Node, its attrs dict, entries and types: measured, roughly

# Generation numbers are unique across sessions, not per session: a caller that
# kept a program under generation g (autograd's step template) must not reuse it
# in a fresh session that happens to count to g as well.
_GENERATIONS = itertools.count()


def program_bytes(program: Any) -> int:
    """An estimate of the memory ``program`` keeps alive: what it declares as its
    ``cache_bytes`` (a replayed function's entry for one signature: itself and the
    results it may keep), else its graph (a compiled program's plan and kernel
    source are of the same order; estimated when the program is stored, before
    they exist, as twice the graph)."""
    declared = getattr(program, "cache_bytes", None)
    if declared is not None:
        return int(declared)
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


class ProgramCache:
    """Compiled programs by key, least recently used first, bounded by an entry
    count and by an estimate of the bytes the programs hold.

    Gradient programs (``backward``) and replay programs (``mx.compile``,
    executors, hybridized blocks) all come from here, so :meth:`stats` counts
    them all and the limits bound them all.

    Beside programs it holds *signature entries* (:meth:`signature`,
    :meth:`keep_signature`): what a replayed function keeps for one input
    signature (which program serves it, the results it may write into again).
    They share the programs' order and limits, so a function called with ever new
    shapes cannot grow memory without bound, and are counted apart
    (``signatures``), not as programs, hits or misses: many signatures share one
    program.
    """

    def __init__(self, entries: int, bytes: int) -> None:
        self._programs: OrderedDict[tuple, Any] = OrderedDict()
        self._sizes: dict[tuple, int] = {}
        self._signatures: set[tuple] = set()  # the keys of signature entries
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        # The program of the latest hit, already last in the LRU order (unless a
        # build stored another since, which _store notes by clearing this).
        self._most_recent: Any = None
        self.limits = {"entries": int(entries), "bytes": int(bytes)}
        self.hits = self.misses = self.evictions = 0
        self.generation = next(_GENERATIONS)

    def fetch(self, key: tuple, build: Callable[[], Any]) -> Any:
        """The program for ``key``, built by ``build()`` on a miss (once, even
        when several threads miss at the same time; threads missing different
        keys build in parallel)."""
        program = self._programs.get(key)
        if program is not None:
            self.hits += 1
            if program is not self._most_recent:  # a training loop hits one program: no rehash
                self._most_recent = program
                try:
                    self._programs.move_to_end(key)
                except KeyError:  # evicted by another thread meanwhile: still valid to run
                    pass
            return program
        with self._lock:
            builder = self._building.setdefault(key, threading.Lock())
        with builder:
            program = self._programs.get(key)
            if program is not None:  # another thread built it while we waited
                self.hits += 1
                return program
            try:
                self.misses += 1
                program = build()
                if _is_cacheable(key):
                    self._store(key, program)
                else:
                    program.reusable = False  # made for one call: nobody may keep it
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return program

    def signature(self, key: tuple) -> Any:
        """The signature entry kept for ``key``, or None (a replayed function's
        call then builds one and keeps it with :meth:`keep_signature`). Neither
        counts as a program's hit or miss. Two methods, not a ``build`` callback:
        this runs on every replayed call that is not the last one's again."""
        entry = self._programs.get(key)
        if entry is not None and entry is not self._most_recent:
            self._most_recent = entry
            try:
                self._programs.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still valid
                pass
        return entry

    def keep_signature(self, key: tuple, entry: Any) -> Any:
        """Keep ``entry`` for ``key`` and return it, or the entry another thread
        kept for it meanwhile."""
        size = program_bytes(entry)
        with self._lock:
            kept = self._programs.get(key)
            if kept is not None:
                return kept
            self._most_recent = None
            self._programs[key] = entry
            self._sizes[key] = size
            self._signatures.add(key)
            self._evict()
        return entry

    def _store(self, key: tuple, program: Any) -> None:
        size = program_bytes(program)
        with self._lock:
            self._most_recent = None
            self._programs[key] = program
            self._sizes[key] = size
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used programs until both limits hold (the caller
        holds the lock). The newest program stays even if alone it exceeds the
        byte limit."""
        total = sum(self._sizes.values())
        entries, most = self.limits["entries"], self.limits["bytes"]
        while len(self._programs) > 1 and (len(self._programs) > entries or total > most):
            old_key, _ = self._programs.popitem(last=False)
            total -= self._sizes.pop(old_key, 0)
            self._signatures.discard(old_key)
            self.evictions += 1

    def set_limits(self, entries: int | None = None, bytes: int | None = None) -> dict[str, int]:
        """Bound the cache (None leaves a limit unchanged), evicting at once;
        returns the previous limits."""
        previous = dict(self.limits)
        for name, value in (("entries", entries), ("bytes", bytes)):
            if value is not None:
                if int(value) < 1:
                    raise ValueError(
                        f"the program cache needs room for at least one program: {name}={value}"
                    )
                self.limits[name] = int(value)
        with self._lock:
            self._evict()
        return previous

    def programs(self) -> list[Any]:
        """The programs held now, least recently used first."""
        with self._lock:
            return [p for k, p in self._programs.items() if k not in self._signatures]

    def signatures(self) -> dict[tuple, Any]:
        """The signature entries held now by key, least recently used first."""
        with self._lock:
            return {k: p for k, p in self._programs.items() if k in self._signatures}

    def stats(self) -> dict[str, int]:
        """Hits, misses and evictions (of programs and signature entries) since the
        cache was made or cleared; the programs and signature entries held now, and
        the bytes estimated for all of them."""
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
                "programs": len(self._programs) - len(self._signatures),
                "signatures": len(self._signatures),
                "program_bytes": sum(self._sizes.values()),
            }

    def clear(self) -> None:
        """Forget every program and signature entry, zero the counters and start a
        new generation."""
        with self._lock:
            self._programs.clear()
            self._sizes.clear()
            self._signatures.clear()
            self._most_recent = None
            self.hits = self.misses = self.evictions = 0
            self.generation = next(_GENERATIONS)


class Session:
    """The compiler's accumulated state: :attr:`programs` (a
    :class:`ProgramCache` bounded by the settings' limits) and each backend's own
    state, made on first use by :meth:`backend_state`."""

    def __init__(self) -> None:
        current_settings = settings.current()
        self.programs = ProgramCache(
            current_settings.program_cache_entries, current_settings.program_cache_bytes
        )
        self._backend_states: dict[str, Any] = {}

    def backend_state(self, name: str, make: Callable[[], State]) -> State:
        """The state a backend keeps under ``name``, made by ``make()`` on first use.

        No lock: two threads racing here may both call ``make`` (cheap by
        contract), and ``setdefault`` keeps one. A lock would also be one more
        thing a forked child could inherit held."""
        state = self._backend_states.get(name)
        if state is None:
            state = self._backend_states.setdefault(name, make())
        return state

    def existing_state(self, name: str) -> Any:
        """The state kept under ``name``, or None if nothing made it yet."""
        return self._backend_states.get(name)

    def close(self) -> None:
        """Release what the backends' states hold (threads, for instance): each
        state with a ``close()`` method is closed, and all are forgotten."""
        states, self._backend_states = list(self._backend_states.values()), {}
        for state in states:
            close = getattr(state, "close", None)
            if close is not None:
                close()


# The session in force: one per process, replaced only for a block by fresh().
_current = Session()


def current() -> Session:
    """The session in force."""
    return _current


@contextlib.contextmanager
def fresh() -> Iterator[Session]:
    """Run the ``with`` block in a new, empty session (for tests), restoring the
    previous one after and closing the new one.

    >>> from symgrad_compiler import cached_program
    >>> with fresh() as inner:
    ...     _ = cached_program(("doctest",), lambda: "a program")
    ...     inner.programs.stats()["misses"]
    1
    >>> current() is inner
    False
    """
    global _current
    saved, _current = _current, Session()
    try:
        yield _current
    finally:
        new, _current = _current, saved
        new.close()
