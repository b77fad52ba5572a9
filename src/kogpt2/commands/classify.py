"""``kogpt2 classify``: sentiment (positive / negative) of Korean text.

Examples::

    kogpt2 classify "정말 재미있는 영화였다"                 # bundled sentiment head
    kogpt2 classify "시간 아깝다" "배우 연기 최고" --head runs/sent
    kogpt2 classify --file reviews.txt --head runs/sent     # one text per line
    cut -f2 reviews.tsv | kogpt2 classify                   # no texts: stdin's lines (or --file -)
    kogpt2 classify "정말 재미있는 영화였다" --model runs/mini --zero-shot

Prints one line per text: ``label<TAB>probability<TAB>text``.
"""

from __future__ import annotations

import argparse

from kogpt2.errors import KoGPT2Error
from kogpt2.textio import piped_lines, read_text_lines


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", help="texts to classify (none: the lines of piped stdin)")
    parser.add_argument("--file", default=None, help="a file with one text per line (- for stdin)")
    parser.add_argument("--head", default=None,
                        help="sentiment head from `kogpt2 finetune sentiment` (default: the bundled one)")
    parser.add_argument("--model", default=None,
                        help="base model under a LoRA head (default: the head's recorded base, else bundled); "
                             "with --zero-shot, the language model")
    parser.add_argument("--zero-shot", action="store_true",
                        help="no head: compare the likelihood of positive and negative continuations")
    from kogpt2.devices import add_device_flags

    add_device_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kogpt2.devices import place, resolve_device, set_threads

    from kogpt2.sentiment import load_classifier, load_zero_shot

    device = resolve_device(args.device)
    set_threads(args.threads)

    if args.zero_shot and args.head:
        raise KoGPT2Error("--zero-shot uses no head; drop --head")
    texts = list(args.texts)
    if args.file:
        texts += read_text_lines(args.file, "--file", strip=True)
    elif not texts:
        texts = piped_lines(strip=True)
    if not texts or any(not t.strip() for t in texts):
        raise KoGPT2Error('give non-empty texts to classify, e.g. kogpt2 classify "정말 재미있는 영화였다" '
                          "(or --file F with one text per line, or pipe them on stdin)")
    clf = load_zero_shot(args.model) if args.zero_shot else load_classifier(args.head, args.model)
    if args.zero_shot:
        clf.lm = place(clf.lm, device)
    else:
        clf.model = place(clf.model, device)
    for text, (label, prob) in zip(texts, clf.classify(texts)):
        print(f"{label}\t{prob:.4f}\t{text}")
    return 0
