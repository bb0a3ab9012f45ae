"""mx.nd.contrib / mx.sym.contrib ops against numpy references (and MXNet 1.9.1's
numbers where noted), boolean_mask's gradient by finite differences, and
mx.contrib.autograd. The generated per-op tests check each op's shape rule and
gradient too."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler
from symgrad import op_testing as tu
from symgrad.contrib import autograd as ag


def test_namespaces_strip_the_contrib_prefix():
    contrib_ops = [n[len("_contrib_") :] for n in compiler.OPS if n.startswith("_contrib_")]
    assert {
        "CTCLoss",
        "ctc_loss",
        "adamw_update",
        "boolean_mask",
        "ROIAlign",
        "box_nms",
        "box_non_maximum_suppression",
    } <= set(contrib_ops)
    for name in contrib_ops + ["foreach", "while_loop", "cond", "isinf", "isnan", "isfinite"]:
        assert callable(getattr(mx.nd.contrib, name)), name
        assert callable(getattr(mx.sym.contrib, name)), name
    assert mx.contrib.nd is mx.nd.contrib and mx.contrib.sym is mx.sym.contrib


def test_quadratic_and_div_sqrt_dim():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(
        mx.nd.contrib.quadratic(mx.nd.array(x), a=1, b=2, c=3).asnumpy(), [[3, 6, 11], [18, 27, 38]]
    )
    np.testing.assert_allclose(
        mx.nd.contrib.div_sqrt_dim(mx.nd.array(x)).asnumpy(), x / np.sqrt(3), rtol=1e-6
    )


def test_allclose_index_array_arange_like():
    a = mx.nd.array([[1, 2], [3, 4]])
    close = mx.nd.contrib.allclose(a, a + 1e-9)
    assert close.shape == () and close.dtype == np.uint8 and close.asscalar() == 1
    assert mx.nd.contrib.allclose(a, a + 1).asscalar() == 0
    index = mx.nd.contrib.index_array(mx.nd.zeros((2, 3)))
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index.asnumpy(), np.stack(np.indices((2, 3)), axis=-1))
    np.testing.assert_array_equal(
        mx.nd.contrib.index_array(mx.nd.zeros((2, 3)), axes=(-1,)).asnumpy()[..., 0],
        [[0, 1, 2], [0, 1, 2]],
    )
    x = mx.nd.zeros((2, 3))
    np.testing.assert_array_equal(
        mx.nd.contrib.arange_like(x).asnumpy(), np.arange(6).reshape(2, 3)
    )
    np.testing.assert_array_equal(
        mx.nd.contrib.arange_like(x, start=1, step=2, axis=1).asnumpy(), [1, 3, 5]
    )
    np.testing.assert_array_equal(
        mx.nd.contrib.arange_like(x, repeat=2, axis=1).asnumpy(), [0, 0, 1]
    )


def test_special_values():
    x = mx.nd.array([1, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(mx.nd.contrib.isinf(x).asnumpy(), [0, 1, 1, 0])
    np.testing.assert_array_equal(mx.nd.contrib.isnan(x).asnumpy(), [0, 0, 0, 1])
    np.testing.assert_array_equal(mx.nd.contrib.isfinite(x).asnumpy(), [1, 0, 0, 0])
    s = mx.sym.var("x")
    got = mx.sym.Group(
        [mx.sym.contrib.isinf(s), mx.sym.contrib.isnan(s), mx.sym.contrib.isfinite(s)]
    ).eval(x=x)
    np.testing.assert_array_equal(
        [g.asnumpy() for g in got], [[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]
    )


def test_index_copy_values_and_gradient():
    old = mx.nd.zeros((4, 2))
    got = mx.nd.contrib.index_copy(old, mx.nd.array([1, 3]), mx.nd.ones((2, 2)))
    np.testing.assert_array_equal(got.asnumpy(), [[0, 0], [1, 1], [0, 0], [1, 1]])
    rng = np.random.default_rng(0)
    index = mx.nd.array([2, 0])
    tu.check_numeric_gradient(
        lambda o, n: mx.nd.contrib.index_copy(o, index.astype(o.dtype), n),
        [rng.normal(size=(3, 2)), rng.normal(size=(2, 2))],
    )


def test_boolean_mask_values_and_gradient():
    x = mx.nd.array(np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(
        mx.nd.contrib.boolean_mask(x, mx.nd.array([0, 1])).asnumpy(), [[3, 4, 5]]
    )
    mask = np.array([1, 0, 1, 1.0])
    rng = np.random.default_rng(1)
    tu.check_numeric_gradient(
        lambda d: mx.nd.contrib.boolean_mask(d, mx.nd.array(mask, dtype=d.dtype)) ** 2,
        [rng.normal(size=(4, 3))],
    )
    d = mx.nd.array(rng.normal(size=(4, 3)))
    d.attach_grad()
    with mx.autograd.record():
        y = mx.nd.contrib.boolean_mask(d, mx.nd.array([0, 1, 1, 0], dtype="int32"))
    y.backward()
    np.testing.assert_array_equal(d.grad.asnumpy(), [[0] * 3, [1] * 3, [1] * 3, [0] * 3])


def test_boolean_mask_in_a_symbol_says_why_not():
    with pytest.raises(mx.MXNetError, match="depends on the mask"):
        mx.sym.contrib.boolean_mask(mx.sym.var("x", shape=(3, 2)), mx.sym.var("m", shape=(3,)))


def _bilinear_reference(image, out_h, out_w, align_corners):
    in_h, in_w = image.shape

    def source(dst, size, out):
        if align_corners:
            return dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
        return max((dst + 0.5) * size / out - 0.5, 0.0)

    result = np.zeros((out_h, out_w))
    for i in range(out_h):
        y = source(i, in_h, out_h)
        y0 = min(int(np.floor(y)), in_h - 1)
        y1, fy = min(y0 + 1, in_h - 1), y - y0
        for j in range(out_w):
            x = source(j, in_w, out_w)
            x0 = min(int(np.floor(x)), in_w - 1)
            x1, fx = min(x0 + 1, in_w - 1), x - x0
            result[i, j] = (1 - fy) * ((1 - fx) * image[y0, x0] + fx * image[y0, x1]) + fy * (
                (1 - fx) * image[y1, x0] + fx * image[y1, x1]
            )
    return result


@pytest.mark.parametrize("align_corners", [True, False])
def test_bilinear_resize_against_a_loop(align_corners):
    image = np.arange(12.0).reshape(3, 4)
    got = mx.nd.contrib.BilinearResize2D(
        mx.nd.array(image[None, None]), height=5, width=3, align_corners=align_corners
    )
    np.testing.assert_allclose(
        got.asnumpy()[0, 0], _bilinear_reference(image, 5, 3, align_corners), rtol=1e-5
    )


def test_bilinear_resize_modes():
    # output shapes MXNet 1.9.1 gives for a 3x4 input
    x = mx.nd.zeros((1, 1, 3, 4))
    assert mx.nd.contrib.BilinearResize2D(x, scale_height=2, scale_width=0.5).shape == (1, 1, 6, 2)
    assert mx.nd.contrib.BilinearResize2D(x, mx.nd.zeros((1, 1, 2, 7)), mode="like").shape == (
        1,
        1,
        2,
        7,
    )
    expected = {
        "odd_scale": (4, 6),
        "to_even_down": (2, 4),
        "to_even_up": (4, 4),
        "to_odd_down": (3, 3),
        "to_odd_up": (3, 5),
    }
    for mode, size in expected.items():
        got = mx.nd.contrib.BilinearResize2D(x, mode=mode, scale_height=1.5, scale_width=1.5)
        assert got.shape[2:] == size, mode


def test_roi_align_matches_mxnet():
    # MXNet 1.9.1's values for these inputs
    x = mx.nd.array(np.arange(32).reshape(1, 2, 4, 4))
    rois = mx.nd.array([[0, 0.5, 0.5, 2.7, 3.1], [0, 1, 0, 3, 2]])
    got = mx.nd.contrib.ROIAlign(x, rois, pooled_size=(2, 2), spatial_scale=1.0)
    np.testing.assert_allclose(
        got.asnumpy(),
        [
            [[[5.65, 6.75], [10.85, 11.95]], [[21.65, 22.75], [26.85, 27.95]]],
            [[[3.5, 4.5], [7.5, 8.5]], [[19.5, 20.5], [23.5, 24.5]]],
        ],
        rtol=1e-5,
    )
    aligned = mx.nd.contrib.ROIAlign(
        x, rois, pooled_size=(2, 3), spatial_scale=0.5, sample_ratio=2, aligned=True
    )
    np.testing.assert_allclose(
        aligned.asnumpy()[0, 0], [[0.4875, 0.775, 1.1416667], [2.9125, 3.2, 3.5666666]], rtol=1e-5
    )


def test_box_iou_and_nms():
    a = mx.nd.array([[0, 0, 2, 2], [1, 1, 3, 3]])
    b = mx.nd.array([[0, 0, 1, 1]])
    np.testing.assert_allclose(mx.nd.contrib.box_iou(a, b).asnumpy(), [[0.25], [0]])
    centers = mx.nd.array([[1, 1, 2, 2]])
    np.testing.assert_allclose(
        mx.nd.contrib.box_iou(centers, centers, format="center").asnumpy(), [[1.0]]
    )
    data = mx.nd.array(
        [
            [0, 0.5, 0.1, 0.1, 0.2, 0.2],
            [1, 0.4, 0.1, 0.1, 0.2, 0.2],
            [0, 0.3, 0.1, 0.1, 0.14, 0.14],
            [0, 0.6, 0.5, 0.5, 0.7, 0.8],
            [2, 0.01, 0, 0, 1, 1],
        ]
    )
    got = mx.nd.contrib.box_nms(data, overlap_thresh=0.1, id_index=0, valid_thresh=0.05)
    np.testing.assert_allclose(
        got.asnumpy(),
        [  # MXNet 1.9.1's output
            [0, 0.6, 0.5, 0.5, 0.7, 0.8],
            [0, 0.5, 0.1, 0.1, 0.2, 0.2],
            [1, 0.4, 0.1, 0.1, 0.2, 0.2],
            [-1] * 6,
            [-1] * 6,
        ],
    )
    center = mx.nd.contrib.box_nms(
        data, overlap_thresh=0.1, id_index=0, force_suppress=True, out_format="center"
    )
    np.testing.assert_allclose(
        center.asnumpy()[:3],
        [[0, 0.6, 0.6, 0.65, 0.2, 0.3], [0, 0.5, 0.15, 0.15, 0.1, 0.1], [2, 0.01, 0.5, 0.5, 1, 1]],
        rtol=1e-5,
    )
    data.attach_grad()
    with mx.autograd.record():
        y = mx.nd.contrib.box_nms(data, overlap_thresh=0.1, id_index=0, force_suppress=True)
    y.backward(mx.nd.array(np.arange(30).reshape(5, 6)))
    np.testing.assert_array_equal(
        data.grad.asnumpy(),
        [  # MXNet 1.9.1's gradient
            [6, 7, 8, 9, 10, 11],
            [0] * 6,
            [0] * 6,
            [0, 1, 2, 3, 4, 5],
            [12, 13, 14, 15, 16, 17],
        ],
    )


def test_bipartite_matching():
    scores = mx.nd.array([[0.5, 0.6], [0.1, 0.2], [0.3, 0.4]])
    rows, cols = mx.nd.contrib.bipartite_matching(scores, threshold=1e-12)
    np.testing.assert_array_equal(rows.asnumpy(), [1, -1, 0])
    np.testing.assert_array_equal(cols.asnumpy(), [2, 0])
    rows, cols = mx.nd.contrib.bipartite_matching(scores, threshold=0.45, is_ascend=True)
    np.testing.assert_array_equal(rows.asnumpy(), [-1, 0, 1])
    np.testing.assert_array_equal(cols.asnumpy(), [1, 2])
    # MXNet 1.9.1 stops once topk + 1 pairs are matched
    ranked = mx.nd.array(
        [
            [0.9583, 0.9167, 0.4167, 0.0833],
            [0.5833, 0.7917, 0.1667, 0.75],
            [0.2083, 0.6667, 0.4583, 0.5417],
        ]
    )
    for topk, expected in ((-1, [0, 1, 3]), (1, [0, 1, -1]), (2, [0, 1, 3])):
        rows, _ = mx.nd.contrib.bipartite_matching(ranked, threshold=0.5, topk=topk)
        np.testing.assert_array_equal(rows.asnumpy(), expected)


def test_symbol_contrib_ops_bind_and_differentiate():
    x = mx.sym.var("x")
    y = mx.sym.sum(mx.sym.contrib.BilinearResize2D(x, height=4, width=5) ** 2)
    f = mx.compile(y, wrt=["x"])
    rng = np.random.default_rng(2)
    value = rng.normal(size=(1, 2, 3, 3))
    _, grads = f(x=value)
    tu.check_numeric_gradient(
        lambda a: mx.nd.contrib.BilinearResize2D(a, height=4, width=5) ** 2, [value]
    )
    direct = mx.nd.array(value, dtype="float64")
    direct.attach_grad()
    with mx.autograd.record():
        out = (mx.nd.contrib.BilinearResize2D(direct, height=4, width=5) ** 2).sum()
    out.backward()
    np.testing.assert_allclose(grads["x"], direct.grad.asnumpy(), rtol=1e-10)


# ---------------------------------------------------------------------------
# mx.contrib.autograd
# ---------------------------------------------------------------------------


def test_grad_and_loss():
    x = mx.nd.array([1.0, 2.0, 3.0])
    grads, loss = ag.grad_and_loss(lambda a, b: (a * a * b).sum())(x, mx.nd.array([2.0]))
    np.testing.assert_allclose(grads[0].asnumpy(), [4, 8, 12])
    np.testing.assert_allclose(grads[1].asnumpy(), [14])
    assert loss.asscalar() == 28
    only = ag.grad(lambda a, b: (a * b).sum(), argnum=1)(x, mx.nd.array([5.0]))
    assert len(only) == 1 and only[0].asscalar() == 6


def test_sections_and_manual_marking():
    assert not mx.autograd.is_recording()
    with ag.train_section():
        assert mx.autograd.is_recording() and mx.autograd.is_training()
        with ag.test_section():
            assert not mx.autograd.is_recording() and not mx.autograd.is_training()
    assert not mx.autograd.is_recording() and not mx.autograd.is_training()
    x = mx.nd.array([3.0])
    gx = mx.nd.zeros((1,))
    ag.mark_variables([x], [gx])
    with ag.train_section():
        y = x * x * x
    ag.compute_gradient([y])
    assert gx.asscalar() == 27
    with ag.train_section():
        y = x * 2
    ag.backward([y], [mx.nd.array([10.0])])
    assert gx.asscalar() == 20
    previous = ag.set_is_training(True)
    try:
        assert previous is False and mx.autograd.is_recording() and mx.autograd.is_training()
    finally:
        ag.set_is_training(False)
    assert not mx.autograd.is_recording()


def test_straight_through_and_gradient_multiplier():
    # MXNet 1.9.1's values and gradients
    data = [[-1.5, 0.4, 2.6], [0.5, -0.5, 0]]
    head = mx.nd.array([[1, 2, 3], [4, 5, 6]])
    expected = {
        "round_ste": [[-2, 0, 3], [1, -1, 0]],
        "sign_ste": [[-1, 1, 1], [1, -1, 0]],
        "gradientmultiplier": data,
    }
    for name, values in expected.items():
        x = mx.nd.array(data)
        x.attach_grad()
        kwargs = {"scalar": -2.0} if name == "gradientmultiplier" else {}
        with mx.autograd.record():
            y = getattr(mx.nd.contrib, name)(x, **kwargs)
        y.backward(head)
        np.testing.assert_array_equal(y.asnumpy(), np.array(values, dtype=np.float32))
        scale = -2.0 if name == "gradientmultiplier" else 1.0
        np.testing.assert_array_equal(x.grad.asnumpy(), head.asnumpy() * scale)


def test_adaptive_average_pooling():
    image = np.arange(70.0).reshape(2, 1, 5, 7)
    got = mx.nd.contrib.AdaptiveAvgPooling2D(mx.nd.array(image), output_size=(2, 3))
    np.testing.assert_array_equal(
        got.asnumpy().ravel(),  # MXNet 1.9.1's
        [8, 10, 12, 22, 24, 26, 43, 45, 47, 57, 59, 61],
    )
    bins_h, bins_w = [(0, 3), (2, 5)], [(0, 3), (2, 5), (4, 7)]
    reference = [
        [image[n, 0, a:b, c:d].mean() for (a, b) in bins_h for (c, d) in bins_w] for n in range(2)
    ]
    np.testing.assert_allclose(got.asnumpy().reshape(2, 6), reference)
    assert mx.nd.contrib.AdaptiveAvgPooling2D(mx.nd.array(image)).shape == (2, 1, 1, 1)
    assert mx.nd.contrib.AdaptiveAvgPooling2D(mx.nd.array(image), output_size=3).shape == (
        2,
        1,
        3,
        3,
    )


def test_multibox_prior():
    got = mx.nd.contrib.MultiBoxPrior(
        mx.nd.zeros((1, 3, 2, 2)),
        sizes=(0.3,),
        ratios=(1,),
        steps=(0.4, 0.6),
        offsets=(0.2, 0.3),
        clip=True,
    )
    np.testing.assert_allclose(
        got.asnumpy(),
        [
            [  # MXNet 1.9.1's
                [0.03, 0, 0.33, 0.23],
                [0.63, 0, 0.93, 0.23],
                [0.03, 0.33, 0.33, 0.63],
                [0.63, 0.33, 0.93, 0.63],
            ]
        ],
        rtol=1e-5,
        atol=1e-7,
    )
    anchors = mx.nd.contrib.MultiBoxPrior(
        mx.nd.zeros((1, 3, 2, 3)), sizes=(0.5, 0.25), ratios=(1, 2, 0.5)
    )
    assert anchors.shape == (1, 24, 4)
    np.testing.assert_allclose(
        anchors.asnumpy()[0, :4],
        [
            [0, 0, 1 / 3, 0.5],
            [1 / 12, 0.125, 0.25, 0.375],
            [-0.06903559, 0.07322331, 0.40236893, 0.4267767],
            [0.04881554, -0.10355338, 0.2845178, 0.6035534],
        ],
        rtol=1e-5,
        atol=1e-7,
    )


def test_multibox_target_encodes_matched_anchors():
    anchors = mx.nd.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]]])
    label = mx.nd.array([[[1, 0.05, 0.0, 0.5, 0.55], [-1, -1, -1, -1, -1]]])
    preds = mx.nd.zeros((1, 3, 3))
    loc, mask, cls = mx.nd.contrib.MultiBoxTarget(anchors, label, preds)
    np.testing.assert_array_equal(cls.asnumpy(), [[2, 0, 0]])  # class 1 -> 2; 0 background
    np.testing.assert_array_equal(mask.asnumpy(), [[1, 1, 1, 1] + [0] * 8])
    # centre (0.275, 0.275) size (0.45, 0.55) against the anchor's (0.25, 0.25) (0.5, 0.5)
    expected = [0.025 / 0.5 / 0.1, 0.025 / 0.5 / 0.1, np.log(0.9) / 0.2, np.log(1.1) / 0.2]
    np.testing.assert_allclose(loc.asnumpy()[0, :4], expected, rtol=1e-5)


def test_multibox_detection_decodes_sorts_and_suppresses():
    anchors = mx.nd.array([[[0.0, 0.0, 0.5, 0.5], [0.05, 0.0, 0.55, 0.5], [0.5, 0.5, 1.0, 1.0]]])
    probs = mx.nd.array([[[0.2, 0.1, 0.9], [0.7, 0.8, 0.05], [0.1, 0.1, 0.05]]])
    det = mx.nd.contrib.MultiBoxDetection(
        probs, mx.nd.zeros((1, 12)), anchors, threshold=0.3
    ).asnumpy()[0]
    # anchor 1 (0.8) first; anchor 0 (0.7, same class, IoU 0.82) suppressed; anchor 2's
    # best class scores 0.05 < threshold: a -1 row
    np.testing.assert_allclose(
        det, [[0, 0.8, 0.05, 0, 0.55, 0.5], [-1, 0.7, 0, 0, 0.5, 0.5], [-1] * 6], rtol=1e-6
    )


def test_box_encode_and_decode():
    anchors = mx.nd.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.6]]])
    refs = mx.nd.array([[[0.1, 0.15, 0.45, 0.5], [0.5, 0.25, 0.85, 0.6]]])
    targets, masks = mx.nd.contrib.box_encode(
        mx.nd.array([[1, -1]]),
        mx.nd.array([[1, 0]]),
        anchors,
        refs,
        mx.nd.array([0.0, 0.1, 0, 0]),
        mx.nd.array([0.1, 0.1, 0.2, 0.3]),
    )
    np.testing.assert_allclose(
        targets.asnumpy()[0],  # MXNet 1.9.1's
        [[14.166666, 2.125, 0.77075374, -0.4451044], [0] * 4],
        rtol=1e-5,
    )
    np.testing.assert_array_equal(masks.asnumpy()[0], [[1] * 4, [0] * 4])
    # decoding the encoding of a box against its anchor gives the box back
    boxes, _ = mx.nd.contrib.box_encode(
        mx.nd.array([[1, 1]]),
        mx.nd.array([[0, 1]]),
        anchors,
        refs,
        mx.nd.zeros((4,)),
        mx.nd.ones((4,)),
    )
    np.testing.assert_allclose(
        mx.nd.contrib.box_decode(boxes, anchors, format="corner").asnumpy(),
        refs.asnumpy(),
        rtol=1e-5,
    )


def test_rand_zipfian_counts_follow_the_log_uniform_law():
    mx.random.seed(4)
    true = mx.nd.array([3, 10, 0])
    sampled, count_true, count_sampled = mx.nd.contrib.rand_zipfian(true, 4000, 50)
    assert sampled.dtype == np.int64 and count_true.dtype == np.float64
    classes = sampled.asnumpy()
    assert classes.min() >= 0 and classes.max() < 50

    def law(c):
        return np.log((c + 2.0) / (c + 1.0)) / np.log(51)

    np.testing.assert_allclose(count_true.asnumpy(), law(np.array([3, 10, 0])) * 4000)
    np.testing.assert_allclose(count_sampled.asnumpy(), law(classes) * 4000)
    frequencies = np.bincount(classes, minlength=50)[:3] / 4000
    np.testing.assert_allclose(frequencies, law(np.arange(3)), atol=0.03)


def test_symbolic_rand_zipfian():
    sampled, count_true, count_sampled = mx.sym.contrib.rand_zipfian(mx.sym.var("t"), 6, 10)
    got = mx.sym.Group([sampled, count_true, count_sampled]).eval(t=mx.nd.array([1, 4]))
    classes = got[0].asnumpy()
    assert classes.dtype == np.int64 and classes.min() >= 0 and classes.max() < 10

    def law(c):
        return np.log((c + 2.0) / (c + 1.0)) / np.log(11) * 6

    np.testing.assert_allclose(got[1].asnumpy(), law(np.array([1, 4])))
    np.testing.assert_allclose(got[2].asnumpy(), law(classes))


def test_deformable_convolution_without_offsets_is_a_convolution():
    rng = np.random.default_rng(8)
    data = mx.nd.array(rng.normal(size=(2, 4, 6, 7)))
    weight = mx.nd.array(rng.normal(size=(6, 2, 3, 3)))
    bias = mx.nd.array(rng.normal(size=(6,)))
    options = {"kernel": (3, 3), "stride": (2, 1), "pad": (1, 1), "num_filter": 6, "num_group": 2}
    offset = mx.nd.zeros((2, 18, 3, 7))
    got = mx.nd.contrib.DeformableConvolution(data, offset, weight, bias, **options)
    want = mx.nd.Convolution(data, weight, bias, **options)
    np.testing.assert_allclose(got.asnumpy(), want.asnumpy(), rtol=1e-5, atol=1e-5)


def test_deformable_convolution_samples_between_pixels():
    # MXNet 1.9.1's values: half a pixel down averages two rows; the last row is
    # read as is; a place above the image reads zero
    image = mx.nd.array(np.arange(20.0).reshape(1, 1, 4, 5))
    ones = mx.nd.ones((1, 1, 1, 1))
    for dy, first_row, last_row in (
        (0.5, [2.5, 3.5, 4.5, 5.5, 6.5], [15, 16, 17, 18, 19]),
        (-0.5, [0] * 5, [12.5, 13.5, 14.5, 15.5, 16.5]),
    ):
        offset = mx.nd.array(np.tile(np.array([dy, 0.0]).reshape(1, 2, 1, 1), (1, 1, 4, 5)))
        got = mx.nd.contrib.DeformableConvolution(
            image, offset, ones, kernel=(1, 1), num_filter=1, no_bias=True
        ).asnumpy()[0, 0]
        np.testing.assert_allclose(got[0], first_row)
        np.testing.assert_allclose(got[-1], last_row)
