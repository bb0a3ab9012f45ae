"""The fast paths for small graphs (W3-sized: compute is negligible, overhead is
not): chain keys in backward, one-kernel programs run directly, and replay's hot
path into a program's whole-program entry. Each fast path must give what the
general one gives."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler
import symgrad_compiler as compiler
from symgrad import autograd, nd
from symgrad.autograd import _leaf_role
from symgrad_compiler import wait_for_compilation
from symgrad_compiler.backends.numba import disk_cache as cache
from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.lowerings import rows
from symgrad_compiler.chains import chain_signature


def use_sync(monkeypatch) -> None:
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", "compiled")
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")


def recorded(build, x: nd.NDArray):
    with autograd.record():
        return build(x)


def chain(v):
    return nd.exp(nd.tanh(v * 1.5 + 0.1)).sum()


# ---------------------------------------------------------------------------
# chain keys
# ---------------------------------------------------------------------------


def test_chain_signature_lists_the_nodes_as_the_walk_does():
    x = nd.array(np.linspace(-1, 1, 4))
    x.attach_grad()
    head = recorded(chain, x)._entry
    nodes, key, position = chain_signature(head, _leaf_role)
    walked, _, walked_position = compiler.ir.signature([head], _leaf_role)
    assert nodes == walked and position == walked_position
    assert key[1] == ((len(nodes) - 1, 0),)


def test_chain_signature_declines_graphs_that_are_not_chains():
    x = nd.array(np.linspace(-1, 1, 4))
    x.attach_grad()
    assert chain_signature(recorded(lambda v: (v * v).sum(), x)._entry, _leaf_role) is None
    assert chain_signature(recorded(lambda v: (nd.sin(v) + v).sum(), x)._entry, _leaf_role) is None


def test_chain_keys_are_equal_exactly_for_equal_structures():
    def key(build, x):
        return chain_signature(recorded(build, x)._entry, _leaf_role)[1]

    def marked(values, dtype="float64", grad_req="write"):
        array = nd.array(values, dtype=dtype)
        array.attach_grad(grad_req=grad_req)
        return array

    x = marked(np.linspace(-1, 1, 4))
    assert key(chain, x) == key(chain, x)
    assert key(lambda v: (v * 2.0).sum(), x) != key(lambda v: (v * 3.0).sum(), x)
    assert key(lambda v: nd.sin(v).sum(), x) != key(lambda v: nd.cos(v).sum(), x)
    assert key(chain, x) != key(lambda v: nd.tanh(v * 1.5 + 0.1).sum(), x)
    assert key(chain, x) == key(chain, marked(np.linspace(-1, 1, 7)))  # sizes are not in it
    assert key(chain, x) != key(chain, marked([0.5]))  # length-one axes are
    assert key(chain, x) != key(chain, marked(np.linspace(-1, 1, 4), "float32"))
    assert key(chain, x) != key(chain, marked(np.linspace(-1, 1, 4), grad_req="add"))


@pytest.mark.parametrize("backend", ["compiled", "interpreter"])
def test_chains_differing_in_an_attr_get_their_own_programs(monkeypatch, backend):
    monkeypatch.setattr(symgrad_compiler.settings.current(), "backend", backend)
    monkeypatch.setattr(symgrad_compiler.settings.current(), "compile", "sync")
    x = nd.array(np.linspace(-1, 1, 5))
    x.attach_grad()
    for scale in (2.0, 3.0, 2.0, 3.0):
        with autograd.record():
            f = (x * scale).sum()
        f.backward()
        assert np.allclose(x.grad.asnumpy(), scale)


def test_chain_backward_matches_the_closed_form_with_write_and_add(monkeypatch):
    use_sync(monkeypatch)
    values = np.linspace(-1, 1, 6)
    t = np.tanh(values * 1.5 + 0.1)
    expected = np.exp(t) * (1 - t * t) * 1.5
    for req, factor in (("write", 1), ("add", 3)):
        x = nd.array(values, dtype="float64")
        x.attach_grad(grad_req=req)
        for _ in range(3):
            f = recorded(chain, x)
            f.backward()
        assert np.allclose(f.asnumpy(), np.exp(t).sum())
        assert np.allclose(x.grad.asnumpy(), factor * expected)


# ---------------------------------------------------------------------------
# one-kernel programs run directly
# ---------------------------------------------------------------------------


def w3_like():
    v = mx.sym.var("x")
    for i in range(10):
        v = (mx.sym.sin, lambda s: s * 1.01, lambda s: s + 0.1, mx.sym.tanh, mx.sym.exp)[i % 5](v)
    return mx.sym.sum(v)


def w3_like_reference(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Value and gradient of ``w3_like`` in float64 numpy."""
    v, d = x.astype(np.float64), np.ones(x.shape)
    for i in range(10):
        op = i % 5
        if op == 0:
            v, d = np.sin(v), d * np.cos(v)
        elif op == 1:
            v, d = v * 1.01, d * 1.01
        elif op == 2:
            v = v + 0.1
        elif op == 3:
            v = np.tanh(v)
            d = d * (1 - v * v)
        else:
            v = np.exp(v)
            d = d * v
    return v.sum(), d


def test_direct_runs_agree_and_never_reuse_what_the_caller_holds(monkeypatch):
    use_sync(monkeypatch)
    f = mx.compile(w3_like(), wrt=["x"])
    rng = np.random.default_rng(3)
    held = []
    for n in (16, 16, 5, 16, 5):
        x = rng.uniform(-1, 1, n).astype(np.float32)
        value, grads = f(x=x)
        expected_value, expected_grad = w3_like_reference(x)
        assert np.allclose(value, expected_value, rtol=1e-4)
        assert np.allclose(grads["x"], expected_grad, rtol=1e-4)
        held.append((x, value.copy(), grads["x"].copy(), value, grads["x"]))
    assert f._direct, "the one-kernel program should run directly"
    for _, value_copy, grad_copy, value, grad in held:
        assert np.array_equal(value, value_copy) and np.array_equal(grad, grad_copy)
    ids = {id(a) for item in held for a in item[3:]}
    assert len(ids) == 2 * len(held)


def test_an_output_that_is_an_input_is_copied_on_the_direct_path(monkeypatch):
    use_sync(monkeypatch)
    x = mx.sym.var("x")
    f = mx.compile(mx.sym.Group([x * 1.0, mx.sym.tanh(x)]), wrt=["x"])
    data = np.arange(4, dtype=np.float64)
    for _ in range(3):
        (same, tanh), grads = f(x=data)
        assert same is not data and np.array_equal(same, data)
        assert np.allclose(tanh, np.tanh(data))
        assert np.allclose(grads["x"], 2 - np.tanh(data) ** 2)
        same[:] = -1
        assert data[1] == 1.0
    assert f._direct, "one kernel whose first output is the input: the direct path"


def test_loops_big_enough_to_split_leave_the_direct_path(monkeypatch):
    use_sync(monkeypatch)
    monkeypatch.setattr(threads, "MINIMUM", 64)
    f = mx.compile(mx.sym.sum(mx.sym.tanh(mx.sym.var("x"))), wrt=["x"])
    for n in (8, 8, 1000, 8, 1000):
        x = np.linspace(-1, 1, n)
        value, grads = f(x=x)
        assert value == pytest.approx(np.tanh(x).sum())
        assert np.allclose(grads["x"], 1 - np.tanh(x) ** 2)
    assert f._direct
    run = next(iter(f._direct.values()))
    assert run.specialised([np.zeros(8)]) is not None
    assert run.specialised([np.zeros(1000)]) is None  # threads: the general path


def test_direct_calls_from_several_threads_with_different_sizes(monkeypatch):
    use_sync(monkeypatch)
    f = mx.compile(mx.sym.sum(mx.sym.exp(mx.sym.var("x") * 0.5)), wrt=["x"])
    f(x=np.zeros(3))
    wait_for_compilation()
    failures = []

    def work(n: int) -> None:
        x = np.linspace(0, 1, n)
        for _ in range(300):
            value, grads = f(x=x)
            if not (
                np.isclose(value, np.exp(x * 0.5).sum())
                and np.allclose(grads["x"], 0.5 * np.exp(x * 0.5))
            ):
                failures.append(n)
                return

    workers = [threading.Thread(target=work, args=(n,)) for n in (3, 4, 5, 6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures


def test_hot_calls_never_write_into_results_returned(monkeypatch):
    use_sync(monkeypatch)
    f = mx.compile(mx.sym.sum(mx.sym.tanh(mx.sym.var("x"))), wrt=["x"])
    x = np.linspace(-1, 1, 4)
    for _ in range(3):
        f(x=x)
    assert f._hot is not None
    value, grads = f(x=x)
    kept_value, kept_grad = value, grads["x"][:2]  # a view keeps its base alive
    del value, grads
    value, grads = f(x=2 * x)
    assert np.allclose(kept_value, np.tanh(x).sum())
    assert np.allclose(kept_grad, (1 - np.tanh(x[:2]) ** 2))
    assert np.allclose(grads["x"], 1 - np.tanh(2 * x) ** 2)
    held = grads["x"]
    value, grads = f(x=x)
    assert grads["x"] is not held and np.allclose(held, 1 - np.tanh(2 * x) ** 2)
    assert np.allclose(grads["x"], 1 - np.tanh(x) ** 2)
    assert np.allclose(value, np.tanh(x).sum())


def test_hot_calls_with_reuse_outputs_write_again(monkeypatch):
    use_sync(monkeypatch)
    symbol = mx.sym.sum(mx.sym.tanh(mx.sym.var("x")))
    f = mx.compile(symbol, wrt=["x"], reuse_outputs=True)
    x = np.linspace(-1, 1, 4)
    for _ in range(3):
        f(x=x)
    assert f._hot is not None
    value, grads = f(x=x)
    dropped = weakref.ref(grads["x"])
    del value, grads
    value, grads = f(x=x)
    # declared: written again, not reallocated
    assert grads["x"] is dropped()
    assert np.allclose(grads["x"], 1 - np.tanh(x) ** 2)
    assert np.allclose(value, np.tanh(x).sum())


def test_calls_unlike_the_last_one_leave_the_hot_path(monkeypatch):
    use_sync(monkeypatch)
    f = mx.compile(mx.sym.sum(mx.sym.tanh(mx.sym.var("x")) * mx.sym.var("y")), wrt=["x"])
    x, y = np.linspace(-1, 1, 4), np.linspace(0, 1, 4)

    def check(value, grads, x, y):
        assert np.allclose(
            np.asarray(value.asnumpy() if isinstance(value, nd.NDArray) else value),
            (np.tanh(x) * y).sum(),
        )
        grad = grads["x"]
        grad = grad.asnumpy() if isinstance(grad, nd.NDArray) else grad
        assert np.allclose(grad, (1 - np.tanh(x) ** 2) * y)

    for _ in range(3):
        check(*f(x=x, y=y), x, y)
    assert f._hot is not None and f._hot.__name__ == "hot"  # shapes worked out once
    value, grads = f(x=nd.array(x, dtype="float64"), y=y)  # an NDArray: NDArray results
    assert isinstance(value, nd.NDArray) and isinstance(grads["x"], nd.NDArray)
    check(value, grads, x, y)
    check(*f(x=list(x), y=y), x, y)  # a list: converted
    check(*f(x=x[::-1].copy(), y=y[::-1]), x[::-1], y[::-1])  # a view of another layout
    check(*f(x=x.astype(np.float32), y=y.astype(np.float32)), x, y)  # other dtypes
    check(*f(x=x[:3], y=y[:3]), x[:3], y[:3])  # other shapes
    check(*f(x=x, y=y), x, y)
    with pytest.raises(mx.base.MXNetError, match="no input named"):
        f(x=x, y=y, z=y)
    with pytest.raises(mx.base.MXNetError, match="no value given"):
        f(x=x, z=y)
    value, grads = f(np.full((1,), 2.0), x=x, y=y)  # head gradients: the general path
    assert np.allclose(grads["x"], 2 * (1 - np.tanh(x) ** 2) * y)


# ---------------------------------------------------------------------------
# programs that run as one compiled call (the whole-program entry)
# ---------------------------------------------------------------------------


def mlp_symbol():
    X, W, b, y = (mx.sym.var(name) for name in ("X", "W", "b", "y"))
    z = mx.sym.broadcast_add(mx.sym.dot(X, W), b)
    return -mx.sym.mean(mx.sym.pick(mx.sym.log_softmax(mx.sym.tanh(z), axis=1), y, axis=1))


def mlp_inputs(batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "X": rng.standard_normal((batch, 40)),
        "W": rng.standard_normal((40, 30)) / 6,
        "b": rng.standard_normal(30),
        "y": rng.integers(0, 30, batch).astype(np.float64),
    }


def mlp_reference(X, W, b, y):
    """The value and the gradients w.r.t. W and b, written out."""
    h = np.tanh(X @ W + b)
    p = np.exp(h - h.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    value = -np.log(p[rows, y.astype(int)]).mean()
    dh = p.copy()
    dh[rows, y.astype(int)] -= 1
    dz = dh * (1 - h * h) / len(y)
    return value, X.T @ dz, dz.sum(axis=0)


def check_mlp(value, grads, inputs):
    expected_value, expected_W, expected_b = mlp_reference(**inputs)
    assert np.allclose(value, expected_value)
    assert np.allclose(grads["W"], expected_W) and np.allclose(grads["b"], expected_b)


def warmed_up_mlp(monkeypatch, reuse_outputs=False):
    """``mx.compile`` of the MLP, called three times on batch-8 inputs; and those."""
    use_sync(monkeypatch)
    f = mx.compile(mlp_symbol(), wrt=["W", "b"], reuse_outputs=reuse_outputs)
    inputs = mlp_inputs(8)
    for _ in range(3):
        check_mlp(*f(**inputs), inputs)
    return f, inputs


def program_of(f):
    """The compiled program behind ``f``'s single graph, and its compiled entry."""
    runner = next(iter(f._graphs.values())).runner
    return runner, cache.load(runner.plan.module_text).program_entry


def test_a_program_run_as_one_call_takes_the_hot_path_and_agrees(monkeypatch):
    f, inputs = warmed_up_mlp(monkeypatch, reuse_outputs=True)
    assert f._hot is not None, "a program with an entry should take the hot path"
    value, grads = f(**inputs)
    dropped = weakref.ref(grads["W"])  # a matrix product's result: a destination
    del value, grads
    value, grads = f(**inputs)
    # reuse declared: written again
    assert grads["W"] is dropped()
    check_mlp(value, grads, inputs)
    f, inputs = warmed_up_mlp(monkeypatch)
    value, grads = f(**inputs)
    kept = grads["W"]
    del value, grads
    other = mlp_inputs(8, seed=1)
    value, grads = f(**other)
    assert grads["W"] is not kept  # the caller holds it: never written again
    check_mlp(value, grads, other)
    assert np.allclose(kept, mlp_reference(**inputs)[1])


def test_the_hot_entry_hands_other_layouts_and_sizes_to_the_general_path(monkeypatch):
    f, inputs = warmed_up_mlp(monkeypatch)
    assert f._hot is not None
    strided = dict(inputs, X=np.asfortranarray(inputs["X"]))  # same shape, other layout
    check_mlp(*f(**strided), strided)
    read_only = dict(inputs, W=inputs["W"].copy())
    read_only["W"].setflags(write=False)
    check_mlp(*f(**read_only), read_only)
    for batch in (3, 8, 3):
        other = mlp_inputs(batch, seed=batch)
        check_mlp(*f(**other), other)


def test_the_hot_entry_gives_up_where_the_entry_would(monkeypatch):
    f, inputs = warmed_up_mlp(monkeypatch)
    runner, _ = program_of(f)
    entry = runner._entry
    # float64 rows longer than the row kernels take: the entry gives up (the step
    # runner's numpy computes the softmax)
    classes = rows.MAX_ROW + 1
    wide = dict(inputs, W=np.full((40, classes), 0.01), b=np.zeros(classes))
    args = [wide[name] for name in f._names]
    fast = entry.specialised(args)
    assert fast(args) is None  # declined: the caller runs the step runner instead
    assert entry.specialised(args) is None  # and is not offered these shapes again
    assert entry.specialised([inputs[name] for name in f._names]) is not None


def test_a_view_of_a_result_keeps_it_from_being_written_again(monkeypatch):
    f, inputs = warmed_up_mlp(monkeypatch)
    value, grads = f(**inputs)
    rows = grads["W"][:2]
    expected = rows.copy()
    del value, grads
    for seed in (1, 2):
        other = mlp_inputs(8, seed=seed)
        check_mlp(*f(**other), other)
    assert np.array_equal(rows, expected)


def test_hot_calls_keep_the_entry_to_one_compiled_signature(monkeypatch):
    use_sync(monkeypatch)
    f = mx.compile(mlp_symbol(), wrt=["W", "b"])
    for seed in range(6):  # results dropped and written again, or held
        inputs = mlp_inputs(8, seed=seed)
        value, grads = f(**inputs)
        check_mlp(value, grads, inputs)
        if seed % 2:
            del value, grads
    entry = program_of(f)[1]
    assert len(entry.signatures) == 1, entry.signatures


def test_a_first_call_the_entry_did_not_run_arms_no_hot_path(monkeypatch):
    use_sync(monkeypatch)
    f = mx.compile(mlp_symbol(), wrt=["W", "b"])
    inputs = mlp_inputs(8)
    fortran = dict(inputs, X=np.asfortranarray(inputs["X"]))
    for _ in range(2):
        check_mlp(*f(**fortran), fortran)  # the step runner: nothing known about the entry
    assert f._hot is None
    check_mlp(*f(**inputs), inputs)
    assert f._hot is not None
