"""SamplingConfig: validation, sanitisation and its effect on decoding."""

from __future__ import annotations

import math

import pytest
import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.generation.config import TEMPERATURE_FLOOR, SamplingConfig


@pytest.mark.parametrize("bad, words", [
    (dict(temperature=-0.5), "temperature"), (dict(temperature=1e300), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(top_k=-1), "top_k"), (dict(max_new_tokens=0), "max_new_tokens"), (dict(min_p=1.0), "min_p"),
    (dict(repetition_penalty=0.0), "repetition_penalty"), (dict(repetition_penalty=1e-40), r"\[0.1, 10"),
    (dict(repetition_penalty=11.0), "repetition_penalty"), (dict(num_beams=2), "do_sample=False"),
    (dict(do_sample=False, num_return_sequences=2), "identical"), (dict(stop=[""]), "stop"),
    (dict(min_new_tokens=-1), "min_new_tokens"), (dict(seed=-1), "seed"), (dict(seed=2**63), "seed"),
    (dict(temperature=math.nan), "finite"), (dict(top_p=math.inf), "finite"),
    (dict(repetition_penalty=-math.inf), "finite"), (dict(banned_tokens=[""]), "banned_tokens"),
])
def test_config_rejects_bad_values(bad, words):
    with pytest.raises(KoGPT2Error, match=words):
        SamplingConfig(**bad)


def test_config_lists_every_problem_and_unknown_names():
    with pytest.raises(KoGPT2Error) as e:
        SamplingConfig(temperature=-1, top_p=2)
    assert "temperature" in str(e.value) and "top_p" in str(e.value)
    assert e.value.fields == ["temperature", "top_p"]
    with pytest.raises(KoGPT2Error, match="unknown sampling option"):
        SamplingConfig().replace(top_q=0.5)


@pytest.mark.parametrize("temperature", [0.0, 1e-300, 1e-45, TEMPERATURE_FLOOR / 2])
def test_tiny_temperatures_decode_greedily(temperature):
    cfg = SamplingConfig(temperature=temperature)
    assert cfg.do_sample is False
    assert SamplingConfig(temperature=TEMPERATURE_FLOOR).do_sample is True


def test_huge_top_k_keeps_every_token():
    assert SamplingConfig(top_k=2**63).top_k == 0
    assert SamplingConfig(top_k=10**20).top_k == 0
    assert SamplingConfig(top_k=50).top_k == 50


def test_min_new_tokens_is_capped_by_the_maximum():
    assert SamplingConfig(max_new_tokens=8, min_new_tokens=16).eos_blocked_until == 8
    assert SamplingConfig(max_new_tokens=64, min_new_tokens=16).eos_blocked_until == 16


def test_sanitised_values_never_crash_the_loop(tiny_model_dir):
    from kogpt2.generation.api import generate

    for bad in (dict(temperature=1e-300), dict(top_p=1e-300), dict(top_k=2**63), dict(min_p=0.999999),
                dict(temperature=2.0)):
        text = generate("나는", model=tiny_model_dir, max_new_tokens=4, min_new_tokens=4, seed=1, **bad)
        assert isinstance(text, str) and text, bad
    greedy = generate("나는", model=tiny_model_dir, max_new_tokens=6, do_sample=False)
    assert generate("나는", model=tiny_model_dir, max_new_tokens=6, temperature=1e-300, seed=3) == greedy
    assert torch.get_num_threads() >= 1
