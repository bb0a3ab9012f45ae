"""Devices. symgrad computes on the CPU; contexts exist so MXNet code runs."""

from __future__ import annotations


class Context:
    """A device: ``cpu(0)``. Contexts compare equal by type and id.

    >>> cpu() == cpu(0)
    True
    """

    def __init__(self, device_type: str = "cpu", device_id: int = 0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        self.device_type = device_type
        self.device_id = device_id

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Context)
            and other.device_type == self.device_type
            and other.device_id == self.device_id
        )

    def __hash__(self) -> int:
        return hash((self.device_type, self.device_id))

    def __repr__(self) -> str:
        return f"{self.device_type}({self.device_id})"

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc) -> None:
        return None


def cpu(device_id: int = 0) -> Context:
    """The CPU context."""
    return Context("cpu", device_id)


def gpu(device_id: int = 0) -> Context:
    """A GPU context; symgrad has no GPU backend, so arrays cannot be placed there."""
    return Context("gpu", device_id)


def current_context() -> Context:
    """The default context: always ``cpu(0)``."""
    return cpu()


def check_context(ctx: Context | None) -> None:
    """Refuse contexts symgrad cannot compute on."""
    from .base import MXNetError

    if ctx is not None and Context(ctx).device_type != "cpu":
        raise MXNetError(f"symgrad computes on the CPU only; cannot use context {ctx}")
