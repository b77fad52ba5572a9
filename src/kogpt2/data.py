"""Tokenized training shards: ``prepare`` a corpus, ``read_meta`` / ``load_split`` them.

Layout written by ``prepare`` (the trainer reads it with ``load_split``)::

    OUT/
      meta.json                      # format, dtype, counts, tokenizer hash, skips, options
      train/shard_00000.bin ...      # raw token ids, uint16 (uint32 if vocab >= 65,536)
      val/shard_00000.bin ...
      tokenizer/                     # the tokenizer used (save_pretrained)
      .resume/                       # one small JSON per finished shard (for re-runs)

Token stream: ``doc1 </s> doc2 </s> ...``; a document is its paragraphs joined with
``"\\n"``, encoded as one text with no special tokens added. Literal special-token
strings inside the text (``</s>``, ``<pad>`` ...) are encoded as plain characters, so
text can never forge a document boundary.

Pipeline, all in the reading process except tokenization (so dedup state is global):
NFC -> optional markup cleaning -> exclude list -> exact document dedup -> exact
paragraph dedup -> minimum length -> optional MinHash near-dedup -> seeded hash split
-> documents batched into shards of about ``shard_chars`` characters, each encoded and
written by a worker process (``encode_batch`` of the ``tokenizers`` backend).

Exact dedup (``dedup="paragraph"``, the default) removes (1) a document whose whole
text (after cleaning) equals an earlier document's, counted as
``duplicate_documents``, and (2) any paragraph (line) equal to one kept earlier anywhere
in the corpus, counted as ``duplicate_paragraph_lines``; a document left empty by (2)
counts as ``emptied_by_dedup_documents``. ``dedup="document"`` does only (1).

Example::

    kogpt2 data prepare ../shared/data/text --tokenizer runs/tok16k --out runs/data16k
    kogpt2 data inspect runs/data16k --n 3
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kogpt2.data_io import expand_inputs, iter_documents
from kogpt2.errors import KoGPT2Error
from kogpt2.tokenizer import EOS_ID

FORMAT = "kogpt2-shards-v1"
SPLITS = ("train", "val")
DEDUP_MODES = ("none", "document", "paragraph")


@dataclass
class PrepareOptions:
    """Options of ``prepare`` (and of ``kogpt2 data prepare``)."""

    val_fraction: float = 0.005
    """Share of documents sent to ``val`` by a seeded hash of their text."""
    seed: int = 1234
    """Key of the split hash; change it for a different (still stable) split."""
    workers: int = 2
    """Tokenizing processes; 0 tokenizes in the calling process."""
    dedup: str = "paragraph"
    """``paragraph`` (documents and paragraphs), ``document`` or ``none``."""
    clean: bool = False
    """Strip wiki / namuwiki markup and HTML remnants from every paragraph."""
    near_dedup: bool = False
    """Drop documents whose MinHash Jaccard estimate to a kept one is >= the threshold."""
    near_dedup_threshold: float = 0.8
    """Jaccard threshold of near-duplicate removal (character 5-gram shingles)."""
    exclude: list[str] = field(default_factory=list)
    """Exclude rules: ``title:T`` (first line equals T), ``regex:R`` (search), or a phrase."""
    min_chars: int = 0
    """Documents shorter than this (characters, after cleaning and dedup) are dropped."""
    text_field: str = "text"
    """JSON field holding the text in ``.jsonl`` inputs."""
    shard_chars: int = 4_000_000
    """Characters of text per shard (~2-3 M tokens at a 16k vocabulary)."""
    batch_docs: int = 256
    """Documents per ``encode_batch`` call inside a worker."""
    progress: bool = True
    """Show a tqdm progress bar (warnings about bad input always go to stderr)."""

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.workers < 0:
            problems.append(f"workers must be >= 0, got {self.workers}")
        if self.dedup not in DEDUP_MODES:
            problems.append(f"dedup must be one of {DEDUP_MODES}, got {self.dedup!r}")
        if not 0.0 < self.near_dedup_threshold <= 1.0:
            problems.append(f"near_dedup_threshold must be in (0, 1], got {self.near_dedup_threshold}")
        if self.min_chars < 0:
            problems.append(f"min_chars must be >= 0, got {self.min_chars}")
        if self.shard_chars < 1:
            problems.append(f"shard_chars must be >= 1, got {self.shard_chars}")
        if self.batch_docs < 1:
            problems.append(f"batch_docs must be >= 1, got {self.batch_docs}")
        if not self.text_field:
            problems.append("text_field must not be empty")
        if problems:
            raise KoGPT2Error("bad data options: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# Reading side: filters whose state must be global (dedup) live in the reader.

def _digest(text: str, key: bytes = b"") -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=key).digest()


def split_of(text: str, val_fraction: float, seed: int) -> str:
    """``"val"`` or ``"train"`` for a document text, by a seeded hash (stable per text)."""
    h = int.from_bytes(_digest(text, key=str(seed).encode()), "little")
    return "val" if h / 2.0**64 < val_fraction else "train"


class _DocFilter:
    """Turns raw paragraph lists into kept document texts, counting every removal."""

    def __init__(self, opts: PrepareOptions, stats: Counter) -> None:
        from kogpt2.data_clean import ExcludeRules, clean_paragraph

        self.opts, self.stats = opts, stats
        self.clean = clean_paragraph if opts.clean else None
        self.exclude = ExcludeRules(opts.exclude) if opts.exclude else None
        self.seen_docs: set[bytes] = set()
        self.seen_pars: set[bytes] = set()
        self.near = None
        if opts.near_dedup:
            from kogpt2.data_clean import NearDeduper

            self.near = NearDeduper(opts.near_dedup_threshold, seed=opts.seed)

    def _drop(self, reason: str, n_lines: int) -> None:
        self.stats[f"{reason}_documents"] += 1
        self.stats[f"{reason}_document_lines"] += n_lines

    def __call__(self, paragraphs: list[str]) -> list[str] | None:
        """Kept paragraphs of one document, or None if the whole document is dropped."""
        if self.clean is not None:
            cleaned = [self.clean(p) for p in paragraphs]
            kept = [p for p in cleaned if p.strip()]
            self.stats["emptied_by_cleaning_lines"] += len(paragraphs) - len(kept)
            paragraphs = kept
            if not paragraphs:
                return None
        n = len(paragraphs)
        if self.exclude is not None and self.exclude.matches(paragraphs):
            self._drop("excluded", n)
            return None
        if self.opts.dedup != "none":
            h = _digest("\n".join(paragraphs))
            if h in self.seen_docs:
                self._drop("duplicate", n)
                return None
            self.seen_docs.add(h)
        if self.opts.dedup == "paragraph":
            kept = []
            for p in paragraphs:
                h = _digest(p)
                if h not in self.seen_pars:
                    self.seen_pars.add(h)
                    kept.append(p)
            self.stats["duplicate_paragraph_lines"] += n - len(kept)
            if not kept:
                self.stats["emptied_by_dedup_documents"] += 1
                return None
            paragraphs, n = kept, len(kept)
        text_len = sum(len(p) for p in paragraphs) + n - 1
        if text_len < self.opts.min_chars:
            self._drop("too_short", n)
            return None
        if self.near is not None and self.near.is_duplicate("\n".join(paragraphs)):
            self._drop("near_duplicate", n)
            return None
        return paragraphs


# ---------------------------------------------------------------------------
# Tokenizing side: one task = one shard, encoded and written by a worker.

_WORKER_TOKENIZER = None


def _load_backend(tokenizer_json: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_padding()
    tok.no_truncation()
    tok.encode_special_tokens = True  # literal "</s>" in text stays text
    return tok


def _init_worker(tokenizer_json: str, threads: int) -> None:
    global _WORKER_TOKENIZER
    os.environ["RAYON_NUM_THREADS"] = str(threads)  # read when tokenizers' pool starts
    _WORKER_TOKENIZER = _load_backend(tokenizer_json)


def encode_documents(tokenizer, docs: list[str], dtype: str) -> np.ndarray:
    """Token ids of ``doc1 </s> doc2 </s> ...`` for one batch, as a flat array."""
    encs = tokenizer.encode_batch_fast(docs, add_special_tokens=False)
    ids: list[int] = []
    for e in encs:
        ids.extend(e.ids)
        ids.append(EOS_ID)
    return np.asarray(ids, dtype=dtype)


def _write_shard(path: str, docs: list[str], dtype: str, batch_docs: int) -> int:
    """Encode ``docs`` into ``path`` (written to a temp file, then renamed); returns tokens."""
    tok = _WORKER_TOKENIZER
    tmp = path + ".tmp"
    n = 0
    with open(tmp, "wb") as f:
        for i in range(0, len(docs), batch_docs):
            arr = encode_documents(tok, docs[i:i + batch_docs], dtype)
            arr.tofile(f)
            n += arr.size
    os.replace(tmp, path)
    return n


@dataclass
class _Shard:
    split: str
    index: int
    docs: list[str] = field(default_factory=list)
    paragraphs: int = 0
    chars: int = 0
    input_bytes: int = 0

    @property
    def rel_path(self) -> str:
        return f"{self.split}/shard_{self.index:05d}.bin"

    def key(self, salt: str) -> str:
        h = hashlib.blake2b(salt.encode(), digest_size=16)
        for d in self.docs:
            h.update(d.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()


class _InProcessExecutor:
    """The executor interface, run synchronously (``workers=0``)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


# ---------------------------------------------------------------------------

def _dtype_for(vocab_size: int) -> str:
    return "uint16" if vocab_size < 65536 else "uint32"


def _save_tokenizer_copy(tokenizer_dir: str | Path, out: Path):
    from kogpt2.tokenizer import load_tokenizer, tokenizer_hash

    hf = load_tokenizer(tokenizer_dir)
    tok_out = out / "tokenizer"
    if tok_out.exists():
        shutil.rmtree(tok_out)
    hf.save_pretrained(str(tok_out))
    backend = _load_backend(str(tok_out / "tokenizer.json"))
    thash = tokenizer_hash(hf)
    if tokenizer_hash(backend) != thash:
        raise RuntimeError(f"tokenizer copied to {tok_out} differs from {tokenizer_dir}")
    return hf, backend, thash


def _warn(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"warning: {msg}", file=sys.stderr)


class _ShardWriter:
    """Cuts kept documents into shards and has workers encode them, at most a few in flight.

    Progress is counted in input bytes, credited to a shard when it is finished, so the
    bar measures tokenized work, not reading (which runs ahead by at most a few shards).
    """

    def __init__(self, out: Path, opts: PrepareOptions, backend, dtype: str, salt: str, bar) -> None:
        self.out, self.opts, self.dtype, self.salt, self.bar = out, opts, dtype, salt, bar
        self.totals = {s: Counter() for s in SPLITS}
        self.shards: dict[str, list[str]] = {s: [] for s in SPLITS}
        self.current = {s: _Shard(s, 0) for s in SPLITS}
        self.inflight: dict[Future, _Shard] = {}
        self.max_inflight = max(1, opts.workers) + 1
        self.resumed = 0
        self.unassigned_bytes = 0
        if opts.workers == 0:
            global _WORKER_TOKENIZER
            _WORKER_TOKENIZER = backend
            self.executor: Any = _InProcessExecutor()
        else:
            threads = max(1, (os.cpu_count() or 1) // opts.workers)
            self.executor = ProcessPoolExecutor(
                opts.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                initargs=(str(out / "tokenizer" / "tokenizer.json"), threads))

    def on_bytes(self, n: int) -> None:
        self.unassigned_bytes += n

    def add(self, paragraphs: list[str]) -> None:
        """Queue one kept document (its paragraphs) in its split's current shard."""
        text = "\n".join(paragraphs)
        shard = self.current[split_of(text, self.opts.val_fraction, self.opts.seed)]
        shard.docs.append(text)
        shard.paragraphs += len(paragraphs)
        shard.chars += len(text)
        if shard.chars >= self.opts.shard_chars:
            self._cut(shard)
            self.current[shard.split] = _Shard(shard.split, shard.index + 1)

    def finish(self) -> None:
        """Cut the last partial shards and wait for every worker."""
        for s in SPLITS:
            if self.current[s].docs:
                self._cut(self.current[s])
        while self.inflight:
            self._wait_one()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _cut(self, shard: _Shard) -> None:
        shard.input_bytes, self.unassigned_bytes = self.unassigned_bytes, 0
        self.shards[shard.split].append(shard.rel_path)
        t = self.totals[shard.split]
        t["documents"] += len(shard.docs)
        t["paragraphs"] += shard.paragraphs
        t["chars"] += shard.chars
        done = _resumable(self.out, shard, self.salt, np.dtype(self.dtype).itemsize)
        if done is not None:
            self.resumed += 1
            self._credit(shard, done)
            return
        while len(self.inflight) >= self.max_inflight:
            self._wait_one()
        fut = self.executor.submit(_write_shard, str(self.out / shard.rel_path), shard.docs, self.dtype,
                                   self.opts.batch_docs)
        self.inflight[fut] = shard

    def _wait_one(self) -> None:
        finished, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
        for fut in finished:
            shard = self.inflight.pop(fut)
            try:
                n_tokens = fut.result()
            except OSError as e:
                raise KoGPT2Error(f"writing {self.out / shard.rel_path} failed ({e}); free disk space "
                                  "and re-run (finished shards are kept)") from None
            except BrokenProcessPool:
                raise KoGPT2Error("a tokenizing worker died (out of memory?); re-run with fewer --workers "
                                  "or a smaller --shard-chars (finished shards are kept)") from None
            marker = self.out / ".resume" / f"{shard.split}_{shard.index:05d}.json"
            marker.write_text(json.dumps({"key": shard.key(self.salt), "tokens": n_tokens}))
            self._credit(shard, n_tokens)

    def _credit(self, shard: _Shard, n_tokens: int) -> None:
        self.totals[shard.split]["tokens"] += n_tokens
        self.bar.update(shard.input_bytes)
        self.bar.set_postfix(tokens=f"{sum(t['tokens'] for t in self.totals.values()):,}")

    def split_meta(self) -> dict:
        keys = ("tokens", "documents", "paragraphs", "chars")
        return {s: {**{k: int(self.totals[s][k]) for k in keys}, "shards": self.shards[s]} for s in SPLITS}


# NOTE: the bundled model's context; `kogpt2 train` needs n_ctx+1 validation tokens to evaluate once.
TYPICAL_CONTEXT = 1024


def warn_short_val(val: dict, val_fraction: float, context: int = TYPICAL_CONTEXT) -> bool:
    """Warn (and return True) when the validation split cannot fill one ``context + 1`` token window."""
    if val["tokens"] > context:
        return False
    have = "is empty" if not val["tokens"] else f"holds only {val['tokens']:,} tokens ({val['documents']} documents)"
    _warn(f"the validation split {have}, fewer than one {context}-token context window: `kogpt2 train` will "
          f"refuse to evaluate with --n-ctx {context}; raise --val-fraction (now {val_fraction}), add documents, "
          "or train with a smaller --n-ctx or --eval-interval 0")
    return True


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise KoGPT2Error(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not ((out / ".resume").is_dir() or (out / "meta.json").is_file()):
        raise KoGPT2Error(f"--out {out} is a non-empty directory not written by `kogpt2 data prepare`; "
                          "give a new or empty directory")
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # only a finished run has a meta.json
    for s in SPLITS:
        (out / s).mkdir(exist_ok=True)
    (out / ".resume").mkdir(exist_ok=True)


def prepare(inputs: list[str | Path] | str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
            **options: Any) -> dict:
    """Clean, deduplicate, split and tokenize a corpus into memmappable shards.

    Args:
        inputs: files, directories or globs (``.txt``, ``.jsonl``, optionally ``.gz``).
        tokenizer_dir: a tokenizer (or model) directory; copied to ``out_dir/tokenizer``.
        out_dir: output directory; a re-run into it skips shards already finished.
        **options: fields of ``PrepareOptions`` (unknown names raise ``KoGPT2Error``).

    Returns:
        the ``meta.json`` dictionary written.
    """
    known = {f.name for f in fields(PrepareOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise KoGPT2Error(f"unknown data option(s) {unknown}; known: {sorted(known)}")
    opts = PrepareOptions(**options)
    files = expand_inputs([inputs] if isinstance(inputs, (str, Path)) else list(inputs))
    out = Path(out_dir)
    _prepare_out_dir(out)

    t0 = time.time()
    hf, backend, thash = _save_tokenizer_copy(tokenizer_dir, out)
    dtype = _dtype_for(len(hf))
    salt = json.dumps([FORMAT, thash, dtype])  # a shard is reused only if this and its text match
    stats: Counter = Counter()
    filt = _DocFilter(opts, stats)
    total_bytes = sum(p.stat().st_size for p in files)
    has_gz = any(p.name.endswith(".gz") for p in files)  # gz: uncompressed size unknown

    from tqdm import tqdm

    bar = tqdm(total=None if has_gz else total_bytes, unit="B", unit_scale=True, desc="prepare",
               disable=not opts.progress, dynamic_ncols=True)
    writer = _ShardWriter(out, opts, backend, dtype, salt, bar)
    try:
        for _path, paragraphs in iter_documents(files, stats, text_field=opts.text_field, warn=_warn,
                                                on_bytes=writer.on_bytes):
            kept = filt(paragraphs)
            if kept is not None:
                writer.add(kept)
        writer.finish()
    finally:
        writer.close()
        bar.close()

    _remove_stale(out, writer.shards)
    splits = writer.split_meta()
    if not any(s["documents"] for s in splits.values()):
        raise KoGPT2Error(f"no documents left in {[str(p) for p in files]} after reading and filtering "
                          f"(skipped: {dict(stats) or 'nothing'}); check the inputs and filter options")
    warn_short_val(splits["val"], opts.val_fraction)
    input_stats = {k: stats.pop(k, 0) for k in ("files", "lines", "separator_lines")}
    input_stats["bytes"] = total_bytes
    meta = {
        "format": FORMAT,
        "dtype": dtype,
        "vocab_size": len(hf),
        "tokenizer_hash": thash,
        "tokenizer": "tokenizer",
        "eos_id": EOS_ID,
        "splits": splits,
        "skipped": {k: v for k, v in sorted(stats.items()) if v},
        "inputs": [str(p) for p in files],
        "input_stats": input_stats,
        "options": {k: v for k, v in asdict(opts).items() if k != "progress"},
        "val_fraction": opts.val_fraction,
        "seed": opts.seed,
        "source_tokenizer": str(tokenizer_dir),
        "resumed_shards": writer.resumed,
        "seconds": round(time.time() - t0, 1),
    }
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "meta.json")
    return meta


def _resumable(out: Path, shard: _Shard, salt: str, itemsize: int) -> int | None:
    """Token count of an already finished identical shard, or None if it must be (re)written."""
    marker = out / ".resume" / f"{shard.split}_{shard.index:05d}.json"
    path = out / shard.rel_path
    if not (marker.is_file() and path.is_file()):
        return None
    try:
        done = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if done.get("key") != shard.key(salt) or path.stat().st_size != done.get("tokens", -1) * itemsize:
        return None
    return int(done["tokens"])


def _remove_stale(out: Path, shard_lists: dict[str, list[str]]) -> None:
    """Delete shard files and markers of an earlier run that this run did not produce."""
    for s in SPLITS:
        keep = {Path(p).name for p in shard_lists[s]}
        for f in (out / s).iterdir():
            if f.name not in keep:
                f.unlink()
        keep_markers = {f"{s}_{Path(p).stem.split('_')[1]}.json" for p in shard_lists[s]}
        for f in (out / ".resume").glob(f"{s}_*.json"):
            if f.name not in keep_markers:
                f.unlink()


# ---------------------------------------------------------------------------
# Reading shards back.

def read_meta(data_dir: str | Path) -> dict:
    """Load ``meta.json`` of a prepared data directory.

    Raises:
        KoGPT2Error: missing, unreadable or of another format, with the command that fixes it.
    """
    if Path(data_dir).is_file():
        raise KoGPT2Error(f"data directory {data_dir} is a file, not a directory; give the directory written "
                          "by `kogpt2 data prepare`")
    path = Path(data_dir) / "meta.json"
    fix = (f"run `kogpt2 data prepare CORPUS --tokenizer TOK --out {data_dir}` "
           "(an interrupted prepare leaves no meta.json; re-running it resumes)")
    if not path.is_file():
        raise KoGPT2Error(f"no meta.json in {data_dir}: not a prepared data directory; {fix}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KoGPT2Error(f"{path} is corrupt ({e}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise KoGPT2Error(f"{path} has format {got!r}, expected {FORMAT!r}; {fix}")
    missing = [k for k in ("dtype", "vocab_size", "eos_id", "splits") if k not in meta]
    if missing:
        raise KoGPT2Error(f"{path} lacks {missing}; {fix}")
    return meta


def load_split(data_dir: str | Path, split: str) -> list[np.memmap]:
    """Memory-map every shard of ``split`` (read-only), in order.

    Raises:
        KoGPT2Error: unknown split, or shard files missing / of the wrong size.
    """
    meta = read_meta(data_dir)
    if split not in meta["splits"]:
        raise KoGPT2Error(f"no split {split!r} in {data_dir}; available: {sorted(meta['splits'])}")
    dtype = np.dtype(meta["dtype"])
    maps = []
    for rel in meta["splits"][split]["shards"]:
        path = Path(data_dir) / rel
        if not path.is_file():
            raise KoGPT2Error(f"shard {path} is missing; re-run `kogpt2 data prepare` into {data_dir}")
        if path.stat().st_size % dtype.itemsize:
            raise KoGPT2Error(f"shard {path} is truncated; re-run `kogpt2 data prepare` into {data_dir}")
        maps.append(np.memmap(path, dtype=dtype, mode="r"))
    n = sum(m.size for m in maps)
    if n != meta["splits"][split]["tokens"]:
        raise KoGPT2Error(f"{data_dir}/{split} holds {n:,} tokens but meta.json says "
                          f"{meta['splits'][split]['tokens']:,}; re-run `kogpt2 data prepare` into it")
    return maps


def iter_documents_of(shard: np.ndarray, eos_id: int = EOS_ID) -> Iterator[np.ndarray]:
    """The token ids of each document in a shard (``</s>`` separators removed)."""
    ends = np.flatnonzero(shard == eos_id)
    start = 0
    for e in ends:
        yield shard[start:e]
        start = e + 1


# ---------------------------------------------------------------------------
# Human-readable reports.

def summary(meta: dict) -> str:
    """Counts per split and every skip reason of a ``meta.json``, as printable lines."""
    lines = [f"{meta['format']}  dtype={meta['dtype']}  vocab={meta['vocab_size']:,}  "
             f"tokenizer={meta.get('tokenizer_hash', '?')}"]
    for name, s in meta["splits"].items():
        cpt = s["chars"] / s["tokens"] if s["tokens"] else 0.0
        lines.append(f"{name:>5}: {s['tokens']:>13,} tokens  {s['documents']:>9,} documents  "
                     f"{s['paragraphs']:>10,} paragraphs  {s['chars']:>13,} chars  "
                     f"({cpt:.2f} chars/token, {len(s['shards'])} shards)")
    inp = meta.get("input_stats", {})
    if inp:
        lines.append("input: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in inp.items()))
    skipped = meta.get("skipped", {})
    lines.append("skipped: " + (", ".join(f"{k.replace('_', ' ')}={v:,}" for k, v in skipped.items())
                                if skipped else "nothing"))
    if meta.get("resumed_shards"):
        lines.append(f"resumed: {meta['resumed_shards']} finished shards reused")
    return "\n".join(lines)


def inspect(data_dir: str | Path, n: int = 3, split: str = "train", max_chars: int = 400,
            seed: int | None = None) -> str:
    """The counts of a data directory and ``n`` random documents decoded from ``split``."""
    from kogpt2.tokenizer import load_tokenizer

    meta = read_meta(data_dir)
    shards = load_split(data_dir, split)
    out = [summary(meta)]
    sizes = np.array([s.size for s in shards], dtype=np.float64)
    if n and not sizes.sum():
        out.append(f"--- the {split} split is empty: no document to show (prepare more text, or a larger "
                   "--val-fraction for the validation split) ---")
    if n == 0 or not sizes.sum():
        return "\n".join(out)
    tok = load_tokenizer(Path(data_dir) / meta.get("tokenizer", "tokenizer"))
    rng = np.random.default_rng(seed)
    eos = meta["eos_id"]
    for k in range(n):
        shard = shards[rng.choice(len(shards), p=sizes / sizes.sum())]
        pos = int(rng.integers(shard.size))
        before = np.flatnonzero(shard[max(0, pos - 200_000):pos] == eos)
        start = max(0, pos - 200_000) + int(before[-1]) + 1 if before.size else max(0, pos - 200_000)
        after = np.flatnonzero(shard[start:start + 200_000] == eos)
        end = start + int(after[0]) if after.size else min(shard.size, start + 200_000)
        text = tok.decode(np.asarray(shard[start:end]).tolist())
        more = f" ... (+{len(text) - max_chars:,} chars)" if len(text) > max_chars else ""
        out.append(f"--- {split} sample {k + 1}: {end - start:,} tokens, {len(text):,} chars ---")
        out.append(text[:max_chars] + more)
    return "\n".join(out)
