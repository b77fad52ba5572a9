"""Named presets and their layering; the README's defaults table comes from the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kogpt2.errors import KoGPT2Error
from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.presets import (CHAT_FORMAT_TOKENS, PRESETS, markdown_table, model_defaults,
                                       preset_values, resolve_config)

README = Path(__file__).resolve().parents[1] / "README.md"

# The table given for the README (`python -m kogpt2.generation.presets --markdown`).
README_TABLE = """\
| field | no preset | `default` | `chat` | `pplm` |
|---|---|---|---|---|
| `max_new_tokens` | 64 | 128 | 64 | 60 |
| `min_new_tokens` | 0 | 16 | 1 | 16 |
| `do_sample` | true | true | true | true |
| `temperature` | 1.0 | 0.8 | 0.8 | 1.0 |
| `top_k` | 0 | 0 | 0 | 10 |
| `top_p` | 1.0 | 0.92 | 0.9 | 1.0 |
| `min_p` | 0.0 | 0.0 | 0.0 | 0.0 |
| `typical_p` | 1.0 | 1.0 | 1.0 | 1.0 |
| `repetition_penalty` | 1.0 | 1.3 | 1.3 | 1.2 |
| `no_repeat_ngram_size` | 0 | 3 | 3 | 0 |
| `num_beams` | 1 | 1 | 1 | 1 |
| `num_return_sequences` | 1 | 1 | 1 | 1 |
| `stop` | – | – | – | – |
| `banned_tokens` | – | – | `<usr>` `<sys>` `<unused1>` `<pad>` `<s>` `<unk>` `<mask>` | – |
| `seed` | random | random | random | random |"""


def test_markdown_table_is_the_readme_table():
    assert markdown_table() == README_TABLE
    assert README_TABLE in README.read_text(encoding="utf-8"), "README's defaults table differs from the code"


def test_default_preset_reads_the_model_generation_config(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "top_p": 0.9, "repetition_penalty": 2.0, "top_k": 50, "min_new_tokens": 5,
         "eos_token_id": 1, "temperature": None}))
    assert model_defaults(tmp_path) == {"do_sample": True, "top_p": 0.9, "repetition_penalty": 2.0, "top_k": 50,
                                        "min_new_tokens": 5}
    cfg = resolve_config("default", tmp_path, top_p=0.5, temperature=None)
    assert (cfg.top_p, cfg.repetition_penalty, cfg.top_k, cfg.min_new_tokens, cfg.temperature) == \
        (0.5, 2.0, 50, 5, 1.0)  # given > model > field defaults; None = not given
    assert resolve_config("default", tmp_path / "nowhere") == SamplingConfig()
    (tmp_path / "generation_config.json").write_text('{"do_sample": false, "top_k": 50}')
    assert "top_k" not in model_defaults(tmp_path)  # HF's default, meaningless without sampling


def test_named_presets_and_errors(tmp_path):
    chat = resolve_config("chat", tmp_path)
    assert chat.banned_tokens == list(CHAT_FORMAT_TOKENS) and chat.min_new_tokens >= 1
    pplm = resolve_config("pplm", None, seed=3)
    assert (pplm.top_k, pplm.repetition_penalty, pplm.seed) == (10, 1.2, 3)
    assert resolve_config("chat", config=SamplingConfig(top_k=4), seed=1) == SamplingConfig(top_k=4, seed=1)
    preset_values("chat")["banned_tokens"].append("x")  # a copy: the table stays intact
    assert PRESETS["chat"]["banned_tokens"] == list(CHAT_FORMAT_TOKENS)
    with pytest.raises(KoGPT2Error, match="unknown sampling preset"):
        resolve_config("poetry")
    with pytest.raises(KoGPT2Error, match="unknown sampling option"):
        resolve_config("chat", top_q=1)
    (tmp_path / "generation_config.json").write_text("{not json")
    with pytest.raises(KoGPT2Error, match="not valid JSON"):
        resolve_config("default", tmp_path)


def test_presets_module_prints_the_table(capsys):
    from kogpt2.generation.presets import main

    main(["--markdown"])
    assert capsys.readouterr().out.strip() == README_TABLE
    assert re.search(r"\| `top_k` \|", README_TABLE)
