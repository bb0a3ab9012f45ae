"""``mx.lr_scheduler``: each schedule's sequence from its closed form, warm-up in
both modes, and MXNet's argument errors. Real MXNet's sequences are compared in
tests/test_interop_optimizer.py."""

from __future__ import annotations

import math

import pytest

import symgrad as mx
from symgrad import lr_scheduler as lrs


def _sequence(schedule, count=20):
    return [schedule(n) for n in range(count)]


def test_factor_scheduler_closed_form():
    schedule = lrs.FactorScheduler(step=3, factor=0.5, base_lr=1.0)
    expected = [0.5 ** max(0, (n - 1) // 3) for n in range(20)]
    assert _sequence(schedule) == pytest.approx(expected)


def test_factor_scheduler_stops_at_stop_factor_lr():
    schedule = lrs.FactorScheduler(step=1, factor=0.1, stop_factor_lr=1e-3, base_lr=1.0)
    assert _sequence(schedule, 8)[-1] == pytest.approx(1e-3)


def test_multi_factor_scheduler_closed_form():
    schedule = lrs.MultiFactorScheduler(step=[3, 7, 12], factor=0.5, base_lr=0.2)
    expected = [0.2 * 0.5 ** sum(n > s for s in (3, 7, 12)) for n in range(20)]
    assert _sequence(schedule) == pytest.approx(expected)


def test_poly_scheduler_closed_form_with_warmup():
    schedule = lrs.PolyScheduler(
        max_update=15, base_lr=0.3, pwr=2, final_lr=0.01, warmup_steps=5, warmup_begin_lr=0.1
    )
    expected = [0.1 + (0.3 - 0.1) * n / 5 for n in range(5)]
    expected += [0.01 + 0.29 * (1 - (n - 5) / 10) ** 2 for n in range(5, 16)]
    expected += [expected[-1]] * 4
    assert _sequence(schedule) == pytest.approx(expected)


def test_cosine_scheduler_closed_form_constant_warmup():
    schedule = lrs.CosineScheduler(
        max_update=12,
        base_lr=0.4,
        final_lr=0.0,
        warmup_steps=2,
        warmup_begin_lr=0.05,
        warmup_mode="constant",
    )
    expected = [0.05, 0.05] + [
        0.4 * (1 + math.cos(math.pi * (n - 2) / 10)) / 2 for n in range(2, 13)
    ]
    expected += [expected[-1]] * 7
    assert _sequence(schedule) == pytest.approx(expected)


def test_schedule_drives_an_optimizer():
    schedule = lrs.MultiFactorScheduler(step=[2], factor=0.1, base_lr=1.0)
    opt = mx.optimizer.SGD(lr_scheduler=schedule)
    weight = mx.nd.zeros((1,))
    updater = mx.optimizer.get_updater(opt)
    for _ in range(4):
        updater(0, mx.nd.ones((1,)), weight)
    assert weight.asnumpy()[0] == pytest.approx(-(1 + 1 + 0.1 + 0.1))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: lrs.FactorScheduler(step=0), "greater or equal than 1"),
        (lambda: lrs.FactorScheduler(step=2, factor=1.5), "no more than 1"),
        (lambda: lrs.MultiFactorScheduler(step=[3, 2]), "increasing"),
        (lambda: lrs.PolyScheduler(max_update=0), "strictly positive"),
        (lambda: lrs.CosineScheduler(10, base_lr=0.1, warmup_begin_lr=0.5), "warmup_begin_lr"),
        (lambda: lrs.LRScheduler(warmup_mode="cubic"), "linear and constant"),
    ],
)
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_base_class_needs_call():
    with pytest.raises(NotImplementedError):
        lrs.LRScheduler()(1)
