"""Incremental detokenisation: text chunks that never split a character or leak a stop sequence.

KoGPT2 tokenizers fall back to bytes (``<0xEA>``) for characters outside the vocabulary, so
a syllable or an emoji may take several tokens. The tokenizer decodes a run of byte tokens as a
whole (one invalid byte turns the whole run into U+FFFD), so a trailing run is held back until
a normal token ends it. At the very end only the run's longest valid, complete prefix is kept:
a sequence cut by ``max_new_tokens`` or a stop never ends in U+FFFD. Text that could be the
start of a stop sequence is held back too. The chunks concatenate to exactly the final text.
"""

from __future__ import annotations

import codecs
import weakref
from typing import Any, Sequence

_BYTE_TABLES: "weakref.WeakKeyDictionary[Any, dict[int, int]]" = weakref.WeakKeyDictionary()
_SILENT: "weakref.WeakKeyDictionary[Any, frozenset[int]]" = weakref.WeakKeyDictionary()


def byte_tokens(tokenizer: Any) -> dict[int, int]:
    """``{token id: byte value}`` of a tokenizer's byte-fallback tokens (``<0xEA>`` -> 0xEA)."""
    try:
        return _BYTE_TABLES[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    table = {i: int(t[3:5], 16) for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">")}
    try:
        _BYTE_TABLES[tokenizer] = table
    except TypeError:  # not weak-referenceable: rebuilt per row
        pass
    return table


def silent_tokens(tokenizer: Any) -> frozenset[int]:
    """Ids that decode to nothing (special tokens skipped by ``skip_special_tokens``).

    NOTE: they do not end a run of byte tokens: bytes on both sides are decoded together.
    """
    try:
        return _SILENT[tokenizer]
    except (KeyError, TypeError):
        pass
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    ids = frozenset(i for i, t in added.items() if getattr(t, "special", False))
    ids |= frozenset(getattr(tokenizer, "all_special_ids", []) or [])
    try:
        _SILENT[tokenizer] = ids
    except TypeError:
        pass
    return ids


def valid_prefix(values: Sequence[int]) -> int:
    """Length of the longest prefix of ``values`` (bytes) that is valid, complete UTF-8."""
    dec = codecs.getincrementaldecoder("utf-8")()
    last = 0
    for i, b in enumerate(values, 1):
        try:
            dec.decode(bytes([b]))
        except UnicodeDecodeError:
            break
        if not dec.getstate()[0]:
            last = i
    return last


class IncrementalText:
    """The text of one row's generated tokens, produced chunk by chunk.

    Args:
        tokenizer: HF tokenizer.
        prompt_ids: the row's prompt (its last tokens give the text's leading space right).
        eos_id: ``</s>`` (a prompt of just ``</s>`` has no text to lean on).
        stop: stop sequences.
        stream: False = text is made only by :meth:`finish` (faster when nobody reads chunks).
    """

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int], eos_id: int, stop: Sequence[str] = (),
                 stream: bool = True):
        self.tok = tokenizer
        self.stop = list(stop)
        self.stream = stream or bool(self.stop)
        self.bytes = byte_tokens(tokenizer)
        self.silent = silent_tokens(tokenizer)
        # The prompt's last tokens keep the text's leading space right; trailing byte tokens are left
        # out so that the prompt's bytes never merge with generated ones (decoded text must not depend
        # on when it is decoded).
        ctx = [] if list(prompt_ids) == [eos_id] else list(prompt_ids[-4:])
        while ctx and (ctx[-1] in self.bytes or ctx[-1] in self.silent):
            ctx.pop()
        self.ctx = ctx
        self.ctx_text = self._decode(self.ctx) if self.ctx else ""
        self.emitted = ""

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def text_of(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` decoded after the prompt's tail (keeps a leading space)."""
        if not self.ctx:
            return self._decode(tokens)
        full = self._decode(self.ctx + list(tokens))
        return full[len(self.ctx_text):] if full.startswith(self.ctx_text) else self._decode(tokens)

    def stable(self, tokens: Sequence[int]) -> int:
        """How many of ``tokens`` come before their trailing run of byte (and silent) tokens."""
        start = len(tokens)
        while start > 0 and (tokens[start - 1] in self.bytes or tokens[start - 1] in self.silent):
            start -= 1
        return start

    def complete(self, tokens: Sequence[int]) -> int:
        """How many of ``tokens`` to keep at the end: the trailing byte run cut to its valid whole characters."""
        start = self.stable(tokens)
        run = [(i, self.bytes[t]) for i, t in enumerate(tokens[start:], start) if t in self.bytes]
        n = valid_prefix([b for _, b in run])
        return run[n - 1][0] + 1 if n else start

    def push(self, tokens: Sequence[int]) -> tuple[str, bool]:
        """After a new token: ``(new text chunk, a stop sequence was reached)``."""
        if not self.stream:
            return "", False
        text = self.text_of(tokens[:self.stable(tokens)])
        cut = self._stop_at(text)
        if cut is not None:
            return self._emit(text[:cut]), True
        return self._emit(text[:len(text) - self._stop_holdback(text)]), False

    def finish(self, tokens: Sequence[int]) -> tuple[str, bool]:
        """At the end: ``(the rest of the text, it was cut at a stop sequence)``."""
        text = self.text_of(tokens[:self.complete(tokens)])
        cut = self._stop_at(text) if self.stop else None
        return self._emit(text if cut is None else text[:cut]), cut is not None

    def _emit(self, text: str) -> str:
        chunk = text[len(self.emitted):] if len(text) > len(self.emitted) and text.startswith(self.emitted) else ""
        self.emitted += chunk
        return chunk

    def _stop_at(self, text: str) -> int | None:
        """Index where the first stop sequence starts in ``text``, if any."""
        longest = max((len(s) for s in self.stop), default=0)
        start = max(0, len(self.emitted) - longest)
        hits = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _stop_holdback(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that begins some stop sequence."""
        best = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), best, -1):
                if text.endswith(s[:k]):
                    best = k
                    break
        return best
