"""Symbols to and from MXNet 1.x JSON.

The format (what ``mx.sym.Symbol.tojson`` writes in MXNet 1.9)::

    {"nodes": [{"op": "null", "name": "x", "inputs": []},
               {"op": "tanh", "name": "tanh0", "attrs": {...}, "inputs": [[0, 0, 0]]}],
     "arg_nodes": [0], "node_row_ptr": [0, 1, 2], "heads": [[1, 0, 0]],
     "attrs": {"mxnet_version": ["int", 10901]}}

Nodes are listed inputs first; an input is ``[node, output index, version]``;
attribute values are strings, parsed on loading by each op's attribute parsers.
Attributes symgrad needs internally (``is_train``, ``_draw``, ``callback``) are
not written: a loaded graph runs in the mode its executor chooses.

>>> import symgrad as mx
>>> y = mx.sym.tanh(mx.sym.var("x") * 2, name="y")
>>> z = mx.sym.load_json(y.tojson())
>>> z.list_arguments(), z.list_outputs()
(['x'], ['y_output'])
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from symgrad_compiler import OPS, Entry, GraphError, Node, OpDef, TensorType, topo_order
from symgrad_compiler.registry import NULL

from ._namespace import num_args_inputs
from .attribute import set_op_node_attrs
from .base import MXNetError
from .symbol import (
    DTYPE_NAMES,
    INTERNAL_ATTRS,
    Symbol,
    format_attr,
    node_attr_strings,
    remember_call,
)
from .symbol_types import UNKNOWN, apply_op

MXNET_VERSION = 10901

# Other names MXNet uses for the same ops (legacy JSON and operator aliases).
LEGACY_OP_NAMES = {
    "_Plus": "elemwise_add",
    "_plus": "elemwise_add",
    "_add": "elemwise_add",
    "_Minus": "elemwise_sub",
    "_minus": "elemwise_sub",
    "_sub": "elemwise_sub",
    "_Mul": "elemwise_mul",
    "_mul": "elemwise_mul",
    "_Div": "elemwise_div",
    "_div": "elemwise_div",
    "_PlusScalar": "_plus_scalar",
    "_MinusScalar": "_minus_scalar",
    "_RMinusScalar": "_rminus_scalar",
    "_MulScalar": "_mul_scalar",
    "_DivScalar": "_div_scalar",
    "_RDivScalar": "_rdiv_scalar",
    "_PowerScalar": "_power_scalar",
    "_RPowerScalar": "_rpower_scalar",
    "_MaximumScalar": "_maximum_scalar",
    "_MinimumScalar": "_minimum_scalar",
    "_Maximum": "broadcast_maximum",
    "_Minimum": "broadcast_minimum",
    "_Power": "broadcast_power",
    "_power": "broadcast_power",
    "_maximum": "broadcast_maximum",
    "_minimum": "broadcast_minimum",
}

# Attributes that only tune MXNet's kernels; dropping them changes no value.
IGNORED_ATTRS = frozenset({"cudnn_off", "cudnn_tune", "workspace", "num_args"})


class SymbolJSONError(MXNetError, ValueError):
    """Symbol JSON that cannot be read: malformed, or naming unknown ops."""


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def to_json(symbol: Symbol) -> str:
    """MXNet 1.x JSON text for ``symbol``."""
    nodes = topo_order(symbol.entries)
    position = {id(n): i for i, n in enumerate(nodes)}
    records, row_ptr = [], [0]
    for node in nodes:
        record: dict[str, Any] = {"op": node.op.name, "name": node.name}
        # the parameters the call gave (defaults are filled again on reading), in
        # MXNet's order (sorted by key)
        attrs = node_attr_strings(node, given_only=True)
        if attrs:
            record["attrs"] = dict(sorted(attrs.items()))
        record["inputs"] = [[position[id(e.node)], e.index, 0] for e in node.inputs]
        records.append(record)
        row_ptr.append(row_ptr[-1] + node.num_outputs)
    return json.dumps(
        {
            "nodes": records,
            "arg_nodes": [i for i, n in enumerate(nodes) if n.is_variable],
            "node_row_ptr": row_ptr,
            "heads": [[position[id(e.node)], e.index, 0] for e in symbol.entries],
            "attrs": {"mxnet_version": ["int", MXNET_VERSION]},
        },
        indent=2,
    )


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


def load(fname: str) -> Symbol:
    """Read a Symbol from an MXNet JSON file."""
    with open(fname, encoding="utf-8") as handle:
        return load_json(handle.read())


def load_json(json_str: str) -> Symbol:
    """A Symbol from MXNet JSON text.

    Raises
    ------
    SymbolJSONError
        For text that is not JSON or not a symbol graph, an unknown op (named),
        an input that refers to a missing node or output, a cycle, or attributes
        an op does not take.

    >>> import symgrad as mx
    >>> mx.sym.load_json('{"nodes": [{"op": "Frobnicate", "name": "f", "inputs": []}], '
    ...                  '"heads": [[0, 0, 0]]}')
    Traceback (most recent call last):
    ...
    symgrad.symbol_json.SymbolJSONError: node 0 ('f'): unknown op 'Frobnicate'
    """
    try:
        graph = json.loads(json_str)
    except (TypeError, ValueError) as err:
        raise SymbolJSONError(f"not valid JSON: {err}") from None
    if (
        not isinstance(graph, dict)
        or not isinstance(graph.get("nodes"), list)
        or not isinstance(graph.get("heads"), list)
    ):
        raise SymbolJSONError(
            "not a symbol graph: expected an object with lists 'nodes' and 'heads'"
        )
    records = [_check_record(i, rec) for i, rec in enumerate(graph["nodes"])]
    built: list[Node | None] = [None] * len(records)
    for i in _dependency_order(records):
        built[i] = _build_node(i, records[i], built)
    heads = [_entry_of(ref, built, records, "heads") for ref in graph["heads"]]
    if not heads:
        raise SymbolJSONError("the graph has no heads")
    return Symbol(heads)


def _check_record(i: int, record: Any) -> dict:
    if not isinstance(record, dict):
        raise SymbolJSONError(f"node {i} is not an object")
    for key, kind in (("op", str), ("name", str), ("inputs", list)):
        if not isinstance(record.get(key), kind):
            raise SymbolJSONError(
                f"node {i} needs {key!r} as a {kind.__name__}, got {record.get(key)!r}"
            )
    attrs: dict[str, Any] = {}
    for key in ("param", "attr", "attrs"):  # 'param'/'attr' in files before MXNet 1.0
        value = record.get(key) or {}
        if not isinstance(value, dict):
            raise SymbolJSONError(f"node {i} ({record['name']!r}): {key!r} must be an object")
        attrs.update(value)
    for ref in record["inputs"]:
        _check_ref(ref, f"node {i} ({record['name']!r})")
    return dict(record, attrs=attrs)


def _check_ref(ref: Any, where: str) -> None:
    if (
        not isinstance(ref, list)
        or len(ref) not in (2, 3)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in ref)
    ):
        raise SymbolJSONError(f"{where}: an input must be [node, index, version], got {ref!r}")


def _dependency_order(records: list[dict]) -> list[int]:
    """Node indices with every node after its inputs; errors on missing nodes and
    cycles (MXNet writes inputs first, but the order is not trusted)."""
    count = len(records)
    order: list[int] = []
    state = [0] * count  # 0 unvisited, 1 on the current path, 2 done
    for start in range(count):
        if state[start]:
            continue
        stack = [(start, iter(records[start]["inputs"]))]
        state[start] = 1
        while stack:
            index, pending = stack[-1]
            for ref in pending:
                child = ref[0]
                if not 0 <= child < count:
                    raise SymbolJSONError(
                        f"node {index} ({records[index]['name']!r}) takes input from node "
                        f"{child}, which does not exist ({count} nodes)"
                    )
                if state[child] == 1:
                    path = [records[i]["name"] for i, _ in stack]
                    cycle = path[path.index(records[child]["name"]) :] + [records[child]["name"]]
                    raise SymbolJSONError(f"the graph has a cycle: {' -> '.join(cycle)}")
                if state[child] == 0:
                    state[child] = 1
                    stack.append((child, iter(records[child]["inputs"])))
                    break
            else:
                stack.pop()
                state[index] = 2
                order.append(index)
    return order


def _entry_of(ref: Any, built: list, records: list, where: str) -> Entry:
    _check_ref(ref, where)
    node_index, output = ref[0], ref[1]
    if not 0 <= node_index < len(built):
        raise SymbolJSONError(f"{where}: node {node_index} does not exist ({len(built)} nodes)")
    node = built[node_index]
    if not 0 <= output < node.num_outputs:
        raise SymbolJSONError(
            f"{where}: node {node_index} ({node.name!r}, op "
            f"{node.op.name}) has {node.num_outputs} output(s), not "
            f"output {output}"
        )
    return Entry(node, output)


def _build_node(i: int, record: dict, built: list) -> Node:
    where = f"node {i} ({record['name']!r})"
    inputs = [_entry_of(ref, built, [], where) for ref in record["inputs"]]
    if record["op"] == "null":
        if inputs:
            raise SymbolJSONError(f"{where}: a variable cannot have inputs")
        return _variable(record["name"], record["attrs"])
    opdef = _find_op(record["op"], where)
    attrs, annotations = {}, {}
    for key, value in record["attrs"].items():
        if key.startswith("__") and key.endswith("__"):
            annotations[key] = str(value)  # user annotations (__ctx_group__ ...) on ops
            continue
        if key in INTERNAL_ATTRS:
            continue
        if key == "num_args" and opdef.variadic and "num_args" in opdef.attrs:
            try:
                own = {k: v for k, v in record["attrs"].items() if k in opdef.attrs}
                expected = num_args_inputs(opdef, own, len(inputs))
            except MXNetError as err:
                raise SymbolJSONError(f"{where}: {err}") from None
            if len(expected) != len(inputs):
                raise SymbolJSONError(
                    f"{where}: num_args is {value}, so {opdef.name} takes "
                    f"{len(expected)} inputs, but the node has {len(inputs)}"
                )
            continue  # (kept canonical, 0: the node's input count)
        if key in IGNORED_ATTRS and key not in opdef.attrs:
            continue
        if not opdef.attrs:
            # an op without parameters keeps any attribute as the user's, as MXNet
            # does (an op with parameters refuses an unknown one, below)
            annotations[key] = str(value)
            continue
        attrs[key] = value
    try:
        node = apply_op(opdef, inputs, attrs, record["name"])
    except GraphError as err:
        raise SymbolJSONError(f"{where}: {err}") from None
    set_op_node_attrs(node, annotations)
    remember_call(node, attrs)
    return node


def _find_op(name: str, where: str) -> OpDef:
    opdef = OPS.get(name) or OPS.get(LEGACY_OP_NAMES.get(name, ""))
    if opdef is None or opdef.name == "null":
        raise SymbolJSONError(f"{where}: unknown op {name!r}")
    return opdef


def _variable(name: str, attrs: dict) -> Node:
    attrs = {str(k): format_attr(v) if not isinstance(v, str) else v for k, v in attrs.items()}
    shape = dtype = None
    try:
        if "__shape__" in attrs:
            shape = tuple(
                int(s)
                for s in json.loads(
                    attrs["__shape__"].replace("(", "[").replace(")", "]").replace(",]", "]")
                )
            )
        if "__dtype__" in attrs:
            code = attrs["__dtype__"]
            dtype = np.dtype(DTYPE_NAMES[int(code)] if code.lstrip("-").isdigit() else code)
    except (ValueError, KeyError, TypeError) as err:
        raise SymbolJSONError(
            f"variable {name!r}: bad __shape__/__dtype__ attribute: {err}"
        ) from None
    node_type = UNKNOWN
    if shape is not None or dtype is not None:
        known = shape is not None and all(size > 0 for size in shape)
        node_type = TensorType(
            shape if known else None,
            dtype if dtype is not None else (np.dtype(np.float32) if known else None),
        )
    return Node(NULL, attrs, (), (node_type,), name)


__all__ = ["SymbolJSONError", "load", "load_json", "to_json", "MXNET_VERSION"]
