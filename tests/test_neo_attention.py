"""GPT-Neo through scaled_dot_product_attention equals transformers' eager GPT-Neo."""

from __future__ import annotations

import copy

import pytest
import torch

from kogpt2.config import ModelConfig
from kogpt2.generation.torch_decoder import TorchDecoder
from kogpt2.model import build_model, hf_config

# 4 layers (global, local, global, local), window 4 < sequence 12 so the band matters.
CFG = ModelConfig(preset="gpt3-mini", vocab_size=64, n_ctx=32,
                  overrides={"n_layer": 4, "n_embd": 32, "n_head": 4})


def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same random weights under SDPA (ours) and eager attention."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    hf = hf_config(CFG)
    hf.window_size = 4
    build_model(CFG, device="meta")  # registers the SDPA attention
    sdpa = AutoModelForCausalLM.from_config(hf, attn_implementation="sdpa")
    eager = AutoModelForCausalLM.from_config(copy.deepcopy(hf), attn_implementation="eager")
    eager.load_state_dict(sdpa.state_dict())
    return sdpa.eval(), eager.eval()


def test_build_model_selects_sdpa_for_gpt_neo():
    from kogpt2.neo_attention import GPTNeoSdpaAttention

    model = build_model(CFG)
    kinds = {type(m) for m in model.modules() if "Attention" in type(m).__name__ and hasattr(m, "bias")}
    assert kinds == {GPTNeoSdpaAttention}


def test_full_sequence_logits_and_gradients_equal_eager():
    sdpa, eager = pair()
    x = torch.randint(0, 64, (3, 12))
    a, b = sdpa(input_ids=x).logits, eager(input_ids=x).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    a.square().mean().backward()
    b.square().mean().backward()
    ga = sdpa.transformer.h[1].attn.attention.q_proj.weight.grad
    gb = eager.transformer.h[1].attn.attention.q_proj.weight.grad
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_left_padded_batch_equals_eager_on_real_tokens():
    sdpa, eager = pair()
    x = torch.randint(0, 64, (2, 12))
    mask = torch.ones_like(x)
    mask[0, :5] = 0  # row 0 left-padded by 5
    a = sdpa(input_ids=x, attention_mask=mask).logits
    b = eager(input_ids=x, attention_mask=mask).logits
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a[0, 5:], b[0, 5:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a[1], b[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prefill", [1, 7])
def test_cached_decoding_equals_eager(prefill):
    """Prefill then one token at a time past the local window: the KV-cache path."""
    sdpa, eager = pair()
    x = torch.randint(0, 64, (2, 14))
    with torch.no_grad():
        outs = []
        for model in (sdpa, eager):
            arg = TorchDecoder(model).cache_arg  # `cache` in transformers >= 5.2x, else `past_key_values`
            out = model(input_ids=x[:, :prefill], use_cache=True)
            cache, logits = out[arg], [out.logits[:, -1]]
            for t in range(prefill, x.size(1)):
                out = model(input_ids=x[:, t:t + 1], use_cache=True, **{arg: cache})
                cache = out[arg]
                logits.append(out.logits[:, -1])
            outs.append(torch.stack(logits, 1))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
