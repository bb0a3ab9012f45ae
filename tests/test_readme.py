"""The README: its Python examples run as printed, its links lead to files that
exist, and it stays short (the details live in the documentation under ``docs/``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
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


def test_the_gluon_example_exports_mxnets_files(tmp_path, monkeypatch):
    gluon = [block for block in EXAMPLES if "gluon" in block]
    assert gluon, "the README has no Gluon example"
    monkeypatch.chdir(tmp_path)
    exec(compile(gluon[0], "README Gluon example", "exec"), {"__name__": "__main__"})
    assert (tmp_path / "mlp-symbol.json").is_file() and (tmp_path / "mlp-0000.params").is_file()


def test_the_readme_links_lead_to_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert "docs/coming-from-mxnet.md" in local and "docs/benchmarks.md" in local
    missing = [link for link in local if not (ROOT / link).is_file()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) < 120
    commands = re.search(r"```bash\n(.*?)```", text, re.S)
    assert commands is not None
    lines = commands.group(1).splitlines()
    assert lines[0].startswith("pip install -e . && python examples/quickstart.py")
    assert lines[1].startswith('pip install -e ".[test,distributed,docs,examples]"')
