"""Every ``mx.nd.linalg`` op against the real MXNet 1.9.1 on the same float64
inputs: the outputs, and the gradients of a random weighted sum of the outputs with
respect to every input, equal to 1e-8 relative.

The same script text runs under MXNet (in its virtualenv) and here with ``mx`` bound
to symgrad: the cases travel as JSON, the arrays as .npz files in tmp_path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad

pytestmark = pytest.mark.interop

# Shared by both sides: run every case, save outputs and input gradients.
SCRIPT = """
import json
import numpy as np

def run_cases(mx, cases, inputs, heads):
    results = {}
    for index, (op, names, attrs) in enumerate(cases):
        args = [mx.nd.array(inputs[name], dtype="float64") for name in names]
        for arg in args:
            arg.attach_grad()
        with mx.autograd.record():
            outs = getattr(mx.nd.linalg, op)(*args, **attrs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        head_grads = [mx.nd.array(heads[f"{index}_{k}"], dtype="float64")
                      for k in range(len(outs))]
        mx.autograd.backward(outs, head_grads)
        for k, out in enumerate(outs):
            results[f"{index}_out{k}"] = out.asnumpy()
        for k, arg in enumerate(args):
            results[f"{index}_grad{k}"] = arg.grad.asnumpy()
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
    rng = np.random.default_rng(20)

    def spd(*shape):
        m = rng.uniform(-1, 1, shape)
        return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])

    def lower(*shape):
        m = np.tril(rng.uniform(-0.5, 0.5, shape), -1)
        return m + np.eye(shape[-1]) * rng.uniform(1, 2, (*shape[:-2], 1, shape[-1]))

    def upper(*shape):
        return np.swapaxes(lower(*shape), -1, -2)

    return {
        "a23": rng.uniform(-1, 1, (2, 3)),
        "a234": rng.uniform(-1, 1, (2, 3, 4)),
        "a243": rng.uniform(-1, 1, (2, 4, 3)),
        "a245": rng.uniform(-1, 1, (2, 4, 5)),
        "a253": rng.uniform(-1, 1, (2, 5, 3)),
        "a254": rng.uniform(-1, 1, (2, 5, 4)),
        "c235": rng.uniform(-1, 1, (2, 3, 5)),
        "r324": rng.uniform(-1, 1, (3, 2, 4)),
        "r425": rng.uniform(-1, 1, (4, 2, 5)),
        "r325": rng.uniform(-1, 1, (3, 2, 5)),
        "spd33": spd(3, 3),
        "spd233": spd(2, 3, 3),
        "low233": lower(2, 3, 3),
        "up233": upper(2, 3, 3),
        "low33": lower(3, 3),
        "full233": rng.uniform(-1, 1, (2, 3, 3)) + 2 * np.eye(3),
        "full44": rng.uniform(-1, 1, (4, 4)),
        "b234": rng.uniform(-1, 1, (2, 3, 4)),
        "b243": rng.uniform(-1, 1, (2, 4, 3)),
        "v23": rng.uniform(-1, 1, (2, 3)),
        "v26": rng.uniform(-1, 1, (2, 6)),
        "v3": rng.uniform(-1, 1, (3,)),
        "neg33": np.diag([-1.5, 2.0, 0.7]) + 0.1 * rng.uniform(-1, 1, (3, 3)),
    }


CASES = [
    ("gemm", ["a234", "a245", "c235"], {"alpha": 0.7, "beta": -1.2}),
    ("gemm", ["a243", "a254", "c235"], {"transpose_a": True, "transpose_b": True}),
    ("gemm", ["r324", "r425", "r325"], {"axis": -3, "alpha": 2.0}),
    ("gemm2", ["a234", "a245"], {"alpha": -0.5}),
    ("gemm2", ["a243", "a245"], {"transpose_a": True}),
    ("gemm2", ["a234", "a254"], {"transpose_b": True, "alpha": 1.5}),
    ("gemm2", ["r324", "r425"], {"axis": -3}),
    ("potrf", ["spd233"], {}),
    ("potrf", ["spd33"], {}),
    ("potri", ["low233"], {}),
    ("trmm", ["low233", "b234"], {"alpha": 1.3}),
    ("trmm", ["low233", "b243"], {"rightside": True, "transpose": True}),
    ("trmm", ["up233", "b234"], {"lower": False, "transpose": True, "alpha": -0.4}),
    ("trsm", ["low233", "b234"], {"alpha": 0.8}),
    ("trsm", ["low233", "b243"], {"rightside": True}),
    ("trsm", ["up233", "b243"], {"lower": False, "rightside": True, "transpose": True}),
    ("trsm", ["up233", "b234"], {"lower": False, "transpose": True, "alpha": 2.0}),
    ("syrk", ["a234"], {"alpha": 0.6}),
    ("syrk", ["a234"], {"transpose": True}),
    ("gelqf", ["a234"], {}),
    ("gelqf", ["a23"], {}),
    ("syevd", ["spd233"], {}),
    ("sumlogdiag", ["spd233"], {}),
    ("sumlogdiag", ["spd33"], {}),
    ("extractdiag", ["full233"], {}),
    ("extractdiag", ["full44"], {"offset": -2}),
    ("makediag", ["v23"], {"offset": 1}),
    ("makediag", ["v3"], {}),
    ("extracttrian", ["full44"], {"offset": 1}),
    ("extracttrian", ["full233"], {"lower": False}),
    ("extracttrian", ["full233"], {"offset": -1}),
    ("maketrian", ["v26"], {}),
    ("maketrian", ["v26"], {"lower": False, "offset": 1}),
    ("maketrian", ["v3"], {"offset": -1}),
    ("inverse", ["full233"], {}),
    ("inverse", ["low33"], {}),
    ("det", ["full233"], {}),
    ("det", ["neg33"], {}),
    ("slogdet", ["full233"], {}),
    ("slogdet", ["neg33"], {}),
]


def _heads(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A random head gradient for every output of every case (shapes from symgrad)."""
    rng = np.random.default_rng(21)
    heads = {}
    for index, (op, names, attrs) in enumerate(CASES):
        outs = getattr(symgrad.nd.linalg, op)(
            *[symgrad.nd.array(inputs[n], dtype="float64") for n in names], **attrs
        )
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        for k, out in enumerate(outs):
            heads[f"{index}_{k}"] = rng.uniform(-1, 1, out.shape)
    return heads


def test_linalg_ops_equal_mxnet(mxnet_python, tmp_path):
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
        op, names, attrs = CASES[int(key.split("_")[0])]
        if actual[key].shape != expected[key].shape or not np.allclose(
            actual[key], expected[key], rtol=1e-8, atol=1e-10
        ):
            failures.append(
                f"{op}{tuple(names)} {attrs} {key}:\n  symgrad {actual[key]!r}\n"
                f"  mxnet   {expected[key]!r}"
            )
    assert not failures, "\n".join(failures)


SYMBOL_SCRIPT = """
import json
import mxnet as mx
import numpy as np

inputs = dict(np.load("inputs.npz"))
# symgrad's file, run by MXNet
net = mx.sym.load("symgrad-symbol.json")
args = {name: mx.nd.array(inputs[name], dtype="float64") for name in net.list_arguments()}
outputs = net.eval(ctx=mx.cpu(), **args)
np.savez("mxnet-ran-symgrad.npz", *[o.asnumpy() for o in outputs])
# MXNet's own file, for symgrad to run
k, v = mx.sym.var("k"), mx.sym.var("v")
lower = mx.sym.linalg.potrf(k)
out = mx.sym.Group([
    mx.sym.linalg.sumlogdiag(lower),
    mx.sym.linalg.trsm(lower, v, transpose=True, alpha=0.5),
    mx.sym.linalg.gemm(k, v, v, transpose_a=True, alpha=2.0, beta=-1.0),
    mx.sym.linalg.maketrian(mx.sym.linalg.extracttrian(k, offset=-1), offset=-1),
    mx.sym.linalg.syrk(v, transpose=True, alpha=0.25),
    mx.sym.linalg_slogdet(k)[1],
])
out.save("mxnet-symbol.json")
args = {"k": mx.nd.array(inputs["k"], dtype="float64"),
        "v": mx.nd.array(inputs["v"], dtype="float64")}
np.savez("mxnet-ran-mxnet.npz", *[o.asnumpy() for o in out.eval(ctx=mx.cpu(), **args)])
"""


def test_linalg_symbol_files_load_both_ways(mxnet_python, tmp_path):
    rng = np.random.default_rng(22)
    m = rng.uniform(-1, 1, (2, 3, 3))
    inputs = {
        "k": m @ np.swapaxes(m, -1, -2) + 3 * np.eye(3),
        "v": rng.uniform(-1, 1, (2, 3, 3)),
        "w": rng.uniform(-1, 1, (2, 3, 4)),
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    k, v, w = symgrad.sym.var("k"), symgrad.sym.var("v"), symgrad.sym.var("w")
    lower = symgrad.sym.linalg.potrf(k)
    ours = symgrad.sym.Group(
        [
            symgrad.sym.linalg.trmm(lower, w, alpha=1.5),
            symgrad.sym.linalg.gemm2(v, w, transpose_a=True, alpha=-0.5),
            symgrad.sym.linalg.potri(lower),
            symgrad.sym.linalg.det(v),
            symgrad.sym.linalg.makediag(symgrad.sym.linalg.extractdiag(k, offset=1), offset=1),
            symgrad.sym.linalg.syevd(k)[1],
            symgrad.sym.linalg.inverse(k),
        ]
    )
    ours.save(str(tmp_path / "symgrad-symbol.json"))
    run_mxnet(mxnet_python, SYMBOL_SCRIPT, tmp_path)
    arrays = {name: symgrad.nd.array(value, dtype="float64") for name, value in inputs.items()}
    mine = ours.eval(**{name: arrays[name] for name in ours.list_arguments()})
    theirs = np.load(tmp_path / "mxnet-ran-symgrad.npz")
    assert len(theirs.files) == len(mine) == 7
    for k_out, value in enumerate(mine):
        np.testing.assert_allclose(
            value.asnumpy(),
            theirs[f"arr_{k_out}"],
            rtol=1e-10,
            atol=1e-12,
            err_msg=f"symgrad's output {k_out}",
        )
    loaded = symgrad.sym.load(str(tmp_path / "mxnet-symbol.json"))
    mine = loaded.eval(k=arrays["k"], v=arrays["v"])
    theirs = np.load(tmp_path / "mxnet-ran-mxnet.npz")
    assert len(theirs.files) == len(mine) == 6
    for k_out, value in enumerate(mine):
        np.testing.assert_allclose(
            value.asnumpy(),
            theirs[f"arr_{k_out}"],
            rtol=1e-10,
            atol=1e-12,
            err_msg=f"MXNet's output {k_out}",
        )
