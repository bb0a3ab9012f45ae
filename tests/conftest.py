"""Fixtures shared by the convolution and pooling kernel tests."""

from __future__ import annotations

import pytest

from symgrad_compiler.backends.numba import disk_cache
from symgrad_compiler.backends.numba.lowerings import LOWERINGS, module_text, pooling
from symgrad_compiler.backends.numba.lowerings import conv as lconv


@pytest.fixture(scope="module")
def conv_kernels():
    """The convolution and pooling kernels, compiled (or loaded from the disk cache)."""
    return disk_cache.load(module_text([LOWERINGS["Convolution"], LOWERINGS["Pooling"]]))


@pytest.fixture(params=["serial", "threads"])
def threading_mode(request, monkeypatch):
    """Both ways the step runner runs a kernel: the whole batch on this thread, or
    split over the pool (every size counts as big)."""
    if request.param == "threads":
        monkeypatch.setattr(lconv, "PARALLEL_WORK", 0)
        monkeypatch.setattr(lconv, "DEPTHWISE_PARALLEL_WORK", 0)
        monkeypatch.setattr(pooling.threads, "MINIMUM", 1)
        monkeypatch.setattr(pooling.threads, "PIECE_MINIMUM", 1)
    return request.param
