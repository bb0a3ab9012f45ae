"""``gluon.loss``: every loss against a numpy reference (float64), its gradients
against finite differences, its second-order gradients (``autograd.grad`` with
``create_graph=True``, then differentiated again) against finite differences of
the first, imperative and hybridized, with ``weight``, ``sample_weight`` and
``batch_axis`` variants. Real MXNet's numbers: tests/test_interop_gluon_loss.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
from symgrad import op_testing as tu
from symgrad.gluon import loss as gloss

# ---------------------------------------------------------------------------
# numpy references (float64)
# ---------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _weighted(loss, weight=None, sample_weight=None):
    if sample_weight is not None:
        loss = loss * sample_weight
    return loss if weight is None else loss * weight


def _mean_but(loss, batch_axis=0):
    axes = tuple(a for a in range(loss.ndim) if a != batch_axis % loss.ndim)
    return loss.mean(axis=axes) if axes else loss


def _sum_but(loss, batch_axis=0):
    axes = tuple(a for a in range(loss.ndim) if a != batch_axis % loss.ndim)
    return loss.sum(axis=axes) if axes else loss


def _bce_reference(
    pred, label, sample_weight=None, pos_weight=None, *, from_sigmoid=False, weight=None
):
    p = pred if from_sigmoid else _sigmoid(pred)
    eps = 1e-12 if from_sigmoid else 0.0
    positive = label * np.log(p + eps) * (1.0 if pos_weight is None else pos_weight)
    loss = -(positive + (1 - label) * np.log(1 - p + eps))
    return _mean_but(_weighted(loss, weight, sample_weight))


def _sce_reference(
    pred, label, sample_weight=None, *, axis=-1, sparse_label=True, from_logits=False, weight=None
):
    log_p = pred if from_logits else _log_softmax(pred, axis)
    if sparse_label:
        index = np.expand_dims(label.astype(np.int64), axis % pred.ndim)
        loss = -np.take_along_axis(log_p, index, axis=axis)
    else:
        loss = -(log_p * label).sum(axis=axis, keepdims=True)
    return _mean_but(_weighted(loss, weight, sample_weight))


def _huber_reference(pred, label, sample_weight=None, *, rho=1.0, weight=None):
    d = np.abs(label - pred)
    loss = np.where(d > rho, d - 0.5 * rho, 0.5 / rho * d * d)
    return _mean_but(_weighted(loss, weight, sample_weight))


def _cosine_reference(x1, x2, label, sample_weight=None, *, margin=0.0, weight=None):
    cos = (x1 * x2).sum(-1) / np.maximum(
        np.linalg.norm(x1, axis=-1) * np.linalg.norm(x2, axis=-1), 1e-12
    )
    loss = np.where(label == 1, 1 - cos, np.maximum(0.0, cos - margin) * (label == -1))
    return _weighted(loss[:, None], weight, sample_weight)


def _poisson_reference(
    pred, target, sample_weight=None, *, from_logits=True, compute_full=False, weight=None
):
    loss = np.exp(pred) - target * pred if from_logits else pred - target * np.log(pred + 1e-8)
    if compute_full:
        safe = np.where(target > 1, target, 1.0)
        stirling = safe * np.log(safe) - safe + 0.5 * np.log(2 * math.pi * safe)
        loss = loss + np.where(target > 1, stirling, 0.0)
    return np.array([_weighted(loss, weight, sample_weight).mean()])


def _sdml_reference(x1, x2, *, smoothing=0.3):
    distances = ((x1[:, None] - x2[None]) ** 2).sum(-1)
    batch = len(x1)
    target = np.full((batch, batch), smoothing / (batch - 1))
    np.fill_diagonal(target, 1 - smoothing)
    return (target * (np.log(target + 1e-12) - _log_softmax(-distances, 1))).sum(1)


def _collapse(path, blank):
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    return [k for k in merged if k != blank]


def _ctc_reference(
    pred,
    label,
    pred_lengths=None,
    label_lengths=None,
    sample_weight=None,
    *,
    layout="NTC",
    weight=None,
):
    """By enumeration of every alignment (tiny sizes only); the blank is the last
    class and labels end at their first -1, as Gluon's CTCLoss has it."""
    data = pred if layout == "NTC" else pred.transpose(1, 0, 2)
    batch, steps, classes = data.shape
    losses = []
    for n in range(batch):
        frames = steps if pred_lengths is None else int(pred_lengths[n])
        row = [int(k) for k in label[n]]
        row = (
            row[: int(label_lengths[n])]
            if label_lengths is not None
            else row[: row.index(-1)]
            if -1 in row
            else row
        )
        p = np.exp(_log_softmax(data[n, :frames], -1))
        total = sum(
            np.prod(p[np.arange(frames), path])
            for path in itertools.product(range(classes), repeat=frames)
            if _collapse(list(path), classes - 1) == row
        )
        losses.append(-np.log(total))
    return _weighted(np.array(losses), weight, sample_weight)


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """One loss configuration: how to build it, its inputs (None: not given), the
    numpy reference, and which inputs are differentiated."""

    id: str
    make: Callable[[], gloss.Loss]
    inputs: Callable[[np.random.Generator], list]
    reference: Callable[..., np.ndarray]
    wrt: tuple[int, ...] = (0,)
    order2: bool = True
    kwargs: dict = field(default_factory=dict)


def _u(rng, low, high, *shape):
    return rng.uniform(low, high, shape)


def _away_from(rng, shape, kinks, gap=0.05, low=-2.5, high=2.5):
    """Uniform draws at least ``gap`` from each kink (finite differences of a
    piecewise function must not straddle one)."""
    x = rng.uniform(low, high, shape)
    for kink in kinks:
        near = np.abs(x - kink) < gap
        x = np.where(near, kink + np.sign(x - kink + 1e-9) * gap * 2, x)
    return x


def _signs(rng, *shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _binary(rng, *shape):
    return (rng.random(shape) < 0.5).astype(np.float64)


def _dist(rng, *shape):
    p = rng.uniform(0.1, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


def _ctc_label(blank_pad=-1.0):
    return np.array([[0, 1, 1], [2, blank_pad, blank_pad], [1, 0, blank_pad]])


CASES = [
    # L2Loss
    Case(
        "l2",
        gloss.L2Loss,
        lambda r: [_u(r, -2, 2, 4, 3), _u(r, -2, 2, 4, 3)],
        lambda p, y: _mean_but(0.5 * (y - p) ** 2),
        wrt=(0, 1),
    ),
    Case(
        "l2_weight_sample_weight",
        lambda: gloss.L2Loss(weight=0.7),
        lambda r: [_u(r, -2, 2, 4, 3), _u(r, -2, 2, 4, 3), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _mean_but(0.35 * (y - p) ** 2 * s),
        wrt=(0, 1, 2),
    ),
    Case(
        "l2_batch_axis1",
        lambda: gloss.L2Loss(batch_axis=1),
        lambda r: [_u(r, -2, 2, 2, 3, 4), _u(r, -2, 2, 2, 3, 4), _u(r, 0.2, 2, 1, 3, 1)],
        lambda p, y, s: _mean_but(0.5 * (y - p) ** 2 * s, 1),
        wrt=(0, 1, 2),
    ),
    Case(
        "l2_flat_label",
        gloss.L2Loss,
        lambda r: [_u(r, -2, 2, 4, 1), _u(r, -2, 2, 4)],
        lambda p, y: _mean_but(0.5 * (y[:, None] - p) ** 2),
        wrt=(0, 1),
    ),
    # L1Loss
    Case(
        "l1",
        gloss.L1Loss,
        lambda r: [_away_from(r, (4, 3), [0.0]), np.zeros((4, 3))],
        lambda p, y: _mean_but(np.abs(y - p)),
    ),
    Case(
        "l1_weight_sample_weight",
        lambda: gloss.L1Loss(weight=2.0),
        lambda r: [_away_from(r, (4, 3), [0.0]), np.zeros((4, 3)), _u(r, 0.2, 2, 1, 3)],
        lambda p, y, s: _mean_but(2.0 * np.abs(y - p) * s),
        wrt=(0, 2),
    ),
    # SigmoidBinaryCrossEntropyLoss
    Case(
        "bce",
        gloss.SigmoidBinaryCrossEntropyLoss,
        lambda r: [_u(r, -3, 3, 4, 3), _binary(r, 4, 3)],
        _bce_reference,
    ),
    Case(
        "bce_soft_label_sample_weight",
        lambda: gloss.SigmoidBCELoss(weight=0.5),
        lambda r: [_u(r, -3, 3, 4, 3), _u(r, 0, 1, 4, 3), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _bce_reference(p, y, s, weight=0.5),
        wrt=(0, 1, 2),
    ),
    Case(
        "bce_pos_weight",
        gloss.SigmoidBCELoss,
        lambda r: [_u(r, -3, 3, 4, 3), _u(r, 0, 1, 4, 3), None, _u(r, 0.5, 3, 3)],
        lambda p, y, s, w: _bce_reference(p, y, s, w),
        wrt=(0, 1, 3),
    ),
    Case(
        "bce_from_sigmoid",
        lambda: gloss.SigmoidBCELoss(from_sigmoid=True),
        lambda r: [_u(r, 0.05, 0.95, 4, 3), _binary(r, 4, 3), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _bce_reference(p, y, s, from_sigmoid=True),
        wrt=(0, 2),
    ),
    Case(
        "bce_from_sigmoid_pos_weight",
        lambda: gloss.SigmoidBCELoss(from_sigmoid=True),
        lambda r: [_u(r, 0.05, 0.95, 4, 3), _u(r, 0, 1, 4, 3), None, _u(r, 0.5, 3, 3)],
        lambda p, y, s, w: _bce_reference(p, y, s, w, from_sigmoid=True),
        wrt=(0, 1, 3),
    ),
    # SoftmaxCrossEntropyLoss
    Case(
        "sce",
        gloss.SoftmaxCrossEntropyLoss,
        lambda r: [_u(r, -3, 3, 4, 5), np.array([0.0, 4, 2, 1])],
        _sce_reference,
    ),
    Case(
        "sce_weight_sample_weight",
        lambda: gloss.SoftmaxCELoss(weight=1.5),
        lambda r: [_u(r, -3, 3, 4, 5), np.array([0.0, 4, 2, 1]), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _sce_reference(p, y, s, weight=1.5),
        wrt=(0, 2),
    ),
    Case(
        "sce_axis1",
        lambda: gloss.SoftmaxCELoss(axis=1),
        lambda r: [_u(r, -3, 3, 2, 4, 3), r.integers(0, 4, (2, 3)).astype(np.float64)],
        lambda p, y: _sce_reference(p, y, axis=1),
    ),
    Case(
        "sce_dense",
        lambda: gloss.SoftmaxCELoss(sparse_label=False),
        lambda r: [_u(r, -3, 3, 4, 5), _dist(r, 4, 5)],
        lambda p, y: _sce_reference(p, y, sparse_label=False),
        wrt=(0, 1),
    ),
    Case(
        "sce_from_logits",
        lambda: gloss.SoftmaxCELoss(from_logits=True),
        lambda r: [np.log(_dist(r, 4, 5)), np.array([0.0, 4, 2, 1])],
        lambda p, y: _sce_reference(p, y, from_logits=True),
    ),
    # KLDivLoss: summed over the non-batch axes
    Case(
        "kl",
        gloss.KLDivLoss,
        lambda r: [np.log(_dist(r, 4, 5)), _dist(r, 4, 5)],
        lambda p, y: _sum_but(y * (np.log(y + 1e-12) - p)),
        wrt=(0, 1),
    ),
    Case(
        "kl_from_scores_batch_axis1",
        lambda: gloss.KLDivLoss(from_logits=False, axis=0, batch_axis=1, weight=2.0),
        lambda r: [_u(r, -2, 2, 5, 4), _dist(r, 4, 5).T, _u(r, 0.2, 2, 1, 4)],
        lambda p, y, s: _sum_but(2 * s * y * (np.log(y + 1e-12) - _log_softmax(p, 0)), 1),
        wrt=(0, 1, 2),
    ),
    # CTCLoss: blank last, labels padded with -1
    Case("ctc", gloss.CTCLoss, lambda r: [_u(r, -1.5, 1.5, 3, 5, 4), _ctc_label()], _ctc_reference),
    Case(
        "ctc_tnc_lengths_weights",
        lambda: gloss.CTCLoss(layout="TNC", weight=2.0),
        lambda r: [
            _u(r, -1.5, 1.5, 5, 3, 4),
            _ctc_label(3.0),
            np.array([5.0, 3, 4]),
            np.array([3.0, 1, 2]),
            _u(r, 0.2, 2, 3),
        ],
        lambda p, y, dl, ll, s: _ctc_reference(p, y, dl, ll, s, layout="TNC", weight=2.0),
        wrt=(0, 4),
    ),
    Case(
        "ctc_label_tn",
        lambda: gloss.CTCLoss(label_layout="TN"),
        lambda r: [_u(r, -1.5, 1.5, 3, 5, 4), _ctc_label().T.copy(), np.array([5.0, 4, 3])],
        lambda p, y, dl: _ctc_reference(p, y.T, dl),
    ),
    # HuberLoss
    Case(
        "huber",
        gloss.HuberLoss,
        lambda r: [_away_from(r, (4, 3), [-1.0, 1.0]), np.zeros((4, 3))],
        lambda p, y: _huber_reference(p, y),
    ),
    Case(
        "huber_rho_weights",
        lambda: gloss.HuberLoss(rho=0.5, weight=3.0),
        lambda r: [_away_from(r, (4, 3), [-0.5, 0.5]), np.zeros((4, 3)), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _huber_reference(p, y, s, rho=0.5, weight=3.0),
        wrt=(0, 2),
    ),
    # HingeLoss, SquaredHingeLoss (labels +-1; pred away from the margin's kink)
    Case(
        "hinge",
        gloss.HingeLoss,
        lambda r: [_away_from(r, (4, 3), [-1.0, 1.0]), np.ones((4, 3))],
        lambda p, y: _mean_but(np.maximum(0, 1 - p * y)),
    ),
    Case(
        "hinge_margin_sample_weight",
        lambda: gloss.HingeLoss(margin=2.0),
        lambda r: [_away_from(r, (4, 3), [-2.0, 2.0]), -np.ones((4, 3)), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _mean_but(np.maximum(0, 2 - p * y) * s),
        wrt=(0, 2),
    ),
    Case(
        "squared_hinge",
        gloss.SquaredHingeLoss,
        lambda r: [_away_from(r, (4, 3), [-1.0, 1.0]), np.ones((4, 3))],
        lambda p, y: _mean_but(np.maximum(0, 1 - p * y) ** 2),
    ),
    Case(
        "squared_hinge_margin_weight",
        lambda: gloss.SquaredHingeLoss(margin=0.5, weight=2.0),
        lambda r: [_away_from(r, (4, 3), [-0.5, 0.5]), -np.ones((4, 3))],
        lambda p, y: _mean_but(2 * np.maximum(0, 0.5 - p * y) ** 2),
    ),
    # LogisticLoss
    Case(
        "logistic_signed",
        gloss.LogisticLoss,
        lambda r: [_u(r, -3, 3, 4, 3), _signs(r, 4, 3)],
        lambda p, y: _mean_but(np.log1p(np.exp(-p * y))),
    ),
    Case(
        "logistic_binary_sample_weight",
        lambda: gloss.LogisticLoss(label_format="binary"),
        lambda r: [_u(r, -3, 3, 4, 3), _binary(r, 4, 3), _u(r, 0.2, 2, 4, 1)],
        lambda p, y, s: _mean_but(np.log1p(np.exp(-p * (2 * y - 1))) * s),
        wrt=(0, 2),
    ),
    # TripletLoss: summed over the non-batch axes, not averaged
    Case(
        "triplet",
        gloss.TripletLoss,
        lambda r: [_u(r, -1, 1, 4, 3), _u(r, -1, 1, 4, 3), _u(r, -1, 1, 4, 3)],
        lambda a, p, n: np.maximum(0, ((p - a) ** 2 - (n - a) ** 2).sum(1) + 1),
        wrt=(0, 1, 2),
    ),
    Case(
        "triplet_margin_weights",
        lambda: gloss.TripletLoss(margin=4.0, weight=0.5),
        lambda r: [_u(r, -1, 1, 4, 3), _u(r, -1, 1, 4, 3), _u(r, -1, 1, 4, 3), _u(r, 0.2, 2, 4)],
        lambda a, p, n, s: 0.5 * s * np.maximum(0, ((p - a) ** 2 - (n - a) ** 2).sum(1) + 4),
        wrt=(0, 1, 2, 3),
    ),
    # CosineEmbeddingLoss: (batch, 1)
    Case(
        "cosine",
        gloss.CosineEmbeddingLoss,
        lambda r: [_u(r, -1, 1, 4, 3), _u(r, -1, 1, 4, 3), np.array([1.0, 1, 1, 1])],
        lambda a, b, y: _cosine_reference(a, b, y),
        wrt=(0, 1),
    ),
    Case(
        "cosine_margin_weights",
        lambda: gloss.CosineEmbeddingLoss(margin=-0.5, weight=2.0),
        lambda r: [
            _u(r, -1, 1, 4, 3),
            _u(r, -1, 1, 4, 3),
            np.array([1.0, -1, 1, -1]),
            _u(r, 0.2, 2, 4, 1),
        ],
        lambda a, b, y, s: _cosine_reference(a, b, y, s, margin=-0.5, weight=2.0),
        wrt=(0, 1, 3),
    ),
    # SDMLLoss (MXNet ignores its weight)
    Case(
        "sdml",
        gloss.SDMLLoss,
        lambda r: [_u(r, -1, 1, 5, 3), _u(r, -1, 1, 5, 3)],
        _sdml_reference,
        wrt=(0, 1),
    ),
    Case(
        "sdml_smoothing",
        lambda: gloss.SDMLLoss(smoothing_parameter=0.1, weight=3.0),
        lambda r: [_u(r, -1, 1, 3, 2), _u(r, -1, 1, 3, 2)],
        lambda a, b: _sdml_reference(a, b, smoothing=0.1),
        wrt=(0, 1),
    ),
    # PoissonNLLLoss: one mean over everything
    Case(
        "poisson",
        gloss.PoissonNLLLoss,
        lambda r: [_u(r, -1, 1, 4, 3), r.poisson(2.0, (4, 3)).astype(np.float64)],
        _poisson_reference,
    ),
    Case(
        "poisson_rates_weights",
        lambda: gloss.PoissonNLLLoss(from_logits=False, weight=0.5),
        lambda r: [
            _u(r, 0.2, 3, 4, 3),
            r.poisson(2.0, (4, 3)).astype(np.float64),
            _u(r, 0.2, 2, 4, 1),
        ],
        lambda p, t, s: _poisson_reference(p, t, s, from_logits=False, weight=0.5),
        wrt=(0, 2),
    ),
    Case(
        "poisson_full",
        lambda: gloss.PoissonNLLLoss(compute_full=True),
        lambda r: [_u(r, -1, 1, 4, 3), np.array([[0.0, 1, 2], [3, 4, 0], [1, 5, 2], [2, 2, 7]])],
        lambda p, t: _poisson_reference(p, t, compute_full=True),
    ),
]

IDS = [case.id for case in CASES]


def _values(case: Case) -> list:
    return case.inputs(np.random.default_rng(sum(map(ord, case.id))))


def _function(case: Case, hybrid: bool, values: list) -> Callable:
    """The loss as a function of the non-None inputs (what the checkers call)."""
    block = case.make()
    if hybrid:
        block.hybridize()
    present = [i for i, v in enumerate(values) if v is not None]

    def loss(*arrays):
        args = [None] * len(values)
        for i, array in zip(present, arrays):
            args[i] = array
        while args and args[-1] is None:
            args.pop()
        return block(*args)

    loss.__name__ = f"{case.id}{' (hybridized)' if hybrid else ''}"
    return loss


def _present(values: list) -> tuple[list, Callable[[int], int]]:
    """The non-None inputs, and where input ``i`` sits among them."""
    present = [i for i, v in enumerate(values) if v is not None]
    return [values[i] for i in present], present.index


HYBRID = pytest.mark.parametrize("hybrid", [False, True], ids=["imperative", "hybridized"])


@HYBRID
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_value_matches_numpy(case, hybrid):
    values = _values(case)
    given, _ = _present(values)
    out = _function(case, hybrid, values)(*[mx.nd.array(v, dtype="float64") for v in given])
    expected = case.reference(*values)
    assert out.shape == expected.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.asnumpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case):
    values = _values(case)
    given, _ = _present(values)
    out = _function(case, False, values)(*[mx.nd.array(v) for v in given])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.asnumpy(), case.reference(*values), rtol=2e-5, atol=1e-5)


@HYBRID
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_matches_finite_differences(case, hybrid):
    values = _values(case)
    given, position = _present(values)
    tu.check_numeric_gradient(
        _function(case, hybrid, values), given, wrt=[position(i) for i in case.wrt]
    )


@HYBRID
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_second_order_matches_finite_differences(case, hybrid):
    values = _values(case)
    given, position = _present(values)
    tu.check_higher_order(
        _function(case, hybrid, values), given, order=2, wrt=[position(i) for i in case.wrt]
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hybridized_equals_imperative(case):
    values = _values(case)
    given, position = _present(values)
    results = []
    for hybrid in (False, True):
        fn = _function(case, hybrid, values)
        for _ in range(2):  # the second hybridized call replays the cached program
            arrays = [mx.nd.array(v, dtype="float64") for v in given]
            for i in case.wrt:
                arrays[position(i)].attach_grad()
            with mx.autograd.record():
                out = fn(*arrays)
            out.backward(
                mx.nd.array(np.linspace(0.5, 1.5, out.size).reshape(out.shape), dtype="float64")
            )
            results.append([out.asnumpy()] + [arrays[position(i)].grad.asnumpy() for i in case.wrt])
    imperative, again, hybrid, replay = results
    for ours, theirs in itertools.chain(
        zip(imperative, again), zip(imperative, hybrid), zip(imperative, replay)
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# behaviour beyond the numbers
# ---------------------------------------------------------------------------


def test_every_loss_has_a_case():
    covered = {type(case.make()).__name__ for case in CASES}
    exported = {name for name in gloss.__all__ if name != "Loss"}
    aliases = {
        "SigmoidBCELoss": "SigmoidBinaryCrossEntropyLoss",
        "SoftmaxCELoss": "SoftmaxCrossEntropyLoss",
    }
    assert {aliases.get(name, name) for name in exported} <= covered
    assert gloss.SigmoidBCELoss is gloss.SigmoidBinaryCrossEntropyLoss
    assert gloss.SoftmaxCELoss is gloss.SoftmaxCrossEntropyLoss


def test_losses_are_hybrid_blocks_with_mxnet_repr():
    loss = gloss.L2Loss()
    assert isinstance(loss, mx.gluon.HybridBlock)
    assert repr(loss) == "L2Loss(batch_axis=0, w=1.0)"
    assert repr(gloss.CTCLoss(label_layout="TN")) == "CTCLoss(batch_axis=1, w=None)"
    assert (
        repr(gloss.SoftmaxCrossEntropyLoss(weight=2))
        == "SoftmaxCrossEntropyLoss(batch_axis=0, w=2)"
    )


def test_prefixes_follow_mxnet_naming():
    first, second = gloss.L1Loss(), gloss.L1Loss()
    assert first.prefix.startswith("l1loss") and first.prefix != second.prefix
    assert gloss.HuberLoss(prefix="myloss_").prefix == "myloss_"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="label_format"):
        gloss.LogisticLoss(label_format="ternary")
    with pytest.raises(ValueError, match="layout"):
        gloss.CTCLoss(layout="NCT")
    with pytest.raises(ValueError, match="layout"):
        gloss.CTCLoss(label_layout="NN")
    with pytest.raises(TypeError, match="weight must be a number"):
        gloss.L1Loss(weight=mx.nd.ones((1,)))(mx.nd.ones((2, 2)), mx.nd.zeros((2, 2)))


def test_base_loss_has_no_forward():
    with pytest.raises(NotImplementedError):
        gloss.Loss(None, 0)(mx.nd.ones((2,)))


def test_hybridized_sdml_takes_a_new_batch_size():
    # its targets depend on the batch size, read from the data at run time
    loss = gloss.SDMLLoss()
    loss.hybridize()
    rng = np.random.default_rng(8)
    for batch in (3, 6):
        x1, x2 = rng.uniform(-1, 1, (batch, 2)), rng.uniform(-1, 1, (batch, 2))
        out = loss(mx.nd.array(x1, dtype="float64"), mx.nd.array(x2, dtype="float64"))
        np.testing.assert_allclose(out.asnumpy(), _sdml_reference(x1, x2), rtol=1e-10)


def test_poisson_full_is_finite_at_zero_targets():
    # MXNet 1.9.1 gives NaN here (its Stirling term is 0 * log(0)); the term is
    # defined as 0 for targets up to 1, and that is what we return.
    pred = mx.nd.zeros((1, 2))
    out = gloss.PoissonNLLLoss(compute_full=True)(pred, mx.nd.array([[0.0, 3.0]]))
    stirling = 3 * math.log(3) - 3 + 0.5 * math.log(6 * math.pi)
    np.testing.assert_allclose(out.asnumpy(), [(1 + 1 - 0 + stirling) / 2], rtol=1e-6)


def test_sce_matches_the_fused_softmax_cross_entropy_op():
    rng = np.random.default_rng(5)
    x, y = rng.uniform(-3, 3, (6, 4)), rng.integers(0, 4, 6).astype(np.float64)
    ours = gloss.SoftmaxCrossEntropyLoss()(mx.nd.array(x), mx.nd.array(y)).asnumpy()
    fused = mx.nd.softmax_cross_entropy(mx.nd.array(x), mx.nd.array(y)).asnumpy()
    np.testing.assert_allclose(ours.sum(), fused[0], rtol=1e-6)


def test_ctc_label_longer_than_the_data_raises():
    with pytest.raises(mx.MXNetError, match="cannot exceed"):
        gloss.CTCLoss()(mx.nd.zeros((2, 3, 4)), mx.nd.zeros((2, 4)))


def test_ctc_label_that_fits_no_alignment_has_loss_zero_and_no_gradient():
    # [2, 2, 2] needs 5 frames (a blank between repeats); there are 4. MXNet: loss 0.
    pred = mx.nd.array(np.random.default_rng(9).uniform(-1, 1, (2, 4, 4)))
    pred.attach_grad()
    with mx.autograd.record():
        out = gloss.CTCLoss()(pred, mx.nd.array([[2, 2, 2], [2, 1, -1]]))
    out.backward()
    assert out.asnumpy()[0] == 0.0 and out.asnumpy()[1] > 0
    assert np.all(pred.grad.asnumpy()[0] == 0.0) and np.any(pred.grad.asnumpy()[1] != 0)


def test_ctc_third_derivative_raises_naming_the_op():
    # CTC differentiates exactly twice; a third order must fail loudly, not give 0
    x = mx.nd.array(np.random.default_rng(10).uniform(-1, 1, (1, 3, 3)), dtype="float64")
    x.attach_grad()
    with mx.autograd.record():
        loss = gloss.CTCLoss()(x, mx.nd.array([[0]], dtype="float64"))
        (first,) = mx.autograd.grad(loss, [x], create_graph=True)
        (second,) = mx.autograd.grad((first * first).sum(), [x], create_graph=True)
        third_head = (second * second).sum()
    with pytest.raises(mx.MXNetError, match="_ctc_posterior_vjp.*no gradient rule"):
        third_head.backward()


def test_ctc_is_stable_for_long_sequences():
    # Probabilities of 200 frames underflow float64 as products; log space does not.
    rng = np.random.default_rng(6)
    pred = mx.nd.array(rng.uniform(-2, 2, (2, 200, 6)))
    label = mx.nd.array(rng.integers(0, 5, (2, 30)))
    pred.attach_grad()
    with mx.autograd.record():
        out = gloss.CTCLoss()(pred, label)
    out.backward()
    assert np.all(np.isfinite(out.asnumpy())) and np.all(out.asnumpy() > 100)
    grad = pred.grad.asnumpy()
    assert np.all(np.isfinite(grad))
    # each frame's gradient is softmax minus a distribution: it sums to zero
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-5)


def test_ctc_loss_trains_in_a_hybridized_step():
    # the loss of a few frames falls under plain gradient descent on the logits
    rng = np.random.default_rng(7)
    logits = mx.nd.array(rng.uniform(-0.1, 0.1, (2, 8, 5)))
    label = mx.nd.array([[0, 1, 2, -1], [3, 3, -1, -1]])
    loss_fn = gloss.CTCLoss()
    loss_fn.hybridize()
    losses = []
    for _ in range(30):
        logits.attach_grad()
        with mx.autograd.record():
            loss = loss_fn(logits, label)
        loss.backward()
        losses.append(float(loss.sum().asscalar()))
        logits = logits - 0.5 * logits.grad
    assert losses[-1] < 0.2 * losses[0]


COMPILED_CASES = [
    "ctc_tnc_lengths_weights",
    "sce_weight_sample_weight",
    "bce_pos_weight",
    "huber_rho_weights",
    "cosine_margin_weights",
    "kl_from_scores_batch_axis1",
]


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.id in COMPILED_CASES], ids=COMPILED_CASES)
def test_compiled_backend_equals_interpreter(case, monkeypatch):
    # the same hybridized loss, its gradients run by the numba backend and by numpy
    import symgrad_compiler as compiler

    values = _values(case)
    given, position = _present(values)
    results = {}
    for backend in ("interpreter", "compiled"):
        monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
        compiler.clear_cache()
        fn = _function(case, True, values)
        for _ in range(2):
            arrays = [mx.nd.array(v) for v in given]
            for i in case.wrt:
                arrays[position(i)].attach_grad()
            with mx.autograd.record():
                out = fn(*arrays)
            out.backward()
        results[backend] = [out.asnumpy()] + [arrays[position(i)].grad.asnumpy() for i in case.wrt]
    compiler.clear_cache()
    for ours, reference in zip(results["compiled"], results["interpreter"]):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
