"""Row kernels (compiler/backends/numba/lowerings/rows.py) compute what the ops' numpy
implementations compute, special values included, and decline what they do not
handle (the numpy implementation runs instead)."""

import numpy as np
import pytest

from symgrad_compiler.backends.numba import disk_cache as cache
from symgrad_compiler.backends.numba.lowerings import lowering_for, products, rows
from symgrad_compiler.backends.numba.plan import LibraryStep
from symgrad_compiler.ir import Entry
from symgrad_compiler.registry import make_node, variable


@pytest.fixture(scope="module")
def module():
    return cache.load(rows._SOURCE.strip())


class _RowStep:
    """A lowered library step called on arrays (as the plan calls it on slots)."""

    def __init__(self, step: LibraryStep):
        self.step, self.kernel = step, step.kernel

    def __call__(self, *arrays):
        slots = [*arrays, None]
        self.step.inputs, self.step.outputs = list(range(len(arrays))), [len(arrays)]
        self.step(slots)
        return slots[-1]


def row_step(module, op, inputs, **attrs):
    node = make_node(op, [Entry(variable(a.shape, a.dtype), 0) for a in inputs], attrs)
    step = LibraryStep(node, [], [])
    assert step.lowering is not None
    step.kernel = getattr(module, step.lowering.kernel_name)
    return _RowStep(step), node


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("temperature", [None, 2.5])
def test_softmax_family(module, dtype, op, temperature):
    x = np.random.default_rng(0).normal(0, 3, (7, 11)).astype(dtype)
    step, node = row_step(module, op, [x], axis=-1, temperature=temperature)
    expected = node.op.impl(x, **node.attrs)
    np.testing.assert_allclose(
        step(x), expected, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps
    )


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_special_values_as_numpy(module, op):
    x = np.array(
        [
            [0.0, np.nan, 1.0],
            [np.inf, 1.0, 2.0],
            [-np.inf, 0.0, 1.0],
            [-np.inf, -np.inf, -np.inf],
            [1e30, -1e30, 0.0],
        ],
        np.float32,
    )
    step, node = row_step(module, op, [x], axis=1, temperature=None)
    with np.errstate(all="ignore"):
        expected = node.op.impl(x, **node.attrs)
    np.testing.assert_allclose(step(x), expected, rtol=1e-6)  # NaN where numpy has NaN


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize(
    "axis,keepdims", [(None, False), (None, True), ((1,), False), ((-1,), True), ((0, 1), False)]
)
def test_sums_and_means(module, dtype, op, axis, keepdims):
    x = np.random.default_rng(1).uniform(-1, 1, (5, 9)).astype(dtype)
    step, node = row_step(module, op, [x], axis=axis, keepdims=keepdims, exclude=False)
    expected = node.op.impl(x, **node.attrs)
    got = step(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=8 * np.finfo(dtype).eps, atol=1e-6)


def test_reductions_keep_nan_and_inf(module):
    x = np.array([[1.0, np.nan], [np.inf, 1.0], [np.inf, -np.inf]], np.float32)
    step, node = row_step(module, "sum", [x], axis=(1,), keepdims=False, exclude=False)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(step(x), node.op.impl(x, **node.attrs))


@pytest.mark.parametrize("mode", ["clip", "wrap"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_pick_and_its_gradient_index_like_numpy(module, mode, keepdims):
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    index = np.array([-4.0, 1.7, 5.0, np.nan], np.float32)  # out of range, fraction, NaN
    step, node = row_step(module, "pick", [data, index], axis=1, keepdims=keepdims, mode=mode)
    with np.errstate(invalid="ignore"):  # numpy warns casting NaN to an integer
        np.testing.assert_array_equal(step(data, index), node.op.impl(data, index, **node.attrs))
        g = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
        step, node = row_step(module, "_pick_grad", [g, index, data], axis=-1, mode=mode)
        np.testing.assert_array_equal(
            step(g, index, data), node.op.impl(g, index, data, **node.attrs)
        )


def test_declined_cases_run_numpy(module):
    # another axis, a strided view, a long row: the numpy implementation answers
    x = np.random.default_rng(2).normal(size=(6, 8)).astype(np.float32)
    step, node = row_step(module, "log_softmax", [x], axis=0, temperature=None)
    np.testing.assert_array_equal(step(x), node.op.impl(x, **node.attrs))
    strided = x[:, ::2]
    step, node = row_step(module, "softmax", [strided], axis=-1, temperature=None)
    assert rows._softmax(step.kernel, strided, axis=-1, temperature=None) is None
    np.testing.assert_array_equal(step(strided), node.op.impl(strided, **node.attrs))
    # (float32 rows of any length have their kernels: only float64 ones stop)
    long_row = np.ones((1, rows.MAX_ROW + 1), np.float64)
    step, node = row_step(module, "sum", [long_row], axis=(1,), keepdims=False, exclude=False)
    assert rows._reduce(step.kernel, long_row, axis=(1,), keepdims=False, exclude=False) is None
    np.testing.assert_array_equal(step(long_row), node.op.impl(long_row, **node.attrs))


def test_integer_data_has_no_row_kernel():
    node = make_node("sum", [Entry(variable((2, 3), np.int32), 0)], {"axis": (1,)})
    assert lowering_for(node) is None


def test_gemm_into_writes_the_product_or_declines():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    target = np.empty((4, 3))
    assert products.gemm_into(a, b, target, transpose_a=True, transpose_b=False)
    np.testing.assert_allclose(target, a.T @ b)
    assert not products.gemm_into(a, b, np.empty((3, 4)), transpose_a=True, transpose_b=False)
    assert not products.gemm_into(
        a, b, np.empty((4, 3), np.float32), transpose_a=True, transpose_b=False
    )
    square = rng.normal(size=(4, 4))
    assert not products.gemm_into(
        square, square, square, transpose_a=False, transpose_b=False
    )  # would overwrite its own input


def test_shared_fills_never_reach_the_caller():
    # A fill read only by kernels is made once per plan; one a library op reads
    # (a reshape hands out a view) or one that is an output is fresh on every call.
    from symgrad_compiler import ProgramGraph, compile_graph

    x = variable((2, 3), np.float32)
    ones = make_node("_ones", [], {"shape": (1, 6), "dtype": "float32"})
    through_kernel = make_node(
        "broadcast_add",
        [
            Entry(x, 0),
            Entry(make_node("_full", [], {"shape": (1, 1), "dtype": "float32", "value": 2.0}), 0),
        ],
        {},
    )
    viewed = make_node("Reshape", [Entry(ones, 0)], {"shape": (2, 3)})
    returned = make_node("_ones", [], {"shape": (6, 1), "dtype": "float32"})
    program = compile_graph(
        ProgramGraph([x], [Entry(through_kernel, 0), Entry(viewed, 0), Entry(returned, 0)]),
        "numba",
    )
    arg = np.zeros((2, 3), np.float32)
    first = program([arg])
    for result in first:
        result[...] = -7  # the caller owns what it was given
    second = program([arg])
    np.testing.assert_array_equal(second[0], np.full((2, 3), 2.0))
    np.testing.assert_array_equal(second[1], np.ones((2, 3)))
    np.testing.assert_array_equal(second[2], np.ones((6, 1)))


def test_explain_shows_the_row_kernels_a_program_uses():
    import symgrad as mx
    import symgrad_compiler as compiler

    text = compiler.explain(mx.sym.log_softmax(mx.sym.var("x", shape=(4, 3)), axis=1))
    assert "# row kernels (for log_softmax)" in text and "library(" in text
