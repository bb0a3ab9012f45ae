"""The documentation site: it builds strictly, its examples run, its claims hold.

- ``mkdocs build --strict`` succeeds into a temporary folder (a broken link, a
  missing page or a docstring mkdocstrings cannot read fails it);
- every ``python`` code block of the site's own pages runs, page by page;
- the "Coming from MXNet" table gives each MXNet 1.x module a status that matches
  what ``import symgrad as mx`` provides, and lists every module MXNet 1.9.1 has;
- the pictures are small PNGs that the pages use.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import symgrad as mx

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Pages whose python blocks are examples to run (the other helpers' notes,
# architecture.md and distributed.md, hold sketches and shell sessions).
EXAMPLE_PAGES = [
    "index.md",
    "getting-started.md",
    "guide/autograd.md",
    "guide/gluon.md",
    "guide/training.md",
    "guide/symbol-json.md",
    "guide/replay.md",
    "guide/inspecting.md",
    "guide/caching.md",
]

_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_TABLE_ROW = re.compile(r"^\| `mx\.(\w+)` \| (yes|partly|no) \|", re.M)


def python_blocks(page: str) -> list[str]:
    return _PYTHON_BLOCK.findall((DOCS / page).read_text())


def module_table() -> dict[str, str]:
    """Module name -> status, from the "Coming from MXNet" table."""
    rows = _TABLE_ROW.findall((DOCS / "coming-from-mxnet.md").read_text())
    table = dict(rows)
    assert len(table) == len(rows), "a module is listed twice"
    return table


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as err:
        pytest.fail(
            f"the docs tools are not installed ({err.name}): pip install -e '.[docs]' "
            "(mkdocs-material, mkdocstrings[python])"
        )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-6000:]}"
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    reference = (site / "reference" / "ndarray" / "index.html").read_text()
    # the generated op functions are in the reference, gradient rule below
    assert 'id="symgrad.ndarray.exp"' in reference and "g * exp(x)" in reference


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(
        str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md") if path.name != "README.md"
    )
    missing = [page for page in pages if page not in config]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_the_examples_of_a_page_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python example"
    monkeypatch.chdir(tmp_path)  # examples write files (exports, checkpoints)
    namespace: dict = {"__name__": "__main__"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{page} (python block {number})", "exec")
        exec(code, namespace)


def test_the_module_table_matches_what_symgrad_provides():
    table = module_table()
    assert len(table) > 50
    wrong = []
    for name, status in table.items():
        there = hasattr(mx, name)
        if status == "no" and there:
            wrong.append(f"mx.{name} exists now: mark it yes or partly")
        if status != "no" and not there:
            wrong.append(f"mx.{name} is marked {status} but does not exist")
    assert not wrong, "docs/coming-from-mxnet.md: " + "; ".join(wrong)


@pytest.mark.interop
def test_the_module_table_lists_every_mxnet_module(mxnet_python, tmp_path):
    from mxnet_interop import run_mxnet

    source = (
        "import json, types, mxnet as mx\n"
        "names = sorted(k for k, v in vars(mx).items()\n"
        "               if isinstance(v, types.ModuleType) and not k.startswith('_'))\n"
        "print(json.dumps(names))\n"
    )
    names = json.loads(run_mxnet(mxnet_python, source, tmp_path).strip().splitlines()[-1])
    assert len(names) > 50 and "ndarray" in names
    missing = sorted(set(names) - set(module_table()))
    assert not missing, f"MXNet 1.9.1 modules missing from the table: {missing}"


def test_pictures_are_small_pngs_the_pages_use():
    pictures = sorted((DOCS / "img").glob("*.png"))
    assert {p.name for p in pictures} >= {"inspect_graph.png", "front_page.png"}
    text = "".join(path.read_text() for path in DOCS.rglob("*.md"))
    for picture in pictures:
        data = picture.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", picture.name
        assert len(data) < 200 * 1024, f"{picture.name} is {len(data) // 1024} KB"
        assert f"img/{picture.name}" in text, f"{picture.name} is used by no page"


def test_the_benchmarks_page_holds_the_tables_with_their_commands():
    page = (DOCS / "benchmarks.md").read_text()
    assert "Benchmarks: benchmarks.md" in (ROOT / "mkdocs.yml").read_text()
    rows = re.findall(r"^\| (W\d[^|]*|CNN step[^|]*) \|", page, re.M)
    # the measured rows of the steady-state, start-up and Gluon tables, and each is explained
    for workload in ("W1", "W2", "W3", "W4", "W5", "W6", "CNN step"):
        measured = [row for row in rows if row.startswith(workload)]
        assert len(measured) >= 2, f"{workload}: no measured row and explanation"
    assert "Command: `python -m bench --rounds 2`" in page
    assert "`python -m bench --only\nW6-128,W6-1024" in page
    # the README points here instead of holding the tables
    readme = (ROOT / "README.md").read_text()
    assert "docs/benchmarks.md" in readme and "| W1 n=1e6 |" not in readme
