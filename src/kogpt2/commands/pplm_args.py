"""The PPLM strength flags of ``kogpt2 pplm`` and ``kogpt2 adventure``, generated from ``PPLMConfig``.

Every flag defaults to None: what is not given comes from ``PPLMConfig`` (with
``DISCRIM_DEFAULTS`` over it for a discriminator attribute), whose values the help shows.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_pplm_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Add one flag per ``PPLMConfig`` field to a "PPLM strength" group; returns the fields."""
    import dataclasses

    from kogpt2.config_flags import add_dataclass_flags
    from kogpt2.pplm import DISCRIM_DEFAULTS, PPLMConfig

    defaults = {f.name: f.default for f in dataclasses.fields(PPLMConfig)}
    notes = {name: f"{defaults[name]}; {value} with --discrim" for name, value in DISCRIM_DEFAULTS.items()
             if value != defaults[name]}
    group = parser.add_argument_group("PPLM strength")
    return add_dataclass_flags(group, PPLMConfig, defaults_none=True, default_notes=notes)


def pplm_values(args: argparse.Namespace) -> dict[str, Any]:
    """The ``PPLMConfig`` fields given on the command line."""
    from kogpt2.config_flags import dataclass_kwargs
    from kogpt2.pplm import PPLMConfig

    return dataclass_kwargs(PPLMConfig, args, skip_none=True)


def pplm_config(args: argparse.Namespace, discrim: bool = False):
    """A ``PPLMConfig`` from the flags (over ``DISCRIM_DEFAULTS`` for a discriminator); validates them."""
    from kogpt2.pplm import DISCRIM_DEFAULTS, PPLMConfig

    values = dict(DISCRIM_DEFAULTS) if discrim else {}
    values.update(pplm_values(args))
    return PPLMConfig(**values)
