"""The core stays readable in one sitting: the IR, the differentiation walk and the
interpreter together fit a line budget (code lines: not blank, not comments)."""

from pathlib import Path

CORE = ["compiler/ir.py", "compiler/autodiff.py", "compiler/interpret.py"]
BUDGET = 300


def code_lines(path: Path) -> int:
    return sum(
        1
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    )


def test_core_fits_its_line_budget():
    root = Path(__file__).resolve().parents[1]
    sizes = {name: code_lines(root / name) for name in CORE}
    print(f"core size: {sizes}, total {sum(sizes.values())} of {BUDGET}")
    assert sum(sizes.values()) <= BUDGET, sizes
