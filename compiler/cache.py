"""The program cache's public functions: every compiled program of the process,
found by key, in the current session's :class:`~symgrad_compiler.session.ProgramCache`.

Gradient programs (``backward``), replay programs (``mx.compile``, executors,
hybridized blocks) all come from here, so :func:`stats` counts them all and the
limits bound them all, and what replayed functions keep per input signature
(``ProgramCache.signature``, which replay calls directly: it runs on every call).
Least recently used entries are evicted first. The programs and counters belong
to the session (:func:`session.current`), so a test running in
``session.fresh()`` starts from an empty cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import session
from .session import program_bytes

__all__ = [
    "cache_generation",
    "cache_limits",
    "cached_program",
    "clear_cache",
    "count_hit",
    "program_bytes",
    "set_cache_limit",
    "stats",
]


def cached_program(key: tuple, build: Callable[[], Any]) -> Any:
    """The cached program for ``key``, built by ``build()`` on a miss (once, even
    when several threads miss at the same time; threads missing different keys
    build in parallel)."""
    return session.current().programs.fetch(key, build)


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
    return session.current().programs.set_limits(entries, bytes)


def cache_limits() -> dict[str, int]:
    """The program cache's current bounds (``entries`` and ``bytes``)."""
    return dict(session.current().programs.limits)


def stats() -> dict[str, int]:
    """Counts of program-cache hits, misses and evictions since start-up (or
    ``clear_cache``), and the programs, signature entries and estimated bytes held
    now."""
    return session.current().programs.stats()


def clear_cache() -> None:
    """Forget every cached program and zero the counters."""
    session.current().programs.clear()


def cache_generation() -> int:
    """A number that changes whenever the program cache is cleared or replaced
    (a new session). A caller that keeps a program for a structure it recognises
    without a key (autograd's step template) reuses it only while this is
    unchanged, so that clearing the cache means building again for everyone."""
    return session.current().programs.generation


def count_hit() -> None:
    """Count a program found without the cache (kept by a caller for a structure
    it recognised) as a hit, so that :func:`stats` still tells reuse from builds."""
    session.current().programs.hits += 1
