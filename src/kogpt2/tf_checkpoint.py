"""Read TensorFlow checkpoints (the V2 "tensor bundle" format) without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus ``PREFIX.data-0000S-of-0000N`` shards.
Format facts this reader relies on (TensorFlow's ``core/util/tensor_bundle`` and its copy of
the LevelDB table format in ``core/lib/io``):

* ``.index`` is an immutable sorted string table. Its last 48 bytes are the footer:
  metaindex handle and index handle (each a varint64 offset + varint64 size), zero padding
  to 40 bytes, then the little-endian magic ``0xdb4775248b80fb57``.
* A block is a run of entries ``varint shared, varint non_shared, varint value_len,
  key[shared:] suffix, value``, then ``uint32`` restart offsets and their ``uint32`` count.
  Keys are prefix-compressed against the previous key. Each block is followed by a 5-byte
  trailer: compression type (0 = none; bundles are written uncompressed) and the masked
  CRC-32C of block + type byte.
* The index block maps a separator key to the handle of each data block.
* In the data blocks, key ``""`` holds a ``BundleHeaderProto`` (1 num_shards, 2 endianness);
  every other key is a variable name holding a ``BundleEntryProto`` (1 dtype, 2 shape,
  3 shard_id, 4 offset, 5 size, 6 crc32c as fixed32, 7 slices).
* A tensor's raw bytes are ``data[offset:offset + size]`` in its shard, C order, in the
  header's byte order; ``crc32c`` is the masked CRC-32C of those bytes.

Checked against TensorFlow 2.21 by ``tests/make_tf_fixtures.py``.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from kogpt2.errors import KoGPT2Error

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_LEN = 48
BLOCK_TRAILER_LEN = 5
CRC_CHECK_MAX_BYTES = 1 << 16  # pure-Python CRC-32C runs ~1 MB/s: check only small tensors

# tensorflow/core/framework/types.proto DataType -> numpy (little-endian) dtype.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}
DT_BFLOAT16 = 14
DT_STRING = 7
DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}


# --- CRC-32C (Castagnoli), as LevelDB masks it -------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (slow pure Python; used on index blocks and small tensors)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """LevelDB's masked CRC: rotate right by 15 and add a constant (stored CRCs are masked)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --- varints and protobuf wire format -----------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of a serialized protobuf message (wire types 0, 1, 2, 5)."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, value


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: ``BundleEntryProto`` decoded."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    sliced: bool = False


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, value in _proto_fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = 0
            for f, v in _proto_fields(value):  # type: ignore[arg-type]
                if f == 1:
                    size = v if v < 1 << 63 else v - (1 << 64)  # int64, -1 = unknown
            dims.append(int(size))
    return tuple(dims)


def parse_entry(buf: bytes) -> BundleEntry:
    """Decode a ``BundleEntryProto``."""
    kw: dict = {"dtype": 0, "shape": ()}
    for field, value in _proto_fields(buf):
        if field == 1:
            kw["dtype"] = value
        elif field == 2:
            kw["shape"] = _parse_shape(value)  # type: ignore[arg-type]
        elif field in (3, 4, 5):
            kw[{3: "shard_id", 4: "offset", 5: "size"}[field]] = value
        elif field == 6:
            kw["crc32c"] = value
        elif field == 7:
            kw["sliced"] = True
    return BundleEntry(**kw)


# --- the sorted string table ----------------------------------------------------------------

def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of one table block, undoing the prefix compression of keys."""
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * n_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _read_block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    """The contents of the block at ``offset``, its trailer checked."""
    if offset + size + BLOCK_TRAILER_LEN > len(data):
        raise KoGPT2Error(f"{path} is truncated or corrupt (block at {offset} runs past the end); "
                          "copy the checkpoint again")
    block = data[offset:offset + size]
    kind = data[offset + size]
    (stored_crc,) = struct.unpack_from("<I", data, offset + size + 1)
    if masked_crc32c(block + bytes([kind])) != stored_crc:
        raise KoGPT2Error(f"{path} is corrupt (checksum mismatch in the block at byte {offset}); "
                          "copy the checkpoint again")
    if kind != 0:
        raise KoGPT2Error(f"{path} uses block compression type {kind}; TensorFlow writes checkpoint "
                          "indexes uncompressed. Re-save it with TensorFlow, or load it with "
                          "`pip install tensorflow-cpu` and tf.train.load_checkpoint")
    return block


def read_table(path: Path) -> dict[str, bytes]:
    """All (key, value) records of a LevelDB-format table file such as ``X.index``."""
    data = path.read_bytes()
    if len(data) < FOOTER_LEN or struct.unpack_from("<Q", data, len(data) - 8)[0] != TABLE_MAGIC:
        raise KoGPT2Error(f"{path} is not a TensorFlow checkpoint index (bad footer); give the prefix "
                          "of a TF2-format checkpoint (the files PREFIX.index and PREFIX.data-*)")
    footer = data[-FOOTER_LEN:]
    _meta_off, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    records: dict[str, bytes] = {}
    for _sep, handle in _block_entries(_read_block(data, index_off, index_size, path)):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block_entries(_read_block(data, off, size, path)):
            records[key.decode("utf-8")] = value
    return records


# --- the checkpoint -----------------------------------------------------------------------

def resolve_prefix(path: str | Path) -> Path:
    """Turn what a user gives (prefix, ``.index``/``.data-*`` file, or directory) into a prefix."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if state.is_file():
            m = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(), re.M)
            if m:
                named = Path(m.group(1))
                # NOTE: TF may record an absolute path from the machine that trained; fall back to
                # the same name inside this directory.
                for cand in (named if named.is_absolute() else p / named, p / named.name):
                    if Path(str(cand) + ".index").is_file():
                        return cand
        indexes = sorted(p.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        found = ", ".join(i.name for i in indexes) or "none"
        raise KoGPT2Error(f"cannot tell which checkpoint to read in {p} (.index files: {found}); "
                          "give the prefix, e.g. DIR/model.ckpt-100000")
    m = re.match(r"^(.*)\.(index|data-\d{5}-of-\d{5})$", p.name)
    return p.with_name(m.group(1)) if m else p


class TFCheckpoint:
    """A TensorFlow checkpoint opened for reading, e.g. ``TFCheckpoint("run/model.ckpt-100000")``.

    Args:
        path: the checkpoint prefix (``X`` of ``X.index``), one of its files, or a directory.
        verify: check the CRC-32C of tensors up to ``CRC_CHECK_MAX_BYTES`` (index blocks always).
    """

    def __init__(self, path: str | Path, verify: bool = True) -> None:
        self.prefix = resolve_prefix(path)
        self.verify = verify
        index = Path(f"{self.prefix}.index")
        if not index.is_file():
            raise KoGPT2Error(f"TensorFlow checkpoint index not found: {index}; give the checkpoint "
                              "prefix (e.g. model.ckpt-100000 for model.ckpt-100000.index + .data-*)")
        records = read_table(index)
        header = dict(_proto_fields(records.pop("", b"")))
        self.num_shards = int(header.get(1, 1)) or 1
        self.big_endian = header.get(2, 0) == 1
        self.entries = {name: parse_entry(value) for name, value in records.items()}
        self.shards = [Path(f"{self.prefix}.data-{i:05d}-of-{self.num_shards:05d}")
                       for i in range(self.num_shards)]
        missing = [s.name for s in self.shards if not s.is_file()]
        if missing:
            raise KoGPT2Error(f"checkpoint data file(s) missing beside {index.name}: {', '.join(missing)}; "
                              "copy every PREFIX.data-* file together with PREFIX.index")
        self._maps: dict[int, mmap.mmap] = {}

    def names(self) -> list[str]:
        """Variable names, sorted."""
        return sorted(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def _entry(self, name: str) -> BundleEntry:
        if name not in self.entries:
            raise KoGPT2Error(f"variable {name!r} is not in checkpoint {self.prefix}")
        return self.entries[name]

    def _bytes(self, entry: BundleEntry) -> memoryview:
        if entry.shard_id not in self._maps:
            with open(self.shards[entry.shard_id], "rb") as f:
                self._maps[entry.shard_id] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buf = memoryview(self._maps[entry.shard_id])
        if entry.offset + entry.size > len(buf):
            raise KoGPT2Error(f"{self.shards[entry.shard_id]} is truncated; copy the checkpoint again")
        return buf[entry.offset:entry.offset + entry.size]

    def read(self, name: str) -> np.ndarray:
        """The variable's value as a numpy array (bfloat16 widened to float32)."""
        e = self._entry(name)
        if e.sliced:
            raise KoGPT2Error(f"variable {name!r} is saved as partitioned slices, which this reader does "
                              "not join; re-save the checkpoint without variable partitioning")
        if e.dtype == DT_BFLOAT16:
            dtype = np.dtype(">u2" if self.big_endian else "<u2")
        elif e.dtype in DTYPES:
            dtype = DTYPES[e.dtype].newbyteorder(">") if self.big_endian else DTYPES[e.dtype]
        else:
            kind = DTYPE_NAMES.get(e.dtype, f"DataType {e.dtype}")
            raise KoGPT2Error(f"variable {name!r} has dtype {kind}, which is not a numeric weight")
        raw = self._bytes(e)
        count = int(np.prod(e.shape)) if e.shape else 1
        if count * dtype.itemsize != e.size:
            raise KoGPT2Error(f"checkpoint {self.prefix} is corrupt: {name!r} has {e.size} bytes for "
                              f"shape {list(e.shape)}")
        if self.verify and e.crc32c is not None and e.size <= CRC_CHECK_MAX_BYTES:
            if masked_crc32c(bytes(raw)) != e.crc32c:
                raise KoGPT2Error(f"checkpoint {self.prefix} is corrupt: checksum mismatch in {name!r}; "
                                  "copy the .data files again")
        arr = np.frombuffer(raw, dtype=dtype, count=count).reshape(e.shape)
        if e.dtype == DT_BFLOAT16:
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(dtype.newbyteorder("<"), copy=True)

    def numeric_names(self) -> list[str]:
        """Names of the variables that hold numbers (not strings or resources)."""
        return [n for n in self.names() if self.entries[n].dtype in DTYPES or self.entries[n].dtype == DT_BFLOAT16]

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def __enter__(self) -> "TFCheckpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
