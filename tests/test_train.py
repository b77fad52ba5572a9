"""Pretraining engine: presets, loss goes down, exact resume after SIGKILL, torchrun DDP,
init-from, bad inputs."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import KOREAN_TXT
from kogpt2.config import PRESETS, ModelConfig
from kogpt2.errors import KoGPT2Error
from kogpt2.model import build_model, count_params
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


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_stated_parameter_counts(name):
    p = PRESETS[name]
    model = build_model(ModelConfig(name, vocab_size=p.nominal_vocab), device="meta")
    assert abs(count_params(model) / p.nominal_params - 1) < 0.03
    assert type(model).__name__ == ("GPTNeoForCausalLM" if p.arch == "gpt-neo" else "GPT2LMHeadModel")


def test_gpt3_presets_alternate_global_and_local_attention():
    model = build_model(ModelConfig("gpt3-mini", vocab_size=1000, overrides={"n_layer": 4}), device="meta")
    assert model.config.attention_layers == ["global", "local", "global", "local"]


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
    assert isinstance(gen("나는", max_new_tokens=3, do_sample=False)[0]["generated_text"], str)


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
            "--dtype", "fp32", "--threads", "1", "--dropout", "0.1"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(shards, tmp_path, monkeypatch):
    # The reference: 14 steps uninterrupted (dropout on, so RNG state must be restored too).
    ref = tiny_cfg(shards, tmp_path / "ref", max_steps=14, save_interval=5, eval_interval=1000, dropout=0.1)
    train(ref)
    # The same run, killed with SIGKILL once a checkpoint exists.
    out = tmp_path / "killed"
    proc = _run_cli_with_overrides(_cli_args(shards, out, 14))
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
    # and resuming is what makes them agree: a fresh run from step 10's weights alone would not
    assert len([s for s in got if s > 10]) == 4
    # whatever the killed run logged after its checkpoint was replaced, not duplicated
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "metrics.csv")) if r["loss"]]
    assert steps == sorted(set(steps))


def test_resumed_metrics_drop_rows_logged_after_the_checkpoint(tmp_path):
    from kogpt2.train import MetricsLog

    log = MetricsLog(tmp_path)
    for step in range(1, 8):
        log.log(step=step, tokens=step * 10, loss=7.0 - step / 10)
    log.log(step=5, tokens=50, val_loss=6.0, val_bpc=4.0)
    log.f.close()
    # the run was killed after step 7; its last checkpoint was step 5
    log = MetricsLog(tmp_path, resume_step=5)
    log.log(step=6, tokens=60, loss=1.0)
    log.f.close()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [(r["step"], r["loss"]) for r in rows if r["loss"]] == [
        ("1", "6.9"), ("2", "6.8"), ("3", "6.7"), ("4", "6.6"), ("5", "6.5"), ("6", "1.0")]
    assert [r["val_bpc"] for r in rows if r["val_bpc"]] == ["4.0"]


def _run_cli_with_overrides(args: list[str]) -> subprocess.Popen:
    """``kogpt2 train`` in a subprocess with the tiny shape (2 layers x 32) patched in."""
    code = ("import sys; import kogpt2.train as t; from kogpt2.cli import main; "
            "orig = t.TrainConfig.__post_init__\n"
            "def post(self):\n    self.overrides = {'n_layer': 2, 'n_embd': 32, 'n_head': 2}; orig(self)\n"
            "t.TrainConfig.__post_init__ = post\nsys.exit(main(['train'] + sys.argv[1:]))")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


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


def test_init_from_remaps_vocabulary_and_grows_context(tiny_model_dir, tmp_path):
    from kogpt2.init_from import init_from
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer, train_tokenizer

    src = load_model(tiny_model_dir)
    src_tok = load_tokenizer(tiny_model_dir)
    # a different tokenizer: other vocabulary size and ids
    new_tok = train_tokenizer(texts=["완전히 다른 문장들로 만든 토크나이저입니다.\n", "숲 속을 걷는다.\n"] * 5,
                              vocab_size=420, min_frequency=1, show_progress=False)
    dst = build_model(ModelConfig("mini", vocab_size=len(new_tok), n_ctx=256, overrides=TINY))
    report = init_from(dst, new_tok, tiny_model_dir)
    assert "token rows kept" in report
    s_wte, d_wte = src.transformer.wte.weight, dst.transformer.wte.weight
    shared = set(src_tok.get_vocab()) & set(new_tok.get_vocab())
    assert len(shared) > 300  # specials + bytes + common characters
    for tok in ["<usr>", "<0x41>", "숲"]:
        torch.testing.assert_close(d_wte[new_tok.convert_tokens_to_ids(tok)], s_wte[src_tok.convert_tokens_to_ids(tok)])
    new_only = [t for t in new_tok.get_vocab() if t not in src_tok.get_vocab()]
    assert new_only
    torch.testing.assert_close(d_wte[new_tok.convert_tokens_to_ids(new_only[0])], s_wte.mean(0))
    # positions: 128 copied, then repeated cyclically up to 256
    s_wpe, d_wpe = src.transformer.wpe.weight, dst.transformer.wpe.weight
    torch.testing.assert_close(d_wpe[:128], s_wpe)
    torch.testing.assert_close(d_wpe[128:], s_wpe)
    torch.testing.assert_close(dst.transformer.h[0].attn.c_attn.weight, src.transformer.h[0].attn.c_attn.weight)
    assert dst.lm_head.weight.data_ptr() == dst.transformer.wte.weight.data_ptr()


def test_cli_init_from_trains(shards, tiny_model_dir, tmp_path):
    from kogpt2.cli import main

    rc = main(["train", "--data", str(shards), "--out", str(tmp_path / "r"), "--init-from", str(tiny_model_dir),
               "--n-ctx", "64", "--batch-size", "2", "--max-steps", "2", "--eval-interval", "2",
               "--save-interval", "2", "--sample-interval", "0", "--dtype", "fp32", "--threads", "1"])
    assert rc == 0
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(tmp_path / "r" / "step_0000002"))
    assert (cfg.n_layer, cfg.n_embd, cfg.n_positions) == (2, 32, 64)


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

    import kogpt2.sampling

    def broken(*a, **k):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(kogpt2.sampling, "generate", broken)
    with pytest.raises(RuntimeError, match="sampler exploded"):
        train(tiny_cfg(shards, tmp_path / "b", max_steps=2, eval_interval=2, save_interval=2, sample_interval=2))
