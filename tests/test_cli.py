"""The one ``kogpt2`` command: every registered subcommand answers ``--help``."""

import subprocess
import sys

import pytest

from kogpt2.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert f"kogpt2 {name}" in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_exits_2(capsys):
    assert main(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_console_script_via_python_m():
    r = subprocess.run([sys.executable, "-m", "kogpt2", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("kogpt2 ")


def test_sentiment_lora_adapts_embeddings_by_default_and_chat_does_not_offer_it():
    from kogpt2.cli import build_parser

    p = build_parser("finetune")
    base = ["--data", "d", "--out", "o"]
    assert p.parse_args(["sentiment", *base]).lora_embeddings is True
    assert p.parse_args(["sentiment", *base, "--no-lora-embeddings"]).lora_embeddings is False
    assert not hasattr(p.parse_args(["chat", *base]), "lora_embeddings")


def test_a_sub_word_in_first_place_selects_its_own_parser(capsys):
    from kogpt2.cli import build_parser

    with pytest.raises(SystemExit) as e:
        main(["pplm", "train-discrim", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "usage: kogpt2 pplm train-discrim" in out
    assert "--max-examples" in out and "--bow" not in out
    # the word anywhere else is a prompt word, parsed by the command's own parser
    args = build_parser("pplm").parse_args(["오늘", "--bow", "공포"])
    assert args.prompt == "오늘" and args.func.__name__ == "run"
    args = build_parser("pplm", "train-discrim").parse_args(["--data", "d.txt", "--out", "o", "--epochs", "7"])
    assert args.func.__name__ == "run_train" and args.epochs == 7


def test_pplm_help_names_every_shipped_bag_of_words(capsys):
    from kogpt2.paths import bow_names

    with pytest.raises(SystemExit):
        main(["pplm", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert len(bow_names()) >= 10 and all(name in out for name in bow_names())


def test_no_command_shows_the_libraries_loading_bars(tiny_model_dir, tmp_path):
    from conftest import KOREAN_TXT, ROOT

    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    for argv in (["eval", "bpc", "--text", str(KOREAN_TXT), "--max-docs", "2", "--model", str(tiny_model_dir)],
                 ["export", "hf", str(tiny_model_dir), str(tmp_path / "released")]):
        r = subprocess.run([sys.executable, "-m", "kogpt2", *argv], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Loading weights" not in r.stderr, r.stderr
