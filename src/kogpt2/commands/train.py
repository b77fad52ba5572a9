"""``kogpt2 train``: pretrain a GPT-2 / GPT-Neo on data shards.

    kogpt2 train --data runs/data --out runs/mini --preset mini --n-ctx 256 --batch-size 16 --max-steps 20000
    kogpt2 train --data runs/data --out runs/mini --resume            # continue exactly
    torchrun --nproc_per_node 2 -m kogpt2 train --data runs/data --out runs/ddp --preset mini --grad-accum 2

Every flag is a ``kogpt2.train.TrainConfig`` field (help from its docstring), plus the model
shape overrides ``--n-layer/--n-embd/--n-head``.
"""

from __future__ import annotations

import argparse

SHAPE_FLAGS = {"n_layer": "transformer blocks", "n_embd": "hidden width", "n_head": "attention heads"}


def configure(parser: argparse.ArgumentParser) -> None:
    from kogpt2.config_flags import add_dataclass_flags, flag_name
    from kogpt2.train import TrainConfig

    add_dataclass_flags(parser, TrainConfig, exclude={"overrides"})
    for name, what in SHAPE_FLAGS.items():
        parser.add_argument(flag_name(name), type=int, default=None, help=f"{what}, overriding the preset's")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kogpt2.config_flags import dataclass_kwargs, given_fields
    from kogpt2.train import TrainConfig, train

    overrides = {k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None}
    kwargs = dataclass_kwargs(TrainConfig, args)
    kwargs.pop("overrides", None)
    train(TrainConfig(**kwargs, overrides=overrides), given=given_fields(args))
    return 0
