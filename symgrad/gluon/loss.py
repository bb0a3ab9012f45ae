"""``gluon.loss``: MXNet 1.x's losses as HybridBlocks.

Each loss computes one value per sample: the elementwise loss, multiplied by
``sample_weight`` (broadcast against it) and by the scalar ``weight``, then
averaged over every axis but ``batch_axis``. The math is registered ops called
through ``F`` (``mx.nd`` when imperative, ``mx.sym`` when hybridized), so every
loss differentiates, twice and more, through the compiler's gradient rules.

>>> import symgrad as mx
>>> loss = mx.gluon.loss.L2Loss()
>>> loss(mx.nd.array([[1., 2.]]), mx.nd.array([[0., 0.]]))
<BLANKLINE>
[1.25]
<NDArray 1 @cpu(0)>
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .block import HybridBlock

__all__ = [
    "Loss",
    "L2Loss",
    "L1Loss",
    "SigmoidBinaryCrossEntropyLoss",
    "SigmoidBCELoss",
    "SoftmaxCrossEntropyLoss",
    "SoftmaxCELoss",
    "KLDivLoss",
    "CTCLoss",
    "HuberLoss",
    "HingeLoss",
    "SquaredHingeLoss",
    "LogisticLoss",
    "TripletLoss",
    "PoissonNLLLoss",
    "CosineEmbeddingLoss",
    "SDMLLoss",
]

# Added inside logarithms of probabilities, as MXNet does, so that p = 0 gives a
# large finite loss rather than inf.
_LOG_EPSILON = 1e-12


class _WeightError(TypeError, AssertionError):
    """A loss weight that is not a number (MXNet asserts it: an AssertionError,
    and a TypeError by its meaning)."""


def _apply_weighting(
    F: Any, loss: Any, weight: float | None = None, sample_weight: Any = None
) -> Any:
    """``loss * sample_weight * weight``: ``sample_weight`` (an array broadcast
    against ``loss``) and ``weight`` (a number) are each optional.

    Gradient: the incoming gradient times the same factors (for ``loss``), and
    summed over broadcast axes of ``loss * g`` (for ``sample_weight``).
    """
    if sample_weight is not None:
        loss = F.broadcast_mul(loss, sample_weight)
    if weight is not None:
        if not isinstance(weight, numbers.Number):
            raise _WeightError(f"weight must be a number, got {type(weight).__name__}")
        loss = loss * weight
    return loss


def _reshape_like(F: Any, x: Any, like: Any) -> Any:
    """``x`` with the shape of ``like`` (labels given flat for a (N, 1) output, say)."""
    return F.reshape_like(x, like)


def _softplus_of_negative_abs(F: Any, x: Any) -> Any:
    """log(1 + exp(-|x|)): the bounded part of a stable log(1 + exp(x))."""
    return F.Activation(-F.abs(x), act_type="softrelu")


class Loss(HybridBlock):
    """Base class of the losses: holds the scalar ``weight`` and the ``batch_axis``
    that the per-sample mean keeps.

    Parameters
    ----------
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int
        The axis that indexes samples; every other axis is averaged away.
    **kwargs
        ``prefix`` and ``params``, as for any Block.
    """

    def __init__(self, weight: float | None, batch_axis: int, **kwargs: Any):
        super().__init__(**kwargs)
        self._weight = weight
        self._batch_axis = batch_axis

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(batch_axis={self._batch_axis}, w={self._weight})"

    def _per_sample(self, F: Any, loss: Any, sample_weight: Any) -> Any:
        """Weight ``loss`` and average it over every axis but the batch axis."""
        loss = _apply_weighting(F, loss, self._weight, sample_weight)
        return F.mean(loss, axis=self._batch_axis, exclude=True)

    def hybrid_forward(self, F: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Overridden by each loss."""
        raise NotImplementedError


class L2Loss(Loss):
    r"""Half the squared error: ``weight / 2 * (label - pred)^2``, averaged per sample.

    ``label`` is reshaped to ``pred``'s shape. Gradient with respect to ``pred``:
    ``weight * (pred - label) * sample_weight / (elements per sample)``.

    Parameters
    ----------
    weight : float, default 1.0
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.

    Examples
    --------
    >>> import symgrad as mx
    >>> mx.gluon.loss.L2Loss(weight=2.0)(mx.nd.array([[1., 3.]]), mx.nd.array([[0., 0.]]))
    <BLANKLINE>
    [5.]
    <NDArray 1 @cpu(0)>
    """

    def __init__(self, weight: float = 1.0, batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        label = _reshape_like(F, label, pred)
        loss = F.square(label - pred)
        loss = _apply_weighting(F, loss, self._weight / 2, sample_weight)
        return F.mean(loss, axis=self._batch_axis, exclude=True)


class L1Loss(Loss):
    """Absolute error ``|label - pred|``, weighted and averaged per sample.

    Gradient with respect to ``pred``: ``sign(pred - label)`` times the weights over
    the elements per sample.

    Parameters
    ----------
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def __init__(self, weight: float | None = None, batch_axis: int = 0, **kwargs: Any):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        label = _reshape_like(F, label, pred)
        return self._per_sample(F, F.abs(label - pred), sample_weight)


class SigmoidBinaryCrossEntropyLoss(Loss):
    r"""Binary cross-entropy of ``label`` (in [0, 1]) against ``sigmoid(pred)``.

    With logits (``from_sigmoid=False``) it is computed stably as
    ``relu(x) - x * y + log(1 + exp(-|x|))``; with ``pos_weight`` the positive
    term is weighted: ``x - x y + (1 + (pos_weight - 1) y) (log(1 + exp(-|x|)) +
    relu(-x))``. With probabilities (``from_sigmoid=True``) it is
    ``-(y log(p + eps) + (1 - y) log(1 - p + eps))``, eps = 1e-12, and pos_weight
    multiplies the first term.

    Gradient with respect to logits: ``sigmoid(x) - y`` (unweighted), i.e.
    ``(1 + (pos_weight - 1) y) sigmoid(x) - pos_weight y`` with pos_weight.

    Parameters
    ----------
    from_sigmoid : bool, default False
        Whether ``pred`` holds probabilities (True) or logits (False).
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def __init__(
        self,
        from_sigmoid: bool = False,
        weight: float | None = None,
        batch_axis: int = 0,
        **kwargs: Any,
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_sigmoid = from_sigmoid

    def hybrid_forward(
        self, F: Any, pred: Any, label: Any, sample_weight: Any = None, pos_weight: Any = None
    ) -> Any:
        """The per-sample loss, shape (batch,); ``pos_weight`` broadcasts against
        the label."""
        label = _reshape_like(F, label, pred)
        if not self._from_sigmoid:
            if pos_weight is None:
                loss = F.relu(pred) - pred * label + _softplus_of_negative_abs(F, pred)
            else:
                positive_scale = F.broadcast_mul(pos_weight - 1, label) + 1
                loss = (
                    pred
                    - pred * label
                    + positive_scale * (_softplus_of_negative_abs(F, pred) + F.relu(-pred))
                )
        else:
            log_p = F.log(pred + _LOG_EPSILON)
            log_not_p = F.log(1.0 - pred + _LOG_EPSILON)
            positive = log_p * label
            if pos_weight is not None:
                positive = F.broadcast_mul(positive, pos_weight)
            loss = -(positive + log_not_p * (1.0 - label))
        return self._per_sample(F, loss, sample_weight)


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss


class SoftmaxCrossEntropyLoss(Loss):
    r"""Cross-entropy of ``label`` against ``softmax(pred)`` along ``axis``.

    ``-log_softmax(pred)[label]`` with integer labels (``sparse_label=True``), or
    ``-sum(label * log_softmax(pred))`` with distributions; ``from_logits=True``
    takes ``pred`` as log-probabilities already. Weighted and averaged per sample.

    Gradient with respect to ``pred`` (logits, sparse labels):
    ``softmax(pred) - one_hot(label)`` times the weights.

    Parameters
    ----------
    axis : int, default -1
        The class axis.
    sparse_label : bool, default True
        Whether ``label`` holds class indices (True) or distributions (False).
    from_logits : bool, default False
        Whether ``pred`` holds log-probabilities already.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.

    Examples
    --------
    >>> import symgrad as mx
    >>> loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    >>> loss(mx.nd.array([[0., 0.], [2., 0.]]), mx.nd.array([1, 0])).asnumpy().round(4)
    array([0.6931, 0.1269], dtype=float32)
    """

    def __init__(
        self,
        axis: int = -1,
        sparse_label: bool = True,
        from_logits: bool = False,
        weight: float | None = None,
        batch_axis: int = 0,
        **kwargs: Any,
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._axis = axis
        self._sparse_label = sparse_label
        self._from_logits = from_logits

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=self._axis)
        if self._sparse_label:
            loss = -F.pick(pred, label, axis=self._axis, keepdims=True)
        else:
            label = _reshape_like(F, label, pred)
            loss = -F.sum(pred * label, axis=self._axis, keepdims=True)
        return self._per_sample(F, loss, sample_weight)


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class KLDivLoss(Loss):
    r"""Kullback-Leibler divergence ``label * (log(label + eps) - pred)``, eps = 1e-12.

    ``pred`` holds log-probabilities (``from_logits=True``, the default) or
    unnormalised scores turned into them by ``log_softmax`` along ``axis``.
    Weighted, then summed (not averaged, unlike the other losses: MXNet 1.9.1's
    numbers) over every axis but the batch axis. Gradient with respect to
    log-probabilities: ``-label`` times the weights.

    Parameters
    ----------
    from_logits : bool, default True
        Whether ``pred`` holds log-probabilities (True) or scores (False).
    axis : int, default -1
        The axis of the distribution, for ``log_softmax`` when not from logits.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def __init__(
        self,
        from_logits: bool = True,
        axis: int = -1,
        weight: float | None = None,
        batch_axis: int = 0,
        **kwargs: Any,
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits = from_logits
        self._axis = axis

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=self._axis)
        loss = label * (F.log(label + _LOG_EPSILON) - pred)
        loss = _apply_weighting(F, loss, self._weight, sample_weight)
        # summed, not averaged, over the other axes (MXNet 1.9.1 does so)
        return F.sum(loss, axis=self._batch_axis, exclude=True)


class CTCLoss(Loss):
    r"""Connectionist Temporal Classification loss, one value per sequence.

    ``pred`` holds unnormalised activations, (batch, time, alphabet) for
    ``layout='NTC'`` or (time, batch, alphabet) for ``'TNC'``; ``label`` holds
    class indices (``label_layout`` 'NT' or 'TN'), padded with -1 (the last class,
    alphabet-1, is the blank). ``pred_lengths``/``label_lengths`` give each
    sequence's length when given. The loss is ``-log p(label | pred)`` summed over
    alignments (the ``CTCLoss`` op), times the weights; it is not averaged.

    Gradient with respect to ``pred``: ``softmax(pred) - gamma``, gamma being the
    expected emissions of each class per frame under the posterior over
    alignments (see ``compiler/ops/ctc.py``).

    Parameters
    ----------
    layout : {'NTC', 'TNC'}
        Layout of ``pred``.
    label_layout : {'NT', 'TN'}
        Layout of ``label``; its batch axis is the loss's ``batch_axis``.
    weight : float or None
        Global scalar weight of the loss.

    Examples
    --------
    >>> import symgrad as mx
    >>> pred = mx.nd.zeros((1, 2, 3))  # uniform over {a, b, blank} in 2 frames
    >>> loss = mx.gluon.loss.CTCLoss()(pred, mx.nd.array([[0]]))
    >>> round(float((-loss).exp().asscalar()) * 9, 4)  # 3 of the 9 paths spell "a"
    3.0
    """

    def __init__(
        self,
        layout: str = "NTC",
        label_layout: str = "NT",
        weight: float | None = None,
        **kwargs: Any,
    ):
        if layout not in ("NTC", "TNC"):
            raise ValueError(f"Only 'NTC' and 'TNC' layouts for pred are supported. Got: {layout}")
        if label_layout not in ("NT", "TN"):
            raise ValueError(
                f"Only 'NT' and 'TN' layouts for label are supported. Got: {label_layout}"
            )
        self._layout = layout
        self._label_layout = label_layout
        super().__init__(weight, label_layout.find("N"), **kwargs)

    def hybrid_forward(
        self,
        F: Any,
        pred: Any,
        label: Any,
        pred_lengths: Any = None,
        label_lengths: Any = None,
        sample_weight: Any = None,
    ) -> Any:
        """The per-sequence loss, shape (batch,)."""
        if self._layout == "NTC":
            pred = F.swapaxes(pred, dim1=0, dim2=1)
        if self._batch_axis == 1:
            label = F.swapaxes(label, dim1=0, dim2=1)
        lengths = [x for x in (pred_lengths, label_lengths) if x is not None]
        loss = F.CTCLoss(
            pred,
            label,
            *lengths,
            use_data_lengths=pred_lengths is not None,
            use_label_lengths=label_lengths is not None,
            blank_label="last",
        )
        return _apply_weighting(F, loss, self._weight, sample_weight)


class HuberLoss(Loss):
    r"""Smoothed L1: ``0.5 / rho * d^2`` where ``d = |label - pred| <= rho``, else
    ``d - 0.5 * rho``; weighted and averaged per sample.

    Gradient with respect to ``pred``: ``(pred - label) / rho`` inside the band,
    ``sign(pred - label)`` outside.

    Parameters
    ----------
    rho : float, default 1
        Where the loss turns from quadratic to linear.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def __init__(
        self, rho: float = 1, weight: float | None = None, batch_axis: int = 0, **kwargs: Any
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._rho = rho

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        label = _reshape_like(F, label, pred)
        distance = F.abs(label - pred)
        loss = F.where(
            distance > self._rho, distance - 0.5 * self._rho, (0.5 / self._rho) * F.square(distance)
        )
        return self._per_sample(F, loss, sample_weight)


class _MarginLoss(Loss):
    """A loss with a ``margin`` (1 by default) besides the scalar ``weight`` and the
    ``batch_axis``: the hinge losses and TripletLoss."""

    def __init__(
        self, margin: float = 1, weight: float | None = None, batch_axis: int = 0, **kwargs: Any
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = margin

    def _hinge(self, F: Any, pred: Any, label: Any) -> Any:
        """``max(0, margin - pred * label)``, ``label`` reshaped like ``pred``."""
        return F.relu(self._margin - pred * _reshape_like(F, label, pred))


class HingeLoss(_MarginLoss):
    r"""``max(0, margin - pred * label)`` for labels in {-1, 1}; weighted and averaged
    per sample. Gradient with respect to ``pred``: ``-label`` where the margin is
    violated, else 0.

    Parameters
    ----------
    margin : float, default 1
        The margin.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        return self._per_sample(F, self._hinge(F, pred, label), sample_weight)


class SquaredHingeLoss(_MarginLoss):
    r"""``max(0, margin - pred * label)^2`` for labels in {-1, 1}; weighted and
    averaged per sample. Gradient with respect to ``pred``:
    ``-2 label max(0, margin - pred * label)``.

    Parameters
    ----------
    margin : float, default 1
        The margin.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        return self._per_sample(F, F.square(self._hinge(F, pred, label)), sample_weight)


class LogisticLoss(Loss):
    r"""Logistic loss ``log(1 + exp(-pred * label))`` for signed labels {-1, 1}
    (``label_format='signed'``) or the same written for {0, 1} labels
    (``'binary'``): computed stably as ``relu(x) - x y + log(1 + exp(-|x|))`` with
    binary ``y``. Weighted and averaged per sample. Gradient with respect to
    ``pred``: ``sigmoid(pred) - y``.

    Parameters
    ----------
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    label_format : {'signed', 'binary'}
        Labels in {-1, 1} or in {0, 1}.
    """

    def __init__(
        self,
        weight: float | None = None,
        batch_axis: int = 0,
        label_format: str = "signed",
        **kwargs: Any,
    ):
        super().__init__(weight, batch_axis, **kwargs)
        if label_format not in ("signed", "binary"):
            raise ValueError(f"label_format can only be signed or binary, received {label_format}.")
        self._label_format = label_format

    def hybrid_forward(self, F: Any, pred: Any, label: Any, sample_weight: Any = None) -> Any:
        """The per-sample loss, shape (batch,)."""
        label = _reshape_like(F, label, pred)
        if self._label_format == "signed":
            label = (label + 1.0) / 2.0  # {-1, 1} -> {0, 1}
        loss = F.relu(pred) - pred * label + _softplus_of_negative_abs(F, pred)
        return self._per_sample(F, loss, sample_weight)


class TripletLoss(_MarginLoss):
    r"""``max(0, sum(|positive - pred|^2) - sum(|negative - pred|^2) + margin)``, the
    sums over every axis but the batch axis; times the weights (not averaged).

    Gradient with respect to ``pred`` where the margin is violated:
    ``2 (negative - positive)``; to ``positive``: ``2 (positive - pred)``; to
    ``negative``: ``-2 (negative - pred)``.

    Parameters
    ----------
    margin : float, default 1
        The margin.
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def hybrid_forward(
        self, F: Any, pred: Any, positive: Any, negative: Any, sample_weight: Any = None
    ) -> Any:
        """The per-sample loss, shape (batch,). ``sample_weight`` is an extension
        (MXNet 1.9.1 takes none)."""
        positive = _reshape_like(F, positive, pred)
        negative = _reshape_like(F, negative, pred)
        loss = F.sum(
            F.square(positive - pred) - F.square(negative - pred),
            axis=self._batch_axis,
            exclude=True,
        )
        loss = F.relu(loss + self._margin)
        return _apply_weighting(F, loss, self._weight, sample_weight)


class PoissonNLLLoss(Loss):
    r"""Negative log-likelihood of ``target`` under a Poisson distribution of mean
    ``exp(pred)`` (``from_logits=True``: ``exp(pred) - target * pred``) or ``pred``
    (``pred - target * log(pred + epsilon)``); ``compute_full`` adds Stirling's
    approximation of ``log(target!)``, ``t log t - t + 0.5 log(2 pi t)``, where
    ``target > 1``. Weighted, then averaged over all elements, batch included, as
    MXNet 1.x does: the result has shape (1,).

    Gradient with respect to ``pred`` (logits): ``exp(pred) - target`` over the
    element count.

    Parameters
    ----------
    weight : float or None
        Global scalar weight of the loss.
    from_logits : bool, default True
        Whether ``pred`` is the log of the rate (True) or the rate itself.
    batch_axis : int, default 0
        Kept for MXNet's signature (the mean covers every axis).
    compute_full : bool, default False
        Whether to add the Stirling term.
    """

    def __init__(
        self,
        weight: float | None = None,
        from_logits: bool = True,
        batch_axis: int = 0,
        compute_full: bool = False,
        **kwargs: Any,
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits = from_logits
        self._compute_full = compute_full

    def hybrid_forward(
        self, F: Any, pred: Any, target: Any, sample_weight: Any = None, epsilon: float = 1e-08
    ) -> Any:
        """The loss averaged over every element, shape (1,)."""
        target = _reshape_like(F, target, pred)
        if self._from_logits:
            loss = F.exp(pred) - target * pred
        else:
            loss = pred - target * F.log(pred + epsilon)
        if self._compute_full:
            # Only targets above 1 get the term; below, log(target) may be -inf,
            # so those elements take 1 in its place (the term is dropped anyway).
            above_one = target > 1
            safe = F.where(above_one, target, F.ones_like(target))
            stirling = safe * F.log(safe) - safe + 0.5 * F.log(2 * math.pi * safe)
            loss = loss + stirling * above_one
        loss = _apply_weighting(F, loss, self._weight, sample_weight)
        return F.mean(loss)


class CosineEmbeddingLoss(Loss):
    r"""``1 - cos(input1, input2)`` for label 1 and ``max(0, cos(input1, input2) -
    margin)`` for label -1, the cosine taken along the last axis (its norms
    product floored at 1e-12); times the weights, shape (batch, 1).

    Gradient with respect to ``input1`` (label 1): ``-(input2 / (|x1| |x2|) -
    cos * input1 / |x1|^2)``.

    Parameters
    ----------
    weight : float or None
        Global scalar weight of the loss.
    batch_axis : int, default 0
        The axis that indexes samples.
    margin : float, default 0
        The cosine below which dissimilar pairs cost nothing.
    """

    def __init__(
        self, weight: float | None = None, batch_axis: int = 0, margin: float = 0, **kwargs: Any
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = margin

    def hybrid_forward(
        self, F: Any, input1: Any, input2: Any, label: Any, sample_weight: Any = None
    ) -> Any:
        """The per-sample loss, shape (batch, 1)."""
        input1 = _reshape_like(F, input1, input2)
        label = F.reshape(label, shape=(-1, 1))
        cosine = self._cosine_similarity(F, input1, input2)
        similar = (1 - cosine) * (label == 1)
        dissimilar = F.relu((label == -1) * (cosine - self._margin))
        return _apply_weighting(F, similar + dissimilar, self._weight, sample_weight)

    @staticmethod
    def _cosine_similarity(F: Any, x: Any, y: Any, axis: int = -1) -> Any:
        """Cosine of the angle between ``x`` and ``y`` along ``axis``, as (-1, 1)."""
        norms = F.reshape(F.norm(x, axis=axis) * F.norm(y, axis=axis), shape=(-1, 1))
        dots = F.reshape(F.sum(x * y, axis=axis), shape=(-1, 1))
        return dots / F.maximum(norms, 1e-12)


class SDMLLoss(Loss):
    r"""Batchwise Smoothed Deep Metric Learning loss for aligned pairs ``x1[i]``,
    ``x2[i]`` (batch, dim): every other row of the batch serves as a negative.

    With distances ``D[i, j] = |x1[i] - x2[j]|^2`` and targets ``1 - s`` on the
    diagonal and ``s / (batch - 1)`` elsewhere (``s = smoothing_parameter``), the
    loss of row ``i`` is the KL divergence of ``softmax(-D[i])`` from the targets,
    ``sum_j t_ij (log(t_ij + 1e-12) - log_softmax(-D)_ij)``. MXNet 1.9.1 ignores
    ``weight`` here, and so does this class. Gradient with respect to ``x1[i]``:
    ``2 sum_j (softmax(-D)_ij - t_ij) (x1[i] - x2[j])``.

    Parameters
    ----------
    smoothing_parameter : float, default 0.3
        Probability mass spread over the other rows; below 1.
    weight : float, default 1.0
        Accepted and ignored, as in MXNet 1.9.1.
    batch_axis : int, default 0
        The axis that indexes samples.
    """

    def __init__(
        self,
        smoothing_parameter: float = 0.3,
        weight: float = 1.0,
        batch_axis: int = 0,
        **kwargs: Any,
    ):
        super().__init__(weight, batch_axis, **kwargs)
        self.smoothing_parameter = smoothing_parameter

    def hybrid_forward(self, F: Any, x1: Any, x2: Any) -> Any:
        """The per-row loss, shape (batch,)."""
        pairs = F.broadcast_sub(F.expand_dims(x1, axis=1), F.expand_dims(x2, axis=0))
        distances = F.sum(F.square(pairs), axis=2)
        log_p = F.log_softmax(-distances, axis=1)
        # The targets depend on the batch size, read from the data (not baked into
        # the graph, so a hybridized loss takes any batch size).
        others = F.sum(F.ones_like(distances), axis=1) - 1
        on = 1.0 - self.smoothing_parameter
        off = self.smoothing_parameter / others
        # log_softmax(-D)[i, i] = -D[i, i] + logsumexp_j(-D[i, j]), the latter being
        # D[i, j] + log_p[i, j] for every j (their mean, here)
        matched = -F.sum(F.square(x1 - x2), axis=1) + F.mean(distances + log_p, axis=1)
        entropy = others * off * F.log(off + _LOG_EPSILON) + on * math.log(on + _LOG_EPSILON)
        return entropy - off * F.sum(log_p, axis=1) - (on - off) * matched
