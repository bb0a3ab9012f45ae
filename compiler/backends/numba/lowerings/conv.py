"""Convolution and Deconvolution (and their gradients) as numba kernels around BLAS.

Every rank is run as 3-D: data (N, C, W) is viewed as (N, C, 1, 1, W) and
(N, C, H, W) as (N, C, 1, H, W), with kernel, stride and dilation 1 and pad 0 on
the added axes, so three kernels serve all six ops:

- ``lib_conv_forward``: per image and group, the windows gathered into a column
  matrix (im2col, one image at a time so it stays in cache) and one GEMM
  ``w (F/g, K) @ cols (K, P)`` written straight into the NCDHW output;
- ``lib_conv_data_grad``: the transposed GEMM ``w^T @ g`` into the columns, added
  back into the image (col2im); Deconvolution's forward is this kernel;
- ``lib_conv_weight_grad``: ``g @ cols^T`` summed over the images.

Two shapes skip the columns: a 1x1 convolution with stride 1 and no padding is
the GEMM alone (its data already is the column matrix), and a convolution with
one input channel per group (depthwise, as in MobileNet) runs as direct loops:
its GEMMs would have one row and its im2col would copy every pixel k*k times.
A depthwise channel is padded once into its stride phases and convolved on its
wide positions (below), vector loops of three kernel positions each, with the
planes of several images side by side in one pass (``_cv_depthwise_layout``):
a 7x7 plane alone made loops of 61 positions, mostly scalar remainders and call
overhead. Small images of a 1x1 convolution (7x7, and a classifier's 1x1) are
likewise packed side by side into one GEMM (``_cv_packed_product``). MobileNet
1.0's layers, B=8, one thread: depthwise forward/data/weight gradient 22/28/26 ->
19/22/25 ms, its 1024-channel 7x7 1x1 layer 7.5/8.0/8.7 -> 5.1/5.5/5.4 ms. The
weight gradient of any kernel over outputs that small (at most 64 positions, one
group) goes the same way: im2col's columns of several images side by side, one
product of depth B * P (``_cv_packed_columns_weight_grad``; ResNet's 512-channel
7x7 layer, two threads, 24-42 ms by Winograd -> 5-7 ms). A depthwise
convolution is split over the threads from less work than a dense one
(``DEPTHWISE_PARALLEL_WORK``): per multiply-add it moves as much data.

Float32 3x3 depthwise convolutions at stride 1 or 2 (one filter a channel, no
dilation: all of MobileNet's) skip the padded planes on CPUs with AVX-512:
``depthwise.py``'s vector kernels read and write each plane in place, a column of
16 outputs at a time with its input rows held in registers. MobileNet's
512-channel 14x14 layer, B=8, one thread: forward/data/weight gradient
0.74/0.72/1.15 -> 0.17/0.16/0.17 ms. The kernels decline other dtypes and
geometries, which keep the wide loops.

At unit stride (every 3x3 layer of W7 and of most CNNs) the columns are "wide":
the image is padded once and output position (i, j, k) is taken as position
``(i * Hp + j) * Wp + k`` of the padded image, so each column row is one
contiguous copy of it (a few percent of junk positions ride along in the GEMM
and are dropped when the output is copied out). The data gradient is then the
forward of g with the weights flipped and transposed (padding d*(k-1) - pad),
and the weight gradient multiplies the columns by g laid out on the same wide
positions. On W7's shapes, one thread: forward, data and weight gradient each
about 2x faster than im2col/col2im (the GEMMs are now most of the time). A data
gradient with at least as many filters as channels and a kernel of 7 taps or
more (not 3x3) keeps col2im, whose columns are channels x taps rows where the
flipped forward's are filters x taps (``_cv_columns_first``: AlexNet's 5x5 64 ->
192 layer, two threads, 17.6 -> 7.9 ms).

A kernel of one row (1 x k: InceptionV3's 1x7 and 1x3 layers) at unit stride,
padded along the row only, carries that padding as junk columns on every row of
wide positions (6 of 23 at 17x17). Its forward and weight gradient go with the
images' last two axes exchanged, the kernel a column, whose padding is whole rows
(``_cv_along_rows``): InceptionV3's 1x7 layers, two threads, B=8, forward 19-28%
and weight gradient 33-52% faster, the copies of the turn included.

3x3 unit-stride convolutions of 2-D images with at least 16 channels on each side
(most of ResNet's, VGG's and AlexNet's layers) run by Winograd F(2x2, 3x3) instead:
each 2x2 block of the output from a 4x4 block of the padded image through 16
products per channel pair instead of 36, batched as 16 GEMMs of the transformed
weights and data (``_cv_winograd_forward``; the data gradient is the same with the
weights turned and transposed by the transform, the weight gradient its adjoint in
the weights, ``_cv_winograd_weight_grad``). On ResNet-18's layers, B=8, one thread:
forward 241 -> 172 ms, data gradient 258 -> 178, weight gradient 278 -> 221. Fewer
channels make the 16 products too thin, and other kernels keep the wide columns.
Outputs 16 or more wide take the transforms as vector loops over whole planes: the
padded plane laid out first in "streams" of one row parity and one column parity
from a column on (``_cv_winograd_streams``), where each of the 16 values of every
tile is one vector loop; an image of more than 256 tiles goes in products of rows
of tiles, whose V and M stay in cache. The data gradient reads the weights' own
transform at the turned kernel's positions (``_CV_WINOGRAD_TURN``). W7's B=32 or
B=8, one thread, fwd/dgrad/wgrad: W7's 32-channel 32x32 layer 4.8/4.9/5.7 ->
3.1/3.1/3.9 ms, its 64-channel 16x16 one 4.1/4.1/5.1 -> 3.7/3.8/4.6; ResNet's
64-channel 56x56 layers (x4) 46/46/58 -> 33/34/52, 512-channel 7x7 (x3) 30/36/37
-> 31/31/36. The weight gradient's 16 products g @ V^T run at 100-110 GFLOP/s in
OpenBLAS where a (tiles, channels) layout of V would run at 140-170, but laying V
or the streams out that way (a transpose) cost more than it saved.

7x1 unit-stride convolutions with at least 16 channels on each side (InceptionV3's
17x17 layers; its 1x7 ones turned, see ``_cv_along_rows``, for the data gradient
too) go by ``winograd_rows.py``'s F(2, 7): each pair of output rows from 8 input
rows through 8 products per channel pair instead of 14 (``_cv_rows_forward``,
the data gradient as the forward of g with the weights turned, and the weight
gradient). InceptionV3's 26 such layers, B=8, two threads, in one process each,
forward/data/weight gradient: 133/134/128 -> 107/108/106 ms.

Big images (at least ``_CV_SHIFTED_POSITIONS`` wide positions) skip the column
matrix on CPUs with AVX-512: ``shifted.py``'s register tiles read each kernel
position's row straight from the padded plane at its offset, for the forward, the
data gradient's flipped forward and, where the channels fill most of a panel of
32, the weight gradient; 3x3 layers of few channels take them instead of Winograd,
whose transforms cost more than its thin products save (InceptionV3's 32 -> 64
147x147 layer, two threads, B=8, forward/data gradient 20.0/20.4 -> 15.6/14.9 ms).

Strided convolutions with a kernel more than twice the stride (ResNet's 7x7/2 stem,
AlexNet's 11x11/4) or small images (ResNet's 14x14 3x3/2) pad each channel once
into its stride phases, where the columns are again contiguous copies over wide
positions (``_cv_strided_forward`` and its two gradients; a big image's forward and
weight gradient by blocks of output rows that stay in cache); the others keep
im2col. On ResNet-18's stem, B=8, one thread: forward 25 -> 17 ms, weight gradient
27 -> 19.

NaN and infinities land where numpy's im2col puts them: the junk positions and
the data gradient's zero border multiply by zero, and so do the padding terms the
depthwise loops skip; a finite factor makes those terms vanish and a non-finite
one does not, so the few cases where one can occur are sent to the exact path or
given their padding terms (see ``lib_conv_weight_grad``, ``lib_conv_data_grad``
and ``_cv_direct``). Winograd's sums spread a special value over its tile; an
image (or a weight gradient) whose Winograd result is not finite is computed again
by the wide columns or im2col (``_cv_wide_forward``, ``_cv_rows_forward``).

The GEMMs are ``blas.matmul_into``: numpy's own BLAS, or our float32 tiles where
they beat it (see blas.py). The step runner splits the batch over the backend's
threads (:mod:`..threads`; the kernels release the GIL), or a Winograd forward's
filters where it has more of them than the batch has tiles (``_by_filters``:
ResNet's 512-channel 7x7 layers); the whole-program entry runs the batch on the
calling thread and hands big convolutions back to the step runner, as it does
with big fused loops.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from ....ir import Node
from ....ops.conv import conv_out_size, deconv_geometry, spatial_geometry
from .. import threads
from ..blas_kernels import OWN_TILES
from ..blas_threads import blas_threads
from ..emit import Writer, runtime_value, shape_tuple
from .table import FLOATS, Lowering, register_lowering

# Winograd F(2x2, 3x3) (the kernels' _CV_WINOGRAD_*, defined here once: the step
# runner cuts the batch by the images one product takes, see _product_images).
# Tiles side by side in one product (images of 14x14 have 49), up to this many
WINOGRAD_TILES = 256
# Fewer channels than this on either side make the 16 products too thin for
# OpenBLAS (K or M of a few): the wide path's one product of 9x the depth wins
WINOGRAD_CHANNELS = 16

# Winograd's products keep their two transformed operands (V and M, or V and the
# output gradient's) within this many values (1 MiB of float32, half a core's L2
# cache on the benchmark machine) where the weights' transform is no bigger. W7's
# 64-channel 16x16 layer, B=32, one thread: four images a product (2.1 MB) -> two,
# forward 4.0 -> 3.4 ms; its 32-to-64-channel weight gradient 3.2 -> 3.0 ms
WINOGRAD_CACHED = 1 << 18

# The weight gradient's products sum over their tiles into a small result (the
# filters by the channels): a longer sum amortises each product's setup and its
# addition into the total, so images go side by side up to this many tiles there,
# past the cache budget above. W7, B=32, two threads (with blas.py's NARROW_INNER):
# the 64-channel 16x16 layer 3.2 -> 2.0 ms, the 32-to-64 one 1.9 -> 1.4, the
# 32-channel 32x32 one 2.9 -> 2.7-3.0; 1024 tiles made the 32x32 one 3.1 (4 MB of
# operands per thread)
WINOGRAD_GRAD_TILES = 512

# ... except where the 16 products are small (a result of at most this many sums,
# filters by channels): their operands are read at few multiply-adds a value, so
# the images go only as many to a product as keep both transformed operands
# within WINOGRAD_GRAD_CACHED values (2 MiB of float32, a core's L2 cache on the
# benchmark machine). 0: no such cap
WINOGRAD_GRAD_SMALL = 64 * 64
WINOGRAD_GRAD_CACHED = 1 << 19

# A weight gradient with this many times as many filters as channels (a group's)
# or more keeps the wide columns: Winograd's 16 products then each give a block
# of fg x cg sums over every tile, too narrow a result for their depth, where the
# wide columns' one product gives fg x 9cg. SqueezeNet's expand layers, B=8, two
# threads, Winograd against wide: 3x3 16 -> 64 at 54x54 2.30 against 1.73 ms,
# 32 -> 128 at 54x54 5.69 / 5.04, 48 -> 192 at 27x27 3.53 / 2.66, 64 -> 256 at
# 27x27 5.37 / 4.56; as many filters as channels keep Winograd (64 -> 64 at 56x56
# 5.30 / 6.22, W7's 32 -> 32 at 32x32, B=32, 2.17 / 2.43)
WINOGRAD_GRAD_FILTERS = 4

# A 3x3 forward or data gradient at unit stride of at most this many channel
# pairs (cg x fg) goes by products over the padded planes' shifted rows instead of
# Winograd (see _CV_SHIFTED in the kernels) where our own tiles take the products
# (blas_kernels.OWN_TILES); where OpenBLAS's AVX-512 kernels do, Winograd's thin
# products win from 2048 pairs on. Sapphire Rapids, two threads, forward/data
# gradient, shifted against Winograd: ResNet's 64 -> 64 56x56 6.76/6.93 against
# 5.59/5.32 ms, DenseNet's 128 -> 32 56x56 8.01/7.40 against 7.52/5.73 and at 28x28
# 2.00/1.85 against 1.77/1.48, InceptionV3's 48 -> 64 35x35 2.33/2.26 against
# 1.99/1.99; at 2048 pairs and fewer shifted stayed ahead (InceptionV3's 32 -> 64
# 147x147 26.0/28.3 against 26.8/31.1, SqueezeNet's 16 -> 64 54x54 1.92/2.35
# against 2.15/2.66). On our tiles (OPENBLAS_CORETYPE=Haswell, same machine) the
# 64 -> 64 layer took 7.14/6.95 shifted against 8.93/6.90 by Winograd.
SHIFTED_WINOGRAD = 4096 if OWN_TILES else 2048

# A weight gradient of more channel pairs than _CV_SHIFTED_WEIGHTS_WINOGRAD that
# Winograd does not take (a kernel other than 3x3) goes by shifted.py's products
# from this many wide positions an image, and where its channels fill at least
# SHIFTED_WEIGHTS_FILL of the panels of 32 they are tiled in. Where OpenBLAS's
# AVX-512 kernels take the wide columns' products, the shifted tiles won from
# smaller images and from emptier panels than against our own tiles (below).
# Zen 4, two threads, B=8, wide columns against shifted, medians of four
# alternating in one process: InceptionV3's 7x1 (turned 1x7, see
# _cv_along_rows) 192 -> 192 17x17 14.2 -> 12.3 ms, 160 -> 160 6.6 -> 5.4,
# 160 -> 192 7.6 -> 6.3, 128 -> 128 4.7 -> 3.7; its 5x5 48 -> 64 35x35 (48
# channels: 3/4 of two panels) 16.0 -> 12.6. On our tiles the wide columns
# stayed ahead (the 1x7 192 -> 192 layer 7.3 against 9.7; 48 channels 3% faster).
# A 3x3 weight gradient that Winograd's does not take for its many filters
# (WINOGRAD_GRAD_FILTERS) is such a case too: SqueezeNet's 64 -> 256 27x27, same
# protocol, wide columns 12.6 -> shifted 10.3 ms (on our own tiles,
# OPENBLAS_CORETYPE=Haswell, 11.3 -> 9.7); its 48 -> 192 7.7 -> 7.5
SHIFTED_WEIGHTS_POSITIONS = 512 if OWN_TILES else 256
SHIFTED_WEIGHTS_FILL = (5, 6) if OWN_TILES else (3, 4)

# the kernels' copies of the constants above
_CONSTANTS = f"""
_CV_SHIFTED_WINOGRAD = {SHIFTED_WINOGRAD}
_CV_SHIFTED_WEIGHTS_POSITIONS = {SHIFTED_WEIGHTS_POSITIONS}
_CV_SHIFTED_WEIGHTS_FILL = {SHIFTED_WEIGHTS_FILL}
_CV_WINOGRAD_TILES = {WINOGRAD_TILES}
_CV_WINOGRAD_CHANNELS = {WINOGRAD_CHANNELS}
_CV_WINOGRAD_GRAD_FILTERS = {WINOGRAD_GRAD_FILTERS}
_CV_WINOGRAD_CACHED = {WINOGRAD_CACHED}
_CV_WINOGRAD_GRAD_TILES = {WINOGRAD_GRAD_TILES}
_CV_WINOGRAD_GRAD_SMALL = {WINOGRAD_GRAD_SMALL}
_CV_WINOGRAD_GRAD_CACHED = {WINOGRAD_GRAD_CACHED}
"""

_KERNELS = """
# the unit-stride products take images side by side up to this many wide
# positions (images of 16x16 and more, 288 positions each, go one by one)
_CV_WIDE_BATCH = 256
# Unit-stride convolutions of images of at least _CV_SHIFTED_POSITIONS wide
# positions go by products over the padded planes' shifted rows (shifted.py)
# instead of the wide columns, and so do 3x3 ones of at most _CV_SHIFTED_WINOGRAD
# channel pairs instead of Winograd. Two threads, B=8, forward and data gradient:
# InceptionV3's 32 -> 64 147x147 layer 20.0/20.4 -> 15.6/14.9 ms (Winograd's
# transforms of thin products, then the columns' 25 MB an image, cost more than
# the 2.25x fewer multiplications saved) and 32 -> 32 149x149 11.8/12.3 ->
# 7.8/8.0, its 5x5 48 -> 64 35x35 forward 4.4 -> 3.7, AlexNet's 5x5 64 -> 192
# forward 8.9 -> 8.5. Smaller images (Inception's 17x17 1x7 and 8x8 1x3 layers)
# were 5-25% slower than their columns several images a product. Weight
# gradients (_cv_shifted_weights): 32 -> 64 147x147 22.0 -> 16.5 ms, 32 -> 32
# 149x149 16.7 -> 10.1, AlexNet's 5x5 9.8 -> 9.3; Winograd's stayed faster on
# more channels (ResNet's 128-channel 28x28 layer 3.7 against 5.2). Up to 4096
# pairs: DenseNet's 3x3 128 -> 32 56x56 forward/data/weight gradient
# 11.6/9.9/13.1 -> 8.7/8.6/9.1 ms (at 28x28 equal), ResNet's 64 -> 64 56x56
# 4.6/4.6/5.1 -> 4.3/4.4/4.8. Those products ran on our own tiles (OpenBLAS without
# AVX-512 kernels there); on OpenBLAS's AVX-512 kernels Winograd's 16 thin
# products are the faster ones from fewer pairs on (SHIFTED_WINOGRAD at the top).
# A weight gradient of at most _CV_SHIFTED_WEIGHTS_WINOGRAD pairs takes the
# shifted products on smaller images too (those of at most _CV_PACK_POSITIONS
# positions go packed before): one thread, W7's 3x3 64 -> 64 16x16 (B=32)
# 5.24 ms by Winograd, 4.77 shifted; 32 -> 64 3.44 / 2.42; DenseNet's 128 -> 32
# 14x14 (B=8) 1.32 / 0.88. With more pairs the wide columns' or Winograd's
# products stayed faster on our own tiles: Inception's 1x7 192 -> 192 17x17, 7.3
# wide against 9.7 shifted; a 256-channel 14x14 3x3, 8.0 by Winograd against
# 12.8 (on OpenBLAS's AVX-512 kernels, not from 256 wide positions on:
# SHIFTED_WEIGHTS_POSITIONS at the top)
_CV_SHIFTED = True
_CV_SHIFTED_WEIGHTS = True
_CV_SHIFTED_POSITIONS = 512
_CV_SHIFTED_WEIGHTS_WINOGRAD = 4096


@_jit
def _cv_shifted(x, w, out, L):
    # whether shifted.py takes the products of a unit-stride convolution (or the
    # flipped forward of its data gradient) over L wide positions an image
    return _CV_SHIFTED and L >= _CV_SHIFTED_POSITIONS and shifted.takes(x, w, out)


@_jit
def _cv_shifted_weights(g, x, dw3, L, cg, fg, kernel, dilate):
    # whether shifted.py takes a unit-stride weight gradient: with few channel
    # pairs, any image of more than _CV_PACK_POSITIONS (see above); with more,
    # images of _CV_SHIFTED_WEIGHTS_POSITIONS that Winograd does not take (a 3x3
    # kernel of _CV_WINOGRAD_GRAD_FILTERS times as many filters as channels or
    # more is not Winograd's: SqueezeNet's expand layers, whose wide columns were
    # slower, see SHIFTED_WEIGHTS_POSITIONS at the top); and channels that fill at
    # least _CV_SHIFTED_WEIGHTS_FILL of the panels of NR (32) it tiles them in
    # (both rules: SHIFTED_WEIGHTS_FILL at the top)
    width = (cg + shifted.NR - 1) // shifted.NR * shifted.NR
    least, of = _CV_SHIFTED_WEIGHTS_FILL
    if least * width > of * cg:
        return False
    few_pairs = cg * fg <= _CV_SHIFTED_WEIGHTS_WINOGRAD
    winograd = (
        _cv_winograd_fits(cg, fg, x.shape[2], kernel, dilate)
        and fg < _CV_WINOGRAD_GRAD_FILTERS * cg
    )
    if not few_pairs and (L < _CV_SHIFTED_WEIGHTS_POSITIONS or winograd):
        return False
    return _CV_SHIFTED_WEIGHTS and L > 0 and shifted.takes(g, x, dw3)


@_jit
def _cv_span(size, start, step, count):
    # [first, end) of the positions o < count with 0 <= start + o * step < size
    first = min(count, max(0, (step - 1 - start) // step))
    end = min(count, max(0, (size - start + step - 1) // step))
    return first, max(first, end)


@_jit
def _cv_gather(x, n, c0, cg, kernel, stride, dilate, pad, osz, cols, start):
    # im2col of one image and group into the columns from start on (images side by
    # side): cols[(c, a, b, e), start + (i, j, k)] =
    # x[n, c0 + c, i*sd + a*dd - pd, j*sh + b*dh - ph, k*sw + e*dw - pw], 0 outside
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilate
    pd, ph, pw = pad
    od, oh, ow = osz
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    row = 0
    for c in range(cg):
        for a in range(kd):
            z0 = a * dd - pd
            ia, ib = _cv_span(D, z0, sd, od)
            for b in range(kh):
                y0 = b * dh - ph
                ja, jb = _cv_span(H, y0, sh, oh)
                for e in range(kw):
                    x0 = e * dw - pw
                    ka, kb = _cv_span(W, x0, sw, ow)
                    dst = cols[row]
                    if ia > 0 or ib < od or ja > 0 or jb < oh or ka > 0 or kb < ow:
                        dst[start : start + od * oh * ow] = 0
                    for i in range(ia, ib):
                        for j in range(ja, jb):
                            src = x[n, c0 + c, z0 + i * sd, y0 + j * sh]
                            base = start + (i * oh + j) * ow
                            # unsigned: see _cv_pad_into
                            for k in range(ka, kb):
                                dst[numba.uint64(base + k)] = src[numba.uint64(x0 + k * sw)]
                    row += 1


@_jit
def _cv_scatter(cols, dx, n, c0, cg, kernel, stride, dilate, pad, osz):
    # col2im, the adjoint of _cv_gather: adds the columns into dx[n, c0:c0+cg]
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilate
    pd, ph, pw = pad
    od, oh, ow = osz
    D, H, W = dx.shape[2], dx.shape[3], dx.shape[4]
    row = 0
    for c in range(cg):
        for a in range(kd):
            z0 = a * dd - pd
            ia, ib = _cv_span(D, z0, sd, od)
            for b in range(kh):
                y0 = b * dh - ph
                ja, jb = _cv_span(H, y0, sh, oh)
                for e in range(kw):
                    x0 = e * dw - pw
                    ka, kb = _cv_span(W, x0, sw, ow)
                    src = cols[row]
                    for i in range(ia, ib):
                        for j in range(ja, jb):
                            dst = dx[n, c0 + c, z0 + i * sd, y0 + j * sh]
                            base = (i * oh + j) * ow
                            for k in range(ka, kb):
                                dst[numba.uint64(x0 + k * sw)] += src[numba.uint64(base + k)]
                    row += 1


@_jit
def _cv_pointwise(kernel, stride, pad):
    return (
        kernel[0] == 1 and kernel[1] == 1 and kernel[2] == 1
        and stride[0] == 1 and stride[1] == 1 and stride[2] == 1
        and pad[0] == 0 and pad[1] == 0 and pad[2] == 0
    )


@_jit
def _cv_all_finite(flat):
    # no NaN or infinity in the 1-D flat: v - v is NaN exactly for those. An or of
    # comparisons vectorises (0.13 ms for ResNet's 2.4M-entry 512-channel weights),
    # where a float sum, kept in order, took 1.4 ms
    bad = False
    for k in range(flat.shape[0]):
        d = flat[k] - flat[k]
        bad |= d != d
    return not bad


@_jit
def _cv_outside_sum(plane, ia, ib, ja, jb, ka, kb):
    # the sum of plane * 0 outside the box [ia, ib) x [ja, jb) x [ka, kb): NaN when
    # a NaN or infinity lies there, else zero (the padding's terms of a gradient)
    total = 0.0
    for i in range(plane.shape[0]):
        for j in range(plane.shape[1]):
            row = plane[i, j]
            inside = ia <= i < ib and ja <= j < jb
            for k in range(plane.shape[2]):
                if not (inside and ka <= k < kb):
                    total += row[k] * 0.0
    return total


@_jit
def _cv_outside_add(plane, ia, ib, ja, jb, ka, kb, value):
    # plane += value outside the box [ia, ib) x [ja, jb) x [ka, kb)
    for i in range(plane.shape[0]):
        for j in range(plane.shape[1]):
            row = plane[i, j]
            inside = ia <= i < ib and ja <= j < jb
            for k in range(plane.shape[2]):
                if not (inside and ka <= k < kb):
                    row[k] += value


@_jit
def _cv_direct(x, w, out, n, kernel, stride, dilate, pad, mode):
    # one input channel per group (depthwise): output channel f reads channel
    # f // (F / C). mode 0: out[n] += conv(x[n], w); mode 1: x[n] += conv^T(out[n], w)
    # (the data gradient, out holding g); mode 2: w += conv^T_x(out) (weight gradient)
    kd, kh, kw = kernel
    sd, sh, sw = stride
    dd, dh, dw = dilate
    pd, ph, pw = pad
    C, D, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    F, od, oh, ow = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    fg = F // C
    for f in range(F):
        c = f // fg
        # The loops visit the taps inside the image only; numpy's columns (and
        # MXNet's) also multiply the zero padding: w * 0 in the forward, g * 0 in the
        # weight gradient. Those terms are zero unless the factor is NaN or infinite,
        # so they are added (_cv_outside_*) only then: the forward for a
        # non-finite weight, the weight gradient for a plane of g that holds one.
        g_finite = mode != 2 or _cv_all_finite(out[n, f].reshape(od * oh * ow))
        for a in range(kd):
            z0 = a * dd - pd
            ia, ib = _cv_span(D, z0, sd, od)
            for b in range(kh):
                y0 = b * dh - ph
                ja, jb = _cv_span(H, y0, sh, oh)
                for e in range(kw):
                    x0 = e * dw - pw
                    ka, kb = _cv_span(W, x0, sw, ow)
                    wv = w[f, 0, a, b, e]
                    total = 0.0
                    if mode == 0 and not np.isfinite(wv):
                        _cv_outside_add(out[n, f], ia, ib, ja, jb, ka, kb, wv * 0.0)
                    elif not g_finite:
                        total += _cv_outside_sum(out[n, f], ia, ib, ja, jb, ka, kb)
                    for i in range(ia, ib):
                        for j in range(ja, jb):
                            xs = x[n, c, z0 + i * sd, y0 + j * sh]
                            os = out[n, f, i, j]
                            if mode == 0 and sw == 1:  # unit stride: a vector loop
                                for k in range(ka, kb):
                                    os[k] += wv * xs[x0 + k]
                            elif mode == 0:
                                for k in range(ka, kb):
                                    os[k] += wv * xs[x0 + k * sw]
                            elif mode == 1 and sw == 1:
                                for k in range(ka, kb):
                                    xs[x0 + k] += wv * os[k]
                            elif mode == 1:
                                for k in range(ka, kb):
                                    xs[x0 + k * sw] += wv * os[k]
                            else:
                                part = 0.0
                                for k in range(ka, kb):
                                    part += os[k] * xs[x0 + k * sw]
                                total += part
                    if mode == 2:
                        w[f, 0, a, b, e] += total


@_jit
def _cv_phase_plan(xsz, pad, stride, kernel, dilate, osz):
    # A depthwise channel padded and laid out in stride phases: phase (pz, py, px)
    # holds the padded image at (pz + sd*u, py + sh*v, px + sw*t), so every kernel
    # position reads one phase at a shift and output position (i, j, k) is wide
    # position q = (i * Hq + j) * Wq + k of each phase (stride 1: one phase, the
    # padded image). Returns the phase sizes (Dq, Hq, Wq) and the wide length L, or
    # L = 0 where osz is not the output size
    sd, sh, sw = stride
    Dp, Hp, Wp = xsz[0] + 2 * pad[0], xsz[1] + 2 * pad[1], xsz[2] + 2 * pad[2]
    Dq, Hq, Wq = (Dp + sd - 1) // sd, (Hp + sh - 1) // sh, (Wp + sw - 1) // sw
    od, oh, ow = osz
    if (
        od != (Dp - (kernel[0] - 1) * dilate[0] - 1) // sd + 1
        or oh != (Hp - (kernel[1] - 1) * dilate[1] - 1) // sh + 1
        or ow != (Wp - (kernel[2] - 1) * dilate[2] - 1) // sw + 1
        or od < 1 or oh < 1 or ow < 1
    ):
        return Dq, Hq, Wq, 0
    return Dq, Hq, Wq, ((od - 1) * Hq + oh - 1) * Wq + ow


@_jit
def _cv_phase_offsets(kernel, stride, dilate, Dq, Hq, Wq, flip):
    # _cv_phase_offsets_spaced for the phases of one image, one after the other
    return _cv_phase_offsets_spaced(kernel, stride, dilate, Dq, Hq, Wq, flip, Dq * Hq * Wq)


@_jit
def _cv_phase_offsets_spaced(kernel, stride, dilate, Dq, Hq, Wq, flip, spacing):
    # the wide offset of every kernel position (a, b, e), in kernel order, into the
    # phases, which start ``spacing`` apart: its phase's start plus its shift; flip
    # (stride 1): of the position turned by 180 degrees (the data gradient's taps)
    kd, kh, kw = kernel
    sd, sh, sw = stride
    offsets = np.empty(kd * kh * kw, np.int64)
    t = 0
    for a in range(kd):
        for b in range(kh):
            for e in range(kw):
                if flip:
                    a_, b_, e_ = kd - 1 - a, kh - 1 - b, kw - 1 - e
                else:
                    a_, b_, e_ = a, b, e
                z, y, x = a_ * dilate[0], b_ * dilate[1], e_ * dilate[2]
                phase = ((z % sd) * sh + y % sh) * sw + x % sw
                shift = ((z // sd) * Hq + y // sh) * Wq + x // sw
                offsets[t] = phase * spacing + shift
                t += 1
    return offsets


@_jit
def _cv_phase_span(size, start, step, count):
    # [lo, hi) of the u < count with 0 <= start + step * u - 0 < size (start may be
    # negative: the padding before the data)
    lo = max(0, (step - 1 - start) // step)
    hi = min(count, (size - 1 - start) // step + 1) if size - 1 - start >= 0 else 0
    return lo, max(lo, hi)


@_jit
def _cv_phases(x, n, c, pad, stride, Dq, Hq, Wq, xq, to_phases):
    # _cv_phases_at with the phases of one image at the start of xq
    _cv_phases_at(x, n, c, pad, stride, Dq, Hq, Wq, xq, 0, Dq * Hq * Wq, to_phases)


@_jit
def _cv_phases_at(x, n, c, pad, stride, Dq, Hq, Wq, xq, start, spacing, to_phases):
    # between channel x[n, c] and its padded stride phases, the first at xq[0,
    # start] and the others ``spacing`` apart (several images side by side keep
    # their phases apart by the images' count, so that a wide position of one
    # image reads only that image's phases): to_phases copies the data in (the
    # border is zero already and never written), otherwise the data positions are
    # copied back into x[n, c]. Unsigned indices (see _cv_pad_into)
    D, H, W = x.shape[2], x.shape[3], x.shape[4]
    sd, sh, sw = stride
    for pz in range(sd):
        ua, ub = _cv_phase_span(D, pz - pad[0], sd, Dq)
        for py in range(sh):
            va, vb = _cv_phase_span(H, py - pad[1], sh, Hq)
            for px in range(sw):
                ta, tb = _cv_phase_span(W, px - pad[2], sw, Wq)
                x0 = px - pad[2]
                base = start + ((pz * sh + py) * sw + px) * spacing
                for u in range(ua, ub):
                    for v in range(va, vb):
                        row = x[n, c, pz - pad[0] + sd * u, py - pad[1] + sh * v]
                        d = base + (u * Hq + v) * Wq
                        if to_phases:
                            for t in range(ta, tb):
                                xq[0, numba.uint64(d + t)] = row[numba.uint64(x0 + sw * t)]
                        else:
                            for t in range(ta, tb):
                                row[numba.uint64(x0 + sw * t)] = xq[0, numba.uint64(d + t)]


@_jit
def _cv_plane_taps(xq, taps, offsets, L, wide):
    # wide[q] = sum over kernel positions t of taps[t] * xq[q + offsets[t]], q < L:
    # depthwise channels on the wide positions, vector loops that take three kernel
    # positions each (a third of the passes over wide that one position a loop took),
    # and a 3x3 kernel's nine in one loop: one pass over wide instead of four (the
    # zeroing and three), MobileNet 1.0's depthwise forward, B=8, one thread, 23 ->
    # 17 ms. Each sum starts from +0 as the zeroing pass made it (a sum of -0
    # products is +0, as the reference's im2col product gives)
    dst, src = wide[0], xq[0]
    T = offsets.shape[0]
    t = 0
    if T == 9:
        w0, w1, w2, w3, w4 = taps[0], taps[1], taps[2], taps[3], taps[4]
        w5, w6, w7, w8 = taps[5], taps[6], taps[7], taps[8]
        o0, o1, o2, o3, o4 = offsets[0], offsets[1], offsets[2], offsets[3], offsets[4]
        o5, o6, o7, o8 = offsets[5], offsets[6], offsets[7], offsets[8]
        for q in range(L):
            u = numba.uint64(q)
            dst[u] = 0
            dst[u] += (
                (
                    w0 * src[numba.uint64(q + o0)]
                    + w1 * src[numba.uint64(q + o1)]
                    + w2 * src[numba.uint64(q + o2)]
                )
                + (
                    w3 * src[numba.uint64(q + o3)]
                    + w4 * src[numba.uint64(q + o4)]
                    + w5 * src[numba.uint64(q + o5)]
                )
            ) + (
                w6 * src[numba.uint64(q + o6)]
                + w7 * src[numba.uint64(q + o7)]
                + w8 * src[numba.uint64(q + o8)]
            )
        return
    for q in range(L):
        dst[numba.uint64(q)] = 0
    while t + 3 <= T:
        w0, w1, w2 = taps[t], taps[t + 1], taps[t + 2]
        o0, o1, o2 = offsets[t], offsets[t + 1], offsets[t + 2]
        for q in range(L):
            u = numba.uint64(q)
            dst[u] += (
                w0 * src[numba.uint64(q + o0)]
                + w1 * src[numba.uint64(q + o1)]
                + w2 * src[numba.uint64(q + o2)]
            )
        t += 3
    for t in range(t, T):
        wv, off = taps[t], offsets[t]
        for q in range(L):
            dst[numba.uint64(q)] += wv * src[numba.uint64(q + off)]


@_jit
def _cv_plane_scatter(gw, taps, offsets, L, dq):
    # dq[q + offsets[t]] += taps[t] * gw[q] for q < L: the adjoint of _cv_plane_taps
    # (within one position the targets differ, so the loop vectorises)
    dst, src = dq[0], gw[0]
    for t in range(offsets.shape[0]):
        wv, off = taps[t], offsets[t]
        for q in range(L):
            dst[numba.uint64(q + off)] += wv * src[numba.uint64(q)]


# Depthwise passes take the planes of several images of one channel side by side,
# up to this many positions: a 7x7 channel padded is 81 positions, whose one-image
# vector loops (61 wide positions) were mostly their scalar remainders and call
# overhead; eight images make one loop of 628
_CV_DEPTHWISE_SPAN = 4096


@_jit
def _cv_depthwise_layout(xsz, osz, kernel, stride, dilate, pad, count, flip):
    # the layout of a depthwise pass over up to ``count`` images side by side: image
    # b's phase p starts at (p * B + b) * PQ (PQ: one phase's positions), so that
    # output position q of image b is wide position b * PQ + q, reading only image
    # b's phases. Returns (Dq, Hq, Wq, L, PQ, B, offsets), L = 0 where the geometry
    # does not fit (see _cv_phase_plan)
    Dq, Hq, Wq, L = _cv_phase_plan(xsz, pad, stride, kernel, dilate, osz)
    PQ = Dq * Hq * Wq
    phases = stride[0] * stride[1] * stride[2]
    B = max(1, min(count, _CV_DEPTHWISE_SPAN // (phases * PQ)))
    offsets = _cv_phase_offsets_spaced(kernel, stride, dilate, Dq, Hq, Wq, flip, B * PQ)
    return Dq, Hq, Wq, L, PQ, B, offsets


@_jit
def _cv_depthwise_taps(w, f, taps):
    # taps[:] = the kernel of filter f, in kernel order
    taps[:] = w[f, 0].reshape(taps.shape[0])


@_jit
def _cv_depthwise_wide(x, w, out, lo, hi, kernel, stride, dilate, pad, flip):
    # a depthwise convolution on the wide positions of its stride phases, images
    # lo..hi side by side (_cv_depthwise_layout): out[n, f] = conv(x[n, f // fg],
    # w[f]) (flip False), or at stride 1 the data gradient, x[n, c] = sum over the
    # fg filters f of c of conv(g[n, f], w[f] turned by 180 degrees) with out
    # holding g and pad the transposed padding (flip True). False (nothing
    # written) where the geometry does not fit
    F, C = w.shape[0], x.shape[1]  # x: the data, or its gradient (flip)
    fg = F // C
    src = out if flip else x  # the padded operand
    dst = x if flip else out
    xsz = (src.shape[2], src.shape[3], src.shape[4])
    osz = (dst.shape[2], dst.shape[3], dst.shape[4])
    layout = _cv_depthwise_layout(xsz, osz, kernel, stride, dilate, pad, hi - lo, flip)
    Dq, Hq, Wq, L, PQ, B, offsets = layout
    if L == 0:
        return False
    phases = stride[0] * stride[1] * stride[2]
    xq = np.zeros((1, phases * B * PQ), x.dtype)
    wide = np.empty((1, (B - 1) * PQ + L), x.dtype)
    total = np.empty((1, (B - 1) * PQ + L), x.dtype)
    taps = np.empty(offsets.shape[0], w.dtype)
    for n0 in range(lo, hi, B):  # the images' channels in memory order
        m = min(B, hi - n0)
        span = (m - 1) * PQ + L
        for c in range(C):
            if not flip:  # the channel once, its fg filters from it
                for b in range(m):
                    _cv_phases_at(src, n0 + b, c, pad, stride, Dq, Hq, Wq, xq, b * PQ, B * PQ, True)
            for f in range(c * fg, (c + 1) * fg):
                _cv_depthwise_taps(w, f, taps)
                if not flip:
                    _cv_plane_taps(xq, taps, offsets, span, wide)
                    for b in range(m):
                        _cv_wide_copy(wide, b * PQ, dst, n0 + b, f, Hq, Wq, False)
                    continue
                # the data gradient: the filters of channel c add up into it
                for b in range(m):
                    _cv_phases_at(src, n0 + b, f, pad, stride, Dq, Hq, Wq, xq, b * PQ, B * PQ, True)
                _cv_plane_taps(xq, taps, offsets, span, total if f == c * fg else wide)
                if f != c * fg:
                    total[0, :span] += wide[0, :span]
            if flip:
                for b in range(m):
                    _cv_wide_copy(total, b * PQ, dst, n0 + b, c, Hq, Wq, False)
    return True


@_jit
def _cv_depthwise_scatter(g, w, dx, lo, hi, kernel, stride, dilate, pad):
    # dx[n, c] = the data gradient of a depthwise convolution at any stride, images
    # lo..hi side by side (_cv_depthwise_layout): g on the wide positions (zero at
    # the junk) added into the phases of a zero image at each kernel position's
    # offset, the data positions copied out (the padding's share dropped). False
    # where the geometry does not fit
    F, C = w.shape[0], dx.shape[1]
    fg = F // C
    xsz = (dx.shape[2], dx.shape[3], dx.shape[4])
    osz = (g.shape[2], g.shape[3], g.shape[4])
    layout = _cv_depthwise_layout(xsz, osz, kernel, stride, dilate, pad, hi - lo, False)
    Dq, Hq, Wq, L, PQ, B, offsets = layout
    if L == 0:
        return False
    phases = stride[0] * stride[1] * stride[2]
    dq = np.empty((1, phases * B * PQ), dx.dtype)
    gw = np.zeros((1, (B - 1) * PQ + L), g.dtype)  # only output positions are written
    taps = np.empty(offsets.shape[0], w.dtype)
    for n0 in range(lo, hi, B):  # the images' channels in memory order
        m = min(B, hi - n0)
        span = (m - 1) * PQ + L
        for c in range(C):
            dq[:] = 0
            for f in range(c * fg, (c + 1) * fg):
                _cv_depthwise_taps(w, f, taps)
                for b in range(m):
                    _cv_wide_copy(gw, b * PQ, g, n0 + b, f, Hq, Wq, True)
                _cv_plane_scatter(gw, taps, offsets, span, dq)
            for b in range(m):
                _cv_phases_at(dx, n0 + b, c, pad, stride, Dq, Hq, Wq, dq, b * PQ, B * PQ, False)
    return True


@_jit
def _cv_depthwise_wide_weight_grad(g, x, dw, lo, hi, kernel, stride, dilate, pad):
    # dw[f] += the weight gradient of a depthwise convolution over images lo..hi on
    # the wide positions of the stride phases, images side by side
    # (_cv_depthwise_layout): per kernel position, g on the wide positions (zero at
    # the junk) times the phases shifted by the position's offset, added up over
    # the images elementwise into a row of L (a vector loop), then summed once per
    # position (a float sum kept in order does not vectorise, so the images share
    # it). The rows run on to a multiple of 16 where an image's plane has room,
    # over junk positions (zero in g; the zero tail of the buffers keeps the last
    # image's reads in bounds): no scalar remainder loops. False where the
    # geometry does not fit
    F, C = g.shape[1], x.shape[1]
    fg = F // C
    xsz = (x.shape[2], x.shape[3], x.shape[4])
    osz = (g.shape[2], g.shape[3], g.shape[4])
    layout = _cv_depthwise_layout(xsz, osz, kernel, stride, dilate, pad, hi - lo, False)
    Dq, Hq, Wq, L, PQ, B, offsets = layout
    if L == 0:
        return False
    T = offsets.shape[0]
    phases = stride[0] * stride[1] * stride[2]
    Lr = min((L + 15) // 16 * 16, PQ)  # past PQ lies the next image
    xq = np.zeros((1, phases * B * PQ + 16), x.dtype)
    gw = np.zeros((1, B * PQ + 16), g.dtype)  # only output positions are written
    products = np.empty((T, Lr), dw.dtype)
    for c in range(C):
        for f in range(c * fg, (c + 1) * fg):
            products[:] = 0
            for n0 in range(lo, hi, B):
                m = min(B, hi - n0)
                for b in range(m):  # again for each filter: the blocks take turns
                    _cv_phases_at(x, n0 + b, c, pad, stride, Dq, Hq, Wq, xq, b * PQ, B * PQ, True)
                for b in range(m):
                    _cv_wide_copy(gw, b * PQ, g, n0 + b, f, Hq, Wq, True)
                src, gr = xq[0], gw[0]
                for t in range(T):
                    off, acc = offsets[t], products[t]
                    for b in range(m):
                        s = b * PQ
                        for q in range(Lr):
                            u = numba.uint64(q)
                            acc[u] += gr[numba.uint64(s + q)] * src[numba.uint64(s + q + off)]
            target = dw[f, 0].reshape(T)
            for t in range(T):
                target[t] += _cv_folded_sum(products[t])
    return True


@_jit
def _cv_folded_sum(row):
    # the sum of row (which it overwrites), its back half added onto its front half
    # until 16 are left: vector adds, where a sum kept in order is one scalar chain
    # (it was most of a depthwise weight gradient of four images)
    n = row.shape[0]
    while n > 16:
        half = n // 2
        for i in range(half):
            row[numba.uint64(i)] += row[numba.uint64(n - half + i)]
        n -= half
    total = row[0] * 0
    for i in range(n):
        total += row[i]
    return total


@_jit
def _cv_wide_plan(xsz, pad, kernel, dilate, osz):
    # the padded sizes (Dp, Hp, Wp) and the wide length L of a unit-stride
    # convolution, or L = 0 where osz is not its output size (the reads of the
    # wide columns stay inside the padded image only for that size)
    Dp, Hp, Wp = xsz[0] + 2 * pad[0], xsz[1] + 2 * pad[1], xsz[2] + 2 * pad[2]
    od, oh, ow = osz
    if (
        od != Dp - (kernel[0] - 1) * dilate[0]
        or oh != Hp - (kernel[1] - 1) * dilate[1]
        or ow != Wp - (kernel[2] - 1) * dilate[2]
        or od < 1 or oh < 1 or ow < 1
    ):
        return Dp, Hp, Wp, 0
    return Dp, Hp, Wp, ((od - 1) * Hp + oh - 1) * Wp + ow


# xp[c] = x[n, c0 + c] padded: shifted.py's, shared with its products (its
# docstring says why the indices there and below are unsigned)
_cv_pad_into = shifted.pad_into


@_jit
def _cv_wide_gather(xp, kernel, dilate, Hp, Wp, cols, start, L):
    # the wide columns of a unit-stride convolution: cols[(c, a, b, e), start + q] =
    # xp[c, q + offset(a, b, e)] for q < L, where the output position (i, j, k) is
    # q = (i * Hp + j) * Wp + k; the q of no output position (k >= ow) are junk
    # that the products carry along (a few percent) and nobody reads
    kd, kh, kw = kernel
    row = 0
    for c in range(xp.shape[0]):
        src = xp[c]
        for a in range(kd):
            for b in range(kh):
                for e in range(kw):
                    off = (a * dilate[0] * Hp + b * dilate[1]) * Wp + e * dilate[2]
                    dst = cols[row]
                    for q in range(L):
                        dst[numba.uint64(start + q)] = src[numba.uint64(off + q)]
                    row += 1


@_jit
def _cv_wide_copy(wide, start, a, n, f0, Hp, Wp, to_wide):
    # between the wide rows wide[f] from column start and a[n, f0 + f] (N, F, od,
    # oh, ow): the output positions only (to_wide: into wide, whose junk stays),
    # by shifted.py's wide_copy over the image's L wide positions
    od, oh, ow = a.shape[2], a.shape[3], a.shape[4]
    L = ((od - 1) * Hp + oh - 1) * Wp + ow
    shifted.wide_copy(wide[:, start:], 0, L, a, n, f0, Hp, Wp, to_wide)


# Winograd F(2x2, 3x3) for 3x3 unit-stride convolutions: each 2x2 block ("tile")
# of the output comes from a 4x4 block of the padded image through 16 products
# per channel pair instead of 36, as 16 GEMMs U[e] (F, C) @ V[e] (C, tiles) of the
# transformed weights U = G w G^T and data V = B^T d B, then Y = A^T M A per tile
# (_CV_WINOGRAD_TILES and _CV_WINOGRAD_CHANNELS: see WINOGRAD_TILES at the top).
# Rows of at least this many tiles (outputs of 16 or more wide) take the
# transforms by vector loops over planes; shorter ones tile by tile
_CV_WINOGRAD_PLANES = 8


@_jit
def _cv_winograd_fits(cg, fg, depth, kernel, dilate):
    # 2-D (depth 1), a 3x3 kernel, no dilation and enough channels per group (cg
    # in, fg out)
    return (
        kernel[0] == 1 and kernel[1] == 3 and kernel[2] == 3
        and dilate[1] == 1 and dilate[2] == 1 and depth == 1
        and cg >= _CV_WINOGRAD_CHANNELS and fg >= _CV_WINOGRAD_CHANNELS
    )


@_jit
def _cv_winograd_stride(size):
    # the distance between the 16 positions' rows of U, V and M: size rounded up to
    # 64 more than a multiple of 1024 elements. A tile's 16 values go to the 16
    # rows; at a distance that is a multiple of 4 KiB (the 64-channel 56x56
    # layer's C * tiles) they all fall in one set of the L1 cache, whose conflicts
    # made the data's transform 5x slower than at a 4 KiB + 256 B one
    return size + (64 - size) % 1024


@_jit
def _cv_winograd_weights(w, gi, fo, co, U):
    # U[e, f * co + c] = (G w[gi*fo + f, c] G^T)[e // 4, e % 4], written in order
    # (the data gradient reads it too, see _cv_winograd_forward)
    for f in range(fo):
        for c in range(co):
            _cv_winograd_kernel(w[gi * fo + f, c, 0], U, f * co + c)


@_jit
def _cv_winograd_kernel(k, U, i):
    # U[e, i] = (G k G^T)[e // 4, e % 4] for the 3x3 kernel k, G the rows (1, 0, 0),
    # (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1)
    half = k.dtype.type(0.5)
    k00, k01, k02 = k[0, 0], k[0, 1], k[0, 2]
    k10, k11, k12 = k[1, 0], k[1, 1], k[1, 2]
    k20, k21, k22 = k[2, 0], k[2, 1], k[2, 2]
    for r in range(4):  # row r of G k (G down the kernel's columns)
        if r == 0:
            t0, t1, t2 = k00, k01, k02
        elif r == 1:
            t0 = half * (k00 + k10 + k20)
            t1 = half * (k01 + k11 + k21)
            t2 = half * (k02 + k12 + k22)
        elif r == 2:
            t0 = half * (k00 - k10 + k20)
            t1 = half * (k01 - k11 + k21)
            t2 = half * (k02 - k12 + k22)
        else:
            t0, t1, t2 = k20, k21, k22
        U[4 * r, i] = t0  # and G along the rows
        U[4 * r + 1, i] = half * (t0 + t1 + t2)
        U[4 * r + 2, i] = half * (t0 - t1 + t2)
        U[4 * r + 3, i] = t2


@_jit
def _cv_winograd_streams(x, n, c0, pad, TW, shifts, size, xs):
    # xs[c, (2 b + r % 2) * size + (r // 2) * TW + t] = the plane x[n, c0 + c, 0]
    # padded, at row r and column 2 t + b, for t < TW and b < shifts: the padded
    # plane as 2 * shifts "streams", each of its rows of one parity read at the
    # columns of one parity from column b on. A 4x4 block's rows at (2 ty, 2 tx)
    # are then the streams of rows 0 and 1 at ty * TW + tx and a row of TW
    # further, its columns the streams b = 0-3, so each value of the transform is
    # one vector loop over all the tiles of a plane (the block by block loop read
    # with a stride of 2 and wrote 16 rows a tile: 1.9 of the 4.9 ms of W7's
    # 32-channel forward). The streams b < 2 are read from the rows (xs's border
    # there is zero already and never written); the streams b >= 2 are those of
    # b - 2 one column on, so they are copied whole, one flat loop each, and the
    # last column of each of their rows put right after (a loop per row and stream
    # of a few elements each cost more than the copy). Unsigned indices (see
    # _cv_pad_into)
    H, W = x.shape[3], x.shape[4]
    ph, pw = pad[1], pad[2]
    for c in range(xs.shape[0]):
        dst = xs[c]
        for y in range(H):
            src = x[n, c0 + c, 0, y]
            r = y + ph
            for b in range(min(2, shifts)):
                # padded column 2 t + b is the data's column 2 t + b - pw
                ta = max(0, (pw - b + 1) // 2)
                tb = min(TW, (W - 1 - b + pw) // 2 + 1)
                d = (2 * b + r % 2) * size + (r // 2) * TW
                for t in range(ta, tb):
                    dst[numba.uint64(d + t)] = src[numba.uint64(2 * t + b - pw)]
        for b in range(2, shifts):
            k = 2 * TW - 2 + b - pw  # the data's column of the rows' last element
            for parity in range(2):
                to, frm = (2 * b + parity) * size, (2 * b - 4 + parity) * size + 1
                for m in range(size - 1):
                    dst[numba.uint64(to + m)] = dst[numba.uint64(frm + m)]
                for row in range(size // TW):
                    y = 2 * row + parity - ph
                    inside = 0 <= y < H and 0 <= k < W
                    dst[to + row * TW + TW - 1] = x[n, c0 + c, 0, y, k] if inside else 0


@_jit
def _cv_scaled(dst, dr, d, src, sr, i, count, scale):
    # dst[dr, d + k] = scale * src[sr, i + k] for k < count (scale +-1: a copy or
    # a negation); rows are indexed in place: a view per row and loop cost more
    # than the loops themselves where they are short
    d, i = numba.uint64(d), numba.uint64(i)
    for k in range(count):
        u = numba.uint64(k)
        dst[dr, d + u] = scale * src[sr, i + u]


@_jit
def _cv_two(dst, dr, d, src, sr, i, j, count, sign, scale):
    # dst[dr, d + k] = scale * (src[sr, i + k] + sign * src[sr, j + k]), k < count
    # (sign and scale +-1, so exactly the values of a +- b and -(a +- b))
    d, i, j = numba.uint64(d), numba.uint64(i), numba.uint64(j)
    for k in range(count):
        u = numba.uint64(k)
        dst[dr, d + u] = scale * (src[sr, i + u] + sign * src[sr, j + u])


@_jit
def _cv_four(dst, dr, d, src, sr, i, j, k, m, count, inner, outer):
    # dst[dr, d + l] = (src[i + l] + inner * src[j + l]) + outer * (src[k + l] +
    # inner * src[m + l]) in row sr, l < count (inner and outer +-1)
    d, i, j = numba.uint64(d), numba.uint64(i), numba.uint64(j)
    k, m = numba.uint64(k), numba.uint64(m)
    for l in range(count):
        u = numba.uint64(l)
        a = src[sr, i + u] + inner * src[sr, j + u]
        dst[dr, d + u] = a + outer * (src[sr, k + u] + inner * src[sr, m + u])


# e = 4 r + s with rows and columns 0 and 3 swapped: the position of the transform
# of a kernel turned by 180 degrees in that of the kernel (see _cv_winograd_forward)
_CV_WINOGRAD_TURN = (15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0)

# B^T's rows (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1) as (first,
# second, sign): row e of B^T x is x[first] + sign * x[second]
_CV_WINOGRAD_B = ((0, 2, -1), (1, 2, 1), (2, 1, -1), (1, 3, -1))


@_jit
def _cv_winograd_rows(src, p, Wp):
    # B^T d for the 4x4 block d at src[p] (row pitch Wp), one column: the rows
    # (1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1) of B^T
    d0, d1 = src[p], src[p + Wp]
    d2, d3 = src[p + 2 * Wp], src[p + 3 * Wp]
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@_jit
def _cv_winograd_data_tiles(xp, Wp, TH, TW, V, T, start):
    # V[e, c * T + start + ty*TW + tx] = (B^T d B)[e // 4, e % 4] for the 4x4 block
    # d of the padded plane xp[c] (row pitch Wp) at (2 ty, 2 tx): B^T down each of
    # the block's columns, then along the rows (B is B^T transposed)
    W = numba.uint64(Wp)
    for c in range(xp.shape[0]):
        src = xp[c]
        for ty in range(TH):
            for tx in range(TW):
                p = numba.uint64(2 * ty * Wp + 2 * tx)
                a0, a1, a2, a3 = _cv_winograd_rows(src, p, W)
                b0, b1, b2, b3 = _cv_winograd_rows(src, p + 1, W)
                c0, c1, c2, c3 = _cv_winograd_rows(src, p + 2, W)
                d0, d1, d2, d3 = _cv_winograd_rows(src, p + 3, W)
                q = numba.uint64(c * T + start + ty * TW + tx)
                V[0, q], V[1, q], V[2, q], V[3, q] = a0 - c0, b0 + c0, c0 - b0, b0 - d0
                V[4, q], V[5, q], V[6, q], V[7, q] = a1 - c1, b1 + c1, c1 - b1, b1 - d1
                V[8, q], V[9, q], V[10, q], V[11, q] = a2 - c2, b2 + c2, c2 - b2, b2 - d2
                V[12, q], V[13, q], V[14, q], V[15, q] = a3 - c3, b3 + c3, c3 - b3, b3 - d3


@_jit
def _cv_winograd_data_planes(xs, TH, TW, ty0, ty1, V, T, start):
    # V[e, c * T + start + (ty - ty0) * TW + tx] = (B^T d B)[e // 4, e % 4] for the
    # 4x4 block d at (2 ty, 2 tx), ty0 <= ty < ty1, of the padded plane in streams
    # xs[c] (see _cv_winograd_streams): B^T down the block's columns, then B along
    # its rows, each of the 16 values one vector loop over the tiles
    size = (TH + 1) * TW  # a stream
    kind = V.dtype.type
    first, count = ty0 * TW, (ty1 - ty0) * TW
    for c in range(xs.shape[0]):
        q = c * T + start
        for i in range(4):
            a1, a2, si = _CV_WINOGRAD_B[i]
            # block row a: the stream of its parity, a row of tiles on for a >= 2
            r1 = (a1 % 2) * size + (a1 // 2) * TW + first
            r2 = (a2 % 2) * size + (a2 // 2) * TW + first
            for j in range(4):
                b1, b2, sj = _CV_WINOGRAD_B[j]
                c1, c2 = 2 * b1 * size, 2 * b2 * size  # block columns b1, b2
                _cv_four(
                    V, 4 * i + j, q, xs, c, c1 + r1, c1 + r2, c2 + r1, c2 + r2,
                    count, kind(si), kind(sj),
                )  # fmt: skip


@_jit
def _cv_winograd_output_tiles(M, fg, T, start, TH, TW, out, n, f0):
    # out[n, f0 + f] = A^T M A per tile (the 2x2 outputs inside the image), M's
    # block of tile t at M[e, f * T + t], with A^T the rows (1, 1, 1, 0) and
    # (0, 1, -1, -1): along each row of the block, then down the two columns left
    oh, ow = out.shape[3], out.shape[4]
    for f in range(fg):
        plane = out[n, f0 + f, 0]
        for ty in range(TH):
            two_rows = 2 * ty + 1 < oh
            for tx in range(TW):
                q = numba.uint64(f * T + start + ty * TW + tx)
                r00 = M[0, q] + M[1, q] + M[2, q]
                r01 = M[1, q] - M[2, q] - M[3, q]
                r10 = M[4, q] + M[5, q] + M[6, q]
                r11 = M[5, q] - M[6, q] - M[7, q]
                r20 = M[8, q] + M[9, q] + M[10, q]
                r21 = M[9, q] - M[10, q] - M[11, q]
                r30 = M[12, q] + M[13, q] + M[14, q]
                r31 = M[13, q] - M[14, q] - M[15, q]
                k = 2 * tx
                plane[2 * ty, k] = r00 + r10 + r20
                if two_rows:
                    plane[2 * ty + 1, k] = r10 - r20 - r30
                if k + 1 < ow:
                    plane[2 * ty, k + 1] = r01 + r11 + r21
                    if two_rows:
                        plane[2 * ty + 1, k + 1] = r11 - r21 - r31


@_jit
def _cv_three(dst, dr, d, src, r1, i1, r2, i2, r3, i3, count, s2, s3):
    # dst[dr, d + k] = (src[r1, i1 + k] + s2 * src[r2, i2 + k]) + s3 * src[r3, i3 + k]
    # for k < count (s2, s3 +-1)
    d, i1, i2, i3 = numba.uint64(d), numba.uint64(i1), numba.uint64(i2), numba.uint64(i3)
    for k in range(count):
        u = numba.uint64(k)
        dst[dr, d + u] = (src[r1, i1 + u] + s2 * src[r2, i2 + u]) + s3 * src[r3, i3 + u]


@_jit
def _cv_winograd_output_planes(M, fg, T, start, ty0, ty1, TW, out, n, f0, ys):
    # out[n, f0 + f] at the tiles of rows ty0..ty1 = A^T M A per tile as in
    # _cv_winograd_output_tiles, a vector loop over the tiles per value: along
    # the block's rows into ys[0:8] (row i's two sums at 2 i, 2 i + 1), down the
    # columns into ys[8:12] (the output's rows 0 and 1 of every tile, their even
    # and odd columns), then each output row interleaved from two of those
    oh, ow = out.shape[3], out.shape[4]
    count = (ty1 - ty0) * TW
    one = M.dtype.type(1)
    half = ow // 2  # the tiles with both columns inside the output
    for f in range(fg):
        q = f * T + start
        for i in range(4):
            e = 4 * i
            _cv_three(ys, 2 * i, 0, M, e, q, e + 1, q, e + 2, q, count, one, one)
            _cv_three(ys, 2 * i + 1, 0, M, e + 1, q, e + 2, q, e + 3, q, count, -one, -one)
        for k in range(2):
            _cv_three(ys, 8 + k, 0, ys, k, 0, 2 + k, 0, 4 + k, 0, count, one, one)
            _cv_three(ys, 10 + k, 0, ys, 2 + k, 0, 4 + k, 0, 6 + k, 0, count, -one, -one)
        for y in range(2 * ty0, min(oh, 2 * ty1)):
            r = 8 + 2 * (y % 2)
            base = numba.uint64((y // 2 - ty0) * TW)
            for tx in range(half):
                u = numba.uint64(tx)
                out[n, f0 + f, 0, y, u + u] = ys[r, base + u]
                out[n, f0 + f, 0, y, u + u + 1] = ys[r + 1, base + u]
            if ow % 2:
                out[n, f0 + f, 0, y, ow - 1] = ys[r, base + half]


@_jit
def _cv_winograd_blocks(TH, TW, lo, hi, cache):
    # (per, rows, planes) of a Winograd kernel over images lo..hi: images side by
    # side, per to a product, up to _CV_WINOGRAD_TILES tiles; an image of more
    # tiles in products of `rows` rows of tiles each (its V and M stay in cache:
    # a 56x56 image's M, 3.2 MB at 64 filters, did not); planes: the transforms
    # by vector loops over planes (_cv_winograd_*_planes), for rows of at least
    # _CV_WINOGRAD_PLANES tiles, else tile by tile (short rows make the planes'
    # loops too short to pay). cache: the values a tile adds to V and M where the
    # images go only as many to a product as keep them in cache, else 0 (see
    # _cv_winograd_cached)
    tiles = TH * TW
    per = max(1, min(hi - lo, (_CV_WINOGRAD_TILES + tiles - 1) // tiles))
    if cache > 0:
        per = max(1, min(per, _CV_WINOGRAD_CACHED // (cache * tiles)))
    planes = TW >= _CV_WINOGRAD_PLANES
    rows = TH
    if planes and tiles > _CV_WINOGRAD_TILES:
        products = (tiles + _CV_WINOGRAD_TILES - 1) // _CV_WINOGRAD_TILES
        rows = (TH + products - 1) // products
    return per, rows, planes


@_jit
def _cv_winograd_cached(cg, fg):
    # the values a tile adds to a product's V and M (16 per channel and filter)
    # where its images go only as many to a product as keep them within
    # _CV_WINOGRAD_CACHED values, else 0: where the weights' transform U, which
    # every product reads whole, is bigger than that, fewer tiles a product would
    # read it more often than the cache saves (ResNet's 256- and 512-channel
    # layers keep _CV_WINOGRAD_TILES)
    values = 16 * (cg + fg)
    return values if 16 * cg * fg <= _CV_WINOGRAD_CACHED else 0


@_jit
def _cv_winograd_forward(x, w, out, lo, hi, groups, pad, flip):
    # out[lo:hi] = conv(x[lo:hi], w) for a 3x3 kernel at unit stride (no bias), by
    # Winograd F(2x2, 3x3): images side by side, or rows of tiles of a big image,
    # to a product (see _cv_winograd_blocks). flip: the data gradient, x holding g
    # and w the forward's weights (turned and transposed by the transform)
    cg, fg = x.shape[1] // groups, out.shape[1] // groups
    oh, ow = out.shape[3], out.shape[4]
    TH, TW = (oh + 1) // 2, (ow + 1) // 2
    # the blocks of the last (partial) tiles read 2 rows and columns past the
    # output: the plane padded to 2 TH + 2 by 2 TW + 2, zero beyond the image
    Hp, Wp = 2 * TH + 2, 2 * TW + 2
    tiles = TH * TW
    per, rows, planes = _cv_winograd_blocks(TH, TW, lo, hi, _cv_winograd_cached(cg, fg))
    # The data gradient's weights, w turned by 180 degrees and transposed, need no
    # transform of their own: turning a kernel reverses its rows and columns (J w
    # J), and G J = P G with P the swap of rows 0 and 3, so the transform of the
    # turned kernel is that of w with its rows and columns 0 and 3 swapped: the
    # product reads position _CV_WINOGRAD_TURN[e] of w's own transform, transposed.
    # The turned transform read w across its filters, a cache miss per kernel:
    # 2.6 ms for ResNet's 512x512 weights, 1.4 ms in w's order
    U = np.empty((groups, 16, _cv_winograd_stride(fg * cg)), w.dtype)
    for gi in range(groups):
        if flip:  # w's filters are g's channels here
            _cv_winograd_weights(w, gi, cg, fg, U[gi])
        else:
            _cv_winograd_weights(w, gi, fg, cg, U[gi])
    # the padded plane: in streams for the planes' transform, else as it is
    xs = np.zeros((cg, 8 * (TH + 1) * TW) if planes else (0, 0), x.dtype)
    xp = np.zeros((0, 0) if planes else (cg, Hp * Wp), x.dtype)
    ys = np.empty((12, rows * TW), x.dtype)  # the planes' output transform's rows
    V = np.empty((16, _cv_winograd_stride(cg * per * tiles)), x.dtype)
    M = np.empty((16, _cv_winograd_stride(fg * per * tiles)), x.dtype)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        for gi in range(groups):
            for ty0 in range(0, TH, rows):  # one product each (per == 1 if several)
                ty1 = min(TH, ty0 + rows)
                span = (ty1 - ty0) * TW  # an image's tiles in this product
                T = m * span
                for b in range(m):
                    if planes:
                        if ty0 == 0:
                            size = (TH + 1) * TW
                            _cv_winograd_streams(x, n0 + b, gi * cg, pad, TW, 4, size, xs)
                        _cv_winograd_data_planes(xs, TH, TW, ty0, ty1, V, T, b * span)
                    else:
                        _cv_pad_into(x, n0 + b, gi * cg, pad, Hp, Wp, xp)
                        _cv_winograd_data_tiles(xp, Wp, TH, TW, V, T, b * span)
                for e in range(16):
                    if flip:  # U[turned e] is (cg, fg): w's filters are g's channels
                        weights = U[gi, _CV_WINOGRAD_TURN[e], : fg * cg].reshape((cg, fg))
                    else:
                        weights = U[gi, e, : fg * cg].reshape((fg, cg))
                    blas.matmul_into(
                        weights,
                        V[e, : cg * T].reshape((cg, T)),
                        flip,
                        False,
                        M[e, : fg * T].reshape((fg, T)),
                    )
                for b in range(m):
                    n, f0 = n0 + b, gi * fg
                    if planes:
                        _cv_winograd_output_planes(M, fg, T, b * span, ty0, ty1, TW, out, n, f0, ys)
                    else:
                        _cv_winograd_output_tiles(M, fg, T, b * span, TH, TW, out, n, f0)


@_jit
def _cv_winograd_output_grads_tiles(g, n, f0, gp, W2, TH, TW, Gt, T, start):
    # Gt[e, f * T + start + ty*TW + tx] = (A h A^T)[e // 4, e % 4] for the 2x2
    # block h of g[n, f0 + f] at (2 ty, 2 tx), zero past the output (gp: a zero
    # plane 2 TH by 2 TW to hold it); A = (A^T)^T, the adjoint of the output's
    # transform in _cv_winograd_output_tiles
    W = numba.uint64(W2)
    for f in range(gp.shape[0]):
        _cv_pad_into(g, n, f0 + f, (0, 0, 0), 2 * TH, W2, gp[f : f + 1])
        src = gp[f]
        for ty in range(TH):
            for tx in range(TW):
                p = numba.uint64(2 * ty * W2 + 2 * tx)
                g00, g01 = src[p], src[p + 1]
                g10, g11 = src[p + W], src[p + W + 1]
                s0, d0, s1, d1 = g00 + g01, g00 - g01, g10 + g11, g10 - g11
                q = numba.uint64(f * T + start + ty * TW + tx)
                Gt[0, q], Gt[1, q], Gt[2, q], Gt[3, q] = g00, s0, d0, -g01
                Gt[4, q], Gt[5, q] = g00 + g10, s0 + s1
                Gt[6, q], Gt[7, q] = d0 + d1, -(g01 + g11)
                Gt[8, q], Gt[9, q] = g00 - g10, s0 - s1
                Gt[10, q], Gt[11, q] = d0 - d1, g11 - g01
                Gt[12, q], Gt[13, q], Gt[14, q], Gt[15, q] = -g10, -s1, -d1, g11


@_jit
def _cv_winograd_output_grads_planes(gs, fg, TW, ty0, ty1, Gt, T, start):
    # Gt[e, f * T + start + (ty - ty0) * TW + tx] as in
    # _cv_winograd_output_grads_tiles for the tiles of rows ty0..ty1, from g's
    # planes in streams (gs[f]: h[a, b] of every tile at (2 b + a) * L, zero past
    # the output, see _cv_winograd_streams), each value one vector loop over the
    # tiles
    L = gs.shape[1] // 4
    count = (ty1 - ty0) * TW
    one = Gt.dtype.type(1)
    h00, h10 = ty0 * TW, L + ty0 * TW
    h01, h11 = 2 * L + ty0 * TW, 3 * L + ty0 * TW
    for f in range(fg):
        q = f * T + start
        _cv_scaled(Gt, 0, q, gs, f, h00, count, one)
        _cv_two(Gt, 1, q, gs, f, h00, h01, count, one, one)
        _cv_two(Gt, 2, q, gs, f, h00, h01, count, -one, one)
        _cv_scaled(Gt, 3, q, gs, f, h01, count, -one)
        _cv_two(Gt, 4, q, gs, f, h00, h10, count, one, one)
        _cv_four(Gt, 5, q, gs, f, h00, h01, h10, h11, count, one, one)
        _cv_four(Gt, 6, q, gs, f, h00, h01, h10, h11, count, -one, one)
        _cv_two(Gt, 7, q, gs, f, h01, h11, count, one, -one)
        _cv_two(Gt, 8, q, gs, f, h00, h10, count, -one, one)
        _cv_four(Gt, 9, q, gs, f, h00, h01, h10, h11, count, one, -one)
        _cv_four(Gt, 10, q, gs, f, h00, h01, h10, h11, count, -one, -one)
        _cv_two(Gt, 11, q, gs, f, h11, h01, count, -one, one)
        _cv_scaled(Gt, 12, q, gs, f, h10, count, -one)
        _cv_two(Gt, 13, q, gs, f, h10, h11, count, one, -one)
        _cv_two(Gt, 14, q, gs, f, h10, h11, count, -one, -one)
        _cv_scaled(Gt, 15, q, gs, f, h11, count, one)


@_jit
def _cv_winograd_adjoint_rows(v0, v1, v2, v3, half, r0, r1, r2):
    # (r0, r1, r2) = G^T (v0, v1, v2, v3), element by element: three vector loops,
    # each storing one array (numba vectorises those)
    for c in range(r0.shape[0]):
        u = numba.uint64(c)
        r0[u] = v0[u] + half * (v1[u] + v2[u])
    for c in range(r0.shape[0]):
        u = numba.uint64(c)
        r1[u] = half * (v1[u] - v2[u])
    for c in range(r0.shape[0]):
        u = numba.uint64(c)
        r2[u] = half * (v1[u] + v2[u]) + v3[u]


@_jit
def _cv_winograd_kernel_grads(S, fg, cg, target):
    # target[f, c * 9 + a * 3 + b] += (G^T S_fc G)[a, b] with S_fc[e // 4, e % 4] =
    # S[e, f * cg + c]: the adjoint of _cv_winograd_weights. Per filter, as vector
    # loops over the channels, laid out as the weights lie in a buffer that stays
    # in L1, then added to the filter's row in one contiguous pass. Pair by pair
    # it was scalar, with nine strided additions into a row fetched from memory:
    # ResNet's 512-channel 7x7 layer, 3.9 -> 2.1 ms a piece of the batch (each
    # thread does its own)
    half = S.dtype.type(0.5)
    t = np.empty((12, cg), S.dtype)  # t[a * 4 + s, c]: G^T down the block's columns
    o = np.empty((9, cg), S.dtype)  # o[a * 3 + b, c]: and G along its rows
    laid = np.empty(9 * cg, S.dtype)  # o as the weights lie, [c * 9 + a * 3 + b]
    for f in range(fg):
        q0, q1 = f * cg, (f + 1) * cg
        for s in range(4):
            v0, v1, v2, v3 = S[s, q0:q1], S[4 + s, q0:q1], S[8 + s, q0:q1], S[12 + s, q0:q1]
            _cv_winograd_adjoint_rows(v0, v1, v2, v3, half, t[s], t[4 + s], t[8 + s])
        for a in range(3):
            v0, v1, v2, v3 = t[4 * a], t[4 * a + 1], t[4 * a + 2], t[4 * a + 3]
            _cv_winograd_adjoint_rows(v0, v1, v2, v3, half, o[3 * a], o[3 * a + 1], o[3 * a + 2])
        for k in range(9):
            src, dst = o[k], laid[k:]
            for c in range(cg):
                dst[numba.uint64(9 * c)] = src[numba.uint64(c)]
        row = target[f]
        for k in range(9 * cg):
            u = numba.uint64(k)
            row[u] += laid[u]


@_jit
def _cv_winograd_grad_images(cg, fg, tiles):
    # the images of `tiles` tiles each the weight gradient's products take side
    # by side: up to _CV_WINOGRAD_GRAD_TILES tiles, and for small products only
    # as many as keep their operands within _CV_WINOGRAD_GRAD_CACHED values (see
    # the top; winograd_grad_images is this, for the step runner)
    images = (_CV_WINOGRAD_GRAD_TILES + tiles - 1) // tiles
    if cg * fg <= _CV_WINOGRAD_GRAD_SMALL and _CV_WINOGRAD_GRAD_CACHED > 0:
        images = min(images, max(1, _CV_WINOGRAD_GRAD_CACHED // (16 * (cg + fg) * tiles)))
    return images


@_jit
def _cv_winograd_weight_grad(g, x, dw3, lo, hi, groups, pad):
    # dw3 += the weight gradient over images lo..hi of a 3x3 kernel at unit
    # stride, the adjoint of _cv_winograd_forward in w: per position e of the 4x4
    # blocks, the transformed g (F, tiles) times the transformed data (C, tiles)
    # transposed, summed over the tiles, then taken back to 3x3 (G^T . G); the
    # products as in the forward (see _cv_winograd_blocks)
    C, F = x.shape[1], g.shape[1]
    cg, fg = C // groups, F // groups
    oh, ow = g.shape[3], g.shape[4]
    TH, TW = (oh + 1) // 2, (ow + 1) // 2
    Hp, Wp = 2 * TH + 2, 2 * TW + 2
    tiles = TH * TW
    per, rows, planes = _cv_winograd_blocks(TH, TW, lo, hi, _cv_winograd_cached(cg, fg))
    if rows == TH:  # whole images: see _cv_winograd_grad_images
        per = max(1, min(hi - lo, _cv_winograd_grad_images(cg, fg, tiles)))
    # the padded data and g: in streams for the planes' transforms, else as they are
    xs = np.zeros((cg, 8 * (TH + 1) * TW) if planes else (0, 0), x.dtype)
    gs = np.zeros((fg, 4 * tiles) if planes else (0, 0), g.dtype)
    xp = np.zeros((0, 0) if planes else (cg, Hp * Wp), x.dtype)
    gp = np.zeros((0, 0) if planes else (fg, 4 * tiles), g.dtype)
    V = np.empty((16, _cv_winograd_stride(cg * per * tiles)), x.dtype)
    Gt = np.empty((16, _cv_winograd_stride(fg * per * tiles)), g.dtype)
    S = np.empty((groups, 16, _cv_winograd_stride(fg * cg)), dw3.dtype)
    # the first product writes S itself, the others add into it: a piece of the
    # batch is often one product, and S is 16 times the weights (zeroing it and
    # adding a copy cost 2 ms of a 7x7 512-channel layer's 15)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        for gi in range(groups):
            for ty0 in range(0, TH, rows):
                ty1 = min(TH, ty0 + rows)
                span = (ty1 - ty0) * TW
                T = m * span
                for b in range(m):
                    n = n0 + b
                    if planes:
                        if ty0 == 0:
                            size = (TH + 1) * TW
                            _cv_winograd_streams(x, n, gi * cg, pad, TW, 4, size, xs)
                            _cv_winograd_streams(g, n, gi * fg, (0, 0, 0), TW, 2, tiles, gs)
                        _cv_winograd_data_planes(xs, TH, TW, ty0, ty1, V, T, b * span)
                        _cv_winograd_output_grads_planes(gs, fg, TW, ty0, ty1, Gt, T, b * span)
                    else:
                        _cv_pad_into(x, n, gi * cg, pad, Hp, Wp, xp)
                        _cv_winograd_data_tiles(xp, Wp, TH, TW, V, T, b * span)
                        f0, W2 = gi * fg, 2 * TW
                        _cv_winograd_output_grads_tiles(g, n, f0, gp, W2, TH, TW, Gt, T, b * span)
                for e in range(16):
                    grads = Gt[e, : fg * T].reshape((fg, T))
                    data = V[e, : cg * T].reshape((cg, T))
                    target = S[gi, e, : fg * cg].reshape((fg, cg))
                    blas.matmul_nt_into(grads, data, target, not (n0 == lo and ty0 == 0))
    for gi in range(groups):
        _cv_winograd_kernel_grads(S[gi], fg, cg, dw3[gi])


@_jit
def _cv_wide_forward(x, w, bias, out, lo, hi, groups, kernel, dilate, pad, flip):
    # out[lo:hi] = conv(x[lo:hi], w) + bias for stride 1: by Winograd where it
    # fits (3x3 kernels), else by the wide columns. flip: the data gradient as
    # the forward of g (in x) with w turned and transposed (see _cv_flipped). False
    # (nothing written) where the geometry does not fit (see _cv_wide_plan)
    osz = (out.shape[2], out.shape[3], out.shape[4])
    xsz = (x.shape[2], x.shape[3], x.shape[4])
    Dp, Hp, Wp, L = _cv_wide_plan(xsz, pad, kernel, dilate, osz)
    if L == 0:
        return False
    cg, fg = x.shape[1] // groups, out.shape[1] // groups
    if not _cv_winograd_fits(cg, fg, x.shape[2], kernel, dilate) or (
        cg * fg <= _CV_SHIFTED_WINOGRAD and _cv_shifted(x, w, out, L)
    ):
        wf = _cv_flipped(w, groups) if flip else w
        _cv_wide_products(x, wf, bias, out, lo, hi, groups, kernel, dilate, pad)
        return True
    _cv_winograd_forward(x, w, out, lo, hi, groups, pad, flip)
    wf = w[:0]  # the flipped weights, made if an image needs them
    for n in range(lo, hi):
        # Winograd's sums and differences spread a NaN or infinity over its whole
        # 2x2 tile (x - x, inf - inf) where numpy's columns keep it to the windows
        # that read it: an image with a non-finite output (which finite data and
        # weights give only by overflow) is computed again by the wide columns,
        # whose pattern is numpy's (the check reads the output once)
        if _cv_all_finite(out[n].reshape(out[n].size)):
            _cv_add_bias(out, bias, n)
            continue
        if wf.shape[0] == 0:
            wf = _cv_flipped(w, groups) if flip else w
        _cv_wide_products(x, wf, bias, out, n, n + 1, groups, kernel, dilate, pad)
    return True


@_jit
def _cv_wide_products(x, w, bias, out, lo, hi, groups, kernel, dilate, pad):
    # out[lo:hi] = conv(x[lo:hi], w) + bias for stride 1 without im2col's
    # bounds: the image is padded once, each column row is one contiguous copy
    # of it, and one GEMM per group (and image, or batch of small images) writes
    # the wide output, whose output positions are copied out (the geometry fits)
    C, F = x.shape[1], w.shape[0]
    cg, fg = C // groups, F // groups
    kg = cg * kernel[0] * kernel[1] * kernel[2]
    osz = (out.shape[2], out.shape[3], out.shape[4])
    xsz = (x.shape[2], x.shape[3], x.shape[4])
    Dp, Hp, Wp, L = _cv_wide_plan(xsz, pad, kernel, dilate, osz)
    if _cv_shifted(x, w, out, L) and shifted.products(
        x, w, out, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L
    ):
        for n in range(lo, hi):
            _cv_add_bias(out, bias, n)
        return
    w3 = w.reshape((groups, fg, kg))
    # images side by side in one product, as in _cv_wide_weight_grad
    per = max(1, min(hi - lo, (_CV_WIDE_BATCH + L - 1) // L))
    xp = np.zeros((cg, Dp * Hp * Wp), x.dtype)
    cols = np.empty((kg, per * L), x.dtype)
    wide = np.empty((fg, per * L), x.dtype)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        if m < per:  # the last, shorter batch
            cols = np.empty((kg, m * L), x.dtype)
            wide = np.empty((fg, m * L), x.dtype)
        for gi in range(groups):
            for b in range(m):
                _cv_pad_into(x, n0 + b, gi * cg, pad, Hp, Wp, xp)
                _cv_wide_gather(xp, kernel, dilate, Hp, Wp, cols, b * L, L)
            blas.matmul_into(w3[gi], cols, False, False, wide)
            for b in range(m):
                _cv_wide_copy(wide, b * L, out, n0 + b, gi * fg, Hp, Wp, False)
        for b in range(m):
            _cv_add_bias(out, bias, n0 + b)


_CV_FLIP_BLOCK = 32


@_jit
def _cv_flipped(w, groups):
    # the weights of the data gradient as a convolution: wt[g*cg + c, f] =
    # w[g*fg + f, c] turned by 180 degrees (the transpose of a unit-stride
    # convolution is the convolution of g with these, padded d*(k-1) - pad)
    # In blocks of _CV_FLIP_BLOCK filters by as many channels, whose rows of
    # either side stay in cache: filter by filter, every write of a channel's
    # taps went to a line of its own. Each thread's piece of the batch flips them:
    # InceptionV3's 3x1 384 -> 384 weights 1.19 -> 0.36 ms, 3x3 448 -> 384 2.66 ->
    # 0.60, 7x1 192 -> 192 0.54 -> 0.13; its 8x8 3x1 data gradient (two threads,
    # alternating processes) 3.8/4.9 -> 3.3/3.1 ms
    F, cg, kd, kh, kw = w.shape[0], w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    fg = F // groups
    taps = kd * kh * kw
    wt = np.empty((groups * cg, fg, kd, kh, kw), w.dtype)
    source, target = w.reshape(w.size), wt.reshape(wt.size)
    for gi in range(groups):
        for f0 in range(0, fg, _CV_FLIP_BLOCK):
            f1 = min(fg, f0 + _CV_FLIP_BLOCK)
            for c0 in range(0, cg, _CV_FLIP_BLOCK):
                for c in range(c0, min(cg, c0 + _CV_FLIP_BLOCK)):
                    at = ((gi * cg + c) * fg + f0) * taps
                    for f in range(f0, f1):
                        # the taps of w[gi * fg + f, c] in reverse
                        last = ((gi * fg + f) * cg + c + 1) * taps - 1
                        for t in range(taps):
                            target[numba.uint64(at + t)] = source[numba.uint64(last - t)]
                        at += taps
    return wt


@_jit
def _cv_wide_data_grad(g, w, bias, dx, lo, hi, groups, kernel, dilate, pad):
    # dx[lo:hi] = conv^T_w(g[lo:hi]) + bias for stride 1 as the forward of g with
    # the flipped weights; False where the pad exceeds d * (k - 1)
    tpad = (
        (kernel[0] - 1) * dilate[0] - pad[0],
        (kernel[1] - 1) * dilate[1] - pad[1],
        (kernel[2] - 1) * dilate[2] - pad[2],
    )
    if tpad[0] < 0 or tpad[1] < 0 or tpad[2] < 0:
        return False
    return _cv_wide_forward(g, w, bias, dx, lo, hi, groups, kernel, dilate, tpad, True)


@_jit
def _cv_wide_weight_grad(g, x, dw3, lo, hi, groups, kernel, dilate, pad):
    # dw3 += sum over images lo..hi of the weight gradient, stride 1: g spread over
    # the wide positions (zero at the junk) times the wide columns of x transposed
    C, F = x.shape[1], g.shape[1]
    cg, fg = C // groups, F // groups
    kg = dw3.shape[2]
    osz = (g.shape[2], g.shape[3], g.shape[4])
    xsz = (x.shape[2], x.shape[3], x.shape[4])
    Dp, Hp, Wp, L = _cv_wide_plan(xsz, pad, kernel, dilate, osz)
    if L == 0:
        return False
    if _cv_shifted_weights(g, x, dw3, L, cg, fg, kernel, dilate) and shifted.weight_products(
        g, x, dw3, lo, hi, groups, kernel, dilate, pad, Hp, Wp, L
    ):
        return True
    # Images side by side in one product, _CV_WIDE_BATCH wide positions or more: one
    # image of a small layer (7x7: 63 positions) made a product with a short inner
    # axis and a (kg, fg) result as big as the weights, added up per image
    per = max(1, min(hi - lo, (_CV_WIDE_BATCH + L - 1) // L))
    xp = np.zeros((cg, Dp * Hp * Wp), x.dtype)
    cols = np.empty((kg, per * L), x.dtype)
    # g's rows laid out wide are contiguous copies, and the product g @ cols^T comes
    # out in the weights' layout. Laying g out transposed for cols @ g^T (a product
    # OpenBLAS runs 1.2-1.4x faster) wrote it with a stride of fg: VGG's first
    # layer (3 channels, 224x224, 64 filters) spent 190 of 206 ms there
    gw = np.zeros((fg, per * L), g.dtype)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        for gi in range(groups):
            for b in range(m):
                n = n0 + b
                _cv_pad_into(x, n, gi * cg, pad, Hp, Wp, xp)
                _cv_wide_gather(xp, kernel, dilate, Hp, Wp, cols, b * L, L)
                _cv_wide_copy(gw, b * L, g, n, gi * fg, Hp, Wp, True)
            if m == per:
                blas.matmul_add_into(gw, cols, False, True, dw3[gi])
            else:
                blas.matmul_add_into(gw[:, : m * L], cols[:, : m * L], False, True, dw3[gi])
    return True


# Strided convolutions (ResNet's 7x7/2 stem and 3x3/2, 1x1/2 downsampling layers):
# each channel is padded once into its stride phases (see _cv_phase_plan), where
# every kernel position reads one phase at a shift, so each column row is one
# contiguous copy over the wide positions of the phases, as at unit stride. im2col's
# rows read every s-th element within bounds per output row: ResNet-18's stem, B=8,
# one thread, took 23 ms forward that way


@_jit
def _cv_phase_fill(x, n, c0, pad, stride, Dq, Hq, Wq, xq):
    # xq[c] = the padded stride phases of x[n, c0 + c] (xq's border stays zero)
    for c in range(xq.shape[0]):
        _cv_phases(x, n, c0 + c, pad, stride, Dq, Hq, Wq, xq[c : c + 1], True)


@_jit
def _cv_phase_gather(xq, offsets, cols, start, L):
    # cols[(c, t), start + q] = xq[c, q + offsets[t]] for q < L: the columns on the
    # phases' wide positions (kernel positions t in the weights' order)
    T = offsets.shape[0]
    for c in range(xq.shape[0]):
        src = xq[c]
        for t in range(T):
            off = offsets[t]
            dst = cols[c * T + t]
            for q in range(L):
                dst[numba.uint64(start + q)] = src[numba.uint64(off + q)]


@_jit
def _cv_phase_scatter(cols, start, offsets, L, dq):
    # dq[c, q + offsets[t]] += cols[(c, t), start + q] for q < L: the adjoint of
    # _cv_phase_gather (within one row the targets differ, so the loop vectorises)
    T = offsets.shape[0]
    for c in range(dq.shape[0]):
        dst = dq[c]
        for t in range(T):
            off = offsets[t]
            src = cols[c * T + t]
            for q in range(L):
                dst[numba.uint64(off + q)] += src[numba.uint64(start + q)]


# big images' strided forward runs blocks of output rows of about this many wide
# positions (see _cv_strided_rows)
_CV_ROW_BLOCK = 1024
# at most this many weights per group, the strided weight gradient's product is
# taken the other way round (see _cv_strided_weight_grad)
_CV_FEW_WEIGHTS = 65536


@_jit
def _cv_phases_pay(kernel, stride, L):
    # Whether the phases beat im2col (measured on ResNet's, AlexNet's and Inception's
    # strided layers, B=8, one thread): for kernels more than twice the stride
    # (7x7/2, 11x11/4: im2col reads each pixel many times, the phases once), and for
    # small images, which the phases take several to a product (ResNet's 14x14
    # 3x3/2 layer made products 49 wide). Not for a 3x3/2 on large images (its
    # product is a few percent wider with the junk, and the gather it saves is
    # small) nor for a 1x1 (the phases copy the whole image to read one phase)
    if kernel[0] * kernel[1] * kernel[2] == 1:
        return False
    if 2 * L <= _CV_WIDE_BATCH:
        return True
    for a in range(3):
        if stride[a] > 1 and kernel[a] > 2 * stride[a]:
            return True
    return False


@_jit
def _cv_strided_setup(xsz, osz, kernel, stride, dilate, pad):
    # (Dq, Hq, Wq, L, offsets, phase length) of a strided convolution; L = 0 where
    # the geometry does not fit or the phases do not pay
    Dq, Hq, Wq, L = _cv_phase_plan(xsz, pad, stride, kernel, dilate, osz)
    if not _cv_phases_pay(kernel, stride, L):
        L = 0
    offsets = _cv_phase_offsets(kernel, stride, dilate, Dq, Hq, Wq, False)
    return Dq, Hq, Wq, L, offsets, stride[0] * stride[1] * stride[2] * Dq * Hq * Wq


@_jit
def _cv_strided_forward(x, w, bias, out, lo, hi, groups, kernel, stride, dilate, pad):
    # out[lo:hi] = conv(x[lo:hi], w) + bias on the phases' wide positions, small
    # images side by side in one product; False where the geometry does not fit.
    # The junk positions are columns of their own in the product, dropped whole
    cg, fg = x.shape[1] // groups, out.shape[1] // groups
    kg = cg * kernel[0] * kernel[1] * kernel[2]
    xsz = (x.shape[2], x.shape[3], x.shape[4])
    osz = (out.shape[2], out.shape[3], out.shape[4])
    Dq, Hq, Wq, L, offsets, Q = _cv_strided_setup(xsz, osz, kernel, stride, dilate, pad)
    if L == 0:
        return False
    w3 = w.reshape((groups, fg, kg))
    if osz[0] == 1 and L > 2 * _CV_ROW_BLOCK:
        # a stem: our tiles over the phases (shifted.phase_products, which read up
        # to a tile's width past the last phase), else OpenBLAS's product of each
        # block of rows' columns. Two threads, B=8: ResNet's 7x7/2 3 -> 64 9.3 ->
        # 7.6 ms, AlexNet's 11x11/4 3 -> 64 5.9 -> 4.7 (SqueezeNet's 3 -> 96 7x7/2
        # without padding 12.3 -> 12.2: writing its 37 MB output bounds both)
        xq = np.zeros((cg, Q + shifted.NR), x.dtype)
        for n in range(lo, hi):
            for gi in range(groups):
                _cv_phase_fill(x, n, gi * cg, pad, stride, Dq, Hq, Wq, xq)
                wg = w[gi * fg : (gi + 1) * fg]
                if not shifted.phase_products(xq, offsets, wg, out, n, gi * fg, Hq, Wq, L):
                    _cv_strided_rows(xq, offsets, w3[gi], out, n, gi * fg, Wq)
            _cv_add_bias(out, bias, n)
        return True
    per = max(1, min(hi - lo, (_CV_WIDE_BATCH + L - 1) // L))
    xq = np.zeros((cg, Q), x.dtype)
    cols = np.empty((kg, per * L), x.dtype)
    wide = np.empty((fg, per * L), x.dtype)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        if m < per:  # the last, shorter batch
            cols = np.empty((kg, m * L), x.dtype)
            wide = np.empty((fg, m * L), x.dtype)
        for gi in range(groups):
            for b in range(m):
                _cv_phase_fill(x, n0 + b, gi * cg, pad, stride, Dq, Hq, Wq, xq)
                _cv_phase_gather(xq, offsets, cols, b * L, L)
            blas.matmul_into(w3[gi], cols, False, False, wide)
            for b in range(m):
                _cv_wide_copy(wide, b * L, out, n0 + b, gi * fg, Hq, Wq, False)
        for b in range(m):
            _cv_add_bias(out, bias, n0 + b)
    return True


@_jit
def _cv_strided_rows(xq, offsets, w, out, n, f0, Wq):
    # out[n, f0:f0 + F, 0] = w @ the columns of the phases xq, a block of output rows at a
    # time (2-D images): the stem's whole columns (147 x 12877, 7.6 MB) and product
    # left the cache between the gather, the product and the copy out
    oh, ow = out.shape[3], out.shape[4]
    rows = max(1, _CV_ROW_BLOCK // Wq)
    cols = np.empty((w.shape[1], rows * Wq), xq.dtype)
    wide = np.empty((w.shape[0], rows * Wq), xq.dtype)
    for j0 in range(0, oh, rows):
        j1 = min(oh, j0 + rows)
        Lc = (j1 - j0 - 1) * Wq + ow
        if Lc < cols.shape[1]:  # the last, shorter block
            cols = np.empty((w.shape[1], Lc), xq.dtype)
            wide = np.empty((w.shape[0], Lc), xq.dtype)
        _cv_phase_gather(xq, offsets + j0 * Wq, cols, 0, Lc)
        blas.matmul_into(w, cols, False, False, wide)
        for f in range(w.shape[0]):
            src = wide[f]
            for j in range(j0, j1):
                dst = out[n, f0 + f, 0, j]
                s = (j - j0) * Wq
                for k in range(ow):
                    dst[numba.uint64(k)] = src[numba.uint64(s + k)]


@_jit
def _cv_strided_data_grad(g, w, bias, dx, lo, hi, groups, kernel, stride, dilate, pad):
    # dx[lo:hi] = conv^T_w(g[lo:hi]) + bias: w^T times g on the phases' wide
    # positions (zero at the junk, so finite weights give zero columns there),
    # added into zero phases at each kernel position's offset, whose data positions
    # are copied out (the padding's share dropped). False where it does not fit
    cg, fg = dx.shape[1] // groups, g.shape[1] // groups
    kg = cg * kernel[0] * kernel[1] * kernel[2]
    xsz = (dx.shape[2], dx.shape[3], dx.shape[4])
    osz = (g.shape[2], g.shape[3], g.shape[4])
    Dq, Hq, Wq, L, offsets, Q = _cv_strided_setup(xsz, osz, kernel, stride, dilate, pad)
    if L == 0:
        return False
    w3 = w.reshape((groups, fg, kg))
    per = max(1, min(hi - lo, (_CV_WIDE_BATCH + L - 1) // L))
    dq = np.empty((cg, Q), dx.dtype)
    gw = np.zeros((fg, per * L), g.dtype)
    cols = np.empty((kg, per * L), g.dtype)
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        if m < per:
            gw = np.zeros((fg, m * L), g.dtype)
            cols = np.empty((kg, m * L), g.dtype)
        for gi in range(groups):
            for b in range(m):
                _cv_wide_copy(gw, b * L, g, n0 + b, gi * fg, Hq, Wq, True)
            blas.matmul_into(w3[gi], gw, True, False, cols)
            for b in range(m):
                dq[:] = 0
                _cv_phase_scatter(cols, b * L, offsets, L, dq)
                for c in range(cg):
                    dqc = dq[c : c + 1]
                    _cv_phases(dx, n0 + b, gi * cg + c, pad, stride, Dq, Hq, Wq, dqc, False)
        for b in range(m):
            _cv_add_bias(dx, bias, n0 + b)
    return True


@_jit
def _cv_strided_weight_grad(g, x, dw3, lo, hi, groups, kernel, stride, dilate, pad):
    # dw3 += sum over images lo..hi of the weight gradient: g on the phases' wide
    # positions (zero at the junk) times the phase columns transposed, as in
    # _cv_wide_weight_grad. False where the geometry does not fit
    cg, fg = x.shape[1] // groups, g.shape[1] // groups
    kg = dw3.shape[2]
    xsz = (x.shape[2], x.shape[3], x.shape[4])
    osz = (g.shape[2], g.shape[3], g.shape[4])
    Dq, Hq, Wq, L, offsets, Q = _cv_strided_setup(xsz, osz, kernel, stride, dilate, pad)
    if L == 0:
        return False
    per = max(1, min(hi - lo, (_CV_WIDE_BATCH + L - 1) // L))
    xq = np.zeros((cg, Q), x.dtype)
    cols = np.empty((kg, per * L), x.dtype)
    gw = np.zeros((fg, per * L), g.dtype)
    # Few weights (the 7x7/2 stem's 64 x 147, AlexNet's 64 x 363) under a long
    # inner axis: cols @ g^T runs 1.15-1.4x faster in OpenBLAS than g @ cols^T, and
    # its small transposed result is cheap to add (not so for ResNet's 512 x 2304)
    flipped = fg * kg <= _CV_FEW_WEIGHTS
    part = np.empty((kg, fg) if flipped else (0, 0), dw3.dtype)  # the flipped product
    if osz[0] == 1 and L > 2 * _CV_ROW_BLOCK:
        for n in range(lo, hi):
            for gi in range(groups):
                _cv_phase_fill(x, n, gi * cg, pad, stride, Dq, Hq, Wq, xq)
                _cv_strided_rows_grad(g, n, gi * fg, xq, offsets, part, dw3[gi], flipped, Wq)
        return True
    for n0 in range(lo, hi, per):
        m = min(per, hi - n0)
        for gi in range(groups):
            for b in range(m):
                _cv_phase_fill(x, n0 + b, gi * cg, pad, stride, Dq, Hq, Wq, xq)
                _cv_phase_gather(xq, offsets, cols, b * L, L)
                _cv_wide_copy(gw, b * L, g, n0 + b, gi * fg, Hq, Wq, True)
            if m == per:  # whole: no copy of the operands for BLAS
                _cv_weight_product(gw, cols, part, dw3[gi], flipped)
            else:
                _cv_weight_product(gw[:, : m * L], cols[:, : m * L], part, dw3[gi], flipped)
    return True


@_jit
def _cv_strided_rows_grad(g, n, f0, xq, offsets, part, target, flipped, Wq):
    # target += the weight gradient of image n (2-D) from its phases xq, a block of
    # output rows at a time as in _cv_strided_rows: g's rows of the block laid out
    # wide (zero at the junk) times the block's columns transposed
    fg, kg = target.shape[0], target.shape[1]
    oh, ow = g.shape[3], g.shape[4]
    rows = max(1, _CV_ROW_BLOCK // Wq)
    cols = np.empty((kg, rows * Wq), xq.dtype)
    gw = np.zeros((fg, rows * Wq), g.dtype)
    for j0 in range(0, oh, rows):
        j1 = min(oh, j0 + rows)
        Lc = (j1 - j0 - 1) * Wq + ow
        if Lc < cols.shape[1]:  # the last, shorter block
            cols = np.empty((kg, Lc), xq.dtype)
            gw = np.zeros((fg, Lc), g.dtype)
        _cv_phase_gather(xq, offsets + j0 * Wq, cols, 0, Lc)
        for f in range(fg):
            dst = gw[f]
            for j in range(j0, j1):
                src = g[n, f0 + f, 0, j]
                s = (j - j0) * Wq
                for k in range(ow):
                    dst[numba.uint64(s + k)] = src[numba.uint64(k)]
        _cv_weight_product(gw, cols, part, target, flipped)


@_jit
def _cv_weight_product(gw, cols, part, target, flipped):
    # target += gw @ cols^T (flipped: by way of part = cols @ gw^T, added transposed)
    if flipped:
        blas.matmul_nt_into(cols, gw, part, False)
        for f in range(target.shape[0]):
            for k in range(target.shape[1]):
                target[f, k] += part[k, f]
        return
    blas.matmul_add_into(gw, cols, False, True, target)


# A pointwise (1x1) convolution of one group is a GEMM per image, w (F, C) @ x[n]
# (C, P). Small images make those products thin: the 7x7 layers of ResNet and
# MobileNet (P = 49) ran at 70% of the rate of wide ones, a classifier's 1x1 images
# (P = 1) as GEMVs that read all the weights once per image, and the weight
# gradient's per-image products g[n] @ x[n]^T (depth P) each added a weights-sized
# partial. So images of at most _CV_PACK_POSITIONS positions go side by side,
# (C, B * P), into one product of up to _CV_PACK_SPAN positions (twice that deep for
# the weight gradient). 14x14 images (P = 196) gained nothing: the copies cost what
# the wider products saved
_CV_PACK_SPAN = 1024
_CV_PACK_POSITIONS = 64


@_jit
def _cv_pack(a, n0, m, cols):
    # cols[c, b * P + p] = a[n0 + b, c, p] for b < m: images side by side
    P = a.shape[2]
    for c in range(a.shape[1]):
        row = cols[c]
        for b in range(m):
            src = a[n0 + b, c]
            s = b * P
            for p in range(P):
                row[numba.uint64(s + p)] = src[numba.uint64(p)]


@_jit
def _cv_unpack(cols, n0, m, a):
    # a[n0 + b, c, p] = cols[c, b * P + p] for b < m: the adjoint copy of _cv_pack
    P = a.shape[2]
    for c in range(a.shape[1]):
        row = cols[c]
        for b in range(m):
            dst = a[n0 + b, c]
            s = b * P
            for p in range(P):
                dst[numba.uint64(p)] = row[numba.uint64(s + p)]


@_jit
def _cv_packed_images(P, count):
    # images per packed product: as many as fit in _CV_PACK_SPAN, at least one
    return max(1, min(count, _CV_PACK_SPAN // P))


@_jit
def _cv_packed_product(a, w, out, lo, hi, transpose):
    # out[n] = w @ a[n] (transpose: w^T @ a[n]) for the images lo..hi, several
    # images a product (a and out: (N, channels, P); w: (F, C))
    P = a.shape[2]
    B = _cv_packed_images(P, hi - lo)
    for n0 in range(lo, hi, B):
        m = min(B, hi - n0)
        cols = np.empty((a.shape[1], m * P), a.dtype)
        product = np.empty((out.shape[1], m * P), out.dtype)
        _cv_pack(a, n0, m, cols)
        blas.matmul_into(w, cols, transpose, False, product)
        _cv_unpack(product, n0, m, out)


@_jit
def _cv_packed_weight_grad(g, x, dw2, lo, hi):
    # dw2 (F, C) += sum over the images lo..hi of g[n] @ x[n]^T, several images a
    # product of depth B * P (g: (N, F, P), x: (N, C, P))
    P = x.shape[2]
    B = max(1, min(hi - lo, 2 * _CV_PACK_SPAN // P))
    for n0 in range(lo, hi, B):
        m = min(B, hi - n0)
        gcols = np.empty((g.shape[1], m * P), g.dtype)
        xcols = np.empty((x.shape[1], m * P), x.dtype)
        _cv_pack(g, n0, m, gcols)
        _cv_pack(x, n0, m, xcols)
        blas.matmul_add_into(gcols, xcols, False, True, dw2)


# The weight gradient of a wider kernel over images as small is packed the same
# way, im2col's columns of several images side by side: one product of depth
# B * P where Winograd's per-point products were 16 of depth B * 16 tiles, each
# writing a weights-sized block. ResNet's 512-channel 7x7 layer, B=8 on two
# threads: 24-42 ms by Winograd (a 7x7 image is 16 tiles for 49 positions, and
# 512-float rows alias in the caches), 4.9 ms packed; 384 channels at 8x8 4.5 ->
# 3.4 ms. Their forward and data gradient packed so gained up to 20% on some
# shapes and lost on others (448 -> 384 at 8x8, data gradient 3.5 -> 4.7 ms):
# they keep their routes


@_jit
def _cv_packed_columns_weight_grad(g, x, dw2, lo, hi, kernel, stride, dilate, pad):
    # dw2 (F, kg) += sum over the images lo..hi of g[n] @ im2col(x[n])^T, several
    # images a product (one group; g: 5-D output gradient, x: 5-D data)
    osz = (g.shape[2], g.shape[3], g.shape[4])
    P = osz[0] * osz[1] * osz[2]
    F, kg = dw2.shape
    g3 = g.reshape((g.shape[0], F, P))
    B = max(1, min(hi - lo, 2 * _CV_PACK_SPAN // P))
    for n0 in range(lo, hi, B):
        m = min(B, hi - n0)
        gcols = np.empty((F, m * P), g.dtype)
        xcols = np.empty((kg, m * P), x.dtype)
        _cv_pack(g3, n0, m, gcols)
        for b in range(m):
            _cv_gather(x, n0 + b, 0, x.shape[1], kernel, stride, dilate, pad, osz, xcols, b * P)
        blas.matmul_add_into(gcols, xcols, False, True, dw2)


@_jit
def _cv_add_bias(out, bias, n):
    if bias.size:
        for f in range(out.shape[1]):
            o = out[n, f]
            for i in range(o.shape[0]):
                for j in range(o.shape[1]):
                    for k in range(o.shape[2]):
                        o[i, j, k] += bias[f]


@_jit
def _cv_along_rows(x, w, kernel, stride, pad):
    # whether a convolution goes with its images' last two axes exchanged: a
    # dense kernel of one row (1 x k, k > 1) at unit stride, padded along the row
    # only, over images of several rows (a 1-D one is a single row: no junk but
    # its end). On the wide positions each of its rows carries the row's padding as
    # junk columns (6 of 23 for Inception's 1x7 layers at 17x17); turned, the
    # kernel is a column (k x 1), padded across the rows, and a row of wide
    # positions is a row of the image. Zen 4, two threads, B=8, medians of four
    # alternating in one process (the turns' copies included): InceptionV3's
    # 1x7 192 -> 192 17x17 forward 17.1 -> 13.1 ms, 160 -> 160 7.8 -> 5.6,
    # 160 -> 192 8.2 -> 6.5, 128 -> 128 4.7 -> 3.9; weight gradients 18.4 ->
    # 12.3, 11.3 -> 5.4, 9.5 -> 6.3, 5.8 -> 3.7 (shifted.py's products, which
    # take the turned geometry's: SHIFTED_WEIGHTS_POSITIONS). The data gradient
    # of these layers keeps its route: col2im (_cv_columns_first) has no junk
    return (
        w.shape[1] > 1
        and x.shape[3] > 1
        and kernel[0] == 1
        and kernel[1] == 1
        and kernel[2] > 1
        and pad[0] == 0
        and pad[1] == 0
        and stride[0] == 1
        and stride[1] == 1
        and stride[2] == 1
    )


@_jit
def _cv_turned(a, lo, hi):
    # a[lo:hi] (5-D) with its last two axes exchanged, C-contiguous
    return np.ascontiguousarray(a[lo:hi].transpose((0, 1, 2, 4, 3)))


@_jit
def _cv_turn(triple):
    # a geometry's triple for the turned images: its last two exchanged
    return (triple[0], triple[2], triple[1])


@_jit
def _cv_rows_forward(x, w, bias, out, lo, hi, kernel, pad, flip):
    # out[lo:hi] = conv(x[lo:hi], w) + bias for a 7x1 kernel by winograd_rows.py's
    # F(2, 7); flip: the data gradient (x holding g, pad the forward's). As for the
    # 3x3 Winograd (_cv_wide_forward), an image whose output is not finite is
    # computed again by the wide columns, whose NaN pattern is numpy's
    winograd_rows.forward(x, w, out, lo, hi, pad[1], flip)
    wf = w[:0]
    for n in range(lo, hi):
        if not _cv_all_finite(out[n].reshape(out[n].size)):
            if wf.shape[0] == 0:
                wf = _cv_flipped(w, 1) if flip else w
            tpad = (0, kernel[1] - 1 - pad[1], 0) if flip else pad
            _cv_wide_products(x, wf, bias[:0], out, n, n + 1, 1, kernel, (1, 1, 1), tpad)
        _cv_add_bias(out, bias, n)


@_jit
def lib_conv_forward(x, w, bias, out, lo, hi, groups, kernel, stride, dilate, pad):
    # out[lo:hi] = conv(x[lo:hi], w) + bias; every array 5-D (N, C, D, H, W)
    if hi > lo and _cv_along_rows(x, w, kernel, stride, pad):
        turned = np.empty(
            (hi - lo, out.shape[1], out.shape[2], out.shape[4], out.shape[3]), out.dtype
        )
        _cv_forward(
            _cv_turned(x, lo, hi), _cv_turned(w, 0, w.shape[0]), bias, turned, 0, hi - lo,
            groups, _cv_turn(kernel), stride, _cv_turn(dilate), _cv_turn(pad),
        )
        out[lo:hi] = turned.transpose((0, 1, 2, 4, 3))
        return
    _cv_forward(x, w, bias, out, lo, hi, groups, kernel, stride, dilate, pad)


@_jit
def _cv_forward(x, w, bias, out, lo, hi, groups, kernel, stride, dilate, pad):
    # lib_conv_forward in the images' own layout
    x = np.ascontiguousarray(x)
    w = np.ascontiguousarray(w)
    N, C = x.shape[0], x.shape[1]
    F = w.shape[0]
    cg, fg = C // groups, F // groups
    osz = (out.shape[2], out.shape[3], out.shape[4])
    P = osz[0] * osz[1] * osz[2]
    kg = cg * kernel[0] * kernel[1] * kernel[2]
    flat = out.reshape((N, F * P))
    unit = stride[0] == 1 and stride[1] == 1 and stride[2] == 1
    if cg == 1 and kg > 1:
        if depthwise.forward(x, w, out, lo, hi, stride, dilate, pad) or _cv_depthwise_wide(
            x, w, out, lo, hi, kernel, stride, dilate, pad, False
        ):
            for n in range(lo, hi):
                _cv_add_bias(out, bias, n)
            return
        for n in range(lo, hi):
            flat[n, :] = 0
            _cv_direct(x, w, out, n, kernel, stride, dilate, pad, 0)
            _cv_add_bias(out, bias, n)
        return
    if winograd_rows.takes(C, F, x.shape[2], kernel, stride, dilate, pad, groups):
        _cv_rows_forward(x, w, bias, out, lo, hi, kernel, pad, False)
        return
    pointwise = _cv_pointwise(kernel, stride, pad)
    if not pointwise and unit:
        if _cv_wide_forward(x, w, bias, out, lo, hi, groups, kernel, dilate, pad, False):
            return
    if not unit:
        if _cv_strided_forward(x, w, bias, out, lo, hi, groups, kernel, stride, dilate, pad):
            return
    if pointwise and groups == 1 and P <= _CV_PACK_POSITIONS and hi - lo > 1:
        x3, out3 = x.reshape((N, C, P)), out.reshape((N, F, P))
        _cv_packed_product(x3, w.reshape((F, C)), out3, lo, hi, False)
        for n in range(lo, hi):
            _cv_add_bias(out, bias, n)
        return
    w3 = w.reshape((groups, fg, kg))
    out4 = out.reshape((N, groups, fg, P))
    x4 = x.reshape((N, groups, cg, x.shape[2] * x.shape[3] * x.shape[4]))
    cols = np.empty((0 if pointwise else kg, P), x.dtype)
    for n in range(lo, hi):
        for gi in range(groups):
            if pointwise:
                blas.matmul_into(w3[gi], x4[n, gi], False, False, out4[n, gi])
            else:
                _cv_gather(x, n, gi * cg, cg, kernel, stride, dilate, pad, osz, cols, 0)
                blas.matmul_into(w3[gi], cols, False, False, out4[n, gi])
        _cv_add_bias(out, bias, n)


@_jit
def _cv_columns_first(cg, fg, kernel):
    # whether a unit-stride data gradient goes by the columns w^T g added back
    # into the image (col2im) rather than as the forward of g with the flipped
    # weights: at least as many filters as channels, whose flipped forward
    # gathers fg * taps rows of wide columns against col2im's cg * taps, and a
    # kernel of 7 taps or more other than 3x3 (which keeps Winograd, or where it
    # has too few channels, the flipped forward: 64 -> 96 2.5 against 2.9 ms).
    # Two threads, B=8: AlexNet's 5x5 64 -> 192 layer 17.6 -> 7.9 ms, InceptionV3's
    # 1x7 128 -> 192 3.1 -> 2.5 and 192 -> 192 4.1 -> 3.1, its 5x5 48 -> 64 4.5 ->
    # 4.3; fewer filters kept the flipped forward (5x5 192 -> 64: 11.3 against 13.9)
    taps = kernel[0] * kernel[1] * kernel[2]
    return fg >= cg and taps >= 7 and not (kernel[1] == 3 and kernel[2] == 3)


@_jit
def lib_conv_data_grad(g, w, bias, dx, lo, hi, groups, kernel, stride, dilate, pad):
    # dx[lo:hi] = conv^T_w(g[lo:hi]) + bias (the bias for Deconvolution's forward).
    # A 1x7 kernel goes turned where its 7x1 turn is winograd_rows.py's
    if (
        hi > lo
        and _cv_along_rows(dx, w, kernel, stride, pad)
        and winograd_rows.takes(
            dx.shape[1], w.shape[0], dx.shape[2], _cv_turn(kernel), stride,
            _cv_turn(dilate), _cv_turn(pad), groups,
        )
    ):
        turned = np.empty(
            (hi - lo, dx.shape[1], dx.shape[2], dx.shape[4], dx.shape[3]), dx.dtype
        )
        _cv_data_grad(
            _cv_turned(g, lo, hi), _cv_turned(w, 0, w.shape[0]), bias, turned, 0, hi - lo,
            groups, _cv_turn(kernel), stride, _cv_turn(dilate), _cv_turn(pad),
        )
        dx[lo:hi] = turned.transpose((0, 1, 2, 4, 3))
        return
    _cv_data_grad(g, w, bias, dx, lo, hi, groups, kernel, stride, dilate, pad)


@_jit
def _cv_data_grad(g, w, bias, dx, lo, hi, groups, kernel, stride, dilate, pad):
    # lib_conv_data_grad in the images' own layout
    g = np.ascontiguousarray(g)
    w = np.ascontiguousarray(w)
    N, C = dx.shape[0], dx.shape[1]
    F = w.shape[0]
    cg, fg = C // groups, F // groups
    osz = (g.shape[2], g.shape[3], g.shape[4])
    P = osz[0] * osz[1] * osz[2]
    kg = cg * kernel[0] * kernel[1] * kernel[2]
    flat = dx.reshape((N, C * dx.shape[2] * dx.shape[3] * dx.shape[4]))
    # The wide data gradients multiply every weight by g's zero border (or zero
    # junk), which the adjoint never does: a NaN or infinite weight would make NaN
    # there, so such weights take the exact paths (the test reads the weights once)
    unit = stride[0] == 1 and stride[1] == 1 and stride[2] == 1
    finite = _cv_all_finite(w.reshape(w.size))
    if finite and winograd_rows.takes(C, F, dx.shape[2], kernel, stride, dilate, pad, groups):
        _cv_rows_forward(g, w, bias, dx, lo, hi, kernel, pad, True)
        return
    if cg == 1 and kg > 1:
        tpad = (
            (kernel[0] - 1) * dilate[0] - pad[0],
            (kernel[1] - 1) * dilate[1] - pad[1],
            (kernel[2] - 1) * dilate[2] - pad[2],
        )
        fits = unit and tpad[0] >= 0 and tpad[1] >= 0 and tpad[2] >= 0
        # unit stride: the forward of the turned taps; else g scattered on phases
        if finite and (
            depthwise.data_grad(g, w, dx, lo, hi, stride, dilate, pad)
            or (fits and _cv_depthwise_wide(dx, w, g, lo, hi, kernel, stride, dilate, tpad, True))
            or _cv_depthwise_scatter(g, w, dx, lo, hi, kernel, stride, dilate, pad)
        ):
            for n in range(lo, hi):
                _cv_add_bias(dx, bias, n)
            return
        for n in range(lo, hi):
            flat[n, :] = 0
            _cv_direct(dx, w, g, n, kernel, stride, dilate, pad, 1)
            _cv_add_bias(dx, bias, n)
        return
    pointwise = _cv_pointwise(kernel, stride, pad)
    if not pointwise and unit and finite and not _cv_columns_first(cg, fg, kernel):
        if _cv_wide_data_grad(g, w, bias, dx, lo, hi, groups, kernel, dilate, pad):
            return
    if not unit and finite:
        if _cv_strided_data_grad(g, w, bias, dx, lo, hi, groups, kernel, stride, dilate, pad):
            return
    if pointwise and groups == 1 and P <= _CV_PACK_POSITIONS and hi - lo > 1:
        g3, dx3 = g.reshape((N, F, P)), dx.reshape((N, C, P))
        _cv_packed_product(g3, w.reshape((F, C)), dx3, lo, hi, True)
        for n in range(lo, hi):
            _cv_add_bias(dx, bias, n)
        return
    w3 = w.reshape((groups, fg, kg))
    g4 = g.reshape((N, groups, fg, P))
    dx4 = dx.reshape((N, groups, cg, dx.shape[2] * dx.shape[3] * dx.shape[4]))
    cols = np.empty((0 if pointwise else kg, P), g.dtype)
    for n in range(lo, hi):
        if not pointwise:
            flat[n, :] = 0
        for gi in range(groups):
            if pointwise:
                blas.matmul_into(w3[gi], g4[n, gi], True, False, dx4[n, gi])
            else:
                blas.matmul_into(w3[gi], g4[n, gi], True, False, cols)
                _cv_scatter(cols, dx, n, gi * cg, cg, kernel, stride, dilate, pad, osz)
        _cv_add_bias(dx, bias, n)


@_jit
def lib_conv_weight_grad(g, x, dw, lo, hi, groups, kernel, stride, dilate, pad):
    # dw = sum over images lo..hi of conv^T_x(g): the weight gradient. A kernel
    # of one row goes turned (see _cv_along_rows), but not over images small
    # enough to go packed, whose im2col columns carry no junk (InceptionV3's 1x3
    # 384 -> 384 8x8, two threads: 3.0 ms as it is against 3.5-3.9 turned)
    positions = g.shape[2] * g.shape[3] * g.shape[4]
    turn = positions > _CV_PACK_POSITIONS and _cv_along_rows(x, dw, kernel, stride, pad)
    if hi > lo and turn:
        turned = np.empty(
            (dw.shape[0], dw.shape[1], dw.shape[2], dw.shape[4], dw.shape[3]), dw.dtype
        )
        _cv_weight_grad(
            _cv_turned(g, lo, hi), _cv_turned(x, lo, hi), turned, 0, hi - lo, groups,
            _cv_turn(kernel), stride, _cv_turn(dilate), _cv_turn(pad),
        )
        dw[...] = turned.transpose((0, 1, 2, 4, 3))
        return
    _cv_weight_grad(g, x, dw, lo, hi, groups, kernel, stride, dilate, pad)


@_jit
def _cv_weight_grad(g, x, dw, lo, hi, groups, kernel, stride, dilate, pad):
    # lib_conv_weight_grad in the images' own layout
    g = np.ascontiguousarray(g)
    x = np.ascontiguousarray(x)
    N, C = x.shape[0], x.shape[1]
    F = dw.shape[0]
    cg, fg = C // groups, F // groups
    osz = (g.shape[2], g.shape[3], g.shape[4])
    P = osz[0] * osz[1] * osz[2]
    kg = cg * kernel[0] * kernel[1] * kernel[2]
    dw3 = dw.reshape((groups, fg, kg))
    dw3[:] = 0
    unit = stride[0] == 1 and stride[1] == 1 and stride[2] == 1
    if cg == 1 and kg > 1:
        # the junk positions again (see below): a non-finite result is redone
        if depthwise.weight_grad(g, x, dw, lo, hi, stride, dilate, pad) or (
            _cv_depthwise_wide_weight_grad(g, x, dw, lo, hi, kernel, stride, dilate, pad)
        ):
            if _cv_all_finite(dw3.reshape(dw3.size)):
                return
            dw3[:] = 0
        for n in range(lo, hi):
            _cv_direct(x, dw, g, n, kernel, stride, dilate, pad, 2)
        return
    if winograd_rows.takes(C, F, x.shape[2], kernel, stride, dilate, pad, groups):
        # F(2, 7)'s sums over tiles as Winograd's below: a non-finite result
        # is computed again by the exact routes that follow
        winograd_rows.weight_grad(g, x, dw, lo, hi, pad[1])
        if _cv_all_finite(dw3.reshape(dw3.size)):
            return
        dw3[:] = 0
    pointwise = _cv_pointwise(kernel, stride, pad)
    if not pointwise and groups == 1 and P <= _CV_PACK_POSITIONS:
        _cv_packed_columns_weight_grad(g, x, dw3[0], lo, hi, kernel, stride, dilate, pad)
        return
    winograd = _cv_winograd_fits(cg, fg, x.shape[2], kernel, dilate)
    L = _cv_wide_plan((x.shape[2], x.shape[3], x.shape[4]), pad, kernel, dilate, osz)[3]
    if winograd and unit and _cv_shifted_weights(g, x, dw3, L, cg, fg, kernel, dilate):
        winograd = False  # shifted.py's, by the wide route below
    if not pointwise and unit and winograd and fg < _CV_WINOGRAD_GRAD_FILTERS * cg:
        if L > 0:
            _cv_winograd_weight_grad(g, x, dw3, lo, hi, groups, pad)
            # a non-finite result is computed again the exact way, as below
            if _cv_all_finite(dw3.reshape(dw3.size)):
                return
            dw3[:] = 0
    elif not unit:
        # the junk positions as below
        if _cv_strided_weight_grad(g, x, dw3, lo, hi, groups, kernel, stride, dilate, pad):
            if _cv_all_finite(dw3.reshape(dw3.size)):
                return
            dw3[:] = 0
    elif not pointwise and unit:
        if _cv_wide_weight_grad(g, x, dw3, lo, hi, groups, kernel, dilate, pad):
            # The junk positions multiply data read past a row's end by g's zeros:
            # a NaN or infinity in the data makes NaN there, where the exact sum has
            # none. Such a result (non-finite, which finite data never gives but by
            # overflow) is computed again the exact way: the check reads the
            # gradient once (the size of the weights), where testing the data
            # would read it all, and the fast path stays as it was for finite data
            if _cv_all_finite(dw3.reshape(dw3.size)):
                return
            dw3[:] = 0
    if pointwise and groups == 1 and P <= _CV_PACK_POSITIONS and hi - lo > 1:
        _cv_packed_weight_grad(g.reshape((N, F, P)), x.reshape((N, C, P)), dw3[0], lo, hi)
        return
    g4 = g.reshape((N, groups, fg, P))
    x4 = x.reshape((N, groups, cg, x.shape[2] * x.shape[3] * x.shape[4]))
    cols = np.empty((0 if pointwise else kg, P), x.dtype)
    for n in range(lo, hi):
        for gi in range(groups):
            if pointwise:
                blas.matmul_add_into(g4[n, gi], x4[n, gi], False, True, dw3[gi])
            else:
                _cv_gather(x, n, gi * cg, cg, kernel, stride, dilate, pad, osz, cols, 0)
                blas.matmul_add_into(g4[n, gi], cols, False, True, dw3[gi])
"""
_SOURCE = _CONSTANTS + _KERNELS


def blas_alone() -> contextlib.AbstractContextManager[None]:
    """numpy's OpenBLAS on one thread while convolutions run.

    A convolution makes one small GEMM per image and group, and splits the images
    over the backend's threads itself. OpenBLAS would also hand each GEMM to its
    own threads: on the 2-core benchmark machine under load, 32 GEMMs of
    (32, 288) x (288, 1024) took 734 ms that way and 10 ms on our two threads with
    OpenBLAS on one (``blas_threads.BlasThreads.alone``)."""
    return blas_threads().alone()


# Below this many multiply-adds a convolution stays on one thread: a hand-off to
# the pool costs 50-200 us while a worker wakes. The CNN step's (32, 8, 26, 26)
# convolution (1.6M) split over two threads made the step slower than on one.
PARALLEL_WORK = 1 << 23

# A depthwise convolution (one channel a group) is split from this much work on:
# per multiply-add counted it moves a dense one's data, so the hand-off pays from
# far less work. Its weight gradient goes in one piece of the batch per thread.
# By the wide kernels, MobileNet's 512-channel 14x14 layer (7.2M), B=8, weight
# gradient 1.17 -> 0.79 ms, its 1024-channel 7x7 one 1.07 -> 0.75, 256 channels
# at 7x7 (0.9M) 0.28 -> 0.23; by depthwise.py's vector kernels, two threads
# against one: forward/data gradient 512 at 14x14 0.18/0.16 -> 0.12/0.10 ms,
# 1024 at 7x7 0.26/0.16 -> 0.15/0.10, 256 at 28 -> 14 (stride 2) 0.16/0.14 ->
# 0.10/0.09
DEPTHWISE_PARALLEL_WORK = 1 << 20

Triple = tuple[int, int, int]


def _three(values: tuple[int, ...], fill: int) -> Triple:
    """``values`` for the last spatial axes of a 3-D geometry, ``fill`` before them."""
    full = (fill,) * (3 - len(values)) + tuple(values)
    return (int(full[0]), int(full[1]), int(full[2]))


def _as5(a: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) viewed as (N, C, D, H, W), C-contiguous."""
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[:2] + (1,) * (5 - a.ndim) + a.shape[2:])


def geometry3(
    rank: int, kernel: tuple, stride: tuple, dilate: tuple, pad: tuple
) -> tuple[Triple, Triple, Triple, Triple]:
    """Kernel, stride, dilation and padding of a ``rank``-D convolution as 3-D
    triples (the added axes: kernel, stride and dilation 1, padding 0)."""
    kernel, stride, dilate, pad = spatial_geometry(kernel, stride, dilate, pad, rank)
    return _three(kernel, 1), _three(stride, 1), _three(dilate, 1), _three(pad, 0)


def out_sizes(sizes: tuple[int, ...], geometry: tuple[Triple, ...]) -> list[int]:
    """Output sizes of a convolution of the spatial ``sizes`` with 3-D ``geometry``."""
    last = 3 - len(sizes)  # the triples hold the real axes last
    return [
        conv_out_size(size, k[last + a], s[last + a], d[last + a], p[last + a])
        for a, size in enumerate(sizes)
        for k, s, d, p in [geometry]
    ]


def _work(out_elements: int, taps: int) -> int:
    return out_elements * taps


# Images of at most this many positions (the side of a product that grows with the
# images: ResNet's 7x7 and 14x14 layers) are multiplied several at a time (the
# kernels' _CV_WIDE_BATCH), so their batch is cut into one piece per thread.
SMALL_IMAGE = 256


def winograd_tiles(channels: int, filters: int, sizes: list[int], geometry) -> int:
    """The 2x2 tiles of one image's output (``sizes``) when the kernels take the
    convolution by Winograd (as their ``_cv_winograd_fits`` decides: a 2-D 3x3
    kernel at unit stride, no dilation, ``WINOGRAD_CHANNELS`` or more channels and
    filters per group), else 0."""
    kernel, stride, dilate, _pad = geometry
    fits = (
        tuple(kernel) == (1, 3, 3)
        and tuple(stride) == (1, 1, 1)
        and tuple(dilate[1:]) == (1, 1)
        and math.prod(sizes[:-2]) == 1
        and min(channels, filters) >= WINOGRAD_CHANNELS
    )
    return (-(-sizes[-2] // 2)) * (-(-sizes[-1] // 2)) if fits else 0


def product_images(positions: int, tiles: int) -> int:
    """How many images the kernels multiply side by side in one product of a
    forward or a data gradient: up to ``WINOGRAD_TILES`` tiles by Winograd
    (``tiles`` an image's, 0 where it does not apply), else up to ``SMALL_IMAGE``
    positions (``positions`` an image's). The weight gradient's Winograd products:
    :func:`winograd_grad_images`."""
    if tiles:
        return -(-WINOGRAD_TILES // tiles)
    return -(-SMALL_IMAGE // positions) if positions <= SMALL_IMAGE else 1


def _pieces(batch: int, work: int, images: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` pieces of the batch for the threads, ``images`` the images one
    product takes (:func:`product_images`). Several: pieces of that many images, but
    at least one piece per thread; the threads share them out, so a late worker
    leaves more to the others. The guided pieces of :func:`threads.split` (down to
    one image) made products one or two images wide and the weight gradient one
    partial sum of the weights per piece: ResNet's 512-channel 7x7 layer, B=8, on
    two threads took 56 ms for its weight gradient against 23 ms on one, and W7's
    64-channel 16x16 layers (Winograd: four images a product) scaled 1.3x on two."""
    if images <= 1:
        return threads.split(batch, max(work, threads.MINIMUM))
    count = min(batch, threads.count())
    size = max(1, min(images, batch // count))
    return [(lo, min(batch, lo + size)) for lo in range(0, batch, size)]


def _launch(compiled: Any, batch: int, work: int, images: int, call: Any, least: int) -> None:
    """Run ``compiled(*call(lo, hi))`` over the images, split over threads from
    ``least`` work on (``images``: one product's, see :func:`_pieces`)."""
    # (a program with a convolution holds OpenBLAS at one thread for its whole
    # call, Plan.blas_alone, so these holds matter where that is not held: the
    # kernels' warm-up; one image there keeps OpenBLAS's threads)
    if batch < 2:  # one image: BLAS's own threads are the only parallelism
        compiled(*call(0, batch))
        return
    with blas_alone():
        if work < least or threads.count() < 2:
            compiled(*call(0, batch))
        else:
            pieces = _pieces(batch, work, images)
            threads.run(compiled, [call(lo, hi) for lo, hi in pieces])


def _images(channels, filters, groups, sizes, positions, geometry) -> int:
    """:func:`product_images` of a convolution of ``channels`` (data) and ``filters``
    (weights' first axis) in ``groups``, its output of spatial ``sizes``."""
    tiles = winograd_tiles(channels // groups, filters // groups, sizes, geometry)
    return product_images(positions, tiles)


def winograd_grad_images(cg: int, fg: int, tiles: int) -> int:
    """The images (of ``tiles`` Winograd tiles each) the weight gradient's products
    take side by side, ``cg`` channels and ``fg`` filters a group: up to
    ``WINOGRAD_GRAD_TILES`` tiles, and for products of at most
    ``WINOGRAD_GRAD_SMALL`` sums as many as keep their two transformed operands
    within ``WINOGRAD_GRAD_CACHED`` values (the kernels' _cv_winograd_grad_images)."""
    images = -(-WINOGRAD_GRAD_TILES // tiles)
    if cg * fg <= WINOGRAD_GRAD_SMALL and WINOGRAD_GRAD_CACHED > 0:
        images = min(images, max(1, WINOGRAD_GRAD_CACHED // (16 * (cg + fg) * tiles)))
    return images


def _floats(*arrays: np.ndarray | None) -> bool:
    """One float dtype for every array given."""
    present = [a for a in arrays if a is not None]
    return present[0].dtype in FLOATS and all(a.dtype == present[0].dtype for a in present)


def _bias(b: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    return np.empty(0, dtype) if b is None else np.ascontiguousarray(b)


def _forward(compiled, x, w, b, out_sizes, groups, geometry) -> np.ndarray:
    """Convolution of ``x`` with ``w`` (conv layout) plus ``b`` into a new array."""
    out = np.empty((x.shape[0], w.shape[0]) + tuple(out_sizes), x.dtype)
    x5, w5, out5, bias = _as5(x), _as5(w), _as5(out), _bias(b, x.dtype)
    taps = w[0].size
    work = _work(out.size, taps)
    least = parallel_work(x.shape[1], w.shape[0], groups, taps, False)
    tiles = winograd_tiles(x.shape[1] // groups, w.shape[0] // groups, list(out_sizes), geometry)
    if groups == 1 and work >= least and _by_filters(x.shape[0], w.shape[0], tiles):
        _forward_by_filters(compiled, x5, w5, bias, out5, geometry)
        return out
    _launch(
        compiled,
        x.shape[0],
        work,
        _images(x.shape[1], w.shape[0], groups, out_sizes, math.prod(out_sizes), geometry),
        lambda lo, hi: (x5, w5, bias, out5, lo, hi, groups, *geometry),
        least,
    )
    return out


def _by_filters(batch: int, filters: int, tiles: int) -> bool:
    """Whether a Winograd forward (``tiles`` an image's, 0 where Winograd does not
    take it) is split over the threads by its filters rather than its images.
    Each thread transforms the weights it multiplies, 16 values a (filter,
    channel) pair, and the data of its images, 16 a (channel, tile): cut by
    images, every thread transforms all the weights, which for more filters
    than the batch has tiles cost more than each transforming all the data.
    Two threads: ResNet's 512-channel 7x7 layer (B=8: 128 tiles) 7.78 -> 6.90
    ms, InceptionV3's 448 -> 384 8x8 4.77 -> 4.37; ResNet's 256-channel 14x14
    layer (392 tiles) 4.60 by images, 5.51 by filters."""
    return tiles > 0 and batch > 1 and threads.count() > 1 and filters > tiles * batch


def _forward_by_filters(compiled, x5, w5, bias, out5, geometry) -> None:
    """``out5 = conv(x5, w5) + bias`` (one group) with the filters shared out over
    the threads, each computing the whole batch for its filters into an array of
    its own (the kernels write C-contiguous outputs), copied into ``out5`` after."""
    filters, count = w5.shape[0], threads.count()
    edges = [k * filters // count for k in range(count + 1)]
    pieces = list(zip(edges, edges[1:]))
    parts = [np.empty((out5.shape[0], hi - lo) + out5.shape[2:], out5.dtype) for lo, hi in pieces]
    calls = [
        (x5, w5[lo:hi], bias[lo:hi] if bias.size else bias, part, 0, x5.shape[0], 1, *geometry)
        for (lo, hi), part in zip(pieces, parts)
    ]
    with blas_alone():
        threads.run(compiled, calls)
    for (lo, hi), part in zip(pieces, parts):
        out5[:, lo:hi] = part


def _transposed(compiled, g, w, b, out_shape, groups, geometry) -> np.ndarray:
    """The data gradient conv^T_w(g) (plus ``b``), of ``out_shape``."""
    out = np.empty(tuple(out_shape), g.dtype)
    g5, w5, out5, bias = _as5(g), _as5(w), _as5(out), _bias(b, g.dtype)
    taps = w[0].size
    # the product grows with g's positions (a strided gradient's are fewer); by
    # Winograd, with the tiles of the result
    positions = math.prod(g.shape[2:])
    _launch(
        compiled,
        g.shape[0],
        _work(g.size, taps),
        _images(out_shape[1], w.shape[0], groups, list(out_shape[2:]), positions, geometry),
        lambda lo, hi: (g5, w5, bias, out5, lo, hi, groups, *geometry),
        parallel_work(out_shape[1], w.shape[0], groups, taps, False),
    )
    return out


def _depthwise(channels: int, groups: int, taps: int) -> bool:
    """Whether a convolution of ``channels`` (its data's) in ``groups``, ``taps``
    weights a filter, takes the kernels' depthwise loops (one channel a group,
    a kernel wider than 1x1)."""
    return channels == groups and taps > 1


def parallel_work(channels: int, filters: int, groups: int, taps: int, weights: bool) -> int:
    """The work from which such a convolution is split over threads: lower
    (``DEPTHWISE_PARALLEL_WORK``) for a depthwise one's weight gradient, and for
    its forward and data gradient (not ``weights``) with one filter a channel
    (depthwise.py's kernels; on the wide loops, a single-channel convolution of
    several filters, as the CNN step's first layer, lost split)."""
    lower = _depthwise(channels, groups, taps) and (weights or filters == channels)
    return DEPTHWISE_PARALLEL_WORK if lower else PARALLEL_WORK


def _weights(compiled, g, x, w_shape, groups, geometry) -> np.ndarray:
    """The weight gradient conv^T_x(g), of ``w_shape``: partial sums per piece of
    the batch, added up."""
    g5, x5 = _as5(g), _as5(x)
    batch, taps = x.shape[0], int(np.prod(w_shape[1:]))
    work = _work(g.size, taps)
    least = parallel_work(x.shape[1], w_shape[0], groups, taps, True)
    if batch < 2 or work < least or threads.count() < 2:
        out = np.empty(tuple(w_shape), g.dtype)
        # one call over the whole batch, BLAS on one thread as _launch keeps it
        with blas_alone() if batch > 1 else contextlib.nullcontext():
            compiled(g5, x5, _as5(out), 0, batch, groups, *geometry)
        return out
    if _depthwise(x.shape[1], groups, taps):  # as many pieces as threads, no more
        count = min(batch, threads.count())
        pieces = [(k * batch // count, (k + 1) * batch // count) for k in range(count)]
    else:
        sizes = list(g.shape[2:])
        positions = math.prod(sizes)
        cg, fg = x.shape[1] // groups, g.shape[1] // groups
        tiles = winograd_tiles(cg, fg, sizes, geometry)
        if tiles == 0 or g.shape[1] >= WINOGRAD_GRAD_FILTERS * x.shape[1]:
            images = product_images(positions, 0)  # the wide columns (see there)
        else:
            images = winograd_grad_images(cg, fg, tiles)
        pieces = _pieces(batch, work, images)
    partials = np.empty((len(pieces),) + tuple(w_shape), g.dtype)
    calls = [
        (g5, x5, _as5(partials[k]), lo, hi, groups, *geometry) for k, (lo, hi) in enumerate(pieces)
    ]
    with blas_alone():
        threads.run(compiled, calls)
    total = partials[0]
    for partial in partials[1:]:  # the sums sum(axis=0) makes, in its order, at
        np.add(total, partial, out=total)  # half its time (0.65 -> 0.3 ms, 9 MB)
    return total


# -- the step runner's calls ------------------------------------------------------


def _convolution(compiled, x, w, b=None, *, kernel, stride, dilate, pad, num_group, **_):
    if not _floats(x, w, b):
        return None
    geometry = geometry3(x.ndim - 2, kernel, stride, dilate, pad)
    return _forward(compiled, x, w, b, out_sizes(x.shape[2:], geometry), num_group, geometry)


def _conv_data_grad(compiled, g, w, like, *, kernel, stride, dilate, pad, num_group, **_):
    if not _floats(g, w):
        return None
    geometry = geometry3(like.ndim - 2, kernel, stride, dilate, pad)
    return _transposed(compiled, g, w, None, like.shape, num_group, geometry)


def _conv_weight_grad(compiled, g, x, like, *, kernel, stride, dilate, pad, num_group, **_):
    if not _floats(g, x):
        return None
    geometry = geometry3(x.ndim - 2, kernel, stride, dilate, pad)
    return _weights(compiled, g, x, like.shape, num_group, geometry)


def _deconv_geometry(sizes, kernel, stride, dilate, pad, adj, target_shape):
    kernel, stride, dilate, pad, out = deconv_geometry(
        sizes, kernel, stride, dilate, pad, adj, target_shape
    )
    geometry = (_three(kernel, 1), _three(stride, 1), _three(dilate, 1), _three(pad, 0))
    return geometry, out


def _deconvolution(
    compiled, x, w, b=None, *, kernel, stride, dilate, pad, adj, target_shape, num_filter,
    num_group, **_,
):  # fmt: skip
    if not _floats(x, w, b):
        return None
    geometry, out = _deconv_geometry(x.shape[2:], kernel, stride, dilate, pad, adj, target_shape)
    shape = (x.shape[0], num_filter) + tuple(out)
    return _transposed(compiled, x, w, b, shape, num_group, geometry)


def _deconv_data_grad(
    compiled, g, w, like, *, kernel, stride, dilate, pad, adj, target_shape, num_group, **_
):
    if not _floats(g, w):
        return None
    geometry, _out = _deconv_geometry(
        like.shape[2:], kernel, stride, dilate, pad, adj, target_shape
    )
    return _forward(compiled, g, w, None, like.shape[2:], num_group, geometry)


def _deconv_weight_grad(
    compiled, g, x, like, *, kernel, stride, dilate, pad, adj, target_shape, num_group, **_
):
    if not _floats(g, x):
        return None
    geometry, _out = _deconv_geometry(x.shape[2:], kernel, stride, dilate, pad, adj, target_shape)
    # deconv(x, w) = conv^T_w(x): the roles of image and output gradient swap
    return _weights(compiled, x, g, like.shape, num_group, geometry)


# -- the whole-program entry's forms (see ..entry) -----------------------------------

_ONE_THREAD = threads.split_limit() >= 1 << 62


def as5_source(name: str, ndim: int) -> str:
    """Source viewing the (N, C, *spatial) array ``name`` as 5-D."""
    dims = [f"{name}.shape[0]", f"{name}.shape[1]"] + ["1"] * (5 - ndim)
    dims += [f"{name}.shape[{a}]" for a in range(2, ndim)]
    return f"{name}.reshape({shape_tuple(dims)})"


def guard_shapes(w: Writer, step, batch_inputs: tuple[int, ...]) -> None:
    """Give up unless every input has the shape the node was built with, but for the
    batch axis of ``batch_inputs``, which must agree among them: the geometry
    written into the entry holds for those shapes only."""
    node, names = step.node, [f"s{i}" for i in step.inputs]
    tests = []
    for k, (entry, name) in enumerate(zip(node.inputs, names)):
        tests += [
            f"{name}.shape[{axis}] != {size}"
            for axis, size in enumerate(entry.shape)
            if not (axis == 0 and k in batch_inputs)
        ]
    tests += [f"{names[k]}.shape[0] != {names[batch_inputs[0]]}.shape[0]" for k in batch_inputs[1:]]
    if tests:
        w.give_up_if(" or ".join(tests))


def _conv_entry_call(
    w: Writer,
    step,
    *,
    operands: tuple[int, int],
    bias: int | None,
    batch_inputs: tuple[int, ...],
    batched_output: bool,
    per_image_work: int,
    groups: int,
    geometry: tuple[Triple, ...],
) -> bool:
    """Write one convolution kernel call: the shape checks, the hand-back of big
    batches to the threaded step runner, the output and the call."""
    node = step.node
    if node.types[0].dtype not in FLOATS or any(
        e.dtype != node.types[0].dtype for e in node.inputs
    ):
        return False
    guard_shapes(w, step, batch_inputs)
    batch = f"s{step.inputs[batch_inputs[0]]}.shape[0]"
    out_shape = list(node.types[0].shape)
    dims = [batch if batched_output else str(out_shape[0])] + [str(s) for s in out_shape[1:]]
    slot, dtype = step.outputs[0], node.types[0].dtype
    arrays = [as5_source(f"s{step.inputs[i]}", len(node.inputs[i].shape)) for i in operands]
    if node.op.name != "_conv_weight_grad" and node.op.name != "_deconv_weight_grad":
        has_bias = bias is not None and bias < len(step.inputs)
        arrays.append(f"s{step.inputs[bias]}" if has_bias else f"np.empty(0, np.{dtype.name})")
    arrays.append(as5_source(f"s{slot}", len(out_shape)))
    call = (
        f"{step.lowering.kernel_name}({', '.join(arrays)}, {runtime_value(0)}, {batch}, "
        f"{runtime_value(groups)}, {', '.join(runtime_value(tuple(t)) for t in geometry)})"
    )
    # the weights in the kernels' layout (filters, channels a group, taps): the
    # weight gradient's result, else the second operand; split as _launch and
    # _weights split it
    weight = out_shape if not batched_output else node.inputs[operands[1]].shape
    taps = math.prod(weight[1:])
    least = parallel_work(groups * weight[1], weight[0], groups, taps, not batched_output)
    threaded = None if _ONE_THREAD else w.library_call(step, step.lowering.kernel_name)
    if threaded is None:
        if not _ONE_THREAD:
            w.give_up_if(f"{batch} > 1 and {batch} * {per_image_work} >= {least}")
        w.result(slot, shape_tuple(dims), dtype)
        w.emit(call)
        return True
    # big enough for threads: the step runner's paths (pieces of the batch,
    # Winograd, stride phases), from object mode, and the entry stays one call
    w.emit(f"if {batch} > 1 and {batch} * {per_image_work} >= {least}:")
    w.emit(f"    s{slot} = {threaded}")
    w.emit("else:")
    with w.indented():
        w.result(slot, shape_tuple(dims), dtype)
        w.emit(call)
    return True


def _geometry_of(node: Node, sizes: tuple[int, ...]) -> tuple[Triple, ...]:
    a = node.attrs
    return geometry3(len(sizes), a["kernel"], a["stride"], a["dilate"], a["pad"])


def _deconv_geometry_of(node: Node, sizes: tuple[int, ...]) -> tuple[Triple, ...]:
    a = node.attrs
    geometry, _out = _deconv_geometry(
        sizes, a["kernel"], a["stride"], a["dilate"], a["pad"], a["adj"], a["target_shape"]
    )
    return geometry


def _per_image(shape: tuple[int, ...], weight: tuple[int, ...]) -> int:
    """Multiply-adds per image of a convolution whose larger side is ``shape``."""
    return math.prod(shape[1:]) * math.prod(weight[1:])


def _convolution_entry(w: Writer, step) -> bool:
    node = step.node
    x, weight = node.inputs[0].shape, node.inputs[1].shape
    return _conv_entry_call(
        w,
        step,
        operands=(0, 1),
        bias=2,
        batch_inputs=(0,),
        batched_output=True,
        per_image_work=_per_image(node.types[0].shape, weight),
        groups=node.attrs["num_group"],
        geometry=_geometry_of(node, x[2:]),
    )


def _conv_data_grad_entry(w: Writer, step) -> bool:
    node = step.node
    g, weight, like = (e.shape for e in node.inputs)
    return _conv_entry_call(
        w,
        step,
        operands=(0, 1),
        bias=None,
        batch_inputs=(0, 2),
        batched_output=True,
        per_image_work=_per_image(g, weight),
        groups=node.attrs["num_group"],
        geometry=_geometry_of(node, like[2:]),
    )


def _conv_weight_grad_entry(w: Writer, step) -> bool:
    node = step.node
    g, x, like = (e.shape for e in node.inputs)
    return _conv_entry_call(
        w,
        step,
        operands=(0, 1),
        bias=None,
        batch_inputs=(0, 1),
        batched_output=False,
        per_image_work=_per_image(g, like),
        groups=node.attrs["num_group"],
        geometry=_geometry_of(node, x[2:]),
    )


def _deconvolution_entry(w: Writer, step) -> bool:
    node = step.node
    x, weight = node.inputs[0].shape, node.inputs[1].shape
    return _conv_entry_call(
        w,
        step,
        operands=(0, 1),
        bias=2,
        batch_inputs=(0,),
        batched_output=True,
        per_image_work=_per_image(x, weight),
        groups=node.attrs["num_group"],
        geometry=_deconv_geometry_of(node, x[2:]),
    )


def _deconv_data_grad_entry(w: Writer, step) -> bool:
    node = step.node
    g, weight, like = (e.shape for e in node.inputs)
    return _conv_entry_call(
        w,
        step,
        operands=(0, 1),
        bias=None,
        batch_inputs=(0, 2),
        batched_output=True,
        per_image_work=_per_image(like, weight),
        groups=node.attrs["num_group"],
        geometry=_deconv_geometry_of(node, like[2:]),
    )


def _deconv_weight_grad_entry(w: Writer, step) -> bool:
    node = step.node
    g, x, like = (e.shape for e in node.inputs)
    # the kernel takes (output gradient, image) = (x, g): deconv is conv^T
    return _conv_entry_call(
        w,
        step,
        operands=(1, 0),
        bias=None,
        batch_inputs=(0, 1),
        batched_output=False,
        per_image_work=_per_image(x, like),
        groups=node.attrs["num_group"],
        geometry=_deconv_geometry_of(node, x[2:]),
    )


def _float_op(node: Node) -> bool:
    """The kernels compute in the data's float type."""
    return node.types[0].dtype in FLOATS


def _conv_lowering(op: str, kernel: str, run, entry) -> Lowering:
    return register_lowering(
        Lowering(op, _SOURCE, kernel, run=run, entry=entry, accepts=_float_op, threaded=True)
    )


_conv_lowering("Convolution", "lib_conv_forward", _convolution, _convolution_entry)
_conv_lowering("_conv_data_grad", "lib_conv_data_grad", _conv_data_grad, _conv_data_grad_entry)
_conv_lowering(
    "_conv_weight_grad", "lib_conv_weight_grad", _conv_weight_grad, _conv_weight_grad_entry
)
_conv_lowering("Deconvolution", "lib_conv_data_grad", _deconvolution, _deconvolution_entry)
_conv_lowering("_deconv_data_grad", "lib_conv_forward", _deconv_data_grad, _deconv_data_grad_entry)
_conv_lowering(
    "_deconv_weight_grad", "lib_conv_weight_grad", _deconv_weight_grad, _deconv_weight_grad_entry
)
