"""``mx.sym``: symbolic graphs over the same IR the recorder builds.

A :class:`Symbol` is a list of graph entries (several for a grouped symbol).
Variables may be declared without a shape; see :mod:`symgrad.symbol_types` for
how such graphs are typed later (``infer_shape``, ``bind``).

>>> import symgrad as mx
>>> x = mx.sym.var("x")
>>> y = mx.sym.tanh(x * 2, name="y")
>>> y.list_arguments(), y.list_outputs()
(['x'], ['y_output'])
>>> y.infer_shape(x=(2, 3))
([(2, 3)], [(2, 3)], [])
"""

from __future__ import annotations

import ast
import builtins
import html
import numbers
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from symgrad_compiler import (
    OPS,
    Entry,
    GraphError,
    Node,
    OpDef,
    OperatorMixin,
    bind_arguments,
    topo_order,
)
from symgrad_compiler.expr import _attrs_for_inputs
from symgrad_compiler.ir import TensorType
from symgrad_compiler.ops.common import same_shape_types
from symgrad_compiler.registry import NULL, get_op

from ._namespace import num_args_inputs, refuse_numpy
from ._op_docs import op_docstring
from ._recorded import copy_node
from .attribute import (
    AttrScope,
    check_strings,
    given_keys,
    listed,
    op_node_attrs,
    set_given_keys,
    set_op_node_attrs,
)
from .base import MXNetError, MXNetShapeError
from .name import scoped_name
from .symbol_types import UNKNOWN, apply_op, materialize, warn_unknown

# Attributes the graph needs but MXNet's JSON and attribute listings do not carry.
INTERNAL_ATTRS = frozenset({"is_train", "_draw", "callback"})

# MXNet's integer codes for dtypes, as written in a variable's ``__dtype__``.
DTYPE_CODES = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "uint8": 3,
    "int32": 4,
    "int8": 5,
    "int64": 6,
    "bool": 7,
    "int16": 8,
    "uint16": 9,
    "uint32": 10,
    "uint64": 11,
}
DTYPE_NAMES = {code: name for name, code in DTYPE_CODES.items()}


def format_attr(value: Any) -> str:
    """An attribute value in MXNet's string spelling (``(2, 3)``, ``True``, ``0.5``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        items = ", ".join("None" if v is None else format_attr(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, float) and value.is_integer() and builtins.abs(value) < 1e15:
        return str(int(value))
    return str(value)


def output_name(entry: Entry) -> str:
    """MXNet's name of one output: the variable's name, ``<node>_output`` or
    ``<node>_output<i>`` for a node with several visible outputs."""
    node = entry.node
    if node.is_variable:
        return node.name
    if visible_count(node) == 1:
        return f"{node.name}_output"
    return f"{node.name}_output{entry.index}"


def visible_count(node: Node) -> int:
    """How many outputs of ``node`` a user sees (Dropout's mask is hidden)."""
    if node.attrs.get("output_mean_var"):
        return node.num_outputs
    return node.op.visible(node.attrs) or node.num_outputs


# How MXNet names the nodes Symbol's operators and functions make with a scalar
# (``a + 1`` is ``_plusscalar0``): from the legacy op names they call.
_OPERATOR_HINTS = {
    f"_{op}_scalar": f"_{op}scalar"
    for op in (
        "plus",
        "minus",
        "rminus",
        "mul",
        "div",
        "rdiv",
        "mod",
        "rmod",
        "power",
        "rpower",
        "maximum",
        "minimum",
        "hypot",
    )
}


def _scalar_symbol(op: str, symbol: Symbol, scalar: Any, hint: str | None) -> Symbol:
    """``op`` of a symbol and a number, named as MXNet's operators name it."""
    if isinstance(scalar, (bool, np.bool_)):
        # MXNet parses the scalar as a double and refuses 'True'
        raise MXNetError(
            f"Invalid Parameter format for scalar expect double but value='{scalar}', "
            f'in operator {op}(name="", scalar="{scalar}")'
        )
    name = scoped_name(None, hint or _OPERATOR_HINTS.get(op, op))
    return _make_symbol(get_op(op), [symbol._single_entry()], {"scalar": scalar}, name, scoped=True)


def _operator(
    tensor_op: str,
    tensor_hint: str,
    scalar_op: str,
    scalar_hint: str | None = None,
    reflected: bool = False,
):
    """A Symbol operator: ``tensor_op`` of two symbols (a node named ``tensor_hint``
    and a counter), ``scalar_op`` of a symbol and a number."""

    def operator(self: Symbol, other: Any) -> Any:
        if isinstance(other, Symbol):
            pair = (other, self) if reflected else (self, other)
            entries = [pair[0]._single_entry(), pair[1]._single_entry()]
            name = scoped_name(None, tensor_hint)
            return _make_symbol(get_op(tensor_op), entries, {}, name, scoped=True)
        if isinstance(other, (numbers.Number, np.bool_)):
            return _scalar_symbol(scalar_op, self, other, scalar_hint)
        return NotImplemented

    operator.__name__ = tensor_op
    operator.__doc__ = (
        f"``{tensor_op}`` of two Symbols of one shape; ``{scalar_op}`` with a number."
    )
    return operator


class Symbol(OperatorMixin):
    """A symbolic graph: one or several outputs of graph nodes.

    Symbols are immutable; every operation returns a new one.

    >>> import symgrad as mx
    >>> a, b = mx.sym.var("a"), mx.sym.var("b")
    >>> c = a * b + 1
    >>> c.list_arguments()
    ['a', 'b']
    >>> [float(v) for v in c.eval(a=mx.nd.array([2]), b=mx.nd.array([3]))[0].asnumpy()]
    [7.0]
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Sequence[Entry]):
        self._entries = list(entries)

    # -- OperatorMixin ------------------------------------------------------
    def _apply(self, op, inputs, attrs):
        opdef = get_op(op) if isinstance(op, str) else op
        name = scoped_name(None, _OPERATOR_HINTS.get(opdef.name, opdef.name.lower()))
        return _make_symbol(opdef, [s._single_entry() for s in inputs], attrs, name)

    def _single_entry(self) -> Entry:
        if len(self._entries) != 1:
            raise MXNetError(
                f"a grouped symbol of {len(self._entries)} outputs cannot be "
                "an op input; index it first"
            )
        return self._entries[0]

    # -- operators: MXNet's ops and node names (``a + b`` is ``elemwise_add``,
    # named ``_plus0``); two symbols must have one shape, as in MXNet ---------------
    __add__ = __radd__ = _operator("elemwise_add", "_plus", "_plus_scalar")
    __sub__ = _operator("elemwise_sub", "_minus", "_minus_scalar")
    __rsub__ = _operator("elemwise_sub", "_minus", "_rminus_scalar", reflected=True)
    __mul__ = __rmul__ = _operator("elemwise_mul", "_mul", "_mul_scalar")
    __truediv__ = _operator("elemwise_div", "_div", "_div_scalar")
    __rtruediv__ = _operator("elemwise_div", "_div", "_rdiv_scalar", reflected=True)
    __pow__ = _operator("_power", "_power", "_power_scalar")
    # MXNet's __rpow__ calls the op by its own name, so the node is `_rpower_scalar0`
    __rpow__ = _operator("_power", "_power", "_rpower_scalar", "_rpower_scalar", reflected=True)
    __mod__ = _operator("_mod", "_mod", "_mod_scalar")
    __rmod__ = _operator("_mod", "_mod", "_rmod_scalar", reflected=True)
    __eq__ = _operator("_equal", "_equal", "_equal_scalar")  # type: ignore[assignment]
    __ne__ = _operator("_not_equal", "_not_equal", "_not_equal_scalar")  # type: ignore[assignment]
    __lt__ = _operator("_lesser", "_lesser", "_lesser_scalar")
    __le__ = _operator("_lesser_equal", "_lesser_equal", "_lesser_equal_scalar")
    __gt__ = _operator("_greater", "_greater", "_greater_scalar")
    __ge__ = _operator("_greater_equal", "_greater_equal", "_greater_equal_scalar")
    __hash__ = OperatorMixin.__hash__

    def __neg__(self) -> Symbol:
        # MXNet's -x is x * -1.0
        return _scalar_symbol("_mul_scalar", self, -1.0, None)

    # -- identity and structure ------------------------------------------------
    @property
    def name(self) -> str | None:
        """The name of the node of a single-output symbol (None for a group)."""
        return self._entries[0].node.name if len(self._entries) == 1 else None

    def __getitem__(self, index: int | str | slice) -> Symbol:
        if isinstance(index, str):
            names = self.list_outputs()
            if index not in names:
                raise MXNetError(f"no output named {index!r}; outputs are {names}")
            index = names.index(index)
        if isinstance(index, builtins.slice):
            return Symbol(self._entries[index])
        if not -len(self._entries) <= index < len(self._entries):
            raise IndexError(f"output {index} of a symbol with {len(self._entries)} outputs")
        return Symbol([self._entries[index]])

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return (Symbol([entry]) for entry in self._entries)

    def __copy__(self) -> Symbol:
        # MXNet's copy is a new graph too: attributes set on it stay on it
        return self.__deepcopy__({})

    def __deepcopy__(self, memo: dict) -> Symbol:
        # new nodes, so that attributes set on the copy leave the original alone
        copies: dict[Node, Node] = {}
        for node in topo_order(self._entries):
            inputs = tuple(Entry(copies[e.node], e.index) for e in node.inputs)
            attrs = dict(node.attrs) if node.is_variable else node.attrs
            copy = copy_node(node, attrs, inputs, node.types, node.name)
            _keep_call_facts(node, copy)
            copies[node] = copy
        return Symbol([Entry(copies[e.node], e.index) for e in self._entries])

    def __getstate__(self) -> dict:
        return {"json": self.tojson()}

    def __setstate__(self, state: dict) -> None:
        from .symbol_json import load_json

        self._entries = load_json(state["json"])._entries

    def __bool__(self) -> bool:
        # A Symbol has no value to test: code that branches on one (an ``if`` in a
        # hybrid_forward) cannot be traced, as in MXNet.
        raise NotImplementedError(
            "bool() of a Symbol: a Symbol has no value until it is run, so it cannot "
            "decide a branch (this is what an `if` on data inside a hybridized "
            "hybrid_forward does); branch outside the block, use F.where, or do not "
            "hybridize it"
        )

    def _nodes(self) -> list[Node]:
        return topo_order(self._entries)

    @property
    def entries(self) -> list[Entry]:
        """The graph entries this symbol names (the IR view of the symbol)."""
        return list(self._entries)

    # -- listings ----------------------------------------------------------------
    def _aux_nodes(self) -> set[int]:
        aux = set()
        for node in self._nodes():
            if node.op.variadic or not node.op.aux:
                continue
            for input_name, entry in zip(node.op.input_names(node.attrs), node.inputs):
                if input_name in node.op.aux and entry.node.is_variable:
                    aux.add(id(entry.node))
        return aux

    def _argument_nodes(self) -> list[Node]:
        aux = self._aux_nodes()
        return [n for n in self._nodes() if n.is_variable and id(n) not in aux]

    def _aux_state_nodes(self) -> list[Node]:
        aux = self._aux_nodes()
        return [n for n in self._nodes() if id(n) in aux]

    def list_arguments(self) -> list[str]:
        """Names of the input variables, auxiliary states excluded, in graph order.

        >>> import symgrad as mx
        >>> fc = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc1")
        >>> fc.list_arguments()
        ['data', 'fc1_weight', 'fc1_bias']
        """
        return [n.name for n in self._argument_nodes()]

    def list_auxiliary_states(self) -> list[str]:
        """Names of auxiliary-state variables (BatchNorm's moving statistics).

        >>> import symgrad as mx
        >>> mx.sym.BatchNorm(mx.sym.var("data"), name="bn").list_auxiliary_states()
        ['bn_moving_mean', 'bn_moving_var']
        """
        return [n.name for n in self._aux_state_nodes()]

    def list_inputs(self) -> list[str]:
        """Names of all input variables (arguments and auxiliary states), in graph order.

        >>> import symgrad as mx
        >>> (mx.sym.var("a") + mx.sym.var("b")).list_inputs()
        ['a', 'b']
        """
        return [n.name for n in self._nodes() if n.is_variable]

    def list_outputs(self) -> list[str]:
        """Names of the outputs: ``<node>_output`` (``_output<i>`` for several).

        >>> import symgrad as mx
        >>> mx.sym.split(mx.sym.var("x"), num_outputs=2, name="s").list_outputs()
        ['s_output0', 's_output1']
        """
        return [output_name(entry) for entry in self._entries]

    def get_internals(self) -> Symbol:
        """A grouped symbol of every visible output of every node in the graph.

        >>> import symgrad as mx
        >>> y = mx.sym.exp(mx.sym.var("x"), name="e") + 1
        >>> y.get_internals().list_outputs()[:2]
        ['x', 'e_output']
        """
        return Symbol(
            [Entry(node, i) for node in self._nodes() for i in range(visible_count(node))]
        )

    def get_children(self) -> Symbol | None:
        """The inputs of this symbol's output node(s), grouped; None for a variable.

        >>> import symgrad as mx
        >>> (mx.sym.var("a") * mx.sym.var("b")).get_children().list_outputs()
        ['a', 'b']
        """
        # each head node once: the outputs of one split share their inputs
        nodes = list(dict.fromkeys(head.node for head in self._entries))
        entries = [e for node in nodes for e in node.inputs]
        return Symbol(entries) if entries else None

    # -- attributes ----------------------------------------------------------------
    def list_attr(self, recursive: bool = False) -> dict[str, str]:
        """The attributes of this symbol's node as strings (internal ones left out);
        MXNet's hidden keys (``__lr_mult__``...) also under their plain name.

        >>> import symgrad as mx
        >>> mx.sym.var("w", shape=(2, 3), lr_mult=2.0).list_attr()
        {'__shape__': '(2, 3)', '__lr_mult__': '2.0', 'lr_mult': '2.0'}
        """
        if recursive:
            raise DeprecationWarning(
                "Symbol.list_attr with recursive=True has been deprecated. "
                "Please use attr_dict instead."
            )
        if len(self._entries) != 1:
            return {}
        return listed(node_attr_strings(self._entries[0].node, given_only=True))

    def attr(self, key: str) -> str | None:
        """One attribute of this symbol's node as a string, or None (also for a
        grouped symbol). A hidden key (``ctx_group``, ``lr_mult``...) is found
        under its stored spelling ``__ctx_group__``.

        >>> import symgrad as mx
        >>> mx.sym.Activation(mx.sym.var("x"), act_type="relu").attr("act_type")
        'relu'
        """
        return self.list_attr().get(key)

    def attr_dict(self) -> dict[str, dict[str, str]]:
        """Attributes of every node that has any, by node name."""
        found = {node.name: node_attr_strings(node, given_only=True) for node in self._nodes()}
        return {name: listed(attrs) for name, attrs in found.items() if attrs}

    def _set_attr(self, **kwargs: str) -> None:
        """Set attributes of this symbol's node in place (values must be strings);
        every symbol sharing the node sees them, as in MXNet."""
        check_strings(kwargs)
        attrs = AttrScope().get(kwargs)
        node = self._single_entry().node
        if node.is_variable:
            node.attrs.update(attrs)
        else:
            set_op_node_attrs(node, attrs)

    # -- composition ---------------------------------------------------------------
    def __call__(self, *args: Symbol, name: str | None = None, **kwargs: Symbol) -> Symbol:
        """Compose: a copy of this symbol with variables replaced by symbols, given
        positionally (in ``list_arguments`` order) or by name.

        >>> import symgrad as mx
        >>> net = mx.sym.tanh(mx.sym.var("data"))
        >>> composed = net(data=mx.sym.var("x") * 2)
        >>> composed.list_arguments()
        ['x']
        """
        arguments = self.list_arguments()
        if len(args) > len(arguments):
            raise MXNetError(
                f"{len(args)} positional symbols for {len(arguments)} arguments {arguments}"
            )
        substitutes = dict(zip(arguments, args))
        for key, value in kwargs.items():
            if key in substitutes:
                raise MXNetError(f"argument {key!r} given twice")
            substitutes[key] = value
        unknown = sorted(set(substitutes) - set(self.list_inputs()))
        if unknown:
            raise MXNetError(
                f"cannot compose: no argument named {unknown}; the arguments "
                f"are {self.list_inputs()}"
            )
        for key, value in substitutes.items():
            if not isinstance(value, Symbol):
                raise TypeError(f"compose: {key} must be a Symbol, got {type(value).__name__}")
        result = substitute(self._entries, {k: v._single_entry() for k, v in substitutes.items()})
        if name is not None and len(result) == 1:
            result = rename(result, name)
        return result

    compose = __call__

    # -- type inference -------------------------------------------------------------
    def _named(self, args: Sequence[Any], kwargs: dict, what: str) -> dict:
        given = dict(zip(self.list_arguments(), args))
        if len(args) > len(self.list_arguments()):
            raise MXNetError(
                f"{what}: {len(args)} positional values for arguments {self.list_arguments()}"
            )
        unknown = sorted(set(kwargs) - set(self.list_inputs()))
        if unknown:
            raise MXNetError(f"{what}: no input named {unknown}; inputs are {self.list_inputs()}")
        given.update({k: v for k, v in kwargs.items() if v is not None})
        return given

    def _infer(self, shapes: dict, dtypes: dict, partial: bool, field: str):
        if field == "shape":
            shapes = _fill_zero_dims(self._nodes(), shapes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (type inference warns below, if at all)
            typed = materialize(self._entries, shapes, dtypes, partial=True)

        def pick(node_type: TensorType | None) -> Any:
            if node_type is None:
                return None
            return node_type.shape if field == "shape" else node_type.dtype.type

        args = [pick(typed.type_of(n)) for n in self._argument_nodes()]
        outs = [
            pick(None if typed.entry(e) is None else typed.entry(e).type) for e in self._entries
        ]
        aux = [pick(typed.type_of(n)) for n in self._aux_state_nodes()]
        if field == "type" and any(v is None for v in args + outs + aux):
            # shapes unknown: dtypes follow from dtypes alone, as in MXNet
            found = _dtypes_without_shapes(self._nodes(), dtypes)
            args = [found.get(n) for n in self._argument_nodes()]
            outs = [found.get(e.node) for e in self._entries]
            aux = [found.get(n) for n in self._aux_state_nodes()]
        if field == "shape" and not partial:
            # MXNet's 0 is an unknown size: such a shape is not inferred
            args, outs, aux = ([None if v and 0 in v else v for v in p] for p in (args, outs, aux))
        if any(v is None for v in args + outs + aux):
            if not partial:
                warn_unknown([name for name, v in zip(self.list_arguments(), args) if v is None])
                return None, None, None
            empty = () if field == "shape" else None
            args, outs, aux = (
                [empty if v is None else v for v in part] for part in (args, outs, aux)
            )
        return args, outs, aux

    def infer_shape(
        self, *args: Any, **kwargs: Any
    ) -> tuple[list | None, list | None, list | None]:
        """Infer shapes from the shapes of some arguments.

        Returns ``(arg_shapes, out_shapes, aux_shapes)``, lists in the order of
        ``list_arguments()``, ``list_outputs()`` and ``list_auxiliary_states()``;
        ``(None, None, None)`` with a warning when some shapes cannot be decided,
        as MXNet does. Raises :class:`MXNetShapeError` when shapes contradict.

        >>> import symgrad as mx
        >>> fc = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=4, name="fc")
        >>> fc.infer_shape(data=(5, 3))
        ([(5, 3), (4, 3), (4,)], [(5, 4)], [])
        """
        return self._infer(self._named(args, kwargs, "infer_shape"), {}, False, "shape")

    def infer_shape_partial(self, *args: Any, **kwargs: Any) -> tuple[list, list, list]:
        """Like :meth:`infer_shape`, with ``()`` for shapes that cannot be decided.

        >>> import symgrad as mx
        >>> mx.sym.broadcast_add(mx.sym.var("a"), mx.sym.var("b")).infer_shape_partial(a=(2,))
        ([(2,), ()], [()], [])
        >>> (mx.sym.var("a") + mx.sym.var("b")).infer_shape_partial(a=(2,))  # equal shapes
        ([(2,), (2,)], [(2,)], [])
        """
        return self._infer(self._named(args, kwargs, "infer_shape_partial"), {}, True, "shape")

    def infer_type(self, *args: Any, **kwargs: Any) -> tuple[list | None, list | None, list | None]:
        """Infer dtypes from the dtypes of some arguments.

        Returns ``(arg_types, out_types, aux_types)`` of numpy scalar types;
        shapes must be inferable too (declared or given as ``shapes=``).
        Undeclared dtypes follow the other inputs of the same op, else float32.

        >>> import symgrad as mx
        >>> x = mx.sym.var("x", shape=(2,))
        >>> mx.sym.exp(x).infer_type(x="float64")
        ([<class 'numpy.float64'>], [<class 'numpy.float64'>], [])
        """
        shapes = kwargs.pop("shapes", None) or {}
        return self._infer(shapes, self._named(args, kwargs, "infer_type"), False, "type")

    def infer_type_partial(self, *args: Any, **kwargs: Any) -> tuple[list, list, list]:
        """Like :meth:`infer_type`, with None where a dtype cannot be decided."""
        shapes = kwargs.pop("shapes", None) or {}
        return self._infer(shapes, self._named(args, kwargs, "infer_type_partial"), True, "type")

    # -- JSON --------------------------------------------------------------------
    def tojson(self) -> str:
        """The graph in MXNet 1.x's JSON format (see :mod:`symgrad.symbol_json`).

        >>> import symgrad as mx
        >>> '"op": "_plus_scalar"' in (mx.sym.var("x") + 1).tojson()
        True
        """
        from .symbol_json import to_json

        return to_json(self)

    def save(self, fname: str) -> None:
        """Write :meth:`tojson` to the file ``fname``."""
        with open(fname, "w", encoding="utf-8") as handle:
            handle.write(self.tojson())

    # -- running (see symgrad.executor) -------------------------------------------
    def eval(self, ctx: Any = None, **kwargs: Any) -> list:
        """Evaluate with the given inputs (NDArrays or numpy arrays by name);
        returns a list of NDArrays, one per output (predict mode)."""
        from .executor import evaluate_symbol
        from .ndarray.ndarray import NDArray, _unshared

        outputs = evaluate_symbol(self, kwargs)
        # a shape op's output is a numpy view of its input; MXNet gives new arrays
        sources = [v._data if isinstance(v, NDArray) else v for v in kwargs.values()]
        return [
            out if out._data.base is None else NDArray(_unshared(out._data, sources))
            for out in outputs
        ]

    def bind(
        self,
        ctx: Any,
        args: Any,
        args_grad: Any = None,
        grad_req: Any = "write",
        aux_states: Any = None,
        group2ctx: Any = None,
        shared_exec: Any = None,
    ) -> Any:
        """An :class:`symgrad.executor.Executor` on the given argument arrays."""
        from .executor import Executor

        return Executor(self, args, args_grad, grad_req, aux_states)

    def simple_bind(
        self,
        ctx: Any,
        grad_req: Any = "write",
        type_dict: Any = None,
        stype_dict: Any = None,
        group2ctx: Any = None,
        shared_arg_names: Any = None,
        shared_exec: Any = None,
        shared_buffer: Any = None,
        **kwargs: Any,
    ) -> Any:
        """An Executor with zero-filled arrays of the shapes inferred from ``kwargs``."""
        from .executor import simple_bind

        return simple_bind(self, grad_req, type_dict, kwargs)

    def gradient(self, wrt: Sequence[str], **shapes: Any) -> Symbol:
        """The symbolic gradient of the sum of the outputs with respect to the
        arguments named in ``wrt``, as a grouped Symbol (one output per name).

        Shapes must be known: declared on the variables or given as keywords.
        """
        from .executor import gradient_symbol

        return gradient_symbol(self, wrt, shapes)

    # -- inspection -----------------------------------------------------------------
    def debug_str(self) -> str:
        """A listing of the graph, one node a line: name, op, inputs, attrs and the
        inferred output shapes (``?`` where unknown).

        >>> import symgrad as mx
        >>> print(mx.sym.exp(mx.sym.var("x", shape=(2,)), name="e").debug_str())
        Symbol outputs: e_output
          x = null(__shape__=(2,)) -> (2,) float32
          e = exp(x) -> (2,) float32
        """
        from .visualization import debug_str

        return debug_str(self)

    def __str__(self) -> str:
        return self.debug_str()

    def __repr__(self) -> str:
        # MXNet's text: the node's name when every output comes from one node
        # (a multi-output op included), else each output's node name.
        names = [entry.node.name for entry in self._entries]
        if len({id(entry.node) for entry in self._entries}) == 1:
            return f"<Symbol {names[0]}>"
        return f"<Symbol group [{', '.join(names)}]>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: the same text as ``repr``."""
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        """A notebook's rich display: ``repr``'s text, escaped, in a ``<pre>``."""
        return _html_text(repr(self))

    def to_networkx(self) -> Any:
        """The graph as a ``networkx.DiGraph`` (see :mod:`symgrad.graph_export`)."""
        from .graph_export import to_networkx

        return to_networkx(self)

    @staticmethod
    def from_networkx(graph: Any) -> Symbol:
        """A Symbol from a DiGraph in the layout :meth:`to_networkx` writes."""
        from .graph_export import from_networkx

        return from_networkx(graph)


def _fill_zero_dims(nodes: Sequence[Node], shapes: dict) -> dict:
    """``shapes`` with the unknown (0) sizes of variables that meet at an
    elementwise op or a Concat filled from the other inputs (both ways, as MXNet's
    shape inference does); a variable of no known shape gets a complete one."""
    shapes = dict(shapes)

    def source(entry: Entry) -> Entry:
        # through one-input elementwise ops (relu, x * 2...), which keep the shape
        while not entry.node.is_variable and (
            entry.node.op.kind == "elemwise" and len(entry.node.inputs) == 1
        ):
            entry = entry.node.inputs[0]
        return entry

    def known(entry: Entry) -> tuple | None:
        node = entry.node
        if not node.is_variable:
            return None
        given = shapes.get(node.name, node.types[0].shape)
        if given is None and "__shape__" in node.attrs:
            given = ast.literal_eval(node.attrs["__shape__"])
        return None if given is None else tuple(int(v) for v in given)

    for _ in range(len(nodes) + 1):
        changed = False
        for node in nodes:
            if node.is_variable or (
                node.op.infer is not same_shape_types and node.op.name != "Concat"
            ):
                continue
            inputs = [source(e) for e in node.inputs]
            found = [known(e) for e in inputs]
            ranks = {len(shape) for shape in found if shape is not None}
            if len(ranks) != 1:
                continue
            rank = ranks.pop()
            free = node.attrs["dim"] % rank if node.op.name == "Concat" else None
            sizes = [
                builtins.max([shape[axis] for shape in found if shape is not None])
                for axis in range(rank)
            ]
            for entry, shape in zip(inputs, found):
                if not entry.node.is_variable:
                    continue
                base = shape or (0,) * rank
                new = tuple(
                    size if axis == free or size != 0 else sizes[axis]
                    for axis, size in enumerate(base)
                )
                if new != shape and (shape is not None or 0 not in new):
                    shapes[entry.node.name] = new
                    changed = True
        if not changed:
            break
    return shapes


# ops whose parameters stay float32 when the data is float16, as MXNet types them
_FLOAT32_PARAMETERS = frozenset({"BatchNorm", "LayerNorm", "InstanceNorm", "GroupNorm"})


def _dtypes_without_shapes(nodes: Sequence[Node], given: dict) -> dict[Node, type]:
    """Each node's output dtype (numpy scalar type) from the variables' dtypes
    alone: an op's output takes its inputs' dtype (``Cast`` and creation ops their
    ``dtype`` attr), and a variable of unknown dtype takes that of the other
    inputs of the op it feeds, in both directions until nothing changes."""
    found: dict[Node, np.dtype] = {}
    for node in nodes:
        if node.is_variable:
            dtype = given.get(node.name, node.types[0].dtype)
            if dtype is not None:
                found[node] = np.dtype(dtype)
    for _ in range(len(nodes) + 1):
        changed = False
        for node in nodes:
            if node.is_variable:
                continue
            if "dtype" in node.attrs and (node.op.name == "Cast" or not node.inputs):
                out = np.dtype(node.attrs["dtype"])
            else:
                out = next((found[e.node] for e in node.inputs if e.node in found), None)
            if out is None:
                continue
            if node not in found:
                found[node] = out
                changed = True
            if node.op.name == "Cast" or not node.inputs:
                continue
            data = found.get(node.inputs[0].node, out)
            for position, entry in enumerate(node.inputs):
                if entry.node.is_variable and entry.node not in found:
                    float32 = position and node.op.name in _FLOAT32_PARAMETERS
                    found[entry.node] = np.dtype(np.float32) if float32 else data
                    changed = True
        if not changed:
            break
    return {node: dtype.type for node, dtype in found.items()}


def node_attr_strings(node: Node, given_only: bool = False) -> dict[str, str]:
    """A node's attributes as MXNet strings (an op's parameters, then the user's
    annotations), internal attributes left out. ``given_only``: of the parameters,
    only those the symbol call gave, as MXNet lists and writes them (for a node
    whose call is unknown, a recorded one, those that differ from the defaults)."""
    strings = {k: format_attr(v) for k, v in node.attrs.items() if k not in INTERNAL_ATTRS}
    if strings.get("num_args") == "0" and node.op.variadic:
        del strings["num_args"]  # canonical: as many as the node has (listed below)
    if given_only and not node.is_variable:
        given = given_keys(node)
        if given is None:
            specs = node.op.attrs
            given = tuple(
                k for k, v in node.attrs.items() if k not in specs or v != specs[k].default
            )
        strings = {k: v for k, v in strings.items() if k in given}
        strings.update({k: t for k, t in _GIVEN_TEXT.get(node, {}).items() if k in strings})
        if node.op.variadic and "num_args" in node.op.attrs:
            # kept canonical (0) on the node; MXNet's calls always pass the count
            strings["num_args"] = str(node.attrs.get("num_args") or len(node.inputs))
    if not node.is_variable:
        strings.update(op_node_attrs(node))
    return strings


# ---------------------------------------------------------------------------
# graph surgery shared by composition, loading and export
# ---------------------------------------------------------------------------


def substitute(entries: Sequence[Entry], replace: dict[str, Entry]) -> Symbol:
    """The graph of ``entries`` with the variables named in ``replace`` replaced
    by the given entries; untouched nodes are shared, changed ones re-made."""
    new: dict[Node, Node] = {}
    swapped: dict[Node, Entry] = {}
    for node in topo_order(entries):
        if node.is_variable:
            if node.name in replace:
                swapped[node] = replace[node.name]
            else:
                new[node] = node
            continue
        inputs = [
            swapped[e.node] if e.node in swapped else Entry(new[e.node], e.index)
            for e in node.inputs
        ]
        if all(a is b or a == b for a, b in zip(inputs, node.inputs)):
            new[node] = node
        else:
            new[node] = _remake(node, inputs)
    return Symbol(
        [swapped[e.node] if e.node in swapped else Entry(new[e.node], e.index) for e in entries]
    )


def _remake(node: Node, inputs: Sequence[Entry]) -> Node:
    try:
        made = apply_op(node.op, inputs, dict(node.attrs), node.name)
    except GraphError as err:
        raise MXNetShapeError(f"in node {node.name!r}: {err}") from None
    _keep_call_facts(node, made)
    return made


def _keep_call_facts(node: Node, made: Node) -> None:
    """Give ``made``, a copy of ``node``, its user attributes and given parameters."""
    set_op_node_attrs(made, dict(op_node_attrs(node)))
    set_given_keys(made, given_keys(node))
    if node in _GIVEN_TEXT:
        _GIVEN_TEXT[made] = _GIVEN_TEXT[node]


# The text of each parameter a symbol call (or a JSON file) gave a node, as MXNet
# keeps it: ``axis=1`` is '1', ``kernel=[3, 3]`` '[3, 3]', ``x * 2.0`` '2.0'.
# JSON and ``list_attr`` write it back; the node's attrs hold the parsed values.
_GIVEN_TEXT: weakref.WeakKeyDictionary[Node, dict[str, str]] = weakref.WeakKeyDictionary()


def remember_call(node: Node, attrs: dict) -> None:
    """Record the parameters ``attrs`` a symbol call or a JSON file gave ``node``
    (their keys and MXNet's text of their values)."""
    set_given_keys(node, tuple(attrs))
    texts = {}
    for key, value in attrs.items():
        text = None if key == "dtype" else _value_text(value)
        if text is not None:
            texts[key] = text
    if texts:
        _GIVEN_TEXT[node] = texts


def _value_text(value: Any) -> str | None:
    """``str(value)`` as MXNet's Python frontend sends a parameter (numpy scalars as
    their Python values print), or None for a value it would spell otherwise."""
    if value is None or isinstance(value, str):
        return "None" if value is None else value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (numbers.Integral, numbers.Real)) and not isinstance(value, complex):
        return str(value)
    if isinstance(value, (tuple, list)):
        items = [_value_text(v) for v in value]
        if any(item is None for item in items):
            return None
        inner = ", ".join(str(item) for item in items)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(items) == 1 else f"({inner})"
    return None


def rename(symbol: Symbol, name: str) -> Symbol:
    """A copy of a single-output symbol whose head node is called ``name``."""
    node = symbol._single_entry().node
    if node.is_variable:
        copy = copy_node(node, dict(node.attrs), (), node.types, name)
    else:
        copy = Node(node.op, node.attrs, node.inputs, node.types, name)
        _keep_call_facts(node, copy)
    return Symbol([Entry(copy, symbol._entries[0].index)])


def _make_symbol(
    opdef: OpDef,
    inputs: Sequence[Entry],
    attrs: dict,
    name: str | None = None,
    attr: dict | None = None,
    scoped: bool = False,
) -> Symbol:
    if not scoped:
        name = scoped_name(name, _OPERATOR_HINTS.get(opdef.name, opdef.name.lower()))
    annotations = AttrScope.current.get(attr)
    plain = [k for k in annotations if not (k.startswith("__") and k.endswith("__"))]
    if plain and opdef.attrs:
        # MXNet passes them to the op's parameter parser, which refuses them (and
        # could not load a file that had them)
        raise MXNetError(
            f"{opdef.name}: Cannot find argument {plain[0]!r} (from attr= or an "
            f"AttrScope); an op with parameters takes only hidden user attributes "
            f"(ctx_group, lr_mult, wd_mult... or __name__); its arguments are "
            f"{sorted(opdef.attrs)}"
        )
    try:
        node = apply_op(opdef, inputs, attrs, name)
    except GraphError as err:
        raise MXNetShapeError(str(err)) from None
    set_op_node_attrs(node, annotations)
    remember_call(node, attrs)
    count = node.num_outputs if attrs.get("output_mean_var") else visible_count(node)
    return Symbol([Entry(node, i) for i in range(count)])


# ---------------------------------------------------------------------------
# the mx.sym namespace
# ---------------------------------------------------------------------------


def var(
    name: str,
    attr: dict | None = None,
    shape: Any = None,
    lr_mult: float | None = None,
    wd_mult: float | None = None,
    dtype: Any = None,
    init: Any = None,
    stype: str | None = None,
    **kwargs: Any,
) -> Symbol:
    """A named input variable.

    ``shape``, ``dtype``, ``init``, ``lr_mult``, ``wd_mult``, ``stype`` and any
    extra keywords are kept as attributes and written to JSON as MXNet does
    (``__shape__``, ``__dtype__``, ``__init__``...). A variable without a
    shape gets it later, from ``infer_shape`` or ``bind``.

    >>> import symgrad as mx
    >>> w = mx.sym.var("w", shape=(2, 3), dtype="float64", init="zeros")
    >>> w.list_attr()
    {'__shape__': '(2, 3)', '__dtype__': '1', '__init__': 'zeros'}
    >>> w.infer_shape()
    ([(2, 3)], [(2, 3)], [])
    """
    if not isinstance(name, str):
        raise TypeError(f"a variable name must be a string, got {type(name).__name__}")
    attrs = AttrScope.current.get(attr)
    node_type = UNKNOWN
    if shape is not None:
        shape = (
            (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(s) for s in shape)
        )
        attrs["__shape__"] = format_attr(shape)
    if dtype is not None:
        dtype = np.dtype(dtype)
        attrs["__dtype__"] = str(DTYPE_CODES.get(dtype.name, dtype.name))
    if shape is not None or dtype is not None:
        known = shape is not None and all(size > 0 for size in shape)
        node_type = TensorType(
            shape if known else None,
            dtype if dtype is not None else (np.dtype(np.float32) if known else None),
        )
    if init is not None:
        attrs["__init__"] = (
            init
            if isinstance(init, str)
            else (init.dumps() if hasattr(init, "dumps") else str(init))
        )
    for key, value in (
        ("__lr_mult__", lr_mult),
        ("__wd_mult__", wd_mult),
        ("__storage_type__", stype),
    ):
        if value is not None:
            attrs[key] = str(value)
    for key, value in kwargs.items():
        attrs[key if key.startswith("__") else f"__{key}__"] = str(value)
    if node_type is UNKNOWN and ("__shape__" in attrs or "__dtype__" in attrs):
        # given as attributes (attr={'__shape__': '(3, 4)'}, __shape__=...): typed
        # as a variable read from JSON is
        from .symbol_json import _variable

        return Symbol([Entry(_variable(name, attrs), 0)])
    return Symbol([Entry(Node(NULL, attrs, (), (node_type,), name), 0)])


Variable = var


def Group(symbols: Sequence[Symbol]) -> Symbol:
    """One symbol with the outputs of all ``symbols``.

    >>> import symgrad as mx
    >>> a = mx.sym.var("a")
    >>> mx.sym.Group([a + 1, a * 2]).list_outputs()  # doctest: +ELLIPSIS
    ['_plusscalar..._output', '_mulscalar..._output']
    """
    if not symbols or not all(isinstance(s, Symbol) for s in symbols):
        raise MXNetError("Group needs a non-empty list of Symbols")
    return Symbol([e for s in symbols for e in s._entries])


def _as_strings(attrs: dict) -> dict[str, str]:
    return {k: format_attr(v) for k, v in attrs.items() if v is not None}


def _is_symbol(value: Any) -> bool:
    return isinstance(value, Symbol)


# MXNet names the initializers of the auxiliary states it makes for BatchNorm
# (``__init__`` on the variables: the statistics start at 0 and 1), which
# Module.init_params reads; the InitDesc path has no suffix rule for them.
_AUX_INITS = {"moving_mean": '["zero", {}]', "moving_var": '["one", {}]'}


def _symbol_function(public_name: str, opdef: OpDef):
    """``mx.sym.<op>``: binds arguments like ``mx.nd.<op>`` and, as MXNet does,
    makes a variable ``<name>_<input>`` for each input not given (the weight
    and bias of ``FullyConnected``, the statistics of ``BatchNorm``)."""

    def function(
        *args: Any,
        name: str | None = None,
        attr: dict | None = None,
        out: Any = None,
        **kwargs: Any,
    ) -> Symbol:
        refuse_numpy(public_name, opdef, args, kwargs, expected="a Symbol")
        # named once, here: a Prefix scope must not prefix the name twice
        name = scoped_name(name, public_name.lower())
        if not opdef.variadic:
            leading = 0
            while leading < len(args) and isinstance(args[leading], Symbol):
                leading += 1
            plain = {k: v for k, v in kwargs.items() if not isinstance(v, Symbol)}
            try:
                names = opdef.input_names(_attrs_for_inputs(opdef, plain))
            except (GraphError, TypeError, ValueError) as err:
                raise MXNetError(f"{public_name}: {err}") from None
            missing = [n for i, n in enumerate(names) if i >= leading and n not in kwargs]
            if missing:
                for input_name in missing:
                    init = _AUX_INITS.get(input_name) if input_name in opdef.aux else None
                    # MXNet gives the variables it makes the call's parameters too
                    kwargs[input_name] = var(
                        f"{name}_{input_name}", init=init, attr=_as_strings(plain)
                    )
        inputs, attrs = bind_arguments(opdef, args, kwargs, _is_symbol)
        if opdef.variadic and "num_args" in opdef.attrs:
            inputs = _num_args_inputs(public_name, opdef, inputs, attrs, name)
        entries = [s._single_entry() for s in inputs]
        return _make_symbol(opdef, entries, attrs, name, attr, scoped=True)

    function.__name__ = function.__qualname__ = public_name
    function.__doc__ = op_docstring(opdef, public_name, "sym")
    return function


def _num_args_inputs(public_name: str, opdef: OpDef, inputs: list, attrs: dict, name: str) -> list:
    """The inputs of a variadic symbol call that takes ``num_args``, and its name.

    As in MXNet: more symbols than ``num_args`` is an error; fewer leaves the rest
    as variables ``<name>_arg<i>`` (``<name>_weight`` for bilinear UpSampling),
    which carry the call's parameters as attributes. ``num_args`` leaves ``attrs``.
    """
    given = {k: v for k, v in attrs.items() if v is not None}
    expected = num_args_inputs(opdef, attrs, len(inputs))
    if len(expected) < len(inputs):
        raise MXNetError(
            f"{public_name}: Check failed: arg_vec.size() <= n_req ({len(inputs)} vs. "
            f"{len(expected)}) : Incorrect number of arguments, requires "
            f"{len(expected)}, provided {len(inputs)}"
        )
    made = [var(f"{name}_{n}", attr=_as_strings(given)) for n in expected[len(inputs) :]]
    return [*inputs, *made]


def _scalar_or_symbol(tensor_op: str, scalar_op: str, reflected_op: str):
    def function(lhs: Any, rhs: Any, name: str | None = None) -> Symbol:
        if isinstance(lhs, Symbol) and isinstance(rhs, Symbol):
            entries = [lhs._single_entry(), rhs._single_entry()]
            return _make_symbol(
                get_op(tensor_op), entries, {}, scoped_name(name, tensor_op), scoped=True
            )
        if isinstance(lhs, Symbol) and isinstance(rhs, numbers.Number):
            name = scoped_name(name, _OPERATOR_HINTS[scalar_op])
            entries = [lhs._single_entry()]
            return _make_symbol(get_op(scalar_op), entries, {"scalar": rhs}, name, scoped=True)
        if isinstance(rhs, Symbol) and isinstance(lhs, numbers.Number):
            name = scoped_name(name, _OPERATOR_HINTS.get(reflected_op, reflected_op))
            entries = [rhs._single_entry()]
            return _make_symbol(get_op(reflected_op), entries, {"scalar": lhs}, name, scoped=True)
        raise TypeError(
            f"{tensor_op}: expected Symbols or numbers, got "
            f"{type(lhs).__name__} and {type(rhs).__name__}"
        )

    function.__name__ = tensor_op.lstrip("_")
    function.__doc__ = f"Elementwise ``{function.__name__}`` of symbols or a symbol and a number."
    return function


maximum = _scalar_or_symbol("_maximum", "_maximum_scalar", "_maximum_scalar")
minimum = _scalar_or_symbol("_minimum", "_minimum_scalar", "_minimum_scalar")
power = pow = _scalar_or_symbol("_power", "_power_scalar", "_rpower_scalar")


def zeros(shape: Any, dtype: Any = "float32", **kwargs: Any) -> Symbol:
    """A constant symbol of zeros."""
    name = kwargs.pop("name", None)
    return _make_symbol(get_op("_zeros"), [], {"shape": shape, "dtype": dtype, **kwargs}, name)


def ones(shape: Any, dtype: Any = "float32", **kwargs: Any) -> Symbol:
    """A constant symbol of ones."""
    name = kwargs.pop("name", None)
    return _make_symbol(get_op("_ones"), [], {"shape": shape, "dtype": dtype, **kwargs}, name)


def load(fname: str) -> Symbol:
    """Read a Symbol from an MXNet JSON file."""
    from .symbol_json import load

    return load(fname)


def load_json(json_str: str) -> Symbol:
    """A Symbol from MXNet JSON text."""
    from .symbol_json import load_json

    return load_json(json_str)


# Op functions shadow builtins of the same name (sum, max, abs, slice...) in this
# module, as in MXNet's mx.sym: code above uses ``builtins.<name>`` for them.
for _name, _opdef in OPS.items():
    if _name != "null" and _name not in globals():
        globals()[_name] = _symbol_function(_name, _opdef)
del _name, _opdef

# mx.sym.linalg, mx.sym.random: made from this module's builders, so imported last
from . import symbol_linalg as linalg  # noqa: E402, F401
from . import symbol_random as random  # noqa: E402, F401

__all__ = [
    "Symbol",
    "var",
    "Variable",
    "Group",
    "load",
    "load_json",
    "maximum",
    "minimum",
    "power",
    "pow",
    "zeros",
    "ones",
]

# mx.sym.contrib (and mx.sym.Custom): made from this module's function builder too
from . import symbol_contrib as contrib  # noqa: E402, F401
from .symbol_contrib import Custom  # noqa: E402, F401

# arange, full, hypot, histogram, split_v2: MXNet's Python wrappers of registered ops
from .symbol_tail import arange, full, histogram, hypot, split_v2  # noqa: E402, F401


def _html_text(text: str) -> str:
    """``text`` as preformatted HTML, so a notebook shows exactly the ``repr``."""
    return f"<pre>{html.escape(text)}</pre>"
