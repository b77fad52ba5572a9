"""``kogpt2 convert``: import TensorFlow GPT-2 checkpoints, normalise KoGPT2 HF directories.

Examples::

    kogpt2 convert tf gpt2/models/124M runs/gpt2-124m
    kogpt2 convert tf ckpt/model.ckpt-100000 runs/ko-xl --config configs/xl.json --tokenizer tok/
    kogpt2 convert hf downloads/kogpt2-base-v2 runs/kogpt2-v2
    kogpt2 convert hf downloads/kogpt2-v1 runs/kogpt2-v1 --tokenizer downloads/kogpt2-v1-tokenizer
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="{tf,hf}", required=True)
    tf = sub.add_parser("tf", help="TensorFlow checkpoint (OpenAI GPT-2 or Grover/KoGPT2-train layout) -> HF dir",
                        description="Convert a TensorFlow GPT-2 checkpoint into a Hugging Face model directory. "
                                    "The layout (OpenAI model/... or Grover newslm/...) is detected.")
    tf.add_argument("checkpoint", help="checkpoint prefix (model.ckpt-100000 for model.ckpt-100000.index "
                                       "+ .data-*), one of its files, or its directory")
    tf.add_argument("out", help="output directory (Hugging Face format)")
    tf.add_argument("--config", metavar="JSON", help="hyperparameter JSON (vocab_size, hidden_size, "
                    "num_hidden_layers, num_attention_heads, max_position_embeddings, or OpenAI's "
                    "n_vocab/n_embd/n_layer/n_head/n_ctx); default: hparams.json or config.json beside it")
    tf.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory to save with the model; "
                    "its bos/eos/pad ids go into the config (default ids: KoGPT2's </s>=1, <pad>=3)")
    tf.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")
    tf.set_defaults(func=run_tf)
    hf = sub.add_parser("hf", help="normalise a Hugging Face KoGPT2 directory (SKT v2, v1 conversion)",
                        description="Copy a Hugging Face KoGPT2 directory with a repaired tokenizer, "
                                    "correct bos/eos/pad ids and generation_config.json, as safetensors.")
    hf.add_argument("src", help="Hugging Face model directory (config.json + weights)")
    hf.add_argument("out", help="output directory")
    hf.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory, if not inside SRC")
    hf.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")
    hf.set_defaults(func=run_hf)


def run_tf(args: argparse.Namespace) -> int:
    from kogpt2.convert import convert_tf

    out = convert_tf(args.checkpoint, args.out, config=args.config, tokenizer=args.tokenizer,
                     overwrite=args.overwrite)
    print(f"wrote {out}")
    if args.tokenizer is None:
        print("note: no --tokenizer given; the directory has no tokenizer and default special-token ids")
    return 0


def run_hf(args: argparse.Namespace) -> int:
    from kogpt2.convert import convert_hf

    print(f"wrote {convert_hf(args.src, args.out, tokenizer=args.tokenizer, overwrite=args.overwrite)}")
    return 0
