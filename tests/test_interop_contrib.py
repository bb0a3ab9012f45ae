"""contrib ops, control flow and a CustomOp-based model against the real MXNet
1.9.1: one script of cases runs under both (``mx`` bound to MXNet or symgrad) on the
same inputs, and every value and gradient must agree.

The inputs are made here and travel as an .npz file in tmp_path.
"""

from __future__ import annotations

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad

pytestmark = pytest.mark.interop

# Run under either library: ``mx`` and ``inputs`` are given; ``results`` collects
# named arrays. Everything is float32, as MXNet computes.
CASES = r'''
import numpy as np

results = {}


def nd(name):
    return mx.nd.array(inputs[name])


def value_and_grads(tag, fn, arrays, head):
    for a in arrays:
        a.attach_grad()
    with mx.autograd.record():
        out = fn(*arrays)
    out.backward(mx.nd.array(head))
    results[tag] = out.asnumpy()
    for k, a in enumerate(arrays):
        results[f"{tag}_grad{k}"] = a.grad.asnumpy()


for ac in (True, False):
    value_and_grads(f"resize_{ac}", lambda x: mx.nd.contrib.BilinearResize2D(
        x, height=5, width=7, align_corners=ac), [nd("image")], inputs["resize_head"])
results["resize_scale"] = mx.nd.contrib.BilinearResize2D(
    nd("image"), scale_height=1.5, scale_width=0.5, align_corners=False).asnumpy()

for aligned in (False, True):
    for ratio in (-1, 2):
        value_and_grads(f"roi_{aligned}_{ratio}", lambda x: mx.nd.contrib.ROIAlign(
            x, nd("rois"), pooled_size=(3, 2), spatial_scale=0.5, sample_ratio=ratio,
            aligned=aligned), [nd("image")], inputs["roi_head"])

for fmt in ("corner", "center"):
    value_and_grads(f"nms_{fmt}", lambda d: mx.nd.contrib.box_nms(
        d, overlap_thresh=0.3, valid_thresh=0.1, topk=8, id_index=0, coord_start=2,
        score_index=1, in_format="corner", out_format=fmt), [nd("boxes")],
        inputs["nms_head"])
results["nms_force"] = mx.nd.contrib.box_nms(nd("boxes"), overlap_thresh=0.3,
                                             id_index=0, force_suppress=True).asnumpy()
results["nms_background"] = mx.nd.contrib.box_nms(nd("boxes"), overlap_thresh=0.5,
                                                  id_index=0, background_id=1).asnumpy()
results["iou"] = mx.nd.contrib.box_iou(nd("boxes_a"), nd("boxes_b")).asnumpy()
results["iou_center"] = mx.nd.contrib.box_iou(nd("boxes_a"), nd("boxes_b"),
                                              format="center").asnumpy()
for asc in (False, True):
    for topk in (-1, 2):
        rows, cols = mx.nd.contrib.bipartite_matching(nd("scores"), is_ascend=asc,
                                                      threshold=0.5, topk=topk)
        results[f"match_{asc}_{topk}"] = rows.asnumpy()
        results[f"match_{asc}_{topk}_cols"] = cols.asnumpy()

value_and_grads("index_copy", lambda o, n: mx.nd.contrib.index_copy(
    o, mx.nd.array([3, 0, 4]), n), [nd("old"), nd("new")], inputs["old_head"])
value_and_grads("boolean_mask", lambda d: mx.nd.contrib.boolean_mask(
    d, mx.nd.array([1, 0, 1, 1, 0])), [nd("old")], inputs["mask_head"])
value_and_grads("quadratic", lambda x: mx.nd.contrib.quadratic(x, a=0.5, b=-2, c=1),
                [nd("old")], inputs["old_head"])
value_and_grads("div_sqrt_dim", lambda x: mx.nd.contrib.div_sqrt_dim(x), [nd("old")],
                inputs["old_head"])
value_and_grads("adaptive_pool", lambda x: mx.nd.contrib.AdaptiveAvgPooling2D(
    x, output_size=(4, 3)), [nd("image")], inputs["pool_head"])
for op in ("round_ste", "sign_ste"):
    value_and_grads(op, getattr(mx.nd.contrib, op), [nd("old")], inputs["old_head"])
value_and_grads("gradientmultiplier", lambda x: mx.nd.contrib.gradientmultiplier(
    x, scalar=-0.5), [nd("old")], inputs["old_head"])
results["prior"] = mx.nd.contrib.MultiBoxPrior(nd("image"), sizes=(0.6, 0.3, 0.2),
                                               ratios=(1, 3, 0.4)).asnumpy()
results["prior_steps"] = mx.nd.contrib.MultiBoxPrior(
    nd("image"), sizes=(0.4,), ratios=(1, 2), steps=(0.1, 0.15), offsets=(0.3, 0.6),
    clip=True).asnumpy()
value_and_grads("selfatt_qk", lambda x: mx.nd.contrib.interleaved_matmul_selfatt_qk(
    x, heads=2), [nd("qkv")], inputs["qk_head"])
value_and_grads("selfatt_valatt", lambda x, a: mx.nd.contrib.interleaved_matmul_selfatt_valatt(
    x, a, heads=2), [nd("qkv"), nd("att")], inputs["val_head"])
value_and_grads("encdec_qk", lambda q, kv: mx.nd.contrib.interleaved_matmul_encdec_qk(
    q, kv, heads=2), [nd("queries"), nd("kv")], inputs["encdec_head"])
value_and_grads("encdec_valatt", lambda kv, a: mx.nd.contrib.interleaved_matmul_encdec_valatt(
    kv, a, heads=2), [nd("kv"), nd("att2")], inputs["queries"])
# a graph of contrib ops, also exchanged as JSON below
img, rois_var = mx.sym.var("img"), mx.sym.var("rois")
resized = mx.sym.contrib.BilinearResize2D(img, height=9, width=11, align_corners=False)
pooled = mx.sym.contrib.ROIAlign(resized, rois_var, pooled_size=(2, 3), spatial_scale=0.75,
                                 sample_ratio=2)
anchors_sym = mx.sym.contrib.MultiBoxPrior(resized, sizes=(0.4, 0.2), ratios=(1, 2),
                                           clip=True)
adaptive = mx.sym.contrib.AdaptiveAvgPooling2D(resized, output_size=(3, 2))
contrib_graph = mx.sym.Group([pooled, anchors_sym, mx.sym.contrib.quadratic(adaptive, a=2)])
results.update({f"contrib_graph{k}": v.asnumpy() for k, v in enumerate(
    contrib_graph.eval(img=nd("image"), rois=nd("rois")))})

# SSD: anchors, training targets (with hard negative mining) and detections. (Seed 0
# has IoUs tied but for the last bit of the anchors: MultiBoxPrior must be exact.)
for seed in (0, 1, 2, 3, 4):
    r = np.random.default_rng(seed)
    anchors = mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 5, 4)), sizes=(0.3, 0.15),
                                          ratios=(1, 2, 0.5))
    count = anchors.shape[1]
    label = np.full((2, 4, 5), -1, np.float32)
    for b in range(2):
        for m in range(r.integers(1, 5)):
            x0, y0 = r.uniform(0, 0.7, 2)
            w, h = r.uniform(0.05, 0.3, 2)
            label[b, m] = [r.integers(0, 3), x0, y0, x0 + w, y0 + h]
    cls_pred = r.normal(size=(2, 4, count)).astype(np.float32)
    for k, kw in enumerate([{}, dict(negative_mining_ratio=3, overlap_threshold=0.3)]):
        out = mx.nd.contrib.MultiBoxTarget(anchors, mx.nd.array(label),
                                           mx.nd.array(cls_pred), **kw)
        for i, o in enumerate(out):
            results[f"target{seed}_{k}_{i}"] = o.asnumpy()
    prob = mx.nd.softmax(mx.nd.array(cls_pred), axis=1)
    loc = mx.nd.array(r.normal(scale=0.5, size=(2, count * 4)).astype(np.float32))
    results[f"detect{seed}"] = mx.nd.contrib.MultiBoxDetection(
        prob, loc, anchors, threshold=0.3, nms_threshold=0.3).asnumpy()
    # past nms_topk MXNet's row order is its sort's business: the first rows only
    results[f"detect{seed}_topk"] = mx.nd.contrib.MultiBoxDetection(
        prob, loc, anchors, force_suppress=True, nms_topk=10, clip=False).asnumpy()[:, :10]
for fmt in ("corner", "center"):
    results[f"box_decode_{fmt}"] = mx.nd.contrib.box_decode(
        nd("offsets"), nd("anchor_boxes"), std0=0.1, std1=0.1, std2=0.2, std3=0.2, clip=0.4,
        format=fmt).asnumpy()
targets, masks = mx.nd.contrib.box_encode(
    mx.nd.array([[1, -1, 0, 1], [0, 1, 1, -1]]), mx.nd.array([[1, 0, 0, 2], [0, 2, 1, 1]]),
    nd("anchor_boxes2"), nd("refs"), mx.nd.array([0.0, 0.1, 0.0, -0.1]),
    mx.nd.array([0.1, 0.1, 0.2, 0.2]))
results["box_encode"] = targets.asnumpy()
results["box_encode_mask"] = masks.asnumpy()
moving_mean, moving_var = mx.nd.zeros((3,)), mx.nd.ones((3,))
value_and_grads("sync_bn", lambda x, g, b: mx.nd.contrib.SyncBatchNorm(
    x, g, b, moving_mean, moving_var, key="bn", ndev=1, fix_gamma=False, eps=1e-4),
    [nd("image"), nd("gamma"), nd("beta")], inputs["bn_head"])
results["sync_bn_moving"] = np.stack([moving_mean.asnumpy(), moving_var.asnumpy()])
moving_mean, moving_var = mx.nd.zeros((3,)), mx.nd.ones((3,))
value_and_grads("bn_relu", lambda x, g, b: mx.nd.contrib.BatchNormWithReLU(
    x, g, b, moving_mean, moving_var, fix_gamma=False, eps=1e-4),
    [nd("image"), nd("gamma"), nd("beta")], inputs["bn_head"])
results["bn_relu_moving"] = np.stack([moving_mean.asnumpy(), moving_var.asnumpy()])
_, zipf_true, _ = mx.nd.contrib.rand_zipfian(mx.nd.array([0, 3, 17, 99]), 64, 100)
results["zipf_true"] = zipf_true.asnumpy()
results["arange_like"] = mx.nd.contrib.arange_like(nd("old"), start=2, step=0.5,
                                                   repeat=2).asnumpy()
results["index_array"] = mx.nd.contrib.index_array(nd("image"), axes=(3, 1)).asnumpy()
results["allclose"] = np.array([mx.nd.contrib.allclose(nd("old"), nd("old") + 1e-3,
                                                       rtol=0, atol=t).asscalar()
                                for t in (1e-4, 1e-2)])

# control flow, imperative and symbolic (MXNet leaves a while_loop's rows after the
# last step uninitialised: only the steps taken are compared)
W = mx.sym.var("w")


def step(d, s):
    h = mx.nd.tanh(d * nd("w") + s[0]) if isinstance(d, mx.nd.NDArray) else \
        mx.sym.tanh(mx.sym.broadcast_mul(d, W) + s[0])
    return h * 2, [h]


value_and_grads("foreach", lambda x, h: mx.nd.contrib.foreach(step, x, [h])[0],
                [nd("seq"), nd("h0")], inputs["seq_head"])
out, states = mx.sym.contrib.foreach(step, mx.sym.var("x", shape=(4, 3)),
                                     [mx.sym.var("h", shape=(3,))])
exe = mx.sym.Group([out, states[0]]).simple_bind(mx.cpu(), x=(4, 3), h=(3,), w=(3,))
exe.arg_dict["x"][:] = inputs["seq"]
exe.arg_dict["h"][:] = inputs["h0"]
exe.arg_dict["w"][:] = inputs["w"]
exe.forward(is_train=True)
exe.backward([mx.nd.array(inputs["seq_head"]), mx.nd.ones((3,))])
results["sym_foreach"] = exe.outputs[0].asnumpy()
results["sym_foreach_grad_w"] = exe.grad_dict["w"].asnumpy()

# the same loop over variables without shapes (symgrad: one _foreach subgraph node)
out, states = mx.sym.contrib.foreach(step, mx.sym.var("x2"), [mx.sym.var("h2")])
exe = mx.sym.Group([out, states[0]]).simple_bind(mx.cpu(), x2=(4, 3), h2=(3,), w=(3,))
exe.arg_dict["x2"][:] = inputs["seq"]
exe.arg_dict["h2"][:] = inputs["h0"]
exe.arg_dict["w"][:] = inputs["w"]
exe.forward(is_train=True)
exe.backward([mx.nd.array(inputs["seq_head"]), mx.nd.ones((3,))])
results["sym_foreach_free"] = exe.outputs[0].asnumpy()
for name in ("x2", "h2", "w"):
    results[f"sym_foreach_free_grad_{name}"] = exe.grad_dict[name].asnumpy()


def loop_cond(i, s):
    return i < 3


def loop_body(i, s):
    return [s * s], [i + 1, s * 0.5 + 1]


value_and_grads("while_loop", lambda s: mx.nd.contrib.while_loop(
    loop_cond, loop_body, [mx.nd.array([0]), s], max_iterations=5)[0][0][:3],
    [nd("h0")], inputs["loop_head"])

class Loop(mx.gluon.HybridBlock):
    """A hybridized block around a symbolic while_loop (MXNet's rows after the
    last step taken are junk: only those taken are returned)."""

    def hybrid_forward(self, F, i, s, w):
        out, (_, s_end) = F.contrib.while_loop(
            lambda i, s: i < 3, lambda i, s: ([s * s * w], [i + 1, s * 0.5 + w]), [i, s],
            max_iterations=5)
        return F.slice_axis(out[0], axis=0, begin=0, end=3), s_end


loop = Loop()
loop.hybridize()
s_in, w_in = nd("h0"), nd("w")
s_in.attach_grad()
w_in.attach_grad()
with mx.autograd.record():
    taken, s_end = loop(mx.nd.array([0]), s_in, w_in)
mx.autograd.backward([taken, s_end], [mx.nd.array(inputs["loop_head"]), nd("w")])
results["sym_while_loop"] = taken.asnumpy()
results["sym_while_loop_end"] = s_end.asnumpy()
results["sym_while_loop_grad_s"] = s_in.grad.asnumpy()
results["sym_while_loop_grad_w"] = w_in.grad.asnumpy()

class Branch(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x, w):
        return F.contrib.cond(F.sum(x) > 0, lambda: F.tanh(x) * w, lambda: x * x - w)


branch = Branch()
branch.hybridize()
for sign in (1, -1):
    value_and_grads(f"sym_cond_{sign}", lambda x, w: branch(x * sign, w),
                    [nd("h0"), nd("w")], inputs["w"])

# a model around a CustomOp (a scaled softsign with its own backward)
class Softsign(mx.operator.CustomOp):
    def __init__(self, scale):
        self.scale = scale

    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0]
        self.assign(out_data[0], req[0], self.scale * x / (1 + mx.nd.abs(x)))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        x = in_data[0]
        self.assign(in_grad[0], req[0],
                    out_grad[0] * self.scale / ((1 + mx.nd.abs(x)) * (1 + mx.nd.abs(x))))


@mx.operator.register("interop_softsign")
class SoftsignProp(mx.operator.CustomOpProp):
    def __init__(self, scale="1"):
        super().__init__(need_top_grad=True)
        self.scale = float(scale)

    def create_operator(self, ctx, shapes, dtypes):
        return Softsign(self.scale)


def model(x, w1, b1, w2):
    h = mx.nd.FullyConnected(x, w1, b1, num_hidden=5)
    h = mx.nd.Custom(h, op_type="interop_softsign", scale=1.5)
    return mx.nd.FullyConnected(h, w2, num_hidden=2, no_bias=True)


value_and_grads("custom_model", model, [nd("x"), nd("w1"), nd("b1"), nd("w2")],
                inputs["model_head"])
data = mx.sym.var("data")
fc1 = mx.sym.FullyConnected(data, num_hidden=5, name="fc1")
act = mx.sym.Custom(fc1, op_type="interop_softsign", scale=1.5, name="act")
custom_net = mx.sym.FullyConnected(act, num_hidden=2, no_bias=True, name="fc2")
exe = custom_net.simple_bind(mx.cpu(), data=(6, 4))
for name, key in (("data", "x"), ("fc1_weight", "w1"), ("fc1_bias", "b1"),
                  ("fc2_weight", "w2")):
    exe.arg_dict[name][:] = inputs[key]
exe.forward(is_train=True)
exe.backward(mx.nd.array(inputs["model_head"]))
results["sym_custom_model"] = exe.outputs[0].asnumpy()
for name in ("data", "fc1_weight", "fc1_bias", "fc2_weight"):
    results[f"sym_custom_model_{name}"] = exe.grad_dict[name].asnumpy()


class Net(mx.gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.fc1 = mx.gluon.nn.Dense(5, in_units=4)
            self.fc2 = mx.gluon.nn.Dense(2, in_units=5, use_bias=False)

    def hybrid_forward(self, F, x):
        return self.fc2(F.Custom(self.fc1(x), op_type="interop_softsign", scale=1.5))


for hybrid in (False, True):
    net = Net()
    net.initialize()
    net.fc1.weight.set_data(nd("w1"))
    net.fc1.bias.set_data(nd("b1"))
    net.fc2.weight.set_data(nd("w2"))
    if hybrid:
        net.hybridize()
    x = nd("x")
    x.attach_grad()
    with mx.autograd.record():
        y = net(x)
    y.backward(mx.nd.array(inputs["model_head"]))
    results[f"gluon_custom_{hybrid}"] = y.asnumpy()
    results[f"gluon_custom_{hybrid}_x"] = x.grad.asnumpy()
    results[f"gluon_custom_{hybrid}_w1"] = net.fc1.weight.grad().asnumpy()
'''

# After the cases: each library's JSON of the CustomOp model is read by the other
# one, bound to the same arrays and run forward.
JSON_CASE = r"""
def run_graph_json(text, tag):
    loaded = mx.sym.load_json(text)
    for k, v in enumerate(loaded.eval(img=nd("image"), rois=nd("rois"))):
        results[f"{tag}{k}"] = v.asnumpy()


def run_json(text, tag):
    loaded = mx.sym.load_json(text)
    exe = loaded.simple_bind(mx.cpu(), data=(6, 4))
    for name, key in (("data", "x"), ("fc1_weight", "w1"), ("fc1_bias", "b1"),
                      ("fc2_weight", "w2")):
        exe.arg_dict[name][:] = inputs[key]
    results[tag] = exe.forward()[0].asnumpy()
"""

_MXNET_SCRIPT = """
import numpy as np
import mxnet as mx
inputs = dict(np.load("inputs.npz"))
exec(open("cases.py").read())
open("mxnet-custom.json", "w").write(custom_net.tojson())
open("mxnet-contrib.json", "w").write(contrib_graph.tojson())
exec(open("json_case.py").read())
run_json(open("symgrad-custom.json").read(), "json_from_symgrad")
run_graph_json(open("symgrad-contrib.json").read(), "graph_json_from_symgrad")
np.savez("mxnet.npz", **results)
"""


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20)

    def normal(*shape):
        return rng.normal(size=shape).astype(np.float32)

    boxes = np.zeros((2, 12, 6), np.float32)
    boxes[..., 0] = rng.integers(0, 3, (2, 12))
    boxes[..., 1] = rng.permutation(24).reshape(2, 12) / 24.0 + 0.01
    corner = rng.uniform(0, 8, (2, 12, 2))
    boxes[..., 2:4] = corner
    boxes[..., 4:6] = corner + rng.uniform(1, 5, (2, 12, 2))
    rois = np.array(
        [
            [0, 1.0, 1.5, 9.0, 7.0],
            [1, 0.0, 0.0, 3.0, 3.0],
            [0, 4.2, 2.1, 13.3, 11.7],
            [1, 6.0, 5.0, 6.5, 5.2],
        ],
        np.float32,
    )
    return {
        "image": normal(2, 3, 6, 8),
        "resize_head": normal(2, 3, 5, 7),
        "rois": rois,
        "roi_head": normal(4, 3, 3, 2),
        "boxes": boxes,
        "nms_head": normal(2, 12, 6),
        "boxes_a": np.abs(normal(3, 4)) + np.array([0, 0, 2, 2], np.float32),
        "boxes_b": np.abs(normal(2, 2, 4)) + np.array([0, 0, 2, 2], np.float32),
        "scores": rng.permutation(24).reshape(2, 3, 4).astype(np.float32) / 24,
        "old": normal(5, 4),
        "new": normal(3, 4),
        "old_head": normal(5, 4),
        "mask_head": normal(3, 4),
        "pool_head": normal(2, 3, 4, 3),
        "qkv": normal(3, 2, 24),
        "att": normal(4, 3, 3),
        "qk_head": normal(4, 3, 3),
        "val_head": normal(3, 2, 8),
        "queries": normal(5, 2, 8),
        "kv": normal(3, 2, 16),
        "encdec_head": normal(4, 5, 3),
        "att2": normal(4, 5, 3),
        "offsets": normal(2, 4, 4) * 0.5,
        "gamma": normal(3),
        "beta": normal(3),
        "bn_head": normal(2, 3, 6, 8),
        "anchor_boxes": boxes[:1, :4, 2:6] / 13,
        "anchor_boxes2": boxes[:, :4, 2:6] / 13,
        "refs": boxes[:, 4:7, 2:6] / 13,
        "seq": normal(4, 3),
        "h0": normal(3),
        "w": normal(3),
        "seq_head": normal(4, 3),
        "loop_head": normal(3, 3),
        "x": normal(6, 4),
        "w1": normal(5, 4),
        "b1": normal(5),
        "w2": normal(2, 5),
        "model_head": normal(6, 2),
    }


def test_contrib_ops_control_flow_and_custom_op_match_mxnet(mxnet_python, tmp_path):
    inputs = _inputs()
    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "cases.py").write_text(CASES)
    (tmp_path / "json_case.py").write_text(JSON_CASE)
    scope = {"mx": symgrad, "inputs": inputs}
    exec(CASES, scope)  # noqa: S102  (the same cases MXNet runs)
    (tmp_path / "symgrad-custom.json").write_text(scope["custom_net"].tojson())
    (tmp_path / "symgrad-contrib.json").write_text(scope["contrib_graph"].tojson())
    run_mxnet(mxnet_python, _MXNET_SCRIPT, tmp_path)
    expected = dict(np.load(tmp_path / "mxnet.npz"))
    exec(JSON_CASE, scope)  # noqa: S102
    scope["run_json"]((tmp_path / "mxnet-custom.json").read_text(), "json_from_mxnet")
    scope["run_graph_json"]((tmp_path / "mxnet-contrib.json").read_text(), "graph_json_from_mxnet")
    ours = scope["results"]
    for k in range(3):  # each side's run of the other's JSON of the contrib graph
        for loaded in (
            ours.pop(f"graph_json_from_mxnet{k}"),
            expected.pop(f"graph_json_from_symgrad{k}"),
        ):
            np.testing.assert_allclose(loaded, expected[f"contrib_graph{k}"], rtol=1e-5, atol=1e-6)
    # each side's forward of the other's JSON equals the model's own output
    np.testing.assert_allclose(
        expected.pop("json_from_symgrad"), expected["sym_custom_model"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        ours.pop("json_from_mxnet"), expected["sym_custom_model"], rtol=1e-5, atol=1e-6
    )
    assert sorted(ours) == sorted(expected)
    for name in sorted(expected):
        np.testing.assert_allclose(ours[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


# Random configurations of the ops with the most settings (box_nms, bipartite_matching,
# ROIAlign, BilinearResize2D, Proposal, MultiProposal, PSROIPooling and
# DeformableConvolution with their gradients),
# made by the same seeds under both libraries.
SWEEP = r"""
import numpy as np

res = {}
MODES = ["size", "odd_scale", "to_even_down", "to_even_up", "to_odd_down", "to_odd_up"]
for seed in range(12):
    r = np.random.default_rng(seed)
    d = np.zeros((2, 3, 10, 7), np.float32)
    d[..., 0] = r.integers(0, 3, (2, 3, 10))
    d[..., 1] = r.permutation(60).reshape(2, 3, 10) / 60
    corner = r.uniform(0, 5, (2, 3, 10, 2))
    d[..., 2:4] = corner
    d[..., 4:6] = corner + r.uniform(0.5, 3, (2, 3, 10, 2))
    d[..., 6] = r.normal(size=(2, 3, 10))
    res[f"nms{seed}"] = mx.nd.contrib.box_nms(
        mx.nd.array(d), overlap_thresh=float(r.choice([0.1, 0.3, 0.5])),
        valid_thresh=float(r.choice([0, 0.2])), topk=int(r.choice([-1, 3, 6])),
        id_index=int(r.choice([-1, 0])), background_id=int(r.choice([-1, 1])),
        force_suppress=bool(r.integers(0, 2)), in_format=str(r.choice(["corner", "center"])),
        out_format=str(r.choice(["corner", "center"]))).asnumpy()
    scores = r.uniform(size=(2, 3, 5, 4)).astype(np.float32)
    rows, cols = mx.nd.contrib.bipartite_matching(
        mx.nd.array(scores), threshold=float(r.uniform(0.2, 0.8)), is_ascend=bool(seed % 2),
        topk=int(r.choice([-1, 1, 3])))
    res[f"bm{seed}"] = rows.asnumpy()
    res[f"bmc{seed}"] = cols.asnumpy()
    img = r.normal(size=(2, 2, 7, 9)).astype(np.float32)
    rois = np.concatenate([r.integers(0, 2, (5, 1)), r.uniform(-3, 12, (5, 4))],
                          axis=1).astype(np.float32)
    rois[:, 3:5] = rois[:, 1:3] + r.uniform(0.5, 6, (5, 2)).astype(np.float32)
    res[f"roi{seed}"] = mx.nd.contrib.ROIAlign(
        mx.nd.array(img), mx.nd.array(rois), pooled_size=(3, 2),
        spatial_scale=float(r.choice([0.5, 1.0])), sample_ratio=int(r.choice([-1, 1, 3])),
        aligned=bool(r.integers(0, 2))).asnumpy()
    mode = str(r.choice(MODES))
    scaled = mode != "size" or seed % 3 == 0
    res[f"resize{seed}"] = mx.nd.contrib.BilinearResize2D(
        mx.nd.array(img), height=int(r.integers(1, 12)), width=int(r.integers(1, 12)),
        scale_height=float(r.uniform(0.5, 2)) if scaled else None,
        scale_width=float(r.uniform(0.5, 2)) if scaled else None, mode=mode,
        align_corners=bool(r.integers(0, 2))).asnumpy()
    cls_prob = r.uniform(size=(2, 12, 4, 5)).astype(np.float32)
    bbox_pred = (r.normal(size=(2, 24, 4, 5)) * 0.2).astype(np.float32)
    im_info = np.array([[float(r.choice([40, 60, 64])), float(r.choice([50, 75, 80])),
                         float(r.choice([0.5, 1.0]))] for _ in range(2)], np.float32)
    options = dict(rpn_pre_nms_top_n=int(r.choice([-1, 50])),
                   rpn_post_nms_top_n=int(r.choice([12, 40])),
                   threshold=float(r.choice([0.5, 0.7])), rpn_min_size=int(r.choice([4, 16])),
                   scales=(2, 4), ratios=(0.5, 1, 2), feature_stride=16, output_score=True,
                   iou_loss=bool(seed == 5))
    rois, scores = mx.nd.contrib.Proposal(mx.nd.array(cls_prob[:1]), mx.nd.array(bbox_pred[:1]),
                                          mx.nd.array(im_info[:1]), **options)
    res[f"proposal{seed}"] = rois.asnumpy()
    res[f"proposal_scores{seed}"] = scores.asnumpy()
    res[f"multi_proposal{seed}"] = mx.nd.contrib.MultiProposal(
        mx.nd.array(cls_prob), mx.nd.array(bbox_pred), mx.nd.array(im_info),
        **dict(options, output_score=False)).asnumpy()
    group = int(r.choice([2, 3]))
    pooled = int(r.choice([group, 3, 4]))
    features = mx.nd.array(r.normal(size=(2, 2 * group * group, 9, 11)).astype(np.float32))
    boxes = np.concatenate([r.integers(0, 2, (4, 1)), r.uniform(-2, 14, (4, 2))], axis=1)
    boxes = np.concatenate([boxes, boxes[:, 1:3] + r.uniform(0, 10, (4, 2))],
                           axis=1).astype(np.float32)
    features.attach_grad()
    with mx.autograd.record():
        pooled_out = mx.nd.contrib.PSROIPooling(
            features, mx.nd.array(boxes), spatial_scale=float(r.choice([0.5, 1.0])),
            output_dim=2, pooled_size=pooled, group_size=group)
    pooled_out.backward(mx.nd.array(r.normal(size=pooled_out.shape).astype(np.float32)))
    res[f"psroi{seed}"] = pooled_out.asnumpy()
    res[f"psroi_grad{seed}"] = features.grad.asnumpy()
    groups, deformable = int(r.choice([1, 2])), int(r.choice([1, 2]))
    kernel = (3, 3) if seed % 2 else (3, 2)
    stride, dilate = (int(r.choice([1, 2])),) * 2, (1, int(r.choice([1, 2])))
    out_h = (6 + 2 - dilate[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (7 + 2 - dilate[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    arrays = [mx.nd.array(a.astype(np.float32)) for a in (
        r.normal(size=(2, 4, 6, 7)),
        r.normal(size=(2, 2 * kernel[0] * kernel[1] * deformable, out_h, out_w)) * 1.5,
        r.normal(size=(6, 4 // groups) + kernel), r.normal(size=(6,)))]
    for a in arrays:
        a.attach_grad()
    with mx.autograd.record():
        dcn = mx.nd.contrib.DeformableConvolution(
            *arrays, kernel=kernel, stride=stride, pad=(1, 1), dilate=dilate, num_filter=6,
            num_group=groups, num_deformable_group=deformable)
    dcn.backward(mx.nd.array(r.normal(size=dcn.shape).astype(np.float32)))
    res[f"dcn{seed}"] = dcn.asnumpy()
    for k, a in enumerate(arrays):
        res[f"dcn{seed}_grad{k}"] = a.grad.asnumpy()
    rotated = np.concatenate([r.integers(0, 2, (4, 1)), r.uniform(-1, 9, (4, 2)),
                              r.uniform(0.5, 6, (4, 2)), r.uniform(-180, 180, (4, 1))],
                             axis=1).astype(np.float32)
    res[f"rroi{seed}"] = mx.nd.contrib.RROIAlign(
        arrays[0], mx.nd.array(rotated), pooled_size=(2, 3),
        spatial_scale=float(r.choice([0.5, 1.0])),
        sampling_ratio=int(r.choice([-1, 2]))).asnumpy()
    # the modulated version (MXNet runs only its forward on a CPU)
    taps = kernel[0] * kernel[1] * deformable
    res[f"dcn{seed}_modulated"] = mx.nd.contrib.ModulatedDeformableConvolution(
        arrays[0], arrays[1], mx.nd.array(r.uniform(size=(2, taps, out_h, out_w))),
        *arrays[2:], kernel=kernel, stride=stride, pad=(1, 1), dilate=dilate, num_filter=6,
        num_group=groups, num_deformable_group=deformable).asnumpy()
"""

_SWEEP_SCRIPT = """
import numpy as np
import mxnet as mx
exec(open("sweep.py").read())
np.savez("sweep.npz", **res)
"""


def test_sweep_of_box_roi_resize_and_proposal_ops_matches_mxnet(mxnet_python, tmp_path):
    (tmp_path / "sweep.py").write_text(SWEEP)
    run_mxnet(mxnet_python, _SWEEP_SCRIPT, tmp_path)
    expected = dict(np.load(tmp_path / "sweep.npz"))
    scope = {"mx": symgrad}
    exec(SWEEP, scope)  # noqa: S102
    ours = scope["res"]
    assert sorted(ours) == sorted(expected) and len(expected) == 204
    for name in sorted(expected):
        # (DeformableConvolution sums many float32 products: a looser bound)
        tolerance = 1e-4 if name.startswith("dcn") else 1e-5
        np.testing.assert_allclose(
            ours[name], expected[name], rtol=1e-4, atol=tolerance, err_msg=name
        )
