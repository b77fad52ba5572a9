"""Main-job latency: seconds from launching ``kogpt2 generate`` (bundled model, no flags) to its
first generated text, cold process each time. Target: first text within 3 s on this machine.

    python benchmarks/startup.py [--runs 3]

Run it after ``make setup`` (or ``kogpt2 export onnx --cache``): ``kogpt2 generate`` then picks
ONNX Runtime (``--backend auto``); the backend used is printed. Without the export it runs PyTorch
and pays for importing transformers' model code.

Reference measured in the same run: a bare ``python -c "import torch, transformers"``, the
floor any Hugging Face CLI pays before it can load a model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

PROMPT = "나는 어두운 숲 속을 거닐고 있다."


def first_text_seconds() -> tuple[float, float]:
    """(seconds to first continuation byte, seconds to exit)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "kogpt2", "generate", PROMPT, "--max-new-tokens", "32", "--seed", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    need = len((PROMPT).encode()) + 1
    got = b""
    first = None
    while True:
        b = p.stdout.read(1)
        if not b:
            break
        got += b
        if first is None and len(got) >= need:
            first = time.perf_counter() - t0
    p.wait()
    return first or float("nan"), time.perf_counter() - t0


def import_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers; from transformers import GPT2LMHeadModel"],
                   check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from kogpt2.generation.backends import pick_backend

    print(f"backend picked by `kogpt2 generate`: {pick_backend(None)}")
    first_text_seconds()  # warm the OS page cache once, as a user's second launch would
    firsts, totals, floors = [], [], []
    for _ in range(args.runs):
        f, t = first_text_seconds()
        firsts.append(f)
        totals.append(t)
        floors.append(import_floor())
    f, t, fl = statistics.median(firsts), statistics.median(totals), statistics.median(floors)
    print(f"kogpt2 generate (bundled model): first text after {f:.2f} s, done after {t:.2f} s (median of {args.runs})")
    print(f"reference: import torch + transformers GPT-2 alone takes {fl:.2f} s; ours/reference = {f / fl:.2f}")
    print(f"target: first text <= 3.0 s -> {'met' if f <= 3.0 else 'NOT met'}")
    print(f"RESULT first_text_s={f:.2f} import_floor_s={fl:.2f} total_s={t:.2f}")


if __name__ == "__main__":
    main()
