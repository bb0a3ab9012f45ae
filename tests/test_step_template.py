"""The step template (compiler/tape.py ``Template``, used by autograd.backward):
a recording with the structure of the previous backward's graph is recognised
op by op while it is recorded and reuses that backward's program without a key.
It must give exactly what the key path gives, and never be taken for a
recording that differs in op, attrs, wiring, leaf types or leaf roles."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad_compiler
import symgrad_compiler as compiler
from symgrad import _state, autograd, nd
from symgrad_compiler.tape import Tape


def marked(values, grad_req="write"):
    array = nd.array(values, dtype="float64")
    array.attach_grad(grad_req=grad_req)
    return array


def mlp(x, w, b, scale=2.0, axis=1):
    return nd.log_softmax(nd.tanh(nd.dot(x, w) + b * scale), axis=axis).sum()


@pytest.fixture
def params():
    rng = np.random.default_rng(0)
    return (
        nd.array(rng.normal(size=(4, 3)), dtype="float64"),
        marked(rng.normal(size=(3, 5))),
        marked(rng.normal(size=5)),
    )


@pytest.fixture(autouse=True)
def sync(monkeypatch):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    _state.template.set(None)  # no template from another test


def step(build, *args, **kwargs):
    """Record ``build(*args)`` and differentiate it; returns whether the tape
    recognised the template, the head's value and the marked arrays' gradients."""
    with autograd.record():
        head = build(*args, **kwargs)
    tape = _state.last_tape.get()
    recognised = (
        tape.recognise(
            head._entry, lambda node: None if node.marked is None else node.marked._grad_req
        )
        is not None
    )
    head.backward()
    grads = [
        a.grad.asnumpy().copy() for a in args if isinstance(a, nd.NDArray) and a.grad is not None
    ]
    return recognised, head.asnumpy().copy(), grads


def walked(monkeypatch, build, *args, **kwargs):
    """The same step with the template and the tape's key turned off."""
    with monkeypatch.context() as patch:
        patch.setattr(Tape, "recognise", lambda self, head, role: None)
        patch.setattr(Tape, "signature", lambda self, head, role: None)
        return step(build, *args, **kwargs)[1:]


def assert_same(got, expected):
    (value, grads), (expected_value, expected_grads) = got, expected
    assert len(grads) == len(expected_grads)
    for a, b in zip([value, *grads], [expected_value, *expected_grads]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("backend", ["compiled", "interpreter"])
def test_the_second_step_is_recognised_and_equals_the_key_path(monkeypatch, params, backend):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
    first, *_ = step(mlp, *params)
    assert not first  # nothing to recognise yet
    hits = compiler.stats()["hits"]
    misses = compiler.stats()["misses"]
    recognised, *result = step(mlp, *params)
    assert recognised
    assert compiler.stats()["hits"] == hits + 1 and compiler.stats()["misses"] == misses
    assert_same(result, walked(monkeypatch, mlp, *params))


def test_new_values_and_new_arrays_of_the_same_types_are_read(monkeypatch, params):
    x, w, b = params
    step(mlp, x, w, b)
    rng = np.random.default_rng(1)
    x2 = nd.array(rng.normal(size=(4, 3)), dtype="float64")  # another constant
    w[:] = nd.array(rng.normal(size=(3, 5)), dtype="float64")  # new values in place
    recognised, *result = step(mlp, x2, w, b)
    assert recognised
    assert_same(result, walked(monkeypatch, mlp, x2, w, b))


@pytest.mark.parametrize(
    "change", ["attrs", "axis", "op", "wiring", "shape", "dtype", "role", "longer", "shorter"]
)
def test_a_different_recording_is_not_recognised(monkeypatch, params, change):
    x, w, b = params
    step(mlp, x, w, b)
    build, args, kwargs = mlp, [x, w, b], {}
    if change == "attrs":
        kwargs = {"scale": 3.0}
    elif change == "axis":
        args = [nd.array(np.ones((5, 3)), dtype="float64"), w, marked(np.ones(1))]
        kwargs = {"axis": 0}
    elif change == "op":

        def build(x, w, b):
            return nd.log_softmax(nd.sigmoid(nd.dot(x, w) + b * 2.0), axis=1).sum()
    elif change == "wiring":

        def build(x, w, b):
            return nd.log_softmax(nd.tanh(nd.dot(x, w) + w[0] * 2.0), axis=1).sum()
    elif change == "shape":
        args = [nd.array(np.ones((6, 3)), dtype="float64"), w, b]
    elif change == "dtype":
        args = [
            x.astype("float32"),
            marked(w.asnumpy()).astype("float32"),
            marked(b.asnumpy()).astype("float32"),
        ]
        for a in args[1:]:
            a.attach_grad()
    elif change == "role":
        b.attach_grad(grad_req="add")
        b.grad[:] = 1.0
    elif change == "longer":

        def build(x, w, b):
            return mlp(x, w, b) * 3.0
    elif change == "shorter":

        def build(x, w, b):
            return nd.log_softmax(nd.tanh(nd.dot(x, w) + b * 2.0), axis=1)

    recognised, *result = step(build, *args, **kwargs)
    assert not recognised
    if change == "role":
        b.grad[:] = 1.0
    assert_same(result, walked(monkeypatch, build, *args, **kwargs))


def test_a_leaf_read_twice_is_not_taken_for_two_leaves(monkeypatch):
    a, c = marked(np.linspace(-1, 1, 4)), marked(np.linspace(0, 1, 4))
    step(lambda p, q: (p * q).sum(), a, c)
    recognised, *result = step(lambda p, q: (p * p).sum(), a, c)
    assert not recognised
    assert_same(result, walked(monkeypatch, lambda p, q: (p * p).sum(), a, c))


def test_clearing_the_cache_builds_the_program_again(params):
    step(mlp, *params)
    compiler.clear_cache()
    recognised, *_ = step(mlp, *params)
    assert recognised  # the structure is the same ...
    assert compiler.stats()["misses"] == 1  # ... but the program is built anew


def test_a_recognised_step_under_other_conditions_finds_its_cached_program(params):
    x, w, b = params
    kept = []

    def keeping(x, w, b):  # mlp, holding on to an intermediate array
        hidden = nd.dot(x, w)
        kept.append(hidden)
        return nd.log_softmax(nd.tanh(hidden + b * 2.0), axis=1).sum()

    compiler.clear_cache()
    step(mlp, x, w, b)
    recognised, *_ = step(keeping, x, w, b)  # the program must also compute `hidden`
    assert recognised and compiler.stats()["misses"] == 2
    kept.clear()
    recognised, *_ = step(mlp, x, w, b)
    assert recognised and compiler.stats()["misses"] == 2  # the first program, from the cache


def test_a_program_for_other_live_arrays_is_not_reused(monkeypatch, params):
    x, w, b = params
    step(mlp, x, w, b)
    with autograd.record():
        hidden = nd.tanh(nd.dot(x, w) + b * 2.0)
        head = nd.log_softmax(hidden, axis=1).sum()
    head.backward()  # `hidden` is alive: the program also computes its value
    np.testing.assert_allclose(
        hidden.asnumpy(), np.tanh(x.asnumpy() @ w.asnumpy() + 2.0 * b.asnumpy())
    )
    np.testing.assert_allclose(head.asnumpy(), walked(monkeypatch, mlp, x, w, b)[0])


def test_the_template_is_per_thread(params):
    import contextvars
    import threading

    step(mlp, *params)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(step(mlp, *params)[0]))
    worker.start()
    worker.join()
    assert seen == [False]  # a new thread starts with no template
    step(mlp, *params)
    with autograd.record():
        context = contextvars.copy_context()  # the recording's tape, shared
        shared = []
        worker = threading.Thread(target=lambda: shared.append(context.run(mlp, *params)))
        worker.start()
        worker.join()
        head = mlp(*params)
    tape = _state.last_tape.get()
    assert not tape.matching  # ops from another thread: no matching on this tape
    head.backward()


class Scale(autograd.Function):
    """y = 3x, with a hand-written backward (a user callback in the graph)."""

    def forward(self, x):
        return x * 3.0

    def backward(self, dy):
        return dy * 3.0


def test_a_step_with_a_user_function_keeps_no_template(monkeypatch, params):
    import gc

    x, w, b = params

    def build(x, w, b):
        return Scale()(mlp(x, w, b))

    step(build, x, w, b)
    assert _state.template.get() is None  # a program made for one call is kept by nobody
    recognised, *result = step(build, x, w, b)
    assert not recognised
    gc.collect()
    # no callback kept alive (type(), not isinstance: a dead weak proxy some other
    # library keeps, dask's say, raises ReferenceError under isinstance)
    assert not any(type(o) is Scale for o in gc.get_objects())
    assert_same(result, walked(monkeypatch, build, x, w, b))
    assert np.allclose(w.grad.asnumpy(), 3.0 * walked(monkeypatch, mlp, x, w, b)[1][0])


# ---------------------------------------------------------------------------
# chains (compiler/chains.py ChainTemplate): recognised at backward, by one walk
# ---------------------------------------------------------------------------


def cycle(x, ops=("sin", "mul", "add", "tanh", "exp"), length=20, scale=1.01):
    """W3's op cycle, ``length`` ops long."""
    v = x
    for i in range(length):
        kind = ops[i % len(ops)]
        v = v * scale if kind == "mul" else v + 0.1 if kind == "add" else getattr(nd, kind)(v)
    return v.sum()


def chain_step(build, x, **kwargs):
    """Record ``build(x)``, note whether the chain template recognises it, and
    differentiate it; returns (recognised, value, [x's gradient])."""
    with autograd.record():
        head = build(x, **kwargs)
    chain = _state.chain_template.get()
    recognised = (
        chain is not None
        and chain.recognise(
            head._entry, lambda node: None if node.marked is None else node.marked._grad_req
        )
        is not None
    )
    head.backward()
    return recognised, head.asnumpy().copy(), [x.grad.asnumpy().copy()]


def chain_walked(monkeypatch, build, x, **kwargs):
    from symgrad import recognition
    from symgrad_compiler.chains import ChainTemplate

    with monkeypatch.context() as patch:
        patch.setattr(ChainTemplate, "recognise", lambda self, head, role: None)
        patch.setattr(recognition, "chain_signature", lambda head, role: None)
        return chain_step(build, x, **kwargs)[1:]


@pytest.fixture
def chain_input():
    _state.chain_template.set(None)
    return marked(np.linspace(-1, 1, 16))


@pytest.mark.parametrize("backend", ["compiled", "interpreter"])
def test_the_second_chain_is_recognised_and_equals_the_key_path(monkeypatch, chain_input, backend):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
    assert not chain_step(cycle, chain_input)[0]
    misses = compiler.stats()["misses"]
    recognised, *result = chain_step(cycle, chain_input)
    assert recognised and compiler.stats()["misses"] == misses
    assert_same(result, chain_walked(monkeypatch, cycle, chain_input))


@pytest.mark.parametrize(
    "change", ["op", "scale", "length", "dtype", "size-one", "role", "not-a-chain", "negative-zero"]
)
def test_a_different_chain_is_not_recognised(monkeypatch, chain_input, change):
    x = chain_input
    chain_step(cycle, x, scale=0.0)
    build, kwargs = cycle, {"scale": 0.0}
    if change == "op":
        kwargs["ops"] = ("sin", "mul", "add", "tanh", "sigmoid")
    elif change == "scale":
        kwargs["scale"] = 2.0
    elif change == "length":
        kwargs["length"] = 21
    elif change == "dtype":
        x = marked(x.asnumpy()).astype("float32")
        x.attach_grad()
    elif change == "size-one":
        x = marked(np.ones(1))
    elif change == "role":
        x.attach_grad(grad_req="add")
    elif change == "not-a-chain":

        def build(x, **kwargs):
            return cycle(x, **kwargs) * x.sum()
    elif change == "negative-zero":
        kwargs["scale"] = -0.0
    recognised, *result = chain_step(build, x, **kwargs)
    assert not recognised
    if change == "role":
        x.grad[:] = 0.0
    assert_same(result, chain_walked(monkeypatch, build, x, **kwargs))
