"""``kogpt2.generation.graph_decoder``: GPT-2 decoding from a static cache, replayable as a CUDA graph.

On the CPU the decoder steps eagerly through the same code; it must decode exactly as the
``DynamicCache`` decoder does while rows join, leave and repeat, and its step must never read a
value back to the host (that would stop a CUDA graph capture).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.profiler import profile

from conftest import ScoreLog
from kogpt2.generation.api import encode_prompt, generate, load
from kogpt2.generation.config import SamplingConfig
from kogpt2.generation.graph_decoder import GraphDecoder, StaticPast, physical_rows
from kogpt2.generation.loop import DecodeBatch, Row, decode_rows, left_pad
from kogpt2.generation.torch_decoder import TorchDecoder

HOST_READS = {"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero", "aten::equal"}


@pytest.fixture(scope="module")
def decoders(tiny_model_dir):
    dec, tok = load(tiny_model_dir, None, "torch", "fp32", "cpu")
    assert type(dec) is TorchDecoder  # the CPU default stays the dynamic cache
    return dec, GraphDecoder(dec.model, capture=False), tok


def test_physical_rows_are_powers_of_two():
    assert [physical_rows(n) for n in (1, 2, 3, 4, 5, 9, 16)] == [1, 2, 4, 4, 8, 16, 16]


def test_rows_joining_and_leaving_decode_as_on_the_dynamic_cache(decoders):
    dec, graph, tok = decoders
    texts = ("하늘이 맑고", "오늘", "나는 어두운 숲 속을 걸었다 그리고 하늘이 맑고 바람이 분다 오늘", "바다", "강")
    lengths = (30, 6, 12, 10, 8)
    prompts = [encode_prompt(tok, p, dec.context, 30) for p in texts]
    assert len(prompts[2]) > max(map(len, prompts[:2])) + 3  # joins wider than the running rows
    cfgs = [SamplingConfig(max_new_tokens=n, do_sample=i % 2 == 1, seed=i) for i, n in enumerate(lengths)]
    alone, joined = ScoreLog(tok.pad_token_id), ScoreLog(tok.pad_token_id)
    want = []
    for p, c in zip(prompts, cfgs):
        rows: list[Row] = []
        for _ in decode_rows(dec, tok, [p], [c], rows_out=rows, stream_text=False, logits_processors=[alone]):
            pass
        want.append(rows[0].tokens)
    batch = DecodeBatch(graph, tok, logits_processors=[joined])
    rows = batch.add_rows(prompts[:2], cfgs[:2])
    for _ in range(3):
        batch.step()
    slab = batch.past.slab
    rows += batch.add_rows([prompts[2]], [cfgs[2]])  # wider: the running rows shift right in place
    widths, slabs, widths_rows = [], set(), []
    while not batch.done:
        if batch.steps == 7:  # after the second row left: two rows join into the spare rows
            rows += batch.add_rows(prompts[3:], cfgs[3:])
        if isinstance(batch.past, StaticPast):
            assert batch.past.width == batch.mask.shape[1] == int(batch.past.slab.cache.layers[0].cumulative_length)
            widths.append(batch.mask.shape[1])
            widths_rows.append(batch.past.slots)
            slabs.add(batch.past.slab)
        batch.step()
    assert [r.tokens for r in rows] == want
    assert joined.scores.keys() == alone.scores.keys()
    for key, scores in joined.scores.items():
        torch.testing.assert_close(scores, alone.scores[key], atol=1e-5, rtol=1e-5)
    assert slab in slabs and sorted(s.rows for s in slabs) == [2, 4]  # grew once for the third row, then never
    assert max(map(len, widths_rows)) == 4
    assert any(b < a for a, b in zip(widths, widths[1:]))  # the widest row's departure cut its padding


def test_beam_search_gathers_repeated_rows_in_place(decoders):
    dec, graph, tok = decoders
    kwargs = dict(do_sample=False, num_beams=3, num_return_sequences=3, max_new_tokens=10)
    for prompt in ("나는 어두운 숲 속을", "오늘"):
        got = generate(prompt, model=graph, tokenizer=tok, **kwargs)
        assert got == generate(prompt, model=dec, tokenizer=tok, **kwargs) and len(set(got)) > 1


def test_a_decoding_step_reads_nothing_back_to_the_host(decoders):
    dec, graph, _ = decoders
    ids, mask, pos = left_pad([[5, 6, 7], [8, 9]], 0)
    step = (ids[:, -1:], torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1), pos[:, -1:] + 1)
    with torch.inference_mode():
        _, past = graph.forward_step(ids, None, mask, pos)
        _, past = graph.forward_step(*step[:1], past, *step[1:])
        with profile() as static:
            graph._run(past.slab)
        _, dynamic = dec.forward_step(ids, None, mask, pos)
        with profile() as eager:
            dec.forward_step(*step[:1], dynamic, *step[1:])
    assert not {e.name for e in static.events()} & HOST_READS
    assert {e.name for e in eager.events()} & HOST_READS  # the probe sees them: the DynamicCache step reads back


def test_a_finished_batch_leaves_its_slab_to_the_next_one(decoders):
    _, graph, tok = decoders
    graph.slabs.clear()
    for seed in (1, 2):
        generate(["오늘", "바다"], model=graph, tokenizer=tok, do_sample=True, seed=seed, max_new_tokens=6)
    assert [s.rows for s in graph.slabs] == [2]
    batch = DecodeBatch(graph, tok)
    batch.add_rows([[5, 6], [7]], [SamplingConfig(max_new_tokens=5, do_sample=False)] * 2)
    batch.step(), batch.step()
    generate(["오늘", "바다"], model=graph, tokenizer=tok, do_sample=False, max_new_tokens=6)
    assert [s.rows for s in graph.slabs] == [2, 2]  # the running batch keeps its own


@pytest.mark.skipif(torch.cuda.is_available(), reason="capture fails only without CUDA")
def test_a_failed_capture_warns_once_and_decodes_eagerly(decoders):
    dec, _, tok = decoders
    graph = GraphDecoder(dec.model, capture=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [generate(p, model=graph, tokenizer=tok, do_sample=False, max_new_tokens=12) for p in ("오늘", "바다")]
    assert [str(w.message) for w in caught if "CUDA graph" in str(w.message)][:1] and len(caught) == 1
    assert not graph.capture and graph.capture_error
    assert got == [generate(p, model=dec, tokenizer=tok, do_sample=False, max_new_tokens=12) for p in ("오늘", "바다")]


def test_other_architectures_are_refused(tiny_model_dir):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    neo = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=50, max_position_embeddings=32, hidden_size=16, num_layers=2,
                                         num_heads=2, attention_types=[[["global", "local"], 1]]))
    with pytest.raises(Exception, match="GPT-2"):
        GraphDecoder(neo)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_decodes_with_graphs_as_without(tiny_model_dir):
    graph, tok = load(tiny_model_dir, None, "torch", "auto", "cuda")
    assert isinstance(graph, GraphDecoder)
    eager = GraphDecoder(graph.model, capture=False)
    kwargs = dict(do_sample=False, max_new_tokens=20)
    prompts = ["나는 어두운 숲 속을", "오늘"]
    got = generate(prompts, model=graph, tokenizer=tok, **kwargs)
    assert graph.capture_error is None and graph.slabs[0].graph is not None
    assert got == generate(prompts, model=eager, tokenizer=tok, **kwargs)
