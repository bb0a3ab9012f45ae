"""Command-line options shared by the examples: ``--quick`` and ``--out``.

Each example is a plain script; this module only spares every one of them the
same dozen lines of argument parsing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The options of an example.

    ``quick`` is true with ``--quick`` or the environment variable
    ``SYMGRAD_EXAMPLES_QUICK=1`` (fewer epochs and batches, for tests);
    ``out`` is the directory the figures go to (made if missing).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("SYMGRAD_EXAMPLES_QUICK") == "1",
        help="a short run (also: SYMGRAD_EXAMPLES_QUICK=1)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return args
