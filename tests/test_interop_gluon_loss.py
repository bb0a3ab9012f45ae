"""Every ``gluon.loss`` loss against the real MXNet 1.9.1 on the same float32 inputs:
loss values and the gradients of their sum with respect to every floating input,
imperative and hybridized, equal to 1e-5 relative.

One MXNet script evaluates every case (one subprocess); the cases and inputs travel
as a JSON spec and an .npz file in tmp_path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx

pytestmark = pytest.mark.interop

RTOL = 1e-5


def _inputs() -> dict[str, np.ndarray]:
    """Named float32 arrays the cases draw from (made here, never committed)."""
    rng = np.random.default_rng(14)

    def uniform(low, high, *shape):
        return rng.uniform(low, high, shape).astype(np.float32)

    def logits(*shape):
        return uniform(-3, 3, *shape)

    signs = np.where(rng.random((4, 3)) < 0.5, -1.0, 1.0).astype(np.float32)
    poisson = rng.poisson(2.0, (4, 3)).astype(np.float32)
    poisson[0, :2] = [0.0, 1.0]  # the Stirling term's edges: 0 and 1 get none
    ctc_label = np.array(
        [[1, 2, 2, -1], [3, -1, -1, -1], [0, 1, 3, 2], [2, 2, 2, -1]], dtype=np.float32
    )
    return {
        "x43": logits(4, 3),
        "y43": logits(4, 3),
        "z43": logits(4, 3),
        "x41": logits(4, 1),
        "y4": logits(4),
        "sw41": uniform(0.2, 2, 4, 1),
        "sw4": uniform(0.2, 2, 4),
        "sw1_3": uniform(0.2, 2, 1, 3),
        "x234": logits(2, 3, 4),
        "y234": logits(2, 3, 4),
        "sw134": uniform(0.2, 2, 1, 3, 4),
        "prob43": uniform(0.02, 0.98, 4, 3),
        "bin43": (rng.random((4, 3)) < 0.5).astype(np.float32),
        "posw3": uniform(0.5, 3, 3),
        "sign43": signs,
        "cls4": np.array([0, 2, 1, 2], dtype=np.float32),
        "x435": logits(4, 3, 5),
        "cls45": rng.integers(0, 3, (4, 5)).astype(np.float32),
        "dist43": _rows_of_probabilities(rng, (4, 3)),
        "logp43": np.log(_rows_of_probabilities(rng, (4, 3))).astype(np.float32),
        "pos43": uniform(0.1, 3, 4, 3),
        "count43": poisson,
        "count43_nonzero": np.maximum(poisson, 1.0),
        "cos_label4": np.array([1, -1, 1, -1], dtype=np.float32),
        "ntc": logits(4, 7, 5),
        "tnc": logits(7, 4, 5),
        "ctc_nt": ctc_label,
        "ctc_tn": np.ascontiguousarray(ctc_label.T),
        "ctc_dl": np.array([7, 5, 6, 7], np.float32),
        "ctc_ll": np.array([3, 1, 2, 3], np.float32),
        # an empty label, and one whose repeats need more frames than there are
        "ntc_short": logits(2, 4, 4),
        "ctc_empty": np.array([[-1, -1, -1, -1], [2, 1, -1, -1]], dtype=np.float32),
        "ctc_infeasible": np.array([[1, 1, 1, -1], [2, 2, 2, -1]], dtype=np.float32),
    }


def _rows_of_probabilities(rng, shape):
    p = rng.uniform(0.1, 1.0, shape)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


# (case id, class, constructor kwargs, input names in call order (None: not given, as
#  MXNet's Block takes positional inputs only), names of the inputs differentiated)
CASES = [
    ("l2", "L2Loss", {}, ["x43", "y43"], ["x43", "y43"]),
    ("l2_weighted", "L2Loss", {"weight": 0.7}, ["x43", "y43", "sw41"], ["x43", "sw41"]),
    ("l2_batch_axis1", "L2Loss", {"batch_axis": 1}, ["x234", "y234", "sw134"], ["x234", "y234"]),
    ("l2_flat_label", "L2Loss", {}, ["x41", "y4"], ["x41", "y4"]),
    ("l1", "L1Loss", {}, ["x43", "y43"], ["x43", "y43"]),
    ("l1_weighted", "L1Loss", {"weight": 2.0}, ["x43", "y43", "sw1_3"], ["x43"]),
    ("bce_logits", "SigmoidBinaryCrossEntropyLoss", {}, ["x43", "bin43"], ["x43"]),
    ("bce_logits_soft_label", "SigmoidBCELoss", {}, ["x43", "prob43", "sw41"], ["x43", "prob43"]),
    ("bce_pos_weight", "SigmoidBCELoss", {}, ["x43", "bin43", None, "posw3"], ["x43", "posw3"]),
    (
        "bce_from_sigmoid",
        "SigmoidBCELoss",
        {"from_sigmoid": True, "weight": 0.5},
        ["prob43", "bin43"],
        ["prob43"],
    ),
    (
        "bce_from_sigmoid_pos_weight",
        "SigmoidBCELoss",
        {"from_sigmoid": True},
        ["prob43", "bin43", "sw41", "posw3"],
        ["prob43", "posw3"],
    ),
    ("sce", "SoftmaxCrossEntropyLoss", {}, ["x43", "cls4"], ["x43"]),
    ("sce_weighted", "SoftmaxCELoss", {"weight": 1.5}, ["x43", "cls4", "sw41"], ["x43"]),
    ("sce_axis1", "SoftmaxCELoss", {"axis": 1}, ["x435", "cls45"], ["x435"]),
    ("sce_dense", "SoftmaxCELoss", {"sparse_label": False}, ["x43", "dist43"], ["x43", "dist43"]),
    ("sce_from_logits", "SoftmaxCELoss", {"from_logits": True}, ["logp43", "cls4"], ["logp43"]),
    ("kl", "KLDivLoss", {}, ["logp43", "dist43"], ["logp43", "dist43"]),
    ("kl_from_scores", "KLDivLoss", {"from_logits": False}, ["x43", "dist43", "sw41"], ["x43"]),
    ("huber", "HuberLoss", {}, ["x43", "y43"], ["x43"]),
    ("huber_rho", "HuberLoss", {"rho": 0.5, "weight": 3.0}, ["x43", "y43", "sw41"], ["x43", "y43"]),
    ("hinge", "HingeLoss", {}, ["x43", "sign43"], ["x43"]),
    ("hinge_margin", "HingeLoss", {"margin": 2.0}, ["x43", "sign43", "sw41"], ["x43"]),
    ("squared_hinge", "SquaredHingeLoss", {}, ["x43", "sign43"], ["x43"]),
    (
        "squared_hinge_margin",
        "SquaredHingeLoss",
        {"margin": 0.5, "weight": 2.0},
        ["x43", "sign43"],
        ["x43"],
    ),
    ("logistic_signed", "LogisticLoss", {}, ["x43", "sign43"], ["x43"]),
    (
        "logistic_binary",
        "LogisticLoss",
        {"label_format": "binary"},
        ["x43", "bin43", "sw41"],
        ["x43"],
    ),
    ("triplet", "TripletLoss", {}, ["x43", "y43", "z43"], ["x43", "y43", "z43"]),
    (
        "triplet_margin",
        "TripletLoss",
        {"margin": 4.0, "weight": 0.5},
        ["x43", "y43", "z43"],
        ["x43", "y43", "z43"],
    ),
    ("cosine", "CosineEmbeddingLoss", {}, ["x43", "y43", "cos_label4"], ["x43", "y43"]),
    (
        "cosine_margin",
        "CosineEmbeddingLoss",
        {"margin": 0.2},
        ["x43", "y43", "cos_label4", "sw41"],
        ["x43", "y43"],
    ),
    ("poisson", "PoissonNLLLoss", {}, ["x43", "count43"], ["x43"]),
    (
        "poisson_rates",
        "PoissonNLLLoss",
        {"from_logits": False},
        ["pos43", "count43", "sw41"],
        ["pos43"],
    ),
    (
        "poisson_full",
        "PoissonNLLLoss",
        {"compute_full": True, "weight": 0.5},
        ["x43", "count43_nonzero"],
        ["x43"],
    ),
    ("sdml", "SDMLLoss", {}, ["x43", "y43"], ["x43", "y43"]),
    (
        "sdml_smoothing",
        "SDMLLoss",
        {"smoothing_parameter": 0.1, "weight": 2.0},
        ["x43", "y43"],
        ["x43", "y43"],
    ),
    ("ctc", "CTCLoss", {}, ["ntc", "ctc_nt"], ["ntc"]),
    ("ctc_empty_label", "CTCLoss", {}, ["ntc_short", "ctc_empty"], ["ntc_short"]),
    ("ctc_infeasible", "CTCLoss", {}, ["ntc_short", "ctc_infeasible"], ["ntc_short"]),
    (
        "ctc_tnc_lengths",
        "CTCLoss",
        {"layout": "TNC", "weight": 2.0},
        ["tnc", "ctc_nt", "ctc_dl", "ctc_ll", "sw4"],
        ["tnc"],
    ),
    ("ctc_tn_label", "CTCLoss", {"label_layout": "TN"}, ["ntc", "ctc_tn", "ctc_dl"], ["ntc"]),
]

# MXNet 1.9.1's PoissonNLLLoss(compute_full=True) multiplies in place (``*=``): that
# fails under autograd.record() imperatively and always when hybridized, so MXNet
# gives only its value, imperatively and unrecorded; both of ours are compared with
# it (the gradients are checked by finite differences in tests/test_gluon_loss.py).
# Its targets are nonzero: MXNet's Stirling term is 0 * log(0) = NaN at a zero
# target, where ours is 0 (tests/test_gluon_loss.py).
# MXNet gives a label that fits no alignment loss 0 and a gradient of no meaning
# (ours is 0, the gradient of a constant): only the values are compared.
MXNET_VALUE_ONLY = {"poisson_full", "ctc_infeasible"}
# MXNet 1.9.1's SDMLLoss reads x1.shape, which a Symbol lacks: it cannot be
# hybridized there; ours can, and both of ours are compared with its imperative run.
MXNET_IMPERATIVE_ONLY = {"sdml", "sdml_smoothing"}

_MXNET_SCRIPT = r"""
import json, sys
import numpy as np
import mxnet as mx
from mxnet.gluon import loss as gloss

spec = json.load(open("cases.json"))
arrays = dict(np.load("inputs.npz"))
results = {}
for case in spec:
    modes = (False,) if case["value_only"] or case["imperative_only"] else (False, True)
    for hybrid in modes:
        block = getattr(gloss, case["cls"])(**case["kwargs"])
        if hybrid:
            block.hybridize()
        inputs = {name: mx.nd.array(arrays[name]) for name in case["args"] if name}
        grads = [] if case["value_only"] else case["grad"]
        for name in grads:
            inputs[name].attach_grad()
        with mx.autograd.record(train_mode=True) if grads else mx.autograd.pause():
            out = block(*[inputs.get(n) for n in case["args"]])
        if grads:
            out.backward()
        tag = case["id"] + ("_hybrid" if hybrid else "")
        results[tag] = out.asnumpy()
        for name in grads:
            results[tag + "_d_" + name] = inputs[name].grad.asnumpy()
np.savez("mxnet.npz", **results)
"""


def _spec() -> list[dict]:
    spec = []
    for case_id, cls, kwargs, args, grad in CASES:
        spec.append(
            {
                "id": case_id,
                "cls": cls,
                "kwargs": kwargs,
                "args": args,
                "grad": grad,
                "value_only": case_id in MXNET_VALUE_ONLY,
                "imperative_only": case_id in MXNET_IMPERATIVE_ONLY,
            }
        )
    return spec


@pytest.fixture(scope="module")
def mxnet_results(mxnet_python, tmp_path_factory):
    """Run every case under the real MXNet once; returns (inputs, results)."""
    workdir = tmp_path_factory.mktemp("gluon_loss_interop")
    arrays = _inputs()
    np.savez(workdir / "inputs.npz", **arrays)
    (workdir / "cases.json").write_text(json.dumps(_spec()))
    run_mxnet(mxnet_python, _MXNET_SCRIPT, workdir)
    return arrays, dict(np.load(workdir / "mxnet.npz"))


def _ours(case: dict, arrays: dict, hybrid: bool) -> dict[str, np.ndarray]:
    block = getattr(mx.gluon.loss, case["cls"])(**case["kwargs"])
    if hybrid:
        block.hybridize()
    inputs = {name: mx.nd.array(arrays[name]) for name in case["args"] if name}
    for name in case["grad"]:
        inputs[name].attach_grad()
    with mx.autograd.record():
        out = block(*[inputs.get(n) for n in case["args"]])
    if case["grad"]:
        out.backward()
    results = {"": out.asnumpy()}
    for name in case["grad"]:
        results["_d_" + name] = inputs[name].grad.asnumpy()
    return results


def _close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape}, MXNet's {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype}, MXNet's {theirs.dtype}"
    # relative to 1e-5, with an absolute floor at 1e-5 of the array's scale for
    # entries that cancel to about zero (float32 rounding of the two sides differs)
    scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * max(scale, 1e-3), err_msg=what)


@pytest.mark.parametrize("hybrid", [False, True], ids=["imperative", "hybridized"])
@pytest.mark.parametrize("case", _spec(), ids=[c[0] for c in CASES])
def test_loss_matches_mxnet(case, hybrid, mxnet_results):
    arrays, theirs = mxnet_results
    mxnet_hybridized = hybrid and not (case["value_only"] or case["imperative_only"])
    tag = case["id"] + ("_hybrid" if mxnet_hybridized else "")
    ours = _ours(case, arrays, hybrid)
    assert np.all(np.isfinite(ours[""])), f"{tag}: non-finite loss {ours['']}"
    for suffix, value in ours.items():
        if suffix and case["value_only"]:
            continue
        _close(value, theirs[tag + suffix], f"{tag}{suffix}")


def test_every_loss_is_compared():
    compared = {cls for _, cls, *_ in CASES}
    exported = set(mx.gluon.loss.__all__) - {"Loss"}
    assert len(exported) == 16
    assert exported <= compared, f"losses without an interop case: {exported - compared}"


# ---------------------------------------------------------------------------
# each loss traced to a Symbol here, saved as MXNet JSON, run by MXNet
# ---------------------------------------------------------------------------

_MXNET_JSON_SCRIPT = r"""
import json
import numpy as np
import mxnet as mx

spec = json.load(open("cases.json"))
arrays = dict(np.load("inputs.npz"))
results = {}
for case in spec:
    symbol = mx.sym.load("%s-symbol.json" % case["id"])
    feed = {name: mx.nd.array(arrays[name]) for name in symbol.list_arguments()}
    results[case["id"]] = symbol.eval(ctx=mx.cpu(), **feed)[0].asnumpy()
np.savez("mxnet_json.npz", **results)
"""


def test_loss_symbols_exported_as_json_run_in_mxnet(mxnet_python, tmp_path):
    # the ops the losses are made of, CTCLoss included, carry MXNet's names and attrs
    arrays = _inputs()
    spec = _spec()
    for case in spec:
        block = getattr(mx.gluon.loss, case["cls"])(**case["kwargs"])
        out = block(*[None if name is None else mx.sym.var(name) for name in case["args"]])
        out.save(str(tmp_path / f"{case['id']}-symbol.json"))
    np.savez(tmp_path / "inputs.npz", **arrays)
    (tmp_path / "cases.json").write_text(json.dumps(spec))
    run_mxnet(mxnet_python, _MXNET_JSON_SCRIPT, tmp_path)
    theirs = dict(np.load(tmp_path / "mxnet_json.npz"))
    for case in spec:
        ours = _ours({**case, "grad": []}, arrays, hybrid=False)[""]
        _close(ours, theirs[case["id"]], f"{case['id']} as MXNet JSON")
