"""``kogpt2 tokenizer train|encode|info``: train, run and describe Korean tokenizers.

Examples::

    kogpt2 tokenizer train ../shared/data/text --out runs/tok --vocab-size 51200
    kogpt2 tokenizer encode "나는 어두운 숲 속을 거닐고 있다." --tokenizer runs/tok --tokens
    kogpt2 tokenizer encode --file notes.txt --tokenizer ../shared/anchors/skt_kogpt2_base_v2
    kogpt2 tokenizer info --tokenizer runs/tok
"""

from __future__ import annotations

import argparse
import sys

from kogpt2.errors import KoGPT2Error


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``encode`` and ``info`` sub-subcommands."""
    sub = parser.add_subparsers(dest="action", metavar="{train,encode,info}", required=True)

    p = sub.add_parser("train", help="train a character-level BPE tokenizer (byte fallback) by streaming",
                       description="Train a Korean tokenizer from corpus files, directories or globs, read as "
                                   "`kogpt2 data prepare` reads them (.txt: one paragraph per line, "
                                   "<|endoftext|> lines skipped; .jsonl: a text field; gzipped or not).")
    p.add_argument("files", nargs="+", help="corpus files (.txt, .jsonl, .gz), directories or globs")
    p.add_argument("--out", required=True, help="output directory (a Hugging Face tokenizer directory)")
    p.add_argument("--vocab-size", type=int, default=51200, help="vocabulary size incl. specials and bytes")
    p.add_argument("--limit-alphabet", type=int, default=3000,
                   help="most frequent characters kept as symbols; rarer ones fall back to bytes")
    p.add_argument("--min-frequency", type=int, default=2, help="minimum pair count for a merge")
    p.set_defaults(func=_train)

    p = sub.add_parser("encode", help="encode text (argument, --file, or stdin) and print ids or tokens")
    p.add_argument("text", nargs="?", help="text to encode (default: --file, else stdin)")
    p.add_argument("--tokenizer", required=True, help="tokenizer or model directory")
    p.add_argument("--file", help="encode the contents of this UTF-8 file")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--ids", action="store_true", help="print token ids (the default)")
    shown.add_argument("--tokens", action="store_true", help="print token strings")
    p.set_defaults(func=_encode)

    p = sub.add_parser("info", help="print vocabulary size, special tokens, hash, layout, normaliser")
    p.add_argument("--tokenizer", required=True, help="tokenizer or model directory")
    p.set_defaults(func=_info)


def _train(args: argparse.Namespace) -> int:
    from kogpt2.tokenizer import train_tokenizer, tokenizer_hash
    from kogpt2.validate import check_numbers, output_dir

    output_dir(args.out)
    check_numbers(limit_alphabet=(args.limit_alphabet, ">= 0"), min_frequency=(args.min_frequency, ">= 1"))

    tok = train_tokenizer(args.files, vocab_size=args.vocab_size, limit_alphabet=args.limit_alphabet,
                          min_frequency=args.min_frequency, out_dir=args.out)
    print(f"saved {len(tok)}-token tokenizer to {args.out} (hash {tokenizer_hash(tok)})")
    if len(tok) > args.vocab_size:
        print(f"note: {len(tok)} tokens, above --vocab-size {args.vocab_size}: the text's characters alone fill it "
              f"(--limit-alphabet {args.limit_alphabet} keeps that many); lower --limit-alphabet or raise "
              "--vocab-size", file=sys.stderr)
    elif len(tok) < args.vocab_size:
        print(f"note: {len(tok)} tokens, below --vocab-size {args.vocab_size}: the text has no more pairs seen "
              f"--min-frequency {args.min_frequency} times; give more text or a smaller --vocab-size",
              file=sys.stderr)
    return 0


def _read_input(args: argparse.Namespace) -> str:
    if args.text is not None and args.file is not None:
        raise KoGPT2Error("give either TEXT or --file, not both")
    if args.text is not None:
        return args.text
    if args.file is not None:
        from kogpt2.textio import read_text

        return read_text(args.file, "--file")
    if sys.stdin.isatty():
        raise KoGPT2Error("nothing to encode: give TEXT, --file, or pipe text on stdin")
    return sys.stdin.read()


def _encode(args: argparse.Namespace) -> int:
    from kogpt2.tokenizer import load_tokenizer

    text = _read_input(args)
    tok = load_tokenizer(args.tokenizer)
    ids = tok.encode(text)
    if args.tokens:
        print(" ".join(repr(t) for t in tok.convert_ids_to_tokens(ids)))
    else:
        print(" ".join(map(str, ids)))
    return 0


def _info(args: argparse.Namespace) -> int:
    from kogpt2.tokenizer import describe_tokenizer

    for key, value in describe_tokenizer(args.tokenizer).items():
        print(f"{key}: {value}")
    return 0
