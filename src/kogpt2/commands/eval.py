"""``kogpt2 eval``: model quality numbers.

    kogpt2 eval bpc --model DIR --text ../shared/data/text/boddari_fairytales.txt
    kogpt2 eval chat --data ../shared/data/chat/ChatbotData.csv --adapter runs/chat --samples 10
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --head runs/sent
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --model runs/mini --zero-shot
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from kogpt2.devices import add_device_flags

    sub = parser.add_subparsers(dest="what", metavar="{bpc,TASK}", required=True)
    p = sub.add_parser("bpc", help="bits per character of text files under a model",
                       description="Bits per character: each document scored from </s> within the model's "
                                   "context, long documents by sliding windows (tokenizer-independent).")
    p.add_argument("--model", default=None, help="model directory (default: the bundled kogpt2-small)")
    p.add_argument("--text", nargs="+", required=True, help="text/jsonl files, directories or globs")
    p.add_argument("--n-ctx", type=int, default=None, help="window length (default: the model's positions)")
    p.add_argument("--stride", type=int, default=None, help="window step for long documents (default n_ctx/2)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-docs", type=int, default=None, help="score only the first N documents")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="fp32 (default) or bf16 on the CPU; "
                   "CUDA runs bf16 (fp16 where bf16 is missing)")
    add_device_flags(p)
    p.set_defaults(func=run_bpc)
    from kogpt2.finetune.task import TASKS, get_task

    for name in TASKS:  # one evaluation per fine-tuning task, defined by the task
        task = get_task(name)
        t = sub.add_parser(name, help=f"evaluate {task.help}")
        task.add_eval_flags(t)
        t.set_defaults(func=task.run_eval)


def run_bpc(args: argparse.Namespace) -> int:
    from kogpt2.devices import place, resolve_device, set_threads
    from kogpt2.errors import KoGPT2Error
    from kogpt2.evaluate import bits_per_char, read_documents
    from kogpt2.model import load_model
    from kogpt2.model_info import context_length
    from kogpt2.tokenizer import load_tokenizer
    from kogpt2.validate import check_numbers

    check_numbers(batch_size=(args.batch_size, ">= 1"), max_docs=(args.max_docs, ">= 1"))
    device = resolve_device(args.device)
    set_threads(args.threads)
    docs = read_documents(args.text)[: args.max_docs]  # bad text fails before the model loads
    model = place(load_model(args.model, dtype=args.dtype), device)
    tokenizer = load_tokenizer(args.model)
    max_pos = context_length(model)
    if args.n_ctx is not None and not 1 <= args.n_ctx <= max_pos:
        raise KoGPT2Error(f"--n-ctx {args.n_ctx} must be between 1 and the model's {max_pos} positions")
    if args.stride is not None and not 1 <= args.stride <= (args.n_ctx or max_pos):
        raise KoGPT2Error("--stride must be between 1 and --n-ctx")
    result = bits_per_char(model, tokenizer, docs, n_ctx=args.n_ctx, stride=args.stride,
                           batch_size=args.batch_size, progress=True)
    print(result)
    return 0
