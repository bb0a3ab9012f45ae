"""``mx.autograd``: record computations and differentiate them.

>>> import symgrad as mx
>>> x = mx.nd.array([1, 2, 3, 4])
>>> x.attach_grad()
>>> with mx.autograd.record():
...     y = x * x + 1
>>> y.backward()
>>> x.grad
<BLANKLINE>
[2. 4. 6. 8.]
<NDArray 4 @cpu(0)>
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

import symgrad_compiler as compiler
from symgrad_compiler import (
    Entry,
    GraphError,
    Node,
    evaluate,
    structural_key,
    topo_order,
)
from symgrad_compiler.chains import ChainTemplate
from symgrad_compiler.registry import defers
from symgrad_compiler.tape import Template

from . import _state, anomaly, recognition
from ._deferred import COSTLY_KINDS
from ._recorded import program_input, recorded_variable
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .base import MXNetError, MXNetShapeError
from .gradient_writer import write_gradient
from .ndarray.ndarray import NDArray, invoke

_GRAD_REQS = ("write", "add", "null")


# ---------------------------------------------------------------------------
# state and scopes
# ---------------------------------------------------------------------------


def set_recording(is_recording: bool) -> bool:
    """Turn recording on or off for this thread; returns the previous state."""
    previous = bool(_state.recording.get())
    _state.recording.set(_state.recording_state(bool(is_recording)))
    return previous


def set_training(train_mode: bool) -> bool:
    """Turn training mode on or off for this thread; returns the previous state."""
    previous = _state.training.get()
    _state.training.set(bool(train_mode))
    return previous


def is_recording() -> bool:
    """Whether operations are being recorded for differentiation."""
    return bool(_state.recording.get())


def is_training() -> bool:
    """Whether ops like Dropout and BatchNorm behave as in training."""
    return _state.training.get()


class _Scope:
    """Sets the recording and/or training flag for a ``with`` block and restores
    both on exit, also when the block raises."""

    def __init__(self, recording: bool | None, training: bool | None):
        self._recording = recording
        self._training = training
        self._saved: list[tuple[Any, bool]] = []

    def __enter__(self) -> _Scope:
        self._saved.append((_state.recording.get(), _state.training.get()))
        if self._recording is not None:
            _state.recording.set(_state.recording_state(self._recording))
        if self._training is not None:
            _state.training.set(self._training)
        return self

    def __exit__(self, *exc: Any) -> None:
        recording, training = self._saved.pop()
        _state.recording.set(recording)
        _state.training.set(training)


def record(train_mode: bool = True) -> _Scope:
    """Scope in which operations are recorded (and train mode is on by default)."""
    return _Scope(True, train_mode)


def pause(train_mode: bool = False) -> _Scope:
    """Scope in which recording is off (and predict mode by default)."""
    return _Scope(False, train_mode)


def train_mode() -> _Scope:
    """Scope in which Dropout/BatchNorm behave as in training; recording unchanged."""
    return _Scope(None, True)


def predict_mode() -> _Scope:
    """Scope in which Dropout/BatchNorm behave as in prediction; recording unchanged."""
    return _Scope(None, False)


# ---------------------------------------------------------------------------
# variables
# ---------------------------------------------------------------------------


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def mark_variables(variables: Any, gradients: Any, grad_reqs: Any = "write") -> None:
    """Mark arrays as variables whose gradients go into ``gradients`` (aliased:
    ``x.grad`` is the given buffer) following ``grad_reqs`` ('write', 'add', 'null')."""
    variables, gradients = _as_list(variables), _as_list(gradients)
    reqs = [grad_reqs] * len(variables) if isinstance(grad_reqs, str) else list(grad_reqs)
    if not len(variables) == len(gradients) == len(reqs):
        raise MXNetError(
            f"mark_variables: {len(variables)} variables, {len(gradients)} "
            f"gradients and {len(reqs)} grad_reqs must match"
        )
    for var, grad, req in zip(variables, gradients, reqs):
        if req not in _GRAD_REQS:
            raise MXNetError(f"unknown grad_req {req!r}; use one of {_GRAD_REQS}")
        if grad.shape != var.shape:
            raise MXNetError(
                f"gradient buffer of shape {grad.shape} for a variable of shape {var.shape}"
            )
        if req != "null" and np.dtype(var.dtype).kind not in "fc":
            # Integer gradients would be truncated (tanh's to zero) without a word.
            raise MXNetError(
                f"mark_variables: gradients need a floating-point array, "
                f"not {np.dtype(var.dtype).name}; use x.astype('float32') "
                f"(or grad_req='null')"
            )
    for var, grad, req in zip(variables, gradients, reqs):
        var._grad, var._grad_req = grad, req
        var._entry = Entry(recorded_variable(var._data, marked=var), 0)


# ---------------------------------------------------------------------------
# backward and grad
# ---------------------------------------------------------------------------


def _head_entries(heads: Sequence[NDArray], what: str) -> list[Entry]:
    entries = []
    for head in heads:
        if not isinstance(head, NDArray):
            raise MXNetError(f"{what}: heads must be NDArrays, got {type(head).__name__}")
        entry = head._entry
        if entry is None:
            raise MXNetError(
                f"{what}: this array has no recorded history. Compute it "
                "inside `with autograd.record():` from arrays marked with "
                "attach_grad()."
            )
        if entry.node.freed:
            raise MXNetError(
                f"{what}: the graph of this array was freed by an earlier "
                "backward; pass retain_graph=True to the first backward to "
                "differentiate the same graph again."
            )
        entries.append(entry)
    return entries


def _head_gradients(heads: Sequence[NDArray], head_grads: Any) -> list[NDArray | None]:
    if head_grads is None:
        return [None] * len(heads)
    grads = _as_list(head_grads)
    if len(grads) != len(heads):
        raise MXNetError(f"{len(heads)} heads but {len(grads)} head gradients")
    for head, grad in zip(heads, grads):
        if grad is not None and grad.shape != head.shape:
            raise MXNetError(
                f"head gradient of shape {grad.shape} for a head of shape {head.shape}"
            )
    return grads


def _leaf_role(node: Node) -> Any:
    marked = node.marked
    return None if marked is None else marked._grad_req


def _is_program_input(node: Node) -> bool:
    # Deferred ops are recomputed inside the program (fused with the backward);
    # others (random draws, side effects, callbacks) are read as recorded.
    return not defers(node.op, node.attrs)


# Deferred ops whose values, once computed (read while recording: a BatchNorm's
# input, a printed loss), the program reads instead of computing them again:
# products, convolutions and poolings cost far more than reading their outputs.
# An elementwise op is cheaper to recompute inside a fused loop than to read.
# The same kinds as _deferred keeps when it computes a value while recording.
_READ_ONCE_COMPUTED = COSTLY_KINDS


def _graph_values(nodes: Sequence[Node]) -> tuple[list[tuple[int, int, NDArray]], tuple]:
    """What the program does with this graph's recorded values, in one pass:
    the deferred arrays still alive and pending (it computes their values too,
    so they survive the graph being freed), and the positions of deferred nodes
    of the kinds above whose values are known already (it reads them)."""
    pending = []
    read = []
    for position, node in enumerate(nodes):
        if not node.inputs:
            continue
        if node.value is None:
            refs = node.pending  # None: not deferred (run when recorded, or failed eagerly)
            if refs is not None and len(refs) == 1:  # most ops: skip the inner loop
                array = refs[0]()
                if array is not None and array._value is None:
                    pending.append((position, 0, array))
                continue
            for index, ref in enumerate(refs or ()):
                array = ref()
                if array is not None and array._value is None:
                    pending.append((position, index, array))
        elif node.op.kind in _READ_ONCE_COMPUTED and defers(node.op, node.attrs):
            read.append(position)
    return pending, tuple(read)


class _Memo(NamedTuple):
    """What backward keeps on a step template (``Template.memo``): the program it
    ran, the conditions it ran it for ``(head gradients given, live deferred
    arrays, backend, cache generation)``, and the positions of the variables it
    wrote."""

    program: compiler.Program
    conditions: tuple
    wrt: tuple[int, ...]
    step: Any = None  # a Trainer's updates fused after it (training_step.StepPlan)


def _run_program(
    entries: list[Entry],
    nodes: list[Node],
    wrt: list[Node],
    head_grads: list[NDArray | None],
    out: list | None = None,
    signature: tuple | None = None,
    template: Template | ChainTemplate | None = None,
) -> list:
    """Gradients for ``wrt`` (also settling live deferred arrays of the graph).
    ``signature`` is ``(key, positions)`` of ``nodes`` if the caller has it.
    ``template`` is the tape's or the chain's template of this graph, if it has
    one: its memo keeps the program, reused without a key while the head
    gradients given, the live deferred arrays, the backend and the cache stay
    the same."""
    given = tuple([g is not None for g in head_grads])
    pending_arrays, read = _graph_values(nodes)
    values = tuple([(pos, index) for pos, index, _ in pending_arrays])
    conditions = (given, values, read, compiler.backend(), compiler.cache_generation())
    memo = None if template is None else template.memo
    ahead = None
    try:
        if memo is not None and memo.conditions == conditions:
            program = memo.program
            compiler.count_hit()
        else:
            program, wrt_positions = _fetch_program(
                entries, nodes, wrt, template, signature, conditions
            )
            if template is not None and program.reusable:
                # the graph is the same: a Trainer's step learnt on it still
                # follows, its fused program fetched again for these conditions
                step = None if memo is None else memo.step
                if step is not None:
                    step.program = None
                memo = template.memo = _Memo(program, conditions, wrt_positions, step)
            else:
                memo = None
        if memo is not None and memo.step is not None:
            # a Trainer's step follows: compute its updates too, in the same call
            ahead = memo.step.foresee()
            if ahead is not None:
                program = memo.step.program
                if program is None:
                    program = memo.step.program = _fetch_program(
                        entries, nodes, wrt, template, signature, conditions, memo.step.specs
                    )[0]
        destinations = None if out is None else out + [None] * len(values)
        if ahead is not None:
            destinations = (destinations or [None] * (len(wrt) + len(values))) + ahead.plan.buffers
        results = program.run(
            nodes,
            program_input,
            [None if g is None else g._data for g in head_grads],
            destinations,
            () if ahead is None else ahead.extra,
        )
    except TypeError:
        # A value the program reads is gone: another head's backward freed this
        # shared part of the graph. Checked only on failure, to keep backward lean.
        if any(node.freed for node in nodes):
            raise MXNetError(_FREED_SHARED) from None
        raise
    except GraphError as err:
        # A Function.backward that returns gradients of the wrong shape, or an op with
        # no gradient rule: misuse, which MXNet reports as MXNetError.
        raise MXNetShapeError(str(err)) from None
    for (_, _, array), value in zip(pending_arrays, results[len(wrt) :]):
        array._settle(value)
    if ahead is not None:
        ahead.results = results[len(wrt) + len(values) :]
        _state.staged_step.set(ahead)
    return results[: len(wrt)]


def _fetch_program(
    entries: list[Entry],
    nodes: list[Node],
    wrt: list[Node],
    template: Template | ChainTemplate | None,
    signature: tuple | None,
    conditions: tuple,
    updates: tuple = (),
) -> tuple[Any, tuple[int, ...]]:
    """The program for this graph from the program cache, with ``updates``
    fused after its gradients if given; and the positions of ``wrt``."""
    if signature is None and template is not None:
        # recognised, but run under other conditions: the tape's key (the
        # nodes are in its order), so that the cached program is found
        signature = (template.key, {id(node): at for at, node in enumerate(nodes)})
    graph_key, position = signature or structural_key(nodes, entries, _leaf_role)
    wrt_positions = tuple([position[id(node)] for node in wrt])
    given, values, read, backend = conditions[:4]
    key = (graph_key, wrt_positions, given, values, read, backend) + ((updates,) if updates else ())
    program = compiler.cached_program(
        key,
        lambda: compiler.Program(
            nodes,
            graph_key[1],
            wrt_positions,
            given,
            values,
            _is_program_input,
            backend,
            updates=updates,
            read=read,
        ),
    )
    return program, wrt_positions


_FREED_SHARED = (
    "backward: part of this graph was freed by an earlier backward of another "
    "head that shares it; pass retain_graph=True to the first backward, or "
    "differentiate both heads in one call: autograd.backward([a, b])"
)


def _marked(nodes: Sequence[Node]) -> list[Node]:
    """The variables among ``nodes`` whose gradients backward computes."""
    return [
        n for n in nodes if not n.inputs and n.marked is not None and n.marked._grad_req != "null"
    ]


def _settle_outside(tape: Any, nodes: Sequence[Node]) -> None:
    """Compute the arrays recorded on ``tape`` outside the graph ``nodes`` that are
    still pending and alive: they may read values of ``nodes``, which backward is
    about to free (MXNet computed them when they were recorded). A tape's step
    template holds exactly the graph, so backward skips this then."""
    inside = {id(node) for node in nodes}
    for ref in tape.ops:
        node = ref()
        if node is None or id(node) in inside or node.value is not None or node.freed:
            continue
        for array_ref in node.pending or ():
            array = array_ref()
            if array is not None and array._value is None:
                try:
                    array._data  # noqa: B018  (reading computes it, and what it reads)
                except MXNetError:
                    pass  # a failed computation: reading the array raises, not backward


def _free(nodes: Sequence[Node]) -> None:
    for node in nodes:
        if node.marked is None or node.inputs:
            if node.value is not None and node.pending is not None:
                _keep_computed(node)
            node.value = None
            node.freed = True


def _keep_computed(node: Node) -> None:
    """Give the live arrays of ``node``'s outputs that are still pending the values
    computed for the node (read through another output, as BatchNorm's moving
    statistics are when its output was read): they outlive the graph."""
    for index, ref in enumerate(node.pending):
        array = ref()
        if array is not None and array._value is None:
            array._settle(node.value[index])


def backward(
    heads: Any, head_grads: Any = None, retain_graph: bool = False, train_mode: bool = True
) -> None:
    """Compute the gradients of ``heads`` into the ``.grad`` buffers of the marked
    variables they depend on (written or added per their ``grad_req``).

    ``head_grads`` gives each head's gradient (None means ones). Without
    ``retain_graph`` the recorded graph is freed afterwards. ``train_mode`` is
    accepted for MXNet compatibility: train/predict behaviour is fixed when the
    forward pass is recorded.
    """
    # collect (a step computed ahead by an earlier backward is now stale; a
    # ContextVar's get costs less than its set, which copies the context's map)
    if _state.staged_step.get() is not None:
        _state.staged_step.set(None)
    heads = _as_list(heads)
    entries = _head_entries(heads, "backward")
    grads_in = _head_gradients(heads, head_grads)
    # key: the graph as recognised (a training loop's step: no key at all)
    tape = _state.last_tape.get()
    graph = recognition.recognise(entries, _leaf_role, _marked)
    nodes, wrt = graph.nodes, graph.wrt
    if not wrt:
        raise MXNetError(
            "backward: no variable marked with attach_grad() (or "
            "mark_variables) is behind these heads"
        )
    if _state.anomaly:
        anomaly.check(entries, nodes, wrt, [None if g is None else g._data for g in grads_in])
    # fetch and run (gradients with grad_req 'write' may be computed straight
    # into their buffers)
    marked = [node.marked for node in wrt]
    reqs = [array._grad_req for array in marked]  # (a variable overwritten raises here)
    buffers = [array._grad._data for array in marked]
    destinations = [buffer if req == "write" else None for req, buffer in zip(reqs, buffers)]
    grads = _run_program(
        entries, nodes, wrt, grads_in, destinations, graph.signature, graph.template
    )
    graph.remember()
    # write (a gradient computed into its buffer is there already)
    for array, req, buffer, grad in zip(marked, reqs, buffers, grads):
        if grad is not buffer:
            write_gradient(buffer, grad, req)
        array._fresh = True  # (the _fresh_grad flag)
    # what a Trainer's step after this learns to fuse (see training_step)
    template = graph.template
    # (only a template that keeps a program: one holding a per-call callback keeps
    # none, and must not keep its Function alive either)
    _state.last_backward.set(
        None if template is None or template.memo is None else (template, marked)
    )
    if not retain_graph:
        if tape is not None and not graph.by_tape_template:
            _settle_outside(tape, nodes)
        _free(nodes)
        if tape is not None and tape.holds_last(entries[0].node):
            _state.last_tape.set(None)  # its graph is freed: keep nothing alive


def grad(
    heads: Any,
    variables: Any,
    head_grads: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    train_mode: bool = True,
) -> list[NDArray]:
    """Gradients of ``heads`` with respect to ``variables``, returned as new arrays
    (no ``.grad`` buffer is written).

    With ``create_graph=True`` the gradient computation is itself recorded, so the
    results can be differentiated again. ``retain_graph`` defaults to
    ``create_graph``.
    """
    heads, variables = _as_list(heads), _as_list(variables)
    entries = _head_entries(heads, "grad")
    grads_in = _head_gradients(heads, head_grads)
    nodes = topo_order(entries)
    in_graph = {id(node) for node in nodes}
    for var in variables:
        if (
            not isinstance(var, NDArray)
            or var._entry is None
            or not var._entry.node.is_variable
            or id(var._entry.node) not in in_graph
        ):
            raise MXNetError(
                "grad: every variable must be an array marked with "
                "attach_grad() that the heads were computed from"
            )
    wrt = [var._entry.node for var in variables]
    if _state.anomaly:
        anomaly.check(entries, nodes, wrt, [None if g is None else g._data for g in grads_in])
    if create_graph:
        results = _recorded_gradients(entries, nodes, wrt, heads, grads_in)
    else:
        results = [
            NDArray(g) if g is not None else NDArray(np.zeros_like(v._data))
            for g, v in zip(_run_program(entries, nodes, wrt, grads_in), variables)
        ]
    if not (create_graph if retain_graph is None else retain_graph):
        _free(nodes)
    return results


def _recorded_gradients(entries, nodes, wrt, heads, head_grads) -> list[NDArray]:
    """Run the gradient graph through the recording frontend, so that the results
    have history reaching back to the variables.

    The gradient graph is derived once per graph structure (a cached program whose
    inputs are the recorded nodes it reads) and replayed op by op each time.
    """
    graph_key, position = structural_key(nodes, entries, _leaf_role)
    wrt_positions = tuple([position[id(node)] for node in wrt])
    given_flags = tuple([g is not None for g in head_grads])
    key = ("create_graph", graph_key, wrt_positions, given_flags)
    template = compiler.cached_program(
        key,
        lambda: compiler.Program(
            nodes,
            graph_key[1],
            wrt_positions,
            given_flags,
            (),
            lambda node: True,
            compiled=False,
        ),
    )
    supplied = [g for g in head_grads if g is not None]
    given = {}
    for var, (pos, index) in zip(template.graph.inputs, template.input_refs):
        if pos < 0:
            given[var] = (supplied[-1 - pos],)
        else:
            node = nodes[pos]
            value = None if node.value is None else node.value[index]
            given[var] = (NDArray(value, Entry(node, index)),)
    outputs = template.graph.outputs
    with record(train_mode=is_training()):
        values = iter(evaluate(template.graph.live_outputs(), given, _apply_recorded))
        # A gradient that is structurally zero (x > 0 has none) is still a recorded
        # array whose graph reaches the variable, as MXNet's: differentiating it
        # again writes zeros, where a plain array would have no history.
        return [
            next(values)
            if out is not None
            else invoke("zeros_like", (NDArray(node.value[0], Entry(node, 0)),), {})
            for out, node in zip(outputs, wrt)
        ]


def _apply_recorded(node: Node, args: Sequence[NDArray]) -> tuple:
    result = invoke(node.op, args, node.attrs)
    return tuple(result) if isinstance(result, list) else (result,)


def get_symbol(x: NDArray) -> Any:
    """The recorded history of ``x`` as a :class:`symgrad.symbol.Symbol`."""
    from ._deferred import as_recorded
    from .symbol import Symbol

    return Symbol(as_recorded(_head_entries([x], "get_symbol")))


from .function import Function  # noqa: E402  (Function uses the scopes above)

__all__ = [
    "record",
    "pause",
    "train_mode",
    "predict_mode",
    "set_recording",
    "set_training",
    "is_recording",
    "is_training",
    "mark_variables",
    "backward",
    "grad",
    "get_symbol",
    "Function",
    "set_detect_anomaly",
    "detect_anomaly",
    "is_anomaly_enabled",
    "AnomalyError",
]
