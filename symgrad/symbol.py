"""``mx.sym``: symbolic graphs over the same IR the recorder builds.

>>> import symgrad as mx
>>> x = mx.sym.var("x")
>>> y = mx.sym.tanh(x * 2)
>>> y.list_arguments(), y.list_outputs()
(['x'], ['tanh0_output'])
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

import compiler
from compiler import Entry, Node, OperatorMixin, make_node, topo_order

from ._namespace import fill_namespace
from .base import MXNetError, MXNetShapeError

MXNET_VERSION = 10901

# Attributes the graph needs but MXNet's JSON does not carry.
_INTERNAL_ATTRS = frozenset({"is_train", "_draw", "callback"})


class Symbol(OperatorMixin):
    """A list of graph entries (several for a grouped symbol)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[Entry]):
        self._entries = list(entries)

    def _apply(self, op, inputs, attrs):
        try:
            node = make_node(op, [s._single_entry() for s in inputs], attrs)
        except compiler.GraphError as err:
            raise MXNetShapeError(str(err)) from None
        return Symbol([Entry(node, i) for i in range(node.num_outputs)])

    def _single_entry(self) -> Entry:
        if len(self._entries) != 1:
            raise MXNetError(f"a grouped symbol of {len(self._entries)} outputs cannot be "
                             "an op input; index it first")
        return self._entries[0]

    @property
    def name(self) -> str | None:
        """The name of the node of a single-output symbol."""
        return self._entries[0].node.name if len(self._entries) == 1 else None

    def __getitem__(self, index: int | str) -> "Symbol":
        if isinstance(index, str):
            names = self.list_outputs()
            if index not in names:
                raise MXNetError(f"no output named {index!r}; outputs are {names}")
            index = names.index(index)
        return Symbol([self._entries[index]])

    def __len__(self) -> int:
        return len(self._entries)

    def _nodes(self) -> list[Node]:
        return topo_order(self._entries)

    def list_arguments(self) -> list[str]:
        """Names of the input variables (auxiliary states excluded), in order."""
        aux = self._aux_nodes()
        return [n.name for n in self._nodes() if n.is_variable and id(n) not in aux]

    def list_auxiliary_states(self) -> list[str]:
        """Names of auxiliary-state variables (BatchNorm moving statistics)."""
        aux = self._aux_nodes()
        return [n.name for n in self._nodes() if id(n) in aux]

    def list_inputs(self) -> list[str]:
        """Names of all input variables."""
        return [n.name for n in self._nodes() if n.is_variable]

    def _aux_nodes(self) -> set[int]:
        aux = set()
        for node in self._nodes():
            names = node.op.input_names(node.attrs) if not node.op.variadic else ()
            for input_name, entry in zip(names, node.inputs):
                if input_name in node.op.aux:
                    aux.add(id(entry.node))
        return aux

    def list_outputs(self) -> list[str]:
        """Names of the outputs: ``<node>_output`` (``_output<i>`` for several)."""
        names = []
        for entry in self._entries:
            node = entry.node
            if node.is_variable:
                names.append(node.name)
            elif node.num_outputs == 1:
                names.append(f"{node.name}_output")
            else:
                names.append(f"{node.name}_output{entry.index}")
        return names

    def tojson(self) -> str:
        """The graph in MXNet 1.x's JSON format."""
        nodes = self._nodes()
        position = {id(n): i for i, n in enumerate(nodes)}
        records, row_ptr = [], [0]
        for node in nodes:
            record: dict[str, Any] = {"op": node.op.name, "name": node.name}
            attrs = {k: _format_attr(v) for k, v in node.attrs.items()
                     if k not in _INTERNAL_ATTRS}
            if node.op.variadic:
                attrs["num_args"] = str(len(node.inputs))
            if attrs:
                record["attrs"] = attrs
            record["inputs"] = [[position[id(e.node)], e.index, 0] for e in node.inputs]
            records.append(record)
            row_ptr.append(row_ptr[-1] + node.num_outputs)
        return json.dumps({
            "nodes": records,
            "arg_nodes": [i for i, n in enumerate(nodes) if n.is_variable],
            "node_row_ptr": row_ptr,
            "heads": [[position[id(e.node)], e.index, 0] for e in self._entries],
            "attrs": {"mxnet_version": ["int", MXNET_VERSION]},
        }, indent=2)

    def __repr__(self) -> str:
        return f"<Symbol {self.name or 'group ' + str(self.list_outputs())}>"


def _format_attr(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join("None" if v is None else str(v) for v in value) + \
               ("," if len(value) == 1 else "") + ")"
    return str(value)


def var(name: str, shape: Any = None, dtype: Any = None, **kwargs: Any) -> Symbol:
    """A named input variable; ``shape`` and ``dtype`` are optional."""
    node = compiler.variable(shape or (), dtype or np.float32, name=name)
    return Symbol([Entry(node, 0)])


Variable = var


def Group(symbols: Sequence[Symbol]) -> Symbol:
    """One symbol with the outputs of all ``symbols``."""
    return Symbol([e for s in symbols for e in s._entries])


def _is_symbol(value: Any) -> bool:
    return isinstance(value, Symbol)


def _apply(op, inputs, attrs):
    if not inputs:
        node = make_node(op, [], attrs)
        return Symbol([Entry(node, i) for i in range(node.num_outputs)])
    return inputs[0]._apply(op, inputs, attrs)


def _finish(result: Symbol, name: str | None = None, out: Any = None) -> Symbol:
    if name is not None:
        result._entries[0].node.name = name
    return result


fill_namespace(globals(), _apply, _is_symbol, _finish)
