"""BatchNorm's numpy implementation (what a training step runs for every BatchNorm
while recording): its statistics summed over contiguous rows and then in float64,
equal to a float64 reference within float32 rounding for every axis and mode."""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler.registry import get_op

BATCHNORM = get_op("BatchNorm")


def _attrs(**given):
    return BATCHNORM.canonical_attrs({"eps": 1e-5, "fix_gamma": False, "is_train": True, **given})


def _reference(x, gamma, beta, mean, var, axis, eps, fix_gamma):
    shape = [1] * x.ndim
    shape[axis] = -1
    scale = (1.0 if fix_gamma else gamma) / np.sqrt(var + eps)
    return (x - mean.reshape(shape)) * np.reshape(scale, shape) + beta.reshape(shape)


def _run(x, axis=1, **given):
    channels = x.shape[axis]
    rng = np.random.default_rng(3)
    gamma = rng.uniform(0.5, 1.5, channels).astype(x.dtype)
    beta = rng.uniform(-1, 1, channels).astype(x.dtype)
    moving_mean = rng.uniform(-1, 1, channels).astype(x.dtype)
    moving_var = rng.uniform(0.5, 2, channels).astype(x.dtype)
    start = (moving_mean.copy(), moving_var.copy())
    attrs = _attrs(axis=axis, **given)
    out = BATCHNORM.impl(x, gamma, beta, moving_mean, moving_var, **attrs)
    return out, (gamma, beta, moving_mean, moving_var), start, attrs


@pytest.mark.parametrize(
    "shape,axis",
    [((32, 8, 6, 5), 1), ((4, 3, 7), 1), ((6, 5), 1), ((5, 4, 3), -1), ((3, 4, 2, 2), 0)]
    + [((7,), 0)],
)
@pytest.mark.parametrize("is_train", [True, False])
@pytest.mark.parametrize("fix_gamma", [True, False])
def test_matches_the_float64_formula(shape, axis, is_train, fix_gamma):
    x = np.random.default_rng(0).normal(0.5, 2, shape).astype(np.float32)
    (out, mean, inverse_std), (gamma, beta, mm, mv), (mm0, mv0), attrs = _run(
        x, axis, is_train=is_train, fix_gamma=fix_gamma
    )
    assert out.dtype == mean.dtype == inverse_std.dtype == np.float32
    assert out.shape == x.shape
    x64 = x.astype(np.float64)
    ax = axis % x.ndim
    others = tuple(i for i in range(x.ndim) if i != ax)
    if is_train:
        m, v = x64.mean(axis=others), x64.var(axis=others)
        momentum = attrs["momentum"]
        np.testing.assert_allclose(mm, momentum * mm0 + (1 - momentum) * m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mv, momentum * mv0 + (1 - momentum) * v, rtol=1e-5, atol=1e-6)
    else:
        m, v = mm0.astype(np.float64), mv0.astype(np.float64)
        np.testing.assert_array_equal(mm, mm0)  # left alone outside training
    want = _reference(x64, gamma.astype(np.float64), beta, m, v, ax, 1e-5, fix_gamma)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, m, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(inverse_std, 1 / np.sqrt(v + 1e-5), rtol=1e-6)


def test_statistics_of_many_rows_keep_float32_precision():
    """2**21 rows of two channels, one centred at 100: numpy's float32 mean over the
    rows accumulated them one by one (the standard deviation came out 63% off); the
    sums now run over contiguous rows and then in float64."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(0, 1, (1 << 21, 2)) + np.array([100.0, 0.1])).astype(np.float32)
    (out, mean, inverse_std), *_ = _run(x, axis=1)
    x64 = x.astype(np.float64)
    m, v = x64.mean(axis=0), x64.var(axis=0)
    np.testing.assert_allclose(mean, m, rtol=1e-6)
    np.testing.assert_allclose(inverse_std, 1 / np.sqrt(v + 1e-5), rtol=1e-5)


def test_special_values_stay_in_their_channel():
    """A NaN or an infinity makes its own channel's statistics and outputs NaN; the
    other channels are untouched; a constant channel normalises to beta."""
    x = np.random.default_rng(1).normal(0, 1, (4, 4, 3, 3)).astype(np.float32)
    x[1, 0, 2, 2] = np.nan
    x[0, 1, 0, 0] = np.inf
    x[:, 2] = -0.0
    with np.errstate(invalid="ignore"):
        (out, mean, inverse_std), (gamma, beta, *_), _, _ = _run(x)
    assert np.isnan(out[:, :2]).all() and np.isnan(mean[0]) and np.isnan(inverse_std[1])
    np.testing.assert_array_equal(out[:, 2], np.broadcast_to(beta[2], out[:, 2].shape))
    assert np.isfinite(out[:, 3]).all() and np.isfinite(mean[2:]).all()


def test_integer_data_computes_in_float64():
    """Integer data (outside training: integer running statistics cannot take a
    float update, as before) is normalised in float64 and cast back."""
    x = np.arange(24, dtype=np.int64).reshape(2, 3, 4) * 7
    (out, mean, _), (gamma, beta, mm, mv), _, _ = _run(x, is_train=False)
    assert out.dtype == mean.dtype == np.int64
    want = _reference(x.astype(np.float64), gamma, beta, mm, mv, 1, 1e-5, False)
    np.testing.assert_array_equal(out, want.astype(np.int64))
