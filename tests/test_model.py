"""Building models from presets, counting parameters, and loading model directories."""

from __future__ import annotations

import pytest
import torch

from kogpt2.config import ModelConfig
from kogpt2.errors import KoGPT2Error
from kogpt2.model import build_model, check_model_dir, count_params, hf_config, load_model

TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2}


def test_hf_config_carries_shape_context_dropout_and_special_ids():
    c = hf_config(ModelConfig("mini", vocab_size=600, n_ctx=64, dropout=0.1, bos_token_id=0, eos_token_id=1,
                              pad_token_id=3, overrides=TINY))
    assert (c.n_layer, c.n_embd, c.n_head, c.n_positions, c.vocab_size) == (2, 32, 2, 64, 600)
    assert c.resid_pdrop == c.attn_pdrop == c.embd_pdrop == 0.1 and c.tie_word_embeddings
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (0, 1, 3)


def test_gpt_neo_needs_an_even_number_of_layers():
    with pytest.raises(KoGPT2Error, match="even number of layers"):
        hf_config(ModelConfig("gpt3-mini", vocab_size=600, overrides={"n_layer": 3}))


def test_count_params_counts_tied_embeddings_once():
    model = build_model(ModelConfig("mini", vocab_size=600, n_ctx=64, overrides=TINY))
    assert model.lm_head.weight is model.transformer.wte.weight
    assert count_params(model) == sum(p.numel() for p in model.parameters())  # parameters() dedups too
    assert count_params(model) < sum(v.numel() for v in model.state_dict().values())  # the state dict does not


def test_load_model_round_trips_a_saved_directory_in_the_asked_dtype(tmp_path):
    model = build_model(ModelConfig("mini", vocab_size=600, n_ctx=64, overrides=TINY)).eval()
    model.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    ids = torch.tensor([[1, 5, 9]])
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits)
    assert not again.training and load_model(tmp_path, dtype="bf16").dtype == torch.bfloat16
    with pytest.raises(KoGPT2Error, match="dtype 'fp8' is not one of"):
        load_model(tmp_path, dtype="fp8")
    with pytest.raises(KoGPT2Error, match="unknown device 'gpu'"):
        load_model(tmp_path, device="gpu")


def test_check_model_dir_names_what_is_missing(tmp_path):
    with pytest.raises(KoGPT2Error, match="model directory not found"):
        check_model_dir(tmp_path / "nope")
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(KoGPT2Error, match="model.safetensors"):
        check_model_dir(tmp_path)
