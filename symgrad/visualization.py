"""Looking at symbols: a text listing (``print(sym)``) and ``mx.viz.plot_network``.

``plot_network`` returns a ``graphviz.Digraph`` when the ``graphviz`` package is
installed (the ``examples`` extra), as MXNet's does, so a notebook shows the
picture; otherwise it returns the same graph as Graphviz DOT text (a
:class:`DotGraph`, a ``str``). Both have ``.source`` (the DOT text) and
``render``.

>>> import symgrad as mx
>>> net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc")
>>> graph = mx.viz.plot_network(net, shape={"data": (2, 3)})
>>> graph.source.splitlines()[0]
'digraph plot {'
>>> "FullyConnected" in graph.source and "(2, 4)" in graph.source
True
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
        return node.name  # the variable's own name, as the user gave it
    if node.op.name == "FullyConnected":
        return f"FullyConnected\n{attrs['num_hidden']}"
    if node.op.name == "Activation":
        return f"Activation\n{attrs['act_type']}"
    if "scalar" in attrs:
        return f"{node.op.name}\n{node_attr_strings(node)['scalar']}"
    return f"{node.op.name}\n{node.name}"


def _shape_text(shape: tuple[int, ...]) -> str:
    # (2, 4) as a tuple prints, (3,) for one axis
    return str(tuple(int(s) for s in shape))


@dataclass
class _Drawing:
    """The graph to draw, independent of how it is written: nodes as
    ``(name, label, attrs)`` and edges as ``(tail, head, label)``."""

    nodes: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)


def _drawing(symbol: Symbol, typed: Any, hide_weights: bool) -> _Drawing:
    drawing = _Drawing()
    hidden: set[int] = set()
    order = topo_order(symbol.entries)
    for node in order:
        if hide_weights and node.is_variable and node.name.endswith(_WEIGHT_SUFFIXES):
            hidden.add(id(node))
            continue
        label = _label(node)
        copy = typed.nodes.get(node) if typed is not None else None
        if copy is not None:
            # the node's (visible) output shapes under its label
            shown = copy.types if node.is_variable else copy.types[: visible_count(node)]
            label += "\n" + ", ".join(_shape_text(t.shape) for t in shown)
        colour = _COLOURS.get("null" if node.is_variable else node.op.kind, "#d9d9d9")
        attrs = {"fillcolor": colour}
        if node.is_variable:
            attrs["shape"] = "oval"
        drawing.nodes.append((node.name, label, attrs))
    for node in order:
        if id(node) in hidden:
            continue
        for entry in node.inputs:
            if id(entry.node) in hidden:
                continue
            label = ""
            if typed is not None and typed.entry(entry) is not None:
                label = "x".join(str(s) for s in typed.entry(entry).shape)
            # edges point from output to input, as data flows (MXNet draws them reversed)
            drawing.edges.append((entry.node.name, node.name, label))
    for entry in symbol.entries:
        name = output_name(entry)
        drawing.nodes.append(
            (f"{name} (out)", name, {"shape": "plaintext", "style": "", "fillcolor": ""})
        )
        drawing.edges.append((entry.node.name, f"{name} (out)", ""))
    return drawing


def _dot_text(drawing: _Drawing, title: str, base: Mapping[str, str]) -> str:
    style = ", ".join(f"{k}={_quote(v)}" for k, v in base.items())
    lines = [
        f"digraph {_quote(title) if not title.isidentifier() else title} {{",
        f"  node [{style}];",
    ]
    for name, label, attrs in drawing.nodes:
        extra = "".join(f", {k}={_quote(v)}" for k, v in attrs.items() if v or k == "style")
        lines.append(f"  {_quote(name)} [label={_quote(label)}{extra}];")
    for tail, head, label in drawing.edges:
        shown = f" [label={_quote(label)}]" if label else ""
        lines.append(f"  {_quote(tail)} -> {_quote(head)}{shown};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _digraph(drawing: _Drawing, title: str, base: Mapping[str, str], save_format: str) -> Any:
    import graphviz

    # graphviz writes label text as given: a line break is DOT's \n escape
    graph = graphviz.Digraph(name=title, format=save_format, node_attr=dict(base))
    for name, label, attrs in drawing.nodes:
        kept = {k: v for k, v in attrs.items() if v or k == "style"}
        graph.node(_escape_port(name), label=label.replace("\n", "\\n"), **kept)
    for tail, head, label in drawing.edges:
        graph.edge(_escape_port(tail), _escape_port(head), **({"label": label} if label else {}))
    return graph


def _escape_port(name: str) -> str:
    # graphviz reads "a:b" in an edge as node a, port b; MXNet names rarely hold ':'
    return name.replace(":", "_")


def _graphviz_available() -> bool:
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return True


def plot_network(
    symbol: Symbol,
    title: str = "plot",
    save_format: str = "pdf",
    shape: Mapping[str, Any] | None = None,
    dtype: Any = None,
    node_attrs: Mapping[str, str] | None = None,
    hide_weights: bool = True,
) -> Any:
    """Draw the graph of ``symbol``, in the manner of MXNet's ``mx.viz.plot_network``.

    Each op is a box labelled with its op (and its main attribute); each variable
    is an oval with the variable's own name; each output of ``symbol`` is a
    plain-text node. With ``shape``, every node also shows its inferred output
    shape and every edge the shape of the array it carries.

    Parameters
    ----------
    symbol : Symbol
        The graph to draw.
    title : str
        Graph name (and default file name for ``render``).
    save_format : {'pdf', 'png', 'svg', 'jpg', 'dot'}
        Format that ``render`` writes.
    shape : dict, optional
        Input shapes by variable name; node and edge labels then show shapes.
    dtype : optional
        Accepted for MXNet's signature; the dtypes shown are inferred.
    node_attrs : dict, optional
        Extra Graphviz attributes for every node (``{"fontsize": "10"}``).
    hide_weights : bool
        Leave out parameter variables (``*_weight``, ``*_bias``, ...), as MXNet.

    Returns
    -------
    graphviz.Digraph or DotGraph
        A ``graphviz.Digraph`` when the ``graphviz`` package is installed (a
        notebook displays it as a picture); otherwise the DOT text as a
        :class:`DotGraph` (a ``str`` with ``.source`` and ``render``).
    """
    if save_format not in ("pdf", "png", "svg", "dot", "jpg"):
        raise ValueError(f"save_format must be pdf, png, svg, jpg or dot, got {save_format!r}")
    typed = _typed(symbol, shape) if shape else None
    drawing = _drawing(symbol, typed, hide_weights)
    base = {"shape": "box", "fixedsize": "false", "style": "filled", **(node_attrs or {})}
    if _graphviz_available():
        return _digraph(drawing, title, base, save_format)
    dot = DotGraph(_dot_text(drawing, title, base))
    dot.format = save_format
    dot.title = title
    return dot


def print_summary(
    symbol: Symbol,
    shape: Mapping[str, Any] | None = None,
    line_length: int = 120,
    positions: Sequence[float] = (0.44, 0.64, 0.74, 1.0),
) -> None:
    """Print MXNet 1.x's layer table of ``symbol``: one row per op node (and the
    first variable), with its output shape without the batch axis, its count of
    parameters, and the layers it reads; then the total.

    Parameters
    ----------
    symbol : Symbol
        The network.
    shape : dict of str to tuple, optional
        Input shapes by variable name; without them the shape column is empty
        and the counts that need an input's width leave it out.
    line_length : int
        Width of the table in characters.
    positions : sequence of float
        Where each of the four columns ends, as fractions of ``line_length`` (or
        in characters when the last is over 1).

    Notes
    -----
    The counts follow MXNet's rules exactly, quirks included: a layer's input
    width is the first axis after the batch of the inputs it lists (op outputs,
    and the graph's first variable), so ``FullyConnected`` counts
    ``(width + 1) * num_hidden``, ``Convolution``
    ``width * num_filter / num_group * prod(kernel)`` plus ``num_filter`` for the
    bias, ``BatchNorm`` ``2 * channels`` and ``Embedding``
    ``input_dim * output_dim``; other ops count 0.

    Examples
    --------
    >>> import symgrad as mx
    >>> net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc")
    >>> mx.viz.print_summary(net, shape={"data": (2, 3)}, line_length=80)
    ________________________________________________________________________________
    Layer (type)                       Output Shape    Param # Previous Layer
    ================================================================================
    data(null)                         3               0
    ________________________________________________________________________________
    fc(FullyConnected)                 4               16      data
    ================================================================================
    Total params: 16
    ________________________________________________________________________________
    """
    for line in summary_lines(symbol, shape, line_length, positions):
        print(line)


def summary_lines(
    symbol: Symbol,
    shape: Mapping[str, Any] | None = None,
    line_length: int = 120,
    positions: Sequence[float] = (0.44, 0.64, 0.74, 1.0),
) -> list[str]:
    """The lines :func:`print_summary` prints (trailing blanks included)."""
    import json

    shapes: dict[str, tuple[int, ...]] = {}
    if shape is not None:
        internals = symbol.get_internals()
        _, out_shapes, _ = internals.infer_shape(**shape)
        if out_shapes is None:
            raise ValueError("Input shape is incomplete")
        shapes = dict(zip(internals.list_outputs(), out_shapes))
    ends = list(positions)
    if ends[-1] <= 1:
        ends = [int(line_length * p) for p in ends]
    conf = json.loads(symbol.tojson())
    nodes = conf["nodes"]
    # MXNet takes the first head's [node, index, version] triple as a set of node
    # ids, so node 0 (usually the data) counts as a "head" too: kept for its numbers.
    heads = set(conf["heads"][0])

    def row(fields: Sequence[Any]) -> str:
        line = ""
        for text, end in zip(fields, ends):
            line = (line + str(text))[:end]
            line += " " * (end - len(line))
        return line

    def shape_of(node: dict[str, Any]) -> tuple[int, ...] | None:
        key = node["name"] if node["op"] == "null" else node["name"] + "_output"
        found = shapes.get(key)
        return None if found is None else tuple(found)[1:]

    lines = ["_" * line_length, row(["Layer (type)", "Output Shape", "Param #", "Previous Layer"])]
    lines.append("=" * line_length)
    total = 0
    for i, node in enumerate(nodes):
        op = node["op"]
        if op == "null" and i > 0:
            continue
        previous: list[str] = []
        width = 0
        if op != "null":
            for item in node["inputs"]:
                source = nodes[item[0]]
                if source["op"] != "null" or item[0] in heads:
                    previous.append(source["name"])
                    seen = shape_of(source)
                    if seen:
                        width += int(seen[0])
        params = _layer_params(node, width, shapes)
        total += params
        out = shape_of(node) or ()
        first = previous[0] if previous else ""
        lines.append(row([f"{node['name']}({op})", "x".join(map(str, out)), params, first]))
        lines.extend(row(["", "", "", name]) for name in previous[1:])
        lines.append(("=" if i == len(nodes) - 1 else "_") * line_length)
    lines.append(f"Total params: {total}")
    lines.append("_" * line_length)
    return lines


def _layer_params(node: dict[str, Any], width: int, shapes: Mapping[str, Any]) -> int:
    """MXNet's parameter count of one JSON node whose inputs are ``width`` wide."""
    op, attrs = node["op"], node.get("attrs", {})
    bias = attrs.get("no_bias") != "True"
    if op == "Convolution":
        count = width * int(attrs["num_filter"]) // int(attrs.get("num_group", "1"))
        kernel = ast.literal_eval(attrs["kernel"])
        for size in kernel if isinstance(kernel, tuple) else (kernel,):
            count *= int(size)
        return count + (int(attrs["num_filter"]) if bias else 0)
    if op == "FullyConnected":
        return (width + (1 if bias else 0)) * int(attrs["num_hidden"])
    if op == "BatchNorm":
        found = shapes.get(node["name"] + "_output")
        return 2 * int(found[1]) if found is not None else 0
    if op == "Embedding":
        return int(attrs["input_dim"]) * int(attrs["output_dim"])
    return 0


__all__ = ["DotGraph", "debug_str", "plot_network", "print_summary", "summary_lines"]
