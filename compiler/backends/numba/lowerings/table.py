"""The lowering table itself: :class:`Lowering` and its registry (see the
package docstring)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ....ir import Node
from .. import disk_cache

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _always(node: Node) -> bool:
    return True


@dataclass(frozen=True)
class Lowering:
    """How the numba backend runs one op.

    ``kernels`` is numba source added to a program's generated module when one
    of its steps uses this lowering, and ``kernel_name`` the name of the function
    in it that ``run`` calls. ``run(kernel, *arrays, **attrs)`` returns the op's
    result, or None to let the op's numpy implementation run (arrays it does not
    handle). ``into(*arrays, target, **attrs)`` computes the result into
    ``target`` and returns True, or returns False having written nothing.
    ``entry(writer, step)`` writes the step into the whole-program entry (see
    :mod:`..entry`) and returns False where it cannot. ``accepts(node)`` says
    whether the lowering applies to this node at all. ``threaded``: ``run``
    shares its work out over the backend's thread pool (a convolution's or a
    pooling's images), so a program with such a step keeps OpenBLAS on one
    thread while it runs (see :attr:`..plan.Plan.blas_alone`).
    """

    op: str
    kernels: str = ""
    kernel_name: str | None = None
    run: Callable[..., Any] | None = None
    into: Callable[..., bool] | None = None
    entry: Callable[[Any, Any], bool] | None = None
    accepts: Callable[[Node], bool] = field(default=_always)
    threaded: bool = False


LOWERINGS: dict[str, Lowering] = {}


def register_lowering(lowering: Lowering) -> Lowering:
    """Add ``lowering`` to the table (replacing any for the same op)."""
    LOWERINGS[lowering.op] = lowering
    return lowering


def run_library(op: str, kernel: Any, args: tuple, attrs: dict, dtype: str) -> np.ndarray:
    """``op``'s result on ``args`` as the step runner computes it: its lowering's
    ``run`` with ``kernel`` (None for a lowering with no kernel library), else
    (with no kernel for a lowering that has one: a step whose op has no lowering
    that accepts it) the op's numpy implementation; as a C-contiguous
    array of ``dtype`` that shares no memory with ``args``. The whole-program
    entry calls this from object mode for a step it runs as the step runner does
    (a convolution big enough for the threaded paths, an op with no numba form),
    and declares that type: object mode does not check an array's layout, and
    would read another wrongly."""
    from ....registry import get_op

    lowering = LOWERINGS.get(op)
    result = None
    if (
        lowering is not None
        and lowering.run is not None
        and (kernel is not None or not lowering.kernel_name)
    ):  # (a lowering of no kernel library runs with None, as in the step runner)
        result = lowering.run(kernel, *args, **attrs)
    if result is None:
        result = get_op(op).impl(*args, **attrs)
    if isinstance(result, (tuple, list)):  # an op of one output that returns a tuple
        (result,) = result  # (SliceChannel with num_outputs=1)
    result = np.ascontiguousarray(result, dtype=dtype)
    if any(np.may_share_memory(result, a) for a in args):  # no step returns its input
        result = result.copy()
    return result


def lowering_for(node: Node) -> Lowering | None:
    """The lowering registered for ``node``'s op, if it accepts the node."""
    lowering = LOWERINGS.get(node.op.name)
    return lowering if lowering is not None and lowering.accepts(node) else None


def module_text(lowerings: list[Lowering]) -> str:
    """The lines of a program's module that bring in the kernels ``lowerings``
    need: each distinct source is a generated module of its own, compiled once per
    process and shared by every program using it (:func:`..disk_cache.library_line`)."""
    sources = dict.fromkeys(lowering.kernels.strip() for lowering in lowerings)
    return "\n".join(disk_cache.library_line(source) for source in sources if source)


_warned: set[str] = set()


def warn_step_by_step(op: str) -> None:
    """Warn, once per op and process, that programs using ``op`` run step by step
    because it has no whole-program lowering in the numba backend."""
    if op in _warned:
        return
    _warned.add(op)
    warnings.warn(
        f"symgrad: the numba backend has no whole-program lowering for {op!r} (with the "
        f"attrs a program used); programs using it run step by step (one Python call per "
        f"step) instead of as one compiled call. A lowering registered in "
        f"compiler/backends/numba/lowerings/ removes this.",
        RuntimeWarning,
        stacklevel=2,
    )
