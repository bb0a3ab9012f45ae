"""Gluon Blocks: ``Block``, ``HybridBlock`` and ``SymbolBlock``.

A Block is a name scope, a dict of Parameters and a ``forward``. A HybridBlock
writes ``hybrid_forward(F, x, *args, **params)`` once for both worlds: ``F`` is
``mx.nd`` when called imperatively and ``mx.sym`` when traced.

``hybridize()`` makes a HybridBlock run its traced Symbol instead of Python:
outside ``autograd.record()`` the Symbol is replayed as one compiled program
(``mx.compile``: values only, one program per train/predict mode, shared across
batch sizes); inside a recording its nodes are added to the recording in one
walk, with no numpy work per op, so that ``backward`` differentiates the block
together with whatever surrounds it, recognises the repeated step and runs one
compiled program for the forward and the backward (and gradients of any
order, since the recording is an ordinary graph).

>>> import symgrad as mx
>>> class Scale(mx.gluon.HybridBlock):
...     def __init__(self, **kwargs):
...         super().__init__(**kwargs)
...         with self.name_scope():
...             self.alpha = self.params.get("alpha", shape=(1,), init=mx.init.Constant(2.0))
...     def hybrid_forward(self, F, x, alpha):
...         return F.broadcast_mul(x, alpha)
>>> net = Scale(prefix="scale_")
>>> net.initialize()
>>> net(mx.nd.array([1.0, 2.0])).asnumpy().tolist()
[2.0, 4.0]
>>> net.hybridize()
>>> net(mx.nd.array([1.0, 2.0])).asnumpy().tolist()
[2.0, 4.0]
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from symgrad_compiler import Entry, topo_order

from .. import _state, autograd
from .. import ndarray as nd
from .. import symbol as sym
from .._deferred import track
from .._recorded import RecordedNode
from ..anomaly import note_site
from ..base import MXNetError
from ..executor import CompiledSymbol
from ..name import Prefix
from ..ndarray.ndarray import NDArray, _entry, _input_entry, invoke
from ..symbol import Symbol
from .parameter import (
    DeferredInitializationError,
    Parameter,
    ParameterDict,
    check_loaded_names,
    select_parameters,
)

# ---------------------------------------------------------------------------
# names: prefixes as MXNet gives them
# ---------------------------------------------------------------------------

_local = threading.local()


def _global_counters() -> dict[str, int]:
    """Per-thread counters naming top-level blocks (``dense0_``, ``dense1_``...)."""
    counters = getattr(_local, "counters", None)
    if counters is None:
        counters = _local.counters = {}
    return counters


class _BlockScope:
    """The scope ``with block.name_scope():`` opens: children made inside get
    their prefix from the block's own counters, and their Parameters a dict
    under the block's prefix."""

    def __init__(self, block: Block):
        self._block = block
        self._counters: dict[str, int] = {}
        self._previous: list[_BlockScope | None] = []

    @staticmethod
    def create(
        prefix: str | None, params: ParameterDict | None, hint: str
    ) -> tuple[str, ParameterDict]:
        """The full prefix and the Parameter dict of a new block."""
        current = getattr(_local, "scope", None)
        if current is None:
            if prefix is None:
                counters = _global_counters()
                prefix = f"{hint}{counters.get(hint, 0)}_"
                counters[hint] = counters.get(hint, 0) + 1
            shared = None if params is None else params
            return prefix, ParameterDict(prefix if params is None else params.prefix, shared)
        if prefix is None:
            count = current._counters.get(hint, 0)
            current._counters[hint] = count + 1
            prefix = f"{hint}{count}_"
        parent = current._block.params
        if params is None:
            params = ParameterDict(parent.prefix + prefix, parent._shared)
        else:
            params = ParameterDict(params.prefix, params)
        return current._block.prefix + prefix, params

    def __enter__(self) -> _BlockScope:
        if self._block._empty_prefix:
            return self
        self._previous.append((getattr(_local, "scope", None), Prefix(self._block.prefix)))
        _local.scope = self
        self._previous[-1][1].__enter__()  # symbols made inside are named under the prefix
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._block._empty_prefix:
            return
        _local.scope, names = self._previous.pop()
        names.__exit__()


def _indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


# ---------------------------------------------------------------------------
# Block
# ---------------------------------------------------------------------------


class Block:
    """The base of every layer and model: a name scope, Parameters, child
    Blocks and a ``forward``.

    Parameters
    ----------
    prefix : str, optional
        Prefix of this block's name and of its Parameters' names (default: the
        class name in lower case and a counter, ``dense0_``).
    params : ParameterDict, optional
        Parameters to share (those of another block's ``collect_params()``).
    """

    def __init__(self, prefix: str | None = None, params: ParameterDict | None = None):
        self._empty_prefix = prefix == ""
        self._prefix, self._params = _BlockScope.create(prefix, params, self._alias())
        self._name = self._prefix[:-1] if self._prefix.endswith("_") else self._prefix
        self._scope = _BlockScope(self)
        self._children: OrderedDict[str, Block] = OrderedDict()
        self._reg_params: dict[str, Parameter] = {}
        self._forward_hooks: OrderedDict[int, Callable] = OrderedDict()
        self._forward_pre_hooks: OrderedDict[int, Callable] = OrderedDict()

    def _alias(self) -> str:
        return self.__class__.__name__.lower()

    def __repr__(self) -> str:
        children = "\n".join(
            f"  ({key}): {_indent(repr(block), 2)}"
            for key, block in self.__dict__.get("_children", {}).items()
        )
        return f"{self.__class__.__name__}(\n{children}\n)"

    def __setattr__(self, name: str, value: Any) -> None:
        """Registers child Blocks and Parameters assigned as attributes."""
        if hasattr(self, name):
            existing = getattr(self, name)
            if isinstance(existing, (Parameter, Block)) and not isinstance(value, type(existing)):
                raise TypeError(
                    f"Changing attribute type for {name} from {type(existing)} to "
                    f"{type(value)} is not allowed."
                )
        if isinstance(value, Block):
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            if name in self.__dict__.get("_reg_params", {}) and self._reg_params[name] is not value:
                raise MXNetError(
                    f"Overriding Parameter attribute {name} is not allowed. If "
                    "you want to share parameters between blocks, please set "
                    "'params' at Block construction instead."
                )
            self._reg_params[name] = value
        super().__setattr__(name, value)

    # -- names and parameters -------------------------------------------------
    @property
    def prefix(self) -> str:
        """The prefix of this block's and its Parameters' names."""
        return self._prefix

    @property
    def name(self) -> str:
        """The block's name (its prefix without the last underscore)."""
        return self._name

    @property
    def params(self) -> ParameterDict:
        """This block's own Parameters (not its children's: see ``collect_params``)."""
        return self._params

    def name_scope(self) -> _BlockScope:
        """A scope in which child blocks get names under this block's prefix."""
        return self._scope

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """This block's and all its descendants' Parameters, those whose names
        match the regular expression ``select`` if given."""
        collected = ParameterDict(self._params.prefix)
        collected.update(select_parameters(self._params, select))
        for child in self._children.values():
            collected.update(child.collect_params(select))
        return collected

    def _collect_params_with_prefix(self, prefix: str = "") -> dict[str, Parameter]:
        """Parameters keyed by their attribute path (``0.weight``, ``features.1.bias``),
        the names ``save_parameters`` writes."""
        if prefix:
            prefix += "."
        found = {prefix + key: value for key, value in self._reg_params.items()}
        for name, child in self._children.items():
            found.update(child._collect_params_with_prefix(prefix + name))
        return found

    def register_child(self, block: Block, name: str | None = None) -> None:
        """Make ``block`` a child (named by its position if no ``name``)."""
        if name is None:
            name = str(len(self._children))
        self._children[name] = block

    def register_forward_pre_hook(self, hook: Callable) -> _HookHandle:
        """Call ``hook(block, inputs)`` before every forward."""
        return _HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable) -> _HookHandle:
        """Call ``hook(block, inputs, outputs)`` after every forward."""
        return _HookHandle(self._forward_hooks, hook)

    def apply(self, fn: Callable[[Block], Any]) -> Block:
        """Call ``fn`` on every descendant and then on this block; returns self."""
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def initialize(
        self, init: Any = None, ctx: Any = None, verbose: bool = False, force_reinit: bool = False
    ) -> None:
        """Initialize all Parameters (``collect_params().initialize``)."""
        self.collect_params().initialize(init, ctx, verbose, force_reinit)

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """Hybridize every HybridBlock among the descendants (a plain Block itself
        stays imperative)."""
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    def cast(self, dtype: Any) -> None:
        """Cast every Parameter (of this block and its children) to ``dtype``."""
        for child in self._children.values():
            child.cast(dtype)
        for param in self.params.values():
            param.cast(dtype)

    def zero_grad(self) -> None:
        """Zero the gradients of all Parameters."""
        self.collect_params().zero_grad()

    def reset_ctx(self, ctx: Any) -> None:
        """Move all Parameters to ``ctx``."""
        self.collect_params().reset_ctx(ctx)

    # -- saving and loading ---------------------------------------------------
    def save_parameters(self, filename: str, deduplicate: bool = False) -> None:
        """Write the Parameters' values to ``filename`` (MXNet's NDArray format),
        keyed by attribute path (``0.weight``); ``deduplicate`` writes a shared
        Parameter once."""
        params = self._collect_params_with_prefix()
        if deduplicate:
            # a shared Parameter is written once, under its last name (as MXNet)
            last = {id(p): key for key, p in params.items()}
            params = {key: p for key, p in params.items() if last[id(p)] == key}
        nd.save(filename, {key: p._reduce() for key, p in params.items()})

    def load_parameters(
        self,
        filename: str,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        cast_dtype: bool = False,
        dtype_source: str = "current",
    ) -> None:
        """Read values written by ``save_parameters`` (or, for files keyed by full
        names, by ``collect_params().save``/MXNet's ``export``)."""
        loaded = nd.load(filename)
        if not isinstance(loaded, dict):
            raise MXNetError(f"{filename!r} holds an unnamed list of arrays, not parameters")
        params = self._collect_params_with_prefix()
        if not loaded and not params:
            return
        if not any("." in key for key in loaded):
            # full names (the legacy format): load through the ParameterDict
            self.collect_params().load(
                filename,
                ctx,
                allow_missing,
                ignore_extra,
                self.prefix,
                cast_dtype=cast_dtype,
                dtype_source=dtype_source,
            )
            return
        check_loaded_names(params, loaded, filename, allow_missing, ignore_extra, "this Block")
        for name, value in loaded.items():
            if name in params:
                params[name]._load_init(
                    value, ctx, cast_dtype=cast_dtype, dtype_source=dtype_source
                )

    # MXNet 1.x's older names
    def save_params(self, filename: str) -> None:
        """Deprecated spelling of ``collect_params().save(filename, strip_prefix=prefix)``."""
        warnings.warn("save_params is deprecated. Please use save_parameters.", stacklevel=2)
        self.collect_params().save(filename, strip_prefix=self.prefix)

    def load_params(
        self,
        filename: str,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
    ) -> None:
        """Deprecated spelling of ``load_parameters``."""
        warnings.warn("load_params is deprecated. Please use load_parameters.", stacklevel=2)
        self.load_parameters(filename, ctx, allow_missing, ignore_extra)

    # -- calling --------------------------------------------------------------
    def __call__(self, *args: Any) -> Any:
        """Run the pre-hooks, ``forward`` and the hooks."""
        for hook in self._forward_pre_hooks.values():
            hook(self, args)
        out = self.forward(*args)
        for hook in self._forward_hooks.values():
            hook(self, args, out)
        return out

    def forward(self, *args: Any) -> Any:
        """The computation; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def summary(self, *inputs: Any) -> None:
        """Print each layer's output shape and parameter count for ``inputs``
        (refused, as MXNet, when a block in it is hybridized: hooks see no
        layer inside a traced graph)."""

        def refuse_hybridized(block: Block) -> None:
            if getattr(block, "_active", False):
                raise AssertionError(f'"{block.name}" must not be hybridized to print summary.')

        self.apply(refuse_hybridized)
        rows: list[tuple[str, str, int]] = []
        handles = []

        def shape_of(value: Any) -> str:
            if isinstance(value, (list, tuple)):
                return ", ".join(shape_of(v) for v in value)
            return str(value.shape) if hasattr(value, "shape") else repr(value)

        def hook(block: Block, args: Any, out: Any) -> None:
            count = sum(
                int(np.prod(p.shape)) for p in block._reg_params.values() if p.shape is not None
            )
            rows.append((f"{block.__class__.__name__}-{len(rows) + 1}", shape_of(out), count))

        self.apply(
            lambda block: (
                handles.append(block.register_forward_hook(hook)) if block is not self else None
            )
        )
        try:
            out = self(*inputs)
        finally:
            for handle in handles:
                handle.detach()
        line = "-" * 80
        print(line)
        row = "{:>20}  {:>42} {:>15}"
        print(row.format("Layer (type)", "Output Shape", "Param #"))
        print("=" * 80)
        print(row.format("Input", shape_of(inputs), 0))
        for name, shape, count in rows:
            print(row.format(name, shape, count))
        print("=" * 80)
        params = self.collect_params().values()
        total = sum(int(np.prod(p.shape)) for p in params if p.shape is not None)
        trainable = sum(
            int(np.prod(p.shape)) for p in params if p.shape is not None and p.grad_req != "null"
        )
        print(
            f"Parameters in forward computation graph, duplicate included\n"
            f"   Total params: {total}\n   Trainable params: {trainable}\n"
            f"   Non-trainable params: {total - trainable}"
        )
        print(f"Shared params in forward computation graph: 0\nUnique parameters in model: {total}")
        print(line)
        del out


class _HookHandle:
    """Detaches a hook registered with ``register_forward(_pre)_hook``."""

    _next_id = 0

    def __init__(self, hooks: OrderedDict, hook: Callable):
        self._hooks = hooks
        self._id = _HookHandle._next_id
        _HookHandle._next_id += 1
        hooks[self._id] = hook

    def detach(self) -> None:
        """Remove the hook."""
        self._hooks.pop(self._id, None)

    def __enter__(self) -> _HookHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()


# ---------------------------------------------------------------------------
# HybridBlock
# ---------------------------------------------------------------------------


def _flatten(args: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The arrays (or symbols) of nested lists ``args``, and the nesting to undo it."""
    flat: list[Any] = []
    formats: list[Any] = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            inner, fmt = _flatten(arg)
            flat.extend(inner)
            formats.append(fmt)
        elif arg is None:
            formats.append(None)
        else:
            flat.append(arg)
            formats.append(0)
    return flat, formats


def _regroup(flat: Sequence[Any], formats: Any) -> Any:
    """Undo ``_flatten`` for one output format (0: one value; a list: nested)."""
    if formats == 0:  # one output: every hybridized call of a plain layer
        return flat[0]
    values = iter(flat)

    def build(fmt: Any) -> Any:
        if fmt == 0:
            return next(values)
        if fmt is None:
            return None
        return [build(f) for f in fmt]

    return build(formats)


class HybridBlock(Block):
    """A Block whose ``hybrid_forward(F, x, *args, **params)`` works with ``F`` as
    ``mx.nd`` (imperative) or ``mx.sym`` (traced), so it can be ``hybridize``d.

    Parameters given to ``hybrid_forward`` are the block's registered ones, by
    attribute name. Parameters whose shapes hold 0 are completed at the first
    call from the inputs' shapes (symbolic shape inference).
    """

    def __init__(self, prefix: str | None = None, params: ParameterDict | None = None):
        super().__init__(prefix, params)
        self._active = False
        self._cached_graph: tuple[list[Symbol], Symbol] | None = None
        self._out_format: Any = None
        self._in_format: Any = None  # the argument nesting the graph was traced with
        self._replays: dict[bool, CompiledSymbol] = {}
        self._plan: _CallPlan | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if isinstance(value, (HybridBlock, Parameter)):
            self._clear_cached_op()

    def register_child(self, block: Block, name: str | None = None) -> None:
        """Make ``block`` a child; a HybridBlock's children must be HybridBlocks."""
        if not isinstance(block, HybridBlock):
            raise ValueError(
                f"Children of HybridBlock must also be HybridBlock, but "
                f"{block!s} has type {type(block)!s}. If you are using "
                "Sequential, please try HybridSequential instead."
            )
        super().register_child(block, name)
        self._clear_cached_op()

    def hybridize(
        self,
        active: bool = True,
        static_alloc: bool = False,
        static_shape: bool = False,
        **kwargs: Any,
    ) -> None:
        """Run this block as its traced Symbol from the next call on (a compiled
        replay; see the module's docstring). ``static_alloc``/``static_shape`` are
        accepted: programs always plan their buffers once per shape."""
        self._active = active
        self._clear_cached_op()
        if active and (self._forward_hooks or self._forward_pre_hooks):
            warnings.warn(
                f'"{self.name}" is being hybridized while still having forward '
                'hook/pre-hook. If "{self.name}" is a child of HybridBlock, the '
                "hooks will not take effect.",
                stacklevel=2,
            )
        super().hybridize(active, static_alloc=static_alloc, static_shape=static_shape, **kwargs)

    def _clear_cached_op(self) -> None:
        self._cached_graph = None
        self._replays = {}
        self._plan = None

    def cast(self, dtype: Any) -> None:
        """Cast every Parameter to ``dtype`` (the traced graph is made again)."""
        self._clear_cached_op()
        super().cast(dtype)

    def hybrid_forward(self, F: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The computation, with ``F`` being ``mx.nd`` or ``mx.sym``; subclasses
        override it."""
        raise NotImplementedError(f"{type(self).__name__} must define hybrid_forward")

    # -- tracing --------------------------------------------------------------
    def _get_graph(self, *args: Any) -> tuple[list[Symbol], Symbol]:
        """The traced Symbol: ``hybrid_forward`` called with ``mx.sym`` on input
        variables named ``data`` (or ``data0``, ``data1``... for several)."""
        if self._cached_graph is None:
            flat, in_format = _flatten(args)
            self._in_format = in_format
            names = ["data"] if len(flat) == 1 else [f"data{i}" for i in range(len(flat))]
            inputs = [sym.var(name) for name in names]
            grouped = (
                _regroup(inputs, in_format)
                if len(args) > 1 or isinstance(args[0], (list, tuple))
                else [inputs[0]]
            )
            if not isinstance(grouped, list):
                grouped = [grouped]
            params = {name: p.var() for name, p in self._reg_params.items()}
            with self.name_scope():
                out = self.hybrid_forward(sym, *grouped, **params)
            outputs, self._out_format = _flatten([out])
            self._cached_graph = (inputs, outputs[0] if len(outputs) == 1 else sym.Group(outputs))
        return self._cached_graph

    def infer_shape(self, *args: Any) -> None:
        """Fill the unknown sizes of the Parameters' shapes from the inputs' shapes."""
        self._infer_attrs("shape", *args)

    def infer_type(self, *args: Any) -> None:
        """Fill the Parameters' dtypes from the inputs' dtypes (kept as declared here)."""
        self._infer_attrs("dtype", *args)

    def _infer_attrs(self, what: str, *args: Any) -> None:
        inputs, out = self._get_graph(*args)
        flat, _ = _flatten(args)
        given = {i.name: x.shape for i, x in zip(inputs, flat)}
        dtypes = {i.name: x.dtype for i, x in zip(inputs, flat)}
        params = {p.name: p for p in self.collect_params().values()}
        graph_inputs = set(out.list_inputs())
        for name, param in params.items():
            if name in graph_inputs and param.shape is not None and all(s > 0 for s in param.shape):
                given[name] = param.shape
        if what == "dtype":
            out.infer_type(**dtypes)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arg_shapes, _, aux_shapes = out.infer_shape_partial(**given)
        names = out.list_arguments() + out.list_auxiliary_states()
        for name, shape in zip(names, list(arg_shapes) + list(aux_shapes)):
            if name in params and shape:
                params[name].shape = shape

    def _deferred_infer_shape(self, *args: Any) -> None:
        try:
            self.infer_shape(*args)
        except Exception as err:
            raise ValueError(
                f"Deferred initialization failed because shape cannot be inferred. {err}"
            ) from err

    # -- calling --------------------------------------------------------------
    def forward(self, x: Any, *args: Any) -> Any:
        """Imperatively (NDArray inputs): ``hybrid_forward(mx.nd, ...)``, or the
        compiled replay when hybridized. With Symbol inputs: the traced Symbol."""
        if isinstance(x, Symbol):
            params = {name: p.var() for name, p in self._reg_params.items()}
            with self.name_scope():
                return self.hybrid_forward(sym, x, *args, **params)
        if self._active:
            return self._call_cached_op(x, *args)
        try:
            params = {name: p.data() for name, p in self._reg_params.items()}
        except DeferredInitializationError:
            self._deferred_infer_shape(x, *args)
            for param in self.params.values():
                param._finish_deferred_init()
            params = {name: p.data() for name, p in self._reg_params.items()}
        return self.hybrid_forward(nd, x, *args, **params)

    def _call_plan(self, *args: Any) -> _CallPlan:
        """What every call of the hybridized block needs and no call changes: made
        at the first call, dropped with the traced graph (``_clear_cached_op``)."""
        if self._plan is None:
            inputs, out = self._get_graph(*args)
            self._plan = _CallPlan(inputs, out, self.collect_params())
        return self._plan

    def _call_cached_op(self, *args: Any) -> Any:
        plan = self._call_plan(*args)
        try:
            values = {name: param.data() for name, param in plan.params}
        except DeferredInitializationError:
            self._deferred_infer_shape(*args)
            for _, param in plan.params:
                param._finish_deferred_init()
            values = {name: param.data() for name, param in plan.params}
        flat, in_format = _flatten(args)
        if self._in_format is not None and in_format != self._in_format:
            # MXNet's message, its two formats named as MXNet names them
            raise ValueError(
                "The argument structure of HybridBlock does not match the "
                f"cached version. Stored format = {in_format}, input format = "
                f"{self._in_format}"
            )
        for name, array in zip(plan.input_names, flat):
            if not isinstance(array, NDArray):
                raise TypeError(
                    f"{self.name}: inputs of a hybridized block must be NDArrays, "
                    f"got {type(array).__name__}"
                )
            values[name] = array
        if _state.recording.get():  # (autograd.is_recording())
            results = plan.record(values)
        else:
            training = autograd.is_training()
            replay = self._replays.get(training)
            if replay is None:
                replay = self._replays[training] = CompiledSymbol(
                    plan.out, wrt=[], is_train=training
                )
            value, _ = replay(**values)
            results = value if isinstance(value, list) else [value]
            results = [r if isinstance(r, NDArray) else NDArray(r) for r in results]
        return _regroup(results, self._out_format[0])

    def export(self, path: str, epoch: int = 0, remove_amp_cast: bool = True) -> tuple[str, str]:
        """Write ``path-symbol.json`` (the traced Symbol) and ``path-%04d.params``
        ('arg:'/'aux:' keys) for MXNet's ``SymbolBlock.imports``; returns both names."""
        if self._cached_graph is None:
            raise RuntimeError(
                "Please first call block.hybridize() and then run forward with "
                "this block at least once before calling export."
            )
        out = self._cached_graph[1]
        sym_file = f"{path}-symbol.json"
        out.save(sym_file)
        args, aux = set(out.list_arguments()), set(out.list_auxiliary_states())
        arrays = {}
        for name, param in self.collect_params().items():
            if name in args:
                arrays[f"arg:{name}"] = param._reduce()
            elif name in aux:
                arrays[f"aux:{name}"] = param._reduce()
        params_file = f"{path}-{epoch:04d}.params"
        nd.save(params_file, arrays)
        return sym_file, params_file


# attrs a traced node carries that the recording decides again at each call (train
# mode and random draws), so they are left out when the node is replayed
_STATE_ATTRS = ("is_train", "_draw")


class _CallPlan:
    """The facts a hybridized call reads, found once per traced graph: the input
    names, the Parameters bound to the graph's other variables, and the graph's
    nodes in topological order with the attrs they are recorded with (so that a
    recorded call walks no graph).

    Parameters
    ----------
    inputs : list of Symbol
        The traced input variables.
    out : Symbol
        The traced graph.
    params : ParameterDict
        The block's Parameters (``collect_params()``), matched by name.
    """

    def __init__(self, inputs: list[Symbol], out: Symbol, params: ParameterDict):
        self.out = out
        self.input_names = [variable.name for variable in inputs]
        order = topo_order(out.entries)
        names = [node.name for node in order if node.is_variable]
        self.params = [(name, params[name]) for name in names if name in params]
        # each variable and each op output has a slot; a step reads slots
        first: dict[Any, int] = {}  # node -> its first output's slot
        self.variables: list[tuple[str, int]] = []
        self.steps: list[tuple] = []
        slots = 0
        for node in order:
            first[node] = slots
            if node.is_variable:
                self.variables.append((node.name, slots))
                slots += 1
                continue
            attrs = {k: v for k, v in node.attrs.items() if k not in _STATE_ATTRS}
            # ops recorded without running (most): their nodes are made here, with
            # the attrs made canonical once; the others go through invoke
            direct = node.op.deferrable and not node.op.uses_train_mode
            reads = tuple([first[entry.node] + entry.index for entry in node.inputs])
            attrs = node.op.canonical_attrs(attrs) if direct else attrs
            self.steps.append((node.op, attrs, direct, reads, slots, node.num_outputs))
            slots += node.num_outputs
        self.slots = slots
        self.outputs = [first[entry.node] + entry.index for entry in out.entries]

    def record(self, values: dict[str, NDArray]) -> list[NDArray]:
        """Add the graph's nodes to the current recording, its variables bound to
        ``values`` by name; returns the arrays of its outputs.

        Only the outputs become arrays: the nodes in between are made as
        ``invoke`` would make them (checked against the step template, types
        inferred otherwise) but with no array of their own, which is what makes
        a hybridized call cheaper to record than the same ops called one by one.
        """
        tape = _state.recording.get()
        # per slot: an NDArray, or the Entry of a node made here
        slots: list[Any] = [None] * self.slots
        for name, slot in self.variables:
            slots[slot] = values[name]
        for op, attrs, direct, reads, at, count in self.steps:
            inputs = [slots[k] for k in reads]
            if direct:
                for x in inputs:  # (any input with history: recorded)
                    if type(x) is Entry or x._entry is not None:
                        made = _made_node(tape, op, attrs, inputs)
                        break
                else:
                    made = None
                if made is not None:
                    for i in range(count):
                        slots[at + i] = _entry((made, i))
                    continue
            arrays = [NDArray(None, x) if type(x) is Entry else x for x in inputs]
            result = invoke(op, arrays, attrs)
            for i, array in enumerate(result if isinstance(result, list) else (result,)):
                slots[at + i] = array
        return [_as_array(slots[k]) for k in self.outputs]


def _made_node(tape: Any, op: Any, attrs: dict, inputs: list) -> Any:
    """The recorded node of ``op`` on ``inputs`` (arrays or entries), made as
    ``invoke`` makes a deferred op's; None where its types cannot be inferred
    (``invoke`` then raises MXNet's error, naming the op and the shapes)."""
    entries = tuple([x if type(x) is Entry else _input_entry(x) for x in inputs])
    types = tape.expect(op, attrs, entries)
    checked = types is not None
    if not checked:
        try:
            types = tuple(op.infer([e.node.types[e.index] for e in entries], **attrs))
        except Exception:  # noqa: BLE001
            return None
    made = RecordedNode(op, attrs, entries, types)
    made.pending = (_gone,) * len(types)  # no array reads it yet (see _as_array)
    tape.add(made, checked)
    if _state.anomaly:
        note_site(made)
    return made


def _gone() -> None:
    """The weak reference of an output no array holds."""
    return None


def _as_array(value: Any) -> NDArray:
    """An output of a recorded hybridized call as an array: a node made by
    ``_made_node`` gets its deferred array here (tracked as invoke's are)."""
    if type(value) is not Entry:
        return value
    made = value.node.pending[value.index]()
    if made is not None:
        # the graph returns this output twice (``return y, y``): one array, as
        # the block's own forward returns; a second would be tracked by nothing
        # and unreadable once backward frees the graph
        return made
    array = NDArray(None, value)
    refs = list(value.node.pending)
    refs[value.index] = track(array)
    value.node.pending = tuple(refs)
    return array


# ---------------------------------------------------------------------------
# SymbolBlock
# ---------------------------------------------------------------------------


class SymbolBlock(HybridBlock):
    """A Block running a given Symbol: ``outputs`` as a function of the ``inputs``
    variables, every other argument and auxiliary state of it a Parameter.

    Parameters
    ----------
    outputs : Symbol or list of Symbol
        The graph's outputs.
    inputs : Symbol or list of Symbol
        The variables given at call time.
    params : ParameterDict, optional
        Parameters to use for the other variables, by name.
    """

    def __init__(self, outputs: Any, inputs: Any, params: ParameterDict | None = None):
        super().__init__(prefix="", params=None)
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        out = outputs[0] if len(outputs) == 1 else sym.Group(outputs)
        input_names = [i.name for i in inputs]
        for name in input_names:
            if name not in out.list_inputs():
                raise MXNetError(
                    f"SymbolBlock: input {name!r} is not an input of the symbol, "
                    f"whose inputs are {out.list_inputs()}"
                )
        self._input_names = input_names
        aux = set(out.list_auxiliary_states())
        for name in out.list_inputs():
            if name in input_names:
                continue
            shared = params._get_impl(name) if params is not None else None
            if shared is not None:
                self._params._params[name] = shared
            else:
                self._params.get(
                    name, grad_req="null" if name in aux else "write", allow_deferred_init=True
                )
        # the symbol's own variables stand for the inputs, in the order given
        variables = {node.name: node for node in topo_order(out.entries) if node.is_variable}
        self._cached_graph = ([Symbol([Entry(variables[n], 0)]) for n in input_names], out)
        # one output per entry, as MXNet: a grouped symbol's outputs come back as a list
        count = len(out.list_outputs())
        self._out_format = [[0] * count if count > 1 else 0]
        self._active = True

    def _clear_cached_op(self) -> None:
        # the graph is given, not traced: keep it; only the replays and the plan go
        self._replays = {}
        self._plan = None

    @staticmethod
    def imports(
        symbol_file: str,
        input_names: Any,
        param_file: str | None = None,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
    ) -> SymbolBlock:
        """A SymbolBlock from ``-symbol.json`` (and its ``.params``) files written by
        ``export`` here or by MXNet."""
        out = sym.load(symbol_file)
        names = [input_names] if isinstance(input_names, str) else list(input_names)
        block = SymbolBlock(out, [sym.var(n) for n in names])
        if param_file is not None:
            # as MXNet: the parameters take the saved files' dtypes (float64 exports load)
            block.collect_params().load(
                param_file, ctx, allow_missing, ignore_extra, cast_dtype=True, dtype_source="saved"
            )
        return block

    def forward(self, x: Any, *args: Any) -> Any:
        """Run the symbol on NDArrays, or compose it with Symbols."""
        if isinstance(x, Symbol):
            given = dict(zip(self._input_names, (x, *args)))
            return self._cached_graph[1](**given)  # type: ignore[index]
        return self._call_cached_op(x, *args)

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """A SymbolBlock always runs its symbol; this only clears its replays."""
        self._clear_cached_op()

    def _get_graph(self, *args: Any) -> tuple[list[Symbol], Symbol]:
        assert self._cached_graph is not None
        return self._cached_graph


__all__ = ["Block", "HybridBlock", "SymbolBlock"]
