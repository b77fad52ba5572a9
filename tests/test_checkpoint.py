"""Checkpoints: atomic ``step_*`` directories, pruning, trainer-state checks, releases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kogpt2.checkpoint import (default_generation_config, latest_checkpoint, list_checkpoints, load_trainer_state,
                               load_weights, release, save_checkpoint)
from kogpt2.errors import KoGPT2Error


@pytest.fixture()
def tiny(tiny_model_dir):
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def test_save_writes_a_loadable_directory_and_keeps_the_last_k(tiny, tmp_path):
    model, tok = tiny
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model.state_dict(), model.config, tok, default_generation_config(tok),
                        {"step": step}, {"lr": 1e-3}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000002", "step_0000003"]
    last = latest_checkpoint(tmp_path)
    assert load_trainer_state(last)["step"] == 3
    assert json.loads((last / "hyperparameters.json").read_text()) == {"lr": 1e-3}
    weights = load_weights(last)
    assert "lm_head.weight" not in weights  # tied: stored once
    torch.testing.assert_close(weights["transformer.wte.weight"], model.transformer.wte.weight)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    bundled = json.loads((Path(__file__).parents[1] / "src/kogpt2/models/kogpt2-small/generation_config.json")
                         .read_text())
    written = json.loads((last / "generation_config.json").read_text())
    sampling = ("do_sample", "temperature", "top_p", "repetition_penalty", "no_repeat_ngram_size", "max_new_tokens",
                "min_new_tokens")
    assert {k: written.get(k) for k in sampling} == {k: bundled.get(k) for k in sampling}  # a release keeps them


def test_incomplete_and_corrupt_checkpoints_are_clear_errors(tiny, tmp_path):
    model, tok = tiny
    ckpt = save_checkpoint(tmp_path, 1, model.state_dict(), model.config, tok, trainer_state={"step": 1})
    (ckpt / "trainer_state.pt").write_bytes(b"not a pickle")
    with pytest.raises(KoGPT2Error, match="corrupt trainer_state.pt"):
        load_trainer_state(ckpt)
    (ckpt / "trainer_state.pt").unlink()
    with pytest.raises(KoGPT2Error, match="incomplete \\(missing trainer_state.pt\\)"):
        load_trainer_state(ckpt)


def test_release_is_compact_readable_and_carries_the_sampling_defaults(tiny_model_dir, tmp_path):
    out = release(tiny_model_dir, tmp_path / "rel", dtype="bf16")
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["do_sample"] and gen["repetition_penalty"] == 1.3
    assert all(f.stat().st_mode & 0o044 == 0o044 for f in out.iterdir())
    assert not (out / "trainer_state.pt").exists()
    with pytest.raises(KoGPT2Error, match="--dtype 'int4'"):
        release(tiny_model_dir, tmp_path / "x", dtype="int4")
