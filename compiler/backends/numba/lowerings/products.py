"""Matrix products: a 2-D ``dot`` computed into its destination, and called on
numpy's BLAS from the whole-program entry (:mod:`..blas`).

A matrix product that is a gradient with grad_req 'write' goes straight into
the gradient's buffer: no copy of a weight-sized array. Transposes are passed
to BLAS as flags, never copied.
"""

from __future__ import annotations

import numpy as np

from ....ir import Node
from ..emit import Writer
from .table import FLOATS, Lowering, register_lowering


def _is_matrix_product(node: Node) -> bool:
    return all(len(e.shape) == 2 for e in node.inputs)


def gemm_into(
    a: np.ndarray, b: np.ndarray, target: np.ndarray, *, transpose_a: bool, transpose_b: bool
) -> bool:
    """Write the 2-D product ``dot(a, b)`` (transposes applied) into ``target`` if it
    has the product's shape and dtype and is C-contiguous; False if not (nothing
    is written then)."""
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
    shape = f"({a}.shape[{int(transpose_a)}], {b}.shape[{1 - int(transpose_b)}])"
    slot = step.outputs[0]
    w.result(slot, shape, node.types[0].dtype)
    w.emit(f"blas.matmul_into({a}, {b}, {transpose_a}, {transpose_b}, s{slot})")
    return True


register_lowering(Lowering("dot", into=gemm_into, entry=_dot_entry, accepts=_is_matrix_product))
