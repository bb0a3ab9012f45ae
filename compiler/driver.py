"""The compile driver: a closed graph through every pass to a backend.

:func:`compile_graph` is the one way a graph becomes something that runs. It
wraps the graph in a :class:`PassRun`, which applies the passes of
:data:`~.passes.PIPELINE` in order, each once, as far as the backend asks
(``after(name)``, ``final()``), and hands it to the backend. A backend that
answers a program's first calls before compiling (numba) asks for the simplified
graph first and for the fused one only when compiling pays; every pass still
runs in the pipeline's order and is printed by ``SYMGRAD_PRINT_PASSES``.
"""

from __future__ import annotations

import threading

from .backends import Backend, Executable, get_backend
from .graph import ProgramGraph
from .passes import PIPELINE, Pass, run_pass


class PassRun:
    """The passes of a pipeline applied to one graph, pass by pass, on demand.

    ``source`` is the graph given; :meth:`after` returns the graph once every
    pass up to the named one has run (each pass runs once, however often it is
    asked for, from any thread); ``ran`` lists the passes run so far.
    """

    def __init__(self, graph: ProgramGraph, pipeline: list[tuple[str, Pass]] | None = None):
        self.source = graph
        self.pipeline = list(PIPELINE if pipeline is None else pipeline)
        self.ran: list[str] = []
        self._graphs: list[ProgramGraph] = [graph]
        self._lock = threading.Lock()

    def _position(self, name: str) -> int:
        for position, (pass_name, _) in enumerate(self.pipeline):
            if pass_name == name:
                return position
        names = [pass_name for pass_name, _ in self.pipeline]
        raise ValueError(f"no pass named {name!r} in the pipeline {names}")

    def after(self, name: str) -> ProgramGraph:
        """The graph after the pass ``name`` (and every pass before it)."""
        return self._run_to(self._position(name) + 1)

    def final(self) -> ProgramGraph:
        """The graph after every pass."""
        return self._run_to(len(self.pipeline))

    def _run_to(self, count: int) -> ProgramGraph:
        if len(self._graphs) > count:
            return self._graphs[count]
        with self._lock:
            while len(self._graphs) <= count:
                name, apply = self.pipeline[len(self._graphs) - 1]
                self._graphs.append(run_pass(name, apply, self._graphs[-1]))
                self.ran.append(name)
            return self._graphs[count]


def compile_graph(graph: ProgramGraph, backend: Backend | str | None = None) -> Executable:
    """An :class:`~.backends.Executable` for ``graph``, made by ``backend`` (a
    backend, a registered name, or None for the one in force) from the passes'
    output."""
    chosen = backend if backend is not None and not isinstance(backend, str) else None
    if chosen is None:
        chosen = get_backend(backend if isinstance(backend, str) else None)
    return chosen.compile(PassRun(graph))


__all__ = ["PassRun", "compile_graph"]
