"""The doctests of the compiler's modules, imported under their installed name.

pytest's ``--doctest-modules`` would import ``compiler/`` by its folder name, a
second copy of every module (and of the op registry) beside
``symgrad_compiler``; so the compiler's doctests run from here instead.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import symgrad_compiler


def _modules() -> list[str]:
    names = [symgrad_compiler.__name__]
    for info in pkgutil.walk_packages(symgrad_compiler.__path__, "symgrad_compiler."):
        names.append(info.name)
    return names


def _with_doctests() -> list[str]:
    finder = doctest.DocTestFinder()
    found = []
    for name in _modules():
        module = importlib.import_module(name)
        if any(test.examples for test in finder.find(module)):
            found.append(name)
    return found


@pytest.mark.parametrize("name", _with_doctests())
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False
    )
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"


def test_the_compiler_has_doctests() -> None:
    assert "symgrad_compiler" in _with_doctests()
