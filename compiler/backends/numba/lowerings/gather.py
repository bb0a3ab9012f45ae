"""Row gathers: ``Embedding`` and the scatter-add of its gradient (``_take_grad``
along axis 0 of a matrix, indices clipped), as loops over rows.

A language model's step reads its embedding and adds its gradient back every
step; as loops in the program's module, both run inside the whole-program
entry, which keeps such programs on the one-call path. Indices arrive as floats
(MXNet's token arrays) or integers and are clipped to the table as numpy's
implementation does; anything else (another axis, another mode, a table that
is not a matrix) keeps the numpy implementation.
"""

from __future__ import annotations

import numpy as np

from ....ir import Node
from ..emit import Writer, shape_tuple
from .table import FLOATS, Lowering, register_lowering

_SOURCE = """
@_jit
def _row_of(value, rows):
    # numpy's cast to int64 then clip to the table (NaN and huge values as x86 casts them)
    k = np.int64(value) if abs(value) < 9.2e18 else np.int64(-9223372036854775808)
    return min(max(k, 0), rows - 1)


@_jit
def lib_gather_rows(index, table, out):
    rows, width = table.shape
    for i in range(index.shape[0]):
        k = _row_of(index[i], rows)
        for j in range(width):
            out[i, j] = table[k, j]


@_jit
def lib_scatter_add_rows(g, index, out):
    rows, width = out.shape
    for k in range(rows):
        for j in range(width):
            out[k, j] = 0
    for i in range(index.shape[0]):
        k = _row_of(index[i], rows)
        for j in range(width):
            out[k, j] += g[i, j]
"""


def _float_matrix(a: np.ndarray) -> bool:
    return a.dtype in FLOATS and a.ndim == 2 and a.flags.c_contiguous


def _embedding(kernel, data, weight, **_attrs):
    if not _float_matrix(weight) or data.dtype.kind not in "fiu" or weight.shape[0] == 0:
        return None
    index = np.ascontiguousarray(data).reshape(-1)
    out = np.empty(data.shape + (weight.shape[1],), weight.dtype)
    kernel(index, weight, out.reshape(index.size, weight.shape[1]))
    return out


def _take_grad(kernel, g, indices, like, *, axis, mode):
    if (
        axis % max(like.ndim, 1) != 0
        or mode != "clip"
        or like.ndim != 2
        or g.dtype not in FLOATS
        or indices.dtype.kind not in "fiu"
        or like.shape[0] == 0
        or g.size != indices.size * like.shape[1]
    ):
        return None
    out = np.empty(like.shape, g.dtype)
    rows = np.ascontiguousarray(g).reshape(indices.size, like.shape[1])
    kernel(rows, np.ascontiguousarray(indices).reshape(-1), out)
    return out


def _embedding_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    if len(node.inputs[1].shape) != 2 or node.inputs[0].dtype.kind not in "fiu":
        return False
    data, weight = (f"s{i}" for i in step.inputs)
    out, dtype = f"s{step.outputs[0]}", node.types[0].dtype
    ndim = len(node.inputs[0].shape)
    shape = shape_tuple([f"{data}.shape[{a}]" for a in range(ndim)] + [f"{weight}.shape[1]"])
    w.give_up_if(f"{weight}.shape[0] == 0")
    w.emit(f"{out} = np.empty({shape}, np.{dtype.name})")
    w.emit(
        f"{kernel}(np.ascontiguousarray({data}).reshape({data}.size), {weight}, "
        f"{out}.reshape(({data}.size, {weight}.shape[1])))"
    )
    return True


def _take_grad_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    like_shape = node.inputs[2].shape
    if (
        len(like_shape) != 2
        or node.attrs["axis"] % 2 != 0
        or node.attrs["mode"] != "clip"
        or node.inputs[1].dtype.kind not in "fiu"
    ):
        return False
    g, index, like = (f"s{i}" for i in step.inputs)
    out, dtype = f"s{step.outputs[0]}", node.types[0].dtype
    w.give_up_if(f"{like}.shape[0] == 0 or {g}.size != {index}.size * {like}.shape[1]")
    w.emit(f"{out} = np.empty({like}.shape, np.{dtype.name})")
    w.emit(
        f"{kernel}(np.ascontiguousarray({g}).reshape(({index}.size, {like}.shape[1])), "
        f"np.ascontiguousarray({index}).reshape({index}.size), {out})"
    )
    return True


def _float_result(node: Node) -> bool:
    return node.types[0].dtype in FLOATS


register_lowering(
    Lowering(
        "Embedding",
        _SOURCE,
        "lib_gather_rows",
        run=_embedding,
        entry=_embedding_entry,
        accepts=_float_result,
    )
)
register_lowering(
    Lowering(
        "_take_grad",
        _SOURCE,
        "lib_scatter_add_rows",
        run=_take_grad,
        entry=_take_grad_entry,
        accepts=_float_result,
    )
)
