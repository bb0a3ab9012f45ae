"""Constant folding: an elementwise op whose inputs are all fills is a fill.

A fill is a node of a constant op (``OpDef.constant``: its value depends on
its attrs only) with a ``shape`` attr and no inputs (``_zeros``, ``_ones``,
``_full``): every element has one value, which the op computes for
``shape=()``. An elementwise op applied to fills gives one
value too, computed here once with the op's own numpy implementation on 0-d
arrays (so exactly what the interpreter would compute, NaN, inf and signed
zero included), and the node becomes ``_full`` of that value. Differentiation
makes such nodes (the seed ``ones`` scaled, a constant's square), and a folded
constant is one array made when a program is planned instead of a kernel
input computed on every call.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import ProgramGraph
from ..ir import Entry, Node
from ..registry import as_float
from .rewrite import node as make
from .rewrite import rewrite


def fill_value(node: Node) -> np.ndarray | None:
    """The one value of every element of ``node`` (a 0-d array of its dtype) if
    it is a fill, else None."""
    op = node.op
    if not op.constant or node.inputs or "shape" not in node.attrs:
        return None
    value = op.impl(**{**node.attrs, "shape": ()})
    return value if isinstance(value, np.ndarray) and value.shape == () else None


def fold_elementwise_of_fills(n: Node) -> Entry | None:
    """f(fill a, fill b, ...)  ->  fill f(a, b, ...), for an elementwise f"""
    if n.op.kind != "elemwise" or not n.inputs or n.num_outputs != 1 or not n.op.deferrable:
        return None
    values = [fill_value(e.node) for e in n.inputs]
    if any(v is None for v in values):
        return None
    with np.errstate(all="ignore"):
        result = n.op.impl(*values, **n.attrs)
    result = np.asarray(result)
    out_type = n.types[0]
    if result.shape != () or result.dtype != out_type.dtype:
        return None
    number = float(result)
    # _full stores its value as a float attr: fold only what survives the trip
    if out_type.dtype.kind not in "fiub" or (
        math.isfinite(number) and result.dtype.type(number) != result
    ):
        return None
    return make("_full", shape=out_type.shape, dtype=out_type.dtype.name, value=as_float(number))


RULES = [fold_elementwise_of_fills]


def fold_constants(graph: ProgramGraph) -> ProgramGraph:
    """Replace every elementwise op over fills by the fill it computes (see the
    module docstring); repeated to a fixed point by the rewriter."""
    return rewrite(graph, RULES)
