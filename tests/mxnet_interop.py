"""The interop virtualenv: a real MXNet 1.9.1 (with numpy 1.23.5) that tests run
scripts in, in a subprocess.

The virtualenv is made once under ``build/mxnet-venv`` (it is large: MXNet's wheel
is about 50 MB plus numpy), on the first test that asks for it, and reused by
every later session on the same machine. Set ``SYMGRAD_MXNET_PYTHON`` to an
interpreter to build it with. Tests that need it take the ``mxnet_python``
fixture (``conftest.py``), which skips them, saying why, when it cannot be made.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "mxnet-venv"
READY = VENV / "mxnet-ready"


def _candidate_pythons() -> list[str]:
    found = []
    if os.environ.get("SYMGRAD_MXNET_PYTHON"):
        found.append(os.environ["SYMGRAD_MXNET_PYTHON"])
    for version in ("3.10", "3.9", "3.11", "3.8"):
        found += [p for p in [shutil.which(f"python{version}")] if p]
        found += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python")))
    return found


def _make_venv() -> tuple[Path | None, str]:
    """The venv's python, or None and the reason it could not be made."""
    python = VENV / "bin" / "python"
    if READY.exists() and python.exists():
        return python, ""
    reasons = []
    for base in _candidate_pythons():
        shutil.rmtree(VENV, ignore_errors=True)
        steps = [
            [base, "-m", "venv", str(VENV)],
            [str(python), "-m", "pip", "install", "-q", "mxnet==1.9.1", "numpy==1.23.5"],
            [str(python), "-c", "import mxnet; assert mxnet.__version__ == '1.9.1'"],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as err:
                reasons.append(f"{base}: {' '.join(step[:4])}: {err}")
                break
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                reasons.append(f"{base}: {' '.join(step[:4])}: {' | '.join(tail)}")
                break
        else:
            READY.write_text("mxnet 1.9.1\n")
            return python, ""
    if not reasons:
        reasons.append("no Python 3.8-3.11 interpreter found (set SYMGRAD_MXNET_PYTHON)")
    return None, "; ".join(reasons)


def mxnet_python() -> Path:
    """The interop virtualenv's python; builds it first if needed (saying so on
    stderr), and skips the calling test when it cannot be made."""
    import pytest

    if not (READY.exists() and (VENV / "bin" / "python").exists()):
        print(
            "building the MXNet 1.9.1 interop virtualenv under build/mxnet-venv "
            "(large; made once and reused)",
            file=sys.stderr,
        )
    python, reason = _make_venv()
    if python is None:
        pytest.skip(f"cannot make a virtualenv with mxnet==1.9.1 and numpy==1.23.5: {reason}")
    return python


def run_mxnet(python: Path, source: str, workdir: Path, *args: str, timeout: float = 600) -> str:
    """Run the Python ``source`` under the real MXNet in ``workdir``; return its
    stdout, failing the test with its stderr when it exits non-zero."""
    script = Path(workdir) / "mxnet_script.py"
    script.write_text(source)
    done = subprocess.run(
        [str(python), str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(workdir),
        env={**os.environ, "MXNET_SUBGRAPH_VERBOSE": "0", "OMP_NUM_THREADS": "1"},
    )
    if done.returncode != 0:
        raise AssertionError(f"MXNet script failed:\n{done.stderr[-4000:]}")
    return done.stdout


def printed_by_both(python: Path, script: str, workdir: Path, capsys: Any) -> tuple[str, str]:
    """What ``script`` prints with ``mx`` as real MXNet (in the interop virtualenv)
    and as symgrad (in this process, through pytest's ``capsys``): (ours, theirs)."""
    import symgrad

    theirs = run_mxnet(python, "import mxnet as mx\n" + script, workdir)
    capsys.readouterr()  # (what the test printed before)
    exec(script, {"mx": symgrad})
    return capsys.readouterr().out, theirs
