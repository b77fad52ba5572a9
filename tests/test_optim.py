"""AdamW and the warmup + cosine schedule shared by pretraining and fine-tuning."""

from __future__ import annotations

import pytest
import torch

from kogpt2.optim import adamw, cosine_lr, set_lr


def test_schedule_warms_up_linearly_then_decays_to_the_floor():
    lr = lambda s: cosine_lr(s, lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)  # noqa: E731
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0)
    assert lr(10) == pytest.approx(1.0) and lr(60) == pytest.approx(0.55) and lr(110) == pytest.approx(0.1)
    assert lr(500) == pytest.approx(0.1)  # past the end: stays at the floor
    assert all(lr(s) >= lr(s + 1) for s in range(10, 110))


def test_weight_decay_applies_to_matrices_and_only_trainable_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    model[1].weight.requires_grad_(False)
    opt = adamw(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and [p.shape for p in decay["params"]] == [(4, 4)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 2  # the two biases
    assert decay["betas"] == (0.9, 0.95)
    set_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
