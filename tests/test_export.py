"""ONNX export with past key/values, the ONNX Runtime backend, and its parity with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from kogpt2.errors import KoGPT2Error  # noqa: E402
from kogpt2.export import export_onnx, io_names  # noqa: E402
from kogpt2.generation.api import encode_prompt, load  # noqa: E402
from kogpt2.generation.config import SamplingConfig  # noqa: E402
from kogpt2.generation.loop import decode_rows  # noqa: E402

PROMPTS = ["나는 어두운 숲 속을", "오늘", "하늘이 맑고 바람이 분다. 그래서 우리는 걸었다"]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, tiny_model_dir) -> Path:
    return export_onnx(tiny_model_dir, tmp_path_factory.mktemp("onnx"), int8=True)


def greedy_ids(model, backend: str, dtype: str, n: int = 24) -> list[list[int]]:
    dec, tok = load(model, None, backend, dtype)
    ids = [encode_prompt(tok, p, dec.context, n) for p in PROMPTS]
    rows: list = []
    cfg = SamplingConfig(max_new_tokens=n, do_sample=False)
    for _ in decode_rows(dec, tok, ids, [cfg] * len(ids), rows_out=rows, stream_text=False):
        pass
    return [r.gen for r in rows]


@pytest.mark.slow
def test_export_writes_a_standalone_graph_with_past(onnx_dir, tiny_model_dir):
    import onnx
    import onnxruntime as ort
    from transformers import AutoModelForCausalLM

    for f in ("model.onnx", "model_int8.onnx", "config.json", "tokenizer.json", "generation_config.json"):
        assert (onnx_dir / f).is_file(), f
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    L, H, D = model.config.n_layer, model.config.n_head, model.config.n_embd // model.config.n_head
    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    inputs, outputs = io_names(L)
    assert [i.name for i in graph.input] == inputs and [o.name for o in graph.output] == outputs

    # Plain ONNX Runtime, no kogpt2 code: prefill 5 tokens, then one step with the cache.
    sess = ort.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[10, 11, 12, 13, 14]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones((1, 5), np.int64),
            "position_ids": np.arange(5, dtype=np.int64)[None]}
    feed.update({n: np.zeros((1, H, 0, D), np.float32) for n in inputs[3:]})
    logits, *present = sess.run(None, feed)
    assert present[0].shape == (1, H, 5, D)
    step = {"input_ids": np.array([[15]]), "attention_mask": np.ones((1, 6), np.int64),
            "position_ids": np.array([[5]]), **dict(zip(inputs[3:], present))}
    logits2, *_ = sess.run(None, step)
    with torch.no_grad():
        ref = model(torch.tensor([[10, 11, 12, 13, 14, 15]])).logits
    assert logits.shape == (1, 1, model.config.vocab_size)  # the last position only
    torch.testing.assert_close(torch.from_numpy(logits), ref[:, 4:5], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(logits2), ref[:, 5:], atol=1e-4, rtol=1e-4)
    ops = [n.op_type for n in graph.node]
    assert ops.count("GroupQueryAttention") == L and ops.count("SkipLayerNormalization") == 2 * L


@pytest.mark.slow
def test_onnx_fp32_greedy_equals_torch_and_int8_agreement(onnx_dir, tiny_model_dir):
    torch_ids = greedy_ids(tiny_model_dir, "torch", "fp32")
    assert greedy_ids(onnx_dir, "onnx", "fp32") == torch_ids  # left-padded batch, token for token
    int8 = greedy_ids(onnx_dir, "onnx", "int8")
    pairs = [(a, b) for r, s in zip(torch_ids, int8) for a, b in zip(r, s)]
    share = sum(a == b for a, b in pairs) / len(pairs)
    print(f"\nONNX int8 vs torch fp32 greedy: {share:.1%} identical tokens ({len(pairs)} compared)")
    assert len(int8) == len(PROMPTS) and len(pairs) == sum(len(r) for r in torch_ids)
    assert share >= 0.9  # measured 100% on the tiny model; dynamic int8 barely moves the argmax


@pytest.mark.slow
def test_int8_graph_is_quantized_and_close_to_fp32(onnx_dir):
    import onnx
    import onnxruntime as ort

    int8_graph = onnx.load(str(onnx_dir / "model_int8.onnx")).graph
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in int8_graph.node)
    L, H, D = _shape(onnx_dir)
    inputs, _ = io_names(L)
    feed = {"input_ids": np.array([[10, 11, 12, 13, 14]], dtype=np.int64), "attention_mask": np.ones((1, 5), np.int64),
            "position_ids": np.arange(5, dtype=np.int64)[None]}
    feed.update({n: np.zeros((1, H, 0, D), np.float32) for n in inputs[3:]})
    fp32, int8 = (ort.InferenceSession(str(onnx_dir / f), providers=["CPUExecutionProvider"]).run(["logits"], feed)[0]
                  for f in ("model.onnx", "model_int8.onnx"))
    diff = np.abs(fp32 - int8).max()
    assert 0 < diff < 0.1 * np.abs(fp32).max(), diff  # really quantized, and still close


def _shape(onnx_dir: Path) -> tuple[int, int, int]:
    import json

    meta = json.loads((onnx_dir / "onnx_export.json").read_text())
    return meta["n_layer"], meta["n_head"], meta["head_dim"]


def teacher_forced_top1(decoder, rows: list[list[int]], n_prompt: list[int]) -> list[int]:
    """The decoder's argmax after each prefix of each row (past its prompt), one token at a time."""
    preds = []
    for row, p in zip(rows, n_prompt):
        ids = torch.tensor([row])
        logits, past = decoder.forward_step(ids[:, :p], None, torch.ones(1, p, dtype=torch.long), torch.arange(p)[None])
        preds.append(int(logits.argmax()))
        for t in range(p, len(row) - 1):
            logits, past = decoder.forward_step(ids[:, t:t + 1], past, torch.ones(1, t + 1, dtype=torch.long),
                                                torch.tensor([[t]]))
            preds.append(int(logits.argmax()))
    return preds


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_the_bundled_model(tmp_path):
    """Int8 greedy decoding of the real model, measured against torch fp32.

    Teacher-forced (each step sees the fp32 continuation) top-1 agreement: 99.1% measured on
    kogpt2-small over 580 tokens (per-tensor scales: 97.7%); free-running greedy rows drift apart after the
    first differing token, so that share is printed, not asserted.
    """
    from kogpt2.paths import bundled_model_dir

    src = bundled_model_dir()
    if not (src / "model.safetensors").is_file():
        pytest.skip("the bundled model is not installed")
    out = export_onnx(src, tmp_path / "onnx", int8=True)
    prompts = ["나는 어두운 숲 속을 거닐고 있다.", "오늘 날씨가", "대한민국의 수도는", "그는 천천히 문을 열었다", "옛날 옛적에 한 마을에"]
    dec, tok = load(src, None, "torch", "fp32")
    ids = [encode_prompt(tok, p, dec.context, 48) for p in prompts]
    cfg = SamplingConfig(max_new_tokens=48, do_sample=False)
    runs = {}
    for name, (model, backend, dtype) in {"fp32": (src, "torch", "fp32"), "onnx-fp32": (out, "onnx", "fp32"),
                                          "onnx-int8": (out, "onnx", "int8")}.items():
        d, _ = load(model, None, backend, dtype)
        rows: list = []
        for _ in decode_rows(d, tok, ids, [cfg] * len(ids), rows_out=rows, stream_text=False):
            pass
        runs[name] = (d, [r.gen for r in rows])
    ref = runs["fp32"][1]
    assert runs["onnx-fp32"][1] == ref
    full = [p + g for p, g in zip(ids, ref)]
    with torch.inference_mode():
        want = teacher_forced_top1(runs["fp32"][0], full, [len(p) for p in ids])
        got = teacher_forced_top1(runs["onnx-int8"][0], full, [len(p) for p in ids])
    forced = sum(a == b for a, b in zip(want, got)) / len(want)
    pairs = [(a, b) for r, s in zip(ref, runs["onnx-int8"][1]) for a, b in zip(r, s)]
    free = sum(a == b for a, b in pairs) / len(pairs)
    print(f"\nONNX int8 vs torch fp32, kogpt2-small: teacher-forced top-1 {forced:.1%} of {len(want)}; "
          f"free-running same-position tokens {free:.1%}")
    assert want == [t for r in ref for t in r]  # the reference reproduces its own greedy choices
    assert forced >= 0.99


@pytest.mark.slow
def test_onnx_cache_is_appended_in_place_and_grows(onnx_dir, tiny_model_dir, monkeypatch):
    import kogpt2.generation.onnx_backend as ob

    dec, _ = load(onnx_dir, None, "onnx", "fp32")
    ids = torch.tensor([[0, 0, 10, 11], [12, 13, 14, 15]])  # row 0 left-padded by 2
    mask = (torch.arange(4)[None] >= torch.tensor([[2], [0]])).long()
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    _, cache = dec.forward_step(ids, None, mask, pos)
    buf = cache.buffers[0]
    logits, cache2 = dec.forward_step(torch.tensor([[16], [17]]), cache, torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1),
                                      pos[:, -1:] + 1)
    assert cache2 is cache and cache2.buffers[0] is buf and cache.length == 5  # no copy of the cache
    swapped = dec.reorder(cache, torch.tensor([1, 0]))
    np.testing.assert_array_equal(swapped.buffers[0][0, :, :5], buf[1, :, :5])

    monkeypatch.setattr(ob, "INITIAL_ROOM", 1)  # the cache must grow (doubling) several times
    assert greedy_ids(onnx_dir, "onnx", "fp32") == greedy_ids(tiny_model_dir, "torch", "fp32")


@pytest.mark.slow
def test_onnx_caches_of_different_lengths_join(onnx_dir):
    dec, _ = load(onnx_dir, None, "onnx", "fp32")

    def prefill(ids):
        n = len(ids)
        return dec.forward_step(torch.tensor([ids]), None, torch.ones(1, n, dtype=torch.long), torch.arange(n)[None])

    def step(cache, tok, mask, pos):
        return dec.forward_step(torch.tensor(tok)[:, None], cache, mask, torch.tensor(pos)[:, None])

    (_, a), (_, b) = prefill([10, 11, 12, 13, 14]), prefill([20, 21, 22])
    alone = [step(a, [15], torch.ones(1, 6, dtype=torch.long), [5])[0], step(b, [23], torch.ones(1, 4, dtype=torch.long), [3])[0]]
    (_, a), (_, b) = prefill([10, 11, 12, 13, 14]), prefill([20, 21, 22])
    joined = dec.join(a, b)  # row 1 left-padded by 2
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    together, _ = step(joined, [15, 23], mask, [5, 3])
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attention_mask"):
        step(joined, [1, 2], mask, [6, 4])  # the mask must grow with the cache


@pytest.mark.slow
def test_cli_export_then_generate_with_onnx(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from kogpt2.cli import main

    out = tmp_path / "exported"
    assert main(["export", "onnx", str(tiny_model_dir), str(out)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    argv = ["generate", "나는", "--greedy", "--max-new-tokens", "8", "--backend", "onnx"]
    assert main([*argv, "--model", str(out)]) == 0
    via_export = capsys.readouterr().out
    monkeypatch.setenv("KOGPT2_CACHE", str(tmp_path / "cache"))
    assert main([*argv, "--model", str(tiny_model_dir)]) == 0  # auto-export into the cache
    assert capsys.readouterr().out == via_export
    assert list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))


def test_export_and_onnx_backend_errors(tmp_path, tiny_model_dir):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    neo = tmp_path / "neo"
    GPTNeoForCausalLM(GPTNeoConfig(vocab_size=64, max_position_embeddings=32, hidden_size=16, num_layers=2,
                                   num_heads=2, attention_types=[[["global", "local"], 1]])).save_pretrained(neo)
    with pytest.raises(KoGPT2Error, match="GPT-2"):
        export_onnx(neo, tmp_path / "out")
    with pytest.raises(KoGPT2Error, match="bf16"):
        load(tiny_model_dir, None, "onnx", "bf16")
    with pytest.raises(KoGPT2Error, match="neither"):
        load(tmp_path, None, "onnx", "fp32")
    old = tmp_path / "old-export"  # format 1: Concat attention, no in-place cache
    old.mkdir()
    (old / "model.onnx").write_bytes(b"")
    (old / "onnx_export.json").write_text('{"opset": 17}')
    with pytest.raises(KoGPT2Error, match="older kogpt2; export it again"):
        load(old, None, "onnx", "fp32")


@pytest.mark.slow
def test_auto_backend_uses_the_cached_export_once_it_exists(tmp_path, tiny_model_dir, capsys, monkeypatch):
    import shutil

    from kogpt2.generation.backends import pick_backend
    from kogpt2.cli import main

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    monkeypatch.setenv("KOGPT2_CACHE", str(tmp_path / "cache"))
    assert pick_backend(model) == "torch"  # nothing exported yet: no surprise export on first use
    argv = ["generate", "나는", "--greedy", "--max-new-tokens", "8", "--model", str(model)]
    assert main([*argv, "--backend", "torch"]) == 0
    via_torch = capsys.readouterr().out
    assert main(["export", "onnx", str(model), "--cache"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    assert pick_backend(model) == "onnx" and pick_backend(model, "bf16") == "torch"
    assert main(["export", "onnx", str(model), "--cache"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert not list((tmp_path / "cache").rglob(".export-*"))  # no temp dir left behind
    assert main(argv) == 0  # --backend auto (the default) now runs ONNX Runtime
    assert capsys.readouterr().out == via_torch
    dec, _ = load(model, None, "auto")
    assert type(dec).__name__ == "OnnxDecoder"


def test_export_onnx_arguments_are_checked(tmp_path, capsys):
    from kogpt2.cli import main

    assert main(["export", "onnx"]) == 2
    assert main(["export", "onnx", str(tmp_path), str(tmp_path / "o"), "--cache"]) == 2
    assert "--cache" in capsys.readouterr().err
