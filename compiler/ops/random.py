"""Constant creation and MXNet's random ops: draws (``_random_*``, ``_sample_*``,
``_sample_multinomial``, ``_shuffle``) and densities (``_random_pdf_*``).

Random ops take their randomness from one seeded numpy Generator; each draw gets a
fresh ``_draw`` attribute when put in a graph, so no pass ever merges two draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..expr import Expr, call
from ..ir import GraphError, TensorType
from ..registry import (
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_dtype_name,
    as_float,
    as_int,
    as_optional_int,
    as_shape,
    register,
    same_as_first,
)
from .common import F

# what a density's score function gives: d log pdf / d input for each input
# (None where it has none)
Scores = tuple[np.ndarray | None, ...]


def _special() -> Any:
    """``scipy.special``, imported at first use: importing it costs about 0.3 s,
    which every ``import symgrad`` would pay."""
    from scipy import special

    return special


_generator = np.random.default_rng()


def generator() -> np.random.Generator:
    """The Generator every random op draws from."""
    return _generator


def seed(value: int) -> None:
    """Reseed the Generator (``mx.random.seed``)."""
    global _generator
    _generator = np.random.default_rng(value)


def _creation_types(
    types: Sequence[TensorType], *, shape: tuple[int, ...], dtype: str, **_attrs: Any
) -> list[TensorType]:
    return [TensorType(shape, np.dtype(dtype))]


SHAPE_DTYPE = {"shape": Attr(as_shape, ()), "dtype": Attr(as_dtype_name, "float32")}


def _creation(
    name: str,
    impl: Callable[..., np.ndarray],
    extra: dict[str, Attr],
    doc: str,
    test_attrs: dict | None = None,
) -> None:
    register(
        OpDef(
            name=name,
            infer=_creation_types,
            impl=impl,
            inputs=(),
            attrs={**SHAPE_DTYPE, **extra},
            differentiable=False,
            kind="creation",
            doc=doc,
            test=TestSpec(shapes=(), attrs={"shape": (2, 3), **(test_attrs or {})}),
        )
    )


_creation("_zeros", lambda *, shape, dtype: np.zeros(shape, dtype), {}, "Zeros.")
_creation("_ones", lambda *, shape, dtype: np.ones(shape, dtype), {}, "Ones.")
_creation(
    "_full",
    lambda *, shape, dtype, value: np.full(shape, value, dtype),
    {"value": Attr(as_float)},
    "An array filled with ``value``.",
    {"value": 2.5},
)


def _arange_count(start: float, stop: float | None, step: float) -> int:
    """ceil((stop - start) / step) in double precision, as MXNet sizes it."""
    if stop is None:
        start, stop = 0.0, start
    return max(0, math.ceil((stop - start) / step))


def _arange_types(
    types: Sequence[TensorType], *, start: float, stop: Any, step: float, repeat: int, dtype: str
) -> list[TensorType]:
    return [TensorType((_arange_count(start, stop, step) * repeat,), np.dtype(dtype))]


def _arange(*, start: float, stop: Any, step: float, repeat: int, dtype: str) -> np.ndarray:
    kind = np.dtype(dtype)
    # MXNet casts start and step to the dtype first, then computes start + i * step
    # in it: arange(1.3, 456.6, 1.3, dtype='int32') is 1, 2, 3, ...
    first = kind.type(start if stop is not None else 0)
    stride = kind.type(step)
    count = _arange_count(start, stop, step)
    with np.errstate(over="ignore"):
        values = first + np.arange(count).astype(kind) * stride
    return np.repeat(values.astype(kind), repeat)


register(
    OpDef(
        name="_arange",
        infer=_arange_types,
        impl=_arange,
        inputs=(),
        attrs={
            "start": Attr(as_float),
            "stop": Attr(lambda v: None if v is None or v == "None" else as_float(v), None),
            "step": Attr(as_float, 1.0),
            "repeat": Attr(int, 1),
            "dtype": Attr(as_dtype_name, "float32"),
        },
        differentiable=False,
        kind="creation",
        doc="Evenly spaced values in [start, stop), each repeated ``repeat`` times.",
        test=TestSpec(shapes=(), attrs={"start": 1, "stop": 7, "step": 2, "repeat": 2}),
    )
)


# ---------------------------------------------------------------------------
# random draws: attribute parsers and the samplers behind every draw op
# ---------------------------------------------------------------------------


def as_draw_dtype(value: Any) -> str:
    """A draw's dtype: MXNet's ``'None'`` (unset) means float32."""
    return "float32" if value is None or value == "None" else as_dtype_name(value)


def as_draw_shape(value: Any) -> tuple[int, ...]:
    """A draw's shape: MXNet's ``None`` (unset) means no extra axes."""
    return () if value is None or value == "None" else as_shape(value)


def as_int_dtype(value: Any) -> str:
    """randint's dtype: int32 (also for MXNet's ``'None'``) or int64."""
    name = "int32" if value is None or value == "None" else as_dtype_name(value)
    if name not in ("int32", "int64"):
        raise ValueError(f"randint draws int32 or int64, not {name}")
    return name


def _uniform(
    rng: np.random.Generator,
    low: np.ndarray | float,
    high: np.ndarray | float,
    size: tuple[int, ...],
) -> np.ndarray:
    return rng.uniform(low, high, size)


def _normal(
    rng: np.random.Generator,
    loc: np.ndarray | float,
    scale: np.ndarray | float,
    size: tuple[int, ...],
) -> np.ndarray:
    return rng.normal(loc, scale, size)


def _gamma(
    rng: np.random.Generator,
    alpha: np.ndarray | float,
    beta: np.ndarray | float,
    size: tuple[int, ...],
) -> np.ndarray:
    return rng.gamma(alpha, beta, size)  # beta is the scale, as MXNet draws


def _exponential(
    rng: np.random.Generator, lam: np.ndarray | float, size: tuple[int, ...]
) -> np.ndarray:
    return rng.exponential(1.0 / np.asarray(lam, dtype=np.float64), size)


def _poisson(
    rng: np.random.Generator, lam: np.ndarray | float, size: tuple[int, ...]
) -> np.ndarray:
    return rng.poisson(lam, size)


def _negative_binomial(
    rng: np.random.Generator, k: np.ndarray | float, p: np.ndarray | float, size: tuple[int, ...]
) -> np.ndarray:
    return rng.negative_binomial(k, p, size)  # failures before the k-th success


def _generalized_negative_binomial(
    rng: np.random.Generator,
    mu: np.ndarray | float,
    alpha: np.ndarray | float,
    size: tuple[int, ...],
) -> np.ndarray:
    # A Poisson draw whose rate is Gamma(1/alpha, mu alpha): mean mu, variance
    # mu + alpha mu^2; alpha = 0 is the Poisson distribution itself.
    mu, alpha = np.asarray(mu, dtype=np.float64), np.asarray(alpha, dtype=np.float64)
    positive = alpha > 0
    safe = np.where(positive, alpha, 1.0)
    rates = np.where(positive, rng.gamma(1.0 / safe, mu * safe, size), np.broadcast_to(mu, size))
    return rng.poisson(rates)


# name: (the _random_ op's parameters with defaults and parsers, the _sample_ op's
# input names, the sampler, the TestSpec inputs of the _sample_ op)
DISTRIBUTIONS: dict[
    str,
    tuple[
        tuple[tuple[str, Any, Callable[[Any], Any]], ...],
        tuple[str, ...],
        Callable[..., np.ndarray],
        tuple[tuple[float, float], ...],
    ],
] = {
    "uniform": (
        (("low", 0.0, as_float), ("high", 1.0, as_float)),
        ("low", "high"),
        _uniform,
        ((-1.0, 0.0), (1.0, 2.0)),
    ),
    "normal": (
        (("loc", 0.0, as_float), ("scale", 1.0, as_float)),
        ("mu", "sigma"),
        _normal,
        ((-1.0, 1.0), (0.5, 2.0)),
    ),
    "gamma": (
        (("alpha", 1.0, as_float), ("beta", 1.0, as_float)),
        ("alpha", "beta"),
        _gamma,
        ((0.5, 3.0), (0.5, 2.0)),
    ),
    "exponential": ((("lam", 1.0, as_float),), ("lam",), _exponential, ((0.5, 3.0),)),
    "poisson": ((("lam", 1.0, as_float),), ("lam",), _poisson, ((0.5, 5.0),)),
    "negative_binomial": (
        (("k", 1, as_int), ("p", 1.0, as_float)),
        ("k", "p"),
        _negative_binomial,
        ((1.0, 5.0), (0.2, 0.8)),
    ),
    "generalized_negative_binomial": (
        (("mu", 1.0, as_float), ("alpha", 1.0, as_float)),
        ("mu", "alpha"),
        _generalized_negative_binomial,
        ((0.5, 3.0), (0.1, 1.5)),
    ),
}

_DRAW = {"_draw": Attr(as_optional_int, None)}


# ---------------------------------------------------------------------------
# _random_<distribution>: scalar parameters, a shape and a dtype
# ---------------------------------------------------------------------------


def _scalar_draw_impl(
    sampler: Callable[..., np.ndarray], names: Sequence[str]
) -> Callable[..., np.ndarray]:
    def impl(*, shape: tuple[int, ...], dtype: str, _draw: int | None, **params: Any) -> np.ndarray:
        values = sampler(generator(), *[params[name] for name in names], shape)
        return np.asarray(values).astype(dtype)

    return impl


def _like_impl(
    sampler: Callable[..., np.ndarray], names: Sequence[str]
) -> Callable[..., np.ndarray]:
    def impl(data: np.ndarray, *, _draw: int | None, **params: Any) -> np.ndarray:
        values = sampler(generator(), *[params[name] for name in names], data.shape)
        return np.asarray(values).astype(data.dtype)

    return impl


def _draw_attrs(params: Sequence[tuple[str, Any, Callable[[Any], Any]]]) -> dict:
    return {name: Attr(parse, default) for name, default, parse in params}


for _dist, (_params, _inputs, _sampler, _domains) in DISTRIBUTIONS.items():
    _names = tuple(name for name, _, _ in _params)
    _extra_aliases = (_dist,) if _dist in ("uniform", "normal") else ()
    register(
        OpDef(
            name=f"_random_{_dist}",
            aliases=(f"random_{_dist}", *_extra_aliases),
            infer=_creation_types,
            impl=_scalar_draw_impl(_sampler, _names),
            inputs=(),
            attrs={
                **_draw_attrs(_params),
                "shape": Attr(as_draw_shape, ()),
                "dtype": Attr(as_draw_dtype, "float32"),
                **_DRAW,
            },
            differentiable=False,
            kind="creation",
            doc=f"Draws from the {_dist.replace('_', ' ')} distribution with parameters "
            f"{', '.join(_names)}, of ``shape`` and ``dtype`` (float32 by default).",
            test=TestSpec(shapes=(), attrs={"shape": (2, 3)}),
        )
    )
    register(
        OpDef(
            name=f"_random_{_dist}_like",
            infer=same_as_first,
            impl=_like_impl(_sampler, _names),
            attrs={**_draw_attrs(_params), **_DRAW},
            shape_only=(0,),
            differentiable=False,
            kind="random",
            doc=f"Draws from the {_dist.replace('_', ' ')} distribution with the shape and "
            f"dtype of ``data``.",
            test=TestSpec(shapes=((2, 3),)),
        )
    )


def _randint(
    *, low: int, high: int, shape: tuple[int, ...], dtype: str, _draw: int | None
) -> np.ndarray:
    return generator().integers(low, high, shape).astype(dtype)


def _randint_types(
    types: Sequence[TensorType],
    *,
    low: int,
    high: int,
    shape: tuple[int, ...],
    dtype: str,
    _draw: int | None,
) -> list[TensorType]:
    if high <= low:
        raise GraphError(f"randint needs low < high, got [{low}, {high})")
    return [TensorType(shape, np.dtype(dtype))]


register(
    OpDef(
        name="_random_randint",
        aliases=("random_randint",),
        infer=_randint_types,
        impl=_randint,
        inputs=(),
        attrs={
            "low": Attr(as_int),
            "high": Attr(as_int),
            "shape": Attr(as_draw_shape, ()),
            "dtype": Attr(as_int_dtype, "int32"),
            **_DRAW,
        },
        differentiable=False,
        kind="creation",
        doc="Integers drawn uniformly from [low, high), int32 by default.",
        test=TestSpec(shapes=(), attrs={"low": -3, "high": 7, "shape": (4, 5)}),
    )
)


# ---------------------------------------------------------------------------
# _sample_<distribution>: parameter arrays; one draw of ``shape`` per element
# ---------------------------------------------------------------------------


def _sample_types(
    types: Sequence[TensorType], *, shape: tuple[int, ...], dtype: str, _draw: int | None
) -> list[TensorType]:
    first = types[0]
    for t in types[1:]:
        if t.shape != first.shape:
            raise GraphError(f"parameter shapes differ: {first.shape} and {t.shape}")
    return [TensorType(first.shape + shape, np.dtype(dtype))]


def _sample_impl(sampler: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def impl(
        *params: np.ndarray, shape: tuple[int, ...], dtype: str, _draw: int | None
    ) -> np.ndarray:
        size = params[0].shape + shape
        # each parameter element broadcasts over its own block of ``shape`` draws
        expanded = [p.astype(np.float64).reshape(p.shape + (1,) * len(shape)) for p in params]
        return np.asarray(sampler(generator(), *expanded, size)).astype(dtype)

    return impl


def _sample_inputs(
    domains: Sequence[tuple[float, float]],
) -> Callable[[np.random.Generator], list[np.ndarray]]:
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.uniform(low, high, (2, 3)) for low, high in domains]

    return make


for _dist, (_params, _inputs, _sampler, _domains) in DISTRIBUTIONS.items():
    register(
        OpDef(
            name=f"_sample_{_dist}",
            aliases=(f"sample_{_dist}",),
            infer=_sample_types,
            impl=_sample_impl(_sampler),
            inputs=_inputs,
            attrs={
                "shape": Attr(as_draw_shape, ()),
                "dtype": Attr(as_draw_dtype, "float32"),
                **_DRAW,
            },
            differentiable=False,
            kind="random",
            doc=f"Draws from {_dist.replace('_', ' ')} distributions whose parameters "
            f"({', '.join(_inputs)}) are arrays of one shape: ``shape`` draws per element, "
            f"output shape ``params.shape + shape``. No gradient (MXNet's zeros).",
            test=TestSpec(make_inputs=_sample_inputs(_domains), attrs={"shape": (2,)}),
        )
    )

del _dist, _params, _inputs, _sampler, _domains, _names, _extra_aliases


# ---------------------------------------------------------------------------
# _sample_multinomial and _shuffle
# ---------------------------------------------------------------------------


def _multinomial_shape(data_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    # one distribution (a vector) and no shape: MXNet draws one value, shape (1,)
    return (data_shape[:-1] + shape) or (1,)


def _multinomial_types(
    types: Sequence[TensorType],
    *,
    shape: tuple[int, ...],
    get_prob: bool,
    dtype: str,
    _draw: int | None,
) -> list[TensorType]:
    data = types[0]
    if not data.shape:
        raise GraphError("data must hold probabilities along its last axis")
    out_shape = _multinomial_shape(data.shape, shape)
    samples = TensorType(out_shape, np.dtype(dtype))
    return [samples, TensorType(out_shape, data.dtype)] if get_prob else [samples]


def _multinomial(
    data: np.ndarray, *, shape: tuple[int, ...], get_prob: bool, dtype: str, _draw: int | None
) -> np.ndarray | tuple[np.ndarray, ...]:
    batch, categories = data.shape[:-1], data.shape[-1]
    out_shape = _multinomial_shape(data.shape, shape)
    uniform = generator().random(batch + shape).reshape(batch + shape + (1,))
    cdf = np.cumsum(data.astype(np.float64), axis=-1)
    cdf = cdf.reshape(batch + (1,) * len(shape) + (categories,))
    # the first category whose cumulative probability exceeds the uniform draw
    index = np.minimum((uniform >= cdf).sum(-1), categories - 1)
    samples = index.reshape(out_shape).astype(dtype)
    if not get_prob:
        return samples
    probabilities = np.broadcast_to(
        data.reshape(batch + (1,) * len(shape) + (categories,)), batch + shape + (categories,)
    )
    chosen = np.take_along_axis(probabilities, index[..., None], -1)[..., 0]
    with np.errstate(divide="ignore"):
        return samples, np.log(chosen).reshape(out_shape).astype(data.dtype)


def multinomial_grad(
    gs: tuple[Expr, ...],
    data: Expr,
    *,
    out: tuple[Expr, ...],
    shape: tuple[int, ...],
    get_prob: bool,
    dtype: str,
    _draw: int | None,
) -> Expr | None:
    """d log p[k] / d p[k] = 1 / p[k] at each drawn category k: the one-hot draws
    times g, summed over the draws of each distribution, over p (log-probabilities
    only; the draws themselves have none)"""
    if not get_prob:
        return None
    categories = data.shape[-1]
    picked = F.one_hot(F.stop_gradient(out[0]), depth=categories, dtype=data.dtype)
    weighted = F.broadcast_mul(picked, F.expand_dims(gs[1], axis=-1))
    if data.ndim == 1 and not shape:
        per_draw = F.sum(weighted, axis=(0,))
    elif shape:
        first = data.ndim - 1
        per_draw = F.sum(weighted, axis=tuple(range(first, first + len(shape))))
    else:
        per_draw = weighted
    return per_draw / data


def _probability_rows(rng: np.random.Generator) -> list[np.ndarray]:
    rows = rng.uniform(0.2, 1.0, (2, 4))
    return [rows / rows.sum(-1, keepdims=True)]


_MULTINOMIAL = register(
    OpDef(
        name="_sample_multinomial",
        aliases=("sample_multinomial",),
        infer=_multinomial_types,
        impl=_multinomial,
        grad=multinomial_grad,
        attrs={
            "shape": Attr(as_draw_shape, ()),
            "get_prob": Attr(as_bool, False),
            "dtype": Attr(as_dtype_name, "int32"),
            **_DRAW,
        },
        kind="random",
        doc="Category indices drawn from the distributions along the last axis of "
        "``data``, ``shape`` per distribution; with get_prob, also the "
        "log-probability of each draw (differentiable w.r.t. ``data``).",
        test=TestSpec(
            make_inputs=_probability_rows,
            order=1,
            attrs={"shape": (3,), "get_prob": True, "dtype": "float64"},
        ),
    )
)
# output counts known before shapes (a Symbol over variables of unknown shape)
_MULTINOMIAL.num_outputs = lambda attrs, num_inputs: 2 if attrs["get_prob"] else 1


def _shuffle(data: np.ndarray, *, _draw: int | None) -> np.ndarray:
    return data[generator().permutation(data.shape[0])] if data.ndim else data.copy()


register(
    OpDef(
        name="_shuffle",
        aliases=("shuffle",),
        infer=same_as_first,
        impl=_shuffle,
        attrs=dict(_DRAW),
        differentiable=False,
        kind="random",
        doc="The rows of ``data`` (its first axis) in a random order.",
        test=TestSpec(shapes=((5, 3),)),
    )
)


# ---------------------------------------------------------------------------
# _random_pdf_<distribution>: densities (or with is_log their logarithms) of
# samples; parameter arrays of shape P, samples of shape P + extra axes
# ---------------------------------------------------------------------------


def _logpdf_uniform(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    # MXNet's density is 1 / (high - low) wherever the sample is
    return np.broadcast_to(-np.log(high - low), x.shape)


def _score_uniform(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> Scores:
    width = np.broadcast_to(high - low, x.shape)
    return None, 1.0 / width, -1.0 / width


def _logpdf_normal(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    z = (x - mu) / sigma
    return -0.5 * z * z - np.log(sigma) - 0.5 * np.log(2 * np.pi)


def _score_normal(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> Scores:
    z = (x - mu) / sigma
    return -z / sigma, z / sigma, (z * z - 1.0) / sigma


def _logpdf_gamma(x: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    # MXNet's density takes beta as the rate (its sampler as the scale)
    return alpha * np.log(beta) - _special().gammaln(alpha) + (alpha - 1) * np.log(x) - beta * x


def _score_gamma(x: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> Scores:
    return (
        (alpha - 1) / x - beta,
        np.log(beta) - _special().digamma(alpha) + np.log(x),
        alpha / beta - x,
    )


def _logpdf_exponential(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return np.log(lam) - lam * x


def _score_exponential(x: np.ndarray, lam: np.ndarray) -> Scores:
    return -lam + 0 * x, 1.0 / lam - x


def _logpdf_poisson(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return x * np.log(lam) - lam - _special().gammaln(x + 1)


def _score_poisson(x: np.ndarray, lam: np.ndarray) -> Scores:
    return None, x / lam - 1.0  # counts: no gradient for the sample (as MXNet)


def _logpdf_negative_binomial(x: np.ndarray, k: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (
        _special().gammaln(x + k)
        - _special().gammaln(x + 1)
        - _special().gammaln(k)
        + k * np.log(p)
        + x * np.log1p(-p)
    )


def _score_negative_binomial(x: np.ndarray, k: np.ndarray, p: np.ndarray) -> Scores:
    return (
        None,
        _special().digamma(x + k) - _special().digamma(k) + np.log(p),
        k / p - x / (1 - p),
    )


def _logpdf_generalized_negative_binomial(
    x: np.ndarray, mu: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    # the negative binomial with k = 1/alpha and success probability 1/(1 + alpha mu)
    return _logpdf_negative_binomial(x, 1.0 / alpha, 1.0 / (1.0 + alpha * mu))


def _score_generalized_negative_binomial(
    x: np.ndarray, mu: np.ndarray, alpha: np.ndarray
) -> Scores:
    k, spread = 1.0 / alpha, 1.0 + alpha * mu
    d_mu = x / mu - (alpha * x + 1) / spread
    d_alpha = (
        -(_special().digamma(x + k) - _special().digamma(k)) * k * k
        + np.log(spread) * k * k
        - mu * k / spread
        + x * k
        - x * mu / spread
    )
    return None, d_mu, d_alpha


def _logpdf_dirichlet(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return (
        _special().gammaln(alpha.sum(-1))
        - _special().gammaln(alpha).sum(-1)
        + ((alpha - 1) * np.log(x)).sum(-1)
    )


def _score_dirichlet(x: np.ndarray, alpha: np.ndarray) -> Scores:
    total = _special().digamma(alpha.sum(-1, keepdims=True))
    return (alpha - 1) / x, total - _special().digamma(alpha) + np.log(x) + 0 * x


def _counts(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 6, shape).astype(np.float64)


def _simplex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.dirichlet(np.full(shape[-1], 2.0), shape[:-1])


# name: (parameter names, log-density, scores (d log-density / d each input; None
# where MXNet has no gradient), TestSpec input maker)
DENSITIES: dict[
    str,
    tuple[
        tuple[str, ...],
        Callable[..., np.ndarray],
        Callable[..., Scores],
        Callable[[np.random.Generator], list[np.ndarray]],
    ],
] = {
    "uniform": (
        ("low", "high"),
        _logpdf_uniform,
        _score_uniform,
        lambda rng: [
            rng.uniform(0, 1, (2, 3)),
            rng.uniform(-1, -0.5, (2,)),
            rng.uniform(1.5, 2, (2,)),
        ],
    ),
    "normal": (
        ("mu", "sigma"),
        _logpdf_normal,
        _score_normal,
        lambda rng: [rng.normal(0, 1, (2, 3)), rng.uniform(-1, 1, (2,)), rng.uniform(0.5, 2, (2,))],
    ),
    "gamma": (
        ("alpha", "beta"),
        _logpdf_gamma,
        _score_gamma,
        lambda rng: [
            rng.uniform(0.5, 3, (2, 3)),
            rng.uniform(1.5, 3, (2,)),
            rng.uniform(0.5, 2, (2,)),
        ],
    ),
    "exponential": (
        ("lam",),
        _logpdf_exponential,
        _score_exponential,
        lambda rng: [rng.uniform(0.2, 2, (2, 3)), rng.uniform(0.5, 2, (2,))],
    ),
    "poisson": (
        ("lam",),
        _logpdf_poisson,
        _score_poisson,
        lambda rng: [_counts(rng, (2, 3)), rng.uniform(0.5, 3, (2,))],
    ),
    "negative_binomial": (
        ("k", "p"),
        _logpdf_negative_binomial,
        _score_negative_binomial,
        lambda rng: [_counts(rng, (2, 3)), rng.uniform(1, 4, (2,)), rng.uniform(0.2, 0.8, (2,))],
    ),
    "generalized_negative_binomial": (
        ("mu", "alpha"),
        _logpdf_generalized_negative_binomial,
        _score_generalized_negative_binomial,
        lambda rng: [_counts(rng, (2, 3)), rng.uniform(0.5, 3, (2,)), rng.uniform(0.2, 1.5, (2,))],
    ),
    "dirichlet": (
        ("alpha",),
        _logpdf_dirichlet,
        _score_dirichlet,
        lambda rng: [_simplex(rng, (2, 3, 4)), rng.uniform(0.5, 3, (2, 4))],
    ),
}


def _expand_params(
    sample: np.ndarray, params: Sequence[np.ndarray], vector: bool
) -> list[np.ndarray]:
    """Parameters (shape P, or P + (k,) for a vector distribution) reshaped to
    broadcast against samples of shape P + extra (+ (k,))."""
    extra = sample.ndim - params[0].ndim
    out = []
    for p in params:
        shape = p.shape[:-1] + (1,) * extra + p.shape[-1:] if vector else p.shape + (1,) * extra
        out.append(p.reshape(shape))
    return out


def _pdf_types(vector: bool) -> Callable[..., list[TensorType]]:
    def infer(types: Sequence[TensorType], *, is_log: bool) -> list[TensorType]:
        sample, params = types[0], types[1:]
        shape = params[0].shape
        for t in params:
            if t.shape != shape or t.dtype != sample.dtype:
                raise GraphError("parameters need one shape and the sample's dtype")
        lead = shape[:-1] if vector else shape
        if sample.shape[: len(lead)] != lead or (
            vector
            and (not shape or sample.shape[-1:] != shape[-1:] or len(sample.shape) < len(shape))
        ):
            raise GraphError(f"samples {sample.shape} do not extend parameters {shape}")
        return [TensorType(sample.shape[:-1] if vector else sample.shape, sample.dtype)]

    return infer


def _pdf_impl(logpdf: Callable[..., np.ndarray], vector: bool) -> Callable[..., np.ndarray]:
    def impl(sample: np.ndarray, *params: np.ndarray, is_log: bool) -> np.ndarray:
        expanded = _expand_params(sample, params, vector)
        with np.errstate(all="ignore"):
            value = logpdf(sample, *expanded)
            return np.asarray(value if is_log else np.exp(value)).astype(sample.dtype)

    return impl


def _score_impl(
    score: Callable[..., Scores], vector: bool
) -> Callable[..., np.ndarray | tuple[np.ndarray, ...]]:
    def impl(sample: np.ndarray, *params: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        expanded = _expand_params(sample, params, vector)
        with np.errstate(all="ignore"):
            parts = score(sample, *expanded)
        return tuple(
            np.zeros_like(sample)
            if part is None
            else np.ascontiguousarray(np.broadcast_to(part, sample.shape), sample.dtype)
            for part in parts
        )

    return impl


def _score_types(types: Sequence[TensorType]) -> list[TensorType]:
    return [types[0]] * len(types)


def _pdf_grad(
    dist: str, vector: bool, sample_gradient: bool
) -> Callable[..., Expr | tuple[Expr | None, ...]]:
    def grad(
        g: Expr, sample: Expr, *params: Expr, out: Expr, is_log: bool
    ) -> Expr | tuple[Expr | None, ...]:
        scores = call(f"_backward_random_pdf_{dist}", sample, *params)
        factor = g if is_log else g * out  # d pdf = pdf d log pdf
        if vector:
            factor = F.expand_dims(factor, axis=-1)
        lead = params[0].ndim - (1 if vector else 0)
        extra = tuple(range(lead, lead + sample.ndim - params[0].ndim))
        grads = [F.broadcast_mul(factor, scores[0]) if sample_gradient else None]
        for part in scores[1:]:
            full = F.broadcast_mul(factor, part)
            grads.append(F.sum(full, axis=extra) if extra else full)
        return tuple(grads)

    grad.__name__ = f"pdf_{dist}_grad"
    grad.__doc__ = (
        "g * pdf * d log pdf / d input (g * d log pdf / d input with is_log), "
        "summed over the sample axes for parameters; the scores come from "
        f"_backward_random_pdf_{dist}"
    )
    return grad


for _dist, (_pdf_params, _logpdf, _score, _make) in DENSITIES.items():
    _vector = _dist == "dirichlet"
    _discrete = _dist in ("poisson", "negative_binomial", "generalized_negative_binomial")
    register(
        OpDef(
            name=f"_random_pdf_{_dist}",
            aliases=(f"random_pdf_{_dist}",),
            infer=_pdf_types(_vector),
            impl=_pdf_impl(_logpdf, _vector),
            grad=_pdf_grad(_dist, _vector, not (_discrete or _dist == "uniform")),
            inputs=("sample", *_pdf_params),
            attrs={"is_log": Attr(as_bool, False)},
            doc=f"The {_dist.replace('_', ' ')} density (log-density with is_log) of each "
            f"sample given its parameters ({', '.join(_pdf_params)}): parameters of shape P, "
            f"samples of shape P + extra axes{' + (k,)' if _vector else ''}.",
            test=TestSpec(
                make_inputs=_make,
                order=1,
                wrt=tuple(range(1, len(_pdf_params) + 1)) if _discrete else None,
            ),
        )
    )
    _score_op = register(
        OpDef(
            name=f"_backward_random_pdf_{_dist}",
            infer=_score_types,
            impl=_score_impl(_score, _vector),
            inputs=("sample", *_pdf_params),
            differentiable=False,
            doc=f"d log pdf / d input for the {_dist.replace('_', ' ')} density, one array "
            f"of the samples' shape per input (zeros where MXNet has no gradient).",
            test=TestSpec(make_inputs=_make),
        )
    )
    _score_op.num_outputs = len(_pdf_params) + 1

del _dist, _pdf_params, _logpdf, _score, _make, _vector, _discrete, _score_op
