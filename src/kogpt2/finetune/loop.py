"""The fine-tuning loop every task shares: AdamW + warmup/cosine (``kogpt2.optim``), autocast,
validation every ``eval_interval`` steps, the best weights saved, early stopping on ``patience``.

At every validation step the loop also writes :data:`STATE_FILE` (trainable weights, optimizer,
counters, random state) atomically into the run directory; an interrupted run continues from it
(``kogpt2 finetune TASK --out DIR --resume``) and ends as the uninterrupted run would have. The
file is removed when the run finishes."""

from __future__ import annotations

import math
import os
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
STATE_FILE = "resume_state.pt"
"""The resume state of an unfinished run, in its output directory."""


def write_state(out: Path, state: dict) -> None:
    """Write the resume state atomically (a temporary file renamed over the old one)."""
    tmp = out / f".{STATE_FILE}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out / STATE_FILE)


def read_state(out: Path) -> dict:
    """The resume state of the unfinished run in ``out`` (a ``KoGPT2Error`` when there is none)."""
    path = out / STATE_FILE
    if not path.is_file():
        raise KoGPT2Error(f"--resume: {out} holds no unfinished fine-tuning run (no {STATE_FILE}: the run "
                          "finished, or was stopped before its first validation step); start a new --out")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise KoGPT2Error(f"--resume: cannot read {path} ({type(e).__name__}); start a new --out") from None


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
        evaluate: Callable[[], dict], save: Callable[[], None], cfg: FinetuneConfig, out: Path,
        state: dict | None = None) -> FitResult:
    """Train ``model`` with early stopping on validation loss; ``save()`` runs at every new best.

    Args:
        model: the module to train (its trainable parameters only are optimised), on its device.
        loss_fn: ``loss_fn(model, batch) -> (mean loss, tokens in the batch)``.
        batches: ``batches(epoch) -> list of batches`` (the same list for the same epoch).
        evaluate: validation pass returning at least ``val_loss`` (and ``val_bpc`` / ``val_acc``).
        save: writes the current weights as the run's result.
        cfg: hyper-parameters (``lr``, schedule, ``eval_interval``, ``patience``, ...).
        out: run directory for ``metrics.csv``, ``loss.png`` and the resume state.
        state: a resume state (:func:`read_state`) to continue from, or None for a new run.
    """
    from tqdm import tqdm

    total = cfg.max_steps or cfg.epochs * len(batches(0))
    warmup = min(cfg.warmup_steps, max(1, total // 10))
    min_lr = cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10
    opt = adamw(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    device = next(model.parameters()).device
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if state is None:
        metrics = MetricsLog(out)
        first = _log_eval(evaluate, metrics, 0, 0, 0.0)
        best, best_step, bad, history = first["val_loss"], 0, 0, [first]
        save()
        step, tokens, epoch, done_in_epoch, spent = 0, 0, 0, 0, 0.0
    else:
        loaded = model.load_state_dict(state["trainable"], strict=False)
        if loaded.unexpected_keys or set(state["trainable"]) != set(trainable):
            raise KoGPT2Error(f"--resume: the saved state does not fit this model ({len(loaded.unexpected_keys)} "
                              "unknown weights); resume with the same --model and settings, or start a new --out")
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        metrics = MetricsLog(out, resume_step=state["step"])
        first, history = state["history"][0], state["history"]
        best, best_step, bad = state["best"], state["best_step"], state["bad"]
        step, tokens, epoch, done_in_epoch, spent = (state["step"], state["tokens"], state["epoch"],
                                                     state["done_in_epoch"], state["elapsed_s"])
        print(f"resuming at step {step} of {total} (best validation loss {best:.4f} at step {best_step})")
    t0, stopped = time.time() - spent, False
    bar = tqdm(total=total, initial=step, desc="finetune", disable=not cfg.progress, dynamic_ncols=True)
    model.train()
    while step < total and not stopped:
        for i, batch in enumerate(batches(epoch)):
            if i < done_in_epoch:  # a resumed run skips what it already trained on in this epoch
                continue
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
                if step < total and not stopped:
                    params = dict(model.named_parameters())
                    write_state(out, {"step": step, "tokens": tokens, "epoch": epoch, "done_in_epoch": i + 1,
                                      "best": best, "best_step": best_step, "bad": bad, "history": history,
                                      "elapsed_s": time.time() - t0, "rng": torch.get_rng_state(),
                                      "optimizer": opt.state_dict(), "config": asdict(cfg),
                                      "trainable": {n: params[n].detach().cpu() for n in trainable}})
            if step >= total or stopped:
                break
        epoch += 1
        done_in_epoch = 0
    bar.close()
    model.eval()
    metrics.plot()
    metrics.close()
    (out / STATE_FILE).unlink(missing_ok=True)
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
