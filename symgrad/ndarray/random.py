"""``mx.nd.random``: random arrays from the registry's seeded generator."""

from __future__ import annotations

from typing import Any

from compiler.ops import random as _random

from ..context import check_context
from .ndarray import NDArray, invoke


def seed(seed_state: int, ctx: Any = "all") -> None:
    """Seed the random generator, so later draws repeat."""
    _random.seed(seed_state)


def _draw(op: str, params: dict, shape: Any, dtype: Any, ctx: Any,
          out: NDArray | None) -> NDArray:
    check_context(ctx)
    result = invoke(op, (), dict(params, shape=shape, dtype=dtype or "float32"))
    if out is None:
        return result
    out[:] = result
    return out


def uniform(low: float = 0.0, high: float = 1.0, shape: Any = (1,), dtype: Any = "float32",
            ctx: Any = None, out: NDArray | None = None, **kwargs: Any) -> NDArray:
    """Draws from the uniform distribution on [low, high)."""
    return _draw("_random_uniform", {"low": low, "high": high}, shape, dtype, ctx, out)


def normal(loc: float = 0.0, scale: float = 1.0, shape: Any = (1,), dtype: Any = "float32",
           ctx: Any = None, out: NDArray | None = None, **kwargs: Any) -> NDArray:
    """Draws from the normal distribution with mean ``loc``, deviation ``scale``."""
    return _draw("_random_normal", {"loc": loc, "scale": scale}, shape, dtype, ctx, out)


__all__ = ["seed", "uniform", "normal"]
