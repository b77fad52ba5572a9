"""validate: paths to read and write, and numeric options."""

from __future__ import annotations

import pytest

from kogpt2.errors import KoGPT2Error
from kogpt2.validate import check_numbers, existing_dir, existing_file, number_problems, output_dir


def test_number_rules():
    assert number_problems(lr=(1e-3, "> 0"), keep=(0, ">= 0"), dropout=(0.5, ">= 0 < 1"), skip=(None, "> 0")) == []
    assert number_problems(lr=(float("nan"), "> 0")) == ["--lr must be a finite number, got nan"]
    assert number_problems(lr=(float("-inf"), "> 0")) == ["--lr must be a finite number, got -inf"]
    assert number_problems(max_steps=(0, ">= 1")) == ["--max-steps must be >= 1, got 0"]
    assert number_problems(dropout=(1.0, ">= 0 < 1")) == ["--dropout must be >= 0 and < 1, got 1.0"]
    with pytest.raises(KoGPT2Error, match="--a must be > 0, got -1; --b must be >= 1, got 0"):
        check_numbers(a=(-1, "> 0"), b=(0, ">= 1"))


def test_paths(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    assert existing_file(f, "--x") == f
    assert existing_dir(tmp_path, "--d") == tmp_path
    assert output_dir(tmp_path / "new") == tmp_path / "new"
    with pytest.raises(KoGPT2Error, match="is a directory; give a file"):
        existing_file(tmp_path, "--x")
    with pytest.raises(KoGPT2Error, match="--x not found"):
        existing_file(tmp_path / "nope", "--x")
    with pytest.raises(KoGPT2Error, match="is a file, not a directory"):
        existing_dir(f, "--d")
    with pytest.raises(KoGPT2Error, match="is an existing file"):
        output_dir(f)
    with pytest.raises(KoGPT2Error, match="is a file, so the directory cannot be created"):
        output_dir(f / "sub")
