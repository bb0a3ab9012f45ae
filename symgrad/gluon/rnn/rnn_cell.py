"""Recurrent cells: one step of a recurrence as a Block, and ``unroll`` over a
sequence (MXNet 1.x's ``gluon.rnn`` cells).

A cell is called as ``output, new_states = cell(x_t, states)``; ``begin_state``
makes the first states and ``unroll(length, inputs, ...)`` runs the steps of a
sequence (layout ``'NTC'`` or ``'TNC'``, a merged array or a list of per-step
arrays), masking the steps past ``valid_length``. The cells compute with registered
ops only (FullyConnected, SliceChannel, activations, elementwise), so their
gradients are those ops' gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ... import ndarray as nd
from ... import symbol as sym
from ...base import MXNetError
from ...ndarray import NDArray
from ...symbol import Symbol
from ..block import Block, HybridBlock
from ..parameter import ParameterDict

TENSORS = (NDArray, Symbol)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _outputs(value: Any) -> list:
    """The outputs of a multi-output op call: a list of NDArrays, or the Symbols
    of a grouped Symbol's outputs."""
    if isinstance(value, Symbol):
        return [value[k] for k in range(len(value))]
    return _as_list(value)


def _namespace(value: Any) -> Any:
    """``mx.sym`` for Symbols, ``mx.nd`` for NDArrays."""
    first = value[0] if isinstance(value, (list, tuple)) else value
    return sym if isinstance(first, Symbol) else nd


def _split_steps(F: Any, inputs: Any, axis: int, length: int) -> list:
    """The steps of a merged sequence along ``axis``, as a list."""
    parts = F.split(inputs, axis=axis, num_outputs=length, squeeze_axis=True)
    return _outputs(parts) if length > 1 else [parts]


def _format_sequence(
    length: int | None, inputs: Any, layout: str, merge: bool | None, in_layout: str | None = None
) -> tuple[Any, int, Any, int]:
    """Bring ``inputs`` (an array in ``in_layout`` or a list of steps) to a merged
    array in ``layout`` (``merge=True``), a list of steps (``merge=False``) or
    leave its form (None). Returns (inputs, time axis, F, batch size)."""
    if inputs is None:
        raise ValueError("unroll needs inputs")
    axis = layout.find("T")
    in_axis = in_layout.find("T") if in_layout is not None else axis
    F = _namespace(inputs)
    batch_size = 0
    if isinstance(inputs, TENSORS):
        if F is nd:
            batch_size = inputs.shape[layout.find("N")]
            steps = inputs.shape[in_axis]
            if length is not None and length != steps:
                raise ValueError(f"unroll length {length} differs from the inputs' {steps} steps")
            length = steps
        if merge is False:
            inputs = _split_steps(F, inputs, in_axis, length)
    else:
        inputs = list(inputs)
        if length is not None and len(inputs) != length:
            raise ValueError(f"unroll length {length} differs from the {len(inputs)} steps given")
        if F is nd:
            batch_size = inputs[0].shape[0]
        if merge is True:
            inputs = F.stack(*inputs, axis=axis)
            in_axis = axis
    if isinstance(inputs, TENSORS) and axis != in_axis:
        inputs = F.swapaxes(inputs, dim1=axis, dim2=in_axis)
    return inputs, axis, F, batch_size


def _mask_sequence_variable_length(
    F: Any, data: Any, length: int, valid_length: Any, time_axis: int, merge: bool
) -> Any:
    """Zero the steps of ``data`` at or past each sequence's ``valid_length``."""
    if not isinstance(data, TENSORS):
        data = F.stack(*data, axis=time_axis)
    outputs = F.SequenceMask(data, valid_length, use_sequence_length=True, axis=time_axis)
    if not merge:
        outputs = _split_steps(F, outputs, time_axis, length)
    return outputs


def _reverse_sequences(sequences: list, length: int, valid_length: Any = None) -> list:
    """The steps in reverse order; with ``valid_length`` each sequence's valid
    steps are reversed in place and its padding stays at the end."""
    if valid_length is None:
        return list(reversed(sequences))
    F = _namespace(sequences)
    stacked = F.stack(*sequences, axis=0)
    reversed_steps = F.SequenceReverse(stacked, valid_length, use_sequence_length=True)
    return _split_steps(F, reversed_steps, 0, length)


def _state_from(func: Callable, name: str, info: dict) -> Any:
    """``func(name=..., **info)`` as MXNet calls it; symgrad's ``nd.zeros`` takes
    neither a name nor the ``__layout__`` hint, so they go when it refuses them."""
    try:
        return func(name=name, **info)
    except (TypeError, MXNetError):
        info = {k: v for k, v in info.items() if not k.startswith("__")}
        try:
            return func(name=name, **info)
        except (TypeError, MXNetError):
            return func(**info)


def _get_begin_state(
    cell: RecurrentCell, F: Any, begin_state: Any, inputs: Any, batch_size: int, time_axis: int = 0
) -> list:
    if begin_state is not None:
        return _as_list(begin_state)
    if F is nd:  # states of the inputs' dtype, so that float64 cells run
        first = inputs if isinstance(inputs, NDArray) else inputs[0]
        return cell.begin_state(func=F.zeros, batch_size=batch_size, dtype=first.dtype)
    # Traced: zeros made from the inputs, so the states follow each call's batch
    # size (MXNet writes _zeros of batch 0, which needs shape inference to complete).
    if isinstance(inputs, (list, tuple)):
        first = inputs[0]
    else:
        first = F.squeeze(F.slice_axis(inputs, axis=time_axis, begin=0, end=1), axis=time_axis)
    column = F.zeros_like(F.slice_axis(first, axis=-1, begin=0, end=1))  # (N, 1)
    return [
        F.broadcast_to(column, shape=(0,) + tuple(info["shape"][1:])) for info in cell.state_info(0)
    ]


def _cells_state_info(cells: Sequence[RecurrentCell], batch_size: int) -> list[dict]:
    return sum((cell.state_info(batch_size) for cell in cells), [])


def _cells_begin_state(cells: Sequence[RecurrentCell], **kwargs: Any) -> list:
    return sum((cell.begin_state(**kwargs) for cell in cells), [])


def _activation(F: Any, x: Any, activation: Any, **kwargs: Any) -> Any:
    """An activation by name (tanh, relu, sigmoid, softsign, or any Activation
    act_type) or a Block/callable."""
    if isinstance(activation, str):
        if activation in ("tanh", "relu", "sigmoid", "softsign"):
            return getattr(F, activation)(x, **kwargs)
        return F.Activation(x, act_type=activation, **kwargs)
    return activation(x)


# ---------------------------------------------------------------------------
# the base classes
# ---------------------------------------------------------------------------


class RecurrentCell(Block):
    """The base of recurrent cells: ``begin_state``, ``state_info``, ``unroll``.

    Parameters
    ----------
    prefix : str, optional
        Prefix of the cell's names.
    params : ParameterDict, optional
        Parameters to share.
    """

    def __init__(self, prefix: str | None = None, params: ParameterDict | None = None):
        super().__init__(prefix=prefix, params=params)
        self._modified = False
        self.reset()

    def reset(self) -> None:
        """Restart the step counters (before unrolling a new sequence)."""
        self._init_counter = -1
        self._counter = -1
        for cell in self._children.values():
            if isinstance(cell, RecurrentCell):
                cell.reset()

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """The shape and layout of each state, as dicts (``{'shape': (N, H), ...}``)."""
        raise NotImplementedError

    def begin_state(self, batch_size: int = 0, func: Callable = nd.zeros, **kwargs: Any) -> list:
        """The initial states: ``func(name=..., shape=..., **kwargs)`` for each state
        of :meth:`state_info` (zeros by default).

        >>> import symgrad as mx
        >>> [s.shape for s in LSTMCell(4).begin_state(2)]
        [(2, 4), (2, 4)]
        """
        if self._modified:
            raise MXNetError(
                "After applying modifier cells (e.g. ZoneoutCell) the base "
                "cell cannot be called directly. Call the modifier cell "
                "instead."
            )
        states = []
        for info in self.state_info(batch_size):
            self._init_counter += 1
            info = dict(info or {}, **kwargs)
            states.append(
                _state_from(func, f"{self._prefix}begin_state_{self._init_counter}", info)
            )
        return states

    def unroll(
        self,
        length: int,
        inputs: Any,
        begin_state: Any = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: Any = None,
    ) -> tuple[Any, list]:
        """Run ``length`` steps over ``inputs``.

        Parameters
        ----------
        length : int
            Number of steps.
        inputs : NDArray, Symbol or list
            The sequence in ``layout``, or a list of ``length`` (N, C) steps.
        begin_state : list, optional
            Initial states (default: :meth:`begin_state`).
        layout : {'NTC', 'TNC'}
            Layout of ``inputs`` and of merged outputs.
        merge_outputs : bool, optional
            Outputs as one array (True), a list of steps (False), or in the
            inputs' form (None).
        valid_length : NDArray or Symbol, optional
            (N,) lengths: outputs past them are zero and the states returned are
            those of each sequence's last valid step.

        Returns
        -------
        (outputs, states)
        """
        self.reset()
        inputs, axis, F, batch_size = _format_sequence(length, inputs, layout, False)
        states = _get_begin_state(self, F, begin_state, inputs, batch_size)
        outputs, all_states = [], []
        for step in range(length):
            output, states = self(inputs[step], states)
            outputs.append(output)
            if valid_length is not None:
                all_states.append(states)
        if valid_length is not None:
            states = [
                F.SequenceLast(
                    F.stack(*per_step, axis=0), valid_length, use_sequence_length=True, axis=0
                )
                for per_step in zip(*all_states)
            ]
            outputs = _mask_sequence_variable_length(F, outputs, length, valid_length, axis, True)
        outputs, _, _, _ = _format_sequence(length, outputs, layout, merge_outputs)
        return outputs, states

    def forward(self, inputs: Any, states: Any) -> Any:
        """One step: ``(output, new_states)``."""
        self._counter += 1
        return super().forward(inputs, states)


class HybridRecurrentCell(RecurrentCell, HybridBlock):
    """A recurrent cell whose step is a ``hybrid_forward`` (it can be hybridized)."""

    def __init__(self, prefix: str | None = None, params: ParameterDict | None = None):
        super().__init__(prefix=prefix, params=params)

    def hybrid_forward(self, F: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        """The step, with ``F`` being ``mx.nd`` or ``mx.sym``."""
        raise NotImplementedError


class _GatedCell(HybridRecurrentCell):
    """The shared parameters of RNNCell, LSTMCell and GRUCell: ``i2h_weight``
    (G*H, input_size), ``h2h_weight`` (G*H, H), ``i2h_bias`` and ``h2h_bias``."""

    _gates = 1

    def __init__(
        self,
        hidden_size: int,
        i2h_weight_initializer: Any,
        h2h_weight_initializer: Any,
        i2h_bias_initializer: Any,
        h2h_bias_initializer: Any,
        input_size: int,
        prefix: str | None,
        params: ParameterDict | None,
    ):
        super().__init__(prefix=prefix, params=params)
        self._hidden_size = hidden_size
        self._input_size = input_size
        rows = self._gates * hidden_size
        self.i2h_weight = self.params.get(
            "i2h_weight",
            shape=(rows, input_size),
            init=i2h_weight_initializer,
            allow_deferred_init=True,
        )
        self.h2h_weight = self.params.get(
            "h2h_weight",
            shape=(rows, hidden_size),
            init=h2h_weight_initializer,
            allow_deferred_init=True,
        )
        self.i2h_bias = self.params.get(
            "i2h_bias", shape=(rows,), init=i2h_bias_initializer, allow_deferred_init=True
        )
        self.h2h_bias = self.params.get(
            "h2h_bias", shape=(rows,), init=h2h_bias_initializer, allow_deferred_init=True
        )

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """One (N, H) state ('NC' layout)."""
        return [{"shape": (batch_size, self._hidden_size), "__layout__": "NC"}]

    def infer_shape(self, inputs: Any, *args: Any) -> None:
        """``i2h_weight``'s input size from the step's input."""
        self.i2h_weight.shape = (self._gates * self._hidden_size, inputs.shape[-1])

    def _projections(
        self,
        F: Any,
        inputs: Any,
        states: list,
        i2h_weight: Any,
        h2h_weight: Any,
        i2h_bias: Any,
        h2h_bias: Any,
    ) -> tuple[Any, Any]:
        prefix = f"t{self._counter}_"
        rows = self._gates * self._hidden_size
        i2h = F.FullyConnected(inputs, i2h_weight, i2h_bias, num_hidden=rows, name=prefix + "i2h")
        h2h = F.FullyConnected(
            states[0], h2h_weight, h2h_bias, num_hidden=rows, name=prefix + "h2h"
        )
        return i2h, h2h

    def __repr__(self) -> str:
        shape = self.i2h_weight.shape
        activation = getattr(self, "_activation", None)
        extra = f", {activation}" if isinstance(activation, str) else ""
        return f"{type(self).__name__}({shape[1] if shape[1] else None} -> {shape[0]}{extra})"


class RNNCell(_GatedCell):
    """An Elman cell: ``h' = activation(W_i2h x + b_i2h + W_h2h h + b_h2h)``.

    Parameters
    ----------
    hidden_size : int
        Size of the state.
    activation : str or Block
        'tanh' (default), 'relu', any Activation act_type, or a Block.
    i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
    h2h_bias_initializer : Initializer or str
        Initializers of the four Parameters (biases: zeros by default).
    input_size : int
        Input size; 0 infers it from the first input.

    Notes
    -----
    Gradient: the chain rule through FullyConnected, elemwise_add and the
    activation (each op's own rule).
    """

    _gates = 1

    def __init__(
        self,
        hidden_size: int,
        activation: Any = "tanh",
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        input_size: int = 0,
        prefix: str | None = None,
        params: ParameterDict | None = None,
    ):
        super().__init__(
            hidden_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            input_size,
            prefix,
            params,
        )
        self._activation = activation

    def _alias(self) -> str:
        return "rnn"

    def hybrid_forward(
        self,
        F: Any,
        inputs: Any,
        states: list,
        i2h_weight: Any,
        h2h_weight: Any,
        i2h_bias: Any,
        h2h_bias: Any,
    ) -> tuple[Any, list]:
        """``activation(i2h + h2h)``: the output is the new state."""
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        prefix = f"t{self._counter}_"
        output = _activation(
            F,
            F.elemwise_add(i2h, h2h, name=prefix + "plus0"),
            self._activation,
            name=prefix + "out",
        )
        return output, [output]


class _ActivatedGatedCell(_GatedCell):
    """LSTMCell's and GRUCell's constructor (MXNet's argument order): the gated
    cell's parameters and the two activations."""

    def __init__(
        self,
        hidden_size: int,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        input_size: int = 0,
        prefix: str | None = None,
        params: ParameterDict | None = None,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
    ):
        super().__init__(
            hidden_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            input_size,
            prefix,
            params,
        )
        self._activation = activation
        self._recurrent_activation = recurrent_activation


class LSTMCell(_ActivatedGatedCell):
    """A long short-term memory cell; gates i, f, g, o (MXNet's order):
    ``c' = f c + i g``, ``h' = o tanh(c')``.

    Parameters
    ----------
    hidden_size : int
        Size of h and c.
    i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
    h2h_bias_initializer : Initializer or str
        Initializers of ``i2h_weight`` (4H, in), ``h2h_weight`` (4H, H) and the biases.
    input_size : int
        Input size; 0 infers it from the first input.
    activation, recurrent_activation : str
        The activations of g and tanh(c') ('tanh'), and of the gates ('sigmoid').

    Notes
    -----
    Gradient: the chain rule through FullyConnected, SliceChannel, the
    activations and the elementwise products (each op's own rule).
    """

    _gates = 4

    def _alias(self) -> str:
        return "lstm"

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """h and c, each (N, H)."""
        info = {"shape": (batch_size, self._hidden_size), "__layout__": "NC"}
        return [dict(info), dict(info)]

    def hybrid_forward(
        self,
        F: Any,
        inputs: Any,
        states: list,
        i2h_weight: Any,
        h2h_weight: Any,
        i2h_bias: Any,
        h2h_bias: Any,
    ) -> tuple[Any, list]:
        """One LSTM step: returns ``h', [h', c']``."""
        prefix = f"t{self._counter}_"
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        gates = F.elemwise_add(i2h, h2h, name=prefix + "plus0")
        in_gate, forget_gate, transform, out_gate = _outputs(
            F.SliceChannel(gates, num_outputs=4, name=prefix + "slice")
        )
        in_gate = _activation(F, in_gate, self._recurrent_activation, name=prefix + "i")
        forget_gate = _activation(F, forget_gate, self._recurrent_activation, name=prefix + "f")
        transform = _activation(F, transform, self._activation, name=prefix + "c")
        out_gate = _activation(F, out_gate, self._recurrent_activation, name=prefix + "o")
        next_c = F.elemwise_add(
            F.elemwise_mul(forget_gate, states[1], name=prefix + "mul0"),
            F.elemwise_mul(in_gate, transform, name=prefix + "mul1"),
            name=prefix + "state",
        )
        next_h = F.elemwise_mul(
            out_gate,
            _activation(F, next_c, self._activation, name=prefix + "activation0"),
            name=prefix + "out",
        )
        return next_h, [next_h, next_c]


class GRUCell(_ActivatedGatedCell):
    """A gated recurrent unit, MXNet's formula (gates r, z, n):
    ``n = tanh(x_n + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

    Parameters
    ----------
    hidden_size : int
        Size of the state.
    i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
    h2h_bias_initializer : Initializer or str
        Initializers of ``i2h_weight`` (3H, in), ``h2h_weight`` (3H, H) and the biases.
    input_size : int
        Input size; 0 infers it from the first input.
    activation, recurrent_activation : str
        The activations of n ('tanh') and of the gates ('sigmoid').

    Notes
    -----
    Gradient: the chain rule through FullyConnected, SliceChannel, the
    activations and the elementwise ops (each op's own rule).
    """

    _gates = 3

    def _alias(self) -> str:
        return "gru"

    def hybrid_forward(
        self,
        F: Any,
        inputs: Any,
        states: list,
        i2h_weight: Any,
        h2h_weight: Any,
        i2h_bias: Any,
        h2h_bias: Any,
    ) -> tuple[Any, list]:
        """One GRU step: returns ``h', [h']``."""
        prefix = f"t{self._counter}_"
        previous = states[0]
        i2h, h2h = self._projections(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        i2h_r, i2h_z, i2h_n = _outputs(
            F.SliceChannel(i2h, num_outputs=3, name=prefix + "i2h_slice")
        )
        h2h_r, h2h_z, h2h_n = _outputs(
            F.SliceChannel(h2h, num_outputs=3, name=prefix + "h2h_slice")
        )
        reset = _activation(
            F,
            F.elemwise_add(i2h_r, h2h_r, name=prefix + "plus0"),
            self._recurrent_activation,
            name=prefix + "r_act",
        )
        update = _activation(
            F,
            F.elemwise_add(i2h_z, h2h_z, name=prefix + "plus1"),
            self._recurrent_activation,
            name=prefix + "z_act",
        )
        candidate = _activation(
            F,
            F.elemwise_add(
                i2h_n, F.elemwise_mul(reset, h2h_n, name=prefix + "mul0"), name=prefix + "plus2"
            ),
            self._activation,
            name=prefix + "h_act",
        )
        ones = F.ones_like(update, name=prefix + "ones_like0")
        next_h = F.elemwise_add(
            F.elemwise_mul(
                F.elemwise_sub(ones, update, name=prefix + "minus0"),
                candidate,
                name=prefix + "mul1",
            ),
            F.elemwise_mul(update, previous, name=prefix + "mul20"),
            name=prefix + "out",
        )
        return next_h, [next_h]


# ---------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------


class _SequentialSteps:
    """Stepping and unrolling shared by the two sequential containers."""

    def add(self, cell: RecurrentCell) -> None:
        """Append a cell."""
        self.register_child(cell)

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """The children's states, in order."""
        return _cells_state_info(list(self._children.values()), batch_size)

    def begin_state(self, batch_size: int = 0, **kwargs: Any) -> list:
        """The children's begin states, in order."""
        if self._modified:
            raise MXNetError(
                "After applying modifier cells (e.g. ZoneoutCell) the base "
                "cell cannot be called directly. Call the modifier cell "
                "instead."
            )
        return _cells_begin_state(list(self._children.values()), batch_size=batch_size, **kwargs)

    def _step(self, inputs: Any, states: list) -> tuple[Any, list]:
        next_states, position = [], 0
        for cell in self._children.values():
            if isinstance(cell, BidirectionalCell):
                raise MXNetError("BidirectionalCell cannot be stepped; use unroll")
            count = len(cell.state_info())
            inputs, state = cell(inputs, states[position : position + count])
            position += count
            next_states.extend(state)
        return inputs, next_states

    def unroll(
        self,
        length: int,
        inputs: Any,
        begin_state: Any = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: Any = None,
    ) -> tuple[Any, list]:
        """Unroll each child over the whole sequence in turn (see
        :meth:`RecurrentCell.unroll`)."""
        self.reset()
        inputs, axis, F, batch_size = _format_sequence(length, inputs, layout, None)
        begin_state = _get_begin_state(self, F, begin_state, inputs, batch_size, axis)
        cells = list(self._children.values())
        position, next_states = 0, []
        for k, cell in enumerate(cells):
            count = len(cell.state_info())
            inputs, states = cell.unroll(
                length,
                inputs=inputs,
                begin_state=begin_state[position : position + count],
                layout=layout,
                merge_outputs=None if k < len(cells) - 1 else merge_outputs,
                valid_length=valid_length,
            )
            position += count
            next_states.extend(states)
        return inputs, next_states

    def __getitem__(self, index: int) -> RecurrentCell:
        return list(self._children.values())[index]

    def __len__(self) -> int:
        return len(self._children)


class SequentialRNNCell(_SequentialSteps, RecurrentCell):
    """Cells stacked: each step feeds one cell's output to the next.

    >>> stack = SequentialRNNCell()
    >>> stack.add(LSTMCell(4)); stack.add(GRUCell(3))
    >>> [info['shape'] for info in stack.state_info(2)]
    [(2, 4), (2, 4), (2, 3)]
    """

    def __init__(self, prefix: str | None = None, params: ParameterDict | None = None):
        super().__init__(prefix=prefix, params=params)

    def __call__(self, inputs: Any, states: list) -> tuple[Any, list]:
        self._counter += 1
        return self._step(inputs, states)

    def __repr__(self) -> str:
        body = "\n".join(f"  ({k}): {cell!r}" for k, cell in self._children.items())
        return f"{type(self).__name__}(\n{body}\n)"


class HybridSequentialRNNCell(_SequentialSteps, HybridRecurrentCell):
    """Hybrid cells stacked (can be hybridized as one step)."""

    def __init__(self, prefix: str | None = None, params: ParameterDict | None = None):
        super().__init__(prefix=prefix, params=params)

    def hybrid_forward(self, F: Any, inputs: Any, states: list) -> tuple[Any, list]:
        """One step of every child in turn."""
        return self._step(inputs, states)

    def __repr__(self) -> str:
        body = "\n".join(f"  ({k}): {cell!r}" for k, cell in self._children.items())
        return f"{type(self).__name__}(\n{body}\n)"


class DropoutCell(HybridRecurrentCell):
    """Dropout on each step's input (no state): ``Dropout(x, p=rate, axes=axes)``.

    Parameters
    ----------
    rate : float
        Probability of zeroing an element (training only).
    axes : tuple of int
        Axes along which one mask is shared.
    """

    def __init__(
        self,
        rate: float,
        axes: tuple = (),
        prefix: str | None = None,
        params: ParameterDict | None = None,
    ):
        super().__init__(prefix=prefix, params=params)
        if not isinstance(rate, (int, float)):
            raise TypeError("rate must be a number")
        self._rate = rate
        self._axes = axes

    def _alias(self) -> str:
        return "dropout"

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """No states."""
        return []

    def hybrid_forward(self, F: Any, inputs: Any, states: list) -> tuple[Any, list]:
        """``Dropout(inputs)``, states passed through."""
        if self._rate > 0:
            inputs = F.Dropout(inputs, p=self._rate, axes=self._axes, name=f"t{self._counter}_fwd")
        return inputs, states

    def unroll(
        self,
        length: int,
        inputs: Any,
        begin_state: Any = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: Any = None,
    ) -> tuple[Any, list]:
        """Dropout over the whole sequence at once when it is one array."""
        self.reset()
        inputs, _, F, _ = _format_sequence(length, inputs, layout, merge_outputs)
        if isinstance(inputs, TENSORS):
            return self.hybrid_forward(F, inputs, begin_state if begin_state else [])
        return super().unroll(
            length,
            inputs,
            begin_state=begin_state,
            layout=layout,
            merge_outputs=merge_outputs,
            valid_length=valid_length,
        )

    def __repr__(self) -> str:
        return f"DropoutCell(rate={self._rate}, axes={self._axes})"


class ModifierCell(HybridRecurrentCell):
    """A cell wrapping ``base_cell`` to change its step (zoneout, residual); the
    base cell's Parameters are its own, and the base cell is then only called
    through it."""

    def __init__(self, base_cell: RecurrentCell):
        if base_cell._modified:
            raise MXNetError(
                f"Cell {base_cell.name} is already modified. One cell cannot be modified twice"
            )
        base_cell._modified = True
        super().__init__(prefix=base_cell.prefix + self._alias(), params=None)
        self.base_cell = base_cell

    @property
    def params(self) -> ParameterDict:
        """The base cell's Parameters."""
        return self.base_cell.params

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """The base cell's states."""
        return self.base_cell.state_info(batch_size)

    def begin_state(self, batch_size: int = 0, func: Callable = nd.zeros, **kwargs: Any) -> list:
        """The base cell's begin states."""
        if self._modified:
            raise MXNetError(
                "After applying modifier cells the base cell cannot be called "
                "directly. Call the modifier cell instead."
            )
        self.base_cell._modified = False
        try:
            return self.base_cell.begin_state(batch_size=batch_size, func=func, **kwargs)
        finally:
            self.base_cell._modified = True

    def hybrid_forward(self, F: Any, inputs: Any, states: list) -> tuple[Any, list]:
        """The modified step."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_cell!r})"


class ZoneoutCell(ModifierCell):
    """Zoneout: in training each output (state) element keeps its previous value
    with probability ``zoneout_outputs`` (``zoneout_states``).

    Parameters
    ----------
    base_cell : RecurrentCell
        The cell to modify (not a BidirectionalCell).
    zoneout_outputs, zoneout_states : float
        Probabilities of keeping the previous output and state elements.
    """

    def __init__(
        self, base_cell: RecurrentCell, zoneout_outputs: float = 0.0, zoneout_states: float = 0.0
    ):
        if isinstance(base_cell, BidirectionalCell):
            raise MXNetError(
                "BidirectionalCell doesn't support zoneout since it doesn't "
                "support step. Please add ZoneoutCell to the cells underneath "
                "instead."
            )
        super().__init__(base_cell)
        self.zoneout_outputs = zoneout_outputs
        self.zoneout_states = zoneout_states
        self._prev_output = None

    def _alias(self) -> str:
        return "zoneout"

    def reset(self) -> None:
        """Restart the counters and forget the previous output."""
        super().reset()
        self._prev_output = None

    def hybrid_forward(self, F: Any, inputs: Any, states: list) -> tuple[Any, list]:
        """``where(mask, new, previous)`` with Dropout masks of ones."""
        next_output, next_states = self.base_cell(inputs, states)

        def keep_new(p: float, like: Any) -> Any:
            return F.Dropout(F.ones_like(like), p=p)

        previous = self._prev_output if self._prev_output is not None else F.zeros_like(next_output)
        output = (
            F.where(keep_new(self.zoneout_outputs, next_output), next_output, previous)
            if self.zoneout_outputs != 0.0
            else next_output
        )
        if self.zoneout_states != 0.0:
            next_states = [
                F.where(keep_new(self.zoneout_states, new), new, old)
                for new, old in zip(next_states, states)
            ]
        self._prev_output = output
        return output, next_states


class ResidualCell(ModifierCell):
    """Adds each step's input to the base cell's output: ``out = cell(x) + x``."""

    def __init__(self, base_cell: RecurrentCell):
        super().__init__(base_cell)

    def _alias(self) -> str:
        return "residual"

    def hybrid_forward(self, F: Any, inputs: Any, states: list) -> tuple[Any, list]:
        """``base_cell(x) + x``."""
        output, states = self.base_cell(inputs, states)
        return F.elemwise_add(output, inputs, name=f"t{self._counter}_fwd"), states

    def unroll(
        self,
        length: int,
        inputs: Any,
        begin_state: Any = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: Any = None,
    ) -> tuple[Any, list]:
        """The base cell unrolled, plus the inputs (masked past ``valid_length``)."""
        self.reset()
        self.base_cell._modified = False
        try:
            outputs, states = self.base_cell.unroll(
                length,
                inputs=inputs,
                begin_state=begin_state,
                layout=layout,
                merge_outputs=merge_outputs,
                valid_length=valid_length,
            )
        finally:
            self.base_cell._modified = True
        if merge_outputs is None:
            merge_outputs = isinstance(outputs, TENSORS)
        inputs, axis, F, _ = _format_sequence(length, inputs, layout, merge_outputs)
        if valid_length is not None:
            inputs = _mask_sequence_variable_length(
                F, inputs, length, valid_length, axis, merge_outputs
            )
        if merge_outputs:
            return F.elemwise_add(outputs, inputs), states
        return [F.elemwise_add(o, i) for o, i in zip(outputs, inputs)], states


class BidirectionalCell(HybridRecurrentCell):
    """Runs ``l_cell`` forward and ``r_cell`` backward over a sequence and joins
    their outputs on the feature axis (unroll only; it cannot be stepped).

    Parameters
    ----------
    l_cell, r_cell : RecurrentCell
        The cells of the two directions.
    output_prefix : str
        Prefix of the joined outputs' names.
    """

    def __init__(self, l_cell: RecurrentCell, r_cell: RecurrentCell, output_prefix: str = "bi_"):
        super().__init__(prefix="", params=None)
        self.register_child(l_cell, "l_cell")
        self.register_child(r_cell, "r_cell")
        self._output_prefix = output_prefix

    def __call__(self, inputs: Any, states: Any) -> Any:
        raise NotImplementedError("Bidirectional cannot be stepped. Please use unroll")

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """The left cell's states, then the right cell's."""
        return _cells_state_info(list(self._children.values()), batch_size)

    def begin_state(self, batch_size: int = 0, **kwargs: Any) -> list:
        """The left cell's begin states, then the right cell's."""
        if self._modified:
            raise MXNetError(
                "After applying modifier cells the base cell cannot be called "
                "directly. Call the modifier cell instead."
            )
        return _cells_begin_state(list(self._children.values()), batch_size=batch_size, **kwargs)

    def unroll(
        self,
        length: int,
        inputs: Any,
        begin_state: Any = None,
        layout: str = "NTC",
        merge_outputs: bool | None = None,
        valid_length: Any = None,
    ) -> tuple[Any, list]:
        """Both directions over the sequence (the right one on each sequence's valid
        steps reversed); outputs concatenated on the feature axis."""
        self.reset()
        inputs, axis, F, batch_size = _format_sequence(length, inputs, layout, False)
        reversed_inputs = _reverse_sequences(inputs, length, valid_length)
        states = _get_begin_state(self, F, begin_state, inputs, batch_size)
        l_cell, r_cell = self._children.values()
        split = len(l_cell.state_info(batch_size))
        l_outputs, l_states = l_cell.unroll(
            length,
            inputs=inputs,
            begin_state=states[:split],
            layout=layout,
            merge_outputs=merge_outputs,
            valid_length=valid_length,
        )
        r_outputs, r_states = r_cell.unroll(
            length,
            inputs=reversed_inputs,
            begin_state=states[split:],
            layout=layout,
            merge_outputs=False,
            valid_length=valid_length,
        )
        reversed_r_outputs = _reverse_sequences(r_outputs, length, valid_length)
        if merge_outputs is None:
            merge_outputs = isinstance(l_outputs, TENSORS)
        l_outputs, _, _, _ = _format_sequence(None, l_outputs, layout, merge_outputs)
        reversed_r_outputs, _, _, _ = _format_sequence(
            None, reversed_r_outputs, layout, merge_outputs
        )
        if merge_outputs:
            outputs = F.concat(
                l_outputs, reversed_r_outputs, dim=2, name=f"{self._output_prefix}out"
            )
        else:
            outputs = [
                F.concat(left, right, dim=1, name=f"{self._output_prefix}t{k}")
                for k, (left, right) in enumerate(zip(l_outputs, reversed_r_outputs))
            ]
        if valid_length is not None:
            outputs = _mask_sequence_variable_length(
                F, outputs, length, valid_length, axis, merge_outputs
            )
        return outputs, l_states + r_states

    def __repr__(self) -> str:
        l_cell, r_cell = self._children.values()
        return f"BidirectionalCell(forward={l_cell!r}, backward={r_cell!r})"


__all__ = [
    "RecurrentCell",
    "HybridRecurrentCell",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "SequentialRNNCell",
    "HybridSequentialRNNCell",
    "DropoutCell",
    "ModifierCell",
    "ZoneoutCell",
    "ResidualCell",
    "BidirectionalCell",
]
