"""``mx.sym.random``: random draws as Symbol nodes (``_random_*`` for numbers,
``_sample_*`` for Symbol parameters, ``_sample_multinomial``, ``_shuffle``), with
the functions and arguments of ``mx.nd.random``.

Each node made here carries a fresh ``_draw`` attribute, so two draws with equal
arguments stay two draws when a graph is simplified (never merged into one).

>>> import symgrad as mx
>>> a, b = mx.sym.random.uniform(shape=(3,)), mx.sym.random.uniform(shape=(3,))
>>> bool((a - b).eval()[0].asnumpy().any())
True
"""

from __future__ import annotations

import itertools
from typing import Any

from symgrad_compiler.registry import get_op

from .ndarray.random import make_functions
from .symbol import Symbol, _is_symbol, _make_symbol, _symbol_function

_draws = itertools.count(1)


def _apply(op: str, inputs: list, attrs: dict, name: Any) -> Symbol:
    # attr= (symbol attributes) is accepted and dropped, as by the other mx.sym functions
    attrs = {key: value for key, value in attrs.items() if key != "attr"}
    attrs["_draw"] = next(_draws)
    return _make_symbol(get_op(op), [s._single_entry() for s in inputs], attrs, name)


def _finish(result: Symbol, out: Any) -> Symbol:
    if out is not None:
        raise TypeError("mx.sym.random functions take no out=")
    return result


_FUNCTIONS = make_functions(_apply, _is_symbol, _finish)
uniform = _FUNCTIONS["uniform"]
normal = _FUNCTIONS["normal"]
randn = _FUNCTIONS["randn"]
gamma = _FUNCTIONS["gamma"]
exponential = _FUNCTIONS["exponential"]
poisson = _FUNCTIONS["poisson"]
negative_binomial = _FUNCTIONS["negative_binomial"]
generalized_negative_binomial = _FUNCTIONS["generalized_negative_binomial"]
randint = _FUNCTIONS["randint"]
multinomial = _FUNCTIONS["multinomial"]
shuffle = _FUNCTIONS["shuffle"]


def _like(dist: str) -> Any:
    # the registered _random_<dist>_like op, with its own parameters
    return _symbol_function(f"{dist}_like", get_op(f"_random_{dist}_like"))


uniform_like = _like("uniform")
normal_like = _like("normal")
gamma_like = _like("gamma")
exponential_like = _like("exponential")
poisson_like = _like("poisson")
negative_binomial_like = _like("negative_binomial")
generalized_negative_binomial_like = _like("generalized_negative_binomial")

__all__ = [
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
    "uniform_like",
    "normal_like",
    "gamma_like",
    "exponential_like",
    "poisson_like",
    "negative_binomial_like",
    "generalized_negative_binomial_like",
]
