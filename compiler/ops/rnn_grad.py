"""``_rnn_grad``: the first-order backward of the fused ``RNN`` op as one op.

Inputs are the RNN's inputs (data, parameters, state, state_cell for an LSTM,
sequence_length with ``use_sequence_length``), its outputs (out, h_n, c_n for an
LSTM, the dropout masks when it drew them) and the gradients of out, h_n (and
c_n). Outputs are the gradients of data, parameters, state (and state_cell).

The numpy implementation runs each layer and direction forward again keeping what
the backward needs (gate activations, cell states, the states each step started
from), then walks time in reverse: per step the gates' derivatives elementwise and
one (N, G*H) x (G*H, P) product for the state's gradient; the input projection's
gradients (of data, ``i2h`` weight and bias) and the ``h2h`` weight's are one
product each over all steps of a layer. Its cost does not depend on the graph:
one op for any sequence length.

Its own gradient (second order) is the unrolled recurrence of :mod:`.rnn`
differentiated twice: the first-order gradient rebuilt from registered ops on
stand-ins of the inputs and seeds, then differentiated by the reverse walk. That
graph is built from the sequence length, so this op is ``sized_grad``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import OpDef, TestSpec, register
from .common import F
from .rnn import GATES, RNN_ATTRS, draws_masks, rnn_param_shapes, rnn_param_size, unrolled_vjp

# ---------------------------------------------------------------------------
# inputs and outputs
# ---------------------------------------------------------------------------


def rnn_grad_inputs(attrs: dict) -> tuple[str, ...]:
    """The names of ``_rnn_grad``'s inputs for these attrs (see the module)."""
    lstm = attrs.get("mode") == "lstm"
    names: tuple[str, ...] = ("data", "parameters", "state")
    names += ("state_cell",) if lstm else ()
    names += ("sequence_length",) if attrs.get("use_sequence_length") else ()
    names += ("out", "state_out") + (("cell_out",) if lstm else ())
    names += ("masks",) if draws_masks(attrs) else ()
    return names + ("out_grad", "state_grad") + (("cell_grad",) if lstm else ())


class _Parts:
    """``_rnn_grad``'s inputs by role."""

    def __init__(self, inputs: tuple, attrs: dict):
        lstm = attrs["mode"] == "lstm"
        items = list(inputs)
        self.data, self.params, self.state = items[:3]
        del items[:3]
        self.cell = items.pop(0) if lstm else None
        self.lengths = items.pop(0) if attrs["use_sequence_length"] else None
        forward = 2 + lstm + draws_masks(attrs)
        self.outputs = tuple(items[:forward])
        self.masks = items[forward - 1] if draws_masks(attrs) else None
        self.grads = tuple(items[forward:])


def _rnn_grad_types(types: list[TensorType], **attrs: Any) -> list[TensorType]:
    parts = _Parts(tuple(types), attrs)
    if len(parts.grads) != 2 + (attrs["mode"] == "lstm"):
        raise GraphError(f"_rnn_grad: expected {len(rnn_grad_inputs(attrs))} inputs")
    for grad, value in zip(parts.grads, parts.outputs):
        if grad.shape != value.shape:
            raise GraphError(f"_rnn_grad: gradient {grad.shape} for an output {value.shape}")
    result = [parts.data, parts.params, parts.state]
    return result + ([parts.cell] if parts.cell is not None else [])


# ---------------------------------------------------------------------------
# the numpy implementation
# ---------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # the split form keeps exp from overflowing on either side
    return np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.dot(a, b)


class Tape:
    """What the backward of one layer and direction reads, per step."""

    def __init__(
        self, steps: int, batch: int, hidden: int, width: int, gates: int, dtype: np.dtype
    ):
        self.gates = np.empty((steps, batch, gates * hidden), dtype)  # activations
        self.h_prev = np.empty((steps, batch, width), dtype)  # state each step started from
        self.c_prev = np.empty((steps, batch, hidden), dtype)
        self.c = np.empty((steps, batch, hidden), dtype)  # cell state (after the clip)
        self.c_raw = np.empty((steps, batch, hidden), dtype)  # before the clip
        self.r = np.empty((steps, batch, hidden), dtype)  # an LSTMP's pre-projection state
        self.h_part = np.empty((steps, batch, hidden), dtype)  # a GRU's W_hn h + b_hn


def _run_direction(
    mode: str,
    x: np.ndarray,
    w: dict,
    h: np.ndarray,
    c: np.ndarray | None,
    valid: np.ndarray | None,
    reverse: bool,
    clip: tuple | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Tape]:
    """One layer and direction forward: (outputs (T, N, P), h_n, c_n, tape)."""
    steps, batch = x.shape[:2]
    hidden = w["h2h_weight"].shape[0] // GATES[mode]
    width = w["h2h_weight"].shape[1]
    tape = Tape(steps, batch, hidden, width, GATES[mode], x.dtype)
    projected = _dot(x.reshape(steps * batch, -1), w["i2h_weight"].T) + w["i2h_bias"]
    projected = projected.reshape(steps, batch, -1)
    outs = np.empty((steps, batch, width), x.dtype)
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        tape.h_prev[t] = h
        h_part = _dot(h, w["h2h_weight"].T) + w["h2h_bias"]
        if mode == "lstm":
            assert c is not None
            z = projected[t] + h_part
            acts = tape.gates[t]
            acts[:] = _sigmoid(z)
            acts[:, 2 * hidden : 3 * hidden] = np.tanh(z[:, 2 * hidden : 3 * hidden])
            i, f, g, o = np.split(acts, 4, axis=1)
            tape.c_prev[t] = c
            c_new = f * c + i * g
            tape.c_raw[t] = c_new
            if clip is not None:
                low, high, nan = clip
                c_new = np.fmin(np.fmax(c_new, low), high) if nan else np.clip(c_new, low, high)
            tape.c[t] = c_new
            h_new = o * np.tanh(c_new)
            if "h2r_weight" in w:
                tape.r[t] = h_new
                h_new = _dot(h_new, w["h2r_weight"].T)
        elif mode == "gru":
            xr, xz, xn = np.split(projected[t], 3, axis=1)
            hr, hz, hn = np.split(h_part, 3, axis=1)
            acts = tape.gates[t]
            acts[:, : 2 * hidden] = _sigmoid(np.concatenate([xr + hr, xz + hz], axis=1))
            reset, update = acts[:, :hidden], acts[:, hidden : 2 * hidden]
            acts[:, 2 * hidden :] = np.tanh(xn + reset * hn)
            tape.h_part[t] = hn
            candidate = acts[:, 2 * hidden :]
            h_new = candidate + update * (h - candidate)
        else:
            z = projected[t] + h_part
            h_new = np.maximum(z, 0) if mode == "rnn_relu" else np.tanh(z)
            tape.gates[t] = h_new
            c_new = None
        if valid is not None:
            v = valid[t]
            outs[t] = h_new * v
            h = h + v * (h_new - h)
            if mode == "lstm":
                c = c + v * (c_new - c)
        else:
            outs[t] = h = h_new
            if mode == "lstm":
                c = c_new
    return outs, h, c, tape


def _back_direction(
    mode: str,
    x: np.ndarray,
    w: dict,
    tape: Tape,
    d_outs: np.ndarray,
    dh: np.ndarray,
    dc: np.ndarray | None,
    valid: np.ndarray | None,
    reverse: bool,
    clip: tuple | None,
) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray | None]:
    """One layer and direction backward: (d x, {piece: gradient}, d h_0, d c_0)."""
    steps, batch = x.shape[:2]
    gates = GATES[mode]
    hidden = w["h2h_weight"].shape[0] // gates
    d_input = np.empty((steps, batch, gates * hidden), x.dtype)  # d (W_i2h x + b_i2h)
    d_state = d_input if mode != "gru" else np.empty_like(d_input)  # d (W_h2h h + b_h2h)
    projecting = mode == "lstm" and "h2r_weight" in w
    d_r_out = np.empty((steps, batch, dh.shape[1]), x.dtype) if projecting else None
    for t in range(steps) if reverse else range(steps - 1, -1, -1):
        if valid is not None:
            v = valid[t]
            dh_new, dh_kept = v * (dh + d_outs[t]), (1 - v) * dh
            dc_new, dc_kept = (v * dc, (1 - v) * dc) if dc is not None else (None, None)
        else:
            dh_new, dh_kept, dc_new, dc_kept = dh + d_outs[t], None, dc, None
        if mode == "lstm":
            assert dc_new is not None
            i, f, g, o = np.split(tape.gates[t], 4, axis=1)
            if d_r_out is not None:
                d_r_out[t] = dh_new
                dr = _dot(dh_new, w["h2r_weight"])
            else:
                dr = dh_new
            tc = np.tanh(tape.c[t])
            dct = dc_new + dr * o * (1 - tc * tc)
            if clip is not None:
                raw = tape.c_raw[t]
                dct = dct * ((raw >= clip[0]) & (raw <= clip[1]))
            d_input[t] = np.concatenate(
                [dct * g * i * (1 - i), dct * tape.c_prev[t] * f * (1 - f)]
                + [dct * i * (1 - g * g), dr * tc * o * (1 - o)],
                axis=1,
            )
            dc = dct * f
            dh = _dot(d_input[t], w["h2h_weight"])
        elif mode == "gru":
            reset, update, candidate = np.split(tape.gates[t], 3, axis=1)
            h_prev = tape.h_prev[t]
            dn = dh_new * (1 - update) * (1 - candidate * candidate)
            dr = dn * tape.h_part[t] * reset * (1 - reset)
            du = dh_new * (h_prev - candidate) * update * (1 - update)
            d_input[t] = np.concatenate([dr, du, dn], axis=1)
            d_state[t] = np.concatenate([dr, du, dn * reset], axis=1)
            dh = dh_new * update + _dot(d_state[t], w["h2h_weight"])
        else:
            h_new = tape.gates[t]
            if mode == "rnn_relu":  # NaN passes, as relu's own gradient
                d_input[t] = dh_new * np.where(h_new == h_new, h_new > 0, h_new)
            else:
                d_input[t] = dh_new * (1 - h_new * h_new)
            dh = _dot(d_input[t], w["h2h_weight"])
        if dh_kept is not None:
            dh = dh + dh_kept
            if dc is not None:
                dc = dc + dc_kept
    flat_in = d_input.reshape(steps * batch, -1)
    flat_state = d_state.reshape(steps * batch, -1)
    grads = {
        "i2h_weight": _dot(flat_in.T, x.reshape(steps * batch, -1)),
        "h2h_weight": _dot(flat_state.T, tape.h_prev.reshape(steps * batch, -1)),
        "i2h_bias": flat_in.sum(axis=0),
        "h2h_bias": flat_state.sum(axis=0),
    }
    if d_r_out is not None:
        grads["h2r_weight"] = _dot(
            d_r_out.reshape(steps * batch, -1).T, tape.r.reshape(steps * batch, -1)
        )
    d_x = _dot(flat_in, w["i2h_weight"]).reshape(x.shape)
    return d_x, grads, dh, dc


def _unpack(params: np.ndarray, shapes: list) -> dict[str, np.ndarray]:
    pieces, offset = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        pieces[name] = params[offset : offset + size].reshape(shape)
        offset += size
    return pieces


class Setup:
    """What both halves of the backward read: the unpacked weights, the clip, the
    per-step validity of ``sequence_length`` and the sizes."""

    def __init__(self, data: np.ndarray, params: np.ndarray, lengths: Any, attrs: dict):
        self.mode, self.layers = attrs["mode"], attrs["num_layers"]
        self.directions = 2 if attrs["bidirectional"] else 1
        self.dtype = data.dtype
        steps = data.shape[0]
        self.shapes = rnn_param_shapes(
            self.mode,
            self.layers,
            data.shape[2],
            attrs["state_size"],
            self.directions == 2,
            attrs["projection_size"],
        )
        self.pieces = _unpack(params, self.shapes)
        self.clip = None
        low, high = attrs["lstm_state_clip_min"], attrs["lstm_state_clip_max"]
        if self.mode == "lstm" and low is not None and high is not None:
            self.clip = (low, high, attrs["lstm_state_clip_nan"])
        self.valid = None
        if lengths is not None:
            self.valid = (lengths[None, :] > np.arange(steps)[:, None]).astype(self.dtype)[
                ..., None
            ]

    def weights(self, layer: int, direction: int) -> dict[str, np.ndarray]:
        """The pieces of one layer and direction, by their names after the prefix."""
        prefix = f"{'lr'[direction]}{layer}_"
        return {n[3:]: v for n, v in self.pieces.items() if n[:3] == prefix}


def forward_tapes(
    setup: Setup, data: np.ndarray, state: np.ndarray, cell: Any, masks: Any
) -> tuple[list[np.ndarray], list[Tape], np.ndarray, np.ndarray, np.ndarray | None]:
    """Every layer and direction forward, keeping what the backward reads:
    (each layer's input, each direction's tape, out, h_n, c_n)."""
    layer_inputs, tapes, x = [], [], data
    hy = np.empty_like(state)
    cy = np.empty_like(cell) if cell is not None else None
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in range(setup.layers):
            outs = []
            for direction in range(setup.directions):
                k = layer * setup.directions + direction
                c0 = cell[k] if cell is not None else None
                out, h, c, tape = _run_direction(
                    setup.mode,
                    x,
                    setup.weights(layer, direction),
                    state[k],
                    c0,
                    setup.valid,
                    direction == 1,
                    setup.clip,
                )
                hy[k] = h
                if cy is not None:
                    cy[k] = c
                outs.append(out)
                tapes.append(tape)
            layer_inputs.append(x)
            x = np.concatenate(outs, axis=2) if setup.directions == 2 else outs[0]
            if masks is not None and layer < setup.layers - 1:
                x = x * masks[layer]
    return layer_inputs, tapes, x.astype(setup.dtype, copy=False), hy, cy


def backward_tapes(
    setup: Setup,
    params: np.ndarray,
    layer_inputs: list[np.ndarray],
    tapes: list[Tape],
    masks: Any,
    grads: tuple,
    cell: Any,
    state: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The reverse walk from the forward's tapes: the gradients of data,
    parameters, state (and state_cell) from those of out, h_n (and c_n)."""
    d_out, d_hy = grads[0], grads[1]
    d_cy = grads[2] if setup.mode == "lstm" else None
    d_params = np.zeros_like(params)
    d_pieces = _unpack(d_params, setup.shapes)
    d_state = np.empty_like(state)
    d_cell = np.empty_like(cell) if cell is not None else None
    d_above = d_out
    width = d_out.shape[2] // setup.directions
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in range(setup.layers - 1, -1, -1):
            x = layer_inputs[layer]
            d_x = np.zeros(x.shape, setup.dtype)
            for direction in range(setup.directions):
                k = layer * setup.directions + direction
                prefix = f"{'lr'[direction]}{layer}_"
                d_part = d_above[:, :, direction * width : (direction + 1) * width]
                dc0 = d_cy[k] if d_cy is not None else None
                dx, pieces, dh, dc = _back_direction(
                    setup.mode,
                    x,
                    setup.weights(layer, direction),
                    tapes[k],
                    d_part,
                    d_hy[k],
                    dc0,
                    setup.valid,
                    direction == 1,
                    setup.clip,
                )
                d_x += dx
                for name, value in pieces.items():
                    d_pieces[prefix + name][...] = value
                d_state[k] = dh
                if d_cell is not None:
                    d_cell[k] = dc
            d_above = d_x * masks[layer - 1] if masks is not None and layer > 0 else d_x
    result = [d_above.astype(setup.dtype, copy=False), d_params, d_state]
    return tuple(result + ([d_cell] if d_cell is not None else []))


def _rnn_grad(*arrays: np.ndarray, **attrs: Any) -> tuple[np.ndarray, ...]:
    parts = _Parts(arrays, attrs)
    setup = Setup(parts.data, parts.params, parts.lengths, attrs)
    # forward again, keeping each layer's input and each direction's tape
    layer_inputs, tapes, _, _, _ = forward_tapes(
        setup, parts.data, parts.state, parts.cell, parts.masks
    )
    return backward_tapes(
        setup, parts.params, layer_inputs, tapes, parts.masks, parts.grads, parts.cell, parts.state
    )


# ---------------------------------------------------------------------------
# the op's own gradient: the unrolled first-order gradient, differentiated
# ---------------------------------------------------------------------------


def rnn_grad_grad(
    gs: tuple[Expr, ...], *inputs: Expr, out: tuple[Expr, ...], **attrs: Any
) -> tuple[Expr | None, ...]:
    """The vector-Jacobian product of ``_rnn_grad`` (second-order RNN gradients).

    Gradient
    --------
    The first-order gradient is rebuilt as the unrolled recurrence's reverse walk
    (:func:`.rnn.unrolled_vjp`) on stand-ins of data, parameters, states and the
    output gradients, and differentiated again with ``gs`` as seeds. The RNN's
    outputs among the inputs are a cache of values computed from the other inputs:
    they get no gradient (the rebuilt graph recomputes them), nor do the lengths or
    the dropout masks.
    """
    from ..autodiff import differentiate  # the walk imports the op namespace

    parts = _Parts(inputs, attrs)
    values = [parts.data, parts.params, parts.state] + (
        [parts.cell] if parts.cell is not None else []
    )
    stand_ins = [F.identity(v) for v in values]
    # a seed that is zeros_like stays one: the unrolled rule then skips it
    seeds = [g if g.entry.node.op.name == "zeros_like" else F.identity(g) for g in parts.grads]
    forward_out = parts.outputs
    first = unrolled_vjp(
        tuple(seeds),
        stand_ins[0],
        stand_ins[1],
        stand_ins[2],
        *([stand_ins[3]] if parts.cell is not None else []),
        *([parts.lengths] if parts.lengths is not None else []),
        out=forward_out,
        **attrs,
    )
    heads, head_grads = [], []
    for value, g in zip(first, gs):
        if value is not None and g is not None and g.entry.node.op.name != "zeros_like":
            heads.append(value.entry)
            head_grads.append(g.entry)
    wrt = [s.entry for s in stand_ins] + [s.entry for s in seeds]
    grads = differentiate(heads, head_grads, wrt) if heads else [None] * len(wrt)
    by_value = grads[: len(values)]
    by_seed = grads[len(values) :]
    result: list[Expr | None] = [
        Expr(g) if g is not None else None for g in by_value[:3]
    ]  # data, parameters, state
    if parts.cell is not None:
        result.append(Expr(by_value[3]) if by_value[3] is not None else None)
    if parts.lengths is not None:
        result.append(None)
    result += [None] * len(parts.outputs)
    result += [Expr(g) if g is not None else None for g in by_seed]
    return tuple(result)


def _test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    # a GRU of 2 layers, bidirectional: both directions, a layer's input from below
    size = rnn_param_size("gru", 2, 3, 2, True)
    return [
        rng.uniform(-1, 1, (3, 2, 3)),
        rng.uniform(-0.8, 0.8, (size,)),
        rng.uniform(-1, 1, (4, 2, 2)),
        rng.uniform(-1, 1, (3, 2, 4)),
        rng.uniform(-1, 1, (4, 2, 2)),
        rng.uniform(-1, 1, (3, 2, 4)),
        rng.uniform(-1, 1, (4, 2, 2)),
    ]


register(
    OpDef(
        name="_rnn_grad",
        infer=_rnn_grad_types,
        impl=_rnn_grad,
        grad=rnn_grad_grad,
        inputs=rnn_grad_inputs,
        attrs=RNN_ATTRS,
        sized_grad=True,  # its gradient unrolls the sequence: one step per time step
        doc="The RNN op's first-order backward (back-propagation through time): the "
        "gradients of data, parameters, state (and state_cell) from the RNN's inputs, "
        "its outputs and their gradients."
        "\n\nGradient\n--------\nThe unrolled recurrence's reverse walk, rebuilt from "
        "registered ops and differentiated again; none for the RNN's outputs (a cache), "
        "sequence_length or the dropout masks.",
        test=TestSpec(
            make_inputs=_test_inputs,
            wrt=(0, 1, 2, 5, 6),
            rtol=1e-5,
            order=1,
            attrs={"state_size": 2, "num_layers": 2, "mode": "gru", "bidirectional": True},
        ),
    )
)
