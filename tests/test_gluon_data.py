"""gluon.data and gluon.utils: dataset views, samplers, the DataLoader (in
process, worker processes, threads), the vision datasets read from files this
test writes in the standard formats, transforms against numpy, and the utils'
errors and warnings. Batches against real MXNet are in test_interop_data.py."""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
import time
import warnings

import numpy as np
import pytest

import symgrad as mx

G = mx.gluon.data
T = mx.gluon.data.vision.transforms


# -- datasets and samplers --------------------------------------------------------
def test_dataset_views():
    data = G.SimpleDataset(list(range(10)))
    assert list(data.filter(lambda x: x % 3 == 0)) == [0, 3, 6, 9]
    assert [list(data.shard(3, i)) for i in range(3)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert list(data.take(3)) == [0, 1, 2] and len(data.take(None)) == 10
    assert list(data.sample(G.SequentialSampler(2, start=5))) == [5, 6]
    doubled = data.transform(lambda x: 2 * x)
    assert doubled[4] == 8 and len(doubled) == 10
    eager = data.transform(lambda x: x + 1, lazy=False)
    assert isinstance(eager, G.SimpleDataset) and eager[0] == 1
    pairs = G.ArrayDataset(np.arange(4), np.arange(4) * 10)
    assert pairs.transform(lambda x, y: x + y)[2] == 22
    assert pairs.transform_first(lambda x: -x)[3] == (-3, 30)
    assert data.transform_first(lambda x: -x)[1] == -1


def test_array_dataset():
    data = G.ArrayDataset(mx.nd.array([1.0, 2.0]), mx.nd.array([[1, 2], [3, 4]]), ["a", "b"])
    first = data[1]
    assert isinstance(first[0], np.float32)  # a 1-d NDArray is read as numpy
    assert isinstance(first[1], mx.nd.NDArray) and first[2] == "b"
    assert G.ArrayDataset([7, 8])[1] == 8
    with pytest.raises(AssertionError, match="same length"):
        G.ArrayDataset([1, 2], [1])


def test_samplers():
    np.random.seed(0)
    order = list(G.RandomSampler(6))
    assert sorted(order) == list(range(6)) and len(G.RandomSampler(6)) == 6
    assert list(G.IntervalSampler(5, 2)) == [0, 2, 4, 1, 3]
    assert list(G.IntervalSampler(5, 2, rollover=False)) == [0, 2, 4]
    keep = G.BatchSampler(G.SequentialSampler(7), 3, "keep")
    assert list(keep) == [[0, 1, 2], [3, 4, 5], [6]] and len(keep) == 3
    discard = G.BatchSampler(G.SequentialSampler(7), 3, "discard")
    assert list(discard) == [[0, 1, 2], [3, 4, 5]] and len(discard) == 2
    rollover = G.BatchSampler(G.SequentialSampler(7), 3, "rollover")
    assert list(rollover) == [[0, 1, 2], [3, 4, 5]]
    assert len(rollover) == 2  # 1 carried + 7
    assert list(rollover) == [[6, 0, 1], [2, 3, 4]]
    assert list(rollover) == [[5, 6, 0], [1, 2, 3], [4, 5, 6]]
    wrong = G.BatchSampler(G.SequentialSampler(7), 3, "pad")
    with pytest.raises(ValueError, match="last_batch must be one of"):
        list(wrong)
    assert [len(b) for b in iter(G.BatchSampler(G.SequentialSampler(6), 3, "pad"))] == [3, 3]


def test_record_file_dataset(tmp_path):
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "d.idx"), str(tmp_path / "d.rec"), "w")
    for i in range(4):
        writer.write_idx(i, b"item%d" % i)
    writer.close()
    dataset = G.RecordFileDataset(str(tmp_path / "d.rec"))
    assert len(dataset) == 4 and dataset[2] == b"item2"


# -- DataLoader -------------------------------------------------------------------
X = np.arange(22, dtype=np.float32).reshape(11, 2)
Y = np.arange(11)


def _batches(loader):
    return [[part.asnumpy() for part in batch] for batch in loader]


def test_loader_batches_and_dtypes():
    loader = G.DataLoader(G.ArrayDataset(X, Y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    data, label = batches[2]
    np.testing.assert_array_equal(data.asnumpy(), X[8:])
    assert data.dtype == np.float32 and label.dtype == np.int64
    nd_data = G.DataLoader(
        G.SimpleDataset([mx.nd.ones((2, 3)) * i for i in range(3)]), batch_size=2
    )
    assert [b.shape for b in nd_data] == [(2, 2, 3), (1, 2, 3)]
    custom = G.DataLoader(
        G.ArrayDataset(X, Y),
        batch_size=5,
        last_batch="discard",
        batchify_fn=lambda samples: len(samples),
    )
    assert list(custom) == [5, 5]


def test_loader_argument_errors():
    dataset = G.ArrayDataset(X, Y)
    with pytest.raises(ValueError, match="batch_size must be specified"):
        G.DataLoader(dataset)
    with pytest.raises(ValueError, match="shuffle must not be specified"):
        G.DataLoader(dataset, batch_size=2, shuffle=True, sampler=G.SequentialSampler(11))
    with pytest.raises(ValueError, match="must not be specified if batch_sampler"):
        G.DataLoader(
            dataset, batch_size=2, batch_sampler=G.BatchSampler(G.SequentialSampler(11), 2)
        )
    sampled = G.DataLoader(
        dataset, batch_sampler=G.BatchSampler(G.SequentialSampler(3), 2), pin_memory=True
    )
    assert [len(b[1]) for b in sampled] == [2, 1]


@pytest.mark.parametrize("thread_pool", [False, True])
def test_workers_give_the_same_batches(thread_pool):
    dataset = G.ArrayDataset(X, Y).transform_first(lambda x: x * 3)
    in_process = G.DataLoader(dataset, batch_size=3, last_batch="rollover")
    workers = G.DataLoader(
        dataset,
        batch_size=3,
        last_batch="rollover",
        num_workers=2,
        thread_pool=thread_pool,
        prefetch=1,
    )
    for _ in range(3):  # the carried samples move across epochs the same way
        expected, got = _batches(in_process), _batches(workers)
        assert len(got) == len(expected)
        for batch, reference in zip(got, expected):
            for part, ref in zip(batch, reference):
                assert part.dtype == ref.dtype
                np.testing.assert_array_equal(part, ref)
    custom = G.DataLoader(
        G.ArrayDataset(X, Y),
        batch_size=4,
        num_workers=2,
        thread_pool=thread_pool,
        batchify_fn=lambda s: (mx.nd.array([len(s)]), "tag"),
    )
    assert [(float(n.asscalar()), tag) for n, tag in custom] == [(4, "tag"), (4, "tag"), (3, "tag")]


class _Slow(G.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, idx):
        time.sleep(3)
        return np.float32(idx)


def test_worker_timeout_raises():
    loader = G.DataLoader(_Slow(), batch_size=1, num_workers=1, thread_pool=True, timeout=0.2)
    with pytest.raises(RuntimeError, match="timed out"):
        list(loader)


# -- vision datasets ----------------------------------------------------------------
def _write_idx(path, array, gz=True):
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as out:
        out.write(header + array.astype(np.uint8).tobytes())


def test_mnist_and_fashion_mnist_read_idx_files(tmp_path):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (5, 28, 28))
    labels = rng.randint(0, 10, 5)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:2], gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:2], gz=False)
    train = mx.gluon.data.vision.MNIST(root=str(tmp_path))
    assert len(train) == 5
    image, label = train[3]
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8
    np.testing.assert_array_equal(image.asnumpy()[:, :, 0], images[3])
    assert label == labels[3] and isinstance(label, np.int32)
    test = mx.gluon.data.vision.FashionMNIST(
        root=str(tmp_path), train=False, transform=lambda x, y: (x.shape, y + 100)
    )
    assert test[1] == ((28, 28, 1), labels[1] + 100)
    loader = G.DataLoader(train.transform_first(T.ToTensor()), batch_size=4)
    data, label = next(iter(loader))
    assert data.shape == (4, 1, 28, 28) and label.dtype == np.int32


def test_missing_files_are_named_and_nothing_downloads(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz.*does not download"):
        mx.gluon.data.vision.MNIST(root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        mx.gluon.data.vision.CIFAR10(root=str(tmp_path))


def test_cifar_binary_batches(tmp_path):
    rng = np.random.RandomState(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    expected = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.randint(0, 10, 2)
        images = rng.randint(0, 256, (2, 3, 32, 32))
        records = np.concatenate([labels[:, None], images.reshape(2, -1)], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())
        expected.append((labels, images))
    train = mx.gluon.data.vision.CIFAR10(root=str(tmp_path))
    assert len(train) == 10
    image, label = train[3]
    np.testing.assert_array_equal(image.asnumpy(), expected[1][1][1].transpose(1, 2, 0))
    assert label == expected[1][0][1]
    test = mx.gluon.data.vision.CIFAR10(root=str(tmp_path), train=False)
    assert len(test) == 2 and test[0][1] == expected[5][0][0]

    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    coarse, fine = rng.randint(0, 20, 3), rng.randint(0, 100, 3)
    images = rng.randint(0, 256, (3, 3072))
    records = np.concatenate([coarse[:, None], fine[:, None], images], axis=1)
    (folder / "train.bin").write_bytes(records.astype(np.uint8).tobytes())
    assert mx.gluon.data.vision.CIFAR100(root=str(tmp_path))[2][1] == coarse[2]
    fine_set = mx.gluon.data.vision.CIFAR100(root=str(tmp_path), fine_label=True)
    assert fine_set[2][1] == fine[2]
    np.testing.assert_array_equal(
        fine_set[0][0].asnumpy(), images[0].reshape(3, 32, 32).transpose(1, 2, 0)
    )


# -- transforms ------------------------------------------------------------------------
IMAGE = np.random.RandomState(4).randint(0, 256, (6, 8, 3)).astype(np.uint8)


def test_tensor_transforms_against_numpy():
    image = mx.nd.array(IMAGE, dtype="uint8")
    tensor = T.ToTensor()(image)
    np.testing.assert_allclose(tensor.asnumpy(), IMAGE.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    normalized = T.Normalize((0.1, 0.2, 0.3), (0.5, 0.5, 2.0))(tensor)
    reference = (
        IMAGE.transpose(2, 0, 1) / 255.0 - np.array([0.1, 0.2, 0.3])[:, None, None]
    ) / np.array([0.5, 0.5, 2.0])[:, None, None]
    np.testing.assert_allclose(normalized.asnumpy(), reference, rtol=1e-5, atol=1e-6)
    assert T.Cast("float16")(image).dtype == np.float16
    assert T.Resize((4, 3))(image).shape == (3, 4, 3)
    assert T.Resize(4, keep_ratio=True)(image).shape == (4, 5, 3)
    # resizing to the same size changes nothing
    np.testing.assert_array_equal(T.Resize((8, 6))(image).asnumpy(), IMAGE)
    np.testing.assert_array_equal(T.CenterCrop((4, 2))(image).asnumpy(), IMAGE[2:4, 2:6])
    composed = T.Compose([T.CenterCrop(4), lambda x: x.astype("float32"), T.Cast("float64")])
    np.testing.assert_array_equal(composed(image).asnumpy(), IMAGE[1:5, 2:6])
    assert composed(image).dtype == np.float64


def test_random_transforms():
    image = mx.nd.array(IMAGE, dtype="uint8")
    flips = set()
    for seed in range(8):
        random.seed(seed)
        out = T.RandomFlipLeftRight()(image).asnumpy()
        flipped = np.array_equal(out, IMAGE[:, ::-1])
        assert flipped or np.array_equal(out, IMAGE)
        flips.add(flipped)
    assert flips == {True, False}
    random.seed(0)
    for _ in range(5):
        assert T.RandomResizedCrop((5, 3))(image).shape == (3, 5, 3)
    # no crop of that area fits: the centre crop (resized to the size) is used
    crop = T.RandomResizedCrop(4, scale=(4.0, 4.0))(image)
    np.testing.assert_array_equal(crop.asnumpy(), T.CenterCrop(4)(image).asnumpy())


# -- gluon.utils ---------------------------------------------------------------------
def test_split_and_load_and_clip(recwarn):
    parts = mx.gluon.utils.split_and_load(
        np.arange(10).reshape(5, 2), [mx.cpu(0)] * 2, even_split=False
    )
    assert [p.shape for p in parts] == [(3, 2), (2, 2)] and parts[0].dtype == np.float32
    with pytest.raises(ValueError, match="cannot be evenly split"):
        mx.gluon.utils.split_data(mx.nd.zeros((5,)), 2)
    arrays = [mx.nd.array([[3.0, 0.0]]), mx.nd.array([4.0])]
    norm = mx.gluon.utils.clip_global_norm(arrays, 2.5)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(arrays[0].asnumpy(), [[1.5, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(arrays[1].asnumpy(), [2.0], rtol=1e-6)
    as_array = mx.gluon.utils.clip_global_norm([mx.nd.array([1.0])], 5.0, check_isfinite=False)
    assert isinstance(as_array, mx.nd.NDArray) and as_array.shape == (1,)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mx.gluon.utils.clip_global_norm([mx.nd.array([np.nan, 1.0])], 1.0)
    assert any("nan or inf is detected" in str(w.message) for w in caught)


def test_check_sha1_and_download(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"payload")
    digest = hashlib.sha1(b"payload").hexdigest()
    assert mx.gluon.utils.check_sha1(str(path), digest)
    assert mx.gluon.utils.check_sha1(str(path), digest[:8])
    assert not mx.gluon.utils.check_sha1(str(path), "0" * 40)
    url = "https://example.invalid/data/file.bin"
    assert mx.gluon.utils.download(url, path=str(tmp_path), sha1_hash=digest) == str(path)
    with pytest.raises(RuntimeError, match="does not download"):
        mx.gluon.utils.download(url, path=str(tmp_path / "other.bin"))
    with pytest.raises(RuntimeError, match="sha1"):
        mx.gluon.utils.download(url, path=str(path), sha1_hash="0" * 40)


def test_crop_apply_and_colour_jitters():
    image = mx.nd.array(IMAGE, dtype="uint8")
    np.testing.assert_array_equal(T.CropResize(1, 2, 4, 3)(image).asnumpy(), IMAGE[2:5, 1:5])
    assert T.CropResize(1, 2, 4, 3, size=5)(image).shape == (5, 5, 3)
    assert T.RandomApply(T.Cast("float64"), p=1.0)(image).dtype == np.float64
    assert T.RandomApply([T.Cast("float64")], p=0.0)(image) is image
    x = IMAGE.astype(np.float32)
    floats = mx.nd.array(x)
    random.seed(1)
    alpha = random.uniform(0.5, 1.5)
    random.seed(1)
    np.testing.assert_allclose(T.RandomBrightness(0.5)(floats).asnumpy(), x * alpha, rtol=1e-5)
    random.seed(1)
    gray = (x @ np.array([0.299, 0.587, 0.114])).mean()
    np.testing.assert_allclose(
        T.RandomContrast(0.5)(floats).asnumpy(), alpha * x + (1 - alpha) * gray, rtol=1e-4
    )
    random.seed(1)
    np.testing.assert_allclose(
        T.RandomSaturation(0.5)(floats).asnumpy(),
        alpha * x + (1 - alpha) * 0.114 * x[..., 2:3],
        rtol=1e-4,
    )
    random.seed(2)
    noise = np.array([random.gauss(0, 0.3) for _ in range(3)])
    random.seed(2)
    shift = np.array(
        [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
    ) @ (noise * np.array([55.46, 4.794, 1.148]))
    np.testing.assert_allclose(T.RandomLighting(0.3)(floats).asnumpy(), x + shift, rtol=1e-4)
    bright = T.RandomBrightness(0.9)(image)
    assert bright.dtype == np.uint8  # integers stay integers, clipped to their range
    jitter = T.RandomColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)
    assert jitter(floats).shape == x.shape
    # hue: a rotation in HLS space keeps lightness; grey pixels stay grey
    grey = mx.nd.array(np.full((2, 2, 3), 90.0))
    np.testing.assert_allclose(T.RandomHue(0.5)(grey).asnumpy(), 90.0, rtol=1e-6)
    random.seed(3)
    rotated = T.RandomColorJitter(hue=0.3)(floats).asnumpy()
    lightness = (x.max(axis=-1) + x.min(axis=-1)) / 2
    np.testing.assert_allclose(
        (rotated.max(axis=-1) + rotated.min(axis=-1)) / 2, lightness, atol=1e-3
    )
    assert np.abs(rotated - x).max() > 1


def _fake_cv2():
    """A stand-in for OpenCV whose 'encoding' is the shape then the raw bytes, so
    the plumbing around the codec (BGR order, flags, headers) can be tested."""
    import types

    cv2 = types.ModuleType("cv2")
    cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE = 1, 0
    cv2.IMWRITE_JPEG_QUALITY, cv2.IMWRITE_PNG_COMPRESSION = 1, 16

    def imencode(ext, img, params):
        img = np.asarray(img, dtype=np.uint8)
        img = img if img.ndim == 3 else img[:, :, None]
        return True, np.frombuffer(struct.pack("<3I", *img.shape) + img.tobytes(), np.uint8)

    def imdecode(buf, flag):
        buf = np.asarray(buf, dtype=np.uint8).tobytes()
        shape = struct.unpack("<3I", buf[:12])
        img = np.frombuffer(buf[12:], np.uint8).reshape(shape)
        return img if flag else img[:, :, 0]

    cv2.imencode, cv2.imdecode = imencode, imdecode
    return cv2


def test_image_folder_and_record_datasets(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", _fake_cv2())
    bgr = np.random.RandomState(5).randint(0, 256, (4, 3, 3)).astype(np.uint8)
    for folder, names in {"cats": ["b.png", "a.jpg", "notes.txt"], "dogs": ["c.JPEG"]}.items():
        (tmp_path / "images" / folder).mkdir(parents=True)
        for name in names:
            encoded = mx.recordio.pack_img((0, 0, 0, 0), bgr)[24:]
            (tmp_path / "images" / folder / name).write_bytes(encoded)
    (tmp_path / "images" / "README").write_text("not a class")
    with pytest.warns(UserWarning, match="Ignoring"):
        dataset = mx.gluon.data.vision.ImageFolderDataset(str(tmp_path / "images"))
    assert dataset.synsets == ["cats", "dogs"]
    assert [(p.rsplit("/", 2)[1:], label) for p, label in dataset.items] == [
        (["cats", "a.jpg"], 0),
        (["cats", "b.png"], 0),
        (["dogs", "c.JPEG"], 1),
    ]
    image, label = dataset[2]
    assert label == 1 and image.dtype == np.uint8
    np.testing.assert_array_equal(image.asnumpy(), bgr[:, :, ::-1])  # RGB, as MXNet's
    with pytest.warns(UserWarning, match="Ignoring"):
        gray = mx.gluon.data.vision.ImageFolderDataset(
            str(tmp_path / "images"), flag=0, transform=lambda x, y: (x.shape, y)
        )
    assert gray[0] == ((4, 3, 1), 0)

    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "im.idx"), str(tmp_path / "im.rec"), "w")
    for i in range(3):
        writer.write_idx(i, mx.recordio.pack_img((0, float(i), i, 0), bgr, img_fmt=".png"))
    writer.close()
    records = mx.gluon.data.vision.ImageRecordDataset(str(tmp_path / "im.rec"))
    image, label = records[1]
    assert label == 1.0
    np.testing.assert_array_equal(image.asnumpy(), bgr[:, :, ::-1])
    header, raw = mx.recordio.unpack_img(mx.recordio.pack_img((0, 2.0, 7, 0), bgr))
    assert header.id == 7
    np.testing.assert_array_equal(raw, bgr)  # unpack_img keeps OpenCV's BGR


def test_image_decoding_without_a_library_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="Pillow"):
        mx.gluon.data.vision.datasets.imdecode(b"\x89PNG")


@pytest.mark.parametrize("thread_pool", [False, True])
def test_record_file_dataset_with_workers(tmp_path, thread_pool):
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "w.idx"), str(tmp_path / "w.rec"), "w")
    for i in range(64):
        writer.write_idx(i, mx.recordio.pack((0, float(i), i, 0), bytes([i]) * (i + 1)))
    writer.close()
    dataset = G.RecordFileDataset(str(tmp_path / "w.rec"))
    dataset[5]  # the parent's reader has moved before the workers start
    decoded = dataset.transform(lambda record: np.float32(mx.recordio.unpack(record)[0].label))
    loader = G.DataLoader(decoded, batch_size=4, num_workers=2, thread_pool=thread_pool)
    for _ in range(2):
        labels = np.concatenate([batch.asnumpy() for batch in loader])
        np.testing.assert_array_equal(labels, np.arange(64, dtype=np.float32))
    assert dataset[63] == mx.recordio.pack((0, 63.0, 63, 0), bytes([63]) * 64)


def test_clip_global_norm_of_an_infinite_norm_warns_once():
    """MXNet warns once (a UserWarning) for a NaN or infinite norm; the scaling
    that follows adds no numpy RuntimeWarning."""
    arrays = [mx.nd.array([np.inf, 4.0])]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        norm = mx.gluon.utils.clip_global_norm(arrays, 1.0)
    assert [w.category for w in caught] == [UserWarning]
    assert np.isinf(norm)
    assert np.isnan(arrays[0].asnumpy()[0]) and arrays[0].asnumpy()[1] == 0.0
