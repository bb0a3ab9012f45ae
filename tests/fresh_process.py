"""Running a script in a fresh Python process with the compiled backend compiling in
the background, and reading the one JSON report it prints (tests of tiering and of
the compiler process, which need a process of their own: an empty kernel cache, no
module imported yet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "REPORT "


def report_of(script: str, cache: Path, *, timeout: float = 300, **env: str) -> dict:
    """Run ``script`` (it prints ``REPORT <json>``) with its kernel and numba caches
    under ``cache`` and ``env`` added to the environment; return the last report.
    A variable given as None is removed from the environment."""
    environment = dict(
        os.environ,
        SYMGRAD_BACKEND="compiled",
        SYMGRAD_COMPILE="background",
        SYMGRAD_CACHE_DIR=str(cache / "kernels"),
        NUMBA_CACHE_DIR=str(cache / "numba"),
        PYTHONPATH=str(ROOT),
    )
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [s for s in done.stdout.splitlines() if s.startswith(MARK)][-1]
    return json.loads(line[len(MARK) :])
