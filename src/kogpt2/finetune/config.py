"""``FinetuneConfig``: the hyper-parameters of one fine-tuning run, each one a ``kogpt2 finetune`` flag."""

from __future__ import annotations

from dataclasses import dataclass, field

from kogpt2.errors import KoGPT2Error


@dataclass
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run; validated once, every problem in one error.

    A task (``kogpt2.finetune.tasks``) may change the defaults (e.g. ``max_len`` 128 for chat).
    """

    data: str = ""
    """Training data file (e.g. ChatbotData.csv for chat, NSMC ratings_train.txt for sentiment)."""
    out: str = ""
    """Output directory (adapter or full model, metrics.csv, loss.png, kogpt2_finetune.json)."""
    model: str | None = None
    """Base model directory (default: the bundled kogpt2-small)."""
    full: bool = False
    """Fine-tune every weight instead of LoRA adapters."""
    epochs: int = 3
    """Passes over the training data."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (default: ``epochs`` passes over the data)."""
    batch_size: int = 32
    """Examples per optimizer step."""
    lr: float | None = None
    """Peak learning rate (default 1e-3 for LoRA, 1e-4 for full fine-tuning)."""
    min_lr: float | None = None
    """Cosine floor (default lr/10)."""
    warmup_steps: int = 50
    """Linear warmup steps (at most a tenth of the run)."""
    weight_decay: float = 0.0
    """AdamW weight decay on matrices."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.999
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Gradient norm clip (0 = off)."""
    max_len: int = 64
    """Tokens per example at most (longer ones are truncated and counted)."""
    max_examples: int | None = None
    """Train on a seeded random subset of this many examples."""
    val_fraction: float = 0.05
    """Share of the data held out for validation."""
    max_val: int = 2000
    """Validation examples at most (taken out of the training data)."""
    eval_interval: int = 100
    """Steps between validation passes."""
    patience: int = 3
    """Validation passes without a better loss before stopping early (0 = never stop early)."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scale numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input."""
    lora_embeddings: bool = False
    """LoRA: adapt the input token embeddings too (for classifiers, whose embeddings are not tied to an
    output layer)."""
    dtype: str = "bf16"
    """Autocast dtype: bf16 or fp32."""
    device: str = "auto"
    """auto (cuda when available), cpu, cuda or cuda:N."""
    seed: int = 1337
    """Random seed (subset, split, batch order, initialisation)."""
    threads: int | None = None
    """torch CPU threads (default: all cores)."""
    progress: bool = True
    """Show a progress bar."""
    resume: bool = False
    """Continue the interrupted run in --out from its last validation step (its settings are used)."""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = []
        if not self.data:
            p.append("--data is required")
        if not self.out:
            p.append("--out is required")
        if self.max_len < 8:
            p.append(f"--max-len {self.max_len} is too short; use at least 8 tokens")
        if not 0 < self.val_fraction < 0.5:
            p.append(f"--val-fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.max_examples is not None and self.max_examples < 10:
            p.append("--max-examples must be >= 10")
        from kogpt2.validate import number_problems

        p += number_problems(epochs=(self.epochs, ">= 1"), batch_size=(self.batch_size, ">= 1"),
                             max_steps=(self.max_steps, ">= 1"), lora_r=(self.lora_r, ">= 1"),
                             eval_interval=(self.eval_interval, ">= 1"), patience=(self.patience, ">= 0"),
                             lr=(self.lr, "> 0"), min_lr=(self.min_lr, ">= 0"), warmup_steps=(self.warmup_steps, ">= 0"),
                             weight_decay=(self.weight_decay, ">= 0"), grad_clip=(self.grad_clip, ">= 0"),
                             max_val=(self.max_val, ">= 1"), lora_alpha=(self.lora_alpha, "> 0"),
                             lora_dropout=(self.lora_dropout, ">= 0 < 1"), threads=(self.threads, ">= 1"))
        if self.dtype not in ("bf16", "fp32"):
            p.append(f"--dtype {self.dtype!r}: choose bf16 or fp32")
        from kogpt2.devices import device_name_problem

        if (device := device_name_problem(self.device)) is not None:
            p.append(f"--device: {device}")
        if p:
            raise KoGPT2Error("; ".join(p))
        if self.lr is None:
            self.lr = 1e-4 if self.full else 1e-3
        if self.min_lr is not None and self.min_lr > self.lr:
            raise KoGPT2Error(f"--min-lr {self.min_lr:g} is above the peak learning rate {self.lr:g}; "
                              "the schedule decays from --lr down to --min-lr, so give a smaller --min-lr")
