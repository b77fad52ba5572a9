"""Fine-tuning data plumbing shared by every task: read reports, the seeded split, length-bucketed
batches, right padding, autocast."""

from __future__ import annotations

import random
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch

from kogpt2.errors import KoGPT2Error


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


def run_split(n: int, seed: int, val_fraction: float, max_val: int,
              max_examples: int | None = None) -> tuple[list[int], list[int]]:
    """The (train, validation) indices of a fine-tuning run over ``n`` examples.

    A seeded subset of ``max_examples`` is drawn first (when smaller than ``n``), then split by
    :func:`split_indices`. Evaluation re-derives a run's split from these recorded numbers.
    """
    keep = list(range(n))
    if max_examples and max_examples < n:
        keep = sorted(random.Random(seed).sample(range(n), max_examples))
    tr, va = split_indices(len(keep), val_fraction, max_val, seed)
    return [keep[i] for i in tr], [keep[i] for i in va]


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


def iter_chunks(items: Sequence, n: int) -> Iterator[Sequence]:
    """Consecutive slices of ``n`` items."""
    for i in range(0, len(items), n):
        yield items[i:i + n]


def autocast_ctx(dtype: str, device: torch.device | str = "cpu"):
    """bf16 autocast (AMX on recent CPUs, tensor cores on GPUs) or a no-op for fp32."""
    dev = torch.device(device).type
    return torch.autocast(dev, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()
