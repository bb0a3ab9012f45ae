"""``_rnn_forward_taped`` and ``_rnn_grad_taped``: the ``RNN`` op and its
``_rnn_grad`` when one program computes both, sharing what the forward computed.

``_rnn_grad`` runs the recurrence forward again to get the gate activations and
cell states its reverse walk reads (an op takes only its inputs). Where a program
holds the RNN node and its ``_rnn_grad`` (a training step), the pass
:func:`..passes.rnn_tape.keep_rnn_tapes` replaces them by these two ops: the
forward returns the RNN's outputs and one more, the *tape*, a flat vector of what
the backward reads; the backward takes the tape instead of the RNN's outputs and
runs only the reverse walk.

The tape's layout, one block after another, each C-ordered (``count`` is layers
times directions, T and N the data's first axes, G the gates, H ``state_size``, P
the output width, D the directions):

- gate activations (count, T, N, G*H)
- the state each step started from (count, T, N, P)
- for an LSTM, the cell state each step started from and the one it made
  (count, T, N, H) each, else empty
- with a state clip, the cell state before the clip (count, T, N, H), else empty
- with a projection, the state before it (count, T, N, H), else empty
- for a GRU, ``W_hn h + b_hn`` (count, T, N, H), else empty
- the inputs of layers 1... (layers - 1, T, N, D*P)

The numba kernels (``backends/numba/lowerings/rnn.py``) write and read this same
layout, so either half may run there or here. Neither op is differentiated: the
pass runs on programs that are already differentiated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import GraphError, TensorType
from ..registry import OpDef, TestSpec, register
from .rnn import GATES, RNN_ATTRS, RNN_OP, draws_masks
from .rnn import _rnn_test_inputs as _test_inputs  # (the RNN op's own test inputs)
from .rnn_grad import Setup, Tape, backward_tapes, forward_tapes

# the per-direction blocks, by the Tape field each comes from
_FIELDS = ("gates", "h_prev", "c_prev", "c", "c_raw", "r", "h_part")


def tape_shapes(attrs: dict, steps: int, batch: int) -> list[tuple[int, ...]]:
    """The shapes of the tape's blocks, in order (see the module docstring)."""
    mode, hidden = attrs["mode"], attrs["state_size"]
    directions = 2 if attrs["bidirectional"] else 1
    count = attrs["num_layers"] * directions
    width = attrs["projection_size"] or hidden
    lstm = mode == "lstm"
    clip = lstm and attrs["lstm_state_clip_min"] is not None
    clip = clip and attrs["lstm_state_clip_max"] is not None
    projecting = bool(attrs["projection_size"])

    def block(kept: bool) -> tuple[int, ...]:
        return (count, steps if kept else 0, batch, hidden)

    return [
        (count, steps, batch, GATES[mode] * hidden),
        (count, steps, batch, width),
        block(lstm),
        block(lstm),
        block(clip),
        block(projecting),
        block(mode == "gru"),
        (max(attrs["num_layers"] - 1, 0), steps, batch, directions * width),
    ]


def tape_size(attrs: dict, steps: int, batch: int) -> int:
    """The tape's length for data of ``steps`` x ``batch``."""
    return sum(int(np.prod(shape)) for shape in tape_shapes(attrs, steps, batch))


def _blocks(flat: np.ndarray, attrs: dict, steps: int, batch: int) -> list[np.ndarray]:
    blocks, offset = [], 0
    for shape in tape_shapes(attrs, steps, batch):
        size = int(np.prod(shape))
        blocks.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return blocks


def _pack(
    tapes: list[Tape], layer_inputs: list[np.ndarray], attrs: dict, steps: int, batch: int
) -> np.ndarray:
    flat = np.empty(tape_size(attrs, steps, batch), layer_inputs[0].dtype)
    blocks = _blocks(flat, attrs, steps, batch)
    for block, field in zip(blocks, _FIELDS):
        if block.size:
            for k, tape in enumerate(tapes):
                block[k] = getattr(tape, field)
    for layer in range(1, len(layer_inputs)):
        blocks[-1][layer - 1] = layer_inputs[layer]
    return flat


def _unpack(flat: np.ndarray, data: np.ndarray, attrs: dict) -> tuple[list[Tape], list[np.ndarray]]:
    steps, batch = data.shape[:2]
    blocks = _blocks(flat, attrs, steps, batch)
    tapes = []
    for k in range(blocks[0].shape[0]):
        tape = Tape.__new__(Tape)  # views of the tape, nothing allocated
        for block, field in zip(blocks, _FIELDS):
            setattr(tape, field, block[k])
        tapes.append(tape)
    return tapes, [data] + list(blocks[-1])


def _split(arrays: tuple, attrs: dict) -> tuple[Any, Any, list]:
    """(state_cell or None, sequence_length or None, the arrays after them)."""
    rest = list(arrays)
    cell = rest.pop(0) if attrs["mode"] == "lstm" else None
    lengths = rest.pop(0) if attrs["use_sequence_length"] else None
    return cell, lengths, rest


# ---------------------------------------------------------------- the forward


def _forward_types(types: list[TensorType], **attrs: Any) -> list[TensorType]:
    if draws_masks(attrs):
        raise GraphError("_rnn_forward_taped: a forward that draws dropout masks keeps RNN")
    result = list(RNN_OP.infer_types(types, attrs))
    steps, batch = types[0].shape[:2]
    return result + [TensorType((tape_size(attrs, steps, batch),), types[0].dtype)]


def _forward(
    data: np.ndarray, params: np.ndarray, state: np.ndarray, *rest: np.ndarray, **attrs: Any
) -> tuple[np.ndarray, ...]:
    cell, lengths, _ = _split(rest, attrs)
    setup = Setup(data, params, lengths, attrs)
    layer_inputs, tapes, out, hy, cy = forward_tapes(setup, data, state, cell, None)
    steps, batch = data.shape[:2]
    tape = _pack(tapes, layer_inputs, attrs, steps, batch)
    return (out, hy) + ((cy,) if cy is not None else ()) + (tape,)


def _forward_inputs(attrs: dict) -> tuple[str, ...]:
    names: tuple[str, ...] = ("data", "parameters", "state")
    names += ("state_cell",) if attrs.get("mode") == "lstm" else ()
    return names + (("sequence_length",) if attrs.get("use_sequence_length") else ())


_TEST_ATTRS = {"state_size": 3, "num_layers": 2, "mode": "lstm", "bidirectional": True}
_TEST_ATTRS |= {"projection_size": 2, "lstm_state_clip_min": -0.5, "lstm_state_clip_max": 0.5}

register(
    OpDef(
        name="_rnn_forward_taped",
        infer=_forward_types,
        impl=_forward,
        inputs=_forward_inputs,
        attrs=RNN_ATTRS,
        differentiable=False,
        doc="The RNN op's forward (without dropout masks) and, as one more output, the "
        "tape its ``_rnn_grad_taped`` reads: gate activations, cell states, the states "
        "each step started from, the inputs of the layers above the first.",
        test=TestSpec(make_inputs=_test_inputs, rtol=1e-5, attrs=_TEST_ATTRS),
    )
)


# ---------------------------------------------------------------- the backward


def _grad_inputs(attrs: dict) -> tuple[str, ...]:
    grads = ("out_grad", "state_grad") + (("cell_grad",) if attrs.get("mode") == "lstm" else ())
    return _forward_inputs(attrs) + ("tape",) + grads


def _grad_types(types: list[TensorType], **attrs: Any) -> list[TensorType]:
    lstm = attrs["mode"] == "lstm"
    count = len(_forward_inputs(attrs))
    steps, batch = types[0].shape[:2]
    size = tape_size(attrs, steps, batch)
    if types[count].shape != (size,):
        raise GraphError(f"_rnn_grad_taped: a tape of ({size},), got {types[count].shape}")
    result = list(types[:3]) + ([types[3]] if lstm else [])
    return result


def _grad(*arrays: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
    data, params, state = arrays[:3]
    cell, lengths, rest = _split(arrays[3:], attrs)
    flat, grads = rest[0], tuple(rest[1:])
    setup = Setup(data, params, lengths, attrs)
    tapes, layer_inputs = _unpack(flat, data, attrs)
    return backward_tapes(setup, params, layer_inputs, tapes, None, grads, cell, state)


def _grad_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    inputs = _test_inputs(rng)
    attrs = RNN_OP.canonical_attrs(_TEST_ATTRS)
    forward = _forward(*inputs, **attrs)
    seeds = [rng.uniform(-1, 1, value.shape) for value in forward[:-1]]
    return inputs + [forward[-1]] + seeds


register(
    OpDef(
        name="_rnn_grad_taped",
        infer=_grad_types,
        impl=_grad,
        inputs=_grad_inputs,
        attrs=RNN_ATTRS,
        differentiable=False,
        doc="``_rnn_grad`` reading the tape of ``_rnn_forward_taped`` instead of "
        "running the forward again: the gradients of data, parameters, state (and "
        "state_cell) from those of out, h_n (and c_n).",
        test=TestSpec(make_inputs=_grad_test_inputs, rtol=1e-5, attrs=_TEST_ATTRS),
    )
)
