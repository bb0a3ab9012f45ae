"""MXNet's ``mx.runtime``: which features this installation has.

The names are those an MXNet 1.9.1 build reports, in its order; each is
enabled when symgrad really has it here: no GPU features; the CPU's vector
extensions as the host reports them (numba compiles for the host); the BLAS
numpy is linked against; OpenCV when ``cv2`` is installed (``mx.image``);
the distributed KVStore when dask's ``distributed`` is installed; 64-bit
tensor sizes (numpy's).

>>> features = Features()
>>> features.is_enabled("CUDA"), features.is_enabled("LAPACK")
(False, True)
"""

from __future__ import annotations

import collections
import importlib.util
from functools import lru_cache

import numpy as np

__all__ = ["Feature", "Features", "feature_list"]

# MXNet 1.9.1's feature names, in the order its libinfo lists them.
_NAMES = (
    "CUDA CUDNN NCCL CUDA_RTC TENSORRT CPU_SSE CPU_SSE2 CPU_SSE3 CPU_SSE4_1 CPU_SSE4_2 "
    "CPU_SSE4A CPU_AVX CPU_AVX2 OPENMP SSE F16C JEMALLOC BLAS_OPEN BLAS_ATLAS BLAS_MKL "
    "BLAS_APPLE LAPACK MKLDNN OPENCV CAFFE PROFILER DIST_KVSTORE CXX14 INT64_TENSOR_SIZE "
    "SIGNAL_HANDLER DEBUG TVM_OP"
).split()

# feature -> the /proc/cpuinfo flag that says the host has it
_CPU_FLAGS = {
    "CPU_SSE": "sse",
    "CPU_SSE2": "sse2",
    "CPU_SSE3": "pni",
    "CPU_SSE4_1": "sse4_1",
    "CPU_SSE4_2": "sse4_2",
    "CPU_SSE4A": "sse4a",
    "CPU_AVX": "avx",
    "CPU_AVX2": "avx2",
    "SSE": "sse",
    "F16C": "f16c",
}


class Feature:
    """One feature: its ``name`` and whether it is ``enabled``.

    >>> Feature("CUDA", False)
    ✖ CUDA
    """

    def __init__(self, name: str, enabled: bool):
        self.name = name
        self.enabled = bool(enabled)

    def __repr__(self) -> str:
        return f"{'✔' if self.enabled else '✖'} {self.name}"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")
        return str(config["Build Dependencies"]["blas"]["name"]).lower()
    except Exception:  # older numpy, or no build information: say nothing
        return ""


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@lru_cache(maxsize=1)
def _enabled() -> dict[str, bool]:
    flags = _cpu_flags()
    blas = _blas_name()
    found = {name: flag in flags for name, flag in _CPU_FLAGS.items()}
    found.update(
        BLAS_OPEN="openblas" in blas,
        BLAS_MKL="mkl" in blas,
        BLAS_APPLE="accelerate" in blas,
        BLAS_ATLAS="atlas" in blas,
        LAPACK=True,  # numpy.linalg
        OPENCV=_installed("cv2"),
        DIST_KVSTORE=_installed("distributed"),
        INT64_TENSOR_SIZE=True,
    )
    return {name: found.get(name, False) for name in _NAMES}


def feature_list() -> list[Feature]:
    """Every feature, in MXNet's order."""
    return [Feature(name, on) for name, on in _enabled().items()]


class Features(collections.OrderedDict):
    """The features by name (a dict of :class:`Feature`), as MXNet's
    ``mx.runtime.Features()``."""

    def __init__(self):
        super().__init__((f.name, f) for f in feature_list())

    def __repr__(self) -> str:
        return str(list(self.values()))

    def is_enabled(self, feature_name: str) -> bool:
        """Whether the feature (any case) is enabled; RuntimeError naming the
        known features if the name is unknown."""
        name = feature_name.upper()
        if name not in self:
            raise RuntimeError(
                f"Feature '{name}' is unknown, known features are: {list(self.keys())}"
            )
        return self[name].enabled
