"""Recurrent layers: ``RNN``, ``LSTM`` and ``GRU`` over whole sequences, each one
call of the fused ``RNN`` op (MXNet 1.x's ``gluon.rnn`` layers).

A layer keeps one Parameter per layer, direction and piece, named as MXNet names
them (``l0_i2h_weight``, ``l0_h2h_weight``, ``l0_i2h_bias``, ``l0_h2h_bias``,
``r0_...`` for the reverse direction, ``l0_h2r_weight`` with a projection), and
joins them, flattened, into the op's packed vector with ``_rnn_param_concat``: all
weights, then all biases, layer by layer and direction by direction. The same
names under the same prefix are those of the cells :meth:`_RNNLayer._unfuse`
builds, so a layer's parameter file loads into its unfused cells and back.
"""

from __future__ import annotations

from typing import Any

from ... import ndarray as nd
from ...ndarray import NDArray
from ..block import HybridBlock
from . import rnn_cell

_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


class _RNNLayer(HybridBlock):
    """The shared implementation of RNN, LSTM and GRU."""

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        layout: str,
        dropout: float,
        bidirectional: bool,
        input_size: int,
        i2h_weight_initializer: Any,
        h2h_weight_initializer: Any,
        i2h_bias_initializer: Any,
        h2h_bias_initializer: Any,
        mode: str,
        projection_size: int | None,
        h2r_weight_initializer: Any,
        lstm_state_clip_min: float | None,
        lstm_state_clip_max: float | None,
        lstm_state_clip_nan: bool,
        dtype: Any,
        use_sequence_length: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if layout not in ("TNC", "NTC"):
            raise ValueError(f"Invalid layout {layout}; must be one of ['TNC' or 'NTC']")
        self._hidden_size = hidden_size
        self._projection_size = projection_size or None
        self._num_layers = num_layers
        self._mode = mode
        self._layout = layout
        self._dropout = dropout
        self._dir = 2 if bidirectional else 1
        self._input_size = input_size
        self._i2h_weight_initializer = i2h_weight_initializer
        self._h2h_weight_initializer = h2h_weight_initializer
        self._i2h_bias_initializer = i2h_bias_initializer
        self._h2h_bias_initializer = h2h_bias_initializer
        self._h2r_weight_initializer = h2r_weight_initializer
        self._lstm_state_clip_min = lstm_state_clip_min
        self._lstm_state_clip_max = lstm_state_clip_max
        self._lstm_state_clip_nan = lstm_state_clip_nan
        self._dtype = dtype
        self._use_sequence_length = use_sequence_length
        self._gates = _GATES[mode]
        self.skip_states = True
        self._traced_skip: bool | None = None
        rows = self._gates * hidden_size
        step = self._projection_size or hidden_size
        in_size = input_size
        for layer in range(num_layers):
            for direction in "lr"[: self._dir]:
                name = f"{direction}{layer}_"
                self._register_param(
                    name + "i2h_weight", (rows, in_size), i2h_weight_initializer, dtype
                )
                self._register_param(
                    name + "h2h_weight", (rows, step), h2h_weight_initializer, dtype
                )
                self._register_param(name + "i2h_bias", (rows,), i2h_bias_initializer, dtype)
                self._register_param(name + "h2h_bias", (rows,), h2h_bias_initializer, dtype)
                if self._projection_size:
                    self._register_param(
                        name + "h2r_weight",
                        (self._projection_size, hidden_size),
                        h2r_weight_initializer,
                        dtype,
                    )
            in_size = step * self._dir

    def _register_param(self, name: str, shape: tuple, init: Any, dtype: Any) -> Any:
        param = self.params.get(name, shape=shape, init=init, allow_deferred_init=True, dtype=dtype)
        setattr(self, name, param)
        return param

    def __repr__(self) -> str:
        shape = self.l0_i2h_weight.shape
        mapping = f"{shape[1] if shape[1] else None} -> {shape[0] // self._gates}"
        extra = f", {self._layout}"
        if self._num_layers != 1:
            extra += f", num_layers={self._num_layers}"
        if self._dropout != 0:
            extra += f", dropout={self._dropout}"
        if self._dir == 2:
            extra += ", bidirectional"
        return f"{type(self).__name__}({mapping}{extra})"

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """The shapes of the begin states: (num_layers * directions, N, H) each."""
        raise NotImplementedError

    def begin_state(self, batch_size: int = 0, func: Any = nd.zeros, **kwargs: Any) -> list:
        """The initial states, ``func(name=..., shape=..., **kwargs)`` for each
        state of :meth:`state_info` (zeros by default).

        >>> [s.shape for s in LSTM(4, num_layers=2).begin_state(3)]
        [(2, 3, 4), (2, 3, 4)]
        """
        states = []
        for k, info in enumerate(self.state_info(batch_size)):
            info = dict(info or {}, **kwargs)
            states.append(rnn_cell._state_from(func, f"{self.prefix}h0_{k}", info))
        return states

    def infer_shape(self, inputs: Any, *args: Any) -> None:
        """Each layer's ``i2h_weight`` input size from the inputs' feature size."""
        if len(inputs.shape) != 3:
            raise ValueError(
                "Input data should be rank-3 tensor of dim [sequence length, "
                "batch size, input size]"
            )
        in_size = inputs.shape[2]
        step = self._projection_size or self._hidden_size
        for layer in range(self._num_layers):
            for direction in "lr"[: self._dir]:
                getattr(self, f"{direction}{layer}_i2h_weight").shape = (
                    self._gates * self._hidden_size,
                    in_size,
                )
            in_size = step * self._dir

    def __call__(self, inputs: Any, states: Any = None, sequence_length: Any = None) -> Any:
        """``layer(inputs)`` gives the outputs; ``layer(inputs, states)`` gives
        ``(outputs, new_states)``."""
        self.skip_states = states is None
        if states is None:
            if isinstance(inputs, NDArray):
                batch_size = inputs.shape[self._layout.find("N")]
                states = self.begin_state(batch_size, dtype=inputs.dtype)
            # traced: zeros made from the inputs in the graph (see _zero_states)
        elif not isinstance(states, (list, tuple)):
            states = [states]
        states = list(states) if states is not None else None
        if self._traced_skip is not None and self._traced_skip != self.skip_states:
            self._clear_cached_op()  # the traced graph returns the states or not
        self._traced_skip = self.skip_states
        if self._use_sequence_length:
            return super().__call__(inputs, states, sequence_length)
        if states is None:  # traced without states: one input, zeros made inside
            return super().__call__(inputs)
        return super().__call__(inputs, states)

    def hybrid_forward(
        self,
        F: Any,
        inputs: Any,
        states: list | None = None,
        sequence_length: Any = None,
        **params: Any,
    ) -> Any:
        """One ``RNN`` op over the sequence (TNC inside; NTC swapped in and out)."""
        if F is nd and states is not None:
            batch_size = inputs.shape[self._layout.find("N")]
            for state, info in zip(states, self.state_info(batch_size)):
                if state.shape != info["shape"]:
                    raise ValueError(
                        f"Invalid recurrent state shape. Expecting "
                        f"{info['shape']}, got {state.shape}."
                    )
        outputs, new_states = self._forward_kernel(F, inputs, states, sequence_length, params)
        return outputs if self.skip_states else (outputs, new_states)

    def _packed_names(self) -> list[str]:
        pieces = ("i2h", "h2h", "h2r") if self._projection_size else ("i2h", "h2h")
        names = [
            f"{d}{layer}_{piece}_weight"
            for layer in range(self._num_layers)
            for d in "lr"[: self._dir]
            for piece in pieces
        ]
        names += [
            f"{d}{layer}_{piece}_bias"
            for layer in range(self._num_layers)
            for d in "lr"[: self._dir]
            for piece in ("i2h", "h2h")
        ]
        return names

    def _forward_kernel(
        self, F: Any, inputs: Any, states: list, sequence_length: Any, params: dict
    ) -> tuple[Any, list]:
        if self._layout == "NTC":
            inputs = F.swapaxes(inputs, dim1=0, dim2=1)
        if states is None:
            states = self._zero_states(F, inputs)
        flat = [F.reshape(params[name], shape=(-1,)) for name in self._packed_names()]
        packed = F._rnn_param_concat(*flat, dim=0)
        extra = [sequence_length] if self._use_sequence_length else []
        result = F.RNN(
            inputs,
            packed,
            *states,
            *extra,
            use_sequence_length=self._use_sequence_length,
            state_size=self._hidden_size,
            projection_size=self._projection_size,
            num_layers=self._num_layers,
            bidirectional=self._dir == 2,
            p=self._dropout,
            state_outputs=True,
            mode=self._mode,
            lstm_state_clip_min=self._lstm_state_clip_min,
            lstm_state_clip_max=self._lstm_state_clip_max,
            lstm_state_clip_nan=self._lstm_state_clip_nan,
        )
        outputs, new_states = result[0], [result[k] for k in range(1, len(states) + 1)]
        if self._layout == "NTC":
            outputs = F.swapaxes(outputs, dim1=0, dim2=1)
        return outputs, new_states

    def _zero_states(self, F: Any, inputs: Any) -> list:
        """Zero begin states for time-major ``inputs`` whose batch size the traced
        graph does not know: a (1, N, 1) slice of zeros broadcast to each state's
        shape, so the states follow the batch size of every call (MXNet writes
        ``_zeros`` of batch 0 instead, which needs shape inference to complete)."""
        column = F.zeros_like(
            F.slice_axis(F.slice_axis(inputs, axis=0, begin=0, end=1), axis=2, begin=0, end=1)
        )
        return [
            F.broadcast_to(column, shape=(info["shape"][0], 0, info["shape"][2]))
            for info in self.state_info(0)
        ]

    def _unfuse(self) -> rnn_cell.HybridSequentialRNNCell:
        """The same network as a stack of cells sharing this layer's Parameters
        (their names are the layer's: ``<prefix>l0_i2h_weight``...)."""
        if self._projection_size:
            raise NotImplementedError("_unfuse does not support projection layer yet!")
        if self._lstm_state_clip_min is not None or self._lstm_state_clip_max is not None:
            raise NotImplementedError("_unfuse does not support state clipping yet!")

        def make_cell(**kwargs: Any) -> rnn_cell.RecurrentCell:
            if self._mode in ("rnn_relu", "rnn_tanh"):
                return rnn_cell.RNNCell(self._hidden_size, activation=self._mode[4:], **kwargs)
            if self._mode == "lstm":
                return rnn_cell.LSTMCell(self._hidden_size, **kwargs)
            return rnn_cell.GRUCell(self._hidden_size, **kwargs)

        stack = rnn_cell.HybridSequentialRNNCell(prefix=self.prefix, params=self.params)
        with stack.name_scope():
            in_size = self._input_size
            for layer in range(self._num_layers):
                kwargs = {
                    "input_size": in_size,
                    "i2h_weight_initializer": self._i2h_weight_initializer,
                    "h2h_weight_initializer": self._h2h_weight_initializer,
                    "i2h_bias_initializer": self._i2h_bias_initializer,
                    "h2h_bias_initializer": self._h2h_bias_initializer,
                }
                if self._dir == 2:
                    stack.add(
                        rnn_cell.BidirectionalCell(
                            make_cell(prefix=f"l{layer}_", **kwargs),
                            make_cell(prefix=f"r{layer}_", **kwargs),
                        )
                    )
                else:
                    stack.add(make_cell(prefix=f"l{layer}_", **kwargs))
                if self._dropout > 0 and layer != self._num_layers - 1:
                    stack.add(rnn_cell.DropoutCell(self._dropout))
                in_size = self._hidden_size * self._dir
        return stack


def _state(shape: tuple, dtype: Any) -> dict:
    return {"shape": shape, "__layout__": "LNC", "dtype": dtype}


class RNN(_RNNLayer):
    r"""A multi-layer Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Parameters
    ----------
    hidden_size : int
        Size of the state.
    num_layers : int
        Stacked layers.
    activation : {'relu', 'tanh'}
        The nonlinearity.
    layout : {'TNC', 'NTC'}
        Layout of inputs and outputs.
    dropout : float
        Dropout on each layer's output but the last (training only).
    bidirectional : bool
        Run a reverse direction too and join the outputs on the feature axis.
    i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
    h2h_bias_initializer : Initializer or str
        Initializers of the Parameters (biases: zeros by default).
    input_size : int
        Input size; 0 infers it from the first input.
    dtype : str
        The Parameters' type.

    Notes
    -----
    Computes the fused ``RNN`` op; its gradient is the recurrence unrolled into
    registered ops and differentiated (back-propagation through time).
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        activation: str = "relu",
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        input_size: int = 0,
        dtype: Any = "float32",
        **kwargs: Any,
    ):
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            "rnn_" + activation,
            None,
            None,
            None,
            None,
            False,
            dtype,
            **kwargs,
        )

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """One state (num_layers * directions, N, hidden_size)."""
        return [_state((self._num_layers * self._dir, batch_size, self._hidden_size), self._dtype)]


class LSTM(_RNNLayer):
    r"""A multi-layer LSTM (gates i, f, g, o), optionally with a projection of h
    (LSTMP) and a clip of the cell state.

    Parameters
    ----------
    hidden_size : int
        Size of the cell state.
    num_layers, layout, dropout, bidirectional, input_size, dtype
        As for :class:`RNN`.
    i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
    h2h_bias_initializer, h2r_weight_initializer : Initializer or str
        Initializers of the Parameters.
    projection_size : int, optional
        Size of the projected h (``h2r_weight`` of (projection_size, hidden_size)).
    state_clip_min, state_clip_max : float, optional
        Clip the cell state to this range.
    state_clip_nan : bool
        Accepted for MXNet's signature.

    Notes
    -----
    Computes the fused ``RNN`` op (mode 'lstm'); its gradient is the recurrence
    unrolled into registered ops and differentiated.
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        input_size: int = 0,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        projection_size: int | None = None,
        h2r_weight_initializer: Any = None,
        state_clip_min: float | None = None,
        state_clip_max: float | None = None,
        state_clip_nan: bool = False,
        dtype: Any = "float32",
        **kwargs: Any,
    ):
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            "lstm",
            projection_size,
            h2r_weight_initializer,
            state_clip_min,
            state_clip_max,
            state_clip_nan,
            dtype,
            **kwargs,
        )

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """h (num_layers * directions, N, projection_size or hidden_size) and c
        (num_layers * directions, N, hidden_size)."""
        rows = self._num_layers * self._dir
        return [
            _state((rows, batch_size, self._projection_size or self._hidden_size), self._dtype),
            _state((rows, batch_size, self._hidden_size), self._dtype),
        ]


class GRU(_RNNLayer):
    r"""A multi-layer GRU in MXNet's formulation (gates r, z, n):
    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

    Parameters
    ----------
    hidden_size : int
        Size of the state.
    num_layers, layout, dropout, bidirectional, input_size, dtype
        As for :class:`RNN`.
    i2h_weight_initializer, h2h_weight_initializer, i2h_bias_initializer,
    h2h_bias_initializer : Initializer or str
        Initializers of the Parameters.

    Notes
    -----
    Computes the fused ``RNN`` op (mode 'gru'); its gradient is the recurrence
    unrolled into registered ops and differentiated.
    """

    def __init__(
        self,
        hidden_size: int,
        num_layers: int = 1,
        layout: str = "TNC",
        dropout: float = 0,
        bidirectional: bool = False,
        input_size: int = 0,
        i2h_weight_initializer: Any = None,
        h2h_weight_initializer: Any = None,
        i2h_bias_initializer: Any = "zeros",
        h2h_bias_initializer: Any = "zeros",
        dtype: Any = "float32",
        **kwargs: Any,
    ):
        super().__init__(
            hidden_size,
            num_layers,
            layout,
            dropout,
            bidirectional,
            input_size,
            i2h_weight_initializer,
            h2h_weight_initializer,
            i2h_bias_initializer,
            h2h_bias_initializer,
            "gru",
            None,
            None,
            None,
            None,
            False,
            dtype,
            **kwargs,
        )

    def state_info(self, batch_size: int = 0) -> list[dict]:
        """One state (num_layers * directions, N, hidden_size)."""
        return [_state((self._num_layers * self._dir, batch_size, self._hidden_size), self._dtype)]


__all__ = ["RNN", "LSTM", "GRU"]
