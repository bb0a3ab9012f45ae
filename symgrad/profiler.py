"""``mx.profiler``: MXNet 1.x's profiler, timing every op a script runs.

``set_config(filename=..., aggregate_stats=True)``, ``set_state('run')``, the
script, ``set_state('stop')``, then ``dump()`` writes a Chrome tracing file
(open it at ``chrome://tracing`` or in Perfetto) and ``dumps()`` returns a table
of every op's count and total, minimum, maximum and mean time, as MXNet's do.

What an op is here: an op computed at once (outside ``autograd.record``), and
each step of a program the backend runs, a node of the interpreter or one
kernel of a compiled program (a fused loop shows as ``_fused(relu,...)``, the
ops it computes). While the profiler runs, compiled programs run step by step
instead of as one call, so that each step has a time of its own: a profiled
run is slower than an unprofiled one, as under MXNet's profiler. Domains,
tasks, frames, events, counters and markers of the user's own go into the same
file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from symgrad_compiler import profiling

from .base import MXNetError

__all__ = [
    "Counter",
    "Domain",
    "Event",
    "Frame",
    "Marker",
    "Task",
    "dump",
    "dump_profile",
    "dumps",
    "pause",
    "profiler_set_config",
    "profiler_set_state",
    "resume",
    "scope",
    "set_config",
    "set_state",
]

# MXNet's configuration keys and their defaults
_DEFAULTS: dict[str, Any] = {
    "filename": "profile.json",
    "profile_all": False,
    "profile_symbolic": True,
    "profile_imperative": True,
    "profile_memory": True,
    "profile_api": True,
    "continuous_dump": False,
    "dump_period": 1.0,
    "aggregate_stats": False,
    "profile_process": "worker",
}
_SORT_KEYS = ("total", "avg", "min", "max", "count")


class _Recorder:
    """The events of this process's profile, and whether it records now."""

    def __init__(self) -> None:
        self.config = dict(_DEFAULTS)
        self.running = False
        self.paused = False
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.origin = time.perf_counter()  # timestamps count from here
        self.scope = ""

    def recording(self) -> bool:
        return self.running and not self.paused

    def add(self, event: dict[str, Any]) -> None:
        event.setdefault("pid", os.getpid())
        event.setdefault("tid", threading.get_ident())
        with self.lock:
            self.events.append(event)

    def span(self, name: str, category: str, start: float, end: float) -> None:
        """A complete event from ``start`` to ``end`` (perf_counter seconds)."""
        self.add(
            {
                "name": self.scope + name,
                "cat": category,
                "ph": "X",
                "ts": (start - self.origin) * 1e6,
                "dur": (end - start) * 1e6,
            }
        )

    def now(self) -> float:
        return (time.perf_counter() - self.origin) * 1e6

    def listen(self) -> None:
        """Have the backends report the steps of programs, and the ndarray layer
        the ops it computes at once, while recording them."""
        global imperative
        config, on = self.config, self.recording()
        symbolic = on and (config["profile_all"] or config["profile_symbolic"])
        imperative = on and bool(config["profile_all"] or config["profile_imperative"])
        profiling.set_listener(self._operator if symbolic else None)

    def _operator(self, name: str, category: str, start: float, end: float) -> None:
        if self.recording():
            self.span(name, category, start, end)


_recorder = _Recorder()
# whether ops computed at once (outside recording) are timed: read by the ndarray
# layer on every such op, so a plain module attribute
imperative = False


def record_op(name: str, start: float) -> None:
    """Record an op computed at once, from ``start`` (a perf_counter reading)."""
    if _recorder.recording():
        _recorder.span(name, "operator", start, time.perf_counter())


def set_config(**kwargs: Any) -> None:
    """Configure the profiler (keyword arguments only, as MXNet's).

    Parameters
    ----------
    filename : str
        The file ``dump`` writes (default ``'profile.json'``).
    profile_all : bool
        Profile everything (default False).
    profile_symbolic, profile_imperative : bool
        Time the steps of programs, and the ops computed at once (default True).
    profile_memory, profile_api : bool
        Accepted for MXNet's scripts; symgrad records no memory or C API events.
    continuous_dump : bool
        Accepted; ``dump`` writes the file when called.
    dump_period : float
        Accepted (seconds between continuous dumps).
    aggregate_stats : bool
        Keep the statistics ``dumps`` reports (default False; symgrad keeps them
        either way).
    profile_process : str
        ``'worker'`` (the only process symgrad has; ``'server'`` is accepted).
    """
    unknown = sorted(set(kwargs) - set(_DEFAULTS))
    if unknown:
        raise MXNetError(
            f"profiler.set_config: unknown argument {unknown[0]!r}; the arguments are "
            f"{', '.join(sorted(_DEFAULTS))}"
        )
    _recorder.config.update(kwargs)
    _recorder.listen()


def profiler_set_config(mode: str = "symbolic", filename: str = "profile.json") -> None:
    """MXNet's deprecated form of :func:`set_config`: ``mode`` ``'symbolic'`` or
    ``'all'``."""
    warnings.warn(
        "profiler.profiler_set_config() is deprecated. Please use profiler.set_config() instead",
        DeprecationWarning,
        stacklevel=2,
    )
    set_config(profile_all=mode == "all", filename=filename)


def set_state(state: str = "stop", profile_process: str = "worker") -> None:
    """Start (``'run'``) or stop (``'stop'``) recording."""
    if state not in ("run", "stop"):
        raise KeyError(f"profiler.set_state: state must be 'run' or 'stop', got {state!r}")
    _recorder.running = state == "run"
    _recorder.paused = False
    _recorder.listen()


def profiler_set_state(state: str = "stop") -> None:
    """MXNet's deprecated form of :func:`set_state`."""
    warnings.warn(
        "profiler.profiler_set_state() is deprecated. Please use profiler.set_state() instead",
        DeprecationWarning,
        stacklevel=2,
    )
    set_state(state)


def pause(profile_process: str = "worker") -> None:
    """Stop recording for a while, the state kept (see :func:`resume`)."""
    _recorder.paused = True
    _recorder.listen()


def resume(profile_process: str = "worker") -> None:
    """Record again after :func:`pause`."""
    _recorder.paused = False
    _recorder.listen()


def dump(finished: bool = True, profile_process: str = "worker") -> None:
    """Write every event recorded so far to the configured file, in Chrome's
    tracing format. ``finished``: accepted, as MXNet's (no dump follows)."""
    with _recorder.lock:
        events = list(_recorder.events)
    with open(_recorder.config["filename"], "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


def dump_profile() -> None:
    """MXNet's deprecated form of :func:`dump`."""
    warnings.warn(
        "profiler.dump_profile() is deprecated. Please use profiler.dump() instead",
        DeprecationWarning,
        stacklevel=2,
    )
    dump(True)


def _statistics() -> dict[str, dict[str, dict[str, float]]]:
    """Per category, per name: the count and total, min, max and mean (ms)."""
    with _recorder.lock:
        events = [e for e in _recorder.events if e["ph"] == "X"]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for event in events:
        ms = event["dur"] / 1e3
        row = table.setdefault(event["cat"], {}).setdefault(
            event["name"], {"count": 0, "total": 0.0, "min": ms, "max": ms}
        )
        row["count"] += 1
        row["total"] += ms
        row["min"] = min(row["min"], ms)
        row["max"] = max(row["max"], ms)
    for rows in table.values():
        for row in rows.values():
            row["avg"] = row["total"] / row["count"]
    return table


def dumps(
    reset: bool = False, format: str = "table", sort_by: str = "total", ascending: bool = False
) -> str:
    """The statistics of every op and user span recorded: per category, each
    name's count and total, minimum, maximum and mean time in milliseconds, as a
    table (``format='table'``) or JSON (``'json'``), sorted by ``sort_by``
    (``'total'``, ``'avg'``, ``'min'``, ``'max'`` or ``'count'``). ``reset``
    drops the events recorded so far afterwards."""
    if format not in ("table", "json"):
        raise ValueError(f"profiler.dumps: format must be 'table' or 'json', got {format!r}")
    if sort_by not in _SORT_KEYS:
        raise ValueError(
            f"profiler.dumps: sort_by must be one of {', '.join(_SORT_KEYS)}, got {sort_by!r}"
        )
    table = _statistics()
    if reset:
        with _recorder.lock:
            _recorder.events.clear()
    if format == "json":
        keys = {"count": "Count", "total": "Total", "min": "Min", "max": "Max", "avg": "Avg"}
        time_table = {
            category: {name: {keys[k]: v for k, v in row.items()} for name, row in rows.items()}
            for category, rows in table.items()
        }
        return json.dumps({"Time": time_table, "Unit": {"Time": "ms"}}, indent=4)
    lines = ["Profile Statistics:", "\tNote that times are in milliseconds (ms).", ""]
    header = ("Name", "Total Count", "Time (ms)", "Min Time (ms)", "Max Time (ms)", "Avg Time (ms)")
    width = max([len(header[0])] + [len(name) for rows in table.values() for name in rows])
    for category in sorted(table):
        rows = table[category]
        lines += [category, "=" * len(category)]
        lines.append(f"{header[0]:<{width}}" + "".join(f"{h:>16}" for h in header[1:]))
        lines.append(f"{'-' * 4:<{width}}" + "".join(f"{'-' * len(h):>16}" for h in header[1:]))
        order = sorted(rows, key=lambda name: rows[name][sort_by], reverse=not ascending)
        for name in order:
            r = rows[name]
            lines.append(
                f"{name:<{width}}{r['count']:>16d}{r['total']:>16.4f}{r['min']:>16.4f}"
                f"{r['max']:>16.4f}{r['avg']:>16.4f}"
            )
        lines.append("")
    return "\n".join(lines)


@contextlib.contextmanager
def scope(name: str = "<unk>:", append_mode: bool = False) -> Iterator[None]:
    """Within the block, every op's name in the profile starts with ``name``
    (after the enclosing scope's, with ``append_mode``)."""
    before = _recorder.scope
    _recorder.scope = (before if append_mode else "") + name
    try:
        yield
    finally:
        _recorder.scope = before


class Domain:
    """A named group of the user's own tasks, frames, counters and markers: its
    name is their category in the profile."""

    def __init__(self, name: str):
        self.name = name

    def __str__(self) -> str:
        return self.name

    def new_task(self, name: str) -> Task:
        """A :class:`Task` in this domain."""
        return Task(self, name)

    def new_frame(self, name: str) -> Frame:
        """A :class:`Frame` in this domain."""
        return Frame(self, name)

    def new_counter(self, name: str, value: int | None = None) -> Counter:
        """A :class:`Counter` in this domain."""
        return Counter(self, name, value)

    def new_marker(self, name: str) -> Marker:
        """A :class:`Marker` in this domain."""
        return Marker(self, name)


class _Span:
    """A stretch of the user's own, recorded from ``start()`` to ``stop()``."""

    _category = "event"

    def __init__(self, name: str, category: str | None = None):
        self.name = name
        self.category = category or self._category
        self._start: float | None = None

    def start(self) -> None:
        """Begin the span."""
        self._start = time.perf_counter()

    def stop(self) -> None:
        """End the span and record it (while the profiler records)."""
        if self._start is None:
            raise MXNetError(f"profiler: {self.name!r} stopped before it was started")
        if _recorder.recording():
            _recorder.span(self.name, self.category, self._start, time.perf_counter())
        self._start = None

    def __str__(self) -> str:
        return self.name


class Task(_Span):
    """A task of ``domain``: ``start()`` ... ``stop()``."""

    def __init__(self, domain: Domain, name: str):
        super().__init__(name, domain.name)
        self.domain = domain


class Frame(_Span):
    """A frame of ``domain`` (an iteration, say): ``start()`` ... ``stop()``."""

    def __init__(self, domain: Domain, name: str):
        super().__init__(name, domain.name)
        self.domain = domain


class Event(_Span):
    """A span of the user's own outside any domain: ``start()`` ... ``stop()``."""

    def __init__(self, name: str):
        super().__init__(name)


class Counter:
    """A named value of ``domain`` over time, recorded at each change."""

    def __init__(self, domain: Domain, name: str, value: int | None = None):
        self.domain, self.name = domain, name
        self.value = 0
        if value is not None:
            self.set_value(value)

    def set_value(self, value: int) -> None:
        """Set the counter to ``value``."""
        self.value = value
        if _recorder.recording():
            _recorder.add(
                {
                    "name": self.name,
                    "cat": self.domain.name,
                    "ph": "C",
                    "ts": _recorder.now(),
                    "args": {self.name: value},
                }
            )

    def increment(self, delta: int = 1) -> None:
        """Add ``delta`` to the counter."""
        self.set_value(self.value + delta)

    def decrement(self, delta: int = 1) -> None:
        """Subtract ``delta`` from the counter."""
        self.set_value(self.value - delta)

    def __iadd__(self, delta: int) -> Counter:
        self.increment(delta)
        return self

    def __isub__(self, delta: int) -> Counter:
        self.decrement(delta)
        return self

    def __str__(self) -> str:
        return self.name


_MARK_SCOPES = {"global": "g", "process": "p", "thread": "t", "task": "t", "marker": "t"}


class Marker:
    """An instant of ``domain`` marked in the profile."""

    def __init__(self, domain: Domain, name: str):
        self.domain, self.name = domain, name

    def mark(self, scope: str = "process") -> None:
        """Record the instant; ``scope``: 'global', 'process', 'thread', 'task' or
        'marker'."""
        if scope not in _MARK_SCOPES:
            raise ValueError(
                f"profiler.Marker.mark: scope must be one of {', '.join(_MARK_SCOPES)}, "
                f"got {scope!r}"
            )
        if _recorder.recording():
            _recorder.add(
                {
                    "name": self.name,
                    "cat": self.domain.name,
                    "ph": "i",
                    "s": _MARK_SCOPES[scope],
                    "ts": _recorder.now(),
                }
            )
