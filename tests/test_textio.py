"""textio: UTF-8 text and JSON read with one clear error for every bad file."""

from __future__ import annotations

import io

import pytest

from kogpt2.errors import KoGPT2Error
from kogpt2.textio import read_json, read_text, read_text_lines


def test_bom_is_dropped_and_lines_kept(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeff하나\r\n둘\n".encode("utf-8"))
    assert read_text(p) == "하나\r\n둘\n"
    assert read_text_lines(p, warn=None) == ["하나", "둘"]


def test_cp949_names_the_line_and_the_conversion(tmp_path):
    p = tmp_path / "k.txt"
    p.write_bytes("ok\n".encode() + "한국어".encode("cp949"))
    with pytest.raises(KoGPT2Error, match=r"not UTF-8 \(byte 0x[0-9a-f]{2} on line 2\).*iconv -f cp949 -t utf-8"):
        read_text(p, "--file")


def test_only_blank_lines_is_an_error(tmp_path):
    p = tmp_path / "b.txt"
    p.write_text("\n \n", encoding="utf-8")
    with pytest.raises(KoGPT2Error, match="holds no non-blank line"):
        read_text_lines(p, "--prompts")


def test_read_json_reports_line_and_column_and_fix(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{\n  "a": 1,\n}', encoding="utf-8")
    with pytest.raises(KoGPT2Error, match=r"c.json is not valid JSON \(.* at line 3, column 1\); redo it"):
        read_json(p, "config", fix="redo it")
    with pytest.raises(KoGPT2Error, match="is a directory"):
        read_json(tmp_path, "config")


class _Stdin(io.TextIOWrapper):
    """Piped standard input holding ``data`` (not a terminal)."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data), encoding="utf-8")

    def isatty(self) -> bool:
        return False


def test_dash_reads_standard_input(monkeypatch):
    monkeypatch.setattr("sys.stdin", _Stdin("하나\n\n 둘 \n".encode()))
    notes = []
    assert read_text_lines("-", "--prompts", strip=True, warn=notes.append) == ["하나", "둘"]
    assert notes == ["--prompts - (stdin): 1 blank line(s) skipped, 2 used"]


def test_dash_errors_name_stdin_and_the_pipe_fix(monkeypatch):
    monkeypatch.setattr("sys.stdin", _Stdin("한국어".encode("cp949")))
    with pytest.raises(KoGPT2Error, match=r"^stdin is not UTF-8 .*pipe it through: iconv -f cp949 -t utf-8$"):
        read_text("-", "stdin")
    monkeypatch.setattr("sys.stdin", _Stdin(b"\n"))
    with pytest.raises(KoGPT2Error, match=r"^--file - \(stdin\) holds no non-blank line"):
        read_text_lines("-", "--file")


def test_dash_with_closed_stdin_is_one_error(monkeypatch):
    monkeypatch.setattr("sys.stdin", None)
    with pytest.raises(KoGPT2Error, match=r"--prompts - \(stdin\): standard input is closed"):
        read_text("-", "--prompts")
