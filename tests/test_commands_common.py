"""``kogpt2.commands.common``: what the command modules share (they never import each other)."""

from __future__ import annotations

import argparse
import warnings

import pytest

from kogpt2.commands.common import quiet_libraries, read_prompts
from kogpt2.errors import KoGPT2Error


def test_read_prompts_takes_exactly_one_source(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("오늘 아침에\n나는 어두운 숲\n", encoding="utf-8")
    assert read_prompts(argparse.Namespace(prompt="하늘", prompts=None)) == ["하늘"]
    assert read_prompts(argparse.Namespace(prompt=None, prompts=str(f))) == ["오늘 아침에", "나는 어두운 숲"]
    for prompt, prompts in ((None, None), ("하늘", str(f))):
        with pytest.raises(KoGPT2Error, match="exactly one"):
            read_prompts(argparse.Namespace(prompt=prompt, prompts=prompts))


def test_quiet_libraries_prints_warnings_on_one_line(capsys):
    old = warnings.showwarning
    try:
        quiet_libraries()
        warnings.warn_explicit("무언가 이상하다", UserWarning, "somewhere.py", 3)
    finally:
        warnings.showwarning = old
    assert capsys.readouterr().err == "warning: 무언가 이상하다\n"
