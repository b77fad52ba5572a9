"""``kogpt2 data prepare|inspect``: tokenized training shards from a Korean corpus.

Examples::

    kogpt2 data prepare ../shared/data/text --tokenizer runs/tok16k --out runs/data16k
    kogpt2 data prepare 'corpus/**/*.jsonl.gz' --text-field body --clean --near-dedup \\
        --exclude-file blacklist.txt --min-chars 200 --tokenizer runs/tok16k --out runs/data
    kogpt2 data inspect runs/data16k --n 3
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="{prepare,inspect}", required=True)
    p = sub.add_parser("prepare", help="clean, dedup, split and tokenize a corpus into shards",
                       description="Clean, deduplicate, split and tokenize text into uint16 shards "
                                   "with a meta.json. A re-run into the same --out skips finished shards.")
    p.add_argument("inputs", nargs="+", help="files, directories or globs (.txt, .jsonl, optionally .gz)")
    p.add_argument("--tokenizer", required=True, help="tokenizer (or model) directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--val-fraction", type=float, default=0.005, help="share of documents in val (default 0.005)")
    p.add_argument("--seed", type=int, default=1234, help="key of the train/val split hash")
    p.add_argument("--workers", type=int, default=2, help="tokenizing processes (0 = in this process)")
    p.add_argument("--dedup", choices=("paragraph", "document", "none"), default="paragraph",
                   help="exact dedup: repeated paragraphs and documents (default), documents only, or none")
    p.add_argument("--clean", action="store_true", help="strip wiki/namuwiki markup and HTML remnants")
    p.add_argument("--near-dedup", action="store_true",
                   help="drop near-duplicate documents with MinHash (needs the near-dedup extra)")
    p.add_argument("--near-dedup-threshold", type=float, default=0.8, help="Jaccard threshold (default 0.8)")
    p.add_argument("--exclude", action="append", default=[], metavar="RULE",
                   help="drop documents matching RULE: 'title:T', 'regex:R' or a phrase (repeatable)")
    p.add_argument("--exclude-file", action="append", default=[], metavar="FILE",
                   help="file of exclude rules, one per line (repeatable)")
    p.add_argument("--min-chars", type=int, default=0, help="drop documents shorter than this")
    p.add_argument("--text-field", default="text", help="JSON field of the text in .jsonl inputs")
    p.add_argument("--shard-chars", type=int, default=4_000_000, help="characters of text per shard")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or warnings")
    p.set_defaults(func=_prepare)

    i = sub.add_parser("inspect", help="print a data directory's counts and decode random samples",
                       description="Print the counts of a prepared data directory and decode random documents.")
    i.add_argument("data_dir", help="directory written by `kogpt2 data prepare`")
    i.add_argument("--n", type=int, default=3, help="random documents to decode (default 3)")
    i.add_argument("--split", choices=("train", "val"), default="train", help="split to sample from")
    i.add_argument("--max-chars", type=int, default=400, help="characters shown per sample")
    i.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")
    i.set_defaults(func=_inspect)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _prepare(args: argparse.Namespace) -> int:
    from kogpt2.data import prepare, summary
    from kogpt2.data_clean import read_exclude_file
    from kogpt2.validate import output_dir

    output_dir(args.out)

    rules = list(args.exclude)
    for f in args.exclude_file:
        rules.extend(read_exclude_file(f))
    meta = prepare(args.inputs, args.tokenizer, args.out, val_fraction=args.val_fraction, seed=args.seed,
                   workers=args.workers, dedup=args.dedup, clean=args.clean, near_dedup=args.near_dedup,
                   near_dedup_threshold=args.near_dedup_threshold, exclude=rules, min_chars=args.min_chars,
                   text_field=args.text_field, shard_chars=args.shard_chars, progress=not args.no_progress)
    print(summary(meta))
    print(f"wrote {args.out}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from kogpt2.data import inspect

    from kogpt2.validate import check_numbers

    check_numbers(n=(args.n, ">= 0"), max_chars=(args.max_chars, ">= 1"))
    print(inspect(args.data_dir, n=args.n, split=args.split, max_chars=args.max_chars, seed=args.seed))
    return 0
