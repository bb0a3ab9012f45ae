"""Closed graphs: what the passes transform and a backend compiles.

A :class:`ProgramGraph` is a function from its input variables to its outputs.
:func:`cut_inputs` makes one out of a part of a larger (recorded) graph.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .ir import Entry, Node, topo_order
from .registry import variable

_Value = TypeVar("_Value", bound=Hashable)  # a node, or a plan's slot number


@dataclass
class ProgramGraph:
    """A closed graph: a function from ``inputs`` (variables) to ``outputs``.

    An output may be None (a gradient that is structurally zero).
    """

    inputs: list[Node]
    outputs: list[Entry | None]

    def live_outputs(self) -> list[Entry]:
        """The outputs that are not None."""
        return [out for out in self.outputs if out is not None]

    def nodes(self) -> list[Node]:
        """Every node the outputs depend on, in topological order."""
        return topo_order(self.live_outputs())


def clone_graph(nodes: Sequence[Node]) -> list[Node]:
    """Structural copies of ``nodes`` (in topological order), without values or tags."""
    copies: dict[Node, Node] = {}
    for node in nodes:
        inputs = tuple(Entry(copies[e.node], e.index) for e in node.inputs)
        copies[node] = Node(node.op, node.attrs, inputs, node.types, node._name)
    return [copies[node] for node in nodes]


def cut_inputs(
    outputs: Sequence[Entry | None],
    template: Sequence[Node],
    is_input: Callable[[Node], bool],
    extra_inputs: Sequence[Node] = (),
) -> tuple[ProgramGraph, list[tuple[int, int]]]:
    """Rebuild ``outputs`` as a closed graph whose inputs are the entries of
    ``template`` nodes for which ``is_input`` holds (plus ``extra_inputs``).

    Returns the graph and, per input, its ``(position in template, output index)``;
    extra inputs get position ``-1 - k``.
    """
    position = {id(node): i for i, node in enumerate(template)}
    rebuilt: dict[int, Node] = {}
    cut: dict[tuple[int, int], Node] = {}
    refs: list[tuple[int, int]] = []
    inputs: list[Node] = []
    for k, node in enumerate(extra_inputs):
        cut[(id(node), 0)] = node
        refs.append((-1 - k, 0))
        inputs.append(node)

    def entry_of(entry: Entry) -> Entry:
        key = (id(entry.node), entry.index)
        if key in cut:
            return Entry(cut[key], 0)
        if id(entry.node) in position and is_input(entry.node):
            var = variable(entry.shape, entry.dtype, name=f"input{len(inputs)}")
            cut[key] = var
            refs.append((position[id(entry.node)], entry.index))
            inputs.append(var)
            return Entry(var, 0)
        return Entry(rebuilt[id(entry.node)], entry.index)

    live = [out for out in outputs if out is not None]
    for node in topo_order(live):
        if id(node) in position and is_input(node) or (id(node), 0) in cut:
            continue
        rebuilt[id(node)] = Node(
            node.op, node.attrs, tuple(entry_of(e) for e in node.inputs), node.types, node._name
        )
    graph = ProgramGraph(inputs, [None if out is None else entry_of(out) for out in outputs])
    return graph, refs


def dead_after(
    steps: Sequence[tuple[Iterable[_Value], Iterable[_Value]]], kept: Container[_Value]
) -> list[list[_Value]]:
    """For each step, given as (the values it makes, the values it reads), the values
    that no later step reads and that are not ``kept``: what may be dropped once that
    step has run. A value nothing reads is dead after the step that made it."""
    last: dict[_Value, int] = {}
    for k, (made, read) in enumerate(steps):
        for value in made:
            last.setdefault(value, k)
        for value in read:
            last[value] = k
    dead: list[list[_Value]] = [[] for _ in steps]
    for value, k in last.items():
        if value not in kept:
            dead[k].append(value)
    return dead


def walk_dropping(
    outputs: Sequence[Entry], known: Container[Node] = ()
) -> list[tuple[Node, list[Node]]]:
    """``topo_order(outputs, known)``, each node paired with the nodes whose values no
    later node reads and that are not ``outputs`` (:func:`dead_after`): what a walk
    may drop once that node has run, so that a big graph holds only what is still
    needed (a DenseNet step's concatenations and temporaries add up to many GB)."""
    order = topo_order(outputs, known)
    returned = {e.node for e in outputs}
    steps = [((node,), [e.node for e in node.inputs]) for node in order]
    return list(zip(order, dead_after(steps, returned)))
