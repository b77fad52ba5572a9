"""Benchmark ``kogpt2 data prepare``: throughput (MB/s of input) and tokens produced.

Runs the full pipeline (NFC, exact dedup, split, shards) on ``../shared/data/text`` with
2 worker processes, and as the reference, in the same run, the bare ceiling: reading the
same documents and ``encode_batch`` on them in one process with 2 tokenizer threads, no
writing. Reuses ``/root/kogpt2-runs/tok16k`` when present, else trains a 16k tokenizer.

    python benchmarks/data.py [--corpus ../shared/data/text] [--tokenizer DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOK = Path("/root/kogpt2-runs/tok16k")


def _reference(files: list[Path], tokenizer_json: Path) -> tuple[float, int]:
    """Seconds and tokens of read + NFC + ``encode_batch`` only (2 threads, one process)."""
    from collections import Counter

    from kogpt2.data import _load_backend, encode_documents
    from kogpt2.data_io import iter_documents

    tok = _load_backend(str(tokenizer_json))
    t0 = time.perf_counter()
    n, batch = 0, []
    for _, paragraphs in iter_documents(files, Counter()):
        batch.append("\n".join(paragraphs))
        if len(batch) == 256:
            n += encode_documents(tok, batch, "uint16").size
            batch = []
    if batch:
        n += encode_documents(tok, batch, "uint16").size
    return time.perf_counter() - t0, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "text"))
    ap.add_argument("--tokenizer", default=str(DEFAULT_TOK) if DEFAULT_TOK.is_dir() else None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"corpus {corpus} not found; pass --corpus", file=sys.stderr)
        return 2

    from kogpt2.data import prepare
    from kogpt2.data_io import expand_inputs

    files = expand_inputs([corpus])
    mb = sum(p.stat().st_size for p in files) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = args.tokenizer
        if tok_dir is None:
            from kogpt2.tokenizer import train_tokenizer

            tok_dir = os.path.join(tmp, "tok")
            t = time.perf_counter()
            train_tokenizer([corpus], vocab_size=16384, out_dir=tok_dir, show_progress=False)
            print(f"trained a 16k tokenizer in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        meta = prepare([corpus], tok_dir, os.path.join(tmp, "out"), workers=args.workers, progress=False)
        secs = time.perf_counter() - t
        os.environ["RAYON_NUM_THREADS"] = "2"  # before the reference's tokenizer pool starts
        ref_secs, ref_tokens = _reference(files, Path(tmp) / "out" / "tokenizer" / "tokenizer.json")

    tokens = sum(s["tokens"] for s in meta["splits"].values())
    chars = sum(s["chars"] for s in meta["splits"].values())
    rate, ref_rate = mb / secs, mb / ref_secs
    print(f"input: {len(files)} files, {mb:.1f} MB")
    print(f"prepare ({args.workers} processes): {secs:6.1f} s  {rate:5.2f} MB/s  "
          f"{tokens:,} tokens ({chars / tokens:.2f} chars/token), "
          f"train {meta['splits']['train']['tokens']:,} / val {meta['splits']['val']['tokens']:,}")
    print(f"reference (read + encode_batch only, 1 process, 2 threads): {ref_secs:6.1f} s  "
          f"{ref_rate:5.2f} MB/s  {ref_tokens:,} tokens")
    print(f"ratio prepare / reference: {rate / ref_rate:.2f}x")
    print(f"RESULT data_prepare_mb_per_s={rate:.2f} tokens={tokens} reference_mb_per_s={ref_rate:.2f} "
          f"ratio={rate / ref_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
