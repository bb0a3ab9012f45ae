"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 read from their standard files in a
local ``root`` folder (nothing is downloaded: missing files raise an error naming
them), and images in folders or RecordIO files (decoded with OpenCV or Pillow)."""

from __future__ import annotations

import gzip
import io
import os
import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .... import ndarray as nd
from .... import recordio
from ..dataset import Dataset, RecordFileDataset

__all__ = [
    "MNIST",
    "FashionMNIST",
    "CIFAR10",
    "CIFAR100",
    "ImageFolderDataset",
    "ImageRecordDataset",
    "imdecode",
]


def _require(root: str, names: list[str], what: str) -> list[str]:
    paths = [os.path.join(root, name) for name in names]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(
            f"{what}: missing {', '.join(missing)}. symgrad does not download data sets; "
            f"put the standard files in {root}"
        )
    return paths


class _ImageDataset(Dataset):
    """Images (an NDArray of N x H x W x C uint8) with int32 labels; ``transform``
    is called as ``transform(image, label)``."""

    def __init__(self, root: str, transform: Callable | None):
        self._root = os.path.expanduser(root)
        self._transform = transform
        self._data, self._label = self._get_data()

    def _get_data(self) -> tuple[Any, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, idx: int) -> Any:
        if self._transform is not None:
            return self._transform(self._data[idx], self._label[idx])
        return self._data[idx], self._label[idx]

    def __len__(self) -> int:
        return len(self._label)


class MNIST(_ImageDataset):
    """The MNIST handwritten digits from ``root``'s idx files
    (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, and the
    ``t10k-`` pair for ``train=False``; uncompressed files are read too).
    Samples are ``(28x28x1 uint8 NDArray, int32 label)``."""

    _prefix = {True: "train", False: "t10k"}

    def __init__(
        self,
        root: str = os.path.join("~", ".mxnet", "datasets", "mnist"),
        train: bool = True,
        transform: Callable | None = None,
    ):
        self._train = train
        super().__init__(root, transform)

    def _find(self, name: str) -> str:
        plain = os.path.join(self._root, name)
        if not os.path.exists(plain + ".gz") and os.path.exists(plain):
            return name
        return name + ".gz"

    def _get_data(self) -> tuple[Any, np.ndarray]:
        prefix = self._prefix[self._train]
        names = [
            self._find(f"{prefix}-images-idx3-ubyte"),
            self._find(f"{prefix}-labels-idx1-ubyte"),
        ]
        images, labels = _require(self._root, names, type(self).__name__)
        label = _read_idx(labels, 1).astype(np.int32)
        data = _read_idx(images, 3)
        data = data.reshape(len(label), data.shape[1], data.shape[2], 1)
        return nd.array(data, dtype=data.dtype), label


class FashionMNIST(MNIST):
    """Fashion-MNIST: the same files and format as ``MNIST``, in another root."""

    def __init__(
        self,
        root: str = os.path.join("~", ".mxnet", "datasets", "fashion-mnist"),
        train: bool = True,
        transform: Callable | None = None,
    ):
        super().__init__(root, train, transform)


def _read_idx(path: str, ndim: int) -> np.ndarray:
    """An idx-ubyte file: big-endian magic (2051 images, 2049 labels), sizes, bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fin:
        raw = fin.read()
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != 0x800 + ndim:
        raise ValueError(f"{path}: not an idx file of {ndim} dimensions (magic {magic})")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data for shape {shape}")
    return data.reshape(shape)


class CIFAR10(_ImageDataset):
    """CIFAR-10 from the binary version's files in ``root/cifar-10-batches-bin``
    (``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin``: records of
    one label byte and 3x32x32 image bytes). Samples are ``(32x32x3 uint8
    NDArray, int32 label)``."""

    def __init__(
        self,
        root: str = os.path.join("~", ".mxnet", "datasets", "cifar10"),
        train: bool = True,
        transform: Callable | None = None,
    ):
        self._train = train
        super().__init__(root, transform)

    def _files(self) -> tuple[str, list[str]]:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if self._train else ["test_batch.bin"]
        return "cifar-10-batches-bin", names

    def _label_bytes(self) -> tuple[int, int]:
        return 1, 0

    def _get_data(self) -> tuple[Any, np.ndarray]:
        folder, names = self._files()
        paths = _require(os.path.join(self._root, folder), names, type(self).__name__)
        width, which = self._label_bytes()
        records = np.concatenate(
            [np.fromfile(path, dtype=np.uint8).reshape(-1, width + 3072) for path in paths]
        )
        data = records[:, width:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        data = np.ascontiguousarray(data)
        return nd.array(data, dtype=data.dtype), records[:, which].astype(np.int32)


class CIFAR100(CIFAR10):
    """CIFAR-100 from ``root/cifar-100-binary`` (``train.bin``, ``test.bin``:
    records of a coarse and a fine label byte and 3x32x32 image bytes); labels
    are the coarse ones unless ``fine_label``."""

    def __init__(
        self,
        root: str = os.path.join("~", ".mxnet", "datasets", "cifar100"),
        fine_label: bool = False,
        train: bool = True,
        transform: Callable | None = None,
    ):
        self._fine_label = fine_label
        super().__init__(root, train, transform)

    def _files(self) -> tuple[str, list[str]]:
        return "cifar-100-binary", ["train.bin" if self._train else "test.bin"]

    def _label_bytes(self) -> tuple[int, int]:
        return 2, int(self._fine_label)


def imdecode(buf: bytes, flag: int = 1) -> nd.NDArray:
    """Decode a JPEG/PNG image to an HWC uint8 NDArray in RGB order (``flag=1``,
    three channels) or grayscale (``flag=0``, one channel), as ``mx.image.imdecode``.
    Needs OpenCV or Pillow."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        image = cv2.imdecode(
            np.frombuffer(buf, dtype=np.uint8), cv2.IMREAD_COLOR if flag else cv2.IMREAD_GRAYSCALE
        )
        if image is None:
            raise ValueError("the image could not be decoded")
        image = image[:, :, ::-1] if flag else image[:, :, None]
    else:
        try:
            from PIL import Image
        except ImportError:
            raise ImportError(
                "decoding images needs an image library: install OpenCV "
                "(pip install opencv-python-headless) or Pillow "
                "(pip install Pillow)"
            ) from None
        image = np.asarray(Image.open(io.BytesIO(buf)).convert("RGB" if flag else "L"))
        image = image if flag else image[:, :, None]
    image = np.ascontiguousarray(image)
    return nd.array(image, dtype=np.uint8)


class ImageFolderDataset(Dataset):
    """Images in class folders, ``root/<class>/<image>`` (``.jpg``, ``.jpeg``,
    ``.png``); classes are the sorted folder names (``synsets``), labels their
    indices, ``items`` the ``(path, label)`` pairs. Images are decoded when read
    (see ``imdecode``); ``transform(image, label)`` is applied if given."""

    def __init__(self, root: str, flag: int = 1, transform: Callable | None = None):
        self._root = os.path.expanduser(root)
        self._flag = flag
        self._transform = transform
        self._exts = [".jpg", ".jpeg", ".png"]
        self.synsets: list[str] = []
        self.items: list[tuple[str, int]] = []
        for folder in sorted(os.listdir(self._root)):
            path = os.path.join(self._root, folder)
            if not os.path.isdir(path):
                warnings.warn(f"Ignoring {path}, which is not a directory.", stacklevel=3)
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for name in sorted(os.listdir(path)):
                filename = os.path.join(path, name)
                ext = os.path.splitext(filename)[1]
                if ext.lower() not in self._exts:
                    warnings.warn(
                        f"Ignoring {filename} of type {ext}. Only support {', '.join(self._exts)}",
                        stacklevel=3,
                    )
                    continue
                self.items.append((filename, label))

    def __getitem__(self, idx: int) -> Any:
        path, label = self.items[idx]
        with open(path, "rb") as handle:
            image = imdecode(handle.read(), self._flag)
        if self._transform is not None:
            return self._transform(image, label)
        return image, label

    def __len__(self) -> int:
        return len(self.items)


class ImageRecordDataset(RecordFileDataset):
    """Images packed with ``recordio.pack_img`` in a RecordIO file (with its
    ``.idx``): samples are ``(decoded image, header label)``."""

    def __init__(self, filename: str, flag: int = 1, transform: Callable | None = None):
        super().__init__(filename)
        self._flag = flag
        self._transform = transform

    def __getitem__(self, idx: int) -> Any:
        header, payload = recordio.unpack(super().__getitem__(idx))
        image = imdecode(payload, self._flag)
        if self._transform is not None:
            return self._transform(image, header.label)
        return image, header.label
