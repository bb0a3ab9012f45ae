"""Recurrent nets against the real MXNet 1.9.1 (float32, 1e-4 relative).

The fused ``RNN`` op in every mode (2 layers, one and two directions) gives
MXNet's outputs, final states and gradients with respect to the data, the packed
parameters and the begin states; ``gluon.rnn`` LSTM and GRU layers and every
cell's ``unroll`` with the same weights give MXNet's outputs, states and
gradients; an LSTM language model exported by MXNet loads through
``SymbolBlock.imports`` and gives MXNet's outputs.

Each test writes its inputs (and weights) to an .npz, one MXNet process computes
the same things and writes them back, and the comparison runs here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mxnet_interop import run_mxnet

import symgrad as mx
from symgrad import gluon
from symgrad.gluon import rnn
from symgrad_compiler.ops.rnn import rnn_param_size

pytestmark = pytest.mark.interop

RTOL, ATOL = 1e-4, 1e-5


def _close(ours, theirs, what: str) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=what)


# ---------------------------------------------------------------------------
# the fused op
# ---------------------------------------------------------------------------

OP_CASES = [
    ("rnn_relu", False),
    ("rnn_tanh", False),
    ("lstm", False),
    ("gru", False),
    ("lstm", True),
    ("gru", True),
    ("rnn_tanh", True),
]
STEPS, BATCH, FEATURES, HIDDEN, LAYERS = 5, 3, 4, 6, 2

OP_SCRIPT = """
import json
import numpy as np
import mxnet as mx
cases = json.load(open('cases.json'))
given = np.load('op_inputs.npz')
results = {}
for k, (mode, bidirectional) in enumerate(cases):
    names = ['data', 'params', 'state'] + (['cell'] if mode == 'lstm' else [])
    args = [mx.nd.array(given[f'{k}_{n}']) for n in names]
    for a in args:
        a.attach_grad()
    with mx.autograd.record():
        outs = mx.nd.RNN(*args, state_size=HIDDEN, num_layers=LAYERS, mode=mode,
                         bidirectional=bidirectional, state_outputs=True)
        loss = sum((o * mx.nd.array(given[f'{k}_head{i}'])).sum() for i, o in enumerate(outs))
    loss.backward()
    for i, o in enumerate(outs):
        results[f'{k}_out{i}'] = o.asnumpy()
    for n, a in zip(names, args):
        results[f'{k}_grad_{n}'] = a.grad.asnumpy()
np.savez('op_results.npz', **results)
""".replace("HIDDEN", str(HIDDEN)).replace("LAYERS", str(LAYERS))


def _op_inputs(rng, mode: str, bidirectional: bool) -> dict[str, np.ndarray]:
    directions = 2 if bidirectional else 1
    size = rnn_param_size(mode, LAYERS, FEATURES, HIDDEN, bidirectional)
    state = (LAYERS * directions, BATCH, HIDDEN)
    values = {
        "data": rng.uniform(-1, 1, (STEPS, BATCH, FEATURES)),
        "params": rng.uniform(-0.4, 0.4, (size,)),
        "state": rng.uniform(-1, 1, state),
    }
    if mode == "lstm":
        values["cell"] = rng.uniform(-1, 1, state)
    return {k: v.astype(np.float32) for k, v in values.items()}


def _op_heads(rng, mode: str, bidirectional: bool) -> list[np.ndarray]:
    directions = 2 if bidirectional else 1
    shapes = [(STEPS, BATCH, directions * HIDDEN), (LAYERS * directions, BATCH, HIDDEN)]
    if mode == "lstm":
        shapes.append(shapes[1])
    return [rng.uniform(-1, 1, s).astype(np.float32) for s in shapes]


def test_rnn_op_matches_mxnet(mxnet_python, tmp_path):
    rng = np.random.default_rng(7)
    arrays, ours = {}, {}
    for k, (mode, bidirectional) in enumerate(OP_CASES):
        inputs = _op_inputs(rng, mode, bidirectional)
        heads = _op_heads(rng, mode, bidirectional)
        arrays.update({f"{k}_{n}": v for n, v in inputs.items()})
        arrays.update({f"{k}_head{i}": h for i, h in enumerate(heads)})
        args = [mx.nd.array(v) for v in inputs.values()]
        for a in args:
            a.attach_grad()
        with mx.autograd.record():
            outs = mx.nd.RNN(
                *args,
                state_size=HIDDEN,
                num_layers=LAYERS,
                mode=mode,
                bidirectional=bidirectional,
                state_outputs=True,
            )
            loss = sum((o * mx.nd.array(h)).sum() for o, h in zip(outs, heads))
        loss.backward()
        ours.update({f"{k}_out{i}": o.asnumpy() for i, o in enumerate(outs)})
        ours.update({f"{k}_grad_{n}": a.grad.asnumpy() for n, a in zip(inputs, args)})
    np.savez(tmp_path / "op_inputs.npz", **arrays)
    (tmp_path / "cases.json").write_text(json.dumps(OP_CASES))
    run_mxnet(mxnet_python, OP_SCRIPT, tmp_path)
    theirs = np.load(tmp_path / "op_results.npz")
    assert sorted(theirs.files) == sorted(ours)
    for key in sorted(ours):
        k = int(key.split("_")[0])
        _close(ours[key], theirs[key], f"{OP_CASES[k]} {key}")


# ---------------------------------------------------------------------------
# gluon.rnn layers and cells
# ---------------------------------------------------------------------------

# name: (code making `net` from `rnn`, how it runs, input shape, options). Layers
# run on their begin states and return (outputs, states); cells unroll over NTC
# inputs. Every case runs in prediction mode (DropoutCell, ZoneoutCell: identity).
GLUON_CASES = {
    "lstm_2_layers": ("net = rnn.LSTM(6, num_layers=2, prefix='lstm2_')", "layer", (5, 3, 4), {}),
    "lstm_bidirectional_ntc": (
        "net = rnn.LSTM(4, num_layers=2, bidirectional=True, layout='NTC', prefix='lstmbi_')",
        "layer",
        (3, 5, 4),
        {},
    ),
    "gru_2_layers": ("net = rnn.GRU(5, num_layers=2, prefix='gru2_')", "layer", (5, 3, 4), {}),
    "gru_bidirectional": (
        "net = rnn.GRU(5, bidirectional=True, prefix='grubi_')",
        "layer",
        (5, 3, 4),
        {},
    ),
    "rnn_relu": (
        "net = rnn.RNN(5, num_layers=2, activation='relu', prefix='rnnrelu_')",
        "layer",
        (5, 3, 4),
        {},
    ),
    "rnn_cell": ("net = rnn.RNNCell(5, prefix='rc_')", "cell", (3, 5, 4), {}),
    "lstm_cell_valid_length": (
        "net = rnn.LSTMCell(5, prefix='lc_')",
        "cell",
        (3, 5, 4),
        {"valid": [2, 5, 3]},
    ),
    "gru_cell_steps": ("net = rnn.GRUCell(5, prefix='gc_')", "cell", (3, 5, 4), {"merge": False}),
    "sequential": (
        "net = rnn.SequentialRNNCell(prefix='seq_')\n"
        "with net.name_scope():\n"
        "    net.add(rnn.LSTMCell(5))\n"
        "    net.add(rnn.DropoutCell(0.5))\n"
        "    net.add(rnn.GRUCell(4))",
        "cell",
        (3, 5, 4),
        {},
    ),
    "hybrid_sequential": (
        "net = rnn.HybridSequentialRNNCell(prefix='hseq_')\n"
        "with net.name_scope():\n"
        "    net.add(rnn.RNNCell(5, activation='relu'))\n"
        "    net.add(rnn.LSTMCell(4))",
        "cell",
        (3, 5, 4),
        {"valid": [5, 1, 3]},
    ),
    "bidirectional": (
        "net = rnn.BidirectionalCell(rnn.LSTMCell(4, prefix='bl_'), rnn.GRUCell(3, prefix='br_'))",
        "cell",
        (3, 5, 4),
        {"valid": [4, 5, 2]},
    ),
    "residual": ("net = rnn.ResidualCell(rnn.GRUCell(4, prefix='res_'))", "cell", (3, 5, 4), {}),
    "zoneout": (
        "net = rnn.ZoneoutCell(rnn.LSTMCell(4, prefix='zo_'), 0.3, 0.2)",
        "cell",
        (3, 5, 4),
        {},
    ),
}

# Runs under both libraries: `mx` and `rnn` are MXNet's or symgrad's.
GLUON_RUN = """
def run_case(mx, rnn, code, kind, shape, options, x, params, heads):
    scope = {'rnn': rnn, 'mx': mx}
    exec(code, scope)
    net = scope['net']
    net.initialize()
    data = mx.nd.array(x)
    valid = options.get('valid')
    valid = None if valid is None else mx.nd.array(valid)

    def call():
        if kind == 'layer':
            batch = shape[1] if 'NTC' not in code else shape[0]
            out, states = net(data, net.begin_state(batch))
        else:
            out, states = net.unroll(shape[1], data, layout='NTC',
                                     merge_outputs=options.get('merge', True),
                                     valid_length=valid)
        if isinstance(out, list):
            out = mx.nd.stack(*out, axis=1)
        return [out] + list(states)

    call()  # finish the deferred initialisation
    table = net.collect_params()
    if params is None:
        return {name: p.data().shape for name, p in table.items()}
    for name, p in table.items():
        p.set_data(mx.nd.array(params[name]))
    data.attach_grad()
    with mx.autograd.record(train_mode=False):
        outs = call()
        loss = sum((o * mx.nd.array(h)).sum() for o, h in zip(outs, heads))
    result = {f'out{i}': o.asnumpy() for i, o in enumerate(outs)}
    loss.backward()
    result['grad_data'] = data.grad.asnumpy()
    result.update({f'grad_{name}': p.grad().asnumpy() for name, p in table.items()})
    return result
"""

GLUON_SCRIPT = (
    GLUON_RUN
    + """
import json
import numpy as np
import mxnet as mx
from mxnet.gluon import rnn
cases = json.load(open('cases.json'))
given = np.load('gluon_inputs.npz')
results = {}
for name, (code, kind, shape, options) in cases.items():
    params = {k[len(name) + 7:]: given[k] for k in given.files
              if k.startswith(name + '_param_')}
    heads = [given[f'{name}_head{i}'] for i in range(int(given[name + '_heads']))]
    out = run_case(mx, rnn, code, kind, shape, options, given[name + '_x'], params, heads)
    results.update({f'{name}_{k}': v for k, v in out.items()})
np.savez('gluon_results.npz', **results)
"""
)


def _run_case(*args):
    scope: dict = {}
    exec(GLUON_RUN, scope)
    return scope["run_case"](*args)


def test_gluon_layers_and_cells_match_mxnet(mxnet_python, tmp_path):
    rng = np.random.default_rng(3)
    arrays, ours = {}, {}
    for name, (code, kind, shape, options) in GLUON_CASES.items():
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        shapes = _run_case(mx, rnn, code, kind, shape, options, x, None, None)
        params = {k: rng.uniform(-0.5, 0.5, s).astype(np.float32) for k, s in shapes.items()}
        # the head gradients' shapes come from one forward on these weights
        first = _run_case(
            mx, rnn, code, kind, shape, options, x, params, [np.zeros(1, np.float32)] * 8
        )
        outs = [first[f"out{i}"] for i in range(8) if f"out{i}" in first]
        heads = [rng.uniform(-1, 1, o.shape).astype(np.float32) for o in outs]
        result = _run_case(mx, rnn, code, kind, shape, options, x, params, heads)
        ours.update({f"{name}_{k}": v for k, v in result.items()})
        arrays[name + "_x"] = x
        arrays[name + "_heads"] = np.array(len(heads))
        arrays.update({f"{name}_head{i}": h for i, h in enumerate(heads)})
        arrays.update({f"{name}_param_{k}": v for k, v in params.items()})
    np.savez(tmp_path / "gluon_inputs.npz", **arrays)
    (tmp_path / "cases.json").write_text(json.dumps(GLUON_CASES))
    run_mxnet(mxnet_python, GLUON_SCRIPT, tmp_path)
    theirs = np.load(tmp_path / "gluon_results.npz")
    assert sorted(theirs.files) == sorted(ours), "parameter names or outputs differ"
    for key in sorted(ours):
        _close(ours[key], theirs[key], key)


# ---------------------------------------------------------------------------
# an LSTM language model exported by MXNet
# ---------------------------------------------------------------------------

LM_SCRIPT = """
import numpy as np
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn, rnn


class LanguageModel(gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embedding = nn.Embedding(20, 8)
            self.dropout = nn.Dropout(0.3)
            self.rnn = rnn.LSTM(6, num_layers=2, dropout=0.2, input_size=8)
            self.decoder = nn.Dense(20, flatten=False, in_units=6)

    def hybrid_forward(self, F, tokens, h, c):
        out, states = self.rnn(self.dropout(self.embedding(tokens)), [h, c])
        return self.decoder(out), states[0], states[1]


mx.random.seed(0)
net = LanguageModel(prefix='lm_')
net.initialize(mx.init.Xavier())
net.hybridize()
given = np.load('lm_inputs.npz')
outs = net(mx.nd.array(given['tokens']), mx.nd.array(given['h']), mx.nd.array(given['c']))
net.export('lm')
np.savez('lm_results.npz', **{f'out{i}': o.asnumpy() for i, o in enumerate(outs)})
"""


def test_lstm_language_model_exported_by_mxnet_loads_and_runs(mxnet_python, tmp_path):
    rng = np.random.default_rng(11)
    steps, batch = 7, 3
    inputs = {
        "tokens": rng.integers(0, 20, (steps, batch)).astype(np.float32),
        "h": rng.uniform(-1, 1, (2, batch, 6)).astype(np.float32),
        "c": rng.uniform(-1, 1, (2, batch, 6)).astype(np.float32),
    }
    np.savez(tmp_path / "lm_inputs.npz", **inputs)
    run_mxnet(mxnet_python, LM_SCRIPT, tmp_path)
    theirs = np.load(tmp_path / "lm_results.npz")
    net = mx.gluon.SymbolBlock.imports(
        str(tmp_path / "lm-symbol.json"),
        ["data0", "data1", "data2"],
        str(tmp_path / "lm-0000.params"),
    )
    names = set(net.collect_params().keys())
    assert {
        "lm_lstm0_l0_i2h_weight",
        "lm_lstm0_l1_h2h_bias",
        "lm_embedding0_weight",
        "lm_dense0_weight",
    } <= names
    outs = net(*[mx.nd.array(inputs[k]) for k in ("tokens", "h", "c")])
    assert len(outs) == 3
    for k, out in enumerate(outs):
        _close(out.asnumpy(), theirs[f"out{k}"], f"language model output {k}")


IMPORT_SCRIPT = """
import numpy as np
import mxnet as mx
net = mx.gluon.SymbolBlock.imports('ours-symbol.json', ['data'], 'ours-0000.params')
out = net(mx.nd.array(np.load('tokens.npy')))
np.save('theirs.npy', out.asnumpy())
"""


def test_model_exported_here_runs_in_mxnet(mxnet_python, tmp_path):
    # an embedding, a bidirectional LSTM without given states (zeros made in the
    # graph) and a GRU over its outputs, then a Dense decoder
    class Model(gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.embedding = gluon.nn.Embedding(20, 8)
                self.lstm = rnn.LSTM(6, bidirectional=True, input_size=8)
                self.gru = rnn.GRU(5, num_layers=2, input_size=12, layout="TNC")
                self.decoder = gluon.nn.Dense(20, flatten=False, in_units=5)

        def hybrid_forward(self, F, tokens):
            return self.decoder(self.gru(self.lstm(self.embedding(tokens))))

    net = Model(prefix="m_")
    net.initialize(mx.init.Xavier())
    net.hybridize()
    tokens = np.random.default_rng(5).integers(0, 20, (6, 3)).astype(np.float32)
    ours = net(mx.nd.array(tokens)).asnumpy()
    net.export(str(tmp_path / "ours"))
    np.save(tmp_path / "tokens.npy", tokens)
    run_mxnet(mxnet_python, IMPORT_SCRIPT, tmp_path)
    _close(np.load(tmp_path / "theirs.npy"), ours, "our exported model in MXNet")


STATELESS_SCRIPT = """
import numpy as np
import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn, rnn


class Tagger(gluon.HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embedding = nn.Embedding(20, 8)
            self.rnn = rnn.GRU(6, num_layers=2, bidirectional=True, input_size=8)
            self.decoder = nn.Dense(20, flatten=False, in_units=12)

    def hybrid_forward(self, F, tokens):
        return self.decoder(self.rnn(self.embedding(tokens)))


mx.random.seed(0)
net = Tagger(prefix='tag_')
net.initialize(mx.init.Xavier())
net.hybridize()
out = net(mx.nd.array(np.load('tokens.npy')))
net.export('tagger')
np.save('theirs.npy', out.asnumpy())
"""


def test_mxnet_model_with_zero_begin_states_loads_and_runs(mxnet_python, tmp_path):
    # MXNet writes the layer's begin states as _zeros of batch size 0: their sizes
    # come from the RNN op's data through shape inference
    tokens = np.random.default_rng(4).integers(0, 20, (7, 3)).astype(np.float32)
    np.save(tmp_path / "tokens.npy", tokens)
    run_mxnet(mxnet_python, STATELESS_SCRIPT, tmp_path)
    net = gluon.SymbolBlock.imports(
        str(tmp_path / "tagger-symbol.json"), ["data"], str(tmp_path / "tagger-0000.params")
    )
    for batch in (3, 2):  # the zero states follow the batch size of each call
        out = net(mx.nd.array(tokens[:, :batch]))
        _close(
            out.asnumpy(),
            np.load(tmp_path / "theirs.npy")[:, :batch],
            f"tagger output, batch {batch}",
        )
