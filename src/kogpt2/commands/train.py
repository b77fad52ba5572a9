"""``kogpt2 train``: pretrain a GPT-2 / GPT-Neo on data shards.

    kogpt2 train --data runs/data --out runs/mini --preset mini --n-ctx 256 --batch-size 16 --max-steps 20000
    kogpt2 train --data runs/data --out runs/mini --resume            # continue exactly
    kogpt2 train --data runs/data --out runs/mini --resume-from step_0000500   # from an older checkpoint
    torchrun --nproc_per_node 2 -m kogpt2 train --data runs/data --out runs/ddp --preset mini --grad-accum 2
"""

from __future__ import annotations

import argparse
import dataclasses

HELP = {
    "data": "shards directory from `kogpt2 data prepare`",
    "out": "run directory for checkpoints (step_*), metrics.csv and loss.png",
    "preset": "model preset: mini, small, base, medium, large, xl, 2.7b, gpt3-mini, gpt3-base, ...",
    "n_ctx": "training context length (<= the preset's positions; e.g. 384, 1024, 2048)",
    "batch_size": "sequences per micro-batch per process",
    "grad_accum": "micro-batches per optimizer step, over all processes (must divide by WORLD_SIZE)",
    "max_steps": "optimizer steps in total (a resumed run continues to this number)",
    "lr": "peak learning rate", "min_lr": "cosine floor (default lr/10)", "warmup_steps": "linear warmup steps",
    "dtype": "autocast dtype: bf16 (AMX on CPU), fp16 (GPU) or fp32",
    "compile": "torch.compile the model (faster after a one-off compile)",
    "grad_checkpointing": "activation checkpointing (less memory, ~30%% slower)",
    "fsdp": "shard parameters with FSDP2 (for presets that do not fit one device)",
    "loss_chunk": "tokens per chunk of LM head + cross-entropy, recomputed in backward (0 = all at once; "
                  "e.g. 4096: no (B, T, vocab) logits in memory, so larger batches fit)",
    "device": "auto, cpu or cuda", "seed": "random seed (data order, init, dropout)",
    "eval_interval": "steps between validation loss / bits-per-char evaluations (0 = no evaluation)",
    "eval_tokens": "validation tokens per evaluation",
    "sample_interval": "steps between sample generations (0 = never)",
    "save_interval": "steps between checkpoints", "keep": "checkpoints to keep",
    "resume": "continue from the newest checkpoint in --out",
    "resume_from": "continue from this checkpoint: a path, a step_* name in --out, or a step number",
    "init_from": "initialise from another model directory (remaps vocabulary, grows context)",
    "threads": "torch CPU threads (default: all cores)",
    "peak_flops": "peak FLOP/s for the MFU estimate",
}


def configure(parser: argparse.ArgumentParser) -> None:
    from kogpt2.train import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        if f.name == "overrides":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=HELP.get(f.name, ""))
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0].replace("'", ""), None)
            if kind is None:
                kind = float if isinstance(default, float) or "float" in str(f.type) else (
                    int if isinstance(default, int) or "int" in str(f.type) else str)
            parser.add_argument(flag, type=kind, default=default,
                                help=HELP.get(f.name, "") + (f" (default: {default})" if default not in (None, "") else ""))
    for name, what in (("n_layer", "transformer blocks"), ("n_embd", "hidden width"), ("n_head", "attention heads")):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                            help=f"{what}, overriding the preset's")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kogpt2.train import TrainConfig, train

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"overrides"}
    overrides = {k: getattr(args, k) for k in ("n_layer", "n_embd", "n_head") if getattr(args, k, None) is not None}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields}, overrides=overrides)
    train(cfg)
    return 0
