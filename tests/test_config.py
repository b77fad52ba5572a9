"""Model presets and ``ModelConfig``: stated sizes, overrides, and validation in one error."""

from __future__ import annotations

import pytest

from kogpt2.config import PRESETS, ModelConfig
from kogpt2.errors import KoGPT2Error
from kogpt2.model import build_model, count_params


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_stated_parameter_counts(name):
    p = PRESETS[name]
    model = build_model(ModelConfig(name, vocab_size=p.nominal_vocab), device="meta")
    assert abs(count_params(model) / p.nominal_params - 1) < 0.03
    assert type(model).__name__ == ("GPTNeoForCausalLM" if p.arch == "gpt-neo" else "GPT2LMHeadModel")


def test_gpt3_presets_alternate_global_and_local_attention():
    model = build_model(ModelConfig("gpt3-mini", vocab_size=1000, overrides={"n_layer": 4}), device="meta")
    assert model.config.attention_layers == ["global", "local", "global", "local"]


def test_overrides_change_the_shape_and_n_ctx_the_context():
    cfg = ModelConfig("small", vocab_size=1000, n_ctx=256, overrides={"n_layer": 2, "n_embd": 64, "n_head": 4})
    assert (cfg.shape.n_layer, cfg.shape.n_embd, cfg.shape.n_head) == (2, 64, 4)
    assert cfg.context == 256 and ModelConfig("small").context == PRESETS["small"].n_positions
    assert PRESETS["small"].n_layer == 8  # the table itself is not changed by overrides


def test_every_problem_is_reported_in_one_error():
    with pytest.raises(KoGPT2Error) as e:
        ModelConfig("small", vocab_size=4, n_ctx=4096, dropout=1.5)
    for part in ("n_ctx 4096", "vocab_size 4", "dropout 1.5"):
        assert part in str(e.value), part
    with pytest.raises(KoGPT2Error, match=r"unknown shape overrides \['n_heads'\]; dropout"):
        ModelConfig("small", dropout=1.5, overrides={"n_heads": 3})  # a clear error, not a TypeError
    with pytest.raises(KoGPT2Error, match="unknown preset 'tiny'; choose one of: mini"):
        ModelConfig("tiny")
    with pytest.raises(KoGPT2Error, match="not divisible by n_head"):
        ModelConfig("mini", overrides={"n_head": 7})
