r"""One prepared GPU check: training, generation, fine-tuning, evaluation and serving on CUDA.

    python benchmarks/gpu.py --out gpu_report.json     # one H100/H200, at most ~8 minutes
    python benchmarks/gpu.py --dry-run                  # every row on the CPU, tiny shapes, < 1 minute

Every row runs the product's own code (``kogpt2.train.train``, ``kogpt2.generation.api.generate``,
``kogpt2 finetune``, ``kogpt2 eval bpc``, ``kogpt2 serve``) on synthetic data made here in a
temporary directory (random Hangul text through ``kogpt2 data prepare``; NSMC-format reviews),
so no corpus is needed. Each row prints one line, ``RESULT <row> OK key=value ...``, ``RESULT
<row> FAILED <reason>``, ``RESULT <row> PENDING <what is missing>`` or ``RESULT <row> SKIPPED
<why>``; a failing row does not stop the others, and the exit status is 1 if any row failed.
Rows with a target (issue 16) print ``target ... PASS`` or ``FAIL`` beside their figures:

- ``train-base``: MFU >= 40% (989 TFLOP/s bf16 peak); ``train-base-chunked`` the same with
  ``--loss-chunk``; ``train-base-fsdp`` (one process, NCCL) >= 90% of ``train-base`` tokens/s;
  ``train-gpt3-base-1k`` >= 60% of ``train-base`` tokens/s at the same context (1,024).
- ``gen-*-b1``: our generation at batch 1 >= 3x Hugging Face ``generate`` on the same GPU. The
  ``gen-*`` rows also print which decoder ran, whether its CUDA graphs were captured, and the
  tokens/s of the same static-cache decoder without graphs (``no_graph_tok_s``).

Training tokens/s and MFU are read from the run's ``metrics.csv`` (the mean over log intervals
after the first, which holds the compile). A table follows the rows; ``--out`` gets a JSON report.
Rows whose command lacks ``--device`` (or ``device=``) yet report PENDING instead of running.

On a lent GPU machine (Python 3.12, torch and transformers preinstalled, no fastapi/uvicorn),
``benchmarks/gpu_device.sh`` is the whole command: ``bash benchmarks/gpu_device.sh fetch`` here once
(the wheels into ``.whl/``), then one ``run`` call with ``carry: [".whl"]``, ``timeout_s: 600`` and the
command ``bash benchmarks/gpu_device.sh``; ``$OUT`` gets ``gpu_log.txt`` and ``gpu_report.json``. The
report is rewritten after every row, so a run stopped at its limit still returns the rows it finished.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import inspect
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
KOREAN_TXT = ROOT / "tests" / "fixtures" / "korean_sentences.txt"
PROMPT = "나는 어두운 숲 속을 거닐고 있다."
TINY = {"n_layer": 2, "n_embd": 32, "n_head": 2}
PEAK_H100 = 989e12


class Pending(Exception):
    """The product lacks what this row needs yet (e.g. a ``--device`` flag)."""


@dataclass
class Ctx:
    """What the rows share: the mode, the device, a temp dir, and the results so far."""

    dry: bool
    device: str
    tmp: Path
    results: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)


@dataclass
class Row:
    name: str
    run: Callable[[Ctx], dict]


# ----------------------------------------------------------------------------- synthetic data


def random_text(rng: random.Random, n_chars: int) -> str:
    """Random Hangul syllables in words of 1-5 with sentence ends: tokenizes like unfamiliar Korean."""
    words, n = [], 0
    while n < n_chars:
        w = "".join(chr(0xAC00 + rng.randrange(11172)) for _ in range(rng.randint(1, 5)))
        words.append(w + ("." if rng.random() < 0.1 else ""))
        n += len(w) + 1
    return " ".join(words)


def default_model_dir() -> Path:
    from kogpt2.paths import bundled_model_dir

    return bundled_model_dir()


def shards(ctx: Ctx) -> Path:
    """Prepared shards of random text with the bundled tokenizer (made once)."""
    if "shards" not in ctx.cache:
        from kogpt2.data import prepare

        rng = random.Random(0)
        docs, chars = (40, 600) if ctx.dry else (400, 4000)
        corpus = ctx.tmp / "corpus.txt"
        corpus.write_text("".join(random_text(rng, chars) + "\n<|endoftext|>\n" for _ in range(docs)), encoding="utf-8")
        prepare([corpus], default_model_dir(), ctx.tmp / "data", val_fraction=0.1, seed=1, workers=0,
                progress=False)
        ctx.cache["shards"] = ctx.tmp / "data"
    return ctx.cache["shards"]


def base_model_dir(ctx: Ctx) -> Path:
    """A random model of the 125M ``base`` shape (16k vocabulary; tiny in a dry run), saved as a HF dir."""
    if "base_dir" not in ctx.cache:
        from kogpt2.config import ModelConfig
        from kogpt2.model import build_model
        from kogpt2.tokenizer import load_tokenizer
        from kogpt2.checkpoint import default_generation_config

        tok = load_tokenizer(default_model_dir())
        torch.manual_seed(0)
        cfg = ModelConfig(preset="base", vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                          overrides=TINY if ctx.dry else {})
        out = ctx.tmp / "base-model"
        build_model(cfg).save_pretrained(out)
        tok.save_pretrained(out)
        default_generation_config(tok).save_pretrained(out)
        ctx.cache["base_dir"] = out
    return ctx.cache["base_dir"]


# ----------------------------------------------------------------------------- helpers


def has_flag(command: list[str], flag: str) -> bool:
    """Whether ``kogpt2 <command...>`` accepts ``flag`` (sub-subcommands followed)."""
    from kogpt2.cli import build_parser

    parser = build_parser(command[0])
    for sub in command[1:]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[sub]
    return flag in parser._option_string_actions


def cli(argv: list[str]) -> None:
    """Run ``kogpt2 argv`` in this process; a non-zero exit is an error."""
    from kogpt2.cli import main

    rc = main(argv)
    if rc:
        raise RuntimeError(f"`kogpt2 {' '.join(argv[:2])}` exited {rc}")


def sync(ctx: Ctx) -> None:
    if ctx.device == "cuda":
        torch.cuda.synchronize()


def free(ctx: Ctx) -> None:
    """Between rows: drop compiled graphs and cached CUDA blocks."""
    gc.collect()
    torch._dynamo.reset()
    if ctx.device == "cuda":
        torch.cuda.empty_cache()


def target(text: str, ok: bool) -> dict:
    return {"target": text, "passed": bool(ok)}


# ----------------------------------------------------------------------------- training rows


def train_row(**gpu: object) -> Callable[[Ctx], dict]:
    """A ``kogpt2.train.train`` run with ``gpu`` settings (tiny shapes and no compile in a dry run)."""

    def run(ctx: Ctx) -> dict:
        from kogpt2.train import TrainConfig, train

        kw = dict(gpu)
        steps, log = (4, 1) if ctx.dry else (60, 10)
        if ctx.dry:
            kw.update(n_ctx=64, batch_size=4, compile=False, overrides=TINY, peak_flops=1e12, threads=1)
            if kw.get("loss_chunk"):
                kw["loss_chunk"] = 96
        out = ctx.tmp / f"train-{len(ctx.results)}"
        sample = kw.pop("sample", False)
        cfg = TrainConfig(data=str(shards(ctx)), out=str(out), max_steps=steps, log_interval=log, warmup_steps=2,
                          eval_interval=steps, eval_tokens=4 * kw["n_ctx"], save_interval=steps, keep=1,
                          sample_interval=steps if sample else 0, device=ctx.device, **kw)
        train(cfg)
        rows = [r for r in csv.DictReader(open(out / "metrics.csv")) if r["tok_s"]]
        timed = rows[1:] or rows
        return {"tok_s": round(statistics.mean(float(r["tok_s"]) for r in timed)),
                "mfu": round(statistics.mean(float(r["mfu"]) for r in timed), 4),
                "batch": f"{cfg.batch_size}x{cfg.n_ctx}", "compiled": cfg.compile}

    return run


def base_mfu_target(res: dict) -> dict:
    return target("MFU >= 40%", res["mfu"] >= 0.40)


def vs_base(name: str, share: float) -> Callable[[Ctx, dict], dict]:
    def check(ctx: Ctx, res: dict) -> dict:
        base = ctx.results.get("train-base", {}).get("tok_s")
        if not base:
            return target(f"tok/s >= {share:.0%} of train-base (no train-base figure)", False)
        return target(f"tok/s >= {share:.0%} of train-base ({res['tok_s'] / base:.0%})", res["tok_s"] >= share * base)

    return check


def with_target(run: Callable[[Ctx], dict], check: Callable[[Ctx, dict], dict]) -> Callable[[Ctx], dict]:
    def both(ctx: Ctx) -> dict:
        res = run(ctx)
        res.update(check(ctx, res))
        return res

    return both


# ----------------------------------------------------------------------------- generation rows


def gen_row(which: str, batch: int) -> Callable[[Ctx], dict]:
    """Greedy tokens/s of ``kogpt2.generation.api.generate`` next to HF ``model.generate``, same device and model."""

    def run(ctx: Ctx) -> dict:
        from kogpt2.generation import api as sampling
        from kogpt2.model import load_model
        from kogpt2.tokenizer import load_tokenizer

        if "device" not in inspect.signature(sampling.generate).parameters:
            raise Pending("needs device= in kogpt2.generation.api.generate (generation engine issue)")
        model_dir = default_model_dir() if which == "small" else base_model_dir(ctx)
        n = 8 if ctx.dry else 128
        prompts = [PROMPT] * batch
        tok = load_tokenizer(model_dir)
        kw = dict(device=ctx.device, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                  repetition_penalty=1.0, no_repeat_ngram_size=0)
        decoder, _ = sampling.load(str(model_dir), None, "torch", "auto", ctx.device)

        def timed(model: object) -> float:
            """Seconds of the second of two calls (the first loads, warms up and captures a graph)."""
            for _ in range(2):
                sync(ctx)
                t = time.perf_counter()
                sampling.generate(prompts, model=model, tokenizer=tok, **kw)
                sync(ctx)
            return time.perf_counter() - t

        ours_tokens = n * batch  # min_new_tokens = max_new_tokens: every row makes exactly n
        ours_s = timed(decoder)
        extra = {"decoder": type(decoder).__name__}
        from kogpt2.generation.graph_decoder import GraphDecoder

        if isinstance(decoder, GraphDecoder) or ctx.dry:  # the same static cache without graphs, for scale
            if isinstance(decoder, GraphDecoder):
                extra["graphs"] = "on" if decoder.capture else f"off ({decoder.capture_error})"
            extra["no_graph_tok_s"] = round(ours_tokens / timed(GraphDecoder(decoder.model, capture=False)), 1)

        hf = load_model(model_dir, device=ctx.device)
        enc = tok(prompts, return_tensors="pt").to(ctx.device)
        gen = dict(do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=tok.pad_token_id,
                   repetition_penalty=1.0, no_repeat_ngram_size=0)
        with torch.inference_mode():
            hf.generate(**enc, **gen)
            sync(ctx)
            t = time.perf_counter()
            out = hf.generate(**enc, **gen)
            sync(ctx)
        hf_s = time.perf_counter() - t
        hf_tokens = (out.shape[1] - enc["input_ids"].shape[1]) * batch
        ours, theirs = ours_tokens / ours_s, hf_tokens / hf_s
        res = {"tok_s": round(ours, 1), "hf_tok_s": round(theirs, 1), "ratio": round(ours / theirs, 2),
               "new_tokens": ours_tokens, **extra}
        if batch == 1:
            res.update(target(f"batch-1 tok/s >= 3x HF generate ({ours / theirs:.1f}x)", ours >= 3 * theirs))
        return res

    return run


# ----------------------------------------------------------------------------- finetune, eval, serve


def finetune_row(ctx: Ctx) -> dict:
    """``kogpt2 finetune sentiment --device`` for a few hundred steps on NSMC-format random reviews."""
    if not has_flag(["finetune", "sentiment"], "--device"):
        raise Pending("needs `kogpt2 finetune sentiment --device`")
    rng = random.Random(2)
    n, steps, batch = (64, 3, 8) if ctx.dry else (12000, 300, 32)
    data = ctx.tmp / "nsmc.txt"
    lines = ["id\tdocument\tlabel"] + [f"{i}\t{random_text(rng, rng.randint(10, 60))}\t{i % 2}" for i in range(n)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = base_model_dir(ctx) if ctx.dry else default_model_dir()
    t = time.perf_counter()
    cli(["finetune", "sentiment", "--data", str(data), "--out", str(ctx.tmp / "sentiment"), "--model", str(model),
         "--max-steps", str(steps), "--batch-size", str(batch), "--eval-interval", str(steps),
         "--max-val", "256", "--device", ctx.device])
    wall = time.perf_counter() - t
    return {"steps": steps, "wall_s": round(wall, 1), "examples_s": round(steps * batch / wall, 1)}


def eval_row(ctx: Ctx) -> dict:
    """Bits per character of the default model on the fixture sentences, on the device."""
    text = ctx.tmp / "eval.txt"
    text.write_text(KOREAN_TXT.read_text(encoding="utf-8") * (1 if ctx.dry else 40), encoding="utf-8")
    model = base_model_dir(ctx) if ctx.dry else default_model_dir()
    t = time.perf_counter()
    if has_flag(["eval", "bpc"], "--device"):
        cli(["eval", "bpc", "--model", str(model), "--text", str(text), "--device", ctx.device])
        via, bits, chars = "kogpt2 eval bpc --device (bpc printed above)", None, len(text.read_text(encoding="utf-8"))
    else:  # the command's own functions, with the model loaded on the device
        from kogpt2.evaluate import bits_per_char, read_documents
        from kogpt2.model import load_model
        from kogpt2.tokenizer import load_tokenizer

        r = bits_per_char(load_model(model, device=ctx.device), load_tokenizer(model), read_documents([str(text)]),
                          batch_size=8)
        via, bits, chars = "kogpt2.evaluate.bits_per_char (no --device flag yet)", round(r.bpc, 4), r.chars
    sync(ctx)
    wall = time.perf_counter() - t
    return {"bpc": bits, "chars_s": round(chars / wall), "via": via}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_row(ctx: Ctx) -> dict:
    """``kogpt2 serve --device`` on loopback; completions at concurrency 16 from an httpx/asyncio client."""
    if not has_flag(["serve"], "--device"):
        raise Pending("needs `kogpt2 serve --device`")
    import httpx

    port, model = free_port(), base_model_dir(ctx) if ctx.dry else default_model_dir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "kogpt2", "serve", "--model", str(model), "--port", str(port),
                             "--device", ctx.device, "--max-batch", "16"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + (proc.stderr.read().strip().splitlines() or ["?"])[-1])
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server not up after 120 s")
            time.sleep(0.5)
        requests, max_tokens = (16, 4) if ctx.dry else (128, 64)
        return asyncio.run(load(url, requests, max_tokens, concurrency=16))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def load(url: str, requests: int, max_tokens: int, concurrency: int) -> dict:
    """Fire ``requests`` completions, ``concurrency`` at a time; tokens/s, p50/p99 latency and errors."""
    import httpx

    queue, latencies, tokens, errors = list(range(requests)), [], 0, 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens, errors
        while queue:
            i = queue.pop()
            t = time.perf_counter()
            try:
                r = await http.post(url + "/v1/completions", timeout=300,
                                    json={"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.8, "seed": i})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t)
            tokens += r.json()["usage"]["completion_tokens"] if ok else 0
            errors += not ok

    async with httpx.AsyncClient() as http:
        t = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests failed")
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {"tok_s": round(tokens / wall, 1), "p50_ms": round(1000 * q[49]), "p99_ms": round(1000 * q[98]),
            "requests": requests}


# ----------------------------------------------------------------------------- the table


# Ordered by what the issue needs most, cheap rows with a target first (every compiled training
# row spends about a minute compiling): past the time budget, the rows left are skipped.
ROWS = [
    Row("gen-small-b1", gen_row("small", 1)),
    Row("gen-base-b1", gen_row("base", 1)),
    Row("train-base", with_target(train_row(preset="base", compile=True, batch_size=32, n_ctx=1024),
                                  lambda ctx, r: base_mfu_target(r))),
    Row("train-base-fsdp", with_target(train_row(preset="base", compile=True, batch_size=32, n_ctx=1024, fsdp=True),
                                       vs_base("train-base-fsdp", 0.9))),
    Row("train-gpt3-base-1k", with_target(train_row(preset="gpt3-base", compile=True, batch_size=32, n_ctx=1024),
                                          vs_base("train-gpt3-base-1k", 0.6))),
    Row("gen-small-b8", gen_row("small", 8)),
    Row("gen-base-b8", gen_row("base", 8)),
    Row("serve-c16", serve_row),
    Row("finetune-sentiment", finetune_row),
    Row("eval-bpc", eval_row),
    Row("train-small", train_row(preset="small", compile=True, batch_size=32, n_ctx=1024, sample=True)),
    Row("train-base-chunked", with_target(train_row(preset="base", compile=True, batch_size=32, n_ctx=1024,
                                                    loss_chunk=8192), lambda ctx, r: base_mfu_target(r))),
    Row("train-gpt3-base", train_row(preset="gpt3-base", compile=True, batch_size=16, n_ctx=2048)),
]


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def run_rows(ctx: Ctx, rows: list[Row], budget_s: float,
             on_row: Callable[[list[dict]], None] = lambda report: None) -> list[dict]:
    """Run each row guarded; past ``budget_s`` the remaining rows are skipped. ``on_row`` gets the
    report so far after every row."""
    report, start = [], time.monotonic()
    for row in rows:
        entry = {"row": row.name}
        if time.monotonic() - start > budget_s:
            entry.update(status="SKIPPED", reason=f"past the {budget_s:.0f} s budget")
        else:
            t = time.monotonic()
            try:
                res = row.run(ctx)
                ctx.results[row.name] = res
                entry.update(status="OK", **res)
            except Pending as e:
                entry.update(status="PENDING", reason=str(e))
            except Exception as e:  # noqa: BLE001 - one failing row must not stop the others
                entry.update(status="FAILED", reason=one_line(e))
            entry["seconds"] = round(time.monotonic() - t, 1)
            free(ctx)
        print(result_line(entry), flush=True)
        report.append(entry)
        on_row(report)
    return report


def result_line(e: dict) -> str:
    if e["status"] != "OK":
        return f"RESULT {e['row']} {e['status']} {e['reason']}"
    figures = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("row", "status", "target", "passed", "via"))
    tail = f" | target {e['target']} {'PASS' if e['passed'] else 'FAIL'}" if "target" in e else ""
    return f"RESULT {e['row']} OK {figures}{tail}"


def print_table(report: list[dict]) -> None:
    print(f"\n{'row':<20} {'status':<8} {'tok/s':>10} {'MFU':>6} {'vs HF':>6}  target")
    for e in report:
        mfu = f"{100 * e['mfu']:.1f}%" if "mfu" in e else ""
        tgt = (f"{e['target']}: {'PASS' if e['passed'] else 'FAIL'}" if "target" in e
               else e.get("reason", ""))
        print(f"{e['row']:<20} {e['status']:<8} {e.get('tok_s', ''):>10} {mfu:>6} {e.get('ratio', ''):>6}  {tgt}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="every row on the CPU with tiny shapes")
    ap.add_argument("--out", default="gpu_report.json", help="JSON report path")
    ap.add_argument("--rows", nargs="+", metavar="ROW", help=f"only these rows: {' '.join(r.name for r in ROWS)}")
    ap.add_argument("--budget-s", type=float, default=480.0, help="skip the rows left after this many seconds")
    args = ap.parse_args(argv)
    unknown = set(args.rows or []) - {r.name for r in ROWS}
    if unknown:
        ap.error(f"unknown rows {sorted(unknown)}")
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA device: run on a GPU, or pass --dry-run")
    rows = [r for r in ROWS if not args.rows or r.name in args.rows]
    import transformers

    t = time.monotonic()
    meta = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "dry_run": args.dry_run,
            "torch": torch.__version__, "transformers": transformers.__version__}

    def write(report: list[dict]) -> None:
        """The report so far, replaced atomically (a run killed at its time limit keeps its finished rows)."""
        meta.update(total_s=round(time.monotonic() - t, 1), rows=report)
        part = Path(f"{args.out}.part")
        part.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(part, args.out)

    with tempfile.TemporaryDirectory(prefix="kogpt2-gpu-") as tmp:
        report = run_rows(Ctx(dry=args.dry_run, device=device, tmp=Path(tmp)), rows, args.budget_s, write)
    print_table(report)
    write(report)
    print(f"report: {args.out} ({meta['total_s']} s)")
    return 1 if any(e["status"] == "FAILED" for e in report) else 0


if __name__ == "__main__":
    sys.exit(main())
