"""``gluon.utils``: splitting batches across devices, gradient clipping, file
checks. Nothing here downloads: ``download`` only accepts files already present.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import numpy as np

from .. import ndarray as nd
from ..context import Context
from ..ndarray import NDArray

__all__ = [
    "split_data",
    "split_and_load",
    "clip_global_norm",
    "check_sha1",
    "download",
    "shape_is_known",
]


def split_data(
    data: NDArray, num_slice: int, batch_axis: int = 0, even_split: bool = True
) -> list[NDArray]:
    """Split ``data`` into ``num_slice`` slices along ``batch_axis``; with
    ``even_split=False`` the first ``size % num_slice`` slices get one more.

    >>> import symgrad as mx
    >>> [s.shape for s in split_data(mx.nd.zeros((5, 2)), 2, even_split=False)]
    [(3, 2), (2, 2)]
    """
    size = data.shape[batch_axis]
    if even_split and size % num_slice != 0:
        raise ValueError(
            f"data with shape {data.shape} cannot be evenly split into {num_slice} slices "
            f"along axis {batch_axis}. Use a batch size that's multiple of {num_slice} or "
            f"set even_split=False to allow uneven partitioning of data."
        )
    each, extra = divmod(size, num_slice)
    bounds = np.cumsum([0] + [each + 1] * extra + [each] * (num_slice - extra))
    if num_slice == 1:
        return [data]
    return [
        nd.slice_axis(data, axis=batch_axis, begin=int(bounds[i]), end=int(bounds[i + 1]))
        for i in range(num_slice)
    ]


def split_and_load(
    data: Any, ctx_list: list[Context], batch_axis: int = 0, even_split: bool = True
) -> list[NDArray]:
    """Split ``data`` (an NDArray or numpy array) into one slice per context in
    ``ctx_list`` and place each slice on its context."""
    if not isinstance(data, NDArray):
        data = nd.array(data, ctx=ctx_list[0])  # float32, as MXNet's
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    slices = split_data(data, len(ctx_list), batch_axis, even_split)
    return [piece.as_in_context(ctx) for piece, ctx in zip(slices, ctx_list)]


def clip_global_norm(arrays: list[NDArray], max_norm: float, check_isfinite: bool = True) -> Any:
    """Scale ``arrays`` in place so that the 2-norm of all of them together is at
    most ``max_norm``: each is multiplied by ``min(1, max_norm / (norm + 1e-8))``.

    Returns the norm before clipping (a float, or an NDArray when
    ``check_isfinite`` is False); warns when it is NaN or infinite.

    >>> import symgrad as mx
    >>> x = mx.nd.array([3.0, 4.0])
    >>> float(clip_global_norm([x], 1.0)), [round(v, 3) for v in x.asnumpy().tolist()]
    (5.0, [0.6, 0.8])
    """
    if len(arrays) == 0:
        raise AssertionError("clip_global_norm needs at least one array")
    squares = [np.float32(np.dot(a.asnumpy().reshape(-1), a.asnumpy().reshape(-1))) for a in arrays]
    total = np.sqrt(np.sum(squares, dtype=np.float32), dtype=np.float32)
    if check_isfinite and not np.isfinite(total):
        warnings.warn(
            UserWarning("nan or inf is detected. Clipping results will be undefined."), stacklevel=2
        )
    scale = min(np.float32(1.0), np.float32(max_norm) / (total + np.float32(1e-8)))
    # a NaN or infinite norm was warned about once above, as MXNet warns; numpy's
    # own warnings for the scaling that follows would repeat it
    with np.errstate(invalid="ignore", over="ignore"):
        for array in arrays:
            array[:] = nd.array(array.asnumpy() * scale, dtype=array.dtype)
    if check_isfinite:
        return total
    return nd.array([total])


def check_sha1(filename: str, sha1_hash: str) -> bool:
    """Whether the SHA-1 of the file ``filename`` starts with ``sha1_hash`` (or
    ``sha1_hash`` with it, for a shortened hash)."""
    sha1 = hashlib.sha1()
    with open(filename, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha1.update(chunk)
    digest = sha1.hexdigest()
    length = min(len(digest), len(sha1_hash))
    return digest[:length] == sha1_hash[:length]


def download(
    url: str,
    path: str | None = None,
    overwrite: bool = False,
    sha1_hash: str | None = None,
    retries: int = 5,
    verify_ssl: bool = True,
) -> str:
    """The local file name for ``url`` (``path``, or ``path``/basename, or the
    basename), when that file is already there (and matches ``sha1_hash``).
    symgrad never downloads: a missing file raises ``RuntimeError``."""
    fname = url.split("/")[-1]
    if path is not None:
        path = os.path.expanduser(path)
        fname = os.path.join(path, fname) if os.path.isdir(path) else path
    if (
        os.path.exists(fname)
        and not overwrite
        and (sha1_hash is None or check_sha1(fname, sha1_hash))
    ):
        return fname
    reason = "is missing" if not os.path.exists(fname) else "does not match its sha1 hash"
    raise RuntimeError(
        f"{fname} {reason}, and symgrad does not download files: fetch {url} "
        f"yourself and place it at {fname}"
    )


def shape_is_known(shape: Any) -> bool:
    """Whether every dimension of ``shape`` is known (no 0 or -1 placeholders)."""
    if shape is None:
        return False
    return all(dim > 0 for dim in shape)
