"""The optimizer and learning-rate schedule of pretraining and fine-tuning, from plain numbers.

    opt = adamw(model, lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95))
    for step in range(max_steps):
        set_lr(opt, cosine_lr(step, lr=6e-4, min_lr=6e-5, warmup_steps=100, max_steps=max_steps))
"""

from __future__ import annotations

import math

import torch

__all__ = ["adamw", "cosine_lr", "set_lr"]


def adamw(model: torch.nn.Module, lr: float, weight_decay: float = 0.0,
          betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on matrices only, fused kernel where available."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device or dtype
        return torch.optim.AdamW(groups, lr=lr, betas=betas)


def cosine_lr(step: int, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Linear warmup to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for g in optimizer.param_groups:
        g["lr"] = lr
