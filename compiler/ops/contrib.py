"""MXNet's ``contrib`` ops that run on a CPU, under their registry names
(``_contrib_<name>``; ``mx.nd.contrib.<name>`` strips the prefix).

Linear ops whose adjoint is not another public op (BilinearResize2D, ROIAlign,
boolean_mask, box_nms) each register a ``_backward_contrib_*`` twin that applies
the adjoint; the twin's own gradient is the forward op again, so both
differentiate to any order.
"""

from __future__ import annotations

import ast
import math

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import (
    INERT_ATTRS,
    Attr,
    OpDef,
    TestSpec,
    as_axes,
    as_bool,
    as_float,
    as_int,
    as_optional_int,
    as_shape,
    get_op,
    one_of,
    register,
    same_as_first,
)
from .common import F, normalize_axis
from .conv import BACKEND_HINTS, CONV_GEOMETRY, _spatial, conv_out_size
from .nn import _batchnorm, _batchnorm_types, batchnorm_grad

# ---------------------------------------------------------------------------
# quadratic and div_sqrt_dim
# ---------------------------------------------------------------------------

_QUADRATIC_ATTRS = {"a": Attr(as_float, 0.0), "b": Attr(as_float, 0.0), "c": Attr(as_float, 0.0)}


def _quadratic(x, *, a, b, c):
    with np.errstate(all="ignore"):  # inf and NaN results are silent, as in MXNet
        return (a * x * x + b * x + c).astype(x.dtype, copy=False)


def quadratic_grad(g, x, *, out, a, b, c):
    """g * (2 a x + b)"""
    return g * (x * (2.0 * a) + b)


register(OpDef(name="_contrib_quadratic", infer=same_as_first, impl=_quadratic,
               grad=quadratic_grad, attrs=_QUADRATIC_ATTRS, kind="elemwise",
               scalar="{a} * {0} * {0} + {b} * {0} + {c}",
               doc="a x^2 + b x + c, elementwise.\n\nGradient\n--------\ng (2 a x + b)",
               test=TestSpec(attrs={"a": 1.5, "b": -0.5, "c": 2.0})))


def _div_sqrt_dim(x):
    return (x / np.sqrt(x.shape[-1])).astype(x.dtype, copy=False)


def div_sqrt_dim_grad(g, x, *, out):
    """g / sqrt(d), d the length of the last axis"""
    return g * (1.0 / math.sqrt(x.shape[-1]))


register(OpDef(name="_contrib_div_sqrt_dim", infer=same_as_first, impl=_div_sqrt_dim,
               grad=div_sqrt_dim_grad,
               doc="data / sqrt(data.shape[-1]) (attention's scaling).\n\nGradient\n"
                   "--------\ng / sqrt(d)",
               test=TestSpec(shapes=((2, 3, 4),))))


# ---------------------------------------------------------------------------
# straight-through and gradient-scaling ops: their gradients are by design not
# their forward's derivative, so no finite-difference TestSpec (exempted in
# tests/test_ops_generated.py, tested in tests/test_contrib.py)
# ---------------------------------------------------------------------------

def gradient_multiplier_grad(g, x, *, out, scalar):
    """g * scalar (the forward is the identity)"""
    return g * scalar


register(OpDef(name="_contrib_gradientmultiplier", infer=same_as_first,
               impl=lambda x, *, scalar: x.copy(), grad=gradient_multiplier_grad,
               attrs={"scalar": Attr(as_float)}, kind="elemwise", scalar="{0}",
               doc="The identity, whose gradient is scaled by ``scalar`` (a gradient "
                   "reversal layer with -1).\n\nGradient\n--------\ng * scalar"))


def straight_through_grad(g, x, *, out):
    """g, as if the op were the identity (straight-through estimator)"""
    return g


def _round_half_away(x):
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(x.dtype, copy=False)


register(OpDef(name="_contrib_round_ste", infer=same_as_first, impl=_round_half_away,
               grad=straight_through_grad, kind="elemwise",
               scalar="math.copysign(math.floor(abs({0}) + 0.5), {0})",
               doc="Round half away from zero, with the identity's gradient.\n\n"
                   "Gradient\n--------\ng"))
register(OpDef(name="_contrib_sign_ste", infer=same_as_first,
               impl=lambda x: np.sign(x), grad=straight_through_grad, kind="elemwise",
               scalar="(1.0 if {0} > 0 else (-1.0 if {0} < 0 else 0.0 * {0}))",
               doc="sign(x), with the identity's gradient.\n\nGradient\n--------\ng"))


# ---------------------------------------------------------------------------
# allclose, index_array, arange_like (no gradient)
# ---------------------------------------------------------------------------

def _allclose_types(types, **_attrs):
    if types[0].shape != types[1].shape:
        raise GraphError("a and b must have one shape")
    return [TensorType((), np.dtype(np.uint8))]


def _allclose(a, b, *, rtol, atol, equal_nan):
    return np.array(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan),
                    dtype=np.uint8)


register(OpDef(name="_contrib_allclose", infer=_allclose_types, impl=_allclose,
               inputs=("a", "b"), differentiable=False,
               attrs={"rtol": Attr(as_float, 1e-5), "atol": Attr(as_float, 1e-8),
                      "equal_nan": Attr(as_bool, True)},
               doc="1 (uint8, shape ()) if |a - b| <= atol + rtol |b| everywhere, else 0.",
               test=TestSpec(shapes=((3, 4), (3, 4)))))


def _index_axes(ndim: int, axes) -> tuple[int, ...]:
    return tuple(range(ndim)) if axes is None else tuple(normalize_axis(a, ndim) for a in axes)


def _index_array_types(types, *, axes):
    shape = types[0].shape
    return [TensorType(shape + (len(_index_axes(len(shape), axes)),), np.dtype(np.int64))]


def _index_array(data, *, axes):
    grids = np.indices(data.shape, dtype=np.int64)
    picked = [grids[a] for a in _index_axes(data.ndim, axes)]
    return np.stack(picked, axis=-1) if picked else \
        np.zeros(data.shape + (0,), dtype=np.int64)


register(OpDef(name="_contrib_index_array", infer=_index_array_types, impl=_index_array,
               attrs={"axes": Attr(as_axes, None)}, differentiable=False,
               doc="Each element's index (int64): shape data.shape + (len(axes),).",
               test=TestSpec(shapes=((2, 3),), attrs={"axes": (-1, 0)})))


def _arange_like_types(types, *, start, step, repeat, axis):
    shape = types[0].shape
    if axis is not None:
        shape = (shape[normalize_axis(axis, len(shape))],)
    return [TensorType(shape, types[0].dtype)]


def _arange_like(data, *, start, step, repeat, axis):
    shape = data.shape if axis is None else (data.shape[axis % data.ndim],)
    count = int(np.prod(shape))
    values = start + step * (np.arange(count) // max(repeat, 1))
    return values.astype(data.dtype).reshape(shape)


register(OpDef(name="_contrib_arange_like", infer=_arange_like_types, impl=_arange_like,
               differentiable=False, shape_only=(0,),
               attrs={"start": Attr(as_float, 0.0), "step": Attr(as_float, 1.0),
                      "repeat": Attr(as_int, 1), "axis": Attr(as_optional_int, None)},
               doc="start, start + step, ... shaped like data (or like its ``axis``), "
                   "each value repeated ``repeat`` times.",
               test=TestSpec(shapes=((2, 3),), attrs={"start": 1.0, "step": 0.5,
                                                     "repeat": 2})))


# ---------------------------------------------------------------------------
# index_copy
# ---------------------------------------------------------------------------

def _index_copy_types(types):
    old, index, new = types
    if len(index.shape) != 1 or new.shape != index.shape + old.shape[1:]:
        raise GraphError(f"new_tensor must be {index.shape + old.shape[1:]}")
    if old.dtype != new.dtype:
        raise GraphError("old_tensor and new_tensor must have one dtype")
    return [old]


def _index_copy(old, index, new):
    out = old.copy()
    out[index.astype(np.int64)] = new
    return out


def index_copy_grad(g, old, index, new, *, out):
    """old: g with the copied rows zeroed; new: the rows of g at index"""
    return (F._contrib_index_copy(g, index, F.zeros_like(new)), None,
            F.take(g, index, axis=0))


def _index_copy_inputs(rng):
    return [rng.uniform(-2, 2, (5, 3)), np.array([3.0, 0.0]), rng.uniform(-2, 2, (2, 3))]


register(OpDef(name="_contrib_index_copy", infer=_index_copy_types, impl=_index_copy,
               grad=index_copy_grad, inputs=("old_tensor", "index_vector", "new_tensor"),
               kind="gather",
               doc="old_tensor with its rows at index_vector replaced by new_tensor's.\n\n"
                   "Gradient\n--------\nold: g with those rows zeroed; new: g's rows there",
               test=TestSpec(make_inputs=_index_copy_inputs, wrt=(0, 2))))


# ---------------------------------------------------------------------------
# boolean_mask: its output length depends on the mask's values
# ---------------------------------------------------------------------------

def _boolean_mask_types(types, *, axis):
    raise GraphError("the output length of boolean_mask depends on the mask's values: "
                     "it runs imperatively (mx.nd), not inside a symbol")


def _boolean_mask(data, index, *, axis):
    if axis != 0:
        raise GraphError(f"axis={axis}: only axis 0 is supported (as in MXNet)")
    if index.ndim != 1 or index.shape[0] != data.shape[0]:
        raise GraphError(f"index of shape {index.shape} must be 1-D of length "
                         f"{data.shape[0]}")
    return data[index != 0]


def boolean_mask_grad(g, data, index, *, out, axis):
    """g's rows back at the rows the mask kept, zeros elsewhere"""
    return F._backward_contrib_boolean_mask(g, data, index, axis=axis), None


register(OpDef(name="_contrib_boolean_mask", infer=_boolean_mask_types, impl=_boolean_mask,
               grad=boolean_mask_grad, inputs=("data", "index"),
               attrs={"axis": Attr(as_int, 0)}, kind="opaque",
               doc="The rows of data whose index entry is nonzero.\n\nGradient\n--------\n"
                   "g scattered back to the kept rows"))


def _boolean_unmask_types(types, *, axis):
    return [TensorType(types[1].shape, types[0].dtype)]


def _boolean_unmask(g, like, index, *, axis):
    out = np.zeros(like.shape, dtype=g.dtype)
    out[index != 0] = g
    return out


register(OpDef(name="_backward_contrib_boolean_mask", infer=_boolean_unmask_types,
               impl=_boolean_unmask, shape_only=(1,), differentiable=False,
               inputs=("grad", "data", "index"), attrs={"axis": Attr(as_int, 0)},
               kind="opaque",
               doc="Zeros shaped like data with grad's rows at the mask's nonzero rows "
                   "(not differentiable: its gradient, boolean_mask, has a value-dependent "
                   "shape that no recorded graph can hold).",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-2, 2, (2, 3)),
                                                      np.zeros((4, 3)),
                                                      np.array([0, 1, 0, 1.0])],
                             wrt=(0,))))


# ---------------------------------------------------------------------------
# BilinearResize2D: out = Wh @ x @ Ww^T on the last two axes
# ---------------------------------------------------------------------------

_RESIZE_MODES = ("size", "like", "odd_scale", "to_even_down", "to_even_up", "to_odd_down",
                 "to_odd_up")
_RESIZE_ATTRS = {"height": Attr(as_int, 1), "width": Attr(as_int, 1),
                 "scale_height": Attr(lambda v: None if v in (None, "None") else as_float(v),
                                      None),
                 "scale_width": Attr(lambda v: None if v in (None, "None") else as_float(v),
                                     None),
                 "mode": Attr(one_of(*_RESIZE_MODES), "size"),
                 "align_corners": Attr(as_bool, True)}


def _resized(size: int, target: int, scale: float | None, mode: str) -> int:
    if mode == "size":
        return int(size * scale) if scale is not None else target
    if mode == "odd_scale":
        scale = 1.0 if scale is None else scale
        return int((size - 1) * scale) + 1 if size % 2 else int(size * scale)
    if mode == "to_even_down":
        return size - size % 2
    if mode == "to_even_up":
        return size + size % 2
    if mode == "to_odd_down":
        return size if size % 2 else size - 1
    return size if size % 2 else size + 1  # to_odd_up


def _resize_inputs(attrs: dict) -> tuple[str, ...]:
    return ("data", "like") if attrs.get("mode") == "like" else ("data",)


def _resize_types(types, *, height, width, scale_height, scale_width, mode, align_corners):
    data = types[0].shape
    if len(data) != 4:
        raise GraphError("data must be NCHW")
    if mode == "like":
        out_h, out_w = types[1].shape[2], types[1].shape[3]
    else:
        out_h = _resized(data[2], height, scale_height, mode)
        out_w = _resized(data[3], width, scale_width, mode)
    if out_h < 1 or out_w < 1:
        raise GraphError(f"output size ({out_h}, {out_w}) must be positive")
    return [TensorType(data[:2] + (out_h, out_w), types[0].dtype)]


def _interpolation(size: int, out: int, align_corners: bool) -> np.ndarray:
    """The (out, size) matrix of linear interpolation weights along one axis."""
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * (size / out) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = src - low
    weights = np.zeros((out, size))
    np.add.at(weights, (np.arange(out), low), 1.0 - frac)
    np.add.at(weights, (np.arange(out), high), frac)
    return weights


def _resize_matrices(in_shape, out_shape, align_corners, dtype):
    rows = _interpolation(in_shape[2], out_shape[2], align_corners).astype(dtype)
    cols = _interpolation(in_shape[3], out_shape[3], align_corners).astype(dtype)
    return rows, cols


def _bilinear_resize(data, *like, **attrs):
    (out_type,) = _resize_types([TensorType(data.shape, data.dtype)] +
                                [TensorType(x.shape, x.dtype) for x in like], **attrs)
    rows, cols = _resize_matrices(data.shape, out_type.shape, attrs["align_corners"],
                                  data.dtype)
    return np.einsum("oh,nchw,pw->ncop", rows, data, cols).astype(data.dtype, copy=False)


def bilinear_resize_grad(g, data, *like, out, **attrs):
    """the adjoint: Wh^T g Ww"""
    back = F._backward_contrib_BilinearResize2D(g, data, align_corners=attrs["align_corners"])
    return (back,) + (None,) * len(like)


register(OpDef(name="_contrib_BilinearResize2D", infer=_resize_types, impl=_bilinear_resize,
               grad=bilinear_resize_grad, inputs=_resize_inputs, attrs=_RESIZE_ATTRS,
               kind="opaque",
               doc="Bilinear resize of NCHW data's last two axes (MXNet's sampling, "
                   "align_corners or half-pixel).\n\nGradient\n--------\nWh^T g Ww, the "
                   "interpolation matrices transposed",
               test=TestSpec(shapes=((2, 2, 3, 4),), attrs={"height": 5, "width": 3,
                                                             "align_corners": False})))


def _resize_back_types(types, *, align_corners):
    return [TensorType(types[1].shape, types[0].dtype)]


def _resize_back(g, like, *, align_corners):
    rows, cols = _resize_matrices(like.shape, g.shape, align_corners, g.dtype)
    return np.einsum("oh,ncop,pw->nchw", rows, g, cols).astype(g.dtype, copy=False)


def resize_back_grad(gg, g, like, *, out, align_corners):
    """the forward resize of gg to g's size"""
    return F._contrib_BilinearResize2D(gg, g, mode="like", align_corners=align_corners), None


register(OpDef(name="_backward_contrib_BilinearResize2D", infer=_resize_back_types,
               impl=_resize_back, grad=resize_back_grad, inputs=("grad", "data"),
               shape_only=(1,), attrs={"align_corners": Attr(as_bool, True)}, kind="opaque",
               doc="The adjoint of BilinearResize2D: grad (N, C, h, w) back to data's size.",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-2, 2, (1, 2, 5, 3)),
                                                      np.zeros((1, 2, 3, 4))], wrt=(0,))))


# ---------------------------------------------------------------------------
# SyncBatchNorm: on one device, BatchNorm over axis 1 (ndev and key name the
# devices that would share statistics)
# ---------------------------------------------------------------------------

def _sync_types(types, *, ndev, key, **attrs):
    return _batchnorm_types(types, axis=1, **attrs)


def _sync_batchnorm(*arrays, ndev, key, **attrs):
    return _batchnorm(*arrays, axis=1, **attrs)


def sync_batchnorm_grad(gs, *inputs, out, ndev, key, **attrs):
    """BatchNorm's gradient over axis 1"""
    return batchnorm_grad(gs, *inputs, out=out, axis=1, **attrs)


_BN = get_op("BatchNorm")
SYNC_BATCHNORM = register(OpDef(
    name="_contrib_SyncBatchNorm", infer=_sync_types, impl=_sync_batchnorm,
    grad=sync_batchnorm_grad, inputs=_BN.inputs, aux=_BN.aux, uses_train_mode=True,
    visible_outputs=1, kind="opaque",
    attrs={**{k: v for k, v in _BN.attrs.items() if k != "axis"},
           "ndev": Attr(as_int, 1), "key": Attr(str, "")},
    doc="Batch normalisation over axis 1 with statistics shared across ``ndev`` "
        "devices; on one CPU it is BatchNorm.\n\nGradient\n--------\nBatchNorm's",
    test=TestSpec(make_inputs=lambda rng: [rng.uniform(-2, 2, (4, 3, 2)),
                                           rng.uniform(0.5, 1.5, (3,)),
                                           rng.uniform(-1, 1, (3,)), np.zeros(3), np.ones(3)],
                  wrt=(0, 1, 2), attrs={"fix_gamma": False, "is_train": True, "key": "k"})))


# BatchNormWithReLU: relu(BatchNorm(x)), MXNet's fused CPU kernel

def _bn_relu(*arrays, **attrs):
    out, mean, inverse_std = _batchnorm(*arrays, **attrs)
    return np.maximum(out, 0).astype(out.dtype, copy=False), mean, inverse_std


def bn_relu_grad(gs, *inputs, out, **attrs):
    """BatchNorm's gradient of g where the output is positive"""
    passed = gs[0] * F._greater_scalar(out[0], scalar=0.0)
    return batchnorm_grad((passed, *gs[1:]), *inputs, out=out, **attrs)


BN_RELU = register(OpDef(
    name="_contrib_BatchNormWithReLU", infer=_batchnorm_types, impl=_bn_relu,
    grad=bn_relu_grad, inputs=_BN.inputs, aux=_BN.aux, uses_train_mode=True,
    visible_outputs=1, kind="opaque", attrs=dict(_BN.attrs),
    doc="relu(BatchNorm(data)) in one op.\n\nGradient\n--------\nBatchNorm's gradient "
        "of g where the output is positive",
    test=TestSpec(make_inputs=lambda rng: [rng.uniform(-2, 2, (4, 3, 2)),
                                           rng.uniform(0.5, 1.5, (3,)),
                                           rng.uniform(-1, 1, (3,)), np.zeros(3), np.ones(3)],
                  wrt=(0, 1, 2), attrs={"fix_gamma": False, "is_train": True}, order=1)))


# ---------------------------------------------------------------------------
# AdaptiveAvgPooling2D: out = Ph @ x @ Pw^T, P averaging over each bin
# ---------------------------------------------------------------------------

def _output_size(value) -> tuple[int, int]:
    size = as_shape(value)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def _adaptive_types(types, *, output_size):
    data = types[0].shape
    if len(data) != 4:
        raise GraphError("data must be NCHW")
    return [TensorType(data[:2] + output_size, types[0].dtype)]


def _averaging(size: int, out: int) -> np.ndarray:
    """The (out, size) matrix averaging each adaptive bin [floor(i size / out),
    ceil((i + 1) size / out))."""
    weights = np.zeros((out, size))
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def _adaptive_pool(data, *, output_size):
    # in float64: a bin's mean of float32 values then rounds as MXNet's sum / count
    rows = _averaging(data.shape[2], output_size[0])
    cols = _averaging(data.shape[3], output_size[1])
    return np.einsum("oh,nchw,pw->ncop", rows, data, cols).astype(data.dtype, copy=False)


def adaptive_pool_grad(g, data, *, out, output_size):
    """Ph^T g Pw: each output's gradient shared evenly over its bin"""
    return F._backward_contrib_AdaptiveAvgPooling2D(g, data)


register(OpDef(name="_contrib_AdaptiveAvgPooling2D", infer=_adaptive_types,
               impl=_adaptive_pool, grad=adaptive_pool_grad,
               attrs={"output_size": Attr(_output_size, (1, 1))}, kind="opaque",
               doc="Average pooling of NCHW data to ``output_size`` bins (PyTorch's "
                   "adaptive bins).\n\nGradient\n--------\neach output's gradient "
                   "divided evenly over its bin",
               test=TestSpec(shapes=((2, 2, 5, 7),), attrs={"output_size": (2, 3)})))


def _adaptive_back(g, like):
    rows = _averaging(like.shape[2], g.shape[2])
    cols = _averaging(like.shape[3], g.shape[3])
    return np.einsum("oh,ncop,pw->nchw", rows, g, cols).astype(g.dtype, copy=False)


def adaptive_back_grad(gg, g, like, *, out):
    """adaptive pooling of gg to g's size"""
    return F._contrib_AdaptiveAvgPooling2D(gg, output_size=g.shape[2:]), None


def _like_second_types(types):
    return [TensorType(types[1].shape, types[0].dtype)]


register(OpDef(name="_backward_contrib_AdaptiveAvgPooling2D", infer=_like_second_types,
               impl=lambda g, like: _adaptive_back(g, like), grad=adaptive_back_grad,
               inputs=("grad", "data"), shape_only=(1,), kind="opaque",
               doc="The adjoint of AdaptiveAvgPooling2D.",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-2, 2, (1, 2, 2, 3)),
                                                      np.zeros((1, 2, 5, 7))], wrt=(0,))))


# ---------------------------------------------------------------------------
# MultiBoxPrior: SSD's anchor boxes for a feature map
# ---------------------------------------------------------------------------

def _floats(value) -> tuple[float, ...]:
    """Parse a tuple of floats (a number, a sequence, or MXNet's string of one)."""
    value = ast.literal_eval(value) if isinstance(value, str) else value
    if isinstance(value, (int, float)):
        value = (value,)
    return tuple(float(v) for v in value)


_PRIOR_ATTRS = {"sizes": Attr(_floats, (1.0,)), "ratios": Attr(_floats, (1.0,)),
                "clip": Attr(as_bool, False), "steps": Attr(_floats, (-1.0, -1.0)),
                "offsets": Attr(_floats, (0.5, 0.5))}


def _prior_types(types, *, sizes, ratios, clip, steps, offsets):
    data = types[0].shape
    if len(data) != 4:
        raise GraphError("data must be NCHW")
    count = data[2] * data[3] * (len(sizes) + len(ratios) - 1)
    return [TensorType((1, count, 4), types[0].dtype)]


def _multibox_prior(data, *, sizes, ratios, clip, steps, offsets):
    # In float32, step by step as MXNet's kernel: anchors equal to the last bit,
    # whose IoU ties then break as MXNet's do in MultiBoxTarget.
    f32 = np.float32
    height, width = data.shape[2], data.shape[3]
    step_y = f32(steps[0]) if steps[0] > 0 else f32(1.0) / f32(height)
    step_x = f32(steps[1]) if steps[1] > 0 else f32(1.0) / f32(width)
    # per location: every size at the first ratio, then the first size at the others
    shapes = [(f32(size), np.sqrt(f32(ratios[0]))) for size in sizes] + \
        [(f32(sizes[0]), np.sqrt(f32(r))) for r in ratios[1:]]
    half = np.array([[size * f32(height) / f32(width) * root / f32(2), size / root / f32(2)]
                     for size, root in shapes], dtype=f32)
    cy = (np.arange(height, dtype=f32) + f32(offsets[0])) * step_y
    cx = (np.arange(width, dtype=f32) + f32(offsets[1])) * step_x
    cy, cx = np.meshgrid(cy, cx, indexing="ij")
    centers = np.stack([cx.ravel(), cy.ravel()], axis=-1)[:, None, :]
    boxes = np.concatenate([centers - half, centers + half], axis=-1).reshape(1, -1, 4)
    if clip:
        boxes = np.clip(boxes, f32(0.0), f32(1.0))
    return boxes.astype(data.dtype)


register(OpDef(name="_contrib_MultiBoxPrior", infer=_prior_types, impl=_multibox_prior,
               attrs=_PRIOR_ATTRS, differentiable=False, shape_only=(0,), kind="opaque",
               doc="Anchor boxes (xmin, ymin, xmax, ymax, relative to the image) centred "
                   "on each cell of the feature map: every size at the first ratio, then "
                   "the first size at each other ratio.",
               test=TestSpec(shapes=((1, 3, 2, 3),), attrs={"sizes": (0.5, 0.25),
                                                            "ratios": (1, 2, 0.5)})))


def _box_encode_types(types):
    samples, matches, anchors, refs, means, stds = (t.shape for t in types)
    if matches != samples or anchors != samples + (4,) or len(refs) != 3 or \
            refs[0] != samples[0] or refs[2] != 4 or means != (4,) or stds != (4,):
        raise GraphError("expected samples, matches (B, N), anchors (B, N, 4), refs "
                         "(B, M, 4), means and stds (4,)")
    return [TensorType(anchors, types[2].dtype), TensorType(anchors, types[2].dtype)]


def _box_encode(samples, matches, anchors, refs, means, stds):
    rows = np.arange(refs.shape[0])[:, None]
    picked = refs[rows, np.clip(matches.astype(np.int64), 0, refs.shape[1] - 1)]
    gx, gy, gw, gh = _center_form(picked.astype(np.float64))
    ax, ay, aw, ah = _center_form(anchors.astype(np.float64))
    raw = np.stack([(gx - ax) / aw, (gy - ay) / ah, np.log(gw / aw), np.log(gh / ah)], -1)
    positive = (samples > 0.5)[..., None]
    with np.errstate(all="ignore"):
        targets = np.where(positive, (raw - means) / stds, 0.0)
    return (targets.astype(anchors.dtype),
            np.broadcast_to(positive, anchors.shape).astype(anchors.dtype))


BOX_ENCODE = register(OpDef(name="_contrib_box_encode", infer=_box_encode_types, impl=_box_encode,
               inputs=("samples", "matches", "anchors", "refs", "means", "stds"),
               differentiable=False, kind="opaque",
               doc="Training targets of positive samples (samples > 0.5): the matched "
                   "reference box's normalised centre offsets and log sizes against the "
                   "anchor, minus means, over stds; and their mask.",
               test=TestSpec(make_inputs=lambda rng: [
                   np.array([[1.0, -1.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]),
                   np.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6],
                              [0.3, 0.3, 0.5, 0.9]]]),
                   np.array([[[0.1, 0.15, 0.45, 0.5], [0.5, 0.25, 0.85, 0.6]]]),
                   np.array([0.0, 0.1, 0.0, 0.0]), np.array([0.1, 0.1, 0.2, 0.3])])))


def _box_decode_types(types, **_attrs):
    data, anchors = types[0].shape, types[1].shape
    if len(data) != 3 or data[2] != 4 or anchors[1:] != data[1:]:
        raise GraphError("expected data (B, N, 4) and anchors (1, N, 4)")
    return [types[0]]


def _box_decode(data, anchors, *, std0, std1, std2, std3, clip, format):
    boxes = anchors.astype(np.float64)
    if format == "corner":
        ax, ay, aw, ah = _center_form(boxes)
    else:
        ax, ay, aw, ah = np.moveaxis(boxes, -1, 0)
    offsets = data.astype(np.float64)
    cx = offsets[..., 0] * std0 * aw + ax
    cy = offsets[..., 1] * std1 * ah + ay
    dw, dh = offsets[..., 2] * std2, offsets[..., 3] * std3
    if clip > 0:
        dw, dh = np.minimum(dw, clip), np.minimum(dh, clip)
    half_w, half_h = np.exp(dw) * aw / 2, np.exp(dh) * ah / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h],
                    axis=-1).astype(data.dtype)


register(OpDef(name="_contrib_box_decode", infer=_box_decode_types, impl=_box_decode,
               inputs=("data", "anchors"), differentiable=False, kind="opaque",
               attrs={"std0": Attr(as_float, 1.0), "std1": Attr(as_float, 1.0),
                      "std2": Attr(as_float, 1.0), "std3": Attr(as_float, 1.0),
                      "clip": Attr(as_float, -1.0),
                      "format": Attr(one_of("center", "corner"), "center")},
               doc="Corner boxes from predicted offsets against anchors (the inverse of "
                   "box_encode); MXNet's gradient is zero.",
               test=TestSpec(make_inputs=lambda rng: [
                   rng.normal(scale=0.3, size=(2, 3, 4)),
                   np.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6],
                              [0.3, 0.3, 0.5, 0.9]]])],
                   attrs={"std2": 0.2, "clip": 0.5, "format": "corner"})))


# ---------------------------------------------------------------------------
# MultiBoxTarget and MultiBoxDetection: SSD's training targets and decoding
# ---------------------------------------------------------------------------

_VARIANCES = Attr(_floats, (0.1, 0.1, 0.2, 0.2))


def _center_form(boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return (boxes[..., 0] + width / 2, boxes[..., 1] + height / 2, width, height)


def _target_types(types, **_attrs):
    anchors, labels, preds = (t.shape for t in types)
    if len(anchors) != 3 or anchors[2] != 4 or len(labels) != 3 or labels[2] < 5 or \
            len(preds) != 3 or preds[2] != anchors[1]:
        raise GraphError("expected anchor (1, N, 4), label (B, M, 5+), cls_pred (B, C, N)")
    batch, count = labels[0], anchors[1]
    dtype = types[0].dtype
    return [TensorType((batch, count * 4), dtype), TensorType((batch, count * 4), dtype),
            TensorType((batch, count), dtype)]


def _match_anchors(iou: np.ndarray, overlap_threshold: float) -> np.ndarray:
    """Each anchor's ground-truth index (-1 for none): first a greedy bipartite
    matching by the largest IoU left, then every other anchor to its best box if
    the IoU passes ``overlap_threshold``."""
    anchors, truths = iou.shape
    match = np.full(anchors, -1, dtype=np.int64)
    if truths == 0:
        return match
    free = iou.copy()
    for _ in range(min(anchors, truths)):
        a, t = np.unravel_index(np.argmax(free), free.shape)
        if free[a, t] <= 1e-6:
            break
        match[a] = t
        free[a, :] = -1.0
        free[:, t] = -1.0
    best = iou.argmax(axis=1)
    extra = (match < 0) & (iou[np.arange(anchors), best] > overlap_threshold)
    match[extra] = best[extra]
    return match


def _multibox_target(anchor, label, cls_pred, *, overlap_threshold, ignore_label,
                     negative_mining_ratio, negative_mining_thresh,
                     minimum_negative_samples, variances):
    # IoUs in the inputs' precision, as MXNet: its near-ties decide matches
    anchors = anchor.reshape(-1, 4)
    count = anchors.shape[0]
    batch = label.shape[0]
    loc_target = np.zeros((batch, count, 4))
    loc_mask = np.zeros((batch, count, 4))
    cls_target = np.zeros((batch, count))
    ax, ay, aw, ah = _center_form(anchors.astype(np.float64))
    for b in range(batch):
        rows = label[b]
        valid = 0
        while valid < rows.shape[0] and rows[valid, 0] != -1:  # padding starts at -1
            valid += 1
        truths = rows[:valid]
        iou = _iou(anchors, truths[:, 1:5]) if valid else np.zeros((count, 0))
        match = _match_anchors(iou, overlap_threshold)
        positive = match >= 0
        cls_target[b, positive] = truths[match[positive], 0] + 1
        if negative_mining_ratio > 0:
            cls_target[b, ~positive] = ignore_label
            best = iou.max(axis=1) if valid else np.zeros(count)
            candidates = np.nonzero(~positive & (best < negative_mining_thresh))[0]
            # (minimum_negative_samples changes nothing in MXNet 1.9.1's CPU kernel)
            wanted = int(positive.sum() * negative_mining_ratio)
            logits = cls_pred[b][:, candidates].astype(np.float64)
            shifted = np.exp(logits - logits.max(axis=0))
            background = shifted[0] / shifted.sum(axis=0)
            # the hardest negatives: the least background probability
            order = np.argsort(np.log(background), kind="stable")
            cls_target[b, candidates[order[:wanted]]] = 0
        gx, gy, gw, gh = _center_form(truths[match[positive], 1:5].astype(np.float64))
        loc_target[b, positive] = np.stack([
            (gx - ax[positive]) / aw[positive] / variances[0],
            (gy - ay[positive]) / ah[positive] / variances[1],
            np.log(gw / aw[positive]) / variances[2],
            np.log(gh / ah[positive]) / variances[3]], axis=-1)
        loc_mask[b, positive] = 1.0
    dtype = anchor.dtype
    return (loc_target.reshape(batch, -1).astype(dtype),
            loc_mask.reshape(batch, -1).astype(dtype), cls_target.astype(dtype))


def _target_inputs(rng):
    anchors = _multibox_prior(np.zeros((1, 1, 3, 3)), sizes=(0.4, 0.2), ratios=(1.0, 2.0),
                              clip=False, steps=(-1.0, -1.0), offsets=(0.5, 0.5))
    labels = np.full((2, 2, 5), -1.0)
    labels[0, 0] = [0, 0.1, 0.1, 0.5, 0.45]
    labels[0, 1] = [1, 0.5, 0.4, 0.9, 0.9]
    labels[1, 0] = [2, 0.2, 0.3, 0.7, 0.6]
    return [anchors, labels, rng.normal(size=(2, 4, anchors.shape[1]))]


MULTIBOX_TARGET = register(OpDef(name="_contrib_MultiBoxTarget", infer=_target_types,
                                 impl=_multibox_target,
               inputs=("anchor", "label", "cls_pred"), differentiable=False, kind="opaque",
               attrs={"overlap_threshold": Attr(as_float, 0.5),
                      "ignore_label": Attr(as_float, -1.0),
                      "negative_mining_ratio": Attr(as_float, -1.0),
                      "negative_mining_thresh": Attr(as_float, 0.5),
                      "minimum_negative_samples": Attr(as_int, 0), "variances": _VARIANCES},
               doc="SSD training targets: each anchor matched to a ground-truth box "
                   "(greedy bipartite, then IoU > overlap_threshold) gives its box "
                   "offsets, their mask and its class (0 background; hard negative "
                   "mining with negative_mining_ratio > 0).",
               test=TestSpec(make_inputs=_target_inputs, wrt=())))


def _detection_types(types, **_attrs):
    probs, loc, anchors = (t.shape for t in types)
    if len(probs) != 3 or loc != (probs[0], probs[2] * 4) or anchors[1:] != (probs[2], 4):
        raise GraphError("expected cls_prob (B, C, N), loc_pred (B, N*4), anchor (1, N, 4)")
    return [TensorType((probs[0], probs[2], 6), types[0].dtype)]


def _multibox_detection(cls_prob, loc_pred, anchor, *, clip, threshold, background_id,
                        nms_threshold, force_suppress, variances, nms_topk):
    batch, classes, count = cls_prob.shape
    anchors = anchor.reshape(-1, 4).astype(np.float64)
    ax, ay, aw, ah = _center_form(anchors)
    out = np.full((batch, count, 6), -1.0)
    for b in range(batch):
        # MXNet 1.9.1 takes class 0 as the background whatever background_id says
        probs = cls_prob[b].astype(np.float64)[1:]
        best = probs.argmax(axis=0)
        score = probs[best, np.arange(count)]
        loc = loc_pred[b].reshape(count, 4).astype(np.float64)
        cx = loc[:, 0] * variances[0] * aw + ax
        cy = loc[:, 1] * variances[1] * ah + ay
        half_w = np.exp(loc[:, 2] * variances[2]) * aw / 2
        half_h = np.exp(loc[:, 3] * variances[3]) * ah / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
        if clip:
            boxes = np.clip(boxes, 0.0, 1.0)
        valid = np.nonzero(score >= threshold)[0]
        order = valid[np.argsort(-score[valid], kind="stable")]
        rows = np.concatenate([best[order, None].astype(np.float64), score[order, None],
                               boxes[order]], axis=1)
        kept = len(rows) if nms_topk <= 0 else min(nms_topk, len(rows))
        rows[kept:, 0] = -1  # past nms_topk: dropped, their score and box still shown
        for i in range(kept):
            if rows[i, 0] < 0:
                continue
            for j in range(i + 1, kept):
                if rows[j, 0] >= 0 and (force_suppress or rows[i, 0] == rows[j, 0]) and \
                        _iou(rows[i, 2:], rows[j, 2:]) > nms_threshold:
                    rows[j, 0] = -1
        out[b, :len(rows)] = rows
    return out.astype(cls_prob.dtype)


def _detection_inputs(rng):
    anchors = _multibox_prior(np.zeros((1, 1, 3, 3)), sizes=(0.4, 0.2), ratios=(1.0, 2.0),
                              clip=False, steps=(-1.0, -1.0), offsets=(0.5, 0.5))
    logits = rng.normal(size=(2, 3, anchors.shape[1]))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [probs, rng.normal(scale=0.3, size=(2, anchors.shape[1] * 4)), anchors]


register(OpDef(name="_contrib_MultiBoxDetection", infer=_detection_types,
               impl=_multibox_detection, inputs=("cls_prob", "loc_pred", "anchor"),
               differentiable=False, kind="opaque",
               attrs={"clip": Attr(as_bool, True), "threshold": Attr(as_float, 0.01),
                      "background_id": Attr(as_int, 0), "nms_threshold": Attr(as_float, 0.5),
                      "force_suppress": Attr(as_bool, False), "variances": _VARIANCES,
                      "nms_topk": Attr(as_int, -1)},
               doc="SSD detections: each anchor's best class and decoded box, those "
                   "scoring at least ``threshold`` sorted by score, overlapping ones of "
                   "a class suppressed (class -1); rows [class, score, xmin, ymin, xmax, "
                   "ymax], -1 rows after the last detection.",
               test=TestSpec(make_inputs=_detection_inputs, wrt=(),
                             attrs={"threshold": 0.2})))


# ---------------------------------------------------------------------------
# Proposal / MultiProposal: Faster R-CNN's region proposals (pixel boxes with
# the +1 width convention of its reference code)
# ---------------------------------------------------------------------------

_PROPOSAL_ATTRS = {"rpn_pre_nms_top_n": Attr(as_int, 6000),
                   "rpn_post_nms_top_n": Attr(as_int, 300), "threshold": Attr(as_float, 0.7),
                   "rpn_min_size": Attr(as_int, 16),
                   "scales": Attr(_floats, (4.0, 8.0, 16.0, 32.0)),
                   "ratios": Attr(_floats, (0.5, 1.0, 2.0)), "feature_stride": Attr(as_int, 16),
                   "output_score": Attr(as_bool, False), "iou_loss": Attr(as_bool, False)}


def _proposal_types(types, *, rpn_post_nms_top_n, scales, ratios, **_attrs):
    scores, deltas, info = (t.shape for t in types)
    anchors = len(scales) * len(ratios)
    if len(scores) != 4 or scores[1] != 2 * anchors or deltas != (scores[0], 4 * anchors) + \
            scores[2:] or info != (scores[0], 3):
        raise GraphError(f"expected cls_prob (B, {2 * anchors}, H, W), bbox_pred (B, "
                         f"{4 * anchors}, H, W) and im_info (B, 3)")
    count = scores[0] * rpn_post_nms_top_n
    return [TensorType((count, 5), types[0].dtype), TensorType((count, 1), types[0].dtype)]


def _base_anchors(stride: int, scales, ratios) -> np.ndarray:
    """The reference anchors of one cell: every ratio, each at every scale."""
    center = 0.5 * (stride - 1)
    anchors = []
    for ratio in ratios:
        width = math.floor(math.sqrt(stride * stride / ratio) + 0.5)
        height = math.floor(width * ratio + 0.5)
        for scale in scales:
            w, h = width * scale, height * scale
            anchors.append([center - 0.5 * (w - 1), center - 0.5 * (h - 1),
                            center + 0.5 * (w - 1), center + 0.5 * (h - 1)])
    return np.array(anchors)


def _pixel_nms(boxes: np.ndarray, threshold: float, limit: int) -> list[int]:
    """Greedy NMS of score-sorted pixel boxes (areas with the +1 convention)."""
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= limit:
            break
        width = np.maximum(0.0, np.minimum(boxes[i, 2], boxes[i + 1:, 2]) -
                           np.maximum(boxes[i, 0], boxes[i + 1:, 0]) + 1)
        height = np.maximum(0.0, np.minimum(boxes[i, 3], boxes[i + 1:, 3]) -
                            np.maximum(boxes[i, 1], boxes[i + 1:, 1]) + 1)
        inter = width * height
        suppressed[i + 1:] |= inter / (areas[i] + areas[i + 1:] - inter) > threshold
    return keep


def _proposal(cls_prob, bbox_pred, im_info, *, rpn_pre_nms_top_n, rpn_post_nms_top_n,
              threshold, rpn_min_size, scales, ratios, feature_stride, output_score,
              iou_loss):
    batch, _, height, width = cls_prob.shape
    base = _base_anchors(feature_stride, scales, ratios)
    count = len(base)
    shift_y, shift_x = np.meshgrid(np.arange(height) * feature_stride,
                                   np.arange(width) * feature_stride, indexing="ij")
    shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1)  # (H, W, 4)
    anchors = (shifts[:, :, None, :] + base).reshape(-1, 4)  # cell-major, anchor last
    rois = np.zeros((batch, rpn_post_nms_top_n, 5))
    scores_out = np.zeros((batch, rpn_post_nms_top_n, 1))
    for b in range(batch):
        im_height, im_width, im_scale = (float(v) for v in im_info[b])
        scores = cls_prob[b, count:].transpose(1, 2, 0).reshape(-1).astype(np.float64)
        deltas = bbox_pred[b].reshape(count, 4, height, width).transpose(2, 3, 0, 1)
        deltas = deltas.reshape(-1, 4).astype(np.float64)
        if iou_loss:
            boxes = anchors + deltas
        else:
            widths = anchors[:, 2] - anchors[:, 0] + 1
            heights = anchors[:, 3] - anchors[:, 1] + 1
            cx = anchors[:, 0] + 0.5 * (widths - 1) + deltas[:, 0] * widths
            cy = anchors[:, 1] + 0.5 * (heights - 1) + deltas[:, 1] * heights
            w, h = np.exp(deltas[:, 2]) * widths, np.exp(deltas[:, 3]) * heights
            boxes = np.stack([cx - 0.5 * (w - 1), cy - 0.5 * (h - 1), cx + 0.5 * (w - 1),
                              cy + 0.5 * (h - 1)], axis=-1)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, im_width - 1)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, im_height - 1)
        # cells past the image (its size over the stride, truncated) score -1
        cell_y, cell_x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        outside = (cell_y >= int(im_height / feature_stride)) | \
            (cell_x >= int(im_width / feature_stride))
        scores[np.repeat(outside.reshape(-1), count)] = -1
        # boxes smaller than the minimum: score -1, grown by half the minimum each side
        min_size = rpn_min_size * im_scale
        small = ((boxes[:, 2] - boxes[:, 0] + 1 < min_size) |
                 (boxes[:, 3] - boxes[:, 1] + 1 < min_size))
        boxes[small] += np.array([-1, -1, 1, 1]) * (min_size / 2)
        scores[small] = -1
        order = np.argsort(-scores, kind="stable")
        if rpn_pre_nms_top_n > 0:
            order = order[:rpn_pre_nms_top_n]
        keep = [order[i] for i in _pixel_nms(boxes[order], threshold, rpn_post_nms_top_n)]
        for i in range(rpn_post_nms_top_n):  # too few: the kept ones again, cyclically
            index = keep[i % len(keep)]
            rois[b, i] = [b, *boxes[index]]
            scores_out[b, i] = scores[index]
    dtype = cls_prob.dtype
    return (rois.reshape(-1, 5).astype(dtype), scores_out.reshape(-1, 1).astype(dtype))


def _proposal_inputs(rng):
    return [rng.uniform(size=(2, 12, 3, 4)), rng.normal(scale=0.2, size=(2, 24, 3, 4)),
            np.array([[40.0, 60.0, 1.0], [48.0, 30.0, 0.5]])]


PROPOSAL = register(OpDef(
    name="_contrib_Proposal", aliases=("_contrib_MultiProposal",), infer=_proposal_types,
    impl=_proposal, inputs=("cls_prob", "bbox_pred", "im_info"), attrs=_PROPOSAL_ATTRS,
    visible_outputs=lambda attrs: 2 if attrs["output_score"] else 1, differentiable=False,
    kind="opaque",
    doc="Region proposals: anchors shifted over the feature map, moved by bbox_pred, "
        "clipped to the image, too small ones dropped, sorted by score, NMS; rows "
        "[batch index, x1, y1, x2, y2] (MultiProposal: any batch size).",
    test=TestSpec(make_inputs=_proposal_inputs, attrs={
        "rpn_pre_nms_top_n": 20, "rpn_post_nms_top_n": 6, "rpn_min_size": 4,
        "scales": (2.0, 4.0), "ratios": (0.5, 1.0, 2.0), "output_score": True})))


# ---------------------------------------------------------------------------
# ROIAlign: each output cell averages bilinear samples, a linear map of data
# ---------------------------------------------------------------------------

_ROI_ATTRS = {"pooled_size": Attr(as_shape), "spatial_scale": Attr(as_float),
              "sample_ratio": Attr(as_int, -1), "position_sensitive": Attr(as_bool, False),
              "aligned": Attr(as_bool, False)}


def _roi_types(types, *, pooled_size, spatial_scale, sample_ratio, position_sensitive,
               aligned):
    data, rois = types[0].shape, types[1].shape
    if len(data) != 4 or len(rois) != 2 or rois[1] != 5:
        raise GraphError("data must be NCHW and rois (R, 5)")
    if position_sensitive:
        raise GraphError("position_sensitive=True is not supported")
    return [TensorType((rois[0], data[1]) + tuple(pooled_size), types[0].dtype)]


def _bilinear_taps(y: float, x: float, height: int, width: int) -> list[tuple[int, float]]:
    """(flat index, weight) of the four pixels around (y, x), as ROIAlign samples."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return [(y_low * width + x_low, hy * hx), (y_low * width + x_high, hy * lx),
            (y_high * width + x_low, ly * hx), (y_high * width + x_high, ly * lx)]


def _roi_weights(rois, height, width, *, pooled_size, spatial_scale, sample_ratio,
                 aligned, **_):
    """(R, ph*pw, H*W) weights: output cell k of roi r is weights[r, k] . image."""
    pooled_h, pooled_w = pooled_size
    weights = np.zeros((rois.shape[0], pooled_h * pooled_w, height * width))
    offset = 0.5 if aligned else 0.0
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        start_w, start_h = roi[1] * spatial_scale - offset, roi[2] * spatial_scale - offset
        roi_w = roi[3] * spatial_scale - offset - start_w
        roi_h = roi[4] * spatial_scale - offset - start_h
        if not aligned:  # MXNet's legacy boxes are at least one pixel
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sample_ratio if sample_ratio > 0 else int(math.ceil(roi_h / pooled_h))
        grid_w = sample_ratio if sample_ratio > 0 else int(math.ceil(roi_w / pooled_w))
        count = max(grid_h * grid_w, 1)
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                cell = weights[r, ph * pooled_w + pw]
                for iy in range(grid_h):
                    y = start_h + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        for flat, weight in _bilinear_taps(y, x, height, width):
                            cell[flat] += weight / count
    return weights


def _roi_align(data, rois, **attrs):
    n, c, h, w = data.shape
    weights = _roi_weights(rois, h, w, **attrs).astype(data.dtype)
    images = data.reshape(n, c, h * w)[np.clip(rois[:, 0].astype(np.int64), 0, n - 1)]
    out = np.einsum("rkp,rcp->rck", weights, images)
    return out.reshape((rois.shape[0], c) + tuple(attrs["pooled_size"])).astype(data.dtype)


def roi_align_grad(g, data, rois, *, out, **attrs):
    """each cell's gradient spread back over the pixels it sampled; none for rois"""
    return F._backward_contrib_ROIAlign(g, rois, data, **attrs), None


register(OpDef(name="_contrib_ROIAlign", infer=_roi_types, impl=_roi_align,
               grad=roi_align_grad, inputs=("data", "rois"), attrs=_ROI_ATTRS,
               kind="opaque",
               doc="Region-of-interest pooling by averaged bilinear samples (rois rows: "
                   "batch index, x1, y1, x2, y2).\n\nGradient\n--------\nW^T g for data (W "
                   "the sampling weights); none for rois",
               test=TestSpec(make_inputs=lambda rng: [
                   rng.uniform(-2, 2, (2, 2, 5, 6)),
                   np.array([[0, 0.5, 0.5, 3.7, 4.1], [1, 1.2, 0.3, 5.0, 2.5]])],
                   attrs={"pooled_size": (2, 3), "spatial_scale": 1.0, "sample_ratio": 2},
                   wrt=(0,))))


def _roi_back_types(types, **_attrs):
    return [TensorType(types[2].shape, types[0].dtype)]


def _roi_back(g, rois, like, **attrs):
    n, c, h, w = like.shape
    weights = _roi_weights(rois, h, w, **attrs).astype(g.dtype)
    cells = g.reshape(g.shape[0], c, -1)
    out = np.zeros((n, c, h * w), dtype=g.dtype)
    np.add.at(out, np.clip(rois[:, 0].astype(np.int64), 0, n - 1),
              np.einsum("rkp,rck->rcp", weights, cells))
    return out.reshape(like.shape)


def roi_back_grad(gg, g, rois, like, *, out, **attrs):
    """ROIAlign of gg"""
    return F._contrib_ROIAlign(gg, rois, **attrs), None, None


register(OpDef(name="_backward_contrib_ROIAlign", infer=_roi_back_types, impl=_roi_back,
               grad=roi_back_grad, inputs=("grad", "rois", "data"), shape_only=(2,),
               attrs=_ROI_ATTRS, kind="opaque",
               doc="The adjoint of ROIAlign: cell gradients back onto data's pixels.",
               test=TestSpec(make_inputs=lambda rng: [
                   rng.uniform(-2, 2, (2, 2, 2, 3)),
                   np.array([[0, 0.5, 0.5, 3.7, 4.1], [1, 1.2, 0.3, 5.0, 2.5]]),
                   np.zeros((2, 2, 5, 6))],
                   attrs={"pooled_size": (2, 3), "spatial_scale": 1.0}, wrt=(0,))))


# ---------------------------------------------------------------------------
# DeformableConvolution: each kernel tap samples the input (bilinearly) at its
# place moved by a learned offset
# ---------------------------------------------------------------------------

_DCN_ATTRS = {**CONV_GEOMETRY, "num_deformable_group": Attr(as_int, 1),
              "no_bias": Attr(as_bool, False), "layout": BACKEND_HINTS["layout"]}
# (im2col_step only batches MXNet's own work)
_MODULATED_ATTRS = {**_DCN_ATTRS, "im2col_step": Attr(as_int, 64)}


def _dcn_inputs(attrs: dict) -> tuple[str, ...]:
    base = ("data", "offset", "weight")
    return base if attrs.get("no_bias") else base + ("bias",)


def _modulated_inputs(attrs: dict) -> tuple[str, ...]:
    base = ("data", "offset", "mask", "weight")
    return base if attrs.get("no_bias") else base + ("bias",)


def _dcn_geometry(data_shape, kernel, stride, dilate, pad):
    kernel, stride, dilate, pad = _spatial(kernel, stride, dilate, pad, 2)
    out = tuple(conv_out_size(data_shape[2 + a], kernel[a], stride[a], dilate[a], pad[a])
                for a in range(2))
    return kernel, stride, dilate, pad, out


def _check_dcn(data, offset, mask, weight, bias, *, kernel, stride, dilate, pad, num_filter,
               num_group, num_deformable_group, no_bias, **_attrs):
    if len(data) != 4:
        raise GraphError("deformable convolutions take NCHW data only")
    kernel, _, _, _, out = _dcn_geometry(data, kernel, stride, dilate, pad)
    taps = kernel[0] * kernel[1] * num_deformable_group
    if offset != (data[0], 2 * taps) + out:
        raise GraphError(f"offset must be {(data[0], 2 * taps) + out}")
    if mask is not None and mask != (data[0], taps) + out:
        raise GraphError(f"mask must be {(data[0], taps) + out}")
    if weight != (num_filter, data[1] // num_group) + kernel or data[1] % num_group or \
            data[1] % num_deformable_group:
        raise GraphError(f"weight must be {(num_filter, data[1] // num_group) + kernel}")
    if not no_bias and bias != (num_filter,):
        raise GraphError(f"bias must be ({num_filter},)")
    return (data[0], num_filter) + out


def _dcn_types(types, **attrs):
    shapes = [t.shape for t in types] + [None]
    return [TensorType(_check_dcn(shapes[0], shapes[1], None, shapes[2], shapes[3], **attrs),
                       types[0].dtype)]


def _modulated_types(types, **attrs):
    shapes = [t.shape for t in types] + [None]
    return [TensorType(_check_dcn(*shapes[:5], **attrs), types[0].dtype)]


def _dcn_samples(data_shape, offset, kernel, stride, dilate, pad, out, groups, clamp):
    """Sampling places of every tap (N, groups, K, Ho, Wo) as MXNet's deformable
    im2col: the fractions (ly, lx), and for the four neighbours their flat indices,
    validity and bilinear weights.

    ``clamp`` (DeformableConvolution): a place outside [0, H) x [0, W) reads zero,
    one in the last row or column reads it. Otherwise (the modulated version):
    places within a pixel of the image read it zero-padded."""
    height, width = data_shape[2], data_shape[3]
    rows = np.arange(out[0]) * stride[0] - pad[0]
    cols = np.arange(out[1]) * stride[1] - pad[1]
    tap_y = (np.arange(kernel[0]) * dilate[0]).repeat(kernel[1])
    tap_x = np.tile(np.arange(kernel[1]) * dilate[1], kernel[0])
    moves = offset.reshape(offset.shape[0], groups, -1, 2, *out).astype(np.float64)
    y = rows[None, None, None, :, None] + tap_y[None, None, :, None, None] + moves[:, :, :, 0]
    x = cols[None, None, None, None, :] + tap_x[None, None, :, None, None] + moves[:, :, :, 1]
    if clamp:
        inside = (y >= 0) & (x >= 0) & (y < height) & (x < width)
    else:
        inside = (y > -1) & (x > -1) & (y < height) & (x < width)

    def axis(place, size):
        low = np.floor(place)
        if not clamp:
            return low, low + 1, place - low
        low = np.clip(low, 0, size - 1)
        last = low >= size - 1
        return low, np.where(last, low, low + 1), np.where(last, 0.0, place - low)

    y0, y1, ly = axis(y, height)
    x0, x1, lx = axis(x, width)
    corners = []
    for cy, cx, weight in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x1, (1 - ly) * lx),
                           (y1, x0, ly * (1 - lx)), (y1, x1, ly * lx)):
        valid = inside & (cy >= 0) & (cx >= 0) & (cy <= height - 1) & (cx <= width - 1)
        index = (np.clip(cy, 0, height - 1) * width + np.clip(cx, 0, width - 1)).astype(np.int64)
        corners.append((index, valid, weight))
    return (ly, lx), inside, corners


def _gather_corners(data, corners, groups):
    """Each neighbour's value (zero where not valid): 4 x (N, G, C/G, K, Ho, Wo)."""
    n, channels = data.shape[:2]
    flat = data.reshape(n, groups, channels // groups, -1).astype(np.float64)
    values = []
    for index, valid, _ in corners:
        picked = np.take_along_axis(flat, index.reshape(n, groups, 1, -1), axis=3)
        values.append(picked.reshape(n, groups, channels // groups, *index.shape[2:]) *
                      valid[:, :, None])
    return values


def _deformable(data, offset, mask, weight, bias, attrs, clamp):
    """Forward of both deformable convolutions; also the sampled columns
    (N, G, C/G, K, Ho, Wo) before the mask and the sampling, for the backward."""
    groups, num_group, num_filter = (attrs["num_deformable_group"], attrs["num_group"],
                                     attrs["num_filter"])
    kernel, stride, dilate, pad, out = _dcn_geometry(data.shape, attrs["kernel"],
                                                     attrs["stride"], attrs["dilate"],
                                                     attrs["pad"])
    fractions, inside, corners = _dcn_samples(data.shape, offset, kernel, stride, dilate, pad,
                                              out, groups, clamp)
    values = _gather_corners(data, corners, groups)
    columns = sum(v * w[:, :, None] for v, (_, _, w) in zip(values, corners))
    masked = columns if mask is None else \
        columns * mask.reshape(mask.shape[0], groups, 1, -1, *out).astype(np.float64)
    n, channels = data.shape[:2]
    filters = weight.reshape(num_group, num_filter // num_group, channels // num_group,
                             -1).astype(np.float64)
    result = np.einsum("gfck,ngckhw->ngfhw", filters,
                       masked.reshape(n, num_group, channels // num_group, -1, *out))
    result = result.reshape(n, num_filter, *out)
    if bias is not None:
        result = result + bias.reshape(1, -1, 1, 1)
    sampling = (fractions, inside, corners, values, columns, filters, out)
    return result.astype(data.dtype), sampling


def _deformable_backward(g, data, offset, mask, weight, attrs, clamp):
    """Gradients of data, offset, (mask,) weight."""
    _, ((ly, lx), inside, corners, values, columns, filters, out) = _deformable(
        data, offset, mask, weight, None, attrs, clamp)
    groups, num_group, num_filter = (attrs["num_deformable_group"], attrs["num_group"],
                                     attrs["num_filter"])
    n, channels, height, width = data.shape
    grad = g.reshape(n, num_group, num_filter // num_group, *out).astype(np.float64)
    scale = 1.0 if mask is None else \
        mask.reshape(n, groups, 1, -1, *out).astype(np.float64)
    masked = (columns * scale).reshape(n, num_group, channels // num_group, -1, *out)
    grad_weight = np.einsum("ngfhw,ngckhw->gfck", grad, masked).reshape(weight.shape)
    grad_columns = np.einsum("gfck,ngfhw->ngckhw", filters, grad).reshape(columns.shape)
    grad_sampled = grad_columns * scale  # what reaches the bilinear samples
    grad_data = np.zeros((n, groups, channels // groups, height * width))
    per_group = channels // groups
    for index, valid, weight_corner in corners:
        share = grad_sampled * (weight_corner * valid)[:, :, None]
        targets = np.broadcast_to(index[:, :, None], share.shape)
        for b in range(n):
            for d in range(groups):
                np.add.at(grad_data[b, d], (np.arange(per_group)[:, None],
                                            targets[b, d].reshape(per_group, -1)),
                          share[b, d].reshape(per_group, -1))
    v00, v01, v10, v11 = values
    ly, lx = ly[:, :, None], lx[:, :, None]
    slope_y = (1 - lx) * (v10 - v00) + lx * (v11 - v01)
    slope_x = (1 - ly) * (v01 - v00) + ly * (v11 - v10)
    live = inside[:, :, None]
    grad_offset = np.stack([(grad_sampled * slope_y * live).sum(axis=2),
                            (grad_sampled * slope_x * live).sum(axis=2)], axis=3)
    grads = [grad_data.reshape(data.shape), grad_offset.reshape(offset.shape)]
    if mask is not None:
        grads.append((grad_columns * columns).sum(axis=2).reshape(mask.shape))
    grads.append(grad_weight)
    return tuple(x.astype(g.dtype) for x in grads)


def _dcn_forward(data, offset, weight, *bias, **attrs):
    return _deformable(data, offset, None, weight, bias[0] if bias else None, attrs, True)[0]


def _modulated_forward(data, offset, mask, weight, *bias, **attrs):
    return _deformable(data, offset, mask, weight, bias[0] if bias else None, attrs, False)[0]


def _deformable_grad(backward_op: str, num_inputs: int):
    def grad(g, *inputs, out, **attrs):
        grads = getattr(F, backward_op)(g, *inputs[:num_inputs], **attrs)
        bias_grad = (F.sum(g, axis=(0, 2, 3)),) if len(inputs) > num_inputs else ()
        return (*grads, *bias_grad)

    grad.__doc__ = ("data and offset (and mask) through the bilinear sampling, weight "
                    "against the sampled columns, in one backward op; bias: g summed")
    return grad


def _dcn_test_inputs(rng, modulated):
    arrays = [rng.uniform(-2, 2, (2, 4, 5, 6)), rng.uniform(-1.3, 1.3, (2, 36, 3, 3))]
    if modulated:
        arrays.append(rng.uniform(0, 1, (2, 18, 3, 3)))
    return arrays + [rng.uniform(-1, 1, (4, 2, 3, 3)), rng.uniform(-1, 1, (4,))]


_DCN_TEST_ATTRS = {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1), "num_filter": 4,
                   "num_group": 2, "num_deformable_group": 2}
_DCN_DOC = ("\n\nGradient\n--------\ndata: the sampling's bilinear weights times the "
            "columns' gradient; offset: the interpolation's slope; weight: g against the "
            "sampled columns; bias: g summed")

register(OpDef(name="_contrib_DeformableConvolution", infer=_dcn_types, impl=_dcn_forward,
               grad=_deformable_grad("_backward_contrib_DeformableConvolution", 3),
               inputs=_dcn_inputs, attrs=_DCN_ATTRS, kind="opaque",
               doc="Deformable convolution (NCHW): each kernel tap reads the input at its "
                   "place plus a learned offset, bilinearly (MXNet's sampling: zero outside "
                   "the image, the last row and column clamped)." + _DCN_DOC,
               test=TestSpec(make_inputs=lambda rng: _dcn_test_inputs(rng, False),
                             attrs=_DCN_TEST_ATTRS, order=1)))
register(OpDef(name="_contrib_ModulatedDeformableConvolution", infer=_modulated_types,
               impl=_modulated_forward,
               grad=_deformable_grad("_backward_contrib_ModulatedDeformableConvolution", 4),
               inputs=_modulated_inputs, attrs=_MODULATED_ATTRS, kind="opaque",
               doc="Modulated deformable convolution (DCNv2): each tap's sample, taken "
                   "zero-padded within a pixel of the image, is scaled by its mask."
                   + _DCN_DOC + "; mask: the columns' gradient times the samples",
               test=TestSpec(make_inputs=lambda rng: _dcn_test_inputs(rng, True),
                             attrs=_DCN_TEST_ATTRS, order=1)))


def _dcn_back_types(types, **_attrs):
    return [TensorType(t.shape, types[0].dtype) for t in types[1:]]


register(OpDef(name="_backward_contrib_DeformableConvolution", infer=_dcn_back_types,
               impl=lambda g, data, offset, weight, **attrs: _deformable_backward(
                   g, data, offset, None, weight, attrs, True),
               inputs=("grad", "data", "offset", "weight"), attrs=_DCN_ATTRS,
               differentiable=False, kind="opaque",
               doc="The gradients of DeformableConvolution's data, offset and weight.",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-1, 1, (2, 4, 3, 3))] +
                             _dcn_test_inputs(rng, False)[:2] +
                             [rng.uniform(-1, 1, (4, 2, 3, 3))], attrs=_DCN_TEST_ATTRS)))
register(OpDef(name="_backward_contrib_ModulatedDeformableConvolution",
               infer=_dcn_back_types,
               impl=lambda g, data, offset, mask, weight, **attrs: _deformable_backward(
                   g, data, offset, mask, weight, attrs, False),
               inputs=("grad", "data", "offset", "mask", "weight"), attrs=_MODULATED_ATTRS,
               differentiable=False, kind="opaque",
               doc="The gradients of ModulatedDeformableConvolution's data, offset, mask "
                   "and weight.",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-1, 1, (2, 4, 3, 3))] +
                             _dcn_test_inputs(rng, True)[:3] +
                             [rng.uniform(-1, 1, (4, 2, 3, 3))], attrs=_DCN_TEST_ATTRS)))


# ---------------------------------------------------------------------------
# RROIAlign: ROIAlign over rotated boxes (text detection); no gradient in MXNet
# ---------------------------------------------------------------------------

def _rroi_types(types, *, pooled_size, spatial_scale, sampling_ratio):
    data, rois = types[0].shape, types[1].shape
    if len(data) != 4 or len(rois) != 2 or rois[1] != 6:
        raise GraphError("data must be NCHW and rois (R, 6): batch, cx, cy, w, h, degrees")
    return [TensorType((rois[0], data[1]) + tuple(pooled_size), types[0].dtype)]


def _rroi_align(data, rois, *, pooled_size, spatial_scale, sampling_ratio):
    n, channels, height, width = data.shape
    pooled_h, pooled_w = pooled_size
    out = np.zeros((rois.shape[0], channels, pooled_h * pooled_w))
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        cx, cy = roi[1] * spatial_scale, roi[2] * spatial_scale
        roi_w, roi_h = max(roi[3] * spatial_scale, 1.0), max(roi[4] * spatial_scale, 1.0)
        cos, sin = math.cos(math.radians(roi[5])), math.sin(math.radians(roi[5]))
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_h / pooled_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_w / pooled_w))
        count = max(grid_h * grid_w, 1)
        weights = np.zeros((pooled_h * pooled_w, height * width))
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                for iy in range(grid_h):
                    yy = -roi_h / 2 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                    for ix in range(grid_w):
                        xx = -roi_w / 2 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        x, y = xx * cos + yy * sin + cx, yy * cos - xx * sin + cy
                        for flat, weight in _bilinear_taps(y, x, height, width):
                            weights[ph * pooled_w + pw, flat] += weight / count
        image = data[min(max(int(roi[0]), 0), n - 1)].reshape(channels, -1)
        out[r] = image.astype(np.float64) @ weights.T
    return out.reshape((rois.shape[0], channels, pooled_h, pooled_w)).astype(data.dtype)


register(OpDef(name="_contrib_RROIAlign", infer=_rroi_types, impl=_rroi_align,
               inputs=("data", "rois"), differentiable=False, kind="opaque",
               attrs={"pooled_size": Attr(as_shape), "spatial_scale": Attr(as_float),
                      "sampling_ratio": Attr(as_int, -1)},
               doc="ROIAlign over rotated boxes (rows: batch index, centre x, centre y, "
                   "width, height, angle in degrees); MXNet defines no gradient.",
               test=TestSpec(make_inputs=lambda rng: [
                   rng.uniform(-2, 2, (2, 2, 6, 8)),
                   np.array([[0, 3, 2.5, 4, 2, 0], [1, 4, 3, 4, 2, 90],
                             [0, 3.5, 3, 5, 3, 30]])],
                   attrs={"pooled_size": (2, 2), "spatial_scale": 1.0,
                          "sampling_ratio": 2})))


# ---------------------------------------------------------------------------
# PSROIPooling: position-sensitive average pooling (R-FCN)
# ---------------------------------------------------------------------------

_PSROI_ATTRS = {"spatial_scale": Attr(as_float), "output_dim": Attr(as_int),
                "pooled_size": Attr(as_int), "group_size": Attr(as_int, 0)}


def _psroi_types(types, *, spatial_scale, output_dim, pooled_size, group_size):
    data, rois = types[0].shape, types[1].shape
    group = group_size or pooled_size
    if len(data) != 4 or len(rois) != 2 or rois[1] != 5 or \
            data[1] != output_dim * group * group:
        raise GraphError(f"expected data (N, {output_dim * group * group}, H, W) and rois "
                         "(R, 5)")
    return [TensorType((rois[0], output_dim, pooled_size, pooled_size), types[0].dtype)]


def _c_round(value: float) -> float:
    return math.floor(value + 0.5) if value >= 0 else math.ceil(value - 0.5)


def _psroi_bins(rois, height, width, *, spatial_scale, output_dim, pooled_size, group_size):
    """For each roi, output channel and bin: (input channel, h0, h1, w0, w1), the
    rectangle its average is taken over (empty when h1 <= h0 or w1 <= w0)."""
    group = group_size or pooled_size
    for r, roi in enumerate(np.asarray(rois, dtype=np.float64)):
        start_w, start_h = _c_round(roi[1]) * spatial_scale, _c_round(roi[2]) * spatial_scale
        end_w = (_c_round(roi[3]) + 1.0) * spatial_scale
        end_h = (_c_round(roi[4]) + 1.0) * spatial_scale
        bin_h = max(end_h - start_h, 0.1) / pooled_size
        bin_w = max(end_w - start_w, 0.1) / pooled_size
        for ph in range(pooled_size):
            h0 = min(max(math.floor(ph * bin_h + start_h), 0), height)
            h1 = min(max(math.ceil((ph + 1) * bin_h + start_h), 0), height)
            gh = min(max(ph * group // pooled_size, 0), group - 1)
            for pw in range(pooled_size):
                w0 = min(max(math.floor(pw * bin_w + start_w), 0), width)
                w1 = min(max(math.ceil((pw + 1) * bin_w + start_w), 0), width)
                gw = min(max(pw * group // pooled_size, 0), group - 1)
                for top in range(output_dim):
                    yield r, top, ph, pw, (top * group + gh) * group + gw, h0, h1, w0, w1


def _psroi_pool(data, rois, **attrs):
    out = np.zeros(_psroi_types([TensorType(data.shape, data.dtype),
                                 TensorType(rois.shape, rois.dtype)], **attrs)[0].shape)
    batch = np.clip(rois[:, 0].astype(np.int64), 0, data.shape[0] - 1)
    for r, top, ph, pw, c, h0, h1, w0, w1 in _psroi_bins(rois, *data.shape[2:], **attrs):
        if h1 > h0 and w1 > w0:
            out[r, top, ph, pw] = data[batch[r], c, h0:h1, w0:w1].astype(np.float64).mean()
    return out.astype(data.dtype)


def psroi_pool_grad(g, data, rois, *, out, **attrs):
    """each bin's gradient spread evenly over its rectangle; none for rois"""
    return F._backward_contrib_PSROIPooling(g, rois, data, **attrs), None


def _psroi_inputs(rng):
    return [rng.uniform(-2, 2, (2, 8, 6, 7)),
            np.array([[0, 0.4, 1.0, 4.6, 5.2], [1, 2.0, 0.0, 6.0, 3.0], [0, 5.0, 4.0, 5.0, 4.0]])]


register(OpDef(name="_contrib_PSROIPooling", infer=_psroi_types, impl=_psroi_pool,
               grad=psroi_pool_grad, inputs=("data", "rois"), attrs=_PSROI_ATTRS,
               kind="opaque",
               doc="Position-sensitive ROI average pooling: bin (i, j) of output channel "
                   "k averages input channel (k * group + i') * group + j'.\n\nGradient"
                   "\n--------\neach bin's gradient over its rectangle, divided by its "
                   "area; none for rois",
               test=TestSpec(make_inputs=_psroi_inputs, wrt=(0,), attrs={
                   "spatial_scale": 0.5, "output_dim": 2, "pooled_size": 2})))


def _psroi_back_types(types, **_attrs):
    return [TensorType(types[2].shape, types[0].dtype)]


def _psroi_back(g, rois, like, **attrs):
    out = np.zeros(like.shape, dtype=np.float64)
    batch = np.clip(rois[:, 0].astype(np.int64), 0, like.shape[0] - 1)
    for r, top, ph, pw, c, h0, h1, w0, w1 in _psroi_bins(rois, *like.shape[2:], **attrs):
        if h1 > h0 and w1 > w0:
            out[batch[r], c, h0:h1, w0:w1] += g[r, top, ph, pw] / ((h1 - h0) * (w1 - w0))
    return out.astype(g.dtype)


def psroi_back_grad(gg, g, rois, like, *, out, **attrs):
    """PSROIPooling of gg"""
    return F._contrib_PSROIPooling(gg, rois, **attrs), None, None


register(OpDef(name="_backward_contrib_PSROIPooling", infer=_psroi_back_types,
               impl=_psroi_back, grad=psroi_back_grad, inputs=("grad", "rois", "data"),
               shape_only=(2,), attrs=_PSROI_ATTRS, kind="opaque",
               doc="The adjoint of PSROIPooling.",
               test=TestSpec(make_inputs=lambda rng: [
                   rng.uniform(-2, 2, (3, 2, 2, 2)), _psroi_inputs(rng)[1],
                   np.zeros((2, 8, 6, 7))], wrt=(0,),
                   attrs={"spatial_scale": 0.5, "output_dim": 2, "pooled_size": 2})))


# ---------------------------------------------------------------------------
# boxes: box_iou, box_nms, bipartite_matching
# ---------------------------------------------------------------------------

def _corners(boxes: np.ndarray, box_format: str) -> np.ndarray:
    """Boxes (..., 4) as corners xmin, ymin, xmax, ymax."""
    if box_format == "corner":
        return boxes
    x, y, w, h = np.moveaxis(boxes, -1, 0)
    return np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=-1)


def _centers(boxes: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = np.moveaxis(boxes, -1, 0)
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def _iou(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """IoU of every corner box in lhs (..., 4) with every one in rhs (..., 4)."""
    a = lhs.reshape(lhs.shape[:-1] + (1,) * (rhs.ndim - 1) + (4,))
    width = np.minimum(a[..., 2], rhs[..., 2]) - np.maximum(a[..., 0], rhs[..., 0])
    height = np.minimum(a[..., 3], rhs[..., 3]) - np.maximum(a[..., 1], rhs[..., 1])
    inter = np.maximum(width, 0) * np.maximum(height, 0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (rhs[..., 2] - rhs[..., 0]) * (rhs[..., 3] - rhs[..., 1])
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _box_iou_types(types, *, format):
    lhs, rhs = types[0].shape, types[1].shape
    if lhs[-1:] != (4,) or rhs[-1:] != (4,):
        raise GraphError("boxes must have 4 coordinates on the last axis")
    return [TensorType(lhs[:-1] + rhs[:-1], types[0].dtype)]


def _box_iou(lhs, rhs, *, format):
    return _iou(_corners(lhs, format), _corners(rhs, format)).astype(lhs.dtype)


register(OpDef(name="_contrib_box_iou", infer=_box_iou_types, impl=_box_iou,
               inputs=("lhs", "rhs"), attrs={"format": Attr(one_of("corner", "center"),
                                                            "corner")},
               differentiable=False,
               doc="Intersection over union of every lhs box with every rhs box "
                   "(MXNet's gradient is zero).",
               test=TestSpec(make_inputs=lambda rng: [
                   np.array([[0, 0, 2, 2], [1, 1, 3, 3.5]]),
                   np.array([[[0, 0, 1, 1], [0.5, 0.5, 2, 2]]])])))

_NMS_ATTRS = {"overlap_thresh": Attr(as_float, 0.5), "valid_thresh": Attr(as_float, 0.0),
              "topk": Attr(as_int, -1), "coord_start": Attr(as_int, 2),
              "score_index": Attr(as_int, 1), "id_index": Attr(as_int, -1),
              "background_id": Attr(as_int, -1), "force_suppress": Attr(as_bool, False),
              "in_format": Attr(one_of("corner", "center"), "corner"),
              "out_format": Attr(one_of("corner", "center"), "corner")}


def _box_nms_types(types, **_attrs):
    shape = types[0].shape
    if len(shape) < 2:
        raise GraphError("data must be (..., num_boxes, box_width)")
    return [types[0], TensorType(shape[:-1], types[0].dtype)]


def _nms_keep(batch: np.ndarray, attrs: dict) -> list[int]:
    """Indices of the boxes of one batch kept by NMS, best score first."""
    score, ident, start = attrs["score_index"], attrs["id_index"], attrs["coord_start"]
    valid = batch[:, score] > attrs["valid_thresh"]
    if attrs["background_id"] >= 0 and ident >= 0:
        valid &= batch[:, ident] != attrs["background_id"]
    order = [int(i) for i in np.argsort(-batch[:, score], kind="stable") if valid[i]]
    if attrs["topk"] > 0:
        order = order[:attrs["topk"]]
    corners = _corners(batch[:, start:start + 4].astype(np.float64), attrs["in_format"])
    kept: list[int] = []
    for i in order:
        suppressed = False
        for j in kept:
            same_class = attrs["force_suppress"] or ident < 0 or batch[i, ident] == batch[j, ident]
            if same_class and _iou(corners[j], corners[i]) > attrs["overlap_thresh"]:
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return kept


def _box_nms(data, **attrs):
    batches = data.reshape((-1,) + data.shape[-2:])
    out = np.full_like(batches, -1)
    where = np.full(batches.shape[:2], -1, dtype=data.dtype)
    start = attrs["coord_start"]
    for b, batch in enumerate(batches):
        kept = _nms_keep(batch, attrs)
        out[b, :len(kept)] = batch[kept]
        where[b, :len(kept)] = kept
        if kept and attrs["in_format"] != attrs["out_format"]:
            coords = batch[kept, start:start + 4].astype(np.float64)
            converted = _centers(coords) if attrs["out_format"] == "center" else \
                _corners(coords, "center")
            out[b, :len(kept), start:start + 4] = converted
    return out.reshape(data.shape), where.reshape(data.shape[:-1])


def box_nms_grad(g, data, *, out, **attrs):
    """each kept box's gradient row moved back to the box's input row"""
    return F._backward_contrib_box_nms(g[0], out[1], data)


BOX_NMS = register(OpDef(name="_contrib_box_nms", aliases=("_contrib_box_non_maximum_suppression",),
               infer=_box_nms_types, impl=_box_nms, grad=box_nms_grad, attrs=_NMS_ATTRS,
               visible_outputs=1, kind="opaque",
               doc="Non-maximum suppression: boxes sorted by score, overlapping ones "
                   "(IoU > overlap_thresh) dropped, the rest of the rows -1.\n\nGradient\n"
                   "--------\nthe output rows' gradients back at their input rows",
               test=TestSpec(make_inputs=lambda rng: [np.array(
                   [[0, 0.5, 0.1, 0.1, 0.2, 0.2], [1, 0.4, 0.1, 0.1, 0.2, 0.2],
                    [0, 0.3, 0.1, 0.1, 0.14, 0.14], [0, 0.6, 0.5, 0.5, 0.7, 0.8]])
                   + rng.uniform(0, 1e-3, (4, 6)) * [0, 1, 0, 0, 0, 0]],
                   attrs={"overlap_thresh": 0.1}, order=1)))


def _nms_back_types(types):
    return [TensorType(types[2].shape, types[0].dtype)]


def _nms_back(g, where, like):
    rows = g.reshape((-1,) + g.shape[-2:])
    index = where.reshape(rows.shape[:2]).astype(np.int64)
    out = np.zeros(rows.shape, dtype=g.dtype)
    for b in range(rows.shape[0]):
        kept = index[b] >= 0
        out[b, index[b][kept]] = rows[b][kept]
    return out.reshape(like.shape)


register(OpDef(name="_backward_contrib_box_nms", infer=_nms_back_types, impl=_nms_back,
               inputs=("grad", "index", "data"), shape_only=(2,), differentiable=False,
               kind="opaque",
               doc="box_nms's gradient: rows of grad moved to the input rows in index.",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-2, 2, (3, 2)),
                                                      np.array([2.0, 0.0, -1.0]),
                                                      np.zeros((3, 2))])))


def _matching_types(types, *, is_ascend, threshold, topk):
    shape = types[0].shape
    if len(shape) < 2:
        raise GraphError("data must be (..., N, M)")
    return [TensorType(shape[:-1], types[0].dtype),
            TensorType(shape[:-2] + shape[-1:], types[0].dtype)]


def _bipartite_matching(data, *, is_ascend, threshold, topk):
    scores = data.reshape((-1,) + data.shape[-2:])
    rows = np.full(scores.shape[:2], -1, dtype=data.dtype)
    cols = np.full((scores.shape[0], scores.shape[2]), -1, dtype=data.dtype)
    width = scores.shape[2]
    for b, matrix in enumerate(scores):
        flat = matrix.ravel()
        order = np.argsort(flat if is_ascend else -flat, kind="stable")
        matched = 0
        for k in order:
            if topk > 0 and matched > topk:
                break  # MXNet 1.9.1 stops only once topk + 1 pairs are matched
            value = flat[k]
            if (value >= threshold) if is_ascend else (value <= threshold):
                break
            i, j = divmod(int(k), width)
            if rows[b, i] < 0 and cols[b, j] < 0:
                rows[b, i], cols[b, j] = j, i
                matched += 1
    return rows.reshape(data.shape[:-1]), cols.reshape(data.shape[:-2] + data.shape[-1:])


MATCHING = register(OpDef(name="_contrib_bipartite_matching", infer=_matching_types,
               impl=_bipartite_matching, differentiable=False, kind="opaque",
               attrs={"is_ascend": Attr(as_bool, False), "threshold": Attr(as_float),
                      "topk": Attr(as_int, -1)},
               doc="Greedy bipartite matching of a score matrix (best score first): each "
                   "row's matched column and each column's row, -1 if none.",
               test=TestSpec(shapes=((2, 3, 4),), attrs={"threshold": 1e-12})))


# ---------------------------------------------------------------------------
# interleaved attention matmuls (GluonNLP's BERT and Transformer)
# ---------------------------------------------------------------------------
# The projections arrive interleaved per head: (length, batch, heads * parts * d)
# with parts q, k, v (self-attention) or k, v (encoder-decoder). Each op is a
# reshape, a transpose and a batched matmul; its gradient rule rebuilds that
# composition from registered ops and differentiates it, so the numpy
# implementation and the gradient are checked against each other by the
# generated finite-difference tests.

def _split_heads_numpy(x, heads, parts, part):
    length, batch, width = x.shape
    depth = width // (heads * parts)
    picked = x.reshape(length, batch, heads, parts, depth)[:, :, :, part]
    return picked.transpose(1, 2, 0, 3).reshape(batch * heads, length, depth)


def _split_heads(x, heads, parts, part):
    """The numpy split above, on graph handles."""
    length, batch, width = x.shape
    depth = width // (heads * parts)
    five = F.Reshape(x, shape=(length, batch, heads, parts, depth))
    picked = F.Reshape(F.slice_axis(five, axis=3, begin=part, end=part + 1),
                       shape=(length, batch, heads, depth))
    return F.Reshape(F.transpose(picked, axes=(1, 2, 0, 3)),
                     shape=(batch * heads, length, depth))


def _merge_heads_numpy(x, heads, length, batch):
    depth = x.shape[-1]
    return x.reshape(batch, heads, length, depth).transpose(2, 0, 1, 3).reshape(
        length, batch, heads * depth)


def _merge_heads(x, heads, length, batch):
    depth = x.shape[-1]
    four = F.Reshape(x, shape=(batch, heads, length, depth))
    return F.Reshape(F.transpose(four, axes=(2, 0, 1, 3)), shape=(length, batch, heads * depth))


def _composite_grad(build):
    """A gradient rule: differentiate ``build(*inputs, **attrs)``, the op's
    forward made of registered ops, seeded with g."""

    def grad(g, *inputs, out, **attrs):
        from ..autodiff import differentiate
        result = build(*inputs, **attrs)
        entries = differentiate([result.entry], [g.entry], [x.entry for x in inputs])
        return tuple(None if e is None else Expr(e) for e in entries)

    grad.__doc__ = f"the gradient of {build.__doc__}"
    return grad


def _check_width(shape, heads, parts):
    if len(shape) != 3 or shape[2] % (heads * parts):
        raise GraphError(f"expected (length, batch, heads * {parts} * d), got {shape}")
    return shape[2] // (heads * parts)


def _selfatt_qk_types(types, *, heads):
    length, batch, _ = types[0].shape
    _check_width(types[0].shape, heads, 3)
    return [TensorType((batch * heads, length, length), types[0].dtype)]


def _selfatt_qk(qkv, *, heads):
    q = _split_heads_numpy(qkv, heads, 3, 0)
    k = _split_heads_numpy(qkv, heads, 3, 1)
    scale = 1.0 / math.sqrt(q.shape[-1])
    return (np.matmul(q, k.transpose(0, 2, 1)) * scale).astype(qkv.dtype, copy=False)


def _selfatt_qk_graph(qkv, *, heads):
    """q k^T / sqrt(d) per head"""
    q, k = _split_heads(qkv, heads, 3, 0), _split_heads(qkv, heads, 3, 1)
    return F.batch_dot(q, k, transpose_b=True) * (1.0 / math.sqrt(q.shape[-1]))


_HEADS = {"heads": Attr(as_int)}
_QKV_INPUTS = lambda rng: [rng.uniform(-1, 1, (3, 2, 12))]  # noqa: E731

register(OpDef(name="_contrib_interleaved_matmul_selfatt_qk", infer=_selfatt_qk_types,
               impl=_selfatt_qk, grad=_composite_grad(_selfatt_qk_graph),
               inputs=("queries_keys_values",), attrs=_HEADS, kind="opaque",
               doc="Self-attention scores q k^T / sqrt(d) per head from interleaved "
                   "projections (length, batch, heads*3*d) -> (batch*heads, length, length)."
                   "\n\nGradient\n--------\nthe composition's (reshape, transpose, "
                   "batch_dot) gradient",
               test=TestSpec(make_inputs=_QKV_INPUTS, attrs={"heads": 2})))


def _selfatt_valatt_types(types, *, heads):
    length, batch, _ = types[0].shape
    depth = _check_width(types[0].shape, heads, 3)
    if types[1].shape != (batch * heads, length, length):
        raise GraphError(f"attention must be {(batch * heads, length, length)}")
    return [TensorType((length, batch, heads * depth), types[0].dtype)]


def _selfatt_valatt(qkv, attention, *, heads):
    v = _split_heads_numpy(qkv, heads, 3, 2)
    return _merge_heads_numpy(np.matmul(attention, v), heads, qkv.shape[0], qkv.shape[1])


def _selfatt_valatt_graph(qkv, attention, *, heads):
    """attention v per head, heads merged"""
    v = _split_heads(qkv, heads, 3, 2)
    return _merge_heads(F.batch_dot(attention, v), heads, qkv.shape[0], qkv.shape[1])


register(OpDef(name="_contrib_interleaved_matmul_selfatt_valatt",
               infer=_selfatt_valatt_types, impl=_selfatt_valatt,
               grad=_composite_grad(_selfatt_valatt_graph),
               inputs=("queries_keys_values", "attention"), attrs=_HEADS, kind="opaque",
               doc="Self-attention output: attention times each head's values, heads "
                   "merged to (length, batch, heads*d).\n\nGradient\n--------\nthe "
                   "composition's gradient",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-1, 1, (3, 2, 12)),
                                                      rng.uniform(-1, 1, (4, 3, 3))],
                             attrs={"heads": 2})))


def _encdec_qk_types(types, *, heads):
    qlen, batch, width = types[0].shape
    kvlen = types[1].shape[0]
    _check_width(types[1].shape, heads, 2)
    if width * 2 != types[1].shape[2] or types[1].shape[1] != batch:
        raise GraphError("queries (q, batch, heads*d) and keys_values (k, batch, heads*2*d) "
                         "do not match")
    return [TensorType((batch * heads, qlen, kvlen), types[0].dtype)]


def _encdec_qk(queries, keys_values, *, heads):
    q = _split_heads_numpy(queries, heads, 1, 0)
    k = _split_heads_numpy(keys_values, heads, 2, 0)
    scale = 1.0 / math.sqrt(q.shape[-1])
    return (np.matmul(q, k.transpose(0, 2, 1)) * scale).astype(queries.dtype, copy=False)


def _encdec_qk_graph(queries, keys_values, *, heads):
    """q k^T / sqrt(d) per head, keys from interleaved keys_values"""
    q, k = _split_heads(queries, heads, 1, 0), _split_heads(keys_values, heads, 2, 0)
    return F.batch_dot(q, k, transpose_b=True) * (1.0 / math.sqrt(q.shape[-1]))


register(OpDef(name="_contrib_interleaved_matmul_encdec_qk", infer=_encdec_qk_types,
               impl=_encdec_qk, grad=_composite_grad(_encdec_qk_graph),
               inputs=("queries", "keys_values"), attrs=_HEADS, kind="opaque",
               doc="Encoder-decoder attention scores q k^T / sqrt(d) per head -> "
                   "(batch*heads, q_length, kv_length).\n\nGradient\n--------\nthe "
                   "composition's gradient",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-1, 1, (4, 2, 6)),
                                                      rng.uniform(-1, 1, (3, 2, 12))],
                             attrs={"heads": 2})))


def _encdec_valatt_types(types, *, heads):
    kvlen, batch, _ = types[0].shape
    depth = _check_width(types[0].shape, heads, 2)
    rows, qlen, cols = types[1].shape
    if rows != batch * heads or cols != kvlen:
        raise GraphError(f"attention must be ({batch * heads}, q_length, {kvlen})")
    return [TensorType((qlen, batch, heads * depth), types[0].dtype)]


def _encdec_valatt(keys_values, attention, *, heads):
    v = _split_heads_numpy(keys_values, heads, 2, 1)
    return _merge_heads_numpy(np.matmul(attention, v), heads, attention.shape[1],
                              keys_values.shape[1])


def _encdec_valatt_graph(keys_values, attention, *, heads):
    """attention v per head, values from interleaved keys_values, heads merged"""
    v = _split_heads(keys_values, heads, 2, 1)
    return _merge_heads(F.batch_dot(attention, v), heads, attention.shape[1],
                        keys_values.shape[1])


register(OpDef(name="_contrib_interleaved_matmul_encdec_valatt",
               infer=_encdec_valatt_types, impl=_encdec_valatt,
               grad=_composite_grad(_encdec_valatt_graph),
               inputs=("keys_values", "attention"), attrs=_HEADS, kind="opaque",
               doc="Encoder-decoder attention output: attention times each head's "
                   "values, heads merged to (q_length, batch, heads*d).\n\nGradient\n"
                   "--------\nthe composition's gradient",
               test=TestSpec(make_inputs=lambda rng: [rng.uniform(-1, 1, (3, 2, 12)),
                                                      rng.uniform(-1, 1, (4, 4, 3))],
                             attrs={"heads": 2})))


# ---------------------------------------------------------------------------
# Custom: MXNet's CustomOp, a user callback with its own backward
# ---------------------------------------------------------------------------
# The callback protocol is the one of ``_CustomFunction`` (compiler/ops/custom.py):
# an object in the ``callback`` attr that computes on numpy arrays. A CustomOp's
# backward also reads the forward's inputs and outputs, so the backward node takes
# them as inputs (and is ordered after the forward by that), and the output types
# follow from the input types through the callback (``infer``), as MXNet's
# CustomOpProp.infer_shape does.

def _identity(value):
    return value


def _custom_op_types(types, *, op_type, callback, is_train, **_kwargs):
    return list(callback.infer(types))


def _custom_op(*arrays, op_type, callback, is_train, **_kwargs):
    return tuple(callback.forward(arrays, is_train))


def custom_op_grad(g, *inputs, out, op_type, callback, is_train, **_kwargs):
    """the user's CustomOp.backward(out_grad, in_data, out_data)"""
    grads = g if isinstance(g, tuple) else (g,)
    outs = out if isinstance(out, tuple) else (out,)
    results = grads[0]._apply("_backward_Custom", (*grads, *inputs, *outs),
                              {"callback": callback})
    results = results if isinstance(results, tuple) else (results,)
    arguments = callback.num_arguments
    return tuple(results[:arguments]) + (None,) * (len(inputs) - arguments)


# Makes the callback of a Custom node from its op_type and keyword arguments when
# none is given (a node read from MXNet JSON): set by the frontend that owns the
# operator registry (symgrad.operator), so this layer imports nothing above it.
CUSTOM_CALLBACK_FACTORY: list = []


def _custom_inputs(attrs: dict) -> tuple[str, ...]:
    callback = attrs.get("callback")
    return ("data",) if callback is None else tuple(callback.arguments + callback.aux_names)


CUSTOM = register(OpDef(
    name="Custom", infer=_custom_op_types, impl=_custom_op, grad=custom_op_grad,
    inputs=_custom_inputs, attrs={"op_type": Attr(str), "callback": Attr(_identity, None),
                                  "is_train": Attr(as_bool, False)},
    uses_train_mode=True, kind="opaque",
    doc="A user-defined operator registered with mx.operator.register(op_type); "
        "other attributes go to its prop.\n\nGradient\n--------\nthe operator's own "
        "backward"))
_declared_attrs = CUSTOM.canonical_attrs


def _custom_canonical_attrs(given: dict) -> dict:
    """Custom keeps any keyword besides its declared attrs, as a string, as MXNet
    does: they are the prop's constructor arguments and go to JSON with the node.
    (Set on the Custom OpDef itself: the frontend's recording fast path takes
    OpDef instances by exact type, so no subclass.)"""
    extra = {key: str(value) for key, value in given.items()
             if key not in CUSTOM.attrs and key not in INERT_ATTRS}
    out = _declared_attrs({k: v for k, v in given.items() if k in CUSTOM.attrs})
    if out["callback"] is None:
        if not CUSTOM_CALLBACK_FACTORY:
            raise GraphError("Custom: no operator registry (import symgrad)")
        out["callback"] = CUSTOM_CALLBACK_FACTORY[0](out["op_type"], extra)
    return {**out, **extra}


CUSTOM.canonical_attrs = _custom_canonical_attrs  # type: ignore[method-assign]


def _custom_back_types(types, *, callback):
    count = len(callback.output_types)
    return [TensorType(t.shape, t.dtype) for t in types[count:count + callback.num_arguments]]


def _custom_back(*arrays, callback):
    count = len(callback.output_types)
    grads, rest = arrays[:count], arrays[count:]
    inputs, outputs = rest[:len(rest) - count], rest[len(rest) - count:]
    return tuple(callback.backward(grads, inputs, outputs))


register(OpDef(name="_backward_Custom", infer=_custom_back_types, impl=_custom_back,
               attrs={"callback": Attr(_identity)}, variadic=True, differentiable=False,
               kind="opaque",
               doc="The backward of a Custom op: gradients of its arguments (inputs are "
                   "the output gradients, the inputs and the outputs)."))


# ---------------------------------------------------------------------------
# _foreach and _while_loop: loops whose body is a subgraph (a foreach over data
# whose length is not known when traced; every symbolic while_loop)
# ---------------------------------------------------------------------------
# The ``callback`` (made by mx.sym.contrib) holds the traced graphs and provides
# ``num_outputs``, ``infer(types)``, ``forward(arrays)`` and ``backward(grads,
# arrays)`` on numpy arrays, as Custom's does. Inputs: the loop's own inputs
# (data and states, or loop variables), then the body's free variables; outputs:
# the stacked step outputs, then the final states.

def _foreach_types(types, *, callback):
    return list(callback.infer(types))


def _foreach(*arrays, callback):
    return tuple(callback.forward(arrays))


def _loop_grad(backward_op: str):
    def grad(g, *inputs, out, callback):
        grads = g if isinstance(g, tuple) else (g,)
        results = grads[0]._apply(backward_op, (*grads, *inputs), {"callback": callback})
        return results if isinstance(results, tuple) else (results,)

    grad.__doc__ = "the body's vector-Jacobian products, in reverse over the steps taken"
    return grad


foreach_grad = _loop_grad("_backward_foreach")
while_loop_grad = _loop_grad("_backward_while_loop")


register(OpDef(name="_foreach", infer=_foreach_types, impl=_foreach, grad=foreach_grad,
               attrs={"callback": Attr(_identity)}, variadic=True, kind="opaque",
               doc="contrib.foreach over a traced body (data length known at run time)."
                   "\n\nGradient\n--------\nthe body's gradient, step by step in reverse"))


def _foreach_back_types(types, *, callback):
    return list(types[callback.num_outputs:])


def _foreach_back(*arrays, callback):
    count = callback.num_outputs
    return tuple(callback.backward(arrays[:count], arrays[count:]))


register(OpDef(name="_backward_foreach", infer=_foreach_back_types, impl=_foreach_back,
               attrs={"callback": Attr(_identity)}, variadic=True, differentiable=False,
               kind="opaque",
               doc="The backward of _foreach: the gradients of its inputs (inputs are "
                   "its output gradients, then its inputs)."))
register(OpDef(name="_while_loop", infer=_foreach_types, impl=_foreach, grad=while_loop_grad,
               attrs={"callback": Attr(_identity)}, variadic=True, kind="opaque",
               doc="contrib.while_loop over traced cond and func graphs: func runs while "
                   "cond holds, at most max_iterations times; outputs padded with zeros."
                   "\n\nGradient\n--------\nfunc's gradient, step by step in reverse"))
register(OpDef(name="_cond", infer=_foreach_types, impl=_foreach,
               grad=_loop_grad("_backward_cond"), attrs={"callback": Attr(_identity)},
               variadic=True, kind="opaque",
               doc="contrib.cond over traced branches: the predicate (input 0) picks "
                   "which branch runs.\n\nGradient\n--------\nthe chosen branch's "
                   "gradient; none for the predicate"))
register(OpDef(name="_backward_cond", infer=_foreach_back_types, impl=_foreach_back,
               attrs={"callback": Attr(_identity)}, variadic=True, differentiable=False,
               kind="opaque",
               doc="The backward of _cond: the gradients of its inputs (inputs are its "
                   "output gradients, then its inputs)."))
register(OpDef(name="_backward_while_loop", infer=_foreach_back_types, impl=_foreach_back,
               attrs={"callback": Attr(_identity)}, variadic=True, differentiable=False,
               kind="opaque",
               doc="The backward of _while_loop: the gradients of its inputs (inputs are "
                   "its output gradients, then its inputs)."))


# Output counts before shapes are known (read by the Symbol frontend for nodes
# whose input shapes are pending), for the ops above with several outputs.
for _opdef, _count in ((BOX_ENCODE, 2), (BOX_NMS, 2), (MATCHING, 2), (MULTIBOX_TARGET, 3),
                       (SYNC_BATCHNORM, 3), (PROPOSAL, 2), (BN_RELU, 3)):
    _opdef.num_outputs = _count  # type: ignore[attr-defined]
del _opdef, _count
