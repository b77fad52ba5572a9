"""The data pipeline: shard format, exact re-encoding, dedup, split, resume, bad inputs, filters."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from kogpt2.cli import main
from kogpt2.data import (_dtype_for, inspect, iter_documents_of, load_split, prepare, read_meta,
                         split_of)
from kogpt2.data_clean import ExcludeRules, clean_paragraph
from kogpt2.errors import KoGPT2Error

SEP = "<|endoftext|>"

# Documents written for these tests (paragraph lists).
DOCS = [
    ["봄이 오면 강가의 버드나무에 새순이 돋는다.", "아이들은 징검다리를 건너며 웃음소리를 낸다."],
    ["작은 출판사가 올해 첫 시집을 펴냈다.", "시인은 스무 해 동안 바다를 노래했다.", "책은 금세 다 팔렸다."],
    ["공원 매점에서 따뜻한 어묵을 팔기 시작했다."],
    ["눈 내리는 밤, 우체부는 마지막 편지를 전했다.", "그 편지에는 오래된 약속이 적혀 있었다."],
    ["시장 골목의 국숫집은 삼대째 같은 맛을 지킨다.", "주인은 새벽 다섯 시에 육수를 끓인다."],
    ["등산로 입구에 새 안내판이 세워졌다.", "정상까지는 두 시간이 걸린다고 적혀 있다."],
]


def write_txt(path, docs, final_sep=True):
    parts = []
    for i, d in enumerate(docs):
        parts.extend(d)
        if final_sep or i < len(docs) - 1:
            parts.append(SEP)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def stream(data_dir, split):
    maps = load_split(data_dir, split)
    return np.concatenate([np.asarray(m) for m in maps]) if maps else np.zeros(0, dtype=np.uint16)


def expected_ids(tokenizer, texts):
    ids = []
    for t in texts:
        ids.extend(tokenizer.encode(t, add_special_tokens=False))
        ids.append(1)
    return ids


def run(inputs, tok_dir, out, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return prepare(inputs, tok_dir, out, **kw)


# ---------------------------------------------------------------------------
# Format and exactness


def test_format_and_token_count_equals_reencoding(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    corpus = write_txt(tmp_path / "a.txt", DOCS[:4])
    write_txt(tmp_path / "b.txt", DOCS[4:], final_sep=False)  # last document ends with the file
    out = tmp_path / "out"
    meta = run([tmp_path], tiny_tokenizer_dir, out, val_fraction=0.3, seed=7)

    assert meta == read_meta(out)
    assert meta["format"] == "kogpt2-shards-v1" and meta["dtype"] == "uint16" and meta["eos_id"] == 1
    assert meta["vocab_size"] == len(tiny_tokenizer)
    from kogpt2.tokenizer import tokenizer_hash
    assert meta["tokenizer_hash"] == tokenizer_hash(tiny_tokenizer)
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    assert meta["inputs"] == [str(corpus), str(tmp_path / "b.txt")]

    texts = ["\n".join(d) for d in DOCS]
    by_split = {s: [t for t in texts if split_of(t, 0.3, 7) == s] for s in ("train", "val")}
    assert by_split["train"] and by_split["val"]  # the seed exercises both splits
    for s, split_texts in by_split.items():
        info = meta["splits"][s]
        got = stream(out, s)
        assert got.tolist() == expected_ids(tiny_tokenizer, split_texts)
        assert info["tokens"] == got.size
        assert info["documents"] == len(split_texts) == int((got == 1).sum())
        assert info["chars"] == sum(len(t) for t in split_texts)
        assert info["paragraphs"] == sum(t.count("\n") + 1 for t in split_texts)
        assert all((out / p).is_file() for p in info["shards"])
        decoded = [tiny_tokenizer.decode(d.tolist()) for d in iter_documents_of(got)]
        assert decoded == split_texts


def test_shards_are_uint16_memmaps_and_split_into_many(tmp_path, tiny_tokenizer_dir):
    write_txt(tmp_path / "a.txt", DOCS)
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0, shard_chars=40)
    maps = load_split(tmp_path / "out", "train")
    assert len(maps) == len(meta["splits"]["train"]["shards"]) > 1
    assert all(isinstance(m, np.memmap) and m.dtype == np.uint16 and m.mode == "r" for m in maps)
    assert meta["splits"]["val"] == {"tokens": 0, "documents": 0, "paragraphs": 0, "chars": 0, "shards": []}
    assert load_split(tmp_path / "out", "val") == []


def test_dtype_widens_for_large_vocabularies():
    assert _dtype_for(51200) == "uint16" and _dtype_for(65535) == "uint16"
    assert _dtype_for(65536) == "uint32"


def test_literal_special_tokens_stay_text(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    write_txt(tmp_path / "a.txt", [["문서 안의 </s> 표시와 <pad> 표시."]])
    run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0)
    got = stream(tmp_path / "out", "train")
    assert int((got == 1).sum()) == 1 and got[-1] == 1  # only the real separator
    assert tiny_tokenizer.decode(got[:-1].tolist()) == "문서 안의 </s> 표시와 <pad> 표시."


@pytest.mark.slow
def test_worker_processes_match_in_process(tmp_path, tiny_tokenizer_dir):
    write_txt(tmp_path / "a.txt", DOCS * 1)
    a = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "w0", shard_chars=50, workers=0)
    b = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "w2", shard_chars=50, workers=2)
    assert a["splits"] == b["splits"]
    for s in ("train", "val"):
        assert stream(tmp_path / "w0", s).tolist() == stream(tmp_path / "w2", s).tolist()


# ---------------------------------------------------------------------------
# Dedup and split


def test_exact_dedup_counts_documents_and_paragraphs(tmp_path, tiny_tokenizer_dir):
    dup_par = [DOCS[1][0], "새로 쓴 문단 하나가 더 있다."]
    write_txt(tmp_path / "a.txt", [DOCS[0], DOCS[1], DOCS[0], dup_par, [DOCS[2][0]], DOCS[2]])
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0)
    sk = meta["skipped"]
    assert sk["duplicate_documents"] == 2 and sk["duplicate_document_lines"] == 3  # DOCS[0], DOCS[2]
    assert sk["duplicate_paragraph_lines"] == 1
    tr = meta["splits"]["train"]
    assert tr["documents"] == 4 and tr["paragraphs"] == 2 + 3 + 1 + 1

    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "none", val_fraction=0.0, dedup="none")
    assert meta["splits"]["train"]["documents"] == 6 and "duplicate_documents" not in meta["skipped"]


def test_every_input_line_is_accounted_for(tmp_path, tiny_tokenizer_dir):
    raw = ("\n".join(DOCS[0]) + "\n\n   \n" + SEP + "\n" + "\n".join(DOCS[0]) + "\n" + SEP + "\n"
           + DOCS[1][0] + "\n" + DOCS[3][0] + "\n" + SEP + "\n")
    (tmp_path / "a.txt").write_bytes(raw.encode() + b"\xff\xfe broken\n" + DOCS[4][0].encode() + b"\n")
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.5, min_chars=5)
    inp, sk = meta["input_stats"], meta["skipped"]
    kept = sum(s["paragraphs"] for s in meta["splits"].values())
    assert sk["invalid_utf8_lines"] == 1 and sk["blank_lines"] == 2
    assert inp["lines"] == inp["separator_lines"] + kept + sum(v for k, v in sk.items() if k.endswith("_lines"))


def test_split_is_seeded_and_stable_as_corpus_grows(tmp_path, tiny_tokenizer_dir):
    texts = [f"{i}번째 문서: 오늘도 강아지와 산책을 나갔다." for i in range(400)]
    val = [t for t in texts if split_of(t, 0.1, 3) == "val"]
    assert 15 < len(val) < 70  # about 10 %
    assert val != [t for t in texts if split_of(t, 0.1, 4) == "val"]

    write_txt(tmp_path / "small.txt", [[t] for t in texts[:200]])
    write_txt(tmp_path / "big.txt", [[t] for t in texts[200:]])
    small = run([tmp_path / "small.txt"], tiny_tokenizer_dir, tmp_path / "o1", val_fraction=0.1, seed=3)
    both = run([tmp_path / "small.txt", tmp_path / "big.txt"], tiny_tokenizer_dir, tmp_path / "o2",
               val_fraction=0.1, seed=3)
    v1 = stream(tmp_path / "o1", "val").tolist()
    v2 = stream(tmp_path / "o2", "val").tolist()
    assert v2[:len(v1)] == v1 and small["splits"]["val"]["documents"] < both["splits"]["val"]["documents"]


# ---------------------------------------------------------------------------
# Resume


def test_rerun_skips_finished_shards_and_redoes_changed_ones(tmp_path, tiny_tokenizer_dir):
    write_txt(tmp_path / "a.txt", DOCS)
    out = tmp_path / "out"
    first = run([tmp_path / "a.txt"], tiny_tokenizer_dir, out, val_fraction=0.0, shard_chars=20)
    shards = [out / p for p in first["splits"]["train"]["shards"]]
    mtimes = [p.stat().st_mtime_ns for p in shards]

    again = run([tmp_path / "a.txt"], tiny_tokenizer_dir, out, val_fraction=0.0, shard_chars=20)
    assert again["resumed_shards"] == len(shards) > 1
    assert [p.stat().st_mtime_ns for p in shards] == mtimes
    assert again["splits"] == first["splits"]

    # An interrupted run leaves no meta.json; a changed corpus re-encodes only what changed.
    (out / "meta.json").unlink()
    write_txt(tmp_path / "a.txt", DOCS[:-2] + [["마지막 문서만 새로 바뀌었다. " * 3]])
    third = run([tmp_path / "a.txt"], tiny_tokenizer_dir, out, val_fraction=0.0, shard_chars=20)
    assert len(shards) == len(DOCS)  # one document per shard at this size
    assert third["resumed_shards"] == len(DOCS) - 2
    assert not shards[-1].exists()  # stale shard of the longer run removed
    assert sorted(p.name for p in (out / "train").iterdir()) == \
        sorted(p.split("/")[1] for p in third["splits"]["train"]["shards"])
    assert third["splits"]["train"]["documents"] == len(DOCS) - 1


# ---------------------------------------------------------------------------
# Input formats and bad input


def test_jsonl_gz_and_txt_gz_inputs(tmp_path, tiny_tokenizer_dir):
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(DOCS[0]) + f"\n{SEP}\n")
    records = [{"body": "\n".join(DOCS[1])}, {"body": DOCS[2][0]}, {"title": "본문 없음"}, "not json {"]
    lines = [json.dumps(r, ensure_ascii=False) if isinstance(r, dict) else r for r in records]
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"body": DOCS[3][0]}, ensure_ascii=False) + "\n")
    meta = run([str(tmp_path / "*.gz"), tmp_path / "b.jsonl"], tiny_tokenizer_dir, tmp_path / "out",
               val_fraction=0.0, text_field="body")
    tr = meta["splits"]["train"]
    assert tr["documents"] == 4 and tr["paragraphs"] == 2 + 3 + 1 + 1
    assert meta["skipped"]["missing_text_field_lines"] == 1 and meta["skipped"]["invalid_json_lines"] == 1


def test_bad_files_are_skipped_with_a_message(tmp_path, tiny_tokenizer_dir, capsys):
    write_txt(tmp_path / "good.txt", DOCS[:2])
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04" * 50)
    (tmp_path / "broken.txt.gz").write_bytes(b"not gzip at all")
    meta = run([tmp_path], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0)
    err = capsys.readouterr().err
    assert "empty.txt: the file is empty" in err and "binary.txt: it looks binary" in err
    assert "broken.txt.gz: cannot read it" in err
    sk = meta["skipped"]
    assert sk["empty_files"] == 1 and sk["binary_files"] == 1 and sk["unreadable_files"] == 1
    assert meta["input_stats"]["files"] == 1 and meta["splits"]["train"]["documents"] == 2


def test_invalid_utf8_line_is_reported_with_its_line_number(tmp_path, tiny_tokenizer_dir, capsys):
    (tmp_path / "a.txt").write_bytes(DOCS[0][0].encode() + b"\n\xc3\x28 bad\n" + DOCS[0][1].encode() + b"\n")
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0)
    assert "a.txt:2: invalid UTF-8" in capsys.readouterr().err
    assert meta["skipped"]["invalid_utf8_lines"] == 1 and meta["splits"]["train"]["paragraphs"] == 2


@pytest.mark.parametrize("bad", ["missing.txt", "nothing-*.txt"])
def test_missing_paths_and_empty_globs_raise(tmp_path, tiny_tokenizer_dir, bad):
    with pytest.raises(KoGPT2Error, match="not found|matches no files"):
        run([str(tmp_path / bad)], tiny_tokenizer_dir, tmp_path / "out")


def test_refuses_to_write_into_a_foreign_directory(tmp_path, tiny_tokenizer_dir):
    write_txt(tmp_path / "a.txt", DOCS)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("내 메모")
    with pytest.raises(KoGPT2Error, match="non-empty directory"):
        run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").is_file()


def test_nothing_left_is_an_error(tmp_path, tiny_tokenizer_dir):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(KoGPT2Error, match="no documents left"):
        run([tmp_path / "empty.txt"], tiny_tokenizer_dir, tmp_path / "out")


def test_unknown_and_bad_options_raise(tmp_path, tiny_tokenizer_dir):
    write_txt(tmp_path / "a.txt", DOCS)
    with pytest.raises(KoGPT2Error, match="unknown data option"):
        run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_frac=0.1)
    with pytest.raises(KoGPT2Error, match="val_fraction.*workers"):
        run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=1.5, workers=-1)


# ---------------------------------------------------------------------------
# Cleaning, exclude list, minimum length, near-dedup


@pytest.mark.parametrize("raw,clean", [
    ("'''서울특별시'''는 [[대한민국]]의 [[수도 (도시)|수도]]이다.", "서울특별시는 대한민국의 수도이다."),
    ("인구는 약 950만 명이다.<ref>통계청 자료</ref> [[분류:도시]]", "인구는 약 950만 명이다."),
    ("== 역사 ==", "역사"),
    ("{{{+1 큰 글씨}}}와 [* 각주 내용] 그리고 [목차] 끝", "큰 글씨와 그리고 끝"),
    ("축하해요~~^^ 행복하세요~~♡ ,,ㅋ,, __", "축하해요~~^^ 행복하세요~~♡ ,,ㅋ,, __"),  # comments, not markup
    ("|| 이름 || 나이 ||", "이름 나이"),
    ("노름 ||v|| 와 ''따옴표 하나", "노름 ||v|| 와 ''따옴표 하나"),
    ("A&#771; 는 NFC로", "\u00c3 는 NFC로"),
    ("줄<br/>바꿈 &amp; <span class=\"x\">강조</span>", "줄 바꿈 & 강조"),
    ("영화 <기생충>은 a < b 를 보여 준다.", "영화 <기생충>은 a < b 를 보여 준다."),
    ("사진 [##_Image|kage@abc.jpg|alignCenter_##] 아래", "사진 아래"),
])
def test_clean_paragraph(raw, clean):
    assert clean_paragraph(raw) == clean


def test_clean_option_in_prepare(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    write_txt(tmp_path / "a.txt", [["'''봄'''은 [[계절]]이다.", "<!-- 주석 -->", "== 개요 =="]])
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0, clean=True)
    assert tiny_tokenizer.decode(stream(tmp_path / "out", "train")[:-1].tolist()) == "봄은 계절이다.\n개요"
    assert meta["skipped"]["emptied_by_cleaning_lines"] == 1


def test_exclude_rules_and_min_chars(tmp_path, tiny_tokenizer_dir):
    rules = ExcludeRules(["title:작은 출판사가 올해 첫 시집을 펴냈다.", "regex:어묵\\S*", "# comment", "우체부"])
    assert rules.matches(DOCS[1]) and rules.matches(DOCS[2]) and rules.matches(DOCS[3])
    assert not rules.matches(DOCS[0])
    with pytest.raises(KoGPT2Error, match="bad exclude regex"):
        ExcludeRules(["regex:(unclosed"])

    write_txt(tmp_path / "a.txt", DOCS + [["짧다."]])
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0,
               exclude=["title:작은 출판사가 올해 첫 시집을 펴냈다.", "regex:어묵", "우체부"], min_chars=10)
    sk = meta["skipped"]
    assert sk["excluded_documents"] == 3 and sk["excluded_document_lines"] == 3 + 1 + 2
    assert sk["too_short_documents"] == 1 and meta["splits"]["train"]["documents"] == 3


def test_near_dedup_removes_near_copies(tmp_path, tiny_tokenizer_dir):
    pytest.importorskip("datasketch")
    base = " ".join(p for d in DOCS for p in d)
    near = base.replace("버드나무", "버들나무")
    write_txt(tmp_path / "a.txt", [[base], [near], DOCS[0]])
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "out", val_fraction=0.0, near_dedup=True)
    assert meta["skipped"]["near_duplicate_documents"] == 1 and meta["splits"]["train"]["documents"] == 2
    off = run([tmp_path / "a.txt"], tiny_tokenizer_dir, tmp_path / "off", val_fraction=0.0)
    assert off["splits"]["train"]["documents"] == 3  # off by default


# ---------------------------------------------------------------------------
# Reading back, CLI


def test_read_meta_and_load_split_errors(tmp_path, tiny_tokenizer_dir):
    with pytest.raises(KoGPT2Error, match="no meta.json.*kogpt2 data prepare"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text("{broken")
    with pytest.raises(KoGPT2Error, match="corrupt"):
        read_meta(tmp_path)
    write_txt(tmp_path / "a.txt", DOCS)
    out = tmp_path / "out"
    meta = run([tmp_path / "a.txt"], tiny_tokenizer_dir, out, val_fraction=0.0)
    with pytest.raises(KoGPT2Error, match="no split 'test'"):
        load_split(out, "test")
    os.truncate(out / meta["splits"]["train"]["shards"][0], 4)
    with pytest.raises(KoGPT2Error, match="meta.json says"):
        load_split(out, "train")


def test_cli_prepare_and_inspect(tmp_path, tiny_tokenizer_dir, capsys):
    write_txt(tmp_path / "a.txt", DOCS)
    out = tmp_path / "out"
    code = main(["data", "prepare", str(tmp_path / "a.txt"), "--tokenizer", str(tiny_tokenizer_dir),
                 "--out", str(out), "--workers", "0", "--val-fraction", "0", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "train:" in printed and f"{len(DOCS)} documents" in printed
    assert main(["data", "inspect", str(out), "--n", "2", "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("--- train sample") == 2
    assert any(p in printed for d in DOCS for p in d)
    assert "sample" in inspect(out, n=1, seed=1)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, tiny_tokenizer_dir, capsys):
    code = main(["data", "prepare", str(tmp_path / "nope.txt"), "--tokenizer", str(tiny_tokenizer_dir),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: input path not found") and err.count("\n") == 1
    assert main(["data", "inspect", str(tmp_path)]) == 2
    assert "no meta.json" in capsys.readouterr().err
