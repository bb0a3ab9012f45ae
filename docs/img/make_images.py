"""Redraw the pictures in docs/img (run from the repository root).

- ``inspect_graph.png``: the network graph ``examples/inspect_graph.py`` draws with
  ``mx.viz.plot_network``, with shapes, by Graphviz's ``dot`` (needs the graphviz
  package and program).
- ``front_page.png``: the site's front page in headless Chromium (needs the
  ``chromium`` program and a built site: ``mkdocs build -d site``).

    python docs/img/make_images.py [site-dir]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import symgrad as mx

HERE = os.path.dirname(os.path.abspath(__file__))


def small_cnn() -> mx.sym.Symbol:
    """A LeNet-like network: convolution, pooling, two dense layers, softmax."""
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, name="conv1")
    act = mx.sym.Activation(conv, act_type="relu", name="relu1")
    pool = mx.sym.Pooling(act, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    flat = mx.sym.Flatten(pool, name="flatten")
    hidden = mx.sym.FullyConnected(flat, num_hidden=32, name="fc1")
    hidden = mx.sym.Activation(hidden, act_type="tanh", name="tanh1")
    logits = mx.sym.FullyConnected(hidden, num_hidden=10, name="fc2")
    return mx.sym.softmax(logits, name="softmax")


def draw_graph(path: str) -> None:
    """The picture ``examples/inspect_graph.py`` draws with ``mx.viz.plot_network``."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "examples/inspect_graph.py", "--quick", "--out", out],
            check=True,
            capture_output=True,
            timeout=300,
        )
        shutil.copyfile(os.path.join(out, "inspect_graph.png"), path)


def screenshot_front_page(site: str, path: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("no chromium program: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1300,820",
                f"--screenshot={path}",
                "file://" + os.path.abspath(os.path.join(site, "index.html")),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


if __name__ == "__main__":
    draw_graph(os.path.join(HERE, "inspect_graph.png"))
    site = sys.argv[1] if len(sys.argv) > 1 else "site"
    screenshot_front_page(site, os.path.join(HERE, "front_page.png"))
