"""Products of a few rows by a big matrix, float32, on CPUs with AVX-512,
split over the backend's threads: ``x @ w.T`` and ``x @ w`` with ``x`` of at
most :data:`ROWS` rows, a fully connected layer's forward and its input's
gradient at a small batch.

Such a product reads its weight once and does little else: AlexNet's first
classifier layer at batch 8, (8 x 9216) times (4096 x 9216)^T, is 151 MB of
weight, which one core of the benchmark machine reads in about 9 ms. OpenBLAS
took 25-27 ms for it. Here each group of :data:`WEIGHT_ROWS` weight rows is
read once, as vectors, and multiplied with all of ``x``'s rows (kept in cache)
into 24 register sums, which are added across their lanes at the end
(:func:`_dots_kernel`): 10.8 ms.

The input's gradient, (8 x 4096) times the same weight untransposed, took
OpenBLAS 12-19 ms on two threads of a Zen 4 machine. Here (:func:`_rows_kernel`)
each thread takes a block of the weight's rows, which it reads once, in order,
:data:`DEPTH` rows at a time: each vector of their columns is multiplied by the
matching :data:`DEPTH` values of each of ``x``'s rows and added into that row's
sums (kept in cache, one array of them a thread, added at the end): 6.7-8.6 ms.
Smaller weights stay with OpenBLAS (:data:`MINIMUM_WEIGHT`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import threads
from .planes import splat
from .sgemm import (
    AVAILABLE,
    FLOAT_POINTER,
    LANES,
    VECTOR,
    fma,
    llvm_function,
    load_vector,
    summing_loop,
    vector_at,
)

ROWS = 8  # x's rows per pass: x is padded with zero rows to this many
WEIGHT_ROWS = 3  # weight rows per pass: 3 x 8 sums of 16 lanes in registers
# The products taken (:func:`suits`): enough work for the threads' hand-off.
# ResNet's classifier at batch 8, (8 x 512) times (1000 x 512)^T, took 142 us
# on two threads against OpenBLAS's 272 us on one; at a quarter of that work,
# 85 against 122 us.
MINIMUM_WORK = 1 << 21
# An untransposed weight of this many values or more (16 MB, float32) is read
# row by row (:func:`product_untransposed`); the few-rows passes of sgemm.py,
# which took such products before, and OpenBLAS were slower at every size from
# there, two threads of the Zen 4 machine, medians: (8 x 4096) by (4096 x 1000)
# 1.5-1.6 ms against 3.8-4.0 and 1.7-1.9; by (4096 x 4096) 4.5-6.1 against
# 5.4-6.4 and 6.6-7.5; by (4096 x 25088) 19 against 36-40 and 36-50
MINIMUM_WEIGHT = 1 << 22
DEPTH = 8  # weight rows per pass of :func:`_rows_kernel`: 8 x 8 broadcast factors


def _dots_kernel(weight_rows: int) -> Any:
    """An intrinsic ``dots(k, x, ldx, w, ldw, out, ldo)``: for ``b < ROWS`` and
    ``r < weight_rows``, ``out[b*ldo + r] += sum over p < k of x[b*ldx + p] *
    w[r*ldw + p]``; float32 pointers, 64-bit strides, ``k`` a multiple of
    ``LANES``."""

    @intrinsic
    def dots(typingctx, k, x, ldx, w, ldw, out, ldo):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(size, pointer, size, pointer, size, pointer, size)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            count, x_ptr, x_stride, w_ptr, w_stride, out_ptr, out_stride = args
            f32, i64 = ir.FloatType(), ir.IntType(64)
            add_lanes = llvm_function(
                builder, f"llvm.vector.reduce.fadd.v{LANES}f32", f32, [f32, VECTOR]
            )

            def row(base: Any, stride: Any, index: int, position: Any) -> Any:
                return load_vector(
                    builder, base, builder.add(builder.mul(i64(index), stride), position)
                )

            def step(p: Any, sums: list[list[Any]]) -> list[list[Any]]:
                weights = [row(w_ptr, w_stride, r, p) for r in range(weight_rows)]
                return [
                    [fma(builder, row(x_ptr, x_stride, b, p), w, s) for w, s in zip(weights, line)]
                    for b, line in enumerate(sums)
                ]

            results = summing_loop(builder, count, LANES, (ROWS, weight_rows), step)
            for b in range(ROWS):
                for r in range(weight_rows):
                    # -0.0 is the sum's identity: a sum of +0s stays +0
                    total = builder.call(add_lanes, [ir.Constant(f32, -0.0), results[b][r]])
                    offset = builder.add(builder.mul(i64(b), out_stride), i64(r))
                    target = builder.gep(out_ptr, [offset])
                    builder.store(builder.fadd(builder.load(target), total), target)
            return context.get_dummy_value()

        return signature, codegen

    return dots


_dots = _dots_kernel(WEIGHT_ROWS)
_dots_one = _dots_kernel(1)


def _rows_kernel(depth: int) -> Any:
    """An intrinsic ``rows(count, x, ix, ldx, w, iw, ldw, out, io, ldo)``: for
    ``b < ROWS`` and ``j < count`` (a multiple of ``LANES``), ``out[io + b*ldo +
    j] += sum over p < depth of x[ix + b*ldx + p] * w[iw + p*ldw + j]``, the
    terms added in order of ``p``; float32 pointers, 64-bit offsets and strides."""

    @intrinsic
    def rows(typingctx, count, x, ix, ldx, w, iw, ldw, out, io, ldo):  # type: ignore[no-untyped-def]
        size, pointer = types.int64, FLOAT_POINTER
        signature = types.void(size, pointer, size, size, pointer, size, size, pointer, size, size)

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            count, x, ix, ldx, w, iw, ldw, out, io, ldo = args
            i64 = ir.IntType(64)
            x, w, out = (builder.gep(base, [at]) for base, at in ((x, ix), (w, iw), (out, io)))

            def factor(b: int, p: int) -> Any:
                at = builder.add(builder.mul(i64(b), ldx), i64(p))
                return splat(builder, builder.load(builder.gep(x, [at])), VECTOR)

            # the factors are loop-invariant: computed once, before the columns
            factors = [[factor(b, p) for p in range(depth)] for b in range(ROWS)]

            def columns(j: Any, _: list) -> list:
                sums = [
                    vector_at(builder, out, builder.add(builder.mul(i64(b), ldo), j))
                    for b in range(ROWS)
                ]
                values = [builder.load(target, align=4) for target in sums]
                for p in range(depth):
                    row = load_vector(builder, w, builder.add(builder.mul(i64(p), ldw), j))
                    values = [fma(builder, factors[b][p], row, v) for b, v in enumerate(values)]
                for target, value in zip(sums, values):
                    builder.store(value, target, align=4)
                return []

            summing_loop(builder, count, LANES, (0, 0), columns)
            return context.get_dummy_value()

        return signature, codegen

    return rows


_rows = _rows_kernel(DEPTH)
_rows_one = _rows_kernel(1)

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)


@_jit
def narrow_block(x, w, out, n0, n1):
    """``out[:, n0:n1] = x @ w[n0:n1].T`` for C-contiguous float32 ``x`` of
    ``ROWS`` rows and ``w`` of as many columns, and ``out`` (ROWS, len(w))."""
    inner = x.shape[1]
    whole = inner - inner % LANES
    for b in range(ROWS):
        for n in range(n0, n1):
            total = np.float32(0.0)
            for p in range(whole, inner):  # the last positions, past whole vectors
                total += x[b, p] * w[n, p]
            out[b, n] = total
    n = n0
    while n < n1:
        if n + WEIGHT_ROWS <= n1:
            _dots(whole, x.ctypes, inner, w[n:].ctypes, inner, out[0:, n:].ctypes, out.shape[1])
            n += WEIGHT_ROWS
        else:
            _dots_one(whole, x.ctypes, inner, w[n:].ctypes, inner, out[0:, n:].ctypes, out.shape[1])
            n += 1


@_jit
def rows_block(x, w, out, k0, k1):
    """``out[...] = x[:, k0:k1] @ w[k0:k1]`` for C-contiguous float32 ``x`` of
    ``ROWS`` rows, ``w`` of as many rows as ``x`` has columns, and ``out``
    (ROWS, w's columns)."""
    inner, columns = w.shape
    whole = columns - columns % LANES
    out[...] = 0.0
    p = k0
    while p < k1:
        if p + DEPTH <= k1:
            _rows(whole, x.ctypes, p, inner, w.ctypes, p * columns, columns, out.ctypes, 0, columns)
            p += DEPTH
        else:
            _rows_one(
                whole, x.ctypes, p, inner, w.ctypes, p * columns, columns, out.ctypes, 0, columns
            )
            p += 1
    for b in range(ROWS):
        for n in range(whole, columns):  # the last columns, past whole vectors
            total = np.float32(0.0)
            for q in range(k0, k1):
                total += x[b, q] * w[q, n]
            out[b, n] = total


def suits(
    rows: int, columns: int, inner: int, dtype: Any, transpose_a: bool, transpose_b: bool
) -> bool:
    """Whether :func:`product` (a transposed ``b``) or :func:`product_untransposed`
    takes a product of this size, dtype and layout: float32 on AVX-512, at most
    :data:`ROWS` rows of an untransposed ``a``, with enough work to split (a
    transposed ``b``) or a ``b`` of :data:`MINIMUM_WEIGHT` values or more (an
    untransposed one)."""
    if not (AVAILABLE and dtype == np.float32 and not transpose_a and 0 < rows <= ROWS):
        return False
    if not transpose_b:
        return columns * inner >= MINIMUM_WEIGHT
    return inner > 0 and rows * columns * inner >= MINIMUM_WORK


def taken_when(out: str, inner: str, transpose_a: bool, transpose_b: bool) -> str | None:
    """:func:`suits`'s test on sizes, as source for the whole-program entry
    (``out`` and ``inner``: expressions of the result and the inner size) for a
    float32 product of this layout; None where no size of it is taken."""
    if not AVAILABLE or transpose_a:
        return None
    if not transpose_b:
        return f"({out}.shape[0] <= {ROWS} and {out}.shape[1] * {inner} >= {MINIMUM_WEIGHT})"
    work = f"{out}.shape[0] * {out}.shape[1] * {inner}"
    return f"({out}.shape[0] <= {ROWS} and {work} >= {MINIMUM_WORK})"


def product(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = x @ w.T`` for float32 ``x`` of at most ``ROWS`` rows (``out``
    C-contiguous, overlapping neither), ``w``'s rows shared out over the
    backend's threads in whole passes."""
    padded = np.zeros((ROWS, x.shape[1]), np.float32)
    padded[: x.shape[0]] = x
    w = np.ascontiguousarray(w)
    result = np.empty((ROWS, w.shape[0]), np.float32)
    parts = 1 if threads.serial() else threads.count()
    columns = w.shape[0]
    step = max(WEIGHT_ROWS, -(-columns // parts // WEIGHT_ROWS) * WEIGHT_ROWS)
    calls = [(padded, w, result, lo, min(columns, lo + step)) for lo in range(0, columns, step)]
    threads.run(narrow_block, calls)
    out[...] = result[: x.shape[0]]


def product_untransposed(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = x @ w`` for float32 ``x`` of at most ``ROWS`` rows (``out``
    C-contiguous, overlapping neither): ``w``'s rows shared out over the
    backend's threads, each summing its block of them into an array of its own,
    the arrays then added in the threads' order."""
    inner = x.shape[1]
    padded = np.zeros((ROWS, inner), np.float32)
    padded[: x.shape[0]] = x
    w = np.ascontiguousarray(w)
    parts = 1 if threads.serial() else threads.count()
    step = max(DEPTH, -(-inner // parts // DEPTH) * DEPTH)
    pieces = [(lo, min(inner, lo + step)) for lo in range(0, inner, step)] or [(0, 0)]
    sums = [np.empty((ROWS, w.shape[1]), np.float32) for _ in pieces]
    threads.run(rows_block, [(padded, w, part, lo, hi) for part, (lo, hi) in zip(sums, pieces)])
    total = sums[0]
    for part in sums[1:]:
        total += part
    out[...] = total[: x.shape[0]]
