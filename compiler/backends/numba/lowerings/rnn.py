"""The recurrent op's time loop as compiled code: ``RNN`` forward and ``_rnn_grad``.

The numpy implementations (``ops/rnn.py``, ``ops/rnn_grad.py``) take one Python
iteration per step, layer and direction, each a handful of numpy calls on small
(N, H) arrays. Here each op is one compiled call: per layer and direction the input
projection of all steps is one product on numpy's BLAS (:mod:`..blas`), then every
step is one product of the (N, P) state by the rows of the (G*H, P) weight (a
register-blocked loop of its own below 2^24 multiply-adds, where BLAS's threads cost
more than they save) and one loop computing all gates of
all rows (``vm.sigmoid``/``vm.tanh`` vectorise). The backward runs the forward again keeping
the gates, then walks time in reverse: per step the gates' derivatives in one loop
and one product for the state's gradient; the weights' gradients and the data's are
one product each over all steps of a layer.

Every kernel takes a range ``lo..hi`` of the batch's sequences and computes theirs
only: the sequences are independent through the recurrence, so the step runner
cuts a big batch into one piece per thread (:func:`batch_pieces`), each running its
own time loop; only the parameters' gradient is summed over the pieces.

``_rnn_forward_taped`` and ``_rnn_grad_taped`` (``ops/rnn_tape.py``; a training
step's RNN and its gradient, paired by ``passes/rnn_tape.py``) are the same loops
split at the tape: the forward writes what the backward reads into one flat
array, and the backward starts from it instead of running the forward again.

Where the numpy implementations compute a masked update ``h + v (h_new - h)``
(``use_sequence_length``), these kernels select: equal up to rounding.
A forward that draws dropout masks (training, ``p > 0``, several layers) keeps its
numpy implementation (the masks come from the frontend's generator); its backward
reads them and is compiled like any other.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from ....ir import Node
from ....ops.rnn import GATES, draws_masks
from ....ops.rnn_tape import tape_size
from .. import threads
from ..blas_threads import blas_threads
from ..emit import Writer, runtime_value, shape_tuple
from .table import FLOATS, Lowering, register_lowering

_MODE_CODES = {"rnn_relu": 0, "rnn_tanh": 1, "lstm": 2, "gru": 3}

_SOURCE = """
@_jit
def _rnn_layout(gates, layers, directions, features, hidden, width, projecting):
    # per layer and direction (rows): offsets of the i2h weight, h2h weight, h2r
    # weight, i2h bias, h2h bias in the packed parameters, then the input size
    table = np.zeros((layers * directions, 6), np.int64)
    offset = 0
    for layer in range(layers):
        size = features if layer == 0 else directions * width
        for d in range(directions):
            k = layer * directions + d
            table[k, 0] = offset
            offset += gates * hidden * size
            table[k, 1] = offset
            offset += gates * hidden * width
            table[k, 2] = offset
            if projecting:
                offset += width * hidden
            table[k, 5] = size
    for k in range(layers * directions):
        table[k, 3] = offset
        offset += gates * hidden
        table[k, 4] = offset
        offset += gates * hidden
    return table


@_jit
def _rnn_product(a, w, out):
    # out = a @ w.T for the per-step products: a (N, P) by a weight w (G*H, P) in
    # its own row-major layout. Small ones here: each 4 x 4 block of out is 16
    # dot products along rows of a and w (contiguous, summed reassociably so the
    # loop vectorises; the 16 sums stay in registers). Edge blocks repeat the last
    # row or column, writing the same value twice. Run on numpy's threaded BLAS,
    # such a product costs a handoff between threads every step, which on a busy
    # machine took 3-10x this loop's time; a big one goes there all the same.
    rows, inner = a.shape
    cols = w.shape[0]
    if rows * inner * cols >= 1 << 24:
        blas.matmul_into(a, w, False, True, out)
        return
    zero = out.dtype.type(0.0)
    for i in range(0, rows, 4):
        i1, i2, i3 = min(i + 1, rows - 1), min(i + 2, rows - 1), min(i + 3, rows - 1)
        a0, a1, a2, a3 = a[i], a[i1], a[i2], a[i3]
        for j in range(0, cols, 4):
            j1, j2, j3 = min(j + 1, cols - 1), min(j + 2, cols - 1), min(j + 3, cols - 1)
            w0, w1, w2, w3 = w[j], w[j1], w[j2], w[j3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for k in range(inner):
                x0, x1, x2, x3 = a0[k], a1[k], a2[k], a3[k]
                y0, y1, y2, y3 = w0[k], w1[k], w2[k], w3[k]
                s00 = vm.accumulate(s00, x0 * y0)
                s01 = vm.accumulate(s01, x0 * y1)
                s02 = vm.accumulate(s02, x0 * y2)
                s03 = vm.accumulate(s03, x0 * y3)
                s10 = vm.accumulate(s10, x1 * y0)
                s11 = vm.accumulate(s11, x1 * y1)
                s12 = vm.accumulate(s12, x1 * y2)
                s13 = vm.accumulate(s13, x1 * y3)
                s20 = vm.accumulate(s20, x2 * y0)
                s21 = vm.accumulate(s21, x2 * y1)
                s22 = vm.accumulate(s22, x2 * y2)
                s23 = vm.accumulate(s23, x2 * y3)
                s30 = vm.accumulate(s30, x3 * y0)
                s31 = vm.accumulate(s31, x3 * y1)
                s32 = vm.accumulate(s32, x3 * y2)
                s33 = vm.accumulate(s33, x3 * y3)
            out[i, j], out[i, j1], out[i, j2], out[i, j3] = s00, s01, s02, s03
            out[i1, j], out[i1, j1], out[i1, j2], out[i1, j3] = s10, s11, s12, s13
            out[i2, j], out[i2, j1], out[i2, j2], out[i2, j3] = s20, s21, s22, s23
            out[i3, j], out[i3, j1], out[i3, j2], out[i3, j3] = s30, s31, s32, s33


@_jit
def _rnn_clip(value, low, high, clip_nan):
    if value != value:
        return low if clip_nan else value
    return min(max(value, low), high)


@_jit
def _rnn_rows_of(x, lo, hi):
    # sequences lo..hi of x (T, N, F) as one (T * (hi - lo), F) block, step-major:
    # x itself where that is all of them
    steps, batch, size = x.shape
    if lo == 0 and hi == batch:
        return x.reshape((steps * batch, size))
    part = np.empty((steps * (hi - lo), size), x.dtype)
    for t in range(steps):
        part[t * (hi - lo) : (t + 1) * (hi - lo)] = x[t, lo:hi]
    return part


@_jit
def _rnn_direction(mode, hidden, x, wi, bi, wh, bh, wr, projecting, h, c, lengths, use_len,
                   reverse, clip, low, high, clip_nan, outs, keep, tape, k, lo, hi):
    # one layer and direction forward for sequences lo..hi of the batch, from their
    # states h (hi - lo, P) and c (hi - lo, H), which it updates; outputs (T, N, P)
    # into rows lo..hi of outs; with keep, what the backward reads into row k of the
    # tapes (their rows lo..hi)
    steps, batch, size = x.shape
    rows = hi - lo
    gh = wi.shape[0]
    width = wh.shape[1]
    dtype = x.dtype
    zero = dtype.type(0.0)
    t_gates, t_hprev, t_cprev, t_c, t_craw, t_r, t_hn = tape
    projected = np.empty((steps * rows, gh), dtype)
    blas.matmul_into(_rnn_rows_of(x, lo, hi), wi, False, True, projected)
    for row in range(steps * rows):
        for j in range(gh):
            # both biases go in once, but a GRU's candidate keeps b_hn with W_hn h
            extra = bh[j] if (mode != 3 or j < 2 * hidden) else zero
            projected[row, j] += bi[j] + extra
    zh = np.empty((rows, gh), dtype)
    cell_h = np.empty((rows, hidden), dtype)
    c_new = np.empty((rows, hidden), dtype)
    acts = np.empty((rows if mode == 2 else 0, gh), dtype)  # an LSTM's gates, a step
    c_raw = np.empty((rows if mode == 2 else 0, hidden), dtype)
    h_new = np.empty((rows, width), dtype) if projecting else cell_h
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        if keep:
            t_hprev[k, t, lo:hi] = h
            if mode == 2:
                t_cprev[k, t, lo:hi] = c
        _rnn_product(h, wh, zh)
        base = t * rows
        for n in range(rows):
            xr = projected[base + n]
            hr = zh[n]
            if mode == 2:
                # the gates into a scratch row (copied to the tape after the step),
                # then the cell: short loops over few arrays, which vectorise (one
                # loop storing into the tape as well ran 1.8x as long)
                ar = acts[n]
                for j in range(2 * hidden):
                    ar[j] = vm.sigmoid(xr[j] + hr[j])
                for j in range(2 * hidden, 3 * hidden):
                    ar[j] = vm.tanh(xr[j] + hr[j])
                for j in range(3 * hidden, 4 * hidden):
                    ar[j] = vm.sigmoid(xr[j] + hr[j])
                for j in range(hidden):
                    raw = ar[hidden + j] * c[n, j] + ar[j] * ar[2 * hidden + j]
                    cn = _rnn_clip(raw, low, high, clip_nan) if clip else raw
                    c_raw[n, j] = raw
                    c_new[n, j] = cn
                    cell_h[n, j] = ar[3 * hidden + j] * vm.tanh(cn)
            elif mode == 3:
                for j in range(hidden):
                    gr = vm.sigmoid(xr[j] + hr[j])
                    gz = vm.sigmoid(xr[hidden + j] + hr[hidden + j])
                    hn = hr[2 * hidden + j] + bh[2 * hidden + j]
                    gn = vm.tanh(xr[2 * hidden + j] + gr * hn)
                    cell_h[n, j] = gn + gz * (h[n, j] - gn)
                    if keep:
                        t_gates[k, t, lo + n, j] = gr
                        t_gates[k, t, lo + n, hidden + j] = gz
                        t_gates[k, t, lo + n, 2 * hidden + j] = gn
                        t_hn[k, t, lo + n, j] = hn
            else:
                for j in range(hidden):
                    z = xr[j] + hr[j]
                    if mode == 0:
                        a = z if (z > zero or z != z) else zero
                    else:
                        a = vm.tanh(z)
                    cell_h[n, j] = a
                    if keep:
                        t_gates[k, t, lo + n, j] = a
        if keep and mode == 2:
            t_gates[k, t, lo:hi] = acts
            t_c[k, t, lo:hi] = c_new
            if clip:
                t_craw[k, t, lo:hi] = c_raw
        if projecting:
            if keep:
                t_r[k, t, lo:hi] = cell_h
            _rnn_product(cell_h, wr, h_new)
        for n in range(rows):
            if use_len and not lengths[lo + n] > t:
                for j in range(width):
                    outs[t, lo + n, j] = zero
                continue
            for j in range(width):
                outs[t, lo + n, j] = h_new[n, j]
                h[n, j] = h_new[n, j]
            if mode == 2:
                for j in range(hidden):
                    c[n, j] = c_new[n, j]


@_jit
def _rnn_run(data, params, state, cell, lengths, masks, mode, gates, layers, directions,
             hidden, width, projecting, use_len, clip, low, high, clip_nan, out, hy, cy,
             keep, tape, above, lo, hi):
    # every layer and direction forward for sequences lo..hi of the batch (the rows
    # lo..hi of every output); the inputs of layers 1... into above
    steps, batch, features = data.shape
    dtype = data.dtype
    table = _rnn_layout(gates, layers, directions, features, hidden, width, projecting)
    gh = gates * hidden
    dir_out = np.empty((steps, batch, width), dtype)
    for layer in range(layers):
        x = data if layer == 0 else above[layer - 1]
        for d in range(directions):
            k = layer * directions + d
            size = table[k, 5]
            wi = params[table[k, 0] : table[k, 0] + gh * size].reshape((gh, size))
            wh = params[table[k, 1] : table[k, 1] + gh * width].reshape((gh, width))
            wr = params[table[k, 2] : table[k, 2] + width * hidden * projecting].reshape(
                (width * projecting, hidden)
            )
            bi = params[table[k, 3] : table[k, 3] + gh]
            bh = params[table[k, 4] : table[k, 4] + gh]
            h = state[k, lo:hi].copy()
            c = cell[k, lo:hi].copy() if mode == 2 else np.zeros((hi - lo, hidden), dtype)
            _rnn_direction(mode, hidden, x, wi, bi, wh, bh, wr, projecting, h, c, lengths,
                           use_len, d == 1, clip, low, high, clip_nan, dir_out, keep, tape, k,
                           lo, hi)
            hy[k, lo:hi] = h
            if mode == 2:
                cy[k, lo:hi] = c
            target = out if layer == layers - 1 else above[layer]
            target[:, lo:hi, d * width : (d + 1) * width] = dir_out[:, lo:hi]
        if layer < layers - 1 and masks.shape[0] > 0:
            above[layer, :, lo:hi] *= masks[layer, :, lo:hi]


@_jit
def _rnn_tapes(mode, count, steps, batch, hidden, width, projecting, clip, dtype):
    gates_size = (4 if mode == 2 else 3 if mode == 3 else 1) * hidden
    lstm = mode == 2
    return (
        np.empty((count, steps, batch, gates_size), dtype),
        np.empty((count, steps, batch, width), dtype),
        np.empty((count, steps if lstm else 0, batch, hidden), dtype),
        np.empty((count, steps if lstm else 0, batch, hidden), dtype),
        np.empty((count, steps if clip else 0, batch, hidden), dtype),
        np.empty((count, steps if projecting else 0, batch, hidden), dtype),
        np.empty((count, steps if mode == 3 else 0, batch, hidden), dtype),
    )


@_jit
def _rnn_tape_size(mode, layers, directions, steps, batch, hidden, width, projecting, clip):
    # the length of _rnn_forward_taped's tape (ops/rnn_tape.py: the same blocks)
    count = layers * directions
    gates_size = (4 if mode == 2 else 3 if mode == 3 else 1) * hidden
    rows = count * steps * batch
    kept = (2 if mode == 2 else 0) + (1 if clip else 0) + (1 if projecting else 0)
    kept += 1 if mode == 3 else 0
    return rows * (gates_size + width + kept * hidden) + (
        max(layers - 1, 0) * steps * batch * directions * width
    )


@_jit
def _rnn_tape_block(flat, offset, d0, d1, d2, d3):
    return flat[offset : offset + d0 * d1 * d2 * d3].reshape((d0, d1, d2, d3)), (
        offset + d0 * d1 * d2 * d3
    )


@_jit
def _rnn_tape_views(flat, mode, layers, directions, steps, batch, hidden, width, projecting,
                    clip):
    # the blocks of a flat tape as the kernels' tape tuple and the layers' inputs
    count = layers * directions
    gates_size = (4 if mode == 2 else 3 if mode == 3 else 1) * hidden
    lstm = mode == 2
    gates, at = _rnn_tape_block(flat, 0, count, steps, batch, gates_size)
    hprev, at = _rnn_tape_block(flat, at, count, steps, batch, width)
    cprev, at = _rnn_tape_block(flat, at, count, steps if lstm else 0, batch, hidden)
    c, at = _rnn_tape_block(flat, at, count, steps if lstm else 0, batch, hidden)
    craw, at = _rnn_tape_block(flat, at, count, steps if clip else 0, batch, hidden)
    r, at = _rnn_tape_block(flat, at, count, steps if projecting else 0, batch, hidden)
    hn, at = _rnn_tape_block(flat, at, count, steps if mode == 3 else 0, batch, hidden)
    above, at = _rnn_tape_block(flat, at, max(layers - 1, 0), steps, batch, directions * width)
    return (gates, hprev, cprev, c, craw, r, hn), above


@_jit
def lib_rnn_forward_taped(data, params, state, cell, lengths, mode, gates, layers, directions,
                          hidden, width, projecting, use_len, clip, low, high, clip_nan, out, hy,
                          cy, flat, lo, hi):
    steps, batch, _ = data.shape
    tape, above = _rnn_tape_views(flat, mode, layers, directions, steps, batch, hidden, width,
                                  projecting, clip)
    masks = np.empty((0, 0, 0, 0), data.dtype)
    _rnn_run(data, params, state, cell, lengths, masks, mode, gates, layers, directions,
             hidden, width, projecting, use_len, clip, low, high, clip_nan, out, hy, cy,
             True, tape, above, lo, hi)


@_jit
def lib_rnn_forward(data, params, state, cell, lengths, mode, gates, layers, directions,
                    hidden, width, projecting, use_len, clip, low, high, clip_nan, out, hy,
                    cy, lo, hi):
    steps, batch, _ = data.shape
    dtype = data.dtype
    tape = _rnn_tapes(mode, 0, 0, 0, 0, 0, False, False, dtype)
    above = np.empty((max(layers - 1, 0), steps, batch, directions * width), dtype)
    masks = np.empty((0, 0, 0, 0), dtype)
    _rnn_run(data, params, state, cell, lengths, masks, mode, gates, layers, directions,
             hidden, width, projecting, use_len, clip, low, high, clip_nan, out, hy, cy,
             False, tape, above, lo, hi)


@_jit
def _rnn_back_direction(mode, hidden, projecting, lengths, use_len, reverse, clip, low, high,
                        x, wi, wh, wr, d_outs, dh, dc, tape, k, d_wi, d_wh, d_wr, d_bi, d_bh,
                        d_x, add, lo, hi):
    # one layer and direction backward for sequences lo..hi of the batch: their part
    # of the weights' gradients into d_w*, d_b*, the input's gradient into rows
    # lo..hi of d_x (added with add), the initial states' into dh, dc (hi - lo rows,
    # as d_outs (T, hi - lo, P))
    steps, batch, size = x.shape
    count = hi - lo
    gh = wi.shape[0]
    width = wh.shape[1]
    dtype = x.dtype
    zero, one = dtype.type(0.0), dtype.type(1.0)
    t_gates, t_hprev, t_cprev, t_c, t_craw, t_r, t_hn = tape
    dz_in = np.empty((steps * count, gh), dtype)  # d (W_i2h x + b_i2h)
    dz_state = np.empty((steps * count, gh), dtype) if mode == 3 else dz_in  # d (W_h2h h + b_h2h)
    d_new = np.empty((steps * count if projecting else count, width), dtype)
    dr = np.empty((count, hidden), dtype)
    dh_prev = np.empty((count, width), dtype)
    # the per-step products' weights as rows of their columns (see _rnn_product)
    wh_t = np.ascontiguousarray(wh.T)
    wr_t = np.ascontiguousarray(wr.T)
    for s in range(steps):
        t = s if reverse else steps - 1 - s
        base = t * count
        dhn = d_new[base : base + count] if projecting else d_new
        for n in range(count):
            valid = not use_len or lengths[lo + n] > t
            for j in range(width):
                dhn[n, j] = dh[n, j] + d_outs[t, n, j] if valid else zero
        if projecting:
            _rnn_product(dhn, wr_t, dr)
        else:
            dr = dhn
        for n in range(count):
            row = base + n
            m = lo + n  # the sequence's row in the tapes
            if use_len and not lengths[m] > t:
                for j in range(gh):
                    dz_in[row, j] = zero
                    dz_state[row, j] = zero
                continue
            if mode == 2:
                for j in range(hidden):
                    gi = t_gates[k, t, m, j]
                    gf = t_gates[k, t, m, hidden + j]
                    gg = t_gates[k, t, m, 2 * hidden + j]
                    go = t_gates[k, t, m, 3 * hidden + j]
                    tc = vm.tanh(t_c[k, t, m, j])
                    dct = dc[n, j] + dr[n, j] * go * (one - tc * tc)
                    if clip:
                        raw = t_craw[k, t, m, j]
                        if not (raw >= low and raw <= high):
                            dct = zero
                    dz_in[row, j] = dct * gg * gi * (one - gi)
                    dz_in[row, hidden + j] = dct * t_cprev[k, t, m, j] * gf * (one - gf)
                    dz_in[row, 2 * hidden + j] = dct * gi * (one - gg * gg)
                    dz_in[row, 3 * hidden + j] = dr[n, j] * tc * go * (one - go)
                    dc[n, j] = dct * gf
            elif mode == 3:
                for j in range(hidden):
                    gr = t_gates[k, t, m, j]
                    gz = t_gates[k, t, m, hidden + j]
                    gn = t_gates[k, t, m, 2 * hidden + j]
                    dn = dhn[n, j] * (one - gz) * (one - gn * gn)
                    dgr = dn * t_hn[k, t, m, j] * gr * (one - gr)
                    dgz = dhn[n, j] * (t_hprev[k, t, m, j] - gn) * gz * (one - gz)
                    dz_in[row, j] = dgr
                    dz_in[row, hidden + j] = dgz
                    dz_in[row, 2 * hidden + j] = dn
                    dz_state[row, j] = dgr
                    dz_state[row, hidden + j] = dgz
                    dz_state[row, 2 * hidden + j] = dn * gr
            else:
                for j in range(hidden):
                    a = t_gates[k, t, m, j]
                    if mode == 0:
                        slope = (one if a > zero else zero) if a == a else a
                    else:
                        slope = one - a * a
                    dz_in[row, j] = dhn[n, j] * slope
        _rnn_product(dz_state[base : base + count], wh_t, dh_prev)
        for n in range(count):
            if use_len and not lengths[lo + n] > t:
                continue
            for j in range(width):
                carried = dhn[n, j] * t_gates[k, t, lo + n, hidden + j] if mode == 3 else zero
                dh[n, j] = dh_prev[n, j] + carried
    rows = steps * count
    blas.matmul_into(dz_in, _rnn_rows_of(x, lo, hi), True, False, d_wi)
    blas.matmul_into(dz_state, _rnn_rows_of(t_hprev[k], lo, hi), True, False, d_wh)
    if projecting:
        blas.matmul_into(d_new, _rnn_rows_of(t_r[k], lo, hi), True, False, d_wr)
    # the biases' gradients: column totals in float64, a row at a time (down a
    # column, every element is another cache line)
    total_in = np.zeros(gh)
    total_state = np.zeros(gh)
    for row in range(rows):
        for j in range(gh):
            total_in[j] += dz_in[row, j]
            total_state[j] += dz_state[row, j]
    for j in range(gh):
        d_bi[j] = total_in[j]
        d_bh[j] = total_state[j]
    if count == batch and not add:
        blas.matmul_into(dz_in, wi, False, False, d_x.reshape((rows, size)))
        return
    part = np.empty((rows, size), dtype)
    blas.matmul_into(dz_in, wi, False, False, part)
    for t in range(steps):
        if add:
            d_x[t, lo:hi] += part[t * count : (t + 1) * count]
        else:
            d_x[t, lo:hi] = part[t * count : (t + 1) * count]


@_jit
def lib_rnn_backward(data, params, state, cell, lengths, masks, d_out, d_hy, d_cy, mode, gates,
                     layers, directions, hidden, width, projecting, use_len, clip, low, high,
                     clip_nan, d_data, d_params, d_state, d_cell, lo, hi):
    steps, batch, features = data.shape
    dtype = data.dtype
    count = layers * directions
    tape = _rnn_tapes(mode, count, steps, batch, hidden, width, projecting, clip, dtype)
    above = np.empty((max(layers - 1, 0), steps, batch, directions * width), dtype)
    out = np.empty((steps, batch, directions * width), dtype)
    hy = np.empty((count, batch, width), dtype)
    cy = np.empty((count if mode == 2 else 0, batch, hidden), dtype)
    _rnn_run(data, params, state, cell, lengths, masks, mode, gates, layers, directions,
             hidden, width, projecting, use_len, clip, low, high, clip_nan, out, hy, cy,
             True, tape, above, lo, hi)
    _rnn_back_layers(data, params, lengths, masks, d_out, d_hy, d_cy, mode, gates, layers,
                     directions, hidden, width, projecting, use_len, clip, low, high, tape,
                     above, d_data, d_params, d_state, d_cell, lo, hi)


@_jit
def lib_rnn_backward_taped(data, params, state, cell, lengths, flat, d_out, d_hy, d_cy, mode,
                           gates, layers, directions, hidden, width, projecting, use_len, clip,
                           low, high, clip_nan, d_data, d_params, d_state, d_cell, lo, hi):
    steps, batch, _ = data.shape
    tape, above = _rnn_tape_views(flat, mode, layers, directions, steps, batch, hidden, width,
                                  projecting, clip)
    masks = np.empty((0, 0, 0, 0), data.dtype)
    _rnn_back_layers(data, params, lengths, masks, d_out, d_hy, d_cy, mode, gates, layers,
                     directions, hidden, width, projecting, use_len, clip, low, high, tape,
                     above, d_data, d_params, d_state, d_cell, lo, hi)


@_jit
def _rnn_back_layers(data, params, lengths, masks, d_out, d_hy, d_cy, mode, gates, layers,
                     directions, hidden, width, projecting, use_len, clip, low, high, tape,
                     above, d_data, d_params, d_state, d_cell, lo, hi):
    # every layer and direction backward, top layer first, from the forward's tape, for
    # sequences lo..hi of the batch: rows lo..hi of d_data, d_state, d_cell, and
    # their part of the parameters' gradient, all of d_params
    steps, batch, features = data.shape
    dtype = data.dtype
    table = _rnn_layout(gates, layers, directions, features, hidden, width, projecting)
    gh = gates * hidden
    d_params[:] = 0
    d_above = d_out
    d_part = np.empty((steps, hi - lo, width), dtype)
    dh = np.empty((hi - lo, width), dtype)
    dc = np.zeros((hi - lo, hidden), dtype)
    for layer in range(layers - 1, -1, -1):
        x = data if layer == 0 else above[layer - 1]
        d_x = d_data if layer == 0 else np.empty(x.shape, dtype)
        for d in range(directions):
            k = layer * directions + d
            size = table[k, 5]
            wi = params[table[k, 0] : table[k, 0] + gh * size].reshape((gh, size))
            wh = params[table[k, 1] : table[k, 1] + gh * width].reshape((gh, width))
            n_r = width * hidden * projecting
            wr = params[table[k, 2] : table[k, 2] + n_r].reshape((width * projecting, hidden))
            d_wi = d_params[table[k, 0] : table[k, 0] + gh * size].reshape((gh, size))
            d_wh = d_params[table[k, 1] : table[k, 1] + gh * width].reshape((gh, width))
            d_wr = d_params[table[k, 2] : table[k, 2] + n_r].reshape((width * projecting, hidden))
            d_bi = d_params[table[k, 3] : table[k, 3] + gh]
            d_bh = d_params[table[k, 4] : table[k, 4] + gh]
            d_part[:] = d_above[:, lo:hi, d * width : (d + 1) * width]
            dh[:] = d_hy[k, lo:hi]
            if mode == 2:
                dc[:] = d_cy[k, lo:hi]
            _rnn_back_direction(mode, hidden, projecting, lengths, use_len, d == 1, clip, low,
                                high, x, wi, wh, wr, d_part, dh, dc, tape, k, d_wi, d_wh, d_wr,
                                d_bi, d_bh, d_x, d == 1, lo, hi)
            d_state[k, lo:hi] = dh
            if mode == 2:
                d_cell[k, lo:hi] = dc
        if layer > 0:
            if masks.shape[0] > 0:
                d_x[:, lo:hi] *= masks[layer - 1, :, lo:hi]
            d_above = d_x
"""


# -- the attrs as kernel arguments ---------------------------------------------


def _settings(attrs: dict, dtype: np.dtype) -> tuple:
    """(mode, gates, layers, directions, hidden, width, projecting, use_len, clip, low,
    high, clip_nan): the attrs as the kernels take them."""
    mode = attrs["mode"]
    low, high = attrs["lstm_state_clip_min"], attrs["lstm_state_clip_max"]
    clip = mode == "lstm" and low is not None and high is not None
    projection = attrs["projection_size"]
    hidden = attrs["state_size"]
    scalar = dtype.type
    return (
        _MODE_CODES[mode],
        GATES[mode],
        attrs["num_layers"],
        2 if attrs["bidirectional"] else 1,
        hidden,
        projection or hidden,
        bool(projection),
        bool(attrs["use_sequence_length"]),
        clip,
        scalar(low if clip else 0.0),
        scalar(high if clip else 0.0),
        bool(attrs["lstm_state_clip_nan"]),
    )


def _split(arrays: tuple, attrs: dict) -> tuple[Any, Any, list]:
    """(state_cell or None, sequence_length or None, the arrays after them)."""
    rest = list(arrays)
    cell = rest.pop(0) if attrs["mode"] == "lstm" else None
    lengths = rest.pop(0) if attrs["use_sequence_length"] else None
    return cell, lengths, rest


def _ready(a: np.ndarray) -> np.ndarray:
    """``a`` as the kernels take it: C-contiguous and writeable (numba types a
    read-only array apart, which would compile the kernels again)."""
    return a if a.flags.c_contiguous and a.flags.writeable else np.array(a, order="C")


def _floats(arrays: list) -> bool:
    return len({a.dtype for a in arrays}) == 1 and arrays[0].dtype in FLOATS


def _float_data(node: Node) -> bool:
    return node.inputs[0].dtype in FLOATS


def _forward_lowerable(node: Node) -> bool:
    # dropout masks come from the frontend's generator: that forward stays numpy
    return _float_data(node) and not draws_masks(node.attrs)


# -- pieces of the batch on the threads -------------------------------------------

# The sequences of a batch are independent through the whole recurrence, forward
# and backward: only the parameters' gradient sums over them. So from this many
# multiply-adds (per-step products and input projections, all layers) a kernel call
# is cut into one piece of the batch per thread, each running its piece's whole time
# loop on its own thread, OpenBLAS on one thread meanwhile (its products are the
# pieces' own). The time loop alone cannot use more than one core otherwise: its
# per-step products (W8: 32 x 200 by 200 x 800) are too small to split, and
# together they were a quarter of W8's step on one thread.
PARALLEL_WORK = 1 << 22
# Pieces of a multiple of this many sequences: the per-step product's blocks
# (_rnn_product) are 4 rows high.
PIECE_ROWS = 4


def work_per_sequence_step(attrs: dict) -> int:
    """Multiply-adds of one sequence's step through every layer (the input
    projections' and the recurrent products'), for :func:`pieces_of`."""
    hidden = attrs["state_size"]
    width = attrs["projection_size"] or hidden
    directions = 2 if attrs["bidirectional"] else 1
    return GATES[attrs["mode"]] * hidden * 2 * width * attrs["num_layers"] * directions


def pieces_of(batch: int, work: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` pieces of a batch of ``batch`` sequences (``work``
    multiply-adds in all) to run on the threads: one piece, the whole batch, where
    the work is too small, the batch too narrow or other processes hold the other
    cores."""
    count = min(threads.count(), batch // PIECE_ROWS)
    if count < 2 or work < PARALLEL_WORK or threads.serial():
        return [(0, batch)]
    size = -(-batch // count)
    size = -(-size // PIECE_ROWS) * PIECE_ROWS
    return [(lo, min(batch, lo + size)) for lo in range(0, batch, size)]


def batch_pieces(attrs: dict, steps: int, batch: int) -> list[tuple[int, int]]:
    """The pieces (:func:`pieces_of`) of a batch of ``batch`` sequences of
    ``steps`` steps through the recurrence of ``attrs``."""
    return pieces_of(batch, steps * batch * work_per_sequence_step(attrs))


def run_pieces(
    kernel: Any, arguments: tuple, pieces: list[tuple[int, int]], params_at: int | None = None
) -> None:
    """``kernel(*arguments, lo, hi)`` for every piece, on the threads when there
    are several. ``params_at`` is the position in ``arguments`` of a backward
    kernel's parameters' gradient: each piece after the first writes its part into
    a whole array of its own, added in after (a piece writes all of it)."""
    if len(pieces) == 1:
        kernel(*arguments, *pieces[0])
        return
    calls, partials = [], []
    for k, (lo, hi) in enumerate(pieces):
        call = arguments
        if params_at is not None and k > 0:
            partials.append(np.empty_like(arguments[params_at]))
            call = (*arguments[:params_at], partials[-1], *arguments[params_at + 1 :])
        calls.append((*call, lo, hi))
    with blas_threads().alone():
        threads.run(kernel, calls)
    if partials:
        total = arguments[cast(int, params_at)]  # (a tuple: no augmented assignment into it)
        for partial in partials:
            total += partial


def entry_pieces(kernel: Any, arguments: tuple, batch: int, work: int, params_at: int) -> None:
    """:func:`run_pieces` over :func:`pieces_of` ``(batch, work)``: the
    whole-program entry's call (from object mode; ``params_at`` -1 for a
    forward kernel)."""
    at = params_at if params_at >= 0 else None
    # object mode boxes the float settings (clip bounds) as Python floats: back to
    # the data's type, so the kernel runs the step runner's compiled signature
    scalar = arguments[0].dtype.type
    arguments = tuple(scalar(a) if isinstance(a, float) else a for a in arguments)
    run_pieces(kernel, arguments, pieces_of(batch, work), at)


# -- run from the step runner ----------------------------------------------------


def _forward(kernel, data, params, state, *rest, **attrs):
    return _run_forward(kernel, data, params, state, rest, attrs, taped=False)


def _run_forward(kernel, data, params, state, rest, attrs, taped):
    """A forward kernel's outputs (with ``taped``, the tape last: see ``_taped``),
    or None for arrays it does not take."""
    cell, lengths, _ = _split(rest, attrs)
    data, params, state = _ready(data), _ready(params), _ready(state)
    cell = _ready(cell) if cell is not None else None
    floats = [data, params, state] + ([cell] if cell is not None else [])
    if not _floats(floats) or 0 in data.shape:
        return None
    dtype = data.dtype
    options = _settings(attrs, dtype)
    _, _, layers, directions, hidden, width = options[:6]
    steps, batch, _ = data.shape
    out = np.empty((steps, batch, directions * width), dtype)
    hy = np.empty((layers * directions, batch, width), dtype)
    lstm = attrs["mode"] == "lstm"
    cy = np.empty((layers * directions if lstm else 0, batch, hidden), dtype)
    tape = (_taped(attrs, steps, batch, dtype),) if taped else ()
    arguments = (
        data,
        params,
        state,
        cell if cell is not None else np.empty((0, 0, 0), dtype),
        _ready(lengths) if lengths is not None else np.empty(0, dtype),
        *options,
        out,
        hy,
        cy,
        *tape,
    )
    # each piece writes its rows of every output (and of the tape)
    run_pieces(kernel, arguments, batch_pieces(attrs, steps, batch))
    return ((out, hy, cy) if lstm else (out, hy)) + tape


def _backward(kernel, data, params, state, *rest, **attrs):
    cell, lengths, after = _split(rest, attrs)
    forward = 2 + (attrs["mode"] == "lstm") + draws_masks(attrs)
    masks = _ready(after[forward - 1]) if draws_masks(attrs) else None
    data = _ready(data)
    if masks is None:
        masks = np.empty((0, 0, 0, 0), data.dtype)
    grads = after[forward:]
    return _run_gradient(kernel, data, params, state, cell, lengths, masks, grads, attrs)


def _run_gradient(kernel, data, params, state, cell, lengths, middle, grads, attrs):
    """A gradient kernel's results for the recurrence's inputs (the plain one reading
    the dropout masks, the taped one the forward's tape: ``middle``), or None for
    arrays it does not take."""
    lstm = attrs["mode"] == "lstm"
    grads = [_ready(g) for g in grads]
    data, params, state = _ready(data), _ready(params), _ready(state)
    cell = _ready(cell) if cell is not None else None
    floats = [data, params, state, middle] + ([cell] if cell is not None else []) + grads
    if not _floats(floats) or 0 in data.shape:
        return None
    dtype = data.dtype
    d_data, d_params, d_state = (np.empty_like(a) for a in (data, params, state))
    empty3 = np.empty((0, 0, 0), dtype)
    d_cell = np.empty_like(cell) if cell is not None else empty3
    arguments = (
        data,
        params,
        state,
        cell if cell is not None else empty3,
        _ready(lengths) if lengths is not None else np.empty(0, dtype),
        middle,
        grads[0],
        grads[1],
        grads[2] if lstm else empty3,
        *_settings(attrs, dtype),
        d_data,
        d_params,
        d_state,
        d_cell,
    )
    # each piece writes its rows of the data's and the states' gradients
    pieces = batch_pieces(attrs, data.shape[0], data.shape[1])
    run_pieces(kernel, arguments, pieces, params_at=len(arguments) - 3)
    return (d_data, d_params, d_state, d_cell) if lstm else (d_data, d_params, d_state)


def _taped(attrs: dict, steps: int, batch: int, dtype: np.dtype) -> np.ndarray:
    """A tape for data of ``steps`` x ``batch`` (see ``ops/rnn_tape.py``)."""
    return np.empty(tape_size(attrs, steps, batch), dtype)


def _forward_taped(kernel, data, params, state, *rest, **attrs):
    return _run_forward(kernel, data, params, state, rest, attrs, taped=True)


def _backward_taped(kernel, data, params, state, *rest, **attrs):
    cell, lengths, after = _split(rest, attrs)
    tape = _ready(after[0])
    return _run_gradient(kernel, data, params, state, cell, lengths, tape, after[1:], attrs)


# -- the whole-program entry's forms (see ..entry) ------------------------------


def _runtime_settings(attrs: dict, dtype: np.dtype) -> str:
    values = []
    for value in _settings(attrs, dtype):
        if isinstance(value, np.floating):
            values.append(f"np.{dtype.name}({float(value)!r})")
        else:
            values.append(runtime_value(value))
    return ", ".join(values)


def _contiguous(slot: int) -> str:
    # a no-op for the C-contiguous arrays slots usually hold; a copy otherwise
    return f"np.ascontiguousarray(s{slot})"


def _call_in_pieces(w: Writer, step, arguments: list[str], params_at: int) -> None:
    """Emit the call of ``step``'s kernel on ``arguments`` (source; the kernel's
    arguments but the piece), cut into pieces of the batch on the threads when the
    work is big enough (:func:`entry_pieces`, from an object-mode function), else
    on the whole batch. ``params_at``: see :func:`run_pieces` (-1: none)."""
    kernel = step.lowering.kernel_name
    first = f"s{step.inputs[0]}"
    split = w.object_mode(
        f"pieces_{kernel}",
        ["arguments", "batch", "work"],
        entry_pieces,
        f"entry_pieces({kernel}, arguments, batch, work, {params_at})",
    )
    listed = ", ".join(arguments)
    batch = f"{first}.shape[1]"
    work = f"{first}.shape[0] * {batch} * {work_per_sequence_step(step.node.attrs)}"
    w.emit(f"if {batch} >= {2 * PIECE_ROWS} and {work} >= {PARALLEL_WORK}:")
    w.emit(f"    {split}(({listed}), {batch}, {work})")
    w.emit("else:")
    w.emit(f"    {kernel}({listed}, 0, {batch})")


def _forward_entry(w: Writer, step) -> bool:
    node, attrs = step.node, step.node.attrs
    dtype = node.types[0].dtype
    lstm = attrs["mode"] == "lstm"
    data, params, state = (_contiguous(i) for i in step.inputs[:3])
    cell = _contiguous(step.inputs[3]) if lstm else f"np.empty((0, 0, 0), np.{dtype.name})"
    lengths = (
        _contiguous(step.inputs[-1])
        if attrs["use_sequence_length"]
        else f"np.empty(0, np.{dtype.name})"
    )
    first = f"s{step.inputs[0]}"
    w.give_up_if(f"{first}.shape[0] == 0 or {first}.shape[1] == 0")
    taped = node.op.name == "_rnn_forward_taped"
    states = step.outputs[: len(step.outputs) - taped]
    for slot, entry_type in zip(states, node.types):
        shape = [str(n) for n in entry_type.shape]
        # sizes from the data: the first two axes of out, the batch of the states
        if slot == step.outputs[0]:
            shape[:2] = [f"{first}.shape[0]", f"{first}.shape[1]"]
        else:
            shape[1] = f"{first}.shape[1]"
        w.result(slot, shape_tuple(shape), dtype)
    cy = f"s{step.outputs[2]}" if lstm else f"np.empty((0, 0, 0), np.{dtype.name})"
    tape = ""
    if taped:
        mode, _, layers, directions, hidden, width, projecting, _, clip = _settings(attrs, dtype)[
            :9
        ]
        size = (
            f"_rnn_tape_size({mode}, {layers}, {directions}, {first}.shape[0], "
            f"{first}.shape[1], {hidden}, {width}, {projecting}, {clip})"
        )
        w.result(step.outputs[-1], f"({size},)", dtype)
        tape = f", s{step.outputs[-1]}"
    arguments = [data, params, state, cell, lengths, _runtime_settings(attrs, dtype)]
    arguments += [f"s{step.outputs[0]}", f"s{step.outputs[1]}", cy + tape]
    _call_in_pieces(w, step, arguments, -1)
    return True


def _backward_entry(w: Writer, step) -> bool:
    node, attrs = step.node, step.node.attrs
    dtype = node.types[0].dtype
    empty3 = f"np.empty((0, 0, 0), np.{dtype.name})"
    lstm, masked = attrs["mode"] == "lstm", draws_masks(attrs)
    inputs = list(step.inputs)
    data, params, state = (_contiguous(i) for i in inputs[:3])
    del inputs[:3]
    cell = _contiguous(inputs.pop(0)) if lstm else empty3
    lengths = (
        _contiguous(inputs.pop(0))
        if attrs["use_sequence_length"]
        else f"np.empty(0, np.{dtype.name})"
    )
    if node.op.name == "_rnn_grad_taped":
        forward, masks = 1, _contiguous(inputs[0])  # the tape where the masks would go
    else:
        forward = 2 + lstm + masked
        masks = (
            _contiguous(inputs[forward - 1])
            if masked
            else f"np.empty((0, 0, 0, 0), np.{dtype.name})"
        )
    grads = [_contiguous(i) for i in inputs[forward:]]
    first = f"s{step.inputs[0]}"
    w.give_up_if(f"{first}.shape[0] == 0 or {first}.shape[1] == 0")
    for slot, source in zip(step.outputs, step.inputs):
        w.result(slot, f"s{source}.shape", dtype)
    d_cell = f"s{step.outputs[3]}" if lstm else empty3
    arguments = [data, params, state, cell, lengths, masks, grads[0], grads[1]]
    arguments += [grads[2] if lstm else empty3, _runtime_settings(attrs, dtype)]
    arguments += [f"s{slot}" for slot in step.outputs[:3]] + [d_cell]
    # d_params: after the 9 arrays, the 12 settings and d_data
    _call_in_pieces(w, step, arguments, 9 + len(_settings(attrs, dtype)) + 1)
    return True


register_lowering(
    Lowering(
        "RNN",
        _SOURCE,
        "lib_rnn_forward",
        run=_forward,
        entry=_forward_entry,
        accepts=_forward_lowerable,
    )
)
register_lowering(
    Lowering(
        "_rnn_grad",
        _SOURCE,
        "lib_rnn_backward",
        run=_backward,
        entry=_backward_entry,
        accepts=_float_data,
    )
)
register_lowering(
    Lowering(
        "_rnn_forward_taped",
        _SOURCE,
        "lib_rnn_forward_taped",
        run=_forward_taped,
        entry=_forward_entry,
        accepts=_float_data,
    )
)
register_lowering(
    Lowering(
        "_rnn_grad_taped",
        _SOURCE,
        "lib_rnn_backward_taped",
        run=_backward_taped,
        entry=_backward_entry,
        accepts=_float_data,
    )
)
