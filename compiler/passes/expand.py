"""``expand_composites``: ops whose compiled form is a composition of registered ops.

An op with an ``expand`` rule on its :class:`~symgrad_compiler.registry.OpDef`
(``_batch_norm_train``) runs its numpy implementation where values are computed
op by op, but inside a program it is replaced by the graph its rule builds, so
that the passes after this one see ordinary ops: ``simplify`` merges them with
what the gradient computes from the same values, and ``fuse`` puts their
reductions and elementwise work into the loops around them. It runs first.
"""

from __future__ import annotations

from ..expr import Expr
from ..graph import ProgramGraph
from ..ir import Entry, Node
from .rewrite import replace_nodes


def _expanded(node: Node, inputs: tuple[Entry, ...]) -> list[Entry]:
    """The entries of ``node``'s outputs as its op's ``expand`` rule builds them."""
    assert node.op.expand is not None
    built = node.op.expand(*[Expr(e) for e in inputs], **node.attrs)
    return [handle.entry for handle in built]


def expand_composites(graph: ProgramGraph) -> ProgramGraph:
    """Every node whose op has an ``expand`` rule becomes the graph the rule
    builds (see the module docstring)."""
    nodes = graph.nodes()
    if not any(node.op.expand is not None for node in nodes):
        return graph
    return replace_nodes(
        graph, lambda node, inputs: _expanded(node, inputs) if node.op.expand is not None else None
    )
