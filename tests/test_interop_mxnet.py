"""symgrad and a real MXNet 1.9.1 read each other's Symbol JSON and agree on values
and gradients.

MXNet runs in a subprocess, in a virtualenv made once under ``build/mxnet-venv``
(``mxnet==1.9.1`` with ``numpy==1.23.5``, which need a Python of 3.8-3.11).
The tests are skipped, saying why, when that virtualenv cannot be made.
Set ``SYMGRAD_MXNET_PYTHON`` to an interpreter to use for it.

Each model is one piece of source run with ``mx`` bound to either library, so
the same script builds it in both. Two MXNet runs per session: the first builds
every model, writes its JSON, values and gradients and evaluates the JSON
symgrad wrote; the second evaluates what symgrad wrote after loading MXNet's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mxnet_interop import _make_venv

import symgrad as mx
from symgrad_compiler import topo_order

pytestmark = pytest.mark.interop


# ---------------------------------------------------------------------------
# the models: source run with ``mx`` bound to mxnet or symgrad
# ---------------------------------------------------------------------------

MODELS = {
    "elementwise": (
        "x = mx.sym.var('x'); y = mx.sym.var('y')\n"
        "out = mx.sym.tanh(x * 2 + 1) * mx.sym.exp(y - 1) + mx.sym.sigmoid(x) / 3 "
        "- (1 - x) ** 2 + 2 ** y + 3 / (x * x + 1)\n",
        {"x": (2, 3), "y": (2, 3)},
    ),
    "mlp": (
        "data = mx.sym.var('data')\n"
        "h = mx.sym.FullyConnected(data, num_hidden=8, name='fc1')\n"
        "h = mx.sym.Activation(h, act_type='relu', name='relu1')\n"
        "h = mx.sym.Dropout(h, p=0.5, name='drop1')\n"
        "h = mx.sym.FullyConnected(h, num_hidden=3, name='fc2')\n"
        "out = mx.sym.softmax(mx.sym.Activation(h, act_type='tanh'), name='prob')\n",
        {"data": (4, 5)},
    ),
    "split_concat": (
        "data = mx.sym.var('data')\n"
        "parts = mx.sym.split(data, num_outputs=3, axis=1, name='parts')\n"
        "joined = mx.sym.concat(parts[2], parts[0] * 2, parts[1], dim=1, name='joined')\n"
        "out = mx.sym.Activation(joined, act_type='sigmoid') - data / 2\n",
        {"data": (4, 6)},
    ),
}

RUNNER = r"""
import json, sys
import numpy as np
import mxnet as mx

request = json.load(open(sys.argv[1]))
result = {}
for case in request["cases"]:
    arrays = np.load(case["inputs"])
    inputs = {k: mx.nd.array(arrays[k], dtype=arrays[k].dtype) for k in arrays.files}
    if "source" in case:
        scope = {"mx": mx}
        exec(case["source"], scope)
        sym = scope["out"]
        json_text = sym.tojson()
    else:
        json_text = case["json"]
        sym = mx.sym.load_json(json_text)
    args = {k: inputs[k] for k in sym.list_arguments()}
    grads = {k: mx.nd.zeros(v.shape, dtype=v.dtype) for k, v in args.items()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads, grad_req="write")
    outputs = exe.forward(is_train=False)
    saved = {"out%d" % i: o.asnumpy() for i, o in enumerate(outputs)}
    if case.get("grads"):
        head = [mx.nd.array(arrays["head_grad%d" % i]) for i in range(len(outputs))]
        exe.backward(head)
        saved.update({"grad_" + k: g.asnumpy() for k, g in grads.items()})
    np.savez(case["outputs"], **saved)
    result[case["name"]] = {"json": json_text, "arguments": sym.list_arguments(),
                            "outputs": sym.list_outputs()}
json.dump(result, open(sys.argv[2], "w"))
"""


# ---------------------------------------------------------------------------
# the MXNet virtualenv
# ---------------------------------------------------------------------------


def _run_mxnet(python: Path, cases: list[dict], workdir: Path) -> dict:
    request, reply = workdir / "request.json", workdir / "reply.json"
    runner = workdir / "runner.py"
    runner.write_text(RUNNER)
    request.write_text(json.dumps({"cases": cases}))
    done = subprocess.run(
        [str(python), str(runner), str(request), str(reply)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MXNET_SUBGRAPH_VERBOSE": "0"},
    )
    assert done.returncode == 0, f"MXNet run failed:\n{done.stderr[-3000:]}"
    return json.loads(reply.read_text())


# ---------------------------------------------------------------------------
# fixtures: all MXNet work happens here, twice per session
# ---------------------------------------------------------------------------


def _inputs(name: str, shapes: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(0.2, 1.5, shape).astype(np.float32) for k, shape in shapes.items()}


def _symgrad_model(source: str):
    scope = {"mx": mx}
    exec(source, scope)
    return scope["out"]


def _recorded_model(name: str, values: dict[str, np.ndarray]):
    """The same model recorded eagerly with autograd; returns its Symbol and the
    recorded variables' values by name."""
    arrays = {k: mx.nd.array(v) for k, v in values.items()}
    for array in arrays.values():
        array.attach_grad()
    rng = np.random.default_rng(7)
    with mx.autograd.record(train_mode=False):
        if name == "elementwise":
            x, y = arrays["x"], arrays["y"]
            out = (
                mx.nd.tanh(x * 2 + 1) * mx.nd.exp(y - 1)
                + mx.nd.sigmoid(x) / 3
                - (1 - x) ** 2
                + 2**y
                + 3 / (x * x + 1)
            )
        elif name == "mlp":
            w1, b1 = (mx.nd.array(rng.normal(size=s)) for s in ((8, 5), (8,)))
            w2, b2 = (mx.nd.array(rng.normal(size=s)) for s in ((3, 8), (3,)))
            h = mx.nd.Activation(
                mx.nd.FullyConnected(arrays["data"], w1, b1, num_hidden=8), act_type="relu"
            )
            h = mx.nd.FullyConnected(mx.nd.Dropout(h, p=0.5), w2, b2, num_hidden=3)
            out = mx.nd.softmax(mx.nd.Activation(h, act_type="tanh"))
        else:
            parts = mx.nd.split(arrays["data"], num_outputs=3, axis=1)
            out = (
                mx.nd.Activation(
                    mx.nd.concat(parts[2], parts[0] * 2, parts[1], dim=1), act_type="sigmoid"
                )
                - arrays["data"] / 2
            )
    sym = mx.autograd.get_symbol(out)
    recorded = {n.name: n.value[0] for n in topo_order(sym.entries) if n.is_variable}
    return sym, recorded, out.asnumpy()


@pytest.fixture(scope="module")
def interop(tmp_path_factory):
    python, reason = _make_venv()
    if python is None:
        pytest.skip(f"cannot make a virtualenv with mxnet==1.9.1 and numpy==1.23.5: {reason}")
    work = tmp_path_factory.mktemp("mxnet")
    cases, expected = [], {}
    for i, (name, (source, shapes)) in enumerate(MODELS.items()):
        values = _inputs(name, shapes, i)
        path = work / f"{name}_in.npz"
        # MXNet builds the model: its JSON, values and gradients
        sym = _symgrad_model(source)  # only for parameter shapes and head gradients
        arg_shapes, out_shapes, _ = sym.infer_shape(**shapes)
        rng = np.random.default_rng(100 + i)
        full = {
            n: values.get(n, rng.uniform(-1, 1, s).astype(np.float32))
            for n, s in zip(sym.list_arguments(), arg_shapes)
        }
        heads = {
            f"head_grad{k}": rng.uniform(-1, 1, s).astype(np.float32)
            for k, s in enumerate(out_shapes)
        }
        np.savez(path, **full, **heads)
        cases.append(
            {
                "name": f"mxnet_{name}",
                "source": source,
                "inputs": str(path),
                "outputs": str(work / f"mxnet_{name}_out.npz"),
                "grads": True,
            }
        )
        expected[f"mxnet_{name}"] = (full, heads)
        # symgrad writes JSON: from mx.sym and from a recorded graph
        symgrad_out = sym.eval(**full)
        path_sym = work / f"symgrad_{name}_out.npz"
        cases.append(
            {
                "name": f"symgrad_{name}",
                "json": sym.tojson(),
                "inputs": str(path),
                "outputs": str(path_sym),
            }
        )
        expected[f"symgrad_{name}"] = [o.asnumpy() for o in symgrad_out]
        recorded, recorded_inputs, value = _recorded_model(name, values)
        path_rec = work / f"recorded_{name}_in.npz"
        np.savez(path_rec, **recorded_inputs)
        cases.append(
            {
                "name": f"recorded_{name}",
                "json": recorded.tojson(),
                "inputs": str(path_rec),
                "outputs": str(work / f"recorded_{name}_out.npz"),
            }
        )
        expected[f"recorded_{name}"] = [value]
    first = _run_mxnet(python, cases, work)
    # symgrad loads MXNet's JSON and writes it again, for MXNet's second run
    again = []
    for name in MODELS:
        loaded = mx.sym.load_json(first[f"mxnet_{name}"]["json"])
        again.append(
            {
                "name": f"again_{name}",
                "json": loaded.tojson(),
                "inputs": cases[[c["name"] for c in cases].index(f"mxnet_{name}")]["inputs"],
                "outputs": str(work / f"again_{name}_out.npz"),
            }
        )
    second = _run_mxnet(python, again, work)
    return {
        "work": work,
        "cases": {c["name"]: c for c in cases + again},
        "replies": {**first, **second},
        "expected": expected,
    }


def _mxnet_outputs(interop, case: str) -> dict[str, np.ndarray]:
    with np.load(interop["cases"][case]["outputs"]) as saved:
        return {k: saved[k] for k in saved.files}


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_mxnet_loads_and_evaluates_symgrad_json(interop, name):
    got = _mxnet_outputs(interop, f"symgrad_{name}")
    for i, value in enumerate(interop["expected"][f"symgrad_{name}"]):
        np.testing.assert_allclose(got[f"out{i}"], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_mxnet_loads_and_evaluates_recorded_graph_json(interop, name):
    got = _mxnet_outputs(interop, f"recorded_{name}")
    np.testing.assert_allclose(
        got["out0"], interop["expected"][f"recorded_{name}"][0], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_symgrad_loads_mxnet_json_and_matches_values_and_gradients(interop, name):
    reply = interop["replies"][f"mxnet_{name}"]
    sym = mx.sym.load_json(reply["json"])
    assert sym.list_arguments() == reply["arguments"]
    assert sym.list_outputs() == reply["outputs"]
    full, heads = interop["expected"][f"mxnet_{name}"]
    mxnet = _mxnet_outputs(interop, f"mxnet_{name}")
    f = mx.compile(sym, wrt=sym.list_arguments())
    value, grads = f(head_grads=[heads[f"head_grad{i}"] for i in range(len(heads))], **full)
    np.testing.assert_allclose(value, mxnet["out0"], rtol=1e-5, atol=1e-6)
    for arg in sym.list_arguments():
        np.testing.assert_allclose(
            grads[arg], mxnet[f"grad_{arg}"], rtol=1e-4, atol=1e-5, err_msg=f"gradient of {arg}"
        )


@pytest.mark.parametrize("name", list(MODELS))
def test_mxnet_json_through_symgrad_back_to_mxnet(interop, name):
    first = _mxnet_outputs(interop, f"mxnet_{name}")
    again = _mxnet_outputs(interop, f"again_{name}")
    np.testing.assert_allclose(again["out0"], first["out0"], rtol=1e-6, atol=1e-7)


def test_mxnet_json_of_scalar_ops_uses_mxnet_op_names(interop):
    ops = {
        node["op"] for node in json.loads(interop["replies"]["mxnet_elementwise"]["json"])["nodes"]
    }
    mine = {
        node["op"]
        for node in json.loads(_symgrad_model(MODELS["elementwise"][0]).tojson())["nodes"]
    }
    scalar_ops = {
        "_mul_scalar",
        "_plus_scalar",
        "_rminus_scalar",
        "_div_scalar",
        "_power_scalar",
        "_rpower_scalar",
        "_rdiv_scalar",
        "_minus_scalar",
    }
    assert scalar_ops <= ops
    assert scalar_ops <= mine


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
