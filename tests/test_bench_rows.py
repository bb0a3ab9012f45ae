"""The benchmark's W7, W8, model-zoo and short-script rows (issues 16 and 17) compute the
right numbers, at tiny sizes; nothing is timed.

The float64 references are checked against finite differences; each library's row
builder is run on tiny inputs and compared with them (symgrad here, PyTorch and
MXNet 1.9.1 in their own processes, as the harness runs them). Also: the slack that
keeps a relu tie from failing W6's check, and the harness's row selection and
per-row baselines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.__main__ as bench_main  # noqa: E402
from bench import harness  # noqa: E402
from bench.__main__ import SHORT_ROWS, _selects, format_table  # noqa: E402
from bench.cell import _check_last_step, _moved  # noqa: E402
from bench.libs import COLUMN_BY_KEY, gluon_w7, gluon_w8, short_script, zoo  # noqa: E402
from bench.reference import REFERENCE, SLACK  # noqa: E402
from bench.workloads import COLD_ROWS, GRAD_NAMES, ROW_BY_KEY, ROWS, Row, make_inputs  # noqa: E402

W7_TINY = {"B": 4, "side": 8, "widths": (3, 5), "classes": 6}
W8_TINY = {"T": 4, "N": 3, "vocab": 20, "hidden": 5, "layers": 2}
# float32 against float64 on the first step, norm-wise. W8's tiny LSTM has tiny
# gradients: its changes are rounded in float32 weights ~1e-3 of their size (all three
# libraries 9.4e-4 off alike), so the harness's tolerance.
TOL = {"W7": 1e-4, "W8": harness.RTOL}


def _w7_inputs(seed: int = 1234) -> dict:
    return gluon_w7.make_inputs(np.random.default_rng(seed), W7_TINY)


def _w8_inputs(seed: int = 1234) -> dict:
    return gluon_w8.make_inputs(np.random.default_rng(seed), W8_TINY)


def _directional_check(losses_and_grads, inputs: dict, names: list[str]) -> None:
    """The gradients of sum(losses) against central differences along random directions."""
    grads = losses_and_grads(inputs)[1]
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name, grad in zip(names, grads):
        direction = rng.standard_normal(grad.shape)
        sums = [
            losses_and_grads(dict(inputs, **{name: inputs[name] + s * eps * direction}))[0].sum()
            for s in (1, -1)
        ]
        assert (sums[0] - sums[1]) / (2 * eps) == pytest.approx(
            np.sum(grad * direction), rel=1e-5, abs=1e-9
        ), name


# ---------------------------------------------------------------- references


def test_w7_reference_gradients_match_finite_differences():
    inputs = {k: (v.astype(np.float64) if k != "y" else v) for k, v in _w7_inputs().items()}
    names = gluon_w7.param_names()
    _directional_check(lambda d: gluon_w7.losses_and_grads(d, names), inputs, names)


def test_w8_reference_gradients_match_finite_differences():
    inputs = {
        k: (v.astype(np.float64) if k not in ("X", "y") else v) for k, v in _w8_inputs().items()
    }
    _directional_check(gluon_w8.losses_and_grads, inputs, gluon_w8.PARAM_NAMES)


def test_training_references_are_one_momentum_sgd_step():
    inputs = _w8_inputs()
    names = gluon_w8.PARAM_NAMES
    losses, grads = gluon_w8.losses_and_grads(inputs)
    moms = [np.full(inputs[n].shape, 0.01) for n in names]
    mean_loss, changes = REFERENCE["W8"](inputs, moms=moms)
    assert mean_loss == pytest.approx(losses.mean())
    N = inputs["X"].shape[1]  # trainer.step(N) with the sum of the token losses
    for n, g, m, change in zip(names, grads, moms, changes):
        expected = 0.9 * m - 0.01 * (g / N + 1e-4 * inputs[n].astype(np.float64))
        np.testing.assert_allclose(change, expected, rtol=1e-12, atol=1e-15)


def test_row_inputs_follow_workloads_md():
    w7 = make_inputs(Row("W7", "", "W7", trains=True))
    assert w7["X"].shape == (32, 3, 32, 32) and w7["X"].dtype == np.float32
    assert [w7[f"conv{k}_w"].shape[0] for k in range(4)] == [32, 32, 64, 64]
    bound = np.sqrt(3.0 / ((3 * 9 + 32 * 9) / 2))  # Xavier: fans times the 3x3 window
    assert bound * 0.99 < np.abs(w7["conv0_w"]).max() <= bound
    w8 = make_inputs(Row("W8", "", "W8", trains=True))
    assert w8["X"].shape == w8["y"].shape == (35, 32) and w8["X"].max() < 10000
    assert w8["embedding"].shape == (10000, 200) and w8["l1_h2h_weight"].shape == (800, 200)
    assert [n for n in GRAD_NAMES["W8"]] == gluon_w8.PARAM_NAMES


# ---------------------------------------------------------------- symgrad's rows


@pytest.mark.parametrize("hybridize", [False, True])
def test_symgrad_w7_step_equals_the_reference(monkeypatch, hybridize):
    monkeypatch.setenv("BENCH_HYBRIDIZE", "1" if hybridize else "0")
    inputs = _w7_inputs()
    names = gluon_w7.param_names()
    step = gluon_w7.w7(inputs)
    ok, err, msg = harness.check(_moved(step(), inputs, names), REFERENCE["W7"](inputs))
    assert ok and err < TOL["W7"], msg
    for _ in range(5):
        step()
    ok, err, msg = _check_last_step(step, "W7", inputs)
    assert ok, msg


def test_symgrad_w8_step_equals_the_reference(monkeypatch):
    monkeypatch.setenv("BENCH_HYBRIDIZE", "1")
    inputs = _w8_inputs()
    step = gluon_w8.w8(inputs)
    result = _moved(step(), inputs, gluon_w8.PARAM_NAMES)
    assert result[0].shape == (12,)  # one loss per token
    ok, err, msg = harness.check(result, REFERENCE["W8"](inputs))
    assert ok, msg
    for _ in range(5):
        step()
    ok, err, msg = _check_last_step(step, "W8", inputs)
    assert ok, msg


def test_zoo_builder_loads_shared_weights_and_picks_gradients_along_the_network():
    import symgrad as mx

    inputs = zoo.make_inputs(np.random.default_rng(1234), "resnet18_v1", batch=2, size=32)
    step = zoo.zoo(inputs)
    losses, grads = step()
    net, params = zoo.build(mx, "resnet18_v1", mx.nd.array(inputs["X"]))
    names, shapes = [p.name for p in params], [tuple(p.shape) for p in params]
    picks = zoo.checked_indices(shapes, [p.grad_req != "null" for p in params])
    assert picks[0] == 0 and picks[-1] == len(params) - 1 and len(picks) == zoo.CHECKED
    assert [tuple(g.shape) for g in grads] == [shapes[i] for i in picks]
    weights = zoo.initial_weights(names, shapes)
    np.testing.assert_array_equal(params[0].data().asnumpy(), weights[0])
    assert losses.shape == (2,) and np.all(np.isfinite(losses.asnumpy()))
    # the loss of the loaded network, computed again eagerly (training mode: batch
    # statistics, and the Dropout layers at rate 0)
    with mx.autograd.train_mode():
        out = net(mx.nd.array(inputs["X"]))
    again = mx.gluon.loss.SoftmaxCrossEntropyLoss()(out, mx.nd.array(inputs["y"]))
    np.testing.assert_allclose(losses.asnumpy(), again.asnumpy(), rtol=1e-5)


# ---------------------------------------------------------------- the relu-tie slack (W6)


def test_w6_slack_covers_a_relu_tie_and_nothing_else():
    inputs = make_inputs(Row("tiny", "", "W6", {"B": 8}))
    X = inputs["X"].astype(np.float64)
    pre = X @ inputs["W1"].astype(np.float64).T
    i, j = 3, 17
    inputs["b1"] = inputs["b1"].copy()
    inputs["b1"][j] = np.float32(-pre[i, j])  # unit j of sample i within rounding of zero
    losses, grads = REFERENCE["W6"](inputs)
    slack = SLACK["W6"](inputs)
    assert slack[1][j] > 0 and np.count_nonzero(slack[1]) <= 5  # 256 units, few tied
    # the float32 side of the tie: the unit is on, so sample i's share joins its gradients
    z = np.maximum(pre + inputs["b1"], 0) @ inputs["W2"].T.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(8), inputs["y"]] -= 1
    share = (p @ inputs["W2"].astype(np.float64))[i, j]
    flipped = [g.copy() for g in grads]
    flipped[0][j] += share * X[i]
    flipped[1][j] += share
    assert not harness.check((losses, flipped), (losses, grads))[0]
    assert harness.check((losses, flipped), (losses, grads), slack=slack)[0]
    off = [g.copy() for g in flipped]
    off[1][j + 1] += 0.01 * np.abs(grads[1]).max()  # an error at an untied unit still fails
    assert not harness.check((losses, off), (losses, grads), slack=slack)[0]


# ---------------------------------------------------------------- other libraries' rows

CELL_SCRIPT = """
import json, sys
import numpy as np
from bench import harness
from bench.cell import _check_last_step, _moved
from bench.libs import gluon_w7, gluon_w8
from bench.reference import REFERENCE
out = {}
sizes_of = json.loads(sys.argv[1])
for name, module, names in (
    ("W7", gluon_w7, gluon_w7.param_names()),
    ("W8", gluon_w8, gluon_w8.PARAM_NAMES),
):
    sizes = sizes_of[name]
    inputs = module.make_inputs(np.random.default_rng(1234), sizes)
    step = getattr(module, name.lower())(inputs)
    first = harness.check(_moved(step(), inputs, names), REFERENCE[name](inputs))
    for _ in range(5):
        step()
    out[name] = [first[1], _check_last_step(step, name, inputs)[0]]
print("CELL " + json.dumps(out))
"""


def _run(env: dict, python: str = sys.executable) -> dict:
    done = subprocess.run(
        [python, "-c", CELL_SCRIPT, json.dumps({"W7": W7_TINY, "W8": W8_TINY})],
        cwd=ROOT,
        env=harness.cell_env({**env, "PYTHONPATH": str(ROOT)}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads([s for s in done.stdout.splitlines() if s.startswith("CELL ")][-1][5:])


def _assert_rows_correct(out: dict) -> None:
    for name in ("W7", "W8"):
        first_error, later_ok = out[name]
        assert first_error < TOL[name] and later_ok, out


@pytest.mark.slow
def test_torch_ports_of_w7_and_w8():
    pytest.importorskip("torch")
    _assert_rows_correct(_run(COLUMN_BY_KEY["torch"].env))


@pytest.mark.interop
def test_mxnet_runs_w7_and_w8_unchanged(mxnet_python):
    _assert_rows_correct(_run(COLUMN_BY_KEY["mxnet"].env, str(mxnet_python)))


# ---------------------------------------------------------------- short script, harness


def test_short_script_reference_learns():
    losses = short_script.reference_losses()
    assert losses.shape == (10,) and np.all(np.diff(losses) < 0)
    assert losses[0] == pytest.approx(2.41, abs=0.01)  # ~log(10) at the start


@pytest.mark.slow
def test_short_script_runs_in_a_fresh_process_and_is_checked(tmp_path):
    column = COLUMN_BY_KEY["symgrad-interp"]
    env = harness.cell_env({**column.env, "SYMGRAD_CACHE_DIR": str(tmp_path)})
    env["PYTHONPATH"] = str(ROOT)
    result = short_script.run(column, str(tmp_path), env, sys.executable)
    assert result["status"] == "ok" and result["err"] < 1e-4, result
    assert len(result["times"]) == 1 and result["times"][0] > 0.1
    assert short_script.run(COLUMN_BY_KEY["jax"], str(tmp_path), env, sys.executable)["absent"]


def test_only_selects_zoo_rows_and_the_table_uses_each_rows_baseline():
    zoo_keys = [r.key for r in ROWS if _selects({"zoo"}, r)]
    assert zoo_keys == [f"zoo-{m}" for m in zoo.MODELS]
    assert [r.key for r in ROWS if _selects({"zoo-resnet18_v1"}, r)] == ["zoo-resnet18_v1"]
    assert [r.key for r in ROWS if _selects({"W7"}, r)] == ["W7"]
    label = next(r.label for r in ROWS if r.key == "zoo-alexnet")
    results = {
        (label, "mxnet"): {"status": "ok", "times": [2.0]},
        (label, "symgrad-hybrid"): {"status": "ok", "times": [4.0]},
        (SHORT_ROWS[0], "mxnet"): {"status": "ok", "times": [3.0]},
    }
    columns = [COLUMN_BY_KEY[k] for k in ("symgrad-hybrid", "mxnet")]
    table = format_table([label], columns, results, {label: "mxnet"})
    assert "4 s · 0.50×" in table and "2 s |" in table


def test_w5_import_row_shows_each_columns_own_imports(monkeypatch):
    """A column without a setup for one cold row (symgrad's own column has no W6) keeps
    the import times of its other rows; a row's first call still shows its failure."""
    imports = {"symgrad": 0.5, "torch": 2.0}

    def fake_cell(column, row_key, cache_dir, quick=False, cold=False):
        if column.key == "symgrad" and row_key.startswith("W6"):
            return {"status": "n/a", "reason": "no W6", "absent": True}
        return {"status": "ok", "import_s": imports[column.key], "first_s": 1.0, "err": 0.0}

    monkeypatch.setattr(bench_main, "run_cell", fake_cell)
    columns = [COLUMN_BY_KEY[k] for k in imports]
    results = bench_main.cold_start(columns, quick=True, repeats=1)
    for which in bench_main.CACHE_STATES:
        for key, seconds in imports.items():
            row = results[f"W5 import, {which}", key]
            # one sample per cold row the column runs
            runs = len(COLD_ROWS) - (key == "symgrad")
            assert row == {"status": "ok", "times": [seconds] * runs}, (key, row)
        w6 = ROW_BY_KEY["W6-128"].label
        assert results[f"W5 {w6} first call, {which}", "symgrad"]["status"] == "n/a"


def test_cache_dir_keeps_the_steady_cells_caches_for_the_next_run(monkeypatch, tmp_path):
    """``--cache-dir DIR``: each column's steady-state cells compile into a directory
    of its own under DIR, the same one on the next run; without it, a temporary
    directory that is gone afterwards."""
    seen = []

    def fake_cell(column, row_key, cache_dir, quick=False, cold=False):
        seen.append(cache_dir)
        os.makedirs(cache_dir, exist_ok=True)
        return {"status": "ok", "times": [1.0]}

    monkeypatch.setattr(bench_main, "run_cell", fake_cell)
    argv = ["--only", "W1-1e4", "--libs", "symgrad", "--quick"]
    kept = tmp_path / "caches"
    bench_main.main([*argv, "--cache-dir", str(kept)])
    first = list(seen)
    assert first and all(os.path.dirname(d) == str(kept) and os.path.isdir(d) for d in first)
    assert len(set(first)) == len(first)  # a directory per column
    seen.clear()
    bench_main.main([*argv, "--cache-dir", str(kept)])
    assert seen == first
    seen.clear()
    bench_main.main(argv)
    assert len(seen) == len(first) and not any(d.startswith(str(kept)) for d in seen)
    assert not any(os.path.exists(d) for d in seen)
