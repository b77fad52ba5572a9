"""Benchmark our Korean tokenizer against SKT KoGPT2 v2's: compression, throughput, exactness.

Slices of ``../shared/data/text`` are fixed: from every file (sorted by name) the first
``--train-mb * size/total`` bytes of whole lines train our tokenizer, and the lines right
after them (``--eval-mb`` in all) are the held-apart evaluation slice. The trained tokenizer
is cached in ``runs/bench/slices-<train>-<eval>/tok-<vocab>-a<alphabet>`` (``--retrain``).

Figures on the evaluation slice, ours and SKT v2 (anchor) side by side, ratio ours/SKT:
characters per token; encode throughput in MB/s of UTF-8 (``encode_batch``, 2 threads), also
per CPU-second summed over threads, which a busy shared machine distorts less (on two free
cores the wall-clock rate is about twice it); ``<unk>`` rate; share of lines decoding back exactly.

    python benchmarks/tokenizer.py                      # 60 MB train, 2 MB eval, vocab 51,200
    python benchmarks/tokenizer.py --train-mb 20        # smaller slice (ours ~2% below SKT there)
    python benchmarks/tokenizer.py --compare            # + byte-level BPE at the same vocab
    python benchmarks/tokenizer.py --check /root/kogpt2-runs/tok16k   # round-trip every corpus line
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "2")  # must precede the first tokenizers import
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import argparse  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "text"
SKT_V2 = ROOT.parent / "shared" / "anchors" / "skt_kogpt2_base_v2"
CACHE = ROOT / "runs" / "bench"
MB = 1 << 20


# --- fixed slices ------------------------------------------------------------------------


def make_slices(data: Path, train_mb: float, eval_mb: float, out: Path) -> tuple[Path, list[str]]:
    """Write the training slice to ``out/train.txt``; return it and the evaluation lines."""
    files = sorted(data.glob("*.txt"))
    if not files:
        raise SystemExit(f"no *.txt files in {data}")
    total = sum(f.stat().st_size for f in files)
    out.mkdir(parents=True, exist_ok=True)
    train_path, eval_lines = out / "train.txt", []
    with open(train_path, "w", encoding="utf-8", newline="") as train:
        for f in files:
            share = f.stat().st_size / total
            train_left, eval_left = train_mb * MB * share, eval_mb * MB * share
            with open(f, encoding="utf-8", newline="") as src:
                for line in src:
                    n = len(line.encode("utf-8"))
                    if train_left > 0:
                        train.write(line)
                        train_left -= n
                    elif eval_left > 0:
                        if line.strip() != "<|endoftext|>" and line.strip():
                            eval_lines.append(line.rstrip("\n"))
                        eval_left -= n
                    else:
                        break
    return train_path, eval_lines


# --- measurements ------------------------------------------------------------------------


def measure(backend, lines: list[str], unk_id: int | None) -> dict[str, float]:
    """Chars/token, MB/s (best of 2 ``encode_batch`` runs), ``<unk>`` rate, exact round-trip share."""
    n_bytes = sum(len(line.encode("utf-8")) for line in lines)
    backend.encode_batch(lines[:2000])  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        encodings = backend.encode_batch(lines)
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    fast_cpu = float("inf")
    for _ in range(2):
        c0 = time.process_time()
        backend.encode_batch_fast(lines)  # ids only, no offsets: what a data pipeline needs
        fast_cpu = min(fast_cpu, time.process_time() - c0)
    ids = [e.ids for e in encodings]
    n_tokens = sum(map(len, ids))
    n_unk = sum(i.count(unk_id) for i in ids) if unk_id is not None else 0
    decoded = backend.decode_batch(ids, skip_special_tokens=False)
    exact = sum(d == line for d, line in zip(decoded, lines))
    return {"chars_per_token": sum(map(len, lines)) / n_tokens, "mb_per_s": n_bytes / MB / best,
            "mb_per_cpu_s": n_bytes / MB / best_cpu, "fast_mb_per_cpu_s": n_bytes / MB / fast_cpu,
            "unk_rate": n_unk / n_tokens, "round_trip": exact / len(lines), "tokens": n_tokens}


def train_ours(train_path: Path, vocab_size: int, limit_alphabet: int, retrain: bool):
    from kogpt2.tokenizer import load_tokenizer, train_tokenizer

    out = train_path.parent / f"tok-{vocab_size}-a{limit_alphabet}"  # cached beside its training slice
    if retrain or not (out / "tokenizer.json").is_file():
        t0 = time.perf_counter()
        train_tokenizer([train_path], vocab_size=vocab_size, limit_alphabet=limit_alphabet, out_dir=out)
        print(f"trained ours ({vocab_size:,}) in {time.perf_counter() - t0:.1f} s -> {out}")
    return load_tokenizer(out)


def print_table(rows: dict[str, dict[str, float]], ref: str | None) -> None:
    names = list(rows)
    print(f"{'':22}" + "".join(f"{n:>14}" for n in names) + (f"{'ratio':>10}" if ref else ""))
    fmt = {"chars_per_token": "{:.3f}", "mb_per_s": "{:.2f}", "mb_per_cpu_s": "{:.2f}",
           "fast_mb_per_cpu_s": "{:.2f}", "unk_rate": "{:.4%}", "round_trip": "{:.2%}", "tokens": "{:,}"}
    for key, f in fmt.items():
        cells = "".join(f"{f.format(rows[n][key]):>14}" for n in names)
        ratio = ""
        if ref and key not in ("unk_rate", "round_trip", "tokens") and rows[ref][key]:
            ratio = f"{rows[names[0]][key] / rows[ref][key]:>10.3f}"
        print(f"{key:22}{cells}{ratio}")


# --- design comparison: byte-level BPE ---------------------------------------------------


def train_byte_level(train_path: Path, vocab_size: int):
    """GPT-2-style byte-level BPE at the same vocabulary size, same training slice."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from kogpt2.tokenizer import iter_text_lines

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["</s>"], show_progress=False)
    tok.train_from_iterator(iter_text_lines([train_path]), trainer=trainer)
    return tok


def partial_char_share(backend, byte_level: bool) -> float:
    """Share of vocabulary entries that are not whole UTF-8 characters (partial-syllable bytes)."""
    from kogpt2.tokenizer import BYTE_TOKENS

    vocab = backend.get_vocab(with_added_tokens=False)
    if not byte_level:
        return sum(t in set(BYTE_TOKENS) for t in vocab) / len(vocab)
    # GPT-2's byte <-> printable-char table: bytes 33..126, 161..172, 174..255 map to themselves.
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table, extra = {chr(b): b for b in keep}, 0
    for b in range(256):
        if b not in keep:
            table[chr(256 + extra)] = b
            extra += 1
    bad = 0
    for token in vocab:
        try:
            bytes(table[c] for c in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            bad += 1
    return bad / len(vocab)


def compare(train_path: Path, eval_lines: list[str], ours, vocab_size: int) -> None:
    t0 = time.perf_counter()
    bl = train_byte_level(train_path, vocab_size)
    print(f"\ndesign comparison (trained byte-level BPE {vocab_size:,} in {time.perf_counter() - t0:.1f} s)")
    rows = {"char+bytefb": measure(ours.backend_tokenizer, eval_lines, ours.unk_token_id),
            "byte-level": measure(bl, eval_lines, None)}
    print_table(rows, "byte-level")
    hangul = lambda vocab: sum(any("\uac00" <= c <= "\ud7a3" for c in t) for t in vocab) / len(vocab)  # noqa: E731
    print(f"{'partial-char vocab':22}{partial_char_share(ours.backend_tokenizer, False):>14.2%}"
          f"{partial_char_share(bl, True):>14.2%}")
    ours_hangul = hangul(ours.backend_tokenizer.get_vocab(with_added_tokens=False))
    bl_hangul = hangul([bl.decoder.decode([t]) for t in bl.get_vocab(with_added_tokens=False)])
    print(f"{'entries with Hangul':22}{ours_hangul:>14.2%}{bl_hangul:>14.2%}")


# --- whole-corpus exactness check --------------------------------------------------------


def check_corpus(tokenizer_dir: Path, data: Path, show: int = 5) -> None:
    """Round-trip every line of every ``*.txt`` in ``data``; count and show failures."""
    from kogpt2.tokenizer import load_tokenizer

    backend = load_tokenizer(tokenizer_dir).backend_tokenizer
    n_lines = n_chars = n_tokens = 0
    failures: list[tuple[str, int, str, str]] = []
    non_nfc = 0
    t0 = time.perf_counter()
    for f in sorted(data.glob("*.txt")):
        with open(f, encoding="utf-8", newline="") as src:
            lines = [line[:-1] if line.endswith("\n") else line for line in src]
        for start in range(0, len(lines), 20000):
            batch = lines[start:start + 20000]
            ids = [e.ids for e in backend.encode_batch(batch)]
            for k, (line, dec) in enumerate(zip(batch, backend.decode_batch(ids, skip_special_tokens=False))):
                if dec != line:
                    non_nfc += unicodedata.normalize("NFC", line) == dec
                    failures.append((f.name, start + k + 1, line, dec))
            n_lines += len(batch)
            n_chars += sum(map(len, batch))
            n_tokens += sum(map(len, ids))
    print(f"checked {tokenizer_dir} on {n_lines:,} lines of {data} in {time.perf_counter() - t0:.0f} s")
    print(f"chars/token {n_chars / n_tokens:.3f}; lines not round-tripping exactly: {len(failures)} "
          f"({non_nfc} of them only because the line is not NFC)")
    for name, lineno, line, dec in failures[:show]:
        print(f"  {name}:{lineno}: {line[:80]!r} -> {dec[:80]!r}")
    print(f"RESULT corpus_round_trip_failures={len(failures)} lines={n_lines} chars_per_token={n_chars / n_tokens:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="corpus directory (*.txt)")
    ap.add_argument("--train-mb", type=float, default=60.0, help="training slice size (MB)")
    ap.add_argument("--eval-mb", type=float, default=2.0, help="held-apart evaluation slice size (MB)")
    ap.add_argument("--vocab-size", type=int, default=51200)
    ap.add_argument("--limit-alphabet", type=int, default=3000, help="as in `kogpt2 tokenizer train`")
    ap.add_argument("--skt", type=Path, default=SKT_V2, help="SKT KoGPT2 v2 tokenizer directory")
    ap.add_argument("--retrain", action="store_true", help="retrain ours instead of using the cache")
    ap.add_argument("--compare", action="store_true", help="also measure a byte-level BPE (design choice)")
    ap.add_argument("--check", type=Path, metavar="TOKDIR",
                    help="only round-trip every line of --data with this tokenizer and report failures")
    args = ap.parse_args()
    if args.check:
        check_corpus(args.check, args.data)
        return
    from kogpt2.tokenizer import load_tokenizer

    slice_dir = CACHE / f"slices-{args.train_mb:g}-{args.eval_mb:g}"
    train_path, eval_lines = make_slices(args.data, args.train_mb, args.eval_mb, slice_dir)
    eval_mb = sum(len(line.encode("utf-8")) for line in eval_lines) / MB
    print(f"train slice {train_path.stat().st_size / MB:.1f} MB, eval slice {eval_mb:.1f} MB "
          f"({len(eval_lines):,} lines), RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}")
    ours = train_ours(train_path, args.vocab_size, args.limit_alphabet, args.retrain)
    rows = {"ours": measure(ours.backend_tokenizer, eval_lines, ours.unk_token_id)}
    ref = None
    if (args.skt / "tokenizer.json").is_file():
        skt = load_tokenizer(args.skt)
        rows["skt-v2"] = measure(skt.backend_tokenizer, eval_lines, skt.unk_token_id)
        ref = "skt-v2"
    else:
        print(f"(SKT v2 tokenizer not found at {args.skt}; ours only)")
    print()
    print_table(rows, ref)
    if args.compare:
        compare(train_path, eval_lines, ours, args.vocab_size)
    o, s = rows["ours"], rows.get(ref or "", {})
    print(f"RESULT chars_per_token={o['chars_per_token']:.4f} mb_per_s={o['mb_per_s']:.2f} "
          f"unk_rate={o['unk_rate']:.6f} round_trip={o['round_trip']:.4f}"
          + (f" skt_chars_per_token={s['chars_per_token']:.4f} skt_mb_per_s={s['mb_per_s']:.2f} "
             f"ratio_chars_per_token={o['chars_per_token'] / s['chars_per_token']:.3f}" if s else ""))


if __name__ == "__main__":
    main()
