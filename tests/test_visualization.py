"""mx.viz.plot_network: a graphviz.Digraph with the graphviz package, DOT text without."""

from __future__ import annotations

import builtins

import pytest

import symgrad as mx
from symgrad.visualization import DotGraph


def net():
    data = mx.sym.var("data", shape=(3, 4))
    parts = mx.sym.split(data, num_outputs=2, axis=1, name="parts")
    both = mx.sym.concat(parts[1], parts[0] * parts[0], dim=0, name="both")
    return mx.sym.FullyConnected(mx.sym.tanh(both, name="t"), num_hidden=5, name="fc")


def hide_graphviz(monkeypatch) -> None:
    """Make ``import graphviz`` fail, as on a machine without the package."""
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "graphviz" or name.startswith("graphviz."):
            raise ImportError("No module named 'graphviz'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


@pytest.fixture
def no_graphviz(monkeypatch):
    hide_graphviz(monkeypatch)


def test_without_graphviz_plot_network_returns_dot_text(no_graphviz):
    dot = mx.viz.plot_network(net(), title="mlp", save_format="svg")
    assert isinstance(dot, DotGraph) and isinstance(dot, str)
    assert dot.startswith("digraph mlp {") and dot.endswith("}\n")
    assert dot.format == "svg" and dot.source == str(dot)
    assert '"fc" [label="FullyConnected\\n5"' in dot
    assert '"data" [label="data", fillcolor="#8dd3c7", shape="oval"];' in dot
    assert '"fc_weight"' not in dot  # weights hidden as in MXNet
    assert '"parts" -> "both";' in dot
    shown = mx.viz.plot_network(
        net(), hide_weights=False, shape={"data": (3, 4)}, node_attrs={"fontsize": "10"}
    )
    assert '"fc_weight" -> "fc" [label="5x2"];' in shown and 'fontsize="10"' in shown
    assert '"t" -> "fc" [label="6x2"];' in shown
    # nodes show their output shapes, variables under their own names
    assert '"fc" [label="FullyConnected\\n5\\n(6, 5)"' in shown
    assert '"data" [label="data\\n(3, 4)"' in shown
    assert '"fc_weight" [label="fc_weight\\n(5, 2)"' in shown
    with pytest.raises(ImportError, match=r"graphviz package \(pip install"):
        dot.render("never-written")


def test_with_graphviz_plot_network_returns_a_digraph():
    import graphviz  # in the docs extra, which CI installs

    graph = mx.viz.plot_network(net(), title="mlp", save_format="png", shape={"data": (3, 4)})
    assert isinstance(graph, graphviz.Digraph)
    assert graph.format == "png" and graph.name == "mlp"
    source = graph.source
    assert source.startswith("digraph mlp {")
    assert 'fc [label="FullyConnected\\n5\\n(6, 5)"' in source
    assert 'data [label="data\\n(3, 4)"' in source and "shape=oval" in source
    assert 't -> fc [label="6x2"]' in source
    assert "fc_weight" not in source
    assert '"fc_output (out)" [label=fc_output' in source
    # a notebook shows it as a picture: graphviz's own rich display hook is there
    assert hasattr(graph, "_repr_mimebundle_") or hasattr(graph, "_repr_svg_")


def _edges(source: str) -> list[str]:
    return sorted(
        line.strip().rstrip(";").replace('"', "") for line in source.splitlines() if "->" in line
    )


def test_the_text_and_the_digraph_draw_the_same_graph(monkeypatch):
    symbol = net()
    graph = mx.viz.plot_network(symbol, shape={"data": (3, 4)})
    assert not isinstance(graph, str)  # graphviz is installed here
    hide_graphviz(monkeypatch)
    text = mx.viz.plot_network(symbol, shape={"data": (3, 4)})
    assert isinstance(text, DotGraph)
    assert _edges(graph.source) == _edges(text)
    assert len(_edges(text)) == 8 and "parts -> both [label=3x2]" in _edges(text)


def test_save_format_is_checked():
    with pytest.raises(ValueError, match="save_format"):
        mx.viz.plot_network(net(), save_format="bmp")
