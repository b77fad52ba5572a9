"""What every fine-tune output shares: the base model it belongs to, LoRA, and its record.

Every output directory holds ``kogpt2_finetune.json`` naming the task, the mode (``lora`` or
``full``), and the base model's fingerprint, so an adapter loaded on another base model fails
with a clear error instead of producing noise. A base is recorded by name when it is the
bundled model (``kogpt2-small``), in ``kogpt2_finetune.json`` and in peft's
``adapter_config.json`` alike, so an adapter directory can be copied to another machine.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kogpt2.errors import KoGPT2Error

META_FILE = "kogpt2_finetune.json"
LEGACY_BUNDLED = "bundled"
"""How outputs written before the bundled model was recorded by name refer to it."""
# NOTE: GPT-2's attention and MLP projections (Conv1D, hence fan_in_fan_out); GPT-Neo names differ.
LORA_TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"], "gpt_neo": ["q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"]}


# ----------------------------------------------------------------------------- base identity


def resolve_base(path: str | Path | None) -> Path:
    """The base model directory: a path, the bundled model's name, or None (the bundled model).

    Raises:
        KoGPT2Error: the bundled model is not installed, or the directory is not a model.
    """
    from kogpt2.model import check_model_dir
    from kogpt2.paths import BUNDLED_MODEL, bundled_model_dir

    if path is None or (str(path) in (BUNDLED_MODEL, LEGACY_BUNDLED) and not Path(path).exists()):
        p = bundled_model_dir()
        if not (p / "config.json").is_file():
            raise KoGPT2Error(f"the bundled model is not installed ({p} is missing); pass --model DIR")
        return p
    return check_model_dir(path)


def model_fingerprint(model) -> str:
    """A short hash of a model's shape and input embedding: tells base models apart.

    The embedding is frozen under LoRA and differs between any two trained models, so it
    identifies the base an adapter was trained on; the hash is the same for the LM and the
    sequence-classification class built on the same weights.
    """
    cfg = model.config
    shape = {k: getattr(cfg, k, None) for k in ("model_type", "vocab_size", "n_embd", "hidden_size", "n_layer",
                                                   "num_layers", "n_head", "n_positions", "max_position_embeddings")}
    h = hashlib.sha256(json.dumps(shape, sort_keys=True).encode())
    emb = model.get_input_embeddings().weight.detach().float().cpu().contiguous()
    h.update(emb.numpy().tobytes())
    return h.hexdigest()[:16]


def write_meta(out: Path, meta: dict) -> None:
    (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_meta(path: str | Path, task: str) -> dict:
    """``kogpt2_finetune.json`` of a fine-tune output, checked to be for ``task``."""
    from kogpt2.validate import existing_dir

    p = existing_dir(path, f"{task} fine-tune directory", f"written by `kogpt2 finetune {task}`")
    f = p / META_FILE
    if not f.is_file():
        raise KoGPT2Error(f"{p} is not a `kogpt2 finetune {task}` output (no {META_FILE}); "
                          f"train one with `kogpt2 finetune {task} --out {p}`")
    from kogpt2.model_dir import check_adapter_dir, check_model_dir
    from kogpt2.textio import read_json

    meta = read_json(f, "fine-tune record", fix=f"re-run `kogpt2 finetune {task}` into a new --out")
    if not isinstance(meta, dict) or meta.get("mode") not in ("lora", "full"):
        raise KoGPT2Error(f"{f} is not a fine-tune record (no mode lora/full); re-run `kogpt2 finetune {task}`")
    if meta.get("task") != task:
        raise KoGPT2Error(f"{p} was fine-tuned for {meta.get('task')!r}, not {task!r}; give a {task} directory")
    if meta["mode"] == "lora":
        check_adapter_dir(p)
    else:
        check_model_dir(p, tokenizer=True)
    return meta


def check_base(meta: dict, model, adapter_dir: str | Path, base_dir: str | Path) -> None:
    """Raise unless ``model`` is the base the adapter in ``adapter_dir`` was trained on."""
    want, got = meta.get("base_fingerprint"), model_fingerprint(model)
    if want != got:
        raise KoGPT2Error(f"adapter {adapter_dir} was trained on another base model (fingerprint {want}, "
                          f"recorded base {meta.get('base_model')}), not on {base_dir} ({got}); "
                          "pass the matching --model, or fine-tune an adapter for this base")


def adapter_base(meta: dict, model: str | Path | None) -> Path:
    """Which base model to load under an adapter: the given one, else the recorded one, else the bundled one."""
    if model is not None:
        return resolve_base(model)
    recorded = meta.get("base_model")
    if recorded and Path(recorded, "config.json").is_file():
        return Path(recorded)
    return resolve_base(None)  # the bundled name, or a path from another machine: the fingerprint decides


def base_name(path: Path) -> str:
    """How a base is recorded: the bundled model by its name (paths differ between installs), others by path."""
    from kogpt2.paths import BUNDLED_MODEL, bundled_model_dir

    return BUNDLED_MODEL if Path(path).resolve() == bundled_model_dir().resolve() else str(Path(path).resolve())


def apply_lora(model, cfg, task_type: str | None = None):
    """Wrap ``model`` in a ``peft`` LoRA model (only the adapters, and a classifier head, train).

    ``cfg``: a ``FinetuneConfig`` (``lora_r``, ``lora_alpha``, ``lora_dropout``, ``lora_embeddings``).
    """
    from peft import LoraConfig, get_peft_model

    targets = LORA_TARGETS.get(model.config.model_type)
    if targets is None:
        raise KoGPT2Error(f"LoRA targets for model type {model.config.model_type!r} are unknown; use --full")
    if cfg.lora_embeddings:
        if model.get_output_embeddings() is not None and model.config.tie_word_embeddings:
            raise KoGPT2Error("--lora-embeddings would also change the tied output layer once merged; "
                              "drop it for a language model (it is meant for classifiers)")
        targets = [*targets, "wte"]
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, fan_in_fan_out=model.config.model_type == "gpt2",
                      task_type=task_type)
    with quiet_transformers():
        return get_peft_model(model, lcfg)


def prepare_out(out: str | Path) -> Path:
    """Create the output directory; refuse one that already holds a fine-tune."""
    from kogpt2.finetune.loop import STATE_FILE

    p = Path(out)
    if (p / STATE_FILE).exists():
        raise KoGPT2Error(f"{p} holds an interrupted fine-tuning run; add --resume to continue it, or choose a "
                          "new --out")
    if (p / META_FILE).exists() or (p / "metrics.csv").exists():
        raise KoGPT2Error(f"{p} already holds a fine-tuning run; choose a new --out or delete it")
    p.mkdir(parents=True, exist_ok=True)
    return p


def save_lora(peft_model, out: Path, base: Path) -> None:
    """Adapter weights (and a trained head) only, the base recorded by :func:`base_name`.

    peft writes the base's absolute path into ``adapter_config.json``; it is replaced by the
    portable name, and peft's generic model card is dropped.
    """
    with quiet_transformers():
        peft_model.save_pretrained(str(out))
    config = Path(out) / "adapter_config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = base_name(base)
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    card = Path(out) / "README.md"
    if card.is_file():
        card.unlink()


ADAPTER_RELEASE_FILES = ("adapter_config.json", META_FILE)
"""What a released LoRA fine-tune keeps besides its weights (no metrics, plot or resume state)."""


def release_adapter(src: str | Path, out: str | Path, dtype: str = "bf16") -> Path:
    """Write a LoRA fine-tune output as a compact release: weights in ``dtype``, no trainer state.

    peft casts the stored weights to the base model's dtype when it loads them, so a bf16
    release serves an fp32 base unchanged; the directory is written atomically.
    """
    import shutil

    from safetensors.torch import load_file, save_file

    from kogpt2.atomic import atomic_dir
    from kogpt2.checkpoint import storage_dtype
    from kogpt2.model_dir import check_adapter_dir

    torch_dtype = storage_dtype(dtype)
    src = check_adapter_dir(src)
    if not (src / "adapter_model.safetensors").is_file():
        raise KoGPT2Error(f"{src} stores its adapter as adapter_model.bin; a release needs adapter_model.safetensors "
                          "(re-save it with peft's save_pretrained(safe_serialization=True))")
    weights = {k: v.to(torch_dtype) if v.is_floating_point() else v
               for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    with atomic_dir(out) as tmp:
        save_file(weights, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        for name in ADAPTER_RELEASE_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        for f in tmp.iterdir():
            f.chmod(0o644)
    return Path(out)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports (e.g. the newly initialised classifier head) and peft's
    deprecation notice about ``is_gradient_checkpointing`` (peft 0.21 on transformers 5)."""
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            yield
    finally:
        transformers.logging.set_verbosity(level)
