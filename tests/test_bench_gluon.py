"""The benchmark's W6 rows (Gluon MLP, issues 14 and 15) compute the right numbers.

Each W6 column runs, on a batch of 8, as the harness runs it: in its own process,
with its column's environment and interpreter (MXNet 1.9.1's in the interop
virtualenv), and its forward+backward and three training steps are compared with
the float64 references of ``bench/reference.py``, which are checked here against
finite differences. Nothing is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.__main__ import _applicable, _selects, run_cell  # noqa: E402
from bench.cell import _check_last_step, _moved  # noqa: E402
from bench.libs import COLUMN_BY_KEY  # noqa: E402
from bench.reference import REFERENCE  # noqa: E402
from bench.workloads import GRAD_NAMES, ROWS, Row, make_inputs  # noqa: E402

TINY = 8  # batch size of the test rows
STEPS = 3  # training steps compared one by one
TOL = 1e-4  # float32 against float64, norm-wise

# Run in a column's process: forward+backward once, then STEPS training steps, each
# checked against the reference, then 20 more and the check after timing of cell.py;
# prints the worst errors as JSON.
CELL_SCRIPT = """
import importlib, json, sys
from bench import harness
from bench.cell import _check_last_step, _moved
from bench.reference import REFERENCE
from bench.workloads import GRAD_NAMES, Row, make_inputs
module = importlib.import_module("bench.libs." + sys.argv[1])
batch, steps = int(sys.argv[2]), int(sys.argv[3])
out = {}
row = Row("tiny", "tiny", "W6", {"B": batch})
inputs = make_inputs(row)
out["W6"] = [harness.check(module.w6(inputs)(), REFERENCE["W6"](inputs))[1]]
row = Row("tiny-step", "tiny", "W6_step", {"B": batch}, trains=True)
inputs = make_inputs(row)
step = module.w6_step(inputs)
out["W6_step"] = [harness.check(_moved(step(), inputs, GRAD_NAMES["W6_step"]),
                                REFERENCE["W6_step"](inputs, steps=n))[1]
                  for n in range(1, steps + 1)]
for _ in range(20):
    step()
out["W6_step"].append(_check_last_step(step, "W6_step", inputs)[1])
print("CELL " + json.dumps(out))
"""


def _tiny(workload: str) -> dict:
    return make_inputs(Row("tiny", "tiny", workload, {"B": TINY}, trains="step" in workload))


def _run_column(key: str, python: str | None = None) -> dict:
    """Run CELL_SCRIPT under column ``key``'s environment (and interpreter)."""
    column = COLUMN_BY_KEY[key]
    env = harness.cell_env(column.env)
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [python or sys.executable, "-c", CELL_SCRIPT, column.module, str(TINY), str(STEPS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [s for s in done.stdout.splitlines() if s.startswith("CELL ")][-1]
    return json.loads(line[5:])


def _assert_correct(errors: dict) -> None:
    assert len(errors["W6"]) == 1 and len(errors["W6_step"]) == STEPS + 1
    assert errors["W6"][0] <= TOL, errors
    assert max(errors["W6_step"][:STEPS]) <= TOL, errors
    # after 23 steps the batch of 8 is nearly learnt: the cell's own tolerance
    assert errors["W6_step"][STEPS] <= harness.RTOL, errors


# ---------------------------------------------------------------- the references


def test_w6_reference_gradients_match_finite_differences():
    inputs = _tiny("W6")
    names = GRAD_NAMES["W6"]
    losses, grads = REFERENCE["W6"](inputs)
    assert losses.shape == (TINY,)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name, grad in zip(names, grads):
        direction = rng.standard_normal(grad.shape)
        shifted = [
            dict(inputs, **{name: inputs[name].astype(np.float64) + s * eps * direction})
            for s in (1, -1)
        ]
        plus, minus = (REFERENCE["W6"](inp)[0].sum() for inp in shifted)
        assert (plus - minus) / (2 * eps) == pytest.approx(np.sum(grad * direction), rel=1e-6)


def test_w6_step_reference_is_momentum_sgd_on_the_mean_loss():
    inputs = _tiny("W6_step")
    lr, momentum, wd = 0.01, 0.9, 1e-4
    params = {k: inputs[k].astype(np.float64) for k in GRAD_NAMES["W6"]}
    moms = {k: 0.0 for k in params}
    for n in (1, 2):
        losses, grads = REFERENCE["W6"](dict(inputs, **params))
        for k, g in zip(GRAD_NAMES["W6"], grads):
            moms[k] = momentum * moms[k] - lr * (g / TINY + wd * params[k])
            params[k] = params[k] + moms[k]
        mean_loss, moved = REFERENCE["W6_step"](inputs, steps=n)
        assert mean_loss == pytest.approx(losses.mean(), rel=1e-12)
        for k, change in zip(GRAD_NAMES["W6"], moved):
            np.testing.assert_allclose(change, params[k] - inputs[k], rtol=1e-12, atol=1e-15)


def test_inputs_are_mxnet_default_xavier_and_zero_biases():
    inputs = make_inputs(Row("W6-1024", "", "W6", {"B": 1024}))
    assert inputs["X"].shape == (1024, 784) and inputs["X"].dtype == np.float32
    assert 0 <= inputs["X"].min() and inputs["X"].max() < 1
    assert set(np.unique(inputs["y"])) == set(range(10))
    for name, (fan_out, fan_in) in (("W1", (256, 784)), ("W2", (10, 256))):
        bound = np.sqrt(3.0 / ((fan_in + fan_out) / 2))
        w = inputs[name]
        assert w.shape == (fan_out, fan_in) and np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound  # uniform over the whole interval
    assert not inputs["b1"].any() and not inputs["b2"].any()


def test_an_update_5_percent_off_is_wrong():
    """The step rows compare parameter changes, which catch an update 5% off; the
    weight matrices themselves (moved by about 1%) would not."""
    inputs = _tiny("W6_step")
    names = GRAD_NAMES["W6_step"]
    mean_loss, changes = REFERENCE["W6_step"](inputs)
    off = [inputs[k] + 1.05 * d for k, d in zip(names, changes)]  # lr 5% too large
    ok, err, _ = harness.check(_moved((mean_loss, off), inputs, names), (mean_loss, changes))
    assert not ok and err == pytest.approx(0.05, rel=1e-3)
    right = [inputs[k] + d for k, d in zip(names, changes)]
    weights = slice(0, None, 2)  # W1, W2 (the biases start at zero: no difference)
    assert harness.check((mean_loss, off[weights]), (mean_loss, right[weights]))[0]


class NumpyTrainer:
    """W6 training in float32 numpy (gradients from the reference), for the check after
    timing; ``momentum`` and ``lr_scale`` can be made wrong."""

    def __init__(self, inputs: dict, momentum: float = 0.9, lr_scale: float = 1.0):
        self.inputs, self.momentum, self.lr = inputs, momentum, 0.01 * lr_scale
        self.params = [inputs[k].copy() for k in GRAD_NAMES["W6_step"]]
        self.moms = [np.zeros_like(p) for p in self.params]

    def __call__(self):
        state = dict(self.inputs, **dict(zip(GRAD_NAMES["W6_step"], self.params)))
        losses, grads = REFERENCE["W6"](state)
        for p, m, g in zip(self.params, self.moms, grads):
            g = (g / TINY).astype(np.float32) + np.float32(1e-4) * p
            m *= np.float32(self.momentum)
            m -= np.float32(self.lr) * g
            p += m
        return losses.astype(np.float32), [p for p in self.params]


def test_check_after_timing_starts_from_the_state_reached():
    inputs = _tiny("W6_step")
    right = NumpyTrainer(inputs)
    for _ in range(200):  # the batch of 8 is nearly learnt
        right()
    ok, err, msg = _check_last_step(right, "W6_step", inputs)
    assert ok and err < 5e-4, msg
    for wrong in (NumpyTrainer(inputs, momentum=0.8), NumpyTrainer(inputs, lr_scale=1.05)):
        for _ in range(5):
            wrong()
        ok, err, msg = _check_last_step(wrong, "W6_step", inputs)
        assert not ok and err > 0.01, msg


# ---------------------------------------------------------------- the harness


def test_only_selects_w6_rows_by_workload_size_or_key():
    keys = {
        name: [r.key for r in ROWS if _selects({name}, r)]
        for name in ("W6", "W6-128", "W6-1024-step", "W2")
    }
    assert keys["W6"] == ["W6-128", "W6-1024", "W6-128-step", "W6-1024-step"]
    assert keys["W6-128"] == ["W6-128", "W6-128-step"]
    assert keys["W6-1024-step"] == ["W6-1024-step"]
    assert keys["W2"] == ["W2-128", "W2-1024"]


def test_gluon_columns_skip_other_rows_without_a_process(tmp_path):
    result = run_cell(COLUMN_BY_KEY["mxnet"], "W1-1e6", str(tmp_path))
    assert result == {"status": "n/a", "reason": "no W1", "absent": True}
    columns = [COLUMN_BY_KEY[k] for k in ("mxnet", "torch")]
    results = {
        ("W1 n=1e6", "mxnet"): result,
        ("W1 n=1e6", "torch"): {"status": "ok", "times": [1.0]},
    }
    assert _applicable(columns, ["W1 n=1e6"], results) == [COLUMN_BY_KEY["torch"]]


# ---------------------------------------------------------------- the cells


@pytest.mark.parametrize("key", ["symgrad-gluon", "symgrad-hybrid"])
def test_symgrad_gluon_cells(key):
    _assert_correct(_run_column(key))


def test_torch_eager_cell():
    pytest.importorskip("torch")
    _assert_correct(_run_column("torch"))


@pytest.mark.slow
def test_torch_compile_cell():
    pytest.importorskip("torch")
    _assert_correct(_run_column("torch-compile"))


@pytest.mark.interop
def test_mxnet_cell_runs_under_the_interop_interpreter(mxnet_python):
    column = COLUMN_BY_KEY["mxnet"]
    assert (ROOT / column.python).resolve() == Path(mxnet_python).resolve()
    _assert_correct(_run_column("mxnet", str(ROOT / column.python)))
