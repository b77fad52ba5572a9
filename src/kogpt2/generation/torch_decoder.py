"""The torch backend's :class:`TorchDecoder`: a Hugging Face causal LM and its ``DynamicCache``.

Subclass it and override ``forward_step`` to perturb the past (PPLM) while reusing the loop's
processing, stopping and streaming.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from kogpt2.generation.decoder import Decoder, join_pairs
from kogpt2.model_info import context_length


class TorchDecoder(Decoder):
    """A Hugging Face causal LM (GPT-2, GPT-Neo, ...) with its ``DynamicCache``."""

    def __init__(self, model):
        self.model = model
        self.context = context_length(model)
        self.vocab_size = int(model.config.vocab_size)
        param = next(model.parameters(), None)
        self.device = param.device if param is not None else torch.device("cpu")
        src = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
        self.model_dir = Path(src) if src and Path(src, "config.json").is_file() else None
        # NOTE: transformers 5.2x renamed past_key_values to cache (the old name warns).
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=True, logits_to_keep=1, **{self.cache_arg: past})
        return out.logits[:, -1, :].float(), out[self.cache_arg]

    def reorder(self, past, index):
        past.reorder_cache(index.to(self.device))
        return past

    def join(self, past, other):
        layers = getattr(past, "layers", None)
        if layers is None or any(type(l).__name__ != "DynamicLayer" for l in layers + other.layers):
            raise NotImplementedError("only a plain DynamicCache can take rows mid-batch")
        joined = join_pairs([(l.keys, l.values) for l in layers], [(l.keys, l.values) for l in other.layers])
        for layer, (k, v) in zip(layers, joined):
            layer.keys, layer.values = k, v
        return past

    def trim(self, past, start):
        layers = getattr(past, "layers", None)
        if layers is None or any(type(l).__name__ != "DynamicLayer" for l in layers):
            return None
        for layer in layers:  # (B, H, S, D)
            layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
        return past
