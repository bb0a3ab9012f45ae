"""``mx.init`` / ``mx.initializer``: the first values of parameters.

An initializer is called with a name and an NDArray and writes the array in place.
Which of its ``_init_*`` methods runs is chosen from the name, as MXNet 1.x chooses
it: a name ending in ``weight`` gets ``_init_weight``, ``bias`` zeros, ``gamma``
ones, ``beta`` zeros, and an ``__init__`` attribute on the name's ``InitDesc``
(what a Gluon Parameter or ``sym.var(init=...)`` carries) overrides the suffix.
Random initializers draw from the generator behind ``mx.random.seed``, so seeding
and initialising again gives the same values.

>>> import symgrad as mx
>>> w = mx.nd.zeros((2, 3))
>>> mx.init.Constant(0.5)(mx.init.InitDesc("fc_weight"), w)
>>> w.asnumpy().tolist()
[[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
>>> mx.init.create("xavier").dumps()
'["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]'
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from symgrad_compiler.ops import random as _random_ops

from .base import MXNetError
from .ndarray import NDArray
from .ndarray import random as _random

__all__ = [
    "InitDesc",
    "Initializer",
    "register",
    "alias",
    "create",
    "Zero",
    "One",
    "Constant",
    "Uniform",
    "Normal",
    "Orthogonal",
    "Xavier",
    "MSRAPrelu",
    "Bilinear",
    "LSTMBias",
    "Mixed",
    "Load",
]

_Klass = TypeVar("_Klass", bound=type)


class InitDesc(str):
    """The name of an array to initialise, with what is known about it.

    Parameters
    ----------
    name : str
        The array's name; the string value of the descriptor.
    attrs : dict of str to str, optional
        The variable's attributes; ``attrs['__init__']``, when set, names the
        initializer (a registered name, its ``dumps()`` JSON, or an instance) that
        overrides the choice by suffix.
    global_init : Initializer, optional
        The initializer the whole model was initialised with; set to the first
        initializer that sees the descriptor when left None.
    """

    attrs: dict[str, Any]
    global_init: Initializer | None

    def __new__(
        cls, name: str, attrs: dict[str, Any] | None = None, global_init: Initializer | None = None
    ) -> InitDesc:
        desc = super().__new__(cls, name)
        desc.attrs = attrs or {}
        desc.global_init = global_init
        return desc


# -- the registry: names (lower case) to initializer classes -----------------------
_REGISTRY: dict[str, type] = {}


def _register(klass: _Klass, name: str | None = None) -> _Klass:
    """Put ``klass`` in the registry under ``name`` (its lower-cased class name by
    default), warning when that replaces another class."""
    if not (isinstance(klass, type) and issubclass(klass, Initializer)):
        raise TypeError(f"can only register subclasses of Initializer, not {klass!r}")
    key = (name or klass.__name__).lower()
    old = _REGISTRY.get(key)
    if old is not None and old is not klass:
        warnings.warn(
            f"New initializer {klass.__module__}.{klass.__name__} registered with "
            f"name {key} is overriding existing initializer "
            f"{old.__module__}.{old.__name__}",
            UserWarning,
            stacklevel=3,
        )
    _REGISTRY[key] = klass
    return klass


def register(klass: _Klass) -> _Klass:
    """Register an Initializer subclass so ``create`` and string names find it.

    The registered name is the class name in lower case, which is also the first
    element of the subclass's ``dumps()``. Usable as a class decorator.

    Parameters
    ----------
    klass : type
        A subclass of ``Initializer``.

    Returns
    -------
    type
        ``klass`` itself.

    Examples
    --------
    >>> import symgrad as mx
    >>> @mx.init.register
    ... class Tenths(mx.init.Initializer):
    ...     def _init_weight(self, name, arr):
    ...         arr[:] = 0.1
    >>> type(mx.init.create("tenths")).__name__
    'Tenths'
    """
    return _register(klass)


def alias(*aliases: str) -> Callable[[_Klass], _Klass]:
    """A class decorator registering an Initializer under extra names.

    Parameters
    ----------
    *aliases : str
        Further names (matched without regard to case) for the decorated class.
    """

    def decorate(klass: _Klass) -> _Klass:
        for name in aliases:
            _register(klass, name)
        return klass

    return decorate


def create(*args: Any, **kwargs: Any) -> Initializer:
    """An initializer from a name, a configuration or an instance.

    Parameters
    ----------
    initializer : str, dict or Initializer
        An instance is returned as it is (no further arguments allowed). A string is
        a registered name (any case: ``'xavier'``, ``'zeros'``, ``'ones'``), or the
        JSON of ``dumps()`` (``'["xavier", {"magnitude": 2}]'``) or of a dict. A dict
        holds the name under ``'initializer'`` and the constructor's arguments.
    *args, **kwargs
        Arguments for the constructor of a named initializer.

    Returns
    -------
    Initializer

    Raises
    ------
    AssertionError
        For a name that is not registered (MXNet raises this type here too).
    """
    if args:
        spec, args = args[0], args[1:]
    else:
        spec = kwargs.pop("initializer")
    if isinstance(spec, Initializer):
        if args or kwargs:
            raise AssertionError(
                "initializer is already an instance. Additional arguments are invalid"
            )
        return spec
    if isinstance(spec, dict):
        return create(**spec)
    if not isinstance(spec, str):
        raise AssertionError(f"initializer must be of string type, not {type(spec).__name__}")
    if spec.startswith(("[", "{")):
        if args or kwargs:
            raise AssertionError("a JSON initializer takes no further arguments")
        config = json.loads(spec)
        if isinstance(config, dict):
            return create(**config)
        name, config_kwargs = config
        return create(name, **config_kwargs)
    klass = _REGISTRY.get(spec.lower())
    if klass is None:
        raise AssertionError(
            f"{spec.lower()} is not registered. Please register with initializer.register first"
        )
    return klass(*args, **kwargs)


# -- random draws, from the generator that mx.random.seed seeds ---------------------
def _check_float(arr: NDArray) -> None:
    if np.dtype(arr.dtype).kind != "f":
        raise MXNetError(
            f"random initialisation writes float16, float32 or float64 "
            f"arrays, not {np.dtype(arr.dtype).name}"
        )


def _fill_uniform(arr: NDArray, low: float, high: float) -> None:
    _check_float(arr)
    _random.uniform(low, high, shape=arr.shape, dtype=arr.dtype, out=arr)


def _fill_normal(arr: NDArray, loc: float, scale: float) -> None:
    _check_float(arr)
    _random.normal(loc, scale, shape=arr.shape, dtype=arr.dtype, out=arr)


def _mean_norm(arr: NDArray) -> str:
    """The default verbose statistic: ``norm(arr) / sqrt(arr.size)``."""
    from . import ndarray as nd

    return str((nd.norm(arr) / math.sqrt(arr.size)).asscalar())


# Suffix -> method, tried in order, for descriptors without an ``__init__`` attribute.
_SUFFIX_METHODS = (
    ("weight", "_init_weight"),
    ("bias", "_init_bias"),
    ("gamma", "_init_gamma"),
    ("beta", "_init_beta"),
    ("min", "_init_zero"),
    ("max", "_init_one"),
    ("weight_quantize", "_init_quantized_weight"),
    ("bias_quantize", "_init_quantized_bias"),
)

# The same for plain-string names (the deprecated call), which know more suffixes.
_LEGACY_SUFFIX_METHODS = (
    ("bias", "_init_bias"),
    ("gamma", "_init_gamma"),
    ("beta", "_init_beta"),
    ("weight", "_init_weight"),
    ("moving_mean", "_init_zero"),
    ("moving_var", "_init_one"),
    ("moving_inv_var", "_init_zero"),
    ("moving_avg", "_init_zero"),
    ("min", "_init_zero"),
    ("max", "_init_one"),
)


class Initializer:
    """The base class of initializers.

    Subclasses override ``_init_weight`` (and, where they differ from the defaults,
    ``_init_bias``, ``_init_gamma``...). Calling an initializer with an ``InitDesc``
    and an NDArray fills the array in place, choosing the method from the
    descriptor's ``__init__`` attribute or else from the name's suffix: ``weight``
    -> ``_init_weight``, ``bias`` -> zeros, ``gamma`` -> ones, ``beta`` -> zeros,
    ``min`` -> zeros, ``max`` -> ones; any other name raises ``ValueError``.

    Parameters
    ----------
    **kwargs
        The constructor's arguments, kept for ``dumps()``.
    """

    def __init__(self, **kwargs: Any):
        self._kwargs = kwargs
        self._verbose = False
        self._print_func: Callable[[NDArray], str] | None = None

    def set_verbosity(
        self, verbose: bool = False, print_func: Callable[[NDArray], str] | None = None
    ) -> Initializer:
        """Log each initialised array (at INFO level) with a statistic of it.

        Parameters
        ----------
        verbose : bool
            Whether to log.
        print_func : callable, optional
            The statistic, from the array to a string; by default
            ``norm(arr) / sqrt(arr.size)``.

        Returns
        -------
        Initializer
            ``self``.
        """
        self._verbose = verbose
        self._print_func = print_func if print_func is not None else _mean_norm
        return self

    def _verbose_print(self, desc: str, init: Any, arr: NDArray) -> None:
        if self._verbose and self._print_func is not None:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self) -> str:
        """The initializer as MXNet's JSON: ``'["name", {constructor arguments}]'``.

        ``create`` reads it back.
        """
        return json.dumps([type(self).__name__.lower(), self._kwargs])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Initializer):
            return False
        return type(self) is type(other) and self._kwargs == other._kwargs

    # Equal initializers compare by their arguments, so (as in MXNet) they do not hash.
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, desc: str, arr: NDArray) -> None:
        """Fill ``arr`` in place with the values this initializer gives ``desc``.

        Parameters
        ----------
        desc : InitDesc
            The array's name and attributes. A plain string is the deprecated form
            (a ``DeprecationWarning``), dispatched by a longer list of suffixes.
        arr : NDArray
            The array to write.
        """
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")
        if init:
            # The variable names its own initializer: that one's weight rule applies
            # whatever the suffix.
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        for suffix, method in _SUFFIX_METHODS:
            if desc.endswith(suffix):
                getattr(self, method)(desc, arr)
                self._verbose_print(desc, suffix, arr)
                return
        self._init_default(desc, arr)

    def _legacy_init(self, name: str, arr: NDArray) -> None:
        """Initialise by a plain-string name, as MXNet did before ``InitDesc``."""
        warnings.warn(
            "Calling initializer with init(str, NDArray) has been deprecated. "
            "please use init(mx.init.InitDesc(...), NDArray) instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        if not isinstance(name, str):
            raise TypeError("name must be string")
        if not isinstance(arr, NDArray):
            raise TypeError("arr must be NDArray")
        if name.startswith("upsampling"):
            self._init_bilinear(name, arr)
        elif name.startswith("stn_loc") and name.endswith("weight"):
            self._init_zero(name, arr)
        elif name.startswith("stn_loc") and name.endswith("bias"):
            self._init_loc_bias(name, arr)
        else:
            for suffix, method in _LEGACY_SUFFIX_METHODS:
                if name.endswith(suffix):
                    getattr(self, method)(name, arr)
                    return
            self._init_default(name, arr)

    def _init_bilinear(self, _: str, arr: NDArray) -> None:
        arr[:] = _bilinear_kernel(arr.shape)

    def _init_loc_bias(self, _: str, arr: NDArray) -> None:
        # A spatial transformer's localisation starts at the identity transform.
        if arr.shape[0] != 6:
            raise AssertionError(f"stn_loc bias must have 6 entries, not {arr.shape[0]}")
        arr[:] = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])

    def _init_zero(self, _: str, arr: NDArray) -> None:
        arr[:] = 0.0

    def _init_one(self, _: str, arr: NDArray) -> None:
        arr[:] = 1.0

    def _init_bias(self, _: str, arr: NDArray) -> None:
        arr[:] = 0.0

    def _init_quantized_bias(self, _: str, arr: NDArray) -> None:
        arr[:] = 0

    def _init_gamma(self, _: str, arr: NDArray) -> None:
        arr[:] = 1.0

    def _init_beta(self, _: str, arr: NDArray) -> None:
        arr[:] = 0.0

    def _init_weight(self, name: str, arr: NDArray) -> None:
        raise NotImplementedError("Must override it")

    def _init_quantized_weight(self, _: str, arr: NDArray) -> None:
        # int8 weights drawn uniformly from [-127, 127), as MXNet's randint draws them.
        draws = _random_ops.generator().integers(-127, 127, size=arr.shape)
        arr[:] = draws.astype(np.int8)

    def _init_default(self, name: str, _: NDArray) -> None:
        raise ValueError(
            f"Unknown initialization pattern for {name}. Default initialization is now "
            'limited to "weight", "bias", "gamma" (1.0), and "beta" (0.0). Please use '
            "mx.sym.Variable(init=mx.init.*) to set initialization pattern"
        )


def _bilinear_kernel(shape: tuple[int, ...]) -> np.ndarray:
    """The bilinear-upsampling kernel of ``shape``, laid out as MXNet lays it.

    Element ``i`` of the flattened array gets ``(1 - |x/f - c|) * (1 - |y/f - c|)``
    with ``x = i % shape[3]``, ``y = (i // shape[3]) % shape[2]``,
    ``f = ceil(shape[3] / 2)`` and ``c = (2f - 1 - f % 2) / (2f)``.
    """
    if len(shape) < 4:
        raise IndexError(
            f"the bilinear initializer needs a 4-d (or larger) weight, got shape {shape}"
        )
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    flat = np.arange(int(np.prod(shape)))
    x = flat % shape[3]
    y = (flat // shape[3]) % shape[2]
    return ((1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))).reshape(shape)


# -- constant initializers ----------------------------------------------------------
@alias("zeros")
@register
class Zero(Initializer):
    """Fills weights with 0 (registered as ``'zero'`` and ``'zeros'``)."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: NDArray) -> None:
        arr[:] = 0


@alias("ones")
@register
class One(Initializer):
    """Fills weights with 1 (registered as ``'one'`` and ``'ones'``)."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: NDArray) -> None:
        arr[:] = 1


@register
class Constant(Initializer):
    """Fills weights with ``value``.

    Parameters
    ----------
    value : float or NDArray or numpy.ndarray
        A scalar, or an array broadcast to the weight's shape.
    """

    def __init__(self, value: Any):
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, _: str, arr: NDArray) -> None:
        arr[:] = self.value

    def dumps(self) -> str:
        """The initializer as JSON, an array value written as nested lists."""
        value = self._kwargs["value"]
        if not np.isscalar(value):
            value = value.asnumpy() if isinstance(value, NDArray) else np.asarray(value)
            value = value.tolist()
        return json.dumps([type(self).__name__.lower(), {**self._kwargs, "value": value}])


# -- random initializers ------------------------------------------------------------
@register
class Uniform(Initializer):
    """Draws weights uniformly from ``[-scale, scale)``.

    Parameters
    ----------
    scale : float
        The bound of the range.
    """

    def __init__(self, scale: float = 0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _: str, arr: NDArray) -> None:
        _fill_uniform(arr, -self.scale, self.scale)


@register
class Normal(Initializer):
    """Draws weights from a normal distribution with mean 0 and deviation ``sigma``.

    Parameters
    ----------
    sigma : float
        The standard deviation.
    """

    def __init__(self, sigma: float = 0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _: str, arr: NDArray) -> None:
        _fill_normal(arr, 0.0, self.sigma)


@register
class Orthogonal(Initializer):
    """Fills weights with ``scale`` times an orthogonal matrix.

    The weight is seen as a matrix of ``shape[0]`` rows by ``prod(shape[1:])``
    columns; a random matrix of that shape (uniform on [-1, 1) or standard normal) is
    decomposed by SVD, and the factor with the matrix's shape (rows orthonormal when
    there are fewer rows, columns orthonormal otherwise) is taken.

    Parameters
    ----------
    scale : float
        The factor applied to the orthogonal matrix.
    rand_type : {'uniform', 'normal'}
        The distribution of the random matrix.
    """

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform"):
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, _: str, arr: NDArray) -> None:
        rows = arr.shape[0]
        columns = int(np.prod(arr.shape[1:]))
        if self.rand_type == "uniform":
            draws = _random.uniform(-1.0, 1.0, shape=(rows, columns)).asnumpy()
        elif self.rand_type == "normal":
            draws = _random.normal(0.0, 1.0, shape=(rows, columns)).asnumpy()
        else:
            raise ValueError(f"Unknown random type {self.rand_type!r}: use 'uniform' or 'normal'")
        left, _singular, right = np.linalg.svd(draws, full_matrices=False)
        factor = left if left.shape == draws.shape else right
        arr[:] = self.scale * factor.reshape(arr.shape)


@register
class Xavier(Initializer):
    """Xavier/Glorot initialisation: variance set by the weight's fan-in and fan-out.

    For a weight of shape ``(out, in, *kernel)``, ``fan_in = in * prod(kernel)`` and
    ``fan_out = out * prod(kernel)``; ``factor`` is their mean (``'avg'``), ``fan_in``
    (``'in'``) or ``fan_out`` (``'out'``), and ``scale = sqrt(magnitude / factor)``.
    Weights are drawn uniformly from ``[-scale, scale)`` (``'uniform'``) or from a
    normal distribution with deviation ``scale`` (``'gaussian'``).

    Parameters
    ----------
    rnd_type : {'uniform', 'gaussian'}
        The distribution.
    factor_type : {'avg', 'in', 'out'}
        Which fan sets the scale.
    magnitude : float
        The numerator of the variance rule.

    Raises
    ------
    ValueError
        When applied to an array of fewer than 2 dimensions, or for an unknown
        ``factor_type`` or ``rnd_type``.
    """

    def __init__(self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _init_weight(self, name: str, arr: NDArray) -> None:
        shape = arr.shape
        if len(shape) < 2:
            raise ValueError(
                f"Xavier initializer cannot be applied to vector {name}. It requires at least 2D."
            )
        receptive = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        if self.factor_type == "avg":
            factor = (fan_in + fan_out) / 2.0
        elif self.factor_type == "in":
            factor = fan_in
        elif self.factor_type == "out":
            factor = fan_out
        else:
            raise ValueError("Incorrect factor type")
        scale = np.sqrt(self.magnitude / factor)
        if self.rnd_type == "uniform":
            _fill_uniform(arr, -scale, scale)
        elif self.rnd_type == "gaussian":
            _fill_normal(arr, 0.0, scale)
        else:
            raise ValueError("Unknown random type")


@register
class MSRAPrelu(Xavier):
    """He/MSRA initialisation for PReLU networks: a gaussian Xavier with
    ``magnitude = 2 / (1 + slope**2)``.

    Parameters
    ----------
    factor_type : {'avg', 'in', 'out'}
        Which fan sets the scale.
    slope : float
        The PReLU's initial negative slope.
    """

    def __init__(self, factor_type: str = "avg", slope: float = 0.25):
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope**2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


@register
class Bilinear(Initializer):
    """Fills a 4-d weight with the bilinear-upsampling kernel (for a Deconvolution
    that upsamples): ``(1 - |x/f - c|) * (1 - |y/f - c|)`` at column ``x`` and row
    ``y`` of each kernel, with ``f = ceil(width / 2)`` and
    ``c = (2f - 1 - f % 2) / (2f)``."""

    def __init__(self) -> None:
        super().__init__()

    def _init_weight(self, _: str, arr: NDArray) -> None:
        arr[:] = _bilinear_kernel(arr.shape)


@register
class LSTMBias(Initializer):
    """Zeros, except the forget gate's quarter (the second of four) of an LSTM's
    bias, which gets ``forget_bias``.

    Parameters
    ----------
    forget_bias : float
        The forget gate's initial bias.
    """

    def __init__(self, forget_bias: float = 1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, _: str, arr: NDArray) -> None:
        arr[:] = 0.0
        hidden = int(arr.shape[0] / 4)
        arr[hidden : 2 * hidden] = self.forget_bias


# -- initializers of several parameters ---------------------------------------------
class Mixed:
    """Initialise each array with the initializer of the first pattern its name
    matches (``re.match``, so patterns anchor at the name's start).

    Parameters
    ----------
    patterns : list of str
        Regular expressions; end with ``'.*'`` to give a default.
    initializers : list of Initializer
        One per pattern.
    """

    def __init__(self, patterns: Sequence[str], initializers: Sequence[Any]):
        if len(patterns) != len(initializers):
            raise AssertionError("Mixed needs one initializer per pattern")
        self.map = list(zip([re.compile(pattern) for pattern in patterns], initializers))

    def __call__(self, name: str, arr: NDArray) -> None:
        """Initialise ``arr`` with the initializer of the first pattern ``name``
        matches; ``ValueError`` when none does."""
        for pattern, init in self.map:
            if pattern.match(name):
                init(name, arr)
                return
        raise ValueError(
            f"Parameter name {name} did not match any pattern. Consider add a "
            '".*" pattern at the and with default Initializer.'
        )


class Load:
    """Initialise arrays from saved values, by name.

    Parameters
    ----------
    param : str or dict of str to NDArray
        A file written by ``nd.save`` or its dict; an ``arg:`` or ``aux:`` prefix on
        a name (Module checkpoints) is dropped.
    default_init : Initializer, optional
        Used for names not in ``param``.
    verbose : bool
        Log which arrays were loaded and which defaulted.
    """

    def __init__(
        self, param: str | dict[str, Any], default_init: Any = None, verbose: bool = False
    ):
        if isinstance(param, str):
            from . import ndarray as nd

            param = nd.load(param)
        if not isinstance(param, dict):
            raise AssertionError("Load needs a dict of name to array (or a file of one)")
        self.param = {
            name[4:] if name.startswith(("arg:", "aux:")) else name: value
            for name, value in param.items()
        }
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name: str, arr: NDArray) -> None:
        """Copy the saved value of ``name`` into ``arr``, or use the default
        initializer when there is none."""
        if name in self.param:
            saved = self.param[name]
            if tuple(arr.shape) != tuple(saved.shape):
                raise AssertionError(
                    f"Parameter {name} cannot be initialized from loading. "
                    f"Shape mismatch, target {arr.shape} vs loaded "
                    f"{saved.shape}"
                )
            arr[:] = saved
            if self.verbose:
                logging.info("Initialized %s by loading", name)
            return
        if self.default_init is None:
            raise AssertionError(
                f"Cannot Initialize {name}. Not found in loaded param and no "
                "default Initializer is provided."
            )
        self.default_init(name, arr)
        if self.verbose:
            logging.info("Initialized %s by default", name)
