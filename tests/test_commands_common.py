"""``kogpt2.commands.common``: what the command modules share (they never import each other)."""

from __future__ import annotations

import argparse
import io
import warnings

import pytest

from kogpt2.commands.common import quiet_libraries, read_prompts
from kogpt2.errors import KoGPT2Error


class _Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool):
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_read_prompts_takes_exactly_one_source(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", _Stdin("", tty=True))
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


@pytest.mark.parametrize("tty, text, expected", [
    (False, "오늘 아침에\n\n하늘이\n", ["오늘 아침에", "하늘이"]),  # piped: its lines
    (False, "", None),  # piped but empty (CI's /dev/null): the usual error
    (True, "오늘 아침에\n", None),  # a terminal is never read
])
def test_read_prompts_reads_piped_stdin_when_no_prompt_is_given(monkeypatch, tty, text, expected):
    monkeypatch.setattr("sys.stdin", _Stdin(text, tty))
    args = argparse.Namespace(prompt=None, prompts=None)
    if expected is None:
        with pytest.raises(KoGPT2Error, match="give a PROMPT or --prompts FILE"):
            read_prompts(args)
    else:
        assert read_prompts(args) == expected
