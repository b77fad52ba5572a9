"""The sampling flags every generating command shares (``generate``, ``pplm``, ``adventure``)."""

from __future__ import annotations

import argparse

def add_sampling_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                           defaults: dict[str, str] | None = None) -> None:
    """Add ``--max-new-tokens --temperature --top-k --top-p --min-p --repetition-penalty
    --no-repeat-ngram-size --seed`` (all default to None: the command fills its own defaults).

    Args:
        parser: the parser or argument group to add to.
        defaults: text for each flag's help, e.g. ``{"top_k": "10, as PPLM"}``, naming the
            default the command applies when the flag is absent.
    """
    d = defaults or {}

    def note(name: str) -> str:
        return f" (default {d[name]})" if name in d else ""

    parser.add_argument("--max-new-tokens", type=int, help="tokens to generate at most" + note("max_new_tokens"))
    parser.add_argument("--temperature", type=float, help="sampling temperature, > 0" + note("temperature"))
    parser.add_argument("--top-k", type=int, help="sample among the k most likely tokens, 0 = off" + note("top_k"))
    parser.add_argument("--top-p", type=float, help="nucleus sampling mass in (0, 1]" + note("top_p"))
    parser.add_argument("--min-p", type=float, help="drop tokens below min-p times the most likely" + note("min_p"))
    parser.add_argument("--repetition-penalty", type=float,
                        help="penalty on repeated tokens (KoGPT2 examples: 2.0)" + note("repetition_penalty"))
    parser.add_argument("--no-repeat-ngram-size", type=int,
                        help="never repeat an n-gram of this size" + note("no_repeat_ngram_size"))
    parser.add_argument("--seed", type=int, help="random seed for reproducible output" + note("seed"))
