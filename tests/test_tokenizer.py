"""Tokenizer guarantees: exact round trip, no <unk>, SKT special ids, HF loading, anchors, CLI."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import KOREAN_TXT
from kogpt2.cli import main
from kogpt2.errors import KoGPT2Error
from kogpt2.tokenizer import (BYTE_TOKENS, SPECIAL_TOKENS, get_kogpt2_tokenizer, iter_text_lines,
                              load_tokenizer, tokenizer_hash, tokenizer_layout, train_tokenizer)

ROUND_TRIP = {
    "prose": "봄비가 그친 뒤 골목마다 흙냄새가 번졌고, 아이들은 웅덩이를 피해 뛰어다녔다.",
    "mixed": "GPT-2 모델은 2019년에 나왔고 KoGPT2는 125M 파라미터(약 1.25억 개)로 학습됐다.",
    "emoji": "좋아요 👍🏽 가족 👩‍👩‍👧‍👦 국기 🇰🇷🇯🇵 하트 ❤️ 끝😀",
    "hanja": "大韓民國 憲法 第一條 — 한자와 한글 섞기",
    "jamo": "ㅋㅋㅋ ㅠㅠ ㄱㄴㄷㄹ ᄀ ᅡ ᆨ",
    "controls": "제어\x00문자\x07와 \x1b[0m 이스케이프\x7f",
    "spaces": "공백   여러 칸    그리고\u00a0줄바꿈없는\u200b공백   ",
    "tabs_newlines": "첫 줄\n\t들여쓴 둘째 줄\r\n\n\n셋째\t\t탭",
    "empty": "",
    "only_space": " ",
    "specials_as_text": "<usr> 안녕 <sys> 반가워</s>",
}
ANCHOR_SENTENCES = [
    "나는 어두운 숲 속을 거닐고 있다.",
    "오늘 회의는 오후 세 시에 시작해서 다섯 시쯤 끝날 예정입니다.",
    "서울에서 부산까지 기차로 두 시간 반이면 도착한다고 들었어요.",
    "그녀는 창가에 앉아 따뜻한 보리차를 천천히 마셨다",
]


def korean_text(tok, text: str) -> str:
    return tok.decode(tok.encode(text))


# --- guarantees on our tokenizer -------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip_is_exact_and_has_no_unk(tiny_tokenizer, name):
    text = ROUND_TRIP[name]
    assert unicodedata.normalize("NFC", text) == text
    ids = tiny_tokenizer.encode(text)
    assert tiny_tokenizer.unk_token_id not in ids
    assert korean_text(tiny_tokenizer, text) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_arbitrary_unicode_round_trips_without_unk(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text)
    assert 5 not in ids
    assert tiny_tokenizer.decode(ids) == unicodedata.normalize("NFC", text)


def test_nfd_input_encodes_like_nfc(tiny_tokenizer):
    nfc = "한국어 문장과 café"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    assert tiny_tokenizer.encode(nfd) == tiny_tokenizer.encode(nfc)
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(nfd)) == nfc


def test_special_and_byte_token_ids(tiny_tokenizer):
    expected = {"<s>": 0, "</s>": 1, "<usr>": 2, "<pad>": 3, "<sys>": 4, "<unk>": 5, "<mask>": 6,
                "<d>": 7, "</d>": 8, "<unused0>": 9, "<unused99>": 108}
    for token, i in expected.items():
        assert tiny_tokenizer.convert_tokens_to_ids(token) == i
    assert tiny_tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(109))
    assert tiny_tokenizer.convert_tokens_to_ids(BYTE_TOKENS) == list(range(109, 365))
    assert (tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id) == (1, 1)
    assert (tiny_tokenizer.pad_token_id, tiny_tokenizer.unk_token_id, tiny_tokenizer.mask_token_id) == (3, 5, 6)


def test_special_tokens_in_text_are_single_ids(tiny_tokenizer):
    text = "<usr>질문<sys>대답</s><d>문서</d>"
    ids = tiny_tokenizer.encode(text)
    for i in (2, 4, 1, 7, 8):
        assert ids.count(i) == 1
    assert tiny_tokenizer.convert_ids_to_tokens(ids).count("<") == 0  # never spelled out piecewise
    assert tiny_tokenizer.decode(ids) == text


def test_training_iterator_skips_separators(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("첫 문단\n<|endoftext|>\n둘째 문단\n  <|endoftext|>  \n마지막", encoding="utf-8")
    assert list(iter_text_lines([f])) == ["첫 문단\n", "둘째 문단\n", "마지막\n"]
    assert list(iter_text_lines([tmp_path])) == ["첫 문단\n", "둘째 문단\n", "마지막\n"]


def test_train_bad_inputs(tmp_path):
    with pytest.raises(KoGPT2Error, match="not found"):
        train_tokenizer([tmp_path / "missing.txt"], vocab_size=600, show_progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("<|endoftext|>\n", encoding="utf-8")
    with pytest.raises(KoGPT2Error, match="no text"):
        train_tokenizer([empty], vocab_size=600, show_progress=False)
    with pytest.raises(KoGPT2Error, match="too small"):
        train_tokenizer([KOREAN_TXT], vocab_size=300, show_progress=False)


def test_hf_loaders_agree(tiny_tokenizer_dir, tiny_model_dir):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    text = ROUND_TRIP["mixed"] + ROUND_TRIP["emoji"]
    ours = load_tokenizer(tiny_tokenizer_dir).encode(text)
    for d in (tiny_tokenizer_dir, tiny_model_dir):  # the model dir has a gpt2 config.json beside
        assert AutoTokenizer.from_pretrained(d).encode(text) == ours
        plain = PreTrainedTokenizerFast.from_pretrained(d)
        assert plain.encode(text) == ours
        assert plain.decode(ours) == text
    assert get_kogpt2_tokenizer(tiny_tokenizer_dir).encode(text) == ours
    assert tokenizer_layout(tiny_tokenizer_dir) == "ours"


def test_hash_is_stable_and_tracks_vocab(tiny_tokenizer, tiny_tokenizer_dir, tmp_path):
    h = tokenizer_hash(tiny_tokenizer)
    assert len(h) == 16
    assert tokenizer_hash(load_tokenizer(tiny_tokenizer_dir)) == h
    assert tokenizer_hash(tiny_tokenizer.backend_tokenizer) == h
    other = train_tokenizer([KOREAN_TXT], vocab_size=500, min_frequency=1, show_progress=False)
    assert tokenizer_hash(other) != h


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(KoGPT2Error, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


# --- real KoGPT2 tokenizers (../shared/anchors) ----------------------------------------


def _anchor(shared_dir: Path, name: str) -> Path:
    d = shared_dir / "anchors" / name
    if not (d / "tokenizer.json").is_file():
        pytest.skip(f"anchor {name} absent")
    return d


@pytest.mark.parametrize("name,layout", [("skt_kogpt2_base_v2", "skt-v2"), ("taeminlee_kogpt2_v1", "kogpt2-v1")])
def test_anchor_matches_raw_tokenizers(shared_dir, name, layout):
    from tokenizers import Tokenizer

    d = _anchor(shared_dir, name)
    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok = load_tokenizer(d)
    assert tokenizer_layout(d) == layout
    for s in ANCHOR_SENTENCES:
        ids = tok.encode(s)
        assert ids == raw.encode(s).ids
        assert tok.decode(ids) == raw.decode(ids) == s
        assert "▁" not in tok.decode(ids, skip_special_tokens=True)


def test_skt_v2_special_tokens(shared_dir):
    tok = load_tokenizer(_anchor(shared_dir, "skt_kogpt2_base_v2"))
    assert len(tok) == 51200
    assert (tok.bos_token, tok.eos_token, tok.bos_token_id, tok.eos_token_id) == ("</s>", "</s>", 1, 1)
    assert (tok.unk_token_id, tok.pad_token_id, tok.mask_token_id) == (5, 3, 6)
    assert tok.encode("<usr>안녕<sys>")[0] == 2 and 4 in tok.encode("<usr>안녕<sys>")


def test_v1_ids_are_model_vocabulary_ids(shared_dir):
    d = _anchor(shared_dir, "taeminlee_kogpt2_v1")
    vocab = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    tok = load_tokenizer(d)
    assert len(tok) == len(vocab) == 50000
    for t in ("<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<unused0>", "<unused97>"):
        assert tok.convert_tokens_to_ids(t) == vocab[t]
    assert tok.convert_tokens_to_ids("<unused0>") == 6  # the published added token said 7
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (0, 1, 3, 5)
    ids = tok.encode("<usr>날씨 좋다 😊 ㅠㅠ <mask></s>")
    assert max(ids) < 50000 and ids[0] == 2 and ids[-1] == 1
    assert 5 in ids  # emoji outside the vocabulary: <unk>, not an id the model cannot embed


@pytest.mark.parametrize("name", ["skt_kogpt2_base_v2",
                                  pytest.param("taeminlee_kogpt2_v1", marks=pytest.mark.slow)])
def test_normalised_anchor_reloads_with_plain_transformers(shared_dir, tmp_path, name):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    src = _anchor(shared_dir, name)
    tok = load_tokenizer(src)
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": len(tok)}))
    text = "<usr>" + ANCHOR_SENTENCES[1] + "<sys>" + ANCHOR_SENTENCES[2] + "</s>"
    for reloaded in (AutoTokenizer.from_pretrained(tmp_path), PreTrainedTokenizerFast.from_pretrained(tmp_path),
                     load_tokenizer(tmp_path)):
        assert reloaded.encode(text) == tok.encode(text)
        assert (reloaded.bos_token_id, reloaded.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
        assert len(reloaded) == len(tok)
    assert tokenizer_layout(tmp_path) == tokenizer_layout(src)


# --- CLI ------------------------------------------------------------------------------


def test_cli_train_encode_info(tmp_path, capsys):
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", str(KOREAN_TXT), "--out", str(out), "--vocab-size", "600",
                 "--min-frequency", "1"]) == 0
    assert "saved 600-token tokenizer" in capsys.readouterr().out
    tok = load_tokenizer(out)
    assert main(["tokenizer", "encode", "나는 숲 속을", "--tokenizer", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(i) for i in tok.encode("나는 숲 속을")]
    text_file = tmp_path / "t.txt"
    text_file.write_text("<usr>안녕", encoding="utf-8")
    assert main(["tokenizer", "encode", "--file", str(text_file), "--tokens", "--tokenizer", str(out)]) == 0
    assert capsys.readouterr().out.startswith("'<usr>'")
    assert main(["tokenizer", "info", "--tokenizer", str(out)]) == 0
    info = capsys.readouterr().out
    assert "vocab_size: 600" in info and "layout: ours" in info and "eos=</s> (1)" in info
    assert f"hash: {tokenizer_hash(tok)}" in info and "normalizer: NFC" in info


@pytest.mark.parametrize("argv", [
    ["tokenizer", "train", "/no/such/file.txt", "--out", "OUT"],
    ["tokenizer", "encode", "안녕", "--tokenizer", "/no/such/dir"],
    ["tokenizer", "encode", "--file", "/no/such/file.txt", "--tokenizer", "TOK"],
    ["tokenizer", "info", "--tokenizer", "/no/such/dir"],
])
def test_cli_bad_paths_exit_2_with_one_line(argv, tmp_path, tiny_tokenizer_dir, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else str(tiny_tokenizer_dir) if a == "TOK" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_lines_that_are_not_utf8_are_skipped_counted_and_reported(tmp_path):
    f = tmp_path / "mixed.txt"
    f.write_bytes("첫 문단\r\n".encode() + "깨진 줄\n".encode("cp949") + "둘째 문단\n".encode()
                  + "또 깨진 줄\n".encode("cp949"))
    notes = []
    assert list(iter_text_lines([f], warn=notes.append)) == ["첫 문단\n", "둘째 문단\n"]
    assert notes[:2] == [f"{f}:2: invalid UTF-8, line skipped", f"{f}:4: invalid UTF-8, line skipped"]
    assert f"{f}: 2 invalid UTF-8 line(s) skipped in all" in notes[2] and "iconv -f cp949" in notes[2]


def test_train_reads_corpora_as_data_prepare_does(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "숲 속의 오두막\\n작은 불빛"}\n', encoding="utf-8")
    import gzip

    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as g:
        g.write("\n\n바닷가 마을\n<|endoftext|>\n")
    assert sorted(iter_text_lines([tmp_path])) == ["바닷가 마을\n", "숲 속의 오두막\n", "작은 불빛\n"]
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "c.txt").write_text("\n  \n<|endoftext|>\n", encoding="utf-8")
    with pytest.raises(KoGPT2Error, match="no text to train on"):
        train_tokenizer([blank], vocab_size=600, show_progress=False)


def test_one_path_as_a_string_or_path_is_one_input_not_its_characters(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("숲 속의 오두막\n", encoding="utf-8")
    assert list(iter_text_lines(str(f))) == list(iter_text_lines(f)) == ["숲 속의 오두막\n"]
    with pytest.raises(KoGPT2Error, match="not one string"):
        train_tokenizer(texts="가나다", vocab_size=600, show_progress=False)
