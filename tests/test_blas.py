"""Matrix products in compiled code (compiler/backends/numba/blas.py) go through the BLAS
numpy uses, and give numpy's products for every transpose, both float dtypes,
empty sizes and operands that are not contiguous; so does the fallback through
numba's np.dot."""

from __future__ import annotations

import os

import numpy as np
import pytest

from symgrad_compiler.backends.numba import blas

BOTH = [blas._blas_matmul_into, blas._numba_matmul_into]
if not blas._found:  # no numpy BLAS here: only the fallback can run
    BOTH = [blas._numba_matmul_into]


def operands(shape_a, shape_b, transpose_a, transpose_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape_a[::-1] if transpose_a else shape_a).astype(dtype)
    b = rng.standard_normal(shape_b[::-1] if transpose_b else shape_b).astype(dtype)
    return a, b, (a.T if transpose_a else a) @ (b.T if transpose_b else b)


@pytest.mark.parametrize("matmul_into", BOTH)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_products_are_numpys(matmul_into, dtype, transpose_a, transpose_b):
    a, b, expected = operands((5, 3), (3, 4), transpose_a, transpose_b, dtype)
    out = np.full((5, 4), np.nan, dtype)
    matmul_into(a, b, transpose_a, transpose_b, out)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("matmul_into", BOTH)
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_an_empty_inner_size_gives_zeros(matmul_into, transpose_a, transpose_b):
    a, b, expected = operands((2, 0), (0, 3), transpose_a, transpose_b, np.float32)
    out = np.full((2, 3), np.nan, np.float32)
    matmul_into(a, b, transpose_a, transpose_b, out)
    assert expected.shape == (2, 3) and (out == 0).all()


@pytest.mark.parametrize("matmul_into", BOTH)
@pytest.mark.parametrize("shapes", [((0, 4), (4, 3)), ((2, 4), (4, 0))])
def test_an_empty_product_is_fine(matmul_into, shapes):
    a, b, expected = operands(*shapes, False, False, np.float64)
    out = np.empty(expected.shape)
    matmul_into(a, b, False, False, out)
    assert out.shape == expected.shape


@pytest.mark.parametrize("matmul_into", BOTH)
def test_operands_that_are_not_contiguous_are_copied_first(matmul_into):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 8))[::2, ::2]  # (3, 4), strided
    b = rng.standard_normal((4, 5))
    out = np.empty((3, 5))
    matmul_into(a, b, False, False, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


@pytest.mark.parametrize("matmul_into", BOTH)
@pytest.mark.parametrize(
    "b_shape, out_shape", [((4, 5), (3, 5)), ((3, 5), (3, 4)), ((3, 5), (2, 5))]
)
def test_shapes_that_disagree_raise_instead_of_reading_out_of_bounds(
    matmul_into, b_shape, out_shape
):
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match="shapes do not agree"):
        matmul_into(a, np.ones(b_shape), False, False, np.empty(out_shape))


ADDING = [blas._blas_matmul_add_into, blas._separate_matmul_add_into]
if blas.TILED_ADDS:
    ADDING.append(blas._tiled_matmul_add_into)
if not blas._found:
    ADDING = [blas._separate_matmul_add_into]


@pytest.mark.parametrize("matmul_add_into", ADDING)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_an_added_product_is_added_to_what_out_holds(
    matmul_add_into, dtype, transpose_a, transpose_b
):
    a, b, expected = operands((5, 3), (3, 4), transpose_a, transpose_b, dtype)
    start = np.arange(20, dtype=dtype).reshape(5, 4)
    out = start.copy()
    matmul_add_into(a, b, transpose_a, transpose_b, out)
    np.testing.assert_allclose(out, start + expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("matmul_add_into", ADDING)
def test_an_added_product_of_no_depth_leaves_out_as_it_was(matmul_add_into):
    a, b, _ = operands((2, 0), (0, 3), False, False, np.float32)
    out = np.full((2, 3), 7.0, np.float32)
    matmul_add_into(a, b, False, False, out)
    assert (out == 7).all()


@pytest.mark.parametrize("matmul_add_into", ADDING)
def test_an_added_product_propagates_a_nan_in_out_or_the_operands(matmul_add_into):
    a, b = np.ones((2, 2)), np.ones((2, 2))
    out = np.zeros((2, 2))
    out[0, 0] = np.nan
    a[1, 1] = np.nan
    matmul_add_into(a, b, False, False, out)
    np.testing.assert_array_equal(np.isnan(out), [[True, False], [True, True]])


def test_the_exported_add_route_matches_the_product_route():
    """Where our tiles exist (and own products are allowed), added products may
    take them; else where products go to numpy's BLAS, added products do too (beta
    1); any other route adds a product it made through matmul_into."""
    if blas.TILED_ADDS:
        assert blas.matmul_add_into is blas._tiled_matmul_add_into
    elif blas.matmul_into is blas._blas_matmul_into:
        assert blas.matmul_add_into is blas._blas_matmul_add_into
    else:
        assert blas.matmul_add_into is blas._separate_matmul_add_into


needs_tiled_adds = pytest.mark.skipif(
    not blas.TILED_ADDS, reason="added products take our tiles on AVX-512 CPUs only"
)


@needs_tiled_adds
def test_added_products_of_a_transposed_b_take_the_tiles_while_openblas_is_alone():
    """A weight gradient's layout, of a result at least a panel wide and at most
    TRANSPOSED_MOST_RESULT values, takes our tiles while OpenBLAS runs on one thread
    (as a convolution holds it); on more, OpenBLAS's threads share it out."""
    from symgrad_compiler.backends.numba.blas_threads import blas_threads, openblas_controls

    take = blas._tiles_take_transposed
    columns, most = blas.TRANSPOSED_LEAST_COLUMNS, blas.TRANSPOSED_MOST_RESULT
    with blas_threads().alone():
        assert take(192, 768, 289)  # InceptionV3's 1x1 768 -> 192 at 17x17
        assert take(64, columns, 12544)
        assert not take(256, columns - 1, 1024)  # one partial panel
        assert not take(most // 512 + 1, 512, 196)  # a result too big
        assert not take(8, 64, 64)  # too little work
    # OpenBLAS's thread count is the process's, and changes under the test: another
    # thread may hold it alone, and blas_threads() adapts it to the cores other
    # processes leave free (a busy machine gives it one). The rule is checked
    # where the count was above one on both sides of the call
    controls = openblas_controls()
    count = controls[1] if controls is not None else lambda: 0
    for _ in range(100):
        before = count()
        taken = take(192, 768, 289)
        if before != 1 and count() != 1:
            assert taken == blas.sgemm.OWN_TILES
            break
    else:
        assert taken  # OpenBLAS on one thread throughout: the tiles take it


@needs_tiled_adds
def test_the_tiled_product_of_a_transposed_b_is_numpys_with_special_values():
    """On the tiles, written or added, at sizes varied in one process (partial
    tiles and panels, one and several passes over the inner positions): the
    product numpy gives, NaN and infinities from the operands or the result where
    numpy has them, and a result's -0.0 kept where the product adds nothing."""
    from symgrad_compiler.backends.numba.blas_threads import blas_threads

    rng = np.random.default_rng(17)
    with blas_threads().alone():
        for m, n, k in [(192, 768, 289), (37, 70, 1000), (13, 33, 700), (64, 32, 300)]:
            assert blas._tiles_take_transposed(m, n, k)
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((n, k)).astype(np.float32)
            start = rng.standard_normal((m, n)).astype(np.float32)
            a[1, 2], b[3, 4], start[5, 6] = np.nan, np.inf, -np.inf
            product = a.astype(np.float64) @ b.T.astype(np.float64)
            for add in (False, True):
                out = start.copy()
                blas.matmul_nt_into(a, b, out, add)
                with np.errstate(invalid="ignore"):
                    expected = start + product if add else product
                np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
                np.testing.assert_array_equal(np.isinf(out), np.isinf(expected))
                finite = np.isfinite(expected)
                np.testing.assert_allclose(
                    out[finite], expected[finite], rtol=2e-5, atol=1e-4 * k**0.5
                )
            out = start.copy()
            blas.matmul_add_into(a, b, False, True, out)  # the same route
            expected = start.copy()
            blas.matmul_nt_into(a, b, expected, True)
            np.testing.assert_array_equal(out, expected)
        out = np.full((40, 64), -0.0, np.float32)
        empty_a, empty_b = np.zeros((40, 0), np.float32), np.zeros((64, 0), np.float32)
        blas.matmul_add_into(empty_a, empty_b, False, True, out)
        assert np.signbit(out).all()
        blas.matmul_nt_into(empty_a, empty_b, out, False)  # no depth: zeros
        assert (out == 0).all() and not np.signbit(out).any()


NT_ROUTES = [blas._plain_matmul_nt_into] + ([blas._tiled_matmul_nt_into] if blas.TILED_ADDS else [])


@pytest.mark.parametrize("matmul_nt_into", NT_ROUTES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("add", [False, True])
def test_a_product_of_a_transposed_b_off_the_tiles_is_numpys(matmul_nt_into, dtype, add):
    """Too small for the tiles, float64, OpenBLAS on its own threads, or no tiles
    at all (the plain route, through matmul_into and matmul_add_into): the
    product written or added as numpy's."""
    a, b, expected = operands((5, 3), (3, 4), False, True, dtype)
    start = np.arange(20, dtype=dtype).reshape(5, 4)
    out = start.copy()
    matmul_nt_into(a, b, out, add)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, start + expected if add else expected, rtol=rtol)


def test_products_run_in_the_blas_numpy_linked():
    """The registered gemm lies in the OpenBLAS file numpy loaded (numba loads
    scipy's too at its first compile, but compiled products must not use it: two
    pools at work starve each other's threads)."""
    if not blas._found:
        pytest.skip(f"this numpy has no bundled ILP64 OpenBLAS ({blas.IDENTITY})")
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps to list the loaded libraries")
    a = np.ones((8, 8), np.float32)
    out = np.empty_like(a)
    blas.matmul_into(a, a, False, True, out)
    assert (out == 8).all()
    import llvmlite.binding as llvm

    address = llvm.address_of_symbol("symgrad_cblas_sgemm")  # what compiled code links to
    with open("/proc/self/maps") as maps:
        owners = set()
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end and len(fields) > 5:
                owners.add(fields[-1])
    numpy_root = os.path.dirname(os.path.dirname(np.__file__))
    assert len(owners) == 1, owners
    owner = owners.pop()
    assert "openblas" in owner.lower() and owner.startswith(numpy_root), owner
    assert os.path.basename(os.path.dirname(owner)) in ("numpy.libs", ".dylibs"), owner
