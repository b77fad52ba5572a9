"""Beam search over the same ``Decoder`` as the sampler (deterministic, not streamed).

Scores are summed log-probabilities divided by the generated length (length penalty 1,
as HF's default). A prompt is done when it holds ``num_beams`` finished hypotheses and no
alive beam can beat the worst of them. Stop sequences cut the final text.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from kogpt2.backends import Decoder
from kogpt2.sampling import LogitsProcessor, SamplingConfig, _left_pad, _Row, _special_ids


def _penalise(logp: torch.Tensor, seqs: torch.Tensor, mask: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Repetition penalty and n-gram bans on (N, V) log-probs; seqs/mask: (N, S) incl. padding."""
    if cfg.repetition_penalty != 1:
        seen = torch.zeros_like(logp, dtype=torch.bool)
        r, c = mask.nonzero(as_tuple=True)
        seen[r, seqs[r, c]] = True
        logp = torch.where(seen, logp * cfg.repetition_penalty, logp)  # log-probs are <= 0
    n = cfg.no_repeat_ngram_size
    if n:
        for i in range(seqs.shape[0]):
            seq = seqs[i][mask[i].bool()].tolist()
            if len(seq) < n:
                continue
            prefix = tuple(seq[len(seq) - n + 1:])
            banned = [seq[k + n - 1] for k in range(len(seq) - n + 1) if tuple(seq[k:k + n - 1]) == prefix]
            if banned:
                logp[i, banned] = -math.inf
    return logp


def beam_search(decoder: Decoder, tokenizer: Any, prompt_ids: list[list[int]], cfg: SamplingConfig, *,
                logits_processors: Sequence[LogitsProcessor] = ()) -> list[str]:
    """The ``num_return_sequences`` best continuations of each prompt, flattened in prompt order."""
    eos_id, pad_id = _special_ids(tokenizer)
    B, nb = len(prompt_ids), cfg.num_beams
    ids, mask, pos = _left_pad(prompt_ids, pad_id)
    expand = torch.arange(B).repeat_interleave(nb)
    ids, mask, pos = ids[expand], mask[expand], pos[expand]  # (B*nb, L)
    seqs = ids
    beam_scores = torch.zeros(B, nb)
    beam_scores[:, 1:] = -1e9  # the first step expands beam 0 only (all beams are equal)
    hist: list[list[int]] = [[] for _ in range(B * nb)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    past = None
    with torch.inference_mode():
        for step in range(cfg.max_new_tokens):
            logits, past = decoder.forward_step(ids, past, mask, pos)  # (B*nb, V)
            for proc in logits_processors:
                logits = proc(seqs, logits)
            logp = _penalise(logits.log_softmax(-1), seqs, mask, cfg)
            V = logp.shape[-1]
            scores = (beam_scores.view(-1, 1) + logp).view(B, nb * V)
            top_scores, top_idx = scores.topk(2 * nb, dim=-1)  # (B, 2nb)
            src, new_tok, new_scores = [], [], []
            for b in range(B):
                picked: list[tuple[int, int, float]] = []
                for s, c in zip(top_scores[b].tolist(), top_idx[b].tolist()):
                    if done[b] or len(picked) == nb:
                        break
                    beam, tok = b * nb + c // V, c % V
                    if tok == eos_id:
                        finished[b].append((s / max(1, step), hist[beam]))
                    elif s > -1e8:
                        picked.append((beam, tok, s))
                picked += [(b * nb, pad_id, -1e9)] * (nb - len(picked))
                kept = sorted(x[0] for x in finished[b])[-nb:]
                if len(kept) >= nb and picked[0][2] / (step + 1) <= kept[0]:
                    done[b] = True
                for beam, tok, s in picked:
                    src.append(beam), new_tok.append(tok), new_scores.append(s)
            if all(done):
                break
            index = torch.tensor(src)
            hist = [hist[i] + [t] for i, t in zip(src, new_tok)]
            beam_scores = torch.tensor(new_scores).view(B, nb)
            past = decoder.reorder(past, index)
            ids = torch.tensor(new_tok, dtype=torch.long)[:, None]
            mask = torch.cat([mask[index], torch.ones_like(ids)], dim=1)
            seqs = torch.cat([seqs[index], ids], dim=1)
            pos = pos[index][:, -1:] + 1
    texts = []
    for b in range(B):
        if not done[b]:
            for k in range(nb):
                s = float(beam_scores[b, k])
                if s > -1e8:
                    finished[b].append((s / max(1, len(hist[b * nb + k])), hist[b * nb + k]))
        best = sorted(finished[b], key=lambda x: -x[0])[:cfg.num_return_sequences]
        for _, toks in best:
            row = _Row(cfg, prompt_ids[b], tokenizer, eos_id, stream_text=True)
            row.gen = list(toks)
            texts.append(row.finish("length"))
    return texts
