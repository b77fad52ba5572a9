"""Build Hugging Face GPT-2 / GPT-Neo models from presets, and load model directories."""

from __future__ import annotations

from pathlib import Path

import torch

from kogpt2.config import ModelConfig
from kogpt2.errors import KoGPT2Error
from kogpt2.model_dir import check_model_dir  # noqa: F401  the check every loader runs (re-exported)


def hf_config(cfg: ModelConfig):
    """The ``transformers`` config object for ``cfg`` (GPT2Config or GPTNeoConfig)."""
    s = cfg.shape
    ids = dict(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id)
    if s.arch == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.context, n_embd=s.n_embd, n_layer=s.n_layer,
                          n_head=s.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                          attn_pdrop=cfg.dropout, tie_word_embeddings=True, **ids)
    from transformers import GPTNeoConfig

    # attention_types [[["global", "local"], n/2]]: dense and banded layers alternate (GPT-3 form).
    if s.n_layer % 2:
        raise KoGPT2Error(f"gpt3-* presets need an even number of layers, got {s.n_layer}")
    return GPTNeoConfig(vocab_size=cfg.vocab_size, max_position_embeddings=cfg.context, hidden_size=s.n_embd,
                        num_layers=s.n_layer, num_heads=s.n_head, attention_types=[[["global", "local"], s.n_layer // 2]],
                        window_size=s.window_size, intermediate_size=4 * s.n_embd, embed_dropout=cfg.dropout,
                        attention_dropout=cfg.dropout, resid_dropout=cfg.dropout, tie_word_embeddings=True, **ids)


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu"):
    """A freshly initialised ``GPT2LMHeadModel`` / ``GPTNeoForCausalLM`` for ``cfg``.

    ``device="meta"`` builds the module without allocating weights (for counting parameters).
    """
    from transformers import AutoModelForCausalLM

    from kogpt2.neo_attention import register

    register()  # GPT-Neo through scaled_dot_product_attention, like GPT-2
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(hf_config(cfg), attn_implementation="sdpa")
    return model


def count_params(model) -> int:
    """Unique parameters (tied embedding counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def load_model(path: str | Path | None = None, dtype: torch.dtype | str | None = None, device: str = "cpu"):
    """Load a causal LM directory (ours, SKT KoGPT2's, any HF GPT-2/GPT-Neo) in eval mode.

    Args:
        path: model directory; ``None`` = the bundled ``kogpt2-small``.
        dtype: ``torch.float32`` (default), ``torch.bfloat16``, or their names.
        device: ``cpu`` or ``cuda``.
    """
    from transformers import AutoModelForCausalLM

    import kogpt2.modeling_grover  # noqa: F401  registers Grover dirs from `kogpt2 convert tf`
    from kogpt2.neo_attention import register

    register()  # GPT-Neo directories load with the SDPA attention (transformers' default choice)

    if path is None:
        from kogpt2.paths import bundled_model_dir

        path = bundled_model_dir()
    from kogpt2.devices import resolve_device

    dev = resolve_device(device)  # a bad or missing device: one KoGPT2Error before loading
    p = check_model_dir(path)
    if isinstance(dtype, str):
        names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
        if dtype not in names:
            raise KoGPT2Error(f"dtype {dtype!r} is not one of: {', '.join(names)}")
        dtype = names[dtype]
    model = AutoModelForCausalLM.from_pretrained(str(p), dtype=dtype or torch.float32)
    return model.to(dev).eval()
