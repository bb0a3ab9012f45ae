"""Shared timing, checking and formatting logic for the benchmark.

The parent process (``python -m bench``) builds each cell's environment with
:func:`cell_env` and formats results; the child (``python -m bench.cell``)
uses :func:`check` and :func:`measure`.
"""

import gc
import math
import os
import time

import numpy as np

THREADS = 2
RTOL = 2e-3  # workloads.md: relative error <= 2e-3 on gradients

# Thread limits for every library (each runs in its own process).
THREAD_ENV = {
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "OPENBLAS_NUM_THREADS": str(THREADS),
    "NUMBA_NUM_THREADS": str(THREADS),
    "JAX_PLATFORMS": "cpu",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def cell_env(extra=None):
    """Environment for one benchmark subprocess: ours plus thread limits plus ``extra``."""
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env.update(extra or {})
    return env


def limit_cpus(n=THREADS):
    """Pin this process to ``n`` CPUs (XLA has no thread-count flag of its own)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > n:
            os.sched_setaffinity(0, cpus[:n])
    except (AttributeError, OSError):
        pass


def to_numpy(a):
    """Convert a framework array (NDArray, torch tensor, jax array) to numpy."""
    if hasattr(a, "asnumpy"):
        return a.asnumpy()
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def rel_err(got, ref, floor=0.0, slack=None):
    """Norm-wise relative error max|got - ref| / max(max|ref|, floor) (inf if shapes
    differ). ``slack``: per element, how far ``got`` may be from ``ref`` for a reason
    that is not an error (a relu input tied at zero, see ``reference.SLACK``); only the
    distance beyond it counts."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return math.inf
    scale = max(float(np.max(np.abs(ref))), floor, 1e-30)
    distance = np.abs(got - ref)
    if slack is not None:
        distance = np.maximum(distance - slack, 0.0)
    err = float(np.max(distance)) / scale
    return err if math.isfinite(err) else math.inf


def check(result, reference, floors=None, slack=None, grad_rtol=RTOL):
    """Compare a step's ``(value, grads)`` with the float64 reference.

    The value is a scalar or has the reference's shape (W6: per-sample losses);
    per-sample losses checked against a scalar reference are compared by their mean.
    ``floors``: per gradient, the smallest scale its error is measured against.
    ``slack``: per gradient, None or the elementwise distance not counted (``rel_err``).
    ``grad_rtol``: the gradients' tolerance when not the value's (the model zoo's
    gradients are ill-conditioned: workloads.Row.grad_rtol).

    Returns ``(ok, worst_error, message)``. Done outside any timed loop.
    """
    value, grads = result
    ref_value, ref_grads = reference
    if len(grads) != len(ref_grads):
        return False, math.inf, f"{len(grads)} gradients, expected {len(ref_grads)}"
    got = to_numpy(value)
    if np.ndim(ref_value) == 0 and np.size(got) > 1:
        got = np.mean(got)  # per-sample losses (Gluon) against the mean loss
    if np.size(got) == np.size(ref_value):
        got = np.reshape(got, np.shape(ref_value))
    errs = [rel_err(got, ref_value)]
    errs += [
        rel_err(to_numpy(g), r, f, d)
        for g, r, f, d in zip(
            grads, ref_grads, floors or [0.0] * len(grads), slack or [None] * len(grads)
        )
    ]
    worst = max(errs)
    names = ["value"] + [f"grad{i}" for i in range(len(grads))]
    msg = ", ".join(f"{n}={e:.1e}" for n, e in zip(names, errs))
    return errs[0] <= RTOL and max(errs[1:], default=0.0) <= grad_rtol, worst, msg


def measure(step, samples=7, target=0.1, warmup=3):
    """Time ``step``: ``warmup`` calls, then ``samples`` samples.

    Each sample is the mean over enough back-to-back calls to last about
    ``target`` seconds. The garbage collector is off inside a sample and run
    between samples. Returns a list of per-iteration times in seconds.
    """
    t_call = math.inf
    for _ in range(warmup):
        t0 = time.perf_counter()
        step()
        t_call = min(t_call, time.perf_counter() - t0)
    iters = max(1, int(round(target / max(t_call, 1e-9))))
    times = []
    enabled = gc.isenabled()
    try:
        for _ in range(samples):
            gc.collect()
            gc.disable()
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            times.append((time.perf_counter() - t0) / iters)
            if enabled:
                gc.enable()
    finally:
        if enabled:
            gc.enable()
    return times


def summarize(times):
    """Median, min and max of a list of times (seconds)."""
    return {
        "median": float(np.median(times)),
        "min": float(min(times)),
        "max": float(max(times)),
        "n": len(times),
    }


def _unit(seconds):
    if seconds < 1e-3:
        return 1e6, "us"
    if seconds < 1.0:
        return 1e3, "ms"
    return 1.0, "s"


def _num(v):
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_stats(stats):
    """'8.21 ms (8.02-8.50)': median with min-max in the median's unit."""
    scale, unit = _unit(stats["median"])
    med = _num(stats["median"] * scale)
    if stats.get("n", 2) < 2:
        return f"{med} {unit}"
    return f"{med} {unit} ({_num(stats['min'] * scale)}-{_num(stats['max'] * scale)})"


def fmt_ratio(torch_median, median):
    """Ratio torch/ours as 'x.xx×' (>1 means faster than PyTorch eager)."""
    r = torch_median / median
    if r < 0.1:
        return f"{r:.2g}×"
    return f"{r:.2f}×" if r < 100 else f"{r:.0f}×"
