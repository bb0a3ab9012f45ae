"""Pooling (max, avg, sum; 1-3-D, global, 'valid' and 'full') and its gradients as
direct loops over the windows.

Every rank runs as 3-D over rows: data (N, C, *spatial) is viewed as
(N * C, D, H, W) with kernel and stride 1 and pad 0 on added axes, and the rows
are split over the backend's threads (:mod:`..threads`). The windows follow
``symgrad_compiler.ops.conv`` exactly: a max window takes its first largest
element in kernel order, padding counting as -inf (so the gradient goes to the
first maximum, and to no element when a pad position wins); an average divides
by the window's positions inside the padded input (or inside the input, with
``count_include_pad=False``), never counting the 'full' convention's overhang.
Sums run in float64.

2x2 windows at stride 2 without padding (W7's and most CNNs' max pooling) have
loops of their own, written out for that window and branch-free, which numba
vectorises: 40-70x faster forward, about 10x faster gradient on W7's shapes.
Float32 3x3 max pooling at stride 2 goes to ``max_pool.py``'s vector kernels on
CPUs with AVX-512 (planes read in place, a column of 16 windows at a time, the
gradient written once per element from the windows' maxima); SqueezeNet's
512-channel 27x27 layer, B=8, one thread: forward 5.2 -> 0.28 ms, gradient
9.9 -> 2.1.
Every other 1-D and 2-D max pooling (other windows, float64, the gather of the
gradient's gradient) is separable: each input row's windows are folded once, a vector
per tap, then each output row folds its window's rows (``_pl_max_planes``): about
2x faster forward and gradient than folding each output row's windows from the
input rows (``_pl_max_rows``), which 3-D max pooling and planes holding a NaN
keep; that was 2.3-4x faster than window by window (which planes of fewer than
16 windows a row took: 2.7x slower than by planes on SqueezeNet's 13x13 outputs).
Average and sum pooling go by output rows (``_pl_sum_rows``), or window by window
where rows have fewer than 16 windows; at unit stride padded by half the window
(Inception's 3x3 at stride 1) they take each plane as flat vector loops instead
(``_pl_box_rows``), several times faster on Inception's layers (figures there).
"""

from __future__ import annotations

import math

import numpy as np

from ....ir import Node
from ....ops.conv import pool_geometry
from .. import threads
from ..emit import Writer, runtime_value, shape_tuple
from .conv import Triple, guard_shapes
from .table import FLOATS, Lowering, register_lowering

_MODES = {"max": 0, "avg": 1, "sum": 2}

_SOURCE = """
@_jit
def _pl_count(z0, y0, x0, kernel, lo, hi):
    # positions of the window at (z0, y0, x0) inside [lo, hi) on every axis
    total = 1
    for axis in range(3):
        start = (z0, y0, x0)[axis]
        inside = 0
        for a in range(kernel[axis]):
            if lo[axis] <= start + a < hi[axis]:
                inside += 1
        total *= inside
    return max(total, 1)


@_jit
def _pl_argmax(x, r, z0, y0, x0, kernel):
    # the first largest position (flat, in kernel order) of the window; pads are
    # -inf; returns (position, is the position inside the data)
    kd, kh, kw = kernel
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    best = -np.inf
    where = 0
    inside = False
    position = 0
    for a in range(kd):
        z = z0 + a
        for b in range(kh):
            y = y0 + b
            for e in range(kw):
                xx = x0 + e
                real = 0 <= z < D and 0 <= y < H and 0 <= xx < W
                v = x[r, z, y, xx] if real else -np.inf
                if position == 0 or v > best:
                    best, where, inside = v, position, real
                position += 1
    return best, where, inside


@_jit
def _pl_unflat(position, kernel):
    e = position % kernel[2]
    b = (position // kernel[2]) % kernel[1]
    return position // (kernel[1] * kernel[2]), b, e


@_jit
def _pl_pairs(x, od, oh, ow, kernel, stride, pad):
    # 2x2 windows at stride 2 without padding, every window inside the data (as
    # every max pooling of W7 and most CNNs): the loops below, written out for
    # that window, vectorise; the general ones ran 50x slower on W7's shapes
    return (
        kernel[0] == 1 and kernel[1] == 2 and kernel[2] == 2
        and stride[0] == 1 and stride[1] == 2 and stride[2] == 2
        and pad[0] == 0 and pad[1] == 0 and pad[2] == 0
        and od <= x.shape[1] and 2 * oh <= x.shape[2] and 2 * ow <= x.shape[3]
    )


@_jit
def _pl_pair_forward(x, out, lo, hi, mode):
    # lib_pool_forward where _pl_pairs holds; the same order of comparisons and
    # sums over each window (kernel order: (0, 0), (0, 1), (1, 0), (1, 1))
    for r in range(lo, hi):
        for z in range(out.shape[1]):
            for i in range(out.shape[2]):
                r0, r1, o = x[r, z, 2 * i], x[r, z, 2 * i + 1], out[r, z, i]
                for k in range(out.shape[3]):
                    a, b = r0[2 * k], r0[2 * k + 1]
                    c, d = r1[2 * k], r1[2 * k + 1]
                    if mode == 0:
                        m = a
                        if b > m:
                            m = b
                        if c > m:
                            m = c
                        if d > m:
                            m = d
                        o[k] = m
                    else:
                        total = 0.0
                        total += a
                        total += b
                        total += c
                        total += d
                        if mode == 1:
                            total /= 4
                        o[k] = total


@_jit
def _pl_pair_argmax(r0, r1, k):
    # which of the window's four elements is its first largest (kernel order: a
    # later one wins only if larger), as selects: on random data branches here
    # mispredicted and the gradient ran 6x slower
    a, b, c, d = r0[2 * k], r0[2 * k + 1], r1[2 * k], r1[2 * k + 1]
    m = b if b > a else a
    where = 1 if b > a else 0
    where = 2 if c > m else where
    m = c if c > m else m
    return 3 if d > m else where


@_jit
def _pl_pair_backward(g, x, dx, lo, hi, mode):
    # lib_pool_backward where _pl_pairs holds, modes 0-2: the windows do not
    # overlap, so each element of dx is written once
    oh, ow = g.shape[2], g.shape[3]
    # max: each row of windows' first maxima (which of the four), found first
    wheres = np.empty(ow if mode == 0 else 0, np.int32)
    zero = dx.dtype.type(0)
    for r in range(lo, hi):
        if 2 * oh < x.shape[2] or 2 * ow < x.shape[3]:
            dx[r] = 0  # the rows or columns no window covers
        for z in range(g.shape[1]):
            for i in range(oh):
                r0, r1 = x[r, z, 2 * i], x[r, z, 2 * i + 1]
                d0, d1, gr = dx[r, z, 2 * i], dx[r, z, 2 * i + 1], g[r, z, i]
                if mode == 0:
                    # the maxima in a loop of their own (vectorised as the
                    # forward's), then the two rows element by element: one loop
                    # doing both ran 1.3-1.6x slower on W7's layers (one thread,
                    # 32 channels at 32x32 0.76 -> 0.60 ms, 64 at 16x16 0.47 -> 0.29)
                    for k in range(ow):
                        wheres[k] = _pl_pair_argmax(r0, r1, k)
                    for j in range(2 * ow):
                        share, where = gr[j >> 1], wheres[j >> 1]
                        d0[j] = share if where == (j & 1) else zero
                        d1[j] = share if where == 2 + (j & 1) else zero
                    continue
                for k in range(ow):
                    share = gr[k]
                    if mode == 1:
                        share = share / 4
                    d0[2 * k] = share
                    d0[2 * k + 1] = share
                    d1[2 * k] = share
                    d1[2 * k + 1] = share


@_jit
def _pl_pair_gather(h, x, out, lo, hi):
    # lib_pool_backward's mode 3 where _pl_pairs holds: h at the windows' maxima
    for r in range(lo, hi):
        for z in range(out.shape[1]):
            for i in range(out.shape[2]):
                r0, r1 = x[r, z, 2 * i], x[r, z, 2 * i + 1]
                h0, h1, o = h[r, z, 2 * i], h[r, z, 2 * i + 1], out[r, z, i]
                for k in range(out.shape[3]):
                    where = _pl_pair_argmax(r0, r1, k)
                    o[k] = (h0 if where < 2 else h1)[2 * k + (where & 1)]



# Max pooling by output rows: the windows of one output row are a vector, handled
# one kernel position at a time. Each input row is first laid out in stride
# phases, ph[p, t] = the padded row at p + sw * t (-inf in the padding and past
# the row's end), so kernel position e reads ph[e % sw, k + e // sw], contiguous
# in the window k; the vectors are rounded up to _PL_LANES windows, so the loops
# never end in a scalar remainder (short rows of 27 windows spent most of their
# time there, in mispredicted branches).
_PL_LANES = 32
# Rows of fewer windows take the scalar loops below: rounded up to a vector of 32,
# an 8x8 average pooling's gradient ran 1.6x slower than window by window
_PL_ROW_MIN = 16


@_jit
def _pl_phases(row, real, sw, pw, fill, ph):
    # ph[p, t] = row[p + sw * t - pw], fill outside the row (or everywhere when the
    # row is not real: a padding row)
    W = row.shape[0]
    for p in range(sw):
        dst = ph[p]
        for t in range(dst.shape[0]):
            dst[numba.uint64(t)] = fill
        if not real:
            continue
        # the t with 0 <= p + sw * t - pw < W
        lo = max(0, (pw - p + sw - 1) // sw)
        hi = min(dst.shape[0], (W - 1 + pw - p) // sw + 1)
        for t in range(lo, hi):
            dst[numba.uint64(t)] = row[numba.uint64(p + sw * t - pw)]


@_jit
def _pl_tap_max(ph, p, t0, position, best, where):
    # one kernel position of a vector of windows: ph[p, t0 + k] replaces best[k]
    # (and its position where[k]) when larger, or always at position 0: the scalar
    # scan's order and its NaN rule, as selects. Unsigned indices vectorise (see
    # conv's _cv_pad_into); the phases are read in place (a view per kernel
    # position cost more than its loop: ResNet's 3x3/s2 forward 9.0 -> 7.3 ms)
    t0 = numba.uint64(t0)
    if position == 0:
        for k in range(best.shape[0]):
            u = numba.uint64(k)
            best[u] = ph[p, t0 + u]
            where[u] = 0
        return
    for k in range(best.shape[0]):
        u = numba.uint64(k)
        v = ph[p, t0 + u]
        better = v > best[u]
        best[u] = v if better else best[u]
        where[u] = position if better else where[u]


@_jit
def _pl_row_argmax(x, r, z0, y0, kernel, sw, pw, ph, best, where, positions):
    # best[k], where[k]: the first largest element of window k of the output row at
    # depth z0, height y0 (padding -inf), and its kernel position; without
    # positions (the forward), the values alone, by the same scan
    D, H = x.shape[1], x.shape[2]
    position = 0
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            z, y = z0 + a, y0 + b
            real = 0 <= z < D and 0 <= y < H
            _pl_phases(x[r, max(z, 0) % D, max(y, 0) % H], real, sw, pw, -np.inf, ph)
            for e in range(kernel[2]):
                if positions:
                    _pl_tap_max(ph, e % sw, e // sw, position, best, where)
                else:
                    _pl_tap_best(ph, e % sw, e // sw, position == 0, best)
                position += 1


@_jit
def _pl_tap_best(ph, p, t0, first, best):
    # _pl_tap_max's values alone (the forward): ph[p, t0 + k] replaces best[k]
    # when larger, or always at the first kernel position
    t0 = numba.uint64(t0)
    if first:
        for k in range(best.shape[0]):
            u = numba.uint64(k)
            best[u] = ph[p, t0 + u]
        return
    for k in range(best.shape[0]):
        u = numba.uint64(k)
        v = ph[p, t0 + u]
        best[u] = v if v > best[u] else best[u]


@_jit
def _pl_tap_scatter(acc, p, t0, grow, where, position, zero):
    # acc[p, t0 + k] += grow[k] where window k's maximum is at this position (a
    # select: the other windows add zero, of acc's type)
    t0 = numba.uint64(t0)
    for k in range(grow.shape[0]):
        u = numba.uint64(k)
        acc[p, t0 + u] += grow[u] if where[u] == position else zero


@_jit
def _pl_tap_gather(src, p, t0, orow, where, position):
    # orow[k] = src[p, t0 + k] where window k's maximum is at this position
    t0 = numba.uint64(t0)
    for k in range(orow.shape[0]):
        u = numba.uint64(k)
        orow[u] = src[p, t0 + u] if where[u] == position else orow[u]


@_jit
def _pl_add_phases(acc, sw, pw, row):
    # row[i] += acc[p, t] for i = p + sw * t - pw inside the row: the adjoint of
    # _pl_phases
    W = row.shape[0]
    for p in range(sw):
        src = acc[p]
        lo = max(0, (pw - p + sw - 1) // sw)
        hi = min(src.shape[0], (W - 1 + pw - p) // sw + 1)
        for t in range(lo, hi):
            row[numba.uint64(p + sw * t - pw)] += src[numba.uint64(t)]


@_jit
def _pl_max_rows(g, x, out, lo, hi, kernel, stride, pad, mode):
    # max pooling of rows lo..hi by output rows: mode 0 the forward (out pooled, g
    # unused), 1 the gradient (g pooled, out like x), 3 the gather of g at the
    # maxima (out pooled)
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    pooled = g if mode == 1 else out
    od, oh, ow = pooled.shape[1], pooled.shape[2], pooled.shape[3]
    sw, pw = stride[2], pad[2]
    n = (ow + _PL_LANES - 1) // _PL_LANES * _PL_LANES
    T = n + (kernel[2] - 1) // sw + 1
    ph = np.empty((sw, T), x.dtype)
    acc = np.empty((sw, T), out.dtype)
    best = np.empty(n, x.dtype)
    where = np.empty(n, np.int64)
    grow = np.zeros(n, out.dtype)  # a row of g, zero past ow
    zero = np.zeros(1, out.dtype)[0]
    for r in range(lo, hi):
        if mode == 1:
            out[r] = 0
        for i in range(od):
            z0 = i * stride[0] - pad[0]
            for j in range(oh):
                y0 = j * stride[1] - pad[1]
                _pl_row_argmax(x, r, z0, y0, kernel, sw, pw, ph, best, where, mode != 0)
                if mode == 0:
                    out[r, i, j, :] = best[:ow]
                    continue
                if mode == 1:
                    grow[:ow] = g[r, i, j, :]
                else:
                    grow[:] = 0
                position = 0
                for a in range(kernel[0]):
                    for b in range(kernel[1]):
                        z, y = z0 + a, y0 + b
                        real = 0 <= z < D and 0 <= y < H
                        if not real:  # nothing to add or read there
                            position += kernel[2]
                            continue
                        if mode == 1:
                            acc[:] = 0
                        else:
                            _pl_phases(g[r, z, y], True, sw, pw, 0.0, acc)
                        for e in range(kernel[2]):
                            if mode == 1:
                                _pl_tap_scatter(acc, e % sw, e // sw, grow, where, position, zero)
                            else:
                                _pl_tap_gather(acc, e % sw, e // sw, grow, where, position)
                            position += 1
                        if mode == 1:
                            _pl_add_phases(acc, sw, pw, out[r, z, y])
                if mode == 3:
                    out[r, i, j, :] = grow[:ow]


# Max pooling of planes (no window along the depth axis: every 1-D and 2-D max
# pooling) is separable: a window's first largest element is found along each of
# its rows first (_pl_row_folds: each input row once, however many windows share
# it), then down the rows (_pl_max_planes). That is the scan's first maximum in
# its order, signed zeros included, where no element is NaN; a plane with a NaN
# (where the scan keeps a NaN first in its window and skips the others) takes
# _pl_max_rows. ResNet's 3x3/s2 layer (64 channels of 112 x 112, batch 8, one
# thread, the same process): forward 7.6 -> 3.2 ms, gradient 16.4 -> 7.0 ms.
# Rows of a few windows too: SqueezeNet's 512-channel 27x27 -> 13x13 layer,
# window by window before, forward 15.8 -> 5.8 ms, gradient 25.4 -> 9.8 ms.


@_jit
def _pl_row_folds(plane, kw, sw, pw, ph, best, where):
    # True where the plane holds a NaN (then best and where are not all written);
    # else for the windows k of each row y: best[y, k] the largest of its taps
    # e < kw (plane[y, sw*k + e - pw], -inf outside the row); where[y, k] its tap
    # (the first such), unless where is None (the forward: a version compiled
    # without those loops; with them, merely present, the value loops ran 2x
    # slower). Each row is laid out in its stride phases first (ph, as
    # _pl_phases), so that every tap is a contiguous vector.
    # Written for numba's vectoriser, all in this one function: each loop stores
    # to one or two arrays (a loop storing to a third stayed scalar), reads views
    # that begin at their first element (a runtime offset in an index kept the
    # loads scalar), no views are made in calls per row (their reference counts
    # cost more than a row's work), and one phase buffer serves every row.
    n = best.shape[1]
    T = ph.shape[1]
    W = plane.shape[1]
    neg = ph.dtype.type(-np.inf)  # of the plane's type: a float64 one made the folds float64
    lo = min(T, (pw + 1) // 2)  # stride 2: the t with both phases inside the row
    hi = max(lo, min(T, (W - 2 + pw) // 2 + 1))
    for y in range(plane.shape[0]):
        row = plane[y]
        if sw == 2:
            for t in range(lo):
                ph[0, t] = neg
                ph[1, t] = neg
            for t in range(hi, T):
                ph[0, t] = neg
                ph[1, t] = neg
            src, even, odd = row[2 * lo - pw :], ph[0, lo:], ph[1, lo:]
            nan = False  # (looking costs nothing here: no store, no branch)
            for k in range(hi - lo):
                u = numba.uint64(k)
                v, w = src[2 * u], src[2 * u + 1]
                even[u] = v
                odd[u] = w
                nan |= (v != v) | (w != w)
            for t in (lo - 1, hi):  # one phase inside the row (none further out)
                if 0 <= t < T:
                    for p in range(2):
                        c = p + 2 * t - pw
                        if 0 <= c < W:
                            ph[p, t] = row[c]
                            nan |= row[c] != row[c]
            if nan:
                return True
        else:
            for k in range(W):
                if row[k] != row[k]:
                    return True
            _pl_phases(row, True, sw, pw, neg, ph)
        b = best[y]
        if kw == 3 and sw == 2:  # (every 3x3/s2 pooling) the three taps at once
            t0, t1, t2 = ph[0], ph[1], ph[0, 1:]
            if where is None:
                for k in range(n):
                    u = numba.uint64(k)
                    top = t1[u] if t1[u] > t0[u] else t0[u]
                    b[u] = t2[u] if t2[u] > top else top
                continue
            at = where[y]
            for k in range(n):
                u = numba.uint64(k)
                one = t1[u] > t0[u]
                top = t1[u] if one else t0[u]
                two = t2[u] > top
                b[u] = t2[u] if two else top
                at[u] = 2 if two else (1 if one else 0)
            continue
        t0 = ph[0]
        for k in range(n):
            u = numba.uint64(k)
            b[u] = t0[u]
        if where is None:
            for e in range(1, kw):
                src = ph[e % sw, e // sw :]
                for k in range(n):
                    u = numba.uint64(k)
                    b[u] = src[u] if src[u] > b[u] else b[u]
            continue
        at = where[y]
        at[:] = 0
        for e in range(1, kw):
            src = ph[e % sw, e // sw :]
            for k in range(n):
                u = numba.uint64(k)
                better = src[u] > b[u]
                b[u] = src[u] if better else b[u]
                at[u] = e if better else at[u]
    return False


@_jit
def _pl_max_planes(g, x, out, lo, hi, kernel, stride, pad, mode):
    # _pl_max_rows for a kernel of one along the depth axis (unit depth stride, no
    # depth padding), by planes: each input row folded once (_pl_row_folds), then
    # each output row the fold of its window's rows, as vectors; the gradient's
    # scatter and the gather go window by window. Rows of x with a NaN take
    # _pl_max_rows (_pl_row_folds tells)
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    pooled = g if mode == 1 else out
    oh, ow = pooled.shape[2], pooled.shape[3]
    kh, kw = kernel[1], kernel[2]
    sh, sw, pad_h, pw = stride[1], stride[2], pad[1], pad[2]
    best = np.empty((H, ow), x.dtype)
    where = np.empty((H, ow), np.int32)
    phases = np.empty((sw, ow + (kw - 1) // sw + 1), x.dtype)
    row_of = np.empty(ow, np.int32)
    top = np.empty(ow, x.dtype)
    for r in range(lo, hi):
        for i in range(D):
            if mode == 1:
                out[r, i] = 0
            if mode == 0:
                nan = _pl_row_folds(x[r, i], kw, sw, pw, phases, best, None)
            else:
                nan = _pl_row_folds(x[r, i], kw, sw, pw, phases, best, where)
            if nan:  # (writes the whole of out[r])
                _pl_max_rows(g, x, out, r, r + 1, kernel, stride, pad, mode)
                break
            for j in range(oh):
                y0 = j * sh - pad_h
                o = out[r, i, j] if mode == 0 else top
                o[:] = -np.inf
                row_of[:] = 0
                for b in range(kh):
                    y = y0 + b
                    if not 0 <= y < H:
                        continue
                    folded = best[y]
                    if mode == 0:
                        for k in range(ow):
                            u = numba.uint64(k)
                            o[u] = folded[u] if folded[u] > o[u] else o[u]
                        continue
                    for k in range(ow):
                        u = numba.uint64(k)
                        better = folded[u] > o[u]
                        o[u] = folded[u] if better else o[u]
                        row_of[u] = b if better else row_of[u]
                if mode == 0:
                    continue
                for k in range(ow):
                    y = y0 + row_of[k]
                    c = k * sw - pw + (where[y, k] if 0 <= y < H else 0)
                    inside = 0 <= y < H and 0 <= c < W
                    if mode == 1:
                        if inside:
                            out[r, i, y, c] += g[r, i, j, k]
                    else:
                        out[r, i, j, k] = g[r, i, y, c] if inside else 0


@_jit
def _pl_separable(kernel, stride, pad):
    # whether _pl_max_planes takes a max pooling of this geometry
    return kernel[0] == 1 and stride[0] == 1 and pad[0] == 0


@_jit
def _pl_axis_count(start, size, lo, hi):
    # how many of the positions start .. start + size - 1 lie in [lo, hi)
    return max(0, min(start + size, hi) - max(start, lo))


@_jit
def _pl_sum_rows(g, x, out, lo, hi, kernel, stride, pad, mode, include_pad, forward):
    # average (mode 1) or sum (mode 2) pooling of rows lo..hi by output rows, as
    # _pl_max_rows: forward, out[r] = the pooling of x[r] (g unused); else out[r] =
    # g[r] spread back over the windows. Each output row's windows are a vector:
    # per kernel position one add of the input row's phases (padding 0), in
    # float64 and in the scalar loops' order (so the forward's sums are the same);
    # the gradient adds each window's share into a tap row's phases, then into dx
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    pooled = out if forward else g
    od, oh, ow = pooled.shape[1], pooled.shape[2], pooled.shape[3]
    sw, pw = stride[2], pad[2]
    n = (ow + _PL_LANES - 1) // _PL_LANES * _PL_LANES
    T = n + (kernel[2] - 1) // sw + 1
    ph = np.empty((sw, T), x.dtype)
    acc = np.empty((sw, T), np.float64)
    total = np.zeros(n, np.float64)
    # the counting region: the padded data, or the data alone
    grow = (pad[0], pad[1], pad[2]) if include_pad else (0, 0, 0)
    widths = np.ones(n, np.float64)
    for k in range(ow):
        widths[k] = _pl_axis_count(k * sw - pw, kernel[2], -grow[2], W + grow[2])
    for r in range(lo, hi):
        if not forward:
            out[r] = 0
        for i in range(od):
            z0 = i * stride[0] - pad[0]
            cz = _pl_axis_count(z0, kernel[0], -grow[0], D + grow[0])
            for j in range(oh):
                y0 = j * stride[1] - pad[1]
                cy = _pl_axis_count(y0, kernel[1], -grow[1], H + grow[1])
                if forward:
                    total[:] = 0
                else:
                    for k in range(ow):
                        share = np.float64(g[r, i, j, k])
                        if mode == 1:
                            share = share / max(cz * cy * widths[k], 1.0)
                        total[k] = share
                for a in range(kernel[0]):
                    for b in range(kernel[1]):
                        z, y = z0 + a, y0 + b
                        if not (0 <= z < D and 0 <= y < H):
                            continue  # a padding row adds nothing, receives nothing
                        if forward:
                            _pl_phases(x[r, z, y], True, sw, pw, 0.0, ph)
                            for e in range(kernel[2]):
                                t0 = e // sw
                                src = ph[e % sw, t0 : t0 + n]
                                for k in range(n):
                                    u = numba.uint64(k)
                                    total[u] += src[u]
                            continue
                        acc[:] = 0
                        for e in range(kernel[2]):
                            t0 = e // sw
                            dst = acc[e % sw, t0 : t0 + n]
                            for k in range(n):
                                u = numba.uint64(k)
                                dst[u] += total[u]
                        _pl_add_phases(acc, sw, pw, out[r, z, y])
                if forward:
                    orow = out[r, i, j]
                    for k in range(ow):
                        value = total[k]
                        if mode == 1:
                            value /= max(cz * cy * widths[k], 1.0)
                        orow[k] = value


@_jit
def _pl_box_fits(x, pooled, kernel, stride, pad):
    # a 2-D window of odd sides at unit stride, padded by half its side: every
    # output at the position of its input (Inception's 3x3 average poolings)
    return (
        kernel[0] == 1 and stride[0] == 1 and stride[1] == 1 and stride[2] == 1
        and pad[0] == 0 and 2 * pad[1] + 1 == kernel[1] and 2 * pad[2] + 1 == kernel[2]
        and x.shape[1] == 1 and pooled.shape[1] == 1
        and pooled.shape[2] == x.shape[2] and pooled.shape[3] == x.shape[3]
    )


@_jit
def _pl_box_sum(values, sums, inside, k, p, step, P, masked):
    # sums[q] = +0 + each values[q + (e - p) * step], e < k, that lies in the plane
    # (and, masked, in q's row: inside[e, q]), in that order (float64, flat). A
    # window of three (the 3x3 poolings) is one vector loop over the plane's
    # middle, its first and last row or column checked apart; any other, a loop
    # per kernel position. Skipping a position outside adds nothing a padding
    # zero would: the sum starts at +0, so it is never -0
    if k == 3 and p == 1 and P >= 2 * step:
        if masked:  # (along the row: step 1, and inside has its three taps)
            left, right = inside[0], inside[2]
            for q in range(1, P - 1):
                u = numba.uint64(q)
                total = 0.0
                total += values[u - 1] if left[u] else 0.0
                total += values[u]
                total += values[u + 1] if right[u] else 0.0
                sums[u] = total
        else:
            back = numba.uint64(step)
            for q in range(step, P - step):
                u = numba.uint64(q)
                total = 0.0
                total += values[u - back]
                total += values[u]
                total += values[u + back]
                sums[u] = total
        for q in range(step):
            _pl_box_edge(values, sums, inside, q, step, P, masked)
            _pl_box_edge(values, sums, inside, P - 1 - q, step, P, masked)
        return
    for q in range(P):
        sums[numba.uint64(q)] = 0
    for e in range(k):
        shift = (e - p) * step
        a, b = max(0, -shift), min(P, P - shift)
        if masked:  # (inside has a row per tap along the row only)
            mask = inside[e]
            for q in range(a, b):
                u = numba.uint64(q)
                if mask[u]:
                    sums[u] += values[numba.uint64(q + shift)]
        else:
            for q in range(a, b):
                u = numba.uint64(q)
                sums[u] += values[numba.uint64(q + shift)]


@_jit
def _pl_box_edge(values, sums, inside, q, step, P, masked):
    # _pl_box_sum's window of three at position q, each tap checked
    total = 0.0
    for e in range(3):
        t = q + (e - 1) * step
        if 0 <= t < P and (not masked or inside[e, q]):
            total += values[t]
    sums[q] = total


@_jit
def _pl_box_rows(g, x, out, lo, hi, kernel, pad, mode, include_pad, forward):
    # average (mode 1) or sum (mode 2) pooling where _pl_box_fits holds, plane by
    # plane as flat vector loops in float64: each window's sum along its row (the
    # row's ends masked), then down its column (a shift by whole rows: the plane's
    # ends bound it), then over its count. The gradient is the same passes over
    # each window's share (g over its count): at unit stride with the padding half
    # the window, the windows that cover an input position are the window around
    # it turned, which is that window.
    # Inception v3's average poolings, B=8, one thread, Zen 4, medians of three
    # alternating rounds, forward / gradient: 768 channels of 17x17 4.36 / 4.90 ->
    # 2.73 / 2.31 ms, 288 of 35x35 7.13 / 5.92 -> 3.61 / 3.71, 2048 of 8x8 2.84 /
    # 2.86 -> 1.32 / 1.35, against planes padded side by side (copied in and out
    # row by row, a loop per kernel position), whose sums these are bit for bit
    H, W = x.shape[2], x.shape[3]
    kh, kw, ph, pw = kernel[1], kernel[2], pad[1], pad[2]
    P = H * W
    # the counting region: the padded data, or the data alone
    gy, gx = (ph, pw) if include_pad else (0, 0)
    counts = np.empty(P, np.float64)
    inside = np.empty((kw, P), np.bool_)  # whether tap e of q's window is in q's row
    for y in range(H):
        cy = _pl_axis_count(y - ph, kh, -gy, H + gy)
        for k in range(W):
            counts[y * W + k] = max(cy * _pl_axis_count(k - pw, kw, -gx, W + gx), 1)
            for e in range(kw):
                inside[e, y * W + k] = 0 <= k + e - pw < W
    values = np.empty(P, np.float64)
    rows = np.empty(P, np.float64)
    sums = np.empty(P, np.float64)
    src = (x if forward else g).reshape((x.shape[0], P))
    dst = out.reshape((out.shape[0], P))
    divide_in = mode == 1 and not forward
    divide_out = mode == 1 and forward
    for r in range(lo, hi):
        plane = src[r]
        if divide_in:
            for q in range(P):
                u = numba.uint64(q)
                values[u] = np.float64(plane[u]) / counts[u]
        else:
            for q in range(P):
                u = numba.uint64(q)
                values[u] = np.float64(plane[u])
        _pl_box_sum(values, rows, inside, kw, pw, 1, P, True)
        _pl_box_sum(rows, sums, inside, kh, ph, W, P, False)
        line = dst[r]
        if divide_out:
            for q in range(P):
                u = numba.uint64(q)
                line[u] = sums[u] / counts[u]
        else:
            for q in range(P):
                u = numba.uint64(q)
                line[u] = sums[u]


@_jit
def lib_pool_forward(x, out, lo, hi, kernel, stride, pad, mode, include_pad):
    # out[r] = pooling of x[r] for rows lo..hi; x (R, D, H, W), out (R, od, oh, ow)
    x = np.ascontiguousarray(x)
    kd, kh, kw = kernel
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    od, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    if _pl_pairs(x, od, oh, ow, kernel, stride, pad):
        _pl_pair_forward(x, out, lo, hi, mode)
        return
    if mode == 0 and max_pool.forward(x, out, lo, hi, kernel, stride, pad):
        return
    if mode != 0 and _pl_box_fits(x, out, kernel, stride, pad):
        _pl_box_rows(x, x, out, lo, hi, kernel, pad, mode, include_pad, True)
        return
    if mode == 0 and _pl_separable(kernel, stride, pad):  # (any width: see there)
        _pl_max_planes(x, x, out, lo, hi, kernel, stride, pad, 0)
        return
    if ow >= _PL_ROW_MIN and mode == 0:
        _pl_max_rows(x, x, out, lo, hi, kernel, stride, pad, 0)
        return
    if ow >= _PL_ROW_MIN:
        _pl_sum_rows(x, x, out, lo, hi, kernel, stride, pad, mode, include_pad, True)
        return
    if include_pad:
        count_lo = (-pad[0], -pad[1], -pad[2])
        count_hi = (D + pad[0], H + pad[1], W + pad[2])
    else:
        count_lo = (0, 0, 0)
        count_hi = (D, H, W)
    for r in range(lo, hi):
        for i in range(od):
            z0 = i * stride[0] - pad[0]
            for j in range(oh):
                y0 = j * stride[1] - pad[1]
                for k in range(ow):
                    x0 = k * stride[2] - pad[2]
                    if mode == 0:
                        out[r, i, j, k] = _pl_argmax(x, r, z0, y0, x0, kernel)[0]
                        continue
                    total = 0.0
                    for z in range(max(z0, 0), min(z0 + kd, D)):
                        for y in range(max(y0, 0), min(y0 + kh, H)):
                            for xx in range(max(x0, 0), min(x0 + kw, W)):
                                total += x[r, z, y, xx]
                    if mode == 1:
                        total /= _pl_count(z0, y0, x0, kernel, count_lo, count_hi)
                    out[r, i, j, k] = total


@_jit
def lib_pool_backward(g, x, dx, lo, hi, kernel, stride, pad, mode, include_pad):
    # dx[r] = g[r] spread back over the windows of x[r] (max: to each window's
    # first maximum); mode 3 instead gathers g at the maxima of x into dx, which
    # then has the pooled shape (the gradient of max pooling's gradient)
    g = np.ascontiguousarray(g)
    x = np.ascontiguousarray(x)
    kd, kh, kw = kernel
    D, H, W = x.shape[1], x.shape[2], x.shape[3]
    od, oh, ow = g.shape[1], g.shape[2], g.shape[3]
    if mode == 3:
        od, oh, ow = dx.shape[1], dx.shape[2], dx.shape[3]
    if _pl_pairs(x, od, oh, ow, kernel, stride, pad):
        if mode == 3:
            _pl_pair_gather(g, x, dx, lo, hi)
        else:
            _pl_pair_backward(g, x, dx, lo, hi, mode)
        return
    if mode == 0 and max_pool.backward(g, x, dx, lo, hi, kernel, stride, pad):
        return
    if (mode == 1 or mode == 2) and _pl_box_fits(x, g, kernel, stride, pad):
        _pl_box_rows(g, x, dx, lo, hi, kernel, pad, mode, include_pad, False)
        return
    if (mode == 0 or mode == 3) and _pl_separable(kernel, stride, pad):
        _pl_max_planes(g, x, dx, lo, hi, kernel, stride, pad, 1 if mode == 0 else 3)
        return
    if ow >= _PL_ROW_MIN and (mode == 0 or mode == 3):
        _pl_max_rows(g, x, dx, lo, hi, kernel, stride, pad, 1 if mode == 0 else 3)
        return
    if ow >= _PL_ROW_MIN:
        _pl_sum_rows(g, x, dx, lo, hi, kernel, stride, pad, mode, include_pad, False)
        return
    if include_pad:
        count_lo = (-pad[0], -pad[1], -pad[2])
        count_hi = (D + pad[0], H + pad[1], W + pad[2])
    else:
        count_lo = (0, 0, 0)
        count_hi = (D, H, W)
    for r in range(lo, hi):
        if mode != 3:
            dx[r] = 0
        for i in range(od):
            z0 = i * stride[0] - pad[0]
            for j in range(oh):
                y0 = j * stride[1] - pad[1]
                for k in range(ow):
                    x0 = k * stride[2] - pad[2]
                    if mode == 0 or mode == 3:
                        _, where, inside = _pl_argmax(x, r, z0, y0, x0, kernel)
                        a, b, e = _pl_unflat(where, kernel)
                        if mode == 0:
                            if inside:
                                dx[r, z0 + a, y0 + b, x0 + e] += g[r, i, j, k]
                        else:
                            dx[r, i, j, k] = g[r, z0 + a, y0 + b, x0 + e] if inside else 0
                        continue
                    share = g[r, i, j, k]
                    if mode == 1:
                        share = share / _pl_count(z0, y0, x0, kernel, count_lo, count_hi)
                    for z in range(max(z0, 0), min(z0 + kd, D)):
                        for y in range(max(y0, 0), min(y0 + kh, H)):
                            for xx in range(max(x0, 0), min(x0 + kw, W)):
                                dx[r, z, y, xx] += share
"""


def _three(values: tuple[int, ...], fill: int) -> Triple:
    full = (fill,) * (3 - len(values)) + tuple(values)
    return (int(full[0]), int(full[1]), int(full[2]))


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) viewed as (N * C, D, H, W), C-contiguous."""
    a = np.ascontiguousarray(a)
    return a.reshape((a.shape[0] * a.shape[1],) + (1,) * (5 - a.ndim) + a.shape[2:])


def pool_plan(sizes: tuple[int, ...], attrs: dict) -> tuple[tuple[Triple, Triple, Triple], tuple]:
    """The 3-D kernel, stride and pad of a pooling of the spatial ``sizes``, and its
    output sizes."""
    kernel, stride, pad, out, _extra = pool_geometry(
        sizes,
        attrs["kernel"],
        attrs["stride"],
        attrs["pad"],
        attrs["global_pool"],
        attrs["pooling_convention"],
    )
    return (_three(kernel, 1), _three(stride, 1), _three(pad, 0)), out


def _include_pad(attrs: dict) -> bool:
    return attrs["count_include_pad"] is None or bool(attrs["count_include_pad"])


def _supported(attrs: dict) -> bool:
    return attrs["pool_type"] in _MODES


def _pooling(compiled, x, **attrs):
    if not (x.dtype in FLOATS and _supported(attrs)):
        return None
    geometry, out_sizes = pool_plan(x.shape[2:], attrs)
    out = np.empty(x.shape[:2] + tuple(out_sizes), x.dtype)
    x4, out4 = _rows(x), _rows(out)
    mode, include = _MODES[attrs["pool_type"]], _include_pad(attrs)
    taps = math.prod(geometry[0])
    threads.run_rows(compiled, (x4, out4), x4.shape[0], (*geometry, mode, include), out.size * taps)
    return out


def _backward(compiled, g, x, out_shape, mode, attrs) -> np.ndarray:
    geometry, _ = pool_plan(x.shape[2:], attrs)
    out = np.empty(out_shape, g.dtype)
    g4, x4, out4 = _rows(g), _rows(x), _rows(out)
    include = _include_pad(attrs)
    taps = math.prod(geometry[0])
    threads.run_rows(
        compiled, (g4, x4, out4), x4.shape[0], (*geometry, mode, include), g.size * taps
    )
    return out


def _pooling_grad(compiled, g, x, **attrs):
    if not (g.dtype in FLOATS and x.dtype in FLOATS and _supported(attrs)):
        return None
    return _backward(compiled, g, x, x.shape, _MODES[attrs["pool_type"]], attrs)


def _pooling_max_gather(compiled, h, x, **attrs):
    if not (h.dtype in FLOATS and x.dtype in FLOATS and h.shape == x.shape):
        return None
    _, out_sizes = pool_plan(x.shape[2:], attrs)
    return _backward(compiled, h, x, x.shape[:2] + tuple(out_sizes), 3, attrs)


# -- the whole-program entry's forms (see ..entry) -----------------------------------

_ONE_THREAD = threads.split_limit() >= 1 << 62


def _rows_source(name: str, shape: tuple[int, ...]) -> str:
    dims = [f"{name}.shape[0] * {shape[1]}"] + ["1"] * (5 - len(shape))
    dims += [str(s) for s in shape[2:]]
    return f"{name}.reshape({shape_tuple(dims)})"


def _pool_entry_call(w: Writer, step, *, batch_inputs, operands, mode, geometry_from) -> bool:
    node = step.node
    attrs = node.attrs
    dtype = node.types[0].dtype
    if dtype not in FLOATS or any(e.dtype not in FLOATS for e in node.inputs):
        return False
    if not _supported(attrs):
        return False
    geometry, _ = pool_plan(node.inputs[geometry_from].shape[2:], attrs)
    guard_shapes(w, step, batch_inputs)
    batch = f"s{step.inputs[0]}.shape[0]"
    out_shape = node.types[0].shape
    per_image = math.prod(out_shape[1:]) * math.prod(geometry[0])
    if mode != 0 and mode != 3:  # the gradients loop over the windows of g
        per_image = math.prod(node.inputs[0].shape[1:]) * math.prod(geometry[0])
    slot = step.outputs[0]
    dims = [batch] + [str(s) for s in out_shape[1:]]
    w.result(slot, shape_tuple(dims), dtype)
    arrays = [_rows_source(f"s{step.inputs[i]}", node.inputs[i].shape) for i in operands]
    arrays.append(_rows_source(f"s{slot}", out_shape))
    rows = f"{batch} * {out_shape[1]}"
    tail = ", ".join(runtime_value(v) for v in [*map(tuple, geometry), mode, _include_pad(attrs)])
    kernel = step.lowering.kernel_name
    call = f"{kernel}({', '.join(arrays)}, {runtime_value(0)}, {rows}, {tail})"
    if _ONE_THREAD:
        w.emit(call)
        return True
    # big enough for threads: the row pieces of the step runner, from object mode
    split = w.rows_splitter(kernel)
    w.emit(f"if {batch} > 1 and {batch} * {per_image} >= limit:")
    w.emit(f"    {split}(({', '.join(arrays)},), {rows}, ({tail},), {batch} * {per_image})")
    w.emit("else:")
    w.emit(f"    {call}")
    return True


def _pooling_entry(w: Writer, step) -> bool:
    mode = _MODES.get(step.node.attrs["pool_type"], -1)
    return _pool_entry_call(w, step, batch_inputs=(0,), operands=(0,), mode=mode, geometry_from=0)


def _pooling_grad_entry(w: Writer, step) -> bool:
    mode = _MODES.get(step.node.attrs["pool_type"], -1)
    return _pool_entry_call(
        w, step, batch_inputs=(0, 1), operands=(0, 1), mode=mode, geometry_from=1
    )


def _pooling_max_gather_entry(w: Writer, step) -> bool:
    return _pool_entry_call(w, step, batch_inputs=(0, 1), operands=(0, 1), mode=3, geometry_from=1)


def _float_op(node: Node) -> bool:
    return node.types[0].dtype in FLOATS and _supported(node.attrs)


def _pool_lowering(op: str, kernel: str, run, entry) -> Lowering:
    return register_lowering(
        Lowering(op, _SOURCE, kernel, run=run, entry=entry, accepts=_float_op, threaded=True)
    )


_pool_lowering("Pooling", "lib_pool_forward", _pooling, _pooling_entry)
_pool_lowering("_pooling_grad", "lib_pool_backward", _pooling_grad, _pooling_grad_entry)
_pool_lowering(
    "_pooling_max_gather", "lib_pool_backward", _pooling_max_gather, _pooling_max_gather_entry
)
