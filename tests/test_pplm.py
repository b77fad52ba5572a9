"""PPLM on the shared sampler: bag-of-words targets, perturbation direction, the KL and
gm_scale extremes, batched rows, the discriminator, and the ``kogpt2 pplm`` command."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch

from kogpt2 import pplm
from kogpt2.generation import api
from kogpt2.generation.config import SamplingConfig
from kogpt2.cli import main
from kogpt2.errors import KoGPT2Error
from kogpt2.pplm_discrim import Discriminator, read_labelled, train_discriminator

PROMPT = "나는 어두운 숲 속을 거닐고"
FEAR = ["유령", "어두운 밤", "비명", "무덤"]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return api.load(str(tiny_model_dir))


def _first_step(decoder, tok, prompt=PROMPT) -> torch.Tensor:
    """(V,) next-token probabilities after ``prompt``, computed as the sampler does."""
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        logits, _ = decoder.forward_step(ids, None, torch.ones_like(ids), torch.arange(ids.shape[1])[None])
    return logits[0].softmax(-1)


# ---------------------------------------------------------------------------- bag of words

def test_multi_token_words_are_pulled_in_whole(tiny_tokenizer):
    bow = pplm.BagOfWords(FEAR, tiny_tokenizer)
    seq = tiny_tokenizer("유령", add_special_tokens=False)["input_ids"]
    assert len(seq) > 1, "the fixture needs a multi-token word"
    assert seq[1] in bow.targets([5, seq[0]])  # the word has begun: its next token is a target
    assert seq[1] not in bow.targets([5, 6])


def test_one_syllable_openings_are_not_targets_but_whole_words_are():
    class Tok:  # a tokenizer where 해골 = 해 + 골 and 유령 is one token
        vocab = {"해": 1, "골": 2, "유령": 3, " ": 4}

        def __call__(self, text, add_special_tokens=False):
            ids, rest = [], text
            while rest:
                piece = next(p for p in sorted(self.vocab, key=len, reverse=True) if rest.startswith(p))
                ids.append(self.vocab[piece])
                rest = rest[len(piece):]
            return {"input_ids": ids}

        def decode(self, ids):
            inv = {v: k for k, v in self.vocab.items()}
            return "".join(inv[i] for i in ids)

    bow = pplm.BagOfWords(["해골", "유령"], Tok())
    assert bow.targets([]) == [3]  # 유령, not 해 (nor the space)
    assert bow.targets([1]) == [2, 3]  # after 해: 골 completes 해골


def test_a_bare_space_is_never_a_topic_target(tiny_tokenizer):
    space = tiny_tokenizer(" ", add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer(" 유령", add_special_tokens=False)["input_ids"][:1] == space, "fixture: spaces split off"
    targets = pplm.BagOfWords(FEAR, tiny_tokenizer).targets([])
    assert targets and all(tiny_tokenizer.decode([t]).strip() for t in targets)


def test_shipped_bags_of_words(tiny_tokenizer):
    names = pplm.bow_names()
    assert {"판타지", "공포", "과학", "군사", "정치", "종교", "우주", "기술", "로맨스", "음식"} <= set(names)
    for name in names:
        assert len(pplm.load_bow(name, tiny_tokenizer).words) >= 30
    with pytest.raises(KoGPT2Error, match="unknown bag of words"):
        pplm.load_bow("없는주제", tiny_tokenizer)


def test_perturbation_raises_bow_probability(model):
    decoder, tok = model
    bow = pplm.BagOfWords(FEAR, tok)
    targets = bow.targets(tok(PROMPT, add_special_tokens=False)["input_ids"])
    plain = _first_step(decoder, tok)[targets].sum()
    steer = pplm.PPLMDecoder(decoder.model, bow, pplm.PPLMConfig(stepsize=0.3, gm_scale=1.0, num_iterations=5))
    steered = _first_step(steer, tok)[targets].sum()
    assert steered > plain * 1.05


def test_large_kl_scale_stays_close_to_unsteered(model):
    decoder, tok = model
    bow = pplm.BagOfWords(FEAR, tok)
    p_u = _first_step(decoder, tok)

    def kl(kl_scale: float) -> float:
        cfg = pplm.PPLMConfig(stepsize=0.3, gm_scale=1.0, num_iterations=5, kl_scale=kl_scale)
        p = _first_step(pplm.PPLMDecoder(decoder.model, bow, cfg), tok)
        return float((p * (p.log() - p_u.log())).sum())

    free, tight = kl(0.0), kl(100.0)
    assert free > 1e-3
    assert tight < free / 10


def test_gm_scale_zero_gives_unsteered_text(model):
    decoder, tok = model
    bow = pplm.BagOfWords(FEAR, tok)
    cfg = SamplingConfig(max_new_tokens=20, seed=7, top_k=10, repetition_penalty=1.2)
    plain = api.generate(PROMPT, model=decoder, tokenizer=tok, config=cfg)
    zero = pplm.generate(PROMPT, decoder.model, tok, attribute=bow, config=cfg,
                         pplm=pplm.PPLMConfig(stepsize=1.0, gm_scale=0.0))
    full = pplm.generate(PROMPT, decoder.model, tok, attribute=bow, config=cfg,
                         pplm=pplm.PPLMConfig(stepsize=1.0, gm_scale=1.0))
    assert zero == plain
    assert full != plain


def test_rows_of_a_batch_steer_as_alone(model):
    """Per-row gradient norms and cache re-indexing: a row that ends early changes nothing."""
    decoder, tok = model
    steer, _ = pplm.steering_decoder(decoder.model, pplm.BagOfWords(FEAR, tok), pplm.PPLMConfig(stepsize=0.3), tok)
    cfgs = [SamplingConfig(max_new_tokens=n, seed=s) for n, s in ((4, 1), (12, 2))]
    texts = ["", ""]
    for chunks in api.stream_batch([PROMPT, PROMPT], steer, tok, cfgs):
        texts = [t + c for t, c in zip(texts, chunks)]
    alone = [api.generate(PROMPT, model=steer, tokenizer=tok, config=c) for c in cfgs]
    assert texts == alone


def test_streaming_concatenates_to_generate(model):
    decoder, tok = model
    bow = pplm.BagOfWords(FEAR, tok)
    whole = pplm.generate(PROMPT, decoder.model, tok, attribute=bow, max_new_tokens=12, seed=3)
    assert "".join(pplm.stream(PROMPT, decoder.model, tok, attribute=bow, max_new_tokens=12, seed=3)) == whole


def test_invalid_pplm_options_are_listed_together():
    with pytest.raises(KoGPT2Error) as e:
        pplm.PPLMConfig(stepsize=-1, gm_scale=2, horizon_length=0)
    assert str(e.value).count("--stepsize") == 1, str(e.value)  # once, not twice
    assert "--gm-scale must be >= 0 and <= 1" in str(e.value) and "--horizon-length must be >= 1" in str(e.value)


# ---------------------------------------------------------------------------- discriminator

POSITIVE = ["정말 재미있었다", "최고의 작품이다", "감동적이고 훌륭했다", "배우들의 연기가 좋았다", "꼭 추천하고 싶다"]
NEGATIVE = ["너무 지루했다", "최악의 영화다", "시간 낭비였다", "줄거리가 뻔하고 나빴다", "다시는 보고 싶지 않다"]
SUBJECTS = ["이 영화는", "그 드라마는", "오늘 본 작품은", "주인공이", "음악이", "결말이", "감독의 연출이", "이번 편은"]


@pytest.fixture(scope="module")
def sentiment_file(tmp_path_factory):
    rng = random.Random(0)
    rows = [(f"{s} {p}.", 1) for s in SUBJECTS for p in POSITIVE] + \
           [(f"{s} {n}.", 0) for s in SUBJECTS for n in NEGATIVE]
    rng.shuffle(rows)
    f = tmp_path_factory.mktemp("nsmc") / "ratings.txt"
    f.write_text("id\tdocument\tlabel\n" + "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(rows)),
                 encoding="utf-8")
    return f


@pytest.fixture(scope="module")
def discrim_dir(tmp_path_factory, sentiment_file, tiny_model_dir):
    out = tmp_path_factory.mktemp("discrim")
    result = train_discriminator(read_labelled(sentiment_file)[0], out, str(tiny_model_dir), valid_fraction=0.25,
                                 epochs=400, lr=0.05, progress=False)
    return out, result


def test_discriminator_beats_chance(discrim_dir):
    out, result = discrim_dir
    assert result.valid_examples == 20
    assert result.valid_accuracy >= 0.75  # chance is 0.5
    head = Discriminator.load(out)
    assert head.classes == ["negative", "positive"]


def test_discriminator_steering_lowers_its_loss(model, discrim_dir):
    decoder, tok = model
    attr = pplm.load_discriminator(discrim_dir[0], "positive")
    steer = pplm.PPLMDecoder(decoder.model, attr, pplm.PPLMConfig(stepsize=0.5, gamma=1.0, num_iterations=4))
    _first_step(steer, tok, "이 영화는")
    losses = steer.last_state.losses
    assert len(losses) == 4 and losses[-1] < losses[0]
    with pytest.raises(KoGPT2Error, match="unknown class"):
        pplm.load_discriminator(discrim_dir[0], "neutral")


def test_a_discriminator_gets_its_own_default_strength(model, discrim_dir, tiny_tokenizer):
    decoder, tok = model
    steer, _ = pplm.steering_decoder(decoder.model, pplm.load_discriminator(discrim_dir[0], "positive"), None, tok)
    assert steer.config == pplm.PPLMConfig(**pplm.DISCRIM_DEFAULTS)
    steer, _ = pplm.steering_decoder(steer, pplm.load_bow("공포", tok))
    assert steer.config == pplm.PPLMConfig()


# ---------------------------------------------------------------------------- the command

def test_cli_jsonl_shape(tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("오늘 아침에\n나는 어두운 숲\n", encoding="utf-8")
    rc = main(["pplm", "--prompts", str(prompts), "--bow", "공포", "--model", str(tiny_model_dir),
               "--samples", "2", "--jsonl", "--max-new-tokens", "6", "--seed", "1"])
    assert rc == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["오늘 아침에"] * 2 + ["나는 어두운 숲"] * 2
    assert all(set(r) == {"prompt", "unsteered", "steered"} for r in rows)
    assert all(isinstance(r["steered"], str) and not r["steered"].startswith(r["prompt"]) for r in rows)


def test_cli_discrim_and_train(tiny_model_dir, sentiment_file, tmp_path, capsys):
    out = tmp_path / "d"
    data = tmp_path / "ratings.txt"  # two bad rows: a label that is not 0/1, a missing field
    data.write_text(sentiment_file.read_text(encoding="utf-8") + "900\t별로\t7\n901\t필드 하나 없음\n",
                    encoding="utf-8")
    assert main(["pplm", "train-discrim", "--data", str(data), "--out", str(out),
                 "--model", str(tiny_model_dir), "--epochs", "50", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and ", 2 skipped (" in printed
    assert main(["pplm", "좋은", "--discrim", str(out), "--class", "positive", "--model", str(tiny_model_dir),
                 "--max-new-tokens", "4", "--seed", "2"]) == 0
    text = capsys.readouterr().out
    assert "= unsteered (seed 2) =" in text and "= steered =" in text


def test_discriminator_refuses_another_model(discrim_dir, tiny_tokenizer, tmp_path, capsys):
    from conftest import make_tiny_model_dir

    other = make_tiny_model_dir(tmp_path / "other", tiny_tokenizer, seed=7)  # same shape, other weights
    attr = pplm.load_discriminator(discrim_dir[0], "positive")
    with pytest.raises(KoGPT2Error, match="trained on another model"):
        pplm.steering_decoder(str(other), attr)
    assert main(["pplm", "좋은", "--discrim", str(discrim_dir[0]), "--class", "positive", "--model", str(other),
                 "--max-new-tokens", "4"]) == 2
    assert "train-discrim --model" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["오늘"], "exactly one attribute"),
    (["오늘", "--bow", "공포", "--bow-file", "x.txt"], "exactly one attribute"),
    (["오늘", "--discrim", "somewhere"], "needs --class"),
    (["오늘", "--bow", "공포", "--class", "positive"], "only applies with --discrim"),
    (["--bow", "공포"], "PROMPT or --prompts"),
])
def test_cli_bad_options(tiny_model_dir, capsys, monkeypatch, argv, message):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # nothing piped (as under CI's /dev/null)
    assert main(["pplm", *argv, "--model", str(tiny_model_dir)]) == 2
    assert message in capsys.readouterr().err
