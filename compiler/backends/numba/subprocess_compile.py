"""Compiling a program's kernels in a child process, so that numba's seconds of
work never take this process's interpreter lock or its cores from the user's
script.

The background worker (:mod:`.background`) hands a program's plan and example
arguments to :func:`compile_elsewhere`, which sends them to one long-lived
compiler process (started on first use: importing numba there costs about a
second, once). That process rebuilds the plan from the pickled graph, runs it once
as the worker used to (compiling every kernel and the whole-program entry for the
arguments' types) and so writes numba's disk cache; this process then loads the
compiled functions from that cache in milliseconds.

- One compiler process, one program at a time (the worker is one thread).
- Abandoned at exit: :func:`abandon` sends it SIGTERM and does not wait. It ends
  at once, except while numba writes a cache entry (an index, then a data file),
  which it finishes first, so an index never names a data file left unwritten;
  numba writes each file to a temporary name and renames it, so a reader never
  sees half a file either.
- It runs in its own session: a Ctrl-C at the terminal interrupts the user's
  script, never the compilation of the next process's kernels halfway.
- It keeps what numba made for every program it compiled (a DenseNet-121 step
  left it at ~5 GB), so once a job leaves it above :data:`RECYCLE_BYTES`
  resident it is ended, idle, and the next program starts a fresh one.
- Where it cannot help, the caller compiles on its own thread as before: no disk
  cache (``SYMGRAD_CACHE=0``), a graph that cannot be pickled (ops holding user
  callbacks), or a compiler process that cannot start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ... import session, settings
from ...graph import ProgramGraph
from ...ir import Entry, Node, topo_order
from ...ops.fused import FusedBody
from ...registry import OpDef, get_op
from . import disk_cache

if TYPE_CHECKING:
    from .plan import Plan

_LENGTH = struct.Struct("<Q")  # each message: its byte count, then a pickle
# Resident memory of the compiler process past which it is ended after its job
# (a fresh one costs its start, about a second of another core).
RECYCLE_BYTES = 2 << 30


class Outcome(enum.Enum):
    """What :func:`compile_elsewhere` did with a program."""

    DONE = "done"  # compiled there: load from the disk cache here
    FAILED = "failed"  # numba failed there: compiling here fails the same way, with a warning
    UNAVAILABLE = "unavailable"  # not tried: compile here
    DIED = "died"  # the compiler process died on this program: do not compile it here
    ABANDONED = "abandoned"  # this process is exiting


@dataclasses.dataclass
class CompilerProcessStats:
    """This module's share of the session: the compiler process's counters."""

    programs: int = 0
    kernels_compiled: int = 0
    compile_seconds: float = 0.0
    start_seconds: float = 0.0
    recycled: int = 0  # compiler processes ended for their memory


def _stats() -> CompilerProcessStats:
    """The current session's counters (the process itself is one per process, the
    counters, like the kernel modules', belong to the session)."""
    return session.current().backend_state("numba.compiler_process", CompilerProcessStats)


def stats() -> dict[str, Any]:
    """Programs the compiler process compiled, the kernels it compiled (not
    loaded) and the seconds it spent on them, the seconds its starts took, and
    how many compiler processes were ended for their memory, in the current
    session."""
    return dataclasses.asdict(_stats())


# ---------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------


class _GraphPickler(pickle.Pickler):
    """Pickles a program graph by value except its ops, which go by registry
    name (their rules are functions, some of them lambdas), and without the
    runtime state a node may carry (a recorded value, a frontend's tag)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, OpDef):
            return get_op, (obj.name,)
        if isinstance(obj, (ProgramGraph, FusedBody)):
            return _graph_from_rows, (type(obj), *_graph_rows(obj))
        if isinstance(obj, Node):
            return Node, (obj.op, obj.attrs, obj.inputs, obj.types, obj._name)
        return NotImplemented


# A graph (a program, or a fused node's body) goes as a flat list of rows, one per
# node in topological order, whose inputs are row numbers: pickled node by node, a
# chain of a few hundred ops (a DenseNet step has thousands) exceeded Python's
# recursion limit, and such programs compiled on this process's own thread, holding
# its interpreter lock.

Graph = TypeVar("Graph", ProgramGraph, FusedBody)


def _graph_rows(graph: ProgramGraph | FusedBody) -> tuple[list, list[int], list]:
    """``graph`` as (rows, input rows, output (row, index) pairs or None)."""
    inputs = {id(node) for node in graph.inputs}
    order = list(graph.inputs)
    live = [o for o in graph.outputs if o is not None]
    order += [n for n in topo_order(live) if id(n) not in inputs]
    row = {id(node): k for k, node in enumerate(order)}
    rows = [
        (
            node.op,
            node.attrs,
            tuple((row[id(e.node)], e.index) for e in node.inputs),
            node.types,
            node._name,
        )
        for node in order
    ]
    outputs = [None if o is None else (row[id(o.node)], o.index) for o in graph.outputs]
    return rows, list(range(len(graph.inputs))), outputs


def _graph_from_rows(kind: type[Graph], rows: list, inputs: list[int], outputs: list) -> Graph:
    """The graph of class ``kind`` that :func:`_graph_rows` wrote."""
    nodes: list[Node] = []
    for op, attrs, links, types, name in rows:
        nodes.append(Node(op, attrs, tuple(Entry(nodes[k], i) for k, i in links), types, name))
    # (only a program's outputs may be None: a body's never are)
    ends: list[Any] = [None if o is None else Entry(nodes[o[0]], o[1]) for o in outputs]
    return kind([nodes[k] for k in inputs], ends)


def _dumps(message: Any) -> bytes:
    buffer = io.BytesIO()
    _GraphPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return buffer.getvalue()


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive_bytes(stream: IO[bytes]) -> bytes | None:
    """The next message's pickle, or None at the end of the stream."""
    header = _read_exactly(stream, _LENGTH.size)
    if header is None:
        return None
    return _read_exactly(stream, _LENGTH.unpack(header)[0])


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    payload = _receive_bytes(stream)
    return None if payload is None else pickle.loads(payload)


def _read_exactly(stream: IO[bytes], count: int) -> bytes | None:
    parts = []
    while count:
        part = stream.read(count)
        if not part:
            return None
        parts.append(part)
        count -= len(part)
    return b"".join(parts)


# ---------------------------------------------------------------------------
# this process's side
# ---------------------------------------------------------------------------


class _Compiler:
    """The compiler process and its pipes."""

    def __init__(self) -> None:
        start = time.perf_counter()
        # The child imports this very module: the parent's path first, so that a
        # checkout imported through PYTHONPATH or a symlink is the one it uses.
        code = (
            f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}; "
            f"import importlib; importlib.import_module({__name__!r}).main()"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests: IO[bytes] = self.process.stdin
        self.replies: IO[bytes] = self.process.stdout
        hello = _receive(self.replies)
        if not isinstance(hello, dict) or hello.get("module") != os.path.realpath(__file__):
            self.process.kill()
            raise OSError(f"the compiler process did not start ({hello!r})")
        _stats().start_seconds += time.perf_counter() - start

    def ask(self, payload: bytes) -> Any:
        """Send one job; its reply, or None if the process died."""
        try:
            _send(self.requests, payload)
            return _receive(self.replies)
        except (OSError, ValueError):  # a broken pipe, or closed by abandon()
            return None

    def terminate(self) -> None:
        """Ask the process to end (SIGTERM, see the module docstring); never waits."""
        try:
            self.process.terminate()
        except OSError:
            pass


_lock = threading.Lock()
_compiler: _Compiler | None = None
_cannot_start = False  # a compiler process failed to start: use the thread from now on
_closing = False


def _running_compiler() -> _Compiler | None:
    global _compiler, _cannot_start
    if _compiler is not None and _compiler.process.poll() is None:
        return _compiler
    try:
        _compiler = _Compiler()
    except (OSError, ValueError, pickle.UnpicklingError):
        _compiler, _cannot_start = None, True
    return _compiler


def compile_elsewhere(plan: Plan, args: Sequence[Any]) -> Outcome:
    """Have the compiler process compile ``plan``'s module for the types of
    ``args`` (numba's disk cache keeps the result), blocking this thread (not the
    interpreter lock) until it is done. See :class:`Outcome` for what to do next."""
    global _compiler
    if _closing:
        return Outcome.ABANDONED
    if _cannot_start or not plan.module_text or not disk_cache.enabled():
        return Outcome.UNAVAILABLE
    module = disk_cache.load(plan.module_text)  # written here: the child reads this file
    try:
        payload = _dumps(
            (
                dataclasses.asdict(settings.current()),
                plan.graph,
                plan.module_text,
                os.path.realpath(str(module.__file__)),
                list(args),
            )
        )
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return Outcome.UNAVAILABLE  # an op holding a user callback, say
    with _lock:
        compiler = _running_compiler()
        if compiler is None:
            return Outcome.UNAVAILABLE
        reply = compiler.ask(payload)
        if _closing:
            return Outcome.ABANDONED
        if reply is None:
            compiler.terminate()
            _compiler = None
            return Outcome.DIED
        if reply.get("resident_bytes", 0) > RECYCLE_BYTES:  # what numba keeps there
            compiler.terminate()  # idle now: no cache write to interrupt
            _compiler = None
            _stats().recycled += 1
    if "unavailable" in reply:
        return Outcome.UNAVAILABLE
    counts = _stats()
    counts.programs += 1
    counts.kernels_compiled += reply.get("kernels_compiled", 0)
    counts.compile_seconds += reply.get("compile_seconds", 0.0)
    return Outcome.FAILED if "error" in reply else Outcome.DONE


def abandon() -> None:
    """Leave the compilation in progress, if any (at exit): the compiler process
    ends at once, or after the cache write it is in."""
    global _closing
    _closing = True
    compiler = _compiler
    if compiler is not None:
        compiler.terminate()


def _after_fork() -> None:
    """A forked child shares no compiler process with its parent."""
    global _compiler, _lock, _closing
    _compiler, _lock, _closing = None, threading.Lock(), False


os.register_at_fork(after_in_child=_after_fork)


# ---------------------------------------------------------------------------
# the compiler process's side
# ---------------------------------------------------------------------------


class _ExitGuard:
    """The compiler process's SIGTERM handling: end at once, except inside a cache
    write, which ends first. (Blocking the signal would not do: numpy's BLAS
    threads would take it, and its default action ends the process anywhere.)"""

    def __init__(self) -> None:
        self.saving = False
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self.saving:
            self.requested = True
        else:
            self.end()

    @staticmethod
    def end() -> None:
        """End the process by SIGTERM's default action."""
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    @contextlib.contextmanager
    def whole(self) -> Iterator[None]:
        """A block SIGTERM does not cut short: the process ends after it."""
        self.saving = True
        try:
            yield
        finally:
            self.saving = False
            if self.requested:
                self.end()


class _WholeSaves:
    """A numba function's disk cache whose writes SIGTERM cannot cut in two: the
    index and data files of an entry are both written before the process ends."""

    def __init__(self, inner: Any, guard: _ExitGuard):
        self._inner, self._guard = inner, guard

    def save_overload(self, sig: Any, data: Any) -> None:
        """The wrapped cache's save, whole."""
        with self._guard.whole():
            self._inner.save_overload(sig, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _guard_saves(guard: _ExitGuard, *modules: Any) -> None:
    """Wrap the disk cache of every numba function in ``modules`` (see
    :class:`_WholeSaves`); the functions a kernel calls are compiled, and saved,
    through their own dispatchers."""
    from numba.core.dispatcher import Dispatcher

    for module in modules:
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher):
                cache = getattr(value, "_cache", None)
                if cache is not None and not isinstance(cache, _WholeSaves):
                    value._cache = _WholeSaves(cache, guard)  # type: ignore[attr-defined]


def _compile_job(job: tuple, guard: _ExitGuard) -> dict[str, Any]:
    """Compile one program (see :func:`compile_elsewhere`); the reply's keys say
    what happened: ``unavailable`` (this process would not write the files the
    parent reads), ``error``, else the counts."""
    from . import blas
    from .executable import compile_entry, warm_kernels
    from .plan import Plan

    fields, graph, text, path, args = job
    with settings.override(**fields):
        plan = Plan(graph)
        if plan.module_text != text:
            return {"unavailable": "the generated module differs in the compiler process"}
        module = disk_cache.load(text)
        if os.path.realpath(str(module.__file__)) != path:
            return {"unavailable": f"the generated module is at {module.__file__}, not {path}"}
        _guard_saves(guard, module, blas)
        before = disk_cache.stats()
        reply: dict[str, Any] = {}
        try:
            warm_kernels(plan, args)
            compile_entry(plan, args)
        except Exception as err:  # noqa: BLE001  (reported to the parent)
            reply["error"] = f"{type(err).__name__}: {err}"
        after = disk_cache.stats()
        reply["kernels_compiled"] = after["kernels_compiled"] - before["kernels_compiled"]
        reply["compile_seconds"] = after["compile_seconds"] - before["compile_seconds"]
        return reply


def _kept_bytes() -> int:
    """This process's resident memory once a job's data is gone: what numba keeps
    (0 where /proc does not say). The C allocator is asked to give back the
    freed memory it holds (this backend's policy keeps it: see memory.py), so
    that a job's arguments and warm run do not count."""
    import gc

    from .memory import trim

    gc.collect()
    trim()
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def main() -> None:
    """The compiler process: answer jobs from stdin until it closes."""
    import warnings

    # The parent reports problems when it loads the kernels; stdout carries replies
    # only (anything printed goes to stderr instead).
    warnings.simplefilter("ignore")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    # numba, the plan and the lowerings, before "ready" (the executable imports the
    # plan and the entry generator only when a program first compiles)
    from . import entry, executable, plan  # noqa: F401

    guard = _ExitGuard()

    _send(replies, pickle.dumps({"module": os.path.realpath(__file__)}))
    while True:
        payload = _receive_bytes(requests)
        if payload is None:
            return
        try:
            job = pickle.loads(payload)
        except Exception as err:  # noqa: BLE001  (an attr this process cannot rebuild)
            reply: dict[str, Any] = {"unavailable": f"{type(err).__name__}: {err}"}
        else:
            try:
                reply = _compile_job(job, guard)
            except Exception as err:  # noqa: BLE001
                reply = {"error": f"{type(err).__name__}: {err}"}
            del job
        del payload
        reply["resident_bytes"] = _kept_bytes()
        _send(replies, pickle.dumps(reply))


__all__ = ["Outcome", "abandon", "compile_elsewhere", "main", "stats"]
