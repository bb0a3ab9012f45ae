"""Program reuse across array sizes (issue 20, item 1).

A program is cached by a structural key that leaves sizes out, so one program
serves every batch size. Which axes have length one is not a size fact it may
forget: broadcasting, and the sums that undo it in gradients, depend on it, for
inputs and for every intermediate entry alike (``reshape(x, (-1, 2))`` has a
length-one axis for 2 elements and none for 10, while ``x`` never has one).

The property: for random graphs of shape-changing ops (reshape, slice_axis,
strided slice, split, sums, broadcasting, ``broadcast_like``) re-recorded with
sizes that move to and from 1 at every node, each backward gives what a fresh
program built for exactly those sizes gives. Checked on the compiled backend and
on the interpreter (each keeping its cache across the sizes), through the step
and chain templates (repeated sizes), ``grad(create_graph=True)`` and
``mx.compile`` replay.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import autograd, nd

# Symbolic axis lengths. A *base* length is a set of size variables (a, b),
# each 1 or K in one recording, its length their maximum (the empty set is 1):
# any two base lengths broadcast, at every choice of sizes, so one graph may be
# re-recorded with each variable moving to and from 1 independently. ("R", v) is
# v + 1 and slices down to v; ("D", v) is 2v and splits, strides by 2, or
# reshapes to (v, TWO), down to v; TWO is 2. Leaves have lengths b, 1, 2, a + 1
# and 2a.
VARIABLES = ("a", "b")
TWO = ("two",)
UNARY = ["tanh", "sin", "sigmoid", "negative", "square"]
BINARY = ["broadcast_add", "broadcast_mul", "broadcast_sub", "broadcast_maximum"]
SIZES = (1, 2, 3)  # values of K


def _base(*names: str) -> tuple:
    return ("max", frozenset(names))


ONE = _base()


def _length(symbol: tuple, sizes: dict[str, int]) -> int:
    kind = symbol[0]
    if kind == "max":
        return max([sizes[v] for v in symbol[1]], default=1)
    if kind == "R":
        return sizes[symbol[1]] + 1
    if kind == "D":
        return 2 * sizes[symbol[1]]
    return 2


def _join(x: tuple, y: tuple) -> tuple | None:
    """The broadcast of two axis lengths if they broadcast at every size."""
    if x[0] == "max" and y[0] == "max":
        return _base(*(x[1] | y[1]))
    if x == y or y == ONE:
        return x
    return y if x == ONE else None


def _compatible(a: tuple, b: tuple) -> tuple | None:
    """The broadcast of two symbolic shapes of one rank, if they broadcast for
    every choice of sizes."""
    if len(a) != len(b):
        return None
    out = []
    for x, y in zip(a, b):
        joined = _join(x, y)
        if joined is None:
            return None
        out.append(joined)
    return tuple(out)


def _random_length(rng: np.random.Generator) -> tuple:
    # "a" reaches the leaves only as a + 1 and 2a, never 1: whether it is 1 shows
    # in intermediate entries alone (cut from those), the facts a key must hold
    choices = [_base("b"), _base("b"), ONE, ("R", "a"), ("R", "a"), ("D", "a"), ("D", "a"), TWO]
    return choices[int(rng.integers(len(choices)))]


def make_graph(seed: int, chain: bool) -> tuple[list[tuple], list[tuple]]:
    """A random graph: leaf shapes and instructions ``(op, inputs, attrs, output
    shapes)`` over earlier values (leaves first, then instruction outputs in
    order). A ``chain`` has one leaf and only one-input ops."""
    rng = np.random.default_rng(seed)
    leaves = [
        tuple(_random_length(rng) for _ in range(int(rng.integers(1, 3))))
        for _ in range(1 if chain else int(rng.integers(1, 4)))
    ]
    steps: list[tuple] = []
    if not chain:
        leaves, steps = _seed_pattern(leaves, rng)
    shapes = list(leaves)
    for step in steps:
        shapes.extend(step[3])
    for _ in range(int(rng.integers(2, 9))):
        pick = int(len(shapes) - 1 - min(rng.geometric(0.5) - 1, len(shapes) - 1))
        if chain:
            pick = len(shapes) - 1
        shape = shapes[pick]
        options = _one_input_ops(shape, rng)
        if not chain:
            for other in range(len(shapes)):
                joined = _compatible(shape, shapes[other])
                if other != pick and joined is not None:
                    for _ in range(3):  # broadcasting is what this is about
                        op = BINARY[int(rng.integers(len(BINARY)))]
                        options.append((op, (pick, other), {}, [joined]))
                if other != pick and joined == shapes[other] and shape != shapes[other]:
                    options.append(("broadcast_like", (pick, other), {}, [shapes[other]]))
        op, inputs, attrs, outs = options[int(rng.integers(len(options)))]
        steps.append((op, (pick,) if inputs is None else inputs, attrs, outs))
        shapes.extend(outs)
    return leaves, steps


CUTS = ("slice_axis", "split", "slice", "reshape")


def _seed_pattern(leaves: list[tuple], rng: np.random.Generator) -> tuple[list[tuple], list[tuple]]:
    """Leaves and first instructions that cut a leaf's ``a + 1`` or ``2a`` axis down
    to ``a`` and broadcast the cut against a new leaf with ``b`` there: whether
    the cut has a length-one axis then shows in no leaf, only in the cut, and
    decides which way the product broadcasts (the issue's ``reshape(x, (-1, 2))``
    times a (5, 2) weight)."""
    first = list(leaves[0])
    if not any(length[0] in "RD" for length in first):
        first[0] = ("R", "a") if rng.integers(2) else ("D", "a")
    first = tuple(first)
    cuts = [option for option in _one_input_ops(first, rng) if option[0] in CUTS]
    op, _, attrs, outs = cuts[int(rng.integers(len(cuts)))]
    partner = tuple(_base("b") if length == _base("a") else length for length in outs[0])
    leaves = [first, partner, *leaves[1:]]
    binary = BINARY[int(rng.integers(len(BINARY)))]
    joined = _compatible(outs[0], partner)
    pair = (len(leaves), 1) if rng.integers(2) else (1, len(leaves))
    return leaves, [(op, (0,), attrs, outs), (binary, pair, {}, [joined])]


def _one_input_ops(shape: tuple, rng: np.random.Generator) -> list[tuple]:
    """The one-input instructions that apply to a value of ``shape`` at every size
    (their input left open, as None)."""
    options = [(UNARY[int(rng.integers(len(UNARY)))], None, {}, [shape])]
    for axis, length in enumerate(shape):
        kept = shape[:axis] + (ONE,) + shape[axis + 1 :]
        options.append(("sum", None, {"axis": axis, "keepdims": True}, [kept]))
        if len(shape) > 1:
            options.append(("sum", None, {"axis": axis}, [shape[:axis] + shape[axis + 1 :]]))
        # cuts to a length that may be 1, from one that never is, three times as
        # likely as other ops: what a program must not forget
        if length[0] == "R":
            cut = shape[:axis] + (_base(length[1]),) + shape[axis + 1 :]
            options.append(("slice_axis", None, {"axis": axis, "begin": 0, "end": -1}, [cut]))
            options.append(("slice_axis", None, {"axis": axis, "begin": 0, "end": -1}, [cut]))
            options.append(("slice_axis", None, {"axis": axis, "begin": 1, "end": None}, [cut]))
        if length[0] == "D":
            half = shape[:axis] + (_base(length[1]),) + shape[axis + 1 :]
            options.append(("split", None, {"num_outputs": 2, "axis": axis}, [half, half]))
            options.append(("split", None, {"num_outputs": 2, "axis": axis}, [half, half]))
            step = [None] * len(shape)
            step[axis] = 2
            options.append(
                (
                    "slice",
                    None,
                    {
                        "begin": (None,) * len(shape),
                        "end": (None,) * len(shape),
                        "step": tuple(step),
                    },
                    [half],
                )
            )
            if len(shape) == 1:
                options += [("reshape", None, {"shape": (-1, 2)}, [(_base(length[1]), TWO)])] * 2
    if len(shape) == 2 and ONE in shape:
        options.append(
            ("reshape", None, {"shape": (-1,)}, [(shape[0] if shape[1] == ONE else shape[1],)])
        )
    if len(shape) == 2:
        options.append(("transpose", None, {}, [shape[::-1]]))
    if len(shape) == 1:
        options.append(("expand_dims", None, {"axis": 0}, [(ONE,) + shape]))
    return options


def _concrete(shape: tuple, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(_length(length, sizes) for length in shape)


def run_graph(namespace, leaves: list, steps: list[tuple]):
    """The head ``sum`` of every value no instruction reads, computed with
    ``namespace`` (``mx.nd`` or ``mx.sym``) from ``leaves``."""
    values = list(leaves)
    read: set[int] = set()
    for op, inputs, attrs, outs in steps:
        read.update(inputs)
        result = getattr(namespace, op)(*[values[i] for i in inputs], **attrs)
        if len(outs) == 1:
            values.append(result)
        else:
            values.extend(result[i] for i in range(len(outs)))
    head = None
    for i, value in enumerate(values):
        if i not in read:
            term = namespace.sum(value)
            head = term if head is None else head + term
    return head


def size_map(sizes: tuple[int, ...]) -> dict[str, int]:
    """``(K, a, b)`` with a and b true for K and false for 1, as a dict."""
    k, *flags = sizes
    return {v: k if flag else 1 for v, flag in zip(VARIABLES, flags)}


def leaf_values(shapes: list[tuple], sizes: tuple, seed: int) -> list[np.ndarray]:
    """Leaf values for ``sizes`` (see :func:`size_map`), the same for the same
    arguments."""
    rng = np.random.default_rng([seed, *sizes])
    return [rng.uniform(-1.0, 1.0, _concrete(s, size_map(sizes))) for s in shapes]


def gradients(
    leaves: list[tuple], steps: list[tuple], sizes: tuple, seed: int, create_graph: bool = False
) -> list[np.ndarray]:
    """Every leaf's gradient of the graph's head, by ``backward`` (or by
    ``grad(create_graph=True)``), on the backend and cache in force."""
    arrays = [nd.array(v, dtype="float64") for v in leaf_values(leaves, sizes, seed)]
    for a in arrays:
        a.attach_grad()
    with autograd.record():
        head = run_graph(nd, arrays, steps)
    if create_graph:
        return [g.asnumpy() for g in autograd.grad(head, arrays, create_graph=True)]
    head.backward()
    return [a.grad.asnumpy() for a in arrays]


def fresh_gradients(leaves, steps, sizes, seed, backend="interpreter", **options):
    """The reference: gradients from a program built for exactly these sizes (an
    empty cache), then the cache emptied again."""
    previous = compiler.backend()
    compiler.set_backend(backend)
    compiler.clear_cache()
    try:
        return gradients(leaves, steps, sizes, seed, **options)
    finally:
        compiler.clear_cache()
        compiler.set_backend(previous)


def check_sequence(leaves, steps, sequence, seed, backend, references, **options) -> None:
    """Record and differentiate the graph at each sizes of ``sequence`` in turn on
    ``backend`` with one cache, comparing with fresh programs' gradients
    (``references``, a dict filled on demand, before the sequence runs: a
    reference empties the cache)."""
    for sizes in sequence:
        if sizes not in references:
            references[sizes] = fresh_gradients(leaves, steps, sizes, seed, **options)
    compiler.set_backend(backend)
    try:
        for sizes in sequence:
            got = gradients(leaves, steps, sizes, seed, **options)
            for k, (g, want) in enumerate(zip(got, references[sizes])):
                np.testing.assert_allclose(
                    g,
                    want,
                    rtol=1e-7,
                    atol=1e-9,
                    err_msg=f"leaf {k} at sizes {size_map(sizes)} in {sequence}; "
                    f"leaves {leaves}, steps {steps}",
                )
    finally:
        compiler.set_backend(None)


def graphs():
    """Hypothesis strategy: ``(leaves, steps, seed)`` of a random graph."""
    return st.tuples(st.integers(0, 2**31), st.sampled_from([False, False, False, True])).map(
        _graph_of
    )


def _graph_of(drawn: tuple[int, bool]) -> tuple[list, list, int]:
    seed, chain = drawn
    leaves, steps = make_graph(seed, chain)
    return leaves, steps, seed


size_sequences = st.lists(
    st.tuples(st.sampled_from(SIZES[1:]), st.booleans(), st.booleans()), min_size=2, max_size=5
)


def random_sizes(rng: np.random.Generator) -> tuple:
    """One random ``(K, a, b)`` (see :func:`size_map`)."""
    return (int(rng.choice(SIZES[1:])), *(bool(v) for v in rng.integers(0, 2, 2)))


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


def _reshape_broadcast_grad(n: int) -> np.ndarray:
    """x.grad of sum(broadcast_mul(reshape(x, (-1, 2)), w)), x of n elements."""
    w = nd.array(np.arange(10, dtype=np.float32).reshape(5, 2))
    x = nd.array(np.arange(1, n + 1, dtype=np.float32))
    x.attach_grad()
    with autograd.record():
        y = nd.sum(nd.broadcast_mul(nd.reshape(x, shape=(-1, 2)), w))
    y.backward()
    return x.grad.asnumpy()


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_reshape_to_a_length_one_axis_is_not_the_program_of_ten(backend, request):
    request.getfixturevalue(backend)
    np.testing.assert_array_equal(_reshape_broadcast_grad(10), np.arange(10, dtype=np.float32))
    # (1, 2) broadcast against (5, 2): each element gets its column's sum of w
    np.testing.assert_array_equal(_reshape_broadcast_grad(2), [20.0, 25.0])
    np.testing.assert_array_equal(_reshape_broadcast_grad(10), np.arange(10, dtype=np.float32))


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
@pytest.mark.parametrize(
    "cut, rows, kept",
    [
        (lambda x: nd.slice_axis(x, axis=0, begin=0, end=-1), 4, lambda n: slice(0, n - 1)),
        (
            lambda x: nd.slice(x, begin=(None, None), end=(None, None), step=(2, 1)),
            6,
            lambda n: slice(0, None, 2),
        ),
        (lambda x: nd.split(x, num_outputs=2, axis=0)[1], 6, lambda n: slice(n // 2, None)),
    ],
    ids=["slice_axis", "strided_slice", "split"],
)
def test_slices_that_become_length_one(backend, cut, rows, kept, request):
    """A cut to 3 rows multiplies (3, 2) weights row by row; a cut to 1 row is
    broadcast against them, so its gradient is their column sums."""
    request.getfixturevalue(backend)
    weights = np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    w = nd.array(weights)
    for n in (rows, 2, rows, 2):
        x = nd.array(np.ones((n, 2), dtype=np.float32))
        x.attach_grad()
        with autograd.record():
            y = nd.sum(nd.broadcast_mul(cut(x), w))
        y.backward()
        want = np.zeros((n, 2), dtype=np.float32)
        want[kept(n)] = weights if n == rows else weights.sum(axis=0)
        np.testing.assert_array_equal(x.grad.asnumpy(), want)


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_create_graph_reuse_across_a_length_one_axis(backend, request):
    request.getfixturevalue(backend)
    w = nd.array(np.arange(10, dtype=np.float64).reshape(5, 2))
    for n in (10, 2, 10, 2):
        x = nd.array(np.arange(1, n + 1, dtype=np.float64))
        x.attach_grad()
        with autograd.record():
            y = nd.sum(nd.broadcast_mul(nd.square(nd.reshape(x, shape=(-1, 2))), w))
            (g,) = autograd.grad(y, [x], create_graph=True)
        # g = 2 x * colsum(w) for n = 2 (a (1, 2) row against (5, 2)), 2 x w for 10
        if n == 10:
            np.testing.assert_allclose(g.asnumpy(), 2 * np.arange(10.0) * np.arange(1, 11.0))
        else:
            np.testing.assert_allclose(g.asnumpy(), [2 * 1.0 * 20.0, 2 * 2.0 * 25.0])
        g.backward()
        expected = 2 * np.arange(10.0) if n == 10 else np.array([40.0, 50.0])
        np.testing.assert_allclose(x.grad.asnumpy(), expected)


@pytest.mark.parametrize("backend", ["interpreted", "compiled"])
def test_replay_across_a_length_one_axis(backend, request):
    request.getfixturevalue(backend)
    x, w = mx.sym.var("x"), mx.sym.var("w")
    f = mx.compile(mx.sym.sum(mx.sym.broadcast_mul(mx.sym.reshape(x, shape=(-1, 2)), w)), wrt=["x"])
    weights = np.arange(10, dtype=np.float64).reshape(5, 2)
    for n in (10, 2, 10, 2):
        _, grads = f(x=np.arange(1, n + 1, dtype=np.float64), w=weights)
        want = np.arange(10.0) if n == 10 else np.array([20.0, 25.0])
        np.testing.assert_allclose(np.asarray(grads["x"]), want)


# ---------------------------------------------------------------------------
# the property
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(graph=graphs(), sizes=size_sequences)
def test_interpreter_reuse_across_sizes(graph, sizes):
    leaves, steps, seed = graph
    compiler.clear_cache()
    check_sequence(leaves, steps, sizes, seed, "interpreter", {})


# Each new graph compiles kernels (seconds): a few fixed examples here, whose
# kernels later runs load from numba's disk cache; breadth in the slow test.
@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(graph=graphs(), sizes=size_sequences)
def test_compiled_reuse_across_sizes(graph, sizes, compiled):
    leaves, steps, seed = graph
    check_sequence(leaves, steps, sizes, seed, "compiled", {})


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(graph=graphs(), sizes=size_sequences)
def test_create_graph_reuse_across_sizes(graph, sizes):
    leaves, steps, seed = graph
    compiler.clear_cache()
    check_sequence(leaves, steps, sizes, seed, "interpreter", {}, create_graph=True)


def _replay_check(leaves, steps, sequence, seed, backend) -> None:
    """``mx.compile`` of the graph, called at each sizes of ``sequence``."""
    references = {sizes: fresh_gradients(leaves, steps, sizes, seed) for sizes in sequence}
    compiler.set_backend(backend)
    try:
        names = [f"v{i}" for i in range(len(leaves))]
        head = run_graph(mx.sym, [mx.sym.var(n) for n in names], steps)
        f = mx.compile(head, wrt=names)
        for sizes in sequence:
            _, grads = f(**dict(zip(names, leaf_values(leaves, sizes, seed))))
            for name, expected in zip(names, references[sizes]):
                np.testing.assert_allclose(
                    np.asarray(grads[name]),
                    expected,
                    rtol=1e-7,
                    atol=1e-9,
                    err_msg=f"{name} at {sizes} of {sequence}",
                )
    finally:
        compiler.set_backend(None)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(graph=graphs(), sizes=size_sequences)
def test_replay_reuse_across_sizes(graph, sizes):
    _replay_check(*graph[:2], sizes, graph[2], "interpreter")


# Compiling a new graph's kernels costs seconds and a backward milliseconds: few
# graphs, many size sequences each (CI's slow run stays a few minutes).
GRAPHS_SLOW = 6
SEQUENCES_PER_GRAPH = 1700  # 6 x 1700 > 10^4 graph/size sequences


@pytest.mark.slow
@settings(max_examples=GRAPHS_SLOW, deadline=None, suppress_health_check=list(HealthCheck))
@given(graph=graphs())
def test_compiled_reuse_across_sizes_many(graph, compiled):
    """10^4 graph/size sequences: each graph re-recorded through 1700 random
    sequences of 2 sizes, with one cache (references computed once per size)."""
    leaves, steps, seed = graph
    rng = np.random.default_rng(seed)
    references: dict = {}
    for _ in range(SEQUENCES_PER_GRAPH):
        sizes = [random_sizes(rng) for _ in range(2)]
        check_sequence(leaves, steps, sizes, seed, "compiled", references)


# The reuse keys are the program cache's, the same for every backend: on the
# interpreter (no compilation) the slow run affords many graphs, so the 10^4
# sequences cover graph shapes as well as sizes.
GRAPHS_SLOW_INTERPRETED = 125
SEQUENCES_PER_INTERPRETED_GRAPH = 80  # 125 x 80 = 10^4 graph/size sequences


@pytest.mark.slow
@settings(
    max_examples=GRAPHS_SLOW_INTERPRETED, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(graph=graphs())
def test_interpreter_reuse_across_sizes_many(graph):
    """10^4 graph/size sequences on the interpreter: 125 graphs, each re-recorded
    through 80 random sequences of 2 to 4 sizes with one cache."""
    leaves, steps, seed = graph
    rng = np.random.default_rng(seed)
    references: dict = {}
    compiler.clear_cache()
    for _ in range(SEQUENCES_PER_INTERPRETED_GRAPH):
        sizes = [random_sizes(rng) for _ in range(int(rng.integers(2, 5)))]
        check_sequence(leaves, steps, sizes, seed, "interpreter", references)
