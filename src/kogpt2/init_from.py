"""Initialise a new model from another checkpoint: copy what fits, remap the vocabulary,
grow the context.

The seed KoGPT2 trained its larger model from English GPT-2 774M this way.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kogpt2.errors import KoGPT2Error


def preset_like(src: str | Path, n_ctx: int | None = None) -> tuple[str, dict]:
    """A preset name plus overrides reproducing the shape of the model in ``src``.

    The position table keeps the source's size, grown to ``n_ctx`` when that asks for more.
    """
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(str(src))
    if c.model_type == "gpt2":
        return "base", {"n_layer": c.n_layer, "n_embd": c.n_embd, "n_head": c.n_head,
                        "n_positions": max(c.n_positions, n_ctx or 0)}
    if c.model_type == "gpt_neo":
        return "gpt3-base", {"n_layer": c.num_layers, "n_embd": c.hidden_size, "n_head": c.num_heads,
                             "n_positions": max(c.max_position_embeddings, n_ctx or 0)}
    raise KoGPT2Error(f"--init-from {src}: model type {c.model_type!r} is not GPT-2 or GPT-Neo")


def _embedding_key(sd: dict) -> str:
    for k in ("transformer.wte.weight",):
        if k in sd:
            return k
    raise KoGPT2Error("source checkpoint has no transformer.wte.weight")


@torch.no_grad()
def init_from(model, tokenizer, src: str | Path) -> str:
    """Copy ``src``'s weights into ``model`` (in place) and return a one-line report.

    * tensors with the same name and shape are copied;
    * the token embedding (and the tied LM head) is remapped by token string: tokens in both
      vocabularies keep their source rows, new tokens start at the mean source row;
    * position embeddings: the source rows are copied and, for a longer context, repeated
      cyclically to fill the new rows (as Longformer extended RoBERTa's positions).
    """
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    src_model = load_model(src)
    try:
        src_tok = load_tokenizer(src)
    except KoGPT2Error:
        src_tok = None
    s_sd, d_sd = src_model.state_dict(), model.state_dict()
    copied, skipped = 0, []
    for k, v in d_sd.items():
        if k in ("transformer.wte.weight", "lm_head.weight", "transformer.wpe.weight"):
            continue
        if k in s_sd and s_sd[k].shape == v.shape:
            v.copy_(s_sd[k])
            copied += 1
        else:
            skipped.append(k)
    # token embeddings, remapped by string
    s_wte = s_sd[_embedding_key(s_sd)]
    d_wte = d_sd["transformer.wte.weight"]
    if s_wte.shape[1] != d_wte.shape[1]:
        raise KoGPT2Error(f"--init-from: source width {s_wte.shape[1]} differs from the new model's "
                          f"{d_wte.shape[1]}; choose a preset of the same width or omit --preset")
    d_wte.copy_(s_wte.mean(0, keepdim=True).expand_as(d_wte))
    kept = 0
    if src_tok is not None:
        s_vocab = src_tok.get_vocab()
        for tok_str, new_id in tokenizer.get_vocab().items():
            old_id = s_vocab.get(tok_str)
            if old_id is not None and old_id < s_wte.shape[0] and new_id < d_wte.shape[0]:
                d_wte[new_id] = s_wte[old_id]
                kept += 1
    else:
        n = min(s_wte.shape[0], d_wte.shape[0])
        d_wte[:n] = s_wte[:n]
        kept = n
    # positions, grown cyclically
    if "transformer.wpe.weight" in d_sd and "transformer.wpe.weight" in s_sd:
        s_wpe, d_wpe = s_sd["transformer.wpe.weight"], d_sd["transformer.wpe.weight"]
        n_src = s_wpe.shape[0]
        idx = torch.arange(d_wpe.shape[0]) % n_src
        d_wpe.copy_(s_wpe[idx])
    model.tie_weights()
    return (f"init-from {src}: copied {copied} tensors, {kept}/{d_wte.shape[0]} token rows kept "
            f"(others = mean row), {len(skipped)} tensors left at random init"
            + (f" ({', '.join(skipped[:4])}...)" if skipped else ""))
