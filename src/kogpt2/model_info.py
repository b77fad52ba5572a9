"""Facts about a model read from its config, the same way everywhere."""

from __future__ import annotations

from typing import Any, Mapping

from kogpt2.errors import KoGPT2Error

# GPT-2 calls it n_positions, GPT-Neo and most others max_position_embeddings; n_ctx is GPT-2's old name.
CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")


def context_length(model_or_config: Any) -> int:
    """The longest sequence (prompt + new tokens) a model accepts.

    Args:
        model_or_config: a HF model, its ``config``, a ``config.json`` dict, or anything with
            a ``context`` attribute (a ``kogpt2.generation`` decoder).
    """
    if isinstance(model_or_config, Mapping):
        values = [model_or_config.get(k) for k in CONTEXT_KEYS]
    elif isinstance(getattr(model_or_config, "context", None), int):
        return int(model_or_config.context)
    else:
        cfg = getattr(model_or_config, "config", model_or_config)
        values = [getattr(cfg, k, None) for k in CONTEXT_KEYS]
    for v in values:
        if isinstance(v, int) and v > 0:
            return v
    raise KoGPT2Error(f"cannot tell the context length of {type(model_or_config).__name__}: its config has none "
                      f"of {', '.join(CONTEXT_KEYS)}")
