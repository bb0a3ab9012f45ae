"""Anomaly detection: which recorded op first produced NaN or inf, and where.

With ``mx.autograd.set_detect_anomaly(True)`` (or inside
``with mx.autograd.detect_anomaly():``) every op recorded notes the line of user
code that called it, and ``backward``/``grad`` first replay the graph on the numpy
interpreter: forward values in topological order through the interpreter's
evaluation hook, then the gradient graph the compiler's ``differentiate`` builds,
checked op by op in the order their gradient rules were applied (heads first).
The first node whose output is NaN or inf while its inputs (and, for a gradient,
the incoming gradient) are finite is named, with its call site, in an
:class:`AnomalyError`. Nothing is written to any gradient buffer.

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
from symgrad_compiler.interpret import numpy_apply

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
    """Replay forward and backward on the interpreter; raise :class:`AnomalyError`
    at the first node that turns finite values into NaN or inf.

    The forward runs through the interpreter's evaluation hook, checking each
    node as it is made; the backward is the compiler's own gradient graph
    (:func:`differentiate`, which reports each op's rule as it applies it), run on
    the interpreter and checked rule by rule in the order they were applied."""
    if any(node.freed for node in nodes):
        return  # backward itself reports a freed graph
    values = _checked_forward(heads, nodes)
    _check_input_leaves(nodes, values)
    _check_gradients(heads, wrt, head_grads, values)


def _checked_forward(heads: Sequence[Entry], nodes: Sequence[Node]) -> dict[Node, tuple]:
    """Every node's outputs: recorded values read, pending ones computed, and each
    result checked as it is made."""
    values: dict[Node, tuple] = {node: node.value for node in nodes if not node.inputs}

    def checked(node: Node, args: Sequence[Any]) -> tuple:
        result = node.value
        if result is None:
            computed = numpy_apply(node, args)
            result = computed if isinstance(computed, tuple) else (computed,)
        values[node] = result
        what = _bad(result)
        if what and not _bad(args):
            _raise(node, "forward", what, "its inputs were finite")
        return result

    evaluate(list(heads), dict(values), checked)
    return values


def _check_input_leaves(nodes: Sequence[Node], values: dict[Node, tuple]) -> None:
    """A non-finite input leaf: name the first op that reads it."""
    for node in nodes:
        what = None if node.inputs else _bad(values[node])
        users = [n for n in nodes if any(e.node is node for e in n.inputs)] if what else []
        if users:
            raise AnomalyError(
                f"an input of shape {node.types[0].shape} holds {what}; "
                f"it is first read by {_describe(users[0])}",
                users[0].op.name,
                site(users[0]),
                "forward",
            )


def _check_gradients(
    heads: Sequence[Entry],
    wrt: Sequence[Node],
    head_grads: Sequence[Any],
    values: dict[Node, tuple],
) -> None:
    """Differentiate the graph, run its gradient graph on the interpreter, and name
    the first op (in the order the rules were applied) whose rule turned finite
    output gradients and values into non-finite input gradients."""
    seeds = [variable(head.shape, head.dtype) for head in heads]
    given = dict(values)
    for seed, head, grad in zip(seeds, heads, head_grads):
        given[seed] = (np.ones_like(values[head.node][head.index]) if grad is None else grad,)
    rules: list[tuple[Node, list, tuple]] = []
    try:
        differentiate(
            list(heads),
            [Entry(seed, 0) for seed in seeds],
            [Entry(node, 0) for node in wrt],
            on_rule=lambda node, incoming, returned: rules.append((node, incoming, returned)),
        )
    except GraphError:
        return  # an op without a gradient rule: backward itself says so
    wanted = [
        g.entry for _, incoming, returned in rules for g in (*incoming, *returned) if g is not None
    ]
    with np.errstate(all="ignore"):  # a bad value is reported below, by op
        computed = dict(zip(wanted, evaluate(wanted, given)))
    for node, incoming, returned in rules:
        what = _bad([computed[g.entry] for g in returned if g is not None])
        finite_before = not _bad([computed[g.entry] for g in incoming if g is not None])
        if what and finite_before and not _bad(values[node]):
            _raise(node, "gradient", what, "its inputs, outputs and incoming gradient were finite")


__all__ = ["AnomalyError", "detect_anomaly", "is_anomaly_enabled", "set_detect_anomaly"]
