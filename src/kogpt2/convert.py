"""Bring checkpoints in: TensorFlow GPT-2 checkpoints and other KoGPT2 Hugging Face directories.

Both write our checkpoint format, a Hugging Face directory (``config.json``,
``model.safetensors``, ``generation_config.json``, tokenizer files, ``conversion.json``)::

    kogpt2 convert tf gpt2/models/774M runs/gpt2-774m                        # OpenAI layout
    kogpt2 convert tf ckpt/model.ckpt-100000 runs/ko-xl --config configs/xl.json --tokenizer tok/
    kogpt2 convert hf downloads/kogpt2-base-v2 runs/kogpt2-v2                # SKT v2 / v1 dirs

TensorFlow checkpoints are read by ``kogpt2.tf_checkpoint`` (no TensorFlow needed).

Variable names of the two TF layouts (``[in, out]`` kernels unless noted):

* OpenAI GPT-2 (openai/gpt-2 ``src/model.py``, ``hparams.json``: n_vocab n_ctx n_embd n_head
  n_layer)::

      model/wte [V, C]   model/wpe [T, C]   model/ln_f/{g,b}
      model/h{i}/ln_1/{g,b}  model/h{i}/attn/c_attn/{w [1, C, 3C], b}  model/h{i}/attn/c_proj/{w [1, C, C], b}
      model/h{i}/ln_2/{g,b}  model/h{i}/mlp/c_fc/{w [1, C, 4C], b}    model/h{i}/mlp/c_proj/{w [1, 4C, C], b}

  This is exactly Hugging Face's ``GPT2LMHeadModel`` with the tanh GELU (``gelu_new``).

* Grover / KoGPT2-train (rowanz/grover and ksjae/KoGPT2-train ``modeling.py``; config JSON:
  vocab_size hidden_size num_hidden_layers num_attention_heads intermediate_size
  max_position_embeddings)::

      newslm/embeddings/word_embed [V, C]   newslm/embeddings/pos_embed [T, C]
      newslm/embeddings/LayerNorm_embed_norm/{gamma,beta}
      newslm/layer{NN}/{query_layer,key_layer,value_layer,context_projection_layer}/{kernel [C, C], bias}
      newslm/layer{NN}/LayerNorm_mlp_ln0/{gamma,beta}
      newslm/layer{NN}/intermediate/{kernel [C, F], bias}   newslm/layer{NN}/output/{kernel [F, C], bias}
      newslm/layer{NN}/LayerNorm_mlp_ln1/{gamma,beta}

  Differences from GPT-2: a layer norm on the embeddings; no norm before attention, whose
  residual is the normalised layer input; the MLP is pre-normed (mlp_ln0) and the layer ends
  with a norm of the residual sum (mlp_ln1), so there is no separate final norm; exact erf
  GELU; the output projection is tied to ``word_embed`` with no bias; LayerNorm eps 1e-5 as
  GPT-2. No ``GPT2LMHeadModel`` setting computes this exactly, so Grover checkpoints become
  ``kogpt2.modeling_grover.GroverLMHeadModel`` (GPT-2 with one changed residual, explained
  there), which loads with ``trust_remote_code=True`` or after ``import kogpt2.modeling_grover``.

Anything else in a checkpoint (``global_step``, Adam / Adafactor slots) is ignored.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kogpt2.atomic import atomic_dir
from kogpt2.checkpoint import default_generation_config
from kogpt2.errors import KoGPT2Error
from kogpt2.tf_checkpoint import TFCheckpoint, resolve_prefix

OPENAI = "openai-gpt2"
GROVER = "grover"
LAYOUT_KEYS = {OPENAI: "model/wte", GROVER: "newslm/embeddings/word_embed"}

# hyperparameter -> accepted JSON keys (Grover/BERT names, OpenAI names, HF GPT-2 names)
HPARAM_KEYS: dict[str, tuple[str, ...]] = {
    "vocab_size": ("vocab_size", "n_vocab"),
    "n_positions": ("max_position_embeddings", "n_ctx", "n_positions"),
    "n_embd": ("hidden_size", "n_embd"),
    "n_head": ("num_attention_heads", "n_head"),
    "n_layer": ("num_hidden_layers", "n_layer"),
}
GPT2_ENGLISH_VOCAB = 50257  # OpenAI's GPT-2: <|endoftext|> = 50256 is bos, eos and pad
KOGPT2_IDS = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 3}  # </s>, </s>, <pad>


@dataclass(frozen=True)
class ModelShape:
    """Sizes of a GPT-2-family model, in Hugging Face ``GPT2Config`` terms."""

    vocab_size: int
    n_positions: int
    n_embd: int
    n_head: int
    n_layer: int
    n_inner: int


# --- reading the TF side ----------------------------------------------------------------

def detect_layout(names: list[str]) -> str:
    """``openai-gpt2`` or ``grover`` from a checkpoint's variable names; a clear error otherwise."""
    for layout, key in LAYOUT_KEYS.items():
        if key in names:
            return layout
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    raise KoGPT2Error(f"unknown checkpoint layout: found neither model/wte (OpenAI GPT-2) nor "
                      f"newslm/embeddings/word_embed (Grover / KoGPT2-train); variables: {shown or 'none'}")


def load_hparams(prefix: Path, config: str | Path | None) -> tuple[dict, Path]:
    """The hyperparameter JSON: ``config`` or, if None, ``hparams.json`` / ``config.json`` beside it."""
    if config is None:
        found = [prefix.parent / n for n in ("hparams.json", "config.json") if (prefix.parent / n).is_file()]
        if not found:
            raise KoGPT2Error(f"no hyperparameters found beside {prefix} (hparams.json or config.json); "
                              "give --config JSON with vocab_size, hidden_size, num_hidden_layers, "
                              "num_attention_heads, max_position_embeddings")
        path = found[0]
    else:
        from kogpt2.validate import existing_file

        path = existing_file(config, "--config")
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KoGPT2Error(f"{path} is not valid JSON ({e}); give the model's hyperparameter file") from None


def model_shape(hp: dict, source: Path) -> ModelShape:
    """Sizes from a hyperparameter dict in Grover, OpenAI or HF spelling (all problems at once)."""
    values, missing = {}, []
    for field, keys in HPARAM_KEYS.items():
        key = next((k for k in keys if k in hp), None)
        if key is None:
            missing.append(keys[0])
        else:
            values[field] = int(hp[key])
    if missing:
        raise KoGPT2Error(f"{source} lacks {', '.join(missing)}; it needs vocab_size, hidden_size, "
                          "num_hidden_layers, num_attention_heads, max_position_embeddings "
                          "(or OpenAI's n_vocab, n_embd, n_layer, n_head, n_ctx)")
    if values["n_embd"] % values["n_head"]:
        raise KoGPT2Error(f"{source}: hidden size {values['n_embd']} is not divisible by "
                          f"{values['n_head']} attention heads; check num_attention_heads")
    n_inner = int(hp.get("intermediate_size") or hp.get("n_inner") or 4 * values["n_embd"])
    return ModelShape(n_inner=n_inner, **values)


def expected_shapes(layout: str, s: ModelShape) -> dict[str, tuple[int, ...]]:
    """Every variable the layout needs, with its shape under ``s``."""
    c, f = s.n_embd, s.n_inner
    if layout == OPENAI:
        out = {"model/wte": (s.vocab_size, c), "model/wpe": (s.n_positions, c),
               "model/ln_f/g": (c,), "model/ln_f/b": (c,)}
        for i in range(s.n_layer):
            p = f"model/h{i}"
            out.update({f"{p}/ln_1/g": (c,), f"{p}/ln_1/b": (c,), f"{p}/ln_2/g": (c,), f"{p}/ln_2/b": (c,),
                        f"{p}/attn/c_attn/w": (1, c, 3 * c), f"{p}/attn/c_attn/b": (3 * c,),
                        f"{p}/attn/c_proj/w": (1, c, c), f"{p}/attn/c_proj/b": (c,),
                        f"{p}/mlp/c_fc/w": (1, c, f), f"{p}/mlp/c_fc/b": (f,),
                        f"{p}/mlp/c_proj/w": (1, f, c), f"{p}/mlp/c_proj/b": (c,)})
        return out
    e = "newslm/embeddings"
    out = {f"{e}/word_embed": (s.vocab_size, c), f"{e}/pos_embed": (s.n_positions, c),
           f"{e}/LayerNorm_embed_norm/gamma": (c,), f"{e}/LayerNorm_embed_norm/beta": (c,)}
    for i in range(s.n_layer):
        p = f"newslm/layer{i:02d}"
        for name in ("query_layer", "key_layer", "value_layer", "context_projection_layer"):
            out.update({f"{p}/{name}/kernel": (c, c), f"{p}/{name}/bias": (c,)})
        for ln in ("LayerNorm_mlp_ln0", "LayerNorm_mlp_ln1"):
            out.update({f"{p}/{ln}/gamma": (c,), f"{p}/{ln}/beta": (c,)})
        out.update({f"{p}/intermediate/kernel": (c, f), f"{p}/intermediate/bias": (f,),
                    f"{p}/output/kernel": (f, c), f"{p}/output/bias": (c,)})
    return out


def check_shapes(ckpt: TFCheckpoint, expected: dict[str, tuple[int, ...]], hp_path: Path) -> None:
    """One error naming every missing variable and shape mismatch (first few of each)."""
    missing = [n for n in expected if n not in ckpt.entries]
    wrong = [f"{n} is {list(ckpt.shape(n))}, config wants {list(shape)}"
             for n, shape in expected.items() if n in ckpt.entries and tuple(ckpt.shape(n)) != shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} variable(s) missing: {', '.join(missing[:4])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es): {'; '.join(wrong[:4])}")
    if problems:
        raise KoGPT2Error(f"checkpoint {ckpt.prefix} does not match {hp_path}: {' | '.join(problems)}; "
                          "give the hyperparameter JSON this checkpoint was trained with (--config)")


def _count_layers(names: list[str], layout: str) -> int:
    import re

    pattern = re.compile(r"^model/h(\d+)/" if layout == OPENAI else r"^newslm/layer(\d+)/")
    return len({m.group(1) for n in names if (m := pattern.match(n))})


# --- weight mapping -------------------------------------------------------------------------

Reader = Callable[[str], np.ndarray]


def openai_to_hf(read: Reader, s: ModelShape) -> dict[str, np.ndarray]:
    """HF ``GPT2LMHeadModel`` tensors from OpenAI names (conv1d [1, in, out] -> Conv1D [in, out])."""
    t = {"transformer.wte.weight": read("model/wte"), "transformer.wpe.weight": read("model/wpe"),
         "transformer.ln_f.weight": read("model/ln_f/g"), "transformer.ln_f.bias": read("model/ln_f/b")}
    for i in range(s.n_layer):
        src, dst = f"model/h{i}", f"transformer.h.{i}"
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            t[f"{dst}.{b}.weight"], t[f"{dst}.{b}.bias"] = read(f"{src}/{a}/g"), read(f"{src}/{a}/b")
        for a in ("attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"):
            b = a.replace("/", ".")
            t[f"{dst}.{b}.weight"] = read(f"{src}/{a}/w")[0]
            t[f"{dst}.{b}.bias"] = read(f"{src}/{a}/b")
    return t


def grover_to_hf(read: Reader, s: ModelShape) -> dict[str, np.ndarray]:
    """``GroverLMHeadModel`` tensors: each block's ln_1 is the norm Grover applies before it."""
    e = "newslm/embeddings"
    t = {"transformer.wte.weight": read(f"{e}/word_embed"), "transformer.wpe.weight": read(f"{e}/pos_embed")}
    norm_before = f"{e}/LayerNorm_embed_norm"
    for i in range(s.n_layer):
        src, dst = f"newslm/layer{i:02d}", f"transformer.h.{i}"
        t[f"{dst}.ln_1.weight"], t[f"{dst}.ln_1.bias"] = read(f"{norm_before}/gamma"), read(f"{norm_before}/beta")
        qkv = ("query_layer", "key_layer", "value_layer")
        # c_attn output splits into q, k, v in that order, each head-major like Grover's reshape.
        t[f"{dst}.attn.c_attn.weight"] = np.concatenate([read(f"{src}/{n}/kernel") for n in qkv], axis=1)
        t[f"{dst}.attn.c_attn.bias"] = np.concatenate([read(f"{src}/{n}/bias") for n in qkv])
        t[f"{dst}.attn.c_proj.weight"] = read(f"{src}/context_projection_layer/kernel")
        t[f"{dst}.attn.c_proj.bias"] = read(f"{src}/context_projection_layer/bias")
        t[f"{dst}.ln_2.weight"] = read(f"{src}/LayerNorm_mlp_ln0/gamma")
        t[f"{dst}.ln_2.bias"] = read(f"{src}/LayerNorm_mlp_ln0/beta")
        for a, b in (("intermediate", "c_fc"), ("output", "c_proj")):
            t[f"{dst}.mlp.{b}.weight"], t[f"{dst}.mlp.{b}.bias"] = read(f"{src}/{a}/kernel"), read(f"{src}/{a}/bias")
        norm_before = f"{src}/LayerNorm_mlp_ln1"
    t["transformer.ln_f.weight"], t["transformer.ln_f.bias"] = read(f"{norm_before}/gamma"), read(f"{norm_before}/beta")
    return t


def hf_config(layout: str, s: ModelShape, ids: dict[str, int]):
    """``GPT2Config`` (OpenAI) or ``GroverConfig`` (Grover) for the converted weights."""
    common = dict(vocab_size=s.vocab_size, n_positions=s.n_positions, n_embd=s.n_embd, n_layer=s.n_layer,
                  n_head=s.n_head, n_inner=s.n_inner, layer_norm_epsilon=1e-5, tie_word_embeddings=True, **ids)
    if layout == OPENAI:
        from transformers import GPT2Config

        return GPT2Config(activation_function="gelu_new", architectures=["GPT2LMHeadModel"], **common)
    from kogpt2.modeling_grover import GroverConfig

    return GroverConfig(activation_function="gelu", architectures=["GroverLMHeadModel"],
                        auto_map={"AutoConfig": "modeling_grover.GroverConfig",
                                  "AutoModelForCausalLM": "modeling_grover.GroverLMHeadModel"}, **common)


# --- tokenizer and special ids ----------------------------------------------------------------

def special_ids(tokenizer, vocab_size: int, layout: str | None = None) -> dict[str, int]:
    """bos/eos/pad ids from ``tokenizer`` (checked against the embedding), or defaults without one.

    Without a tokenizer: OpenAI's English GPT-2 (50,257 rows) uses ``<|endoftext|>`` = 50256;
    anything else gets KoGPT2's layout (``</s>`` = 1 as bos and eos, ``<pad>`` = 3).
    """
    if tokenizer is None:
        if layout == OPENAI and vocab_size == GPT2_ENGLISH_VOCAB:
            return dict.fromkeys(("bos_token_id", "eos_token_id", "pad_token_id"), GPT2_ENGLISH_VOCAB - 1)
        return dict(KOGPT2_IDS)
    n = len(tokenizer)
    if n > vocab_size:
        raise KoGPT2Error(f"the tokenizer has {n} tokens but the model's embedding has only {vocab_size} rows; "
                          "give the tokenizer this model was trained with (--tokenizer DIR)")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise KoGPT2Error("the tokenizer defines no eos token, so generation could never stop; "
                          "give a tokenizer whose eos_token is set (KoGPT2: '</s>')")
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}


# --- writing ---------------------------------------------------------------------------------

def check_out(out: str | Path, overwrite: bool) -> Path:
    """Refuse to clobber an existing file or non-empty directory unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise KoGPT2Error(f"output {out} exists and is a file; give a directory path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise KoGPT2Error(f"output directory {out} is not empty; choose a new one or pass --overwrite")
    return out


def write_model_dir(out: str | Path, tensors: dict[str, np.ndarray], config, tokenizer=None,
                    extra: dict | None = None, overwrite: bool = False) -> Path:
    """Atomically write a HF directory from numpy tensors (tied ``lm_head`` stored once).

    Args:
        out: the directory to create.
        tensors: HF parameter name -> array.
        config: a ``GPT2Config`` / ``GroverConfig`` carrying the special-token ids.
        tokenizer: saved beside the weights when given.
        extra: written as ``conversion.json`` (where the weights came from).
        overwrite: replace a non-empty ``out``.
    """
    import torch
    from safetensors.torch import save_file

    out = check_out(out, overwrite)
    with atomic_dir(out) as tmp:
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config.save_pretrained(str(tmp))
        if getattr(config, "model_type", "") == "kogpt2_grover":
            shutil.copyfile(Path(__file__).with_name("modeling_grover.py"), tmp / "modeling_grover.py")
        default_generation_config(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                  pad_token_id=config.pad_token_id).save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if extra is not None:
            (tmp / "conversion.json").write_text(json.dumps(extra, indent=2, ensure_ascii=False) + "\n")
    return out


def _load_tokenizer(path: str | Path | None):
    if path is None:
        return None
    from kogpt2.tokenizer import load_tokenizer

    return load_tokenizer(path)


def convert_tf(checkpoint: str | Path, out: str | Path, config: str | Path | None = None,
               tokenizer: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Convert a TensorFlow GPT-2 checkpoint (OpenAI or Grover layout) into a HF directory.

    Args:
        checkpoint: checkpoint prefix (``model.ckpt-100000``), one of its files, or its directory.
        out: directory to write.
        config: hyperparameter JSON; default ``hparams.json`` / ``config.json`` beside the checkpoint.
        tokenizer: tokenizer directory to save with the model (its special ids go in the config).
        overwrite: replace a non-empty ``out``.
        progress: show a progress bar while reading variables.

    Returns:
        the written directory.
    """
    from tqdm.auto import tqdm

    check_out(out, overwrite)
    ckpt = TFCheckpoint(checkpoint)
    names = ckpt.numeric_names()
    layout = detect_layout(names)
    hp, hp_path = load_hparams(resolve_prefix(checkpoint), config)
    shape = model_shape(hp, hp_path)
    n_found = _count_layers(names, layout)
    if n_found != shape.n_layer:
        raise KoGPT2Error(f"checkpoint {ckpt.prefix} has {n_found} layers but {hp_path} says {shape.n_layer}; "
                          "give the hyperparameter JSON this checkpoint was trained with (--config)")
    expected = expected_shapes(layout, shape)
    check_shapes(ckpt, expected, hp_path)
    tok = _load_tokenizer(tokenizer)
    ids = special_ids(tok, shape.vocab_size, layout)
    bar = tqdm(total=len(expected), desc="reading TF variables", unit="var", disable=not progress)

    def read(name: str) -> np.ndarray:
        bar.update(1)
        return ckpt.read(name)

    with ckpt, bar:
        tensors = (openai_to_hf if layout == OPENAI else grover_to_hf)(read, shape)
    extra = {"source": str(ckpt.prefix), "format": "tensorflow", "layout": layout,
             "hyperparameters": hp, "model_shape": asdict(shape),
             "ignored_variables": sorted(set(ckpt.names()) - set(expected))}
    return write_model_dir(out, tensors, hf_config(layout, shape, ids), tok, extra, overwrite)


# --- Hugging Face KoGPT2 directories ----------------------------------------------------------

ROUND_TRIP_TEXT = "안녕하세요. 오늘은 날씨가 맑고 바람이 시원합니다."


def _check_tokenizer_dir(path: Path, tokenizer, ids: dict[str, int]) -> None:
    """The saved tokenizer must reload with the same ids and decode without stray '▁'."""
    from kogpt2.tokenizer import load_tokenizer

    again = load_tokenizer(path)
    enc = tokenizer.encode(ROUND_TRIP_TEXT, add_special_tokens=False)
    if again.encode(ROUND_TRIP_TEXT, add_special_tokens=False) != enc:
        raise KoGPT2Error(f"the tokenizer saved in {path} encodes differently after reloading; "
                          "kogpt2.tokenizer.load_tokenizer cannot round-trip this layout yet")
    text = again.decode(enc, skip_special_tokens=True)
    if "▁" in text:
        raise KoGPT2Error(f"the tokenizer in {path} decodes with stray '▁' ({text!r}); "
                          "kogpt2.tokenizer.load_tokenizer does not repair this layout yet")
    if again.eos_token_id != ids["eos_token_id"]:
        raise KoGPT2Error(f"the tokenizer saved in {path} reloads with eos id {again.eos_token_id}, "
                          f"not {ids['eos_token_id']}")


def convert_hf(src: str | Path, out: str | Path, tokenizer: str | Path | None = None,
               overwrite: bool = False) -> Path:
    """Normalise a Hugging Face GPT-2 KoGPT2 directory (SKT v2, the v1 conversion, ...).

    The tokenizer is loaded with ``kogpt2.tokenizer.load_tokenizer`` (which repairs the v1
    conversion's colliding added-token ids and gives SKT v2 its special tokens); its
    bos/eos/pad ids replace the config's (v1's config says 50256, beyond its 50,000 rows),
    weights are saved as ``model.safetensors`` and ``generation_config.json`` is written.

    Args:
        src: the source directory (``config.json`` and weights; tokenizer files unless given).
        out: directory to write (must differ from ``src``).
        tokenizer: tokenizer directory, if not in ``src``.
        overwrite: replace a non-empty ``out``.
    """
    import torch
    from transformers import GPT2LMHeadModel

    from kogpt2.tokenizer import load_tokenizer

    src, out = Path(src), Path(out)
    if not (src / "config.json").is_file():
        raise KoGPT2Error(f"{src} has no config.json; give a Hugging Face model directory "
                          "(for TensorFlow checkpoints use `kogpt2 convert tf`)")
    if out.resolve() == src.resolve():
        raise KoGPT2Error("OUT must differ from SRC; write the normalised copy to a new directory")
    check_out(out, overwrite)
    model_type = json.loads((src / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != "gpt2":
        raise KoGPT2Error(f"{src} holds a {model_type!r} model; `kogpt2 convert hf` normalises GPT-2 "
                          "KoGPT2 directories (model_type 'gpt2')")
    tok = load_tokenizer(tokenizer if tokenizer is not None else src)
    try:
        model = GPT2LMHeadModel.from_pretrained(str(src), dtype=torch.float32)
    except OSError as e:
        raise KoGPT2Error(f"cannot load the weights in {src} ({e}); it needs model.safetensors "
                          "or pytorch_model.bin") from None
    ids = special_ids(tok, model.config.vocab_size)
    for k, v in ids.items():
        setattr(model.config, k, v)
    model.generation_config = default_generation_config(**ids)
    out = check_out(out, overwrite)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        _check_tokenizer_dir(tmp, tok, ids)
        (tmp / "conversion.json").write_text(json.dumps(
            {"source": str(src), "format": "huggingface", "special_token_ids": ids,
             "tokenizer_size": len(tok), "vocab_size": model.config.vocab_size}, indent=2) + "\n")
    return out
