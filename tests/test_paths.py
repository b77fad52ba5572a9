"""Model directory resolution: the bundled model, a model directory, a training run's newest checkpoint."""

from __future__ import annotations

import shutil

import pytest

from kogpt2.errors import KoGPT2Error
from kogpt2.model_dir import check_model_dir
from kogpt2.paths import bundled_model_dir, newest_step_dir, resolve_model_dir


def make_run(tmp_path, tiny_model_dir, steps=(9, 10)):
    """A `kogpt2 train --out` layout: step_* checkpoints (the newest holds a marker) and a metrics file."""
    run = tmp_path / "run"
    for s in steps:
        shutil.copytree(tiny_model_dir, run / f"step_{s:07d}")
    (run / "metrics.csv").write_text("step,loss\n", encoding="utf-8")
    (run / "step_0000011.tmp").mkdir()  # an interrupted save: never picked
    return run


def test_a_run_directory_resolves_to_its_newest_checkpoint(tmp_path, tiny_model_dir):
    run = make_run(tmp_path, tiny_model_dir)
    assert newest_step_dir(run) == run / "step_0000010"
    assert resolve_model_dir(run) == run / "step_0000010"
    assert resolve_model_dir(str(run / "step_0000009")) == run / "step_0000009"  # a checkpoint stays itself
    assert check_model_dir(run) == run / "step_0000010"
    assert resolve_model_dir(None) == bundled_model_dir()


def test_a_directory_without_model_or_checkpoints_still_says_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert resolve_model_dir(tmp_path / "empty") == tmp_path / "empty"
    with pytest.raises(KoGPT2Error, match="missing config.json"):
        check_model_dir(tmp_path / "empty")


def test_generate_and_export_take_a_run_directory(tmp_path, tiny_model_dir, capsys):
    from kogpt2.cli import main

    run = make_run(tmp_path, tiny_model_dir)
    args = ["오늘 날씨가", "--no-stream", "--max-new-tokens", "4", "--greedy", "--device", "cpu",
            "--backend", "torch"]
    assert main(["generate", *args, "--model", str(run / "step_0000010")]) == 0
    want = capsys.readouterr().out
    assert main(["generate", *args, "--model", str(run)]) == 0
    assert capsys.readouterr().out == want
    assert main(["export", "hf", str(run), str(tmp_path / "release")]) == 0
    assert (tmp_path / "release" / "model.safetensors").is_file()


def test_an_empty_model_path_is_an_error_not_the_current_directory():
    for empty in ("", "  "):
        with pytest.raises(KoGPT2Error, match="the model path is empty"):
            resolve_model_dir(empty)
