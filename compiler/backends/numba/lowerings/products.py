"""Matrix products: a 2-D ``dot`` computed into its destination, and called on
numpy's BLAS from the whole-program entry (:mod:`..blas`).

An N-d ``a`` times a matrix is the same product on ``a``'s (rows, last axis) view:
one GEMM, where numpy's N-d ``dot`` takes a loop of its own about 8x slower.
``FullyConnected(flatten=False)`` of an N-d input (Dense over every time step; simplify
makes the 2-D one a ``dot`` and an add) is that GEMM with its bias added in place:
as a separate broadcast add, a language model's (1120, 10000) logits cost a fresh
45 MB array (page faults) and about 14 ms more per step.

A matrix product that is a gradient with grad_req 'write' goes straight into
the gradient's buffer: no copy of a weight-sized array. Transposes are passed
to BLAS as flags, never copied.
"""

from __future__ import annotations

import numpy as np

from ....ir import Node
from ..emit import Writer, shape_tuple
from .table import FLOATS, Lowering, register_lowering


def _is_matrix_product(node: Node) -> bool:
    """2-D times 2-D, or N-d (not transposed) times 2-D."""
    a, b = (len(e.shape) for e in node.inputs)
    return b == 2 and (a == 2 or (a > 2 and not node.attrs["transpose_a"]))


def gemm_into(
    a: np.ndarray, b: np.ndarray, target: np.ndarray, *, transpose_a: bool, transpose_b: bool
) -> bool:
    """Write the product ``dot(a, b)`` (transposes applied) of 2-D arrays, or of an
    N-d ``a`` and a 2-D ``b``, into ``target`` if it has the product's shape and
    dtype and is C-contiguous; False if not (nothing is written then)."""
    if a.ndim > 2:  # the product of a's (rows, last axis) view, into target's
        if (
            transpose_a
            or b.ndim != 2
            or a.shape[-1] == 0
            or target.shape[:-1] != a.shape[:-1]
            or not target.flags.c_contiguous
        ):
            return False
        flat_a = np.ascontiguousarray(a).reshape(-1, a.shape[-1])
        flat_target = target.reshape(-1, target.shape[-1])  # a view: C-contiguous
        return gemm_into(flat_a, b, flat_target, transpose_a=False, transpose_b=transpose_b)
    if a.ndim != 2 or b.ndim != 2:
        return False
    a = a.T if transpose_a else a
    b = b.T if transpose_b else b
    if (
        not (
            target.flags.c_contiguous
            and target.dtype == a.dtype == b.dtype
            and target.shape == (a.shape[0], b.shape[1])
            and target.dtype in FLOATS
        )
        or np.may_share_memory(target, a)
        or np.may_share_memory(target, b)
    ):
        return False
    np.dot(a, b, out=target)
    return True


def _dot_entry(w: Writer, step) -> bool:
    node = step.node
    if node.types[0].dtype not in FLOATS:
        return False
    a, b = (f"s{i}" for i in step.inputs)
    transpose_a, transpose_b = node.attrs["transpose_a"], node.attrs["transpose_b"]
    columns = f"{b}.shape[{1 - int(transpose_b)}]"
    slot = step.outputs[0]
    ndim = len(node.inputs[0].shape)
    if ndim == 2:
        shape = f"({a}.shape[{int(transpose_a)}], {columns})"
        w.result(slot, shape, node.types[0].dtype)
        w.emit(f"blas.matmul_into({a}, {b}, {transpose_a}, {transpose_b}, s{slot})")
        return True
    # N-d a: the product of its (rows, last axis) view, into the result's view
    w.give_up_if(f"{a}.shape[-1] == 0")
    w.result(
        slot,
        shape_tuple([f"{a}.shape[{i}]" for i in range(ndim - 1)] + [columns]),
        node.types[0].dtype,
    )
    rows = f"{a}.size // {a}.shape[-1]"
    w.emit(
        f"blas.matmul_into(np.ascontiguousarray({a}).reshape(({rows}, {a}.shape[-1])), {b}, "
        f"False, {transpose_b}, s{slot}.reshape(({rows}, {columns})))"
    )
    return True


register_lowering(Lowering("dot", into=gemm_into, entry=_dot_entry, accepts=_is_matrix_product))


# -- FullyConnected(flatten=False) of an N-d input -----------------------------

_SOURCE = """
@_jit
def lib_add_bias_rows(out, bias):
    # out (rows, n) += bias, in place
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += bias[j]
"""


def _dense_over_last_axis(node: Node) -> bool:
    """FullyConnected without flatten, of an input of rank 3 or more, in floats."""
    return (
        not node.attrs["flatten"]
        and len(node.inputs[0].shape) > 2
        and node.types[0].dtype in FLOATS
    )


def _fully_connected(kernel, x, weight, bias=None, *, num_hidden, no_bias, flatten):
    arrays = [x, weight] + ([] if bias is None else [bias])
    if len({a.dtype for a in arrays}) != 1 or x.dtype not in FLOATS or x.shape[-1] == 0:
        return None
    out = np.empty(x.shape[:-1] + (weight.shape[0],), x.dtype)
    rows = out.reshape(-1, weight.shape[0])
    np.dot(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), weight.T, out=rows)
    if bias is not None:
        kernel(rows, np.ascontiguousarray(bias))
    return out


def _fully_connected_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    x, weight = f"s{step.inputs[0]}", f"s{step.inputs[1]}"
    ndim, slot = len(node.inputs[0].shape), step.outputs[0]
    w.give_up_if(f"{x}.shape[-1] == 0")
    dims = [f"{x}.shape[{i}]" for i in range(ndim - 1)] + [f"{weight}.shape[0]"]
    w.result(slot, shape_tuple(dims), node.types[0].dtype)
    rows = f"s{slot}.reshape(({x}.size // {x}.shape[-1], {weight}.shape[0]))"
    flat_x = f"np.ascontiguousarray({x}).reshape(({x}.size // {x}.shape[-1], {x}.shape[-1]))"
    w.emit(f"blas.matmul_into({flat_x}, {weight}, False, True, {rows})")
    if not node.attrs["no_bias"]:
        w.emit(f"{kernel}({rows}, np.ascontiguousarray(s{step.inputs[2]}))")
    return True


register_lowering(
    Lowering(
        "FullyConnected",
        _SOURCE,
        "lib_add_bias_rows",
        run=_fully_connected,
        entry=_fully_connected_entry,
        accepts=_dense_over_last_axis,
    )
)
