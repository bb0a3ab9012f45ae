"""Errors and small shared definitions of the frontend (MXNet's ``mx.base``)."""

from __future__ import annotations

import os
import sys

import numpy as np

mx_real_t = np.float32
"""MXNet's default real type (``mx.base.mx_real_t``)."""

string_types = (str,)
numeric_types = (float, int, np.generic)
integer_types = (int, np.int32, np.int64)


def data_dir_default() -> str:
    """Where MXNet keeps downloaded data when ``MXNET_HOME`` is unset:
    ``%APPDATA%\\mxnet`` on Windows, ``~/.mxnet`` elsewhere."""
    if sys.platform == "win32":
        return os.path.join(os.environ.get("APPDATA", os.path.expanduser("~")), "mxnet")
    return os.path.join(os.path.expanduser("~"), ".mxnet")


def data_dir() -> str:
    """MXNet's data directory: ``$MXNET_HOME`` if set, else :func:`data_dir_default`.

    >>> import os
    >>> data_dir() == os.environ.get("MXNET_HOME", data_dir_default())
    True
    """
    return os.getenv("MXNET_HOME", data_dir_default())


class MXNetError(RuntimeError):
    """Misuse of symgrad's API (MXNet raises the same name)."""


class MXNetShapeError(MXNetError, ValueError):
    """An op was called with shapes, dtypes or attributes it cannot take."""


__all__ = [
    "MXNetError",
    "MXNetShapeError",
    "data_dir",
    "data_dir_default",
    "integer_types",
    "mx_real_t",
    "numeric_types",
    "string_types",
]
