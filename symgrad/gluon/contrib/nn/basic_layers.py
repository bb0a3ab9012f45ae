"""Containers that run every child on the same input and concatenate the
outputs (MXNet 1.9.1's ``gluon.contrib.nn``), and ``Identity``."""

from __future__ import annotations

from typing import Any

from .... import ndarray
from ...nn.basic_layers import HybridSequential, Identity, Sequential

__all__ = ["Concurrent", "HybridConcurrent", "Identity"]


class _Concat:
    """What the two containers share: the ``axis`` their children's outputs are
    joined along."""

    def __init__(self, axis: int = -1, prefix: str | None = None, params: Any = None) -> None:
        super().__init__(prefix=prefix, params=params)  # type: ignore[call-arg]
        self.axis = axis

    def _concat(self, F: Any, x: Any) -> Any:
        """``concat(child(x) for each child, dim=axis)``."""
        outputs = [block(x) for block in self._children.values()]  # type: ignore[attr-defined]
        return F.concat(*outputs, dim=self.axis)


class Concurrent(_Concat, Sequential):
    """Runs each child Block on the same input and concatenates their outputs
    along ``axis``.

    Parameters
    ----------
    axis : int
        The axis the outputs are joined along (the last by default).
    prefix : str, optional
        Prefix of the names of this block's parameters and children.
    params : ParameterDict, optional
        Parameters to share.

    Notes
    -----
    Computes ``concat``; its gradient hands each child the slice of ``g`` that
    its output filled.
    """

    def forward(self, x: Any) -> Any:
        """``concat(child(x) for each child, dim=axis)``."""
        return self._concat(ndarray, x)


class HybridConcurrent(_Concat, HybridSequential):
    """Runs each child HybridBlock on the same input and concatenates their
    outputs along ``axis``; hybridizes as one graph.

    Parameters
    ----------
    axis : int
        The axis the outputs are joined along (the last by default).
    prefix : str, optional
        Prefix of the names of this block's parameters and children.
    params : ParameterDict, optional
        Parameters to share.

    Notes
    -----
    Computes ``concat``; its gradient hands each child the slice of ``g`` that
    its output filled.
    """

    def hybrid_forward(self, F: Any, x: Any) -> Any:
        """``concat(child(x) for each child, dim=axis)``."""
        return self._concat(F, x)
