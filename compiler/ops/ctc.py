"""Connectionist Temporal Classification: MXNet's ``CTCLoss`` and the two ops its
gradients are made of.

``CTCLoss(data, label[, data_lengths][, label_lengths])`` takes unnormalised
activations ``data`` (T, N, C) and integer labels (N, L) and returns, per
sequence, ``-log p(label | data)``: minus the log of the summed probability of every
alignment (a path of one class per frame, collapsing repeats and dropping blanks
gives the label) under the per-frame softmax of ``data``. With
``blank_label='first'`` the blank is class 0 and a label row ends at its first 0;
with ``'last'`` the blank is class C-1 and a row ends at its first -1;
``use_label_lengths``/``use_data_lengths`` read the lengths from inputs instead.
A label that no alignment fits into its frames gets loss 0 and no gradient, as
MXNet gives it.

Everything runs in log space (forward and backward recursions of the alignment
lattice over states ``blank, l1, blank, l2, ..., blank``), so long sequences do
not underflow.

The gradient is built from registered ops: with ``z = log_softmax(data)`` and
``gamma = _ctc_posterior(z, ...)``, the expected number of times each frame emits
each class under the posterior over alignments,

    d loss / d data = softmax(data) * (frame in sequence) - gamma.

``gamma`` is the gradient of a log-partition function (``log p`` as a function
of the per-frame scores ``z``), so its own derivative is a covariance of
indicators; ``_ctc_posterior_vjp`` contracts it with a cotangent through one more
pair of recursions carrying conditional expectations. Second-order gradients of
CTCLoss are therefore exact; a third order raises, naming the vjp op.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, one_of, register
from .common import F

CTC_ATTRS = {
    "use_data_lengths": Attr(as_bool, False),
    "use_label_lengths": Attr(as_bool, False),
    "blank_label": Attr(one_of("first", "last"), "first"),
}


def _ctc_inputs(attrs: dict) -> tuple[str, ...]:
    optional = (("data_lengths",) if attrs.get("use_data_lengths") else ()) + (
        ("label_lengths",) if attrs.get("use_label_lengths") else ()
    )
    return ("data", "label", *optional)


def _with_cotangent_inputs(attrs: dict) -> tuple[str, ...]:
    data, label, *lengths = _ctc_inputs(attrs)
    return (data, "cotangent", label, *lengths)


def _check_ctc_types(
    types: Sequence[TensorType], use_data_lengths: bool, use_label_lengths: bool
) -> None:
    data, label = types[0].shape, types[1].shape
    if len(data) != 3:
        raise GraphError(f"data must be (sequence_length, batch, alphabet), got {data}")
    if len(label) != 2 or label[0] != data[1]:
        raise GraphError(f"label must be (batch, label_length) = ({data[1]}, L), got {label}")
    _check_label_fits(label, data)
    for k in range(int(use_data_lengths) + int(use_label_lengths)):
        if types[2 + k].shape != (data[1],):
            raise GraphError(f"lengths must have shape ({data[1]},), got {types[2 + k].shape}")


def _check_label_fits(label: tuple, data: tuple) -> None:
    # MXNet's rule (eager calls skip the type rule: the lattice checks it too)
    if label[1] > data[0]:
        raise GraphError(
            f"the max number of labels ({label[1]}) cannot exceed the "
            f"sequence length of the data ({data[0]})"
        )


def _loss_types(
    types: Sequence[TensorType],
    *,
    use_data_lengths: bool,
    use_label_lengths: bool,
    blank_label: str,
) -> list[TensorType]:
    _check_ctc_types(types, use_data_lengths, use_label_lengths)
    return [TensorType((types[0].shape[1],), types[0].dtype)]


def _posterior_types(
    types: Sequence[TensorType],
    *,
    use_data_lengths: bool,
    use_label_lengths: bool,
    blank_label: str,
) -> list[TensorType]:
    _check_ctc_types(types, use_data_lengths, use_label_lengths)
    return [types[0]]


def _vjp_types(
    types: Sequence[TensorType],
    *,
    use_data_lengths: bool,
    use_label_lengths: bool,
    blank_label: str,
) -> list[TensorType]:
    if types[1].shape != types[0].shape:
        raise GraphError(
            f"the cotangent must have data's shape {types[0].shape}, got {types[1].shape}"
        )
    return _posterior_types(
        [types[0], *types[2:]],
        use_data_lengths=use_data_lengths,
        use_label_lengths=use_label_lengths,
        blank_label=blank_label,
    )


# ---------------------------------------------------------------------------
# the alignment lattice, in numpy (float64, log space)
# ---------------------------------------------------------------------------


class _Lattice:
    """The extended label rows (blank between and around the labels) of a batch,
    with the per-frame scores of their states and the forward/backward
    log-probabilities ``alpha``/``beta`` (both include the frame's own score)."""

    def __init__(
        self,
        scores: np.ndarray,
        label: np.ndarray,
        lengths: list,
        use_data_lengths: bool,
        use_label_lengths: bool,
        blank_label: str,
    ) -> None:
        steps, batch, alphabet = scores.shape
        _check_label_fits(label.shape, scores.shape)
        blank = 0 if blank_label == "first" else alphabet - 1
        given = iter(lengths)
        data_lengths = next(given) if use_data_lengths else None
        label_lengths = next(given) if use_label_lengths else None
        self.frames = (
            np.full(batch, steps, np.int64)
            if data_lengths is None
            else np.clip(np.asarray(data_lengths).astype(np.int64), 0, steps)
        )
        rows = label.astype(np.int64)
        if label_lengths is not None:
            counts = np.clip(np.asarray(label_lengths).astype(np.int64), 0, rows.shape[1])
        else:  # a row ends at the first padding value (0 or -1, by blank_label)
            padding = 0 if blank_label == "first" else -1
            is_pad = rows == padding
            counts = np.where(is_pad.any(axis=1), is_pad.argmax(axis=1), rows.shape[1])
        self.states = 2 * counts + 1
        width = 2 * rows.shape[1] + 1
        position = np.arange(width)
        self.valid = position[None, :] < self.states[:, None]  # (N, S)
        extended = np.full((batch, width), blank, np.int64)
        extended[:, 1::2] = np.where(
            np.arange(rows.shape[1])[None, :] < counts[:, None],
            np.clip(rows, 0, alphabet - 1),
            blank,
        )
        self.extended = extended
        # a state may be entered from two states back: a label unlike the one before
        same_as_two_back = np.zeros_like(self.valid)
        same_as_two_back[:, 2:] = extended[:, 2:] == extended[:, :-2]
        self.skip = (extended != blank) & ~same_as_two_back
        self.emit = np.where(
            self.valid[None],
            np.take_along_axis(
                scores, np.broadcast_to(extended[None], (steps, batch, width)), axis=2
            ),
            -np.inf,
        )
        self.alpha = self._forward()
        last = self.frames - 1
        ends = np.stack([self.states - 1, np.maximum(self.states - 2, 0)], axis=1)
        at_end = np.take_along_axis(self.alpha[np.maximum(last, 0), np.arange(batch)], ends, axis=1)
        at_end[:, 1] = np.where(self.states > 1, at_end[:, 1], -np.inf)
        self.log_likelihood = np.where(
            self.frames > 0, np.logaddexp(*at_end.T), np.where(counts == 0, 0.0, -np.inf)
        )

    def _in_time(self, step: int) -> np.ndarray:
        return (step < self.frames)[:, None]

    def _forward(self) -> np.ndarray:
        steps, batch, width = self.emit.shape
        alpha = np.full((steps, batch, width), -np.inf)
        start = np.full((batch, width), -np.inf)
        start[:, :2] = 0.0
        alpha[0] = np.where(self._in_time(0), start + self.emit[0], -np.inf)
        for step in range(1, steps):
            arrive = self._predecessors(alpha[step - 1])
            alpha[step] = np.where(self._in_time(step), arrive + self.emit[step], -np.inf)
        return alpha

    @cached_property
    def beta(self) -> np.ndarray:
        """Backward log-probabilities (T, N, S), made when first read: the loss
        alone needs only ``alpha``."""
        steps, batch, width = self.emit.shape
        beta = np.full((steps, batch, width), -np.inf)
        finish = np.where(
            (np.arange(width)[None, :] >= self.states[:, None] - 2) & self.valid, 0.0, -np.inf
        )
        for step in range(steps - 1, -1, -1):
            after = (
                finish
                if step == steps - 1
                else np.where(
                    (self.frames - 1 == step)[:, None], finish, self._successors(beta[step + 1])
                )
            )
            beta[step] = np.where(self._in_time(step), after + self.emit[step], -np.inf)
        return beta

    def _predecessors(self, previous: np.ndarray) -> np.ndarray:
        """log sum over the states one step earlier that lead to each state."""
        stay, one, two = previous, _shift(previous, 1), _shift(previous, 2)
        two = np.where(self.skip, two, -np.inf)
        return _log_sum(stay, one, two)

    def _successors(self, following: np.ndarray) -> np.ndarray:
        """log sum over the states one step later that each state leads to."""
        stay, one, two = following, _shift(following, -1), _shift(following, -2)
        two = np.where(_shift(self.skip, -2, False), two, -np.inf)
        return _log_sum(stay, one, two)

    def occupancy(self) -> np.ndarray:
        """Posterior probability (T, N, S) of being in each state at each frame."""
        with np.errstate(invalid="ignore"):
            log_post = self.alpha + self.beta - self.emit - self.log_likelihood[None, :, None]
        return np.where(np.isfinite(log_post), np.exp(log_post), 0.0)

    def per_class(self, per_state: np.ndarray, alphabet: int) -> np.ndarray:
        """Sum a (T, N, S) table over the states that emit each class: (T, N, C)."""
        classes = (self.extended[:, :, None] == np.arange(alphabet)) & self.valid[:, :, None]
        return np.einsum("tns,nsc->tnc", per_state, classes.astype(per_state.dtype))


def _shift(table: np.ndarray, by: int, fill: float = -np.inf) -> np.ndarray:
    """Entries moved ``by`` states along the last axis (right if positive)."""
    out = np.full_like(table, fill)
    if by > 0:
        out[..., by:] = table[..., :-by]
    else:
        out[..., :by] = table[..., -by:]
    return out


def _log_sum(*terms: np.ndarray) -> np.ndarray:
    top = np.maximum.reduce(terms)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(sum(np.exp(t - safe) for t in terms))


def _split(
    arrays: Sequence[np.ndarray], attrs: dict
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    data, label, *lengths = arrays
    return data, label, lengths


def _lattice(
    scores: np.ndarray, label: np.ndarray, lengths: list[np.ndarray], attrs: dict
) -> _Lattice:
    return _Lattice(
        np.asarray(scores, np.float64),
        label,
        lengths,
        attrs["use_data_lengths"],
        attrs["use_label_lengths"],
        attrs["blank_label"],
    )


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------------------
# CTCLoss
# ---------------------------------------------------------------------------


def _ctc_loss(*arrays: np.ndarray, **attrs: Any) -> np.ndarray:
    data, label, lengths = _split(arrays, attrs)
    lattice = _lattice(_log_softmax(data.astype(np.float64)), label, lengths, attrs)
    # a label that no alignment fits in its frames (repeats need a blank between
    # them) has loss 0 and no gradient, as in MXNet
    likelihood = lattice.log_likelihood
    return np.where(np.isfinite(likelihood), -likelihood, 0.0).astype(data.dtype)


def ctc_loss_grad(
    g: Expr,
    data: Expr,
    label: Expr,
    *lengths: Expr,
    out: Expr,
    use_data_lengths: bool,
    use_label_lengths: bool,
    blank_label: str,
) -> tuple[Expr | None, ...]:
    """g * (softmax(data) * in_sequence - gamma), gamma = _ctc_posterior(log_softmax(data));
    each frame's gamma sums to 1 inside the sequence and 0 past it, so the sum of
    gamma over classes is the in-sequence mask. Labels and lengths get none."""
    attrs = {
        "use_data_lengths": use_data_lengths,
        "use_label_lengths": use_label_lengths,
        "blank_label": blank_label,
    }
    gamma = F._ctc_posterior(F.log_softmax(data, axis=-1), label, *lengths, **attrs)
    in_sequence = F.sum(gamma, axis=(-1,), keepdims=True)
    per_sequence = F.reshape(g, shape=(1, -1, 1))
    grad = F.broadcast_mul(
        F.broadcast_mul(F.softmax(data, axis=-1), in_sequence) - gamma, per_sequence
    )
    return (grad, None, *(None for _ in lengths))


def _ctc_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    data = rng.uniform(-1.5, 1.5, (6, 3, 4))
    label = np.array([[1, 1, 2], [2, 0, 3], [3, 0, 0]], dtype=np.float64)
    return [data, label, np.array([6, 5, 4.0]), np.array([3, 1, 1.0])]


register(
    OpDef(
        name="CTCLoss",
        aliases=("ctc_loss", "_contrib_CTCLoss", "_contrib_ctc_loss"),
        infer=_loss_types,
        impl=_ctc_loss,
        grad=ctc_loss_grad,
        inputs=_ctc_inputs,
        attrs=CTC_ATTRS,
        kind="gather",
        doc="Connectionist Temporal Classification loss per sequence: -log of the "
        "summed softmax probability of every alignment of the label.",
        test=TestSpec(
            make_inputs=_ctc_test_inputs,
            wrt=(0,),
            rtol=1e-5,
            attrs={"use_data_lengths": True, "use_label_lengths": True},
        ),
    )
)


# ---------------------------------------------------------------------------
# _ctc_posterior: d log p / d scores, and its vector-Jacobian product
# ---------------------------------------------------------------------------


def _ctc_posterior(*arrays: np.ndarray, **attrs: Any) -> np.ndarray:
    scores, label, lengths = _split(arrays, attrs)
    lattice = _lattice(scores, label, lengths, attrs)
    gamma = lattice.per_class(lattice.occupancy(), scores.shape[2])
    return gamma.astype(scores.dtype)


def ctc_posterior_grad(
    g: Expr,
    scores: Expr,
    label: Expr,
    *lengths: Expr,
    out: Expr,
    use_data_lengths: bool,
    use_label_lengths: bool,
    blank_label: str,
) -> tuple[Expr | None, ...]:
    """gamma[t, k] = E[1{path_t = k}] under p(path) ~ exp(sum_t scores[t, path_t]), so
    d gamma[t, k] / d scores[u, j] = Cov(1{path_t = k}, 1{path_u = j}), contracted
    with g by _ctc_posterior_vjp."""
    attrs = {
        "use_data_lengths": use_data_lengths,
        "use_label_lengths": use_label_lengths,
        "blank_label": blank_label,
    }
    return (
        F._ctc_posterior_vjp(scores, g, label, *lengths, **attrs),
        None,
        *(None for _ in lengths),
    )


def _posterior_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    data, label, *lengths = _ctc_test_inputs(rng)
    return [data, label, lengths[1]]


register(
    OpDef(
        name="_ctc_posterior",
        infer=_posterior_types,
        impl=_ctc_posterior,
        grad=ctc_posterior_grad,
        inputs=_ctc_inputs,
        attrs=CTC_ATTRS,
        kind="gather",
        doc="Expected emissions (T, N, C) of each class at each frame under the "
        "posterior over CTC alignments given per-frame scores: the gradient "
        "of CTC's log-likelihood with respect to the scores.",
        test=TestSpec(
            make_inputs=_posterior_test_inputs,
            wrt=(0,),
            order=1,
            rtol=1e-5,
            attrs={"use_label_lengths": True, "blank_label": "last"},
        ),
    )
)


def _ctc_posterior_vjp(*arrays: np.ndarray, **attrs: Any) -> np.ndarray:
    scores, cotangent, label, *lengths = arrays
    lattice = _lattice(scores, label, lengths, attrs)
    steps, batch, width = lattice.emit.shape
    # the cotangent read by each state: what a path through it adds to S = sum_t v[t, path_t]
    picked = np.take_along_axis(
        cotangent.astype(np.float64),
        np.broadcast_to(lattice.extended[None], (steps, batch, width)),
        axis=2,
    )
    picked = np.where(lattice.valid[None], picked, 0.0)
    prefix, suffix = _prefix_expectation(lattice, picked), _suffix_expectation(lattice, picked)
    # E[S | in state s at frame t] counts the frame's own term once
    given_state = prefix + suffix - picked
    occupancy = lattice.occupancy()
    joint = occupancy * given_state  # E[S 1{state s at t}]
    total = joint[0].sum(axis=1)  # E[S]: every in-time frame agrees
    gamma = lattice.per_class(occupancy, scores.shape[2])
    result = lattice.per_class(joint, scores.shape[2]) - gamma * total[None, :, None]
    return result.astype(scores.dtype)


def _weights(log_from: np.ndarray, log_to: np.ndarray) -> np.ndarray:
    """exp(log_from - log_to), 0 where either is -inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        ratio = np.exp(log_from - log_to)
    return np.where(np.isfinite(log_from) & np.isfinite(log_to), ratio, 0.0)


def _prefix_expectation(lattice: _Lattice, picked: np.ndarray) -> np.ndarray:
    """E[sum of picked over frames <= t | in state s at t], by the forward recursion."""
    alpha, emit = lattice.alpha, lattice.emit
    out = np.zeros_like(picked)
    out[0] = picked[0]
    for step in range(1, picked.shape[0]):
        with np.errstate(invalid="ignore"):  # -inf - -inf: a state no path reaches
            arrive = alpha[step] - emit[step]  # log sum of the predecessors' alphas
        previous, expected = alpha[step - 1], out[step - 1]
        carried = _weights(previous, arrive) * expected
        carried = carried + _weights(_shift(previous, 1), arrive) * _shift(expected, 1, 0.0)
        two_back = np.where(lattice.skip, _shift(previous, 2), -np.inf)
        carried = carried + _weights(two_back, arrive) * _shift(expected, 2, 0.0)
        out[step] = carried + picked[step]
    return out


def _suffix_expectation(lattice: _Lattice, picked: np.ndarray) -> np.ndarray:
    """E[sum of picked over frames >= t | in state s at t], by the backward recursion."""
    beta, emit = lattice.beta, lattice.emit
    steps = picked.shape[0]
    out = np.zeros_like(picked)
    out[steps - 1] = picked[steps - 1]
    for step in range(steps - 2, -1, -1):
        with np.errstate(invalid="ignore"):
            leave = beta[step] - emit[step]  # log sum of the successors' betas
        following, expected = beta[step + 1], out[step + 1]
        carried = _weights(following, leave) * expected
        carried = carried + _weights(_shift(following, -1), leave) * _shift(expected, -1, 0.0)
        two_on = np.where(_shift(lattice.skip, -2, False), _shift(following, -2), -np.inf)
        carried = carried + _weights(two_on, leave) * _shift(expected, -2, 0.0)
        # the last frame of a sequence has no successors
        last = (lattice.frames - 1 == step)[:, None]
        out[step] = np.where(last, 0.0, carried) + picked[step]
    return out


def _vjp_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    data, label, *lengths = _ctc_test_inputs(rng)
    return [data, rng.uniform(-1, 1, data.shape), label, *lengths]


register(
    OpDef(
        name="_ctc_posterior_vjp",
        infer=_vjp_types,
        impl=_ctc_posterior_vjp,
        inputs=_with_cotangent_inputs,
        attrs=CTC_ATTRS,
        kind="gather",
        doc="The cotangent contracted with the derivative of _ctc_posterior: "
        "E[S 1{path_t = k}] - E[S] gamma[t, k] with S = sum_t v[t, path_t]. "
        "It has no gradient rule (CTC is differentiable twice here); its "
        "values are checked as _ctc_posterior's gradient and through "
        "CTCLoss's second order.",
        test=TestSpec(
            make_inputs=_vjp_test_inputs,
            wrt=(),
            attrs={"use_data_lengths": True, "use_label_lengths": True},
        ),
    )
)
