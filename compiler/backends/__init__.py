"""The backend seam: what turns a closed graph into something that runs.

A :class:`Backend` compiles the passes' output into an :class:`Executable`.
Backends are registered by name; the one in force is chosen by
:func:`set_backend` (or ``SYMGRAD_BACKEND`` through :mod:`..settings`), and the
test utilities run every op through each registered backend. Two ship:

- ``interpreter``: the numpy reference, op by op (:mod:`.interpreter`);
- ``numba`` (also called ``compiled``, the default): fused kernels, row
  kernels and one whole-program entry, compiled by numba (:mod:`.numba`).

A new backend (``numba_cuda``, say) is a sibling folder holding a class with a
``compile`` method, registered with :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .. import settings

if TYPE_CHECKING:
    from ..driver import PassRun


@runtime_checkable
class Executable(Protocol):
    """A compiled program graph: ``executable(args, out=None) -> outputs``.

    ``args`` are the graph's inputs in order; ``out`` optionally names, per
    output, an array the caller gives up for the result (an executable may
    compute into it and return it, or return a new array). An output that is
    structurally zero is None.
    """

    def __call__(self, args: Sequence[Any], out: Sequence[Any] | None = None) -> list[Any]:
        """The outputs for ``args``."""
        ...

    def specialised(self, args: Sequence[Any]) -> Callable[..., Any] | None:
        """A faster ``fast(args, outs=None)`` for inputs of exactly the classes,
        shapes and dtypes of ``args`` (the caller checks that), or None. ``fast``
        returns None where the general call must run."""
        ...

    @property
    def direct(self) -> Callable[..., Any] | None:
        """A cheaper ``direct(args, out=None)`` once the program is one small
        compiled kernel (it returns None where the general call must run), or None."""
        ...

    def explain(self) -> str:
        """A readable account of what runs: the graph after the passes, kernels."""
        ...

    def wait(self) -> None:
        """Block until any background compilation of this program is done."""
        ...


class Backend(Protocol):
    """Compiles the passes' output into an :class:`Executable`."""

    name: str

    def compile(self, passes: PassRun) -> Executable:
        """An executable for the graph of ``passes``. The backend asks
        ``passes`` for the graph after the pass it needs (``passes.after(name)``,
        ``passes.final()``), when it needs it: the interpreter answers after
        simplification, the numba backend fuses only once compiling pays."""
        ...


# name -> "module:attribute" of the backend class (imported on first use: numba
# takes a second to import and an interpreter-only process never needs it)
_REGISTERED: dict[str, str | Callable[[], Backend]] = {
    "interpreter": "symgrad_compiler.backends.interpreter:InterpreterBackend",
    "numba": "symgrad_compiler.backends.numba:NumbaBackend",
}
# other names a backend is known by
ALIASES = {"compiled": "numba"}
_instances: dict[str, Backend] = {}
_lock = threading.Lock()


def register_backend(name: str, factory: str | Callable[[], Backend]) -> None:
    """Make a backend available as ``name``: ``factory`` makes it (a callable, or
    ``"module:attribute"`` imported on first use)."""
    with _lock:
        _REGISTERED[name] = factory
        _instances.pop(name, None)


def unregister_backend(name: str) -> None:
    """Remove a backend registered with :func:`register_backend`."""
    if name in ("interpreter", "numba"):
        raise ValueError(f"the {name!r} backend ships with the compiler and stays registered")
    with _lock:
        _REGISTERED.pop(name, None)
        _instances.pop(name, None)


def backend_names() -> tuple[str, ...]:
    """Every registered backend name, aliases included."""
    return (*_REGISTERED, *ALIASES)


def canonical_name(name: str) -> str:
    """``name`` with aliases resolved; ValueError naming the choices if unknown."""
    name = ALIASES.get(name, name)
    if name not in _REGISTERED:
        raise ValueError(f"backend must be one of {backend_names()}, not {name!r}")
    return name


def get_backend(name: str | None = None) -> Backend:
    """The backend registered as ``name`` (default: the one in force)."""
    name = canonical_name(backend() if name is None else name)
    found = _instances.get(name)
    if found is not None:
        return found
    with _lock:
        factory = _REGISTERED[name]
        if isinstance(factory, str):
            module, attribute = factory.split(":")
            factory = getattr(importlib.import_module(module), attribute)
        found = _instances.setdefault(name, factory())
    return found


def set_backend(name: str | None) -> None:
    """Choose the backend new programs are compiled by: ``'compiled'`` (``numba``),
    ``'interpreter'`` (the numpy reference) or any registered name; None goes
    back to ``SYMGRAD_BACKEND`` (default compiled).

    >>> set_backend("interpreter"); backend()
    'interpreter'
    >>> set_backend(None)
    """
    if name is not None:
        canonical_name(name)
    settings.current().chosen_backend = name


def backend() -> str:
    """The backend in force, by the name it was chosen with: :func:`set_backend`'s
    choice, else ``SYMGRAD_BACKEND`` (``compiled`` by default)."""
    chosen = settings.current().chosen_backend
    if chosen is not None:
        return chosen
    name = settings.current().backend
    canonical_name(name)
    return name


__all__ = [
    "ALIASES",
    "Backend",
    "Executable",
    "backend",
    "backend_names",
    "canonical_name",
    "get_backend",
    "register_backend",
    "set_backend",
    "unregister_backend",
]
