"""``kogpt2.commands.pplm_args``: PPLM strength flags generated from ``PPLMConfig``."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from kogpt2.cli import build_parser, main
from kogpt2.commands.pplm_args import add_pplm_flags, pplm_config
from kogpt2.pplm import DISCRIM_DEFAULTS, PPLMConfig
from kogpt2.pplm_discrim import DiscrimTrainConfig


def test_every_pplm_field_is_a_flag_of_pplm_and_adventure():
    fields = {f.name for f in dataclasses.fields(PPLMConfig)}
    assert set(add_pplm_flags(argparse.ArgumentParser())) == fields
    for command in ("pplm", "adventure"):
        flags = build_parser(command).format_help()
        assert all("--" + name.replace("_", "-") in flags for name in fields), command


def test_given_flags_reach_the_config_over_the_discriminator_defaults():
    parser = argparse.ArgumentParser()
    add_pplm_flags(parser)
    assert pplm_config(parser.parse_args([])) == PPLMConfig()
    assert pplm_config(parser.parse_args([]), discrim=True) == PPLMConfig(**DISCRIM_DEFAULTS)
    args = parser.parse_args(["--stepsize", "0.5", "--decay", "--kl-scale", "0.2"])
    assert pplm_config(args, discrim=True) == PPLMConfig(**{**DISCRIM_DEFAULTS, "stepsize": 0.5, "decay": True,
                                                            "kl_scale": 0.2})
    assert "0.03; 0.3 with --discrim" in parser.format_help()


def test_train_discrim_flags_are_the_config_fields_and_bad_values_are_one_line(capsys):
    help_text = build_parser("pplm", "train-discrim").format_help()
    assert all("--" + f.name.replace("_", "-") in help_text for f in dataclasses.fields(DiscrimTrainConfig))
    assert main(["pplm", "train-discrim", "--data", "x.txt", "--out", "o", "--valid-fraction", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--valid-fraction" in err and len(err.strip().splitlines()) == 1


def test_bad_strength_is_one_line(capsys):
    assert main(["pplm", "오늘", "--bow", "공포", "--gm-scale", "2"]) == 2
    err = capsys.readouterr().err
    assert "--gm-scale must be >= 0 and <= 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["nan", "-1"])
def test_discriminator_config_refuses_bad_numbers(value):
    from kogpt2.errors import KoGPT2Error

    with pytest.raises(KoGPT2Error, match="lr"):
        DiscrimTrainConfig(lr=float(value))
