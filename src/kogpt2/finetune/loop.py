"""The fine-tuning loop every task shares: AdamW + warmup/cosine (``kogpt2.optim``), autocast,
validation every ``eval_interval`` steps, the best weights saved, early stopping on ``patience``."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from kogpt2.errors import KoGPT2Error
from kogpt2.finetune.batching import autocast_ctx
from kogpt2.finetune.config import FinetuneConfig
from kogpt2.metrics import MetricsLog
from kogpt2.optim import adamw, cosine_lr, set_lr

LOGGED = ("val_loss", "val_bpc", "val_acc")


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

    @property
    def best(self) -> dict:
        """The validation row of the best step."""
        return next(h for h in self.history if h["step"] == self.best_step)

    def as_dict(self) -> dict:
        return asdict(self)


def fit(model, loss_fn: Callable[[Any, Any], tuple[torch.Tensor, int]], batches: Callable[[int], list],
        evaluate: Callable[[], dict], save: Callable[[], None], cfg: FinetuneConfig, out: Path) -> FitResult:
    """Train ``model`` with early stopping on validation loss; ``save()`` runs at every new best.

    Args:
        model: the module to train (its trainable parameters only are optimised), on its device.
        loss_fn: ``loss_fn(model, batch) -> (mean loss, tokens in the batch)``.
        batches: ``batches(epoch) -> list of batches`` (re-shuffled per epoch).
        evaluate: validation pass returning at least ``val_loss`` (and ``val_bpc`` / ``val_acc``).
        save: writes the current weights as the run's result.
        cfg: hyper-parameters (``lr``, schedule, ``eval_interval``, ``patience``, ...).
        out: run directory for ``metrics.csv`` and ``loss.png``.
    """
    from tqdm import tqdm

    total = cfg.max_steps or cfg.epochs * len(batches(0))
    warmup = min(cfg.warmup_steps, max(1, total // 10))
    min_lr = cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10
    opt = adamw(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    metrics = MetricsLog(out)
    device = next(model.parameters()).device
    first = _log_eval(evaluate, metrics, 0, 0, 0.0)
    best, best_step, bad, history = first["val_loss"], 0, 0, [first]
    save()
    step, tokens, t0, stopped, epoch = 0, 0, time.time(), False, 0
    bar = tqdm(total=total, desc="finetune", disable=not cfg.progress, dynamic_ncols=True)
    model.train()
    while step < total and not stopped:
        for batch in batches(epoch):
            set_lr(opt, cosine_lr(step, lr=cfg.lr, min_lr=min_lr, warmup_steps=warmup, max_steps=total))
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
    metrics.close()
    return FitResult(steps=step, best_val_loss=best, best_step=best_step, first_val_loss=first["val_loss"],
                     history=history, stopped_early=stopped, elapsed_s=round(time.time() - t0, 1))


def _log_eval(evaluate: Callable[[], dict], metrics: MetricsLog, step: int, tokens: int, elapsed: float) -> dict:
    with torch.no_grad():
        row = evaluate()
    metrics.log(step=step, tokens=tokens, elapsed_s=round(elapsed, 1),
                **{k: round(float(v), 5) for k, v in row.items() if k in LOGGED})
    if not math.isfinite(row["val_loss"]):
        raise KoGPT2Error("validation loss is not finite; lower --lr")
    return {"step": step, **{k: float(v) for k, v in row.items()}}
