"""--device / --threads: one resolver for every command; CUDA tests skip without a GPU."""

from __future__ import annotations

import argparse

import pytest
import torch

from kogpt2.devices import (DEFAULT_THREADS, add_device_flags, default_threads, inference_dtype, place,
                            resolve_device, set_threads)
from kogpt2.errors import KoGPT2Error

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_flags_and_resolution(monkeypatch):
    p = argparse.ArgumentParser()
    add_device_flags(p)
    args = p.parse_args(["--device", "cpu", "--threads", "1"])
    assert resolve_device(args.device) == torch.device("cpu") and set_threads(args.threads) == 1
    assert torch.get_num_threads() == 1
    assert p.parse_args([]).device == "auto" and p.parse_args([]).threads is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    with pytest.raises(KoGPT2Error, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(KoGPT2Error, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(KoGPT2Error, match="--threads"):
        set_threads(0)
    assert set_threads(None) == default_threads() == min(DEFAULT_THREADS, __import__("os").cpu_count())
    assert inference_dtype(torch.device("cpu")) == torch.float32


def test_cpu_generation_puts_every_tensor_on_the_model_device(tiny_model_dir):
    from kogpt2.generation.api import generate, load

    dec, _ = load(tiny_model_dir, device="cpu")
    assert dec.device == torch.device("cpu") and next(dec.model.parameters()).dtype == torch.float32
    assert generate("나는", model=tiny_model_dir, device="cpu", max_new_tokens=4, seed=0) == \
        generate("나는", model=tiny_model_dir, max_new_tokens=4, seed=0)


def test_cli_rejects_cuda_without_a_gpu(tiny_model_dir, capsys, monkeypatch):
    from kogpt2.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["generate", "나는", "--model", str(tiny_model_dir), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.gpu
@cuda
def test_cuda_generation_runs_in_half_precision_and_matches_cpu_greedy_start(tiny_model_dir):
    from kogpt2.generation.api import generate, load

    dec, _ = load(tiny_model_dir, device="cuda")
    assert dec.device.type == "cuda" and next(dec.model.parameters()).dtype in (torch.bfloat16, torch.float16)
    out = generate(["나는", "오늘 날씨가"], model=dec.model, tokenizer=load(tiny_model_dir)[1], max_new_tokens=8,
                   num_return_sequences=2, seed=1, repetition_penalty=1.3, no_repeat_ngram_size=2)
    assert len(out) == 4
    beams = generate("나는", model=tiny_model_dir, device="cuda", do_sample=False, num_beams=2, max_new_tokens=6)
    assert isinstance(beams, str)
    m = place(load(tiny_model_dir, device="cpu")[0].model, torch.device("cuda"))
    assert next(m.parameters()).device.type == "cuda"


def test_device_names_take_a_gpu_index_and_check_it(monkeypatch):
    from kogpt2.devices import device_name_problem

    assert [device_name_problem(n) for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:12")] == [None] * 5
    assert all("unknown device" in device_name_problem(n) for n in ("tpu", "cuda:", "cuda:x", "cuda0", "CPU"))
    p = argparse.ArgumentParser()
    add_device_flags(p)
    assert p.parse_args(["--device", "cuda:1"]).device == "cuda:1"
    with pytest.raises(SystemExit):
        p.parse_args(["--device", "cuda:one"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(KoGPT2Error, match="has 2 CUDA GPU"):
        resolve_device("cuda:2")
