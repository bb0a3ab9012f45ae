"""The docstrings of the generated ``mx.nd.<op>`` and ``mx.sym.<op>`` functions.

Each says first what the op computes, then its inputs and attributes, and last,
under "Gradient", the op's gradient rule (the docstring of its gradient function),
so ``help(nd.exp)`` starts with what ``exp`` computes, not with its derivative.

>>> from symgrad_compiler import get_op
>>> print(op_docstring(get_op("exp"), "exp", "nd"))  # doctest: +NORMALIZE_WHITESPACE
Elementwise ``exp(data)``; the result has the input's shape and dtype.
<BLANKLINE>
Parameters
----------
data : NDArray
    Input ``data``.
out : NDArray, optional
    Write the result into this array.
<BLANKLINE>
Gradient
--------
g * exp(x), reusing the output
<BLANKLINE>
Notes
-----
MXNet op ``exp``.
"""

from __future__ import annotations

import inspect
import re

from symgrad_compiler import OpDef
from symgrad_compiler.registry import REQUIRED

# A scalar template longer than this reads worse than the op's name.
_LONGEST_FORMULA = 40


def _formula(opdef: OpDef, inputs: tuple[str, ...]) -> str | None:
    """The elementwise expression of the op's kernel template, written with its
    input names (``vm.exp({0})`` -> ``exp(data)``), or None."""
    template = opdef.scalar
    if not isinstance(template, str):
        return None
    text = re.sub(r"\b(vm|np|math)\.", "", template)
    names = {str(i): name for i, name in enumerate(inputs)}
    text = re.sub(r"\{(\d+)\}", lambda m: names.get(m.group(1), m.group(0)), text)
    text = text.replace("{scalar}", "scalar")
    if "{" in text or len(text) > _LONGEST_FORMULA:
        return None
    return text


_SECTION = "\nGradient\n--------\n"


def _split_doc(opdef: OpDef) -> tuple[str, str]:
    """The op's own description and gradient text; an ``OpDef.doc`` may already
    hold a Gradient section, and a doc that is only the gradient rule is no
    description."""
    rule = inspect.cleandoc(opdef.grad.__doc__ or "") if opdef.grad is not None else ""
    doc = inspect.cleandoc(opdef.doc or "")
    if _SECTION in doc:
        description, rule = doc.split(_SECTION, 1)
        return description.strip(), rule.strip()
    return ("" if doc == rule else doc), rule


def _description(opdef: OpDef, public_name: str, inputs: tuple[str, ...]) -> str:
    own, _ = _split_doc(opdef)
    if own:
        return own
    # The op gave only its gradient rule: say what it computes from its kernel
    # template, the one scalar expression the fused kernels use.
    formula = _formula(opdef, inputs)
    shown = f"``{formula}``" if formula else f"``{opdef.name}`` of ``{', '.join(inputs)}``"
    if len(inputs) > 1:
        how = (
            "broadcasting the inputs' shapes as numpy does"
            if getattr(opdef.infer, "__name__", "") == "broadcast_types"
            else "the inputs must have one shape"
        )
        return f"Elementwise {shown}, {how}; the result has the inputs' dtype."
    return f"Elementwise {shown}; the result has the input's shape and dtype."


def _attr_line(name: str, default: object) -> str:
    if default is REQUIRED:
        return f"{name} : required"
    return f"{name} : optional, default {default!r}"


def op_docstring(opdef: OpDef, public_name: str, flavour: str) -> str:
    """The docstring of the generated function ``public_name`` for ``opdef``.

    Parameters
    ----------
    opdef : OpDef
        The registered op.
    public_name : str
        The name the function has in its namespace (an op name or an alias).
    flavour : {'nd', 'sym'}
        ``'nd'`` for ``mx.nd`` (arrays in, arrays out, ``out=``), ``'sym'`` for
        ``mx.sym`` (Symbols in, a Symbol out, ``name=``).
    """
    array = "NDArray" if flavour == "nd" else "Symbol"
    defaults = {k: spec.default for k, spec in opdef.attrs.items() if spec.default is not REQUIRED}
    try:
        # inputs that depend on attrs (FullyConnected's bias): those of the defaults
        inputs = tuple(opdef.input_names(defaults))
    except Exception:  # an input rule that needs a required attribute
        inputs = ()
    lines = [_description(opdef, public_name, inputs), "", "Parameters", "----------"]
    for name in inputs:
        many = " (any number)" if opdef.variadic else ""
        lines += [f"{name} : {array}", f"    Input ``{name}``{many}."]
    if not inputs:
        lines += [f"*data : {array}", "    The inputs; how many depends on the attributes."]
    for name, spec in opdef.attrs.items():
        lines += [_attr_line(name, spec.default), f"    Attribute ``{name}`` of MXNet's op."]
    if flavour == "nd":
        lines += ["out : NDArray, optional", "    Write the result into this array."]
    else:
        lines += [
            "name : str, optional",
            "    The node's name; inputs not given become variables ``<name>_<input>``.",
        ]
    _, gradient = _split_doc(opdef)
    lines += ["", "Gradient", "--------"]
    if gradient:
        lines.append(gradient)
    elif opdef.differentiable:
        lines.append("No gradient rule: differentiating through this op is an error.")
    else:
        lines.append("None: gradients do not flow through this op (its inputs get none from it).")
    lines += ["", "Notes", "-----", f"MXNet op ``{opdef.name}``."]
    return "\n".join(lines)
