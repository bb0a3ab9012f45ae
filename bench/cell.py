"""Run one (library, workload) cell in this fresh process and print its result.

Usage: ``python -m bench.cell COLUMN ROW [--quick] [--cold]``. The parent
(``python -m bench``) sets the environment (threads, caches, backend).
The result is one line ``BENCH-RESULT <json>`` on stdout:
``status`` is "ok", "n/a", "WRONG" or "error"; "ok" carries ``times``
(steady state, seconds per iteration) or ``import_s`` and ``first_s``
(``--cold``: import of the library module, then setup plus first step).
"""

import argparse
import importlib
import json
import os
import sys
import time
import traceback

import numpy as np

from . import harness
from .libs import COLUMN_BY_KEY
from .reference import F32_UNIT, REFERENCE, SLACK
from .workloads import GRAD_NAMES, ROW_BY_KEY, make_inputs

MARK = "BENCH-RESULT "
# The check after timing measures a training step's changes against at least this
# fraction of the largest weight (see _check_last_step).
CHANGE_FLOOR = 5e-3


def _short(exc):
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 90 else text[:87] + "..."


def _moved(result, inputs, names):
    """A training step's ``(value, parameters)`` with each parameter as its change from
    the initial one: one update moves the weight matrices by about 1%, so checking them
    directly would let an update 5% off pass."""
    value, params = result
    return value, [harness.to_numpy(p).astype("float64") - inputs[n] for p, n in zip(params, names)]


def _slack(workload, inputs, trains):
    """The elementwise distance from the reference not counted as error (or None): the
    workload's ``SLACK`` (relu ties), and for a training step the rounding of each
    updated weight to float32 (up to 2^-24 of it, here twice that). A change is measured
    as new weight - old weight, and where the gradients are small (W8's LSTM weights:
    changes ~1e-5 of the weights) that rounding alone was 1.7e-2 of the changes, alike in
    every library."""
    slack = SLACK[workload](inputs) if workload in SLACK else None
    if not trains:
        return slack
    names = GRAD_NAMES[workload]
    rounding = [2.0 * F32_UNIT * np.abs(np.asarray(inputs[n], np.float64)) for n in names]
    return [r if s is None else r + s for r, s in zip(rounding, slack or [None] * len(names))]


def _check_last_step(step, workload, inputs, grad_rtol=harness.RTOL):
    """Check one more training step from the state timing left: three steps in a row
    give the weights before the last one and its starting momentum (the change made
    by the step before), from which the reference computes the last step.

    Replaying every timed step in float64 instead does not work: float32 and
    float64 trajectories part after ~100 steps (relu units switching), in every
    library alike. Once the fixed batch is learnt (the loss falls to 1e-3 within a
    few thousand steps), a step's changes are small sums of terms that cancel, which
    float32 gets only to ~1e-3 of the terms (PyTorch's b1 off by 7e-3 after 1000
    steps), and the weights round them; so each change's error is measured against
    at least ``CHANGE_FLOOR`` times its largest weight (the first step's changes are
    0.4-2.5% of the weights). And a relu input within float32 rounding of zero can
    fall on the other side than float64's, changing its unit's bias change by one
    sample's share (~2e-3 at B=128, enough to fail); the workload's ``SLACK``
    (reference.py) bounds what any such tie can move, and only the distance beyond
    it counts.
    """
    names = GRAD_NAMES[workload]
    first, second = (_moved(step(), inputs, names)[1] for _ in range(2))
    state = dict(inputs, **{n: inputs[n] + p for n, p in zip(names, second)})
    reference = REFERENCE[workload](state, moms=[b - a for a, b in zip(first, second)])
    floors = [CHANGE_FLOOR * float(np.max(np.abs(state[n]))) for n in names]
    slack = _slack(workload, state, trains=True)
    return harness.check(_moved(step(), state, names), reference, floors, slack, grad_rtol)


def run(column_key, row_key, quick=False, cold=False):
    """Measure one cell; returns the result dict (never raises)."""
    column, row = COLUMN_BY_KEY[column_key], ROW_BY_KEY[row_key]
    for name, value in column.env.items():  # the parent sets them; a cell run alone too
        os.environ.setdefault(name, value)
    harness.limit_cpus()

    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.libs.{column.module_for(row.workload)}")
        setup = getattr(module, row.workload.lower(), None)
        if setup is None:
            return {"status": "n/a", "reason": f"no {row.workload}", "absent": True}
        version = str(getattr(module, "VERSION", "?"))  # may import the library
    except Exception as exc:  # not installed, or broken: not our error
        why = str(exc) if isinstance(exc, ModuleNotFoundError) else _short(exc)
        return {"status": "n/a", "reason": f"import failed: {why}"}
    import_s = time.perf_counter() - t0
    try:
        inputs = make_inputs(row)
        reference = REFERENCE[row.workload](inputs)
        slack = _slack(row.workload, inputs, row.trains)
        t0 = time.perf_counter()
        step = setup(inputs)
        result = step()
        first_s = time.perf_counter() - t0
        if row.trains:
            result = _moved(result, inputs, GRAD_NAMES[row.workload])
        ok, err, msg = harness.check(result, reference, slack=slack, grad_rtol=row.grad_rtol)
        if not ok:
            return {"status": "WRONG", "reason": msg, "err": err}
        if cold:
            return {
                "status": "ok",
                "import_s": import_s,
                "first_s": first_s,
                "err": err,
                "version": version,
            }
        # A library that compiles in the background says when it is done, so that
        # steady state means its compiled code (W5 measures the cold start). symgrad
        # compiles a program from its second call on (SYMGRAD_COMPILE_AFTER; settle,
        # wait_for_compilation, starts one the tiering time still holds back): one
        # more step first, so that there is a compilation to wait for. A training
        # step's fused program (the updates in the backward program) exists from
        # the second step, so it compiles from the third: three rounds.
        settle = getattr(module, "settle", None)
        if settle is not None:
            for _ in range(3):
                step()
                settle()
        times = harness.measure(
            step,
            samples=row.samples or (5 if quick else 7),
            target=0.03 if quick else 0.1,
            warmup=row.warmup or 3,
        )
        if row.trains:
            ok, err2, msg = _check_last_step(step, row.workload, inputs, row.grad_rtol)
        else:
            ok, err2, msg = harness.check(step(), reference, slack=slack, grad_rtol=row.grad_rtol)
        if not ok:
            return {"status": "WRONG", "reason": "after timing: " + msg, "err": err2}
        return {"status": "ok", "times": times, "err": max(err, err2), "version": version}
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return {"status": "error", "reason": _short(exc)}


def main(argv=None):
    """Command-line entry point (see module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("column", choices=sorted(COLUMN_BY_KEY))
    p.add_argument("row", choices=sorted(ROW_BY_KEY))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cold", action="store_true")
    a = p.parse_args(argv)
    res = run(a.column, a.row, quick=a.quick, cold=a.cold)
    sys.stdout.flush()
    print(MARK + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
