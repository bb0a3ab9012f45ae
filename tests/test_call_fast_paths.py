"""Shortcuts of the recording hot path give what the general path gives: an
``mx.nd`` call with its attributes by keyword (no binding), and an NDArray's
flags read as plain attributes (set in ``__init__``, also after unpickling)."""

import pickle

import numpy as np
import pytest

import symgrad as mx
from symgrad._namespace import NDArrayTypeError


def _x():
    return mx.nd.array(np.arange(12, dtype=np.float32).reshape(3, 4) / 7)


def test_attributes_by_keyword_give_the_bound_call():
    x, y = _x(), mx.nd.array([0, 3, 1])
    expected = mx.nd.log_softmax(x, -1).asnumpy()  # the attribute positional: bound
    np.testing.assert_array_equal(mx.nd.log_softmax(x, axis=-1).asnumpy(), expected)
    # an input by keyword is still bound as the input, not taken as an attribute
    by_name = mx.nd.pick(x, index=y, axis=-1).asnumpy()
    np.testing.assert_array_equal(by_name, mx.nd.pick(x, y, axis=-1).asnumpy())
    out = mx.nd.zeros((3, 4))
    assert mx.nd.log_softmax(x, axis=-1, out=out) is out  # options still honoured
    np.testing.assert_array_equal(out.asnumpy(), expected)


def test_attributes_by_keyword_while_recording_differentiate_as_before():
    x = _x()
    x.attach_grad()
    with mx.autograd.record():
        loss = mx.nd.mean(mx.nd.log_softmax(x, axis=-1), axis=0, exclude=True)
    loss.backward()
    softmax = np.exp(x.asnumpy()) / np.exp(x.asnumpy()).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(x.grad.asnumpy(), (1 - 4 * softmax) / 4, rtol=1e-5, atol=1e-6)


def test_a_numpy_array_by_keyword_is_still_refused():
    with pytest.raises(NDArrayTypeError, match="numpy.ndarray"):
        mx.nd.pick(_x(), index=np.array([0, 1, 2]))
    with pytest.raises(NDArrayTypeError, match="numpy.ndarray"):
        mx.nd.log_softmax(_x(), axis=np.array(1))


def test_an_unpickled_array_has_its_flags():
    x = pickle.loads(pickle.dumps(_x()))
    assert x._fresh_grad is False
    assert x._shared is False and x._leaves is None and x._owner is None
    buffer = np.ones((3, 4), np.float32)
    old = x._write_swapping(buffer)  # a buffer nobody else holds: swapped
    assert x._data is buffer and old is not buffer
    x.attach_grad()
    with mx.autograd.record():
        y = (x * x).sum()
    y.backward()
    assert x._fresh_grad is True
    np.testing.assert_array_equal(x.grad.asnumpy(), 2 * buffer)


def test_canonical_attrs_remembered_per_call_are_those_parsed():
    from symgrad_compiler.registry import (
        NEGATIVE_ZERO,
        Attr,
        OpDef,
        as_float,
        as_int,
        as_str,
        same_as_first,
    )

    op = OpDef(
        name="_remembering",
        infer=same_as_first,
        impl=lambda x, **attrs: x,
        attrs={"s": Attr(as_str, "x"), "n": Attr(as_int, 0), "f": Attr(as_float, 1.0)},
    )
    first = op.canonical_attrs({"s": 1, "n": 2})
    assert first == {"s": "1", "n": 2, "f": 1.0}
    again = op.canonical_attrs({"s": 1, "n": 2})
    assert again == first and again is not first  # remembered, handed out as a copy
    first["n"] = 99  # (Custom adds its callback to the dict it is given)
    assert op.canonical_attrs({"s": 1, "n": 2})["n"] == 2
    # equal values of other types parse apart (1 == True == 1.0, "1" != "True")
    assert op.canonical_attrs({"s": True, "n": 2})["s"] == "True"
    assert op.canonical_attrs({"s": 1.0, "n": 2})["s"] == "1.0"
    # floats are not remembered: -0.0 == 0.0, parsed apart
    assert op.canonical_attrs({"f": 0.0})["f"] == 0.0
    assert op.canonical_attrs({"f": -0.0})["f"] is NEGATIVE_ZERO
    with pytest.raises(Exception, match="bad value"):
        op.canonical_attrs({"n": "two"})  # errors are raised at every call
    with pytest.raises(Exception, match="bad value"):
        op.canonical_attrs({"n": "two"})
    for n in range(1000):  # a call whose attrs change every time: bounded
        assert op.canonical_attrs({"n": n})["n"] == n
    assert len(op._seen) <= 64
