"""The sampling flags of every generating command, generated from ``SamplingConfig`` in this one place.

Every flag defaults to None: what is not given comes from the command's preset
(``kogpt2.generation.presets``), whose values the help shows.
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from kogpt2.errors import KoGPT2Error

SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p", "typical_p")
"""Fields that mean nothing to greedy decoding or beam search."""


def add_sampling_flags(parser: argparse.ArgumentParser, preset: str, exclude: Iterable[str] = ()) -> list[str]:
    """Add one flag per ``SamplingConfig`` field (plus ``--greedy``) to a group of ``parser``.

    Args:
        parser: the command's parser.
        preset: the command's preset, whose values the help shows as defaults (``default``: the
            bundled model's ``generation_config.json``).
        exclude: fields the command does not offer.

    Returns:
        the fields that got a flag.
    """
    from kogpt2.config_flags import add_dataclass_flags
    from kogpt2.generation.config import SamplingConfig
    from kogpt2.generation.presets import preset_values

    try:
        notes = _notes(preset_values(preset, _bundled_dir() if preset == "default" else None))
    except KoGPT2Error:  # an unreadable bundled generation_config.json: show the field defaults
        notes = {}
    where = "the model's generation_config.json" if preset == "default" else f"the `{preset}` preset"
    group = parser.add_argument_group(f"sampling (defaults: {where}; `python -m kogpt2.generation.presets` "
                                      "prints every preset)")
    added = add_dataclass_flags(group, SamplingConfig, exclude=set(exclude), defaults_none=True,
                                default_notes=notes, help_overrides={"seed": "random seed for reproducible output"})
    if "do_sample" in added:
        group.add_argument("--greedy", action="store_true",
                           help="greedy decoding (same as --no-do-sample)")
    return added


def _bundled_dir() -> Any:
    from kogpt2.paths import bundled_model_dir

    return bundled_model_dir()


def _notes(values: dict[str, Any]) -> dict[str, Any]:
    return {k: " ".join(v) if isinstance(v, list) else v for k, v in values.items()}


def sampling_values(args: argparse.Namespace) -> dict[str, Any]:
    """The ``SamplingConfig`` fields given on the command line; sampling-only flags with greedy
    decoding are an error."""
    from kogpt2.config_flags import dataclass_kwargs
    from kogpt2.generation.config import SamplingConfig

    values = dataclass_kwargs(SamplingConfig, args, skip_none=True)
    if getattr(args, "greedy", False):
        if values.get("do_sample"):
            raise KoGPT2Error("--greedy turns sampling off and --do-sample turns it on; give only one of them")
        values["do_sample"] = False
    if values.get("do_sample") is False or values.get("num_beams", 1) > 1:
        given = [f"--{n.replace('_', '-')}" for n in SAMPLING_ONLY if n in values]
        if given:
            raise KoGPT2Error(f"{', '.join(given)} only apply to sampling; drop them or drop --greedy/--num-beams")
        values["do_sample"] = False
    return values
