"""Flags generated from config dataclasses (kogpt2.config_flags)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from kogpt2.config_flags import add_dataclass_flags, dataclass_kwargs, field_docs


@dataclass
class _Demo:
    steps: int = 10
    """How many steps to take."""
    rate: float | None = None
    """Learning rate; None = automatic."""
    name: str = "run"
    fast: bool = False
    """Go fast."""
    tags: list[str] = field(default_factory=list)
    """Labels."""
    extra: dict = field(default_factory=dict)


def _parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="demo")
    add_dataclass_flags(p, _Demo, **kw)
    return p


def test_field_docs_are_read_from_the_source() -> None:
    docs = field_docs(_Demo)
    assert docs["steps"] == "How many steps to take."
    assert docs["rate"] == "Learning rate; None = automatic."
    assert "name" not in docs


def test_each_field_becomes_a_typed_flag_with_its_default_and_help() -> None:
    p = _parser()
    args = p.parse_args(["--steps", "5", "--rate", "0.5", "--fast", "--tags", "a", "b"])
    assert dataclass_kwargs(_Demo, args) == {"steps": 5, "rate": 0.5, "name": "run", "fast": True,
                                             "tags": ["a", "b"]}
    assert _Demo(**dataclass_kwargs(_Demo, p.parse_args([]))) == _Demo()
    help_text = p.format_help()
    assert "How many steps to take. (default: 10)" in help_text
    assert "--no-fast" in help_text
    assert "--extra" not in help_text  # dicts have no flag
    with pytest.raises(SystemExit):
        p.parse_args(["--steps", "many"])


def test_defaults_none_keeps_only_what_was_given() -> None:
    p = _parser(defaults_none=True, default_notes={"steps": "7 (preset)"}, exclude={"tags"})
    args = p.parse_args(["--rate", "2"])
    assert dataclass_kwargs(_Demo, args, skip_none=True) == {"rate": 2.0}
    assert "(default: 7 (preset))" in p.format_help()
    assert "--tags" not in p.format_help()


def test_given_fields_names_the_typed_flags_even_at_their_defaults():
    import argparse
    from dataclasses import dataclass

    from kogpt2.config_flags import add_dataclass_flags, given_fields

    @dataclass
    class Cfg:
        lr: float = 1e-3
        steps: int = 10
        compile: bool = False
        tags: list[str] | None = None

    p = argparse.ArgumentParser()
    add_dataclass_flags(p, Cfg)
    args = p.parse_args(["--lr", "1e-3", "--no-compile", "--tags", "a", "b"])
    assert given_fields(args) == {"lr", "compile", "tags"} and (args.lr, args.steps, args.tags) == (1e-3, 10, ["a", "b"])
    assert given_fields(p.parse_args([])) == frozenset()
