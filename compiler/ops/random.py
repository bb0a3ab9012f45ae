"""Ops with no tensor inputs: random draws and constant creation.

Random ops take their randomness from one seeded numpy Generator; each draw gets a
fresh ``_draw`` attribute when put in a graph, so no pass ever merges two draws.
"""

from __future__ import annotations

import numpy as np

from ..ir import TensorType
from ..registry import (
    Attr,
    OpDef,
    TestSpec,
    as_dtype_name,
    as_float,
    as_optional_int,
    as_shape,
    register,
)

_generator = np.random.default_rng()


def generator() -> np.random.Generator:
    """The Generator every random op draws from."""
    return _generator


def seed(value: int) -> None:
    """Reseed the Generator (``mx.random.seed``)."""
    global _generator
    _generator = np.random.default_rng(value)


def _creation_types(types, *, shape, dtype, **_attrs):
    return [TensorType(shape, np.dtype(dtype))]


SHAPE_DTYPE = {"shape": Attr(as_shape, ()), "dtype": Attr(as_dtype_name, "float32")}


def _creation(name, impl, extra, doc, test_attrs=None):
    register(OpDef(name=name, infer=_creation_types, impl=impl, inputs=(),
                   attrs={**SHAPE_DTYPE, **extra}, differentiable=False, kind="creation",
                   doc=doc, test=TestSpec(shapes=(), attrs={"shape": (2, 3),
                                                            **(test_attrs or {})})))


_creation("_zeros", lambda *, shape, dtype: np.zeros(shape, dtype), {}, "Zeros.")
_creation("_ones", lambda *, shape, dtype: np.ones(shape, dtype), {}, "Ones.")
_creation("_full", lambda *, shape, dtype, value: np.full(shape, value, dtype),
          {"value": Attr(as_float)}, "An array filled with ``value``.", {"value": 2.5})
_creation("_random_uniform",
          lambda *, shape, dtype, low, high, _draw: _generator.uniform(low, high, shape)
          .astype(dtype),
          {"low": Attr(as_float, 0.0), "high": Attr(as_float, 1.0),
           "_draw": Attr(as_optional_int, None)},
          "Uniform draws on [low, high).")
_creation("_random_normal",
          lambda *, shape, dtype, loc, scale, _draw: _generator.normal(loc, scale, shape)
          .astype(dtype),
          {"loc": Attr(as_float, 0.0), "scale": Attr(as_float, 1.0),
           "_draw": Attr(as_optional_int, None)},
          "Normal draws with mean ``loc`` and standard deviation ``scale``.")


def _arange_types(types, *, start, stop, step, repeat, dtype):
    count = len(np.arange(start, stop, step)) if stop is not None else len(np.arange(start))
    return [TensorType((count * repeat,), np.dtype(dtype))]


def _arange(*, start, stop, step, repeat, dtype):
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    return np.repeat(values, repeat).astype(dtype)


register(OpDef(name="_arange", infer=_arange_types, impl=_arange, inputs=(),
               attrs={"start": Attr(as_float), "stop": Attr(
                   lambda v: None if v is None or v == "None" else as_float(v), None),
                      "step": Attr(as_float, 1.0), "repeat": Attr(int, 1),
                      "dtype": Attr(as_dtype_name, "float32")},
               differentiable=False, kind="creation",
               doc="Evenly spaced values in [start, stop), each repeated ``repeat`` times.",
               test=TestSpec(shapes=(), attrs={"start": 1, "stop": 7, "step": 2,
                                               "repeat": 2})))
