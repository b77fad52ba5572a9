"""The one decoding loop of KoGPT2: sampling, beam search, stop sequences, streaming.

Chat, PPLM, the adventure game and the server all call this module::

    import kogpt2
    print(kogpt2.generate("나는 어두운 숲 속을 거닐고 있다.", model="runs/mini", top_p=0.9))
    for chunk in kogpt2.stream("오늘 날씨는", model="runs/mini", repetition_penalty=2.0):
        print(chunk, end="", flush=True)

Design:
  * A model is seen through ``kogpt2.backends.Decoder.forward_step`` (torch fp32/bf16/int8,
    ONNX Runtime); override it to perturb the past (PPLM). ``logits_processors`` (HF-style
    ``fn(input_ids, scores) -> scores``) run before the built-in processing.
  * Prompts of different lengths are left-padded with an attention mask; position ids
    skip the padding. Finished rows leave the batch (the cache is re-indexed).
  * Every row has its own parameters and its own random generator, so a seeded row gives
    the same text alone or inside a batch (up to float rounding of padded batches).
  * Text is produced incrementally: a trailing run of byte-fallback tokens (a syllable or
    an emoji split into bytes) is held back until complete, and so is any text that could
    be the start of a stop sequence. The chunks concatenate to exactly the final text.
  * Prompt too long: it is left-truncated to ``context - max_new_tokens`` tokens with a
    warning (chat histories grow; keeping the most recent text is the useful choice).
    ``max_new_tokens >= context`` is an error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from kogpt2.backends import Decoder, TorchDecoder, load_decoder
from kogpt2.errors import KoGPT2Error

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SamplingConfig:
    """Decoding parameters of one request. Validated once; every problem in one error."""

    max_new_tokens: int = 64
    """Tokens to generate at most (eos and stop sequences end earlier)."""
    do_sample: bool = True
    """False = greedy (or beam search with ``num_beams > 1``)."""
    temperature: float = 1.0
    """Logits are divided by it; must be > 0 when sampling."""
    top_k: int = 0
    """Keep the k most likely tokens; 0 = off."""
    top_p: float = 1.0
    """Nucleus: keep the most likely tokens whose mass before them is < top_p; in (0, 1]."""
    min_p: float = 0.0
    """Drop tokens less likely than ``min_p`` times the most likely; in [0, 1)."""
    typical_p: float = 1.0
    """Locally typical sampling mass; in (0, 1], 1 = off."""
    repetition_penalty: float = 1.0
    """CTRL penalty on tokens already in prompt or output (KoGPT2 examples use 2.0); 1 = off."""
    no_repeat_ngram_size: int = 0
    """Never repeat an n-gram of this size (prompt included); 0 = off."""
    num_beams: int = 1
    """> 1: beam search (needs ``do_sample=False``; not streamed)."""
    num_return_sequences: int = 1
    """Continuations per prompt (sampling: seeds ``seed + j``; beams: the n best)."""
    stop: list[str] = field(default_factory=list)
    """Stop sequences (text, excluded from the output); eos always stops."""
    seed: int | None = None
    """Seed of this row's random generator; None = drawn from torch's global RNG."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        problems = self.problems()
        if problems:
            raise KoGPT2Error("invalid sampling options: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every invalid setting, as messages naming the fix."""
        p = []
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            p.append(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.do_sample and not self.temperature > 0:
            p.append(f"temperature must be > 0 when sampling, got {self.temperature} (use greedy decoding instead)")
        if self.top_k < 0:
            p.append(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            p.append(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.min_p < 1:
            p.append(f"min_p must be in [0, 1), got {self.min_p}")
        if not 0 < self.typical_p <= 1:
            p.append(f"typical_p must be in (0, 1], got {self.typical_p}")
        if not self.repetition_penalty > 0:
            p.append(f"repetition_penalty must be > 0 (1 = off), got {self.repetition_penalty}")
        if self.no_repeat_ngram_size < 0:
            p.append(f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}")
        if self.num_beams < 1 or self.num_return_sequences < 1:
            p.append("num_beams and num_return_sequences must be >= 1")
        if self.num_beams > 1 and self.do_sample:
            p.append("beam search is deterministic: set do_sample=False (--greedy) with num_beams > 1")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            p.append(f"num_return_sequences ({self.num_return_sequences}) cannot exceed num_beams ({self.num_beams})")
        if self.num_beams == 1 and not self.do_sample and self.num_return_sequences > 1:
            p.append("greedy decoding would return identical copies: sample, or use num_beams >= num_return_sequences")
        if any(not isinstance(s, str) or not s for s in self.stop):
            p.append(f"stop sequences must be non-empty strings, got {self.stop!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            p.append(f"seed must be an integer, got {self.seed!r}")
        return p

    def replace(self, **overrides: Any) -> "SamplingConfig":
        """A copy with some fields changed (unknown names are an error)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise KoGPT2Error(f"unknown sampling option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **overrides)


GENERATION_CONFIG_KEYS = ("do_sample", "temperature", "top_k", "top_p", "min_p", "typical_p",
                          "repetition_penalty", "no_repeat_ngram_size", "num_beams", "max_new_tokens")


def config_from_model_dir(path: str | Path | None, **overrides: Any) -> SamplingConfig:
    """Defaults from a model directory's ``generation_config.json`` (when present), then overrides.

    Keys the file sets to ``None`` and unknown keys are ignored.
    """
    values: dict[str, Any] = {}
    f = Path(path) / "generation_config.json" if path is not None else None
    if f is not None and f.is_file():
        data = json.loads(f.read_text(encoding="utf-8"))
        values = {k: data[k] for k in GENERATION_CONFIG_KEYS if data.get(k) is not None}
        if values.get("top_k") == 50 and "top_k" in data and not data.get("do_sample"):
            values.pop("top_k")  # HF's default, meaningless without sampling
    values.update(overrides)
    return SamplingConfig().replace(**values)


# ---------------------------------------------------------------------------- model loading

_CACHE: dict[tuple, tuple[Decoder, Any]] = {}


def load(model: Any = None, tokenizer: Any = None, backend: str = "torch", dtype: str = "fp32") -> tuple[Decoder, Any]:
    """Resolve a model and tokenizer given as None (bundled), a directory, or objects.

    Directories are loaded once and kept (the two most recent), so repeated calls are cheap.

    Returns:
        (decoder, tokenizer)
    """
    from kogpt2.tokenizer import load_tokenizer

    if model is None or isinstance(model, (str, Path)):
        key = (str(model), backend, dtype, id(tokenizer))
        if key not in _CACHE:
            decoder = load_decoder(model, backend=backend, dtype=dtype)
            tok = tokenizer if tokenizer is not None else load_tokenizer(_tokenizer_dir(model, decoder))
            while len(_CACHE) >= 2:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = (decoder, _as_tokenizer(tok))
        return _CACHE[key]
    decoder = load_decoder(model, backend=backend, dtype=dtype)
    if tokenizer is None:
        src = getattr(getattr(getattr(model, "model", model), "config", None), "_name_or_path", None)
        if not src or not Path(src, "tokenizer.json").is_file():
            raise KoGPT2Error("pass tokenizer=... with a loaded model (it has no tokenizer directory to load)")
        tokenizer = load_tokenizer(src)
    return decoder, _as_tokenizer(tokenizer)


def _tokenizer_dir(model: Any, decoder: Decoder) -> Any:
    """The directory the tokenizer of a loaded directory lives in (None = bundled)."""
    return getattr(decoder, "model_dir", None) or model


def _as_tokenizer(tok: Any) -> Any:
    if isinstance(tok, (str, Path)):
        from kogpt2.tokenizer import load_tokenizer

        return load_tokenizer(tok)
    return tok


def _special_ids(tokenizer: Any) -> tuple[int, int]:
    """(eos id, pad id) of a tokenizer; bos = eos = ``</s>`` in KoGPT2."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise KoGPT2Error("the tokenizer has no eos token; KoGPT2 tokenizers use </s>")
    pad = tokenizer.pad_token_id
    return int(eos), int(eos if pad is None else pad)


def encode_prompt(tokenizer: Any, prompt: str, context: int, max_new_tokens: int) -> list[int]:
    """Token ids of a prompt: empty -> ``[eos]`` (``</s>`` starts a document); left-truncated to fit."""
    if not isinstance(prompt, str):
        raise KoGPT2Error(f"prompts must be strings, got {type(prompt).__name__}")
    if max_new_tokens >= context:
        raise KoGPT2Error(f"max_new_tokens={max_new_tokens} does not fit the model's context of {context} "
                          f"tokens; ask for fewer than {context}")
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else []
    if not ids:
        ids = [tokenizer.eos_token_id]
    room = context - max_new_tokens
    if len(ids) > room:
        warnings.warn(f"prompt of {len(ids)} tokens + max_new_tokens={max_new_tokens} exceeds the context of "
                      f"{context}; keeping the last {room} prompt tokens", UserWarning, stacklevel=3)
        ids = ids[-room:]
    return ids


# ---------------------------------------------------------------------------- text of one row

def _is_byte_token(tokenizer: Any, token_id: int) -> bool:
    """Byte-fallback tokens (``<0xEA>``) decode to text only as a complete UTF-8 sequence."""
    t = tokenizer.convert_ids_to_tokens(token_id)
    return isinstance(t, str) and len(t) == 6 and t.startswith("<0x") and t.endswith(">")


class _Row:
    """One sequence being generated: its ids, emitted text, stop state and random generator."""

    def __init__(self, cfg: SamplingConfig, prompt_ids: list[int], tokenizer: Any, eos_id: int,
                 stream_text: bool):
        self.cfg = cfg
        self.prompt_ids = prompt_ids
        self.tok = tokenizer
        self.eos_id = eos_id
        self.stream_text = stream_text or bool(cfg.stop)
        self.gen: list[int] = []
        self.n_stable = 0  # generated tokens not in a trailing byte-token run
        self.emitted = ""
        self.done = False
        self.finish_reason: str | None = None
        self.ctx = [] if prompt_ids == [eos_id] else prompt_ids[-4:]
        self.ctx_text = self._decode(self.ctx) if self.ctx else ""
        self.generator: torch.Generator | None = None
        if cfg.do_sample:
            seed = cfg.seed if cfg.seed is not None else int(torch.randint(0, 2**62, (1,)))
            self.generator = torch.Generator().manual_seed(seed)
        self.ngrams: dict[tuple[int, ...], set[int]] = {}
        if cfg.no_repeat_ngram_size:
            seq = prompt_ids
            for i in range(len(seq) - cfg.no_repeat_ngram_size + 1):
                self._add_ngram(seq[i:i + cfg.no_repeat_ngram_size])

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def text_of(self, n: int) -> str:
        """Text of the first ``n`` generated tokens, decoded after the prompt's tail (keeps spaces)."""
        if not self.ctx:
            return self._decode(self.gen[:n])
        full = self._decode(self.ctx + self.gen[:n])
        return full[len(self.ctx_text):] if full.startswith(self.ctx_text) else self._decode(self.gen[:n])

    def _add_ngram(self, gram: Sequence[int]) -> None:
        self.ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def banned(self) -> set[int]:
        """Tokens that would repeat an n-gram (no_repeat_ngram_size)."""
        n = self.cfg.no_repeat_ngram_size
        seq = self.prompt_ids + self.gen
        if not n or len(seq) < n - 1:
            return set()
        return self.ngrams.get(tuple(seq[len(seq) - n + 1:]), set())

    def push(self, token: int) -> str:
        """Add a sampled token; return the new text chunk ("" if none yet)."""
        if token == self.eos_id:
            return self.finish("eos")
        self.gen.append(token)
        n = self.cfg.no_repeat_ngram_size
        if n:
            seq = self.prompt_ids + self.gen
            if len(seq) >= n:
                self._add_ngram(seq[-n:])
        if not _is_byte_token(self.tok, token):
            self.n_stable = len(self.gen)
        if len(self.gen) >= self.cfg.max_new_tokens:
            return self.finish("length")
        if not self.stream_text:
            return ""
        text = self.text_of(self.n_stable).rstrip("\ufffd")
        cut = self._stop_at(text)
        if cut is not None:
            return self.finish("stop", text[:cut])
        keep = len(text) - self._stop_holdback(text)
        chunk = text[len(self.emitted):keep] if keep > len(self.emitted) else ""
        self.emitted += chunk
        return chunk

    def _stop_at(self, text: str) -> int | None:
        """Index where the first stop sequence starts in ``text``, if any."""
        longest = max((len(s) for s in self.cfg.stop), default=0)
        start = max(0, len(self.emitted) - longest)
        hits = [i for i in (text.find(s, start) for s in self.cfg.stop) if i >= 0]
        return min(hits) if hits else None

    def _stop_holdback(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that begins some stop sequence."""
        best = 0
        for s in self.cfg.stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best

    def finish(self, reason: str, text: str | None = None) -> str:
        """End the row; return the rest of its text."""
        self.done, self.finish_reason = True, reason
        if text is None:
            text = self.text_of(len(self.gen))
            cut = self._stop_at(text) if self.cfg.stop else None
            if cut is not None:
                text, self.finish_reason = text[:cut], "stop"
        chunk = text[len(self.emitted):] if text.startswith(self.emitted) else ""
        self.emitted += chunk
        return chunk


# ---------------------------------------------------------------------------- logits processing

def _process(logits: torch.Tensor, rows: list[_Row], seen: torch.Tensor | None) -> torch.Tensor:
    """Repetition penalty, n-gram bans, temperature, top-k, top-p, typical-p, min-p (HF order).

    logits: (B, V) float32, one row per alive ``_Row``.
    """
    cfgs = [r.cfg for r in rows]
    if seen is not None:
        pen = torch.tensor([c.repetition_penalty for c in cfgs])[:, None]  # (B, 1)
        penalised = torch.where(logits > 0, logits / pen, logits * pen)
        logits = torch.where(seen, penalised, logits)
    for i, r in enumerate(rows):
        if r.cfg.no_repeat_ngram_size:
            banned = r.banned()
            if banned:
                logits[i, list(banned)] = -math.inf
    if not any(c.do_sample for c in cfgs):
        return logits
    temp = torch.tensor([c.temperature if c.do_sample else 1.0 for c in cfgs])[:, None]
    logits = logits / temp
    if any(c.top_k for c in cfgs):
        logits = _top_k(logits, torch.tensor([c.top_k for c in cfgs]))
    if any(c.top_p < 1 for c in cfgs):
        logits = _top_p(logits, torch.tensor([c.top_p for c in cfgs])[:, None])
    if any(c.typical_p < 1 for c in cfgs):
        logits = _typical_p(logits, torch.tensor([c.typical_p for c in cfgs])[:, None])
    if any(c.min_p > 0 for c in cfgs):
        probs = logits.softmax(-1)
        floor = torch.tensor([c.min_p for c in cfgs])[:, None] * probs.max(-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, -math.inf)
    return logits


def _top_k(logits: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Keep each row's k largest logits (k: (B,), 0 = keep all)."""
    kmax = int(k.max())
    top = logits.topk(min(kmax, logits.shape[-1]), dim=-1).values  # (B, kmax)
    kth = top.gather(1, (k.clamp(1, top.shape[-1]) - 1)[:, None])  # (B, 1)
    return logits.masked_fill((k[:, None] > 0) & (logits < kth), -math.inf)


def _top_p(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Keep the most likely tokens whose cumulative mass before them is < p (p: (B, 1))."""
    sorted_logits, idx = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
    remove_sorted = before >= p
    remove = remove_sorted.scatter(1, idx, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def _typical_p(logits: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """Locally typical sampling (Meister et al. 2022): keep tokens closest to the entropy."""
    logp = logits.log_softmax(-1)
    p = logp.exp()
    ent = -(p * logp).nan_to_num().sum(-1, keepdim=True)  # (B, 1)
    dist = (-logp - ent).abs()
    sorted_dist, idx = dist.sort(dim=-1)
    sorted_p = p.gather(1, idx)
    before = sorted_p.cumsum(-1) - sorted_p
    remove_sorted = (before >= mass) & (sorted_dist > sorted_dist[:, :1])
    remove = remove_sorted.scatter(1, idx, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def _choose(logits: torch.Tensor, rows: list[_Row]) -> list[int]:
    """Greedy argmax, or a draw from each sampling row's own generator."""
    out = logits.argmax(-1).tolist()
    if any(r.cfg.do_sample for r in rows):
        probs = logits.softmax(-1)
        for i, r in enumerate(rows):
            if r.cfg.do_sample:
                out[i] = int(torch.multinomial(probs[i], 1, generator=r.generator))
    return out


# ---------------------------------------------------------------------------- the loop

def _left_pad(prompt_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids), each (B, L), padded on the left."""
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, pos


def decode_rows(decoder: Decoder, tokenizer: Any, prompt_ids: list[list[int]], configs: list[SamplingConfig], *,
                should_stop: Callable[[int], bool] | None = None,
                logits_processors: Sequence[LogitsProcessor] = (),
                stream_text: bool = True, rows_out: list | None = None) -> Iterator[list[str]]:
    """The decoding loop over token ids. Yields, per step, each row's new text chunk.

    Args:
        decoder: the model's one-step forward.
        tokenizer: HF tokenizer (decoding, eos/pad ids).
        prompt_ids: one list of token ids per row (non-empty).
        configs: one ``SamplingConfig`` per row (``num_beams`` must be 1).
        should_stop: ``should_stop(row)`` True ends that row now (e.g. a closed connection).
        logits_processors: HF-style ``fn(input_ids (B, S), scores (B, V)) -> scores`` hooks,
            applied first; ``input_ids`` are the left-padded prompt + generated tokens of alive rows.
        stream_text: False decodes text only at the end (faster ``generate``).
        rows_out: if given, receives the ``_Row`` objects (finish reasons, token ids).
    """
    eos_id, pad_id = _special_ids(tokenizer)
    rows = [_Row(c, p, tokenizer, eos_id, stream_text) for c, p in zip(configs, prompt_ids)]
    if rows_out is not None:
        rows_out.extend(rows)
    ids, mask, pos = _left_pad(prompt_ids, pad_id)
    seen = None
    if any(c.repetition_penalty != 1 for c in configs):
        seen = torch.zeros((len(rows), decoder.vocab_size), dtype=torch.bool)
        rows_idx, cols = mask.nonzero(as_tuple=True)
        seen[rows_idx, ids[rows_idx, cols]] = True  # padding excluded
    seqs = ids if logits_processors else None
    alive = list(range(len(rows)))  # batch position -> row index
    past = None
    with torch.inference_mode():
        while alive:
            logits, past = decoder.forward_step(ids, past, mask, pos)  # (b, V)
            for proc in logits_processors:
                logits = proc(seqs, logits)
            alive_rows = [rows[j] for j in alive]
            logits = _process(logits, alive_rows, seen)
            tokens = _choose(logits, alive_rows)
            chunks = [""] * len(rows)
            for j, t in zip(alive, tokens):
                chunks[j] = rows[j].push(t)
                if not rows[j].done and should_stop is not None and should_stop(j):
                    chunks[j] += rows[j].finish("cancelled")
            yield chunks
            new = torch.tensor(tokens, dtype=torch.long)[:, None]  # (b, 1)
            keep = [k for k, j in enumerate(alive) if not rows[j].done]
            if len(keep) < len(alive):
                if not keep:
                    break
                index = torch.tensor(keep, dtype=torch.long)
                past = decoder.reorder(past, index)
                new, mask, pos = new[index], mask[index], pos[index]
                seen = seen[index] if seen is not None else None
                seqs = seqs[index] if seqs is not None else None
                alive = [alive[k] for k in keep]
            if seen is not None:
                seen.scatter_(1, new, True)
            if seqs is not None:
                seqs = torch.cat([seqs, new], dim=1)
            ids = new
            mask = torch.cat([mask, torch.ones_like(new)], dim=1)
            pos = pos[:, -1:] + 1


# ---------------------------------------------------------------------------- public API

def _config(config: SamplingConfig | None, overrides: dict[str, Any]) -> SamplingConfig:
    return (config or SamplingConfig()).replace(**overrides) if overrides else (config or SamplingConfig())


def generate(prompts: str | list[str], model: Any = None, tokenizer: Any = None,
             config: SamplingConfig | None = None, *, backend: str = "torch", dtype: str = "fp32",
             logits_processors: Sequence[LogitsProcessor] = (), **overrides: Any) -> str | list[str]:
    """Generate continuations (without the prompt).

    Args:
        prompts: one prompt, or a list (decoded together as a left-padded batch).
        model: None (bundled), a directory, a loaded HF model, or a ``Decoder``.
        tokenizer: None (the model directory's), a directory, or a loaded tokenizer.
        config: decoding parameters; ``**overrides`` change single fields.
        backend, dtype: for a model given as a directory (see ``kogpt2.backends``).
        logits_processors: HF-style hooks ``fn(input_ids, scores) -> scores``.

    Returns:
        a string for a single prompt with ``num_return_sequences == 1``; otherwise a list with
        ``num_return_sequences`` entries per prompt, in prompt order.
    """
    cfg = _config(config, overrides)
    decoder, tok = load(model, tokenizer, backend, dtype)
    single = isinstance(prompts, str)
    plist = [prompts] if single else list(prompts)
    if not plist:
        return []
    ids = [encode_prompt(tok, p, decoder.context, cfg.max_new_tokens) for p in plist]
    if cfg.num_beams > 1:
        from kogpt2.beam import beam_search

        texts = beam_search(decoder, tok, ids, cfg, logits_processors=logits_processors)
    else:
        n = cfg.num_return_sequences
        cfgs = [cfg if n == 1 or cfg.seed is None else cfg.replace(seed=cfg.seed + j)
                for _ in plist for j in range(n)]
        row_ids = [p for p in ids for _ in range(n)]
        texts = [""] * len(row_ids)
        for chunks in decode_rows(decoder, tok, row_ids, cfgs, logits_processors=logits_processors,
                                  stream_text=False):
            texts = [t + c for t, c in zip(texts, chunks)]
    return texts[0] if single and cfg.num_return_sequences == 1 else texts


def stream(prompt: str, model: Any = None, tokenizer: Any = None, config: SamplingConfig | None = None, *,
           backend: str = "torch", dtype: str = "fp32", logits_processors: Sequence[LogitsProcessor] = (),
           **overrides: Any) -> Iterator[str]:
    """Yield the continuation of one prompt as text chunks (never a broken syllable).

    The chunks concatenate to exactly what :func:`generate` returns for the same seed.
    Arguments as in :func:`generate`; ``num_beams`` and ``num_return_sequences`` must be 1.
    """
    cfg = _config(config, overrides)
    if cfg.num_beams > 1 or cfg.num_return_sequences > 1:
        raise KoGPT2Error("streaming produces one sequence: use num_beams=1 and num_return_sequences=1 "
                          "(or generate() / --no-stream)")
    decoder, tok = load(model, tokenizer, backend, dtype)
    ids = [encode_prompt(tok, prompt, decoder.context, cfg.max_new_tokens)]  # errors raise here, not lazily
    return (chunks[0] for chunks in decode_rows(decoder, tok, ids, [cfg], logits_processors=logits_processors)
            if chunks[0])


def stream_batch(prompts: list[str], model: Any, tokenizer: Any, configs: list[SamplingConfig], *,
                 should_stop: Callable[[int], bool] | None = None,
                 logits_processors: Sequence[LogitsProcessor] = ()) -> Iterator[list[str]]:
    """Batched decoding with per-row parameters; yields every step the new chunk of each row.

    Rows finish independently (eos, stop sequence, ``max_new_tokens``, or ``should_stop(row)``);
    a finished row's chunk is ``""``. Each prompt is one row: for several continuations of a
    prompt, repeat it (with different seeds). ``num_beams`` must be 1.
    """
    if len(prompts) != len(configs):
        raise KoGPT2Error(f"stream_batch needs one config per prompt, got {len(prompts)} prompts "
                          f"and {len(configs)} configs")
    bad = [i for i, c in enumerate(configs) if c.num_beams > 1 or c.num_return_sequences > 1]
    if bad:
        raise KoGPT2Error(f"stream_batch rows {bad}: num_beams and num_return_sequences must be 1 "
                          "(repeat a prompt to get several continuations)")
    decoder, tok = load(model, tokenizer)
    ids = [encode_prompt(tok, p, decoder.context, c.max_new_tokens) for p, c in zip(prompts, configs)]
    if not ids:
        return iter(())
    return decode_rows(decoder, tok, ids, configs, should_stop=should_stop, logits_processors=logits_processors)


__all__ = ["SamplingConfig", "generate", "stream", "stream_batch", "decode_rows", "load",
           "config_from_model_dir", "encode_prompt", "Decoder", "TorchDecoder"]
