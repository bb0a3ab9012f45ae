"""The single op registry: every op is defined once, with all any layer needs.

An :class:`OpDef` carries an op's MXNet name, its attributes (with parsers that
accept both Python values and MXNet's JSON strings), its shape/dtype rule, its numpy
implementation, its gradient rule (built from other registered ops), and for
elementwise ops the scalar expression the fused-kernel generator inlines.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from .ir import Entry, GraphError, Node, TensorType

REQUIRED = object()


# ---------------------------------------------------------------------------
# attribute parsers: each takes a Python value or MXNet's string spelling
# ---------------------------------------------------------------------------


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text in ("None", ""):
            return None
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    return value


def _whole(value: Any) -> int:
    """``value`` as an int, refusing what would be truncated (``2.5``, ``"a"``):
    MXNet refuses ``shape=(3, 2.5)`` where ``int()`` would make it 2."""
    if type(value) is int:  # the common case, first: parsed on every recorded op call
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer, float, np.floating)
    ):
        if isinstance(value, (bool, np.bool_)):
            return int(value)
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def as_int(value: Any) -> int:
    """Parse an integer attribute (refusing fractions: see :func:`_whole`)."""
    return _whole(_literal(value))


class _NegativeZero(float):
    """-0.0 as a canonical attribute value. Python has ``-0.0 == 0.0`` with equal
    hashes, yet ``x / -0.0`` and ``x / 0.0`` differ: program keys and step
    templates compare attrs with ``==``, so a plain -0.0 would reuse the program
    made for 0.0. This float equals only itself; arithmetic and ``repr`` are
    those of -0.0."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is _NegativeZero

    def __ne__(self, other: object) -> bool:
        return type(other) is not _NegativeZero

    def __hash__(self) -> int:
        return hash("-0.0")


NEGATIVE_ZERO = _NegativeZero(-0.0)

# NaN as a canonical attribute value: one object, so that keys holding it compare
# equal (tuples and dicts compare items by identity first). A fresh NaN never
# equals another, and a program keyed by one would never be found again.
NAN = float("nan")


def canonical_float(number: float) -> float:
    """``number`` as a canonical attribute value: -0.0 as :data:`NEGATIVE_ZERO`,
    NaN as :data:`NAN`, anything else as is."""
    if number != 0.0 and number == number:
        return number
    if number != number:
        return NAN
    return NEGATIVE_ZERO if math.copysign(1.0, number) < 0 else number


def as_float(value: Any) -> float:
    """Parse a float attribute (see :func:`canonical_float`)."""
    return canonical_float(float(_literal(value)) if isinstance(value, str) else float(value))


def as_bool(value: Any) -> bool:
    """Parse a boolean attribute (``True``, ``"true"``, ``1``, ``"0"`` ...)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def as_str(value: Any) -> str:
    """Parse a string attribute."""
    return str(value)


def as_shape(value: Any) -> tuple[int, ...]:
    """Parse a shape: an int or a sequence of ints."""
    value = _literal(value)
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    return tuple(_whole(v) for v in value)


def as_axes(value: Any) -> tuple[int, ...] | None:
    """Parse an axis attribute: None, an int or a sequence of ints."""
    value = _literal(value)
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return (int(value),)
    return tuple(_whole(v) for v in value)


def as_optional_int(value: Any) -> int | None:
    """Parse an int or None."""
    value = _literal(value)
    return None if value is None else _whole(value)


def as_optional_ints(value: Any) -> tuple[int | None, ...]:
    """Parse a sequence whose entries are ints or None (slice begin/end/step)."""
    value = _literal(value)
    if isinstance(value, (int, np.integer)) or value is None:
        value = (value,)
    return tuple(None if v is None else _whole(v) for v in value)


def as_dtype_name(value: Any) -> str:
    """Parse a dtype into its numpy name (``'float32'``)."""
    return np.dtype(value).name


def one_of(*choices: str) -> Callable[[Any], str]:
    """A parser that accepts one of ``choices``."""

    def parse(value: Any) -> str:
        text = str(value)
        if text not in choices:
            raise GraphError(f"expected one of {choices}, got {text!r}")
        return text

    parse.__name__ = f"one_of{choices}"
    return parse


def same_as_first(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    """Output has the type of the first input."""
    return [types[0]]


@dataclass(frozen=True)
class Attr:
    """An attribute declaration: its parser and default (``REQUIRED`` if none)."""

    parse: Callable[[Any], Any]
    default: Any = REQUIRED


@dataclass(frozen=True)
class TestSpec:
    """How the generated per-op tests exercise an op.

    ``shapes`` are the input shapes, ``domain`` the interval inputs are drawn from,
    ``attrs`` the attributes to call with, ``make_inputs`` (optional) builds the
    inputs itself from a numpy Generator, and ``wrt`` lists the differentiable
    inputs (default: all floating inputs).
    """

    shapes: tuple = ((3, 4),)
    domain: tuple[float, float] = (-2.0, 2.0)
    attrs: dict = field(default_factory=dict)
    make_inputs: Callable | None = None
    wrt: tuple[int, ...] | None = None
    rtol: float = 1e-6
    order: int = 2


@dataclass(eq=False)
class OpDef:
    """Everything about one op, in one place.

    ``inputs`` names the inputs (or a function of the attrs that does, for ops like
    ``FullyConnected`` whose bias is optional); ``variadic`` ops take any number.
    ``infer(types, **attrs)`` returns the output :class:`TensorType` list;
    ``impl(*arrays, **attrs)`` returns an array or a tuple of arrays;
    ``grad(g, *inputs, out=..., **attrs)`` returns one gradient handle (or None)
    per input, where ``g``/``out`` are tuples for ops with several outputs.
    ``kind`` drives fusion: ``elemwise`` ops have a ``scalar`` template over
    ``{0}``, ``{1}`` ... and the attrs by name (or a function of the attrs
    giving it, or None where those attrs make the op not elementwise).
    ``shape_only`` lists inputs whose values the op never reads (only their
    shape), such as ``broadcast_like``'s second input. ``mutates`` lists the
    inputs MXNet updates in place (an optimizer's states): the op stays pure,
    returning their new values as its outputs 1, 2, ... in this order, and the
    eager frontend writes them back.
    ``num_outputs`` (an int, or a function of the attrs and the input count)
    declares how many outputs the op has before shapes are known, for the few
    multi-output ops the frontend cannot count otherwise.
    ``sized_grad`` marks an op whose gradient graph is built from its sizes (the
    ``RNN`` op unrolls its sequence length): its full output shapes join the
    structural key, not only their length-one axes.
    ``pure_when(attrs)``, for an op that is not deferrable in general (random or
    train-mode), says whether a call with these (canonical) attrs is pure after
    all: ``RNN`` without dropout masks draws nothing, so its value may be
    computed later, inside the program that differentiates it.
    ``expand(*inputs, **attrs)``, for an op whose compiled form is a composition
    of registered ops, builds its outputs (a tuple of handles) from them: the pass
    ``expand_composites`` puts that graph in its place, so that it fuses with its
    neighbours (``_batch_norm_train``: its statistics become fused reductions).
    """

    name: str
    infer: Callable[..., list[TensorType]]
    impl: Callable[..., Any]
    grad: Callable[..., Any] | None = None
    inputs: tuple[str, ...] | Callable[[dict], tuple[str, ...]] = ("data",)
    attrs: dict[str, Attr] = field(default_factory=dict)
    variadic: bool = False
    kind: str = "opaque"
    scalar: str | Callable[[dict], str | None] | None = None
    differentiable: bool = True
    aux: tuple[str, ...] = ()
    uses_train_mode: bool = False
    visible_outputs: int | Callable[[dict], int] | None = None
    aliases: tuple[str, ...] = ()
    method: str | None = None
    shape_only: tuple[int, ...] = ()
    mutates: tuple[int, ...] = ()
    transcendental: bool | None = None
    test: TestSpec | None = None
    doc: str = ""
    num_outputs: int | Callable[[dict, int], int] | None = None
    sized_grad: bool = False
    pure_when: Callable[[dict], bool] | None = None
    expand: Callable[..., tuple] | None = None

    def __post_init__(self) -> None:
        # Whether a value of this op may be computed later than the call: true for
        # pure ops, false for randomness, side effects and callbacks. Read on every
        # recorded op call, so it is a plain attribute.
        self.deferrable = (
            not self.uses_train_mode
            and not self.mutates
            and self.kind not in ("random", "opaque", "creation")
        )
        # Whether each call draws new random numbers (a random op, or a creation
        # op that takes a draw counter), and whether the op is a constant: its
        # value depends on its attrs only (a fill, arange), so it may be computed
        # once when a program is planned, or folded.
        self.random = self.kind == "random" or "_draw" in self.attrs
        self.constant = self.kind == "creation" and not self.random
        # Recording shortcuts (an op costs microseconds to record; these are most
        # ops): the output has the input's type, and the only attr is a float.
        self.keeps_type = self.infer is same_as_first
        # the canonical attrs of a call that gives none (None: one is required)
        self._defaults = (
            None
            if any(spec.default is REQUIRED for spec in self.attrs.values())
            else {key: spec.default for key, spec in self.attrs.items()}
        )
        self._float_scalar = (
            list(self.attrs) == ["scalar"] and self.attrs["scalar"].parse is as_float
        )
        # the canonical attrs of calls seen, by _seen_key (a loss's F.pick(x, y,
        # axis=-1, keepdims=True) is parsed once, not at every recorded call)
        self._seen: dict[tuple, dict] = {}

    def is_transcendental(self, attrs: dict) -> bool:
        """Whether, with these attrs, the op costs a math-library call per element
        (``transcendental`` when declared; by default, whether its scalar template
        calls vector math, ``vm.``)."""
        if self.transcendental is not None:
            return self.transcendental
        template = self.scalar(attrs) if callable(self.scalar) else self.scalar
        return template is not None and "vm." in template

    def visible(self, attrs: dict) -> int | None:
        """How many outputs a user sees with these (canonical) attrs; None for all.
        ``visible_outputs`` may be a function of the attrs (the RNN op shows its
        states only with ``state_outputs``)."""
        count = self.visible_outputs
        return count(attrs) if callable(count) else count

    def input_names(self, attrs: dict) -> tuple[str, ...]:
        """Names of the inputs this op takes with these attrs."""
        return self.inputs(attrs) if callable(self.inputs) else self.inputs

    def canonical_attrs(self, given: dict) -> dict:
        """Fill defaults and parse every given attribute into its canonical
        hashable form (defaults are declared canonical).

        Nodes share the dict returned for an op called with no attributes: like
        every node's attrs, it is never modified."""
        if not given:
            defaults = self._defaults
            if defaults is not None:
                return defaults
        if self._float_scalar and len(given) == 1 and type(given.get("scalar")) is float:
            return {"scalar": canonical_float(given["scalar"])}  # `x * 1.5`: parsed already
        key = _seen_key(given)
        if key is not None:
            seen = self._seen.get(key)
            if seen is not None:
                return dict(seen)  # a copy: a caller may add to it (Custom's callback)
        out = self._parsed(given)
        if key is not None:
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.clear()  # (bounded: attrs that change every call)
            self._seen[key] = dict(out)
        return out

    def _parsed(self, given: dict) -> dict:
        """``given`` parsed and completed with the defaults (see canonical_attrs)."""
        out = {}
        used = 0  # given attrs that this op declares
        for key, spec in self.attrs.items():
            if key in given:
                used += 1
                try:
                    out[key] = spec.parse(given[key])
                except (TypeError, ValueError, SyntaxError, GraphError) as err:
                    raise GraphError(
                        f"{self.name}: bad value {given[key]!r} for attribute '{key}': {err}"
                    ) from None
            elif spec.default is REQUIRED:
                raise GraphError(f"{self.name}: missing required attribute '{key}'")
            else:
                out[key] = spec.default
        if used < len(given):
            # MXNet refuses a misspelled keyword (dim= for axis=) instead of
            # ignoring it and computing something else
            unknown = sorted(set(given) - set(self.attrs) - INERT_ATTRS)
            if not unknown:
                return out
            raise GraphError(
                f"{self.name}: unknown attribute(s) {unknown}; the valid "
                f"arguments are {sorted(self.attrs) or 'none'}"
            )
        return out

    def infer_types(self, types: Sequence[TensorType], attrs: dict) -> tuple[TensorType, ...]:
        """Apply the shape/dtype rule, turning any failure into a GraphError that
        names the op and the input shapes."""
        if not self.variadic:
            expected = len(self.input_names(attrs))
            if len(types) != expected:
                raise GraphError(
                    f"{self.name}: expects {expected} input(s) "
                    f"{self.input_names(attrs)}, got {len(types)}"
                )
        try:
            return tuple(self.infer(types, **attrs))
        except (GraphError, ValueError, IndexError, TypeError) as err:
            shapes = ", ".join(str(t.shape) for t in types)
            raise GraphError(
                f"{self.name}: cannot apply to input shapes ({shapes}) with attrs {attrs}: {err}"
            ) from None


# Values whose type and equality decide their parsed form: equal ints, strings
# or bools parse alike. Not floats (-0.0 == 0.0 parses to two values: see
# canonical_float) nor containers (equal tuples may hold an int and a float).
_SEEN_TYPES = frozenset({int, str, bool, type(None)})
_SEEN_LIMIT = 64  # calls remembered per op


def _seen_key(given: dict) -> tuple | None:
    """The key under which ``OpDef.canonical_attrs`` remembers the canonical form
    of ``given``, or None where it is not remembered. Each value is keyed with
    its type: ``1 == True`` and their hashes are equal, but ``as_str`` parses
    them apart."""
    key = []
    for name, value in given.items():
        kind = type(value)
        if kind not in _SEEN_TYPES:
            return None
        key.append((name, value, kind))
    return tuple(key)


# MXNet attributes that tune GPU libraries, workspaces or devices and never change
# a result on the CPU (Dropout's and BatchNorm's cudnn_off, Convolution's
# workspace, a creation op's ctx): accepted by every op and dropped, where any
# other unknown attribute is refused.
INERT_ATTRS = frozenset(
    {"cudnn_off", "cudnn_tune", "workspace", "ctx", "min_calib_range", "max_calib_range"}
)

OPS: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    """Add ``opdef`` (and its aliases) to the registry."""
    for name in (opdef.name, *opdef.aliases):
        if name in OPS:
            raise ValueError(f"op {name!r} registered twice")
        OPS[name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    """The op registered under ``name`` (its MXNet name or an alias)."""
    try:
        return OPS[name]
    except KeyError:
        raise GraphError(f"unknown op {name!r}") from None


def make_node(
    op: str | OpDef, inputs: Sequence[Entry], attrs: dict | None = None, name: str | None = None
) -> Node:
    """Create a node applying ``op`` to ``inputs``, inferring its output types."""
    opdef = get_op(op) if isinstance(op, str) else op
    attrs = opdef.canonical_attrs(attrs or {})
    types = opdef.infer_types([entry.type for entry in inputs], attrs)
    return Node(opdef, attrs, tuple(inputs), types, name)


def _no_impl(*_args: Any, **_attrs: Any) -> NoReturn:
    raise GraphError("a variable has no implementation; give its value")


NULL = register(
    OpDef(
        name="null",
        infer=lambda types: [],
        impl=_no_impl,
        inputs=(),
        differentiable=False,
        doc="A graph input (variable).",
    )
)


def defers(op: OpDef, attrs: dict) -> bool:
    """Whether a call of ``op`` with these canonical attrs may be computed later
    than the call (see ``OpDef.deferrable`` and ``OpDef.pure_when``)."""
    return op.deferrable or (op.pure_when is not None and op.pure_when(attrs))


def variable(
    shape: Sequence[int],
    dtype: Any = np.float32,
    name: str | None = None,
) -> Node:
    """A variable node (a graph input) of the given type."""
    node_type = TensorType(tuple(int(s) for s in shape), np.dtype(dtype))
    return Node(NULL, {}, (), (node_type,), name)
