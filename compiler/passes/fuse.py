"""Fusion: partition a program graph into elementwise groups, each made one
``_fused`` node that lowers to one loop.

A group holds elementwise ops of one output shape (inputs may broadcast into it)
and the sums that end it (the reductions that undo broadcasting in gradients).
Groups are convex: no path leaves a group and comes back, which is checked on the
condensed graph with networkx. Whether an op fuses is read from the registry
(``kind``, ``scalar``), never from what a backend happens to support.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ..graph import ProgramGraph
from ..ir import Entry, Node
from ..ops.fused import FusedBody
from ..registry import get_op, variable
from .rewrite import rewrite

FUSED = get_op("_fused")
REDUCTIONS = ("sum", "mean", "_unbroadcast")


def is_elementwise(node: Node) -> bool:
    """Can this node be a member computed inside a fused loop?"""
    return (
        node.op.kind == "elemwise"
        and node.op.scalar is not None
        and not node.is_variable
        and all(np.issubdtype(t.dtype, np.floating) for t in node.types)
    )


def is_reduction(node: Node) -> bool:
    """Can this node end a fused loop (a sum or mean over some axes of a member)?"""
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
    outputs = [
        None if out is None else rebuilt.get((id(out.node), out.index), out)
        for out in graph.outputs
    ]
    return rewrite(ProgramGraph(graph.inputs, outputs), [])


# ---------------------------------------------------------------------------
# grouping
# ---------------------------------------------------------------------------


# How much one fused kernel holds, in units of a cheap op; a transcendental op
# (which inlines a vector-math routine) costs TRANSCENDENTAL_COST. numba's compile
# time grows faster than linearly with a function's size (a chain of 250 sin ops
# in one loop took 38 s, 500 took 232 s): a bigger group is split, each part a
# kernel of its own, which costs one pass over memory per part and keeps
# compiling bounded. A small training step (W3: 50 ops and their gradients)
# stays one kernel.
MAX_GROUP = 512
TRANSCENDENTAL_COST = 4


def _cost(node: Node) -> int:
    return TRANSCENDENTAL_COST if node.op.is_transcendental(node.attrs) else 1


class _Groups:
    """Groups being formed, with what each depends on at the group level."""

    def __init__(self) -> None:
        self.group_of: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}
        self.cost: dict[int, int] = {}  # per group: the sum of its members' _cost
        self.shape: dict[int, tuple[int, ...]] = {}
        self.deps: dict[int, set[int]] = {}  # groups each group reads from, directly
        self.touches: dict[int, frozenset[int]] = {}  # per node: groups it reads, directly
        self.ends_loop: set[int] = set()  # reductions: known only after their loop

    def closure(self, groups) -> set[int]:
        """``groups`` and every group they depend on, transitively."""
        seen, stack = set(), list(groups)
        while stack:
            group = stack.pop()
            if group not in seen:
                seen.add(group)
                stack.extend(self.deps[group])
        return seen

    def upstream(self, node: Node) -> set[int]:
        """Every group the node's value depends on."""
        return self.closure(self.touches.get(id(node), ()))

    def can_join(self, node: Node, group: int) -> bool:
        """Joining keeps the group convex: no input from outside depends on it, and
        the node reads no reduction of the same loop; and it stays within
        :data:`MAX_GROUP` in cost (see ``_cost``)."""
        if self.cost[group] + _cost(node) > MAX_GROUP:
            return False
        for e in node.inputs:
            inside = self.group_of.get(id(e.node)) == group
            if inside and id(e.node) in self.ends_loop:
                return False
            if not inside and group in self.upstream(e.node):
                return False
        return True

    def new(self, shape: tuple[int, ...]) -> int:
        group = len(self.shape)
        self.shape[group], self.members[group], self.deps[group] = shape, [], set()
        self.cost[group] = 0
        return group

    def join(self, node: Node, group: int) -> None:
        self.group_of[id(node)] = group
        self.members[group].append(id(node))
        self.cost[group] += _cost(node)
        for e in node.inputs:
            if self.group_of.get(id(e.node)) != group:
                self.deps[group] |= self.touches.get(id(e.node), frozenset())
        self.deps[group].discard(group)

    def move(self, node: Node, group: int) -> None:
        """Take ``node`` out of its group and into ``group`` (the caller checked
        that both stay convex)."""
        home = self.group_of[id(node)]
        self.members[home].remove(id(node))
        self.cost[home] -= _cost(node)
        self.join(node, group)
        self.touches[id(node)] = frozenset({group})

    def merge(self, keep: int, gone: int) -> None:
        for member in self.members.pop(gone):
            self.group_of[member] = keep
            self.members[keep].append(member)
        self.cost[keep] += self.cost.pop(gone)
        self.deps[keep] |= self.deps.pop(gone)
        self.deps[keep] -= {keep, gone}
        for deps in self.deps.values():
            if gone in deps:
                deps.discard(gone)
                deps.add(keep)
        for key, touched in self.touches.items():
            if gone in touched:
                self.touches[key] = (touched - {gone}) | {keep}


def assign_groups(order: list[Node], kept: frozenset[int] = frozenset()) -> dict[int, int]:
    """Map node ids to group numbers, greedily in topological order.

    An elementwise node joins (and may merge) the groups of its inputs that have
    its shape when that keeps every group convex; a sum joins the group of its
    input as the value the loop ends with. Then cheap ops used by one later group
    only move into it (:func:`_recompute_where_used`). ``kept``: ids of the nodes
    whose values the graph returns.
    """
    return _grouped(order, kept).group_of


def _grouped(order: list[Node], kept: frozenset[int]) -> _Groups:
    """The groups of :func:`assign_groups`, with their shapes and dependencies."""
    groups = _Groups()
    for node in order:
        choice = None
        if is_elementwise(node):
            shape = node.types[0].shape
            candidates = []
            for e in data_inputs(node):
                group = groups.group_of.get(id(e.node))
                if (
                    group is not None
                    and group not in candidates
                    and id(e.node) not in groups.ends_loop
                    and groups.shape[group] == shape
                ):
                    candidates.append(group)
            for group in candidates:
                if choice is None:
                    if groups.can_join(node, group):
                        choice = group
                elif (
                    groups.cost[choice] + groups.cost[group] + _cost(node) <= MAX_GROUP
                    and choice not in groups.closure({group})
                    and group not in groups.closure({choice})
                ):  # independent: merging is convex
                    groups.merge(choice, group)
                    if not groups.can_join(node, choice):
                        raise AssertionError("merging groups broke convexity")
            if choice is None:
                choice = groups.new(shape)
        elif is_reduction(node):
            data = node.inputs[0].node
            group = groups.group_of.get(id(data))
            if (
                group is not None
                and id(data) not in groups.ends_loop
                and groups.shape[group] == data.types[0].shape
                and groups.can_join(node, group)
            ):
                choice = group
                groups.ends_loop.add(id(node))
        touched = frozenset().union(*(groups.touches.get(id(e.node), ()) for e in node.inputs))
        if choice is not None:
            groups.join(node, choice)
            touched = frozenset({choice})
        groups.touches[id(node)] = touched
    _recompute_where_used(order, groups, kept)
    return groups


def _recompute_where_used(order: list[Node], groups: _Groups, kept: frozenset[int]) -> None:
    """Move a cheap elementwise op whose value only another group reads into that
    group, where its inputs are stored anyway: it is recomputed there instead of
    being stored by its own loop and read back.

    The greedy pass puts an op with the group of its inputs: a gradient's mask
    (``out > 0`` of a relu) joins the forward loop, which then writes a mask the
    size of the activation for the backward loop to read. The activation itself
    is stored anyway (the next layer reads it), so the backward loop can compare
    it for the price of one instruction, and the forward loop writes one array
    fewer (ResNet-18 at batch 8: a 25 MB mask per relu at 112x112)."""
    consumers: dict[int, list[Node]] = defaultdict(list)
    for node in order:
        for e in node.inputs:
            consumers[id(e.node)].append(node)
    group_of = groups.group_of

    def stored_anyway(source: Node, reader: Node) -> bool:
        group = group_of.get(id(source))
        return (
            group is None
            or id(source) in kept
            or any(c is not reader and group_of.get(id(c)) != group for c in consumers[id(source)])
        )

    for node in reversed(order):
        home = group_of.get(id(node))
        if home is None or _cost(node) != 1 or not is_elementwise(node) or id(node) in kept:
            continue
        readers = {group_of.get(id(c)) for c in consumers[id(node)]}
        if len(readers) != 1:
            continue
        target = readers.pop()
        if (
            target is None
            or target == home
            or groups.shape[target] != node.types[0].shape
            or groups.cost[target] + 1 > MAX_GROUP
            or not all(stored_anyway(e.node, node) for e in data_inputs(node))
        ):
            continue
        sources = frozenset().union(*(groups.touches.get(id(e.node), ()) for e in node.inputs))
        if target in groups.closure(sources):  # an input depends on the target: a cycle
            continue
        groups.move(node, target)


# The most ops a group recomputes for one value it reads from another group.
MAX_COPIED_CHAIN = 8


def copies_into_readers(
    order: list[Node], groups: _Groups, kept: frozenset[int]
) -> dict[int, list[Node]]:
    """For each group, the cheap ops of other groups it computes again itself, in
    topological order: a value of the loop's full size that another loop makes
    and does not need to store otherwise, computed from values stored anyway.

    The greedy pass leaves such a value with the group that makes it, which then
    writes it out in full for the reader to load. A chain of a few cheap ops on
    stored arrays costs the reader a few instructions a element instead: the
    backward of a BatchNorm+ReLU recomputes the relu's gradient (the incoming
    gradient masked by the stored activation) and its scaling by gamma in the
    loop that writes dx, instead of the loop of its sums writing it out for that
    one to read back (one array written and read per BatchNorm)."""
    consumers: dict[int, list[Node]] = defaultdict(list)
    for node in order:
        for e in node.inputs:
            consumers[id(e.node)].append(node)
    group_of = groups.group_of
    position = {id(n): i for i, n in enumerate(order)}

    copies: dict[int, dict[int, Node]] = defaultdict(dict)

    def stored_anyway(node: Node, reader: int) -> bool:
        """Whether ``node``'s value is there for ``reader`` without its storing it:
        made outside loops, returned, or read by a third loop that does not
        compute it again itself."""
        home = group_of.get(id(node))

        def read_elsewhere(consumer: Node) -> bool:
            group = group_of.get(id(consumer))
            if group in (home, reader):
                return False
            return group is None or id(node) not in copies[group]

        return (
            home is None
            or home == reader
            or id(node) in kept
            or any(read_elsewhere(c) for c in consumers[id(node)])
        )

    def chain(node: Node, reader: int, found: dict[int, Node]) -> bool:
        """Add to ``found`` the ops ``reader`` must compute to have ``node``;
        False if that is not a short chain of cheap ops on stored values."""
        if id(node) in found or stored_anyway(node, reader):
            return True
        if (
            not is_elementwise(node)
            or _cost(node) != 1
            or node.types[0].shape != groups.shape[reader]
            or len(found) >= MAX_COPIED_CHAIN
        ):
            return False
        found[id(node)] = node
        return all(chain(e.node, reader, found) for e in data_inputs(node))

    for node in order:
        reader = group_of.get(id(node))
        if reader is None:
            continue
        for e in data_inputs(node):
            source = group_of.get(id(e.node))
            if source is None or source == reader or id(e.node) in copies[reader]:
                continue
            if id(e.node) in groups.ends_loop or e.node.types[0].shape != groups.shape[reader]:
                continue
            found: dict[int, Node] = {}
            if not chain(e.node, reader, found) or not found:
                continue
            # the copies read their inputs' groups: none of those may depend on
            # the reader (a cycle)
            inputs = [i.node for n in found.values() for i in n.inputs if id(i.node) not in found]
            sources = frozenset().union(*(groups.touches.get(id(i), ()) for i in inputs))
            if reader in groups.closure(sources - {reader}):
                continue
            if groups.cost[reader] + len(found) > MAX_GROUP:
                continue
            groups.cost[reader] += len(found)
            groups.deps[reader] |= sources - {reader}
            copies[reader].update(found)
    return {
        g: sorted(found.values(), key=lambda n: position[id(n)])
        for g, found in copies.items()
        if found
    }


# Elements from which a lone transcendental op is left to numpy (see below).
LONE_TRANSCENDENTAL_LIMIT = 1 << 16


def _lone_worth_a_kernel(node: Node) -> bool:
    """Whether an elementwise op alone in its group still becomes a kernel: plain
    arithmetic does (as fast as numpy on big arrays, several times cheaper per
    call on small ones); a lone transcendental does on arrays smaller than
    :data:`LONE_TRANSCENDENTAL_LIMIT` (per-call cost dominates there, and as a
    kernel it joins the whole-program entry) and stays with numpy, whose
    vectorised math beats the kernels', on bigger ones."""
    if node.op.kind != "elemwise" or node.op.scalar is None:
        return False
    if not node.op.is_transcendental(node.attrs):
        return True
    return math.prod(node.types[0].shape) < LONE_TRANSCENDENTAL_LIMIT


def _sized_by_inputs(nodes: list[Node]) -> bool:
    """Whether each loop axis of a group takes its length from one of its inputs,
    as a kernel reads its loop sizes: a lone ``broadcast_to`` of a (1, N, 1) column
    to (L, N, H) (a recurrent layer's zero states) has none for L and H, so it
    stays an op."""
    inside = {id(n) for n in nodes}
    shape = next(n.types[0].shape for n in nodes if is_elementwise(n))
    shapes = [e.shape for n in nodes for e in n.inputs if id(e.node) not in inside]
    rank = len(shape)
    return all(
        size == 1 or any(len(s) >= rank - a and s[a - rank + len(s)] != 1 for s in shapes)
        for a, size in enumerate(shape)
    )


def fuse(graph: ProgramGraph) -> ProgramGraph:
    """Replace each group of two or more members, or a lone op worth a kernel
    (see :func:`_lone_worth_a_kernel`), by one ``_fused`` node."""
    import networkx as nx  # here, not at the top: it takes ~0.3 s to import, and a
    # program's first call (answered by the interpreter) never needs it

    order = [n for n in graph.nodes() if not n.is_variable]
    kept = frozenset(id(o.node) for o in graph.live_outputs())
    groups = _grouped(order, kept)
    group_of = groups.group_of
    members: dict[int, list[Node]] = defaultdict(list)
    for node in order:
        if id(node) in group_of:
            members[group_of[id(node)]].append(node)
    units = {
        g: nodes
        for g, nodes in members.items()
        if (len(nodes) > 1 or _lone_worth_a_kernel(nodes[0])) and _sized_by_inputs(nodes)
    }
    unit_of = {id(n): ("group", g) for g, nodes in units.items() for n in nodes}
    # ops a unit computes again for itself (their home unit keeps them too)
    copied = {
        ("group", g): {id(n) for n in nodes}
        for g, nodes in copies_into_readers(order, groups, kept).items()
        if g in units and all(id(n) in unit_of for n in nodes)
    }

    def reads_from(node: Node, here) -> list:
        """The units ``node`` (computed in unit ``here``) reads values from."""
        inside = copied.get(here, ())
        return [
            unit_of.get(id(e.node), ("node", id(e.node)))
            for e in node.inputs
            if not e.node.is_variable and id(e.node) not in inside
        ]

    condensed = nx.DiGraph()
    for node in order:
        home = unit_of.get(id(node), ("node", id(node)))
        condensed.add_node(home)
        for here in [home] + [u for u, ids in copied.items() if id(node) in ids]:
            for there in reads_from(node, here):
                if there != here:
                    condensed.add_edge(there, here)
    if not nx.is_directed_acyclic_graph(condensed):  # fusion must never create a cycle
        raise AssertionError("fusion produced a cyclic group graph")

    used_outside: set[tuple[int, int]] = {(id(o.node), o.index) for o in graph.live_outputs()}
    for node in order:
        units_computing: list[tuple[str, int] | None] = [unit_of.get(id(node))]
        units_computing += [u for u, ids in copied.items() if id(node) in ids]
        for unit in units_computing:
            inside = copied.get(unit, ()) if unit is not None else ()
            for e in node.inputs:
                if (
                    id(e.node) in unit_of
                    and unit_of[id(e.node)] != unit
                    and id(e.node) not in inside
                ):
                    used_outside.add((id(e.node), e.index))
    position = {id(n): i for i, n in enumerate(order)}
    # a unit runs in the order of its own first op, not of an op it copies
    first = {g: position[id(nodes[0])] for g, nodes in units.items()}
    for unit, ids in copied.items():
        units[unit[1]] = sorted(
            units[unit[1]] + [n for n in order if id(n) in ids], key=lambda n: position[id(n)]
        )

    by_id = {id(n): n for n in order}
    mapped: dict[tuple[int, int], Entry] = {}

    def lookup(e: Entry) -> Entry:
        return mapped.get((id(e.node), e.index), e)

    def first_position(unit) -> int:
        kind, ident = unit
        return position[ident] if kind == "node" else first[ident]

    for kind, ident in nx.lexicographical_topological_sort(condensed, key=first_position):
        if kind == "node":
            node = by_id[ident]
            new = Node(
                node.op, node.attrs, tuple(lookup(e) for e in node.inputs), node.types, node._name
            )
            for k in range(node.num_outputs):
                mapped[(id(node), k)] = Entry(new, k)
        else:
            copies = copied.get((kind, ident), set())
            _build_group(units[ident], used_outside, lookup, mapped, copies)
    outputs = [None if o is None else lookup(o) for o in graph.outputs]
    return ProgramGraph(graph.inputs, outputs)


def _build_group(nodes: list[Node], used_outside, lookup, mapped, copies=frozenset()) -> None:
    """Make the ``_fused`` node for one group and map its members' outputs to it
    (not those of ``copies``, ids of ops it computes again for itself)."""
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
    produced = [
        (node, k)
        for node in nodes
        for k in range(node.num_outputs)
        if (id(node), k) in used_outside and id(node) not in copies
    ]
    body = FusedBody(list(body_var.values()), [Entry(clones[id(node)], k) for node, k in produced])
    fused = Node(
        FUSED,
        {"body": body},
        tuple(external),
        tuple(clones[id(node)].types[k] for node, k in produced),
    )
    for i, (node, k) in enumerate(produced):
        mapped[(id(node), k)] = Entry(fused, i)
