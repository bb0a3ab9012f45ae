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
    import symgrad_compiler as compiler
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
    environment = dict(
        os.environ,
        SYMGRAD_CACHE_DIR=str(cache_dir),
        SYMGRAD_BACKEND="compiled",
        SYMGRAD_COMPILE="sync",
        PYTHONPATH=str(ROOT),
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=600,
    )
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


OTHER_SCRIPT = SCRIPT.replace("nd.tanh(x) * nd.sigmoid(x)", "nd.sin(x) * nd.sigmoid(x)").replace(
    "expected = (1 - t * t) * s + t * s * (1 - s)",
    "expected = np.cos(xs) * s + np.sin(xs) * s * (1 - s)",
)


def _start(cache_dir, script):
    environment = dict(
        os.environ,
        SYMGRAD_CACHE_DIR=str(cache_dir),
        SYMGRAD_BACKEND="compiled",
        SYMGRAD_COMPILE="sync",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=ROOT,
    )


def _result(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_processes_compiling_into_one_directory_at_once(tmp_path):
    # Two processes compile the same program and one a different program, at the
    # same time, into one empty directory: all correct, no warnings, and afterwards a
    # new process loads everything.
    processes = [_start(tmp_path, SCRIPT), _start(tmp_path, SCRIPT), _start(tmp_path, OTHER_SCRIPT)]
    for result in [_result(p) for p in processes]:
        assert result["error"] < 1e-12, result
        assert result["warnings"] == []
    for script in (SCRIPT, OTHER_SCRIPT):
        again = _result(_start(tmp_path, script))
        assert again["stats"]["kernels_compiled"] == 0 and again["error"] < 1e-12


FULL_DISK = """
import errno, os
def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")
os.replace = _full
"""


def test_full_disk_falls_back_with_one_warning(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK + SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env=dict(
            os.environ,
            SYMGRAD_CACHE_DIR=str(tmp_path),
            SYMGRAD_BACKEND="compiled",
            SYMGRAD_COMPILE="sync",
            PYTHONPATH=str(ROOT),
        ),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] < 1e-12
    assert len(result["warnings"]) == 1 and "No space left" in result["warnings"][0]


def test_generated_module_truncated_in_the_middle_is_rewritten(warm_cache, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in warm_cache.glob("*.py"):
        text = path.read_text()
        (copy / path.name).write_text(text[: len(text) // 2])  # cut inside a function
    result = run(copy)
    assert result["error"] < 1e-12
    assert len(result["warnings"]) == 1 and "did not match its name" in result["warnings"][0]


def _copy_damaged(source: Path, target: Path, damage) -> None:
    target.mkdir()
    for path in source.rglob("*"):
        if path.is_file():
            copy = target / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(damage(path))


def test_a_generated_module_with_bytes_that_are_not_utf8_is_rebuilt_once(warm_cache, tmp_path):
    """Issue 20 item 7: non-UTF-8 bytes in a generated module are found, the
    module rewritten, and the next process runs from the repaired cache."""
    damaged = tmp_path / "not-utf8"
    _copy_damaged(
        warm_cache,
        damaged,
        lambda p: (
            p.read_bytes().replace(b"import numpy", b"import \xff\xfenumpy")
            if p.suffix == ".py"
            else p.read_bytes()
        ),
    )
    repaired = run(damaged)
    assert repaired["error"] < 1e-12
    assert not any("interpreter" in w for w in repaired["warnings"]), repaired["warnings"]
    assert all("symgrad kernel cache" in w for w in repaired["warnings"])
    again = run(damaged)
    assert again["error"] < 1e-12 and again["warnings"] == []
    assert again["stats"]["kernels_compiled"] == 0


def test_zero_filled_numba_cache_files_are_rebuilt_once(warm_cache, tmp_path):
    """Issue 20 item 7: zero-filled numba index and object files are dropped and
    rebuilt; the process after that loads them without a warning."""
    damaged = tmp_path / "zeros"
    _copy_damaged(
        warm_cache,
        damaged,
        lambda p: bytes(p.stat().st_size) if p.suffix in (".nbi", ".nbc") else p.read_bytes(),
    )
    repaired = run(damaged)
    assert repaired["error"] < 1e-12
    assert not any("interpreter" in w for w in repaired["warnings"]), repaired["warnings"]
    again = run(damaged)
    assert again["error"] < 1e-12 and again["warnings"] == []
    assert again["stats"]["kernels_compiled"] == 0 and again["stats"]["kernels_loaded"] >= 1
