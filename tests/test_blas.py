"""Matrix products in compiled code (compiler/lower/blas.py) go through the BLAS
numpy uses, and give numpy's products for every transpose, both float dtypes,
empty inner sizes and operands that are not contiguous."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.lower import blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_gemm_into_is_numpys_product(dtype, transpose_a, transpose_b):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5) if transpose_a else (5, 3)).astype(dtype)
    b = rng.standard_normal((4, 3) if transpose_b else (3, 4)).astype(dtype)
    out = np.full((5, 4), np.nan, dtype)
    blas.gemm_into(a, b, transpose_a, transpose_b, out)
    expected = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_an_empty_inner_size_gives_zeros():
    out = np.full((2, 3), np.nan, np.float32)
    blas.gemm_into(np.empty((2, 0), np.float32), np.empty((0, 3), np.float32), False, False, out)
    assert (out == 0).all()


def test_an_empty_product_writes_nothing():
    out = np.empty((0, 3))
    blas.gemm_into(np.empty((0, 4)), np.ones((4, 3)), False, False, out)
    assert out.shape == (0, 3)


def test_operands_that_are_not_contiguous_are_copied_first():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 8))[::2, ::2]  # (3, 4), strided
    b = rng.standard_normal((4, 5))
    out = np.empty((3, 5))
    blas.gemm_into(a, b, False, False, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_numpys_bundled_openblas_is_found_where_numpy_has_one():
    import glob
    import os
    package = os.path.dirname(np.__file__)
    bundled = glob.glob(os.path.join(package, os.pardir, "numpy.libs", "*scipy_openblas64_*"))
    if not bundled:
        pytest.skip("this numpy bundles no scipy-openblas (products use numba's np.dot)")
    assert blas.IDENTITY == os.path.basename(bundled[0])
