"""Which kernels numpy's OpenBLAS runs, and so whether our own float32 products
(:mod:`.sgemm`) beat it.

OpenBLAS picks its kernels for the CPU when it loads, or takes those that
``OPENBLAS_CORETYPE`` names. On a CPU with AVX-512 whose OpenBLAS runs AVX2 kernels
("Haswell", as the benchmark machine's environment sets for its AMD Zen 5 cores,
or a CPU newer than OpenBLAS's table), our register tile, compiled by numba for
the CPU's AVX-512, runs 1.4-1.9x faster than OpenBLAS on one thread: (128 x 784)
by (784 x 256) 227 against 414 us, (512 x 512) squared 1.10 against 2.13 ms,
W8's (1120 x 200) by (200 x 10000) 20 against 37 ms. Where OpenBLAS runs its own
AVX-512 kernels the two were within 4%, and OpenBLAS keeps the products.
The user's choice of OpenBLAS's kernels is left as it is: only our own
products follow the CPU. ``SYMGRAD_OWN_PRODUCTS=0`` leaves every product other
than sgemm.py's and narrow.py's small-batch routes to OpenBLAS.
"""

from __future__ import annotations

import ctypes

from ... import settings
from .blas_threads import numpy_library
from .vmath import _target_has_avx512

# OpenBLAS's names of its kernels for x86 CPUs with AVX-512 (lower case)
AVX512_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


def openblas_core() -> str | None:
    """The name OpenBLAS gives the kernels numpy's BLAS runs (``Haswell``,
    ``SkylakeX``...), or None where numpy's BLAS does not say (not an OpenBLAS
    built for several CPUs)."""
    corename = getattr(numpy_library(), "gotoblas_corename", None)
    if corename is None:
        return None
    corename.restype = ctypes.c_char_p
    return (corename() or b"").decode() or None


def _own_tiles_win() -> bool:
    core = openblas_core()
    return _target_has_avx512() and core is not None and core.lower() not in AVX512_CORES


# Whether float32 products go to our own tiles (sgemm.py) rather than OpenBLAS.
OWN_TILES = settings.current().own_products and _own_tiles_win()
