"""``mx.attribute``: attribute scopes for symbols (MXNet's ``AttrScope``).

Inside ``with mx.AttrScope(ctx_group="stage1"):`` every symbol made (variables
and ops) carries the scope's attributes, merged with the ``attr=`` given to the
call (which wins). Scopes nest, and each thread has its own: a new thread
starts outside every scope, as in MXNet.

A few keys MXNet treats as hidden (``ctx_group``, ``lr_mult``...) are stored as
``__key__`` and listed under both spellings.

>>> import symgrad as mx
>>> with mx.AttrScope(group="4"):
...     mx.sym.var("x").list_attr()
{'group': '4'}
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from symgrad_compiler import Node

# MXNet's hidden attribute keys: stored as ``__key__``, listed both ways.
HIDDEN_KEYS = frozenset(
    {"ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage", "profiler_scope"}
)

_local = threading.local()

# User attributes of op nodes (nodes are immutable and their ``attrs`` are the op's
# parameters, so annotations live beside them, keyed weakly by node). Variables
# keep theirs in their own string ``attrs``.
_OP_NODE_ATTRS: weakref.WeakKeyDictionary[Node, dict[str, str]] = weakref.WeakKeyDictionary()


# The op parameters a symbol-building call was given (MXNet lists only those, not
# the defaults), by op node; nodes made otherwise (recorded) list all of theirs.
_GIVEN_KEYS: weakref.WeakKeyDictionary[Node, tuple[str, ...]] = weakref.WeakKeyDictionary()


def given_keys(node: Node) -> tuple[str, ...] | None:
    """The parameters given when ``node`` was made by a symbol call (None if unknown)."""
    return _GIVEN_KEYS.get(node)


def set_given_keys(node: Node, keys: tuple[str, ...] | None) -> None:
    """Record which parameters a symbol call gave ``node``."""
    if keys is not None:
        _GIVEN_KEYS[node] = tuple(keys)


def stored_key(key: str) -> str:
    """The key an attribute is stored under (``__ctx_group__`` for ``ctx_group``)."""
    return f"__{key}__" if key in HIDDEN_KEYS else key


def listed(attrs: dict[str, str]) -> dict[str, str]:
    """``attrs`` as MXNet lists them: hidden keys also under their plain name."""
    result = dict(attrs)
    for key, value in attrs.items():
        plain = key[2:-2]
        if key.startswith("__") and key.endswith("__") and plain in HIDDEN_KEYS:
            result[plain] = value
    return result


def op_node_attrs(node: Node) -> dict[str, str]:
    """The user attributes of an op node (empty if it has none)."""
    return _OP_NODE_ATTRS.get(node, {})


def set_op_node_attrs(node: Node, attrs: dict[str, str]) -> None:
    """Add user attributes to an op node, in place (MXNet's ``_set_attr``)."""
    if attrs:
        _OP_NODE_ATTRS.setdefault(node, {}).update(attrs)


def check_strings(attrs: dict[str, Any]) -> None:
    """Raise ValueError, as MXNet does, unless every attribute value is a string."""
    for key, value in attrs.items():
        if not isinstance(value, str):
            raise ValueError(f"Attributes need to be string: {key}={value!r}")


class _CurrentScope(type):
    @property
    def current(cls) -> AttrScope:
        """This thread's innermost scope (an empty one outside every ``with``)."""
        scope = getattr(_local, "current", None)
        if scope is None:
            scope = _local.current = AttrScope()
        return scope

    @current.setter
    def current(cls, scope: AttrScope) -> None:
        """Make ``scope`` this thread's current scope (``AttrScope.current = ...``)."""
        if not isinstance(scope, AttrScope):
            raise TypeError(f"AttrScope.current must be an AttrScope, not {scope!r}")
        _local.current = scope


class AttrScope(metaclass=_CurrentScope):
    """Attributes given to every symbol made inside ``with AttrScope(**kwargs):``.

    Parameters
    ----------
    **kwargs : str
        The attributes; values must be strings (ValueError otherwise).
    """

    def __init__(self, **kwargs: str) -> None:
        check_strings(kwargs)
        self._attr = {stored_key(k): v for k, v in kwargs.items()}
        self._old_scope: AttrScope | None = None

    def get(self, attr: dict[str, str] | None) -> dict[str, str]:
        """The scope's attributes updated with ``attr`` (the call's own win)."""
        result = dict(self._attr)
        if attr:
            result.update({stored_key(k): str(v) for k, v in attr.items()})
        return result

    def __enter__(self) -> AttrScope:
        self._old_scope = AttrScope.current
        # an inner scope holds the outer one's attributes too
        self._attr = dict(self._old_scope._attr, **self._attr)
        _local.current = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.current = self._old_scope


__all__ = ["AttrScope"]
