"""``python -m symgrad.launch``: the environment its scripts start from.

Dask's nannies write their workers' settings (one BLAS thread, malloc trimming)
into the launcher's own environment when its LocalCluster starts; the scripts
must get the user's environment instead, with the thread counts shared out
between the workers unless the user chose them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symgrad import launch

ROOT = Path(__file__).resolve().parent.parent
THREADS = launch.THREAD_VARIABLES


def test_threads_are_shared_out_unless_the_user_set_one():
    cores = os.cpu_count() or 1
    got = launch._worker_environment({"PATH": "/bin"}, 2)
    assert got["PATH"] == "/bin"
    assert {got[name] for name in THREADS} == {str(max(1, cores // 2))}
    assert {launch._worker_environment({}, 10 * cores)[name] for name in THREADS} == {"1"}
    # one variable set by the user: the others are left to the libraries' defaults
    got = launch._worker_environment({"OMP_NUM_THREADS": "3"}, 2)
    assert got["OMP_NUM_THREADS"] == "3"
    assert not any(name in got for name in THREADS[1:])


@pytest.mark.slow  # a LocalCluster starts: 5-15 s on the shared machine
def test_scripts_do_not_inherit_the_local_clusters_settings(tmp_path):
    script = tmp_path / "env.py"
    script.write_text(
        "import json, os\n"
        "names = ['OPENBLAS_NUM_THREADS', 'MALLOC_TRIM_THRESHOLD_', 'SYMGRAD_KVSTORE_RANK']\n"
        "print(json.dumps({n: os.environ.get(n) for n in names}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in THREADS}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "symgrad.launch", "-n", "1", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("[0] {"))
    seen = json.loads(line[4:])
    assert seen == {
        "OPENBLAS_NUM_THREADS": str(os.cpu_count() or 1),
        "MALLOC_TRIM_THRESHOLD_": None,
        "SYMGRAD_KVSTORE_RANK": "0",
    }
