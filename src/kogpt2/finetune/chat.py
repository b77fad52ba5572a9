"""The ``chat`` fine-tuning task: Q/A pairs in the KoGPT2 chat format, loss on the answers only.

    kogpt2 finetune chat --data ../shared/data/chat/ChatbotData.csv --model runs/mini --out runs/chat
    kogpt2 eval chat --data ../shared/data/chat/ChatbotData.csv --adapter runs/chat --samples 10

The format, the data reader and the chat session live in ``kogpt2.chat``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Iterable

import torch

from kogpt2.chat import (CHAT_DEFAULTS, EOS, LN2, SENT, SYS, USR, ChatPair, answer_nll, batch_of,
                         encode_pair, read_chat_csv)
from kogpt2.finetune.task import Task


class ChatTask(Task):
    """A chatbot from ``Q,A,label`` pairs (ChatbotData.csv)."""

    name = "chat"
    help = "a chatbot from Q,A,label pairs (answer-only loss)"
    description = ("Fine-tune on a Q,A,label CSV in the KoGPT2 chat format <usr>Q<unused1>label<sys>A</s>; "
                   "the loss covers the answers only.")
    defaults = {"max_len": 128, "eval_interval": 100}
    exclude = frozenset({"lora_embeddings"})  # the LM's embeddings are tied to its output layer

    def read(self, path: str) -> tuple[list[ChatPair], Any]:
        return read_chat_csv(path)

    def load_model(self, base: Path):
        from kogpt2.model import load_model

        return load_model(base)

    def encode(self, example: ChatPair, tokenizer, cfg) -> tuple[list[int], list[int], int]:
        ids, labels = encode_pair(tokenizer, example.question, example.answer, example.label, cfg.max_len)
        return ids, labels, len(example.answer)

    def length(self, encoded) -> int:
        return len(encoded[0])

    def collate(self, encoded: list, tokenizer) -> dict[str, torch.Tensor]:
        ids, mask, labels = batch_of([(e[0], e[1]) for e in encoded], tokenizer.pad_token_id)
        return {"ids": ids, "mask": mask, "labels": labels, "chars": torch.tensor([e[2] for e in encoded])}

    def loss(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        nll, n = answer_nll(model, batch["ids"], batch["mask"], batch["labels"])
        return nll / max(1, n), int(batch["mask"].sum())

    def evaluate(self, model, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        nll, n_tok, chars = 0.0, 0, 0
        for b in batches:
            s, n = answer_nll(model, b["ids"], b["mask"], b["labels"])
            nll, n_tok, chars = nll + float(s), n_tok + n, chars + int(b["chars"].sum())
        return {"val_loss": nll / max(1, n_tok), "val_bpc": nll / LN2 / max(1, chars)}

    def record(self, examples: list, encoded: list, tokenizer) -> dict[str, Any]:
        truncated = sum(1 for ids, _, _ in encoded if ids[-1] != tokenizer.eos_token_id)
        return {"format": f"{USR}{{Q}}{SENT}{{label}}{SYS}{{A}}{EOS}", "truncated": truncated}

    def save_full(self, model, tokenizer, out: Path) -> None:
        from transformers import GenerationConfig

        super().save_full(model, tokenizer, out)
        GenerationConfig(do_sample=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **CHAT_DEFAULTS).save_pretrained(str(out))

    def summary(self, result) -> str:
        return f"answer loss {result.best_val_loss:.4f} nats/token, {result.best['val_bpc']:.4f} bits/char"

    def add_eval_flags(self, parser: argparse.ArgumentParser) -> None:
        parser.description = ("Answer bits per character on the validation pairs held out by the fine-tuning "
                              "run (its recorded split), for the base and the fine-tuned model.")
        parser.add_argument("--data", required=True, help="Q,A,label CSV (the one the adapter was trained on)")
        parser.add_argument("--model", default=None, help="base model directory (default: the adapter's recorded base)")
        parser.add_argument("--adapter", default=None, help="`kogpt2 finetune chat` output (omit to score the base only)")
        parser.add_argument("--max-pairs", type=int, default=None, help="score only the first N validation pairs")
        parser.add_argument("--samples", type=int, default=0, help="also print N sample answers to validation questions")
        parser.add_argument("--seed", type=int, default=0, help="seed of the sample answers")
        from kogpt2.devices import add_device_flags

        add_device_flags(parser)

    def run_eval(self, args: argparse.Namespace) -> int:
        from kogpt2.chat import evaluate_chat
        from kogpt2.validate import check_numbers

        from kogpt2.devices import resolve_device, set_threads

        check_numbers(max_pairs=(args.max_pairs, ">= 1"), samples=(args.samples, ">= 0"), threads=(args.threads, ">= 1"))
        set_threads(args.threads)
        r = evaluate_chat(args.data, args.model, args.adapter, args.max_pairs, args.samples, args.seed,
                          device=resolve_device(args.device))
        line = f"answer bits/char on {r['pairs']} validation pairs: base {r['base_bpc']:.4f}"
        if r["finetuned_bpc"] is not None:
            line += f", fine-tuned {r['finetuned_bpc']:.4f} ({r['finetuned_bpc'] / r['base_bpc']:.3f}x)"
        print(line)
        for q, label, ref, answer in r["samples"]:
            print(f"Q [{label}] {q}\n  reference: {ref}\n  model:     {' '.join(answer.split())}")
        return 0
