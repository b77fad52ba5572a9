"""KoGPT2: Korean GPT-2 toolkit.

Public API (imported lazily so ``import kogpt2`` stays fast)::

    import kogpt2
    tok = kogpt2.get_kogpt2_tokenizer()          # bundled tokenizer, or a path
    model = kogpt2.load_model()                   # bundled model, or any HF directory
    print(kogpt2.generate("나는 어두운 숲 속을 거닐고 있다.", model=model, tokenizer=tok))
    clf = kogpt2.load_classifier()                # bundled NSMC sentiment head
    print(clf.classify(["정말 재미있는 영화였다"]))
    chat = kogpt2.ChatSession(*kogpt2.load_chat_model())   # bundled chat adapter
    print("".join(chat.reply("오늘 너무 피곤해")))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "get_kogpt2_tokenizer": "kogpt2.tokenizer",
    "load_tokenizer": "kogpt2.tokenizer",
    "train_tokenizer": "kogpt2.tokenizer",
    "bundled_model_dir": "kogpt2.paths",
    "load_model": "kogpt2.model",
    "build_model": "kogpt2.model",
    "resolve_model_dir": "kogpt2.paths",
    "context_length": "kogpt2.model_info",
    "generate": "kogpt2.generation.api",
    "stream": "kogpt2.generation.api",
    "stream_batch": "kogpt2.generation.api",
    "SamplingConfig": "kogpt2.generation.config",
    "PRESETS": "kogpt2.generation.presets",
    "KoGPT2Error": "kogpt2.errors",
    "load_classifier": "kogpt2.sentiment",
    "load_chat_model": "kogpt2.chat",
    "ChatSession": "kogpt2.chat",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kogpt2' has no attribute {name!r}")
