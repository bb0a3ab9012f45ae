"""mx.recordio: the on-disk format byte by byte, records that contain the magic
number, indexed access, headers, and the image helpers' error without an image
library (files exchanged with real MXNet are in test_interop_data.py)."""

from __future__ import annotations

import pickle
import struct
import sys

import numpy as np
import pytest

import symgrad as mx

MAGIC = struct.pack("<I", 0xCED7230A)


def test_layout_of_a_plain_record(tmp_path):
    path = tmp_path / "a.rec"
    writer = mx.recordio.MXRecordIO(str(path), "w")
    writer.write(b"hello")
    assert writer.tell() == 16
    writer.close()
    assert path.read_bytes() == MAGIC + struct.pack("<I", 5) + b"hello\0\0\0"


def test_magic_inside_a_payload_is_split_and_joined(tmp_path):
    path = tmp_path / "m.rec"
    payloads = [MAGIC, b"ab" + MAGIC + b"cd", b"abcd" + MAGIC + b"x", MAGIC * 3, b""]
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for payload in payloads:
        writer.write(payload)
    writer.close()
    raw = path.read_bytes()
    # MAGIC alone: a first part of length 0, then a last part of length 0
    assert raw[:16] == MAGIC + struct.pack("<I", 1 << 29) + MAGIC + struct.pack("<I", 3 << 29)
    reader = mx.recordio.MXRecordIO(str(path), "r")
    assert [reader.read() for _ in payloads] == payloads
    assert reader.read() is None
    reader.reset()
    assert reader.read() == payloads[0]


def test_corrupt_and_truncated_files_raise(tmp_path):
    path = tmp_path / "bad.rec"
    path.write_bytes(b"\1\2\3\4\5\6\7\x08")
    with pytest.raises(OSError, match="magic"):
        mx.recordio.MXRecordIO(str(path), "r").read()
    path.write_bytes(MAGIC + struct.pack("<I", 100) + b"short")
    with pytest.raises(OSError, match="ends inside"):
        mx.recordio.MXRecordIO(str(path), "r").read()
    with pytest.raises(ValueError):
        mx.recordio.MXRecordIO(str(path), "a")


def test_indexed_records_and_pickling(tmp_path):
    idx, rec = str(tmp_path / "i.idx"), str(tmp_path / "i.rec")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    for key in (5, 1, 9):
        writer.write_idx(key, f"record {key}".encode())
    writer.close()
    assert (tmp_path / "i.idx").read_text() == "5\t0\n1\t16\n9\t32\n"  # 8 + 8 bytes each
    reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    assert reader.keys == [5, 1, 9]
    assert reader.read_idx(9) == b"record 9"
    assert reader.read_idx(5) == b"record 5"
    assert reader.read() == b"record 1"
    copy = pickle.loads(pickle.dumps(reader))
    assert copy.read_idx(1) == b"record 1"
    named = mx.recordio.MXIndexedRecordIO(idx, rec, "r", key_type=str)
    assert named.keys == ["5", "1", "9"]


def test_pack_and_unpack_headers():
    header = mx.recordio.IRHeader(0, 2.5, 11, 12)
    packed = mx.recordio.pack(header, b"data")
    assert len(packed) == 24 + 4
    assert struct.unpack("IfQQ", packed[:24]) == (0, 2.5, 11, 12)
    unpacked, rest = mx.recordio.unpack(packed)
    assert unpacked == header and rest == b"data"
    labels = np.array([1.0, -2.0, 3.5], dtype=np.float32)
    unpacked, rest = mx.recordio.unpack(mx.recordio.pack((0, labels, 1, 0), b"z"))
    assert unpacked.flag == 3 and rest == b"z"
    np.testing.assert_array_equal(unpacked.label, labels)


def test_image_helpers_name_the_library_to_install(monkeypatch):
    # as if neither OpenCV nor Pillow were installed (a None module fails to import)
    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="opencv-python-headless.*Pillow"):
        mx.recordio.pack_img(mx.recordio.IRHeader(0, 0, 0, 0), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ImportError, match="install"):
        mx.recordio.unpack_img(mx.recordio.pack((0, 0, 0, 0), b""))
