"""Matrix products: a 2-D ``dot`` computed into its destination, and called on
numpy's BLAS from the whole-program entry (:mod:`..blas`).

An N-d ``a`` times a matrix (``dot(x, W, transpose_b=True)``: Dense over every
time step, from ``FullyConnected(flatten=False)``) is the same product on ``a``'s
(rows, last axis) view: one GEMM, where numpy's N-d ``dot`` takes a loop of its
own about 8x slower.

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
