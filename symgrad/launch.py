"""``python -m symgrad.launch -n N [--scheduler ADDRESS] script.py args...``

(On several machines, each runs its share of the workers:
``--scheduler ADDRESS --job NAME --world-size W --first-rank R -n N``.)

Runs ``script.py`` in N worker processes that share one distributed KVStore.
With no scheduler address (``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``) it
starts a Dask ``LocalCluster`` whose worker processes host the parameter
servers (``-s``, default N). Each script process gets its rank and the run's
size in ``SYMGRAD_KVSTORE_RANK`` / ``SYMGRAD_KVSTORE_NUM_WORKERS`` (and MXNet's
``DMLC_*`` names), which ``mx.kv.create('dist_sync')`` reads. Their output is
printed line by line prefixed with ``[rank]``; the launcher exits with the
first non-zero status a worker exits with (0 when all succeed). When one
worker fails, the others get ``grace`` seconds to end before they are
stopped.

The scripts get the environment the launcher was started with (not the one
Dask's nannies leave in the launcher's process, which pins BLAS to one thread).
Unless one of ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``
or ``SYMGRAD_NUM_THREADS`` is set, each is set to the machine's cores divided
by N (at least 1), so N workers on one machine do not oversubscribe its cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid

__all__ = ["main"]

# thread counts of the BLAS (OpenMP, OpenBLAS, MKL) and of symgrad's kernels
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "SYMGRAD_NUM_THREADS",
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m symgrad.launch",
        description="Run a script in N workers sharing a distributed KVStore on Dask.",
    )
    parser.add_argument(
        "-n",
        "--num-workers",
        type=int,
        required=True,
        help="number of worker processes to run the script in",
    )
    parser.add_argument(
        "-s",
        "--num-servers",
        type=int,
        default=None,
        help="server processes of the local cluster (default: N)",
    )
    parser.add_argument(
        "--scheduler",
        default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
        help="address of a running Dask scheduler (default: "
        "DASK_SCHEDULER_ADDRESS, else a new LocalCluster)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds any KVStore wait may take (SYMGRAD_KVSTORE_TIMEOUT)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds the other workers get after one fails (default: the timeout plus 10)",
    )
    parser.add_argument(
        "--first-rank",
        type=int,
        default=0,
        help="rank of this machine's first worker, when several machines "
        "each launch some of the workers (with --scheduler)",
    )
    parser.add_argument(
        "--world-size", type=int, default=None, help="workers on all machines together (default: N)"
    )
    parser.add_argument(
        "--job",
        default=None,
        help="a name shared by every machine's launcher of one run "
        "(default: a new random one; needed with --first-rank)",
    )
    parser.add_argument("script", help="the training script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    options = parser.parse_args(argv)
    if options.num_workers < 1:
        parser.error("-n must be at least 1")
    options.world_size = options.world_size or options.first_rank + options.num_workers
    if options.first_rank + options.num_workers > options.world_size:
        parser.error("--first-rank plus -n is more than --world-size")
    if options.world_size > options.num_workers and not (options.scheduler and options.job):
        parser.error("workers on several machines need --scheduler and a shared --job")
    return options


def _stream(rank: int, process: subprocess.Popen, lock: threading.Lock) -> None:
    """Print the worker's output lines, each prefixed with its rank."""
    for line in process.stdout:
        with lock:
            sys.stdout.write(f"[{rank}] {line}")
            sys.stdout.flush()


def _worker_environment(environment: dict[str, str], workers: int) -> dict[str, str]:
    """The environment the scripts start from: the launcher's own, with the
    thread counts shared out between ``workers`` processes unless the user set
    one of them."""
    environment = dict(environment)
    if not any(name in environment for name in THREAD_VARIABLES):
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        environment.update(dict.fromkeys(THREAD_VARIABLES, threads))
    return environment


def _run_workers(options: argparse.Namespace, address: str, environment: dict[str, str]) -> int:
    job = options.job or uuid.uuid4().hex[:12]
    lock = threading.Lock()
    processes, readers = [], []
    base = _worker_environment(environment, options.num_workers)
    for rank in range(options.first_rank, options.first_rank + options.num_workers):
        env = {
            **base,
            "DASK_SCHEDULER_ADDRESS": address,
            "SYMGRAD_KVSTORE_RANK": str(rank),
            "SYMGRAD_KVSTORE_NUM_WORKERS": str(options.world_size),
            "SYMGRAD_KVSTORE_JOB": job,
            "PYTHONUNBUFFERED": "1",
            "DMLC_ROLE": "worker",
            "DMLC_NUM_WORKER": str(options.world_size),
            "DMLC_WORKER_ID": str(rank),
        }
        if options.timeout is not None:
            env["SYMGRAD_KVSTORE_TIMEOUT"] = str(options.timeout)
        if options.num_servers is not None:
            env["SYMGRAD_KVSTORE_NUM_SERVERS"] = str(options.num_servers)
        process = subprocess.Popen(
            [sys.executable, options.script, *options.args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        reader = threading.Thread(target=_stream, args=(rank, process, lock), daemon=True)
        reader.start()
        processes.append(process)
        readers.append(reader)
    timeout = options.timeout or float(os.environ.get("SYMGRAD_KVSTORE_TIMEOUT", "120"))
    grace = options.grace if options.grace is not None else timeout + 10
    status, failed_at = 0, None
    while any(p.poll() is None for p in processes):
        for index, process in enumerate(processes):
            rank = options.first_rank + index
            code = process.poll()
            if code not in (None, 0) and status == 0:
                status, failed_at = code, time.monotonic()
                with lock:
                    print(f"[launch] worker {rank} exited with status {code}", flush=True)
        if failed_at is not None and time.monotonic() - failed_at > grace:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            break
        time.sleep(0.05)
    for process in processes:
        code = process.wait()
        if status == 0 and code != 0:
            status = code
    for reader in readers:
        reader.join(timeout=5)
    # a signal's negative status becomes a shell-style one
    return status if status >= 0 else 128 - status


def main(argv: list[str] | None = None) -> int:
    """Run the launcher with ``argv`` (the command line by default); returns the
    exit status."""
    options = _arguments(argv)
    # taken before a LocalCluster starts: Dask's nannies write their workers'
    # settings (one BLAS thread, malloc trimming) into this process's environment
    environment = dict(os.environ)
    if options.scheduler:
        return _run_workers(options, options.scheduler, environment)
    from distributed import LocalCluster

    servers = options.num_servers or options.num_workers
    with LocalCluster(
        n_workers=servers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        return _run_workers(options, cluster.scheduler_address, environment)


if __name__ == "__main__":
    sys.exit(main())
