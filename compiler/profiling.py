"""Timing what a program runs, op by op, for a frontend's profiler.

A frontend (``symgrad.profiler``) sets a listener while it records. The
backends then report each op they run: the interpreter backend each node, the
numba backend each step of a program (a fused loop, a library op, a fill) with its
start and end (``time.perf_counter`` seconds). While a listener is set, a
compiled program runs step by step instead of as one call, so that each step
has a time of its own (as a profiler's run costs the program some speed).
Nothing is reported, and nothing costs more than one test, while no listener
is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from .ir import Node

# listener(name, category, start, end): one op run, in perf_counter seconds
Listener = Callable[[str, str, float, float], None]

listener: Listener | None = None


def set_listener(new: Listener | None) -> Listener | None:
    """Report every op run to ``new`` from now on (None: to nobody); returns the
    listener it replaces."""
    global listener
    old, listener = listener, new
    return old


def op_name(node: Node) -> str:
    """The name a profile gives a node's run: its op's name, or for a fused loop
    the ops it computes (``_fused(broadcast_add,relu)``), at most eight."""
    if node.op.name != "_fused":
        return node.op.name
    names: list[str] = []
    for inner in node.attrs["body"].nodes():
        if not inner.is_variable and inner.op.name not in names:
            names.append(inner.op.name)
    shown = ",".join(names[:8]) + (",..." if len(names) > 8 else "")
    return f"_fused({shown})"


def report(node: Node, start: float) -> None:
    """Tell the listener (if one is still set) that ``node`` ran from ``start``
    (a ``time.perf_counter()`` reading) until now."""
    current = listener
    if current is not None:
        current(op_name(node), "operator", start, perf_counter())


def timing(apply: Callable[[Node, Sequence[Any]], Any]) -> Callable[[Node, Sequence[Any]], Any]:
    """``apply`` (an interpreter's ``apply(node, args)``), each call reported."""

    def timed(node: Node, args: Sequence[Any]) -> Any:
        start = perf_counter()
        result = apply(node, args)
        report(node, start)
        return result

    return timed
