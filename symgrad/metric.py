"""``mx.metric``: MXNet 1.x's evaluation metrics.

Each metric accumulates ``sum_metric`` and ``num_inst`` over calls to ``update``
(and, for metrics with global statistics, ``global_sum_metric`` and
``global_num_inst``, which ``reset_local`` leaves alone); ``get`` reports their
ratio. Arithmetic is done in numpy, in the dtypes MXNet uses, so the values are
MXNet's.

>>> import symgrad as mx
>>> acc = mx.metric.Accuracy()
>>> acc.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.3, 0.7], [0, 1.], [0.4, 0.6]])])
>>> name, value = acc.get()
>>> print(name, round(value, 4))
accuracy 0.6667
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy

from .ndarray import NDArray

__all__ = [
    "EvalMetric",
    "CompositeEvalMetric",
    "Accuracy",
    "TopKAccuracy",
    "F1",
    "MCC",
    "MAE",
    "MSE",
    "RMSE",
    "CrossEntropy",
    "NegativeLogLikelihood",
    "Perplexity",
    "PearsonCorrelation",
    "PCC",
    "Loss",
    "CustomMetric",
    "np",
    "create",
    "register",
    "alias",
    "check_label_shapes",
]


# -- registry -------------------------------------------------------------------
_REGISTRY: dict[str, type] = {}


def register(klass: type, name: str | None = None) -> type:
    """Register a metric class under ``name`` (its class name by default), lower
    cased, so ``create(name)`` finds it; returns the class (usable as a
    decorator)."""
    _REGISTRY[(klass.__name__ if name is None else name).lower()] = klass
    return klass


def alias(*aliases: str) -> Callable[[type], type]:
    """A decorator registering a metric class under extra ``aliases`` as well."""

    def decorate(klass: type) -> type:
        for name in aliases:
            _REGISTRY[name.lower()] = klass
        return klass

    return decorate


def create(metric: Any, *args: Any, **kwargs: Any) -> EvalMetric:
    """A metric from a name (``'acc'``, ``'mse'``...), an ``EvalMetric`` (returned
    as is), a callable ``feval(label, pred)`` (wrapped in ``CustomMetric``) or a
    list of these (a ``CompositeEvalMetric``)."""
    if callable(metric) and not isinstance(metric, (EvalMetric, type)):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    if isinstance(metric, EvalMetric):
        return metric
    if isinstance(metric, type) and issubclass(metric, EvalMetric):
        return metric(*args, **kwargs)
    if not isinstance(metric, str):
        raise TypeError(
            f"metric must be a name, an EvalMetric, a callable or a list, "
            f"not {type(metric).__name__}"
        )
    klass = _REGISTRY.get(metric.lower())
    if klass is None:
        raise AssertionError(
            f"{metric} is not registered. Please register with metric.register first"
        )
    return klass(*args, **kwargs)


# -- helpers --------------------------------------------------------------------
def _numpy(array: Any) -> numpy.ndarray:
    """The values of an NDArray or array-like as a numpy array."""
    if isinstance(array, NDArray):
        return array.asnumpy()
    return numpy.asarray(array)


def check_label_shapes(
    labels: Any, preds: Any, wrap: bool = False, shape: bool = False
) -> tuple[Any, Any]:
    """Check that ``labels`` and ``preds`` have the same length (or, with
    ``shape=True``, the same shape), raising ``ValueError`` otherwise; with
    ``wrap=True`` a single array is wrapped into a one-element list."""
    if shape:
        label_shape, pred_shape = labels.shape, preds.shape
    else:
        label_shape, pred_shape = len(labels), len(preds)
    if label_shape != pred_shape:
        raise ValueError(
            f"Shape of labels {label_shape} does not match shape of predictions {pred_shape}"
        )
    if wrap:
        if isinstance(labels, (NDArray, numpy.ndarray)):
            labels = [labels]
        if isinstance(preds, (NDArray, numpy.ndarray)):
            preds = [preds]
    return labels, preds


# -- the base class -------------------------------------------------------------
class EvalMetric:
    """The base class of metrics: subclasses implement ``update(labels, preds)``,
    adding to ``sum_metric`` and ``num_inst``; ``get`` returns
    ``(name, sum_metric / num_inst)``, NaN before any update.

    Parameters
    ----------
    name : str
        The metric's name, as ``get`` reports it.
    output_names, label_names : list of str, optional
        The outputs and labels ``update_dict`` picks from its dicts.
    """

    def __init__(
        self,
        name: str,
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
        **kwargs: Any,
    ):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self) -> str:
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self) -> dict:
        """The arguments that make this metric again with ``create``."""
        config = self._kwargs.copy()
        config.update(
            {
                "metric": self.__class__.__name__,
                "name": self.name,
                "output_names": self.output_names,
                "label_names": self.label_names,
            }
        )
        return config

    def update_dict(self, label: dict, pred: dict) -> None:
        """Update from dicts of named labels and outputs, picking
        ``label_names``/``output_names`` when they are set."""
        if self.output_names is not None:
            pred = [pred[name] for name in self.output_names]
        else:
            pred = list(pred.values())
        if self.label_names is not None:
            label = [label[name] for name in self.label_names]
        else:
            label = list(label.values())
        self.update(label, pred)

    def update(self, labels: Any, preds: Any) -> None:
        """Add a batch of ``labels`` and predictions ``preds`` (lists of arrays)."""
        raise NotImplementedError()

    def reset(self) -> None:
        """Clear the local and the global statistics."""
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self) -> None:
        """Clear the local statistics only (the global ones keep counting)."""
        self.num_inst = 0
        self.sum_metric = 0.0

    def _add(self, value: Any, count: Any) -> None:
        """Add ``value`` to both sums and ``count`` to both counts."""
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def get(self) -> tuple[Any, Any]:
        """``(name, sum_metric / num_inst)``; the value is NaN with no instances."""
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, _plain(self.sum_metric / self.num_inst))

    def get_global(self) -> tuple[Any, Any]:
        """Like ``get`` over everything since the last ``reset`` (``get`` itself for
        metrics without global statistics)."""
        if not self._has_global_stats:
            return self.get()
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, _plain(self.global_sum_metric / self.global_num_inst))

    def get_name_value(self) -> list[tuple[str, Any]]:
        """``get`` as a list of ``(name, value)`` pairs."""
        return _pairs(*self.get())

    def get_global_name_value(self) -> list[tuple[str, Any]]:
        """``get_global`` as a list of ``(name, value)`` pairs."""
        return _pairs(*self.get_global())


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds, so values print as MXNet's
    (under numpy 1.x) print, without ``np.float64(...)``."""
    return value.item() if isinstance(value, numpy.generic) else value


def _pairs(name: Any, value: Any) -> list[tuple[str, Any]]:
    if not isinstance(name, list):
        name = [name]
    if not isinstance(value, list):
        value = [value]
    return list(zip(name, value))


@register
@alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; ``get`` returns the lists of their names
    and values."""

    def __init__(
        self,
        metrics: list | None = None,
        name: str = "composite",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(
            name, output_names=output_names, label_names=label_names, has_global_stats=True
        )
        self.metrics = [create(metric) for metric in (metrics or [])]

    def add(self, metric: Any) -> None:
        """Add a child metric (anything ``create`` takes)."""
        self.metrics.append(create(metric))

    def get_metric(self, index: int) -> EvalMetric:
        """The child metric at ``index``."""
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(
                f"Metric index {index} is out of range 0 and {len(self.metrics)}"
            ) from None

    def update_dict(self, labels: dict, preds: dict) -> None:
        """Update every child from dicts, filtered by this metric's names first."""
        if self.label_names is not None:
            labels = OrderedDict((k, v) for k, v in labels.items() if k in self.label_names)
        if self.output_names is not None:
            preds = OrderedDict((k, v) for k, v in preds.items() if k in self.output_names)
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels: Any, preds: Any) -> None:
        """Update every child metric."""
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self) -> None:
        """Reset every child metric."""
        for metric in getattr(self, "metrics", []):
            metric.reset()

    def reset_local(self) -> None:
        """Reset every child metric's local statistics."""
        for metric in self.metrics:
            metric.reset_local()

    def _collect(self, getter: str) -> tuple[list, list]:
        names: list = []
        values: list = []
        for metric in self.metrics:
            name, value = getattr(metric, getter)()
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return names, values

    def get(self) -> tuple[list, list]:
        """The children's names and values, as two lists."""
        return self._collect("get")

    def get_global(self) -> tuple[list, list]:
        """The children's names and global values, as two lists."""
        return self._collect("get_global")

    def get_config(self) -> dict:
        """This metric's config with its children's."""
        config = super().get_config()
        config.update({"metrics": [metric.get_config() for metric in self.metrics]})
        return config


# -- classification -------------------------------------------------------------
@register
@alias("acc")
class Accuracy(EvalMetric):
    """The fraction of predictions equal to the labels. A prediction whose shape
    differs from its label's is reduced by argmax over ``axis`` first."""

    def __init__(
        self,
        axis: int = 1,
        name: str = "accuracy",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(
            name,
            axis=axis,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=True,
        )
        self.axis = axis

    def update(self, labels: Any, preds: Any) -> None:
        """Count the predictions (class indices, or scores to argmax) that equal
        the labels."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred = _numpy(pred)
            label = _numpy(label)
            if pred.shape != label.shape:
                pred = numpy.argmax(pred, axis=self.axis)
            pred = pred.astype("int32").ravel()
            label = label.astype("int32").ravel()
            check_label_shapes(label, pred)
            self._add((pred == label).sum(), len(pred))


@register
@alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """The fraction of samples whose label is among the ``top_k`` highest scores
    (``top_k`` must be more than 1; the name gets ``_<top_k>`` appended)."""

    def __init__(
        self,
        top_k: int = 1,
        name: str = "top_k_accuracy",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(
            name,
            top_k=top_k,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=True,
        )
        self.top_k = top_k
        if not self.top_k > 1:
            raise AssertionError("Please use Accuracy if top_k is no more than 1")
        self.name += f"_{self.top_k}"

    def update(self, labels: Any, preds: Any) -> None:
        """Count the samples whose label is in the top ``top_k`` columns."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred = _numpy(pred).astype("float32")
            if pred.ndim > 2:
                raise AssertionError("Predictions should be no more than 2 dims")
            # argpartition puts the top_k scores in the last top_k columns, ties
            # resolved as numpy resolves them (as MXNet does)
            order = numpy.argpartition(pred, -self.top_k)
            label = _numpy(label).astype("int32")
            check_label_shapes(label, order)
            if order.ndim == 1:
                correct = (order.ravel() == label.ravel()).sum()
            else:
                classes = order.shape[1]
                top = order[:, classes - min(classes, self.top_k) :]
                correct = (top == label.reshape(-1, 1)).sum()
            self._add(correct, order.shape[0])


class _BinaryCounts:
    """True/false positive/negative counts of a binary classifier, local and
    global, and the F1 score and Matthews correlation they give."""

    def __init__(self) -> None:
        self.reset_stats()

    def update_binary_stats(self, label: Any, pred: Any) -> None:
        """Add the counts of one batch: ``pred`` holds two scores per sample."""
        pred = _numpy(pred)
        label = _numpy(label).astype("int32")
        predicted = numpy.argmax(pred, axis=1)
        check_label_shapes(label, pred)
        if len(numpy.unique(label)) > 2:
            raise ValueError("F1/MCC currently only supports binary classification.")
        pred_true = predicted == 1
        label_true = label == 1
        counts = {
            "tp": (pred_true & label_true).sum(),
            "fp": (pred_true & ~label_true).sum(),
            "fn": (~pred_true & label_true).sum(),
            "tn": (~pred_true & ~label_true).sum(),
        }
        for key, value in counts.items():
            self.local[key] += int(value)
            self.glob[key] += int(value)

    @staticmethod
    def _fscore(c: dict) -> float:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] > 0 else 0.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] > 0 else 0.0
        if precision + recall > 0:
            return 2 * precision * recall / (precision + recall)
        return 0.0

    @staticmethod
    def _mcc(c: dict) -> float:
        # zero factors are left out of the denominator, so an all-one-class batch
        # gives 0 rather than a division by zero
        denominator = 1.0
        for term in (c["tp"] + c["fp"], c["tp"] + c["fn"], c["tn"] + c["fp"], c["tn"] + c["fn"]):
            if term != 0:
                denominator *= term
        return (c["tp"] * c["tn"] - c["fp"] * c["fn"]) / math.sqrt(denominator)

    @property
    def fscore(self) -> float:
        """The local F1 score."""
        return self._fscore(self.local)

    @property
    def global_fscore(self) -> float:
        """The global F1 score."""
        return self._fscore(self.glob)

    @property
    def matthewscc(self) -> float:
        """The local Matthews correlation coefficient."""
        return self._mcc(self.local)

    @property
    def global_matthewscc(self) -> float:
        """The global Matthews correlation coefficient."""
        return self._mcc(self.glob)

    @property
    def total_examples(self) -> int:
        """Samples counted locally."""
        return sum(self.local.values())

    @property
    def global_total_examples(self) -> int:
        """Samples counted globally."""
        return sum(self.glob.values())

    def local_reset_stats(self) -> None:
        """Clear the local counts."""
        self.local = dict.fromkeys(("tp", "fp", "fn", "tn"), 0)

    def reset_stats(self) -> None:
        """Clear the local and global counts."""
        self.local_reset_stats()
        self.glob = dict.fromkeys(("tp", "fp", "fn", "tn"), 0)


class _BinaryMetric(EvalMetric):
    """F1 and MCC: with ``average='macro'`` the mean of per-batch scores, with
    ``'micro'`` the score of all samples' counts together."""

    _local: str
    _global: str

    def __init__(
        self, name: str, output_names: list[str] | None, label_names: list[str] | None, average: str
    ):
        self.average = average
        self.metrics = _BinaryCounts()
        super().__init__(
            name=name, output_names=output_names, label_names=label_names, has_global_stats=True
        )

    def update(self, labels: Any, preds: Any) -> None:
        """Count a batch (two scores per sample, labels 0 or 1)."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            self.metrics.update_binary_stats(label, pred)
            if self.average == "macro":
                self._add(getattr(self.metrics, self._local), 1)
                self.metrics.reset_stats()
            else:
                self.sum_metric = getattr(self.metrics, self._local) * self.metrics.total_examples
                self.global_sum_metric = (
                    getattr(self.metrics, self._global) * self.metrics.global_total_examples
                )
                self.num_inst = self.metrics.total_examples
                self.global_num_inst = self.metrics.global_total_examples

    def reset(self) -> None:
        """Clear all statistics and counts."""
        super().reset()
        self.metrics.reset_stats()

    def reset_local(self) -> None:
        """Clear the local statistics and counts."""
        super().reset_local()
        self.metrics.local_reset_stats()


@register
class F1(_BinaryMetric):
    """The F1 score ``2 p r / (p + r)`` of a binary classifier whose predictions
    are two scores per sample (class 1 is positive)."""

    _local, _global = "fscore", "global_fscore"

    def __init__(
        self,
        name: str = "f1",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
        average: str = "macro",
    ):
        super().__init__(name, output_names, label_names, average)


@register
class MCC(_BinaryMetric):
    """The Matthews correlation coefficient
    ``(tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))`` of a binary
    classifier."""

    _local, _global = "matthewscc", "global_matthewscc"

    def __init__(
        self,
        name: str = "mcc",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
        average: str = "macro",
    ):
        super().__init__(name, output_names, label_names, average)


# -- regression -----------------------------------------------------------------
class _BatchError(EvalMetric):
    """A per-batch error averaged over batches (MXNet counts one instance per
    batch); 1-d labels and predictions are read as columns."""

    def __init__(self, name: str, output_names: list[str] | None, label_names: list[str] | None):
        super().__init__(
            name, output_names=output_names, label_names=label_names, has_global_stats=True
        )

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        raise NotImplementedError()

    def update(self, labels: Any, preds: Any) -> None:
        """Add one batch error per (label, pred) pair."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label = _numpy(label)
            pred = _numpy(pred)
            if label.ndim == 1:
                label = label.reshape(label.shape[0], 1)
            if pred.ndim == 1:
                pred = pred.reshape(pred.shape[0], 1)
            self._add(self._error(label, pred), 1)


@register
class MAE(_BatchError):
    """Mean absolute error ``mean(|label - pred|)`` per batch, averaged."""

    def __init__(
        self,
        name: str = "mae",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return numpy.abs(label - pred).mean()


@register
class MSE(_BatchError):
    """Mean squared error ``mean((label - pred)**2)`` per batch, averaged."""

    def __init__(
        self,
        name: str = "mse",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return ((label - pred) ** 2.0).mean()


@register
class RMSE(_BatchError):
    """Root mean squared error ``sqrt(mean((label - pred)**2))`` per batch,
    averaged."""

    def __init__(
        self,
        name: str = "rmse",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(name, output_names, label_names)

    @staticmethod
    def _error(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return numpy.sqrt(((label - pred) ** 2.0).mean())


# -- probabilities --------------------------------------------------------------
class _PickedLogLoss(EvalMetric):
    """``-log(p[label] + eps)`` summed over samples, averaged per sample."""

    def __init__(
        self, eps: float, name: str, output_names: list[str] | None, label_names: list[str] | None
    ):
        super().__init__(
            name, eps=eps, output_names=output_names, label_names=label_names, has_global_stats=True
        )
        self.eps = eps

    def update(self, labels: Any, preds: Any) -> None:
        """Add ``-log(pred[i, label[i]] + eps)`` of every sample."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label = _numpy(label).ravel()
            pred = _numpy(pred)
            if label.shape[0] != pred.shape[0]:
                raise AssertionError((label.shape[0], pred.shape[0]))
            prob = pred[numpy.arange(label.shape[0]), numpy.int64(label)]
            self._add((-numpy.log(prob + self.eps)).sum(), label.shape[0])


@register
@alias("ce")
class CrossEntropy(_PickedLogLoss):
    """Cross entropy ``-log(pred[label] + eps)``, averaged over samples."""

    def __init__(
        self,
        eps: float = 1e-12,
        name: str = "cross-entropy",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(eps, name, output_names, label_names)


@register
@alias("nll_loss")
class NegativeLogLikelihood(_PickedLogLoss):
    """Negative log likelihood ``-log(pred[label] + eps)``, averaged over samples."""

    def __init__(
        self,
        eps: float = 1e-12,
        name: str = "nll-loss",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(eps, name, output_names, label_names)


@register
class Perplexity(EvalMetric):
    """Perplexity ``exp(-mean(log p[label]))`` of predicted distributions along
    ``axis``; samples whose label is ``ignore_label`` are left out."""

    def __init__(
        self,
        ignore_label: int | None,
        axis: int = -1,
        name: str = "perplexity",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(
            name,
            ignore_label=ignore_label,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=True,
        )
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels: Any, preds: Any) -> None:
        """Add the negative log probabilities of the labels (in the predictions'
        dtype, floored at 1e-10) and the count of labels not ignored."""
        if len(labels) != len(preds):
            raise AssertionError(f"{len(labels)} labels but {len(preds)} predictions")
        loss = 0.0
        num = 0
        for label, pred in zip(labels, preds):
            pred = _numpy(pred)
            label = _numpy(label)
            if label.size != pred.size / pred.shape[self.axis]:
                raise AssertionError(f"shape mismatch: {label.shape} vs. {pred.shape}")
            probs = numpy.moveaxis(pred, self.axis, -1).reshape(-1, pred.shape[self.axis])
            label = label.reshape(-1).astype("int32")
            picked = probs[numpy.arange(label.size), label]
            if self.ignore_label is not None:
                ignore = (label == self.ignore_label).astype(picked.dtype)
                num -= int(ignore.sum())
                picked = picked * (1 - ignore) + ignore
            loss -= float(
                numpy.log(numpy.maximum(picked.dtype.type(1e-10), picked)).sum(dtype=picked.dtype)
            )
            num += picked.size
        self._add(loss, num)

    def get(self) -> tuple[str, float]:
        """``(name, exp(sum_metric / num_inst))``."""
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.sum_metric / self.num_inst))

    def get_global(self) -> tuple[str, float]:
        """``(name, exp(global_sum_metric / global_num_inst))``."""
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, math.exp(self.global_sum_metric / self.global_num_inst))


# -- correlation ----------------------------------------------------------------
@register
@alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """Pearson correlation of predictions and labels: with ``average='macro'``
    the mean of per-batch correlations, with ``'micro'`` the correlation of all
    samples seen."""

    def __init__(
        self,
        name: str = "pearsonr",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
        average: str = "macro",
    ):
        self.average = average
        super().__init__(
            name, output_names=output_names, label_names=label_names, has_global_stats=True
        )

    def reset(self) -> None:
        """Clear the statistics and the running moments."""
        super().reset()
        self._moments = numpy.zeros(6)  # n, sum x, sum y, sum xx, sum yy, sum xy

    def update(self, labels: Any, preds: Any) -> None:
        """Add one batch's correlation (macro) or its moments (micro)."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            check_label_shapes(label, pred, False, True)
            label = _numpy(label).ravel().astype(numpy.float64)
            pred = _numpy(pred).ravel().astype(numpy.float64)
            if self.average == "macro":
                self._add(numpy.corrcoef(pred, label)[0, 1], 1)
            else:
                self._moments += [
                    label.size,
                    pred.sum(),
                    label.sum(),
                    (pred * pred).sum(),
                    (label * label).sum(),
                    (pred * label).sum(),
                ]
                self.num_inst += 1
                self.global_num_inst += 1

    def get(self) -> tuple[str, float]:
        """``(name, correlation)``, NaN before any update. In 'micro' mode the
        correlation is of every sample since ``reset`` (MXNet's ``reset_local``
        does not clear it)."""
        if self.num_inst == 0:
            return (self.name, float("nan"))
        if self.average == "macro":
            return (self.name, _plain(self.sum_metric / self.num_inst))
        n, sx, sy, sxx, syy, sxy = self._moments
        covariance = sxy - sx * sy / n
        return (self.name, float(covariance / math.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))))

    # get_global is EvalMetric's: in 'micro' mode MXNet 1.9.1 reports
    # global_sum_metric / global_num_inst there, which stays 0.0; kept as MXNet's.


@register
class PCC(EvalMetric):
    """The multiclass Matthews correlation (Gorodkin's R_K) of a confusion matrix
    accumulated over all updates."""

    def __init__(
        self,
        name: str = "pcc",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
        has_global_stats: bool = True,
    ):
        self.k = 2
        super().__init__(
            name=name,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=has_global_stats,
        )

    def reset(self) -> None:
        """Clear the statistics and the confusion matrices."""
        super().reset()
        self.lcm = numpy.zeros((self.k, self.k))
        self.gcm = numpy.zeros((self.k, self.k))

    def reset_local(self) -> None:
        """Clear the local statistics and confusion matrix."""
        super().reset_local()
        self.lcm = numpy.zeros((self.k, self.k))

    def _grow(self, inc: int) -> None:
        self.lcm = numpy.pad(self.lcm, ((0, inc), (0, inc)))
        self.gcm = numpy.pad(self.gcm, ((0, inc), (0, inc)))
        self.k += inc

    @staticmethod
    def _calc(matrix: numpy.ndarray) -> float:
        n = matrix.sum()
        x = matrix.sum(axis=1)
        y = matrix.sum(axis=0)
        cov_xx = numpy.sum(x * (n - x))
        cov_yy = numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        i = matrix.diagonal()
        cov_xy = numpy.sum(i * n - x * y)
        return cov_xy / (cov_xx * cov_yy) ** 0.5

    def update(self, labels: Any, preds: Any) -> None:
        """Add the batch to the confusion matrices."""
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label = _numpy(label).astype("int32", copy=False).ravel()
            pred = _numpy(pred)
            pred = (numpy.argmax(pred, axis=1) if pred.ndim > 1 else pred).astype("int32")
            pred = pred.ravel()
            n = max(pred.max(), label.max())
            if n >= self.k:
                self._grow(n + 1 - self.k)
            batch = numpy.zeros((self.k, self.k))
            numpy.add.at(batch, (pred, label), 1)
            self.lcm += batch
            self.gcm += batch
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self) -> float:  # type: ignore[override]
        """The local correlation times the local count."""
        return self._calc(self.lcm) * self.num_inst

    @sum_metric.setter
    def sum_metric(self, value: float) -> None:
        pass

    @property
    def global_sum_metric(self) -> float:  # type: ignore[override]
        """The global correlation times the global count."""
        return self._calc(self.gcm) * self.global_num_inst

    @global_sum_metric.setter
    def global_sum_metric(self, value: float) -> None:
        pass


# -- losses and custom metrics --------------------------------------------------
@register
class Loss(EvalMetric):
    """The mean of loss values: ``update`` ignores labels and averages the
    elements of ``preds``."""

    def __init__(
        self,
        name: str = "loss",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(
            name, output_names=output_names, label_names=label_names, has_global_stats=True
        )

    def update(self, _: Any, preds: Any) -> None:
        """Add the sum and the count of the elements of every prediction."""
        if isinstance(preds, (NDArray, numpy.ndarray)):
            preds = [preds]
        for pred in preds:
            values = _numpy(pred)
            self._add(values.sum().item(), values.size)


@register
class Torch(Loss):
    """A dummy metric for torch criterions (MXNet's ``Torch``): ``Loss``."""

    def __init__(
        self,
        name: str = "torch",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(name, output_names, label_names)


@register
class Caffe(Loss):
    """A dummy metric for caffe criterions (MXNet's ``Caffe``): ``Loss``."""

    def __init__(
        self,
        name: str = "caffe",
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        super().__init__(name, output_names, label_names)


@register
class CustomMetric(EvalMetric):
    """A metric computed by ``feval(label, pred)`` on numpy arrays, returning a
    value (one instance) or a ``(sum, count)`` pair. The name defaults to
    ``feval.__name__`` (``custom(<lambda>)`` for lambdas)."""

    def __init__(
        self,
        feval: Callable,
        name: str | None = None,
        allow_extra_outputs: bool = False,
        output_names: list[str] | None = None,
        label_names: list[str] | None = None,
    ):
        if name is None:
            name = feval.__name__
            if "<" in name:
                name = f"custom({name})"
        super().__init__(
            name,
            feval=feval,
            allow_extra_outputs=allow_extra_outputs,
            output_names=output_names,
            label_names=label_names,
            has_global_stats=True,
        )
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels: Any, preds: Any) -> None:
        """Add ``feval``'s result for every (label, pred) pair."""
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        for pred, label in zip(preds, labels):
            result = self._feval(_numpy(label), _numpy(pred))
            if isinstance(result, tuple):
                self._add(result[0], result[1])
            else:
                self._add(result, 1)

    def get_config(self) -> dict:
        """Custom metrics cannot be serialised."""
        raise NotImplementedError("CustomMetric cannot be serialized")


def np(
    numpy_feval: Callable, name: str | None = None, allow_extra_outputs: bool = False
) -> CustomMetric:
    """A ``CustomMetric`` from a function of numpy ``(label, pred)`` arrays.

    >>> import numpy
    >>> m = np(lambda label, pred: float(numpy.abs(label - pred).max()))
    >>> m.name
    'custom(<lambda>)'
    """

    def feval(label: numpy.ndarray, pred: numpy.ndarray) -> Any:
        return numpy_feval(label, pred)

    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)
