"""The numba backend keeps freed array memory for reuse (compiler/backends/numba/
memory.py): arrays allocated again after a training step freed them come from
memory already mapped, not from new pages (a page fault each)."""

from __future__ import annotations

import numpy as np
from fresh_process import report_of

from symgrad_compiler import Entry, Expr, ProgramGraph, compile_graph, settings, variable
from symgrad_compiler.backends.numba import memory


def test_the_setting_turns_it_off(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)
    with settings.override(keep_memory=False):
        assert memory.keep_freed_memory() is False
    monkeypatch.setattr(memory, "_applied", None)  # (the next test applies it)


# Page faults are counted in a process of its own: a test suite's heap, shaped by
# every test before (models of gigabytes freed), is not what a training loop sees.
FAULTS_SCRIPT = """
import json, resource
import numpy as np
from symgrad_compiler import Entry, Expr, ProgramGraph, compile_graph, variable
from symgrad_compiler.backends.numba import memory

def faults_per_cycle(cycle):
    for _ in range(2):
        cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        cycle()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3

def small():  # what a step does to memory: several 4 MiB arrays written, then freed
    arrays = [np.ones(1 << 20, np.float32) for _ in range(4)]
    del arrays

def big():  # W8's step: blocks above glibc's largest mapping threshold (32 MiB)
    arrays = [np.ones(12 << 20, np.float32) for _ in range(2)]  # 48 MiB each
    del arrays

report = {"small before": faults_per_cycle(small), "big before": faults_per_cycle(big)}
x = variable((3,), np.float32)
compile_graph(ProgramGraph([x], [(Expr(Entry(x, 0)) * 2.0).entry]), "numba")
report["applied"] = memory._applied
report["small"], report["big"] = faults_per_cycle(small), faults_per_cycle(big)
print("REPORT " + json.dumps(report))
"""


def test_freed_arrays_come_back_without_page_faults(tmp_path):
    """Once the backend compiles, the 16 MiB a cycle of 4 MiB arrays frees is reused
    (glibc gave it back, and each cycle faulted in about 4000 new pages), and so are
    48 MiB arrays: as separate mappings (glibc's threshold is at most 32 MiB) they
    faulted in their pages anew every time."""
    report = report_of(FAULTS_SCRIPT, tmp_path, SYMGRAD_COMPILE="sync")
    assert report["applied"] is True  # compiling a program applied it
    assert report["big before"] > 200  # what the policy removes (a fault per 2 MiB page)
    assert report["small"] < 50 and report["big"] < 50


def test_keeping_is_applied_once_per_process(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)
    x = variable((3,), np.float32)
    compile_graph(ProgramGraph([x], [(Expr(Entry(x, 0)) * 2.0).entry]), "numba")
    assert memory._applied is True  # compiling a program applied it
    assert memory.keep_freed_memory() is True  # then remembered


RELEASE_SCRIPT = """
import json, resource
import numpy as np
from symgrad_compiler import Entry, Expr, ProgramGraph, compile_graph, variable
from symgrad_compiler.backends.numba import memory

def resident():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * resource.getpagesize()

assert memory.keep_freed_memory()
arrays = [np.ones(12 << 20, np.float32) for _ in range(4)]  # 192 MiB
later = np.ones(1 << 16, np.float32)  # allocated after them: above them in the heap
del arrays
report = {"kept": resident(), "released early": memory.release_idle_memory(above=1 << 40)}
report["after the check"] = resident()
memory.RELEASE_ABOVE = 64 << 20
x = variable((5, 7), np.float32)
compile_graph(ProgramGraph([x], [(Expr(Entry(x, 0)) * 3.0 + 1.0).entry]), "numba")
report["after a new program"] = resident()
print("REPORT " + json.dumps(report))
"""


def test_a_new_program_gives_back_what_earlier_work_kept(tmp_path):
    """Freed memory stays with the process while the same work goes on; compiling
    a new program (the work changed) gives it back once there is more than
    RELEASE_ABOVE of it: a suite or a notebook does not hold its largest model's
    memory to the end. (In a process of its own: a test suite's heap may put the
    freed arrays at its top, which glibc trims by itself.)"""
    report = report_of(RELEASE_SCRIPT, tmp_path, SYMGRAD_COMPILE="sync")
    assert report["released early"] is False  # not that much is free
    assert report["after the check"] > report["kept"] - (16 << 20)
    assert report["kept"] - report["after a new program"] > 150 << 20
