"""``kogpt2 generate``: print the prompt, then stream its continuation.

Examples::

    kogpt2 generate "나는 어두운 숲 속을 거닐고 있다." --model runs/mini
    kogpt2 generate "오늘" --model runs/mini --top-p 0.9 --repetition-penalty 2.0 --seed 1
    kogpt2 generate --prompts prompts.txt --model runs/mini --no-stream --greedy
    kogpt2 generate "오늘" --model runs/mini-onnx --backend onnx --dtype int8
    kogpt2 generate "오늘" --device cuda                        # one GPU, bf16

Defaults come from the preset (``default``: the model directory's ``generation_config.json``);
flags override them. Beam search and ``--num-return-sequences > 1`` print when done (no streaming).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kogpt2.errors import KoGPT2Error

def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` arguments."""
    parser.add_argument("prompt", nargs="?",
                        help="prompt text ('' starts a new document from </s>; none: the lines of piped stdin)")
    parser.add_argument("--prompts", metavar="FILE", help="a file with one prompt per line, - for stdin (instead of PROMPT)")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the bundled kogpt2-small)")
    parser.add_argument("--preset", default="default",
                        help="sampling defaults: default (the model's generation_config.json), chat or pplm")
    from kogpt2.commands.sampling_args import add_sampling_flags
    from kogpt2.devices import add_device_flags

    add_sampling_flags(parser, "default", exclude={"banned_tokens"})
    parser.add_argument("--backend", default="auto",
                        help="auto (default: on the CPU onnx when onnxruntime and a ready export exist, see "
                             "`kogpt2 export onnx DIR --cache`; else torch), torch or onnx")
    parser.add_argument("--dtype", default="auto",
                        help="auto (default: fp32 on the CPU, bf16 on CUDA), fp32, bf16 (torch) or int8 (CPU)")
    add_device_flags(parser)
    parser.add_argument("--no-stream", action="store_true", help="print each result when it is complete")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate and print; returns the exit status."""
    from kogpt2.commands.common import read_prompts
    from kogpt2.commands.sampling_args import sampling_values
    from kogpt2.devices import resolve_device, set_threads
    from kogpt2.generation.backends import BACKENDS, DTYPES, check_choice, pick_backend
    from kogpt2.generation.presets import resolve_config
    from kogpt2.paths import resolve_model_dir

    check_choice(args.backend, BACKENDS, "backend")
    check_choice(args.dtype, DTYPES, "dtype")
    prompts = read_prompts(args)
    device = resolve_device(args.device)
    set_threads(args.threads)
    model_dir = resolve_model_dir(args.model)
    backend = args.backend
    if backend == "auto":
        backend = pick_backend(args.model, args.dtype) if device.type == "cpu" else "torch"
    cfg = resolve_config(args.preset, model_dir, **sampling_values(args))
    out = sys.stdout
    whole = args.no_stream or cfg.num_beams > 1 or cfg.num_return_sequences > 1  # print when complete
    printed = not whole and _precheck(model_dir, backend, cfg.max_new_tokens, args.dtype)
    if printed:
        out.write(prompts[0])  # NOTE: shown while the model loads (imports take most of startup)
        out.flush()
    from kogpt2.generation import api

    decoder, tok = api.load(args.model, None, backend, args.dtype, device, args.threads)
    if whole:
        texts = api.generate(prompts, model=decoder, tokenizer=tok, config=cfg)
        n = cfg.num_return_sequences
        for i, text in enumerate(texts):
            out.write(("\n" if i else "") + prompts[i // n] + text + "\n")
        return 0
    for i, prompt in enumerate(prompts):
        chunks = api.stream(prompt, model=decoder, tokenizer=tok, config=cfg)  # validates first
        if i or not printed:
            out.write(("\n" if i else "") + prompt)
            out.flush()
        for chunk in chunks:
            out.write(chunk)
            out.flush()
        out.write("\n")
        out.flush()
    return 0


def _precheck(model_dir: Path, backend: str, max_new_tokens: int, dtype: str = "auto") -> bool:
    """Cheap checks (files, context) before loading; True when the prompt may be printed early."""
    import json

    from kogpt2.model_info import context_length

    if backend == "torch":
        from kogpt2.model import check_model_dir

        check_model_dir(model_dir)
    else:
        from kogpt2.generation.onnx_backend import ready_onnx_dir

        if ready_onnx_dir(model_dir, "fp32" if dtype == "auto" else dtype) is None:
            return False  # needs an export first
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        return False
    try:
        context = context_length(json.loads(cfg_file.read_text(encoding="utf-8")))
    except (KoGPT2Error, ValueError, UnicodeDecodeError):
        return False  # the loader reports it
    if max_new_tokens >= context:
        raise KoGPT2Error(f"max_new_tokens={max_new_tokens} does not fit the model's context of {context} "
                          f"tokens; ask for fewer than {context}")
    return True
