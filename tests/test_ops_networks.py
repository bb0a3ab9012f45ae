"""Operators for real networks (issue 5): forward values against numpy references
written here, float64 finite-difference gradients of every differentiable input
(first and, where twice differentiable, second order), train versus predict
behaviour, numerical stability, shape-polymorphic gradient programs, recurrent
cells built from the ops, and a small CNN that learns.

The per-op TestSpecs give each op the generated checks of test_ops_generated.py;
this file adds the references and the attribute variants those do not reach.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import autograd, nd
from symgrad.op_testing import check_higher_order, check_numeric_gradient

RNG = np.random.default_rng(5)


def uniform(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape)


def arr(x, dtype="float64"):
    """An NDArray of ``x``, float64 unless told (the references are float64)."""
    return nd.array(x, dtype=dtype)


def value(x):
    return x.asnumpy() if isinstance(x, nd.NDArray) else np.asarray(x)


def close(actual, expected, rtol=1e-6, atol=1e-8):
    np.testing.assert_allclose(value(actual), expected, rtol=rtol, atol=atol)


def grad_check(fn, inputs, wrt=None, order=1, rtol=1e-5, atol=1e-6):
    """First-order (and up to ``order``) finite-difference checks of ``fn``."""
    check_numeric_gradient(fn, inputs, wrt, rtol=rtol, atol=atol)
    if order > 1:
        check_higher_order(fn, inputs, order, wrt, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# numpy references (deliberately naive: loops, no im2col)
# ---------------------------------------------------------------------------


def ref_conv2d(x, w, b, stride, pad, dilate, groups):
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dilate[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dilate[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, f, oh, ow))
    per_group = f // groups
    for b_, f_, i, j in itertools.product(range(n), range(f), range(oh), range(ow)):
        g = f_ // per_group
        rows = i * stride[0] + dilate[0] * np.arange(kh)
        cols = j * stride[1] + dilate[1] * np.arange(kw)
        patch = xp[b_, g * cg : (g + 1) * cg][:, rows][:, :, cols]
        out[b_, f_, i, j] = np.sum(patch * w[f_]) + (0 if b is None else b[f_])
    return out


def ref_conv1d(x, w, stride, pad):
    return ref_conv2d(x[:, :, None, :], w[:, :, None, :], None, (1, stride), (0, pad), (1, 1), 1)[
        :, :, 0, :
    ]


def ref_deconv2d(x, w, b, stride, pad, adj, groups):
    """Scatter every input pixel times the kernel into the output, then crop."""
    n, c, h, wd = x.shape
    _, fg, kh, kw = w.shape
    full_h = (h - 1) * stride[0] + kh + adj[0]
    full_w = (wd - 1) * stride[1] + kw + adj[1]
    out = np.zeros((n, fg * groups, full_h, full_w))
    per_group = c // groups
    for b_, c_, i, j in itertools.product(range(n), range(c), range(h), range(wd)):
        g = c_ // per_group
        out[
            b_,
            g * fg : (g + 1) * fg,
            i * stride[0] : i * stride[0] + kh,
            j * stride[1] : j * stride[1] + kw,
        ] += x[b_, c_, i, j] * w[c_]
    out = out[:, :, pad[0] : full_h - pad[0], pad[1] : full_w - pad[1]]
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def ref_pool2d(x, kernel, stride, pad, pool_type, convention="valid", include_pad=True):
    n, c, h, w = x.shape
    rounding = math.ceil if convention == "full" else math.floor
    oh = int(rounding((h + 2 * pad[0] - kernel[0]) / stride[0])) + 1
    ow = int(rounding((w + 2 * pad[1] - kernel[1]) / stride[1])) + 1
    out = np.zeros((n, c, oh, ow))
    for i, j in itertools.product(range(oh), range(ow)):
        top, left = i * stride[0] - pad[0], j * stride[1] - pad[1]
        bottom, right = top + kernel[0], left + kernel[1]
        window = x[:, :, max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)]
        if pool_type == "max":
            out[:, :, i, j] = window.max(axis=(2, 3))
        elif pool_type == "sum":
            out[:, :, i, j] = window.sum(axis=(2, 3))
        else:
            if include_pad:  # the padding counts, the 'full' overhang does not
                count = (min(bottom, h + pad[0]) - top) * (min(right, w + pad[1]) - left)
            else:
                count = window.shape[2] * window.shape[3]
            out[:, :, i, j] = window.sum(axis=(2, 3)) / max(count, 1)
    return out


def ref_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def ref_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def ref_erf(x):
    return np.vectorize(math.erf)(x)


# ---------------------------------------------------------------------------
# Convolution, Deconvolution, Pooling
# ---------------------------------------------------------------------------

CONV_CASES = [
    dict(kernel=(3, 3), stride=(1, 1), pad=(1, 1), dilate=(1, 1), num_group=1),
    dict(kernel=(3, 2), stride=(2, 1), pad=(1, 0), dilate=(1, 2), num_group=2),
    dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0), dilate=(1, 1), num_group=4),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution_2d_matches_reference_and_gradients(case):
    groups = case["num_group"]
    x = uniform(2, 4, 6, 5)
    w = uniform(4, 4 // groups, *case["kernel"])
    b = uniform(4)
    attrs = dict(case, num_filter=4)
    out = nd.Convolution(arr(x), arr(w), arr(b), **attrs)
    close(
        out,
        ref_conv2d(x, w, b, case["stride"], case["pad"], case["dilate"], groups),
        rtol=1e-5,
        atol=1e-5,
    )

    def conv(x, w, b):
        return nd.Convolution(x, w, b, **attrs)

    grad_check(conv, [x, w, b], order=2)


def test_convolution_1d_and_no_bias():
    x, w = uniform(2, 3, 9), uniform(5, 3, 3)
    attrs = dict(kernel=(3,), stride=(2,), pad=(1,), num_filter=5, no_bias=True)
    close(nd.Convolution(arr(x), arr(w), **attrs), ref_conv1d(x, w, 2, 1), atol=1e-5, rtol=1e-5)
    grad_check(lambda x, w: nd.Convolution(x, w, **attrs), [x, w], order=2)


def test_convolution_third_order():
    x, w = uniform(1, 2, 4, 4), uniform(2, 2, 2, 2)

    def cube(x, w):
        y = nd.Convolution(x, w, kernel=(2, 2), num_filter=2, no_bias=True)
        return y * y * y

    check_higher_order(cube, [x, w], order=3, rtol=1e-4, atol=1e-5)


def test_convolution_shape_errors_name_the_op():
    with pytest.raises(mx.MXNetError, match="Convolution"):
        nd.Convolution(
            nd.zeros((1, 3, 5, 5)),
            nd.zeros((4, 2, 3, 3)),
            nd.zeros((4,)),
            kernel=(3, 3),
            num_filter=4,
        )


@pytest.mark.parametrize("adj,target", [((0, 0), ()), ((1, 1), ()), ((0, 0), (6, 8))])
def test_deconvolution_2d(adj, target):
    x, w, b = uniform(2, 4, 3, 4), uniform(4, 3, 3, 3), uniform(6)
    attrs = dict(
        kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=adj, num_filter=6, num_group=2, no_bias=False
    )
    if target:
        attrs["target_shape"] = target
    out = nd.Deconvolution(arr(x), arr(w), arr(b), **attrs)
    if target:
        assert out.shape == (2, 6) + target
    else:
        close(out, ref_deconv2d(x, w, b, (2, 2), (1, 1), adj, 2), atol=1e-5)
    grad_check(lambda x, w, b: nd.Deconvolution(x, w, b, **attrs), [x, w, b], order=2)


def test_deconvolution_is_the_convolution_adjoint():
    x, w = uniform(1, 4, 3, 3), uniform(4, 2, 3, 3)
    y = nd.Deconvolution(arr(x), arr(w), kernel=(3, 3), stride=(2, 2), num_filter=2)
    z = uniform(*y.shape)
    back = nd.Convolution(arr(z), arr(w), kernel=(3, 3), stride=(2, 2), num_filter=4, no_bias=True)
    assert np.isclose(np.sum(value(y) * z), np.sum(x * value(back)))


POOL_CASES = [
    ("max", "valid", True),
    ("avg", "valid", True),
    ("sum", "full", True),
    ("avg", "full", True),
    ("avg", "full", False),
    ("max", "full", True),
]


@pytest.mark.parametrize("pool_type,convention,include_pad", POOL_CASES)
def test_pooling_2d(pool_type, convention, include_pad):
    x = RNG.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7) / 10.0  # no ties
    attrs = dict(
        kernel=(3, 2),
        stride=(2, 2),
        pad=(1, 0),
        pool_type=pool_type,
        pooling_convention=convention,
        count_include_pad=include_pad,
    )
    out = nd.Pooling(arr(x), **attrs)
    close(out, ref_pool2d(x, (3, 2), (2, 2), (1, 0), pool_type, convention, include_pad))
    # max pooling is piecewise linear: its second derivative is zero, still checked
    grad_check(lambda x: nd.Pooling(x, **attrs), [x], order=2)


def test_pooling_full_convention_adds_a_window():
    x = nd.zeros((1, 1, 7, 7))
    assert nd.Pooling(x, kernel=(2, 2), stride=(2, 2)).shape == (1, 1, 3, 3)
    assert nd.Pooling(x, kernel=(2, 2), stride=(2, 2), pooling_convention="full").shape == (
        1,
        1,
        4,
        4,
    )


@pytest.mark.parametrize("pool_type", ["max", "avg", "sum"])
def test_global_and_1d_pooling(pool_type):
    x = uniform(2, 3, 4, 5)
    reduce = {"max": np.max, "avg": np.mean, "sum": np.sum}[pool_type]
    out = nd.Pooling(arr(x), global_pool=True, pool_type=pool_type, kernel=(1, 1))
    close(out, reduce(x, axis=(2, 3), keepdims=True))
    grad_check(lambda x: nd.Pooling(x, global_pool=True, pool_type=pool_type), [x], order=2)
    x1 = uniform(2, 3, 8)
    out1 = nd.Pooling(arr(x1), kernel=(2,), stride=(2,), pool_type=pool_type)
    close(out1, reduce(x1.reshape(2, 3, 4, 2), axis=3))


def test_max_pooling_gradient_goes_to_the_first_maximum():
    x = arr(np.ones((1, 1, 2, 2)))
    x.attach_grad()
    with autograd.record():
        y = nd.Pooling(x, kernel=(2, 2), pool_type="max")
    y.backward()
    close(x.grad, np.array([[[[1.0, 0.0], [0.0, 0.0]]]]))


# ---------------------------------------------------------------------------
# softmax family and losses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("axis,temperature", [(-1, None), (0, None), (1, 2.5)])
def test_softmax_and_log_softmax(axis, temperature):
    x = uniform(3, 4, 2, low=-3, high=3)
    t = temperature or 1.0
    close(nd.softmax(arr(x), axis=axis, temperature=temperature), ref_softmax(x / t, axis))
    close(nd.log_softmax(arr(x), axis=axis, temperature=temperature), ref_log_softmax(x / t, axis))
    for op in (nd.softmax, nd.log_softmax):
        grad_check(lambda x, op=op: op(x, axis=axis, temperature=temperature), [x], order=3)


def test_softmax_family_is_finite_for_huge_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e4, 1e4, 3e4]])
    for op in (nd.softmax, nd.log_softmax):
        logits = arr(x, dtype="float32")
        logits.attach_grad()
        with autograd.record():
            y = op(logits)
        y.backward(arr(uniform(3, 3), dtype="float32"))
        assert np.isfinite(value(y)).all() and np.isfinite(value(logits.grad)).all()
    close(nd.softmax(arr(x)), ref_softmax(x), atol=1e-6)
    label = np.array([1, 0, 2.0])
    logits = arr(x)
    logits.attach_grad()
    with autograd.record():
        loss = nd.softmax_cross_entropy(logits, arr(label))
    loss.backward()
    expected = -ref_log_softmax(x)[np.arange(3), label.astype(int)].sum()
    assert np.isfinite(value(loss)).all() and np.isclose(value(loss)[0], expected, rtol=1e-5)
    assert np.isfinite(value(logits.grad)).all()


def test_softmax_cross_entropy():
    x, label = uniform(4, 5, low=-2, high=2), np.array([0, 4, 2, 2.0])
    out = nd.softmax_cross_entropy(arr(x), arr(label))
    assert out.shape == (1,)
    close(out, [-ref_log_softmax(x)[np.arange(4), label.astype(int)].sum()])
    grad_check(lambda x: nd.softmax_cross_entropy(x, arr(label, dtype="float64")), [x], order=2)


def _softmax_output_grad(x, label, **attrs):
    data = arr(x)
    data.attach_grad()
    with autograd.record():
        y = nd.SoftmaxOutput(data, arr(label, dtype=x.dtype), **attrs)
    y.backward(arr(uniform(*y.shape)))  # ignored unless out_grad
    return value(y), value(data.grad)


def test_softmax_output_backward_is_the_cross_entropy_gradient():
    x, label = uniform(4, 5), np.array([0, 4, -1, 2.0])
    probs, grad = _softmax_output_grad(x, label)
    close(probs, ref_softmax(x))
    onehot = np.eye(5)[label.astype(int).clip(0, 4)]
    close(grad, ref_softmax(x) - onehot)

    _, scaled = _softmax_output_grad(x, label, grad_scale=0.5, normalization="batch")
    close(scaled, (ref_softmax(x) - onehot) * 0.5 / 4)

    _, ignored = _softmax_output_grad(
        x, label, use_ignore=True, ignore_label=-1, normalization="valid"
    )
    keep = (label != -1)[:, None]
    close(ignored, (ref_softmax(x) - onehot) * keep / 3)


def test_softmax_output_multi_output_and_smoothing():
    x, label = uniform(2, 3, 4), np.array([[0, 2, 1, 1], [2, 2, 0, 1.0]])
    probs, grad = _softmax_output_grad(x, label, multi_output=True)
    close(probs, ref_softmax(x, axis=1))
    onehot = np.moveaxis(np.eye(3)[label.astype(int)], -1, 1)
    close(grad, ref_softmax(x, axis=1) - onehot)
    x2, label2 = uniform(3, 4), np.array([1, 0, 3.0])
    _, smooth = _softmax_output_grad(x2, label2, smooth_alpha=0.3)
    target = np.full((3, 4), 0.1)
    target[np.arange(3), label2.astype(int)] = 0.7
    close(smooth, ref_softmax(x2) - target)


def test_softmax_output_gradient_differentiates_as_softmax():
    # d/dx of the SoftmaxOutput gradient is the softmax Jacobian
    x, label = uniform(2, 3), np.array([1, 2.0])
    data = arr(x)
    data.attach_grad()
    with autograd.record():
        y = nd.SoftmaxOutput(data, arr(label, dtype="float64"))
        (g,) = autograd.grad(y, [data], create_graph=True)
        z = (g * arr(np.array([[1.0, 0, 0], [0, 0, 2]]))).sum()
    z.backward()
    p = ref_softmax(x)
    v = np.array([[1.0, 0, 0], [0, 0, 2]])
    expected = p * (v - (p * v).sum(axis=1, keepdims=True))
    close(data.grad, expected)


def test_pick_keepdims_and_modes():
    x, index = uniform(3, 4), np.array([0, 5, -1.0])
    clipped = nd.pick(arr(x), arr(index), axis=1, keepdims=True)
    close(clipped, x[np.arange(3), [0, 3, 0]][:, None])
    wrapped = nd.pick(arr(x), arr(index), axis=1, mode="wrap")
    close(wrapped, x[np.arange(3), [0, 1, 3]])
    grad_check(
        lambda x: nd.pick(x, arr(index, dtype="float64"), axis=1, keepdims=True), [x], order=2
    )


def test_one_hot_argmax_argmin_topk():
    close(
        nd.one_hot(arr([1, 0, 3]), depth=3, on_value=5, off_value=-1),
        [[-1, 5, -1], [5, -1, -1], [-1, -1, -1]],
    )
    x = np.array([[1.0, 3, 3, 0], [2, -1, 5, 5]])
    close(nd.argmax(arr(x), axis=1), [1, 2])
    close(nd.argmin(arr(x), axis=1, keepdims=True), [[3], [1]])
    close(nd.argmax(arr(x)), [6])
    y = RNG.permutation(12).reshape(3, 4) / 3.0
    order = np.argsort(-y, axis=1)[:, :2]
    close(nd.topk(arr(y), k=2), order)
    close(nd.topk(arr(y), k=2, ret_typ="value"), np.take_along_axis(y, order, 1))
    values, indices = nd.topk(arr(y), k=2, ret_typ="both", is_ascend=True, axis=0)
    close(indices, np.argsort(y, axis=0)[:2])
    mask = np.zeros_like(y)
    np.put_along_axis(mask, order, 1, axis=1)
    close(nd.topk(arr(y), k=2, ret_typ="mask"), mask)
    grad_check(lambda y: nd.topk(y, k=2, ret_typ="value"), [y], order=2)
    grad_check(lambda y: nd.topk(y, k=3, axis=None, ret_typ="value"), [y])


def test_argmax_has_no_gradient():
    x = arr(uniform(2, 3))
    x.attach_grad()
    with autograd.record():
        y = nd.argmax(x, axis=1) * x.sum()
    y.backward()
    close(x.grad, np.full((2, 3), value(nd.argmax(x, axis=1)).sum()))


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------


def ref_batchnorm_train(x, gamma, beta, eps, axis=1):
    axes = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return xhat * gamma.reshape(shape) + beta.reshape(shape), mean, var


@pytest.mark.parametrize("axis", [1, -1])
def test_batchnorm_train_versus_predict(axis):
    x = uniform(4, 3, 5) * 3 + 1
    channels = x.shape[axis]
    gamma, beta = uniform(channels, low=0.5, high=1.5), uniform(channels)
    moving_mean, moving_var = (
        nd.zeros((channels,), dtype="float64"),
        nd.ones((channels,), dtype="float64"),
    )
    args = [arr(a) for a in (x, gamma, beta)] + [moving_mean, moving_var]
    with autograd.train_mode():
        out, mean, inv_std = nd.BatchNorm(
            *args, eps=1e-3, momentum=0.8, fix_gamma=False, axis=axis, output_mean_var=True
        )
    expected, batch_mean, batch_var = ref_batchnorm_train(x, gamma, beta, 1e-3, axis % 3)
    close(out, expected)
    close(mean, batch_mean)
    close(inv_std, 1 / np.sqrt(batch_var + 1e-3))
    # the running statistics move towards the batch statistics, in place
    close(moving_mean, 0.2 * batch_mean)
    close(moving_var, 0.8 + 0.2 * batch_var)
    # predict mode normalises with the running statistics and leaves them alone
    predicted = nd.BatchNorm(*args, eps=1e-3, momentum=0.8, fix_gamma=False, axis=axis)
    shape = [1, 1, 1]
    shape[axis] = -1
    running_mean, running_var = 0.2 * batch_mean, 0.8 + 0.2 * batch_var
    close(
        predicted,
        (x - running_mean.reshape(shape))
        / np.sqrt(running_var.reshape(shape) + 1e-3)
        * gamma.reshape(shape)
        + beta.reshape(shape),
    )
    close(moving_mean, running_mean)


def test_batchnorm_fix_gamma_and_global_stats():
    x, gamma, beta = uniform(4, 2), uniform(2) + 2, uniform(2)
    mm, mv = arr([0.5, -0.5], dtype="float64"), arr([2.0, 0.5], dtype="float64")
    with autograd.train_mode():
        out = nd.BatchNorm(arr(x), arr(gamma), arr(beta), mm, mv, use_global_stats=True)
    close(out, (x - value(mm)) / np.sqrt(value(mv) + 1e-3) + beta)
    close(mm, [0.5, -0.5])


def _batchnorm_fn(**attrs):
    def batchnorm(x, gamma, beta):
        channels = x.shape[attrs.get("axis", 1)]
        return nd.BatchNorm(
            x,
            gamma,
            beta,
            nd.zeros((channels,), dtype="float64"),
            nd.ones((channels,), dtype="float64"),
            fix_gamma=False,
            **attrs,
        )

    return batchnorm


def test_batchnorm_gradients_train_second_order_and_predict():
    x, gamma, beta = uniform(4, 3, 2), uniform(3, low=0.5, high=1.5), uniform(3)
    with autograd.train_mode():
        grad_check(_batchnorm_fn(), [x, gamma, beta], order=2, rtol=1e-4)
    with autograd.predict_mode():
        grad_check(_batchnorm_fn(), [x, gamma, beta], order=2)


def test_batchnorm_constant_batch_is_finite():
    x = arr(np.full((5, 2, 3), 7.0), dtype="float32")
    gamma, beta = nd.ones((2,)), nd.zeros((2,))
    x.attach_grad()
    gamma.attach_grad()
    with autograd.record():
        y = nd.BatchNorm(x, gamma, beta, nd.zeros((2,)), nd.ones((2,)), fix_gamma=False)
    y.backward(arr(uniform(5, 2, 3), dtype="float32"))
    assert np.allclose(value(y), 0) and np.isfinite(value(x.grad)).all()
    assert np.isfinite(value(gamma.grad)).all()


def test_layer_norm():
    x, gamma, beta = uniform(3, 4, 5) * 2, uniform(5, low=0.5, high=1.5), uniform(5)
    out, mean, std = nd.LayerNorm(arr(x), arr(gamma), arr(beta), output_mean_var=True)
    ref_mean, ref_std = x.mean(-1, keepdims=True), np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    close(out, (x - ref_mean) / ref_std * gamma + beta)
    close(mean, ref_mean)
    close(std, ref_std)
    grad_check(lambda x, g, b: nd.LayerNorm(x, g, b), [x, gamma, beta], order=2, rtol=1e-4)
    x1, g1, b1 = uniform(3, 4, 2), uniform(4), uniform(4)
    grad_check(
        lambda x, g, b: nd.LayerNorm(x, g, b, axis=1, eps=1e-3), [x1, g1, b1], order=2, rtol=1e-4
    )


def test_instance_norm():
    x, gamma, beta = uniform(2, 3, 4, 2) * 2, uniform(3, low=0.5, high=1.5), uniform(3)
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    shape = (1, 3, 1, 1)
    close(
        nd.InstanceNorm(arr(x), arr(gamma), arr(beta), eps=1e-3),
        (x - mean) / np.sqrt(var + 1e-3) * gamma.reshape(shape) + beta.reshape(shape),
    )
    grad_check(lambda x, g, b: nd.InstanceNorm(x, g, b), [x, gamma, beta], order=2, rtol=1e-4)


@pytest.mark.parametrize(
    "mode,axes", [("instance", (1, 2, 3)), ("channel", (1,)), ("spatial", (2, 3))]
)
def test_l2_normalization(mode, axes):
    x = uniform(2, 3, 2, 2)
    close(
        nd.L2Normalization(arr(x), mode=mode),
        x / np.sqrt((x * x).sum(axis=axes, keepdims=True) + 1e-10),
    )
    grad_check(lambda x: nd.L2Normalization(x, mode=mode), [x], order=2)


@pytest.mark.parametrize("ord_", [1, 2])
def test_norm(ord_):
    x = uniform(3, 4) + np.sign(uniform(3, 4)) * 0.2  # away from the kink of |x|
    reference = np.abs(x).sum(axis=1) if ord_ == 1 else np.sqrt((x * x).sum(axis=1))
    close(nd.norm(arr(x), ord=ord_, axis=1), reference)
    close(nd.norm(arr(x), ord=ord_), [np.abs(x).sum() if ord_ == 1 else np.sqrt((x * x).sum())])
    grad_check(
        lambda x: nd.norm(x, ord=ord_, axis=1, keepdims=True), [x], order=2 if ord_ == 2 else 1
    )


def test_nansum_skips_nans_in_value_and_gradient():
    x = arr([[1.0, np.nan], [2.0, 3.0]], dtype="float64")
    x.attach_grad()
    with autograd.record():
        y = nd.nansum(x, axis=1)
    y.backward()
    close(y, [1.0, 5.0])
    close(x.grad, [[1.0, 0.0], [1.0, 1.0]])


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------


def ref_leaky(x, act_type, slope=0.25, gamma=None):
    if act_type == "leaky":
        return np.where(x > 0, x, slope * x)
    if act_type == "prelu":
        return np.where(x > 0, x, gamma.reshape(1, -1, 1) * x)
    if act_type == "elu":
        return np.where(x > 0, x, slope * (np.exp(np.minimum(x, 0)) - 1))
    if act_type == "selu":
        alpha, scale = 1.6732632423543772, 1.0507009873554805
        return scale * np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))
    return 0.5 * x * (1 + ref_erf(x / np.sqrt(2)))


@pytest.mark.parametrize("act_type", ["leaky", "elu", "selu", "gelu"])
def test_leaky_relu_family(act_type):
    x = uniform(3, 4, 2, low=-3, high=3)
    x[np.abs(x) < 0.05] = 0.3  # finite differences stay off the kink at 0
    close(nd.LeakyReLU(arr(x), act_type=act_type, slope=0.3), ref_leaky(x, act_type, 0.3))
    grad_check(
        lambda x: nd.LeakyReLU(x, act_type=act_type, slope=0.3),
        [x],
        order=3 if act_type == "gelu" else 2,
    )


def test_leaky_relu_elu_does_not_overflow():
    x = arr([1000.0, -1000.0], dtype="float32")
    x.attach_grad()
    with autograd.record():
        y = nd.LeakyReLU(x, act_type="elu")
    y.backward()
    assert np.isfinite(value(y)).all() and np.isfinite(value(x.grad)).all()


def test_prelu_learns_its_slope():
    x, gamma = uniform(2, 3, 4, low=-2, high=2), uniform(3, low=0.1, high=0.5)
    x[np.abs(x) < 0.05] = 0.3
    close(nd.LeakyReLU(arr(x), arr(gamma), act_type="prelu"), ref_leaky(x, "prelu", gamma=gamma))
    grad_check(lambda x, g: nd.LeakyReLU(x, g, act_type="prelu"), [x, gamma], order=2)
    shared = uniform(1, low=0.1, high=0.5)
    grad_check(lambda x, g: nd.LeakyReLU(x, g, act_type="prelu"), [x, shared])


ELEMENTWISE = {
    "hard_sigmoid": (lambda x: np.clip(0.2 * x + 0.5, 0, 1), (-4, 4), 1),
    "log_sigmoid": (lambda x: -np.log1p(np.exp(-x)), (-4, 4), 3),
    "mish": (lambda x: x * np.tanh(np.log1p(np.exp(x))), (-4, 4), 3),
    "erfinv": (None, (-0.95, 0.95), 2),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_activations(name):
    reference, (low, high), order = ELEMENTWISE[name]
    x = uniform(3, 5, low=low, high=high)
    out = getattr(nd, name)(arr(x))
    if reference is None:  # erfinv: check that erf undoes it
        close(ref_erf(value(out)), x, atol=1e-12)
    else:
        close(out, reference(x))
    grad_check(getattr(nd, name), [x], order=order)


def test_activation_op_takes_the_new_act_types():
    x = uniform(2, 3)
    close(nd.Activation(arr(x), act_type="mish"), value(nd.mish(arr(x))))
    close(nd.Activation(arr(x), act_type="softrelu"), np.log1p(np.exp(x)))
    grad_check(lambda x: nd.Activation(x, act_type="log_sigmoid"), [x], order=2)


def test_log_sigmoid_and_erfinv_limits():
    close(nd.log_sigmoid(arr([-1e4, 1e4])), [-1e4, 0.0])
    close(nd.erfinv(arr([0.0, 1.0, -1.0], dtype="float64")), [0.0, np.inf, -np.inf])


# ---------------------------------------------------------------------------
# embedding and indexing
# ---------------------------------------------------------------------------


def test_embedding_accumulates_repeated_indices():
    weight = uniform(5, 3)
    data = np.array([[0, 3], [3, 3]], dtype=np.float64)
    out = nd.Embedding(arr(data), arr(weight), input_dim=5, output_dim=3)
    close(out, weight[data.astype(int)])
    w = arr(weight)
    w.attach_grad()
    with autograd.record():
        y = nd.Embedding(arr(data), w, input_dim=5, output_dim=3)
    y.backward()
    expected = np.zeros((5, 3))
    expected[0], expected[3] = 1, 3
    close(w.grad, expected)
    grad_check(
        lambda w: nd.Embedding(arr(data, dtype="float64"), w, input_dim=5, output_dim=3),
        [weight],
        order=2,
    )


@pytest.mark.parametrize("mode", ["clip", "wrap"])
def test_take_modes(mode):
    a, index = uniform(4, 3), np.array([[0, 5], [-1, 2.0]])
    expected = np.take(
        a,
        np.clip(index.astype(int), 0, 3) if mode == "clip" else np.mod(index.astype(int), 4),
        axis=0,
    )
    close(nd.take(arr(a), arr(index), mode=mode), expected)
    grad_check(lambda a: nd.take(a, arr(index, dtype="float64"), mode=mode), [a], order=2)


def test_gather_nd_and_scatter_nd():
    data = uniform(3, 4, 2)
    indices = np.array([[0, 2, 2], [1, 3, 1.0]])
    close(nd.gather_nd(arr(data), arr(indices)), data[[0, 2, 2], [1, 3, 1]])
    grad_check(lambda d: nd.gather_nd(d, arr(indices, dtype="float64")), [data], order=2)
    updates = uniform(2, 2)
    scatter_index = np.array([[0, 2], [1, 3.0]])
    expected = np.zeros((3, 4, 2))
    expected[[0, 2], [1, 3]] = updates
    close(nd.scatter_nd(arr(updates), arr(scatter_index), shape=(3, 4, 2)), expected)
    grad_check(
        lambda u: nd.scatter_nd(u, arr(scatter_index, dtype="float64"), shape=(3, 4, 2)),
        [updates],
        order=2,
    )


def test_where_clip_slice_swapaxes_squeeze():
    cond, x, y = (RNG.random((3, 4)) > 0.5).astype(float), uniform(3, 4), uniform(3, 4)
    close(nd.where(arr(cond), arr(x), arr(y)), np.where(cond, x, y))
    grad_check(lambda x, y: nd.where(arr(cond, dtype="float64"), x, y), [x, y], order=2)
    x[np.abs(np.abs(x) - 0.5) < 0.05] = 0.2
    close(nd.clip(arr(x), -0.5, 0.5), np.clip(x, -0.5, 0.5))
    grad_check(lambda x: nd.clip(x, -0.5, 0.5), [x])
    z = uniform(4, 5, 3)
    sliced = nd.slice(arr(z), begin=(1, None, 2), end=(None, -1, None), step=(2, 2, -1))
    close(sliced, z[1::2, :-1:2, 2::-1])
    grad_check(lambda z: nd.slice(z, begin=(1, None), end=(None, -1), step=(2, 2)), [z], order=2)
    close(nd.swapaxes(arr(z), 0, 2), np.swapaxes(z, 0, 2))
    close(nd.squeeze(arr(z[:, :1])), z[:, 0])
    grad_check(lambda z: nd.squeeze(nd.swapaxes(z, 0, 1)[:1], axis=0), [z])


def test_tile_repeat_pad_reverse():
    x = uniform(2, 3)
    close(nd.tile(arr(x), reps=(2, 1, 3)), np.tile(x, (2, 1, 3)))
    grad_check(lambda x: nd.tile(x, reps=(2, 2)), [x], order=2)
    close(nd.repeat(arr(x), repeats=3, axis=0), np.repeat(x, 3, axis=0))
    close(nd.repeat(arr(x), repeats=2), np.repeat(x, 2))
    grad_check(lambda x: nd.repeat(x, repeats=2, axis=1), [x], order=2)
    grad_check(lambda x: nd.repeat(x, repeats=2), [x])
    image = uniform(1, 2, 3, 4)
    width = (0, 0, 0, 0, 1, 2, 2, 1)
    for mode in ("constant", "edge", "reflect"):
        expected = np.pad(
            image,
            ((0, 0), (0, 0), (1, 2), (2, 1)),
            mode=mode,
            **({"constant_values": 0.5} if mode == "constant" else {}),
        )
        close(nd.pad(arr(image), mode=mode, pad_width=width, constant_value=0.5), expected)
        grad_check(lambda i, mode=mode: nd.pad(i, mode=mode, pad_width=width), [image], order=2)
    close(nd.flip(arr(x), axis=1), x[:, ::-1])
    close(nd.reverse(arr(image), axis=(1, 3)), image[:, ::-1, :, ::-1])
    grad_check(lambda x: nd.reverse(x, axis=0), [x], order=2)


def test_sort_and_argsort():
    x = RNG.permutation(12).reshape(3, 4) / 5.0
    close(nd.sort(arr(x)), np.sort(x, axis=1))
    close(nd.sort(arr(x), axis=0, is_ascend=False), -np.sort(-x, axis=0))
    close(nd.sort(arr(x), axis=None), np.sort(x, axis=None))
    close(nd.argsort(arr(x)), np.argsort(x, axis=1))
    grad_check(lambda x: nd.sort(x, axis=0), [x], order=2)
    grad_check(lambda x: nd.sort(x, axis=None), [x])
    y = arr(x)
    y.attach_grad()
    with autograd.record():
        z = nd.argsort(y, dtype="float64") * y
    z.backward()
    close(y.grad, np.argsort(x, axis=1))  # no gradient flows through the indices


# ---------------------------------------------------------------------------
# sequence ops
# ---------------------------------------------------------------------------


def test_sequence_mask_last_reverse():
    x = uniform(4, 3, 2)
    lengths = np.array([2, 4, 1.0])
    steps = np.arange(4)[:, None] < lengths[None, :]
    close(
        nd.SequenceMask(arr(x), arr(lengths), use_sequence_length=True, value=-7),
        np.where(steps[:, :, None], x, -7),
    )
    close(nd.SequenceMask(arr(x)), x)
    close(nd.SequenceLast(arr(x), arr(lengths), use_sequence_length=True), x[[1, 3, 0], [0, 1, 2]])
    close(nd.SequenceLast(arr(x)), x[-1])
    reversed_ = x.copy()
    for n, length in enumerate(lengths.astype(int)):
        reversed_[:length, n] = x[:length, n][::-1]
    close(nd.SequenceReverse(arr(x), arr(lengths), use_sequence_length=True), reversed_)
    close(nd.SequenceReverse(arr(x)), x[::-1])
    batch_major = np.swapaxes(x, 0, 1)
    close(
        nd.SequenceLast(arr(batch_major), arr(lengths), use_sequence_length=True, axis=1),
        x[[1, 3, 0], [0, 1, 2]],
    )
    length_array = arr(lengths, dtype="float64")
    for op in (nd.SequenceMask, nd.SequenceLast, nd.SequenceReverse):
        grad_check(lambda x, op=op: op(x, length_array, use_sequence_length=True), [x], order=2)
        grad_check(lambda x, op=op: op(x), [x])
    grad_check(
        lambda x: nd.SequenceLast(x, length_array, use_sequence_length=True, axis=1),
        [batch_major],
        order=2,
    )


# ---------------------------------------------------------------------------
# gradient programs do not bake sizes: a new batch size reuses the program
# ---------------------------------------------------------------------------


def _conv_net_grads(batch):
    rng = np.random.default_rng(batch)
    x = arr(rng.uniform(-1, 1, (batch, 2, 7, 6)), dtype="float64")
    params = [
        arr(rng.uniform(-0.5, 0.5, s), dtype="float64")
        for s in ((3, 2, 3, 3), (3,), (3,), (3,), (4, 27), (4,))
    ]
    for p in params:
        p.attach_grad()
    w, b, gamma, beta, fc_w, fc_b = params
    label = arr(rng.integers(0, 4, batch), dtype="float64")
    with autograd.record():
        h = nd.Convolution(x, w, b, kernel=(3, 3), stride=(2, 1), pad=(1, 1), num_filter=3)
        h = nd.BatchNorm(
            h,
            gamma,
            beta,
            nd.zeros((3,), dtype="float64"),
            nd.ones((3,), dtype="float64"),
            fix_gamma=False,
        )
        h = nd.Pooling(nd.relu(h), kernel=(2, 2), stride=(2, 2), pooling_convention="full")
        h = nd.Pooling(h, global_pool=True, pool_type="avg")
        h = nd.FullyConnected(
            nd.pad(h, mode="edge", pad_width=(0, 0, 0, 0, 1, 1, 0, 2)), fc_w, fc_b, num_hidden=4
        )
        loss = nd.softmax_cross_entropy(h, label)  # no "/ batch": a size in an attr
    loss.backward()
    return params


def test_new_batch_size_reuses_the_gradient_program():
    _conv_net_grads(4)
    before = compiler.stats()
    params = _conv_net_grads(6)
    after = compiler.stats()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
    assert all(p.grad.shape == p.shape and np.isfinite(value(p.grad)).all() for p in params)


# ---------------------------------------------------------------------------
# recurrent cells built from the ops
# ---------------------------------------------------------------------------


def lstm_cell(x, h, c, w_x, w_h, bias):
    gates = nd.FullyConnected(x, w_x, bias, num_hidden=w_x.shape[0]) + nd.FullyConnected(
        h, w_h, no_bias=True, num_hidden=w_h.shape[0]
    )
    i, f, g, o = nd.split(gates, num_outputs=4, axis=1)
    c = nd.sigmoid(f) * c + nd.sigmoid(i) * nd.tanh(g)
    return nd.sigmoid(o) * nd.tanh(c), c


def gru_cell(x, h, w_x, w_h, b_x, b_h):
    hidden = h.shape[1]
    gx = nd.FullyConnected(x, w_x, b_x, num_hidden=3 * hidden)
    gh = nd.FullyConnected(h, w_h, b_h, num_hidden=3 * hidden)
    rx, zx, nx = nd.split(gx, num_outputs=3, axis=1)
    rh, zh, nh = nd.split(gh, num_outputs=3, axis=1)
    r, z = nd.sigmoid(rx + rh), nd.sigmoid(zx + zh)
    n = nd.tanh(nx + r * nh)
    return (1 - z) * n + z * h


def numpy_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_lstm_over_a_padded_batch():
    steps, batch, features, hidden = 4, 3, 2, 3
    xs = uniform(steps, batch, features)
    lengths = np.array([4, 2, 3.0])
    w_x, w_h, bias = uniform(4 * hidden, features), uniform(4 * hidden, hidden), uniform(4 * hidden)

    def run(xs, w_x, w_h, bias):
        h = c = nd.zeros((batch, hidden), dtype="float64")
        outputs = []
        for t in range(steps):
            h, c = lstm_cell(xs[t], h, c, w_x, w_h, bias)
            outputs.append(h)
        seq = nd.stack(*outputs, axis=0)
        return nd.SequenceLast(seq, arr(lengths, dtype="float64"), use_sequence_length=True)

    out = run(arr(xs), arr(w_x), arr(w_h), arr(bias))
    h, c = np.zeros((batch, hidden)), np.zeros((batch, hidden))
    history = []
    for t in range(steps):
        gates = xs[t] @ w_x.T + bias + h @ w_h.T
        i, f, g, o = np.split(gates, 4, axis=1)
        c = numpy_sigmoid(f) * c + numpy_sigmoid(i) * np.tanh(g)
        h = numpy_sigmoid(o) * np.tanh(c)
        history.append(h)
    close(out, np.stack(history)[lengths.astype(int) - 1, np.arange(batch)])
    grad_check(run, [xs, w_x, w_h, bias], rtol=1e-4)


def test_gru_cell_second_order():
    x, h = uniform(2, 3), uniform(2, 4)
    params = [uniform(12, 3), uniform(12, 4), uniform(12), uniform(12)]
    grad_check(gru_cell, [x, h] + params, order=2, rtol=1e-4)


# ---------------------------------------------------------------------------
# a small CNN learns; its recorded graph survives a JSON round trip
# ---------------------------------------------------------------------------


def test_small_cnn_trains_and_exports():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "examples" / "train_cnn.py"
    spec = importlib.util.spec_from_file_location("train_cnn", path)
    train_cnn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_cnn)
    losses, net, params, images = train_cnn.train(steps=30, seed=0)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses

    with autograd.record(train_mode=False):
        logits = net(arr(images[:8], dtype="float32"), params)
    symbol = autograd.get_symbol(logits)
    restored = mx.sym.load_json(symbol.tojson())
    assert restored.tojson() == symbol.tojson()
    names = restored.list_inputs()
    values = {
        node.name: node.value[0] for node in compiler.topo_order(symbol.entries) if node.is_variable
    }
    (replayed,) = restored.eval(**{name: arr(values[name]) for name in names})
    close(replayed, value(logits), rtol=1e-5, atol=1e-6)
