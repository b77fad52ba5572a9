"""The seam between the decoding loop and a model: :class:`Decoder`.

A model is seen only through ``forward_step(input_ids, past, attention_mask, position_ids)
-> (logits, past)`` plus cache bookkeeping (``reorder``, ``join``). Backends (torch, ONNX
Runtime) and PPLM's steering decoder implement it.
"""

from __future__ import annotations

from typing import Any

import torch


class Decoder:
    """What the decoding loop needs from a model. Subclasses implement ``forward_step``.

    Attributes:
        context: the longest sequence (prompt + new tokens) the model accepts.
        vocab_size: width of the logits.
        device: where input tensors must live (logits come back on it).
        model_dir: the directory the model was loaded from, when known (its
            ``generation_config.json`` gives the ``default`` preset).
    """

    context: int
    vocab_size: int
    device: torch.device = torch.device("cpu")
    model_dir: Any = None

    def forward_step(self, input_ids: torch.Tensor, past: Any, attention_mask: torch.Tensor,
                     position_ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Run new tokens through the model.

        Args:
            input_ids: (B, T) new tokens (the whole left-padded prompt on the first call, then T=1).
            past: the cache returned by the previous call, or ``None`` on the first call.
            attention_mask: (B, P+T) 1 for real tokens, 0 for padding (P = cached length).
            position_ids: (B, T) positions of the new tokens (padding does not count).

        Returns:
            (B, V) float32 logits for the next token after the last position, and the new cache.
        """
        raise NotImplementedError

    def reorder(self, past: Any, index: torch.Tensor) -> Any:
        """Select / repeat batch rows of the cache. ``index``: (B',) row indices."""
        raise NotImplementedError

    def join(self, past: Any, other: Any) -> Any:
        """One cache holding the rows of ``past`` then those of ``other`` (continuous batching).

        The shorter cache is left-padded along the sequence (the caller pads the attention
        mask the same way, so padded positions are never attended to).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot add rows to a running batch")

    def trim(self, past: Any, start: int) -> Any:
        """The cache without its first ``start`` sequence positions (padding no row attends to any
        more), or None when this decoder cannot cut its cache (the padding then stays)."""
        return None


def left_pad_seq(x: torch.Tensor, length: int, dim: int = 2) -> torch.Tensor:
    """``x`` zero-padded on the left of ``dim`` up to ``length``."""
    missing = length - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)


def join_pairs(a: list[tuple[torch.Tensor, torch.Tensor]], b: list[tuple[torch.Tensor, torch.Tensor]]
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of shape (B, H, S, D) joined along the batch, left-padded along S."""
    out = []
    for (ka, va), (kb, vb) in zip(a, b):
        s = max(ka.shape[2], kb.shape[2])
        out.append((torch.cat([left_pad_seq(ka, s), left_pad_seq(kb, s)]),
                    torch.cat([left_pad_seq(va, s), left_pad_seq(vb, s)])))
    return out
