"""Bits per character: the definition, checked against a hand computation on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from kogpt2.evaluate import _windows, bits_per_char


def hand_bits(model, ids: list[int]) -> float:
    """-log2 p of every token after the first, full context, computed step by step."""
    bits = 0.0
    with torch.no_grad():
        for i in range(1, len(ids)):
            logits = model(input_ids=torch.tensor([ids[:i]])).logits[0, -1].double()
            bits -= torch.log_softmax(logits, -1)[ids[i]].item() / math.log(2)
    return bits


def test_bpc_equals_hand_computation(tiny_model_dir, tiny_tokenizer):
    from kogpt2.model import load_model

    model = load_model(tiny_model_dir)
    docs = ["나는 어두운 숲 속을 거닐고 있다.", "고양이가 잔다.\n비가 그쳤다."]
    eos = tiny_tokenizer.eos_token_id
    want_bits = sum(hand_bits(model, [eos] + tiny_tokenizer.encode(d) + [eos]) for d in docs)
    want_chars = sum(len(d) for d in docs)
    got = bits_per_char(model, tiny_tokenizer, docs, batch_size=2)
    assert got.chars == want_chars and got.documents == 2
    assert got.bpc == pytest.approx(want_bits / want_chars, rel=1e-4)


@pytest.mark.parametrize("n, n_ctx, stride", [(5, 8, 4), (30, 8, 4), (31, 8, 8), (100, 16, 5), (9, 8, 3)])
def test_sliding_windows_score_every_token_once_with_context(n, n_ctx, stride):
    ids = list(range(n))
    scored: list[int] = []
    for window, n_new in _windows(ids, n_ctx, stride):
        assert 2 <= len(window) <= n_ctx + 1 and 1 <= n_new <= len(window) - 1
        targets = window[1:][len(window) - 1 - n_new:]
        if scored:  # later windows keep at least n_ctx - stride tokens of context
            assert len(window) - 1 - n_new >= n_ctx - stride
        scored.extend(targets)
    assert scored == ids[1:]


def test_long_document_uses_windows_and_stays_close(tiny_model_dir, tiny_tokenizer):
    from kogpt2.model import load_model

    model = load_model(tiny_model_dir)
    doc = " ".join(["도서관에서 빌린 소설책을 밤새도록 읽었다."] * 12)  # longer than 64 tokens
    full = bits_per_char(model, tiny_tokenizer, [doc])
    windowed = bits_per_char(model, tiny_tokenizer, [doc], n_ctx=32, stride=16)
    assert full.tokens == windowed.tokens > 64
    assert windowed.bpc == pytest.approx(full.bpc, rel=0.15)


def test_cli_eval_bpc(tiny_model_dir, tmp_path, capsys):
    from kogpt2.cli import main

    f = tmp_path / "t.txt"
    f.write_text("첫 문서의 문장이다.\n<|endoftext|>\n둘째 문서.\n", encoding="utf-8")
    assert main(["eval", "bpc", "--model", str(tiny_model_dir), "--text", str(f)]) == 0
    out = capsys.readouterr().out
    assert "bits/char" in out and "2 documents" in out
    assert main(["eval", "bpc", "--model", str(tmp_path / "missing"), "--text", str(f)]) == 2
    assert "model directory not found" in capsys.readouterr().err
