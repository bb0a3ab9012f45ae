"""MXNet's ``mx.util``: the NumPy-shape switch and small helpers.

In MXNet 1.x, *NumPy shape semantics* decide what ``()`` and ``0`` mean in a
shape: unknown (the legacy default) or a scalar and a zero-size axis. The
switch is per thread, off by default, and set with :func:`set_np_shape`, the
:func:`np_shape` scope or the :func:`use_np_shape` decorator. symgrad keeps the
switch exactly so (scripts read it back with :func:`is_np_shape`); its arrays
hold scalars and zero-size axes in both modes.

NumPy *array* semantics (``mx.np``/``mx.npx``) are not part of symgrad:
:func:`is_np_array` is always False.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "get_gpu_count",
    "getenv",
    "is_np_array",
    "is_np_shape",
    "np_shape",
    "set_module",
    "set_np_shape",
    "setenv",
    "use_np_shape",
]

T = TypeVar("T")

_NP_SHAPE: contextvars.ContextVar[bool] = contextvars.ContextVar("symgrad_np_shape", default=False)


def is_np_shape() -> bool:
    """Whether NumPy shape semantics are on in this thread.

    >>> is_np_shape()
    False
    """
    return _NP_SHAPE.get()


def set_np_shape(active: bool) -> bool:
    """Turn NumPy shape semantics on or off for this thread; returns the
    previous state.

    >>> set_np_shape(True), is_np_shape(), set_np_shape(False)
    (False, True, True)
    """
    previous = _NP_SHAPE.get()
    _NP_SHAPE.set(bool(active))
    return previous


def is_np_array() -> bool:
    """Whether NumPy array semantics (``mx.np``) are on: never, in symgrad."""
    return False


class _NumpyShapeScope:
    """``with np_shape(active):`` sets the switch for the block and restores it;
    the scope also decorates a function."""

    def __init__(self, active: bool = True):
        self._active = bool(active)
        self._previous: list[bool] = []

    def __enter__(self) -> _NumpyShapeScope:
        self._previous.append(set_np_shape(self._active))
        return self

    def __exit__(self, *exc: Any) -> None:
        set_np_shape(self._previous.pop())

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            with _NumpyShapeScope(self._active):
                return func(*args, **kwargs)

        return scoped


def np_shape(active: bool = True) -> _NumpyShapeScope:
    """A scope with NumPy shape semantics on (or off, ``active=False``).

    >>> with np_shape():
    ...     is_np_shape()
    True
    >>> is_np_shape()
    False
    """
    return _NumpyShapeScope(active)


def use_np_shape(func: T) -> T:
    """Decorate a function, or every method, static/class method and property
    of a class, so that it runs with NumPy shape semantics on.

    >>> @use_np_shape
    ... def inside():
    ...     return is_np_shape()
    >>> inside(), is_np_shape()
    (True, False)
    """
    if inspect.isclass(func):
        for name, member in list(vars(func).items()):
            wrapped = _scoped_member(member)
            if wrapped is not None:
                setattr(func, name, wrapped)
        return func
    if callable(func):
        return np_shape(True)(func)
    raise TypeError(f"use_np_shape can decorate a function or a class, not {type(func).__name__}")


def _scoped_member(member: Any) -> Any:
    """``member`` of a class body wrapped in the NumPy-shape scope (None: leave it)."""
    scope = np_shape(True)
    if isinstance(member, staticmethod):
        return staticmethod(scope(member.__func__))
    if isinstance(member, classmethod):
        return classmethod(scope(member.__func__))
    if isinstance(member, property):
        return property(
            *(scope(f) if f is not None else None for f in (member.fget, member.fset, member.fdel)),
            doc=member.__doc__,
        )
    if inspect.isfunction(member):
        return scope(member)
    return None


def get_gpu_count() -> int:
    """The number of GPUs symgrad can use: 0."""
    return 0


def getenv(name: str) -> str | None:
    """The value of the environment variable ``name`` (None if unset)."""
    return os.environ.get(name)


def setenv(name: str, value: str | None) -> None:
    """Set (or, with None, unset) the environment variable ``name``."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)


def set_module(module: str) -> Callable[[T], T]:
    """A decorator setting ``__module__`` of a function or class to ``module``."""

    def decorate(func: T) -> T:
        if module is not None:
            func.__module__ = module
        return func

    return decorate
