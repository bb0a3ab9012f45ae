"""Looking at symbols: a text listing (``print(sym)``) and ``mx.viz.plot_network``.

``plot_network`` always returns the graph as Graphviz DOT text (a ``str``); its
``render`` method draws it through the ``graphviz`` package when that is
installed (the ``examples`` extra). Nothing here needs graphviz.

>>> import symgrad as mx
>>> net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc")
>>> dot = mx.viz.plot_network(net, shape={"data": (2, 3)})
>>> dot.splitlines()[0]
'digraph plot {'
>>> '"fc" [label="FullyConnected\\\\n4"' in dot
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from symgrad_compiler import Entry, Node, topo_order

from .symbol import Symbol, node_attr_strings, output_name, visible_count
from .symbol_types import materialize

# Parameter variables that plot_network hides (MXNet's hide_weights).
_WEIGHT_SUFFIXES = ("_weight", "_bias", "_gamma", "_beta", "_moving_mean", "_moving_var")

# Fill colours by kind of op, in the manner of MXNet's plot.
_COLOURS = {
    "null": "#8dd3c7",
    "blas": "#fb8072",
    "elemwise": "#ffffb3",
    "softmax": "#fccde5",
    "norm": "#bebada",
    "random": "#fdb462",
    "shape": "#b3de69",
    "reduce": "#80b1d3",
}


def _typed(symbol: Symbol, shapes: Mapping[str, Any] | None = None):
    return materialize(symbol.entries, shapes or {}, partial=True)


def _input_label(entry: Entry) -> str:
    node = entry.node
    return (
        node.name if visible_count(node) == 1 or node.is_variable else f"{node.name}[{entry.index}]"
    )


def debug_str(symbol: Symbol, shapes: Mapping[str, Any] | None = None) -> str:
    """One line per node: ``name = op(inputs; attrs) -> shapes dtype``, ``?``
    for shapes not known yet (give ``shapes`` by variable name to infer them)."""
    typed = _typed(symbol, shapes)
    lines = [f"Symbol outputs: {', '.join(symbol.list_outputs())}"]
    for node in topo_order(symbol.entries):
        attrs = node_attr_strings(node)
        inputs = ", ".join(_input_label(e) for e in node.inputs)
        if attrs:
            inputs += ("; " if inputs else "") + ", ".join(f"{k}={v}" for k, v in attrs.items())
        copy = typed.nodes.get(node)
        if copy is None:
            types = "?"
        else:
            shown = copy.types[: visible_count(node)] if not node.is_variable else copy.types
            types = ", ".join(str(t.shape) for t in shown) + f" {shown[0].dtype}"
        lines.append(f"  {node.name} = {node.op.name}({inputs}) -> {types}")
    return "\n".join(lines)


class DotGraph(str):
    """Graphviz DOT text, with :meth:`render` to draw it through ``graphviz``."""

    format: str = "pdf"
    title: str = "plot"

    @property
    def source(self) -> str:
        """The DOT text (as ``graphviz.Digraph.source``)."""
        return str(self)

    def render(
        self,
        filename: str | None = None,
        directory: str | None = None,
        view: bool = False,
        cleanup: bool = True,
    ) -> str:
        """Draw to ``<filename>.<format>`` with the ``graphviz`` package and the
        ``dot`` program; returns the written path."""
        try:
            import graphviz
        except ImportError:
            raise ImportError(
                "rendering needs the graphviz package (pip install "
                "'symgrad[examples]') and Graphviz's dot program; the DOT "
                "text itself is this string"
            ) from None
        source = graphviz.Source(str(self), format=self.format)
        return source.render(
            filename or self.title, directory=directory, view=view, cleanup=cleanup
        )


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _label(node: Node) -> str:
    attrs = node.attrs
    if node.is_variable:
        return node.name
    if node.op.name == "FullyConnected":
        return f"FullyConnected\n{attrs['num_hidden']}"
    if node.op.name == "Activation":
        return f"Activation\n{attrs['act_type']}"
    if "scalar" in attrs:
        return f"{node.op.name}\n{node_attr_strings(node)['scalar']}"
    return f"{node.op.name}\n{node.name}"


def plot_network(
    symbol: Symbol,
    title: str = "plot",
    save_format: str = "pdf",
    shape: Mapping[str, Any] | None = None,
    dtype: Any = None,
    node_attrs: Mapping[str, str] | None = None,
    hide_weights: bool = True,
) -> DotGraph:
    """The graph of ``symbol`` in Graphviz DOT, in the manner of MXNet's
    ``mx.viz.plot_network``.

    Parameters
    ----------
    symbol : Symbol
    title : str
        Graph name (and default file name for :meth:`DotGraph.render`).
    save_format : {'pdf', 'png', 'svg', 'dot'}
        Format :meth:`DotGraph.render` writes.
    shape : dict, optional
        Input shapes by name; edges are then labelled with inferred shapes.
    node_attrs : dict, optional
        Extra Graphviz attributes for every node.
    hide_weights : bool
        Leave out parameter variables (``*_weight``, ``*_bias``, ...).
    """
    if save_format not in ("pdf", "png", "svg", "dot", "jpg"):
        raise ValueError(f"save_format must be pdf, png, svg or dot, got {save_format!r}")
    typed = _typed(symbol, shape) if shape else None
    base = {"shape": "box", "fixedsize": "false", "style": "filled", **(node_attrs or {})}
    style = ", ".join(f"{k}={_quote(v)}" for k, v in base.items())
    lines = [
        f"digraph {_quote(title) if not title.isidentifier() else title} {{",
        f"  node [{style}];",
    ]
    hidden: set[int] = set()
    for node in topo_order(symbol.entries):
        if hide_weights and node.is_variable and node.name.endswith(_WEIGHT_SUFFIXES):
            hidden.add(id(node))
            continue
        colour = _COLOURS.get("null" if node.is_variable else node.op.kind, "#d9d9d9")
        shape_attr = ', shape="oval"' if node.is_variable else ""
        lines.append(
            f"  {_quote(node.name)} [label={_quote(_label(node))}, "
            f"fillcolor={_quote(colour)}{shape_attr}];"
        )
    for node in topo_order(symbol.entries):
        if id(node) in hidden:
            continue
        for entry in node.inputs:
            if id(entry.node) in hidden:
                continue
            label = ""
            if typed is not None and typed.entry(entry) is not None:
                label = "x".join(str(s) for s in typed.entry(entry).shape)
            # edges point from output to input, as data flows (MXNet draws them reversed)
            lines.append(
                f"  {_quote(entry.node.name)} -> {_quote(node.name)}"
                + (f" [label={_quote(label)}]" if label else "")
                + ";"
            )
    for entry in symbol.entries:
        lines.append(
            f"  {_quote(output_name(entry) + ' (out)')} [shape=plaintext, "
            f'style="", label={_quote(output_name(entry))}];'
        )
        lines.append(f"  {_quote(entry.node.name)} -> {_quote(output_name(entry) + ' (out)')};")
    lines.append("}")
    dot = DotGraph("\n".join(lines) + "\n")
    dot.format = "dot" if save_format == "dot" else save_format
    dot.title = title
    return dot


def print_summary(symbol: Symbol, shape: Mapping[str, Any] | None = None) -> None:
    """Print :func:`debug_str` with shapes inferred from ``shape``."""
    print(debug_str(symbol, shape))


__all__ = ["DotGraph", "debug_str", "plot_network", "print_summary"]
