"""``--init-from``: copy what fits from another checkpoint, remap the vocabulary, grow the context."""

from __future__ import annotations

import pytest
import torch

from kogpt2.config import ModelConfig
from kogpt2.errors import KoGPT2Error
from kogpt2.init_from import init_from, preset_like
from kogpt2.model import build_model

TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2}


def test_init_from_remaps_vocabulary_and_grows_context(tiny_model_dir, tmp_path):
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer, train_tokenizer

    src = load_model(tiny_model_dir)
    src_tok = load_tokenizer(tiny_model_dir)
    # a different tokenizer: other vocabulary size and ids
    new_tok = train_tokenizer(texts=["완전히 다른 문장들로 만든 토크나이저입니다.\n", "숲 속을 걷는다.\n"] * 5,
                              vocab_size=420, min_frequency=1, show_progress=False)
    dst = build_model(ModelConfig("mini", vocab_size=len(new_tok), n_ctx=256, overrides=TINY))
    report = init_from(dst, new_tok, tiny_model_dir)
    assert "token rows kept" in report
    s_wte, d_wte = src.transformer.wte.weight, dst.transformer.wte.weight
    shared = set(src_tok.get_vocab()) & set(new_tok.get_vocab())
    assert len(shared) > 300  # specials + bytes + common characters
    for tok in ["<usr>", "<0x41>", "숲"]:
        torch.testing.assert_close(d_wte[new_tok.convert_tokens_to_ids(tok)], s_wte[src_tok.convert_tokens_to_ids(tok)])
    new_only = [t for t in new_tok.get_vocab() if t not in src_tok.get_vocab()]
    assert new_only
    torch.testing.assert_close(d_wte[new_tok.convert_tokens_to_ids(new_only[0])], s_wte.mean(0))
    # positions: 128 copied, then repeated cyclically up to 256
    s_wpe, d_wpe = src.transformer.wpe.weight, dst.transformer.wpe.weight
    torch.testing.assert_close(d_wpe[:128], s_wpe)
    torch.testing.assert_close(d_wpe[128:], s_wpe)
    torch.testing.assert_close(dst.transformer.h[0].attn.c_attn.weight, src.transformer.h[0].attn.c_attn.weight)
    assert dst.lm_head.weight.data_ptr() == dst.transformer.wte.weight.data_ptr()


def test_preset_like_reproduces_the_source_shape(tiny_model_dir, tmp_path):
    preset, overrides = preset_like(tiny_model_dir)
    cfg = ModelConfig(preset, vocab_size=600, n_ctx=128, overrides=overrides)
    assert (cfg.shape.n_layer, cfg.shape.n_embd, cfg.shape.n_head, cfg.shape.n_positions) == (2, 32, 2, 128)
    assert preset_like(tiny_model_dir, n_ctx=256)[1]["n_positions"] == 256  # grown only when asked
    assert preset_like(tiny_model_dir, n_ctx=64)[1]["n_positions"] == 128
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(KoGPT2Error, match="not GPT-2 or GPT-Neo"):
        preset_like(tmp_path)
