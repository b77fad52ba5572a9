"""``kogpt2 convert``: both TF layouts and KoGPT2 v1/v2 directories (the reader: test_tf_checkpoint.py).

The TF fixtures in ``fixtures/tf/`` were written by TensorFlow itself (``make_tf_fixtures.py``);
``expected.json`` holds TensorFlow's own reading of every variable, so the reader is checked
against TensorFlow without TensorFlow installed. Logits are checked against numpy forward
passes written from the OpenAI GPT-2 and Grover model code.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kogpt2.cli import main
from kogpt2.convert import convert_hf, convert_tf, detect_layout
from kogpt2.errors import KoGPT2Error
from kogpt2.tf_checkpoint import TFCheckpoint

TF_DIR = Path(__file__).resolve().parent / "fixtures" / "tf"
OPENAI = TF_DIR / "openai" / "model.ckpt"
GROVER = TF_DIR / "grover" / "model.ckpt-7"
IDS = [[1, 5, 17, 300, 2, 9, 250, 31, 4, 77, 120, 6]]  # (B=1, T=12), below both fixture vocabularies


# --- numpy reference forward passes ---------------------------------------------------------

def _ln(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def _gelu_tanh(x: np.ndarray) -> np.ndarray:  # OpenAI GPT-2
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _gelu_erf(x: np.ndarray) -> np.ndarray:  # Grover
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _attention(x, q, k, v, n_head: int) -> np.ndarray:
    """Causal multi-head attention on (T, C) projections; returns the (T, C) context."""
    t, c = x.shape
    d = c // n_head
    heads = [a.reshape(t, n_head, d).transpose(1, 0, 2) for a in (q, k, v)]  # (H, T, D) each
    scores = heads[0] @ heads[1].transpose(0, 2, 1) / math.sqrt(d)  # (H, T, T)
    scores = np.where(np.tril(np.ones((t, t), bool)), scores, -1e10)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return (probs @ heads[2]).transpose(1, 0, 2).reshape(t, c)


def openai_reference(w: dict[str, np.ndarray], ids: list[int], n_head: int, n_layer: int) -> np.ndarray:
    """GPT-2 as in openai/gpt-2 ``model.py``: pre-norm blocks, final ln_f, tied output."""
    h = w["model/wte"][ids] + w["model/wpe"][: len(ids)]
    for i in range(n_layer):
        p = f"model/h{i}"
        x = _ln(h, w[f"{p}/ln_1/g"], w[f"{p}/ln_1/b"])
        qkv = x @ w[f"{p}/attn/c_attn/w"][0] + w[f"{p}/attn/c_attn/b"]
        ctx = _attention(x, *np.split(qkv, 3, axis=-1), n_head)
        h = h + ctx @ w[f"{p}/attn/c_proj/w"][0] + w[f"{p}/attn/c_proj/b"]
        x = _ln(h, w[f"{p}/ln_2/g"], w[f"{p}/ln_2/b"])
        m = _gelu_tanh(x @ w[f"{p}/mlp/c_fc/w"][0] + w[f"{p}/mlp/c_fc/b"])
        h = h + m @ w[f"{p}/mlp/c_proj/w"][0] + w[f"{p}/mlp/c_proj/b"]
    return _ln(h, w["model/ln_f/g"], w["model/ln_f/b"]) @ w["model/wte"].T


def grover_reference(w: dict[str, np.ndarray], ids: list[int], n_head: int, n_layer: int) -> np.ndarray:
    """Grover as in rowanz/grover ``lm/modeling.py``: embedding norm, post-norm MLP residual."""
    e = "newslm/embeddings"
    h = _ln(w[f"{e}/word_embed"][ids] + w[f"{e}/pos_embed"][: len(ids)],
            w[f"{e}/LayerNorm_embed_norm/gamma"], w[f"{e}/LayerNorm_embed_norm/beta"])
    for i in range(n_layer):
        p = f"newslm/layer{i:02d}"
        q, k, v = (h @ w[f"{p}/{n}/kernel"] + w[f"{p}/{n}/bias"] for n in ("query_layer", "key_layer", "value_layer"))
        u = h + _attention(h, q, k, v, n_head) @ w[f"{p}/context_projection_layer/kernel"] \
            + w[f"{p}/context_projection_layer/bias"]
        x = _ln(u, w[f"{p}/LayerNorm_mlp_ln0/gamma"], w[f"{p}/LayerNorm_mlp_ln0/beta"])
        m = _gelu_erf(x @ w[f"{p}/intermediate/kernel"] + w[f"{p}/intermediate/bias"])
        h = _ln(u + m @ w[f"{p}/output/kernel"] + w[f"{p}/output/bias"],
                w[f"{p}/LayerNorm_mlp_ln1/gamma"], w[f"{p}/LayerNorm_mlp_ln1/beta"])
    return h @ w[f"{e}/word_embed"].T


def _weights(prefix: Path) -> dict[str, np.ndarray]:
    with TFCheckpoint(prefix) as ckpt:
        return {n: ckpt.read(n).astype(np.float64) for n in ckpt.numeric_names()}


def _hf_logits(model_dir: Path) -> torch.Tensor:
    import kogpt2.modeling_grover  # noqa: F401  (registers the Grover model type)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        return model(torch.tensor(IDS)).logits[0]


# --- TF conversion: exact logits --------------------------------------------------------------

def test_openai_layout_logits_match_reference(tmp_path):
    from transformers import GPT2LMHeadModel

    out = convert_tf(OPENAI, tmp_path / "gpt2", progress=False)
    hp = json.loads((TF_DIR / "openai" / "hparams.json").read_text())
    ref = openai_reference(_weights(OPENAI), IDS[0], hp["n_head"], hp["n_layer"])
    logits = _hf_logits(out)
    torch.testing.assert_close(logits, torch.from_numpy(ref).float(), rtol=1e-4, atol=1e-4)
    assert type(GPT2LMHeadModel.from_pretrained(str(out))) is GPT2LMHeadModel  # stock GPT-2
    conv = json.loads((out / "conversion.json").read_text())
    assert conv["layout"] == "openai-gpt2" and conv["ignored_variables"] == []


def test_grover_layout_logits_match_reference(tmp_path):
    from transformers import GPT2LMHeadModel

    out = convert_tf(GROVER, tmp_path / "grover", progress=False)
    cfg = json.loads((TF_DIR / "grover" / "config.json").read_text())
    ref = torch.from_numpy(grover_reference(_weights(GROVER), IDS[0], cfg["num_attention_heads"],
                                            cfg["num_hidden_layers"])).float()
    torch.testing.assert_close(_hf_logits(out), ref, rtol=1e-4, atol=1e-4)
    # The same weights in a stock GPT-2 block are NOT Grover: the residual change matters.
    plain = GPT2LMHeadModel.from_pretrained(str(out)).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(torch.tensor(IDS)).logits[0], ref, atol=1e-2)
    conv = json.loads((out / "conversion.json").read_text())
    assert "global_step" in conv["ignored_variables"]
    assert (out / "modeling_grover.py").is_file()


@pytest.mark.slow
def test_grover_dir_loads_in_plain_transformers_with_remote_code(tmp_path):
    out = convert_tf(GROVER, tmp_path / "grover", progress=False)
    code = ("import sys, torch; from transformers import AutoModelForCausalLM; "
            f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True).eval(); "
            "assert 'kogpt2' not in sys.modules; "
            f"print(repr(m(torch.tensor({IDS})).logits[0, -1, :4].tolist()))")
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = torch.tensor(eval(r.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, _hf_logits(out)[-1, :4], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_converted_dir_generates_through_sampler(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    out = convert_tf(TF_DIR / "grover", tmp_path / "g", tokenizer=tiny_tokenizer_dir, progress=False)
    gen = json.loads((out / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"], gen["pad_token_id"]) == (1, 1, 3)
    assert (gen["repetition_penalty"], gen["min_new_tokens"]) == (1.3, 16)  # the Korean defaults of every model
    assert (out / "tokenizer.json").is_file()
    # A fresh process: kogpt2.load_model must know the Grover model type by itself.
    code = ("import kogpt2; print(repr(kogpt2.generate('나는 숲', model=%r, do_sample=False, "
            "max_new_tokens=5)))" % str(out))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    text = eval(r.stdout.strip().splitlines()[-1])
    assert isinstance(text, str) and text and "▁" not in text


# --- TF conversion: bad input -------------------------------------------------------------------

def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(KoGPT2Error, match="index not found.*prefix"):
        convert_tf(tmp_path / "model.ckpt-5", tmp_path / "out", progress=False)


def test_missing_data_shard_is_a_clear_error(tmp_path):
    for f in (TF_DIR / "grover").iterdir():
        if "data-00001" not in f.name:
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(KoGPT2Error, match=r"missing.*model\.ckpt-7\.data-00001-of-00003"):
        convert_tf(tmp_path, tmp_path / "out", progress=False)


def test_shape_mismatch_with_config_is_a_clear_error(tmp_path):
    cfg = json.loads((TF_DIR / "grover" / "config.json").read_text()) | {"hidden_size": 16}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    with pytest.raises(KoGPT2Error, match=r"shape mismatch.*word_embed is \[640, 8\], config wants \[640, 16\]"):
        convert_tf(GROVER, tmp_path / "out", config=tmp_path / "c.json", progress=False)
    cfg = json.loads((TF_DIR / "grover" / "config.json").read_text()) | {"num_hidden_layers": 3}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    with pytest.raises(KoGPT2Error, match="has 2 layers but .* says 3"):
        convert_tf(GROVER, tmp_path / "out", config=tmp_path / "c.json", progress=False)
    assert not (tmp_path / "out").exists()


def test_vocab_larger_than_embedding_is_a_clear_error(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    assert len(tiny_tokenizer) > 512  # the OpenAI fixture's n_vocab
    with pytest.raises(KoGPT2Error, match=f"tokenizer has {len(tiny_tokenizer)} tokens .* only 512 rows"):
        convert_tf(OPENAI, tmp_path / "out", tokenizer=tiny_tokenizer_dir, progress=False)


def test_unknown_layout_lists_variables(tmp_path):
    with pytest.raises(KoGPT2Error, match="unknown checkpoint layout.*bert/embeddings/word_embeddings"):
        convert_tf(TF_DIR / "unknown", tmp_path / "out", progress=False)
    assert detect_layout(["model/wte", "model/wpe"]) == "openai-gpt2"


def test_missing_hparams_and_nonempty_out(tmp_path):
    for f in (TF_DIR / "openai").glob("model.ckpt*"):
        shutil.copy(f, tmp_path / f.name)
    with pytest.raises(KoGPT2Error, match="--config"):
        convert_tf(tmp_path / "model.ckpt", tmp_path / "out", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(KoGPT2Error, match="not empty.*--overwrite"):
        convert_tf(OPENAI, tmp_path / "full", progress=False)
    convert_tf(OPENAI, tmp_path / "full", overwrite=True, progress=False)
    assert not (tmp_path / "full" / "x").exists() and (tmp_path / "full" / "model.safetensors").is_file()


# --- CLI ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["convert", "--help"], ["convert", "tf", "--help"], ["convert", "hf", "--help"]])
def test_help_forms(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "kogpt2 convert" in capsys.readouterr().out


def test_cli_converts_and_reports_errors_on_one_line(tmp_path, capsys):
    assert main(["convert", "tf", str(TF_DIR / "openai"), str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["convert", "tf", str(tmp_path / "nope"), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["convert", "tf", str(OPENAI), str(tmp_path / "o3"), "--no-such-option"])
    assert e.value.code == 2


# --- Hugging Face KoGPT2 directories --------------------------------------------------------

def _eos_loving_model(vocab_size: int, bos: int, eos: int, pad: int | None):
    """A tiny random GPT-2 whose greedy next token is always id 1 (``</s>``)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=8, n_layer=1, n_head=2,
                     bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    model = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # final hidden state = ones, so logits = wte @ ones; make </s>'s row win
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.transformer.wte.weight[1] = 10.0
    return model


def _check_normalised(out: Path, src_model) -> None:
    from transformers import AutoModelForCausalLM

    from kogpt2.tokenizer import load_tokenizer

    tok = load_tokenizer(out)
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 1 == tok.eos_token_id and tok.convert_ids_to_tokens(1) == "</s>"
    assert gen["pad_token_id"] == 3 == tok.pad_token_id
    assert (gen["temperature"], gen["top_p"], gen["repetition_penalty"]) == (0.8, 0.92, 1.3)
    text = "오늘은 날씨가 맑고 바람이 시원합니다"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text  # no stray '▁'
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, src_model(ids).logits)  # weights untouched
        new = model.generate(ids, max_new_tokens=6, do_sample=False, min_new_tokens=0)[0, ids.shape[1]:]
    assert new.tolist() == [1]  # stops at </s>


def test_normalise_skt_v2_dir(tmp_path, shared_dir):
    tok_json = shared_dir / "anchors" / "skt_kogpt2_base_v2" / "tokenizer.json"
    if not tok_json.is_file():
        pytest.skip("SKT v2 anchor tokenizer absent")
    src = tmp_path / "skt_v2"
    model = _eos_loving_model(51200, bos=0, eos=0, pad=None)  # ids as a careless export might leave them
    model.save_pretrained(str(src))
    shutil.copy(tok_json, src / "tokenizer.json")  # SKT ships tokenizer.json alone
    out = convert_hf(src, tmp_path / "out")
    _check_normalised(out, model)
    assert json.loads((out / "config.json").read_text())["bos_token_id"] == 1  # bos = eos = </s> in v2


@pytest.mark.slow
def test_normalise_v1_dir(tmp_path, shared_dir):
    anchor = shared_dir / "anchors" / "taeminlee_kogpt2_v1"
    if not (anchor / "tokenizer.json").is_file():
        pytest.skip("KoGPT2 v1 anchor tokenizer absent")
    src = tmp_path / "v1"
    published = json.loads((anchor / "config.json").read_text())
    assert published["eos_token_id"] == 50256 >= published["vocab_size"]  # why v1 needs this
    model = _eos_loving_model(published["vocab_size"], bos=50256, eos=50256, pad=None)
    model.save_pretrained(str(src))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(anchor / name, src / name)
    out = convert_hf(src, tmp_path / "out")
    _check_normalised(out, model)
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == 1


def test_normalise_hf_bad_input(tmp_path, tiny_model_dir):
    with pytest.raises(KoGPT2Error, match="no config.json"):
        convert_hf(tmp_path, tmp_path / "out")
    with pytest.raises(KoGPT2Error, match="must differ"):
        convert_hf(tiny_model_dir, tiny_model_dir)
