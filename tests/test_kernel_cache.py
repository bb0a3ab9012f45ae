"""The on-disk kernel cache: reused by a new process, recovered when damaged,
optional, and never fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, warnings
    import numpy as np
    import compiler
    from symgrad import autograd, nd
    x = nd.array(np.linspace(-1, 1, 64), dtype="float64")
    x.attach_grad()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autograd.record():
            y = (nd.tanh(x) * nd.sigmoid(x) + 0.5 * nd.exp(-x * x)).sum()
        y.backward()
    t = np.tanh(np.linspace(-1, 1, 64)); s = 1 / (1 + np.exp(-np.linspace(-1, 1, 64)))
    xs = np.linspace(-1, 1, 64)
    expected = (1 - t * t) * s + t * s * (1 - s) - xs * np.exp(-xs * xs)
    print(json.dumps({"stats": compiler.stats(),
                      "error": float(np.max(np.abs(x.grad.asnumpy() - expected))),
                      "warnings": [str(w.message) for w in caught]}))
""")


def run(cache_dir, **env):
    environment = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache_dir), SYMGRAD_BACKEND="compiled",
                       SYMGRAD_COMPILE="sync", PYTHONPATH=str(ROOT), **env)
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=environment, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("kernels")
    first = run(cache_dir)
    assert first["stats"]["kernels_compiled"] >= 1
    assert first["error"] < 1e-12
    return cache_dir


def test_a_new_process_compiles_nothing(warm_cache):
    second = run(warm_cache)
    assert second["stats"]["kernels_compiled"] == 0
    assert second["stats"]["kernels_loaded"] >= 1
    assert second["error"] < 1e-12 and second["warnings"] == []


def test_damaged_cache_files_are_recompiled_with_a_warning(warm_cache, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in warm_cache.rglob("*"):
        if path.is_file():
            target = damaged / path.relative_to(warm_cache)
            target.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            target.write_bytes(data[: len(data) // 2])  # truncated in the middle
    result = run(damaged)
    assert result["error"] < 1e-12
    assert 1 <= len(result["warnings"]) <= 2
    assert all("symgrad kernel cache" in w for w in result["warnings"])


def test_disabled_cache_writes_nothing(tmp_path):
    result = run(tmp_path, SYMGRAD_CACHE="0")
    assert result["error"] < 1e-12
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_directory_falls_back(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run(blocker / "cache")
    assert result["error"] < 1e-12
    assert len(result["warnings"]) == 1 and "cannot write" in result["warnings"][0]
