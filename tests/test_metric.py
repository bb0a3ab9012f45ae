"""mx.metric against numpy references (the values against real MXNet are in
test_interop_data.py): accumulation, local/global statistics, the registry and
custom metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as mx


def nd(values) -> mx.nd.NDArray:
    return mx.nd.array(np.asarray(values, dtype=np.float32))


def test_accuracy_argmax_and_accumulation():
    metric = mx.metric.Accuracy()
    assert math.isnan(metric.get()[1])
    metric.update([nd([0, 1, 2])], [nd([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])])
    assert metric.get() == ("accuracy", pytest.approx(2 / 3))
    metric.update(nd([1, 1]), nd([1, 0]))  # same shapes: class indices, no argmax
    assert metric.num_inst == 5 and metric.sum_metric == 3
    assert metric.get_name_value() == [("accuracy", pytest.approx(3 / 5))]
    assert str(metric) == "EvalMetric: {'accuracy': 0.6}"


def test_accuracy_axis_and_label_count_check():
    metric = mx.metric.Accuracy(axis=0)
    metric.update([nd([1, 0])], [nd([[0.1, 0.9], [0.8, 0.2]])])  # argmax over rows
    assert metric.get()[1] == 1.0
    with pytest.raises(ValueError, match="does not match"):
        metric.update([nd([1]), nd([0])], [nd([1])])


def test_reset_local_keeps_global_statistics():
    metric = mx.metric.MAE()
    metric.update([nd([1, 2])], [nd([2, 2])])
    metric.reset_local()
    metric.update([nd([1, 2])], [nd([1, 4])])
    assert metric.get()[1] == pytest.approx(1.0)
    assert metric.get_global()[1] == pytest.approx(0.75)
    metric.reset()
    assert math.isnan(metric.get_global()[1])


def test_topk_accuracy_counts_label_in_top_k():
    scores = np.random.RandomState(0).rand(20, 6).astype(np.float32)
    labels = np.random.RandomState(1).randint(0, 6, 20)
    metric = mx.metric.TopKAccuracy(top_k=3)
    metric.update([nd(labels)], [nd(scores)])
    top3 = np.argsort(-scores, axis=1)[:, :3]
    expected = np.mean([label in row for label, row in zip(labels, top3)])
    assert metric.get() == ("top_k_accuracy_3", pytest.approx(expected))
    with pytest.raises(AssertionError, match="top_k"):
        mx.metric.TopKAccuracy(top_k=1)


def _confusion(labels, scores):
    predicted = scores.argmax(axis=1)
    tp = np.sum((predicted == 1) & (labels == 1))
    fp = np.sum((predicted == 1) & (labels == 0))
    fn = np.sum((predicted == 0) & (labels == 1))
    tn = np.sum((predicted == 0) & (labels == 0))
    return tp, fp, fn, tn


def test_f1_and_mcc_macro_and_micro():
    rng = np.random.RandomState(2)
    batches = [(rng.randint(0, 2, 15), rng.rand(15, 2)) for _ in range(3)]
    f1_scores, mccs = [], []
    for labels, scores in batches:
        tp, fp, fn, tn = _confusion(labels, scores)
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        f1_scores.append(2 * precision * recall / (precision + recall))
        mccs.append((tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    for average, f1_expected, mcc_expected in [("macro", np.mean(f1_scores), np.mean(mccs))]:
        f1, mcc = mx.metric.F1(average=average), mx.metric.MCC(average=average)
        for labels, scores in batches:
            f1.update([nd(labels)], [nd(scores)])
            mcc.update([nd(labels)], [nd(scores)])
        assert f1.get()[1] == pytest.approx(f1_expected)
        assert mcc.get()[1] == pytest.approx(mcc_expected)
    micro = mx.metric.F1(average="micro")
    for labels, scores in batches:
        micro.update([nd(labels)], [nd(scores)])
    tp, fp, fn, tn = np.sum([_confusion(*b) for b in batches], axis=0)
    assert micro.get()[1] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    with pytest.raises(ValueError, match="binary"):
        micro.update([nd([0, 1, 2])], [nd(np.ones((3, 2)))])


def test_regression_metrics_are_per_batch_means():
    label, pred = np.array([1.0, 2, 3]), np.array([1.5, 2, 5])
    for name, value in [("mae", 2.5 / 3), ("mse", 4.25 / 3), ("rmse", math.sqrt(4.25 / 3))]:
        metric = mx.metric.create(name)
        metric.update([nd(label)], [nd(pred)])
        metric.update([nd([0.0])], [nd([0.0])])
        assert metric.num_inst == 2
        assert metric.get() == (name, pytest.approx(value / 2, rel=1e-6))


def test_cross_entropy_nll_and_perplexity():
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
    labels = np.array([1, 0, 0])
    picked = probs[np.arange(3), labels]
    for metric in (mx.metric.CrossEntropy(), mx.metric.create("nll_loss")):
        metric.update([nd(labels)], [nd(probs)])
        assert metric.get()[1] == pytest.approx(-np.log(picked + 1e-12).mean(), rel=1e-6)
    perplexity = mx.metric.Perplexity(ignore_label=None)
    perplexity.update([nd(labels)], [nd(probs)])
    assert perplexity.get() == (
        "perplexity",
        pytest.approx(np.exp(-np.log(picked).mean()), rel=1e-5),
    )
    ignoring = mx.metric.Perplexity(ignore_label=1)
    ignoring.update([nd(labels)], [nd(probs)])
    assert ignoring.get()[1] == pytest.approx(np.exp(-np.log(picked[1:]).mean()), rel=1e-5)


def test_pearson_macro_and_micro():
    rng = np.random.RandomState(3)
    batches = [(rng.randn(10), rng.randn(10)) for _ in range(2)]
    macro = mx.metric.PearsonCorrelation()
    micro = mx.metric.PearsonCorrelation(average="micro")
    for label, pred in batches:
        macro.update([nd(label)], [nd(pred)])
        micro.update([nd(label)], [nd(pred)])
    assert macro.get()[1] == pytest.approx(
        np.mean(
            [np.corrcoef(p.astype(np.float32), lab.astype(np.float32))[0, 1] for lab, p in batches]
        ),
        rel=1e-6,
    )
    labels = np.concatenate([b[0] for b in batches]).astype(np.float32)
    preds = np.concatenate([b[1] for b in batches]).astype(np.float32)
    assert micro.get()[1] == pytest.approx(np.corrcoef(labels, preds)[0, 1], rel=1e-6)


def test_loss_pcc_and_composite():
    loss = mx.metric.Loss()
    loss.update(None, [nd([1.0, 2.0]), nd([[3.0]])])
    assert loss.get() == ("loss", pytest.approx(2.0))
    pcc = mx.metric.PCC()
    labels, preds = np.array([0, 1, 2, 2, 1]), np.array([0, 1, 2, 1, 1])
    pcc.update([nd(labels)], [nd(np.eye(3)[preds])])
    # with no errors PCC is 1; here it must be between 0 and 1
    assert 0 < pcc.get()[1] < 1
    composite = mx.metric.create(["acc", mx.metric.MSE()])
    composite.update([nd([0, 1])], [nd([[0.9, 0.1], [0.2, 0.8]])])
    names, values = composite.get()
    assert names == ["accuracy", "mse"] and values[0] == 1.0
    assert composite.get_metric(1).name == "mse"
    with pytest.raises(ValueError):
        composite.get_metric(5)


def test_custom_metrics_registry_and_update_dict():
    def total_error(label, pred):
        return float(np.abs(label - pred).sum()), label.size

    custom = mx.metric.CustomMetric(total_error)
    custom.update([nd([1, 2])], [nd([2, 4])])
    assert custom.get() == ("total_error", 1.5)
    wrapped = mx.metric.np(lambda label, pred: 0.25)
    wrapped.update([nd([1])], [nd([1])])
    assert wrapped.get() == ("custom(<lambda>)", 0.25)
    assert mx.metric.create(total_error).name == "total_error"

    @mx.metric.register
    @mx.metric.alias("always_one")
    class AlwaysOne(mx.metric.EvalMetric):
        def __init__(self):
            super().__init__("one")

        def update(self, labels, preds):
            self.sum_metric += len(labels)
            self.num_inst += len(labels)

    assert isinstance(mx.metric.create("alwaysone"), AlwaysOne)
    assert isinstance(mx.metric.create("always_one"), AlwaysOne)
    with pytest.raises(AssertionError, match="not registered"):
        mx.metric.create("no_such_metric")

    named = mx.metric.Accuracy(output_names=["out"], label_names=["lab"])
    named.update_dict({"lab": nd([1]), "other": nd([0])}, {"out": nd([1]), "x": nd([0])})
    assert named.get()[1] == 1.0
    assert named.get_config()["metric"] == "Accuracy"
