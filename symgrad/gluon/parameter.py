"""Gluon Parameters: named arrays that own their gradient buffers.

A :class:`Parameter` holds one NDArray (symgrad computes on one CPU context) with
its gradient attached per ``grad_req``, so ``autograd.backward`` writes straight
into ``param.grad()``. A shape may hold 0 for a size not known yet; with
``allow_deferred_init`` the array is made when the first forward fills it in.
:class:`ParameterDict` is the name -> Parameter mapping that Blocks share.

>>> import symgrad as mx
>>> p = mx.gluon.Parameter("w", shape=(2, 3))
>>> p.initialize(init=mx.init.One())
>>> float(p.data().asnumpy().sum())
6.0
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .. import _state, autograd, initializer, symbol
from .. import ndarray as nd
from ..base import MXNetError
from ..context import Context, check_context, cpu
from ..ndarray.ndarray import NDArray

_GRAD_REQS = ("write", "add", "null")


class DeferredInitializationError(MXNetError):
    """A Parameter's data was asked for before its shape was known (it is made at
    the first forward, which infers the shape)."""


def _contexts(ctx: Any) -> list[Context]:
    """``ctx`` as a list of CPU contexts (the one kind symgrad computes on)."""
    if ctx is None:
        return [cpu()]
    ctxs = list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
    for c in ctxs:
        check_context(c)
    return [Context(c) for c in ctxs]


def _shape_known(shape: tuple[int, ...] | None) -> bool:
    return shape is not None and all(size > 0 for size in shape)


class Parameter:
    """A named weight of a Block, with its gradient buffer.

    Parameters
    ----------
    name : str
        Its full name (the Block's prefix and the local name), the key in files.
    grad_req : {'write', 'add', 'null'}
        How backward stores its gradient: overwrite, accumulate, or not at all.
    shape : int or tuple of int, optional
        Its shape; 0 marks a size inferred at the first forward.
    dtype : numpy dtype or str
        Its element type (float32 by default).
    lr_mult, wd_mult : float
        Multipliers of the optimizer's learning rate and weight decay.
    init : Initializer or str, optional
        Its own initializer, used before the one given to ``initialize``.
    allow_deferred_init : bool
        Whether ``initialize`` may wait for the shape to be known.
    differentiable : bool
        False makes ``grad_req`` 'null' for good (auxiliary states).
    """

    def __init__(
        self,
        name: str,
        grad_req: str = "write",
        shape: Any = None,
        dtype: Any = np.float32,
        lr_mult: float = 1.0,
        wd_mult: float = 1.0,
        init: Any = None,
        allow_deferred_init: bool = False,
        differentiable: bool = True,
        stype: str = "default",
        grad_stype: str = "default",
    ):
        if stype != "default" or grad_stype != "default":
            raise MXNetError(
                f"Parameter {name!r}: sparse storage ({stype!r}/{grad_stype!r}) "
                "is not supported by symgrad; use 'default'"
            )
        self.name = name
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        self._shape = None if shape is None else tuple(int(s) for s in shape)
        # kept as given, as MXNet keeps it ('float32', np.float32...): it prints so
        # and compares equal to what the user wrote; np.dtype(self.dtype) where a
        # numpy dtype is needed
        np.dtype(dtype)  # a bad dtype fails here, not at initialisation
        self.dtype = dtype
        self.lr_mult = lr_mult
        self.wd_mult = wd_mult
        self.init = init
        self._allow_deferred_init = allow_deferred_init
        self._differentiable = differentiable
        self._grad_req = grad_req if differentiable else "null"
        if self._grad_req not in _GRAD_REQS:
            raise ValueError(
                f"Parameter {name!r}: grad_req must be one of {_GRAD_REQS}, not {grad_req!r}"
            )
        self._data: NDArray | None = None
        self._ctx: list[Context] = [cpu()]
        # (init, ctx, default_init, data) while waiting for the shape
        self._deferred_init: tuple = ()
        self._var: symbol.Symbol | None = None  # made once: every trace shares it

    def __repr__(self) -> str:
        return f"Parameter {self.name} (shape={self.shape}, dtype={self.dtype})"

    # -- shape and gradient requirement ---------------------------------------
    @property
    def shape(self) -> tuple[int, ...] | None:
        """The shape, with 0 for sizes not known yet."""
        return self._shape

    @shape.setter
    def shape(self, new_shape: Any) -> None:
        new_shape = tuple(int(s) for s in new_shape)
        if self._shape is not None:
            compatible = len(self._shape) == len(new_shape) and all(
                old in (0, new) for old, new in zip(self._shape, new_shape)
            )
            if not compatible:
                raise MXNetError(
                    f"Parameter {self.name!r}: expected shape {new_shape} is "
                    f"incompatible with given shape {self._shape}"
                )
        self._shape = new_shape

    @property
    def grad_req(self) -> str:
        """'write', 'add' or 'null': how backward stores this parameter's gradient."""
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req: str) -> None:
        if req not in _GRAD_REQS:
            raise ValueError(
                f"Parameter {self.name!r}: grad_req must be one of {_GRAD_REQS}, not {req!r}"
            )
        if not self._differentiable:
            req = "null"
        if self._grad_req == req:
            return
        self._grad_req = req
        if self._data is not None:
            self._attach_grad()

    # -- initialisation -------------------------------------------------------
    def initialize(
        self,
        init: Any = None,
        ctx: Any = None,
        default_init: Any = None,
        force_reinit: bool = False,
    ) -> None:
        """Make the array and fill it: with ``init``, else this parameter's own
        ``init``, else ``default_init`` (Uniform by default). Waits for the first
        forward when the shape is not known yet and deferral is allowed."""
        if default_init is None:
            default_init = initializer.Uniform()
        if self._data is not None and not force_reinit:
            warnings.warn(
                f"Parameter '{self.name}' is already initialized, ignoring. "
                "Set force_reinit=True to re-initialize.",
                stacklevel=2,
            )
            return
        self._data = None
        ctxs = _contexts(ctx)
        if init is None:
            init = default_init if self.init is None else self.init
        if not _shape_known(self._shape):
            if self._allow_deferred_init:
                self._deferred_init = (init, ctxs, default_init, None)
                return
            raise ValueError(
                f"Cannot initialize Parameter '{self.name}' because it has "
                f"invalid shape: {self._shape}."
            )
        self._deferred_init = (init, ctxs, default_init, None)
        self._finish_deferred_init()

    def _finish_deferred_init(self) -> None:
        """Make the array now that the shape is known (a no-op if not deferred)."""
        if not self._deferred_init:
            return
        init, ctxs, default_init, data = self._deferred_init
        self._deferred_init = ()
        if not _shape_known(self._shape):
            raise DeferredInitializationError(
                f"Cannot initialize Parameter '{self.name}' because it has invalid shape: "
                f"{self._shape}. Please specify in_units, in_channels, etc for `Block`s."
            )
        with autograd.pause():
            if data is None:
                data = nd.zeros(self._shape, dtype=self.dtype)
                # the parameter's own initializer travels in the description, as
                # MXNet does, so that the global one can defer to it
                initializer.create(default_init)(
                    initializer.InitDesc(self.name, {"__init__": init}), data
                )
            self._init_impl(data, ctxs)

    def _init_impl(self, data: Any, ctxs: list[Context]) -> None:
        self._ctx = list(ctxs)
        array = data if isinstance(data, NDArray) else nd.array(data, dtype=self.dtype)
        self._data = NDArray(np.array(array.asnumpy(), dtype=self.dtype))
        self._attach_grad()

    def _attach_grad(self) -> None:
        """Give the array a zero gradient buffer per ``grad_req`` ('null': none)."""
        assert self._data is not None
        if self._grad_req == "null":
            self._data._grad = None
            self._data._grad_req = "null"
            self._data._entry = None
            return
        self._data.attach_grad(self._grad_req)

    def _load_init(
        self, data: Any, ctx: Any = None, cast_dtype: bool = False, dtype_source: str = "current"
    ) -> None:
        """Take loaded values (checking shape and dtype against this parameter)."""
        data = data if isinstance(data, NDArray) else nd.array(data)
        if self._shape is not None:
            fits = len(self._shape) == len(data.shape) and all(
                mine in (0, theirs) for mine, theirs in zip(self._shape, data.shape)
            )
            if not fits:
                raise IncompatibleParameterError(
                    f"Failed loading Parameter '{self.name}' from saved params: shape "
                    f"incompatible expected {self._shape} vs saved {data.shape}"
                )
        self._shape = tuple(data.shape)
        if np.dtype(self.dtype) != np.dtype(data.dtype):
            if not cast_dtype:
                raise IncompatibleParameterError(
                    f"Failed loading Parameter '{self.name}' from saved params: dtype "
                    f"incompatible expected {np.dtype(self.dtype).name} vs saved "
                    f"{np.dtype(data.dtype).name}. Set cast_dtype=True to cast the dtype of "
                    "saved params."
                )
            if dtype_source == "saved":
                self.dtype = np.dtype(data.dtype).type
            data = data.astype(self.dtype)
        if self._data is None:
            ctxs = self._deferred_init[1] if self._deferred_init else _contexts(ctx)
            self._deferred_init = ()
            self._init_impl(data, ctxs)
        else:
            self.set_data(data)

    # -- access ---------------------------------------------------------------
    def _check_and_get(self) -> NDArray:
        if self._data is not None:
            return self._data
        if self._deferred_init:
            raise DeferredInitializationError(
                f"Parameter '{self.name}' has not been initialized yet because "
                "initialization was deferred. Actual initialization happens during the "
                "first forward pass. Please pass one batch of data through the network "
                "before accessing Parameters."
            )
        raise RuntimeError(
            f"Parameter '{self.name}' has not been initialized. Note that you "
            "should initialize parameters and create Trainer with "
            "Block.collect_params() instead of Block.params because the later "
            "does not include Parameters of nested child Blocks"
        )

    def data(self, ctx: Any = None) -> NDArray:
        """The parameter's array (the one CPU copy)."""
        if ctx is not None:  # every hybridized call asks for every parameter
            check_context(ctx)
        return self._check_and_get()

    def list_data(self) -> list[NDArray]:
        """The arrays on every context: one here."""
        return [self._check_and_get()]

    def grad(self, ctx: Any = None) -> NDArray:
        """The gradient buffer backward writes (per ``grad_req``)."""
        if ctx is not None:
            check_context(ctx)
        data = self._check_and_get()
        if data._grad is None:
            raise RuntimeError(
                f"Cannot get gradient array for Parameter '{self.name}' because grad_req='null'"
            )
        return data._grad

    def list_grad(self) -> list[NDArray]:
        """The gradient buffers on every context: one here."""
        return [self.grad()]

    def list_ctx(self) -> list[Context]:
        """The contexts the parameter lives on (those ``initialize`` was given
        while it waits for its shape); an error before ``initialize``, as MXNet."""
        if self._data is None:
            if self._deferred_init:
                return list(self._deferred_init[1])
            raise RuntimeError(f"Parameter '{self.name}' has not been initialized")
        return list(self._ctx)

    def set_data(self, data: Any) -> None:
        """Overwrite the values in place (the gradient buffer is kept)."""
        values = data.asnumpy() if isinstance(data, NDArray) else np.asarray(data)
        self.shape = values.shape
        if self._data is None:
            if not self._deferred_init:
                raise RuntimeError(f"Parameter '{self.name}' has not been initialized")
            init, ctxs, default_init, _ = self._deferred_init
            self._deferred_init = (init, ctxs, default_init, nd.array(values, dtype=self.dtype))
            return
        with autograd.pause():
            self._data[:] = values.astype(self.dtype, copy=False)

    def zero_grad(self) -> None:
        """Set the gradient buffer to zeros (for grad_req='add')."""
        if self._data is not None and self._data._grad is not None:
            self._data._grad._data[...] = 0
            _state.in_place_writes += 1  # a step computed ahead read the old gradient

    def reset_ctx(self, ctx: Any) -> None:
        """Move to ``ctx`` (only CPU contexts exist here)."""
        self._ctx = _contexts(ctx)
        if self._deferred_init:
            init, _, default_init, data = self._deferred_init
            self._deferred_init = (init, self._ctx, default_init, data)

    def cast(self, dtype: Any) -> None:
        """Change the element type of the values and of the gradient (both keep
        their values, as MXNet casts each)."""
        np.dtype(dtype)
        self.dtype = dtype  # as given (see __init__)
        self._var = None
        if self._data is None:
            return
        old = self._data
        self._data = NDArray(old.asnumpy().astype(self.dtype))
        self._attach_grad()
        if old._grad is not None and self._data._grad is not None:
            self._data._grad._data[...] = old._grad.asnumpy()

    def var(self) -> symbol.Symbol:
        """The Symbol variable standing for this parameter in traced graphs (one
        variable, made at the first call, as MXNet keeps one)."""
        if self._var is None:
            shape = None if self._shape is None else tuple(self._shape)
            self._var = symbol.var(
                self.name,
                shape=shape,
                dtype=self.dtype,
                lr_mult=self.lr_mult,
                wd_mult=self.wd_mult,
                init=self.init,
            )
        return self._var

    def _reduce(self) -> NDArray:
        """The values to save: a copy of the one array."""
        return self._check_and_get().copy()


class Constant(Parameter):
    """A Parameter with fixed values and no gradient (``grad_req='null'``)."""

    def __init__(self, name: str, value: Any):
        values = value.asnumpy() if isinstance(value, NDArray) else np.asarray(value)
        if not isinstance(value, (NDArray, np.ndarray)):
            values = values.astype(np.float32)  # as mx.nd.array makes a list float32
        self.value = nd.array(values, dtype=values.dtype)
        init = initializer.Constant(self.value.asnumpy())
        super().__init__(
            name,
            grad_req="null",
            shape=values.shape,
            dtype=values.dtype.type,
            init=init,
            differentiable=False,
        )

    def __repr__(self) -> str:
        # MXNet's dtype here is the values' numpy type: <class 'numpy.float32'>
        return f"Constant {self.name} (shape={self.shape}, dtype={self.dtype})"


class ParameterDict:
    """Parameters by full name, with a shared ``prefix`` (MXNet's ParameterDict).

    ``get(name, **kwargs)`` finds ``prefix + name`` (in this dict, or in the
    ``shared`` dict it was made with) or creates it.
    """

    def __init__(self, prefix: str = "", shared: ParameterDict | None = None):
        self._prefix = prefix
        self._params: OrderedDict[str, Parameter] = OrderedDict()
        self._shared = shared

    def __repr__(self) -> str:
        title = f"{self._prefix} (" if self._prefix else "("
        body = "\n".join(f"  {param}" for param in self.values())
        return f"{title}\n{body}\n)"

    def __getitem__(self, key: str) -> Parameter:
        return self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, key: object) -> bool:
        return key in self._params

    def items(self) -> Iterable[tuple[str, Parameter]]:
        """(name, Parameter) pairs, in creation order."""
        return self._params.items()

    def keys(self) -> Iterable[str]:
        """The full names."""
        return self._params.keys()

    def values(self) -> Iterable[Parameter]:
        """The Parameters."""
        return self._params.values()

    @property
    def prefix(self) -> str:
        """The prefix every name ``get`` makes starts with."""
        return self._prefix

    def _get_impl(self, name: str) -> Parameter | None:
        if name in self._params:
            return self._params[name]
        if self._shared is not None and name in self._shared._params:
            self._params[name] = self._shared._params[name]
            return self._params[name]
        return None

    def get(self, name: str, **kwargs: Any) -> Parameter:
        """The Parameter ``prefix + name``, created with ``kwargs`` if new. For an
        existing one, given attributes must agree (a 0 in a known shape is filled)."""
        name = self._prefix + name
        param = self._get_impl(name)
        if param is None:
            param = Parameter(name, **kwargs)
            self._params[name] = param
            return param
        for key, value in kwargs.items():
            existing = getattr(param, key, None)
            if key == "shape" and value is not None:
                if existing is None:
                    param.shape = value
                    continue
                value = (value,) if isinstance(value, int) else tuple(value)
                if len(value) == len(existing) and all(
                    a in (0, b) or b == 0 for a, b in zip(value, existing)
                ):
                    param.shape = tuple(b if b else a for a, b in zip(value, existing))
                    continue
            elif key == "dtype" and existing is not None and np.dtype(value) == np.dtype(existing):
                continue
            if existing is not None and value is not None and existing != value:
                raise MXNetError(
                    f"Cannot retrieve Parameter '{name}' because desired "
                    f"attribute does not match with stored for attribute "
                    f"'{key}': desired '{value}' vs stored '{existing}'."
                )
            if existing is None and value is not None:
                setattr(param, key, value)
        return param

    def get_constant(self, name: str, value: Any = None) -> Constant:
        """The Constant ``prefix + name``, created from ``value`` if new."""
        name = self._prefix + name
        param = self._get_impl(name)
        if param is None:
            if value is None:
                raise KeyError(
                    f"No constant named '{name}'. Please specify value if you "
                    "want to create a new constant."
                )
            param = Constant(name, value)
            self._params[name] = param
        elif not isinstance(param, Constant):
            raise MXNetError(f"Parameter '{name}' already exists but it is not a constant.")
        return param  # type: ignore[return-value]

    def update(self, other: ParameterDict) -> None:
        """Add the Parameters of ``other`` (a name bound to another object is an error)."""
        for name, param in other.items():
            if name in self._params and self._params[name] is not param:
                raise MXNetError(
                    f"Cannot update self with other because they have different "
                    f"Parameters with the same name '{name}'"
                )
        for name, param in other.items():
            self._params[name] = param

    def initialize(
        self, init: Any = None, ctx: Any = None, verbose: bool = False, force_reinit: bool = False
    ) -> None:
        """Initialize every Parameter, with ``init`` as the default (Uniform if None)."""
        if init is None:
            init = initializer.Uniform()
        if verbose and hasattr(init, "set_verbosity"):
            init.set_verbosity(verbose=verbose)
        for param in self.values():
            param.initialize(None, ctx, init, force_reinit=force_reinit)

    def zero_grad(self) -> None:
        """Zero every gradient buffer."""
        for param in self.values():
            param.zero_grad()

    def reset_ctx(self, ctx: Any) -> None:
        """Move every Parameter to ``ctx``."""
        for param in self.values():
            param.reset_ctx(ctx)

    def list_ctx(self) -> list[Context]:
        """The contexts the Parameters live on."""
        found: list[Context] = []
        for param in self.values():
            for c in param.list_ctx():
                if c not in found:
                    found.append(c)
        return found

    def setattr(self, name: str, value: Any) -> None:
        """Set attribute ``name`` (e.g. ``grad_req``, ``lr_mult``) on every Parameter."""
        for param in self.values():
            setattr(param, name, value)

    def save(self, filename: str, strip_prefix: str = "") -> None:
        """Write the values to ``filename`` in MXNet's NDArray file format, named by
        their full names less ``strip_prefix``."""
        arrays = {}
        for param in self.values():
            if not param.name.startswith(strip_prefix):
                raise ValueError(
                    f"Prefix '{strip_prefix}' is to be striped before saving, "
                    f"but Parameter's name '{param.name}' does not start with "
                    f"'{strip_prefix}'. This may be due to your Block shares "
                    "parameters from other Blocks or you forgot to use "
                    "'with name_scope()' when creating child blocks."
                )
            arrays[param.name[len(strip_prefix) :]] = param._reduce()
        nd.save(filename, arrays)

    def load(
        self,
        filename: str,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        cast_dtype: bool = False,
        dtype_source: str = "current",
    ) -> None:
        """Read values written by ``save`` (or MXNet's ``export``: 'arg:'/'aux:' keys)
        into the Parameters, each name prefixed with ``restore_prefix``."""
        loaded = nd.load(filename)
        if not isinstance(loaded, dict):
            raise MXNetError(f"{filename!r} holds an unnamed list of arrays, not named parameters")
        self.load_dict(
            loaded,
            ctx,
            allow_missing,
            ignore_extra,
            restore_prefix,
            filename,
            cast_dtype,
            dtype_source,
        )

    def load_dict(
        self,
        param_dict: dict,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        filename: str | None = None,
        cast_dtype: bool = False,
        dtype_source: str = "current",
    ) -> None:
        """Load the arrays of ``param_dict`` (name -> NDArray, 'arg:'/'aux:' keys
        allowed) into the Parameters, each name prefixed with ``restore_prefix``;
        ``filename`` only names the source in errors."""
        values = {}
        for key, value in param_dict.items():
            if key.startswith(("arg:", "aux:")):
                key = key[4:]
            values[restore_prefix + key] = value
        check_loaded_names(
            self._params, values, filename or "<dict>", allow_missing, ignore_extra, "ParameterDict"
        )
        for name, value in values.items():
            if name in self._params:
                self._params[name]._load_init(
                    value, ctx, cast_dtype=cast_dtype, dtype_source=dtype_source
                )


class IncompatibleParameterError(MXNetError, AssertionError):
    """Loaded values whose shape or dtype the Parameter cannot take (an
    AssertionError, as MXNet's check is an assert)."""


class MissingParameterError(MXNetError, AssertionError):
    """A parameter file lacks a Parameter being loaded (an AssertionError, as
    MXNet's check is an assert)."""


class UnexpectedParameterError(MXNetError, ValueError):
    """A parameter file holds a name the loading Block or ParameterDict does not
    have (a ValueError, as MXNet raises)."""


def check_loaded_names(
    params: dict[str, Parameter],
    loaded: Iterable[str],
    filename: str,
    allow_missing: bool,
    ignore_extra: bool,
    owner: str,
) -> None:
    """Raise MXNet's errors for the Parameters of ``params`` that none of the
    ``loaded`` names gives (a shared Parameter counts as given under any of its
    names: a deduplicated file holds it once), unless ``allow_missing``, and for
    names ``params`` lacks, unless ``ignore_extra``. ``owner`` names what loads."""
    loaded = list(loaded)
    if not allow_missing:
        given = {id(params[name]) for name in loaded if name in params}
        missing = [name for name, param in params.items() if id(param) not in given]
        if missing:
            raise MissingParameterError(
                f"Parameter {missing[0]!r} is missing in file {filename!r} (missing: "
                f"{missing}), which contains parameters: {sorted(loaded)}. Set "
                "allow_missing=True to ignore missing parameters."
            )
    if not ignore_extra:
        extra = [name for name in loaded if name not in params]
        if extra:
            raise UnexpectedParameterError(
                f"Parameter {extra[0]!r} loaded from file {filename!r} is not present in "
                f"{owner}, which contains parameters {sorted(params)}. Set "
                "ignore_extra=True to ignore."
            )


def select_parameters(params: ParameterDict, select: str | None) -> ParameterDict:
    """The Parameters of ``params`` whose names match the regular expression
    ``select`` from their start (all of them for None), in a dict with the same
    prefix."""
    chosen = ParameterDict(params.prefix)
    pattern = None if select is None else re.compile(select)
    for name, param in params.items():
        if pattern is None or pattern.match(name):
            chosen._params[name] = param
    return chosen


__all__ = ["Parameter", "Constant", "ParameterDict", "DeferredInitializationError"]
