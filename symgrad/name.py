"""``mx.name``: how symbols are named (MXNet's ``NameManager`` and ``Prefix``).

A symbol given a ``name`` keeps it; an unnamed one gets the op's name and a
counter (``fullyconnected0``). Inside ``with mx.name.Prefix("net_"):`` (which a
Gluon block's ``name_scope`` opens) every name, given or made, starts with the
prefix, so traced layers name their nodes ``dense0_fwd`` as MXNet does.

>>> import symgrad as mx
>>> with mx.name.Prefix("net_"):
...     mx.sym.relu(mx.sym.var("x"), name="act").name
'net_act'
"""

from __future__ import annotations

import threading
from typing import Any

_local = threading.local()


class _CurrentManager(type):
    @property
    def current(cls) -> NameManager:
        """The manager of this thread's innermost ``with`` block, else the thread's
        own default manager: each thread counts names from 0, as in MXNet. It can
        be assigned (``NameManager.current = NameManager()``), for this thread."""
        manager = getattr(_local, "current", None)
        if manager is None:
            manager = _local.current = NameManager()
        return manager

    @current.setter
    def current(cls, manager: NameManager) -> None:
        if not isinstance(manager, NameManager):
            raise TypeError(f"NameManager.current must be a NameManager, not {manager!r}")
        _local.current = manager


class NameManager(metaclass=_CurrentManager):
    """Gives names: a given one is kept, otherwise ``hint`` and a counter per hint.

    Use it as a ``with`` block to make it the current manager of this thread
    (``NameManager.current``).
    """

    def __init__(self) -> None:
        self._counter: dict[str, int] = {}
        self._previous: list[NameManager | None] = []

    def get(self, name: str | None, hint: str) -> str:
        """``name`` if given, else ``hint`` followed by how often it was used."""
        if name:
            return name
        count = self._counter.get(hint, 0)
        self._counter[hint] = count + 1
        return f"{hint}{count}"

    def __enter__(self) -> NameManager:
        self._previous.append(NameManager.current)
        _local.current = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.current = self._previous.pop()


class Prefix(NameManager):
    """A NameManager that puts ``prefix`` before every name it gives."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def get(self, name: str | None, hint: str) -> str:
        """``prefix`` + the name NameManager would give."""
        return self._prefix + super().get(name, hint)


def scoped_name(name: str | None, hint: str) -> str:
    """The name of a new symbol under this thread's current manager."""
    return NameManager.current.get(name, hint)


__all__ = ["NameManager", "Prefix"]
