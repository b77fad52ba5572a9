"""The text adventure on a tiny model: menu, free text, save/load, undo, retry, bad input, CLI."""

from __future__ import annotations

import io
import json
import sys

import pytest

from kogpt2.adventure import (HELP, Adventure, GameState, Genre, Settings, as_sentence, cut_at_sentence_end,
                              fill, genre_names, josa, trim_to_context)
from kogpt2.adventure_ui import play_script
from kogpt2.cli import main
from kogpt2.pplm import PPLMDecoder, bow_names


@pytest.fixture
def game(tiny_model_dir) -> Adventure:
    return Adventure.new("fantasy", settings=Settings(model=str(tiny_model_dir), max_new_tokens=8, seed=1))


def test_korean_particles_follow_the_last_syllable():
    assert josa("아린", "은") == "아린은" and josa("세나", "은") == "세나는"
    assert josa("카엘", "이") == "카엘이" and josa("유나", "가") == "유나가"
    assert josa("서울", "으로") == "서울로" and josa("집", "으로") == "집으로"
    assert fill("{name:은} {goal:을} 찾았다.", name="리오", goal="왕관") == "리오는 왕관을 찾았다."


def test_sentence_helpers(tiny_tokenizer):
    assert cut_at_sentence_end("그는 웃었다. 그리고 문을") == "그는 웃었다."
    assert cut_at_sentence_end("\"가자!\" 그가 말") == "\"가자!\""
    assert cut_at_sentence_end("끝이 없는 글") == "끝이 없는 글"
    assert as_sentence("문을  연다") == "문을 연다." and as_sentence("정말?") == "정말?"
    text = "첫 문장이다. 두 번째 문장이다. 마지막 문장이다."
    short = trim_to_context(text, tiny_tokenizer, 12)
    assert text.endswith(short) and len(tiny_tokenizer(short)["input_ids"]) <= 12


def test_every_genre_has_a_bow_and_fills():
    assert {"fantasy", "horror", "sci-fi", "mystery"} <= set(genre_names())
    for key in genre_names():
        g = Genre.load(key)
        assert g.bow in bow_names()
        assert {"이동", "싸움", "대화", "살펴보기"} <= set(g.actions)
        for t in g.openings:
            text = fill(t, setting=g.settings[0], role=g.roles[0], name="아린", goal=g.goals[0])
            assert "{" not in text


def test_scripted_game_menu_and_free_text(game):
    out = io.StringIO()
    play_script(game, ["1", "문을 조용히 연다", "quit", "2"], out)
    text = out.getvalue()
    assert [t.action for t in game.state.turns] == ["opening", "이동", "free"]
    assert game.state.turns[1].player in [fill(t, name=game.state.protagonist) for t in game.genre.actions["이동"]]
    assert "▶ 문을 조용히 연다." in text and "> quit" in text and "> 2" not in text
    assert "1. 이동" in text and "4. 살펴보기" in text
    assert isinstance(game.teller.decoder, PPLMDecoder)


def test_save_then_load_restores_the_exact_state(game, tmp_path):
    game.handle("3")
    game.handle("주위를 둘러본다")
    f = tmp_path / "save.json"
    assert "저장했습니다" in game.handle(f"save {f}").text
    saved = game.state.to_dict()
    assert json.loads(f.read_text(encoding="utf-8"))["turns"] == saved["turns"]
    game.handle("1")
    assert "불러왔습니다" in game.handle(f"load {f}").text
    assert game.state.to_dict() == saved
    other = Adventure(GameState.load(f))
    assert other.state.to_dict() == saved
    assert other.handle("2").text == game.handle("2").text  # the loaded game goes on identically


def test_undo_and_retry(game):
    opening = game.state.story()
    game.handle("1")
    assert len(game.state.turns) == 2
    game.handle("undo")
    assert len(game.state.turns) == 1 and game.state.story() == opening
    assert "되돌릴 차례가 없습니다" in game.handle("undo").text
    game.handle("4")
    before = game.state.turns[-1]
    game.handle("retry")
    after = game.state.turns[-1]
    assert len(game.state.turns) == 2 and after.player == before.player and after.seed != before.seed


@pytest.mark.parametrize("line", ["9", "0", "/춤", "load /no/such/file.json"])
def test_bad_commands_get_help(game, line):
    before = game.state.to_dict()
    reply = game.handle(line)
    assert HELP in reply.text and not reply.quit
    assert game.state.to_dict() == before


def test_no_pplm_uses_the_plain_model(tiny_model_dir):
    g = Adventure.new("horror", "서연", "살아남는 것",
                      Settings(model=str(tiny_model_dir), use_pplm=False, max_new_tokens=6))
    assert not isinstance(g.teller.decoder, PPLMDecoder)
    assert g.state.protagonist == "서연" and "살아남는 것" in g.state.story()


def test_cli_scripted_mode(tiny_model_dir, tmp_path, monkeypatch, capsys):
    save = tmp_path / "g.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"1\nsave {save}\nquit\n"))
    assert main(["adventure", "--genre", "sci-fi", "--model", str(tiny_model_dir), "--max-new-tokens", "6",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "[SF]" in out and "> save" in out and save.is_file()
    monkeypatch.setattr(sys, "stdin", io.StringIO("story\nquit\n"))
    assert main(["adventure", "--load", str(save)]) == 0
    assert "불러" not in capsys.readouterr().err
    assert main(["adventure", "--genre", "western", "--model", str(tiny_model_dir)]) == 2
    assert main(["adventure", "--no-pplm", "--stepsize", "0.1", "--model", str(tiny_model_dir)]) == 2
