"""Spatial ops MXNet 1.9.1 has that the first registry lacked: UpSampling,
GridGenerator, BilinearSampler, SpatialTransformer, ROIPooling and Correlation,
all on NCHW data.

Sampling positions follow MXNet: a grid holds x then y in [-1, 1], mapped to
pixel x = (gx + 1) (W - 1) / 2; the four neighbours of a position are weighted
bilinearly and a neighbour outside the image counts as zero. Gradients of the
sampling and pooling ops are helper ops (``_bilinear_sampler_grad``,
``_roi_pooling_grad``, ``_correlation_grad``) with gradient rules of their own, made of
the same few ops, so that every order of derivative exists; where a derivative
is zero almost everywhere (the sampling weights are piecewise linear, a max or a
sign piecewise constant) it is a structural zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import (
    OPS,
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_float,
    as_int,
    as_shape,
    one_of,
    register,
)
from .common import F

# ---------------------------------------------------------------------------
# UpSampling
# ---------------------------------------------------------------------------

UPSAMPLING_ATTRS = {
    "scale": Attr(as_int),
    "num_filter": Attr(as_int, 0),
    "sample_type": Attr(one_of("nearest", "bilinear"), "nearest"),
    "multi_input_mode": Attr(one_of("concat", "sum"), "concat"),
    "num_args": Attr(as_int, 0),
}


def _bilinear_deconvolution(channels: int, scale: int) -> dict[str, Any]:
    """The attrs of the grouped Deconvolution MXNet's bilinear UpSampling is."""
    kernel = 2 * scale - scale % 2
    pad = math.ceil((scale - 1) / 2)
    return {
        "kernel": (kernel, kernel),
        "stride": (scale, scale),
        "pad": (pad, pad),
        "num_filter": channels,
        "num_group": channels,
        "no_bias": True,
    }


def _deconvolution_attrs(channels: int, scale: int) -> dict:
    return OPS["Deconvolution"].canonical_attrs(_bilinear_deconvolution(channels, scale))


def _upsampling_types(
    types: Sequence[TensorType],
    *,
    scale: int,
    num_filter: int,
    sample_type: str,
    multi_input_mode: str,
    num_args: int,
) -> list[TensorType]:
    if any(len(t.shape) != 4 for t in types):
        raise GraphError("UpSampling takes NCHW inputs")
    if num_args and num_args != len(types):
        raise GraphError(f"num_args is {num_args} but {len(types)} inputs were given")
    if sample_type == "bilinear":
        if len(types) != 2:
            raise GraphError("bilinear UpSampling takes data and weight")
        attrs = _deconvolution_attrs(types[0].shape[1], scale)
        return list(OPS["Deconvolution"].infer_types(types, attrs))
    n, _, h, w = types[0].shape
    height, width = h * scale, w * scale
    channels = 0
    for t in types:
        if t.shape[0] != n or height % t.shape[2] or width % t.shape[3]:
            raise GraphError(f"input of shape {t.shape} does not scale to {height}x{width}")
        if t.dtype != types[0].dtype:
            raise GraphError("inputs' dtypes differ")
        channels = channels + t.shape[1] if multi_input_mode == "concat" else t.shape[1]
    if multi_input_mode == "sum" and any(t.shape[1] != types[0].shape[1] for t in types):
        raise GraphError("'sum' mode needs inputs with one channel count")
    return [TensorType((n, channels, height, width), types[0].dtype)]


def _nearest(x: np.ndarray, height: int, width: int) -> np.ndarray:
    rows, columns = height // x.shape[2], width // x.shape[3]
    return x.repeat(rows, axis=2).repeat(columns, axis=3)


def _upsampling(
    *inputs: np.ndarray,
    scale: int,
    num_filter: int,
    sample_type: str,
    multi_input_mode: str,
    num_args: int,
) -> np.ndarray:
    if sample_type == "bilinear":
        data, weight = inputs
        attrs = _deconvolution_attrs(data.shape[1], scale)
        return OPS["Deconvolution"].impl(data, weight, **attrs)
    height, width = inputs[0].shape[2] * scale, inputs[0].shape[3] * scale
    scaled = [_nearest(x, height, width) for x in inputs]
    if multi_input_mode == "sum":
        return np.sum(scaled, axis=0).astype(inputs[0].dtype)
    return np.concatenate(scaled, axis=1)


def upsampling_grad(
    g: Expr,
    *inputs: Expr,
    out: Expr,
    scale: int,
    num_filter: int,
    sample_type: str,
    multi_input_mode: str,
    num_args: int,
) -> Expr | tuple[Expr | None, ...]:
    """nearest: each input's block sums of g (its channels of g in 'concat' mode);
    bilinear: the gradients of the grouped Deconvolution it is"""
    if sample_type == "bilinear":
        data, weight = inputs
        attrs = _deconvolution_attrs(data.shape[1], scale)
        rule = OPS["Deconvolution"].grad
        assert rule is not None
        return rule(g, data, weight, out=out, **attrs)
    if multi_input_mode == "concat":
        bounds = np.cumsum([0] + [x.shape[1] for x in inputs])
        pieces = [
            F.slice_axis(g, axis=1, begin=int(b), end=int(e)) for b, e in zip(bounds, bounds[1:])
        ]
    else:
        pieces = [g] * len(inputs)
    return tuple(F._upsampling_grad(p, x) for p, x in zip(pieces, inputs))


def _upsampling_inputs(attrs: dict) -> tuple[str, ...]:
    """MXNet's input names: ``data, weight`` when bilinear, else ``arg0 ... arg<n-1>``
    for ``num_args`` n (the frontend reads them to check and complete a call)."""
    if attrs.get("sample_type") == "bilinear":
        return ("data", "weight")
    return tuple(f"arg{i}" for i in range(max(1, int(attrs.get("num_args") or 1))))


def _upsampling_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (2, 2, 3, 2)), rng.uniform(-2, 2, (2, 1, 6, 4))]


register(
    OpDef(
        name="UpSampling",
        infer=_upsampling_types,
        impl=_upsampling,
        grad=upsampling_grad,
        inputs=_upsampling_inputs,
        variadic=True,
        attrs=UPSAMPLING_ATTRS,
        kind="pool",
        doc="Scale NCHW inputs up by ``scale``: nearest neighbour (several inputs, "
        "each to the first's size times scale, joined along channels or summed) or "
        "bilinear (a grouped Deconvolution with the given weight).\n\nGradient\n"
        "--------\n" + (upsampling_grad.__doc__ or ""),
        test=TestSpec(make_inputs=_upsampling_test_inputs, attrs={"scale": 2}, order=2),
    )
)


def _upsampling_grad(g: np.ndarray, like: np.ndarray) -> np.ndarray:
    n, c, h, w = like.shape
    rows, columns = g.shape[2] // h, g.shape[3] // w
    return g.reshape(n, c, h, rows, w, columns).sum(axis=(3, 5))


def upsampling_grad_grad(h: Expr, g: Expr, like: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """h scaled up again (nearest) to g's height and width"""
    return F._upsampling_like(h, g), None


register(
    OpDef(
        name="_upsampling_grad",
        infer=lambda types: [TensorType(types[1].shape, types[0].dtype)],
        impl=_upsampling_grad,
        grad=upsampling_grad_grad,
        inputs=("data", "like"),
        shape_only=(1,),
        kind="pool",
        doc="The sums of ``data``'s blocks, shaped like ``like``: the gradient of "
        "nearest UpSampling.\n\nGradient\n--------\n" + (upsampling_grad_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 3, 4, 6), (2, 3, 2, 3)), wrt=(0,)),
    )
)


def upsampling_like_grad(h: Expr, data: Expr, like: Expr, *, out: Expr) -> tuple[Expr | None, ...]:
    """the block sums of h"""
    return F._upsampling_grad(h, data), None


register(
    OpDef(
        name="_upsampling_like",
        infer=lambda types: [TensorType(types[1].shape, types[0].dtype)],
        impl=lambda data, like: _nearest(data, like.shape[2], like.shape[3]),
        grad=upsampling_like_grad,
        inputs=("data", "like"),
        shape_only=(1,),
        kind="pool",
        doc="``data`` scaled up (nearest) to ``like``'s height and width.\n\nGradient\n"
        "--------\n" + (upsampling_like_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 3, 2, 3), (2, 3, 4, 6)), wrt=(0,)),
    )
)


# ---------------------------------------------------------------------------
# GridGenerator
# ---------------------------------------------------------------------------


def _base_grid(height: int, width: int) -> np.ndarray:
    """(3, height * width): normalised x, y and ones of every target pixel."""
    xs = np.linspace(-1.0, 1.0, width) if width > 1 else np.array([-1.0])
    ys = np.linspace(-1.0, 1.0, height) if height > 1 else np.array([-1.0])
    x, y = np.meshgrid(xs, ys)
    return np.stack([x.ravel(), y.ravel(), np.ones(height * width)])


def _grid_types(
    types: Sequence[TensorType], *, transform_type: str, target_shape: tuple[int, ...]
) -> list[TensorType]:
    data = types[0].shape
    if transform_type == "affine":
        if len(data) != 2 or data[1] != 6:
            raise GraphError(f"affine takes (N, 6) data, got {data}")
        height, width = target_shape
        return [TensorType((data[0], 2, height, width), types[0].dtype)]
    if len(data) != 4 or data[1] != 2:
        raise GraphError(f"warp takes (N, 2, H, W) flow, got {data}")
    return [types[0]]


def _grid_generator(
    data: np.ndarray, *, transform_type: str, target_shape: tuple[int, ...]
) -> np.ndarray:
    if transform_type == "affine":
        height, width = target_shape
        grid = data.reshape(-1, 2, 3).astype(np.float64) @ _base_grid(height, width)
        return grid.reshape(-1, 2, height, width).astype(data.dtype)
    _, _, height, width = data.shape
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    x = (data[:, 0] + columns) / ((width - 1) / 2.0) - 1
    y = (data[:, 1] + rows) / ((height - 1) / 2.0) - 1
    return np.stack([x, y], axis=1).astype(data.dtype)


def grid_generator_grad(
    g: Expr, data: Expr, *, out: Expr, transform_type: str, target_shape: tuple[int, ...]
) -> Expr:
    """affine: sum over pixels of g times (x, y, 1); warp: g scaled by 2 / (W - 1)
    and 2 / (H - 1)"""
    if transform_type == "affine":
        return F._grid_affine_grad(g)
    return F._grid_warp_grad(g)


GRID_ATTRS = {
    "transform_type": Attr(one_of("affine", "warp"), "affine"),
    "target_shape": Attr(as_shape, (0, 0)),
}
register(
    OpDef(
        name="GridGenerator",
        infer=_grid_types,
        impl=_grid_generator,
        grad=grid_generator_grad,
        attrs=GRID_ATTRS,
        kind="gather",
        doc="A sampling grid (N, 2, H, W) of x, y in [-1, 1]: an affine map (N, 6) of the "
        "target's pixel grid, or a flow field added to pixel positions ('warp').\n\n"
        "Gradient\n--------\n" + (grid_generator_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 6),), attrs={"target_shape": (3, 4)}),
    )
)


def _grid_affine_grad(g: np.ndarray) -> np.ndarray:
    n, _, height, width = g.shape
    flat = g.reshape(n, 2, height * width).astype(np.float64)
    return (flat @ _base_grid(height, width).T).reshape(n, 6).astype(g.dtype)


def grid_affine_grad_grad(h: Expr, g: Expr, *, out: Expr) -> Expr:
    """the affine grid of h"""
    return F.GridGenerator(h, transform_type="affine", target_shape=tuple(g.shape[2:]))


register(
    OpDef(
        name="_grid_affine_grad",
        infer=lambda types: [TensorType((types[0].shape[0], 6), types[0].dtype)],
        impl=_grid_affine_grad,
        grad=grid_affine_grad_grad,
        kind="gather",
        doc="The gradient of an affine GridGenerator: g summed against the target's "
        "(x, y, 1).\n\nGradient\n--------\n" + (grid_affine_grad_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 2, 3, 4),)),
    )
)


def _grid_warp_grad(g: np.ndarray) -> np.ndarray:
    _, _, height, width = g.shape
    scale = np.array([2.0 / (width - 1), 2.0 / (height - 1)]).reshape(1, 2, 1, 1)
    return (g * scale).astype(g.dtype)


def grid_warp_grad_grad(h: Expr, g: Expr, *, out: Expr) -> Expr:
    """h scaled again (the op is linear and diagonal)"""
    return F._grid_warp_grad(h)


register(
    OpDef(
        name="_grid_warp_grad",
        infer=lambda types: [types[0]],
        impl=_grid_warp_grad,
        grad=grid_warp_grad_grad,
        kind="gather",
        doc="The gradient of a warp GridGenerator: g's x and y scaled by 2 / (W - 1) and "
        "2 / (H - 1).\n\nGradient\n--------\n" + (grid_warp_grad_grad.__doc__ or ""),
        test=TestSpec(shapes=((2, 2, 3, 4),)),
    )
)


# ---------------------------------------------------------------------------
# BilinearSampler
# ---------------------------------------------------------------------------

# Every derivative of bilinear sampling with respect to the grid is a sampling
# with other corner weights: along x a corner weighs 1 - fx or fx, whose
# derivative in the grid's x is -(W - 1) / 2 or (W - 1) / 2 and whose second
# derivative is zero (away from pixel borders, where none exists); the same along
# y. So the sampling ops indexed by the orders (dx, dy) in {0, 1} of their
# derivative in x and y, with their adjoints, are closed under differentiation:
# gradients of every order are made of ``_bilinear_sampler_slope`` and
# ``_bilinear_sampler_grad``, and a derivative of order two in one direction is
# a structural zero, as MXNet's relu gives.


def _corners(
    data_shape: tuple[int, ...], grid: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, tuple, tuple, np.ndarray]]:
    """Per corner of each sampling position: (rows, columns, wx, wy, inside), the
    pixel as MXNet maps positions (clipped into the image), its weight along x and
    that weight's derivative in the grid's x (``wx[0]``, ``wx[1]``), the same along
    y, and whether the corner lies in the image."""
    _, _, height, width = data_shape
    half_w, half_h = (width - 1) / 2, (height - 1) / 2
    x = (grid[:, 0].astype(np.float64) + 1) * half_w
    y = (grid[:, 1].astype(np.float64) + 1) * half_h
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    corners = []
    for cy, cx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        wx = (fx, half_w) if cx else (1 - fx, -half_w)
        wy = (fy, half_h) if cy else (1 - fy, -half_h)
        rows, columns = (y0 + cy).astype(np.int64), (x0 + cx).astype(np.int64)
        inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
        corners.append(
            (np.clip(rows, 0, height - 1), np.clip(columns, 0, width - 1), wx, wy, inside)
        )
    return corners


def _gather(data: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """data[n, :, rows[n, i, j], columns[n, i, j]] as (N, C, Ho, Wo)."""
    batch = np.arange(data.shape[0])[:, None, None]
    return np.moveaxis(data[batch, :, rows, columns], -1, 1)


def _bilinear_sampler_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    data, grid = types[0].shape, types[1].shape
    if len(data) != 4 or len(grid) != 4 or grid[1] != 2 or grid[0] != data[0]:
        raise GraphError(f"expects data (N, C, H, W) and grid (N, 2, h, w), got {data}, {grid}")
    return [TensorType((data[0], data[1], grid[2], grid[3]), types[0].dtype)]


def _sample(data: np.ndarray, grid: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The (dx, dy)-th derivative of bilinear sampling in the grid's x and y, in
    float64."""
    out = np.zeros(data.shape[:2] + grid.shape[2:])
    for rows, columns, wx, wy, inside in _corners(data.shape, grid):
        out += _gather(data, rows, columns) * (wx[dx] * wy[dy] * inside)[:, None]
    return out


def _bilinear_sampler(data: np.ndarray, grid: np.ndarray, **_attrs: Any) -> np.ndarray:
    return _sample(data, grid, 0, 0).astype(data.dtype)


def _sampling_grads(g: Expr, data: Expr, grid: Expr, dx: int, dy: int) -> tuple[Expr, Expr]:
    return (
        F._bilinear_sampler_grad(g, data, grid, wrt=0, dx=dx, dy=dy),
        F._bilinear_sampler_grad(g, data, grid, wrt=1, dx=dx, dy=dy),
    )


def bilinear_sampler_grad(
    g: Expr, data: Expr, grid: Expr, *, out: Expr, **_attrs: Any
) -> tuple[Expr | None, ...]:
    """data: g spread back to the four neighbours with their weights; grid: g times
    the interpolation's slope in x and y, times (W - 1) / 2 and (H - 1) / 2"""
    return _sampling_grads(g, data, grid, 0, 0)


SAMPLER_ATTRS = {"cudnn_off": Attr(as_bool, False)}


def _sampler_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (2, 2, 4, 5)), rng.uniform(-1.1, 1.1, (2, 2, 3, 3))]


register(
    OpDef(
        name="BilinearSampler",
        infer=_bilinear_sampler_types,
        impl=_bilinear_sampler,
        grad=bilinear_sampler_grad,
        inputs=("data", "grid"),
        attrs=SAMPLER_ATTRS,
        kind="gather",
        doc="Sample NCHW data bilinearly at a grid of (x, y) in [-1, 1] (zeros outside)."
        "\n\nGradient\n--------\n" + (bilinear_sampler_grad.__doc__ or ""),
        test=TestSpec(make_inputs=_sampler_inputs, order=2, rtol=1e-5),
    )
)

ORDER_ATTRS = {"dx": Attr(as_int, 0), "dy": Attr(as_int, 0)}


def _slope_types(types: Sequence[TensorType], *, dx: int, dy: int) -> list[TensorType]:
    if dx not in (0, 1) or dy not in (0, 1):
        raise GraphError(f"derivative orders dx, dy must be 0 or 1, got {dx}, {dy}")
    return _bilinear_sampler_types(types)


def _bilinear_sampler_slope(data: np.ndarray, grid: np.ndarray, *, dx: int, dy: int) -> np.ndarray:
    return _sample(data, grid, dx, dy).astype(data.dtype)


def bilinear_sampler_slope_grad(
    g: Expr, data: Expr, grid: Expr, *, out: Expr, dx: int, dy: int
) -> tuple[Expr | None, ...]:
    """data: g spread back to the four neighbours with the derivative weights;
    grid: the next derivatives in x and y (none past order one in a direction)"""
    return _sampling_grads(g, data, grid, dx, dy)


register(
    OpDef(
        name="_bilinear_sampler_slope",
        infer=_slope_types,
        impl=_bilinear_sampler_slope,
        grad=bilinear_sampler_slope_grad,
        inputs=("data", "grid"),
        attrs=ORDER_ATTRS,
        kind="gather",
        doc="The derivative of BilinearSampler(data, grid) dx times in the grid's x and "
        "dy times in its y (each 0 or 1), at every sampling position.\n\nGradient\n"
        "--------\n" + (bilinear_sampler_slope_grad.__doc__ or ""),
        test=TestSpec(make_inputs=_sampler_inputs, attrs={"dx": 1, "dy": 0}, rtol=1e-5),
    )
)


def _next_orders(dx: int, dy: int) -> list[tuple[int, int, int]]:
    """(grid channel, dx, dy) of the derivatives one order up in x and in y that
    are not structurally zero."""
    return [(c, ex, ey) for c, ex, ey in ((0, dx + 1, dy), (1, dx, dy + 1)) if ex < 2 and ey < 2]


def _bilinear_sampler_grad(
    g: np.ndarray, data: np.ndarray, grid: np.ndarray, *, wrt: int, dx: int, dy: int
) -> np.ndarray:
    g = g.astype(np.float64)
    if wrt == 0:
        out = np.zeros(data.shape)
        batch = np.broadcast_to(
            np.arange(data.shape[0])[:, None, None], grid.shape[:1] + grid.shape[2:]
        )
        for rows, columns, wx, wy, inside in _corners(data.shape, grid):
            spread = np.moveaxis(g * (wx[dx] * wy[dy] * inside)[:, None], 1, -1)  # (N, h, w, C)
            # numpy's stubs take ufunc.at's indices as integer arrays only, not a
            # tuple of arrays and slices (a plain index, which numpy accepts)
            np.add.at(out, (batch, slice(None), rows, columns), spread)  # type: ignore[arg-type]
        return out.astype(data.dtype)
    out = np.zeros(grid.shape)
    orders = _next_orders(dx, dy)
    for rows, columns, wx, wy, inside in _corners(data.shape, grid) if orders else ():
        weighted = (g * _gather(data, rows, columns)).sum(axis=1)  # one gather, both slopes
        for channel, ex, ey in orders:
            out[:, channel] += weighted * (wx[ex] * wy[ey] * inside)
    return out.astype(grid.dtype)


def _total(parts: list[Expr]) -> Expr | None:
    total = parts[0] if parts else None
    for part in parts[1:]:
        total = total + part
    return total


def bilinear_sampler_grad_grad(
    h: Expr, g: Expr, data: Expr, grid: Expr, *, out: Expr, wrt: int, dx: int, dy: int
) -> tuple[Expr | None, ...]:
    """wrt=0 (adjoint sampling, whose value <h, A(g)> is <g, S(h)>): g gets S(h),
    the sampling of h, and the grid the grid gradient of S at data h; data, whose
    shape only is read, none. wrt=1 (the value is, per direction d of x and y,
    sum h_d g S_d(data) with S_d the next derivative): g gets sum h_d S_d(data),
    data the adjoint of S_d applied to g h_d, the grid the grid gradient of S_d
    with head g h_d; none past order one in a direction"""
    if wrt == 0:
        return (
            F._bilinear_sampler_slope(h, grid, dx=dx, dy=dy),
            None,
            F._bilinear_sampler_grad(g, h, grid, wrt=1, dx=dx, dy=dy),
        )
    for_g, for_data, for_grid = [], [], []
    for channel, ex, ey in _next_orders(dx, dy):
        direction = F.slice_axis(h, axis=1, begin=channel, end=channel + 1)  # (N, 1, h, w)
        head = F.broadcast_mul(g, direction)
        slope = F._bilinear_sampler_slope(data, grid, dx=ex, dy=ey)
        for_g.append(F.broadcast_mul(slope, direction))
        for_data.append(F._bilinear_sampler_grad(head, data, grid, wrt=0, dx=ex, dy=ey))
        for_grid.append(F._bilinear_sampler_grad(head, data, grid, wrt=1, dx=ex, dy=ey))
    return _total(for_g), _total(for_data), _total(for_grid)


register(
    OpDef(
        name="_bilinear_sampler_grad",
        infer=lambda types, *, wrt, dx, dy: [types[1 + wrt]],
        impl=_bilinear_sampler_grad,
        grad=bilinear_sampler_grad_grad,
        inputs=("data", "sampled", "grid"),
        attrs={"wrt": Attr(as_int), **ORDER_ATTRS},
        kind="gather",
        doc="The gradient of _bilinear_sampler_slope(sampled, grid, dx, dy) (with dx = "
        "dy = 0, BilinearSampler) for its data (wrt=0) or its grid (wrt=1), given the "
        "head gradient ``data``.\n\nGradient\n--------\n"
        + (bilinear_sampler_grad_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-2, 2, (2, 2, 3, 3)), *_sampler_inputs(rng)],
            attrs={"wrt": 1},
            rtol=1e-5,
        ),
    )
)


# ---------------------------------------------------------------------------
# SpatialTransformer
# ---------------------------------------------------------------------------


def _spatial_transformer_types(
    types: Sequence[TensorType],
    *,
    target_shape: tuple[int, ...],
    transform_type: str,
    sampler_type: str,
    cudnn_off: bool,
) -> list[TensorType]:
    (grid,) = _grid_types(types[1:], transform_type="affine", target_shape=target_shape)
    return _bilinear_sampler_types([types[0], grid])


def _spatial_transformer(
    data: np.ndarray,
    loc: np.ndarray,
    *,
    target_shape: tuple[int, ...],
    transform_type: str,
    sampler_type: str,
    cudnn_off: bool,
) -> np.ndarray:
    grid = _grid_generator(loc, transform_type="affine", target_shape=target_shape)
    return _bilinear_sampler(data, grid)


def spatial_transformer_grad(
    g: Expr,
    data: Expr,
    loc: Expr,
    *,
    out: Expr,
    target_shape: tuple[int, ...],
    transform_type: str,
    sampler_type: str,
    cudnn_off: bool,
) -> tuple[Expr | None, ...]:
    """BilinearSampler's gradients at the affine grid of loc, the grid's passed
    on through GridGenerator's"""
    grid = F.GridGenerator(loc, transform_type="affine", target_shape=target_shape)
    grid_grad = F._bilinear_sampler_grad(g, data, grid, wrt=1)
    return F._bilinear_sampler_grad(g, data, grid, wrt=0), F._grid_affine_grad(grid_grad)


register(
    OpDef(
        name="SpatialTransformer",
        infer=_spatial_transformer_types,
        impl=_spatial_transformer,
        grad=spatial_transformer_grad,
        inputs=("data", "loc"),
        attrs={
            "target_shape": Attr(as_shape, (0, 0)),
            "transform_type": Attr(one_of("affine"), "affine"),
            "sampler_type": Attr(one_of("bilinear"), "bilinear"),
            "cudnn_off": Attr(as_bool, False),
        },
        kind="gather",
        doc="BilinearSampler(data, GridGenerator(loc, 'affine', target_shape)).\n\n"
        "Gradient\n--------\n" + (spatial_transformer_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (2, 2, 4, 5)),
                np.array([[0.9, 0.1, 0.05, -0.1, 0.8, 0.1], [1.1, -0.2, 0.0, 0.1, 0.9, -0.05]])
                + rng.uniform(-0.05, 0.05, (2, 6)),
            ],
            attrs={"target_shape": (3, 3)},
            order=2,
            rtol=1e-5,
        ),
    )
)


# ---------------------------------------------------------------------------
# ROIPooling
# ---------------------------------------------------------------------------


def _round_half_away(value: float) -> int:
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def _roi_bins(
    rois: np.ndarray, shape: tuple[int, ...], pooled_size: tuple[int, ...], spatial_scale: float
) -> Iterator[tuple[int, list[tuple[int, int, slice, slice]]]]:
    """Per roi: its batch index and, per output cell, the (row, column) slices of
    its bin (empty bins give empty slices), as MXNet's ROIPooling rounds them."""
    _, _, height, width = shape
    pooled_h, pooled_w = pooled_size
    for roi in rois.astype(np.float64):
        batch = int(roi[0])
        x1, y1, x2, y2 = (_round_half_away(v * spatial_scale) for v in roi[1:5])
        bin_h = max(y2 - y1 + 1, 1) / pooled_h
        bin_w = max(x2 - x1 + 1, 1) / pooled_w
        cells = []
        for i in range(pooled_h):
            top = min(max(math.floor(i * bin_h) + y1, 0), height)
            bottom = min(max(math.ceil((i + 1) * bin_h) + y1, 0), height)
            for j in range(pooled_w):
                left = min(max(math.floor(j * bin_w) + x1, 0), width)
                right = min(max(math.ceil((j + 1) * bin_w) + x1, 0), width)
                cells.append((i, j, slice(top, bottom), slice(left, right)))
        yield batch, cells


def _roi_pooling_types(
    types: Sequence[TensorType], *, pooled_size: tuple[int, ...], spatial_scale: float
) -> list[TensorType]:
    data, rois = types[0].shape, types[1].shape
    if len(data) != 4 or len(rois) != 2 or rois[1] != 5:
        raise GraphError(f"expects data (N, C, H, W) and rois (R, 5), got {data}, {rois}")
    return [TensorType((rois[0], data[1]) + tuple(pooled_size), types[0].dtype)]


def _roi_pooling(
    data: np.ndarray, rois: np.ndarray, *, pooled_size: tuple[int, ...], spatial_scale: float
) -> np.ndarray:
    out = np.zeros((rois.shape[0], data.shape[1]) + tuple(pooled_size), dtype=data.dtype)
    for r, (batch, cells) in enumerate(_roi_bins(rois, data.shape, pooled_size, spatial_scale)):
        for i, j, rows, columns in cells:
            block = data[batch, :, rows, columns]
            if block.size:
                out[r, :, i, j] = block.reshape(data.shape[1], -1).max(axis=1)
    return out


def roi_pooling_grad(
    g: Expr,
    data: Expr,
    rois: Expr,
    *,
    out: Expr,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
) -> tuple[Expr | None, ...]:
    """g sent to the first largest element of each bin; none for the rois"""
    grad = F._roi_pooling_grad(
        g, data, F.stop_gradient(rois), pooled_size=pooled_size, spatial_scale=spatial_scale
    )
    return grad, None


ROI_ATTRS = {"pooled_size": Attr(as_shape), "spatial_scale": Attr(as_float)}


def _roi_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    rois = np.array([[0, 0, 0, 5, 4], [1, 2, 1, 7, 6], [0, 3, 3, 3, 3.0]])
    # distinct values so that every bin's maximum is unique (finite differences)
    data = rng.permutation(2 * 2 * 8 * 9).reshape(2, 2, 8, 9) / 40.0
    return [data, rois]


register(
    OpDef(
        name="ROIPooling",
        infer=_roi_pooling_types,
        impl=_roi_pooling,
        grad=roi_pooling_grad,
        inputs=("data", "rois"),
        attrs=ROI_ATTRS,
        kind="pool",
        doc="Max pooling of each region (batch index, x1, y1, x2, y2, scaled by "
        "spatial_scale and rounded) into pooled_size bins; empty bins give 0.\n\n"
        "Gradient\n--------\n" + (roi_pooling_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=_roi_inputs,
            attrs={"pooled_size": (2, 2), "spatial_scale": 1.0},
            wrt=(0,),
            order=2,
        ),
    )
)


def _roi_maxima(
    data: np.ndarray, rois: np.ndarray, pooled_size: tuple[int, ...], spatial_scale: float
) -> Iterator[tuple[int, int, int, int, np.ndarray, np.ndarray]]:
    """Per non-empty bin: (roi, batch index, i, j, rows, columns), the pixel of the
    first largest element of the bin in each channel of ``data``."""
    for r, (batch, cells) in enumerate(_roi_bins(rois, data.shape, pooled_size, spatial_scale)):
        for i, j, rows, columns in cells:
            block = data[batch, :, rows, columns].reshape(data.shape[1], -1)
            if not block.size:
                continue
            where = block.argmax(axis=1)
            block_width = columns.stop - columns.start
            yield (
                r,
                batch,
                i,
                j,
                rows.start + where // block_width,
                columns.start + where % block_width,
            )


def _roi_pooling_grad(
    g: np.ndarray,
    data: np.ndarray,
    rois: np.ndarray,
    *,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
) -> np.ndarray:
    out = np.zeros(data.shape, dtype=g.dtype)
    channels = np.arange(data.shape[1])
    for r, batch, i, j, rows, columns in _roi_maxima(data, rois, pooled_size, spatial_scale):
        out[batch, channels, rows, columns] += g[r, :, i, j]
    return out


def roi_pooling_grad_grad(
    h: Expr,
    g: Expr,
    like: Expr,
    rois: Expr,
    *,
    out: Expr,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
) -> tuple[Expr | None, ...]:
    """g: h read at each bin's largest element of ``like`` (the op is linear in g);
    ``like`` and the rois only choose those elements, a piecewise-constant choice:
    none"""
    picked = F._roi_pooling_pick(
        h, like, rois, pooled_size=pooled_size, spatial_scale=spatial_scale
    )
    return picked, None, None


register(
    OpDef(
        name="_roi_pooling_grad",
        infer=lambda types, **_attrs: [TensorType(types[1].shape, types[0].dtype)],
        impl=_roi_pooling_grad,
        grad=roi_pooling_grad_grad,
        inputs=("data", "like", "rois"),
        attrs=ROI_ATTRS,
        kind="pool",
        doc="ROIPooling's gradient: g added at each bin's first largest element of "
        "``like``.\n\nGradient\n--------\n" + (roi_pooling_grad_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-1, 1, (3, 2, 2, 2)), *_roi_inputs(rng)],
            attrs={"pooled_size": (2, 2), "spatial_scale": 1.0},
            wrt=(0, 1),
        ),
    )
)


def _roi_pooling_pick(
    data: np.ndarray,
    like: np.ndarray,
    rois: np.ndarray,
    *,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
) -> np.ndarray:
    out = np.zeros((rois.shape[0], data.shape[1]) + tuple(pooled_size), dtype=data.dtype)
    channels = np.arange(data.shape[1])
    for r, batch, i, j, rows, columns in _roi_maxima(like, rois, pooled_size, spatial_scale):
        out[r, :, i, j] = data[batch, channels, rows, columns]
    return out


def roi_pooling_pick_grad(
    g: Expr,
    data: Expr,
    like: Expr,
    rois: Expr,
    *,
    out: Expr,
    pooled_size: tuple[int, ...],
    spatial_scale: float,
) -> tuple[Expr | None, ...]:
    """data: g added back where it was read (_roi_pooling_grad); ``like`` and the
    rois only choose where: none"""
    grad = F._roi_pooling_grad(g, like, rois, pooled_size=pooled_size, spatial_scale=spatial_scale)
    return grad, None, None


register(
    OpDef(
        name="_roi_pooling_pick",
        infer=lambda types, *, pooled_size, spatial_scale: [
            TensorType((types[2].shape[0], types[0].shape[1]) + tuple(pooled_size), types[0].dtype)
        ],
        impl=_roi_pooling_pick,
        grad=roi_pooling_pick_grad,
        inputs=("data", "like", "rois"),
        attrs=ROI_ATTRS,
        kind="pool",
        doc="``data`` read, per region and bin, at the bin's first largest element of "
        "``like`` (0 for an empty bin): ROIPooling of ``like`` with its choices applied "
        "to ``data``, the adjoint of _roi_pooling_grad.\n\nGradient\n--------\n"
        + (roi_pooling_pick_grad.__doc__ or ""),
        test=TestSpec(
            make_inputs=lambda rng: [rng.uniform(-1, 1, (2, 2, 8, 9)), *_roi_inputs(rng)],
            attrs={"pooled_size": (2, 2), "spatial_scale": 1.0},
            wrt=(0, 1),
        ),
    )
)


# ---------------------------------------------------------------------------
# Correlation
# ---------------------------------------------------------------------------

CORRELATION_ATTRS = {
    "kernel_size": Attr(as_int, 1),
    "max_displacement": Attr(as_int, 1),
    "stride1": Attr(as_int, 1),
    "stride2": Attr(as_int, 1),
    "pad_size": Attr(as_int, 0),
    "is_multiply": Attr(as_bool, True),
}


def _correlation_geometry(
    shape: tuple[int, ...],
    kernel_size: int,
    max_displacement: int,
    stride1: int,
    stride2: int,
    pad_size: int,
) -> tuple[int, int, int]:
    """(output height, output width, displacement radius in steps)."""
    _, _, height, width = shape
    border = max_displacement + (kernel_size - 1) // 2
    out_h = math.ceil((height + 2 * pad_size - 2 * border) / stride1)
    out_w = math.ceil((width + 2 * pad_size - 2 * border) / stride1)
    if out_h < 1 or out_w < 1:
        raise GraphError(f"input of shape {shape} is too small for the displacement")
    return out_h, out_w, max_displacement // stride2


def _correlation_types(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
    a, b = types[0].shape, types[1].shape
    if len(a) != 4 or a != b:
        raise GraphError(f"expects two NCHW inputs of one shape, got {a}, {b}")
    out_h, out_w, radius = _correlation_geometry(a, **_geometry(attrs))
    return [TensorType((a[0], (2 * radius + 1) ** 2, out_h, out_w), types[0].dtype)]


def _correlation_windows(
    shape: tuple[int, ...],
    kernel_size: int,
    max_displacement: int,
    stride1: int,
    stride2: int,
    pad_size: int,
) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Per output channel: the displacement (dy, dx) in pixels; and per kernel
    offset (ky, kx): the rows and columns of data1's padded image each output
    position reads."""
    out_h, out_w, radius = _correlation_geometry(
        shape, kernel_size, max_displacement, stride1, stride2, pad_size
    )
    displacements = [
        ((p - radius) * stride2, (o - radius) * stride2)
        for p in range(2 * radius + 1)
        for o in range(2 * radius + 1)
    ]
    rows = np.arange(out_h) * stride1 + max_displacement
    columns = np.arange(out_w) * stride1 + max_displacement
    return displacements, rows, columns


def _pad(x: np.ndarray, pad_size: int) -> np.ndarray:
    width = ((0, 0), (0, 0), (pad_size, pad_size), (pad_size, pad_size))
    return np.pad(x.astype(np.float64), width)


def _correlation(data1: np.ndarray, data2: np.ndarray, **attrs: Any) -> np.ndarray:
    k, pad_size, multiply = attrs["kernel_size"], attrs["pad_size"], attrs["is_multiply"]
    displacements, rows, columns = _correlation_windows(data1.shape, **_geometry(attrs))
    a, b = _pad(data1, pad_size), _pad(data2, pad_size)
    n, c = data1.shape[:2]
    out = np.zeros((n, len(displacements), len(rows), len(columns)))
    for channel, (dy, dx) in enumerate(displacements):
        for ky in range(k):
            for kx in range(k):
                first = a[:, :, rows[:, None] + ky, columns[None, :] + kx]
                second = b[:, :, rows[:, None] + ky + dy, columns[None, :] + kx + dx]
                term = first * second if multiply else np.abs(first - second)
                out[:, channel] += term.sum(axis=1)
    return (out / (k * k * c)).astype(data1.dtype)


def _geometry(attrs: dict) -> dict:
    return {key: attrs[key] for key in CORRELATION_ATTRS if key != "is_multiply"}


def correlation_grad(
    g: Expr, data1: Expr, data2: Expr, *, out: Expr, **attrs: Any
) -> tuple[Expr | None, ...]:
    """multiply: for each displacement, g times the other input's matching window,
    summed back onto each input's pixels, over k^2 C; absolute difference: the
    same with sign(a - b) and -sign(a - b)"""
    return (
        F._correlation_grad(g, data1, data2, wrt=0, **attrs),
        F._correlation_grad(g, data1, data2, wrt=1, **attrs),
    )


register(
    OpDef(
        name="Correlation",
        infer=_correlation_types,
        impl=_correlation,
        grad=correlation_grad,
        inputs=("data1", "data2"),
        attrs=CORRELATION_ATTRS,
        kind="pool",
        doc="FlowNet's correlation of two NCHW inputs: per displacement within "
        "max_displacement (in steps of stride2), the mean over a kernel window and the "
        "channels of data1 times (or minus, in absolute value) the displaced data2."
        "\n\nGradient\n--------\n" + (correlation_grad.__doc__ or ""),
        test=TestSpec(
            shapes=((1, 2, 5, 6), (1, 2, 5, 6)),
            attrs={"kernel_size": 3, "max_displacement": 1, "pad_size": 1, "stride2": 1},
        ),
    )
)


def _window_pairs(
    shape: tuple[int, ...], attrs: dict
) -> Iterator[tuple[int, tuple[Any, ...], tuple[Any, ...]]]:
    """Per output channel and kernel offset: (channel, index into the padded data1,
    index into the padded data2), the pixels each output position reads."""
    k = attrs["kernel_size"]
    displacements, rows, columns = _correlation_windows(shape, **_geometry(attrs))
    for channel, (dy, dx) in enumerate(displacements):
        for ky in range(k):
            for kx in range(k):
                first = (slice(None), slice(None), rows[:, None] + ky, columns[None, :] + kx)
                second = (
                    slice(None),
                    slice(None),
                    rows[:, None] + ky + dy,
                    columns[None, :] + kx + dx,
                )
                yield channel, first, second


def _correlation_grad(
    g: np.ndarray, data1: np.ndarray, data2: np.ndarray, *, wrt: int, **attrs: Any
) -> np.ndarray:
    k, pad_size, multiply = attrs["kernel_size"], attrs["pad_size"], attrs["is_multiply"]
    a, b = _pad(data1, pad_size), _pad(data2, pad_size)
    grad = np.zeros_like(a)
    scale = g.astype(np.float64) / (k * k * data1.shape[1])
    for channel, index_a, index_b in _window_pairs(data1.shape, attrs):
        weight = scale[:, channel][:, None]  # (N, 1, h, w)
        first, second = a[index_a], b[index_b]
        if multiply:
            term = weight * (second if wrt == 0 else first)
        else:
            sign = np.sign(first - second)
            term = weight * (sign if wrt == 0 else -sign)
        # (ignore: ufunc.at's index, as in _bilinear_sampler_grad)
        np.add.at(grad, index_a if wrt == 0 else index_b, term)  # type: ignore[arg-type]
    height, width = data1.shape[2:]
    return grad[:, :, pad_size : pad_size + height, pad_size : pad_size + width].astype(data1.dtype)


def correlation_grad_grad(
    h: Expr, g: Expr, data1: Expr, data2: Expr, *, out: Expr, wrt: int, **attrs: Any
) -> tuple[Expr | None, ...]:
    """bilinear (is_multiply): wrt=0 gives g Correlation(h, data2) and data2
    _correlation_grad(g, h, data2, wrt=1); wrt=1 gives g Correlation(data1, h) and data1
    _correlation_grad(g, data1, h, wrt=0). Absolute difference: the op is linear in g,
    whose gradient is the derivative of the correlation along h
    (_correlation_tangent); the sign it reads is piecewise constant in the data: none"""
    if not attrs["is_multiply"]:
        return F._correlation_tangent(h, data1, data2, wrt=wrt, **attrs), None, None
    if wrt == 0:
        return (
            F.Correlation(h, data2, **attrs),
            None,
            F._correlation_grad(g, h, data2, wrt=1, **attrs),
        )
    return (
        F.Correlation(data1, h, **attrs),
        F._correlation_grad(g, data1, h, wrt=0, **attrs),
        None,
    )


register(
    OpDef(
        name="_correlation_grad",
        infer=lambda types, **_attrs: [types[1 + _attrs["wrt"]]],
        impl=_correlation_grad,
        grad=correlation_grad_grad,
        inputs=("data", "data1", "data2"),
        attrs={**CORRELATION_ATTRS, "wrt": Attr(as_int)},
        kind="pool",
        doc="Correlation's gradient for data1 (wrt=0) or data2 (wrt=1).\n\nGradient\n"
        "--------\n" + str(correlation_grad_grad.__doc__),
        test=TestSpec(
            shapes=((1, 9, 3, 4), (1, 2, 5, 6), (1, 2, 5, 6)),
            attrs={"kernel_size": 3, "max_displacement": 1, "pad_size": 1, "wrt": 1},
        ),
    )
)


def _correlation_tangent(
    h: np.ndarray, data1: np.ndarray, data2: np.ndarray, *, wrt: int, **attrs: Any
) -> np.ndarray:
    k, pad_size, multiply = attrs["kernel_size"], attrs["pad_size"], attrs["is_multiply"]
    a, b, t = (_pad(x, pad_size) for x in (data1, data2, h))
    out_h, out_w, radius = _correlation_geometry(data1.shape, **_geometry(attrs))
    out = np.zeros((data1.shape[0], (2 * radius + 1) ** 2, out_h, out_w))
    for channel, index_a, index_b in _window_pairs(data1.shape, attrs):
        first, second = a[index_a], b[index_b]
        if multiply:
            term = t[index_a] * second if wrt == 0 else first * t[index_b]
        else:
            sign = np.sign(first - second)
            term = sign * t[index_a] if wrt == 0 else -sign * t[index_b]
        out[:, channel] += term.sum(axis=1)
    return (out / (k * k * data1.shape[1])).astype(h.dtype)


def correlation_tangent_grad(
    g: Expr, h: Expr, data1: Expr, data2: Expr, *, out: Expr, wrt: int, **attrs: Any
) -> tuple[Expr | None, ...]:
    """h: _correlation_grad(g, data1, data2, wrt), the adjoint; bilinear
    (is_multiply): the other input as in Correlation(h, data2) (wrt=0) or
    Correlation(data1, h) (wrt=1); absolute difference: none for the data, whose
    sign is piecewise constant"""
    if not attrs["is_multiply"]:
        return F._correlation_grad(g, data1, data2, wrt=wrt, **attrs), None, None
    if wrt == 0:
        grads = correlation_grad(g, h, data2, out=out, **attrs)
        return grads[0], None, grads[1]
    grads = correlation_grad(g, data1, h, out=out, **attrs)
    return grads[1], grads[0], None


register(
    OpDef(
        name="_correlation_tangent",
        infer=lambda types, *, wrt, **attrs: _correlation_types(types[1:], **attrs),
        impl=_correlation_tangent,
        grad=correlation_tangent_grad,
        inputs=("data", "data1", "data2"),
        attrs={**CORRELATION_ATTRS, "wrt": Attr(as_int)},
        kind="pool",
        doc="The derivative of Correlation(data1, data2) along ``data`` in data1 (wrt=0) "
        "or data2 (wrt=1); the adjoint of _correlation_grad.\n\nGradient\n--------\n"
        + str(correlation_tangent_grad.__doc__),
        test=TestSpec(
            shapes=((1, 2, 5, 6), (1, 2, 5, 6), (1, 2, 5, 6)),
            attrs={
                "kernel_size": 3,
                "max_displacement": 1,
                "pad_size": 1,
                "wrt": 0,
                "is_multiply": False,
            },
        ),
    )
)
