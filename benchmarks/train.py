"""Training speed on CPU: ours (torch.compile + bf16 autocast + fused AdamW) vs plain HF eager fp32.

    python benchmarks/train.py              # 17M shape (6x384, vocab 16,000), seq 256, batch 8; then `mini`
    python benchmarks/train.py --steps 10 --skip-mini

Both paths run the same forward+backward+optimizer step on the same random batch in one
process; the baseline is ``GPT2LMHeadModel(input_ids, labels=...)`` with ``torch.optim.AdamW``
in fp32, the way a Hugging Face user would write it. The last line is machine-readable:
``RESULT tok_s=<ours, 17M shape> baseline_tok_s=<HF eager fp32> ratio=<ours/baseline>``.
"""

from __future__ import annotations

import argparse
import time

import torch

from kogpt2.config import ModelConfig
from kogpt2.model import build_model, count_params
from kogpt2.train import TrainConfig, flops_per_token, lm_loss, make_optimizer, measure_cpu_peak_flops


def bench(model, step_fn, batch: torch.Tensor, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step_fn(batch)
    t = time.perf_counter()
    for _ in range(steps):
        step_fn(batch)
    return batch[:, :-1].numel() * steps / (time.perf_counter() - t)


def hf_eager_fp32(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch):
        out = model(input_ids=batch[:, :-1], labels=batch[:, :-1])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def ours(model):
    opt = make_optimizer(model, TrainConfig(data="-", out="-", preset="mini"), torch.device("cpu"))
    fwd = torch.compile(model)

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = lm_loss(fwd, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def run_shape(name: str, cfg: ModelConfig, batch_size: int, seq: int, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    batch = torch.randint(0, cfg.vocab_size, (batch_size, seq + 1))
    base_model = build_model(cfg)
    n = count_params(base_model)
    base = bench(base_model, hf_eager_fp32(base_model), batch, steps, warmup=2)
    our_model = build_model(cfg)
    mine = bench(our_model, ours(our_model), batch, steps, warmup=3)  # warmup includes compilation
    s = cfg.shape
    fpt = flops_per_token(n, s.n_layer, s.n_embd, seq)
    print(f"{name:<28} {n / 1e6:6.1f}M  HF eager fp32 {base:8.0f} tok/s   ours {mine:8.0f} tok/s   "
          f"ratio {mine / base:5.2f}x   ours {mine * fpt / 1e9:6.0f} GFLOP/s")
    return mine, base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--skip-mini", action="store_true")
    args = ap.parse_args()
    peak = measure_cpu_peak_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 matmul peak here {peak / 1e9:.0f} GFLOP/s "
          f"(reference machine with AMX: ~1450)")
    print("target: >= 5,000 tok/s on the 17M shape, >= 3.5x HF eager fp32 (both measured on the AMX reference)")
    shape17 = ModelConfig("mini", vocab_size=16000, n_ctx=256, overrides={"n_layer": 6, "n_embd": 384, "n_head": 6})
    if not args.skip_mini:
        run_shape("mini preset (16,384 vocab)", ModelConfig("mini", vocab_size=16384, n_ctx=384), 8, 384, args.steps)
    mine, base = run_shape("17M shape (6x384, 16,000)", shape17, 8, 256, args.steps)
    print(f"RESULT tok_s={mine:.0f} baseline_tok_s={base:.0f} ratio={mine / base:.2f}")


if __name__ == "__main__":
    main()
