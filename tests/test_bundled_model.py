"""The model shipped inside the package: present, within budget, loads everywhere, writes Korean."""

from __future__ import annotations

import re

import pytest

from kogpt2.paths import bundled_model_dir

BUDGET_BYTES = 60_000_000  # issue 14: the bundled base model <= 60 MB
SMALL_SHA256 = "6ddd1ac2bbecb4568dfb11320c12b472265f582845bc74b2b8d4b1cc725db37d"  # ../shared/models/kogpt2-small/TRAINING.md
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def test_bundled_model_files_exist_and_fit_the_budget():
    d = bundled_model_dir()
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (d / f).is_file(), f"missing {f} in {d}"
    assert sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) <= BUDGET_BYTES


def test_bundled_model_is_kogpt2_small_byte_for_byte():
    import hashlib
    import json

    d = bundled_model_dir()
    assert d.name == "kogpt2-small"
    assert hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest() == SMALL_SHA256
    cfg = json.loads((d / "config.json").read_text())
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["n_positions"]) == (8, 448, 7, 1024)


def test_defaults_load_the_bundled_model_and_tokenizer():
    import kogpt2

    model, tok = kogpt2.load_model(), kogpt2.get_kogpt2_tokenizer()
    assert model.config.vocab_size == len(tok)
    assert tok.eos_token == "</s>" and tok.eos_token_id == 1
    text = "나는 어두운 숲 속을 거닐고 있다."
    assert tok.decode(tok.encode(text)) == text


def test_bundled_model_generates_hangul_with_no_arguments():
    import kogpt2

    out = kogpt2.generate("나는 어두운 숲 속을 거닐고 있다.", max_new_tokens=40, seed=0)
    assert len(HANGUL.findall(out)) >= 5, out


def test_hf_pipeline_loads_the_bundled_directory():
    from transformers import pipeline

    gen = pipeline("text-generation", model=str(bundled_model_dir()))
    out = gen("오늘 아침에", max_new_tokens=20, do_sample=False)[0]["generated_text"]
    assert out.startswith("오늘 아침에") and len(out) > len("오늘 아침에")


@pytest.mark.slow
def test_cli_generate_with_no_flags_prints_korean():
    import subprocess
    import sys

    prompt = "나는 어두운 숲 속을 거닐고 있다."
    r = subprocess.run([sys.executable, "-m", "kogpt2", "generate", prompt, "--max-new-tokens", "40", "--seed", "0"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(prompt)
    assert len(HANGUL.findall(r.stdout[len(prompt):])) >= 5, r.stdout


APP_BUDGET_BYTES = 10 * 1024 * 1024


def shipped_heads_present() -> bool:
    from kogpt2.chat import bundled_chat_adapter_dir
    from kogpt2.sentiment import bundled_head_dir

    return all((d / "kogpt2_finetune.json").is_file() for d in (bundled_chat_adapter_dir(), bundled_head_dir()))


# NOTE: the shipped heads are retrained for kogpt2-small; drop this skip once they are committed again.
needs_heads = pytest.mark.skipif(not shipped_heads_present(), reason="the shipped chat/sentiment heads are not "
                                 "in this checkout (src/kogpt2/models/kogpt2-small-{chat,sentiment})")


@needs_heads
def test_shipped_app_heads_exist_fit_and_belong_to_the_bundled_model():
    from kogpt2.chat import bundled_chat_adapter_dir
    from kogpt2.finetune import model_fingerprint, read_meta
    from kogpt2.model import load_model
    from kogpt2.pplm import discriminator_dir
    from kogpt2.pplm_discrim import Discriminator
    from kogpt2.sentiment import bundled_head_dir

    fingerprint = model_fingerprint(load_model())
    for d, task in ((bundled_chat_adapter_dir(), "chat"), (bundled_head_dir(), "sentiment")):
        assert (d / "adapter_model.safetensors").is_file(), d
        assert sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) <= APP_BUDGET_BYTES
        meta = read_meta(d, task)
        assert meta["base_model"] in ("kogpt2-small", "bundled") and meta["base_fingerprint"] == fingerprint, d
    head = Discriminator.load(discriminator_dir("sentiment"))
    assert head.classes == ["negative", "positive"] and head.meta["base_fingerprint"] == fingerprint


@needs_heads
def test_classify_with_no_flags_separates_plain_cases(capsys):
    from kogpt2.cli import main

    assert main(["classify", "정말 재미있고 감동적인 영화였다", "시간이 아까운 최악의 영화"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == ["positive", "negative"]  # the shipped head separates plain cases


@needs_heads
@pytest.mark.slow
def test_chat_with_no_flags_answers_in_korean():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "kogpt2", "chat", "--seed", "0", "--max-new-tokens", "24"],
                       input="오늘 너무 힘들었어\n", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and len(HANGUL.findall(lines[0])) >= 2, r.stdout


@needs_heads
def test_python_api_reaches_the_shipped_apps():
    import kogpt2

    for name in kogpt2.__all__:
        assert getattr(kogpt2, name) is not None, name
    probs = kogpt2.load_classifier().predict_proba(["배우들 연기가 훌륭하고 정말 감동적이었다", "돈이 아까운 최악의 영화"])
    assert probs[0, 1] > 0.5 > probs[1, 1]  # columns: negative, positive
    session = kogpt2.ChatSession(*kogpt2.load_chat_model(), seed=0, max_new_tokens=16)
    answer = "".join(session.reply("오늘 너무 힘들었어"))
    assert HANGUL.search(answer) and len(session.history) == 1
