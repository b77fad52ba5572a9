"""Shared fine-tuning pieces: LoRA or full, the loop with early stopping, self-describing outputs.

The chatbot (``kogpt2.chat``) and the sentiment classifier (``kogpt2.sentiment``) both train
with :func:`fit`: AdamW and the warmup + cosine schedule of pretraining (``kogpt2.train``),
bf16 autocast, a validation pass every ``eval_interval`` steps, the best weights saved, and
a stop after ``patience`` evaluations without improvement. ``metrics.csv`` and ``loss.png``
are written as in pretraining.

Every output directory holds ``kogpt2_finetune.json`` naming the task, the mode (``lora`` or
``full``), and the base model's fingerprint, so an adapter loaded on another base model fails
with a clear error instead of producing noise.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import warnings
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.train import MetricsLog, lr_at, make_optimizer, plot_metrics

META_FILE = "kogpt2_finetune.json"
# NOTE: GPT-2's attention and MLP projections (Conv1D, hence fan_in_fan_out); GPT-Neo names differ.
LORA_TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"], "gpt_neo": ["q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"]}


@dataclass
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run; validated once, every problem in one error."""

    data: str = ""
    """Training data file (ChatbotData.csv or NSMC ratings_train.txt)."""
    out: str = ""
    """Output directory (adapter or full model, metrics.csv, loss.png, kogpt2_finetune.json)."""
    model: str | None = None
    """Base model directory; None = the bundled kogpt2-small."""
    full: bool = False
    """Fine-tune every weight instead of LoRA adapters."""
    epochs: int = 3
    max_steps: int | None = None
    """Stop after this many optimizer steps (default: ``epochs`` passes over the data)."""
    batch_size: int = 32
    lr: float | None = None
    """Peak learning rate (default 1e-3 for LoRA, 1e-4 for full fine-tuning)."""
    min_lr: float | None = None
    warmup_steps: int = 50
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    max_len: int = 64
    """Tokens per example at most (longer ones are truncated and counted)."""
    max_examples: int | None = None
    """Use a seeded random subset of this many training examples."""
    val_fraction: float = 0.05
    max_val: int = 2000
    """Validation examples at most (taken out of the training data)."""
    eval_interval: int = 100
    patience: int = 3
    """Evaluations without a better validation loss before stopping early (0 = never stop early)."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_embeddings: bool = False
    """LoRA mode: adapt the input token embeddings too (a low-rank update of ``wte``); for classifiers,
    whose embeddings are not tied to an output layer."""
    dtype: str = "bf16"
    """Autocast dtype on CPU/GPU: bf16 or fp32."""
    seed: int = 1337
    threads: int | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = []
        if not self.data:
            p.append("--data is required")
        if not self.out:
            p.append("--out is required")
        if self.epochs < 1 or self.batch_size < 1 or (self.max_steps is not None and self.max_steps < 1):
            p.append("--epochs, --batch-size and --max-steps must be >= 1")
        if self.max_len < 8:
            p.append(f"--max-len {self.max_len} is too short; use at least 8 tokens")
        if not 0 < self.val_fraction < 0.5:
            p.append(f"--val-fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.max_examples is not None and self.max_examples < 10:
            p.append("--max-examples must be >= 10")
        from kogpt2.validate import number_problems

        p += number_problems(lr=(self.lr, "> 0"), min_lr=(self.min_lr, ">= 0"), warmup_steps=(self.warmup_steps, ">= 0"),
                             weight_decay=(self.weight_decay, ">= 0"), grad_clip=(self.grad_clip, ">= 0"),
                             max_val=(self.max_val, ">= 1"), lora_alpha=(self.lora_alpha, "> 0"),
                             lora_dropout=(self.lora_dropout, ">= 0 < 1"), threads=(self.threads, ">= 1"))
        if self.lora_r < 1 or self.eval_interval < 1 or self.patience < 0:
            p.append("--lora-r and --eval-interval must be >= 1, --patience >= 0")
        if self.dtype not in ("bf16", "fp32"):
            p.append(f"--dtype {self.dtype!r}: choose bf16 or fp32")
        if p:
            raise KoGPT2Error("; ".join(p))
        if self.lr is None:
            self.lr = 1e-4 if self.full else 1e-3


# ----------------------------------------------------------------------------- base identity


def resolve_base(path: str | Path | None) -> Path:
    """The base model directory (None = the bundled model, with a clear error if it is missing)."""
    from kogpt2.model import check_model_dir
    from kogpt2.paths import bundled_model_dir

    if path is None:
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
    if recorded and recorded != "bundled" and Path(recorded, "config.json").is_file():
        return Path(recorded)
    return resolve_base(None)


def base_name(path: Path) -> str:
    """How a base is recorded: ``bundled`` for the shipped model (paths differ between installs)."""
    from kogpt2.paths import bundled_model_dir

    return "bundled" if path.resolve() == bundled_model_dir().resolve() else str(path.resolve())


def apply_lora(model, cfg: FinetuneConfig, task_type: str | None = None):
    """Wrap ``model`` in a ``peft`` LoRA model (only the adapters, and a classifier head, train)."""
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
    p = Path(out)
    if (p / META_FILE).exists() or (p / "metrics.csv").exists():
        raise KoGPT2Error(f"{p} already holds a fine-tuning run; choose a new --out or delete it")
    p.mkdir(parents=True, exist_ok=True)
    return p


# ----------------------------------------------------------------------------- data helpers


@dataclass
class ReadReport:
    """Rows read, kept, and the bad ones by reason (never dropped silently)."""

    path: str
    rows: int = 0
    kept: int = 0
    bad: Counter = field(default_factory=Counter)
    first_bad: list[str] = field(default_factory=list)

    def add_bad(self, reason: str, line: int) -> None:
        self.bad[reason] += 1
        if len(self.first_bad) < 5:
            self.first_bad.append(f"line {line}: {reason}")

    def __str__(self) -> str:
        s = f"{self.path}: {self.rows} rows, {self.kept} kept"
        if self.bad:
            s += f", {sum(self.bad.values())} skipped (" + ", ".join(f"{k}: {v}" for k, v in self.bad.items())
            s += "; e.g. " + "; ".join(self.first_bad) + ")"
        return s


def split_indices(n: int, val_fraction: float, max_val: int, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, validation) index split; the same arguments give the same split."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = max(1, min(max_val, int(round(n * val_fraction))))
    if n - n_val < 1:
        raise KoGPT2Error(f"{n} examples are too few to split off a validation set; give more data")
    return sorted(order[n_val:]), sorted(order[:n_val])


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, pool: int = 50) -> list[list[int]]:
    """Batches of similar lengths (less padding), in random order.

    Examples are shuffled, cut into pools of ``pool * batch_size``, each pool sorted by length
    and split into batches; then the batches are shuffled.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    step = pool * batch_size
    for i in range(0, len(order), step):
        chunk = sorted(order[i:i + step], key=lambda j: lengths[j])
        batches.extend(chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int, fill: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)``, each (B, T): sequences padded on the right with ``fill`` (default ``pad_id``)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id if fill is None else fill, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def autocast_ctx(dtype: str, device: torch.device | str = "cpu"):
    """bf16 autocast (AMX on recent CPUs) or a no-op for fp32."""
    dev = torch.device(device).type
    return torch.autocast(dev, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()


# ----------------------------------------------------------------------------- the loop


class FinetuneMetrics(MetricsLog):
    """``metrics.csv`` of pretraining plus validation accuracy (classification)."""

    FIELDS = MetricsLog.FIELDS + ["val_acc"]

    def plot(self) -> None:
        import csv

        rows = list(csv.DictReader(open(self.path)))
        if any(r["val_bpc"] for r in rows):
            plot_metrics(self.path, self.png)
        else:
            _plot_accuracy(rows, self.png)


def _plot_accuracy(rows: list[dict], png: Path) -> None:
    """Training loss and validation accuracy against steps (classification runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
    va = [(int(r["step"]), float(r["val_acc"])) for r in rows if r.get("val_acc")]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    if tr:
        ax[0].plot(*zip(*tr), lw=0.8)
    ax[0].set(xlabel="step", ylabel="train loss (nats)", title="training loss")
    if va:
        ax[1].plot(*zip(*va), marker="o")
    ax[1].set(xlabel="step", ylabel="accuracy", title="validation accuracy")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


@dataclass
class FitResult:
    """What :func:`fit` did."""

    steps: int
    best_val_loss: float
    best_step: int
    first_val_loss: float
    history: list[dict]
    stopped_early: bool
    elapsed_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def fit(model, loss_fn: Callable[[Any, Any], tuple[torch.Tensor, int]], batches: Callable[[int], list],
        evaluate: Callable[[], dict], save: Callable[[], None], cfg: FinetuneConfig, out: Path) -> FitResult:
    """Train ``model`` with early stopping on validation loss; ``save()`` runs at every new best.

    Args:
        model: the module to train (its trainable parameters only are optimised).
        loss_fn: ``loss_fn(model, batch) -> (mean loss, tokens in the batch)``.
        batches: ``batches(epoch) -> list of batches`` (re-shuffled per epoch).
        evaluate: validation pass returning at least ``val_loss`` (and ``val_bpc`` / ``val_acc``).
        save: writes the current weights as the run's result.
        cfg: hyper-parameters (``lr``, schedule, ``eval_interval``, ``patience``, ...).
        out: run directory for ``metrics.csv`` and ``loss.png``.
    """
    from tqdm import tqdm

    n_per_epoch = len(batches(0))
    total = cfg.max_steps or cfg.epochs * n_per_epoch
    sched = _Schedule(lr=cfg.lr, min_lr=cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10,
                      warmup_steps=min(cfg.warmup_steps, max(1, total // 10)), max_steps=total)
    opt = make_optimizer(model, _OptimArgs(cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2), torch.device("cpu"))
    metrics = FinetuneMetrics(out)
    device = next(model.parameters()).device
    first = _log_eval(evaluate, metrics, 0, 0, 0.0)
    best, best_step, bad, history = first["val_loss"], 0, 0, [first]
    save()
    step, tokens, t0, stopped = 0, 0, time.time(), False
    bar = tqdm(total=total, desc="finetune", disable=not cfg.progress, dynamic_ncols=True)
    model.train()
    epoch = 0
    while step < total and not stopped:
        for batch in batches(epoch):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, sched)
            with autocast_ctx(cfg.dtype, device):
                loss, n_tok = loss_fn(model, batch)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += n_tok
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % 10 == 0:
                metrics.log(step=step, tokens=tokens, loss=round(loss.item(), 5), lr=opt.param_groups[0]["lr"],
                            tok_s=round(tokens / (time.time() - t0), 1), elapsed_s=round(time.time() - t0, 1))
            if step % cfg.eval_interval == 0 or step == total:
                model.eval()
                row = _log_eval(evaluate, metrics, step, tokens, time.time() - t0)
                model.train()
                history.append(row)
                if row["val_loss"] < best - 1e-4:
                    best, best_step, bad = row["val_loss"], step, 0
                    save()
                else:
                    bad += 1
                tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "step")
                           + (" (best)" if best_step == step else ""))
                if cfg.patience and bad >= cfg.patience:
                    tqdm.write(f"early stop: no better validation loss in {bad} evaluations")
                    stopped = True
            if step >= total or stopped:
                break
        epoch += 1
    bar.close()
    model.eval()
    metrics.plot()
    return FitResult(steps=step, best_val_loss=best, best_step=best_step, first_val_loss=first["val_loss"],
                     history=history, stopped_early=stopped, elapsed_s=round(time.time() - t0, 1))


@dataclass
class _Schedule:
    """The fields ``kogpt2.train.lr_at`` reads."""

    lr: float
    min_lr: float
    warmup_steps: int
    max_steps: int


@dataclass
class _OptimArgs:
    """The fields ``kogpt2.train.make_optimizer`` reads."""

    lr: float
    weight_decay: float
    beta1: float
    beta2: float


def _log_eval(evaluate: Callable[[], dict], metrics: FinetuneMetrics, step: int, tokens: int, elapsed: float) -> dict:
    with torch.no_grad():
        row = evaluate()
    metrics.log(step=step, tokens=tokens, elapsed_s=round(elapsed, 1),
                **{k: round(float(v), 5) for k, v in row.items() if k in ("val_loss", "val_bpc", "val_acc")})
    if not math.isfinite(row["val_loss"]):
        raise KoGPT2Error("validation loss is not finite; lower --lr")
    return {"step": step, **{k: float(v) for k, v in row.items()}}


def iter_chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    """Consecutive slices of ``n`` items."""
    for i in range(0, len(items), n):
        yield items[i:i + n]


def save_lora(peft_model, out: Path) -> None:
    """Adapter weights (and a trained head) only; peft's generic model card is dropped."""
    with quiet_transformers():
        peft_model.save_pretrained(str(out))
    card = out / "README.md"
    if card.is_file():
        card.unlink()


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
