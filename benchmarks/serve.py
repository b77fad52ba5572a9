"""Load test of ``kogpt2 serve`` on loopback: dynamic batching against one-at-a-time decoding.

Starts the server in this process (uvicorn on a free 127.0.0.1 port), fires a bounded number of
completion requests (144 in all) at concurrency 1, 4 and 16, then restarts it with
``max_batch=1`` (one request decoded at a time) and repeats concurrency 16. The concurrency-16
runs also carry one long request (``--long-tokens``, sent first): with continuous batching the
short requests join and leave the batch beside it instead of waiting for it. Every 8th request
of each run is poisoned (a sampler-crashing ``temperature`` of 1e-300, or an invalid body): they
share batches with the others, and must not fail them. Prints tokens/s, p50/p99 latency and the
errors of the well-formed requests per run (the long request's tokens count in tok/s, its latency
is printed apart), and how the poisoned ones were answered; the last line compares the two servers
at concurrency 16::

    RESULT batched_tok_s=<> sequential_tok_s=<> ratio=<> p99_ms=<> long_ms=<> errors=<> poisoned=<status:count,...>

Model: the bundled ``kogpt2-small`` when present, else a random model of the ``mini`` shape
(6 layers, 384 wide) with a tokenizer trained on the test fixture sentences. CPU only, one
torch thread (the machine is shared)::

    python benchmarks/serve.py
    python benchmarks/serve.py --model runs/mini --max-tokens 64 --long-tokens 512
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["오늘 아침에", "나는 어두운 숲 속을", "서울의 봄은", "우리 집 고양이가", "옛날 옛적에", "비가 오는 날에는"]
# mixed into the load: a value that crashed the sampler (issue 18), and a body refused with 422
POISON = [{"prompt": "a", "temperature": 1e-300, "max_tokens": 4}, {"prompt": "a", "temperature": 3.0}]
POISON_EVERY = 8


def mini_model_dir(out: Path) -> Path:
    """The bundled model if present, else a random ``mini``-shaped GPT-2 saved to ``out``."""
    from transformers import GenerationConfig

    from kogpt2.config import PRESETS
    from kogpt2.paths import bundled_model_dir
    from kogpt2.tokenizer import load_tokenizer, train_tokenizer

    if (bundled_model_dir() / "config.json").is_file():
        return bundled_model_dir()
    from transformers import GPT2Config, GPT2LMHeadModel

    train_tokenizer([ROOT / "tests" / "fixtures" / "korean_sentences.txt"], vocab_size=2000, min_frequency=1,
                    out_dir=out, show_progress=False)
    tok = load_tokenizer(out)
    shape = PRESETS["mini"]
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=shape.n_positions, n_embd=shape.n_embd, n_layer=shape.n_layer,
                     n_head=shape.n_head, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).eval().save_pretrained(out)
    GenerationConfig(bos_token_id=1, eos_token_id=1, pad_token_id=3).save_pretrained(out)
    return out


class Server:
    """uvicorn serving ``create_app(model_dir)`` in a thread, on a free loopback port."""

    def __init__(self, model_dir: Path, max_batch: int, backend: str = "auto", dtype: str = "auto") -> None:
        import uvicorn

        from kogpt2.serve import ServeConfig, create_app

        app = create_app(model_dir, ServeConfig(max_batch=max_batch, max_queue=256, max_wait_ms=5), backend=backend,
                         dtype=dtype)
        self.backend = type(app.state.kogpt2.batcher.decoder).__name__
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


async def load(url: str, requests: int, concurrency: int, max_tokens: int, long_tokens: int = 0) -> dict:
    """Fire ``requests`` completions from ``concurrency`` clients, every ``POISON_EVERY``-th one
    poisoned, plus one long request of ``long_tokens`` (0: none) sent first; tokens/s, latencies and
    errors of the well-formed ones, status codes of the poisoned, the long request's latency."""
    import httpx

    latencies, tokens, errors, poisoned, long_s = [], 0, 0, {}, float("nan")
    queue = list(range(requests))

    async def long_client(http: httpx.AsyncClient) -> None:
        nonlocal tokens, errors, long_s
        body = {"prompt": PROMPTS[0], "max_tokens": long_tokens, "temperature": 0.8, "top_p": 0.95, "seed": 999_999,
                "min_tokens": long_tokens}
        t0 = time.perf_counter()
        try:
            r = await http.post(url + "/v1/completions", json=body, timeout=600)
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        long_s = time.perf_counter() - t0
        if ok:
            tokens += r.json()["usage"]["completion_tokens"]
        else:
            errors += 1

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens, errors
        while queue:
            i = queue.pop()
            if i % POISON_EVERY == POISON_EVERY - 1:
                try:
                    code = (await http.post(url + "/v1/completions", json=POISON[i // POISON_EVERY % 2],
                                            timeout=300)).status_code
                except httpx.HTTPError:
                    code = 0
                poisoned[code] = poisoned.get(code, 0) + 1
                continue
            body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0.8,
                    "top_p": 0.95, "seed": i}
            t0 = time.perf_counter()
            try:
                r = await http.post(url + "/v1/completions", json=body, timeout=300)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            if ok:
                tokens += r.json()["usage"]["completion_tokens"]
            else:
                errors += 1

    async with httpx.AsyncClient() as http:
        start = time.perf_counter()
        longs = [long_client(http)] if long_tokens else []
        await asyncio.gather(*longs, *(client(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"tok_s": tokens / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "errors": errors, "requests": requests, "wall_s": wall, "poisoned": poisoned, "long_ms": 1000 * long_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: bundled, else random mini)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per request (default 64)")
    parser.add_argument("--long-tokens", type=int, default=256,
                        help="tokens of the long request mixed into the concurrency-16 runs (default 256; 0: none)")
    parser.add_argument("--backend", default="auto", help="as `kogpt2 serve --backend` (default auto)")
    parser.add_argument("--dtype", default="auto", help="as `kogpt2 serve --dtype` (default auto)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # the poisoned requests' failures are logged with tracebacks by the server; counted here instead
    logging.getLogger("kogpt2.serve").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else mini_model_dir(Path(tmp))
        print(f"model: {model_dir}  max_tokens={args.max_tokens}  torch threads=1")
        runs = [("batched", 16, 1, 16), ("batched", 16, 4, 32), ("batched", 16, 16, 48),
                ("sequential", 1, 16, 48)]
        results = {}
        print(f"{'server':<11} {'conc':>4} {'reqs':>5} {'tok/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  poisoned")
        for mode in ("batched", "sequential"):
            with Server(model_dir, 16 if mode == "batched" else 1, args.backend, args.dtype) as srv:
                print(f"{mode} server decodes with {srv.backend}", flush=True)
                asyncio.run(load(srv.url, 4, 4, 4))  # warm-up
                for name, _, conc, reqs in (r for r in runs if r[0] == mode):
                    res = asyncio.run(load(srv.url, reqs, conc, args.max_tokens, args.long_tokens if conc == 16 else 0))
                    results[(name, conc)] = res
                    print(f"{name:<11} {conc:>4} {reqs:>5} {res['tok_s']:>8.1f} {res['p50_ms']:>8.0f} "
                          f"{res['p99_ms']:>8.0f} {res['errors']:>6}  {res['poisoned']}"
                          + (f"  long request {res['long_ms']:.0f} ms" if conc == 16 else ""), flush=True)
    b, s = results[("batched", 16)], results[("sequential", 16)]
    errors = sum(r["errors"] for r in results.values())
    poisoned: dict[int, int] = {}
    for r in results.values():
        for code, n in r["poisoned"].items():
            poisoned[code] = poisoned.get(code, 0) + n
    answered = ",".join(f"{code}:{n}" for code, n in sorted(poisoned.items()))
    ratio = b["tok_s"] / s["tok_s"] if s["tok_s"] else float("nan")
    print(f"batched vs one-at-a-time at concurrency 16: {b['tok_s']:.1f} / {s['tok_s']:.1f} tok/s = {ratio:.2f}x "
          "(target >= 3x)")
    print(f"RESULT batched_tok_s={b['tok_s']:.1f} sequential_tok_s={s['tok_s']:.1f} ratio={ratio:.2f} "
          f"p99_ms={b['p99_ms']:.0f} long_ms={b['long_ms']:.0f} errors={errors} poisoned={answered}")


if __name__ == "__main__":
    main()
