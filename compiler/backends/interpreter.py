"""The interpreter backend: the numpy reference, op by op.

It runs the graph as given, before any pass (it is what the passes and the
other backends are checked against), with :func:`~..interpret.evaluate`, which
calls each op's registered numpy implementation. :class:`Interpreted` also
serves other backends that answer a program's first calls on numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import profiling
from ..graph import ProgramGraph
from ..interpret import evaluate, numpy_apply

if TYPE_CHECKING:
    from ..driver import PassRun


class Interpreted:
    """An :class:`~.Executable` evaluating ``graph`` with the numpy interpreter."""

    def __init__(self, graph: ProgramGraph):
        self.graph = graph
        self._live = graph.live_outputs()

    def __call__(self, args: Sequence[Any], out: Sequence[Any] | None = None) -> list[Any]:
        """The graph's outputs for ``args`` (``out`` is not used: numpy allocates)."""
        given = {var: (arg,) for var, arg in zip(self.graph.inputs, args)}
        apply = numpy_apply if profiling.listener is None else profiling.timing(numpy_apply)
        values = iter(evaluate(self._live, given, apply))
        return [None if o is None else next(values) for o in self.graph.outputs]

    def specialised(self, args: Sequence[Any]) -> Callable[..., Any] | None:
        """None: the interpreter has no faster path for fixed shapes."""
        return None

    direct = None  # no cheaper path than evaluating the graph

    def explain(self) -> str:
        """The graph the interpreter runs."""
        from ..passes import format_graph

        return format_graph(self.graph)

    def wait(self) -> None:
        """Nothing to wait for."""


class InterpreterBackend:
    """Runs programs op by op with numpy (``SYMGRAD_BACKEND=interpreter``)."""

    name = "interpreter"

    def compile(self, passes: PassRun) -> Interpreted:
        """The graph as given, interpreted."""
        return Interpreted(passes.source)
