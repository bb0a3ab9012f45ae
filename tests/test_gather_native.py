"""Embedding and its gradient's scatter-add (_take_grad along axis 0) lowered in the
numba backend: compiled equals interpreted, inside one compiled program call,
with sizes and repeated indices varied in one process."""

import warnings

import numpy as np
import pytest

import symgrad_compiler as compiler
from symgrad import autograd, nd


def _embedding_step(tokens, table):
    x = nd.array(tokens)
    w = nd.array(table)
    w.attach_grad()
    with autograd.record():
        e = nd.Embedding(x, w, input_dim=table.shape[0], output_dim=table.shape[1])
        loss = (e * e).sum(axis=-1).mean()
    loss.backward()
    return e.asnumpy(), w.grad.asnumpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_and_its_gradient_compiled_equal_interpreted(dtype, monkeypatch):
    rng = np.random.default_rng(0)
    cases = [((5, 3), 7, 4), ((2,), 3, 2), ((4, 1), 7, 4), ((6, 2), 11, 5)]
    for shape, rows, width in cases:
        # indices out of range and repeated ones: clipped, and their gradients add up
        tokens = rng.integers(-2, rows + 2, shape).astype(np.float32)
        table = rng.uniform(-1, 1, (rows, width)).astype(dtype)
        expected = _embedding_step(tokens, table)
        with monkeypatch.context() as patch:
            patch.setattr(compiler.settings.current(), "backend", "compiled")
            patch.setattr(compiler.settings.current(), "compile", "sync")
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no step-by-step warning
                for _ in range(3):  # interpreter, compile, compiled entry
                    got = _embedding_step(tokens, table)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_the_lowerings_equal_the_numpy_implementations():
    from symgrad_compiler.backends.numba import disk_cache
    from symgrad_compiler.backends.numba.lowerings import LOWERINGS, module_text
    from symgrad_compiler.registry import get_op

    lowerings = [LOWERINGS["Embedding"], LOWERINGS["_take_grad"]]
    module = disk_cache.load(module_text(lowerings))
    rng = np.random.default_rng(1)
    index = np.array([[0, 4], [9, -3], [2.7, 2]], np.float32)
    table = rng.uniform(-1, 1, (5, 3))
    attrs = {"input_dim": 5, "output_dim": 3, "dtype": "float64", "sparse_grad": False}
    got = lowerings[0].run(module.lib_gather_rows, index, table, **attrs)
    np.testing.assert_array_equal(got, get_op("Embedding").impl(index, table, **attrs))
    g = rng.uniform(-1, 1, (3, 2, 3))
    got = lowerings[1].run(module.lib_scatter_add_rows, g, index, table, axis=0, mode="clip")
    want = get_op("_take_grad").impl(g, index, table, axis=0, mode="clip")
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)
