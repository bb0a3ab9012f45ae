"""Anomaly detection: which recorded op first produced NaN or inf, and where.

With ``mx.autograd.set_detect_anomaly(True)`` (or inside
``with mx.autograd.detect_anomaly():``) every op recorded notes the line of user
code that called it, and ``backward``/``grad`` first replay the graph on the numpy
interpreter one node at a time: forward values in topological order, then each
node's gradient in reverse. The first node whose output is NaN or inf while its
inputs (and, for a gradient, the incoming gradient) are finite is named, with its
call site, in an :class:`AnomalyError`. Nothing is written to any gradient buffer.

The mode costs a frame walk per recorded op and a second, slow evaluation per
backward, so it is off by default; when off, recording pays one flag test.

>>> import symgrad as mx
>>> x = mx.nd.array([0.0, 1.0]); x.attach_grad()
>>> with mx.autograd.detect_anomaly():
...     with mx.autograd.record():
...         y = mx.nd.log(x).sum()
...     y.backward()
Traceback (most recent call last):
...
symgrad.anomaly.AnomalyError: the forward of op 'log' ... produced -inf ...
"""

from __future__ import annotations

import linecache
import os
import sys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgrad_compiler import Entry, GraphError, Node, differentiate, evaluate, variable

from . import _state
from .base import MXNetError

_sites: weakref.WeakKeyDictionary[Node, str] = weakref.WeakKeyDictionary()
# Frames in these directories are the library's; the first frame outside is the user's.
_LIBRARY = tuple(
    os.path.dirname(os.path.abspath(m)) + os.sep
    for m in (__file__, sys.modules["symgrad_compiler"].__file__)
)


class AnomalyError(MXNetError):
    """A forward value or a gradient became NaN or inf; ``op``, ``site`` and
    ``phase`` (``'forward'`` or ``'gradient'``) say where."""

    def __init__(self, message: str, op: str | None, site: str | None, phase: str):
        super().__init__(message)
        self.op, self.site, self.phase = op, site, phase


def set_detect_anomaly(enabled: bool) -> bool:
    """Turn anomaly detection on or off (for the whole process); returns the
    previous setting."""
    previous = _state.anomaly
    _state.anomaly = bool(enabled)
    return previous


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on."""
    return _state.anomaly


class detect_anomaly:
    """Context manager that turns anomaly detection on (or off, with
    ``enabled=False``) for its block and restores the previous setting."""

    def __init__(self, enabled: bool = True):
        self._enabled = enabled
        self._saved: list[bool] = []

    def __enter__(self) -> detect_anomaly:
        self._saved.append(set_detect_anomaly(self._enabled))
        return self

    def __exit__(self, *exc: Any) -> None:
        set_detect_anomaly(self._saved.pop())


def note_site(node: Node) -> None:
    """Remember the user's line that recorded ``node`` (called only in anomaly mode)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY):
        frame = frame.f_back
    if frame is None:
        return
    code = frame.f_code
    text = linecache.getline(code.co_filename, frame.f_lineno).strip()
    _sites[node] = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}" + (
        f": {text}" if text else ""
    )


def site(node: Node) -> str | None:
    """The recorded call site of ``node``, if anomaly mode was on when it was made."""
    return _sites.get(node)


# ---------------------------------------------------------------------------
# the node-by-node check
# ---------------------------------------------------------------------------


def _bad(values: Sequence[Any]) -> str | None:
    """'nan', 'inf' or '-inf' for the first non-finite element of ``values``."""
    for value in values:
        array = np.asarray(value)
        if array.dtype.kind not in "fc" or np.all(np.isfinite(array)):
            continue
        flat = array[~np.isfinite(array)].reshape(-1)[0]
        return "nan" if np.isnan(flat) else ("inf" if flat > 0 else "-inf")
    return None


def _describe(node: Node) -> str:
    where = site(node)
    place = (
        f"recorded at {where}"
        if where
        else "recorded before anomaly detection was turned on (no call site)"
    )
    return f"op {node.op.name!r} ({node.name}), {place}"


def _raise(node: Node, phase: str, what: str, detail: str) -> None:
    part = "forward" if phase == "forward" else "gradient"
    raise AnomalyError(
        f"the {part} of {_describe(node)} produced {what} ({detail})",
        node.op.name,
        site(node),
        phase,
    )


def check(
    heads: Sequence[Entry], nodes: Sequence[Node], wrt: Sequence[Node], head_grads: Sequence[Any]
) -> None:
    """Replay forward and backward node by node; raise :class:`AnomalyError` at the
    first node that turns finite values into NaN or inf."""
    if any(node.freed for node in nodes):
        return  # backward itself reports a freed graph
    values: dict[int, tuple] = {}

    def checked(node: Node, args: Sequence[Any]) -> tuple:
        # the interpreter's evaluation hook: recorded values are read, pending
        # ones computed, and every result checked as it is made
        result = node.value
        if result is None:
            computed = node.op.impl(*args, **node.attrs)
            result = computed if isinstance(computed, tuple) else (computed,)
        values[id(node)] = result
        what = _bad(result)
        if what and not _bad(args):
            _raise(node, "forward", what, "its inputs were finite")
        return result

    leaves = {node: node.value for node in nodes if not node.inputs}
    values.update({id(node): value for node, value in leaves.items()})
    evaluate(list(heads), leaves, checked)
    for node in nodes:  # a non-finite input leaf: name the first op that reads it
        if not node.inputs and _bad(values[id(node)]):
            users = [n for n in nodes if any(e.node is node for e in n.inputs)]
            raise AnomalyError(
                f"an input of shape {node.types[0].shape} holds {_bad(values[id(node)])}; "
                f"it is first read by {_describe(users[0])}",
                users[0].op.name if users else None,
                site(users[0]) if users else None,
                "forward",
            )

    targets = {id(n) for n in wrt}
    on_path: set[int] = set()
    for node in nodes:
        if id(node) in targets or (
            node.op.differentiable and any(id(e.node) in on_path for e in node.inputs)
        ):
            on_path.add(id(node))
    grads: dict[tuple[int, int], Any] = {}
    for head, given in zip(heads, head_grads):
        seed = np.ones_like(values[id(head.node)][head.index]) if given is None else given
        _accumulate(grads, head, seed)
    for node in reversed(nodes):
        if id(node) not in on_path or not node.inputs:
            continue
        incoming = [grads.get((id(node), i)) for i in range(node.num_outputs)]
        if all(g is None for g in incoming):
            continue
        input_grads = _node_gradients(node, values, incoming)
        what = _bad([g for g in input_grads if g is not None])
        if what and not _bad([g for g in incoming if g is not None]) and not _bad(values[id(node)]):
            _raise(node, "gradient", what, "its inputs, outputs and incoming gradient were finite")
        for entry, grad in zip(node.inputs, input_grads):
            if grad is not None and id(entry.node) in on_path:
                _accumulate(grads, entry, grad)


def _accumulate(grads: dict, entry: Entry, grad: Any) -> None:
    key = (id(entry.node), entry.index)
    grads[key] = grad if key not in grads else grads[key] + grad


def _node_gradients(node: Node, values: dict, incoming: list) -> list:
    """The gradients of one node's inputs, by differentiating a copy of the node
    alone and running that small graph on the interpreter."""
    inputs = [variable(e.shape, e.dtype) for e in node.inputs]
    copy = Node(node.op, node.attrs, tuple(Entry(v, 0) for v in inputs), node.types)
    live = [i for i, g in enumerate(incoming) if g is not None]
    seeds = [variable(node.types[i].shape, node.types[i].dtype) for i in live]
    given = {v: (values[id(e.node)][e.index],) for v, e in zip(inputs, node.inputs)}
    given.update({s: (incoming[i],) for s, i in zip(seeds, live)})
    given[copy] = values[id(node)]
    try:
        outputs = differentiate(
            [Entry(copy, i) for i in live],
            [Entry(s, 0) for s in seeds],
            [Entry(v, 0) for v in inputs],
        )
    except GraphError:
        return [None] * len(inputs)  # no gradient rule: backward itself will say so
    computed = iter(evaluate([o for o in outputs if o is not None], given))
    return [None if o is None else next(computed) for o in outputs]


__all__ = ["AnomalyError", "detect_anomaly", "is_anomaly_enabled", "set_detect_anomaly"]
