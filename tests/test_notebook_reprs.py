"""What a notebook shows: NDArray and Symbol display MXNet 1.9.1's text, and
``symgrad_compiler.explain`` names every output of the program it prints.

A notebook shows an object through ``_repr_html_`` (rich) or IPython's pretty
printer (``_repr_pretty_``); both give ``repr``'s text, and ``repr`` is checked
against a real MXNet 1.9.1 (the interop virtualenv) building the same objects.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

import symgrad as mx
import symgrad_compiler as compiler

pytestmark = pytest.mark.interop

# One source for both libraries: objects(mx) -> case name -> object to repr.
OBJECTS = """
import numpy as np

def objects(mx):
    data = mx.sym.var("data")
    fc = mx.sym.FullyConnected(data, num_hidden=4, name="fc1")
    parts = mx.sym.split(data, num_outputs=3, name="sp")
    return {
        "2-D float32": mx.nd.array([[1, 2, 3], [4, 5, 6]]),
        "1-D fractions": mx.nd.array([-1.25, 3.5e-5, 100.0]),
        "int32": mx.nd.array([1, 2], dtype="int32"),
        "uint8": mx.nd.array([0, 7, 255], dtype="uint8"),
        "float64": mx.nd.array([1.0 / 3, 2.0], dtype="float64"),
        "3-D zeros": mx.nd.zeros((2, 3, 4)),
        "empty": mx.nd.array([]),
        "large": mx.nd.array([[1e10, 1e10], [1e10, 1e10]]),
        "summarised": mx.nd.array(np.arange(2000.0).reshape(40, 50)),
        "variable": data,
        "op": fc,
        "op after op": mx.sym.Activation(fc, act_type="relu", name="act"),
        "group": mx.sym.Group([fc, data]),
        "multi-output op": parts,
        "one output of several": parts[1],
        "outputs of one node": mx.sym.Group([parts[0], parts[2]]),
    }
"""


def symgrad_objects() -> dict:
    namespace: dict = {}
    exec(OBJECTS, namespace)
    return namespace["objects"](mx)


@pytest.fixture(scope="module")
def mxnet_reprs(mxnet_python, tmp_path_factory) -> dict[str, str]:
    from mxnet_interop import run_mxnet

    workdir = tmp_path_factory.mktemp("reprs")
    source = (
        OBJECTS
        + "\nimport json, mxnet\n"
        + "texts = {k: repr(v) for k, v in objects(mxnet).items()}\n"
        + "open('reprs.json', 'w').write(json.dumps(texts))\n"
    )
    run_mxnet(mxnet_python, source, workdir)
    return json.loads((workdir / "reprs.json").read_text())


class Printer:
    """The one method of IPython's pretty printer a ``_repr_pretty_`` calls."""

    def __init__(self) -> None:
        self.written = ""

    def text(self, text: str) -> None:
        self.written += text


CASES = list(symgrad_objects())


@pytest.mark.parametrize("case", CASES)
def test_repr_is_mxnets_text(case, mxnet_reprs):
    assert repr(symgrad_objects()[case]) == mxnet_reprs[case]


@pytest.mark.parametrize("case", CASES)
def test_notebook_displays_show_the_repr(case, mxnet_reprs):
    shown = symgrad_objects()[case]
    printer = Printer()
    shown._repr_pretty_(printer, False)
    assert printer.written == mxnet_reprs[case]
    rich = shown._repr_html_()
    assert rich.startswith("<pre>") and rich.endswith("</pre>")
    # the page shows exactly the text: '<NDArray ...>' survives as text, not as a tag
    assert html.unescape(rich[len("<pre>") : -len("</pre>")]) == mxnet_reprs[case]
    assert "<NDArray" not in rich and "<Symbol" not in rich


def test_an_array_computed_in_a_recording_shows_its_values():
    x = mx.nd.array([1.0, 2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = x * x + 1
    assert repr(y) == "\n[2. 5.]\n<NDArray 2 @cpu(0)>"
    assert np.array_equal(y.asnumpy(), [2.0, 5.0])


def test_explain_names_each_output_of_the_program(compiled):
    x = mx.sym.var("x", shape=(3,))
    w = mx.sym.var("w", shape=(3,))
    loss = mx.sym.sum(mx.sym.exp(x) * w, name="loss")
    text = compiler.explain(loss)
    header = text.split("\n\n")[0].splitlines()
    assert header == [
        "# output 0: gradient w.r.t. x",
        "# output 1: gradient w.r.t. w",
        "# output 2: value of loss_output",
    ]
    # the program itself returns three values, in that order
    returns = [line for line in text.splitlines() if line.startswith("return ")]
    assert len(returns) == 1 and returns[0].count("%") == 3
    assert "def kernel0" in text


def test_explain_labels_follow_wrt_and_the_heads_order(compiled):
    x = mx.sym.var("x", shape=(2,))
    w = mx.sym.var("w", shape=(2,))
    both = mx.sym.Group([mx.sym.square(w, name="s"), mx.sym.exp(x, name="e")])
    wrt = [w._entries[0].node]
    header = compiler.explain(both, wrt=wrt).split("\n\n")[0]
    assert header.splitlines() == [
        "# output 0: gradient w.r.t. w",
        "# output 1: value of s_output",
        "# output 2: value of e_output",
    ]


def test_explain_of_bare_entries_names_nodes(compiled):
    x = mx.sym.var("x", shape=(4,))
    parts = mx.sym.split(mx.sym.tanh(x, name="t"), num_outputs=2, axis=0, name="halves")
    entries = list(parts._entries)
    header = compiler.explain(entries, wrt=[]).split("\n\n")[0]
    assert header.splitlines() == [
        "# output 0: value of halves[0]",
        "# output 1: value of halves[1]",
    ]
