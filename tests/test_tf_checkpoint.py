"""The TensorFlow checkpoint reader (``kogpt2.tf_checkpoint``), checked against TensorFlow's own reading.

The fixtures in ``fixtures/tf/`` were written by TensorFlow itself (``make_tf_fixtures.py``);
``expected.json`` holds TensorFlow's reading of every variable, so no TensorFlow is needed here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kogpt2.errors import KoGPT2Error
from kogpt2.tf_checkpoint import TFCheckpoint, crc32c, masked_crc32c, resolve_prefix

TF_DIR = Path(__file__).resolve().parent / "fixtures" / "tf"
OPENAI = TF_DIR / "openai" / "model.ckpt"
GROVER = TF_DIR / "grover" / "model.ckpt-7"


@pytest.mark.parametrize("rel", sorted(json.loads((TF_DIR / "expected.json").read_text())))
def test_reader_matches_tensorflow(rel):
    expected = json.loads((TF_DIR / "expected.json").read_text())[rel]
    with TFCheckpoint(TF_DIR / rel) as ckpt:
        assert ckpt.names() == sorted(expected)
        for name, e in expected.items():
            value = ckpt.read(name)
            assert list(value.shape) == e["shape"] and str(value.dtype) == e["dtype"], name
            assert hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest() == e["sha256"], name


def test_reader_matches_live_tensorflow():
    tf = pytest.importorskip("tensorflow")  # not a dependency; expected.json covers its absence
    for prefix in (OPENAI, GROVER):
        theirs = tf.train.load_checkpoint(str(prefix))
        with TFCheckpoint(prefix) as ours:
            for name in ours.names():
                np.testing.assert_array_equal(ours.read(name), theirs.get_tensor(name))


def test_reader_reads_all_shards_and_resolves_paths():
    ckpt = TFCheckpoint(TF_DIR / "grover")  # directory -> its ``checkpoint`` state file
    assert ckpt.prefix == GROVER and ckpt.num_shards == 3
    assert {e.shard_id for e in ckpt.entries.values()} == {0, 1, 2}
    assert ckpt.read("global_step") == 7
    for given in (f"{GROVER}.index", f"{GROVER}.data-00001-of-00003", GROVER):
        assert resolve_prefix(given) == GROVER


def test_masked_crc32c_known_value():
    # CRC-32C("123456789") = 0xE3069283 (the standard check value), then LevelDB's mask.
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_corrupt_data_is_detected(tmp_path):
    for f in (TF_DIR / "openai").iterdir():
        shutil.copy(f, tmp_path / f.name)
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    ckpt = TFCheckpoint(tmp_path / "model.ckpt")
    e = ckpt.entries["model/ln_f/g"]
    ckpt.close()
    raw = bytearray(data.read_bytes())
    raw[e.offset] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(KoGPT2Error, match="checksum mismatch in 'model/ln_f/g'"):
        TFCheckpoint(tmp_path / "model.ckpt").read("model/ln_f/g")


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value


def test_ambiguous_or_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(KoGPT2Error, match=r"\.index files: none"):
        resolve_prefix(tmp_path)
    for name in ("a.index", "b.index"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(KoGPT2Error, match="a.index, b.index"):
        resolve_prefix(tmp_path)
