"""Decoding speed on CPU: our engine's backends vs HF ``generate`` fp32, same run, same threads.

Prompt of 32 tokens -> 128 new tokens, greedy, batch 1 and 8, for a random 125M GPT-2
(12 x 768, vocab 51,200) and the ``mini`` shape (6 x 384, 6 heads, vocab 16,384). Tokens/s
counts new tokens (prefill included in the time). Text decoding is not timed: the rows run
on token ids with an eos that never occurs, so every run makes exactly 128 tokens.

    python benchmarks/generate.py                      # both shapes, all paths
    python benchmarks/generate.py --shapes 125m --paths onnx-int8 --threads 2

The last line is ``RESULT tok_s_b1=... hf_tok_s_b1=... ratio_b1=... tok_s_b8=... hf_tok_s_b8=...``
for the 125M shape, "ours" being the fastest of our paths at each batch size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {"125m": dict(n_layer=12, n_embd=768, n_head=12, vocab_size=51200),
          "mini": dict(n_layer=6, n_embd=384, n_head=6, vocab_size=16384)}
PATHS = ("torch-fp32", "torch-int8", "onnx-fp32", "onnx-int8")
PROMPT, NEW = 32, 128


class IdsOnly:
    """Stand-in tokenizer: no eos ever matches, text is never decoded during timing."""

    eos_token_id = -1
    pad_token_id = 0

    def decode(self, ids, **kw) -> str:
        return ""

    def convert_ids_to_tokens(self, i):
        return "t"


def make_model_dir(shape: str, root: Path) -> Path:
    """A random GPT-2 of ``shape`` saved as a HF directory (reused when present)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    out = root / f"gpt2-{shape}"
    if not (out / "model.safetensors").is_file():
        torch.manual_seed(0)
        cfg = GPT2Config(n_positions=1024, bos_token_id=1, eos_token_id=1, pad_token_id=3, **SHAPES[shape])
        GPT2LMHeadModel(cfg).eval().save_pretrained(out)
    return out


def time_ours(decoder, prompts: torch.Tensor, repeats: int) -> float:
    """Best tokens/s of ``repeats`` greedy runs of the engine (``kogpt2.generation.loop.DecodeBatch``)."""
    from kogpt2.generation.config import SamplingConfig
    from kogpt2.generation.loop import DecodeBatch

    cfg = SamplingConfig(max_new_tokens=NEW, do_sample=False)
    rows = prompts.tolist()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        batch = DecodeBatch(decoder, IdsOnly(), stream_text=False)
        batch.add_rows(rows, [cfg] * len(rows))
        n = 0
        while not batch.done:
            batch.step()
            n += 1
        best = max(best, len(rows) * n / (time.perf_counter() - t))
    return best


def time_hf(model, prompts: torch.Tensor, repeats: int) -> float:
    """Best tokens/s of HF ``generate`` (greedy, fp32, KV cache)."""
    best = 0.0
    with torch.inference_mode():
        for _ in range(repeats):
            t = time.perf_counter()
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=False,
                                 max_new_tokens=NEW, min_new_tokens=NEW, pad_token_id=0)
            best = max(best, prompts.shape[0] * (out.shape[1] - PROMPT) / (time.perf_counter() - t))
    return best


def decoder_for(path: str, model_dir: Path, threads: int):
    from kogpt2.generation.backends import load_decoder

    backend, dtype = path.split("-")
    return load_decoder(model_dir, backend=backend, dtype=dtype, device="cpu", threads=threads)


def bench_shape(shape: str, root: Path, paths: list[str], repeats: int, threads: int) -> dict[str, dict[int, float]]:
    """Best tokens/s per path (``hf`` included) and batch size.

    NOTE: the paths are measured in turn inside each repeat (HF, ours, HF, ours, ...), so a
    change of machine load (shared cores) hits both sides of the ratio alike.
    """
    from kogpt2.model import load_model

    model_dir = make_model_dir(shape, root)
    g = torch.Generator().manual_seed(0)
    vocab = SHAPES[shape]["vocab_size"]
    prompts = {b: torch.randint(10, vocab, (b, PROMPT), generator=g) for b in (1, 8)}
    runners = {"hf": (load_model(model_dir), time_hf)}
    runners.update({p: (decoder_for(p, model_dir, threads), time_ours) for p in paths})
    res: dict[str, dict[int, float]] = {k: {1: 0.0, 8: 0.0} for k in runners}
    for b in (1, 8):
        for _ in range(repeats):
            for name, (model, fn) in runners.items():
                res[name][b] = max(res[name][b], fn(model, prompts[b], 1))
        for name in runners:
            print(f"{shape:>5}  {name:<10}  b={b}  {res[name][b]:7.1f} tok/s  "
                  f"({res[name][b] / res['hf'][b]:.2f}x HF fp32)", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="125m,mini")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"subset of {','.join(PATHS)}")
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement (best kept)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "kogpt2-bench-generate"),
                    help="directory for the random models and their ONNX exports (reused)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("KOGPT2_CACHE", str(Path(args.work) / "cache"))
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    print(f"load average before: {os.getloadavg()}  threads={args.threads}", flush=True)
    results = {s: bench_shape(s, Path(args.work), args.paths.split(","), args.repeats, args.threads)
               for s in args.shapes.split(",")}
    print(f"load average after: {os.getloadavg()}")
    if "125m" in results:
        r = results["125m"]
        ours = {b: max(v[b] for k, v in r.items() if k != "hf") for b in (1, 8)}
        print(f"RESULT tok_s_b1={ours[1]:.1f} hf_tok_s_b1={r['hf'][1]:.1f} ratio_b1={ours[1] / r['hf'][1]:.2f} "
              f"tok_s_b8={ours[8]:.1f} hf_tok_s_b8={r['hf'][8]:.1f}")


if __name__ == "__main__":
    main()
