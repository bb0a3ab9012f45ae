"""Devices. symgrad computes on the CPU; contexts exist so MXNet code runs.

As in MXNet, ``with mx.cpu(1):`` makes a context the current one for the
thread (or asyncio task) until the block ends, and
``mx.test_utils.set_default_context`` replaces the default.
"""

from __future__ import annotations

import contextvars
import threading


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
        # one stack per thread: ``with`` blocks nest within a thread, and the same
        # Context object may be entered by several threads at once
        _stack().append(_CURRENT.set(self))
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(_stack().pop())


_THREAD = threading.local()


def _stack() -> list:
    if not hasattr(_THREAD, "tokens"):
        _THREAD.tokens = []
    return _THREAD.tokens


# The current context of this thread/task: None until a ``with`` block or
# ``set_default_context`` sets one, which reads as cpu(0).
_CURRENT: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "symgrad_context", default=None
)


def cpu(device_id: int = 0) -> Context:
    """The CPU context."""
    return Context("cpu", device_id)


def gpu(device_id: int = 0) -> Context:
    """A GPU context; symgrad has no GPU backend, so arrays cannot be placed there."""
    return Context("gpu", device_id)


def current_context() -> Context:
    """The context of the innermost ``with ctx:`` block, else the default (``cpu(0)``).

    >>> with cpu(1):
    ...     current_context()
    cpu(1)
    >>> current_context()
    cpu(0)
    """
    return _CURRENT.get() or cpu()


def set_default_context(ctx: Context) -> None:
    """Make ``ctx`` the current context outside any ``with`` block (of this thread)."""
    _CURRENT.set(Context(ctx))


def num_gpus() -> int:
    """The number of GPUs symgrad can use: 0 (it computes on the CPU only).

    >>> num_gpus()
    0
    """
    return 0


def gpu_memory_info(device_id: int = 0) -> tuple[int, int]:
    """MXNet's ``(free, total)`` GPU memory query; there are no GPUs to ask about."""
    from .base import MXNetError

    raise MXNetError(f"gpu_memory_info({device_id}): symgrad has no GPU backend (num_gpus() is 0)")


def check_context(ctx: Context | None) -> None:
    """Refuse contexts symgrad cannot compute on."""
    from .base import MXNetError

    if ctx is not None and Context(ctx).device_type != "cpu":
        raise MXNetError(f"symgrad computes on the CPU only; cannot use context {ctx}")
