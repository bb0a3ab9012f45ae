"""The README's complete Python examples run as printed (fragments that name
objects built elsewhere, like ``loss_symbol``, are left out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    if block.startswith("import symgrad")
]


def test_the_readme_has_complete_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(EXAMPLES[index], f"README example {index}", "exec"), {"__name__": "__main__"})
