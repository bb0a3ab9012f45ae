"""Fusion decisions (``symgrad_compiler.passes.fuse``) and the rerouting of
shape-only inputs (``reroute_shape_inputs``), each shown on the smallest graph it
applies to: the ops after (and each ``_fused`` node's body), the values the
interpreter computes before and after (NaN, inf and -0.0 among the inputs), and a
graph where the decision must go the other way. Passes only: nothing is compiled.
"""

from __future__ import annotations

import numpy as np
import pytest

from symgrad_compiler import Entry, Node, ProgramGraph, evaluate
from symgrad_compiler.passes import format_graph, fuse, reroute_shape_inputs
from symgrad_compiler.passes.fuse import MAX_GROUP, assign_groups
from symgrad_compiler.registry import make_node, variable


def _op(name: str, *inputs: Node, **attrs) -> Node:
    return make_node(name, [Entry(node, 0) for node in inputs], attrs)


def _graph(inputs: list[Node], *outputs: Node) -> ProgramGraph:
    return ProgramGraph(inputs, [Entry(out, 0) for out in outputs])


def _ops(graph: ProgramGraph) -> list[str]:
    """The op names of the graph's computed nodes, in topological order."""
    return [node.op.name for node in graph.nodes() if not node.is_variable]


def _bodies(graph: ProgramGraph) -> list[list[str]]:
    """The body ops of each ``_fused`` node, in graph order."""
    return [
        [member.op.name for member in node.attrs["body"].nodes()]
        for node in graph.nodes()
        if node.op.name == "_fused"
    ]


def _special(shape: tuple[int, ...], dtype, seed: int) -> np.ndarray:
    """Random normal values whose first elements are NaN, inf, -inf, -0.0 and 0.0
    (small random integers for an integer dtype)."""
    rng = np.random.default_rng(seed)
    if not np.issubdtype(dtype, np.floating):
        return rng.integers(-5, 5, size=shape).astype(dtype)
    flat = rng.normal(size=int(np.prod(shape))).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype)[: flat.size]
    flat[: specials.size] = specials
    return flat.reshape(shape)


def _values(graph: ProgramGraph, arrays: list[np.ndarray]) -> list[np.ndarray]:
    given = {var: (value,) for var, value in zip(graph.inputs, arrays)}
    with np.errstate(all="ignore"):
        return [np.asarray(v) for v in evaluate(graph.live_outputs(), given)]


def _run(graph: ProgramGraph, apply=fuse) -> ProgramGraph:
    """Apply the pass and assert every output keeps its dtype, shape, elements, NaN
    places and sign of zero."""
    after = apply(graph)
    arrays = [
        _special(var.types[0].shape, var.types[0].dtype, seed=i)
        for i, var in enumerate(graph.inputs)
    ]
    shown = f"before:\n{format_graph(graph)}\nafter:\n{format_graph(after)}"
    for old, new in zip(_values(graph, arrays), _values(after, arrays)):
        assert old.dtype == new.dtype and old.shape == new.shape, shown
        assert np.array_equal(old, new, equal_nan=True), shown
        signed = ~np.isnan(old)
        assert np.array_equal(np.signbit(old[signed]), np.signbit(new[signed])), shown
    return after


def _chain(x: Node, length: int) -> Node:
    """``length`` cheap elementwise ops applied one after another to ``x``."""
    for i in range(length):
        x = _op("_mul_scalar", x, scalar=0.5) if i % 2 else _op("_plus_scalar", x, scalar=1.0)
    return x


# ---------------------------------------------------------------------------
# an elementwise chain becomes one _fused node
# ---------------------------------------------------------------------------


def test_an_elementwise_chain_becomes_one_fused_node():
    x = variable((3, 4))
    chain = _op("tanh", _op("_plus_scalar", _op("_mul_scalar", x, scalar=2.0), scalar=1.0))
    after = _run(_graph([x], chain))
    assert _ops(after) == ["_fused"]
    assert _bodies(after) == [["_mul_scalar", "_plus_scalar", "tanh"]]
    (fused,) = after.nodes()[1:]
    assert [e.node for e in fused.inputs] == [x] and fused.num_outputs == 1


def test_a_chain_through_an_opaque_op_becomes_two_groups():
    # transpose is no loop member: the chain is cut where it stands
    x = variable((4, 4))
    left = _op("exp", _op("_mul_scalar", x, scalar=2.0))
    after = _run(_graph([x], _op("tanh", _op("negative", _op("transpose", left)))))
    assert _ops(after) == ["_fused", "transpose", "_fused"]
    assert _bodies(after) == [["_mul_scalar", "exp"], ["negative", "tanh"]]


def test_an_integer_chain_is_not_fused():
    # fused loops compute in floating point only
    x = variable((3, 4), np.int32)
    after = _run(_graph([x], _op("negative", _op("_mul_scalar", x, scalar=2.0))))
    assert _ops(after) == ["_mul_scalar", "negative"]


# ---------------------------------------------------------------------------
# a reduction ends its group; a node reading it in the same loop does not join
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["sum", "mean", "_unbroadcast"])
def test_a_reduction_ends_the_group_of_its_input(reduction):
    x, like = variable((3, 4)), variable((3, 1))
    e = _op("exp", x)
    end = _op(reduction, e, like) if reduction == "_unbroadcast" else _op(reduction, e, axis=1)
    after = _run(_graph([x, like], end))
    assert _ops(after) == ["_fused"] and _bodies(after) == [["exp", reduction]]


def test_a_reduction_of_a_reduction_is_not_in_the_loop():
    x = variable((3, 4))
    twice = _op("sum", _op("sum", _op("exp", x), axis=1, keepdims=True))
    after = _run(_graph([x], twice))
    assert _ops(after) == ["_fused", "sum"] and _bodies(after) == [["exp", "sum"]]


def test_a_node_reading_a_reduction_of_its_own_loop_starts_a_new_group():
    # softmax-like: exp(x) + sum(exp(x)) needs the sum before the loop that adds it
    x = variable((3, 4))
    e = _op("exp", x)
    total = _op("sum", e, axis=1, keepdims=True)
    add = _op("broadcast_add", e, total)
    groups = assign_groups([e, total, add])
    assert groups[id(e)] == groups[id(total)] != groups[id(add)]
    after = _run(_graph([x], add))
    assert _ops(after) == ["_fused", "_fused"]
    assert _bodies(after) == [["exp", "sum"], ["broadcast_add"]]
    first, second = after.nodes()[1:]
    assert first.num_outputs == 2  # exp(x) and its sum both leave the first loop
    assert [(e.node, e.index) for e in second.inputs] == [(first, 0), (first, 1)]


def test_without_a_reduction_the_reader_joins():
    x, y = variable((3, 4)), variable((3, 1))
    after = _run(_graph([x, y], _op("broadcast_add", _op("exp", x), y)))
    assert _bodies(after) == [["exp", "broadcast_add"]]


# ---------------------------------------------------------------------------
# two independent groups of one shape merge
# ---------------------------------------------------------------------------


def test_two_independent_groups_of_one_shape_merge():
    x, y = variable((3, 4)), variable((3, 4))
    u, v = _op("exp", x), _op("sin", y)
    mul = _op("elemwise_mul", u, v)
    # alone, u and v are groups of their own; mul reads both and merges them
    separate = assign_groups([u, v])
    assert separate[id(u)] != separate[id(v)]
    merged = assign_groups([u, v, mul])
    assert merged[id(u)] == merged[id(v)] == merged[id(mul)]
    after = _run(_graph([x, y], mul))
    assert _ops(after) == ["_fused"] and _bodies(after) == [["exp", "sin", "elemwise_mul"]]


def test_groups_of_different_shapes_do_not_merge():
    x, y = variable((3, 1)), variable((3, 4))
    u, v = _op("exp", x), _op("sin", y)
    after = _run(_graph([x, y], _op("broadcast_mul", u, v)))
    # exp over (3, 1) is its own group (a small lone transcendental: a kernel too)
    assert _ops(after) == ["_fused", "_fused"]
    assert _bodies(after) == [["exp"], ["sin", "broadcast_mul"]]


def test_dependent_groups_do_not_merge():
    # a -> transpose -> b: a reader of a and b joins b's group only, a stays apart
    x = variable((4, 4))
    a = _op("_mul_scalar", _op("exp", x), scalar=2.0)
    b = _op("sin", _op("transpose", a))
    add = _op("elemwise_add", a, b)
    after = _run(_graph([x], add))
    assert _ops(after) == ["_fused", "transpose", "_fused"]
    assert _bodies(after) == [["exp", "_mul_scalar"], ["sin", "elemwise_add"]]


# ---------------------------------------------------------------------------
# a non-convex join is refused
# ---------------------------------------------------------------------------


def test_a_non_convex_join_is_refused():
    # c = a * transpose(a): joining a's group would make a path leave it (through
    # transpose) and come back
    x = variable((4, 4))
    a = _op("_mul_scalar", _op("exp", x), scalar=2.0)
    t = _op("transpose", a)
    c = _op("elemwise_mul", a, t)
    groups = assign_groups([*_graph([x], c).nodes()[1:]])
    assert id(t) not in groups and groups[id(a)] != groups[id(c)]
    after = _run(_graph([x], c))
    assert _ops(after) == ["_fused", "transpose", "_fused"]
    assert _bodies(after) == [["exp", "_mul_scalar"], ["elemwise_mul"]]


def test_a_convex_join_is_taken():
    x = variable((4, 4))
    a = _op("_mul_scalar", _op("exp", x), scalar=2.0)
    after = _run(_graph([x], _op("elemwise_mul", a, a)))
    assert _bodies(after) == [["exp", "_mul_scalar", "elemwise_mul"]]


# ---------------------------------------------------------------------------
# a lone transcendental stays with numpy on big arrays (a kernel on small ones);
# lone arithmetic becomes a kernel
# ---------------------------------------------------------------------------

BIG = (300, 300)  # at least fuse.LONE_TRANSCENDENTAL_LIMIT elements


@pytest.mark.parametrize("op", ["tanh", "exp", "log", "sin", "sqrt"])
def test_a_lone_transcendental_op_stays_unfused(op):
    x = variable(BIG)
    assert _ops(_run(_graph([x], _op(op, x)))) == [op]


@pytest.mark.parametrize("op", ["tanh", "exp", "log", "sin", "sqrt"])
def test_a_small_lone_transcendental_op_becomes_a_kernel(op):
    x = variable((3, 4))
    after = _run(_graph([x], _op(op, x)))
    assert _ops(after) == ["_fused"] and _bodies(after) == [[op]]


@pytest.mark.parametrize(
    "op,attrs",
    [("_mul_scalar", {"scalar": 2.0}), ("negative", {}), ("abs", {}), ("square", {})],
)
def test_lone_arithmetic_becomes_a_kernel(op, attrs):
    x = variable((3, 4))
    after = _run(_graph([x], _op(op, x, **attrs)))
    assert _ops(after) == ["_fused"] and _bodies(after) == [[op]]


def test_a_lone_op_with_a_template_chosen_by_attrs_stays_unfused():
    # x ** 3 calls vector pow; its template is a function of the scalar, so
    # alone it is not counted as plain arithmetic. In a chain it fuses.
    x = variable(BIG)
    cube = _op("_power_scalar", x, scalar=3.0)
    assert _ops(_run(_graph([x], cube))) == ["_power_scalar"]
    after = _run(_graph([x], _op("negative", cube)))
    assert _bodies(after) == [["_power_scalar", "negative"]]


def test_lone_binary_arithmetic_becomes_a_kernel():
    x, y = variable((3, 4)), variable((3, 4))
    after = _run(_graph([x, y], _op("elemwise_add", x, y)))
    assert _ops(after) == ["_fused"] and _bodies(after) == [["elemwise_add"]]


# ---------------------------------------------------------------------------
# groups stop at MAX_GROUP members
# ---------------------------------------------------------------------------


def test_a_chain_longer_than_max_group_is_split():
    x = variable((3, 4))
    after = _run(_graph([x], _chain(x, MAX_GROUP + 2)))
    assert _ops(after) == ["_fused", "_fused"]
    assert [len(body) for body in _bodies(after)] == [MAX_GROUP, 2]


def test_a_chain_of_max_group_is_one_kernel():
    x = variable((3, 4))
    after = _run(_graph([x], _chain(x, MAX_GROUP)))
    assert [len(body) for body in _bodies(after)] == [MAX_GROUP]


def test_groups_too_big_together_do_not_merge():
    # two independent groups of 30: merged they would pass MAX_GROUP
    x, y = variable((3, 4)), variable((3, 4))
    half = MAX_GROUP * 5 // 8
    after = _run(_graph([x, y], _op("elemwise_mul", _chain(x, half), _chain(y, half))))
    assert sorted(len(body) for body in _bodies(after)) == [half, half + 1]


# ---------------------------------------------------------------------------
# reroute_shape_inputs: a shape-only input is read from an earlier node
# ---------------------------------------------------------------------------


def test_a_shape_only_input_is_read_from_the_earliest_same_shaped_entry():
    # ones_like needs only a shape: x has it, so tanh and exp become dead
    x = variable((3, 4))
    after = _run(_graph([x], _op("ones_like", _op("exp", _op("tanh", x)))), reroute_shape_inputs)
    assert _ops(after) == ["ones_like"] and after.nodes()[-1].inputs[0].node is x


def test_a_broadcast_result_takes_its_shape_from_the_input_of_its_shape():
    x, y = variable((3, 1)), variable((3, 4))
    z = variable((3, 1))
    like = _op("broadcast_like", z, _op("broadcast_add", x, y))
    after = _run(_graph([x, y, z], like), reroute_shape_inputs)
    assert _ops(after) == ["broadcast_like"]
    assert [e.node for e in after.nodes()[-1].inputs] == [z, y]


def test_a_value_input_is_not_rerouted():
    # zeros_like reads only a shape, but the add reads tanh(x)'s values
    x = variable((3, 4))
    t = _op("tanh", x)
    after = _run(_graph([x], _op("elemwise_add", t, _op("zeros_like", t))), reroute_shape_inputs)
    assert _ops(after) == ["tanh", "zeros_like", "elemwise_add"]
    add = after.nodes()[-1]
    assert add.inputs[0].node.op.name == "tanh" and add.inputs[1].node.inputs[0].node is x


@pytest.mark.parametrize(
    "make",
    [
        lambda x: _op("sum", x, axis=1),  # a reduction changes the shape
        lambda x: _op("Cast", x, dtype="float64"),  # elementwise, another dtype
        lambda x: _op("transpose", x),  # not elementwise
    ],
    ids=["sum", "cast", "transpose"],
)
def test_a_shape_from_a_different_type_is_kept(make):
    x = variable((3, 4))
    inner = make(x)
    after = _run(_graph([x], _op("ones_like", inner)), reroute_shape_inputs)
    assert _ops(after) == [inner.op.name, "ones_like"]


def test_transcendental_ops_count_more_towards_the_bound():
    from symgrad_compiler.passes.fuse import TRANSCENDENTAL_COST

    x = variable((3, 4))
    y = x
    for _ in range(200):
        y = _op("sin", y)
    after = _run(_graph([x], y))
    per_kernel = MAX_GROUP // TRANSCENDENTAL_COST
    assert [len(body) for body in _bodies(after)] == [per_kernel, 200 - per_kernel]


# ---------------------------------------------------------------------------
# a cheap op read by one later group only is computed there
# ---------------------------------------------------------------------------


def _mask_graph(keep_activation: bool) -> ProgramGraph:
    """A relu's forward loop and a later loop (behind an opaque op) that reads the
    relu's mask, as a backward does; ``keep_activation``: the graph also returns
    the activation (the next layer would read it)."""
    x = variable((3, 4))
    y = _op("relu", _op("_mul_scalar", x, scalar=2.0))
    mask = _op("_greater_scalar", y, scalar=0.0)
    later = _op("elemwise_mul", _op("transpose", _op("transpose", _op("exp", y))), mask)
    return _graph([x], later, y) if keep_activation else _graph([x], later)


def test_a_mask_of_a_stored_activation_is_computed_where_it_is_read():
    after = _run(_mask_graph(keep_activation=True))
    assert _bodies(after) == [["_mul_scalar", "relu", "exp"], ["_greater_scalar", "elemwise_mul"]]
    forward = after.nodes()[1]
    assert forward.num_outputs == 2  # the activation and exp(y): no mask


def test_a_mask_stays_with_its_input_when_that_is_not_stored_otherwise():
    # the relu's output feeds only the mask and exp inside the loop: moving the
    # mask would store the activation instead, which is no saving
    x = variable((3, 4))
    doubled = _op("_mul_scalar", x, scalar=2.0)
    mask = _op("_greater_scalar", _op("relu", doubled), scalar=0.0)
    later = _op("elemwise_mul", _op("transpose", _op("transpose", _op("exp", doubled))), mask)
    after = _run(_graph([x], later))
    assert _bodies(after) == [["_mul_scalar", "exp", "relu", "_greater_scalar"], ["elemwise_mul"]]


# ---------------------------------------------------------------------------
# a loop computes again a short chain of cheap ops it would otherwise read
# ---------------------------------------------------------------------------


def _chain_graph(op: str) -> ProgramGraph:
    """A loop making ``op(x * 2)`` for itself and a later loop (behind an opaque
    op) that reads it too."""
    x = variable((3, 4))
    made = _op(op, _op("_mul_scalar", x, scalar=2.0))
    first = _op("elemwise_add", made, x)
    later = _op("elemwise_mul", _op("transpose", _op("transpose", first)), made)
    return _graph([x], later, first)


def test_a_cheap_chain_on_stored_values_is_computed_again_where_it_is_read():
    after = _run(_chain_graph("negative"))
    assert _bodies(after) == [
        ["_mul_scalar", "negative", "elemwise_add"],
        ["_mul_scalar", "negative", "elemwise_mul"],
    ]
    forward = after.nodes()[1]
    assert forward.num_outputs == 1  # x * 2 and its negative are not written


def test_a_chain_with_a_transcendental_op_is_read_not_computed_again():
    after = _run(_chain_graph("exp"))
    assert _bodies(after) == [["_mul_scalar", "exp", "elemwise_add"], ["elemwise_mul"]]
    assert after.nodes()[1].num_outputs == 2
