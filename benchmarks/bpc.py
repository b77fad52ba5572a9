"""Model quality in bits per character on the held-out validation split, next to bz2 -9 in the same run.

Decodes the validation split of a ``kogpt2 data prepare`` directory back to text (one
document per block, ``<|endoftext|>`` between documents), scores it with the product's own
``kogpt2 eval bpc`` and compresses the same characters with bz2 at level 9 (the trivial
baseline every language model must beat)::

    kogpt2 data prepare ../shared/data/text --tokenizer src/kogpt2/models/kogpt2-small --out runs/data16k
    python benchmarks/bpc.py --data runs/data16k [--model DIR] [--text-out val.txt]

Prints one ``RESULT`` line: model bits/char, bz2 bits/char and their ratio.
"""

from __future__ import annotations

import argparse
import bz2
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def validation_documents(data_dir: Path) -> list[str]:
    """The documents of the ``val`` split of a prepared data directory, decoded to text."""
    import numpy as np

    from kogpt2.data import iter_documents_of, load_split, read_meta
    from kogpt2.tokenizer import load_tokenizer

    meta = read_meta(data_dir)
    tok = load_tokenizer(data_dir / meta.get("tokenizer", "tokenizer"))
    docs = []
    for shard in load_split(data_dir, "val"):
        for ids in iter_documents_of(np.asarray(shard), meta["eos_id"]):
            text = tok.decode(ids.tolist()).strip()
            if text:
                docs.append(text)
    return docs


def bz2_bits_per_char(docs: list[str]) -> float:
    """bz2 -9 compressed size in bits per character of the documents (newline-joined)."""
    text = "\n".join(docs)
    chars = sum(len(d) for d in docs)
    return 8 * len(bz2.compress(text.encode("utf-8"), 9)) / chars


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="directory written by `kogpt2 data prepare`")
    ap.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    ap.add_argument("--text-out", type=Path, default=None, help="also keep the decoded validation text here")
    args = ap.parse_args()

    docs = validation_documents(args.data)
    if not docs:
        print(f"error: {args.data} has no validation documents", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = args.text_out or Path(tmp) / "val.txt"
        path.write_text("\n<|endoftext|>\n".join(docs) + "\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "kogpt2", "eval", "bpc", "--text", str(path)]
        if args.model:
            cmd += ["--model", args.model]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out.strip())
    m = re.search(r"bits/char ([0-9.]+)", out)
    if not m:
        print(f"error: could not read bits/char from: {out!r}", file=sys.stderr)
        return 1
    model_bpc = float(m.group(1))
    ref = bz2_bits_per_char(docs)
    print(f"{len(docs)} validation documents, {sum(len(d) for d in docs):,} characters")
    print(f"RESULT bpc model={model_bpc:.4f} bz2_9={ref:.4f} ratio={model_bpc / ref:.3f}x (lower is better)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
