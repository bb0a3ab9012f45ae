"""Reverse-mode symbolic differentiation: one generic walk over the graph.

Every gradient is built from registered ops, so the result is an ordinary graph
that can be simplified, compiled, run, or differentiated again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from .expr import Expr
from .ir import Entry, GraphError, Node, topo_order
from .ops.common import F


def _total(parts: list[Expr] | None) -> Expr | None:
    return functools.reduce(F.elemwise_add, parts) if parts else None


def differentiate(
    heads: Sequence[Entry],
    head_grads: Sequence[Entry],
    wrt: Sequence[Entry],
    on_rule: Callable[[Node, list[Expr | None], tuple[Expr | None, ...]], None] | None = None,
) -> list[Entry | None]:
    """Gradients of ``heads`` (seeded with ``head_grads``) with respect to ``wrt``.

    Only nodes on a path from a ``wrt`` entry to a head are visited; ops without
    a gradient (``differentiable=False``) stop the walk. Contributions to a shared
    entry are summed, and an input that was broadcast gets its gradient summed back
    to its own shape. Returns None for an entry no head depends on. ``on_rule``
    (if given) sees each node, its output gradients and its rule's results.
    """
    order = topo_order(heads)
    targets = {id(entry.node) for entry in wrt}
    on_path: set[int] = set()
    for node in order:
        if id(node) in targets or (
            node.op.differentiable and any(id(e.node) in on_path for e in node.inputs)
        ):
            on_path.add(id(node))

    contributions: dict[tuple[int, int], list[Expr]] = {}
    for head, grad in zip(heads, head_grads):
        contributions.setdefault((id(head.node), head.index), []).append(Expr(grad))

    for node in reversed(order):
        if id(node) not in on_path or not node.inputs:
            continue
        grads = [_total(contributions.get((id(node), i))) for i in range(node.num_outputs)]
        if all(g is None for g in grads):
            continue
        if node.op.grad is None:
            raise GraphError(f"op {node.op.name!r} ({node.name}) has no gradient rule")
        outputs = [Expr(Entry(node, i)) for i in range(node.num_outputs)]
        grad_arg: Expr | tuple[Expr, ...] | None
        out_arg: Expr | tuple[Expr, ...]
        if node.num_outputs == 1:
            grad_arg, out_arg = grads[0], outputs[0]
        else:
            grad_arg = tuple(
                g if g is not None else F.zeros_like(out) for g, out in zip(grads, outputs)
            )
            out_arg = tuple(outputs)
        input_grads = node.op.grad(
            grad_arg, *(Expr(e) for e in node.inputs), out=out_arg, **node.attrs
        )
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if on_rule is not None:
            on_rule(node, grads, input_grads)
        for entry, grad in zip(node.inputs, input_grads):
            if grad is None or id(entry.node) not in on_path:
                continue
            if grad.shape != entry.shape:
                grad = F._unbroadcast(grad, Expr(entry))
            contributions.setdefault((id(entry.node), entry.index), []).append(grad)

    results: list[Entry | None] = []
    for entry in wrt:
        total = _total(contributions.get((id(entry.node), entry.index)))
        results.append(None if total is None else total.entry)
    return results
