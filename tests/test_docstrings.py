"""Every public name of the documented modules says what it computes.

Walks ``mx.nd``, ``mx.sym``, ``mx.autograd``, ``mx.gluon`` (and ``nn``, ``loss``,
``rnn``, ``data``, ``utils``), ``mx.init``, ``mx.optimizer``, ``mx.metric``,
``mx.io`` and ``mx.kv``: each public function and class defined by symgrad has its
own docstring of more than a few words, and the functions generated from the op
registry start with what the op computes and keep the gradient rule in a
"Gradient" section below it.
"""

from __future__ import annotations

import inspect
import types

import pytest

import symgrad as mx
from symgrad_compiler import OPS

# Fewer words than this is a stub ("Dense layer.", "TODO").
MIN_WORDS = 4


def documented_modules() -> dict[str, types.ModuleType]:
    gluon = mx.gluon
    return {
        "mx.nd": mx.nd,
        "mx.sym": mx.sym,
        "mx.autograd": mx.autograd,
        "mx.gluon": gluon,
        "mx.gluon.nn": gluon.nn,
        "mx.gluon.loss": gluon.loss,
        "mx.gluon.rnn": gluon.rnn,
        "mx.gluon.data": gluon.data,
        "mx.gluon.utils": gluon.utils,
        "mx.init": mx.init,
        "mx.optimizer": mx.optimizer,
        "mx.metric": mx.metric,
        "mx.io": mx.io,
        "mx.kv": mx.kv,
    }


def public_names(module: types.ModuleType) -> list[tuple[str, object]]:
    """Public functions and classes reachable as ``module.<name>`` that symgrad
    defines (imports such as ``Any`` or ``np`` are not the module's API)."""
    found = []
    for name in sorted(dir(module)):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType) or not callable(value):
            continue
        home = getattr(value, "__module__", None) or ""
        if home.split(".")[0] != "symgrad":
            continue
        found.append((name, value))
    return found


def own_docstring(value: object) -> str:
    # a class's __doc__ is its own (inspect.getdoc would fall back to a base's)
    return inspect.cleandoc(value.__doc__ or "")


def test_the_walk_sees_the_whole_api():
    counts = {label: len(public_names(m)) for label, m in documented_modules().items()}
    assert counts["mx.nd"] > 200 and counts["mx.sym"] > 200, counts
    assert counts["mx.gluon.nn"] > 30 and counts["mx.optimizer"] > 10, counts
    assert all(counts.values()), counts


@pytest.mark.parametrize("label", sorted(documented_modules()))
def test_every_public_name_has_a_docstring(label):
    module = documented_modules()[label]
    stubs = [
        f"{label}.{name}"
        for name, value in public_names(module)
        if len(own_docstring(value).split()) < MIN_WORDS
    ]
    assert not stubs, f"missing or one-line-stub docstrings: {stubs}"


def generated_ops() -> list[tuple[str, object, object]]:
    """(public name, function, OpDef) for the functions made from the registry."""
    found = []
    for module in (mx.nd, mx.sym):
        for name, value in public_names(module):
            opdef = OPS.get(name)
            if opdef is not None and (value.__doc__ or "").rstrip().endswith(
                f"MXNet op ``{opdef.name}``."
            ):
                found.append((f"{module.__name__}.{name}", value, opdef))
    return found


def test_op_docstrings_describe_first_and_keep_the_gradient_below():
    ops = generated_ops()
    assert len(ops) > 300, len(ops)  # both namespaces
    wrong = []
    for label, function, opdef in ops:
        doc = own_docstring(function)
        lines = doc.splitlines()
        if "Gradient\n--------\n" not in doc:
            wrong.append(f"{label}: no Gradient section")
            continue
        # the rule: the op's own Gradient section, else its gradient function's docstring
        own = inspect.cleandoc(opdef.doc or "")
        if "\nGradient\n--------\n" in own:
            rule = own.split("\nGradient\n--------\n", 1)[1].strip()
        else:
            rule = inspect.cleandoc(opdef.grad.__doc__ or "") if opdef.grad else ""
        if rule and rule in lines[0]:
            wrong.append(f"{label}: the gradient rule is the first line")
        if rule and rule not in doc.split("Gradient\n--------\n", 1)[1]:
            wrong.append(f"{label}: the gradient rule is not under Gradient")
        if doc.index("Gradient\n--------") < doc.index(lines[0]) + len(lines[0]):
            wrong.append(f"{label}: Gradient comes before the description")
    assert not wrong, "\n".join(wrong)


def test_help_of_exp_says_what_exp_computes():
    first = mx.nd.exp.__doc__.splitlines()[0]
    assert first == "Elementwise ``exp(data)``; the result has the input's shape and dtype."
    assert "g * exp(x)" in mx.nd.exp.__doc__.split("Gradient")[1]
    assert mx.sym.broadcast_add.__doc__.startswith("Elementwise ``lhs + rhs``, broadcasting")
