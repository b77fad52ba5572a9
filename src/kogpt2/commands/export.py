"""``kogpt2 export``: standalone model files for other runtimes.

Examples::

    kogpt2 export onnx runs/mini runs/mini-onnx --int8
    kogpt2 generate "나는" --model runs/mini-onnx --backend onnx --dtype int8
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` sub-subcommands."""
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = sub.add_parser("onnx", help="ONNX with past key/values (runs in ONNX Runtime, any language)",
                          description="Export a GPT-2 directory to ONNX with past key/values.")
    onnx.add_argument("model", metavar="DIR", help="Hugging Face GPT-2 model directory")
    onnx.add_argument("out", metavar="OUT", help="output directory (model.onnx, config, tokenizer)")
    onnx.add_argument("--int8", action="store_true", help="also write model_int8.onnx (dynamic int8)")
    onnx.set_defaults(func=run_onnx)
    hf = sub.add_parser("hf", help="a compact inference-only HF directory (bf16 weights, no trainer state)",
                        description="Release a training checkpoint as a Hugging Face directory, e.g. the "
                                    "bundled model: kogpt2 export hf runs/mini/step_0000900 src/kogpt2/models/kogpt2-mini")
    hf.add_argument("model", metavar="DIR", help="checkpoint directory (e.g. runs/mini/step_0001000)")
    hf.add_argument("out", metavar="OUT", help="output directory (replaced atomically)")
    hf.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="storage dtype")
    hf.set_defaults(func=run_hf)


def run_onnx(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    from kogpt2.export import export_onnx
    from kogpt2.model import check_model_dir

    check_model_dir(args.model)
    out = export_onnx(args.model, args.out, int8=args.int8)
    for f in sorted(out.iterdir()):
        print(f"{f}  {f.stat().st_size / 1e6:.1f} MB")
    return 0


def run_hf(args: argparse.Namespace) -> int:
    """Release a checkpoint and print the files written."""
    from kogpt2.checkpoint import release
    from kogpt2.model import check_model_dir

    check_model_dir(args.model)
    out = release(args.model, args.out, dtype=args.dtype)
    for f in sorted(out.iterdir()):
        print(f"{f}  {f.stat().st_size / 1e6:.1f} MB")
    return 0
