"""Basic indexing, ``reshape`` and ``detach`` share memory as MXNet's do, and a write
through a view never changes what a recording, a pending value or a training step
reads behind its back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import printed_by_both

import symgrad as mx
from symgrad import autograd, gluon, nd

# Each case: (shape, how the second array is made from x). The script prints, per
# case, the second array's shape and values, and x after writing -5 through it.
SCRIPT = """
import json
import numpy as np
CASES = [
    ((12,), "x[2:5]"), ((12,), "x[5]"), ((12,), "x[-1]"), ((12,), "x[::2]"),
    ((12,), "x[::-1]"), ((12,), "x[None]"), ((12,), "x[...]"), ((12,), "x[:]"),
    ((4, 3), "x[1:3]"), ((4, 3), "x[1]"), ((4, 3), "x[1, 2]"), ((4, 3), "x[1:3, 1]"),
    ((4, 3), "x[:, 1:2]"), ((4, 3), "x[1:2, 1:]"), ((4, 3), "x[1, 0:2]"),
    ((4, 3), "x[::2]"), ((4, 3), "x[1:3:1]"), ((4, 3), "x[1:3, ::1]"), ((4, 3), "x[(1,)]"),
    ((4, 3), "x[..., 1]"), ((4, 3), "x[1, ...]"), ((4, 3), "x[None, 1]"),
    ((4, 3), "x[1, None]"), ((4, 3), "x[np.int64(2)]"), ((4, 3), "x[-3:-1]"),
    ((4, 3), "x[0:100]"), ((4, 3), "x[[1, 2]]"),
    ((2, 4, 3), "x[1, 1:3]"), ((2, 4, 3), "x[:, 1]"), ((2, 4, 3), "x[1, :, 1]"),
    ((2, 4, 3), "x[1, 1, 0:2]"), ((2, 4, 3), "x[0:1, 1]"), ((2, 4, 3), "x[..., 0:1]"),
    ((2, 4, 3), "x[1][2:4]"),
    ((12,), "x.reshape((3, 4))"), ((4, 3), "x.reshape((-1,))"), ((4, 3), "x.reshape(2, 6)"),
    ((4, 3), "x.reshape((0, -1))"), ((4, 3), "mx.nd.reshape(x, shape=(3, 4))"),
    ((4, 3), "x.detach()"), ((4, 3), "x.astype('float32', copy=False)"),
    ((4, 3), "x.astype('float32')"), ((4, 3), "x.copy()"), ((4, 3), "x[1:3].reshape((6,))"),
]
out = []
for shape, make in CASES:
    x = mx.nd.arange(int(np.prod(shape))).reshape(shape).copy()
    y = eval(make)
    entry = [list(y.shape), y.asnumpy().tolist()]
    y[:] = -5
    entry.append(x.asnumpy().tolist())
    out.append(entry)
print(json.dumps(out))
"""


@pytest.mark.interop
def test_indexing_and_reshape_share_memory_as_mxnet(mxnet_python, tmp_path, capsys):
    ours, theirs = map(json.loads, printed_by_both(mxnet_python, SCRIPT, tmp_path, capsys))
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"case {k}"


WRITES = """
import json
cases = ["x[1] = 7", "x[:, 1] = 5", "x[...] = 0", "x[1:3] = mx.nd.array([1, 2, 3])",
         "x[1, 2] = -1", "x[1:3, 0:2] = 9", "x[::2] = 4", "x[-1] = mx.nd.array([[7, 8, 9]])",
         "x[mx.nd.array([0, 2])] = 3", "x[[0, 2]] = 3", "x[1:3] += 1", "x[1] *= 2",
         "x[..., 1] = 6", "x[None, 1] = 1", "x[1][1:3] = 8",
         "x[1:2, ::-1] = mx.nd.array([1, 2, 3])"]
out = []
for case in cases:
    x = mx.nd.arange(12).reshape((4, 3)).copy()
    exec(case)
    out.append(x.asnumpy().tolist())
print(json.dumps(out))
"""


@pytest.mark.interop
def test_writes_through_indices_are_mxnets(mxnet_python, tmp_path, capsys):
    ours, theirs = printed_by_both(mxnet_python, WRITES, tmp_path, capsys)
    assert json.loads(ours) == json.loads(theirs)


def test_a_view_sees_its_owners_writes_and_its_own_views():
    x = nd.arange(24).reshape((2, 4, 3)).copy()
    row = x[1]
    part = row[1:3]
    x[:] = 7
    assert (part.asnumpy() == 7).all()
    part[:] = -1
    assert (x.asnumpy()[1, 1:3] == -1).all() and (row.asnumpy()[1:3] == -1).all()
    part += 10
    assert (x.asnumpy()[1, 1:3] == 9).all()


def test_writing_a_view_keeps_a_recorded_constant_as_it_was_read():
    # the same protection as a write into the array itself: the recording keeps
    # the values it read
    for write in ("view", "owner"):
        x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
        w = nd.ones((2, 3))
        w.attach_grad()
        with autograd.record():
            z = (x * w).sum()
        if write == "view":
            x[0:1][:] = 100
        else:
            x[0:1] = 100
        z.backward()
        np.testing.assert_array_equal(w.grad.asnumpy(), np.arange(6).reshape(2, 3))
        assert z.asscalar() == 15.0


def test_writing_the_owner_keeps_what_a_recording_read_through_a_view():
    x = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    part = x[1]
    w = nd.ones(3)
    w.attach_grad()
    with autograd.record():
        z = (part * w).sum()
    x[:] = 0
    z.backward()
    np.testing.assert_array_equal(w.grad.asnumpy(), [3, 4, 5])


def test_a_pending_value_is_computed_before_a_view_is_written():
    x = nd.array(np.arange(4, dtype=np.float32))
    w = nd.ones(4)
    w.attach_grad()
    with autograd.record():
        y = x * w  # recorded, so its value may still be pending
    x[1:3][:] = 50
    np.testing.assert_array_equal(y.asnumpy(), [0, 1, 2, 3])


def test_gradients_flow_through_recorded_basic_indexing():
    data = np.random.default_rng(0).standard_normal((4, 3))
    x = nd.array(data, dtype=np.float64)
    x.attach_grad()
    with autograd.record():
        y = x[None, 1:3, ...] * x[..., 1][None, :, None][:, 1:3]
        z = (y * y).sum() + x[2, 1] * 3 + x.reshape((3, 4))[0].sum()
    z.backward()
    expected = np.zeros((4, 3))
    a, b = data[1:3], data[1:3, 1:2]
    expected[1:3] += 2 * a * b * b
    expected[1:3, 1] += (2 * a * a * b).sum(axis=1)
    expected[2, 1] += 3
    expected.reshape(3, 4)[0] += 1
    np.testing.assert_allclose(x.grad.asnumpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("hybridize", [False, True])
def test_a_view_of_a_weight_follows_the_trainer(compiled, hybridize):
    rng = np.random.default_rng(1)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(8, activation="relu", in_units=5), gluon.nn.Dense(3, in_units=8))
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    weight = net[0].weight.data()
    first_rows = weight[0:2]
    # a repeated step runs as one compiled program whose new weights take the place
    # of the old buffers unless they are shared (as here); sizes vary too
    for batch in (16, 16, 16, 16, 16, 9, 16, 16):
        X = nd.array(rng.random((batch, 5), dtype=np.float32))
        y = nd.array(rng.integers(0, 3, batch).astype(np.float32))
        with autograd.record():
            L = loss(net(X), y)
        L.backward()
        trainer.step(batch)
        np.testing.assert_array_equal(first_rows.asnumpy(), net[0].weight.data().asnumpy()[0:2])
    assert net[0].weight.data() is weight


def test_copies_stay_copies():
    x = nd.arange(12).reshape((4, 3)).copy()
    for y in (x[::2], x[:, 1], x[[0, 1]], nd.reshape(x, shape=(3, 4)), x.copy()):
        y[:] = -1
    assert (x.asnumpy() >= 0).all()


def test_bad_indices_name_the_problem():
    x = nd.zeros((2, 3))
    with pytest.raises(IndexError, match="out of range for axis 1"):
        x[0, 3]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 1, 2]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(IndexError, match="unsupported index"):
        x["a"]
