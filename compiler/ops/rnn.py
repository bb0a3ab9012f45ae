"""The fused recurrent op ``RNN`` (modes rnn_relu, rnn_tanh, lstm, gru) and
``_rnn_param_concat``, which packs Gluon's per-gate weights into its vector.

Layout, as MXNet's: data is time-major (T, N, I); ``parameters`` is one vector
holding every weight, then every bias, layer by layer and, within a layer,
direction by direction (left to right first). Per layer and direction the weights
are ``i2h`` (G*H, in), ``h2h`` (G*H, P) and, for an LSTM with a projection,
``h2r`` (P, H); the biases ``i2h`` (G*H,) and ``h2h`` (G*H,). G is the number of
gates (1, 1, 4, 3), H is ``state_size``, P is ``projection_size`` (H without one),
``in`` is I for layer 0 and D*P above (D: 2 if bidirectional). Gates are in MXNet's
order: LSTM i, f, g, o; GRU r, z, n with ``n = tanh(x_n + r * (h_n + b_hn))``.

The recurrence is written once, in :func:`_recurrence`, against a small kit of
array operations. The numpy kit runs it for the op's implementation: one Python
iteration per step, layer and direction, each a (N, P) x (P, G*H) product plus
elementwise numpy calls (the input projections of a whole layer are one product).
The gradient is one ``_rnn_grad`` node (:mod:`.rnn_grad`): a reverse-time loop over
matrix products, the same graph for every sequence length (the numba backend runs
both ops as compiled loops, ``backends/numba/lowerings/rnn.py``). The graph kit runs
the recurrence on graph handles: unrolled into registered ops (FullyConnected,
SliceChannel, sigmoid, tanh, elementwise) and differentiated by the ordinary
reverse walk (:func:`unrolled_vjp`), it is ``_rnn_grad``'s own gradient, so RNN
gradients differentiate again to any order (about 15 nodes per step, layer and
direction, a graph per sequence length, for second and higher orders only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import (
    Attr,
    OpDef,
    TestSpec,
    as_bool,
    as_float,
    as_int,
    as_optional_int,
    get_op,
    one_of,
    register,
)
from . import shape as _shape  # noqa: F401  (registers Concat, which _rnn_param_concat reuses)
from .common import F, require_same_dtype
from .random import generator

GATES = {"rnn_relu": 1, "rnn_tanh": 1, "lstm": 4, "gru": 3}


def _optional_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() in ("None", "")):
        return None
    return as_float(value)


RNN_ATTRS = {
    "state_size": Attr(as_int),
    "num_layers": Attr(as_int),
    "mode": Attr(one_of(*GATES)),
    "bidirectional": Attr(as_bool, False),
    "p": Attr(as_float, 0.0),
    "state_outputs": Attr(as_bool, False),
    "projection_size": Attr(as_optional_int, None),
    "lstm_state_clip_min": Attr(_optional_float, None),
    "lstm_state_clip_max": Attr(_optional_float, None),
    "lstm_state_clip_nan": Attr(as_bool, False),
    "use_sequence_length": Attr(as_bool, False),
    "is_train": Attr(as_bool, False),
}


# ---------------------------------------------------------------------------
# the packed parameter layout
# ---------------------------------------------------------------------------


def rnn_param_shapes(
    mode: str,
    num_layers: int,
    input_size: int,
    state_size: int,
    bidirectional: bool = False,
    projection_size: int | None = None,
) -> list[tuple[str, tuple[int, ...]]]:
    """The pieces of the RNN op's packed ``parameters`` vector, in order.

    Returns ``(name, shape)`` pairs named as Gluon names them (``l0_i2h_weight``,
    ``r1_h2h_bias``...): all weights, then all biases.

    >>> [name for name, _ in rnn_param_shapes("gru", 1, 5, 4)]
    ['l0_i2h_weight', 'l0_h2h_weight', 'l0_i2h_bias', 'l0_h2h_bias']
    """
    gates = GATES[mode]
    directions = ("l", "r") if bidirectional else ("l",)
    out_size = projection_size or state_size
    weights: list[tuple[str, tuple[int, ...]]] = []
    biases: list[tuple[str, tuple[int, ...]]] = []
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else len(directions) * out_size
        for d in directions:
            weights.append((f"{d}{layer}_i2h_weight", (gates * state_size, in_size)))
            weights.append((f"{d}{layer}_h2h_weight", (gates * state_size, out_size)))
            if projection_size:
                weights.append((f"{d}{layer}_h2r_weight", (projection_size, state_size)))
            biases.append((f"{d}{layer}_i2h_bias", (gates * state_size,)))
            biases.append((f"{d}{layer}_h2h_bias", (gates * state_size,)))
    return weights + biases


def rnn_param_size(
    mode: str,
    num_layers: int,
    input_size: int,
    state_size: int,
    bidirectional: bool = False,
    projection_size: int | None = None,
) -> int:
    """Length of the RNN op's packed ``parameters`` vector.

    >>> rnn_param_size("lstm", 1, 3, 2)
    56
    """
    return sum(
        int(np.prod(shape))
        for _, shape in rnn_param_shapes(
            mode, num_layers, input_size, state_size, bidirectional, projection_size
        )
    )


# ---------------------------------------------------------------------------
# kits: the array operations the recurrence needs, on numpy and on graphs
# ---------------------------------------------------------------------------


class _NumpyKit:
    """The recurrence's operations on numpy arrays (the op's implementation)."""

    def rows(self, x: np.ndarray, count: int) -> list[np.ndarray]:
        return [x[k] for k in range(count)]

    def piece(self, params: np.ndarray, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        return params[offset : offset + int(np.prod(shape))].reshape(shape)

    def linear(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        # one 2-D GEMM: numpy's 3-D matmul loops over the leading axis (20x slower)
        out = np.dot(x.reshape(-1, x.shape[-1]), weight.T).reshape(x.shape[:-1] + (-1,))
        return out if bias is None else out + bias

    def gates(self, z: np.ndarray, count: int) -> list[np.ndarray]:
        return np.split(z, count, axis=-1) if count > 1 else [z]

    def sigmoid(self, x: np.ndarray) -> np.ndarray:
        return get_op("sigmoid").impl(x)

    def tanh(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def relu(self, x: np.ndarray) -> np.ndarray:
        return get_op("relu").impl(x)

    def clip(self, x: np.ndarray, low: float, high: float, nan: bool) -> np.ndarray:
        # fmax/fmin send NaN to the bound (lstm_state_clip_nan); clip propagates it
        return np.fmin(np.fmax(x, low), high) if nan else np.clip(x, low, high)

    def stack(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.stack(xs)

    def concat(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs, axis=-1)

    def valid(self, lengths: np.ndarray, step: int, like: np.ndarray) -> np.ndarray:
        return (lengths > step).astype(like.dtype)[:, None]


class _GraphKit:
    """The same operations as graph nodes of registered ops (the gradient rule)."""

    def rows(self, x: Expr, count: int) -> list[Expr]:
        parts = F.split(x, num_outputs=count, axis=0, squeeze_axis=True)
        return list(parts) if count > 1 else [parts]

    def piece(self, params: Expr, offset: int, shape: tuple[int, ...]) -> Expr:
        flat = F.slice(params, begin=(offset,), end=(offset + int(np.prod(shape)),))
        return F.reshape(flat, shape=shape)

    def linear(self, x: Expr, weight: Expr, bias: Expr | None) -> Expr:
        return F.FullyConnected(
            x,
            weight,
            *(() if bias is None else (bias,)),
            num_hidden=weight.shape[0],
            no_bias=bias is None,
            flatten=False,
        )

    def gates(self, z: Expr, count: int) -> list[Expr]:
        return list(F.split(z, num_outputs=count, axis=z.ndim - 1)) if count > 1 else [z]

    def sigmoid(self, x: Expr) -> Expr:
        return F.sigmoid(x)

    def tanh(self, x: Expr) -> Expr:
        return F.tanh(x)

    def relu(self, x: Expr) -> Expr:
        return F.relu(x)

    def clip(self, x: Expr, low: float, high: float, nan: bool) -> Expr:
        clipped = F.clip(x, a_min=low, a_max=high)
        if not nan:
            return clipped
        return F.where(x == x, clipped, F.zeros_like(x) + low)

    def stack(self, xs: list[Expr]) -> Expr:
        return F.stack(*xs, axis=0)

    def concat(self, xs: list[Expr]) -> Expr:
        return F.concat(*xs, dim=xs[0].ndim - 1)

    def valid(self, lengths: Expr, step: int, like: Expr) -> Expr:
        # (N, 1): 1 while the step is inside the sequence; no gradient reaches lengths
        column = F.reshape(F.stop_gradient(lengths), shape=(-1, 1))
        flags = F._greater_scalar(column, scalar=float(step))
        return flags if flags.dtype == like.dtype else F.cast(flags, dtype=like.dtype.name)


NUMPY_KIT = _NumpyKit()
GRAPH_KIT = _GraphKit()


# ---------------------------------------------------------------------------
# the recurrence, written once for both kits
# ---------------------------------------------------------------------------


def _cell_step(
    kit: Any,  # _NumpyKit or _GraphKit: the same steps on arrays or on graph handles
    mode: str,
    x_part: Any,
    h: Any,
    c: Any,
    h2h_weight: Any,
    h2h_bias: Any,
    h2r_weight: Any,
    clip: tuple[float, float, bool] | None,
) -> tuple[Any, Any]:
    """One step of one layer and direction: the new (h, c) from the input's
    projection ``x_part`` (W_i2h x + b_i2h) and the previous states."""
    h_part = kit.linear(h, h2h_weight, h2h_bias)
    if mode == "lstm":
        xi, xf, xg, xo = kit.gates(x_part + h_part, 4)
        c_new = kit.sigmoid(xf) * c + kit.sigmoid(xi) * kit.tanh(xg)
        if clip is not None:
            c_new = kit.clip(c_new, *clip)
        h_new = kit.sigmoid(xo) * kit.tanh(c_new)
        if h2r_weight is not None:
            h_new = kit.linear(h_new, h2r_weight, None)
        return h_new, c_new
    if mode == "gru":
        xr, xz, xn = kit.gates(x_part, 3)
        hr, hz, hn = kit.gates(h_part, 3)
        reset = kit.sigmoid(xr + hr)
        update = kit.sigmoid(xz + hz)
        candidate = kit.tanh(xn + reset * hn)
        return candidate + update * (h - candidate), None  # (1 - z) n + z h
    act = kit.relu if mode == "rnn_relu" else kit.tanh
    return act(x_part + h_part), None


def _recurrence(
    kit: Any,  # _NumpyKit or _GraphKit: the same steps on arrays or on graph handles
    data: Any,
    params: Any,
    state: Any,
    cell: Any,
    lengths: Any,
    masks: Any,
    *,
    state_size: int,
    num_layers: int,
    mode: str,
    bidirectional: bool,
    p: float,
    state_outputs: bool,
    projection_size: int | None,
    lstm_state_clip_min: float | None,
    lstm_state_clip_max: float | None,
    lstm_state_clip_nan: bool,
    use_sequence_length: bool,
    is_train: bool,
) -> tuple[Any, Any, Any]:
    """Run every layer and direction: returns (out, h_n, c_n or None).

    With ``lengths``, steps at or past a sequence's length leave its states as
    they are and output zeros, so the reverse direction starts at each sequence's
    own last step and the final states are those of its last valid step."""
    steps = data.shape[0]
    directions = 2 if bidirectional else 1
    shapes = rnn_param_shapes(
        mode, num_layers, data.shape[2], state_size, bidirectional, projection_size
    )
    pieces, offset = {}, 0
    for name, shape in shapes:
        pieces[name] = kit.piece(params, offset, shape)
        offset += int(np.prod(shape))
    clip = None
    if mode == "lstm" and lstm_state_clip_min is not None and lstm_state_clip_max is not None:
        clip = (lstm_state_clip_min, lstm_state_clip_max, lstm_state_clip_nan)
    h_rows = kit.rows(state, num_layers * directions)
    c_rows = kit.rows(cell, num_layers * directions) if mode == "lstm" else None
    mask_rows = kit.rows(masks, num_layers - 1) if masks is not None else None
    x = data
    last_h, last_c = [], []
    for layer in range(num_layers):
        outputs = []
        for direction, tag in enumerate("lr"[:directions]):
            k = layer * directions + direction
            name = f"{tag}{layer}_"
            projected = kit.rows(
                kit.linear(x, pieces[name + "i2h_weight"], pieces[name + "i2h_bias"]), steps
            )
            h = h_rows[k]
            c = c_rows[k] if c_rows is not None else None
            outs: list[Any] = [None] * steps
            order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
            for t in order:
                h_new, c_new = _cell_step(
                    kit,
                    mode,
                    projected[t],
                    h,
                    c,
                    pieces[name + "h2h_weight"],
                    pieces[name + "h2h_bias"],
                    pieces.get(name + "h2r_weight"),
                    clip,
                )
                if lengths is not None:
                    valid = kit.valid(lengths, t, h_new)
                    outs[t] = h_new * valid
                    h = h + valid * (h_new - h)
                    if c is not None:
                        c = c + valid * (c_new - c)
                else:
                    outs[t] = h = h_new
                    c = c_new
            outputs.append(kit.stack(outs))
            last_h.append(h)
            last_c.append(c)
        x = kit.concat(outputs) if directions == 2 else outputs[0]
        if mask_rows is not None and layer < num_layers - 1:
            x = x * mask_rows[layer]  # dropout between layers (training only)
    return x, kit.stack(last_h), kit.stack(last_c) if mode == "lstm" else None


# ---------------------------------------------------------------------------
# the RNN op
# ---------------------------------------------------------------------------


def _rnn_inputs(attrs: dict) -> tuple[str, ...]:
    names: tuple[str, ...] = ("data", "parameters", "state")
    if attrs.get("mode") == "lstm":
        names += ("state_cell",)
    if attrs.get("use_sequence_length"):
        names += ("sequence_length",)
    return names


def draws_masks(attrs: dict) -> bool:
    """Whether the op draws dropout masks between layers (returned as its last output)."""
    return bool(attrs["is_train"]) and attrs["p"] > 0 and attrs["num_layers"] > 1


def _visible(attrs: dict) -> int:
    if not attrs["state_outputs"]:
        return 1
    return 3 if attrs["mode"] == "lstm" else 2


def _rnn_types(types: Sequence[TensorType], **attrs: Any) -> list[TensorType]:
    mode, hidden, layers = attrs["mode"], attrs["state_size"], attrs["num_layers"]
    projection = attrs["projection_size"]
    if projection and mode != "lstm":
        raise GraphError("projection_size is only for mode='lstm'")
    data = types[0].shape
    if len(data) != 3:
        raise GraphError(f"data must be (T, N, I), got {data}")
    dtype = require_same_dtype(types[: 4 if mode == "lstm" else 3])
    steps, batch, features = data
    directions = 2 if attrs["bidirectional"] else 1
    out_size = projection or hidden
    size = rnn_param_size(mode, layers, features, hidden, attrs["bidirectional"], projection)
    if types[1].shape != (size,):
        raise GraphError(f"parameters must be ({size},), got {types[1].shape}")
    state = (layers * directions, batch, out_size)
    if types[2].shape != state:
        raise GraphError(f"state must be {state}, got {types[2].shape}")
    result = [TensorType((steps, batch, directions * out_size), dtype), TensorType(state, dtype)]
    if mode == "lstm":
        cell = (layers * directions, batch, hidden)
        if types[3].shape != cell:
            raise GraphError(f"state_cell must be {cell}, got {types[3].shape}")
        result.append(TensorType(cell, dtype))
    if attrs["use_sequence_length"] and types[-1].shape != (batch,):
        raise GraphError(f"sequence_length must be ({batch},), got {types[-1].shape}")
    if draws_masks(attrs):
        result.append(TensorType((layers - 1, steps, batch, directions * out_size), dtype))
    return result


def _split_inputs(inputs: tuple, attrs: dict) -> tuple[Any, Any]:
    """(state_cell or None, sequence_length or None) from the inputs after state."""
    cell = inputs[0] if attrs["mode"] == "lstm" else None
    lengths = inputs[-1] if attrs["use_sequence_length"] else None
    return cell, lengths


def _rnn(
    data: np.ndarray, params: np.ndarray, state: np.ndarray, *rest: np.ndarray, **attrs: Any
) -> np.ndarray | tuple[np.ndarray, ...]:
    cell, lengths = _split_inputs(rest, attrs)
    masks = None
    if draws_masks(attrs):
        steps, batch, _ = data.shape
        width = (2 if attrs["bidirectional"] else 1) * (
            attrs["projection_size"] or attrs["state_size"]
        )
        keep = generator().random((attrs["num_layers"] - 1, steps, batch, width)) >= attrs["p"]
        masks = (keep / (1.0 - attrs["p"])).astype(data.dtype)
    with np.errstate(over="ignore"):
        out, hy, cy = _recurrence(NUMPY_KIT, data, params, state, cell, lengths, masks, **attrs)
    outputs = [out, hy] + ([cy] if cy is not None else []) + ([masks] if masks is not None else [])
    return tuple(np.ascontiguousarray(o, dtype=data.dtype) for o in outputs)


def unrolled_vjp(
    gs: tuple[Expr, ...],
    data: Expr,
    params: Expr,
    state: Expr,
    *rest: Expr,
    out: tuple[Expr, ...],
    **attrs: Any,
) -> Expr | tuple[Expr | None, ...]:
    """The vector-Jacobian product of the recurrence unrolled into registered ops
    (what ``_rnn_grad``'s own gradient differentiates).

    Gradient
    --------
    The forward is rebuilt from registered ops on stand-ins of the inputs (the
    dropout masks read from the forward's hidden output) and differentiated by the
    reverse walk with the output gradients as seeds: per step, for an LSTM,
    ``dc += dh * o * (1 - tanh(c)^2)``, ``dc_prev = dc * f``, the gate gradients
    through sigmoid/tanh, then ``dx = dz W_i2h``, ``dh_prev = dz W_h2h``,
    ``dW += dz^T x`` (and likewise for GRU and the vanilla RNN). No gradient
    reaches ``sequence_length``.
    """
    from ..autodiff import differentiate  # the walk imports the op namespace

    cell, lengths = _split_inputs(rest, attrs)
    inputs = [data, params, state] + ([cell] if cell is not None else [])
    # Identity stand-ins: the walk then stops at them, even where one input of
    # the op is computed from another.
    stand_ins = [F.identity(x) for x in inputs]
    masks = F.stop_gradient(out[-1]) if draws_masks(attrs) else None
    rebuilt = _recurrence(
        GRAPH_KIT,
        stand_ins[0],
        stand_ins[1],
        stand_ins[2],
        stand_ins[3] if cell is not None else None,
        lengths,
        masks,
        **attrs,
    )
    heads, seeds = [], []
    for value, g in zip(rebuilt, gs):
        if value is not None and g is not None and g.entry.node.op.name != "zeros_like":
            heads.append(value.entry)
            seeds.append(g.entry)
    grads = (
        differentiate(heads, seeds, [s.entry for s in stand_ins])
        if heads
        else [None] * len(stand_ins)
    )
    result = tuple(Expr(g) if g is not None else F.zeros_like(x) for g, x in zip(grads, inputs))
    return result + ((None,) if lengths is not None else ())


def rnn_grad(
    gs: tuple[Expr, ...],
    data: Expr,
    params: Expr,
    state: Expr,
    *rest: Expr,
    out: tuple[Expr, ...],
    **attrs: Any,
) -> tuple[Expr | None, ...]:
    """Back-propagation through time as one ``_rnn_grad`` node.

    Gradient
    --------
    Per step, for an LSTM, ``dc += dh * o * (1 - tanh(c)^2)``, the gates'
    gradients through sigmoid/tanh, ``dh_prev = dz W_h2h``, ``dc_prev = dc * f``
    (likewise for GRU and the vanilla RNN); then over all steps of a layer
    ``dx = dz W_i2h``, ``dW_i2h = dz^T x``, ``dW_h2h = dz^T h_prev``. Computed by
    ``_rnn_grad`` (see :mod:`.rnn_grad`), whose own gradient is the unrolled
    recurrence's (:func:`unrolled_vjp`). None for ``sequence_length``.
    """
    cell, lengths = _split_inputs(rest, attrs)
    inputs = [data, params, state] + [x for x in (cell, lengths) if x is not None]
    seeds = list(gs[: 3 if attrs["mode"] == "lstm" else 2])
    grads = F._rnn_grad(*inputs, *out, *seeds, **attrs)
    return tuple(grads) + ((None,) if lengths is not None else ())


def _rnn_test_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    # an LSTM of 2 layers, bidirectional, with a projection: every piece of the layout
    size = rnn_param_size("lstm", 2, 3, 3, True, 2)
    return [
        rng.uniform(-1, 1, (3, 2, 3)),
        rng.uniform(-0.6, 0.6, (size,)),
        rng.uniform(-1, 1, (4, 2, 2)),
        rng.uniform(-1, 1, (4, 2, 3)),
    ]


def rnn_output_count(attrs: dict, num_inputs: int) -> int:
    """How many outputs the op has with these canonical attrs (for graphs whose
    shapes are not known yet): out, h_n, c_n for an LSTM, the dropout masks."""
    return 2 + (attrs["mode"] == "lstm") + draws_masks(attrs)


def rnn_input_shapes(shapes: list, **attrs: Any) -> list:
    """The shapes of ``parameters``, ``state`` (``state_cell``, ``sequence_length``)
    that the data's shape (T, N, I) decides, for Symbol shape inference."""
    data = shapes[0]
    if data is None or len(data) != 3:
        return shapes
    directions = 2 if attrs["bidirectional"] else 1
    rows = attrs["num_layers"] * directions
    hidden, projection = attrs["state_size"], attrs["projection_size"]
    learned = [
        data,
        (
            rnn_param_size(
                attrs["mode"],
                attrs["num_layers"],
                data[2],
                hidden,
                attrs["bidirectional"],
                projection,
            ),
        ),
        (rows, data[1], projection or hidden),
    ]
    if attrs["mode"] == "lstm":
        learned.append((rows, data[1], hidden))
    if attrs["use_sequence_length"]:
        learned.append((data[1],))
    return learned


RNN_OP = register(
    OpDef(
        name="RNN",
        infer=_rnn_types,
        impl=_rnn,
        grad=rnn_grad,
        inputs=_rnn_inputs,
        attrs=RNN_ATTRS,
        uses_train_mode=True,
        visible_outputs=_visible,
        kind="random",
        pure_when=lambda attrs: not draws_masks(attrs),
        doc="Recurrent layers (vanilla RNN with relu or tanh, LSTM, GRU) over time-major "
        "data, multi-layer and bidirectional, with MXNet's packed parameters. "
        "Outputs: out (T, N, D*P), then with state_outputs h_n (and c_n for an LSTM)."
        "\n\nGradient\n--------\nBack-propagation through time as one ``_rnn_grad`` op "
        "(a reverse-time loop over matrix products); its own gradient is the recurrence "
        "unrolled into registered ops, so it differentiates again; none for "
        "sequence_length.",
        test=TestSpec(
            make_inputs=_rnn_test_inputs,
            rtol=1e-5,
            attrs={
                "state_size": 3,
                "num_layers": 2,
                "mode": "lstm",
                "bidirectional": True,
                "projection_size": 2,
                "state_outputs": True,
            },
        ),
    )
)
# the output count of a node made before its shapes are known (symbol_types reads it)
RNN_OP.num_outputs = rnn_output_count


# ---------------------------------------------------------------------------
# _rnn_param_concat: Gluon's RNN layers join their flattened weights with it
# ---------------------------------------------------------------------------

_CONCAT = get_op("Concat")


def rnn_param_concat_grad(g: Expr, *inputs: Expr, out: Expr, dim: int, num_args: int = 0) -> Expr:
    """the pieces of g that line up with each input (as Concat)"""
    rule = _CONCAT.grad
    assert rule is not None
    return rule(g, *inputs, out=out, dim=dim)


register(
    OpDef(
        name="_rnn_param_concat",
        infer=_CONCAT.infer,
        impl=_CONCAT.impl,
        grad=rnn_param_concat_grad,
        attrs={"dim": Attr(as_int, 1), "num_args": Attr(as_int, 0)},
        variadic=True,
        kind="shape",
        doc="Join arrays along axis ``dim`` (Concat under the name MXNet's RNN layers export).",
        test=TestSpec(shapes=((6,), (4,)), attrs={"dim": 0}),
    )
)
