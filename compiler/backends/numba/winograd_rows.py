"""Seven-tap convolutions down a plane's columns by Winograd's F(2, 7): the
forward, the data gradient and the weight gradient of InceptionV3's 7x1 layers,
and of its 1x7 ones turned (lowerings/conv.py's ``_cv_along_rows``).

A 7x1 kernel at unit stride gives each pair of output rows from 8 input rows.
The wide columns multiply every filter by ``7 x channels`` rows per output
position; F(2, 7) multiplies instead the 8 transforms of each pair's input rows
(``B^T d``) by the 8 transforms of the kernel (``G w``) and takes the pair back
out of the 8 products (``A^T``): 8 products where the columns need 14, in 8
matrix products ``U[e] (filters x channels) @ V[e] (channels x tiles)`` of a
tile per output column and pair of rows. The interpolation points are 0, +-1,
+-2, +-1/2 and infinity, so ``A^T`` and ``B^T`` hold small dyadic numbers (the
most is 21/4) and only ``G``, applied to the weights in float64, divides.

Every value of ``B^T d`` and of the output transform is one vector loop along a
row of the plane, the products are numpy's BLAS (:mod:`.blas`), and several
images go side by side into one product (up to :data:`TILES` tiles). The weight
gradient is the adjoint: ``dU[e] = (A g)[e] @ V[e]^T`` summed over the tiles,
then ``dw = G^T dU`` in float64. InceptionV3's 26 layers of 7 taps, B=8, two
threads, forward/data/weight gradient: 133/134/128 ms by the wide columns,
107/108/106 here (one thread, 192 -> 192 channels, 4 images: 6.6 -> 5.0 ms
forward, of which the 8 products 3.6, the data's transform 0.5, the output's
0.25 and the kernel's 0.4).

Results differ from the exact sum by rounding (a relative 4e-7 root mean square
in float32, 1e-7 for the columns); a NaN or infinity spreads over its whole tile
here, so lowerings/conv.py computes an image whose result is not finite again
the exact way, as it does for its 3x3 Winograd.
"""

from __future__ import annotations

import numba
import numpy as np

from . import blas

TAPS = 7
OUTPUTS = 2  # output rows a tile gives
SPAN = TAPS + OUTPUTS - 1  # a tile's input rows, and its transforms' positions
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)  # and infinity, the eighth

# Fewer channels than this on either side leave the 8 products too thin for
# OpenBLAS (as for the 3x3 Winograd: conv.py's WINOGRAD_CHANNELS)
LEAST_CHANNELS = 16

# Images go side by side into one product up to this many tiles (a 17x17
# image has 9 x 17 = 153): InceptionV3's 192-channel products took as long per
# tile for two images as for four (1.85 against 3.62 ms, one thread)
TILES = 512


def transforms() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, G, B^T)`` of F(2, 7) at :data:`POINTS` (float64, shapes (2, 8),
    (8, 7), (8, 8)): for any 8 inputs ``d`` and 7 taps ``w``,
    ``A^T ((G w) * (B^T d))`` is ``[sum_j w[j] d[j], sum_j w[j] d[j + 1]]``.

    Toom-Cook's construction: the products are the values at the points of the
    polynomials with coefficients ``w`` and ``d`` (G: the kernel's, divided by
    the product of the differences to the other points; infinity: the leading
    coefficients), and ``B^T`` is the unique matrix that makes the identity hold,
    solved here (its entries are dyadic: rounded to 2^-20 exactly)."""
    n = len(POINTS) + 1
    at = np.zeros((OUTPUTS, n))
    g = np.zeros((n, TAPS))
    for k, p in enumerate(POINTS):
        scale = np.prod([p - q for q in POINTS if q != p])
        at[:, k] = [p**i for i in range(OUTPUTS)]
        g[k] = [p**j / scale for j in range(TAPS)]
    at[OUTPUTS - 1, n - 1] = 1.0
    g[n - 1, TAPS - 1] = 1.0
    # sum_k at[i, k] g[k, j] bt[k, l] = [l == i + j] for every i, j, l
    system = np.einsum("ik,kj,ln->ijlkn", at, g, np.eye(n))
    target = np.zeros((OUTPUTS, TAPS, n))
    for i in range(OUTPUTS):
        for j in range(TAPS):
            target[i, j, i + j] = 1.0
    solution = np.linalg.lstsq(system.reshape(-1, n * n), target.ravel(), rcond=None)[0]
    bt = np.round(solution.reshape(n, n) * 2**20) / 2**20
    return at, g, bt


A_T, G, B_T = transforms()

# not cached by numba, which would see only this file's changes, not blas.py's
# it inlines: the generated modules that link it are named by both files' hashes
_jit = numba.njit(nogil=True, boundscheck=False)


@_jit
def takes(channels, filters, depth, kernel, stride, dilate, pad, groups):
    """Whether this module computes a convolution of ``channels`` into
    ``filters`` over images of ``depth`` planes: a 2-D 7x1 kernel at unit stride
    and dilation, one group, padded along the kernel's axis only and by at most
    6 (so that the data gradient, padded by 6 minus that, is one too), and
    enough channels on either side."""
    return (
        groups == 1 and depth == 1
        and kernel[0] == 1 and kernel[1] == TAPS and kernel[2] == 1
        and stride[0] == 1 and stride[1] == 1 and stride[2] == 1
        and dilate[0] == 1 and dilate[1] == 1 and dilate[2] == 1
        and pad[0] == 0 and pad[2] == 0 and 0 <= pad[1] <= TAPS - 1
        and channels >= LEAST_CHANNELS and filters >= LEAST_CHANNELS
    )  # fmt: skip


# the kernel's transform for the data gradient's turned taps: G's columns reversed
G_TURNED = np.ascontiguousarray(G[:, ::-1])


@_jit
def _weights(w, flip, dtype):
    """U[e, f, c] = (G w[f, c])[e] (float64 sums, one rounding); flip: the data
    gradient's, U[e, c, f] = (G w[f, c] turned)[e]. Row by row of U's planes, a
    loop along the row per tap and value: 0.42 ms for 192 x 192 channels, where
    value by value took 1.0 and a float64 product with its copies 0.55."""
    F, C = w.shape[0], w.shape[1]
    rows, columns = (C, F) if flip else (F, C)
    coefficients = G_TURNED if flip else G
    U = np.empty((SPAN, rows, columns), dtype)
    taps = np.empty((TAPS, columns))
    sums = np.empty(columns)
    for r in range(rows):
        for j in range(TAPS):
            for k in range(columns):
                taps[j, k] = w[k, r, 0, j, 0] if flip else w[r, k, 0, j, 0]
        for e in range(SPAN):
            sums[:] = 0
            for j in range(TAPS):
                a = coefficients[e, j]
                if a != 0:
                    for k in range(columns):
                        sums[k] += a * taps[j, k]
            for k in range(columns):
                U[e, r, k] = sums[k]
    return U


@_jit
def _parities(plane, first, pairs, Z):
    """Z[r % 2, (r // 2) * W + k] = plane[r - first, k] for the rows r of the
    padded plane (zero outside ``plane``): its even and odd rows as two streams,
    so the rows 2 t + j of every tile t are one slice of stream j % 2 from row
    j // 2 on."""
    rows, W = plane.shape[0], plane.shape[1]
    Z[:] = 0
    for y in range(max(0, -first), min(rows, Z.shape[1] // W * 2 - first)):
        r = y + first
        Z[r % 2, (r // 2) * W : (r // 2 + 1) * W] = plane[y]


@_jit
def _combine(dst, to, length, coefficients, Z, W):
    """dst[to + k] = sum_j coefficients[j] * Z[j % 2, (j // 2) * W + k] for k <
    length (dst 1-D, Z 2-D, C-contiguous): all 8 terms in one vector loop,
    unsigned indices (a loop per term, or signed indices with numpy's wrap of
    negative ones, ran 3x slower: stores and scalar code)."""
    zero, one = Z[0], Z[1]
    c0, c1 = dst.dtype.type(coefficients[0]), dst.dtype.type(coefficients[1])
    c2, c3 = dst.dtype.type(coefficients[2]), dst.dtype.type(coefficients[3])
    c4, c5 = dst.dtype.type(coefficients[4]), dst.dtype.type(coefficients[5])
    c6, c7 = dst.dtype.type(coefficients[6]), dst.dtype.type(coefficients[7])
    # (uint64 throughout: an int64 factor would make the indices floats)
    to, w1 = numba.uint64(to), numba.uint64(W)
    w2, w3 = w1 + w1, w1 + w1 + w1
    for k in range(length):
        u = numba.uint64(k)
        dst[to + u] = (
            c0 * zero[u] + c1 * one[u] + c2 * zero[w1 + u] + c3 * one[w1 + u]
            + c4 * zero[w2 + u] + c5 * one[w2 + u] + c6 * zero[w3 + u] + c7 * one[w3 + u]
        )  # fmt: skip


@_jit
def _data_transform(x, n, pad, pairs, V, start, Z):
    """V[e, c, start + t * W + k] = (B^T d)[e], d the 8 rows from 2 t - pad of the
    plane x[n, c, 0] (zero outside it) at column k. Z: scratch streams (2,
    (pairs + 3) * W)."""
    W = x.shape[4]
    C, T = V.shape[1], V.shape[2]
    flat = V.reshape(V.size)
    for c in range(x.shape[1]):
        _parities(x[n, c, 0], pad, pairs, Z)
        for e in range(SPAN):
            _combine(flat, (e * C + c) * T + start, pairs * W, B_T[e], Z, W)


@_jit
def _output_transform(M, start, pairs, out, n, Y):
    """out[n, f, 0, 2 t + i] = (A^T m)[i] for the 8 rows m of tile row t in M (the
    rows inside the output); Y: scratch (2, pairs * W), the output's even and odd
    rows."""
    rows, W = out.shape[3], out.shape[4]
    F, T = M.shape[1], M.shape[2]
    length = pairs * W
    flat = M.reshape(M.size)
    for f in range(out.shape[1]):
        at = numba.uint64(f * T + start)
        p1 = numba.uint64(F * T)  # the distance between M's planes e and e + 1
        p2, p3 = p1 + p1, p1 + p1 + p1
        p4 = p2 + p2
        p5, p6, p7 = p4 + p1, p4 + p2, p4 + p3
        for i in range(OUTPUTS):
            a = (M.dtype.type(A_T[i, 0]), M.dtype.type(A_T[i, 1]),
                 M.dtype.type(A_T[i, 2]), M.dtype.type(A_T[i, 3]),
                 M.dtype.type(A_T[i, 4]), M.dtype.type(A_T[i, 5]),
                 M.dtype.type(A_T[i, 6]), M.dtype.type(A_T[i, 7]))  # fmt: skip
            dst = Y[i]
            for k in range(length):
                u = at + numba.uint64(k)
                dst[numba.uint64(k)] = (
                    a[0] * flat[u] + a[1] * flat[p1 + u]
                    + a[2] * flat[p2 + u] + a[3] * flat[p3 + u]
                    + a[4] * flat[p4 + u] + a[5] * flat[p5 + u]
                    + a[6] * flat[p6 + u] + a[7] * flat[p7 + u]
                )  # fmt: skip
        out_plane = out[n, f, 0]
        for y in range(rows):
            out_plane[y] = Y[y % 2, (y // 2) * W : (y // 2 + 1) * W]


@_jit
def _gradient_transform(g, n, pairs, S, start, Z):
    """S[e, f, start + t * W + k] = (A g)[e] for the output gradient's rows 2 t
    and 2 t + 1 of g[n, f, 0] at column k (zero past its last row): the transpose
    of the output transform. Z: scratch streams as for the data."""
    W = g.shape[4]
    F, T = S.shape[1], S.shape[2]
    length = pairs * W
    flat = S.reshape(S.size)
    for f in range(g.shape[1]):
        _parities(g[n, f, 0], 0, pairs, Z)
        even, odd = Z[0], Z[1]
        for e in range(SPAN):
            a0, a1 = S.dtype.type(A_T[0, e]), S.dtype.type(A_T[1, e])
            to = numba.uint64((e * F + f) * T + start)
            for k in range(length):
                u = numba.uint64(k)
                flat[to + u] = a0 * even[u] + a1 * odd[u]


@_jit
def _images_a_product(tiles, count):
    """Images a product of at most TILES tiles takes (``tiles`` an image), the
    blocks of ``count`` images made even (4 images of 153 tiles: 2 and 2, not 3
    and 1)."""
    most = max(1, min(count, TILES // tiles))
    blocks = (count + most - 1) // most
    return (count + blocks - 1) // blocks


@_jit
def forward(x, w, out, lo, hi, pad, flip):
    """out[lo:hi] = the convolution of x[lo:hi] with w, a 7x1 kernel padded by
    ``pad`` rows (where :func:`takes`); flip: the data gradient, x holding the
    output gradient and w the forward's weights, padded by ``6 - pad`` rows."""
    if hi <= lo:
        return
    W = out.shape[4]
    pairs = (out.shape[3] + 1) // 2
    tiles = pairs * W
    U = _weights(w, flip, x.dtype)
    if flip:
        pad = TAPS - 1 - pad
    per = _images_a_product(tiles, hi - lo)
    Z = np.empty((2, (pairs + 3) * W), x.dtype)
    Y = np.empty((2, tiles), x.dtype)
    V = np.empty((SPAN, x.shape[1], per * tiles), x.dtype)
    M = np.empty((SPAN, out.shape[1], per * tiles), x.dtype)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        if m < per:  # the last, shorter block
            V = np.empty((SPAN, x.shape[1], m * tiles), x.dtype)
            M = np.empty((SPAN, out.shape[1], m * tiles), x.dtype)
        for i in range(m):
            _data_transform(x, n0 + i, pad, pairs, V, i * tiles, Z)
        for e in range(SPAN):
            blas.matmul_into(U[e], V[e], False, False, M[e])
        for i in range(m):
            _output_transform(M, i * tiles, pairs, out, n0 + i, Y)


@_jit
def weight_grad(g, x, dw, lo, hi, pad):
    """dw[...] = the weight gradient summed over images lo..hi (dw (F, C, 1, 7,
    1), where :func:`takes`): per position e, dU[e] = (A g)[e] @ V[e]^T over every
    tile, then dw = G^T dU in float64."""
    F, C = dw.shape[0], dw.shape[1]
    W = g.shape[4]
    pairs = (g.shape[3] + 1) // 2
    tiles = pairs * W
    dU = np.zeros((SPAN, F, C), x.dtype)
    per = _images_a_product(tiles, max(1, hi - lo))
    Z = np.empty((2, (pairs + 3) * W), x.dtype)
    V = np.empty((SPAN, C, per * tiles), x.dtype)
    S = np.empty((SPAN, F, per * tiles), x.dtype)
    first = True
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        if m < per:
            V = np.empty((SPAN, C, m * tiles), x.dtype)
            S = np.empty((SPAN, F, m * tiles), x.dtype)
        for i in range(m):
            _data_transform(x, n0 + i, pad, pairs, V, i * tiles, Z)
            _gradient_transform(g, n0 + i, pairs, S, i * tiles, Z)
        for e in range(SPAN):
            blas.matmul_nt_into(S[e], V[e], dU[e], not first)
        first = False
    sums = np.empty((SPAN, F * C))
    sums[:] = dU.reshape((SPAN, F * C))
    taps = np.empty((TAPS, F * C))
    blas.matmul_into(G, sums, True, False, taps)
    for f in range(F):
        for c in range(C):
            for j in range(TAPS):
                dw[f, c, 0, j, 0] = taps[j, f * C + c]
