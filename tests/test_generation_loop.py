"""The decoding loop (``kogpt2.generation.loop``) through the public API: options, batching, streaming text,
HF compatibility, the CLI."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import SHARED, make_tiny_model_dir
from kogpt2.errors import KoGPT2Error
from kogpt2.generation.api import encode_prompt, generate, load, stream, stream_batch
from kogpt2.generation.backends import load_decoder
from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.decoder import Decoder
from kogpt2.generation.loop import Row, decode_rows
from kogpt2.generation.torch_decoder import TorchDecoder

EOS = 1


# ---------------------------------------------------------------------------- fixtures

class ScriptDecoder(Decoder):
    """Fake model: step t puts all mass on ``script[t]`` (every row); records its inputs."""

    def __init__(self, script: list[int], vocab_size: int, context: int = 128):
        self.script, self.vocab_size, self.context = script, vocab_size, context
        self.calls: list[torch.Tensor] = []

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        step = 0 if past is None else past
        self.calls.append(input_ids.clone())
        logits = torch.full((input_ids.shape[0], self.vocab_size), -10.0)
        logits[:, self.script[min(step, len(self.script) - 1)]] = 10.0
        return logits, step + 1

    def reorder(self, past, index):
        return past


class FixedDecoder(Decoder):
    """Fake model whose next-token logits are always ``logits`` (V,)."""

    def __init__(self, logits: torch.Tensor, context: int = 4096):
        self.logits, self.vocab_size, self.context = logits, logits.shape[0], context

    def forward_step(self, input_ids, past, attention_mask, position_ids):
        return self.logits.expand(input_ids.shape[0], -1).clone(), None

    def reorder(self, past, index):
        return past


@pytest.fixture(scope="module")
def loop_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A GPT-2 that repeats its last token: blocks' outputs and positions zeroed, tied embedding."""
    from transformers import GPT2LMHeadModel

    out = make_tiny_model_dir(tmp_path_factory.mktemp("loop_model"), tiny_tokenizer, n_embd=16, seed=1)
    model = GPT2LMHeadModel.from_pretrained(out)
    with torch.no_grad():
        model.transformer.wpe.weight.zero_()
        for block in model.transformer.h:
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
        model.transformer.wte.weight.normal_(0, 1)  # logits = wte . LN(wte[x]): x wins (self ~4 sigma at width 16, others ~3)
        model.transformer.wte.weight[EOS] = 0.0
    model.save_pretrained(out)
    return out


def repeats(ids: list[int]) -> int:
    """How many tokens equal an earlier one."""
    return len(ids) - len(set(ids))


def tokens_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# ---------------------------------------------------------------------------- options

def test_top_k_never_samples_outside_k_most_likely(tiny_tokenizer):
    torch.manual_seed(0)
    logits = torch.randn(len(tiny_tokenizer)) * 0.5
    logits[EOS] = -math.inf
    dec = FixedDecoder(logits)
    top3 = set(logits.topk(3).indices.tolist())
    rows: list[Row] = []
    cfg = SamplingConfig(max_new_tokens=300, top_k=3, seed=0)
    for _ in decode_rows(dec, tiny_tokenizer, [[10]], [cfg], rows_out=rows, stream_text=False):
        pass
    assert set(rows[0].gen) <= top3 and len(set(rows[0].gen)) == 3
    rows.clear()
    for _ in decode_rows(dec, tiny_tokenizer, [[10]], [cfg.replace(top_k=0)], rows_out=rows, stream_text=False):
        pass
    assert len(set(rows[0].gen) - top3) > 10 and rows[0].finish_reason == "length"  # eos (-inf) never drawn


def _sampled_ids(dec, tokenizer, cfg) -> list[int]:
    rows: list = []
    for _ in decode_rows(dec, tokenizer, [[10]], [cfg], rows_out=rows, stream_text=False):
        pass
    return rows[0].gen


def test_top_p_excludes_the_tail_and_min_p_the_unlikely(tiny_tokenizer):
    V = len(tiny_tokenizer)
    probs = torch.full((V,), 0.1 / (V - 3))
    probs[[20, 21, 22]] = torch.tensor([0.5, 0.3, 0.1])
    probs[EOS] = 0.0
    dec = FixedDecoder(probs.log())
    got = _sampled_ids(dec, tiny_tokenizer, SamplingConfig(max_new_tokens=200, top_p=0.8, seed=1))
    assert set(got) == {20, 21}  # 0.5 + 0.3 reach 0.8: token 22 and the tail are cut
    got = _sampled_ids(dec, tiny_tokenizer, SamplingConfig(max_new_tokens=200, top_p=0.85, seed=1))
    assert set(got) == {20, 21, 22}
    got = _sampled_ids(dec, tiny_tokenizer, SamplingConfig(max_new_tokens=200, min_p=0.5, seed=1))
    assert set(got) == {20, 21}  # 0.1 < 0.5 * 0.5
    got = _sampled_ids(dec, tiny_tokenizer, SamplingConfig(max_new_tokens=300, seed=1))
    assert len(set(got) - {20, 21, 22}) > 5


def test_temperature_sharpens(tiny_tokenizer):
    V = len(tiny_tokenizer)
    logits = torch.zeros(V)
    logits[EOS] = -math.inf
    logits[30] = 2.0
    cold = _sampled_ids(FixedDecoder(logits), tiny_tokenizer, SamplingConfig(max_new_tokens=100, temperature=0.1, seed=0))
    hot = _sampled_ids(FixedDecoder(logits), tiny_tokenizer, SamplingConfig(max_new_tokens=100, temperature=1.0, seed=0))
    assert cold.count(30) == 100 and hot.count(30) < 50


def test_repetition_penalty_and_no_repeat_ngram_reduce_loops(loop_model_dir, tiny_tokenizer):
    dec, tok = load(loop_model_dir)
    prompt = encode_prompt(tok, "나는 숲", dec.context, 30)

    def run(**kw):
        rows: list = []
        cfg = SamplingConfig(max_new_tokens=30, do_sample=False, **kw)
        for _ in decode_rows(dec, tok, [prompt], [cfg], rows_out=rows, stream_text=False):
            pass
        return rows[0].gen

    plain = run()
    assert repeats(plain) >= 25  # the model loops on its last token
    penalised = run(repetition_penalty=2.0)
    # the penalty first walks to unseen tokens; once all candidates are seen the loop can win again
    assert repeats(penalised) < repeats(plain) and repeats(penalised[:10]) == 0
    no_bigram = run(no_repeat_ngram_size=2)
    seq = prompt + no_bigram
    bigrams = list(zip(seq, seq[1:]))
    assert len(bigrams) == len(set(bigrams))


# ---------------------------------------------------------------------------- HF parity, batching

def test_greedy_matches_hf_generate_and_batches_match_single(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = ["나는 어두운 숲 속을", "오늘", "하늘이 맑고 바람이 분다. 그래서 우리는"]
    batch = generate(prompts, model=model, tokenizer=tiny_tokenizer, do_sample=False, max_new_tokens=12)
    for p, got in zip(prompts, batch):
        ids = torch.tensor([tokens_of(tiny_tokenizer, p)])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                             pad_token_id=3)
        assert got == tiny_tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        assert got == generate(p, model=model, tokenizer=tiny_tokenizer, do_sample=False, max_new_tokens=12)


def test_beam_search_matches_hf(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()

    def ban_eos(ids, scores):
        scores[:, EOS] = -math.inf
        return scores

    ids = torch.tensor([tokens_of(tiny_tokenizer, "나는 어두운")])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=4,
                         num_return_sequences=2, max_new_tokens=8, suppress_tokens=[EOS], pad_token_id=3)
    hf = [tiny_tokenizer.decode(o[ids.shape[1]:], skip_special_tokens=True) for o in out]
    ours = generate("나는 어두운", model=model, tokenizer=tiny_tokenizer, do_sample=False, num_beams=4,
                    num_return_sequences=2, max_new_tokens=8, logits_processors=[ban_eos])
    assert ours == hf


def test_seed_reproducible_and_num_return_sequences(tiny_model_dir):
    a = generate("나는", model=tiny_model_dir, max_new_tokens=16, seed=7)
    assert a == generate("나는", model=tiny_model_dir, max_new_tokens=16, seed=7)
    assert a != generate("나는", model=tiny_model_dir, max_new_tokens=16, seed=8)
    many = generate(["나는", "숲"], model=tiny_model_dir, max_new_tokens=16, seed=7, num_return_sequences=3)
    assert len(many) == 6 and many[0] == a and len(set(many[:3])) == 3
    assert "".join(stream("나는", model=tiny_model_dir, max_new_tokens=16, seed=7)) == a


def test_logits_processor_and_decoder_override(tiny_model_dir, tiny_tokenizer):
    target = tokens_of(tiny_tokenizer, "숲")[0]

    def only_target(ids, scores):
        keep = scores[:, target].clone()
        scores[:] = -math.inf
        scores[:, target] = keep
        return scores

    assert generate("나는", model=tiny_model_dir, max_new_tokens=5, logits_processors=[only_target]) == "숲" * 5

    class Counting(TorchDecoder):
        n = 0

        def forward_step(self, input_ids, past, attention_mask, position_ids):
            Counting.n += 1
            return super().forward_step(input_ids, past, attention_mask, position_ids)

    dec = Counting(load_decoder(tiny_model_dir).model)
    generate("나는", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=6, logits_processors=[only_target])
    assert Counting.n == 6


# ---------------------------------------------------------------------------- text, stops, streaming

def test_stop_sequences_streamed_without_leaking(tiny_tokenizer):
    text = "안녕하세요. 반갑습니다! 그만"
    dec = ScriptDecoder(tokens_of(tiny_tokenizer, text) + [EOS], len(tiny_tokenizer))
    chunks = list(stream("시작", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=50, stop=["습니다!"]))
    assert "".join(chunks) == "안녕하세요. 반갑"
    full = generate("시작", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=50, stop=["없는말"])
    assert full == text


def test_stream_never_splits_a_syllable_or_emoji(tiny_tokenizer):
    text = "숲 😀 똠얌꿍 🇰🇷 끝"
    ids = tokens_of(tiny_tokenizer, text)
    byte_tokens = [t for t in tiny_tokenizer.convert_ids_to_tokens(ids) if t.startswith("<0x")]
    assert len(byte_tokens) >= 8  # the test needs syllables/emoji split into bytes
    dec = ScriptDecoder(ids + [EOS], len(tiny_tokenizer))
    chunks = list(stream("", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=100))
    assert "".join(chunks) == text
    assert all("\ufffd" not in c for c in chunks)
    assert len(chunks) > 3
    assert dec.calls[0].tolist() == [[EOS]]  # an empty prompt starts from </s>


def test_stream_batch_rows_finish_independently(tiny_model_dir):
    configs = [SamplingConfig(max_new_tokens=3, seed=1), SamplingConfig(max_new_tokens=10, seed=2, top_k=5),
               SamplingConfig(max_new_tokens=10, do_sample=False)]
    steps = list(stream_batch(["나는", "하늘이 맑다", "숲"], tiny_model_dir, None, configs,
                              should_stop=lambda row: row == 2))
    assert all(len(s) == 3 for s in steps)
    assert all(s[0] == "" for s in steps[3:]) and all(s[2] == "" for s in steps[1:])
    alone = generate("하늘이 맑다", model=tiny_model_dir, config=configs[1])
    assert "".join(s[1] for s in steps) == alone


def test_prompt_too_long_is_left_truncated_and_max_tokens_checked(tiny_model_dir, tiny_tokenizer):
    class Recording(TorchDecoder):
        widths: list[int] = []

        def forward_step(self, input_ids, past, attention_mask, position_ids):
            Recording.widths.append(input_ids.shape[1])
            return super().forward_step(input_ids, past, attention_mask, position_ids)

    long_prompt = "나는 어두운 숲 속을 거닐고 있다. " * 30  # > 128 tokens
    assert len(tokens_of(tiny_tokenizer, long_prompt)) > 128
    dec = Recording(load_decoder(tiny_model_dir).model)
    with pytest.warns(UserWarning, match="keeping the last 120"):
        generate(long_prompt, model=dec, tokenizer=tiny_tokenizer, max_new_tokens=8, do_sample=False)
    assert Recording.widths[0] == 128 - 8  # the prompt's last context - max_new_tokens tokens
    with pytest.raises(KoGPT2Error, match="context"):
        generate("나는", model=tiny_model_dir, max_new_tokens=128)


def test_backend_errors(tmp_path, tiny_model_dir, monkeypatch):
    with pytest.raises(KoGPT2Error, match="unknown backend"):
        generate("나는", model=tiny_model_dir, backend="tensorrt")
    with pytest.raises(KoGPT2Error, match="missing"):
        generate("나는", model=tmp_path)
    monkeypatch.setattr("kogpt2.paths.bundled_model_dir", lambda: tmp_path / "not-installed")
    with pytest.raises(KoGPT2Error, match="--model DIR"):
        generate("나는")


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_torch_low_precision_backends_generate(tiny_model_dir, dtype):
    dec = load_decoder(tiny_model_dir, dtype=dtype)
    if dtype == "bf16":
        assert next(dec.model.parameters()).dtype == torch.bfloat16
    else:
        assert any("quantized" in type(m).__module__ for m in dec.model.modules())
    rows: list[Row] = []
    tok = load(tiny_model_dir)[1]
    ids = encode_prompt(tok, "나는 어두운 숲", dec.context, 8)
    cfg = SamplingConfig(do_sample=False, max_new_tokens=8, min_new_tokens=8)
    for _ in decode_rows(dec, tok, [ids], [cfg], rows_out=rows):
        pass
    assert len(rows[0].tokens) == 8 and rows[0].finish_reason == "length"


# ---------------------------------------------------------------------------- compatibility

def test_transformers_pipeline_loads_our_directory(tiny_model_dir):
    from transformers import pipeline

    pipe = pipeline("text-generation", model=str(tiny_model_dir))
    out = pipe("나는 어두운 숲", max_new_tokens=5, do_sample=False)
    assert out[0]["generated_text"].startswith("나는 어두운 숲")


def test_skt_layout_model_generates(tmp_path):
    anchor = SHARED / "anchors" / "skt_kogpt2_base_v2"
    if not (anchor / "tokenizer.json").is_file():
        pytest.skip("SKT tokenizer anchor not present")
    from transformers import GPT2Config, GPT2LMHeadModel

    from kogpt2.tokenizer import load_tokenizer

    tok = load_tokenizer(anchor)
    assert len(tok) == 51200 and tok.eos_token_id == tok.bos_token_id == EOS
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=51200, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=EOS, eos_token_id=EOS, pad_token_id=3)).eval()
    outs = generate(["근육이 커지기 위해서는", "오늘"], model=model, tokenizer=tok, max_new_tokens=8, seed=0,
                    logits_processors=[lambda ids, s: s.index_fill_(1, torch.tensor([EOS]), -math.inf)])
    assert len(outs) == 2 and all(outs)


# ---------------------------------------------------------------------------- CLI

def _kogpt2(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kogpt2", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_cli_generate_streams_prompt_and_continuation(tiny_model_dir):
    r = _kogpt2("generate", "나는 어두운 숲", "--model", str(tiny_model_dir), "--max-new-tokens", "10",
                "--seed", "3")
    assert r.returncode == 0, r.stderr
    expected = generate("나는 어두운 숲", model=tiny_model_dir, max_new_tokens=10, seed=3)
    assert r.stdout == "나는 어두운 숲" + expected + "\n"


def test_cli_generate_in_process(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from kogpt2.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("나는\n\n하늘이\n", encoding="utf-8")
    assert main(["generate", "--prompts", str(prompts), "--model", str(tiny_model_dir), "--greedy",
                 "--max-new-tokens", "6", "--no-stream"]) == 0
    expected = generate(["나는", "하늘이"], model=tiny_model_dir, do_sample=False, max_new_tokens=6)
    assert capsys.readouterr().out == f"나는{expected[0]}\n\n하늘이{expected[1]}\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("나는\n하늘이\n"))  # --prompts -: the same prompts piped
    assert main(["generate", "--prompts", "-", "--model", str(tiny_model_dir), "--greedy",
                 "--max-new-tokens", "6", "--no-stream"]) == 0
    assert capsys.readouterr().out == f"나는{expected[0]}\n\n하늘이{expected[1]}\n"


@pytest.mark.parametrize("argv, words", [
    (["--top-p", "1.5"], "top_p"), (["--temperature", "-1"], "temperature"), (["--top-p", "nan"], "finite"),
    (["--repetition-penalty", "1e-40"], "repetition_penalty"), (["--preset", "poetry"], "unknown sampling preset"),
    (["--greedy", "--top-k", "5"], "only apply to sampling"), (["--backend", "tensorrt"], "unknown backend"),
    (["--max-new-tokens", "500"], "context"), (["--model", "MISSING"], "missing|not found"),
])
def test_cli_generate_errors_are_one_line(tiny_model_dir, tmp_path, capsys, argv, words):
    from kogpt2.cli import main

    argv = [str(tmp_path) if a == "MISSING" else a for a in argv]
    model = [] if "--model" in argv else ["--model", str(tiny_model_dir)]
    assert main(["generate", "나는", *model, *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("error:") and "\n" not in err and __import__("re").search(words, err)


# ---------------------------------------------------------------------------- the step-wise engine

def _alone(dec, tok, ids, cfg) -> list[int]:
    rows: list[Row] = []
    for _ in decode_rows(dec, tok, [ids], [cfg], rows_out=rows, stream_text=False):
        pass
    return rows[0].tokens


def test_rows_joining_mid_batch_get_the_same_greedy_tokens_as_alone(tiny_model_dir):
    from kogpt2.generation.loop import DecodeBatch

    dec, tok = load(tiny_model_dir)
    cfg = SamplingConfig(max_new_tokens=12, do_sample=False)
    prompts = [encode_prompt(tok, p, dec.context, 12) for p in ("나는 어두운 숲 속을", "오늘", "하늘이 맑고 바람이 분다")]
    want = [_alone(dec, tok, p, cfg) for p in prompts]
    batch = DecodeBatch(dec, tok)
    first = batch.add_rows([prompts[0]], [cfg])
    for _ in range(3):
        batch.step()
    second = batch.add_rows([prompts[1]], [cfg])  # joins a running batch with a shorter prompt
    batch.step()
    third = batch.add_rows([prompts[2]], [cfg])  # and a longer one
    assert len(batch) == 3
    batch.step()
    # every row attends to exactly its own cached tokens: padding of the joined cache is masked
    cached = [len(r.prompt_ids) + len(r.tokens) - 1 for r in batch.rows]
    assert batch.mask.sum(-1).tolist() == cached and batch.mask.shape[1] >= max(cached)
    while not batch.done:
        batch.step()
    assert [r.tokens for r in first + second + third] == want
    assert all(r.finish_reason == "length" for r in first + second + third)


def test_a_removed_row_frees_its_slot_at_once(tiny_model_dir):
    from kogpt2.generation.loop import DecodeBatch

    dec, tok = load(tiny_model_dir)
    cfg = SamplingConfig(max_new_tokens=10, do_sample=False)
    prompts = [encode_prompt(tok, p, dec.context, 10) for p in ("나는", "숲 속을", "하늘이")]
    batch = DecodeBatch(dec, tok)
    rows = batch.add_rows(prompts, [cfg] * 3)
    batch.step()
    batch.step()
    batch.remove_row(rows[1])
    assert rows[1].done and rows[1].finish_reason == "cancelled" and len(batch.rows) == 2
    assert batch.past.layers[0].keys.shape[0] == 2 and batch.mask.shape[0] == 2  # the cache row is gone
    while not batch.done:
        batch.step()
    assert [rows[0].tokens, rows[2].tokens] == [_alone(dec, tok, prompts[0], cfg), _alone(dec, tok, prompts[2], cfg)]
    assert batch.step() == [] and batch.past is None


def test_the_last_row_takes_the_place_of_a_departed_one(tiny_model_dir):
    from kogpt2.generation.loop import DecodeBatch

    dec, tok = load(tiny_model_dir)
    cfg = SamplingConfig(max_new_tokens=8, do_sample=False)
    prompts = [encode_prompt(tok, p, dec.context, 8) for p in ("나는", "숲 속을", "하늘이", "오늘")]
    batch = DecodeBatch(dec, tok)
    rows = batch.add_rows(prompts, [cfg] * 4)
    batch.step()
    batch.remove_row(rows[0])
    # one cache row moves (the last into the hole), not the three behind the departed one
    assert batch.rows == [rows[3], rows[1], rows[2]]
    while not batch.done:
        batch.step()
    assert [r.tokens for r in rows[1:]] == [_alone(dec, tok, p, cfg) for p in prompts[1:]]


def test_a_row_that_does_not_stream_gets_its_whole_text_when_it_ends(tiny_model_dir):
    from kogpt2.generation.loop import DecodeBatch

    dec, tok = load(tiny_model_dir)
    cfg = SamplingConfig(max_new_tokens=12, do_sample=True, seed=3)
    prompt = encode_prompt(tok, "나는 어두운 숲 속을", dec.context, 12)
    batch = DecodeBatch(dec, tok)
    streamed, = batch.add_rows([prompt], [cfg])
    held, = batch.add_rows([prompt], [cfg], stream_text=False)
    chunks: dict = {id(streamed): [], id(held): []}
    while not batch.done:
        for row, text in batch.step():
            chunks[id(row)].append(text)
    assert len([c for c in chunks[id(streamed)] if c]) > 1
    assert len(chunks[id(held)]) == 1  # only at its end: no text decoded per step
    assert chunks[id(held)][0] == "".join(chunks[id(streamed)]) == held.emitted != ""


def test_min_new_tokens_masks_eos_in_sampling_and_greedy(tiny_tokenizer):
    dec = ScriptDecoder([EOS], len(tiny_tokenizer))  # the model always wants to stop
    for do_sample in (True, False):
        rows: list[Row] = []
        cfg = SamplingConfig(max_new_tokens=10, min_new_tokens=5, do_sample=do_sample, seed=0)
        for _ in decode_rows(dec, tiny_tokenizer, [[10]], [cfg], rows_out=rows):
            pass
        assert len(rows[0].tokens) == 5 and EOS not in rows[0].tokens and rows[0].finish_reason == "eos"
    assert generate("시작", model=dec, tokenizer=tiny_tokenizer, max_new_tokens=10) == ""  # min 0: stops at once


def test_min_new_tokens_holds_in_beam_search(tiny_tokenizer):
    a, b = tokens_of(tiny_tokenizer, "숲")[0], tokens_of(tiny_tokenizer, "나")[0]
    logits = torch.zeros(len(tiny_tokenizer))
    logits[EOS], logits[a], logits[b] = 10.0, 5.0, 4.0  # eos is always the best continuation
    dec = FixedDecoder(logits)
    out = generate("시작", model=dec, tokenizer=tiny_tokenizer, do_sample=False, num_beams=2, num_return_sequences=2,
                   max_new_tokens=8, min_new_tokens=4)
    assert len(out) == 2 and all(len(t) >= 4 and set(t) <= {"숲", "나"} for t in out)
    assert generate("시작", model=dec, tokenizer=tiny_tokenizer, do_sample=False, num_beams=2,
                    max_new_tokens=8) == ""


def test_banned_tokens_are_never_generated(tiny_tokenizer):
    target = tokens_of(tiny_tokenizer, "숲")[0]
    name = tiny_tokenizer.convert_ids_to_tokens(target)
    dec = ScriptDecoder([target], len(tiny_tokenizer))
    rows: list[Row] = []
    cfg = SamplingConfig(max_new_tokens=30, banned_tokens=[name], seed=0, min_new_tokens=30)
    for _ in decode_rows(dec, tiny_tokenizer, [[10]], [cfg], rows_out=rows):
        pass
    assert target not in rows[0].tokens and len(rows[0].tokens) == 30
    assert _alone(dec, tiny_tokenizer, [10], cfg.replace(banned_tokens=[], do_sample=False)) == [target] * 30


def test_padding_left_by_a_departed_long_row_is_cut_from_the_cache(tiny_model_dir):
    from kogpt2.generation.loop import DecodeBatch

    dec, tok = load(tiny_model_dir)
    long_cfg, short_cfg = SamplingConfig(max_new_tokens=20, do_sample=False), SamplingConfig(max_new_tokens=4,
                                                                                          do_sample=False)
    prompts = [encode_prompt(tok, p, dec.context, 20) for p in ("하늘이 맑고 바람이 분다", "오늘")]
    batch = DecodeBatch(dec, tok)
    long, = batch.add_rows([prompts[0]], [long_cfg])
    for _ in range(6):
        batch.step()
    short, = batch.add_rows([prompts[1]], [short_cfg])  # joins left-padded to the long row's width
    batch.step()
    wide = batch.mask.shape[1]
    batch.remove_row(long)
    # the short row's own cached tokens are all that is left: the columns only the long row used are gone
    assert batch.mask.shape[1] == len(prompts[1]) == batch.past.layers[0].keys.shape[2] < wide
    assert bool(batch.mask.all())
    while not batch.done:
        batch.step()
    assert short.tokens == _alone(dec, tok, prompts[1], short_cfg)
