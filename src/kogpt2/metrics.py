"""Run metrics for pretraining and fine-tuning: ``metrics.csv``, TensorBoard if installed, ``loss.png``.

One CSV schema covers both (empty cells where a run has no value), so one plot function draws
any run: training loss on the left, the validation metrics it logged (bits/char, accuracy)
on the right.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["FIELDS", "MetricsLog", "plot_metrics"]

FIELDS = ["step", "tokens", "loss", "lr", "tok_s", "mfu", "val_loss", "val_bpc", "val_acc", "elapsed_s"]
VAL_PLOTS = {"val_bpc": "bits per character", "val_acc": "accuracy"}


class MetricsLog:
    """``metrics.csv`` (appended, so resumed runs continue it), TensorBoard if installed, and a PNG plot.

    ``resume_step``: the step of the checkpoint a run resumes from. Rows an interrupted run logged after that
    checkpoint are dropped first (the resumed run logs those steps again), so every step appears once.
    """

    def __init__(self, out: Path, resume_step: int | None = None):
        self.path = Path(out) / "metrics.csv"
        self.png = Path(out) / "loss.png"
        if resume_step is not None and self.path.exists():
            self.truncate_after(resume_step)
        new = not self.path.exists()
        self.f = open(self.path, "a", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            self.w.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(out) / "tb"))
        except Exception:  # noqa: BLE001 - tensorboard is optional
            self.tb = None

    def truncate_after(self, step: int) -> None:
        """Drop the rows logged after ``step``."""
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if r.get("step") and int(r["step"]) <= step]
        if len(keep) == len(rows):
            return
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(keep)
        os.replace(tmp, self.path)
        print(f"metrics.csv: dropped {len(rows) - len(keep)} row(s) logged after step {step} by the interrupted run")

    def log(self, **row) -> None:
        """Append one row (fields not in :data:`FIELDS` are an error)."""
        unknown = set(row) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; add them to kogpt2.metrics.FIELDS")
        self.w.writerow({k: row.get(k, "") for k in FIELDS})
        self.f.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])

    def plot(self) -> None:
        plot_metrics(self.path, self.png)

    def close(self) -> None:
        self.f.close()
        if self.tb is not None:
            self.tb.close()


def plot_metrics(csv_path: Path, png: Path) -> None:
    """Training loss, and each validation metric the run logged, against tokens seen (else steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_tokens = any(r.get("tokens") not in (None, "", "0") for r in rows)
    x_key, x_label = ("tokens", "tokens seen") if by_tokens else ("step", "step")
    curves = {k: [(float(r[x_key]), float(r[k])) for r in rows if r.get(k)] for k in ["loss", *VAL_PLOTS]}
    val = [k for k in VAL_PLOTS if curves[k]]
    fig, ax = plt.subplots(1, 1 + len(val), figsize=(5 * (1 + len(val)), 4), squeeze=False)
    ax = ax[0]
    if curves["loss"]:
        ax[0].plot(*zip(*curves["loss"]), lw=0.8)
    ax[0].set(xlabel=x_label, ylabel="train loss (nats)", title="training loss")
    for a, k in zip(ax[1:], val):
        a.plot(*zip(*curves[k]), marker="o")
        a.set(xlabel=x_label, ylabel=VAL_PLOTS[k], title=f"validation {VAL_PLOTS[k]}")
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(png).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)
