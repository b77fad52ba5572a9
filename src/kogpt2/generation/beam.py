"""Beam search over the same ``Decoder`` and constraints as sampling (deterministic, not streamed).

Scores are summed log-probabilities divided by the generated length (length penalty 1, as
HF's default). The repetition penalty, n-gram bans, banned tokens and ``min_new_tokens`` apply
to each beam's log-probabilities (:func:`kogpt2.generation.processors.apply_constraints`). A
prompt is done when it holds ``num_beams`` finished hypotheses and no alive beam can beat the
worst of them. Stop sequences cut the final text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.decoder import Decoder
from kogpt2.generation.detok import IncrementalText
from kogpt2.generation.loop import left_pad, special_ids
from kogpt2.generation.processors import (LogitsProcessor, NgramIndex, apply_constraints, banned_ids, run_hooks,
                                          seen_mask)

DEAD = -1e9  # score of an unused beam slot


@dataclass
class Beam:
    """One hypothesis: its tokens so far and the state its constraints read."""

    config: SamplingConfig
    banned_ids: list[int]
    ngrams: NgramIndex | None
    tokens: list[int] = field(default_factory=list)

    @property
    def n_generated(self) -> int:
        return len(self.tokens)

    def extend(self, token: int) -> "Beam":
        ngrams = self.ngrams.copy() if self.ngrams is not None else None
        if ngrams is not None:
            ngrams.append(token)
        return Beam(self.config, self.banned_ids, ngrams, self.tokens + [token])


def beam_search(decoder: Decoder, tokenizer: Any, prompt_ids: list[list[int]], cfg: SamplingConfig, *,
                logits_processors: Sequence[LogitsProcessor] = ()) -> list[str]:
    """The ``num_return_sequences`` best continuations of each prompt, flattened in prompt order."""
    eos_id, pad_id = special_ids(tokenizer)
    dev = getattr(decoder, "device", torch.device("cpu"))
    B, nb = len(prompt_ids), cfg.num_beams
    ids, mask, pos = left_pad(prompt_ids, pad_id, dev)
    expand = torch.arange(B, device=dev).repeat_interleave(nb)
    ids, mask, pos = ids[expand], mask[expand], pos[expand]  # (B*nb, L)
    seqs = ids
    seen = seen_mask([p for p in prompt_ids for _ in range(nb)], decoder.vocab_size, dev)
    banned = banned_ids(tokenizer, cfg.banned_tokens)
    n = cfg.no_repeat_ngram_size
    beams = [Beam(cfg, banned, NgramIndex(n, p) if n else None) for p in prompt_ids for _ in range(nb)]
    beam_scores = torch.zeros(B, nb, device=dev)
    beam_scores[:, 1:] = DEAD  # the first step expands beam 0 only (all beams are equal)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    past = None
    with torch.inference_mode():
        for step in range(cfg.max_new_tokens):
            logits, past = decoder.forward_step(ids, past, mask, pos)  # (B*nb, V)
            logits = run_hooks(logits_processors, seqs, logits)
            logp = apply_constraints(logits.float().log_softmax(-1), beams, seen, eos_id)
            V = logp.shape[-1]
            scores = (beam_scores.view(-1, 1) + logp).view(B, nb * V)
            top_scores, top_idx = scores.topk(2 * nb, dim=-1)  # (B, 2nb)
            src, new_tok, new_scores = _select(top_scores.tolist(), top_idx.tolist(), beams, finished, done,
                                               nb, V, eos_id, pad_id, step)
            if all(done):
                break
            index = torch.tensor(src, device=dev)
            beams = [beams[i].extend(t) for i, t in zip(src, new_tok)]
            beam_scores = torch.tensor(new_scores, device=dev).view(B, nb)
            past = decoder.reorder(past, index)
            ids = torch.tensor(new_tok, dtype=torch.long, device=dev)[:, None]
            seen = seen[index].scatter_(1, ids, True)
            mask = torch.cat([mask[index], torch.ones_like(ids)], dim=1)
            seqs = torch.cat([seqs[index], ids], dim=1)
            pos = pos[index][:, -1:] + 1
    return _texts(tokenizer, prompt_ids, cfg, beams, beam_scores, finished, done, eos_id)


def _select(top_scores: list[list[float]], top_idx: list[list[int]], beams: list[Beam],
            finished: list[list[tuple[float, list[int]]]], done: list[bool], nb: int, V: int, eos_id: int,
            pad_id: int, step: int) -> tuple[list[int], list[int], list[float]]:
    """The next beams of every prompt: (source beam, token, score) lists; finished hypotheses recorded."""
    src, new_tok, new_scores = [], [], []
    for b in range(len(done)):
        picked: list[tuple[int, int, float]] = []
        for s, c in zip(top_scores[b], top_idx[b]):
            if done[b] or len(picked) == nb:
                break
            beam, tok = b * nb + c // V, c % V
            if tok == eos_id:
                finished[b].append((s / max(1, step), beams[beam].tokens))
            elif s > DEAD / 10:
                picked.append((beam, tok, s))
        picked += [(b * nb, pad_id, DEAD)] * (nb - len(picked))
        kept = sorted(x[0] for x in finished[b])[-nb:]
        if len(kept) >= nb and picked[0][2] / (step + 1) <= kept[0]:
            done[b] = True
        for beam, tok, s in picked:
            src.append(beam), new_tok.append(tok), new_scores.append(s)
    return src, new_tok, new_scores


def _texts(tokenizer: Any, prompt_ids: list[list[int]], cfg: SamplingConfig, beams: list[Beam],
           beam_scores: torch.Tensor, finished: list[list[tuple[float, list[int]]]], done: list[bool],
           eos_id: int) -> list[str]:
    """The best ``num_return_sequences`` texts of each prompt (alive beams count when not done)."""
    nb, texts = cfg.num_beams, []
    for b in range(len(prompt_ids)):
        if not done[b]:
            for k in range(nb):
                s = float(beam_scores[b, k])
                if s > DEAD / 10:
                    toks = beams[b * nb + k].tokens
                    finished[b].append((s / max(1, len(toks)), toks))
        best = sorted(finished[b], key=lambda x: -x[0])[:cfg.num_return_sequences]
        for _, toks in best:
            text = IncrementalText(tokenizer, prompt_ids[b], eos_id, cfg.stop, stream=False)
            texts.append(text.finish(toks)[0])
    return texts
