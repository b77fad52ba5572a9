"""Where inference runs: ``--device auto|cpu|cuda`` and ``--threads N``, one way for every command.

    parser = argparse.ArgumentParser()
    add_device_flags(parser)
    args = parser.parse_args()
    device = resolve_device(args.device)      # torch.device; auto = cuda when available
    set_threads(args.threads)                 # torch intra-op threads for inference

CUDA runs in bf16 (fp16 where the GPU has no bf16): :func:`inference_dtype`.
"""

from __future__ import annotations

import argparse
import os

import torch

from kogpt2.errors import KoGPT2Error

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_THREADS = 1
"""Torch inference threads when ``--threads`` is not given (ONNX Runtime: :data:`ONNX_THREADS`).

NOTE: decoding a small model is memory bound and a thread that waits for a busy core stalls
every step. Measured on a 2-core machine under load: torch's default (every core) made one
``generate`` take 49.8 s against 4.3 s with one thread (issue 18); the bundled model, 64 greedy
tokens beside a test run (load 6): 1 thread 10.9 / 11.8 s, 2 threads 13.4 / 19.7 s."""
ONNX_THREADS = 2
"""ONNX Runtime intra-op threads when ``--threads`` is not given (its int8 kernels use both cores
of a 2-core machine at batch 1)."""


def add_device_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--device`` and ``--threads`` (read them back with :func:`resolve_device`, :func:`set_threads`)."""
    parser.add_argument("--device", default="auto", type=_device_arg, metavar="{auto,cpu,cuda,cuda:N}",
                        help="where the model runs: auto (default: cuda when a GPU is available, else cpu), "
                             "cpu, cuda or cuda:N (bf16, or fp16 where bf16 is missing)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help=f"CPU threads for inference (default: {DEFAULT_THREADS} for torch, {ONNX_THREADS} for "
                             "ONNX Runtime; more threads slow a small model down when other programs use the CPU)")


def device_name_problem(name: str) -> str | None:
    """Why ``name`` is not a ``--device`` value (auto, cpu, cuda, cuda:N), or None when it is one."""
    if name in DEVICES:
        return None
    index = name.removeprefix("cuda:")
    if name.startswith("cuda:") and index.isdigit():
        return None
    return f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}, cuda:N"


def _device_arg(value: str) -> str:
    problem = device_name_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None -> cuda when available, else cpu; ``cuda``/``cuda:N`` without that GPU is an error."""
    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device)
    problem = device_name_problem(name)
    if problem:
        raise KoGPT2Error(problem)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise KoGPT2Error(f"--device {name}: no CUDA GPU is available to torch here; use --device cpu (or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise KoGPT2Error(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered from 0; give a smaller index or --device cuda")
        return dev
    return torch.device(name)


def inference_dtype(device: torch.device) -> torch.dtype:
    """fp32 on the CPU; bf16 on a GPU that has it, else fp16."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def place(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device`` in its inference dtype (a CPU model stays as loaded)."""
    if device.type == "cpu":
        return model.to(device)
    return model.to(device=device, dtype=inference_dtype(device))


def default_threads(onnx: bool = False) -> int:
    """:data:`DEFAULT_THREADS` (``onnx``: :data:`ONNX_THREADS`), or the number of cores when fewer."""
    return max(1, min(ONNX_THREADS if onnx else DEFAULT_THREADS, os.cpu_count() or 1))


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (None = :func:`default_threads`); returns the number set."""
    n = default_threads() if threads is None else threads
    if not isinstance(n, int) or n < 1:
        raise KoGPT2Error(f"--threads must be a positive integer, got {threads!r}")
    torch.set_num_threads(n)
    return n
