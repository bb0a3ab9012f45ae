"""Anomaly detection's backward check, built on ``differentiate``'s rule hook and
the interpreter: which op's gradient rule first turned finite values into NaN or
inf (the forward and leaf checks are in test_reliability.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symgrad import autograd, nd
from symgrad.anomaly import AnomalyError
from symgrad_compiler import Entry, differentiate, evaluate, make_node, variable


def _line_of(text: str) -> int:
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if text in line and "_line_of" not in line:
            return number
    raise AssertionError(text)


def test_the_bad_gradient_nearest_the_head_is_named_first():
    x = nd.array([0.0, 4.0])
    x.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            a = nd.sqrt(x)  # inner sqrt: its gradient is inf too, but later
            b = nd.sqrt(a)  # outer sqrt: the first rule applied that makes inf
            z = (b * 3).sum()
        with pytest.raises(AnomalyError, match="gradient of op 'sqrt'") as caught:
            z.backward()
    assert caught.value.phase == "gradient"
    assert f":{_line_of('outer sqrt: the first')} " in caught.value.site
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])  # nothing written


def test_a_bad_gradient_into_a_shared_input_names_its_op():
    x = nd.array([0.0, 1.0])
    x.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            z = (nd.exp(x) + nd.sqrt(x) * nd.tanh(x)).sum()
        with pytest.raises(AnomalyError) as caught:
            z.backward()
    assert (caught.value.op, caught.value.phase) == ("sqrt", "gradient")


def test_broadcast_and_multi_output_gradients_pass_the_check_and_match_numpy():
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((3, 1)), rng.standard_normal((1, 4))
    x, w = nd.array(xs, dtype="float64"), nd.array(ws, dtype="float64")
    x.attach_grad()
    w.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            left, _ = nd.split(nd.tanh(nd.broadcast_mul(x, w)), num_outputs=2, axis=1)
            z = left.sum()
        z.backward()
    t = np.tanh(xs * ws)
    g = (1 - t * t) * (np.arange(4) < 2)  # only the left half reaches the head
    np.testing.assert_allclose(x.grad.asnumpy(), (g * ws).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(w.grad.asnumpy(), (g * xs).sum(axis=0, keepdims=True))


def test_a_non_finite_head_gradient_is_the_callers_and_names_no_op():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.detect_anomaly():
        with autograd.record():
            y = nd.tanh(x)
        y.backward(nd.array([np.nan, 1.0]))
    got = x.grad.asnumpy()
    assert np.isnan(got[0]) and got[1] == pytest.approx(1 - np.tanh(2.0) ** 2)


def test_differentiate_reports_each_rule_in_the_order_it_applies_them():
    """The hook anomaly detection uses: one call per op on the path, heads first,
    with the op's output gradients and its rule's results; the gradients are those
    of a call without the hook."""
    x = variable((3,), np.float64)
    y = make_node("tanh", [Entry(x, 0)])
    z = make_node("elemwise_mul", [Entry(y, 0), Entry(x, 0)])
    seed = variable((3,), np.float64)
    calls: list = []
    (dx,) = differentiate(
        [Entry(z, 0)],
        [Entry(seed, 0)],
        [Entry(x, 0)],
        on_rule=lambda node, grads, results: calls.append((node, grads, results)),
    )
    assert [node for node, _, _ in calls] == [z, y]
    assert [len(results) for _, _, results in calls] == [2, 1]
    values = np.array([-0.5, 0.1, 2.0])
    given = {x: (values,), seed: (np.ones(3),)}
    wanted = [calls[1][1][0].entry, calls[1][2][0].entry, dx]
    into_tanh, out_of_tanh, total = evaluate(wanted, given)
    np.testing.assert_allclose(into_tanh, values)  # d(y*x)/dy = x
    np.testing.assert_allclose(out_of_tanh, values * (1 - np.tanh(values) ** 2))
    (plain,) = differentiate([Entry(z, 0)], [Entry(seed, 0)], [Entry(x, 0)])
    np.testing.assert_allclose(total, evaluate([plain], given)[0])
    np.testing.assert_allclose(total, np.tanh(values) + values * (1 - np.tanh(values) ** 2))
