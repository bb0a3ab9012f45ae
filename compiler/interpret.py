"""The reference interpreter: run a graph op by op with numpy.

Every compiled result is tested against it, and it runs graphs while their
compiled programs are not ready. ``apply`` lets a frontend execute the same walk
through its own op calls (to record a gradient computation, or keep each value).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any, Protocol

from .graph import walk_dropping
from .ir import Entry, GraphError, Node


class KnownValues(Container, Protocol):
    """Known outputs of nodes, by node (a dict is one): ``node in known``, ``known[node]``."""

    def __getitem__(self, node: Node, /) -> tuple: ...


def numpy_apply(node: Node, args: Sequence[Any]) -> Any:
    """Run one node's numpy implementation."""
    return node.op.impl(*args, **node.attrs)


def evaluate(
    outputs: Sequence[Entry],
    given: KnownValues,
    apply: Callable[[Node, Sequence[Any]], Any] = numpy_apply,
) -> list[Any]:
    """Values of ``outputs``, computing every node not in ``given`` from its inputs.

    ``given`` maps nodes (variables, or any node whose outputs are already known)
    to the tuple of their output values; the walk stops at them.
    """
    values: dict[Node, tuple] = {}
    for node, done in walk_dropping(outputs, given):
        if node in given:
            values[node] = given[node]
            continue
        if node.is_variable:
            raise GraphError(f"no value given for variable {node.name!r}")
        result = apply(node, [values[e.node][e.index] for e in node.inputs])
        values[node] = result if isinstance(result, tuple) else (result,)
        for finished in done:
            del values[finished]
    return [values[e.node][e.index] for e in outputs]
