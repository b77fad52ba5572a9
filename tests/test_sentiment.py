"""Sentiment classification: NSMC reading, padding-proof pooling, a tiny fine-tune, heads on their own."""

from __future__ import annotations

import io
import random

import pytest
import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.finetune import FinetuneConfig, finetune
from kogpt2.sentiment import (LABELS, Classifier, ZeroShotClassifier, classifier_from_base, load_classifier,
                              pool_last, read_nsmc)

# Reviews written for these tests: 8 openings x 5 verdicts per side, obviously positive or negative.
OPENINGS = ["이 영화는", "오늘 본 작품은", "주말에 본 영화", "친구랑 본 영화", "어제 극장에서 본 건",
            "새로 나온 영화", "이번 작품은", "기대했던 영화"]
POSITIVE = ["정말 재미있었다", "최고의 영화다 강력 추천", "배우들 연기가 훌륭했다", "감동적이라 또 보고 싶다",
            "음악도 좋고 정말 좋았다"]
NEGATIVE = ["너무 지루했다", "최악의 영화다 비추", "시간이 아깝다", "다시는 안 본다 실망",
            "연기가 어색하고 별로였다"]


def write_nsmc(path, rows, header="id\tdocument\tlabel") -> str:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return str(path)


def reviews() -> list[tuple[str, int]]:
    pairs = [(f"{o} {v}", 1) for o in OPENINGS for v in POSITIVE] + \
            [(f"{o} {v}", 0) for o in OPENINGS for v in NEGATIVE]
    random.Random(0).shuffle(pairs)
    return pairs


# ----------------------------------------------------------------------------- data


def test_nsmc_bad_rows_are_counted(tmp_path):
    rows = ["1\t재미있다\t1", "2\t\t0", "3\t별로\t5", "4\t칸이 모자라", "5\t\"따옴표\" 그대로\t0"]
    texts, labels, report = read_nsmc(write_nsmc(tmp_path / "r.txt", rows))
    assert texts == ["재미있다", '"따옴표" 그대로'] and labels == [1, 0]
    assert report.rows == 5 and report.kept == 2
    assert report.bad == {"empty document": 1, "label outside 0/1": 1, "2 fields instead of 3": 1}
    with pytest.raises(KoGPT2Error, match="header"):
        read_nsmc(write_nsmc(tmp_path / "h.txt", rows, header="document\tlabel"))


# ----------------------------------------------------------------------------- pooling


def test_pool_last_finds_the_last_real_token():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert pool_last(hidden, right)[:, 0].tolist() == [1.0, 7.0]
    assert pool_last(hidden, left)[:, 0].tolist() == [3.0, 7.0]


def test_padded_batches_classify_like_single_texts(tiny_model_dir, tiny_tokenizer):
    torch.manual_seed(0)
    clf = Classifier(classifier_from_base(tiny_model_dir, 2), tiny_tokenizer, max_len=32)
    texts = ["이 영화는 정말 재미있었다", "별로", "시간 낭비였다. 줄거리가 너무 지루하고 뻔했다."]
    alone = torch.cat([clf.logits(*clf.encode([t])) for t in texts])
    ids, mask = clf.encode(texts)  # right padding
    with torch.no_grad():
        torch.testing.assert_close(clf.logits(ids, mask), alone, atol=1e-5, rtol=1e-4)
        shift = (mask == 0).sum(-1)  # same rows, padding moved to the left
        left_ids = torch.stack([r.roll(int(s)) for r, s in zip(ids, shift)])
        left_mask = torch.stack([r.roll(int(s)) for r, s in zip(mask, shift)])
        assert left_mask[:, -1].all() and not left_mask[:, 0].all()
        torch.testing.assert_close(clf.logits(left_ids, left_mask), alone, atol=1e-5, rtol=1e-4)
    assert clf.logits(ids, mask).requires_grad  # usable as a PPLM discriminator
    from kogpt2.errors import KoGPT2Error

    with pytest.raises(KoGPT2Error, match="give a text or a list of texts to classify, got NoneType"):
        clf.classify(None)


# ----------------------------------------------------------------------------- fine-tuning


@pytest.fixture(scope="module")
def head(tmp_path_factory, tiny_model_dir):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("sentiment")
    data = reviews()
    train = write_nsmc(tmp / "train.txt", [f"{i}\t{t}\t{y}" for i, (t, y) in enumerate(data[:60])])
    cfg = FinetuneConfig(data=train, out=str(tmp / "head"), model=str(tiny_model_dir), epochs=15, batch_size=8,
                         lr=5e-3, warmup_steps=5, val_fraction=0.15, eval_interval=25, patience=0, lora_r=4,
                         lora_embeddings=True, dtype="fp32", max_len=32, device="cpu", progress=False)
    meta = finetune("sentiment", cfg)
    return tmp / "head", meta, data[60:]


@pytest.mark.slow
def test_tiny_finetune_beats_chance_on_held_out_reviews(head, tiny_model_dir):
    path, meta, held_out = head
    clf = load_classifier(path, tiny_model_dir)
    preds = clf.classify([t for t, _ in held_out])
    acc = sum(LABELS[y] == p.label for (_, y), p in zip(held_out, preds)) / len(held_out)
    assert acc >= 0.7, acc  # chance is 0.5; LoRA on a random 2-layer model measured 0.85
    assert all(0.5 <= p.prob <= 1 for p in preds)
    assert clf.predict_proba([t for t, _ in held_out]).shape == (len(held_out), 2)
    assert (path / "adapter_model.safetensors").stat().st_size < 200_000 and (path / "loss.png").is_file()


@pytest.mark.slow
def test_lora_embeddings_adapt_the_input_embeddings_of_classifiers_only(head, tiny_model_dir):
    from safetensors.torch import load_file

    from kogpt2.finetune import apply_lora
    from kogpt2.model import load_model

    path = head[0]
    assert any("wte.lora_embedding_A" in k for k in load_file(str(path / "adapter_model.safetensors")))
    base = classifier_from_base(tiny_model_dir, 2).transformer.wte.weight
    merged = load_classifier(path, tiny_model_dir).model.transformer.wte.weight
    assert not torch.allclose(merged, base)  # the low-rank embedding update was trained and merged
    assert torch.linalg.matrix_rank((merged - base).float()) <= 4  # and it is low rank (r=4)
    # a language model's embeddings are tied to its output layer: refused, not silently changed
    cfg = FinetuneConfig(data="x", out="y", lora_embeddings=True)
    with pytest.raises(KoGPT2Error, match="tied output layer"):
        apply_lora(load_model(tiny_model_dir), cfg)


@pytest.mark.slow
def test_head_on_another_base_is_a_clear_error(head, tmp_path, tiny_tokenizer):
    from conftest import make_tiny_model_dir

    other = make_tiny_model_dir(tmp_path / "other", tiny_tokenizer, seed=1)
    with pytest.raises(KoGPT2Error, match="another base model"):
        load_classifier(head[0], other)
    with pytest.raises(KoGPT2Error, match="not 'chat'"):
        from kogpt2.chat import load_chat_model

        load_chat_model(None, head[0])


@pytest.mark.slow
def test_cli_classify_and_eval(head, tiny_model_dir, tmp_path, capsys, monkeypatch):
    from kogpt2.cli import main

    path, _, held_out = head
    assert main(["classify", "이 영화는 정말 재미있었다", "--head", str(path), "--model", str(tiny_model_dir)]) == 0
    label, prob, text = capsys.readouterr().out.strip().split("\t")
    assert label in LABELS and 0.5 <= float(prob) <= 1 and text == "이 영화는 정말 재미있었다"
    test = write_nsmc(tmp_path / "test.txt", [f"{i}\t{t}\t{y}" for i, (t, y) in enumerate(held_out)] + ["99\t\t1"])
    assert main(["eval", "sentiment", "--data", test, "--head", str(path), "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 skipped" in out and f"on {len(held_out)} reviews" in out
    assert main(["classify", "", "--head", str(path)]) == 2
    reviews = ["이 영화는 정말 재미있었다", "두 번 보고 싶지 않은 영화"]
    piped = io.TextIOWrapper(io.BytesIO(("\n".join(reviews) + "\n\n").encode()), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", piped)
    monkeypatch.setattr(piped, "isatty", lambda: False, raising=False)
    assert main(["classify", "--head", str(path), "--model", str(tiny_model_dir)]) == 0  # no texts: stdin's lines
    captured = capsys.readouterr()
    assert [line.split("\t")[2] for line in captured.out.splitlines()] == reviews
    assert "1 blank line(s) skipped" in captured.err


@pytest.mark.slow
def test_export_hf_releases_a_lora_head_in_bf16(head, tiny_model_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from kogpt2.cli import main

    path, _, held_out = head
    out = tmp_path / "release"
    assert main(["export", "hf", str(path), str(out)]) == 0
    assert sorted(f.name for f in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                     "kogpt2_finetune.json"]  # no metrics, plot or resume state
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert weights.keys() == load_file(str(path / "adapter_model.safetensors")).keys()
    texts = [t for t, _ in held_out]
    before = load_classifier(path, tiny_model_dir).predict_proba(texts)
    after = load_classifier(out, tiny_model_dir).predict_proba(texts)  # served on the fp32 base as before
    assert torch.allclose(torch.as_tensor(after), torch.as_tensor(before), atol=0.02)
    assert main(["export", "hf", str(path), str(path)]) == 2  # never over the source
    assert "is the source model" in capsys.readouterr().err


def test_zero_shot_is_calibrated_on_empty_text(tiny_model_dir, tiny_tokenizer):
    from kogpt2.model import load_model

    zs = ZeroShotClassifier(load_model(tiny_model_dir), tiny_tokenizer)
    with torch.no_grad():
        calibrated = (zs._scores([""]) - zs.prior).softmax(-1)
    torch.testing.assert_close(calibrated, torch.tensor([[0.5, 0.5]]))
    probs = zs.predict_proba(["최고의 영화다", "최악의 영화다"])
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
