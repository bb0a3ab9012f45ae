"""mx.io: NDArrayIter's batches in each last-batch mode against batches cut by
hand from numpy, the iterator protocol, ResizeIter and PrefetchingIter (MXNet's
own batches are compared in test_interop_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as mx

DATA = np.arange(20, dtype=np.float32).reshape(10, 2)
LABEL = np.arange(10, dtype=np.float32)


def batches(it):
    return [(b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad) for b in it]


def test_pad_fills_from_the_start():
    got = batches(mx.io.NDArrayIter(DATA, LABEL, batch_size=4))
    assert [pad for _, _, pad in got] == [0, 0, 2]
    np.testing.assert_array_equal(got[2][0], DATA[[8, 9, 0, 1]])
    np.testing.assert_array_equal(got[2][1], LABEL[[8, 9, 0, 1]])
    # a batch larger than the data goes round it more than once
    ((data, _, pad),) = batches(mx.io.NDArrayIter(DATA, LABEL, batch_size=23))
    np.testing.assert_array_equal(data, DATA[np.arange(23) % 10])
    assert pad == 13


def test_discard_drops_the_incomplete_batch():
    it = mx.io.NDArrayIter(DATA, LABEL, batch_size=4, last_batch_handle="discard")
    for _ in range(2):
        got = batches(it)
        assert len(got) == 2
        np.testing.assert_array_equal(got[1][0], DATA[4:8])
        it.reset()


def test_roll_over_carries_the_rest_into_the_next_epoch():
    it = mx.io.NDArrayIter(DATA, LABEL, batch_size=4, last_batch_handle="roll_over")
    first = batches(it)
    assert len(first) == 2
    it.reset()
    second = batches(it)
    np.testing.assert_array_equal(second[0][0], DATA[[8, 9, 0, 1]])
    assert second[0][2] == 2  # the carried samples
    np.testing.assert_array_equal(second[1][0], DATA[2:6])
    assert [b[2] for b in second[1:]] == [0, 0]  # 2 + 8 samples: nothing left over
    it.reset()
    third = batches(it)
    np.testing.assert_array_equal(third[0][0], DATA[:4])
    assert len(third) == 2
    it.reset()
    it.hard_reset()  # drops the two carried samples
    np.testing.assert_array_equal(batches(it)[0][0], DATA[:4])


def test_names_dicts_and_descriptions():
    it = mx.io.NDArrayIter([DATA, DATA * 2], LABEL, batch_size=5)
    assert [d.name for d in it.provide_data] == ["_0_data", "_1_data"]
    assert it.provide_label[0].name == "softmax_label"
    assert it.provide_data[0].shape == (5, 2) and it.provide_data[0].dtype == np.float32
    it = mx.io.NDArrayIter(
        {"z": DATA, "a": mx.nd.array(DATA * 3)}, batch_size=5, data_name="ignored"
    )
    assert [d.name for d in it.provide_data] == ["a", "z"]  # sorted by name
    batch = next(iter(it))
    np.testing.assert_array_equal(batch.data[0].asnumpy(), DATA[:5] * 3)
    assert batch.label == []
    assert str(batch) == "DataBatch: data shapes: [(5, 2), (5, 2)] label shapes: None"
    assert repr(mx.io.DataDesc("x", (1, 2), "int32", "NC")) == "DataDesc[x,(1, 2),int32,NC]"
    assert mx.io.DataDesc.get_batch_axis("TNC") == 1
    descs = mx.io.DataDesc.get_list([("a", (1,))], [("a", np.int32)])
    assert descs[0].dtype == np.int32
    # another mode name is accepted, as MXNet accepts it, and drops the last batch
    assert len(list(mx.io.NDArrayIter(DATA, batch_size=4, last_batch_handle="keep"))) == 2
    with pytest.raises(TypeError):
        mx.io.NDArrayIter("not data", batch_size=2)


def test_shuffle_is_a_permutation_per_epoch():
    np.random.seed(0)
    it = mx.io.NDArrayIter(DATA, LABEL, batch_size=5, shuffle=True)
    for _ in range(2):
        got = batches(it)
        data = np.concatenate([d for d, _, _ in got])
        label = np.concatenate([lab for _, lab, _ in got])
        np.testing.assert_array_equal(data[:, 0] / 2, label)  # rows stay paired
        assert sorted(label.tolist()) == LABEL.tolist()
        it.reset()


class Countdown(mx.io.DataIter):
    """A DataIter subclass written against the iter_next/getdata protocol."""

    def __init__(self, n):
        super().__init__(batch_size=1)
        self.n = n
        self.i = 0
        self.provide_data = [mx.io.DataDesc("data", (1,))]
        self.provide_label = [mx.io.DataDesc("label", (1,))]

    def reset(self):
        self.i = 0

    def iter_next(self):
        self.i += 1
        return self.i <= self.n

    def getdata(self):
        return [mx.nd.array([self.i])]

    def getlabel(self):
        return [mx.nd.array([-self.i])]

    def getpad(self):
        return 0


def test_subclassed_iterator_and_resize_iter():
    assert [float(b.data[0].asscalar()) for b in Countdown(3)] == [1.0, 2.0, 3.0]
    resized = mx.io.ResizeIter(Countdown(3), 5)
    assert [float(b.data[0].asscalar()) for b in resized] == [1, 2, 3, 1, 2]
    resized.reset()
    assert len(list(resized)) == 5
    short = mx.io.ResizeIter(Countdown(3), 2)
    assert [float(b.label[0].asscalar()) for b in short] == [-1, -2]


def test_prefetching_iter_joins_iterators_and_resets():
    first = mx.io.NDArrayIter(DATA, LABEL, batch_size=4)
    second = mx.io.NDArrayIter(
        DATA * 10, LABEL * 10, batch_size=4, data_name="other", label_name="other_label"
    )
    it = mx.io.PrefetchingIter([first, second], rename_data=[{"data": "x"}, {"other": "y"}])
    assert [d.name for d in it.provide_data] == ["x", "y"]
    assert [d.name for d in it.provide_label] == ["softmax_label", "other_label"]
    for _ in range(2):
        got = list(it)
        assert len(got) == 3 and got[-1].pad == 2
        np.testing.assert_array_equal(got[1].data[1].asnumpy(), DATA[4:8] * 10)
        np.testing.assert_array_equal(got[0].label[0].asnumpy(), LABEL[:4])
        it.reset()
    single = mx.io.PrefetchingIter(mx.io.NDArrayIter(DATA, batch_size=5))
    assert len(list(single)) == 2


def test_checkpoint_and_log_callbacks(tmp_path, caplog, capsys):
    from symgrad.ndarray.serialization import load

    prefix = str(tmp_path / "model")
    checkpoint = mx.callback.do_checkpoint(prefix, period=2)
    net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc")
    arg = {"fc_weight": mx.nd.ones((2, 3)), "fc_bias": mx.nd.zeros((2,))}
    with caplog.at_level("INFO"):
        checkpoint(0, net, arg, {})
        assert not (tmp_path / "model-0001.params").exists()
        checkpoint(1, net, arg, {})
    saved = load(prefix + "-0002.params")
    assert sorted(saved) == ["arg:fc_bias", "arg:fc_weight"]
    np.testing.assert_array_equal(saved["arg:fc_weight"].asnumpy(), np.ones((2, 3)))
    assert mx.sym.load(prefix + "-symbol.json").list_arguments() == net.list_arguments()
    assert f'Saved checkpoint to "{prefix}-0002.params"' in caplog.text

    metric = mx.metric.Accuracy()
    metric.update([mx.nd.array([1, 0])], [mx.nd.array([1, 1])])
    param = mx.callback.BatchEndParam(epoch=3, nbatch=4, eval_metric=metric, locals=None)
    with caplog.at_level("INFO"):
        mx.callback.log_train_metric(2, auto_reset=True)(param)
    assert "Iter[3] Batch[4] Train-accuracy=0.500000" in caplog.text
    assert metric.num_inst == 0
    mx.callback.ProgressBar(total=8, length=8)(param)
    assert capsys.readouterr().out == "[====----] 50.0%\r"


def test_csv_iter_round_batch_and_stale_rows(tmp_path):
    path = tmp_path / "d.csv"
    np.savetxt(path, DATA[:5], delimiter=",")
    it = mx.io.CSVIter(data_csv=str(path), data_shape=(2,), batch_size=2)
    first = batches(it)
    assert [pad for _, _, pad in first] == [0, 0, 1]
    np.testing.assert_array_equal(first[2][0], DATA[[4, 0]])
    assert not first[0][1].any()  # no label file: zeros
    it.reset()
    np.testing.assert_array_equal(batches(it)[0][0], DATA[[1, 2]])  # goes on after the wrap
    plain = mx.io.CSVIter(data_csv=str(path), data_shape=(2,), batch_size=2, round_batch=False)
    last = batches(plain)[-1]
    np.testing.assert_array_equal(last[0], DATA[[4, 3]])  # the previous batch's row stays
    assert last[2] == 1


def test_mnist_iter_reads_idx_files(tmp_path):
    import gzip
    import struct

    images = np.random.RandomState(0).randint(0, 256, (5, 28, 28)).astype(np.uint8)
    with gzip.open(tmp_path / "img.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, 5, 28, 28) + images.tobytes())
    (tmp_path / "lab").write_bytes(struct.pack(">II", 2049, 5) + bytes(range(5)))
    it = mx.io.MNISTIter(
        image=str(tmp_path / "img.gz"), label=str(tmp_path / "lab"), batch_size=2, shuffle=False
    )
    got = batches(it)
    assert len(got) == 2  # the short last batch is dropped
    np.testing.assert_allclose(got[1][0], images[2:4, None] / 256.0)
    assert got[1][1].tolist() == [2, 3]
    shuffled = mx.io.MNISTIter(
        image=str(tmp_path / "img.gz"), label=str(tmp_path / "lab"), batch_size=5, flat=True, seed=1
    )
    ((data, label, _),) = batches(shuffled)
    assert data.shape == (5, 784) and sorted(label.tolist()) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(data, images[label.astype(int)].reshape(5, -1) / 256.0)


def test_dropped_prefetching_iter_stops_its_threads():
    import gc
    import threading
    import time

    before = threading.active_count()
    it = mx.io.PrefetchingIter(mx.io.NDArrayIter(DATA, batch_size=5))
    next(iter(it))
    assert threading.active_count() == before + 1
    del it
    gc.collect()
    for _ in range(100):
        if threading.active_count() == before:
            break
        time.sleep(0.01)
    assert threading.active_count() == before


def test_callback_save_checkpoint_is_the_model_one(tmp_path):
    """``mx.callback.save_checkpoint`` is ``mx.model.save_checkpoint`` (MXNet's
    callback module imports it), ``remove_amp_cast`` included."""
    assert mx.callback.save_checkpoint is mx.model.save_checkpoint
    prefix = str(tmp_path / "ck")
    mx.callback.save_checkpoint(prefix, 2, None, {"w": mx.nd.ones((2,))}, {}, remove_amp_cast=False)
    assert list(mx.nd.load(prefix + "-0002.params")) == ["arg:w"]
