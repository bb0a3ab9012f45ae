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

A big product (:data:`SPLIT_WORK`) runs on the backend's own threads, cut into
blocks of its result's rows (or, for a transposed left operand, of its inner
axis), each one single-threaded OpenBLAS call (:func:`split_product`; from the
whole-program entry, through object mode).
OpenBLAS's own threads spin for a while after every product (its thread
timeout, about 0.1 s), so in a program that alternates products and the
backend's threaded loops (W8: three (1120 x 200 x 10000) products among the
softmax's rows, the recurrences' pieces and the optimizer's loops) its idle
worker held a core the backend's threads wanted: on two threads W8's step used
330 ms of CPU time for 215 ms of work.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ....ir import Node
from .. import blas, narrow, sgemm, threads
from ..blas_threads import blas_threads
from ..emit import Writer, shape_tuple
from .table import FLOATS, Lowering, register_lowering

# From this many multiply-adds a product is cut into blocks of rows on the
# backend's threads: W8's (1120 x 200 x 10000) products are. W2's at B=1024
# (1024 x 784 x 256) stay whole: cut, its step took 6.4 ms against 3.3 ms on
# OpenBLAS's own two threads (its thread count set twice per product, strided
# blocks of a transposed operand).
SPLIT_WORK = 1 << 30


def product_pieces(rows: int, work: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` blocks of a product's ``rows`` result rows (``work``
    multiply-adds) for the threads: one per thread, or the whole product where it is
    small, has few rows or other processes hold the other cores."""
    count = min(threads.count(), rows // 16)
    if count < 2 or work < SPLIT_WORK or threads.serial():
        return [(0, rows)]
    size = -(-rows // count)
    return [(lo, min(rows, lo + size)) for lo in range(0, rows, size)]


def _dot_into(a: np.ndarray, b: np.ndarray, out: np.ndarray, bias: Any = None) -> None:
    np.dot(a, b, out=out)
    if bias is not None:  # while this thread's block is the one it just wrote
        np.add(out, bias, out=out)


def split_product(
    a: Any, b: Any, transpose_a: bool, transpose_b: bool, out: Any, bias: Any = None
) -> None:
    """``out[...] = op(a) @ op(b)`` (plus ``bias``, a row broadcast over the rows)
    for 2-D float arrays (``out`` C-contiguous, of the product's shape, overlapping
    neither), in blocks of ``out``'s rows on the backend's threads
    (:func:`product_pieces`), OpenBLAS on one thread meanwhile; the blocks are
    views. Each thread adds the bias to its own block: as a pass of its own, on
    one thread, it cost W8's (1120, 10000) logits 3.5 ms. Two float32 layouts
    that OpenBLAS does slowly go to kernels of our own on the threads instead: a
    Dense layer's gradients at a small batch (:func:`sgemm.depth_block`) and a
    few rows times a weight, transposed or of 16 MB or more (:func:`narrow.suits`);
    so does every big float32 product where OpenBLAS runs kernels without AVX-512
    (:func:`sgemm.general`)."""
    rows, inner = a.shape[::-1] if transpose_a else a.shape
    work = rows * inner * out.shape[1]
    shape = rows, out.shape[1], inner, out.dtype, transpose_a, transpose_b
    if work < SPLIT_WORK and narrow.suits(*shape):  # (before sgemm's few rows)
        if transpose_b:
            narrow.product(a, b, out)
        else:
            narrow.product_untransposed(a, b, out)
        if bias is not None:
            np.add(out, bias, out=out)
        return
    block = sgemm.depth_block(*shape) if work < SPLIT_WORK else 0
    if block:
        sgemm.product(a, b, transpose_a, out, block, transpose_b, bias)
        return
    if sgemm.general(*shape[:4]):
        block = sgemm.pass_depth(rows, inner, transpose_a, transpose_b)
        sgemm.product(a, b, transpose_a, out, block, transpose_b, bias)
        return
    if blas.TILED and out.dtype == np.float32 and work >= blas.TILED_WORK:
        # a mid-size product on our tiles on this thread, as the entry runs it: on
        # OpenBLAS's two threads, right after a threaded convolution, it waited for
        # the core the pool's worker still spun on (ResNet-18's classifier input
        # gradient, 0.08 ms alone, took 0.2-17 ms in the step runner)
        blas.matmul_into(a, b, transpose_a, transpose_b, out)
        if bias is not None:
            np.add(out, bias, out=out)
        return
    a = a.T if transpose_a else a
    b = b.T if transpose_b else b
    if transpose_a:
        _split_inner(a, b, out, product_pieces(inner, work))
        if bias is not None:
            np.add(out, bias, out=out)
        return
    pieces = product_pieces(rows, work)
    if len(pieces) == 1:
        _dot_into(a, b, out, bias)
        return
    with blas_threads().alone():
        threads.run(_dot_into, [(a[lo:hi], b, out[lo:hi], bias) for lo, hi in pieces])


def _split_inner(a: Any, b: Any, out: Any, pieces: list[tuple[int, int]]) -> None:
    """``out[...] = a @ b`` as the sum of the products of ``pieces`` of the inner
    axis, one per thread, into ``out`` and fresh partials. For an ``a`` that is a
    transposed array (a weight gradient ``dz^T @ h``), blocks of its rows are
    strided columns that every thread packed again: W8's (10000 x 1120 x 200)
    product cost 42 ms of CPU in two row blocks against 31 ms whole, and 35 ms in
    two blocks of its 1120 inner positions (each a contiguous block of ``dz``)."""
    if len(pieces) == 1:
        np.dot(a, b, out=out)
        return
    partials = [out] + [np.empty_like(out) for _ in pieces[1:]]
    calls = [(a[:, lo:hi], b[lo:hi], part) for (lo, hi), part in zip(pieces, partials)]
    with blas_threads().alone():
        threads.run(_dot_into, calls)
    for part in partials[1:]:
        np.add(out, part, out=out)


def _split_call(
    w: Writer,
    a: str,
    b: str,
    transpose_a: bool,
    transpose_b: bool,
    out: str,
    bias: tuple[str, str] | None = None,
    single: bool = False,
    work_hint: int = 0,
) -> None:
    """Emit ``out = op(a) @ op(b)`` (source expressions of 2-D arrays): on the
    threads through :func:`split_product` when it is big, or when a ``single``
    (float32) product has a layout and size our own kernels take
    (:func:`sgemm.depth_block`, :func:`narrow.suits`); else one BLAS call, which
    for a product of fewer than :data:`blas.SMALL_WORK` multiply-adds
    (``work_hint``: the traced shapes') is numpy's BLAS itself, unless the entry
    links our tiles anyway (:attr:`Writer.links_tiles`).
    ``bias``: (row expression, kernel adding it to every row) where the product
    has a bias, which the threads add to their blocks, or else the kernel."""
    params = ["a", "b", "out"] + (["bias"] if bias else [])
    name = w.object_mode(
        f"product_{int(transpose_a)}{int(transpose_b)}{'_bias' if bias else ''}",
        params,
        split_product,
        f"split_product(a, b, {transpose_a}, {transpose_b}, out{', bias' if bias else ''})",
    )
    inner = f"{a}.shape[{1 - int(transpose_a)}]"
    arguments = ", ".join([a, b, out] + ([bias[0]] if bias else []))
    work = f"{out}.shape[0] * {out}.shape[1] * {inner}"
    conditions = [f"{work} >= {SPLIT_WORK}"]
    if single:  # the sizes our own kernels take, as each kernel's module says
        for kernel in (sgemm, narrow):
            conditions.append(kernel.taken_when(out, inner, transpose_a, transpose_b))
    w.emit(f"if {' or '.join(c for c in conditions if c)}:")
    w.emit(f"    {name}({arguments})")
    w.emit("else:")
    small = work_hint < blas.SMALL_WORK and not w.links_tiles
    route = "small_matmul_into" if small else "matmul_into"
    w.emit(f"    blas.{route}({a}, {b}, {transpose_a}, {transpose_b}, {out})")
    if bias:
        w.emit(f"    {bias[1]}({out}, {bias[0]})")


def _traced_work(node: Node) -> int:
    """The multiply-adds of a product node (``dot`` or ``FullyConnected``) at the
    shapes it was traced with: its result's size times its inner size."""
    a = node.inputs[0].shape
    transposed = node.op.name == "dot" and len(a) == 2 and node.attrs["transpose_a"]
    inner = a[0] if transposed else a[-1]
    return math.prod(node.types[0].shape) * inner


def links_tiles(steps) -> bool:
    """Whether an entry of these plan steps links :func:`blas.matmul_into`'s
    float32 tiles in any case (a float32 product of :data:`blas.SMALL_WORK` or
    more at its traced shapes). Its smaller products then take them too from
    :data:`blas.TILED_WORK` on, at no cost in compiling: W6's (10 x 128) by
    (128 x 256) weight gradient ran 4.1 us on them against 11.8 on OpenBLAS's
    AVX2 kernels, its (128 x 256) by (256 x 10) output 6.2 against 9.0."""
    split_calls = (_dot_entry, _fully_connected_entry)  # the entries of _split_call
    return any(
        step.kind == "library"
        and step.lowering is not None
        and step.lowering.entry in split_calls
        and _single(step.node)
        and _traced_work(step.node) >= blas.SMALL_WORK
        for step in steps
    )


def _single(node: Node) -> bool:
    """Whether the product's result is float32, the dtype of our own kernels."""
    return np.dtype(node.types[0].dtype) == np.float32


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
    rows = a.shape[1] if transpose_a else a.shape[0]
    columns = b.shape[0] if transpose_b else b.shape[1]
    if (
        not (
            target.flags.c_contiguous
            and target.dtype == a.dtype == b.dtype
            and target.shape == (rows, columns)
            and target.dtype in FLOATS
        )
        or np.may_share_memory(target, a)
        or np.may_share_memory(target, b)
    ):
        return False
    split_product(a, b, transpose_a, transpose_b, target)
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
    work = _traced_work(node)
    if ndim == 2:
        shape = f"({a}.shape[{int(transpose_a)}], {columns})"
        w.result(slot, shape, node.types[0].dtype)
        _split_call(
            w, a, b, transpose_a, transpose_b, f"s{slot}", single=_single(node), work_hint=work
        )
        return True
    # N-d a: the product of its (rows, last axis) view, into the result's view
    w.give_up_if(f"{a}.shape[-1] == 0")
    w.result(
        slot,
        shape_tuple([f"{a}.shape[{i}]" for i in range(ndim - 1)] + [columns]),
        node.types[0].dtype,
    )
    rows = f"{a}.size // {a}.shape[-1]"
    w.emit(f"a{slot} = np.ascontiguousarray({a}).reshape(({rows}, {a}.shape[-1]))")
    w.emit(f"out{slot} = s{slot}.reshape(({rows}, {columns}))")
    _split_call(
        w, f"a{slot}", b, False, transpose_b, f"out{slot}", single=_single(node), work_hint=work
    )
    return True


def _dot(kernel, a, b, *, transpose_a, transpose_b):
    """The step runner's product of two matrices: :func:`split_product`'s
    routes, so a product our own kernels take does here too (None for any other
    operands: numpy's ``dot``)."""
    if a.ndim != 2 or b.ndim != 2 or not (a.dtype == b.dtype and a.dtype in FLOATS):
        return None
    rows = a.shape[1] if transpose_a else a.shape[0]
    out = np.empty((rows, b.shape[0] if transpose_b else b.shape[1]), a.dtype)
    return out if gemm_into(a, b, out, transpose_a=transpose_a, transpose_b=transpose_b) else None


register_lowering(
    Lowering("dot", run=_dot, into=gemm_into, entry=_dot_entry, accepts=_is_matrix_product)
)


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
    flat_x = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    split_product(flat_x, weight, False, True, rows, None if bias is None else bias.reshape(-1))
    return out


def _fully_connected_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    x, weight = f"s{step.inputs[0]}", f"s{step.inputs[1]}"
    ndim, slot = len(node.inputs[0].shape), step.outputs[0]
    w.give_up_if(f"{x}.shape[-1] == 0")
    dims = [f"{x}.shape[{i}]" for i in range(ndim - 1)] + [f"{weight}.shape[0]"]
    w.result(slot, shape_tuple(dims), node.types[0].dtype)
    flat_x = f"np.ascontiguousarray({x}).reshape(({x}.size // {x}.shape[-1], {x}.shape[-1]))"
    w.emit(f"x{slot} = {flat_x}")
    w.emit(f"rows{slot} = s{slot}.reshape(({x}.size // {x}.shape[-1], {weight}.shape[0]))")
    bias = None
    if not node.attrs["no_bias"]:
        w.emit(f"bias{slot} = np.ascontiguousarray(s{step.inputs[2]})")
        bias = (f"bias{slot}", kernel)
    _split_call(
        w, f"x{slot}", weight, False, True, f"rows{slot}", bias, _single(node), _traced_work(node)
    )
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
