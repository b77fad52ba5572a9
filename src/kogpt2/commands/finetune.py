"""``kogpt2 finetune TASK``: fine-tune a base model for a registered task (``kogpt2.finetune.task.TASKS``).

Examples (LoRA adapters by default, ``--full`` for every weight; ``--device cuda`` on a GPU)::

    kogpt2 finetune chat --data ../shared/data/chat/ChatbotData.csv --model runs/mini --out runs/chat
    kogpt2 finetune sentiment --data ../shared/data/nsmc/ratings_train.txt --model runs/mini --out runs/sent \\
        --max-examples 20000 --max-len 64 --epochs 1

Every flag is a ``FinetuneConfig`` field; a task sets its own defaults (e.g. ``--max-len``).
Fine-tuning runs in one process (the fine-tuned models are small); ``torchrun`` is not supported.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from kogpt2.config_flags import add_dataclass_flags
    from kogpt2.finetune.config import FinetuneConfig
    from kogpt2.finetune.task import TASKS, get_task

    sub = parser.add_subparsers(dest="task", metavar="{" + ",".join(TASKS) + "}", required=True)
    for name in TASKS:
        task = get_task(name)
        p = sub.add_parser(name, help=task.help, description=task.description)
        add_dataclass_flags(p, FinetuneConfig, exclude={"extra", *task.exclude}, default_notes=task.defaults)
        p.set_defaults(func=run, **task.defaults)


def run(args: argparse.Namespace) -> int:
    from kogpt2.config_flags import dataclass_kwargs, given_fields
    from kogpt2.finetune.config import FinetuneConfig
    from kogpt2.finetune.task import finetune
    from kogpt2.validate import existing_file, output_dir

    lora_flags_with_full(args)
    existing_file(args.data, "--data")
    output_dir(args.out)
    finetune(args.task, FinetuneConfig(**dataclass_kwargs(FinetuneConfig, args)), given=given_fields(args))
    return 0


def lora_flags_with_full(args: argparse.Namespace) -> None:
    """``--full`` with a LoRA flag set away from its default is an error (the flag would do nothing)."""
    from dataclasses import fields

    from kogpt2.errors import KoGPT2Error
    from kogpt2.finetune.config import FinetuneConfig
    from kogpt2.finetune.task import get_task

    if not args.full:
        return
    defaults = get_task(args.task).defaults
    given = [f"--{f.name.replace('_', '-')}" for f in fields(FinetuneConfig)
             if f.name.startswith("lora_") and hasattr(args, f.name)
             and getattr(args, f.name) != defaults.get(f.name, f.default)]
    if given:
        raise KoGPT2Error(f"{', '.join(given)} only apply to LoRA adapters and --full trains every weight; "
                          "drop them or drop --full")
