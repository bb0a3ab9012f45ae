"""``mx.recordio``: MXNet's RecordIO files (``.rec``, with ``.idx`` index files).

A record is stored as a 4-byte magic number ``0xced7230a``, a 4-byte word
holding a continuation flag (top 3 bits) and the payload length (low 29 bits),
the payload, and zero bytes up to a multiple of 4. A payload containing the
magic number at a 4-aligned offset is written in parts split at those
occurrences (flags 1 = first, 2 = middle, 3 = last part; 0 = whole record), so
a reader can always resynchronise on the magic number; the parts are joined
back with the magic between them. Everything is little-endian.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), 'x.rec')
>>> writer = MXRecordIO(path, 'w')
>>> writer.write(b'hello')
>>> writer.close()
>>> reader = MXRecordIO(path, 'r')
>>> reader.read(), reader.read()
(b'hello', None)
"""

from __future__ import annotations

import numbers
import os
import struct
import threading
from collections import namedtuple
from typing import Any

import numpy as np

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_MAX_LENGTH = 1 << _LENGTH_BITS

__all__ = [
    "MXRecordIO",
    "MXIndexedRecordIO",
    "IRHeader",
    "pack",
    "unpack",
    "pack_img",
    "unpack_img",
]


def _padding(length: int) -> int:
    return (-length) % 4


def _header(flag: int, length: int) -> bytes:
    return _MAGIC_BYTES + struct.pack("<I", (flag << _LENGTH_BITS) | length)


def encode_record(buf: bytes) -> bytes:
    """The bytes of one record holding ``buf``, split at aligned magic numbers."""
    if len(buf) >= _MAX_LENGTH:
        raise ValueError(f"RecordIO only accepts records of less than 2^29 bytes, not {len(buf)}")
    parts = []
    start = 0
    for offset in range(0, len(buf) - 3, 4):
        if buf[offset : offset + 4] == _MAGIC_BYTES:
            parts.append(_header(1 if start == 0 else 2, offset - start) + buf[start:offset])
            start = offset + 4
    last = buf[start:]
    parts.append(_header(3 if start else 0, len(last)) + last + b"\0" * _padding(len(buf)))
    return b"".join(parts)


class MXRecordIO:
    """Read (``flag='r'``) or write (``flag='w'``) records sequentially in the
    RecordIO file ``uri``."""

    def __init__(self, uri: str, flag: str):
        self.uri = str(uri)
        self.flag = flag
        self.handle: Any = None
        self.is_open = False
        self.open()

    def open(self) -> None:
        """Open the file (truncating it in write mode)."""
        if self.flag == "w":
            self.handle = open(self.uri, "wb")  # noqa: SIM115  (closed by close())
            self.writable = True
        elif self.flag == "r":
            self.handle = open(self.uri, "rb")  # noqa: SIM115
            self.writable = False
        else:
            raise ValueError(f"Invalid flag {self.flag}")
        self.is_open = True
        # a forked DataLoader worker must not share the parent's file offset
        self.pid = os.getpid()
        self._lock = threading.Lock()

    def _check_pid(self) -> None:
        """Reopen a reader inherited by another process (after fork)."""
        if self.pid != os.getpid():
            if self.writable:
                raise RuntimeError("cannot use an MXRecordIO writer in another process")
            position = self.handle.tell()
            self.reset()
            self.handle.seek(position)

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """Pickle as the path and flag (a reopened reader starts at the beginning)."""
        if self.is_open and self.writable:
            raise RuntimeError("cannot pickle an MXRecordIO opened for writing")
        state = self.__dict__.copy()
        state["handle"] = None
        state["_lock"] = None
        state["is_open"] = False
        state["_was_open"] = self.is_open
        return state

    def __setstate__(self, state: dict) -> None:
        was_open = state.pop("_was_open", False)
        self.__dict__.update(state)
        if was_open:
            self.open()

    def close(self) -> None:
        """Close the file."""
        if not getattr(self, "is_open", False):
            return
        self.handle.close()
        self.handle = None
        self.is_open = False

    def reset(self) -> None:
        """Close and reopen: a reader starts again from the first record (a writer
        truncates the file)."""
        self.close()
        self.open()

    def write(self, buf: bytes) -> None:
        """Append one record holding the bytes ``buf``."""
        if not self.writable:
            raise AssertionError("MXRecordIO is opened for reading")
        self.handle.write(encode_record(bytes(buf)))

    def read(self) -> bytes | None:
        """The next record's bytes, or None at the end of the file."""
        if self.writable:
            raise AssertionError("MXRecordIO is opened for writing")
        self._check_pid()
        pieces = []
        while True:
            head = self.handle.read(8)
            if not head:
                if pieces:
                    raise OSError(f"{self.uri}: the file ends inside a record")
                return None
            if len(head) < 8:
                raise OSError(f"{self.uri}: truncated record header")
            magic, word = struct.unpack("<II", head)
            if magic != MAGIC:
                raise OSError(
                    f"{self.uri}: invalid RecordIO file (bad magic number "
                    f"{magic:#x} at byte {self.handle.tell() - 8})"
                )
            flag, length = word >> _LENGTH_BITS, word & (_MAX_LENGTH - 1)
            payload = self.handle.read(length + _padding(length))
            if len(payload) < length:
                raise OSError(f"{self.uri}: the file ends inside a record")
            pieces.append(payload[:length])
            if flag in (0, 3):
                return _MAGIC_BYTES.join(pieces)

    def tell(self) -> int:
        """The current byte position (where the next record starts)."""
        return self.handle.tell()


class MXIndexedRecordIO(MXRecordIO):
    """A RecordIO file with random access through an index file of
    ``key<TAB>offset`` lines; ``key_type`` converts the keys read."""

    def __init__(self, idx_path: str, uri: str, flag: str, key_type: type = int):
        self.idx_path = str(idx_path)
        self.idx: dict = {}
        self.keys: list = []
        self.key_type = key_type
        self.fidx: Any = None
        super().__init__(uri, flag)

    def open(self) -> None:
        """Open the record file and the index (reading it in read mode)."""
        super().open()
        self.idx = {}
        self.keys = []
        if self.writable:
            self.fidx = open(self.idx_path, "w")  # noqa: SIM115  (closed by close())
            return
        if not os.path.exists(self.idx_path):
            return
        with open(self.idx_path) as fidx:
            for line in fidx:
                fields = line.strip().split("\t")
                if len(fields) < 2:
                    continue
                key = self.key_type(fields[0])
                self.idx[key] = int(fields[1])
                self.keys.append(key)

    def close(self) -> None:
        """Close the record file and the index."""
        if not getattr(self, "is_open", False):
            return
        super().close()
        if self.fidx is not None:
            self.fidx.close()
            self.fidx = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["fidx"] = None
        return state

    def seek(self, idx: Any) -> None:
        """Move the reader to the record with key ``idx``."""
        if self.writable:
            raise AssertionError("MXIndexedRecordIO is opened for writing")
        self._check_pid()
        self.handle.seek(self.idx[idx])

    def tell(self) -> int:
        """The current byte position."""
        return self.handle.tell()

    def read_idx(self, idx: Any) -> bytes | None:
        """The record with key ``idx`` (safe to call from several threads)."""
        with self._lock:
            self.seek(idx)
            return self.read()

    def write_idx(self, idx: Any, buf: bytes) -> None:
        """Append a record under key ``idx`` and note it in the index."""
        key = self.key_type(idx)
        position = self.tell()
        self.write(buf)
        self.fidx.write(f"{key}\t{position}\n")
        self.idx[key] = position
        self.keys.append(key)


IRHeader = namedtuple("HEADER", ["flag", "label", "id", "id2"])
IRHeader.__doc__ = """The header of an image record: ``flag`` (the number of label
floats stored after the header, 0 for a scalar label), ``label``, ``id``, ``id2``."""

_IR_FORMAT = "IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)


def pack(header: Any, s: bytes) -> bytes:
    """A record string: the ``IRHeader`` (24 bytes), then the label as float32s
    when it is an array, then ``s``.

    >>> header, payload = unpack(pack(IRHeader(0, [1, 2], 7, 0), b'xy'))
    >>> header.flag, header.label.tolist(), header.id, payload
    (2, [1.0, 2.0], 7, b'xy')
    """
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        header = header._replace(flag=0)
    else:
        label = np.asarray(header.label, dtype=np.float32)
        header = header._replace(flag=label.size, label=0)
        s = label.tobytes() + s
    return struct.pack(_IR_FORMAT, *header) + s


def unpack(s: bytes) -> tuple[IRHeader, bytes]:
    """The ``IRHeader`` and payload of a record string made by ``pack`` (an array
    label comes back as float32 numpy)."""
    header = IRHeader(*struct.unpack(_IR_FORMAT, s[:_IR_SIZE]))
    s = s[_IR_SIZE:]
    if header.flag > 0:
        header = header._replace(label=np.frombuffer(s, np.float32, header.flag))
        s = s[header.flag * 4 :]
    return header, s


def _image_library() -> tuple[str, Any]:
    try:
        import cv2

        return "cv2", cv2
    except ImportError:
        pass
    try:
        from PIL import Image

        return "PIL", Image
    except ImportError:
        raise ImportError(
            "pack_img/unpack_img need an image library: install OpenCV "
            "(pip install opencv-python-headless) or Pillow "
            "(pip install Pillow)"
        ) from None


def pack_img(header: Any, img: np.ndarray, quality: int = 95, img_fmt: str = ".jpg") -> bytes:
    """``pack`` an image (an HxW or HxWxC uint8 array, BGR as OpenCV's) encoded as
    JPEG (``quality``) or PNG (``img_fmt='.png'``, ``quality`` the compression)."""
    name, library = _image_library()
    img_fmt = img_fmt.lower()
    if name == "cv2":
        params = (
            [library.IMWRITE_JPEG_QUALITY, quality]
            if img_fmt in (".jpg", ".jpeg")
            else [library.IMWRITE_PNG_COMPRESSION, quality]
        )
        ok, buf = library.imencode(img_fmt, img, params)
        if not ok:
            raise ValueError("failed to encode image")
        return pack(header, buf.tobytes())
    import io

    array = np.asarray(img)
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[:, :, ::-1]  # OpenCV's BGR order to PIL's RGB
    out = io.BytesIO()
    if img_fmt in (".jpg", ".jpeg"):
        library.fromarray(array).save(out, format="JPEG", quality=quality)
    else:
        library.fromarray(array).save(out, format="PNG", compress_level=min(quality, 9))
    return pack(header, out.getvalue())


def unpack_img(s: bytes, iscolor: int = -1) -> tuple[IRHeader, np.ndarray]:
    """``unpack`` a record and decode its image (BGR for colour images, as
    OpenCV's ``imdecode`` with flag ``iscolor``)."""
    header, payload = unpack(s)
    name, library = _image_library()
    if name == "cv2":
        return header, library.imdecode(np.frombuffer(payload, dtype=np.uint8), iscolor)
    import io

    image = library.open(io.BytesIO(payload))
    if iscolor == 1:
        image = image.convert("RGB")
    elif iscolor == 0:
        image = image.convert("L")
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[:, :, ::-1].copy()
    return header, array
