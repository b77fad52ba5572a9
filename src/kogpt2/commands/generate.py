"""``kogpt2 generate``: print the prompt, then stream its continuation.

Examples::

    kogpt2 generate "나는 어두운 숲 속을 거닐고 있다." --model runs/mini
    kogpt2 generate "오늘" --model runs/mini --top-p 0.9 --repetition-penalty 2.0 --seed 1
    kogpt2 generate --prompts prompts.txt --model runs/mini --no-stream --greedy
    kogpt2 generate "오늘" --model runs/mini-onnx --backend onnx --dtype int8

Defaults come from the model directory's ``generation_config.json`` (when present); flags
override them. Beam search and ``--num-return-sequences > 1`` print when done (no streaming).
"""

from __future__ import annotations

import argparse
import sys

from kogpt2.errors import KoGPT2Error

SAMPLING_FLAGS = ("temperature", "top_k", "top_p", "min_p", "typical_p")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``generate`` arguments."""
    parser.add_argument("prompt", nargs="?", help="prompt text ('' starts a new document from </s>)")
    parser.add_argument("--prompts", metavar="FILE", help="a file with one prompt per line (instead of PROMPT)")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the bundled kogpt2-small)")
    from kogpt2.commands.sampling_args import add_sampling_arguments

    add_sampling_arguments(parser, {"max_new_tokens": "64", "seed": "random"})
    parser.add_argument("--typical-p", type=float, help="locally typical sampling mass in (0, 1]")
    parser.add_argument("--num-beams", type=int, help="beam search width (implies --greedy)")
    parser.add_argument("--num-return-sequences", type=int, help="continuations per prompt")
    parser.add_argument("--stop", nargs="+", metavar="S", help="stop sequences (not printed)")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding (no sampling)")
    parser.add_argument("--backend", default="auto",
                        help="auto (default: onnx when onnxruntime and a ready export exist, see "
                             "`kogpt2 export onnx DIR --cache`; else torch), torch or onnx")
    parser.add_argument("--dtype", default="fp32", help="fp32 (default), bf16 (torch) or int8")
    parser.add_argument("--no-stream", action="store_true", help="print each result when it is complete")
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict:
    """Sampling fields given on the command line; conflicting flags are an error."""
    names = SAMPLING_FLAGS + ("max_new_tokens", "repetition_penalty", "no_repeat_ngram_size", "num_beams",
                              "num_return_sequences", "stop", "seed")
    out = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    greedy = args.greedy or (args.num_beams or 1) > 1
    if greedy:
        given = [f"--{n.replace('_', '-')}" for n in SAMPLING_FLAGS if n in out]
        if given:
            raise KoGPT2Error(f"{', '.join(given)} only apply to sampling; drop them or drop --greedy/--num-beams")
        out["do_sample"] = False
    return out


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts of a generate-like command: one PROMPT or the lines of --prompts FILE."""
    if (args.prompt is None) == (args.prompts is None):
        raise KoGPT2Error("give a PROMPT or --prompts FILE (exactly one)")
    if args.prompt is not None:
        return [args.prompt]
    from kogpt2.textio import read_text_lines

    return read_text_lines(args.prompts, "--prompts")


def run(args: argparse.Namespace) -> int:
    """Generate and print; returns the exit status."""
    from kogpt2 import sampling
    from kogpt2.backends import BACKENDS, DTYPES, check_choice

    check_choice(args.backend, BACKENDS, "backend")
    check_choice(args.dtype, DTYPES, "dtype")
    prompts = read_prompts(args)
    from kogpt2.backends import pick_backend
    from kogpt2.paths import bundled_model_dir

    backend = pick_backend(args.model, args.dtype) if args.backend == "auto" else args.backend

    cfg = sampling.config_from_model_dir(args.model or bundled_model_dir(), **_overrides(args))
    out = sys.stdout
    whole = args.no_stream or cfg.num_beams > 1 or cfg.num_return_sequences > 1  # print when complete
    printed = not whole and _precheck(args.model, backend, cfg.max_new_tokens, args.dtype)
    if printed:
        out.write(prompts[0])  # NOTE: shown while the model loads (imports take most of startup)
        out.flush()
    quiet_libraries()
    decoder, tok = sampling.load(args.model, None, backend, args.dtype)
    if whole:
        texts = sampling.generate(prompts, model=decoder, tokenizer=tok, config=cfg)
        n = cfg.num_return_sequences
        for i, text in enumerate(texts):
            out.write(("\n" if i else "") + prompts[i // n] + text + "\n")
        return 0
    for i, prompt in enumerate(prompts):
        chunks = sampling.stream(prompt, model=decoder, tokenizer=tok, config=cfg)  # validates first
        if i or not printed:
            out.write(("\n" if i else "") + prompt)
            out.flush()
        for chunk in chunks:
            out.write(chunk)
            out.flush()
        out.write("\n")
        out.flush()
    return 0


def _precheck(model: str | None, backend: str, max_new_tokens: int, dtype: str = "fp32") -> bool:
    """Cheap checks (files, context) before loading; True when the prompt may be printed early."""
    import json

    from kogpt2.backends import _model_dir

    d = _model_dir(model)
    if backend == "torch":
        from kogpt2.model import check_model_dir

        check_model_dir(d)
    else:
        from kogpt2.onnx_backend import ready_onnx_dir

        if ready_onnx_dir(d, dtype) is None:
            return False  # needs an export first
    cfg_file = d / "config.json"
    if not cfg_file.is_file():
        return False
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    context = cfg.get("n_positions") or cfg.get("max_position_embeddings")
    if context and max_new_tokens >= context:
        raise KoGPT2Error(f"max_new_tokens={max_new_tokens} does not fit the model's context of {context} "
                          f"tokens; ask for fewer than {context}")
    return True


def quiet_libraries() -> None:
    """No loading progress bars from transformers; warnings on one line."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
