"""Programs: what ``backward`` runs, built once per graph structure.

A :class:`Program` computes, from a graph's inputs, the gradients of its heads
with respect to chosen nodes and the values of chosen entries, in one go. It is
built from a structural copy of a recorded graph, so one program serves every
recording with the same structural key: it reads its inputs by position in the
graph's topological order.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .autodiff import differentiate
from .expr import Expr
from .interpret import evaluate
from .ir import Entry, Node, topo_order
from .ops.common import F
from .registry import variable


@dataclass
class ProgramGraph:
    """A closed graph: a function from ``inputs`` (variables) to ``outputs``.

    An output may be None (a gradient that is structurally zero).
    """

    inputs: list[Node]
    outputs: list[Entry | None]

    def live_outputs(self) -> list[Entry]:
        """The outputs that are not None."""
        return [out for out in self.outputs if out is not None]

    def nodes(self) -> list[Node]:
        """Every node the outputs depend on, in topological order."""
        return topo_order(self.live_outputs())


def clone_graph(nodes: Sequence[Node]) -> list[Node]:
    """Structural copies of ``nodes`` (in topological order), without values or tags."""
    copies: dict[Node, Node] = {}
    for node in nodes:
        inputs = tuple(Entry(copies[e.node], e.index) for e in node.inputs)
        copies[node] = Node(node.op, node.attrs, inputs, node.types, node._name)
    return [copies[node] for node in nodes]


def cut_inputs(
    outputs: Sequence[Entry | None],
    template: Sequence[Node],
    is_input: Callable[[Node], bool],
    extra_inputs: Sequence[Node] = (),
) -> tuple[ProgramGraph, list[tuple[int, int]]]:
    """Rebuild ``outputs`` as a closed graph whose inputs are the entries of
    ``template`` nodes for which ``is_input`` holds (plus ``extra_inputs``).

    Returns the graph and, per input, its ``(position in template, output index)``;
    extra inputs get position ``-1 - k``.
    """
    position = {id(node): i for i, node in enumerate(template)}
    rebuilt: dict[int, Node] = {}
    cut: dict[tuple[int, int], Node] = {}
    refs: list[tuple[int, int]] = []
    inputs: list[Node] = []
    for k, node in enumerate(extra_inputs):
        cut[(id(node), 0)] = node
        refs.append((-1 - k, 0))
        inputs.append(node)

    def entry_of(entry: Entry) -> Entry:
        key = (id(entry.node), entry.index)
        if key in cut:
            return Entry(cut[key], 0)
        if id(entry.node) in position and is_input(entry.node):
            var = variable(entry.shape, entry.dtype, name=f"input{len(inputs)}")
            cut[key] = var
            refs.append((position[id(entry.node)], entry.index))
            inputs.append(var)
            return Entry(var, 0)
        return Entry(rebuilt[id(entry.node)], entry.index)

    live = [out for out in outputs if out is not None]
    for node in topo_order(live):
        if id(node) in position and is_input(node) or (id(node), 0) in cut:
            continue
        rebuilt[id(node)] = Node(
            node.op, node.attrs, tuple(entry_of(e) for e in node.inputs), node.types, node._name
        )
    graph = ProgramGraph(inputs, [None if out is None else entry_of(out) for out in outputs])
    return graph, refs


class Program:
    """Gradients of a graph's heads and values of some of its entries.

    ``nodes`` is the graph in topological order; ``heads`` and ``values`` are
    ``(position, output index)`` pairs, ``wrt`` positions of nodes;
    ``given_head_grads[i]`` says whether head ``i`` comes with a gradient
    (otherwise it is ones). ``is_input(node)`` says which nodes the program reads
    rather than computes (leaves always). ``runner`` turns the closed program
    graph into a callable (the interpreter, or compiled kernels).
    """

    # False for a program made for one call (its key holds a per-call callback):
    # not cached, and to be kept by nobody (see cached_program)
    reusable = True

    def __init__(
        self,
        nodes: Sequence[Node],
        heads: Sequence[tuple[int, int]],
        wrt: Sequence[int],
        given_head_grads: Sequence[bool],
        values: Sequence[tuple[int, int]],
        is_input: Callable[[Node], bool],
        runner: Callable[[ProgramGraph], Callable],
    ):
        template = clone_graph(nodes)
        head_entries = [Entry(template[pos], index) for pos, index in heads]
        head_vars, seeds = [], []
        for entry, given in zip(head_entries, given_head_grads):
            if given:
                var = variable(entry.shape, entry.dtype, name=f"head_grad{len(head_vars)}")
                head_vars.append(var)
                seeds.append(Entry(var, 0))
            else:
                seeds.append(F.ones_like(Expr(entry)).entry)
        grads = differentiate(head_entries, seeds, [Entry(template[pos], 0) for pos in wrt])
        outputs = grads + [Entry(template[pos], index) for pos, index in values]
        self.graph, self.input_refs = cut_inputs(
            outputs, template, lambda node: not node.inputs or is_input(node), head_vars
        )
        self.num_grads = len(wrt)
        self.run_graph = runner(self.graph)

    def run(
        self, nodes: Sequence[Node], head_grads: Sequence[Any], out: Sequence[Any] | None = None
    ) -> list[Any]:
        """Gradients then values, for a graph with this program's structure:
        inputs are read from ``nodes[i].value`` and ``head_grads`` (those given).
        ``out`` optionally names destination arrays for the outputs (a runner may
        compute an output straight into its destination and return it)."""
        given = [g for g in head_grads if g is not None]
        args = [
            given[-1 - pos] if pos < 0 else nodes[pos].value[index]
            for pos, index in self.input_refs
        ]
        return self.run_graph(args, out)


def interpret_runner(graph: ProgramGraph) -> Callable:
    """Run a program graph with the numpy interpreter."""
    live = graph.live_outputs()

    def run(args: Sequence[Any], out: Sequence[Any] | None = None) -> list[Any]:
        values = iter(evaluate(live, {var: (arg,) for var, arg in zip(graph.inputs, args)}))
        return [None if o is None else next(values) for o in graph.outputs]

    return run


# ---------------------------------------------------------------------------
# the program cache
# ---------------------------------------------------------------------------

# Least recently used first. Bounded by an entry count and by an estimate of the
# bytes the programs hold (graph nodes, generated source), both configurable.
_programs: OrderedDict[tuple, Program] = OrderedDict()
_sizes: dict[tuple, int] = {}
_lock = threading.Lock()
_building: dict[tuple, threading.Lock] = {}
_stats = {"hits": 0, "misses": 0, "evictions": 0}
_limits = {
    "entries": int(os.environ.get("SYMGRAD_PROGRAM_CACHE_ENTRIES", "1024")),
    "bytes": int(os.environ.get("SYMGRAD_PROGRAM_CACHE_BYTES", str(256 << 20))),
}
_NODE_BYTES = 600  # a Node, its attrs dict, entries and types: measured, roughly


def program_bytes(program: Any) -> int:
    """An estimate of the memory ``program`` keeps alive: its graph (a compiled
    program's plan and kernel source are of the same order; estimated when the
    program is stored, before they exist, as twice the graph)."""
    graph = getattr(program, "graph", None)
    count = len(graph.nodes()) if isinstance(graph, ProgramGraph) else 1
    compiled = getattr(program, "run_graph", None) is not None
    return _NODE_BYTES * count * (2 if compiled else 1)


def _is_cacheable(key: Any) -> bool:
    """False when the key holds an object marked ``cacheable = False`` (a user
    callback made per call): such a program can never be hit again, and caching it
    would keep the callback, and what it saved, alive. Paid on misses only."""
    stack = [key]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif getattr(item, "cacheable", True) is False:
            return False
    return True


def cached_program(key: tuple, build: Callable[[], Program]) -> Program:
    """The cached program for ``key``, built by ``build()`` on a miss (once, even
    when several threads miss at the same time; threads missing different keys
    build in parallel)."""
    global _most_recent
    program = _programs.get(key)
    if program is not None:
        _stats["hits"] += 1
        if program is not _most_recent:  # a training loop hits one program: no rehash
            _most_recent = program
            try:
                _programs.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still valid to run
                pass
        return program
    with _lock:
        builder = _building.setdefault(key, threading.Lock())
    with builder:
        program = _programs.get(key)
        if program is not None:  # another thread built it while we waited
            _stats["hits"] += 1
            return program
        try:
            _stats["misses"] += 1
            program = build()
            if _is_cacheable(key):
                _store(key, program)
            else:
                program.reusable = False  # made for one call: nobody may keep it
        finally:
            with _lock:
                _building.pop(key, None)
    return program


# The program of the latest hit, already last in the LRU order (unless a build
# stored another since, which _store notes by clearing this).
_most_recent: Program | None = None


def _store(key: tuple, program: Program) -> None:
    global _most_recent
    size = program_bytes(program)
    with _lock:
        _most_recent = None
        _programs[key] = program
        _sizes[key] = size
        _evict()


def _evict() -> None:
    """Drop least recently used programs until both limits hold (caller holds _lock).
    The newest program stays even if alone it exceeds the byte limit."""
    total = sum(_sizes.values())
    while len(_programs) > 1 and (len(_programs) > _limits["entries"] or total > _limits["bytes"]):
        old_key, _ = _programs.popitem(last=False)
        total -= _sizes.pop(old_key, 0)
        _stats["evictions"] += 1


def set_cache_limit(entries: int | None = None, bytes: int | None = None) -> dict[str, int]:
    """Bound the program cache to ``entries`` programs and about ``bytes`` bytes
    (None leaves a limit unchanged); evicts least recently used programs at once.
    Returns the previous limits. The defaults come from
    ``SYMGRAD_PROGRAM_CACHE_ENTRIES`` (1024) and ``SYMGRAD_PROGRAM_CACHE_BYTES``
    (256 MiB).

    >>> previous = set_cache_limit(entries=10)
    >>> cache_limits()["entries"]
    10
    >>> _ = set_cache_limit(**previous)
    """
    previous = dict(_limits)
    for name, value in (("entries", entries), ("bytes", bytes)):
        if value is not None:
            if int(value) < 1:
                raise ValueError(
                    f"the program cache needs room for at least one program: {name}={value}"
                )
            _limits[name] = int(value)
    with _lock:
        _evict()
    return previous


def cache_limits() -> dict[str, int]:
    """The program cache's current bounds (``entries`` and ``bytes``)."""
    return dict(_limits)


def stats() -> dict[str, int]:
    """Counts of program-cache hits, misses and evictions since start-up (or
    ``clear_cache``), and the programs and estimated bytes held now."""
    with _lock:
        return dict(_stats, programs=len(_programs), program_bytes=sum(_sizes.values()))


def clear_cache() -> None:
    """Forget every cached program and zero the counters."""
    global _generation
    with _lock:
        _programs.clear()
        _sizes.clear()
        _stats.update(hits=0, misses=0, evictions=0)
        _generation += 1


# clear_cache() calls so far. A caller that keeps a program for a structure it
# recognises without a key (autograd's step template) reuses it only while this
# is unchanged, so that clearing the cache means building again for everyone.
_generation = 0


def cache_generation() -> int:
    """How many times :func:`clear_cache` has run (see ``_generation``)."""
    return _generation


def count_hit() -> None:
    """Count a program found without the cache (kept by a caller for a structure
    it recognised) as a hit, so that :func:`stats` still tells reuse from builds."""
    _stats["hits"] += 1


BACKENDS = ("compiled", "interpreter")
_chosen_backend: str | None = None


def set_backend(name: str | None) -> None:
    """Choose the backend new programs run on: ``'compiled'`` or ``'interpreter'``
    (the numpy reference); None goes back to ``SYMGRAD_BACKEND`` (default compiled).

    >>> set_backend("interpreter"); backend()
    'interpreter'
    >>> set_backend(None)
    """
    global _chosen_backend
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {name!r}")
    _chosen_backend = name


def backend() -> str:
    """The backend in force: :func:`set_backend`'s choice, else ``SYMGRAD_BACKEND``
    (``compiled`` by default)."""
    if _chosen_backend is not None:
        return _chosen_backend
    choice = os.environ.get("SYMGRAD_BACKEND", "compiled")
    if choice not in BACKENDS:
        raise ValueError(f"SYMGRAD_BACKEND must be one of {BACKENDS}, not {choice!r}")
    return choice


def runner() -> Callable[[ProgramGraph], Callable]:
    """The runner programs are built with now (see :func:`backend`)."""
    if backend() == "interpreter":
        return interpret_runner
    from .lower.runner import compiled_runner

    return compiled_runner
