"""The numba backend: fused loops, lowered ops and one whole-program entry,
compiled by numba on the CPU and kept in a disk cache.

Layout: :mod:`.plan` turns the passes' output into steps, :mod:`.codegen`
writes a fused group's loop, :mod:`.lowerings` holds every other op's lowering
(one registration each), :mod:`.entry` writes the whole program as one
function, :mod:`.executable` compiles (when :mod:`.tiering` says it pays, in the
background, :mod:`.background`) and runs it; :mod:`.disk_cache`, :mod:`.threads`,
:mod:`.blas` and :mod:`.vmath` are its runtime, and :mod:`.memory` its allocator's policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...driver import PassRun
    from .executable import NumbaExecutable


class NumbaBackend:
    """Compiles programs to numba kernels (``SYMGRAD_BACKEND=compiled``)."""

    name = "numba"

    def compile(self, passes: PassRun) -> NumbaExecutable:
        """A :class:`~.executable.NumbaExecutable` for ``passes``' graph."""
        from .executable import NumbaExecutable  # numba is imported on first use
        from .memory import keep_freed_memory, release_idle_memory

        keep_freed_memory()  # once per process: see memory.py
        release_idle_memory()  # a new program: what earlier work kept may go
        return NumbaExecutable(passes)


def wait_for_compilation(timeout: float | None = None) -> None:
    """Block until every program called often enough to compile runs compiled
    (see :func:`.executable.wait_for_compilation`)."""
    from .executable import wait_for_compilation as wait

    wait(timeout)


__all__ = ["NumbaBackend", "wait_for_compilation"]
