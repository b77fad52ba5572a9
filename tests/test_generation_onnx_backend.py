"""``kogpt2.generation.onnx_backend``: the in-place KV cache and continuous batching on ONNX Runtime.

Rows leaving and joining a running batch must move only the rows that change (no reallocation of
the whole cache, the old cost of every join and leave in the server), and must decode exactly as
they do alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from conftest import ScoreLog  # noqa: E402
from kogpt2.export import export_onnx  # noqa: E402
from kogpt2.generation.api import encode_prompt, load  # noqa: E402
from kogpt2.generation.config import SamplingConfig  # noqa: E402
from kogpt2.generation.loop import DecodeBatch, Row, decode_rows  # noqa: E402
from kogpt2.generation.onnx_backend import KVCache  # noqa: E402


def filled(rows: int, length: int | list[int], capacity: int = 16, row_capacity: int | None = None) -> KVCache:
    """A 2-buffer cache (rows, 2 heads, capacity, 3) whose slot s of row r holds 100 r + s + 1
    (in the row's first ``length`` slots; one length for all rows or one per row)."""
    lengths = [length] * rows if isinstance(length, int) else length
    cache = KVCache.empty(2, rows, 2, capacity, 3, rows=row_capacity)
    for b in cache.storage:
        for r, n in enumerate(lengths):
            b[r, :, :n] = (100 * r + np.arange(1, n + 1))[None, :, None]
    cache.lengths = np.array(lengths)
    return cache


def row_values(cache: KVCache, row: int) -> list[float]:
    return cache.buffers[1][row, 0, :cache.lengths[row], 0].tolist()


def test_rows_leaving_are_compacted_in_place():
    cache = filled(4, [5, 2, 3, 4])
    storage = cache.storage[0]
    kept = cache.select(np.array([0, 2, 3]))
    assert kept.storage[0] is storage and kept.n_rows == 3 and kept.buffers[0].shape[0] == 3
    assert kept.lengths.tolist() == [5, 3, 4] and kept.length == 5
    assert [row_values(kept, r) for r in range(3)] == [[1, 2, 3, 4, 5], [201, 202, 203], [301, 302, 303, 304]]
    assert kept.buffers[0].flags["C_CONTIGUOUS"]


def test_the_last_rows_filling_the_holes_move_in_place():
    cache = filled(5, 3)
    storage = cache.storage[0]
    kept = cache.select(np.array([0, 4, 2]))  # rows 1 and 3 left; row 4 takes slot 1
    assert kept.storage[0] is storage and kept.n_rows == 3
    assert [row_values(kept, r) for r in range(3)] == [[1, 2, 3], [401, 402, 403], [201, 202, 203]]


def test_reordering_with_repeats_copies():
    cache = filled(2, [4, 2])
    beams = cache.select(np.array([1, 1, 0]))
    assert beams.storage[0] is not cache.storage[0] and beams.n_rows == 3 and beams.lengths.tolist() == [2, 2, 4]
    assert [row_values(beams, r) for r in range(3)] == [[101, 102]] * 2 + [[1, 2, 3, 4]]
    swapped = filled(2, 2).select(np.array([1, 0]))  # in place, row 0 would be overwritten before it is read
    assert [row_values(swapped, r) for r in range(2)] == [[101, 102], [1, 2]]


def test_rows_join_into_the_spare_rows_without_padding():
    cache = filled(2, 5, row_capacity=4)
    joined = cache.join(filled(1, 3))
    assert joined.storage[0] is cache.storage[0] and joined.n_rows == 3 and joined.lengths.tolist() == [5, 5, 3]
    assert row_values(joined, 2) == [1, 2, 3] and row_values(joined, 0) == [1, 2, 3, 4, 5]
    longer = joined.join(filled(1, 9))  # a longer row moves nothing already there
    assert longer.storage[0] is cache.storage[0] and longer.length == 9
    assert row_values(longer, 0) == [1, 2, 3, 4, 5] and row_values(longer, 3) == list(range(1, 10))


def test_a_join_without_room_moves_to_larger_arrays():
    cache = filled(2, 5)  # no spare row
    joined = cache.join(filled(1, 5))
    assert joined.storage[0] is not cache.storage[0] and joined.row_capacity >= 4
    assert [row_values(joined, r)[0] for r in range(3)] == [1, 101, 1]


def test_a_left_padded_prefill_is_moved_to_the_first_slots():
    cache = filled(2, 6)
    cache.lengths = np.array([4, 6])  # row 0 was padded by 2 on the left
    aligned = cache.left_aligned(np.array([2, 0]))
    assert row_values(aligned, 0) == [3, 4, 5, 6] and row_values(aligned, 1) == [101, 102, 103, 104, 105, 106]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return export_onnx(tiny_model_dir, tmp_path_factory.mktemp("onnx"))


def _alone(dec, tok, ids, cfg, log: ScoreLog | None = None) -> list[int]:
    rows: list[Row] = []
    for _ in decode_rows(dec, tok, [ids], [cfg], rows_out=rows, stream_text=False,
                         logits_processors=[log] if log else []):
        pass
    return rows[0].tokens


@pytest.mark.slow
def test_rows_joining_and_leaving_an_onnx_batch_decode_as_alone(onnx_dir):
    dec, tok = load(onnx_dir, None, "onnx", "fp32")
    texts = ("하늘이 맑고", "오늘", "나는 어두운 숲 속을 걸었다 그리고 하늘이 맑고 바람이 분다 오늘", "바다")
    lengths = (30, 6, 12, 10)
    prompts = [encode_prompt(tok, p, dec.context, 30) for p in texts]
    assert len(prompts[2]) > max(map(len, prompts[:2])) + 3  # joins wider than the running rows
    assert all(tok.pad_token_id not in p for p in prompts)
    cfgs = [SamplingConfig(max_new_tokens=n, do_sample=i % 2 == 1, seed=i) for i, n in enumerate(lengths)]
    alone, joined = ScoreLog(tok.pad_token_id), ScoreLog(tok.pad_token_id)
    want = [_alone(dec, tok, p, c, alone) for p, c in zip(prompts, cfgs)]
    batch = DecodeBatch(dec, tok, logits_processors=[joined])
    rows = batch.add_rows(prompts[:2], cfgs[:2])
    for _ in range(3):
        batch.step()
    rows += batch.add_rows([prompts[2]], [cfgs[2]])  # a longer prompt: the running rows shift right
    storages, widths = set(), []
    while not batch.done:
        if batch.steps == 7:  # after the second row left
            rows += batch.add_rows([prompts[3]], [cfgs[3]])
        if batch.past is not None:
            storages.add(id(batch.past.storage[0]))
            # the cache holds exactly the columns the mask covers
            assert batch.past.length == batch.mask.shape[1] and batch.past.n_rows == len(batch.rows)
            widths.append(batch.mask.shape[1])
        batch.step()
    assert [r.tokens for r in rows] == want
    # every row saw the scores it sees alone, at every step (the same sequences were scored)
    assert joined.scores.keys() == alone.scores.keys()
    for key, scores in joined.scores.items():
        torch.testing.assert_close(scores, alone.scores[key], atol=1e-4, rtol=1e-4)
    assert len(storages) <= 3  # rows left and joined without a new cache each time
    # the widest row's departure cut the padding it had imposed on the others (Decoder.trim)
    assert any(b < a for a, b in zip(widths, widths[1:]))


@pytest.mark.slow
def test_beam_search_on_onnx_matches_torch(onnx_dir, tiny_model_dir):
    from kogpt2.generation.api import generate

    kwargs = dict(do_sample=False, num_beams=3, num_return_sequences=3, max_new_tokens=10)
    onnx = load(onnx_dir, None, "onnx", "fp32")
    torch_ = load(tiny_model_dir)
    for prompt in ("나는 어두운 숲 속을", "오늘"):
        got = generate(prompt, model=onnx[0], tokenizer=onnx[1], **kwargs)
        want = generate(prompt, model=torch_[0], tokenizer=torch_[1], **kwargs)
        assert got == want and len(set(got)) > 1
