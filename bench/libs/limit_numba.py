"""limit (numba): one hand-written numba kernel per workload, the practical floor.

numba's ``math.exp``/``math.tanh`` are scalar libm calls that do not
vectorise, so this module carries its own small float32 ``exp``/``tanh``/
``sigmoid`` (Cody-Waite reduction, degree-6 polynomial, 2**k built from the
exponent bits). Kernels use ``error_model='numpy'`` (no zero-division checks
that stop vectorisation) and fastmath flags that keep NaN and inf. They are
``cache=True`` (this is a real module file, so numba's disk cache works; see
NUMBA_CACHE_DIR). W2 uses numpy GEMMs (``np.dot`` into buffers) with fused
kernels for the elementwise parts.

Threads: parallel kernels (W1, W4 from PARALLEL_MIN elements; smaller
arrays use the serial kernel, a launch costs more than it saves) run on
numba's OpenMP layer with OMP_WAIT_POLICY=passive; W2's elementwise kernels
are serial, so the GEMMs have OpenBLAS's threads to themselves.
"""

import math
import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

VERSION = f"numba {numba.__version__}"

# Threads (measured on the 2-core machine, see README): the 'workqueue' layer
# did not scale (1e6 elements: same time as serial); OpenMP did (2x), and with
# OMP_WAIT_POLICY=passive its idle threads sleep instead of spinning, so they
# do not starve OpenBLAS's threads. Must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "omp"

PARALLEL_MIN = 100_000  # elements from which a parallel kernel pays (measured)
BLOCK = 4096  # elements per block: float32 partial sums, float64 total

FASTMATH = {"contract", "reassoc", "arcp", "afn", "nsz"}  # no nnan / ninf
OPTS = dict(cache=True, error_model="numpy", fastmath=FASTMATH)

f32 = np.float32
ONE, TWO, HALF = f32(1.0), f32(2.0), f32(0.5)
LOG2E = f32(1.4426950408889634)
LN2_HI, LN2_LO = f32(0.693359375), f32(-2.12194440e-4)
EXP_LO, EXP_HI = f32(-87.33), f32(88.37)  # keep 2**k a normal float
P2, P3, P4 = f32(1 / 2), f32(1 / 6), f32(1 / 24)
P5, P6 = f32(1 / 120), f32(1 / 720)
T3, T5, T7 = f32(-1 / 3), f32(2 / 15), f32(-17 / 315)
TANH_SMALL = f32(0.125)
NEG2 = f32(-2.0)
W3_MUL, W3_ADD = f32(1.01), f32(0.1)


@intrinsic
def _pow2(typingctx, k):
    """2**k for an integer-valued float32 k in [-126, 127], by building the exponent bits."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        n = builder.fptosi(args[0], i32)
        n = builder.shl(builder.add(n, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(n, ir.FloatType())

    return sig, codegen


@njit(**OPTS)
def exp32(x):
    """Vectorisable float32 exp (max relative error a few ulp; NaN propagates)."""
    if x < EXP_LO:
        x = EXP_LO
    if x > EXP_HI:
        x = EXP_HI
    k = np.floor(x * LOG2E + HALF)
    r = x - k * LN2_HI - k * LN2_LO
    p = ONE + r * (ONE + r * (P2 + r * (P3 + r * (P4 + r * (P5 + r * P6)))))
    return p * _pow2(k)


@njit(**OPTS)
def tanh32(x):
    """Vectorisable float32 tanh: odd Taylor series near 0, 1 - 2/(exp(2|x|)+1) elsewhere."""
    ax = abs(x)
    x2 = x * x
    small = x * (ONE + x2 * (T3 + x2 * (T5 + x2 * T7)))
    t = ONE - TWO / (exp32(TWO * ax) + ONE)
    big = t if x >= 0 else -t
    return small if ax < TANH_SMALL else big


@njit(**OPTS)
def sigmoid32(x):
    """Vectorisable float32 logistic sigmoid."""
    return ONE / (ONE + exp32(-x))


# ---------------------------------------------------------------- W1
@njit(**OPTS)
def _w1_block(x, w, b, gx, gw, gb):
    """W1 on one block: writes the gradients, returns the block's float32 sum."""
    acc = f32(0.0)
    for i in range(x.size):
        xi, wi = x[i], w[i]
        t = tanh32(xi * wi + b[i])
        s = sigmoid32(xi)
        e = exp32(-xi * xi)
        ts = t * s
        d = (ONE - t * t) * s
        gx[i] = d * wi + ts * (ONE - s) - xi * e
        gw[i] = d * xi
        gb[i] = d
        acc += ts + HALF * e
    return acc


@njit(**OPTS)
def w1_serial(x, w, b, gx, gw, gb):
    """W1 value (float32 block sums added in float64) and gradients, one pass."""
    n, acc = x.size, 0.0
    for k in range((n + BLOCK - 1) // BLOCK):
        lo, hi = k * BLOCK, min(n, (k + 1) * BLOCK)
        acc += _w1_block(x[lo:hi], w[lo:hi], b[lo:hi], gx[lo:hi], gw[lo:hi], gb[lo:hi])
    return acc


@njit(parallel=True, **OPTS)
def w1_parallel(x, w, b, gx, gw, gb):
    """W1 as :func:`w1_serial`, blocks split over threads."""
    n, acc = x.size, 0.0
    for k in prange((n + BLOCK - 1) // BLOCK):
        lo, hi = k * BLOCK, min(n, (k + 1) * BLOCK)
        acc += _w1_block(x[lo:hi], w[lo:hi], b[lo:hi], gx[lo:hi], gw[lo:hi], gb[lo:hi])
    return acc


def w1(inp):
    """W1: one fused loop (parallel from PARALLEL_MIN elements)."""
    x, w, b = inp["x"], inp["w"], inp["b"]
    gx, gw, gb = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    kernel = w1_parallel if x.size >= PARALLEL_MIN else w1_serial

    def step():
        return kernel(x, w, b, gx, gw, gb), [gx, gw, gb]

    return step


# ---------------------------------------------------------------- W2
@njit(**OPTS)
def w2_bias_tanh(h, b):
    """h <- tanh(h + b) (b broadcast over rows), in place."""
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[i, j] = tanh32(h[i, j] + b[j])


@njit(**OPTS)
def w2_softmax_xent(z, b, y, gb):
    """z + b -> mean cross-entropy (returned); z <- dloss/dz, gb <- column sums of it."""
    n, m = z.shape
    inv_n = f32(1.0) / f32(n)
    loss = 0.0
    gb[:] = 0
    for i in range(n):
        zmax = z[i, 0] + b[0]
        for j in range(m):
            z[i, j] += b[j]
            zmax = max(zmax, z[i, j])
        zy = z[i, y[i]]
        s = f32(0.0)
        for j in range(m):
            z[i, j] = exp32(z[i, j] - zmax)
            s += z[i, j]
        loss += math.log(s) + zmax - zy  # -log_softmax(z)[i, y_i]
        scale = inv_n / s
        for j in range(m):
            z[i, j] *= scale
        z[i, y[i]] -= inv_n
        for j in range(m):
            gb[j] += z[i, j]
    return loss / n


@njit(**OPTS)
def w2_tanh_backward(dh, h, gb):
    """dh <- dh * (1 - h^2) in place; gb <- its column sums."""
    gb[:] = 0
    for i in range(dh.shape[0]):
        for j in range(dh.shape[1]):
            v = dh[i, j] * (ONE - h[i, j] * h[i, j])
            dh[i, j] = v
            gb[j] += v


def w2(inp):
    """W2: np.dot GEMMs into buffers + three fused elementwise kernels."""
    X, y = inp["X"], inp["y"]
    W1, b1, W2, b2 = inp["W1"], inp["b1"], inp["W2"], inp["b2"]
    B = X.shape[0]
    h = np.empty((B, W1.shape[1]), np.float32)
    z = np.empty((B, W2.shape[1]), np.float32)
    dh = np.empty_like(h)
    gW1, gb1, gW2, gb2 = (np.empty_like(a) for a in (W1, b1, W2, b2))

    def step():
        np.dot(X, W1, out=h)
        w2_bias_tanh(h, b1)
        np.dot(h, W2, out=z)
        loss = w2_softmax_xent(z, b2, y, gb2)
        np.dot(h.T, z, out=gW2)
        np.dot(z, W2.T, out=dh)
        w2_tanh_backward(dh, h, gb1)
        np.dot(X.T, dh, out=gW1)
        return loss, [gW1, gb1, gW2, gb2]

    return step


# ---------------------------------------------------------------- W3
@njit(**OPTS)
def w3_kernel(x, g):
    """The 50-op cycle per element with the derivative carried along; returns sum(v)."""
    acc = f32(0.0)
    for i in range(x.size):
        v = x[i]
        d = ONE
        for k in range(50):
            op = k % 5
            if op == 0:
                d *= math.cos(v)
                v = math.sin(v)
            elif op == 1:
                d *= W3_MUL
                v *= W3_MUL
            elif op == 2:
                v += W3_ADD
            elif op == 3:
                v = tanh32(v)
                d *= ONE - v * v
            else:
                v = exp32(v)
                d *= v
        g[i] = d
        acc += v
    return acc


def w3(inp):
    """W3: one small serial kernel."""
    x = inp["x"]
    g = np.empty_like(x)
    return lambda: (w3_kernel(x, g), [g])


# ---------------------------------------------------------------- W4
@njit(**OPTS)
def _w4_block(x, h):
    """W4 on one block: h = d(sum g)/dx from the closed form; returns sum(g) there."""
    acc = f32(0.0)
    for i in range(x.size):
        xi = x[i]
        t = tanh32(xi)
        e = exp32(-xi * xi)
        u = ONE - t * t
        a = u - TWO * xi * t
        h[i] = e * (NEG2 * (xi * a + t * u + t + xi * u))
        acc += e * a
    return acc


@njit(**OPTS)
def w4_serial(x, h):
    """W4 in one pass; returns sum(g)."""
    n, acc = x.size, 0.0
    for k in range((n + BLOCK - 1) // BLOCK):
        lo, hi = k * BLOCK, min(n, (k + 1) * BLOCK)
        acc += _w4_block(x[lo:hi], h[lo:hi])
    return acc


@njit(parallel=True, **OPTS)
def w4_parallel(x, h):
    """W4 as :func:`w4_serial`, blocks split over threads."""
    n, acc = x.size, 0.0
    for k in prange((n + BLOCK - 1) // BLOCK):
        lo, hi = k * BLOCK, min(n, (k + 1) * BLOCK)
        acc += _w4_block(x[lo:hi], h[lo:hi])
    return acc


def w4(inp):
    """W4: one fused loop (parallel from PARALLEL_MIN elements)."""
    x = inp["x"]
    h = np.empty_like(x)
    kernel = w4_parallel if x.size >= PARALLEL_MIN else w4_serial
    return lambda: (kernel(x, h), [h])
