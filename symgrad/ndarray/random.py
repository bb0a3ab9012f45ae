"""``mx.nd.random``: random arrays from the registry's seeded generator.

Each distribution takes numbers (a ``_random_<name>`` draw of ``shape``) or arrays
of one shape (a ``_sample_<name>`` draw: ``shape`` values per parameter element,
output shape ``params.shape + shape``), as MXNet's ``mx.nd.random`` does.
:func:`make_functions` builds the same functions over Symbols for ``mx.sym.random``.

>>> import symgrad as mx
>>> mx.nd.random.seed(7)
>>> first = mx.nd.random.normal(0, 1, shape=(2,)).asnumpy()
>>> mx.nd.random.seed(7)
>>> bool((mx.nd.random.normal(0, 1, shape=(2,)).asnumpy() == first).all())
True
>>> mx.nd.random.gamma(mx.nd.array([1.0, 2.0]), mx.nd.array([1.0, 1.0]), shape=3).shape
(2, 3)
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from symgrad_compiler import get_op
from symgrad_compiler.ops import random as _random

from .._namespace import _make_function
from ..context import check_context
from .ndarray import invoke, is_ndarray

# A function's ``shape`` left unset: numbers then draw one value, arrays one value per
# parameter element (MXNet's _Null).
UNSET = None


def seed(seed_state: int, ctx: Any = "all") -> None:
    """Seed the random generator, so later draws repeat."""
    _random.seed(seed_state)


def _finish_nd(result: Any, out: Any) -> Any:
    if out is None:
        return result
    out[:] = result
    return out


def make_functions(
    apply: Callable[[str, list, dict, Any], Any],
    is_tensor: Callable,
    finish: Callable[[Any, Any], Any],
) -> dict[str, Callable]:
    """The ``mx.<nd|sym>.random`` functions over one kind of tensor.

    Parameters
    ----------
    apply : callable
        ``apply(op_name, inputs, attrs, name)`` runs or builds a registered op.
    is_tensor : callable
        Whether a value is a tensor of this kind (NDArray or Symbol).
    finish : callable
        ``finish(result, out)`` writes into ``out`` where one is given.

    Returns
    -------
    dict
        The functions by name: the seven distributions, ``randn``, ``randint``,
        ``multinomial`` and ``shuffle``.
    """

    def draw(
        dist: str, params: list, shape: Any, dtype: Any, ctx: Any, out: Any, kwargs: dict
    ) -> Any:
        check_context(ctx)
        name = kwargs.pop("name", None)
        if all(is_tensor(p) for p in params):
            attrs = dict(kwargs, shape=() if shape is UNSET else shape, dtype=dtype)
            return finish(apply(f"_sample_{dist}", params, attrs, name), out)
        if not all(isinstance(p, numbers.Number) for p in params):
            raise ValueError(
                f"{dist}: distribution parameters must all be numbers or all "
                f"arrays of one kind, got "
                f"{', '.join(type(p).__name__ for p in params)}"
            )
        names = [spec[0] for spec in _random.DISTRIBUTIONS[dist][0]]
        attrs = dict(
            kwargs, **dict(zip(names, params)), shape=(1,) if shape is UNSET else shape, dtype=dtype
        )
        return finish(apply(f"_random_{dist}", [], attrs, name), out)

    def uniform(
        low: Any = 0.0,
        high: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws from the uniform distribution on [low, high)."""
        return draw("uniform", [low, high], shape, dtype, ctx, out, kwargs)

    def normal(
        loc: Any = 0.0,
        scale: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws from the normal distribution with mean ``loc``, deviation ``scale``."""
        return draw("normal", [loc, scale], shape, dtype, ctx, out, kwargs)

    def randn(
        *shape: int,
        loc: Any = 0.0,
        scale: Any = 1.0,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Normal draws of the shape given as positional sizes (``randn(2, 3)``)."""
        return draw("normal", [loc, scale], shape or UNSET, dtype, ctx, out, kwargs)

    def gamma(
        alpha: Any = 1.0,
        beta: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws from the gamma distribution of shape ``alpha`` and scale ``beta``."""
        return draw("gamma", [alpha, beta], shape, dtype, ctx, out, kwargs)

    def exponential(
        scale: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws from the exponential distribution of mean ``scale`` (rate 1/scale)."""
        return draw("exponential", [1.0 / scale], shape, dtype, ctx, out, kwargs)

    def poisson(
        lam: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws from the Poisson distribution of rate ``lam`` (as floats)."""
        return draw("poisson", [lam], shape, dtype, ctx, out, kwargs)

    def negative_binomial(
        k: Any = 1,
        p: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws of the number of failures before the ``k``-th success, each trial
        succeeding with probability ``p``."""
        return draw("negative_binomial", [k, p], shape, dtype, ctx, out, kwargs)

    def generalized_negative_binomial(
        mu: Any = 1.0,
        alpha: Any = 1.0,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Draws with mean ``mu`` and variance ``mu + alpha mu^2`` (a Poisson whose
        rate is gamma distributed)."""
        return draw("generalized_negative_binomial", [mu, alpha], shape, dtype, ctx, out, kwargs)

    def randint(
        low: int,
        high: int,
        shape: Any = UNSET,
        dtype: Any = None,
        ctx: Any = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Integers drawn uniformly from [low, high) (int32 unless ``dtype='int64'``)."""
        check_context(ctx)
        name = kwargs.pop("name", None)
        attrs = dict(
            kwargs, low=low, high=high, shape=(1,) if shape is UNSET else shape, dtype=dtype
        )
        return finish(apply("_random_randint", [], attrs, name), out)

    def multinomial(
        data: Any,
        shape: Any = UNSET,
        get_prob: bool = False,
        out: Any = None,
        dtype: Any = "int32",
        **kwargs: Any,
    ) -> Any:
        """Category indices drawn from the distributions along the last axis of
        ``data`` (``shape`` draws per distribution); with ``get_prob``, also the
        log-probability of each draw, differentiable with respect to ``data``."""
        name = kwargs.pop("name", None)
        attrs = dict(kwargs, shape=() if shape is UNSET else shape, get_prob=get_prob, dtype=dtype)
        return finish(apply("_sample_multinomial", [data], attrs, name), out)

    def shuffle(data: Any, **kwargs: Any) -> Any:
        """The rows of ``data`` (its first axis) in a random order."""
        name = kwargs.pop("name", None)
        out = kwargs.pop("out", None)
        return finish(apply("_shuffle", [data], kwargs, name), out)

    return {
        f.__name__: f
        for f in (
            uniform,
            normal,
            randn,
            gamma,
            exponential,
            poisson,
            negative_binomial,
            generalized_negative_binomial,
            randint,
            multinomial,
            shuffle,
        )
    }


def _apply_nd(op: str, inputs: list, attrs: dict, name: Any) -> Any:
    return invoke(op, tuple(inputs), attrs)


_FUNCTIONS = make_functions(_apply_nd, is_ndarray, _finish_nd)
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


def _finish_like(result: Any, out: Any = None, name: Any = None) -> Any:
    return _finish_nd(result, out)


def _like(dist: str) -> Callable:
    # ``uniform_like(data, low=0, high=1)``...: the registered _random_<dist>_like op,
    # which takes the op's own parameters (``lam`` for the exponential, not ``scale``)
    return _make_function(
        f"{dist}_like", get_op(f"_random_{dist}_like"), invoke, is_ndarray, _finish_like
    )


uniform_like = _like("uniform")
normal_like = _like("normal")
gamma_like = _like("gamma")
exponential_like = _like("exponential")
poisson_like = _like("poisson")
negative_binomial_like = _like("negative_binomial")
generalized_negative_binomial_like = _like("generalized_negative_binomial")

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
    "uniform_like",
    "normal_like",
    "gamma_like",
    "exponential_like",
    "poisson_like",
    "negative_binomial_like",
    "generalized_negative_binomial_like",
]
