"""A griffe extension for the API reference: the op functions of ``mx.nd`` and
``mx.sym`` are documented although no source file defines them.

``symgrad.ndarray`` and ``symgrad.symbol`` make one function per registered op when
they are imported (``fill_namespace``), so griffe's reading of the source finds none
of them. This extension imports the module, and adds each generated function (those
whose docstring ends with "MXNet op ``<name>``.") with its docstring and a
``(*args, **kwargs)`` signature, so mkdocstrings renders them with the rest.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

# modules whose namespaces are filled from the op registry at import time
GENERATED = ("symgrad.ndarray", "symgrad.symbol")

_MARK = re.compile(r"MXNet op ``[^`]+``\.\s*$")


def generated_functions(module_path: str) -> dict[str, str]:
    """Name -> docstring of the registry-generated functions of a live module."""
    live = importlib.import_module(module_path)
    found = {}
    for name in sorted(vars(live)):
        value = getattr(live, name)
        doc = getattr(value, "__doc__", None) or ""
        if not name.startswith("_") and callable(value) and _MARK.search(doc):
            found[name] = inspect.cleandoc(doc)
    return found


class GeneratedOps(griffe.Extension):
    """Add the generated op functions to the modules in :data:`GENERATED`."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if mod.path not in GENERATED:
            return
        added = []
        for name, doc in generated_functions(mod.path).items():
            if name in mod.members:
                continue  # defined in the source: griffe has it already
            parameters = griffe.Parameters(
                griffe.Parameter("args", kind=griffe.ParameterKind.var_positional),
                griffe.Parameter("kwargs", kind=griffe.ParameterKind.var_keyword),
            )
            function = griffe.Function(name, parameters=parameters)
            # the parameters are documented by name; the signature is (*args, **kwargs)
            function.docstring = griffe.Docstring(
                doc,
                parent=function,
                parser="numpy",
                parser_options={"warn_unknown_params": False},
            )
            mod.set_member(name, function)
            added.append(name)
        if mod.exports is not None:
            mod.exports = [*mod.exports, *added]
