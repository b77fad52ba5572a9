"""Grover / KoGPT2-train language model as a Hugging Face GPT-2 variant.

Grover (rowanz/grover ``lm/modeling.py``, reused by ksjae/KoGPT2-train) is GPT-2 with its
layer norms moved. Per layer, with ``h`` the layer's (already normalised) input::

    u  = h + attn(h)                      # no norm before attention; the residual is h itself
    h' = LN_mlp_ln1(u + mlp(LN_mlp_ln0(u)))

after ``h0 = LN_embed_norm(word_embed[ids] + pos_embed[:T])``; logits are ``h_L @ word_embed.T``
(no final norm, no output bias); GELU is the exact erf form. No setting of ``GPT2LMHeadModel``
computes that: GPT-2 adds the *un*-normalised stream back after attention. Re-cut at the
norms, Grover is GPT-2 whose block takes its attention residual *after* ``ln_1``::

    h = ln_1(x); u = h + attn(h); x' = u + mlp(ln_2(u))     # ``GroverBlock`` below

with ``ln_1`` of block ``i`` = Grover's norm before it (``embed_norm`` or layer ``i-1``'s
``mlp_ln1``), ``ln_2`` = ``mlp_ln0`` and ``ln_f`` = the last layer's ``mlp_ln1``. Weights
keep GPT-2's names and shapes, so everything but the residual is stock ``GPT2LMHeadModel``.

This file imports only torch and transformers: ``kogpt2 convert tf`` copies it into Grover
model directories, whose ``config.json`` carries an ``auto_map``, so they load anywhere with
``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)``; importing
``kogpt2.modeling_grover`` registers the classes so ``trust_remote_code`` is not needed.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

MODEL_TYPE = "kogpt2_grover"


class GroverConfig(GPT2Config):
    """``GPT2Config`` for Grover weights (``activation_function="gelu"``, exact erf GELU)."""

    model_type = MODEL_TYPE


class GroverBlock(GPT2Block):
    """GPT-2 block whose attention residual is the normalised input (Grover's layout)."""

    def forward(self, hidden_states: torch.Tensor, past_key_values=None, attention_mask=None,
                encoder_hidden_states=None, encoder_attention_mask=None, use_cache: bool | None = False,
                **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("Grover blocks have no cross-attention")
        hidden_states = self.ln_1(hidden_states)  # (B, T, C); also the residual, unlike GPT-2
        attn_output, _ = self.attn(hidden_states, past_key_values=past_key_values,
                                   attention_mask=attention_mask, use_cache=use_cache, **kwargs)
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.ln_2(hidden_states))


class GroverLMHeadModel(GPT2LMHeadModel):
    """``GPT2LMHeadModel`` built from ``GroverBlock``s; same parameter names as GPT-2."""

    config_class = GroverConfig
    config: GroverConfig
    _no_split_modules = ["GroverBlock"]

    def __init__(self, config: GroverConfig) -> None:
        super().__init__(config)
        self.transformer.h = nn.ModuleList(GroverBlock(config, layer_idx=i) for i in range(config.n_layer))
        self.post_init()


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know ``kogpt2_grover`` in this process."""
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoConfig.register(MODEL_TYPE, GroverConfig, exist_ok=True)
    AutoModelForCausalLM.register(GroverConfig, GroverLMHeadModel, exist_ok=True)


if __name__ == "kogpt2.modeling_grover":  # not when loaded as a model directory's remote code
    register()
