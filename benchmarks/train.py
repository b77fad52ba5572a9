"""Training speed on CPU: ``kogpt2 train`` itself (eager and ``--compile``) vs plain Hugging Face eager fp32.

    python benchmarks/train.py                 # 17M shape (6x384, bundled 16k vocabulary), seq 256, batch 8
    python benchmarks/train.py --steps 12      # more timed steps

Ours is the product's training function (``kogpt2.train.train``, what ``kogpt2 train`` runs) on
shards prepared by ``kogpt2.data.prepare`` from a synthetic corpus, with its defaults (bf16
autocast, fused AdamW); its speed is the median ``tok_s`` it logs to ``metrics.csv`` after the
first steps (compilation and warm-up excluded). The baseline, in the same process, is
``GPT2LMHeadModel(input_ids, labels=...)`` with eager attention and ``torch.optim.AdamW`` in
fp32, the way a Hugging Face user would write it. The last line is machine-readable:
``RESULT tok_s=<ours, --compile> eager_tok_s=<ours, eager> baseline_tok_s=<HF eager fp32> ratio=<compiled/HF>
eager_ratio=<eager/HF>``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

SHAPE = {"n_layer": 6, "n_embd": 384, "n_head": 6}
SEQ, BATCH = 256, 8


def synthetic_corpus(path: Path, docs: int = 200, seed: int = 0) -> Path:
    """Korean-looking documents of common syllables (content does not matter for speed)."""
    from kogpt2.tokenizer import load_tokenizer

    vocab = load_tokenizer(None).get_vocab()
    syllables = sorted({ch for tok in vocab for ch in tok if "가" <= ch <= "힣"})
    rng = random.Random(seed)
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(5000)]
    text = "\n<|endoftext|>\n".join(" ".join(rng.choices(words, k=600)) for _ in range(docs))  # one document each
    path.write_text(text + "\n", encoding="utf-8")
    return path


def product_tok_s(data: Path, out: Path, compile_: bool, steps: int, skip: int, peak: float) -> float:
    """Median tokens/s that ``kogpt2 train`` logs after ``skip`` steps."""
    from kogpt2.train import TrainConfig, train

    cfg = TrainConfig(data=str(data), out=str(out), preset="mini", n_ctx=SEQ, batch_size=BATCH, max_steps=steps,
                      log_interval=1, eval_interval=steps, eval_tokens=SEQ * 4, save_interval=steps,
                      sample_interval=0, keep=1, compile=compile_, peak_flops=peak, overrides=SHAPE)
    with contextlib.redirect_stderr(io.StringIO()):  # the progress bar
        train(cfg)
    rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["tok_s"] and int(r["step"]) > skip]
    return statistics.median(float(r["tok_s"]) for r in rows)


def hf_eager_fp32_tok_s(vocab_size: int, steps: int, warmup: int) -> float:
    """Tokens/s of a plain Hugging Face training step: eager attention, fp32, torch AdamW."""
    from transformers import AutoModelForCausalLM, GPT2Config

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=SEQ, **SHAPE)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randint(0, vocab_size, (BATCH, SEQ))

    def step() -> None:
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return BATCH * SEQ * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run (after the warm-up steps)")
    args = ap.parse_args()

    from kogpt2.data import prepare
    from kogpt2.model import count_params
    from kogpt2.paths import bundled_model_dir
    from kogpt2.train import flops_per_token, measure_cpu_peak_flops

    peak = measure_cpu_peak_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 matmul peak here {peak / 1e9:.0f} GFLOP/s "
          "(reference machine with AMX: ~1450)")
    print("target: >= 5,000 tok/s on the 17M shape, >= 3.5x HF eager fp32 (both measured on the AMX reference)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        meta = prepare([synthetic_corpus(tmp / "corpus.txt")], bundled_model_dir(), tmp / "data", val_fraction=0.05,
                       workers=0, dedup="none", progress=False)
        vocab = meta["vocab_size"]
        base = hf_eager_fp32_tok_s(vocab, args.steps, warmup=2)
        eager = product_tok_s(tmp / "data", tmp / "eager", False, args.steps + 2, skip=2, peak=peak)
        compiled = product_tok_s(tmp / "data", tmp / "compiled", True, args.steps + 3, skip=3, peak=peak)
        from kogpt2.model import load_model

        n = count_params(load_model(tmp / "eager" / f"step_{args.steps + 2:07d}"))
    fpt = flops_per_token(n, SHAPE["n_layer"], SHAPE["n_embd"], SEQ)
    print(f"17M shape (6x384, {vocab:,} vocab), {n / 1e6:.1f}M params, seq {SEQ}, batch {BATCH}")
    print(f"  HF eager fp32 (torch AdamW):        {base:8.0f} tok/s")
    print(f"  kogpt2 train (bf16):                {eager:8.0f} tok/s   {eager / base:5.2f}x")
    print(f"  kogpt2 train --compile (bf16):      {compiled:8.0f} tok/s   {compiled / base:5.2f}x   "
          f"{compiled * fpt / 1e9:.0f} GFLOP/s")
    print(f"RESULT tok_s={compiled:.0f} eager_tok_s={eager:.0f} baseline_tok_s={base:.0f} "
          f"ratio={compiled / base:.2f} eager_ratio={eager / base:.2f}")


if __name__ == "__main__":
    main()
