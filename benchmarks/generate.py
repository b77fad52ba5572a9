"""Decoding speed on CPU: kogpt2's decoding path vs HF ``generate`` fp32, same run, same threads.

Prompt of 32 tokens -> 128 new tokens, greedy, batch 1 and 8, for a random 125M GPT-2
(12 x 768, vocab 51,200) and the bundled default model ``kogpt2-small`` (8 x 448, vocab
16,384, real weights). Each of our paths is a decoder from ``kogpt2.generation.backends.load_decoder``
(what ``kogpt2 generate --backend B --dtype D`` loads, the ONNX ones exported into the cache
as ``--backend onnx`` does) driven by the engine's own loop ``kogpt2.generation.loop.DecodeBatch``.
Tokens/s counts new tokens (prefill included in the time). Text decoding is not timed: the
rows run on token ids with an eos that never occurs, so every run makes exactly 128 tokens.

The memory roofline: batch-1 decoding streams every weight matrix once per token, so it
cannot beat ``bandwidth / weight bytes``. The bandwidth is measured here, in the same run,
by summing a 1 GiB float32 array with the same number of threads (a read, like the weights'
stream); the weight bytes are those of the path's matrices (int8: 1 byte, fp32: 4 bytes).

    python benchmarks/generate.py                      # both models, all paths
    python benchmarks/generate.py --shapes 125m --paths onnx-int8 --threads 2

The last lines are ``RESULT tok_s_b1=... hf_tok_s_b1=... ratio_b1=... roofline_b1=... share_b1=...
tok_s_b8=... hf_tok_s_b8=... ratio_b8=... bandwidth_gb_s=...`` for the 125M shape ("ours" is
the fastest of our paths at each batch size) and ``RESULT_SMALL ...`` for kogpt2-small.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

SHAPES = {"125m": dict(n_layer=12, n_embd=768, n_head=12, vocab_size=51200)}
BUNDLED = "small"  # the bundled kogpt2-small, real weights
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
    """A random GPT-2 of ``shape`` saved as a HF directory (reused when present); the bundled model for ``small``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if shape == BUNDLED:
        from kogpt2.paths import bundled_model_dir

        return bundled_model_dir()
    out = root / f"gpt2-{shape}"
    if not (out / "model.safetensors").is_file():
        torch.manual_seed(0)
        cfg = GPT2Config(n_positions=1024, bos_token_id=1, eos_token_id=1, pad_token_id=3, **SHAPES[shape])
        GPT2LMHeadModel(cfg).eval().save_pretrained(out)
    return out


def read_bandwidth(threads: int, gib: float = 1.0, repeats: int = 5) -> float:
    """Best GB/s of summing a ``gib`` GiB float32 array (a streaming read) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a = torch.ones(int(gib * 2**30) // 4)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t)
    return a.numel() * 4 / best / 1e9


def weight_bytes(model_dir: Path, path: str) -> int:
    """Bytes of the weight matrices one decoding step streams: 12 C^2 per layer (QKV, output,
    MLP in and out) and the V x C head, at 1 byte a weight for int8 paths and 4 for fp32."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_dir)
    n = cfg.n_layer * 12 * cfg.n_embd ** 2 + cfg.vocab_size * cfg.n_embd
    return n * (1 if path.endswith("int8") else 4)


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


def bench_shape(shape: str, root: Path, paths: list[str], repeats: int, bandwidth: float, threads: int) -> dict:
    """Best tokens/s per path (``hf`` included) and batch size, and each path's batch-1 roofline.

    NOTE: the paths are measured in turn inside each repeat (HF, ours, HF, ours, ...), so a
    change of machine load (shared cores) hits both sides of the ratio alike.
    """
    from kogpt2.model import load_model

    model_dir = make_model_dir(shape, root)
    model = load_model(model_dir)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompts = {b: torch.randint(10, vocab, (b, PROMPT), generator=g) for b in (1, 8)}
    runners = {"hf": (model, time_hf)}
    runners.update({p: (decoder_for(p, model_dir, threads), time_ours) for p in paths})
    res: dict[str, dict[int, float]] = {k: {1: 0.0, 8: 0.0} for k in runners}
    roof = {p: bandwidth * 1e9 / weight_bytes(model_dir, p) for p in ["hf-fp32", *paths]}
    for b in (1, 8):
        for _ in range(repeats):
            for name, (m, fn) in runners.items():
                res[name][b] = max(res[name][b], fn(m, prompts[b], 1))
        for name in runners:
            line = (f"{shape:>5}  {name:<10}  b={b}  {res[name][b]:7.1f} tok/s  "
                    f"({res[name][b] / res['hf'][b]:.2f}x HF fp32)")
            if b == 1:
                r = roof["hf-fp32" if name == "hf" else name]
                line += f"  roofline {r:6.1f} tok/s, {res[name][b] / r:.0%} of it"
            print(line, flush=True)
    return {"tok_s": res, "roofline": roof}


def result_line(tag: str, r: dict, bandwidth: float) -> str:
    """One ``RESULT`` line: our fastest path at each batch size against HF, and the b1 roofline share."""
    res, roof = r["tok_s"], r["roofline"]
    ours = {b: max((k for k in res if k != "hf"), key=lambda k: res[k][b]) for b in (1, 8)}
    b1, b8 = res[ours[1]][1], res[ours[8]][8]
    return (f"{tag} tok_s_b1={b1:.1f} hf_tok_s_b1={res['hf'][1]:.1f} ratio_b1={b1 / res['hf'][1]:.2f} "
            f"path_b1={ours[1]} roofline_b1={roof[ours[1]]:.1f} share_b1={b1 / roof[ours[1]]:.2f} "
            f"tok_s_b8={b8:.1f} hf_tok_s_b8={res['hf'][8]:.1f} ratio_b8={b8 / res['hf'][8]:.2f} path_b8={ours[8]} "
            f"bandwidth_gb_s={bandwidth:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=f"125m,{BUNDLED}", help=f"subset of 125m,{BUNDLED}")
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
    print(f"load average before: {os.getloadavg()}  threads={args.threads}  cpu: {cpu_name()}", flush=True)
    bandwidth = read_bandwidth(args.threads)
    print(f"memory read bandwidth: {bandwidth:.1f} GB/s (1 GiB float32 sum, {args.threads} threads)", flush=True)
    results = {s: bench_shape(s, Path(args.work), args.paths.split(","), args.repeats, bandwidth, args.threads)
               for s in args.shapes.split(",")}
    print(f"load average after: {os.getloadavg()}")
    for shape, tag in (("125m", "RESULT"), (BUNDLED, "RESULT_SMALL")):
        if shape in results:
            print(result_line(tag, results[shape], bandwidth))


def cpu_name() -> str:
    """The processor's model name (Linux), or the platform's."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
