"""The reference interpreter: run a graph op by op with numpy.

Every compiled result is tested against it, and it runs graphs while their
compiled programs are not ready. ``apply`` lets a frontend execute the same walk
through its own op calls (to record a gradient computation, or keep each value).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any, Protocol

from .ir import Entry, GraphError, Node, topo_order


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
    order = topo_order(outputs, given)
    dead = _dead_after(order, outputs)
    values: dict[Node, tuple] = {}
    for node, done in zip(order, dead):
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


def _dead_after(order: Sequence[Node], outputs: Sequence[Entry]) -> list[list[Node]]:
    """For each node of ``order``, the nodes whose values no later node reads and that
    are not outputs: dropped once it has run, so that a big graph holds only what is
    still needed (a DenseNet step's concatenations and temporaries add up to many GB)."""
    returned = {e.node for e in outputs}
    last: dict[Node, int] = {}
    for k, node in enumerate(order):
        for e in node.inputs:
            last[e.node] = k
    dead: list[list[Node]] = [[] for _ in order]
    for node, k in last.items():
        if node not in returned:
            dead[k].append(node)
    return dead
