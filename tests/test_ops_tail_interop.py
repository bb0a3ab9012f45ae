"""The ops of compiler/ops/tail_*.py against the real MXNet 1.9.1: for a few inputs
per op family, the outputs and the gradients of a random weighted sum of the
outputs with respect to the differentiable inputs (for the loss-output ops, whose
backward ignores the head gradient, the loss gradients MXNet defines).

The same script text runs under MXNet (in its virtualenv) and here with ``mx``
bound to symgrad: the cases travel as JSON, the arrays as .npz files in tmp_path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad

pytestmark = pytest.mark.interop

# Shared by both sides. A case: op name, input names, attrs, dtype, the positions
# of the inputs to differentiate, and the positions of integer (index) inputs.
SCRIPT = """
import json
import numpy as np

def run_cases(mx, cases, inputs, heads):
    results = {}
    for index, (op, names, attrs, dtype, wrt, integer) in enumerate(cases):
        # JSON made the tuples lists; MXNet's split_v2 takes only tuples
        attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}
        args = [
            mx.nd.array(inputs[name], dtype="int32" if i in integer else dtype)
            for i, name in enumerate(names)
        ]
        for i in wrt:
            args[i].attach_grad()
        # MXNet keeps some ops in nd._internal; symgrad has them all in nd
        function = (
            getattr(mx.nd, op, None)
            or getattr(mx.nd.contrib, op, None)
            or getattr(mx.nd._internal, op)
        )
        with mx.autograd.record():
            outs = function(*args, **attrs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        if wrt:
            head_grads = [
                mx.nd.array(heads[f"{index}_{k}"], dtype=dtype) for k in range(len(outs))
            ]
            mx.autograd.backward(outs, head_grads)
        for k, out in enumerate(outs):
            results[f"{index}_out{k}"] = out.asnumpy()
        for i in wrt:
            results[f"{index}_grad{i}"] = args[i].grad.asnumpy()
    return results
"""

MXNET_MAIN = """
import mxnet as mx
cases = json.load(open("cases.json"))
inputs = dict(np.load("inputs.npz"))
heads = dict(np.load("heads.npz"))
np.savez("mxnet.npz", **run_cases(mx, cases, inputs, heads))
"""


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2020)

    def u(*shape, low=-2.0, high=2.0):
        return rng.uniform(low, high, shape)

    bilinear = np.zeros((2, 1, 4, 4))
    bilinear[:] = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
    return {
        "x23": u(2, 3),
        "y23": u(2, 3),
        "z23": u(2, 3),
        "l23": u(2, 3, low=-1, high=1),
        "x43": u(4, 3),
        "lab4": np.array([2.0, 0.0, 1.0, 2.0]),
        "x31": u(3, 1),
        "x311": u(3, 1, 1),
        "x45": u(4, 5),
        "x33": u(3, 3),
        "v3": u(3),
        "x234": u(2, 3, 4),
        "pos23": u(2, 3, low=0.3, high=4.0),
        "neg23": np.array([[-0.7, -1.5, -2.5], [0.4, -3.3, 5.5]]),
        "nan23": np.array([[1.5, np.nan, -0.5], [np.nan, np.nan, 2.0]]),
        "bool23": np.array([[0.0, 1.0, np.nan], [-2.0, 0.0, 0.5]]),
        "bool13": np.array([[0.0, 3.0, 0.0]]),
        "idx2": np.array([2.0, 0.0]),
        "img1256": u(1, 2, 5, 6),
        "img1234": u(1, 2, 3, 4),
        "img2833": u(2, 8, 3, 3),
        "img2246": u(2, 2, 4, 6),
        "img2223": u(2, 2, 2, 3),
        "img2146": u(2, 1, 4, 6),
        "img2145": u(2, 1, 4, 5),
        "bilinear_w": bilinear,
        "theta": np.array([[0.9, 0.1, 0.05, -0.1, 0.8, 0.1], [1.1, -0.2, 0.0, 0.1, 0.9, -0.05]]),
        "flow": u(2, 2, 3, 4, low=-1, high=1),
        "img2245": u(2, 2, 4, 5),
        "grid2233": u(2, 2, 3, 3, low=-1.1, high=1.1),
        "feat": rng.permutation(2 * 3 * 8 * 9).reshape(2, 3, 8, 9) / 50.0,
        "rois": np.array([[0, 0, 0, 10, 8], [1, 4, 2, 15, 13], [0, 6, 6, 6, 6.0]]),
        "corr_a": u(1, 3, 6, 7),
        "corr_b": u(1, 3, 6, 7),
        "m2": u(2),
        "ridx": np.array([[0.0, 2, 1, 2], [3, 0, 1, 2]]),
        "flat": np.array([0.0, 5, 11, 7]),
        "cols": u(1, 12, 18),
        "kr_a": u(2, 3),
        "kr_b": u(4, 3),
        "oh_idx": np.array([1.0, 5.0]),
    }


F64, F32 = "float64", "float32"
CASES = [
    # loss outputs (the head gradient is ignored by both)
    ("make_loss", ["x23"], {}, F64, [0], []),
    ("MakeLoss", ["x23"], {"grad_scale": 2.0}, F64, [0], []),
    ("MakeLoss", ["x23"], {"normalization": "batch", "grad_scale": 3.0}, F64, [0], []),
    ("MakeLoss", ["x23"], {"normalization": "valid", "valid_thresh": 0.4}, F64, [0], []),
    ("LinearRegressionOutput", ["x23", "l23"], {"grad_scale": 2.0}, F64, [0], []),
    ("MAERegressionOutput", ["x23", "l23"], {}, F64, [0], []),
    ("LogisticRegressionOutput", ["x23", "l23"], {"grad_scale": 0.5}, F64, [0], []),
    (
        "SVMOutput",
        ["x43", "lab4"],
        {"margin": 0.7, "regularization_coefficient": 2.0},
        F32,
        [0],
        [],
    ),
    ("SVMOutput", ["x43", "lab4"], {"use_linear": True}, F32, [0], []),
    # shapes and indexing
    ("add_n", ["x23", "y23", "z23"], {}, F64, [0, 1, 2], []),
    ("ElementWiseSum", ["x23", "y23"], {}, F64, [0, 1], []),
    ("broadcast_axis", ["x31"], {"axis": 1, "size": 4}, F64, [0], []),
    ("broadcast_axes", ["x311"], {"axis": (1, 2), "size": (2, 3)}, F64, [0], []),
    ("slice_like", ["x45", "x23"], {}, F64, [0], []),
    ("slice_like", ["x45", "x23"], {"axes": (1,)}, F64, [0], []),
    ("Crop", ["img1256"], {"h_w": (3, 4), "offset": (1, 2)}, F32, [0], []),
    ("Crop", ["img1256", "img1234"], {"num_args": 2, "center_crop": True}, F32, [0], []),
    ("depth_to_space", ["img2833"], {"block_size": 2}, F64, [0], []),
    ("space_to_depth", ["img2246"], {"block_size": 2}, F64, [0], []),
    ("diag", ["x33"], {"k": 1}, F64, [0], []),
    ("diag", ["v3"], {"k": -1}, F64, [0], []),
    ("diag", ["x234"], {"k": 1, "axis1": 1, "axis2": 2}, F64, [0], []),
    ("cumsum", ["x234"], {"axis": 1}, F64, [0], []),
    ("shape_array", ["x234"], {}, F64, [], []),
    ("size_array", ["x234"], {}, F64, [], []),
    ("moments", ["x234"], {"axes": (0, 2)}, F64, [0], []),
    ("moments", ["x234"], {"axes": (1,), "keepdims": True}, F64, [0], []),
    ("nanprod", ["nan23"], {"axis": 1}, F64, [], []),
    ("softmin", ["x23"], {"axis": 1, "temperature": 2.0}, F64, [0], []),
    ("SoftmaxActivation", ["x234"], {"mode": "channel"}, F32, [0], []),
    ("SoftmaxActivation", ["x23"], {}, F32, [0], []),
    ("argmax_channel", ["x234"], {}, F64, [], []),
    ("batch_take", ["x23", "idx2"], {}, F64, [], [1]),  # MXNet: no gradient
    # elementwise
    ("gamma", ["pos23"], {}, F64, [0], []),
    ("gamma", ["neg23"], {}, F64, [0], []),
    ("gammaln", ["pos23"], {}, F64, [0], []),
    ("gammaln", ["neg23"], {}, F64, [0], []),
    ("degrees", ["x23"], {}, F64, [0], []),
    ("radians", ["x23"], {}, F64, [0], []),
    ("rcbrt", ["pos23"], {}, F64, [0], []),
    ("smooth_l1", ["x23"], {"scalar": 1.3}, F64, [0], []),
    ("broadcast_hypot", ["x23", "bool13"], {}, F64, [0], []),
    ("logical_not", ["bool23"], {}, F64, [], []),
    ("broadcast_logical_and", ["bool23", "bool13"], {}, F64, [], []),
    ("broadcast_logical_or", ["bool23", "bool13"], {}, F64, [], []),
    ("broadcast_logical_xor", ["bool23", "bool13"], {}, F64, [], []),
    # creation, assignment, patches, normalisation, checks
    ("eye", [], {"N": 3, "M": 4, "k": 1, "dtype": "float64"}, F64, [], []),
    ("eye", [], {"N": 3, "k": -1}, F32, [], []),
    ("linspace", [], {"start": 0.3, "stop": 2.9, "num": 7}, F32, [], []),
    ("linspace", [], {"start": -1, "stop": 1, "num": 4, "endpoint": False}, F32, [], []),
    ("_slice_assign", ["x45", "x23"], {"begin": (1, 1), "end": (3, 4)}, F64, [], []),
    (
        "_slice_assign_scalar",
        ["x45"],
        {"scalar": 2.5, "begin": (1, 0), "end": (3, 5), "step": (1, 2)},
        F64,
        [],  # MXNet registers no gradient for the slice assignments
        [],
    ),
    ("ravel_multi_index", ["ridx"], {"shape": (3, 4)}, F32, [], []),
    ("unravel_index", ["flat"], {"shape": (3, 4)}, F32, [], []),
    ("choose_element_0index", ["x23", "idx2"], {}, F32, [0], []),
    ("fill_element_0index", ["x23", "m2", "idx2"], {}, F32, [], []),  # MXNet: no gradient
    ("im2col", ["img1256"], {"kernel": (2, 3), "stride": (2, 1), "pad": (1, 1)}, F64, [0], []),
    (
        "col2im",
        ["cols"],
        {"output_size": (5, 6), "kernel": (2, 3), "stride": (2, 1), "pad": (1, 1)},
        F64,
        [0],
        [],
    ),
    ("LRN", ["img2246"], {"nsize": 3, "alpha": 0.5, "beta": 0.75, "knorm": 1.5}, F32, [0], []),
    ("khatri_rao", ["kr_a", "kr_b"], {}, F64, [], []),
    ("all_finite", ["nan23"], {}, F32, [], []),
    ("all_finite", ["x23"], {}, F32, [], []),
    ("multi_all_finite", ["x23", "y23"], {"num_arrays": 2}, F32, [], []),
    ("multi_sum_sq", ["x23", "x45"], {"num_arrays": 2}, F32, [], []),
    ("amp_cast", ["x23"], {"dtype": "float16"}, F32, [0], []),
    ("cast_storage", ["x23"], {"stype": "default"}, F64, [0], []),
    ("_identity_with_attr_like_rhs", ["x23", "y23"], {}, F64, [0], []),
    ("_onehot_encode", ["oh_idx", "x23"], {}, F32, [], []),
    ("_scatter_plus_scalar", ["x23"], {"scalar": 2.0}, F32, [], []),
    ("_scatter_minus_scalar", ["x23"], {"scalar": 2.0}, F32, [], []),
    ("_scatter_elemwise_div", ["x23", "pos23"], {}, F32, [], []),
    # (MXNet has no dense-storage backward for SparseEmbedding)
    ("SparseEmbedding", ["oh_idx", "x45"], {"input_dim": 4, "output_dim": 5}, F32, [], []),
    # MXNet's Python-level functions over these ops
    ("equal", ["x23", "y23"], {}, F64, [], []),
    ("greater", ["x23"], {"rhs": 0.5}, F64, [], []),
    ("lesser_equal", ["bool23", "bool13"], {}, F64, [], []),
    ("logical_xor", ["bool23"], {"rhs": 0.0}, F64, [], []),
    ("modulo", ["x23"], {"rhs": 0.7}, F64, [0], []),
    ("true_divide", ["x23", "pos23"], {}, F64, [0, 1], []),
    ("moveaxis", ["x234"], {"source": 0, "destination": 2}, F64, [0], []),
    ("histogram", ["x23"], {"bins": 4, "range": (-2, 2)}, F32, [], []),
    ("split_v2", ["x45"], {"indices_or_sections": (1, 3), "axis": 1}, F64, [0], []),
    ("split_v2", ["x45"], {"indices_or_sections": 2}, F64, [0], []),
    # spatial
    ("UpSampling", ["img2223"], {"scale": 2, "sample_type": "nearest"}, F32, [0], []),
    (
        "UpSampling",
        ["img2223", "img2146"],
        {"scale": 2, "sample_type": "nearest", "num_args": 2},
        F32,
        [0, 1],
        [],
    ),
    (
        "UpSampling",
        ["img2223", "img2246"],
        {"scale": 2, "sample_type": "nearest", "multi_input_mode": "sum", "num_args": 2},
        F32,
        [0, 1],
        [],
    ),
    (
        "UpSampling",
        ["img2223", "bilinear_w"],
        {"scale": 2, "sample_type": "bilinear", "num_filter": 2, "num_args": 2},
        F32,
        [0, 1],
        [],
    ),
    (
        "GridGenerator",
        ["theta"],
        {"transform_type": "affine", "target_shape": (3, 4)},
        F32,
        [0],
        [],
    ),
    ("GridGenerator", ["flow"], {"transform_type": "warp"}, F32, [0], []),
    ("BilinearSampler", ["img2245", "grid2233"], {}, F32, [0, 1], []),
    (
        "SpatialTransformer",
        ["img2245", "theta"],
        {"target_shape": (3, 3), "transform_type": "affine", "sampler_type": "bilinear"},
        F32,
        [0, 1],
        [],
    ),
    ("ROIPooling", ["feat", "rois"], {"pooled_size": (2, 3), "spatial_scale": 0.5}, F32, [0], []),
    (
        "Correlation",
        ["corr_a", "corr_b"],
        {"kernel_size": 3, "max_displacement": 2, "pad_size": 2},
        F32,
        [0, 1],
        [],
    ),
    (
        "Correlation",
        ["corr_a", "corr_b"],
        {
            "kernel_size": 1,
            "max_displacement": 2,
            "stride2": 2,
            "pad_size": 2,
            "is_multiply": False,
        },
        F32,
        [0, 1],
        [],
    ),
]


def _heads(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A random head gradient for every output of every case (shapes from symgrad)."""
    rng = np.random.default_rng(21)
    heads = {}
    for index, (op, names, attrs, dtype, _wrt, integer) in enumerate(CASES):
        args = [
            symgrad.nd.array(inputs[n], dtype="int32" if i in integer else dtype)
            for i, n in enumerate(names)
        ]
        outs = (getattr(symgrad.nd, op, None) or getattr(symgrad.nd.contrib, op))(*args, **attrs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        for k, out in enumerate(outs):
            heads[f"{index}_{k}"] = rng.uniform(-1, 1, out.shape)
    return heads


def test_tail_ops_equal_mxnet(mxnet_python, tmp_path):
    inputs = _inputs()
    heads = _heads(inputs)
    (tmp_path / "cases.json").write_text(json.dumps(CASES))
    np.savez(tmp_path / "inputs.npz", **inputs)
    np.savez(tmp_path / "heads.npz", **heads)
    run_mxnet(mxnet_python, SCRIPT + MXNET_MAIN, tmp_path)
    expected = dict(np.load(tmp_path / "mxnet.npz"))
    namespace: dict = {}
    exec(SCRIPT, namespace)  # the very function MXNet ran
    actual = namespace["run_cases"](symgrad, json.loads(json.dumps(CASES)), inputs, heads)
    assert sorted(actual) == sorted(expected)
    failures = []
    for key in sorted(expected, key=lambda k: (int(k.split("_")[0]), k)):
        op, names, attrs, dtype, _wrt, _integer = CASES[int(key.split("_")[0])]
        rtol, atol = (1e-8, 1e-10) if dtype == F64 else (2e-5, 2e-6)
        if op in ("gamma", "gammaln") and "grad" in key:
            rtol = 1e-6  # MXNet's digamma is good to about 1e-7; ours to 1e-15
        got, want = actual[key], expected[key]
        if (
            got.shape != want.shape
            or got.dtype != want.dtype
            or not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        ):
            failures.append(
                f"{op}{tuple(names)} {attrs} {key}:\n  symgrad {got.dtype} {got!r}\n"
                f"  mxnet   {want.dtype} {want!r}"
            )
    assert not failures, "\n".join(failures)


def test_every_tail_case_op_is_in_both_namespaces():
    from symgrad_compiler import OPS

    for op, *_ in CASES:
        assert callable(getattr(symgrad.nd, op, None) or getattr(symgrad.nd.contrib, op)), op
        if op in OPS:  # the others: mx.nd-only Python functions, or in mx.nd.contrib
            assert callable(getattr(symgrad.sym, op)), op
    for name in ("arange", "full", "hypot", "histogram", "split_v2"):
        assert callable(getattr(symgrad.sym, name)), name


KL_SCRIPT = """
import numpy as np

def run_kl(mx):
    data = mx.sym.var("data")
    net = mx.sym.IdentityAttachKLSparseReg(
        data, sparseness_target=0.2, penalty=0.01, momentum=0.8, name="kl"
    )
    x = np.array([[0.1, 0.5, 0.9], [0.3, 0.7, 0.2]], dtype=np.float32)
    ex = net.simple_bind(mx.cpu(), data=(2, 3), kl_moving_avg=(3,), grad_req="write")
    ex.aux_dict["kl_moving_avg"][:] = 0.5
    ex.arg_dict["data"][:] = x
    results = {}
    for step in range(2):
        ex.forward(is_train=True)
        ex.backward(mx.nd.ones((2, 3)))
        mx.nd.waitall()  # MXNet's engine writes the average asynchronously
        results[f"out{step}"] = ex.outputs[0].asnumpy()
        results[f"avg{step}"] = ex.aux_dict["kl_moving_avg"].asnumpy()
        results[f"grad{step}"] = ex.grad_dict["data"].asnumpy()
    ex.forward(is_train=False)
    mx.nd.waitall()
    results["avg_after_predict"] = ex.aux_dict["kl_moving_avg"].asnumpy()
    return results
"""


def test_kl_sparse_reg_equals_mxnet(mxnet_python, tmp_path):
    # MXNet updates the moving average in backward, symgrad in the training
    # forward: after each forward + backward step they agree
    main = 'import mxnet as mx\nnp.savez("mxnet.npz", **run_kl(mx))\n'
    run_mxnet(mxnet_python, KL_SCRIPT + main, tmp_path)
    expected = dict(np.load(tmp_path / "mxnet.npz"))
    namespace: dict = {}
    exec(KL_SCRIPT, namespace)
    actual = namespace["run_kl"](symgrad)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, err_msg=key)


UPDATE_SCRIPT = """
import numpy as np

def run_updates(mx, inputs):
    results = {}
    for name in ("sgd", "sgd_mom", "mp_sgd", "mp_sgd_mom"):
        for preloaded in (False, True):
            mp, mom = name.startswith("mp"), name.endswith("mom")
            arrays = []
            for i in range(2):
                low = "float16" if mp else "float32"
                arrays += [
                    mx.nd.array(inputs[f"w{i}"], dtype=low),
                    mx.nd.array(inputs[f"g{i}"], dtype=low),
                ]
                if mom:
                    arrays.append(mx.nd.array(inputs[f"m{i}"], dtype="float32"))
                if mp:
                    arrays.append(mx.nd.array(inputs[f"w{i}"], dtype="float32"))
            attrs = {"num_weights": 2, "rescale_grad": 0.5, "clip_gradient": 0.3}
            if mom:
                attrs["momentum"] = 0.9
            if preloaded:
                arrays += [mx.nd.array([0.1, 0.05]), mx.nd.array([0.01, 0.002])]
            else:
                attrs.update(lrs=(0.1, 0.05), wds=(0.01, 0.002))
            op = f"{'preloaded_' if preloaded else ''}multi_{name}_update"
            size = 2 + mom + mp
            weights = [arrays[i * size] for i in range(2)]
            # as MXNet's optimizers call them: the new weights written into the weights
            getattr(mx.nd, op)(*arrays, out=weights, **attrs)
            for k, array in enumerate(arrays):
                results[f"{op}_in{k}"] = array.asnumpy()  # the states, updated in place
    arrays = [mx.nd.array(inputs[f"ftml_{k}"]) for k in "wgdvz"]
    attrs = {"lr": 0.1, "t": 3, "wd": 0.01, "rescale_grad": 0.5, "clip_grad": 0.8}
    mx.nd.ftml_update(*arrays, out=arrays[0], **attrs)
    for k, array in zip("wgdvz", arrays):
        results[f"ftml_{k}"] = array.asnumpy()

    def internal(name):
        return getattr(mx.nd, name, None) or getattr(mx.nd._internal, name)

    # mixed-precision AdamW and LAMB: float16 weights, float32 states
    def adam_group(i, mp):
        group = [
            mx.nd.array(inputs[f"w{i}"], dtype="float16" if mp else "float32"),
            mx.nd.array(inputs[f"g{i}"], dtype="float16" if mp else "float32"),
            mx.nd.array(inputs[f"m{i}"], dtype="float32"),
            mx.nd.array(np.abs(inputs[f"g{i}"]) + 0.1, dtype="float32"),
        ]
        return group + ([mx.nd.array(inputs[f"w{i}"], dtype="float32")] if mp else [])

    scale = mx.nd.array([0.5])
    group = adam_group(0, True)
    internal("_mp_adamw_update")(
        *group, scale, lr=0.01, eta=0.5, wd=0.1, clip_gradient=0.3, out=group[0]
    )
    for k, array in enumerate(group):
        results[f"mp_adamw_{k}"] = array.asnumpy()
    for mp in (False, True):
        arrays = adam_group(0, mp) + adam_group(1, mp)
        size = 5 if mp else 4
        name = f"_multi_{'mp_' if mp else ''}adamw_update"
        internal(name)(
            *arrays,
            scale,
            lrs=(0.01, 0.02),
            wds=(0.1, 0.0),
            etas=(0.5, 1.0),
            num_weights=2,
            out=[arrays[0], arrays[size]],
        )
        for k, array in enumerate(arrays):
            results[f"{name}_{k}"] = array.asnumpy()
    group = adam_group(1, True)
    direction = mx.nd.mp_lamb_update_phase1(*group, t=3, wd=0.01, rescale_grad=0.5)
    results["mp_lamb1_g"] = direction.asnumpy()
    for k, array in enumerate(group):
        results[f"mp_lamb1_{k}"] = array.asnumpy()
    r1, r2 = mx.nd.array([1.5]), mx.nd.array([0.7])
    weight, weight32 = group[0], group[4]
    mx.nd.mp_lamb_update_phase2(weight, direction, r1, r2, weight32, lr=0.1, out=weight)
    mx.nd.waitall()
    results["mp_lamb2_w"], results["mp_lamb2_w32"] = weight.asnumpy(), weight32.asnumpy()
    coefficients = mx.nd.multi_lars(
        mx.nd.array([0.1, 0.2, 0.3]),
        mx.nd.array([1.0, 4.0, 0.0]),
        mx.nd.array([0.25, 0.0, 1.0]),
        mx.nd.array([0.01, 0.02, 0.0]),
        eta=0.5,
        eps=1e-3,
        rescale_grad=0.5,
    )
    results["multi_lars"] = coefficients.asnumpy()
    for mp in (False, True):
        arrays = adam_group(0, mp) + adam_group(1, mp)
        size = 5 if mp else 4
        name = f"_multi_{'mp_' if mp else ''}lamb_update"
        internal(name)(
            *arrays,
            learning_rates=(0.01, 0.02),
            wds=(0.1, 0.0),
            step_count=(3, 5),
            num_tensors=2,
            rescale_grad=0.5,
            lower_bound=0.1,
            upper_bound=10.0,
            out=[arrays[0], arrays[size]],
        )
        mx.nd.waitall()
        for k, array in enumerate(arrays):
            results[f"{name}_{k}"] = array.asnumpy()
    weight, grad = mx.nd.array(inputs["w0"]), mx.nd.array(inputs["g0"])
    history = mx.nd.array(np.abs(inputs["m0"][:, :1]) + 0.1)
    if hasattr(mx.nd, "sparse"):  # MXNet has it for row_sparse gradients only
        grad = grad.tostype("row_sparse")
    update = getattr(mx.nd.contrib, "group_adagrad_update")
    update(weight, grad, history, lr=0.1, rescale_grad=0.5, out=weight)
    mx.nd.waitall()
    results["group_adagrad_w"], results["group_adagrad_h"] = weight.asnumpy(), history.asnumpy()
    return results
"""


def test_multi_sgd_and_ftml_updates_equal_mxnet(mxnet_python, tmp_path):
    rng = np.random.default_rng(7)
    inputs = {
        f"{kind}{i}": rng.uniform(-1, 1, (3, 4)) for kind in ("w", "g", "m") for i in range(2)
    }
    inputs.update({f"ftml_{k}": rng.uniform(-1, 1, (3, 4)) for k in "wgz"})
    inputs.update({f"ftml_{k}": rng.uniform(0.1, 1, (3, 4)) for k in "dv"})
    np.savez(tmp_path / "inputs.npz", **inputs)
    main = (
        'import mxnet as mx\ninputs = dict(np.load("inputs.npz"))\n'
        'np.savez("mxnet.npz", **run_updates(mx, inputs))\n'
    )
    run_mxnet(mxnet_python, UPDATE_SCRIPT + main, tmp_path)
    expected = dict(np.load(tmp_path / "mxnet.npz"))
    namespace: dict = {}
    exec(UPDATE_SCRIPT, namespace)
    actual = namespace["run_updates"](symgrad, inputs)
    assert sorted(actual) == sorted(expected)
    for key in sorted(expected):
        assert actual[key].dtype == expected[key].dtype, key
        half = expected[key].dtype == np.float16
        # atol: float32 rounding of values near 0 (a LAMB step's cancellation)
        np.testing.assert_allclose(
            actual[key],
            expected[key],
            rtol=1e-3 if half else 1e-6,
            atol=0 if half else 1e-7,
            err_msg=key,
        )
