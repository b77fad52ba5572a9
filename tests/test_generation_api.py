"""One engine, many doors: the same seed and settings give the same text from the CLI, the
Python API and the server; each door applies its preset; the bundled model never answers
with the prompt alone."""

from __future__ import annotations

import re
import types

import pytest
import torch

from kogpt2.generation.api import generate, load
from kogpt2.generation.decoder import Decoder

SETTINGS = dict(max_new_tokens=10, temperature=0.9, top_k=20, seed=5)


def test_cli_api_and_server_give_the_same_text(tiny_model_dir, capsys):
    from fastapi.testclient import TestClient

    from kogpt2.cli import main
    from kogpt2.serve import create_app

    api = generate("오늘 날씨가", model=tiny_model_dir, **SETTINGS)
    assert main(["generate", "오늘 날씨가", "--model", str(tiny_model_dir), "--no-stream", "--max-new-tokens", "10",
                 "--temperature", "0.9", "--top-k", "20", "--seed", "5", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "오늘 날씨가" + api + "\n"
    with TestClient(create_app(tiny_model_dir)) as c:
        r = c.post("/v1/completions", json={"prompt": "오늘 날씨가", "max_tokens": 10, "temperature": 0.9,
                                            "top_k": 20, "seed": 5})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == api


def test_default_preset_is_the_model_generation_config(tiny_model_dir, tmp_path):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    plain = generate("나는", model=model, max_new_tokens=12, seed=1)
    (model / "generation_config.json").write_text('{"do_sample": false, "max_new_tokens": 12}')
    greedy = generate("나는", model=model, max_new_tokens=12, do_sample=False)
    assert generate("나는", model=model) == greedy != plain  # the file's values reach kogpt2.generate


class FormatLover(Decoder):
    """Fake model that always wants to emit ``<usr>`` (a chat format token)."""

    def __init__(self, tokenizer):
        self.vocab_size, self.context = len(tokenizer), 128
        self.usr = tokenizer.convert_tokens_to_ids("<usr>")
        self.config = types.SimpleNamespace(_name_or_path="format-lover")

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        logits = torch.full((input_ids.shape[0], self.vocab_size), -10.0)
        logits[:, self.usr] = 10.0
        return logits, None

    def reorder(self, past, index):
        return past


def test_chat_preset_bans_format_tokens_in_chat_session_and_server(tiny_tokenizer):
    from fastapi.testclient import TestClient

    from kogpt2.chat import ChatSession
    from kogpt2.serve import create_app

    dec = FormatLover(tiny_tokenizer)
    assert generate("질문", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=6, seed=1) == ""  # <usr> is not text
    session = ChatSession(dec, tiny_tokenizer, max_new_tokens=6, seed=1)
    assert "".join(session.reply("안녕")) != "" and "<usr>" in session.config.banned_tokens
    with TestClient(create_app(model=dec, tokenizer=tiny_tokenizer)) as c:
        chat = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "안녕"}],
                                                     "max_tokens": 6, "seed": 1}).json()
        plain = c.post("/v1/completions", json={"prompt": "안녕", "max_tokens": 6, "seed": 1}).json()
    assert chat["choices"][0]["message"]["content"] != ""  # the chat preset's ban applied
    assert plain["choices"][0]["text"] == "" and plain["usage"]["completion_tokens"] == 6


def test_pplm_and_adventure_use_the_pplm_preset(tiny_model_dir):
    from kogpt2 import pplm
    from kogpt2.adventure import Settings, Storyteller, Genre

    teller = Storyteller(Settings(model=str(tiny_model_dir), use_pplm=False), Genre.load("fantasy"))
    assert (teller.config.top_k, teller.config.repetition_penalty, teller.config.max_new_tokens) == (10, 1.2, 60)
    decoder, tok = load(tiny_model_dir)
    bow = pplm.load_bow("공포", tok)
    plain = generate("오늘", model=decoder, tokenizer=tok, preset="pplm", max_new_tokens=6, seed=2)
    quiet = pplm.generate("오늘", model=decoder.model, tokenizer=tok, attribute=bow,
                          pplm=pplm.PPLMConfig(stepsize=0.0), max_new_tokens=6, seed=2)
    assert quiet == plain  # unsteered PPLM = the pplm preset through the same engine
    assert plain != generate("오늘", model=decoder, tokenizer=tok, max_new_tokens=6, seed=2)


def test_cli_sampling_flags_come_from_sampling_config():
    from kogpt2.cli import build_parser
    from kogpt2.config_flags import flag_name
    from kogpt2.generation.config import FIELDS

    for command, skipped in (("generate", {"banned_tokens"}), ("chat", {"num_beams", "num_return_sequences"}),
                             ("pplm", {"num_beams", "num_return_sequences"})):
        text = build_parser(command).format_help()
        for field in FIELDS:
            assert (flag_name(field) in text) == (field not in skipped), (command, field)
        assert "--device" in text and "--threads" in text


@pytest.mark.slow
def test_bundled_model_never_answers_with_the_prompt_alone():
    from kogpt2.paths import bundled_model_dir

    if not (bundled_model_dir() / "model.safetensors").is_file():
        pytest.skip("the bundled model is not installed")
    prompt = "나는 어두운 숲 속을 거닐고 있다."
    decoder, tok = load(None, device="cpu")
    from kogpt2.generation.api import config_for, encode_prompt
    from kogpt2.generation.loop import decode_rows

    cfg = config_for(decoder, max_new_tokens=24)
    assert cfg.min_new_tokens >= 10  # from the model's generation_config.json
    ids = encode_prompt(tok, prompt, decoder.context, 24)
    texts = [""] * 20
    for chunks in decode_rows(decoder, tok, [ids] * 20, [cfg.replace(seed=s) for s in range(20)], stream_text=False):
        texts = [t + c for t, c in zip(texts, chunks)]
    counts = [len(re.findall("[가-힣]", t)) for t in texts]
    assert min(counts) >= 10, list(zip(counts, texts))
    assert texts[3] == generate(prompt, model=decoder, tokenizer=tok, max_new_tokens=24, seed=3)  # batch = alone


def test_banned_tokens_a_user_gives_must_be_single_tokens(tiny_model_dir, tiny_tokenizer):
    from kogpt2.errors import KoGPT2Error
    from kogpt2.generation.api import generate

    word = "어두운숲속에서"
    assert word not in tiny_tokenizer.get_vocab()
    with pytest.raises(KoGPT2Error, match=f"'{word}' splits into"):
        generate("나는", model=tiny_model_dir, max_new_tokens=2, banned_tokens=["<usr>", word])
    greedy = generate("나는", model=tiny_model_dir, max_new_tokens=1, do_sample=False)
    first = tiny_tokenizer.tokenize(greedy)[0]
    assert not generate("나는", model=tiny_model_dir, max_new_tokens=1, do_sample=False,
                        banned_tokens=[first]).startswith(greedy)


def test_prompts_and_config_of_the_wrong_type_are_one_clear_error(tiny_model_dir):
    from kogpt2.errors import KoGPT2Error
    from kogpt2.generation.api import generate, stream

    for bad, needle in ((None, "got NoneType"), (5, "got int"), (b"x", "got bytes"), ({"나는": 1}, "got dict"),
                        (["나는", 3], "got a list holding ['int']")):
        with pytest.raises(KoGPT2Error, match=re.escape(f"prompts must be a string or a list of strings, {needle}")):
            generate(bad, model=tiny_model_dir, max_new_tokens=2)
    with pytest.raises(KoGPT2Error, match="stream takes one prompt string"):
        stream(["나는"], model=tiny_model_dir, max_new_tokens=2)
    with pytest.raises(KoGPT2Error, match="config must be a SamplingConfig, got dict"):
        generate("나는", model=tiny_model_dir, config={"max_new_tokens": 2})
    assert generate(("나는", "오늘"), model=tiny_model_dir, max_new_tokens=2, seed=0) == \
        generate(["나는", "오늘"], model=tiny_model_dir, max_new_tokens=2, seed=0)


def test_numpy_integers_are_integers_and_the_top_seed_takes_n(tiny_model_dir):
    import numpy as np

    from kogpt2.errors import KoGPT2Error
    from kogpt2.generation.api import generate
    from kogpt2.generation.config import SamplingConfig

    cfg = SamplingConfig(top_k=np.int64(5), seed=np.int64(3))
    assert (cfg.top_k, cfg.seed) == (5, 3) and type(cfg.seed) is int
    with pytest.raises(KoGPT2Error, match="do_sample must be True or False, got 'no'"):
        SamplingConfig(do_sample="no")
    with pytest.raises(KoGPT2Error, match="stop sequences must be non-empty strings, got \\[5\\]"):
        SamplingConfig(stop=5)
    assert len(generate("나는", model=tiny_model_dir, max_new_tokens=2, seed=2**63 - 1,
                        num_return_sequences=2)) == 2
