"""NDArray: an eager array that records its history while autograd records."""

from __future__ import annotations

import html
import numbers
import weakref
from collections.abc import Sequence
from functools import partial
from time import perf_counter
from typing import Any

import numpy as np

from symgrad_compiler import Entry, GraphError, Node, OpDef, OperatorMixin, TensorType, get_op
from symgrad_compiler.registry import NULL
from symgrad_compiler.registry import OPS as _OPS

from .. import _state
from .. import profiler as _profiler
from .._deferred import PURE_FORMS, compute, settle_all, track
from .._namespace import refuse_numpy
from .._recorded import RecordedNode
from ..anomaly import note_site
from ..base import MXNetError, MXNetShapeError
from ..context import Context, check_context, cpu

_CPU = cpu()
_autograd: Any = None  # symgrad.autograd, once NDArray.backward has imported it


def _shapes(inputs: Sequence[NDArray]) -> str:
    return ", ".join(str(x.shape) for x in inputs)


def _input_entry(array: NDArray) -> Entry:
    """The graph entry for an input of a recorded op: its history, or a constant."""
    entry = array._entry
    if entry is not None and not entry.node.freed:
        return entry
    data = array._data
    # recorded_variable(data), one call less: a constant input is made per op call
    node = RecordedNode(NULL, {}, (), (_tensor_type((data.shape, data.dtype)),), None, (data,))
    _remember_leaf(array, node)
    owner = array._owner
    if owner is not None:  # a view: a write into its owner changes it too
        _remember_leaf(owner, node)
    return _entry((node, 0))


def _remember_leaf(array: NDArray, node: Node) -> None:
    """Note that ``node`` reads ``array``'s buffer, so that an in-place write to the
    array first gives the node a copy (see ``NDArray._before_write``). Weak, so a
    dropped graph is not kept alive; freed leaves are forgotten here."""
    live = []
    for ref in array._leaves or ():
        leaf = ref()
        if leaf is not None and not leaf.freed and leaf.value is not None:
            live.append(ref)
    live.append(weakref.ref(node))
    array._leaves = live


def _basic_key(key: tuple, shape: tuple[int, ...]) -> tuple:
    """An MXNet basic index as numpy takes it: ``...`` replaced by full slices,
    integers made non-negative and checked (``IndexError`` naming the axis)."""
    ellipses = sum(1 for item in key if item is Ellipsis)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    indexed = sum(1 for item in key if item is not None and item is not Ellipsis)
    if indexed > len(shape):
        raise IndexError(f"too many indices ({indexed}) for shape {shape}")
    if ellipses:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - indexed) + key[at + 1 :]
    out, axis = [], 0
    for item in key:
        if item is None:
            out.append(None)
            continue
        if isinstance(item, numbers.Integral) and not isinstance(item, bool):
            index = int(item) + (shape[axis] if item < 0 else 0)
            if not 0 <= index < shape[axis]:
                raise IndexError(
                    f"index {item} is out of range for axis {axis} of length {shape[axis]}"
                )
            out.append(index)
        elif isinstance(item, slice):
            out.append(item)
        else:
            raise IndexError(f"unsupported index {item!r}")
        axis += 1
    return tuple(out)


def _reads_buffer(node: Node | None, data: np.ndarray | None) -> bool:
    if node is None or node.freed or node.value is None:
        return False
    value = node.value[0]
    if data is None or value is data:
        return True
    # a leaf made for a view reads part of its owner's buffer
    return value.base is not None and np.may_share_memory(value, data)


def _unshared(value: np.ndarray, sources: Sequence[Any]) -> np.ndarray:
    """``value``, or a copy of it if it is a view into one of the ``sources``
    arrays' memory. Shape ops (transpose, reshape, expand_dims, split...) give numpy
    views of their input; MXNet's give new arrays, and writing into one must not
    change the other. Only views pay for the check (``base`` is None otherwise)."""
    if value.base is None:
        return value
    for source in sources:
        if source is not None and np.may_share_memory(value, source):
            return value.copy()
    return value


def _recorded_sources(entry: Entry) -> list[np.ndarray]:
    """The values held by the nodes ``entry`` was computed from (what a deferred
    view may point into); walked only for values that are views."""
    found, stack, seen = [], [entry.node], set()
    while stack:
        node = stack.pop()
        for child, _ in node.inputs:
            if id(child) in seen:
                continue
            seen.add(id(child))
            if child.value is not None:
                found.extend(child.value)
            stack.append(child)
    return found


# Eager ops that failed on their values (not their shapes), as MXNet's asynchronous
# errors: node -> [error, raised]. The node is pending; reading it, or an array
# computed from it, raises the error once (a later read sees NaN, or 0 for
# integers: the arrays stay usable, as MXNet's do), and so does waitall.
_FAILURES: weakref.WeakKeyDictionary[Node, list] = weakref.WeakKeyDictionary()


def _failed(opdef: OpDef, inputs: Sequence[NDArray], attrs: dict, error: MXNetError | None) -> Any:
    """The arrays of an eager op that failed (``error``) or reads a failed array
    (None): pending, with their inferred types, raising the error when read."""
    attrs = opdef.canonical_attrs(attrs)
    entries = tuple(_input_entry(x) for x in inputs)
    types = tuple(opdef.infer([e.node.types[e.index] for e in entries], **attrs))
    node = RecordedNode(opdef, attrs, entries, types)
    if error is not None:
        _FAILURES[node] = [error, False]
    return _visible(opdef, attrs, [NDArray(None, _entry((node, i))) for i in range(len(types))])


def _raise_failures(roots: Sequence[Node]) -> None:
    """Raise the first not yet raised error of ``roots`` (marking them all raised);
    once raised, a failed node takes NaN values (0 for integers) and is forgotten."""
    fresh = [_FAILURES[node] for node in roots if not _FAILURES[node][1]]
    if fresh:
        for record in fresh:
            record[1] = True
        raise fresh[0][0]
    for node in roots:
        del _FAILURES[node]
        node.value = tuple(
            np.full(t.shape, np.nan if t.dtype.kind in "fc" else 0, t.dtype) for t in node.types
        )


def _failed_roots(entry: Entry) -> list[Node]:
    """The failed nodes among the pending ones ``entry`` is computed from."""
    found, stack, seen = [], [entry.node], set()
    while stack:
        node = stack.pop()
        if id(node) in seen or node.value is not None:
            continue
        seen.add(id(node))
        if node in _FAILURES:
            found.append(node)
        stack.extend(e.node for e in node.inputs)
    return found


def raise_pending_failures() -> None:
    """``waitall``'s check: raise the error of an eager op that failed and was not
    read yet (once, as MXNet's ``waitall`` rethrows it)."""
    if not _FAILURES:
        return
    roots = list(_FAILURES.keys())
    if any(not _FAILURES[node][1] for node in roots):
        _raise_failures([node for node in roots if not _FAILURES[node][1]])


def _compute_deferred(entry: Entry) -> None:
    """Compute a deferred value; an op that fails raises MXNetError here, when the
    value is read, as MXNet raises an asynchronous op's error at ``asnumpy`` or
    ``wait_to_read`` (the arrays stay usable; reading this one raises again)."""
    if _FAILURES:
        roots = _failed_roots(entry)
        if roots:
            _raise_failures(roots)
    try:
        compute(entry)
    except MXNetError:
        raise
    except Exception as err:
        raise MXNetError(
            f"{entry.node.op.name}: failed when its value was computed (it was recorded "
            f"and deferred): {type(err).__name__}: {err}"
        ) from err


class _Overwritten:
    """Takes the place of an array as the ``marked`` array of its old variable node after an
    in-place write: a graph recorded before the write would compute gradients from
    the new values, so differentiating it raises instead."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype):
        self.shape, self.dtype = shape, dtype

    @property
    def _grad_req(self) -> str:
        raise MXNetError(
            f"a variable of shape {self.shape} ({self.dtype}) that this graph was recorded "
            "from was modified in place afterwards (x[:] = ..., x += ..., copyto); its "
            "gradient would use the new values. Differentiate before the write, or "
            "record the computation again after it."
        )


def invoke(op: str | OpDef, inputs: Sequence[NDArray], attrs: dict) -> Any:
    """Run a registered op; while recording, add its node to the graph.

    While recording, ops that have a pure numpy implementation are deferred: the
    node is made (its shape and dtype inferred, so errors still surface here) and
    its value is computed when read, or by the program ``backward`` runs. Ops with
    randomness or side effects (Dropout) run at once, unless ``PURE_FORMS`` records
    them in a pure form (BatchNorm in training: see ``symgrad._deferred``).
    Returns one NDArray, or a list for ops with several visible outputs.
    """
    opdef = op if type(op) is OpDef else _OPS.get(op) or get_op(op)
    if opdef.uses_train_mode and "is_train" not in attrs:
        attrs = dict(attrs, is_train=_state.training.get())
    tape = _state.recording.get()
    if tape:
        for x in inputs:
            if x._entry is not None:
                break
        else:
            return _run(opdef, inputs, attrs, False)
        if not opdef.deferrable and (
            opdef.pure_when is None or not opdef.pure_when(opdef.canonical_attrs(attrs))
        ):
            pure_form = PURE_FORMS.get(opdef.name)  # BatchNorm in training: deferred too
            result = None if pure_form is None else pure_form(inputs, attrs)
            return _run(opdef, inputs, attrs, True) if result is None else result
        # The recording hot path: make the node and pending arrays, nothing more.
        # (One-input ops, most of them, skip the comprehensions: microseconds count.)
        try:
            attrs = opdef.canonical_attrs(attrs)
            if len(inputs) == 1:
                entry = inputs[0]._entry  # not None: checked above
                entries = (_input_entry(inputs[0]) if entry.node.freed else entry,)
            else:
                entries = tuple([_input_entry(x) for x in inputs])
            if opdef.keeps_type:
                first = entries[0]
                types, checked = (first.node.types[first.index],), False
            else:
                # the same op as in the last differentiated step: its types then
                types = tape.expect(opdef, attrs, entries)
                checked = types is not None
                if not checked:
                    types = tuple(opdef.infer([e.node.types[e.index] for e in entries], **attrs))
        except Exception as err:  # rebuild the message with the op and the shapes
            _raise_op_error(opdef, inputs, attrs, err)
        node = RecordedNode(opdef, attrs, entries, types)
        tape.add(node, checked)
        if _state.anomaly:
            note_site(node)
        if len(types) == 1:
            array = NDArray(None, _entry((node, 0)))
            node.pending = (track(array),)
            return array
        arrays = [NDArray(None, _entry((node, i))) for i in range(len(types))]
        node.pending = tuple(track(a) for a in arrays)
        return _visible(opdef, attrs, arrays)
    if opdef.kind == "update":
        # a Trainer collecting its updates to fuse them into the backward program
        capture = _state.update_capture.get()
        if capture is not None:
            return capture.take(opdef, inputs, attrs)
    return _run(opdef, inputs, attrs, False)


# Entry's generated __new__ is Python code; building the tuple directly skips it
# (likewise TensorType's, for the constant leaf an op reading a plain array makes).
_entry = partial(tuple.__new__, Entry)
_tensor_type = partial(tuple.__new__, TensorType)


def _run(opdef: OpDef, inputs: Sequence[NDArray], attrs: dict, record: bool) -> Any:
    """Compute an op now with numpy (and record it with its values if asked)."""
    try:
        attrs = opdef.canonical_attrs(attrs)
        if len(inputs) > 1 and len({x.dtype for x in inputs}) > 1:
            # numpy would silently promote; the op's type rule decides, as it does
            # while recording (most ops refuse mixed dtypes, as MXNet does).
            opdef.infer_types([TensorType(x.shape, np.dtype(x.dtype)) for x in inputs], attrs)
        if _FAILURES and not record and _reads_a_failure(inputs):
            # an op on a failed array fails too, when read (MXNet's error propagates)
            return _failed(opdef, inputs, attrs, None)
        arrays = [x._data for x in inputs]
        if _profiler.imperative:
            start = perf_counter()
            result = opdef.impl(*arrays, **attrs)
            _profiler.record_op(opdef.name, start)
        else:
            result = opdef.impl(*arrays, **attrs)
    except GraphError as err:
        if not str(err).startswith(f"{opdef.name}:"):
            # raised by the numpy implementation itself: name the op and the shapes
            _raise_op_error(opdef, inputs, attrs, err, None if record else opdef)
        raise MXNetShapeError(str(err)) from None
    except (ValueError, IndexError, TypeError, np.linalg.LinAlgError) as err:
        # MXNet's shape inference, at the call, refuses empty reductions and
        # softmaxes: an op failing on an empty input is not deferred
        empty = any(0 in x.shape for x in inputs)
        deferred = _raise_op_error(opdef, inputs, attrs, err, None if record or empty else opdef)
        return _failed(opdef, inputs, attrs, deferred)
    except MemoryError as err:  # _zeros of 10^15 elements: MXNet's error, not numpy's
        raise MXNetError(
            f"{opdef.name}: cannot allocate the result for input shapes "
            f"({_shapes(inputs)}) and attrs {attrs}: {err}"
        ) from None
    outputs = result if isinstance(result, tuple) else (result,)
    if any(o.base is not None for o in outputs):  # a view (shape ops): MXNet copies
        outputs = tuple([_unshared(o, arrays) for o in outputs])
    for k, i in enumerate(opdef.mutates):
        # MXNet's mutable inputs (an optimizer's states) take their new values in
        # place, before a recorded node is made: it then reads the arrays as they
        # are after the call (its value is kept, never recomputed, and it has no
        # gradient), so no recorded graph sees a variable changed behind it.
        inputs[i][:] = outputs[k + 1]
    if record:
        node = RecordedNode(
            opdef,
            attrs,
            tuple(_input_entry(x) for x in inputs),
            tuple(TensorType(o.shape, o.dtype) for o in outputs),
            value=outputs,
        )
        _state.recording.get().add(node)
        if _state.anomaly:
            note_site(node)
        arrays = [NDArray(o, Entry(node, i)) for i, o in enumerate(outputs)]
    else:
        arrays = [NDArray(o) for o in outputs]
    return _visible(opdef, attrs, arrays)


def _visible(opdef: OpDef, attrs: dict, arrays: list[NDArray]) -> Any:
    count = len(arrays) if attrs.get("output_mean_var") else (opdef.visible(attrs) or len(arrays))
    return arrays[0] if count == 1 else arrays[:count]


def _reads_a_failure(inputs: Sequence[NDArray]) -> bool:
    return any(x._value is None and _failed_roots(x._entry) for x in inputs)


def _raise_op_error(
    opdef: OpDef,
    inputs: Sequence[NDArray],
    attrs: dict,
    err: Exception,
    defer: OpDef | None = None,
) -> MXNetError:
    """Raise the error of a failed op call, naming the op and the shapes. With
    ``defer``, an error of the values (the shapes and attrs are fine) is returned
    instead, for the caller to raise when the result is read, as MXNet does."""
    types = [TensorType(x.shape, np.dtype(x.dtype)) for x in inputs]
    try:
        opdef.infer_types(types, opdef.canonical_attrs(attrs))
    except (GraphError, ValueError, TypeError) as shape_error:
        raise MXNetShapeError(str(shape_error)) from None
    error = MXNetShapeError(f"{opdef.name}: failed on input shapes ({_shapes(inputs)}): {err}")
    if defer is not None:
        error.__cause__ = err
        return error
    raise error from err


class NDArray(OperatorMixin):
    """An n-dimensional array on the CPU, with MXNet's NDArray API.

    >>> import symgrad as mx
    >>> x = mx.nd.array([1, 2, 3, 4])
    >>> x * 2
    <BLANKLINE>
    [2. 4. 6. 8.]
    <NDArray 4 @cpu(0)>
    """

    # ``_leaves`` (None until a recorded op reads this array as a constant) holds
    # weak references to the graph leaves that share its buffer.
    # ``_fresh`` (True once a backward wrote this variable's gradient) backs
    # ``_fresh_grad``, which Trainer reads to find stale gradients.
    # ``_shared`` (True once the buffer was handed out: ``__array__``, DLPack,
    # ``from_numpy``, or a view made by :meth:`_view`) keeps ``_write_swapping``
    # from replacing the buffer.
    # ``_owner`` (set on a view) is the array whose buffer the view's is part of.
    # Every slot is set in ``__init__``: reading an unset slot through ``getattr``
    # with a default raises and catches an AttributeError (about 0.2 us), and a
    # training step reads these some thirty times.
    __slots__ = (
        "_value",
        "_entry",
        "_grad",
        "_grad_req",
        "_leaves",
        "_fresh",
        "_shared",
        "_owner",
        "__weakref__",
    )

    def __init__(self, data: np.ndarray | None, entry: Entry | None = None):
        self._value = data  # None while the value is deferred (see symgrad._deferred)
        self._entry = entry
        self._grad: NDArray | None = None
        self._grad_req = "null"
        self._leaves: list | None = None
        self._fresh = False
        self._shared = False
        self._owner: NDArray | None = None

    @property
    def _data(self) -> np.ndarray:
        value = self._value
        if value is None:
            entry = self._entry
            if entry.node.value is None:
                _compute_deferred(entry)
            value = entry.node.value[entry.index]
            if value.base is not None and entry.node.op.kind == "shape":
                value = _unshared(value, _recorded_sources(entry))
            self._value = value
        return value

    def _settle(self, value: np.ndarray) -> None:
        """Give a deferred array the value a program computed for it (a copy if
        a shape op's value is a view of a value the graph read; other ops' views
        are of the program's own buffers, and the walk would cost every step)."""
        if value.base is not None and self._entry.node.op.kind == "shape":
            value = _unshared(value, _recorded_sources(self._entry))
        self._value = value

    # -- OperatorMixin ------------------------------------------------------
    # Operators call ``self._apply(op, inputs, attrs)``: invoke itself, one
    # Python frame less on every recorded op.
    _apply = staticmethod(invoke)

    def _call(self, opdef: OpDef, args: Sequence[Any], kwargs: dict) -> Any:
        # fluent methods (x.dot(y)): a numpy argument is refused by name, as in mx.nd
        refuse_numpy(opdef.name, opdef, args, kwargs)
        return super()._call(opdef, args, kwargs)

    def _coerce(self, other):
        if isinstance(other, NDArray):
            return other
        if isinstance(other, np.ndarray):
            # MXNet refuses it too (a numpy array would otherwise meet NDArray's
            # float32 with float64, or take over the operator through __radd__)
            raise TypeError(
                f"an NDArray operator got a numpy.ndarray of shape {other.shape}: "
                "type <class 'numpy.ndarray'> not supported; wrap it with mx.nd.array"
            )
        return None

    # -- properties ----------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self._value.shape if self._value is not None else self._entry.shape

    @property
    def dtype(self) -> type:
        """The element type, as a numpy scalar type (``numpy.float32``)."""
        return (self._value.dtype if self._value is not None else self._entry.dtype).type

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def context(self) -> Context:
        """The device: always ``cpu(0)``."""
        return _CPU

    ctx = context

    @property
    def stype(self) -> str:
        """Storage type: always ``'default'`` (dense)."""
        return "default"

    @property
    def T(self) -> NDArray:
        """The transpose (axes reversed)."""
        return invoke("transpose", (self,), {})

    @property
    def grad(self) -> NDArray | None:
        """The gradient buffer attached by ``attach_grad`` or ``mark_variables``."""
        return self._grad

    @property
    def handle(self) -> np.ndarray:
        """The numpy array behind this NDArray (no copy)."""
        return self._data

    # -- conversion ----------------------------------------------------------
    def asnumpy(self) -> np.ndarray:
        """A numpy copy of the values."""
        return self._data.copy()

    def asscalar(self) -> Any:
        """The value of a one-element array as a numpy scalar (ValueError otherwise,
        as MXNet: ``The current array is not a scalar``)."""
        if self._data.size != 1:
            raise MXNetShapeError(
                f"The current array is not a scalar: asscalar needs one element, "
                f"not shape {self.shape}"
            )
        return self._data.reshape(-1)[0]

    # -- pickling, numpy and DLPack interchange ------------------------------
    def __getstate__(self) -> dict:
        # the values only, as MXNet pickles them: no history, no gradient buffer
        return {"handle": self.asnumpy()}

    def __setstate__(self, state: dict) -> None:
        NDArray.__init__(self, np.asarray(state["handle"]))

    def to_dlpack_for_read(self) -> Any:
        """A DLPack capsule sharing this array's memory, for reading (pending
        values are computed first)."""
        self._shared = True
        return self._data.__dlpack__()

    def to_dlpack_for_write(self) -> Any:
        """A DLPack capsule sharing this array's memory, for writing: recorded
        graphs that read the current values keep a copy of them first."""
        self._before_write()
        self._shared = True
        # DLPack 1.0's capsule carries a writable flag (numpy imports the older
        # one read-only)
        return self._data.__dlpack__(max_version=(1, 0))

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        """The array API's DLPack export (``np.from_dlpack(x)``), sharing memory."""
        self._shared = True
        return self._data.__dlpack__(stream=stream, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(1, 0)``: DLPack's CPU device."""
        return (1, 0)

    def astype(self, dtype: Any, copy: bool = True) -> NDArray:
        """Cast to ``dtype`` (recorded as MXNet's ``Cast``)."""
        if not copy and np.dtype(dtype) == self._data.dtype:
            return self
        return invoke("Cast", (self,), {"dtype": dtype})

    def copy(self) -> NDArray:
        """A copy (recorded as ``_copy``)."""
        return invoke("_copy", (self,), {})

    def copyto(self, other: NDArray | Context) -> NDArray:
        """Copy into ``other`` (an NDArray of the same shape) or to a context."""
        if isinstance(other, Context):
            check_context(other)
            if _FAILURES and self._value is None and _failed_roots(self._entry):
                return invoke("_copy", (self,), {})  # fails when read, as MXNet's
            return NDArray(self._data.copy())
        if other.shape != self.shape:
            raise MXNetShapeError(f"copyto: shape {self.shape} into {other.shape}")
        other._before_write()
        np.copyto(other._data, self._data, casting="unsafe")
        return other

    def as_in_context(self, ctx: Context) -> NDArray:
        """This array, on ``ctx`` (only the CPU exists)."""
        check_context(ctx)
        return self

    def tolist(self) -> list:
        """The values as nested Python lists."""
        return self._data.tolist()

    def reshape(self, *shape: Any, **kwargs: Any) -> NDArray:
        """Reshape, with a tuple or ints and MXNet's codes 0, -1, -2, -3, -4."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        spec = kwargs.pop("shape", shape)
        attrs = dict(kwargs, shape=spec)
        if self._entry is None or not _state.recording.get():
            # MXNet's reshape method returns a view (``nd.reshape``, the op, a copy)
            shaped = self._reshaped(attrs)
            if shaped is not None:
                return shaped
        return invoke("Reshape", (self,), attrs)

    def _reshaped(self, attrs: dict) -> NDArray | None:
        """A view of this array with the shape ``Reshape`` gives for ``attrs``, or
        None (the op then runs, and raises its own error for a wrong shape)."""
        if _FAILURES and self._value is None and _failed_roots(self._entry):
            return None
        opdef = _OPS["Reshape"]
        data = self._data
        try:
            attrs = opdef.canonical_attrs(attrs)
            (result,) = opdef.infer_types([TensorType(data.shape, data.dtype)], attrs)
        except (GraphError, ValueError, TypeError):
            return None
        if not data.flags.c_contiguous:
            return None
        return self._view(data.reshape(result.shape))

    def wait_to_read(self) -> None:
        """Block until the values are ready: a deferred value is computed now, and
        an op that failed raises MXNetError here, as in MXNet."""
        self._data  # noqa: B018  (computes a pending value)

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                "the truth value of an NDArray with more than one element is ambiguous"
            )
        return bool(self._data.reshape(-1)[0])

    def __float__(self) -> float:
        return float(self._one_element("float"))

    def __int__(self) -> int:
        return int(self._one_element("int"))

    def _one_element(self, kind: str) -> Any:
        if self._data.size != 1:
            raise TypeError(
                f"only one-element arrays can be converted to Python scalars ({kind}() of "
                f"an NDArray of shape {self.shape})"
            )
        return self._data.reshape(-1)[0]

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return f"\n{self._data}\n<NDArray {shape} @{self.context}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display: the same text as ``repr`` (MXNet's)."""
        printer.text(repr(self))

    def _repr_html_(self) -> str:
        """A notebook's rich display: ``repr``'s text, escaped, in a ``<pre>``."""
        return f"<pre>{html.escape(repr(self))}</pre>"

    def __array__(self, dtype=None, copy=None):
        if dtype is not None:
            return self._data.astype(dtype)
        self._shared = True
        return self._data

    # -- autograd -------------------------------------------------------------
    @property
    def _fresh_grad(self) -> bool:
        """Whether a backward wrote this variable's gradient since the flag was
        last cleared (MXNet's ``_fresh_grad``; a Trainer clears it after a step)."""
        return self._fresh

    @_fresh_grad.setter
    def _fresh_grad(self, value: bool) -> None:
        self._fresh = bool(value)

    def attach_grad(self, grad_req: str = "write", stype: str | None = None) -> None:
        """Make this array a variable whose gradient ``backward`` computes into
        ``self.grad`` (a new zero buffer) according to ``grad_req``."""
        from ..autograd import mark_variables

        mark_variables([self], [NDArray(np.zeros_like(self._data))], grad_req)

    def detach(self) -> NDArray:
        """The same values with no history: gradients stop here. Shares this
        array's memory, as MXNet's does."""
        return self._view(self._data)

    def backward(
        self, out_grad: NDArray | None = None, retain_graph: bool = False, train_mode: bool = True
    ) -> None:
        """Compute gradients of this array into the ``.grad`` of marked variables."""
        global _autograd
        if _autograd is None:  # (imported at the first call: autograd imports this module)
            from .. import autograd as _autograd
        _autograd.backward([self], [out_grad], retain_graph=retain_graph, train_mode=train_mode)

    # -- indexing ---------------------------------------------------------------
    def __getitem__(self, key: Any) -> NDArray:
        """``x[key]``: integers, slices, ``None`` and one ``...`` (basic indexing), or
        an NDArray, numpy array or list of indices along the first axis (``take``).

        As in MXNet, basic indexing whose elements are contiguous in memory gives a
        view: writing into either array changes the other (``x[1:3]``, ``x[2]``,
        ``x[1, 2:4]``); other keys give a copy. Integer indices on every axis give
        shape ``(1,)``. While autograd records an array with history, the result is
        the recorded ``slice`` (a copy), so that gradients flow through it."""
        if isinstance(key, (NDArray, np.ndarray, list)):
            index = key if isinstance(key, NDArray) else NDArray(np.asarray(key))
            return invoke("take", (self, index), {"axis": 0})
        key = _basic_key(key if isinstance(key, tuple) else (key,), self.shape)
        if self._entry is None or not _state.recording.get():
            if not (_FAILURES and self._value is None and _failed_roots(self._entry)):
                part = self._data[key + (Ellipsis,)]  # (an array even for x[5])
                if part.ndim == 0:
                    part = part.reshape(1)
                if part.size and part.flags.c_contiguous:
                    return self._view(part)
        return self._sliced(key)

    def _sliced(self, key: tuple) -> NDArray:
        """``self[key]`` for a key from :func:`_basic_key`, by the ``slice`` op (then
        ``squeeze`` for integer indices and ``Reshape`` for new axes): a copy,
        recorded while autograd records."""
        begin, end, step, squeeze = [], [], [], []
        axis = 0
        for item in key:
            if item is None:
                continue
            if isinstance(item, slice):
                begin.append(item.start)
                end.append(item.stop)
                step.append(item.step)
            else:
                begin.append(item)
                end.append(item + 1)
                step.append(None)
                squeeze.append(axis)
            axis += 1
        result = invoke(
            "slice", (self,), {"begin": tuple(begin), "end": tuple(end), "step": tuple(step)}
        )
        if squeeze:
            result = invoke("squeeze", (result,), {"axis": tuple(squeeze)})
        if None in key:
            # the shape numpy's indexing gives (no memory: a broadcast scalar)
            shape = np.broadcast_to(np.zeros((), np.int8), self.shape)[key].shape or (1,)
            result = invoke("Reshape", (result,), {"shape": shape})
        return result

    def _view(self, part: np.ndarray) -> NDArray:
        """A new array whose buffer is ``part``, memory of this array's, as MXNet's
        views (contiguous basic indexing, ``reshape``, ``detach``) share it. Neither
        buffer is ever replaced (``_shared``), so each keeps seeing the other's
        writes; a write into either first protects what the other's recordings read
        (see :meth:`_before_write`)."""
        owner = self._owner
        owner = self if owner is None else owner
        view = NDArray(part)
        view._owner = owner
        view._shared = True
        owner._shared = True
        return view

    def __setitem__(self, key: Any, value: Any) -> None:
        if _state.recording.get() and self._entry is not None and not self._entry.node.is_variable:
            raise MXNetError(
                "in-place assignment to an array with recorded history is not "
                "supported while recording; compute a new array instead"
            )
        if value is self and (key is Ellipsis or (type(key) is slice and key == slice(None))):
            return  # x[:] = x (an update op called with out= its own weight)
        if isinstance(key, NDArray):
            key = key._data.astype(np.int64)
        value = value._data if isinstance(value, NDArray) else value
        self._before_write()
        self._data[key] = value

    def _inplace(self, op_result: NDArray) -> NDArray:
        if _state.recording.get() and self._entry is not None:
            raise MXNetError(
                "in-place arithmetic (+=, -=, ...) on an array with history "
                "is not supported while recording; write x = x + y"
            )
        value = op_result._data
        self._before_write()
        self._data[...] = value
        return self

    def _before_write(self) -> None:
        """Keep recorded graphs right before this array's buffer is written in place.

        Pending values are computed first (they must read the old data). A graph
        leaf that read this array as a constant gets a private copy of the old data,
        so its gradients stay right. A marked variable gets a fresh variable node for
        later recordings, and its old node is tagged so that differentiating a graph
        recorded before the write raises (copying every parameter at every update
        would cost more than the rare misuse it guards against).

        A view's write is also a write into its owner's buffer (and so into the
        owner's other views): what recordings read of the owner is protected too.
        """
        self._replace_buffer(None)
        owner = self._owner
        if owner is not None:
            owner._replace_buffer(None)

    def _may_give_up(self, old: np.ndarray, values: np.ndarray) -> bool:
        """Whether this array may take ``values`` as its buffer in place of ``old``
        (its settled buffer): ``old`` was never handed out, is no view of other
        memory, and has the shape and dtype of ``values`` (see ``_write_swapping``)."""
        return (
            not self._shared
            and old.base is None
            and old.shape == values.shape
            and old.dtype == values.dtype
        )

    def _write_swapping(self, values: np.ndarray, settled: bool = False) -> np.ndarray:
        """Set every element to ``values``, as ``self[:] = values`` does, but by
        taking ``values`` (a buffer of this shape and dtype that its caller owns and
        gives up) as this array's buffer; returns the buffer the caller owns now:
        the old one, which nothing recorded reads any more, or ``values`` itself,
        copied in, if the old buffer was handed out (``__array__``, DLPack,
        ``from_numpy``: someone may read or write it as this array's memory) or
        is a view of another array's memory (which the caller would then write).
        ``settled``: the caller computed every pending value already (a training
        step swapping many buffers settles once)."""
        old = self._value
        if old is None:
            old = self._data
        if not self._may_give_up(old, values):
            self._before_write()
            np.copyto(old, values)
            return values
        self._replace_buffer(values, settled)
        return old

    def _replace_buffer(self, values: np.ndarray | None, settled: bool = False) -> None:
        # _before_write, then (with ``values``) the buffer replaced by ``values``
        _state.in_place_writes += 1  # a fused training step checks nothing changed
        if not settled:
            settle_all()
        data = self._value
        if data is None:
            data = self._data
        leaves = self._leaves
        if leaves:
            for ref in leaves:
                node = ref()
                if _reads_buffer(node, data):
                    node.value = (node.value[0].copy(),)
            self._leaves = []
        if values is not None:
            self._value = data = values
        entry = self._entry
        if entry is not None and entry.node.marked is self:
            self._new_variable(entry.node, data)

    def _new_variable(self, node: Node, data: np.ndarray) -> None:
        """After a write: a fresh variable node for later recordings of this marked
        array (its buffer ``data``), the old ``node`` tagged as overwritten."""
        node.marked = _Overwritten(data.shape, data.dtype)
        # (the old node's types: the buffer has the same shape and dtype)
        fresh = RecordedNode(NULL, {}, (), node.types, None, (data,))
        fresh.marked = self
        self._entry = _entry((fresh, 0))

    def __iadd__(self, other):
        return self._inplace(self + other)

    def __isub__(self, other):
        return self._inplace(self - other)

    def __imul__(self, other):
        return self._inplace(self * other)

    def __itruediv__(self, other):
        return self._inplace(self / other)


def swap_buffers(
    arrays: Sequence[NDArray], results: Sequence[np.ndarray], buffers: list[np.ndarray]
) -> None:
    """A fused training step's commit (see ``symgrad.training_step``): each array
    takes the value computed for it, as ``array[:] = result`` would. A result
    computed into the step's own buffer ``buffers[k]`` becomes the array's buffer
    and the array's old buffer the step's (``NDArray._write_swapping``); any other
    result is copied in. The caller has computed every pending value.

    The common case (a buffer of the array's own that no recorded constant reads)
    is done here in one loop: a steady step swaps every weight and state."""
    swapped = 0
    for k, (array, result) in enumerate(zip(arrays, results)):
        old = array._value
        if result is not buffers[k]:
            array._before_write()
            np.copyto(array._data, result)
        elif old is None or array._leaves or not array._may_give_up(old, result):
            # (pending, read by a recorded constant, or not to be given up)
            buffers[k] = array._write_swapping(result, settled=True)
        else:
            swapped += 1
            array._value = result
            buffers[k] = old
            entry = array._entry
            if entry is not None and entry.node.marked is array:
                array._new_variable(entry.node, result)
    # (each swap is an in-place write, as _write_swapping counts it)
    _state.in_place_writes += swapped


def is_ndarray(value: Any) -> bool:
    """True for an NDArray."""
    return isinstance(value, NDArray)
