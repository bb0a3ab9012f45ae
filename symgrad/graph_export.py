"""Symbols to and from ``networkx.DiGraph``.

Layout of the DiGraph (what :func:`to_networkx` writes and :func:`from_networkx`
reads):

* one graph node per symbol node, keyed by its position in topological order,
  with ``name``, ``op`` (``'null'`` for variables), ``attrs`` (a dict of MXNet
  attribute strings), ``shape`` and ``dtype`` (of output 0, None when not
  known), ``num_outputs``, and ``inputs``: a list of ``(source key, output
  index)`` in input order;
* an edge from each source to its user with ``index`` (the output index of the
  first connection) and ``connections``, a list of ``(output index, input
  position)`` (a node may use one source twice, as in ``x * x``);
* ``graph.graph['heads']``: the symbol's outputs as ``(key, output index)``.

A graph built by hand may leave out ``inputs`` (the edges' ``index`` and
``position`` attributes are used, in insertion order by default) and
``heads`` (then every node without users is an output). A variable's
``shape``/``dtype`` declare its type only when the node has no ``attrs``;
otherwise they are what inference found, and ``attrs`` (``__shape__``...)
holds the declaration.

>>> import symgrad as mx
>>> g = (mx.sym.var("x", shape=(2,)) * 2).to_networkx()
>>> [(g.nodes[k]["op"], g.nodes[k]["shape"]) for k in g]
[('null', (2,)), ('_mul_scalar', (2,))]
>>> mx.sym.Symbol.from_networkx(g).list_arguments()
['x']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symgrad_compiler import Entry, GraphError, Node, topo_order

from .base import MXNetError
from .symbol import DTYPE_CODES, Symbol, node_attr_strings, remember_call, visible_count
from .symbol_json import _find_op, _variable
from .symbol_types import apply_op, materialize


def to_networkx(symbol: Symbol) -> Any:
    """The graph of ``symbol`` as a ``networkx.DiGraph`` (layout in the module doc)."""
    import networkx as nx

    typed = materialize(symbol.entries, partial=True)
    nodes = topo_order(symbol.entries)
    key = {id(node): i for i, node in enumerate(nodes)}
    graph = nx.DiGraph(heads=[(key[id(e.node)], e.index) for e in symbol.entries])
    for i, node in enumerate(nodes):
        copy = typed.nodes.get(node)
        graph.add_node(
            i,
            name=node.name,
            op=node.op.name,
            attrs=node_attr_strings(node, given_only=True),
            shape=None if copy is None else copy.types[0].shape,
            dtype=None if copy is None else copy.types[0].dtype.name,
            num_outputs=node.num_outputs,
            inputs=[(key[id(e.node)], e.index) for e in node.inputs],
        )
        for position, entry in enumerate(node.inputs):
            source = key[id(entry.node)]
            if graph.has_edge(source, i):
                graph.edges[source, i]["connections"].append((entry.index, position))
            else:
                graph.add_edge(
                    source,
                    i,
                    index=entry.index,
                    position=position,
                    connections=[(entry.index, position)],
                )
    return graph


def from_networkx(graph: Any) -> Symbol:
    """A Symbol from a ``networkx.DiGraph`` in the layout of :func:`to_networkx`.

    Raises :class:`MXNetError` for a cycle, an unknown op or a bad input reference.
    """
    import networkx as nx

    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:
        cycle = " -> ".join(str(u) for u, _ in nx.find_cycle(graph))
        raise MXNetError(f"from_networkx: the graph has a cycle through {cycle}") from None
    built: dict[Any, Node] = {}
    for key in order:
        data = graph.nodes[key]
        name = str(data.get("name", key))
        op = data.get("op")
        if op is None:
            raise MXNetError(f"from_networkx: node {key!r} has no 'op'")
        if op == "null":
            built[key] = _variable_from(name, data)
            continue
        inputs = []
        for source, index in _inputs_of(graph, key):
            node = built[source]
            if not 0 <= index < node.num_outputs:
                raise MXNetError(
                    f"from_networkx: node {key!r} reads output {index} of "
                    f"{source!r}, which has {node.num_outputs}"
                )
            inputs.append(Entry(node, index))
        opdef = _find_op(op, f"from_networkx: node {key!r} ({name!r})")
        attrs = {
            k: v
            for k, v in (data.get("attrs") or {}).items()
            if not (k.startswith("__") and k.endswith("__"))
        }
        try:
            built[key] = apply_op(opdef, inputs, attrs, name)
            remember_call(built[key], attrs)  # JSON writes them, as the original
        except GraphError as err:
            raise MXNetError(f"from_networkx: node {key!r} ({name!r}): {err}") from None
    heads = graph.graph.get("heads")
    if heads is None:
        heads = [
            (k, i)
            for k in order
            if graph.out_degree(k) == 0
            for i in range(visible_count(built[k]))
        ]
    return Symbol([Entry(built[k], i) for k, i in heads])


def _inputs_of(graph, key) -> list[tuple[Any, int]]:
    data = graph.nodes[key]
    if data.get("inputs") is not None:
        return [(source, int(index)) for source, index in data["inputs"]]
    pairs = []
    for order, (source, _, edge) in enumerate(graph.in_edges(key, data=True)):
        for index, position in edge.get("connections") or [
            (edge.get("index", 0), edge.get("position", order))
        ]:
            pairs.append((position, source, index))
    return [(source, index) for _, source, index in sorted(pairs, key=lambda p: p[0])]


def _variable_from(name: str, data: dict) -> Node:
    if "attrs" in data:  # exported: declared types are in the attrs, shape is inferred
        return _variable(name, dict(data["attrs"] or {}))
    attrs = {}
    if data.get("shape") is not None:
        attrs.setdefault("__shape__", str(tuple(data["shape"])))
    # float32 is every variable's default: leave it implicit, as MXNet's JSON does
    if data.get("dtype") is not None and np.dtype(data["dtype"]) != np.float32:
        name_of_dtype = np.dtype(data["dtype"]).name
        attrs.setdefault("__dtype__", str(DTYPE_CODES.get(name_of_dtype, name_of_dtype)))
    return _variable(name, attrs)


__all__ = ["to_networkx", "from_networkx"]
