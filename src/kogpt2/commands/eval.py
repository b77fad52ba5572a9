"""``kogpt2 eval``: model quality numbers.

    kogpt2 eval bpc --model DIR --text ../shared/data/text/boddari_fairytales.txt
    kogpt2 eval chat --data ../shared/data/chat/ChatbotData.csv --adapter runs/chat --samples 10
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --head runs/sent
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --model runs/mini --zero-shot
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="{bpc,chat,sentiment}", required=True)
    p = sub.add_parser("bpc", help="bits per character of text files under a model",
                       description="Bits per character: each document scored from </s> within the model's "
                                   "context, long documents by sliding windows (tokenizer-independent).")
    p.add_argument("--model", default=None, help="model directory (default: the bundled kogpt2-small)")
    p.add_argument("--text", nargs="+", required=True, help="text/jsonl files, directories or globs")
    p.add_argument("--n-ctx", type=int, default=None, help="window length (default: the model's positions)")
    p.add_argument("--stride", type=int, default=None, help="window step for long documents (default n_ctx/2)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-docs", type=int, default=None, help="score only the first N documents")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.set_defaults(func=run_bpc)
    c = sub.add_parser("chat", help="answer bits/char of a chat fine-tune vs its base model",
                       description="Answer bits per character on the validation pairs held out by the "
                                   "fine-tuning run (its recorded split), for the base and the fine-tuned model.")
    c.add_argument("--data", required=True, help="Q,A,label CSV (the one the adapter was trained on)")
    c.add_argument("--model", default=None, help="base model directory (default: the adapter's recorded base)")
    c.add_argument("--adapter", default=None, help="`kogpt2 finetune chat` output (omit to score the base only)")
    c.add_argument("--max-pairs", type=int, default=None, help="score only the first N validation pairs")
    c.add_argument("--samples", type=int, default=0, help="also print N sample answers to validation questions")
    c.add_argument("--seed", type=int, default=0, help="seed of the sample answers")
    c.set_defaults(func=run_chat)
    s = sub.add_parser("sentiment", help="sentiment accuracy on an NSMC-style file",
                       description="Accuracy of a sentiment head, or of the zero-shot likelihood baseline.")
    s.add_argument("--data", required=True, help="id<TAB>document<TAB>label file, e.g. ratings_test.txt")
    s.add_argument("--head", default=None, help="sentiment head directory (default: the bundled one)")
    s.add_argument("--model", default=None, help="base model (LoRA head) or language model (--zero-shot)")
    s.add_argument("--zero-shot", action="store_true", help="evaluate the zero-shot likelihood baseline")
    s.add_argument("--max-examples", type=int, default=None, help="score only the first N reviews")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    s.set_defaults(func=run_sentiment)


def run_bpc(args: argparse.Namespace) -> int:
    from kogpt2.errors import KoGPT2Error
    from kogpt2.evaluate import bits_per_char, read_documents
    from kogpt2.model import load_model
    from kogpt2.tokenizer import load_tokenizer

    from kogpt2.validate import check_numbers

    check_numbers(batch_size=(args.batch_size, ">= 1"), max_docs=(args.max_docs, ">= 1"))
    model = load_model(args.model, dtype=args.dtype)
    tokenizer = load_tokenizer(args.model)
    max_pos = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    if args.n_ctx is not None and not 1 <= args.n_ctx <= max_pos:
        raise KoGPT2Error(f"--n-ctx {args.n_ctx} must be between 1 and the model's {max_pos} positions")
    if args.stride is not None and not 1 <= args.stride <= (args.n_ctx or max_pos):
        raise KoGPT2Error("--stride must be between 1 and --n-ctx")
    docs = read_documents(args.text)[: args.max_docs]
    result = bits_per_char(model, tokenizer, docs, n_ctx=args.n_ctx, stride=args.stride,
                           batch_size=args.batch_size, progress=True)
    print(result)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from kogpt2.chat import evaluate_chat
    from kogpt2.validate import check_numbers

    check_numbers(max_pairs=(args.max_pairs, ">= 1"), samples=(args.samples, ">= 0"))

    r = evaluate_chat(args.data, args.model, args.adapter, args.max_pairs, args.samples, args.seed)
    print(f"answer bits/char on {r['pairs']} validation pairs: base {r['base_bpc']:.4f}", end="")
    if r["finetuned_bpc"] is not None:
        print(f", fine-tuned {r['finetuned_bpc']:.4f} ({r['finetuned_bpc'] / r['base_bpc']:.3f}x)")
    else:
        print()
    for q, label, ref, answer in r["samples"]:
        print(f"Q [{label}] {q}\n  reference: {ref}\n  model:     {' '.join(answer.split())}")
    return 0


def run_sentiment(args: argparse.Namespace) -> int:
    import torch

    from kogpt2.errors import KoGPT2Error
    from kogpt2.sentiment import evaluate_sentiment

    if args.zero_shot and args.head:
        raise KoGPT2Error("--zero-shot uses no head; drop --head")
    from kogpt2.validate import check_numbers

    check_numbers(max_examples=(args.max_examples, ">= 1"), threads=(args.threads, ">= 1"))
    if args.threads:
        torch.set_num_threads(args.threads)
    r = evaluate_sentiment(args.data, args.head, args.model, args.zero_shot, args.max_examples)
    print(r["report"])
    print(f"accuracy {r['accuracy']:.4f} on {r['examples']} reviews ({r['method']})")
    return 0
