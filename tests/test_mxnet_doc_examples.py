"""The examples of MXNet 1.x's autograd documentation, run as written with
``import symgrad as mx``, and ``examples/quickstart.py`` run as a script.

The examples come from the docstrings of ``mxnet.autograd`` (``grad``,
``Function``) and from MXNet's autograd guide; each test keeps the code of the
example and checks the result the documentation prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad as mx
from symgrad import autograd, nd

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _state_off():
    autograd.set_recording(False)
    autograd.set_training(False)
    yield
    autograd.set_recording(False)
    autograd.set_training(False)


def test_x_times_x_plus_one():
    x = mx.nd.array([1, 2, 3, 4])
    x.attach_grad()
    with mx.autograd.record():
        y = x * x + 1
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [2, 4, 6, 8])
    assert repr(x.grad) == "\n[2. 4. 6. 8.]\n<NDArray 4 @cpu(0)>"


def test_guide_two_x_squared():
    x = nd.array([[1, 2], [3, 4]])
    x.attach_grad()
    with autograd.record():
        y = 2 * x * x
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [[4, 8], [12, 16]])


def test_guide_head_gradient():
    x = nd.array([1, 2, 3, 4])
    x.attach_grad()
    with autograd.record():
        y = x * 2
        z = y * x
    head_gradient = nd.array([10, 1, 0.1, 0.01])
    z.backward(head_gradient)
    np.testing.assert_allclose(
        x.grad.asnumpy(),
        4 * np.array([1, 2, 3, 4]) * np.array([10, 1, 0.1, 0.01], np.float32),
        rtol=1e-6,
    )


def test_guide_detach():
    x = nd.array([1, 2, 3, 4])
    x.attach_grad()
    with autograd.record():
        y = x * x
        u = y.detach()
        z = u * x
    z.backward()
    np.testing.assert_array_equal((x.grad == u).asnumpy(), [1, 1, 1, 1])


def test_guide_python_control_flow():
    """The guide's ``f(a)`` with loops and branches on values; ``b.norm()`` is
    written as ``nd.sqrt((b * b).sum())`` (norm is not among symgrad's ops)."""

    def f(a):
        b = a * 2
        while nd.sqrt((b * b).sum()).asscalar() < 1000:
            b = b * 2
        if b.sum().asscalar() >= 0:
            c = b
        else:
            c = 100 * b
        return c

    mx.random.seed(0)
    a = nd.random.normal(shape=2)
    a.attach_grad()
    with autograd.record():
        c = f(a)
    c.backward()
    np.testing.assert_allclose(a.grad.asnumpy(), (c / a).asnumpy(), rtol=1e-6)


def test_is_training_inside_record():
    assert not autograd.is_training()
    with autograd.record():
        assert autograd.is_training()
    with autograd.record(train_mode=False):
        assert not autograd.is_training()


def test_dropout_train_and_predict():
    """The guide's Dropout example (with ``nd.Dropout`` for Gluon's block)."""
    mx.random.seed(2)
    data = mx.nd.ones(shape=(3, 3))
    with autograd.record(train_mode=False):
        output = nd.Dropout(data, p=0.5)
    np.testing.assert_array_equal(output.asnumpy(), np.ones((3, 3)))
    with autograd.record(train_mode=True):
        output = nd.Dropout(data, p=0.5)
    values = output.asnumpy()
    assert set(np.unique(values)) <= {0.0, 2.0}
    big = nd.ones((100, 100))
    with autograd.record(train_mode=True):
        dropped = nd.Dropout(big, p=0.5).asnumpy()
    assert set(np.unique(dropped)) == {0.0, 2.0}
    assert abs((dropped == 0).mean() - 0.5) < 0.03


@pytest.mark.parametrize("inside_record", [False, True])
def test_grad_create_graph_docstring(inside_record):
    """``mx.autograd.grad``'s docstring (and MXNet's test_gradient)."""
    x = mx.nd.ones((1,))
    x.attach_grad()
    with mx.autograd.record():
        z = mx.nd.elemwise_add(mx.nd.exp(x), x)
        if inside_record:
            dx = mx.autograd.grad(z, [x], create_graph=True)
    if not inside_record:
        dx = mx.autograd.grad(z, [x], create_graph=True)
    assert isinstance(dx, list) and len(dx) == 1
    assert abs(dx[0].asscalar() - 3.71828175) < 1e-6
    assert repr(dx[0]).endswith("<NDArray 1 @cpu(0)>")
    dx[0].backward()
    assert abs(x.grad.asscalar() - 2.71828175) < 1e-6


def test_grad_create_graph_float64_precision():
    x = mx.nd.ones((1,), dtype="float64")
    x.attach_grad()
    with mx.autograd.record():
        z = mx.nd.elemwise_add(mx.nd.exp(x), x)
    (dx,) = mx.autograd.grad(z, [x], create_graph=True)
    assert abs(dx.asscalar() - (np.e + 1)) < 1e-14
    dx.backward()
    assert abs(x.grad.asscalar() - np.e) < 1e-14


class sigmoid(mx.autograd.Function):  # noqa: N801  (the name the docs use)
    def forward(self, x):
        y = 1 / (1 + mx.nd.exp(-x))
        self.save_for_backward(y)
        return y

    def backward(self, dy):
        # backward takes as many inputs as forward's return value,
        # and returns as many NDArrays as forward's arguments.
        (y,) = self.saved_tensors
        return dy * y * (1 - y)


def test_function_stable_sigmoid_docstring():
    func = sigmoid()
    x = mx.nd.random.uniform(shape=(10,))
    x.attach_grad()

    with mx.autograd.record():
        m = func(x)
        m.backward()
    dx = x.grad.asnumpy()

    values = x.asnumpy().astype(np.float64)
    s = 1 / (1 + np.exp(-values))
    np.testing.assert_allclose(m.asnumpy(), s, rtol=1e-6)
    np.testing.assert_allclose(dx, s * (1 - s), rtol=1e-5)


def test_function_stable_sigmoid_matches_builtin_sigmoid_in_float64():
    values = np.linspace(-6, 6, 13)
    x = nd.array(values, dtype="float64")
    x.attach_grad()
    with autograd.record():
        m = sigmoid()(x)
    m.backward()
    y = nd.array(values, dtype="float64")
    y.attach_grad()
    with autograd.record():
        n = nd.sigmoid(y)
    n.backward()
    np.testing.assert_allclose(m.asnumpy(), n.asnumpy(), rtol=1e-14)
    np.testing.assert_allclose(x.grad.asnumpy(), y.grad.asnumpy(), rtol=1e-13)


def test_predict_mode_docstring_pattern():
    """``predict_mode``'s docstring: sample in predict mode inside a recording."""
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y = x * 3
        with autograd.predict_mode():
            y = nd.Dropout(y, p=0.5)  # identity in predict mode
        autograd.backward([y])
    np.testing.assert_array_equal(y.asnumpy(), [3.0, 6.0, 9.0])
    np.testing.assert_array_equal(x.grad.asnumpy(), [3.0, 3.0, 3.0])


# ---------------------------------------------------------------------------
# examples/quickstart.py as a script
# ---------------------------------------------------------------------------


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", text)])


def _after(output: str, label: str) -> np.ndarray:
    match = re.search(re.escape(label) + r"\s*\[([^\]]*)\]", output)
    assert match, f"{label!r} not in the quick start's output:\n{output}"
    return _numbers(match.group(1))


def test_quickstart_script_runs_and_prints_the_documented_results():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout
    np.testing.assert_allclose(_after(output, "y ="), [2, 5, 10, 17])
    np.testing.assert_allclose(_after(output, "dy/dx = "), [2, 4, 6, 8])
    train = _numbers(re.search(r"train:\s*(.*)", output).group(1))
    predict = _numbers(re.search(r"predict:\s*(.*)", output).group(1))
    assert train.size == predict.size == 12
    assert set(train) <= {0.0, 2.0}
    np.testing.assert_array_equal(predict, np.ones(12))
    higher = re.search(r"dy/dx = \[([^\]]*)\]\s+d2y/dx2 = \[([^\]]*)\]", output)
    assert higher, output
    np.testing.assert_allclose(_numbers(higher.group(1)), [np.e + 1], rtol=1e-6)
    np.testing.assert_allclose(_numbers(higher.group(2)), [np.e], rtol=1e-6)
    s = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 2.0])))
    np.testing.assert_allclose(_after(output, "sigmoid ="), s, rtol=1e-6)
    np.testing.assert_allclose(_after(output, "grad ="), s * (1 - s), rtol=1e-6)
    assert re.search(r"arguments: \['\w+'\]\s+outputs: \['sum\d*_output'\]", output)
    assert '"nodes"' in output
    assert "quick start done" in output
