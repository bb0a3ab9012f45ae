"""``mx.random``: seeding and drawing random arrays."""

from .ndarray.random import normal, seed, uniform

__all__ = ["seed", "uniform", "normal"]
