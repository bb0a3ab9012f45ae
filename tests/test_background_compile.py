"""Background compilation never holds a process up: it starts once a program has
been called twice, runs in one compiler process behind one worker thread, is
abandoned at exit (the compiler process ends with its parent), and never blocks
Ctrl-C. Each case runs in a fresh process with an
empty kernel cache, so a compilation really is in progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A program whose compilation takes seconds: many distinct elementwise ops.
SCRIPT = r"""
import signal, sys, time
import numpy as np
# Ctrl-C raises KeyboardInterrupt, as at a terminal, whatever the test run was given:
# a run started with `&` from a script ignores SIGINT, its children inherit that,
# and Python then installs no handler, so the signal would be dropped
signal.signal(signal.SIGINT, signal.default_int_handler)
import symgrad as mx
from symgrad_compiler.backends.numba import background

x = mx.sym.var("x")
y = x
for i in range(40):
    y = mx.sym.tanh(y * (1.0 + i / 100)) + mx.sym.sin(y) * 0.5
f = mx.compile(mx.sym.sum(y), wrt=["x"])
data = np.linspace(-1, 1, 1000)
for _ in range(3):
    f(x=data)
assert background._pending, "a compilation should be in progress"
from symgrad_compiler.backends.numba import subprocess_compile
deadline = time.monotonic() + 120
while subprocess_compile._compiler is None and time.monotonic() < deadline:
    time.sleep(0.05)  # the worker starts the compiler process
print("started", subprocess_compile._compiler.process.pid, flush=True)
if sys.argv[1] == "wait":
    from symgrad_compiler import wait_for_compilation
    try:
        wait_for_compilation()
    except KeyboardInterrupt:
        # proof the signal came while the compilation was still in progress
        print("interrupted", "compiling" if background._pending else "idle", flush=True)
        raise
print("done %.6f" % time.time(), flush=True)
"""


def _spawn(tmp_path: Path, mode: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        SYMGRAD_BACKEND="compiled",
        SYMGRAD_COMPILE="background",
        SYMGRAD_CACHE_DIR=str(tmp_path / "cache"),
        NUMBA_CACHE_DIR=str(tmp_path / "nb"),
        PYTHONPATH=str(ROOT),
    )
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), mode],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_process_exits_without_waiting_for_a_compilation(tmp_path):
    process = _spawn(tmp_path, "exit")
    out, err = process.communicate(timeout=300)
    exited = time.time()
    assert process.returncode == 0, err
    lines = out.split()
    assert lines[0] == "started"
    done = float(lines[lines.index("done") + 1])
    assert exited - done < 1.0, f"the process took {exited - done:.2f} s to exit"
    # the compiler process it left ends too (at once, or after the cache write it is in)
    compiler = int(lines[1])
    deadline = time.monotonic() + 5.0
    while _alive(compiler) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(compiler), "the compiler process outlived its parent"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ctrl_c_while_waiting_for_a_compilation_interrupts_promptly(tmp_path):
    process = _spawn(tmp_path, "wait")
    assert process.stdout.readline().split()[0] == "started"
    time.sleep(0.2)
    sent = time.time()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    took = time.time() - sent
    assert "KeyboardInterrupt" in err, f"no KeyboardInterrupt after {took:.2f} s:\n{out}\n{err}"
    # the compilation was still queued when the signal arrived: the wait was real
    assert "interrupted compiling" in out, out
    assert took < 1.0, f"the script took {took:.2f} s to stop"
    assert "done" not in out
