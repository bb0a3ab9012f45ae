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
    rebuilt: dict[tuple[int, int], Entry] = {}
    for node in nodes:
        if node.is_variable:
            continue
        inputs = tuple(rebuilt.get((id(e.node), e.index), e) for e in node.inputs)
        if node.op.expand is not None:
            for k, entry in enumerate(_expanded(node, inputs)):
                rebuilt[(id(node), k)] = entry
            continue
        same = all(a.node is b.node and a.index == b.index for a, b in zip(inputs, node.inputs))
        new = node if same else Node(node.op, node.attrs, inputs, node.types, node._name)
        for k in range(node.num_outputs):
            rebuilt[(id(node), k)] = Entry(new, k)
    outputs = [
        None if out is None else rebuilt.get((id(out.node), out.index), out)
        for out in graph.outputs
    ]
    return ProgramGraph(graph.inputs, outputs)
