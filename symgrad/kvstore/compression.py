"""MXNet's 2-bit gradient compression with error feedback.

Each pushed gradient is added to a residual kept for its key (and, on a
``device`` store, for each of its sources). An element whose residual reaches
``threshold`` is sent as ``+threshold`` and the threshold is taken off the
residual; one at or below ``-threshold`` is sent as ``-threshold`` and the
threshold is added back; every other element is sent as 0 and stays in the
residual for a later push. So a small gradient is delayed, never lost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import MXNetError

__all__ = ["TwoBitCompression", "from_params", "pack", "unpack"]


class TwoBitCompression:
    """2-bit quantisation of gradients with one residual per (key, source).

    Parameters
    ----------
    threshold : float
        The magnitude sent for an element whose residual reaches it.

    Examples
    --------
    >>> import numpy as np
    >>> q = TwoBitCompression(0.5)
    >>> q.quantize("w", 0, np.array([0.3, 0.6, -0.7], np.float32)).tolist()
    [0.0, 0.5, -0.5]
    >>> q.quantize("w", 0, np.array([0.3, 0.0, 0.0], np.float32)).tolist()
    [0.5, 0.0, 0.0]
    """

    type = "2bit"

    def __init__(self, threshold: float = 0.5):
        if not threshold > 0:
            raise MXNetError(
                f"2bit gradient compression needs a positive threshold, got {threshold}"
            )
        self.threshold = float(threshold)
        self._residuals: dict[tuple[Any, int], np.ndarray] = {}

    def quantize(self, key: Any, source: int, grad: np.ndarray) -> np.ndarray:
        """The dequantised values sent for ``grad`` (each ``-t``, 0 or ``+t``),
        updating the residual of ``(key, source)``."""
        residual = self._residuals.get((key, source))
        if residual is None or residual.shape != grad.shape:
            residual = np.zeros(grad.shape, grad.dtype)
            self._residuals[(key, source)] = residual
        residual += grad
        # the threshold in the gradient's dtype, as the kernel compares in it
        t = grad.dtype.type(self.threshold)
        sent = np.where(residual >= t, t, np.where(residual <= -t, -t, grad.dtype.type(0)))
        residual -= sent
        return sent.astype(grad.dtype, copy=False)

    def residual(self, key: Any, source: int = 0) -> np.ndarray | None:
        """The residual kept for ``(key, source)`` (None before its first push)."""
        return self._residuals.get((key, source))


def from_params(params: dict) -> TwoBitCompression | None:
    """The compression MXNet's ``set_gradient_compression`` params ask for:
    ``{'type': '2bit', 'threshold': t}`` (threshold 0.5 by default), or None for
    ``{'type': 'none'}``."""
    if not isinstance(params, dict) or "type" not in params:
        raise ValueError("compression_params requires `type` to be set")
    kind = str(params["type"]).lower()
    unknown = set(params) - {"type", "threshold"}
    if unknown:
        raise MXNetError(f"unknown gradient compression parameters {sorted(unknown)}")
    if kind == "none":
        return None
    if kind == "2bit":
        return TwoBitCompression(float(params.get("threshold", 0.5)))
    raise MXNetError(
        f"Unknown type for gradient compression {params['type']}: symgrad "
        "has MXNet's '2bit' compression (and 'none')"
    )


def pack(sent: np.ndarray, threshold: float) -> tuple:
    """Quantised values (each ``-t``, 0 or ``+t``) as 2-bit codes, four to a byte:
    what a distributed store sends instead of the float array (16x fewer bytes
    for float32).

    >>> import numpy as np
    >>> packed = pack(np.array([0.5, 0, -0.5, 0.5, -0.5], np.float32), 0.5)
    >>> unpack(packed).tolist()
    [0.5, 0.0, -0.5, 0.5, -0.5]
    """
    flat = sent.reshape(-1)
    codes = np.zeros(-(-flat.size // 4) * 4, np.uint8)
    codes[: flat.size][flat > 0] = 1
    codes[: flat.size][flat < 0] = 2
    packed = codes[0::4] | (codes[1::4] << 2) | (codes[2::4] << 4) | (codes[3::4] << 6)
    return ("2bit", float(threshold), packed, flat.size, flat.dtype.str)


def unpack(message: tuple) -> np.ndarray:
    """The quantised values a :func:`pack` message carries."""
    _kind, threshold, packed, size, dtype = message
    codes = np.stack([(packed >> shift) & 3 for shift in (0, 2, 4, 6)], axis=1).reshape(-1)
    values = np.zeros(codes.size, np.dtype(dtype))
    values[codes == 1] = threshold
    values[codes == 2] = -threshold
    return values[:size]
