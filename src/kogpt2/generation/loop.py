"""The decoding loop: :class:`DecodeBatch`, a step-wise engine rows can join and leave.

    batch = DecodeBatch(decoder, tokenizer)
    a, = batch.add_rows([prompt_ids], [SamplingConfig(max_new_tokens=32, seed=1)])
    while not batch.done:
        for row, text in batch.step():        # (row, new text) for rows that produced text
            print(text, end="")
        if want_more:
            batch.add_rows([other_ids], [cfg])  # joins at the next step (continuous batching)
    batch.remove_row(a)                        # a departed client: its slot is freed at once

Design:
  * A model is seen through ``Decoder.forward_step`` (torch, ONNX Runtime, PPLM's steering).
  * Rows of different lengths share one cache, left-padded, with an attention mask and
    per-row position ids, so padding is never attended to and a row decodes as it would alone.
    Rows added while others run are prefilled on their own and joined into the cache
    (``Decoder.join``); finished or removed rows leave it (``Decoder.reorder``), and the columns
    that became padding for every remaining row are cut off (``Decoder.trim``). The mask
    describes the rows as left-padded; a backend may store them otherwise (ONNX Runtime keeps
    each row's tokens in its first cache slots and needs only each row's count).
  * Every row has its own ``SamplingConfig``, random generator and stop conditions (``</s>``
    after ``min_new_tokens``, ``max_new_tokens``, stop sequences), so a seeded row gives the same
    text alone or in any batch (up to float rounding of padded batches).
  * Every tensor lives on the decoder's device.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.decoder import Decoder, left_pad_seq
from kogpt2.generation.detok import IncrementalText
from kogpt2.generation.processors import (LogitsProcessor, NgramIndex, apply_constraints, apply_sampling,
                                          banned_ids, choose, run_hooks, seen_mask)


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """(eos id, pad id) of a tokenizer; bos = eos = ``</s>`` in KoGPT2."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise KoGPT2Error("the tokenizer has no eos token; KoGPT2 tokenizers use </s>")
    pad = tokenizer.pad_token_id
    return int(eos), int(eos if pad is None else pad)


def left_pad(prompt_ids: Sequence[Sequence[int]], pad_id: int, device: torch.device | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids), each (B, L), padded on the left."""
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[i, width - len(p):] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


class Row:
    """One sequence being generated: token ids, text, stop state and random generator.

    Attributes:
        tokens: generated token ids (``</s>`` excluded).
        done, finish_reason: ``eos``, ``length``, ``stop`` or ``cancelled`` once done.
        emitted: the text produced so far.
    """

    def __init__(self, prompt_ids: Sequence[int], config: SamplingConfig, tokenizer: Any, eos_id: int,
                 stream_text: bool, banned: list[int]):
        if config.num_beams > 1 or config.num_return_sequences > 1:
            raise KoGPT2Error("a decoding row makes one sequence: num_beams and num_return_sequences must be 1 "
                              "(repeat a prompt with other seeds for several continuations)")
        self.prompt_ids = list(prompt_ids)
        self.config = config
        self.eos_id = eos_id
        self.tokens: list[int] = []
        self.text = IncrementalText(tokenizer, self.prompt_ids, eos_id, config.stop, stream_text)
        self.done = False
        self.finish_reason: str | None = None
        self.banned_ids = banned
        n = config.no_repeat_ngram_size
        self.ngrams = NgramIndex(n, self.prompt_ids) if n else None
        self.generator: torch.Generator | None = None
        if config.do_sample:
            seed = config.seed if config.seed is not None else int(torch.randint(0, 2**62, (1,)))
            self.generator = torch.Generator().manual_seed(seed)

    @property
    def n_generated(self) -> int:
        return len(self.tokens)

    @property
    def gen(self) -> list[int]:
        """Alias of :attr:`tokens`."""
        return self.tokens

    @property
    def emitted(self) -> str:
        return self.text.emitted

    @property
    def n_stable(self) -> int:
        """Generated tokens before the trailing run of incomplete byte tokens (safe to resume from)."""
        return self.text.stable(self.tokens)

    def text_of(self, n: int) -> str:
        """Text of the first ``n`` generated tokens (as it follows the prompt)."""
        return self.text.text_of(self.tokens[:n])

    def push(self, token: int) -> str:
        """Add a chosen token; return the new text chunk ("" if none yet)."""
        if token == self.eos_id:
            return self.finish("eos")
        self.tokens.append(token)
        if self.ngrams is not None:
            self.ngrams.append(token)
        if len(self.tokens) >= self.config.max_new_tokens:
            return self.finish("length")
        chunk, stopped = self.text.push(self.tokens)
        if stopped:
            self.done, self.finish_reason = True, "stop"
        return chunk

    def finish(self, reason: str) -> str:
        """End the row; return the rest of its text."""
        self.done, self.finish_reason = True, reason
        chunk, stopped = self.text.finish(self.tokens)
        if stopped:
            self.finish_reason = "stop"
        return chunk


class DecodeBatch:
    """Rows decoded together, one token per :meth:`step`; rows may join and leave between steps.

    Args:
        decoder: the model's one-step forward.
        tokenizer: HF tokenizer (text, eos/pad ids, banned tokens).
        logits_processors: HF-style hooks ``fn(input_ids (B, S), scores (B, V)) -> scores``, applied
            first; ``input_ids`` are the left-padded prompt + generated tokens of the batch's rows.
        stream_text: False makes text only when a row ends (faster when nobody reads chunks).
    """

    def __init__(self, decoder: Decoder, tokenizer: Any, *, logits_processors: Sequence[LogitsProcessor] = (),
                 stream_text: bool = True):
        self.decoder, self.tokenizer = decoder, tokenizer
        self.hooks = list(logits_processors)
        self.stream_text = stream_text
        self.eos_id, self.pad_id = special_ids(tokenizer)
        self.device = getattr(decoder, "device", torch.device("cpu"))
        self.rows: list[Row] = []  # rows in the cache, in cache order
        self.pending: list[Row] = []  # added, prefilled at the next step
        self.past: Any = None
        self.mask: torch.Tensor | None = None  # (B, S) 1 = real token in the cache
        self.last_pos: torch.Tensor | None = None  # (B, 1) position of each row's last cached token
        self.next_ids: torch.Tensor | None = None  # (B, 1) tokens to feed at the next step
        self.seen: torch.Tensor | None = None  # (B, V) tokens already in each row
        self.steps = 0

    # ---------------------------------------------------------------- rows
    def add_rows(self, prompt_ids: Sequence[Sequence[int]], configs: Sequence[SamplingConfig],
                 stream_text: bool | None = None) -> list[Row]:
        """Queue rows (non-empty token id lists, one config each); they start at the next step.

        ``stream_text``: whether these rows make text at every step (None: the batch's setting);
        False gives their whole text when they end (no decoding per step)."""
        if len(prompt_ids) != len(configs):
            raise KoGPT2Error(f"add_rows needs one config per prompt, got {len(prompt_ids)} and {len(configs)}")
        if any(not p for p in prompt_ids):
            raise KoGPT2Error("a prompt must hold at least one token (an empty prompt is [eos])")
        stream = self.stream_text if stream_text is None else stream_text
        rows = [Row(p, c, self.tokenizer, self.eos_id, stream, banned_ids(self.tokenizer, c.banned_tokens))
                for p, c in zip(prompt_ids, configs)]
        self.pending.extend(rows)
        return rows

    def remove_row(self, row: Row, reason: str = "cancelled") -> str:
        """End ``row`` now and free its place; returns the rest of its text."""
        if row in self.pending:
            self.pending.remove(row)
        elif any(r is row for r in self.rows):
            self._keep([i for i, r in enumerate(self.rows) if r is not row])
        return "" if row.done else row.finish(reason)

    @property
    def done(self) -> bool:
        """No row is decoding or waiting."""
        return not self.rows and not self.pending

    def __len__(self) -> int:
        return len(self.rows) + len(self.pending)

    # ---------------------------------------------------------------- one step
    def step(self) -> list[tuple[Row, str]]:
        """Feed every row one token (prefilling rows that just joined) and choose the next.

        Returns:
            ``(row, text)`` for every row that produced text or ended in this step.
        """
        if self.done:
            return []
        with torch.inference_mode():
            logits = self._forward()  # (B, V) for self.rows
            rows = self.rows
            scores = run_hooks(self.hooks, self._padded_sequences() if self.hooks else None, logits)
            scores = apply_constraints(scores, rows, self.seen, self.eos_id)
            cfgs = [r.config for r in rows]
            tokens = choose(apply_sampling(scores, cfgs), cfgs, [r.generator for r in rows])
            out = []
            for r, t in zip(rows, tokens):
                text = r.push(t)
                if text or r.done:
                    out.append((r, text))
            new = torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None]  # (B, 1)
            self.seen.scatter_(1, new, True)
            self.next_ids = new
            keep = [i for i, r in enumerate(rows) if not r.done]
            if len(keep) < len(rows):
                self._keep(keep)
        self.steps += 1
        return out

    def _forward(self) -> torch.Tensor:
        """Logits of every row: a decoding step for running rows, a prefill for joining ones."""
        parts = []
        if self.rows:
            mask = torch.cat([self.mask, torch.ones_like(self.next_ids)], dim=1)
            pos = self.last_pos + 1
            logits, self.past = self.decoder.forward_step(self.next_ids, self.past, mask, pos)
            self.mask, self.last_pos = mask, pos
            parts.append(logits)
        if self.pending:
            new, self.pending = self.pending, []
            ids, mask, pos = left_pad([r.prompt_ids for r in new], self.pad_id, self.device)
            logits, past = self.decoder.forward_step(ids, None, mask, pos)
            parts.append(logits)
            self._join(new, past, mask, pos[:, -1:])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _join(self, new: list[Row], past: Any, mask: torch.Tensor, last_pos: torch.Tensor) -> None:
        seen = seen_mask([r.prompt_ids for r in new], self.decoder.vocab_size, self.device)
        if not self.rows:
            self.rows, self.past, self.mask, self.last_pos, self.seen = new, past, mask, last_pos, seen
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.past = self.decoder.join(self.past, past)
        self.mask = torch.cat([left_pad_seq(self.mask, width, 1), left_pad_seq(mask, width, 1)])
        self.last_pos = torch.cat([self.last_pos, last_pos])
        self.seen = torch.cat([self.seen, seen])
        self.rows = self.rows + new

    def _keep(self, keep: list[int]) -> None:
        """Only the rows at ``keep`` (increasing) stay in the cache.

        The last rows fill the holes left by the departed ones, so a cache that compacts in place
        moves one row per departed row, not every row behind it."""
        n, kept = len(keep), set(keep)
        order = list(range(n))
        for hole, row in zip([i for i in range(n) if i not in kept], [i for i in keep if i >= n]):
            order[hole] = row
        self.rows = [self.rows[i] for i in order]
        if not self.rows:
            self.past = self.mask = self.last_pos = self.next_ids = self.seen = None
            return
        keep = order
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.past = self.decoder.reorder(self.past, index)
        self.mask, self.last_pos, self.seen = self.mask[index], self.last_pos[index], self.seen[index]
        if self.next_ids is not None and self.next_ids.shape[0] > len(keep):
            self.next_ids = self.next_ids[index]
        self._trim()

    def _trim(self) -> None:
        """Drop the cache's leading columns that are padding for every row (left by rows that left)."""
        start = int(self.mask.any(0).int().argmax())  # first column some row attends to
        if start == 0:
            return
        trim = getattr(self.decoder, "trim", None)  # wrappers written before Decoder.trim lack it
        past = None if trim is None else trim(self.past, start)
        if past is not None:
            self.past, self.mask = past, self.mask[:, start:]

    def _padded_sequences(self) -> torch.Tensor:
        """(B, S) prompt + generated tokens of every row, left-padded (for HF-style hooks)."""
        return left_pad([r.prompt_ids + r.tokens for r in self.rows], self.pad_id, self.device)[0]


def decode_rows(decoder: Decoder, tokenizer: Any, prompt_ids: list[list[int]], configs: list[SamplingConfig], *,
                should_stop: Callable[[int], bool] | None = None,
                logits_processors: Sequence[LogitsProcessor] = (),
                stream_text: bool = True, rows_out: list | None = None) -> Iterator[list[str]]:
    """A fixed set of rows decoded to the end on a :class:`DecodeBatch`; yields each step's chunks.

    Args:
        decoder, tokenizer, logits_processors, stream_text: as for :class:`DecodeBatch`.
        prompt_ids: one list of token ids per row (non-empty).
        configs: one ``SamplingConfig`` per row (``num_beams`` 1).
        should_stop: ``should_stop(row)`` True ends that row now (e.g. a closed connection).
        rows_out: if given, receives the :class:`Row` objects (finish reasons, token ids).
    """
    batch = DecodeBatch(decoder, tokenizer, logits_processors=logits_processors, stream_text=stream_text)
    rows = batch.add_rows(prompt_ids, configs)
    if rows_out is not None:
        rows_out.extend(rows)
    where = {id(r): j for j, r in enumerate(rows)}
    while not batch.done:
        chunks = [""] * len(rows)
        for row, text in batch.step():
            chunks[where[id(row)]] += text
        if should_stop is not None:
            for j, r in enumerate(rows):
                if not r.done and should_stop(j):
                    chunks[j] += batch.remove_row(r)
        yield chunks
