"""Incremental detokenisation: whole characters only, never U+FFFD at the end."""

from __future__ import annotations

import pytest

from kogpt2.generation.detok import IncrementalText, byte_tokens, valid_prefix

EOS = 1


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_valid_prefix_cuts_unfinished_and_invalid_bytes():
    s = "가😀".encode()
    assert valid_prefix(list(s)) == len(s)
    assert valid_prefix(list(s[:-1])) == 3  # the emoji is cut: keep 가
    assert valid_prefix(list(s[:2])) == 0
    assert valid_prefix([0x41, 0x92, 0x41]) == 1  # a stray continuation byte ends the valid part


def test_a_truncated_final_sequence_never_ends_in_replacement_char(tiny_tokenizer):
    ids = ids_of(tiny_tokenizer, "숲 😀 똠얌꿍")
    bytes_ = byte_tokens(tiny_tokenizer)
    cuts = [i for i in range(1, len(ids)) if ids[i - 1] in bytes_ and ids[i] in bytes_]  # inside a byte run
    assert cuts, "the test needs characters split into byte tokens"
    for n in cuts:
        text = IncrementalText(tiny_tokenizer, [EOS], EOS, stream=False)
        chunk, stopped = text.finish(ids[:n])
        assert "\ufffd" not in chunk and not stopped
        assert "숲 😀 똠얌꿍".startswith(chunk)
    lone = IncrementalText(tiny_tokenizer, [EOS], EOS).finish(ids_of(tiny_tokenizer, "숲") + [max(bytes_)])[0]
    assert lone == "숲"  # an invalid last byte is dropped too


def test_streamed_chunks_concatenate_to_the_final_text(tiny_tokenizer):
    ids = ids_of(tiny_tokenizer, "나는 숲 😀 끝. 그만")
    text = IncrementalText(tiny_tokenizer, ids_of(tiny_tokenizer, "시작"), EOS, stop=["그만"])
    chunks = [text.push(ids[:i])[0] for i in range(1, len(ids))]
    rest, stopped = text.finish(ids)
    assert "".join(chunks) + rest == "나는 숲 😀 끝. " and stopped
    assert all("\ufffd" not in c for c in chunks)


@pytest.mark.parametrize("n_new", [3, 5, 7])
def test_generate_cut_by_max_new_tokens_has_no_replacement_char(tiny_tokenizer, n_new):
    from test_generation_loop import ScriptDecoder

    from kogpt2.generation.api import generate

    script = ids_of(tiny_tokenizer, "😀😀") + [EOS]
    dec = ScriptDecoder(script, len(tiny_tokenizer))
    out = generate("", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=n_new)
    assert "\ufffd" not in out and out == "😀" * (n_new // 4)
