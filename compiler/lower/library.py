"""Row kernels: numba lowerings of the library ops that work along one axis.

softmax, log_softmax, pick, its gradient and the sums and means over the last
axis are not elementwise, so fusion leaves them to their numpy
implementations. On small arrays (a classifier head: a batch of rows of ten
logits) numpy's per-call cost dominates: a ``max(axis=1)`` on a (128, 10)
array costs about 15 us on the benchmark machine, log_softmax about 50 us.
Here each such op, on C-contiguous float data along the last axis, becomes one
loop over rows in the program's generated module (so it is compiled, cached
on disk and inspected like any other kernel); anything else (another axis, a
strided view, integer data, a very long row) keeps the numpy implementation.

Accumulations run in float64 whatever the data type: float32 results agree
with numpy's float32 pairwise sums to a few ulp (rows are at most ``MAX_ROW``
long), float64 ones to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir import Node

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Longer rows gain nothing from a kernel (numpy's overhead is amortised) and a
# float64 running sum would drift further from numpy's pairwise sum.
MAX_ROW = 4096

_SOURCE = """
@_jit
def lib_softmax_rows(x, temperature, take_log, out):
    rows, n = x.shape
    for i in range(rows):
        top = x[i, 0] / temperature
        for j in range(n):
            v = x[i, j] / temperature
            out[i, j] = v
            top = v if (v > top or v != v) else top  # NaN wins, as in numpy's max
        for j in range(n):
            out[i, j] -= top
    # exp over the whole block in one flat loop: rows are often too short
    # (ten logits) for the vectoriser, the block is not
    shifted = out.reshape(-1)
    e = np.empty_like(shifted)
    for k in range(rows * n):
        e[k] = vm.exp(shifted[k])
    for i in range(rows):
        total = 0.0
        for j in range(n):
            total += e[i * n + j]
        if take_log:
            log_total = vm.log(total)
            for j in range(n):
                out[i, j] = out[i, j] - log_total
        else:
            for j in range(n):
                out[i, j] = e[i * n + j] / total


@_jit
def lib_sum_rows(x, scale, out):
    for i in range(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            total += x[i, j]
        out[i] = total * scale


@_jit
def _column(value, size, wrap):
    # numpy's float -> int64 cast, then clip or wrap; NaN and huge values take
    # the value x86 gives them (INT64_MIN), so both modes match numpy.
    k = np.int64(value) if abs(value) < 9.2e18 else np.int64(-9223372036854775808)
    if wrap:
        return k % size
    return min(max(k, 0), size - 1)


@_jit
def lib_pick_rows(data, index, wrap, out):
    n = data.shape[1]
    for i in range(data.shape[0]):
        out[i] = data[i, _column(index[i], n, wrap)]


@_jit
def lib_pick_grad_rows(g, index, wrap, out):
    n = out.shape[1]
    for i in range(out.shape[0]):
        for j in range(n):
            out[i, j] = 0
        out[i, _column(index[i], n, wrap)] = g[i]
"""


def _contiguous_float(a: np.ndarray) -> bool:
    return a.dtype in FLOATS and a.flags.c_contiguous


@dataclass
class RowStep:
    """A library op run by a row kernel when its arrays allow it (else by numpy).

    ``kernel`` is bound once the program's module is loaded; until then, and
    whenever ``run`` declines (returns None), the op's numpy implementation runs.
    """

    node: Node
    kernel_name: str
    run: Callable[..., Any]
    kernel: Callable | None = None

    def __call__(self, *args: np.ndarray) -> Any:
        if self.kernel is not None:
            result = self.run(self.kernel, *args, **self.node.attrs)
            if result is not None:
                return result
        return self.node.op.impl(*args, **self.node.attrs)


def _last_axis(axis: int, ndim: int) -> bool:
    return axis in (-1, ndim - 1)


def _softmax(kernel, x, *, axis, temperature, take_log=False):
    if not (
        _contiguous_float(x) and x.ndim and _last_axis(axis, x.ndim) and 0 < x.shape[-1] <= MAX_ROW
    ):
        return None
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty_like(x)
    kernel(rows, x.dtype.type(temperature or 1.0), take_log, out.reshape(rows.shape))
    return out


def _log_softmax(kernel, x, *, axis, temperature):
    return _softmax(kernel, x, axis=axis, temperature=temperature, take_log=True)


def _reduce(kernel, x, *, axis, keepdims, exclude, mean=False):
    if exclude or not _contiguous_float(x) or x.size == 0:
        return None
    if (
        axis is None
        or len(axis) == x.ndim
        and sorted(a % x.ndim for a in axis) == list(range(x.ndim))
    ):
        row, shape = x.size, ((1,) * x.ndim if keepdims else (1,))
    elif len(axis) == 1 and _last_axis(axis[0], x.ndim) and x.ndim > 1:
        row = x.shape[-1]
        shape = x.shape[:-1] + (1,) if keepdims else x.shape[:-1]
    else:
        return None
    if row > MAX_ROW:
        return None
    out = np.empty(shape, x.dtype)
    kernel(x.reshape(-1, row), 1.0 / row if mean else 1.0, out.reshape(-1))
    return out


def _mean(kernel, x, *, axis, keepdims, exclude):
    return _reduce(kernel, x, axis=axis, keepdims=keepdims, exclude=exclude, mean=True)


def _pick(kernel, data, index, *, axis, keepdims, mode):
    if not (
        data.ndim == 2
        and axis % 2 == 1
        and _contiguous_float(data)
        and index.size == data.shape[0]
        and index.dtype in FLOATS
        and data.shape[1] > 0
    ):
        return None
    out = np.empty((data.shape[0], 1) if keepdims else (data.shape[0],), data.dtype)
    kernel(data, np.ascontiguousarray(index).reshape(-1), mode == "wrap", out.reshape(-1))
    return out


def _pick_grad(kernel, g, index, like, *, axis, mode):
    if not (
        like.ndim == 2
        and axis % 2 == 1
        and g.dtype in FLOATS
        and g.size == like.shape[0]
        and index.size == like.shape[0]
        and index.dtype in FLOATS
        and like.shape[1] > 0
    ):
        return None
    out = np.empty(like.shape, g.dtype)
    kernel(
        np.ascontiguousarray(g).reshape(-1),
        np.ascontiguousarray(index).reshape(-1),
        mode == "wrap",
        out,
    )
    return out


_LOWERINGS: dict[str, tuple[str, Callable]] = {
    "softmax": ("lib_softmax_rows", _softmax),
    "log_softmax": ("lib_softmax_rows", _log_softmax),
    "sum": ("lib_sum_rows", _reduce),
    "mean": ("lib_sum_rows", _mean),
    "pick": ("lib_pick_rows", _pick),
    "_pick_grad": ("lib_pick_grad_rows", _pick_grad),
}


def row_step(node: Node) -> RowStep | None:
    """A :class:`RowStep` for ``node`` if its op has a row kernel and its output
    is floating point (the kernels accumulate in float64), else None."""
    lowering = _LOWERINGS.get(node.op.name)
    if lowering is None or node.types[0].dtype not in FLOATS:
        return None
    name, run = lowering
    return RowStep(node, name, run)


def module_text() -> str:
    """The row kernels' source, appended to a program's generated module when
    one of its steps uses them."""
    return _SOURCE.strip()


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
