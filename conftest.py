"""Test configuration.

Most tests check behaviour, not speed, so they run gradients on the numpy
interpreter: compiling a numba kernel for every small test graph would cost
seconds each. Tests of the compiled backend select it explicitly (the
``compiled`` fixture), with synchronous compilation and a kernel cache shared by
the whole session, so each kernel is compiled once per machine.
Background compilation starts after two calls, without the interpreted time
the default asks first (see compiler/backends/numba/tiering.py).
"""

import os

import pytest

# before the compiler is imported: its settings are read from the environment once
os.environ.setdefault("SYMGRAD_BACKEND", "interpreter")
os.environ.setdefault("SYMGRAD_COMPILE", "sync")
# Tests of background compilation (and the processes they start) compile a program
# from its second call, as they always did; tests/test_tiering.py tests the time rule.
os.environ.setdefault("SYMGRAD_COMPILE_AFTER_SECONDS", "0")
# Loops are split over threads from 65536 elements (the default is 262144), so that
# the tests' modest sizes exercise the threaded paths.
os.environ.setdefault("SYMGRAD_PARALLEL_MIN", "65536")

import symgrad_compiler  # noqa: E402


@pytest.fixture
def compiled(monkeypatch):
    """Run the test with the compiled backend (synchronous compilation)."""
    import symgrad_compiler as compiler

    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    compiler.clear_cache()
    yield
    compiler.clear_cache()


@pytest.fixture
def interpreted(monkeypatch):
    """Run the test with the numpy interpreter backend."""
    import symgrad_compiler as compiler

    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "interpreter")
    compiler.clear_cache()
    yield
    compiler.clear_cache()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run in CI (``CI=true``) or with ``SYMGRAD_SLOW=1``."""
    if os.environ.get("CI") == "true" or os.environ.get("SYMGRAD_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: runs in CI, or locally with SYMGRAD_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mxnet_python():
    """The python of the interop virtualenv (real MXNet 1.9.1 + numpy 1.23.5),
    built once under ``build/mxnet-venv``; skips the test when it cannot be made.
    Run scripts in it with ``tests/mxnet_interop.run_mxnet``."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "tests"))
    from mxnet_interop import mxnet_python as build

    return build()
