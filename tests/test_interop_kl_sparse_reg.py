"""IdentityAttachKLSparseReg updates its moving average when MXNet 1.9.1 does: in
the backward pass (each one), never in a forward pass, training or not.

The executor script runs unchanged on real MXNet and on symgrad; MXNet's numbers
are the reference. The nd cases have no MXNet counterpart (MXNet's nd function
cannot take the auxiliary array) and check the same rule through autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad

pytestmark = pytest.mark.interop

SCRIPT = """
import numpy as np

def run(mx, x):
    data = mx.sym.var("data")
    net = mx.sym.IdentityAttachKLSparseReg(
        data, sparseness_target=0.15, penalty=0.02, momentum=0.7, name="kl"
    )
    ex = net.simple_bind(mx.cpu(), data=x.shape, grad_req="write")  # the average's inferred
    ex.aux_dict["kl_moving_avg"][:] = 0.4
    ex.arg_dict["data"][:] = x
    results = {}
    # forward passes alone, training or not, leave the average alone
    for step in range(2):
        ex.forward(is_train=True)
        mx.nd.waitall()
        results[f"avg_train_forward{step}"] = ex.aux_dict["kl_moving_avg"].asnumpy()
    ex.forward(is_train=False)
    mx.nd.waitall()
    results["avg_predict_forward"] = ex.aux_dict["kl_moving_avg"].asnumpy()
    # each backward updates it once, and its gradient reads the updated value
    ex.forward(is_train=True)
    for step in range(2):
        ex.backward(mx.nd.ones(x.shape) * 0.5)
        mx.nd.waitall()
        results[f"avg_backward{step}"] = ex.aux_dict["kl_moving_avg"].asnumpy()
        results[f"grad{step}"] = ex.grad_dict["data"].asnumpy()
    ex.arg_dict["data"][:] = x[::-1] * 0.5
    ex.forward(is_train=True)
    ex.backward(mx.nd.ones(x.shape))
    mx.nd.waitall()
    results["avg_new_data"] = ex.aux_dict["kl_moving_avg"].asnumpy()
    results["grad_new_data"] = ex.grad_dict["data"].asnumpy()
    results["out"] = ex.outputs[0].asnumpy()
    return results
"""

X = np.random.default_rng(7).uniform(0.05, 0.95, (5, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def mxnet_results(mxnet_python, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("kl")
    np.save(workdir / "x.npy", X)
    main = 'import mxnet as mx\nnp.savez("mxnet.npz", **run(mx, np.load("x.npy")))\n'
    run_mxnet(mxnet_python, SCRIPT + main, workdir)
    return dict(np.load(workdir / "mxnet.npz"))


@pytest.mark.parametrize("backend", ["interpreter", "compiled"])
def test_executor_updates_the_average_in_backward_as_mxnet(
    mxnet_results, backend, monkeypatch, request
):
    if backend == "compiled":
        request.getfixturevalue("compiled")
    namespace: dict = {}
    exec(SCRIPT, namespace)
    actual = namespace["run"](symgrad, X)
    assert sorted(actual) == sorted(mxnet_results)
    np.testing.assert_array_equal(mxnet_results["avg_train_forward0"], np.full(4, 0.4, "f4"))
    for key, expected in mxnet_results.items():
        np.testing.assert_allclose(actual[key], expected, rtol=2e-6, atol=1e-7, err_msg=key)


def _kl(x, avg):
    return symgrad.nd.IdentityAttachKLSparseReg(
        x, avg, sparseness_target=0.15, penalty=0.02, momentum=0.7
    )


def test_forward_under_record_leaves_the_average():
    x, avg = symgrad.nd.array(X), symgrad.nd.full((4,), 0.4)
    x.attach_grad()
    with symgrad.autograd.record():
        y = _kl(x, avg)
    y.wait_to_read()
    np.testing.assert_array_equal(avg.asnumpy(), np.full(4, 0.4, "f4"))
    np.testing.assert_array_equal(y.asnumpy(), X)


@pytest.mark.parametrize("backend", ["interpreter", "compiled"])
def test_autograd_backward_updates_the_average_once_per_pass(backend, request):
    if backend == "compiled":
        request.getfixturevalue("compiled")
    x, avg = symgrad.nd.array(X), symgrad.nd.full((4,), 0.4)
    x.attach_grad()
    expected = np.full(4, 0.4)
    for _ in range(4):  # the interpreter, then the compiled program
        with symgrad.autograd.record():
            y = _kl(x, avg)
        y.backward()
        expected = 0.7 * expected + 0.3 * X.mean(axis=0, dtype=np.float64)
        np.testing.assert_allclose(avg.asnumpy(), expected, rtol=1e-6)
        penalty = 0.02 * (-0.15 / expected + 0.85 / (1 - expected))
        np.testing.assert_allclose(x.grad.asnumpy(), 1 + penalty[None, :].repeat(5, 0), rtol=1e-6)
