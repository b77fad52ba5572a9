"""GPT-Neo attention through ``torch.nn.functional.scaled_dot_product_attention``.

transformers' GPT-Neo has only an eager attention (fp32 score matrices, no fused kernel) and
FlashAttention-2; it refuses ``attn_implementation="sdpa"``. ``register()`` adds an ``sdpa``
entry to its attention table, so ``from_config`` / ``from_pretrained`` pick it like any other
model's SDPA path (and by default, SDPA being transformers' default):

- global layers: no mask and ``is_causal=True`` when the model passes none (no padding), which
  lets PyTorch choose the flash kernel; otherwise the boolean padding mask from transformers.
- local layers: the layer's own banded causal mask (window ``config.window_size``), AND-ed with
  any padding mask; PyTorch runs it in its memory-efficient kernel.

GPT-Neo scores are not scaled by 1/sqrt(head_dim) (``scale=1.0``). Only ``_attn`` changes:
projections, the KV cache and the weights are those of ``GPTNeoSelfAttention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.gpt_neo import modeling_gpt_neo as neo


class GPTNeoSdpaAttention(neo.GPTNeoSelfAttention):
    """``GPTNeoSelfAttention`` whose score-softmax-value product is one SDPA call."""

    def _attn(self, query, key, value, attention_mask=None):
        # query (B, H, Q, D), key/value (B, H, K, D); attention_mask None or bool (B, 1, Q, K), True = attend
        # (or an additive float mask, when the config asks transformers for eager masks)
        q_len, k_len = query.size(-2), key.size(-2)
        mask, causal = attention_mask, False
        if self.attention_type == "local" or (mask is None and q_len not in (1, k_len)):
            band = self.bias[:, :, k_len - q_len:k_len, :k_len]  # (1, 1, Q, K) causal, banded for local
            if mask is None:
                mask = band
            elif mask.dtype == torch.bool:
                mask = mask & band
            else:
                mask = mask.masked_fill(~band, torch.finfo(mask.dtype).min)
        elif mask is None:
            causal = q_len > 1  # q_len == k_len: top-left and bottom-right causal alignment agree
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(query.dtype)
        dropout = float(self.config.attention_dropout) if self.training else 0.0
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout,
                                             is_causal=causal, scale=1.0)
        return out, None


def register() -> None:
    """Make ``attn_implementation="sdpa"`` (transformers' default choice) valid for GPT-Neo models."""
    neo.GPT_NEO_ATTENTION_CLASSES.setdefault("sdpa", GPTNeoSdpaAttention)
    neo.GPTNeoPreTrainedModel._supports_sdpa = True
