"""Deferred values while recording.

Inside ``autograd.record()`` an op whose inputs have history is only added to
the graph: its value is computed when somebody reads it, or by the compiled
program that ``backward`` runs, which computes forward values and gradients in
one fused pass. Outside recording everything computes eagerly.

Arrays whose values are still pending are tracked weakly, so that an in-place
write to any array first computes every pending value (otherwise a pending value
would later read the new data). NDArray's ``==`` is elementwise, so the tracking
is a dict from id to weak reference rather than a WeakSet.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from compiler import Entry, Node

from .base import MXNetError

if TYPE_CHECKING:
    from .ndarray.ndarray import NDArray

_pending: dict[int, weakref.ref] = {}


def track(array: "NDArray") -> weakref.ref:
    """Note a deferred array; returns the weak reference kept for it."""
    key = id(array)
    pending = _pending  # bound here: module globals are cleared at interpreter exit,
    ref = weakref.ref(array, lambda _ref: pending.pop(key, None))  # before late callbacks
    _pending[key] = ref
    return ref


def untrack(array: "NDArray") -> None:
    """The array's value is known now."""
    _pending.pop(id(array), None)


def compute(entry: Entry) -> None:
    """Compute, with numpy, the value of ``entry`` and of every pending node it
    needs, storing them on the nodes."""
    stack = [entry.node]
    order: list[Node] = []
    seen: set[int] = set()
    while stack:  # post-order walk that stops at nodes whose values are known
        node = stack[-1]
        missing = [e.node for e in node.inputs
                   if e.node.value is None and id(e.node) not in seen]
        if missing and id(node) not in seen:
            seen.add(id(node))
            stack.extend(missing)
            continue
        stack.pop()
        if node.value is None and node not in order:
            order.append(node)
    for node in order:
        if node.freed:
            raise MXNetError("the value of this array was never computed and its graph "
                             "has been freed by backward")
        result = node.op.impl(*[e.node.value[e.index] for e in node.inputs], **node.attrs)
        node.value = result if isinstance(result, tuple) else (result,)


def settle_all() -> None:
    """Compute every pending value (before an in-place write)."""
    for ref in list(_pending.values()):
        array = ref()
        if array is not None:
            array._data  # noqa: B018  (reading computes it)
