"""Errors and small shared definitions of the frontend (MXNet's ``mx.base``)."""

from __future__ import annotations


class MXNetError(RuntimeError):
    """Misuse of symgrad's API (MXNet raises the same name)."""


class MXNetShapeError(MXNetError, ValueError):
    """An op was called with shapes, dtypes or attributes it cannot take."""


__all__ = ["MXNetError", "MXNetShapeError"]
