"""``kogpt2 finetune``: a Korean chatbot or a sentiment classifier on top of any base model.

Examples (CPU; LoRA adapters by default, ``--full`` for every weight)::

    kogpt2 finetune chat --data ../shared/data/chat/ChatbotData.csv --model runs/mini --out runs/chat
    kogpt2 finetune sentiment --data ../shared/data/nsmc/ratings_train.txt --model runs/mini --out runs/sent \\
        --max-examples 20000 --max-len 64 --epochs 1

Fine-tuning runs on the CPU in one process (the fine-tuned models are small); GPU and
``torchrun`` launches are not supported yet.
"""

from __future__ import annotations

import argparse


def _common(p: argparse.ArgumentParser, max_len: int, batch_size: int, eval_interval: int) -> None:
    p.add_argument("--data", required=True, help="training data file")
    p.add_argument("--out", required=True, help="output directory (adapter or model, metrics.csv, loss.png)")
    p.add_argument("--model", default=None, help="base model directory (default: the bundled kogpt2-small)")
    p.add_argument("--full", action="store_true", help="fine-tune every weight instead of LoRA adapters")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3 LoRA, 1e-4 full)")
    p.add_argument("--warmup-steps", type=int, default=50)
    p.add_argument("--max-len", type=int, default=max_len, help="tokens per example at most")
    p.add_argument("--max-examples", type=int, default=None, help="train on a seeded random subset of N examples")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of the data held out for validation")
    p.add_argument("--max-val", type=int, default=2000, help="validation examples at most")
    p.add_argument("--eval-interval", type=int, default=eval_interval, help="steps between validation passes")
    p.add_argument("--patience", type=int, default=3,
                   help="stop after N validation passes without improvement (0 = never)")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank")
    p.add_argument("--lora-alpha", type=int, default=16, help="LoRA scale numerator")
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="autocast dtype")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task", metavar="{chat,sentiment}", required=True)
    c = sub.add_parser("chat", help="a chatbot from Q,A,label pairs (answer-only loss)",
                       description="Fine-tune on a Q,A,label CSV in the KoGPT2 chat format "
                                   "<usr>Q<unused1>label<sys>A</s>; the loss covers the answers only.")
    _common(c, max_len=128, batch_size=32, eval_interval=100)
    c.set_defaults(func=run)
    s = sub.add_parser("sentiment", help="a sentiment classifier from NSMC-style id/document/label lines",
                       description="GPT-2 sequence classification on the last real token, bf16 autocast, "
                                   "length-bucketed batches.")
    _common(s, max_len=64, batch_size=32, eval_interval=200)
    s.add_argument("--lora-embeddings", action=argparse.BooleanOptionalAction, default=True,
                   help="with LoRA: adapt the token embeddings too (default on: 80.5%% vs 71.1%% NSMC validation "
                        "accuracy after 20k reviews with the bundled model)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kogpt2.finetune import FinetuneConfig
    from kogpt2.validate import existing_file, output_dir

    existing_file(args.data, "--data")
    output_dir(args.out)

    names = ("data", "out", "model", "full", "epochs", "max_steps", "batch_size", "lr", "warmup_steps", "max_len",
             "max_examples", "val_fraction", "max_val", "eval_interval", "patience", "lora_r", "lora_alpha",
             "dtype", "seed", "threads")
    cfg = FinetuneConfig(**{n: getattr(args, n) for n in names},
                         lora_embeddings=getattr(args, "lora_embeddings", False))
    if args.task == "chat":
        from kogpt2.chat import finetune_chat

        finetune_chat(cfg)
    else:
        from kogpt2.sentiment import finetune_sentiment

        finetune_sentiment(cfg)
    return 0
