"""The fine-tuning task interface, the ``TASKS`` registry, and the one run function every task uses.

A task says how its data becomes examples and batches, what the loss and the validation
metric are, and how a fully fine-tuned model is saved; :func:`finetune` does the rest (base
model, LoRA or full, the loop of ``kogpt2.finetune.loop``, the run record). ``kogpt2 finetune
TASK`` and ``kogpt2 eval TASK`` are built from :data:`TASKS`, so a new task is one module
defining a :class:`Task` subclass plus one line here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import random
from pathlib import Path
from typing import Any, ClassVar, Collection, Iterable

import torch

from kogpt2.atomic import atomic_dir
from kogpt2.devices import resolve_device
from kogpt2.errors import KoGPT2Error
from kogpt2.finetune.batching import ReadReport, autocast_ctx, iter_chunks, length_batches, run_split
from kogpt2.finetune.config import FinetuneConfig

TASKS: dict[str, str] = {
    "chat": "kogpt2.finetune.chat:ChatTask",
    "sentiment": "kogpt2.finetune.sentiment:SentimentTask",
}
"""Task name -> ``module:class``; imported only when the task is used."""


class Task:
    """One fine-tuning task. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    help: ClassVar[str]
    """One line for ``kogpt2 finetune --help``."""
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    """``FinetuneConfig`` defaults of this task (they become the flags' defaults)."""
    exclude: ClassVar[frozenset[str]] = frozenset()
    """``FinetuneConfig`` fields that make no sense for this task (no flag)."""
    peft_task_type: ClassVar[str | None] = None
    """peft's task type (``SEQ_CLS`` trains and saves a classifier head beside the adapters)."""

    def read(self, path: str) -> tuple[list, ReadReport]:
        """The dataset file as a list of examples, and what was skipped."""
        raise NotImplementedError

    def load_model(self, base: Path):
        """The model to fine-tune, built on the base model directory ``base``."""
        raise NotImplementedError

    def encode(self, example: Any, tokenizer, cfg: FinetuneConfig) -> Any:
        """One example as token ids (and targets)."""
        raise NotImplementedError

    def length(self, encoded: Any) -> int:
        """Tokens in one encoded example (batches group similar lengths)."""
        raise NotImplementedError

    def collate(self, encoded: list, tokenizer) -> dict[str, torch.Tensor]:
        """Encoded examples as one batch of tensors (on the CPU)."""
        raise NotImplementedError

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(mean training loss, input tokens) of one batch."""
        raise NotImplementedError

    def evaluate(self, model, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Validation: ``val_loss`` plus the task's metric (``val_bpc``, ``val_acc``)."""
        raise NotImplementedError

    def record(self, examples: list, encoded: list, tokenizer) -> dict[str, Any]:
        """Task facts for ``kogpt2_finetune.json`` (labels, format, truncated examples...)."""
        return {}

    def save_full(self, model, tokenizer, out: Path) -> None:
        """Write a fully fine-tuned model."""
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))

    def summary(self, result) -> str:
        """One line about the finished run."""
        return ", ".join(f"{k} {v:.4f}" for k, v in result.best.items() if k != "step")

    def add_eval_flags(self, parser: argparse.ArgumentParser) -> None:
        """The flags of ``kogpt2 eval TASK``."""
        raise NotImplementedError

    def run_eval(self, args: argparse.Namespace) -> int:
        """``kogpt2 eval TASK``: evaluate and print."""
        raise NotImplementedError


def get_task(name: str) -> Task:
    """The registered task ``name``."""
    if name not in TASKS:
        raise KoGPT2Error(f"unknown fine-tuning task {name!r}; choose one of {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


MACHINE_FIELDS = frozenset({"device", "threads", "progress", "resume"})
"""Settings of the machine or the invocation: a resumed run takes them from its command, not its state."""


def resumed_config(cfg: FinetuneConfig, saved: dict, task_defaults: dict,
                   given: Collection[str] | None = None) -> FinetuneConfig:
    """``cfg`` with the interrupted run's settings where the command did not set them.

    ``given``: the fields typed on the command line (``kogpt2.config_flags.given_fields``); without it
    (the Python API) a field left at its default counts as not set. A setting given with another
    value than the run's is an error: the run could not continue as it began.
    """
    from kogpt2.config_flags import settings_to_restore

    lr = 1e-4 if cfg.full else 1e-3  # what __post_init__ resolves an lr not given to
    changes, typed = settings_to_restore(cfg, saved, given, skip=MACHINE_FIELDS,
                                         defaults={**task_defaults, "lr": lr})
    if typed:
        conflicts = [f"--{k.replace('_', '-')} {v} (the run has {saved[k]})" for k, v in typed.items()]
        raise KoGPT2Error(f"--resume continues the run in {cfg.out} with its own settings; drop "
                          f"{', '.join(conflicts)}, or start a new --out")
    return dataclasses.replace(cfg, **changes) if changes else cfg


def finetune(task: Task | str, cfg: FinetuneConfig, given: Collection[str] | None = None) -> dict:
    """Fine-tune a base model on ``task`` (LoRA by default); returns the run record (``kogpt2_finetune.json``).

    ``given``: the settings typed on the command line (a resumed run takes the others from its state).
    """
    from kogpt2.finetune.base import (apply_lora, base_name, model_fingerprint, prepare_out, resolve_base,
                                      save_lora, write_meta)
    from kogpt2.finetune.loop import fit, read_state
    from kogpt2.tokenizer import load_tokenizer

    task = get_task(task) if isinstance(task, str) else task
    state = None
    if cfg.resume:
        state = read_state(Path(cfg.out))
        cfg = resumed_config(cfg, state["config"], task.defaults, given)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    base = resolve_base(cfg.model)
    examples, report = task.read(cfg.data)
    print(report)
    tr, va = run_split(len(examples), cfg.seed, cfg.val_fraction, cfg.max_val, cfg.max_examples)
    out = Path(cfg.out) if state is not None else prepare_out(cfg.out)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(base)
    model = task.load_model(base)
    meta = dict(task=task.name, mode="full" if cfg.full else "lora", base_model=base_name(base),
                base_fingerprint=model_fingerprint(model), data=str(cfg.data), seed=cfg.seed,
                val_fraction=cfg.val_fraction, max_val=cfg.max_val, max_examples=cfg.max_examples,
                max_len=cfg.max_len, examples=len(tr), val_examples=len(va), bad_rows=dict(report.bad))
    trained = (model if cfg.full else apply_lora(model, cfg, task.peft_task_type)).to(device)
    train_enc = [task.encode(examples[i], tokenizer, cfg) for i in tr]
    val_enc = [task.encode(examples[i], tokenizer, cfg) for i in va]
    meta.update(task.record([examples[i] for i in tr], train_enc, tokenizer))
    lengths = [task.length(e) for e in train_enc]
    print(f"{len(tr)} training and {len(va)} validation examples, "
          f"{'full fine-tuning' if cfg.full else f'LoRA r={cfg.lora_r}'} of {base} on {device}")

    def on_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in batch.items()}

    def batches(epoch: int) -> list:
        return length_batches(lengths, cfg.batch_size, random.Random(cfg.seed + epoch))

    def loss_fn(m, idx: list[int]) -> tuple[torch.Tensor, int]:
        return task.loss(m, on_device(task.collate([train_enc[i] for i in idx], tokenizer)))

    def evaluate() -> dict:
        with autocast_ctx(cfg.dtype, device):
            return task.evaluate(trained, (on_device(task.collate(c, tokenizer))
                                           for c in iter_chunks(val_enc, cfg.batch_size)))

    def save() -> None:
        with atomic_dir(out, merge=True, last=(".json",)) as tmp:  # an interrupted save leaves the old best
            if cfg.full:
                task.save_full(model, tokenizer, tmp)
            else:
                save_lora(trained, tmp, base)
            write_meta(tmp, meta)

    result = fit(trained, loss_fn, batches, evaluate, save, cfg, out, state)
    meta.update(steps=result.steps, best_step=result.best_step, first_val_loss=round(result.first_val_loss, 5),
                best_val_loss=round(result.best_val_loss, 5), stopped_early=result.stopped_early,
                elapsed_s=result.elapsed_s,
                **{k: round(v, 5) for k, v in result.best.items() if k not in ("step", "val_loss")})
    write_meta(out, meta)
    print(f"validation {task.summary(result)} at step {result.best_step} of {result.steps} "
          f"(loss {result.first_val_loss:.4f} at step 0); saved to {out}")
    return meta
