"""Keys from the recording's tape (compiler/tape.py): the same nodes as the graph
walk, keys equal exactly for equal structures, and a decline (the walk takes
over) for every graph the tape does not hold whole."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import symgrad_compiler
import symgrad_compiler as compiler
from symgrad import _state, autograd, nd
from symgrad.autograd import _leaf_role
from symgrad_compiler.tape import Tape


def marked(values, dtype="float64", grad_req="write"):
    array = nd.array(values, dtype=dtype)
    array.attach_grad(grad_req=grad_req)
    return array


def mlp(x, w, b, scale=2.0):
    return nd.log_softmax(nd.dot(x, w) + b * scale, axis=1).sum()


def recorded(build, *args, **kwargs):
    with autograd.record():
        head = build(*args, **kwargs)
    return head, _state.last_tape.get()


def tape_key(build, *args, **kwargs):
    head, tape = recorded(build, *args, **kwargs)
    found = tape.signature(head._entry, _leaf_role)
    assert found is not None
    return found[1]


@pytest.fixture
def params():
    rng = np.random.default_rng(0)
    return (
        nd.array(rng.normal(size=(4, 3)), dtype="float64"),
        marked(rng.normal(size=(3, 5))),
        marked(rng.normal(size=5)),
    )


def test_the_tape_lists_the_nodes_the_walk_finds(params):
    head, tape = recorded(mlp, *params)
    nodes, key, position, _ = tape.signature(head._entry, _leaf_role)
    walked, _, _ = compiler.ir.signature([head._entry], _leaf_role)
    assert {id(n) for n in nodes} == {id(n) for n in walked} and len(nodes) == len(walked)
    assert all(position[id(n)] == i for i, n in enumerate(nodes))
    # inputs before readers
    assert all(position[id(e.node)] < i for i, n in enumerate(nodes) for e in n.inputs)
    assert key[0][0] == "tape" and key[1] == ((len(nodes) - 1, 0),)


def test_tape_keys_are_equal_exactly_for_equal_structures(params):
    x, w, b = params
    assert tape_key(mlp, x, w, b) == tape_key(mlp, x, w, b)
    rows = nd.array(np.ones((7, 3)), dtype="float64")
    assert tape_key(mlp, x, w, b) == tape_key(mlp, rows, w, b)  # sizes
    assert tape_key(mlp, x, w, b) != tape_key(mlp, x, w, b, scale=3.0)  # attrs
    row = nd.array(np.ones((1, 3)), dtype="float64")
    assert tape_key(mlp, x, w, b) != tape_key(mlp, row, w, b)  # length-one axes
    assert tape_key(mlp, x, w, b) != tape_key(
        mlp, x.astype("float32"), marked(w.asnumpy(), "float32"), marked(b.asnumpy(), "float32")
    )  # dtypes
    assert tape_key(mlp, x, w, b) != tape_key(mlp, x, w, marked(b.asnumpy(), grad_req="add"))
    v = marked(np.ones(3))
    assert tape_key(lambda a, c: (a * c).sum(), v, marked(np.ones(3))) != tape_key(
        lambda a, c: (a * a).sum(), v, marked(np.ones(3))
    )  # wiring


def test_a_role_changed_after_recording_is_in_the_key(params):
    x, w, b = params
    head, tape = recorded(mlp, x, w, b)
    before = tape.signature(head._entry, _leaf_role)[1]
    w.attach_grad(grad_req="add")
    assert tape.signature(head._entry, _leaf_role)[1] != before


def test_graphs_the_tape_does_not_hold_whole_are_declined(params):
    x, w, b = params
    with autograd.record():
        head = mlp(x, w, b)
        later = head * 2  # the head is not the last op recorded
    assert _state.last_tape.get().signature(head._entry, _leaf_role) is None
    assert _state.last_tape.get().signature(later._entry, _leaf_role) is not None
    with autograd.record():
        unused = nd.exp(w)  # noqa: F841 (an op the head does not need)
        head = mlp(x, w, b)
    assert _state.last_tape.get().signature(head._entry, _leaf_role) is None
    with autograd.record():
        hidden = nd.dot(x, w)
    with autograd.record():
        head = nd.tanh(hidden).sum()  # reads an op of the earlier block
    assert _state.last_tape.get().signature(head._entry, _leaf_role) is None


def test_recording_scopes_and_tapes():
    assert not autograd.is_recording()
    with autograd.record():
        outer = _state.last_tape.get()
        assert isinstance(outer, Tape) and autograd.is_recording() is True
        with autograd.record():
            assert _state.last_tape.get() is outer  # nested: the same tape
        with autograd.pause():
            assert autograd.is_recording() is False
        assert _state.recording.get() is outer
    assert autograd.set_recording(True) is False
    assert autograd.set_recording(False) is True
    assert _state.last_tape.get() is not outer


@pytest.mark.parametrize("backend", ["compiled", "interpreter"])
def test_gradients_through_the_tape_equal_the_walks(monkeypatch, params, backend):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    x, w, b = params

    def gradients():
        for _ in range(2):
            head, _ = recorded(mlp, x, w, b)
            head.backward()
        return head.asnumpy(), w.grad.asnumpy().copy(), b.grad.asnumpy().copy()

    taped = gradients()
    monkeypatch.setattr(Tape, "signature", lambda self, head, role: None)
    monkeypatch.setattr(Tape, "recognise", lambda self, head, role: None)
    walked = gradients()
    for got, expected in zip(taped, walked):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_backward_lets_go_of_the_tape(params):
    head, tape = recorded(mlp, *params)
    head.backward()
    assert _state.last_tape.get() is None
    head, tape = recorded(mlp, *params)
    head.backward(retain_graph=True)
    assert _state.last_tape.get() is tape


def test_the_tape_does_not_keep_a_graph_nobody_differentiates(params):
    with autograd.record():
        head = mlp(*params)
    node = weakref.ref(head._entry.node)
    head.asnumpy()  # an evaluation under record(): values computed, no backward
    del head
    gc.collect()
    assert node() is None
    assert all(ref() is None for ref in _state.last_tape.get().ops)  # only dead references
