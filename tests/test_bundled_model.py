"""The model shipped inside the package: present, within budget, loads everywhere, writes Korean."""

from __future__ import annotations

import re

import pytest

from kogpt2.paths import bundled_model_dir

BUDGET_BYTES = 40 * 1024 * 1024
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def test_bundled_model_files_exist_and_fit_the_budget():
    d = bundled_model_dir()
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (d / f).is_file(), f"missing {f} in {d}"
    assert sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) <= BUDGET_BYTES


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
