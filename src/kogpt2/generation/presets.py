"""Named sampling presets, layered the same way by every entry point.

Layers, lowest first: ``SamplingConfig``'s field defaults < the preset < what the user gave.

* ``default``: the model directory's ``generation_config.json`` (a model's defaults travel with
  it). ``kogpt2 generate``, ``kogpt2.generate/stream``, ``/v1/completions``, the web demo's
  generate tab.
* ``chat``: ``kogpt2 chat``, ``ChatSession``, ``/v1/chat/completions``, the web demo's chat tab;
  keeps the chat format's tokens out of answers.
* ``pplm``: ``kogpt2 pplm``, ``kogpt2 adventure``, ``kogpt2.pplm`` (top-k 10 and penalty 1.2 as
  in the PPLM paper's examples).

Print the table of defaults (the README's)::

    python -m kogpt2.generation.presets --markdown
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from kogpt2.errors import KoGPT2Error
from kogpt2.generation.config import FIELDS, SamplingConfig, check_names

CHAT_FORMAT_TOKENS = ("<usr>", "<sys>", "<unused1>", "<pad>", "<s>", "<unk>", "<mask>")
"""Tokens of the chat format that must never appear inside an answer."""

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # filled from the model's generation_config.json
    "chat": dict(max_new_tokens=64, min_new_tokens=1, temperature=0.8, top_p=0.9, repetition_penalty=1.3,
                 no_repeat_ngram_size=3, banned_tokens=list(CHAT_FORMAT_TOKENS)),
    # NOTE: min_new_tokens 16: the model often ends a document right after a one-sentence prompt.
    "pplm": dict(max_new_tokens=60, min_new_tokens=16, top_k=10, repetition_penalty=1.2),
}
"""Preset name -> ``SamplingConfig`` fields it sets (over the field defaults)."""

GENERATION_CONFIG_KEYS = ("do_sample", "temperature", "top_k", "top_p", "min_p", "typical_p",
                          "repetition_penalty", "no_repeat_ngram_size", "num_beams", "max_new_tokens",
                          "min_new_tokens")
"""Keys of a Hugging Face ``generation_config.json`` that the ``default`` preset reads."""


def model_defaults(model_dir: str | Path | None) -> dict[str, Any]:
    """The sampling fields a model directory's ``generation_config.json`` sets (none: ``{}``).

    Keys set to ``null`` and keys we do not use are ignored; HF's ``top_k: 50`` default is
    dropped when the file does not sample.
    """
    f = Path(model_dir) / "generation_config.json" if model_dir is not None else None
    if f is None or not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KoGPT2Error(f"{f} is not valid JSON ({e}); fix or delete it") from None
    values = {k: data[k] for k in GENERATION_CONFIG_KEYS if data.get(k) is not None}
    if values.get("top_k") == 50 and not data.get("do_sample"):
        values.pop("top_k")
    return values


def preset_values(preset: str, model_dir: str | Path | None = None) -> dict[str, Any]:
    """The fields ``preset`` sets (``default``: those of ``model_dir``'s generation config)."""
    if preset not in PRESETS:
        raise KoGPT2Error(f"unknown sampling preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if preset == "default":
        return model_defaults(model_dir)
    return {k: list(v) if isinstance(v, list) else v for k, v in PRESETS[preset].items()}


def resolve_config(preset: str = "default", model_dir: str | Path | None = None,
                   config: SamplingConfig | None = None, **given: Any) -> SamplingConfig:
    """The ``SamplingConfig`` of a request: preset (or ``config``) under the values given.

    Args:
        preset: a name in :data:`PRESETS`; ignored when ``config`` is given.
        model_dir: the model directory (for ``default``); None = no model defaults.
        config: a complete config to start from instead of a preset.
        **given: fields the user set; ``None`` values mean "not given".
    """
    given = {k: v for k, v in given.items() if v is not None}
    check_names(given)
    if config is not None:
        return config.replace(**given) if given else config
    return SamplingConfig(**{**preset_values(preset, model_dir), **given})


# ---------------------------------------------------------------------------- the defaults table

def defaults_table(model_dir: str | Path | None = None) -> list[list[str]]:
    """Rows ``[field, SamplingConfig(), default, chat, pplm, ...]`` of every preset's effective values."""
    from kogpt2.paths import bundled_model_dir

    base = SamplingConfig()
    columns = [base] + [resolve_config(p, model_dir or bundled_model_dir()) for p in PRESETS]
    return [[name] + [_show(getattr(c, name)) for c in columns] for name in FIELDS]


def markdown_table(model_dir: str | Path | None = None) -> str:
    """:func:`defaults_table` as Markdown (``default`` = the bundled model's generation_config.json)."""
    head = ["field", "no preset"] + [f"`{p}`" for p in PRESETS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([f"`{r[0]}`"] + r[1:]) + " |" for r in defaults_table(model_dir)]
    return "\n".join(lines)


def _show(v: Any) -> str:
    if isinstance(v, list):
        return " ".join(f"`{x}`" for x in v) if v else "–"
    return "random" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="print the sampling defaults of every preset")
    ap.add_argument("--markdown", action="store_true", help="as a Markdown table (the README's)")
    ap.add_argument("--model", default=None, help="model directory for `default` (default: the bundled one)")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown_table(args.model))
    else:
        for row in defaults_table(args.model):
            print("\t".join(row))


__all__ = ["PRESETS", "CHAT_FORMAT_TOKENS", "GENERATION_CONFIG_KEYS", "model_defaults", "preset_values",
           "resolve_config", "defaults_table", "markdown_table"]

if __name__ == "__main__":
    main()
