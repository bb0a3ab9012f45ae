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
import sys
import time
import traceback

from . import harness
from .libs import COLUMN_BY_KEY
from .reference import REFERENCE
from .workloads import GRAD_NAMES, ROW_BY_KEY, make_inputs

MARK = "BENCH-RESULT "


def _short(exc):
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 90 else text[:87] + "..."


def _moved(result, inputs, names):
    """A training step's ``(value, parameters)`` with each parameter as its change from
    the initial one: one update moves the weight matrices by about 1%, so checking them
    directly would let an update 5% off pass."""
    value, params = result
    return value, [harness.to_numpy(p).astype("float64") - inputs[n]
                   for p, n in zip(params, names)]


def _counted(step, calls):
    """``step`` that counts its calls in ``calls[0]``."""
    def counted():
        calls[0] += 1
        return step()
    return counted


def run(column_key, row_key, quick=False, cold=False):
    """Measure one cell; returns the result dict (never raises)."""
    column, row = COLUMN_BY_KEY[column_key], ROW_BY_KEY[row_key]
    harness.limit_cpus()
    inputs = make_inputs(row)
    reference = REFERENCE[row.workload](inputs)

    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.libs.{column.module}")
    except Exception as exc:            # not installed, or broken: not our error
        why = str(exc) if isinstance(exc, ModuleNotFoundError) else _short(exc)
        return {"status": "n/a", "reason": f"import failed: {why}"}
    import_s = time.perf_counter() - t0
    version = str(getattr(module, "VERSION", "?"))

    setup = getattr(module, row.workload.lower(), None)
    if setup is None:
        return {"status": "n/a", "reason": f"no {row.workload}", "absent": True}
    try:
        t0 = time.perf_counter()
        step = setup(inputs)
        calls = [0]
        if row.trains:      # every call trains: count them for the check after timing
            step = _counted(step, calls)
        result = step()
        first_s = time.perf_counter() - t0
        if row.trains:
            result = _moved(result, inputs, GRAD_NAMES[row.workload])
        ok, err, msg = harness.check(result, reference)
        if not ok:
            return {"status": "WRONG", "reason": msg, "err": err}
        if cold:
            return {"status": "ok", "import_s": import_s, "first_s": first_s,
                    "err": err, "version": version}
        # A library that compiles in the background says when it is done, so that
        # steady state means its compiled code (W5 measures the cold start).
        getattr(module, "settle", lambda: None)()
        times = harness.measure(step, samples=5 if quick else 7,
                                target=0.03 if quick else 0.1)
        final = step()
        if row.trains:
            reference = REFERENCE[row.workload](inputs, steps=calls[0])
            final = _moved(final, inputs, GRAD_NAMES[row.workload])
        ok, err2, msg = harness.check(final, reference)
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
