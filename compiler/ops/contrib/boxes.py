"""contrib ops on bounding boxes: box_iou, box_nms, bipartite_matching,
box_encode, box_decode, SSD's MultiBoxPrior, MultiBoxTarget and MultiBoxDetection,
Faster R-CNN's Proposal and MultiProposal."""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...expr import Expr
from ...ir import GraphError, TensorType
from ...registry import (
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_float,
    as_int,
    one_of,
    register,
)
from ..common import F

# ---------------------------------------------------------------------------
# MultiBoxPrior: SSD's anchor boxes for a feature map
# ---------------------------------------------------------------------------


def _floats(value: Any) -> tuple[float, ...]:
    """Parse a tuple of floats (a number, a sequence, or MXNet's string of one)."""
    value = ast.literal_eval(value) if isinstance(value, str) else value
    if isinstance(value, (int, float)):
        value = (value,)
    return tuple(float(v) for v in value)


_PRIOR_ATTRS = {
    "sizes": Attr(_floats, (1.0,)),
    "ratios": Attr(_floats, (1.0,)),
    "clip": Attr(as_bool, False),
    "steps": Attr(_floats, (-1.0, -1.0)),
    "offsets": Attr(_floats, (0.5, 0.5)),
}


def _prior_types(
    types: Sequence[TensorType],
    *,
    sizes: tuple[float, ...],
    ratios: tuple[float, ...],
    clip: bool,
    steps: tuple[float, ...],
    offsets: tuple[float, ...],
) -> list[TensorType]:
    data = types[0].shape
    if len(data) != 4:
        raise GraphError("data must be NCHW")
    count = data[2] * data[3] * (len(sizes) + len(ratios) - 1)
    return [TensorType((1, count, 4), types[0].dtype)]


def _multibox_prior(
    data: np.ndarray,
    *,
    sizes: tuple[float, ...],
    ratios: tuple[float, ...],
    clip: bool,
    steps: tuple[float, ...],
    offsets: tuple[float, ...],
) -> np.ndarray:
    # In float32, step by step as MXNet's kernel: anchors equal to the last bit,
    # whose IoU ties then break as MXNet's do in MultiBoxTarget.
    f32 = np.float32
    height, width = data.shape[2], data.shape[3]
    step_y = f32(steps[0]) if steps[0] > 0 else f32(1.0) / f32(height)
    step_x = f32(steps[1]) if steps[1] > 0 else f32(1.0) / f32(width)
    # per location: every size at the first ratio, then the first size at the others
    shapes = [(f32(size), np.sqrt(f32(ratios[0]))) for size in sizes] + [
        (f32(sizes[0]), np.sqrt(f32(r))) for r in ratios[1:]
    ]
    half = np.array(
        [
            [size * f32(height) / f32(width) * root / f32(2), size / root / f32(2)]
            for size, root in shapes
        ],
        dtype=f32,
    )
    cy = (np.arange(height, dtype=f32) + f32(offsets[0])) * step_y
    cx = (np.arange(width, dtype=f32) + f32(offsets[1])) * step_x
    cy, cx = np.meshgrid(cy, cx, indexing="ij")
    centers = np.stack([cx.ravel(), cy.ravel()], axis=-1)[:, None, :]
    boxes = np.concatenate([centers - half, centers + half], axis=-1).reshape(1, -1, 4)
    if clip:
        boxes = np.clip(boxes, f32(0.0), f32(1.0))
    return boxes.astype(data.dtype)


register(
    OpDef(
        name="_contrib_MultiBoxPrior",
        infer=_prior_types,
        impl=_multibox_prior,
        attrs=_PRIOR_ATTRS,
        differentiable=False,
        shape_only=(0,),
        kind="opaque",
        doc="Anchor boxes (xmin, ymin, xmax, ymax, relative to the image) centred "
        "on each cell of the feature map: every size at the first ratio, then "
        "the first size at each other ratio.",
        test=TestSpec(shapes=((1, 3, 2, 3),), attrs={"sizes": (0.5, 0.25), "ratios": (1, 2, 0.5)}),
    )
)


def _box_encode_types(types: Sequence[TensorType]) -> list[TensorType]:
    samples, matches, anchors, refs, means, stds = (t.shape for t in types)
    if (
        matches != samples
        or anchors != samples + (4,)
        or len(refs) != 3
        or refs[0] != samples[0]
        or refs[2] != 4
        or means != (4,)
        or stds != (4,)
    ):
        raise GraphError(
            "expected samples, matches (B, N), anchors (B, N, 4), refs "
            "(B, M, 4), means and stds (4,)"
        )
    return [TensorType(anchors, types[2].dtype), TensorType(anchors, types[2].dtype)]


def _box_encode(
    samples: np.ndarray,
    matches: np.ndarray,
    anchors: np.ndarray,
    refs: np.ndarray,
    means: np.ndarray,
    stds: np.ndarray,
) -> tuple[np.ndarray, ...]:
    rows = np.arange(refs.shape[0])[:, None]
    picked = refs[rows, np.clip(matches.astype(np.int64), 0, refs.shape[1] - 1)]
    gx, gy, gw, gh = _center_form(picked.astype(np.float64))
    ax, ay, aw, ah = _center_form(anchors.astype(np.float64))
    raw = np.stack([(gx - ax) / aw, (gy - ay) / ah, np.log(gw / aw), np.log(gh / ah)], -1)
    positive = (samples > 0.5)[..., None]
    with np.errstate(all="ignore"):
        targets = np.where(positive, (raw - means) / stds, 0.0)
    return (
        targets.astype(anchors.dtype),
        np.broadcast_to(positive, anchors.shape).astype(anchors.dtype),
    )


BOX_ENCODE = register(
    OpDef(
        name="_contrib_box_encode",
        infer=_box_encode_types,
        impl=_box_encode,
        inputs=("samples", "matches", "anchors", "refs", "means", "stds"),
        differentiable=False,
        kind="opaque",
        doc="Training targets of positive samples (samples > 0.5): the matched "
        "reference box's normalised centre offsets and log sizes against the "
        "anchor, minus means, over stds; and their mask.",
        test=TestSpec(
            make_inputs=lambda rng: [
                np.array([[1.0, -1.0, 1.0]]),
                np.array([[1.0, 0.0, 0.0]]),
                np.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6], [0.3, 0.3, 0.5, 0.9]]]),
                np.array([[[0.1, 0.15, 0.45, 0.5], [0.5, 0.25, 0.85, 0.6]]]),
                np.array([0.0, 0.1, 0.0, 0.0]),
                np.array([0.1, 0.1, 0.2, 0.3]),
            ]
        ),
    )
)


def _box_decode_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    data, anchors = types[0].shape, types[1].shape
    if len(data) != 3 or data[2] != 4 or anchors[1:] != data[1:]:
        raise GraphError("expected data (B, N, 4) and anchors (1, N, 4)")
    return [types[0]]


def _box_decode(
    data: np.ndarray,
    anchors: np.ndarray,
    *,
    std0: float,
    std1: float,
    std2: float,
    std3: float,
    clip: float,
    format: str,
) -> np.ndarray:
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
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1).astype(
        data.dtype
    )


register(
    OpDef(
        name="_contrib_box_decode",
        infer=_box_decode_types,
        impl=_box_decode,
        inputs=("data", "anchors"),
        differentiable=False,
        kind="opaque",
        attrs={
            "std0": Attr(as_float, 1.0),
            "std1": Attr(as_float, 1.0),
            "std2": Attr(as_float, 1.0),
            "std3": Attr(as_float, 1.0),
            "clip": Attr(as_float, -1.0),
            "format": Attr(one_of("center", "corner"), "center"),
        },
        doc="Corner boxes from predicted offsets against anchors (the inverse of "
        "box_encode); MXNet's gradient is zero.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.normal(scale=0.3, size=(2, 3, 4)),
                np.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6], [0.3, 0.3, 0.5, 0.9]]]),
            ],
            attrs={"std2": 0.2, "clip": 0.5, "format": "corner"},
        ),
    )
)

# ---------------------------------------------------------------------------
# MultiBoxTarget and MultiBoxDetection: SSD's training targets and decoding
# ---------------------------------------------------------------------------

_VARIANCES = Attr(_floats, (0.1, 0.1, 0.2, 0.2))


def _center_form(boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return (boxes[..., 0] + width / 2, boxes[..., 1] + height / 2, width, height)


def _target_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    anchors, labels, preds = (t.shape for t in types)
    if (
        len(anchors) != 3
        or anchors[2] != 4
        or len(labels) != 3
        or labels[2] < 5
        or len(preds) != 3
        or preds[2] != anchors[1]
    ):
        raise GraphError("expected anchor (1, N, 4), label (B, M, 5+), cls_pred (B, C, N)")
    batch, count = labels[0], anchors[1]
    dtype = types[0].dtype
    return [
        TensorType((batch, count * 4), dtype),
        TensorType((batch, count * 4), dtype),
        TensorType((batch, count), dtype),
    ]


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


def _multibox_target(
    anchor: np.ndarray,
    label: np.ndarray,
    cls_pred: np.ndarray,
    *,
    overlap_threshold: float,
    ignore_label: float,
    negative_mining_ratio: float,
    negative_mining_thresh: float,
    minimum_negative_samples: int,
    variances: tuple[float, ...],
) -> tuple[np.ndarray, ...]:
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
        loc_target[b, positive] = np.stack(
            [
                (gx - ax[positive]) / aw[positive] / variances[0],
                (gy - ay[positive]) / ah[positive] / variances[1],
                np.log(gw / aw[positive]) / variances[2],
                np.log(gh / ah[positive]) / variances[3],
            ],
            axis=-1,
        )
        loc_mask[b, positive] = 1.0
    dtype = anchor.dtype
    return (
        loc_target.reshape(batch, -1).astype(dtype),
        loc_mask.reshape(batch, -1).astype(dtype),
        cls_target.astype(dtype),
    )


def _target_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    anchors = _multibox_prior(
        np.zeros((1, 1, 3, 3)),
        sizes=(0.4, 0.2),
        ratios=(1.0, 2.0),
        clip=False,
        steps=(-1.0, -1.0),
        offsets=(0.5, 0.5),
    )
    labels = np.full((2, 2, 5), -1.0)
    labels[0, 0] = [0, 0.1, 0.1, 0.5, 0.45]
    labels[0, 1] = [1, 0.5, 0.4, 0.9, 0.9]
    labels[1, 0] = [2, 0.2, 0.3, 0.7, 0.6]
    return [anchors, labels, rng.normal(size=(2, 4, anchors.shape[1]))]


MULTIBOX_TARGET = register(
    OpDef(
        name="_contrib_MultiBoxTarget",
        infer=_target_types,
        impl=_multibox_target,
        inputs=("anchor", "label", "cls_pred"),
        differentiable=False,
        kind="opaque",
        attrs={
            "overlap_threshold": Attr(as_float, 0.5),
            "ignore_label": Attr(as_float, -1.0),
            "negative_mining_ratio": Attr(as_float, -1.0),
            "negative_mining_thresh": Attr(as_float, 0.5),
            "minimum_negative_samples": Attr(as_int, 0),
            "variances": _VARIANCES,
        },
        doc="SSD training targets: each anchor matched to a ground-truth box "
        "(greedy bipartite, then IoU > overlap_threshold) gives its box "
        "offsets, their mask and its class (0 background; hard negative "
        "mining with negative_mining_ratio > 0).",
        test=TestSpec(make_inputs=_target_inputs, wrt=()),
    )
)


def _detection_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    probs, loc, anchors = (t.shape for t in types)
    if len(probs) != 3 or loc != (probs[0], probs[2] * 4) or anchors[1:] != (probs[2], 4):
        raise GraphError("expected cls_prob (B, C, N), loc_pred (B, N*4), anchor (1, N, 4)")
    return [TensorType((probs[0], probs[2], 6), types[0].dtype)]


def _multibox_detection(
    cls_prob: np.ndarray,
    loc_pred: np.ndarray,
    anchor: np.ndarray,
    *,
    clip: bool,
    threshold: float,
    background_id: int,
    nms_threshold: float,
    force_suppress: bool,
    variances: tuple[float, ...],
    nms_topk: int,
) -> np.ndarray:
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
        rows = np.concatenate(
            [best[order, None].astype(np.float64), score[order, None], boxes[order]], axis=1
        )
        kept = len(rows) if nms_topk <= 0 else min(nms_topk, len(rows))
        rows[kept:, 0] = -1  # past nms_topk: dropped, their score and box still shown
        for i in range(kept):
            if rows[i, 0] < 0:
                continue
            for j in range(i + 1, kept):
                if (
                    rows[j, 0] >= 0
                    and (force_suppress or rows[i, 0] == rows[j, 0])
                    and _iou(rows[i, 2:], rows[j, 2:]) > nms_threshold
                ):
                    rows[j, 0] = -1
        out[b, : len(rows)] = rows
    return out.astype(cls_prob.dtype)


def _detection_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    anchors = _multibox_prior(
        np.zeros((1, 1, 3, 3)),
        sizes=(0.4, 0.2),
        ratios=(1.0, 2.0),
        clip=False,
        steps=(-1.0, -1.0),
        offsets=(0.5, 0.5),
    )
    logits = rng.normal(size=(2, 3, anchors.shape[1]))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return [probs, rng.normal(scale=0.3, size=(2, anchors.shape[1] * 4)), anchors]


register(
    OpDef(
        name="_contrib_MultiBoxDetection",
        infer=_detection_types,
        impl=_multibox_detection,
        inputs=("cls_prob", "loc_pred", "anchor"),
        differentiable=False,
        kind="opaque",
        attrs={
            "clip": Attr(as_bool, True),
            "threshold": Attr(as_float, 0.01),
            "background_id": Attr(as_int, 0),
            "nms_threshold": Attr(as_float, 0.5),
            "force_suppress": Attr(as_bool, False),
            "variances": _VARIANCES,
            "nms_topk": Attr(as_int, -1),
        },
        doc="SSD detections: each anchor's best class and decoded box, those "
        "scoring at least ``threshold`` sorted by score, overlapping ones of "
        "a class suppressed (class -1); rows [class, score, xmin, ymin, xmax, "
        "ymax], -1 rows after the last detection.",
        test=TestSpec(make_inputs=_detection_inputs, wrt=(), attrs={"threshold": 0.2}),
    )
)

# ---------------------------------------------------------------------------
# Proposal / MultiProposal: Faster R-CNN's region proposals (pixel boxes with
# the +1 width convention of its reference code)
# ---------------------------------------------------------------------------

_PROPOSAL_ATTRS = {
    "rpn_pre_nms_top_n": Attr(as_int, 6000),
    "rpn_post_nms_top_n": Attr(as_int, 300),
    "threshold": Attr(as_float, 0.7),
    "rpn_min_size": Attr(as_int, 16),
    "scales": Attr(_floats, (4.0, 8.0, 16.0, 32.0)),
    "ratios": Attr(_floats, (0.5, 1.0, 2.0)),
    "feature_stride": Attr(as_int, 16),
    "output_score": Attr(as_bool, False),
    "iou_loss": Attr(as_bool, False),
}


def _proposal_types(
    types: Sequence[TensorType],
    *,
    rpn_post_nms_top_n: int,
    scales: tuple[float, ...],
    ratios: tuple[float, ...],
    **_attrs: Any,
) -> list[TensorType]:
    scores, deltas, info = (t.shape for t in types)
    anchors = len(scales) * len(ratios)
    if (
        len(scores) != 4
        or scores[1] != 2 * anchors
        or deltas != (scores[0], 4 * anchors) + scores[2:]
        or info != (scores[0], 3)
    ):
        raise GraphError(
            f"expected cls_prob (B, {2 * anchors}, H, W), bbox_pred (B, "
            f"{4 * anchors}, H, W) and im_info (B, 3)"
        )
    count = scores[0] * rpn_post_nms_top_n
    return [TensorType((count, 5), types[0].dtype), TensorType((count, 1), types[0].dtype)]


def _base_anchors(stride: int, scales: Sequence[float], ratios: Sequence[float]) -> np.ndarray:
    """The reference anchors of one cell: every ratio, each at every scale."""
    center = 0.5 * (stride - 1)
    anchors = []
    for ratio in ratios:
        width = math.floor(math.sqrt(stride * stride / ratio) + 0.5)
        height = math.floor(width * ratio + 0.5)
        for scale in scales:
            w, h = width * scale, height * scale
            anchors.append(
                [
                    center - 0.5 * (w - 1),
                    center - 0.5 * (h - 1),
                    center + 0.5 * (w - 1),
                    center + 0.5 * (h - 1),
                ]
            )
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
        width = np.maximum(
            0.0,
            np.minimum(boxes[i, 2], boxes[i + 1 :, 2])
            - np.maximum(boxes[i, 0], boxes[i + 1 :, 0])
            + 1,
        )
        height = np.maximum(
            0.0,
            np.minimum(boxes[i, 3], boxes[i + 1 :, 3])
            - np.maximum(boxes[i, 1], boxes[i + 1 :, 1])
            + 1,
        )
        inter = width * height
        suppressed[i + 1 :] |= inter / (areas[i] + areas[i + 1 :] - inter) > threshold
    return keep


def _proposal(
    cls_prob: np.ndarray,
    bbox_pred: np.ndarray,
    im_info: np.ndarray,
    *,
    rpn_pre_nms_top_n: int,
    rpn_post_nms_top_n: int,
    threshold: float,
    rpn_min_size: int,
    scales: tuple[float, ...],
    ratios: tuple[float, ...],
    feature_stride: int,
    output_score: bool,
    iou_loss: bool,
) -> tuple[np.ndarray, ...]:
    batch, _, height, width = cls_prob.shape
    base = _base_anchors(feature_stride, scales, ratios)
    count = len(base)
    shift_y, shift_x = np.meshgrid(
        np.arange(height) * feature_stride, np.arange(width) * feature_stride, indexing="ij"
    )
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
            boxes = np.stack(
                [cx - 0.5 * (w - 1), cy - 0.5 * (h - 1), cx + 0.5 * (w - 1), cy + 0.5 * (h - 1)],
                axis=-1,
            )
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, im_width - 1)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, im_height - 1)
        # cells past the image (its size over the stride, truncated) score -1
        cell_y, cell_x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        outside = (cell_y >= int(im_height / feature_stride)) | (
            cell_x >= int(im_width / feature_stride)
        )
        scores[np.repeat(outside.reshape(-1), count)] = -1
        # boxes smaller than the minimum: score -1, grown by half the minimum each side
        min_size = rpn_min_size * im_scale
        small = (boxes[:, 2] - boxes[:, 0] + 1 < min_size) | (
            boxes[:, 3] - boxes[:, 1] + 1 < min_size
        )
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


def _proposal_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [
        rng.uniform(size=(2, 12, 3, 4)),
        rng.normal(scale=0.2, size=(2, 24, 3, 4)),
        np.array([[40.0, 60.0, 1.0], [48.0, 30.0, 0.5]]),
    ]


PROPOSAL = register(
    OpDef(
        name="_contrib_Proposal",
        aliases=("_contrib_MultiProposal",),
        infer=_proposal_types,
        impl=_proposal,
        inputs=("cls_prob", "bbox_pred", "im_info"),
        attrs=_PROPOSAL_ATTRS,
        visible_outputs=lambda attrs: 2 if attrs["output_score"] else 1,
        differentiable=False,
        kind="opaque",
        doc="Region proposals: anchors shifted over the feature map, moved by bbox_pred, "
        "clipped to the image, too small ones dropped, sorted by score, NMS; rows "
        "[batch index, x1, y1, x2, y2] (MultiProposal: any batch size).",
        test=TestSpec(
            make_inputs=_proposal_inputs,
            attrs={
                "rpn_pre_nms_top_n": 20,
                "rpn_post_nms_top_n": 6,
                "rpn_min_size": 4,
                "scales": (2.0, 4.0),
                "ratios": (0.5, 1.0, 2.0),
                "output_score": True,
            },
        ),
    )
)

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


def _box_iou_types(types: Sequence[TensorType], *, format: str) -> list[TensorType]:
    lhs, rhs = types[0].shape, types[1].shape
    if lhs[-1:] != (4,) or rhs[-1:] != (4,):
        raise GraphError("boxes must have 4 coordinates on the last axis")
    return [TensorType(lhs[:-1] + rhs[:-1], types[0].dtype)]


def _box_iou(lhs: np.ndarray, rhs: np.ndarray, *, format: str) -> np.ndarray:
    return _iou(_corners(lhs, format), _corners(rhs, format)).astype(lhs.dtype)


register(
    OpDef(
        name="_contrib_box_iou",
        infer=_box_iou_types,
        impl=_box_iou,
        inputs=("lhs", "rhs"),
        attrs={"format": Attr(one_of("corner", "center"), "corner")},
        differentiable=False,
        doc="Intersection over union of every lhs box with every rhs box "
        "(MXNet's gradient is zero).",
        test=TestSpec(
            make_inputs=lambda rng: [
                np.array([[0, 0, 2, 2], [1, 1, 3, 3.5]]),
                np.array([[[0, 0, 1, 1], [0.5, 0.5, 2, 2]]]),
            ]
        ),
    )
)

_NMS_ATTRS = {
    "overlap_thresh": Attr(as_float, 0.5),
    "valid_thresh": Attr(as_float, 0.0),
    "topk": Attr(as_int, -1),
    "coord_start": Attr(as_int, 2),
    "score_index": Attr(as_int, 1),
    "id_index": Attr(as_int, -1),
    "background_id": Attr(as_int, -1),
    "force_suppress": Attr(as_bool, False),
    "in_format": Attr(one_of("corner", "center"), "corner"),
    "out_format": Attr(one_of("corner", "center"), "corner"),
}


def _box_nms_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
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
        order = order[: attrs["topk"]]
    corners = _corners(batch[:, start : start + 4].astype(np.float64), attrs["in_format"])
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


def _box_nms(data: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
    batches = data.reshape((-1,) + data.shape[-2:])
    out = np.full_like(batches, -1)
    where = np.full(batches.shape[:2], -1, dtype=data.dtype)
    start = attrs["coord_start"]
    for b, batch in enumerate(batches):
        kept = _nms_keep(batch, attrs)
        out[b, : len(kept)] = batch[kept]
        where[b, : len(kept)] = kept
        if kept and attrs["in_format"] != attrs["out_format"]:
            coords = batch[kept, start : start + 4].astype(np.float64)
            converted = (
                _centers(coords) if attrs["out_format"] == "center" else _corners(coords, "center")
            )
            out[b, : len(kept), start : start + 4] = converted
    return out.reshape(data.shape), where.reshape(data.shape[:-1])


def box_nms_grad(g: tuple[Expr, ...], data: Expr, *, out: tuple[Expr, ...], **attrs: Any) -> Expr:
    """each kept box's gradient row moved back to the box's input row"""
    return F._backward_contrib_box_nms(g[0], out[1], data)


BOX_NMS = register(
    OpDef(
        name="_contrib_box_nms",
        aliases=("_contrib_box_non_maximum_suppression",),
        infer=_box_nms_types,
        impl=_box_nms,
        grad=box_nms_grad,
        attrs=_NMS_ATTRS,
        visible_outputs=1,
        kind="opaque",
        doc="Non-maximum suppression: boxes sorted by score, overlapping ones "
        "(IoU > overlap_thresh) dropped, the rest of the rows -1.\n\nGradient\n"
        "--------\nthe output rows' gradients back at their input rows",
        test=TestSpec(
            make_inputs=lambda rng: [
                np.array(
                    [
                        [0, 0.5, 0.1, 0.1, 0.2, 0.2],
                        [1, 0.4, 0.1, 0.1, 0.2, 0.2],
                        [0, 0.3, 0.1, 0.1, 0.14, 0.14],
                        [0, 0.6, 0.5, 0.5, 0.7, 0.8],
                    ]
                )
                + rng.uniform(0, 1e-3, (4, 6)) * [0, 1, 0, 0, 0, 0]
            ],
            attrs={"overlap_thresh": 0.1},
            order=1,
        ),
    )
)


def _nms_back_types(types: Sequence[TensorType]) -> list[TensorType]:
    return [TensorType(types[2].shape, types[0].dtype)]


def _nms_back(g: np.ndarray, where: np.ndarray, like: np.ndarray) -> np.ndarray:
    rows = g.reshape((-1,) + g.shape[-2:])
    index = where.reshape(rows.shape[:2]).astype(np.int64)
    out = np.zeros(rows.shape, dtype=g.dtype)
    for b in range(rows.shape[0]):
        kept = index[b] >= 0
        out[b, index[b][kept]] = rows[b][kept]
    return out.reshape(like.shape)


register(
    OpDef(
        name="_backward_contrib_box_nms",
        infer=_nms_back_types,
        impl=_nms_back,
        inputs=("grad", "index", "data"),
        shape_only=(2,),
        differentiable=False,
        kind="opaque",
        doc="box_nms's gradient: rows of grad moved to the input rows in index.",
        test=TestSpec(
            make_inputs=lambda rng: [
                rng.uniform(-2, 2, (3, 2)),
                np.array([2.0, 0.0, -1.0]),
                np.zeros((3, 2)),
            ]
        ),
    )
)


def _matching_types(
    types: Sequence[TensorType], *, is_ascend: bool, threshold: float, topk: int
) -> list[TensorType]:
    shape = types[0].shape
    if len(shape) < 2:
        raise GraphError("data must be (..., N, M)")
    return [
        TensorType(shape[:-1], types[0].dtype),
        TensorType(shape[:-2] + shape[-1:], types[0].dtype),
    ]


def _bipartite_matching(
    data: np.ndarray, *, is_ascend: bool, threshold: float, topk: int
) -> tuple[np.ndarray, ...]:
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


MATCHING = register(
    OpDef(
        name="_contrib_bipartite_matching",
        infer=_matching_types,
        impl=_bipartite_matching,
        differentiable=False,
        kind="opaque",
        attrs={
            "is_ascend": Attr(as_bool, False),
            "threshold": Attr(as_float),
            "topk": Attr(as_int, -1),
        },
        doc="Greedy bipartite matching of a score matrix (best score first): each "
        "row's matched column and each column's row, -1 if none.",
        test=TestSpec(shapes=((2, 3, 4),), attrs={"threshold": 1e-12}),
    )
)


# Output counts before shapes are known (read by the Symbol frontend for nodes
# whose input shapes are pending), for the ops above with several outputs.
for _opdef, _count in (
    (BOX_ENCODE, 2),
    (BOX_NMS, 2),
    (MATCHING, 2),
    (MULTIBOX_TARGET, 3),
    (PROPOSAL, 2),
):
    _opdef.num_outputs = _count
del _opdef, _count
