"""Run the benchmark: ``python -m bench [--only W1,W3] [--libs symgrad,torch] [--quick]``.

Every (library, workload) cell runs in a fresh subprocess; the result is one
markdown table of medians (min-max) with the ratio against PyTorch eager
measured in the same run.
"""

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import harness
from .cell import MARK
from .libs import BASELINE, select, short_script
from .workloads import COLD_ROWS, ROW_BY_KEY, ROWS

REPO_ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 900  # seconds for one subprocess
CACHE_STATES = ("empty cache", "warm cache")  # W5: first and second fresh process


def cache_env(directory):
    """Environment pointing every library's compile cache at ``directory``."""
    return {
        "SYMGRAD_CACHE_DIR": directory,
        "NUMBA_CACHE_DIR": directory,
        "JAX_COMPILATION_CACHE_DIR": directory,
        "TORCHINDUCTOR_CACHE_DIR": directory,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def run_cell(column, row_key, cache_dir, quick=False, cold=False):
    """Run one cell in a fresh subprocess (under the column's interpreter); returns its
    result dict. A row the column declares no setup for is n/a without a process."""
    workload = ROW_BY_KEY[row_key].workload
    if not column.runs(workload):
        return {"status": "n/a", "reason": f"no {workload}", "absent": True}
    python = str(REPO_ROOT / column.python) if column.python else sys.executable
    if not os.path.exists(python):
        return {"status": "n/a", "reason": f"no interpreter {column.python}"}
    cmd = [python, "-m", "bench.cell", column.key, row_key]
    cmd += ["--quick"] * quick + ["--cold"] * cold
    env = harness.cell_env({**column.env, **cache_env(cache_dir)})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=CELL_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timeout after {CELL_TIMEOUT} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return {"status": "error", "reason": f"crashed ({proc.returncode}): {tail[:100]}"}


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _brief(res):
    if res["status"] != "ok":
        return f"{res['status']} {res.get('reason', '')}"
    if "times" in res:
        return harness.fmt_stats(harness.summarize(res["times"]))
    return f"import {res['import_s']:.3f} s, first call {res['first_s']:.3f} s"


def steady_state(rows, columns, quick, cache_root, rounds=1):
    """Measure every steady-state row x column; returns {(row_key, col_key): result}.

    With several ``rounds``, every cell runs once per round, rounds one after
    the other, and a cell's samples are pooled: on a shared machine, whose speed
    drifts by up to 2x within minutes, each library is then sampled at several
    moments instead of one, and the same-run ratios wander much less."""
    out = {}
    total, i = len(rows) * len(columns) * rounds, 0
    for _ in range(rounds):
        for row in rows:
            for col in columns:
                i += 1
                res = run_cell(col, row.key, os.path.join(cache_root, col.key), quick)
                _log(f"[{i}/{total}] {row.key:8} {col.key:15} {_brief(res)}")
                out[row.key, col.key] = _pool(out.get((row.key, col.key)), res)
    return out


def _pool(earlier, res):
    """One cell's result over rounds: samples pooled; any failure wins."""
    if earlier is None or earlier["status"] != "ok":
        return earlier or res
    if res["status"] != "ok":
        return res
    return {**res, "times": earlier["times"] + res["times"], "err": max(earlier["err"], res["err"])}


def cold_start(columns, quick, repeats):
    """W5: first call in a fresh process with an empty cache, then in a second one.

    Returns {(cold_row_label, col_key): result} where an ok result carries
    ``times`` (one per repetition) so it formats like the other rows.
    """
    samples = {}  # (label, col) -> list of seconds, or a failed result
    for rep in range(repeats):
        for row_key in COLD_ROWS:
            label = ROW_BY_KEY[row_key].label
            for col in columns:
                with tempfile.TemporaryDirectory(prefix="bench-cold-") as d:
                    for which in CACHE_STATES:
                        res = run_cell(col, row_key, d, cold=True)
                        _log(
                            f"[W5 {rep + 1}/{repeats}] {row_key:8} {col.key:15} {which}: "
                            f"{_brief(res)}"
                        )
                        for key, field in (
                            (f"W5 {label} first call, {which}", "first_s"),
                            (f"W5 import, {which}", "import_s"),
                        ):
                            _add_sample(samples, (key, col.key), res, field)
    return {
        k: v if isinstance(v, dict) else {"status": "ok", "times": v} for k, v in samples.items()
    }


def _add_sample(samples, key, res, field):
    """Pool one cold cell's ``res[field]`` into ``samples[key]`` (a list of seconds, or
    the failed result the table shows instead).

    A first-call row is one row's cells: any failure wins over its samples. The import
    row pools a column's cells of every cold row, and a cell without a setup for its row
    (symgrad's own column has no W6) or failing after its import says nothing about the
    import: such a result shows only while no cell of the column gave a sample (a W6
    "n/a" used to replace the W1 and W2 imports, leaving symgrad's import cells n/a)."""
    prev = samples.get(key)
    if res["status"] == "ok":
        if isinstance(prev, list):
            prev.append(res[field])
        elif prev is None or field == "import_s":
            samples[key] = [res[field]]
    elif field == "first_s" or not isinstance(prev, list):
        samples[key] = res


SHORT_ROWS = ("short script, empty cache", "short script, warm cache")  # (× vs MXNet)


def short_scripts(columns, repeats):
    """The short script: a fresh process of ``libs/short_script.py`` per column with an
    empty compile cache, then a second one sharing it; each pair ``repeats`` times.
    Returns {(row label, col key): result} with ``times`` one per repetition."""
    results = {}
    for rep in range(repeats):
        for col in columns:
            python = str(REPO_ROOT / col.python) if col.python else sys.executable
            with tempfile.TemporaryDirectory(prefix="bench-short-") as d:
                env = harness.cell_env({**col.env, **cache_env(d)})
                env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])
                )
                for label in SHORT_ROWS:
                    res = short_script.run(col, d, env, python)
                    if not res.get("absent"):
                        _log(f"[short {rep + 1}/{repeats}] {col.key:15} {label}: {_brief(res)}")
                    results[label, col.key] = _pool(results.get((label, col.key)), res)
    return results


def _escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_cell(res, base):
    """Format one result; ``base`` is the same row's PyTorch result (or None)."""
    if res is None:
        return ""
    if res["status"] == "n/a":
        return _escape(f"n/a ({res['reason']})")
    if res["status"] == "WRONG":
        return _escape(f"WRONG ({res['reason']})")
    if res["status"] != "ok":
        return _escape(f"error ({res['reason']})")
    stats = harness.summarize(res["times"])
    text = harness.fmt_stats(stats)
    if base is not None and base is not res and base["status"] == "ok":
        torch_median = harness.summarize(base["times"])["median"]
        text += f" · {harness.fmt_ratio(torch_median, stats['median'])}"
    return text


def format_table(row_labels, columns, results, baselines=None):
    """Markdown table: one line per row label, one column per library; a row's ratios
    are against ``baselines[label]`` (default PyTorch eager)."""
    lines = [
        "| workload | " + " | ".join(c.title for c in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for label in row_labels:
        base = results.get((label, (baselines or {}).get(label) or BASELINE))
        cells = [format_cell(results.get((label, c.key)), base) for c in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _selects(wanted, row):
    """Whether --only's names select ``row``: its workload, its key, or a prefix of its
    key up to a dash ("W6" and "W6-128" select "W6-128-step")."""
    return row.workload in wanted or any(
        row.key == w or row.key.startswith(w + "-") for w in wanted
    )


def _applicable(columns, labels, results):
    """The columns with a setup for at least one shown row (W6's Gluon columns have
    none for W1-W5, most columns none for W6)."""

    def has(col):
        return any(not results.get((label, col.key), {}).get("absent") for label in labels)

    return [c for c in columns if has(c)]


def _cache_root(directory):
    """The steady-state cells' cache root: ``directory`` (made if missing, kept), or
    a temporary directory removed afterwards."""
    if directory is None:
        return tempfile.TemporaryDirectory(prefix="bench-cache-")
    os.makedirs(directory, exist_ok=True)
    return contextlib.nullcontext(os.path.abspath(directory))


def main(argv=None):
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--only", help="workloads or rows, e.g. W1,W3 or W1-1e6,W5 or zoo-resnet18_v1,short"
    )
    p.add_argument("--libs", help="columns by key or group, e.g. symgrad,torch")
    p.add_argument(
        "--quick",
        action="store_true",
        help="5 samples of ~0.03 s each (default 7 of ~0.1 s); W5 once (default 3)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the steady-state cells this many times, interleaved, and "
        "pool their samples (default 1)",
    )
    p.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="compile caches of the steady-state cells under DIR, kept for the next "
        "run (default: a new temporary directory): an A/B of a kernel change then "
        "compiles only what the change touches. W5 and the short script always "
        "start from empty directories",
    )
    a = p.parse_args(argv)

    columns = select(a.libs)
    wanted = {s.strip() for s in a.only.split(",")} if a.only else None
    rows = [r for r in ROWS if wanted is None or _selects(wanted, r)]
    do_cold = wanted is None or "W5" in wanted
    do_short = wanted is None or "short" in wanted
    if wanted:
        unknown = {w for w in wanted if not any(_selects({w}, r) for r in ROWS)}
        unknown -= {"W5", "short"}
        if unknown:
            raise SystemExit(f"unknown workload {sorted(unknown)}")

    t0 = time.time()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        _log(
            f"warning: load average {load_before:.2f}: other processes are running; "
            "figures will be noisy (PyTorch and OpenBLAS threads suffer most)"
        )
    results, labels = {}, []
    with _cache_root(a.cache_dir) as cache_root:
        measured = steady_state(rows, columns, a.quick, cache_root, a.rounds)
        for (row_key, col_key), res in measured.items():
            results[ROW_BY_KEY[row_key].label, col_key] = res
        labels += [r.label for r in rows]
    if do_cold:
        cold = cold_start(columns, a.quick, repeats=1 if a.quick else 3)
        results.update(cold)
        firsts = [label for label, _ in cold if "first call" in label]
        labels += list(dict.fromkeys(firsts)) + [f"W5 import, {w}" for w in CACHE_STATES]
    if do_short:
        results.update(short_scripts(columns, repeats=1 if a.quick else 3))
        labels += list(SHORT_ROWS)

    samples = "5 samples of ~0.03 s" if a.quick else "7 samples of ~0.1 s"
    if a.rounds > 1:
        samples += f" per round, {a.rounds} interleaved rounds pooled"
    header = (
        "Time per iteration (forward + backward; W6 step: and the optimizer update): "
        f"median (min-max) of {samples} each; "
        "ratio `N×` = PyTorch eager time / this time (>1: faster than PyTorch eager), "
        "same run; rows marked `(× vs MXNet)`: MXNet 1.9.1's time / this time. "
        "W5 and the short script: wall time of import and of the first call (setup + first "
        "forward+backward), of the whole script, in fresh processes, "
        f"{'1 repetition' if a.quick else 'median (min-max) of 3 repetitions'}. "
        f"{harness.THREADS} threads per library, one process per cell. "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"run took {time.time() - t0:.0f} s."
    )
    versions = {}
    for (_, col_key), res in results.items():
        if res.get("version"):
            versions.setdefault(col_key, res["version"])
    header += (
        f" Load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
        " (other processes on the machine disturb PyTorch's OpenMP threads most). Versions: "
        + ", ".join(f"{c.title} {versions[c.key]}" for c in columns if c.key in versions)
        + "."
    )
    baselines = {r.label: r.baseline for r in ROWS if r.baseline}
    baselines.update(dict.fromkeys(SHORT_ROWS, "mxnet"))
    shown = _applicable(columns, labels, results)
    table = header + "\n\n" + format_table(labels, shown, results, baselines)
    print(table)
    if a.markdown:
        path = Path(a.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table + "\n")


if __name__ == "__main__":
    main()
