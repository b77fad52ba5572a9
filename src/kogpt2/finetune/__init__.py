"""Fine-tuning: one loop and one run function, a task per module.

    kogpt2 finetune chat --data ../shared/data/chat/ChatbotData.csv --out runs/chat
    kogpt2 finetune sentiment --data ../shared/data/nsmc/ratings_train.txt --out runs/sent --device cuda

    from kogpt2.finetune import FinetuneConfig, finetune
    finetune("sentiment", FinetuneConfig(data="ratings_train.txt", out="runs/sent", max_examples=2000))

Modules: ``config`` (``FinetuneConfig``, every field a flag), ``task`` (the ``Task`` interface,
the ``TASKS`` registry, :func:`finetune`), ``loop`` (the training loop with early stopping),
``base`` (base-model identity, LoRA, the run record), ``batching`` (split, batches, padding);
the tasks: ``chat``, ``sentiment``.
"""

from kogpt2.finetune.base import (META_FILE, adapter_base, apply_lora, base_name, check_base, model_fingerprint,
                                  quiet_transformers, read_meta, resolve_base, save_lora)
from kogpt2.finetune.batching import (ReadReport, autocast_ctx, iter_chunks, length_batches, pad_right, run_split,
                                      split_indices)
from kogpt2.finetune.config import FinetuneConfig
from kogpt2.finetune.task import TASKS, Task, finetune, get_task

__all__ = ["META_FILE", "TASKS", "FinetuneConfig", "ReadReport", "Task", "adapter_base", "apply_lora", "autocast_ctx",
           "base_name", "check_base", "finetune", "get_task", "iter_chunks", "length_batches", "model_fingerprint",
           "pad_right", "quiet_transformers", "read_meta", "resolve_base", "run_split", "save_lora", "split_indices"]
