"""`kogpt2 train` runs the command that trained the bundled kogpt2-small, as TRAINING.md writes it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

from conftest import KOREAN_TXT


def _training_md_command(shared_dir) -> list[str]:
    """The `kogpt2 train ...` command of ../shared/models/kogpt2-small/TRAINING.md, as argv."""
    text = (shared_dir / "models" / "kogpt2-small" / "TRAINING.md").read_text(encoding="utf-8")
    m = re.search(r"^\s*(kogpt2 train .*?)(?<!\\)\n", text.replace("\\\n", " "), flags=re.M | re.S)
    assert m, "TRAINING.md has no `kogpt2 train` command"
    return shlex.split(m.group(1))


def _set(argv: list[str], flag: str, value: str | None) -> list[str]:
    """Replace (or drop, for value None) a flag's value in argv."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag:
            takes_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            i += 2 if takes_value else 1
            continue
        out.append(argv[i])
        i += 1
    return out + ([flag, value] if value is not None else [])


def test_the_training_md_command_runs_as_written_on_a_tiny_shard_set(shared_dir, tiny_tokenizer_dir, tmp_path):
    from kogpt2.data import prepare

    argv = _training_md_command(shared_dir)
    assert argv[:2] == ["kogpt2", "train"] and "--preset" in argv and argv[argv.index("--preset") + 1] == "small"
    prepare([KOREAN_TXT], tiny_tokenizer_dir, tmp_path / "data", val_fraction=0.2, seed=3, progress=False)
    # Same flags, CPU-sized: the written data/out paths, one step of one short sequence, no compile.
    argv = _set(_set(argv, "--data", str(tmp_path / "data")), "--out", str(tmp_path / "run"))
    for flag, value in (("--max-steps", "1"), ("--batch-size", "1"), ("--n-ctx", "64"), ("--device", "cpu"),
                        ("--compile", None), ("--eval-interval", "0"), ("--warmup-steps", "1")):
        argv = _set(argv, flag, value)
    r = subprocess.run([sys.executable, "-m", "kogpt2", *argv[1:]], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = sorted((tmp_path / "run").glob("step_*"))[-1]
    cfg = json.loads((ckpt / "config.json").read_text())
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"]) == (8, 448, 7)


def test_shape_flags_override_the_preset(tiny_tokenizer_dir, tmp_path):
    from kogpt2.data import prepare

    prepare([KOREAN_TXT], tiny_tokenizer_dir, tmp_path / "data", val_fraction=0.2, seed=3, progress=False)
    r = subprocess.run([sys.executable, "-m", "kogpt2", "train", "--data", str(tmp_path / "data"), "--out",
                        str(tmp_path / "run"), "--preset", "mini", "--n-layer", "2", "--n-embd", "64", "--n-head", "4",
                        "--n-ctx", "32", "--batch-size", "1", "--max-steps", "1", "--eval-interval", "0",
                        "--sample-interval", "0"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((sorted((tmp_path / "run").glob("step_*"))[-1] / "config.json").read_text())
    assert (cfg["n_layer"], cfg["n_embd"], cfg["n_head"]) == (2, 64, 4)
