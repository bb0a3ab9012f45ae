"""Deferred values while recording.

Inside ``autograd.record()`` an op whose inputs have history is only added to
the graph: its value is computed when somebody reads it, or by the compiled
program that ``backward`` runs, which computes forward values and gradients in
one fused pass. Outside recording everything computes eagerly.

Arrays whose values are still pending are tracked weakly, so that an in-place
write to any array first computes every pending value (otherwise a pending value
would later read the new data). The tracking is a plain list of weak references,
pruned of dead and settled arrays whenever it doubles: recording an op is the hot
path, so it pays one append and nothing else.

Threads share the list. Pruning and settling take a lock and only ever remove the
part of the list they looked at, so an append made by another thread meanwhile is
never lost; and settling tolerates a graph that another thread's ``backward``
frees while it is being read (such a value can never be read anyway).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from symgrad_compiler import Entry, Node

from .base import MXNetError

if TYPE_CHECKING:
    from .ndarray.ndarray import NDArray

_pending: list[weakref.ref] = []
_prune_at = 1024
_lock = threading.Lock()

# Nodes whose computation failed (their error was raised to whoever read them), and
# per thread the node of the last failure: ``wait_all`` raises only failures no read
# has raised yet, as MXNet's ``waitall`` rethrows an error once.
_failed: weakref.WeakSet[Node] = weakref.WeakSet()
_local = threading.local()


def track(array: NDArray) -> weakref.ref:
    """Note a deferred array; returns the weak reference kept for it."""
    ref = weakref.ref(array)
    _pending.append(ref)
    if len(_pending) >= _prune_at:
        _prune()
    return ref


def _prune() -> None:
    global _prune_at
    with _lock:
        count = len(_pending)
        # inlined _is_pending: this runs over thousands of references
        keep = [r for r in _pending[:count] if (a := r()) is not None and a._value is None]
        del _pending[:count]  # appends made while we filtered stay
        _pending.extend(keep)
        _prune_at = max(1024, 2 * len(_pending))


def _is_pending(array: NDArray | None) -> bool:
    return array is not None and array._value is None


def compute(entry: Entry) -> None:
    """Compute, with numpy, the value of ``entry`` and of every pending node it
    needs, storing them on the nodes."""
    stack = [entry.node]
    order: list[Node] = []
    seen: set[int] = set()
    while stack:  # post-order walk that stops at nodes whose values are known
        node = stack[-1]
        missing = [e.node for e in node.inputs if e.node.value is None and id(e.node) not in seen]
        if missing and id(node) not in seen:
            seen.add(id(node))
            stack.extend(missing)
            continue
        stack.pop()
        if node.value is None and node not in order:
            order.append(node)
    for node in order:
        # Read each input's value once: another thread's backward may free the graph.
        values = [e.node.value for e in node.inputs]
        if node.freed or any(value is None for value in values):
            raise MXNetError(
                "the value of this array was never computed and its graph "
                "has been freed by backward"
            )
        try:
            result = node.op.impl(*[v[e.index] for v, e in zip(values, node.inputs)], **node.attrs)
        except Exception:
            _failed.add(node)
            _local.failed = node
            raise
        node.value = result if isinstance(result, tuple) else (result,)


def wait_all() -> None:
    """Compute every pending value (``mx.nd.waitall``), as MXNet's waits for all
    pushed work: each array computes at most once, and a value whose graph a
    ``backward`` freed is skipped (it can never be read).

    Raises
    ------
    MXNetError
        The first error of a failed computation that no read has raised yet, after
        every other pending value was computed. An array whose computation failed
        stays pending: reading it raises again; it is no longer waited on.
    """
    with _lock:
        count = len(_pending)
        refs = _pending[:count]
        del _pending[:count]
    raised_before = set(_failed)
    first: MXNetError | None = None
    for ref in refs:
        array = ref()
        if not _is_pending(array) or _freed(array):
            continue
        _local.failed = None
        try:
            array._data  # noqa: B018  (reading computes it)
        except MXNetError as err:
            if _local.failed not in raised_before:
                first = first or err
    if first is not None:
        raise first


def _freed(array: NDArray) -> bool:
    entry = array._entry
    return entry is None or entry.node.freed


def settle_all() -> None:
    """Compute every pending value (before an in-place write)."""
    with _lock:
        count = len(_pending)
        refs = _pending[:count]
        del _pending[:count]
    for ref in refs:
        array = ref()
        if _is_pending(array):
            try:
                array._data  # noqa: B018  (reading computes it)
            except MXNetError:
                pass  # its graph was freed (by another thread): it can never be read
