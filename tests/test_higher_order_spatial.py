"""Second and third derivatives of the spatial ops (issue 20): BilinearSampler,
SpatialTransformer, ROIPooling and Correlation (both modes).

Each derivative of order k is checked by float64 finite differences of the
recorded derivative of order k - 1 (``op_testing.check_higher_order``). Where
the exact derivative is zero almost everywhere (a max's choice, a sign, a
sampling weight differentiated twice in one direction) the recorded gradient
must still reach the variables, so that differentiating it again writes zeros,
as MXNet does for relu.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd
from symgrad import op_testing as tu

RNG = np.random.default_rng(2020)
DATA = RNG.uniform(-2, 2, (2, 3, 5, 6))
# grid positions inside and a little outside [-1, 1] (corners outside count as zero)
GRID = RNG.uniform(-1.15, 1.15, (2, 2, 4, 3))
LOC = np.array([[0.9, 0.1, 0.05, -0.1, 0.8, 0.1], [1.1, -0.2, 0.0, 0.1, 0.9, -0.05]])
LOC = LOC + RNG.uniform(-0.05, 0.05, LOC.shape)
# distinct values: every bin of ROIPooling has one largest element
POOL_DATA = RNG.permutation(2 * 2 * 8 * 9).reshape(2, 2, 8, 9) / 40.0
ROIS = np.array([[0, 0, 0, 5, 4], [1, 2, 1, 7, 6], [0, 3, 3, 3, 3.0], [1, 0, 0, 8, 7]])
IMAGE1, IMAGE2 = RNG.uniform(-1, 1, (2, 3, 6, 7)), RNG.uniform(-1, 1, (2, 3, 6, 7))

CORRELATIONS = {
    "k3 d1 pad1": {"kernel_size": 3, "max_displacement": 1, "pad_size": 1},
    "k1 d2 stride2=2 pad2": {"kernel_size": 1, "max_displacement": 2, "stride2": 2, "pad_size": 2},
    "k3 d2 stride1=2 pad1": {"kernel_size": 3, "max_displacement": 2, "stride1": 2, "pad_size": 1},
}


def _sampler(data, grid):
    return mx.nd.BilinearSampler(data, grid)


def test_bilinear_sampler_third_order():
    # the mixed x-y second derivative of the weights is not zero; x-x and y-y are
    tu.check_higher_order(_sampler, [DATA, GRID], order=3, what="BilinearSampler")


def test_bilinear_sampler_through_a_nonlinearity():
    def sampled(data, grid):
        return mx.nd.tanh(mx.nd.BilinearSampler(data * data, mx.nd.sin(grid))) * 2

    tu.check_higher_order(sampled, [DATA, GRID], order=2, what="tanh(BilinearSampler)")


def test_bilinear_sampler_of_a_generated_grid():
    # GridGenerator (warp) in front: the grid's gradients pass on to the flow
    flow = RNG.uniform(-0.8, 0.8, (2, 2, 5, 6))

    def warped(data, flow):
        grid = mx.nd.GridGenerator(flow, transform_type="warp")
        return mx.nd.BilinearSampler(data, grid)

    tu.check_higher_order(warped, [DATA, flow], order=2, what="BilinearSampler(warp)")


def test_spatial_transformer_third_order():
    def transformer(data, loc):
        return mx.nd.SpatialTransformer(
            data, loc, target_shape=(4, 3), transform_type="affine", sampler_type="bilinear"
        )

    tu.check_higher_order(transformer, [DATA, LOC], order=3, what="SpatialTransformer")


def _roi_pooling(data):
    return mx.nd.ROIPooling(data, mx.nd.array(ROIS), pooled_size=(2, 3), spatial_scale=1.0)


def test_roi_pooling_third_order():
    # under a nonlinearity, so that the second derivative is not zero
    tu.check_higher_order(
        lambda x: mx.nd.sin(_roi_pooling(x * x)), [POOL_DATA], order=3, what="ROIPooling"
    )


@pytest.mark.parametrize("name", list(CORRELATIONS))
@pytest.mark.parametrize("multiply", [False, True], ids=["absolute", "multiply"])
def test_correlation_third_order(name, multiply):
    attrs = {**CORRELATIONS[name], "is_multiply": multiply}

    def correlation(a, b):
        return mx.nd.sin(mx.nd.Correlation(a * a, b, **attrs))

    tu.check_higher_order(correlation, [IMAGE1, IMAGE2], order=3, what=f"Correlation({name})")


def _second_derivative(function, value):
    """x.grad after differentiating sum(grad(function(x))) again."""
    x = mx.nd.array(value, dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = mx.nd.sum(function(x))
    (first,) = autograd.grad(y, [x], create_graph=True)
    assert first._entry is not None, "the first derivative has no recorded history"
    with autograd.record():
        total = mx.nd.sum(first * 1.0)
    total.backward()
    return first.asnumpy(), x.grad.asnumpy()


PIECEWISE = {
    "ROIPooling": (_roi_pooling, POOL_DATA),
    "Correlation(absolute)": (
        lambda x: mx.nd.Correlation(
            x, mx.nd.array(IMAGE2), is_multiply=False, **CORRELATIONS["k3 d1 pad1"]
        ),
        IMAGE1,
    ),
    "BilinearSampler(data)": (lambda x: _sampler(x, mx.nd.array(GRID)), DATA),
}


@pytest.mark.parametrize("name", list(PIECEWISE))
def test_structural_zero_second_derivative_is_recorded(name):
    # sum(ROIPooling(x)) is piecewise linear in x: its second derivative is zero,
    # and differentiating the recorded first derivative must write those zeros
    function, value = PIECEWISE[name]
    first, second = _second_derivative(function, value)
    assert np.any(first != 0)
    np.testing.assert_array_equal(second, np.zeros_like(value))


def test_sampler_grid_second_derivative_along_one_axis_is_zero():
    # d^2/dx^2 of a bilinear weight is zero: the Hessian in the grid's x alone
    # (y fixed) vanishes, while the mixed x-y part does not
    data, grid = mx.nd.array(DATA, dtype="float64"), mx.nd.array(GRID, dtype="float64")
    grid.attach_grad()
    with autograd.record():
        y = mx.nd.sum(mx.nd.BilinearSampler(data, grid))
    (first,) = autograd.grad(y, [grid], create_graph=True)
    with autograd.record():
        x_part = mx.nd.sum(mx.nd.slice_axis(first, axis=1, begin=0, end=1))
    (second,) = autograd.grad(x_part, [grid])
    second = second.asnumpy()
    np.testing.assert_array_equal(second[:, 0], 0)
    assert np.abs(second[:, 1]).max() > 0.1


@pytest.mark.slow  # compiles numba kernels: about 15 s
def test_second_derivative_on_the_compiled_backend(compiled):
    tu.check_higher_order(_sampler, [DATA[:1], GRID[:1]], order=2, what="BilinearSampler")
    tu.check_higher_order(
        lambda x: mx.nd.sin(_roi_pooling(x * x)), [POOL_DATA], order=2, what="ROIPooling"
    )
