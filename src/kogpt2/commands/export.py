"""``kogpt2 export``: standalone model files for other runtimes.

Examples::

    kogpt2 export onnx runs/mini runs/mini-onnx --int8
    kogpt2 generate "나는" --model runs/mini-onnx --backend onnx --dtype int8
    kogpt2 export onnx --cache      # the bundled model, into the cache `--backend auto` reads
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` sub-subcommands."""
    sub = parser.add_subparsers(dest="format", metavar="{onnx,hf}", required=True)
    onnx = sub.add_parser("onnx", help="ONNX with past key/values (runs in ONNX Runtime, any language)",
                          description="Export a GPT-2 directory to ONNX with past key/values.")
    onnx.add_argument("model", metavar="DIR", nargs="?", help="Hugging Face GPT-2 model directory "
                      "(default with --cache: the bundled model)")
    onnx.add_argument("out", metavar="OUT", nargs="?", help="output directory (model.onnx, config, tokenizer)")
    onnx.add_argument("--cache", action="store_true",
                      help="write into the export cache instead of OUT, where `--backend auto` finds it "
                           "(what `make setup` does for the bundled model, so generate starts fast)")
    onnx.add_argument("--int8", action="store_true", help="also write model_int8.onnx (dynamic int8)")
    onnx.set_defaults(func=run_onnx)
    hf = sub.add_parser("hf", help="a compact inference-only HF directory (bf16 weights, no trainer state)",
                        description="Release a training checkpoint as a Hugging Face directory, e.g. the "
                                    "bundled model: kogpt2 export hf runs/mini/step_0000900 src/kogpt2/models/kogpt2-small; "
                                    "or a LoRA fine-tune (`kogpt2 finetune ... --out DIR`) as its adapter alone: "
                                    "kogpt2 export hf runs/sent src/kogpt2/models/kogpt2-small-sentiment")
    hf.add_argument("model", metavar="DIR", help="checkpoint directory (e.g. runs/mini/step_0001000; a run "
                    "directory: its newest), or a LoRA fine-tune output (adapter_config.json)")
    hf.add_argument("out", metavar="OUT", help="output directory (replaced atomically)")
    hf.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="storage dtype")
    hf.set_defaults(func=run_hf)


def run_onnx(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    from kogpt2.paths import resolve_model_dir
    from kogpt2.errors import KoGPT2Error
    from kogpt2.export import export_onnx
    from kogpt2.model import check_model_dir

    if args.cache == (args.out is not None) or (args.model is None and not args.cache):
        raise KoGPT2Error("give DIR OUT, or DIR --cache (DIR defaults to the bundled model with --cache)")
    from kogpt2.validate import output_apart, output_dir

    if args.out:
        output_dir(args.out, "OUT")
    model = check_model_dir(resolve_model_dir(args.model))
    if args.out:
        output_apart(args.out, model)
    if args.cache:
        from kogpt2.generation.onnx_backend import cache_dir, ready_onnx_dir

        ready = ready_onnx_dir(model, "int8" if args.int8 else "fp32")
        if ready is not None and ready != model:
            print(f"{ready}: export is up to date")
            return 0
        out = export_onnx(model, cache_dir(model), int8=args.int8)
    else:
        out = export_onnx(model, args.out, int8=args.int8)
    for f in sorted(out.iterdir()):
        print(f"{f}  {f.stat().st_size / 1e6:.1f} MB")
    return 0


def run_hf(args: argparse.Namespace) -> int:
    """Release a checkpoint and print the files written."""
    from kogpt2.checkpoint import release
    from kogpt2.model import check_model_dir

    from kogpt2.validate import output_apart, output_dir

    output_dir(args.out, "OUT")
    if (Path(args.model) / "adapter_config.json").is_file():  # a LoRA fine-tune: the adapter alone
        from kogpt2.finetune.base import release_adapter

        output_apart(args.out, Path(args.model))
        out = release_adapter(args.model, args.out, dtype=args.dtype)
    else:
        model = check_model_dir(args.model, tokenizer=True)
        output_apart(args.out, model)
        out = release(model, args.out, dtype=args.dtype)
    for f in sorted(out.iterdir()):
        print(f"{f}  {f.stat().st_size / 1e6:.1f} MB")
    return 0
