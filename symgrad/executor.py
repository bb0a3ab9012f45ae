"""Running symbols: ``eval``, ``bind``/``simple_bind`` and their Executor,
``Symbol.gradient`` and the functional replay API :func:`compile`.

Everything that executes a symbol goes through one function,
:func:`_run_program`, on a :class:`ReplayGraph`: a closed graph whose inputs are
variable nodes and whose outputs are entries (values and gradients together),
or on a :class:`ReplayCall`, what a replayed function keeps for one input
signature. Executables come from the compiler's program cache, one per graph
structure (shared across batch sizes); a replayed function's per-signature
entries live in that cache too, so ``compiler.stats()`` counts them and the
cache's limits bound them.

>>> import numpy as np, symgrad as mx
>>> x, w = mx.sym.var("x"), mx.sym.var("w")
>>> f = mx.compile(mx.sym.sum(x * w), wrt=["w"])
>>> value, grads = f(x=np.array([1.0, 2.0]), w=np.array([3.0, 4.0]))
>>> value.tolist(), grads["w"].tolist()
([11.0], [1.0, 2.0])
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import symgrad_compiler as compiler
from symgrad_compiler import (
    Entry,
    Expr,
    Node,
    differentiate,
    profiling,
    session,
    structural_key,
    topo_order,
)
from symgrad_compiler.ops.common import F
from symgrad_compiler.registry import variable

from ._recorded import recorded_value
from .base import MXNetError
from .gradient_writer import write_gradient
from .ndarray.ndarray import NDArray
from .symbol import Symbol
from .symbol_types import materialize

_GRAD_REQS = ("write", "add", "null")
# (shape, dtype) of an array, as a C-level call: a replayed call's cache key is
# made of these, on every call
_SHAPE_AND_DTYPE = operator.attrgetter("shape", "dtype")


# ---------------------------------------------------------------------------
# the one execution seam
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class ReplayGraph:
    """A closed graph: ``outputs`` (entries, or None for a structurally zero
    gradient) as a function of ``inputs`` (variable nodes), in that order.

    ``runner`` keeps the callable the backend built for this graph (on its first
    run, see :func:`_run_program`).
    """

    inputs: list[Node]
    outputs: list[Entry | None]
    runner: Any = field(default=None, repr=False)


@dataclass(eq=False, slots=True)
class ReplayCall:
    """What calls of one replayed function with one input signature (shapes,
    dtypes, head gradients given or not) need, kept in the compiler's program
    cache under :attr:`key`: the function holds nothing per signature itself, so
    ``compiler.stats()`` counts these and the cache's limits bound them (a
    function called with ever new shapes grows no memory without bound).

    ``runner`` is the executable (from the program cache as well, shared by
    every signature and function whose graph differs only in sizes); ``direct``,
    once compiled, a one-kernel program's cheaper runner; ``spare`` (only with
    ``reuse_outputs``) the last call's results, which the next call writes into;
    ``cache_bytes`` what the cache counts for this entry, including the results
    it may keep.
    """

    key: tuple
    runner: compiler.Executable
    spare: list | None
    cache_bytes: int
    direct: Any = None


class ReplayProgram:
    """A replay graph's compiled program, as the compiler's program cache keeps it
    (so that :func:`symgrad_compiler.stats` counts it and the cache's limits bound
    it): ``graph`` the closed graph, ``run_graph`` its executable."""

    def __init__(self, graph: compiler.ProgramGraph):
        self.graph = graph
        self.run_graph = compiler.compile_graph(graph)


def _runner_for(graph: ReplayGraph) -> compiler.Executable:
    """The executable for ``graph`` from the program cache: one per structure and
    backend, shared by every replay graph that differs from it only in sizes (a
    new batch size, another function replaying the same symbol)."""
    key = ("replay", compiler.backend(), _size_free_key(graph))
    program = compiler.cached_program(
        key, lambda: ReplayProgram(compiler.ProgramGraph(graph.inputs, graph.outputs))
    )
    return program.run_graph


def _run_program(
    graph: ReplayGraph | ReplayCall,
    args: Sequence[np.ndarray],
    out: Sequence[np.ndarray | None] | None = None,
) -> list[np.ndarray | None]:
    """Run ``graph`` (or a replayed function's entry for one signature) on numpy
    arrays ``args`` (one per input), returning one array per output (None where the
    output is None). ``out`` optionally names arrays the outputs may be written
    into (a result that was is that very array).

    This is the only place symgrad executes symbol graphs. The executable comes
    from the compiler's program cache on the first run (:func:`_runner_for`) and
    is kept on the graph (a :class:`ReplayCall` is made with it), so a replayed
    graph goes through the compiler's passes
    once and, on the compiled backend, runs as fused numba kernels and library
    calls from then on (the numpy interpreter meanwhile, while numba compiles in
    the background). Ops with state (BatchNorm in training) update their
    auxiliary input arrays in place, as MXNet does; random ops draw once per
    run: neither is fused.
    """
    run = graph.runner
    if run is None:
        assert isinstance(graph, ReplayGraph)
        run = graph.runner = _runner_for(graph)
    return run(args, out)


# ---------------------------------------------------------------------------
# building replay graphs
# ---------------------------------------------------------------------------


def _typed_inputs(symbol: Symbol, shapes: Mapping, dtypes: Mapping, is_train: bool):
    """Typed heads and input variables (in ``list_inputs`` order) of ``symbol``."""
    typed = materialize(symbol.entries, shapes, dtypes, is_train=is_train)
    variables = [node for node in topo_order(symbol.entries) if node.is_variable]
    return typed.entries(symbol.entries), [typed.nodes[node] for node in variables]


def _gradients(heads: list[Entry], wrt: list[Node], seeds: list[Entry]) -> list[Entry | None]:
    return differentiate(heads, seeds, [Entry(node, 0) for node in wrt])


def _cut(
    outputs: Sequence[Entry | None], forward: list[Node]
) -> tuple[list[Node], list[Entry], list[Node], list[Entry | None]]:
    """Rebuild a gradient graph so that it reads the forward values it needs from
    new variables instead of recomputing them.

    Returns the forward variables it still reads, the forward entries it needs
    (residuals, to be computed by the forward pass), the variables standing for
    them, and the rebuilt outputs.
    """
    in_forward = {id(node) for node in forward}
    residual_vars: dict[tuple[int, int], Node] = {}
    residuals: list[Entry] = []
    read_vars: dict[int, Node] = {}
    rebuilt: dict[int, Node] = {}

    def map_entry(entry: Entry) -> Entry:
        node = entry.node
        if id(node) not in in_forward:
            return Entry(rebuilt[id(node)], entry.index)
        if node.is_variable:
            read_vars[id(node)] = node
            return entry
        key = (id(node), entry.index)
        if key not in residual_vars:
            residual_vars[key] = variable(
                entry.shape, entry.dtype, name=f"{node.name}_saved{entry.index}"
            )
            residuals.append(entry)
        return Entry(residual_vars[key], 0)

    live = [out for out in outputs if out is not None]
    for node in topo_order(live):
        if id(node) in in_forward:
            continue
        if node.is_variable:  # a head-gradient variable
            rebuilt[id(node)] = node
            continue
        rebuilt[id(node)] = Node(
            node.op, node.attrs, tuple(map_entry(e) for e in node.inputs), node.types, node._name
        )
    new_outputs = [None if out is None else map_entry(out) for out in outputs]
    reads = [node for node in forward if id(node) in read_vars]
    stand_ins = [residual_vars[(id(e.node), e.index)] for e in residuals]
    return reads, residuals, stand_ins, new_outputs


def _size_free_key(graph: ReplayGraph) -> tuple:
    """A key equal for graphs that differ only in array sizes: the compiler's
    structural key (ops, attrs, wiring, leaf dtypes and length-one axes) and, to
    be safe, which axes of every value have length one (fused kernels are
    generated for that pattern)."""
    live = [out for out in graph.outputs if out is not None]
    nodes = topo_order(live)
    position = {id(var): i for i, var in enumerate(graph.inputs)}
    key, _ = structural_key(nodes, live, lambda node: position.get(id(node)))
    ones = tuple(tuple(size == 1 for size in t.shape) for node in nodes for t in node.types)
    # the structural key leaves out a leaf's attrs: creation nodes (_zeros whose 0
    # dims shape inference filled from this call's sizes) differ in them
    created = tuple(
        tuple(node.attrs.items()) for node in nodes if not node.inputs and not node.is_variable
    )
    return key, ones, created, tuple(out is None for out in graph.outputs), len(graph.inputs)


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, NDArray):
        return value._data
    return np.asarray(value)


def _input_arrays(symbol: Symbol, given: Mapping[str, Any], what: str) -> dict[str, np.ndarray]:
    """Arrays for every input of ``symbol`` by name, from ``given`` or, for
    recorded graphs, the values recorded on the variables."""
    unknown = sorted(set(given) - set(symbol.list_inputs()))
    if unknown:
        raise MXNetError(f"{what}: no input named {unknown}; the inputs are {symbol.list_inputs()}")
    arrays = {}
    for node in topo_order(symbol.entries):
        if not node.is_variable:
            continue
        if node.name in given:
            arrays[node.name] = _as_numpy(given[node.name])
        elif recorded_value(node) is not None:
            arrays[node.name] = recorded_value(node)[0]
        else:
            raise MXNetError(
                f"{what}: no value given for input {node.name!r}; the symbol's "
                f"inputs are {symbol.list_inputs()}"
            )
    return arrays


# ---------------------------------------------------------------------------
# eval and gradient
# ---------------------------------------------------------------------------


def evaluate_symbol(symbol: Symbol, given: Mapping[str, Any]) -> list[NDArray]:
    """``Symbol.eval``: the outputs for the given inputs, in predict mode."""
    arrays = _input_arrays(symbol, given, "eval")
    shapes = {k: v.shape for k, v in arrays.items()}
    dtypes = {k: v.dtype for k, v in arrays.items()}
    heads, inputs = _typed_inputs(symbol, shapes, dtypes, is_train=False)
    graph = ReplayGraph(inputs, list(heads))
    return [NDArray(v) for v in _run_program(graph, [arrays[n.name] for n in inputs])]


def gradient_symbol(symbol: Symbol, wrt: Sequence[str], shapes: Mapping[str, Any]) -> Symbol:
    """``Symbol.gradient``: d(sum of outputs)/d(each of ``wrt``) as a grouped Symbol."""
    if isinstance(wrt, str):
        wrt = [wrt]
    missing = [name for name in wrt if name not in symbol.list_inputs()]
    if missing:
        raise MXNetError(
            f"gradient: no argument named {missing}; the arguments are {symbol.list_arguments()}"
        )
    heads, inputs = _typed_inputs(symbol, shapes, {}, is_train=False)
    by_name = {node.name: node for node in inputs}
    seeds = [F.ones_like(Expr(head)).entry for head in heads]
    grads = _gradients(heads, [by_name[name] for name in wrt], seeds)
    return Symbol(
        [
            grad if grad is not None else F.zeros_like(Expr(Entry(by_name[n], 0))).entry
            for grad, n in zip(grads, wrt)
        ]
    )


# ---------------------------------------------------------------------------
# the functional replay API
# ---------------------------------------------------------------------------


class CompiledSymbol:
    """``f = symgrad.compile(sym, wrt)``; ``value, grads = f(**inputs)``.

    ``value`` is the output (a list for a grouped symbol) and ``grads`` a dict
    from each name in ``wrt`` to the gradient of the sum of the outputs (or of
    their products with ``head_grads``). Inputs may be numpy arrays or NDArrays;
    results are NDArrays if any input was one, numpy arrays otherwise. One
    replay graph computes values and gradients together; it is built once per
    input shapes and dtypes, and what a signature's calls need (a
    :class:`ReplayCall`) is kept in the compiler's program cache, not here.
    """

    def __init__(
        self,
        symbol: Symbol,
        wrt: Sequence[str] | None = None,
        is_train: bool = False,
        reuse_outputs: bool = False,
    ):
        self.symbol = symbol
        self.reuse_outputs = reuse_outputs
        self.wrt = list(
            symbol.list_arguments() if wrt is None else ([wrt] if isinstance(wrt, str) else wrt)
        )
        missing = [name for name in self.wrt if name not in symbol.list_inputs()]
        if missing:
            raise MXNetError(
                f"compile: no argument named {missing}; the arguments are {symbol.list_arguments()}"
            )
        self.is_train = is_train
        # this function's part of its entries' keys in the program cache: equal to
        # nothing else (an id() could be taken by a later function, a number could
        # begin some program's key)
        self._token = object()
        # calls like the last hot one, run with no key and no lookup (_hot_call):
        # one signature's, however many the function is called with; only while
        # the backend and the program cache are those it was made under
        self._hot: Any = None
        self._hot_under: tuple = ()
        # The input variables in graph order, found once: a call must not walk the
        # graph (W3-sized programs run in tens of microseconds).
        self._variables = [node for node in topo_order(symbol.entries) if node.is_variable]
        self._names = [node.name for node in self._variables]
        # The fast paths match given names one for one with the inputs' names: not
        # for a symbol with two inputs of the same name (an unknown name given
        # besides them must still be reported).
        self._distinct = len(set(self._names)) == len(self._names)
        self._count = len(symbol)

    def _replay_call(self, key: tuple, args: list[np.ndarray], seeded: bool) -> ReplayCall:
        """A new :class:`ReplayCall` for calls with the signature of ``args``. Its
        graph is built, keyed and dropped: the executable it finds (or makes) in
        the program cache is all it keeps."""
        graph = self._graph(dict(zip(self._names, args)), seeded)
        spare, size = None, _CALL_BYTES
        if self.reuse_outputs:
            spare = []
            sizes = [
                math.prod(out.shape) * np.dtype(out.dtype).itemsize
                for out in graph.outputs
                if out is not None
            ]
            if max(sizes, default=0) >= _RECYCLE_BYTES:  # results this call keeps
                size += sum(sizes)
        return ReplayCall(key, _runner_for(graph), spare, size)

    def _calls(self) -> dict[tuple, ReplayCall]:
        """This function's entries in the program cache now, by key."""
        return {
            key: call
            for key, call in session.current().programs.signatures().items()
            if key[0] is self._token
        }

    @property
    def _graphs(self) -> dict[tuple, ReplayCall]:
        """The signatures held for this function now (for inspection)."""
        return self._calls()

    @property
    def _direct(self) -> dict[tuple, Any]:
        """The signatures whose one-kernel program runs directly (for inspection)."""
        return {key: call.direct for key, call in self._calls().items() if call.direct}

    def _graph(self, arrays: dict[str, np.ndarray], seeded: bool) -> ReplayGraph:
        shapes = {k: v.shape for k, v in arrays.items()}
        dtypes = {k: v.dtype for k, v in arrays.items()}
        heads, inputs = _typed_inputs(self.symbol, shapes, dtypes, self.is_train)
        by_name = {node.name: node for node in inputs}
        head_vars = (
            [variable(h.shape, h.dtype, name=f"head_grad{i}") for i, h in enumerate(heads)]
            if seeded
            else []
        )
        seeds = (
            [Entry(v, 0) for v in head_vars]
            if seeded
            else [F.ones_like(Expr(h)).entry for h in heads]
        )
        grads = _gradients(heads, [by_name[n] for n in self.wrt], seeds)
        return ReplayGraph(inputs + head_vars, list(heads) + grads)

    def _arrays(self, inputs: dict[str, Any]) -> tuple[list[np.ndarray], bool]:
        """The input arrays in graph order, and whether any was an NDArray."""
        if len(inputs) == len(self._names) and self._distinct:  # every input given
            try:
                args = [inputs[name] for name in self._names]
            except KeyError:
                pass
            else:
                for arg in args:
                    if type(arg) is not np.ndarray:
                        break
                else:
                    return args, False
                for arg in args:  # all NDArrays (a hybridized block's call)
                    if type(arg) is not NDArray:
                        break
                else:
                    return [arg._data for arg in args], True
        args, wrapped, found = [], False, 0
        for node in self._variables:
            value = inputs.get(node.name)
            if value is None:
                recorded = recorded_value(node)
                if recorded is None:
                    raise MXNetError(
                        f"compile: no value given for input {node.name!r}; the "
                        f"symbol's inputs are {self._names}"
                    )
                args.append(recorded[0])  # a recorded graph's own value
                continue
            found += 1
            if isinstance(value, NDArray):
                wrapped = True
                value = value._data
            elif type(value) is not np.ndarray:
                value = np.asarray(value)
            args.append(value)
        if found != len(inputs):
            unknown = sorted(set(inputs) - set(self._names))
            raise MXNetError(f"compile: no input named {unknown}; the inputs are {self._names}")
        return args, wrapped

    def __call__(self, head_grads: Any = None, **inputs: Any):
        hot = self._hot
        if (
            hot is not None
            and head_grads is None
            and self._hot_under == _replay_epoch()
            and profiling.listener is None  # (profiled: each step timed, the general path)
        ):
            results = hot(inputs)
            if results is not None:
                return results
        args, wrapped = self._arrays(inputs)
        seeded = head_grads is not None
        key = (self._token, seeded, compiler.backend(), *map(_SHAPE_AND_DTYPE, args))
        programs = session.current().programs
        call = programs.signature(key)
        if call is None:
            # A new batch size is the same program: the cache gives the new
            # signature's entry the executable (and compiled kernels, which read
            # sizes from the arrays) of one that differs only in sizes.
            call = programs.keep_signature(key, self._replay_call(key, args, seeded))
        direct = call.direct if profiling.listener is None else None
        if direct is not None:  # a small one-kernel program, already compiled
            results = direct(args)
            if results is not None:
                if wrapped:
                    return self._finish(results, args, wrapped)
                # the next calls with these very classes, shapes and dtypes skip
                # even the direct runner's shape check
                fast = direct.specialised(args)
                if self._distinct and fast is not None:
                    self._hot = _hot_call(
                        self._names, args, fast, self._count, self.wrt, self.reuse_outputs
                    )
                    self._hot_under = _replay_epoch()
                return self._direct_result(results)
        if seeded:
            head_grads = head_grads if isinstance(head_grads, (list, tuple)) else [head_grads]
            if len(head_grads) != self._count:
                raise MXNetError(
                    f"compile: {len(head_grads)} head gradients for {self._count} outputs"
                )
            args = args + [_as_numpy(g) for g in head_grads]
        # With reuse_outputs, the previous call's results become this call's
        # output buffers (the caller declared it keeps none of them): fresh
        # multi-MB arrays cost page faults on every call. pop() makes concurrent
        # calls take disjoint buffers. Small arrays (under _RECYCLE_BYTES) are
        # cheaper to allocate than to recycle: those calls keep nothing.
        spare, previous = call.spare, None
        if spare is not None:
            try:
                previous = spare.pop()
            except IndexError:
                pass
        results = _run_program(call, args, previous)
        runner = call.runner
        if not (seeded or wrapped) and self._distinct:
            # a program that runs as one compiled call: the next calls with these very
            # classes, shapes and dtypes go straight to it
            fast = runner.specialised(args)
            if fast is not None and all(r is not None for r in results):
                self._hot = _hot_call(
                    self._names, args, fast, self._count, self.wrt, self.reuse_outputs
                )
                self._hot_under = _replay_epoch()
        if spare is not None and any(r is not None and r.nbytes >= _RECYCLE_BYTES for r in results):
            finished = self._finish(results, args, wrapped)
            if not spare:  # (one set kept, even if concurrent calls each made one)
                spare.append(results)
            return finished
        # Nothing to recycle: once compiled, a one-kernel program is called
        # directly from now on (not for seeded calls, which append head
        # gradients, nor where a gradient is structurally zero: see _finish).
        direct = runner.direct
        if direct is not None and not seeded and all(r is not None for r in results):
            call.direct = direct
        return self._finish(results, args, wrapped)

    def _direct_result(self, results: list):
        """``(value, grads)`` from a direct run's results (numpy inputs; direct
        runs are registered only where no gradient is structurally zero)."""
        count, wrt = self._count, self.wrt
        # (one gradient, the common case, without dict(zip(...)): a microsecond here)
        grads = {wrt[0]: results[count]} if len(wrt) == 1 else dict(zip(wrt, results[count:]))
        return (results[0] if count == 1 else results[:count]), grads

    def _finish(self, results: list, args: list, wrapped: bool):
        """``(value, grads)`` from the program's results."""
        count = self._count
        if wrapped:
            results = [None if v is None else NDArray(v) for v in results]
        grads = dict(zip(self.wrt, results[count:]))
        for grad in results[count:]:
            if grad is None:  # structurally zero gradients
                self._zeros(grads, args, wrapped)
                break
        return (results[0] if count == 1 else results[:count]), grads

    def _zeros(self, grads: dict, args: list, wrapped: bool) -> None:
        """Fill the structurally zero (None) gradients in ``grads`` with zeros."""
        for name, grad in grads.items():
            if grad is None:
                grad = np.zeros_like(args[self._names.index(name)])
                grads[name] = NDArray(grad) if wrapped else grad


def _replay_epoch() -> tuple:
    """What a replayed function's fast path was made under and must still hold:
    the backend chosen (by ``set_backend`` or the settings) and the program
    cache's generation (``clear_cache``). Read on every hot call: the settings'
    fields, not ``compiler.backend()``, which also validates the name."""
    chosen = compiler.settings.current()
    return chosen.chosen_backend, chosen.backend, session.current().programs.generation


def _hot_call(
    names: list[str],
    args: list[np.ndarray],
    fast: Any,
    count: int,
    wrt: list[str],
    reuse_outputs: bool,
) -> Any:
    """``hot(inputs)``: the result of a call whose keyword ``inputs`` are exactly
    ``names`` bound to numpy arrays of the classes, shapes and dtypes of ``args``,
    run by ``fast`` (a direct runner or a program's entry specialised to these
    shapes); None for any other call, or where ``fast`` gives up, which then takes
    the general path.

    A W3-sized program computes in about 5 us, so the check is written out per
    input instead of building and comparing key tuples; with ``reuse_outputs``
    the last call's results are written again (allocating costs about a
    microsecond an array here)."""
    expected = [(name, arg.__class__, arg.shape, arg.dtype) for name, arg in zip(names, args)]
    size = len(names)
    single = wrt[0] if len(wrt) == 1 else None
    spare: list[list] = []  # the last call's results; pop() keeps concurrent calls apart

    def hot(inputs: dict) -> tuple | None:
        if len(inputs) != size:
            return None
        given = []
        for name, cls, shape, dtype in expected:
            arg = inputs.get(name)
            # dtype by identity: numpy's builtin dtypes are singletons, and a
            # miss only sends the call down the general path
            if arg.__class__ is not cls or arg.shape != shape or arg.dtype is not dtype:
                return None
            given.append(arg)
        try:
            outs = spare.pop()
        except IndexError:
            outs = None
        results = fast(given, outs)
        if results is None:  # the entry gave up on these inputs
            return None
        value = results[0] if count == 1 else results[:count]
        grads = {single: results[count]} if single is not None else dict(zip(wrt, results[count:]))
        if reuse_outputs:
            spare.append(results)
        return value, grads

    return hot


# With reuse_outputs, results at least this big are the next call's output buffers.
_RECYCLE_BYTES = 1 << 16
# What a ReplayCall holds besides results: the object, its key (a shape and a
# dtype per input) and the cache's bookkeeping (measured with tracemalloc: ~1 KiB)
_CALL_BYTES = 1024


def compile(
    symbol: Symbol,
    wrt: Sequence[str] | None = None,  # noqa: A001
    is_train: bool = False,
    reuse_outputs: bool = False,
) -> CompiledSymbol:
    """A function computing ``symbol``'s value and its gradients w.r.t. ``wrt``.

    Parameters
    ----------
    symbol : Symbol
        The graph to replay.
    wrt : list of str, optional
        Argument names to differentiate with respect to (default: all arguments).
    is_train : bool
        Run Dropout/BatchNorm as in training.
    reuse_outputs : bool
        Declare that the caller keeps none of a call's results once it makes the
        next call with the same input shapes: that call then writes its results
        into the previous call's arrays instead of new ones (a training loop
        replaying multi-MB gradients saves their allocation and page faults).
        Off by default: every call returns new arrays.

    >>> import numpy as np, symgrad as mx
    >>> f = mx.compile(mx.sym.tanh(mx.sym.var("x")), wrt=["x"])
    >>> value, grads = f(x=np.zeros(2))
    >>> value.tolist(), grads["x"].tolist()
    ([0.0, 0.0], [1.0, 1.0])
    """
    return CompiledSymbol(symbol, wrt, is_train, reuse_outputs)


# ---------------------------------------------------------------------------
# Executor
# ---------------------------------------------------------------------------


def _by_name(values: Any, names: list[str], what: str, required: bool) -> dict[str, Any]:
    """Arrays given as a list (in ``names`` order) or a dict, as a dict."""
    if values is None:
        values = {}
    if isinstance(values, (list, tuple)):
        if len(values) != len(names):
            raise MXNetError(f"{what}: {len(values)} arrays for {len(names)} names {names}")
        values = dict(zip(names, values))
    if not isinstance(values, Mapping):
        raise MXNetError(f"{what} must be a list or a dict, got {type(values).__name__}")
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise MXNetError(f"{what}: unknown names {unknown}; expected {names}")
    if required:
        missing = [n for n in names if values.get(n) is None]
        if missing:
            raise MXNetError(f"{what}: no array given for {missing}")
    return {n: _as_ndarray(values[n]) for n in names if values.get(n) is not None}


def _as_ndarray(value: Any) -> NDArray:
    return value if isinstance(value, NDArray) else NDArray(np.asarray(value))


class Executor:
    """A symbol bound to argument, gradient and auxiliary arrays (MXNet's Executor).

    ``forward`` computes ``outputs`` from ``arg_dict`` (and updates BatchNorm's
    auxiliary states in training); ``backward`` writes or adds the gradients
    into ``grad_dict`` following ``grad_req``. The arrays are held, not copied:
    changing ``arg_dict['w']`` in place changes the next forward.

    >>> import symgrad as mx
    >>> x = mx.sym.var("x")
    >>> exe = (x * x).simple_bind(mx.cpu(), x=(2,))
    >>> exe.arg_dict["x"][:] = mx.nd.array([1, 2])
    >>> exe.forward(is_train=True)[0].asnumpy().tolist()
    [1.0, 4.0]
    >>> exe.backward()
    >>> exe.grad_dict["x"].asnumpy().tolist()
    [2.0, 4.0]
    """

    def __init__(
        self,
        symbol: Symbol,
        args: Any,
        args_grad: Any = None,
        grad_req: Any = "write",
        aux_states: Any = None,
    ):
        self._symbol = symbol
        arg_names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
        self.arg_dict = _by_name(args, arg_names, "bind args", required=True)
        self.aux_dict = _by_name(aux_states, aux_names, "bind aux_states", required=True)
        self.grad_dict = _by_name(args_grad, arg_names, "bind args_grad", required=False)
        self._grad_req = self._grad_reqs(grad_req, arg_names)
        for name, grad in self.grad_dict.items():
            if grad.shape != self.arg_dict[name].shape:
                raise MXNetError(
                    f"bind: gradient array for {name!r} has shape {grad.shape}, "
                    f"the argument has {self.arg_dict[name].shape}"
                )
        self._shapes = {k: v.shape for d in (self.arg_dict, self.aux_dict) for k, v in d.items()}
        self._dtypes = {
            k: np.dtype(v.dtype) for d in (self.arg_dict, self.aux_dict) for k, v in d.items()
        }
        self._plans: dict[bool, _ExecutorPlan] = {}
        self._saved: tuple[bool, list] | None = None
        heads, _ = _typed_inputs(symbol, self._shapes, self._dtypes, is_train=False)
        self.outputs = [NDArray(np.zeros(h.shape, h.dtype)) for h in heads]

    def _grad_reqs(self, grad_req: Any, names: list[str]) -> dict[str, str]:
        if isinstance(grad_req, str):
            reqs = {n: grad_req for n in names}
        elif isinstance(grad_req, (list, tuple)):
            reqs = dict(zip(names, grad_req))
        else:
            reqs = {n: grad_req.get(n, "null") for n in names}
        for name, req in reqs.items():
            if req not in _GRAD_REQS:
                raise MXNetError(f"unknown grad_req {req!r} for {name!r}; use one of {_GRAD_REQS}")
        return {n: (r if n in self.grad_dict else "null") for n, r in reqs.items()}

    # -- MXNet's listings ---------------------------------------------------------
    @property
    def arg_arrays(self) -> list[NDArray]:
        """Argument arrays in ``list_arguments`` order."""
        return [self.arg_dict[n] for n in self._symbol.list_arguments()]

    @property
    def grad_arrays(self) -> list[NDArray | None]:
        """Gradient arrays in ``list_arguments`` order (None where not bound)."""
        return [self.grad_dict.get(n) for n in self._symbol.list_arguments()]

    @property
    def aux_arrays(self) -> list[NDArray]:
        """Auxiliary-state arrays in ``list_auxiliary_states`` order."""
        return [self.aux_dict[n] for n in self._symbol.list_auxiliary_states()]

    @property
    def output_dict(self) -> dict[str, NDArray]:
        """Outputs by name."""
        return dict(zip(self._symbol.list_outputs(), self.outputs))

    # -- running -------------------------------------------------------------------
    def _plan(self, is_train: bool) -> _ExecutorPlan:
        plan = self._plans.get(is_train)
        if plan is None:
            wrt = [n for n, r in self._grad_req.items() if r != "null"]
            plan = self._plans[is_train] = _ExecutorPlan(
                self._symbol, self._shapes, self._dtypes, is_train, wrt
            )
        return plan

    def forward(self, is_train: bool = False, **kwargs: Any) -> list[NDArray]:
        """Compute the outputs; keyword arrays are first copied into ``arg_dict``."""
        for name, value in kwargs.items():
            if name not in self.arg_dict:
                raise MXNetError(
                    f"forward: no argument named {name!r}; the arguments are "
                    f"{self._symbol.list_arguments()}"
                )
            np.copyto(self.arg_dict[name]._data, _as_numpy(value), casting="unsafe")
        plan = self._plan(bool(is_train))
        values = {**self.arg_dict, **self.aux_dict}
        results = _run_program(plan.forward, [values[n.name]._data for n in plan.forward.inputs])
        for out, value in zip(self.outputs, results):
            np.copyto(out._data, value, casting="unsafe")
        self._saved = (bool(is_train), results[len(self.outputs) :])
        return self.outputs

    def backward(self, out_grads: Any = None, is_train: bool = True) -> None:
        """Gradients of the outputs (times ``out_grads``, ones by default) into
        ``grad_dict``, for the inputs of the last ``forward``."""
        if self._saved is None:
            raise MXNetError("backward: call forward first")
        mode, residuals = self._saved
        plan = self._plan(mode)
        if out_grads is None:
            head_grads = [np.ones(o.shape, o.dtype) for o in self.outputs]
        else:
            out_grads = out_grads if isinstance(out_grads, (list, tuple)) else [out_grads]
            if len(out_grads) != len(self.outputs):
                raise MXNetError(
                    f"backward: {len(out_grads)} out_grads for {len(self.outputs)} outputs"
                )
            head_grads = [_as_numpy(g) for g in out_grads]
        values = {**self.arg_dict, **self.aux_dict}
        args = [values[n.name]._data for n in plan.backward_reads] + list(residuals) + head_grads
        # 'write' gradients are computed straight into the bound arrays where the
        # program can (a compiled program writes its kernels' outputs there).
        targets = [
            self.grad_dict[name]._data if self._grad_req[name] == "write" else None
            for name in plan.wrt
        ]
        grads = _run_program(plan.backward, args, targets)
        for name, grad in zip(plan.wrt, grads):
            write_gradient(self.grad_dict[name]._data, grad, self._grad_req[name])

    def copy_params_from(
        self,
        arg_params: Mapping[str, Any],
        aux_params: Mapping[str, Any] | None = None,
        allow_extra_params: bool = False,
    ) -> None:
        """Copy parameter arrays into ``arg_dict``/``aux_dict`` by name."""
        for params, target in ((arg_params, self.arg_dict), (aux_params or {}, self.aux_dict)):
            for name, value in params.items():
                if name in target:
                    np.copyto(target[name]._data, _as_numpy(value), casting="unsafe")
                elif not allow_extra_params:
                    raise MXNetError(
                        f"copy_params_from: {name!r} is not a parameter of this executor"
                    )

    def __repr__(self) -> str:
        return f"<Executor {self._symbol.list_outputs()}>"


class _ExecutorPlan:
    """The forward and backward replay graphs of an executor in one mode.

    The forward graph computes the outputs and the values the backward reads
    (residuals: Dropout's mask, activations...); the backward graph takes the
    arguments it needs, the residuals and the head gradients. Random draws
    thus happen once, in the forward.
    """

    def __init__(self, symbol: Symbol, shapes: dict, dtypes: dict, is_train: bool, wrt: list[str]):
        heads, inputs = _typed_inputs(symbol, shapes, dtypes, is_train)
        by_name = {node.name: node for node in inputs}
        self.wrt = wrt
        head_vars = [variable(h.shape, h.dtype, name=f"head_grad{i}") for i, h in enumerate(heads)]
        grads = (
            _gradients(heads, [by_name[n] for n in wrt], [Entry(v, 0) for v in head_vars])
            if wrt
            else []
        )
        forward_nodes = topo_order(heads)
        reads, residuals, stand_ins, outputs = _cut(grads, forward_nodes)
        self.backward_reads = reads
        self.forward = ReplayGraph(inputs, list(heads) + residuals)
        self.backward = ReplayGraph(reads + stand_ins + head_vars, outputs)


def simple_bind(
    symbol: Symbol, grad_req: Any, type_dict: Mapping | None, shapes: Mapping[str, Any]
) -> Executor:
    """``Symbol.simple_bind``: allocate zero arrays of the inferred shapes and bind."""
    heads_typed = materialize(symbol.entries, shapes, type_dict or {})
    arrays: dict[str, NDArray] = {}
    for node in topo_order(symbol.entries):
        if node.is_variable:
            node_type = heads_typed.type_of(node)
            arrays[node.name] = NDArray(np.zeros(node_type.shape, node_type.dtype))
    args = {n: arrays[n] for n in symbol.list_arguments()}
    aux = {n: arrays[n] for n in symbol.list_auxiliary_states()}
    if isinstance(grad_req, str):
        reqs = {n: grad_req for n in args}
    elif isinstance(grad_req, (list, tuple)):
        reqs = dict(zip(args, grad_req))
    else:
        reqs = dict(grad_req)
    grads = {
        n: NDArray(np.zeros_like(a._data)) for n, a in args.items() if reqs.get(n, "null") != "null"
    }
    return Executor(symbol, args, grads, reqs, aux)


__all__ = [
    "Executor",
    "CompiledSymbol",
    "ReplayCall",
    "ReplayGraph",
    "compile",
    "evaluate_symbol",
    "gradient_symbol",
    "simple_bind",
]
