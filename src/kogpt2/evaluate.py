"""Bits per character: the tokenizer-independent number models are compared by.

``bpc = sum over tokens of -log2 p(token | context) / number of characters``. Each document
is scored on its own, as ``</s> document </s>`` (the first ``</s>`` is context, the last one
is predicted: ending the document is part of the text's information), so two models with
different vocabularies are scored on exactly the same characters. Documents longer than
the context are scored with sliding windows: every token is predicted exactly once, with at
least ``n_ctx - stride`` tokens of context after the first window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from kogpt2.model_info import context_length

LN2 = math.log(2.0)


@dataclass
class BpcResult:
    """Totals of one evaluation."""

    bits: float
    chars: int
    tokens: int
    documents: int

    @property
    def bpc(self) -> float:
        return self.bits / max(1, self.chars)

    @property
    def bits_per_token(self) -> float:
        return self.bits / max(1, self.tokens)

    def __str__(self) -> str:
        return (f"bits/char {self.bpc:.4f}  ({self.documents} documents, {self.chars} characters, "
                f"{self.tokens} tokens, {self.bits_per_token:.3f} bits/token, "
                f"{self.chars / max(1, self.tokens):.3f} chars/token)")


def _windows(ids: list[int], n_ctx: int, stride: int) -> Iterator[tuple[list[int], int]]:
    """``(window, n_new)``: slices of ``ids`` of at most ``n_ctx + 1`` tokens whose last
    ``n_new`` targets have not been scored by an earlier window."""
    scored = 0  # targets ids[1..scored] are done
    begin = 0
    while True:
        end = min(begin + n_ctx + 1, len(ids))  # inputs ids[begin:end-1], targets ids[begin+1:end]
        yield ids[begin:end], end - 1 - max(scored, begin)
        scored = end - 1
        if end == len(ids):
            return
        begin += stride


@torch.no_grad()
def bits_per_char(model, tokenizer, documents: Iterable[str], *, n_ctx: int | None = None,
                  stride: int | None = None, batch_size: int = 8, progress: bool = False) -> BpcResult:
    """Score ``documents`` under ``model``; see the module docstring for the definition.

    Args:
        model: a causal LM (HF ``GPT2LMHeadModel`` / ``GPTNeoForCausalLM``), in eval mode.
        tokenizer: its tokenizer (``eos_token_id`` is the document boundary).
        documents: texts (paragraphs joined with ``"\\n"``).
        n_ctx: window length in tokens (default: the model's positions).
        stride: window step for long documents (default ``n_ctx // 2``).
        batch_size: windows per forward pass.
    """
    from tqdm import tqdm

    cfg = model.config
    n_ctx = n_ctx or context_length(cfg)
    stride = stride or max(1, n_ctx // 2)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = next(model.parameters()).device
    bits, chars, tokens, docs = 0.0, 0, 0, 0
    pending: list[tuple[list[int], int]] = []

    def flush() -> float:
        width = max(len(w) for w, _ in pending) - 1
        x = torch.full((len(pending), width), pad, dtype=torch.long)
        y = torch.full((len(pending), width), -100, dtype=torch.long)
        mask = torch.zeros((len(pending), width), dtype=torch.long)
        for i, (w, n_new) in enumerate(pending):
            n = len(w) - 1
            x[i, :n] = torch.tensor(w[:-1])
            mask[i, :n] = 1
            y[i, n - n_new:n] = torch.tensor(w[1:][n - n_new:])
        logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits.float()
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.to(device).reshape(-1),
                              ignore_index=-100, reduction="sum")
        pending.clear()
        return float(nll) / LN2

    for text in tqdm(documents, disable=not progress, desc="bpc", unit="doc"):
        ids = [eos] + tokenizer.encode(text, add_special_tokens=False) + [eos]
        chars += len(text)
        tokens += len(ids) - 1
        docs += 1
        for window, n_new in _windows(ids, n_ctx, stride):
            pending.append((window, n_new))
            if len(pending) == batch_size:
                bits += flush()
    if pending:
        bits += flush()
    return BpcResult(bits=bits, chars=chars, tokens=tokens, documents=docs)


def read_documents(paths: list[str | Path], text_field: str = "text") -> list[str]:
    """Documents of text / jsonl files in the KoGPT2 convention (paragraphs joined with newlines)."""
    from collections import Counter

    from kogpt2.data_io import expand_inputs, iter_documents
    from kogpt2.errors import KoGPT2Error

    import sys

    stats: Counter = Counter()
    docs = ["\n".join(paras) for _, paras in iter_documents(
        expand_inputs(list(paths)), stats, text_field=text_field,
        warn=lambda message: print(f"note: {message}", file=sys.stderr))]
    if not docs:
        skipped = {k: v for k, v in stats.items() if k not in ("files", "lines") and v}
        why = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in skipped.items())
        why = f" ({why})" if why else ""
        raise KoGPT2Error(f"no documents found in {', '.join(map(str, paths))}{why}; give UTF-8 text files with "
                          "one paragraph per line (or .jsonl with a text field)")
    return docs
