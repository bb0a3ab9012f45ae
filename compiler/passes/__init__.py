"""The compiler's passes, run in one visible list.

Each pass is a pure function from :class:`~symgrad_compiler.graph.ProgramGraph`
to ProgramGraph; :data:`PIPELINE` is every pass, in order, and the compile
driver (:mod:`..driver`) runs exactly that list. Set ``SYMGRAD_PRINT_PASSES=1``
(or pass ``verbose=True``) to print the graph after each pass. Passes know
nothing of the program cache or of any backend.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import settings
from ..graph import ProgramGraph
from .blocked_layout import blocked_layouts
from .expand import expand_composites
from .fold import fold_constants
from .fuse import fuse, reroute_shape_inputs
from .one_hots import one_hots_in_loops
from .rewrite import rewrite
from .rnn_tape import keep_rnn_tapes
from .simplify import RULES


def simplify(graph: ProgramGraph) -> ProgramGraph:
    """CSE, algebraic identities and dead-code elimination (see ``simplify.RULES``)."""
    return rewrite(graph, RULES)


Pass = Callable[[ProgramGraph], ProgramGraph]

PIPELINE: list[tuple[str, Pass]] = [
    ("expand_composites", expand_composites),
    ("fold_constants", fold_constants),
    ("simplify", simplify),
    ("keep_rnn_tapes", keep_rnn_tapes),
    ("one_hots_in_loops", one_hots_in_loops),
    ("blocked_layouts", blocked_layouts),
    ("reroute_shape_inputs", reroute_shape_inputs),
    ("fuse", fuse),
]


def format_graph(graph: ProgramGraph) -> str:
    """A readable listing: one node a line, with op, attrs, inputs and shape."""
    names: dict[int, str] = {}
    lines = []
    for i, var in enumerate(graph.inputs):
        names[id(var)] = f"%in{i}"
        lines.append(f"%in{i} = input {var.types[0].shape} {var.types[0].dtype}")
    for node in graph.nodes():
        if id(node) in names:
            continue
        names[id(node)] = f"%{len(names)}"
        args = ", ".join(
            f"{names[id(e.node)]}" + (f"[{e.index}]" if e.index else "") for e in node.inputs
        )
        attrs = {k: v for k, v in node.attrs.items() if k != "body"}
        shapes = " ".join(str(t.shape) for t in node.types)
        lines.append(f"{names[id(node)]} = {node.op.name}({args}) {attrs or ''} -> {shapes}")
        if node.op.name == "_fused":
            body = node.attrs["body"]
            lines.append("    { " + "; ".join(n.op.name for n in body.nodes()) + " }")
    outs = ", ".join(
        "None" if o is None else names[id(o.node)] + f"[{o.index}]" for o in graph.outputs
    )
    lines.append(f"return {outs}")
    return "\n".join(lines)


def run_pass(name: str, apply: Pass, graph: ProgramGraph, verbose: bool | None = None):
    """``apply(graph)``, printing the result under ``name`` when asked to (see the
    module docstring)."""
    graph = apply(graph)
    if settings.current().print_passes if verbose is None else verbose:
        print(f"--- after {name}\n{format_graph(graph)}")
    return graph


def run_pipeline(graph: ProgramGraph, verbose: bool | None = None) -> ProgramGraph:
    """Run every pass of :data:`PIPELINE` in order."""
    for name, apply in PIPELINE:
        graph = run_pass(name, apply, graph, verbose)
    return graph


__all__ = [
    "PIPELINE",
    "expand_composites",
    "fold_constants",
    "format_graph",
    "fuse",
    "keep_rnn_tapes",
    "one_hots_in_loops",
    "reroute_shape_inputs",
    "run_pass",
    "run_pipeline",
    "simplify",
]
