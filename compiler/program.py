"""Programs: what ``backward`` runs, built once per graph structure.

A :class:`Program` computes, from a graph's inputs, the gradients of its heads
with respect to chosen nodes and the values of chosen entries, in one go. It is
built from a structural copy of a recorded graph, so one program serves every
recording with the same structural key: it reads its inputs by position in the
graph's topological order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .autodiff import differentiate
from .backends import Backend
from .driver import compile_graph
from .expr import Expr
from .graph import ProgramGraph, clone_graph, cut_inputs
from .ir import Entry, Node, TensorType
from .ops.common import F
from .ops.update_rules import rule_for
from .registry import variable

__all__ = ["Program", "ProgramGraph", "UpdateSpec"]


@dataclass(frozen=True)
class UpdateSpec:
    """An optimizer update a program applies after computing the gradients (a
    fused training step): update op ``op`` (one with a rule in
    :mod:`.ops.update_rules`) on the weight ``wrt[grad]`` with its gradient,
    reading states of ``state_types`` and the rule's scalars, with the graph
    shaped by ``structure``. Its outputs (new weight, new states) follow the
    program's values."""

    op: str
    grad: int
    state_types: tuple[TensorType, ...]
    structure: tuple


class Program:
    """Gradients of a graph's heads and values of some of its entries.

    ``nodes`` is the graph in topological order; ``heads`` and ``values`` are
    ``(position, output index)`` pairs, ``wrt`` positions of nodes;
    ``given_head_grads[i]`` says whether head ``i`` comes with a gradient
    (otherwise it is ones). ``is_input(node)`` says which nodes the program reads
    rather than computes (leaves always), and ``read`` adds the nodes at those
    positions (values the caller already has). ``backend`` (a backend, its name, or
    None for the one in force) compiles the closed program graph; with
    ``compiled=False`` nothing is compiled (a caller that only reads ``graph``).

    ``updates`` makes it a training step: each :class:`UpdateSpec` adds the
    updated weight and states after the values; the states and the update
    scalars are the program's last inputs, given to :meth:`run` as ``extra``.

    ``input_refs`` lists, per input of the closed ``graph``, the ``(position,
    output index)`` of the recorded entry it reads (negative positions: the
    head gradients given, then ``extra``).
    """

    # False for a program made for one call (its key holds a per-call callback):
    # not cached, and to be kept by nobody (see cached_program)
    reusable = True

    def __init__(
        self,
        nodes: Sequence[Node],
        heads: Sequence[tuple[int, int]],
        wrt: Sequence[int],
        given_head_grads: Sequence[bool],
        values: Sequence[tuple[int, int]],
        is_input: Callable[[Node], bool],
        backend: Backend | str | None = None,
        compiled: bool = True,
        updates: Sequence[UpdateSpec] = (),
        read: Sequence[int] = (),
    ):
        template = clone_graph(nodes)
        head_entries = [Entry(template[pos], index) for pos, index in heads]
        head_vars: list[Node] = []
        seeds: list[Entry] = []
        for entry, given in zip(head_entries, given_head_grads):
            if given:
                var = variable(entry.shape, entry.dtype, name=f"head_grad{len(head_vars)}")
                head_vars.append(var)
                seeds.append(Entry(var, 0))
            else:
                seeds.append(F.ones_like(Expr(entry)).entry)
        grads = differentiate(head_entries, seeds, [Entry(template[pos], 0) for pos in wrt])
        outputs: list[Entry | None] = grads + [Entry(template[pos], index) for pos, index in values]
        extra: list[Node] = []
        for spec in updates:
            weight = Entry(template[wrt[spec.grad]], 0)
            outputs += _update_outputs(spec, weight, grads[spec.grad], extra)
        known = {id(template[pos]) for pos in read}
        self.graph, self.input_refs = cut_inputs(
            outputs,
            template,
            lambda node: not node.inputs or id(node) in known or is_input(node),
            head_vars + extra,
        )
        self.num_grads = len(wrt)
        # cut_inputs puts the given inputs (head gradients, then ``extra``) first, in
        # order: ``run`` passes them on as one list, reading only the rest
        given_count = len(head_vars) + len(extra)
        self._node_refs = self.input_refs[given_count:]
        self._given_first = self.input_refs[:given_count] == [
            (-1 - k, 0) for k in range(given_count)
        ] and all(pos >= 0 for pos, _ in self._node_refs)
        self.run_graph = compile_graph(self.graph, backend) if compiled else None

    def run(
        self,
        nodes: Sequence[Node],
        value_of: Callable[[Node], Sequence[Any]],
        head_grads: Sequence[Any],
        out: Sequence[Any] | None = None,
        extra: Sequence[Any] = (),
    ) -> list[Any]:
        """Gradients then values (then updated weights and states), for a graph
        ``nodes`` with this program's structure. Its inputs are the values the
        frontend keeps for the nodes it reads (``value_of(node)``: the node's
        outputs; the program reads the nodes at :attr:`input_refs`), the
        ``head_grads`` given and ``extra`` (an update's states and scalars, in
        the order of ``updates``). ``out`` optionally names destination arrays
        for the outputs (a runner may compute an output straight into its
        destination and return it)."""
        given = [g for g in head_grads if g is not None]
        if extra:
            given += extra
        if self._given_first and len(given) == len(self.input_refs) - len(self._node_refs):
            given += [value_of(nodes[pos])[index] for pos, index in self._node_refs]
            args = given
        else:
            args = [
                given[-1 - pos] if pos < 0 else value_of(nodes[pos])[index]
                for pos, index in self.input_refs
            ]
        if self.run_graph is None:
            raise RuntimeError("this program was built with compiled=False: it does not run")
        return self.run_graph(args, out)


def _update_outputs(
    spec: UpdateSpec, weight: Entry, grad: Entry | None, extra: list[Node]
) -> list[Entry | None]:
    """The new weight and states of ``spec`` on ``weight`` and its gradient,
    adding the variables it reads (states, then scalars) to ``extra``."""
    rule = rule_for(spec.op)
    if rule is None:
        raise ValueError(f"{spec.op}: no rule rebuilds this update op from elementwise ops")
    dtype = weight.dtype
    states = [
        variable(t.shape, t.dtype, name=f"state{len(extra) + i}")
        for i, t in enumerate(spec.state_types)
    ]
    extra.extend(states)
    count = len(rule.scalar_names)
    scalars = [variable((), dtype, name=f"scalar{len(extra) + i}") for i in range(count)]
    extra.extend(scalars)
    g = Expr(grad) if grad is not None else F.zeros_like(Expr(weight))
    built = rule.build(
        Expr(weight),
        g,
        [Expr(Entry(s, 0)) for s in states],
        [Expr(Entry(v, 0)) for v in scalars],
        spec.structure,
    )
    return [e.entry for e in built]
