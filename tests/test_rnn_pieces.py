"""The compiled RNN time loops cut into pieces of the batch (one per thread).

The sequences of a batch are independent through the recurrence, so the step
runner runs each piece's whole time loop on a thread of its own
(``lowerings/rnn.py``: ``batch_pieces``); only the parameters' gradient is summed
over the pieces. Here the kernels run on uneven pieces (rows 0-3, 4-7, 8) and must
equal the numpy implementations, for every mode and option the kernels take
(bidirectional, sequence lengths, projections, clipping, dropout masks read by the
backward), taped or not, float64 and float32; and the pieces' sizes follow the
threads, the batch and the work.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_rnn_native import CONFIGS, _attrs, _forward_and_seeds, _inputs, _name

from symgrad_compiler.registry import get_op

UNEVEN = [(0, 4), (4, 8), (8, 9)]


@pytest.fixture(scope="module")
def module():
    """The compiled RNN kernels (one generated module for every RNN lowering)."""
    from symgrad_compiler.backends.numba import disk_cache
    from symgrad_compiler.backends.numba.lowerings import LOWERINGS, module_text

    return disk_cache.load(module_text([LOWERINGS["RNN"]]))


@pytest.fixture
def uneven(monkeypatch):
    """Every RNN kernel call of the step runner cut into the pieces UNEVEN."""
    from symgrad_compiler.backends.numba.lowerings import rnn as lowering

    monkeypatch.setattr(lowering, "batch_pieces", lambda attrs, steps, batch: UNEVEN)
    return lowering


def _close(got, expected, dtype, name):
    rtol, atol = (1e-12, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == dtype and g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_pieces_equal_the_numpy_implementations(module, uneven, config, dtype):
    rng = np.random.default_rng(8)
    attrs = _attrs(config)
    values = _inputs(config, rng, steps=5, batch=9, dtype=dtype)
    outs, seeds = _forward_and_seeds(values, attrs, rng)
    _close(uneven._forward(module.lib_rnn_forward, *values, **attrs), outs, dtype, _name(config))
    expected = get_op("_rnn_grad").impl(*values, *outs, *seeds, **attrs)
    got = uneven._backward(module.lib_rnn_backward, *values, *outs, *seeds, **attrs)
    _close(got, expected, dtype, _name(config))
    # the taped pair: the forward's tape written piece by piece, read the same way
    taped = uneven._forward_taped(module.lib_rnn_forward_taped, *values, **attrs)
    _close(taped[:-1], outs, dtype, _name(config))
    got = uneven._backward_taped(module.lib_rnn_backward_taped, *values, taped[-1], *seeds, **attrs)
    _close(got, expected, dtype, _name(config))


def test_pieces_read_the_dropout_masks_of_their_rows(module, uneven):
    rng = np.random.default_rng(9)
    config = {"mode": "gru", "bidirectional": True}
    attrs = _attrs(config, p=0.4, is_train=True)
    values = _inputs(config, rng, steps=5, batch=9)
    outs, seeds = _forward_and_seeds(values, attrs, rng)
    expected = get_op("_rnn_grad").impl(*values, *outs, *seeds, **attrs)
    got = uneven._backward(module.lib_rnn_backward, *values, *outs, *seeds, **attrs)
    _close(got, expected, np.float64, "dropout")


def test_special_values_stay_in_their_sequences(module, uneven):
    """A NaN, an inf and -0.0 in one sequence's data: the pieces give the numpy
    implementation's values, NaN where it has NaN (the other sequences untouched)."""
    rng = np.random.default_rng(10)
    config = {"mode": "lstm"}
    attrs = _attrs(config)
    values = _inputs(config, rng, steps=5, batch=9, dtype=np.float32)
    values[0][1, 5, 0] = np.nan
    values[0][2, 2, 1] = np.inf
    values[0][0, 8, 2] = -0.0
    outs = get_op("RNN").impl(*values, **attrs)
    got = uneven._forward(module.lib_rnn_forward, *values, **attrs)
    for g, e in zip(got, outs):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=2e-6)
    assert not np.isnan(got[0][:, 6:]).any()


def test_the_batch_is_cut_per_thread_in_blocks_of_four(monkeypatch):
    from symgrad_compiler.backends.numba import threads
    from symgrad_compiler.backends.numba.lowerings import rnn as lowering

    attrs = {"mode": "lstm", "state_size": 200, "projection_size": None, "num_layers": 2}
    attrs["bidirectional"] = False
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "count", lambda: 2)
    assert lowering.batch_pieces(attrs, 35, 32) == [(0, 16), (16, 32)]  # W8
    assert lowering.batch_pieces(attrs, 35, 30) == [(0, 16), (16, 30)]
    assert lowering.batch_pieces(attrs, 35, 7) == [(0, 7)]  # fewer than 2 blocks of 4
    small = attrs | {"state_size": 20}
    assert lowering.batch_pieces(small, 35, 8) == [(0, 8)]  # too little work to hand off
    monkeypatch.setattr(threads, "count", lambda: 3)
    assert lowering.batch_pieces(attrs, 35, 32) == [(0, 12), (12, 24), (24, 32)]
    monkeypatch.setattr(threads, "serial", lambda: True)  # other processes hold the cores
    assert lowering.batch_pieces(attrs, 35, 32) == [(0, 32)]


@pytest.mark.parametrize(
    "config",
    [{"mode": "lstm"}, {"mode": "gru", "bidirectional": True, "lengths": True}],
    ids=_name,
)
def test_the_whole_program_entry_runs_the_pieces_on_the_threads(monkeypatch, config):
    """A program holding an RNN's forward and gradient stays one compiled call, its
    recurrences cut into pieces from object mode (here from any work), and equals
    the interpreter."""
    from test_rnn_native import _program

    import symgrad_compiler as compiler
    from symgrad_compiler import settings
    from symgrad_compiler.backends.numba import threads
    from symgrad_compiler.backends.numba.lowerings import rnn as lowering

    monkeypatch.setattr(lowering, "PARALLEL_WORK", 0)  # written into the entry's source
    monkeypatch.setattr(threads, "serial", lambda: False)
    monkeypatch.setattr(threads, "count", lambda: 2)
    seen = []
    run_pieces = lowering.run_pieces
    monkeypatch.setattr(
        lowering, "run_pieces", lambda *a, **k: seen.append(a[2]) or run_pieces(*a, **k)
    )
    graph, values = _program(config, 6, 9)
    interpreted = compiler.compile_graph(graph, "interpreter")
    with settings.override(compile="sync"):
        executable = compiler.compile_graph(graph, "numba")
        for _ in range(2):
            got = executable(values)
    assert executable._entry is not None
    seen.clear()
    assert executable._entry(values) is not None  # the entry itself, not the step runner
    assert seen == [[(0, 8), (8, 9)]] * 2  # the forward and the gradient
    for g, e in zip(got, interpreted(values)):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
