"""Pretraining: one plain PyTorch loop for a laptop CPU, one GPU, or many with torchrun.

    # CPU (bf16 autocast uses AMX where the CPU has it)
    kogpt2 train --data runs/data --out runs/mini --preset mini --n-ctx 256 --batch-size 16 --max-steps 20000
    # one GPU
    kogpt2 train --data runs/data --out runs/base --preset base --n-ctx 1024 --batch-size 16 --grad-accum 32 --compile
    # N GPUs / CPU processes (DDP); add --fsdp to shard parameters (FSDP2) for the large presets
    torchrun --nproc_per_node 8 -m kogpt2 train --data runs/data --out runs/base --preset base --grad-accum 32

The global batch is ``batch_size * grad_accum`` sequences; ``grad_accum`` is split across the
``WORLD_SIZE`` processes. Every global step draws its windows from one seeded generator shared
by all ranks, so N processes see exactly the windows one process would, and a resumed run
continues exactly where the checkpoint left off.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Collection

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from kogpt2.devices import device_name_problem, resolve_device
from kogpt2.errors import KoGPT2Error
from kogpt2.model_info import context_length
from kogpt2.validate import number_problems

LN2 = math.log(2.0)


@dataclass
class TrainConfig:
    """Everything a training run needs; validated once, all problems reported together."""

    data: str = ""
    """Shards directory written by ``kogpt2 data prepare``."""
    out: str = ""
    """Run directory: checkpoints ``step_*``, ``metrics.csv``, ``loss.png``."""
    preset: str | None = None
    """Model preset (``kogpt2.config.PRESETS``: mini, small, base, medium, large, xl, 2.7b, gpt3-mini,
    gpt3-base, ...); not needed with ``--resume`` or ``--init-from``."""
    n_ctx: int | None = None
    """Training context length, at most the preset's positions (e.g. 384, 1024, 2048; default: the positions)."""
    batch_size: int = 8
    """Sequences per micro-batch per process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step, summed over all processes (must divide by WORLD_SIZE)."""
    max_steps: int = 1000
    """Optimizer steps in total (a resumed run continues to this number)."""
    lr: float = 6e-4
    """Peak learning rate."""
    min_lr: float | None = None
    """Cosine floor (default lr/10)."""
    warmup_steps: int = 100
    """Linear warmup steps."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Gradient norm clip (0 = off)."""
    dropout: float = 0.0
    """Dropout of a new model."""
    dtype: str = "bf16"
    """Autocast dtype: bf16 (AMX on CPU, tensor cores on GPU), fp16 (GPU) or fp32."""
    compile: bool = False
    """torch.compile the model (faster after a one-off compile)."""
    grad_checkpointing: bool = False
    """Activation checkpointing (less memory, about 30% slower)."""
    fsdp: bool = False
    """Shard parameters with FSDP2 (for presets that do not fit one device)."""
    loss_chunk: int = 0
    """Tokens per chunk of the LM head + cross-entropy (0 = all at once). A chunk's (chunk, vocab) logits are
    recomputed in the backward pass, so the (B, T, vocab) fp32 logits never exist: less memory, larger batches."""
    device: str = "auto"
    """auto (cuda when available), cpu, cuda or cuda:N."""
    seed: int = 1337
    """Random seed (data order, init, dropout)."""
    eval_interval: int = 200
    """Steps between validation evaluations; 0 turns evaluation off (no validation split needed)."""
    eval_tokens: int = 262144
    """Validation tokens scored at each evaluation (from the start of the val split)."""
    sample_interval: int = 1000
    """Steps between sample generations (0 = never)."""
    sample_prompt: str = "나는 어두운 숲 속을 거닐고 있다."
    """Prompt of the sample generations."""
    save_interval: int = 500
    """Steps between checkpoints."""
    keep: int = 3
    """Checkpoints to keep."""
    log_interval: int = 10
    """Steps between metrics.csv rows."""
    resume: bool = False
    """Continue from the newest checkpoint in --out, with its settings where this command leaves the defaults."""
    resume_from: str | None = None
    """Resume from this checkpoint (a path, a ``step_*`` name in ``out``, or a step number)."""
    init_from: str | None = None
    """Initialise from another model directory (remaps the vocabulary, grows the context)."""
    threads: int | None = None
    """torch CPU threads (default: all cores)."""
    peak_flops: float | None = None
    """Peak FLOP/s for the MFU estimate (default: measured on CPU, 989e12 for an H100/H200 in bf16)."""
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not self.data:
            problems.append("--data is required (a directory from `kogpt2 data prepare`)")
        if not self.out:
            problems.append("--out is required")
        problems += number_problems(
            n_ctx=(self.n_ctx, ">= 1"), batch_size=(self.batch_size, ">= 1"), grad_accum=(self.grad_accum, ">= 1"),
            max_steps=(self.max_steps, ">= 1"), lr=(self.lr, "> 0"), min_lr=(self.min_lr, ">= 0"),
            warmup_steps=(self.warmup_steps, ">= 0"), weight_decay=(self.weight_decay, ">= 0"),
            beta1=(self.beta1, ">= 0 < 1"), beta2=(self.beta2, ">= 0 < 1"), grad_clip=(self.grad_clip, ">= 0"),
            dropout=(self.dropout, ">= 0 < 1"), eval_interval=(self.eval_interval, ">= 0"),
            eval_tokens=(self.eval_tokens, ">= 1"), sample_interval=(self.sample_interval, ">= 0"),
            save_interval=(self.save_interval, ">= 1"), keep=(self.keep, ">= 0"),
            log_interval=(self.log_interval, ">= 1"), threads=(self.threads, ">= 1"),
            peak_flops=(self.peak_flops, "> 0"))
        if self.dtype not in ("bf16", "fp16", "fp32"):
            problems.append(f"--dtype {self.dtype!r}: choose bf16, fp16 or fp32")
        if (device := device_name_problem(self.device)) is not None:
            problems.append(f"--device: {device}")
        if self.min_lr is not None and self.min_lr > self.lr:
            problems.append(f"--min-lr {self.min_lr:g} is above --lr {self.lr:g}; the schedule decays from --lr "
                            "down to --min-lr, so give a smaller --min-lr")
        if self.init_from and (self.resume or self.resume_from is not None):
            problems.append("--init-from starts a new run and --resume continues one; give only one of them")
        if self.out and Path(self.out).exists() and not Path(self.out).is_dir():
            problems.append(f"--out {self.out} is an existing file; give a directory path (new or a run to resume)")
        if self.resume_from is not None:
            self.resume = True
        if self.loss_chunk < 0 or (self.loss_chunk and self.fsdp):
            problems.append("--loss-chunk must be >= 0 and cannot be combined with --fsdp")
        if self.preset is None and not (self.resume or self.init_from):
            problems.append("--preset is required for a new run (e.g. --preset mini)")
        if problems:
            raise KoGPT2Error("; ".join(problems))


# Settings of the machine or of this invocation, never taken from a checkpoint on --resume.
NOT_RESUMED = frozenset({"data", "out", "resume", "resume_from", "init_from", "device", "threads",
                         "compile", "fsdp", "grad_checkpointing", "peak_flops"})


def resumed_config(cfg: TrainConfig, saved: dict, given: Collection[str] | None = None) -> tuple[TrainConfig, dict]:
    """``cfg`` with the checkpoint's training settings where the command did not set them.

    A resumed run continues exactly (same global batch, learning-rate schedule and length, intervals)
    even when its command repeats only ``--data --out --resume``. A setting typed on the command line
    (``given``, from ``kogpt2.config_flags.given_fields``) wins, even when it equals the default;
    without ``given`` (the Python API) a field left at its default counts as not set. Machine
    settings (:data:`NOT_RESUMED`) are never restored.

    Returns:
        ``(config, {name: value restored})``.
    """
    from kogpt2.config_flags import settings_to_restore

    restored, _ = settings_to_restore(cfg, saved, given, skip=NOT_RESUMED)
    return (replace(cfg, **restored) if restored else cfg), restored


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Dist:
    """Detect a torchrun launch from RANK/WORLD_SIZE and initialise the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is None:  # one GPU per torchrun process
            dev = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=process_group_backend(dev))
    return Dist(rank, local_rank, world, dev)


def process_group_backend(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU ones (gloo on CUDA copies every collective through the host)."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_single_process_group(device: torch.device) -> None:
    """A one-rank process group (for FSDP without torchrun), kept in memory: no port, no rendezvous."""
    torch.distributed.init_process_group(process_group_backend(device), store=torch.distributed.HashStore(),
                                         rank=0, world_size=1)


# ----------------------------------------------------------------------------- data


class TokenWindows:
    """Random training windows of ``n_ctx + 1`` tokens from memmapped shards.

    One ``numpy`` generator, seeded identically on every rank, draws the windows of each
    global step; each rank takes its slice. Its state is part of the checkpoint.
    """

    def __init__(self, shards: list[np.ndarray], n_ctx: int, seed: int):
        self.shards = [s for s in shards if len(s) > n_ctx + 1]
        if not self.shards:
            raise KoGPT2Error(f"no training shard is longer than n_ctx+1 = {n_ctx + 1} tokens; "
                              "prepare more data or lower --n-ctx")
        self.n_ctx = n_ctx
        sizes = np.array([len(s) - n_ctx - 1 for s in self.shards], dtype=np.float64)
        self.p = sizes / sizes.sum()
        self.rng = np.random.default_rng(seed)

    def global_batch(self, n: int) -> torch.Tensor:
        """``(n, n_ctx + 1)`` int64 windows for one optimizer step."""
        which = self.rng.choice(len(self.shards), size=n, p=self.p)
        out = np.empty((n, self.n_ctx + 1), dtype=np.int64)
        for i, s in enumerate(which):
            shard = self.shards[s]
            start = int(self.rng.integers(0, len(shard) - self.n_ctx - 1))
            out[i] = shard[start:start + self.n_ctx + 1]
        return torch.from_numpy(out)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def val_windows(shards: list[np.ndarray], n_ctx: int, max_tokens: int) -> torch.Tensor:
    """Non-overlapping ``(N, n_ctx + 1)`` windows from the start of the validation split."""
    flat = np.concatenate([np.asarray(s[: max_tokens + 1]) for s in shards])[: max_tokens + 1]
    n = (len(flat) - 1) // n_ctx
    if n == 0:
        raise KoGPT2Error(f"validation split has fewer than n_ctx+1 = {n_ctx + 1} tokens")
    rows = [flat[i * n_ctx: i * n_ctx + n_ctx + 1] for i in range(n)]
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def check_val_split(meta: dict, data_dir: str | Path, n_ctx: int) -> None:
    """Raise a one-line error unless the validation split fills at least one ``n_ctx + 1`` window."""
    tokens = int(meta["splits"].get("val", {}).get("tokens", 0))
    if tokens < n_ctx + 1:
        have = "is empty" if tokens == 0 else f"holds only {tokens:,} tokens"
        raise KoGPT2Error(f"the validation split of {data_dir} {have}, fewer than one evaluation window of "
                          f"n_ctx+1 = {n_ctx + 1} tokens; re-run `kogpt2 data prepare` with more documents or a "
                          "larger --val-fraction, lower --n-ctx, or turn evaluation off with --eval-interval 0")


def count_chars(tokenizer, windows: torch.Tensor, eos_id: int) -> int:
    """Characters encoded by the target tokens of ``windows`` (``</s>`` counts none)."""
    targets = windows[:, 1:].reshape(-1).tolist()
    text = tokenizer.decode([t for t in targets if t != eos_id])
    return len(text)


# ----------------------------------------------------------------------------- loss, speed


def lm_loss(model, batch: torch.Tensor, chunk: int = 0, head: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of ``batch`` (B, T+1).

    Args:
        model: the causal LM, or its DDP / compiled wrapper.
        chunk: with ``head``, project and score this many tokens at a time (see ``TrainConfig.loss_chunk``).
        head: the LM head weight (V, C) (tied to the token embedding).
    """
    x, y = batch[:, :-1], batch[:, 1:]
    if not chunk:
        logits = model(input_ids=x, use_cache=False).logits  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
    # NOTE: an empty logits_to_keep makes the model skip its LM head; the last hidden state is after ln_f.
    none = torch.empty(0, dtype=torch.long, device=x.device)
    out = model(input_ids=x, use_cache=False, output_hidden_states=True, logits_to_keep=none)
    h = out.hidden_states[-1].reshape(-1, head.size(1))  # (B*T, C)
    t = y.reshape(-1)
    total = sum(checkpoint(_chunk_nll, h[i:i + chunk], t[i:i + chunk], head, use_reentrant=False)
                for i in range(0, t.numel(), chunk))
    return total / t.numel()


def _chunk_nll(h: torch.Tensor, t: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of hidden states ``h`` (n, C) against targets ``t`` (n,)."""
    return F.cross_entropy(F.linear(h, head).float(), t, reduction="sum")


def flops_per_token(n_params: int, n_layer: int, n_embd: int, n_ctx: int) -> float:
    """Training FLOPs per token: 6N plus attention scores (PaLM appendix B)."""
    return 6 * n_params + 12 * n_layer * n_embd * n_ctx


def default_peak_flops(device: torch.device) -> float:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return 989e12 if "H100" in name or "H200" in name else 312e12
    return measure_cpu_peak_flops()


def measure_cpu_peak_flops(dtype: torch.dtype = torch.bfloat16, n: int = 1024, reps: int = 8) -> float:
    """Achieved FLOP/s of a large bf16 matmul on this CPU: the ceiling MFU is quoted against.

    (The project's reference machine, a 2-core Sapphire Rapids with AMX, reaches about 1.45e12;
    a 2-core AVX-512-BF16 Zen 4 without AMX about 4e11.)
    """
    import time as _time

    gen = torch.Generator().manual_seed(0)  # not the global RNG: a resumed run has just restored it
    a, b = torch.randn(n, n, dtype=dtype, generator=gen), torch.randn(n, n, dtype=dtype, generator=gen)
    a @ b
    t = _time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (_time.perf_counter() - t)


# ----------------------------------------------------------------------------- model set-up


def _build_or_restore(cfg: TrainConfig, tokenizer, ckpt: Path | None):
    """The HF model for this run: restored from ``ckpt``, grown from ``--init-from``, or new."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from kogpt2.checkpoint import load_weights
    from kogpt2.config import ModelConfig
    from kogpt2.model import build_model

    if ckpt is not None:
        hf_cfg = AutoConfig.from_pretrained(str(ckpt))
        from kogpt2.neo_attention import register

        register()
        model = AutoModelForCausalLM.from_config(hf_cfg, attn_implementation="sdpa")
        missing, unexpected = model.load_state_dict(load_weights(ckpt), strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise KoGPT2Error(f"checkpoint {ckpt} does not match its config.json "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        model.tie_weights()
        return model
    preset = cfg.preset
    if preset is None:  # --init-from without --preset: the source's shape, changed by the shape flags given
        from kogpt2.init_from import preset_like

        preset, overrides = preset_like(cfg.init_from, cfg.n_ctx)
        overrides = {**overrides, **cfg.overrides}
    else:
        overrides = cfg.overrides
    mcfg = ModelConfig(preset=preset, vocab_size=len(tokenizer), n_ctx=cfg.n_ctx, dropout=cfg.dropout,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, overrides=overrides)
    model = build_model(mcfg)
    if cfg.init_from:
        from kogpt2.init_from import init_from

        report = init_from(model, tokenizer, cfg.init_from)
        print(report)
    return model


# ----------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, given: Collection[str] | None = None) -> Path | None:
    """Run (or resume) pretraining; returns the last checkpoint directory (rank 0).

    ``given``: the settings typed on the command line (a resumed run keeps those, and takes the
    others from its checkpoint: :func:`resumed_config`).
    """
    from tqdm import tqdm

    from kogpt2.checkpoint import (default_generation_config, list_checkpoints, read_hyperparameters, resume_checkpoint,
                                   save_checkpoint)
    from kogpt2.data import load_split, read_meta
    from kogpt2.metrics import MetricsLog
    from kogpt2.model import count_params
    from kogpt2.optim import adamw, cosine_lr, set_lr
    from kogpt2.tokenizer import load_tokenizer, tokenizer_hash

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.grad_accum % world:
        raise KoGPT2Error(f"--grad-accum {cfg.grad_accum} is not divisible by the {world} processes; "
                          f"use a multiple of {world}")
    dist = setup_distributed(cfg.device)
    if cfg.dtype == "fp16" and dist.device.type != "cuda":
        raise KoGPT2Error(f"--dtype fp16 needs a CUDA GPU (this run is on {dist.device}); use --dtype bf16 or fp32")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    meta = read_meta(cfg.data)
    tokenizer = load_tokenizer(Path(cfg.data) / "tokenizer")
    if tokenizer_hash(tokenizer) != meta["tokenizer_hash"]:
        raise KoGPT2Error(f"{cfg.data}/tokenizer does not match the shards' tokenizer hash; re-run `kogpt2 data prepare`")

    ckpt, state = None, None
    if cfg.resume:
        ckpt, state = resume_checkpoint(out, cfg.resume_from)
        if state.get("tokenizer_hash") != meta["tokenizer_hash"]:
            raise KoGPT2Error(f"--resume: checkpoint {ckpt} was trained on shards with another tokenizer "
                              f"than {cfg.data}; use the same --data")
        saved = read_hyperparameters(ckpt).get("train", {})
        cfg, restored = resumed_config(cfg, saved, given)
        if restored and dist.master:
            print(f"--resume: the checkpoint's settings {' '.join(f'{k}={v}' for k, v in restored.items())} "
                  "(give a flag with another value to change one)")
        if state["step"] >= cfg.max_steps:
            raise KoGPT2Error(f"--resume: {ckpt} is at step {state['step']}, already at --max-steps "
                              f"{cfg.max_steps}: nothing to train; give a larger --max-steps")
        if saved.get("max_steps", cfg.max_steps) != cfg.max_steps and dist.master:
            print(f"--resume: --max-steps {cfg.max_steps} stretches the learning-rate schedule of a run planned "
                  f"for {saved['max_steps']} steps (the rate at step {state['step']} changes)")
    elif list_checkpoints(out):
        raise KoGPT2Error(f"{out} already holds checkpoints; pass --resume to continue, or choose a new --out")
    if cfg.init_from:
        from kogpt2.model_dir import check_model_dir

        cfg = replace(cfg, init_from=str(check_model_dir(cfg.init_from)))  # a run directory: its newest checkpoint

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and in every process
    model = _build_or_restore(cfg, tokenizer, ckpt)
    n_ctx = cfg.n_ctx or context_length(model)
    if n_ctx > context_length(model):
        raise KoGPT2Error(f"--n-ctx {n_ctx} is above the model's positions")
    if model.config.vocab_size < meta["vocab_size"]:
        raise KoGPT2Error(f"model vocabulary {model.config.vocab_size} is smaller than the shards' {meta['vocab_size']}")
    accum = cfg.grad_accum // dist.world
    torch.manual_seed(cfg.seed + dist.rank)
    if cfg.grad_checkpointing:
        model.gradient_checkpointing_enable()
    raw = model.to(dist.device)
    n_params = count_params(raw)

    train_model = raw
    if cfg.fsdp:
        from torch.distributed.fsdp import fully_shard

        if dist.world == 1:
            init_single_process_group(dist.device)
        # One rank holds every shard anyway: keep parameters gathered between forward and backward.
        reshard = dist.world > 1
        for block in raw.transformer.h:
            fully_shard(block, reshard_after_forward=reshard)
        fully_shard(raw, reshard_after_forward=reshard)
    elif dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(raw, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    optimizer = adamw(raw, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    head = raw.get_output_embeddings().weight if cfg.loss_chunk else None

    def batch_loss(b: torch.Tensor) -> torch.Tensor:
        return lm_loss(train_model, b, cfg.loss_chunk, head)

    # The loss is compiled with the model, so the fp32 upcast, log-softmax and NLL of the logits fuse.
    loss_fn = torch.compile(batch_loss) if cfg.compile else batch_loss

    windows = TokenWindows(load_split(cfg.data, "train"), n_ctx, cfg.seed)
    step, tokens_seen, elapsed0 = 0, 0, 0.0
    if state is not None:
        _load_optimizer(optimizer, raw, state["optimizer"], cfg.fsdp)
        windows.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"][dist.rank % len(state["torch_rng"])])
        step, tokens_seen, elapsed0 = state["step"], state["tokens_seen"], state.get("elapsed_s", 0.0)

    if cfg.eval_interval:
        check_val_split(meta, cfg.data, n_ctx)
        val = val_windows(load_split(cfg.data, "val"), n_ctx, cfg.eval_tokens)
        val_chars = count_chars(tokenizer, val, meta.get("eos_id", 1))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[cfg.dtype]
    autocast = (lambda: torch.autocast(dist.device.type, dtype=amp_dtype)) if amp_dtype else nullcontext
    scaler = torch.amp.GradScaler("cuda") if cfg.dtype == "fp16" and dist.device.type == "cuda" else None
    peak = cfg.peak_flops or default_peak_flops(dist.device)
    shape = raw.config
    fpt = flops_per_token(n_params, shape.num_hidden_layers if hasattr(shape, "num_hidden_layers") else shape.n_layer,
                          shape.hidden_size, n_ctx)
    hparams = {"train": asdict(cfg), "n_ctx": n_ctx, "n_params": n_params, "world_size": dist.world}
    gen_cfg = default_generation_config(tokenizer)
    if dist.master:
        out.mkdir(parents=True, exist_ok=True)
    metrics = MetricsLog(out, resume_step=step if state is not None else None) if dist.master else None
    if dist.master:
        print(f"model {type(raw).__name__} {n_params / 1e6:.2f}M params, n_ctx {n_ctx}, "
              f"global batch {cfg.batch_size * cfg.grad_accum} x {n_ctx} tokens, {dist.world} process(es) on "
              f"{dist.device}, dtype {cfg.dtype}{', compiled' if cfg.compile else ''}; from step {step}")

    def evaluate() -> tuple[float, float]:
        raw.eval()
        total, count = torch.zeros((), dtype=torch.float64), 0
        with torch.no_grad():
            mine = val[dist.rank::dist.world]
            for i in range(0, len(mine), cfg.batch_size):
                b = mine[i:i + cfg.batch_size].to(dist.device)
                with autocast():
                    loss = lm_loss(raw, b, cfg.loss_chunk, head)
                total += loss.double().cpu() * b[:, 1:].numel()
                count += b[:, 1:].numel()
        if dist.world > 1:  # on the training device: NCCL reduces CUDA tensors only
            t = torch.tensor([total.item(), float(count)], dtype=torch.float64, device=dist.device)
            torch.distributed.all_reduce(t)
            total, count = t[0], int(t[1].item())
        raw.train()
        mean = float(total) / count
        return mean, mean * count / val_chars / LN2

    def save(step_: int) -> Path | None:
        sd, osd = _state_dicts(raw, optimizer, cfg.fsdp)
        rng = _gather_rng(dist)  # collective: every rank takes part
        if not dist.master:
            return None
        trainer_state = {"step": step_, "tokens_seen": tokens_seen, "optimizer": osd, "data_rng": windows.state(),
                         "torch_rng": rng, "tokenizer_hash": meta["tokenizer_hash"],
                         "elapsed_s": elapsed0 + time.time() - t_start}
        return save_checkpoint(out, step_, sd, raw.config, tokenizer, gen_cfg, trainer_state, hparams, keep=cfg.keep)

    raw.train()
    t_start = time.time()
    last = None
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not dist.master, desc="train", dynamic_ncols=True)
    t_log, tok_log = time.time(), 0
    while step < cfg.max_steps:
        lr = cosine_lr(step, lr=cfg.lr, min_lr=cfg.min_lr if cfg.min_lr is not None else cfg.lr / 10,
                       warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps)
        set_lr(optimizer, lr)
        batch = windows.global_batch(cfg.batch_size * cfg.grad_accum)
        mine = batch[dist.rank * accum * cfg.batch_size:(dist.rank + 1) * accum * cfg.batch_size]
        loss_sum = torch.zeros((), device=dist.device)  # read back at log steps only: no host sync per step
        for micro in range(accum):
            b = mine[micro * cfg.batch_size:(micro + 1) * cfg.batch_size].to(dist.device, non_blocking=True)
            sync = micro == accum - 1 or not hasattr(train_model, "no_sync")
            with (nullcontext() if sync else train_model.no_sync()), autocast():
                loss = loss_fn(b) / accum
            (scaler.scale(loss) if scaler else loss).backward()
            loss_sum += loss.detach().float()
        if scaler:
            scaler.unscale_(optimizer)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        n_tok = cfg.batch_size * cfg.grad_accum * n_ctx
        tokens_seen += n_tok
        tok_log += n_tok
        bar.update(1)
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            if dist.world > 1:  # every rank takes part; the mean over ranks
                torch.distributed.all_reduce(loss_sum)
                loss_sum /= dist.world
            loss_sum = loss_sum.item()
        if dist.master and (step % cfg.log_interval == 0 or step == cfg.max_steps):
            dt = time.time() - t_log
            tok_s = tok_log / dt
            mfu = tok_s * fpt / peak
            bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tok_s:.0f}", mfu=f"{100 * mfu:.1f}%", lr=f"{lr:.2e}")
            metrics.log(step=step, tokens=tokens_seen, loss=round(loss_sum, 5), lr=lr, tok_s=round(tok_s, 1),
                        mfu=round(mfu, 4), elapsed_s=round(elapsed0 + time.time() - t_start, 1))
            t_log, tok_log = time.time(), 0
        if cfg.eval_interval and (step % cfg.eval_interval == 0 or step == cfg.max_steps):
            vl, bpc = evaluate()
            if dist.master:
                tqdm.write(f"step {step}: val loss {vl:.4f}, val bits/char {bpc:.4f}")
                metrics.log(step=step, tokens=tokens_seen, val_loss=round(vl, 5), val_bpc=round(bpc, 5),
                            elapsed_s=round(elapsed0 + time.time() - t_start, 1))
                metrics.plot()
        if dist.master and cfg.sample_interval and step % cfg.sample_interval == 0 and not cfg.fsdp:
            _print_sample(raw, tokenizer, cfg.sample_prompt, step)
        if step % cfg.save_interval == 0 or step == cfg.max_steps:
            last = save(step) or last
            t_log, tok_log = time.time(), 0  # saving time is not training speed
    bar.close()
    if metrics is not None:
        metrics.plot()
    if dist.world > 1 or cfg.fsdp:
        torch.distributed.destroy_process_group()
    return last


def _print_sample(model, tokenizer, prompt: str, step: int) -> None:
    """Print a continuation of ``prompt`` (48 tokens at most), sampled on the model's own device.

    A failure here is a bug in the sampler or the model, so it is raised, not hidden.
    """
    from tqdm import tqdm

    from kogpt2.generation.api import generate

    # NOTE: no device= : the engine runs a loaded model where it is, in its own dtype.
    positions = context_length(model)
    was_training = model.training
    model.eval()
    try:
        text = generate(prompt, model=model, tokenizer=tokenizer, max_new_tokens=min(48, positions // 2),
                        min_new_tokens=min(8, positions // 4), top_p=0.9, repetition_penalty=1.2, seed=step)
    finally:
        model.train(was_training)
    tqdm.write(f"sample @ {step}: {prompt}{text}")


def _state_dicts(raw, optimizer, fsdp: bool):
    """Full model and optimizer state dicts (gathered on every rank under FSDP)."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_state_dict(raw, optimizer, options=opts)
    return raw.state_dict(), optimizer.state_dict()


def _load_optimizer(optimizer, raw, osd, fsdp: bool) -> None:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(raw, optimizer, osd, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(osd)


def _gather_rng(dist: Dist) -> list[torch.Tensor]:
    """Every rank's torch RNG state (dropout differs per rank), collected on all ranks."""
    mine = torch.get_rng_state()
    if dist.world == 1:
        return [mine]
    states: list = [None] * dist.world
    torch.distributed.all_gather_object(states, mine)
    return states
