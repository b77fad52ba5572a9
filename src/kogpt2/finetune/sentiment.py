"""The ``sentiment`` fine-tuning task: GPT-2 sequence classification on NSMC-style reviews.

    kogpt2 finetune sentiment --data ../shared/data/nsmc/ratings_train.txt --model runs/mini --out runs/sent
    kogpt2 eval sentiment --data ../shared/data/nsmc/ratings_test.txt --head runs/sent

The reader, the pooling and the classifier loading live in ``kogpt2.sentiment``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from kogpt2.finetune.batching import pad_right
from kogpt2.finetune.task import Task
from kogpt2.sentiment import LABELS, classifier_from_base, cls_logits, encode_text, read_nsmc


class SentimentTask(Task):
    """A positive/negative classifier from ``id<TAB>document<TAB>label`` lines (NSMC)."""

    name = "sentiment"
    help = "a sentiment classifier from NSMC-style id/document/label lines"
    description = ("GPT-2 sequence classification on the last real token of </s> review </s>, bf16 autocast, "
                   "length-bucketed batches.")
    # NOTE: lora_embeddings on: 80.5% vs 71.1% NSMC validation accuracy after 20k reviews with the bundled model
    defaults = {"max_len": 64, "eval_interval": 200, "lora_embeddings": True}
    peft_task_type = "SEQ_CLS"

    def read(self, path: str) -> tuple[list[tuple[str, int]], Any]:
        texts, labels, report = read_nsmc(path)
        return list(zip(texts, labels)), report

    def load_model(self, base: Path):
        return classifier_from_base(base, len(LABELS))

    def encode(self, example: tuple[str, int], tokenizer, cfg) -> tuple[list[int], int]:
        return encode_text(tokenizer, example[0], cfg.max_len), example[1]

    def length(self, encoded) -> int:
        return len(encoded[0])

    def collate(self, encoded: list, tokenizer) -> dict[str, torch.Tensor]:
        ids, mask = pad_right([e[0] for e in encoded], tokenizer.pad_token_id)
        return {"ids": ids, "mask": mask, "labels": torch.tensor([e[1] for e in encoded])}

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        logits = cls_logits(model, batch["ids"], batch["mask"])  # (B, L)
        return F.cross_entropy(logits, batch["labels"]), int(batch["mask"].sum())

    def evaluate(self, model, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        loss, correct, n = 0.0, 0, 0
        for b in batches:
            logits = cls_logits(model, b["ids"], b["mask"])
            loss += float(F.cross_entropy(logits, b["labels"], reduction="sum"))
            correct += int((logits.argmax(-1) == b["labels"]).sum())
            n += len(b["labels"])
        return {"val_loss": loss / n, "val_acc": correct / n}

    def record(self, examples: list, encoded: list, tokenizer) -> dict[str, Any]:
        return {"labels": list(LABELS), "pooling": "last non-pad token of </s> text </s>"}

    def summary(self, result) -> str:
        return f"accuracy {result.best['val_acc']:.4f} (loss {result.best_val_loss:.4f})"

    def add_eval_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.description = "Accuracy of a sentiment head, or of the zero-shot likelihood baseline."
        parser.add_argument("--data", required=True, help="id<TAB>document<TAB>label file, e.g. ratings_test.txt")
        parser.add_argument("--head", default=None, help="sentiment head directory (default: the bundled one)")
        parser.add_argument("--model", default=None, help="base model (LoRA head) or language model (--zero-shot)")
        parser.add_argument("--zero-shot", action="store_true", help="evaluate the zero-shot likelihood baseline")
        parser.add_argument("--max-examples", type=int, default=None, help="score only the first N reviews")
        from kogpt2.devices import add_device_flags

        add_device_flags(parser)

    def run_eval(self, args: argparse.Namespace) -> int:
        from kogpt2.errors import KoGPT2Error
        from kogpt2.sentiment import evaluate_sentiment

        if args.zero_shot and args.head:
            raise KoGPT2Error("--zero-shot uses no head; drop --head")
        from kogpt2.validate import check_numbers

        from kogpt2.devices import resolve_device, set_threads

        check_numbers(max_examples=(args.max_examples, ">= 1"), threads=(args.threads, ">= 1"))
        set_threads(args.threads)
        r = evaluate_sentiment(args.data, args.head, args.model, args.zero_shot, args.max_examples,
                               device=resolve_device(args.device))
        print(r["report"])
        print(f"accuracy {r['accuracy']:.4f} on {r['examples']} reviews ({r['method']})")
        return 0
