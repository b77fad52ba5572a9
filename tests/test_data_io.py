"""Reading corpora: input expansion, document boundaries in text and JSON lines, counted skips."""

from __future__ import annotations

from collections import Counter

import pytest

from kogpt2.data_io import expand_inputs, iter_documents
from kogpt2.errors import KoGPT2Error


def test_expand_inputs_takes_files_directories_and_globs_once_each(tmp_path):
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.jsonl"
    a.write_text("x\n")
    b.write_text('{"text": "y"}\n')
    (tmp_path / "notes.md").write_text("ignored")
    got = expand_inputs([tmp_path, str(tmp_path / "*.txt"), a])
    assert got == [a, b]
    with pytest.raises(KoGPT2Error, match="input path not found"):
        expand_inputs([tmp_path / "missing.txt"])
    with pytest.raises(KoGPT2Error, match="matches no files"):
        expand_inputs([str(tmp_path / "*.csv")])


def test_text_documents_end_at_separator_lines_and_blank_lines_are_counted(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("첫 문단\n\n둘째 문단\n<|endoftext|>\n다음 문서\n", encoding="utf-8")
    stats = Counter()
    docs = [d for _, d in iter_documents([f], stats, warn=lambda m: None)]
    assert docs == [["첫 문단", "둘째 문단"], ["다음 문서"]]
    assert stats["separator_lines"] == 1 and stats["blank_lines"] == 1 and stats["files"] == 1


def test_jsonl_bad_lines_are_counted_and_reported_not_fatal(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "가\\n나"}\n{"body": "x"}\nnot json\n{"text": ""}\n', encoding="utf-8")
    stats, warnings = Counter(), []
    docs = [d for _, d in iter_documents([f], stats, warn=warnings.append)]
    assert docs == [["가", "나"]]
    assert stats["missing_text_field_lines"] == 1 and stats["invalid_json_lines"] == 1
    assert stats["empty_text_lines"] == 1 and len(warnings) == 2 and "--text-field" in warnings[0]
    assert [d for _, d in iter_documents([f], Counter(), text_field="body", warn=lambda m: None)] == [["x"]]
