"""NDArray and ``mx.nd`` creation, checked against numpy and MXNet 1.x's documented
behaviour: creation and dtypes, properties, conversion, MXNet's reshape codes,
reductions, indexing (recorded and differentiable), item assignment, repr,
contexts, comparison and reflected operators, and shape errors at the op call.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as mx
from symgrad import autograd, nd

F64 = "float64"
RTOL = 1e-12


@pytest.fixture(autouse=True)
def _state_off():
    autograd.set_recording(False)
    autograd.set_training(False)
    yield
    autograd.set_recording(False)
    autograd.set_training(False)


def variable(values, dtype=F64):
    x = nd.array(values, dtype=dtype)
    x.attach_grad()
    return x


# ---------------------------------------------------------------------------
# creation
# ---------------------------------------------------------------------------


def test_array_from_nested_lists_is_float32():
    x = nd.array([[1, 2, 3], [4, 5, 6]])
    assert x.shape == (2, 3)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.asnumpy(), [[1, 2, 3], [4, 5, 6]])


def test_array_from_float64_numpy_is_float32_unless_dtype_given():
    source = np.linspace(0, 1, 7)
    x = nd.array(source)
    assert x.dtype == np.float32  # as MXNet: the default dtype wins over the source's
    np.testing.assert_allclose(x.asnumpy(), source.astype(np.float32), rtol=0)
    y = nd.array(source, dtype=F64)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.asnumpy(), source)


@pytest.mark.parametrize(
    "dtype", ["float16", "float32", "float64", "int32", "int64", "uint8", np.float64, np.int32]
)
def test_array_dtype_argument(dtype):
    x = nd.array([1, 2, 3], dtype=dtype)
    assert x.dtype == np.dtype(dtype).type
    assert x.asnumpy().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(x.asnumpy(), [1, 2, 3])


def test_array_from_integer_numpy_is_float32():
    assert nd.array(np.arange(4)).dtype == np.float32


def test_array_from_scalar_holds_the_value():
    x = nd.array(2.5)
    assert x.size == 1
    assert x.asscalar() == 2.5
    assert x.dtype == np.float32


def test_array_from_ndarray_copies_and_keeps_dtype():
    source = nd.array([1, 2], dtype=F64)
    x = nd.array(source)
    assert x.dtype == np.float64
    source[:] = 7
    np.testing.assert_array_equal(x.asnumpy(), [1, 2])


def test_array_does_not_alias_numpy_source():
    source = np.array([1.0, 2.0], dtype=np.float32)
    x = nd.array(source)
    source[:] = 9
    np.testing.assert_array_equal(x.asnumpy(), [1, 2])


@pytest.mark.parametrize("shape", [(3,), (2, 3), 4, (1, 1, 2)])
def test_zeros_ones_full(shape):
    expected_shape = (shape,) if isinstance(shape, int) else shape
    for array, value in ((nd.zeros(shape), 0.0), (nd.ones(shape), 1.0), (nd.full(shape, 7.5), 7.5)):
        assert array.shape == expected_shape
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array.asnumpy(), np.full(expected_shape, value))


def test_creation_dtype_arguments():
    assert nd.zeros((2,), dtype=F64).dtype == np.float64
    assert nd.ones((2,), dtype="int32").dtype == np.int32
    assert nd.full((2,), 3, dtype="int64").dtype == np.int64
    assert nd.arange(3, dtype="int32").dtype == np.int32


@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        ((5,), {}, np.arange(5)),
        ((1, 4), {}, np.arange(1, 4)),
        ((1, 4, 0.5), {}, np.arange(1, 4, 0.5)),
        ((0, 3), {"repeat": 2}, [0, 0, 1, 1, 2, 2]),
        ((4, 0, -1), {}, [4, 3, 2, 1]),
    ],
)
def test_arange(args, kwargs, expected):
    x = nd.arange(*args, **kwargs)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.asnumpy(), np.asarray(expected, dtype=np.float32))


def test_zeros_like_and_ones_like_keep_shape_and_dtype():
    x = nd.array([[1, 2], [3, 4]], dtype="int32")
    for array, value in ((nd.zeros_like(x), 0), (nd.ones_like(x), 1)):
        assert array.shape == (2, 2)
        assert array.dtype == np.int32
        np.testing.assert_array_equal(array.asnumpy(), np.full((2, 2), value))


def test_random_uniform_range_shape_and_dtype():
    mx.random.seed(0)
    x = nd.random.uniform(-2, 3, shape=(200, 50))
    assert x.shape == (200, 50) and x.dtype == np.float32
    values = x.asnumpy()
    assert values.min() >= -2 and values.max() < 3
    assert abs(values.mean() - 0.5) < 0.05  # 10^4 draws, sd of the mean ~0.014
    assert nd.random.uniform(shape=(3,), dtype=F64).dtype == np.float64


def test_random_normal_moments():
    mx.random.seed(1)
    values = nd.random.normal(2.0, 3.0, shape=(100, 100)).asnumpy()
    assert abs(values.mean() - 2.0) < 0.1  # sd of the mean 0.03
    assert abs(values.std() - 3.0) < 0.1


@pytest.mark.parametrize(
    "draw",
    [
        lambda: nd.random.uniform(shape=(4, 5)),
        lambda: nd.random.normal(shape=(4, 5)),
        lambda: mx.random.uniform(0, 1, shape=(3,)),
    ],
)
def test_random_seed_repeats_draws(draw):
    mx.random.seed(42)
    first, second = draw().asnumpy(), draw().asnumpy()
    assert not np.array_equal(first, second)  # consecutive draws differ
    mx.random.seed(42)
    np.testing.assert_array_equal(draw().asnumpy(), first)
    np.testing.assert_array_equal(draw().asnumpy(), second)


# ---------------------------------------------------------------------------
# properties and conversion
# ---------------------------------------------------------------------------


def test_properties():
    x = nd.array(np.arange(24).reshape(2, 3, 4))
    assert x.shape == (2, 3, 4)
    assert x.dtype == np.float32
    assert x.size == 24
    assert x.ndim == 3
    assert len(x) == 2
    assert x.context == mx.cpu()
    assert x.ctx == mx.cpu(0)
    assert x.stype == "default"
    assert x.T.shape == (4, 3, 2)
    np.testing.assert_array_equal(x.T.asnumpy(), np.arange(24).reshape(2, 3, 4).T)


def test_properties_of_recorded_arrays():
    x = variable(np.ones((2, 3)))
    with autograd.record():
        y = nd.tanh(x).reshape((3, 2))
    assert y.shape == (3, 2) and y.dtype == np.float64 and y.size == 6 and y.ndim == 2
    np.testing.assert_allclose(y.asnumpy(), np.full((3, 2), np.tanh(1.0)), rtol=RTOL)


def test_asnumpy_is_a_copy():
    x = nd.array([1, 2, 3])
    values = x.asnumpy()
    assert isinstance(values, np.ndarray)
    values[:] = 0
    np.testing.assert_array_equal(x.asnumpy(), [1, 2, 3])


def test_asscalar():
    value = nd.array([3.5]).asscalar()
    assert value == 3.5
    assert isinstance(value, np.float32)
    assert nd.array([7], dtype="int32").asscalar() == 7
    with pytest.raises((mx.MXNetError, ValueError)):
        nd.array([1, 2]).asscalar()


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", np.int64])
def test_astype(dtype):
    x = nd.array([1.7, -2.2, 3.0])
    y = x.astype(dtype)
    assert y.dtype == np.dtype(dtype).type
    np.testing.assert_array_equal(y.asnumpy(), np.array([1.7, -2.2, 3.0], np.float32).astype(dtype))
    assert x.dtype == np.float32


def test_astype_copy_false_same_dtype_returns_self():
    x = nd.array([1, 2])
    assert x.astype("float32", copy=False) is x
    assert x.astype("float32") is not x


def test_copy_is_independent():
    x = nd.array([1, 2, 3])
    y = x.copy()
    y[:] = 0
    np.testing.assert_array_equal(x.asnumpy(), [1, 2, 3])


def test_copyto_array_and_context():
    x = nd.array([1, 2, 3], dtype=F64)
    target = nd.zeros((3,), dtype=F64)
    assert x.copyto(target) is target
    np.testing.assert_array_equal(target.asnumpy(), [1, 2, 3])
    other = x.copyto(mx.cpu())
    assert other is not x and other.context == mx.cpu()
    other[:] = 5
    np.testing.assert_array_equal(x.asnumpy(), [1, 2, 3])
    with pytest.raises(mx.MXNetError):
        x.copyto(nd.zeros((4,), dtype=F64))


def test_copy_and_astype_are_differentiable():
    x = variable([1.0, 2.0])
    with autograd.record():
        y = x.copy() * x.astype("float64") * 3
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [6.0, 12.0], rtol=RTOL)


# ---------------------------------------------------------------------------
# reshape: tuple or ints, MXNet's special codes (examples from its docs)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, spec, expected",
    [
        ((2, 3, 4), (4, 0, 2), (4, 3, 2)),
        ((2, 3, 4), (2, 0, 0), (2, 3, 4)),
        ((2, 3, 4), (6, 1, -1), (6, 1, 4)),
        ((2, 3, 4), (3, -1, 8), (3, 1, 8)),
        ((2, 3, 4), (-1,), (24,)),
        ((2, 3, 4), (-2,), (2, 3, 4)),
        ((2, 3, 4), (2, -2), (2, 3, 4)),
        ((2, 3, 4), (-2, 1, 1), (2, 3, 4, 1, 1)),
        ((2, 3, 4), (-3, 4), (6, 4)),
        ((2, 3, 4, 5), (-3, -3), (6, 20)),
        ((2, 3, 4), (0, -3), (2, 12)),
        ((2, 3, 4), (-3, -2), (6, 4)),
        ((2, 3, 4), (-4, 1, 2, -2), (1, 2, 3, 4)),
        ((2, 3, 4), (2, -4, -1, 3, -2), (2, 1, 3, 4)),
    ],
)
def test_reshape_codes(source, spec, expected):
    data = np.arange(np.prod(source), dtype=np.float32).reshape(source)
    x = nd.array(data)
    y = x.reshape(spec)
    assert y.shape == expected
    np.testing.assert_array_equal(y.asnumpy(), data.reshape(expected))


def test_reshape_with_ints_and_keyword():
    x = nd.array(np.arange(6))
    assert x.reshape(2, 3).shape == (2, 3)
    assert x.reshape((3, 2)).shape == (3, 2)
    assert x.reshape(shape=(1, 6)).shape == (1, 6)
    assert nd.reshape(x, shape=(6, 1)).shape == (6, 1)


def test_reshape_reverse():
    x = nd.array(np.zeros((10, 5, 4)))
    assert x.reshape((-1, 0)).shape == (40, 5)
    assert x.reshape((-1, 0), reverse=True).shape == (50, 4)


def test_reshape_bad_size_raises_shape_error():
    with pytest.raises(mx.base.MXNetShapeError, match="Reshape"):
        nd.array(np.arange(6)).reshape((4, 2))


def test_reshape_gradient_flows_back_to_original_shape():
    data = np.arange(6.0).reshape(2, 3)
    x = variable(data)
    with autograd.record():
        y = x.reshape((-1,)) * nd.array(np.arange(6.0), dtype=F64)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), data, rtol=RTOL)


# ---------------------------------------------------------------------------
# reductions: methods with axis/keepdims, whole-array result of shape (1,)
# ---------------------------------------------------------------------------

_REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}


@pytest.mark.parametrize("name", sorted(_REDUCTIONS))
def test_whole_array_reduction_has_shape_one(name):
    data = np.arange(1.0, 7.0).reshape(2, 3)
    result = getattr(nd.array(data, dtype=F64), name)()
    assert result.shape == (1,)
    np.testing.assert_allclose(result.asnumpy(), [_REDUCTIONS[name](data)], rtol=RTOL)
    function_result = getattr(nd, name)(nd.array(data, dtype=F64))
    np.testing.assert_allclose(function_result.asnumpy(), result.asnumpy(), rtol=RTOL)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(_REDUCTIONS)),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    data=st.data(),
    keepdims=st.booleans(),
)
def test_reductions_match_numpy(name, shape, data, keepdims):
    rank = len(shape)
    axis = data.draw(
        st.one_of(
            st.none(),
            st.integers(-rank, rank - 1),
            st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True).map(tuple),
        ),
        label="axis",
    )
    values = np.random.default_rng(0).uniform(0.5, 1.5, shape)
    result = getattr(nd.array(values, dtype=F64), name)(axis=axis, keepdims=keepdims)
    expected = np.asarray(_REDUCTIONS[name](values, axis=axis, keepdims=keepdims))
    if expected.ndim == 0:
        expected = expected.reshape(1)  # MXNet has no rank-0 results
    assert result.shape == expected.shape
    np.testing.assert_allclose(result.asnumpy(), expected, rtol=1e-12)


def test_reduction_gradients():
    data = np.array([[1.0, 5.0, 2.0], [4.0, 3.0, 6.0]])
    x = variable(data)
    with autograd.record():
        total = x.sum(axis=1) * nd.array([1.0, 2.0], dtype=F64)
    total.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [[1, 1, 1], [2, 2, 2]], rtol=RTOL)
    with autograd.record():
        y = x.mean()
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), np.full((2, 3), 1 / 6), rtol=RTOL)
    with autograd.record():
        y = x.max(axis=0)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [[0, 1, 0], [1, 0, 1]], rtol=RTOL)
    with autograd.record():
        y = x.prod(axis=1, keepdims=True)
    y.backward()
    np.testing.assert_allclose(
        x.grad.asnumpy(), np.prod(data, axis=1, keepdims=True) / data, rtol=RTOL
    )


# ---------------------------------------------------------------------------
# indexing: recorded and differentiable
# ---------------------------------------------------------------------------

_DATA = np.arange(12.0).reshape(3, 4)


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        slice(0, 2),
        slice(1, None),
        slice(None, None, 2),
        (slice(None), 2),
        (slice(None), -1),
        (1, 2),
        (slice(0, 2), slice(1, 3)),
        (slice(None), slice(None, None, 2)),
        (slice(None, None, -1),),
    ],
)
def test_indexing_values_and_gradients(index):
    x = variable(_DATA)
    with autograd.record():
        y = x[index]
    expected = _DATA[index]
    expected_shape = expected.shape if expected.ndim else (1,)
    assert y.shape == expected_shape
    np.testing.assert_array_equal(y.asnumpy(), np.reshape(expected, expected_shape))
    head = np.arange(1.0, 1.0 + expected.size).reshape(expected_shape)
    y.backward(nd.array(head, dtype=F64))
    grad = np.zeros_like(_DATA)
    grad[index] = head.reshape(expected.shape)
    np.testing.assert_array_equal(x.grad.asnumpy(), grad)


@settings(max_examples=40, deadline=None)
@given(
    start=st.none() | st.integers(-6, 6),
    stop=st.none() | st.integers(-6, 6),
    step=st.none() | st.integers(1, 3),
)
def test_slice_matches_numpy(start, stop, step):
    data = np.arange(5.0)
    index = slice(start, stop, step)
    if data[index].size == 0:
        return  # MXNet refuses empty slices
    x = variable(data)
    with autograd.record():
        y = x[index] * 2
    np.testing.assert_array_equal(y.asnumpy(), data[index] * 2)
    y.backward()
    grad = np.zeros(5)
    grad[index] = 2
    np.testing.assert_array_equal(x.grad.asnumpy(), grad)


def test_integer_index_out_of_range_raises():
    with pytest.raises(IndexError):
        nd.array(_DATA)[3]
    with pytest.raises(IndexError):
        nd.array(_DATA)[:, -5]


def test_index_with_array_takes_rows_and_accumulates_gradient():
    x = variable(_DATA)
    with autograd.record():
        y = x[nd.array([2, 0, 2])]
    np.testing.assert_array_equal(y.asnumpy(), _DATA[[2, 0, 2]])
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), np.array([[1] * 4, [0] * 4, [2] * 4]))


def test_iterating_yields_rows():
    rows = [row.asnumpy() for row in nd.array(_DATA)]
    assert len(rows) == 3
    np.testing.assert_array_equal(np.stack(rows), _DATA)


# ---------------------------------------------------------------------------
# item assignment outside a graph
# ---------------------------------------------------------------------------


def test_item_assignment():
    x = nd.zeros((2, 3))
    x[:] = 5
    np.testing.assert_array_equal(x.asnumpy(), np.full((2, 3), 5))
    x[0] = nd.array([1, 2, 3])
    x[:, 1] = 0
    x[1, 2] = 9
    x[1, 0:1] = nd.array([7])
    np.testing.assert_array_equal(x.asnumpy(), [[1, 0, 3], [7, 0, 9]])
    x[:] = nd.ones((2, 3))
    np.testing.assert_array_equal(x.asnumpy(), np.ones((2, 3)))
    x[:] = np.full((2, 3), 4.0)
    np.testing.assert_array_equal(x.asnumpy(), np.full((2, 3), 4))


def test_item_assignment_keeps_dtype():
    x = nd.zeros((3,), dtype="int32")
    x[:] = 2.7
    assert x.dtype == np.int32
    np.testing.assert_array_equal(x.asnumpy(), [2, 2, 2])


def test_zeroing_grad_buffer_in_place():
    x = variable([1.0, 2.0])
    x.attach_grad(grad_req="add")
    with autograd.record():
        y = x * x
    y.backward()
    buffer = x.grad
    x.grad[:] = 0
    assert x.grad is buffer
    np.testing.assert_array_equal(x.grad.asnumpy(), [0, 0])


def test_assignment_to_a_variable_changes_later_recordings():
    x = variable([1.0, 2.0])
    x[:] = 3
    with autograd.record():
        y = x * x
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [6.0, 6.0], rtol=RTOL)


def test_assignment_after_recording_keeps_already_computed_values():
    """A pending (deferred) value must not read data assigned after recording."""
    x = variable([1.0, 2.0])
    with autograd.record():
        y = x * 2
    x[:] = 10
    np.testing.assert_array_equal(y.asnumpy(), [2.0, 4.0])


def test_in_place_arithmetic_outside_record():
    x = nd.array([1.0, 2.0], dtype=F64)
    alias = x
    x += 1
    x *= 3
    x -= nd.array([1.0, 1.0], dtype=F64)
    x /= 2
    assert x is alias
    np.testing.assert_allclose(x.asnumpy(), [2.5, 4.0], rtol=RTOL)


def test_wait_to_read_and_waitall():
    x = nd.array([1, 2]) * 2
    assert x.wait_to_read() is None
    assert nd.waitall() is None
    np.testing.assert_array_equal(x.asnumpy(), [2, 4])


# ---------------------------------------------------------------------------
# repr and contexts
# ---------------------------------------------------------------------------


def test_repr_matches_mxnet():
    assert repr(nd.array([1, 2, 3, 4]) * 2) == "\n[2. 4. 6. 8.]\n<NDArray 4 @cpu(0)>"
    assert repr(nd.ones((2, 3))) == ("\n[[1. 1. 1.]\n [1. 1. 1.]]\n<NDArray 2x3 @cpu(0)>")
    assert repr(nd.zeros((1, 1, 2))).endswith("<NDArray 1x1x2 @cpu(0)>")


def test_repr_of_gradient_after_backward():
    x = nd.array([1, 2, 3, 4])
    x.attach_grad()
    with autograd.record():
        y = x * x + 1
    y.backward()
    assert repr(x.grad) == "\n[2. 4. 6. 8.]\n<NDArray 4 @cpu(0)>"


def test_contexts_compare_by_type_and_id():
    assert mx.cpu() == mx.cpu(0)
    assert mx.cpu(1) != mx.cpu(0)
    assert mx.cpu() != mx.gpu()
    assert mx.gpu(0) == mx.gpu(0)
    assert hash(mx.cpu()) == hash(mx.cpu(0))
    assert mx.current_context() == mx.cpu()
    assert repr(mx.cpu()) == "cpu(0)"
    assert mx.Context("cpu", 0) == mx.cpu()
    assert mx.Context(mx.cpu(2)) == mx.cpu(2)


def test_cpu_context_accepted_gpu_refused():
    x = nd.array([1, 2], ctx=mx.cpu())
    assert x.context == mx.cpu()
    assert nd.zeros((2,), ctx=mx.cpu(0)).context == mx.cpu()
    assert x.as_in_context(mx.cpu()) is x
    with pytest.raises(mx.MXNetError):
        nd.array([1, 2], ctx=mx.gpu())
    with pytest.raises(mx.MXNetError):
        nd.zeros((2,), ctx=mx.gpu(0))


# ---------------------------------------------------------------------------
# operators: comparisons, reflected forms
# ---------------------------------------------------------------------------

_COMPARISONS = [
    (lambda a, b: a == b, np.equal),
    (lambda a, b: a != b, np.not_equal),
    (lambda a, b: a < b, np.less),
    (lambda a, b: a <= b, np.less_equal),
    (lambda a, b: a > b, np.greater),
    (lambda a, b: a >= b, np.greater_equal),
]


@pytest.mark.parametrize("compare, reference", _COMPARISONS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_comparisons_give_zero_one_arrays_in_input_dtype(compare, reference, dtype):
    a_values = np.array([[1, 2, 3], [3, 2, 1]])
    b_values = np.array([[2, 2, 2]])
    a, b = nd.array(a_values, dtype=dtype), nd.array(b_values, dtype=dtype)
    for result, expected in (
        (compare(a, b), reference(a_values, b_values)),
        (compare(a, 2), reference(a_values, 2)),
        (compare(2, a), reference(2, a_values)),
    ):
        assert result.dtype == np.dtype(dtype).type
        np.testing.assert_array_equal(result.asnumpy(), expected.astype(dtype))


def test_comparisons_carry_no_gradient():
    data = np.array([0.5, 1.5, 2.5])
    x = variable(data)
    with autograd.record():
        y = (x > 1) * x + (x <= 2) * 10
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), (data > 1).astype(float))


def test_reflected_operators_values_and_gradients():
    data = np.array([0.5, 1.0, 2.0])
    x = variable(data)
    with autograd.record():
        a = 2 - x
        b = 1 / x
        c = 2**x
        d = 3 + x
        e = 4 * x
    np.testing.assert_allclose(a.asnumpy(), 2 - data, rtol=RTOL)
    np.testing.assert_allclose(b.asnumpy(), 1 / data, rtol=RTOL)
    np.testing.assert_allclose(c.asnumpy(), 2**data, rtol=RTOL)
    np.testing.assert_allclose(d.asnumpy(), 3 + data, rtol=RTOL)
    np.testing.assert_allclose(e.asnumpy(), 4 * data, rtol=RTOL)
    for head, expected in (
        (a, -np.ones(3)),
        (b, -1 / data**2),
        (c, np.log(2) * 2**data),
        (d, np.ones(3)),
        (e, np.full(3, 4.0)),
    ):
        (gx,) = autograd.grad(head, [x], retain_graph=True)
        np.testing.assert_allclose(gx.asnumpy(), expected, rtol=1e-12)


def test_operators_refuse_numpy_arrays_and_keep_dtype_with_scalars():
    x = nd.array([1.0, 2.0])
    with pytest.raises(TypeError, match="not supported"):  # as MXNet 1.9.1
        x + np.array([1.0, 1.0], dtype=np.float32)
    assert (x * 2.5).dtype == np.float32
    assert (nd.array([1, 2], dtype=F64) / 3).dtype == np.float64


def test_unary_operators():
    x = nd.array([-1.0, 2.0])
    np.testing.assert_array_equal((-x).asnumpy(), [1, -2])
    np.testing.assert_array_equal(abs(x).asnumpy(), [1, 2])
    assert +x is x


# ---------------------------------------------------------------------------
# shape errors: raised at the op call, naming the op and the shapes
# ---------------------------------------------------------------------------

_SHAPE_ERRORS = [
    ("broadcast_add", lambda: nd.ones((2, 3)) + nd.ones((4,)), ["(2, 3)", "(4,)"]),
    ("broadcast_mul", lambda: nd.ones((2, 3)) * nd.ones((3, 2)), ["(2, 3)", "(3, 2)"]),
    (
        "elemwise_add",
        lambda: nd.elemwise_add(nd.ones((2, 3)), nd.ones((3, 2))),
        ["(2, 3)", "(3, 2)"],
    ),
    ("dot", lambda: nd.dot(nd.ones((2, 3)), nd.ones((4, 5))), ["(2, 3)", "(4, 5)"]),
    ("Reshape", lambda: nd.ones((2, 3)).reshape((5,)), ["(2, 3)"]),
]


@pytest.mark.parametrize("op, call, shapes", _SHAPE_ERRORS, ids=[e[0] for e in _SHAPE_ERRORS])
@pytest.mark.parametrize("recording", [False, True])
def test_shape_errors_name_the_op_and_shapes(op, call, shapes, recording):
    anchor = variable([1.0])
    with autograd.record() if recording else autograd.pause():
        anchor * 1  # a graph is being recorded around the failing call
        with pytest.raises(mx.base.MXNetShapeError) as info:
            call()
    message = str(info.value)
    assert op in message
    for shape in shapes:
        assert shape in message
    assert isinstance(info.value, mx.MXNetError)
    assert isinstance(info.value, ValueError)


def test_shape_error_while_recording_from_a_variable_raises_at_the_call():
    x = variable(np.ones((2, 3)))
    with autograd.record():
        with pytest.raises(ValueError, match=r"broadcast_add.*\(2, 3\).*\(2,\)"):
            x + nd.ones((2,), dtype=F64)  # noqa: B018
        with pytest.raises(mx.MXNetError, match="dot"):
            nd.dot(x, x)


def test_mixed_dtypes_raise():
    with pytest.raises(mx.MXNetError):
        nd.ones((2,), dtype=F64) + nd.ones((2,), dtype="float32")
