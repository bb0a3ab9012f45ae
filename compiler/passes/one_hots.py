"""``one_hots_in_loops``: pick's gradient computed inside the loop that reads it.

``_pick_grad(g, index, like)`` writes zeros shaped like ``like`` with ``g`` at the
picked positions; a softmax cross-entropy's gradient then reads that one-hot in
an elementwise loop (W8: a (1120, 10000) float32 array, 45 MB written and read
again each step). Where an elementwise op reads it, the pass rewrites it as
``_one_hot_at(g, columns, positions)``, an elementwise select of ``g`` where a
picked column equals the column number, with the columns and column numbers (a
column and a row of them, float64) from ``_pick_positions``; fusion then puts
the select into the reading loop, and the one-hot is never written. Values are
kept exactly: the same clip or wrap of the index, ``g`` itself at the picked
position and +0 elsewhere.

It runs after ``simplify`` (whose ``sum_of_pick_grad`` removes the one-hot's row
sums first) and decides from op names and dtypes only.
"""

from __future__ import annotations

import numpy as np

from ..graph import ProgramGraph
from ..ir import Entry, Node
from .fuse import data_inputs, is_elementwise
from .rewrite import node as make
from .rewrite import replace_nodes


def _read_in_loops(graph: ProgramGraph) -> set[int]:
    """The ``_pick_grad`` nodes (by id) that an elementwise op reads."""
    found: set[int] = set()
    for node in graph.nodes():
        if node.is_variable or not is_elementwise(node):
            continue
        found.update(id(e.node) for e in data_inputs(node) if e.node.op.name == "_pick_grad")
    return found


def _in_loop(node: Node, inputs: tuple[Entry, ...]) -> Entry | None:
    """``node`` (a ``_pick_grad`` on ``inputs``) as ``_one_hot_at``, where it is float."""
    g, index, like = inputs
    if not like.shape or not np.issubdtype(g.dtype, np.floating):
        return None
    axis = node.attrs["axis"] % len(like.shape)
    columns = make("_pick_positions", index, like, axis=axis, mode=node.attrs["mode"])
    if g.shape != columns.shape:  # g as picked without keepdims: the same elements
        g = make("reshape_like", g, columns)
    return make("_one_hot_at", g, columns, Entry(columns.node, 1))


def one_hots_in_loops(graph: ProgramGraph) -> ProgramGraph:
    """Every float ``_pick_grad`` an elementwise op reads becomes ``_one_hot_at``
    of ``_pick_positions`` (see the module docstring)."""
    chosen = _read_in_loops(graph)
    if not chosen:
        return graph

    def replace(node: Node, inputs: tuple[Entry, ...]) -> list[Entry] | None:
        replacement = _in_loop(node, inputs) if id(node) in chosen else None
        return None if replacement is None else [replacement]

    return replace_nodes(graph, replace)
