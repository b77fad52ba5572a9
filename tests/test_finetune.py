"""The fine-tuning package: the task registry, flags from ``FinetuneConfig``, the shared loop
(early stopping, ``--full``, ``--device``), portable adapters, and the commands end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from kogpt2.finetune import TASKS, FinetuneConfig, Task, finetune, get_task, run_split

QUESTIONS = ["오늘 날씨 어때", "영화 보러 갈까", "배고파", "심심해", "잠이 안 와", "친구가 보고 싶어"]
ANSWERS = ["좋은 생각이에요.", "오늘은 푹 쉬세요.", "맛있는 거 드세요."]
REVIEWS = [("정말 재미있고 감동적인 영화", 1), ("최고의 연기 최고의 영화", 1), ("시간 아까운 최악의 영화", 0),
           ("지루하고 재미없다", 0)]


@pytest.fixture(scope="module")
def chat_csv(tmp_path_factory):
    rows = [f"{q}{k},{ANSWERS[(i + k) % len(ANSWERS)]},{(i + k) % 3}" for k in range(4) for i, q in enumerate(QUESTIONS)]
    path = tmp_path_factory.mktemp("chat") / "chat.csv"
    path.write_text("Q,A,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def nsmc(tmp_path_factory):
    rows = [f"{i}\t{t} {i}\t{y}" for i, (t, y) in enumerate(REVIEWS * 8)]
    path = tmp_path_factory.mktemp("nsmc") / "train.txt"
    path.write_text("id\tdocument\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def tiny(data, out, model, **kw) -> FinetuneConfig:
    base = dict(data=str(data), out=str(out), model=None if model is None else str(model), epochs=1, batch_size=4,
                warmup_steps=1, val_fraction=0.2, eval_interval=3, patience=0, lora_r=2, dtype="fp32",
                max_len=32, device="cpu", progress=False)
    return FinetuneConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- registry and flags


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_is_a_task_with_valid_defaults(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name and task.help
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    assert set(task.defaults) <= fields and set(task.exclude) <= fields
    FinetuneConfig(data="d", out="o", **task.defaults)  # the defaults pass validation


def test_every_config_field_is_a_flag_and_task_defaults_apply():
    from kogpt2.cli import build_parser

    p = build_parser("finetune")
    for name in TASKS:
        args = p.parse_args([name, "--data", "d", "--out", "o"])
        task = get_task(name)
        missing = [f.name for f in dataclasses.fields(FinetuneConfig)
                   if f.name not in {"extra", *task.exclude} and not hasattr(args, f.name)]
        assert not missing, (name, missing)
        assert all(getattr(args, k) == v for k, v in task.defaults.items())
    assert p.parse_args(["chat", "--data", "d", "--out", "o"]).max_len == 128
    assert p.parse_args(["sentiment", "--data", "d", "--out", "o"]).max_len == 64
    args = p.parse_args(["chat", "--data", "d", "--out", "o", "--lora-dropout", "0.2", "--weight-decay", "0.01",
                         "--beta2", "0.98", "--device", "cpu"])
    assert (args.lora_dropout, args.weight_decay, args.beta2, args.device) == (0.2, 0.01, 0.98, "cpu")


def test_unknown_task_and_bad_device_are_clear_errors():
    from kogpt2.errors import KoGPT2Error

    with pytest.raises(KoGPT2Error, match="unknown fine-tuning task 'qa'"):
        get_task("qa")
    with pytest.raises(KoGPT2Error, match="--device: unknown device 'tpu'"):
        FinetuneConfig(data="d", out="o", device="tpu")


def test_run_split_is_seeded_disjoint_and_honours_max_examples():
    tr, va = run_split(100, seed=3, val_fraction=0.1, max_val=5, max_examples=40)
    assert (tr, va) == run_split(100, seed=3, val_fraction=0.1, max_val=5, max_examples=40)
    assert len(va) == 4 and len(tr) == 36 and not set(tr) & set(va) and max(tr + va) < 100
    assert run_split(100, seed=4, val_fraction=0.1, max_val=5, max_examples=40) != (tr, va)


# ----------------------------------------------------------------------------- the loop


def test_patience_stops_early_when_validation_loss_does_not_improve(chat_csv, tiny_model_dir, tmp_path):
    torch.set_num_threads(1)
    # lr so small that validation loss cannot improve by 1e-4: two evaluations without improvement
    meta = finetune("chat", tiny(chat_csv, tmp_path / "out", tiny_model_dir, lr=1e-9, eval_interval=1, patience=2,
                                  epochs=5))
    assert meta["stopped_early"] and meta["steps"] == 2 and meta["best_step"] == 0
    rows = (tmp_path / "out" / "metrics.csv").read_text().splitlines()
    assert len([r for r in rows[1:] if r.split(",")[6]]) == 3  # val_loss at steps 0, 1, 2


def test_an_interrupted_run_resumes_and_ends_as_the_uninterrupted_one(chat_csv, tiny_model_dir, tmp_path,
                                                                       monkeypatch):
    from safetensors.torch import load_file

    from kogpt2.errors import KoGPT2Error
    from kogpt2.finetune.chat import ChatTask
    from kogpt2.finetune.loop import STATE_FILE

    torch.set_num_threads(1)
    settings = dict(epochs=3, lr=1e-2, lora_dropout=0.1)  # dropout: the random state is restored too
    whole = finetune("chat", tiny(chat_csv, tmp_path / "whole", tiny_model_dir, **settings))
    assert not (tmp_path / "whole" / STATE_FILE).exists()  # removed when a run finishes

    real_loss, calls = ChatTask.loss, []

    def dies_at_step_8(self, model, batch):
        calls.append(1)
        if len(calls) == 8:
            raise KeyboardInterrupt
        return real_loss(self, model, batch)

    monkeypatch.setattr(ChatTask, "loss", dies_at_step_8)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        finetune("chat", tiny(chat_csv, cut, tiny_model_dir, **settings))
    monkeypatch.setattr(ChatTask, "loss", real_loss)
    assert (cut / STATE_FILE).is_file()
    with pytest.raises(KoGPT2Error, match="add --resume to continue it"):
        finetune("chat", tiny(chat_csv, cut, tiny_model_dir, **settings))
    with pytest.raises(KoGPT2Error, match="drop --lora-r 4 \\(the run has 2\\), or start a new --out"):
        finetune("chat", tiny(chat_csv, cut, tiny_model_dir, epochs=3, lora_r=4, resume=True))
    from kogpt2.cli import main

    cli = ["finetune", "chat", "--data", str(chat_csv), "--out", str(cut), "--model", str(tiny_model_dir),
           "--resume", "--no-progress", "--device", "cpu", "--threads", "1"]
    assert main([*cli, "--lora-r", "8"]) == 2  # typed, even at its default: it would change the run
    # the command again with --resume and nothing else: every setting (epochs, lr, rank, ...) is the run's own
    assert main(["finetune", "chat", "--data", str(chat_csv), "--out", str(cut), "--model", str(tiny_model_dir),
                 "--resume", "--no-progress", "--device", "cpu", "--threads", "1"]) == 0
    resumed = json.loads((cut / "kogpt2_finetune.json").read_text(encoding="utf-8"))
    assert (resumed["steps"], resumed["best_step"]) == (whole["steps"], whole["best_step"]) == (15, resumed["best_step"])
    assert resumed["best_val_loss"] == pytest.approx(whole["best_val_loss"], abs=1e-6)
    a, b = load_file(tmp_path / "whole" / "adapter_model.safetensors"), load_file(cut / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [r.split(",")[0] for r in (cut / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [r.split(",")[0] for r in (tmp_path / "whole" / "metrics.csv").read_text().splitlines()[1:]]
    assert not (cut / STATE_FILE).exists()
    with pytest.raises(KoGPT2Error, match="holds no unfinished fine-tuning run"):
        finetune("chat", tiny(chat_csv, cut, tiny_model_dir, resume=True))


def test_bundled_base_is_recorded_by_name_and_a_copied_adapter_loads(chat_csv, tiny_model_dir, tmp_path,
                                                                      monkeypatch):
    import kogpt2.paths
    from kogpt2.chat import load_chat_model

    monkeypatch.setattr(kogpt2.paths, "bundled_model_dir", lambda: tiny_model_dir)  # a tiny "bundled" model
    torch.set_num_threads(1)
    out = tmp_path / "adapter"
    meta = finetune("chat", tiny(chat_csv, out, None, max_steps=3, lr=1e-2))
    assert meta["base_model"] == kogpt2.paths.BUNDLED_MODEL
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == kogpt2.paths.BUNDLED_MODEL
    assert str(tmp_path) not in (out / "adapter_config.json").read_text() + (out / "kogpt2_finetune.json").read_text()
    moved = shutil.copytree(out, tmp_path / "elsewhere" / "adapter")
    shutil.rmtree(out)
    model, _ = load_chat_model(None, moved)  # the recorded name resolves to the bundled directory
    base, _ = load_chat_model(tiny_model_dir, None)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)  # the adapter was applied


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_finetune_on_cuda(nsmc, tiny_model_dir, tmp_path):
    from kogpt2.sentiment import load_classifier

    meta = finetune("sentiment", tiny(nsmc, tmp_path / "head", tiny_model_dir, device="cuda", dtype="bf16",
                                      max_steps=4))
    assert meta["steps"] == 4
    assert len(load_classifier(tmp_path / "head", tiny_model_dir).classify(["최고의 영화"])) == 1


# ----------------------------------------------------------------------------- end to end


def kogpt2(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-m", "kogpt2", *args], input=stdin, capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


TINY_FLAGS = ["--epochs", "1", "--batch-size", "4", "--lora-r", "2", "--max-len", "32", "--eval-interval", "3",
              "--dtype", "fp32", "--device", "cpu", "--threads", "1", "--no-progress", "--val-fraction", "0.2"]
FULL_FLAGS = [f for i, f in enumerate(TINY_FLAGS) if "--lora-r" not in TINY_FLAGS[max(i - 1, 0):i + 1]]
"""TINY_FLAGS without the LoRA rank (``--full`` refuses LoRA flags)."""


@pytest.mark.slow
def test_cli_finetune_chat_then_chat_and_eval_chat(chat_csv, tiny_model_dir, tmp_path):
    out = tmp_path / "chat"
    r = kogpt2("finetune", "chat", "--data", str(chat_csv), "--model", str(tiny_model_dir), "--out", str(out),
               *TINY_FLAGS)
    assert "saved to" in r.stdout and (out / "adapter_model.safetensors").is_file()
    r = kogpt2("chat", "--model", str(tiny_model_dir), "--adapter", str(out), "--seed", "0",
               "--max-new-tokens", "5", stdin="안녕\n배고파\n")
    # one answer line per question ("\n" only: a random tiny model may emit control characters that
    # str.splitlines also splits on)
    assert len(r.stdout.rstrip("\n").split("\n")) == 2
    r = kogpt2("eval", "chat", "--data", str(chat_csv), "--adapter", str(out), "--samples", "1", "--device", "cpu")
    assert "validation pairs: base" in r.stdout and "fine-tuned" in r.stdout and "reference:" in r.stdout


def test_eval_chat_scores_on_the_chosen_device(chat_csv, tiny_model_dir, monkeypatch):
    import torch

    import kogpt2.chat
    import kogpt2.devices

    seen = []
    real_place = kogpt2.devices.place
    monkeypatch.setattr(kogpt2.devices, "place", lambda m, d: seen.append(d) or real_place(m, d))
    r = kogpt2.chat.evaluate_chat(chat_csv, tiny_model_dir, max_pairs=2, device=torch.device("cpu"))
    assert seen == [torch.device("cpu")] and r["base_bpc"] > 0
    from kogpt2.cli import build_parser

    assert build_parser("eval").parse_args(["chat", "--data", "x", "--device", "cpu"]).device == "cpu"


@pytest.mark.slow
def test_cli_full_finetune_sentiment_then_classify(nsmc, tiny_model_dir, tmp_path):
    out = tmp_path / "head"
    kogpt2("finetune", "sentiment", "--data", str(nsmc), "--model", str(tiny_model_dir), "--out", str(out), "--full",
           *FULL_FLAGS)
    assert json.loads((out / "kogpt2_finetune.json").read_text())["mode"] == "full"
    assert (out / "model.safetensors").is_file() and not (out / "adapter_model.safetensors").exists()
    r = kogpt2("classify", "정말 재미있는 영화", "시간 아까운 영화", "--head", str(out))
    assert [line.split("\t")[0] in ("positive", "negative") for line in r.stdout.splitlines()] == [True, True]


@pytest.mark.slow
def test_cli_full_finetune_chat_is_a_model_directory(chat_csv, tiny_model_dir, tmp_path):
    out = tmp_path / "chat-full"
    kogpt2("finetune", "chat", "--data", str(chat_csv), "--model", str(tiny_model_dir), "--out", str(out), "--full",
           *FULL_FLAGS)
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["repetition_penalty"] == 1.3 and (out / "model.safetensors").is_file()
    r = kogpt2("chat", "--model", str(out), "--seed", "0", "--max-new-tokens", "5", stdin="안녕\n")
    assert len(r.stdout.splitlines()) == 1
