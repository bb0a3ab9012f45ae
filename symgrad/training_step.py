"""One compiled training step: a Trainer's optimizer updates fused into the
program that computes their gradients.

A training loop repeats ``record``, ``backward``, ``trainer.step``. The
updates cannot run inside ``backward`` (the learning rate, the batch size and
the optimizer's counters are known only at ``step``), so the step is computed
*ahead* and committed only if it is what ``step`` then does:

1. **Learn** (a step run as usual). ``Trainer.step`` runs its updater with the
   update ops *captured* (:class:`Capture`) instead of run. If every captured
   call is an update op with a rule in ``symgrad_compiler.ops.update_rules``
   on a weight the last ``backward`` differentiated (``grad_req='write'``) and
   its gradient, the calls are run, and a :class:`StepPlan` is kept with the
   program ``backward`` ran (its memo on the step template).
2. **Ahead** (the next steps). ``backward`` recognises the graph, finds the plan,
   and foresees the calls ``step`` will make (:meth:`StepPlan.foresee`): the
   last step's calls again while the steps repeat (SGD at a fixed rate), or else
   the updater run once more under a capture that runs nothing, with the
   optimizer's counters restored afterwards and a copy of its scheduler. The
   program it runs is the backward program with those updates appended
   (``Program(..., updates=...)``, keyed like any program): one compiled call
   computes the gradients (into the ``.grad`` buffers, as always) and the
   updated weights and states, into buffers of the plan's own.
3. **Commit.** ``Trainer.step`` captures its calls again. If they are the
   foreseen ones (the same ops on the same arrays with equal attrs), the last
   backward bound those weights where the plan reads them (the template knows
   the graph's structure, not its arrays), and no array was written in place
   since (a clipped gradient, a weight set by hand, ``zero_grad``), the
   computed weights and states become the arrays' buffers (the old buffers
   the plan's, for the next step); if not, the captured calls run as usual,
   and the step is learnt anew. Either way the results are those of running
   the updates one by one.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

import symgrad_compiler as compiler
from symgrad_compiler import OpDef
from symgrad_compiler.ops.update_rules import rule_for, scalar_inputs
from symgrad_compiler.program import UpdateSpec

from . import _state
from ._deferred import settle_all
from .ndarray.ndarray import swap_buffers

__all__ = ["Capture", "StepPlan", "Foreseen", "update"]


class Call(NamedTuple):
    """One captured update-op call: ``op(*inputs, **attrs)``, ``out=inputs[0]``."""

    op: OpDef
    inputs: tuple
    attrs: dict


class Capture:
    """Collects the update ops a Trainer's updater calls (``mx.nd.sgd_update(...,
    out=weight)`` and the like), without running them.

    An update op it cannot defer (several visible outputs, a multi-tensor
    update) runs every call collected so far and itself at once, and the
    capture collects nothing more: the order of the updates is kept. A ``dry``
    capture (a step foreseen inside ``backward``) never runs an update: it
    only notes that the step cannot be fused.
    """

    def __init__(self, dry: bool = False) -> None:
        self.calls: list[Call] = []
        self.fusable = True
        self.dry = dry

    def take(self, opdef: OpDef, inputs: Sequence[Any], attrs: dict) -> Any:
        """Collect the call (the caller's ``out=weight`` then writes the weight
        into itself: nothing), or run it (see the class)."""
        if self.fusable and opdef.visible_outputs == 1 and rule_for(opdef.name) is not None:
            self.calls.append(Call(opdef, tuple(inputs), opdef.canonical_attrs(attrs)))
            return inputs[0]
        if self.dry:
            # foreseeing must change nothing: running this update inside backward
            # would apply it twice (once more at step)
            self.fusable = False
            return inputs[0]
        self.run()
        self.fusable = False
        from .ndarray.ndarray import _run

        return _run(opdef, inputs, attrs, False)

    def run(self) -> None:
        """Run the collected calls as the updater would have."""
        from .ndarray.ndarray import _run

        calls, self.calls = self.calls, []
        for call in calls:
            call.inputs[0][:] = _run(call.op, call.inputs, call.attrs, False)

    def collect(self, updater: Any, indices: list, grads: list, weights: list) -> None:
        """Run ``updater(indices, grads, weights)`` collecting its update ops."""
        token = _state.update_capture.set(self)
        try:
            updater(indices, grads, weights)
        finally:
            _state.update_capture.reset(token)


def _same_calls(a: Sequence[Call], b: Sequence[Call]) -> bool:
    if a is b:  # a steady step's calls, foreseen as the last step's list itself
        return True
    return len(a) == len(b) and all(
        x.op is y.op
        and len(x.inputs) == len(y.inputs)
        and all(p is q for p, q in zip(x.inputs, y.inputs))
        and x.attrs == y.attrs
        for x, y in zip(a, b)
    )


class Foreseen:
    """A step computed ahead by ``backward``: the calls foreseen, the program's
    extra inputs for them (states, then scalars, per call) and, once it ran,
    ``results``: per call the new weight and states (computed into the plan's
    buffers where the program could)."""

    def __init__(self, plan: StepPlan, calls: list[Call], writes: int, scalars: list | None = None):
        self.plan = plan
        self.calls = calls
        self.writes = writes
        # the backward before this one: a commit needs the one that computed it
        # (not one that raised after computing it, leaving the earlier one's)
        self.earlier = _state.last_backward.get()
        self.results: list[np.ndarray] = []  # the new weights and states, once run
        if scalars is None:
            scalars = _scalars_of(calls)
        extra: list[np.ndarray] = []
        for call, values in zip(calls, scalars):
            inputs = call.inputs
            if len(inputs) > 2:  # (sgd_update has no state)
                extra.extend([x._data for x in inputs[2:]])
            extra.extend(values)
        self.extra = extra

    def commit(self, trainer: Any, calls: Sequence[Call]) -> bool:
        """Write the computed weights and states if ``calls`` are the ones foreseen
        for ``trainer`` and no array was written in place since; say whether."""
        last = _state.last_backward.get()
        if (
            self.plan.trainer() is not trainer
            or _state.in_place_writes != self.writes
            or not _same_calls(self.calls, calls)
            or last is None
            or last is self.earlier
            or not self.plan.binds(last[1])
        ):
            return False
        buffers = self.plan.buffers
        arrays = self.plan.written_by(calls)
        settle_all()  # (once for every swap below)
        # computed into the plan's buffers: they become the arrays', and the arrays'
        # old buffers the plan's (no copy)
        swap_buffers(arrays, self.results, buffers)
        # calls equal to those foreseen; a steady plan foresaw its last step's
        self.plan.note(calls, repeated=self.calls is self.plan.last)
        return True


class StepPlan:
    """What a step template's backward fuses: the updates ``trainer`` made
    after it (``specs``), and how to foresee them (the updater and its
    arguments)."""

    def __init__(
        self,
        trainer: Any,
        updater: Any,
        arguments: tuple[list, list, list],
        specs: tuple[UpdateSpec, ...],
        calls: list[Call],
    ):
        self.trainer = weakref.ref(trainer)
        self.updater = updater
        self.arguments = arguments
        self.specs = specs
        self.calls = calls
        self.program: Any = None  # the fused program, fetched at the first step ahead
        # the calls of the last step, and whether they repeated the step's before
        # (then the next step is foreseen as the same calls, without the updater)
        self.last = calls
        self.steady = False
        self.scalars: list | None = None  # the program's scalar inputs for ``last``
        # what the updater read when it made ``last`` (see ``_reads``): while it
        # is unchanged, a steady step's calls are ``last`` without running it
        self.reads: tuple | None = None
        self.buffers = [
            np.empty(x.shape, x.dtype) for call in calls for x in (call.inputs[0], *call.inputs[2:])
        ]
        self._written: tuple[Sequence[Call], list] | None = None  # see written_by

    @classmethod
    def learn(cls, trainer: Any, updater: Any, arguments: tuple, calls: list[Call]) -> Any:
        """The plan for ``calls`` after the last backward, or None where the step
        cannot be fused (see the module docstring)."""
        last = _state.last_backward.get()
        if last is None or not calls or trainer._kvstore is not None:
            return None
        template, variables = last
        if template.memo is None:
            return None
        where = {id(array): k for k, array in enumerate(variables)}
        specs = []
        for call in calls:
            weight, grad = call.inputs[0], call.inputs[1]
            k = where.get(id(weight))
            if (
                k is None
                or weight._grad is not grad
                or weight._grad_req != "write"
                or weight.dtype not in (np.float32, np.float64)
                or any(s.shape != weight.shape or s.dtype != weight.dtype for s in call.inputs[2:])
            ):
                return None
            rule = rule_for(call.op.name)
            assert rule is not None
            specs.append(
                UpdateSpec(
                    call.op.name,
                    k,
                    tuple(compiler.TensorType(s.shape, np.dtype(s.dtype)) for s in call.inputs[2:]),
                    rule.structure(call.attrs),
                )
            )
        plan = cls(trainer, updater, arguments, tuple(specs), calls)
        template.memo = template.memo._replace(step=plan)
        return plan

    def written_by(self, calls: Sequence[Call]) -> list:
        """The arrays ``calls`` write, in the order of :attr:`buffers`: per call
        its weight, then its states. Kept for the list of calls last asked (a
        steady plan's, every step; a list of calls is never changed once made)."""
        written = self._written
        if written is not None and written[0] is calls:
            return written[1]
        arrays = [array for call in calls for array in (call.inputs[0], *call.inputs[2:])]
        self._written = (calls, arrays)
        return arrays

    def binds(self, variables: Sequence[Any]) -> bool:
        """Whether the backward that differentiated ``variables`` (its marked
        arrays, in its program's order) had, at each position the plan's updates
        read, the weight the plan's call updates, writing its gradient buffer.

        The step template recognises a graph by its structure, not by which arrays
        are bound where: a network calling two blocks of one shape in another
        order gives the same template, and the program would update one weight
        from another's values."""
        for spec, call in zip(self.specs, self.calls):
            if spec.grad >= len(variables):
                return False
            weight = variables[spec.grad]
            if (
                weight is not call.inputs[0]
                or weight._grad is not call.inputs[1]
                or weight._grad_req != "write"
            ):
                return False
        return True

    def note(self, calls: Sequence[Call], repeated: bool = False) -> None:
        """Note the calls of a step committed: the plan is steady while each
        step's calls equal the step's before (SGD at a fixed learning rate).
        ``repeated``: already known to (the commit compared them)."""
        steady = repeated or _same_calls(self.last, calls)
        if not steady:
            self.scalars = None
        elif not self.steady:  # (while it stays steady, the scalars are those)
            self.scalars = _scalars_of(calls)
        self.steady = steady
        if calls is not self.last:  # (a list of calls is never changed once made)
            self.last = list(calls)

    def foresee(self) -> Foreseen | None:
        """The calls the trainer's next step will make, or None if they are not
        those the plan fuses. A steady plan foresees the last step's calls again
        (a step that then differs is not committed, and learnt anew); otherwise
        the updater runs under a capture, the optimizer's counters put back."""
        trainer = self.trainer()
        optimizer = self.updater.optimizer
        # (load_states may have put another optimizer into the updater since)
        if trainer is None or not _fusable_optimizer(optimizer):
            return None
        if self.steady and optimizer.lr_scheduler is None:
            # (a schedule's changes are foreseen by asking it: the updater below)
            return Foreseen(self, self.last, _state.in_place_writes, self.scalars)
        counts = optimizer._index_update_count
        saved, num_update = dict(counts), optimizer.num_update
        # a scheduler keeps state (FactorScheduler's rate falls when it is asked
        # past a boundary): a copy answers here, so that trainer.learning_rate
        # read before step is unchanged and the rate changes (and logs) at step
        scheduler = optimizer.lr_scheduler
        muted = logging.root.manager.disable
        capture = Capture(dry=True)
        try:
            if scheduler is not None:
                optimizer.lr_scheduler = copy.copy(scheduler)
                logging.disable(max(muted, logging.INFO))
            capture.collect(self.updater, *self.arguments)
        except Exception:  # noqa: BLE001  (step raises it, as it would unfused)
            return None
        finally:
            if scheduler is not None:
                logging.disable(muted)
                optimizer.lr_scheduler = scheduler
            counts.clear()
            counts.update(saved)
            optimizer.num_update = num_update
        calls = capture.calls
        if not capture.fusable or len(calls) != len(self.calls):
            return None
        for call, known, spec in zip(calls, self.calls, self.specs):
            if (
                call.op is not known.op
                or any(p is not q for p, q in zip(call.inputs, known.inputs))
                or rule_for(call.op.name).structure(call.attrs) != spec.structure  # type: ignore[union-attr]
            ):
                return None
        return Foreseen(self, calls, _state.in_place_writes)


def _scalars_of(calls: Sequence[Call]) -> list[list[np.ndarray]]:
    """Per call, its update rule's scalars as the program's 0-d inputs."""
    result = []
    for call in calls:
        rule = rule_for(call.op.name)
        assert rule is not None  # checked when the plan was learnt
        result.append(scalar_inputs(rule, call.attrs, call.inputs[0].dtype))
    return result


def _fusable_optimizer(optimizer: Any) -> bool:
    """Optimizers whose update is exactly their update op and counters (run twice
    per step, once ahead): SGD and Adam, not subclasses that may do more."""
    return type(optimizer) in (_EXACT or _exact_optimizers())


_EXACT: tuple[type, ...] = ()  # _exact_optimizers(), once asked (read twice a step)


def _exact_optimizers() -> tuple[type, ...]:
    """SGD and Adam, imported at the first ask (the optimizers import the
    ndarray layer) and kept in ``_EXACT``."""
    global _EXACT
    from .optimizer import SGD, Adam

    _EXACT = (SGD, Adam)
    return _EXACT


def _reads(updater: Any, indices: Sequence[int]) -> tuple | None:
    """What SGD's update reads to make its calls, besides the arrays: its
    hyperparameters and, per index, the learning rate and weight decay it would
    use (the arrays it updates are compared by identity: ``_repeats``). None
    for other optimizers (Adam's calls change every step: its rate follows the
    step count)."""
    optimizer = updater.optimizer
    if (
        type(optimizer) is not (_EXACT or _exact_optimizers())[0]
        or optimizer.lr_scheduler is not None
    ):
        return None
    # SGD's rate of index i is lr times its multiplier (no scheduler: see above), and
    # its decay wd times its own: the factors, compared apart, decide the products
    multiplier, lr_mult, wd_mult = optimizer._multiplier, optimizer.lr_mult, optimizer.wd_mult
    return (
        optimizer,
        optimizer.lr,
        optimizer.wd,
        optimizer.momentum,
        optimizer.rescale_grad,
        optimizer.clip_gradient,
        optimizer.lazy_update,
        optimizer.multi_precision,
        tuple(indices),
        tuple([multiplier(i, lr_mult, "lr_mult") for i in indices]),
        tuple([multiplier(i, wd_mult, "wd_mult") for i in indices]),
    )


def _repeats(
    foreseen: Foreseen, updater: Any, indices: Sequence[int], grads: list, weights: list
) -> bool:
    """Whether ``updater(indices, grads, weights)`` would make exactly the calls of a
    steady plan's last step, which ``foreseen`` repeats: the same weights,
    gradients and states (one call each, in order), and everything else the
    updater reads unchanged since it made them."""
    plan = foreseen.plan
    calls = foreseen.calls
    if (
        plan.reads is None
        or calls is not plan.last
        or plan.updater is not updater
        or len(calls) != len(weights)
    ):
        return False
    states = updater.states
    for call, index, grad, weight in zip(calls, indices, grads, weights):
        inputs = call.inputs
        if inputs[0] is not weight or inputs[1] is not grad:
            return False
        state = states.get(index)
        if (inputs[2] if len(inputs) > 2 else None) is not state:
            return False
    return _reads(updater, indices) == plan.reads


def _through_master_copy(optimizer: Any, weights: Sequence[Any]) -> bool:
    """Whether ``optimizer`` updates a float32 copy of some float16 weight and
    casts it back (``multi_precision``): the cast reads the copy right after its
    update op, so the update cannot be captured to run later."""
    return bool(optimizer.multi_precision) and any(w.dtype == np.float16 for w in weights)


def update(trainer: Any, updater: Any, indices: list, grads: list, weights: list) -> None:
    """``updater(indices, grads, weights)`` for ``trainer.step``: committing the
    step the last backward computed ahead when it is this one, learning to
    compute it ahead otherwise (see the module docstring)."""
    foreseen = _state.staged_step.get()
    if foreseen is not None:  # (a ContextVar's set costs more than its get)
        _state.staged_step.set(None)
    if not _fusable_optimizer(updater.optimizer) or _through_master_copy(
        updater.optimizer, weights
    ):
        updater(indices, grads, weights)
        return
    if foreseen is not None and _repeats(foreseen, updater, indices, grads, weights):
        # the updater would make the foreseen calls again: count the updates as
        # it would, without making the calls (the program computed them)
        if foreseen.commit(trainer, foreseen.calls):
            updater.optimizer._update_count(list(indices))
            _state.last_backward.set(None)
            return
        foreseen = None  # (the same calls captured would not commit either)
    capture = Capture()
    capture.collect(updater, indices, grads, weights)
    if not capture.fusable:
        _state.last_backward.set(None)
        return
    if foreseen is not None and foreseen.commit(trainer, capture.calls):
        # learnt: another Trainer stepping after this backward must not replace
        # the plan (two Trainers over parts of one network: the first one fuses)
        foreseen.plan.reads = _reads(updater, indices)
        _state.last_backward.set(None)
        return
    calls = list(capture.calls)
    capture.run()
    StepPlan.learn(trainer, updater, (list(indices), list(grads), list(weights)), calls)
    _state.last_backward.set(None)
