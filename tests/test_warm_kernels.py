"""The background compile's warm-up run (``executable.warm_kernels``) computes
what a call computes: a fused kernel's means are divided as the step runner
divides them, so the steps after it meet a real call's values (and its paths,
and no overflow a real call would not have)."""

from __future__ import annotations

import numpy as np

import symgrad_compiler as compiler
from symgrad_compiler import PassRun
from symgrad_compiler.backends.numba import disk_cache
from symgrad_compiler.backends.numba.executable import NumbaExecutable, warm_kernels
from symgrad_compiler.registry import variable


def test_the_warm_up_divides_the_means_as_a_call_does(monkeypatch):
    """The kernel after mean(x * x) over 4096 values near 1 is given ~1, not the
    sum ~4096 (a BatchNorm normalised by N times its variance in InceptionV3's
    warm-up, whose convolutions then overflowed and warned in the user's console)."""
    x_value = np.random.default_rng(0).uniform(0.9, 1.1, (64, 64)).astype(np.float32)
    x = variable(x_value.shape, x_value.dtype, name="x")
    data = compiler.Expr(compiler.Entry(x, 0))
    y = compiler.call("exp", compiler.call("mean", data * data) * 80.0)
    graph = compiler.ProgramGraph([x], [y.entry])
    plan = NumbaExecutable(PassRun(graph)).plan
    first, second = plan.steps
    assert first.kind == second.kind == "fused" and first.means  # the mean is fused
    seen = []
    real_first_call = disk_cache.first_call

    def recording(kernel, args):
        real_first_call(kernel, args)
        seen.append([np.array(a) for a in args])

    monkeypatch.setattr(disk_cache, "first_call", recording)
    warm_kernels(plan, [x_value])
    mean = float(np.mean(x_value.astype(np.float64) ** 2))
    given = seen[1][0]  # the second kernel's input: the mean
    np.testing.assert_allclose(given.reshape(-1), [mean], rtol=1e-5)
    assert np.isfinite(seen[1][-1]).all()  # its output, e^80: no overflow
