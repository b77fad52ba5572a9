"""Pretraining engine: presets, loss goes down, exact resume after SIGKILL, torchrun DDP,
init-from, bad inputs."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import KOREAN_TXT
from kogpt2.config import ModelConfig
from kogpt2.errors import KoGPT2Error
from kogpt2.model import build_model
from kogpt2.train import TrainConfig, train

TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2}


@pytest.fixture(scope="module")
def shards(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """Shards of the fixture sentences (repeated so there are enough windows)."""
    from kogpt2.data import prepare

    tmp = tmp_path_factory.mktemp("shards")
    text = KOREAN_TXT.read_text(encoding="utf-8")
    # Ten variants of the fixture documents so the split has train and val documents.
    corpus = tmp / "corpus.txt"
    corpus.write_text("".join(text.replace("다.", f"다{'!' * i}.") for i in range(10)), encoding="utf-8")
    prepare([corpus], tiny_tokenizer_dir, tmp / "data", val_fraction=0.2, seed=3, progress=False)
    return tmp / "data"


def tiny_cfg(shards: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(shards), out=str(out), preset="mini", n_ctx=32, batch_size=4, grad_accum=2,
                max_steps=20, lr=3e-3, warmup_steps=2, eval_interval=10, eval_tokens=512, save_interval=10,
                sample_interval=0, log_interval=1, dtype="fp32", overrides=TINY, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def read_losses(out: Path) -> dict[int, float]:
    rows = csv.DictReader(open(out / "metrics.csv"))
    return {int(r["step"]): float(r["loss"]) for r in rows if r["loss"]}


def test_training_lowers_loss_and_writes_a_loadable_checkpoint(shards, tmp_path):
    from transformers import AutoModelForCausalLM, pipeline

    last = train(tiny_cfg(shards, tmp_path / "run"))
    losses = read_losses(tmp_path / "run")
    # a random 2-layer model starts near ln(600) = 6.4 nats; 20 steps must take off a nat at least
    assert sum(losses[s] for s in (18, 19, 20)) < sum(losses[s] for s in (1, 2, 3)) - 3 * 0.5
    assert last.name == "step_0000020"
    for f in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "trainer_state.pt"):
        assert (last / f).is_file()
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert any(r["val_bpc"] for r in rows)
    model = AutoModelForCausalLM.from_pretrained(str(last))
    assert model.config.n_layer == 2
    gen = pipeline("text-generation", model=str(last))
    assert isinstance(gen("나는", max_new_tokens=3, min_new_tokens=0, do_sample=False)[0]["generated_text"], str)


def test_keeps_only_last_k_checkpoints(shards, tmp_path):
    train(tiny_cfg(shards, tmp_path / "run", max_steps=8, save_interval=2, eval_interval=100, keep=2))
    assert sorted(p.name for p in (tmp_path / "run").glob("step_*")) == ["step_0000006", "step_0000008"]


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "kogpt2", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _cli_args(shards: Path, out: Path, steps: int) -> list[str]:
    return ["--data", str(shards), "--out", str(out), "--preset", "mini", "--n-ctx", "32", "--batch-size", "4",
            "--grad-accum", "2", "--max-steps", str(steps), "--lr", "3e-3", "--warmup-steps", "2",
            "--eval-interval", "1000", "--save-interval", "5", "--sample-interval", "0", "--log-interval", "1",
            "--dtype", "fp32", "--threads", "1", "--dropout", "0.1", "--n-layer", "2", "--n-embd", "32", "--n-head", "2"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(shards, tmp_path, monkeypatch):
    # The reference: 14 steps uninterrupted (dropout on, so RNG state must be restored too).
    ref = tiny_cfg(shards, tmp_path / "ref", max_steps=14, save_interval=5, eval_interval=1000, dropout=0.1)
    train(ref)
    # The same run, killed with SIGKILL once a checkpoint exists.
    out = tmp_path / "killed"
    proc = _run_cli(_cli_args(shards, out, 14))
    deadline = time.time() + 120
    while not (out / "step_0000010").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "step_0000014").exists()
    train(tiny_cfg(shards, out, max_steps=14, save_interval=5, eval_interval=1000, dropout=0.1, resume=True))
    want, got = read_losses(tmp_path / "ref"), read_losses(out)
    # float tolerance: the killed run was another process (kernel choice may round differently)
    for step in (11, 12, 13, 14):
        assert got[step] == pytest.approx(want[step], rel=2e-4)
    assert sorted(s for s in got if s > 10) == [11, 12, 13, 14]
    # the final weights agree too: far closer than the last four steps moved them (L2 over all tensors;
    # not bitwise: the killed run was another process, and Adam amplifies rounding where gradients are ~0)
    from kogpt2.checkpoint import load_weights

    w_ref, w_got = load_weights(tmp_path / "ref" / "step_0000014"), load_weights(out / "step_0000014")
    w_10 = load_weights(out / "step_0000010")
    moved = sum(float((w_ref[k] - w_10[k]).float().norm() ** 2) for k in w_ref) ** 0.5
    apart = sum(float((w_ref[k] - w_got[k]).float().norm() ** 2) for k in w_ref) ** 0.5
    print(f"resumed vs uninterrupted: {apart:.3g} apart, {moved:.3g} moved in steps 11-14")
    assert apart <= 1e-3 * moved, (apart, moved)  # measured 0 (bitwise); 0.1 when dropout RNG was not restored
    # whatever the killed run logged after its checkpoint was replaced, not duplicated
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "metrics.csv")) if r["loss"]]
    assert steps == sorted(set(steps))


@pytest.mark.slow
def test_torchrun_two_process_gloo_matches_single_process(shards, tmp_path):
    single = tiny_cfg(shards, tmp_path / "single", max_steps=6, eval_interval=6, save_interval=6)
    train(single)
    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys\nfrom kogpt2.train import TrainConfig, train\n"
        f"cfg = TrainConfig(data={str(shards)!r}, out={str(tmp_path / 'ddp')!r}, preset='mini', n_ctx=32, "
        "batch_size=4, grad_accum=2, max_steps=6, lr=3e-3, warmup_steps=2, eval_interval=6, eval_tokens=512, "
        "save_interval=6, sample_interval=0, log_interval=1, dtype='fp32', threads=1, "
        "overrides={'n_layer': 2, 'n_embd': 32, 'n_head': 2})\ntrain(cfg)\n")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29533", str(script)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    want, got = read_losses(tmp_path / "single"), read_losses(tmp_path / "ddp")
    for step in range(1, 7):
        assert got[step] == pytest.approx(want[step], rel=1e-4)
    # rank 0 alone wrote: one metrics file, one checkpoint, and the weights agree with single-process
    from kogpt2.checkpoint import load_weights

    a, b = load_weights(tmp_path / "single" / "step_0000006"), load_weights(tmp_path / "ddp" / "step_0000006")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)


def test_cli_init_from_trains(shards, tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    from kogpt2.cli import main

    def init_from(out: str, *flags: str):
        assert main(["train", "--data", str(shards), "--out", str(tmp_path / out), "--init-from", str(tiny_model_dir),
                     "--batch-size", "2", "--max-steps", "1", "--save-interval", "1", "--sample-interval", "0",
                     "--dtype", "fp32", "--threads", "1", *flags]) == 0
        return AutoConfig.from_pretrained(str(tmp_path / out / "step_0000001"))

    cfg = init_from("r", "--n-ctx", "64", "--eval-interval", "1")
    assert (cfg.n_layer, cfg.n_embd, cfg.n_positions) == (2, 32, 64)
    # no --n-ctx: the source's 128 positions (not 2048); a shape flag changes the source's shape
    cfg = init_from("r3", "--n-layer", "3", "--eval-interval", "0")
    assert (cfg.n_layer, cfg.n_embd, cfg.n_positions) == (3, 32, 128)


@pytest.mark.parametrize("args, message", [
    (["--preset", "nope"], "unknown preset"),
    (["--preset", "mini", "--n-ctx", "4096"], "above preset"),
    (["--preset", "mini", "--dtype", "fp8"], "--dtype"),
    ([], "--preset is required"),
])
def test_bad_options_exit_2_with_one_line(shards, tmp_path, capsys, args, message):
    from kogpt2.cli import main

    rc = main(["train", "--data", str(shards), "--out", str(tmp_path / "x"), "--max-steps", "1", *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_missing_shards_and_tokenizer_mismatch(shards, tmp_path, tiny_model_dir, capsys):
    import shutil

    from kogpt2.cli import main

    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x"), "--preset", "mini"]) == 2
    assert "meta.json" in capsys.readouterr().err
    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    from kogpt2.tokenizer import train_tokenizer

    train_tokenizer(texts=["다른 토크나이저\n"] * 3, vocab_size=400, min_frequency=1, out_dir=bad / "tokenizer",
                    show_progress=False)
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "y"), "--preset", "mini"]) == 2
    assert "tokenizer hash" in capsys.readouterr().err


def test_batch_not_divisible_by_world_size(shards, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(KoGPT2Error, match="not divisible"):
        train(tiny_cfg(shards, tmp_path / "x", grad_accum=3))


def test_existing_run_needs_resume_and_corrupt_checkpoint_is_reported(shards, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(shards, out, max_steps=2, save_interval=2, eval_interval=100))
    with pytest.raises(KoGPT2Error, match="--resume"):
        train(tiny_cfg(shards, out, max_steps=4))
    (out / "step_0000002" / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(KoGPT2Error, match="corrupt"):
        train(tiny_cfg(shards, out, max_steps=4, resume=True))
    (out / "step_0000002" / "trainer_state.pt").unlink()
    with pytest.raises(KoGPT2Error, match="incomplete"):
        train(tiny_cfg(shards, out, max_steps=4, resume=True))


def test_resume_with_only_data_out_and_steps_continues_with_the_runs_settings(shards, tmp_path, capsys):
    import shutil

    ref = tmp_path / "ref"
    train(tiny_cfg(shards, ref, max_steps=6, save_interval=3, eval_interval=1000, keep=2))
    out = tmp_path / "resumed"
    shutil.copytree(ref, out)
    shutil.rmtree(out / "step_0000006")
    capsys.readouterr()
    # The README's `kogpt2 train --data D --out O --max-steps N --resume`: every other setting at its default.
    train(TrainConfig(data=str(shards), out=str(out), max_steps=6, resume=True, threads=1))
    said = capsys.readouterr().out
    assert "--resume: the checkpoint's settings" in said and "grad_accum=2" in said and "lr=0.003" in said
    saved = json.loads((out / "step_0000006" / "hyperparameters.json").read_text())["train"]
    assert (saved["batch_size"], saved["grad_accum"], saved["lr"], saved["dtype"], saved["n_ctx"]) == (4, 2, 3e-3,
                                                                                                      "fp32", 32)
    want, got = read_losses(ref), read_losses(out)
    for step in (4, 5, 6):  # the same run: batch, schedule and dtype as before the interruption
        assert got[step] == pytest.approx(want[step], rel=1e-5)


def test_resumed_config_keeps_given_settings_and_never_restores_machine_ones():
    from kogpt2.train import resumed_config

    saved = {"lr": 1e-3, "batch_size": 4, "device": "cuda", "compile": True, "max_steps": 10, "warmup_steps": 100}
    cfg, restored = resumed_config(TrainConfig(data="d", out="o", resume=True, lr=2e-3, max_steps=20), saved)
    assert restored == {"batch_size": 4}  # warmup_steps: saved = default, nothing to restore
    assert (cfg.lr, cfg.batch_size, cfg.device, cfg.compile, cfg.max_steps) == (2e-3, 4, "auto", False, 20)


def test_a_typed_flag_wins_on_resume_even_at_its_default_and_max_steps_is_the_runs():
    from kogpt2.train import resumed_config

    saved = {"lr": 3e-3, "batch_size": 4, "max_steps": 20}
    at_defaults = TrainConfig(data="d", out="o", resume=True)  # lr 6e-4, batch 8, max_steps 1000: the defaults
    cfg, restored = resumed_config(at_defaults, saved, given={"data", "out", "resume", "lr"})
    assert (cfg.lr, cfg.batch_size, cfg.max_steps) == (at_defaults.lr, 4, 20)
    assert restored == {"batch_size": 4, "max_steps": 20}


def test_cli_resume_continues_to_the_runs_own_max_steps_and_refuses_a_finished_run(shards, tmp_path, capsys):
    import shutil

    from kogpt2.cli import main

    run = tmp_path / "run"
    train(tiny_cfg(shards, run, max_steps=6, save_interval=3, eval_interval=1000, keep=2))
    shutil.rmtree(run / "step_0000006")
    capsys.readouterr()
    base = ["train", "--data", str(shards), "--out", str(run), "--resume", "--threads", "1"]
    assert main(base) == 0
    assert sorted(p.name for p in run.glob("step_*")) == ["step_0000003", "step_0000006"]  # not 1000 steps
    assert "max_steps=6" in capsys.readouterr().out
    assert main(base) == 2
    assert "is at step 6, already at --max-steps 6: nothing to train" in capsys.readouterr().err
    assert main([*base, "--max-steps", "7"]) == 0
    assert "stretches the learning-rate schedule of a run planned for 6 steps" in capsys.readouterr().out
    # the run directory stands for its newest checkpoint in eval bpc too (model and tokenizer)
    assert main(["eval", "bpc", "--text", str(KOREAN_TXT), "--max-docs", "2", "--model", str(run)]) == 0
    assert capsys.readouterr().out.startswith("bits/char ")


def test_export_hf_release_is_bf16_and_loads(tiny_model_dir, tmp_path, capsys):
    from kogpt2.cli import main
    from kogpt2.model import load_model
    from safetensors.torch import load_file

    assert main(["export", "hf", str(tiny_model_dir), str(tmp_path / "rel")]) == 0
    tensors = load_file(str(tmp_path / "rel" / "model.safetensors"))
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    a, b = load_model(tiny_model_dir), load_model(tmp_path / "rel")
    assert b.transformer.wte.weight.dtype == torch.float32
    torch.testing.assert_close(a.transformer.wte.weight, b.transformer.wte.weight, rtol=1e-2, atol=1e-2)
    assert not (tmp_path / "rel" / "trainer_state.pt").exists()
    assert all((f.stat().st_mode & 0o444) == 0o444 for f in (tmp_path / "rel").iterdir())  # readable by all


def test_default_dtype_bf16_autocasts_and_stays_close_to_fp32(shards, tmp_path):
    assert TrainConfig(data="d", out="o", preset="mini").dtype == "bf16"
    train(tiny_cfg(shards, tmp_path / "bf16", max_steps=3, dtype="bf16", eval_interval=3, save_interval=3))
    train(tiny_cfg(shards, tmp_path / "fp32", max_steps=3, dtype="fp32", eval_interval=3, save_interval=3))
    bf16, fp32 = read_losses(tmp_path / "bf16"), read_losses(tmp_path / "fp32")
    assert bf16[1] != fp32[1]  # bf16 autocast really ran the matmuls in bf16
    assert bf16[1] == pytest.approx(fp32[1], rel=2e-2)


@pytest.mark.slow
def test_cli_train_compile_with_the_default_dtype(shards, tmp_path):
    out = tmp_path / "compiled"
    proc = _run_cli(["--data", str(shards), "--out", str(out), "--preset", "mini", "--n-layer", "2", "--n-embd", "32",
                     "--n-head", "2", "--n-ctx", "32", "--batch-size", "2", "--max-steps", "3", "--compile",
                     "--eval-interval", "3", "--eval-tokens", "256", "--save-interval", "3", "--sample-interval", "0",
                     "--log-interval", "1", "--threads", "1"])
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert "dtype bf16, compiled" in log
    hp = json.loads((out / "step_0000003" / "hyperparameters.json").read_text())
    assert hp["train"]["compile"] is True and hp["train"]["dtype"] == "bf16"
    losses = read_losses(out)
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())


def test_process_group_backend_is_gloo_on_cpu_and_nccl_on_cuda():
    from kogpt2.train import process_group_backend

    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert process_group_backend(torch.device("cuda", 0)) == "nccl"


@pytest.mark.parametrize("preset", ["mini", "gpt3-mini"])
def test_chunked_loss_and_gradients_equal_the_plain_loss(preset):
    from kogpt2.train import lm_loss

    torch.manual_seed(0)
    model = build_model(ModelConfig(preset=preset, vocab_size=50, n_ctx=16, overrides=TINY))
    batch = torch.randint(0, 50, (3, 17))
    plain = lm_loss(model, batch)
    plain.backward()
    want = model.transformer.wte.weight.grad.clone()
    model.zero_grad()
    chunked = lm_loss(model, batch, chunk=7, head=model.get_output_embeddings().weight)  # 48 tokens: 7 chunks
    chunked.backward()
    torch.testing.assert_close(chunked, plain)
    torch.testing.assert_close(model.transformer.wte.weight.grad, want, rtol=1e-4, atol=1e-6)


def test_loss_chunk_with_fsdp_is_refused(shards, tmp_path):
    with pytest.raises(KoGPT2Error, match="--loss-chunk"):
        tiny_cfg(shards, tmp_path, loss_chunk=64, fsdp=True)


def test_sample_is_printed_during_training_and_its_errors_propagate(shards, tmp_path, capsys, monkeypatch):
    cfg = tiny_cfg(shards, tmp_path / "a", max_steps=2, eval_interval=2, save_interval=2, sample_interval=2,
                   loss_chunk=40)
    train(cfg)
    assert "sample @ 2: " + cfg.sample_prompt in capsys.readouterr().out

    import kogpt2.generation.api

    def broken(*a, **k):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(kogpt2.generation.api, "generate", broken)
    with pytest.raises(RuntimeError, match="sampler exploded"):
        train(tiny_cfg(shards, tmp_path / "b", max_steps=2, eval_interval=2, save_interval=2, sample_interval=2))
