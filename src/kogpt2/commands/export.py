"""``kogpt2 export``: standalone model files for other runtimes.

Examples::

    kogpt2 export onnx runs/mini runs/mini-onnx --int8
    kogpt2 generate "나는" --model runs/mini-onnx --backend onnx --dtype int8
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` sub-subcommands."""
    sub = parser.add_subparsers(dest="format", metavar="FORMAT")
    onnx = sub.add_parser("onnx", help="ONNX with past key/values (runs in ONNX Runtime, any language)",
                          description="Export a GPT-2 directory to ONNX with past key/values.")
    onnx.add_argument("model", metavar="DIR", help="Hugging Face GPT-2 model directory")
    onnx.add_argument("out", metavar="OUT", help="output directory (model.onnx, config, tokenizer)")
    onnx.add_argument("--int8", action="store_true", help="also write model_int8.onnx (dynamic int8)")
    onnx.set_defaults(func=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    from kogpt2.export import export_onnx
    from kogpt2.model import check_model_dir

    check_model_dir(args.model)
    out = export_onnx(args.model, args.out, int8=args.int8)
    for f in sorted(out.iterdir()):
        print(f"{f}  {f.stat().st_size / 1e6:.1f} MB")
    return 0
