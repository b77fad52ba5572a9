"""The one checkpoint format: a Hugging Face model directory plus the trainer's state.

    step_0001000/
      config.json  model.safetensors  generation_config.json   # loadable by from_pretrained
      tokenizer.json  tokenizer_config.json  special_tokens_map.json
      hyperparameters.json    # the run's TrainConfig and model preset
      trainer_state.pt        # optimizer, step, data-sampler and torch RNG states

Directories are written under a temporary name, fsynced and renamed (``kogpt2.atomic``), so a
crash never leaves a half-written ``step_*``; the last ``keep`` are kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from kogpt2.atomic import atomic_dir
from kogpt2.errors import KoGPT2Error
from kogpt2.paths import STEP_DIR

STATE_FILE = "trainer_state.pt"
HPARAMS_FILE = "hyperparameters.json"


def save_checkpoint(out_dir: str | Path, step: int, state_dict: dict[str, torch.Tensor], hf_config,
                    tokenizer=None, generation_config=None, trainer_state: dict | None = None,
                    hyperparameters: dict | None = None, keep: int = 3) -> Path:
    """Atomically write ``out_dir/step_{step:07d}`` and prune older checkpoints beyond ``keep``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    final = out / f"step_{step:07d}"
    with atomic_dir(final) as tmp:
        # Tied weights are stored once, as transformers does (lm_head.weight is the embedding).
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items() if k != "lm_head.weight"
                   or not getattr(hf_config, "tie_word_embeddings", True)}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        hf_config.save_pretrained(str(tmp))
        if generation_config is not None:
            generation_config.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if hyperparameters is not None:
            (tmp / HPARAMS_FILE).write_text(json.dumps(hyperparameters, indent=2, ensure_ascii=False, default=str))
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE_FILE)
    for old in list_checkpoints(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """``step_*`` directories in ``out_dir``, oldest first (temporary ones ignored)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    steps = [p for p in out.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(steps, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def read_hyperparameters(ckpt: str | Path) -> dict[str, Any]:
    """A checkpoint's ``hyperparameters.json`` (``{}`` when it has none)."""
    from kogpt2.textio import read_json

    f = Path(ckpt) / HPARAMS_FILE
    if not f.is_file():
        return {}
    data = read_json(f, "checkpoint hyperparameters", fix="delete that file to resume with the command's settings")
    return data if isinstance(data, dict) else {}


def load_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint's trainer state; a clear error if it is partial or corrupt."""
    ckpt = Path(ckpt)
    needed = ["config.json", "model.safetensors", STATE_FILE]
    missing = [f for f in needed if not (ckpt / f).is_file()]
    if missing:
        raise KoGPT2Error(f"checkpoint {ckpt} is incomplete (missing {', '.join(missing)}); "
                          "delete it to resume from the previous one, or start without --resume")
    try:
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise KoGPT2Error(f"checkpoint {ckpt} has a corrupt {STATE_FILE} ({type(e).__name__}); "
                          "delete that checkpoint directory to resume from the previous one") from None
    if not isinstance(state, dict) or "step" not in state:
        raise KoGPT2Error(f"checkpoint {ckpt}: {STATE_FILE} is not a KoGPT2 trainer state")
    return state


def find_checkpoint(out_dir: str | Path, name: str | Path) -> Path:
    """A checkpoint given by path, by directory name in ``out_dir`` (``step_0000200``) or by step (``200``)."""
    p = Path(name)
    if str(name).isdigit():
        p = Path(out_dir) / f"step_{int(name):07d}"
    elif not p.is_dir() and (Path(out_dir) / p).is_dir():
        p = Path(out_dir) / p
    if not p.is_dir():
        have = ", ".join(c.name for c in list_checkpoints(out_dir)) or "none"
        raise KoGPT2Error(f"--resume-from {name}: no such checkpoint directory (checkpoints in {out_dir}: {have})")
    return p


def resume_checkpoint(out_dir: str | Path, resume_from: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """``(checkpoint, trainer state)`` to resume from: ``resume_from``, else the newest in ``out_dir``.

    Each candidate's weights and config are checked (headers only) before its trainer state is
    loaded. A corrupt newest checkpoint is not skipped silently: the error names it and gives
    the ``--resume-from`` flag for the previous one.
    """
    from kogpt2.model_dir import check_model_dir

    if resume_from is not None:
        ckpt = find_checkpoint(out_dir, resume_from)
        check_model_dir(ckpt)
        return ckpt, load_trainer_state(ckpt)
    ckpts = list_checkpoints(out_dir)
    if not ckpts:
        raise KoGPT2Error(f"--resume: no checkpoint step_* in {out_dir}; start without --resume")
    newest = ckpts[-1]
    try:
        check_model_dir(newest)
        return newest, load_trainer_state(newest)
    except KoGPT2Error as e:
        reason = str(e).split("; ")[0]
        if len(ckpts) == 1:
            raise KoGPT2Error(f"--resume: {reason}; it is the only checkpoint in {out_dir}: delete it and "
                              "start again without --resume") from None
        prev = ckpts[-2]
        raise KoGPT2Error(f"--resume: the newest checkpoint is unusable: {reason}; resume from the previous one "
                          f"by running the same command with `--resume-from {prev.name}` instead of --resume "
                          f"(or delete {newest})") from None


def load_weights(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """The model tensors of a checkpoint (clear error on a corrupt file)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(Path(ckpt) / "model.safetensors"))
    except Exception as e:  # noqa: BLE001
        raise KoGPT2Error(f"checkpoint {ckpt} has a corrupt model.safetensors ({e}); "
                          "delete that checkpoint directory to resume from the previous one") from None


RELEASE_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json")


def storage_dtype(dtype: str) -> torch.dtype:
    """The torch dtype a release stores its weights in: ``bf16``, ``fp16`` or ``fp32``."""
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(dtype)
    if torch_dtype is None:
        raise KoGPT2Error(f"--dtype {dtype!r}: choose bf16, fp16 or fp32")
    return torch_dtype


def release(src: str | Path, out: str | Path, dtype: str = "bf16") -> Path:
    """Write a training checkpoint as a compact, inference-only HF directory.

    Weights are stored in ``dtype`` (bf16 halves the size; ``load_model`` upcasts to fp32 by
    default), the trainer state is dropped, ``generation_config.json`` gets the project's
    Korean sampling defaults, and the directory is written atomically.
    """
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    model = load_model(src).to(storage_dtype(dtype))
    tokenizer = load_tokenizer(src)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        default_generation_config(tokenizer).save_pretrained(str(tmp))
        for f in tmp.iterdir():
            f.chmod(0o644)  # the weights may be written 0600 (temp file); a release is meant to be read by all
    return Path(out)


def default_generation_config(tokenizer=None, **token_ids: int):
    """Sampling defaults written into every checkpoint, release and converted model (they do not loop).

    The special ids come from ``tokenizer``, or are given as ``bos_token_id=``, ``eos_token_id=``,
    ``pad_token_id=`` (a conversion without a tokenizer).
    """
    from transformers import GenerationConfig

    if tokenizer is not None:
        token_ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id, **token_ids}
    # Korean defaults that do not loop (the KoGPT2 examples use repetition_penalty 2.0); min_new_tokens 16 as
    # the bundled model's: a small model often ends a document right after a one-sentence prompt.
    return GenerationConfig(do_sample=True, top_p=0.92, temperature=0.8, repetition_penalty=1.3,
                            no_repeat_ngram_size=3, max_new_tokens=128, min_new_tokens=16, **token_ids)
