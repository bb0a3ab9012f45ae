"""The RNN op and its gradient in one program share the forward's work.

``_rnn_grad`` takes the RNN's inputs and runs the recurrence forward again for
the gate activations and cell states its reverse walk reads. In a program that
also computes the RNN node it differentiates (a training step: the forward, the
loss, the backward), that is the whole forward twice. This pass replaces such a
pair, ``RNN(inputs) -> outs`` and ``_rnn_grad(inputs, outs, grads)``, by
``_rnn_forward_taped(inputs) -> outs, tape`` and
``_rnn_grad_taped(inputs, tape, grads)`` (see :mod:`..ops.rnn_tape`).

It is a pass of its own, not a rule of :mod:`.simplify`: the rules replace one
single-output node, and here two nodes of several outputs are replaced together.
A forward that draws dropout masks keeps its ``RNN`` node (the masks come from
the frontend's generator, and the pair is left alone).
"""

from __future__ import annotations

from ..graph import ProgramGraph
from ..ir import Entry, Node, topo_order
from ..ops.rnn import draws_masks
from ..registry import make_node

_FLOATS = ("float16", "float32", "float64")


def _forward_count(attrs: dict) -> int:
    """How many of the RNN's inputs (data, parameters, state, state_cell?, lengths?)."""
    return 3 + (attrs["mode"] == "lstm") + bool(attrs["use_sequence_length"])


def _forward_of(grad: Node) -> Node | None:
    """The RNN node ``grad`` (an ``_rnn_grad``) differentiates, when its outputs are
    the ones ``grad`` reads and its inputs are ``grad``'s; else None."""
    attrs = grad.attrs
    if draws_masks(attrs):
        return None
    count = _forward_count(attrs)
    outputs = grad.inputs[count : count + 2 + (attrs["mode"] == "lstm")]
    forward = outputs[0].node
    if forward.op.name != "RNN" or forward.attrs != attrs:
        return None
    if any(e.node is not forward or e.index != k for k, e in enumerate(outputs)):
        return None
    same = all(
        a.node is b.node and a.index == b.index for a, b in zip(forward.inputs, grad.inputs[:count])
    )
    if not same or len(forward.inputs) != count:
        return None
    return forward if str(forward.inputs[0].dtype) in _FLOATS else None


def keep_rnn_tapes(graph: ProgramGraph) -> ProgramGraph:
    """``graph`` with each RNN node that an ``_rnn_grad`` of the same program
    differentiates computed once (see the module docstring)."""
    live = topo_order(graph.live_outputs())
    taped = {}  # id(RNN node) -> the node itself, for those some gradient reads
    for node in live:
        if node.op.name == "_rnn_grad":
            forward = _forward_of(node)
            if forward is not None:
                taped[id(forward)] = forward
    if not taped:
        return graph
    replaced: dict[tuple[int, int], Entry] = {}

    def new(e: Entry) -> Entry:
        return replaced.get((id(e.node), e.index), e)

    tapes: dict[int, Entry] = {}  # id(RNN node) -> its tape
    for node in live:
        if node.is_variable:
            continue
        inputs = tuple(new(e) for e in node.inputs)
        if id(node) in taped:
            current = make_node("_rnn_forward_taped", inputs, node.attrs, node._name)
            tapes[id(node)] = Entry(current, current.num_outputs - 1)
        elif node.op.name == "_rnn_grad" and _forward_of(node) is not None:
            forward = _forward_of(node)
            assert forward is not None
            count = _forward_count(node.attrs)
            seeds = inputs[count + 2 + (node.attrs["mode"] == "lstm") :]
            current = make_node(
                "_rnn_grad_taped",
                inputs[:count] + (tapes[id(forward)],) + seeds,
                node.attrs,
                node._name,
            )
        elif any(a is not b for a, b in zip(inputs, node.inputs)):
            current = Node(node.op, node.attrs, inputs, node.types, node._name)
        else:
            continue
        for i in range(node.num_outputs):
            replaced[(id(node), i)] = Entry(current, i)
    outputs = [None if out is None else new(out) for out in graph.outputs]
    return ProgramGraph(graph.inputs, outputs)
