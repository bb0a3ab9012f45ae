"""Matrix products in compiled code through the BLAS numpy itself uses.

numba's ``np.dot`` calls scipy's BLAS, a second OpenBLAS with its own thread
pool. In one process with numpy's, each pool's threads spin after their work
and starve the other's: alternating numpy and numba products on the benchmark
machine made both about 5x slower. scipy's build was also 10-15% slower at the
median on W2's products. So a whole-program entry (``entry.py``) calls numpy's
``cblas_?gemm`` by symbol name: the symbol is declared in the generated code and
resolved when numba links it, so the machine code still goes to the disk cache
(a ctypes function pointer would be baked in and make the entry uncacheable).

Where numpy's BLAS cannot be found (a numpy built against another BLAS), the
products fall back to numba's ``np.dot``. ``IDENTITY`` names what was found;
generated modules carry it, so machine code cached under one BLAS is never
loaded under another.
"""

from __future__ import annotations

import ctypes
import glob
import os

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types
from numba.extending import overload

# numpy's wheels bundle an ILP64 OpenBLAS with prefixed, suffixed symbol names
_SYMBOLS = {"s": "scipy_cblas_sgemm64_", "d": "scipy_cblas_dgemm64_"}
_ROW_MAJOR, _NO_TRANSPOSE, _TRANSPOSE = 101, 111, 112


def _numpy_blas() -> ctypes.CDLL | None:
    """numpy's bundled OpenBLAS (already loaded by numpy, so the same library and
    thread pool), or None."""
    package = os.path.dirname(np.__file__)
    patterns = [os.path.join(package, os.pardir, "numpy.libs", "*scipy_openblas64_*"),
                os.path.join(package, ".dylibs", "*scipy_openblas64_*")]
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if all(hasattr(library, symbol) for symbol in _SYMBOLS.values()):
            return library
    return None


def _declare(library: ctypes.CDLL, kind: str, scalar) -> types.ExternalFunction:
    name = f"symgrad_cblas_{kind}gemm"
    llvm.add_symbol(name, ctypes.cast(getattr(library, _SYMBOLS[kind]), ctypes.c_void_p).value)
    i32, i64, p = types.int32, types.int64, types.CPointer(scalar)
    # cblas_?gemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    return types.ExternalFunction(
        name, types.void(i32, i32, i32, i64, i64, i64, scalar, p, i64, p, i64, scalar, p, i64))


_library = _numpy_blas()
IDENTITY = os.path.basename(_library._name) if _library is not None else "numba np.dot"

_jit = numba.njit(cache=True, nogil=True)


def _gemm(*args):
    """Typing stub: ``cblas_?gemm`` for the dtype of its scalars (see below)."""


if _library is not None:
    _GEMM = {types.float32: _declare(_library, "s", types.float32),
             types.float64: _declare(_library, "d", types.float64)}

    @overload(_gemm)
    def _typed_gemm(order, transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                    ldc):
        gemm = _GEMM[c.dtype]
        return lambda order, transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, \
            ldc: gemm(order, transpose_a, transpose_b, m, n, k, alpha, a.ctypes, lda, b.ctypes,
                      ldb, beta, c.ctypes, ldc)

    @_jit
    def gemm_into(a, b, transpose_a, transpose_b, out):
        """``out[...] = op(a) @ op(b)`` for 2-D arrays of one float dtype, op a transpose
        where asked; ``out`` is C-contiguous, of the product's shape, and overlaps
        neither."""
        m, k = (a.shape[1], a.shape[0]) if transpose_a else (a.shape[0], a.shape[1])
        n = b.shape[0] if transpose_b else b.shape[1]
        if m == 0 or n == 0:
            return
        if k == 0:
            out[:] = 0
            return
        # no copy for the C-contiguous arrays the entry passes; a copy otherwise
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        one, zero = out.dtype.type(1.0), out.dtype.type(0.0)
        _gemm(_ROW_MAJOR, _TRANSPOSE if transpose_a else _NO_TRANSPOSE,
              _TRANSPOSE if transpose_b else _NO_TRANSPOSE, m, n, k, one, a, a.shape[1],
              b, b.shape[1], zero, out, n)
else:
    @_jit
    def gemm_into(a, b, transpose_a, transpose_b, out):
        """``out[...] = op(a) @ op(b)`` through numba's ``np.dot`` (numpy's BLAS was
        not found)."""
        np.dot(a.T if transpose_a else a, b.T if transpose_b else b, out)

