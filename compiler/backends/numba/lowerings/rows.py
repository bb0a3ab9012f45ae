"""Row kernels: lowerings of the ops that work along one axis.

softmax, log_softmax, pick, its gradient and the sums and means over the last
axis are not elementwise, so fusion leaves them alone. On small arrays (a
classifier head: a batch of rows of ten logits) numpy's per-call cost
dominates: a ``max(axis=1)`` on a (128, 10) array costs about 15 us on the
benchmark machine, log_softmax about 50 us. Here each such op, on
C-contiguous float data along the last axis, becomes one loop over rows in the
program's generated module (so it is compiled, cached on disk and inspected
like any other kernel); anything else (another axis, a strided view, integer
data, a float64 row longer than ``MAX_ROW``) keeps the numpy implementation.
Sums and means over the leading axes (a bias's gradient: the sum over all rows)
are a loop over rows adding into one float64 row of column totals; on a big
block each thread takes a range of the columns.

Accumulations run in float64 whatever the data type: float32 results agree
with numpy's float32 pairwise sums to a few ulp at any row length (a language
model's softmax over 10000 words: numpy took about 12% of W8's step), float64
ones to rounding (rows are at most ``MAX_ROW`` long).
"""

from __future__ import annotations

import math

import numpy as np

from ....ir import Node
from ....ops.reduce import reduced_axes
from .. import threads
from ..emit import Writer, runtime_value, shape_tuple
from .table import FLOATS, Lowering, register_lowering

# Longer float64 rows keep numpy: a float64 running sum would drift further from
# numpy's pairwise sum. A float32 row of any length is summed in float64, which
# is closer to the exact sum than numpy's float32 one.
MAX_ROW = 4096


def row_fits(dtype: np.dtype, length: int) -> bool:
    """Whether the row kernels take rows of ``length`` elements of ``dtype``."""
    return length > 0 and (length <= MAX_ROW or dtype == np.float32)


def _too_long(dtype: np.dtype, length: str) -> str:
    """Source of the entry's test that a row of ``length`` (an expression) does not
    fit (see :func:`row_fits`)."""
    if dtype == np.float32:
        return f"{length} == 0"
    return f"{length} == 0 or {length} > {MAX_ROW}"


_SOURCE = """
@_jit
def _row_max(x, i, temperature, lanes):
    # The largest of x[i] / temperature, kept as 16 running maxima (one vector
    # select per 16 elements; a single running maximum is a chain through one
    # register that does not vectorise: 17 ms against 3 ms for W8's (1120, 10000)
    # logits). NaN is passed over, which changes no result: a NaN in the row makes
    # its sum of exponentials NaN, and so every output of the row. Of equal values
    # (+0 and -0) the one kept may differ from a single running maximum's; the
    # outputs do not (v - 0 is v for v != 0, exp(+-0) is 1, and two zeros in a row
    # make its sum at least 2).
    n = x.shape[1]
    full = n - n % 16
    lanes[:] = -np.inf
    if temperature == 1:  # x / 1 is x: no division per element
        for j in range(0, full, 16):
            for k in range(16):
                v = x[i, j + k]
                lanes[k] = v if v > lanes[k] else lanes[k]
    else:
        for j in range(0, full, 16):
            for k in range(16):
                v = x[i, j + k] / temperature
                lanes[k] = v if v > lanes[k] else lanes[k]
    top = lanes[0]
    for k in range(1, 16):
        top = lanes[k] if lanes[k] > top else top
    for j in range(full, n):
        v = x[i, j] / temperature
        top = v if v > top else top
    return top


@_jit
def _softmax_long_rows(x, temperature, take_log, out):
    # a row at a time, in three passes (its largest value; the shifted values
    # and the sum of their exponentials; the normalisation): no block-sized
    # scratch array, and each row stays in cache between passes
    rows, n = x.shape
    lanes = np.empty(16, x.dtype)
    for i in range(rows):
        top = _row_max(x, i, temperature, lanes)
        total = 0.0
        if temperature == 1:
            for j in range(n):
                v = x[i, j] - top
                e = vm.exp(v)
                out[i, j] = v if take_log else e
                total = vm.accumulate(total, e)
        else:
            for j in range(n):
                v = x[i, j] / temperature - top
                e = vm.exp(v)
                out[i, j] = v if take_log else e
                total = vm.accumulate(total, e)
        if take_log:
            log_total = out.dtype.type(vm.log(total))
            for j in range(n):
                out[i, j] = out[i, j] - log_total
        else:
            for j in range(n):
                out[i, j] = out[i, j] / total


@_jit
def lib_softmax_rows(x, temperature, take_log, out):
    rows, n = x.shape
    if n > 4096:  # MAX_ROW: beyond it, the block's scratch array costs more than it saves
        _softmax_long_rows(x, temperature, take_log, out)
        return
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
            total = vm.accumulate(total, e[i * n + j])
        if take_log:
            log_total = vm.log(total)
            for j in range(n):
                out[i, j] = out[i, j] - log_total
        else:
            for j in range(n):
                out[i, j] = e[i * n + j] / total


@_jit
def lib_sum_rows(x, scale, columns, lo, hi, out):
    # with columns, the totals of columns lo..hi of x (rows, n) into out[lo:hi], a
    # row at a time (the loop over a row vectorises; a column's running sum needs
    # no reassociation), so that threads can each take a range of columns; else
    # the row totals (lo and hi unused: rows are shared out as slices of x)
    if columns:
        # each row's range as a contiguous slice indexed from 0: indices lo + j,
        # of unknown sign to the compiler, kept numba's negative-index checks in
        # the loop, which then did not vectorise (2.2x slower)
        width = hi - lo
        totals = np.zeros(width)
        for i in range(x.shape[0]):
            row = x[i][lo:hi]
            for j in range(width):
                totals[j] += row[j]
        part = out[lo:hi]
        for j in range(width):
            part[j] = totals[j] * scale
        return
    for i in range(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            total = vm.accumulate(total, x[i, j])
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
def lib_pick_positions(index, size, wrap, columns, positions):
    for i in range(index.shape[0]):
        columns[i] = _column(index[i], size, wrap)
    for j in range(size):
        positions[j] = j


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


def _float_result(node: Node) -> bool:
    """The kernels accumulate in float64 and write floats."""
    return node.types[0].dtype in FLOATS


def _last_axis(axis: int, ndim: int) -> bool:
    return axis in (-1, ndim - 1)


def _softmax(kernel, x, *, axis, temperature, take_log=False):
    if not (
        _contiguous_float(x)
        and x.ndim
        and _last_axis(axis, x.ndim)
        and row_fits(x.dtype, x.shape[-1])
    ):
        return None
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty_like(x)
    _by_rows(kernel, rows, (x.dtype.type(temperature or 1.0), take_log), out.reshape(rows.shape))
    return out


def _by_rows(kernel, rows: np.ndarray, middle: tuple, out: np.ndarray) -> None:
    """``kernel(rows, *middle, out)``, its rows shared out over the kernel threads
    where the block is big enough (as a fused loop's are: a language model's
    (1120, 10000) log_softmax, 11 M exponentials); rows are independent."""
    pieces = threads.split(rows.shape[0], rows.size)
    threads.run(kernel, [(rows[lo:hi], *middle, out[lo:hi]) for lo, hi in pieces])


def entry_rows(
    kernel, rows: np.ndarray, temperature: float, take_log: bool, out: np.ndarray
) -> None:
    """The whole-program entry's call of a softmax row kernel on a block big enough
    for the threads (from object mode): :func:`_by_rows`, with the temperature
    object mode boxed as a Python float back in the rows' type (the step runner's
    compiled signature)."""
    _by_rows(kernel, rows, (rows.dtype.type(temperature), take_log), out)


def _log_softmax(kernel, x, *, axis, temperature):
    return _softmax(kernel, x, axis=axis, temperature=temperature, take_log=True)


def _reduction(ndim: int, axis, keepdims: bool, exclude: bool) -> tuple[str, int, list] | None:
    """How the sum kernel computes a reduction over ``axis`` of an array of rank
    ``ndim``: ("rows" or "columns", k, kept) with the array seen as
    (prod(shape[:k]), prod(shape[k:])) and the result's shape made of ``kept``
    (input axes, or None for a 1), or None where it cannot."""
    if not ndim:
        return None
    chosen = reduced_axes(ndim, axis, exclude)
    if chosen == tuple(range(ndim)):
        return "rows", 0, [None] * (ndim if keepdims else 1)
    if chosen == (ndim - 1,):
        kept: list = list(range(ndim - 1))
        return "rows", ndim - 1, kept + [None] if keepdims else kept
    if chosen and chosen == tuple(range(len(chosen))):
        k = len(chosen)
        rest = list(range(k, ndim))
        return "columns", k, [None] * k + rest if keepdims else rest
    return None


def _reduce(kernel, x, *, axis, keepdims, exclude, mean=False):
    if not _contiguous_float(x) or x.size == 0:
        return None
    how = _reduction(x.ndim, axis, keepdims, exclude)
    if how is None:
        return None
    mode, k, kept = how
    rows, length = math.prod(x.shape[:k]), math.prod(x.shape[k:])
    if mode == "rows" and not row_fits(x.dtype, length):
        return None
    out = np.empty(tuple(1 if a is None else x.shape[a] for a in kept), x.dtype)
    count = rows if mode == "columns" else length
    scale = 1.0 / count if mean else 1.0
    if mode == "columns":
        _by_columns(kernel, x.reshape(rows, length), scale, out.reshape(-1))
    else:
        _by_rows(kernel, x.reshape(rows, length), (scale, False, 0, 0), out.reshape(-1))
    return out


# Column ranges start on a cache line of float32 (64 bytes): two threads never
# write the same line of the totals.
_LINE = 16


def column_pieces(rows: int, columns: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of the columns of a ``rows`` x ``columns`` block whose
    totals the threads compute: one range per thread, of equal numbers of whole
    lines of 16 columns; one range, every column, for a block below the threads'
    limit or while other processes hold the other cores. (Not the guided sizes of
    :func:`.threads.split`: their last ranges are a few lines wide, and a thread
    reading a few lines of every row is slower than one reading rows whole; every
    column costs the same.)"""
    lines = -(-columns // _LINE)
    count = min(threads.count(), lines)
    if rows * columns < threads.split_limit() or count < 2 or threads.serial():
        return [(0, columns)]
    bounds = [k * lines // count * _LINE for k in range(count)] + [columns]
    return list(zip(bounds[:-1], bounds[1:]))


def _by_columns(kernel, x: np.ndarray, scale: float, out: np.ndarray) -> None:
    """The column totals of the 2-d ``x`` times ``scale`` into ``out``, ranges of
    columns shared out over the kernel threads where the block is big enough (a
    bias's gradient: W8's 1120 rows of 10000 logits' gradients, 3.5 ms on one
    thread). Each column is summed down all its rows by one thread, in the order
    the kernel on the whole block sums it: the results do not depend on the
    threads."""
    pieces = column_pieces(*x.shape)
    threads.run(kernel, [(x, scale, True, lo, hi, out) for lo, hi in pieces])


def entry_column_sums(kernel, x: np.ndarray, scale: float, out: np.ndarray) -> None:
    """The whole-program entry's call of the column-totals kernel on a block big
    enough for the threads (from object mode): :func:`_by_columns`."""
    _by_columns(kernel, x, scale, out)


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


def _pick_positions(kernel, index, like, *, axis, mode):
    if not like.ndim or index.dtype not in FLOATS:
        return None
    ax = axis % like.ndim
    size = like.shape[ax]
    if size == 0 or index.size * size != like.size:
        return None
    columns = np.empty(like.shape[:ax] + (1,) + like.shape[ax + 1 :], np.float64)
    positions = np.empty(tuple(size if a == ax else 1 for a in range(like.ndim)), np.float64)
    flat_index = np.ascontiguousarray(index).reshape(-1)
    kernel(flat_index, size, mode == "wrap", columns.reshape(-1), positions.reshape(-1))
    return columns, positions


# -- the whole-program entry's forms (see ..entry) ------------------------------


def _softmax_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    ndim, dtype = len(node.inputs[0].shape), node.types[0].dtype
    if not (ndim and node.attrs["axis"] in (-1, ndim - 1)):
        return False
    x, out = f"s{step.inputs[0]}", f"s{step.outputs[0]}"
    w.give_up_if(_too_long(node.inputs[0].dtype, f"{x}.shape[-1]"))
    w.emit(f"{out} = np.empty_like({x})")
    rows = f"({x}.size // {x}.shape[-1], {x}.shape[-1])"
    temperature = float(node.attrs["temperature"] or 1.0)
    take_log = node.op.name == "log_softmax"
    arguments = (
        f"{x}.reshape({rows}), np.{dtype.name}({temperature!r}), "
        f"{runtime_value(take_log)}, {out}.reshape({rows})"
    )
    # a block big enough for the threads is shared out as the step runner does
    # (W8's (1120, 10000) log_softmax: 17 ms on one thread), from object mode
    split = w.object_mode(
        f"rows_split_{kernel}",
        ["x", "temperature", "take_log", "out"],
        entry_rows,
        f"entry_rows({kernel}, x, temperature, take_log, out)",
    )
    w.emit(f"if {x}.size >= limit and {x}.size > {x}.shape[-1]:")
    w.emit(f"    {split}({arguments})")
    w.emit("else:")
    w.emit(f"    {kernel}({arguments})")
    return True


def _reduce_entry(w: Writer, step) -> bool:
    node, kernel, attrs = step.node, step.lowering.kernel_name, step.node.attrs
    ndim, dtype = len(node.inputs[0].shape), node.types[0].dtype
    how = _reduction(ndim, attrs["axis"], attrs["keepdims"], attrs["exclude"])
    if how is None:
        return False
    mode, k, kept = how
    x, out = f"s{step.inputs[0]}", f"s{step.outputs[0]}"
    rows = " * ".join(f"{x}.shape[{a}]" for a in range(k)) or "1"
    length = " * ".join(f"{x}.shape[{a}]" for a in range(k, ndim))
    if mode == "rows":
        w.give_up_if(_too_long(dtype, f"({length})"))
    else:
        w.give_up_if(f"{x}.size == 0")
    count = f"({rows})" if mode == "columns" else f"({length})"
    scale = f"1.0 / {count}" if step.lowering.run is _mean else "1.0"
    shape = shape_tuple(["1" if a is None else f"{x}.shape[{a}]" for a in kept])
    w.emit(f"{out} = np.empty({shape}, np.{dtype.name})")
    flat = f"{x}.reshape(({rows}, {length}))"
    totals = f"{out}.reshape({out}.size)"
    if mode == "rows":
        flags = f"{runtime_value(False)}, {runtime_value(0)}, {runtime_value(0)}"
        w.emit(f"{kernel}({flat}, {scale}, {flags}, {totals})")
        return True
    # a block big enough for the threads has its columns shared out as the step
    # runner does (W8's bias gradient), from object mode
    split = w.object_mode(
        f"columns_split_{kernel}",
        ["x", "scale", "out"],
        entry_column_sums,
        f"entry_column_sums({kernel}, x, scale, out)",
    )
    w.emit(f"if {x}.size >= limit and ({rows}) > 1:")
    w.emit(f"    {split}({flat}, {scale}, {totals})")
    w.emit("else:")
    w.emit(
        f"    {kernel}({flat}, {scale}, {runtime_value(True)}, {runtime_value(0)}, {length}, "
        f"{totals})"
    )
    return True


def _float_index_on_axis_1(node: Node) -> bool:
    return node.inputs[1].dtype in FLOATS and node.attrs["axis"] % 2 == 1


def _pick_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    if len(node.inputs[0].shape) != 2 or not _float_index_on_axis_1(node):
        return False
    data, index = (f"s{i}" for i in step.inputs)
    out, dtype = f"s{step.outputs[0]}", node.types[0].dtype
    wrap = node.attrs["mode"] == "wrap"
    w.give_up_if(f"{index}.size != {data}.shape[0] or {data}.shape[1] == 0")
    shape = f"({data}.shape[0], 1)" if node.attrs["keepdims"] else f"({data}.shape[0],)"
    w.emit(f"{out} = np.empty({shape}, np.{dtype.name})")
    w.emit(f"{kernel}({data}, {index}.reshape({index}.size), {wrap}, {out}.reshape({out}.size))")
    return True


def _pick_grad_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    if len(node.inputs[2].shape) != 2 or not _float_index_on_axis_1(node):
        return False
    g, index, like = (f"s{i}" for i in step.inputs)
    out, dtype = f"s{step.outputs[0]}", node.types[0].dtype
    wrap = node.attrs["mode"] == "wrap"
    w.give_up_if(
        f"{g}.size != {like}.shape[0] or {index}.size != {like}.shape[0] or {like}.shape[1] == 0"
    )
    w.emit(f"{out} = np.empty({like}.shape, np.{dtype.name})")
    w.emit(f"{kernel}({g}.reshape({g}.size), {index}.reshape({index}.size), {wrap}, {out})")
    return True


def _pick_positions_entry(w: Writer, step) -> bool:
    node, kernel = step.node, step.lowering.kernel_name
    rank = len(node.inputs[1].shape)
    if not rank or node.inputs[0].dtype not in FLOATS:
        return False
    ax = node.attrs["axis"] % rank
    index, like = (f"s{i}" for i in step.inputs)
    columns, positions = (f"s{i}" for i in step.outputs)
    size = f"{like}.shape[{ax}]"
    w.give_up_if(f"{size} == 0 or {index}.size * {size} != {like}.size")
    kept = shape_tuple(["1" if a == ax else f"{like}.shape[{a}]" for a in range(rank)])
    ones = shape_tuple([size if a == ax else "1" for a in range(rank)])
    w.emit(f"{columns} = np.empty({kept}, np.float64)")
    w.emit(f"{positions} = np.empty({ones}, np.float64)")
    wrap = node.attrs["mode"] == "wrap"
    w.emit(
        f"{kernel}({index}.reshape({index}.size), {size}, {wrap}, "
        f"{columns}.reshape({columns}.size), {positions}.reshape({positions}.size))"
    )
    return True


def _row_lowering(op: str, kernel: str, run, entry) -> Lowering:
    return register_lowering(
        Lowering(op, _SOURCE, kernel, run=run, entry=entry, accepts=_float_result)
    )


_row_lowering("softmax", "lib_softmax_rows", _softmax, _softmax_entry)
_row_lowering("log_softmax", "lib_softmax_rows", _log_softmax, _softmax_entry)
_row_lowering("sum", "lib_sum_rows", _reduce, _reduce_entry)
_row_lowering("mean", "lib_sum_rows", _mean, _reduce_entry)
_row_lowering("pick", "lib_pick_rows", _pick, _pick_entry)
_row_lowering("_pick_grad", "lib_pick_grad_rows", _pick_grad, _pick_grad_entry)
_row_lowering("_pick_positions", "lib_pick_positions", _pick_positions, _pick_positions_entry)
