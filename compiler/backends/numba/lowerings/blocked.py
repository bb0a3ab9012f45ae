"""The channel-blocked layout's ops (``ops/blocked.py``) on ``..blocked``'s kernels.

Each op runs its kernel over pieces of the batch on the backend's threads, one
piece a thread (a piece's images share the scratch a kernel pads them into),
float32 only: other dtypes take the ops' numpy forms. In the whole-program
entry each is one call of the step runner's path from object mode, as a big
convolution is (``conv._conv_entry_call``), after checking the shapes the
program was traced with (the batch may differ).
"""

from __future__ import annotations

import numpy as np

from ....ir import Node
from ....ops.blocked import blocked_shape, plain_shape
from ....ops.conv import pool_geometry
from .. import blocked, threads
from ..emit import Writer
from .conv import guard_shapes
from .table import Lowering, register_lowering

_FLOAT32 = np.dtype(np.float32)


def _pieces(batch: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` pieces of the batch, as many as threads (at most one an image)."""
    count = max(1, min(batch, threads.count()))
    edges = [k * batch // count for k in range(count + 1)]
    return [(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo]


def _float32(*arrays: np.ndarray | None) -> bool:
    return all(a is None or a.dtype == _FLOAT32 for a in arrays)


def _whole(*arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays C-contiguous, as the kernels read them (a split's part, a
    slice of a concatenation's result, may be a view: DenseNet's blocks)."""
    return [np.ascontiguousarray(a) for a in arrays]


def _to_blocked(_kernel, x: np.ndarray) -> np.ndarray | None:
    if not _float32(x):
        return None
    (x,) = _whole(x)
    out = np.empty(blocked_shape(x.shape), x.dtype)
    threads.run(blocked.to_blocked, [(x, out, lo, hi) for lo, hi in _pieces(x.shape[0])])
    return out


def _from_blocked(_kernel, y: np.ndarray) -> np.ndarray | None:
    if not _float32(y):
        return None
    (y,) = _whole(y)
    out = np.empty(plain_shape(y.shape), y.dtype)
    threads.run(blocked.from_blocked, [(y, out, lo, hi) for lo, hi in _pieces(y.shape[0])])
    return out


def _winograd(kernel: tuple, pad: tuple) -> bool:
    """Whether a blocked convolution goes by Winograd's F(2x2, 3x3): a 3x3 kernel
    padded alike on both axes by at most 2 (its data gradient's padding, 2 less
    that, stays whole). One thread, 4 images, SqueezeNet's 32 -> 128 54x54
    layer's forward took half the direct tile's time (9.07 -> 4.48 ms)."""
    return tuple(kernel) == (3, 3) and pad[0] == pad[1] and 0 <= pad[0] <= 2


def _by_winograd(x, w, bias, out, pad: int, transposed: bool) -> None:
    """``out`` = the 3x3 convolution of ``x`` (stride 1, ``pad``) by
    ``blocked.winograd_images``, its adjoint where ``transposed``; the images
    whose result is not finite again by the direct tile."""
    transformed = blocked.winograd_weights(w, transposed)
    redo = np.zeros(x.shape[0], np.bool_)
    calls = [(x, transformed, bias, out, pad, redo, lo, hi) for lo, hi in _pieces(x.shape[0])]
    threads.run(blocked.winograd_images, calls)
    if redo.any():
        direct = blocked.pack(w, transposed)
        for n in np.flatnonzero(redo):
            blocked.conv_images(x, direct, bias, out, 3, 3, pad, pad, n, n + 1)


def _blocked_conv(_kernel, x, w, b=None, *, kernel, pad, num_filter, no_bias):
    if not _float32(x, w, b):
        return None
    x, w = _whole(x, w)
    (kh, kw), (ph, pw) = kernel, pad
    n, _, h, width, _ = x.shape
    sizes = (h + 2 * ph - kh + 1, width + 2 * pw - kw + 1)
    out = np.empty((n, num_filter // blocked.BLOCK, *sizes, blocked.BLOCK), x.dtype)
    bias = np.zeros(num_filter, x.dtype) if b is None else np.ascontiguousarray(b)
    if _winograd(kernel, pad):
        _by_winograd(x, w, bias, out, ph, transposed=False)
        return out
    weights = blocked.pack(w, transposed=False)
    calls = [(x, weights, bias, out, kh, kw, ph, pw, lo, hi) for lo, hi in _pieces(n)]
    threads.run(blocked.conv_images, calls)
    return out


def _blocked_conv_data_grad(_kernel, g, w, like, *, kernel, pad, num_filter):
    (kh, kw), (ph, pw) = kernel, pad
    if not _float32(g, w) or ph > kh - 1 or pw > kw - 1:
        return None
    g, w = _whole(g, w)
    out = np.empty(like.shape, g.dtype)
    bias = np.zeros(like.shape[1] * blocked.BLOCK, g.dtype)
    if _winograd(kernel, pad):
        _by_winograd(g, w, bias, out, 2 - ph, transposed=True)
        return out
    weights = blocked.pack(w, transposed=True)
    pieces = _pieces(g.shape[0])
    flipped_pad = (kh - 1 - ph, kw - 1 - pw)
    calls = [(g, weights, bias, out, kh, kw, *flipped_pad, lo, hi) for lo, hi in pieces]
    threads.run(blocked.conv_images, calls)
    return out


def _blocked_conv_weight_grad(_kernel, g, x, like, *, kernel, pad, num_filter):
    if not _float32(g, x):
        return None
    g, x = _whole(g, x)
    (kh, kw), (ph, pw) = kernel, pad
    filters, channels = like.shape[0], like.shape[1]
    pieces = _pieces(g.shape[0])
    partials = np.empty((len(pieces), kh * kw, filters, channels), g.dtype)
    calls = [(g, x, partials[k], kh, kw, ph, pw, lo, hi) for k, (lo, hi) in enumerate(pieces)]
    threads.run(blocked.weight_grad_images, calls)
    total = partials[0]
    for partial in partials[1:]:
        np.add(total, partial, out=total)
    return np.ascontiguousarray(total.reshape(kh, kw, filters, channels).transpose(2, 3, 0, 1))


def _max_windows(x: np.ndarray, attrs: dict) -> tuple | None:
    """A 2-D max pooling's (kernel, stride, pad, out sizes) on blocked ``x``, or
    None for other poolings (their numpy forms)."""
    if attrs["pool_type"] != "max" or x.ndim != 5 or not _float32(x):
        return None
    kernel, stride, pad, out, _ = pool_geometry(
        x.shape[2:4],
        attrs["kernel"],
        attrs["stride"],
        attrs["pad"],
        attrs["global_pool"],
        attrs["pooling_convention"],
    )
    return kernel, stride, pad, out


def _blocked_pooling(_kernel, x, **attrs):
    windows = _max_windows(x, attrs)
    if windows is None:
        return None
    (x,) = _whole(x)
    (kh, kw), (sh, sw), (ph, pw), sizes = windows
    out = np.empty(x.shape[:2] + tuple(sizes) + (blocked.BLOCK,), x.dtype)
    calls = [(x, out, kh, kw, sh, sw, ph, pw, lo, hi) for lo, hi in _pieces(x.shape[0])]
    threads.run(blocked.max_pool_images, calls)
    return out


def _blocked_pooling_grad(_kernel, g, x, **attrs):
    windows = _max_windows(x, attrs)
    if windows is None or not _float32(g):
        return None
    g, x = _whole(g, x)
    (kh, kw), (sh, sw), (ph, pw), _sizes = windows
    dx = np.empty(x.shape, g.dtype)
    calls = [(g, x, dx, kh, kw, sh, sw, ph, pw, lo, hi) for lo, hi in _pieces(x.shape[0])]
    threads.run(blocked.max_pool_grad_images, calls)
    return dx


def _entry(batch_inputs: tuple[int, ...]):
    """The entry form: the step runner's call from object mode, for the shapes
    traced (but the batch axis of ``batch_inputs``)."""

    def write(w: Writer, step) -> bool:
        node = step.node
        if any(e.dtype != _FLOAT32 for e in node.inputs):
            return False
        call = w.library_call(step, "None")
        if call is None:
            return False
        guard_shapes(w, step, batch_inputs)
        w.emit(f"s{step.outputs[0]} = {call}")
        return True

    return write


def _float_data(node: Node) -> bool:
    return node.types[0].dtype == _FLOAT32


for _op, _run_op, _batched in (
    ("_to_blocked", _to_blocked, (0,)),
    ("_from_blocked", _from_blocked, (0,)),
    ("_blocked_conv", _blocked_conv, (0,)),
    ("_blocked_conv_data_grad", _blocked_conv_data_grad, (0, 2)),
    ("_blocked_conv_weight_grad", _blocked_conv_weight_grad, (0, 1)),
    ("_blocked_pooling", _blocked_pooling, (0,)),
    ("_blocked_pooling_grad", _blocked_pooling_grad, (0, 1)),
):
    register_lowering(
        Lowering(_op, run=_run_op, entry=_entry(_batched), accepts=_float_data, threaded=True)
    )
