"""KoGPT2's one generation engine. Every door (CLI, Python API, server, chat, PPLM, game) uses it.

Modules, one job each (imports point down this list, never up):

* ``config``      ``SamplingConfig``: decoding parameters, validated and sanitised once.
* ``presets``     named defaults (``default`` = the model's generation_config.json, ``chat``, ``pplm``).
* ``detok``       incremental detokenisation (never half a character, stop sequences held back).
* ``processors``  logits processing shared by sampling and beam search.
* ``decoder``     the ``Decoder`` seam: one forward step with a KV cache.
* ``onnx_backend``, ``backends``  ONNX Runtime and torch decoders, ``load_decoder``.
* ``loop``        ``DecodeBatch``: the step-wise engine rows join and leave (continuous batching).
* ``beam``        beam search.
* ``api``         ``generate`` / ``stream`` / ``stream_batch`` / ``load``.

Names are imported lazily so that reading a config (e.g. to build command-line flags) does not
load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SamplingConfig": "kogpt2.generation.config",
    "PRESETS": "kogpt2.generation.presets",
    "resolve_config": "kogpt2.generation.presets",
    "Decoder": "kogpt2.generation.decoder",
    "TorchDecoder": "kogpt2.generation.backends",
    "load_decoder": "kogpt2.generation.backends",
    "DecodeBatch": "kogpt2.generation.loop",
    "decode_rows": "kogpt2.generation.loop",
    "beam_search": "kogpt2.generation.beam",
    "generate": "kogpt2.generation.api",
    "stream": "kogpt2.generation.api",
    "stream_batch": "kogpt2.generation.api",
    "load": "kogpt2.generation.api",
    "encode_prompt": "kogpt2.generation.api",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kogpt2.generation' has no attribute {name!r}")
