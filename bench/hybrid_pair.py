"""W6 hybridized against the same network called imperatively, paired in one process.

``python -m bench`` runs every column in a process of its own, as the workloads
ask of different libraries. Two ways of calling one library need no such care,
and separate processes cost this comparison its precision: on a shared machine
the speed of a process moves by 10-30% from one minute to the next, more than
the difference measured. Here both networks (the bench's own ``gluon_w6``
script, with and without ``hybridize``) live in one process, and blocks of
iterations alternate between them, so that both see the same machine; each
round gives one ratio, and the table reports the median over rounds and how
many rounds the hybridized network won.

    python -m bench.hybrid_pair [--batch 128 1024] [--rounds 30] [--step]

``--step`` times the training step (``trainer.step`` included) instead of
forward+backward.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time

import numpy as np

from bench import harness
from bench.workloads import ROW_BY_KEY, make_inputs


def _network_steps(batch: int, train: bool) -> dict:
    """The bench's W6 callables, imperative and hybridized, on shared inputs."""
    row = ROW_BY_KEY[f"W6-{batch}-step" if train else f"W6-{batch}"]
    inputs = make_inputs(row)
    steps = {}
    for name, hybridize in (("imperative", "0"), ("hybridized", "1")):
        # gluon_w6 reads the variable at import: import it afresh for each
        os.environ["BENCH_HYBRIDIZE"] = hybridize
        module = importlib.reload(importlib.import_module("bench.libs.gluon_w6"))
        steps[name] = (module.w6_step if train else module.w6)(inputs)
    return steps


def _settle(steps: dict) -> None:
    from symgrad_compiler import wait_for_compilation

    for step in steps.values():
        for _ in range(3):
            step()
            wait_for_compilation()


def measure(batch: int, train: bool, rounds: int, target: float = 0.05) -> dict:
    """Per round, each network's mean time over a block of about ``target`` s."""
    steps = _network_steps(batch, train)
    _settle(steps)
    t0 = time.perf_counter()
    steps["imperative"]()
    iters = max(1, int(target / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:  # neither always goes first
            step = steps[name]
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            times[name].append((time.perf_counter() - t0) / iters)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--step", action="store_true", help="time trainer.step too")
    args = parser.parse_args()
    for name, value in harness.THREAD_ENV.items():
        os.environ.setdefault(name, value)
    harness.limit_cpus()
    what = "step" if args.step else "fwd+bwd"
    print(f"| W6 {what} | imperative | hybridized | hybridized / imperative | rounds won |")
    print("|---|---|---|---|---|")
    for batch in args.batch:
        times = measure(batch, args.step, args.rounds)
        imp, hyb = np.array(times["imperative"]), np.array(times["hybridized"])
        ratios = hyb / imp
        print(
            f"| B={batch} | {harness.fmt_stats(harness.summarize(list(imp)))} "
            f"| {harness.fmt_stats(harness.summarize(list(hyb)))} "
            f"| {np.median(ratios):.3f} ({ratios.min():.3f}-{ratios.max():.3f}) "
            f"| {int((ratios < 1).sum())} of {len(ratios)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
