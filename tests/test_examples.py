"""Each example of ``examples/`` in its short mode (``--quick``), in a subprocess:
it must exit cleanly, print its final metric as its last line, and write its
figure into the ``--out`` directory."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_example(name: str, out: Path) -> tuple[str, str, float]:
    """Run ``examples/<name>.py --quick --out <out>``; returns its whole output,
    the name of its final metric and the metric's value."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    last = done.stdout.strip().splitlines()[-1].split()
    assert len(last) == 3 and last[0] == "final", f"{name}: last line {' '.join(last)!r}"
    return done.stdout, last[1], float(last[2])


def assert_png(path: Path) -> None:
    """``path`` is a non-trivial PNG file."""
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000, f"{path} is not a PNG picture"


def test_mnist_mlp(tmp_path):
    _, metric, value = run_example("mnist_mlp", tmp_path)
    assert metric == "accuracy" and value >= 0.85
    assert_png(tmp_path / "mnist_mlp_curves.png")


@pytest.mark.slow
def test_cnn(tmp_path):
    _, metric, value = run_example("cnn", tmp_path)
    assert metric == "accuracy" and value >= 0.8
    assert_png(tmp_path / "cnn_confusion.png")


@pytest.mark.slow
def test_lstm_lm(tmp_path):
    output, metric, value = run_example("lstm_lm", tmp_path)
    # 50 distinct characters: a model that learned nothing has perplexity ~50
    assert metric == "perplexity" and 1.0 < value < 20.0
    assert "THE FOX" in output  # the sample printed as it trains
    assert_png(tmp_path / "lstm_lm_perplexity.png")


@pytest.mark.slow
def test_finetune(tmp_path):
    output, metric, value = run_example("finetune", tmp_path)
    assert metric == "accuracy" and value > 0.3  # five classes: chance is 0.2
    assert "frozen feature weights unchanged by fine-tuning: True" in output
    assert (tmp_path / "finetune-base-symbol.json").is_file()
    assert (tmp_path / "finetune-base-0000.params").is_file()
    assert_png(tmp_path / "finetune.png")


@pytest.mark.slow
def test_higher_order(tmp_path):
    output, metric, value = run_example("higher_order", tmp_path)
    assert metric == "accuracy" and value >= 0.9
    error = next(line for line in output.splitlines() if "closed forms" in line)
    assert float(error.split()[-1]) < 1e-10  # float64 derivatives of orders 1-4
    assert_png(tmp_path / "higher_order.png")


def test_inspect_graph(tmp_path):
    output, metric, value = run_example("inspect_graph", tmp_path)
    assert metric == "loss" and math.isfinite(value) and value < 1.5
    assert "def kernel0" in output  # explain shows the generated kernel source
    graph = json.loads((tmp_path / "inspect_graph-symbol.json").read_text())
    assert [n["op"] for n in graph["nodes"]].count("FullyConnected") == 2
    assert "digraph" in (tmp_path / "inspect_graph.gv").read_text()
    if shutil.which("dot") is not None:  # Graphviz's program draws the picture
        assert_png(tmp_path / "inspect_graph.png")
