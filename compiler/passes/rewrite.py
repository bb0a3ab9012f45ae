"""The one graph rewriter every simplification pass is made of.

``rewrite(graph, rules)`` rebuilds a program graph input-first; each rebuilt node
is first looked up by value number (op, attrs, inputs), so equal subexpressions
become one node (CSE), then offered to the rules until none applies. A rule takes
a node and returns the entry that replaces it, or None. Nodes no output needs are
never rebuilt, which is dead-code elimination.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..graph import ProgramGraph
from ..ir import Entry, Node, topo_order
from ..registry import make_node

Rule = Callable[[Node], "Entry | None"]
# a node and its rebuilt inputs -> the entries of its outputs in its place, or None
Replacement = Callable[[Node, tuple[Entry, ...]], "Sequence[Entry] | None"]

_MAX_REWRITES_PER_NODE = 16


def value_number(node: Node) -> tuple:
    """What makes two nodes compute the same value: op, attrs and input entries."""
    if node.op.random:
        return (id(node),)  # a random draw equals no other, whatever its attrs
    return (
        node.op.name,
        tuple(node.attrs.items()),
        tuple((id(e.node), e.index) for e in node.inputs),
    )


def rewrite(graph: ProgramGraph, rules: Sequence[Rule]) -> ProgramGraph:
    """Rebuild ``graph`` with common subexpressions merged and ``rules`` applied
    to a fixed point at every node."""
    replaced: dict[tuple[int, int], Entry] = {}
    numbered: dict[tuple, Node] = {}

    def settle(node: Node) -> Node:
        # Merge with an equal node made before (both rebuilt, so inputs compare by id).
        return numbered.setdefault(value_number(node), node)

    for node in topo_order(graph.live_outputs()):
        if node.is_variable:
            continue
        inputs = tuple(replaced.get((id(e.node), e.index), e) for e in node.inputs)
        current = settle(Node(node.op, node.attrs, inputs, node.types, node._name))
        outputs = [Entry(current, i) for i in range(current.num_outputs)]
        if current.num_outputs == 1:
            outputs[0] = _apply_rules(outputs[0], rules, settle)
        for i, out in enumerate(outputs):
            replaced[(id(node), i)] = out
    rebuilt: list[Entry | None] = [
        None if out is None else replaced.get((id(out.node), out.index), out)
        for out in graph.outputs
    ]
    return ProgramGraph(graph.inputs, rebuilt)


def _apply_rules(entry: Entry, rules: Sequence[Rule], settle) -> Entry:
    for _ in range(_MAX_REWRITES_PER_NODE):
        if entry.node.is_variable:
            return entry
        for rule in rules:
            result = rule(entry.node)
            if result is not None:
                entry = (
                    Entry(settle(result.node), result.index)
                    if not result.node.is_variable
                    else result
                )
                break
        else:
            return entry
    return entry


def node(op: str, *inputs: Entry, **attrs) -> Entry:
    """Make a node for a rule's replacement (its single output)."""
    return Entry(make_node(op, inputs, attrs), 0)


def replace_nodes(graph: ProgramGraph, replace: Replacement) -> ProgramGraph:
    """Rebuild ``graph`` input-first with each node for which ``replace`` returns
    entries swapped for them (one per output it replaces); a node whose inputs
    changed is remade, the rest are kept. For passes that swap nodes one for one,
    without ``rewrite``'s CSE and fixed point."""
    rebuilt: dict[tuple[int, int], Entry] = {}
    for node in graph.nodes():
        if node.is_variable:
            continue
        inputs = tuple(rebuilt.get((id(e.node), e.index), e) for e in node.inputs)
        replacement = replace(node, inputs)
        if replacement is not None:
            for k, entry in enumerate(replacement):
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
