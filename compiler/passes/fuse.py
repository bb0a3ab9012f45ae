"""Fusion: partition a program graph into elementwise groups, each made one
``_fused`` node that lowers to one loop.

A group holds elementwise ops of one output shape (inputs may broadcast into it)
and the sums that end it (the reductions that undo broadcasting in gradients).
Groups are convex: no path leaves a group and comes back, which is checked on the
condensed graph with networkx. Whether an op fuses is read from the registry
(``kind``, ``scalar``), never from what a backend happens to support.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx
import numpy as np

from ..ir import Entry, Node
from ..ops.fused import FusedBody
from ..program import ProgramGraph
from ..registry import get_op, variable
from .rewrite import rewrite

FUSED = get_op("_fused")
REDUCTIONS = ("sum", "_unbroadcast")


def is_elementwise(node: Node) -> bool:
    """Can this node be a member computed inside a fused loop?"""
    return (node.op.kind == "elemwise" and node.op.scalar is not None and not node.is_variable
            and all(np.issubdtype(t.dtype, np.floating) for t in node.types))


def is_reduction(node: Node) -> bool:
    """Can this node end a fused loop (a sum over some axes of a member)?"""
    return node.op.name in REDUCTIONS and np.issubdtype(node.types[0].dtype, np.floating)


def data_inputs(node: Node) -> list[Entry]:
    """The inputs whose values the node reads (not those it takes only a shape from)."""
    return [e for i, e in enumerate(node.inputs) if i not in node.op.shape_only]


# ---------------------------------------------------------------------------
# shape-only inputs: take shapes from what is computed anyway
# ---------------------------------------------------------------------------

def reroute_shape_inputs(graph: ProgramGraph) -> ProgramGraph:
    """Point every shape-only input at the earliest entry with the same shape and
    dtype by construction (an elementwise result has the shape of each input of
    its own shape), so the value it named can become dead."""
    source: dict[tuple[int, int], Entry] = {}
    rebuilt: dict[tuple[int, int], Entry] = {}

    def origin(entry: Entry) -> Entry:
        return source.get((id(entry.node), entry.index), entry)

    for node in graph.nodes():
        if node.is_variable:
            continue
        inputs = []
        for i, e in enumerate(node.inputs):
            e = rebuilt.get((id(e.node), e.index), e)
            if i in node.op.shape_only:
                e = origin(e)
            inputs.append(e)
        new = Node(node.op, node.attrs, tuple(inputs), node.types, node._name)
        for k in range(node.num_outputs):
            rebuilt[(id(node), k)] = Entry(new, k)
        if node.op.kind == "elemwise":
            for e in inputs:
                if e.type == new.types[0]:
                    source[(id(new), 0)] = origin(e)
                    break
    outputs = [None if out is None else rebuilt.get((id(out.node), out.index), out)
               for out in graph.outputs]
    return rewrite(ProgramGraph(graph.inputs, outputs), [])


# ---------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------

def assign_groups(order: list[Node]) -> dict[int, int]:
    """Map node ids to group numbers, greedily in topological order.

    A node joins a group of one of its inputs when it has the group's shape and
    joining closes no cycle: none of its other inputs may depend on the group,
    and it may not read a reduction the same loop computes.
    """
    group_of: dict[int, int] = {}
    shape_of: list[tuple[int, ...]] = []
    ends_loop: set[int] = set()  # reductions: their value exists only after the loop
    upstream: dict[int, frozenset[int]] = {}

    def viable(node: Node, group: int) -> bool:
        for e in node.inputs:
            inside = group_of.get(id(e.node)) == group
            if inside and id(e.node) in ends_loop:
                return False
            if not inside and group in upstream.get(id(e.node), ()):
                return False
        return True

    for node in order:
        choice = None
        if is_elementwise(node):
            shape = node.types[0].shape
            for e in data_inputs(node):
                group = group_of.get(id(e.node))
                if group is not None and id(e.node) not in ends_loop and \
                        shape_of[group] == shape and viable(node, group):
                    choice = group
                    break
            if choice is None:
                choice = len(shape_of)
                shape_of.append(shape)
        elif is_reduction(node):
            data = node.inputs[0].node
            group = group_of.get(id(data))
            if group is not None and id(data) not in ends_loop and \
                    shape_of[group] == data.types[0].shape and viable(node, group):
                choice = group
                ends_loop.add(id(node))
        above = frozenset().union(*(upstream.get(id(e.node), ()) for e in node.inputs))
        if choice is not None:
            group_of[id(node)] = choice
            above = above | {choice}
        upstream[id(node)] = above
    return group_of


def fuse(graph: ProgramGraph) -> ProgramGraph:
    """Replace each group of two or more members by one ``_fused`` node."""
    graph = reroute_shape_inputs(graph)
    order = [n for n in graph.nodes() if not n.is_variable]
    group_of = assign_groups(order)
    members: dict[int, list[Node]] = defaultdict(list)
    for node in order:
        if id(node) in group_of:
            members[group_of[id(node)]].append(node)
    units = {g: nodes for g, nodes in members.items() if len(nodes) > 1}
    unit_of = {id(n): ("group", g) for g, nodes in units.items() for n in nodes}

    condensed = nx.DiGraph()
    for node in order:
        here = unit_of.get(id(node), ("node", id(node)))
        condensed.add_node(here)
        for e in node.inputs:
            if not e.node.is_variable:
                there = unit_of.get(id(e.node), ("node", id(e.node)))
                if there != here:
                    condensed.add_edge(there, here)
    if not nx.is_directed_acyclic_graph(condensed):  # fusion must never create a cycle
        raise AssertionError("fusion produced a cyclic group graph")

    used_outside: set[tuple[int, int]] = {(id(o.node), o.index) for o in graph.live_outputs()}
    for node in order:
        for e in node.inputs:
            if unit_of.get(id(e.node)) != unit_of.get(id(node)) or id(node) not in unit_of:
                used_outside.add((id(e.node), e.index))

    by_id = {id(n): n for n in order}
    position = {id(n): i for i, n in enumerate(order)}
    mapped: dict[tuple[int, int], Entry] = {}

    def lookup(e: Entry) -> Entry:
        return mapped.get((id(e.node), e.index), e)

    def first_position(unit) -> int:
        kind, ident = unit
        return position[ident] if kind == "node" else position[id(units[ident][0])]

    for kind, ident in nx.lexicographical_topological_sort(condensed, key=first_position):
        if kind == "node":
            node = by_id[ident]
            new = Node(node.op, node.attrs, tuple(lookup(e) for e in node.inputs),
                       node.types, node._name)
            for k in range(node.num_outputs):
                mapped[(id(node), k)] = Entry(new, k)
        else:
            _build_group(units[ident], used_outside, lookup, mapped)
    outputs = [None if o is None else lookup(o) for o in graph.outputs]
    return ProgramGraph(graph.inputs, outputs)


def _build_group(nodes: list[Node], used_outside, lookup, mapped) -> None:
    """Make the ``_fused`` node for one group and map its members' outputs to it."""
    inside = {id(n) for n in nodes}
    external: list[Entry] = []
    body_var: dict[tuple[int, int], Node] = {}  # insertion order = input order
    clones: dict[int, Node] = {}
    for node in nodes:
        inputs = []
        for e in node.inputs:
            if id(e.node) in inside:
                inputs.append(Entry(clones[id(e.node)], e.index))
                continue
            key = (id(e.node), e.index)
            if key not in body_var:
                body_var[key] = variable(e.shape, e.dtype, name=f"in{len(external)}")
                external.append(lookup(e))
            inputs.append(Entry(body_var[key], 0))
        clones[id(node)] = Node(node.op, node.attrs, tuple(inputs), node.types, node._name)
    produced = [(node, k) for node in nodes for k in range(node.num_outputs)
                if (id(node), k) in used_outside]
    body = FusedBody(list(body_var.values()),
                     [Entry(clones[id(node)], k) for node, k in produced])
    fused = Node(FUSED, {"body": body}, tuple(external),
                 tuple(clones[id(node)].types[k] for node, k in produced))
    for i, (node, k) in enumerate(produced):
        mapped[(id(node), k)] = Entry(fused, i)
