"""Deferred values while recording.

Inside ``autograd.record()`` an op whose inputs have history is only added to
the graph: its value is computed when somebody reads it, or by the compiled
program that ``backward`` runs, which computes forward values and gradients in
one fused pass. Outside recording everything computes eagerly.

Arrays whose values are still pending are tracked weakly, so that an in-place
write to any array first computes every pending value (otherwise a pending value
would later read the new data). The tracking is a plain list of weak references,
pruned of dead and settled arrays whenever it doubles: recording an op is the hot
path, so it pays one append and nothing else.

Threads share the list. Pruning and settling take a lock and only ever remove the
part of the list they looked at, so an append made by another thread meanwhile is
never lost; and settling tolerates a graph that another thread's ``backward``
frees while it is being read (such a value can never be read anyway).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import symgrad_compiler as compiler
from symgrad_compiler import Entry, Node, evaluate, get_op, topo_order

from . import _state
from ._recorded import program_input
from .base import MXNetError

if TYPE_CHECKING:
    from .ndarray.ndarray import NDArray

_pending: list[weakref.ref] = []
_prune_at = 1024
_lock = threading.Lock()

# Nodes whose computation failed (their error was raised to whoever read them), and
# per thread the node of the last failure: ``wait_all`` raises only failures no read
# has raised yet, as MXNet's ``waitall`` rethrows an error once.
_failed: weakref.WeakSet[Node] = weakref.WeakSet()
_local = threading.local()


def track(array: NDArray) -> weakref.ref:
    """Note a deferred array; returns the weak reference kept for it."""
    ref = weakref.ref(array)
    _pending.append(ref)
    if len(_pending) >= _prune_at:
        _prune()
    return ref


def _prune() -> None:
    global _prune_at
    with _lock:
        count = len(_pending)
        # inlined _is_pending: this runs over thousands of references
        keep = [r for r in _pending[:count] if (a := r()) is not None and a._value is None]
        del _pending[:count]  # appends made while we filtered stay
        _pending.extend(keep)
        _prune_at = max(1024, 2 * len(_pending))


def _is_pending(array: NDArray | None) -> bool:
    return array is not None and array._value is None


_FREED = "the value of this array was never computed and its graph has been freed by backward"


class _RecordedValues:
    """The values known in a recorded graph, as the interpreter reads them: a
    node's own values once computed. A freed node counts as known and raises
    when read: its value is gone for good (and so is one that another thread's
    backward freed since it was looked at)."""

    __slots__ = ()

    def __contains__(self, node: object) -> bool:
        return node.value is not None or node.freed

    def __getitem__(self, node: Node) -> tuple:
        value = node.value  # read once: see above
        if value is None:
            raise MXNetError(_FREED)
        return value


_RECORDED = _RecordedValues()


def _apply_and_keep(node: Node, args: Sequence[Any]) -> tuple:
    """Run one pending node with numpy and keep its values on it (a failure is
    noted for ``wait_all``, then raised)."""
    try:
        result = node.op.impl(*args, **node.attrs)
    except Exception:
        _failed.add(node)
        _local.failed = node
        raise
    value = result if isinstance(result, tuple) else (result,)
    node.value = value
    return value


def compute(entry: Entry) -> None:
    """Compute the value of ``entry`` and of every pending node it needs, storing
    them on the nodes: the interpreter's walk, from the values already known,
    each node's values kept as it computes them; or, where the walk would run a
    product, a convolution or a pooling, a program of the backend in force that
    computes ``entry``'s node from the known values (:func:`_compute_compiled`)."""
    if not _compute_compiled(entry):
        evaluate([entry], _RECORDED, _apply_and_keep)


# Pending work that is worth a compiled program when it must be computed while
# recording (a value read, or the input of an op that runs at once): numpy's
# convolution and pooling are several times slower than the backend's kernels.
# Elementwise work alone is not.
COSTLY_KINDS = frozenset({"blas", "pool"})


def _compute_compiled(entry: Entry) -> bool:
    """Compute ``entry``'s node with a cached program of the backend in force and
    keep its values; False (nothing done) where the interpreter's walk should:
    no costly op to run, the interpreter in force, anomaly detection on, or a
    freed value the walk must report."""
    if _state.anomaly or compiler.backend() == "interpreter":
        return False
    order = topo_order([entry], _RECORDED)
    known = [node in _RECORDED for node in order]
    if not any(
        not is_known and node.op.kind in COSTLY_KINDS for node, is_known in zip(order, known)
    ):
        return False
    if any(is_known and node.value is None for node, is_known in zip(order, known)):
        return False  # freed: the walk raises the error
    # the node's values, and those of the costly ops on the way (kept as the walk
    # keeps every value): a backward then reads them rather than computing them
    # again (autograd's _READ_ONCE_COMPUTED). A Dropout in training mode reads its
    # input now, and a network's whole forward ran twice per step without them.
    at = order.index(entry.node)
    kept = [
        k
        for k, (node, is_known) in enumerate(zip(order, known))
        if k == at or (not is_known and node.op.kind in COSTLY_KINDS)
    ]
    values = tuple([(k, index) for k in kept for index in range(len(order[k].types))])
    key = ("deferred", _subgraph_key(order, known), values, compiler.backend())
    program = compiler.cached_program(
        key, lambda: compiler.Program(_cut(order, known), (), (), (), values, _never)
    )
    try:
        results = program.run(order, program_input, ())
    except Exception:  # noqa: BLE001  (the walk computes it again, and raises as it does)
        return False
    start = 0
    for k in kept:
        count = len(order[k].types)
        order[k].value = tuple(results[start : start + count])
        start += count
    return True


def _subgraph_key(order: Sequence[Node], known: Sequence[bool]) -> tuple:
    """The pending subgraph ``order`` up to its known values: each node's op,
    attrs, wiring and types; a known node only its types."""
    position = {id(node): k for k, node in enumerate(order)}
    parts: list[tuple] = []
    for node, is_known in zip(order, known):
        if is_known:
            parts.append(("known", node.types))
        else:
            wiring = tuple([(position[id(e.node)], e.index) for e in node.inputs])
            parts.append((node.op.name, tuple(node.attrs.items()), wiring, node.types))
    return tuple(parts)


def _cut(order: Sequence[Node], known: Sequence[bool]) -> list[Node]:
    """``order`` as a closed graph: each known node a leaf of its types (the
    program reads its values), the pending nodes rewired to those leaves."""
    copies: dict[int, Node] = {}
    for node, is_known in zip(order, known):
        inputs: tuple[Entry, ...] = ()
        if not is_known:
            inputs = tuple([Entry(copies[id(e.node)], e.index) for e in node.inputs])
        copies[id(node)] = Node(node.op, node.attrs, inputs, node.types, node._name)
    return [copies[id(node)] for node in order]


def _never(node: Node) -> bool:
    return False


def wait_all() -> None:
    """Compute every pending value (``mx.nd.waitall``), as MXNet's waits for all
    pushed work: each array computes at most once, and a value whose graph a
    ``backward`` freed is skipped (it can never be read).

    Raises
    ------
    MXNetError
        The first error of a failed computation that no read has raised yet, after
        every other pending value was computed. An array whose computation failed
        stays pending: reading it raises again; it is no longer waited on.
    """
    if not _pending:
        return  # (a training loop's waitall: backward computed everything)
    with _lock:
        count = len(_pending)
        refs = _pending[:count]
        del _pending[:count]
    raised_before = set(_failed) if _failed else set()
    first: MXNetError | None = None
    for ref in refs:
        array = ref()
        if not _is_pending(array) or _freed(array):
            continue
        _local.failed = None
        try:
            array._data  # noqa: B018  (reading computes it)
        except MXNetError as err:
            if _local.failed not in raised_before:
                first = first or err
    if first is not None:
        raise first


def _freed(array: NDArray) -> bool:
    entry = array._entry
    return entry is None or entry.node.freed


def settle_all() -> None:
    """Compute every pending value (before an in-place write)."""
    if not _pending:
        return
    with _lock:
        count = len(_pending)
        refs = _pending[:count]
        del _pending[:count]
    for ref in refs:
        array = ref()
        if array is not None and array._value is None:  # (_is_pending, inlined)
            try:
                array._data  # noqa: B018  (reading computes it)
            except MXNetError:
                pass  # its graph was freed (by another thread): it can never be read


# ---------------------------------------------------------------------------
# ops with a side effect, recorded in a pure form
# ---------------------------------------------------------------------------
# BatchNorm in training updates its moving statistics in place, so ``invoke``
# would run it at once (and the convolution before it, in a program of its own).
# Recorded instead as ``_batch_norm_train``, a pure op whose outputs include the
# new statistics, it is deferred like any other: the moving-statistic arrays take
# those outputs as their pending values, so reading them computes them, and the
# program ``backward`` runs computes them with the rest of the step.

_BATCH_NORM = get_op("BatchNorm")
_BATCH_NORM_TRAIN = get_op("_batch_norm_train")
_TRAIN_ATTRS = ("eps", "momentum", "fix_gamma", "output_mean_var", "axis")


def _takes_pending_value(array: NDArray, dtype: Any) -> bool:
    """Whether ``array`` can be given a pending value: a float array of ``dtype``,
    not marked for a gradient, whose buffer was never handed out (whoever holds
    it would expect the update written into it)."""
    entry = array._entry
    return (
        array.dtype == dtype and (entry is None or entry.node.marked is None) and not array._shared
    )


def _give_pending_value(array: NDArray, node: Node, index: int) -> None:
    """Make ``array``'s value output ``index`` of the recorded ``node``, pending."""
    old = array._entry
    if old is not None and old.node.pending is not None and not old.node.freed:
        # another node's output it was: that node no longer settles this array
        refs = list(old.node.pending)
        if refs[old.index]() is array:
            refs[old.index] = _no_array
            old.node.pending = tuple(refs)
    array._value = None
    array._entry = Entry(node, index)
    refs = list(node.pending or ())
    refs[index] = track(array)
    node.pending = tuple(refs)


def _no_array() -> None:
    """The weak reference of an output no array holds."""
    return None


def _record_batch_norm(inputs: Sequence[NDArray], attrs: dict) -> Any:
    """BatchNorm recorded as ``_batch_norm_train`` (see above), returning its
    visible outputs; None (it runs at once, as before) outside training, with
    global statistics, for integer data, and where the moving statistics cannot
    take pending values (see :func:`_takes_pending_value`)."""
    canonical = _BATCH_NORM.canonical_attrs(attrs)
    if not canonical["is_train"] or canonical["use_global_stats"] or len(inputs) != 5:
        return None
    data, moving_mean, moving_var = inputs[0], inputs[3], inputs[4]
    dtype = np.dtype(data.dtype)
    if dtype.kind != "f" or moving_mean is moving_var:
        return None
    if not (_takes_pending_value(moving_mean, dtype) and _takes_pending_value(moving_var, dtype)):
        return None
    from .ndarray.ndarray import invoke  # (the array module imports this one)

    result = invoke(_BATCH_NORM_TRAIN, inputs, {k: canonical[k] for k in _TRAIN_ATTRS})
    node = (result[0] if isinstance(result, list) else result)._entry.node
    _give_pending_value(moving_mean, node, 3)
    _give_pending_value(moving_var, node, 4)
    return result


# op name -> how a recorded call of it is made pure (None: the call runs at once)
PURE_FORMS: dict[str, Callable[[Sequence[NDArray], dict], Any]] = {
    "BatchNorm": _record_batch_norm,
}


def _batch_norm_as_recorded(node: Node, inputs: tuple[Entry, ...]) -> Node:
    """The BatchNorm call a ``_batch_norm_train`` node stands for: its first three
    outputs are BatchNorm's (the new moving statistics, 3 and 4, are BatchNorm's
    in-place update, which MXNet's graph does not show)."""
    from ._recorded import RecordedNode

    attrs = _BATCH_NORM.canonical_attrs(dict(node.attrs, is_train=True))
    return RecordedNode(_BATCH_NORM, attrs, inputs, node.types[:3], node._name)


# pure op name -> the node of the op it stands for, as MXNet records it
_RECORDED_FORMS: dict[str, Callable[[Node, tuple[Entry, ...]], Node]] = {
    "_batch_norm_train": _batch_norm_as_recorded,
}


def as_recorded(entries: Sequence[Entry]) -> list[Entry]:
    """``entries`` with every pure form in their graph (see ``PURE_FORMS``) turned
    back into the op the user called, so that ``autograd.get_symbol`` shows (and
    exports) MXNet's ops; the nodes no pure form feeds are kept, shared."""
    order = topo_order(entries)
    if not any(node.op.name in _RECORDED_FORMS for node in order):
        return list(entries)
    made: dict[int, Node] = {}

    def rebound(entry: Entry) -> Entry:
        node = made[id(entry.node)]
        # (an output the op the user called has not: the new moving statistics,
        # read in the same recording, stay the pure form's)
        return Entry(node, entry.index) if entry.index < len(node.types) else entry

    for node in order:
        inputs = tuple([rebound(e) for e in node.inputs])
        form = _RECORDED_FORMS.get(node.op.name)
        if form is not None:
            made[id(node)] = form(node, inputs)
        elif all(new.node is old.node for new, old in zip(inputs, node.inputs)):
            made[id(node)] = node
        else:
            # (a recorded node: its value and marking go with it)
            twin = copy.copy(node)
            twin.inputs = inputs
            made[id(node)] = twin
    return [rebound(e) for e in entries]
