"""What every model-zoo family shares: loading pretrained weights by model name."""

from __future__ import annotations

from typing import Any

from ...block import Block
from ..model_store import get_model_file


def load_pretrained(net: Block, name: str, ctx: Any, root: str | None) -> None:
    """Load ``<root>/<name>-<short hash>.params`` into ``net`` (``save_parameters``'
    format, as MXNet publishes them); raises ``FileNotFoundError`` when absent."""
    net.load_parameters(get_model_file(name, root=root), ctx=ctx)
