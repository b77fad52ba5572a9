"""Logits processing shared by sampling and beam search.

Two stages, in Hugging Face's order:
  * constraints (:func:`apply_constraints`, sampling and beam search alike): repetition penalty,
    n-gram bans, banned tokens, and ``</s>`` masked until ``min_new_tokens``;
  * sampling filters (:func:`apply_sampling`): temperature, top-k, top-p, typical-p, min-p;
then :func:`choose` takes each row's token. Every tensor is made on the scores' device.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch

from kogpt2.generation.config import SamplingConfig

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""HF-style hook ``fn(input_ids (B, S), scores (B, V)) -> scores``."""


class NgramIndex:
    """The n-grams of one sequence, to ban the token that would repeat one (``no_repeat_ngram_size``)."""

    def __init__(self, n: int, seq: Sequence[int]):
        self.n = n
        self.seq: list[int] = []
        self.next: dict[tuple[int, ...], set[int]] = {}
        for t in seq:
            self.append(t)

    def append(self, token: int) -> None:
        self.seq.append(token)
        if len(self.seq) >= self.n:
            gram = self.seq[-self.n:]
            self.next.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def banned(self) -> set[int]:
        """Tokens that would complete an n-gram already in the sequence."""
        if len(self.seq) < self.n - 1:
            return set()
        return self.next.get(tuple(self.seq[len(self.seq) - self.n + 1:]), set())

    def copy(self) -> "NgramIndex":
        new = NgramIndex.__new__(NgramIndex)
        new.n, new.seq = self.n, list(self.seq)
        new.next = {k: set(v) for k, v in self.next.items()}
        return new


class Constrained(Protocol):
    """What :func:`apply_constraints` reads of a row (a sampled row or a beam)."""

    config: SamplingConfig
    banned_ids: list[int]
    ngrams: NgramIndex | None

    @property
    def n_generated(self) -> int: ...


def banned_ids(tokenizer: Any, tokens: Iterable[str]) -> list[int]:
    """Ids of ``tokens`` that are in the vocabulary (others cannot be generated anyway).

    NOTE: no tokens (the usual case) skips ``get_vocab``, which builds a dict of the whole vocabulary:
    it was 4% of the server's decoding thread, called for every joining row.
    """
    tokens = list(tokens)
    if not tokens:
        return []
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    return sorted({vocab[t] for t in tokens if t in vocab})


def check_single_tokens(tokenizer: Any, tokens: Iterable[str]) -> None:
    """Raise a one-line ``KoGPT2Error`` for any of ``tokens`` (``banned_tokens`` a user gave) that is not
    one token of ``tokenizer``: it could never be generated as such, so banning it would do nothing."""
    from kogpt2.errors import KoGPT2Error

    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        shown = "; ".join(f"{t!r} splits into {' '.join(map(repr, tokenizer.tokenize(t)))}" for t in missing)
        raise KoGPT2Error(f"--banned-tokens: not single tokens of this tokenizer ({shown}); give whole tokens, "
                          "as `kogpt2 tokenizer encode TEXT --tokens --tokenizer MODEL` prints them")


def seen_mask(prompts: Sequence[Sequence[int]], vocab_size: int, device: torch.device) -> torch.Tensor:
    """(B, V) bool: which tokens each row's prompt holds (for the repetition penalty)."""
    seen = torch.zeros((len(prompts), vocab_size), dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        seen[i, torch.tensor(list(p), dtype=torch.long, device=device)] = True
    return seen


def apply_constraints(scores: torch.Tensor, rows: Sequence[Constrained], seen: torch.Tensor | None,
                      eos_id: int) -> torch.Tensor:
    """Repetition penalty, n-gram bans, banned tokens, ``</s>`` before ``min_new_tokens``.

    Args:
        scores: (B, V) logits or log-probabilities (the penalty divides positive scores and
            multiplies negative ones, as CTRL and HF do); changed in place and returned.
        rows: one per score row.
        seen: (B, V) tokens already in each row, or None when no row has a penalty.
        eos_id: the ``</s>`` id.
    """
    cfgs = [r.config for r in rows]
    if seen is not None and any(c.repetition_penalty != 1 for c in cfgs):
        # NOTE: only the seen entries are touched (a few hundred per row, where a dense torch.where
        # over (16, 16,384) took 1.8 ms of a server step)
        pen = torch.tensor([c.repetition_penalty for c in cfgs], device=scores.device, dtype=scores.dtype)
        r, c = seen.nonzero(as_tuple=True)
        v, p = scores[r, c], pen[r]
        scores[r, c] = torch.where(v > 0, v / p, v * p)
    row_ids: list[int] = []
    col_ids: list[int] = []
    for i, r in enumerate(rows):
        masked = list(r.banned_ids)
        if r.ngrams is not None:
            masked += r.ngrams.banned()
        if r.n_generated < r.config.eos_blocked_until:
            masked.append(eos_id)
        row_ids += [i] * len(masked)
        col_ids += masked
    if col_ids:
        scores[torch.tensor(row_ids, device=scores.device), torch.tensor(col_ids, device=scores.device)] = -math.inf
    return scores


def apply_sampling(logits: torch.Tensor, cfgs: Sequence[SamplingConfig]) -> torch.Tensor:
    """Temperature, top-k, top-p, typical-p, min-p for the sampling rows (greedy rows untouched)."""
    if not any(c.do_sample for c in cfgs):
        return logits
    dev = logits.device

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, device=dev, dtype=logits.dtype)[:, None]

    logits = logits / column([c.temperature if c.do_sample else 1.0 for c in cfgs])
    if any(c.do_sample and c.top_k for c in cfgs):
        logits = top_k(logits, torch.tensor([c.top_k if c.do_sample else 0 for c in cfgs], device=dev))
    if any(c.do_sample and c.top_p < 1 for c in cfgs):
        logits = top_p(logits, column([c.top_p if c.do_sample else 1.0 for c in cfgs]))
    if any(c.do_sample and c.typical_p < 1 for c in cfgs):
        logits = typical_p(logits, column([c.typical_p if c.do_sample else 1.0 for c in cfgs]))
    if any(c.do_sample and c.min_p > 0 for c in cfgs):
        probs = logits.softmax(-1)
        floor = column([c.min_p if c.do_sample else 0.0 for c in cfgs]) * probs.max(-1, keepdim=True).values
        logits = logits.masked_fill(probs < floor, -math.inf)
    return logits


def top_k(logits: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Keep each row's k largest logits (k: (B,), 0 = all; k above the vocabulary = all)."""
    V = logits.shape[-1]
    k = k.clamp(0, V)
    top = logits.topk(int(k.max()), dim=-1).values  # (B, kmax)
    kth = top.gather(1, (k.clamp(1, top.shape[-1]) - 1)[:, None])  # (B, 1)
    return logits.masked_fill((k[:, None] > 0) & (logits < kth), -math.inf)


TOP_P_CANDIDATES = 1024
"""How many of a row's largest logits ``top_p`` looks at first on the CPU (all when the nucleus is larger)."""


def top_p(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Keep the most likely tokens whose mass before them is < p (p: (B, 1)); the top token always stays.

    Tokens tied with the last one kept stay too. Only each row's cut-off value is needed, so the
    values are sorted without their indices.

    NOTE: on the CPU a row's nucleus is first looked for among its ``TOP_P_CANDIDATES`` largest
    logits (``np.partition``, then a sort of those few; the mass against the whole row's
    log-sum-exp). Rows whose nucleus is wider are sorted whole, in numpy. A 16-row server step
    spent 3 ms here with a full sort of (16, 16,384) and 14 ms with ``torch.sort`` and indices.
    """
    if logits.device.type == "cpu" and logits.dtype == torch.float32:
        cutoff = _top_p_cutoff_cpu(logits.detach().numpy(), p.detach().cpu().numpy().astype(np.float32))
        return logits.masked_fill(logits < torch.from_numpy(cutoff), -math.inf)
    desc = logits.sort(dim=-1, descending=True).values
    return logits.masked_fill(logits < _cutoff_of_sorted(desc, p), -math.inf)


def _cutoff_of_sorted(desc: torch.Tensor, p: torch.Tensor, lse: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1) the smallest kept value, given each row's values in descending order (``lse``: the
    log-sum-exp of the whole row when ``desc`` holds only its largest values)."""
    probs = desc.softmax(-1) if lse is None else (desc - lse).exp()
    before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens (non-decreasing)
    n_keep = torch.searchsorted(before, p.to(before.dtype).contiguous()).clamp(min=1)  # (B, 1): how many are < p
    return desc.gather(1, n_keep - 1)


def _top_p_cutoff_cpu(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``_cutoff_of_sorted`` for a CPU float32 (B, V) array, looking at the largest values first."""
    B, V = x.shape
    k = TOP_P_CANDIDATES
    cutoff = np.empty((B, 1), np.float32)
    wide = np.arange(B)
    if V > 2 * k:
        cand = np.partition(x, V - k, axis=-1)[:, V - k:]
        desc = torch.from_numpy(np.ascontiguousarray(np.sort(cand, axis=-1)[:, ::-1]))
        lse = torch.from_numpy(x).logsumexp(-1, keepdim=True)
        cut = _cutoff_of_sorted(desc, torch.from_numpy(p), lse).numpy()
        inside = cut[:, 0] > desc[:, -1].numpy()  # the nucleus ends before the last candidate
        cutoff[inside] = cut[inside]
        wide = np.flatnonzero(~inside)
    if len(wide):
        desc = torch.from_numpy(np.ascontiguousarray(np.sort(x[wide], axis=-1)[:, ::-1]))
        cutoff[wide] = _cutoff_of_sorted(desc, torch.from_numpy(p[wide])).numpy()
    return cutoff


def typical_p(logits: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
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


def choose(logits: torch.Tensor, cfgs: Sequence[SamplingConfig],
           generators: Sequence[torch.Generator | None]) -> list[int]:
    """Greedy argmax, or a draw from each sampling row's own (CPU) generator.

    NOTE: probabilities are drawn on the CPU so a seed gives the same text on any device.
    """
    out = argmax_rows(logits)
    if any(c.do_sample for c in cfgs):
        probs = logits.float().softmax(-1).cpu()
        for i, (c, g) in enumerate(zip(cfgs, generators)):
            if c.do_sample:
                out[i] = draw(probs[i], g)
    return out


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token id from (V,) probabilities, by inverting their cumulative sum (float64) at a uniform draw.

    NOTE: ``torch.multinomial`` took 340 us for one draw from 16,384 tokens (it draws an
    exponential per token); this takes 15 us and one number from ``generator``.
    """
    cdf = probs.double().cumsum(0)
    u = torch.rand((), generator=generator, dtype=torch.float64) * cdf[-1]
    i = int(torch.searchsorted(cdf, u, right=True))  # first token whose cumulative mass exceeds u
    if i >= len(cdf):  # u rounded up to the total: the last token with any mass
        i = int(torch.nonzero(probs).max())
    return i


def argmax_rows(scores: torch.Tensor) -> list[int]:
    """Index of each row's largest score, the first one on ties (as ``torch.argmax``).

    NOTE: a CPU float32 array goes through numpy: its SIMD argmax took 22 us for (8, 51,200)
    where torch's took 560 us on one thread (and several ms on two, when ONNX Runtime's
    spinning threads held the second core), 4% of a batch-8 step.
    """
    if scores.device.type == "cpu" and scores.dtype == torch.float32:
        return scores.detach().numpy().argmax(-1).tolist()
    return scores.argmax(-1).tolist()


def run_hooks(hooks: Sequence[LogitsProcessor], input_ids: torch.Tensor | None, scores: torch.Tensor) -> torch.Tensor:
    """Apply user hooks in order."""
    for hook in hooks:
        scores = hook(input_ids, scores)
    return scores
