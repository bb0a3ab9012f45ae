"""How many of MXNet 1.9.1's operator names symgrad has (issue 20).

Real MXNet lists its registry (``mx.operator.get_all_registered_operators()``,
1,167 names) and, for each name, the operator it names: MXNet registers one
operator under several names (aliases share one handle), so the listing tells
which names are the same op. The count printed is how many of those names
symgrad's registry has (an op or an alias); it may grow, never fall below
``FLOOR``. Names that are one op in MXNet must be one op here too.

Run with ``-s`` to see the count and the missing names.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
import symgrad_compiler as compiler
from symgrad_compiler.ops.aliases_legacy import MXNET_ALIASES

# Measured with this test: 482 of 1,167 before issue 20's aliases
# (compiler/ops/aliases_legacy.py), 620 after them, 626 with the _image_ ops
# (compiler/ops/image.py), 627 with reset_arrays, 628 with _scatter_set_nd.
FLOOR = 628

# Names that are one operator in MXNet 1.9.1 but two ops here, with the reason.
KNOWN_SPLITS = {
    "choose_element_0index": "symgrad keeps MXNet's older pick without attributes "
    "(axis -1, clip) as an op of its own; MXNet's is pick itself, with pick's attributes",
    # tail_elemwise.LEGACY_ALIASES: MXNet's legacy _Maximum is the same-shape
    # _maximum; symgrad's is broadcast_maximum, equal on the inputs MXNet accepts
    # but also broadcasting where MXNet refuses (likewise the three below)
    "_Maximum": "broadcast_maximum here, _maximum in MXNet",
    "_Minimum": "broadcast_minimum here, _minimum in MXNet",
    "_Mod": "broadcast_mod here, _mod in MXNet",
    "_Power": "broadcast_power here, _power in MXNet",
}

LISTING = """
import ctypes
import json

import mxnet as mx
from mxnet.base import _LIB, OpHandle, c_str, check_call, py_str


def operator_name(handle):
    # the name an operator was registered under (an alias gives its op's name)
    name, doc, count = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_uint32()
    names, types, docs = (ctypes.POINTER(ctypes.c_char_p)() for _ in range(3))
    key_var, returns = ctypes.c_char_p(), ctypes.c_char_p()
    check_call(_LIB.MXSymbolGetAtomicSymbolInfo(
        handle, ctypes.byref(name), ctypes.byref(doc), ctypes.byref(count),
        ctypes.byref(names), ctypes.byref(types), ctypes.byref(docs),
        ctypes.byref(key_var), ctypes.byref(returns)))
    return py_str(name.value)


listing = {}
for op_name in mx.operator.get_all_registered_operators():
    handle = OpHandle()
    check_call(_LIB.NNGetOpHandle(c_str(op_name), ctypes.byref(handle)))
    listing[op_name] = operator_name(handle)
with open("operators.json", "w") as f:
    json.dump(listing, f)
"""


@pytest.fixture(scope="module")
def mxnet_operators(mxnet_python, tmp_path_factory) -> dict[str, str]:
    """MXNet 1.9.1's operator names, each mapped to its operator's own name."""
    workdir = tmp_path_factory.mktemp("operators")
    run_mxnet(mxnet_python, LISTING, workdir)
    with open(workdir / "operators.json") as f:
        return json.load(f)


def _out_of_scope(name: str) -> bool:
    # backward halves are internal to MXNet's autograd; the numpy interface is
    # its own API (issue 20)
    return name.startswith(("_backward_", "_np"))


@pytest.mark.interop
def test_symgrad_has_at_least_the_measured_count_of_mxnet_names(mxnet_operators):
    names = sorted(mxnet_operators)
    assert len(names) == 1167  # MXNet 1.9.1's listing, as measured
    have = [name for name in names if name in compiler.OPS]
    missing = [name for name in names if name not in compiler.OPS]
    in_scope = [name for name in missing if not _out_of_scope(name)]
    print(f"\nsymgrad has {len(have)} of MXNet 1.9.1's {len(names)} operator names")
    print(f"missing, not _backward_* nor _np*: {len(in_scope)}\n  " + " ".join(in_scope))
    print(
        f"missing _backward_*: {sum(n.startswith('_backward_') for n in missing)}, "
        f"_np*: {sum(n.startswith('_np') for n in missing)}"
    )
    assert len(have) >= FLOOR, f"{len(have)} MXNet names, fewer than the {FLOOR} measured"


@pytest.mark.interop
def test_names_of_one_mxnet_operator_are_one_op(mxnet_operators):
    split = []
    for name, operator in mxnet_operators.items():
        if name in compiler.OPS and operator in compiler.OPS:
            if compiler.OPS[name] is not compiler.OPS[operator] and name not in KNOWN_SPLITS:
                split.append(f"{name} ({compiler.OPS[name].name}) and {operator}")
    assert not split, "one MXNet operator, several symgrad ops: " + "; ".join(split)


@pytest.mark.interop
def test_every_alias_added_is_an_alias_in_mxnet(mxnet_operators):
    wrong = []
    for target, aliases in MXNET_ALIASES.items():
        for alias in aliases:
            operator = mxnet_operators.get(alias)
            if operator is None or compiler.OPS.get(operator) is not compiler.OPS[target]:
                wrong.append(f"{alias} -> {target} (MXNet: {operator})")
    assert not wrong, "aliases MXNet does not have: " + "; ".join(wrong)


ALIASES = [(alias, target) for target, aliases in MXNET_ALIASES.items() for alias in aliases]


@pytest.mark.parametrize("alias, target", ALIASES, ids=[alias for alias, _ in ALIASES])
def test_alias_is_its_op_in_both_namespaces(alias, target):
    # the generated per-op tests (tests/test_ops_generated.py) check the op once,
    # under its own name; the alias must be that op wherever a user can call it
    opdef = compiler.get_op(target)
    assert compiler.get_op(alias) is opdef and alias in opdef.aliases
    assert callable(getattr(mx.nd, alias)) and callable(getattr(mx.sym, alias))


def test_an_alias_computes_what_its_op_does():
    x = mx.nd.array([[-1.5, 0.25], [2.0, -0.5]])
    for alias, target, attrs in (
        ("_sparse_abs", "abs", {}),
        ("_npx_activation", "Activation", {"act_type": "tanh"}),
        ("_npi_swapaxes", "SwapAxis", {"dim1": 0, "dim2": 1}),
        ("_sparse_sum", "sum", {"axis": 1}),
    ):
        got = getattr(mx.nd, alias)(x, **attrs).asnumpy()
        expected = getattr(mx.nd, target)(x, **attrs).asnumpy()
        assert (got == expected).all(), alias
    symbol = mx.sym._npx_batch_flatten(mx.sym.var("data"))
    assert symbol.infer_shape(data=(2, 3, 4))[1] == [(2, 12)]


RESET_SCRIPT = """
import numpy as np

def run(mx):
    a = mx.nd.array(np.arange(6.0).reshape(2, 3))
    b = mx.nd.array([1, 2, 3], dtype="float64")
    c = mx.nd.ones((2,))
    returned = mx.nd.reset_arrays(a, b, num_arrays=2)
    return {
        "returned": np.array(len(returned)),
        "a": a.asnumpy(),
        "b": b.asnumpy(),
        "c": c.asnumpy(),
    }
"""


@pytest.mark.interop
def test_reset_arrays_zeroes_its_arrays_as_mxnet(mxnet_python, tmp_path):
    main = 'import mxnet as mx\nnp.savez("mxnet.npz", **run(mx))\n'
    run_mxnet(mxnet_python, RESET_SCRIPT + main, tmp_path)
    expected = dict(np.load(tmp_path / "mxnet.npz"))
    namespace: dict = {}
    exec(RESET_SCRIPT, namespace)
    actual = namespace["run"](mx)
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def test_reset_arrays_checks_its_arguments():
    with pytest.raises(mx.base.MXNetError, match="num_arrays"):
        mx.nd.reset_arrays(mx.nd.ones((2,)), mx.nd.ones((3,)), num_arrays=3)
    integers = mx.nd.ones((2,), dtype="int32")
    with pytest.raises(mx.base.MXNetError, match="floating"):  # MXNet's refusal too
        mx.nd.reset_arrays(integers, num_arrays=1)
    assert (integers.asnumpy() == 1).all()


SCATTER_SET_SCRIPT = """
import numpy as np

def run(mx):
    results = {}
    for name, shape, index in (
        ("2d", (3, 4), [[0, 2, 1], [1, 3, 3]]),
        ("rows", (3, 4), [[2, 0]]),  # whole rows: rhs (2, 4)
        ("n-d indices", (2, 3, 4), [[[0, 1], [1, 0]], [[2, 0], [1, 1]]]),
    ):
        lhs = mx.nd.array(np.arange(np.prod(shape), dtype="float32").reshape(shape))
        indices = mx.nd.array(index)
        rhs_shape = np.shape(index)[1:] + shape[len(index):]
        rhs = mx.nd.array(-1 - np.arange(np.prod(rhs_shape), dtype="float32").reshape(rhs_shape))
        f = getattr(getattr(mx.nd, "_internal", mx.nd), "_scatter_set_nd")
        out = f(lhs, rhs, indices, shape=shape, out=lhs)
        results[name] = out.asnumpy()
        results[name + " lhs"] = lhs.asnumpy()
    return results
"""


@pytest.mark.interop
def test_scatter_set_nd_equals_mxnet(mxnet_python, tmp_path):
    main = 'import mxnet as mx\nnp.savez("mxnet.npz", **run(mx))\n'
    run_mxnet(mxnet_python, SCATTER_SET_SCRIPT + main, tmp_path)
    expected = dict(np.load(tmp_path / "mxnet.npz"))
    namespace: dict = {}
    exec(SCATTER_SET_SCRIPT, namespace)
    actual = namespace["run"](mx)
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def test_scatter_set_nd_skips_positions_outside():
    # MXNet 1.9.1 writes outside its array there (heap corruption): symgrad skips
    lhs = mx.nd.array(np.arange(6.0).reshape(2, 3))
    out = mx.nd._scatter_set_nd(
        lhs, mx.nd.array([7.0, 8.0, 9.0]), mx.nd.array([[-1, 1, 2], [-2, 1, 0]]), shape=(2, 3)
    )
    expected = np.arange(6.0).reshape(2, 3)
    expected[1, 1] = 8.0
    np.testing.assert_array_equal(out.asnumpy(), expected)
