"""``mx.random``: seeding and drawing random arrays."""

from .ndarray.random import (
    exponential,
    gamma,
    generalized_negative_binomial,
    multinomial,
    negative_binomial,
    normal,
    poisson,
    randint,
    randn,
    seed,
    shuffle,
    uniform,
)

__all__ = [
    "seed",
    "uniform",
    "normal",
    "randn",
    "gamma",
    "exponential",
    "poisson",
    "negative_binomial",
    "generalized_negative_binomial",
    "randint",
    "multinomial",
    "shuffle",
]
