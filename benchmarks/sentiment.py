"""NSMC accuracy of a sentiment head vs a character n-gram TF-IDF + logistic regression baseline.

The baseline is trained in the same run on the same training reviews as the head (the
head's recorded subsample: same seed, same count) and, with ``--full-baseline``, on the whole
training file; both are scored on the same test slice as the head. Needs scikit-learn
(the ``dev`` extra).

    python benchmarks/sentiment.py                   # the shipped head, first 2,000 test reviews (quick)
    python benchmarks/sentiment.py --head runs/sent --model runs/mini --max-test 0 --full-baseline --zero-shot

Without ``--head`` the head shipped for the bundled model is used; when it (or the NSMC data in
``../shared``) is missing, the script says so and exits 0.

The last line is ``RESULT acc=... tfidf_acc=... ratio=... [zero_shot_acc=...]`` (``tfidf_acc``
from the baseline trained on the head's training reviews).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nsmc"


def tfidf_accuracy(train_texts: list[str], train_labels: list[int], test_texts: list[str],
                   test_labels: list[int]) -> float:
    """Accuracy of the character TF-IDF + logistic-regression baseline (``benchmarks/tfidf.py``)."""
    from tfidf import fit_tfidf

    return fit_tfidf(train_texts, train_labels).accuracy(test_texts, test_labels)


def head_training_reviews(head: Path, texts: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
    """The reviews the head was trained on: its recorded subsample, without its validation split."""
    from kogpt2.finetune import run_split, split_indices

    meta = json.loads((head / "kogpt2_finetune.json").read_text())
    if "val_fraction" in meta:
        tr, _ = run_split(len(texts), meta["seed"], meta["val_fraction"], meta["max_val"], meta.get("max_examples"))
    else:  # heads written before the split was recorded: sorted seeded subsample, then the same split
        n = meta["examples"] + meta["val_examples"]
        keep = sorted(random.Random(meta["seed"]).sample(range(len(texts)), n)) if n < len(texts) else range(len(texts))
        sub, _ = split_indices(len(keep), 0.5, meta["val_examples"], meta["seed"])
        tr = [keep[i] for i in sub]
    return [texts[i] for i in tr], [labels[i] for i in tr]


def skip(reason: str) -> None:
    """Nothing to measure here: say why and exit 0 (``make bench`` runs every script)."""
    print(f"skipped: {reason}")
    raise SystemExit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--head", default=None, help="sentiment head from `kogpt2 finetune sentiment` "
                    "(default: the head shipped for the bundled model)")
    ap.add_argument("--model", default=None, help="its base model (default: the head's recorded base)")
    ap.add_argument("--train", default=str(SHARED / "ratings_train.txt"))
    ap.add_argument("--test", default=str(SHARED / "ratings_test.txt"))
    ap.add_argument("--max-test", type=int, default=2000, help="score the first N test reviews (0 = all)")
    ap.add_argument("--full-baseline", action="store_true", help="also train the baseline on the whole train file")
    ap.add_argument("--zero-shot", action="store_true", help="also score the zero-shot likelihood baseline")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kogpt2.sentiment import accuracy, bundled_head_dir, load_classifier, load_zero_shot, read_nsmc

    head = Path(args.head) if args.head else bundled_head_dir()
    if not (head / "kogpt2_finetune.json").is_file():
        skip(f"no sentiment head at {head}; train one with `kogpt2 finetune sentiment` and pass --head DIR")
    for f in (args.train, args.test):
        if not Path(f).is_file():
            skip(f"NSMC data not found: {f} (give --train/--test, or put ../shared beside the checkout)")
    tr_texts, tr_labels, _ = read_nsmc(args.train)
    te_texts, te_labels, report = read_nsmc(args.test)
    te_texts, te_labels = te_texts[:args.max_test or None], te_labels[:args.max_test or None]
    print(f"test: {len(te_texts)} reviews ({report})")

    t = time.time()
    acc = accuracy(load_classifier(head, args.model), te_texts, te_labels)
    head_s = time.time() - t
    sub_texts, sub_labels = head_training_reviews(head, tr_texts, tr_labels)
    t = time.time()
    tfidf = tfidf_accuracy(sub_texts, sub_labels, te_texts, te_labels)
    print(f"head ({head}):                        accuracy {acc:.4f}  ({head_s:.0f} s to classify)")
    print(f"TF-IDF char 1-4 + LR, same {len(sub_texts)} reviews: accuracy {tfidf:.4f}  ({time.time() - t:.0f} s)"
          f"  -> head / baseline = {acc / tfidf:.3f}")
    if args.full_baseline:
        t = time.time()
        full = tfidf_accuracy(tr_texts, tr_labels, te_texts, te_labels)
        print(f"TF-IDF char 1-4 + LR, all {len(tr_texts)} reviews: accuracy {full:.4f}  ({time.time() - t:.0f} s)"
              f"  -> head / baseline = {acc / full:.3f}")
    result = f"RESULT acc={acc:.4f} tfidf_acc={tfidf:.4f} ratio={acc / tfidf:.3f}"
    if args.zero_shot:
        zs = accuracy(load_zero_shot(args.model), te_texts, te_labels)
        print(f"zero-shot likelihood baseline:            accuracy {zs:.4f}")
        result += f" zero_shot_acc={zs:.4f}"
    print("reference: SKT KoGPT2 v2 fine-tuned reports 0.891 on the full test set")
    print(result)


if __name__ == "__main__":
    main()
